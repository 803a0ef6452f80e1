//! The one way this program talks to registries: the distribution protocol over HTTPS (or HTTP
//! where the user named the registry insecure), with the user's credentials, retries and a
//! bound on requests in flight. `check`, `push` and `save` all go through [`Registry`].
//!
//! Built on reqwest, the HTTP stack oci-client uses, rather than on oci-client's `Client`:
//! that client cannot present a client certificate, drops `Retry-After`, answers a missing
//! manifest with a HEAD and then a GET, and reads bodies without a bound. oci-client's manifest
//! types are used to read what the registry returns.

pub(crate) mod auth;
pub(crate) mod blobs;
pub(crate) mod retry;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::oci::{Digest, RawManifest, hub};
use crate::reference::Reference;
use auth::{Challenge, Credential, FoundCredential, Login, Secret, TokenResponse};
use retry::{RetryPolicy, is_retryable_status, parse_retry_after};

use crate::oci::media::MANIFEST_ACCEPT;

/// The largest manifest we read; containerd uses the same 4 MiB limit.
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// A referrers list's pages together: thousands of descriptors fit in far less.
const MAX_REFERRER_BYTES: usize = 8 << 20;
/// Bounds a paginated tag list (registries page at 100 to 1,000 tags).
const MAX_TAG_PAGES: usize = 200;
/// The largest token answer or image config read for a check.
const MAX_SMALL_BODY: usize = 1 << 20;

/// How to reach one registry, from the config file (`registries:`) or flags.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HostOptions {
    /// Plain HTTP. Only for registries the user names.
    #[serde(default)]
    pub insecure: bool,
    /// PEM bundle of CAs trusted for this registry, in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (and its chain) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Everything the client needs to know, resolved from flags, environment and config file.
#[derive(Debug, Clone)]
pub(crate) struct RegistryOptions {
    /// Per-registry settings, keyed by `HOST[:PORT]` as written in image references.
    pub hosts: BTreeMap<String, HostOptions>,
    pub login: Option<Login>,
    /// Requests in flight at once, over all registries.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// How long a request may go without moving: no byte of its body sent and no answer, or
    /// no next bytes of the answer's body (`--request-timeout`; `None` for no limit). Idle
    /// time, not a bound on the whole request, so that a large layer can take as long as it
    /// needs while it flows.
    pub request_timeout: Option<Duration>,
}

impl RegistryOptions {
    /// The options for reading from source registries, made from the mirror's: the same hosts'
    /// TLS and plain-HTTP settings and limits, but never the mirror's login or client
    /// certificate, which are for the mirror alone.
    pub(crate) fn for_sources(&self) -> RegistryOptions {
        let mut out = self.clone();
        out.login = None;
        for h in out.hosts.values_mut() {
            h.cert_file = None;
            h.key_file = None;
        }
        out
    }

    /// The settings for the registry at `host`, however it is named: the config file and the
    /// flags key hosts as references write them (`docker.io`), requests go to where the API is
    /// (`registry-1.docker.io`). An exact key wins over an alias.
    fn settings_for(&self, host: &str) -> Option<&HostOptions> {
        self.hosts.get(host).or_else(|| {
            self.hosts
                .iter()
                .find(|(k, _)| hub::same_registry(k, host))
                .map(|(_, o)| o)
        })
    }
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            hosts: BTreeMap::new(),
            login: None,
            concurrency: usize::from(DEFAULT_CONCURRENCY),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// After this long without an answer, a request is announced on stderr (once per host), so a
/// registry that hangs is not a silent wait.
const NOTICE_AFTER: Duration = Duration::from_secs(5);

/// Enough to keep a local registry busy without tripping the rate limits of public ones.
pub(crate) const DEFAULT_CONCURRENCY: u16 = 16;

/// Why a registry request failed. Every message says what to do; none holds a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RegistryError {
    #[error(
        "cannot reach {host} over {scheme} ({cause}) after {attempts} attempts; check that the registry is running at that address and port{hint}"
    )]
    Unreachable {
        host: String,
        /// `HTTPS` or `plain HTTP`: which one was tried is half the diagnosis.
        scheme: &'static str,
        cause: String,
        attempts: u32,
        hint: &'static str,
    },
    #[error(
        "TLS with {host} failed: {cause}; if the registry's certificate comes from a private CA, pass --ca-file (or caFile under registries.\"{host}\" in the config file); if it demands a client certificate, pass --cert-file and --key-file; if it speaks plain HTTP, pass --insecure-registry {host}"
    )]
    Tls { host: String, cause: String },
    #[error(
        "{host} requires credentials and none were found for it; run `docker login {host}` (or `skopeo login {host}`), or pass --username with --password-stdin"
    )]
    AuthRequired { host: String },
    #[error(
        "{host} refused the credentials from {origin}; log in again (`docker login {host}`) or pass --username with --password-stdin"
    )]
    AuthRefused { host: String, origin: String },
    #[error("{host} denied access to {scope} for the credentials from {origin}")]
    Denied {
        host: String,
        scope: String,
        origin: String,
    },
    #[error(
        "{host} answered HTTP {status} to {attempts} attempts{detail}; the registry is failing, try again later"
    )]
    Server {
        host: String,
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error(
        "{host} is rate-limiting requests (HTTP 429) and refused {attempts} attempts; try again later or lower --concurrency"
    )]
    RateLimited { host: String, attempts: u32 },
    #[error(
        "{host} sends clients for tokens to {realm}, which is plain HTTP, and {realm_host} was not named insecure: a password or token sent there would travel in clear text, so nothing is sent; have the token service use HTTPS, or if you trust it, pass --insecure-registry {realm_host} (or insecure: true under registries.\"{realm_host}\" in the config file)"
    )]
    PlainHttpRealm {
        host: String,
        realm: String,
        realm_host: String,
    },
    #[error(
        "{host} sends clients for tokens to {realm}, plain HTTP on another host; credentials go to a token service on another host only over HTTPS (as Docker and containerd send them), so none are sent; have the token service use HTTPS"
    )]
    CredentialsToPlainRealm { host: String, realm: String },
    #[error(
        "{host} timed out: no answer to {what} within {after} (--request-timeout); it accepts connections but does not answer: check that the registry is healthy and listens at that address, or allow longer with --request-timeout"
    )]
    TimedOut {
        host: String,
        what: String,
        after: String,
    },
    /// A body streamed from its source was cut (the registry failed, dropped the connection or
    /// refused its size) and cannot be sent again from here: its owner reads the source again.
    #[error("{host}: {what}")]
    Interrupted { host: String, what: String },
    #[error("{host}: {what}")]
    Protocol { host: String, what: String },
    #[error("credentials for {host}: {why}")]
    Credentials { host: String, why: String },
    #[error("settings for registry {host}: {why}")]
    Settings { host: String, why: String },
}

