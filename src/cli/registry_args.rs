//! Flags for reaching registries, shared by `check`, `push` and `save`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use super::cluster_args::RequestTimeoutArgs;

use crate::mirror::check_host_port;
use crate::registry::auth::{Login, Secret};
use crate::registry::{DEFAULT_CONCURRENCY, HostOptions, RegistryOptions};

#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryArgs {
    /// Talk plain HTTP to this registry, HOST[:PORT] (repeatable). Only for registries you name
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// PEM bundle of CAs to trust for the mirror registry, besides the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for the mirror registry (mutual TLS)
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of --cert-file
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Registry requests in flight at once
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    #[command(flatten)]
    pub timeout: RequestTimeoutArgs,
}

impl RegistryArgs {
    /// Merges these flags over the config file's `registries`. The TLS and login flags belong
    /// to `mirror_host` (a client certificate is never offered to any other registry).
    pub(crate) fn options(
        &self,
        mirror_host: Option<&str>,
        configured: &BTreeMap<String, HostOptions>,
    ) -> anyhow::Result<RegistryOptions> {
        for h in configured.keys() {
            check_host_port(h).map_err(|why| {
                anyhow::anyhow!("config file: registries.{h:?}: {why}; write HOST[:PORT]")
            })?;
        }
        // Keyed as references write hosts: a Docker Hub alias is `docker.io`.
        let mut hosts: BTreeMap<String, HostOptions> = configured
            .iter()
            .map(|(h, o)| (crate::oci::hub::canonical(h).to_string(), o.clone()))
            .collect();
        for h in &self.insecure {
            if h.contains('/') || h.is_empty() {
                anyhow::bail!(
                    "--insecure-registry {h:?}: give HOST[:PORT] only, e.g. reg.local:5000"
                );
            }
            check_host_port(h).map_err(|why| anyhow::anyhow!("--insecure-registry: {why}"))?;
            hosts
                .entry(crate::oci::hub::canonical(h).to_string())
                .or_default()
                .insecure = true;
        }
        let wants_tls = self.ca_file.is_some() || self.cert_file.is_some();
        let wants_login = self.login.username.is_some();
        let login = match mirror_host {
            Some(host) => {
                if wants_tls {
                    let entry = hosts.entry(host.to_string()).or_default();
                    entry.ca_file = self.ca_file.clone().or(entry.ca_file.take());
                    entry.cert_file = self.cert_file.clone().or(entry.cert_file.take());
                    entry.key_file = self.key_file.clone().or(entry.key_file.take());
                }
                self.login.login(host)?
            }
            None if wants_tls || wants_login => anyhow::bail!(
                "--ca-file, --cert-file and --username apply to the mirror registry; name it with --registry or AIRGAP_REGISTRY"
            ),
            None => None,
        };
        Ok(RegistryOptions {
            hosts,
            login,
            concurrency: usize::from(self.concurrency),
            request_timeout: self.timeout.request_timeout.0,
            ..RegistryOptions::default()
        })
    }
}

/// A login for the mirror given on the command line, instead of the Docker config.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoginArgs {
    /// User name for the mirror registry (the password is read with --password-stdin)
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the mirror registry's password from stdin
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl LoginArgs {
    /// The login for `host`, reading the password from stdin, when a user name was given.
    pub(crate) fn login(&self, host: &str) -> anyhow::Result<Option<Login>> {
        match &self.username {
            Some(username) => Ok(Some(Login {
                registry: host.to_string(),
                username: username.clone(),
                password: read_password()?,
            })),
            None => Ok(None),
        }
    }
}

fn read_password() -> anyhow::Result<Secret> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| anyhow::anyhow!("reading the password from stdin (--password-stdin): {e}"))?;
    let password = s.strip_suffix('\n').unwrap_or(&s);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        anyhow::bail!("--password-stdin: stdin held no password");
    }
    Ok(Secret::new(password))
}
