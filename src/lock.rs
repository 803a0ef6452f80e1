//! The images lock file (`images.lock.yaml`): which images a release needs, pinned to digests.
//!
//! `save` writes it beside the bundle; `check --lock` verifies the mirror against it, so that a
//! tag moved in the mirror is caught as a mismatch, not discovered in a running Pod.
//!
//! ```yaml
//! apiVersion: kubectl-airgap/v1
//! kind: ImageLock
//! images:
//!   - source: quay.io/jetstack/cert-manager-controller:v1.16.2
//!     digest: sha256:…
//!     platforms: [linux/amd64, linux/arm64]
//! ```

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::oci::Digest;
use crate::reference::Reference;

pub(crate) const API_VERSION: &str = "kubectl-airgap/v1";
pub(crate) const KIND: &str = "ImageLock";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LockFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub images: Vec<LockedImage>,
    /// The charts the bundle carries, as Helm OCI artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<LockedChart>,
    /// Set in a delta bundle's lock (`save --have`): the images whose blobs it leaves out, which
    /// the mirror must hold before it is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<LockBase>,
    /// What the bundle carries beside its images (signatures, attestations, SBOMs, referrers):
    /// a list of its own, so that nothing reading `images` takes one for an image a chart runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<LockedArtifact>,
}

/// One artifact a bundle carries for an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LockedArtifact {
    /// Its name in the bundle: `REPO:sha256-<hex>.sig` (`.att`, `.sbom`), or `REPO@DIGEST` for
    /// a referrer; `push --from` names it in the mirror as the image's repository.
    pub source: String,
    pub digest: String,
    /// `signature`, `attestation`, `sbom` or `referrer`.
    pub kind: String,
    /// The image it belongs to, as `images[].source` names it.
    pub image: String,
    /// A referrer's `artifactType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// What a delta bundle was made against: the `--have` lock file, by digest, and its images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LockBase {
    /// The sha256 of the `--have` file's bytes: two deltas of one base say the same here.
    pub lock: String,
    /// The base images, by source name and digest.
    pub images: Vec<BaseImage>,
}

impl LockBase {
    /// The base images, read and checked; errors name `path` and the entry.
    pub(crate) fn images(&self, path: &Path) -> anyhow::Result<Vec<(Reference, Digest)>> {
        self.images
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let at = format!("lock file {}: base.images[{i}]", path.display());
                let source = Reference::parse(&b.source)
                    .with_context(|| format!("{at}.source {:?}", b.source))?;
                Ok((source, sha256_at(&at, &b.digest)?))
            })
            .collect()
    }
}

/// One image of a delta's base.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BaseImage {
    pub source: String,
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LockedChart {
    pub(crate) name: String,
    pub(crate) version: String,
    /// The artifact's manifest digest (`helm pull` of it gives the packaged chart its layer
    /// names).
    pub(crate) digest: String,
    /// The name it has in the bundle: its own OCI reference, or one under
    /// [`crate::mirror::LOCAL_CHARTS`]; `push` maps it as an image's.
    pub(crate) reference: String,
    /// How `--chart` named it: a directory, a file, `oci://…`, or `NAME` with its repository.
    pub(crate) source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LockedImage {
    /// The reference as the manifests name it.
    pub source: String,
    /// The manifest digest the source resolved to (an index for multi-platform images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Where the image lands in the mirror, when the mirror was known at `save` time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Set for a name an operator asks of a mirror only (`crate::manifest::Alias`): the image,
    /// as its source names it, that this name is a copy of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<String>,
}

/// A lock entry, read and checked.
#[derive(Debug, Clone)]
pub(crate) struct Locked {
    pub source: Reference,
    pub digest: Option<Digest>,
    /// For a name only a mirror holds: the image it is a copy of.
    pub copy_of: Option<Reference>,
}

impl LockFile {
    pub(crate) fn new(images: Vec<LockedImage>, charts: Vec<LockedChart>) -> LockFile {
        LockFile {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            images,
            charts,
            base: None,
            artifacts: Vec::new(),
        }
    }

    /// Reads a lock file, checking every entry; errors name the file and the entry. Charts
    /// come after the images, by their bundle names: a chart is looked for, copied and checked
    /// as an image is.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Vec<Locked>> {
        let file = LockFile::read(path)?;
        let charts = file.charts.iter().enumerate().map(|(i, c)| {
            let at = format!("lock file {}: charts[{i}]", path.display());
            Ok(Locked {
                source: Reference::parse(&c.reference)
                    .with_context(|| format!("{at}.reference {:?}", c.reference))?,
                digest: Some(sha256_at(&at, &c.digest)?),
                copy_of: None,
            })
        });
        file.locked_images(path)?
            .into_iter()
            .map(Ok)
            .chain(charts)
            .collect()
    }

    /// The `images:` entries, checked; errors name `path` and the entry.
    pub(crate) fn locked_images(&self, path: &Path) -> anyhow::Result<Vec<Locked>> {
        self.images
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let at = || format!("lock file {}: images[{i}]", path.display());
                let source = Reference::parse(&entry.source)
                    .with_context(|| format!("{}.source {:?}", at(), entry.source))?;
                // sha256 only: the digest also names the blob in a bundle (`blobs/sha256/HEX`).
                let digest = match &entry.digest {
                    Some(d) => Some(sha256_at(&at(), d)?),
                    None => None,
                };
                let copy_of = match &entry.copy_of {
                    Some(c) => Some(
                        Reference::parse(c).with_context(|| format!("{}.copyOf {c:?}", at()))?,
                    ),
                    None => None,
                };
                Ok(Locked {
                    source,
                    digest,
                    copy_of,
                })
            })
            .collect()
    }

    /// Reads a lock file as written, its header checked but not its entries.
    pub(crate) fn read(path: &Path) -> anyhow::Result<LockFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading lock file {}", path.display()))?;
        LockFile::parse(&text, path)
    }

    /// [`LockFile::read`] of text already read (a bundle's lock, a `--have` file read once);
    /// `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> anyhow::Result<LockFile> {
        let file: LockFile = serde_norway::from_str(text).with_context(|| {
            format!(
                "lock file {} is not valid (expected apiVersion {API_VERSION}, kind {KIND}, images: [{{source, digest}}])",
                path.display()
            )
        })?;
        if file.api_version != API_VERSION || file.kind != KIND {
            anyhow::bail!(
                "lock file {}: apiVersion {:?} kind {:?} is not a kubectl-airgap lock file (want {API_VERSION} {KIND})",
                path.display(),
                file.api_version,
                file.kind
            );
        }
        Ok(file)
    }

    pub(crate) fn to_yaml(&self) -> anyhow::Result<String> {
        Ok(serde_norway::to_string(self)?)
    }
}

