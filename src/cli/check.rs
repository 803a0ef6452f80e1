//! `check`: does the mirror hold every image the manifests (or a lock file) need?
//!
//! One exact answer before anything reaches the cluster, instead of ImagePullBackOff one Pod
//! at a time. Exit codes follow `kubectl diff`: 0 all present, 1 some missing or mismatched,
//! 2 the answer is incomplete (a registry unreachable, credentials refused, bad input).
//!
//! `--bundle PATH` asks the same of an offline bundle instead of the mirror ([`crate::check`]):
//! the bundle replaces the mirror registry, so `--registry` and `--cluster` are refused beside it
//! (a registry from AIRGAP_REGISTRY or the config file is ignored).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;

use super::cluster_args::{ConnectionArgs, NamespaceArgs};
use super::images::ImageListArgs;
use super::registry_args::RegistryArgs;
use super::{EXIT_ERROR, EXIT_NO, EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::check::{Place, Query, Status, Verdict};
use crate::cluster::{Cluster, Inventory, Unreadable, Use};
use crate::inputs::{Entry, ImageSet, Provenance};
use crate::mirror::Collisions;
use crate::oci::Platform;
use crate::reference::Reference;
use crate::registry::Registry;

mod signatures;

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub images: ImageListArgs,
    /// Check what runs in the cluster: the images of every Pod, workload template and custom
    /// resource the rules know, and what Pods report having run (--cluster=NAME picks a
    /// kubeconfig cluster)
    #[arg(
        long = "cluster",
        value_name = "NAME",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub cluster: Option<String>,
    /// Check an offline bundle instead of the mirror registry: a directory or tar (.tar,
    /// .tar.gz, .tar.zst) that `save` wrote, or an OCI layout naming its images by full
    /// reference. Images are found by their original names; exit 0 when it holds all, 1 naming
    /// what it lacks, 2 when it cannot be read. Not with --registry or --cluster
    #[arg(
        long = "bundle",
        value_name = "DIR|FILE.tar",
        conflicts_with = "cluster"
    )]
    pub bundle: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Require these platforms of every image, OS/ARCH[/VARIANT] (repeatable)
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    pub platforms: Vec<Platform>,
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = CheckFormat::Table)]
    pub output: CheckFormat,
    /// Check that the mirror holds each image's signatures: with --bundle or --lock, each
    /// signature, attestation, SBOM and referrer it carried (the bundle is the input, the
    /// mirror is checked); otherwise a cosign sha256-<digest>.sig tag or a signature referrer.
    /// Exit 1 naming the images that lack them
    #[arg(long)]
    pub signatures: bool,
    #[command(flatten)]
    pub mirror: MirrorArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CheckFormat {
    Table,
    Json,
    /// An images.lock.yaml of the images found, at the digests found: on the air-gapped side,
    /// what `save --have` makes the next bundle a delta of
    Lock,
}

/// One image to look for, and its name in the mirror (`None` when a bundle is checked: it
/// holds images by their source names).
struct Wanted {
    entry: Entry,
    mirror: Option<Reference>,
    /// For a name an operator asks only of the mirror: the image it is a copy of.
    copy_of: Option<Reference>,
}

#[derive(Serialize)]
struct Report<'a> {
    /// The bundle checked, instead of the mirror.
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle: Option<String>,
    images: Vec<ImageReport<'a>>,
    summary: Summary,
    #[serde(rename = "helm3HookImages", skip_serializing_if = "Vec::is_empty")]
    helm3_hook_images: Vec<String>,
    /// Cluster lists that could not be read (forbidden, timed out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable: Vec<Unreadable>,
}

#[derive(Serialize)]
struct ImageReport<'a> {
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<String>,
    status: Status,
    digest: Option<&'a str>,
    detail: &'a str,
    /// The few words a table row gives a host's failure, said whole once on stderr.
    #[serde(skip)]
    host_wide: Option<&'a str>,
    #[serde(rename = "pointsAtMirror", skip_serializing_if = "Option::is_none")]
    points_at_mirror: Option<bool>,
    #[serde(rename = "usedBy", skip_serializing_if = "Vec::is_empty")]
    used_by: Vec<&'a Use>,
}

