//! Discovery that generalizes (issue 14): each shape in which real operators name the images
//! they pull, from small manifests of our own. For each: the image is listed with its full
//! reference (tag kept), post-render leaves no place naming it outside the mirror, the other
//! fields of a split reference stay as they are, and look-alikes beside it stay byte for byte.

use crate::common;

use common::run;

const MIRROR: &str = "reg.local:5000";

/// `images -o json`: the sources of `images` and of `repositories`, sorted, with each entry's
/// rules.
fn listed(stdin: &str) -> (Vec<String>, Vec<String>, serde_json::Value) {
    let (code, out, err) = run(&["images", "-f", "-", "-o", "json", "--suspects"], stdin);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sources = |key: &str| {
        let mut s: Vec<String> = v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["source"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        s.sort();
        s
    };
    (sources("images"), sources("repositories"), v)
}

fn post_render(stdin: &str) -> String {
    let (code, out, err) = run(&["post-render", "--registry", MIRROR], stdin);
    assert_eq!(code, 0, "{err}");
    out
}

/// Every occurrence of `original` in the output is inside a mirror name (preceded by `/`).
fn assert_only_mirrored(out: &str, original: &str) {
    for (i, _) in out.match_indices(original) {
        assert!(
            out[..i].ends_with('/'),
            "{original:?} is still named outside the mirror at byte {i}:\n{out}"
        );
    }
}

struct Case<'a> {
    manifest: &'a str,
    images: &'a [&'a str],
    repositories: &'a [&'a str],
    /// Spellings in the input that must not survive outside the mirror.
    gone: &'a [&'a str],
    /// Lines the output must hold (rewritten fields, and fields that must stay).
    lines: &'a [&'a str],
    /// Lines the input holds that must stay exactly (look-alikes).
    kept: &'a [&'a str],
}

fn check(case: Case<'_>) -> serde_json::Value {
    let (images, repositories, report) = listed(case.manifest);
    let mut want: Vec<String> = case.images.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(images, want, "images listed\n{report:#}");
    let mut want: Vec<String> = case.repositories.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(repositories, want, "repositories listed\n{report:#}");
    let out = post_render(case.manifest);
    for g in case.gone {
        assert_only_mirrored(&out, g);
    }
    for l in case.lines.iter().chain(case.kept) {
        assert!(
            out.lines().any(|o| o.trim() == l.trim()),
            "no line {l:?} in:\n{out}"
        );
    }
    // Idempotent: a second rewrite changes nothing.
    assert_eq!(post_render(&out), out);
    report
}

#[test]
fn configmap_whole_values_are_images_when_their_key_or_their_shape_says_so() {
    let report = check(Case {
        manifest: r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: mariadb-operator-env
data:
  RELATED_IMAGE_MARIADB: "mariadb:11.8.8"
  POSTGRES_IMAGE_NAME: ghcr.io/cloudnative-pg/postgresql:17.5
  plugin: "quay.io/cephcsi/cephcsi:v3.17.0"
  csi-images.yaml: |
    provisioner: registry.k8s.io/sig-storage/csi-provisioner:v5.2.0
    attacher: "registry.k8s.io/sig-storage/csi-attacher:v4.8.1"
  IMAGE_REGISTRY: registry.example.com:5000
  endpoint: minio.minio.svc:9000
  leader: cert-manager-cainjector:leaderelection
  IMAGE_PULL_POLICY: IfNotPresent
  metrics: http://prometheus.monitoring.svc:9090/api/v1:push
"#,
        images: &[
            "docker.io/library/mariadb:11.8.8",
            "ghcr.io/cloudnative-pg/postgresql:17.5",
            "quay.io/cephcsi/cephcsi:v3.17.0",
            "registry.k8s.io/sig-storage/csi-attacher:v4.8.1",
            "registry.k8s.io/sig-storage/csi-provisioner:v5.2.0",
        ],
        repositories: &[],
        gone: &[
            "mariadb:11.8.8",
            "ghcr.io/cloudnative-pg",
            "quay.io/cephcsi",
            "registry.k8s.io/sig-storage",
        ],
        lines: &[
            "RELATED_IMAGE_MARIADB: \"reg.local:5000/docker.io/library/mariadb:11.8.8\"",
            "plugin: \"reg.local:5000/quay.io/cephcsi/cephcsi:v3.17.0\"",
        ],
        kept: &[
            "IMAGE_REGISTRY: registry.example.com:5000",
            "endpoint: minio.minio.svc:9000",
            "leader: cert-manager-cainjector:leaderelection",
            "metrics: http://prometheus.monitoring.svc:9090/api/v1:push",
        ],
    });
    // Every finding says which heuristic took it.
    let rules: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["locations"].as_array().unwrap())
        .map(|l| l["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.iter().all(|r| *r == "configmap" || *r == "embedded"),
        "{rules:?}"
    );
}

