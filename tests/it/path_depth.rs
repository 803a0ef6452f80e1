//! `--max-path-depth`: mirrors that limit repository paths (a Harbor project, GitLab's group
//! depth) get every image within the limit, and push and post-render agree on the folded names.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::registry::{Bundle, TestRegistry};
use common::{airgap, corpus_files, outcome};

const DEPTH: &str = "2";

/// The mirror names `push --dry-run` would write for the images of `file`.
fn push_targets(mirror: &str, file: &std::path::Path) -> BTreeSet<String> {
    let (code, out, err) = outcome(
        airgap()
            .args([
                "push",
                "--dry-run",
                "--registry",
                mirror,
                "--max-path-depth",
                DEPTH,
            ])
            .args([
                "--insecure-registry",
                mirror.split('/').next().unwrap(),
                "-f",
            ])
            .arg(file)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{}: {err}", file.display());
    out.lines()
        .filter_map(|l| l.strip_prefix("would copy  ")?.split(" -> ").nth(1))
        .map(str::to_string)
        .collect()
}

/// The images a post-rendered `file` names, as `images` lists them.
fn post_rendered(mirror: &str, file: &std::path::Path) -> BTreeSet<String> {
    let text = std::fs::read(file).unwrap();
    let (code, rendered, err) = outcome(
        airgap()
            .args([
                "post-render",
                "--registry",
                mirror,
                "--max-path-depth",
                DEPTH,
            ])
            .write_stdin(text)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{}: {err}", file.display());
    common::image_uses(rendered.as_bytes())
        .into_iter()
        .map(|(source, _)| source)
        .collect()
}

#[test]
fn every_corpus_image_lands_within_the_limit_and_push_and_post_render_agree() {
    let reg = TestRegistry::plain();
    let mirror = format!("{}/project", reg.host());
    let below = format!("{mirror}/");
    let mut folded = 0;
    let files = corpus_files();
    assert!(!files.is_empty());
    for file in &files {
        let pushed = push_targets(&mirror, file);
        for target in &pushed {
            let path = target
                .strip_prefix(&below)
                .unwrap_or_else(|| panic!("{target}"));
            let repo = path.split([':', '@']).next().unwrap();
            assert!(
                repo.split('/').count() <= 2,
                "{target} from {}",
                file.display()
            );
            folded += usize::from(repo.contains('-'));
        }
        // What post-render points the cluster at is what push wrote (post-render also names
        // repository-only values, which push leaves out, so push's are a subset).
        let rendered = post_rendered(&mirror, file);
        assert!(
            pushed.is_subset(&rendered),
            "{}: pushed but not pointed at: {:?}",
            file.display(),
            pushed.difference(&rendered).collect::<Vec<_>>()
        );
    }
    assert!(
        folded > 0,
        "no corpus image needed folding; the test proves nothing"
    );
}

#[test]
fn a_deep_image_is_pushed_at_its_folded_name() {
    let bundle = Bundle::new(&[
        ("quay.io/org/team/app:v1", &[(71, 2_000)]),
        ("docker.io/library/nginx:1.27", &[(72, 2_000)]),
    ]);
    let reg = TestRegistry::plain();
    let host = reg.host();
    let (code, _, err) = outcome(
        airgap()
            .args(["push", "--from"])
            .arg(bundle.dir.path())
            .args([
                "--registry",
                &format!("{host}/project"),
                "--max-path-depth",
                DEPTH,
            ])
            .args(["--insecure-registry", &host])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    for (source, folded) in [
        ("quay.io/org/team/app:v1", "project/quay.io/org-team-app:v1"),
        (
            "docker.io/library/nginx:1.27",
            "project/docker.io/library-nginx:1.27",
        ),
    ] {
        let want = &bundle.images.iter().find(|i| i.0 == source).unwrap().1;
        let read = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{host}/{folded}"))
            .output()
            .unwrap();
        assert!(
            read.status.success(),
            "{folded}: {}",
            String::from_utf8_lossy(&read.stderr)
        );
        assert_eq!(&common::registry::digest_of(&read.stdout), want, "{folded}");
    }
}

#[test]
fn a_fold_that_makes_two_sources_meet_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let m =
        common::registry::pod_manifests(dir.path(), &["quay.io/a/b/c:1", "quay.io/a/b-c:1"], None);
    for command in ["push", "post-render"] {
        let mut c = airgap();
        c.args([
            command,
            "--registry",
            "reg.local/project",
            "--naming",
            "strip",
        ])
        .args(["--max-path-depth", DEPTH]);
        let (code, out, err) = match command {
            "push" => outcome(c.args(["--dry-run", "-f"]).arg(&m).output().unwrap()),
            _ => outcome(c.write_stdin(std::fs::read(&m).unwrap()).output().unwrap()),
        };
        assert_eq!(code, 2, "{command}: {out}{err}");
        assert!(
            err.contains("quay.io/a/b/c") && err.contains("quay.io/a/b-c"),
            "{command}: {err}"
        );
        assert!(out.is_empty(), "{command} wrote: {out}");
    }
    // A runtime's mirror setting cannot fold: node-config says so instead of writing a route
    // to names the mirror does not hold.
    let (code, out, err) = outcome(
        airgap()
            .args([
                "node-config",
                "--format",
                "containerd",
                "--registry",
                "reg.local/project",
            ])
            .args(["--max-path-depth", DEPTH, "-f"])
            .arg(&m)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("routes whole registries"), "{err}");
}

/// `post-render` of `manifests` with the config file `config` holding `text`.
fn post_render_with(
    config: &std::path::Path,
    text: &str,
    m: &std::path::Path,
) -> (i32, String, String) {
    std::fs::write(config, text).unwrap();
    outcome(
        airgap()
            .arg("--config")
            .arg(config)
            .arg("post-render")
            .write_stdin(std::fs::read(m).unwrap())
            .output()
            .unwrap(),
    )
}

#[test]
fn the_config_file_sets_the_limit_as_the_flag_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let m = common::registry::pod_manifests(dir.path(), &["quay.io/a/b:1"], None);
    let (code, out, err) =
        post_render_with(&config, "registry: reg.local/p\nmaxPathDepth: 1\n", &m);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("image: reg.local/p/quay.io-a-b:1"), "{out}");

    let (code, _, err) = post_render_with(&config, "registry: reg.local/p\nmaxPathDepth: 0\n", &m);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("maxPathDepth"), "{err}");
}
