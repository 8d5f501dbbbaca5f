//! One axum router for every webhook channel: each configured instance answers at
//! `/webhooks/{channel_id}` (GET for the providers' URL verification, POST for events), and what
//! it parses goes to an [`InboundHandler`]. Mount it in your own app:
//!
//! ```no_run
//! # async fn run(
//! #     whatsapp: std::sync::Arc<dyn cs_channels::Channel>,
//! #     handler: std::sync::Arc<dyn cs_channels::InboundHandler>,
//! # ) -> cs_channels::Result<()> {
//! use cs_channels::router::WebhookRouter;
//!
//! let webhooks = WebhookRouter::new(handler).with_channel(whatsapp).build()?;
//! let app = axum::Router::new().merge(webhooks);
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! Answers: the channel's own response (an echo string, passive reply XML, TwiML...) on success;
//! `401` for a missing, forged or expired signature, `400` for a malformed payload, `413` for an
//! oversized one, `404` for an unknown channel id, `503` when the engine failed temporarily (the
//! provider retries, and de-duplication on the provider's message id keeps the retry from being
//! stored twice) and `500` otherwise. Error bodies are `{"error": code, "reason": ..}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use cs_core::{ChannelId, Clock};

use crate::channel::{Channel, InboundHandler, InboundResponse, RawInbound};
use crate::error::{Error, Result};

/// The path every channel is mounted at.
pub const WEBHOOK_PATH: &str = "/webhooks/{channel_id}";

/// Hands one raw request to `channel` and everything it parsed to `handler`: messages in order,
/// then receipts. Returns what to answer the provider.
///
/// # Errors
/// The channel's error when the request is refused (nothing reaches the handler), or the
/// handler's error when it fails to take a message or receipt.
pub async fn deliver(
    channel: &dyn Channel,
    handler: &dyn InboundHandler,
    request: RawInbound,
) -> Result<InboundResponse> {
    let parsed = channel.parse_inbound(request).await?;
    let id = &channel.info().id;
    for message in parsed.messages {
        let delivered = handler.handle(message).await?;
        if delivered.duplicate {
            tracing::debug!(channel = %id, message = %delivered.message.id, "duplicate delivery");
        }
    }
    for status in parsed.statuses {
        handler.status(id, status).await?;
    }
    Ok(parsed.response)
}

