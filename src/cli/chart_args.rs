//! `--chart CHART [--version V] [--repo URL] [--values FILE]... [--set K=V]...`: the chart flags
//! of `images`, `check` and `save`, repeatable as a group.
//!
//! clap parses each flag into its own list; which chart a `--values` belongs to is its position
//! on the command line (the last `--chart` before it), read from the matches' indices by
//! [`ChartArgs::group`] once clap is done.

use std::path::PathBuf;

use clap::{ArgMatches, Args};

use crate::chart::{ChartRequest, RenderOptions, Rendered};

#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ChartArgs {
    /// A Helm chart whose rendered manifests name images: a directory, a packaged .tgz,
    /// oci://HOST/PATH/NAME (with --version), or a chart name in a classic repository (with
    /// --repo). The flags up to the next --chart are its own (repeatable as a group)
    #[arg(long = "chart", value_name = "DIR|FILE.tgz|oci://HOST/PATH/NAME|NAME")]
    pub(crate) charts: Vec<String>,
    /// The version of the --chart before it
    #[arg(long = "version", value_name = "VERSION")]
    pub(crate) versions: Vec<String>,
    /// The classic chart repository (its index.yaml) of the --chart before it
    #[arg(long = "repo", value_name = "URL")]
    pub(crate) repos: Vec<String>,
    /// A values file for the --chart before it (repeatable)
    #[arg(long = "values", value_name = "FILE")]
    pub(crate) values: Vec<PathBuf>,
    /// A value for the --chart before it, as helm's --set (repeatable)
    #[arg(long = "set", value_name = "K=V")]
    pub(crate) set: Vec<String>,
    /// A string value for the --chart before it, as helm's --set-string (repeatable)
    #[arg(long = "set-string", value_name = "K=V")]
    pub(crate) set_string: Vec<String>,
    /// Kubernetes version charts are rendered for (helm template --kube-version)
    #[arg(long = "kube-version", value_name = "VERSION")]
    pub(crate) kube_version: Option<String>,
    /// API versions charts are rendered with (helm template --api-versions; repeatable)
    #[arg(long = "api-versions", value_name = "GROUP/VERSION")]
    pub(crate) api_versions: Vec<String>,
    /// A bundle `save` wrote: a --chart NAME that is not a path is read from it (`check
    /// --bundle` reads from its bundle)
    #[arg(long = "chart-bundle", value_name = "DIR|FILE.tar")]
    pub(crate) chart_bundle: Option<PathBuf>,
    /// The Helm binary charts are rendered and pulled with (3.8+ or 4; default: helm on PATH)
    #[arg(long = "helm", env = "AIRGAP_HELM", value_name = "PATH")]
    pub(crate) helm: Option<PathBuf>,
    /// The charts with their own flags, filled by [`ChartArgs::group`].
    #[arg(skip)]
    pub(crate) requests: Vec<ChartRequest>,
}

impl ChartArgs {
    /// Sorts `--version`, `--repo`, `--values`, `--set` and `--set-string` to the `--chart`
    /// before each on the command line.
    pub(crate) fn group(&mut self, m: &ArgMatches) -> anyhow::Result<()> {
        let starts: Vec<usize> = indices(m, "charts");
        let mut requests: Vec<ChartRequest> = self
            .charts
            .iter()
            .map(|c| ChartRequest {
                chart: c.clone(),
                ..ChartRequest::default()
            })
            .collect();
        let owner = |flag: &str, at: usize| -> anyhow::Result<usize> {
            starts.iter().rposition(|&s| s < at).ok_or_else(|| {
                anyhow::anyhow!("--{flag} belongs to a chart: put it after the --chart it is for")
            })
        };
        for (v, at) in self.versions.iter().zip(indices(m, "versions")) {
            let r = &mut requests[owner("version", at)?];
            if r.version.replace(v.clone()).is_some() {
                anyhow::bail!("--chart {}: --version given twice", r.chart);
            }
        }
        for (v, at) in self.repos.iter().zip(indices(m, "repos")) {
            let r = &mut requests[owner("repo", at)?];
            if r.repo.replace(v.clone()).is_some() {
                anyhow::bail!("--chart {}: --repo given twice", r.chart);
            }
        }
        for (v, at) in self.values.iter().zip(indices(m, "values")) {
            requests[owner("values", at)?].values.push(v.clone());
        }
        for (v, at) in self.set.iter().zip(indices(m, "set")) {
            requests[owner("set", at)?].set.push(v.clone());
        }
        for (v, at) in self.set_string.iter().zip(indices(m, "set_string")) {
            requests[owner("set-string", at)?]
                .set_string
                .push(v.clone());
        }
        self.requests = requests;
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.charts.is_empty()
    }

    /// Every chart resolved and rendered with `options`.
    pub(crate) fn render(&self, options: &RenderOptions) -> anyhow::Result<Vec<Rendered>> {
        crate::chart::render_all(&self.requests, options, self.helm.as_deref())
    }

    /// What rendering passes to every chart: `namespace` (the command's, when it has one), and
    /// the registry settings `oci://` charts are pulled with (the command's, or the config
    /// file's).
    pub(crate) fn options(
        &self,
        namespace: Option<&str>,
        registries: &std::collections::BTreeMap<String, crate::registry::HostOptions>,
    ) -> RenderOptions {
        RenderOptions {
            namespace: namespace.map(str::to_string),
            kube_version: self.kube_version.clone(),
            api_versions: self.api_versions.clone(),
            registries: registries.clone(),
            bundle: self.chart_bundle.clone(),
        }
    }
}

fn indices(m: &ArgMatches, id: &str) -> Vec<usize> {
    m.indices_of(id).map(Iterator::collect).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        charts: ChartArgs,
    }

    fn grouped(argv: &[&str]) -> anyhow::Result<Vec<ChartRequest>> {
        let m = Cmd::command().try_get_matches_from(argv)?;
        let mut cmd = Cmd::from_arg_matches(&m)?;
        cmd.charts.group(&m)?;
        Ok(cmd.charts.requests)
    }

    #[test]
    fn each_flag_belongs_to_the_chart_before_it() {
        let r = grouped(&[
            "t",
            "--chart",
            "./a",
            "--values",
            "a.yaml",
            "--set",
            "x=1",
            "--chart",
            "oci://r.io/c/b",
            "--version",
            "2.0.0",
            "--values",
            "b1.yaml",
            "--values",
            "b2.yaml",
            "--set-string",
            "y=010",
        ])
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].chart, "./a");
        assert_eq!(r[0].values, [PathBuf::from("a.yaml")]);
        assert_eq!(r[0].set, ["x=1"]);
        assert_eq!(r[0].version, None);
        assert_eq!(r[1].version.as_deref(), Some("2.0.0"));
        assert_eq!(
            r[1].values,
            [PathBuf::from("b1.yaml"), PathBuf::from("b2.yaml")]
        );
        assert_eq!(r[1].set_string, ["y=010"]);
        assert!(r[1].set.is_empty());

        let e = grouped(&["t", "--set", "x=1", "--chart", "a"]).unwrap_err();
        assert!(e.to_string().contains("--set belongs to a chart"), "{e}");
        let e = grouped(&["t", "--chart", "a", "--version", "1", "--version", "2"]).unwrap_err();
        assert!(e.to_string().contains("--version given twice"), "{e}");
    }
}
