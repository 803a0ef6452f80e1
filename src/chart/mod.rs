//! Charts as an input: an offline package is charts and the images they run, kept in step.
//!
//! A `--chart` is resolved to one packaged chart (`.tgz`) on the connected side: a directory is
//! copied, its missing dependencies built in the copy (never in the user's directory), and
//! packaged deterministically ([`package`]), so the same chart gives the same digest; a `.tgz`
//! is taken as it is; an `oci://` chart or a chart in a classic repository is pulled by the
//! user's Helm ([`helm`]) with the user's logins. The packaged chart is then rendered with the
//! user's values by `helm template --include-crds` (hooks included), and that text goes to the
//! same scanner as `-f`, so a chart gives the images its rendered manifests would.
//!
//! What is rendered is what is carried: the images come from the very bytes the bundle holds.

pub(crate) mod artifact;
pub(crate) mod bundle;
pub(crate) mod helm;
pub(crate) mod package;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub(crate) use helm::Helm;

use crate::oci::chart::Metadata;
use crate::reference::Reference;

/// One `--chart` with the flags that follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ChartRequest {
    /// A directory, a `.tgz`, `oci://HOST/PATH/NAME`, or a name in `repo`.
    pub(crate) chart: String,
    pub(crate) version: Option<String>,
    /// A classic chart repository's URL (its `index.yaml` names the chart).
    pub(crate) repo: Option<String>,
    pub(crate) values: Vec<PathBuf>,
    pub(crate) set: Vec<String>,
    pub(crate) set_string: Vec<String>,
}

/// What rendering passes to `helm template` for every chart, and where charts are read from.
#[derive(Debug, Clone, Default)]
pub(crate) struct RenderOptions {
    pub(crate) namespace: Option<String>,
    pub(crate) kube_version: Option<String>,
    pub(crate) api_versions: Vec<String>,
    /// The registry settings (flags and config file) by host: an `oci://` chart is pulled with
    /// its host's CA, client certificate or plain HTTP, as images are.
    pub(crate) registries: std::collections::BTreeMap<String, crate::registry::HostOptions>,
    /// A bundle `save` wrote: a `--chart NAME` that is not a path is read from it.
    pub(crate) bundle: Option<PathBuf>,
}

impl RenderOptions {
    /// Fills what these options leave unset from `other` (flags over a package file).
    pub(crate) fn or(&mut self, other: RenderOptions) {
        self.namespace = self.namespace.take().or(other.namespace);
        self.kube_version = self.kube_version.take().or(other.kube_version);
        if self.api_versions.is_empty() {
            self.api_versions = other.api_versions;
        }
        self.bundle = self.bundle.take().or(other.bundle);
    }
}

/// Where a chart came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A directory, packaged by us.
    Dir,
    /// A packaged chart file, carried as it is.
    File,
    /// `oci://HOST/PATH/NAME`: its OCI artifact is copied as it is.
    Oci { repository: String },
    /// A classic repository: the `.tgz` its index points at, carried as it is.
    Repo { url: String },
    /// A chart in a bundle `save` wrote, read back under its bundle name.
    Bundle {
        reference: Reference,
        digest: crate::oci::Digest,
    },
}

/// A resolved chart: its packaged bytes, in a temporary directory of ours.
pub(crate) struct Chart {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) origin: Origin,
    /// Its name in a bundle: its own OCI reference, or one under `mirror::LOCAL_CHARTS`.
    pub(crate) reference: Reference,
    /// Its `Chart.yaml`, which the artifact's config carries.
    pub(crate) metadata: Metadata,
    /// How the user named it, for messages.
    pub(crate) label: String,
    /// The packaged chart, as the bundle carries it.
    pub(crate) tgz: PathBuf,
    _temp: crate::cleanup::TempDir,
}

