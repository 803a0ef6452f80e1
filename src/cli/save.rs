//! `save`: on the connected side, pull every needed image into one offline bundle: an OCI
//! image layout directory, blobs shared across images, with `images.lock.yaml` beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::copy_run::{Job, SourceMirrors, listed_images, report, run_copies};
use super::images::ImageListArgs;
use super::registry_args::RegistryArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::lock::{LockFile, LockedImage};
use crate::registry::Registry;
use crate::transfer::copy::Copier;
use crate::transfer::layout::OciLayout;

/// The lock file's name inside a bundle.
pub const LOCK_NAME: &str = "images.lock.yaml";

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub images: ImageListArgs,
    /// The bundle directory to create (an OCI image layout)
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Fetch a source registry's images from elsewhere, e.g. docker.io=https://proxy.corp:5000
    /// (repeatable; http:// means plain HTTP)
    #[arg(long = "source-mirror", value_name = "HOST=URL")]
    pub source_mirrors: Vec<String>,
    /// With --registry, the lock file also records each image's mirror name
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: &SaveArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    if args.images.is_empty() {
        anyhow::bail!("name the images to save: -f FILE|DIR|- (manifests) or --lock FILE");
    }
    if args
        .output
        .extension()
        .is_some_and(|e| e == "tar" || e == "gz" || e == "zst")
    {
        anyhow::bail!(
            "-o {}: this version writes a bundle directory; tar it yourself (`tar -C DIR -cf bundle.tar .`) or name a directory",
            args.output.display()
        );
    }
    let settings = settings(&args.mirror, None, config)?;
    let remaps = SourceMirrors::parse(&args.source_mirrors)?;
    let mut options = args.registry.options(None, &settings.registries)?;
    remaps.apply(&mut options);
    let sources = listed_images(&args.images, &settings.rules)?;
    let jobs = sources
        .into_iter()
        .map(|source| {
            Ok(Job {
                fetch: remaps.fetch(&source)?,
                target: source.clone(),
                source,
            })
        })
        .collect::<anyhow::Result<Vec<Job>>>()?;

    let layout = Arc::new(OciLayout::create(&args.output)?);
    let started = Instant::now();
    let copier = Arc::new(Copier::new(
        Arc::new(Registry::new(options)),
        layout.clone(),
    ));
    let results = run_copies(copier.clone(), &jobs, false)?;
    let failed = report(&copier, &jobs, &results, false, started);
    layout.finish()?;

    let mut locked = Vec::new();
    for (job, result) in jobs.iter().zip(&results) {
        if let Ok((_, digest)) = result {
            locked.push(LockedImage {
                source: job.source.to_string(),
                digest: Some(digest.clone()),
                media_type: None,
                platforms: Vec::new(),
                mirror: match &settings.naming {
                    Some(n) => Some(n.map(&job.source)?.to_string()),
                    None => None,
                },
            });
        }
    }
    let lock_path = args.output.join(LOCK_NAME);
    std::fs::write(&lock_path, LockFile::new(locked).to_yaml()?)
        .with_context(|| format!("writing {}", lock_path.display()))?;
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}
