//! `node-config`: the files it writes, read by the runtimes they are for. containerd's `ctr`
//! and podman pull images by their original names (`docker.io/library/...`) with the generated
//! files and get the mirror's image, over TLS verified with the CA the files carry; k3s is not
//! installable here, so its file is held to k3s's documented schema, and its rewrite is applied
//! as k3s applies it.
//!
//! Each runtime's requests to any host but the loopback mirror go to a recording proxy
//! (`HTTPS_PROXY`; Go and containers/image send loopback hosts direct), so "nothing reached
//! another registry" is asserted, not assumed; a pull without the files is the control that
//! shows the proxy would have seen it.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::airgap;
use common::registry::{Bundle, Recorder, TestRegistry};
use common::tools::{Containerd, Podman};
use sha2::{Digest as _, Sha256};
use yaml_rust2::{Yaml, YamlLoader};

const HUB_IMAGE: &str = "docker.io/library/nginx:1.27";
const QUAY_IMAGE: &str = "quay.io/org/app:v1";
/// A source with a port: containerd's directory for it is `localhost:5001`, CRI-O's prefix the
/// same, and nested naming encodes it as `localhost_5001`.
const PORT_IMAGE: &str = "localhost:5001/team/tool:2";
const IMAGES: [&str; 3] = [HUB_IMAGE, QUAY_IMAGE, PORT_IMAGE];

/// A bundle of the two test images whose content depends on `seed`, so that two bundles of the
/// same names hold different digests.
fn bundle(seed: u64) -> Bundle {
    Bundle::new(&[
        (HUB_IMAGE, &[(seed, 3_000)]),
        (QUAY_IMAGE, &[(seed + 1, 2_000)]),
        (PORT_IMAGE, &[(seed + 2, 1_000)]),
    ])
}

/// `push --from` a bundle into the TLS mirror at `registry` (`HOST/PREFIX`), with `naming`.
fn push(mirror: &TestRegistry, bundle: &Bundle, registry: &str, naming: &str) {
    let ca = &mirror.pki.as_ref().unwrap().ca;
    let out = airgap()
        .args(["push", "--registry", registry, "--naming", naming])
        .arg("--ca-file")
        .arg(ca)
        .arg("--from")
        .arg(bundle.dir.path())
        .output()
        .unwrap();
    common::stdout_of_success(&out);
}

/// `node-config --format FORMAT -o DIR` for the bundle's images: the files it wrote.
fn node_config(
    mirror: &TestRegistry,
    bundle: &Bundle,
    registry: &str,
    naming: &str,
    format: &str,
    dir: &Path,
) {
    let out = airgap()
        .args(["node-config", "--format", format, "--registry", registry])
        .args(["--naming", naming, "-o"])
        .arg(dir)
        .arg("--ca-file")
        .arg(&mirror.pki.as_ref().unwrap().ca)
        .arg("--bundle")
        .arg(bundle.dir.path())
        .output()
        .unwrap();
    common::stdout_of_success(&out);
}

/// The digest the mirror holds at `reference`, read by skopeo over verified TLS.
fn mirror_digest(mirror: &TestRegistry, reference: &str) -> String {
    let out = mirror.skopeo(&["inspect", "--raw"], reference);
    let stdout = out.stdout.clone();
    succeeded(&format!("skopeo inspect {reference}"), out);
    format!("sha256:{}", hex::encode(Sha256::digest(&stdout)))
}

/// The digest containerd holds `name` at (`ctr images ls`: REF TYPE DIGEST ...).
fn ctr_digest(ctr: &Containerd, name: &str) -> Option<String> {
    ctr.run(&["images", "ls"]).lines().find_map(|l| {
        let mut cols = l.split_whitespace();
        (cols.next() == Some(name)).then(|| cols.nth(1).unwrap_or_default().to_string())
    })
}

/// The mirror path of each image under `registry` as `images` (post-render's naming) reports it.
fn mirror_names(registry: &str, naming: &str, images: &[&str]) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let m = common::registry::pod_manifests(dir.path(), images, None);
    let out = airgap()
        .args([
            "images",
            "-o",
            "json",
            "--registry",
            registry,
            "--naming",
            naming,
        ])
        .arg("-f")
        .arg(m)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&common::stdout_of_success(&out)).unwrap();
    common::per_image(&report, "mirror").into_iter().collect()
}

