//! The outbound HTTP client every HTTP adapter shares: one place for timeouts, retry with
//! exponential backoff on temporary failures, and the mapping of transport errors and HTTP
//! statuses to [`Error`] (as object_store's `client/` module does for its stores).
//!
//! - connection failures, timeouts, `429` and `5xx` answers are [`Error::Unavailable`]
//!   (temporary) and are retried up to [`RetryPolicy::max_retries`] times;
//! - other `4xx` answers are [`Error::Rejected`] (permanent) and are not retried.
//!
//! Providers that report errors inside a `200` body (WeChat's `errcode`, Telegram's `ok`) map
//! those themselves after the HTTP exchange succeeds.

#![cfg_attr(
    not(all(
        feature = "wechat",
        feature = "whatsapp",
        feature = "telegram",
        feature = "sms",
        feature = "webhook"
    )),
    allow(dead_code)
)]

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How the shared HTTP client retries temporary failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 2).
    pub max_retries: u32,
    /// The wait before the first retry; doubled for each further one (default 200 ms).
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (default 5 s).
    pub max_backoff: Duration,
    /// Timeout of one attempt (default 10 s).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries: every temporary failure is reported at once (the caller's outbox retries).
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A provider's successful answer.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    pub(crate) body: Bytes,
}

impl HttpResponse {
    /// Decodes the body as JSON.
    pub(crate) fn json<T: DeserializeOwned>(&self, provider: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Rejected {
            reason: format!("{provider} answered with an unexpected body: {e}"),
        })
    }
}

/// The shared client: a `reqwest::Client` plus the provider's name (for error messages) and the
/// retry policy.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    inner: reqwest::Client,
    provider: &'static str,
    retry: RetryPolicy,
}

impl HttpClient {
    pub(crate) fn new(provider: &'static str, retry: RetryPolicy) -> Result<Self> {
        let inner = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("omnidesk-cs-channels/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner,
            provider,
            retry,
        })
    }

    /// Sends the request `build` makes, retrying temporary failures per the policy. `2xx`
    /// answers come back; everything else is an error (see the module docs).
    pub(crate) async fn execute<F>(&self, build: F) -> Result<HttpResponse>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
    {
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(build(&self.inner)).await;
            match outcome {
                Err(e) if e.is_temporary() && attempt < self.retry.max_retries => {
                    attempt += 1;
                    let wait = self.retry.backoff(attempt);
                    tracing::debug!(provider = self.provider, attempt, ?wait, error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<HttpResponse> {
        let response = request
            .send()
            .await
            .map_err(|e| map_transport(self.provider, &e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| map_transport(self.provider, &e))?;
        if status.is_success() {
            return Ok(HttpResponse { body });
        }
        Err(map_status(self.provider, status, &body))
    }
}

/// Maps a transport failure: nothing reached the provider or the answer was cut off.
fn map_transport(provider: &str, e: &reqwest::Error) -> Error {
    if e.is_builder() {
        return Error::invalid(format!("{provider} request could not be built: {e}"));
    }
    Error::Unavailable {
        reason: format!("{provider} unreachable: {e}"),
    }
}

/// Maps a non-success HTTP status: `429`, `408` and `5xx` are temporary, other `4xx` permanent.
pub(crate) fn map_status(provider: &str, status: StatusCode, body: &[u8]) -> Error {
    let excerpt: String = String::from_utf8_lossy(body).chars().take(300).collect();
    let reason = format!("{provider} answered {status}: {excerpt}");
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Error::Unavailable { reason }
    } else {
        Error::Rejected { reason }
    }
}

/// Joins a configured base URL and a path without doubling or dropping the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
        assert_eq!(p.backoff(40), Duration::from_millis(500));
    }

    #[test]
    fn statuses_map_by_meaning() {
        assert!(map_status("p", StatusCode::BAD_GATEWAY, b"").is_temporary());
        assert!(map_status("p", StatusCode::TOO_MANY_REQUESTS, b"").is_temporary());
        let e = map_status("p", StatusCode::BAD_REQUEST, b"bad number");
        assert!(matches!(&e, Error::Rejected { reason } if reason.contains("bad number")));
        assert!(!e.is_temporary());
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(join_url("http://a/", "/b"), "http://a/b");
        assert_eq!(join_url("http://a", "b"), "http://a/b");
    }
}
