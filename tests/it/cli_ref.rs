//! `kubectl-airgap ref` as a user runs it.

use crate::common;

use common::airgap;
use serde_json::Value;

fn json(out: &[u8]) -> Vec<Value> {
    serde_json::from_slice::<Value>(out)
        .expect("stdout is JSON")
        .as_array()
        .expect("a JSON array")
        .clone()
}

#[test]
fn nested_naming_keeps_the_host_and_reports_every_key() {
    let out = airgap()
        .args([
            "ref",
            "-o",
            "json",
            "nginx",
            "quay.io/jetstack/cert-manager-controller:v1.16.2",
        ])
        .args(["--registry", "reg.local:5000"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json(&out.stdout);
    assert_eq!(rows.len(), 2);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "input",
        "valid",
        "normalized",
        "domain",
        "path",
        "tag",
        "digest",
        "familiar",
        "mirror",
        "error",
    ];
    want.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want);
    assert_eq!(rows[0]["normalized"], "docker.io/library/nginx");
    assert_eq!(rows[0]["mirror"], "reg.local:5000/docker.io/library/nginx");
    assert_eq!(rows[0]["tag"], Value::Null);
    assert_eq!(rows[0]["error"], Value::Null);
    assert_eq!(
        rows[1]["mirror"],
        "reg.local:5000/quay.io/jetstack/cert-manager-controller:v1.16.2"
    );
}

#[test]
fn strip_drops_the_host_and_reports_collisions() {
    let out = airgap()
        .args([
            "ref",
            "-o",
            "json",
            "--naming",
            "strip",
            "--registry",
            "reg.local:5000",
        ])
        .args(["quay.io/jetstack/cert-manager-controller:v1.16.2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json(&out.stdout)[0]["mirror"],
        "reg.local:5000/jetstack/cert-manager-controller:v1.16.2"
    );

    let out = airgap()
        .args([
            "ref",
            "-o",
            "json",
            "--naming",
            "strip",
            "--registry",
            "reg.local:5000",
        ])
        .args(["quay.io/org/app:1", "ghcr.io/org/app:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("naming collision"), "{stderr}");
    assert!(
        stderr.contains("quay.io/org/app") && stderr.contains("ghcr.io/org/app"),
        "{stderr}"
    );
    assert!(stderr.contains("reg.local:5000/org/app"), "{stderr}");
}

#[test]
fn invalid_references_exit_1_with_kind_and_message() {
    let out = airgap()
        .args(["ref", "-o", "json", "Nginx:1", "busybox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = json(&out.stdout);
    assert_eq!(rows[0]["valid"], false);
    assert_eq!(rows[0]["error"]["kind"], "name_contains_uppercase");
    assert!(
        rows[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lowercase")
    );
    assert_eq!(rows[0]["mirror"], Value::Null);
    assert_eq!(rows[1]["valid"], true);
    assert_eq!(
        rows[1]["mirror"],
        Value::Null,
        "no registry given, no mirror"
    );
}

#[test]
fn text_output_and_environment_configuration() {
    let out = airgap()
        .args(["ref", "ghcr.io/org/app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"])
        .env("AIRGAP_REGISTRY", "mirror.example.com/base")
        .env("AIRGAP_NAMING", "strip")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("mirror:     mirror.example.com/base/org/app@sha256:ffff"),
        "{text}"
    );
}

#[test]
fn a_mirror_that_would_read_as_docker_hub_is_refused() {
    let out = airgap()
        .args(["ref", "nginx", "--registry", "reg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid mirror registry \"reg\""),
        "{stderr}"
    );
    assert!(stderr.contains("HOST[:PORT]"), "{stderr}");
}