/// The digest `d` of lock entry `at`: sha256 only, since it also names the blob in a bundle
/// (`blobs/sha256/HEX`).
fn sha256_at(at: &str, d: &str) -> anyhow::Result<Digest> {
    match Digest::parse(d) {
        Ok(digest) if digest.sha256_hex().is_some() => Ok(digest),
        _ => anyhow::bail!("{at}.digest {d:?} is not sha256:<64 hex digits>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.lock.yaml");
        let lock = LockFile::new(
            vec![LockedImage {
                source: "nginx:1.27".into(),
                digest: Some(format!("sha256:{}", "a".repeat(64))),
                media_type: None,
                platforms: vec!["linux/amd64".into()],
                mirror: None,
                copy_of: None,
            }],
            Vec::new(),
        );
        std::fs::write(&path, lock.to_yaml().unwrap()).unwrap();
        let read = LockFile::load(&path).unwrap();
        assert_eq!(read[0].source.docker_ref(), "docker.io/library/nginx:1.27");

        std::fs::write(
            &path,
            "apiVersion: kubectl-airgap/v1\nkind: ImageLock\nimages:\n- source: nginx\n  digest: sha256:abc\n",
        )
        .unwrap();
        let e = format!("{:#}", LockFile::load(&path).unwrap_err());
        assert!(e.contains("images[0].digest"), "{e}");
    }

    #[test]
    fn artifacts_are_kept_apart_from_images_and_older_locks_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.lock.yaml");
        let hex = "a".repeat(64);
        let mut lock = LockFile::new(
            vec![LockedImage {
                source: "quay.io/x/y:1".into(),
                digest: Some(format!("sha256:{hex}")),
                media_type: None,
                platforms: Vec::new(),
                mirror: None,
                copy_of: None,
            }],
            Vec::new(),
        );
        lock.artifacts.push(LockedArtifact {
            source: format!("quay.io/x/y:sha256-{hex}.sig"),
            digest: format!("sha256:{}", "b".repeat(64)),
            kind: "signature".into(),
            image: "quay.io/x/y:1".into(),
            artifact_type: None,
        });
        std::fs::write(&path, lock.to_yaml().unwrap()).unwrap();
        // What a command runs or copies as images: the image only.
        let images = LockFile::load(&path).unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].source.to_string(), "quay.io/x/y:1");
        assert_eq!(LockFile::read(&path).unwrap().artifacts, lock.artifacts);
        // A lock written before artifacts existed has none.
        std::fs::write(
            &path,
            format!("apiVersion: kubectl-airgap/v1\nkind: ImageLock\nimages:\n- source: nginx\n  digest: sha256:{hex}\n"),
        )
        .unwrap();
        assert!(LockFile::read(&path).unwrap().artifacts.is_empty());
        assert_eq!(LockFile::load(&path).unwrap().len(), 1);
    }
}
