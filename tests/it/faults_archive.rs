//! Hostile and damaged bundles, and interrupted runs: a zstd bomb is refused at once with
//! almost nothing written, a truncated plain tar is named truncated and tags nothing, and
//! SIGINT, SIGTERM and `kill -9` during `push` and `save` leave no temporary files behind
//! (the last one by the next run's sweep, once an hour old).
#![cfg(unix)]

use crate::common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use common::registry::{Bundle, TestRegistry, against, catalog, pod_manifests};

/// More than this in TMPDIR while a bomb is read fails the test (and stops the run).
const WRITE_LIMIT: u64 = 200 << 20;

/// One tar entry (a GNU header, the data, padding to 512 bytes), without the end-of-archive
/// marker, so entries can be laid out in any order and compressed piecewise.
fn tar_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = tar_header(name, data.len() as u64);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_header(name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// tar's end-of-archive marker: two zero blocks.
const TRAILER: [u8; 1024] = [0; 1024];

/// Writes `len` bytes of zeros as zstd frames of RLE blocks (4 bytes per 128 KiB), the way a
/// bomb packs 20 GiB into 640 KiB; the encoder itself would take seconds to find that out.
fn zstd_zeros(out: &mut impl std::io::Write, mut len: u64) {
    const BLOCK: u64 = 128 << 10;
    while len > 0 {
        // A frame: magic, a descriptor with no content size, a 128 KiB window.
        out.write_all(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38])
            .unwrap();
        let mut frame = Vec::new();
        // Frames of up to 1 GiB keep each one's block count modest.
        let mut in_frame = len.min(1 << 30);
        len -= in_frame;
        while in_frame > 0 {
            let n = in_frame.min(BLOCK);
            in_frame -= n;
            let last = u32::from(in_frame == 0);
            let header = ((n as u32) << 3) | (1 << 1) | last;
            frame.extend_from_slice(&header.to_le_bytes()[..3]);
            frame.push(0);
        }
        out.write_all(&frame).unwrap();
    }
}

/// A `.tar.zst` of `before`, then an entry `bomb` of `size` zero bytes, then `after` and the
/// end-of-archive marker.
fn write_bomb(
    path: &Path,
    before: &[(String, Vec<u8>)],
    bomb: &str,
    size: u64,
    after: &[(String, Vec<u8>)],
) {
    assert_eq!(size % 512, 0, "a bomb of whole blocks needs no padding");
    let mut head = Vec::new();
    for (name, data) in before {
        head.extend(tar_entry(name, data));
    }
    head.extend(tar_header(bomb, size));
    let mut tail = Vec::new();
    for (name, data) in after {
        tail.extend(tar_entry(name, data));
    }
    tail.extend_from_slice(&TRAILER);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(&zstd::encode_all(&head[..], 3).unwrap())
        .unwrap();
    zstd_zeros(&mut file, size);
    file.write_all(&zstd::encode_all(&tail[..], 3).unwrap())
        .unwrap();
    file.flush().unwrap();
}

/// A bundle's files parent first: oci-layout, index.json, then each image's manifest, config
/// and layers, as (name inside the layout, bytes).
fn parent_first(bundle: &Bundle) -> Vec<(String, Vec<u8>)> {
    let dir = bundle.dir.path();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let blob = |digest: &str| format!("blobs/sha256/{}", &digest[7..]);
    let mut out = vec![
        ("oci-layout".to_string(), read("oci-layout")),
        ("index.json".to_string(), read("index.json")),
    ];
    let mut seen = std::collections::HashSet::new();
    for (_, manifest, _) in &bundle.images {
        let bytes = read(&blob(manifest));
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        out.push((blob(manifest), bytes));
        let children = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
        for d in children {
            let name = blob(d["digest"].as_str().unwrap());
            if seen.insert(name.clone()) {
                let bytes = read(&name);
                out.push((name, bytes));
            }
        }
    }
    out
}

fn one_image() -> Bundle {
    Bundle::new(&[("quay.io/org/app:v1", &[(1, 10_000)])])
}

/// Bytes in the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Every path under `dir` (files and directories), relative.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let rel = PathBuf::from(e.file_name());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(listing(&e.path()).into_iter().map(|p| rel.join(p)));
        }
        out.push(rel);
    }
    out.sort();
    out
}

