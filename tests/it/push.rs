//! `push --from registry` between two real docker-registry instances on loopback, read back with
//! skopeo.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::airgap;
use common::registry::{Layout, TestRegistry, against};
use sha2::{Digest as _, Sha256};

fn manifests(dir: &Path, images: &[&str]) -> std::path::PathBuf {
    common::registry::pod_manifests(dir, images, None)
}

/// The digest of what skopeo reads at `reference`, or None when it cannot read it.
fn skopeo_digest(reference: &str) -> Option<String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout))))
}

fn push(source: &TestRegistry, mirror: &TestRegistry, m: &Path) -> std::process::Output {
    against("push", &mirror.host())
        .arg("--source-mirror")
        .arg(format!("quay.io=http://{}", source.host()))
        .arg("-f")
        .arg(m)
        .output()
        .unwrap()
}

#[test]
fn push_from_registry_copies_once_with_digests_intact() {
    let source = TestRegistry::plain();
    let mirror = TestRegistry::plain();
    let multi = Layout::multi_arch(21);
    let single = Layout::single(22);
    source.push(multi.dir.path(), "org/multi", "v1");
    source.push(single.dir.path(), "org/single", "v1");
    source.push(single.dir.path(), "org/again", "v1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(
        dir.path(),
        &[
            "quay.io/org/multi:v1",
            "quay.io/org/single:v1",
            "quay.io/org/again:v1",
        ],
    );

    let out = push(&source, &mirror, &m);
    let stdout = common::stdout_of_success(&out);
    assert!(
        stdout.contains("3 images: 3 copied, 0 already present, 0 failed"),
        "{stdout}"
    );
    // 2 platforms x (config + layer) + single's config and layer, once each; `again` shares
    // them (uploaded again, mounted, or found, depending on which copy ran first).
    let count = |label: &str| -> u64 {
        let before = stdout.split(label).next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (uploaded, mounted, there) = (
        count(" uploaded,"),
        count(" mounted,"),
        count(" already there;"),
    );
    assert_eq!(uploaded + mounted + there, 8, "{stdout}");
    assert!(uploaded >= 6, "{stdout}");

    let host = mirror.host();
    assert_eq!(
        skopeo_digest(&format!("{host}/quay.io/org/multi:v1")),
        Some(multi.digest.clone())
    );
    assert_eq!(
        skopeo_digest(&format!("{host}/quay.io/org/single:v1")),
        Some(single.digest.clone())
    );
    assert_eq!(
        skopeo_digest(&format!("{host}/quay.io/org/again:v1")),
        Some(single.digest.clone())
    );

    // A second push moves nothing.
    let out = push(&source, &mirror, &m);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains("3 images: 0 copied, 3 already present, 0 failed; blobs: 0 uploaded, 0 mounted, 0 already there; 0 bytes"),
        "{stdout}"
    );

    // The mirror answers check with every image present.
    let out = against("check", &host).arg("-f").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_corrupt_source_blob_is_refused_and_nothing_is_tagged() {
    let source = TestRegistry::plain();
    let mirror = TestRegistry::plain();
    let layout = Layout::single(23);
    source.push(layout.dir.path(), "org/bad", "v1");
    // Flip bytes of every layer-sized blob in the source registry's storage.
    let blobs = source
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256");
    let mut corrupted = 0;
    for prefix in std::fs::read_dir(&blobs).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let data = blob.unwrap().path().join("data");
            let mut bytes = std::fs::read(&data).unwrap();
            if bytes.len() > 4096 {
                let n = bytes.len();
                bytes[n / 2] ^= 0xff;
                std::fs::write(&data, bytes).unwrap();
                corrupted += 1;
            }
        }
    }
    assert_eq!(corrupted, 1);
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(dir.path(), &["quay.io/org/bad:v1"]);
    let out = push(&source, &mirror, &m);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        // Refused by our own check of the stream or by the registry's, whichever speaks first.
        stdout.contains("failed   quay.io/org/bad:v1: copying blob sha256:")
            && (stdout.contains("hashes to") || stdout.contains("DIGEST_INVALID")),
        "{stdout}"
    );
    assert_eq!(
        skopeo_digest(&format!("{}/quay.io/org/bad:v1", mirror.host())),
        None
    );
}

