//! Bundles every tool reads and writes: what podman, containerd's `ctr` and skopeo write is
//! pushed with every digest kept; what `save` writes is read by skopeo and `ctr` by each image's
//! full name; a `save` killed half-way through a 200 MB layer continues where it stopped, adds
//! to an earlier bundle, and leaves no bundle when an image fails; `check --bundle` answers for
//! what `save` and skopeo wrote, and refuses a damaged bundle naming it.

use crate::common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::registry::{Bundle, TestRegistry, against, pod_manifests, push_from};
use common::tools::{Containerd, Podman};

use common::registry::digest_of;

/// The digest of the manifest skopeo reads at `reference` (a transport:reference), or the error.
fn skopeo_digest(reference: &str) -> Result<String, String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", reference])
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(digest_of(&out.stdout)),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (exit code, stdout, stderr) of `kubectl-airgap ARGS`.
fn airgap(args: &[&str]) -> (i32, String, String) {
    common::outcome(common::airgap().args(args).output().unwrap())
}

/// The manifest digests an OCI layout's `index.json` lists (a directory or a tar of one).
fn index_digests(layout: &Path) -> Vec<String> {
    let text = if layout.is_dir() {
        std::fs::read(layout.join("index.json")).unwrap()
    } else {
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(layout)
            .arg("index.json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "no index.json in {}",
            layout.display()
        );
        out.stdout
    };
    let index: serde_json::Value = serde_json::from_slice(&text).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

/// An upstream registry holding `bundle`'s images at their paths (`quay.io/x/a:v1` at
/// `UPSTREAM/x/a:v1`), and the images' upstream names.
fn upstream(bundle: &Bundle) -> (TestRegistry, Vec<String>) {
    let registry = TestRegistry::plain();
    let out = against("push", &registry.host())
        .args(["--naming", "strip", "--from"])
        .arg(bundle.dir.path())
        .output()
        .unwrap();
    common::stdout_of_success(&out);
    let names = bundle
        .images
        .iter()
        .map(|(name, _, _)| format!("{}/{}", registry.host(), name.split_once('/').unwrap().1))
        .collect();
    (registry, names)
}

#[test]
fn push_from_what_podman_ctr_and_skopeo_write_keeps_every_digest() {
    let bundle = Bundle::new(&[
        ("quay.io/x/a:v1", &[(101, 20_000)]),
        ("quay.io/y/b:v1", &[(102, 30_000), (103, 5_000)]),
    ]);
    let (up, names) = upstream(&bundle);
    let work = tempfile::tempdir().unwrap();
    let mirror = TestRegistry::plain();
    // Every image lands at its mirror name with the digest its source holds.
    let lands = |what: &str, from: &Path, extra: &[&str], expect: &[(&str, String)]| {
        let (code, stdout, stderr) = push_from(&mirror, from, extra);
        assert_eq!(code, 0, "{what}: {stdout}{stderr}");
        for (name, digest) in expect {
            let at = format!("docker://{}/{name}", mirror.host());
            assert_eq!(
                skopeo_digest(&at).as_ref(),
                Ok(digest),
                "{what}: {name} in the mirror\n{stdout}{stderr}"
            );
        }
    };

    // podman: both archive formats, images named as users name them.
    let podman = Podman::new();
    for (name, upstream) in [("quay.io/x/a:v1", &names[0]), ("quay.io/y/b:v1", &names[1])] {
        podman.run(&["pull", "-q", "--tls-verify=false", upstream]);
        podman.run(&["tag", upstream, name]);
    }
    let oci_archive = work.path().join("podman-oci.tar");
    podman.run(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci_archive.to_str().unwrap(),
        "quay.io/x/a:v1",
    ]);
    let digest = index_digests(&oci_archive).remove(0);
    lands(
        "podman oci-archive",
        &oci_archive,
        &[],
        &[("quay.io/x/a:v1", digest)],
    );

    let docker_archive = work.path().join("podman-docker.tar");
    podman.run(&[
        "save",
        "-m",
        "--format",
        "docker-archive",
        "-o",
        docker_archive.to_str().unwrap(),
        "quay.io/x/a:v1",
        "quay.io/y/b:v1",
    ]);
    let (code, stdout, stderr) = push_from(
        &mirror,
        Path::new(&format!("docker-archive:{}", docker_archive.display())),
        &[],
    );
    assert_eq!(code, 0, "podman docker-archive: {stdout}{stderr}");
    assert!(stdout.contains("2 images: 2 copied"), "{stdout}");
    for name in ["quay.io/x/a:v1", "quay.io/y/b:v1"] {
        // A docker archive holds no manifest: the one pushed is made from its config and
        // layers, so its config is what must be podman's image.
        let at = format!("docker://{}/{name}", mirror.host());
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &at])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} from the docker archive");
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = podman.run(&["inspect", "--format", "{{.Id}}", name]);
        assert_eq!(
            manifest["config"]["digest"].as_str(),
            Some(format!("sha256:{}", id.trim()).as_str()),
            "{name}"
        );
    }

    // containerd: `ctr images export` (containerd's name annotation, the tag in ref.name).
    let ctr = Containerd::start();
    ctr.run(&["images", "pull", "--plain-http", &names[1]]);
    ctr.run(&["images", "tag", &names[1], "quay.io/y/b:ctr"]);
    let ctr_tar = work.path().join("ctr.tar");
    ctr.run(&[
        "images",
        "export",
        ctr_tar.to_str().unwrap(),
        "quay.io/y/b:ctr",
    ]);
    let digest = index_digests(&ctr_tar).remove(0);
    lands("ctr export", &ctr_tar, &[], &[("quay.io/y/b:ctr", digest)]);

    // skopeo, by tag only: refused without --name, naming the tag; pushed with it.
    let tagged = work.path().join("skopeo-tagged");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", names[0]),
        &format!("oci:{}:v1", tagged.display()),
    ]);
    let (code, stdout, stderr) = push_from(&mirror, &tagged, &[]);
    assert_eq!(code, 2, "a tag is not a name: {stdout}{stderr}");
    assert!(
        stderr.contains("by tag only (v1)") && stderr.contains("--name v1="),
        "{stderr}"
    );
    assert!(!stdout.contains("0 images"), "{stdout}");
    let digest = index_digests(&tagged).remove(0);
    lands(
        "skopeo oci: with --name",
        &tagged,
        &["--name", "v1=quay.io/x/a:skopeo"],
        &[("quay.io/x/a:skopeo", digest)],
    );

    // Full references in ref.name, as crane, oras, regctl and Hauler write them.
    let full = work.path().join("full-ref");
    for (upstream, name) in [
        (&names[0], "quay.io/x/a:full"),
        (&names[1], "quay.io/y/b:full"),
    ] {
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{upstream}"),
            &format!("oci:{}:{name}", full.display()),
        ]);
    }
    let digests = index_digests(&full);
    lands(
        "full-reference layout",
        &full,
        &[],
        &[
            ("quay.io/x/a:full", digests[0].clone()),
            ("quay.io/y/b:full", digests[1].clone()),
        ],
    );
    drop(up);
}