/// The binary as a plain child process (the tests time, watch and signal it), the user's
/// configuration kept out, TMPDIR set to `tmp`, output to files in `tmp`'s parent.
fn airgap_child(args: &[&str], tmp: &Path, logs: &Path) -> Child {
    common::airgap_child(logs)
        .args(args)
        .env("TMPDIR", tmp)
        .spawn()
        .unwrap()
}

fn logs(dir: &Path) -> (String, String) {
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    (read("stdout"), read("stderr"))
}

/// How a watched run went.
struct Watched {
    status: ExitStatus,
    elapsed: Duration,
    /// The most bytes seen in TMPDIR at once.
    peak: u64,
}

/// Waits for `child`, polling the bytes in `tmp`; a run that writes more than WRITE_LIMIT
/// there or takes over `limit` is killed (and its `peak` says so).
fn watch(mut child: Child, tmp: &Path, limit: Duration) -> Watched {
    let started = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(dir_bytes(tmp));
        if let Some(status) = child.try_wait().unwrap() {
            return Watched {
                status,
                elapsed: started.elapsed(),
                peak,
            };
        }
        if peak > WRITE_LIMIT || started.elapsed() > limit {
            let _ = child.kill();
            let status = child.wait().unwrap();
            return Watched {
                status,
                elapsed: started.elapsed(),
                peak,
            };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `push --from bomb` with TMPDIR in `work`, which must be refused within `within`, naming
/// `entry`, with under WRITE_LIMIT written and nothing in the mirror; returns the error.
fn assert_bomb_refused(bomb: &Path, entry: &str, within: Duration) -> String {
    assert_refused(bomb.to_str().unwrap(), bomb, entry, within)
}

/// As [`assert_bomb_refused`], for `push --from FROM` where FROM names `bomb` (with a
/// `docker-archive:` prefix, say).
fn assert_refused(from: &str, bomb: &Path, entry: &str, within: Duration) -> String {
    let mirror = TestRegistry::plain();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let host = mirror.host();
    let child = airgap_child(
        &[
            "push",
            "--registry",
            &host,
            "--insecure-registry",
            &host,
            "--from",
            from,
        ],
        &tmp,
        work.path(),
    );
    let run = watch(
        child,
        &tmp,
        within.max(Duration::from_secs(50)) + Duration::from_secs(10),
    );
    let (stdout, stderr) = logs(work.path());
    let what = bomb.file_name().unwrap().to_string_lossy();
    assert!(
        run.peak < WRITE_LIMIT,
        "{what}: {} MB written to TMPDIR (stopped); {stdout}{stderr}",
        run.peak >> 20
    );
    assert_eq!(run.status.code(), Some(2), "{what}: {stdout}{stderr}");
    assert!(
        run.elapsed < within,
        "{what}: refused after {:?}, not within {within:?}: {stderr}",
        run.elapsed
    );
    assert!(
        stderr.contains(entry) && stderr.contains(&*what) && stderr.contains("refusing"),
        "{what}: the error names the archive and {entry}: {stderr}"
    );
    assert_eq!(listing(&tmp), Vec::<PathBuf>::new(), "{what}: TMPDIR after");
    assert_eq!(catalog(&host), Vec::<String>::new(), "{what}");
    eprintln!(
        "{what}: refused in {:?}, {} KB written: {}",
        run.elapsed,
        run.peak >> 10,
        stderr.trim()
    );
    stderr
}

const BOMB_SIZE: u64 = 20 << 30;
/// A hex name no real blob has.
const BOMB_HEX: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

#[test]
fn a_zstd_bomb_the_index_does_not_reach_is_refused_at_once() {
    let bundle = one_image();
    let files = parent_first(&bundle);
    let work = tempfile::tempdir().unwrap();
    // Everything the index reaches is known by the time the bomb comes: a blob nothing
    // names, then an entry no layout has.
    let (known, rest) = files.split_at(files.len() - 1);
    let blob_name = format!("blobs/sha256/{BOMB_HEX}");
    for (file, name) in [
        ("unnamed.tar.zst", blob_name.as_str()),
        ("junk.tar.zst", "zeros.bin"),
    ] {
        let path = work.path().join(file);
        write_bomb(&path, known, name, BOMB_SIZE, rest);
        let compressed = std::fs::metadata(&path).unwrap().len();
        assert!(compressed < 1 << 20, "{file}: {compressed} bytes");
        assert_bomb_refused(&path, name, Duration::from_secs(5));
    }
}

#[test]
fn a_zstd_bomb_the_index_names_with_a_small_size_is_refused_at_once() {
    let bundle = one_image();
    let files = parent_first(&bundle);
    let work = tempfile::tempdir().unwrap();
    let bomb = format!("blobs/sha256/{BOMB_HEX}");

    // index.json names the bomb as an image's manifest of 1234 bytes.
    let mut index: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{BOMB_HEX}"), "size": 1234,
            "annotations": {"io.containerd.image.name": "quay.io/org/bomb:v1"}
        }));
    let mut before = files[..2].to_vec();
    before[1].1 = index.to_string().into_bytes();
    let path = work.path().join("indexed.tar.zst");
    write_bomb(&path, &before, &bomb, BOMB_SIZE, &files[2..]);
    assert_bomb_refused(&path, &bomb, Duration::from_secs(5));

    // A manifest names it as a layer of 5000 bytes.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": bundle.images[0].2, "size": files[3].1.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{BOMB_HEX}"), "size": 5000}]
    })
    .to_string();
    let mut before = vec![files[0].clone()];
    before.extend(index_naming(manifest, "quay.io/org/bomb:v1"));
    let path = work.path().join("layer.tar.zst");
    write_bomb(&path, &before, &bomb, BOMB_SIZE, &files[3..4]);
    assert_bomb_refused(&path, &bomb, Duration::from_secs(5));
}

