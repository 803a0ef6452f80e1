//! `post-render` and `images` as Helm and users run them.

use crate::common;

use common::airgap;
use serde_json::Value;

const CASES: &str = include_str!("../../testdata/manifests/cases.yaml");
const CASES_EXPECTED: &str = include_str!("../../testdata/manifests/cases.expected.yaml");

#[test]
fn cases_match_the_golden_output_byte_for_byte() {
    let out = airgap()
        .args(["post-render", "--registry", "reg.local:5000"])
        .write_stdin(CASES)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout).unwrap() == CASES_EXPECTED,
        "output differs from cases.expected.yaml"
    );
}

#[test]
fn helm3_runs_the_binary_bare_with_configuration_from_the_environment() {
    let out = airgap()
        .env("AIRGAP_REGISTRY", "reg.local:5000")
        .write_stdin(CASES)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == CASES_EXPECTED.as_bytes());
}

fn fails(args: &[&str], stdin: &str) -> (i32, String) {
    let out = airgap()
        .args(args)
        .write_stdin(stdin.to_string())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "a failed post-render wrote to stdout"
    );
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const DEPLOYMENT: &str = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: IMAGE\n";

#[test]
fn a_bad_image_names_document_object_field_and_line() {
    let input = format!(
        "kind: ConfigMap\n{}",
        DEPLOYMENT.replace("IMAGE", "Nginx:1.27")
    );
    let (code, err) = fails(&["post-render", "--registry", "reg.local:5000"], &input);
    assert_eq!(code, 2);
    for want in [
        "document 2",
        "Deployment shop/web",
        "spec.template.spec.containers[0].image",
        "line 13",
        "\"Nginx:1.27\" is not an image reference",
        "lowercase",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
}

#[test]
fn invalid_yaml_names_the_line_and_leaves_stdout_empty() {
    let input = format!(
        "{}---\nkind: Broken\nmetadata: [unclosed\n",
        DEPLOYMENT.replace("IMAGE", "nginx")
    );
    let (code, err) = fails(&["post-render", "--registry", "reg.local:5000"], &input);
    assert_eq!(code, 2);
    assert!(err.contains("invalid YAML at line 16"), "{err}");
    assert!(err.contains("helm template"), "says what to do: {err}");
}

#[test]
fn a_missing_registry_says_how_to_set_one() {
    let (code, err) = fails(&["post-render"], &DEPLOYMENT.replace("IMAGE", "nginx"));
    assert_eq!(code, 2);
    assert!(
        err.contains("--registry") && err.contains("AIRGAP_REGISTRY"),
        "{err}"
    );
}

#[test]
fn a_strip_collision_names_both_sources() {
    let input = format!(
        "{}{}",
        DEPLOYMENT.replace("IMAGE", "quay.io/org/app:1"),
        DEPLOYMENT.replace("IMAGE", "ghcr.io/org/app:1")
    );
    let (code, err) = fails(
        &[
            "post-render",
            "--registry",
            "reg.local:5000",
            "--naming",
            "strip",
        ],
        &input,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("quay.io/org/app") && err.contains("ghcr.io/org/app"),
        "{err}"
    );
    assert!(err.contains("document 2"), "{err}");
}

#[test]
fn errors_also_reach_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("airgap.log");
    let out = airgap()
        .arg("post-render")
        .env("AIRGAP_LOG_FILE", &log)
        .write_stdin(DEPLOYMENT.replace("IMAGE", "nginx"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("no mirror registry is set"), "{logged}");
}

#[test]
fn config_file_rules_and_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "registry: from-config.example.com\nnaming: strip\nplaceholders: [TBD]\noverrides:\n  - source: quay.io/special\n    target: vip\nrules:\n  - apiVersion: acme.io/v1\n    kind: Robot\n    image: [spec.brain]\n    container: [\"spec.arms[*]\"]\n",
    )
    .unwrap();
    let input = "apiVersion: acme.io/v1\nkind: Robot\nmetadata: {name: r2}\nspec:\n  brain: quay.io/acme/brain:1\n  arms:\n  - image: quay.io/special/arm:2\n  - image: TBD\n";
    let run = |extra_env: Option<(&str, &str)>, args: &[&str]| {
        let mut c = airgap();
        c.arg("post-render")
            .args(args)
            .env("AIRGAP_CONFIG", &config);
        if let Some((k, v)) = extra_env {
            c.env(k, v);
        }
        let out = c.write_stdin(input).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let from_config = run(None, &[]);
    assert!(
        from_config.contains("brain: from-config.example.com/acme/brain:1"),
        "{from_config}"
    );
    assert!(
        from_config.contains("image: from-config.example.com/vip/arm:2"),
        "{from_config}"
    );
    assert!(from_config.contains("image: TBD"), "{from_config}");
    let from_env = run(Some(("AIRGAP_REGISTRY", "env.example.com")), &[]);
    assert!(
        from_env.contains("brain: env.example.com/acme/brain:1"),
        "{from_env}"
    );
    let from_flag = run(
        Some(("AIRGAP_REGISTRY", "env.example.com")),
        &["--registry", "flag.example.com", "--naming", "nested"],
    );
    assert!(
        from_flag.contains("brain: flag.example.com/quay.io/acme/brain:1"),
        "{from_flag}"
    );
}