#[test]
fn a_layout_that_names_nothing_is_an_error_and_images_in_the_mirror_are_counted() {
    let work = tempfile::tempdir().unwrap();
    let mirror = TestRegistry::plain();
    // An index whose one entry has no name at all, only the image it was built FROM.
    let bundle = Bundle::new(&[("quay.io/x/a:v1", &[(111, 1_000)])]);
    let index_path = bundle.dir.path().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.base.name": "docker.io/library/debian:12"});
    std::fs::write(&index_path, index.to_string()).unwrap();
    let (code, stdout, stderr) = push_from(&mirror, bundle.dir.path(), &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("1 images with no name")
            && stderr.contains("built FROM docker.io/library/debian:12"),
        "{stderr}"
    );
    assert!(common::registry::catalog(&mirror.host()).is_empty());

    // An image already named in the mirror is said, with the count; the other is pushed.
    let bundle = Bundle::new(&[
        ("quay.io/x/a:v1", &[(112, 1_000)]),
        (&format!("{}/x/b:v1", mirror.host()), &[(113, 1_000)]),
    ]);
    let (code, stdout, stderr) = push_from(&mirror, bundle.dir.path(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("1 images already name the mirror"),
        "{stderr}"
    );
    assert!(stdout.contains("1 images: 1 copied"), "{stdout}");

    // A --name no entry has names what the layout does have.
    let (code, _, stderr) = push_from(&mirror, bundle.dir.path(), &["--name", "v9=quay.io/x/a:v9"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no entry tagged or digested \"v9\""),
        "{stderr}"
    );
    let _ = work;
}

#[test]
fn ten_images_with_one_tag_are_each_addressable_by_skopeo_and_ctr() {
    let images: Vec<String> = (0..10).map(|i| format!("quay.io/team{i}/app:v1")).collect();
    let layers: Vec<[(u64, usize); 1]> = (0..10).map(|i| [(200 + i as u64, 2_000)]).collect();
    let spec: Vec<(&str, &[(u64, usize)])> = images
        .iter()
        .zip(&layers)
        .map(|(n, l)| (n.as_str(), &l[..]))
        .collect();
    let bundle = Bundle::new(&spec);
    let (up, _) = upstream(&bundle);
    let work = tempfile::tempdir().unwrap();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let manifests = pod_manifests(work.path(), &refs, None);
    let tar = work.path().join("bundle.tar");
    let (code, stdout, stderr) = airgap(&[
        "save",
        "--source-mirror",
        &format!("quay.io=http://{}", up.host()),
        "-f",
        manifests.to_str().unwrap(),
        "-o",
        tar.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let dir = work.path().join("unpacked");
    std::fs::create_dir(&dir).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap()
            .success()
    );
    for (name, (_, digest, _)) in images.iter().zip(&bundle.images) {
        assert_eq!(
            skopeo_digest(&format!("oci:{}:{name}", dir.display())).as_ref(),
            Ok(digest),
            "skopeo inspect oci:BUNDLE:{name}"
        );
    }

    let ctr = Containerd::start();
    ctr.run(&["images", "import", tar.to_str().unwrap()]);
    let mut want = images.clone();
    want.sort();
    assert_eq!(
        ctr.image_names(),
        want,
        "ctr images import lists every name"
    );
}

/// A TCP relay in front of a registry that counts the bytes coming back from it and, while
/// `slow` is set, passes them at about 40 MB/s, so a test can stop a transfer half-way.
struct CountingProxy {
    port: u16,
    down: Arc<AtomicU64>,
    slow: Arc<std::sync::atomic::AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicU64::new(0));
        let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (d, s) = (down.clone(), slow.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (d, s) = (d.clone(), s.clone());
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        d.fetch_add(n as u64, Ordering::SeqCst);
                        if s.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_micros(n as u64 / 40));
                        }
                    }
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        CountingProxy { port, down, slow }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn save_child(proxy: &CountingProxy, manifests: &Path, out: &Path, logs: &Path) -> Child {
    common::airgap_child(logs)
        .args(["save", "--source-mirror"])
        .arg(format!("quay.io=http://{}", proxy.host()))
        .arg("-f")
        .arg(manifests)
        .arg("-o")
        .arg(out)
        .spawn()
        .unwrap()
}