#[test]
fn split_fields_with_operator_names_join_as_the_operator_joins_them() {
    check(Case {
        manifest: r#"apiVersion: nvidia.com/v1
kind: ClusterPolicy
metadata:
  name: cluster-policy
spec:
  driver:
    repository: nvcr.io/nvidia
    image: driver
    version: "595.91.07"
  toolkit:
    repository: nvcr.io/nvidia/k8s
    image: container-toolkit
    version: v1.17.8-ubuntu20.04
    imagePullPolicy: IfNotPresent
  dcgmExporter:
    registry: nvcr.io
    image: nvidia/k8s/dcgm-exporter
    tag: 4.2.3-4.1.3-ubuntu22.04
  devicePlugin:
    image: nvcr.io/nvidia/k8s-device-plugin
    tag: v0.17.2
  nodeExporter:
    repository: quay.io/prometheus/node-exporter
    version: v1.8.2
"#,
        images: &[
            "nvcr.io/nvidia/driver:595.91.07",
            "nvcr.io/nvidia/k8s/container-toolkit:v1.17.8-ubuntu20.04",
            "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04",
            "nvcr.io/nvidia/k8s-device-plugin:v0.17.2",
            "quay.io/prometheus/node-exporter:v1.8.2",
        ],
        repositories: &[],
        // With a registry field, the image field carries the source host inside the mirror path.
        gone: &[
            "repository: nvcr.io",
            "repository: quay.io",
            "registry: nvcr.io",
            "image: nvcr.io/nvidia/k8s-device-plugin",
        ],
        lines: &[
            // The field holding the registry takes the mirror; the name and version stay.
            "repository: reg.local:5000/nvcr.io/nvidia",
            "image: driver",
            "version: \"595.91.07\"",
            "repository: reg.local:5000/nvcr.io/nvidia/k8s",
            "image: container-toolkit",
            // registry + image: the registry becomes the mirror host, the image its path.
            "registry: reg.local:5000",
            "image: nvcr.io/nvidia/k8s/dcgm-exporter",
            "tag: 4.2.3-4.1.3-ubuntu22.04",
            // image + tag: the tag is kept, not dropped for `latest`.
            "image: reg.local:5000/nvcr.io/nvidia/k8s-device-plugin",
            "tag: v0.17.2",
            "repository: reg.local:5000/quay.io/prometheus/node-exporter",
        ],
        kept: &["imagePullPolicy: IfNotPresent"],
    });
}

#[test]
fn flat_dotted_keys_in_configmap_data_are_one_split_reference() {
    check(Case {
        manifest: r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: trivy-operator-trivy-config
data:
  trivy.repository: "mirror.gcr.io/aquasec/trivy"
  trivy.tag: "0.65.0"
  trivy.severity: "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL"
  scanJob.podTemplateContainerSecurityContext: '{"privileged":false}'
"#,
        images: &["mirror.gcr.io/aquasec/trivy:0.65.0"],
        repositories: &[],
        gone: &["mirror.gcr.io/aquasec"],
        lines: &[
            "trivy.repository: \"reg.local:5000/mirror.gcr.io/aquasec/trivy\"",
            "trivy.tag: \"0.65.0\"",
        ],
        kept: &["trivy.severity: \"UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL\""],
    });
}

