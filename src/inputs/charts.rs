//! Rendered charts as an input: each chart's `helm template` output is scanned by the one
//! rule-driven scanner, as `-f` manifests are, so `--chart C --values V` finds what
//! `helm template C --values V | kubectl airgap images -f -` finds. Rendering itself (Helm,
//! values, dependencies, packaging) is `crate::chart`'s.

use anyhow::Context;

use super::files::InputScan;
use crate::chart::Rendered;
use crate::manifest::rules::RuleSet;
use crate::manifest::scan_stream;

/// The image uses of each rendered chart, named `chart NAME-VERSION`.
pub(crate) fn scan_charts(
    charts: &[Rendered],
    rules: &RuleSet,
    suspects: bool,
) -> anyhow::Result<Vec<InputScan>> {
    charts
        .iter()
        .map(|r| {
            let name = format!("chart {}-{}", r.chart.name, r.chart.version);
            let scan = scan_stream(&r.manifests[..], &name, rules, suspects)
                .with_context(|| r.chart.label.clone())?;
            Ok(InputScan { name, scan })
        })
        .collect()
}