#[derive(Serialize, Default)]
struct Summary {
    total: usize,
    present: usize,
    missing: usize,
    mismatch: usize,
    error: usize,
    /// Images the cluster names outside the mirror (their mirror copies are what was checked).
    #[serde(rename = "outsideMirror", skip_serializing_if = "Option::is_none")]
    outside_mirror: Option<usize>,
}

pub(super) fn run(args: &CheckArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    if args.signatures {
        return signatures::run(args, config);
    }
    if let Some(bundle) = &args.bundle {
        return check_bundle(args, bundle, config);
    }
    if args.images.is_empty() && args.cluster.is_none() {
        anyhow::bail!(
            "nothing to check: give manifests with -f FILE|DIR|- (e.g. `helm template ... | kubectl airgap check -f -`), a chart with --chart, a lock file with --lock, or --cluster"
        );
    }
    if args.cluster.is_none() && args.namespaces.is_set() && args.images.charts.is_empty() {
        anyhow::bail!(
            "-n/--namespace and -A/--all-namespaces choose what --cluster reads (and the namespace --chart renders for); add --cluster or --chart"
        );
    }
    if args.registry.login.password_stdin && args.images.reads_stdin() {
        anyhow::bail!(
            "--password-stdin and -f - cannot both read stdin; put the manifests in a file"
        );
    }
    let settings = settings(&args.mirror, None, config)?;
    let naming = settings.require_mirror("check")?;
    let options = args
        .registry
        .options(Some(naming.mirror().host()), &settings.registries)?;
    let runtime = super::runtime()?;
    let inventory = match &args.cluster {
        Some(name) => Some(runtime.block_on(read_cluster(args, name, &settings.rules))?),
        None => None,
    };
    let wanted = wanted_in_mirror(
        args,
        &settings.rules,
        naming,
        &options.hosts,
        inventory.as_ref(),
    )?;

    let place = Place::Registry(Arc::new(Registry::new(options)));
    let verdicts = runtime.block_on(place.check(queries(&wanted), &args.platforms))?;

    report(
        args,
        &wanted,
        &verdicts,
        Some(naming.mirror()),
        inventory.map(|i| i.unreadable),
        None,
    )
}

/// `check --bundle`: the same images and the same report, answered by the bundle.
fn check_bundle(
    args: &CheckArgs,
    path: &Path,
    config: Option<&Path>,
) -> anyhow::Result<ExitStatus> {
    // A registry from AIRGAP_REGISTRY or the config file is the user's default, not a request.
    let from_env = std::env::var("AIRGAP_REGISTRY").ok();
    if let Some(r) = &args.mirror.registry
        && from_env.as_ref() != Some(r)
    {
        anyhow::bail!(
            "--bundle {} and --registry {r}: check one or the other; --bundle checks the bundle in place of the mirror registry",
            path.display()
        );
    }
    if args.images.is_empty() {
        anyhow::bail!(
            "nothing to check the bundle {} against: give manifests with -f FILE|DIR|-, a chart with --chart, or a lock file with --lock",
            path.display()
        );
    }
    let settings = settings(&args.mirror, None, config)?;
    let bundle = crate::check::bundle::Bundle::open(path)?;
    if let Some(note) = bundle.unmatchable() {
        eprintln!("note: {note}");
    }
    if let Some((lock, text)) = bundle.delta()? {
        eprintln!("note: {}", delta_note(path, &lock, text.as_deref()));
    }
    let mut render = args
        .images
        .charts
        .options(render_namespace(args), &settings.registries);
    // A chart named by name is the bundle's own.
    render.bundle = render.bundle.or_else(|| Some(path.to_path_buf()));
    let charts = args.images.charts.render(&render)?;
    let wanted = wanted_images(args, &settings.rules, &charts, None, None)?;
    let place = Place::Bundle(Box::new(bundle));
    let verdicts = super::runtime()?.block_on(place.check(queries(&wanted), &args.platforms))?;
    report(
        args,
        &wanted,
        &verdicts,
        None,
        None,
        Some(path.display().to_string()),
    )
}