/// `index.json` naming `manifest` as image `name`, and the manifest's blob: a layout's two
/// entries after `oci-layout`.
fn index_naming(manifest: String, name: &str) -> [(String, Vec<u8>); 2] {
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(manifest.as_bytes()))
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest, "size": manifest.len(),
        "annotations": {"io.containerd.image.name": name}}]});
    [
        ("index.json".into(), index.to_string().into_bytes()),
        (
            format!("blobs/sha256/{}", &digest[7..]),
            manifest.into_bytes(),
        ),
    ]
}

#[test]
fn a_bundle_bigger_than_the_free_space_is_refused_before_unpacking() {
    // The index names a 1 PiB layer, at its true size: no disk has room, and nothing of it
    // is written (the stream holds only its first MiB; the refusal comes at the header).
    let bundle = one_image();
    let files = parent_first(&bundle);
    let size: u64 = 1 << 50;
    let layer = serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": format!("sha256:{BOMB_HEX}"), "size": size});
    let mut manifest: serde_json::Value = serde_json::from_slice(&files[2].1).unwrap();
    manifest["layers"].as_array_mut().unwrap().push(layer);
    let manifest = manifest.to_string();
    let mut head = Vec::new();
    for (name, data) in
        std::iter::once(files[0].clone()).chain(index_naming(manifest, "quay.io/org/huge:v1"))
    {
        head.extend(tar_entry(&name, &data));
    }
    let bomb = format!("blobs/sha256/{BOMB_HEX}");
    head.extend(tar_header(&bomb, size));
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("huge.tar.zst");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&zstd::encode_all(&head[..], 3).unwrap())
        .unwrap();
    zstd_zeros(&mut file, 1 << 20);
    drop(file);
    let stderr = assert_bomb_refused(&path, &bomb, Duration::from_secs(5));
    assert!(
        stderr.contains("free") && stderr.contains("set TMPDIR"),
        "{stderr}"
    );
}

#[test]
fn a_zstd_bomb_before_the_index_is_refused_with_nothing_written() {
    // The order of a tar made with `tar -C DIR .` or by earlier versions of `save`: the
    // index last, so nothing tells what the bomb is until it has gone by.
    let bundle = one_image();
    let files = parent_first(&bundle);
    let work = tempfile::tempdir().unwrap();
    let bomb = format!("blobs/sha256/{BOMB_HEX}");
    let mut after = files[2..].to_vec();
    after.push(files[1].clone());
    let path = work.path().join("late-index.tar.zst");
    write_bomb(&path, &files[..1], &bomb, 4 << 30, &after);
    assert_bomb_refused(&path, &bomb, Duration::from_secs(30));
}

