//! A blob stream that checks its own digest and size as it passes, so that a corrupt or short
//! blob fails its upload instead of landing in the mirror.

use std::pin::Pin;
use std::task::{Context, Poll};

use crate::oci::Sha256Writer;
use bytes::Bytes;
use futures_util::Stream;

use super::ByteStream;

struct Verified {
    inner: ByteStream,
    /// Where the verdict goes when the content is wrong, for the caller to report plainly
    /// (the HTTP client buries a body error under its own).
    verdict: Option<std::sync::Arc<std::sync::OnceLock<String>>>,
    hasher: Option<Sha256Writer>,
    seen: u64,
    digest: String,
    size: u64,
    what: String,
}

/// Wraps `inner`: it ends with an error instead of its last chunk when the bytes were not
/// `size` long or did not hash to `digest` (sha256 only; other algorithms pass through). The
/// error is also written to `verdict`, for the caller to report plainly.
pub(crate) fn verified(
    inner: ByteStream,
    digest: &str,
    size: u64,
    what: String,
    verdict: Option<std::sync::Arc<std::sync::OnceLock<String>>>,
) -> ByteStream {
    Box::pin(Verified {
        inner,
        verdict,
        hasher: digest.starts_with("sha256:").then(Sha256Writer::new),
        seen: 0,
        digest: digest.to_string(),
        size,
        what,
    })
}

impl Stream for Verified {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let result = this.check(cx);
        if let (Poll::Ready(Some(Err(e))), Some(verdict)) = (&result, &this.verdict)
            && e.kind() == std::io::ErrorKind::InvalidData
        {
            let _ = verdict.set(e.to_string());
        }
        result
    }
}

impl Verified {
    /// The mismatch error, once, when the content does not hash to the digest.
    fn finish_hash(&mut self) -> Option<std::io::Error> {
        let got = self.hasher.take()?.finish();
        (got != self.digest).then(|| {
            invalid(format!(
                "{}: content hashes to {got}, not {}",
                self.what, self.digest
            ))
        })
    }

    fn check(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        let this = self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.size {
                    return Poll::Ready(Some(Err(invalid(format!(
                        "{}: more than the {} bytes its descriptor gives",
                        this.what, this.size
                    )))));
                }
                if let Some(h) = &mut this.hasher {
                    h.update(&chunk);
                }
                // Judged on the last byte, not at the end of the stream: an HTTP client stops
                // reading once Content-Length bytes went out, so the end may never be polled.
                if this.seen == this.size
                    && let Some(e) = this.finish_hash()
                {
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                if this.seen != this.size {
                    return Poll::Ready(Some(Err(invalid(format!(
                        "{}: {} bytes, its descriptor gives {}",
                        this.what, this.seen, this.size
                    )))));
                }
                match this.finish_hash() {
                    Some(e) => Poll::Ready(Some(Err(e))),
                    None => Poll::Ready(None),
                }
            }
            other => other,
        }
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    fn stream(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn drain(mut s: ByteStream) -> Result<usize, String> {
        let mut n = 0;
        while let Some(item) = s.next().await {
            n += item.map_err(|e| e.to_string())?.len();
        }
        Ok(n)
    }

    #[tokio::test]
    async fn good_bad_and_short_blobs() {
        let digest = crate::oci::Digest::sha256(b"hello world");
        let verdict = std::sync::Arc::new(std::sync::OnceLock::new());
        let ok = verified(
            stream(&[b"hello ", b"world"]),
            &digest,
            11,
            "blob".into(),
            Some(verdict.clone()),
        );
        assert_eq!(drain(ok).await, Ok(11));
        assert!(verdict.get().is_none());
        let bad = verified(
            stream(&[b"hello ", b"WORLD"]),
            &digest,
            11,
            "blob".into(),
            Some(verdict.clone()),
        );
        assert!(drain(bad).await.unwrap_err().contains("hashes to"));
        assert!(verdict.get().is_some_and(|v| v.contains("hashes to")));
        let short = verified(stream(&[b"hello"]), &digest, 11, "blob".into(), None);
        assert!(drain(short).await.unwrap_err().contains("5 bytes"));
        let long = verified(stream(&[b"hello world!"]), &digest, 11, "blob".into(), None);
        assert!(drain(long).await.unwrap_err().contains("more than"));
    }
}
