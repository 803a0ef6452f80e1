//! Reaching the API server as kubectl does: kubeconfig inference, `--context`, `--cluster`,
//! `--user`, and `--request-timeout` in kubectl's own duration forms, with kube's errors put
//! in words that hold no credential.

use std::future::Future;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{ApiError, Cluster, Connection};
use crate::registry::error_chain;

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
pub(super) fn kube_error_text(e: &(dyn std::error::Error + 'static)) -> String {
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

/// A timeout as kubectl writes it (`2s`, `1.5s`, `500ms`), for messages.
pub(super) fn humanize(t: Duration) -> String {
    kube::core::Duration::from(t).to_string()
}

/// The longest number one part of a `--request-timeout` may have: kube's parser multiplies
/// floats into a `std::time::Duration`, which panics on overflow, so absurd values are refused
/// before they reach it. A billion hours is more than anyone waits.
const TIMEOUT_PART_MAX: f64 = 1e9;

/// Parses kubectl's `--request-timeout`: `0` (no limit), a whole number of seconds, or a Go
/// duration as kubectl reads it (`30s`, `1.5s`, `1m30s`, `500ms`, `2h`), through kube's own
/// parser of Go durations so that what kubectl accepts is accepted here.
pub(crate) fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    let bad = |why: &str| {
        format!(
            "{text:?} is not a request timeout ({why}): write 0 (no limit), whole seconds (30), or a duration such as 30s, 1.5s, 1m30s, 500ms"
        )
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("empty"));
    }
    // kubectl reads a bare integer as seconds (client-go's Atoi before ParseDuration).
    if let Ok(secs) = text.parse::<u64>() {
        return Ok((secs > 0).then(|| Duration::from_secs(secs)));
    }
    if text.starts_with('-') {
        return Err(bad("a timeout cannot be negative"));
    }
    let numbers = text.split(char::is_alphabetic).filter(|n| !n.is_empty());
    for (i, n) in numbers.enumerate() {
        let n = if i == 0 { n.trim_start_matches('+') } else { n };
        match n.parse::<f64>() {
            Ok(v)
                if v.is_finite()
                    && (0.0..=TIMEOUT_PART_MAX).contains(&v)
                    && !n.starts_with(['-', '+']) => {}
            Ok(_) => return Err(bad("too large")),
            Err(_) => return Err(bad(&format!("{n:?} is not a number"))),
        }
    }
    let parsed: kube::core::Duration = text
        .parse()
        .map_err(|e: kube::core::duration::ParseError| bad(&e.to_string()))?;
    if parsed.is_negative() {
        return Err(bad("a timeout cannot be negative"));
    }
    let t = Duration::from(parsed);
    Ok((!t.is_zero()).then_some(t))
}

impl Cluster {
    /// Loads the configuration as kubectl does: `--kubeconfig`, else `KUBECONFIG`, else
    /// `~/.kube/config`, else the in-cluster service account; `--context`, `--cluster` and
    /// `--user` pick from the kubeconfig.
    pub(crate) async fn connect(c: &Connection) -> anyhow::Result<Cluster> {
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
    pub(super) async fn timed<T>(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts_read_like_kubectl() {
        assert_eq!(parse_timeout("0"), Ok(None));
        assert_eq!(parse_timeout("0s"), Ok(None));
        assert_eq!(parse_timeout("5"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(parse_timeout("2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse_timeout("1.5s"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("1.5m"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse_timeout("2h"), Ok(Some(Duration::from_secs(7200))));
        for bad in [
            "",
            " ",
            "s",
            "1x",
            "-1",
            "-1s",
            "1s-2s",
            "1.5",
            "abc",
            "1e400h",
            "99999999999999999999h",
        ] {
            let e = parse_timeout(bad).expect_err(bad);
            assert!(
                e.contains("not a request timeout") && e.contains("1.5s"),
                "{bad:?}: {e}"
            );
        }
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
        assert_eq!(humanize(Duration::from_secs(2)), "2s");
    }
}
