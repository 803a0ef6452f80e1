//! A stand-in for the Kubernetes API server, because none can be installed on these machines.
//!
//! It answers the paths `check --cluster` and `pull-secret` use, with the shapes the real server
//! returns: typed lists (`PodList`, ...) whose items carry no kind, `metadata.continue` and
//! `remainingItemCount` on every page but the last, a `Status` object for failures (401 without
//! the bearer token, 403 for a forbidden namespace or cluster-wide list, 410 `Expired` for a
//! continue token it chose to expire, with a fresh token in `metadata.continue` as the real
//! server gives), and server-side apply of Secrets. It speaks TLS with a certificate from a test
//! CA that the kubeconfig names, as an API server does (client-go sends no bearer token over
//! plain HTTP). ServiceAccounts are read and JSON-merge-patched by name, with the real server's
//! optimistic concurrency: a patch whose `metadata.resourceVersion` is stale gets 409 Conflict.
//! Pages are at most `page_size` items whatever
//! `limit` asks, which the API allows and which makes paging happen with a handful of objects.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::registry::{Pki, read_head};

pub const TOKEN: &str = "stand-in-viewer-token";

/// What the stand-in holds and how it misbehaves.
#[derive(Debug, Default)]
pub struct State {
    /// (resource plural, namespace) → objects as the API stores them.
    pub objects: BTreeMap<(String, String), Vec<Value>>,
    pub namespaces: BTreeSet<String>,
    /// Every request in a namespace here gets 403.
    pub forbidden_namespaces: BTreeSet<String>,
    /// Cluster-wide lists get 403 (namespaces can still be listed).
    pub cluster_wide_forbidden: bool,
    pub page_size: usize,
    /// (plural, namespace) whose first continue token is answered with 410 Expired.
    pub expire_once: BTreeSet<(String, String)>,
    /// `METHOD path?query` of every request, in order.
    pub requests: Vec<String>,
    /// Secrets applied, by (namespace, name): (query, content type, body).
    pub applied: BTreeMap<(String, String), (String, String, Value)>,
    /// Secrets there already, by (namespace, name): their type, which the API will not change.
    pub secret_types: BTreeMap<(String, String), String>,
    /// (namespace, name) of ServiceAccounts that somebody else writes between our read and our
    /// first patch, so that the patch gets 409 Conflict.
    pub conflict_once: BTreeSet<(String, String)>,
    /// ServiceAccount patches that were accepted: (namespace/name, query, content type, body).
    pub patched: Vec<(String, String, String, Value)>,
    /// Custom resource definitions installed: their groups and kinds are in discovery, and
    /// their objects (under `objects` by plural) are listed with their own apiVersion and kind.
    pub crds: Vec<Crd>,
    /// Group versions (`argoproj.io/v1alpha1`) whose discovery answers 403.
    pub forbidden_discovery: BTreeSet<String>,
}

/// A custom resource definition the stand-in serves.
#[derive(Debug, Clone)]
pub struct Crd {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
}

/// The Prometheus operator's Alertmanager.
pub const ALERTMANAGER: Crd = Crd {
    group: "monitoring.coreos.com",
    version: "v1",
    plural: "alertmanagers",
    kind: "Alertmanager",
};

/// Argo Workflows' Workflow.
pub const WORKFLOW: Crd = Crd {
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "workflows",
    kind: "Workflow",
};

/// An Alertmanager as the API stores it: custom resources keep their apiVersion and kind in
/// lists too.
pub fn alertmanager(ns: &str, name: &str, image: &str, containers: &[&str]) -> Value {
    let mut spec = json!({"replicas": 1, "image": image});
    if !containers.is_empty() {
        spec["containers"] = self::containers(containers);
    }
    json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
        "metadata": meta(ns, name), "spec": spec,
        "status": {"availableReplicas": 1, "replicas": 1, "paused": false}})
}

