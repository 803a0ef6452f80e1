//! `push`: copy into the mirror the images it lacks, from the images' own registries or from
//! an offline bundle (an OCI image layout directory written by `save`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::copy_run::{Job, SourceMirrors, listed_images, report, run_copies};
use super::images::ImageListArgs;
use super::registry_args::RegistryArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::mirror::{Collisions, MirrorNaming};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::transfer::copy::Copier;
use crate::transfer::layout::OciLayout;
use crate::transfer::{ImageSink, ImageSource};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where the images come from: `registry` (their own registries), or a bundle directory
    /// written by `save` (an OCI image layout)
    #[arg(long, default_value = "registry", value_name = "registry|DIR")]
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

pub fn run(args: &PushArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = settings(&args.mirror, None, config)?;
    let naming = settings.naming.as_ref().context(
        "push needs the mirror registry: pass --registry HOST[:PORT][/PREFIX], set AIRGAP_REGISTRY, or set registry in the config file",
    )?;
    let sink_options = args
        .registry
        .options(Some(naming.mirror().host()), &settings.registries)?;
    let sink = Arc::new(Registry::new(sink_options.clone()));
    let started = Instant::now();

    if args.from == "registry" {
        if args.images.is_empty() {
            anyhow::bail!("name the images: -f FILE|DIR|- (manifests) or --lock FILE");
        }
        let remaps = SourceMirrors::parse(&args.source_mirrors)?;
        let mut source_options = sink_options;
        // The mirror's login and client certificate are never offered to source registries.
        source_options.login = None;
        for h in source_options.hosts.values_mut() {
            h.cert_file = None;
            h.key_file = None;
        }
        remaps.apply(&mut source_options);
        let sources = listed_images(&args.images, &settings.rules)?;
        let jobs = jobs(sources, naming, |s| remaps.fetch(s))?;
        let source = Arc::new(Registry::new(source_options));
        return copy_all(source, sink, &jobs, args.dry_run, started);
    }

    if args.from.starts_with("docker-archive:") {
        anyhow::bail!(
            "--from {}: docker archives are not read by this version yet; convert with `skopeo copy docker-archive:FILE oci:DIR:NAME` or push from the images' registries",
            args.from
        );
    }
    let dir = PathBuf::from(&args.from);
    if !dir.is_dir() {
        anyhow::bail!(
            "--from {}: not a directory; give `registry` or a bundle directory written by `kubectl airgap save` (layout tars come in a later version)",
            args.from
        );
    }
    let layout = Arc::new(OciLayout::open(&dir)?);
    let sources = if args.images.is_empty() {
        layout.image_names()?
    } else {
        listed_images(&args.images, &settings.rules)?
    };
    let jobs = jobs(sources, naming, |s| Ok(s.clone()))?;
    copy_all(layout, sink, &jobs, args.dry_run, started)
}

/// A job per source not already in the mirror, named per the mirror naming.
fn jobs(
    sources: Vec<Reference>,
    naming: &MirrorNaming,
    fetch: impl Fn(&Reference) -> anyhow::Result<Reference>,
) -> anyhow::Result<Vec<Job>> {
    let mut collisions = Collisions::new();
    let mut out = Vec::new();
    for source in sources {
        if naming.mirror().holds(&source) {
            continue;
        }
        let target = naming.map(&source)?;
        collisions.insert(&source, &target)?;
        out.push(Job {
            fetch: fetch(&source)?,
            source,
            target,
        });
    }
    Ok(out)
}

fn copy_all<S: ImageSource, D: ImageSink>(
    source: S,
    sink: D,
    jobs: &[Job],
    dry_run: bool,
    started: Instant,
) -> anyhow::Result<ExitStatus> {
    let copier = Arc::new(Copier::new(source, sink));
    let results = run_copies(copier.clone(), jobs, dry_run)?;
    let failed = report(&copier, jobs, &results, dry_run, started);
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}
