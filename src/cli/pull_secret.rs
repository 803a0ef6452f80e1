//! `pull-secret`: the mirror's credentials as a `kubernetes.io/dockerconfigjson` Secret in each
//! namespace that pulls from it, the Secret that `post-render --pull-secret` names in pod specs.
//!
//! The credentials come from where `docker login`, `podman login` and `skopeo login` put them
//! (the same lookup as every other command), or from `--username` and `--password-stdin`. They
//! are written to the API server and printed only with an explicit `-o yaml`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Args;

use super::cluster_args::{ConnectionArgs, NamespaceArgs};
use super::registry_args::LoginArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus};
use crate::cluster::{Cluster, Scope, docker_config_json, pull_secret};
use crate::config::ConfigFile;
use crate::manifest::pull_secret::validate_name;
use crate::mirror::Mirror;
use crate::registry::auth::{Credential, find_credential};

#[derive(Debug, Args)]
pub struct PullSecretArgs {
    /// Name of the Secret (the name to give `post-render --pull-secret`)
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
    /// The mirror registry, HOST[:PORT][/PREFIX]; the Secret holds HOST[:PORT]'s credentials
    #[arg(long, env = "AIRGAP_REGISTRY", value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Send nothing to the cluster; say what would be applied
    #[arg(long)]
    pub dry_run: bool,
    /// Print the Secrets, credentials included (yaml)
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<SecretFormat>,
    /// The kubeconfig cluster to use
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretFormat {
    Yaml,
}

pub fn run(args: &PullSecretArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    validate_name(&args.name).map_err(anyhow::Error::msg)?;
    let (file, _) = ConfigFile::load(config)?;
    let registry = args.registry.clone().or(file.registry).context(
        "pull-secret needs the mirror registry: pass --registry HOST[:PORT], set AIRGAP_REGISTRY, or set registry in the config file",
    )?;
    let host = Mirror::parse(&registry)?.host().to_string();
    let login = args.login.login(&host)?;
    let found = find_credential(&host, login.as_ref())
        .map_err(|e| anyhow::anyhow!("credentials for {host}: {e}"))?
        .with_context(|| {
            format!(
                "no credentials for {host} in the Docker config, a credential helper, or containers auth.json; run `docker login {host}` (or podman/skopeo login), or pass --username and --password-stdin"
            )
        })?;
    let Credential::Password { username, password } = &found.credential else {
        anyhow::bail!(
            "the credential for {host} in {} is an identity token (OAuth2 refresh token), which the kubelet cannot use; log in with a user name and password or access token",
            found.origin
        );
    };
    let config_json = docker_config_json(&host, username, password.expose());
    eprintln!("credentials for {host}: from {}", found.origin);

    let runtime = super::runtime()?;
    let scope = args.namespaces.scope();
    let failures = runtime.block_on(async {
        let named = match &scope {
            Scope::Namespaces(n) if !n.is_empty() => n.clone(),
            _ => Vec::new(),
        };
        // A dry run for named namespaces needs no cluster at all.
        let cluster = if args.dry_run && !named.is_empty() {
            None
        } else {
            Some(Cluster::connect(&args.connection.connection(args.cluster.as_deref())).await?)
        };
        let namespaces = match &cluster {
            Some(c) => c
                .resolve(&scope)
                .await
                .map_err(|e| anyhow::anyhow!("listing namespaces at {}: {e}", c.server))?,
            None => named,
        };
        let secrets: Vec<_> = namespaces
            .iter()
            .map(|ns| pull_secret(&args.name, ns, &config_json))
            .collect();
        let results = match (&cluster, args.dry_run) {
            (Some(c), false) => {
                futures_util::future::join_all(secrets.iter().map(|s| c.apply_secret(s))).await
            }
            _ => secrets.iter().map(|_| Ok(())).collect(),
        };
        let mut out = std::io::stdout().lock();
        let mut failures = 0;
        for ((ns, secret), result) in namespaces.iter().zip(&secrets).zip(results) {
            match result {
                Err(e) => {
                    failures += 1;
                    eprintln!("error: secret/{} in namespace {ns}: {e}", args.name);
                }
                Ok(()) if args.output == Some(SecretFormat::Yaml) => {
                    writeln!(out, "---")?;
                    out.write_all(serde_norway::to_string(secret)?.as_bytes())?;
                }
                Ok(()) if args.dry_run => writeln!(
                    out,
                    "secret/{} would be applied in namespace {ns} (dry run)",
                    args.name
                )?,
                Ok(()) => writeln!(out, "secret/{} applied in namespace {ns}", args.name)?,
            }
        }
        out.flush()?;
        anyhow::Ok(failures)
    })?;
    Ok(if failures > 0 { EXIT_ERROR } else { EXIT_OK })
}