fn finished(mut child: Child, logs: &Path) -> (i32, String) {
    let status = child.wait().unwrap();
    let read = |n: &str| std::fs::read_to_string(logs.join(n)).unwrap_or_default();
    (
        status.code().unwrap_or(-1),
        read("stdout") + &read("stderr"),
    )
}

/// The largest half-written blob under `dir`, in bytes.
fn partial_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .max()
        .unwrap_or(0)
}

/// Every image of `bundle` reads back from the layout at `dir` with its upstream digest, and
/// skopeo copies it out whole (it checks every blob's digest as it copies).
fn assert_whole(dir: &Path, names: &[&str], bundle: &Bundle, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for (name, (_, digest, _)) in names.iter().zip(&bundle.images) {
        let at = format!("oci:{}:{name}", dir.display());
        assert_eq!(skopeo_digest(&at).as_ref(), Ok(digest), "{name}");
        let copy = out.join(name.replace(['/', ':'], "_"));
        skopeo(&["copy", "--quiet", &at, &format!("dir:{}", copy.display())]);
    }
}

#[test]
fn save_continues_a_killed_run_adds_to_a_bundle_and_leaves_none_when_an_image_fails() {
    const BIG: usize = 200 << 20;
    let bundle = Bundle::new(&[
        ("quay.io/big/app:v1", &[(300, BIG)]),
        ("quay.io/small/one:v1", &[(301, 50_000)]),
        ("quay.io/small/two:v1", &[(302, 60_000)]),
    ]);
    let names = [
        "quay.io/big/app:v1",
        "quay.io/small/one:v1",
        "quay.io/small/two:v1",
    ];
    let (up, _) = upstream(&bundle);
    let proxy = CountingProxy::start(up.port);
    let work = tempfile::tempdir().unwrap();
    let logs = work.path();
    let first = pod_manifests(work.path(), &names[..2], None);
    let out = work.path().join("bundle");

    // Killed half-way through the 200 MB layer.
    let mut child = save_child(&proxy, &first, &out, logs);
    let deadline = Instant::now() + Duration::from_secs(120);
    while partial_bytes(&out) < (BIG / 2) as u64 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "save ended before half the layer"
        );
        assert!(Instant::now() < deadline, "the layer never got half-way");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = partial_bytes(&out);
    assert!(kept >= (BIG / 2) as u64 && kept < BIG as u64, "{kept}");
    assert!(
        !out.join("index.json").exists(),
        "a killed save claims no bundle"
    );
    // A partial a dead run left is continued once it has been still for 3 s.
    std::thread::sleep(Duration::from_millis(3_500));

    proxy.slow.store(false, Ordering::SeqCst);
    proxy.down.store(0, Ordering::SeqCst);
    let (code, output) = finished(save_child(&proxy, &first, &out, logs), logs);
    assert_eq!(code, 0, "{output}");
    let moved = proxy.down.load(Ordering::SeqCst);
    let missing = BIG as u64 - kept;
    assert!(
        moved >= missing && moved < missing + (1 << 20),
        "the rerun moved {moved} bytes; {missing} were missing\n{output}"
    );
    assert!(
        output.contains("1 continued where a killed run stopped"),
        "{output}"
    );
    assert_eq!(partial_bytes(&out), 0, "no partial file left");
    assert_whole(&out, &names[..2], &bundle, &work.path().join("copies1"));

    // A damaged blob (truncated) is fetched again; a second save with one more image adds it.
    let (_, _, small_config) = &bundle.images[1];
    let damaged = out
        .join("blobs/sha256")
        .join(small_config.strip_prefix("sha256:").unwrap());
    let len = std::fs::metadata(&damaged).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let all = pod_manifests(work.path(), &names, None);
    proxy.down.store(0, Ordering::SeqCst);
    let (code, output) = finished(save_child(&proxy, &all, &out, logs), logs);
    assert_eq!(code, 0, "{output}");
    let moved = proxy.down.load(Ordering::SeqCst);
    assert!(
        moved < 1 << 20,
        "adding one small image moved {moved} bytes\n{output}"
    );
    assert!(
        output.contains("3 images: 2 copied, 1 already present"),
        "{output}"
    );
    assert_eq!(index_digests(&out).len(), 3);
    let lock = std::fs::read_to_string(out.join("images.lock.yaml")).unwrap();
    for name in names {
        assert!(lock.contains(name), "{name} in the merged lock:\n{lock}");
    }
    assert_whole(&out, &names, &bundle, &work.path().join("copies2"));

    // One image that cannot be saved: no tar, and a new directory gets no index or lock.
    let missing_image = pod_manifests(
        work.path(),
        &["quay.io/small/one:v1", "quay.io/nowhere/gone:v1"],
        None,
    );
    let tar = work.path().join("failed.tar");
    let (code, output) = finished(save_child(&proxy, &missing_image, &tar, logs), logs);
    assert_eq!(code, 2, "{output}");
    assert!(!tar.exists(), "a failed save leaves no tar: {output}");
    assert!(output.contains("was not written"), "{output}");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(
        leftovers,
        Vec::<PathBuf>::new(),
        "no staging directory left"
    );
    let dir = work.path().join("failed-dir");
    let (code, output) = finished(save_child(&proxy, &missing_image, &dir, logs), logs);
    assert_eq!(code, 2, "{output}");
    assert!(!dir.join("index.json").exists() && !dir.join("images.lock.yaml").exists());
    let (code, _, stderr) = push_from(&up, &dir, &[]);
    assert_ne!(code, 0, "an unfinished bundle is not pushed: {stderr}");
}

