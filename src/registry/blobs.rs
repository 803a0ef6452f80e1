//! Writing to a registry, and reading blobs as streams: what a copy needs beyond `check`.
//!
//! Uploads are monolithic (`POST` then one streamed `PUT ?digest=`), which most registries
//! accept; the body streams from the source, so a layer is never held in memory. A host that
//! refuses a whole blob in one request (HTTP 413: a proxy's body limit, such as nginx's default
//! `client_max_body_size 1m`) gets every later upload in chunks (`PATCH` with `Content-Range`,
//! then `PUT ?digest=`), one chunk in memory at a time. The blob refused is sent again in
//! chunks at once, within the same upload: until a host has taken a blob of that size whole,
//! what an upload sends is kept (up to [`REPLAY_LIMIT`]) so it can be sent again without
//! reading the source twice.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use reqwest::Method;

use super::{Call, CallBody, Registry, RegistryError, blob_path, unexpected};
use crate::oci::hub;
use crate::reference::Reference;

/// A blob's bytes as they arrive.
pub(crate) type ByteStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>>;

/// The chunk size after a 413: fits nginx's default 1 MiB body limit.
const CHUNK: usize = 1 << 20;

/// How much of a whole-blob upload is kept for sending again in chunks after a 413. A proxy
/// answers 413 from the request's `Content-Length`, having read little of the body; one that
/// reads more than this first makes the upload fail as [`RegistryError::Interrupted`], and the
/// copier's next attempt goes in chunks. Kept buffers cannot be reused by the reader, so every
/// kept MiB is fresh memory: 8 MiB cost the push benchmark 5%, 4 MiB half that.
const REPLAY_LIMIT: usize = 4 << 20;

/// What a whole-blob upload has sent so far, kept so that a 413 can become a chunked upload.
struct Replay(Arc<Mutex<ReplayState>>);

struct ReplayState {
    /// The source, read up to where `sent` ends; `None` once taken back.
    rest: Option<ByteStream>,
    sent: Vec<Bytes>,
    sent_len: usize,
    /// More was sent than [`REPLAY_LIMIT`]: nothing is kept.
    overflowed: bool,
    finished: bool,
}

impl Replay {
    /// `body`, recorded as it is read, and the handle that can take it back.
    fn record(body: ByteStream) -> (Replay, ByteStream) {
        let state = Arc::new(Mutex::new(ReplayState {
            rest: Some(body),
            sent: Vec::new(),
            sent_len: 0,
            overflowed: false,
            finished: false,
        }));
        let reader = state.clone();
        let stream = futures_util::stream::poll_fn(move |cx| {
            let mut state = reader.lock().unwrap_or_else(|p| p.into_inner());
            let state = &mut *state;
            let Some(rest) = state.rest.as_mut() else {
                return Poll::Ready(None);
            };
            let next = rest.as_mut().poll_next(cx);
            match &next {
                Poll::Ready(Some(Ok(bytes))) if !state.overflowed => {
                    if state.sent_len + bytes.len() > REPLAY_LIMIT {
                        state.overflowed = true;
                        state.sent = Vec::new();
                    } else {
                        state.sent_len += bytes.len();
                        state.sent.push(bytes.clone());
                    }
                }
                Poll::Ready(None) => state.finished = true,
                _ => {}
            }
            next
        });
        (Replay(state), Box::pin(stream))
    }

    /// The whole body again, from its first byte: what was sent, then the rest of the source.
    /// `None` when more was sent than was kept.
    fn rewind(self) -> Option<ByteStream> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let rest = state.rest.take();
        if state.overflowed {
            return None;
        }
        let sent = futures_util::stream::iter(std::mem::take(&mut state.sent).into_iter().map(Ok));
        Some(match (state.finished, rest) {
            (false, Some(rest)) => Box::pin(sent.chain(rest)),
            _ => Box::pin(sent),
        })
    }
}

fn push_scope(image: &Reference) -> String {
    format!("repository:{}:pull,push", image.path())
}

/// The upload URL a `202 Accepted` names in `Location` (absolute, or a path on the host).
fn next_location(
    host: &super::Host,
    what: &str,
    f: &super::Fetched,
) -> Result<reqwest::Url, RegistryError> {
    let location = f
        .header("location")
        .ok_or_else(|| RegistryError::Protocol {
            host: host.name.clone(),
            what: format!("{what} answered 202 without a Location"),
        })?;
    reqwest::Url::parse(location)
        .or_else(|_| reqwest::Url::parse(&format!("{}{location}", host.base)))
        .map_err(|e| RegistryError::Protocol {
            host: host.name.clone(),
            what: format!("upload Location {location:?} is not a URL: {e}"),
        })
}

