//! The README's main-job command, `scripts/demo`, run as a user runs it (with the binary under
//! test instead of a release build), so the journey it shows cannot rot.

use crate::common;

use std::process::Command;

#[test]
fn the_demo_plays_the_whole_journey() {
    let root = common::helm::root();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/demo"))
        .env("AIRGAP_DEMO_BIN", env!("CARGO_BIN_EXE_kubectl-airgap"))
        .env_remove("AIRGAP_REGISTRY")
        .env_remove("REGISTRY_AUTH_FILE")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Its registries are stopped and its files removed.
    let left = Command::new("pgrep")
        .args(["-f", &tmp.path().display().to_string()])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "still running: {:?}", left.stdout);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "8 images: 8 copied, 0 already present, 0 failed",
        "8 images: 8 present, 0 missing, 0 mismatched, 0 errors",
        "8 images: 7 present, 1 missing, 0 mismatched, 0 errors",
        "check exit code: 1",
        "The journey works",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("missing"))
        .collect();
    assert_eq!(missing.len(), 1, "{stdout}");
    assert!(missing[0].contains("quay.io/acme/worker:0.3.0"));
    // Helm 4 rewrote the hook Job's image; Helm 3 could not.
    let helm3 = stdout.split("== 6.").nth(1).unwrap();
    assert!(helm3.contains("image: ghcr.io/acme/migrate:2.0"));
    let helm4 = stdout
        .split("== 5.")
        .nth(1)
        .unwrap()
        .split("== 6.")
        .next()
        .unwrap();
    assert!(!helm4.contains("image: ghcr.io/") && helm4.contains("/ghcr.io/acme/migrate:2.0"));
}
