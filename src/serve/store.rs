//! The bundles being served, indexed once at start under the names clients ask for.
//!
//! Each image of each bundle (read with [`OciLayout`], the reader `push --from` and
//! `check --bundle` use) is named in the mirror by [`MirrorNaming`], as `post-render` names it,
//! so a cluster pointed at `HOST:PORT` by `post-render --registry HOST:PORT` finds here the
//! image it was rendered with. Every manifest is read and hashed once at start, and every blob
//! it names looked up at the size its descriptor gives: a bundle that lacks a blob is refused
//! at start with what it lacks, not discovered by a failing pull. What stays in memory is an
//! index (names, tags, digests, sizes), never a layer: blobs are opened at request time at the
//! offset a read needs.
//!
//! A repository serves only what its own manifests reach, as a registry does: a blob of one
//! image is not served under another's name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::route::{Digest, Page, Target};
use crate::mirror::{Collisions, MirrorNaming};
use crate::oci::Parsed;
use crate::transfer::archive::Compression;
use crate::transfer::layout::{EntryName, OciLayout};

/// Names a list answers with at most per page, when the client asks for more or none.
pub(crate) const PAGE_LIMIT: usize = 10_000;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Where one piece of content is held.
struct Held {
    bundle: usize,
    size: u64,
    /// The media type it is served as, for a manifest or index.
    manifest: Option<String>,
}

#[derive(Default)]
struct Repo {
    /// tag → manifest digest.
    tags: BTreeMap<String, String>,
    /// Every digest this repository's manifests reach, themselves included.
    content: HashSet<String>,
    /// subject digest → the descriptors of manifests in this repository that refer to it.
    referrers: HashMap<String, Vec<serde_json::Value>>,
}

pub(crate) struct Store {
    bundles: Vec<OciLayout>,
    repos: BTreeMap<String, Repo>,
    content: HashMap<String, Held>,
    images: usize,
}

/// What a lookup did not find.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No such repository.
    Name,
    /// The repository has no such tag, manifest or blob.
    Content,
}

/// A manifest as a request finds it.
pub(crate) struct Found {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A blob as a request finds it.
pub(crate) struct Blob {
    bundle: usize,
    pub size: u64,
}

impl Store {
    /// Opens and indexes `paths` (directories, or plain tars read in place) under `naming`;
    /// `names` (`--name TAG=REF`, as `push --from` takes them) name the entries of a single
    /// bundle that carry only a tag or no name.
    pub(crate) fn open(
        paths: &[PathBuf],
        names: &[String],
        naming: &MirrorNaming,
    ) -> anyhow::Result<Store> {
        if !names.is_empty() && paths.len() > 1 {
            anyhow::bail!(
                "--name names the entries of one bundle; serve that bundle alone, or give its images full names (save writes them)"
            );
        }
        let mut store = Store {
            bundles: Vec::new(),
            repos: BTreeMap::new(),
            content: HashMap::new(),
            images: 0,
        };
        let mut collisions = Collisions::new();
        // manifest digest → its children, so an image in two repositories is read once.
        let mut children: HashMap<String, Vec<(String, u64, bool)>> = HashMap::new();
        // (repository, tag) → the bundle that gave it.
        let mut tagged_by: HashMap<(String, String), usize> = HashMap::new();
        for path in paths {
            let layout = open_bundle(path, names)?;
            let bundle = store.bundles.len();
            let entries = layout.entries();
            store.bundles.push(layout);
            for (name, d) in entries {
                let EntryName::Named(source) = name? else {
                    continue;
                };
                let mirror = naming.map(&source)?;
                collisions.insert(&source, &mirror)?;
                let repo_name = mirror.path().to_string();
                store.index_tree(bundle, &repo_name, &d, &mut children)?;
                store.images += 1;
                let repo = store.repos.entry(repo_name.clone()).or_default();
                if let Some(tag) = mirror.tag() {
                    let key = (repo_name.clone(), tag.to_string());
                    match repo.tags.get(tag) {
                        Some(held) if d.digest != *held => anyhow::bail!(
                            "{repo_name}:{tag} is {held} in {} but {} in {}; serve one of them, or name the images apart with --override",
                            store.bundles[tagged_by[&key]].root().display(),
                            d.digest,
                            path.display()
                        ),
                        _ => {
                            repo.tags.insert(tag.to_string(), d.digest.to_string());
                            tagged_by.entry(key).or_insert(bundle);
                        }
                    }
                }
            }
        }
        Ok(store)
    }

