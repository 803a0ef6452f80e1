//! What the Kubernetes API says runs in the cluster, and the mirror's pull Secret in it.
//!
//! A post-renderer sees only what Helm renders; operators, `kubectl apply` and GitOps controllers
//! create Pods it never saw. So `check --cluster` reads the images of every Pod and of every
//! template that makes Pods, and of what the Pods report having run, from the API server, the
//! way kubectl reads it: kubeconfig inference, paged lists, and a per-request timeout.
//!
//! A list the user may not read (403) is reported and the rest is still read: a partial answer
//! about a cluster is worth more than none. A paged list whose continue token expired (410) is
//! started again from the first page, as client-go's pager does.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::reference::Reference;
use crate::registry::error_chain;

/// Items per page: kubectl's default chunk size.
const PAGE_SIZE: u32 = 500;
/// How many times a list whose continue token expired is started again before giving up.
const RESTARTS: usize = 3;
/// How many times a ServiceAccount written by someone else between our read and our patch (409)
/// is read and patched again before giving up.
const CONFLICT_RETRIES: usize = 3;
/// The field manager named in server-side apply, so that `kubectl get -o yaml --show-managed-fields`
/// says who wrote the Secret.
pub const FIELD_MANAGER: &str = "kubectl-airgap";

/// How to reach the API server: kubectl's global flags.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// Per request, retries included; `None` waits as long as the server takes.
    pub request_timeout: Option<Duration>,
}

/// Which namespaces to read or write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// These namespaces (the kubeconfig context's namespace when none is named).
    Namespaces(Vec<String>),
    /// Every namespace: one cluster-wide list per kind, or, when that is forbidden, one list per
    /// namespace.
    All,
}

/// Why a read or write failed, in words a kubectl user acts on.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The API server answered with a failure status (403, 404, 410, 422, ...).
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer within `--request-timeout`.
    TimedOut(Duration),
    /// No connection, TLS refused, or an answer that was not what the API returns.
    Transport(String),
}

impl ApiError {
    fn from_kube(e: kube::Error) -> ApiError {
        match e {
            kube::Error::Api(s) => ApiError::Status {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => ApiError::Transport(kube_error_text(&other)),
        }
    }

    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApiError::Status { code: 403, .. })
    }

    fn is_expired(&self) -> bool {
        matches!(self, ApiError::Status { code: 410, .. })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status {
                code: 403, message, ..
            } => write!(
                f,
                "forbidden (403): {message}; ask for `list` rights (pull-secret: `patch` on secrets, `get` and `patch` on serviceaccounts), or narrow the scope with -n"
            ),
            ApiError::Status {
                code,
                reason,
                message,
            } => write!(f, "the API server answered {code} {reason}: {message}"),
            ApiError::TimedOut(t) => write!(
                f,
                "no answer from the API server within {} (--request-timeout)",
                humanize(*t)
            ),
            ApiError::Transport(why) => write!(
                f,
                "{why}; check the kubeconfig's server address and that the API server is reachable from here (`kubectl cluster-info`)"
            ),
        }
    }
}

/// Whether a kube error comes from a connect/read/write timeout of the HTTP connector.
fn elapsed(e: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<tokio::time::error::Elapsed>()
            || err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// Where kubectl looks for a kubeconfig without `--kubeconfig`, for messages.
fn default_kubeconfig() -> String {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => format!("KUBECONFIG={}", v.to_string_lossy()),
        None => "~/.kube/config".to_string(),
    }
}