#[test]
fn push_usage_errors() {
    let out = airgap()
        .args([
            "push",
            "--registry",
            "r.local:5000",
            "--from",
            "bundle.tar",
            "-f",
            "x.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or directory"));
    let out = airgap()
        .args([
            "push",
            "--registry",
            "r.local:5000",
            "--source-mirror",
            "docker.io",
            "-f",
            "x.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST=URL"));
}

#[test]
fn save_a_bundle_then_push_it() {
    let source = TestRegistry::plain();
    let mirror = TestRegistry::plain();
    let multi = Layout::multi_arch(31);
    let single = Layout::single(32);
    source.push(multi.dir.path(), "org/multi", "v1");
    source.push(single.dir.path(), "org/single", "v1");
    let dir = tempfile::tempdir().unwrap();
    let m = manifests(
        dir.path(),
        &["quay.io/org/multi:v1", "quay.io/org/single:v1"],
    );
    let bundle = dir.path().join("bundle");

    let out = airgap()
        .args(["save", "--registry", "reg.local:5000", "-o"])
        .arg(&bundle)
        .arg("--source-mirror")
        .arg(format!("quay.io=http://{}", source.host()))
        .arg("-f")
        .arg(&m)
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(stdout.contains("2 images: 2 copied"), "{stdout}");

    // The bundle names each image by its full source reference, digests unchanged.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"quay.io/org/multi:v1"), "{names:?}");
    let lock = std::fs::read_to_string(bundle.join("images.lock.yaml")).unwrap();
    assert!(
        lock.contains(&multi.digest) && lock.contains(&single.digest),
        "{lock}"
    );
    assert!(
        lock.contains("mirror: reg.local:5000/quay.io/org/multi:v1"),
        "{lock}"
    );

    // No -f: everything in the bundle goes to the mirror, digests intact.
    let host = mirror.host();
    let push = || {
        against("push", &host)
            .arg("--from")
            .arg(&bundle)
            .output()
            .unwrap()
    };
    let out = push();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("2 images: 2 copied"), "{stdout}");
    assert_eq!(
        skopeo_digest(&format!("{host}/quay.io/org/multi:v1")),
        Some(multi.digest.clone())
    );
    assert_eq!(
        skopeo_digest(&format!("{host}/quay.io/org/single:v1")),
        Some(single.digest.clone())
    );
    let out = push();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 copied, 2 already present"));

    // check against the bundle's own lock file.
    let out = against("check", &host)
        .arg("--lock")
        .arg(bundle.join("images.lock.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A tampered blob in the bundle is refused; the image never reaches the mirror.
    let mirror2 = TestRegistry::plain();
    let blobs = bundle.join("blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.len() > 4096 {
            bytes[100] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let host2 = mirror2.host();
    let out = against("push", &host2)
        .arg("--from")
        .arg(&bundle)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("hashes to") || stdout.contains("DIGEST_INVALID"),
        "{stdout}"
    );
    assert_eq!(
        skopeo_digest(&format!("{host2}/quay.io/org/single:v1")),
        None
    );
    assert_eq!(
        skopeo_digest(&format!("{host2}/quay.io/org/multi:v1")),
        None
    );

    // A bundle whose index names a digest that is not a digest is refused before any read.
    let evil = dir.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(
        evil.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../etc/passwd","size":1}]}"#,
    )
    .unwrap();
    let out = against("push", &host2)
        .arg("--from")
        .arg(&evil)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The digest is refused where it is read, naming the file and the digest.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("index.json is not a valid OCI index")
            && stderr.contains("sha256:../../../etc/passwd"),
        "{stderr}"
    );
}
