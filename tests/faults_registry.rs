//! Hostile and broken registries on loopback (issue 20, the transport's part): a token realm
//! that would take a password over plain HTTP, a self-signed certificate of the kind the Docker
//! docs make, ports out of range, one failure shared by many images, and a registry that
//! accepts connections and never answers.

mod common;

use std::time::{Duration, Instant};

use common::airgap;
use common::registry::pod_manifests as manifests;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port outside 1-65535 is a usage error wherever a registry host is given, said before any
/// request (the registry is never blamed for it).
#[test]
fn ports_out_of_range_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["nginx:1"], None);
    let config = dir.path().join("config.yaml");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "--registry",
            vec![
                "check".into(),
                "--registry".into(),
                "127.0.0.1:99999".into(),
            ],
        ),
        (
            "--registry port 0",
            vec![
                "check".into(),
                "--registry".into(),
                "127.0.0.1:0/pre".into(),
            ],
        ),
        (
            "--insecure-registry",
            vec![
                "check".into(),
                "--registry".into(),
                "127.0.0.1:1".into(),
                "--insecure-registry".into(),
                "127.0.0.1:70000".into(),
            ],
        ),
        (
            "--source-mirror",
            vec![
                "push".into(),
                "--registry".into(),
                "127.0.0.1:1".into(),
                "--source-mirror".into(),
                "docker.io=http://127.0.0.1:123456".into(),
            ],
        ),
        (
            "config registry",
            vec![
                "check".into(),
                "--config".into(),
                config.display().to_string(),
            ],
        ),
    ];
    std::fs::write(&config, "registry: 127.0.0.1:65536/mirror\n").unwrap();
    for (what, args) in cases {
        let started = Instant::now();
        let out = airgap()
            .args(&args)
            .arg("-f")
            .arg(&m)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("1 to 65535"), "{what}: {err}");
        assert!(!err.contains("cannot reach"), "{what}: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }

    // A host key under `registries:` in the config file.
    std::fs::write(
        &config,
        "registry: 127.0.0.1:1\nregistries:\n  \"127.0.0.1:99999\":\n    insecure: true\n",
    )
    .unwrap();
    let out = airgap()
        .args(["check", "--config"])
        .arg(&config)
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("127.0.0.1:99999") && err.contains("1 to 65535"),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