#[test]
fn a_config_file_error_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "registry: r.example.com\nrulez: []\n").unwrap();
    let (code, err) = fails(
        &["post-render", "--config", config.to_str().unwrap()],
        "kind: A\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("config.yaml") && err.contains("rulez"),
        "{err}"
    );
}

#[test]
fn images_lists_sources_mirrors_locations_and_suspects() {
    let out = airgap()
        .args([
            "images",
            "-f",
            "-",
            "-o",
            "json",
            "--suspects",
            "--registry",
            "reg.local:5000",
        ])
        .write_stdin(CASES)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = v["images"].as_array().unwrap();
    let find = |s: &str| {
        images
            .iter()
            .find(|i| i["source"] == s)
            .unwrap_or_else(|| panic!("no {s}"))
    };
    let redis = find("docker.io/library/redis:7");
    assert_eq!(redis["mirror"], "reg.local:5000/docker.io/library/redis:7");
    let loc = &redis["locations"][0];
    assert_eq!(loc["kind"], "Pod");
    assert_eq!(loc["name"], "one");
    assert_eq!(loc["path"], "items[0].spec.containers[0].image");
    assert_eq!(loc["rule"], "pod");
    let worker = find("quay.io/acme/worker:1.4");
    assert_eq!(worker["locations"][0]["rule"], "args");
    let synapse = find(
        "ghcr.io/element-hq/synapse:v1.130.0@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    );
    assert_eq!(synapse["locations"][0]["kind"], "ConfigMap");
    let suspects: Vec<&str> = v["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert!(
        suspects.contains(&"quay.io/acme/not-an-image-field:1"),
        "{suspects:?}"
    );
    assert!(
        suspects.contains(&"quay.io/not/an-image-flag:1"),
        "{suspects:?}"
    );
    assert!(
        !suspects.iter().any(|s| s.contains("busybox")),
        "{suspects:?}"
    );
    assert_eq!(
        images.len(),
        18,
        "{:#?}",
        images.iter().map(|i| &i["source"]).collect::<Vec<_>>()
    );
}

/// A user rule and the split-reference sweep both claim `registry`: the first claim (the rule)
/// wins and the overlapping edit is dropped, instead of two edits of one scalar (a panic before).
#[test]
fn overlapping_claims_edit_a_place_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "rules:\n  - apiVersion: acme.io/v1\n    kind: Engine\n    image: [spec.img.registry]\n",
    )
    .unwrap();
    let input = "apiVersion: acme.io/v1\nkind: Engine\nmetadata: {name: e}\nspec:\n  img:\n    registry: docker.io\n    repository: bitnami/redis\n    tag: \"7\"\n";
    let out = airgap()
        .args(["post-render", "--registry", "r.io:5000", "--config"])
        .arg(&config)
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        input.replace(
            "registry: docker.io",
            "registry: r.io:5000/docker.io/library/docker.io"
        )
    );
}

#[test]
fn pull_secret_from_flag_env_or_config_is_added_where_missing() {
    let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - image: nginx:1.27\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: own}\nspec: {imagePullSecrets: [{name: theirs}], containers: [{image: redis}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: ours}\nspec:\n  imagePullSecrets:\n  - name: mirror-pull\n  containers: [{image: redis}]\n";
    let want = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      imagePullSecrets:\n        - name: mirror-pull\n      containers:\n      - image: reg.local:5000/docker.io/library/nginx:1.27\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: own}\nspec: {imagePullSecrets: [{name: mirror-pull}, {name: theirs}], containers: [{image: reg.local:5000/docker.io/library/redis}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: ours}\nspec:\n  imagePullSecrets:\n  - name: mirror-pull\n  containers: [{image: reg.local:5000/docker.io/library/redis}]\n";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "registry: reg.local:5000\npullSecret: mirror-pull\n",
    )
    .unwrap();
    let runs = [
        airgap()
            .args(["post-render", "--registry", "reg.local:5000"])
            .args(["--pull-secret", "mirror-pull"])
            .write_stdin(input)
            .output()
            .unwrap(),
        airgap()
            .args(["post-render", "--registry", "reg.local:5000"])
            .env("AIRGAP_PULL_SECRET", "mirror-pull")
            .write_stdin(input)
            .output()
            .unwrap(),
        airgap()
            .arg("post-render")
            .arg("--config")
            .arg(&config)
            .write_stdin(input)
            .output()
            .unwrap(),
    ];
    for out in runs {
        assert_eq!(common::stdout_of_success(&out), want);
    }
    // A name Kubernetes would refuse is refused before anything is written.
    let (code, stderr) = fails(
        &[
            "post-render",
            "--registry",
            "r.io",
            "--pull-secret",
            "Mirror_Pull",
        ],
        input,
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("not a valid Secret name"), "{stderr}");
}
