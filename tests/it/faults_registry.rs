//! Hostile and broken registries on loopback (issue 20, the transport's part): a token realm
//! that would take a password over plain HTTP, a self-signed certificate of the kind the Docker
//! docs make, ports out of range, one failure shared by many images, and a registry that
//! accepts connections and never answers.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::airgap;
use common::registry::pod_manifests as manifests;
use common::registry::{
    Auth, Fault, FaultProxy, Layout, PASSWORD, Recorder, Silent, TestRegistry, TlsFront,
    TokenIssuer, USER, against,
};

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

/// `check --registry HOST [--ca-file CA] -f MANIFESTS`, to be run (or given more).
fn check(host: &str, ca: Option<&Path>, manifests: &Path) -> assert_cmd::Command {
    let mut c = airgap();
    c.args(["check", "--registry", host]);
    if let Some(ca) = ca {
        c.arg("--ca-file").arg(ca);
    }
    c.arg("-f").arg(manifests);
    c
}

/// What the recorder must never hold: the password, or the Basic header made from it.
fn assert_no_credential(recorder: &Recorder, what: &str) {
    let seen = recorder.text();
    let basic = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert!(
        !seen.contains(PASSWORD) && !seen.contains(&basic),
        "{what}: a credential reached the plain-HTTP token service"
    );
    assert!(
        !seen.to_ascii_lowercase().contains("authorization"),
        "{what}: an Authorization header reached the plain-HTTP token service"
    );
}

fn assert_refused_realm(out: &std::process::Output, recorder: &Recorder, what: &str) {
    let all = format!("{}{}", stdout(out), stderr(out));
    assert_ne!(out.status.code(), Some(0), "{what}: {all}");
    assert_no_credential(recorder, what);
    let realm_host = format!("127.0.0.1:{}", recorder.port);
    assert!(
        all.contains("plain HTTP") && all.contains(&format!("--insecure-registry {realm_host}")),
        "{what}: {all}"
    );
    assert!(!all.contains(PASSWORD), "{what}: password in output");
    // Said once on stderr for the registry, not once per image.
    let err = stderr(out);
    assert_eq!(
        err.matches("was not named insecure").count(),
        1,
        "{what}: {err}"
    );
}

/// A TLS registry whose Bearer realm is plain HTTP on another port: no credential goes there,
/// from `check`, `push` or `save`, from the command line or a Docker config; each refuses and
/// says what to pass if the token service is trusted.
#[test]
fn a_plain_http_token_realm_never_gets_a_password() {
    let recorder = Recorder::start();
    let realm = format!("http://127.0.0.1:{}/token", recorder.port);
    let reg = TestRegistry::tls_token_at(&realm);
    let host = reg.host();
    let ca = reg.pki.as_ref().unwrap().ca.clone();
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/a:1", "ghcr.io/o/b:1"], None);
    let docker = reg.docker_config(&dir.path().join("docker"));

    let out = airgap()
        .args(["check", "--registry", &host, "--ca-file"])
        .arg(&ca)
        .args(["--username", USER, "--password-stdin", "-f"])
        .arg(&m)
        .write_stdin(PASSWORD)
        .output()
        .unwrap();
    assert_refused_realm(&out, &recorder, "check --password-stdin");
    assert_eq!(out.status.code(), Some(2));

    let out = check(&host, Some(&ca), &m)
        .env("DOCKER_CONFIG", &docker)
        .output()
        .unwrap();
    assert_refused_realm(&out, &recorder, "check with a Docker config");
    assert_eq!(out.status.code(), Some(2));

    // push: the mirror is that registry; the source a plain one holding the images.
    for sub in ["push", "save"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let source = TestRegistry::plain();
    source.push(Layout::single(31).dir.path(), "o/a", "1");
    let out = airgap()
        .args(["push", "--registry", &host, "--ca-file"])
        .arg(&ca)
        .args(["--username", USER, "--password-stdin"])
        .arg("--source-mirror")
        .arg(format!("ghcr.io=http://{}", source.host()))
        .arg("-f")
        .arg(manifests(&dir.path().join("push"), &["ghcr.io/o/a:1"], None).as_path())
        .write_stdin(PASSWORD)
        .output()
        .unwrap();
    assert_refused_realm(&out, &recorder, "push");

    // save: that registry is the source, its CA from the config file.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  \"{host}\":\n    caFile: {}\n", ca.display()),
    )
    .unwrap();
    let image = format!("{host}/o/a:1");
    let out = airgap()
        .args(["save", "--config"])
        .arg(&config)
        .arg("-f")
        .arg(manifests(&dir.path().join("save"), &[&image], None).as_path())
        .arg("-o")
        .arg(dir.path().join("bundle"))
        .env("DOCKER_CONFIG", &docker)
        .output()
        .unwrap();
    assert_refused_realm(&out, &recorder, "save");
    assert_eq!(
        recorder
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing at all goes to a plain-HTTP token service the user did not name"
    );
}