/// A TLS mirror holding two bundles of the same names, one pushed with nested naming under
/// `HOST/nested`, one with strip naming under `HOST[/strip_prefix]`: a pull that found the other
/// naming's path would get the other digest. Each case is (registry, naming, bundle).
fn filled_mirror(
    seed: u64,
    strip_prefix: Option<&str>,
) -> (TestRegistry, Vec<(String, &'static str, Bundle)>) {
    let mirror = TestRegistry::tls();
    let host = mirror.host();
    let strip_at = match strip_prefix {
        Some(p) => format!("{host}/{p}"),
        None => host.clone(),
    };
    let cases = vec![
        (format!("{host}/nested"), "nested", bundle(seed)),
        (strip_at, "strip", bundle(seed + 10)),
    ];
    for (registry, naming, bundle) in &cases {
        push(&mirror, bundle, registry, naming);
    }
    (mirror, cases)
}

/// A command that must have worked.
fn succeeded(what: &str, out: std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn containerd_pulls_original_names_from_the_mirror_nested_and_strip() {
    let (mirror, cases) = filled_mirror(11, Some("flat"));
    for (registry, naming, bundle) in &cases {
        let names = mirror_names(registry, naming, &IMAGES);
        let work = tempfile::tempdir().unwrap();
        let hosts_dir = work.path().join("certs.d");
        node_config(&mirror, bundle, registry, naming, "containerd", &hosts_dir);
        for host_dir in ["docker.io", "quay.io", "localhost:5001"] {
            assert!(
                hosts_dir.join(host_dir).join("airgap-ca.crt").is_file(),
                "the CA is copied beside {host_dir}/hosts.toml"
            );
        }

        let ctr = Containerd::start();
        let proxy = Recorder::start();
        let pull = |image: &str, hosts: Option<&Path>| {
            let mut cmd = ctr.cmd(&["images", "pull"]);
            if let Some(h) = hosts {
                cmd.arg("--hosts-dir").arg(h);
            }
            cmd.arg(image)
                .env("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port))
                .env("HTTP_PROXY", format!("http://127.0.0.1:{}", proxy.port))
                .env_remove("NO_PROXY");
            cmd.output().unwrap()
        };
        for image in IMAGES {
            succeeded(
                &format!("{naming}: ctr pull {image}"),
                pull(image, Some(&hosts_dir)),
            );
            let want = mirror_digest(&mirror, &names[image]);
            assert_eq!(
                ctr_digest(&ctr, image),
                Some(want),
                "{naming}: {image} is the mirror's {}",
                names[image]
            );
            let held = bundle.images.iter().find(|i| i.0 == image).unwrap();
            assert_eq!(ctr_digest(&ctr, image), Some(held.1.clone()), "{naming}");
        }
        assert_eq!(proxy.text(), "", "{naming}: nothing went past the mirror");

        // The control: without the hosts directory the pull goes upstream, through the proxy.
        let out = pull("docker.io/library/other:1", None);
        assert!(!out.status.success(), "{naming}: no network, no image");
        assert!(
            proxy.text().contains("registry-1.docker.io"),
            "{naming}: the proxy sees what leaves: {}",
            proxy.text()
        );
    }
}

#[test]
fn podman_pulls_original_names_through_the_registries_conf_drop_in() {
    let (mirror, cases) = filled_mirror(31, None);
    let host = mirror.host();
    for (registry, naming, bundle) in &cases {
        let names = mirror_names(registry, naming, &IMAGES);
        let work = tempfile::tempdir().unwrap();
        let etc = work.path().join("etc-containers");
        node_config(&mirror, bundle, registry, naming, "cri-o", &etc);
        assert_eq!(
            std::fs::read(etc.join("certs.d").join(&host).join("ca.crt")).unwrap(),
            std::fs::read(&mirror.pki.as_ref().unwrap().ca).unwrap(),
            "the mirror's CA is in certs.d/HOST:PORT, as containers-certs.d(5) names it"
        );
        // The files as podman reads a user's own: ~/.config/containers/registries.conf.d/ (a
        // drop-in directory, as /etc/containers/registries.conf.d is) and certs.d/HOST:PORT.
        let home = work.path().join("home");
        let user = home.join(".config/containers");
        std::fs::create_dir_all(&user).unwrap();
        for dir in ["registries.conf.d", "certs.d"] {
            let status = Command::new("cp")
                .arg("-r")
                .arg(etc.join(dir))
                .arg(user.join(dir))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let podman = Podman::new();
        let proxy = Recorder::start();
        for image in IMAGES {
            let out = podman
                .cmd(&["pull", "-q", "--cert-dir"])
                .arg(user.join("certs.d").join(&host))
                .arg(image)
                .env("HOME", &home)
                .env("HTTPS_PROXY", format!("http://127.0.0.1:{}", proxy.port))
                .output()
                .unwrap();
            succeeded(&format!("{naming}: podman pull {image}"), out);
            let want = mirror_digest(&mirror, &names[image]);
            let got = podman.run(&["image", "inspect", "--format", "{{.Digest}}", image]);
            assert_eq!(
                got.trim(),
                want,
                "{naming}: {image} is the mirror's {}",
                names[image]
            );
        }
        assert_eq!(proxy.text(), "", "{naming}: nothing went past the mirror");
    }
}

/// k3s's `registries.yaml` schema as its documentation gives it
/// (<https://docs.k3s.io/installation/private-registry>, "Registries Configuration File",
/// "Rewrites", "Configs"): each key with the shape of its value. `*` is any key.
fn k3s_schema() -> Yaml {
    let text = r#"
mirrors:
  "*":
    endpoint: [url]
    rewrite: {"*": string}
configs:
  "*":
    auth: {username: string, password: string, auth: string, identity_token: string}
    tls: {cert_file: path, key_file: path, ca_file: path, insecure_skip_verify: bool}
"#;
    YamlLoader::load_from_str(text).unwrap().remove(0)
}

/// Where `value` breaks `schema`, as `path: why` lines.
fn schema_errors(schema: &Yaml, value: &Yaml, path: &str, out: &mut Vec<String>) {
    match (schema, value) {
        (Yaml::Hash(s), Yaml::Hash(v)) => {
            for (k, v) in v {
                let Some(key) = k.as_str() else {
                    out.push(format!("{path}: key {k:?} is not a string"));
                    continue;
                };
                let shape = s
                    .get(&Yaml::String(key.into()))
                    .or_else(|| s.get(&Yaml::String("*".into())));
                match shape {
                    Some(shape) => schema_errors(shape, v, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}: unknown key {key:?}")),
                }
            }
        }
        (Yaml::Array(s), Yaml::Array(v)) => {
            if v.is_empty() {
                out.push(format!("{path}: empty list"));
            }
            for (i, item) in v.iter().enumerate() {
                schema_errors(&s[0], item, &format!("{path}[{i}]"), out);
            }
        }
        (Yaml::String(kind), v) => {
            let ok = match (kind.as_str(), v) {
                ("string", Yaml::String(_)) => true,
                ("url", Yaml::String(s)) => s
                    .strip_prefix("https://")
                    .or_else(|| s.strip_prefix("http://"))
                    .is_some_and(|host| !host.is_empty() && !host.contains('/')),
                ("path", Yaml::String(s)) => s.starts_with('/'),
                ("bool", Yaml::Boolean(_)) => true,
                _ => false,
            };
            if !ok {
                out.push(format!("{path}: {v:?} is not a {kind}"));
            }
        }
        (s, v) => out.push(format!("{path}: {v:?} where the schema has {s:?}")),
    }
}

#[test]
fn k3s_registries_yaml_follows_k3s_schema_and_its_rewrite_lands_on_the_mirror_name() {
    // The checker itself: an unknown key, a wrong shape and a relative path are caught.
    let bad = YamlLoader::load_from_str(
        "mirrors: {docker.io: {endpoints: [x]}}\nconfigs: {r: {tls: {ca_file: ca.crt, insecure_skip_verify: yes}}}",
    )
    .unwrap()
    .remove(0);
    let mut errors = Vec::new();
    schema_errors(&k3s_schema(), &bad, "", &mut errors);
    assert_eq!(errors.len(), 3, "{errors:?}");
    let images = IMAGES;
    let work = tempfile::tempdir().unwrap();
    let manifests = common::registry::pod_manifests(work.path(), &images, None);
    let ca = work.path().join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (registry, naming) in [
        ("reg.example:5000/mirror", "nested"),
        ("reg.example:5000", "strip"),
    ] {
        let out_dir = work.path().join(naming);
        let mut cmd = airgap();
        cmd.args(["node-config", "--format", "k3s", "-f"])
            .arg(&manifests);
        if naming == "nested" {
            cmd.args(["--registry", registry, "--naming", naming, "--ca-file"])
                .arg(&ca);
        } else {
            // The mirror, its naming and its CA from the config file.
            let config = work.path().join("config.yaml");
            std::fs::write(
                &config,
                format!(
                    "registry: {registry}\nnaming: {naming}\nregistries:\n  {registry}:\n    caFile: {}\n",
                    ca.display()
                ),
            )
            .unwrap();
            cmd.arg("--config").arg(config);
        }
        let out = cmd
            .arg("-o")
            .arg(&out_dir)
            .args(["--node-dir", "/etc/rancher/rke2"])
            .output()
            .unwrap();
        common::stdout_of_success(&out);
        let text = std::fs::read_to_string(out_dir.join("registries.yaml")).unwrap();
        let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
        let mut errors = Vec::new();
        schema_errors(&k3s_schema(), &doc, "", &mut errors);
        assert_eq!(errors, Vec::<String>::new(), "{text}");
        assert_eq!(
            doc["configs"]["reg.example:5000"]["tls"]["ca_file"].as_str(),
            Some("/etc/rancher/rke2/airgap-ca.crt"),
            "{text}"
        );
        assert_eq!(
            std::fs::read(out_dir.join("airgap-ca.crt")).unwrap(),
            std::fs::read(&ca).unwrap()
        );
        assert!(
            doc["configs"]["reg.example:5000"]["auth"].is_badvalue(),
            "no credentials: {text}"
        );

        // k3s's pull: the endpoint's host, and the name without its registry through the
        // first matching rewrite; it must be where post-render points the cluster.
        let names = mirror_names(registry, naming, &images);
        for image in images {
            let (host, rest) = image.split_once('/').unwrap();
            let (repo, tag) = rest.rsplit_once(':').unwrap();
            let entry = &doc["mirrors"][host];
            let endpoint = entry["endpoint"][0].as_str().unwrap();
            let mut path = repo.to_string();
            if let Yaml::Hash(rewrites) = &entry["rewrite"] {
                assert_eq!(
                    rewrites.len(),
                    1,
                    "one rewrite, since a map has no order: {text}"
                );
                for (pattern, replacement) in rewrites {
                    let re = regex::Regex::new(pattern.as_str().unwrap()).unwrap();
                    // Go's $1 is regex's ${1}.
                    let replacement = replacement.as_str().unwrap().replace("$1", "${1}");
                    path = re.replace(&path, replacement.as_str()).into_owned();
                }
            }
            let pulled = format!("{}/{path}:{tag}", endpoint.trim_start_matches("https://"));
            assert_eq!(pulled, names[image], "{naming}: {image}\n{text}");
        }
    }
}

#[test]
fn bad_requests_exit_2_saying_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let manifests = common::registry::pod_manifests(work.path(), &["quay.io/jetstack/cm:v1"], None);
    let not_pem = work.path().join("ca.crt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let m = manifests.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--format", "containerd", "--source", "quay.io"],
            "--registry HOST",
        ),
        (
            &["--format", "containerd", "--registry", "reg.local:5000"],
            "--source HOST",
        ),
        (
            &[
                "--format",
                "k3s",
                "--registry",
                "reg.local:5000",
                "--override",
                "quay.io/jetstack=certs",
                "-f",
                m,
            ],
            "--format cri-o",
        ),
        (
            &[
                "--format",
                "containerd",
                "--registry",
                "reg.local:5000",
                "--source",
                "docker.io",
                "--ca-file",
                not_pem.to_str().unwrap(),
            ],
            "no PEM certificate",
        ),
        (
            &[
                "--format",
                "containerd",
                "--registry",
                "reg.local:5000",
                "--source",
                "https://docker.io",
            ],
            "no scheme",
        ),
    ];
    for (args, says) in cases {
        let out = airgap().arg("node-config").args(args).output().unwrap();
        let (code, stdout, stderr) = common::outcome(out);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}: nothing is printed on an error");
    }

    // Printed, not written: every file under its path, and a partial override said exactly
    // to CRI-O.
    let out = airgap()
        .args([
            "node-config",
            "--format",
            "cri-o",
            "--registry",
            "reg.local:5000",
        ])
        .args(["--override", "quay.io/jetstack=certs", "-f", m])
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(
        stdout.starts_with("# ==> registries.conf.d/90-airgap.conf <==\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("prefix = \"quay.io/jetstack\"\nlocation = \"quay.io/jetstack\"\n\n[[registry.mirror]]\nlocation = \"reg.local:5000/certs\"\n"),
        "{stdout}"
    );
}
