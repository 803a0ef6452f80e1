//! `serve`: a read-only registry over bundles (see `crate::serve`); this file parses flags and
//! decides the name clients use.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, ExitStatus, MirrorArgs, settings};
use crate::serve::{Options, serve};

#[derive(Debug, Args)]
#[command(
    after_help = "--registry is the name clients use for this server, as given to \
`post-render --registry` (HOST:PORT[/PREFIX]; default: --addr); only its /PREFIX, --naming and \
--override change the paths served. Stop with SIGTERM or Ctrl-C: requests in flight finish."
)]
pub(crate) struct ServeArgs {
    /// Bundles to serve: directories or plain tars that `save -o` wrote (a .tar.gz or .tar.zst
    /// must be decompressed first: a tar is served in place, never unpacked)
    #[arg(required = true, value_name = "BUNDLE")]
    pub bundles: Vec<PathBuf>,
    /// Address to listen on, HOST:PORT (0.0.0.0:5000 for every interface)
    #[arg(long, env = "AIRGAP_SERVE_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// The server's certificate chain (PEM); serves HTTPS with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name an entry of the bundle that carries only a tag (`skopeo copy ... oci:DIR:TAG`) or
    /// no name: TAG=REF or sha256:HEX=REF (repeatable; one bundle only), as push --from takes it
    #[arg(long = "name", value_name = "TAG=REF")]
    pub names: Vec<String>,
    /// Require HTTP Basic login against this file (bcrypt entries: `htpasswd -Bbn USER PASS`)
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    #[command(flatten)]
    pub mirror: MirrorArgs,
}

pub(super) fn run(args: &ServeArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let mut mirror = args.mirror.clone();
    let mut settings = settings(&mirror, None, config)?;
    if settings.naming.is_none() {
        mirror.registry = Some(args.addr.clone());
        settings = super::settings(&mirror, None, config)?;
    }
    let naming = settings.require_mirror("serve")?;
    let options = Options {
        names: args.names.clone(),
        addr: args.addr.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        htpasswd: args.htpasswd.clone(),
    };
    serve(&args.bundles, naming, &options)?;
    Ok(EXIT_OK)
}
