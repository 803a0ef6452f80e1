//! `pull-secret`: the mirror's credentials as a `kubernetes.io/dockerconfigjson` Secret in each
//! namespace that pulls from it, the Secret that `post-render --pull-secret` names in pod specs.
//!
//! The credentials come from where `docker login`, `podman login` and `skopeo login` put them
//! (the same lookup as every other command), or from `--username` and `--password-stdin`. They
//! are written to the API server and printed only with an explicit `-o yaml`.
//!
//! `--service-account` also lists the Secret in ServiceAccounts, for the Pods that operators,
//! `kubectl apply` and GitOps controllers create without the post-renderer.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Args;

use super::cluster_args::{ConnectionArgs, NamespaceArgs, RequestTimeoutArgs};
use super::registry_args::LoginArgs;
use super::{EXIT_ERROR, EXIT_OK, ExitStatus};
use crate::cluster::{ApiError, Attached, Cluster, Scope, docker_config_json, pull_secret};
use crate::config::{ConfigFile, Settings};
use crate::manifest::pull_secret::validate_name;
use crate::registry::auth::{Credential, find_credential};

#[derive(Debug, Args)]
pub(crate) struct PullSecretArgs {
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
    /// Also list the Secret in these ServiceAccounts' imagePullSecrets (repeatable, or
    /// comma-separated; e.g. default), so that Pods made without the post-renderer use it
    #[arg(
        long = "service-account",
        visible_alias = "serviceaccount",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub service_accounts: Vec<String>,
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
    #[command(flatten)]
    pub timeout: RequestTimeoutArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SecretFormat {
    Yaml,
}

pub(super) fn run(args: &PullSecretArgs, config: Option<&Path>) -> anyhow::Result<ExitStatus> {
    validate_name(&args.name, "Secret").map_err(anyhow::Error::msg)?;
    for account in &args.service_accounts {
        validate_name(account, "ServiceAccount")
            .map_err(|e| anyhow::anyhow!("--service-account: {e}"))?;
    }
    // The mirror as every command resolves it: flag, AIRGAP_REGISTRY, then the config file.
    let (file, _) = ConfigFile::load(config)?;
    let settings = Settings::resolve(args.registry.as_deref(), None, &[], None, None, file)?;
    let host = settings
        .require_mirror("pull-secret")?
        .mirror()
        .host()
        .to_string();
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

    let failures = super::runtime()?.block_on(apply(args, &config_json))?;
    Ok(if failures > 0 { EXIT_ERROR } else { EXIT_OK })
}

/// Writes the Secret into each namespace and, where that worked, lists it in the ServiceAccounts
/// asked for; returns how many writes failed.
async fn apply(args: &PullSecretArgs, config_json: &str) -> anyhow::Result<usize> {
    let scope = args.namespaces.scope();
    let named = match &scope {
        Scope::Namespaces(n) if !n.is_empty() => n.clone(),
        _ => Vec::new(),
    };
    // A dry run for named namespaces needs no cluster at all.
    let cluster = if args.dry_run && !named.is_empty() {
        None
    } else {
        Some(
            Cluster::connect(
                &args
                    .connection
                    .connection(args.cluster.as_deref(), args.timeout),
            )
            .await?,
        )
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
        .map(|ns| pull_secret(&args.name, ns, config_json))
        .collect();
    let live = cluster.as_ref().filter(|_| !args.dry_run);
    let written = match live {
        Some(c) => futures_util::future::join_all(secrets.iter().map(|s| c.apply_secret(s))).await,
        None => secrets.iter().map(|_| Ok(())).collect(),
    };
    // A ServiceAccount is pointed at the Secret only where the Secret was written.
    let accounts: Vec<(&String, &String)> = namespaces
        .iter()
        .zip(&written)
        .filter(|(_, r)| r.is_ok())
        .flat_map(|(ns, _)| args.service_accounts.iter().map(move |sa| (ns, sa)))
        .collect();
    let attached = match live {
        Some(c) => {
            let attach = accounts
                .iter()
                .map(|(ns, sa)| c.attach_secret(ns, sa, &args.name));
            futures_util::future::join_all(attach).await
        }
        None => Vec::new(),
    };
    let mut report = Report {
        out: std::io::stdout().lock(),
        yaml: args.output == Some(SecretFormat::Yaml),
        failures: 0,
    };
    let name = &args.name;
    for ((ns, secret), result) in namespaces.iter().zip(&secrets).zip(written) {
        match result {
            Err(e) => report.failed(
                format!("secret/{name} in namespace {ns}: {e}"),
                hint(&e, name, ns),
            ),
            Ok(()) if report.yaml => report.secret(secret)?,
            Ok(()) if args.dry_run => report.say(format!(
                "secret/{name} would be applied in namespace {ns} (dry run)"
            ))?,
            Ok(()) => report.say(format!("secret/{name} applied in namespace {ns}"))?,
        }
    }
    if args.dry_run {
        for (ns, sa) in &accounts {
            report.say(format!(
                "serviceaccount/{sa} in namespace {ns} would list {name} (dry run)"
            ))?;
        }
    }
    for ((ns, sa), result) in accounts.iter().zip(attached) {
        match result {
            Ok(Attached::Added) => report.say(format!(
                "serviceaccount/{sa} in namespace {ns} now lists {name}"
            ))?,
            Ok(Attached::Already) => report.say(format!(
                "serviceaccount/{sa} in namespace {ns} already lists {name}"
            ))?,
            Err(e) => report.failed(format!("serviceaccount/{sa} in namespace {ns}: {e}"), None),
        }
    }
    report.out.flush()?;
    Ok(report.failures)
}

/// What to do about a refused Secret, when the API's answer says more than its words.
fn hint(e: &ApiError, name: &str, ns: &str) -> Option<String> {
    match e {
        ApiError::Status {
            code: 422, message, ..
        } if message.contains("type") && message.contains("immutable") => Some(format!(
            "a Secret {name} of another type is there; a Secret's type cannot change: delete it (`kubectl delete secret {name} -n {ns}`) or choose another name"
        )),
        _ => None,
    }
}

/// Where pull-secret's lines go: stdout, except that with `-o yaml` stdout holds only the
/// Secrets, so that it can be piped to `kubectl apply -f -`, and the rest goes to stderr.
struct Report<W: Write> {
    out: W,
    yaml: bool,
    failures: usize,
}

impl<W: Write> Report<W> {
    fn say(&mut self, line: String) -> std::io::Result<()> {
        if self.yaml {
            eprintln!("{line}");
            Ok(())
        } else {
            writeln!(self.out, "{line}")
        }
    }

    fn secret(&mut self, secret: &k8s_openapi::api::core::v1::Secret) -> anyhow::Result<()> {
        writeln!(self.out, "---")?;
        self.out
            .write_all(serde_norway::to_string(secret)?.as_bytes())?;
        Ok(())
    }

    fn failed(&mut self, what: String, hint: Option<String>) {
        self.failures += 1;
        eprintln!("error: {what}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
    }
}