    /// Records manifest `top` and everything it reaches as content of `repo`, checking each
    /// against the bundle.
    fn index_tree(
        &mut self,
        bundle: usize,
        repo: &str,
        top: &crate::oci::Descriptor,
        children: &mut HashMap<String, Vec<(String, u64, bool)>>,
    ) -> anyhow::Result<()> {
        let root = self.bundles[bundle].root().to_path_buf();
        let mut stack = vec![(
            top.digest.to_string(),
            top.size,
            true,
            Some(top.media_type.clone()).filter(|m| !m.is_empty()),
            "index.json".to_string(),
        )];
        let mut referrers = Vec::new();
        while let Some((digest, size, manifest, hint, by)) = stack.pop() {
            let repo_content = &mut self.repos.entry(repo.to_string()).or_default().content;
            if !repo_content.insert(digest.clone()) {
                continue;
            }
            let what = if manifest { "manifest" } else { "blob" };
            if !self.content.contains_key(&digest) {
                let layout = &self.bundles[bundle];
                match layout.blob_size(&digest)? {
                    Some(held) if held == size => {}
                    held => anyhow::bail!(
                        "{}: {}; the bundle is incomplete or damaged: run `kubectl airgap check --bundle {}`, and save or copy it again",
                        root.display(),
                        match held {
                            None => format!("it lacks {what} {digest}, which {by} names"),
                            Some(n) =>
                                format!("its {what} {digest} is {n} bytes, {by} says {size}"),
                        },
                        root.display()
                    ),
                }
                let media_type = if manifest {
                    let bytes = layout.small_blob(&digest)?.with_context(|| {
                        format!("{}: it lacks manifest {digest}", root.display())
                    })?;
                    let parsed = Parsed::from_bytes(&bytes).ok().with_context(|| {
                        format!(
                            "{}: {what} {digest}, which {by} names, is not a manifest or index",
                            root.display()
                        )
                    })?;
                    let kids: Vec<(String, u64, bool)> = parsed
                        .children()
                        .into_iter()
                        .map(|(d, m)| (d.digest.to_string(), d.size, m))
                        .collect();
                    let (declared, manifest_fields) = match &parsed {
                        Parsed::Index(i) => (i.media_type.clone(), None),
                        Parsed::Image(m) | Parsed::Artifact(m) => (m.media_type.clone(), Some(m)),
                    };
                    let media_type = declared.or(hint).unwrap_or_else(|| {
                        let index = kids.iter().any(|(_, _, m)| *m);
                        (if index { OCI_INDEX } else { OCI_MANIFEST }).to_string()
                    });
                    if let Some(m) = manifest_fields
                        && let Some(subject) = &m.subject
                    {
                        referrers.push((subject.digest.to_string(), {
                            let mut d = serde_json::json!({
                                "mediaType": media_type,
                                "digest": digest,
                                "size": size,
                                "artifactType": m.referrer_type(),
                            });
                            if !m.annotations.is_empty() {
                                d["annotations"] = serde_json::json!(m.annotations);
                            }
                            d
                        }));
                    }
                    children.insert(digest.clone(), kids);
                    Some(media_type)
                } else {
                    None
                };
                self.content.insert(
                    digest.clone(),
                    Held {
                        bundle,
                        size,
                        manifest: media_type,
                    },
                );
            }
            if manifest {
                let by = format!("manifest {digest}");
                for (d, n, m) in children.get(&digest).into_iter().flatten() {
                    stack.push((d.clone(), *n, *m, None, by.clone()));
                }
            }
        }
        let repo = self.repos.entry(repo.to_string()).or_default();
        for (subject, descriptor) in referrers {
            let list = repo.referrers.entry(subject).or_default();
            if !list.contains(&descriptor) {
                list.push(descriptor);
            }
        }
        Ok(())
    }

    /// How many images and repositories are served, for the start-up line.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.images, self.repos.len())
    }

    /// One name a client can pull, `REPOSITORY:TAG`, for the start-up line.
    pub(crate) fn example(&self) -> Option<String> {
        self.repos
            .iter()
            .find_map(|(name, repo)| Some(format!("{name}:{}", repo.tags.keys().next()?)))
    }

    /// One page of repository names, and whether more follow.
    pub(crate) fn catalog(&self, page: &Page) -> (Vec<String>, bool) {
        paginate(self.repos.keys(), page)
    }

    /// One page of `name`'s tags, and whether more follow.
    pub(crate) fn tags(&self, name: &str, page: &Page) -> Result<(Vec<String>, bool), Miss> {
        let repo = self.repos.get(name).ok_or(Miss::Name)?;
        Ok(paginate(repo.tags.keys(), page))
    }

    /// The manifest `name` holds at `target`.
    pub(crate) fn manifest(&self, name: &str, target: &Target) -> Result<Found, Miss> {
        let repo = self.repos.get(name).ok_or(Miss::Name)?;
        let digest = match target {
            Target::Tag(t) => repo.tags.get(t).ok_or(Miss::Content)?,
            Target::Digest(d) => {
                let d = d.sha256().ok_or(Miss::Content)?;
                repo.content.get(d).ok_or(Miss::Content)?
            }
        };
        let held = self.content.get(digest).ok_or(Miss::Content)?;
        let media_type = held.manifest.clone().ok_or(Miss::Content)?;
        Ok(Found {
            digest: digest.clone(),
            media_type,
            size: held.size,
        })
    }

    /// A manifest's bytes, read and checked against its digest (blocking: call it off the
    /// async threads).
    pub(crate) fn read_manifest(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let held = self
            .content
            .get(digest)
            .with_context(|| format!("no manifest {digest}"))?;
        let layout = &self.bundles[held.bundle];
        layout
            .small_blob(digest)?
            .with_context(|| format!("{} no longer holds {digest}", layout.root().display()))
    }