/// Credentials go over plain HTTP to a token service the user named insecure only on the
/// registry's own host; on another host they need HTTPS, whatever the flags say.
#[test]
fn credentials_go_to_another_hosts_realm_only_over_https() {
    let recorder = Recorder::start();
    let realm_host = format!("localhost:{}", recorder.port);
    let reg = TestRegistry::tls_token_at(&format!("http://{realm_host}/token"));
    let host = reg.host();
    let ca = reg.pki.as_ref().unwrap().ca.clone();
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/a:1"], None);
    let out = airgap()
        .args(["check", "--registry", &host, "--ca-file"])
        .arg(&ca)
        .args(["--insecure-registry", &realm_host])
        .args(["--username", USER, "--password-stdin", "-f"])
        .arg(&m)
        .write_stdin(PASSWORD)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_no_credential(&recorder, "another host, named insecure");
    assert!(err.contains("only over HTTPS"), "{err}");

    // The same token service behind TLS, on another host name than the registry's: works.
    let front = TlsFront::bind();
    let reg = TestRegistry::tls_token_at(&format!("https://localhost:{}/token", front.port));
    let pki = reg.pki.as_ref().unwrap();
    let Auth::Token(issuer) = &reg.auth else {
        unreachable!()
    };
    front.serve(&pki.server_cert, &pki.server_key, issuer.port);
    let ca = pki.ca.display().to_string();
    // The registry holds nothing: "missing" is an answer the token made possible.
    assert_missing_with_login(&reg.host(), &["--ca-file", &ca], &m);
    assert!(issuer.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

/// The self-signed certificate of the Docker docs' recipe (`openssl req -x509`, so `CA:TRUE`)
/// named in `--ca-file` is trusted as the registry's own, as skopeo and curl trust it; its
/// name and dates are still checked.
#[test]
fn a_self_signed_certificate_in_the_ca_file_is_trusted() {
    let reg = TestRegistry::tls_self_signed(None);
    let host = reg.host();
    let cert = reg.pki.as_ref().unwrap().ca.clone();
    reg.push(Layout::single(41).dir.path(), "ghcr.io/o/self", "1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/self:1"], None);
    let out = check(&host, Some(&cert), &m).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The same certificate under another name than it was made for: refused.
    let other = format!("localhost:{}", reg.port);
    let out = check(&other, Some(&cert), &m).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("TLS with") && err.contains("not valid for"),
        "{err}"
    );

    // Without it in the CA file: refused, as before.
    let out = check(&host, None, &m).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Out of its dates: refused, though the CA file names it.
    let old = TestRegistry::tls_self_signed(Some(("20200101000000Z", "20200102000000Z")));
    let out = check(&old.host(), Some(&old.pki.as_ref().unwrap().ca), &m)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("TLS with") && err.contains("expired"), "{err}");
}

