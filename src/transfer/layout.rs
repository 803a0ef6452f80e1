//! The OCI image layout end, the offline bundle: a directory (read and write) or a tar of one,
//! plain or compressed (read; `save` writes a directory and tars it when done).
//!
//! Each image is an entry of `index.json` annotated with its full source reference
//! (`io.containerd.image.name`, which containerd and nerdctl read; `org.opencontainers.image.ref.name`
//! holds the tag, as the spec suggests). Blobs live once under `blobs/sha256/`, shared by every
//! image. Paths are built only from digests checked to be `sha256:<64 hex>`, so nothing in a
//! bundle can name a file outside it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use super::archive::TarFiles;
use super::copy::Shape;
use super::unpack::{Need, Needs, Size};
use super::{ByteStream, ImageSink, ImageSource, RawManifest};
use crate::mirror::canonical_reference;
use crate::reference::Reference;

/// The annotation holding an image's full source reference.
pub const IMAGE_NAME: &str = "io.containerd.image.name";
/// Manifests are small; a bigger "manifest" is a damaged or hostile bundle.
const MANIFEST_LIMIT: u64 = 4 << 20;
/// An index of tens of thousands of images; a bigger one is not an index.
const INDEX_LIMIT: u64 = 64 << 20;
/// Descriptors in blobs met before anything named them, held until the index comes.
const EARLY_LIMIT: usize = 1 << 20;

/// The OCI annotation for the tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Where a layout's files are.
enum Store {
    Dir,
    Tar(TarFiles),
}

pub struct OciLayout {
    /// The directory, or the tar file.
    root: PathBuf,
    store: Store,
    /// The images named in `index.json`, and those written since.
    images: Mutex<Vec<Descriptor>>,
}

/// `blobs/sha256/<hex>` for a checked digest.
fn blob_path(root: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    Ok(root.join(blob_name(digest)?))
}

/// `blobs/sha256/<hex>` for a checked digest, as a name inside the layout.
fn blob_name(digest: &str) -> anyhow::Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .with_context(|| {
            format!("{digest:?} is not a sha256 digest; refusing to use it as a path")
        })?;
    Ok(format!("blobs/sha256/{hex}"))
}