/// A kube error in words that hold no credential.
///
/// Two of kube's messages quote secrets. A kubeconfig that is not valid YAML is shown with the
/// lines around the fault, tokens and keys included; only the position and the fault are kept.
/// A failed exec credential plugin (kubelogin, a cloud CLI) is shown with its command line,
/// where kubelogin takes its OIDC client secret, and its stdout, where the token is; only the
/// exit status and the plugin's stderr are kept, which is written for people (kubectl shows it
/// as it is).
fn kube_error_text(e: &(dyn std::error::Error + 'static)) -> String {
    use kube::client::AuthError;
    use kube::config::KubeconfigError;
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(KubeconfigError::Parse(yaml)) = err.downcast_ref::<KubeconfigError>() {
            return format!("not valid YAML: {}", yaml.without_snippet());
        }
        if let Some(auth) = err.downcast_ref::<AuthError>() {
            let failure = match auth {
                AuthError::AuthExecRun { out, .. } => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let said = stderr.trim();
                    Some(format!(
                        "the kubeconfig user's exec credential plugin failed ({}){}",
                        out.status,
                        if said.is_empty() {
                            String::new()
                        } else {
                            format!(": {said}")
                        }
                    ))
                }
                AuthError::AuthExecStart(io) => Some(format!(
                    "the kubeconfig user's exec credential plugin could not be started ({io}); is its command installed and on PATH?"
                )),
                AuthError::AuthExecParse(_) => Some(
                    "the kubeconfig user's exec credential plugin printed something that is not an ExecCredential".to_string(),
                ),
                _ => None,
            };
            if let Some(failure) = failure {
                return failure;
            }
        }
        source = err.source();
    }
    error_chain(e)
}

fn humanize(t: Duration) -> String {
    if t.subsec_millis() == 0 {
        format!("{}s", t.as_secs())
    } else {
        format!("{}ms", t.as_millis())
    }
}

/// Parses kubectl's `--request-timeout`: `0` (no limit), a number of seconds, or a number with
/// a unit (`ms`, `s`, `m`, `h`), e.g. `30s`, `1m`, `1m30s`.
pub fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    let bad = || {
        format!("{text:?} is not a duration: write 0 (no limit), seconds (30), or 30s, 1m, 500ms")
    };
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok((secs > 0).then(|| Duration::from_secs(secs)));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok((!total.is_zero()).then_some(total))
}

/// A connected API client and what the kubeconfig context says.
pub struct Cluster {
    client: Client,
    /// The context's namespace, `default` when it names none.
    pub default_namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
    timeout: Option<Duration>,
}

