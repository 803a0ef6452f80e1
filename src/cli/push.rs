//! `push`: copy into the mirror the images it lacks.
//!
//! This release copies from the images' own registries (`--from registry`, the default), with
//! `--source-mirror` remaps; bundles (OCI layouts, docker archives) come with their ends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::images::{ImageListArgs, collect};
use super::registry_args::RegistryArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::lock::LockFile;
use crate::mirror::{Collisions, canonical_reference};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::transfer::ImageSink as _;
use crate::transfer::copy::{Copier, Outcome};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where the images come from: `registry` (their own registries)
    #[arg(long, default_value = "registry", value_name = "registry")]
    pub from: String,
    #[command(flatten)]
    pub images: ImageListArgs,
    /// Fetch a source registry's images from elsewhere, e.g. docker.io=https://proxy.corp:5000
    /// (repeatable; http:// means plain HTTP)
    #[arg(long = "source-mirror", value_name = "HOST=URL")]
    pub source_mirrors: Vec<String>,
    /// Print what would be copied, copy nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// One image to copy.
struct Job {
    source: Reference,
    /// Where the bytes are fetched from (the source, or its `--source-mirror`).
    fetch: Reference,
    mirror: Reference,
}

pub fn run(args: &PushArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    if args.from != "registry" {
        anyhow::bail!(
            "--from {}: this version pushes from the images' own registries only (--from registry); OCI layouts and docker archives come in a later release",
            args.from
        );
    }
    if args.images.is_empty() {
        anyhow::bail!("name the images: -f FILE|DIR|- (manifests) or --lock FILE");
    }
    let settings = settings(&args.mirror, None, config)?;
    let naming = settings.naming.as_ref().context(
        "push needs the mirror registry: pass --registry HOST[:PORT][/PREFIX], set AIRGAP_REGISTRY, or set registry in the config file",
    )?;
    let mut sink_options = args
        .registry
        .options(Some(naming.mirror().host()), &settings.registries)?;
    let mut source_options = sink_options.clone();
    source_options.login = None;
    // A client certificate for the mirror is not offered to source registries.
    if let Some(h) = source_options.hosts.get_mut(naming.mirror().host()) {
        h.cert_file = None;
        h.key_file = None;
    }
    let remaps = parse_source_mirrors(&args.source_mirrors)?;
    for (host, insecure) in remaps.values() {
        source_options
            .hosts
            .entry(host.clone())
            .or_default()
            .insecure |= *insecure;
    }
    sink_options.concurrency = sink_options.concurrency.max(1);

    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    let mut collisions = Collisions::new();
    let mut sources = Vec::new();
    if !args.images.files.is_empty() {
        for (_, uses, _) in collect(
            &args.images.files,
            args.images.recursive,
            &settings.rules,
            false,
        )? {
            sources.extend(uses.into_iter().map(|u| u.reference));
        }
    }
    if let Some(lock) = &args.images.lock {
        sources.extend(LockFile::load(lock)?.into_iter().map(|l| l.source));
    }
    for source in sources {
        if naming.mirror().holds(&source) {
            continue;
        }
        let mirror = naming.map(&source)?;
        collisions.insert(&source, &mirror)?;
        let fetch = match remaps.get(source.domain()) {
            Some((host, _)) => source.with_name(host, source.path())?,
            None => source.clone(),
        };
        jobs.entry(canonical_reference(&source)).or_insert(Job {
            source,
            fetch,
            mirror,
        });
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let source = Arc::new(Registry::new(source_options));
    let sink = Arc::new(Registry::new(sink_options));
    let started = Instant::now();
    let copier = Arc::new(Copier::new(source, sink));
    let jobs: Vec<Job> = jobs.into_values().collect();
    let results = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, job) in jobs.iter().enumerate() {
            let copier = copier.clone();
            let (fetch, mirror, dry) = (job.fetch.clone(), job.mirror.clone(), args.dry_run);
            tasks.spawn(async move {
                let result = if dry {
                    copier.sink.manifest_digest(&mirror).await.map(|d| match d {
                        Some(d) => (Outcome::Present, d),
                        None => (Outcome::Copied, String::new()),
                    })
                } else {
                    copier.copy(&fetch, &mirror).await
                };
                (i, result)
            });
        }
        let mut results: Vec<Option<anyhow::Result<(Outcome, String)>>> =
            (0..jobs.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (i, r) = joined.context("a copy task failed")?;
            results[i] = Some(r);
        }
        anyhow::Ok(results.into_iter().flatten().collect::<Vec<_>>())
    })?;

    let (mut copied, mut present, mut failed) = (0, 0, 0);
    for (job, result) in jobs.iter().zip(&results) {
        let (src, dst) = (job.source.familiar(), job.mirror.to_string());
        match result {
            Ok((Outcome::Copied, _)) if args.dry_run => {
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
        if args.dry_run { "to copy" } else { "copied" },
        s.blobs_uploaded.load(Ordering::Relaxed),
        s.blobs_mounted.load(Ordering::Relaxed),
        s.blobs_skipped.load(Ordering::Relaxed),
        bytes as f64 / secs.max(1e-9) / 1e6,
    );
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}

/// `HOST=URL` pairs → source host → (fetch host, plain HTTP?).
fn parse_source_mirrors(values: &[String]) -> anyhow::Result<BTreeMap<String, (String, bool)>> {
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
    Ok(out)
}
