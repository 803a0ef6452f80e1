//! CRI-O's and podman's `registries.conf.d` drop-in, and the mirror's CA in `certs.d`.
//!
//! Source: containers-registries.conf(5) and containers-certs.d(5) of containers/image
//! (<https://github.com/containers/image/blob/main/docs/containers-registries.conf.5.md>,
//! `docs/containers-certs.d.5.md`). What we rely on:
//! - a `[[registry]]` table with `prefix` (a `host[:port][/namespace...]` matched at whole
//!   components, the longest prefix winning) and `location`, and in it `[[registry.mirror]]`
//!   tables whose `location` replaces the prefix when pulling; a mirror's `location` may hold
//!   a path, so `MIRROR/PREFIX/docker.io` serves `docker.io/library/nginx` as
//!   `MIRROR/PREFIX/docker.io/library/nginx`; `insecure = true` allows plain HTTP;
//! - drop-ins in `registries.conf.d/` are read in name order after `registries.conf`, and a
//!   `[[registry]]` with a prefix seen before replaces it (`90-` sorts after most);
//! - CAs for a registry are `*.crt` files in `certs.d/HOST[:PORT]/` (under `/etc/containers/`),
//!   the mirror's host as written in the mirror's `location`.
//!
//! An override of part of a host is a longer `prefix`, which containers/image prefers: the one
//! runtime where it can be said exactly.

use std::path::PathBuf;

use super::{NodeConfig, NodeFile, quoted};

/// The drop-in's path under `/etc/containers`.
pub(super) const DROP_IN: &str = "registries.conf.d/90-airgap.conf";

pub(super) fn render(config: &NodeConfig) -> Vec<NodeFile> {
    let mut text = config.banner("#");
    text.push_str("# The mirror's CA, if any, is certs.d/MIRROR/ca.crt beside this directory.\n");
    let mirror = config.mirror_host();
    let at = |path: &str| {
        if path.is_empty() {
            mirror.to_string()
        } else {
            format!("{mirror}/{path}")
        }
    };
    for (host, route) in &config.routes {
        let mut entries = vec![(host.clone(), at(&route.root))];
        entries.extend(
            route
                .partial
                .iter()
                .map(|(prefix, target)| (format!("{host}/{prefix}"), at(target))),
        );
        for (prefix, location) in entries {
            text.push_str(&format!(
                "\n[[registry]]\nprefix = {p}\nlocation = {p}\n\n[[registry.mirror]]\nlocation = {}\n",
                quoted(&location),
                p = quoted(&prefix),
            ));
            if config.plain_http {
                text.push_str("insecure = true\n");
            }
        }
    }
    let mut files = vec![NodeFile {
        path: PathBuf::from(DROP_IN),
        contents: text.into_bytes(),
    }];
    if let Some(ca) = &config.ca {
        files.push(NodeFile {
            path: PathBuf::from("certs.d").join(mirror).join("ca.crt"),
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
    fn every_source_gets_a_registry_with_the_mirror_at_its_root() {
        let c = config(
            "reg.local:5000/m",
            Naming::Nested,
            &["quay.io/jetstack=certs"],
            &["nginx:1", "quay.io/jetstack/cm:1"],
        );
        let files = render(&c);
        let t = text(&files, DROP_IN);
        for want in [
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \"reg.local:5000/m/docker.io\"\n",
            "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n\n[[registry.mirror]]\nlocation = \"reg.local:5000/m/quay.io\"\n",
            "[[registry]]\nprefix = \"quay.io/jetstack\"\nlocation = \"quay.io/jetstack\"\n\n[[registry.mirror]]\nlocation = \"reg.local:5000/certs\"\n",
        ] {
            assert!(t.contains(want), "{want}\nin\n{t}");
        }
        assert!(!t.contains("insecure"), "{t}");
        assert!(text(&files, "certs.d/reg.local:5000/ca.crt").starts_with("-----BEGIN"));
    }

    #[test]
    fn strip_without_prefix_is_the_mirror_host_and_plain_http_is_insecure() {
        let mut c = config("reg.local:5000", Naming::Strip, &[], &["ghcr.io/o/p:1"]);
        c.plain_http = true;
        c.ca = None;
        let files = render(&c);
        assert_eq!(files.len(), 1);
        let t = text(&files, DROP_IN);
        assert!(
            t.contains("[[registry.mirror]]\nlocation = \"reg.local:5000\"\ninsecure = true\n"),
            "{t}"
        );
    }
}
