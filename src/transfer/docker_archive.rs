//! The docker archive end (read only): what `docker save` and `skopeo copy … docker-archive:`
//! write, one file or a directory of them, plain or compressed. Classic offline packages ship
//! exactly that, e.g. `images/docker.io+library+registry++2.tar.bz2`.
//!
//! An archive holds image configs and uncompressed layer tars named by path, and a
//! `manifest.json` that gives each image's names (`RepoTags`), config and layers. No registry
//! manifest survives `docker save`, so one is built: an OCI image manifest naming the config and
//! each layer as the archive holds it (uncompressed layers stay uncompressed). Its bytes depend
//! on the archive alone, so a rerun computes the same digest and finds the image already there;
//! the image ID (the config digest) is the one `docker images` showed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::archive::{Compression, TarFiles, clean_name};
use super::unpack::{Need, Needs, Size};
use super::{ByteStream, ImageSource, RawManifest};
use crate::mirror::canonical_reference;
use crate::oci::Descriptor;
use crate::reference::Reference;

/// One image of an archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchivedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

use crate::oci::media::{OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST};
/// `manifest.json` lists a few names per image; a bigger one is not a docker archive's.
const MANIFEST_JSON_LIMIT: u64 = 16 << 20;

/// What reading a compressed docker archive needs: `manifest.json`, and the configs and layers
/// it names (of any size: it gives none). What it does not name stays unknown, not unneeded,
/// because a link read later may lead to it.
#[derive(Default)]
struct ArchiveNeeds {
    names: Option<HashSet<String>>,
}

impl Needs for ArchiveNeeds {
    fn need(&self, name: &str) -> Need {
        if name == "manifest.json" {
            return Need::Yes(Size::AtMost(MANIFEST_JSON_LIMIT));
        }
        match &self.names {
            Some(names) if names.contains(name) => Need::Yes(Size::Any),
            _ => Need::Unknown,
        }
    }

    fn reads(&self, name: &str, _size: u64) -> bool {
        name == "manifest.json"
    }

    fn learn(&mut self, _name: &str, content: &[u8]) -> anyhow::Result<()> {
        let images: Vec<ArchivedImage> = serde_json::from_slice(content)
            .context("manifest.json is not a docker archive manifest")?;
        let named = images
            .iter()
            .flat_map(|i| std::iter::once(&i.config).chain(&i.layers));
        self.names = Some(named.filter_map(|n| clean_name(n).ok()).collect());
        Ok(())
    }

    fn found(&self) -> bool {
        self.names.is_some()
    }

    fn settled(&self) -> bool {
        self.names.is_some()
    }

    fn needed(&self) -> Vec<String> {
        let names = self.names.iter().flatten().cloned();
        std::iter::once("manifest.json".to_string())
            .chain(names)
            .collect()
    }

    fn needed_count(&self) -> usize {
        1 + self.names.as_ref().map_or(0, HashSet::len)
    }
}

/// Every image of one or more docker archives, by name and by manifest digest.
pub(crate) struct DockerArchives {
    archives: Vec<TarFiles>,
    /// canonical reference → index into `manifests`
    names: HashMap<String, usize>,
    /// The names in archive order, for "push everything".
    ordered: Vec<Reference>,
    manifests: Vec<RawManifest>,
    /// blob digest → (archive, entry name)
    blobs: HashMap<String, (usize, String)>,
}

