//! The OCI image layout end, the offline bundle: a directory (read and write) or a tar of one,
//! plain or compressed (read; `save` writes a directory and tars it when done).
//!
//! Each image is an entry of `index.json` annotated with its full source reference twice: in
//! `io.containerd.image.name`, which containerd and nerdctl read, and in
//! `org.opencontainers.image.ref.name`, where crane, oras, regctl and skopeo (`oci:DIR:REF`) look.
//! A tag alone there would make ten images tagged `v1` one name that only one of them answers.
//!
//! Layouts other tools wrote name their images in one of those two, or by tag only (`skopeo copy
//! ... oci:DIR:TAG`); a tag is not a name to push under, so such entries need `--name TAG=REF`
//! ([`OciLayout::name`]) and are refused otherwise, naming the tags. Blobs live once under
//! `blobs/sha256/`, shared by every image. Paths are built only from digests checked to be
//! `sha256:<64 hex>`, so nothing in a bundle can name a file outside it.
//!
//! Written layouts resume: `save` into a directory that holds one keeps every blob and manifest
//! that is whole (size and hash checked once per run), continues a blob a killed run left half
//! written from where it stopped, and writes `index.json` only when the run is done.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use super::archive::TarFiles;
use super::unpack::{Need, Needs, Size};
use super::{ByteStream, ImageSink, ImageSource, RawManifest};
use crate::mirror::canonical_reference;
use crate::oci::{Descriptor, ImageManifest, Platform};
use crate::reference::Reference;

/// The annotation holding an image's full source reference.
pub(crate) const IMAGE_NAME: &str = "io.containerd.image.name";
/// Manifests are small; a bigger "manifest" is a damaged or hostile bundle.
const MANIFEST_LIMIT: u64 = 4 << 20;
/// An index of tens of thousands of images; a bigger one is not an index.
const INDEX_LIMIT: u64 = 64 << 20;
/// Descriptors in blobs met before anything named them, held until the index comes.
const EARLY_LIMIT: usize = 1 << 20;

/// The OCI annotation for an image's name: a full reference (as crane, oras and we write it) or
/// only a tag (as the spec's example and `skopeo copy ... oci:DIR:TAG` write it).
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The image another was built FROM; never this image's own name (see [`EntryName`]).
const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// A partial blob a dead run left is continued once it has not moved for this long: a run in
/// another container sharing the directory (whose PID we cannot see) would still be writing.
const PARTIAL_QUIET: std::time::Duration = std::time::Duration::from_secs(3);

/// The lock file `save` writes inside a bundle, beside `index.json`.
pub(crate) const LOCK_NAME: &str = "images.lock.yaml";
/// The `index.json` annotation that marks a delta bundle (`save --have`): the sha256 of the lock
/// file it was made against. Its blobs that those images hold are left out, so only a mirror
/// holding them can take it; the base images themselves are listed in the bundle's lock.
pub(crate) const DELTA_BASE: &str = "dev.kubectl-airgap.delta.base";
/// A lock file is a list of names and digests; a bigger one is not a lock.
const LOCK_LIMIT: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Where a layout's files are.
enum Store {
    Dir,
    Tar(TarFiles),
}

pub(crate) struct OciLayout {
    /// The directory, or the tar file.
    root: PathBuf,
    store: Store,
    /// The images named in `index.json`, and those written since.
    images: Mutex<Vec<Descriptor>>,
    /// `index.json`'s own annotations ([`DELTA_BASE`]), kept when it is written again.
    annotations: Mutex<BTreeMap<String, String>>,
    /// `--name TAG=REF` and `--name sha256:HEX=REF`: names for entries that carry none.
    given: std::collections::BTreeMap<String, Reference>,
    /// Digests of this directory's files found whole (size and hash) in this run, or written
    /// by it: each is hashed once however many images share it.
    whole: Mutex<HashSet<String>>,
    /// digest → the partial file of a dead run that [`ImageSink::kept`] offered to continue.
    adopting: Mutex<HashMap<String, PathBuf>>,
}

/// How an `index.json` entry names its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryName {
    Named(Reference),
    /// Only a tag in `org.opencontainers.image.ref.name`: not a name to push under.
    Tag(String),
    /// No name at all. `org.opencontainers.image.base.name`, when present, names the image this
    /// one was built FROM: taking it as this image's name would overwrite the base image in the
    /// mirror, so it is only quoted in the error.
    Unnamed {
        base: Option<String>,
    },
}

