//! Where images come from and where they go, and the one copier between any two such ends.
//!
//! The go-containerregistry idea: a registry, an OCI image layout and a docker archive are
//! interchangeable ends, so `push` (bundle or registry → mirror) and `save` (registry → bundle)
//! are the same copy. Ends: a registry (read and write), an OCI image layout as a directory
//! (read and write) or a tar of one (read), and docker archives (read).

pub(crate) mod archive;
pub(crate) mod copy;
pub(crate) mod delta;
pub(crate) mod docker_archive;
pub(crate) mod layout;
pub(crate) mod plan;
pub(crate) mod registry;
pub(crate) mod signatures;
mod unpack;
pub(crate) mod verify;

use std::future::Future;

use crate::reference::Reference;
pub(crate) use crate::registry::blobs::ByteStream;

/// Bytes per read of a local blob: each read is a trip to tokio's blocking pool, so fewer,
/// larger reads keep a push at the registry's pace (64 KiB reads cost ~10% of throughput in the
/// push benchmark); blobs in flight times this bounds the buffers.
pub(crate) const READ_CHUNK: usize = 1 << 20;

pub(crate) use crate::oci::RawManifest;

/// `image`'s repository at `tag` and/or `digest`: a child manifest of an index, a blob's
/// holder, an artifact beside its image.
pub(crate) fn beside(
    image: &Reference,
    tag: Option<&str>,
    digest: Option<&str>,
) -> anyhow::Result<Reference> {
    use anyhow::Context as _;
    Reference::from_parts(image.domain(), image.path(), tag, digest).with_context(|| {
        format!(
            "{} named beside {} is not a tag or digest",
            tag.or(digest).unwrap_or_default(),
            image.familiar()
        )
    })
}

/// Something images can be read from.
pub(crate) trait ImageSource: Send + Sync + 'static {
    /// The manifest `image` names (by tag or digest), `None` when there is none.
    fn manifest(
        &self,
        image: &Reference,
    ) -> impl Future<Output = anyhow::Result<Option<RawManifest>>> + Send;

    /// A blob of `image`'s repository, streamed.
    fn blob(
        &self,
        image: &Reference,
        digest: &str,
    ) -> impl Future<Output = anyhow::Result<ByteStream>> + Send;

    /// The bytes of a blob from `offset` on, to continue a download that a killed run began;
    /// `None` when the source cannot start there (the whole blob is read instead).
    fn blob_from(
        &self,
        _image: &Reference,
        _digest: &str,
        _offset: u64,
    ) -> impl Future<Output = anyhow::Result<Option<ByteStream>>> + Send {
        async { Ok(None) }
    }

    /// The referrers of the manifest `digest` in `image`'s repository from an OCI 1.1
    /// referrers API (the index pages it answered); `None` when the source has no such API,
    /// and the `sha256-<hex>` fallback tag is read instead (a bundle holds that tag).
    fn referrers(
        &self,
        _image: &Reference,
        _digest: &crate::oci::Digest,
    ) -> impl Future<Output = anyhow::Result<Option<Vec<Vec<u8>>>>> + Send {
        async { Ok(None) }
    }
}

/// The start of a blob that an interrupted write left in a sink, to be continued.
pub(crate) struct Kept {
    /// How many bytes are kept.
    pub len: u64,
    /// Those bytes, read back: the copier hashes them with the rest, so the blob is verified
    /// whole, not only its new part.
    pub bytes: ByteStream,
}

/// Something images can be written to. Writers put blobs before the manifests that name them,
/// and children before their index, so a reader never meets a manifest whose parts are missing.
pub(crate) trait ImageSink: Send + Sync + 'static {
    /// The digest of the manifest `image` names, if the sink has one.
    fn manifest_digest(
        &self,
        image: &Reference,
    ) -> impl Future<Output = anyhow::Result<Option<crate::oci::Digest>>> + Send;

    fn has_blob(
        &self,
        image: &Reference,
        digest: &str,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;

    /// Links a blob the sink holds in repository `from` into `image`'s repository without
    /// moving bytes; `false` when it cannot.
    fn mount_blob(
        &self,
        image: &Reference,
        digest: &str,
        from: &str,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;

    /// Stores a blob; `body` is verified against `digest` and `size` as it streams.
    fn put_blob(
        &self,
        image: &Reference,
        digest: &str,
        size: u64,
        body: ByteStream,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// What an interrupted write of `digest` left that a copy may continue; `None`: none.
    fn kept(&self, _digest: &str) -> impl Future<Output = anyhow::Result<Option<Kept>>> + Send {
        async { Ok(None) }
    }

    /// Finishes the blob [`ImageSink::kept`] began: `body` is the whole blob, verified as it
    /// streams, of which the sink already holds the first `kept` bytes.
    fn put_blob_after(
        &self,
        _image: &Reference,
        digest: &str,
        _size: u64,
        _kept: u64,
        _body: ByteStream,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let digest = digest.to_string();
        async move { anyhow::bail!("this sink cannot continue blob {digest}") }
    }

    fn put_manifest(
        &self,
        image: &Reference,
        manifest: &RawManifest,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Stores a manifest with a `subject` (by digest); `true` when the sink lists it among
    /// the subject's referrers itself (a registry with the OCI 1.1 API answers `OCI-Subject`),
    /// `false` when the writer keeps the subject's `sha256-<hex>` fallback tag.
    fn put_referrer(
        &self,
        image: &Reference,
        manifest: &RawManifest,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send {
        async move {
            self.put_manifest(image, manifest).await?;
            Ok(false)
        }
    }

    /// The manifest the sink holds under `image`, to merge a fallback tag's index with what
    /// it lists already; `None` when it holds none (or cannot read back).
    fn read_manifest(
        &self,
        _image: &Reference,
    ) -> impl Future<Output = anyhow::Result<Option<RawManifest>>> + Send {
        async { Ok(None) }
    }

    /// Stores the top manifest of an image under the image's name: the last step of a copy. A
    /// registry tags it; a layout also lists it in its index.
    fn put_image(
        &self,
        image: &Reference,
        manifest: &RawManifest,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        self.put_manifest(image, manifest)
    }
}
