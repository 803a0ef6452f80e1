//! `check` against real registries (Debian's docker-registry on loopback) holding images that
//! skopeo pushed: plain HTTP, TLS with a test CA, htpasswd, token auth, Docker config
//! credentials, and injected faults.

use crate::common;

use std::time::{Duration, Instant};

use common::airgap;
use common::registry::against;
use common::registry::pod_manifests as manifests;
use common::registry::{Fault, FaultProxy, Layout, PASSWORD, TestRegistry, USER};

fn check(registry: &str, args: &[&str]) -> assert_cmd::Command {
    let mut c = airgap();
    c.args(["check", "--registry", registry]).args(args);
    c
}

/// `check` against a plain-HTTP registry.
fn check_plain(host: &str, args: &[&str]) -> assert_cmd::Command {
    let mut c = against("check", host);
    c.args(args);
    c
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    common::per_image(report, "status")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_registry_present_missing_and_exit_codes() {
    let reg = TestRegistry::plain();
    let host = reg.host();
    let layout = Layout::single(1);
    reg.push(layout.dir.path(), "example.com/team/app", "1.0");
    let dir = tempfile::tempdir().unwrap();
    let both = manifests(
        dir.path(),
        &["example.com/team/app:1.0", "example.com/team/app:2.0"],
        None,
    );

    let out = check_plain(&host, &["-o", "json", "-f"])
        .arg(&both)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out.stdout);
    assert_eq!(
        statuses(&report),
        vec![
            ("example.com/team/app:1.0".into(), "present".into()),
            ("example.com/team/app:2.0".into(), "missing".into()),
        ]
    );
    assert_eq!(report["images"][0]["digest"], layout.digest.as_str());
    assert_eq!(
        report["images"][0]["mirror"],
        format!("{host}/example.com/team/app:1.0").as_str()
    );
    assert_eq!(report["images"][1]["digest"], serde_json::Value::Null);
    assert_eq!(report["summary"]["present"], 1);
    assert_eq!(report["summary"]["missing"], 1);

    // All present: exit 0, and the table names status, mirror and source.
    let one = manifests(dir.path(), &["example.com/team/app:1.0"], None);
    let out = check_plain(&host, &["-f"]).arg(&one).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains(&format!(
            "present   {host}/example.com/team/app:1.0  example.com/team/app:1.0"
        )),
        "{table}"
    );

    // A digest reference is checked by digest.
    let by_digest = format!("example.com/team/app@{}", layout.digest);
    let wrong = format!("example.com/team/app@sha256:{}", "0".repeat(64));
    let refs = manifests(dir.path(), &[&by_digest, &wrong], None);
    let out = check_plain(&host, &["-o", "json", "-f"])
        .arg(&refs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = statuses(&json(&out.stdout));
    assert!(s.contains(&(by_digest.clone(), "present".into())), "{s:?}");
    assert!(s.contains(&(wrong.clone(), "missing".into())), "{s:?}");

    // Plain HTTP is used only when asked: without --insecure-registry, TLS fails with advice.
    let out = check(&host, &["-f"]).arg(&one).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--insecure-registry"), "{err}");
}

