//! The transfer ends against real registries: OCI layouts as directories and tars (plain, gzip,
//! zstd), docker archives made by skopeo and compressed with bzip2, `--platform`, a 200 MB
//! layer under a memory bound, a push killed half-way and rerun, and hostile archives.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{Bundle, FaultProxy, Layout, TestRegistry, against, catalog, require_tool};

/// The manifest skopeo reads at `reference` (plain HTTP), or None when it cannot.
fn skopeo_raw(reference: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

/// `skopeo copy FROM TO` (plain HTTP registries), which must succeed.
fn skopeo_copy(from: &str, to: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", from, to])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "skopeo copy {from} {to}: {stderr}");
}

use common::registry::digest_of;

fn skopeo_digest(reference: &str) -> Option<String> {
    skopeo_raw(reference).map(|b| digest_of(&b))
}

/// The mirror name of `source` under the default naming (host kept as the first component).
fn in_mirror(mirror: &TestRegistry, source: &str) -> String {
    format!("{}/{source}", mirror.host())
}

fn push_from(mirror: &TestRegistry, from: &str) -> (i32, String, String) {
    common::registry::push_from(mirror, from, &[])
}

/// "blobs: U uploaded, M mounted, K already there" from a summary line.
fn blob_counts(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.contains(" uploaded, "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let after = line.split("blobs: ").nth(1).unwrap();
    let n: Vec<u64> = after
        .split(", ")
        .take(3)
        .map(|p| p.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

fn tar_dir(dir: &Path, out: &Path, flag: Option<&str>) {
    let mut cmd = Command::new("tar");
    if let Some(f) = flag {
        cmd.arg(f);
    }
    let status = cmd
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

fn shared_bundle() -> Bundle {
    Bundle::new(&[
        ("quay.io/org/api:v1", &[(1, 300_000), (2, 50_000)]),
        ("quay.io/org/worker:v1", &[(1, 300_000), (3, 60_000)]),
        ("docker.io/library/tool:1.0", &[(1, 300_000), (4, 70_000)]),
    ])
}

#[test]
fn push_from_layout_directory_and_tars() {
    require_tool("skopeo");
    require_tool("zstd");
    let bundle = shared_bundle();
    let work = tempfile::tempdir().unwrap();
    let forms: Vec<(String, PathBuf)> = vec![
        ("dir".into(), bundle.dir.path().to_path_buf()),
        ("tar".into(), work.path().join("bundle.tar")),
        ("tar.gz".into(), work.path().join("bundle.tar.gz")),
        ("tar.zst".into(), work.path().join("bundle.tar.zst")),
    ];
    tar_dir(bundle.dir.path(), &forms[1].1, None);
    tar_dir(bundle.dir.path(), &forms[2].1, Some("-z"));
    tar_dir(bundle.dir.path(), &forms[3].1, Some("--zstd"));

    for (form, path) in &forms {
        let mirror = TestRegistry::plain();
        let (code, stdout, stderr) = push_from(&mirror, path.to_str().unwrap());
        assert_eq!(code, 0, "{form}: {stdout}{stderr}");
        assert!(stdout.contains("3 images: 3 copied"), "{form}: {stdout}");
        // The shared base layer moves once; the other two repositories mount it.
        let (uploaded, mounted, _) = blob_counts(&stdout);
        assert_eq!(
            (uploaded, mounted),
            (bundle.blobs as u64, 2),
            "{form}: {stdout}"
        );
        for (name, digest, _) in &bundle.images {
            assert_eq!(
                skopeo_digest(&in_mirror(&mirror, name)).as_ref(),
                Some(digest),
                "{form}: {name}"
            );
        }
        let (code, stdout, _) = push_from(&mirror, path.to_str().unwrap());
        assert_eq!(code, 0);
        assert!(
            stdout.contains("0 copied, 3 already present") && blob_counts(&stdout) == (0, 0, 0),
            "{form}, second push: {stdout}"
        );
    }
}

#[test]
fn save_a_filtered_tar_and_push_it() {
    let source = TestRegistry::plain();
    let mirror = TestRegistry::plain();
    let multi = Layout::multi_arch(41);
    let single = Layout::single(42);
    source.push(multi.dir.path(), "org/multi", "v1");
    source.push(single.dir.path(), "org/single", "v1");
    let work = tempfile::tempdir().unwrap();
    let m = common::registry::pod_manifests(
        work.path(),
        &["quay.io/org/multi:v1", "quay.io/org/single:v1"],
        None,
    );
    let bundle = work.path().join("bundle.tar.zst");
    let out = common::airgap()
        .args(["save", "--platform", "linux/arm64", "-o"])
        .arg(&bundle)
        .arg("-f")
        .arg(&m)
        .arg("--source-mirror")
        .arg(format!("quay.io=http://{}", source.host()))
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(
        stdout.contains("index filtered to 1 of 2 platforms: linux/arm64"),
        "{stdout}"
    );
    assert!(bundle.is_file());
    // No staging directory is left beside the tar.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 2);

    // The lock inside the tar records the filtered digest and the platforms.
    let listing = Command::new("tar")
        .arg("--zstd")
        .arg("-xOf")
        .arg(&bundle)
        .arg("images.lock.yaml")
        .output()
        .unwrap();
    let lock = String::from_utf8_lossy(&listing.stdout);
    assert!(lock.contains("platforms:\n  - linux/arm64"), "{lock}");
    assert!(
        lock.contains("  - linux/amd64"),
        "the single image's platform: {lock}"
    );
    assert!(
        !lock.contains(&multi.digest),
        "the index was filtered: {lock}"
    );

    let (code, stdout, stderr) = push_from(&mirror, bundle.to_str().unwrap());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let raw = skopeo_raw(&in_mirror(&mirror, "quay.io/org/multi:v1")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["arm64"]);
    assert!(
        lock.contains(&digest_of(&raw)),
        "mirror digest in the lock: {lock}"
    );
    assert_eq!(
        skopeo_digest(&in_mirror(&mirror, "quay.io/org/single:v1")),
        Some(single.digest.clone())
    );

    // An index pinned by digest cannot be filtered without breaking the pin.
    let pinned = format!("quay.io/org/multi@{}", multi.digest);
    let m2 = common::registry::pod_manifests(work.path(), &[&pinned], None);
    let out = against("push", &mirror.host())
        .args(["--platform", "linux/arm64", "--source-mirror"])
        .arg(format!("quay.io=http://{}", source.host()))
        .arg("-f")
        .arg(&m2)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("pins the index") && stdout.contains("Drop --platform"),
        "{stdout}"
    );
}

#[test]
fn push_docker_archives_from_a_directory_of_bzip2_files() {
    require_tool("skopeo");
    require_tool("bzip2");
    let source = TestRegistry::plain();
    let mirror = TestRegistry::plain();
    let bundle = shared_bundle();
    let work = tempfile::tempdir().unwrap();
    let archives = work.path().join("images");
    std::fs::create_dir(&archives).unwrap();
    for (i, (name, _, _)) in bundle.images.iter().enumerate() {
        let (_, rest) = name.split_once('/').unwrap();
        let (repo, tag) = rest.split_once(':').unwrap();
        source.push_named(bundle.dir.path(), &format!("img{i}"), repo, tag);
        // The classic offline package's file name: the reference with / and : replaced.
        let file = archives.join(format!("{}.tar", name.replace('/', "+").replace(':', "++")));
        skopeo_copy(
            &format!("docker://{}/{repo}:{tag}", source.host()),
            &format!("docker-archive:{}:{name}", file.display()),
        );
        // Two bzip2, one gzip: a directory may mix them.
        let compressor = if i == 2 { "gzip" } else { "bzip2" };
        assert!(
            Command::new(compressor)
                .arg(&file)
                .status()
                .unwrap()
                .success()
        );
    }
    let from = format!("docker-archive:{}", archives.display());
    let (code, stdout, stderr) = push_from(&mirror, &from);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("3 images: 3 copied"), "{stdout}");
    for (name, _, config) in &bundle.images {
        // No registry manifest survives `docker save`; the image ID (config digest) does.
        let raw = skopeo_raw(&in_mirror(&mirror, name)).unwrap_or_else(|| panic!("{name}"));
        let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            manifest["config"]["digest"].as_str(),
            Some(config.as_str()),
            "{name}"
        );
    }
    // A real client pulls one whole image back, every blob checked against its digest.
    let pulled = work.path().join("pulled");
    skopeo_copy(
        &format!("docker://{}", in_mirror(&mirror, &bundle.images[0].0)),
        &format!("oci:{}:x", pulled.display()),
    );

    let (code, stdout, _) = push_from(&mirror, &from);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("0 copied, 3 already present"),
        "second push: {stdout}"
    );

    // The names the classic package's script gives (`docker tag` with the registry host
    // removed), from `--naming strip`; the post-renderer then points the chart at the same.
    let stripped = TestRegistry::plain();
    let (code, stdout, stderr) =
        common::registry::push_from(&stripped, &from, &["--naming", "strip"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mut repos = catalog(&stripped.host());
    repos.sort();
    assert_eq!(repos, ["library/tool", "org/api", "org/worker"]);
    for (name, _, config) in &bundle.images {
        let path_and_tag = name.split_once('/').unwrap().1;
        let reference = format!("{}/{path_and_tag}", stripped.host());
        let raw = skopeo_raw(&reference).unwrap_or_else(|| panic!("{reference}"));
        let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(manifest["config"]["digest"].as_str(), Some(config.as_str()));
    }
    let out = common::airgap()
        .args([
            "post-render",
            "--naming",
            "strip",
            "--registry",
            &stripped.host(),
        ])
        .write_stdin(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: quay.io/org/api:v1\n",
        )
        .output()
        .unwrap();
    assert_eq!(
        common::stdout_of_success(&out),
        format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: {}/org/api:v1\n",
            stripped.host()
        )
    );
}

/// A tar whose single entry has the raw name `name` (the tar crate refuses to write `..`).
fn tar_with_entry(path: &Path, name: &str, kind: tar::EntryType, link: Option<&str>) {
    let mut header = tar::Header::new_gnu();
    {
        let raw = header.as_gnu_mut().unwrap();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            raw.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    let data = b"{}";
    header.set_size(if link.is_some() { 0 } else { data.len() as u64 });
    header.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    let body: &[u8] = if link.is_some() { &[] } else { data };
    b.append(&header, body).unwrap();
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[test]
fn hostile_and_damaged_archives_are_refused_with_nothing_in_the_mirror() {
    let mirror = TestRegistry::plain();
    let work = tempfile::tempdir().unwrap();
    let cases = [
        (
            "dotdot.tar",
            "../../etc/cron.d/x",
            tar::EntryType::Regular,
            None,
            "`..`",
        ),
        (
            "absolute.tar",
            "/etc/passwd",
            tar::EntryType::Regular,
            None,
            "absolute path",
        ),
        (
            "linkout.tar",
            "manifest.json",
            tar::EntryType::Symlink,
            Some("../../../etc/shadow"),
            "outside the archive",
        ),
    ];
    for (file, entry, kind, link, why) in cases {
        let path = work.path().join(file);
        tar_with_entry(&path, entry, kind, link);
        for from in [
            format!("docker-archive:{}", path.display()),
            path.display().to_string(),
        ] {
            let (code, stdout, stderr) = push_from(&mirror, &from);
            assert_eq!(code, 2, "{from}: {stdout}{stderr}");
            assert!(
                stderr.contains(file)
                    && stderr.contains(&format!("{entry:?}"))
                    && stderr.contains(why),
                "{from}: {stderr}"
            );
        }
    }

    // A bundle cut short in the middle of its compressed stream.
    let bundle = shared_bundle();
    let whole = work.path().join("whole.tar.gz");
    tar_dir(bundle.dir.path(), &whole, Some("-z"));
    let bytes = std::fs::read(&whole).unwrap();
    let cut = work.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, stdout, stderr) = push_from(&mirror, cut.to_str().unwrap());
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("cut.tar.gz") && stderr.contains("truncated or corrupt"),
        "{stderr}"
    );

    // A layer whose bytes do not match its digest: that image is refused, the others land.
    let layer = &bundle.images[1];
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bundle.dir.path().join("blobs/sha256").join(&layer.1[7..])).unwrap(),
    )
    .unwrap();
    let own_layer = manifest["layers"][1]["digest"].as_str().unwrap();
    let blob = bundle.dir.path().join("blobs/sha256").join(&own_layer[7..]);
    let mut data = std::fs::read(&blob).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let damaged = work.path().join("damaged.tar");
    tar_dir(bundle.dir.path(), &damaged, None);
    let (code, stdout, stderr) = push_from(&mirror, damaged.to_str().unwrap());
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("failed   {}", layer.0)) && stdout.contains("hashes to"),
        "{stdout}"
    );
    assert_eq!(skopeo_digest(&in_mirror(&mirror, &layer.0)), None);
    assert_eq!(
        catalog(&mirror.host()).len(),
        3,
        "the refused archives left nothing; the damaged bundle's repositories hold only blobs of the bad image"
    );
    for (name, digest, _) in [&bundle.images[0], &bundle.images[2]] {
        assert_eq!(
            skopeo_digest(&in_mirror(&mirror, name)).as_ref(),
            Some(digest)
        );
    }
}

