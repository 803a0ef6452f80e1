//! What a request asks for, decided from its method, path and query alone: pure functions, so
//! every refusal (a `..` in a name, a digest that is not one, a push) is made before the store
//! is asked anything and no file is opened for a request that is not a valid read.
//!
//! The grammar is the distribution spec's: names are lowercase components of `[a-z0-9]`
//! joined by `.`, `_`, `__` or dashes, separated by `/`; tags are `[A-Za-z0-9_][A-Za-z0-9._-]`
//! up to 128; digests `algorithm:encoded`. Nothing is percent-decoded in a path (no valid name,
//! tag or digest holds a `%`), so `%2e%2e` is refused as a bad name, not turned into `..`.

/// A valid read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/v2/`: the API version check.
    Ping,
    /// `/v2/_catalog`.
    Catalog(Page),
    /// `/v2/<name>/tags/list`.
    Tags { name: String, page: Page },
    /// `/v2/<name>/manifests/<tag or digest>`.
    Manifest { name: String, reference: Target },
    /// `/v2/<name>/blobs/<digest>`.
    Blob { name: String, digest: Digest },
    /// `/v2/<name>/referrers/<digest>[?artifactType=...]`.
    Referrers {
        name: String,
        digest: Digest,
        artifact_type: Option<String>,
    },
}

/// A manifest asked for by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Tag(String),
    Digest(Digest),
}

/// A digest a request names: one [`crate::oci::Digest`] parses (only a sha256 one can be held),
/// or a well-formed one of an algorithm we do not know, which no bundle holds (404, not 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    Known(crate::oci::Digest),
    Unknown(String),
}

impl Digest {
    /// The digest as written, `sha256:<hex>`, when it is one a bundle can hold.
    pub(crate) fn sha256(&self) -> Option<&str> {
        match self {
            Digest::Known(d) if d.sha256_hex().is_some() => Some(d.as_str()),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Digest::Known(d) => d.as_str(),
            Digest::Unknown(d) => d,
        }
    }
}

/// `n` and `last` of a paginated list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Page {
    pub n: Option<usize>,
    pub last: Option<String>,
}

/// Why a request is refused, with the OCI error code it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 405 `UNSUPPORTED`: a write, or a method no read uses.
    Unsupported(String),
    /// 400 `NAME_INVALID`.
    NameInvalid(String),
    /// 400 `DIGEST_INVALID`.
    DigestInvalid(String),
    /// 400 `TAG_INVALID` (the spec names it `MANIFEST_INVALID`; registries answer a bad
    /// reference so).
    ReferenceInvalid(String),
    /// 400 `PAGINATION_NUMBER_INVALID`.
    PageInvalid(String),
    /// 404 `NOT_FOUND`: a path outside the API.
    NotFound,
}

/// The longest path a read can have: a name of 255 and a digest of a few hundred.
const PATH_LIMIT: usize = 1024;

/// What `method path?query` asks for, or why it is refused.
pub(crate) fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, Refusal> {
    if method != "GET" && method != "HEAD" {
        return Err(Refusal::Unsupported(format!(
            "this registry serves bundles read-only; {method} is not served (push to a real registry with `kubectl airgap push`)"
        )));
    }
    if path.len() > PATH_LIMIT {
        return Err(Refusal::NotFound);
    }
    let rest = match path.strip_prefix("/v2") {
        Some("" | "/") => return Ok(Route::Ping),
        Some(rest) => rest.strip_prefix('/').ok_or(Refusal::NotFound)?,
        None => return Err(Refusal::NotFound),
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog(page(query)?));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if let Some(bad) = parts.iter().find(|p| matches!(**p, "" | "." | "..")) {
        return Err(Refusal::NameInvalid(format!(
            "the path has a {} component; names, tags and digests hold none",
            quoted(bad)
        )));
    }
    let n = parts.len();
    if n >= 3 && parts[n - 2] == "tags" && parts[n - 1] == "list" {
        let name = name(&parts[..n - 2])?;
        return Ok(Route::Tags {
            name,
            page: page(query)?,
        });
    }
    if n >= 3 && parts[n - 3..n - 1] == ["blobs", "uploads"] || parts.last() == Some(&"uploads") {
        return Err(Refusal::Unsupported(
            "this registry serves bundles read-only; uploads are not served".into(),
        ));
    }
    if n < 3 {
        return Err(Refusal::NotFound);
    }
    let (kind, last) = (parts[n - 2], parts[n - 1]);
    let repo = &parts[..n - 2];
    match kind {
        "manifests" => {
            let name = name(repo)?;
            let reference = if last.contains(':') {
                Target::Digest(digest(last)?)
            } else if is_tag(last) {
                Target::Tag(last.to_string())
            } else {
                return Err(Refusal::ReferenceInvalid(format!(
                    "{} is neither a tag nor a digest",
                    quoted(last)
                )));
            };
            Ok(Route::Manifest { name, reference })
        }
        "blobs" => Ok(Route::Blob {
            name: name(repo)?,
            digest: digest(last)?,
        }),
        "referrers" => Ok(Route::Referrers {
            name: name(repo)?,
            digest: digest(last)?,
            artifact_type: query_value(query, "artifactType"),
        }),
        _ => Err(Refusal::NotFound),
    }
}

