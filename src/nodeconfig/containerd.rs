//! containerd's hosts directory: `HOST/hosts.toml` per source registry.
//!
//! Source: containerd's `docs/hosts.md` and `remotes/docker/config/hosts.go`
//! (<https://github.com/containerd/containerd/blob/main/docs/hosts.md>). What we rely on:
//! - the directory is named by the registry host namespace; with a port, `HOST:PORT` is the
//!   name every containerd since 1.5 looks for (newer ones try `HOST_PORT_` first, then it);
//!   Docker Hub's is `docker.io`;
//! - `server` is the upstream, tried after every `[host."URL"]`; Docker Hub's registry is
//!   `https://registry-1.docker.io`;
//! - a host URL's path gets `/v2` appended unless `override_path = true`, which makes the path
//!   the API root itself. So a mirror path (`PREFIX/docker.io` with nested naming) is written
//!   `https://MIRROR/v2/PREFIX/docker.io` with `override_path = true`, and a pull of
//!   `docker.io/library/nginx:1` asks `https://MIRROR/v2/PREFIX/docker.io/library/nginx/manifests/1`;
//! - `capabilities = ["pull", "resolve"]`: a private mirror is trusted to resolve tags;
//! - `ca` may be relative to the `hosts.toml` file, so the CA copied beside it keeps working
//!   wherever the directory is installed (`config_path`, or `ctr --hosts-dir`).

use std::path::PathBuf;

use super::{CA_FILE, NodeConfig, NodeFile, quoted};
use crate::oci::hub;

pub(super) fn render(config: &NodeConfig) -> Vec<NodeFile> {
    let mut files = Vec::new();
    for (host, route) in &config.routes {
        let upstream = format!("https://{}", hub::api_host(host));
        let mut url = format!("{}://{}", config.scheme(), config.mirror_host());
        if !route.root.is_empty() {
            url.push_str("/v2/");
            url.push_str(&route.root);
        }
        let mut text = config.banner("#");
        text.push_str(&format!("server = {}\n\n", quoted(&upstream)));
        text.push_str(&format!("[host.{}]\n", quoted(&url)));
        text.push_str("  capabilities = [\"pull\", \"resolve\"]\n");
        if !route.root.is_empty() {
            text.push_str("  override_path = true\n");
        }
        if config.ca.is_some() {
            text.push_str(&format!("  ca = {}\n", quoted(CA_FILE)));
        }
        files.push(NodeFile {
            path: PathBuf::from(host).join("hosts.toml"),
            contents: text.into_bytes(),
        });
        if let Some(ca) = &config.ca {
            files.push(NodeFile {
                path: PathBuf::from(host).join(CA_FILE),
                contents: ca.clone(),
            });
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, text};
    use super::*;
    use crate::mirror::Naming;

    #[test]
    fn nested_names_go_through_override_path() {
        let c = config(
            "reg.local:5000/mirror",
            Naming::Nested,
            &[],
            &["nginx:1", "localhost:5001/app:1"],
        );
        let files = render(&c);
        assert_eq!(
            text(&files, "docker.io/hosts.toml"),
            "# Written by `kubectl airgap node-config`: pulls of docker.io, localhost:5001 go to the mirror reg.local:5000/mirror.\n\
             server = \"https://registry-1.docker.io\"\n\
             \n\
             [host.\"https://reg.local:5000/v2/mirror/docker.io\"]\n  \
             capabilities = [\"pull\", \"resolve\"]\n  \
             override_path = true\n  \
             ca = \"airgap-ca.crt\"\n"
        );
        let local = text(&files, "localhost:5001/hosts.toml");
        assert!(
            local.contains("server = \"https://localhost:5001\""),
            "{local}"
        );
        assert!(
            local.contains("[host.\"https://reg.local:5000/v2/mirror/localhost_5001\"]"),
            "{local}"
        );
        assert!(text(&files, "docker.io/airgap-ca.crt").starts_with("-----BEGIN"));
    }

    #[test]
    fn strip_names_at_the_root_use_the_standard_path() {
        let mut c = config("reg.local:5000", Naming::Strip, &[], &["quay.io/a/b:1"]);
        c.ca = None;
        c.plain_http = true;
        let files = render(&c);
        assert_eq!(files.len(), 1);
        let t = text(&files, "quay.io/hosts.toml");
        assert!(t.contains("[host.\"http://reg.local:5000\"]\n"), "{t}");
        assert!(!t.contains("override_path") && !t.contains("ca ="), "{t}");
    }

    #[test]
    fn a_whole_host_override_is_its_root() {
        let c = config(
            "reg.local:5000/m",
            Naming::Nested,
            &["ghcr.io=gh/cr"],
            &["ghcr.io/o/p:1"],
        );
        let t = text(&render(&c), "ghcr.io/hosts.toml");
        assert!(
            t.contains("[host.\"https://reg.local:5000/v2/gh/cr\"]"),
            "{t}"
        );
    }
}
