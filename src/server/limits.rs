//! Limits on what strangers can send, configured in one place (`[limits]` of the config file):
//! customer messages per sender, new visitor sessions and sign-in attempts per address, a
//! lock-out after repeated wrong passwords for one agent name, request time-outs and body
//! sizes, the origins allowed to open the widget and console sockets, and the security headers
//! of every page.
//!
//! Each limit is answered with a typed error and a JSON reason (`429` with `Retry-After`, `403`,
//! `408`, `413`), never by dropping what was sent.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cs_channels::{Delivered, InboundHandler, InboundMessage, StatusUpdate};
use cs_core::{ChannelId, Identity, Message};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

/// The limits of the bundled service.
///
/// ```toml
/// [limits]
/// messages_per_minute = 30       # per customer identity, after a burst of
/// message_burst = 10
/// sessions_per_minute = 20       # new widget sessions per address
/// logins_per_minute = 10         # sign-in attempts per address
/// login_failures = 5             # wrong passwords in a row before one agent name is locked
/// lockout_seconds = 900
/// request_timeout_seconds = 15
/// max_body_bytes = 1048576
/// allowed_origins = ["https://www.shop.example"]   # pages that may open the sockets
/// widget_text_bytes = 4096       # longest widget message (UTF-8 bytes): an error frame
/// widget_frame_bytes = 65536     # largest widget frame: the socket closes with 1009
/// widget_socket_buffer_bytes = 4096   # read buffer each widget socket starts with
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Customer messages one identity may send per minute, sustained (default 30).
    pub messages_per_minute: u32,
    /// Messages one identity may send at once before the sustained rate applies (default 10).
    pub message_burst: u32,
    /// New visitor sessions per client address per minute (default 20, burst the same).
    pub sessions_per_minute: u32,
    /// Sign-in attempts per client address per minute (default 10, burst the same).
    pub logins_per_minute: u32,
    /// Wrong passwords in a row after which an agent name is locked (default 5).
    pub login_failures: u32,
    /// How long a locked agent name stays locked, in seconds (default 900).
    pub lockout_seconds: u64,
    /// Longest a request may take, in seconds (default 15; WebSockets are exempt once open).
    pub request_timeout_seconds: u64,
    /// Largest request body, in bytes (default 1 MiB; channels have their own, smaller ones).
    pub max_body_bytes: usize,
    /// Origins (`https://www.shop.example`) whose pages may open the widget and console
    /// WebSockets besides the service's own (default: none).
    pub allowed_origins: Vec<String>,
    /// Longest widget message text, in UTF-8 bytes (default 4,096); longer ones are refused
    /// with an error frame the widget shows on that message.
    pub widget_text_bytes: usize,
    /// Largest widget WebSocket frame, in bytes (default 65,536); a larger one closes the socket
    /// with code 1009.
    pub widget_frame_bytes: usize,
    /// The read buffer each widget socket starts with, in bytes (default 4,096): the main cost of
    /// an idle visitor.
    pub widget_socket_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            messages_per_minute: 30,
            message_burst: 10,
            sessions_per_minute: 20,
            logins_per_minute: 10,
            login_failures: 5,
            lockout_seconds: 900,
            request_timeout_seconds: 15,
            max_body_bytes: 1024 * 1024,
            allowed_origins: Vec::new(),
            widget_text_bytes: 4 * 1024,
            widget_frame_bytes: 64 * 1024,
            widget_socket_buffer_bytes: cs_channels::webchat::DEFAULT_SOCKET_BUFFER_BYTES,
        }
    }
}

