//! `node-config`: the container runtime settings that send a node's pulls of the source
//! registries to the mirror.
//!
//! `post-render` rewrites the images that manifests name; an image an operator pulls at run
//! time under a name no manifest shows (and every image, with strip naming, as classic offline
//! packages use it) only reaches the mirror if the node's runtime itself is told to look there.
//! This room turns (source registries, mirror naming, the mirror's CA, a runtime) into the files
//! that say so: pure functions, so the files are unit-tested byte for byte and the CLI only
//! gathers inputs and writes.
//!
//! Routing is per registry host ([`crate::mirror::RegistryRoute`]), because that is what every
//! runtime's mirror setting keys on. An override that moves only part of a host (a repository
//! prefix) is said to CRI-O (a longer `prefix`), but refused for containerd and k3s, whose
//! settings route a whole host (containerd) or rewrite through an unordered regex map (k3s),
//! rather than written so that some pulls silently miss the mirror.
//!
//! - `containerd.rs`: `certs.d/HOST/hosts.toml`;
//! - `crio.rs`: `registries.conf.d/90-airgap.conf` and `certs.d/MIRROR/ca.crt`;
//! - `k3s.rs`: k3s's and RKE2's `registries.yaml`.

mod containerd;
mod crio;
mod k3s;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::mirror::{Collisions, MirrorNaming, NamingError, RegistryRoute, check_host_port};
use crate::oci::hub;
use crate::reference::Reference;

/// Which runtime's files to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// containerd's hosts directory (`/etc/containerd/certs.d`): one `HOST/hosts.toml` per
    /// source registry
    Containerd,
    /// CRI-O's and podman's `/etc/containers`: `registries.conf.d/90-airgap.conf` and the CA in
    /// `certs.d/MIRROR/`
    #[value(name = "cri-o", alias = "crio", alias = "podman")]
    CriO,
    /// k3s's and RKE2's `registries.yaml` (`/etc/rancher/k3s/` or `/etc/rancher/rke2/`)
    K3s,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Containerd => "containerd",
            Format::CriO => "cri-o",
            Format::K3s => "k3s",
        }
    }

    /// Where the files go on a node, unless the user says otherwise.
    pub(crate) fn default_node_dir(self) -> &'static str {
        match self {
            Format::Containerd => "/etc/containerd/certs.d",
            Format::CriO => "/etc/containers",
            Format::K3s => "/etc/rancher/k3s",
        }
    }
}

/// Everything the files say.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// The mirror's `HOST[:PORT]` and, in `naming`, where each source lands under it.
    pub naming: MirrorNaming,
    /// Source registry (canonical host) → where its repositories land in the mirror.
    pub routes: BTreeMap<String, RegistryRoute>,
    /// Talk plain HTTP to the mirror (only for a mirror the user marked insecure).
    pub plain_http: bool,
    /// The mirror's CA (PEM), copied beside the files that name it.
    pub ca: Option<Vec<u8>>,
    /// Where the files will be on the node: k3s's `ca_file` must be an absolute path there.
    pub node_dir: PathBuf,
}

/// One file to write, by its path relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// The name the CA is copied under, beside the files that name it.
pub(crate) const CA_FILE: &str = "airgap-ca.crt";

/// The source registries that `images` and `sources` (`HOST[:PORT]` values) name, each with its
/// route into the mirror. The images are named as `push` names them and held to the same
/// collision check, so a strip-named mirror that `push` refuses is refused here too. Images
/// that already name the mirror need no route.
pub(crate) fn routes(
    images: &[Reference],
    sources: &[String],
    naming: &MirrorNaming,
) -> anyhow::Result<BTreeMap<String, RegistryRoute>> {
    let mut collisions = Collisions::new();
    let mut hosts = Vec::new();
    // What the runtime's whole-registry route would name, when a depth limit may fold.
    let unfolded = naming
        .max_depth()
        .map(|_| naming.clone().with_max_depth(None));
    for image in images {
        if naming.mirror().holds(image) {
            continue;
        }
        let target = naming.map(image)?;
        collisions.insert(image, &target)?;
        if let Some(unfolded) = &unfolded {
            refuse_folded(image, &target, unfolded)?;
        }
        hosts.push(host_of(image.domain()));
    }
    if naming.max_depth().is_some() && !sources.is_empty() {
        anyhow::bail!(
            "--source with --max-path-depth: a runtime's mirror setting routes a whole registry and cannot fold paths, and without image names there is no telling which would fold; name the images (-f, --lock, --bundle) instead"
        );
    }
    for s in sources {
        hosts.push(source_host(s, naming)?);
    }
    if hosts.is_empty() {
        anyhow::bail!(
            "no source registry to send to the mirror: give manifests (-f FILE|DIR|-), --lock FILE, --bundle PATH, or --source HOST (repeatable)"
        );
    }
    Ok(hosts
        .into_iter()
        .map(|h| {
            let route = naming.route(&h);
            (h, route)
        })
        .collect())
}

