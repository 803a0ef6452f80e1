//! `--chart`: charts rendered by real Helm 3.17.1 and 4.1.4 as an input of `images`, `save`
//! and `check`, checked against what `helm template | kubectl airgap images -f -` finds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common;
use common::helm::{Helm, root};

fn shop() -> PathBuf {
    root().join("testdata/charts/shop")
}

/// The image sources of an `images -o json` report.
fn sources(json: &[u8]) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(json));
    });
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap().to_string())
        .collect()
}

/// What `helm template CHART --values V... | kubectl airgap images -f -` finds.
fn piped(helm: &Helm, chart: &Path, values: &[&Path]) -> BTreeSet<String> {
    let mut args = vec!["template", chart.to_str().unwrap(), "--include-crds"];
    for v in values {
        args.extend(["--values", v.to_str().unwrap()]);
    }
    let rendered = helm.ok(&args);
    let out = common::airgap()
        .args(["images", "-f", "-", "-o", "json"])
        .write_stdin(rendered)
        .output()
        .unwrap();
    sources(common::stdout_of_success(&out).as_bytes())
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Two values files for the shop chart, each moving different images.
fn shop_values(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
    write(
        &a,
        "web:\n  image: quay.io/acme/web:2.0.0\ncache:\n  image: redis:7.4\n",
    );
    write(
        &b,
        "operator:\n  workerImage: quay.io/acme/worker:0.4.0\nalerts:\n  image: quay.io/prometheus/alertmanager:v0.28.0\n",
    );
    (a, b)
}

#[test]
fn chart_images_equal_what_helm_template_piped_to_images_finds() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = shop_values(dir.path());
    let chart = shop();
    for version in [3, 4] {
        let helm = Helm::new(version);
        let found = |groups: &[&[&Path]]| {
            let mut cmd = helm.airgap();
            cmd.args(["images", "-o", "json"]);
            for values in groups {
                cmd.args(["--chart", chart.to_str().unwrap()]);
                for v in *values {
                    cmd.args(["--values", v.to_str().unwrap()]);
                }
            }
            sources(common::stdout_of_success(&cmd.output().unwrap()).as_bytes())
        };
        let with_a = found(&[&[&a]]);
        assert_eq!(
            with_a,
            piped(&helm, &chart, &[&a]),
            "helm {version}, a.yaml"
        );
        assert!(with_a.contains("quay.io/acme/web:2.0.0"), "{with_a:?}");
        let with_b = found(&[&[&b]]);
        assert_eq!(
            with_b,
            piped(&helm, &chart, &[&b]),
            "helm {version}, b.yaml"
        );
        assert_ne!(with_a, with_b);
        // Two charts (two releases), one with each file: the union of the two.
        let both = found(&[&[&a], &[&b]]);
        assert_eq!(both, &with_a | &with_b, "helm {version}");
        // One chart with both files: Helm merges them, as helm template does.
        assert_eq!(
            found(&[&[&a, &b]]),
            piped(&helm, &chart, &[&a, &b]),
            "helm {version}, a.yaml and b.yaml"
        );
    }
}

/// A chart directory `dir/NAME`: Chart.yaml (with `extra` lines), values.yaml, one template.
fn chart(dir: &Path, name: &str, extra: &str, values: &str, template: &str) -> PathBuf {
    let chart = dir.join(name);
    write(
        &chart.join("Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n{extra}"),
    );
    write(&chart.join("values.yaml"), values);
    write(&chart.join("templates/main.yaml"), template);
    chart
}

/// A parent chart whose `file://` subchart is not vendored in `charts/`.
fn parent_with_file_subchart(dir: &Path) -> PathBuf {
    chart(
        dir,
        "sub",
        "",
        "image: ghcr.io/acme/sub:0.1\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: sub\nspec:\n  template:\n    spec:\n      containers:\n        - name: sub\n          image: {{ .Values.image }}\n",
    );
    chart(
        dir,
        "parent",
        "dependencies:\n  - name: sub\n    version: 0.1.0\n    repository: file://../sub\n",
        "image: quay.io/acme/parent:1.0\n",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: parent\nspec:\n  containers:\n    - name: app\n      image: {{ .Values.image }}\n",
    )
}

#[test]
fn file_dependencies_are_built_outside_the_users_directory() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_file_subchart(dir.path());
    let values = dir.path().join("v.yaml");
    write(&values, "sub:\n  image: ghcr.io/acme/sub:0.2\n");
    let helm = Helm::new(4);
    let out = helm
        .airgap()
        .args(["images", "-o", "json", "--chart"])
        .arg(&parent)
        .arg("--values")
        .arg(&values)
        .output()
        .unwrap();
    let found = sources(common::stdout_of_success(&out).as_bytes());
    assert_eq!(
        found,
        BTreeSet::from([
            "quay.io/acme/parent:1.0".to_string(),
            "ghcr.io/acme/sub:0.2".to_string()
        ])
    );
    assert!(
        !parent.join("charts").exists() && !parent.join("Chart.lock").exists(),
        "the user's chart directory was written to"
    );
}

#[test]
fn a_chart_that_fails_to_render_is_exit_2_with_helms_message_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let chart = chart(
        dir.path(),
        "needy",
        "",
        "db: {}\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {{ required \"db.password is required: set it with --set db.password=...\" .Values.db.password }}\n",
    );
    let bundle = dir.path().join("bundle");
    for version in [3, 4] {
        let out = Helm::new(version)
            .airgap()
            .args(["save", "-o"])
            .arg(&bundle)
            .arg("--chart")
            .arg(&chart)
            .output()
            .unwrap();
        let (code, _, stderr) = common::outcome(out);
        assert_eq!(code, 2, "helm {version}: {stderr}");
        assert!(
            stderr.contains("db.password is required"),
            "Helm's message: {stderr}"
        );
        assert!(
            stderr.contains(&format!("--chart {}", chart.display())),
            "the chart named: {stderr}"
        );
        assert!(!bundle.exists(), "no bundle written");
    }
    // A values file that is not there: the chart and the file named.
    let out = Helm::new(4)
        .airgap()
        .args(["images", "--chart"])
        .arg(&chart)
        .args(["--values", "/nonexistent/v.yaml"])
        .output()
        .unwrap();
    let (code, _, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--values /nonexistent/v.yaml: no such file"),
        "{stderr}"
    );
}

#[test]
fn no_helm_on_path_is_exit_2_saying_how_to_point_at_one() {
    let empty = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let out = common::airgap()
        .env("PATH", empty.path())
        .env_remove("AIRGAP_HELM")
        .args(["save", "-o"])
        .arg(&bundle)
        .arg("--chart")
        .arg(shop())
        .output()
        .unwrap();
    let (code, _, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no `helm` on PATH") && stderr.contains("--helm PATH"),
        "{stderr}"
    );
    assert!(!bundle.exists());
    // A flag before any --chart belongs to none: said, not guessed.
    let (code, _, stderr) = common::run(&["images", "--values", "v.yaml", "--chart", "x"], "");
    assert_eq!(code, 2);
    assert!(
        stderr.contains("put it after the --chart it is for"),
        "{stderr}"
    );
}
