//! The charts a bundle carries, read back out: for users who install from files
//! (`helm install REL ./NAME-VERSION.tgz`) rather than from the mirror.
//!
//! A chart is any index entry whose manifest's config is Helm's ([`crate::oci::chart::CONFIG`]),
//! whoever wrote the bundle; its one layer is the packaged chart, written out byte for byte and
//! checked against its digest, so the file is the one the mirror serves to `helm pull`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::StreamExt;

use crate::oci::chart::{Metadata, is_chart};
use crate::oci::media::HELM_CHART_CONTENT as LAYER;
use crate::oci::{Descriptor, Digest, ImageManifest};
use crate::reference::Reference;
use crate::transfer::ImageSource;
use crate::transfer::layout::{EntryName, OciLayout};

/// Bytes of a packaged chart read at the most (charts are kilobytes to a few megabytes).
const MAX_CHART: u64 = 256 << 20;

/// A chart in a bundle.
pub(crate) struct BundledChart {
    pub(crate) name: String,
    pub(crate) version: String,
    /// Its name in the bundle.
    pub(crate) reference: Reference,
    /// Its manifest's digest.
    pub(crate) digest: Digest,
    layer: Descriptor,
}

impl BundledChart {
    /// `NAME-VERSION.tgz`, as `helm package` and `helm pull` name it.
    pub(crate) fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

/// The charts in a bundle, in index order.
pub(crate) fn charts_in(layout: &OciLayout) -> anyhow::Result<Vec<BundledChart>> {
    let mut out = Vec::new();
    for (name, d) in layout.entries() {
        let Ok(EntryName::Named(reference)) = name else {
            continue;
        };
        let Some(bytes) = layout.small_blob(&d.digest)? else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&bytes) else {
            continue;
        };
        if !is_chart(&manifest.config.media_type) {
            continue;
        }
        let at = || format!("chart {} ({})", reference.familiar(), d.digest);
        let config = layout
            .small_blob(&manifest.config.digest)?
            .with_context(|| format!("{}: its config is not in the bundle", at()))?;
        let meta: Metadata = serde_json::from_slice(&config)
            .with_context(|| format!("{}: its config is not Helm chart metadata", at()))?;
        let [layer] = &manifest.layers[..] else {
            anyhow::bail!(
                "{}: a chart has one layer, this has {}",
                at(),
                manifest.layers.len()
            );
        };
        if layer.media_type != LAYER {
            anyhow::bail!("{}: its layer is {:?}, not {LAYER}", at(), layer.media_type);
        }
        for (what, value) in [("name", &meta.name), ("version", &meta.version)] {
            if !safe_file_part(value) {
                anyhow::bail!(
                    "{}: its {what} {} cannot name a file",
                    at(),
                    crate::excerpt::Excerpt(value)
                );
            }
        }
        out.push(BundledChart {
            name: meta.name,
            version: meta.version,
            reference,
            digest: d.digest.clone(),
            layer: layer.clone(),
        });
    }
    Ok(out)
}

/// Writes each chart into `dir` as `NAME-VERSION.tgz`; the files written.
pub(crate) async fn write_charts(
    layout: &std::sync::Arc<OciLayout>,
    charts: &[BundledChart],
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for c in charts {
        if c.layer.size > MAX_CHART {
            anyhow::bail!(
                "chart {}: its package is {} bytes, more than the {MAX_CHART} a chart may be",
                c.reference.familiar(),
                c.layer.size
            );
        }
        let mut stream = ImageSource::blob(layout, &c.reference, &c.layer.digest).await?;
        let mut bytes = Vec::with_capacity(c.layer.size as usize);
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as u64 > c.layer.size {
                break;
            }
        }
        if bytes.len() as u64 != c.layer.size || Digest::sha256(&bytes) != c.layer.digest {
            anyhow::bail!(
                "chart {}: its package in the bundle is not {} ({} bytes); the bundle is damaged: save it again",
                c.reference.familiar(),
                c.layer.digest,
                c.layer.size
            );
        }
        let path = dir.join(c.file_name());
        if written.contains(&path) {
            anyhow::bail!(
                "the bundle holds two charts written as {}; write them out one bundle at a time",
                path.display()
            );
        }
        // A new file of our own (never one a link already there names), then renamed over.
        let tmp = dir.join(format!(".{}.{}.tmp", c.file_name(), std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A chart name or version that is one plain file-name part: no `/`, no `..`, no control or
/// shell characters (Helm allows letters, digits, `-`, `_`, `.` and `+` there).
pub(super) fn safe_file_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_make_files() {
        for ok in ["shop", "0.1.0", "1.0.0+build.1", "my_chart-2"] {
            assert!(safe_file_part(ok), "{ok}");
        }
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "a\\b"] {
            assert!(!safe_file_part(bad), "{bad}");
        }
    }
}