/// `stream`, failing when a next piece takes longer than `idle` (`--request-timeout`): a
/// download that stalls ends instead of holding its copy forever.
pub(super) fn idle_bounded(
    stream: ByteStream,
    idle: std::time::Duration,
    host: &str,
) -> ByteStream {
    let host = host.to_string();
    Box::pin(futures_util::stream::unfold(Some(stream), move |state| {
        let host = host.clone();
        async move {
            let mut stream = state?;
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "{host} sent no data for {} s (--request-timeout); the transfer stalled",
                            idle.as_secs_f64()
                        ),
                    )),
                    None,
                )),
            }
        }
    }))
}

impl Registry {
    /// Whether the repository of `image` holds blob `digest` (its size when it does).
    pub(crate) async fn blob_size(
        &self,
        image: &Reference,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
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
    pub(crate) async fn open_blob(
        &self,
        image: &Reference,
        digest: &str,
    ) -> Result<ByteStream, RegistryError> {
        let (stream, _) = self.open_blob_at(image, digest, 0).await?;
        Ok(stream)
    }

    /// Blob `digest` from byte `offset` on. The second value is where the stream starts: the
    /// offset when the registry answered the range (206 with a `Content-Range` from there), 0
    /// when it sent the whole blob instead, as a registry may.
    pub(crate) async fn open_blob_at(
        &self,
        image: &Reference,
        digest: &str,
        offset: u64,
    ) -> Result<(ByteStream, u64), RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
        let path = blob_path(image, digest);
        let call = Call {
            method: Method::GET,
            path: &path,
            stream: true,
            limit: 0,
            range_from: (offset > 0).then_some(offset),
            ..Call::default()
        };
        let f = self
            .exchange(&host, &super::pull_scope(image), call)
            .await?;
        let start = match f.status.as_u16() {
            206 => {
                let from = f
                    .header("content-range")
                    .and_then(|r| r.strip_prefix("bytes "))
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(from, _)| from.trim().parse::<u64>().ok());
                if from != Some(offset) {
                    return Err(unexpected(&host, &path, &f));
                }
                offset
            }
            _ => 0,
        };
        match f.stream {
            Some(stream) => Ok((stream, start)),
            None => Err(unexpected(&host, &path, &f)),
        }
    }

    /// Mounts blob `digest` from repository `from` (same registry) into `image`'s repository.
    /// `false` when the registry would not (it then opened an upload, which is abandoned).
    pub(crate) async fn mount_blob(
        &self,
        image: &Reference,
        digest: &str,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
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
    pub(crate) async fn upload_blob(
        &self,
        image: &Reference,
        digest: &str,
        size: u64,
        body: ByteStream,
    ) -> Result<(), RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
        let scope = push_scope(image);
        let mut url = self.start_upload(&host, &scope, image).await?;
        if host.chunked.load(Ordering::Relaxed) {
            return self.upload_chunks(&host, &scope, url, digest, body).await;
        }
        // Kept only until the host has taken a blob this large whole: body limits go by size.
        let (replay, body) = match size > host.largest_whole.load(Ordering::Relaxed) {
            true => {
                let (replay, body) = Replay::record(body);
                (Some(replay), body)
            }
            false => (None, body),
        };
        url.query_pairs_mut().append_pair("digest", digest);
        let url = url.to_string();
        let put = Call {
            method: Method::PUT,
            path: &url,
            content_type: Some("application/octet-stream"),
            content_length: Some(size),
            body: Some(CallBody::Once(Some(body))),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(&host, &scope, put).await?;
        match f.status.as_u16() {
            201 | 204 => {
                host.largest_whole.fetch_max(size, Ordering::Relaxed);
                Ok(())
            }
            413 => {
                host.chunked.store(true, Ordering::Relaxed);
                match replay.and_then(Replay::rewind) {
                    Some(body) => {
                        // The refused session may hold part of the body: a new one starts clean.
                        let url = self.start_upload(&host, &scope, image).await?;
                        self.upload_chunks(&host, &scope, url, digest, body).await
                    }
                    None => Err(RegistryError::Interrupted {
                        host: host.name.clone(),
                        what: format!(
                            "refused a whole blob in one request (HTTP 413) after reading more than {} MiB of it; it and later uploads go in 1 MiB chunks",
                            REPLAY_LIMIT >> 20
                        ),
                    }),
                }
            }
            _ => Err(unexpected(&host, "blob upload", &f)),
        }
    }

    /// Opens an upload session: the URL its chunks and final `PUT` go to.
    async fn start_upload(
        &self,
        host: &super::Host,
        scope: &str,
        image: &Reference,
    ) -> Result<reqwest::Url, RegistryError> {
        let path = format!("/v2/{}/blobs/uploads/", image.path());
        let start = Call {
            method: Method::POST,
            path: &path,
            body: Some(CallBody::Bytes(Bytes::new())),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(host, scope, start).await?;
        if f.status.as_u16() != 202 {
            return Err(unexpected(host, &path, &f));
        }
        next_location(host, &path, &f)
    }

    /// Sends `body` in `CHUNK`-byte `PATCH`es, then closes the upload with its digest.
    async fn upload_chunks(
        &self,
        host: &super::Host,
        scope: &str,
        mut url: reqwest::Url,
        digest: &str,
        mut body: ByteStream,
    ) -> Result<(), RegistryError> {
        let mut buffer = BytesMut::with_capacity(CHUNK);
        let mut offset = 0u64;
        let mut source_done = false;
        loop {
            while !source_done && buffer.len() < CHUNK {
                match body.next().await {
                    Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
                    Some(Err(e)) => {
                        return Err(RegistryError::Protocol {
                            host: host.name.clone(),
                            what: format!("reading the blob to upload: {e}"),
                        });
                    }
                    None => source_done = true,
                }
            }
            if buffer.is_empty() {
                break;
            }
            // What does not fit in this chunk starts the next one.
            let chunk = buffer.split_to(buffer.len().min(CHUNK)).freeze();
            let end = offset + chunk.len() as u64 - 1;
            let target = url.to_string();
            let patch = Call {
                method: Method::PATCH,
                path: &target,
                content_type: Some("application/octet-stream"),
                content_range: Some(format!("{offset}-{end}")),
                body: Some(CallBody::Bytes(chunk)),
                limit: 64 << 10,
                ..Call::default()
            };
            let f = self.exchange(host, scope, patch).await?;
            if f.status.as_u16() != 202 {
                return Err(unexpected(host, "blob chunk upload", &f));
            }
            url = next_location(host, "blob chunk upload", &f)?;
            offset = end + 1;
        }
        url.query_pairs_mut().append_pair("digest", digest);
        let target = url.to_string();
        let put = Call {
            method: Method::PUT,
            path: &target,
            body: Some(CallBody::Bytes(Bytes::new())),
            limit: 64 << 10,
            ..Call::default()
        };
        let f = self.exchange(host, scope, put).await?;
        match f.status.as_u16() {
            201 | 204 => Ok(()),
            _ => Err(unexpected(host, "blob upload", &f)),
        }
    }

    /// Stores a manifest's bytes under `image`'s tag or digest.
    pub(crate) async fn put_manifest(
        &self,
        image: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        self.put_manifest_answering(image, bytes, media_type)
            .await
            .map(|_| ())
    }

    /// [`Registry::put_manifest`] of a manifest with a `subject`: `true` when the registry
    /// answered with `OCI-Subject` (OCI 1.1: it lists the manifest in its referrers API itself),
    /// `false` when the writer must keep the subject's fallback tag.
    pub(crate) async fn put_referrer(
        &self,
        image: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<bool, RegistryError> {
        // Only an answer naming this manifest's own subject says the registry indexed it.
        let own = serde_json::from_slice::<crate::oci::ImageManifest>(&bytes)
            .ok()
            .and_then(|m| m.subject)
            .map(|s| s.digest.to_string());
        let subject = self
            .put_manifest_answering(image, bytes, media_type)
            .await?;
        Ok(subject.is_some() && subject == own)
    }

    /// PUT of a manifest; the registry's `OCI-Subject` header, if it sent one.
    async fn put_manifest_answering(
        &self,
        image: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Option<String>, RegistryError> {
        let host = self.host(hub::api_host(image.domain()))?;
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
            200..=299 => Ok(f
                .headers
                .get("oci-subject")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            _ => Err(unexpected(&host, &path, &f)),
        }
    }
}
