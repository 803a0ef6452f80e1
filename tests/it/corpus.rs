//! The rewriter on real rendered charts: only image references change, the result is the same
//! YAML with only image values changed (checked with a second YAML parser), rewriting twice
//! changes nothing, and look-alikes stay.

use crate::common;

use airgap::mirror::{MirrorNaming, Naming};
use common::*;
use yaml_rust2::parser::{Event, EventReceiver, Parser};

/// The event stream of a second YAML parser: structure, scalar styles, tags and values.
fn events(text: &str) -> Vec<Event> {
    struct Sink(Vec<Event>);
    impl EventReceiver for Sink {
        fn on_event(&mut self, ev: Event) {
            self.0.push(ev);
        }
    }
    let mut sink = Sink(Vec::new());
    Parser::new_from_str(text)
        .load(&mut sink, true)
        .expect("valid YAML");
    sink.0
}

/// Same events, except scalars in which image tokens were mapped; returns how many tokens.
fn same_but_images(before: &[Event], after: &[Event], naming: &MirrorNaming, what: &str) -> usize {
    assert_eq!(before.len(), after.len(), "{what}: event count");
    let mut changed = 0;
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        match (b, a) {
            (Event::Scalar(x, xs, xa, xt), Event::Scalar(y, ys, ya, yt)) if x != y => {
                assert_eq!(
                    (xs, xa, xt),
                    (ys, ya, yt),
                    "{what}: event {i}: style or tag changed"
                );
                let (xt, yt) = (tokens(x), tokens(y));
                assert_eq!(xt.len(), yt.len(), "{what}: event {i}: {x:?} -> {y:?}");
                for (p, q) in xt.iter().zip(&yt).filter(|(p, q)| p != q) {
                    assert!(
                        is_mirrored(p, q, naming),
                        "{what}: event {i}: {p:?} -> {q:?}"
                    );
                    changed += 1;
                }
            }
            _ => assert_eq!(b, a, "{what}: event {i}"),
        }
    }
    changed
}

#[test]
fn every_corpus_file_changes_only_inside_image_references() {
    let files = corpus_files();
    let naming = naming("reg.local:5000", Naming::Nested);
    let mut total = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let input = std::fs::read_to_string(file).unwrap();
        let output = rewrite(&input, &naming).unwrap_or_else(|e| panic!("{name}: {e}"));
        let changed = assert_only_images_changed(&input, &output, &naming, &name);
        assert!(
            changed > 0 || name == "istio-gateway.yaml",
            "{name}: nothing rewritten"
        );

        let tree_changes = same_but_images(&events(&input), &events(&output), &naming, &name);
        assert_eq!(
            tree_changes, changed,
            "{name}: text and parse disagree on what changed"
        );

        let again = rewrite(&output, &naming).unwrap();
        assert!(again == output, "{name}: rewriting twice changed something");
        total += changed;
        println!("{name}: {changed} image references rewritten");
    }
    println!("{} files, {total} image references rewritten", files.len());
    if !files.is_empty() {
        assert!(
            total >= 190,
            "only {total} references rewritten across the corpus"
        );
    }
}

#[test]
fn look_alikes_and_placeholders_stay() {
    let naming = naming("reg.local:5000", Naming::Nested);
    for file in corpus_files() {
        let input = std::fs::read_to_string(&file).unwrap();
        let output = rewrite(&input, &naming).unwrap();
        for look_alike in [
            "cert-manager-cainjector:leaderelection",
            "apiserver_request:burnrate1h",
            "default:info",
            "conns_per_addr:10m",
            "image: auto",
            "container-registry: docker.elastic.co",
            "\"image\": \"pilot\"",
        ] {
            assert_eq!(
                input.matches(look_alike).count(),
                output.matches(look_alike).count(),
                "{}: {look_alike:?} changed",
                file.display()
            );
        }
    }
}

/// The corpus README's hard cases, each found.
#[test]
fn the_hard_cases_are_rewritten() {
    let naming = naming("reg.local:5000", Naming::Nested);
    let cases = [
        (
            "kube-prometheus-stack.yaml",
            "--prometheus-config-reloader=reg.local:5000/quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
        ),
        (
            "kube-prometheus-stack.yaml",
            "--thanos-default-base-image=reg.local:5000/quay.io/thanos/thanos:v0.42.4",
        ),
        (
            "cert-manager.yaml",
            "--acme-http01-solver-image=reg.local:5000/quay.io/jetstack/cert-manager-acmesolver:v1.16.2",
        ),
        (
            "argo-workflows.yaml",
            "- \"reg.local:5000/quay.io/argoproj/argoexec:v4.0.6\"",
        ),
        (
            "argo-workflows-emissary.yaml",
            "reg.local:5000/docker.io/argoproj/argosay:v2:",
        ),
        (
            "strimzi-kafka-operator.yaml",
            "value: reg.local:5000/quay.io/strimzi/maven-builder:1.2.0",
        ),
        (
            "strimzi-kafka-operator.yaml",
            "4.2.0=reg.local:5000/quay.io/strimzi/kafka:1.2.0-kafka-4.2.0",
        ),
        (
            "ingress-nginx-extras.yaml",
            "reference: reg.local:5000/docker.io/library/busybox:1.37.0",
        ),
        (
            "ingress-nginx-extras.yaml",
            "image: reg.local:5000/docker.io/library/nginx:latest",
        ),
        (
            "k8ssandra-test-cluster.yaml",
            "serverImage: \"reg.local:5000/docker.io/k8ssandra/cass-management-api:4.1.10-ubi",
        ),
        ("velero.yaml", "image: reg.local:5000/"),
    ];
    let Some(dir) = corpus_dir() else { return };
    for (file, want) in cases {
        let input = std::fs::read_to_string(dir.join(file)).unwrap();
        let output = rewrite(&input, &naming).unwrap();
        assert!(output.contains(want), "{file}: no {want:?}");
    }
}

