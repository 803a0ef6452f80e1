//! Where an image lands in the mirror.
//!
//! Naming is the contract between the two sides of the air gap: `save`/`push` must put an image
//! exactly where the post-renderer later points the cluster. So it lives here, once, and every
//! command asks this module.
//!
//! Schemes:
//! - `nested` (default): `MIRROR[/PREFIX]/<source host>/<path>`. The host becomes one path
//!   component (see [`encode_host`]), so two registries never meet in one repository.
//! - `strip`: `MIRROR[/PREFIX]/<path>`, as classic offline packages do; [`Collisions`] refuses two
//!   sources that would share a name.
//!
//! Overrides (`SOURCE_PREFIX=MIRROR_PATH`) win over the scheme; the longest matching source prefix
//! is used.
//!
//! A path depth limit (`--max-path-depth N`, for a Harbor project, GitLab's group/project
//! depth, Quay's organization/repository) folds the components past the limit into the last
//! one, `-` joined: `a/b/c/d` with N=2 under the prefix is `a/b-c-d`. Folding can make two
//! sources meet, so it is checked by [`Collisions`] like `strip`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::oci::hub::{self, HUB as DOCKER_HUB};
use crate::reference::{ParseError, Reference};

/// How a source repository is named in the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// `MIRROR[/PREFIX]/<source host>/<path>`: collision-free.
    #[default]
    Nested,
    /// `MIRROR[/PREFIX]/<path>`: the source host dropped.
    Strip,
}

impl fmt::Display for Naming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Naming::Nested => "nested",
            Naming::Strip => "strip",
        })
    }
}

/// Errors in naming: a bad mirror or override setting, a name the grammar cannot hold, or two
/// sources on one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    #[error(
        "invalid mirror registry {value:?}: {why}; write HOST[:PORT][/PREFIX], e.g. reg.local:5000 or registry.example.com/mirror"
    )]
    InvalidMirror { value: String, why: String },
    #[error(
        "invalid naming override {value:?}: {why}; write SOURCE_PREFIX=MIRROR_PATH, e.g. quay.io/jetstack=jetstack"
    )]
    InvalidOverride { value: String, why: String },
    #[error("{source_ref} cannot be named in the mirror: {error}")]
    Unrepresentable {
        source_ref: String,
        error: Box<ParseError>,
    },
    #[error(
        "naming collision: {first} and {second} would both be mirrored as {mirror}; use --naming nested, or add an override for one of them"
    )]
    Collision {
        first: String,
        second: String,
        mirror: String,
    },
}

/// The mirror registry: `HOST[:PORT]` and an optional path prefix under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    host: String,
    prefix: Option<String>,
}

