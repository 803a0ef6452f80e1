//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod helm;
pub mod kube_api;
pub mod registry;
pub mod tools;

use std::path::PathBuf;

use airgap::manifest::Rewriter;
use airgap::manifest::rules::RuleSet;
use airgap::mirror::{Mirror, MirrorNaming, Naming};
use airgap::reference::Reference;

/// The binary, with the user's own configuration kept out (env vars, XDG config file).
pub fn airgap() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("kubectl-airgap").unwrap();
    c.env_remove("AIRGAP_REGISTRY")
        .env_remove("AIRGAP_NAMING")
        .env_remove("AIRGAP_CONFIG")
        .env_remove("AIRGAP_LOG_FILE")
        .env_remove("AIRGAP_PULL_SECRET")
        .env_remove("KUBECONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        // Registry credentials come only from what a test provides.
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        // Helm's registry login is read last; a test that wants one names its own.
        .env_remove("HELM_REGISTRY_CONFIG")
        .env_remove("HELM_CONFIG_HOME");
    c
}

/// Runs the binary with `args` and `stdin`: its exit code, stdout and stderr.
pub fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    outcome(
        airgap()
            .args(args)
            .write_stdin(stdin.to_string())
            .output()
            .unwrap(),
    )
}

/// (exit code, stdout, stderr) of a finished command; -1 when a signal ended it.
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The binary as a plain child process (for tests that time, watch or kill it): the user's
/// configuration kept out, stdin closed, stdout and stderr into `logs/stdout` and `logs/stderr`.
/// The caller adds the arguments and spawns it.
pub fn airgap_child(logs: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-airgap"));
    c.env("DOCKER_CONFIG", "/nonexistent")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env_remove("AIRGAP_REGISTRY")
        .env_remove("AIRGAP_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(logs.join("stdout")).unwrap())
        .stderr(std::fs::File::create(logs.join("stderr")).unwrap());
    c
}

/// (source, FIELD) of each image of an `images`/`check` JSON report, in report order.
pub fn per_image(report: &serde_json::Value, field: &str) -> Vec<(String, String)> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["source"].as_str().unwrap().to_string(),
                i[field].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The stdout of a command that must have exited 0 (both streams shown when it did not).
pub fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `../shared/corpus/rendered`, or a failure under CI (the corpus must be there) and a loud
/// notice elsewhere.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/rendered");
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "the rendered chart corpus is missing at {}; it is the shared/ folder beside this checkout",
        dir.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("NOT RUN: {msg}");
    None
}

pub fn corpus_files() -> Vec<PathBuf> {
    let Some(dir) = corpus_dir() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 17, "corpus has {} files", files.len());
    files
}

pub fn naming(mirror: &str, scheme: Naming) -> MirrorNaming {
    MirrorNaming::new(Mirror::parse(mirror).unwrap(), scheme, Vec::new())
}

pub fn rewrite(input: &str, naming: &MirrorNaming) -> Result<String, String> {
    rewrite_with_pull_secret(input, naming, None)
}

pub fn rewrite_with_pull_secret(
    input: &str,
    naming: &MirrorNaming,
    pull_secret: Option<&str>,
) -> Result<String, String> {
    let rules = RuleSet::built_in();
    let rewriter = Rewriter {
        naming,
        rules: &rules,
        pull_secret,
    };
    let mut out = Vec::new();
    rewriter
        .rewrite(input.as_bytes(), "test", &mut out)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

/// Whether `after` is what `before` becomes in the mirror (the whole token).
pub fn is_mirrored(before: &str, after: &str, naming: &MirrorNaming) -> bool {
    Reference::parse(before)
        .ok()
        .and_then(|r| naming.map(&r).ok())
        .is_some_and(|m| m.to_string() == after)
}

/// Splits a line into tokens at characters no image reference contains.
pub fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || "\"'=,[]{}".contains(c))
        .map(|t| t.strip_suffix(':').unwrap_or(t))
        .collect()
}

/// Every line of `after` equals the one of `before`, except tokens that are images mapped to
/// the mirror. Returns how many tokens changed.
pub fn assert_only_images_changed(
    before: &str,
    after: &str,
    naming: &MirrorNaming,
    what: &str,
) -> usize {
    let (b_lines, a_lines): (Vec<&str>, Vec<&str>) =
        (before.split('\n').collect(), after.split('\n').collect());
    assert_eq!(b_lines.len(), a_lines.len(), "{what}: line count changed");
    let mut changed = 0;
    for (n, (b, a)) in b_lines.iter().zip(&a_lines).enumerate() {
        if b == a {
            continue;
        }
        let (bt, at) = (tokens(b), tokens(a));
        assert_eq!(
            bt.len(),
            at.len(),
            "{what}:{}: token structure changed:\n- {b}\n+ {a}",
            n + 1
        );
        for (x, y) in bt.iter().zip(&at) {
            if x != y {
                assert!(
                    is_mirrored(x, y, naming),
                    "{what}:{}: {x:?} became {y:?}, which is not its mirror name:\n- {b}\n+ {a}",
                    n + 1
                );
                changed += 1;
            }
        }
    }
    changed
}

/// `kubectl airgap images -f - -o json` on `manifests`: (source, kind) per use.
pub fn image_uses(manifests: &[u8]) -> Vec<(String, String)> {
    let out = airgap()
        .args(["images", "-f", "-", "-o", "json"])
        .write_stdin(manifests)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_of_success(&out)).unwrap();
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["locations"].as_array().unwrap().iter().map(move |l| {
                (
                    i["source"].as_str().unwrap().to_string(),
                    l["kind"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}
