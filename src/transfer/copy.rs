//! The copier: one image from a source to a sink, moving only what the sink lacks.
//!
//! Order is the safety: blobs, then each child manifest, then the index, then the tag. An
//! interrupted copy leaves blobs (harmless, and skipped by the rerun) but never a manifest whose
//! parts are missing, so a rerun finishes the job and moves nothing twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use tokio::sync::Semaphore;

use super::verify::verified;
use super::{ImageSink, ImageSource, RawManifest, beside};
use crate::oci::{Descriptor, Index, Parsed, Platform};
use crate::reference::Reference;
use crate::registry::RegistryError;

/// Attempts per blob: a dropped connection mid-layer costs that layer, not the run.
const BLOB_ATTEMPTS: u32 = 3;

/// What a copy did, summed over every image.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub blobs_uploaded: AtomicU64,
    pub blobs_mounted: AtomicU64,
    pub blobs_skipped: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    /// Blobs a killed run had begun that were continued, and the bytes it had kept of them
    /// (not moved again; not in `bytes_uploaded`).
    pub blobs_continued: AtomicU64,
    pub bytes_kept: AtomicU64,
}

/// What one image's copy came to.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    pub outcome: Outcome,
    /// The digest of what the sink now holds under the name.
    /// `None` only for a dry run's image to copy.
    pub digest: Option<crate::oci::Digest>,
    /// The platforms of an index's children (after filtering), `os/arch[/variant]`.
    pub platforms: Vec<String>,
    /// Set when `--platform` dropped children: how many the source index had.
    pub filtered_from: Option<usize>,
}

/// What a progress display is told.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Progress {
    /// A blob of this many bytes starts moving (again, after a failed attempt).
    BlobStarted(u64),
    Bytes(u64),
}

/// Whether an image moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Copied,
    /// The sink already had the tag at the source's digest.
    Present,
}

pub(crate) struct Copier<S, D> {
    pub source: S,
    pub sink: D,
    pub stats: Stats,
    /// digest → a sink repository known to hold it, for mounting instead of uploading.
    ///
    /// Set once a blob is in the sink; waited on while its one upload is under way.
    holders: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>,
    /// Blobs in flight at once, across all images (open files, sockets, buffers).
    blob_permits: Semaphore,
    /// `--platform`: keep only these children of an index. Empty: copy indexes whole.
    platforms: Vec<Platform>,
    /// Told of every blob started and every chunk copied (a progress bar).
    progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
}

/// The manifest or index `manifest` of `from`, read; an error naming both when it is not one.
fn parse(from: &Reference, manifest: &RawManifest) -> anyhow::Result<Parsed> {
    manifest.parse().with_context(|| {
        format!(
            "the manifest {} of {} is not valid",
            manifest.digest,
            from.familiar()
        )
    })
}

impl<S: ImageSource, D: ImageSink> Copier<S, D> {
    /// A copier moving at most `concurrency` blobs at a time.
    pub(crate) fn new(source: S, sink: D, concurrency: usize) -> Copier<S, D> {
        Copier {
            source,
            sink,
            stats: Stats::default(),
            holders: Mutex::new(HashMap::new()),
            blob_permits: Semaphore::new(concurrency.max(1)),
            platforms: Vec::new(),
            progress: None,
        }
    }

    /// Keeps only these platforms of every index (`--platform`).
    pub(crate) fn with_platforms(mut self, platforms: Vec<Platform>) -> Self {
        self.platforms = platforms;
        self
    }

    /// Blobs the sink holds already in other repositories (digest → repository), to be mounted
    /// from there into each image that names them: a delta bundle's left-out blobs.
    pub(crate) fn with_holders(self, holders: HashMap<String, String>) -> Self {
        {
            let mut known = self.holders.lock().unwrap_or_else(|p| p.into_inner());
            for (digest, repo) in holders {
                known.insert(
                    digest,
                    Arc::new(tokio::sync::OnceCell::new_with(Some(repo))),
                );
            }
        }
        self
    }

