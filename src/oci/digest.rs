//! Content digests (`ALGORITHM:HEX`), parsed once and strictly, then passed around typed.
//!
//! A digest names content, and in a bundle it also names a file (`blobs/sha256/<hex>`): a
//! digest read from an index, a manifest, a lock or a request path is checked here before any
//! room uses it, so `sha256:../../etc/passwd` can never become a path, and the hashing that
//! proves content matches its digest is written once ([`Sha256Writer`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A well-formed digest: sha256, sha384 or sha512 with the right number of lowercase hex
/// digits (go-digest's `Validate` with those three registered).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// Why a string is not a [`Digest`]; `kind` maps to distribution's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError {
    pub kind: DigestErrorKind,
    /// Reads after the digest: `must have exactly 64 hex digits after sha256:`.
    pub why: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestErrorKind {
    InvalidFormat,
    InvalidLength,
    Unsupported,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why)
    }
}

impl Digest {
    /// Parses `s` strictly.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        validate(s).map_err(|(kind, why)| DigestError { kind, why })?;
        Ok(Digest(s.to_string()))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    /// The hex of a sha256 digest: 64 characters of `[0-9a-f]`, safe as a file name.
    pub fn sha256_hex(&self) -> Option<&str> {
        self.0.strip_prefix("sha256:")
    }

    /// `blobs/sha256/<hex>`, where an OCI image layout keeps this content; `None` for another
    /// algorithm, which a layout we write never holds.
    pub fn blob_path(&self) -> Option<String> {
        self.sha256_hex().map(|hex| format!("blobs/sha256/{hex}"))
    }
}

/// Hashes content as it passes, and says whether it is what a digest names.
#[derive(Default, Clone)]
pub(crate) struct Sha256Writer(Sha256);

impl Sha256Writer {
    pub(crate) fn new() -> Sha256Writer {
        Sha256Writer::default()
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.0.finalize())))
    }
}

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl std::ops::Deref for Digest {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(|e| {
            // Shown whole up to a line's worth: it came from a file or a server.
            let shown: String = s.chars().take(80).collect();
            serde::de::Error::custom(format!("digest {shown:?} {e}"))
        })
    }
}

/// go-digest's `Digest.Validate` with sha256, sha384 and sha512 registered.
fn validate(digest: &str) -> Result<(), (DigestErrorKind, &'static str)> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err((
            DigestErrorKind::InvalidFormat,
            "has no ':' after its algorithm",
        ));
    };
    if algorithm.is_empty() || hex.is_empty() {
        return Err((DigestErrorKind::InvalidFormat, "is not ALGORITHM:HEX"));
    }
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            let well_formed = algorithm.split(['.', '+', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }) && hex
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
            return Err(if well_formed {
                (
                    DigestErrorKind::Unsupported,
                    "uses an unsupported algorithm (use sha256, sha384 or sha512)",
                )
            } else {
                (DigestErrorKind::InvalidFormat, "is not ALGORITHM:HEX")
            });
        }
    };
    if hex.len() != expected_len {
        return Err((
            DigestErrorKind::InvalidLength,
            match expected_len {
                64 => "must have exactly 64 hex digits after sha256:",
                96 => "must have exactly 96 hex digits after sha384:",
                _ => "must have exactly 128 hex digits after sha512:",
            },
        ));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err((
            DigestErrorKind::InvalidFormat,
            "must be lowercase hexadecimal",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_digests_parse_and_only_sha256_names_a_path() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d, Digest::sha256(b""));
        assert_eq!(d.blob_path().unwrap(), format!("blobs/sha256/{hex}"));
        assert_eq!(d.algorithm(), "sha256");
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:aa",
            &format!("sha256:{}", hex.to_uppercase()),
            &format!("sha256:{hex}/.."),
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            hex,
            "",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        let long = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
        assert_eq!(long.blob_path(), None);
    }

    #[test]
    fn the_writer_hashes_what_passes_and_serde_refuses_a_bad_digest() {
        let mut w = Sha256Writer::new();
        w.update(b"hello ");
        std::io::Write::write_all(&mut w, b"world").unwrap();
        assert_eq!(w.finish(), Digest::sha256(b"hello world"));
        let e = serde_json::from_str::<Digest>(r#""sha256:../x""#).unwrap_err();
        assert!(e.to_string().contains("sha256:../x"), "{e}");
    }
}
