//! Delta bundles (issue 19): `save --have LOCK` leaves out what the mirror already holds, and
//! `push --from` of the delta puts the next release in the mirror that holds the first one, or
//! refuses, with nothing tagged, a mirror that does not.
//!
//! The upstream registry is filled by skopeo from layouts the tests write; the mirror is read
//! back by skopeo. Only the tool under test goes between them.

use std::path::Path;
use std::process::Command;

use crate::common::registry::{
    Bundle, FaultProxy, TestRegistry, against, catalog, digest_of, push_from,
};
use crate::common::{self, airgap};

/// The base layer every image is built on: what a delta must not carry again.
const BASE: (u64, usize) = (1, 2 << 20);

/// Fills `upstream` with a bundle's images as skopeo copies them (`quay.io/` dropped).
fn publish(upstream: &TestRegistry, bundle: &Bundle) {
    for (i, (name, _, _)) in bundle.images.iter().enumerate() {
        let (repo, tag) = name
            .strip_prefix("quay.io/")
            .and_then(|n| n.rsplit_once(':'))
            .unwrap();
        upstream.push_named(bundle.dir.path(), &format!("img{i}"), repo, tag);
    }
}

/// The manifest digest a registry gives `reference`, read by skopeo.
fn skopeo_digest(registry: &TestRegistry, reference: &str) -> Option<String> {
    let out = registry.skopeo(&["inspect", "--raw"], reference);
    out.status.success().then(|| digest_of(&out.stdout))
}

/// The bytes of every blob a layout directory holds.
fn blob_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The bytes of the layer blobs `bundle` holds that `base` does not.
fn new_layer_bytes(bundle: &Bundle, base: &Bundle) -> u64 {
    let configs: Vec<&String> = bundle.images.iter().map(|(_, _, c)| c).collect();
    bundle
        .blob_digests
        .iter()
        .filter(|d| !base.blob_digests.contains(*d) && !configs.contains(d))
        .map(|d| {
            let path = bundle.dir.path().join("blobs/sha256").join(&d[7..]);
            std::fs::metadata(path).unwrap().len()
        })
        .sum()
}

/// skopeo copies `reference` (plain HTTP) whole into a layout at `dir`: every blob is there.
fn reads_whole(reference: &str, dir: &Path) {
    let copy = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:x", dir.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&copy.stderr);
    assert!(copy.status.success(), "skopeo copy {reference}: {stderr}");
}

fn save(upstream: &TestRegistry, images: &[&str], out: &Path, extra: &[&str]) -> String {
    let result = airgap()
        .arg("save")
        .arg("--source-mirror")
        .arg(format!("quay.io=http://{}", upstream.host()))
        .args(images)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    common::stdout_of_success(&result)
}