/// A repository name from its path components.
fn name(parts: &[&str]) -> Result<String, Refusal> {
    let joined = parts.join("/");
    if parts.is_empty() || joined.len() > 255 || !parts.iter().all(|c| is_component(c)) {
        return Err(Refusal::NameInvalid(format!(
            "{} is not a repository name (lowercase letters, digits and . _ - between / )",
            quoted(&joined)
        )));
    }
    Ok(joined)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// A digest by the one parser every room uses ([`crate::oci::Digest`]); a well-formed digest of
/// an algorithm it does not know is not refused, only never found.
fn digest(d: &str) -> Result<Digest, Refusal> {
    match crate::oci::Digest::parse(d) {
        Ok(digest) => Ok(Digest::Known(digest)),
        Err(e) if e.kind == crate::oci::DigestErrorKind::Unsupported => {
            Ok(Digest::Unknown(d.to_string()))
        }
        Err(_) => Err(Refusal::DigestInvalid(format!(
            "{} is not a digest",
            quoted(d)
        ))),
    }
}

/// `n` and `last` from a query.
fn page(query: Option<&str>) -> Result<Page, Refusal> {
    let n = match query_value(query, "n") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            Refusal::PageInvalid(format!(
                "n={} is not a count; give a whole number",
                quoted(&v)
            ))
        })?),
    };
    Ok(Page {
        n,
        last: query_value(query, "last"),
    })
}

/// The first value of `key` in a query string, percent-decoded.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |x: u8| (x as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client's text in an error, bounded.
fn quoted(s: &str) -> String {
    crate::excerpt::Excerpt(s).to_string()
}