/// Writes the report (table or JSON) and the notes on stderr; the exit code.
fn report(
    args: &CheckArgs,
    wanted: &[Wanted],
    verdicts: &[Verdict],
    mirror: Option<&crate::mirror::Mirror>,
    unreadable: Option<Vec<Unreadable>>,
    bundle: Option<String>,
) -> anyhow::Result<ExitStatus> {
    let hook_only: Vec<&Wanted> = wanted.iter().filter(|w| w.entry.only_in_hooks()).collect();
    if !hook_only.is_empty() {
        eprintln!(
            "warning: Helm 3 does not post-render hooks, so under Helm 3 these images are pulled from their original registries (Helm 4 rewrites them):"
        );
        for w in &hook_only {
            eprintln!(
                "  {}  used by {}",
                w.entry.source.familiar(),
                w.entry.helm_hooks().join(", ")
            );
        }
    }

    // Whether the cluster names the mirror itself; only asked of images the cluster uses.
    let points_at_mirror = |w: &Wanted| {
        let used = w.entry.cluster_uses().next().is_some();
        mirror.and_then(|m| used.then(|| m.holds(&w.entry.source)))
    };
    let mut summary = Summary {
        total: verdicts.len(),
        outside_mirror: unreadable.as_ref().map(|_| {
            wanted
                .iter()
                .filter(|w| points_at_mirror(w) == Some(false))
                .count()
        }),
        ..Summary::default()
    };
    for v in verdicts {
        match v.status {
            Status::Present => summary.present += 1,
            Status::Missing => summary.missing += 1,
            Status::Mismatch => summary.mismatch += 1,
            Status::Error => summary.error += 1,
        }
    }
    let report = Report {
        images: wanted
            .iter()
            .zip(verdicts)
            .map(|(w, v)| ImageReport {
                source: w.entry.source.docker_ref(),
                mirror: w.mirror.as_ref().map(Reference::docker_ref),
                status: v.status,
                digest: v.digest.as_deref(),
                detail: &v.detail,
                host_wide: v.host_wide.as_deref(),
                points_at_mirror: points_at_mirror(w),
                used_by: w.entry.cluster_uses().collect(),
            })
            .collect(),
        helm3_hook_images: hook_only
            .iter()
            .map(|w| w.entry.source.docker_ref())
            .collect(),
        unreadable: unreadable.unwrap_or_default(),
        bundle,
        summary,
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        CheckFormat::Table => write_table(&mut out, &report)?,
        CheckFormat::Lock => {
            let images = wanted
                .iter()
                .zip(verdicts)
                .filter(|(_, v)| v.status == Status::Present)
                .map(|(w, v)| crate::lock::LockedImage {
                    source: w.entry.source.to_string(),
                    digest: v.digest.as_ref().map(ToString::to_string),
                    media_type: None,
                    platforms: Vec::new(),
                    mirror: w.mirror.as_ref().map(ToString::to_string),
                    copy_of: w.copy_of.as_ref().map(ToString::to_string),
                })
                .collect();
            let lock = crate::lock::LockFile::new(images, Vec::new());
            out.write_all(lock.to_yaml()?.as_bytes())?;
        }
    }
    out.flush()?;

    // Say once, on stderr, what to do about each distinct failure, and how many images it
    // leaves unchecked.
    let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
    for v in verdicts.iter().filter(|v| v.status == Status::Error) {
        *distinct.entry(&v.detail).or_default() += 1;
    }
    for (e, n) in distinct {
        eprintln!("error: {e} ({})", affects(n));
    }
    let s = &report.summary;
    Ok(if s.error > 0 {
        EXIT_ERROR
    } else if s.missing + s.mismatch > 0 {
        EXIT_NO
    } else {
        EXIT_OK
    })
}

/// What a delta bundle needs of the mirror, said by `check --bundle`: its base images.
fn delta_note(path: &Path, lock: &str, text: Option<&str>) -> String {
    let lock_path = path.join(crate::transfer::layout::LOCK_NAME);
    let base = text
        .and_then(|t| crate::lock::LockFile::parse(t, &lock_path).ok())
        .and_then(|f| f.base)
        .filter(|b| b.lock == lock);
    let head = format!(
        "{} is a delta bundle of the lock {lock}: it leaves out the layers that lock's images hold, so push it only into a mirror that holds them",
        path.display()
    );
    match base {
        Some(b) => {
            let names: Vec<&str> = b.images.iter().take(5).map(|i| i.source.as_str()).collect();
            let more = if b.images.len() > names.len() {
                ", ..."
            } else {
                ""
            };
            format!(
                "{head}; its base: {} images ({}{more})",
                b.images.len(),
                names.join(", ")
            )
        }
        None => format!(
            "{head}; its {} does not list them, so save it again",
            crate::transfer::layout::LOCK_NAME
        ),
    }
}

