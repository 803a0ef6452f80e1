//! The copier: one image from a source to a sink, moving only what the sink lacks.
//!
//! Order is the safety: blobs, then each child manifest, then the index, then the tag. An
//! interrupted copy leaves blobs (harmless, and skipped by the rerun) but never a manifest whose
//! parts are missing, so a rerun finishes the job and moves nothing twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde::Deserialize;

use super::verify::verified;
use super::{ImageSink, ImageSource, RawManifest};
use crate::reference::Reference;

/// What a copy did, summed over every image.
#[derive(Debug, Default)]
pub struct Stats {
    pub blobs_uploaded: AtomicU64,
    pub blobs_mounted: AtomicU64,
    pub blobs_skipped: AtomicU64,
    pub bytes_uploaded: AtomicU64,
}

/// Whether an image moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Copied,
    /// The sink already had the tag at the source's digest.
    Present,
}

pub struct Copier<S, D> {
    pub source: S,
    pub sink: D,
    pub stats: Stats,
    /// digest → a sink repository known to hold it, for mounting instead of uploading.
    holders: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    size: u64,
}

/// The parts of a manifest or index that name other content.
#[derive(Deserialize)]
struct Shape {
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl<S: ImageSource, D: ImageSink> Copier<S, D> {
    pub fn new(source: S, sink: D) -> Copier<S, D> {
        Copier {
            source,
            sink,
            stats: Stats::default(),
            holders: Mutex::new(HashMap::new()),
        }
    }

    /// Copies `from` (in the source) to `to` (in the sink), the index whole.
    pub async fn copy(
        &self,
        from: &Reference,
        to: &Reference,
    ) -> anyhow::Result<(Outcome, String)> {
        let manifest = self
            .source
            .manifest(from)
            .await?
            .with_context(|| format!("the source has no image {}", from.familiar()))?;
        if self.sink.manifest_digest(to).await?.as_deref() == Some(manifest.digest.as_str()) {
            return Ok((Outcome::Present, manifest.digest));
        }
        self.copy_parts(from, to, &manifest).await?;
        self.sink
            .put_image(to, &manifest)
            .await
            .with_context(|| format!("storing the manifest of {}", to.familiar()))?;
        Ok((Outcome::Copied, manifest.digest))
    }

    /// Everything `manifest` names, children before their parent.
    async fn copy_parts(
        &self,
        from: &Reference,
        to: &Reference,
        manifest: &RawManifest,
    ) -> anyhow::Result<()> {
        let shape: Shape = serde_json::from_slice(&manifest.bytes).with_context(|| {
            format!(
                "the manifest {} of {} is not valid",
                manifest.digest,
                from.familiar()
            )
        })?;
        if let Some(children) = shape.manifests {
            for child in children {
                let child_from = by_digest(from, &child.digest)?;
                let child_to = by_digest(to, &child.digest)?;
                if self.sink.manifest_digest(&child_to).await?.is_some() {
                    continue;
                }
                let m = self.source.manifest(&child_from).await?.with_context(|| {
                    format!(
                        "the source lacks {} that the index of {} lists",
                        child.digest,
                        from.familiar()
                    )
                })?;
                Box::pin(self.copy_parts(&child_from, &child_to, &m)).await?;
                self.sink.put_manifest(&child_to, &m).await?;
            }
            return Ok(());
        }
        let blobs: Vec<Descriptor> = shape.config.into_iter().chain(shape.layers).collect();
        let copies = blobs.iter().map(|b| self.copy_blob(from, to, b));
        for result in futures_util::future::join_all(copies).await {
            result?;
        }
        Ok(())
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        blob: &Descriptor,
    ) -> anyhow::Result<()> {
        let repo = to.path().to_string();
        let remember = |holders: &Mutex<HashMap<String, String>>| {
            holders
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(blob.digest.clone(), repo.clone());
        };
        if self.sink.has_blob(to, &blob.digest).await? {
            self.stats.blobs_skipped.fetch_add(1, Ordering::Relaxed);
            remember(&self.holders);
            return Ok(());
        }
        let holder = self
            .holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&blob.digest)
            .filter(|r| **r != repo)
            .cloned();
        if let Some(other) = holder
            && self.sink.mount_blob(to, &blob.digest, &other).await?
        {
            self.stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
            remember(&self.holders);
            return Ok(());
        }
        let what = format!("blob {} of {}", blob.digest, from.familiar());
        let body = self.source.blob(from, &blob.digest).await?;
        self.sink
            .put_blob(
                to,
                &blob.digest,
                blob.size,
                verified(body, &blob.digest, blob.size, what.clone()),
            )
            .await
            .with_context(|| format!("copying {what}"))?;
        self.stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_uploaded
            .fetch_add(blob.size, Ordering::Relaxed);
        remember(&self.holders);
        Ok(())
    }
}

fn by_digest(image: &Reference, digest: &str) -> anyhow::Result<Reference> {
    Reference::parse(&format!("{}@{digest}", image.name())).with_context(|| {
        format!(
            "{digest} in the index of {} is not a digest",
            image.familiar()
        )
    })
}
