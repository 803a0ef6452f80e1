//! Bad and odd input to the manifest commands (issue 20, items 4-7, 9 and 11): valid YAML that
//! other tools accept must be read, and our output must always be YAML, checked with a second,
//! independent parser (yaml-rust2) rather than the one that wrote it.

use crate::common;

use common::run;
use proptest::prelude::*;
use yaml_rust2::{Yaml, YamlLoader};

const MIRROR: &str = "reg.local:5000";

fn post_render(stdin: &str) -> String {
    let (code, out, err) = run(&["post-render", "--registry", MIRROR], stdin);
    assert_eq!(code, 0, "{err}");
    out
}

fn tree(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

fn pod(containers: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n{containers}")
}

/// `images -o json`: each image with the field paths that use it.
fn listed(stdin: &str) -> Vec<(String, Vec<String>)> {
    let (code, out, err) = run(&["images", "-f", "-", "-o", "json"], stdin);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let paths = i["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["path"].as_str().unwrap().to_string())
                .collect();
            (i["source"].as_str().unwrap().to_string(), paths)
        })
        .collect()
}

#[test]
fn anchored_image_values_keep_their_anchors_and_aliases_follow() {
    let input = pod(concat!(
        "  - name: a\n    image: &a nginx:1\n",
        "  - name: b\n    image: *a\n",
        "  - name: c\n    image: &q \"busybox:1\"\n",
        "  - name: d\n    image: *q\n",
        "  - name: e\n    image: &n # the sidecar\n      quay.io/x/y:2\n",
        "  - name: f\n    image: *n\n",
    ));
    let out = post_render(&input);
    // The anchors and aliases are still there; only the anchored text changed.
    assert!(
        out.contains("image: &a reg.local:5000/docker.io/library/nginx:1\n"),
        "{out}"
    );
    assert!(
        out.contains("image: &q \"reg.local:5000/docker.io/library/busybox:1\"\n"),
        "{out}"
    );
    assert!(
        out.contains("# the sidecar\n      reg.local:5000/quay.io/x/y:2\n"),
        "{out}"
    );
    assert_eq!(out.matches("image: *").count(), 3, "{out}");
    let want = pod(concat!(
        "  - {name: a, image: reg.local:5000/docker.io/library/nginx:1}\n",
        "  - {name: b, image: reg.local:5000/docker.io/library/nginx:1}\n",
        "  - {name: c, image: reg.local:5000/docker.io/library/busybox:1}\n",
        "  - {name: d, image: reg.local:5000/docker.io/library/busybox:1}\n",
        "  - {name: e, image: reg.local:5000/quay.io/x/y:2}\n",
        "  - {name: f, image: reg.local:5000/quay.io/x/y:2}\n",
    ));
    assert_eq!(tree(&out), tree(&want));
    // Both places are listed, whichever the rules visit first.
    let images = listed(&input);
    let nginx = images
        .iter()
        .find(|(i, _)| i == "docker.io/library/nginx:1");
    assert_eq!(
        nginx.map(|(_, p)| p.clone()),
        Some(vec![
            "spec.containers[0].image".to_string(),
            "spec.containers[1].image".to_string()
        ]),
        "{images:?}"
    );
    // A second pass changes nothing.
    assert_eq!(post_render(&out), out);
}

#[test]
fn an_alias_at_an_image_place_rewrites_its_anchor_wherever_it_stands() {
    // The anchor is on an init container visited after the containers, and on an annotation that
    // no rule reads: the alias's image must still reach the mirror.
    let input = concat!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    source: &s nginx:1.27\n",
        "spec:\n  initContainers:\n  - name: i\n    image: &m busybox:1\n",
        "  containers:\n  - name: a\n    image: *s\n  - name: b\n    image: *m\n",
    );
    let out = post_render(input);
    let doc = &tree(&out)[0];
    let spec = &doc["spec"];
    assert_eq!(
        spec["containers"][0]["image"].as_str(),
        Some("reg.local:5000/docker.io/library/nginx:1.27")
    );
    assert_eq!(
        spec["containers"][1]["image"].as_str(),
        Some("reg.local:5000/docker.io/library/busybox:1")
    );
    assert_eq!(
        spec["initContainers"][0]["image"].as_str(),
        Some("reg.local:5000/docker.io/library/busybox:1")
    );
    let images = listed(input);
    let busybox = images
        .iter()
        .find(|(i, _)| i == "docker.io/library/busybox:1")
        .unwrap();
    assert_eq!(busybox.1.len(), 2, "{images:?}");
}