#[test]
fn yaml_nested_in_yaml_and_templates_that_are_not_yaml() {
    check(Case {
        manifest: r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: jenkins-jenkins-jcasc-config
data:
  jcasc-default-config.yaml: |-
    jenkins:
      clouds:
      - kubernetes:
          name: "kubernetes"
          templates:
            - name: "default"
              yaml: |-
                apiVersion: v1
                kind: Pod
                spec:
                  containers:
                  - name: jnlp
                    image: "jenkins/inbound-agent:3309.v27b9314fd1a4-1"
                  - name: tools
                    image: alpine/k8s:1.33.4
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: injector-template
data:
  template: |
    initContainers:
    {{- if .Values.init }}
      - name: init
        image: busybox:1.28
    {{- end }}
    containers:
      - name: sidecar
        image: "{{ .Values.sidecarImage }}"
"#,
        images: &[
            "docker.io/alpine/k8s:1.33.4",
            "docker.io/jenkins/inbound-agent:3309.v27b9314fd1a4-1",
            "docker.io/library/busybox:1.28",
        ],
        repositories: &[],
        gone: &["jenkins/inbound-agent", "alpine/k8s", "busybox:1.28"],
        lines: &[
            "image: \"reg.local:5000/docker.io/jenkins/inbound-agent:3309.v27b9314fd1a4-1\"",
            "image: reg.local:5000/docker.io/library/busybox:1.28",
        ],
        kept: &["image: \"{{ .Values.sidecarImage }}\""],
    });
}

#[test]
fn repository_only_values_are_rewritten_but_not_listed_as_images() {
    let (code, table, err) = run(&["images", "-f", "-"], LINKERD);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("REPOSITORIES"), "{table}");
    check(Case {
        manifest: LINKERD,
        images: &[],
        repositories: &["cr.l5d.io/linkerd/controller", "cr.l5d.io/linkerd/proxy"],
        gone: &["cr.l5d.io/linkerd"],
        lines: &[
            "controllerImage: reg.local:5000/cr.l5d.io/linkerd/controller",
            "controllerImageVersion: \"\"",
            "name: reg.local:5000/cr.l5d.io/linkerd/proxy",
            "version: \"\"",
        ],
        kept: &["name: linkerd-config"],
    });
    // `check` has no image to look for (a repository without a tag is none), and says so:
    // nothing is asked of the (unreachable) registry.
    let (code, out, err) = run(&["check", "-f", "-", "--registry", "127.0.0.1:1"], LINKERD);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 images"), "{out}");
    assert!(
        err.contains("2 repository-only value(s) not checked")
            && err.contains("cr.l5d.io/linkerd/proxy"),
        "{err}"
    );
}

const LINKERD: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: linkerd-config
  namespace: linkerd
data:
  values: |
    controllerImage: cr.l5d.io/linkerd/controller
    controllerImageVersion: ""
    proxy:
      image:
        name: cr.l5d.io/linkerd/proxy
        pullPolicy: ""
        version: ""
"#;

#[test]
fn package_flags_are_images_when_they_look_like_one() {
    check(Case {
        manifest: r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: crossplane
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: xpkg.crossplane.io/crossplane/crossplane:v2.0.2
          args:
            - core
            - init
            - --provider
            - xpkg.upbound.io/upbound/provider-aws-s3:v1.21.0
            - --function=xpkg.upbound.io/crossplane-contrib/function-patch-and-transform:v0.8.2
            - --configuration
            - xpkg.upbound.io/acme/platform:v1.0.0
            - --provider=aws
            - --configuration=/etc/crossplane/config.yaml
"#,
        images: &[
            "xpkg.crossplane.io/crossplane/crossplane:v2.0.2",
            "xpkg.upbound.io/acme/platform:v1.0.0",
            "xpkg.upbound.io/crossplane-contrib/function-patch-and-transform:v0.8.2",
            "xpkg.upbound.io/upbound/provider-aws-s3:v1.21.0",
        ],
        repositories: &[],
        gone: &["xpkg.upbound.io/"],
        lines: &[
            "- reg.local:5000/xpkg.upbound.io/upbound/provider-aws-s3:v1.21.0",
            "- --function=reg.local:5000/xpkg.upbound.io/crossplane-contrib/function-patch-and-transform:v0.8.2",
        ],
        kept: &[
            "- --provider=aws",
            "- --configuration=/etc/crossplane/config.yaml",
        ],
    });
}

