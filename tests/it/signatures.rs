//! Signatures, attestations and referrers travel with their images (issue 19): `save`,
//! `push --from BUNDLE`, `push` from the registry, `--no-signatures`, `check --signatures`.
//!
//! The test signs as cosign does (a simple-signing payload naming the image's manifest digest,
//! ECDSA P-256 over SHA-256, DER, base64 in the layer's `dev.cosignproject.cosign/signature`
//! annotation, tagged `sha256-<hex>.sig`) with a key it generates, and writes an in-toto
//! attestation as a referrer with the `sha256-<hex>` fallback tag, as oras does on a registry
//! without the referrers API. Debian's docker-registry 2.8 has no referrers API, so both ends
//! take the fallback. Python's `cryptography` verifies in the mirror, reading it over HTTP
//! itself; skopeo reads digests and tag lists: nothing of ours checks our work.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::registry::{Layout, TestRegistry, against, pod_manifests, push_from};

/// Key generation, cosign-style signing and verifying, and the attestation referrer, over
/// plain HTTP to a docker-registry (urllib), with `cryptography`.
const HELPER: &str = r#"
import base64, hashlib, json, sys, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

def req(method, url, data=None, headers=None):
    r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(r)

def put_blob(host, repo, data, media_type, annotations=None):
    digest = 'sha256:' + hashlib.sha256(data).hexdigest()
    loc = req('POST', f'http://{host}/v2/{repo}/blobs/uploads/', b'').headers['Location']
    if loc.startswith('/'):
        loc = f'http://{host}{loc}'
    sep = '&' if '?' in loc else '?'
    req('PUT', f'{loc}{sep}digest={digest}', data, {'Content-Type': 'application/octet-stream'})
    d = {'mediaType': media_type, 'digest': digest, 'size': len(data)}
    if annotations:
        d['annotations'] = annotations
    return d

def put_manifest(host, repo, ref, manifest):
    data = json.dumps(manifest, separators=(',', ':')).encode()
    req('PUT', f'http://{host}/v2/{repo}/manifests/{ref}', data, {'Content-Type': manifest['mediaType']})
    return 'sha256:' + hashlib.sha256(data).hexdigest(), len(data)

def get(host, repo, kind, ref, accept=None):
    return req('GET', f'http://{host}/v2/{repo}/{kind}/{ref}', None, {'Accept': accept} if accept else {}).read()

def tag_of(digest):
    return 'sha256-' + digest.split(':', 1)[1]