impl RegistryError {
    /// Whether the same operation tried again may succeed: the registry was unreachable,
    /// failing or rate-limiting, or a streamed body was cut. A refusal (denied, credentials,
    /// TLS, settings, a plain-HTTP token service) or an answer that breaks the protocol is
    /// given again to every attempt, so callers fail at once instead of waiting out retries.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Unreachable { .. }
                | RegistryError::Server { .. }
                | RegistryError::RateLimited { .. }
                | RegistryError::Interrupted { .. }
        )
    }

    /// A few words naming the failure, when it is the host's rather than one image's (the
    /// host is unreachable, refuses TLS or credentials, hangs, fails): a report lists each
    /// such failure once, with the images it affects, and names it in a line per image by
    /// these words.
    pub(crate) fn host_wide(&self) -> Option<String> {
        Some(match self {
            RegistryError::Unreachable { host, .. } => format!("cannot reach {host}"),
            RegistryError::Tls { host, .. } => format!("TLS with {host} failed"),
            RegistryError::AuthRequired { host } => format!("{host} requires credentials"),
            RegistryError::AuthRefused { host, .. } => format!("{host} refused the credentials"),
            RegistryError::Server { host, status, .. } => format!("{host} answers HTTP {status}"),
            RegistryError::RateLimited { host, .. } => format!("{host} is rate-limiting"),
            RegistryError::TimedOut { host, .. } => format!("{host} timed out"),
            RegistryError::PlainHttpRealm { host, .. }
            | RegistryError::CredentialsToPlainRealm { host, .. } => {
                format!("{host}'s token service is plain HTTP")
            }
            RegistryError::Credentials { host, .. } => {
                format!("credentials for {host} could not be read")
            }
            RegistryError::Settings { host, .. } => format!("settings for registry {host}"),
            RegistryError::Denied { .. }
            | RegistryError::Interrupted { .. }
            | RegistryError::Protocol { .. } => return None,
        })
    }
}

/// An answer read whole (within a bound).
pub(crate) struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The unread body, for a call that asked to stream a successful answer: bytes only, each
    /// wait for the next bounded by `--request-timeout`, so no caller sees the HTTP client.
    pub stream: Option<blobs::ByteStream>,
}

/// What a manifest HEAD learned. `Unsupported` (400, 405, 501: some registries and proxies
/// answer HEAD badly) is its own answer, so that a fall-back to GET is taken for that and not
/// for any protocol error that happens to pass by (a token service's, say).
enum Head {
    Found(Fetched),
    Missing,
    Unsupported,
}

/// One request's parts, for [`Registry::exchange`].
#[derive(Default)]
struct Call<'a> {
    method: Method,
    /// A path on the host (`/v2/...`), or an absolute URL (an upload `Location`).
    path: &'a str,
    accept: Option<&'a str>,
    content_type: Option<&'a str>,
    /// Sent for a streamed body, whose length reqwest cannot know.
    content_length: Option<u64>,
    /// `Content-Range` of a chunk of a blob upload (`start-end`, inclusive).
    content_range: Option<String>,
    body: Option<CallBody>,
    /// Bound on a body read whole.
    limit: usize,
    /// Leave a successful answer's body unread, in `Fetched::stream`.
    stream: bool,
    /// `Range: bytes=N-`: the body from byte N on (a blob download continued).
    range_from: Option<u64>,
}

enum CallBody {
    /// Sent again on a retry.
    Bytes(bytes::Bytes),
    /// Sent once: a retry after it went out is an error for the caller to handle.
    Once(Option<blobs::ByteStream>),
}

/// When a request last moved (a piece of its body taken by the connection, or an answer),
/// for [`Registry::within`]: a timeout counts idle time, not the whole transfer.
#[derive(Clone)]
struct Activity(Arc<(Instant, std::sync::atomic::AtomicU64)>);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new((
            Instant::now(),
            std::sync::atomic::AtomicU64::new(0),
        )))
    }

    fn touch(&self) {
        let millis = u64::try_from(self.0.0.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.1.store(millis, std::sync::atomic::Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.0.1.load(std::sync::atomic::Ordering::Relaxed));
        self.0.0.elapsed().saturating_sub(last)
    }

    /// `body` as a request body that marks activity as each piece is taken.
    fn body(&self, body: blobs::ByteStream) -> reqwest::Body {
        let me = self.clone();
        reqwest::Body::wrap_stream(body.inspect(move |_| me.touch()))
    }

    /// Bytes as a request body: small ones whole, larger ones in pieces that mark activity (a
    /// 1 MiB chunk on a slow link must not look idle).
    fn bytes_body(&self, bytes: bytes::Bytes) -> reqwest::Body {
        const PIECE: usize = 64 << 10;
        if bytes.len() <= PIECE {
            return reqwest::Body::from(bytes);
        }
        let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = (0..bytes.len())
            .step_by(PIECE)
            .map(|at| Ok(bytes.slice(at..(at + PIECE).min(bytes.len()))))
            .collect();
        self.body(Box::pin(futures_util::stream::iter(pieces)))
    }
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Docker-Content-Digest`, which registries send for manifests.
    pub(crate) fn digest_header(&self) -> Option<&str> {
        self.header("docker-content-digest")
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        self.header("content-type")
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }
}

/// The client: one per command run, shared by every task.
pub(crate) struct Registry {
    options: RegistryOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    permits: Semaphore,
}

/// What we know of one registry host.
struct Host {
    /// `HOST[:PORT]` as in references.
    name: String,
    /// `https://HOST[:PORT]`, or `http://` for insecure ones.
    base: String,
    http: reqwest::Client,
    credential: OnceLock<Result<Option<FoundCredential>, String>>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, (Secret, Instant)>>,
    /// Set when a request exhausted its attempts: later ones fail at once with the same
    /// error instead of each waiting out its own retries.
    down: OnceLock<RegistryError>,
    /// Whether a client certificate is configured, for advice on a refused handshake.
    has_identity: bool,
    /// Set once the host refused a whole blob in one request (HTTP 413): uploads go in chunks.
    chunked: std::sync::atomic::AtomicBool,
    /// The largest blob the host took whole: smaller ones need not be kept for a chunked retry.
    largest_whole: std::sync::atomic::AtomicU64,
    /// Set once a request to it was announced as waiting ([`NOTICE_AFTER`]).
    announced_wait: std::sync::atomic::AtomicBool,
}

