//! `images`: what images manifests need, where each is used, and its mirror name.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::chart_args::ChartArgs;
use super::{EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::chart::Rendered;
use crate::ess::ImagesDigests;
use crate::manifest::rules::RuleSet;
use crate::manifest::scan::{Location, Suspect};
use crate::manifest::{ImageUse, StreamScan, scan_stream};
use crate::mirror::canonical_reference;
use crate::reference::Reference;

#[derive(Debug, Args)]
pub struct ImagesArgs {
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
pub enum ImagesFormat {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    suspects: Option<Vec<Suspect>>,
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

/// Where a command that acts on images (`check`, `push`, `save`) learns which: manifests, a
/// lock file, or both.
#[derive(Debug, Clone, Args)]
pub struct ImageListArgs {
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
    #[command(flatten)]
    pub charts: ChartArgs,
}

impl ImageListArgs {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.lock.is_none()
            && self.images_digests.is_none()
            && self.charts.is_empty()
    }

    /// The image uses of the manifests (`-f`), the images_digests file and the rendered
    /// charts, per input.
    pub fn scan(&self, rules: &RuleSet, charts: &[Rendered]) -> anyhow::Result<Vec<InputScan>> {
        scan_inputs(
            &self.files,
            self.recursive,
            self.images_digests.as_deref(),
            charts,
            rules,
            false,
        )
    }

    pub fn reads_stdin(&self) -> bool {
        self.files.iter().any(|f| f.as_os_str() == "-")
    }
}

/// The manifest files that `-f` arguments name, in a stable order.
pub fn expand_inputs(files: &[PathBuf], recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in files {
        if f.as_os_str() == "-" {
            out.push(f.clone());
        } else if f.is_dir() {
            collect_dir(f, recursive, &mut out)?;
        } else if f.exists() {
            out.push(f.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", f.display());
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect_dir(&p, recursive, out)?;
            }
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Every input's image uses: the manifests (`-f`), an images_digests file, then each chart's
/// rendered manifests, scanned as `-f` would scan them.
fn scan_inputs(
    files: &[PathBuf],
    recursive: bool,
    images_digests: Option<&Path>,
    charts: &[Rendered],
    rules: &RuleSet,
    suspects: bool,
) -> anyhow::Result<Vec<InputScan>> {
    let mut out = collect(files, recursive, rules, suspects)?;
    if let Some(file) = images_digests {
        out.push(ess_uses(file)?);
    }
    for r in charts {
        let name = format!("chart {}-{}", r.chart.name, r.chart.version);
        let scan = scan_stream(&r.manifests[..], &name, rules, suspects)
            .with_context(|| r.chart.label.clone())?;
        out.push(InputScan { name, scan });
    }
    Ok(out)
}

/// The images of an Element Server Suite images_digests.yml, as uses of kind `images_digests`
/// at the component.container path.
fn ess_uses(file: &Path) -> anyhow::Result<InputScan> {
    let digests = ImagesDigests::load(file)?;
    let name = file.display().to_string();
    let uses = digests
        .images
        .into_iter()
        .map(|i| ImageUse {
            reference: i.reference,
            location: Location {
                kind: "images_digests".into(),
                namespace: None,
                name: None,
                path: i.path,
                rule: "element-server-suite".into(),
                helm_hook: None,
                line: i.line,
                document: 1,
            },
        })
        .collect();
    Ok(InputScan {
        name,
        scan: StreamScan {
            uses,
            ..StreamScan::default()
        },
    })
}

/// What one input holds, by its name.
pub struct InputScan {
    pub name: String,
    pub scan: StreamScan,
}

/// Every image use and suspect in the named inputs.
pub fn collect(
    files: &[PathBuf],
    recursive: bool,
    rules: &RuleSet,
    suspects: bool,
) -> anyhow::Result<Vec<InputScan>> {
    let mut out = Vec::new();
    for path in expand_inputs(files, recursive)? {
        let (name, result) = if path.as_os_str() == "-" {
            let stdin = std::io::stdin();
            (
                "stdin".to_string(),
                scan_stream(stdin.lock(), "stdin", rules, suspects),
            )
        } else {
            let name = path.display().to_string();
            let file = std::fs::File::open(&path).with_context(|| format!("opening {name}"))?;
            let r = scan_stream(
                BufReader::with_capacity(1 << 16, file),
                &name,
                rules,
                suspects,
            );
            (name, r)
        };
        out.push(InputScan {
            name,
            scan: result?,
        });
    }
    Ok(out)
}

pub fn run(args: &ImagesArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let settings = settings(&args.mirror, None, config)?;
    let charts = args.charts.render(args.namespace.as_deref())?;
    let inputs = scan_inputs(
        &args.files,
        args.recursive,
        args.images_digests.as_deref(),
        &charts,
        &settings.rules,
        args.suspects,
    )?;
    let mut images: BTreeMap<String, ImageReport> = BTreeMap::new();
    let mut repositories: BTreeMap<String, ImageReport> = BTreeMap::new();
    let mut suspects = Vec::new();
    let naming = settings.naming.as_ref();
    for input in inputs {
        let file = &input.name;
        for u in input.scan.uses {
            add_use(&mut images, u, file, naming, canonical_reference, |m| {
                m.to_string()
            })?;
        }
        for u in input.scan.repositories {
            add_use(
                &mut repositories,
                u,
                file,
                naming,
                Reference::name,
                Reference::name,
            )?;
        }
        suspects.extend(input.scan.suspects);
    }
    let report = Report {
        images: images.into_values().collect(),
        repositories: repositories.into_values().collect(),
        suspects: args.suspects.then_some(suspects),
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

/// Adds a use to the report entry of its source (`key` names it, `shown` names its mirror).
fn add_use(
    by_source: &mut BTreeMap<String, ImageReport>,
    u: ImageUse,
    file: &str,
    naming: Option<&crate::mirror::MirrorNaming>,
    key: impl Fn(&Reference) -> String,
    shown: impl Fn(&Reference) -> String,
) -> anyhow::Result<()> {
    let source = key(&u.reference);
    let entry = match by_source.entry(source.clone()) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let mirror = match naming {
                Some(n) => Some(shown(&n.map(&u.reference)?)),
                None => None,
            };
            e.insert(ImageReport {
                source,
                mirror,
                locations: Vec::new(),
            })
        }
    };
    entry.locations.push(LocationReport {
        file: file.to_string(),
        kind: u.location.kind,
        namespace: u.location.namespace,
        name: u.location.name,
        path: u.location.path,
        rule: u.location.rule,
        line: u.location.line,
    });
    Ok(())
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