impl DockerArchives {
    /// Opens `path`: an archive, or a directory whose files are archives. Archives are read in
    /// parallel (each one is hashed whole, and unpacked first when compressed).
    pub(crate) fn open(path: &Path) -> anyhow::Result<DockerArchives> {
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .filter(|p| {
                    !p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no archives", path.display());
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(files.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let opened: Vec<(usize, anyhow::Result<TarFiles>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(file) = files.get(i) else { break };
                            let needs = &mut ArchiveNeeds::default();
                            out.push((i, TarFiles::open(file, true, needs)));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut opened = opened;
        opened.sort_by_key(|(i, _)| *i);
        if opened.len() != files.len() {
            bail!("reading the archives in {} failed", path.display());
        }
        let mut out = DockerArchives {
            archives: Vec::new(),
            names: HashMap::new(),
            ordered: Vec::new(),
            manifests: Vec::new(),
            blobs: HashMap::new(),
        };
        for (_, files) in opened {
            out.add(files?)?;
        }
        if out.ordered.is_empty() {
            bail!(
                "{}: no image in it has a name (RepoTags in manifest.json); save images by name, e.g. `docker save nginx:1.27`",
                path.display()
            );
        }
        Ok(out)
    }
}

impl DockerArchives {
    /// Reads one archive's `manifest.json` and builds a manifest per image.
    fn add(&mut self, files: TarFiles) -> anyhow::Result<()> {
        let archive = self.archives.len();
        let where_ = files.path().display().to_string();
        let text = files
            .read("manifest.json", MANIFEST_JSON_LIMIT)?
            .with_context(|| {
                format!("{where_} is not a docker archive (no manifest.json in it)")
            })?;
        let images: Vec<ArchivedImage> = serde_json::from_slice(&text)
            .with_context(|| format!("{where_}: manifest.json is not a docker archive manifest"))?;
        for (n, image) in images.iter().enumerate() {
            let at = |field: &str| format!("{where_}: manifest.json [{n}].{field}");
            let config = self.blob(&files, archive, &image.config, &at("Config"))?;
            let mut layers = Vec::new();
            for (l, layer) in image.layers.iter().enumerate() {
                let mut d = self.blob(&files, archive, layer, &at(&format!("Layers[{l}]")))?;
                d.media_type = match Compression::sniff(&files.head(layer, 6)?) {
                    Compression::Gzip => OCI_LAYER_GZIP,
                    Compression::Zstd => OCI_LAYER_ZSTD,
                    Compression::None => OCI_LAYER,
                    other => bail!(
                        "{}: layer {layer} is {other:?}-compressed, which registries do not serve",
                        at(&format!("Layers[{l}]"))
                    ),
                }
                .to_string();
                layers.push(d);
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: OCI_MANIFEST,
                config: Descriptor {
                    media_type: OCI_CONFIG.into(),
                    ..config
                },
                layers,
            };
            let bytes = serde_json::to_vec(&manifest)?;
            let index = self.manifests.len();
            self.manifests.push(RawManifest {
                digest: crate::oci::Digest::sha256(&bytes),
                bytes: Bytes::from(bytes),
                media_type: OCI_MANIFEST.to_string(),
            });
            for tag in image.repo_tags.iter().flatten() {
                let name = Reference::parse(tag).map_err(|e| {
                    anyhow::anyhow!("{}: {tag:?} is not an image name: {e}", at("RepoTags"))
                })?;
                if self
                    .names
                    .insert(canonical_reference(&name), index)
                    .is_none()
                {
                    self.ordered.push(name);
                }
            }
        }
        self.archives.push(files);
        Ok(())
    }

    /// The descriptor of file `name` of an archive, remembered as a blob by its digest.
    fn blob(
        &mut self,
        files: &TarFiles,
        archive: usize,
        name: &str,
        at: &str,
    ) -> anyhow::Result<Descriptor> {
        let (Some(size), Some(digest)) = (files.size(name), files.digest(name)) else {
            bail!("{at}: {name:?} is not in the archive; it is truncated or not a docker archive");
        };
        self.blobs
            .entry(digest.to_string())
            .or_insert_with(|| (archive, name.to_string()));
        Ok(Descriptor {
            media_type: String::new(),
            digest: digest.clone(),
            size,
            platform: None,
            annotations: Default::default(),
        })
    }

    /// Every named image, in archive order.
    pub(crate) fn image_names(&self) -> Vec<Reference> {
        self.ordered.clone()
    }
}

impl ImageSource for Arc<DockerArchives> {
    async fn manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        if let Some(digest) = image.digest() {
            return Ok(self.manifests.iter().find(|m| m.digest == digest).cloned());
        }
        Ok(self
            .names
            .get(&canonical_reference(image))
            .map(|&i| self.manifests[i].clone()))
    }

    async fn blob(&self, _image: &Reference, digest: &str) -> anyhow::Result<ByteStream> {
        let (archive, name) = self
            .blobs
            .get(digest)
            .with_context(|| format!("no archive holds blob {digest}"))?;
        self.archives[*archive].stream(name).await
    }
}
