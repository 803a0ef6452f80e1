//! The whole offline journey on loopback, with real parts only: an "upstream" `docker-registry`
//! standing in for docker.io, quay.io, ghcr.io and registry.k8s.io (reached with
//! `--source-mirror`), the project's test chart rendered by real Helm, `save` to a bundle tar,
//! an empty mirror with TLS and htpasswd filled by `push --from` the bundle, `check`, the
//! post-renderer under Helm 3 and Helm 4, and skopeo as the independent reader of the mirror.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::helm::{Helm, root};
use common::registry::{Layout, TestRegistry};
use serde_json::Value;

/// The chart's images (testdata/charts/shop/values.yaml) as (source, multi-platform?).
const CHART_IMAGES: [(&str, bool); 7] = [
    ("quay.io/acme/web:1.4.2", true),
    ("ghcr.io/acme/migrate:2.0", false),
    ("docker.io/library/postgres:16", true),
    ("registry.k8s.io/acme/operator:v0.3.0", false),
    ("quay.io/acme/worker:0.3.0", false),
    ("docker.io/library/redis:7.2", false),
    ("quay.io/prometheus/alertmanager:v0.27.0", false),
];

const UPSTREAM_HOSTS: [&str; 4] = ["docker.io", "quay.io", "ghcr.io", "registry.k8s.io"];

/// The upstream registry, filled with generated images under the chart's paths.
fn upstream() -> TestRegistry {
    let reg = TestRegistry::plain();
    for (seed, (source, multi)) in CHART_IMAGES.iter().enumerate() {
        let (host_and_path, tag) = source.rsplit_once(':').unwrap();
        let path = host_and_path.split_once('/').unwrap().1;
        let layout = if *multi {
            Layout::multi_arch(100 + seed as u64)
        } else {
            Layout::single(100 + seed as u64)
        };
        reg.push(layout.dir.path(), path, tag);
    }
    reg
}

fn source_mirrors(upstream: &TestRegistry) -> Vec<String> {
    UPSTREAM_HOSTS
        .iter()
        .flat_map(|h| {
            [
                "--source-mirror".to_string(),
                format!("{h}=http://{}", upstream.host()),
            ]
        })
        .collect()
}

/// A command against the mirror as a user on the air-gapped side runs it: `docker login`
/// credentials in a Docker config directory, the mirror's CA named once.
fn on_mirror(mirror: &TestRegistry, docker_config: &Path, command: &str) -> assert_cmd::Command {
    let mut c = common::airgap();
    c.args([command, "--registry", &mirror.host(), "--ca-file"])
        .arg(&mirror.pki.as_ref().unwrap().ca)
        .env("DOCKER_CONFIG", docker_config);
    c
}

#[test]
fn the_offline_journey_from_chart_to_post_rendered_release() {
    let work = tempfile::tempdir().unwrap();
    let up = upstream();
    let helm4 = Helm::new(4);
    let chart = root().join("testdata/charts/shop");

    // Connected side: render the chart and save what it needs into one bundle tar.
    let rendered = helm4
        .cmd(&["template", "shop", chart.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(rendered.status.success());
    let manifests = work.path().join("shop.yaml");
    std::fs::write(&manifests, &rendered.stdout).unwrap();
    let found = common::image_uses(&rendered.stdout);
    let kinds: BTreeSet<&str> = found.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["Alertmanager", "ConfigMap", "CronJob", "Deployment", "Job"]),
        "{found:?}"
    );
    let wanted: BTreeSet<String> = found.iter().map(|(s, _)| s.clone()).collect();
    let expected: BTreeSet<String> = CHART_IMAGES.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(
        wanted, expected,
        "the chart needs exactly the upstream's images"
    );

    let bundle = work.path().join("shop-bundle.tar");
    let out = common::airgap()
        .args(["save", "-f"])
        .arg(&manifests)
        .arg("-o")
        .arg(&bundle)
        .args(source_mirrors(&up))
        .output()
        .unwrap();
    let saved = common::stdout_of_success(&out);
    assert!(bundle.is_file(), "{saved}");

    // Carried across; from here on the upstream is out of reach.
    drop(up);

    // Air-gapped side: an empty mirror with TLS and a login.
    let mirror = TestRegistry::tls_htpasswd();
    let docker_config = mirror.docker_config(&work.path().join("docker"));
    let out = on_mirror(&mirror, &docker_config, "check")
        .arg("-f")
        .arg(&manifests)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the empty mirror holds nothing");

    let out = on_mirror(&mirror, &docker_config, "push")
        .arg("--from")
        .arg(&bundle)
        .output()
        .unwrap();
    let pushed = common::stdout_of_success(&out);
    assert!(pushed.contains("7 copied"), "{pushed}");

    let out = on_mirror(&mirror, &docker_config, "check")
        .args(["-o", "json", "-f"])
        .arg(&manifests)
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&common::stdout_of_success(&out)).unwrap();
    assert_eq!(report["summary"]["present"], 7, "{report}");
    assert_eq!(report["summary"]["total"], 7, "{report}");

    // Install: the post-renderer under Helm 4 (plugin) and Helm 3 (binary on PATH).
    let host = mirror.host();
    helm4.install_plugin();
    let by_helm4 = helm4.template(
        &["--post-renderer-args", &format!("--registry={host}")],
        &[],
    );
    let by_helm3 = Helm::new(3).template(&[], &[("AIRGAP_REGISTRY", &host)]);
    let mut in_mirror = BTreeSet::new();
    for (helm, out) in [("helm 4", &by_helm4), ("helm 3", &by_helm3)] {
        assert!(
            out.status.success(),
            "{helm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found = common::image_uses(&out.stdout);
        assert_eq!(found.len(), 8, "{helm}: {found:?}");
        for (image, kind) in found {
            if helm == "helm 3" && kind == "Job" {
                // Helm 3 gives hooks no post-renderer; the README says so and `check` warns.
                assert_eq!(image, "ghcr.io/acme/migrate:2.0");
                continue;
            }
            assert!(
                image.starts_with(&format!("{host}/")),
                "{helm}: {kind} uses {image}"
            );
            in_mirror.insert(image);
        }
    }
    assert_eq!(in_mirror.len(), 7, "{in_mirror:?}");
    for image in &in_mirror {
        let out = mirror.skopeo(&["inspect", "--raw"], image);
        assert!(
            out.status.success(),
            "skopeo cannot read {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // One image lost from the mirror: check names it and fails.
    let lost = format!("{host}/quay.io/acme/worker:0.3.0");
    let out = mirror.skopeo(&["delete"], &lost);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = on_mirror(&mirror, &docker_config, "check")
        .arg("-f")
        .arg(&manifests)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("missing"))
        .collect();
    assert_eq!(missing.len(), 1, "{stdout}");
    assert!(
        missing[0].contains(&lost) && missing[0].contains("quay.io/acme/worker:0.3.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("7 images: 6 present, 1 missing"),
        "{stdout}"
    );
}
