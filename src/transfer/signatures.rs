//! Carrying what a verifying cluster needs beside each image (issue 19): cosign's tag-scheme
//! artifacts (`sha256-<hex>.sig`, `.att`, `.sbom`) and OCI 1.1 referrers, found in the source
//! and written by the one copier, after the images themselves.
//!
//! An artifact is found by the image's top manifest digest as copied: `save` and `push` carry
//! them only for an image whose digest the copy kept (a `--platform` filter makes a new index,
//! which no signature names, and a cluster pulling it would find none). Referrers come from the
//! source's referrers API where it has one, else from its `sha256-<hex>` fallback tag; each is
//! copied by digest, and where the sink does not list it itself (a registry without the API, a
//! bundle) the sink's fallback tag is written, merged with what it lists already. In a bundle
//! every one of them is an image of its own under its full name (`quay.io/x/y:sha256-<hex>.sig`,
//! the fallback tag an index of the referrers), so `push --from` reads them back with the same
//! copier and names them with the same mirror naming as the image they belong to.

use std::collections::HashSet;

use anyhow::Context;
use futures_util::StreamExt as _;

use super::copy::{Copied, Copier};
use super::plan::Job;
use super::{ImageSink, ImageSource, beside};
use crate::oci::cosign::{self, Kind};
use crate::oci::{Digest, ImageManifest};
use crate::reference::Reference;

/// Images whose artifacts are looked for at once: each costs a few small requests.
const IMAGES_AT_ONCE: usize = 8;

/// Referrers of one image carried at most: a listing is small, but its length comes from the
/// network.
const MAX_REFERRERS: usize = 1000;

/// One image whose artifacts are to be carried.
pub(crate) struct Image {
    /// As the inputs name it.
    pub source: Reference,
    /// Where it was read.
    pub fetch: Reference,
    /// Where it was written.
    pub target: Reference,
    /// Its top manifest digest, the same in source and sink.
    pub digest: Digest,
}

/// The images of a finished copy whose artifacts can be carried, and a note for those whose
/// digest `--platform` changed (their artifacts name the old one).
pub(crate) fn images(
    jobs: &[Job],
    results: &[anyhow::Result<Copied>],
) -> (Vec<Image>, Vec<String>) {
    let (mut out, mut filtered) = (Vec::new(), Vec::new());
    for (job, result) in jobs.iter().zip(results) {
        let Ok(copied) = result else { continue };
        // An artifact is not an image that carries artifacts; a chart packaged here has none.
        if job.source.tag().and_then(cosign::artifact_tag).is_some()
            || job.source.domain() == crate::mirror::LOCAL_CHARTS
        {
            continue;
        }
        if copied.filtered_from.is_some() {
            filtered.push(job.source.familiar());
            continue;
        }
        let Some(digest) = copied.digest.clone() else {
            continue;
        };
        out.push(Image {
            source: job.source.clone(),
            fetch: job.fetch.clone(),
            target: job.target.clone(),
            digest,
        });
    }
    let mut notes = Vec::new();
    if !filtered.is_empty() {
        notes.push(format!(
            "--platform gave {} images a new index digest, and their signatures, attestations and referrers name the old one, so none were carried for them (a verifying cluster would reject the filtered image; save or push without --platform to keep them): {}",
            filtered.len(),
            filtered.join(", ")
        ));
    }
    (out, notes)
}

/// `names` without the artifacts a bundle holds beside its images (cosign's tags and the
/// referrers fallback tag): they travel as their image's, never as images of their own. A name
/// is such an artifact only when an image of its repository in the bundle has the digest its
/// tag spells (`digest_of` gives each name's digest); an image a CI tagged `sha256-<hex>` by
/// its source digest is still pushed.
pub(crate) fn without_artifacts(
    names: Vec<Reference>,
    digest_of: impl Fn(&Reference) -> Option<String>,
) -> Vec<Reference> {
    let held: HashSet<(String, String)> = names
        .iter()
        .filter_map(|n| Some((n.name(), digest_of(n)?)))
        .collect();
    names
        .into_iter()
        .filter(|n| {
            let Some(tag) = n.tag() else { return true };
            if cosign::artifact_tag(tag).is_none() {
                return true;
            }
            let hex = &tag["sha256-".len().."sha256-".len() + 64];
            !held.contains(&(n.name(), format!("sha256:{hex}")))
        })
        .collect()
}

