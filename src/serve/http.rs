//! The HTTP side: connections (plain or TLS), authentication, answers, one log line a request,
//! and a stop that lets requests in flight finish.
//!
//! hyper's HTTP/1.1 server (hyper and hyper-util are in the tree through reqwest), one task a
//! connection. A blob is streamed from its file offset through bounded buffers
//! ([`STREAM_CHUNK`]), so memory follows the requests in flight, not the sizes of the layers:
//! eight clients pulling 400 MB keep the whole server at 33 MiB resident (the benchmark). HTTP/2 is not offered: registry clients
//! open several connections for parallel blobs anyway, and one protocol is less to get wrong.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::auth::Htpasswd;
use super::route::{Refusal, Route, byte_range, route};
use super::store::{Miss, PAGE_LIMIT, Store};

/// Bytes per read of a blob being served, read straight into the buffer that is sent: about
/// two of these per blob in flight (one being read, one being written). 512 KiB keeps 8 clients
/// × several parallel blobs far under 64 MB, and halves the trips to the blocking pool of
/// 256 KiB reads.
const STREAM_CHUNK: usize = 512 << 10;
/// A client that has not finished a TLS handshake by then is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A client that has not sent a request's headers by then (or an idle keep-alive connection)
/// is dropped, so silent connections cannot pile up.
const HEADER_READ: Duration = Duration::from_secs(30);
/// Connections served at once; with a read buffer of at most 512 KiB each, about 256 MiB in
/// the worst case (the benchmark's 8 clients peak at 31 MiB).
const MAX_CONNECTIONS: usize = 512;

type Body = BoxBody<Bytes, std::io::Error>;

/// What every connection shares.
pub(crate) struct App {
    pub store: Arc<Store>,
    pub auth: Option<Arc<Htpasswd>>,
}

/// The TLS configuration of `--tls-cert` and `--tls-key` (PEM: the certificate chain, leaf
/// first, and its private key).
pub(crate) fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert {}: {e}; give the server's certificate chain in PEM",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "--tls-cert {}: no certificate in it; give the server's certificate chain in PEM",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "--tls-key {}: {e}; give the certificate's private key in PEM",
            key.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("setting up TLS")?
    .with_no_client_auth()
    .with_single_cert(certs, private)
    .with_context(|| {
        format!(
            "--tls-cert {} and --tls-key {} are not a certificate and its key",
            cert.display(),
            key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `listener` until SIGINT or SIGTERM, then stops accepting and waits for the
/// requests in flight (a second signal stops at once).
pub(crate) async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let graceful = GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let stopped_by = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        eprintln!("serve: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Each connection may hold a read buffer of a blob: a bound on connections is a
                // bound on memory, whatever clients do. One over it is closed at once.
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    eprintln!("serve: {MAX_CONNECTIONS} connections open; closing the one from {remote}");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let watcher = graceful.watcher();
                let (app, tls) = (app.clone(), tls.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(req, remote).await) }
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ);
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                        Some(acceptor) => {
                            let Ok(Ok(stream)) =
                                tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await
                            else {
                                return;
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                    }
                });
            }
        }
    };
    drop(listener);
    eprintln!(
        "serve: {stopped_by}: accepting no more connections; letting {} open connection(s) finish their requests (send it again to stop at once)",
        graceful.count()
    );
    tokio::select! {
        _ = graceful.shutdown() => eprintln!("serve: stopped"),
        _ = term.recv() => eprintln!("serve: SIGTERM again: stopped with requests in flight"),
        _ = int.recv() => eprintln!("serve: SIGINT again: stopped with requests in flight"),
    }
    Ok(())
}

impl App {
    async fn handle(&self, req: Request<Incoming>, remote: SocketAddr) -> Response<Logged> {
        let started = Instant::now();
        let mut response = self.answer(&req).await;
        response.headers_mut().insert(
            "docker-distribution-api-version",
            HeaderValue::from_static("registry/2.0"),
        );
        let line = LogLine {
            remote,
            method: req.method().clone(),
            target: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            status: response.status().as_u16(),
            expected: response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .filter(|_| req.method() != Method::HEAD),
            started,
        };
        response.map(|inner| Logged {
            inner,
            sent: 0,
            line,
        })
    }

