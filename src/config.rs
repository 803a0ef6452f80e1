//! Configuration: flags > environment > config file > defaults.
//!
//! Flags and environment variables are merged by clap (each flag names its variable). The config
//! file carries what flags carry badly: overrides, extra rules, placeholders. It is found at
//! `--config`, else `AIRGAP_CONFIG`, else `$XDG_CONFIG_HOME/kubectl-airgap/config.yaml` (or
//! `~/.config/...`) when that exists; Helm 4 passes the shell's environment to post-renderers,
//! so this works under both Helm versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::manifest::rules::{RuleSet, RuleSpec};
use crate::mirror::{Mirror, MirrorNaming, Naming, Override};
use crate::registry::HostOptions;

/// The config file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConfigFile {
    /// The mirror, `HOST[:PORT][/PREFIX]`.
    pub registry: Option<String>,
    pub naming: Option<Naming>,
    /// `source prefix → path under the mirror host`.
    #[serde(default)]
    pub overrides: Vec<OverrideSpec>,
    /// Values at image places that are not images (added to the built-in `auto`).
    #[serde(default)]
    pub placeholders: Vec<String>,
    /// Extra rules, in the form of the built-in pack.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Where post-render errors are also written (Helm 4 discards a plugin's stderr).
    pub log_file: Option<PathBuf>,
    /// At most this many path components under the mirror's prefix (`--max-path-depth`).
    pub max_path_depth: Option<u16>,
    /// A Secret that post-render lists in every pod spec's `imagePullSecrets`.
    pub pull_secret: Option<String>,
    /// How to reach each registry (`HOST[:PORT]` → plain HTTP, CA file, client certificate).
    #[serde(default)]
    pub registries: BTreeMap<String, HostOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideSpec {
    pub source: String,
    pub target: String,
}

impl ConfigFile {
    /// Reads the file named by `explicit` (flag or `AIRGAP_CONFIG`), else the default location
    /// when it exists, else an empty configuration.
    pub(crate) fn load(explicit: Option<&Path>) -> anyhow::Result<(ConfigFile, Option<PathBuf>)> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => default_path().filter(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok((ConfigFile::default(), None));
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading config file {} (named by --config or AIRGAP_CONFIG)",
                path.display()
            )
        })?;
        let config: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_norway::from_str(&text)
                .with_context(|| format!("config file {} is not valid", path.display()))?
        };
        Ok((config, Some(path)))
    }
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("kubectl-airgap").join("config.yaml"))
}

/// Everything a command that names images needs, resolved from all sources.
#[derive(Debug)]
pub(crate) struct Settings {
    pub naming: Option<MirrorNaming>,
    pub rules: RuleSet,
    pub log_file: Option<PathBuf>,
    pub pull_secret: Option<String>,
    pub registries: BTreeMap<String, HostOptions>,
}

impl Settings {
    /// Merges flag/env values (already merged by clap) over the config file.
    pub(crate) fn resolve(
        registry: Option<&str>,
        naming: Option<Naming>,
        overrides: &[String],
        max_path_depth: Option<u16>,
        log_file: Option<&Path>,
        config: ConfigFile,
    ) -> anyhow::Result<Settings> {
        let registry = registry.map(str::to_string).or(config.registry);
        let mut parsed = overrides
            .iter()
            .map(|o| Override::parse(o))
            .collect::<Result<Vec<_>, _>>()?;
        for o in &config.overrides {
            parsed.push(Override::new(&o.source, &o.target).map_err(|why| {
                anyhow::anyhow!("config file: override {} = {}: {why}", o.source, o.target)
            })?);
        }
        let max_path_depth = match max_path_depth.or(config.max_path_depth) {
            Some(0) => anyhow::bail!("config file: maxPathDepth is 0; give 1 or more"),
            depth => depth.map(usize::from),
        };
        let naming = match registry {
            Some(r) => Some(
                MirrorNaming::new(
                    Mirror::parse(&r)?,
                    naming.or(config.naming).unwrap_or_default(),
                    parsed,
                )
                .with_max_depth(max_path_depth),
            ),
            None => None,
        };
        let rules = RuleSet::new(config.rules, &config.placeholders)
            .map_err(|e| anyhow::anyhow!("config file: {e}"))?;
        Ok(Settings {
            naming,
            rules,
            log_file: log_file.map(Path::to_path_buf).or(config.log_file),
            pull_secret: config.pull_secret,
            registries: config.registries,
        })
    }

    /// The mirror, for a command that cannot work without one.
    pub(crate) fn require_mirror(&self, command: &str) -> anyhow::Result<&MirrorNaming> {
        self.naming
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!(no_mirror(command)))
    }
}

/// What every command that needs the mirror says when none is set: each place it can be named.
pub(crate) fn no_mirror(command: &str) -> String {
    let helm = match command {
        "post-render" => " (with Helm: --post-renderer-args --registry=...)",
        _ => "",
    };
    format!(
        "no mirror registry is set, and {command} needs it: pass --registry HOST[:PORT][/PREFIX]{helm}, set AIRGAP_REGISTRY, or put `registry:` in the config file"
    )
}
