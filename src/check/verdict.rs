//! What `check` says of one image, wherever it looked: typed, with no IO, so a registry's answer
//! and a bundle's read the same, word for word.

use std::fmt;

use crate::oci::{Digest, Platform};
use crate::reference::Reference;
use crate::registry::RegistryError;

/// The answer for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Present,
    Missing,
    Mismatch,
    Error,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Present => "present",
            Status::Missing => "missing",
            Status::Mismatch => "mismatch",
            Status::Error => "error",
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub status: Status,
    /// The digest the registry holds, when it holds the image.
    pub digest: Option<Digest>,
    /// Why, for anything but a plain `present`; for `error`, the registry error's message,
    /// which says what to do.
    pub detail: String,
    /// For an error of the whole host ([`RegistryError::host_wide`]), its few words: a report
    /// says `detail` once for all the images it affects.
    pub host_wide: Option<String>,
}

impl Verdict {
    pub(crate) fn new(
        status: Status,
        digest: Option<Digest>,
        detail: impl Into<String>,
    ) -> Verdict {
        Verdict {
            status,
            digest,
            detail: detail.into(),
            host_wide: None,
        }
    }

    pub(crate) fn error(e: RegistryError) -> Verdict {
        Verdict {
            host_wide: e.host_wide(),
            ..Verdict::new(Status::Error, None, e.to_string())
        }
    }
}

/// The verdict when `held` (what `whose` holds under `image`'s tag) is not the digest a lock
/// file `expected`; `None` when it is, or when there is no lock.
pub(crate) fn lock_mismatch(
    whose: &str,
    image: &Reference,
    held: &Digest,
    expected: Option<&Digest>,
) -> Option<Verdict> {
    let want = expected.filter(|want| *want != held)?;
    Some(Verdict::new(
        Status::Mismatch,
        Some(held.clone()),
        format!(
            "{whose}'s {} is {held}, the lock file says {want}",
            image.tag().unwrap_or("latest")
        ),
    ))
}

/// The wanted platforms `have` does not serve, as a sentence naming what `whose` has (empty
/// when all are served).
pub(crate) fn lacking(wanted: &[Platform], have: &[Platform], whose: &str) -> String {
    let lacking: Vec<String> = wanted
        .iter()
        .filter(|w| !have.iter().any(|h| w.served_by(h)))
        .map(ToString::to_string)
        .collect();
    if lacking.is_empty() {
        return String::new();
    }
    let have: Vec<String> = have.iter().map(ToString::to_string).collect();
    format!(
        "no {} ({whose} has {})",
        lacking.join(", "),
        if have.is_empty() {
            "no platform listed".to_string()
        } else {
            have.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let arm = Platform::parse("linux/arm64").unwrap();
        let arm_v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm.served_by(&arm_v8));
        assert!(!arm_v8.served_by(&arm));
        assert_eq!(arm_v8.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
    }
}