/// reqwest and kube are built without a default crypto provider (ring compiles in seconds where
/// aws-lc takes minutes); this installs ring once. A second install fails harmlessly.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Registry {
    pub(crate) fn new(options: RegistryOptions) -> Registry {
        install_crypto_provider();
        let permits = Semaphore::new(options.concurrency.max(1));
        Registry {
            options,
            hosts: Mutex::new(HashMap::new()),
            permits,
        }
    }

    /// How many requests may be in flight at once (`--concurrency`).
    pub(crate) fn concurrency(&self) -> usize {
        self.options.concurrency.max(1)
    }

    fn host(&self, name: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(name) {
            return Ok(h.clone());
        }
        let settings = self.options.settings_for(name).cloned().unwrap_or_default();
        let host = Arc::new(Host::new(name, &settings, &self.options)?);
        hosts.insert(name.to_string(), host.clone());
        Ok(host)
    }

    /// HEAD of a manifest: `Ok(None)` when the registry says it does not exist.
    async fn head_manifest(&self, image: &Reference) -> Result<Head, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
        let path = manifest_path(image);
        let f = self
            .fetch(
                &host,
                &pull_scope(image),
                Method::HEAD,
                &path,
                Some(MANIFEST_ACCEPT),
                0,
            )
            .await?;
        match f.status.as_u16() {
            200..=299 => Ok(Head::Found(f)),
            404 => Ok(Head::Missing),
            // Some registries and proxies answer HEAD badly; the caller falls back to GET.
            405 | 501 | 400 => Ok(Head::Unsupported),
            _ => Err(unexpected(&host, &path, &f)),
        }
    }

    /// The digest of the manifest `image` names, `None` when there is none: a HEAD, or a GET
    /// where the registry answers HEAD badly or without `Docker-Content-Digest`.
    pub(crate) async fn manifest_digest(
        &self,
        image: &Reference,
    ) -> Result<Option<Digest>, RegistryError> {
        match self.head_manifest(image).await? {
            Head::Missing => return Ok(None),
            Head::Found(f) => {
                // A malformed header is no answer: the GET below hashes the manifest itself.
                if let Some(d) = f.digest_header().and_then(|d| Digest::parse(d).ok()) {
                    return Ok(Some(d));
                }
            }
            Head::Unsupported => {}
        }
        Ok(self.get_manifest(image).await?.map(|m| m.digest))
    }

    /// GET of a manifest, its digest verified against `Docker-Content-Digest` and the digest in
    /// the reference: `Ok(None)` when the registry says it does not exist.
    pub(crate) async fn get_manifest(
        &self,
        image: &Reference,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
        let path = manifest_path(image);
        let accept = Some(MANIFEST_ACCEPT);
        let Some(f) = self
            .get_found(&host, image, &path, accept, MAX_MANIFEST_BYTES)
            .await?
        else {
            return Ok(None);
        };
        let digest = Digest::sha256(&f.body);
        for (claimed, by) in [
            (f.digest_header(), "its Docker-Content-Digest header"),
            (image.digest(), "the reference"),
        ] {
            if let Some(claimed) = claimed
                && claimed.starts_with("sha256:")
                && digest != claimed
            {
                return Err(RegistryError::Protocol {
                    host: host.name.clone(),
                    what: format!(
                        "the manifest at {path} has digest {digest}, but {by} says {claimed}; the registry returned corrupt data"
                    ),
                });
            }
        }
        let media_type = f
            .content_type()
            .map(str::to_string)
            .or_else(|| media_type_in(&f.body))
            .unwrap_or_default();
        Ok(Some(RawManifest {
            bytes: bytes::Bytes::from(f.body),
            media_type,
            digest,
        }))
    }

    /// GET of a small blob (an image config), verified against its digest.
    pub(crate) async fn get_small_blob(
        &self,
        image: &Reference,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
        let path = blob_path(image, digest);
        let Some(f) = self
            .get_found(&host, image, &path, None, MAX_SMALL_BODY)
            .await?
        else {
            return Ok(None);
        };
        if digest.starts_with("sha256:") && Digest::sha256(&f.body) != digest {
            return Err(RegistryError::Protocol {
                host: host.name.clone(),
                what: format!(
                    "blob {digest} does not match its digest; the registry returned corrupt data"
                ),
            });
        }
        Ok(Some(f.body))
    }

    /// The tags of a repository (following `Link` pages), or `None` when the registry does not
    /// know the repository. One request answers for every tag of a repository, where a HEAD
    /// per tag costs one each.
    pub(crate) async fn list_tags(
        &self,
        image: &Reference,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        #[derive(Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let host = self.host(hub::api_host(image.domain()))?;
        let mut path = format!("/v2/{}/tags/list", image.path());
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let Some(f) = self
                .get_found(&host, image, &path, None, MAX_MANIFEST_BYTES)
                .await?
            else {
                return Ok(None);
            };
            let page: TagList =
                serde_json::from_slice(&f.body).map_err(|e| RegistryError::Protocol {
                    host: host.name.clone(),
                    what: format!("{path} answered something that is not a tag list: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match f.header("link").and_then(next_link) {
                Some(next) => path = next,
                None => return Ok(Some(tags)),
            }
        }
        Err(RegistryError::Protocol {
            host: host.name.clone(),
            what: format!(
                "the tag list of {} runs past {MAX_TAG_PAGES} pages",
                image.path()
            ),
        })
    }

    /// The referrers of the manifest `digest` in `image`'s repository, from the OCI 1.1
    /// referrers API (`GET /v2/<name>/referrers/<digest>`, its `Link` pages followed): the
    /// index bodies, each bounded like a manifest. `None` when the registry has no such API (it
    /// answers 404, 400, 405 or 501, or with something that is not an index, as
    /// docker-registry 2.8 does): the caller reads the `sha256-<hex>` fallback tag instead.
    pub(crate) async fn referrers(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<Vec<u8>>>, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
        let mut path = format!("/v2/{}/referrers/{digest}", image.path());
        let mut pages = Vec::new();
        // Pages are kept until all are read: their total is bounded, not only each one, and a
        // `Link` that leads back to a page read already ends the list.
        let mut total = 0usize;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_TAG_PAGES {
            if !seen.insert(path.clone()) {
                return Ok(Some(pages));
            }
            let f = self
                .fetch(
                    &host,
                    &pull_scope(image),
                    Method::GET,
                    &path,
                    Some(crate::oci::media::OCI_INDEX),
                    MAX_MANIFEST_BYTES,
                )
                .await?;
            match f.status.as_u16() {
                200 => {}
                // No API; or one this login may not read, whose fallback tag may still be
                // readable (or refuse in its own words).
                400 | 401 | 403 | 404 | 405 | 501 => return Ok(None),
                _ => return Err(unexpected(&host, &path, &f)),
            }
            // An answer that is not an index is a registry without the API (a catch-all page).
            total += f.body.len();
            if total > MAX_REFERRER_BYTES {
                return Err(RegistryError::Protocol {
                    host: host.name.clone(),
                    what: format!(
                        "the referrers list of {}@{digest} is more than {MAX_REFERRER_BYTES} bytes",
                        image.path()
                    ),
                });
            }
            match crate::oci::is_index(&f.body) {
                Ok(true) => pages.push(f.body.clone()),
                _ if pages.is_empty() => return Ok(None),
                _ => {
                    return Err(RegistryError::Protocol {
                        host: host.name.clone(),
                        what: format!("{path} answered something that is not a referrers index"),
                    });
                }
            }
            match f.header("link").and_then(next_link) {
                Some(next) => path = next,
                None => return Ok(Some(pages)),
            }
        }
        Err(RegistryError::Protocol {
            host: host.name.clone(),
            what: format!(
                "the referrers list of {}@{digest} runs past {MAX_TAG_PAGES} pages",
                image.path()
            ),
        })
    }

    /// A GET that expects 200, or 404 for "not there" (`None`).
    async fn get_found(
        &self,
        host: &Host,
        image: &Reference,
        path: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Option<Fetched>, RegistryError> {
        let f = self
            .fetch(host, &pull_scope(image), Method::GET, path, accept, limit)
            .await?;
        match f.status.as_u16() {
            200 => Ok(Some(f)),
            404 => Ok(None),
            _ => Err(unexpected(host, path, &f)),
        }
    }

    /// One request with authentication, retries and the bound on requests in flight. A 401 is
    /// answered once (by logging in as the challenge asks); 429, 5xx and dropped connections are
    /// retried per the policy. Any other status is returned to the caller.
    async fn fetch(
        &self,
        host: &Host,
        scope: &str,
        method: Method,
        path: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, RegistryError> {
        let call = Call {
            method,
            path,
            accept,
            limit,
            ..Call::default()
        };
        self.exchange(host, scope, call).await
    }

    /// [`Registry::fetch`] with everything a write needs: a body (replayable bytes, or a
    /// stream that can be sent once), a content type, and an answer left unread for streaming.
    async fn exchange(
        &self,
        host: &Host,
        scope: &str,
        call: Call<'_>,
    ) -> Result<Fetched, RegistryError> {
        let Call {
            method,
            path,
            accept,
            limit,
            content_type,
            content_length,
            content_range,
            mut body,
            stream,
            range_from,
        } = call;
        let url = if path.starts_with('/') {
            format!("{}{path}", host.base)
        } else {
            path.to_string()
        };
        let policy = self.options.retry;
        let mut attempt = 1;
        let mut answered_challenge = false;
        loop {
            if let Some(e) = host.down.get() {
                return Err(e.clone());
            }
            let outcome = {
                let _permit =
                    self.permits
                        .acquire()
                        .await
                        .map_err(|_| RegistryError::Protocol {
                            host: host.name.clone(),
                            what: "the request pool was closed".into(),
                        })?;
                let auth = self.authorization(host, scope).await?;
                let activity = Activity::new();
                let mut req = host.http.request(method.clone(), &url);
                if let Some(a) = accept {
                    req = req.header(ACCEPT, a);
                }
                if let Some(a) = auth {
                    req = req.header(AUTHORIZATION, a);
                }
                if let Some(t) = content_type {
                    req = req.header(CONTENT_TYPE, t);
                }
                let length = match &body {
                    // A body of bytes may go in pieces, whose length reqwest would not know.
                    Some(CallBody::Bytes(b)) => Some(b.len() as u64),
                    _ => content_length,
                };
                if let Some(n) = length {
                    req = req.header(CONTENT_LENGTH, n);
                }
                if let Some(r) = &content_range {
                    req = req.header(reqwest::header::CONTENT_RANGE, r.as_str());
                }
                if let Some(from) = range_from {
                    req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
                }
                match &mut body {
                    Some(CallBody::Bytes(b)) => req = req.body(activity.bytes_body(b.clone())),
                    Some(CallBody::Once(once)) => match once.take() {
                        Some(b) => req = req.body(activity.body(b)),
                        // Only a caller's mistake gets here: a spent body returns below.
                        None => {
                            return Err(RegistryError::Protocol {
                                host: host.name.clone(),
                                what: format!("{method} {path} was given a spent body"),
                            });
                        }
                    },
                    None => {}
                }
                let what = request_what(&method, path);
                match self.within(host, &what, &activity, req.send()).await {
                    None => Err(Transport::TimedOut),
                    Some(Ok(resp)) if stream && resp.status().is_success() => {
                        let (status, headers) = (resp.status(), resp.headers().clone());
                        use futures_util::TryStreamExt as _;
                        let bytes = resp.bytes_stream().map_err(std::io::Error::other);
                        let body: blobs::ByteStream = match self.options.request_timeout {
                            Some(t) => blobs::idle_bounded(Box::pin(bytes), t, &host.name),
                            None => Box::pin(bytes),
                        };
                        Ok(Fetched {
                            status,
                            headers,
                            body: Vec::new(),
                            stream: Some(body),
                        })
                    }
                    Some(Ok(resp)) => {
                        let limit = if method == Method::HEAD { 0 } else { limit };
                        read_bounded(resp, limit, self.options.request_timeout).await
                    }
                    Some(Err(e)) => Err(Transport::Http(e)),
                }
            };
            let (retry_after, failure) = match outcome {
                Ok(f) if f.status == StatusCode::UNAUTHORIZED => {
                    if answered_challenge {
                        return Err(self.refusal(host));
                    }
                    answered_challenge = true;
                    self.learn_challenge(host, scope, &f)?;
                    continue;
                }
                Ok(f) if f.status == StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Denied {
                        host: host.name.clone(),
                        scope: scope.to_string(),
                        origin: self.origin(host),
                    });
                }
                Ok(f) if is_retryable_status(f.status.as_u16()) => {
                    let after = f.header("retry-after").and_then(parse_retry_after);
                    let error = if f.status == StatusCode::TOO_MANY_REQUESTS {
                        RegistryError::RateLimited {
                            host: host.name.clone(),
                            attempts: attempt,
                        }
                    } else {
                        RegistryError::Server {
                            host: host.name.clone(),
                            status: f.status.as_u16(),
                            attempts: attempt,
                            detail: error_detail(&f.body),
                        }
                    };
                    (after, error)
                }
                Ok(f) => return Ok(f),
                Err(Transport::TooLarge) => {
                    return Err(RegistryError::Protocol {
                        host: host.name.clone(),
                        what: format!(
                            "the answer to {method} {path} is larger than {limit} bytes; refusing to read it"
                        ),
                    });
                }
                // Not retried: a registry that let a request sit through the whole timeout
                // mostly does it again, and attempts x timeout is how a hung registry used to
                // cost four minutes of silence. Later requests fail at once.
                Err(Transport::TimedOut) => {
                    let error = self.timed_out(host, &request_what(&method, path));
                    let _ = host.down.set(error.clone());
                    return Err(host.down.get().cloned().unwrap_or(error));
                }
                Err(Transport::Http(e)) => {
                    // Without the URL, one failure of the host reads the same for every image
                    // it fails, and is said once.
                    let e = e.without_url();
                    let cause = error_chain(&e);
                    if is_tls_failure(&e) {
                        let error = RegistryError::Tls {
                            host: host.name.clone(),
                            cause,
                        };
                        let _ = host.down.set(error.clone());
                        return Err(host.down.get().cloned().unwrap_or(error));
                    }
                    let error = RegistryError::Unreachable {
                        host: host.name.clone(),
                        scheme: host.scheme(),
                        cause: if e.is_body() || e.is_decode() {
                            format!("connection dropped mid-response: {cause}")
                        } else {
                            cause
                        },
                        attempts: attempt,
                        // A registry that wants a client certificate may just hang up after
                        // the handshake, which looks like any dropped connection.
                        hint: if host.base.starts_with("https:") && !host.has_identity {
                            "; if it demands a client certificate, pass --cert-file and --key-file"
                        } else {
                            ""
                        },
                    };
                    (None, error)
                }
            };
            if attempt >= policy.attempts {
                let _ = host.down.set(failure.clone());
                return Err(host.down.get().cloned().unwrap_or(failure));
            }
            // A streamed body went with the failed attempt and cannot be sent again from here:
            // the caller, who can read its source again, decides (the host is not latched
            // down, since the cut may have been the source's).
            if let Some(CallBody::Once(None)) = &body {
                return Err(RegistryError::Interrupted {
                    host: host.name.clone(),
                    what: format!("{} was cut: {failure}", request_what(&method, path)),
                });
            }
            attempt += 1;
            tokio::time::sleep(policy.delay(attempt, retry_after)).await;
        }
    }

    /// The `Authorization` header for a request in `scope`, if the host has asked for one.
    async fn authorization(
        &self,
        host: &Host,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = host
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credential(host)? {
                Some(FoundCredential {
                    credential: Credential::Password { username, password },
                    ..
                }) => Ok(Some(basic_header(&username, &password))),
                _ => Err(RegistryError::AuthRequired {
                    host: host.name.clone(),
                }),
            },
            Some(Challenge::Bearer { realm, service }) => {
                {
                    let tokens = host.tokens.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some((token, until)) = tokens.get(scope)
                        && Instant::now() < *until
                    {
                        return Ok(Some(format!("Bearer {}", token.expose())));
                    }
                }
                let (token, until) = self
                    .request_token(host, &realm, service.as_deref(), scope)
                    .await?;
                let header = format!("Bearer {}", token.expose());
                host.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(scope.to_string(), (token, until));
                Ok(Some(header))
            }
        }
    }

    /// Asks the token service named by a Bearer challenge for a token for `scope`.
    async fn request_token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(Secret, Instant), RegistryError> {
        let credential = self.credential(host)?;
        let url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            host: host.name.clone(),
            what: format!("the token service address {realm:?} in its challenge is not a URL: {e}"),
        })?;
        if let Err(e) = self.realm_allowed(host, &url, credential.is_some()) {
            // The same answer for every later request to this registry, said once.
            let _ = host.down.set(e.clone());
            return Err(e);
        }
        // Built again for each attempt: a request is consumed by sending it.
        let request = || match credential.as_ref().map(|c| &c.credential) {
            Some(Credential::IdentityToken(refresh)) => {
                // OAuth2 refresh-token grant, as docker does with an identity token.
                let mut form = reqwest::Url::parse("http://form/").expect("static URL");
                form.query_pairs_mut()
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh.expose())
                    .append_pair("service", service.unwrap_or_default())
                    .append_pair("scope", scope)
                    .append_pair("client_id", "kubectl-airgap");
                host.http
                    .post(url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or_default().to_string())
            }
            other => {
                let mut url = url.clone();
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    // A mount asks for two repositories at once: one scope parameter each.
                    for one in scope.split(' ') {
                        q.append_pair("scope", one);
                    }
                }
                let req = host.http.get(url);
                match other {
                    Some(Credential::Password { username, password }) => {
                        req.header(AUTHORIZATION, basic_header(username, password))
                    }
                    _ => req,
                }
            }
        };
        let what = format!("the token request to {realm}");
        // The same retry policy as every registry request: a token service sheds load with
        // 429 and 503 and drops connections like the registry it serves.
        let policy = self.options.retry;
        let mut attempt = 1;
        let f = loop {
            let activity = Activity::new();
            let f = match self.within(host, &what, &activity, request().send()).await {
                Some(Ok(resp)) => {
                    read_bounded(resp, MAX_SMALL_BODY, self.options.request_timeout).await
                }
                Some(Err(e)) => Err(Transport::Http(e)),
                None => Err(Transport::TimedOut),
            };
            let retry_after = match &f {
                Ok(f) if is_retryable_status(f.status.as_u16()) => {
                    f.header("retry-after").and_then(parse_retry_after)
                }
                Err(Transport::Http(e)) if !is_tls_failure(e) => None,
                _ => break f,
            };
            if attempt >= policy.attempts {
                break f;
            }
            attempt += 1;
            tokio::time::sleep(policy.delay(attempt, retry_after)).await;
        };
        let f = match f {
            Ok(f) => f,
            Err(Transport::Http(e)) => {
                return Err(RegistryError::Unreachable {
                    host: format!("{} (token service {realm})", host.name),
                    scheme: if realm.starts_with("http:") {
                        "plain HTTP"
                    } else {
                        "HTTPS"
                    },
                    cause: error_chain(&e.without_url()),
                    attempts: attempt,
                    hint: "",
                });
            }
            Err(Transport::TooLarge) => {
                return Err(RegistryError::Protocol {
                    host: host.name.clone(),
                    what: "the token service's answer is too large".into(),
                });
            }
            Err(Transport::TimedOut) => {
                let error = self.timed_out(host, &what);
                let _ = host.down.set(error.clone());
                return Err(error);
            }
        };
        match f.status.as_u16() {
            200 => {}
            401 | 403 => return Err(self.refusal(host)),
            status => {
                return Err(RegistryError::Protocol {
                    host: host.name.clone(),
                    what: format!("the token service {realm} answered HTTP {status}"),
                });
            }
        }
        let answer: TokenResponse =
            serde_json::from_slice(&f.body).map_err(|e| RegistryError::Protocol {
                host: host.name.clone(),
                what: format!(
                    "the token service {realm} answered something that is not a token: {e}"
                ),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                host: host.name.clone(),
                what: format!("the token service {realm} answered without a token"),
            })?;
        // The spec's default lifetime is 60 s; renew a little early.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(10) - 5);
        Ok((Secret::new(token), Instant::now() + lifetime))
    }

    /// Awaits `fut` (a request being sent and answered) while `activity` shows it moving within
    /// `--request-timeout`; `None` when it sat idle that long. After [`NOTICE_AFTER`] idle,
    /// says on stderr what it waits for, once per host.
    async fn within<F: std::future::Future>(
        &self,
        host: &Host,
        what: &str,
        activity: &Activity,
        fut: F,
    ) -> Option<F::Output> {
        let timeout = self.options.request_timeout;
        let mut fut = std::pin::pin!(fut);
        let mut noticed = false;
        loop {
            let idle = activity.idle();
            if timeout.is_some_and(|t| idle >= t) {
                return None;
            }
            let until_notice = (!noticed).then(|| NOTICE_AFTER.saturating_sub(idle));
            let until_timeout = timeout.map(|t| t - idle);
            let wait = match (until_notice, until_timeout) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(w) => w,
                    None => return Some(fut.await),
                },
            };
            tokio::select! {
                out = &mut fut => return Some(out),
                () = tokio::time::sleep(wait) => {}
            }
            if !noticed && activity.idle() >= NOTICE_AFTER {
                noticed = true;
                if !host
                    .announced_wait
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    let limit = match timeout {
                        Some(t) => format!("timeout {}, --request-timeout", humanize(t)),
                        None => "no timeout: --request-timeout 0".into(),
                    };
                    eprintln!("waiting for {} to answer {what} ({limit})", host.name);
                }
            }
        }
    }

    fn timed_out(&self, host: &Host, what: &str) -> RegistryError {
        RegistryError::TimedOut {
            host: host.name.clone(),
            what: what.to_string(),
            after: self
                .options
                .request_timeout
                .map(humanize)
                .unwrap_or_default(),
        }
    }

    /// Whether a token may be asked of `realm`. A token service is a host like any other: plain
    /// HTTP only when the user named its `HOST[:PORT]` insecure, for a registry on TLS as for one
    /// on plain HTTP (the registry's challenge alone must not downgrade the transport). And a
    /// credential goes over plain HTTP only to the registry's own host name: a token service on
    /// another host gets one over HTTPS only, as Docker and containerd send them.
    fn realm_allowed(
        &self,
        host: &Host,
        realm: &reqwest::Url,
        with_credential: bool,
    ) -> Result<(), RegistryError> {
        match realm.scheme() {
            "https" => return Ok(()),
            "http" => {}
            other => {
                return Err(RegistryError::Protocol {
                    host: host.name.clone(),
                    what: format!(
                        "its token service {realm} uses {other}:, neither https: nor http:; the registry is misconfigured"
                    ),
                });
            }
        }
        let realm_name = realm.host_str().unwrap_or_default().to_ascii_lowercase();
        let realm_host = match realm.port() {
            Some(port) => format!("{realm_name}:{port}"),
            None => realm_name.clone(),
        };
        let named = self
            .options
            .hosts
            .iter()
            .any(|(h, o)| o.insecure && h.eq_ignore_ascii_case(&realm_host));
        if !named {
            return Err(RegistryError::PlainHttpRealm {
                host: host.name.clone(),
                realm: realm.to_string(),
                realm_host,
            });
        }
        if with_credential && !hostname(&host.name).eq_ignore_ascii_case(&realm_name) {
            return Err(RegistryError::CredentialsToPlainRealm {
                host: host.name.clone(),
                realm: realm.to_string(),
            });
        }
        Ok(())
    }

    /// Records what a 401 asked for. A second 401 for the same request is a refusal.
    fn learn_challenge(&self, host: &Host, scope: &str, f: &Fetched) -> Result<(), RegistryError> {
        let challenge = f
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(Challenge::parse)
            .next()
            .ok_or_else(|| RegistryError::Protocol {
                host: host.name.clone(),
                what: "answered 401 without a Basic or Bearer challenge".into(),
            })?;
        if challenge == Challenge::Basic && self.credential(host)?.is_none() {
            return Err(RegistryError::AuthRequired {
                host: host.name.clone(),
            });
        }
        host.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(scope);
        *host.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge);
        Ok(())
    }

    fn credential(&self, host: &Host) -> Result<Option<FoundCredential>, RegistryError> {
        host.credential
            .get_or_init(|| auth::find_credential(&host.name, self.options.login.as_ref()))
            .clone()
            .map_err(|why| RegistryError::Credentials {
                host: host.name.clone(),
                why,
            })
    }

    fn origin(&self, host: &Host) -> String {
        match self.credential(host) {
            Ok(Some(c)) => c.origin,
            _ => "no credentials (anonymous)".to_string(),
        }
    }

    fn refusal(&self, host: &Host) -> RegistryError {
        match self.credential(host) {
            Ok(Some(c)) => RegistryError::AuthRefused {
                host: host.name.clone(),
                origin: c.origin,
            },
            Ok(None) => RegistryError::AuthRequired {
                host: host.name.clone(),
            },
            Err(e) => e,
        }
    }
}

