//! `--htpasswd FILE`: HTTP Basic authentication against the file docker-registry reads.
//!
//! docker-registry accepts only bcrypt entries (`htpasswd -Bbn USER PASSWORD`), so the same
//! file serves both, and an entry in another scheme (`{SHA}`, `$apr1$`, crypt) is refused at
//! start with how to make a bcrypt one, rather than never matching. bcrypt is slow on purpose
//! (tens of milliseconds a check); a pull makes dozens of requests, so a pair once verified is
//! remembered, by a hash of user, password and entry, never the password itself. Failures are
//! not remembered: each costs a full bcrypt, which is what slows guessing.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Verified pairs remembered at the most; the memory is emptied when full.
const REMEMBERED: usize = 1024;

pub(crate) struct Htpasswd {
    /// user → bcrypt hash.
    users: HashMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt runs at most this many at once: each costs a core for tens of milliseconds, and a
    /// flood of wrong passwords must not take every blocking thread.
    checks: tokio::sync::Semaphore,
}

impl Htpasswd {
    /// Reads `path`: `user:bcrypt-hash` lines; blank lines and `#` comments are skipped.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Htpasswd> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--htpasswd {}: cannot read it", path.display()))?;
        Htpasswd::parse(&text).with_context(|| format!("--htpasswd {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Htpasswd> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                anyhow::bail!(
                    "line {} is not USER:HASH; make entries with `htpasswd -Bbn USER PASSWORD`",
                    n + 1
                );
            };
            if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
                anyhow::bail!(
                    "line {}: the password of {user:?} is not a bcrypt hash; serve, like docker-registry, reads only bcrypt: make it with `htpasswd -Bbn {user} PASSWORD`",
                    n + 1
                );
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            anyhow::bail!("it holds no users; add one with `htpasswd -Bbn USER PASSWORD >> FILE`");
        }
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
            checks: tokio::sync::Semaphore::new(cores),
        })
    }

    /// Whether an `Authorization` header's Basic credentials match an entry.
    pub(crate) async fn allows(self: &std::sync::Arc<Self>, header: Option<&[u8]>) -> bool {
        let Some((user, password)) = header.and_then(basic) else {
            return false;
        };
        // An unknown user costs a bcrypt too (against a known user's hash, which the password
        // cannot match by chance), so the answer's time does not say which users exist.
        let known = self.users.get(&user).cloned();
        let hash = match &known {
            Some(h) => h.clone(),
            None => self.users.values().next().cloned().unwrap_or_default(),
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known.is_some() && self.remembered().contains(&key) {
            return true;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false))
            && known.is_some();
        if ok {
            let mut verified = self.remembered();
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// User and password of a `Basic` header value.
fn basic(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_entries_are_read() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let h = Htpasswd::parse(&format!("# users\n\nalice:{hash}\n")).unwrap();
        assert!(h.users.contains_key("alice"));
        let e = Htpasswd::parse("bob:{SHA}abc=").err().unwrap().to_string();
        assert!(
            e.contains("htpasswd -Bbn bob") && !e.contains("abc="),
            "{e}"
        );
        assert!(Htpasswd::parse("").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
    }

    #[test]
    fn basic_credentials_are_checked() {
        let hash = bcrypt::hash("s3cret:x", 4).unwrap();
        let h = std::sync::Arc::new(Htpasswd::parse(&format!("alice:{hash}")).unwrap());
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let good = header("alice", "s3cret:x");
            assert!(h.allows(Some(good.as_bytes())).await);
            // Remembered, and still right.
            assert!(h.allows(Some(good.as_bytes())).await);
            assert!(!h.allows(Some(header("alice", "nope").as_bytes())).await);
            assert!(!h.allows(Some(header("bob", "s3cret:x").as_bytes())).await);
            assert!(!h.allows(Some(b"Bearer abc")).await);
            assert!(!h.allows(None).await);
        });
    }
}