/// An entry's image name: `--name` given for its digest or tag first, then
/// `io.containerd.image.name`, then a full reference in `org.opencontainers.image.ref.name`.
fn entry_name(
    d: &Descriptor,
    given: &std::collections::BTreeMap<String, Reference>,
) -> anyhow::Result<EntryName> {
    let ref_name = d.annotations.get(REF_NAME);
    if let Some(r) = given
        .get(d.digest.as_str())
        .or_else(|| ref_name.and_then(|t| given.get(t)))
    {
        return Ok(EntryName::Named(r.clone()));
    }
    let parse = |key: &str, value: &str| {
        Reference::parse(value).with_context(|| {
            format!(
                "index.json entry {} has {key} {value:?}, which is not an image reference",
                d.digest
            )
        })
    };
    if let Some(n) = d.annotations.get(IMAGE_NAME) {
        return Ok(EntryName::Named(parse(IMAGE_NAME, n)?));
    }
    match ref_name {
        // A tag is one component of `[A-Za-z0-9_.-]`; a `/`, `:` or `@` makes it a reference.
        Some(r) if r.contains(['/', ':', '@']) => Ok(EntryName::Named(parse(REF_NAME, r)?)),
        Some(tag) => Ok(EntryName::Tag(tag.clone())),
        None => Ok(EntryName::Unnamed {
            base: d.annotations.get(BASE_NAME).cloned(),
        }),
    }
}

/// Opens a file of a layout directory for reading, refusing a symbolic link: a bundle comes
/// from elsewhere, and a link in it could name any file of this host.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)
}

/// File `name` of the layout directory `root`, opened for reading: `None` when it is not there,
/// the refusal when it is a symbolic link ([`open_regular`] opens with `O_NOFOLLOW`, which
/// answers `ELOOP` for one).
fn open_file(root: &Path, name: &str) -> anyhow::Result<Option<std::fs::File>> {
    match open_regular(&root.join(name)) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            Err(not_a_file(root, name))
        }
        Err(e) => Err(e).with_context(|| format!("reading {name} in {}", root.display())),
    }
}

/// The refusal of a link in a bundle directory.
fn not_a_file(root: &Path, name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: {name} is a symbolic link; a bundle holds its files itself, so refusing it (copy the bundle with its files, e.g. cp -rL)",
        root.display()
    )
}

/// What manifest or index bytes name: (digest, size, whether a manifest in turn); `None` for
/// bytes that are neither (a config, a layer).
fn children_of(bytes: &[u8]) -> Option<Vec<(String, u64, bool)>> {
    let parsed = crate::oci::Parsed::from_bytes(bytes).ok()?;
    Some(
        parsed
            .children()
            .into_iter()
            .map(|(d, manifest)| (d.digest.to_string(), d.size, manifest))
            .collect(),
    )
}

/// `blobs/sha256/<hex>` for a checked digest.
fn blob_path(root: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    Ok(root.join(blob_name(digest)?))
}

/// `blobs/sha256/<hex>` for a checked digest, as a name inside the layout.
fn blob_name(digest: &str) -> anyhow::Result<String> {
    crate::oci::Digest::parse(digest)
        .ok()
        .and_then(|d| d.blob_path())
        .with_context(|| format!("{digest:?} is not a sha256 digest; refusing to use it as a path"))
}

impl OciLayout {
    /// Opens an existing layout: a directory, or a tar (plain, gzip, bzip2, xz or zstd).
    pub(crate) fn open(root: &Path) -> anyhow::Result<OciLayout> {
        let index_path = root.join("index.json");
        let (store, text) = if root.is_dir() {
            let text = std::fs::read(&index_path).with_context(|| {
                format!(
                    "{} is not an OCI image layout (no readable index.json)",
                    root.display()
                )
            })?;
            // A link among the blob directories would reach any file of this host, which
            // `serve` would hand out; a layout any tool writes has none.
            for dir in ["blobs", "blobs/sha256"] {
                if std::fs::symlink_metadata(root.join(dir)).is_ok_and(|m| m.is_symlink()) {
                    return Err(not_a_file(root, dir));
                }
            }
            (Store::Dir, text)
        } else {
            let files = TarFiles::open(root, false, &mut LayoutNeeds::default())?;
            let Some(text) = files.read("index.json", INDEX_LIMIT)? else {
                let hint = if files.lists("manifest.json") {
                    format!(
                        "; it looks like a `docker save` archive: use --from docker-archive:{}",
                        root.display()
                    )
                } else {
                    String::new()
                };
                anyhow::bail!(
                    "{} is not an OCI image layout (no index.json in it){hint}",
                    root.display()
                );
            };
            (Store::Tar(files), text)
        };
        let index: Index = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a valid OCI index", index_path.display()))?;
        for d in &index.manifests {
            blob_name(&d.digest).with_context(|| format!("in {}", index_path.display()))?;
        }
        Ok(OciLayout {
            root: root.to_path_buf(),
            store,
            images: Mutex::new(index.manifests),
            annotations: Mutex::new(index.annotations),
            given: Default::default(),
            whole: Default::default(),
            adopting: Default::default(),
        })
    }

