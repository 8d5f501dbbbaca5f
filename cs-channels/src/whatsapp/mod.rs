//! WhatsApp Cloud API (Meta Graph API).
//!
//! - `GET` webhook verification: `hub.mode=subscribe`, `hub.verify_token` equal to the configured
//!   verify token, answered with `hub.challenge`.
//! - `POST` notifications: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body under the
//!   app secret>`; `messages` become [`InboundMessage`]s (id `wamid...`, identity the `wa_id`),
//!   `statuses` become [`StatusUpdate`]s.
//! - Sending: `POST {base}/{version}/{phone_number_id}/messages` with the access token.
//! - The customer-service window: free-form messages may only go out within 24 hours of the
//!   customer's last message; [`Channel::send`] refuses with [`Error::ReplyWindowClosed`] outside
//!   it (and maps Meta's error 131047 to the same). The channel learns the last message time
//!   from the webhooks it parses; after a restart, prime it with [`WhatsApp::record_inbound`]
//!   from your store.
//! - Outside the window only approved templates may be sent: send
//!   `Content::Event { name: "whatsapp_template", data: {"name": .., "language": "en_US",
//!   "components": [..]} }` ([`TEMPLATE_EVENT`]); templates are not held to the window.
//!
//! Media in inbound messages is referenced by Meta media id, as the URL
//! `{base}/{version}/{media_id}` (the Graph node that returns a short-lived download URL for a
//! request carrying the access token).

mod config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use cs_core::{ChannelId, ChannelKind, Clock, Content, ContentKind, DeliveryStatus, Identity};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

pub use self::config::WhatsAppConfig;
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundMessage, InboundResponse, OutboundMessage, Parsed,
    RawInbound, SendReceipt, StatusUpdate,
};
use crate::client::{HttpClient, HttpSettings, join_url};
use crate::error::{Error, Result};
use crate::inbound::{
    REDACTED, check_size, constant_time_eq, header, hmac_sha256, json_body, param, query_pairs,
    required,
};

/// The signature header Meta sets on webhook notifications.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The [`Content::Event`] name that sends an approved message template.
pub const TEMPLATE_EVENT: &str = "whatsapp_template";
/// Meta's error code for a free-form message outside the 24 h window.
const REENGAGEMENT_ERROR: i64 = 131_047;

/// The `X-Hub-Signature-256` value for `body` under `app_secret`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(app_secret, &[body])))
}

/// Configures a [`WhatsApp`] channel.
#[derive(Clone)]
pub struct WhatsAppBuilder {
    id: ChannelId,
    app_secret: Option<String>,
    verify_token: Option<String>,
    access_token: Option<String>,
    phone_number_id: Option<String>,
    api_version: String,
    window: Duration,
    http: HttpSettings,
}

