//! `os/arch[/variant]`: what `--platform` asks for, what an index entry or an image config
//! says an image is for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A platform, as in `--platform linux/arm64/v8`, an index entry's `platform` or an image
/// config's `os`/`architecture`/`variant` (the same three names in all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub(crate) fn parse(value: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = value.split('/').collect();
        let ok = |s: &&str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {value:?}; write OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm/v7"
            )),
        }
    }

    /// Whether an image's platform serves this wanted one: a wanted platform without a
    /// variant accepts any variant.
    pub(crate) fn served_by(&self, have: &Platform) -> bool {
        self.os == have.os
            && self.architecture == have.architecture
            && (self.variant.is_none() || self.variant == have.variant)
    }

    /// The platform an image config says it is for (its top-level `os`, `architecture`,
    /// `variant`; the rest of the config is not read).
    pub(crate) fn from_config(bytes: &[u8]) -> Result<Platform, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_platform_from_a_flag_an_index_entry_and_a_config() {
        let flag = Platform::parse("linux/arm64/v8").unwrap();
        let entry: Platform =
            serde_json::from_str(r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#)
                .unwrap();
        let config = Platform::from_config(
            br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers"}}"#,
        )
        .unwrap();
        assert_eq!(flag, entry);
        assert_eq!(flag, config);
        assert_eq!(flag.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux/arm64").unwrap().served_by(&entry));
        assert!(!flag.served_by(&Platform::parse("linux/arm64/v7").unwrap()));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
    }
}