/// The HTTP status a webhook error is answered with.
pub fn status_for(error: &Error) -> StatusCode {
    match error {
        Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        Error::InvalidInput { .. } | Error::Unsupported { .. } => StatusCode::BAD_REQUEST,
        Error::PayloadTooLarge { .. } | Error::TooComplex { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        e if e.is_temporary() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// One webhook channel as configured (e.g. a `[[channels]]` table of TOML): `kind` names the
/// adapter (`wechat`, `whatsapp`, `telegram`, `sms`, `webhook`, `voice`), the other keys are its
/// settings.
///
/// ```
/// # #[cfg(feature = "webhook")] {
/// let config: cs_channels::router::ChannelConfig = serde_json::from_str(
///     r#"{"kind": "webhook", "id": "jd", "secret": "a secret of 16+ bytes"}"#,
/// ).unwrap();
/// let channel = config.build(std::sync::Arc::new(cs_core::SystemClock)).unwrap();
/// assert_eq!(channel.info().id.as_str(), "jd");
/// # }
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelConfig {
    /// WeChat Official Account.
    #[cfg(feature = "wechat")]
    Wechat(crate::wechat::WeChatConfig),
    /// WhatsApp Cloud API.
    #[cfg(feature = "whatsapp")]
    Whatsapp(crate::whatsapp::WhatsAppConfig),
    /// Telegram Bot API.
    #[cfg(feature = "telegram")]
    Telegram(crate::telegram::TelegramConfig),
    /// Twilio-style SMS.
    #[cfg(feature = "sms")]
    Sms(crate::sms::SmsConfig),
    /// The generic signed JSON webhook.
    #[cfg(feature = "webhook")]
    Webhook(crate::webhook::WebhookConfig),
    /// Voice calls through an IVR menu (TwiML webhook).
    #[cfg(feature = "voice")]
    Voice(crate::voice::VoiceConfig),
}

impl ChannelConfig {
    /// Builds the channel; `clock` serves the adapters that check timestamps or token expiry.
    ///
    /// # Errors
    /// The adapter builder's [`Error::InvalidInput`] for missing or malformed settings.
    // With no adapter feature the enum is empty and the match below is unreachable.
    #[allow(unreachable_code)]
    pub fn build(self, clock: Arc<dyn Clock>) -> Result<Arc<dyn Channel>> {
        let _ = &clock;
        Ok(match self {
            #[cfg(feature = "wechat")]
            Self::Wechat(c) => Arc::new(c.builder().with_clock(clock).build()?),
            #[cfg(feature = "whatsapp")]
            Self::Whatsapp(c) => Arc::new(c.builder().with_clock(clock).build()?),
            #[cfg(feature = "telegram")]
            Self::Telegram(c) => Arc::new(c.builder().build()?),
            #[cfg(feature = "sms")]
            Self::Sms(c) => Arc::new(c.builder().build()?),
            #[cfg(feature = "webhook")]
            Self::Webhook(c) => Arc::new(c.builder().with_clock(clock).build()?),
            #[cfg(feature = "voice")]
            Self::Voice(c) => Arc::new(c.builder()?.with_clock(clock).build()?),
        })
    }
}

/// Builds the webhook router.
#[derive(Debug)]
pub struct WebhookRouter {
    handler: Arc<dyn InboundHandler>,
    channels: Vec<Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
    max_body_bytes: usize,
}

impl WebhookRouter {
    /// A router feeding `handler`, with no channels yet.
    pub fn new(handler: Arc<dyn InboundHandler>) -> Self {
        Self {
            handler,
            channels: Vec::new(),
            clock: Arc::new(cs_core::SystemClock),
            max_body_bytes: 1024 * 1024,
        }
    }

    /// Mounts `channel` at `/webhooks/{its id}`.
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.push(channel);
        self
    }

    /// Mounts every channel of `channels`.
    pub fn with_channels(mut self, channels: impl IntoIterator<Item = Arc<dyn Channel>>) -> Self {
        self.channels.extend(channels);
        self
    }

    /// The clock that stamps [`RawInbound::received_at`].
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The most body bytes read at all (default 1 MiB); each channel applies its own, lower,
    /// limit too. Larger requests are answered `413`.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The router.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when two channels share an id.
    pub fn build(self) -> Result<Router> {
        let mut channels = HashMap::new();
        for c in self.channels {
            let id = c.info().id.clone();
            if channels.insert(id.clone(), c).is_some() {
                return Err(Error::invalid(format!("channel id {id} mounted twice")));
            }
        }
        let state = Mounted {
            channels: Arc::new(channels),
            handler: self.handler,
            clock: self.clock,
            max_body_bytes: self.max_body_bytes,
        };
        Ok(Router::new()
            .route(WEBHOOK_PATH, any(webhook))
            .layer(DefaultBodyLimit::max(self.max_body_bytes))
            .with_state(state))
    }
}

#[derive(Debug, Clone)]
struct Mounted {
    channels: Arc<HashMap<ChannelId, Arc<dyn Channel>>>,
    handler: Arc<dyn InboundHandler>,
    clock: Arc<dyn Clock>,
    max_body_bytes: usize,
}

async fn webhook(
    State(s): State<Mounted>,
    Path(channel_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        // axum answers a body over the limit in plain text; providers and our callers get the
        // same JSON as every other refusal.
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let e = Error::PayloadTooLarge {
                size: content_length(&headers).unwrap_or(s.max_body_bytes + 1),
                limit: s.max_body_bytes,
            };
            return error_response(status_for(&e), e.code(), &e.to_string());
        }
        Err(rejection) => {
            let e = Error::invalid(rejection.body_text());
            return error_response(rejection.status(), e.code(), &e.to_string());
        }
    };
    let Some(channel) = ChannelId::new(&channel_id)
        .ok()
        .and_then(|id| s.channels.get(&id).cloned())
    else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no channel {channel_id:?}"),
        );
    };
    let request = RawInbound {
        method,
        uri,
        headers,
        body,
        received_at: s.clock.now(),
    };
    match deliver(channel.as_ref(), s.handler.as_ref(), request).await {
        Ok(r) => {
            let mut response = (r.status, r.body).into_response();
            if let Some(ct) = r.content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
            }
            response
        }
        Err(e) => {
            tracing::warn!(channel = %channel_id, error = %e, "webhook refused");
            error_response(status_for(&e), e.code(), &e.to_string())
        }
    }
}

/// The `Content-Length` a request declared, if any.
fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn error_response(status: StatusCode, code: &str, reason: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": code, "reason": reason})),
    )
        .into_response()
}