#[test]
fn map_entries_under_a_parent_that_says_image() {
    check(Case {
        manifest: r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: postgres-operator
data:
  config.yaml: |
    sidecar_docker_images:
      exporter: quay.io/prometheuscommunity/postgres-exporter:v0.17.1
    image_pull_policy: IfNotPresent
    resources:
      limit: "1:2"
"#,
        images: &["quay.io/prometheuscommunity/postgres-exporter:v0.17.1"],
        repositories: &[],
        gone: &["quay.io/prometheuscommunity"],
        lines: &["exporter: reg.local:5000/quay.io/prometheuscommunity/postgres-exporter:v0.17.1"],
        kept: &["limit: \"1:2\""],
    });
}

#[test]
fn snake_case_image_name_and_image_version_are_one_reference() {
    // Kiali's CR: `image_name` + `image_version` under `deployment`, joined by its operator as
    // NAME:VERSION. Taken alone, `image_name` would be a repository-only value (`:latest`).
    check(Case {
        manifest: r#"apiVersion: kiali.io/v1alpha1
kind: Kiali
metadata:
  name: kiali
spec:
  deployment:
    image_name: quay.io/kiali/kiali
    image_version: v2.14.0
    image_pull_policy: IfNotPresent
    instance_name: kiali
"#,
        images: &["quay.io/kiali/kiali:v2.14.0"],
        repositories: &[],
        gone: &["image_name: quay.io"],
        lines: &[
            "image_name: reg.local:5000/quay.io/kiali/kiali",
            "image_version: v2.14.0",
        ],
        kept: &["image_pull_policy: IfNotPresent", "instance_name: kiali"],
    });
}

#[test]
fn a_named_repository_beside_its_named_version_is_one_reference() {
    // Scylla's `agentRepository` + `agentVersion` (the version holding tag@digest), and the same
    // pair in snake case; a chart's or a git repository beside its version is not an image.
    check(Case {
        manifest: r#"apiVersion: scylla.scylladb.com/v1
kind: ScyllaCluster
metadata:
  name: scylla
spec:
  agentRepository: scylladb/scylla-manager-agent
  agentVersion: 3.12.0@sha256:c06331ed0ba69e2ae128d39e97915643661e7a69991a5831ff6c24e4379a7e3d
  exporter_repository: quay.io/prometheus/node-exporter
  exporter_tag: v1.8.2
  chartRepository: bitnami/nginx
  chartVersion: 18.1.0
  gitRepository: https://github.com/acme/app
  gitVersion: v1.0.0
  backupRepository: s3
  backupVersion: "2"
"#,
        images: &[
            "docker.io/scylladb/scylla-manager-agent:3.12.0@sha256:c06331ed0ba69e2ae128d39e97915643661e7a69991a5831ff6c24e4379a7e3d",
            "quay.io/prometheus/node-exporter:v1.8.2",
        ],
        repositories: &[],
        gone: &["agentRepository: scylladb", "exporter_repository: quay.io"],
        lines: &[
            "agentRepository: reg.local:5000/docker.io/scylladb/scylla-manager-agent",
            "agentVersion: 3.12.0@sha256:c06331ed0ba69e2ae128d39e97915643661e7a69991a5831ff6c24e4379a7e3d",
            "exporter_repository: reg.local:5000/quay.io/prometheus/node-exporter",
            "exporter_tag: v1.8.2",
        ],
        kept: &[
            "chartRepository: bitnami/nginx",
            "chartVersion: 18.1.0",
            "gitRepository: https://github.com/acme/app",
            "backupRepository: s3",
        ],
    });
}

