//! `images`: what images manifests need, where each is used, and its mirror name.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::chart_args::ChartArgs;
use super::{EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::ess::ImagesDigests;
use crate::inputs::{Entry, Sources};
use crate::manifest::scan::Suspect;
use crate::mirror::canonical_reference;
use crate::reference::Reference;

#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {
    /// Manifests: a file, a directory (its .yaml/.yml/.json files), or - for stdin; repeatable
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required_unless_present_any = ["images_digests", "charts"]
    )]
    pub files: Vec<PathBuf>,
    /// Read directories recursively
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// An Element Server Suite images_digests.yml: its images are listed too
    #[arg(long = "images-digests", value_name = "FILE")]
    pub images_digests: Option<PathBuf>,
    #[command(flatten)]
    pub charts: ChartArgs,
    /// Output format; ess-configmap writes the ConfigMap that points every container of
    /// --images-digests at the mirror (needs --registry and --name)
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ImagesFormat::Table)]
    pub output: ImagesFormat,
    /// The ConfigMap's name (-o ess-configmap)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The ConfigMap's namespace (-o ess-configmap), and the namespace --chart renders for
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Also list strings that look like images but that no rule covered
    #[arg(long)]
    pub suspects: bool,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ImagesFormat {
    Table,
    Json,
    Yaml,
    /// Element Server Suite's images_digests ConfigMap, pointed at the mirror
    EssConfigmap,
}

#[derive(Debug, Serialize)]
struct Report {
    images: Vec<ImageReport>,
    /// Repository-only values: rewritten to the mirror, but not images to copy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    repositories: Vec<ImageReport>,
    /// Names operators ask only of a mirror, each a copy of an image above that its source
    /// names otherwise: `push` and `save` copy the image under this name too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mirror_copies: Vec<CopyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suspects: Option<Vec<Suspect>>,
}

#[derive(Debug, Serialize)]
struct CopyReport {
    #[serde(flatten)]
    name: ImageReport,
    copy_of: String,
}

#[derive(Debug, Serialize)]
struct ImageReport {
    source: String,
    mirror: Option<String>,
    locations: Vec<LocationReport>,
}

#[derive(Debug, Serialize)]
struct LocationReport {
    file: String,
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
    path: String,
    rule: String,
    line: usize,
}

/// Where a command that acts on images (`check`, `push`, `save`) learns which: manifests,
/// charts, a lock file, or several.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImageListArgs {
    /// Manifests: a file, a directory (its .yaml/.yml/.json files), or - for stdin; repeatable
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
    /// Read directories recursively
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// An images lock file: its images are included, and their digests must match
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// An Element Server Suite images_digests.yml: its images are included, pinned by digest
    #[arg(long = "images-digests", value_name = "FILE")]
    pub images_digests: Option<PathBuf>,
    /// A file of image references, one a line (# comments); repeatable
    #[arg(long = "image-list", value_name = "FILE")]
    pub image_lists: Vec<PathBuf>,
    #[command(flatten)]
    pub charts: ChartArgs,
}