#[test]
fn string_tags_on_image_values_are_kept_and_read() {
    let input = pod(concat!(
        "  - name: a\n    image: !!str nginx:2\n",
        "  - name: b\n    image: !!str \"quay.io/a/b:1\"\n",
        "  - name: c\n    image: ! quay.io/a/c:1\n",
    ));
    let out = post_render(&input);
    assert!(
        out.contains("image: !!str reg.local:5000/docker.io/library/nginx:2\n"),
        "{out}"
    );
    assert!(
        out.contains("image: !!str \"reg.local:5000/quay.io/a/b:1\"\n"),
        "{out}"
    );
    assert!(
        out.contains("image: ! reg.local:5000/quay.io/a/c:1\n"),
        "{out}"
    );
    let images: Vec<String> = listed(&input).into_iter().map(|(i, _)| i).collect();
    assert_eq!(
        images,
        [
            "docker.io/library/nginx:2",
            "quay.io/a/b:1",
            "quay.io/a/c:1"
        ]
    );
    // check sees the image, so it cannot pass with nothing checked.
    let (code, _, err) = run(
        &[
            "check",
            "-f",
            "-",
            "--registry",
            "127.0.0.1:1",
            "--insecure-registry",
            "127.0.0.1:1",
        ],
        &pod("  - name: a\n    image: !!str nginx:2\n"),
    );
    assert_ne!(code, 0, "{err}");
}

#[test]
fn a_tab_after_the_colon_is_separation_as_yaml_says() {
    let input =
        pod("  - name: a\n    image:\tnginx:1\n  - name: b\n    image:\t\t'quay.io/a/b:1'\n");
    let out = post_render(&input);
    assert_eq!(
        out,
        input
            .replace("nginx:1", "reg.local:5000/docker.io/library/nginx:1")
            .replace("'quay.io/a/b:1'", "'reg.local:5000/quay.io/a/b:1'")
    );
    let images: Vec<String> = listed(&input).into_iter().map(|(i, _)| i).collect();
    assert_eq!(images, ["docker.io/library/nginx:1", "quay.io/a/b:1"]);
    // A tab inside a value is content and stays where it was.
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a:\tx\n  b: |\n    k:\tv\n";
    assert_eq!(post_render(config), config);
}

#[test]
fn deep_nesting_is_a_clear_error_not_a_crash() {
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  a: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let mut block = String::from("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n");
    for depth in 1..2_000 {
        block.push_str(&format!("{}k:\n", " ".repeat(depth)));
    }
    for input in [&deep, &block] {
        for args in [
            &["post-render", "--registry", MIRROR][..],
            &["images", "-f", "-"],
            &["check", "-f", "-", "--registry", MIRROR],
        ] {
            let (code, out, err) = run(args, input);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(out.is_empty(), "{args:?} wrote output");
            assert!(
                err.contains("nest more than 256 levels deep"),
                "{args:?}: {err}"
            );
            assert!(err.contains("at line "), "{args:?}: {err}");
        }
    }
    // YAML nested that deep inside a ConfigMap value is an error naming the field, not silence.
    let embedded = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  a: '{}{{\"image\": \"quay.io/x/y:1\"}}{}'\n",
        "{\"a\": ".repeat(300),
        "}".repeat(300)
    );
    let (code, _, err) = run(&["images", "-f", "-"], &embedded);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("field data.a"), "{err}");
    assert!(err.contains("more than 256 levels deep"), "{err}");
    // At a depth real configuration has, the image inside is found.
    let shallow = embedded
        .replace(&"{\"a\": ".repeat(300), &"{\"a\": ".repeat(40))
        .replace(&"}".repeat(300), &"}".repeat(40));
    let images: Vec<String> = listed(&shallow).into_iter().map(|(i, _)| i).collect();
    assert_eq!(images, ["quay.io/x/y:1"]);
}

#[test]
fn a_huge_bad_value_is_quoted_in_part() {
    let input = pod(&format!(
        "  - name: a\n    image: \"{}\"\n",
        "A".repeat(10 << 20)
    ));
    let (code, out, err) = run(&["post-render", "--registry", MIRROR], &input);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.len() < 2_000, "{} bytes of error", err.len());
    assert!(err.contains("(10485760 bytes in all)"), "{err}");
    assert!(err.contains("spec.containers[0].image"), "{err}");
}

