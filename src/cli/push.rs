//! `push`: copy into the mirror the images it lacks, from the images' own registries, from an
//! offline bundle (an OCI image layout, directory or tar, as `save` writes), or from docker
//! archives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::copy_run::{CopyArgs, carry_signatures, copier, listed, report, run_copies};
use super::images::ImageListArgs;
use super::registry_args::RegistryArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::chart::artifact::ChartArtifacts;
use crate::lock::LockFile;
use crate::mirror::MirrorNaming;
use crate::mirror::canonical_reference;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::transfer::ImageSource;
use crate::transfer::delta::{BaseCheck, WithBase, confirm_base};
use crate::transfer::docker_archive::DockerArchives;
use crate::transfer::layout::OciLayout;
use crate::transfer::layout::{EntryName, LOCK_NAME};
use crate::transfer::plan::{Job, SourceMirrors, into_mirror as jobs, into_mirror_with};

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Where the images come from: `registry` (their own registries); a bundle written by
    /// `save` (an OCI image layout: a directory, or a tar, plain or gz/bz2/xz/zst); or
    /// `docker-archive:PATH` (`docker save` archives: one file, or a directory of them)
    #[arg(
        long,
        default_value = "registry",
        value_name = "registry|PATH|docker-archive:PATH"
    )]
    pub from: String,
    /// Name an image of a --from layout that carries only a tag (`skopeo copy ... oci:DIR:TAG`)
    /// or no name: TAG=REF or sha256:HEX=REF (repeatable). REF without a tag takes TAG
    #[arg(long = "name", value_name = "TAG=REF")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub images: ImageListArgs,
    /// The namespace --chart renders for
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub copy: CopyArgs,
    /// Print what would be copied, copy nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub(super) fn run(args: &PushArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = settings(&args.mirror, None, config)?;
    let naming = settings.require_mirror("push")?;
    let sink_options = args
        .registry
        .options(Some(naming.mirror().host()), &settings.registries)?;
    let sink = Arc::new(Registry::new(sink_options.clone()));
    let charts = args.images.charts.render(
        &args
            .images
            .charts
            .options(args.namespace.as_deref(), &sink_options.hosts),
    )?;
    let started = Instant::now();

    if args.from == "registry" {
        if args.images.is_empty() {
            anyhow::bail!(
                "name the images: -f FILE|DIR|- (manifests), --chart CHART or --lock FILE"
            );
        }
        let remaps = SourceMirrors::parse(&args.copy.source_mirrors)?;
        let mut source_options = sink_options.for_sources();
        remaps.apply(&mut source_options);
        let set = listed(&args.images, &settings.rules, &charts)?;
        let mut sources = set.references();
        // An oci:// chart is copied from its registry as an image is; the others are packaged
        // here and copied from memory.
        sources.extend(ChartArtifacts::registry_charts(&charts));
        let (local, names) = ChartArtifacts::of(&charts)?;
        let local_jobs = jobs(names, naming, |s| Ok(s.clone()))?;
        let jobs = into_mirror_with(sources, set.alias_pairs(), naming, |s| remaps.fetch(s))?;
        let source = Arc::new(Registry::new(source_options));
        let code = copy_all(source, sink.clone(), &jobs, args, started)?;
        if local_jobs.is_empty() {
            return Ok(code);
        }
        let charts_code = copy_all(local, sink, &local_jobs, args, Instant::now())?;
        return Ok(code.max(charts_code));
    }

    let listed = || listed(&args.images, &settings.rules, &charts);
    if !args.names.is_empty() && args.from.starts_with("docker-archive:") {
        anyhow::bail!(
            "--name is for OCI layouts; docker archives name their images in manifest.json (RepoTags)"
        );
    }
    if let Some(path) = args.from.strip_prefix("docker-archive:") {
        let archives = Arc::new(DockerArchives::open(Path::new(path))?);
        let (sources, aliases) = if args.images.is_empty() {
            (archives.image_names(), Vec::new())
        } else {
            let set = listed()?;
            (set.references(), set.alias_pairs())
        };
        let jobs = into_mirror_with(sources, aliases, naming, |s| Ok(s.clone()))?;
        return copy_all(archives, sink, &jobs, args, started);
    }
    let path = PathBuf::from(&args.from);
    if !path.exists() {
        anyhow::bail!(
            "--from {}: no such file or directory; give `registry`, a bundle written by `kubectl airgap save`, or docker-archive:PATH",
            args.from
        );
    }
    let layout = Arc::new(OciLayout::open(&path)?.name(&args.names)?);
    // A bundle holds the names operators ask only of a mirror as images of their own; what it
    // carries beside its images (signatures) travels with them, or not at all.
    let (sources, aliases) = if args.images.is_empty() {
        (bundle_images(&layout)?, Vec::new())
    } else {
        let set = listed()?;
        (set.references(), set.alias_pairs())
    };
    let jobs = into_mirror_with(sources, aliases, naming, |s| Ok(s.clone()))?;
    let holders = match layout.delta_base() {
        Some(lock) => match delta_holders(&layout, &sink, naming, &jobs, &lock)? {
            Ok(holders) => holders,
            Err(missing) => {
                eprintln!("error: {missing}");
                return Ok(EXIT_ERROR);
            }
        },
        None => HashMap::new(),
    };
    if holders.is_empty() {
        return copy_all(layout, sink, &jobs, args, started);
    }
    let repos = holders
        .iter()
        .map(|(digest, at)| (digest.clone(), at.path().to_string()))
        .collect();
    let source = Arc::new(WithBase::new(layout, sink.clone(), holders));
    copy_all_holding(source, sink, &jobs, args, started, repos)
}