/// A `Range` header's one range over a blob of `size` bytes: `Ok(None)` for no range or one
/// this server does not honour (several ranges, other units: the whole blob is sent, as RFC
/// 9110 allows), `Err(())` for a range that lies outside the blob (416).
pub(crate) fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-N`: the last N bytes.
        (true, false) => {
            let Some(n) = num(last) else { return Ok(None) };
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, true) => {
            let Some(s) = num(first) else { return Ok(None) };
            (s, size.saturating_sub(1))
        }
        (false, false) => {
            let (Some(s), Some(e)) = (num(first), num(last)) else {
                return Ok(None);
            };
            if e < s {
                return Ok(None);
            }
            (s, e.min(size.saturating_sub(1)))
        }
        (true, true) => return Ok(None),
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn get(path: &str) -> Result<Route, Refusal> {
        route("GET", path, None)
    }

    #[test]
    fn reads_are_routed() {
        assert_eq!(get("/v2/"), Ok(Route::Ping));
        assert_eq!(get("/v2"), Ok(Route::Ping));
        assert_eq!(
            route("GET", "/v2/_catalog", Some("n=2&last=a%2Fb")),
            Ok(Route::Catalog(Page {
                n: Some(2),
                last: Some("a/b".into())
            }))
        );
        assert_eq!(
            get("/v2/docker.io/library/nginx/manifests/1.27"),
            Ok(Route::Manifest {
                name: "docker.io/library/nginx".into(),
                reference: Target::Tag("1.27".into())
            })
        );
        assert_eq!(
            route("HEAD", &format!("/v2/a/manifests/{D}"), None),
            Ok(Route::Manifest {
                name: "a".into(),
                reference: Target::Digest(Digest::Known(crate::oci::Digest::parse(D).unwrap()))
            })
        );
        // A repository may itself hold a component called `blobs` or `manifests`.
        assert_eq!(
            get(&format!("/v2/x/blobs/y/blobs/{D}")),
            Ok(Route::Blob {
                name: "x/blobs/y".into(),
                digest: Digest::Known(crate::oci::Digest::parse(D).unwrap())
            })
        );
        assert_eq!(
            get("/v2/a/b/tags/list"),
            Ok(Route::Tags {
                name: "a/b".into(),
                page: Page::default()
            })
        );
        assert_eq!(
            route(
                "GET",
                &format!("/v2/a/referrers/{D}"),
                Some("artifactType=application%2Fx")
            ),
            Ok(Route::Referrers {
                name: "a".into(),
                digest: Digest::Known(crate::oci::Digest::parse(D).unwrap()),
                artifact_type: Some("application/x".into())
            })
        );
        assert_eq!(
            get("/v2/a/blobs/blake3:abcd"),
            Ok(Route::Blob {
                name: "a".into(),
                digest: Digest::Unknown("blake3:abcd".into())
            })
        );
    }

    #[test]
    fn writes_and_other_methods_are_unsupported() {
        for (m, p) in [
            ("POST", "/v2/a/blobs/uploads/"),
            ("PUT", "/v2/a/manifests/v1"),
            ("PATCH", "/v2/a/blobs/uploads/123"),
            ("DELETE", "/v2/a/manifests/v1"),
            ("OPTIONS", "/v2/"),
        ] {
            assert!(
                matches!(route(m, p, None), Err(Refusal::Unsupported(_))),
                "{m} {p}"
            );
        }
        assert!(matches!(
            get("/v2/a/blobs/uploads/123"),
            Err(Refusal::Unsupported(_))
        ));
    }

    #[test]
    fn bad_names_and_digests_are_refused() {
        for p in [
            "/v2/../etc/manifests/v1",
            "/v2/a/../../manifests/v1",
            "/v2/%2e%2e/manifests/v1",
            "/v2/A/manifests/v1",
            "/v2//a/manifests/v1",
            "/v2/a-/manifests/v1",
            "/v2/a..b/manifests/v1",
            "/v2/a/blobs/sha256:../../../etc/passwd",
            "/v2/a/blobs/..",
            "/v2/a/blobs/uploads/../../x",
        ] {
            assert!(matches!(get(p), Err(Refusal::NameInvalid(_))), "{p}");
        }
        for p in [
            "/v2/a/blobs/sha256:ABCDEF",
            "/v2/a/blobs/sha256:0123",
            "/v2/a/blobs/sha256:",
            "/v2/a/manifests/sha256:zz",
            "/v2/a/referrers/latest",
        ] {
            assert!(matches!(get(p), Err(Refusal::DigestInvalid(_))), "{p}");
        }
        assert!(matches!(
            get("/v2/a/manifests/.v1"),
            Err(Refusal::ReferenceInvalid(_))
        ));
        assert!(matches!(
            route("GET", "/v2/_catalog", Some("n=x")),
            Err(Refusal::PageInvalid(_))
        ));
        for p in ["/", "/v1/", "/v2x", "/v2/a/other/x", "/v2/a"] {
            assert_eq!(get(p), Err(Refusal::NotFound), "{p}");
        }
        assert_eq!(
            get(&format!("/v2/{}", "a/".repeat(600))),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn name_components_follow_the_spec() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "0x"] {
            assert!(is_component(ok), "{ok}");
        }
        for bad in ["", "_a", "a_", "a___b", "a._b", "A", "a b", ".."] {
            assert!(!is_component(bad), "{bad}");
        }
        assert!(is_tag("v1.2_3-x") && is_tag("_x") && !is_tag("-x") && !is_tag(&"a".repeat(129)));
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-4"), 10), Ok(Some((0, 4))));
        assert_eq!(byte_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=-0"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=5-2"), 10), Ok(None));
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_value(Some("a=1&last=x%2Fy"), "last"),
            Some("x/y".into())
        );
        assert_eq!(query_value(Some("last=%zz%"), "last"), Some("%zz%".into()));
        assert_eq!(query_value(None, "n"), None);
    }
}
