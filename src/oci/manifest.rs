//! Manifests as they travel (raw bytes with their media type and digest) and the few fields
//! of them that are ever read.

use std::collections::BTreeMap;

use super::{Digest, Platform, media};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A manifest (image manifest, index, or artifact) as stored: its exact bytes, so its digest
/// never changes on the way, with the media type it is served as and that digest.
#[derive(Debug, Clone)]
pub(crate) struct RawManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

/// A reference to content by digest: an index entry, a manifest's config or layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    /// Required by the spec; read leniently, since only the digest is needed to follow it.
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The part of an image index (or Docker manifest list) that is read: its entries.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// As the index itself says (optional in the spec; the server's header says it too).
    #[serde(default, rename = "mediaType")]
    pub media_type: Option<String>,
}

/// The part of an image manifest that is read: what it names, and for an artifact what it is
/// and what it refers to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageManifest {
    /// As the manifest itself says (optional in the spec; the server's header says it too).
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// OCI 1.1: the manifest this one is about (a signature's image, an SBOM's image).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// What a referrers listing repeats of each referrer.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// What kind of artifact this is, `None` for a container image: its `artifactType`, else
    /// its config's media type when that is not an image config (OCI 1.1's rule; a Helm chart
    /// says `application/vnd.cncf.helm.config.v1+json`).
    pub(crate) fn artifact_type(&self) -> Option<&str> {
        match &self.artifact_type {
            Some(t) => Some(t),
            None if !media::is_image_config(&self.config.media_type) => {
                Some(&self.config.media_type)
            }
            None => None,
        }
    }
}

impl ImageManifest {
    /// The `artifactType` a referrers listing gives this manifest: its own, else its config's
    /// media type (as the distribution spec has registries answer), whatever that config is.
    pub(crate) fn referrer_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
}

/// A manifest's bytes read as what they are.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    /// Lists other manifests (multi-platform images).
    Index(Index),
    /// A container image.
    Image(ImageManifest),
    /// Anything else a registry stores as a manifest: a Helm chart, a signature, an SBOM.
    Artifact(ImageManifest),
}

impl RawManifest {
    /// Reads the bytes as what they are (see [`Parsed::from_bytes`]).
    pub(crate) fn parse(&self) -> Result<Parsed, serde_json::Error> {
        Parsed::from_bytes(&self.bytes)
    }
}

impl Parsed {
    /// Reads manifest bytes: an index when they list `manifests`, else a manifest, told apart
    /// as an image or an artifact by [`ImageManifest::artifact_type`].
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Parsed, serde_json::Error> {
        if is_index(bytes)? {
            return Ok(Parsed::Index(serde_json::from_slice(bytes)?));
        }
        let m: ImageManifest = serde_json::from_slice(bytes)?;
        Ok(match m.artifact_type() {
            Some(_) => Parsed::Artifact(m),
            None => Parsed::Image(m),
        })
    }

    /// What it names, each with whether it is a manifest (or index) in turn: an index's
    /// entries, or a manifest's config and layers. A referrer's `subject` is not named: it is
    /// what the artifact is about, not part of it.
    pub(crate) fn children(&self) -> Vec<(&Descriptor, bool)> {
        match self {
            Parsed::Index(i) => i.manifests.iter().map(|d| (d, true)).collect(),
            Parsed::Image(m) | Parsed::Artifact(m) => std::iter::once(&m.config)
                .chain(&m.layers)
                .map(|d| (d, false))
                .collect(),
        }
    }
}

/// Whether manifest bytes are an index (they list `manifests`); an error when not JSON.
pub(crate) fn is_index(bytes: &[u8]) -> Result<bool, serde_json::Error> {
    #[derive(Deserialize)]
    struct Shape {
        manifests: Option<serde_json::Value>,
    }
    Ok(serde_json::from_slice::<Shape>(bytes)?.manifests.is_some())
}

/// The platforms an index lists, each with its child's digest.
pub(crate) fn index_platforms(bytes: &[u8]) -> Result<Vec<(Platform, Digest)>, serde_json::Error> {
    let index: Index = serde_json::from_slice(bytes)?;
    Ok(index
        .manifests
        .into_iter()
        .filter_map(|entry| Some((entry.platform?, entry.digest)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_reads_and_writes_back_what_it_holds() {
        let text = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":7,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"docker.io/library/nginx:1"}}"#;
        let d: Descriptor = serde_json::from_str(text).unwrap();
        assert_eq!(d.platform.as_ref().unwrap().to_string(), "linux/amd64");
        let back: serde_json::Value = serde_json::to_value(&d).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        // Nothing optional is written when absent.
        let bare: Descriptor =
            serde_json::from_str(r#"{"mediaType":"m","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":1}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"mediaType":"m","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":1}"#
        );
        assert_eq!(
            Digest::sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_helm_chart_and_a_referrer_are_artifacts_and_an_image_is_not() {
        let d = |mt: &str| {
            format!(
                r#"{{"mediaType":"{mt}","digest":"{}","size":1}}"#,
                Digest::sha256(mt.as_bytes())
            )
        };
        let raw = |text: String| RawManifest {
            digest: Digest::sha256(text.as_bytes()),
            bytes: Bytes::from(text),
            media_type: media::OCI_MANIFEST.into(),
        };
        let chart = raw(format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
            d("application/vnd.cncf.helm.config.v1+json"),
            d("application/vnd.cncf.helm.chart.content.v1.tar+gzip")
        ));
        match chart.parse().unwrap() {
            Parsed::Artifact(m) => assert_eq!(
                m.artifact_type(),
                Some("application/vnd.cncf.helm.config.v1+json")
            ),
            other => panic!("{other:?}"),
        }
        let image = raw(format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[]}}"#,
            d(media::OCI_CONFIG)
        ));
        assert!(matches!(image.parse().unwrap(), Parsed::Image(_)));
        let referrer = raw(format!(
            r#"{{"schemaVersion":2,"artifactType":"application/spdx+json","config":{},"layers":[],"subject":{}}}"#,
            d("application/vnd.oci.empty.v1+json"),
            d(media::OCI_MANIFEST)
        ));
        match referrer.parse().unwrap() {
            Parsed::Artifact(m) => {
                assert_eq!(m.artifact_type(), Some("application/spdx+json"));
                assert_eq!(
                    m.subject.unwrap().digest,
                    Digest::sha256(media::OCI_MANIFEST.as_bytes())
                );
            }
            other => panic!("{other:?}"),
        }
        let index = raw(format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            d(media::OCI_MANIFEST)
        ));
        assert!(matches!(index.parse().unwrap(), Parsed::Index(i) if i.manifests.len() == 1));
    }
}