/// Refuses an image whose mirror name (`target`) the depth limit folded, `unfolded` being the
/// naming without the limit: a runtime routes `HOST/REPO` to `ROOT/REPO` whole, so it would
/// pull a name the mirror does not hold.
fn refuse_folded(
    image: &Reference,
    target: &Reference,
    unfolded: &MirrorNaming,
) -> anyhow::Result<()> {
    let unfolded = unfolded.map(image)?;
    if unfolded.name() != target.name() {
        anyhow::bail!(
            "{} is mirrored as {} under --max-path-depth, but a runtime's mirror setting routes whole registries and would ask for {}; pods that post-render rewrote pull the folded name, so leave this image out of the node configuration or use a mirror without the depth limit",
            image.familiar(),
            target.name(),
            unfolded.name()
        );
    }
    Ok(())
}

/// A reference's registry as runtimes key it: lowercase, Docker Hub's aliases folded.
fn host_of(domain: &str) -> String {
    let domain = if domain.is_empty() { hub::HUB } else { domain };
    hub::canonical(domain).to_ascii_lowercase()
}

/// A `--source` value: a registry host, not a repository, and not the mirror itself.
fn source_host(value: &str, naming: &MirrorNaming) -> anyhow::Result<String> {
    let bad = |why: &str| anyhow::anyhow!("--source {value:?}: {why}");
    if value.contains("://") || value.contains('/') || value.is_empty() {
        return Err(bad(
            "give a registry host, HOST[:PORT], e.g. docker.io or quay.io (no scheme, no path)",
        ));
    }
    if !(value.contains(['.', ':']) || value == "localhost") {
        return Err(bad(
            "a registry host has a '.' or a port (or is localhost), e.g. docker.io",
        ));
    }
    check_host_port(value).map_err(|why| bad(&why))?;
    // The host names a directory of the output (containerd's `HOST/hosts.toml`): only what
    // the reference grammar reads as a registry host, so `..` cannot climb out of it.
    match Reference::parse(&format!("{value}/x")) {
        Ok(r) if r.domain() == value => {}
        _ => {
            return Err(bad(
                "this is not a registry host name, e.g. docker.io or reg.local:5000",
            ));
        }
    }
    let host = host_of(value);
    if host.eq_ignore_ascii_case(naming.mirror().host()) {
        return Err(bad(
            "this is the mirror itself; name the registries whose images it holds",
        ));
    }
    Ok(host)
}

/// The files for `format`.
pub(crate) fn render(config: &NodeConfig, format: Format) -> Result<Vec<NodeFile>, NamingError> {
    refuse_partial(config, format)?;
    Ok(match format {
        Format::Containerd => containerd::render(config),
        Format::CriO => crio::render(config),
        Format::K3s => k3s::render(config),
    })
}

/// containerd and k3s route whole hosts: an override of part of one is refused, naming it.
fn refuse_partial(config: &NodeConfig, format: Format) -> Result<(), NamingError> {
    if format == Format::CriO {
        return Ok(());
    }
    for (host, route) in &config.routes {
        if let Some((prefix, target)) = route.partial.first() {
            return Err(NamingError::InvalidOverride {
                value: format!("{host}/{prefix}={target}"),
                why: format!(
                    "{}'s mirror settings route a whole registry host, not part of one, so pulls under {host}/{prefix} would miss {target}; override the whole host ({host}=PATH), drop the override, or use --format cri-o",
                    format.name()
                ),
            });
        }
    }
    Ok(())
}

impl NodeConfig {
    /// The mirror's `HOST[:PORT]`.
    fn mirror_host(&self) -> &str {
        self.naming.mirror().host()
    }

    fn scheme(&self) -> &'static str {
        if self.plain_http { "http" } else { "https" }
    }

    /// The first line of every file: what wrote it and what it routes.
    fn banner(&self, comment: &str) -> String {
        format!(
            "{comment} Written by `kubectl airgap node-config`: pulls of {} go to the mirror {}.\n",
            self.routes.keys().cloned().collect::<Vec<_>>().join(", "),
            self.naming.mirror()
        )
    }
}