impl Cluster {
    /// Loads the configuration as kubectl does: `--kubeconfig`, else `KUBECONFIG`, else
    /// `~/.kube/config`, else the in-cluster service account; `--context`, `--cluster` and
    /// `--user` pick from the kubeconfig.
    pub async fn connect(c: &Connection) -> anyhow::Result<Cluster> {
        crate::registry::install_crypto_provider();
        let options = KubeConfigOptions {
            context: c.context.clone(),
            cluster: c.cluster.clone(),
            user: c.user.clone(),
        };
        let picked = c.context.is_some() || c.cluster.is_some() || c.user.is_some();
        let mut config = if let Some(path) = &c.kubeconfig {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                anyhow::anyhow!("kubeconfig {}: {}", path.display(), kube_error_text(&e))
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("kubeconfig {}: {}", path.display(), kube_error_text(&e))
                })?
        } else if picked {
            Config::from_kubeconfig(&options).await.map_err(|e| {
                anyhow::anyhow!(
                    "kubeconfig {}: {}",
                    default_kubeconfig(),
                    kube_error_text(&e)
                )
            })?
        } else {
            Config::infer().await.map_err(|e| {
                anyhow::anyhow!(
                    "no cluster to talk to (kubeconfig {}, then in-cluster): {}; pass --kubeconfig, set KUBECONFIG, or run inside a cluster",
                    default_kubeconfig(),
                    kube_error_text(&e)
                )
            })?
        };
        let auth = &config.auth_info;
        let has_secret = auth.token.is_some()
            || auth.token_file.is_some()
            || auth.password.is_some()
            || auth.exec.is_some()
            || auth.auth_provider.is_some();
        if config.cluster_url.scheme_str() == Some("http") && has_secret {
            // client-go sends no credentials in clear text, and neither do we.
            eprintln!(
                "warning: the API server {} is plain http://, so the kubeconfig user's credentials are not sent (kubectl does not send them either)",
                config.cluster_url
            );
            config.auth_info = Default::default();
        }
        if let Some(t) = c.request_timeout {
            config.connect_timeout = Some(t);
            config.read_timeout = Some(t);
            config.write_timeout = Some(t);
            config.reset_reader_on_write = true;
        }
        let server = config.cluster_url.to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| {
            let why = kube_error_text(&e);
            anyhow::anyhow!("API server {server}: {why}")
        })?;
        Ok(Cluster {
            client,
            default_namespace,
            server,
            timeout: c.request_timeout,
        })
    }

    /// One request, bounded by `--request-timeout` (kube's own retries included).
    async fn timed<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        match self.timeout {
            Some(t) => match tokio::time::timeout(t, request).await {
                // The connector's own timeouts carry the same budget and can fire first (a TLS
                // handshake that never ends); that is this timeout too, not a transport failure.
                Ok(Err(e)) if elapsed(&e) => Err(ApiError::TimedOut(t)),
                Ok(r) => r.map_err(ApiError::from_kube),
                Err(_) => Err(ApiError::TimedOut(t)),
            },
            None => request.await.map_err(ApiError::from_kube),
        }
    }

    /// Every object of one list, page by page. An expired continue token (410) starts the list
    /// again from its first page, up to [`RESTARTS`] times; what the earlier pages held is
    /// dropped, so nothing is counted twice.
    async fn list_all<K>(&self, api: &Api<K>) -> Result<Listed<K>, ApiError>
    where
        K: Clone + DeserializeOwned + fmt::Debug,
    {
        let mut restarts = 0;
        'restart: loop {
            let mut items = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut params = ListParams::default().limit(PAGE_SIZE);
                if let Some(t) = &token {
                    params = params.continue_token(t);
                }
                match self.timed(api.list(&params)).await {
                    Ok(page) => {
                        pages += 1;
                        items.extend(page.items);
                        token = page.metadata.continue_.filter(|t| !t.is_empty());
                        if token.is_none() {
                            return Ok(Listed {
                                items,
                                pages,
                                restarts,
                            });
                        }
                    }
                    Err(e) if e.is_expired() && token.is_some() && restarts < RESTARTS => {
                        restarts += 1;
                        continue 'restart;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The names of every namespace.
    pub async fn namespaces(&self) -> Result<Vec<String>, ApiError> {
        let api: Api<core::Namespace> = Api::all(self.client.clone());
        Ok(self
            .list_all(&api)
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect())
    }

    /// The namespaces a scope names: `-A` lists them, no `-n` means the context's namespace.
    pub async fn resolve(&self, scope: &Scope) -> Result<Vec<String>, ApiError> {
        match scope {
            Scope::All => self.namespaces().await,
            Scope::Namespaces(named) => Ok(self.or_context_namespace(named)),
        }
    }

    /// The named namespaces, or the context's when none is named.
    fn or_context_namespace(&self, named: &[String]) -> Vec<String> {
        if named.is_empty() {
            vec![self.default_namespace.clone()]
        } else {
            named.to_vec()
        }
    }

    /// The images of every Pod and workload template in `scope`, and of what Pods report having
    /// run, with what could not be read.
    pub async fn inventory(&self, scope: &Scope) -> Inventory {
        let reads = tokio::join!(
            self.read_kind::<core::Pod>(scope, "Pod", pod_uses),
            self.read_kind::<apps::Deployment>(scope, "Deployment", |d, out| {
                template_uses(d.spec.as_ref().map(|s| &s.template), out)
            }),
            self.read_kind::<apps::StatefulSet>(scope, "StatefulSet", |d, out| {
                template_uses(d.spec.as_ref().map(|s| &s.template), out)
            }),
            self.read_kind::<apps::DaemonSet>(scope, "DaemonSet", |d, out| {
                template_uses(d.spec.as_ref().map(|s| &s.template), out)
            }),
            self.read_kind::<apps::ReplicaSet>(scope, "ReplicaSet", |d, out| {
                template_uses(d.spec.as_ref().and_then(|s| s.template.as_ref()), out)
            }),
            self.read_kind::<core::ReplicationController>(
                scope,
                "ReplicationController",
                |d, out| { template_uses(d.spec.as_ref().and_then(|s| s.template.as_ref()), out) }
            ),
            self.read_kind::<batch::Job>(scope, "Job", |d, out| {
                template_uses(d.spec.as_ref().map(|s| &s.template), out)
            }),
            self.read_kind::<batch::CronJob>(scope, "CronJob", |d, out| {
                let spec = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.job_template.spec.as_ref())
                    .and_then(|s| s.template.spec.as_ref());
                spec_uses("spec.jobTemplate.spec.template.spec", spec, out)
            }),
        );
        let (a, b, c, d, e, f, g, h) = reads;
        let mut inventory = Inventory::default();
        for r in [a, b, c, d, e, f, g, h] {
            inventory.uses.extend(r.uses);
            inventory.unreadable.extend(r.unreadable);
            inventory.lists_read += r.lists_read;
            inventory.pages += r.pages;
            inventory.restarts += r.restarts;
        }
        inventory
    }

    /// One kind in a scope. Cluster-wide for `-A`; when that is forbidden, namespace by
    /// namespace, so that a user who may read some namespaces gets those.
    async fn read_kind<K>(
        &self,
        scope: &Scope,
        kind: &'static str,
        extract: fn(&K, &mut Vec<(String, String, bool)>),
    ) -> KindRead
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + fmt::Debug,
    {
        let mut read = KindRead::default();
        let namespaces = match scope {
            Scope::All => {
                let api: Api<K> = Api::all(self.client.clone());
                match self.list_all(&api).await {
                    Ok(listed) => {
                        read.add(kind, listed, extract);
                        return read;
                    }
                    Err(e) if e.is_forbidden() => match self.namespaces().await {
                        Ok(n) => n,
                        Err(ns_error) => {
                            read.unreadable.push(Unreadable {
                                kind,
                                namespace: None,
                                reason: format!(
                                    "{e} (and namespaces cannot be listed to read them one by one: {ns_error})"
                                ),
                            });
                            return read;
                        }
                    },
                    Err(e) => {
                        read.unreadable.push(Unreadable {
                            kind,
                            namespace: None,
                            reason: e.to_string(),
                        });
                        return read;
                    }
                }
            }
            Scope::Namespaces(named) => self.or_context_namespace(named),
        };
        let lists = namespaces.iter().map(|ns| async move {
            let api: Api<K> = Api::namespaced(self.client.clone(), ns);
            (ns, self.list_all(&api).await)
        });
        for (ns, result) in futures_util::future::join_all(lists).await {
            match result {
                Ok(listed) => read.add(kind, listed, extract),
                Err(e) => read.unreadable.push(Unreadable {
                    kind,
                    namespace: Some(ns.clone()),
                    reason: e.to_string(),
                }),
            }
        }
        read
    }

    /// Creates or updates a Secret by server-side apply: one request, whatever is there.
    pub async fn apply_secret(&self, secret: &core::Secret) -> Result<(), ApiError> {
        let namespace = secret.namespace().unwrap_or_default();
        let api: Api<core::Secret> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.timed(api.patch(&secret.name_any(), &params, &Patch::Apply(secret)))
            .await
            .map(|_| ())
    }

    /// Lists the Secret in a ServiceAccount's `imagePullSecrets`, so that Pods the post-renderer
    /// never sees (made by operators, `kubectl apply`, GitOps controllers) pull with it too: the
    /// ServiceAccount admission plugin copies the list into each Pod that runs as it.
    ///
    /// A patch replaces the list whole (a ServiceAccount's `imagePullSecrets` has no merge key,
    /// unlike a pod spec's), so it is read, extended and written back with the `resourceVersion`
    /// it was read at; a 409
    /// (someone wrote the ServiceAccount in between) reads it again, up to [`CONFLICT_RETRIES`] times,
    /// so that nobody's Secret is dropped.
    pub async fn attach_secret(
        &self,
        namespace: &str,
        service_account: &str,
        secret: &str,
    ) -> Result<Attached, ApiError> {
        let api: Api<core::ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let mut conflicts = 0;
        loop {
            let account = self.timed(api.get(service_account)).await?;
            let mut list = account.image_pull_secrets.unwrap_or_default();
            if list.iter().any(|r| r.name == secret) {
                return Ok(Attached::Already);
            }
            list.push(core::LocalObjectReference {
                name: secret.to_string(),
            });
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": account.metadata.resource_version},
                "imagePullSecrets": list,
            });
            match self
                .timed(api.patch(service_account, &params, &Patch::Merge(&patch)))
                .await
            {
                Ok(_) => return Ok(Attached::Added),
                Err(ApiError::Status { code: 409, .. }) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What [`Cluster::attach_secret`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    Added,
    Already,
}

/// One list's items and how it went.
struct Listed<K> {
    items: Vec<K>,
    pages: usize,
    restarts: usize,
}

#[derive(Default)]
struct KindRead {
    uses: Vec<Use>,
    unreadable: Vec<Unreadable>,
    lists_read: usize,
    pages: usize,
    restarts: usize,
}

impl KindRead {
    fn add<K: kube::Resource>(
        &mut self,
        kind: &'static str,
        listed: Listed<K>,
        extract: fn(&K, &mut Vec<(String, String, bool)>),
    ) {
        self.lists_read += 1;
        self.pages += listed.pages;
        self.restarts += listed.restarts;
        let mut found = Vec::new();
        for object in &listed.items {
            found.clear();
            extract(object, &mut found);
            for (path, image, ran) in found.drain(..) {
                self.uses.push(Use {
                    image,
                    kind,
                    namespace: object.namespace().unwrap_or_default(),
                    name: object.name_any(),
                    path,
                    ran,
                });
            }
        }
    }
}

/// One image named by one object.
#[derive(Debug, Clone, Serialize)]
pub struct Use {
    /// As the object writes it (or, for `ran`, as the runtime reported it).
    pub image: String,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// Field path, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
    /// From `status.*ContainerStatuses[].imageID`: what the Pod ran, which differs from its
    /// spec (another repository, or another digest than the spec pins).
    pub ran: bool,
}

impl Use {
    /// `Deployment shop/web`, for tables.
    pub fn object(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A list that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub kind: &'static str,
    /// `None` for a cluster-wide list.
    pub namespace: Option<String>,
    pub reason: String,
}

/// What the cluster runs, as far as it could be read.
#[derive(Debug, Default)]
pub struct Inventory {
    pub uses: Vec<Use>,
    pub unreadable: Vec<Unreadable>,
    /// Lists read to the end (one per kind and namespace, or per kind for `-A`).
    pub lists_read: usize,
    pub pages: usize,
    /// Lists started again after their continue token expired.
    pub restarts: usize,
}

/// `(prefix.path, image, false)` for every container, init container, ephemeral container and
/// image volume of a pod spec.
fn spec_uses(prefix: &str, spec: Option<&core::PodSpec>, out: &mut Vec<(String, String, bool)>) {
    let Some(spec) = spec else {
        return;
    };
    let mut add = |path: String, image: Option<&String>| {
        if let Some(image) = image.filter(|i| !i.is_empty()) {
            out.push((format!("{prefix}.{path}"), image.clone(), false));
        }
    };
    for (i, c) in spec.containers.iter().enumerate() {
        add(format!("containers[{i}].image"), c.image.as_ref());
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        add(format!("initContainers[{i}].image"), c.image.as_ref());
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        add(format!("ephemeralContainers[{i}].image"), c.image.as_ref());
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let reference = v.image.as_ref().and_then(|i| i.reference.as_ref());
        add(format!("volumes[{i}].image.reference"), reference);
    }
}

fn template_uses(template: Option<&core::PodTemplateSpec>, out: &mut Vec<(String, String, bool)>) {
    spec_uses(
        "spec.template.spec",
        template.and_then(|t| t.spec.as_ref()),
        out,
    )
}

fn pod_uses(pod: &core::Pod, out: &mut Vec<(String, String, bool)>) {
    let spec = pod.spec.as_ref();
    spec_uses("spec", spec, out);
    let (Some(spec), Some(status)) = (spec, pod.status.as_ref()) else {
        return;
    };
    let spec_image = |name: &str| -> Option<&str> {
        let regular = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        regular
            .filter(|c| c.name == name)
            .find_map(|c| c.image.as_deref())
            .or_else(|| {
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .filter(|c| c.name == name)
                    .find_map(|c| c.image.as_deref())
            })
    };
    for (list, statuses) in [
        ("containerStatuses", &status.container_statuses),
        ("initContainerStatuses", &status.init_container_statuses),
        (
            "ephemeralContainerStatuses",
            &status.ephemeral_container_statuses,
        ),
    ] {
        for (i, s) in statuses.iter().flatten().enumerate() {
            if let Some(ran) = ran_image(&s.image_id, spec_image(&s.name)) {
                out.push((format!("status.{list}[{i}].imageID"), ran, true));
            }
        }
    }
}

/// The image a container ran, from its status `imageID`, when it says something the spec does
/// not: another repository (a webhook rewrote it, or the Pod predates the template), or another
/// digest than the spec pins. A bare image ID (`sha256:...`, a locally built image) names no
/// repository and is skipped.
pub fn ran_image(image_id: &str, spec_image: Option<&str>) -> Option<String> {
    let id = ["docker-pullable://", "docker://"]
        .iter()
        .find_map(|p| image_id.strip_prefix(p))
        .unwrap_or(image_id);
    if !id.contains('@') {
        return None;
    }
    let ran = Reference::parse(id).ok()?;
    ran.digest()?;
    if let Some(Ok(spec)) = spec_image.map(Reference::parse)
        && spec.name() == ran.name()
        && spec.digest().is_none_or(|d| Some(d) == ran.digest())
    {
        return None;
    }
    Some(ran.to_string())
}

/// The `.dockerconfigjson` of a pull Secret for one registry, as `kubectl create secret
/// docker-registry` writes it.
pub fn docker_config_json(registry: &str, username: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::json!({
        "auths": {
            registry: { "username": username, "password": password, "auth": auth }
        }
    })
    .to_string()
}

/// A `kubernetes.io/dockerconfigjson` Secret.
pub fn pull_secret(name: &str, namespace: &str, config_json: &str) -> core::Secret {
    core::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    FIELD_MANAGER.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_string()),
        data: Some(
            [(
                ".dockerconfigjson".to_string(),
                k8s_openapi::ByteString(config_json.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts_read_like_kubectl() {
        assert_eq!(parse_timeout("0"), Ok(None));
        assert_eq!(parse_timeout("5"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(parse_timeout("2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse_timeout("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("500ms"), Ok(Some(Duration::from_millis(500))));
        for bad in ["", "s", "1x", "-1", "1.5s"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ran_images_are_kept_only_when_they_differ_from_the_spec() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let ran = format!("docker.io/library/nginx@{d}");
        // Same repository, spec by tag: the status adds nothing.
        assert_eq!(ran_image(&ran, Some("nginx:1.27")), None);
        assert_eq!(
            ran_image(&format!("docker-pullable://nginx@{d}"), Some("nginx")),
            None
        );
        // Another repository than the spec's.
        assert_eq!(
            ran_image(&ran, Some("reg.local:5000/docker.io/library/nginx:1.27")),
            Some(ran.clone())
        );
        // The spec pins another digest.
        let other = format!("nginx@sha256:{}", "b".repeat(64));
        assert_eq!(ran_image(&ran, Some(&other)), Some(ran.clone()));
        // Bare image IDs name no repository.
        assert_eq!(ran_image(&d, Some("nginx")), None);
        assert_eq!(ran_image("", Some("nginx")), None);
    }

    #[test]
    fn docker_config_json_has_one_auths_entry() {
        let json: serde_json::Value =
            serde_json::from_str(&docker_config_json("reg.local:5000", "u", "p:w")).unwrap();
        assert_eq!(json["auths"]["reg.local:5000"]["username"], "u");
        assert_eq!(json["auths"]["reg.local:5000"]["password"], "p:w");
        assert_eq!(json["auths"]["reg.local:5000"]["auth"], "dTpwOnc=");
    }
}