/// One artifact carried.
#[derive(Debug, Clone)]
pub(crate) struct Artifact {
    /// The image it belongs to, as the inputs name it.
    pub image: Reference,
    pub kind: Kind,
    /// Its name beside the image's source name: `REPO:sha256-<hex>.sig`, or `REPO@DIGEST` for
    /// a referrer.
    pub source: Reference,
    pub digest: Digest,
    /// A referrer's `artifactType` (its config's media type when it has none).
    pub artifact_type: Option<String>,
}

/// What carrying came to.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub artifacts: Vec<Artifact>,
    /// Fallback tags written in the sink (a registry without the referrers API, a bundle).
    pub fallback_tags: usize,
    /// Images with at least one artifact.
    pub images_with: usize,
    /// One line per image whose artifacts could not be carried.
    pub failures: Vec<String>,
    /// What the user should know (referrers skipped, and why).
    pub notes: Vec<String>,
}

impl Carried {
    /// How many artifacts of `kind` were carried.
    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.artifacts.iter().filter(|a| a.kind == kind).count()
    }
}

/// One image's share of [`Carried`].
#[derive(Default)]
struct OfImage {
    artifacts: Vec<Artifact>,
    fallback_written: bool,
    notes: Vec<String>,
}

/// Carries the artifacts of every image in `images` from the copier's source to its sink.
pub(crate) async fn carry<S: ImageSource, D: ImageSink>(
    copier: &Copier<S, D>,
    images: &[Image],
) -> Carried {
    let mut runs = futures_util::stream::iter(
        images
            .iter()
            .map(|image| async move { (image, carry_one(copier, image).await) }),
    )
    .buffer_unordered(IMAGES_AT_ONCE);
    let mut carried = Carried::default();
    while let Some((image, result)) = runs.next().await {
        match result {
            Ok(one) => {
                carried.images_with += usize::from(!one.artifacts.is_empty());
                carried.fallback_tags += usize::from(one.fallback_written);
                carried.artifacts.extend(one.artifacts);
                carried.notes.extend(one.notes);
            }
            Err(e) => carried.failures.push(format!(
                "the signatures and referrers of {}: {e:#}",
                image.source.familiar()
            )),
        }
    }
    // A stable order for the lock file and the reports.
    carried.artifacts.sort_by(|a, b| {
        (a.image.to_string(), a.kind, a.source.to_string()).cmp(&(
            b.image.to_string(),
            b.kind,
            b.source.to_string(),
        ))
    });
    carried
}