/// A registry that accepts connections and never answers: each request gives up after
/// `--request-timeout`, the command ends in about that time (not attempts x timeout), says it
/// timed out and names the host; a longer wait is announced on stderr, once.
#[test]
fn a_registry_that_never_answers_times_out() {
    let silent = Silent::start();
    let host = format!("127.0.0.1:{}", silent.port);
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<String> = (0..5)
        .map(|i| format!("example.com/hang/app{i}:1"))
        .collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let m = manifests(dir.path(), &refs, None);

    let started = Instant::now();
    let out = against("check", &host)
        .args(["--request-timeout", "2s", "-f"])
        .arg(&m)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let (err, secs) = (stderr(&out), started.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(secs < 20.0, "{secs} s");
    assert!(err.contains(&format!("{host} timed out")), "{err}");
    assert!(err.contains("--request-timeout"), "{err}");
    assert!(!err.contains("waiting for"), "no notice before 5 s: {err}");

    // push takes the same flag, and ends as soon.
    let started = Instant::now();
    let out = against("push", &host)
        .arg("--source-mirror")
        .arg(format!("example.com=http://{host}"))
        .args(["--request-timeout", "2s", "-f"])
        .arg(&m)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(all.contains(&format!("{host} timed out")), "{all}");

    // A longer timeout: the wait is said once, with what is waited for.
    let out = against("check", &host)
        .args(["--request-timeout", "7s", "-f"])
        .arg(&m)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.matches(&format!("waiting for {host} to answer "))
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains(" /v2/example.com/hang/app"), "{err}");
    assert!(err.contains("(timeout 7s"), "{err}");
}

/// One failure of a host, shared by many images, is said once with how many images it
/// affects: for `check` (table and stderr), `push` and `save`; a refused TLS handshake and a
/// closed port alike.
#[test]
fn one_host_failure_is_said_once_with_its_count() {
    let plain = TestRegistry::plain();
    let tls_refused = plain.host();
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<String> = (0..20)
        .map(|i| format!("example.com/many/app{i}:1"))
        .collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let m = manifests(dir.path(), &refs, None);
    let once = |all: &str, needle: &str, what: &str| {
        assert_eq!(all.matches(needle).count(), 1, "{what}: {all}");
        assert!(all.contains("20 images"), "{what}: {all}");
    };

    // The registry speaks plain HTTP and was not named insecure: TLS fails.
    let out = check(&tls_refused, None, &m).output().unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{all}");
    once(
        &all,
        &format!("TLS with {tls_refused} failed:"),
        "check, TLS",
    );
    assert_eq!(stdout(&out).matches("\nerror ").count(), 20, "{all}");

    let closed = "127.0.0.1:1";
    let out = against("check", closed).arg("-f").arg(&m).output().unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{all}");
    once(
        &all,
        "check that the registry is running",
        "check, closed port",
    );

    // push and save read the images from that host.
    let mirror = format!("example.com=https://{tls_refused}");
    let out = against("push", closed)
        .args(["--source-mirror", &mirror, "-f"])
        .arg(&m)
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(out.status.code(), Some(0), "{all}");
    once(&all, &format!("TLS with {tls_refused} failed:"), "push");

    let out = airgap()
        .args(["save", "--source-mirror", &mirror, "-f"])
        .arg(&m)
        .arg("-o")
        .arg(dir.path().join("bundle"))
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(out.status.code(), Some(0), "{all}");
    once(&all, &format!("TLS with {tls_refused} failed:"), "save");
}