impl OciLayout {
    /// Opens an existing layout: a directory, or a tar (plain, gzip, bzip2, xz or zstd).
    pub fn open(root: &Path) -> anyhow::Result<OciLayout> {
        let index_path = root.join("index.json");
        let (store, text) = if root.is_dir() {
            let text = std::fs::read(&index_path).with_context(|| {
                format!(
                    "{} is not an OCI image layout (no readable index.json)",
                    root.display()
                )
            })?;
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
        })
    }

    /// Creates an empty layout in `root` (which may exist, but must not hold a layout).
    pub fn create(root: &Path) -> anyhow::Result<OciLayout> {
        if root.join("index.json").exists() {
            anyhow::bail!(
                "{} already holds an OCI image layout; choose a new directory",
                root.display()
            );
        }
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", root.display()))?;
        // Blobs half-written by a save that `kill -9` ended (complete ones are kept: the rerun
        // skips them).
        crate::cleanup::sweep(&blobs, |name| {
            crate::cleanup::leading_pid(name.split_once(".partial-")?.1)
        });
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .with_context(|| format!("writing {}/oci-layout", root.display()))?;
        Ok(OciLayout {
            root: root.to_path_buf(),
            store: Store::Dir,
            images: Mutex::new(Vec::new()),
        })
    }

    /// The source references of the images the layout holds, in index order.
    pub fn image_names(&self) -> anyhow::Result<Vec<Reference>> {
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        images
            .iter()
            .filter_map(|d| d.annotations.get(IMAGE_NAME))
            .map(|n| {
                Reference::parse(n).with_context(|| {
                    format!(
                        "{}/index.json names an image {n:?} that does not parse",
                        self.root.display()
                    )
                })
            })
            .collect()
    }

    fn find(&self, image: &Reference) -> Option<Descriptor> {
        let want = canonical_reference(image);
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        images
            .iter()
            .find(|d| {
                d.annotations
                    .get(IMAGE_NAME)
                    .and_then(|n| Reference::parse(n).ok())
                    .is_some_and(|r| canonical_reference(&r) == want)
            })
            .cloned()
    }

    /// `os/arch[/variant]` of a single-platform image the (directory) layout holds, read from
    /// its config; `None` for an index or anything unreadable.
    pub fn image_platform(&self, manifest_digest: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Manifest {
            config: Option<Descriptor>,
        }
        #[derive(Deserialize)]
        struct Config {
            os: String,
            architecture: String,
            #[serde(default)]
            variant: Option<String>,
        }
        let read = |digest: &str| std::fs::read(blob_path(&self.root, digest).ok()?).ok();
        let manifest: Manifest = serde_json::from_slice(&read(manifest_digest)?).ok()?;
        let config: Config = serde_json::from_slice(&read(&manifest.config?.digest)?).ok()?;
        Some(match config.variant {
            Some(v) => format!("{}/{}/{v}", config.os, config.architecture),
            None => format!("{}/{}", config.os, config.architecture),
        })
    }

    fn has(&self, digest: &str) -> anyhow::Result<bool> {
        let name = blob_name(digest)?;
        Ok(match &self.store {
            Store::Dir => self.root.join(name).exists(),
            Store::Tar(files) => files.contains(&name),
        })
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
    pub fn parents_first(&self) -> Vec<String> {
        let mut out = vec!["oci-layout".to_string(), "index.json".to_string()];
        let mut queue: std::collections::VecDeque<(String, bool)> = {
            let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
            images.iter().map(|d| (d.digest.clone(), true)).collect()
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
                && let Some(shape) = Shape::parse(&bytes)
            {
                queue.extend(shape.children().map(|(d, _, m)| (d.to_string(), m)));
            }
            out.push(name);
        }
        out
    }

    /// Writes `index.json` (atomically: a reader sees the old index or the new one).
    pub fn finish(&self) -> anyhow::Result<()> {
        self.writable()?;
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let index = Index {
            schema_version: 2,
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            manifests: images.clone(),
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
        if crate::registry::sha256_digest(content) != digest {
            return Ok(());
        }
        let children: Vec<(String, u64, bool)> = Shape::parse(content)
            .map(|s| {
                s.children()
                    .map(|(d, n, m)| (d.to_string(), n, m))
                    .collect()
            })
            .unwrap_or_default();
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
        std::iter::once("index.json".to_string())
            .chain(blobs)
            .collect()
    }

    fn needed_count(&self) -> usize {
        1 + self.needed.len()
    }
}

impl ImageSource for std::sync::Arc<OciLayout> {
    async fn manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        let (digest, media_type) = match image.digest() {
            Some(d) => (d.to_string(), None),
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
        let actual = crate::registry::sha256_digest(&bytes);
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
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
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

impl ImageSink for std::sync::Arc<OciLayout> {
    async fn manifest_digest(&self, image: &Reference) -> anyhow::Result<Option<String>> {
        Ok(match image.digest() {
            Some(d) => self.has(d)?.then(|| d.to_string()),
            None => self.find(image).map(|d| d.digest),
        })
    }

    async fn has_blob(&self, _image: &Reference, digest: &str) -> anyhow::Result<bool> {
        self.has(digest)
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
        mut body: ByteStream,
    ) -> anyhow::Result<()> {
        self.writable()?;
        let path = blob_path(&self.root, digest)?;
        // Written beside its final name and renamed once whole and verified: an interrupted
        // save never leaves a blob that looks complete.
        let tmp = path.with_extension(format!("partial-{}", std::process::id()));
        // Removed on a signal, before it exists; the staging directory it may be in, too.
        let _registered = crate::cleanup::register(&tmp);
        let result = async {
            // Created in place, not on tokio's blocking pool, so that the signal handler's
            // wait (`creating`) covers the creation itself; it takes as long as an open.
            let file = {
                let _creating = crate::cleanup::creating();
                std::fs::File::create(&tmp)?
            };
            let mut file = tokio::fs::File::from_std(file);
            while let Some(chunk) = body.next().await {
                file.write_all(&chunk?).await?;
            }
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.with_context(|| format!("writing blob {digest} to {}", self.root.display()))
    }

    async fn put_manifest(&self, _image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        self.writable()?;
        let path = blob_path(&self.root, &manifest.digest)?;
        tokio::fs::write(&path, &manifest.bytes)
            .await
            .with_context(|| format!("writing {}", path.display()))
    }

    async fn put_image(&self, image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        self.put_manifest(image, manifest).await?;
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(IMAGE_NAME.to_string(), image.to_string());
        if let Some(tag) = image.tag() {
            annotations.insert(REF_NAME.to_string(), tag.to_string());
        }
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        let want = canonical_reference(image);
        images.retain(|d| {
            d.annotations
                .get(IMAGE_NAME)
                .and_then(|n| Reference::parse(n).ok())
                .is_none_or(|r| canonical_reference(&r) != want)
        });
        images.push(Descriptor {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            annotations,
        });
        Ok(())
    }
}
