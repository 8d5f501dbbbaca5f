#![doc = include_str!("../README.md")]
//!
//! ```
//! use marketplace_channel::Bazaar;
//! use cs_channels::Channel;
//!
//! let bazaar = Bazaar::builder("bazaar", "app-secret-from-the-console", "app-token")
//!     .with_base_url("http://127.0.0.1:9")
//!     .build()?;
//! assert_eq!(bazaar.info().id.as_str(), "bazaar");
//! # Ok::<(), cs_channels::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_channels::{
    Capabilities, Channel, ChannelInfo, Error, InboundMessage, InboundResponse, OutboundMessage,
    Parsed, RawInbound, Result, SendReceipt, limits,
};
use cs_core::{ChannelId, ChannelKind, Clock, Content, DeliveryStatus, Identity, SystemClock};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The header Bazaar signs its webhooks in: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-bazaar-signature";

/// The signature Bazaar puts in [`SIGNATURE_HEADER`]: HMAC-SHA256 with the app secret over
/// `"{timestamp}.{body}"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Builds a [`Bazaar`] channel.
pub struct BazaarBuilder {
    id: String,
    secret: Vec<u8>,
    app_token: String,
    base_url: String,
    replay_window: chrono::Duration,
    max_body_bytes: usize,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for BazaarBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BazaarBuilder")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("app_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl BazaarBuilder {
    /// The platform's API root (default `https://open.bazaar.example`).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// How old a signed request may be (default five minutes).
    pub fn with_replay_window(mut self, window: chrono::Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// The largest webhook body accepted (default 256 KiB).
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Time-out of one send (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock the replay window is measured by.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty secret or token or a bad channel id.
    pub fn build(self) -> Result<Bazaar> {
        if self.secret.len() < 8 {
            return Err(Error::invalid("the app secret must be at least 8 bytes"));
        }
        if self.app_token.is_empty() {
            return Err(Error::invalid("the app token is empty"));
        }
        let id = ChannelId::new(self.id).map_err(|e| Error::invalid(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::invalid(format!("cannot build the HTTP client: {e}")))?;
        let mut capabilities = Capabilities::text_only();
        capabilities.max_text_chars = Some(2_000);
        Ok(Bazaar {
            info: ChannelInfo {
                id,
                kind: ChannelKind::Webhook,
                capabilities,
            },
            secret: self.secret,
            app_token: self.app_token,
            base_url: self.base_url,
            replay_window: self.replay_window,
            max_body_bytes: self.max_body_bytes,
            clock: self.clock,
            http,
        })
    }
}

/// The Bazaar open platform's buyer chat as a [`Channel`].
pub struct Bazaar {
    info: ChannelInfo,
    secret: Vec<u8>,
    app_token: String,
    base_url: String,
    replay_window: chrono::Duration,
    max_body_bytes: usize,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
}

impl fmt::Debug for Bazaar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bazaar")
            .field("info", &self.info)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One webhook event.
#[derive(Debug, Deserialize)]
struct Event {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    buyer: Buyer,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct Buyer {
    id: String,
    #[serde(default)]
    nick: Option<String>,
}

/// Bazaar's answer to a send.
#[derive(Debug, Deserialize)]
struct SendAnswer {
    code: i64,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    msg_id: Option<String>,
}

impl Bazaar {
    /// Starts a builder with the channel id, the app secret that signs webhooks, and the app
    /// token that authorises sends.
    pub fn builder(
        id: impl Into<String>,
        secret: impl Into<Vec<u8>>,
        app_token: impl Into<String>,
    ) -> BazaarBuilder {
        BazaarBuilder {
            id: id.into(),
            secret: secret.into(),
            app_token: app_token.into(),
            base_url: "https://open.bazaar.example".into(),
            replay_window: chrono::Duration::minutes(5),
            max_body_bytes: 256 * 1024,
            timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks [`SIGNATURE_HEADER`] against the body, in constant time, within the replay window.
    fn verify(&self, request: &RawInbound) -> Result<()> {
        let header = request
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::unauthenticated("missing X-Bazaar-Signature"))?;
        let mut timestamp = None;
        let mut given = None;
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
                Some(("v1", v)) => given = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (Some(timestamp), Some(given)) = (timestamp, given) else {
            return Err(Error::unauthenticated("malformed X-Bazaar-Signature"));
        };
        let age = self.clock.now().timestamp() - timestamp;
        if age.abs() > self.replay_window.num_seconds() {
            return Err(Error::unauthenticated(
                "signature outside the replay window",
            ));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(&request.body);
        mac.verify_slice(&given)
            .map_err(|_| Error::unauthenticated("signature does not match"))
    }
}

#[async_trait]
impl Channel for Bazaar {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        // Size first, then the signature, then structure, then the parser.
        if request.body.len() > self.max_body_bytes {
            return Err(Error::PayloadTooLarge {
                size: request.body.len(),
                limit: self.max_body_bytes,
            });
        }
        self.verify(&request)?;
        limits::check_json(&request.body, limits::MAX_JSON_DEPTH)?;
        let event: Event = serde_json::from_slice(&request.body)
            .map_err(|e| Error::invalid(format!("not a Bazaar event: {e}")))?;
        let messages = match (event.kind.as_str(), event.text) {
            ("chat.message", Some(text)) if !text.trim().is_empty() => vec![InboundMessage {
                channel: self.info.id.clone(),
                from: Identity::new(ChannelKind::Webhook, event.buyer.id),
                provider_message_id: Some(event.event_id),
                content: Content::text(text),
                display_name: event.buyer.nick,
                language: None,
                sent_at: event.sent_at,
            }],
            ("chat.message", _) => return Err(Error::invalid("a chat message without text")),
            // Other events (buyer typing, order notices) are acknowledged and ignored.
            _ => Vec::new(),
        };
        Ok(Parsed {
            messages,
            statuses: Vec::new(),
            response: InboundResponse::ok(),
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        let Content::Text { text } = &message.message.content else {
            return Err(Error::Unsupported {
                reason: "Bazaar chat carries text only; adapt the content first".into(),
            });
        };
        let response = self
            .http
            .post(format!("{}/open/im/send", self.base_url))
            .bearer_auth(&self.app_token)
            .json(
                &serde_json::json!({"to": message.to.external_id, "text": text,
                                      "ref": message.message.id.to_string()}),
            )
            .send()
            .await
            .map_err(|e| Error::Unavailable {
                reason: format!("Bazaar is out of reach: {e}"),
            })?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Error::Unavailable {
                reason: format!("Bazaar answered {status}"),
            });
        }
        if !status.is_success() {
            return Err(Error::Rejected {
                reason: format!("Bazaar answered {status}"),
            });
        }
        let answer: SendAnswer = response.json().await.map_err(|e| Error::Rejected {
            reason: format!("Bazaar answered with an unexpected body: {e}"),
        })?;
        if answer.code != 0 {
            return Err(Error::Rejected {
                reason: format!(
                    "Bazaar refused the message: {} {}",
                    answer.code,
                    answer.msg.unwrap_or_default()
                ),
            });
        }
        Ok(SendReceipt {
            provider_message_id: answer.msg_id,
            status: DeliveryStatus::Sent,
        })
    }
}