impl Chart {
    /// The packaged chart's bytes.
    pub(crate) fn tgz(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.tgz).with_context(|| format!("{}: reading it", self.label))
    }

    /// How the user named it, as a lock file records it.
    pub(crate) fn source(&self) -> String {
        match &self.origin {
            Origin::Repo { url } => format!("{} --repo {url}", self.label_chart()),
            _ => self.label_chart().to_string(),
        }
    }

    /// The digest its artifact has wherever we wrote it; `None` for an OCI chart, copied as
    /// its registry made it.
    pub(crate) fn manifest_digest(&self) -> anyhow::Result<Option<crate::oci::Digest>> {
        Ok(match &self.origin {
            Origin::Oci { .. } => None,
            Origin::Bundle { digest, .. } => Some(digest.clone()),
            _ => Some(
                crate::oci::chart::artifact(&self.metadata, &self.tgz()?)
                    .manifest
                    .digest,
            ),
        })
    }

    fn label_chart(&self) -> &str {
        self.label.trim_start_matches("--chart ")
    }
}

/// A resolved chart and the manifests it rendered to.
pub(crate) struct Rendered {
    pub(crate) chart: Chart,
    pub(crate) manifests: Vec<u8>,
}

/// The prefix of our temporary directories (the PID follows, for `cleanup::sweep`).
const TEMP_PREFIX: &str = ".kubectl-airgap-chart-";

/// Resolves and renders every chart; the first failure is the error, naming its chart.
pub(crate) fn render_all(
    requests: &[ChartRequest],
    options: &RenderOptions,
    helm_flag: Option<&Path>,
) -> anyhow::Result<Vec<Rendered>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let helm = Helm::find(helm_flag)?;
    requests
        .iter()
        .map(|r| {
            let chart = resolve(&helm, r, options)?;
            let manifests = render(&helm, &chart, r, options)?;
            Ok(Rendered { chart, manifests })
        })
        .collect()
}