    async fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        if let Some(auth) = &self.auth {
            let header = req.headers().get(header::AUTHORIZATION);
            if !auth.allows(header.map(HeaderValue::as_bytes)).await {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required: log in with a user of the server's --htpasswd file",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"kubectl-airgap serve\""),
                );
                return r;
            }
        }
        let uri = req.uri();
        let head = req.method() == Method::HEAD;
        let route = match route(req.method().as_str(), uri.path(), uri.query()) {
            Ok(r) => r,
            Err(refusal) => return refused(refusal),
        };
        match route {
            Route::Ping => json(StatusCode::OK, serde_json::json!({})),
            Route::Catalog(page) => {
                let (names, more) = self.store.catalog(&page);
                let mut r = json(StatusCode::OK, serde_json::json!({ "repositories": names }));
                if more && let Some(last) = names.last() {
                    next_link(&mut r, "/v2/_catalog", page.n, last);
                }
                r
            }
            Route::Tags { name, page } => match self.store.tags(&name, &page) {
                Ok((tags, more)) => {
                    let body = serde_json::json!({ "name": name, "tags": tags });
                    let mut r = json(StatusCode::OK, body);
                    if more && let Some(last) = tags.last() {
                        next_link(&mut r, &format!("/v2/{name}/tags/list"), page.n, last);
                    }
                    r
                }
                Err(_) => unknown_name(&name),
            },
            Route::Manifest { name, reference } => {
                let found = match self.store.manifest(&name, &reference) {
                    Ok(f) => f,
                    Err(miss) => return missing(&name, miss, "manifest", shown(&reference)),
                };
                let builder = Response::builder()
                    .header(header::CONTENT_TYPE, &found.media_type)
                    .header("docker-content-digest", &found.digest)
                    .header(header::CONTENT_LENGTH, found.size)
                    .header(header::ETAG, format!("\"{}\"", found.digest));
                if head {
                    return respond(builder, empty());
                }
                let store = self.store.clone();
                let digest = found.digest.clone();
                match tokio::task::spawn_blocking(move || store.read_manifest(&digest)).await {
                    Ok(Ok(bytes)) => respond(builder, full(bytes)),
                    Ok(Err(e)) => internal(e),
                    Err(e) => internal(e.into()),
                }
            }
            Route::Blob { name, digest } => {
                let blob = match self.store.blob(&name, &digest) {
                    Ok(b) => b,
                    Err(miss) => return missing(&name, miss, "blob", blob_digest(&digest)),
                };
                let range = req
                    .headers()
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok());
                let (status, start, len) = match byte_range(range, blob.size) {
                    Ok(None) => (StatusCode::OK, 0, blob.size),
                    Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
                    Err(()) => {
                        let mut r = error(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            "RANGE_INVALID",
                            &format!(
                                "the blob is {} bytes; the range asked for lies outside it",
                                blob.size
                            ),
                        );
                        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", blob.size)) {
                            r.headers_mut().insert(header::CONTENT_RANGE, v);
                        }
                        return r;
                    }
                };
                let digest = blob_digest(&digest).to_string();
                let mut builder = Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header("docker-content-digest", &digest)
                    .header(header::CONTENT_LENGTH, len)
                    .header(header::ACCEPT_RANGES, "bytes")
                    .header(header::ETAG, format!("\"{digest}\""));
                if status == StatusCode::PARTIAL_CONTENT {
                    builder = builder.header(
                        header::CONTENT_RANGE,
                        format!("bytes {start}-{}/{}", start + len - 1, blob.size),
                    );
                }
                if head {
                    return respond(builder, empty());
                }
                let store = self.store.clone();
                let opened =
                    tokio::task::spawn_blocking(move || store.open_blob(&blob, &digest, start))
                        .await;
                let file = match opened {
                    Ok(Ok(f)) => f,
                    Ok(Err(e)) => return internal(e),
                    Err(e) => return internal(e.into()),
                };
                let stream = blob_stream(file, len);
                respond(builder, StreamBody::new(stream.map_ok(Frame::data)).boxed())
            }
            Route::Referrers {
                name,
                digest,
                artifact_type,
            } => match self
                .store
                .referrers(&name, &digest, artifact_type.as_deref())
            {
                Ok(manifests) => {
                    let mut r = json(
                        StatusCode::OK,
                        serde_json::json!({
                            "schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": manifests,
                        }),
                    );
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
                    );
                    if artifact_type.is_some() {
                        r.headers_mut().insert(
                            "oci-filters-applied",
                            HeaderValue::from_static("artifactType"),
                        );
                    }
                    r
                }
                Err(_) => unknown_name(&name),
            },
        }
    }
}