    /// Names entries that carry no name of their own: `TAG=REF` for an entry whose
    /// `org.opencontainers.image.ref.name` is TAG, `sha256:HEX=REF` for an entry by digest. A
    /// key no entry has is an error naming what the layout does have.
    pub(crate) fn name(mut self, names: &[String]) -> anyhow::Result<OciLayout> {
        let images = self
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for n in names {
            let (key, reference) = n.split_once('=').with_context(|| {
                format!("--name {n:?}: write TAG=REF or sha256:HEX=REF, e.g. --name v1=quay.io/org/app:v1")
            })?;
            let reference = Reference::parse(reference).with_context(|| {
                format!("--name {n:?}: {reference:?} is not an image reference")
            })?;
            let reference = match (
                reference.tag(),
                reference.digest(),
                key.starts_with("sha256:"),
            ) {
                // `--name v1=quay.io/org/app`: the tag it names.
                (None, None, false) => {
                    Reference::from_parts(reference.domain(), reference.path(), Some(key), None)
                        .with_context(|| format!("--name {n:?}: {key:?} is not a tag"))?
                }
                _ => reference,
            };
            let matches = images
                .iter()
                .any(|d| d.digest == key || d.annotations.get(REF_NAME).is_some_and(|t| t == key));
            if !matches {
                let tags: Vec<&str> = images
                    .iter()
                    .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
                    .collect();
                anyhow::bail!(
                    "--name {n:?}: {} has no entry tagged or digested {key:?} (its entries: {})",
                    self.root.display(),
                    if tags.is_empty() {
                        "none tagged".to_string()
                    } else {
                        tags.join(", ")
                    }
                );
            }
            self.given.insert(key.to_string(), reference);
        }
        Ok(self)
    }

    /// A layout to write into `root`: the one already there (a `save` resumed or added to), or a
    /// new empty one. Half-written blobs a dead run left stay, to be continued.
    pub(crate) fn create(root: &Path) -> anyhow::Result<OciLayout> {
        if root.exists() && !root.is_dir() {
            anyhow::bail!("{} is a file; give a directory or FILE.tar", root.display());
        }
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", root.display()))?;
        if root.join("index.json").exists() {
            return OciLayout::open(root).with_context(|| {
                format!(
                    "{} holds an index.json that is not a layout's; choose a new directory",
                    root.display()
                )
            });
        }
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .with_context(|| format!("writing {}/oci-layout", root.display()))?;
        Ok(OciLayout {
            root: root.to_path_buf(),
            store: Store::Dir,
            images: Mutex::new(Vec::new()),
            annotations: Mutex::new(BTreeMap::new()),
            given: Default::default(),
            whole: Default::default(),
            adopting: Default::default(),
        })
    }

    /// Removes what dead runs left half-written and nobody continued, once an hour old: the end
    /// of a run that needed none of it.
    pub(crate) fn sweep(&self) {
        crate::cleanup::sweep(&self.root.join("blobs").join("sha256"), |name| {
            crate::cleanup::leading_pid(name.split_once(".partial-")?.1)
        });
    }

    /// The images the layout holds, in index order. Entries named by a tag alone (or not at
    /// all) are an error naming them and how to name them: pushing the rest would say success
    /// with images missing. So is a layout with no entries.
    pub(crate) fn image_names(&self) -> anyhow::Result<Vec<Reference>> {
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let (mut names, mut tags, mut unnamed) = (Vec::new(), Vec::new(), Vec::new());
        for d in images.iter() {
            match entry_name(d, &self.given).with_context(|| self.root.display().to_string())? {
                EntryName::Named(r) => names.push(r),
                EntryName::Tag(t) => tags.push(t),
                EntryName::Unnamed { base } => unnamed.push(match base {
                    Some(b) => format!("{} (built FROM {b}, which is not its name)", d.digest),
                    None => d.digest.to_string(),
                }),
            }
        }
        if !tags.is_empty() {
            anyhow::bail!(
                "{} names {} of its images by tag only ({}); a tag is not a name to push under: give each its full name with --name TAG=REF (e.g. --name {}=quay.io/org/app:{})",
                self.root.display(),
                tags.len(),
                tags.join(", "),
                tags[0],
                tags[0]
            );
        }
        if !unnamed.is_empty() {
            anyhow::bail!(
                "{} holds {} images with no name ({}): give each its full name with --name sha256:HEX=REF",
                self.root.display(),
                unnamed.len(),
                unnamed.join(", ")
            );
        }
        if names.is_empty() {
            anyhow::bail!(
                "{} lists no images in its index.json; nothing to push",
                self.root.display()
            );
        }
        Ok(names)
    }