impl std::fmt::Debug for WhatsAppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppBuilder")
            .field("id", &self.id)
            .field("app_secret", &self.app_secret.as_ref().map(|_| REDACTED))
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| REDACTED),
            )
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| REDACTED),
            )
            .field("phone_number_id", &self.phone_number_id)
            .field("http", &self.http)
            .field("api_version", &self.api_version)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl WhatsAppBuilder {
    /// A WhatsApp channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            http: HttpSettings::default(),
            id,
            app_secret: None,
            verify_token: None,
            access_token: None,
            phone_number_id: None,
            api_version: "v21.0".into(),
            window: Duration::hours(24),
        }
    }

    /// The Meta app secret that signs webhook notifications.
    pub fn with_app_secret(mut self, secret: impl Into<String>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// The verify token you entered in the app's webhook settings.
    pub fn with_verify_token(mut self, token: impl Into<String>) -> Self {
        self.verify_token = Some(token.into());
        self
    }

    /// The (system user) access token for the send API.
    pub fn with_access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// The business phone number id messages are sent from.
    pub fn with_phone_number_id(mut self, id: impl Into<String>) -> Self {
        self.phone_number_id = Some(id.into());
        self
    }

    /// The Graph API version (default `v21.0`).
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// The customer-service window (default 24 hours, as Meta's policy sets it).
    pub fn with_reply_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    crate::client::http_settings_setters!();

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the app secret, verify token, access token or phone number
    /// id is missing or empty.
    pub fn build(self) -> Result<WhatsApp> {
        let need = |v, what| required(v, "WhatsApp", what);
        let mut capabilities = Capabilities::text_only();
        capabilities.content.extend([
            ContentKind::Image,
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::File,
            ContentKind::Location,
        ]);
        capabilities.read_receipts = true;
        capabilities.max_text_chars = Some(4096);
        capabilities.max_media_bytes = Some(16 * 1024 * 1024);
        capabilities.reply_window = Some(self.window);
        Ok(WhatsApp {
            app_secret: need(self.app_secret, "an app secret")?,
            verify_token: need(self.verify_token, "a verify token")?,
            access_token: need(self.access_token, "an access token")?,
            phone_number_id: need(self.phone_number_id, "a phone number id")?,
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::WhatsApp,
                capabilities,
            },
            graph: join_url(
                &self.http.base_url_or("https://graph.facebook.com"),
                &self.api_version,
            ),
            window: self.window,
            max_body_bytes: self.http.max_body_bytes_or(512 * 1024),
            clock: self.http.clock(),
            client: self.http.client("WhatsApp")?,
            last_inbound: Mutex::new(HashMap::new()),
        })
    }
}