pub struct StandIn {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    /// The CA that signed the server's certificate, for the kubeconfig.
    pub ca: PathBuf,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl StandIn {
    pub fn start(state: State) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let tls = Arc::new(server_config(&pki));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { break };
                let (s, tls) = (s.clone(), tls.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(tls) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    serve(&mut tls, &s);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        StandIn {
            port,
            state,
            ca: pki.ca.clone(),
            stop,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn server_config(pki: &Pki) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

/// A server that accepts connections and never answers: an API server that hangs.
pub struct Stalled {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Stalled {
    pub fn start() -> Stalled {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(stream.ok());
            }
        });
        Stalled { port, stop }
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A kubeconfig with context `standin` (namespace `shop`, user with the token), a context
/// `elsewhere` on a closed port as the current one, so that tests must pick, and a user
/// `nobody` with a wrong token.
pub fn kubeconfig(dir: &Path, server: &str, ca: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {server}\n    certificate-authority: {}\n- name: closed\n  cluster:\n    server: http://127.0.0.1:1\nusers:\n- name: viewer\n  user:\n    token: {TOKEN}\n- name: nobody\n  user:\n    token: wrong-token\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: viewer\n    namespace: shop\n- name: elsewhere\n  context:\n    cluster: closed\n    user: viewer\ncurrent-context: elsewhere\n",
            ca.display()
        ),
    )
    .unwrap();
    path
}

fn status(code: u16, reason: &str, message: &str, cont: Option<&str>) -> Value {
    let mut metadata = json!({});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": metadata, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

fn respond(stream: &mut impl Write, code: u16, body: &Value) {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        410 => "Gone",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// `(api group/version, list kind)` of a plural the stand-in serves.
fn list_kind(plural: &str) -> Option<(&'static str, &'static str)> {
    Some(match plural {
        "pods" => ("v1", "PodList"),
        "replicationcontrollers" => ("v1", "ReplicationControllerList"),
        "namespaces" => ("v1", "NamespaceList"),
        "deployments" => ("apps/v1", "DeploymentList"),
        "statefulsets" => ("apps/v1", "StatefulSetList"),
        "daemonsets" => ("apps/v1", "DaemonSetList"),
        "replicasets" => ("apps/v1", "ReplicaSetList"),
        "jobs" => ("batch/v1", "JobList"),
        "cronjobs" => ("batch/v1", "CronJobList"),
        _ => return None,
    })
}

fn serve(stream: &mut (impl Read + Write), state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    let Some((request_line, headers)) = read_head(&mut reader) else {
        return;
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let stream = reader.into_inner();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut st = state.lock().unwrap();
    st.requests.push(format!("{method} {target}"));
    if header("authorization") != format!("Bearer {TOKEN}") {
        let s = status(401, "Unauthorized", "Unauthorized", None);
        return respond(stream, 401, &s);
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    if let Some(gv) = path.strip_prefix("/apis/")
        && st.forbidden_discovery.contains(gv.trim_end_matches('/'))
    {
        let s = status(
            403,
            "Forbidden",
            &format!(
                "forbidden: User \"system:serviceaccount:ci:viewer\" cannot get path \"{path}\""
            ),
            None,
        );
        return respond(stream, 403, &s);
    }
    if let Some(answer) = discovery(path, &st.crds) {
        return respond(stream, 200, &answer);
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest: &[&str] = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let (namespace, plural, name) = match rest {
        ["namespaces"] => (None, "namespaces", None),
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => {
            let s = status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            );
            return respond(stream, 404, &s);
        }
    };
    if let Some(ns) = namespace
        && st.forbidden_namespaces.contains(ns)
    {
        let verb = if method == "PATCH" { "patch" } else { "list" };
        let s = status(
            403,
            "Forbidden",
            &format!(
                "{plural} is forbidden: User \"system:serviceaccount:ci:viewer\" cannot {verb} resource \"{plural}\" in API group \"\" in the namespace \"{ns}\""
            ),
            None,
        );
        return respond(stream, 403, &s);
    }
    if plural == "serviceaccounts"
        && let (Some(ns), Some(name)) = (namespace, name)
    {
        let content_type = header("content-type");
        let (code, answer) =
            service_account_request(&mut st, method, ns, name, query, &content_type, &body);
        return respond(stream, code, &answer);
    }
    if method == "PATCH" && plural == "secrets" {
        let (ns, name) = (namespace.unwrap_or(""), name.unwrap_or(""));
        let mut object: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let s = status(400, "BadRequest", &format!("invalid apply body: {e}"), None);
                return respond(stream, 400, &s);
            }
        };
        let key = (ns.to_string(), name.to_string());
        if let Some(existing) = st.secret_types.get(&key)
            && Some(existing.as_str()) != object["type"].as_str()
        {
            let message = format!(
                "Secret \"{name}\" is invalid: type: Invalid value: {}: field is immutable",
                object["type"]
            );
            return respond(stream, 422, &status(422, "Invalid", &message, None));
        }
        st.applied.insert(
            (ns.to_string(), name.to_string()),
            (query.to_string(), header("content-type"), object.clone()),
        );
        object["metadata"]["uid"] = json!(format!("uid-{ns}-{name}"));
        object["metadata"]["resourceVersion"] = json!("7");
        return respond(stream, 200, &object);
    }
    let crd_list = st.crds.iter().find(|c| c.plural == plural).map(|c| {
        (
            format!("{}/{}", c.group, c.version),
            format!("{}List", c.kind),
        )
    });
    let listed = list_kind(plural)
        .map(|(v, k)| (v.to_string(), k.to_string()))
        .or(crd_list);
    let Some((api_version, kind)) = listed.filter(|_| method == "GET" && name.is_none()) else {
        let s = status(405, "MethodNotAllowed", "not served by the stand-in", None);
        return respond(stream, 405, &s);
    };
    if namespace.is_none() && plural != "namespaces" && st.cluster_wide_forbidden {
        let s = status(
            403,
            "Forbidden",
            &format!(
                "{plural} is forbidden: User \"system:serviceaccount:ci:viewer\" cannot list resource \"{plural}\" in API group \"\" at the cluster scope"
            ),
            None,
        );
        return respond(stream, 403, &s);
    }
    let items: Vec<Value> = if plural == "namespaces" {
        st.namespaces
            .iter()
            .map(|n| json!({"metadata": {"name": n, "uid": format!("uid-ns-{n}")}, "status": {"phase": "Active"}}))
            .collect()
    } else {
        st.objects
            .iter()
            .filter(|((p, ns), _)| p == plural && namespace.is_none_or(|want| want == ns))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    };
    let scope = namespace.unwrap_or("").to_string();
    let offset = match param("continue") {
        Some(token) => {
            let key = (plural.to_string(), scope.clone());
            if st.expire_once.remove(&key) {
                let s = status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    Some("inconsistent-token"),
                );
                return respond(stream, 410, &s);
            }
            token
                .rsplit('-')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        }
        None => 0,
    };
    let limit: usize = param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let page = limit.min(st.page_size.max(1));
    let end = (offset + page).min(items.len());
    let mut metadata = json!({"resourceVersion": "4242"});
    if end < items.len() {
        metadata["continue"] = json!(format!("c-{plural}-{scope}-{end}"));
        metadata["remainingItemCount"] = json!(items.len() - end);
    }
    let list = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata,
        "items": items[offset.min(end)..end]});
    respond(stream, 200, &list);
}

/// GET or JSON merge PATCH of one ServiceAccount: `(status code, body)`.
fn service_account_request(
    st: &mut State,
    method: &str,
    ns: &str,
    name: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let key = ("serviceaccounts".to_string(), ns.to_string());
    let Some(account) = st
        .objects
        .get_mut(&key)
        .and_then(|v| v.iter_mut().find(|o| o["metadata"]["name"] == name))
    else {
        let message = format!("serviceaccounts \"{name}\" not found");
        return (404, status(404, "NotFound", &message, None));
    };
    let bump = |account: &mut Value| {
        let rv: u64 = account["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        account["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    };
    match method {
        "GET" => (200, account.clone()),
        "PATCH" => {
            if content_type != "application/merge-patch+json" {
                let message = format!("the stand-in takes merge patches, not {content_type}");
                return (415, status(415, "UnsupportedMediaType", &message, None));
            }
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return (400, status(400, "BadRequest", "invalid JSON", None));
            };
            if st.conflict_once.remove(&(ns.to_string(), name.to_string())) {
                // Another writer got there first.
                let list = account["imagePullSecrets"].as_array().cloned();
                let mut list = list.unwrap_or_default();
                list.push(json!({"name": "written-meanwhile"}));
                account["imagePullSecrets"] = Value::Array(list);
                bump(account);
            }
            if patch["metadata"]["resourceVersion"] != account["metadata"]["resourceVersion"] {
                let message = format!(
                    "Operation cannot be fulfilled on serviceaccounts \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                );
                return (409, status(409, "Conflict", &message, None));
            }
            account["imagePullSecrets"] = patch["imagePullSecrets"].clone();
            bump(account);
            let answer = account.clone();
            st.patched.push((
                format!("{ns}/{name}"),
                query.to_string(),
                content_type.to_string(),
                patch,
            ));
            (200, answer)
        }
        _ => (
            405,
            status(405, "MethodNotAllowed", "not served by the stand-in", None),
        ),
    }
}

/// A ServiceAccount as `GET` returns it, with these Secrets (none: no field at all).
pub fn service_account(ns: &str, name: &str, secrets: &[&str]) -> Value {
    let mut account =
        json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": meta(ns, name)});
    if !secrets.is_empty() {
        let list: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
        account["imagePullSecrets"] = Value::Array(list);
    }
    account
}

/// Legacy discovery (`/api`, `/apis`, and each group version's resources), enough for kubectl
/// to map `pods`, `deployments`, ... to their paths. kubectl asks for aggregated discovery
/// first and accepts this older form, as from any server before 1.30.
fn discovery(path: &str, crds: &[Crd]) -> Option<Value> {
    let resources = |group_version: &str, list: &[(&str, &str)]| {
        let resources: Vec<Value> = list
            .iter()
            .map(|(name, kind)| {
                json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true,
                    "kind": kind, "verbs": ["get", "list", "patch"]})
            })
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources})
    };
    let group_of = |name: &str, version: &str| {
        let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
        json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
    };
    let group = |name: &str| group_of(name, "v1");
    let path = path.trim_end_matches('/');
    for crd in crds {
        let gv = format!("{}/{}", crd.group, crd.version);
        if path == format!("/apis/{}", crd.group) {
            let mut g = group_of(crd.group, crd.version);
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            return Some(g);
        }
        if path == format!("/apis/{gv}") {
            // Every CRD of the group, each with its status subresource as the real server lists it.
            let mut resources = Vec::new();
            for c in crds
                .iter()
                .filter(|c| c.group == crd.group && c.version == crd.version)
            {
                let verbs = json!([
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "create",
                    "update",
                    "watch"
                ]);
                resources.push(
                    json!({"name": c.plural, "singularName": c.kind.to_lowercase(),
                    "namespaced": true, "kind": c.kind, "verbs": verbs,
                    "categories": ["all"], "storageVersionHash": "abc123"}),
                );
                resources.push(
                    json!({"name": format!("{}/status", c.plural), "singularName": "",
                    "namespaced": true, "kind": c.kind, "verbs": ["get", "patch", "update"]}),
                );
            }
            return Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": gv, "resources": resources}));
        }
    }
    Some(match path {
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/apis" => {
            let mut groups = vec![group("apps"), group("batch")];
            for crd in crds {
                if !groups.iter().any(|g| g["name"] == crd.group) {
                    groups.push(group_of(crd.group, crd.version));
                }
            }
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        "/api/v1" => {
            let mut list = resources(
                "v1",
                &[
                    ("pods", "Pod"),
                    ("replicationcontrollers", "ReplicationController"),
                    ("secrets", "Secret"),
                ],
            );
            list["resources"].as_array_mut().unwrap().push(
                json!({"name": "namespaces", "singularName": "namespace", "namespaced": false,
                    "kind": "Namespace", "verbs": ["get", "list"]}),
            );
            list
        }
        "/apis/apps/v1" => resources(
            "apps/v1",
            &[
                ("deployments", "Deployment"),
                ("statefulsets", "StatefulSet"),
                ("daemonsets", "DaemonSet"),
                ("replicasets", "ReplicaSet"),
            ],
        ),
        "/apis/batch/v1" => resources("batch/v1", &[("jobs", "Job"), ("cronjobs", "CronJob")]),
        _ => return None,
    })
}