/// A string as a TOML basic string or a YAML double-quoted scalar: JSON's escapes are valid in
/// both, and host names and paths never need more.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Writes `files` under `dir`, each atomically (a runtime that reads its hosts directory on
/// every pull sees the old file or the new one, never half of one).
pub(crate) fn write_into(dir: &Path, files: &[NodeFile]) -> anyhow::Result<()> {
    for f in files {
        let path = dir.join(&f.path);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = {
            let _creating = crate::cleanup::creating();
            let _registered = crate::cleanup::register(&tmp);
            std::fs::write(&tmp, &f.contents).and_then(|()| std::fs::rename(&tmp, &path))
        };
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mirror::{Mirror, Naming, Override};

    pub(crate) fn config(
        mirror: &str,
        scheme: Naming,
        overrides: &[&str],
        images: &[&str],
    ) -> NodeConfig {
        let naming = MirrorNaming::new(
            Mirror::parse(mirror).unwrap(),
            scheme,
            overrides
                .iter()
                .map(|o| Override::parse(o).unwrap())
                .collect(),
        );
        let images: Vec<Reference> = images
            .iter()
            .map(|i| Reference::parse(i).unwrap())
            .collect();
        let routes = routes(&images, &[], &naming).unwrap();
        NodeConfig {
            naming,
            routes,
            plain_http: false,
            ca: Some(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec()),
            node_dir: PathBuf::from("/etc/rancher/k3s"),
        }
    }

    pub(crate) fn text(files: &[NodeFile], path: &str) -> String {
        let f = files
            .iter()
            .find(|f| f.path == Path::new(path))
            .unwrap_or_else(|| panic!("no {path} in {files:?}"));
        String::from_utf8(f.contents.clone()).unwrap()
    }

    fn naming(mirror: &str, scheme: Naming) -> MirrorNaming {
        MirrorNaming::new(Mirror::parse(mirror).unwrap(), scheme, vec![])
    }

    #[test]
    fn hosts_come_from_images_and_sources_once_each() {
        let n = naming("reg.local:5000", Naming::Nested);
        let images: Vec<Reference> = [
            "nginx",
            "index.docker.io/library/redis:7",
            "quay.io/a/b",
            "reg.local:5000/x/y:1",
        ]
        .iter()
        .map(|i| Reference::parse(i).unwrap())
        .collect();
        let got = routes(&images, &["ghcr.io".into(), "Docker.io".into()], &n).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["docker.io", "ghcr.io", "quay.io"]
        );
        assert_eq!(got["docker.io"].root, "docker.io");
    }

    #[test]
    fn strip_collisions_are_refused_as_push_refuses_them() {
        let n = naming("reg.local:5000", Naming::Strip);
        let images: Vec<Reference> = ["quay.io/org/app:1", "ghcr.io/org/app:1"]
            .iter()
            .map(|i| Reference::parse(i).unwrap())
            .collect();
        let e = routes(&images, &[], &n).unwrap_err().to_string();
        assert!(
            e.contains("naming collision") && e.contains("ghcr.io/org/app"),
            "{e}"
        );
    }

    #[test]
    fn bad_sources_and_no_sources_say_what_to_give() {
        let n = naming("reg.local:5000", Naming::Nested);
        for (bad, says) in [
            ("https://quay.io", "no scheme"),
            ("quay.io/org", "no path"),
            ("quay", "has a '.'"),
            ("quay.io:99999", "1 to 65535"),
            ("reg.local:5000", "the mirror itself"),
            ("..", "not a registry host name"),
            ("a..b:5000", "not a registry host name"),
        ] {
            let e = routes(&[], &[bad.into()], &n).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
        let e = routes(&[], &[], &n).unwrap_err().to_string();
        assert!(e.contains("--source HOST"), "{e}");
    }

    #[test]
    fn partial_overrides_are_refused_where_a_runtime_routes_whole_hosts() {
        let c = config(
            "reg.local:5000",
            Naming::Nested,
            &["quay.io/jetstack=certs"],
            &["quay.io/jetstack/cert-manager:v1"],
        );
        for format in [Format::Containerd, Format::K3s] {
            let e = render(&c, format).unwrap_err().to_string();
            assert!(
                e.contains("quay.io/jetstack=certs") && e.contains("--format cri-o"),
                "{e}"
            );
        }
        render(&c, Format::CriO).unwrap();
    }

    #[test]
    fn files_are_written_whole_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![NodeFile {
            path: PathBuf::from("a/b.toml"),
            contents: b"one".to_vec(),
        }];
        write_into(dir.path(), &files).unwrap();
        let files = vec![NodeFile {
            path: PathBuf::from("a/b.toml"),
            contents: b"two".to_vec(),
        }];
        write_into(dir.path(), &files).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b.toml")).unwrap(), b"two");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
    }
}
