//! The Helm binary we render, pull and package charts with.
//!
//! We run the user's Helm rather than re-implement it: template functions, subchart values,
//! `lookup`'s absence, OCI logins and repository credentials all behave as the user's own
//! `helm template` would, so the images we find are the ones the release will pull. Helm 3.8
//! is the first with OCI charts on by default; 4 is supported as well.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Helm binary that answered `helm version` with 3.8+ or 4.
#[derive(Debug, Clone)]
pub(crate) struct Helm {
    bin: PathBuf,
    /// `v3.17.1`, as `helm version` says it.
    pub(crate) version: String,
}

/// What to do when no Helm is found, said once.
const HOW_TO_POINT: &str = "--chart renders charts with Helm 3.8+ or 4: install it (https://helm.sh/docs/intro/install/) or point at the binary with --helm PATH (or AIRGAP_HELM)";

impl Helm {
    /// `--helm PATH` when given, else `helm` on PATH; its version checked.
    pub(crate) fn find(flag: Option<&Path>) -> anyhow::Result<Helm> {
        let bin = match flag {
            Some(p) if p.components().count() > 1 || p.is_absolute() => {
                if !p.is_file() {
                    anyhow::bail!("--helm {}: no such file; {HOW_TO_POINT}", p.display());
                }
                p.to_path_buf()
            }
            Some(name) => on_path(name.as_os_str()).ok_or_else(|| {
                anyhow::anyhow!(
                    "--helm {}: not found on PATH; {HOW_TO_POINT}",
                    name.display()
                )
            })?,
            None => on_path(OsStr::new("helm"))
                .ok_or_else(|| anyhow::anyhow!("no `helm` on PATH; {HOW_TO_POINT}"))?,
        };
        let out = Command::new(&bin)
            .args(["version", "--template", "{{.Version}}"])
            .output()
            .map_err(|e| {
                anyhow::anyhow!("running {} version: {e}; {HOW_TO_POINT}", bin.display())
            })?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !supported(&version) {
            anyhow::bail!(
                "{} says it is Helm {:?}{}; {HOW_TO_POINT}",
                bin.display(),
                version,
                stderr_tail(&out.stderr)
            );
        }
        Ok(Helm { bin, version })
    }

    /// Runs `helm ARGS`; its stdout, or an error quoting its stderr after `what` (which says
    /// what failed and what to do).
    pub(crate) fn run<S: AsRef<OsStr>>(&self, args: &[S], what: &str) -> anyhow::Result<Vec<u8>> {
        let out = Command::new(&self.bin)
            .args(args)
            .output()
            .map_err(|e| anyhow::anyhow!("{what}: running {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            anyhow::bail!("{what} (helm {}){}", self.version, stderr_tail(&out.stderr));
        }
        Ok(out.stdout)
    }
}

/// Bytes of Helm's stderr an error quotes at the most: its message is at the end.
const MAX_STDERR: usize = 4096;

/// Helm's own words, quoted as lines (bounded: a template error can echo a whole values file).
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut cut = "";
    if text.len() > MAX_STDERR {
        let mut start = text.len() - MAX_STDERR;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = &text[start..];
        cut = "...";
    }
    format!(":\n  {cut}{}", text.replace('\n', "\n  "))
}

fn on_path(name: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Helm 3.8 and later, or 4.
fn supported(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    major == 4 || (major == 3 && minor >= 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_3_8_and_4_are_supported() {
        for v in ["v3.8.0", "v3.17.1", "v4.1.4", "v4.0.0-rc.1"] {
            assert!(supported(v), "{v}");
        }
        for v in ["v3.7.2", "v2.17.0", "", "garbage", "v5.0.0"] {
            assert!(!supported(v), "{v}");
        }
    }
}
