//! `check --bundle`: whether an offline bundle holds every image the manifests need, known on
//! the connected side, before it is carried across.
//!
//! The bundle is opened with the reader `push --from` uses ([`OciLayout`]: a directory, or a
//! tar, plain or compressed, with its bomb limits and path checks), and images are found by the
//! names `push --from` would push them under (their original references), so "present" here
//! means `push --from` will put it in the mirror. Only `index.json` and manifests are read;
//! every other blob is looked up in the tar's entry list or the directory at its descriptor's
//! size, so a check of a 20 GB plain tar reads kilobytes.
//!
//! A bundle that cannot be read (not a layout, an index that does not parse, a blob the index
//! names that is absent or cut short) is an error naming it, not a list of missing images: the
//! fix is to save or copy it again, not to add images.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::verdict::{Status, Verdict, lacking, lock_mismatch};
use crate::mirror::{canonical_name, canonical_reference};
use crate::oci::{Descriptor, Digest, ImageManifest, Platform, index_platforms, is_index};
use crate::reference::Reference;
use crate::transfer::layout::{EntryName, OciLayout};

/// An opened bundle and the images it names.
pub(crate) struct Bundle {
    layout: OciLayout,
    path: PathBuf,
    /// (name, its index entry), in index order.
    named: Vec<(Reference, Descriptor)>,
    /// Entries named by a tag alone (`skopeo copy ... oci:DIR:TAG`): no image can be matched
    /// to them.
    tag_only: Vec<String>,
    /// Entries with no name at all (their digests).
    unnamed: Vec<String>,
}

