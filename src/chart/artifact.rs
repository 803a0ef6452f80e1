//! Packaged charts as a source the one copier reads, so a chart travels into a bundle or a
//! mirror the way an image does: blobs first, the manifest last, under its name.

use std::collections::HashMap;

use bytes::Bytes;

use crate::oci::RawManifest;
use crate::oci::chart::{Artifact, artifact};
use crate::reference::Reference;
use crate::transfer::{ByteStream, ImageSource};

/// Chart artifacts held in memory (charts are kilobytes), by bundle name and by digest.
#[derive(Default)]
pub(crate) struct ChartArtifacts {
    /// Reference (as written) → its manifest.
    manifests: HashMap<String, RawManifest>,
    blobs: HashMap<String, Bytes>,
}

impl ChartArtifacts {
    /// The charts with no registry of their own (directories, files, classic repositories,
    /// bundles) as artifacts, each once, and their names; `oci://` charts are left to be copied
    /// from their registries.
    pub(crate) fn of(
        charts: &[super::Rendered],
    ) -> anyhow::Result<(ChartArtifacts, Vec<Reference>)> {
        let mut artifacts = ChartArtifacts::default();
        let mut names: Vec<Reference> = Vec::new();
        for r in charts {
            let c = &r.chart;
            if matches!(c.origin, super::Origin::Oci { .. }) || names.contains(&c.reference) {
                continue;
            }
            artifacts.add(&c.reference, &c.metadata, c.tgz()?);
            names.push(c.reference.clone());
        }
        Ok((artifacts, names))
    }

    /// The `oci://` charts' references, copied as images are.
    pub(crate) fn registry_charts(charts: &[super::Rendered]) -> Vec<Reference> {
        charts
            .iter()
            .filter(|r| matches!(r.chart.origin, super::Origin::Oci { .. }))
            .map(|r| r.chart.reference.clone())
            .collect()
    }

    /// Adds the artifact of a packaged chart under `name`; its manifest.
    pub(crate) fn add(
        &mut self,
        name: &Reference,
        meta: &crate::oci::chart::Metadata,
        tgz: Vec<u8>,
    ) -> RawManifest {
        let Artifact {
            manifest,
            config,
            layer,
        } = artifact(meta, &tgz);
        self.blobs
            .insert(config.0.digest.to_string(), Bytes::from(config.1));
        self.blobs
            .insert(layer.digest.to_string(), Bytes::from(tgz));
        self.manifests.insert(name.to_string(), manifest.clone());
        manifest
    }
}

impl ImageSource for ChartArtifacts {
    async fn manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        Ok(match image.digest() {
            Some(d) => self.manifests.values().find(|m| m.digest == *d).cloned(),
            None => self.manifests.get(&image.to_string()).cloned(),
        })
    }

    async fn blob(&self, image: &Reference, digest: &str) -> anyhow::Result<ByteStream> {
        let bytes =
            self.blobs.get(digest).cloned().ok_or_else(|| {
                anyhow::anyhow!("chart {} has no blob {digest}", image.familiar())
            })?;
        Ok(Box::pin(futures_util::stream::once(
            async move { Ok(bytes) },
        )))
    }
}