/// The images a bundle names, without the artifacts it carries beside them (signatures,
/// attestations, SBOMs, the referrers fallback tag), which travel with their image.
fn bundle_images(layout: &OciLayout) -> anyhow::Result<Vec<Reference>> {
    let digests: HashMap<String, String> = layout
        .entries()
        .into_iter()
        .filter_map(|(name, d)| match name {
            Ok(EntryName::Named(r)) => Some((canonical_reference(&r), d.digest.to_string())),
            _ => None,
        })
        .collect();
    Ok(crate::transfer::signatures::without_artifacts(
        layout.image_names()?,
        |name| digests.get(&canonical_reference(name)).cloned(),
    ))
}

/// For a delta bundle: where the mirror holds each blob the bundle left out (the blob by
/// digest in a base image's repository), confirmed before anything is written; `Err` is what
/// to tell the user when the mirror lacks the base.
fn delta_holders(
    layout: &Arc<OciLayout>,
    sink: &Arc<Registry>,
    naming: &MirrorNaming,
    jobs: &[Job],
    lock: &str,
) -> anyhow::Result<Result<HashMap<String, Reference>, String>> {
    let path = layout.root().display().to_string();
    let text = layout.lock_text()?.with_context(|| {
        format!("{path} is a delta of the lock {lock}, but it has no {LOCK_NAME} naming that base; save it again")
    })?;
    let lock_path = layout.root().join(LOCK_NAME);
    let base = LockFile::parse(&text, &lock_path)?
        .base
        .filter(|b| b.lock == lock)
        .with_context(|| format!("{path}: {LOCK_NAME} does not list the base {lock} that its index.json names; save it again"))?;
    let base_images = base.images(&lock_path)?;
    let images: Vec<Reference> = jobs.iter().map(|j| j.fetch.clone()).collect();
    let check = super::runtime()?.block_on(confirm_base(
        layout,
        |d| Ok(layout.blob_size(d)?.is_some()),
        &images,
        sink,
        naming,
        &base_images,
    ))?;
    Ok(match check {
        BaseCheck::Held(holders) => Ok(holders),
        BaseCheck::Missing { blobs, images } => {
            let named: Vec<String> = images
                .iter()
                .take(5)
                .map(|(mirror, source)| format!("{mirror} (from {})", source.familiar()))
                .collect();
            let which = match images.len() {
                0 => format!(
                    "the base images are in {}, but they do not hold these blobs ({}{}): the bundle may be damaged (copy it again), or the mirror's copies of the base were cleaned up (push the base bundle again)",
                    naming.mirror(),
                    blobs.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    if blobs.len() > 5 { ", ..." } else { "" }
                ),
                n => format!(
                    "the mirror lacks {n} of its {} base images: {}{}. Push the bundle that lock came from first (or save a whole bundle, without --have)",
                    base_images.len(),
                    named.join(", "),
                    if n > named.len() { ", ..." } else { "" }
                ),
            };
            Err(format!(
                "{path} is a delta bundle: it leaves out {} blobs that the images of the lock {lock} hold, and {which}. Nothing was pushed",
                blobs.len()
            ))
        }
    })
}

fn copy_all<S: ImageSource>(
    source: S,
    sink: Arc<Registry>,
    jobs: &[Job],
    args: &PushArgs,
    started: Instant,
) -> anyhow::Result<ExitStatus> {
    copy_all_holding(source, sink, jobs, args, started, HashMap::new())
}

/// [`copy_all`], mounting the blobs `holders` names from the repositories it gives.
fn copy_all_holding<S: ImageSource>(
    source: S,
    sink: Arc<Registry>,
    jobs: &[Job],
    args: &PushArgs,
    started: Instant,
    holders: HashMap<String, String>,
) -> anyhow::Result<ExitStatus> {
    let concurrency = sink.concurrency();
    let (copier, bar) = copier(
        source,
        sink,
        concurrency,
        args.copy.platforms.clone(),
        holders,
    );
    let results = run_copies(copier.clone(), jobs, args.dry_run, &bar)?;
    let skip = args.copy.no_signatures || args.dry_run;
    let carried = carry_signatures(&copier, jobs, &results, skip)?;
    let failed = report(&copier, &results, args.dry_run, started) + carried.failures.len();
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}
