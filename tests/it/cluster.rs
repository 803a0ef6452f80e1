//! `check --cluster` and `pull-secret` against a stand-in Kubernetes API server (none can be
//! installed here; see tests/common/kube_api.rs for what it answers) and a real
//! `docker-registry` as the mirror, verified with skopeo.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::kube_api::{self, Stalled, StandIn, State};
use common::registry::{Layout, PASSWORD, TestRegistry, USER};
use common::{airgap, stdout_of_success};
use serde_json::{Value, json};

/// A mirror with three images, and a cluster of three namespaces that uses them and others.
struct Scene {
    mirror: TestRegistry,
    api: StandIn,
    kubeconfig: PathBuf,
    /// Digest of `docker.io/acme/web:2.0` in the mirror.
    web2: String,
    _dir: tempfile::TempDir,
}

fn scene(cluster_wide_forbidden: bool) -> Scene {
    let mirror = TestRegistry::plain();
    let m = mirror.host();
    let web2 = Layout::single(11);
    mirror.push(web2.dir.path(), "docker.io/acme/web", "2.0");
    mirror.push(Layout::single(12).dir.path(), "docker.io/acme/web", "1.0");
    mirror.push(
        Layout::single(13).dir.path(),
        "docker.io/acme/sidecar",
        "0.3",
    );
    let (web, sidecar) = (
        format!("{m}/docker.io/acme/web:2.0"),
        format!("{m}/docker.io/acme/sidecar:0.3"),
    );
    let d2 = &web2.digest;
    let bogus = format!("sha256:{}", "e".repeat(64));
    let web_spec = json!({"initContainers": [{"name": "init", "image": sidecar}],
        "containers": [{"name": "web", "image": web}]});

    let mut objects: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let mut put = |plural: &str, ns: &str, v: Value| {
        objects
            .entry((plural.into(), ns.into()))
            .or_default()
            .push(v)
    };
    use kube_api::*;
    // shop: a Deployment rolled over to the mirror while old Pods still run the upstream image.
    put(
        "deployments",
        "shop",
        replicated("shop", "web", web_spec.clone()),
    );
    put("replicasets", "shop", replicated("shop", "web-2", web_spec));
    put(
        "replicasets",
        "shop",
        replicated("shop", "web-1", spec(&["docker.io/acme/web:1.0"])),
    );
    for p in ["web-2-a", "web-2-b"] {
        let ran = format!("{m}/docker.io/acme/web@{d2}");
        put("pods", "shop", pod("shop", p, &[&web], &[(&web, &ran)]));
    }
    // Pulled by its upstream name (a node-level registry mirror): the status says so.
    let upstream = format!("docker.io/acme/web@{d2}");
    put(
        "pods",
        "shop",
        pod("shop", "web-2-c", &[&web], &[(&web, &upstream)]),
    );
    for p in ["web-1-a", "web-1-b"] {
        let id = format!(
            "docker-pullable://docker.io/acme/web@{}",
            "sha256:".to_string() + &"1".repeat(64)
        );
        put(
            "pods",
            "shop",
            pod(
                "shop",
                p,
                &["docker.io/acme/web:1.0"],
                &[("docker.io/acme/web:1.0", &id)],
            ),
        );
    }
    // tools: every other kind and place an image can be.
    put(
        "cronjobs",
        "tools",
        cron_job(
            "tools",
            "cleanup",
            spec(&["docker.io/library/busybox:1.36"]),
        ),
    );
    put(
        "jobs",
        "tools",
        job(
            "tools",
            "migrate",
            json!({"restartPolicy": "Never", "initContainers": [{"name": "i", "image": sidecar}],
                "containers": [{"name": "m", "image": format!("{m}/docker.io/acme/migrate:1")}]}),
        ),
    );
    put(
        "statefulsets",
        "tools",
        stateful_set(
            "tools",
            "db",
            spec(&[&format!("{m}/docker.io/library/postgres:16")]),
        ),
    );
    put(
        "daemonsets",
        "tools",
        daemon_set(
            "tools",
            "agent",
            json!({"containers": [{"name": "a", "image": sidecar}],
                "volumes": [{"name": "models", "image": {"reference": "ghcr.io/acme/models:v1", "pullPolicy": "IfNotPresent"}}]}),
        ),
    );
    put(
        "replicationcontrollers",
        "tools",
        replication_controller("tools", "legacy", spec(&["nginx:1.0"])),
    );
    let mut debug = pod(
        "tools",
        "debug-me",
        &[&sidecar],
        &[(&sidecar, &format!("quay.io/acme/sidecar@{bogus}"))],
    );
    debug["spec"]["ephemeralContainers"] =
        json!([{"name": "dbg", "image": "quay.io/acme/debug:1"}]);
    put("pods", "tools", debug);
    // secret-team: the viewer may not look.
    put(
        "deployments",
        "secret-team",
        replicated("secret-team", "vault", spec(&["docker.io/acme/vault:1"])),
    );

    let api = StandIn::start(State {
        objects,
        namespaces: ["shop", "tools", "secret-team"].map(String::from).into(),
        forbidden_namespaces: ["secret-team".to_string()].into(),
        cluster_wide_forbidden,
        page_size: 2,
        expire_once: [("pods".to_string(), "shop".to_string())].into(),
        ..State::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube_api::kubeconfig(dir.path(), &api.url(), &api.ca);
    Scene {
        mirror,
        api,
        kubeconfig,
        web2: web2.digest,
        _dir: dir,
    }
}

impl Scene {
    fn check(&self, extra: &[&str]) -> assert_cmd::Command {
        let host = self.mirror.host();
        let mut c = airgap();
        c.args(["check", "--registry", &host, "--insecure-registry", &host])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "standin"])
            .args(extra);
        c
    }

    fn json(&self, extra: &[&str]) -> (i32, Value, String) {
        let out = self.check(extra).args(["-o", "json"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{stderr}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code().unwrap(), json, stderr)
    }
}

/// mirror reference → (status, pointsAtMirror, ["Kind ns/name path"...]).
fn verdicts(report: &Value) -> BTreeMap<String, (String, bool, Vec<String>)> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let uses = i["usedBy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| {
                    format!(
                        "{} {}/{} {}{}",
                        u["kind"].as_str().unwrap(),
                        u["namespace"].as_str().unwrap(),
                        u["name"].as_str().unwrap(),
                        u["path"].as_str().unwrap(),
                        if u["ran"] == json!(true) {
                            " (ran)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            (
                i["mirror"].as_str().unwrap().to_string(),
                (
                    i["status"].as_str().unwrap().to_string(),
                    i["pointsAtMirror"].as_bool().unwrap(),
                    uses,
                ),
            )
        })
        .collect()
}

