//! `serve`: a read-only registry over bundles, for an air-gapped side with no registry.
//!
//! The classic offline package ships a `registry:2` image and asks for `docker load` and
//! `docker run`: a Docker daemon, which is what this tool promises not to need. `serve` answers
//! the pull side of the distribution API from the bundles themselves (directories, or tars read
//! in place), under the names `post-render` gives images in the mirror, so a cluster rendered
//! with `post-render --registry HOST:PORT` pulls straight from it, and a real registry can be
//! filled from it later (`push --source-mirror`, or Harbor's replication).
//!
//! - `route.rs`: what a request asks for, from its method, path and query alone (pure);
//! - `store.rs`: the bundles, indexed at start by mirror name (through `transfer::layout`, the
//!   reader `push --from` uses, and `mirror`'s naming);
//! - `auth.rs`: `--htpasswd`, bcrypt as docker-registry reads it;
//! - `http.rs`: connections, TLS, answers, the request log, the graceful stop.

mod auth;
mod http;
mod route;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::mirror::MirrorNaming;

/// How to serve.
pub(crate) struct Options {
    /// `--name TAG=REF`: names for a bundle's entries that carry none.
    pub names: Vec<String>,
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// `--tls-cert` and `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub htpasswd: Option<PathBuf>,
}

/// Indexes `bundles` under `naming` and serves them until SIGINT or SIGTERM. `naming` is
/// built by the caller from the flags; its registry is the name clients use for this server.
pub(crate) fn serve(
    bundles: &[PathBuf],
    naming: &MirrorNaming,
    options: &Options,
) -> anyhow::Result<()> {
    let store = store::Store::open(bundles, &options.names, naming)?;
    let auth = match &options.htpasswd {
        Some(path) => Some(Arc::new(auth::Htpasswd::load(path)?)),
        None => None,
    };
    if auth.is_some() && options.tls.is_none() {
        eprintln!(
            "warning: --htpasswd without --tls-cert: clients send their passwords in clear text; serve over TLS, or only on a network you trust"
        );
    }
    let tls = match &options.tls {
        Some((cert, key)) => Some(http::tls_acceptor(cert, key)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&options.addr)
            .await
            .with_context(|| {
                format!(
                    "--addr {}: cannot listen there (in use, or not an address of this host?)",
                    options.addr
                )
            })?;
        let local = listener.local_addr()?;
        let (images, repos) = store.counts();
        eprintln!(
            "serve: {images} images in {repos} repositories from {} bundle(s), on {}://{local}{}; clients name them {}/{}",
            bundles.len(),
            if tls.is_some() { "https" } else { "http" },
            if auth.is_some() { " (htpasswd)" } else { "" },
            naming.mirror().host(),
            store
                .example()
                .map_or_else(|| "...".to_string(), |e| format!("... (e.g. {}/{e})", naming.mirror().host()))
        );
        let app = Arc::new(http::App {
            store: Arc::new(store),
            auth,
        });
        http::run(listener, tls, app).await
    })
}