/// `len` bytes of `file` from where it stands, in chunks of [`STREAM_CHUNK`], each read on the
/// blocking pool straight into the buffer it is sent in (tokio's `File` would read into a
/// buffer of its own and copy: twice the memory and a copy more a byte). A file shorter than
/// `len` ends the stream with an error, so the client sees a cut body, not a wrong one.
fn blob_stream(
    file: std::fs::File,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::try_unfold((file, len), |(file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(STREAM_CHUNK as u64) as usize;
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut chunk = Vec::with_capacity(want);
            let read = (&file).take(want as u64).read_to_end(&mut chunk);
            read.map(|_| (file, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        if chunk.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the blob's file ended before its size",
            ));
        }
        let left = left - chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (file, left))))
    })
}

fn shown(target: &super::route::Target) -> &str {
    match target {
        super::route::Target::Tag(t) => t,
        super::route::Target::Digest(d) => blob_digest(d),
    }
}

fn blob_digest(d: &super::route::Digest) -> &str {
    d.as_str()
}

/// `Link: <PATH?last=LAST&n=N>; rel="next"`, as distribution paginates.
fn next_link(r: &mut Response<Body>, path: &str, n: Option<usize>, last: &str) {
    let n = n.unwrap_or(PAGE_LIMIT).min(PAGE_LIMIT);
    // Names and tags hold only [A-Za-z0-9._/-]: nothing to escape.
    if let Ok(v) = HeaderValue::from_str(&format!("<{path}?last={last}&n={n}>; rel=\"next\"")) {
        r.headers_mut().insert(header::LINK, v);
    }
}

/// A 404 for a manifest or blob (`what`) that repository `name` lacks, or for the name.
fn missing(name: &str, miss: Miss, what: &str, which: &str) -> Response<Body> {
    match miss {
        Miss::Name => unknown_name(name),
        Miss::Content => error(
            StatusCode::NOT_FOUND,
            &format!("{}_UNKNOWN", what.to_ascii_uppercase()),
            &format!("{name} has no {what} {which}"),
        ),
    }
}

fn unknown_name(name: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        &format!("repository {name} is not in the served bundles"),
    )
}

fn refused(refusal: Refusal) -> Response<Body> {
    let (status, code, message) = match refusal {
        Refusal::Unsupported(m) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", m),
        Refusal::NameInvalid(m) => (StatusCode::BAD_REQUEST, "NAME_INVALID", m),
        Refusal::DigestInvalid(m) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID", m),
        Refusal::ReferenceInvalid(m) => (StatusCode::BAD_REQUEST, "TAG_INVALID", m),
        Refusal::PageInvalid(m) => (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID", m),
        Refusal::NotFound => (
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "not a path of the registry API (/v2/...)".to_string(),
        ),
    };
    error(status, code, &message)
}

/// An OCI error body: `{"errors":[{"code":..., "message":...}]}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({ "errors": [{ "code": code, "message": message }] }),
    )
}

/// A 500 for what the server could not read; the cause goes to the log, not to the client.
fn internal(e: anyhow::Error) -> Response<Body> {
    eprintln!("serve: error: {e:#}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN",
        "the server could not read the bundle; see its log",
    )
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    respond(
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, bytes.len()),
        full(bytes),
    )
}

/// The response, or a 500 when a header value from the bundle (a media type) is not one.
fn respond(builder: hyper::http::response::Builder, body: Body) -> Response<Body> {
    builder.body(body).unwrap_or_else(|e| {
        eprintln!("serve: error: a response header is invalid: {e}");
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// What a request's log line says, written when its response body is done or dropped.
struct LogLine {
    remote: SocketAddr,
    method: Method,
    target: String,
    status: u16,
    /// The body's length, when one is sent.
    expected: Option<u64>,
    started: Instant,
}

/// A response body that counts what it hands on, and logs the request once it is dropped:
/// then the bytes and the time are those of the whole answer, cut short or not.
pub(crate) struct Logged {
    inner: Body,
    sent: u64,
    line: LogLine,
}

impl hyper::body::Body for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let l = &self.line;
        let cut = if l.expected.is_some_and(|n| self.sent < n) {
            " (cut short)"
        } else {
            ""
        };
        eprintln!(
            "{} {} {} {} {} {}ms{cut}",
            l.remote,
            l.method,
            crate::excerpt::Excerpt(&l.target)
                .to_string()
                .trim_matches('"'),
            l.status,
            self.sent,
            l.started.elapsed().as_millis()
        );
    }
}