cmd, keys = sys.argv[1], sys.argv[2]
if cmd == 'keygen':
    key = ec.generate_private_key(ec.SECP256R1())
    open(f'{keys}/key.pem', 'wb').write(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    open(f'{keys}/pub.pem', 'wb').write(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
elif cmd == 'sign':
    host, repo, digest, identity = sys.argv[3:7]
    key = serialization.load_pem_private_key(open(f'{keys}/key.pem', 'rb').read(), None)
    payload = json.dumps({'critical': {'identity': {'docker-reference': identity},
        'image': {'docker-manifest-digest': digest}, 'type': 'cosign container image signature'},
        'optional': None}, separators=(',', ':')).encode()
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer = put_blob(host, repo, payload, 'application/vnd.dev.cosign.simplesigning.v1+json',
                     {'dev.cosignproject.cosign/signature': signature})
    config = json.dumps({'architecture': '', 'os': '', 'config': {},
        'rootfs': {'type': 'layers', 'diff_ids': [layer['digest']]}}).encode()
    config = put_blob(host, repo, config, 'application/vnd.oci.image.config.v1+json')
    print(put_manifest(host, repo, tag_of(digest) + '.sig', {'schemaVersion': 2,
        'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'config': config, 'layers': [layer]})[0])
elif cmd == 'attest':
    host, repo, digest, size, media_type = sys.argv[3:8]
    statement = json.dumps({'_type': 'https://in-toto.io/Statement/v1',
        'subject': [{'name': repo, 'digest': {'sha256': digest.split(':', 1)[1]}}],
        'predicateType': 'https://slsa.dev/provenance/v1', 'predicate': {}}).encode()
    layer = put_blob(host, repo, statement, 'application/vnd.in-toto+json')
    empty = put_blob(host, repo, b'{}', 'application/vnd.oci.empty.v1+json')
    manifest = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'artifactType': 'application/vnd.in-toto+json', 'config': empty, 'layers': [layer],
        'subject': {'mediaType': media_type, 'digest': digest, 'size': int(size)},
        'annotations': {'org.opencontainers.image.created': '2025-01-01T00:00:00Z'}}
    by_digest = 'sha256:' + hashlib.sha256(json.dumps(manifest, separators=(',', ':')).encode()).hexdigest()
    referrer, length = put_manifest(host, repo, by_digest, manifest)
    put_manifest(host, repo, tag_of(digest), {'schemaVersion': 2,
        'mediaType': 'application/vnd.oci.image.index.v1+json',
        'manifests': [{'mediaType': manifest['mediaType'], 'digest': referrer, 'size': length,
                       'artifactType': manifest['artifactType']}]})
    print(referrer)
elif cmd == 'verify':
    host, repo, digest = sys.argv[3:6]
    sig = json.loads(get(host, repo, 'manifests', tag_of(digest) + '.sig',
                         'application/vnd.oci.image.manifest.v1+json'))
    public = serialization.load_pem_public_key(open(f'{keys}/pub.pem', 'rb').read())
    verified = []
    for layer in sig['layers']:
        if layer['mediaType'] != 'application/vnd.dev.cosign.simplesigning.v1+json':
            continue
        payload = get(host, repo, 'blobs', layer['digest'])
        assert 'sha256:' + hashlib.sha256(payload).hexdigest() == layer['digest'], 'payload digest'
        signature = base64.b64decode(layer['annotations']['dev.cosignproject.cosign/signature'])
        public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        verified.append(json.loads(payload)['critical'])
    assert verified, 'no simple-signing layer in the .sig manifest'
    print(json.dumps(verified))
"#;

/// The python helper and a key pair in a temporary directory.
struct Signer {
    dir: tempfile::TempDir,
}

impl Signer {
    fn new() -> Signer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("helper.py"), HELPER).unwrap();
        let signer = Signer { dir };
        signer.run(&["keygen"]);
        assert!(signer.dir.path().join("pub.pem").exists());
        signer
    }

    /// Runs the helper; its stdout, trimmed. Panics with its stderr when it fails.
    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "helper {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn try_run(&self, args: &[&str]) -> std::process::Output {
        Command::new("python3")
            .arg(self.dir.path().join("helper.py"))
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .output()
            .unwrap()
    }

    /// Signs `digest` in `host/repo`, naming `identity`: the `.sig` manifest's digest.
    fn sign(&self, host: &str, repo: &str, digest: &str, identity: &str) -> String {
        self.run(&["sign", host, repo, digest, identity])
    }

    /// Verifies the `.sig` of `digest` in `host/repo` with the public key: the `critical`
    /// parts of the payloads that verified.
    fn verify(&self, host: &str, repo: &str, digest: &str) -> serde_json::Value {
        serde_json::from_str(&self.run(&["verify", host, repo, digest])).unwrap()
    }
}

/// The bytes of the manifest skopeo reads at `reference`, `None` when it cannot.
fn raw(registry: &TestRegistry, reference: &str) -> Option<Vec<u8>> {
    let out = registry.skopeo(&["inspect", "--raw"], reference);
    out.status.success().then_some(out.stdout)
}

fn tags(registry: &TestRegistry, repo: &str) -> Vec<String> {
    let out = registry.skopeo(&["list-tags"], &format!("{}/{repo}", registry.host()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// A source registry holding `quay.io/org/app:v1` (as `org/app:v1`), signed, with an
/// attestation referrer: (registry, image, signer, referrer digest).
fn signed_source(seed: u64) -> (TestRegistry, Layout, Signer, String) {
    let source = TestRegistry::plain();
    let image = Layout::single(seed);
    source.push(image.dir.path(), "org/app", "v1");
    let signer = Signer::new();
    signer.sign(&source.host(), "org/app", &image.digest, "quay.io/org/app");
    let manifest = raw(&source, &format!("{}/org/app:v1", source.host())).unwrap();
    assert_eq!(common::registry::digest_of(&manifest), image.digest);
    let referrer = signer.run(&[
        "attest",
        &source.host(),
        "org/app",
        &image.digest,
        &manifest.len().to_string(),
        "application/vnd.oci.image.manifest.v1+json",
    ]);
    (source, image, signer, referrer)
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn save(source: &TestRegistry, manifests: &Path, out: &Path, extra: &[&str]) -> String {
    let (code, stdout, stderr) = common::outcome(
        common::airgap()
            .args(["save", "--source-mirror"])
            .arg(format!("quay.io=http://{}", source.host()))
            .arg("-f")
            .arg(manifests)
            .arg("-o")
            .arg(out)
            .args(extra)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "save: {stdout}{stderr}");
    stdout
}

fn check_signatures(mirror: &TestRegistry, extra: &[&str]) -> (i32, String, String) {
    common::outcome(
        against("check", &mirror.host())
            .arg("--signatures")
            .args(extra)
            .output()
            .unwrap(),
    )
}

#[test]
fn save_and_push_from_a_bundle_carry_a_verifiable_signature_and_a_referrer() {
    let (source, image, signer, referrer) = signed_source(1901);
    let dir = tempfile::tempdir().unwrap();
    let m = pod_manifests(dir.path(), &["quay.io/org/app:v1"], None);
    let bundle = dir.path().join("bundle");
    let stdout = save(&source, &m, &bundle, &[]);
    assert!(
        stdout.contains("signatures: 2 artifacts carried for 1 of 1 images (1 .sig, 1 referrers)"),
        "{stdout}"
    );
    // The lock lists one image, and the artifacts apart, each naming its image.
    let lock: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(bundle.join("images.lock.yaml")).unwrap())
            .unwrap();
    assert_eq!(lock["images"].as_array().unwrap().len(), 1, "{lock:#}");
    let artifacts = lock["artifacts"].as_array().unwrap();
    let kinds: Vec<&str> = artifacts
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["signature", "referrer"], "{lock:#}");
    assert!(
        artifacts.iter().all(|a| a["image"] == "quay.io/org/app:v1"),
        "{lock:#}"
    );
    assert_eq!(
        artifacts[0]["source"],
        format!("quay.io/org/app:sha256-{}.sig", hex(&image.digest))
    );
    assert_eq!(artifacts[1]["digest"], referrer.as_str());

    // Into a fresh mirror from the bundle: the signature verifies there, naming the image's
    // digest, which is the upstream one.
    let mirror = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&mirror, &bundle, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 images: 1 copied") && stdout.contains("signatures: 2 artifacts carried"),
        "{stdout}"
    );
    let host = mirror.host();
    let repo = "quay.io/org/app";
    let pushed = raw(&mirror, &format!("{host}/{repo}:v1")).unwrap();
    assert_eq!(common::registry::digest_of(&pushed), image.digest);
    let verified = signer.verify(&host, repo, &image.digest);
    assert_eq!(
        verified[0]["image"]["docker-manifest-digest"],
        image.digest.as_str()
    );
    assert_eq!(
        verified[0]["identity"]["docker-reference"],
        "quay.io/org/app"
    );

    // The referrer is listed by the mirror's fallback tag (docker-registry 2.8 answers no
    // OCI-Subject), fetchable by digest, its subject intact.
    let fallback = raw(
        &mirror,
        &format!("{host}/{repo}:sha256-{}", hex(&image.digest)),
    )
    .expect("the mirror has the referrers fallback tag");
    let index: serde_json::Value = serde_json::from_slice(&fallback).unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [referrer.as_str()], "{index:#}");
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.in-toto+json"
    );
    let attestation = raw(&mirror, &format!("{host}/{repo}@{referrer}")).unwrap();
    assert_eq!(common::registry::digest_of(&attestation), referrer);
    let attestation: serde_json::Value = serde_json::from_slice(&attestation).unwrap();
    assert_eq!(attestation["subject"]["digest"], image.digest.as_str());

    // check --signatures: the mirror holds them, by the bundle's word and by any signature.
    let bundle_arg = bundle.to_str().unwrap();
    let (code, stdout, stderr) = check_signatures(&mirror, &["--bundle", bundle_arg]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 images: 1 with their signatures"),
        "{stdout}"
    );
    let (code, stdout, stderr) = check_signatures(&mirror, &["-f", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The same bundle as a compressed tar: its lock is read from the stream.
    let tar = dir.path().join("bundle.tar.zst");
    save(&source, &m, &tar, &[]);
    let (code, stdout, stderr) = check_signatures(&mirror, &["--bundle", tar.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 images: 1 with their signatures"),
        "{stdout}"
    );

    // --no-signatures: the image arrives, its signature does not, and check says so.
    let bare = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&bare, &bundle, &["--no-signatures"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("signatures:"), "{stdout}");
    assert_eq!(tags(&bare, repo), ["v1"]);
    let (code, stdout, _) = check_signatures(&bare, &["-f", m.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("LACKS"), "{stdout}");
    assert!(
        stdout.contains(&format!("quay.io/org/app:v1 -> {}/{repo}:v1", bare.host())),
        "{stdout}"
    );
    let (code, stdout, _) = check_signatures(&bare, &["--bundle", bundle_arg]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("2 of 2 carried artifacts") && stdout.contains("quay.io/org/app:v1"),
        "{stdout}"
    );
}

#[test]
fn push_from_the_registry_carries_the_signature_unless_told_not_to() {
    let (source, image, signer, referrer) = signed_source(1902);
    let dir = tempfile::tempdir().unwrap();
    let m = pod_manifests(dir.path(), &["quay.io/org/app:v1"], None);
    let push = |mirror: &TestRegistry, extra: &[&str]| {
        common::outcome(
            against("push", &mirror.host())
                .arg("--source-mirror")
                .arg(format!("quay.io=http://{}", source.host()))
                .arg("-f")
                .arg(&m)
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    let repo = "quay.io/org/app";
    let mirror = TestRegistry::plain();
    let (code, stdout, stderr) = push(&mirror, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("signatures: 2 artifacts carried for 1 of 1 images"),
        "{stdout}"
    );
    let verified = signer.verify(&mirror.host(), repo, &image.digest);
    assert_eq!(
        verified[0]["image"]["docker-manifest-digest"],
        image.digest.as_str()
    );
    let mut found = tags(&mirror, repo);
    found.sort();
    let hex = hex(&image.digest);
    assert_eq!(
        found,
        [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            "v1".to_string()
        ]
    );
    assert!(raw(&mirror, &format!("{}/{repo}@{referrer}", mirror.host())).is_some());
    // Pushed again: the fallback tag lists the referrer once.
    let (code, stdout, stderr) = push(&mirror, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let index: serde_json::Value = serde_json::from_slice(
        &raw(&mirror, &format!("{}/{repo}:sha256-{hex}", mirror.host())).unwrap(),
    )
    .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index:#}");

    let bare = TestRegistry::plain();
    let (code, stdout, stderr) = push(&bare, &["--no-signatures"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(tags(&bare, repo), ["v1"]);
    // The independent verifier finds nothing to verify there.
    assert!(
        !signer
            .try_run(&["verify", &bare.host(), repo, &image.digest])
            .status
            .success()
    );
    // A lock that carried no signatures (what `check -o lock` writes) still asks for one.
    let held = dir.path().join("held.yaml");
    let out = against("check", &bare.host())
        .arg("-f")
        .arg(&m)
        .args(["-o", "lock"])
        .output()
        .unwrap();
    std::fs::write(&held, common::stdout_of_success(&out)).unwrap();
    let (code, stdout, stderr) = check_signatures(&bare, &["--lock", held.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");

    // The mirror signs the image itself; a later push keeps that signature, not the source's.
    let own = signer.sign(&bare.host(), repo, &image.digest, "mirror.corp/app");
    let (code, stdout, stderr) = push(&bare, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("already holds"), "{stderr}");
    let sig = raw(&bare, &format!("{}/{repo}:sha256-{hex}.sig", bare.host())).unwrap();
    assert_eq!(common::registry::digest_of(&sig), own);
    let (code, stdout, stderr) = check_signatures(&bare, &["--lock", held.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_platform_filtered_index_travels_without_the_signatures_of_the_old_digest() {
    let source = TestRegistry::plain();
    let image = Layout::multi_arch(1903);
    source.push(image.dir.path(), "org/multi", "v1");
    let signer = Signer::new();
    signer.sign(
        &source.host(),
        "org/multi",
        &image.digest,
        "quay.io/org/multi",
    );
    let dir = tempfile::tempdir().unwrap();
    let m = pod_manifests(dir.path(), &["quay.io/org/multi:v1"], None);

    // Whole, the index keeps its digest and its signature travels.
    let whole = dir.path().join("whole");
    let stdout = save(&source, &m, &whole, &[]);
    assert!(
        stdout.contains("signatures: 1 artifacts carried for 1 of 1 images (1 .sig)"),
        "{stdout}"
    );

    // Filtered, the index is new: the signature names the old digest, so it is left, and
    // the note says why.
    let filtered = dir.path().join("filtered");
    let (code, stdout, stderr) = common::outcome(
        common::airgap()
            .args(["save", "--platform", "linux/amd64", "--source-mirror"])
            .arg(format!("quay.io=http://{}", source.host()))
            .arg("-f")
            .arg(&m)
            .arg("-o")
            .arg(&filtered)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("--platform gave 1 images a new index digest")
            && stderr.contains("quay.io/org/multi:v1"),
        "{stderr}"
    );
    assert!(
        stdout.contains("signatures: 0 artifacts carried"),
        "{stdout}"
    );
    let index = std::fs::read_to_string(filtered.join("index.json")).unwrap();
    assert!(!index.contains(".sig"), "{index}");
    let lock = std::fs::read_to_string(filtered.join("images.lock.yaml")).unwrap();
    assert!(!lock.contains("artifacts:"), "{lock}");
}

#[test]
fn a_source_with_the_referrers_api_is_asked_through_it() {
    // `serve` answers the OCI 1.1 referrers API over a bundle: a source that has it.
    let (source, image, signer, referrer) = signed_source(1904);
    let dir = tempfile::tempdir().unwrap();
    let m = pod_manifests(dir.path(), &["quay.io/org/app:v1"], None);
    let bundle = dir.path().join("bundle");
    save(&source, &m, &bundle, &[]);
    drop(source);
    let served = crate::serve::Served::start(&[bundle.to_str().unwrap(), "--naming", "strip"]);

    let mirror = TestRegistry::plain();
    let (code, stdout, stderr) = common::outcome(
        against("push", &mirror.host())
            .arg("--source-mirror")
            .arg(format!("quay.io=http://{}", served.host()))
            .arg("-f")
            .arg(&m)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("signatures: 2 artifacts carried for 1 of 1 images (1 .sig, 1 referrers)"),
        "{stdout}"
    );
    let log = served.log();
    let hex = hex(&image.digest);
    assert!(
        log.contains(&format!("/v2/org/app/referrers/{}", image.digest)),
        "{log}"
    );
    // The fallback tag is read as well (referrers pushed before a registry had the API are
    // listed only there); the referrer both list is carried once (`1 referrers` above).
    assert!(
        log.contains(&format!("/v2/org/app/manifests/sha256-{hex} ")),
        "{log}"
    );
    // The mirror, without the API, has the referrer under its fallback tag.
    let repo = "quay.io/org/app";
    let index: serde_json::Value = serde_json::from_slice(
        &raw(&mirror, &format!("{}/{repo}:sha256-{hex}", mirror.host())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        referrer.as_str(),
        "{index:#}"
    );
    signer.verify(&mirror.host(), repo, &image.digest);
}

/// An image a CI tagged `sha256-<hex>` by its source's digest is an image, not an artifact:
/// `push --from` pushes it, since no image of its repository has the digest its tag spells.
#[test]
fn an_image_tagged_like_a_fallback_tag_is_still_pushed() {
    let tag = format!("sha256-{}", "ab".repeat(32));
    let name = format!("quay.io/ci/app:{tag}");
    let bundle = common::registry::Bundle::new(&[(name.as_str(), &[(1905, 10_000)])]);
    let mirror = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&mirror, bundle.dir.path(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 images: 1 copied"), "{stdout}");
    assert_eq!(tags(&mirror, "quay.io/ci/app"), [tag]);
}