/// `registries:` entries are keyed as references write hosts, `docker.io`, while Docker Hub's
/// API is at `registry-1.docker.io`; the entry used to be looked up under the API's name and
/// never applied. What the client does is seen through a recording proxy on loopback
/// (`HTTP_PROXY`/`HTTPS_PROXY`), so no request leaves the machine: with `insecure: true` the
/// proxy is asked for `http://registry-1.docker.io/v2/` (plain HTTP), without it for a
/// `CONNECT registry-1.docker.io:443` (TLS); a `caFile` that does not exist is named as
/// docker.io's setting before any request. Short names, `docker.io/...` and
/// `index.docker.io/...` alike.
#[test]
fn registries_keyed_docker_io_apply_to_docker_hub_images() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.yaml");
    let images = [
        "nginx:1.27",
        "docker.io/library/busybox:1.36",
        "index.docker.io/library/redis:7",
    ];
    for (i, image) in images.iter().enumerate() {
        let dir = work.path().join(format!("m{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let m = manifests(&dir, &[image], None);
        let save = |config_text: &str, proxy: &Recorder| {
            std::fs::write(&config, config_text).unwrap();
            let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
            let out = airgap()
                .args(["save", "--config"])
                .arg(&config)
                .arg("-f")
                .arg(&m)
                .arg("-o")
                .arg(dir.join("bundle"))
                .env("HTTP_PROXY", &proxy_url)
                .env("http_proxy", &proxy_url)
                .env("HTTPS_PROXY", &proxy_url)
                .env("https_proxy", &proxy_url)
                .env_remove("NO_PROXY")
                .env_remove("no_proxy")
                .timeout(Duration::from_secs(60))
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{image}: {}", stderr(&out));
            stderr(&out)
        };

        let plain = Recorder::start();
        let err = save("registries:\n  docker.io:\n    insecure: true\n", &plain);
        let seen = plain.text();
        assert!(
            seen.contains("GET http://registry-1.docker.io/v2/"),
            "{image}: the insecure entry for docker.io was not used: {seen:?} {err}"
        );
        assert!(!seen.contains("CONNECT"), "{image}: {seen:?}");

        let tls = Recorder::start();
        save("{}\n", &tls);
        let seen = tls.text();
        assert!(
            seen.contains("CONNECT registry-1.docker.io:443"),
            "{image}: {seen:?}"
        );
        assert!(
            !seen.contains("http://registry-1.docker.io"),
            "{image}: {seen:?}"
        );

        let untouched = Recorder::start();
        let err = save(
            "registries:\n  docker.io:\n    caFile: /nonexistent/ca.pem\n",
            &untouched,
        );
        assert!(
            err.contains("settings for registry docker.io") && err.contains("/nonexistent/ca.pem"),
            "{image}: {err}"
        );
        assert_eq!(
            untouched
                .connections
                .load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{image}"
        );
    }
}

/// A token service that sheds load (two 500s in a row, as a busy one gives) is asked again
/// under the same retry policy as the registry, instead of failing the command (a manifest HEAD
/// that fails falls back to one GET, which would have absorbed a single failure).
#[test]
fn a_token_service_that_sheds_load_is_asked_again() {
    let issuer = TokenIssuer::start();
    let front = FaultProxy::start(issuer.port, vec![Fault::Status500, Fault::Status500], false);
    let realm = format!("127.0.0.1:{}", front.port);
    let reg = TestRegistry::token_at(issuer, &format!("http://{realm}/token"));
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/a:1"], None);
    // The registry holds nothing: "missing" is an answer only a later token made possible.
    let insecure = ["--insecure-registry", &host, "--insecure-registry", &realm];
    assert_missing_with_login(&host, &insecure, &m);
    assert_eq!(
        front.count("/token"),
        3,
        "{:?}",
        front.lines.lock().unwrap()
    );
}

/// `check` of `manifests` against an empty registry `host`, logged in: exit 1 with the image
/// `missing`, an answer only a registry that took the login can give.
fn assert_missing_with_login(host: &str, extra: &[&str], manifests: &Path) {
    let out = airgap()
        .args(["check", "--registry", host, "-o", "json"])
        .args(extra)
        .args(["--username", USER, "--password-stdin", "-f"])
        .arg(manifests)
        .write_stdin(PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"missing\""), "{}", stdout(&out));
}

/// A registry (or proxy) that answers HEAD with 405 is asked by GET instead, and the check
/// still answers: present where the image is, missing where it is not.
#[test]
fn a_registry_that_refuses_head_is_asked_by_get() {
    let reg = TestRegistry::plain();
    reg.push(Layout::single(43).dir.path(), "ghcr.io/o/here", "1");
    let front = FaultProxy::refuse_head(reg.port);
    let host = format!("127.0.0.1:{}", front.port);
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["ghcr.io/o/here:1", "ghcr.io/o/gone:1"], None);
    let out = airgap()
        .args(["check", "--registry", &host, "--insecure-registry", &host])
        .args(["-o", "json", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["present"], 1, "{report}");
    assert_eq!(report["summary"]["missing"], 1, "{report}");
    assert!(front.count("HEAD /v2/") >= 1);
    assert!(front.count("GET /v2/ghcr.io/o/here/manifests/1") >= 1);
}