/// The WhatsApp Cloud API channel (see the [module docs](self)).
pub struct WhatsApp {
    info: ChannelInfo,
    app_secret: String,
    verify_token: String,
    access_token: String,
    phone_number_id: String,
    graph: String,
    window: Duration,
    max_body_bytes: usize,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    last_inbound: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsApp")
            .field("info", &self.info)
            .field("phone_number_id", &self.phone_number_id)
            .field("graph", &self.graph)
            .field("secrets", &REDACTED)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Notification {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    field: String,
    value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    messages: Vec<WaMessage>,
    #[serde(default)]
    statuses: Vec<WaStatus>,
}

#[derive(Debug, Deserialize)]
struct Contact {
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WaMessage {
    id: String,
    from: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct WaStatus {
    id: String,
    status: String,
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentId>,
}

#[derive(Debug, Deserialize)]
struct SentId {
    id: String,
}

fn unix_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(s?.parse().ok()?, 0)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

impl WhatsApp {
    /// Starts configuring a WhatsApp channel named `id`.
    pub fn builder(id: ChannelId) -> WhatsAppBuilder {
        WhatsAppBuilder::new(id)
    }

    /// Notes that `wa_id` wrote at `at`, opening (or extending) the customer-service window.
    /// Parsed webhooks do this themselves; call it to restore the state from your store.
    pub fn record_inbound(&self, wa_id: &str, at: DateTime<Utc>) {
        let mut map = self.last_inbound.lock().unwrap_or_else(|e| e.into_inner());
        let slot = map.entry(wa_id.to_owned()).or_insert(at);
        *slot = (*slot).max(at);
    }

    /// When `wa_id` last wrote, as far as this channel knows.
    pub fn last_inbound(&self, wa_id: &str) -> Option<DateTime<Utc>> {
        self.last_inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(wa_id)
            .copied()
    }

    fn verify_subscription(&self, request: &RawInbound) -> Result<Parsed> {
        let q = query_pairs(&request.uri);
        if param(&q, "hub.mode") != Some("subscribe") {
            return Err(Error::invalid("hub.mode must be subscribe"));
        }
        let token = param(&q, "hub.verify_token")
            .ok_or_else(|| Error::unauthenticated("missing hub.verify_token"))?;
        if !constant_time_eq(token.as_bytes(), self.verify_token.as_bytes()) {
            return Err(Error::unauthenticated("hub.verify_token does not match"));
        }
        let challenge =
            param(&q, "hub.challenge").ok_or_else(|| Error::invalid("missing hub.challenge"))?;
        Ok(Parsed {
            messages: Vec::new(),
            statuses: Vec::new(),
            response: InboundResponse {
                status: StatusCode::OK,
                content_type: Some("text/plain"),
                body: Bytes::from(challenge.to_owned()),
            },
        })
    }

    fn content(&self, m: &WaMessage) -> Content {
        let body = Value::Object(m.rest.clone());
        let media = |kind: &str| str_at(&body, &[kind, "id"]).map(|id| join_url(&self.graph, id));
        let caption = |kind: &str| str_at(&body, &[kind, "caption"]).map(str::to_owned);
        match m.kind.as_str() {
            "text" => Content::text(str_at(&body, &["text", "body"]).unwrap_or_default()),
            "image" | "sticker" => match media(&m.kind) {
                Some(url) => Content::Image {
                    url,
                    caption: caption(&m.kind),
                },
                None => self.event(m, &body),
            },
            "video" => match media("video") {
                Some(url) => Content::Video {
                    url,
                    caption: caption("video"),
                },
                None => self.event(m, &body),
            },
            "audio" => match media("audio") {
                Some(url) => Content::Audio {
                    url,
                    transcript: None,
                },
                None => self.event(m, &body),
            },
            "document" => match media("document") {
                Some(url) => Content::File {
                    url,
                    name: str_at(&body, &["document", "filename"])
                        .unwrap_or("document")
                        .to_owned(),
                    mime: str_at(&body, &["document", "mime_type"]).map(str::to_owned),
                    size: None,
                },
                None => self.event(m, &body),
            },
            "location" => {
                let coord = |k: &str| body.get("location")?.get(k)?.as_f64();
                match (coord("latitude"), coord("longitude")) {
                    (Some(latitude), Some(longitude)) => Content::Location {
                        latitude,
                        longitude,
                        label: str_at(&body, &["location", "name"])
                            .or_else(|| str_at(&body, &["location", "address"]))
                            .map(str::to_owned),
                    },
                    _ => self.event(m, &body),
                }
            }
            // A quick-reply button or a list choice: what the customer picked, as text.
            "button" => Content::text(str_at(&body, &["button", "text"]).unwrap_or_default()),
            "interactive" => Content::text(
                str_at(&body, &["interactive", "button_reply", "title"])
                    .or_else(|| str_at(&body, &["interactive", "list_reply", "title"]))
                    .unwrap_or_default(),
            ),
            _ => self.event(m, &body),
        }
    }

    fn event(&self, m: &WaMessage, body: &Value) -> Content {
        Content::Event {
            name: format!("whatsapp_{}", m.kind),
            data: body.clone(),
        }
    }

    fn notification(&self, request: &RawInbound) -> Result<Parsed> {
        check_size(&request.body, self.max_body_bytes)?;
        let signature = header(&request.headers, SIGNATURE_HEADER)
            .ok_or_else(|| Error::unauthenticated("missing X-Hub-Signature-256"))?;
        let expected = sign(self.app_secret.as_bytes(), &request.body);
        if !constant_time_eq(expected.as_bytes(), signature.trim().as_bytes()) {
            return Err(Error::unauthenticated("X-Hub-Signature-256 does not match"));
        }
        let n: Notification = json_body("WhatsApp", &request.body)?;
        if n.object != "whatsapp_business_account" {
            return Err(Error::invalid(format!("unexpected object {:?}", n.object)));
        }
        let mut parsed = Parsed {
            messages: Vec::new(),
            statuses: Vec::new(),
            response: InboundResponse::ok(),
        };
        for change in n.entry.into_iter().flat_map(|e| e.changes) {
            if change.field != "messages" {
                continue;
            }
            let v = change.value;
            for m in &v.messages {
                let display_name = v
                    .contacts
                    .iter()
                    .find(|c| c.wa_id == m.from)
                    .and_then(|c| c.profile.as_ref()?.name.clone());
                let sent_at = unix_time(m.timestamp.as_deref());
                self.record_inbound(&m.from, sent_at.unwrap_or(request.received_at));
                let content = self.content(m);
                if matches!(&content, Content::Text { text } if text.trim().is_empty()) {
                    return Err(Error::invalid(format!("message {} has no text", m.id)));
                }
                parsed.messages.push(InboundMessage {
                    channel: self.info.id.clone(),
                    from: Identity::new(ChannelKind::WhatsApp, m.from.clone()),
                    provider_message_id: Some(m.id.clone()),
                    content,
                    display_name,
                    language: None,
                    sent_at,
                });
            }
            for s in v.statuses {
                let status = match s.status.as_str() {
                    "sent" => DeliveryStatus::Sent,
                    "delivered" => DeliveryStatus::Delivered,
                    "read" => DeliveryStatus::Read,
                    "failed" => DeliveryStatus::Failed,
                    _ => continue,
                };
                parsed.statuses.push(StatusUpdate {
                    provider_message_id: s.id,
                    status,
                });
            }
        }
        Ok(parsed)
    }

    fn payload(&self, to: &str, content: &Content) -> Result<Value> {
        let (kind, body) = match content {
            Content::Text { text } => ("text", json!({"body": text, "preview_url": true})),
            Content::Image { url, caption } => ("image", json!({"link": url, "caption": caption})),
            Content::Video { url, caption } => ("video", json!({"link": url, "caption": caption})),
            Content::Audio { url, .. } => ("audio", json!({"link": url})),
            Content::File { url, name, .. } => ("document", json!({"link": url, "filename": name})),
            Content::Location {
                latitude,
                longitude,
                label,
            } => (
                "location",
                json!({"latitude": latitude, "longitude": longitude, "name": label}),
            ),
            Content::Event { name, data } if name == TEMPLATE_EVENT => {
                let template = data
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::invalid("a WhatsApp template needs a name"))?;
                let language = data
                    .get("language")
                    .and_then(Value::as_str)
                    .unwrap_or("en_US");
                let components = data.get("components").cloned().unwrap_or(json!([]));
                (
                    "template",
                    json!({"name": template, "language": {"code": language},
                        "components": components}),
                )
            }
            other => {
                return Err(Error::Unsupported {
                    reason: format!("WhatsApp cannot carry {:?} content", other.kind()),
                });
            }
        };
        let mut payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": kind,
        });
        payload[kind] = body;
        Ok(payload)
    }
}

