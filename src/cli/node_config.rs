//! `node-config`: write the container runtime files that send nodes' pulls to the mirror.
//!
//! This file gathers the inputs (the image list as `push` reads it, a bundle's names as
//! `push --from` reads them, `--source` hosts, the mirror's CA) and writes or prints what
//! [`crate::nodeconfig`] renders.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::copy_run::listed_images;
use super::images::ImageListArgs;
use super::{EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::nodeconfig::{self, Format, NodeConfig};
use crate::transfer::layout::OciLayout;

/// The largest CA bundle read: a PEM bundle of every public CA is about 200 KiB.
const MAX_CA_BYTES: u64 = 1 << 20;

#[derive(Debug, Args)]
pub(crate) struct NodeConfigArgs {
    /// Which runtime's files to write
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write the files under this directory (created if missing; each file replaced
    /// atomically); without it they are printed
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub images: ImageListArgs,
    /// A bundle written by `save` (directory or tar): the registries of the images it holds
    #[arg(long, value_name = "PATH")]
    pub bundle: Option<PathBuf>,
    /// A source registry to send to the mirror, HOST[:PORT], besides those the images name
    /// (repeatable), e.g. docker.io
    #[arg(long = "source", value_name = "HOST[:PORT]")]
    pub sources: Vec<String>,
    /// PEM CA of the mirror registry, copied beside the files that name it (default: the
    /// config file's registries.MIRROR.caFile)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The mirror speaks plain HTTP (default: the config file's registries.MIRROR.insecure)
    #[arg(long)]
    pub plain_http: bool,
    /// Where the files will be on the node; k3s's ca_file is an absolute path under it
    /// [default: /etc/containerd/certs.d, /etc/containers, /etc/rancher/k3s]
    #[arg(long, value_name = "DIR")]
    pub node_dir: Option<PathBuf>,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

pub(super) fn run(args: &NodeConfigArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = settings(&args.mirror, None, config)?;
    let naming = settings.require_mirror("node-config")?;
    let configured = settings.registries.get(naming.mirror().host());
    let mut images = if args.images.is_empty() {
        Vec::new()
    } else {
        listed_images(
            &args.images,
            &settings.rules,
            &args
                .images
                .charts
                .render(&args.images.charts.options(None, &settings.registries))?,
        )?
    };
    if let Some(bundle) = &args.bundle {
        images.extend(
            OciLayout::open(bundle)
                .and_then(|l| l.image_names())
                .with_context(|| {
                    format!(
                        "--bundle {}: give the directory or tar that `save -o` wrote",
                        bundle.display()
                    )
                })?,
        );
    }
    let routes = nodeconfig::routes(&images, &args.sources, naming)?;
    let ca_file = args
        .ca_file
        .clone()
        .or_else(|| configured.and_then(|c| c.ca_file.clone()));
    let node_config = NodeConfig {
        naming: naming.clone(),
        routes,
        plain_http: args.plain_http || configured.is_some_and(|c| c.insecure),
        ca: ca_file.as_deref().map(read_ca).transpose()?,
        node_dir: args
            .node_dir
            .clone()
            .unwrap_or_else(|| args.format.default_node_dir().into()),
    };
    if node_config.plain_http && node_config.ca.is_some() {
        anyhow::bail!(
            "the mirror {} is set to plain HTTP and given a CA: a CA is for TLS; drop one of them",
            naming.mirror()
        );
    }
    let files = nodeconfig::render(&node_config, args.format)?;
    match &args.output {
        Some(dir) => {
            nodeconfig::write_into(dir, &files)?;
            for f in &files {
                println!("wrote {}", dir.join(&f.path).display());
            }
            eprintln!(
                "install them under {} on every node",
                node_config.node_dir.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            for f in &files {
                writeln!(out, "# ==> {} <==", f.path.display())?;
                out.write_all(&f.contents)?;
            }
            out.flush()?;
        }
    }
    Ok(EXIT_OK)
}

/// The mirror's CA: a PEM file of bounded size holding a certificate.
fn read_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    let what = || {
        format!(
            "CA file {} (--ca-file or registries.MIRROR.caFile)",
            path.display()
        )
    };
    let file = std::fs::File::open(path).with_context(what)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_CA_BYTES + 1), &mut bytes)
        .with_context(what)?;
    if bytes.len() as u64 > MAX_CA_BYTES {
        anyhow::bail!(
            "{} is larger than 1 MiB; give the mirror's CA certificate",
            what()
        );
    }
    const PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";
    if !bytes.windows(PEM.len()).any(|w| w == PEM) {
        anyhow::bail!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA that signed the mirror's certificate, in PEM",
            what()
        );
    }
    Ok(bytes)
}
