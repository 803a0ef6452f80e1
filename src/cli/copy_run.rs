//! What `push` and `save` share on the command line: the copy flags, running the planned jobs
//! ([`crate::transfer::plan`]) concurrently behind a progress bar, and the report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;

use super::images::ImageListArgs;
use crate::manifest::rules::RuleSet;
use crate::reference::Reference;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::oci::Platform;
use crate::oci::cosign::Kind;
use crate::transfer::copy::{Copied, Copier, Outcome, Progress};
use crate::transfer::plan::Job;
use crate::transfer::signatures::{self, Carried};
use crate::transfer::{ImageSink, ImageSource};

/// What one copy came to, or why it failed.
pub(super) type CopyResult = anyhow::Result<Copied>;

/// The images that `-f`, `--images-digests` and `--lock` name, each once, in a stable order.
pub(super) fn listed_images(
    list: &ImageListArgs,
    rules: &RuleSet,
    charts: &[crate::chart::Rendered],
) -> anyhow::Result<Vec<Reference>> {
    Ok(listed(list, rules, charts)?.references())
}

/// What `-f`, `--images-digests` and `--lock` name: the images, and the names operators ask
/// of the mirror for some of them ([`crate::inputs::ImageSet::aliases`]).
pub(super) fn listed(
    list: &ImageListArgs,
    rules: &RuleSet,
    charts: &[crate::chart::Rendered],
) -> anyhow::Result<crate::inputs::ImageSet> {
    let mut set = list.sources().read(rules, false)?;
    set.add_charts(charts, rules, false)?;
    Ok(set)
}

/// The options every copy takes, shared by `push` and `save`.
#[derive(Debug, clap::Args)]
pub(crate) struct CopyArgs {
    /// Fetch a source registry's images from elsewhere, e.g. docker.io=https://proxy.corp:5000
    /// (repeatable; http:// means plain HTTP)
    #[arg(long = "source-mirror", value_name = "HOST=URL")]
    pub source_mirrors: Vec<String>,
    /// Keep only these platforms of multi-platform images, OS/ARCH[/VARIANT] (repeatable).
    /// The filtered index gets a new digest; an image pinned by digest is refused
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    pub platforms: Vec<Platform>,
    /// Carry no signatures, attestations, SBOMs or referrers: by default each image's cosign
    /// tags (sha256-<digest>.sig, .att, .sbom) and OCI referrers travel with it
    #[arg(long = "no-signatures")]
    pub no_signatures: bool,
}

/// A copier with a progress bar on stderr when it is a terminal (hidden otherwise); it mounts
/// the blobs `holders` names (digest → repository) from there (a delta's base).
pub(super) fn copier<S: ImageSource, D: ImageSink>(
    source: S,
    sink: D,
    concurrency: usize,
    platforms: Vec<Platform>,
    holders: HashMap<String, String>,
) -> (Arc<Copier<S, D>>, ProgressBar) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}] {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let shown = bar.clone();
    let copier = Copier::new(source, sink, concurrency)
        .with_platforms(platforms)
        .with_holders(holders)
        .with_progress(Arc::new(move |p| match p {
            Progress::BlobStarted(size) => shown.inc_length(size),
            Progress::Bytes(n) => shown.inc(n),
        }));
    (Arc::new(copier), bar)
}

/// Runs every copy (or, for a dry run, looks each target up), concurrently, printing a line
/// per image as it finishes.
pub(super) fn run_copies<S: ImageSource, D: ImageSink>(
    copier: Arc<Copier<S, D>>,
    jobs: &[Job],
    dry_run: bool,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<CopyResult>> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, job) in jobs.iter().enumerate() {
            let copier = copier.clone();
            let (fetch, target) = (job.fetch.clone(), job.target.clone());
            tasks.spawn(async move {
                let result = if dry_run {
                    copier.sink.manifest_digest(&target).await.map(|d| Copied {
                        outcome: if d.is_some() {
                            Outcome::Present
                        } else {
                            Outcome::Copied
                        },
                        digest: d,
                        platforms: Vec::new(),
                        filtered_from: None,
                    })
                } else {
                    copier.copy(&fetch, &target).await
                };
                (i, result)
            });
        }
        let mut results: Vec<Option<CopyResult>> = (0..jobs.len()).map(|_| None).collect();
        let mut done = 0;
        while let Some(joined) = tasks.join_next().await {
            let (i, r) = joined.context("a copy task failed")?;
            done += 1;
            bar.set_message(format!("{done}/{} images", jobs.len()));
            let line = line(&jobs[i], &r, dry_run);
            bar.suspend(|| {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            });
            results[i] = Some(r);
        }
        bar.finish_and_clear();
        anyhow::Ok(results.into_iter().flatten().collect())
    })
}

fn line(job: &Job, result: &CopyResult, dry_run: bool) -> String {
    let dst = job.target.to_string();
    let src = match &job.copy_of {
        Some(image) => format!("{} (a copy of {})", job.source.familiar(), image.familiar()),
        None => job.source.familiar(),
    };
    let filtered = |c: &Copied| match c.filtered_from {
        Some(n) => format!(
            ", index filtered to {} of {n} platforms: {}",
            c.platforms.len(),
            c.platforms.join(" ")
        ),
        None => String::new(),
    };
    match result {
        Ok(c) if c.outcome == Outcome::Copied && dry_run => format!("would copy  {src} -> {dst}"),
        Ok(c) if c.outcome == Outcome::Copied => {
            let digest = c.digest.as_ref().map_or("", |d| d.as_str());
            format!("copied   {src} -> {dst} ({digest}{})", filtered(c))
        }
        Ok(c) => format!("present  {dst}{}", filtered(c)),
        Err(e) => match host_failure(e) {
            Some((words, _)) => format!("failed   {src}: {words} (error below)"),
            None => format!("failed   {src}: {e:#}"),
        },
    }
}

