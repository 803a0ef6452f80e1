//! What travels beside an image so that a cluster that verifies signatures can still start it:
//! cosign's tag scheme and OCI 1.1 referrers, named here with no IO (issue 19).
//!
//! Cosign stores an image's signature, attestations and SBOM as manifests tagged
//! `sha256-<hex>.sig`, `.att` and `.sbom` in the image's repository, where `<hex>` is the
//! image's top manifest digest. OCI 1.1 referrers (manifests whose `subject` is the image) are
//! listed by a registry's referrers API, or, where a registry has none, by the fallback tag
//! `sha256-<hex>`: an index whose entries are the referrers. A copier carries both; a mirror
//! without the API is given the fallback tag, merged with what that tag lists already, so a
//! verifier (cosign, oras, Kyverno) finds them there as it would at the source.

use serde::Deserialize;

use super::{Digest, media};

/// A tag-scheme artifact or the referrers fallback: which tag of an image's repository it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// `sha256-<hex>.sig`: cosign's signatures.
    Signature,
    /// `sha256-<hex>.att`: cosign's attestations.
    Attestation,
    /// `sha256-<hex>.sbom`: an SBOM attached by `cosign attach sbom`.
    Sbom,
    /// A manifest whose `subject` is the image (listed by the API or the fallback tag).
    Referrer,
}

impl Kind {
    /// The tag-scheme kinds, in the order they are looked for.
    pub(crate) const TAGGED: [Kind; 3] = [Kind::Signature, Kind::Attestation, Kind::Sbom];

    /// The word the lock file and the reports use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Signature => "signature",
            Kind::Attestation => "attestation",
            Kind::Sbom => "sbom",
            Kind::Referrer => "referrer",
        }
    }

    fn suffix(self) -> Option<&'static str> {
        match self {
            Kind::Signature => Some(".sig"),
            Kind::Attestation => Some(".att"),
            Kind::Sbom => Some(".sbom"),
            Kind::Referrer => None,
        }
    }

    pub(crate) fn parse(word: &str) -> Option<Kind> {
        [
            Kind::Signature,
            Kind::Attestation,
            Kind::Sbom,
            Kind::Referrer,
        ]
        .into_iter()
        .find(|k| k.as_str() == word)
    }
}

/// The tag cosign gives an artifact of `kind` for the image whose manifest digest is `image`
/// (`sha256-<hex>.sig`); `None` for a referrer (found by digest, not tag) and for a digest that
/// is not sha256 (cosign names only those).
pub(crate) fn tag(image: &Digest, kind: Kind) -> Option<String> {
    Some(format!("{}{}", fallback_tag(image)?, kind.suffix()?))
}

/// The referrers fallback tag of the image whose manifest digest is `image`: `sha256-<hex>`.
pub(crate) fn fallback_tag(image: &Digest) -> Option<String> {
    Some(format!("sha256-{}", image.sha256_hex()?))
}

/// Whether `tag` is one this module names (a tag-scheme artifact or the referrers fallback),
/// and which: such a tag is something an image carries, not an image a chart runs.
pub(crate) fn artifact_tag(tag: &str) -> Option<Kind> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = match rest.get(..64) {
        Some(hex) => (hex, &rest[64..]),
        None => return None,
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    match suffix {
        "" => Some(Kind::Referrer),
        ".sig" => Some(Kind::Signature),
        ".att" => Some(Kind::Attestation),
        ".sbom" => Some(Kind::Sbom),
        _ => None,
    }
}

/// Artifact types that are signatures of the subject: cosign's OCI 1.1 mode and Sigstore
/// bundles (what `cosign sign --registry-referrers-mode=oci-1-1` and newer cosign write).
pub(crate) fn is_signature_type(artifact_type: &str) -> bool {
    artifact_type == "application/vnd.dev.cosign.artifact.sig.v1+json"
        || artifact_type.starts_with("application/vnd.dev.sigstore.bundle")
        || artifact_type == "application/vnd.cncf.notary.signature"
}

/// One entry of a referrers list (the API's answer or the fallback tag's index).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Referrer {
    pub digest: Digest,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

/// Reads a referrers list: an OCI index whose `manifests` are the referrers.
pub(crate) fn parse_referrers(bytes: &[u8]) -> Result<Vec<Referrer>, serde_json::Error> {
    #[derive(Deserialize)]
    struct List {
        #[serde(default)]
        manifests: Vec<Referrer>,
    }
    Ok(serde_json::from_slice::<List>(bytes)?.manifests)
}