/// An operator Deployment whose env names its default repository, and whose pod annotations
/// name one image per Istio-style version and component.
const JOINING_OPERATORS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: mysql-operator
spec:
  template:
    spec:
      containers:
        - name: mysql-operator
          image: container-registry.oracle.com/mysql/community-operator:9.1.0-2.2.2
          env:
            - name: MYSQL_OPERATOR_DEFAULT_REPOSITORY
              value: container-registry.oracle.com/mysql
            - name: MYSQL_OPERATOR_DEBUG
              value: "1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sail-operator
spec:
  template:
    metadata:
      annotations:
        images.v1_30_3.istiod: registry.istio.io/release/pilot:1.30.3
        images.v1_30_3.cni: registry.istio.io/release/install-cni:1.30.3
        images.v1_29_0.istiod: registry.istio.io/release/pilot:1.29.0
        images.v1_31_0-beta_1.istiod: registry.istio.io/release/pilot:1.31.0-beta.1
        kubectl.kubernetes.io/default-container: sail-operator
    spec:
      containers:
        - name: sail-operator
          image: quay.io/sail-dev/sail-operator:1.31-latest
"#;

#[test]
fn images_joined_across_objects_are_listed_for_the_versions_resources_ask_for() {
    // mysql-operator: MYSQL_OPERATOR_DEFAULT_REPOSITORY + "/community-server:" + each
    // InnoDBCluster's spec.version (and the router). sail-operator: the annotations of the
    // versions and components each Istio/IstioCNI asks for. Every annotation is rewritten (a
    // resource made later may ask for any version); only the asked-for ones are listed.
    let resources = r#"---
apiVersion: mysql.oracle.com/v2
kind: InnoDBCluster
metadata:
  name: mycluster
spec:
  version: 9.1.0
---
apiVersion: sailoperator.io/v1
kind: Istio
metadata:
  name: default
spec:
  version: v1.30.3
---
apiVersion: sailoperator.io/v1
kind: IstioCNI
metadata:
  name: default
spec:
  version: v1.30.3
"#;
    let manifest = format!("{JOINING_OPERATORS}{resources}");
    let report = check(Case {
        manifest: &manifest,
        images: &[
            "container-registry.oracle.com/mysql/community-operator:9.1.0-2.2.2",
            "container-registry.oracle.com/mysql/community-router:9.1.0",
            "container-registry.oracle.com/mysql/community-server:9.1.0",
            "quay.io/sail-dev/sail-operator:1.31-latest",
            "registry.istio.io/release/install-cni:1.30.3",
            "registry.istio.io/release/pilot:1.30.3",
        ],
        repositories: &[],
        gone: &[
            "value: container-registry.oracle.com",
            ": registry.istio.io/release/pilot:1.29.0",
            ": registry.istio.io/release/pilot:1.31.0-beta.1",
        ],
        lines: &[
            "value: reg.local:5000/container-registry.oracle.com/mysql",
            "images.v1_29_0.istiod: reg.local:5000/registry.istio.io/release/pilot:1.29.0",
            "version: 9.1.0",
            "version: v1.30.3",
        ],
        kept: &[
            "value: \"1\"",
            "kubectl.kubernetes.io/default-container: sail-operator",
        ],
    });
    let text = report.to_string();
    assert!(text.contains("mysql-operator/split/join"), "{report:#}");
    assert!(text.contains("sail-operator"), "{report:#}");

    // Without a resource asking for a version, the repository is listed as one and every
    // annotation as an image.
    let (images, repositories, report) = listed(JOINING_OPERATORS);
    assert_eq!(
        repositories,
        ["container-registry.oracle.com/mysql"],
        "{report:#}"
    );
    for image in [
        "registry.istio.io/release/pilot:1.29.0",
        "registry.istio.io/release/pilot:1.31.0-beta.1",
        "registry.istio.io/release/install-cni:1.30.3",
    ] {
        assert!(images.iter().any(|i| i == image), "{image}: {report:#}");
    }
}