/// A `.tar.zst` of `count` entries named by `name` of `size` zero bytes each, each under
/// both limits on its own, then `after` and the end-of-archive marker.
fn write_many_zeros(
    path: &Path,
    before: &[(String, Vec<u8>)],
    name: impl Fn(usize) -> String,
    count: usize,
    size: u64,
    after: &[(String, Vec<u8>)],
) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut head = Vec::new();
    for (name, data) in before {
        head.extend(tar_entry(name, data));
    }
    file.write_all(&zstd::encode_all(&head[..], 3).unwrap())
        .unwrap();
    for i in 0..count {
        file.write_all(&zstd::encode_all(&tar_header(&name(i), size)[..], 3).unwrap())
            .unwrap();
        zstd_zeros(&mut file, size);
    }
    let mut tail = Vec::new();
    for (name, data) in after {
        tail.extend(tar_entry(name, data));
    }
    tail.extend_from_slice(&TRAILER);
    file.write_all(&zstd::encode_all(&tail[..], 3).unwrap())
        .unwrap();
    file.flush().unwrap();
}

/// How long a bomb of entries of unknown need may take to be refused. Nothing tells what
/// they are as they go by, so they are decompressed (never written) until they come to more
/// than the free space of TMPDIR's disk plus the 1 GiB of unused entries: a few seconds, and
/// half a second more per GiB free (zeros decompress at several GiB/s; unbounded, 1 TiB of
/// them would take minutes).
fn within_free_space() -> Duration {
    let out = Command::new("df")
        .args(["-Pk"])
        .arg(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let free_kib: u64 = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("df -Pk: {text}"));
    Duration::from_millis(5_000 + (free_kib >> 20) * 500)
}

#[test]
fn a_zstd_docker_archive_of_many_entries_before_its_manifest_is_refused_before_it_is_read_whole() {
    // A docker archive tells its needs in manifest.json; this one puts it after 1000
    // entries of 1 GiB of zeros each (1 TiB in 32 MB), so none of them is known to be
    // needed or not as it goes by, and none is too big on its own.
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("many.tar.zst");
    let manifest = br#"[{"Config":"config.json","RepoTags":["quay.io/org/bomb:v1"],"Layers":["layer0000.tar"]}]"#;
    let after = [("manifest.json".to_string(), manifest.to_vec())];
    write_many_zeros(
        &path,
        &[],
        |i| format!("layer{i:04}.tar"),
        1000,
        1 << 30,
        &after,
    );
    let from = format!("docker-archive:{}", path.display());
    let stderr = assert_refused(&from, &path, "\"layer0", within_free_space());
    assert!(stderr.contains("decompression bomb"), "{stderr}");
}

#[test]
fn a_zstd_layout_without_index_json_is_refused_before_it_is_read_whole() {
    // Blobs and no index at all: nothing ever tells whether they are needed.
    let bundle = one_image();
    let files = parent_first(&bundle);
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("no-index.tar.zst");
    write_many_zeros(
        &path,
        &files[..1],
        |i| format!("blobs/sha256/{i:064x}"),
        1000,
        1 << 30,
        &[],
    );
    let stderr = assert_bomb_refused(&path, "\"blobs/sha256/0", within_free_space());
    assert!(stderr.contains("decompression bomb"), "{stderr}");
}

#[test]
fn a_truncated_plain_tar_is_named_truncated_and_tags_nothing() {
    let bundle = Bundle::new(&[
        ("quay.io/org/first:v1", &[(11, 20_000)]),
        ("quay.io/org/second:v1", &[(12, 300_000)]),
    ]);
    let files = parent_first(&bundle);
    let mut bytes = Vec::new();
    for (name, data) in &files {
        bytes.extend(tar_entry(name, data));
    }
    bytes.extend_from_slice(&TRAILER);
    // Cut in the middle of the last entry: the second image's 300 KB layer.
    let last = tar_entry(&files.last().unwrap().0, &files.last().unwrap().1);
    let cut = bytes.len() - TRAILER.len() - last.len() / 2;
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("cut.tar");
    std::fs::write(&path, &bytes[..cut]).unwrap();

    let mirror = TestRegistry::plain();
    let out = against("push", &mirror.host())
        .args(["--from", path.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("truncated at byte {cut}")) && stderr.contains("cut.tar"),
        "{stdout}{stderr}"
    );
    assert_eq!(catalog(&mirror.host()), Vec::<String>::new(), "{stdout}");

    // Cut between two entries, the end-of-archive marker gone with the rest.
    let whole_entries: usize = files[..files.len() - 1]
        .iter()
        .map(|(n, d)| tar_entry(n, d).len())
        .sum();
    std::fs::write(&path, &bytes[..whole_entries]).unwrap();
    let out = against("push", &mirror.host())
        .args(["--from", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("truncated at byte {whole_entries}")),
        "{stderr}"
    );
    assert_eq!(catalog(&mirror.host()), Vec::<String>::new());
}

