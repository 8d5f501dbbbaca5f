//! A generic signed JSON webhook, for marketplaces and mini-programs with closed APIs (Taobao, JD,
//! Douyin...) and the shop's own app: a small bridge on their side posts JSON to us and receives
//! our replies as JSON on a callback URL.
//!
//! Both directions are signed the same way: header [`TIMESTAMP_HEADER`] carries the Unix time in
//! seconds, header [`SIGNATURE_HEADER`] carries `sha256=` and the lower-case hex
//! HMAC-SHA256 of `"{timestamp}." + body` under the shared secret (see [`sign`]). Requests whose
//! timestamp is further than the replay window (default 5 minutes) from our clock are refused, so
//! a captured request cannot be replayed later; within the window, the event `id` de-duplicates.
//!
//! Inbound body: one event or `{"events": [..]}` (at most 100), where an event is
//!
//! ```json
//! {"type": "message", "id": "evt-1", "from": "buyer-42", "display_name": "Li Lei",
//!  "language": "zh", "content": {"type": "text", "text": "Where is my parcel?"}}
//! {"type": "status", "message_id": "0193...", "status": "read"}
//! ```
//!
//! `content` is a [`cs_core::Content`] in its JSON form. Outbound, we POST
//! `{"id", "conversation", "to", "author", "content", "created_at"}` to the callback URL; a `2xx`
//! answer may carry `{"id": ..}`, the bridge's id for the message, which its later status
//! events name.

mod config;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cs_core::{ChannelId, ChannelKind, Clock, Content, ContentKind, DeliveryStatus, Identity};
use http::Method;
use serde::{Deserialize, Serialize};

pub use self::config::WebhookConfig;
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundMessage, InboundResponse, OutboundMessage, Parsed,
    RawInbound, SendReceipt, StatusUpdate,
};
use crate::client::{HttpClient, HttpSettings};
use crate::error::{Error, Result};
use crate::inbound::{REDACTED, check_size, constant_time_eq, header, hmac_sha256, json_body};

/// The header with the Unix timestamp (seconds) a request was signed at.
pub const TIMESTAMP_HEADER: &str = "x-omnidesk-timestamp";
/// The header with the signature, `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-omnidesk-signature";

const MAX_EVENTS: usize = 100;

/// The signature header value for `body` sent at `timestamp` (Unix seconds):
/// `sha256=` + hex HMAC-SHA256 of `"{timestamp}." + body`.
///
/// ```
/// let sig = cs_channels::webhook::sign(b"secret", 1_700_000_000, br#"{"type":"message"}"#);
/// assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
/// ```
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let tag = hmac_sha256(secret, &[ts.as_bytes(), b".", body]);
    format!("sha256={}", hex::encode(tag))
}

/// Configures a [`Webhook`] channel.
#[derive(Clone)]
pub struct WebhookBuilder {
    id: ChannelId,
    secret: Option<Vec<u8>>,
    callback_url: Option<String>,
    replay_window: Duration,
    http: HttpSettings,
}

impl std::fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookBuilder")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .field("callback_url", &self.callback_url)
            .field("replay_window", &self.replay_window)
            .field("http", &self.http)
            .finish()
    }
}

impl WebhookBuilder {
    /// A webhook channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            http: HttpSettings::default(),
            id,
            secret: None,
            callback_url: None,
            replay_window: Duration::minutes(5),
        }
    }

    /// The shared secret (at least 16 bytes) both sides sign with.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Where replies are posted. Without one the channel only receives.
    pub fn with_callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }

    /// How far a request's timestamp may be from our clock (default 5 minutes).
    pub fn with_replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    crate::client::http_settings_setters!();

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without a secret of at least 16 bytes, with a callback URL that is
    /// not `http(s)://`, or with a non-positive replay window.
    pub fn build(mut self) -> Result<Webhook> {
        // The callback URL is this provider's API root: `with_base_url` sets it too.
        self.callback_url = self.callback_url.or(self.http.base_url.take());
        let secret = self
            .secret
            .filter(|s| s.len() >= 16)
            .ok_or_else(|| Error::invalid("webhook needs a secret of at least 16 bytes"))?;
        if let Some(url) = &self.callback_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::invalid("webhook callback URL must be http(s)://"));
        }
        if self.replay_window <= Duration::zero() {
            return Err(Error::invalid("webhook replay window must be positive"));
        }
        let mut capabilities = Capabilities::text_only();
        capabilities.content.extend([
            ContentKind::Image,
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::File,
            ContentKind::Location,
            ContentKind::RichCard,
        ]);
        capabilities.read_receipts = true;
        Ok(Webhook {
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::Webhook,
                capabilities,
            },
            secret,
            callback_url: self.callback_url,
            replay_window: self.replay_window,
            max_body_bytes: self.http.max_body_bytes_or(256 * 1024),
            clock: self.http.clock(),
            client: self.http.client("webhook")?,
        })
    }
}