#[test]
fn check_cluster_reads_pods_templates_and_what_ran_with_paging_and_forbidden_namespaces() {
    let s = scene(false);
    let m = s.mirror.host();
    let (code, report, stderr) = s.json(&["--cluster", "-n", "shop,tools,secret-team"]);
    assert_eq!(code, 1, "missing images make exit 1: {stderr}");
    let v = verdicts(&report);
    let want = |r: &str, status: &str, at_mirror: bool| {
        let got = v
            .get(r)
            .unwrap_or_else(|| panic!("{r} not reported: {v:#?}"));
        assert_eq!((got.0.as_str(), got.1), (status, at_mirror), "{r}");
        got.2.clone()
    };
    let web = want(&format!("{m}/docker.io/acme/web:2.0"), "present", true);
    assert_eq!(
        web,
        [
            "Pod shop/web-2-a spec.containers[0].image",
            "Pod shop/web-2-b spec.containers[0].image",
            "Pod shop/web-2-c spec.containers[0].image",
            "Deployment shop/web spec.template.spec.containers[0].image",
            "ReplicaSet shop/web-2 spec.template.spec.containers[0].image",
        ]
    );
    let sidecar = want(&format!("{m}/docker.io/acme/sidecar:0.3"), "present", true);
    assert!(
        sidecar.contains(
            &"Deployment shop/web spec.template.spec.initContainers[0].image".to_string()
        )
    );
    assert!(
        sidecar
            .contains(&"Job tools/migrate spec.template.spec.initContainers[0].image".to_string())
    );
    assert!(
        sidecar
            .contains(&"DaemonSet tools/agent spec.template.spec.containers[0].image".to_string())
    );
    // The old ReplicaSet and its Pods disagree with the Deployment: they run the upstream name.
    let old = want(&format!("{m}/docker.io/acme/web:1.0"), "present", false);
    assert_eq!(
        old,
        [
            "Pod shop/web-1-a spec.containers[0].image",
            "Pod shop/web-1-b spec.containers[0].image",
            "ReplicaSet shop/web-1 spec.template.spec.containers[0].image",
        ]
    );
    // What a Pod ran by another name than its spec is checked too, by digest.
    let ran = want(
        &format!("{m}/docker.io/acme/web@{}", s.web2),
        "present",
        false,
    );
    assert_eq!(
        ran,
        ["Pod shop/web-2-c status.containerStatuses[0].imageID (ran)"]
    );
    let bogus = format!("sha256:{}", "e".repeat(64));
    want(
        &format!("{m}/quay.io/acme/sidecar@{bogus}"),
        "missing",
        false,
    );
    // Every other kind and place.
    assert_eq!(
        want(
            &format!("{m}/docker.io/library/busybox:1.36"),
            "missing",
            false
        ),
        ["CronJob tools/cleanup spec.jobTemplate.spec.template.spec.containers[0].image"]
    );
    want(&format!("{m}/docker.io/acme/migrate:1"), "missing", true);
    want(
        &format!("{m}/docker.io/library/postgres:16"),
        "missing",
        true,
    );
    assert_eq!(
        want(&format!("{m}/ghcr.io/acme/models:v1"), "missing", false),
        ["DaemonSet tools/agent spec.template.spec.volumes[0].image.reference"]
    );
    assert_eq!(
        want(
            &format!("{m}/docker.io/library/nginx:1.0"),
            "missing",
            false
        ),
        ["ReplicationController tools/legacy spec.template.spec.containers[0].image"]
    );
    assert_eq!(
        want(&format!("{m}/quay.io/acme/debug:1"), "missing", false),
        ["Pod tools/debug-me spec.ephemeralContainers[0].image"]
    );
    assert_eq!(v.len(), 11, "{v:#?}");
    assert_eq!(report["summary"]["outsideMirror"], 7);
    assert_eq!(report["summary"]["missing"], 7);

    // The forbidden namespace is reported, kind by kind, and the rest was still read.
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 8, "{unreadable:#?}");
    assert!(unreadable.iter().all(|u| u["namespace"] == "secret-team"
        && u["reason"].as_str().unwrap().contains("forbidden (403)")));
    assert!(
        stderr.contains("could not read Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob in namespace secret-team"),
        "{stderr}"
    );
    assert!(!report.to_string().contains("acme/vault"));

    // Paging: 5 Pods in pages of 2; the first continue token expired, so the list started over.
    let shop_pods: Vec<String> = s
        .api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /api/v1/namespaces/shop/pods"))
        .collect();
    assert_eq!(
        shop_pods.len(),
        5,
        "first page, expired continue, then 3 pages: {shop_pods:#?}"
    );
    assert!(shop_pods.iter().all(|r| r.contains("limit=500")));
    assert_eq!(
        shop_pods.iter().filter(|r| r.contains("continue=")).count(),
        3
    );
    assert!(stderr.contains("1 list(s) started again"), "{stderr}");
}