/// The chart a request names, packaged.
pub(crate) fn resolve(
    helm: &Helm,
    request: &ChartRequest,
    options: &RenderOptions,
) -> anyhow::Result<Chart> {
    let label = format!("--chart {}", request.chart);
    let temp_parent = std::env::temp_dir();
    crate::cleanup::sweep(&temp_parent, |name| {
        crate::cleanup::leading_pid(name.strip_prefix(TEMP_PREFIX)?)
    });
    let temp = crate::cleanup::TempDir::new_in(&temp_parent, TEMP_PREFIX)
        .with_context(|| format!("{label}: creating a temporary directory"))?;
    let pulled = temp.path().join("pulled");
    std::fs::create_dir(&pulled)
        .with_context(|| format!("{label}: creating {}", pulled.display()))?;
    let (origin, tgz) = if let Some(rest) = request.chart.strip_prefix("oci://") {
        if request.repo.is_some() {
            anyhow::bail!("{label}: an oci:// chart takes no --repo; drop it");
        }
        let Some(version) = &request.version else {
            anyhow::bail!(
                "{label}: an OCI chart needs its version, so that the next run saves the same chart: add --version V"
            );
        };
        let repository = rest.trim_end_matches('/').to_string();
        let mut args: Vec<std::ffi::OsString> = ["pull", &request.chart, "--version", version]
            .into_iter()
            .map(Into::into)
            .collect();
        args.extend(["--destination".into(), pulled.clone().into_os_string()]);
        let host = repository.split('/').next().unwrap_or_default();
        if let Some(h) = options.registries.get(crate::oci::hub::canonical(host)) {
            // The host's settings, as our registry client uses them for its images.
            args.extend(h.insecure.then(|| "--plain-http".into()));
            for (flag, file) in [
                ("--ca-file", &h.ca_file),
                ("--cert-file", &h.cert_file),
                ("--key-file", &h.key_file),
            ] {
                if let Some(f) = file {
                    args.extend([flag.into(), f.clone().into_os_string()]);
                }
            }
        }
        helm.run(
            &args,
            &format!(
                "{label} --version {version} could not be pulled (log in with `helm registry login {host}`)"
            ),
        )?;
        (Origin::Oci { repository }, only_tgz(&pulled, &label)?)
    } else if let Some(url) = &request.repo {
        let dest = pulled.to_string_lossy().into_owned();
        let mut args = vec!["pull", "--repo", url, "--destination", &dest];
        if let Some(v) = &request.version {
            args.extend(["--version", v]);
        }
        // After `--`, so a chart name from a package file is never read as one of Helm's flags.
        args.extend(["--", request.chart.as_str()]);
        helm.run(&args, &format!("{label} --repo {url} could not be pulled"))?;
        (
            Origin::Repo { url: url.clone() },
            only_tgz(&pulled, &label)?,
        )
    } else {
        let path = Path::new(&request.chart);
        if path.is_dir() {
            (Origin::Dir, package_dir(helm, path, temp.path(), &label)?)
        } else if path.is_file() {
            let copy = temp.path().join("chart.tgz");
            std::fs::copy(path, &copy).with_context(|| format!("{label}: reading it"))?;
            (Origin::File, copy)
        } else if let Some(bundle) = &options.bundle {
            from_bundle(bundle, request, &pulled, &label)?
        } else {
            anyhow::bail!(
                "{label}: no such directory or file; name a chart directory, a packaged .tgz, oci://HOST/PATH/NAME with --version, or a chart in a repository with --repo URL"
            );
        }
    };
    let bytes =
        std::fs::read(&tgz).with_context(|| format!("{label}: reading {}", tgz.display()))?;
    let meta = metadata(&bytes).with_context(|| format!("{label}: not a packaged Helm chart"))?;
    let tag = meta.version.replace('+', "_");
    let reference = match &origin {
        Origin::Oci { repository } => Reference::parse(&format!("{repository}:{tag}")),
        Origin::Bundle { reference, .. } => Ok(reference.clone()),
        _ => crate::mirror::local_chart(&meta.name, &meta.version),
    }
    .with_context(|| {
        format!(
            "{label}: chart {} version {} cannot be named in a registry",
            meta.name, meta.version
        )
    })?;
    if let Some(want) = &request.version
        && matches!(origin, Origin::Dir | Origin::File)
        && *want != meta.version
    {
        anyhow::bail!(
            "{label} is version {}, not --version {want}; drop --version or name the chart of that version",
            meta.version
        );
    }
    Ok(Chart {
        name: meta.name.clone(),
        version: meta.version.clone(),
        origin,
        reference,
        metadata: meta,
        label,
        tgz,
        _temp: temp,
    })
}

/// `helm template` of a resolved chart with the request's values.
pub(crate) fn render(
    helm: &Helm,
    chart: &Chart,
    request: &ChartRequest,
    options: &RenderOptions,
) -> anyhow::Result<Vec<u8>> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "template".into(),
        chart.tgz.clone().into(),
        "--include-crds".into(),
    ];
    let mut flag = |name: &str, value: &std::ffi::OsStr| {
        args.push(name.into());
        args.push(value.to_owned());
    };
    if let Some(n) = &options.namespace {
        flag("--namespace", n.as_ref());
    }
    if let Some(k) = &options.kube_version {
        flag("--kube-version", k.as_ref());
    }
    for a in &options.api_versions {
        flag("--api-versions", a.as_ref());
    }
    for v in &request.values {
        if !v.is_file() {
            anyhow::bail!("{}: --values {}: no such file", chart.label, v.display());
        }
        flag("--values", v.as_os_str());
    }
    for s in &request.set {
        flag("--set", s.as_ref());
    }
    for s in &request.set_string {
        flag("--set-string", s.as_ref());
    }
    helm.run(
        &args,
        &format!(
            "{} ({} {}) did not render; fix what Helm says",
            chart.label, chart.name, chart.version
        ),
    )
}

