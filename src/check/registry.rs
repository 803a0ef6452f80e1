//! Whether a registry holds an image as expected: the one question `check` asks per image, in
//! HEADs and tag lists.

use std::collections::HashSet;
use std::sync::Arc;

use super::verdict::{Status, Verdict, lacking, lock_mismatch};
use crate::oci::{Digest, ImageManifest, Platform, index_platforms, is_index};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};

/// Checks images of one repository, in order. With two or more tags to look for, one tag list
/// says which are absent, so only the present ones cost a request each; a registry that will
/// not list tags gets a HEAD per image instead.
pub(crate) async fn check_repository(
    registry: Arc<Registry>,
    images: Vec<(Reference, Option<Digest>)>,
    platforms: Arc<[Platform]>,
) -> Vec<Verdict> {
    let host = images
        .first()
        .map(|(r, _)| r.domain().to_string())
        .unwrap_or_default();
    let by_tag = images.iter().filter(|(r, _)| r.digest().is_none()).count();
    let mut listed: Option<HashSet<String>> = None;
    if by_tag >= 2 {
        match registry.list_tags(&images[0].0).await {
            Ok(tags) => listed = Some(tags.unwrap_or_default().into_iter().collect()),
            Err(RegistryError::Protocol { .. } | RegistryError::Denied { .. }) => {}
            Err(e) => return images.iter().map(|_| Verdict::error(e.clone())).collect(),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut verdicts: Vec<Option<Verdict>> = vec![None; images.len()];
    for (i, (image, digest)) in images.into_iter().enumerate() {
        let tag = image.tag().unwrap_or("latest");
        if image.digest().is_none() && listed.as_ref().is_some_and(|l| !l.contains(tag)) {
            verdicts[i] = Some(missing(&image));
            continue;
        }
        let (registry, platforms) = (registry.clone(), platforms.clone());
        tasks.spawn(async move {
            let v = check_image(&registry, &image, digest.as_ref(), &platforms).await;
            (i, v)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, v)) => verdicts[i] = Some(v),
            Err(e) => {
                let error = RegistryError::Protocol {
                    host: host.clone(),
                    what: format!("a check task failed: {e}"),
                };
                for v in verdicts.iter_mut().filter(|v| v.is_none()) {
                    *v = Some(Verdict::error(error.clone()));
                }
            }
        }
    }
    verdicts.into_iter().flatten().collect()
}

fn missing(image: &Reference) -> Verdict {
    Verdict::new(
        Status::Missing,
        None,
        match image.digest() {
            Some(d) => format!("the mirror has no manifest {d}"),
            None => format!("the mirror has no tag {}", image.tag().unwrap_or("latest")),
        },
    )
}

/// Checks that `image` exists in its registry; that it has `digest` when one is expected (a
/// lock file's, for a reference by tag); and that it serves each of `platforms`.
pub(crate) async fn check_image(
    registry: &Registry,
    image: &Reference,
    digest: Option<&Digest>,
    platforms: &[Platform],
) -> Verdict {
    match check(registry, image, digest, platforms).await {
        Ok(v) => v,
        Err(e) => Verdict::error(e),
    }
}

async fn check(
    registry: &Registry,
    image: &Reference,
    expected: Option<&Digest>,
    platforms: &[Platform],
) -> Result<Verdict, RegistryError> {
    // Existence and digest need only a HEAD; the body is read to look at platforms.
    let (held, manifest) = if platforms.is_empty() {
        match registry.manifest_digest(image).await? {
            None => return Ok(missing(image)),
            Some(digest) => (digest, None),
        }
    } else {
        match registry.get_manifest(image).await? {
            None => return Ok(missing(image)),
            Some(m) => (m.digest.clone(), Some(m)),
        }
    };
    if let Some(mismatch) = lock_mismatch("the mirror", image, &held, expected) {
        return Ok(mismatch);
    }
    if let Some(m) = manifest {
        let lacking = lacking_platforms(registry, image, &m.bytes, platforms).await?;
        if !lacking.is_empty() {
            return Ok(Verdict::new(Status::Mismatch, Some(held), lacking));
        }
    }
    Ok(Verdict::new(Status::Present, Some(held), ""))
}

/// Which wanted platforms the manifest does not serve, as a sentence (empty when none).
async fn lacking_platforms(
    registry: &Registry,
    image: &Reference,
    bytes: &[u8],
    wanted: &[Platform],
) -> Result<String, RegistryError> {
    if wanted.is_empty() {
        return Ok(String::new());
    }
    let protocol = |what: String| RegistryError::Protocol {
        host: image.domain().to_string(),
        what,
    };
    let mut have = Vec::new();
    let index = is_index(bytes).map_err(|e| {
        protocol(format!(
            "the manifest of {} is not JSON: {e}",
            image.familiar()
        ))
    })?;
    if index {
        let children = index_platforms(bytes).map_err(|e| {
            protocol(format!(
                "the index of {} does not parse: {e}",
                image.familiar()
            ))
        })?;
        for (platform, digest) in children {
            if wanted.iter().any(|w| w.served_by(&platform)) {
                // The index names it; the mirror must also hold what it names.
                let child = image
                    .with_name(image.domain(), image.path())
                    .and_then(|r| Reference::parse(&format!("{}@{}", r.name(), digest)))
                    .map_err(|e| protocol(format!("index entry {digest}: {e}")))?;
                if registry.manifest_digest(&child).await?.is_none() {
                    return Ok(format!(
                        "the index lists {platform} as {digest}, but the mirror lacks that manifest"
                    ));
                }
            }
            have.push(platform);
        }
    } else {
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| {
            protocol(format!(
                "the manifest of {} does not parse: {e}",
                image.familiar()
            ))
        })?;
        // A Helm chart runs on no platform, so it lacks none.
        if crate::oci::chart::is_chart(&manifest.config.media_type) {
            return Ok(String::new());
        }
        let Some(config) = registry
            .get_small_blob(image, &manifest.config.digest)
            .await?
        else {
            return Ok(format!(
                "the mirror lacks the image config {}",
                manifest.config.digest
            ));
        };
        have.push(Platform::from_config(&config).map_err(|e| {
            protocol(format!(
                "the image config of {} does not parse: {e}",
                image.familiar()
            ))
        })?);
    }
    Ok(lacking(wanted, &have, "the mirror's image"))
}