impl Mirror {
    /// Parses `HOST[:PORT][/PREFIX]`. The host must be one that the reference grammar reads as a
    /// registry (with a `.` or a port, or `localhost`); otherwise `reg/app` would be read as the
    /// Docker Hub repository `reg/app` and every rewritten image would point at Docker Hub.
    pub fn parse(value: &str) -> Result<Mirror, NamingError> {
        let invalid = |why: &str| NamingError::InvalidMirror {
            value: value.to_string(),
            why: why.to_string(),
        };
        let value_trimmed = value.trim_end_matches('/');
        if value_trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if value_trimmed.contains("://") {
            return Err(invalid("leave out the scheme (http:// or https://)"));
        }
        let (host, prefix) = match value_trimmed.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (value_trimmed, None),
        };
        if !(host.contains(['.', ':']) || host == "localhost") {
            return Err(invalid(
                "the host needs a '.' or a port (or be localhost), or image names would be read as Docker Hub repositories",
            ));
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("write the host in lowercase"));
        }
        check_host_port(host).map_err(|why| invalid(&why))?;
        let probe = format!("{host}/{}", prefix.unwrap_or("x"));
        match Reference::parse(&probe) {
            Ok(r) if r.domain() == host && r.tag().is_none() && r.digest().is_none() => {}
            Ok(_) => return Err(invalid("the prefix may not hold a tag or digest")),
            Err(e) => return Err(invalid(&e.message)),
        }
        Ok(Mirror {
            host: host.to_string(),
            prefix: prefix.map(str::to_string),
        })
    }

    /// `HOST[:PORT]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// Whether `reference` already points at this mirror, so rewriting it again changes nothing.
    pub fn holds(&self, reference: &Reference) -> bool {
        reference.domain().eq_ignore_ascii_case(&self.host)
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prefix {
            Some(p) => write!(f, "{}/{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// An explicit `source prefix → mirror path` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// A repository-name prefix in canonical form, Docker Hub aliases folded:
    /// `quay.io/jetstack`, `docker.io/library/nginx`, or a host alone (`ghcr.io`).
    source: String,
    /// A path under the mirror host (the mirror's own prefix does not apply).
    target: String,
}

impl Override {
    /// Parses `SOURCE_PREFIX=MIRROR_PATH`.
    pub fn parse(value: &str) -> Result<Override, NamingError> {
        let (source, target) =
            value
                .split_once('=')
                .ok_or_else(|| NamingError::InvalidOverride {
                    value: value.to_string(),
                    why: "there is no '='".into(),
                })?;
        Override::new(source, target).map_err(|why| NamingError::InvalidOverride {
            value: value.to_string(),
            why,
        })
    }

    /// `source` is taken literally as `HOST[/PATH]` (Docker Hub's aliases folded): a prefix is
    /// a namespace as often as an image, so `docker.io/bitnami` must not become
    /// `docker.io/library/bitnami` the way an image name would.
    pub fn new(source: &str, target: &str) -> Result<Override, String> {
        let source = source.trim_end_matches('/');
        let target = target.trim_matches('/');
        if source.is_empty() || target.is_empty() {
            return Err("both sides must be non-empty".into());
        }
        let (host, path) = source.split_once('/').unwrap_or((source, ""));
        if !(host.contains(['.', ':']) || host == "localhost") {
            return Err(format!(
                "the source prefix must start with a registry host, e.g. docker.io/{source}"
            ));
        }
        check_host_port(host)?;
        let probe = format!("{host}/{}", if path.is_empty() { "x" } else { path });
        match Reference::parse(&probe) {
            Ok(r) if r.tag().is_none() && r.digest().is_none() => {}
            Ok(_) => return Err("the source prefix may not hold a tag or digest".into()),
            Err(e) => return Err(e.message),
        }
        let host = hub::canonical(host).to_ascii_lowercase();
        let source = if path.is_empty() {
            host
        } else {
            format!("{host}/{path}")
        };
        for component in target.split('/') {
            Reference::parse(&format!("example.com/{component}"))
                .ok()
                .filter(|r| r.tag().is_none() && r.digest().is_none())
                .ok_or_else(|| format!("{component:?} is not a valid repository path component"))?;
        }
        Ok(Override {
            source,
            target: target.to_string(),
        })
    }

    /// The rest of `name` after this override's source prefix, if it applies.
    fn strip<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = name.strip_prefix(&self.source)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// The whole naming configuration: mirror, scheme and overrides.
#[derive(Debug, Clone)]
pub struct MirrorNaming {
    mirror: Mirror,
    naming: Naming,
    overrides: Vec<Override>,
    /// At most this many path components below the prefix (below the host without one).
    max_depth: Option<usize>,
}

/// The registry name a chart with no registry of its own (a directory, a `.tgz`, a classic
/// repository's chart) carries in a bundle: `charts.kubectl-airgap.invalid/NAME:VERSION`. The
/// `.invalid` top-level domain never resolves, so the name cannot be mistaken for a place to
/// pull from; [`MirrorNaming::map`] puts it at `MIRROR[/PREFIX]/charts/NAME:VERSION`, where
/// `helm install oci://MIRROR/charts/NAME --version VERSION` finds it.
pub const LOCAL_CHARTS: &str = "charts.kubectl-airgap.invalid";

/// The bundle name of a chart with no registry: see [`LOCAL_CHARTS`]. A version's `+` (semver
/// build metadata) becomes `_` in the tag, as `helm push` writes it.
pub fn local_chart(name: &str, version: &str) -> Result<Reference, crate::reference::ParseError> {
    Reference::parse(&format!(
        "{LOCAL_CHARTS}/{name}:{}",
        version.replace('+', "_")
    ))
}

impl MirrorNaming {
    pub fn new(mirror: Mirror, naming: Naming, mut overrides: Vec<Override>) -> MirrorNaming {
        // Longest source first, so the most specific override wins.
        overrides.sort_by_key(|o| std::cmp::Reverse(o.source.len()));
        MirrorNaming {
            mirror,
            naming,
            overrides,
            max_depth: None,
        }
    }

    /// Limits mirror paths to `depth` components below the prefix (at least 1), folding the
    /// rest into the last one.
    pub fn with_max_depth(mut self, depth: Option<usize>) -> MirrorNaming {
        self.max_depth = depth.map(|d| d.max(1));
        self
    }

    /// The path depth limit, when one is set.
    pub fn max_depth(&self) -> Option<usize> {
        self.max_depth
    }

    /// `path` with the components past the depth limit folded into the last one allowed.
    fn fold(&self, path: String) -> String {
        let Some(max) = self.max_depth else {
            return path;
        };
        let (head, rest) = match self.mirror.prefix() {
            Some(p)
                if path.len() > p.len()
                    && path.starts_with(p)
                    && path[p.len()..].starts_with('/') =>
            {
                (&path[..p.len() + 1], &path[p.len() + 1..])
            }
            _ => ("", path.as_str()),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() <= max {
            return path;
        }
        let mut out = head.to_string();
        for p in &parts[..max - 1] {
            out.push_str(p);
            out.push('/');
        }
        out.push_str(&parts[max - 1..].join("-"));
        out
    }

    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// The mirror reference for `source`, tag and digest kept exactly. A reference that already
    /// points at the mirror is returned unchanged.
    pub fn map(&self, source: &Reference) -> Result<Reference, NamingError> {
        if self.mirror.holds(source) {
            return Ok(source.clone());
        }
        if source.domain() == LOCAL_CHARTS {
            // A chart with no registry of its own: MIRROR[/PREFIX]/charts/NAME:VERSION.
            let path = match self.mirror.prefix() {
                Some(p) => format!("{p}/charts/{}", source.path()),
                None => format!("charts/{}", source.path()),
            };
            return source.with_name(&self.mirror.host, &path).map_err(|e| {
                NamingError::Unrepresentable {
                    source_ref: source.to_string(),
                    error: Box::new(e),
                }
            });
        }
        let name = canonical_name(source);
        let path = match self
            .overrides
            .iter()
            .find_map(|o| Some((o, o.strip(&name)?)))
        {
            Some((o, rest)) => format!("{}{rest}", o.target),
            None => {
                let mut path = String::new();
                if let Some(p) = self.mirror.prefix() {
                    path.push_str(p);
                    path.push('/');
                }
                if self.naming == Naming::Nested && !source.domain().is_empty() {
                    path.push_str(&encode_host(&canonical_host(source.domain())));
                    path.push('/');
                }
                path.push_str(&canonical_path(source));
                path
            }
        };
        let path = self.fold(path);
        source
            .with_name(&self.mirror.host, &path)
            .map_err(|e| NamingError::Unrepresentable {
                source_ref: source.to_string(),
                error: Box::new(e),
            })
    }
}

/// Where a whole source registry lands in the mirror, for settings that route a registry host
/// rather than name one image at a time (a node's container runtime mirror configuration):
/// what [`MirrorNaming::map`] does to every `HOST/REPO`, said once per host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRoute {
    /// The path under the mirror host below which `HOST/REPO` lands as `ROOT/REPO`; empty when
    /// repositories land at the mirror's root (strip naming without a prefix).
    pub root: String,
    /// Overrides that move part of the host elsewhere: (repository prefix under the host,
    /// mirror path), most specific first. A setting that can only route whole hosts cannot
    /// say these.
    pub partial: Vec<(String, String)>,
}

impl MirrorNaming {
    /// How every repository of the source registry `host` is named in the mirror (Docker Hub's
    /// aliases are one registry).
    pub fn route(&self, host: &str) -> RegistryRoute {
        let host = canonical_host(host);
        let root = match self.overrides.iter().find(|o| o.source == host) {
            Some(o) => o.target.clone(),
            None => {
                let mut parts: Vec<String> = self
                    .mirror
                    .prefix()
                    .map(str::to_string)
                    .into_iter()
                    .collect();
                if self.naming == Naming::Nested {
                    parts.push(encode_host(&host));
                }
                parts.join("/")
            }
        };
        let partial = self
            .overrides
            .iter()
            .filter_map(|o| {
                let rest = o.source.strip_prefix(&host)?.strip_prefix('/')?;
                Some((rest.to_string(), o.target.clone()))
            })
            .collect();
        RegistryRoute { root, partial }
    }
}

/// Watches a set of mappings for two source repositories landing on one mirror repository.
#[derive(Debug, Default)]
pub struct Collisions {
    /// mirror repository → source repository.
    seen: BTreeMap<String, String>,
}

impl Collisions {
    pub fn new() -> Collisions {
        Collisions::default()
    }

    /// Records `source → mirror`; an error names both sources when the mirror repository
    /// already belongs to another.
    pub fn insert(&mut self, source: &Reference, mirror: &Reference) -> Result<(), NamingError> {
        let source_name = canonical_name(source);
        let mirror_name = mirror.name();
        match self.seen.get(&mirror_name) {
            Some(first) if *first != source_name => Err(NamingError::Collision {
                first: first.clone(),
                second: source_name,
                mirror: mirror_name,
            }),
            Some(_) => Ok(()),
            None => {
                self.seen.insert(mirror_name, source_name);
                Ok(())
            }
        }
    }
}

/// Host names are case-insensitive; the lowercase, alias-folded form is the registry's identity.
fn canonical_host(domain: &str) -> String {
    hub::canonical(domain).to_ascii_lowercase()
}

/// The path, with `library/` added for one-component names on a Docker Hub alias that the
/// grammar itself does not normalize (`registry-1.docker.io/nginx`).
fn canonical_path(r: &Reference) -> String {
    if canonical_host(r.domain()) == DOCKER_HUB && !r.path().contains('/') {
        format!("library/{}", r.path())
    } else {
        r.path().to_string()
    }
}

/// The repository name with Docker Hub's aliases folded: the identity of a source repository.
pub fn canonical_name(r: &Reference) -> String {
    if r.domain().is_empty() {
        return r.path().to_string();
    }
    format!("{}/{}", canonical_host(r.domain()), canonical_path(r))
}

/// The full reference with Docker Hub's aliases folded: how `images` and `check` name a source.
pub fn canonical_reference(r: &Reference) -> String {
    let mut s = canonical_name(r);
    if let Some(t) = r.tag() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = r.digest() {
        s.push('@');
        s.push_str(d);
    }
    s
}

/// Refuses a port outside 1-65535 in a registry host the user gave (`HOST[:PORT]`).
///
/// The reference grammar takes any run of digits as a port, as distribution's does, so an image
/// named in a manifest keeps parsing; but a host the user names to be contacted
/// (`--registry`, `--insecure-registry`, `--source-mirror`, the config file) with port 99999 can
/// never be reached, and saying so at once beats blaming the registry after every retry.
pub fn check_host_port(host: &str) -> Result<(), String> {
    let Some(i) = host.rfind(':') else {
        return Ok(());
    };
    if host[i..].contains(']') {
        return Ok(());
    }
    let port = &host[i + 1..];
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "port {port} of registry host {host:?} is out of range: a port is 1 to 65535"
        )),
    }
}