/// The chart `NAME` (of `--version`, when given) in a bundle, written into `dir`.
fn from_bundle(
    bundle: &Path,
    request: &ChartRequest,
    dir: &Path,
    label: &str,
) -> anyhow::Result<(Origin, PathBuf)> {
    let layout = std::sync::Arc::new(
        crate::transfer::layout::OciLayout::open(bundle)
            .with_context(|| format!("{label}: reading the bundle {}", bundle.display()))?,
    );
    let all = bundle::charts_in(&layout)?;
    let found: Vec<bundle::BundledChart> = all
        .into_iter()
        .filter(|c| c.name == request.chart)
        .filter(|c| request.version.as_ref().is_none_or(|v| *v == c.version))
        .collect();
    let [chart] = &found[..] else {
        anyhow::bail!(
            "{label}: the bundle {} holds {} chart(s) named so{}; give --version, or a directory, a .tgz, oci://... or --repo",
            bundle.display(),
            found.len(),
            request
                .version
                .as_ref()
                .map(|v| format!(" at version {v}"))
                .unwrap_or_default()
        );
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting a runtime to read the bundle")?;
    let written = runtime.block_on(bundle::write_charts(
        &layout,
        std::slice::from_ref(chart),
        dir,
    ))?;
    let origin = Origin::Bundle {
        reference: chart.reference.clone(),
        digest: chart.digest.clone(),
    };
    Ok((
        origin,
        written.into_iter().next().expect("one chart written"),
    ))
}

/// The one `.tgz` `helm pull` wrote into `dir`.
fn only_tgz(dir: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let mut found = std::fs::read_dir(dir)
        .with_context(|| format!("{label}: helm pull wrote nothing"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"));
    match (found.next(), found.next()) {
        (Some(p), None) => Ok(p),
        _ => anyhow::bail!(
            "{label}: helm pull did not write one .tgz into {}",
            dir.display()
        ),
    }
}

/// The `Chart.yaml` of a packaged chart.
fn metadata(tgz: &[u8]) -> anyhow::Result<Metadata> {
    let text = package::read_file(tgz, "Chart.yaml")?
        .ok_or_else(|| anyhow::anyhow!("it holds no NAME/Chart.yaml"))?;
    serde_norway::from_slice(&text).context("its Chart.yaml does not parse")
}

/// Packages the chart in `dir`: copied into `temp`, missing dependencies built there, packaged
/// by Helm and normalized. Returns the `.tgz`.
fn package_dir(helm: &Helm, dir: &Path, temp: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let chart_yaml = dir.join("Chart.yaml");
    let original = std::fs::read_to_string(&chart_yaml).with_context(|| {
        format!(
            "{label}: reading {}; a chart directory holds Chart.yaml",
            chart_yaml.display()
        )
    })?;
    let meta: Metadata = serde_norway::from_str(&original)
        .with_context(|| format!("{label}: {} does not parse", chart_yaml.display()))?;
    // The name comes from a file the user may not have written (a vendor's chart, a clone):
    // `/home/me` or `../..` would make the copy below write outside the temporary directory.
    if !bundle::safe_file_part(&meta.name) {
        anyhow::bail!(
            "{label}: {} names the chart {:?}, which is not a chart name (letters, digits, '-', '_', '.', '+', not starting with '.'); refusing to use it as a path: set `name:` in that Chart.yaml to the chart's name",
            chart_yaml.display(),
            crate::excerpt::Excerpt(&meta.name).to_string()
        );
    }
    let copy = temp.join("src").join(&meta.name);
    copy_dir(dir, &copy, 0).with_context(|| format!("{label}: copying it"))?;
    let missing: Vec<_> = meta
        .dependencies
        .iter()
        .filter(|d| !vendored(&copy.join("charts"), &d.name))
        .collect();
    if !missing.is_empty() {
        // Relative file:// dependencies name paths beside the user's directory, not the copy.
        let absolute = absolute_file_dependencies(&original, dir)?;
        std::fs::write(copy.join("Chart.yaml"), absolute)?;
        let lock = copy.join("Chart.lock");
        let user_lock = std::fs::read(&lock).ok();
        let _ = std::fs::remove_file(&lock);
        let names: Vec<String> = missing
            .iter()
            .map(|d| format!("{} ({})", d.name, d.repository))
            .collect();
        helm.run(
            &["dependency".as_ref(), "build".as_ref(), copy.as_os_str()],
            &format!(
                "{label}: its dependencies {} could not be built (add a classic repository with `helm repo add`, log in to an OCI one with `helm registry login`, or vendor them in charts/)",
                names.join(", ")
            ),
        )?;
        // Packaged with the user's Chart.yaml and lock: the absolute paths and the lock's
        // generation time are this machine's and this moment's, not the chart's.
        std::fs::write(copy.join("Chart.yaml"), &original)?;
        match user_lock {
            Some(l) => std::fs::write(&lock, l)?,
            None => std::fs::remove_file(&lock).or_else(ignore_missing)?,
        }
    }
    let out = temp.join("packaged");
    std::fs::create_dir_all(&out)?;
    helm.run(
        &[
            "package".as_ref(),
            copy.as_os_str(),
            "--destination".as_ref(),
            out.as_os_str(),
        ],
        &format!("{label} could not be packaged"),
    )?;
    let packaged = only_tgz(&out, label)?;
    let bytes = package::normalize(&std::fs::read(&packaged)?)
        .with_context(|| format!("{label}: normalizing what helm package wrote"))?;
    let tgz = temp.join(
        packaged
            .file_name()
            .expect("only_tgz returns a file in a directory"),
    );
    std::fs::write(&tgz, bytes)?;
    Ok(tgz)
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

/// Whether `charts/` holds the dependency `name`: its directory, or `NAME-VERSION.tgz`.
fn vendored(charts: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(charts) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let file = e.file_name().to_string_lossy().into_owned();
        file == name
            || (file.ends_with(".tgz")
                && file
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('-')))
    })
}

/// `Chart.yaml` with each relative `repository: file://PATH` made absolute against `dir`.
fn absolute_file_dependencies(chart_yaml: &str, dir: &Path) -> anyhow::Result<String> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let mut out = String::with_capacity(chart_yaml.len());
    for line in chart_yaml.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let key = body.trim_start().trim_start_matches("- ").trim_start();
        let value = key
            .strip_prefix("repository:")
            .map(|v| v.trim().trim_matches(['"', '\'']));
        match value.and_then(|v| v.strip_prefix("file://")) {
            Some(rel) if !Path::new(rel).is_absolute() => {
                let indent = &body[..body.find("repository:").expect("matched above")];
                let abs = dir.join(rel);
                out.push_str(&format!(
                    "{indent}repository: {:?}{}",
                    format!("file://{}", abs.display()),
                    &line[body.len()..]
                ));
            }
            _ => out.push_str(line),
        }
    }
    Ok(out)
}

