//! The package file: what an offline package holds, declared once, so that the next release's
//! bundle is the same command (`save --package airgap.yaml`) with a version bumped in the file.
//!
//! ```yaml
//! apiVersion: kubectl-airgap/v1
//! kind: Package
//! charts:
//!   - chart: oci://ghcr.io/acme/charts/shop      # a directory, a .tgz, oci://..., or a name
//!     version: 1.4.2
//!     values: [prod.yaml]
//!     set: [web.replicas=3]
//!   - chart: redis
//!     repo: https://charts.example.com
//!     version: 19.0.1
//! images: [busybox:1.36]                        # extra images
//! imageLists: [images.txt]                      # one reference a line, # comments
//! imagesDigests: [images_digests.yml]           # Element Server Suite
//! manifests: [extra/]                           # as -f: files or directories of manifests
//! platforms: [linux/amd64]
//! ```
//!
//! Paths are relative to the file's directory. An unknown key is an error naming it and its
//! line: a misspelt `vesion:` silently ignored would save the wrong release.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::Sources;
use crate::chart::{ChartRequest, RenderOptions};
use crate::oci::Platform;

use crate::lock::API_VERSION;
const KIND: &str = "Package";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PackageFile {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    charts: Vec<ChartEntry>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    image_lists: Vec<PathBuf>,
    #[serde(default)]
    images_digests: Vec<PathBuf>,
    #[serde(default)]
    manifests: Vec<PathBuf>,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    kube_version: Option<String>,
    #[serde(default)]
    api_versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChartEntry {
    chart: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    repo: Option<String>,
    #[serde(default)]
    values: Vec<PathBuf>,
    #[serde(default)]
    set: Vec<String>,
    #[serde(default)]
    set_string: Vec<String>,
}

/// A package file, read: its charts, the image sources it names, how to render, which
/// platforms.
#[derive(Debug)]
pub(crate) struct Package {
    pub(crate) charts: Vec<ChartRequest>,
    pub(crate) sources: Sources,
    pub(crate) render: RenderOptions,
    pub(crate) platforms: Vec<Platform>,
}

impl Package {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Package> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--package {name}: reading it"))?;
        let file: PackageFile = serde_norway::from_str(&text).map_err(|e| {
            anyhow::anyhow!("--package {name}: {e}; fix or remove it (README: The package file)")
        })?;
        for (key, got, want) in [
            ("apiVersion", &file.api_version, API_VERSION),
            ("kind", &file.kind, KIND),
        ] {
            if let Some(got) = got
                && got != want
            {
                anyhow::bail!("--package {name}: {key} {got:?} is not {want:?}");
            }
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        let at = |p: &PathBuf| dir.join(p);
        let charts = file
            .charts
            .into_iter()
            .map(|c| {
                // A chart directory or file is beside the package file; a name in a repository
                // or an oci:// reference is not a path.
                let local = dir.join(&c.chart);
                let chart = match c.repo.is_none() && !c.chart.contains("://") && local.exists() {
                    true => local.display().to_string(),
                    false => c.chart,
                };
                ChartRequest {
                    chart,
                    version: c.version,
                    repo: c.repo,
                    values: c.values.iter().map(at).collect(),
                    set: c.set,
                    set_string: c.set_string,
                }
            })
            .collect();
        let platforms = file
            .platforms
            .iter()
            .map(|p| {
                Platform::parse(p).map_err(|e| anyhow::anyhow!("--package {name}: platforms: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Package {
            charts,
            sources: Sources {
                files: file.manifests.iter().map(at).collect(),
                recursive: false,
                lock: None,
                images_digests: file.images_digests.iter().map(at).collect(),
                image_lists: file.image_lists.iter().map(at).collect(),
                images: vec![(format!("--package {name}: images"), file.images)],
            },
            render: RenderOptions {
                namespace: file.namespace,
                kube_version: file.kube_version,
                api_versions: file.api_versions,
                ..RenderOptions::default()
            },
            platforms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_beside_the_file_and_an_unknown_key_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shop")).unwrap();
        let path = dir.path().join("airgap.yaml");
        std::fs::write(
            &path,
            "apiVersion: kubectl-airgap/v1\nkind: Package\ncharts:\n  - chart: shop\n    values: [prod.yaml]\n  - chart: redis\n    repo: https://charts.example.com\n    version: 19.0.1\nimages: [busybox:1.36]\nimageLists: [images.txt]\nplatforms: [linux/amd64]\n",
        )
        .unwrap();
        let p = Package::load(&path).unwrap();
        assert_eq!(
            p.charts[0].chart,
            dir.path().join("shop").display().to_string()
        );
        assert_eq!(p.charts[0].values, [dir.path().join("prod.yaml")]);
        assert_eq!(p.charts[1].chart, "redis", "a repository's chart is a name");
        assert_eq!(p.sources.image_lists, [dir.path().join("images.txt")]);
        assert_eq!(p.platforms[0].to_string(), "linux/amd64");

        std::fs::write(&path, "charts:\n  - chart: shop\n    vesion: 1.0.0\n").unwrap();
        let e = format!("{:#}", Package::load(&path).unwrap_err());
        assert!(e.contains("vesion") && e.contains("line 3"), "{e}");
    }
}