impl Bundle {
    /// Opens the bundle at `path` and checks that every image its index lists is there at the
    /// size the index gives.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Bundle> {
        if !path.exists() {
            anyhow::bail!(
                "--bundle {}: no such file or directory; give the directory or tar that `save -o` wrote",
                path.display()
            );
        }
        let layout = OciLayout::open(path).with_context(|| {
            format!(
                "--bundle {}: cannot read it as a bundle; give the directory or tar that `save -o` wrote, or save it again",
                path.display()
            )
        })?;
        let (mut named, mut tag_only, mut unnamed) = (Vec::new(), Vec::new(), Vec::new());
        for (name, d) in layout.entries() {
            match name.with_context(|| format!("--bundle {}", path.display()))? {
                EntryName::Named(r) => named.push((r, d)),
                EntryName::Tag(t) => tag_only.push(t),
                EntryName::Unnamed { .. } => unnamed.push(d.digest.to_string()),
            }
        }
        for (name, d) in &named {
            let held = layout.blob_size(&d.digest)?;
            if held != Some(d.size) {
                let what = match held {
                    None => "which it does not hold".to_string(),
                    Some(n) => format!("but holds {n} bytes of it, not {}", d.size),
                };
                anyhow::bail!(
                    "--bundle {}: its index.json lists {} as manifest {}, {what}; the bundle is incomplete or damaged: save it again, or copy it again whole",
                    path.display(),
                    name.familiar(),
                    d.digest
                );
            }
        }
        Ok(Bundle {
            layout,
            path: path.to_path_buf(),
            named,
            tag_only,
            unnamed,
        })
    }

    /// The lock digest this bundle is a delta of, and its lock's text (which lists that base).
    pub(crate) fn delta(&self) -> anyhow::Result<Option<(String, Option<String>)>> {
        match self.layout.delta_base() {
            Some(lock) => Ok(Some((lock, self.layout.lock_text()?))),
            None => Ok(None),
        }
    }

    /// What a check cannot match to any image, said once: entries named by tag only or not at
    /// all (`push --from` needs `--name` for them, too).
    pub(crate) fn unmatchable(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.tag_only.is_empty() {
            parts.push(format!("by tag only ({})", self.tag_only.join(", ")));
        }
        if !self.unnamed.is_empty() {
            parts.push(format!("with no name ({})", self.unnamed.join(", ")));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "{} names {} image(s) {}; no image is matched to them, and push --from needs --name TAG=REF for each",
                self.path.display(),
                self.tag_only.len() + self.unnamed.len(),
                parts.join(" and ")
            )
        })
    }

    /// Whether the bundle holds `image`, at `expected` (a lock's digest for a reference by
    /// tag) when given, whole, and for each of `platforms`.
    pub(crate) fn check(
        &self,
        image: &Reference,
        expected: Option<&Digest>,
        platforms: &[Platform],
    ) -> Verdict {
        match self.check_image(image, expected, platforms) {
            Ok(v) => v,
            Err(e) => Verdict::new(
                Status::Error,
                None,
                format!("{}: {e:#}", self.path.display()),
            ),
        }
    }

    fn check_image(
        &self,
        image: &Reference,
        expected: Option<&Digest>,
        platforms: &[Platform],
    ) -> anyhow::Result<Verdict> {
        let want = canonical_reference(image);
        let found = self
            .named
            .iter()
            .find(|(r, _)| canonical_reference(r) == want)
            .or_else(|| {
                // By digest, any name of the same repository holding that digest will do:
                // `push --from` puts it there under that name, and the digest comes with it.
                let digest = image.digest()?;
                let repository = canonical_name(image);
                self.named
                    .iter()
                    .find(|(r, d)| d.digest == digest && canonical_name(r) == repository)
            });
        let Some((_, entry)) = found else {
            return Ok(self.missing(image));
        };
        let held = entry.digest.clone();
        if let Some(mismatch) = lock_mismatch("the bundle", image, &held, expected) {
            return Ok(mismatch);
        }
        if let Some(problem) = self.layout.tree_problem(&held, entry.size)? {
            anyhow::bail!(
                "{}: {problem}; the bundle is incomplete or damaged: save it again, or copy it again whole",
                image.familiar()
            );
        }
        let lacking = self.lacking_platforms(&held, platforms)?;
        if !lacking.is_empty() {
            return Ok(Verdict::new(Status::Mismatch, Some(held), lacking));
        }
        Ok(Verdict::new(Status::Present, Some(held), ""))
    }

    /// A missing verdict that says what the bundle does hold of that repository, if anything.
    fn missing(&self, image: &Reference) -> Verdict {
        let repository = canonical_name(image);
        let others: Vec<String> = self
            .named
            .iter()
            .filter(|(r, _)| canonical_name(r) == repository)
            .map(|(r, d)| match r.digest() {
                Some(_) => r.familiar(),
                None => format!("{} ({})", r.familiar(), d.digest),
            })
            .collect();
        let what = match image.digest() {
            Some(d) => format!("the bundle has no {} manifest {d}", image.familiar()),
            None => format!("the bundle has no {}", image.familiar()),
        };
        let detail = if others.is_empty() {
            what
        } else {
            format!("{what}; it holds {}", others.join(", "))
        };
        Verdict::new(Status::Missing, None, detail)
    }

    /// Which wanted platforms the image (whose tree is known whole) does not serve.
    fn lacking_platforms(&self, digest: &str, wanted: &[Platform]) -> anyhow::Result<String> {
        if wanted.is_empty() {
            return Ok(String::new());
        }
        let read = |digest: &str| -> anyhow::Result<Vec<u8>> {
            self.layout
                .small_blob(digest)?
                .with_context(|| format!("the bundle lacks {digest}"))
        };
        let bytes = read(digest)?;
        let have = if is_index(&bytes).with_context(|| format!("manifest {digest}"))? {
            index_platforms(&bytes)
                .with_context(|| format!("index {digest} does not parse"))?
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        } else {
            let m: ImageManifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("manifest {digest} does not parse"))?;
            // A Helm chart runs on no platform, so it lacks none.
            if crate::oci::chart::is_chart(&m.config.media_type) {
                return Ok(String::new());
            }
            // A delta leaves out the configs its base holds: the base bundle answered for
            // their platforms when it was checked and pushed.
            if self.layout.delta_base().is_some()
                && self.layout.blob_size(&m.config.digest)?.is_none()
            {
                return Ok(String::new());
            }
            let config = read(&m.config.digest)?;
            vec![
                Platform::from_config(&config)
                    .with_context(|| format!("image config {} does not parse", m.config.digest))?,
            ]
        };
        Ok(lacking(wanted, &have, "the bundle's image"))
    }
}
