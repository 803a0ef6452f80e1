//! `save`: on the connected side, pull every needed image into one offline bundle: an OCI
//! image layout (a directory, or a tar of one), blobs shared across images, with
//! `images.lock.yaml` inside.
//!
//! A bundle is only ever complete: `index.json` and the lock are written once every image is in,
//! and a tar only then. A directory save that failed or was killed keeps what it fetched, and
//! the same command run again fetches only the rest (a half-written blob is continued from
//! where it stopped); a save into an earlier bundle adds to it, merging index and lock.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::copy_run::{CopyArgs, carry_signatures, copier, locked_artifacts, report, run_copies};
use super::images::ImageListArgs;
use super::registry_args::RegistryArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::chart::artifact::ChartArtifacts;
use crate::inputs::package::Package;
use crate::lock::{BaseImage, LockBase, LockFile, LockedChart, LockedImage};
use crate::mirror::canonical_reference;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::transfer::archive::{Compression, write_tar};
use crate::transfer::delta::{Blobs, Omitting, blobs_of};
use crate::transfer::layout::OciLayout;
use crate::transfer::plan::{Job, SourceMirrors};

use crate::transfer::layout::LOCK_NAME;
/// The hidden directory beside a tar output where the bundle is built, before the PID.
const STAGING: &str = ".kubectl-airgap-save-";

