//! What the Kubernetes API says runs in the cluster, and the mirror's pull Secret in it.
//!
//! A post-renderer sees only what Helm renders; operators, `kubectl apply` and GitOps controllers
//! create Pods and custom resources it never saw. So `check --cluster` lists, from the API
//! server, every object of the kinds the rule pack knows (workloads, and the custom resources
//! whose operators run images, such as an Alertmanager's `spec.image`) and reads their images
//! with the same scanner `post-render` and `images` use, plus what Pods report having run. It
//! reads the way kubectl does: kubeconfig inference, API discovery, paged lists, and a
//! per-request timeout.
//!
//! A list the user may not read (403) is reported and the rest is still read: a partial answer
//! about a cluster is worth more than none. A paged list whose continue token expired (410) is
//! started again from the first page, as client-go's pager does.
//!
//! `connect` reaches the server, `list` pages through lists and asks discovery what is served,
//! `inventory` turns objects into image uses, `pull_secret` writes the mirror's pull Secret.

mod connect;
mod inventory;
mod list;
mod pull_secret;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;

pub(crate) use connect::parse_timeout;
pub(crate) use inventory::{Inventory, Unreadable, Use};
pub(crate) use pull_secret::{Attached, docker_config_json, pull_secret};

/// How to reach the API server: kubectl's global flags.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// Per request, retries included; `None` waits as long as the server takes.
    pub request_timeout: Option<Duration>,
}

/// Which namespaces to read or write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// These namespaces (the kubeconfig context's namespace when none is named).
    Namespaces(Vec<String>),
    /// Every namespace: one cluster-wide list per kind, or, when that is forbidden, one list per
    /// namespace.
    All,
}

/// Why a read or write failed, in words a kubectl user acts on.
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
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
            other => ApiError::Transport(connect::kube_error_text(&other)),
        }
    }

    pub(crate) fn is_forbidden(&self) -> bool {
        matches!(self, ApiError::Status { code: 403, .. })
    }

    fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { code: 404, .. })
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
                connect::humanize(*t)
            ),
            ApiError::Transport(why) => write!(
                f,
                "{why}; check the kubeconfig's server address and that the API server is reachable from here (`kubectl cluster-info`)"
            ),
        }
    }
}

/// A connected API client and what the kubeconfig context says.
pub(crate) struct Cluster {
    client: Client,
    /// The context's namespace, `default` when it names none.
    pub default_namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
    timeout: Option<Duration>,
}
