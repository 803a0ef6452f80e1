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

/// What a chart's `expected.txt` says.
struct Expected {
    images: BTreeSet<String>,
    /// `repo: R` lines: repository-only values.
    repos: BTreeSet<String>,
    /// `not-image: S` lines: strings spelled like an expected repository that are not
    /// references (the chart's NOTES.md says where; falco's `http_output.user_agent:
    /// falcosecurity/falco` is an HTTP User-Agent), which must stay as they are.
    not_images: BTreeSet<String>,
}

fn expected(chart: &std::path::Path) -> Expected {
    let text = std::fs::read_to_string(chart.join("expected.txt")).unwrap();
    let mut out = Expected {
        images: BTreeSet::new(),
        repos: BTreeSet::new(),
        not_images: BTreeSet::new(),
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(r) = line.strip_prefix("repo:") {
            out.repos.insert(r.trim().to_string());
        } else if let Some(s) = line.strip_prefix("not-image:") {
            out.not_images.insert(s.trim().to_string());
        } else {
            out.images.insert(line.to_string());
        }
    }
    out
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
        let Expected {
            images: want_images,
            repos: want_repos,
            not_images,
        } = expected(chart);
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
        for s in &not_images {
            if !output.contains(s.as_str()) {
                failures.push(format!("{name}: {s:?}, which is not an image, was changed"));
            }
        }
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
                    if not_images.contains(token) {
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

/// The MongoDB community operator pulls `MONGODB_REPO_URL/MONGODB_IMAGE:VERSION-MDB_IMAGE_TYPE`
/// from its official repositories but `...:VERSION` from any other: once MONGODB_REPO_URL points
/// at the mirror, the image must be there under the tag without the suffix too. Listed as the
/// image that exists upstream, copied under both tags by `push` and by `save` + `push --from`,
/// and the name the operator joins after post-render is one skopeo finds in the mirror.
#[test]
fn the_mongodb_operator_finds_its_server_image_in_the_mirror_under_the_tag_it_asks_for() {
    use crate::common::registry::{Bundle, TestRegistry, against, digest_of, push_from};
    let upstream_name = "docker.io/mongodb/mongodb-community-server:7.0.12-ubi8";
    let image = Bundle::new(&[(upstream_name, &[(77, 40_000)])]);
    let upstream = TestRegistry::plain();
    upstream.push_named(
        image.dir.path(),
        "img0",
        "mongodb/mongodb-community-server",
        "7.0.12-ubi8",
    );
    let digest = &image.images[0].1;
    let work = tempfile::tempdir().unwrap();
    let manifests = work.path().join("mongodb.yaml");
    std::fs::write(
        &manifests,
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: mongodb-kubernetes-operator, namespace: db}
spec:
  template:
    spec:
      containers:
        - name: operator
          image: docker.io/mongodb/mongodb-kubernetes-operator:0.13.0
          env:
            - {name: MONGODB_IMAGE, value: mongodb-community-server}
            - {name: MONGODB_REPO_URL, value: docker.io/mongodb}
            - {name: MDB_IMAGE_TYPE, value: ubi8}
---
apiVersion: mongodbcommunity.mongodb.com/v1
kind: MongoDBCommunity
metadata: {name: rs, namespace: db}
spec: {members: 3, type: ReplicaSet, version: 7.0.12}
"#,
    )
    .unwrap();
    // Only the server image is copied here; the operator's own image is another test's.
    let server_only = work.path().join("server.yaml");
    let text = std::fs::read_to_string(&manifests).unwrap();
    std::fs::write(
        &server_only,
        text.replace(
            "          image: docker.io/mongodb/mongodb-kubernetes-operator:0.13.0\n",
            "",
        ),
    )
    .unwrap();

    let out = airgap()
        .args(["images", "-o", "json", "-f"])
        .arg(&manifests)
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&common::stdout_of_success(&out)).unwrap();
    let sources: Vec<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert!(sources.contains(&upstream_name), "{listed:#}");
    assert!(listed.get("repositories").is_none(), "{listed:#}");
    assert_eq!(
        listed["mirror_copies"][0]["source"],
        "docker.io/mongodb/mongodb-community-server:7.0.12"
    );
    assert_eq!(listed["mirror_copies"][0]["copy_of"], upstream_name);

    let source_mirror = format!("docker.io=http://{}", upstream.host());
    let in_mirror = |mirror: &TestRegistry, tag: &str| {
        let out = mirror.skopeo(
            &["inspect", "--raw"],
            &format!(
                "{}/docker.io/mongodb/mongodb-community-server:{tag}",
                mirror.host()
            ),
        );
        out.status.success().then(|| digest_of(&out.stdout))
    };

    // push from the registry.
    let mirror = TestRegistry::plain();
    let out = against("push", &mirror.host())
        .args(["--source-mirror", &source_mirror, "-f"])
        .arg(&server_only)
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    assert!(stdout.contains("2 images: 2 copied"), "{stdout}");
    for tag in ["7.0.12-ubi8", "7.0.12"] {
        assert_eq!(
            in_mirror(&mirror, tag).as_ref(),
            Some(digest),
            "{tag}\n{stdout}"
        );
    }
    // The operator's join after post-render: the rewritten MONGODB_REPO_URL, the image, the
    // version, and no suffix, since the mirror is not an official repository.
    let out = airgap()
        .args(["post-render", "--registry", &mirror.host()])
        .pipe_stdin(&manifests)
        .unwrap()
        .output()
        .unwrap();
    let rendered = common::stdout_of_success(&out);
    let repo_url = rendered
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("- {name: MONGODB_REPO_URL, value: ")
                .and_then(|v| v.strip_suffix('}'))
        })
        .unwrap_or_else(|| panic!("{rendered}"));
    assert_eq!(repo_url, format!("{}/docker.io/mongodb", mirror.host()));
    let joined = format!("{repo_url}/mongodb-community-server:7.0.12");
    let out = mirror.skopeo(&["inspect", "--raw"], &joined);
    assert_eq!(digest_of(&out.stdout), *digest, "{joined}");
    // check looks for both.
    let out = against("check", &mirror.host())
        .arg("-f")
        .arg(&server_only)
        .output()
        .unwrap();
    let table = common::stdout_of_success(&out);
    assert!(
        table.contains("7.0.12 ") || table.contains("7.0.12\n"),
        "{table}"
    );

    // save, then push --from the bundle.
    let bundle = work.path().join("bundle");
    let out = airgap()
        .args(["save", "--source-mirror", &source_mirror, "-f"])
        .arg(&server_only)
        .arg("-o")
        .arg(&bundle)
        .output()
        .unwrap();
    common::stdout_of_success(&out);
    let lock = std::fs::read_to_string(bundle.join("images.lock.yaml")).unwrap();
    assert!(lock.contains(&format!("copyOf: {upstream_name}")), "{lock}");
    let second = TestRegistry::plain();
    let (code, stdout, stderr) = push_from(&second, &bundle, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for tag in ["7.0.12-ubi8", "7.0.12"] {
        assert_eq!(
            in_mirror(&second, tag).as_ref(),
            Some(digest),
            "{tag}\n{stdout}"
        );
    }
    // The lock drives a push from the registry too: the copy is read from its image.
    let third = TestRegistry::plain();
    let out = against("push", &third.host())
        .args(["--source-mirror", &source_mirror, "--lock"])
        .arg(bundle.join("images.lock.yaml"))
        .output()
        .unwrap();
    let stdout = common::stdout_of_success(&out);
    for tag in ["7.0.12-ubi8", "7.0.12"] {
        assert_eq!(
            in_mirror(&third, tag).as_ref(),
            Some(digest),
            "{tag}\n{stdout}"
        );
    }
}