    /// Every `index.json` entry with the name it gives its image (as `push --from` reads it),
    /// in index order: what `check --bundle` looks images up in.
    pub(crate) fn entries(&self) -> Vec<(anyhow::Result<EntryName>, Descriptor)> {
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        images
            .iter()
            .map(|d| (entry_name(d, &self.given), d.clone()))
            .collect()
    }

    /// The size of blob `digest` as the bundle holds it (a directory's file, a tar's entry);
    /// `None` when it holds no such blob. Nothing is read or hashed.
    pub(crate) fn blob_size(&self, digest: &str) -> anyhow::Result<Option<u64>> {
        let name = blob_name(digest)?;
        match &self.store {
            Store::Tar(files) => Ok(files.size(&name)),
            Store::Dir => match std::fs::symlink_metadata(self.root.join(&name)) {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(m) if m.is_symlink() => Err(not_a_file(&self.root, &name)),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => {
                    Err(e).with_context(|| format!("reading {} in {}", name, self.root.display()))
                }
            },
        }
    }

    /// Blob `digest` opened at byte `start`, with its whole size: what `serve` streams a blob,
    /// or a range of one, from, never holding more of it than a read buffer. A tar's blob is
    /// read where its entry lies. `None` when the bundle lacks it.
    pub(crate) fn open_blob_from(
        &self,
        digest: &str,
        start: u64,
    ) -> anyhow::Result<Option<(std::fs::File, u64)>> {
        use std::io::{Seek as _, SeekFrom};
        let name = blob_name(digest)?;
        let opened = match &self.store {
            Store::Tar(files) => files.open_from(&name, start),
            Store::Dir => match open_file(&self.root, &name)? {
                None => Ok(None),
                Some(mut file) => file.metadata().and_then(|m| {
                    file.seek(SeekFrom::Start(start.min(m.len())))?;
                    Ok(Some((file, m.len())))
                }),
            },
        };
        opened.with_context(|| format!("reading {name} in {}", self.root.display()))
    }

    /// The bundle's path, as given.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The base lock's digest when this is a delta bundle ([`DELTA_BASE`]).
    pub(crate) fn delta_base(&self) -> Option<String> {
        let annotations = self.annotations.lock().unwrap_or_else(|p| p.into_inner());
        annotations.get(DELTA_BASE).cloned()
    }

    /// Marks the layout, when [`OciLayout::finish`] writes it, as a delta of the lock file
    /// with this digest, or as a whole bundle (`None`).
    pub(crate) fn set_delta_base(&self, base: Option<String>) {
        let mut annotations = self.annotations.lock().unwrap_or_else(|p| p.into_inner());
        match base {
            Some(b) => annotations.insert(DELTA_BASE.to_string(), b),
            None => annotations.remove(DELTA_BASE),
        };
    }

    /// The bundle's lock file ([`LOCK_NAME`]), bounded; `None` when it has none. A compressed
    /// tar's is kept when it comes before the last needed blob, as `save` writes it.
    pub(crate) fn lock_text(&self) -> anyhow::Result<Option<String>> {
        let bytes = match &self.store {
            Store::Tar(files) => files.read(LOCK_NAME, LOCK_LIMIT)?,
            Store::Dir => match open_file(&self.root, LOCK_NAME)? {
                None => None,
                Some(file) => {
                    use std::io::Read as _;
                    let mut bytes = Vec::new();
                    file.take(LOCK_LIMIT + 1)
                        .read_to_end(&mut bytes)
                        .with_context(|| {
                            format!("reading {LOCK_NAME} in {}", self.root.display())
                        })?;
                    if bytes.len() as u64 > LOCK_LIMIT {
                        anyhow::bail!(
                            "{}: {LOCK_NAME} is more than {LOCK_LIMIT} bytes; it is not a lock file",
                            self.root.display()
                        );
                    }
                    Some(bytes)
                }
            },
        };
        bytes
            .map(|b| {
                String::from_utf8(b).with_context(|| {
                    format!("{}: {LOCK_NAME} is not UTF-8 text", self.root.display())
                })
            })
            .transpose()
    }