/// A bundle slow enough to interrupt: one image with a 150 MB layer of random bytes.
fn big_bundle() -> Bundle {
    Bundle::new(&[("quay.io/org/big:v1", &[(300, 150 << 20), (301, 10_000)])])
}

/// Waits until `ready` holds (polling), failing if `child` ends first or it takes a minute.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {what}"
        );
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `signal` (`INT`, `TERM`, `KILL`) to `child` and waits for it to end.
fn signal(child: &mut Child, signal: &str) -> ExitStatus {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 20 s after SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Bytes of blob uploads in progress in a test registry.
fn uploading(registry: &TestRegistry) -> u64 {
    let repos = registry
        .dir
        .path()
        .join("storage/docker/registry/v2/repositories");
    fn uploads(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                if e.file_name() == "_uploads" {
                    dir_bytes(&e.path())
                } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                    uploads(&e.path())
                } else {
                    0
                }
            })
            .sum()
    }
    uploads(&repos)
}

#[test]
fn push_from_a_compressed_bundle_interrupted_leaves_nothing_in_tmpdir() {
    let bundle = big_bundle();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("big.tar.zst");
    {
        let file = std::fs::File::create(&archive).unwrap();
        let mut b = tar::Builder::new(zstd::Encoder::new(file, 1).unwrap().auto_finish());
        b.append_dir_all(".", bundle.dir.path()).unwrap();
        b.into_inner().unwrap();
    }
    // SIGINT while the bundle is being unpacked, SIGTERM while its layer is being uploaded.
    for (sig, code, phase) in [("INT", 130, "unpacking"), ("TERM", 143, "uploading")] {
        let mirror = TestRegistry::plain();
        let tmp = work.path().join(format!("tmp-{sig}"));
        std::fs::create_dir(&tmp).unwrap();
        let host = mirror.host();
        let mut child = airgap_child(
            &[
                "push",
                "--registry",
                &host,
                "--insecure-registry",
                &host,
                "--from",
                archive.to_str().unwrap(),
            ],
            &tmp,
            work.path(),
        );
        match phase {
            "unpacking" => wait_until(&mut child, "unpacking", || dir_bytes(&tmp) > 20 << 20),
            _ => wait_until(&mut child, "uploading", || uploading(&mirror) > 20 << 20),
        }
        let status = signal(&mut child, sig);
        let (stdout, stderr) = logs(work.path());
        assert_eq!(
            status.code(),
            Some(code),
            "SIG{sig} while {phase}: {status:?} {stdout}{stderr}"
        );
        assert_eq!(
            listing(&tmp),
            Vec::<PathBuf>::new(),
            "TMPDIR after SIG{sig} while {phase}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("interrupted (SIG{sig})")),
            "{stderr}"
        );
    }
}

/// A source registry holding `big_bundle`'s image, and manifests naming it.
fn save_scene(work: &Path) -> (TestRegistry, PathBuf) {
    save_scene_of(work, big_bundle())
}

fn save_scene_of(work: &Path, bundle: Bundle) -> (TestRegistry, PathBuf) {
    let source = TestRegistry::plain();
    let out = against("push", &source.host())
        .args(["--naming", "strip", "--from"])
        .arg(bundle.dir.path())
        .output()
        .unwrap();
    common::stdout_of_success(&out);
    let images: Vec<String> = bundle
        .images
        .iter()
        .map(|(name, _, _)| format!("{}/{}", source.host(), name.split_once('/').unwrap().1))
        .collect();
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    (source, pod_manifests(work, &images, None))
}

