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

use std::sync::Arc;
use std::time::Duration;

use cs_core::Clock;
#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
use {
    crate::error::{Error, Result},
    bytes::Bytes,
    http::StatusCode,
};

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

/// The settings every HTTP adapter's builder shares (as object_store's `ClientOptions` serve every
/// cloud backend): the provider's API root, retries and time-out, the inbound body limit, and the
/// clock. One value can configure every adapter of a desk ([`HttpSettings::default`] keeps each
/// provider's own base URL and body limit):
///
/// ```
/// # #[cfg(all(feature = "telegram", feature = "sms"))] {
/// use std::time::Duration;
/// use cs_channels::client::{HttpSettings, RetryPolicy};
/// use cs_channels::{sms::Sms, telegram::Telegram};
/// use cs_core::ChannelId;
///
/// let shared = HttpSettings::default()
///     .with_retry(RetryPolicy { max_retries: 4, ..RetryPolicy::default() })
///     .with_timeout(Duration::from_secs(3));
/// let telegram = Telegram::builder(ChannelId::new("telegram")?)
///     .with_http(shared.clone())
///     .with_bot_token("123:ABC")
///     .with_secret_token("secret")
///     .build()?;
/// let sms = Sms::builder(ChannelId::new("sms")?)
///     .with_http(shared)
///     .with_base_url("http://127.0.0.1:9")
///     .with_account_sid("AC1")
///     .with_auth_token("token")
///     .with_from("+15550001111")
///     .with_webhook_url("https://shop.example/webhooks/sms")
///     .build()?;
/// # let _ = (telegram, sms);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct HttpSettings {
    /// The provider's API root; `None` keeps the adapter's default (tests point it at a mock).
    pub base_url: Option<String>,
    /// Retries of temporary failures and the per-attempt time-out.
    pub retry: RetryPolicy,
    /// The largest inbound webhook body accepted; `None` keeps the adapter's default.
    pub max_body_bytes: Option<usize>,
    /// The clock signatures' timestamps, reply windows and token expiry are measured by;
    /// `None` is the system clock.
    pub clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("base_url", &self.base_url)
            .field("retry", &self.retry)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl HttpSettings {
    /// Sets the provider's API root.
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets how temporary failures are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the time-out of one attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.retry.timeout = timeout;
        self
    }

    /// Sets the largest inbound body accepted.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
}

/// What the adapters read of their settings (built with the adapters).
#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
impl HttpSettings {
    /// The base URL, or the adapter's `default`.
    #[cfg(any(
        feature = "sms",
        feature = "wechat",
        feature = "whatsapp",
        feature = "telegram"
    ))]
    pub(crate) fn base_url_or(&self, default: &str) -> String {
        self.base_url.clone().unwrap_or_else(|| default.to_owned())
    }

    /// The body limit, or the adapter's `default`.
    pub(crate) fn max_body_bytes_or(&self, default: usize) -> usize {
        self.max_body_bytes.unwrap_or(default)
    }

    /// The clock, or the system clock.
    #[cfg(any(
        feature = "voice",
        feature = "webhook",
        feature = "wechat",
        feature = "whatsapp"
    ))]
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        self.clock
            .clone()
            .unwrap_or_else(|| Arc::new(cs_core::SystemClock))
    }

    /// The shared client for `provider` with these retries and time-out.
    pub(crate) fn client(&self, provider: &'static str) -> Result<HttpClient> {
        HttpClient::new(provider, self.retry)
    }
}

/// The builder setters every HTTP adapter has, written once: each builder holds an
/// `http: HttpSettings` field and invokes this macro inside its `impl` block. (With the
/// `http-client` feature alone no adapter invokes it.)
#[allow(unused_macros)]
macro_rules! http_settings_setters {
    () => {
        /// Replaces the shared HTTP settings at once (see [`crate::client::HttpSettings`]).
        pub fn with_http(mut self, settings: $crate::client::HttpSettings) -> Self {
            self.http = settings;
            self
        }

        /// The provider's API root (tests point it at a mock server).
        pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
            self.http.base_url = Some(url.into());
            self
        }

        /// The largest inbound webhook body accepted.
        pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
            self.http.max_body_bytes = Some(bytes);
            self
        }

        /// The clock timestamps, windows and token expiry are measured by.
        pub fn with_clock(mut self, clock: std::sync::Arc<dyn cs_core::Clock>) -> Self {
            self.http.clock = Some(clock);
            self
        }

        /// How temporary send failures are retried, and the time-out of one attempt.
        pub fn with_retry(mut self, retry: $crate::client::RetryPolicy) -> Self {
            self.http.retry = retry;
            self
        }

        /// The time-out of one outbound attempt.
        pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.http.retry.timeout = timeout;
            self
        }
    };
}
#[allow(unused_imports)]
pub(crate) use http_settings_setters;

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
/// A provider's successful answer.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    pub(crate) body: Bytes,
}

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
impl HttpResponse {
    /// Decodes the body as JSON.
    #[cfg(any(
        feature = "sms",
        feature = "wechat",
        feature = "whatsapp",
        feature = "telegram"
    ))]
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, provider: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Rejected {
            reason: format!("{provider} answered with an unexpected body: {e}"),
        })
    }
}

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
/// The shared client: a `reqwest::Client` plus the provider's name (for error messages) and the
/// retry policy.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    inner: reqwest::Client,
    provider: &'static str,
    retry: RetryPolicy,
}

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
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

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
/// Maps a transport failure: nothing reached the provider or the answer was cut off.
fn map_transport(provider: &str, e: &reqwest::Error) -> Error {
    if e.is_builder() {
        return Error::invalid(format!("{provider} request could not be built: {e}"));
    }
    Error::Unavailable {
        reason: format!("{provider} unreachable: {e}"),
    }
}

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
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

#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram"
))]
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
    #[cfg(any(
        feature = "sms",
        feature = "wechat",
        feature = "whatsapp",
        feature = "telegram",
        feature = "webhook"
    ))]
    fn statuses_map_by_meaning() {
        assert!(map_status("p", StatusCode::BAD_GATEWAY, b"").is_temporary());
        assert!(map_status("p", StatusCode::TOO_MANY_REQUESTS, b"").is_temporary());
        let e = map_status("p", StatusCode::BAD_REQUEST, b"bad number");
        assert!(matches!(&e, Error::Rejected { reason } if reason.contains("bad number")));
        assert!(!e.is_temporary());
    }

    #[test]
    #[cfg(any(
        feature = "sms",
        feature = "wechat",
        feature = "whatsapp",
        feature = "telegram"
    ))]
    fn urls_join_with_one_slash() {
        assert_eq!(join_url("http://a/", "/b"), "http://a/b");
        assert_eq!(join_url("http://a", "b"), "http://a/b");
    }
}
