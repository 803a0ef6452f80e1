//! Element Server Suite: an `images_digests.yml` as the image list of `save`, `push` and
//! `check`, and `images -o ess-configmap` pointing every container at the mirror; real
//! registries, skopeo as the independent reader.

use crate::common;

use common::registry::{Layout, TestRegistry, against};
use serde_norway::Value;

/// (component, container, server, path, tag, multi-platform?)
const CONTAINERS: [(&str, &str, &str, &str, &str, bool); 3] = [
    (
        "synapse",
        "synapse",
        "ghcr.io",
        "element-hq/synapse",
        "v1.120.0",
        true,
    ),
    (
        "matrix_authentication_service",
        "syn2mas",
        "ghcr.io",
        "element-hq/matrix-authentication-service/syn2mas",
        "0.12.0",
        false,
    ),
    (
        "haproxy",
        "haproxy",
        "docker.io",
        "library/haproxy",
        "3.0",
        false,
    ),
];

/// The upstream holding the suite's images, and an images_digests.yml naming them.
fn upstream(dir: &std::path::Path) -> (TestRegistry, std::path::PathBuf) {
    let reg = TestRegistry::plain();
    let mut file = String::from("# as released with the suite\nimages_digests:\n");
    let mut component = "";
    for (i, (comp, container, server, path, tag, multi)) in CONTAINERS.iter().enumerate() {
        let layout = if *multi {
            Layout::multi_arch(300 + i as u64)
        } else {
            Layout::single(300 + i as u64)
        };
        reg.push(layout.dir.path(), path, tag);
        if *comp != component {
            file.push_str(&format!("  {comp}:\n"));
            component = comp;
        }
        file.push_str(&format!(
            "    {container}:\n      image_digest: {}\n      image_repository_path: {path}\n      image_repository_server: {server}\n      image_tag: \"{tag}\"\n",
            layout.digest
        ));
    }
    let path = dir.join("images_digests.yml");
    std::fs::write(&path, file).unwrap();
    (reg, path)
}

#[test]
fn images_digests_drive_save_push_check_and_the_mirror_config_map() {
    let work = tempfile::tempdir().unwrap();
    let (up, digests) = upstream(work.path());
    let bundle = work.path().join("ess-bundle");
    let out = common::airgap()
        .args(["save", "--images-digests"])
        .arg(&digests)
        .arg("-o")
        .arg(&bundle)
        .args(["--source-mirror", &format!("ghcr.io=http://{}", up.host())])
        .args([
            "--source-mirror",
            &format!("docker.io=http://{}", up.host()),
        ])
        .output()
        .unwrap();
    common::stdout_of_success(&out);

    let mirror = TestRegistry::plain();
    let host = mirror.host();
    let out = against("push", &host)
        .arg("--from")
        .arg(&bundle)
        .arg("--images-digests")
        .arg(&digests)
        .output()
        .unwrap();
    let pushed = common::stdout_of_success(&out);
    assert!(pushed.contains("3 copied"), "{pushed}");
    let out = against("check", &host)
        .args(["-o", "json", "--images-digests"])
        .arg(&digests)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&common::stdout_of_success(&out)).unwrap();
    assert_eq!(report["summary"]["present"], 3, "{report}");

    // The ConfigMap: every container at the mirror, tag and digest as released.
    let out = common::airgap()
        .args(["images", "--registry", &host, "--images-digests"])
        .arg(&digests)
        .args(["-o", "ess-configmap", "--name", "ess-images", "-n", "ess"])
        .output()
        .unwrap();
    let cm: Value = serde_norway::from_str(&common::stdout_of_success(&out)).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "ess-images");
    assert_eq!(cm["metadata"]["namespace"], "ess");
    let text = cm["data"]["images_digests"].as_str().unwrap();
    let tree: Value = serde_norway::from_str(text).unwrap();
    let released: Value =
        serde_norway::from_str(&std::fs::read_to_string(&digests).unwrap()).unwrap();
    for (comp, container, server, path, tag, _) in CONTAINERS {
        let entry = &tree[comp][container];
        let original = &released["images_digests"][comp][container];
        assert_eq!(entry["image_repository_server"], host.as_str());
        assert_eq!(
            entry["image_repository_path"].as_str().unwrap(),
            format!("{server}/{path}")
        );
        assert_eq!(entry["image_tag"], tag);
        assert_eq!(entry["image_digest"], original["image_digest"]);
        let reference = format!(
            "{host}/{server}/{path}@{}",
            entry["image_digest"].as_str().unwrap()
        );
        let out = mirror.skopeo(&["inspect", "--raw"], &reference);
        assert!(out.status.success(), "skopeo cannot read {reference}");
    }

    // A digest the mirror does not hold (a file from another release) fails the check.
    let other = std::fs::read_to_string(&digests).unwrap().replacen(
        released["images_digests"]["haproxy"]["haproxy"]["image_digest"]
            .as_str()
            .unwrap(),
        &format!("sha256:{}", "e".repeat(64)),
        1,
    );
    let other_file = work.path().join("other.yml");
    std::fs::write(&other_file, other).unwrap();
    let out = against("check", &host)
        .arg("--images-digests")
        .arg(&other_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("missing") && l.contains("library/haproxy")),
        "{stdout}"
    );
}

#[test]
fn a_broken_images_digests_file_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("images_digests.yml");
    std::fs::write(
        &file,
        "images_digests:\n  synapse:\n    synapse:\n      image_repository_path: element-hq/synapse\n      image_tag: v1\n",
    )
    .unwrap();
    let out = against("check", "127.0.0.1:9")
        .arg("--images-digests")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("images_digests.yml: images_digests.synapse.synapse (line 4): image_repository_server is missing"),
        "{stderr}"
    );
    let images = |file: &std::path::Path| {
        common::airgap()
            .args(["images", "--registry", "reg.local", "-o", "ess-configmap"])
            .arg("--images-digests")
            .arg(file)
            .output()
            .unwrap()
    };
    let out = images(&file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("(line 4): image_repository_server is missing")
    );
    std::fs::write(
        &file,
        "synapse:\n  synapse:\n    image_repository_server: ghcr.io\n    image_repository_path: element-hq/synapse\n    image_tag: v1\n",
    )
    .unwrap();
    let out = images(&file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the ConfigMap's name: --name NAME")
    );
    assert!(out.stdout.is_empty(), "no half-written ConfigMap");
}