#[test]
fn a_delta_carries_only_the_new_layers_and_needs_its_base_in_the_mirror() {
    let v1_names: Vec<String> = (0..10)
        .map(|i| format!("quay.io/team/app{i}:1.0"))
        .collect();
    let own: Vec<[(u64, usize); 2]> = (0..10).map(|i| [BASE, (100 + i, 300_000)]).collect();
    let v1 = Bundle::new(
        &v1_names
            .iter()
            .zip(&own)
            .map(|(n, l)| (n.as_str(), &l[..]))
            .collect::<Vec<_>>(),
    );
    // Two images change: new tags, a new layer each over the same base.
    let v2_names = ["quay.io/team/app0:2.0", "quay.io/team/app1:2.0"];
    let v2 = Bundle::new(&[
        (v2_names[0], &[BASE, (200, 1 << 20)]),
        (v2_names[1], &[BASE, (201, 1 << 20)]),
    ]);
    let upstream = TestRegistry::plain();
    publish(&upstream, &v1);
    publish(&upstream, &v2);
    let work = tempfile::tempdir().unwrap();

    // Release 1, whole, saved and pushed.
    let b1 = work.path().join("bundle1");
    let v1_refs: Vec<&str> = v1_names.iter().map(String::as_str).collect();
    save(&upstream, &v1_refs, &b1, &[]);
    let mirror = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&mirror, &b1, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Release 2: all twelve images named, against release 1's lock.
    let all: Vec<&str> = v1_refs.iter().copied().chain(v2_names).collect();
    let delta = work.path().join("delta");
    let have = b1.join("images.lock.yaml");
    let saved = save(&upstream, &all, &delta, &["--have", have.to_str().unwrap()]);
    assert!(saved.contains("delta: "), "{saved}");
    let new = new_layer_bytes(&v2, &v1);
    let carried = blob_bytes(&delta);
    assert!(
        carried >= new && carried - new <= new / 100,
        "the delta holds {carried} bytes of blobs; the new layers are {new}"
    );
    // Not one of release 1's configs or layers, the shared base among them.
    for digest in &v1.blob_digests {
        assert!(
            !delta.join("blobs/sha256").join(&digest[7..]).exists(),
            "the delta carries {digest}, which bundle 1 holds"
        );
    }
    let index = std::fs::read_to_string(delta.join("index.json")).unwrap();
    assert!(index.contains("dev.kubectl-airgap.delta.base"), "{index}");
    let lock = std::fs::read_to_string(delta.join("images.lock.yaml")).unwrap();
    assert!(lock.contains("base:"), "{lock}");

    // A whole bundle is not made a delta by adding to it.
    let out = airgap()
        .arg("save")
        .arg("--source-mirror")
        .arg(format!("quay.io=http://{}", upstream.host()))
        .args(v2_names)
        .arg("-o")
        .arg(&b1)
        .arg("--have")
        .arg(&have)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds a whole bundle"), "{stderr}");

    // `check --bundle` of the delta says what it needs.
    let out = airgap()
        .args(["check", "--bundle"])
        .arg(&delta)
        .arg("--lock")
        .arg(delta.join("images.lock.yaml"))
        .args(["--platform", "linux/amd64"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("delta bundle")
            && stderr.contains("its base: 10 images (quay.io/team/app0:1.0")
            && stderr.contains(", ...)"),
        "{stderr}"
    );

    // Into an empty mirror: refused, naming the base, nothing tagged.
    let empty = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&empty, &delta, &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("lacks 10 of its 10 base images")
            && stderr.contains("quay.io/team/app0")
            && stderr.contains("Nothing was pushed"),
        "{stderr}"
    );
    assert_eq!(catalog(&empty.host()), Vec::<String>::new());

    // Into the mirror that holds release 1: every tag, at its upstream digest.
    let (code, stdout, stderr) = push_from(&mirror, &delta, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("12 images: 2 copied, 10 already present"),
        "{stdout}"
    );
    for name in &all {
        let path = name.strip_prefix("quay.io/").unwrap();
        let want = skopeo_digest(&upstream, &format!("{}/{path}", upstream.host()));
        let got = skopeo_digest(&mirror, &format!("{}/{name}", mirror.host()));
        assert!(want.is_some(), "{name} upstream");
        assert_eq!(got, want, "{name} in the mirror\n{stdout}");
    }
    // skopeo reads a changed image whole: its base layer is in the mirror too.
    reads_whole(
        &format!("{}/{}", mirror.host(), v2_names[0]),
        &work.path().join("readback"),
    );
}