    /// Calls `progress` as blobs start and their bytes pass.
    pub(crate) fn with_progress(mut self, progress: Arc<dyn Fn(Progress) + Send + Sync>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Copies `from` (in the source) to `to` (in the sink): the index whole, or filtered to
    /// the wanted platforms.
    pub(crate) async fn copy(&self, from: &Reference, to: &Reference) -> anyhow::Result<Copied> {
        let source = self
            .source
            .manifest(from)
            .await?
            .with_context(|| format!("the source has no image {}", from.familiar()))?;
        self.copy_manifest(from, to, source).await
    }

    /// Copies the manifest `from` names to `to` as it is (never filtered by platform: a
    /// signature names what it signs byte for byte): `None` when the source has none, `Err`
    /// with the sink's digest when the sink holds another manifest under `to`, which is kept
    /// (a tag-scheme artifact in a mirror may hold signatures made there).
    pub(crate) async fn copy_if_found(
        &self,
        from: &Reference,
        to: &Reference,
    ) -> anyhow::Result<Option<Result<Copied, crate::oci::Digest>>> {
        let Some(manifest) = self.source.manifest(from).await? else {
            return Ok(None);
        };
        let outcome = match self.sink.manifest_digest(to).await? {
            Some(held) if held == manifest.digest => Outcome::Present,
            Some(held) => return Ok(Some(Err(held))),
            None => {
                self.copy_parts(from, to, &manifest).await?;
                self.sink
                    .put_image(to, &manifest)
                    .await
                    .with_context(|| format!("storing the manifest of {}", to.familiar()))?;
                Outcome::Copied
            }
        };
        Ok(Some(Ok(Copied {
            outcome,
            digest: Some(manifest.digest),
            platforms: Vec::new(),
            filtered_from: None,
        })))
    }

    /// Copies the referrer `manifest`, read from `from` (by digest), to `to`: its parts, then
    /// the manifest itself, never filtered by platform. Whether the sink lists it among its
    /// subject's referrers itself ([`ImageSink::put_referrer`]).
    pub(crate) async fn copy_referrer(
        &self,
        from: &Reference,
        to: &Reference,
        manifest: &RawManifest,
    ) -> anyhow::Result<bool> {
        self.copy_parts(from, to, manifest).await?;
        self.sink
            .put_referrer(to, manifest)
            .await
            .with_context(|| format!("storing the referrer {}", to.familiar()))
    }

    async fn copy_manifest(
        &self,
        from: &Reference,
        to: &Reference,
        source: RawManifest,
    ) -> anyhow::Result<Copied> {
        let (manifest, platforms, filtered_from) = self.filter(from, source)?;
        let done = |outcome| Copied {
            outcome,
            digest: Some(manifest.digest.clone()),
            platforms: platforms.clone(),
            filtered_from,
        };
        if self.sink.manifest_digest(to).await?.as_deref() == Some(manifest.digest.as_str()) {
            return Ok(done(Outcome::Present));
        }
        self.copy_parts(from, to, &manifest).await?;
        self.sink
            .put_image(to, &manifest)
            .await
            .with_context(|| format!("storing the manifest of {}", to.familiar()))?;
        Ok(done(Outcome::Copied))
    }

    /// Applies `--platform` to an index: a new index of the matching children. The children
    /// themselves keep their bytes and digests; only the index is new.
    fn filter(
        &self,
        from: &Reference,
        manifest: RawManifest,
    ) -> anyhow::Result<(RawManifest, Vec<String>, Option<usize>)> {
        let Parsed::Index(Index {
            manifests: children,
            ..
        }) = parse(from, &manifest)?
        else {
            return Ok((manifest, Vec::new(), None));
        };
        let platform_of = |d: &Descriptor| d.platform.clone();
        let all: Vec<String> = children
            .iter()
            .filter_map(platform_of)
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect();
        if self.platforms.is_empty() {
            return Ok((manifest, all, None));
        }
        let keep: Vec<bool> = children
            .iter()
            .map(|d| platform_of(d).is_some_and(|p| self.platforms.iter().any(|w| w.served_by(&p))))
            .collect();
        if keep.iter().all(|k| *k) {
            return Ok((manifest, all, None));
        }
        let wanted: Vec<String> = self.platforms.iter().map(ToString::to_string).collect();
        if let Some(digest) = from.digest() {
            bail!(
                "{} pins the index {digest} by digest; keeping only {} would change that digest, so the cluster could not find it. Drop --platform, or name the image by tag",
                from.familiar(),
                wanted.join(", ")
            );
        }
        if !keep.iter().any(|k| *k) {
            bail!(
                "{} has none of the platforms {} (it has {})",
                from.familiar(),
                wanted.join(", "),
                all.join(", ")
            );
        }
        let mut value: serde_json::Value = serde_json::from_slice(&manifest.bytes)?;
        let list = value
            .get_mut("manifests")
            .and_then(|m| m.as_array_mut())
            .context("an index without a manifests list")?;
        let total = list.len();
        let mut flags = keep.iter();
        list.retain(|_| *flags.next().unwrap_or(&false));
        let kept: Vec<String> = children
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .filter_map(|(d, _)| platform_of(d))
            .map(|p| p.to_string())
            .collect();
        let bytes = serde_json::to_vec(&value)?;
        Ok((
            RawManifest {
                digest: crate::oci::Digest::sha256(&bytes),
                bytes: Bytes::from(bytes),
                media_type: manifest.media_type,
            },
            kept,
            Some(total),
        ))
    }

    /// Everything `manifest` names, children before their parent.
    async fn copy_parts(
        &self,
        from: &Reference,
        to: &Reference,
        manifest: &RawManifest,
    ) -> anyhow::Result<()> {
        let parsed = parse(from, manifest)?;
        if let Parsed::Index(Index {
            manifests: children,
            ..
        }) = parsed
        {
            for child in children {
                let child_from = beside(from, None, Some(&child.digest))?;
                let child_to = beside(to, None, Some(&child.digest))?;
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
        let blobs: Vec<Descriptor> = parsed
            .children()
            .into_iter()
            .map(|(d, _)| d.clone())
            .collect();
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
        let repo = to.path();
        if self.sink.has_blob(to, &blob.digest).await? {
            self.stats.blobs_skipped.fetch_add(1, Ordering::Relaxed);
            // Known now as a holder for mounts, unless an upload of it is under way.
            let cell = self.holder_cell(&blob.digest);
            let _ = cell.set(repo.to_string());
            return Ok(());
        }
        // One upload per digest per run: images sharing a layer wait for whichever started it,
        // then mount it from there.
        let cell = self.holder_cell(&blob.digest);
        let mut uploaded_here = false;
        let holder = cell
            .get_or_try_init(|| async {
                self.upload_blob(from, to, blob).await?;
                uploaded_here = true;
                anyhow::Ok(repo.to_string())
            })
            .await?;
        if uploaded_here || holder == repo {
            return Ok(());
        }
        if self.sink.mount_blob(to, &blob.digest, holder).await? {
            self.stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
        } else if self.sink.has_blob(to, &blob.digest).await? {
            // One store for all images (a layout): the other upload put it here too.
            self.stats.blobs_skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.upload_blob(from, to, blob).await?;
        }
        Ok(())
    }

    fn holder_cell(&self, digest: &str) -> Arc<tokio::sync::OnceCell<String>> {
        self.holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(digest.to_string())
            .or_default()
            .clone()
    }

    /// Streams one blob from the source into `to`'s repository, verified, retried on
    /// transport failures.
    async fn upload_blob(
        &self,
        from: &Reference,
        to: &Reference,
        blob: &Descriptor,
    ) -> anyhow::Result<()> {
        let what = format!("blob {} of {}", blob.digest, from.familiar());
        let _permit = self.blob_permits.acquire().await?;
        let mut attempt = 1;
        // What a killed run left of the blob is tried once: if the whole does not verify, the
        // kept part was the fault as likely as the rest, so the next attempt starts over.
        let mut continue_kept = true;
        let kept = loop {
            let verdict = Arc::new(OnceLock::new());
            let mut kept_len = None;
            let result = async {
                let kept = match continue_kept {
                    true => self.sink.kept(&blob.digest).await?,
                    false => None,
                };
                let body = match kept {
                    Some(k) if k.len == blob.size => {
                        kept_len = Some(k.len);
                        k.bytes
                    }
                    Some(k) if k.len < blob.size => {
                        match self.source.blob_from(from, &blob.digest, k.len).await? {
                            Some(rest) => {
                                kept_len = Some(k.len);
                                Box::pin(futures_util::StreamExt::chain(k.bytes, rest))
                            }
                            None => self.source.blob(from, &blob.digest).await?,
                        }
                    }
                    _ => self.source.blob(from, &blob.digest).await?,
                };
                let body = verified(
                    body,
                    &blob.digest,
                    blob.size,
                    what.clone(),
                    Some(verdict.clone()),
                );
                let body =
                    match &self.progress {
                        Some(progress) => {
                            progress(Progress::BlobStarted(blob.size));
                            let progress = progress.clone();
                            Box::pin(body.inspect_ok(move |chunk| {
                                progress(Progress::Bytes(chunk.len() as u64))
                            }))
                        }
                        None => body,
                    };
                match kept_len {
                    Some(kept) => {
                        self.sink
                            .put_blob_after(to, &blob.digest, blob.size, kept, body)
                            .await
                    }
                    None => self.sink.put_blob(to, &blob.digest, blob.size, body).await,
                }
            }
            .await;
            match result {
                Ok(()) => break kept_len.unwrap_or(0),
                Err(_) if kept_len.is_some() => continue_kept = false,
                // Wrong content is wrong on every attempt: say so plainly, once.
                Err(_) if verdict.get().is_some() => {
                    bail!(
                        "copying {}; nothing of this image was stored under its name",
                        verdict.get().map(String::as_str).unwrap_or_default()
                    )
                }
                // A refusal (denied, credentials) is given again to every attempt.
                Err(e) if !worth_retrying(&e) => return Err(e.context(format!("copying {what}"))),
                Err(e) if attempt >= BLOB_ATTEMPTS => {
                    return Err(e.context(format!("copying {what} ({attempt} attempts)")));
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    attempt += 1;
                }
            }
        };
        self.stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_uploaded
            .fetch_add(blob.size - kept, Ordering::Relaxed);
        if kept > 0 {
            self.stats.blobs_continued.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes_kept.fetch_add(kept, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Whether another attempt at a blob may succeed: the registry's own verdict when it gave one
/// ([`RegistryError::is_transient`]); a read or write error of a local end may pass.
fn worth_retrying(e: &anyhow::Error) -> bool {
    e.downcast_ref::<RegistryError>()
        .is_none_or(RegistryError::is_transient)
}