#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// Images to save, besides those the other inputs name
    #[arg(value_name = "IMAGE")]
    pub references: Vec<String>,
    /// A package file: charts (with version, repo, values, set), images, image lists,
    /// images_digests files, manifests and platforms, declared once
    #[arg(long, value_name = "FILE")]
    pub package: Option<PathBuf>,
    #[command(flatten)]
    pub images: ImageListArgs,
    /// The bundle to create: a directory (an OCI image layout), or a tar of one:
    /// FILE.tar, FILE.tar.gz (or .tgz), FILE.tar.zst
    #[arg(short = 'o', long = "output", value_name = "DIR|FILE.tar[.gz|.zst]")]
    pub output: PathBuf,
    /// Make a delta bundle: leave out every blob the images of this lock file hold (an earlier
    /// bundle's images.lock.yaml, or `check -o lock` of the mirror). It can be pushed only
    /// into a mirror that holds those images
    #[arg(long, value_name = "LOCK")]
    pub have: Option<PathBuf>,
    /// The namespace --chart renders for
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub copy: CopyArgs,
    /// With --registry, the lock file also records each image's mirror name
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub(super) fn run(args: &SaveArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    // Flags and the package file, one list of sources and charts.
    let package = args.package.as_deref().map(Package::load).transpose()?;
    let mut sources = args.images.sources();
    sources
        .images
        .push(("command line".into(), args.references.clone()));
    let mut requests = args.images.charts.requests.clone();
    let mut render = args
        .images
        .charts
        .options(args.namespace.as_deref(), &BTreeMap::new());
    let mut platforms = args.copy.platforms.clone();
    if let Some(p) = package {
        sources.extend(p.sources);
        requests.extend(p.charts);
        render.or(p.render);
        platforms.extend(p.platforms);
    }
    if sources.is_empty() && requests.is_empty() {
        anyhow::bail!(
            "name the images to save: IMAGE..., -f FILE|DIR|- (manifests), --chart CHART, --image-list FILE, --package FILE or --lock FILE"
        );
    }
    let compression = Compression::for_output(&args.output);
    let looks_like_file = args.output.extension().is_some_and(|e| {
        ["gz", "zst", "zstd", "bz2", "xz", "tgz"].contains(&e.to_str().unwrap_or(""))
    });
    if compression.is_none() && looks_like_file {
        anyhow::bail!(
            "-o {}: write a directory, FILE.tar, FILE.tar.gz or FILE.tar.zst",
            args.output.display()
        );
    }
    if compression.is_some() && args.output.exists() {
        anyhow::bail!(
            "-o {}: already exists; choose a new name",
            args.output.display()
        );
    }
    let settings = settings(&args.mirror, None, config)?;
    // A bad --have is refused before anything is rendered or written.
    let base = args.have.as_deref().map(read_base).transpose()?;
    let remaps = SourceMirrors::parse(&args.copy.source_mirrors)?;
    let mut options = args.registry.options(None, &settings.registries)?;
    remaps.apply(&mut options);
    render.registries = options.hosts.clone();
    let charts = crate::chart::render_all(&requests, &render, args.images.charts.helm.as_deref())?;
    let mut set = sources.read(&settings.rules, false)?;
    set.add_charts(&charts, &settings.rules, false)?;
    let sources = set.references();
    // An OCI chart is fetched from its registry as an image is: its manifest digest unchanged.
    let oci_charts = ChartArtifacts::registry_charts(&charts);
    let mut jobs = crate::transfer::plan::into_bundle_with(sources, set.alias_pairs(), &remaps)?;
    let image_jobs = jobs.len();
    jobs.extend(crate::transfer::plan::into_bundle(oci_charts, &remaps)?);
    // The others are packaged here, and copied from memory by the same copier.
    let (local_charts, local_names) = ChartArtifacts::of(&charts)?;
    let local_jobs = crate::transfer::plan::into_bundle(local_names, &SourceMirrors::parse(&[])?)?;

    // A tar is written from a finished directory beside it, so a failed save leaves no tar.
    let staging = match compression {
        Some(_) => {
            let parent = match args.output.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            // What saves that `kill -9` ended left, then ours (removed on a signal too).
            crate::cleanup::sweep(parent, |name| {
                crate::cleanup::leading_pid(name.strip_prefix(STAGING)?)
            });
            Some(
                crate::cleanup::TempDir::new_in(parent, STAGING).with_context(|| {
                    format!("creating a staging directory in {}", parent.display())
                })?,
            )
        }
        None => None,
    };
    let dir = staging.as_ref().map_or(args.output.as_path(), |d| d.path());
    let layout = Arc::new(OciLayout::create(dir)?);
    // What the bundle there is a delta of (if anything) is its index's word, written with its
    // lock, and kept even when a run was killed before the lock.
    if layout.delta_base() != base.as_ref().map(|b| b.lock.clone())
        && dir.join("index.json").exists()
    {
        let was = match layout.delta_base() {
            Some(lock) => format!("a delta of the lock {lock}"),
            None => "a whole bundle".to_string(),
        };
        anyhow::bail!(
            "-o {}: holds {was}; a save adds to a bundle only with the same --have. Save into a new directory",
            dir.display()
        );
    }
    let lock_path = dir.join(LOCK_NAME);
    let (earlier, earlier_charts) = match lock_path.exists() {
        true => {
            let lock = LockFile::read(&lock_path)
                .with_context(|| format!("adding to the bundle in {}", dir.display()))?;
            (lock.images, lock.charts)
        }
        false => (Vec::new(), Vec::new()),
    };
    let started = Instant::now();
    let registry = Arc::new(Registry::new(options));
    let left_out = match (&base, &args.have) {
        (Some(b), Some(have)) => base_blobs(&registry, b, have, &remaps)?,
        _ => Default::default(),
    };
    layout.set_delta_base(base.as_ref().map(|b| b.lock.clone()));
    let sink = Arc::new(Omitting::new(layout.clone(), left_out));
    let concurrency = registry.concurrency();
    let (copier, bar) = copier(
        registry,
        sink.clone(),
        concurrency,
        platforms,
        Default::default(),
    );
    let mut results = run_copies(copier.clone(), &jobs, false, &bar)?;
    let carried = carry_signatures(&copier, &jobs, &results, args.copy.no_signatures)?;
    let mut failed = report(&copier, &results, false, started) + carried.failures.len();
    if let (Some(b), Some(have)) = (&base, &args.have) {
        let (blobs, bytes) = sink.left_out();
        println!(
            "delta: {blobs} blobs ({bytes} bytes) left out, held by the {} images of {} ({})",
            b.images.len(),
            have.display(),
            b.lock
        );
    }
    if !local_jobs.is_empty() {
        let (charts_copier, bar) = super::copy_run::copier(
            local_charts,
            layout.clone(),
            1,
            Vec::new(),
            Default::default(),
        );
        let copied = run_copies(charts_copier, &local_jobs, false, &bar)?;
        failed += copied.iter().filter(|r| r.is_err()).count();
        results.extend(copied);
    }
    let jobs: Vec<&Job> = jobs.iter().chain(&local_jobs).collect();
    if failed > 0 {
        // Nothing that reads as a finished bundle: no tar, no index or lock claiming the images.
        match compression {
            Some(_) => eprintln!(
                "error: {failed} of {} images failed; {} was not written. Save into a directory (-o DIR) to keep what was fetched for a rerun",
                jobs.len(),
                args.output.display()
            ),
            None => eprintln!(
                "error: {failed} of {} images failed; {} keeps what was fetched, but its index.json and {LOCK_NAME} were not updated: run the same save again to fetch the rest",
                jobs.len(),
                dir.display()
            ),
        }
        return Ok(EXIT_ERROR);
    }
    layout.finish()?;
    layout.sweep();

    let mut locked = Vec::new();
    let mut locked_charts = Vec::new();
    for (i, (job, result)) in jobs.iter().zip(&results).enumerate() {
        if i >= image_jobs
            && let Ok(copied) = result
        {
            let chart = charts
                .iter()
                .map(|r| &r.chart)
                .find(|c| c.reference == job.source)
                .expect("a chart job is a chart's");
            locked_charts.push(LockedChart {
                name: chart.name.clone(),
                version: chart.version.clone(),
                digest: copied
                    .digest
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                reference: chart.reference.to_string(),
                source: chart.source(),
            });
        } else if let Ok(copied) = result {
            let platforms = if copied.platforms.is_empty() {
                (copied.digest.as_deref())
                    .and_then(|d| layout.image_platform(d))
                    .into_iter()
                    .collect()
            } else {
                copied.platforms.clone()
            };
            locked.push(LockedImage {
                source: job.source.to_string(),
                digest: copied.digest.as_ref().map(ToString::to_string),
                media_type: None,
                platforms,
                mirror: match &settings.naming {
                    Some(n) => Some(n.map(&job.source)?.to_string()),
                    None => None,
                },
                copy_of: job.copy_of.as_ref().map(ToString::to_string),
            });
        }
    }
    // An earlier save's entries stay, unless this save named the same image again.
    let named: HashSet<String> = jobs
        .iter()
        .map(|j| canonical_reference(&j.source))
        .collect();
    let kept = earlier.into_iter().filter(|e| {
        Reference::parse(&e.source).map_or(true, |r| !named.contains(&canonical_reference(&r)))
    });
    let locked: Vec<LockedImage> = kept.chain(locked).collect();
    let mut all_charts: Vec<LockedChart> = earlier_charts
        .into_iter()
        .filter(|e| !locked_charts.iter().any(|c| c.reference == e.reference))
        .collect();
    all_charts.extend(locked_charts);
    let tmp = dir.join(format!(".{LOCK_NAME}.tmp"));
    let mut lock = LockFile::new(locked, all_charts);
    lock.base = base;
    lock.artifacts = locked_artifacts(&carried, &lock_path, &named)?;
    std::fs::write(&tmp, lock.to_yaml()?)
        .and_then(|()| std::fs::rename(&tmp, &lock_path))
        .with_context(|| format!("writing {}", lock_path.display()))?;
    if let Some(compression) = compression {
        // The lock right after index.json: a delta's reader needs it to know its base.
        let mut first = layout.parents_first();
        first.insert(2.min(first.len()), LOCK_NAME.to_string());
        write_tar(dir, &args.output, compression, &first)?;
        println!("wrote {}", args.output.display());
    }
    Ok(EXIT_OK)
}