#[test]
fn crd_schema_defaults_that_name_images_are_rewritten_but_not_listed() {
    // What the API server fills in for a resource that omits the field (Zalando's
    // `docker_image`, Scylla's `repository`): rewritten so that such a resource pulls from the
    // mirror, but no resource of the input pulls it, so nothing is listed. Defaults at other
    // properties, short names and chart repositories stay.
    check(Case {
        manifest: r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusters.example.com
spec:
  group: example.com
  names:
    kind: Cluster
  versions:
    - name: v1
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                docker_image:
                  type: string
                  default: ghcr.io/zalando/spilo-18:4.1-p2
                repository:
                  type: string
                  default: docker.io/scylladb/scylla
                agentRepository:
                  type: string
                  default: docker.io/scylladb/scylla-manager-agent
                sidecarImage:
                  type: string
                  default: busybox
                chartRepository:
                  type: string
                  default: charts.example.com/stable
                topologyKey:
                  type: string
                  default: kubernetes.io/hostname
                imagePullPolicy:
                  type: string
                  default: IfNotPresent
                exporter:
                  type: object
                  description: The exporter, for example quay.io/prometheus/node-exporter:v1.8.2.
"#,
        images: &[],
        repositories: &[],
        gone: &[
            "default: ghcr.io",
            "default: docker.io/scylladb/scylla",
            "default: docker.io/scylladb/scylla-manager-agent",
        ],
        lines: &[
            "default: reg.local:5000/ghcr.io/zalando/spilo-18:4.1-p2",
            "default: reg.local:5000/docker.io/scylladb/scylla",
            "default: reg.local:5000/docker.io/scylladb/scylla-manager-agent",
        ],
        kept: &[
            "default: busybox",
            "default: charts.example.com/stable",
            "default: kubernetes.io/hostname",
            "default: IfNotPresent",
            "description: The exporter, for example quay.io/prometheus/node-exporter:v1.8.2.",
        ],
    });
}

#[test]
fn bare_short_names_in_custom_resource_containers_and_image_env() {
    check(Case {
        manifest: r#"apiVersion: example.com/v1
kind: Database
metadata:
  name: db
spec:
  initContainers:
    - name: wait
      image: busybox
      env:
        - name: SIDECAR_IMAGE
          value: alpine
        - name: MODE
          value: fast
  containers:
    - name: main
      image: postgres:17
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: operator
spec:
  template:
    spec:
      containers:
        - name: operator
          image: ghcr.io/acme/operator:v1
          env:
            - name: DEFAULT_SIDECAR_IMAGE
              value: busybox
            - name: USE_SIDECAR_IMAGE
              value: "false"
"#,
        images: &[
            "docker.io/library/alpine",
            "docker.io/library/busybox",
            "docker.io/library/postgres:17",
            "ghcr.io/acme/operator:v1",
        ],
        repositories: &[],
        gone: &["image: busybox", "value: busybox", "value: alpine"],
        lines: &[
            "image: reg.local:5000/docker.io/library/busybox",
            "value: reg.local:5000/docker.io/library/alpine",
        ],
        kept: &["value: fast", "value: \"false\""],
    });
}

#[test]
fn suspects_read_long_strings_and_skip_crd_descriptions() {
    let filler = "a word and another, ".repeat(450);
    let manifest = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: big
data:
  notes: "{filler} then quay.io/acme/hidden:v2 at the end"
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.com
spec:
  group: example.com
  names: {{kind: Thing, plural: things}}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            image:
              type: string
              description: "The image, for example quay.io/acme/example:v1.0"
"#
    );
    assert!(manifest.len() > 8192);
    let (_, _, report) = listed(&manifest);
    let suspects: Vec<&str> = report["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert_eq!(suspects, ["quay.io/acme/hidden:v2"], "{report:#}");
}
