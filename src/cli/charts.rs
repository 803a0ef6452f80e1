//! `charts BUNDLE [-d DIR]`: the charts a bundle carries, and with `-d` each written out as
//! `NAME-VERSION.tgz`, for users who install from files (`helm install REL ./NAME-VERSION.tgz`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{EXIT_OK, ExitStatus};
use crate::chart::bundle::{charts_in, write_charts};
use crate::transfer::layout::OciLayout;

#[derive(Debug, Args)]
pub(crate) struct ChartsArgs {
    /// The bundle `save` wrote: a directory, or a tar (plain, .gz, .zst, ...)
    #[arg(value_name = "DIR|FILE.tar")]
    pub(crate) bundle: PathBuf,
    /// Write each chart into this directory as NAME-VERSION.tgz
    #[arg(short = 'd', long = "output-dir", value_name = "DIR")]
    pub(crate) output_dir: Option<PathBuf>,
}

pub(crate) fn run(args: &ChartsArgs, _config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    if !args.bundle.exists() {
        anyhow::bail!(
            "{}: no such file or directory; give the directory or tar that `save -o` wrote",
            args.bundle.display()
        );
    }
    let layout = std::sync::Arc::new(
        OciLayout::open(&args.bundle)
            .with_context(|| format!("{}: cannot read it as a bundle", args.bundle.display()))?,
    );
    let charts = charts_in(&layout)?;
    if charts.is_empty() {
        anyhow::bail!(
            "{} carries no charts; save them into it with `kubectl airgap save --chart CHART`",
            args.bundle.display()
        );
    }
    let Some(dir) = &args.output_dir else {
        for c in &charts {
            println!("{}  {}  {}  {}", c.name, c.version, c.digest, c.reference);
        }
        return Ok(EXIT_OK);
    };
    let written = super::runtime()?.block_on(write_charts(&layout, &charts, dir))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(EXIT_OK)
}