/// `check --bundle BUNDLE ARGS`: (exit code, stdout, stderr).
fn check_bundle(bundle: &Path, args: &[&str]) -> (i32, String, String) {
    common::outcome(
        common::airgap()
            .args(["check", "--bundle"])
            .arg(bundle)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// Manifests of a Pod using `images`, in a directory of their own under `dir`.
fn manifests_in(dir: &Path, name: &str, images: &[&str]) -> String {
    let at = dir.join(name);
    std::fs::create_dir_all(&at).unwrap();
    pod_manifests(&at, images, None)
        .to_str()
        .unwrap()
        .to_string()
}

/// `save` of `images` from `up` (standing in for quay.io) into `out`.
fn save(up: &TestRegistry, manifests: &str, out: &Path) {
    let (code, stdout, stderr) = airgap(&[
        "save",
        "--source-mirror",
        &format!("quay.io=http://{}", up.host()),
        "-f",
        manifests,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "save -o {}: {stdout}{stderr}", out.display());
}

/// (source, status, detail) of each image of a `check -o json` report.
fn check_rows(stdout: &str) -> Vec<(String, String, String)> {
    let report: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let details = common::per_image(&report, "detail");
    common::per_image(&report, "status")
        .into_iter()
        .zip(details)
        .map(|((source, status), (_, detail))| (source, status, detail))
        .collect()
}

#[test]
fn check_bundle_says_whether_a_saved_bundle_holds_what_manifests_and_locks_need() {
    let bundle = Bundle::new(&[
        ("quay.io/x/a:v1", &[(401, 20_000)]),
        ("quay.io/y/b:v1", &[(402, 30_000), (403, 5_000)]),
    ]);
    let (up, _) = upstream(&bundle);
    let work = tempfile::tempdir().unwrap();
    let both = manifests_in(work.path(), "both", &["quay.io/x/a:v1", "quay.io/y/b:v1"]);
    let dir = work.path().join("bundle");
    let tar = work.path().join("bundle.tar");
    let tgz = work.path().join("bundle.tar.gz");
    for out in [&dir, &tar, &tgz] {
        save(&up, &both, out);
    }
    drop(up);
    let (a_digest, b_digest) = (&bundle.images[0].1, &bundle.images[1].1);

    // Every image there: exit 0, from a directory, a plain tar and a compressed one, with the
    // digests the upstream images have.
    for b in [&dir, &tar, &tgz] {
        let (code, stdout, stderr) = check_bundle(b, &["-o", "json", "-f", &both]);
        assert_eq!(code, 0, "{}: {stdout}{stderr}", b.display());
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["summary"]["present"], 2, "{report}");
        assert_eq!(report["images"][0]["digest"], a_digest.as_str(), "{report}");
        assert_eq!(report["images"][1]["digest"], b_digest.as_str(), "{report}");
        assert_eq!(report["bundle"], b.to_str().unwrap());
        assert!(report["images"][0].get("mirror").is_none(), "{report}");
    }

    // One image the bundle lacks: exit 1, and the table names it (and only it) as missing.
    let three = manifests_in(
        work.path(),
        "three",
        &["quay.io/x/a:v1", "quay.io/y/b:v1", "quay.io/z/c:v1"],
    );
    for b in [&dir, &tar] {
        let (code, stdout, stderr) = check_bundle(b, &["-f", &three]);
        assert_eq!(code, 1, "{}: {stdout}{stderr}", b.display());
        let missing: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("missing"))
            .collect();
        assert_eq!(missing.len(), 1, "{stdout}");
        assert!(missing[0].contains("quay.io/z/c:v1"), "{stdout}");
        assert!(
            stdout.contains("3 images in bundle") && stdout.contains("2 present, 1 missing"),
            "{stdout}"
        );
    }

    // Another tag of a repository it holds: missing, saying what it holds instead.
    let other_tag = manifests_in(work.path(), "other-tag", &["quay.io/x/a:v2"]);
    let (code, stdout, _) = check_bundle(&dir, &["-o", "json", "-f", &other_tag]);
    assert_eq!(code, 1);
    let rows = check_rows(&stdout);
    assert_eq!(rows[0].1, "missing");
    assert!(rows[0].2.contains("quay.io/x/a:v1"), "{rows:?}");

    // By digest: the digest the bundle holds is present; any other is missing.
    let by_digest = format!("quay.io/x/a@{a_digest}");
    let wrong = format!("quay.io/x/a@sha256:{}", "0".repeat(64));
    let digests = manifests_in(work.path(), "digests", &[&by_digest, &wrong]);
    let (code, stdout, _) = check_bundle(&tar, &["-o", "json", "-f", &digests]);
    assert_eq!(code, 1, "{stdout}");
    let rows = check_rows(&stdout);
    assert!(
        rows.iter()
            .any(|(s, st, _)| *s == by_digest && st == "present"),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|(s, st, _)| *s == wrong && st == "missing"),
        "{rows:?}"
    );

    // The lock save wrote matches; a lock whose digest differs is a mismatch naming the image
    // and both digests.
    let (code, stdout, stderr) = check_bundle(
        &dir,
        &["--lock", dir.join("images.lock.yaml").to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 present"), "{stdout}");
    let moved = format!("sha256:{}", "1".repeat(64));
    let lock = work.path().join("moved.lock.yaml");
    std::fs::write(
        &lock,
        format!(
            "apiVersion: kubectl-airgap/v1\nkind: ImageLock\nimages:\n- source: quay.io/x/a:v1\n  digest: {a_digest}\n- source: quay.io/y/b:v1\n  digest: {moved}\n"
        ),
    )
    .unwrap();
    for b in [&dir, &tgz] {
        let (code, stdout, _) = check_bundle(b, &["--lock", lock.to_str().unwrap()]);
        assert_eq!(code, 1, "{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with("mismatch"))
            .unwrap_or_else(|| panic!("no mismatch: {stdout}"));
        assert!(
            line.contains("quay.io/y/b:v1") && line.contains(&moved) && line.contains(b_digest),
            "{line}"
        );
        assert!(
            stdout.contains("1 present, 0 missing, 1 mismatched"),
            "{stdout}"
        );
    }

    // Platforms: the images are linux/amd64 only.
    let (code, stdout, _) = check_bundle(&dir, &["--platform", "linux/amd64", "-f", &both]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = check_bundle(&tar, &["--platform", "linux/arm64", "-f", &both]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("no linux/arm64 (the bundle's image has linux/amd64)"),
        "{stdout}"
    );

    // --bundle replaces the mirror: not with --registry or --cluster.
    let (code, _, stderr) = check_bundle(&dir, &["--registry", "r.local:5000", "-f", &both]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--bundle") && stderr.contains("--registry"),
        "{stderr}"
    );
    let (code, _, stderr) = check_bundle(&dir, &["--cluster", "-f", &both]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--cluster"), "{stderr}");
}

#[test]
fn check_bundle_refuses_a_bundle_it_cannot_read_naming_it() {
    let bundle = Bundle::new(&[("quay.io/x/a:v1", &[(411, 20_000)])]);
    let (up, _) = upstream(&bundle);
    let work = tempfile::tempdir().unwrap();
    let m = manifests_in(work.path(), "m", &["quay.io/x/a:v1"]);
    let good = work.path().join("good");
    save(&up, &m, &good);
    drop(up);
    let (code, stdout, stderr) = check_bundle(&good, &["-f", &m]);
    assert_eq!(code, 0, "the undamaged bundle: {stdout}{stderr}");
    let copy = |name: &str| {
        let to = work.path().join(name);
        assert!(
            Command::new("cp")
                .arg("-r")
                .arg(&good)
                .arg(&to)
                .status()
                .unwrap()
                .success()
        );
        to
    };
    let expect_2 = |b: &Path, says: &[&str]| {
        let (code, stdout, stderr) = check_bundle(b, &["-f", &m]);
        assert_eq!(code, 2, "{}: {stdout}{stderr}", b.display());
        assert!(
            stderr.contains(b.to_str().unwrap()),
            "names the bundle: {stderr}"
        );
        for s in says {
            assert!(stderr.contains(s), "says {s:?}: {stderr}");
        }
    };

    // No such path; a directory that is no layout.
    expect_2(&work.path().join("nowhere"), &["no such file"]);
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    expect_2(&empty, &["not an OCI image layout"]);

    // index.json that does not parse.
    let corrupt = copy("corrupt-index");
    std::fs::write(corrupt.join("index.json"), "{\"manifests\": [").unwrap();
    expect_2(&corrupt, &["index.json", "not a valid OCI index"]);

    // A layer the image's manifest names is gone; then one cut short.
    let config = &bundle.images[0].2;
    let layer = bundle
        .blob_digests
        .iter()
        .find(|d| *d != config)
        .unwrap()
        .clone();
    let blob = |dir: &Path| {
        dir.join("blobs/sha256")
            .join(layer.strip_prefix("sha256:").unwrap())
    };
    let lacking = copy("lacking-layer");
    std::fs::remove_file(blob(&lacking)).unwrap();
    expect_2(&lacking, &[&format!("lacks blob {layer}"), "save it again"]);
    let cut = copy("cut-layer");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(blob(&cut))
        .unwrap();
    f.set_len(100).unwrap();
    expect_2(&cut, &[&format!("blob {layer} is 100 bytes")]);

    // The manifest the index names is gone.
    let no_manifest = copy("no-manifest");
    let manifest = &bundle.images[0].1;
    std::fs::remove_file(
        no_manifest
            .join("blobs/sha256")
            .join(manifest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    expect_2(&no_manifest, &["index.json lists quay.io/x/a:v1", manifest]);

    // A tar cut short.
    let tar = work.path().join("bundle.tar");
    let out = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&good)
        .arg(".")
        .status()
        .unwrap();
    assert!(out.success());
    let (code, stdout, stderr) = check_bundle(&tar, &["-f", &m]);
    assert_eq!(code, 0, "the whole tar: {stdout}{stderr}");
    let len = std::fs::metadata(&tar).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tar)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    expect_2(&tar, &["cut short"]);
}

#[test]
fn check_bundle_reads_what_skopeo_wrote() {
    let bundle = Bundle::new(&[
        ("quay.io/x/a:v1", &[(421, 20_000)]),
        ("quay.io/y/b:v1", &[(422, 10_000)]),
    ]);
    let (up, names) = upstream(&bundle);
    let work = tempfile::tempdir().unwrap();

    // Full references in ref.name (`skopeo copy ... oci:DIR:REF`): found by those names.
    let full = work.path().join("full");
    for (upstream, name) in [
        (&names[0], "quay.io/x/a:full"),
        (&names[1], "quay.io/y/b:full"),
    ] {
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{upstream}"),
            &format!("oci:{}:{name}", full.display()),
        ]);
    }
    let m = manifests_in(
        work.path(),
        "full",
        &["quay.io/x/a:full", "quay.io/y/b:full"],
    );
    let (code, stdout, stderr) = check_bundle(&full, &["-o", "json", "-f", &m]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let digests = index_digests(&full);
    assert_eq!(report["images"][0]["digest"], digests[0].as_str());
    assert_eq!(report["images"][1]["digest"], digests[1].as_str());
    let m = manifests_in(work.path(), "v1", &["quay.io/x/a:v1"]);
    let (code, stdout, _) = check_bundle(&full, &["-o", "json", "-f", &m]);
    assert_eq!(code, 1, "{stdout}");
    let rows = check_rows(&stdout);
    assert_eq!(rows[0].1, "missing", "{rows:?}");
    assert!(rows[0].2.contains("quay.io/x/a:full"), "{rows:?}");

    // By tag only: nothing can match it, and stderr says so instead of a silent "missing".
    let tagged = work.path().join("tagged");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", names[0]),
        &format!("oci:{}:v1", tagged.display()),
    ]);
    drop(up);
    let (code, stdout, stderr) = check_bundle(&tagged, &["-f", &m]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.starts_with("STATUS"), "{stdout}");
    assert!(
        stderr.contains("by tag only (v1)") && stderr.contains("--name"),
        "{stderr}"
    );
}
