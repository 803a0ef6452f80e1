//! Delta bundles: the next release carried without the blobs the mirror already holds.
//!
//! `save --have LOCK` reads, by digest, the manifests of the images LOCK pins (an earlier
//! bundle's lock, or `check -o lock` of what the mirror holds) and leaves out of the new bundle
//! every config and layer they name ([`Omitting`]); manifests always travel, being small and
//! what a reader needs to see what an image is. `push --from DELTA` then confirms, before any
//! manifest is written, that each left-out blob is in the mirror in a repository of a base
//! image ([`confirm_base`]), and hands the copier those repositories to mount from: a delta
//! pushed into a mirror without its base fails naming the base, with nothing tagged, instead
//! of tagging images whose layers are missing.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use anyhow::Context;

use super::{ImageSink, ImageSource, Kept, RawManifest, beside};
use crate::mirror::MirrorNaming;
use crate::oci::Digest;
use crate::reference::Reference;

/// Non-manifest blobs (configs, layers) by digest, with their sizes.
pub(crate) type Blobs = HashMap<String, u64>;

/// The configs and layers of `image` (every child of an index), read from `source`; `None`
/// when the source lacks the image or one of its manifests. A Helm chart's config and content
/// are not counted: a chart always travels whole (it is small, and `charts --bundle` reads it
/// from the bundle).
pub(crate) async fn blobs_of<S: ImageSource>(
    source: &S,
    image: &Reference,
) -> anyhow::Result<Option<Blobs>> {
    let mut out = Blobs::new();
    let mut stack = vec![image.clone()];
    let mut seen = HashSet::new();
    while let Some(at) = stack.pop() {
        let Some(manifest) = source.manifest(&at).await? else {
            return Ok(None);
        };
        if !seen.insert(manifest.digest.clone()) {
            continue;
        }
        let parsed = manifest.parse().with_context(|| {
            format!(
                "the manifest {} of {} is not valid",
                manifest.digest,
                at.familiar()
            )
        })?;
        for (d, is_manifest) in parsed.children() {
            match is_manifest {
                true => stack.push(beside(image, None, Some(&d.digest))?),
                false if is_chart_file(&d.media_type) => {}
                false => {
                    out.insert(d.digest.to_string(), d.size);
                }
            }
        }
    }
    Ok(Some(out))
}

fn is_chart_file(media_type: &str) -> bool {
    use crate::oci::media::{HELM_CHART_CONFIG, HELM_CHART_CONTENT};
    media_type == HELM_CHART_CONFIG || media_type == HELM_CHART_CONTENT
}

/// A sink that answers "held" for the blobs a delta leaves out, so the copier neither fetches
/// nor writes them; everything else goes to the sink it wraps.
pub(crate) struct Omitting<D> {
    inner: D,
    left_out: Blobs,
    /// The left-out blobs some image of this run named: what the delta saved moving.
    met: Mutex<HashSet<String>>,
}

impl<D> Omitting<D> {
    pub(crate) fn new(inner: D, left_out: Blobs) -> Omitting<D> {
        Omitting {
            inner,
            left_out,
            met: Mutex::new(HashSet::new()),
        }
    }

    /// How many left-out blobs the copied images named, and their bytes.
    pub(crate) fn left_out(&self) -> (usize, u64) {
        let met = self.met.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = met.iter().filter_map(|d| self.left_out.get(d)).sum();
        (met.len(), bytes)
    }
}

impl<D: ImageSink> ImageSink for std::sync::Arc<Omitting<D>> {
    async fn manifest_digest(&self, image: &Reference) -> anyhow::Result<Option<Digest>> {
        self.inner.manifest_digest(image).await
    }

    async fn has_blob(&self, image: &Reference, digest: &str) -> anyhow::Result<bool> {
        if self.left_out.contains_key(digest) {
            let mut met = self.met.lock().unwrap_or_else(|p| p.into_inner());
            met.insert(digest.to_string());
            return Ok(true);
        }
        self.inner.has_blob(image, digest).await
    }

    async fn mount_blob(
        &self,
        image: &Reference,
        digest: &str,
        from: &str,
    ) -> anyhow::Result<bool> {
        self.inner.mount_blob(image, digest, from).await
    }

    async fn put_blob(
        &self,
        image: &Reference,
        digest: &str,
        size: u64,
        body: super::ByteStream,
    ) -> anyhow::Result<()> {
        self.inner.put_blob(image, digest, size, body).await
    }

    async fn kept(&self, digest: &str) -> anyhow::Result<Option<Kept>> {
        self.inner.kept(digest).await
    }

    async fn put_blob_after(
        &self,
        image: &Reference,
        digest: &str,
        size: u64,
        kept: u64,
        body: super::ByteStream,
    ) -> anyhow::Result<()> {
        self.inner
            .put_blob_after(image, digest, size, kept, body)
            .await
    }

    async fn put_manifest(&self, image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        self.inner.put_manifest(image, manifest).await
    }

    async fn put_image(&self, image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        self.inner.put_image(image, manifest).await
    }

    async fn put_referrer(
        &self,
        image: &Reference,
        manifest: &RawManifest,
    ) -> anyhow::Result<bool> {
        self.inner.put_referrer(image, manifest).await
    }

    async fn read_manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        self.inner.read_manifest(image).await
    }
}