#[test]
fn all_namespaces_reads_cluster_wide_or_namespace_by_namespace_when_that_is_forbidden() {
    // Cluster-wide lists allowed: one list per kind, every namespace's objects.
    let s = scene(false);
    let (code, report, stderr) = s.json(&["--cluster", "-A"]);
    assert_eq!(code, 1, "{stderr}");
    let v = verdicts(&report);
    assert!(
        v.keys().any(|k| k.ends_with("docker.io/acme/vault:1")),
        "{v:#?}"
    );
    assert!(report.get("unreadable").is_none());
    let requests = s.api.requests();
    assert!(
        requests.iter().all(|r| !r.contains("/namespaces/")),
        "{requests:#?}"
    );

    // Cluster-wide lists forbidden: the namespaces are listed and read one by one.
    let s = scene(true);
    let (code, report, stderr) = s.json(&["--cluster", "-A"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(verdicts(&report).len(), 11);
    assert_eq!(report["unreadable"].as_array().unwrap().len(), 8);
    let requests = s.api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces?"))
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /apis/batch/v1/namespaces/tools/cronjobs"))
    );
}

#[test]
fn exit_codes_context_namespace_table_and_credentials() {
    let s = scene(false);
    let m = s.mirror.host();
    // No -n: the context's namespace (shop), where everything is in the mirror.
    let out = s.check(&["--cluster"]).output().unwrap();
    let table = stdout_of_success(&out);
    assert!(
        table.contains(&format!("{m}/docker.io/acme/web:1.0"))
            && table
                .contains("cluster names it outside the mirror; used by Pod shop/web-1-a +2 more"),
        "{table}"
    );
    assert!(
        table.contains(
            "4 images: 4 present, 0 missing, 0 mismatched, 0 errors, 2 named outside the mirror"
        ),
        "{table}"
    );
    // KUBECONFIG and --cluster=NAME pick the same cluster as --kubeconfig and --context.
    let host = s.mirror.host();
    let out = airgap()
        .args(["check", "--registry", &host, "--insecure-registry", &host])
        .args(["--cluster=standin", "-n", "shop"])
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(stdout_of_success(&out), table);
    // Nothing readable is an error, not a clean cluster.
    let out = s
        .check(&["--cluster", "-n", "secret-team"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nothing could be read from the cluster"),
        "{stderr}"
    );
    assert!(stderr.contains("forbidden (403)"), "{stderr}");
    // A user the server does not know.
    let out = s
        .check(&["--cluster", "--user", "nobody"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("401 Unauthorized"), "{stderr}");
    assert!(!stderr.contains("wrong-token") && !stderr.contains(kube_api::TOKEN));
    // -n without --cluster is a usage error.
    let out = s
        .check(&["-n", "shop", "-f", "-"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --cluster"));
}

#[test]
fn an_unreachable_api_server_fails_within_the_request_timeout() {
    let s = scene(false);
    let stalled = Stalled::start();
    let dir = tempfile::tempdir().unwrap();
    let hanging = kube_api::kubeconfig(
        dir.path(),
        &format!("https://127.0.0.1:{}", stalled.port),
        &s.api.ca,
    );
    let host = s.mirror.host();
    let started = Instant::now();
    let out = airgap()
        .args(["check", "--registry", &host, "--insecure-registry", &host])
        .args([
            "--cluster",
            "--context",
            "standin",
            "--request-timeout",
            "2s",
        ])
        .arg("--kubeconfig")
        .arg(&hanging)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert!(stderr.contains("within 2s (--request-timeout)"), "{stderr}");
    // A closed port: the current context of the kubeconfig.
    let started = Instant::now();
    let out = airgap()
        .args([
            "check",
            "--registry",
            &host,
            "--insecure-registry",
            &host,
            "--cluster",
        ])
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    // Plain http://: like kubectl, no bearer token in clear text.
    assert!(stderr.contains("credentials are not sent"), "{stderr}");
}

/// A Docker config holding the htpasswd mirror's login.
fn docker_config(dir: &std::path::Path, host: &str) -> PathBuf {
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    docker
}

/// An htpasswd mirror, the Docker config that logs in to it, and a stand-in cluster of shop,
/// tools and secret-team (forbidden), for `pull-secret`.
struct SecretScene {
    mirror: TestRegistry,
    api: StandIn,
    kubeconfig: PathBuf,
    docker: PathBuf,
    /// Holds the kubeconfig and Docker config; tests may add files.
    dir: tempfile::TempDir,
}

impl SecretScene {
    /// `state` holds the objects and misbehaviour; the namespaces are set here.
    fn new(state: State) -> SecretScene {
        let mirror = TestRegistry::htpasswd();
        let api = StandIn::start(State {
            namespaces: ["shop", "tools", "secret-team"].map(String::from).into(),
            forbidden_namespaces: ["secret-team".to_string()].into(),
            page_size: 2,
            ..state
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = kube_api::kubeconfig(dir.path(), &api.url(), &api.ca);
        let docker = docker_config(dir.path(), &mirror.host());
        SecretScene {
            mirror,
            api,
            kubeconfig,
            docker,
            dir,
        }
    }

    /// `pull-secret mirror-pull --registry MIRROR ARGS` against the stand-in.
    fn run(&self, args: &[&str]) -> std::process::Output {
        airgap()
            .args([
                "pull-secret",
                "mirror-pull",
                "--registry",
                &self.mirror.host(),
            ])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "standin"])
            .args(args)
            .env("DOCKER_CONFIG", &self.docker)
            .output()
            .unwrap()
    }
}

fn assert_no_secret(text: &str) {
    let auth = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert!(
        !text.contains(PASSWORD) && !text.contains(&auth),
        "credentials leaked: {text}"
    );
    assert!(!text.contains(&STANDARD.encode(PASSWORD)));
}

#[test]
fn pull_secret_writes_a_dockerconfigjson_the_mirror_accepts() {
    let scene = SecretScene::new(State::default());
    let (api, host, dir) = (&scene.api, scene.mirror.host(), scene.dir.path());
    scene
        .mirror
        .push(Layout::single(21).dir.path(), "docker.io/acme/web", "2.0");
    let run = |args: &[&str]| {
        let out = scene.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap(), out.stdout, text)
    };

    let (code, _, text) = run(&["-n", "shop,tools"]);
    assert_eq!(code, 0, "{text}");
    assert_no_secret(&text);
    assert!(
        text.contains("secret/mirror-pull applied in namespace tools"),
        "{text}"
    );
    let applied = api.state.lock().unwrap().applied.clone();
    assert_eq!(applied.len(), 2);
    for ((ns, name), (query, content_type, body)) in &applied {
        assert_eq!(name, "mirror-pull");
        assert!(query.contains("fieldManager=kubectl-airgap") && query.contains("force=true"));
        assert_eq!(content_type, "application/apply-patch+yaml");
        assert_eq!(body["kind"], "Secret");
        assert_eq!(body["metadata"]["namespace"], ns.as_str());
        assert_eq!(body["type"], "kubernetes.io/dockerconfigjson");
        let config = STANDARD
            .decode(body["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let config: Value = serde_json::from_slice(&config).unwrap();
        let entry = &config["auths"][host.as_str()];
        assert_eq!(entry["username"], USER);
        assert_eq!(entry["password"], PASSWORD);
        assert_eq!(
            STANDARD.decode(entry["auth"].as_str().unwrap()).unwrap(),
            format!("{USER}:{PASSWORD}").as_bytes()
        );
        // The kubelet's format is also skopeo's auth file: the mirror accepts it.
        let authfile = dir.join(format!("{ns}.json"));
        std::fs::write(&authfile, serde_json::to_vec(&config).unwrap()).unwrap();
        let inspect = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
            .arg(&authfile)
            .arg(format!("docker://{host}/docker.io/acme/web:2.0"))
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
    }

    // A forbidden namespace fails alone; the others are still written.
    api.state.lock().unwrap().applied.clear();
    let (code, _, text) = run(&["-A"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("secret/mirror-pull in namespace secret-team: forbidden (403)"),
        "{text}"
    );
    assert_eq!(api.state.lock().unwrap().applied.len(), 2);

    // A dry run sends nothing; its -o yaml prints the Secret, credentials included, on request.
    api.state.lock().unwrap().applied.clear();
    let (code, stdout, text) = run(&["-n", "shop", "--dry-run", "-o", "yaml"]);
    assert_eq!(code, 0, "{text}");
    assert!(api.state.lock().unwrap().applied.is_empty());
    let docs = yaml_rust2::YamlLoader::load_from_str(&String::from_utf8(stdout).unwrap()).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["type"].as_str(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let config = STANDARD
        .decode(docs[0]["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(config).unwrap().contains(PASSWORD));
    let (code, _, text) = run(&["-n", "shop", "--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert_no_secret(&text);
    assert!(text.contains("would be applied in namespace shop (dry run)"));

    // A Secret of that name and another type is there: the API will not change a type.
    api.state
        .lock()
        .unwrap()
        .secret_types
        .insert(("shop".into(), "mirror-pull".into()), "Opaque".into());
    let (code, _, text) = run(&["-n", "shop"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("field is immutable"), "{text}");
    assert!(
        text.contains("delete it (`kubectl delete secret mirror-pull -n shop`)"),
        "{text}"
    );

    // No credentials for the mirror: say how to get some.
    let out = airgap()
        .args([
            "pull-secret",
            "mirror-pull",
            "--registry",
            &host,
            "-n",
            "shop",
            "--dry-run",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains(&format!("docker login {host}")), "{stderr}");
}

/// kubectl itself, a second client, reads the stand-in: its lists, pages and 410 are shaped as
/// client-go expects, and it sees the objects `check --cluster` reports.
#[test]
fn kubectl_reads_the_stand_in_as_it_reads_a_cluster() {
    let kubectl = common::registry::require_tool("kubectl");
    let s = scene(false);
    let cache = tempfile::tempdir().unwrap();
    let kubectl_get = |args: &[&str]| {
        std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(["--context", "standin", "--cache-dir"])
            .arg(cache.path())
            .args(["get", "--chunk-size=2", "-o", "json"])
            .args(args)
            .output()
            .unwrap()
    };
    let get = |args: &[&str]| {
        let out = kubectl_get(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut objects: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i["kind"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        objects.sort();
        objects
    };
    // client-go reads the stand-in's 410 as the API's `Expired` (kubectl get gives up where
    // check --cluster starts the list again) ...
    let out = kubectl_get(&["pods", "-n", "shop"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error from server (Expired)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and pages through the Pods of shop two by two.
    let pods = get(&["pods", "-n", "shop"]);
    assert_eq!(
        pods,
        [
            "Pod web-1-a",
            "Pod web-1-b",
            "Pod web-2-a",
            "Pod web-2-b",
            "Pod web-2-c"
        ]
    );
    let continued = s
        .api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/namespaces/shop/pods") && r.contains("continue="))
        .count();
    assert_eq!(continued, 3, "one expired, then two more pages");
    // Every kind of tools, as kubectl decodes them, is what check --cluster names.
    let kinds =
        "pods,deployments,statefulsets,daemonsets,replicasets,replicationcontrollers,jobs,cronjobs";
    let seen = get(&[kinds, "-n", "tools"]);
    let (_, report, _) = s.json(&["--cluster", "-n", "tools"]);
    let mut reported: Vec<String> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["usedBy"].as_array().unwrap().clone())
        .map(|u| {
            format!(
                "{} {}",
                u["kind"].as_str().unwrap(),
                u["name"].as_str().unwrap()
            )
        })
        .collect();
    reported.sort();
    reported.dedup();
    assert_eq!(seen, reported);
    assert_eq!(seen.len(), 6, "{seen:?}");
}

/// `--service-account`: the Secret joins each ServiceAccount's list, keeping what others put
/// there, including a Secret written between our read and our patch.
#[test]
fn pull_secret_lists_the_secret_in_service_accounts_without_dropping_others() {
    use kube_api::service_account;
    let mut objects: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let key = |ns: &str| ("serviceaccounts".to_string(), ns.to_string());
    objects.insert(
        key("shop"),
        vec![
            service_account("shop", "default", &["theirs"]),
            service_account("shop", "builder", &[]),
        ],
    );
    objects.insert(
        key("tools"),
        vec![service_account("tools", "default", &["mirror-pull"])],
    );
    let scene = SecretScene::new(State {
        objects,
        conflict_once: [("shop".to_string(), "default".to_string())].into(),
        ..State::default()
    });
    let api = &scene.api;
    let run = |args: &[&str]| {
        let out = scene.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_no_secret(&stdout);
        assert_no_secret(&stderr);
        (out.status.code().unwrap(), stdout, stderr)
    };
    let secrets_of = |ns: &str, name: &str| -> Vec<String> {
        let st = api.state.lock().unwrap();
        let account = st.objects[&key(ns)]
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap();
        account["imagePullSecrets"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|s| s["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };

    // A dry run says what it would do and sends nothing.
    let (code, stdout, stderr) = run(&["-n", "shop", "--service-account", "default", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .contains("serviceaccount/default in namespace shop would list mirror-pull (dry run)"),
        "{stdout}"
    );
    assert!(api.requests().is_empty());

    let (code, stdout, stderr) = run(&[
        "-n",
        "shop,tools,secret-team",
        "--service-account",
        "default",
        "--serviceaccount",
        "builder",
    ]);
    // secret-team refuses the Secret, tools has no builder: exit 2, the rest done.
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert_eq!(
        secrets_of("shop", "default"),
        ["theirs", "written-meanwhile", "mirror-pull"],
        "the Secret written between read and patch is kept"
    );
    assert_eq!(secrets_of("shop", "builder"), ["mirror-pull"]);
    assert_eq!(secrets_of("tools", "default"), ["mirror-pull"]);
    for line in [
        "serviceaccount/default in namespace shop now lists mirror-pull",
        "serviceaccount/builder in namespace shop now lists mirror-pull",
        "serviceaccount/default in namespace tools already lists mirror-pull",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(
        stderr.contains("error: serviceaccount/builder in namespace tools: the API server answered 404 NotFound: serviceaccounts \"builder\" not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("secret/mirror-pull in namespace secret-team: forbidden (403)"),
        "{stderr}"
    );
    let requests = api.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("/namespaces/secret-team/serviceaccounts")),
        "no ServiceAccount is touched where the Secret could not be written: {requests:#?}"
    );
    let patched = api.state.lock().unwrap().patched.clone();
    let targets: Vec<&str> = patched.iter().map(|(t, ..)| t.as_str()).collect();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(targets.contains(&"shop/default") && targets.contains(&"shop/builder"));
    for (_, query, content_type, body) in &patched {
        assert!(query.contains("fieldManager=kubectl-airgap"), "{query}");
        assert_eq!(content_type, "application/merge-patch+json");
        assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    }
    // shop/default: read, 409, read again, patched.
    let shop_default = requests
        .iter()
        .filter(|r| r.contains("/namespaces/shop/serviceaccounts/default"))
        .map(|r| r.split(' ').next().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(shop_default, ["GET", "PATCH", "GET", "PATCH"]);

    // A second run finds every list done and writes no ServiceAccount.
    let (code, stdout, stderr) = run(&["-n", "shop", "--service-account", "default,builder"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("serviceaccount/builder in namespace shop already lists mirror-pull"),
        "{stdout}"
    );
    assert_eq!(api.state.lock().unwrap().patched.len(), 2);
    assert_eq!(
        secrets_of("shop", "default"),
        ["theirs", "written-meanwhile", "mirror-pull"]
    );

    // A name Kubernetes would refuse is refused before anything is sent.
    let before = api.requests().len();
    let (code, _, stderr) = run(&["-n", "shop", "--service-account", "Default"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("not a valid ServiceAccount name"),
        "{stderr}"
    );
    assert_eq!(api.requests().len(), before);
}

/// Clusters that log in through an exec plugin (kubelogin for OIDC, cloud CLIs): the plugin's
/// `ExecCredential` token is used, and a plugin that fails says so without its output's token.
#[test]
fn exec_credential_plugins_log_in_as_kubectl_does() {
    let s = scene(false);
    let dir = tempfile::tempdir().unwrap();
    let plugin = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let good = plugin(
        "login-ok",
        &format!(
            r#"[ "$1" = "get-token" ] || exit 3
printf '%s' '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{}"}}}}'"#,
            kube_api::TOKEN
        ),
    );
    let bad = plugin(
        "login-expired",
        "printf '{\"status\": {\"token\": \"half-written-token'\necho 'error: the refresh token has expired; run kubelogin again' >&2\nexit 1",
    );
    let kubeconfig = dir.path().join("kubeconfig");
    let user = |name: &str, command: &std::path::Path| {
        format!(
            "- name: {name}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: [get-token, --oidc-client-secret=client-s3cret]\n      interactiveMode: Never\n",
            command.display()
        )
    };
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n{}{}contexts:\n- name: oidc\n  context: {{cluster: standin, user: oidc, namespace: shop}}\ncurrent-context: oidc\n",
            s.api.url(),
            s.api.ca.display(),
            user("oidc", &good),
            user("expired", &bad),
        ),
    )
    .unwrap();
    let host = s.mirror.host();
    let check = |extra: &[&str]| {
        airgap()
            .args(["check", "--registry", &host, "--insecure-registry", &host])
            .args(["--cluster", "-o", "json"])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["present"], 4, "{report}");
    assert!(
        s.api
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/shop/pods")),
        "the stand-in answered only with the plugin's token"
    );
    let out = check(&["--user", "expired"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the refresh token has expired"),
        "the plugin's own words reach the user: {stderr}"
    );
    // Neither the command line (kubelogin takes its client secret there) nor the stdout (where
    // a token would be) is quoted.
    assert!(
        !stderr.contains("client-s3cret") && !stderr.contains("half-written-token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exec credential plugin failed (exit status: 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains(kube_api::TOKEN));
}

/// kube quotes the lines around a YAML fault, and a kubeconfig's lines hold tokens and keys:
/// the error names the file, line and column, and quotes nothing.
#[test]
fn a_broken_kubeconfig_is_named_by_line_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {}\n    password: [unclosed\ncontexts: []\n",
            kube_api::TOKEN
        ),
    )
    .unwrap();
    let runs = [
        airgap()
            .args(["check", "--cluster", "--registry", "r.local:5000"])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .unwrap(),
        airgap()
            .args(["check", "--cluster", "--registry", "r.local:5000"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap(),
        airgap()
            .args(["pull-secret", "p", "-n", "a", "--registry", "r.local:5000"])
            .args(["--username", "u", "--password-stdin"])
            .env("KUBECONFIG", &kubeconfig)
            .write_stdin("pw\n")
            .output()
            .unwrap(),
    ];
    for out in runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&kubeconfig.display().to_string())
                && stderr.contains("not valid YAML")
                && stderr.contains("line 7, column 15"),
            "{stderr}"
        );
        assert!(!stderr.contains(kube_api::TOKEN), "{stderr}");
    }
}

/// Custom resources are read as `post-render` rewrites them: through the rule pack, after API
/// discovery says their kind is served. An Alertmanager's `spec.image` (in the mirror, and not)
/// and its extra container are checked and named by field; Workflows, whose discovery is
/// forbidden, are reported as unreadable; kinds no CRD serves are not asked for.
#[test]
fn check_cluster_reads_custom_resources_through_the_rule_pack() {
    use kube_api::{ALERTMANAGER, Crd, WORKFLOW, alertmanager};
    let mirror = TestRegistry::plain();
    let m = mirror.host();
    mirror.push(
        Layout::single(31).dir.path(),
        "quay.io/prometheus/alertmanager",
        "v0.27.0",
    );
    let mut objects: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let key = ("alertmanagers".to_string(), "monitoring".to_string());
    objects.insert(
        key,
        vec![
            alertmanager(
                "monitoring",
                "main",
                &format!("{m}/quay.io/prometheus/alertmanager:v0.27.0"),
                &[],
            ),
            alertmanager(
                "monitoring",
                "edge",
                "quay.io/prometheus/alertmanager:v0.28.1",
                &["quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"],
            ),
            // A rule's field that holds no reference: that object is named, the rest checked.
            alertmanager("monitoring", "typo", "Quay.io/Prometheus:v1", &[]),
        ],
    );
    let crds: Vec<Crd> = vec![ALERTMANAGER, WORKFLOW];
    let api = StandIn::start(State {
        objects,
        namespaces: ["monitoring".to_string()].into(),
        page_size: 1,
        crds,
        forbidden_discovery: ["argoproj.io/v1alpha1".to_string()].into(),
        ..State::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube_api::kubeconfig(dir.path(), &api.url(), &api.ca);
    let check = |extra: &[&str]| {
        airgap()
            .args(["check", "--registry", &m, "--insecure-registry", &m])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--context", "standin", "--cluster", "-n", "monitoring"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&["-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "missing images: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = verdicts(&report);
    let verdict = |r: &str| {
        v.get(r)
            .unwrap_or_else(|| panic!("{r} not reported: {v:#?}"))
            .clone()
    };
    assert_eq!(
        verdict(&format!("{m}/quay.io/prometheus/alertmanager:v0.27.0")),
        (
            "present".to_string(),
            true,
            vec!["Alertmanager monitoring/main spec.image".to_string()]
        )
    );
    assert_eq!(
        verdict(&format!("{m}/quay.io/prometheus/alertmanager:v0.28.1")),
        (
            "missing".to_string(),
            false,
            vec!["Alertmanager monitoring/edge spec.image".to_string()]
        )
    );
    assert_eq!(
        verdict(&format!("{m}/quay.io/oauth2-proxy/oauth2-proxy:v7.6.0")),
        (
            "missing".to_string(),
            false,
            vec!["Alertmanager monitoring/edge spec.containers[0].image".to_string()]
        )
    );
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(
        stderr.contains("warning: Alertmanager monitoring/typo, field spec.image:")
            && stderr.contains("that object's images are not checked"),
        "{stderr}"
    );
    // Workflows: discovery forbidden, reported as the code reports an unreadable list.
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{unreadable:#?}");
    assert_eq!(
        unreadable[0]["kind"],
        "the kinds of argoproj.io/v1alpha1 (API discovery)"
    );
    assert!(
        unreadable[0]["reason"]
            .as_str()
            .unwrap()
            .contains("forbidden (403)")
    );
    assert!(
        stderr.contains(
            "warning: could not read the kinds of argoproj.io/v1alpha1 (API discovery) cluster-wide"
        ),
        "{stderr}"
    );
    // The Alertmanagers were paged (one per page), and only served groups were asked about.
    let requests = api.requests();
    let listed: Vec<&String> = requests
        .iter()
        .filter(|r| {
            r.starts_with("GET /apis/monitoring.coreos.com/v1/namespaces/monitoring/alertmanagers?")
        })
        .collect();
    assert_eq!(listed.len(), 3, "{requests:#?}");
    assert!(listed[1].contains("continue="), "{listed:?}");
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("tekton.dev") || r.contains("kafka.strimzi.io")),
        "kinds no CRD serves are not asked for: {requests:#?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("/workflows")),
        "{requests:#?}"
    );
    // The table names the missing image and where it is used.
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.contains("alertmanager:v0.28.1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.starts_with("missing") && line.contains("used by Alertmanager monitoring/edge"),
        "{line}"
    );
}

/// `--request-timeout` takes kubectl's forms: `1.5s`, `1m30s`, `0` (no limit); a value that is
/// none of them is refused with what to write instead, and a fractional timeout bounds a hanging
/// server as a whole one does.
#[test]
fn request_timeout_takes_kubectl_durations() {
    let s = scene(false);
    for t in ["1.5s", "1m30s", "0", "30"] {
        let out = s
            .check(&["--cluster", "-n", "shop", "--request-timeout", t])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (t, why) in [
        ("1.5", "missing a unit"),
        ("-1s", "negative"),
        ("5x", "invalid unit"),
    ] {
        let flag = format!("--request-timeout={t}");
        let out = s
            .check(&["--cluster", "-n", "shop", &flag])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{t}: {stderr}");
        assert!(
            stderr.contains("is not a request timeout")
                && stderr.contains(why)
                && stderr.contains("1.5s, 1m30s"),
            "{t}: {stderr}"
        );
    }
    let stalled = Stalled::start();
    let dir = tempfile::tempdir().unwrap();
    let hanging = kube_api::kubeconfig(
        dir.path(),
        &format!("https://127.0.0.1:{}", stalled.port),
        &s.api.ca,
    );
    let host = s.mirror.host();
    let started = Instant::now();
    let out = airgap()
        .args(["check", "--registry", &host, "--insecure-registry", &host])
        .args(["--cluster", "--context", "standin"])
        .args(["--request-timeout", "1.5s"])
        .arg("--kubeconfig")
        .arg(&hanging)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    assert!(
        stderr.contains("within 1.5s (--request-timeout)"),
        "{stderr}"
    );
}