/// The registry failure of a whole host behind a copy's error: its few words and its message
/// (see `RegistryError::host_wide`).
fn host_failure(e: &anyhow::Error) -> Option<(String, String)> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<crate::registry::RegistryError>())
        .find_map(|r| Some((r.host_wide()?, r.to_string())))
}

/// The closing summary; returns the number of failures.
pub(super) fn report<S, D>(
    copier: &Copier<S, D>,
    results: &[CopyResult],
    dry_run: bool,
    started: Instant,
) -> usize {
    let (mut copied, mut present, mut failed) = (0, 0, 0);
    for result in results {
        match result {
            Ok(c) if c.outcome == Outcome::Copied => copied += 1,
            Ok(_) => present += 1,
            Err(_) => failed += 1,
        }
    }
    // Each host's failure once, with how many images it failed, rather than once per image.
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        if let Some((_, message)) = host_failure(e) {
            *hosts.entry(message).or_default() += 1;
        }
    }
    for (message, n) in hosts {
        eprintln!("error: {message} ({})", super::check::affects(n));
    }
    let s = &copier.stats;
    let secs = started.elapsed().as_secs_f64();
    let bytes = s.bytes_uploaded.load(Ordering::Relaxed);
    let continued = match s.blobs_continued.load(Ordering::Relaxed) {
        0 => String::new(),
        n => format!(
            " ({n} continued where a killed run stopped, {} bytes not fetched again)",
            s.bytes_kept.load(Ordering::Relaxed)
        ),
    };
    println!(
        "{} images: {copied} {}, {present} already present, {failed} failed; blobs: {} uploaded{continued}, {} mounted, {} already there; {bytes} bytes in {secs:.1} s ({:.1} MB/s)",
        results.len(),
        if dry_run { "to copy" } else { "copied" },
        s.blobs_uploaded.load(Ordering::Relaxed),
        s.blobs_mounted.load(Ordering::Relaxed),
        s.blobs_skipped.load(Ordering::Relaxed),
        bytes as f64 / secs.max(1e-9) / 1e6,
    );
    failed
}

/// After the images: their signatures, attestations, SBOMs and referrers, through the same
/// copier, with a line saying how many were carried (nothing when `skip`). The failures are
/// counted as failed images by the caller.
pub(super) fn carry_signatures<S: ImageSource, D: ImageSink>(
    copier: &Copier<S, D>,
    jobs: &[Job],
    results: &[CopyResult],
    skip: bool,
) -> anyhow::Result<Carried> {
    if skip {
        return Ok(Carried::default());
    }
    let (images, notes) = signatures::images(jobs, results);
    if images.is_empty() && notes.is_empty() {
        return Ok(Carried::default());
    }
    let carried = super::runtime()?.block_on(signatures::carry(copier, &images));
    for note in notes.iter().chain(&carried.notes) {
        eprintln!("note: {note}");
    }
    for failure in &carried.failures {
        println!("failed   {failure}");
    }
    if !carried.failures.is_empty() {
        eprintln!(
            "error: the signatures and referrers of {} images could not be carried (above); the images themselves were. Rerun with --no-signatures to go without them",
            carried.failures.len()
        );
    }
    let kinds: Vec<String> = [
        (Kind::Signature, ".sig"),
        (Kind::Attestation, ".att"),
        (Kind::Sbom, ".sbom"),
        (Kind::Referrer, "referrers"),
    ]
    .iter()
    .filter_map(|(k, word)| match carried.count(*k) {
        0 => None,
        n => Some(format!("{n} {word}")),
    })
    .collect();
    let fallback = match carried.fallback_tags {
        0 => String::new(),
        n => format!("; {n} referrers fallback tags written"),
    };
    println!(
        "signatures: {} artifacts carried for {} of {} images{}{fallback}",
        carried.artifacts.len(),
        carried.images_with,
        images.len(),
        match kinds.is_empty() {
            true => String::new(),
            false => format!(" ({})", kinds.join(", ")),
        },
    );
    Ok(carried)
}

/// The lock file's `artifacts:` of a save: what `carried` carried, after the entries of the
/// lock at `earlier` (a save into an earlier bundle) whose image this save did not name again
/// (`named`: canonical references).
pub(super) fn locked_artifacts(
    carried: &Carried,
    earlier: &std::path::Path,
    named: &std::collections::HashSet<String>,
) -> anyhow::Result<Vec<crate::lock::LockedArtifact>> {
    let mut out: Vec<crate::lock::LockedArtifact> = match earlier.exists() {
        true => crate::lock::LockFile::read(earlier)?.artifacts,
        false => Vec::new(),
    };
    out.retain(|a| {
        Reference::parse(&a.image).map_or(true, |r| {
            !named.contains(&crate::mirror::canonical_reference(&r))
        })
    });
    out.extend(
        carried
            .artifacts
            .iter()
            .map(|a| crate::lock::LockedArtifact {
                source: a.source.to_string(),
                digest: a.digest.to_string(),
                kind: a.kind.as_str().to_string(),
                image: a.image.to_string(),
                artifact_type: a.artifact_type.clone(),
            }),
    );
    Ok(out)
}