/// A delta bundle read with its base: a blob the bundle left out is read from the mirror
/// repository holding it (`holders`: digest → that repository's reference by digest). The
/// copier mounts such a blob where the mirror allows; a mirror that will not mount across
/// repositories (ECR, some Harbor and Quay setups) gets it copied from there instead.
pub(crate) struct WithBase<B, M> {
    bundle: B,
    mirror: M,
    holders: HashMap<String, Reference>,
}

impl<B, M> WithBase<B, M> {
    pub(crate) fn new(bundle: B, mirror: M, holders: HashMap<String, Reference>) -> Self {
        WithBase {
            bundle,
            mirror,
            holders,
        }
    }
}

impl<B: ImageSource, M: ImageSource> ImageSource for std::sync::Arc<WithBase<B, M>> {
    async fn manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        self.bundle.manifest(image).await
    }

    async fn blob(&self, image: &Reference, digest: &str) -> anyhow::Result<super::ByteStream> {
        match self.holders.get(digest) {
            Some(at) => self.mirror.blob(at, digest).await,
            None => self.bundle.blob(image, digest).await,
        }
    }

    async fn blob_from(
        &self,
        image: &Reference,
        digest: &str,
        offset: u64,
    ) -> anyhow::Result<Option<super::ByteStream>> {
        match self.holders.get(digest) {
            Some(at) => self.mirror.blob_from(at, digest, offset).await,
            None => self.bundle.blob_from(image, digest, offset).await,
        }
    }

    async fn referrers(
        &self,
        image: &Reference,
        digest: &Digest,
    ) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
        self.bundle.referrers(image, digest).await
    }
}

/// What a delta's push needs of the mirror, found before anything is written.
pub(crate) enum BaseCheck {
    /// Every left-out blob is in the mirror: digest → that blob in a mirror repository
    /// holding it (by digest), for the copier to mount or read it from.
    Held(HashMap<String, Reference>),
    /// Blobs the bundle lacks and the mirror's base images do not hold (their digests), and the
    /// base images the mirror lacks (mirror name, source name).
    Missing {
        blobs: Vec<String>,
        images: Vec<(Reference, Reference)>,
    },
}

/// Reads at once while a delta's base is confirmed: each is a small GET or a HEAD.
const BASE_READS: usize = 16;

/// Checks that the mirror (`sink`, which is read too) holds what the delta `bundle` left out:
/// the blobs the manifests of `images` name that the bundle lacks (`in_bundle` says), each in a
/// repository of one of the `base` images (source name, digest) as `naming` puts them there.
/// An image the bundle lacks is left to the copier, which reports it.
pub(crate) async fn confirm_base<B, M>(
    bundle: &B,
    in_bundle: impl Fn(&str) -> anyhow::Result<bool>,
    images: &[Reference],
    sink: &M,
    naming: &MirrorNaming,
    base: &[(Reference, Digest)],
) -> anyhow::Result<BaseCheck>
where
    B: ImageSource,
    M: ImageSource + ImageSink,
{
    use futures_util::StreamExt as _;
    // What the bundle's images name and the bundle does not hold.
    let mut absent = Blobs::new();
    for image in images {
        let Some(blobs) = blobs_of(bundle, image).await? else {
            continue;
        };
        for (digest, size) in blobs {
            if !absent.contains_key(&digest) && !in_bundle(&digest)? {
                absent.insert(digest, size);
            }
        }
    }
    if absent.is_empty() {
        return Ok(BaseCheck::Held(HashMap::new()));
    }
    // Each base image as the mirror holds it.
    let targets = base
        .iter()
        .map(|(source, digest)| {
            let target = naming.map(source)?;
            let pinned = beside(&target, None, Some(digest.as_str()))?;
            anyhow::Ok((source, target, pinned))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut reads =
        futures_util::stream::iter(targets.iter().map(|(source, target, pinned)| async move {
            (*source, target, blobs_of(sink, pinned).await)
        }))
        .buffered(BASE_READS);
    let mut holders: HashMap<String, Reference> = HashMap::new();
    let mut missing = Vec::new();
    while let Some((source, target, read)) = reads.next().await {
        match read? {
            None => missing.push((target.clone(), source.clone())),
            Some(blobs) => {
                for digest in blobs.keys().filter(|d| absent.contains_key(*d)) {
                    if !holders.contains_key(digest) {
                        holders.insert(digest.clone(), beside(target, None, Some(digest))?);
                    }
                }
            }
        }
    }
    // A manifest in the mirror does not prove its blobs are (a cleaned-up repository): each
    // left-out blob is asked for where it is to be mounted from.
    let unheld = {
        let known = &holders;
        let asks = absent.keys().map(|digest| async move {
            let held = match known.get(digest) {
                Some(at) => sink.has_blob(at, digest).await?,
                None => false,
            };
            anyhow::Ok((digest, held))
        });
        let mut asks = futures_util::stream::iter(asks).buffered(BASE_READS);
        let mut unheld = Vec::new();
        while let Some(asked) = asks.next().await {
            let (digest, held) = asked?;
            if !held {
                unheld.push(digest.clone());
            }
        }
        unheld.sort();
        unheld
    };
    if unheld.is_empty() {
        return Ok(BaseCheck::Held(holders));
    }
    Ok(BaseCheck::Missing {
        blobs: unheld,
        images: missing,
    })
}