/// Copies a chart directory (regular files, following links; no more than 32 levels deep).
fn copy_dir(from: &Path, to: &Path, depth: usize) -> anyhow::Result<()> {
    if depth > 32 {
        anyhow::bail!("{}: directories nest over 32 deep", from.display());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::metadata(&src).with_context(|| format!("reading {}", src.display()))?;
        if meta.is_dir() {
            copy_dir(&src, &dst, depth + 1)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_file_dependencies_become_absolute_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let text = "name: p\ndependencies:\n  - name: sub\n    repository: \"file://../sub\"\n  - name: x\n    repository: https://charts.example.com\n  - repository: file:///abs/y\n    name: y\n";
        let got = absolute_file_dependencies(text, dir.path()).unwrap();
        let abs = dir.path().canonicalize().unwrap().join("../sub");
        assert!(
            got.contains(&format!("    repository: \"file://{}\"\n", abs.display())),
            "{got}"
        );
        assert!(got.contains("    repository: https://charts.example.com\n"));
        assert!(got.contains("  - repository: file:///abs/y\n"));
    }

    #[test]
    fn vendored_dependencies_are_found_as_directories_or_packages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("redis-1.2.3.tgz"), "").unwrap();
        assert!(vendored(dir.path(), "sub"));
        assert!(vendored(dir.path(), "redis"));
        assert!(!vendored(dir.path(), "red"));
        assert!(!vendored(dir.path(), "postgres"));
        assert!(!vendored(&dir.path().join("none"), "sub"));
    }
}