impl ImageListArgs {
    /// The flags, resolved: where to read images from.
    pub(crate) fn sources(&self) -> Sources {
        Sources {
            files: self.files.clone(),
            recursive: self.recursive,
            lock: self.lock.clone(),
            images_digests: self.images_digests.iter().cloned().collect(),
            image_lists: self.image_lists.clone(),
            images: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sources().is_empty() && self.charts.is_empty()
    }

    pub(crate) fn reads_stdin(&self) -> bool {
        self.sources().reads_stdin()
    }
}

pub(super) fn run(args: &ImagesArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = settings(&args.mirror, None, config)?;
    let sources = Sources {
        files: args.files.clone(),
        recursive: args.recursive,
        lock: None,
        images_digests: args.images_digests.iter().cloned().collect(),
        ..Sources::default()
    };
    let charts = args.charts.render(
        &args
            .charts
            .options(args.namespace.as_deref(), &settings.registries),
    )?;
    let mut set = sources.read(&settings.rules, args.suspects)?;
    set.add_charts(&charts, &settings.rules, args.suspects)?;
    let naming = settings.naming.as_ref();
    let report = Report {
        images: set
            .images()
            .map(|e| image_report(e, naming, canonical_reference, |m| m.to_string()))
            .collect::<anyhow::Result<_>>()?,
        repositories: set
            .repositories()
            .map(|e| image_report(e, naming, Reference::name, Reference::name))
            .collect::<anyhow::Result<_>>()?,
        mirror_copies: set
            .aliases()
            .map(|(e, image)| {
                Ok(CopyReport {
                    name: image_report(e, naming, canonical_reference, |m| m.to_string())?,
                    copy_of: canonical_reference(image),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        suspects: args.suspects.then(|| set.suspects().to_vec()),
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        ImagesFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ImagesFormat::Yaml => out.write_all(serde_norway::to_string(&report)?.as_bytes())?,
        ImagesFormat::Table => write_table(&mut out, &report)?,
        ImagesFormat::EssConfigmap => {
            out.write_all(ess_config_map(args, settings.naming.as_ref())?.as_bytes())?
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}

fn write_rows(
    out: &mut impl Write,
    entries: &[ImageReport],
    width: usize,
    mirror_width: usize,
) -> std::io::Result<()> {
    for image in entries {
        for (i, l) in image.locations.iter().enumerate() {
            let (source, mirror) = if i == 0 {
                (
                    image.source.as_str(),
                    image.mirror.as_deref().unwrap_or("-"),
                )
            } else {
                ("", "")
            };
            let object = match (&l.namespace, &l.name) {
                (Some(ns), Some(n)) => format!("{} {ns}/{n}", l.kind),
                (None, Some(n)) => format!("{} {n}", l.kind),
                _ => l.kind.clone(),
            };
            writeln!(
                out,
                "{source:width$}  {mirror:mirror_width$}  {object} {}",
                l.path
            )?;
        }
    }
    Ok(())
}

/// An entry's row: its source (`key`), its mirror name (`shown`), and where it is used.
fn image_report(
    entry: &Entry,
    naming: Option<&crate::mirror::MirrorNaming>,
    key: impl Fn(&Reference) -> String,
    shown: impl Fn(&Reference) -> String,
) -> anyhow::Result<ImageReport> {
    Ok(ImageReport {
        source: key(&entry.source),
        mirror: match naming {
            Some(n) => Some(shown(&n.map(&entry.source)?)),
            None => None,
        },
        locations: entry
            .locations()
            .map(|(file, l)| LocationReport {
                file: file.to_string(),
                kind: l.kind.clone(),
                namespace: l.namespace.clone(),
                name: l.name.clone(),
                path: l.path.clone(),
                rule: l.rule.clone(),
                line: l.line,
            })
            .collect(),
    })
}

/// `-o ess-configmap`: the images_digests tree with every server and path in the mirror.
fn ess_config_map(
    args: &ImagesArgs,
    naming: Option<&crate::mirror::MirrorNaming>,
) -> anyhow::Result<String> {
    let Some(file) = &args.images_digests else {
        anyhow::bail!(
            "-o ess-configmap writes the images_digests ConfigMap: give the suite's file with --images-digests FILE"
        );
    };
    let Some(naming) = naming else {
        anyhow::bail!(
            "-o ess-configmap points the images at the mirror: name it with --registry (or AIRGAP_REGISTRY)"
        );
    };
    let Some(name) = &args.name else {
        anyhow::bail!("-o ess-configmap needs the ConfigMap's name: --name NAME");
    };
    crate::manifest::pull_secret::validate_name(name, "ConfigMap")
        .map_err(|e| anyhow::anyhow!("--name {name:?}: {e}"))?;
    ImagesDigests::load(file)?.config_map(naming, name, args.namespace.as_deref())
}

fn write_table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let all = || report.images.iter().chain(&report.repositories);
    let width = all()
        .map(|i| i.source.len())
        .max()
        .unwrap_or(0)
        .max("IMAGE".len());
    let mirror_width = all()
        .map(|i| i.mirror.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(0)
        .max("MIRROR".len());
    writeln!(
        out,
        "{:width$}  {:mirror_width$}  USED BY",
        "IMAGE", "MIRROR"
    )?;
    write_rows(out, &report.images, width, mirror_width)?;
    if !report.repositories.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "REPOSITORIES (rewritten; their operators add the tag, so nothing to copy): {}",
            report.repositories.len()
        )?;
        write_rows(out, &report.repositories, width, mirror_width)?;
    }
    if !report.mirror_copies.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "MIRROR COPIES (names operators ask only of a mirror; copied there from the image named): {}",
            report.mirror_copies.len()
        )?;
        for c in &report.mirror_copies {
            writeln!(out, "{}  <- {}", c.name.source, c.copy_of)?;
        }
    }
    if let Some(suspects) = &report.suspects {
        writeln!(out)?;
        writeln!(
            out,
            "SUSPECTS (look like images, no rule covers them): {}",
            suspects.len()
        )?;
        for s in suspects {
            writeln!(out, "{}  {} {}  line {}", s.value, s.kind, s.path, s.line)?;
        }
    }
    Ok(())
}
