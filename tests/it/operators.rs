//! The held-out operator corpora (issue 14): real operator charts rendered with their operands
//! on, and ground truth decided by hand from the rendered output and the operators' sources
//! (each folder's expected.txt, SOURCE.md and NOTES.md). testdata/operators (13 charts, the
//! set discovery was tuned on), testdata/operators-fresh (7, held out) and
//! testdata/operators-hard (13, held out, operators that pull images named in their own config,
//! CRs and split fields). Per chart: every expected image is listed with its full reference,
//! every expected repository-only value is listed as a repository, nothing else is listed, and
//! after post-render no expected image or repository is named outside the mirror.
//! `scripts/operator-report --corpus DIR` prints the same as a table.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::airgap;
use yaml_rust2::{Yaml, YamlLoader};

const MIRROR: &str = "reg.local:5000";

/// What the tool cannot know, each with why, as (corpus folder, chart, image). The MongoDB
/// community operator joins its mongod image from three env variables of its own Deployment
/// and each MongoDBCommunity's `spec.version`: the repository is rewritten (MONGODB_REPO_URL,
/// listed as a repository), so the pull goes to the mirror, but the tag lives in another
/// object, so the image to copy is not listed.
const KNOWN_MISSES: &[(&str, &str, &str)] = &[(
    "operators",
    "mongodb-community-operator",
    "docker.io/mongodb/mongodb-community-server:7.0.12-ubi8",
)];
/// Strings spelled like an expected repository that are not references (each chart's
/// NOTES.md says where): falco's `http_output.user_agent: falcosecurity/falco` is an HTTP
/// User-Agent, and must stay as it is.
const KNOWN_LOOK_ALIKES: &[(&str, &str, &str)] =
    &[("operators-fresh", "falco", "falcosecurity/falco")];
const KNOWN_EXTRA_REPOSITORIES: &[(&str, &str, &str)] = &[(
    "operators",
    "mongodb-community-operator",
    "docker.io/mongodb/mongodb-community-server",
)];

fn charts(corpus: &str) -> Vec<PathBuf> {
    let dir = common::helm::root().join("testdata").join(corpus);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.txt").exists())
        .collect();
    out.sort();
    out
}

/// `expected.txt`: images, and `repo: R` lines for repository-only values.
fn expected(chart: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(chart.join("expected.txt")).unwrap();
    let (mut images, mut repos) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("repo:") {
            Some(r) => repos.insert(r.trim().to_string()),
            None => images.insert(line.to_string()),
        };
    }
    (images, repos)
}

fn listed(rendered: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = airgap()
        .args(["images", "-o", "json", "-f"])
        .arg(rendered)
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let sources = |key: &str| -> BTreeSet<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["source"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // A listed image without tag or digest is pulled as `:latest`, which expected.txt spells out.
    let images = sources("images")
        .into_iter()
        .map(|i| {
            if repository_of(&i) == i {
                format!("{i}:latest")
            } else {
                i
            }
        })
        .collect();
    (images, sources("repositories"))
}

/// `REPO` of `REPO:TAG@DIGEST`.
fn repository_of(reference: &str) -> String {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => n.to_string(),
        _ => name.to_string(),
    }
}

/// Every string value of a document, with its key (an item of a list has its list's key).
fn scalars(node: &Yaml, key: &str, out: &mut Vec<(String, String)>) {
    match node {
        Yaml::String(s) => out.push((key.to_string(), s.clone())),
        Yaml::Array(items) => items.iter().for_each(|i| scalars(i, key, out)),
        Yaml::Hash(map) => map
            .iter()
            .for_each(|(k, v)| scalars(v, k.as_str().unwrap_or(""), out)),
        _ => {}
    }
}

/// Whether a key says image or repository: a one-word Docker Hub name (`solr`, `alpine`) as a
/// whole value is a place only there, since elsewhere it is a namespace, label or name.
fn says_image_or_repository(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("image") || key.contains("repo")
}

/// The spellings an image or repository may have in a chart: `docker.io/library/x` is also
/// `library/x` and `x`; `docker.io/o/x` is also `o/x`.
fn spellings(reference: &str) -> Vec<String> {
    let mut out = vec![reference.to_string()];
    if let Some(rest) = reference.strip_prefix("docker.io/") {
        out.push(rest.to_string());
        if let Some(short) = rest.strip_prefix("library/") {
            out.push(short.to_string());
        }
    }
    out
}

