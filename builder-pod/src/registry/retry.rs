//! Retry discipline (threats-and-faults §4.2 R1/R2, §7 promise 10).
//!
//! The policy is oras-go's `DefaultPolicy` (registry/remote/retry/policy.go): 5 retries,
//! 250 ms × 2ⁿ with ±10 % jitter clamped to [200 ms, 10 s], and a server's `Retry-After` honoured
//! up to 60 s. What is retried is decided by [`RegistryError::retry_hint`]: 408, 429, 5xx (except
//! 501/505), connection failures and resets, and a failed redirect target (R7). 400, 403 and
//! 404 `NAME_UNKNOWN`/`MANIFEST_UNKNOWN` never are.

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::RegistryError;
use super::httpdate;

/// How often and how long to wait before trying again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before retry n (0-based) is `base × 2ⁿ`, jittered, then clamped to [min, max].
    pub base: Duration,
    pub min: Duration,
    pub max: Duration,
    /// Relative jitter: 0.1 means ±10 %.
    pub jitter: f64,
    /// The most a `Retry-After` header can make us wait.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base: Duration::from_millis(250),
            min: Duration::from_millis(200),
            max: Duration::from_secs(10),
            jitter: 0.1,
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `retry` (0-based). `retry_after` is the server's wish, if any;
    /// `unit_random` is uniform in [0, 1) (passed in so this stays a pure function).
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>, unit_random: f64) -> Duration {
        if let Some(wish) = retry_after {
            return wish.min(self.retry_after_cap);
        }
        let exponential = self.base.as_secs_f64() * 2f64.powi(retry.min(30) as i32);
        let jittered = exponential * (1.0 + self.jitter * (2.0 * unit_random - 1.0));
        Duration::from_secs_f64(jittered.clamp(self.min.as_secs_f64(), self.max.as_secs_f64()))
    }
}

/// Whether an HTTP status is worth retrying as such.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status) && !matches!(status, 501 | 505)
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past
/// means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Runs `operation` until it succeeds, fails permanently, or the policy's retries are spent.
/// Each call of `operation` must be a complete, idempotent attempt (for a download: request,
/// body and verification), so that a retry never continues a half-done one.
pub async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut operation: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut retry = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) => match err.retry_hint() {
                Some(retry_after) if retry < policy.max_retries => {
                    let wait = policy.backoff(retry, retry_after, rand::random::<f64>());
                    tracing::warn!(operation = what, retry = retry + 1, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Some(_) => {
                    return Err(RegistryError::RetriesExhausted {
                        operation: what.to_owned(),
                        attempts: retry + 1,
                        last: Box::new(err),
                    });
                }
                None => return Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_clamps() {
        let p = RetryPolicy::default();
        let ms = |retry, r| p.backoff(retry, None, r).as_millis();
        // Middle of the jitter range is the pure exponential.
        assert_eq!(
            [ms(0, 0.5), ms(1, 0.5), ms(2, 0.5), ms(3, 0.5), ms(4, 0.5)],
            [250, 500, 1000, 2000, 4000]
        );
        // ±10 %.
        assert_eq!(ms(2, 0.0), 900);
        assert!((1099..=1100).contains(&ms(2, 0.999_999)));
        // Clamped to [200 ms, 10 s].
        assert_eq!(ms(0, 0.0), 225);
        let small = RetryPolicy {
            base: Duration::from_millis(10),
            ..p.clone()
        };
        assert_eq!(small.backoff(0, None, 0.5), Duration::from_millis(200));
        assert_eq!(ms(10, 0.5), 10_000);
        assert_eq!(ms(u32::MAX, 0.5), 10_000);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(3)), 0.5),
            Duration::from_secs(3)
        );
        assert_eq!(p.backoff(4, Some(Duration::ZERO), 0.5), Duration::ZERO);
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(86_400)), 0.5),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let table = [
            ("7", Some(Duration::from_secs(7))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "Sun, 06 Nov 1994 08:49:47 GMT",
                Some(Duration::from_secs(10)),
            ),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            ("-1", None),
            ("soon", None),
            ("1.5", None),
        ];
        for (value, expected) in table {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 201, 202, 400, 401, 403, 404, 405, 409, 416, 501, 505] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }
}
