//! Retries with backoff and `Retry-After`, for every call the host makes to
//! the outside on a guest's behalf (model providers, HTTP).

use rand::RngExt;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Longest `Retry-After` the host waits for; a longer one ends the retries.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// How a call retries.
#[derive(Clone, Copy, Debug)]
pub struct Retries {
    /// Attempts after the first.
    pub retries: u32,
    /// The first backoff; doubles per retry, with jitter.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// How one attempt ended, when it did not succeed.
pub enum Attempt<E> {
    /// Worth another try after `after` (or the backoff).
    Retry {
        error: E,
        after: Option<Duration>,
    },
    Fail(E),
}

/// Makes attempts until one succeeds, one fails for good, the retries run
/// out, a `Retry-After` is longer than [`MAX_RETRY_AFTER`], or the next
/// wait would pass `deadline`. Returns the value or the last error, each
/// with the number of attempts made.
pub async fn run<T, E, F, Fut>(
    r: Retries,
    deadline: Instant,
    what: &str,
    mut attempt: F,
) -> Result<(T, u32), (E, u32)>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (error, after) = match attempt(attempts).await {
            Ok(v) => return Ok((v, attempts)),
            Err(Attempt::Fail(e)) => return Err((e, attempts)),
            Err(Attempt::Retry { error, after }) => (error, after),
        };
        if attempts > r.retries {
            return Err((error, attempts));
        }
        let wait = match after {
            Some(a) if a > MAX_RETRY_AFTER => return Err((error, attempts)),
            Some(a) => a,
            None => backoff(r, attempts),
        };
        if Instant::now() + wait >= deadline {
            return Err((error, attempts));
        }
        tracing::debug!(what, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Exponential backoff with jitter: `backoff * 2^(n-1)`, capped, then a
/// random point in its upper half.
fn backoff(r: Retries, attempt: u32) -> Duration {
    let exp = r
        .backoff
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(r.max_backoff);
    let half = exp / 2;
    half + Duration::from_micros(rand::rng().random_range(0..=half.as_micros() as u64))
}

/// `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`.
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = h
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