impl Limits {
    /// Checks the values.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for a zero rate, burst or failure count.
    pub fn validate(&self) -> crate::Result<()> {
        let zero = [
            ("messages_per_minute", self.messages_per_minute),
            ("message_burst", self.message_burst),
            ("sessions_per_minute", self.sessions_per_minute),
            ("logins_per_minute", self.logins_per_minute),
            ("login_failures", self.login_failures),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0);
        if let Some((name, _)) = zero {
            return Err(crate::Error::Config {
                reason: format!("limits.{name} must be at least 1"),
            });
        }
        for origin in &self.allowed_origins {
            if !(origin.starts_with("https://") || origin.starts_with("http://"))
                || origin.ends_with('/')
            {
                return Err(crate::Error::Config {
                    reason: format!(
                        "limits.allowed_origins: {origin:?} should read like https://www.shop.example"
                    ),
                });
            }
        }
        Ok(())
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A per-key rate: `per_minute` sustained after `burst`.
#[derive(Debug)]
struct Rate<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Rate<K> {
    fn new(per_minute: u32, burst: u32) -> Self {
        let quota = Quota::per_minute(nonzero(per_minute)).allow_burst(nonzero(burst));
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// `Ok` when `key` may go on, else how long it must wait.
    fn check(&self, key: &K) -> Result<(), Duration> {
        use governor::clock::Clock as _;
        self.limiter
            .check_key(key)
            .map_err(|until| until.wait_time_from(governor::clock::DefaultClock::default().now()))
    }

    /// Forgets keys whose state is back to fresh (bounded memory under a flood of new keys).
    fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

/// The most agent names whose wrong passwords are counted at once.
const MAX_TRACKED_NAMES: usize = 100_000;

/// Wrong passwords of one agent name.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The limiter state of a running service.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    messages: Rate<Identity>,
    sessions: Rate<IpAddr>,
    logins: Rate<IpAddr>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Guard {
    /// The state for `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            messages: Rate::new(limits.messages_per_minute, limits.message_burst),
            sessions: Rate::new(limits.sessions_per_minute, limits.sessions_per_minute),
            logins: Rate::new(limits.logins_per_minute, limits.logins_per_minute),
            failures: Mutex::default(),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether an agent name is locked after too many wrong passwords: how long it still is.
    pub fn locked(&self, name: &str) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let until = failures.get(&name.trim().to_lowercase())?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a sign-in outcome for an agent name; a success clears the count.
    pub fn record_login(&self, name: &str, ok: bool) {
        let key = name.trim().to_lowercase();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            failures.remove(&key);
            return;
        }
        let now = Instant::now();
        // Names sprayed from many addresses cannot grow the map without bound: past the cap,
        // only the names locked right now are kept.
        if failures.len() >= MAX_TRACKED_NAMES {
            failures.retain(|_, f| f.locked_until.is_some_and(|t| t > now));
        }
        let entry = failures.entry(key).or_insert(Failures {
            count: 0,
            locked_until: None,
        });
        if entry.locked_until.is_some_and(|t| t <= now) {
            *entry = Failures {
                count: 0,
                locked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= self.limits.login_failures {
            entry.locked_until = Some(now + Duration::from_secs(self.limits.lockout_seconds));
        }
    }

    /// Forgets idle limiter keys; call now and then.
    pub fn forget_idle(&self) {
        self.messages.forget_idle();
        self.sessions.forget_idle();
        self.logins.forget_idle();
        let now = Instant::now();
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| f.locked_until.is_some_and(|t| t > now));
    }
}

/// A `429` with `Retry-After` and a JSON reason.
pub fn too_many(wait: Duration, what: &str) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(serde_json::json!({
            "error": "rate_limited",
            "reason": format!("{what}: try again in {seconds} s"),
            "retry_after": seconds,
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn client_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Limits new visitor sessions per address.
pub async fn limit_sessions(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(ip) = client_ip(&request)
        && let Err(wait) = guard.sessions.check(&ip)
    {
        return too_many(wait, "too many new chat sessions from this address");
    }
    next.run(request).await
}

/// Limits sign-in attempts per address.
pub async fn limit_logins(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(ip) = client_ip(&request)
        && let Err(wait) = guard.logins.check(&ip)
    {
        return too_many(wait, "too many sign-in attempts from this address");
    }
    next.run(request).await
}

/// Lets a WebSocket upgrade through only from the service's own pages or an allowed origin:
/// a page on another site cannot open a socket with the visitor's or agent's credentials.
/// Clients that are not browsers send no `Origin` and are not affected.
pub async fn check_origin(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    if !origin_allowed(request.headers(), &guard.limits.allowed_origins) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "forbidden_origin",
                "reason": "this page's origin may not open the socket; add it to limits.allowed_origins",
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// Whether a request's `Origin` is absent, the service's own (same host), or allowed.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Customer messages through any channel, limited per sender identity: a flood is refused with
/// [`cs_channels::Error::RateLimited`] (the widget shows it; a webhook answers 429, so the
/// provider retries later) before anything is stored or answered.
#[derive(Debug)]
pub struct LimitedHandler {
    inner: Arc<dyn InboundHandler>,
    guard: Arc<Guard>,
}

impl LimitedHandler {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn InboundHandler>, guard: Arc<Guard>) -> Self {
        Self { inner, guard }
    }
}

#[async_trait]
impl InboundHandler for LimitedHandler {
    async fn handle(&self, message: InboundMessage) -> cs_channels::Result<Delivered> {
        if let Err(retry_after) = self.guard.messages.check(&message.from) {
            return Err(cs_channels::Error::RateLimited { retry_after });
        }
        self.inner.handle(message).await
    }

    /// The context (an email thread) goes through to the engine with the message.
    async fn handle_with(
        &self,
        message: InboundMessage,
        context: cs_channels::InboundContext,
    ) -> cs_channels::Result<Delivered> {
        if let Err(retry_after) = self.guard.messages.check(&message.from) {
            return Err(cs_channels::Error::RateLimited { retry_after });
        }
        self.inner.handle_with(message, context).await
    }

    async fn history(
        &self,
        channel: &ChannelId,
        identity: &Identity,
        limit: usize,
    ) -> cs_channels::Result<Vec<Message>> {
        self.inner.history(channel, identity, limit).await
    }

    async fn status(&self, channel: &ChannelId, update: StatusUpdate) -> cs_channels::Result<()> {
        self.inner.status(channel, update).await
    }

    /// A rating counts against the sender's message allowance too (each one is a store look-up).
    async fn rate(
        &self,
        channel: &ChannelId,
        identity: &Identity,
        rating: cs_channels::Rating,
    ) -> cs_channels::Result<cs_channels::Rated> {
        if let Err(retry_after) = self.guard.messages.check(identity) {
            return Err(cs_channels::Error::RateLimited { retry_after });
        }
        self.inner.rate(channel, identity, rating).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_same_host_or_allowed_only() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("desk.example:8080"));
        assert!(origin_allowed(&h, &[]), "no Origin: not a browser");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://desk.example:8080"),
        );
        assert!(origin_allowed(&h, &[]));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!origin_allowed(&h, &[]));
        assert!(origin_allowed(&h, &["https://evil.example".into()]));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_allowed(&h, &[]));
    }

    #[test]
    fn a_name_is_locked_after_repeated_failures_and_freed_by_success() {
        let guard = Guard::new(Limits {
            login_failures: 3,
            ..Limits::default()
        });
        for _ in 0..2 {
            guard.record_login("Alice", false);
        }
        assert!(guard.locked("alice").is_none());
        guard.record_login("ALICE", false);
        assert!(
            guard
                .locked("alice")
                .is_some_and(|d| d > Duration::from_secs(800))
        );
        guard.record_login("bob", false);
        assert!(
            guard.locked("bob").is_none(),
            "one name's failures do not lock another"
        );
    }

    /// Records the context each message arrives with.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Option<String>>>);

    #[async_trait]
    impl InboundHandler for Recorder {
        async fn handle(&self, _message: InboundMessage) -> cs_channels::Result<Delivered> {
            self.0.lock().unwrap().push(None);
            Err(cs_channels::Error::invalid("recorded"))
        }

        async fn handle_with(
            &self,
            _message: InboundMessage,
            context: cs_channels::InboundContext,
        ) -> cs_channels::Result<Delivered> {
            self.0.lock().unwrap().push(context.thread);
            Err(cs_channels::Error::invalid("recorded"))
        }

        async fn history(
            &self,
            _channel: &ChannelId,
            _identity: &Identity,
            _limit: usize,
        ) -> cs_channels::Result<Vec<Message>> {
            Ok(Vec::new())
        }

        async fn status(&self, _channel: &ChannelId, _u: StatusUpdate) -> cs_channels::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_email_threads_context_passes_the_limiter_and_a_flood_does_not() {
        let recorder = Arc::new(Recorder::default());
        let guard = Arc::new(Guard::new(Limits {
            messages_per_minute: 1,
            message_burst: 1,
            ..Limits::default()
        }));
        let limited = LimitedHandler::new(recorder.clone(), guard);
        let message = InboundMessage {
            channel: ChannelId::new("mail").unwrap(),
            from: Identity::new(cs_core::ChannelKind::Email, "ann@example.com"),
            provider_message_id: Some("<m1@example.com>".into()),
            content: cs_core::Content::text("Where is my order?"),
            display_name: None,
            language: None,
            sent_at: None,
        };
        let context = cs_channels::InboundContext::thread("t-1");
        let _ = limited.handle_with(message.clone(), context.clone()).await;
        assert_eq!(*recorder.0.lock().unwrap(), vec![Some("t-1".to_owned())]);
        let flood = limited.handle_with(message, context).await;
        assert!(
            matches!(flood, Err(cs_channels::Error::RateLimited { .. })),
            "{flood:?}"
        );
        assert_eq!(
            recorder.0.lock().unwrap().len(),
            1,
            "the flood never reached the engine"
        );
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert!(Limits::default().validate().is_ok());
        let zero = Limits {
            message_burst: 0,
            ..Limits::default()
        };
        assert!(zero.validate().is_err());
        let slash = Limits {
            allowed_origins: vec!["https://shop.example/".into()],
            ..Limits::default()
        };
        assert!(slash.validate().is_err());
    }
}