    /// A small blob (a manifest, an index, an image config) read whole and checked against its
    /// digest; `None` when the bundle lacks it.
    pub(crate) fn small_blob(&self, digest: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let name = blob_name(digest)?;
        let bytes = match &self.store {
            Store::Tar(files) => files.read(&name, MANIFEST_LIMIT)?,
            Store::Dir => match open_file(&self.root, &name)? {
                None => None,
                Some(file) => {
                    use std::io::Read as _;
                    let reading = || format!("reading {name} in {}", self.root.display());
                    let size = file.metadata().with_context(reading)?.len();
                    if size > MANIFEST_LIMIT {
                        anyhow::bail!(
                            "{}: {name} is {size} bytes, more than the {MANIFEST_LIMIT} a manifest or config may be; the bundle is damaged",
                            self.root.display()
                        );
                    }
                    let mut bytes = Vec::with_capacity(size as usize);
                    file.take(MANIFEST_LIMIT + 1)
                        .read_to_end(&mut bytes)
                        .with_context(reading)?;
                    Some(bytes)
                }
            },
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let actual = crate::oci::Digest::sha256(&bytes);
        if actual != digest {
            anyhow::bail!(
                "{}: {name} hashes to {actual}, not {digest}; the bundle is corrupt (save it again, or copy it again whole)",
                self.root.display()
            );
        }
        Ok(Some(bytes))
    }

    /// What is wrong with the tree of manifest `digest` (`size` bytes, as its descriptor gives):
    /// the first blob it reaches that the bundle lacks or holds at another size, or a manifest
    /// that does not read. `None` when the bundle holds all of it. Manifests are read and
    /// hashed; other blobs are only looked up (a tar's entry list, a directory's file sizes),
    /// so a check costs the manifests' bytes, not the layers'.
    ///
    /// In a delta bundle ([`OciLayout::delta_base`]) configs and layers may be absent: its
    /// base holds them. Manifests may not.
    pub(crate) fn tree_problem(&self, digest: &str, size: u64) -> anyhow::Result<Option<String>> {
        let delta = self.delta_base().is_some();
        let mut seen = HashSet::new();
        let mut stack = vec![(digest.to_string(), size, true, "index.json".to_string())];
        while let Some((digest, size, manifest, by)) = stack.pop() {
            if !seen.insert(digest.clone()) {
                continue;
            }
            let what = if manifest { "manifest" } else { "blob" };
            match self.blob_size(&digest)? {
                None if delta && !manifest => continue,
                None => {
                    return Ok(Some(format!(
                        "the bundle lacks {what} {digest}, which {by} names"
                    )));
                }
                Some(held) if held != size => {
                    return Ok(Some(format!(
                        "the bundle's {what} {digest} is {held} bytes, {by} says {size}"
                    )));
                }
                Some(_) => {}
            }
            if manifest {
                let Some(bytes) = self.small_blob(&digest)? else {
                    return Ok(Some(format!(
                        "the bundle lacks manifest {digest}, which {by} names"
                    )));
                };
                let Some(children) = children_of(&bytes) else {
                    return Ok(Some(format!(
                        "manifest {digest} is not a manifest or index"
                    )));
                };
                let by = format!("manifest {digest}");
                for (d, n, m) in children {
                    blob_name(&d).with_context(|| format!("in {by}"))?;
                    stack.push((d, n, m, by.clone()));
                }
            }
        }
        Ok(None)
    }

    fn find(&self, image: &Reference) -> Option<Descriptor> {
        let want = canonical_reference(image);
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        images
            .iter()
            .find(|d| {
                matches!(entry_name(d, &self.given), Ok(EntryName::Named(r)) if canonical_reference(&r) == want)
            })
            .cloned()
    }

    /// `os/arch[/variant]` of a single-platform image the (directory) layout holds, read from
    /// its config; `None` for an index or anything unreadable.
    pub(crate) fn image_platform(&self, manifest_digest: &str) -> Option<String> {
        let read = |digest: &str| std::fs::read(blob_path(&self.root, digest).ok()?).ok();
        // An index has no config and does not parse as an image manifest.
        let manifest: ImageManifest = serde_json::from_slice(&read(manifest_digest)?).ok()?;
        let config = Platform::from_config(&read(&manifest.config.digest)?).ok()?;
        Some(config.to_string())
    }

    fn writable(&self) -> anyhow::Result<()> {
        match self.store {
            Store::Dir => Ok(()),
            Store::Tar(_) => anyhow::bail!(
                "{} is a tar; bundles are written as directories (save -o DIR or -o FILE.tar)",
                self.root.display()
            ),
        }
    }

    /// The layout's files parents first: `oci-layout`, `index.json`, then every blob the index
    /// reaches, breadth first, each after the manifest or index naming it. A tar in this order
    /// unpacks in one pass, each entry's need known at its header (see `unpack`).
    pub(crate) fn parents_first(&self) -> Vec<String> {
        let mut out = vec!["oci-layout".to_string(), "index.json".to_string()];
        let mut queue: std::collections::VecDeque<(String, bool)> = {
            let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
            images
                .iter()
                .map(|d| (d.digest.to_string(), true))
                .collect()
        };
        let mut seen = HashSet::new();
        while let Some((digest, manifest)) = queue.pop_front() {
            let Ok(name) = blob_name(&digest) else {
                continue;
            };
            if !seen.insert(digest) {
                continue;
            }
            if manifest
                && let Ok(bytes) = std::fs::read(self.root.join(&name))
                && let Some(children) = children_of(&bytes)
            {
                queue.extend(children.into_iter().map(|(d, _, m)| (d, m)));
            }
            out.push(name);
        }
        out
    }

    /// Writes `index.json` (atomically: a reader sees the old index or the new one).
    pub(crate) fn finish(&self) -> anyhow::Result<()> {
        self.writable()?;
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let index = Index {
            schema_version: 2,
            media_type: Some(crate::oci::media::OCI_INDEX.into()),
            manifests: images.clone(),
            annotations: self
                .annotations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let tmp = self.root.join(".index.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&index)?)?;
        std::fs::rename(&tmp, self.root.join("index.json"))
            .with_context(|| format!("writing {}/index.json", self.root.display()))
    }
}

/// What reading a compressed tar of a layout needs: `index.json`, and every blob the index
/// reaches, at the sizes their descriptors give.
#[derive(Default)]
struct LayoutNeeds {
    index_read: bool,
    /// A delta's index: the unpacking waits for its lock, which lists the base.
    delta: bool,
    /// digest → (size, where its descriptor is)
    needed: HashMap<String, (u64, String)>,
    /// Manifests and indexes needed and not read yet.
    pending: HashSet<String>,
    /// What small blobs read before anything named them name in turn: digest → (digest, size,
    /// whether a manifest); an index after its blobs needs them.
    early: HashMap<String, Vec<(String, u64, bool)>>,
    early_descriptors: usize,
}

impl LayoutNeeds {
    fn add(&mut self, digest: &str, size: u64, by: &str, manifest: bool) {
        if blob_name(digest).is_err() || self.needed.contains_key(digest) {
            return;
        }
        self.needed
            .insert(digest.to_string(), (size, by.to_string()));
        if manifest {
            match self.early.remove(digest) {
                Some(children) => self.add_children(digest, children),
                None => {
                    self.pending.insert(digest.to_string());
                }
            }
        }
    }

    fn add_children(&mut self, parent: &str, children: Vec<(String, u64, bool)>) {
        let by = format!("manifest {parent}");
        for (digest, size, manifest) in children {
            self.add(&digest, size, &by, manifest);
        }
    }
}

/// The digest a layout's entry name stands for (`blobs/sha256/<hex>`).
fn named_digest(name: &str) -> Option<String> {
    let digest = format!("sha256:{}", name.strip_prefix("blobs/sha256/")?);
    blob_name(&digest).is_ok().then_some(digest)
}

impl Needs for LayoutNeeds {
    fn need(&self, name: &str) -> Need {
        if name == "index.json" {
            return Need::Yes(Size::AtMost(INDEX_LIMIT));
        }
        if name == LOCK_NAME {
            // Kept whenever it is met (`save` writes it right after index.json): a delta's
            // push needs its base, `check --signatures --bundle` what it carried. Only a
            // delta waits for it (`needed`); a tar another tool wrote may have none.
            return match self.index_read {
                true => Need::Yes(Size::AtMost(LOCK_LIMIT)),
                false => Need::Unknown,
            };
        }
        let Some(digest) = named_digest(name) else {
            return Need::No;
        };
        match self.needed.get(&digest) {
            Some((size, by)) => Need::Yes(Size::Exactly {
                size: *size,
                by: by.clone(),
            }),
            None if self.settled() => Need::No,
            None => Need::Unknown,
        }
    }

    fn reads(&self, name: &str, size: u64) -> bool {
        if name == "index.json" {
            return true;
        }
        size <= MANIFEST_LIMIT
            && named_digest(name).is_some_and(|d| {
                self.pending.contains(&d) || !(self.settled() || self.needed.contains_key(&d))
            })
    }

    fn learn(&mut self, name: &str, content: &[u8]) -> anyhow::Result<()> {
        if name == "index.json" {
            let index: Index =
                serde_json::from_slice(content).context("index.json is not a valid OCI index")?;
            self.index_read = true;
            self.delta = index.annotations.contains_key(DELTA_BASE);
            for d in &index.manifests {
                blob_name(&d.digest).context("in index.json")?;
                self.add(&d.digest, d.size, "index.json", true);
            }
            return Ok(());
        }
        let Some(digest) = named_digest(name) else {
            return Ok(());
        };
        // Content that is not what its name says names nothing; the copier refuses it later.
        if crate::oci::Digest::sha256(content) != digest {
            return Ok(());
        }
        let children = children_of(content).unwrap_or_default();
        if self.pending.remove(&digest) {
            self.add_children(&digest, children);
        } else if !children.is_empty() && !self.needed.contains_key(&digest) {
            self.early_descriptors += children.len();
            if self.early_descriptors > EARLY_LIMIT {
                anyhow::bail!(
                    "the blobs before index.json name more than {EARLY_LIMIT} others; refusing the archive"
                );
            }
            self.early.insert(digest, children);
        }
        Ok(())
    }

    fn found(&self) -> bool {
        self.index_read
    }

    fn settled(&self) -> bool {
        self.index_read && self.pending.is_empty()
    }

    fn needed(&self) -> Vec<String> {
        let blobs = self.needed.keys().filter_map(|d| blob_name(d).ok());
        let lock = self.delta.then(|| LOCK_NAME.to_string());
        std::iter::once("index.json".to_string())
            .chain(lock)
            .chain(blobs)
            .collect()
    }

    fn needed_count(&self) -> usize {
        1 + usize::from(self.delta) + self.needed.len()
    }
}

impl ImageSource for std::sync::Arc<OciLayout> {
    async fn manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        let (digest, media_type) = match image.pinned() {
            Some(d) => (d.clone(), None),
            None => match self.find(image) {
                Some(d) => (d.digest, Some(d.media_type)),
                None => return Ok(None),
            },
        };
        let path = blob_path(&self.root, &digest)?;
        let bytes = match &self.store {
            Store::Tar(files) => match files.read(&blob_name(&digest)?, MANIFEST_LIMIT)? {
                Some(b) => b,
                None => return Ok(None),
            },
            Store::Dir => match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            },
        };
        let actual = crate::oci::Digest::sha256(&bytes);
        if actual != digest {
            anyhow::bail!(
                "{}: the manifest hashes to {actual}, not {digest}; the bundle is corrupt",
                path.display()
            );
        }
        let media_type = media_type
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()?
                    .get("mediaType")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| crate::oci::media::OCI_MANIFEST.into());
        Ok(Some(RawManifest {
            bytes: Bytes::from(bytes),
            media_type,
            digest,
        }))
    }

