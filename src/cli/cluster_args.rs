//! kubectl's flags for reaching a cluster and choosing namespaces, shared by `check --cluster`
//! and `pull-secret`, so that a kubectl user's muscle memory works.
//!
//! `--cluster` is left to each command: for `check` it is also the switch that reads the
//! cluster (`--cluster`, or `--cluster=NAME` to pick a kubeconfig cluster), for `pull-secret`
//! it only picks the kubeconfig cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cluster::{Connection, Scope, parse_timeout};

#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectionArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, else ~/.kube/config, else in-cluster)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// kubectl's `--request-timeout`, apart from [`ConnectionArgs`] because `check` reaches a
/// registry and a cluster and has one flag for both (registry commands get it through
/// `RegistryArgs`).
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct RequestTimeoutArgs {
    /// How long to wait for each request to the API server or a registry to answer (or, for a
    /// registry, for its next bytes): 0 (no limit), seconds, or a duration such as 30s, 1.5s, 1m30s
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_request_timeout)]
    pub request_timeout: RequestTimeout,
}

/// `--request-timeout`: `None` is kubectl's `0`, no limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestTimeout(pub Option<Duration>);

fn parse_request_timeout(text: &str) -> Result<RequestTimeout, String> {
    parse_timeout(text).map(RequestTimeout)
}

impl ConnectionArgs {
    pub(crate) fn connection(
        &self,
        cluster: Option<&str>,
        timeout: RequestTimeoutArgs,
    ) -> Connection {
        Connection {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: cluster.filter(|c| !c.is_empty()).map(str::to_string),
            user: self.user.clone(),
            request_timeout: timeout.request_timeout.0,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct NamespaceArgs {
    /// Namespace (repeatable, or comma-separated; default: the kubeconfig context's namespace)
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NS",
        value_delimiter = ',',
        conflicts_with = "all_namespaces"
    )]
    pub namespaces: Vec<String>,
    /// Every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

impl NamespaceArgs {
    pub(crate) fn scope(&self) -> Scope {
        if self.all_namespaces {
            Scope::All
        } else {
            let mut names: Vec<String> = Vec::new();
            for n in &self.namespaces {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            Scope::Namespaces(names)
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.all_namespaces || !self.namespaces.is_empty()
    }
}