#[test]
fn save_writes_a_tar_parents_first_so_it_unpacks_in_one_pass() {
    let work = tempfile::tempdir().unwrap();
    let bundle = Bundle::new(&[
        ("quay.io/org/a:v1", &[(21, 30_000), (22, 5_000)]),
        ("quay.io/org/b:v1", &[(21, 30_000), (23, 6_000)]),
    ]);
    let (source, manifests) = save_scene_of(work.path(), bundle);
    let out = work.path().join("bundle.tar");
    let status = save_child(&source, &manifests, &out, work.path())
        .wait()
        .unwrap();
    let (stdout, stderr) = logs(work.path());
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[..2], ["oci-layout", "index.json"], "{names:?}");
    // Every blob comes after the manifest that names it.
    let dir = work.path().join("unpacked");
    std::fs::create_dir(&dir).unwrap();
    tar::Archive::new(std::fs::File::open(&out).unwrap())
        .unpack(&dir)
        .unwrap();
    let position = |digest: &str| {
        let name = format!("blobs/sha256/{}", &digest[7..]);
        names.iter().position(|n| *n == name).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for d in index["manifests"].as_array().unwrap() {
        let digest = d["digest"].as_str().unwrap();
        let path = dir.join("blobs/sha256").join(&digest[7..]);
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let children = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
        for child in children {
            let child = child["digest"].as_str().unwrap();
            assert!(position(digest) < position(child), "{names:?}");
        }
    }
}

fn save_child(source: &TestRegistry, manifests: &Path, output: &Path, work: &Path) -> Child {
    let host = source.host();
    airgap_child(
        &[
            "save",
            "--insecure-registry",
            &host,
            "-f",
            manifests.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ],
        work,
        work,
    )
}

/// Dates every path under `dir` (files and directories) `ago` back.
fn age(dir: &Path, ago: Duration) {
    let when = std::time::SystemTime::now() - ago;
    for path in listing(dir) {
        std::fs::File::open(dir.join(&path))
            .and_then(|f| f.set_modified(when))
            .unwrap();
    }
}

/// Paths under `dir` with `.partial` in their name.
fn partials(dir: &Path) -> Vec<PathBuf> {
    listing(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect()
}

/// Whether a blob of over 5 MB is being written under `dir`.
fn writing_blob(dir: &Path) -> bool {
    listing(dir).iter().any(|p| {
        p.to_string_lossy().contains(".partial-")
            && std::fs::metadata(dir.join(p)).is_ok_and(|m| m.len() > 5 << 20)
    })
}

#[test]
fn save_interrupted_leaves_no_partial_files_nor_staging_directory() {
    let work = tempfile::tempdir().unwrap();
    let (source, manifests) = save_scene(work.path());
    for (sig, code, output) in [("INT", 130, "bundle"), ("TERM", 143, "bundle.tar")] {
        let parent = work.path().join(format!("out-{sig}"));
        std::fs::create_dir(&parent).unwrap();
        let out = parent.join(output);
        let mut child = save_child(&source, &manifests, &out, work.path());
        wait_until(&mut child, "a blob being written", || writing_blob(&parent));
        let status = signal(&mut child, sig);
        let (stdout, stderr) = logs(work.path());
        assert_eq!(status.code(), Some(code), "{output}: {stdout}{stderr}");
        assert_eq!(partials(&parent), Vec::<PathBuf>::new(), "{output}");
        assert!(
            stderr.contains(&format!("interrupted (SIG{sig})")),
            "{stderr}"
        );
        if output.ends_with(".tar") {
            assert_eq!(
                listing(&parent),
                Vec::<PathBuf>::new(),
                "no tar, no hidden staging directory"
            );
        }
    }
}

#[test]
fn a_save_rerun_after_kill_9_leaves_no_partial_files() {
    let work = tempfile::tempdir().unwrap();
    let (source, manifests) = save_scene(work.path());
    for output in ["bundle", "bundle.tar"] {
        let parent = work.path().join(format!("out-{output}"));
        std::fs::create_dir(&parent).unwrap();
        let out = parent.join(output);
        let mut child = save_child(&source, &manifests, &out, work.path());
        wait_until(&mut child, "a blob being written", || writing_blob(&parent));
        signal(&mut child, "KILL");
        assert_ne!(
            partials(&parent),
            Vec::<PathBuf>::new(),
            "kill -9 leaves them"
        );
        // A dead run's files are swept once an hour old (a PID gone here may be alive in
        // another container sharing the directory).
        age(&parent, Duration::from_secs(2 * 60 * 60));

        let status = save_child(&source, &manifests, &out, work.path())
            .wait()
            .unwrap();
        let (stdout, stderr) = logs(work.path());
        assert_eq!(status.code(), Some(0), "{output}: {stdout}{stderr}");
        assert_eq!(
            partials(&parent),
            Vec::<PathBuf>::new(),
            "{output}: the rerun swept them"
        );
        if output.ends_with(".tar") {
            assert_eq!(listing(&parent), [PathBuf::from("bundle.tar")]);
        }
    }
}