#[test]
fn lock_digests_and_platforms() {
    let reg = TestRegistry::plain();
    let host = reg.host();
    let multi = Layout::multi_arch(7);
    reg.push(multi.dir.path(), "quay.io/org/multi", "v1");
    let single = Layout::single(8);
    reg.push(single.dir.path(), "quay.io/org/single", "v1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(
        dir.path(),
        &["quay.io/org/multi:v1", "quay.io/org/single:v1"],
        None,
    );
    let base = ["-o", "json"];

    let out = check_plain(&host, &base)
        .args([
            "--platform",
            "linux/arm64",
            "--platform",
            "linux/amd64",
            "-f",
        ])
        .arg(&m)
        .output()
        .unwrap();
    let report = json(&out.stdout);
    assert_eq!(report["images"][0]["status"], "present", "{report}");
    // The single-platform image is amd64 only: found by reading its config.
    assert_eq!(report["images"][1]["status"], "mismatch");
    let detail = report["images"][1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("no linux/arm64") && detail.contains("linux/amd64"),
        "{detail}"
    );
    assert_eq!(out.status.code(), Some(1));

    let out = check_plain(&host, &base)
        .args(["--platform", "linux/s390x", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    let report = json(&out.stdout);
    assert_eq!(report["images"][0]["status"], "mismatch");
    assert!(
        report["images"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("linux/amd64, linux/arm64")
    );

    // Lock file: the right digest passes, a moved tag is a mismatch, a lock-only image is checked.
    let lock = dir.path().join("images.lock.yaml");
    std::fs::write(
        &lock,
        format!(
            "apiVersion: kubectl-airgap/v1\nkind: ImageLock\nimages:\n- source: quay.io/org/multi:v1\n  digest: {}\n- source: quay.io/org/single:v1\n  digest: sha256:{}\n- source: quay.io/org/other:v9\n",
            multi.digest,
            "1".repeat(64)
        ),
    )
    .unwrap();
    let out = check_plain(&host, &base)
        .arg("--lock")
        .arg(&lock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out.stdout);
    assert_eq!(
        statuses(&report),
        vec![
            ("quay.io/org/multi:v1".into(), "present".into()),
            ("quay.io/org/other:v9".into(), "missing".into()),
            ("quay.io/org/single:v1".into(), "mismatch".into()),
        ]
    );
    assert_eq!(report["images"][0]["digest"], multi.digest.as_str());
    assert!(
        report["images"][2]["detail"]
            .as_str()
            .unwrap()
            .contains(&single.digest)
    );

    // A malformed lock file is a usage error naming the entry.
    std::fs::write(
        &lock,
        "apiVersion: kubectl-airgap/v1\nkind: ImageLock\nimages:\n- source: 'nginx:bad tag!'\n",
    )
    .unwrap();
    let out = check_plain(&host, &base)
        .arg("--lock")
        .arg(&lock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("images[0].source"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tls_with_a_test_ca() {
    let reg = TestRegistry::tls();
    let host = reg.host();
    reg.push(Layout::single(2).dir.path(), "ghcr.io/o/tls", "1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/tls:1"], None);
    let ca = reg.pki.as_ref().unwrap().ca.clone();

    let out = check(&host, &["--ca-file"])
        .arg(&ca)
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The same CA from the config file's registries section.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  \"{host}\":\n    caFile: {}\n", ca.display()),
    )
    .unwrap();
    let out = check(&host, &["--config"])
        .arg(&config)
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Verification is on: without the CA the certificate is refused, with advice.
    let started = Instant::now();
    let out = check(&host, &["-f"]).arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("TLS with") && err.contains("--ca-file"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn mutual_tls_client_certificate() {
    let reg = TestRegistry::mutual_tls();
    let host = reg.host();
    reg.push(Layout::single(10).dir.path(), "ghcr.io/o/mtls", "1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/mtls:1"], None);
    let pki = reg.pki.as_ref().unwrap();

    let out = check(&host, &["--ca-file"])
        .arg(&pki.ca)
        .arg("--cert-file")
        .arg(&pki.client_cert)
        .arg("--key-file")
        .arg(&pki.client_key)
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Without the client certificate the registry ends the handshake.
    let out = check(&host, &["--ca-file"])
        .arg(&pki.ca)
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    eprintln!("{err}");
    assert!(err.contains(&host), "{err}");

    // A key file that is not a key is a settings error naming the file.
    let out = check(&host, &["--ca-file"])
        .arg(&pki.ca)
        .arg("--cert-file")
        .arg(&pki.client_cert)
        .arg("--key-file")
        .arg(&m)
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("client certificate"),
        "{}",
        stderr(&out)
    );
}

fn assert_no_password(out: &std::process::Output) {
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    assert!(!all.contains(PASSWORD), "password leaked: {all}");
    assert!(!all.contains("wrong-password"), "password leaked: {all}");
}

#[test]
fn htpasswd_right_wrong_and_missing_credentials() {
    let reg = TestRegistry::htpasswd();
    let host = reg.host();
    reg.push(
        Layout::single(3).dir.path(),
        "docker.io/library/nginx",
        "1.27",
    );
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["nginx:1.27"], None);
    let base = ["-f"];

    let out = check_plain(&host, &base)
        .arg(&m)
        .args(["--username", USER, "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_password(&out);

    let out = check_plain(&host, &base)
        .arg(&m)
        .args(["--username", USER, "--password-stdin"])
        .write_stdin("wrong-password\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("refused the credentials from --username/--password-stdin"),
        "{err}"
    );
    assert_no_password(&out);

    let out = check_plain(&host, &base).arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("requires credentials and none were found"),
        "{}",
        stderr(&out)
    );

    // Credentials from a Docker config's auths.
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let out = check_plain(&host, &base)
        .arg(&m)
        .env("DOCKER_CONFIG", &docker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // ... and from a credential helper named in credHelpers.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-airgaptest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{host}\" ] || exit 1\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"airgaptest"}}}}"#),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = check_plain(&host, &base)
        .arg(&m)
        .env("DOCKER_CONFIG", &docker)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_password(&out);

    // A credsStore helper that holds nothing for the host says "credentials not found" (exit
    // 1), as docker-credential-osxkeychain does: the lookup goes on to the next file (here
    // Helm's registry login) instead of failing the command.
    let helper = bin.join("docker-credential-nothere");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\necho 'credentials not found in native keychain'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"nothere"}"#).unwrap();
    let helm_login = dir.path().join("helm-registry.json");
    std::fs::write(
        &helm_login,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let out = check_plain(&host, &base)
        .arg(&m)
        .env("DOCKER_CONFIG", &docker)
        .env("HELM_REGISTRY_CONFIG", &helm_login)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_password(&out);
}

#[test]
fn bearer_token_registry() {
    let reg = TestRegistry::token();
    let host = reg.host();
    reg.push(
        Layout::single(4).dir.path(),
        "registry.k8s.io/pause",
        "3.10",
    );
    reg.push(
        Layout::single(5).dir.path(),
        "registry.k8s.io/coredns",
        "1.11",
    );
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(
        dir.path(),
        &["registry.k8s.io/pause:3.10", "registry.k8s.io/coredns:1.11"],
        None,
    );
    let issuer_requests = match &reg.auth {
        common::registry::Auth::Token(t) => t.requests.clone(),
        _ => unreachable!(),
    };
    let before = issuer_requests.load(std::sync::atomic::Ordering::SeqCst);
    // The token service is plain HTTP on another port: it is named insecure like the registry.
    let issuer = match &reg.auth {
        common::registry::Auth::Token(t) => format!("127.0.0.1:{}", t.port),
        _ => unreachable!(),
    };
    let out = check_plain(&host, &["--insecure-registry", &issuer, "-o", "json", "-f"])
        .arg(&m)
        .args(["--username", USER, "--password-stdin"])
        .write_stdin(PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out.stdout)["summary"]["present"], 2);
    // One token per repository scope.
    let after = issuer_requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - before, 2);

    let out = check_plain(&host, &["--insecure-registry", &issuer, "-f"])
        .arg(&m)
        .args(["--username", USER, "--password-stdin"])
        .write_stdin("wrong-password")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refused the credentials"),
        "{}",
        stderr(&out)
    );
    assert_no_password(&out);
}

/// Runs a check through a fault proxy and returns (exit code, stderr, seconds).
fn through_faults(
    reg: &TestRegistry,
    script: Vec<Fault>,
    always: bool,
) -> (Option<i32>, String, f64, usize) {
    let proxy = FaultProxy::start(reg.port, script, always);
    let host = format!("127.0.0.1:{}", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["example.com/f/app:1"], None);
    let started = Instant::now();
    let out = check_plain(&host, &["-f"])
        .arg(&m)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    (
        out.status.code(),
        stderr(&out),
        secs,
        proxy.requests.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[test]
fn faults_are_retried_within_bounds() {
    let reg = TestRegistry::plain();
    reg.push(Layout::single(6).dir.path(), "example.com/f/app", "1");

    // 500 twice, then the registry recovers.
    let (code, err, _, requests) =
        through_faults(&reg, vec![Fault::Status500, Fault::Status500], false);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(requests, 3);

    // 500 forever: a bounded number of attempts, then exit 2 naming the status.
    let (code, err, secs, requests) = through_faults(&reg, vec![Fault::Status500], true);
    assert_eq!(code, Some(2));
    assert!(err.contains("answered HTTP 500 to 4 attempts"), "{err}");
    assert_eq!(requests, 4);
    assert!(secs < 15.0, "{secs}");

    // 429 with Retry-After: 1 is waited out, then the answer comes.
    let (code, err, secs, _) = through_faults(
        &reg,
        vec![Fault::TooManyRequests {
            retry_after_secs: 1,
        }],
        false,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(secs >= 1.0, "Retry-After was not honoured: {secs}");

    // 429 forever, asking for an hour: waits are capped, the command ends with advice.
    let (code, err, secs, _) = through_faults(
        &reg,
        vec![Fault::TooManyRequests {
            retry_after_secs: 3600,
        }],
        true,
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("rate-limiting") && err.contains("--concurrency"),
        "{err}"
    );
    assert!(secs < 45.0, "{secs}");

    // A connection dropped mid-response, twice, then a good answer.
    let (code, err, _, requests) = through_faults(&reg, vec![Fault::Drop, Fault::Drop], false);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(requests, 3);

    // Dropped every time.
    let (code, err, secs, _) = through_faults(&reg, vec![Fault::Drop], true);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot reach"), "{err}");
    assert!(secs < 15.0, "{secs}");
}

#[test]
fn registry_down_fails_fast_for_every_image() {
    // Port 1 (tcpmux) has no listener on these machines; a free ephemeral port could be taken
    // by another test's server between the choice and the check.
    let host = "127.0.0.1:1".to_string();
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<String> = (0..50)
        .map(|i| format!("example.com/down/app{i}:1"))
        .collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let m = manifests(dir.path(), &refs, None);
    let started = Instant::now();
    let out = check_plain(&host, &["-o", "json", "-f"])
        .arg(&m)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out.stdout);
    assert_eq!(report["summary"]["error"], 50);
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot reach {host}")), "{err}");
    // One line of advice, not fifty.
    assert_eq!(err.matches("cannot reach").count(), 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn helm3_hook_images_are_named() {
    let reg = TestRegistry::plain();
    let host = reg.host();
    let l = Layout::single(9);
    reg.push(l.dir.path(), "example.com/shop/web", "1");
    reg.push(l.dir.path(), "example.com/shop/migrate", "1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(
        dir.path(),
        &["example.com/shop/web:1"],
        Some("example.com/shop/migrate:1"),
    );
    let out = check_plain(&host, &["-o", "json", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out.stdout);
    assert_eq!(
        report["helm3HookImages"],
        serde_json::json!(["example.com/shop/migrate:1"])
    );
    let err = stderr(&out);
    assert!(
        err.contains("Helm 3 does not post-render hooks")
            && err.contains("example.com/shop/migrate:1  used by Job migrate (pre-install)")
            && !err.contains("shop/web"),
        "{err}"
    );
}

#[test]
fn usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["nginx"], None);
    let out = airgap().args(["check", "-f"]).arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--registry"));
    let out = airgap()
        .args(["check", "--registry", "r.local:5000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nothing to check"));
    let out = airgap()
        .args([
            "check",
            "--registry",
            "r.local:5000",
            "--platform",
            "linux",
            "-f",
        ])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("OS/ARCH"));
}