/// The base a delta is made against: the `--have` lock, by digest, and the images it pins. The
/// file is read once (it may be a pipe), bounded. Its charts are not a base: a chart's files
/// always travel (they are small, and `charts --bundle` reads them from the bundle).
fn read_base(path: &Path) -> anyhow::Result<LockBase> {
    use std::io::Read as _;
    const LIMIT: u64 = 64 << 20;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(LIMIT + 1).read_to_end(&mut bytes))
        .with_context(|| format!("--have {}: reading it", path.display()))?;
    if bytes.len() as u64 > LIMIT {
        anyhow::bail!(
            "--have {}: more than {LIMIT} bytes; it is not a lock file",
            path.display()
        );
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("--have {}: not UTF-8 text", path.display()))?;
    let file =
        LockFile::parse(&text, path).with_context(|| format!("--have {}", path.display()))?;
    let mut out = Vec::new();
    for locked in file
        .locked_images(path)
        .with_context(|| format!("--have {}", path.display()))?
    {
        if locked.source.domain() == crate::mirror::LOCAL_CHARTS {
            continue;
        }
        let Some(digest) = locked.digest else {
            anyhow::bail!(
                "--have {}: {} has no digest; a delta needs the digests of the images the mirror holds (use the images.lock.yaml that save wrote, or `check ... -o lock`)",
                path.display(),
                locked.source.familiar()
            );
        };
        out.push(BaseImage {
            source: locked.source.to_string(),
            digest: digest.to_string(),
        });
    }
    if out.is_empty() {
        anyhow::bail!(
            "--have {}: lists no images; a delta of nothing is a whole bundle (drop --have)",
            path.display()
        );
    }
    Ok(LockBase {
        lock: crate::oci::Digest::sha256(text.as_bytes()).to_string(),
        images: out,
    })
}

/// The configs and layers of the base images, read from their source registries by digest:
/// what a delta leaves out. A base image the source no longer has is said, and its blobs
/// travel.
fn base_blobs(
    registry: &Arc<Registry>,
    base: &LockBase,
    have: &Path,
    remaps: &SourceMirrors,
) -> anyhow::Result<Blobs> {
    use futures_util::StreamExt as _;
    let images = base
        .images(have)?
        .into_iter()
        .map(|(source, digest)| {
            let pinned =
                Reference::from_parts(source.domain(), source.path(), None, Some(digest.as_str()))?;
            anyhow::Ok((source, remaps.fetch(&pinned)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    super::runtime()?.block_on(async {
        let mut reads = futures_util::stream::iter(images.iter().map(|(source, at)| async move {
            (source, blobs_of(registry, at).await)
        }))
        .buffer_unordered(registry.concurrency().max(1));
        let mut out = Blobs::new();
        while let Some((source, read)) = reads.next().await {
            // A base image not read only makes the delta bigger: said, and its blobs travel.
            match read {
                Ok(Some(blobs)) => out.extend(blobs),
                Ok(None) => eprintln!(
                    "warning: --have: the source has no {} at its digest (moved away, or an index that --platform filtered when it was saved); its blobs go in the bundle",
                    source.familiar()
                ),
                Err(e) => eprintln!(
                    "warning: --have: reading the base image {}: {e:#}; its blobs go in the bundle",
                    source.familiar()
                ),
            }
        }
        anyhow::Ok(out)
    })
}