#[test]
fn a_delta_against_what_the_mirror_holds_mounts_shared_layers_into_new_repositories() {
    let base = Bundle::new(&[("quay.io/team/base:1.0", &[BASE, (300, 100_000)])]);
    let next = Bundle::new(&[("quay.io/other/tool:1.0", &[BASE, (301, 200_000)])]);
    let upstream = TestRegistry::plain();
    publish(&upstream, &base);
    publish(&upstream, &next);
    let mirror = TestRegistry::plain();
    let work = tempfile::tempdir().unwrap();
    let b1 = work.path().join("b1");
    save(&upstream, &["quay.io/team/base:1.0"], &b1, &[]);
    let (code, stdout, stderr) = push_from(&mirror, &b1, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // On the air-gapped side, the lock of what the mirror holds.
    let out = against("check", &mirror.host())
        .arg("--lock")
        .arg(b1.join("images.lock.yaml"))
        .args(["-o", "lock"])
        .output()
        .unwrap();
    let held = common::stdout_of_success(&out);
    assert!(
        held.contains("quay.io/team/base:1.0") && held.contains(&base.images[0].1),
        "{held}"
    );
    let have = work.path().join("held.lock.yaml");
    std::fs::write(&have, held).unwrap();

    let delta = work.path().join("delta.tar.zst");
    save(
        &upstream,
        &["quay.io/other/tool:1.0"],
        &delta,
        &["--have", have.to_str().unwrap()],
    );
    // The base layer went across once, in bundle 1: the delta tar is far smaller than it.
    let size = std::fs::metadata(&delta).unwrap().len();
    assert!(size < 400_000, "the delta tar is {size} bytes");
    // Served alone, its base layer would be a 404 to every node: refused at start.
    let plain = work.path().join("delta.tar");
    save(
        &upstream,
        &["quay.io/other/tool:1.0"],
        &plain,
        &["--have", have.to_str().unwrap()],
    );
    let out = airgap()
        .arg("serve")
        .arg(&plain)
        .args([
            "--addr",
            &format!("127.0.0.1:{}", crate::common::registry::free_port()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a delta bundle"), "{stderr}");

    // A mirror that will not mount across repositories gets the base layer copied from the
    // repository holding it: the delta still need not carry it.
    let refusing = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&refusing, &b1, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let proxy = FaultProxy::no_mount(refusing.port);
    let front = format!("127.0.0.1:{}", proxy.port);
    let out = against("push", &front)
        .arg("--from")
        .arg(&delta)
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(stdout.contains("0 mounted"), "{stdout}");
    assert!(proxy.count("?mount=") >= 1, "no mount was asked for");
    assert_eq!(
        skopeo_digest(&refusing, &format!("{}/quay.io/other/tool:1.0", front)).as_ref(),
        Some(&next.images[0].1)
    );
    reads_whole(
        &format!("{}/quay.io/other/tool:1.0", refusing.host()),
        &work.path().join("whole"),
    );

    let (code, stdout, stderr) = push_from(&mirror, &delta, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 mounted"), "{stdout}");
    assert_eq!(
        skopeo_digest(
            &mirror,
            &format!("{}/quay.io/other/tool:1.0", mirror.host())
        ),
        Some(next.images[0].1.clone())
    );
}

/// A chart travels whole in a delta (it is small, and `charts` reads it from the bundle), and
/// the chart its base lock lists is no base image: the source has no such image to read.
#[test]
fn a_delta_of_a_bundle_with_a_chart_carries_the_chart_whole() {
    let helm = crate::common::helm::Helm::new(3);
    let base = Bundle::new(&[("quay.io/team/base:1.0", &[BASE, (400, 50_000)])]);
    let upstream = TestRegistry::plain();
    publish(&upstream, &base);
    let work = tempfile::tempdir().unwrap();
    let chart = work.path().join("shop");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "image: quay.io/team/base:1.0\n").unwrap();
    std::fs::write(
        chart.join("templates/pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: p\n      image: {{ .Values.image }}\n",
    )
    .unwrap();
    let save = |out: &Path, extra: &[&str]| {
        let o = helm
            .airgap()
            .arg("save")
            .arg("--chart")
            .arg(&chart)
            .arg("--source-mirror")
            .arg(format!("quay.io=http://{}", upstream.host()))
            .arg("-o")
            .arg(out)
            .args(extra)
            .output()
            .unwrap();
        (common::outcome(o), out.to_path_buf())
    };
    let ((code, stdout, stderr), b1) = save(&work.path().join("b1"), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let have = b1.join("images.lock.yaml");
    let ((code, stdout, stderr), delta) = save(
        &work.path().join("delta"),
        &["--have", have.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The image's layers stayed behind; the chart did not.
    for digest in &base.blob_digests {
        assert!(
            !delta.join("blobs/sha256").join(&digest[7..]).exists(),
            "{digest}"
        );
    }
    let listed = airgap().arg("charts").arg(&delta).output().unwrap();
    let (code, stdout, stderr) = common::outcome(listed);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("shop") && stdout.contains("0.1.0"),
        "{stdout}"
    );
}
