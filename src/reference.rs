//! The image reference grammar of the Docker/OCI ecosystem.
//!
//! This is a port of `distribution/reference`'s `ParseNormalizedNamed`, because every tool a user
//! compares us with (docker, containerd, kubelet, skopeo, Helm charts' authors) agrees with that
//! library, and a reference that kubelet would pull differently from the one we mirror is a
//! failed install. The regular expressions below are the library's, spelled with ASCII classes:
//! Go's `\w` is ASCII-only while Rust's is Unicode, so a literal copy would accept `ñ` in tags.
//!
//! `../shared/testvectors/image-references.tsv` (copied to `testdata/`) pins the behaviour; every
//! row is checked by `tests/it/reference_vectors.rs`.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::excerpt::Excerpt;
use crate::oci::{Digest, DigestErrorKind};

/// The registry that a reference without a domain refers to.
pub const DOCKER_HUB: &str = crate::oci::hub::HUB;
/// The name docker once used for Docker Hub; the grammar folds it into [`DOCKER_HUB`] (as
/// docker's own grammar does; `registry-1.docker.io` it leaves as written).
const LEGACY_DOCKER_HUB: &str = crate::oci::hub::ALIASES[1];
/// Docker Hub's namespace for official images (`nginx` is `docker.io/library/nginx`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The grammar's limit on the path (the part after the domain).
pub const MAX_PATH_LEN: usize = 255;

const ALPHANUMERIC: &str = "[a-z0-9]+";
const SEPARATOR: &str = "(?:[._]|__|[-]+)";
const DOMAIN_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";
const TAG: &str = "[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";

fn path_component() -> String {
    format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*")
}

fn domain_and_port() -> String {
    let domain_name = format!(r"{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*");
    format!("(?:{domain_name}|{IPV6})(?::[0-9]+)?")
}

fn remote_name() -> String {
    let pc = path_component();
    format!("{pc}(?:/{pc})*")
}

/// `^(name)(?::(tag))?(?:@(digest))?$`, as `ReferenceRegexp`.
static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
    Regex::new(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$")).expect("reference regex")
});

/// `^(?:(domain)/)?(path)$`, as `anchoredNameRegexp`.
static NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
    .expect("name regex")
});

static ANCHORED_DOMAIN_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{}$", domain_and_port())).expect("domain regex"));
static ANCHORED_PATH_COMPONENT_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{}$", path_component())).expect("path regex"));
static ANCHORED_TAG_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{TAG}$")).expect("tag regex"));
static ANCHORED_DIGEST_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{DIGEST}$")).expect("digest regex"));

/// The categories of failure, named as the test vectors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidReferenceFormat,
    NameContainsUppercase,
    NameTooLong,
    NameEmpty,
    NameNotCanonical,
    TagInvalidFormat,
    Ambiguous64HexIdentifier,
    DigestInvalidLength,
    DigestInvalidFormat,
    DigestUnsupported,
}

impl ErrorKind {
    /// The snake_case name used in the vectors file and in `ref -o json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidReferenceFormat => "invalid_reference_format",
            ErrorKind::NameContainsUppercase => "name_contains_uppercase",
            ErrorKind::NameTooLong => "name_too_long",
            ErrorKind::NameEmpty => "name_empty",
            ErrorKind::NameNotCanonical => "name_not_canonical",
            ErrorKind::TagInvalidFormat => "tag_invalid_format",
            ErrorKind::Ambiguous64HexIdentifier => "ambiguous_64hex_identifier",
            ErrorKind::DigestInvalidLength => "digest_invalid_length",
            ErrorKind::DigestInvalidFormat => "digest_invalid_format",
            ErrorKind::DigestUnsupported => "digest_unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not an image reference, and where in the string the trouble starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {}: {message}", Excerpt(.input))]
pub struct ParseError {
    pub kind: ErrorKind,
    pub input: String,
    /// What is wrong, with the byte offset where it was found when there is one.
    pub message: String,
    /// Byte offset into `input` of the first offending character, when one can be named.
    pub position: Option<usize>,
}