/// Under Helm 3 the same charts render the same images.
#[test]
fn helm3_renderings_rewrite_the_same_images() {
    let Some(dir) = corpus_dir() else { return };
    let naming = naming("reg.local:5000", Naming::Nested);
    for name in ["cert-manager.yaml", "kube-prometheus-stack.yaml"] {
        let h4 = rewrite(&std::fs::read_to_string(dir.join(name)).unwrap(), &naming).unwrap();
        let h3_in = std::fs::read_to_string(dir.join("../rendered-helm3").join(name)).unwrap();
        let h3 = rewrite(&h3_in, &naming).unwrap();
        assert_only_images_changed(&h3_in, &h3, &naming, name);
        let mut a: Vec<&str> = h4
            .lines()
            .filter(|l| l.contains("reg.local:5000"))
            .collect();
        let mut b: Vec<&str> = h3
            .lines()
            .filter(|l| l.contains("reg.local:5000"))
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}");
    }
}

/// Pod specs of the built-in workload kinds, read with the second parser: (object, has
/// `imagePullSecrets` naming `name`, has the field at all). Documents that parser refuses
/// (one chart renders a duplicate key, which YAML forbids and Kubernetes tolerates) are left out.
fn pod_specs(text: &str, name: &str) -> Vec<(String, bool, bool)> {
    use yaml_rust2::{Yaml, YamlLoader};
    let mut out = Vec::new();
    let docs = text
        .split("\n---")
        .filter_map(|d| YamlLoader::load_from_str(d).ok())
        .flatten();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or("").to_string();
        let spec = match kind.as_str() {
            "Pod" => &doc["spec"],
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "ReplicaSet"
            | "ReplicationController" => &doc["spec"]["template"]["spec"],
            "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        if spec.is_badvalue() {
            continue;
        }
        let secrets = &spec["imagePullSecrets"];
        let names = secrets
            .as_vec()
            .is_some_and(|v| v.iter().any(|s| s["name"].as_str() == Some(name)));
        let object = format!("{kind} {}", doc["metadata"]["name"].as_str().unwrap_or("?"));
        out.push((object, names, !matches!(secrets, Yaml::BadValue)));
    }
    out
}

#[test]
fn pull_secret_adds_only_lines_and_reaches_every_pod_spec() {
    let files = corpus_files();
    let naming = naming("reg.local:5000", Naming::Nested);
    let (mut added_total, mut specs_total) = (0, 0);
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let input = std::fs::read_to_string(file).unwrap();
        let plain = rewrite(&input, &naming).unwrap();
        let with = rewrite_with_pull_secret(&input, &naming, Some("mirror-pull"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The output is the plain rewrite plus pairs of whole lines, nothing else.
        let (p, w): (Vec<&str>, Vec<&str>) = (plain.lines().collect(), with.lines().collect());
        let (mut i, mut j, mut added) = (0, 0, 0);
        while j < w.len() {
            if i < p.len() && p[i] == w[j] {
                (i, j) = (i + 1, j + 1);
                continue;
            }
            let indent = w[j].len() - w[j].trim_start().len();
            assert_eq!(
                w[j].trim_start(),
                "imagePullSecrets:",
                "{name}: line {}",
                j + 1
            );
            assert_eq!(
                w.get(j + 1).copied(),
                Some(format!("{}  - name: mirror-pull", &w[j][..indent]).as_str()),
                "{name}: line {}",
                j + 2
            );
            (j, added) = (j + 2, added + 1);
        }
        assert_eq!(
            i,
            p.len(),
            "{name}: lines of the plain rewrite went missing"
        );
        assert!(plain.ends_with('\n') == with.ends_with('\n'));

        // Every built-in pod spec now names the secret, whatever the chart had set.
        let before = pod_specs(&input, "mirror-pull");
        let after = pod_specs(&with, "mirror-pull");
        assert_eq!(before.len(), after.len(), "{name}");
        for (object, names, _) in &after {
            assert!(*names, "{name}: {object} did not get the pull secret");
        }
        let lacking = before.iter().filter(|(_, _, had)| !had).count();
        assert!(
            added >= lacking,
            "{name}: {added} added, {lacking} built-in pod specs lacked one"
        );
        // Adding is idempotent: a second pass finds every pod spec served.
        let again = rewrite_with_pull_secret(&with, &naming, Some("mirror-pull")).unwrap();
        assert!(again == with, "{name}: a second pass changed something");
        (added_total, specs_total) = (added_total + added, specs_total + lacking);
        println!("{name}: {added} pod specs given the pull secret ({lacking} built-in)");
    }
    println!("{added_total} pod specs given the pull secret, {specs_total} of built-in kinds");
    if !files.is_empty() {
        assert!(
            added_total >= 30,
            "only {added_total} pod specs across the corpus"
        );
    }
}