    /// The blob `name` holds at `digest`.
    pub(crate) fn blob(&self, name: &str, digest: &Digest) -> Result<Blob, Miss> {
        let repo = self.repos.get(name).ok_or(Miss::Name)?;
        let digest = digest.sha256().ok_or(Miss::Content)?;
        if !repo.content.contains(digest) {
            return Err(Miss::Content);
        }
        let held = self.content.get(digest).ok_or(Miss::Content)?;
        Ok(Blob {
            bundle: held.bundle,
            size: held.size,
        })
    }

    /// `blob` opened at byte `start` (blocking: call it off the async threads).
    pub(crate) fn open_blob(
        &self,
        blob: &Blob,
        digest: &str,
        start: u64,
    ) -> anyhow::Result<std::fs::File> {
        let layout = &self.bundles[blob.bundle];
        match layout.open_blob_from(digest, start)? {
            Some((file, size)) if size == blob.size => Ok(file),
            Some((_, size)) => anyhow::bail!(
                "{}: blob {digest} is now {size} bytes, not the {} it was at start; the bundle changed under the server: restart it",
                layout.root().display(),
                blob.size
            ),
            None => anyhow::bail!(
                "{}: blob {digest} is gone since start; the bundle changed under the server: restart it",
                layout.root().display()
            ),
        }
    }

    /// The manifests in `name` whose subject is `digest`, of `artifact_type` when given.
    pub(crate) fn referrers(
        &self,
        name: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, Miss> {
        let repo = self.repos.get(name).ok_or(Miss::Name)?;
        let list = digest
            .sha256()
            .and_then(|d| repo.referrers.get(d))
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter(|d| artifact_type.is_none_or(|t| d["artifactType"] == t))
            .cloned()
            .collect())
    }
}

/// Opens one bundle for serving: a directory, or a plain tar read in place.
fn open_bundle(path: &Path, names: &[String]) -> anyhow::Result<OciLayout> {
    if !path.exists() {
        anyhow::bail!(
            "{}: no such file or directory; give the directory or tar that `kubectl airgap save -o` wrote",
            path.display()
        );
    }
    if path.is_file() {
        let mut head = [0u8; 6];
        let n = {
            use std::io::Read as _;
            let mut f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            n
        };
        let compression = Compression::sniff(&head[..n]);
        if compression != Compression::None {
            anyhow::bail!(
                "{} is {compression:?}-compressed; serve reads a bundle tar in place, by its entries' offsets, which a compressed stream does not have. Decompress it first (e.g. `{}`) and serve the .tar, or serve a directory `tar -xf` made of it",
                path.display(),
                match compression {
                    Compression::Gzip => "gzip -dk FILE.tar.gz",
                    Compression::Zstd => "zstd -d FILE.tar.zst",
                    Compression::Xz => "xz -dk FILE.tar.xz",
                    _ => "bzip2 -dk FILE.tar.bz2",
                }
            );
        }
    }
    let layout = OciLayout::open(path)
        .with_context(|| {
            format!(
                "{}: cannot read it as a bundle; give the directory or tar that `kubectl airgap save -o` wrote",
                path.display()
            )
        })?
        .name(names)?;
    // A delta's left-out layers are in some mirror, not here: serving it would answer 404 for
    // them to every node pulling its images.
    if let Some(base) = layout.delta_base() {
        anyhow::bail!(
            "{} is a delta bundle (save --have): it leaves out the layers that the images of the lock {base} hold, so it cannot be served alone. Push it into the mirror that holds that base (push --from), or serve a whole bundle",
            path.display()
        );
    }
    // Every image needs its full name to be served under a mirror name; the same refusals,
    // in the same words, as `push --from`.
    layout
        .image_names()
        .with_context(|| format!("serving {}", path.display()))?;
    Ok(layout)
}

/// The names after `page.last`, at most `page.n` (and [`PAGE_LIMIT`]) of them, and whether
/// more follow.
fn paginate<'a>(names: impl Iterator<Item = &'a String>, page: &Page) -> (Vec<String>, bool) {
    let n = page.n.unwrap_or(PAGE_LIMIT).min(PAGE_LIMIT);
    let mut after = names.filter(|name| page.last.as_ref().is_none_or(|l| *name > l));
    let out: Vec<String> = after.by_ref().take(n).cloned().collect();
    let more = after.next().is_some();
    (out, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_last_and_n() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let page = |n: Option<usize>, last: Option<&str>| Page {
            n,
            last: last.map(str::to_string),
        };
        assert_eq!(
            paginate(names.iter(), &page(None, None)),
            (names.clone(), false)
        );
        assert_eq!(
            paginate(names.iter(), &page(Some(2), None)),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            paginate(names.iter(), &page(Some(2), Some("b"))),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(paginate(names.iter(), &page(Some(0), None)), (vec![], true));
        assert_eq!(
            paginate(names.iter(), &page(None, Some("d"))),
            (vec![], false)
        );
    }
}