/// A parsed, normalized image reference: `domain/path[:tag][@digest]`.
///
/// `domain` is empty only in the grammar's odd corner where the part before the first `/` is
/// neither a valid domain nor followed by a valid path (then the whole name is the path), kept so
/// that we agree with the reference implementation on every input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes like `ParseNormalizedNamed`: short names get `docker.io` and
    /// `library/`, `index.docker.io` becomes `docker.io`, tag and digest are kept as written.
    pub fn parse(input: &str) -> Result<Reference, ParseError> {
        let err = |kind, message: String, position| ParseError {
            kind,
            input: input.to_string(),
            message,
            position,
        };
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9'))
        {
            return Err(err(
                ErrorKind::Ambiguous64HexIdentifier,
                "a bare 64-character hex string is an image ID, not a name; write NAME@sha256:HEX to pin a digest".into(),
                Some(0),
            ));
        }
        let (domain, remainder, remainder_at) = split_docker_domain(input);
        let remote = remainder.split(':').next().unwrap_or("");
        if remote.bytes().any(|b| b.is_ascii_uppercase()) {
            let offset = input[remainder_at..]
                .bytes()
                .position(|b| b.is_ascii_uppercase())
                .map(|p| remainder_at + p);
            return Err(err(
                ErrorKind::NameContainsUppercase,
                format!(
                    "repository name {} must be lowercase{}",
                    Excerpt(input[remainder_at..].split(':').next().unwrap_or("")),
                    at_offset(offset)
                ),
                offset,
            ));
        }
        let full = format!("{domain}/{remainder}");
        // `input` sits at the end of `full` except where `library/` was inserted; offsets into
        // `full` are mapped back by distance from the end, which both share.
        let to_input = |full_offset: usize| input.len().checked_sub(full.len() - full_offset);
        let Some(caps) = REFERENCE_RE.captures(&full) else {
            if REFERENCE_RE.is_match(&full.to_lowercase()) {
                let offset = full.bytes().position(|b| b.is_ascii_uppercase());
                let offset = offset.and_then(to_input);
                return Err(err(
                    ErrorKind::NameContainsUppercase,
                    format!("repository name must be lowercase{}", at_offset(offset)),
                    offset,
                ));
            }
            let (message, offset) = diagnose_format(input);
            return Err(err(ErrorKind::InvalidReferenceFormat, message, offset));
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        let names = NAME_RE
            .captures(name)
            .expect("a matched name matches the name regex");
        let domain = names.get(1).map_or("", |m| m.as_str()).to_string();
        let path = names.get(2).map_or("", |m| m.as_str()).to_string();
        if path.len() > MAX_PATH_LEN {
            return Err(err(
                ErrorKind::NameTooLong,
                format!(
                    "repository path is {} characters long; the limit is {MAX_PATH_LEN}",
                    path.len()
                ),
                None,
            ));
        }
        let tag = caps.get(2).map(|m| m.as_str().to_string());
        let digest = match caps.get(3) {
            Some(m) => {
                let offset = to_input(m.start());
                let digest = Digest::parse(m.as_str()).map_err(|e| {
                    let kind = match e.kind {
                        DigestErrorKind::InvalidFormat => ErrorKind::DigestInvalidFormat,
                        DigestErrorKind::InvalidLength => ErrorKind::DigestInvalidLength,
                        DigestErrorKind::Unsupported => ErrorKind::DigestUnsupported,
                    };
                    err(
                        kind,
                        format!(
                            "digest {} {}{}",
                            Excerpt(m.as_str()),
                            e.why,
                            at_offset(offset)
                        ),
                        offset,
                    )
                })?;
                Some(digest)
            }
            None => None,
        };
        if path.is_empty() {
            return Err(err(
                ErrorKind::NameEmpty,
                "repository name is empty".into(),
                None,
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Builds a reference from parts that are already known to be valid, re-checking them by
    /// parsing the result so that no invalid reference can be constructed.
    pub fn from_parts(
        domain: &str,
        path: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Reference, ParseError> {
        let mut text = if domain.is_empty() {
            path.to_string()
        } else {
            format!("{domain}/{path}")
        };
        if let Some(tag) = tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = digest {
            text.push('@');
            text.push_str(digest);
        }
        let parsed = Reference::parse(&text)?;
        if parsed.domain != domain || parsed.path != path {
            return Err(ParseError {
                kind: ErrorKind::NameNotCanonical,
                message: format!(
                    "{} would be read as {}/{}, not as domain {} with path {}",
                    Excerpt(&text),
                    parsed.domain,
                    parsed.path,
                    Excerpt(domain),
                    Excerpt(path)
                ),
                input: text,
                position: None,
            });
        }
        Ok(parsed)
    }

    /// The registry host, with port when there is one (`docker.io`, `reg.local:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `algorithm:hex`, as written.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The digest this reference pins, typed.
    pub fn pinned(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`: the repository, without tag or digest.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// What a pull resolves: `:latest` when neither tag nor digest is given, and only the digest
    /// when both are.
    pub fn docker_ref(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("{}@{d}", self.name()),
            (Some(t), None) => format!("{}:{t}", self.name()),
            (None, None) => format!("{}:latest", self.name()),
        }
    }

    /// The short form people type: `docker.io/` dropped, and `library/` dropped when nothing
    /// nests below it.
    pub fn familiar(&self) -> String {
        let name = if self.domain == DOCKER_HUB {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        };
        with_suffixes(name, self.tag(), self.digest())
    }

    /// A copy pointing at another repository, tag and digest kept exactly.
    pub fn with_name(&self, domain: &str, path: &str) -> Result<Reference, ParseError> {
        Reference::from_parts(domain, path, self.tag(), self.digest())
    }
}

/// The canonical form: `docker.io` and `library/` added, no default tag, tag and digest kept.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&with_suffixes(self.name(), self.tag(), self.digest()))
    }
}

impl std::str::FromStr for Reference {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn with_suffixes(mut name: String, tag: Option<&str>, digest: Option<&str>) -> String {
    if let Some(t) = tag {
        name.push(':');
        name.push_str(t);
    }
    if let Some(d) = digest {
        name.push('@');
        name.push_str(d);
    }
    name
}

/// `splitDockerDomain`: the part before the first `/` is a domain only when it looks like one
/// (has `.` or `:`, is `localhost`, or has uppercase letters, which a path may not have).
/// Also returns where the remainder starts in `name`, for error positions.
fn split_docker_domain(name: &str) -> (&str, std::borrow::Cow<'_, str>, usize) {
    let (mut domain, remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':'])
                && first != "localhost"
                && !first.bytes().any(|b| b.is_ascii_uppercase())
            {
                (DOCKER_HUB, name)
            } else {
                (first, &name[i + 1..])
            }
        }
        None => (DOCKER_HUB, name),
    };
    if domain == LEGACY_DOCKER_HUB {
        domain = DOCKER_HUB;
    }
    let remainder_at = name.len() - remainder.len();
    if domain == DOCKER_HUB && !remainder.contains('/') {
        let prefixed = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
        return (domain, prefixed.into(), remainder_at);
    }
    (domain, remainder.into(), remainder_at)
}

fn at_offset(offset: Option<usize>) -> String {
    offset.map_or(String::new(), |o| format!(" (at character {})", o + 1))
}

/// Explains an `invalid_reference_format` in terms of the piece that is wrong, so a user who
/// typed `nginx::1.27` is told about the tag and not just that "the format is invalid".
fn diagnose_format(input: &str) -> (String, Option<usize>) {
    if input.is_empty() {
        return ("the reference is empty".into(), None);
    }
    if let Some(p) = input
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b"._-:/@[]+".contains(&b)))
    {
        let c = input[p..].chars().next().unwrap_or('?');
        return (
            format!(
                "character {c:?} is not allowed in an image reference{}",
                at_offset(Some(p))
            ),
            Some(p),
        );
    }
    let (name_and_tag, digest_at) = match input.find('@') {
        Some(i) => (&input[..i], Some(i)),
        None => (input, None),
    };
    if let Some(i) = digest_at
        && !ANCHORED_DIGEST_RE.is_match(&input[i + 1..])
    {
        return (
            format!(
                "the digest after '@' must be ALGORITHM:HEX with at least 32 hex digits{}",
                at_offset(Some(i + 1))
            ),
            Some(i + 1),
        );
    }
    // A tag starts at the first ':' of the last path component.
    let last_component_at = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let tag_at = name_and_tag[last_component_at..]
        .find(':')
        .map(|i| last_component_at + i);
    let name_end = tag_at.unwrap_or(name_and_tag.len());
    if let Some(i) = tag_at {
        let tag = &name_and_tag[i + 1..];
        if !ANCHORED_TAG_RE.is_match(tag) {
            return (
                format!(
                    "tag {} must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'{}",
                    Excerpt(tag),
                    at_offset(Some(i + 1))
                ),
                Some(i + 1),
            );
        }
    }
    let name = &name_and_tag[..name_end];
    if name.is_empty() {
        return ("the repository name is empty".into(), Some(0));
    }
    let mut offset = 0;
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && split_docker_domain(name).0 == components[0] {
        let domain = components.remove(0);
        if !ANCHORED_DOMAIN_RE.is_match(domain) {
            return (
                format!(
                    "registry host {} is not a valid host[:port]{}",
                    Excerpt(domain),
                    at_offset(Some(0))
                ),
                Some(0),
            );
        }
        offset = domain.len() + 1;
    }
    for component in components {
        if !ANCHORED_PATH_COMPONENT_RE.is_match(component) {
            return (
                format!(
                    "path component {} must be lowercase letters and digits, separated by '.', '_', '__' or '-'{}",
                    Excerpt(component),
                    at_offset(Some(offset))
                ),
                Some(offset),
            );
        }
        offset += component.len() + 1;
    }
    (
        "the reference does not follow NAME[:TAG][@DIGEST]".into(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_get_docker_hub_and_library() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        assert_eq!(r.docker_ref(), "docker.io/library/nginx:latest");
        assert_eq!(r.familiar(), "nginx");
    }

    #[test]
    fn errors_point_at_the_offending_piece() {
        let e = Reference::parse("nginx::1.27").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidReferenceFormat);
        assert!(e.message.contains("tag"), "{}", e.message);
        let e = Reference::parse("quay.io/Jetstack/x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NameContainsUppercase);
        assert_eq!(e.position, Some(8));
        let e = Reference::parse("nginx@sha256:abc").unwrap_err();
        assert_eq!(e.position, Some(6), "{}", e.message);
    }

    #[test]
    fn from_parts_refuses_a_name_that_would_read_differently() {
        assert!(Reference::from_parts("docker.io", "nginx", None, None).is_err());
        assert!(
            Reference::from_parts("reg.local:5000", "docker.io/library/nginx", None, None).is_ok()
        );
    }
}