#[test]
fn a_config_file_before_the_subcommand_is_not_read_as_post_render() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "registry: reg.local:5000\n").unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(&manifest, pod("  - name: a\n    image: nginx:1\n")).unwrap();
    // stdin is a pipe, as in every script and CI job.
    let (code, out, err) = run(
        &[
            "--config",
            config.to_str().unwrap(),
            "images",
            "-f",
            manifest.to_str().unwrap(),
            "-o",
            "json",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["images"][0]["source"], "docker.io/library/nginx:1");
    assert_eq!(
        v["images"][0]["mirror"],
        "reg.local:5000/docker.io/library/nginx:1"
    );
}

/// An image value written as a generator chose: a tag, an anchor, a quoting style, a tab or a
/// line break after its properties; or an alias of an earlier anchored value.
#[derive(Debug, Clone)]
enum Value {
    Written {
        image: usize,
        tag: Option<&'static str>,
        anchor: bool,
        quote: usize,
        tab: bool,
        own_line: bool,
    },
    Alias(usize),
}

const IMAGES: [(&str, &str); 3] = [
    ("nginx:1", "reg.local:5000/docker.io/library/nginx:1"),
    ("quay.io/a/b:2", "reg.local:5000/quay.io/a/b:2"),
    (
        "ghcr.io/c/d@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "reg.local:5000/ghcr.io/c/d@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ),
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (
            0..IMAGES.len(),
            prop::option::of(prop::sample::select(vec!["!!str", "!"])),
            any::<bool>(),
            0..3usize,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(image, tag, anchor, quote, tab, own_line)| Value::Written {
                image,
                tag,
                anchor,
                quote,
                tab,
                own_line,
            }),
        1 => (0..8usize).prop_map(Value::Alias),
    ]
}

/// The pod's text and the image each container must end up with.
fn render(values: &[Value]) -> (String, Vec<&'static str>) {
    let mut text = String::new();
    let mut want = Vec::new();
    let mut anchors: Vec<(usize, usize)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        text.push_str(&format!("  - name: c{i}\n    image:"));
        let image = match v {
            Value::Alias(k) if !anchors.is_empty() => {
                let (id, image) = anchors[k % anchors.len()];
                text.push_str(&format!(" *a{id}\n"));
                image
            }
            Value::Alias(_) => {
                text.push_str(" nginx:1\n");
                0
            }
            Value::Written {
                image,
                tag,
                anchor,
                quote,
                tab,
                own_line,
            } => {
                text.push_str(if *tab { "\t" } else { " " });
                let mut props = Vec::new();
                if *anchor {
                    props.push(format!("&a{i}"));
                    anchors.push((i, *image));
                }
                if let Some(t) = tag {
                    props.push(t.to_string());
                }
                let raw = IMAGES[*image].0;
                let scalar = match quote {
                    0 => raw.to_string(),
                    1 => format!("'{raw}'"),
                    _ => format!("\"{raw}\""),
                };
                if props.is_empty() {
                    text.push_str(&scalar);
                } else if *own_line {
                    text.push_str(&format!("{}\n      {scalar}", props.join(" ")));
                } else {
                    text.push_str(&format!("{} {scalar}", props.join(" ")));
                }
                text.push('\n');
                *image
            }
        };
        want.push(IMAGES[image].1);
    }
    (pod(&text), want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn anchors_tags_and_aliases_on_image_values_survive(values in prop::collection::vec(value(), 1..7)) {
        let (input, want) = render(&values);
        let out = post_render(&input);
        // The output parses, to the input's tree with the image values replaced.
        // yaml-rust2, like saphyr-parser, refuses a tab after `:`; it is separation, so the
        // independent reading is of the text with a space there.
        let untab = |t: &str| t.replace(":\t", ": ");
        let mut expected = tree(&untab(&input));
        for (i, image) in want.iter().enumerate() {
            if let Yaml::Hash(c) = &mut expected[0]["spec"]["containers"][i] {
                c.insert(Yaml::String("image".into()), Yaml::String((*image).into()));
            }
        }
        let expected_text = {
            let mut s = String::new();
            yaml_rust2::YamlEmitter::new(&mut s).dump(&expected[0]).unwrap();
            s
        };
        prop_assert_eq!(tree(&untab(&out)), tree(&expected_text), "output:\n{}", out);
        // Every anchor and alias of the input is still in the output.
        prop_assert_eq!(input.matches('&').count(), out.matches('&').count());
        prop_assert_eq!(input.matches('*').count(), out.matches('*').count());
        prop_assert_eq!(post_render(&out), out);
    }
}
