//! When to try a request again, and how long to wait first.
//!
//! Registries shed load with 429 and 503 and drop connections under pressure; a copy of a few
//! thousand images must ride that out. But a registry that is down must fail the command in
//! seconds, not after a thousand slow timeouts: the number of attempts and every wait are
//! bounded, and the caller latches a host that exhausted its attempts.

use std::time::{Duration, SystemTime};

/// How many times and how patiently a request is retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first wait; each later wait doubles it.
    pub base_delay: Duration,
    /// No computed wait is longer.
    pub max_delay: Duration,
    /// A server's `Retry-After` is honoured up to this; a longer one is cut to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next` (2 for the first retry). `retry_after` is the server's
    /// word and wins over the computed backoff, within `max_retry_after`.
    pub(crate) fn delay(&self, next: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let doubling = self
            .base_delay
            .saturating_mul(1 << next.saturating_sub(2).min(16));
        let capped = doubling.min(self.max_delay);
        // Up to 25% jitter, so that many waiting requests do not return in one burst.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        capped + capped.mul_f64(f64::from(nanos % 250) / 1000.0)
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Statuses that a later attempt may not get: overload and gateway trouble.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        let d2 = p.delay(2, None);
        assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(250));
        let d4 = p.delay(4, None);
        assert!(d4 >= Duration::from_millis(800) && d4 <= Duration::from_millis(1000));
        assert!(p.delay(30, None) <= Duration::from_secs(5));
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(600))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