#[test]
fn every_operator_image_is_found_and_rewritten_at_every_place() {
    assert_corpus("operators", 10);
}

#[test]
fn the_fresh_held_out_operators_are_found_and_rewritten_at_every_place() {
    assert_corpus("operators-fresh", 7);
}

#[test]
fn the_hard_held_out_operators_are_found_and_rewritten_at_every_place() {
    assert_corpus("operators-hard", 10);
}

fn assert_corpus(corpus: &str, at_least: usize) {
    let charts = charts(corpus);
    assert!(
        charts.len() >= at_least,
        "testdata/{corpus} has {} charts",
        charts.len()
    );
    let mut failures = Vec::new();
    for chart in &charts {
        let name = chart.file_name().unwrap().to_str().unwrap();
        let rendered = chart.join("rendered.yaml");
        let (mut want_images, mut want_repos) = expected(chart);
        for (set, c, m) in KNOWN_MISSES {
            if *set == corpus && *c == name {
                assert!(
                    want_images.remove(*m),
                    "{name}: known miss {m} is not expected"
                );
            }
        }
        for (set, c, r) in KNOWN_EXTRA_REPOSITORIES {
            if *set == corpus && *c == name {
                want_repos.insert(r.to_string());
            }
        }
        let (images, repos) = listed(&rendered);
        if images != want_images {
            failures.push(format!(
                "{name}: images missed {:?}, false {:?}",
                want_images.difference(&images).collect::<Vec<_>>(),
                images.difference(&want_images).collect::<Vec<_>>()
            ));
        }
        if repos != want_repos {
            failures.push(format!(
                "{name}: repositories missed {:?}, false {:?}",
                want_repos.difference(&repos).collect::<Vec<_>>(),
                repos.difference(&want_repos).collect::<Vec<_>>()
            ));
        }
        let out = airgap()
            .args(["post-render", "--registry", MIRROR])
            .pipe_stdin(&rendered)
            .unwrap()
            .output()
            .unwrap();
        let output = common::stdout_of_success(&out);
        // No string value of the output (YAML nested in strings included, token by token)
        // names an expected image or repository by an original spelling; CRDs' prose is not a
        // place anything is pulled from.
        let images: BTreeSet<String> = want_images.iter().flat_map(|r| spellings(r)).collect();
        let repos: BTreeSet<String> = want_images
            .iter()
            .map(|r| repository_of(r))
            .chain(want_repos.iter().cloned())
            .flat_map(|r| spellings(&r))
            .collect();
        for chunk in output.split("\n---") {
            let mut strings = Vec::new();
            match YamlLoader::load_from_str(chunk) {
                Ok(docs) => {
                    for doc in docs {
                        if doc["kind"].as_str() != Some("CustomResourceDefinition") {
                            scalars(&doc, "", &mut strings);
                        }
                    }
                }
                // yaml-rust2 refuses duplicate keys, which Kubernetes takes (the last wins):
                // then every line that is not a comment is searched.
                Err(_) => strings.extend(
                    chunk
                        .lines()
                        .filter(|l| !l.trim_start().starts_with('#'))
                        .map(|l| match l.split_once(": ") {
                            Some((k, v)) => (k.trim().to_string(), v.to_string()),
                            None => (String::new(), l.to_string()),
                        }),
                ),
            }
            for (key, value) in strings {
                if repos.contains(value.trim())
                    && (value.contains('/') || says_image_or_repository(&key))
                {
                    failures.push(format!("{name}: {value:?} left"));
                    continue;
                }
                for token in
                    value.split(|c: char| c.is_whitespace() || "\"'=,;()[]{}<>|`".contains(c))
                {
                    let look_alike = KNOWN_LOOK_ALIKES
                        .iter()
                        .any(|(set, c, t)| *set == corpus && *c == name && *t == token);
                    if look_alike {
                        continue;
                    }
                    if images.contains(token) || (token.contains('/') && repos.contains(token)) {
                        failures.push(format!("{name}: {token} left"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