async fn carry_one<S: ImageSource, D: ImageSink>(
    copier: &Copier<S, D>,
    image: &Image,
) -> anyhow::Result<OfImage> {
    let mut out = OfImage::default();
    // Cosign names sha256 digests only; so does the fallback tag.
    let Some(fallback) = cosign::fallback_tag(&image.digest) else {
        return Ok(out);
    };
    for kind in Kind::TAGGED {
        let Some(tag) = cosign::tag(&image.digest, kind) else {
            continue;
        };
        let from = beside(&image.fetch, Some(&tag), None)?;
        let to = beside(&image.target, Some(&tag), None)?;
        match copier.copy_if_found(&from, &to).await? {
            None => {}
            Some(Ok(copied)) => out.artifacts.push(Artifact {
                image: image.source.clone(),
                kind,
                source: beside(&image.source, Some(&tag), None)?,
                digest: copied.digest.context("a copy names what it stored")?,
                artifact_type: None,
            }),
            Some(Err(held)) => out.notes.push(format!(
                "{} already holds {} at {held}, not the source's: left as it is, since it may hold signatures made there (delete that tag to take the source's)",
                to.familiar(),
                tag
            )),
        }
    }

    let listed = referrers_at_source(copier, image, &fallback).await?;
    let mut entries = Vec::new();
    for referrer in listed {
        let from = beside(&image.fetch, None, Some(referrer.digest.as_str()))?;
        let Some(manifest) = copier.source.manifest(&from).await? else {
            out.notes.push(format!(
                "{} lists the referrer {} of {}, which the source does not have; it was left",
                fallback,
                referrer.digest,
                image.source.familiar()
            ));
            continue;
        };
        let parsed: ImageManifest = match serde_json::from_slice(&manifest.bytes) {
            Ok(m) => m,
            Err(e) => {
                out.notes.push(format!(
                    "the referrer {} of {} is not a manifest ({e}); it was left",
                    referrer.digest,
                    image.source.familiar()
                ));
                continue;
            }
        };
        // A listing names what claims to be about the image; the manifest must say so itself.
        if parsed.subject.as_ref().map(|s| &s.digest) != Some(&image.digest) {
            out.notes.push(format!(
                "the referrers of {} list {}, whose subject is not that image; it was left",
                image.source.familiar(),
                referrer.digest
            ));
            continue;
        }
        let to = beside(&image.target, None, Some(referrer.digest.as_str()))?;
        let indexed = copier.copy_referrer(&from, &to, &manifest).await?;
        if !indexed {
            entries.push(cosign::referrer_entry(&manifest)?);
        }
        out.artifacts.push(Artifact {
            image: image.source.clone(),
            kind: Kind::Referrer,
            source: beside(&image.source, None, Some(referrer.digest.as_str()))?,
            digest: manifest.digest.clone(),
            artifact_type: Some(parsed.referrer_type().to_string()),
        });
    }
    if !entries.is_empty() {
        let at = beside(&image.target, Some(&fallback), None)?;
        let existing = copier.sink.read_manifest(&at).await?;
        let merged = cosign::merged_fallback(existing.as_ref().map(|m| &m.bytes[..]), &entries)
            .with_context(|| {
                format!(
                    "{} is not a referrers index to add to: delete or retag it, or leave the referrers with --no-signatures",
                    at.familiar()
                )
            })?;
        if let Some(index) = merged {
            copier
                .sink
                .put_image(&at, &index)
                .await
                .with_context(|| format!("writing the referrers fallback tag {}", at.familiar()))?;
            out.fallback_written = true;
        }
    }
    Ok(out)
}

/// The referrers the source lists for `image`: its referrers API, else its fallback tag.
async fn referrers_at_source<S: ImageSource, D: ImageSink>(
    copier: &Copier<S, D>,
    image: &Image,
    fallback: &str,
) -> anyhow::Result<Vec<cosign::Referrer>> {
    // The fallback tag is read even where the API answers: referrers pushed before a
    // registry gained the API are listed only there.
    let at = beside(&image.fetch, Some(fallback), None)?;
    let tagged = match copier.source.manifest(&at).await? {
        Some(index) => vec![index.bytes.to_vec()],
        None => Vec::new(),
    };
    let pages = match copier.source.referrers(&image.fetch, &image.digest).await? {
        Some(mut pages) => {
            pages.extend(tagged);
            pages
        }
        None => tagged,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for page in pages {
        let list = cosign::parse_referrers(&page).with_context(|| {
            format!(
                "the referrers of {} are not an index of descriptors",
                image.fetch.familiar()
            )
        })?;
        for r in list {
            if seen.insert(r.digest.clone()) {
                out.push(r);
            }
        }
    }
    if out.len() > MAX_REFERRERS {
        anyhow::bail!(
            "{} lists {} referrers, more than the {MAX_REFERRERS} carried per image; copy them with another tool (oras, cosign copy), or leave them all with --no-signatures",
            image.fetch.familiar(),
            out.len()
        );
    }
    Ok(out)
}
