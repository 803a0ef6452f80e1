//! A Helm chart as the OCI artifact Helm itself pushes, so `helm pull oci://…` reads ours.
//!
//! `helm push` (Helm's `pkg/registry`) writes a manifest with no `mediaType` field, a config of
//! media type [`CONFIG`] holding `Chart.yaml`'s metadata as Go's `json.Marshal` writes Helm's
//! `chart.Metadata` (its field order, empty fields left out, `<>&` escaped), one layer of media
//! type [`LAYER`] holding the packaged chart, and annotations from the metadata. The one field
//! that would differ on every run, `org.opencontainers.image.created`, is fixed at the epoch
//! here, so the same chart gives the same manifest digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::media::{HELM_CHART_CONFIG as CONFIG, HELM_CHART_CONTENT as LAYER, OCI_MANIFEST};
use super::{Descriptor, Digest, RawManifest};
/// What `org.opencontainers.image.created` says: a fixed time, for a fixed digest.
const CREATED: &str = "1970-01-01T00:00:00Z";

/// Helm's `chart.Metadata`, in its Go field order (so its JSON is Helm's byte for byte).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) home: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) sources: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) icon: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) condition: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) tags: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) app_version: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) deprecated: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) kube_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dependencies: Vec<Dependency>,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub(crate) kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Maintainer {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) url: String,
}

/// Helm's `chart.Dependency` (`name` and `repository` are written even when empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Dependency {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) condition: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) enabled: bool,
    #[serde(
        default,
        rename = "import-values",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) import_values: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) alias: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Metadata {
    /// The config blob: this metadata as Go's `json.Marshal` writes it.
    pub(crate) fn config_json(&self) -> Vec<u8> {
        let text = serde_json::to_string(self).expect("metadata serializes");
        go_escape(&text).into_bytes()
    }
}

/// Go's JSON encoder escapes `<`, `>` and `&` (and U+2028, U+2029) in strings; outside strings
/// JSON has none of them.
fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A chart artifact: its manifest and the two blobs it names.
pub(crate) struct Artifact {
    pub(crate) manifest: RawManifest,
    pub(crate) config: (Descriptor, Vec<u8>),
    pub(crate) layer: Descriptor,
}

/// The artifact `helm push` would make of the packaged chart `tgz` with metadata `meta`.
pub(crate) fn artifact(meta: &Metadata, tgz: &[u8]) -> Artifact {
    let config_bytes = meta.config_json();
    let descriptor = |media_type: &str, bytes: &[u8]| Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::sha256(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let config = descriptor(CONFIG, &config_bytes);
    let layer = descriptor(LAYER, tgz);
    let mut annotations = BTreeMap::new();
    let mut add = |key: &str, value: &str| {
        if !value.trim().is_empty() {
            annotations.insert(format!("org.opencontainers.image.{key}"), value.to_string());
        }
    };
    add("description", &meta.description);
    add("title", &meta.name);
    add("version", &meta.version);
    add("url", &meta.home);
    add("created", CREATED);
    add("source", meta.sources.first().map_or("", String::as_str));
    let authors: Vec<String> = meta
        .maintainers
        .iter()
        .map(|m| match m.email.is_empty() {
            true => m.name.clone(),
            false => format!("{} ({})", m.name, m.email),
        })
        .collect();
    add("authors", &authors.join(", "));
    for (k, v) in &meta.annotations {
        let immutable = [
            "org.opencontainers.image.title",
            "org.opencontainers.image.version",
        ];
        if !immutable.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest<'a> {
        schema_version: u32,
        config: &'a Descriptor,
        layers: [&'a Descriptor; 1],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: BTreeMap<String, String>,
    }
    let bytes = go_escape(
        &serde_json::to_string(&Manifest {
            schema_version: 2,
            config: &config,
            layers: [&layer],
            annotations,
        })
        .expect("a manifest serializes"),
    );
    Artifact {
        manifest: RawManifest {
            digest: Digest::sha256(bytes.as_bytes()),
            bytes: bytes::Bytes::from(bytes.into_bytes()),
            media_type: OCI_MANIFEST.to_string(),
        },
        config: (config, config_bytes),
        layer,
    }
}

/// Whether a manifest's config says it is a Helm chart.
pub(crate) fn is_chart(config_media_type: &str) -> bool {
    config_media_type == CONFIG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_written_in_helms_field_order_with_go_escapes() {
        let meta: Metadata = serde_norway::from_str(
            "apiVersion: v2\nname: shop\nversion: 0.1.0\ndescription: a <b> & c\nappVersion: \"1.0\"\ndependencies:\n  - name: sub\n    version: 0.1.0\n    repository: file://../sub\n",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(meta.config_json()).unwrap(),
            r#"{"name":"shop","version":"0.1.0","description":"a \u003cb\u003e \u0026 c","apiVersion":"v2","appVersion":"1.0","dependencies":[{"name":"sub","version":"0.1.0","repository":"file://../sub"}]}"#
        );
        let a = artifact(&meta, b"tgz");
        let b = artifact(&meta, b"tgz");
        assert_eq!(a.manifest.digest, b.manifest.digest, "deterministic");
        let m: serde_json::Value = serde_json::from_slice(&a.manifest.bytes).unwrap();
        assert_eq!(m["config"]["mediaType"], CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], LAYER);
        assert_eq!(m["layers"][0]["digest"], Digest::sha256(b"tgz").as_str());
        assert_eq!(m["annotations"]["org.opencontainers.image.title"], "shop");
        assert!(m.get("mediaType").is_none(), "helm push writes none");
    }
}