    async fn blob(&self, _image: &Reference, digest: &str) -> anyhow::Result<ByteStream> {
        if let Store::Tar(files) = &self.store {
            return files.stream(&blob_name(digest)?).await;
        }
        let path = blob_path(&self.root, digest)?;
        let file = tokio::fs::File::open(&path)
            .await
            .with_context(|| format!("the bundle lacks blob {digest} ({})", path.display()))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file,
            super::READ_CHUNK,
        )))
    }
}

impl OciLayout {
    /// Whether the layout holds blob `digest` whole: a directory's file is hashed (once a run)
    /// so that a truncated or damaged one left by an earlier run is fetched again.
    async fn holds_whole(&self, digest: &str) -> anyhow::Result<bool> {
        let name = blob_name(digest)?;
        if let Store::Tar(files) = &self.store {
            return Ok(files.contains(&name));
        }
        if self
            .whole
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(digest)
        {
            return Ok(true);
        }
        let path = self.root.join(name);
        let want = digest.to_string();
        let whole = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            use std::io::Read as _;
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            let mut hasher = crate::oci::Sha256Writer::new();
            let mut buf = vec![0; super::READ_CHUNK];
            loop {
                match file.read(&mut buf)? {
                    0 => break,
                    n => hasher.update(&buf[..n]),
                }
            }
            Ok(hasher.finish() == want)
        })
        .await?
        .with_context(|| format!("reading blob {digest} in {}", self.root.display()))?;
        if whole {
            self.mark_whole(digest);
        }
        Ok(whole)
    }

    fn mark_whole(&self, digest: &str) {
        self.whole
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string());
    }

    /// Whether manifest `digest` and everything it reaches are whole in the layout: only then
    /// may a resumed save skip it.
    async fn holds_tree(&self, digest: &str) -> anyhow::Result<bool> {
        if !self.holds_whole(digest).await? {
            return Ok(false);
        }
        let Store::Dir = self.store else {
            return Ok(true);
        };
        let path = blob_path(&self.root, digest)?;
        if std::fs::metadata(&path).map_or(true, |m| m.len() > MANIFEST_LIMIT) {
            return Ok(false);
        }
        let bytes = tokio::fs::read(&path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        let Some(children) = children_of(&bytes) else {
            return Ok(true);
        };
        let children: Vec<(String, bool)> = children
            .into_iter()
            .map(|(d, _, manifest)| (d, manifest))
            .collect();
        let checks = children.iter().map(|(d, manifest)| async move {
            match manifest {
                true => Box::pin(self.holds_tree(d)).await,
                false => self.holds_whole(d).await,
            }
        });
        for whole in futures_util::future::join_all(checks).await {
            if !whole? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes blob `digest` from `body` beside its final name and renames it there once whole:
    /// an interrupted save never leaves a blob that looks complete. With `adopt`, the file a
    /// dead run left (holding the body's first `skip` bytes) is continued instead.
    async fn store_blob(
        &self,
        digest: &str,
        mut body: ByteStream,
        skip: u64,
        adopt: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        self.writable()?;
        let path = blob_path(&self.root, digest)?;
        // Two images of one run may write the same manifest at once (two tags of one image):
        // each its own file, the PID first for the sweep.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("partial-{}-{n}", std::process::id()));
        // Removed on a signal, before it exists; the staging directory it may be in, too.
        let _registered = crate::cleanup::register(&tmp);
        let result = async {
            // Created in place, not on tokio's blocking pool, so that the signal handler's
            // wait (`creating`) covers the creation itself; it takes as long as an open.
            let file = {
                let _creating = crate::cleanup::creating();
                match &adopt {
                    Some(from) => {
                        std::fs::rename(from, &tmp)?;
                        let file = std::fs::OpenOptions::new().append(true).open(&tmp)?;
                        file.set_len(skip)?;
                        file
                    }
                    None => std::fs::File::create(&tmp)?,
                }
            };
            let mut file = tokio::fs::File::from_std(file);
            let mut skip = skip;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                let kept = skip.min(chunk.len() as u64);
                skip -= kept;
                file.write_all(&chunk[kept as usize..]).await?;
            }
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.with_context(|| format!("writing blob {digest} to {}", self.root.display()))?;
        self.mark_whole(digest);
        Ok(())
    }
}

impl ImageSink for std::sync::Arc<OciLayout> {
    async fn manifest_digest(
        &self,
        image: &Reference,
    ) -> anyhow::Result<Option<crate::oci::Digest>> {
        let digest = match image.pinned() {
            Some(d) => d.clone(),
            None => match self.find(image) {
                Some(d) => d.digest,
                None => return Ok(None),
            },
        };
        Ok(self.holds_tree(&digest).await?.then_some(digest))
    }

    async fn has_blob(&self, _image: &Reference, digest: &str) -> anyhow::Result<bool> {
        self.holds_whole(digest).await
    }

    async fn mount_blob(&self, _: &Reference, _: &str, _: &str) -> anyhow::Result<bool> {
        // One blob store serves every image: a blob present is present for all.
        Ok(false)
    }

    async fn put_blob(
        &self,
        _image: &Reference,
        digest: &str,
        _size: u64,
        body: ByteStream,
    ) -> anyhow::Result<()> {
        self.store_blob(digest, body, 0, None).await
    }

    async fn kept(&self, digest: &str) -> anyhow::Result<Option<super::Kept>> {
        let Store::Dir = self.store else {
            return Ok(None);
        };
        let path = blob_path(&self.root, digest)?;
        let (Some(dir), Some(hex)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return Ok(None);
        };
        let prefix = format!("{hex}.partial-");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(None);
        };
        // The longest a dead run left.
        let best = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let pid = crate::cleanup::leading_pid(name.to_str()?.strip_prefix(&prefix)?)?;
                let len = e.metadata().ok()?.len();
                (len > 0 && crate::cleanup::abandoned(&e.path(), pid, PARTIAL_QUIET))
                    .then(|| (len, e.path()))
            })
            .max_by_key(|(len, _)| *len);
        let Some((len, from)) = best else {
            return Ok(None);
        };
        let Ok(file) = tokio::fs::File::open(&from).await else {
            return Ok(None);
        };
        use tokio::io::AsyncReadExt as _;
        let bytes = Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            super::READ_CHUNK,
        ));
        self.adopting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), from);
        Ok(Some(super::Kept { len, bytes }))
    }

    async fn put_blob_after(
        &self,
        _image: &Reference,
        digest: &str,
        _size: u64,
        kept: u64,
        body: ByteStream,
    ) -> anyhow::Result<()> {
        let from = self
            .adopting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest)
            .with_context(|| format!("no kept part of blob {digest} to continue"))?;
        self.store_blob(digest, body, kept, Some(from)).await
    }

    async fn put_manifest(&self, _image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        let bytes = manifest.bytes.clone();
        let body: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(bytes) }));
        self.store_blob(&manifest.digest, body, 0, None).await
    }

    async fn read_manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        ImageSource::manifest(self, image).await
    }

    async fn put_image(&self, image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        self.put_manifest(image, manifest).await?;
        // The full reference in both: containerd reads the first, every other tool the second.
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(IMAGE_NAME.to_string(), image.to_string());
        annotations.insert(REF_NAME.to_string(), image.to_string());
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let want = canonical_reference(image);
        images.retain(|d| {
            !matches!(entry_name(d, &self.given), Ok(EntryName::Named(r)) if canonical_reference(&r) == want)
        });
        images.push(Descriptor {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            platform: None,
            annotations,
        });
        Ok(())
    }
}