/// Makes a registry host one legal path component, reversibly (see [`decode_host`]).
///
/// Host names are case-insensitive, so they are lowercased. A port's `:` becomes `_`, which no
/// host name can contain. An IPv6 literal `[::1]` becomes `ipv6__` and its eight groups joined by
/// `-` (`ipv6__0-0-0-0-0-0-0-1`): `__` appears in no host name, so the two forms cannot meet.
pub fn encode_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host.as_str(), None),
    };
    let mut out = match name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .and_then(|n| n.parse::<Ipv6Addr>().ok())
    {
        Some(ip) => {
            let groups: Vec<String> = ip.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("ipv6__{}", groups.join("-"))
        }
        None => name.to_string(),
    };
    if let Some(port) = port {
        out.push('_');
        out.push_str(port);
    }
    out
}

/// The inverse of [`encode_host`] (up to letter case and IPv6 spelling).
pub fn decode_host(component: &str) -> String {
    let (name, port) = match component.rsplit_once('_') {
        Some((n, p)) if !n.ends_with('_') && p.bytes().all(|b| b.is_ascii_digit()) => (n, Some(p)),
        _ => (component, None),
    };
    let mut out = match name.strip_prefix("ipv6__") {
        Some(groups) => {
            let segments: Vec<u16> = groups
                .split('-')
                .filter_map(|g| u16::from_str_radix(g, 16).ok())
                .collect();
            match <[u16; 8]>::try_from(segments) {
                Ok(s) => format!("[{}]", Ipv6Addr::from(s)),
                Err(_) => name.to_string(),
            }
        }
        None => name.to_string(),
    };
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_depth_limit_folds_the_components_past_it_into_the_last() {
        let map = |mirror: &str, scheme, depth, source: &str| {
            naming(mirror, scheme, &[])
                .with_max_depth(Some(depth))
                .map(&Reference::parse(source).unwrap())
                .unwrap()
                .to_string()
        };
        let pinned =
            "ghcr.io/o/app@sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let cases = [
            // The example: a/b/c/d with N=2 under the prefix is a/b-c-d.
            (
                "reg.local/project",
                Naming::Strip,
                2,
                "quay.io/a/b/c/d:1",
                "reg.local/project/a/b-c-d:1",
            ),
            (
                "reg.local/project",
                Naming::Nested,
                2,
                "nginx:1.27",
                "reg.local/project/docker.io/library-nginx:1.27",
            ),
            (
                "reg.local/project",
                Naming::Nested,
                1,
                pinned,
                "reg.local/project/ghcr.io-o-app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            // Within the limit, and without a prefix: counted from the host.
            (
                "reg.local",
                Naming::Strip,
                2,
                "quay.io/a/b:1",
                "reg.local/a/b:1",
            ),
            (
                "reg.local:5000",
                Naming::Nested,
                2,
                "quay.io/a/b:1",
                "reg.local:5000/quay.io/a-b:1",
            ),
        ];
        for (mirror, scheme, depth, source, want) in cases {
            assert_eq!(map(mirror, scheme, depth, source), want, "{source}");
        }
    }

    #[test]
    fn folding_that_makes_two_sources_meet_is_a_collision_naming_both() {
        let n = naming("reg.local/project", Naming::Strip, &[]).with_max_depth(Some(2));
        let mut c = Collisions::new();
        let (a, b) = (
            Reference::parse("quay.io/a/b/c:1").unwrap(),
            Reference::parse("quay.io/a/b-c:1").unwrap(),
        );
        c.insert(&a, &n.map(&a).unwrap()).unwrap();
        let e = c.insert(&b, &n.map(&b).unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("quay.io/a/b/c") && e.contains("quay.io/a/b-c"),
            "{e}"
        );
    }

    fn naming(mirror: &str, naming: Naming, overrides: &[&str]) -> MirrorNaming {
        MirrorNaming::new(
            Mirror::parse(mirror).unwrap(),
            naming,
            overrides
                .iter()
                .map(|o| Override::parse(o).unwrap())
                .collect(),
        )
    }

    fn map(n: &MirrorNaming, s: &str) -> String {
        n.map(&Reference::parse(s).unwrap()).unwrap().to_string()
    }

    #[test]
    fn charts_without_a_registry_land_under_charts_with_either_naming() {
        let chart = local_chart("shop", "1.2.3+build.4").unwrap();
        assert_eq!(
            chart.tag(),
            Some("1.2.3_build.4"),
            "helm push's tag for a +"
        );
        for scheme in [Naming::Nested, Naming::Strip] {
            let n = naming("reg.local:5000/team", scheme, &[]);
            assert_eq!(
                n.map(&chart).unwrap().to_string(),
                "reg.local:5000/team/charts/shop:1.2.3_build.4"
            );
        }
        // An OCI chart is an image to the naming: its nested name.
        let n = naming("reg.local:5000", Naming::Nested, &[]);
        assert_eq!(
            map(&n, "ghcr.io/acme/charts/shop:1.0.0"),
            "reg.local:5000/ghcr.io/acme/charts/shop:1.0.0"
        );
    }

    #[test]
    fn nested_keeps_the_source_host() {
        let n = naming("reg.local:5000", Naming::Nested, &[]);
        assert_eq!(map(&n, "nginx"), "reg.local:5000/docker.io/library/nginx");
        assert_eq!(
            map(&n, "quay.io/jetstack/cert-manager-controller:v1.16.2"),
            "reg.local:5000/quay.io/jetstack/cert-manager-controller:v1.16.2"
        );
        assert_eq!(
            map(&n, "localhost:5000/app:1"),
            "reg.local:5000/localhost_5000/app:1"
        );
        assert_eq!(
            map(&n, "[::1]:5000/app"),
            "reg.local:5000/ipv6__0-0-0-0-0-0-0-1_5000/app"
        );
    }

    #[test]
    fn docker_hub_aliases_are_one_registry() {
        let n = naming("reg.local:5000/mirror", Naming::Nested, &[]);
        let want = "reg.local:5000/mirror/docker.io/library/nginx:1.27";
        for s in [
            "nginx:1.27",
            "docker.io/nginx:1.27",
            "index.docker.io/library/nginx:1.27",
            "registry-1.docker.io/library/nginx:1.27",
            "registry-1.docker.io/nginx:1.27",
        ] {
            assert_eq!(map(&n, s), want, "{s}");
        }
    }

    #[test]
    fn tag_and_digest_are_kept_and_mirror_refs_left_alone() {
        let n = naming("reg.local:5000", Naming::Strip, &[]);
        let d = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
        assert_eq!(
            map(
                &n,
                &format!("registry.k8s.io/ingress-nginx/controller:v1.12.0@{d}")
            ),
            format!("reg.local:5000/ingress-nginx/controller:v1.12.0@{d}")
        );
        assert_eq!(map(&n, "reg.local:5000/x/y:1"), "reg.local:5000/x/y:1");
    }

    #[test]
    fn overrides_win_longest_first() {
        let n = naming(
            "reg.local:5000",
            Naming::Nested,
            &[
                "quay.io=q",
                "quay.io/jetstack=certs",
                "index.docker.io/library/nginx=web/nginx",
            ],
        );
        assert_eq!(map(&n, "quay.io/jetstack/a:1"), "reg.local:5000/certs/a:1");
        assert_eq!(map(&n, "quay.io/other/b"), "reg.local:5000/q/other/b");
        assert_eq!(map(&n, "nginx:1"), "reg.local:5000/web/nginx:1");
        // A prefix matches whole components only.
        assert_eq!(
            map(&n, "quay.io/jetstackx/c"),
            "reg.local:5000/q/jetstackx/c"
        );
    }

    #[test]
    fn strip_collisions_name_both_sources() {
        let n = naming("reg.local:5000", Naming::Strip, &[]);
        let mut c = Collisions::new();
        for s in [
            "quay.io/org/app:1",
            "quay.io/org/app:2",
            "ghcr.io/org/app:1",
        ] {
            let r = Reference::parse(s).unwrap();
            let m = n.map(&r).unwrap();
            let res = c.insert(&r, &m);
            if s.starts_with("ghcr") {
                let e = res.unwrap_err().to_string();
                assert!(
                    e.contains("quay.io/org/app") && e.contains("ghcr.io/org/app"),
                    "{e}"
                );
            } else {
                res.unwrap();
            }
        }
    }

    #[test]
    fn a_route_names_every_repository_of_a_host_as_map_does() {
        for (mirror, scheme) in [
            ("reg.local:5000", Naming::Nested),
            ("reg.local:5000/m/n", Naming::Nested),
            ("reg.local:5000", Naming::Strip),
            ("reg.local:5000/m", Naming::Strip),
        ] {
            let n = naming(mirror, scheme, &["ghcr.io=gh", "quay.io/jetstack=certs"]);
            for image in [
                "nginx:1",
                "registry-1.docker.io/bitnami/redis:7",
                "quay.io/org/app:1",
                "localhost:5000/app:1",
                "ghcr.io/o/p:2",
            ] {
                let r = Reference::parse(image).unwrap();
                let route = n.route(r.domain());
                assert!(
                    route.partial.is_empty() || r.domain() == "quay.io",
                    "{image}"
                );
                let path = canonical_path(&r);
                let want = if route.root.is_empty() {
                    path
                } else {
                    format!("{}/{path}", route.root)
                };
                assert_eq!(
                    n.map(&r).unwrap().name(),
                    format!("reg.local:5000/{want}"),
                    "{mirror} {scheme} {image}"
                );
            }
            assert_eq!(
                n.route("quay.io").partial,
                vec![("jetstack".to_string(), "certs".to_string())]
            );
            assert!(n.route("Docker.io").partial.is_empty());
        }
    }

    #[test]
    fn bad_mirrors_are_refused_with_a_reason() {
        for bad in ["reg", "https://reg.local", "Reg.local", "reg.local/UP", ""] {
            assert!(Mirror::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Mirror::parse("localhost/m/").unwrap().to_string(),
            "localhost/m"
        );
    }

    #[test]
    fn ports_must_be_1_to_65535() {
        for ok in [
            "reg.local",
            "reg.local:1",
            "reg.local:65535",
            "[::1]:5000",
            "[::1]",
        ] {
            assert_eq!(check_host_port(ok), Ok(()), "{ok}");
        }
        for bad in [
            "reg:0",
            "reg:65536",
            "reg:99999",
            "[::1]:70000",
            "r:99999999999999999999",
        ] {
            let why = check_host_port(bad).unwrap_err();
            assert!(why.contains("1 to 65535"), "{bad}: {why}");
        }
        assert!(Mirror::parse("reg.local:99999/m").is_err());
        assert!(Override::parse("quay.io:0/x=y").is_err());
    }

    #[test]
    fn host_encoding_round_trips() {
        for h in [
            "quay.io",
            "localhost:5000",
            "[::1]:5000",
            "[fe80::1]",
            "a-b.c",
        ] {
            let e = encode_host(h);
            assert!(Reference::parse(&format!("x.io/{e}/app")).is_ok(), "{e}");
            assert_eq!(decode_host(&e), h, "{e}");
        }
    }
}