/// The generic signed JSON webhook channel (see the [module docs](self)).
pub struct Webhook {
    info: ChannelInfo,
    secret: Vec<u8>,
    callback_url: Option<String>,
    replay_window: Duration,
    max_body_bytes: usize,
    clock: Arc<dyn Clock>,
    client: HttpClient,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("info", &self.info)
            .field("secret", &REDACTED)
            .field("callback_url", &self.callback_url)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Batch { events: Vec<Event> },
    One(Event),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Event {
    Message {
        id: String,
        from: String,
        content: Content,
        #[serde(default)]
        display_name: Option<String>,
        #[serde(default)]
        language: Option<String>,
        #[serde(default)]
        sent_at: Option<DateTime<Utc>>,
    },
    Status {
        message_id: String,
        status: DeliveryStatus,
    },
}

#[derive(Debug, Serialize)]
struct Outgoing<'a> {
    id: String,
    conversation: String,
    to: &'a str,
    author: &'static str,
    content: &'a Content,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize)]
struct Accepted {
    #[serde(default)]
    id: Option<String>,
}

impl Webhook {
    /// Starts configuring a webhook channel named `id`.
    pub fn builder(id: ChannelId) -> WebhookBuilder {
        WebhookBuilder::new(id)
    }

    /// Checks the timestamp and signature headers of a request body.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when a header is missing, the timestamp is outside the replay
    /// window, or the signature does not match.
    pub fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<()> {
        let ts = header(headers, TIMESTAMP_HEADER)
            .ok_or_else(|| Error::unauthenticated("missing timestamp header"))?;
        let sig = header(headers, SIGNATURE_HEADER)
            .ok_or_else(|| Error::unauthenticated("missing signature header"))?;
        let ts: i64 = ts
            .parse()
            .map_err(|_| Error::unauthenticated("timestamp is not a Unix time"))?;
        let age = self.clock.now().timestamp().saturating_sub(ts).abs();
        if age > self.replay_window.num_seconds() {
            return Err(Error::unauthenticated(format!(
                "timestamp {age} s away from now, outside the replay window"
            )));
        }
        let expected = sign(&self.secret, ts, body);
        if !constant_time_eq(expected.as_bytes(), sig.trim().as_bytes()) {
            return Err(Error::unauthenticated("signature does not match"));
        }
        Ok(())
    }

    fn message(&self, event: Event) -> Result<Option<InboundMessage>> {
        let Event::Message {
            id,
            from,
            content,
            display_name,
            language,
            sent_at,
        } = event
        else {
            return Ok(None);
        };
        if from.trim().is_empty() || from.len() > 256 {
            return Err(Error::invalid("`from` must be 1-256 bytes"));
        }
        if id.trim().is_empty() || id.len() > 256 {
            return Err(Error::invalid("`id` must be 1-256 bytes"));
        }
        Ok(Some(InboundMessage {
            channel: self.info.id.clone(),
            from: Identity::new(ChannelKind::Webhook, from),
            provider_message_id: Some(id),
            content,
            display_name,
            language,
            sent_at,
        }))
    }
}

#[async_trait]
impl Channel for Webhook {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        if request.method != Method::POST {
            return Err(Error::invalid("webhook events are POSTed"));
        }
        check_size(&request.body, self.max_body_bytes)?;
        self.verify(&request.headers, &request.body)?;
        let events = match json_body::<Body>("webhook", &request.body)? {
            Body::Batch { events } => events,
            Body::One(e) => vec![e],
        };
        if events.len() > MAX_EVENTS {
            return Err(Error::invalid(format!(
                "at most {MAX_EVENTS} events per request"
            )));
        }
        let mut parsed = Parsed {
            messages: Vec::new(),
            statuses: Vec::new(),
            response: InboundResponse::ok(),
        };
        for event in events {
            if let Event::Status { message_id, status } = &event {
                parsed.statuses.push(StatusUpdate {
                    provider_message_id: message_id.clone(),
                    status: *status,
                });
            } else if let Some(m) = self.message(event)? {
                parsed.messages.push(m);
            }
        }
        Ok(parsed)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        let url = self
            .callback_url
            .as_deref()
            .ok_or_else(|| Error::Unsupported {
                reason: format!("webhook channel {} has no callback URL", self.info.id),
            })?;
        if message.to.kind != ChannelKind::Webhook {
            return Err(Error::invalid(format!(
                "webhook cannot reach identity {}",
                message.to
            )));
        }
        let m = &message.message;
        let body = serde_json::to_vec(&Outgoing {
            id: m.id.to_string(),
            conversation: m.conversation.to_string(),
            to: &message.to.external_id,
            author: m.author.role(),
            content: &m.content,
            created_at: m.created_at,
        })
        .map_err(|e| Error::invalid(format!("cannot encode message: {e}")))?;
        let response = self
            .client
            .execute(|http| {
                // Signed per attempt, so a retry after a long backoff is still inside the window.
                let ts = self.clock.now().timestamp();
                http.post(url)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(TIMESTAMP_HEADER, ts.to_string())
                    .header(SIGNATURE_HEADER, sign(&self.secret, ts, &body))
                    .body(body.clone())
            })
            .await?;
        let accepted: Accepted = serde_json::from_slice(&response.body).unwrap_or_default();
        Ok(SendReceipt {
            provider_message_id: Some(accepted.id.unwrap_or_else(|| m.id.to_string())),
            status: DeliveryStatus::Sent,
        })
    }
}
