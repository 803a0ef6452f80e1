//! The registry end, read and write.

use std::sync::Arc;

use super::{ByteStream, ImageSink, ImageSource, RawManifest};
use crate::reference::Reference;
use crate::registry::Registry;

impl ImageSource for Arc<Registry> {
    async fn manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        Ok(self.get_manifest(image).await?)
    }

    async fn blob(&self, image: &Reference, digest: &str) -> anyhow::Result<ByteStream> {
        Ok(self.open_blob(image, digest).await?)
    }

    async fn blob_from(
        &self,
        image: &Reference,
        digest: &str,
        offset: u64,
    ) -> anyhow::Result<Option<ByteStream>> {
        let (stream, start) = self.open_blob_at(image, digest, offset).await?;
        // A registry that ignored the range sent the whole blob; `None` drops that answer, and
        // the copier reads the blob whole from the start.
        Ok((start == offset).then_some(stream))
    }

    async fn referrers(
        &self,
        image: &Reference,
        digest: &crate::oci::Digest,
    ) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
        Ok(Registry::referrers(self, image, digest).await?)
    }
}

impl ImageSink for Arc<Registry> {
    async fn manifest_digest(
        &self,
        image: &Reference,
    ) -> anyhow::Result<Option<crate::oci::Digest>> {
        Ok(Registry::manifest_digest(self, image).await?)
    }

    async fn has_blob(&self, image: &Reference, digest: &str) -> anyhow::Result<bool> {
        Ok(self.blob_size(image, digest).await?.is_some())
    }

    async fn mount_blob(
        &self,
        image: &Reference,
        digest: &str,
        from: &str,
    ) -> anyhow::Result<bool> {
        Ok(Registry::mount_blob(self, image, digest, from).await?)
    }

    async fn put_blob(
        &self,
        image: &Reference,
        digest: &str,
        size: u64,
        body: ByteStream,
    ) -> anyhow::Result<()> {
        Ok(self.upload_blob(image, digest, size, body).await?)
    }

    async fn put_referrer(
        &self,
        image: &Reference,
        manifest: &RawManifest,
    ) -> anyhow::Result<bool> {
        Ok(
            Registry::put_referrer(self, image, manifest.bytes.clone(), &manifest.media_type)
                .await?,
        )
    }

    async fn read_manifest(&self, image: &Reference) -> anyhow::Result<Option<RawManifest>> {
        Ok(self.get_manifest(image).await?)
    }

    async fn put_manifest(&self, image: &Reference, manifest: &RawManifest) -> anyhow::Result<()> {
        Ok(
            Registry::put_manifest(self, image, manifest.bytes.clone(), &manifest.media_type)
                .await?,
        )
    }
}