/// The descriptor a referrers list gives `manifest` (as the distribution spec has a registry
/// build it): media type, digest, size, `artifactType`, and the manifest's annotations.
pub(crate) fn referrer_entry(
    manifest: &super::RawManifest,
) -> Result<serde_json::Value, serde_json::Error> {
    let parsed: super::ImageManifest = serde_json::from_slice(&manifest.bytes)?;
    let mut entry = serde_json::json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest.to_string(),
        "size": manifest.bytes.len(),
        "artifactType": parsed.referrer_type(),
    });
    if !parsed.annotations.is_empty() {
        entry["annotations"] = serde_json::to_value(&parsed.annotations)?;
    }
    Ok(entry)
}

/// The fallback tag's index: what `existing` (the tag's index, if there is one) lists, in its
/// order and with every field of its entries (re-serialized: keys sorted, so the index's own
/// bytes and digest change), then each of `add` it does not list yet.
/// `None` when `existing` lists every one already (nothing to write).
pub(crate) fn merged_fallback(
    existing: Option<&[u8]>,
    add: &[serde_json::Value],
) -> Result<Option<super::RawManifest>, serde_json::Error> {
    let mut index = match existing {
        Some(bytes) => serde_json::from_slice::<serde_json::Value>(bytes)?,
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [],
        }),
    };
    let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(serde::de::Error::custom(
            "an index without a manifests list",
        ));
    };
    let listed = |list: &Vec<serde_json::Value>, digest: &serde_json::Value| {
        list.iter().any(|e| e.get("digest") == Some(digest))
    };
    let mut changed = existing.is_none();
    for entry in add {
        let Some(digest) = entry.get("digest") else {
            continue;
        };
        if !listed(list, digest) {
            list.push(entry.clone());
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    let bytes = serde_json::to_vec(&index)?;
    Ok(Some(super::RawManifest {
        digest: Digest::sha256(&bytes),
        bytes: bytes::Bytes::from(bytes),
        media_type: media::OCI_INDEX.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
    }

    #[test]
    fn tags_are_cosigns_and_are_recognised_back() {
        let d = digest();
        let hex = "ab".repeat(32);
        assert_eq!(
            tag(&d, Kind::Signature).unwrap(),
            format!("sha256-{hex}.sig")
        );
        assert_eq!(
            tag(&d, Kind::Attestation).unwrap(),
            format!("sha256-{hex}.att")
        );
        assert_eq!(tag(&d, Kind::Sbom).unwrap(), format!("sha256-{hex}.sbom"));
        assert_eq!(tag(&d, Kind::Referrer), None);
        assert_eq!(fallback_tag(&d).unwrap(), format!("sha256-{hex}"));
        for kind in [Kind::Signature, Kind::Attestation, Kind::Sbom] {
            assert_eq!(artifact_tag(&tag(&d, kind).unwrap()), Some(kind));
        }
        assert_eq!(
            artifact_tag(&fallback_tag(&d).unwrap()),
            Some(Kind::Referrer)
        );
        for not in [
            "1.0",
            "sha256-abc.sig",
            &format!("sha256-{}.sig", "AB".repeat(32)),
            &format!("sha256-{hex}.sigx"),
            &format!("sha512-{hex}"),
        ] {
            assert_eq!(artifact_tag(not), None, "{not}");
        }
        let sha512 = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
        assert_eq!(tag(&sha512, Kind::Signature), None);
        assert_eq!(Kind::parse("sbom"), Some(Kind::Sbom));
    }

    #[test]
    fn the_fallback_index_keeps_what_it_listed_and_adds_the_rest_once() {
        let entry = |c: char| {
            serde_json::json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": format!("sha256:{}", c.to_string().repeat(64)),
                "size": 10,
                "artifactType": "application/vnd.in-toto+json",
            })
        };
        let first = merged_fallback(None, &[entry('a')]).unwrap().unwrap();
        assert_eq!(first.media_type, media::OCI_INDEX);
        assert_eq!(parse_referrers(&first.bytes).unwrap().len(), 1);
        // Nothing new: nothing to write.
        assert!(
            merged_fallback(Some(&first.bytes), &[entry('a')])
                .unwrap()
                .is_none()
        );
        // An entry written by another tool keeps its bytes (an unknown field stays).
        let other = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":3,"x-other":1}]}"#;
        let merged = merged_fallback(Some(other), &[entry('a'), entry('b')])
            .unwrap()
            .unwrap();
        let list = parse_referrers(&merged.bytes).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list[0].digest.starts_with("sha256:ccc"));
        assert!(String::from_utf8_lossy(&merged.bytes).contains("\"x-other\":1"));
        assert_eq!(merged.digest, Digest::sha256(&merged.bytes));
        assert!(merged_fallback(Some(b"{\"schemaVersion\":2}"), &[entry('a')]).is_err());
    }

    #[test]
    fn signature_types() {
        assert!(is_signature_type(
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        ));
        assert!(is_signature_type(
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        ));
        assert!(!is_signature_type("application/vnd.in-toto+json"));
    }
}
