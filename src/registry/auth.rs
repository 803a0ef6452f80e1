//! Who we are to a registry: credentials from the places `docker login`, `podman login` and
//! `skopeo login` write them, and the two challenge schemes of the distribution protocol.
//!
//! Credentials are held in [`Secret`], whose `Debug` and `Display` never show the value, so no
//! log line, error or `{:?}` can leak one.

use std::fmt;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What we present to one registry.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    /// Sent as HTTP Basic, to the registry or to its token service.
    Password { username: String, password: Secret },
    /// An OAuth2 refresh token (`identitytoken` in a Docker config, or a helper's `<token>`
    /// user), exchanged at the token service.
    IdentityToken(Secret),
}

/// A credential and where it came from, so that a refusal can say which file to fix.
#[derive(Debug, Clone)]
pub(crate) struct FoundCredential {
    pub credential: Credential,
    pub origin: String,
}

/// Credentials given on the command line for one registry (`--username`, `--password-stdin`).
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub registry: String,
    pub username: String,
    pub password: Secret,
}

/// Looks up the credential for `host` (`HOST[:PORT]`, as in the image reference).
///
/// Order: the command-line login; `REGISTRY_AUTH_FILE`; the Docker config (`$DOCKER_CONFIG`,
/// else `~/.docker/config.json`, with `credHelpers` and `credsStore`); the containers
/// `auth.json` (`$XDG_RUNTIME_DIR/containers/auth.json`); last, Helm's registry login
/// (`helm registry login` writes a Docker config at `$HELM_REGISTRY_CONFIG`, else
/// `$HELM_CONFIG_HOME/registry/config.json`, else `$XDG_CONFIG_HOME/helm/...` or
/// `~/.config/helm/...`), so the login that lets Helm pull an `oci://` chart lets us copy it. The
/// first file that has an entry for the host wins, as in skopeo and podman.
pub(crate) fn find_credential(
    host: &str,
    login: Option<&Login>,
) -> Result<Option<FoundCredential>, String> {
    if let Some(login) = login.filter(|l| l.registry == host) {
        return Ok(Some(FoundCredential {
            credential: Credential::Password {
                username: login.username.clone(),
                password: login.password.clone(),
            },
            origin: "--username/--password-stdin".to_string(),
        }));
    }
    let server = crate::oci::hub::credential_key(host);
    for file in credential_files() {
        let Ok(f) = std::fs::File::open(&file) else {
            continue;
        };
        let found =
            docker_credential::get_credential_from_reader(std::io::BufReader::new(f), server);
        let origin = file.display().to_string();
        match found {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(FoundCredential {
                    credential: Credential::Password {
                        username,
                        password: Secret::new(password),
                    },
                    origin,
                }));
            }
            Ok(DockerCredential::IdentityToken(token)) => {
                return Ok(Some(FoundCredential {
                    credential: Credential::IdentityToken(Secret::new(token)),
                    origin,
                }));
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
            // A `credsStore` helper answers for every host, and says "credentials not found"
            // (exit 1) for one it holds nothing for: no entry, as the docker CLI reads it.
            Err(CredentialRetrievalError::HelperFailure { stdout, .. })
                if stdout.contains("credentials not found") =>
            {
                continue;
            }
            Err(e) => return Err(describe_failure(&e, &file)),
        }
    }
    Ok(None)
}

fn credential_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    files.extend(env("REGISTRY_AUTH_FILE"));
    match env("DOCKER_CONFIG") {
        Some(dir) => files.push(dir.join("config.json")),
        None => files.extend(env("HOME").map(|h| h.join(".docker").join("config.json"))),
    }
    files.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers").join("auth.json")));
    let helm_config = env("HELM_CONFIG_HOME")
        .or_else(|| env("XDG_CONFIG_HOME").map(|d| d.join("helm")))
        .or_else(|| env("HOME").map(|h| h.join(".config").join("helm")));
    files.extend(
        env("HELM_REGISTRY_CONFIG")
            .or_else(|| helm_config.map(|d| d.join("registry").join("config.json"))),
    );
    files
}

/// A failure to read credentials, without the helper's output (which may hold a secret).
fn describe_failure(e: &CredentialRetrievalError, file: &Path) -> String {
    let file = file.display();
    match e {
        CredentialRetrievalError::HelperFailure { helper, .. } => format!(
            "credential helper {helper} (named in {file}) failed; run `{helper} get` by hand to see why, or log in again"
        ),
        CredentialRetrievalError::HelperCommunicationError => format!(
            "could not run the credential helper named in {file}; is docker-credential-<name> on PATH?"
        ),
        CredentialRetrievalError::MalformedHelperResponse => format!(
            "the credential helper named in {file} answered something that is not {{\"Username\",\"Secret\"}} JSON"
        ),
        CredentialRetrievalError::CredentialDecodingError => {
            format!("the `auth` value in {file} is not base64 of user:password")
        }
        CredentialRetrievalError::CredentialMismatchError => {
            format!("in {file}, the `auth` value and the username/password fields disagree")
        }
        CredentialRetrievalError::ConfigReadError => {
            format!("{file} is not a valid JSON auth file")
        }
        other => format!("{file}: {other}"),
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
        })
    }
}

/// `key="quoted, value",key2=token` → pairs (RFC 7235 auth-params).
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// A token service's answer (`token`, or the OAuth2 `access_token`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="reg, x",scope="repository:a:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg, x".into())
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        let c = Credential::Password {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