/// What to ask the place checked: each image by its mirror name (its source name in a bundle).
fn queries(wanted: &[Wanted]) -> Vec<Query> {
    wanted
        .iter()
        .map(|w| Query {
            image: w.mirror.clone().unwrap_or_else(|| w.entry.source.clone()),
            digest: w.entry.locked_digest().cloned(),
        })
        .collect()
}

/// The namespace charts render for: the one -n given, if one is.
fn render_namespace(args: &CheckArgs) -> Option<&str> {
    match &args.namespaces.namespaces[..] {
        [one] => Some(one.as_str()),
        _ => None,
    }
}

/// The images to look for in the mirror: the charts rendered with the mirror's registry
/// options, then [`wanted_images`] named in the mirror.
fn wanted_in_mirror(
    args: &CheckArgs,
    rules: &crate::manifest::rules::RuleSet,
    naming: &crate::mirror::MirrorNaming,
    hosts: &std::collections::BTreeMap<String, crate::registry::HostOptions>,
    inventory: Option<&Inventory>,
) -> anyhow::Result<Vec<Wanted>> {
    let charts = args
        .images
        .charts
        .render(&args.images.charts.options(render_namespace(args), hosts))?;
    wanted_images(args, rules, &charts, Some(naming), inventory)
}

/// The images to check: what the cluster runs, then the manifests and the lock file, each
/// once, named in the mirror when one is checked.
fn wanted_images(
    args: &CheckArgs,
    rules: &crate::manifest::rules::RuleSet,
    charts: &[crate::chart::Rendered],
    naming: Option<&crate::mirror::MirrorNaming>,
    inventory: Option<&Inventory>,
) -> anyhow::Result<Vec<Wanted>> {
    let mut set = ImageSet::default();
    if let Some(inventory) = inventory {
        for warning in set.add_cluster(inventory) {
            eprintln!("warning: {warning}");
        }
    }
    args.images.sources().read_into(&mut set, rules, false)?;
    set.add_charts(charts, rules, false)?;
    // Each chart itself, pinned to the digest we would have packaged it to (an OCI chart's is
    // its registry's: looked for by tag).
    for r in charts {
        let digest = r.chart.manifest_digest()?;
        set.add(r.chart.reference.clone(), Provenance::Lock { digest });
    }
    if set.repositories().len() > 0 {
        // Rewritten by post-render, but their tags are their operators' to add: there is no
        // image to look for. Said, so that a check of them alone is not read as "all present".
        eprintln!(
            "note: {} repository-only value(s) not checked, since their operators add the tag: {}; mirror the tags those operators use",
            set.repositories().len(),
            set.repositories()
                .map(|e| e.source.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut collisions = Collisions::new();
    // A name an operator asks only of the mirror is looked for there as any image is.
    let aliases: Vec<(Entry, Reference)> = set
        .aliases()
        .map(|(e, image)| (e.clone(), image.clone()))
        .collect();
    let images = set.into_images().into_iter().map(|e| (e, None));
    images
        .chain(aliases.into_iter().map(|(e, i)| (e, Some(i))))
        .map(|(entry, copy_of)| {
            let mirror = match naming {
                Some(naming) => {
                    let mirror = naming.map(&entry.source)?;
                    // A reference already in the mirror (a cluster that runs mirrored images)
                    // is its own mirror name, not a second source for that repository.
                    if !naming.mirror().holds(&entry.source) {
                        collisions.insert(&entry.source, &mirror)?;
                    }
                    Some(mirror)
                }
                None => None,
            };
            Ok(Wanted {
                entry,
                mirror,
                copy_of,
            })
        })
        .collect()
}

fn write_table(out: &mut impl Write, report: &Report<'_>) -> std::io::Result<()> {
    let width = |f: &dyn Fn(&ImageReport<'_>) -> usize, min: usize| {
        report.images.iter().map(f).max().unwrap_or(0).max(min)
    };
    // A bundle holds images by their source names: no mirror column.
    let with_mirror = report.bundle.is_none();
    let mw = width(&|i| i.mirror.as_ref().map_or(0, String::len), 6);
    let sw = width(&|i| i.source.len(), 6);
    let mirror_cell = |m: &str| {
        if with_mirror {
            format!("{m:<mw$}  ")
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "{:<8}  {}{:<sw$}  DETAIL",
        "STATUS",
        mirror_cell("MIRROR"),
        "SOURCE"
    )?;
    for i in &report.images {
        let line = format!(
            "{:<8}  {}{:<sw$}  {}",
            i.status.to_string(),
            mirror_cell(i.mirror.as_deref().unwrap_or("")),
            i.source,
            detail(i)
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    let s = &report.summary;
    let outside = match s.outside_mirror {
        Some(n) => format!(", {n} named outside the mirror"),
        None => String::new(),
    };
    let place = match &report.bundle {
        Some(b) => format!(" in bundle {b}"),
        None => String::new(),
    };
    writeln!(
        out,
        "{} images{place}: {} present, {} missing, {} mismatched, {} errors{outside}",
        s.total, s.present, s.missing, s.mismatch, s.error
    )
}

/// `affects 20 images`.
pub(crate) fn affects(n: usize) -> String {
    format!("affects {n} image{}", if n == 1 { "" } else { "s" })
}

/// The verdict's detail, and for cluster images where they point and who uses them.
fn detail(i: &ImageReport<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if i.points_at_mirror == Some(false) {
        parts.push("cluster names it outside the mirror".into());
    }
    match i.host_wide {
        Some(words) => parts.push(format!("{words} (error below)")),
        None if !i.detail.is_empty() => parts.push(i.detail.to_string()),
        None => {}
    }
    if let Some((first, rest)) = i.used_by.split_first() {
        let ran = if first.ran { " (ran)" } else { "" };
        let more = match rest.len() {
            0 => String::new(),
            n => format!(" +{n} more"),
        };
        parts.push(format!("used by {}{ran}{more}", first.object()));
    }
    parts.join("; ")
}

/// Reads the cluster, and says on stderr what could not be read. Nothing read at all is an
/// error: an empty answer would look like a clean cluster.
async fn read_cluster(
    args: &CheckArgs,
    name: &str,
    rules: &crate::manifest::rules::RuleSet,
) -> anyhow::Result<Inventory> {
    let cluster = Cluster::connect(
        &args
            .connection
            .connection(Some(name), args.registry.timeout),
    )
    .await?;
    let inventory = cluster.inventory(&args.namespaces.scope(), rules).await;
    if inventory.lists_read == 0 {
        let reasons: std::collections::BTreeSet<&str> = inventory
            .unreadable
            .iter()
            .map(|u| u.reason.as_str())
            .collect();
        anyhow::bail!(
            "nothing could be read from the cluster at {}: {}",
            cluster.server,
            reasons.into_iter().collect::<Vec<_>>().join("; ")
        );
    }
    let mut by_namespace: BTreeMap<Option<&str>, (Vec<&str>, &str)> = BTreeMap::new();
    for u in &inventory.unreadable {
        let entry = by_namespace
            .entry(u.namespace.as_deref())
            .or_insert((Vec::new(), &u.reason));
        entry.0.push(&u.kind);
    }
    for (namespace, (kinds, reason)) in by_namespace {
        let place = match namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".to_string(),
        };
        eprintln!(
            "warning: could not read {} {place}, so their images are not checked: {reason}",
            kinds.join(", ")
        );
    }
    for why in &inventory.unscanned {
        eprintln!(
            "warning: {why}; that object's images are not checked (fix the object, or the config file's rule for its kind)"
        );
    }
    if inventory.restarts > 0 {
        eprintln!(
            "note: {} list(s) started again after the API server expired their continue token",
            inventory.restarts
        );
    }
    Ok(inventory)
}