#[async_trait]
impl Channel for WhatsApp {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        match request.method {
            Method::GET => self.verify_subscription(&request),
            Method::POST => self.notification(&request),
            _ => Err(Error::invalid("WhatsApp webhooks are GET or POST")),
        }
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        if message.to.kind != ChannelKind::WhatsApp {
            return Err(Error::invalid(format!(
                "WhatsApp cannot reach identity {}",
                message.to
            )));
        }
        let wa_id = &message.to.external_id;
        let last = self.last_inbound(wa_id);
        let template = matches!(&message.message.content, Content::Event { name, .. } if name == TEMPLATE_EVENT);
        if !template && last.is_none_or(|t| self.clock.now() - t > self.window) {
            return Err(Error::ReplyWindowClosed {
                last_inbound: last,
                window: self.window,
            });
        }
        let payload = self.payload(wa_id, &message.message.content)?;
        let url = join_url(&self.graph, &format!("{}/messages", self.phone_number_id));
        let response = self
            .client
            .execute(|http| {
                http.post(&url)
                    .bearer_auth(&self.access_token)
                    .json(&payload)
            })
            .await
            .map_err(|e| match e {
                Error::Rejected { reason }
                    if reason.contains(&format!("\"code\":{REENGAGEMENT_ERROR}")) =>
                {
                    Error::ReplyWindowClosed {
                        last_inbound: last,
                        window: self.window,
                    }
                }
                other => other,
            })?;
        let sent: SendResponse = response.json("WhatsApp")?;
        Ok(SendReceipt {
            provider_message_id: sent.messages.into_iter().next().map(|m| m.id),
            status: DeliveryStatus::Sent,
        })
    }
}