/// Files named `data` under `dir` (how docker-registry stores blobs and uploads), and sizes.
fn data_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            data_files(&p, out);
        } else if p.file_name().is_some_and(|n| n == "data") {
            out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
}

fn big_bundle() -> Bundle {
    Bundle::new(&[
        ("quay.io/org/big:v1", &[(100, 1_000_000), (101, 200 << 20)]),
        ("quay.io/org/s1:v1", &[(110, 2_000_000), (111, 2_000_000)]),
        ("quay.io/org/s2:v1", &[(120, 2_000_000), (121, 2_000_000)]),
        ("quay.io/org/s3:v1", &[(130, 2_000_000), (131, 2_000_000)]),
    ])
}

/// `push --from FROM` as a plain child process (the tests time and kill it), with the user's
/// configuration kept out.
fn push_command(mirror: &TestRegistry, from: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-airgap"));
    cmd.args(["push", "--registry", &mirror.host(), "--insecure-registry"])
        .args([&mirror.host(), "--from", from])
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("XDG_CONFIG_HOME", "/nonexistent");
    cmd
}

/// Runs `cmd`, returning its exit code and peak resident memory in bytes: the kernel's
/// high-water mark (`VmHWM`) of the process, read until it exits. (wait4's `ru_maxrss` would
/// also count the test process's own memory, which the child held between fork and exec.)
fn run_measured(mut cmd: Command) -> (i32, u64) {
    let mut child = cmd.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), peak_kb * 1024);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_200_mb_layer_in_bounded_memory_and_a_killed_push_resumes() {
    let bundle = big_bundle();
    let from = bundle.dir.path().to_str().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();

    let mirror = TestRegistry::plain();
    let mut cmd = push_command(&mirror, &from);
    cmd.stdout(std::fs::File::create(work.path().join("out1")).unwrap())
        .stderr(Stdio::inherit());
    let (code, peak) = run_measured(cmd);
    let stdout = std::fs::read_to_string(work.path().join("out1")).unwrap();
    assert_eq!(code, 0, "{stdout}");
    assert!(
        peak < 100 << 20,
        "peak RSS {} MB pushing a 200 MB layer",
        peak >> 20
    );
    eprintln!(
        "peak RSS pushing a 200 MB layer: {:.1} MB",
        peak as f64 / 1048576.0
    );
    for (name, digest, _) in &bundle.images {
        assert_eq!(
            skopeo_digest(&in_mirror(&mirror, name)).as_ref(),
            Some(digest)
        );
    }

    // Killed while the big layer is half-way up: no image of the mirror is broken, and the
    // rerun moves only what had not landed.
    let mirror = TestRegistry::plain();
    let mut child = push_command(&mirror, &from)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let storage = mirror.dir.path().join("storage");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut files = Vec::new();
        data_files(&storage, &mut files);
        let uploading = files
            .iter()
            .any(|(p, n)| p.to_string_lossy().contains("_uploads") && *n > 50 << 20);
        if uploading {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "the big layer never started uploading"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut files = Vec::new();
    data_files(&storage.join("docker/registry/v2/blobs"), &mut files);
    // The registry keeps manifests as blobs too; count the bundle's configs and layers.
    let landed = files
        .iter()
        .filter(|(p, _)| {
            let hex = p.parent().unwrap().file_name().unwrap().to_string_lossy();
            bundle.blob_digests.contains(&format!("sha256:{hex}"))
        })
        .count() as u64;
    assert!(
        landed < bundle.blobs as u64,
        "the kill came too late: {landed} blobs landed"
    );
    assert_eq!(
        skopeo_digest(&in_mirror(&mirror, "quay.io/org/big:v1")),
        None
    );

    let (code, stdout, stderr) = push_from(&mirror, &from);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Images tagged before the kill are found whole; every blob that landed is not sent again.
    let (uploaded, mounted, _) = blob_counts(&stdout);
    assert_eq!(mounted, 0);
    assert_eq!(uploaded, bundle.blobs as u64 - landed, "{stdout}");
    assert!(stdout.contains("copied   quay.io/org/big:v1"), "{stdout}");
    for (name, digest, _) in &bundle.images {
        assert_eq!(
            skopeo_digest(&in_mirror(&mirror, name)).as_ref(),
            Some(digest),
            "{name}"
        );
    }
}

#[test]
fn a_registry_behind_a_1_mib_body_limit_gets_chunked_uploads() {
    let bundle = Bundle::new(&[
        ("quay.io/org/chunky:v1", &[(200, 3_500_000), (201, 10_000)]),
        ("quay.io/org/small:v1", &[(202, 20_000)]),
    ]);
    let mirror = TestRegistry::plain();
    let proxy = FaultProxy::body_limit(mirror.port, 1 << 20);
    let host = format!("127.0.0.1:{}", proxy.port);
    let out = against("push", &host)
        .args(["--from", bundle.dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(stdout.contains("2 images: 2 copied"), "{stdout}");
    for (name, digest, _) in &bundle.images {
        assert_eq!(
            skopeo_digest(&in_mirror(&mirror, name)).as_ref(),
            Some(digest),
            "{name}"
        );
    }
}

/// A 413 turns into a chunked upload within the same upload: the blob is read from its source
/// once. (Before, the copier's next attempt re-read the whole blob from the source, after a
/// back-off, because a 413 only surfaced as an error.) The source registry sits behind a
/// recording proxy, so every GET of the big layer is counted.
#[test]
fn a_413_becomes_a_chunked_upload_without_reading_the_source_again() {
    let bundle = Bundle::new(&[("quay.io/org/chunky:v1", &[(210, 3_500_000), (211, 10_000)])]);
    let (name, digest, _) = bundle.images[0].clone();
    let upstream = TestRegistry::plain();
    let (code, stdout, stderr) = common::registry::push_from(
        &upstream,
        bundle.dir.path().as_os_str(),
        &["--naming", "strip"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let source = FaultProxy::start(upstream.port, Vec::new(), false);
    let mirror = TestRegistry::plain();
    let limit = FaultProxy::body_limit(mirror.port, 1 << 20);
    let work = tempfile::tempdir().unwrap();
    let m = common::registry::pod_manifests(work.path(), &[&name], None);
    let host = format!("127.0.0.1:{}", limit.port);
    let out = against("push", &host)
        .args(["--from", "registry", "--source-mirror"])
        .arg(format!("quay.io=http://127.0.0.1:{}", source.port))
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(stdout.contains("1 images: 1 copied"), "{stdout}");
    // The 3.5 MB layer, as Bundle wrote it.
    let layer = digest_of(&common::registry::sized_layer(210, 3_500_000));
    assert!(bundle.blob_digests.contains(&layer));
    assert!(
        limit.count("PATCH ") >= 4,
        "3.5 MB in 1 MiB chunks: {:?}",
        limit.lines.lock().unwrap()
    );
    assert_eq!(
        source.count(&format!("GET /v2/org/chunky/blobs/{layer}")),
        1,
        "the layer was read from its source once: {:?}",
        source.lines.lock().unwrap()
    );
    assert_eq!(
        skopeo_digest(&format!("{}/{name}", mirror.host())).as_ref(),
        Some(&digest)
    );
}

/// A registry that denies an upload (403 DENIED: no push rights) is asked once per blob: the
/// copier used to retry a refusal as if it were a dropped connection, three times with a
/// back-off, and say the same thing at the end.
#[test]
fn a_denied_upload_is_not_retried() {
    let bundle = Bundle::new(&[("quay.io/org/denied:v1", &[(220, 30_000)])]);
    let mirror = TestRegistry::plain();
    let proxy = FaultProxy::deny_uploads(mirror.port);
    let host = format!("127.0.0.1:{}", proxy.port);
    let started = Instant::now();
    let out = against("push", &host)
        .args(["--from", bundle.dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let (code, stdout, stderr) = common::outcome(out);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.contains("denied access"), "{stdout}\n{stderr}");
    let uploads = proxy.count("/blobs/uploads/");
    // Two blobs (a layer and the config), each asked once; retries made it six.
    assert!(
        (1..=2).contains(&uploads),
        "{uploads} upload requests: {:?}",
        proxy.lines.lock().unwrap()
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(catalog(&mirror.host()).is_empty());
}
