//! `--chart`: charts rendered by real Helm 3.17.1 and 4.1.4 as an input of `images`, `save`
//! and `check`, checked against what `helm template | kubectl airgap images -f -` finds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common;
use common::helm::{Helm, root};
use common::registry::{Layout, TestRegistry};

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

/// A template of one Pod whose container runs `.Values.image`.
const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: p\n      image: {{ .Values.image }}\n";

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
        POD,
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
    // A dependency that cannot be found: named, with Helm's words and what to do; no bundle.
    let orphan = self::chart(
        dir.path(),
        "orphan",
        "dependencies:\n  - name: gone\n    version: 1.0.0\n    repository: file://../gone\n",
        "",
        POD,
    );
    let out = Helm::new(4)
        .airgap()
        .args(["save", "-o"])
        .arg(&bundle)
        .arg("--chart")
        .arg(&orphan)
        .output()
        .unwrap();
    let (code, _, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("gone (file://../gone) could not be built")
            && stderr.contains("vendor them"),
        "{stderr}"
    );
    assert!(!bundle.exists(), "no bundle written");
}

/// A chart's name is a path in the copy we package from: one that climbs out of it (a vendor's
/// or a clone's Chart.yaml, not the user's) is refused before anything is copied.
#[test]
fn a_chart_whose_name_is_a_path_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let escape = dir.path().join("escape");
    let chart = chart(dir.path(), "evil", "", "image: busybox:1\n", POD);
    write(
        &chart.join("Chart.yaml"),
        &format!(
            "apiVersion: v2\nname: ../../../../../../..{}\nversion: 0.1.0\n",
            escape.display()
        ),
    );
    let out = Helm::new(4)
        .airgap()
        .args(["images", "--chart"])
        .arg(&chart)
        .output()
        .unwrap();
    let (code, _, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a chart name"), "{stderr}");
    assert!(!escape.exists(), "the copy escaped to {}", escape.display());
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

/// An upstream registry holding generated images at the paths `sources` name (their hosts are
/// reached with `--source-mirror HOST=http://upstream`), and those flags.
fn upstream(sources: &[&str]) -> (TestRegistry, Vec<String>) {
    let reg = TestRegistry::plain();
    let mut flags = Vec::new();
    for (seed, source) in sources.iter().enumerate() {
        let (host_and_path, tag) = source.rsplit_once(':').unwrap();
        let (host, path) = host_and_path.split_once('/').unwrap();
        reg.push(Layout::single(500 + seed as u64).dir.path(), path, tag);
        flags.extend([
            "--source-mirror".to_string(),
            format!("{host}=http://{}", reg.host()),
        ]);
    }
    (reg, flags)
}

/// `save CHART_ARGS... -o OUT FLAGS...` with `helm`, which must succeed: the bundle's lock.
fn save(helm: &Helm, chart_args: &[&str], out: &Path, flags: &[String]) -> serde_json::Value {
    let o = helm
        .airgap()
        .arg("save")
        .args(chart_args)
        .arg("-o")
        .arg(out)
        .args(flags)
        .output()
        .unwrap();
    common::stdout_of_success(&o);
    lock_of(out)
}

/// `push --registry M --insecure-registry M ARGS...` into a plain mirror, which must succeed:
/// its stdout.
fn push_plain(
    helm: &Helm,
    mirror: &TestRegistry,
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> String {
    let out = helm
        .airgap()
        .args([
            "push",
            "--registry",
            &mirror.host(),
            "--insecure-registry",
            &mirror.host(),
        ])
        .args(args)
        .output()
        .unwrap();
    common::stdout_of_success(&out)
}

/// A bundle directory's lock file.
fn lock_of(bundle: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(bundle.join("images.lock.yaml")).unwrap();
    serde_json::to_value(serde_norway::from_str::<serde_json::Value>(&text).unwrap()).unwrap()
}

/// The digest of the packaged chart (the one layer) of the artifact `manifest` in a bundle.
fn chart_layer(bundle: &Path, manifest: &str) -> String {
    let hex = manifest.strip_prefix("sha256:").unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    assert_eq!(
        m["config"]["mediaType"], "application/vnd.cncf.helm.config.v1+json",
        "{m}"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    m["layers"][0]["digest"].as_str().unwrap().to_string()
}

fn sha256_file(path: &Path) -> String {
    common::registry::sha256_digest(&std::fs::read(path).unwrap())
}

#[test]
fn a_chart_with_a_file_subchart_travels_in_the_bundle_and_helm_pulls_it_from_the_mirror() {
    let work = tempfile::tempdir().unwrap();
    let parent = parent_with_file_subchart(work.path());
    let values = work.path().join("v.yaml");
    write(&values, "sub:\n  image: ghcr.io/acme/sub:0.2\n");
    let (up, mirrors) = upstream(&["quay.io/acme/parent:1.0", "ghcr.io/acme/sub:0.2"]);
    let helm3 = Helm::new(3);

    // Connected side: the chart and its images into one bundle, twice: the same digest.
    let chart_args = [
        "--chart",
        parent.to_str().unwrap(),
        "--values",
        values.to_str().unwrap(),
    ];
    let bundle = work.path().join("bundle");
    let lock = save(&helm3, &chart_args, &bundle, &mirrors);
    let again = save(&helm3, &chart_args, &work.path().join("again"), &mirrors);
    let charts = lock["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 1, "{lock}");
    assert_eq!(charts[0]["name"], "parent");
    assert_eq!(charts[0]["version"], "0.1.0");
    assert_eq!(
        charts[0]["digest"], again["charts"][0]["digest"],
        "the same chart packaged twice gives the same digest"
    );
    let images: BTreeSet<&str> = lock["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        BTreeSet::from(["quay.io/acme/parent:1.0", "ghcr.io/acme/sub:0.2"])
    );
    let layer = chart_layer(&bundle, charts[0]["digest"].as_str().unwrap());
    drop(up);

    // For users who install from files: the bundle's charts written out as NAME-VERSION.tgz.
    let files = work.path().join("files");
    let out = common::airgap()
        .arg("charts")
        .arg(&bundle)
        .arg("-d")
        .arg(&files)
        .output()
        .unwrap();
    common::stdout_of_success(&out);
    assert_eq!(sha256_file(&files.join("parent-0.1.0.tgz")), layer);

    // Air-gapped side: push into a TLS + htpasswd mirror.
    let mirror = TestRegistry::tls_htpasswd();
    let ca = mirror.pki.as_ref().unwrap().ca.clone();
    let docker = mirror.docker_config(&work.path().join("docker"));
    let on_mirror = |command: &str| {
        let mut c = helm3.airgap();
        c.args([command, "--registry", &mirror.host(), "--ca-file"])
            .arg(&ca)
            .env("DOCKER_CONFIG", &docker);
        c
    };
    let out = on_mirror("push")
        .arg("--from")
        .arg(&bundle)
        .output()
        .unwrap();
    let pushed = common::stdout_of_success(&out);
    assert!(pushed.contains("/charts/parent:0.1.0"), "{pushed}");

    // Helm 3 and 4 pull it from the mirror: the very bytes the bundle holds. Helm 3 speaks
    // plain HTTP to 127.0.0.1 and localhost, so it reaches the mirror by another loopback name.
    let helm4 = helm3.beside(4, "data4");
    helm4.install_plugin();
    let other_name = common::registry::loopback_names().into_iter().next().unwrap_or_else(|| {
        panic!("Helm 3 talks plain HTTP to localhost and 127.0.0.1: give this machine's name 127.0.0.1 in /etc/hosts (e.g. `127.0.0.1 $(hostname)`) so it reaches the TLS test mirror by name")
    });
    let by_name = format!("{other_name}:{}", mirror.port);
    for (helm, host) in [(&helm4, mirror.host()), (&helm3, by_name)] {
        helm.ok(&[
            "registry",
            "login",
            &host,
            "--username",
            common::registry::USER,
            "--password",
            common::registry::PASSWORD,
            "--ca-file",
            ca.to_str().unwrap(),
        ]);
        let dest = tempfile::tempdir().unwrap();
        helm.ok(&[
            "pull",
            &format!("oci://{host}/charts/parent"),
            "--version",
            "0.1.0",
            "--ca-file",
            ca.to_str().unwrap(),
            "--destination",
            dest.path().to_str().unwrap(),
        ]);
        let tgz = dest.path().join("parent-0.1.0.tgz");
        assert_eq!(sha256_file(&tgz), layer, "{:?}", helm.bin);

        // Rendered through the post-renderer, every image points at the mirror.
        let rendered = helm.ok(&[
            "template",
            "r",
            tgz.to_str().unwrap(),
            "--values",
            values.to_str().unwrap(),
            "--post-renderer",
            "kubectl-airgap",
            "--post-renderer-args",
            &format!("--registry={}", mirror.host()),
        ]);
        let uses = common::image_uses(&rendered);
        assert_eq!(uses.len(), 2, "{uses:?}");
        for (source, kind) in &uses {
            assert!(
                source.starts_with(&format!("{}/", mirror.host())),
                "{kind} uses {source}"
            );
        }
    }

    // check: the lock's images and chart, and the chart itself with its values: all there.
    let lock_file = bundle.join("images.lock.yaml");
    let check_lock = || {
        on_mirror("check")
            .arg("--lock")
            .arg(&lock_file)
            .output()
            .unwrap()
    };
    let check_chart = || {
        on_mirror("check")
            .arg("--chart")
            .arg(&parent)
            .arg("--values")
            .arg(&values)
            .output()
            .unwrap()
    };
    // A platform asked of every image is not asked of the chart, which runs on none.
    let with_platform = on_mirror("check")
        .args(["--platform", "linux/amd64", "--lock"])
        .arg(&lock_file)
        .output()
        .unwrap();
    for out in [check_lock(), check_chart(), with_platform] {
        let (code, stdout, stderr) = common::outcome(out);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("charts/parent"), "{stdout}");
    }

    // On the air-gapped side, --chart reads the chart from the mirror (pulled with the mirror's
    // CA and the Helm login) or from the bundle, by name.
    // Helm's registry login alone is enough: no Docker login here.
    let from_mirror = format!("oci://{}/charts/parent", mirror.host());
    let mut by_oci = helm4.airgap();
    by_oci
        .args(["check", "--registry", &mirror.host(), "--ca-file"])
        .arg(&ca)
        .args(["--chart", &from_mirror, "--version", "0.1.0", "--values"])
        .arg(&values);
    let mut by_name = helm3.airgap();
    by_name
        .args(["check", "--bundle"])
        .arg(&bundle)
        .args(["--chart", "parent", "--platform", "linux/amd64", "--values"])
        .arg(&values);
    for mut cmd in [by_oci, by_name] {
        let (code, stdout, stderr) = common::outcome(cmd.output().unwrap());
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains("/parent:0.1.0"),
            "the chart checked: {stdout}"
        );
        assert!(
            stdout.contains("ghcr.io/acme/sub:0.2"),
            "rendered with the values: {stdout}"
        );
    }

    // The chart deleted from the mirror: check says no, naming it.
    let gone = mirror.skopeo(
        &["delete"],
        &format!("{}/charts/parent:0.1.0", mirror.host()),
    );
    assert!(
        gone.status.success(),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    for out in [check_lock(), check_chart()] {
        let (code, stdout, stderr) = common::outcome(out);
        assert_eq!(code, 1, "{stdout}{stderr}");
        let line = stdout
            .lines()
            .find(|l| l.contains("charts/parent"))
            .unwrap_or_else(|| panic!("the chart named: {stdout}"));
        assert!(line.contains("missing"), "{line}");
    }
}

/// A chart directory packaged by `helm package` into `dir`: the `.tgz`.
fn package(helm: &Helm, chart: &Path, dir: &Path) -> PathBuf {
    let out = helm.ok(&[
        "package",
        chart.to_str().unwrap(),
        "--destination",
        dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out);
    PathBuf::from(text.trim().rsplit(": ").next().unwrap())
}

#[test]
fn an_oci_chart_is_saved_and_pushed_with_its_manifest_digest_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let chart = chart(
        work.path(),
        "remote",
        "",
        "image: quay.io/acme/remote:3.0\n",
        POD,
    );
    let (up, mut flags) = upstream(&["quay.io/acme/remote:3.0"]);
    // Helm 3 speaks plain HTTP to 127.0.0.1, as the upstream serves.
    let helm = Helm::new(3);
    let tgz = package(&helm, &chart, work.path());
    let out = helm
        .cmd(&[
            "push",
            tgz.to_str().unwrap(),
            &format!("oci://{}/charts", up.host()),
        ])
        .output()
        .unwrap();
    // Helm says what it pushed on stderr.
    let pushed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{pushed}");
    let upstream_digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("helm push said no digest: {pushed}"))
        .to_string();
    flags.extend(["--insecure-registry".to_string(), up.host()]);

    let bundle = work.path().join("bundle");
    let reference = format!("oci://{}/charts/remote", up.host());
    save(
        &helm,
        &["--chart", &reference, "--version", "0.1.0"],
        &bundle,
        &flags,
    );
    let lock = lock_of(&bundle);
    assert_eq!(
        lock["charts"][0]["digest"],
        upstream_digest.as_str(),
        "{lock}"
    );
    assert_eq!(lock["charts"][0]["name"], "remote");
    assert_eq!(
        lock["images"][0]["source"], "quay.io/acme/remote:3.0",
        "its images saved with it"
    );
    drop(up);

    // Pushed at its nested mirror name, as images are; the digest still the upstream's.
    let mirror = TestRegistry::plain();
    let pushed = push_plain(&helm, &mirror, ["--from".into(), bundle.into_os_string()]);
    let target = pushed
        .lines()
        .find(|l| l.contains("/charts/remote:0.1.0") && l.starts_with("copied"))
        .and_then(|l| l.split(" -> ").nth(1))
        .and_then(|t| t.split(' ').next())
        .unwrap_or_else(|| panic!("the chart pushed: {pushed}"))
        .to_string();
    assert!(
        target.starts_with(&format!("{}/127.0.0.1", mirror.host())),
        "at its nested mirror name: {target}"
    );
    let raw = mirror.skopeo(&["inspect", "--raw"], &target);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        common::registry::sha256_digest(&raw.stdout),
        upstream_digest
    );
}

/// `python3 -m http.server` serving `dir` on 127.0.0.1, stopped on drop.
struct FileServer {
    child: std::process::Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        common::registry::require_tool("python3");
        let port = common::registry::free_port();
        let mut server = FileServer {
            child: std::process::Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                ])
                .current_dir(dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
            port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        panic!("python3 -m http.server did not start on 127.0.0.1:{port}");
    }

    /// A classic chart repository of the packages in `dir`: served, then indexed by Helm.
    fn chart_repository(helm: &Helm, dir: &Path) -> FileServer {
        let server = FileServer::start(dir);
        helm.ok(&[
            "repo",
            "index",
            dir.to_str().unwrap(),
            "--url",
            &server.url(),
        ]);
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_chart_in_a_classic_repository_is_saved_by_name_and_version() {
    let work = tempfile::tempdir().unwrap();
    let chart = chart(
        work.path(),
        "classic",
        "",
        "image: ghcr.io/acme/classic:1.1\n",
        POD,
    );
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let helm = Helm::new(4);
    let tgz = package(&helm, &chart, &repo);
    let server = FileServer::chart_repository(&helm, &repo);
    let (_up, flags) = upstream(&["ghcr.io/acme/classic:1.1"]);

    let bundle = work.path().join("bundle");
    let url = server.url();
    let chart_args = ["--chart", "classic", "--repo", &url, "--version", "0.1.0"];
    let lock = save(&helm, &chart_args, &bundle, &flags);
    let c = &lock["charts"][0];
    assert_eq!(
        (c["name"].as_str(), c["version"].as_str()),
        (Some("classic"), Some("0.1.0")),
        "{lock}"
    );
    assert!(c["source"].as_str().unwrap().contains(&server.url()), "{c}");
    // The repository's package, carried as it is.
    assert_eq!(
        chart_layer(&bundle, c["digest"].as_str().unwrap()),
        sha256_file(&tgz)
    );
    assert_eq!(lock["images"][0]["source"], "ghcr.io/acme/classic:1.1");
    // push straight from the repository: the same artifact lands at MIRROR/charts/NAME:VERSION.
    let mirror = TestRegistry::plain();
    let args = chart_args
        .iter()
        .map(Into::into)
        .chain(flags.iter().map(Into::into));
    push_plain(&helm, &mirror, args);
    let raw = mirror.skopeo(
        &["inspect", "--raw"],
        &format!("{}/charts/classic:0.1.0", mirror.host()),
    );
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        common::registry::sha256_digest(&raw.stdout),
        c["digest"].as_str().unwrap()
    );

    // A version the index does not list: Helm's words, the chart named, exit 2.
    let out = helm
        .airgap()
        .args([
            "images",
            "--chart",
            "classic",
            "--repo",
            &server.url(),
            "--version",
            "9.9.9",
        ])
        .output()
        .unwrap();
    let (code, _, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--chart classic") && stderr.contains("9.9.9"),
        "{stderr}"
    );
}

#[test]
fn a_package_file_builds_the_bundle_and_a_bumped_version_the_next_one() {
    let work = tempfile::tempdir().unwrap();
    let helm = Helm::new(4);
    // Two releases of one chart in a classic repository, each with its own image tag.
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    for version in ["0.1.0", "0.2.0"] {
        let src = work.path().join(format!("src-{version}"));
        let chart = chart(
            &src,
            "app",
            "",
            &format!("image: quay.io/acme/app:{version}\n"),
            POD,
        );
        let yaml = chart.join("Chart.yaml");
        let text = std::fs::read_to_string(&yaml).unwrap();
        std::fs::write(
            &yaml,
            text.replace("version: 0.1.0", &format!("version: {version}")),
        )
        .unwrap();
        package(&helm, &chart, &repo);
    }
    let server = FileServer::chart_repository(&helm, &repo);
    let (up, mut flags) = upstream(&[
        "quay.io/acme/app:0.1.0",
        "quay.io/acme/app:0.2.0",
        "ghcr.io/acme/extra:1",
        "ghcr.io/acme/listed:2",
    ]);
    // One of them multi-platform, so that the file's platforms show.
    up.push(Layout::multi_arch(77).dir.path(), "acme/extra", "1");
    flags.extend([
        "--source-mirror".into(),
        format!("ghcr.io=http://{}", up.host()),
    ]);
    write(
        &work.path().join("lists/images.txt"),
        "# kept by hand\nghcr.io/acme/listed:2\n",
    );
    let file = work.path().join("airgap.yaml");
    let package = |version: &str, extra: &str| {
        write(
            &file,
            &format!(
                "apiVersion: kubectl-airgap/v1\nkind: Package\ncharts:\n  - chart: app\n    repo: {}\n    version: {version}\nimages: [ghcr.io/acme/extra:1]\nimageLists: [lists/images.txt]\nplatforms: [linux/arm64]\n{extra}",
                server.url()
            ),
        )
    };
    let images_of = |lock: &serde_json::Value| -> BTreeSet<String> {
        lock["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["source"].as_str().unwrap().to_string())
            .collect()
    };

    package("0.1.0", "");
    let package_arg = ["--package", file.to_str().unwrap()];
    let first = save(&helm, &package_arg, &work.path().join("b1"), &flags);
    assert_eq!(first["charts"][0]["version"], "0.1.0", "{first}");
    assert_eq!(
        images_of(&first),
        BTreeSet::from([
            "quay.io/acme/app:0.1.0".to_string(),
            "ghcr.io/acme/extra:1".to_string(),
            "ghcr.io/acme/listed:2".to_string()
        ])
    );
    let extra = first["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "ghcr.io/acme/extra:1")
        .unwrap();
    assert_eq!(
        extra["platforms"],
        serde_json::json!(["linux/arm64"]),
        "{extra}"
    );

    // Next release: the same file, the chart's version bumped.
    package("0.2.0", "");
    let next = save(&helm, &package_arg, &work.path().join("b2"), &flags);
    assert_eq!(next["charts"][0]["version"], "0.2.0", "{next}");
    assert!(
        images_of(&next).contains("quay.io/acme/app:0.2.0"),
        "{next}"
    );
    assert!(
        !images_of(&next).contains("quay.io/acme/app:0.1.0"),
        "{next}"
    );

    // The plain lists users already have: images on the command line and --image-list.
    let listed = save(
        &helm,
        &[
            "ghcr.io/acme/extra:1",
            "--image-list",
            work.path().join("lists/images.txt").to_str().unwrap(),
        ],
        &work.path().join("b3"),
        &flags,
    );
    assert_eq!(
        images_of(&listed),
        BTreeSet::from([
            "ghcr.io/acme/extra:1".to_string(),
            "ghcr.io/acme/listed:2".to_string()
        ])
    );

    // A misspelt key is refused, named with its line, and nothing is written.
    package("0.2.0", "platfroms: [linux/amd64]\n");
    let out = helm
        .airgap()
        .arg("save")
        .args(package_arg)
        .arg("-o")
        .arg(work.path().join("b4"))
        .output()
        .unwrap();
    let (code, _, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("platfroms") && stderr.contains("line 10"),
        "{stderr}"
    );
    assert!(!work.path().join("b4").exists());
}

#[test]
fn serve_gives_helm_the_chart_a_bundle_carries() {
    let work = tempfile::tempdir().unwrap();
    let chart = chart(
        work.path(),
        "served",
        "",
        "",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    let helm = Helm::new(4);
    let bundle = work.path().join("bundle");
    let lock = save(&helm, &["--chart", chart.to_str().unwrap()], &bundle, &[]);
    let layer = chart_layer(&bundle, lock["charts"][0]["digest"].as_str().unwrap());
    // No registry at all on the air-gapped side: the bundle served under mirror names.
    let served = super::serve::Served::start(&[bundle.to_str().unwrap()]);
    let dest = work.path().join("pulled");
    std::fs::create_dir(&dest).unwrap();
    helm.ok(&[
        "pull",
        &format!("oci://{}/charts/served", served.host()),
        "--version",
        "0.1.0",
        "--plain-http",
        "--destination",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(sha256_file(&dest.join("served-0.1.0.tgz")), layer);
}