impl Host {
    /// How requests to it travel, in words for messages.
    fn scheme(&self) -> &'static str {
        if self.base.starts_with("http:") {
            "plain HTTP"
        } else {
            "HTTPS"
        }
    }

    fn new(
        name: &str,
        settings: &HostOptions,
        options: &RegistryOptions,
    ) -> Result<Host, RegistryError> {
        let bad = |why: String| RegistryError::Settings {
            host: hub::canonical(name).to_string(),
            why,
        };
        let read = |what: &str, p: &PathBuf| {
            std::fs::read(p).map_err(|e| bad(format!("reading {what} {}: {e}", p.display())))
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("kubectl-airgap/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(options.concurrency.max(1));
        let mut roots = Vec::new();
        if let Some(ca) = &settings.ca_file {
            let pem = read("CA file", ca)?;
            roots = tls::pem_certificates(&pem).map_err(|e| {
                bad(format!(
                    "CA file {} holds no PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            if roots.is_empty() {
                return Err(bad(format!(
                    "CA file {} holds no PEM certificate",
                    ca.display()
                )));
            }
        }
        let identity = match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => Some(
                tls::client_identity(
                    &read("client certificate", cert)?,
                    &read("client key", key)?,
                )
                .map_err(|e| {
                    bad(format!(
                        "client certificate {} with key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?,
            ),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "a client certificate needs both --cert-file and --key-file".into(),
                ));
            }
        };
        // reqwest's own TLS set-up serves hosts with neither; see `tls` for why the others
        // get a configuration of ours.
        if !roots.is_empty() || identity.is_some() {
            let config = tls::client_config(roots, identity)
                .map_err(|e| bad(format!("setting up TLS: {e}")))?;
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("building the HTTP client: {}", error_chain(&e))))?;
        let scheme = if settings.insecure { "http" } else { "https" };
        Ok(Host {
            name: name.to_string(),
            base: format!("{scheme}://{name}"),
            http,
            credential: OnceLock::new(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            down: OnceLock::new(),
            has_identity: settings.cert_file.is_some(),
            chunked: std::sync::atomic::AtomicBool::new(false),
            largest_whole: std::sync::atomic::AtomicU64::new(0),
            announced_wait: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

enum Transport {
    Http(reqwest::Error),
    TooLarge,
    /// Idle for `--request-timeout`.
    TimedOut,
}

/// Reads an answer's body, refusing more than `limit` bytes, and waiting at most `idle` for
/// each next piece.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
    idle: Option<Duration>,
) -> Result<Fetched, Transport> {
    let status = resp.status();
    let headers = std::mem::take(resp.headers_mut());
    // Error bodies are read for their message only; a page of it is enough.
    let limit = if status.is_success() {
        limit
    } else {
        limit.max(64 << 10)
    };
    let mut body = Vec::new();
    loop {
        let next = match idle {
            Some(t) => tokio::time::timeout(t, resp.chunk())
                .await
                .map_err(|_| Transport::TimedOut)?,
            None => resp.chunk().await,
        };
        let Some(chunk) = next.map_err(Transport::Http)? else {
            break;
        };
        if body.len() + chunk.len() > limit {
            if status.is_success() {
                return Err(Transport::TooLarge);
            }
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers,
        body,
        stream: None,
    })
}

/// `</v2/x/tags/list?last=a&n=100>; rel="next"` → the path to fetch next.
fn next_link(header: &str) -> Option<String> {
    let (target, params) = header.split_once(';')?;
    if !params.contains("rel=\"next\"") {
        return None;
    }
    let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
    // Only a path on the same registry is followed, never another host.
    target.starts_with("/v2/").then(|| target.to_string())
}

/// `GET /v2/x/manifests/1` for a notice or an error: the path without its query, and of an
/// absolute URL (an upload's `Location`) the path alone.
fn request_what(method: &Method, path: &str) -> String {
    let path = match reqwest::Url::parse(path) {
        Ok(url) => url.path().to_string(),
        Err(_) => path.split('?').next().unwrap_or(path).to_string(),
    };
    format!("{method} {path}")
}

/// `30s`, `1m30s`, `500ms`: a timeout as the flag is written.
fn humanize(t: Duration) -> String {
    let secs = t.as_secs();
    match (secs, t.subsec_millis()) {
        (0, ms) => format!("{ms}ms"),
        (s, 0) if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        (s, 0) => format!("{s}s"),
        _ => format!("{}ms", t.as_millis()),
    }
}

/// `HOST` of `HOST[:PORT]` (`[::1]` of `[::1]:5000`).
fn hostname(name: &str) -> &str {
    match name.rfind(':') {
        Some(i) if !name[i..].contains(']') => &name[..i],
        _ => name,
    }
}

fn manifest_path(image: &Reference) -> String {
    let what = image.digest().or(image.tag()).unwrap_or("latest");
    format!("/v2/{}/manifests/{what}", image.path())
}

fn blob_path(image: &Reference, digest: &str) -> String {
    format!("/v2/{}/blobs/{digest}", image.path())
}

fn pull_scope(image: &Reference) -> String {
    format!("repository:{}:pull", image.path())
}

fn basic_header(username: &str, password: &Secret) -> String {
    use base64::Engine as _;
    let raw = format!("{username}:{}", password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn media_type_in(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(body).ok()?.media_type
}

/// The first message of a distribution error body, for a report.
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => e
            .errors
            .first()
            .map(|i| {
                format!(
                    " ({})",
                    [i.code.as_deref(), i.message.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": ")
                )
            })
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn unexpected(host: &Host, path: &str, f: &Fetched) -> RegistryError {
    RegistryError::Protocol {
        host: host.name.clone(),
        what: format!(
            "{path} answered HTTP {}{}",
            f.status.as_u16(),
            error_detail(&f.body)
        ),
    }
}

/// An error and its causes on one line. reqwest errors name the URL, which never holds a
/// credential here (credentials travel in headers only).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Whether a transport failure is a TLS verdict (a certificate refused, a handshake failed),
/// which waiting will not change. Judged by the error types in the chain, never by the text,
/// which holds the URL.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if is_rustls(s) {
            return true;
        }
        source = s.source();
    }
    false
}

/// A rustls error, bare or inside the `io::Error`s that the TLS stream layers wrap it in
/// (`io::Error::source` skips the wrapped error, so the chain alone does not reach it).
fn is_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => is_rustls(inner),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings keyed `docker.io` (as references and the config file write it) are found for
    /// requests, which go to `registry-1.docker.io`, for every way a reference names Docker Hub.
    #[test]
    fn docker_hub_settings_are_found_under_any_of_its_names() {
        let mut options = RegistryOptions::default();
        options.hosts.insert(
            "docker.io".into(),
            HostOptions {
                insecure: true,
                ..HostOptions::default()
            },
        );
        options
            .hosts
            .insert("quay.io".into(), HostOptions::default());
        for written in [
            "nginx:1",
            "docker.io/library/nginx:1",
            "index.docker.io/x/y:1",
        ] {
            let r = Reference::parse(written).unwrap();
            let api = hub::api_host(r.domain());
            assert_eq!(api, "registry-1.docker.io", "{written}");
            assert!(
                options.settings_for(api).is_some_and(|o| o.insecure),
                "{written}"
            );
        }
        assert!(options.settings_for("quay.io").is_some_and(|o| !o.insecure));
        assert!(options.settings_for("ghcr.io").is_none());
        // An exact key wins over an alias.
        options
            .hosts
            .insert("registry-1.docker.io".into(), HostOptions::default());
        assert!(
            options
                .settings_for("registry-1.docker.io")
                .is_some_and(|o| !o.insecure)
        );
    }

    #[test]
    fn timeouts_read_as_written() {
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_secs(120)), "2m");
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn requests_are_named_without_query_or_host() {
        assert_eq!(
            request_what(&Method::GET, "/v2/a/tags/list?n=100&last=x"),
            "GET /v2/a/tags/list"
        );
        assert_eq!(
            request_what(
                &Method::PUT,
                "https://r:5000/v2/a/blobs/uploads/u?digest=sha256:1"
            ),
            "PUT /v2/a/blobs/uploads/u"
        );
        assert_eq!(hostname("[::1]:5000"), "[::1]");
        assert_eq!(hostname("reg.local"), "reg.local");
    }

    #[tokio::test]
    async fn activity_counts_idle_time_from_the_last_piece() {
        let a = Activity::new();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(a.idle() >= Duration::from_millis(30));
        a.touch();
        assert!(a.idle() < Duration::from_millis(30));
    }
}
