//! `check --signatures`: does the mirror hold what a verifying cluster needs beside each
//! image? Asked two ways, by what the input can say:
//!
//! - what a bundle (or its lock) carried: each of its signatures, attestations and SBOMs by
//!   tag, and each referrer by digest and listed for its image (the referrers API, else the
//!   `sha256-<hex>` fallback tag), so a push with `--no-signatures` or a tag deleted since is
//!   caught;
//! - otherwise any signature: the image's cosign `sha256-<hex>.sig` tag, or a referrer whose
//!   `artifactType` is a signature's (cosign's OCI 1.1 mode, a Sigstore bundle, Notary).
//!
//! Only the mirror is asked; what was signed at the source is the bundle's word.

use std::sync::Arc;

use futures_util::StreamExt as _;

use crate::oci::Digest;
use crate::oci::cosign::{self, Kind};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::transfer::beside;

/// Images asked at once: each is a few small requests.
const AT_ONCE: usize = 8;

/// What the mirror should hold beside one image.
pub(crate) enum Expect {
    /// What a bundle carried: each artifact by kind and its name in the mirror (a tag, or a
    /// digest for a referrer).
    Carried(Vec<(Kind, Reference)>),
    /// Any signature at all.
    AnySignature,
}

/// One image to ask about.
pub(crate) struct Ask {
    /// The image's name in the mirror.
    pub(crate) image: Reference,
    /// The digest a lock pins it to, else what the mirror's tag resolves to.
    pub(crate) digest: Option<Digest>,
    pub(crate) expect: Expect,
}

/// The mirror's answer for one image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "status", content = "detail")]
pub(crate) enum Answer {
    /// It holds them: what was found.
    Held(String),
    /// It lacks them: what is missing.
    Lacks(String),
    /// The question could not be answered.
    Error(String),
}

/// An answer for each ask, in the order asked.
pub(crate) async fn ask(registry: &Arc<Registry>, asks: &[Ask]) -> Vec<Answer> {
    futures_util::stream::iter(asks.iter().map(|a| async move {
        one(registry, a)
            .await
            .unwrap_or_else(|e| Answer::Error(format!("{e:#}")))
    }))
    .buffered(AT_ONCE)
    .collect()
    .await
}

async fn one(registry: &Registry, ask: &Ask) -> anyhow::Result<Answer> {
    let digest = match &ask.digest {
        Some(d) => d.clone(),
        None => match registry.manifest_digest(&ask.image).await? {
            Some(d) => d,
            None => {
                return Ok(Answer::Lacks(format!(
                    "the mirror has no image {}",
                    ask.image
                )));
            }
        },
    };
    match &ask.expect {
        Expect::AnySignature => {
            if let Some(tag) = cosign::tag(&digest, Kind::Signature) {
                let at = beside(&ask.image, Some(&tag), None)?;
                if registry.manifest_digest(&at).await?.is_some() {
                    return Ok(Answer::Held(format!("the tag {tag}")));
                }
            }
            let referrers = listed(registry, &ask.image, &digest).await?;
            let signature = referrers.iter().find(|r| {
                r.artifact_type
                    .as_deref()
                    .is_some_and(cosign::is_signature_type)
            });
            Ok(match signature {
                Some(r) => Answer::Held(format!("the signature referrer {}", r.digest)),
                None => Answer::Lacks(format!(
                    "no {} tag and no signature among its {} referrers",
                    cosign::tag(&digest, Kind::Signature)
                        .unwrap_or_else(|| "sha256-<hex>.sig".into()),
                    referrers.len()
                )),
            })
        }
        Expect::Carried(artifacts) => {
            let mut lacking = Vec::new();
            let mut referrers = None;
            for (kind, name) in artifacts {
                let held = registry.manifest_digest(name).await?.is_some();
                let listed = match (kind, name.pinned()) {
                    (Kind::Referrer, Some(d)) => {
                        if referrers.is_none() {
                            referrers = Some(listed(registry, &ask.image, &digest).await?);
                        }
                        referrers
                            .as_ref()
                            .is_some_and(|l| l.iter().any(|r| &r.digest == d))
                    }
                    _ => true,
                };
                match (held, listed) {
                    (true, true) => {}
                    (false, _) => lacking.push(format!("{} {name}", kind.as_str())),
                    (true, false) => lacking.push(format!(
                        "{} {name} (held, but not listed by the referrers API or the {} tag)",
                        kind.as_str(),
                        cosign::fallback_tag(&digest).unwrap_or_default()
                    )),
                }
            }
            Ok(match lacking.is_empty() {
                true => Answer::Held(format!("{} carried artifacts", artifacts.len())),
                false => Answer::Lacks(format!(
                    "{} of {} carried artifacts: {}",
                    lacking.len(),
                    artifacts.len(),
                    lacking.join(", ")
                )),
            })
        }
    }
}

/// The referrers the mirror lists for `digest`: its API, else its fallback tag.
async fn listed(
    registry: &Registry,
    image: &Reference,
    digest: &Digest,
) -> anyhow::Result<Vec<cosign::Referrer>> {
    let pages = match registry.referrers(image, digest).await? {
        Some(pages) => pages,
        None => {
            let Some(tag) = cosign::fallback_tag(digest) else {
                return Ok(Vec::new());
            };
            match registry
                .get_manifest(&beside(image, Some(&tag), None)?)
                .await?
            {
                Some(m) => vec![m.bytes.to_vec()],
                None => Vec::new(),
            }
        }
    };
    let mut out = Vec::new();
    for page in pages {
        out.extend(cosign::parse_referrers(&page).map_err(|e| {
            anyhow::anyhow!(
                "the referrers of {}@{digest} in the mirror are not an index: {e}",
                image.name()
            )
        })?);
    }
    Ok(out)
}