fn meta(ns: &str, name: &str) -> Value {
    json!({"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "resourceVersion": "1"})
}

fn containers(images: &[&str]) -> Value {
    Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect(),
    )
}

fn template(app: &str, spec: Value) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": spec})
}

fn selector(app: &str) -> Value {
    json!({"matchLabels": {"app": app}})
}

/// Builders for the objects of a scene, in the API's own JSON.
pub fn pod(ns: &str, name: &str, images: &[&str], ran: &[(&str, &str)]) -> Value {
    let statuses: Vec<Value> = ran
        .iter()
        .enumerate()
        .map(|(i, (image, id))| {
            json!({"name": format!("c{i}"), "image": image, "imageID": id, "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2026-11-20T10:00:00Z"}}})
        })
        .collect();
    json!({"metadata": meta(ns, name), "spec": {"containers": containers(images)},
        "status": {"phase": "Running", "containerStatuses": statuses}})
}

/// A Deployment or a ReplicaSet: the two have the same spec shape.
pub fn replicated(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": meta(ns, name), "spec": {"replicas": 1, "selector": selector(name), "template": template(name, spec)}})
}

pub fn stateful_set(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": meta(ns, name), "spec": {"serviceName": name, "selector": selector(name), "template": template(name, spec)}})
}

pub fn daemon_set(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": meta(ns, name), "spec": {"selector": selector(name), "template": template(name, spec)}})
}

pub fn job(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": meta(ns, name), "spec": {"template": template(name, spec)}})
}

pub fn cron_job(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": meta(ns, name), "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": template(name, spec)}}}})
}

pub fn replication_controller(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": meta(ns, name), "spec": {"replicas": 1, "selector": {"app": name}, "template": template(name, spec)}})
}

/// A pod spec with these containers.
pub fn spec(images: &[&str]) -> Value {
    json!({"containers": containers(images), "restartPolicy": "Always"})
}
