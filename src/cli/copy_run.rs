//! What `push` and `save` share: reading the image list, `--source-mirror`, running copies
//! concurrently, and the report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;

use super::images::{ImageListArgs, collect};
use crate::lock::LockFile;
use crate::manifest::rules::RuleSet;
use crate::mirror::canonical_reference;
use crate::reference::Reference;
use crate::registry::RegistryOptions;
use crate::transfer::copy::{Copier, Outcome};
use crate::transfer::{ImageSink, ImageSource};

/// One image to copy.
pub struct Job {
    /// The reference the manifests name.
    pub source: Reference,
    /// Where its bytes are read (the source, or its `--source-mirror` stand-in).
    pub fetch: Reference,
    /// Where it is written.
    pub target: Reference,
}

/// What one copy came to: the outcome and digest, or why it failed.
pub type CopyResult = anyhow::Result<(Outcome, String)>;

/// The images that `-f` and `--lock` name, each once, in a stable order.
pub fn listed_images(list: &ImageListArgs, rules: &RuleSet) -> anyhow::Result<Vec<Reference>> {
    let mut out: BTreeMap<String, Reference> = BTreeMap::new();
    if !list.files.is_empty() {
        for (_, uses, _) in collect(&list.files, list.recursive, rules, false)? {
            for u in uses {
                out.entry(canonical_reference(&u.reference))
                    .or_insert(u.reference);
            }
        }
    }
    if let Some(lock) = &list.lock {
        for l in LockFile::load(lock)? {
            out.entry(canonical_reference(&l.source))
                .or_insert(l.source);
        }
    }
    Ok(out.into_values().collect())
}

/// `--source-mirror HOST=URL` values: source host → (host to fetch from, plain HTTP?).
pub struct SourceMirrors(BTreeMap<String, (String, bool)>);

impl SourceMirrors {
    pub fn parse(values: &[String]) -> anyhow::Result<SourceMirrors> {
        let mut out = BTreeMap::new();
        for v in values {
            let bad = || {
                anyhow::anyhow!(
                    "--source-mirror {v:?}: write HOST=URL, e.g. docker.io=https://proxy.corp:5000"
                )
            };
            let (host, url) = v.split_once('=').ok_or_else(bad)?;
            let (insecure, rest) = match url.split_once("://") {
                Some(("http", rest)) => (true, rest),
                Some(("https", rest)) => (false, rest),
                Some(_) => return Err(bad()),
                None => (false, url),
            };
            let target = rest.trim_end_matches('/');
            if host.is_empty() || target.is_empty() || target.contains('/') {
                return Err(bad());
            }
            let host = match host {
                "index.docker.io" | "registry-1.docker.io" => "docker.io",
                h => h,
            };
            out.insert(host.to_string(), (target.to_string(), insecure));
        }
        Ok(SourceMirrors(out))
    }

    /// Marks the stand-ins named with http:// as plain-HTTP hosts.
    pub fn apply(&self, options: &mut RegistryOptions) {
        for (host, insecure) in self.0.values() {
            options.hosts.entry(host.clone()).or_default().insecure |= *insecure;
        }
    }

    /// Where to read `source` from.
    pub fn fetch(&self, source: &Reference) -> anyhow::Result<Reference> {
        Ok(match self.0.get(source.domain()) {
            Some((host, _)) => source.with_name(host, source.path())?,
            None => source.clone(),
        })
    }
}

/// Runs every copy (or, for a dry run, looks each target up), concurrently.
pub fn run_copies<S: ImageSource, D: ImageSink>(
    copier: Arc<Copier<S, D>>,
    jobs: &[Job],
    dry_run: bool,
) -> anyhow::Result<Vec<CopyResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, job) in jobs.iter().enumerate() {
            let copier = copier.clone();
            let (fetch, target) = (job.fetch.clone(), job.target.clone());
            tasks.spawn(async move {
                let result = if dry_run {
                    copier.sink.manifest_digest(&target).await.map(|d| match d {
                        Some(d) => (Outcome::Present, d),
                        None => (Outcome::Copied, String::new()),
                    })
                } else {
                    copier.copy(&fetch, &target).await
                };
                (i, result)
            });
        }
        let mut results: Vec<Option<CopyResult>> = (0..jobs.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (i, r) = joined.context("a copy task failed")?;
            results[i] = Some(r);
        }
        anyhow::Ok(results.into_iter().flatten().collect())
    })
}

/// A line per image and a summary; returns the number of failures.
pub fn report<S, D>(
    copier: &Copier<S, D>,
    jobs: &[Job],
    results: &[CopyResult],
    dry_run: bool,
    started: Instant,
) -> usize {
    let (mut copied, mut present, mut failed) = (0, 0, 0);
    for (job, result) in jobs.iter().zip(results) {
        let (src, dst) = (job.source.familiar(), job.target.to_string());
        match result {
            Ok((Outcome::Copied, _)) if dry_run => {
                copied += 1;
                println!("would copy  {src} -> {dst}");
            }
            Ok((Outcome::Copied, digest)) => {
                copied += 1;
                println!("copied   {src} -> {dst} ({digest})");
            }
            Ok((Outcome::Present, _)) => {
                present += 1;
                println!("present  {dst}");
            }
            Err(e) => {
                failed += 1;
                println!("failed   {src}: {e:#}");
            }
        }
    }
    let s = &copier.stats;
    let secs = started.elapsed().as_secs_f64();
    let bytes = s.bytes_uploaded.load(Ordering::Relaxed);
    println!(
        "{} images: {copied} {}, {present} already present, {failed} failed; blobs: {} uploaded, {} mounted, {} already there; {bytes} bytes in {secs:.1} s ({:.1} MB/s)",
        jobs.len(),
        if dry_run { "to copy" } else { "copied" },
        s.blobs_uploaded.load(Ordering::Relaxed),
        s.blobs_mounted.load(Ordering::Relaxed),
        s.blobs_skipped.load(Ordering::Relaxed),
        bytes as f64 / secs.max(1e-9) / 1e6,
    );
    failed
}
