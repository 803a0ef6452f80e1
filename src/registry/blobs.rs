//! Writing to a registry, and reading blobs as streams: what a copy needs beyond `check`.
//!
//! Uploads are monolithic (`POST` then one streamed `PUT ?digest=`), which every registry
//! accepts; the body streams from the source, so a layer is never held in memory.

use bytes::Bytes;
use futures_util::Stream;
use reqwest::Method;

use super::{Call, CallBody, Registry, RegistryError, blob_path, endpoint_host, unexpected};
use crate::reference::Reference;

/// A blob's bytes as they arrive.
pub type ByteStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>>;

fn push_scope(image: &Reference) -> String {
    format!("repository:{}:pull,push", image.path())
}

impl Registry {
    /// Whether the repository of `image` holds blob `digest` (its size when it does).
    pub async fn blob_size(
        &self,
        image: &Reference,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let host = self.host(endpoint_host(image.domain()))?;
        let path = blob_path(image, digest);
        // Blobs are looked for in the repository about to be pushed to: asking for push
        // access now saves a second token per repository.
        let f = self
            .fetch(&host, &push_scope(image), Method::HEAD, &path, None, 0)
            .await?;
        match f.status.as_u16() {
            200 => Ok(Some(
                f.header("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(unexpected(&host, &path, &f)),
        }
    }

    /// A blob's bytes, streamed.
    pub async fn open_blob(
        &self,
        image: &Reference,
        digest: &str,
    ) -> Result<ByteStream, RegistryError> {
        use futures_util::TryStreamExt as _;
        let host = self.host(endpoint_host(image.domain()))?;
        let path = blob_path(image, digest);
        let call = Call {
            method: Method::GET,
            path: &path,
            stream: true,
            limit: 0,
            ..Call::default()
        };
        let f = self
            .exchange(&host, &super::pull_scope(image), call)
            .await?;
        match f.stream {
            Some(resp) => Ok(Box::pin(resp.bytes_stream().map_err(std::io::Error::other))),
            None => Err(unexpected(&host, &path, &f)),
        }
    }

    /// Mounts blob `digest` from repository `from` (same registry) into `image`'s repository.
    /// `false` when the registry would not (it then opened an upload, which is abandoned).
    pub async fn mount_blob(
        &self,
        image: &Reference,
        digest: &str,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let host = self.host(endpoint_host(image.domain()))?;
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={from}",
            image.path()
        );
        let scope = format!("{} repository:{from}:pull", push_scope(image));
        let call = Call {
            method: Method::POST,
            path: &path,
            body: Some(CallBody::Bytes(Bytes::new())),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(&host, &scope, call).await?;
        match f.status.as_u16() {
            201 => Ok(true),
            202 => Ok(false),
            _ => Err(unexpected(&host, &path, &f)),
        }
    }

    /// Uploads a blob of `size` bytes from `body`; the registry checks `digest` as well.
    pub async fn upload_blob(
        &self,
        image: &Reference,
        digest: &str,
        size: u64,
        body: ByteStream,
    ) -> Result<(), RegistryError> {
        let host = self.host(endpoint_host(image.domain()))?;
        let scope = push_scope(image);
        let path = format!("/v2/{}/blobs/uploads/", image.path());
        let start = Call {
            method: Method::POST,
            path: &path,
            body: Some(CallBody::Bytes(Bytes::new())),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(&host, &scope, start).await?;
        if f.status.as_u16() != 202 {
            return Err(unexpected(&host, &path, &f));
        }
        let location = f
            .header("location")
            .ok_or_else(|| RegistryError::Protocol {
                host: host.name.clone(),
                what: format!("POST {path} answered 202 without a Location"),
            })?;
        let mut url = match reqwest::Url::parse(location) {
            Ok(u) => u,
            Err(_) => reqwest::Url::parse(&format!("{}{location}", host.base)).map_err(|e| {
                RegistryError::Protocol {
                    host: host.name.clone(),
                    what: format!("upload Location {location:?} is not a URL: {e}"),
                }
            })?,
        };
        url.query_pairs_mut().append_pair("digest", digest);
        let url = url.to_string();
        let put = Call {
            method: Method::PUT,
            path: &url,
            content_type: Some("application/octet-stream"),
            content_length: Some(size),
            body: Some(CallBody::Once(Some(reqwest::Body::wrap_stream(body)))),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(&host, &scope, put).await?;
        match f.status.as_u16() {
            201 | 204 => Ok(()),
            _ => Err(unexpected(&host, "blob upload", &f)),
        }
    }

    /// Stores a manifest's bytes under `image`'s tag or digest.
    pub async fn put_manifest(
        &self,
        image: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let host = self.host(endpoint_host(image.domain()))?;
        let path = super::manifest_path(image);
        let call = Call {
            method: Method::PUT,
            path: &path,
            content_type: Some(media_type),
            body: Some(CallBody::Bytes(bytes)),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(&host, &push_scope(image), call).await?;
        match f.status.as_u16() {
            200..=299 => Ok(()),
            _ => Err(unexpected(&host, &path, &f)),
        }
    }
}
