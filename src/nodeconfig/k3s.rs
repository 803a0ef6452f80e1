//! k3s's and RKE2's `registries.yaml`.
//!
//! Source: k3s's "Private Registry Configuration"
//! (<https://docs.k3s.io/installation/private-registry>; RKE2's page says the same for
//! `/etc/rancher/rke2/registries.yaml`). What we rely on:
//! - `mirrors.<REGISTRY>.endpoint`: a list of URLs tried in order, then the registry itself;
//! - `mirrors.<REGISTRY>.rewrite`: a map of regular expression → replacement applied to the
//!   image name without its registry (`library/nginx`), not the tag. A map has no order, so we
//!   write at most one rewrite per registry, matching every name: `^(.*)$` → `ROOT/$1`;
//! - `configs.<MIRROR HOST>.tls.ca_file`: an absolute path on the node;
//! - `configs.<MIRROR HOST>.auth`: `username`/`password` (or `auth`). We never write a
//!   credential: the file is copied to every node and often kept in git. A comment says where
//!   the login goes, and that the mirror's pull Secret (`kubectl airgap pull-secret`) is the
//!   other way to give it.

use std::path::PathBuf;

use super::{CA_FILE, NodeConfig, NodeFile, quoted};

pub(super) const FILE: &str = "registries.yaml";

pub(super) fn render(config: &NodeConfig) -> Vec<NodeFile> {
    let mirror = config.mirror_host();
    let mut text = config.banner("#");
    text.push_str(&format!(
        "# Install as {}/registries.yaml on every node (RKE2: /etc/rancher/rke2/registries.yaml) and restart k3s.\n",
        config.node_dir.display()
    ));
    text.push_str("mirrors:\n");
    for (host, route) in &config.routes {
        text.push_str(&format!("  {}:\n    endpoint:\n", quoted(host)));
        text.push_str(&format!(
            "      - {}\n",
            quoted(&format!("{}://{mirror}", config.scheme()))
        ));
        if !route.root.is_empty() {
            text.push_str(&format!(
                "    rewrite:\n      \"^(.*)$\": {}\n",
                quoted(&format!("{}/$1", route.root))
            ));
        }
    }
    let ca_path = config.node_dir.join(CA_FILE);
    if config.ca.is_some() {
        text.push_str(&format!(
            "configs:\n  {}:\n    tls:\n      ca_file: {}\n",
            quoted(mirror),
            quoted(&ca_path.to_string_lossy())
        ));
    }
    text.push_str(&format!(
        "# If the mirror needs a login, add it on the node (this file holds no credentials):\n\
         #   configs: {{{}: {{auth: {{username: USER, password: PASSWORD}}}}}}\n\
         # or give pods the mirror's pull Secret (kubectl airgap pull-secret).\n",
        quoted(mirror)
    ));
    let mut files = vec![NodeFile {
        path: PathBuf::from(FILE),
        contents: text.into_bytes(),
    }];
    if let Some(ca) = &config.ca {
        files.push(NodeFile {
            path: PathBuf::from(CA_FILE),
            contents: ca.clone(),
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, text};
    use super::*;
    use crate::mirror::Naming;

    #[test]
    fn nested_names_are_one_rewrite_per_registry() {
        let c = config(
            "reg.local:5000/m",
            Naming::Nested,
            &[],
            &["nginx:1", "quay.io/a/b:1"],
        );
        let files = render(&c);
        let t = text(&files, FILE);
        assert!(
            t.contains(
                "mirrors:\n  \"docker.io\":\n    endpoint:\n      - \"https://reg.local:5000\"\n    rewrite:\n      \"^(.*)$\": \"m/docker.io/$1\"\n"
            ),
            "{t}"
        );
        assert!(t.contains("\"^(.*)$\": \"m/quay.io/$1\""), "{t}");
        assert!(
            t.contains("configs:\n  \"reg.local:5000\":\n    tls:\n      ca_file: \"/etc/rancher/k3s/airgap-ca.crt\"\n"),
            "{t}"
        );
        assert!(
            !t.contains("password:\n") && !t.contains("\n    auth:"),
            "{t}"
        );
        assert!(text(&files, CA_FILE).starts_with("-----BEGIN"));
    }

    #[test]
    fn strip_at_the_root_needs_no_rewrite() {
        let mut c = config("reg.local:5000", Naming::Strip, &[], &["quay.io/a/b:1"]);
        c.ca = None;
        let files = render(&c);
        assert_eq!(files.len(), 1);
        let t = text(&files, FILE);
        assert!(!t.contains("rewrite") && !t.contains("\nconfigs:"), "{t}");
    }
}
