//! Telegram Bot API.
//!
//! - Webhook: Telegram POSTs one `Update` per request with the header
//!   `X-Telegram-Bot-Api-Secret-Token` set to the `secret_token` given to `setWebhook`
//!   ([`Telegram::set_webhook`] registers it); requests without the right token are refused.
//! - Updates are de-duplicated on `update_id` (it is the provider message id), so Telegram's
//!   retries are stored once.
//! - Messages (text, photo, video, voice, audio, document, location) and inline-keyboard button
//!   presses (`callback_query`) become [`InboundMessage`]s; the identity is the chat id, which is
//!   where replies go.
//! - Sending: `sendMessage`, `sendPhoto`, `sendVideo`, `sendAudio`, `sendDocument`,
//!   `sendLocation`; a rich card is a message with an inline keyboard (link buttons for URLs,
//!   callback buttons otherwise).
//!
//! Inbound media is referenced as `telegram-file:{file_id}` (download with `getFile`; the
//! download URL embeds the bot token, so it is never stored).

mod config;

use async_trait::async_trait;
use chrono::DateTime;
use cs_core::{ChannelId, ChannelKind, Content, ContentKind, DeliveryStatus, Identity};
use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

pub use self::config::TelegramConfig;
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundMessage, InboundResponse, OutboundMessage, Parsed,
    RawInbound, SendReceipt,
};
use crate::client::{HttpClient, HttpSettings, join_url};
use crate::error::{Error, Result};
use crate::inbound::{REDACTED, check_size, constant_time_eq, header, json_body};

/// The header Telegram sets to the webhook's secret token.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Configures a [`Telegram`] channel.
#[derive(Clone)]
pub struct TelegramBuilder {
    id: ChannelId,
    bot_token: Option<String>,
    secret_token: Option<String>,
    http: HttpSettings,
}

impl std::fmt::Debug for TelegramBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramBuilder")
            .field("id", &self.id)
            .field("bot_token", &self.bot_token.as_ref().map(|_| REDACTED))
            .field(
                "secret_token",
                &self.secret_token.as_ref().map(|_| REDACTED),
            )
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl TelegramBuilder {
    /// A Telegram channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            http: HttpSettings::default(),
            id,
            bot_token: None,
            secret_token: None,
        }
    }

    /// The bot token from @BotFather.
    pub fn with_bot_token(mut self, token: impl Into<String>) -> Self {
        self.bot_token = Some(token.into());
        self
    }

    /// The webhook secret token: 1-256 characters of `A-Z a-z 0-9 _ -`.
    pub fn with_secret_token(mut self, token: impl Into<String>) -> Self {
        self.secret_token = Some(token.into());
        self
    }

    crate::client::http_settings_setters!();

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without a bot token, or without a secret token of 1-256
    /// characters of `A-Z a-z 0-9 _ -` (Telegram's rule).
    pub fn build(self) -> Result<Telegram> {
        let bot_token = self
            .bot_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid("Telegram needs a bot token"))?;
        let secret_token = self
            .secret_token
            .filter(|t| {
                (1..=256).contains(&t.len())
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
            .ok_or_else(|| {
                Error::invalid("Telegram needs a secret token of 1-256 of A-Z a-z 0-9 _ -")
            })?;
        let mut capabilities = Capabilities::text_only();
        capabilities.content.extend([
            ContentKind::Image,
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::File,
            ContentKind::Location,
            ContentKind::RichCard,
        ]);
        capabilities.max_text_chars = Some(4096);
        // Files sent by URL: Telegram downloads up to 20 MB (5 MB for photos).
        capabilities.max_media_bytes = Some(20 * 1024 * 1024);
        Ok(Telegram {
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::Telegram,
                capabilities,
            },
            api: join_url(
                &self.http.base_url_or("https://api.telegram.org"),
                &format!("bot{bot_token}"),
            ),
            secret_token,
            max_body_bytes: self.http.max_body_bytes_or(256 * 1024),
            client: self.http.client("Telegram")?,
        })
    }
}

/// The Telegram Bot API channel (see the [module docs](self)).
pub struct Telegram {
    info: ChannelInfo,
    /// `{base}/bot{token}`: holds the token, never logged.
    api: String,
    secret_token: String,
    max_body_bytes: usize,
    client: HttpClient,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("info", &self.info)
            .field("api", &REDACTED)
            .field("secret_token", &REDACTED)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<TgMessage>,
    #[serde(default)]
    callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Deserialize)]
struct TgMessage {
    chat: Chat,
    #[serde(default)]
    from: Option<User>,
    date: i64,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    from: User,
    #[serde(default)]
    message: Option<TgMessage>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    description: Option<String>,
}

fn file_url(v: &Value) -> Option<String> {
    Some(format!("telegram-file:{}", v.get("file_id")?.as_str()?))
}

fn text_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_owned)
}

fn message_content(m: &serde_json::Map<String, Value>) -> Option<Content> {
    let caption = m.get("caption").and_then(Value::as_str).map(str::to_owned);
    if let Some(text) = m.get("text").and_then(Value::as_str) {
        return Some(Content::text(text));
    }
    if let Some(sizes) = m.get("photo").and_then(Value::as_array) {
        // Sizes come smallest first; keep the largest.
        return Some(Content::Image {
            url: file_url(sizes.last()?)?,
            caption,
        });
    }
    if let Some(v) = m.get("video") {
        return Some(Content::Video {
            url: file_url(v)?,
            caption,
        });
    }
    if let Some(v) = m.get("voice").or_else(|| m.get("audio")) {
        return Some(Content::Audio {
            url: file_url(v)?,
            transcript: caption,
        });
    }
    if let Some(v) = m.get("document") {
        return Some(Content::File {
            url: file_url(v)?,
            name: text_of(v, "file_name").unwrap_or_else(|| "document".into()),
            mime: text_of(v, "mime_type"),
            size: v.get("file_size").and_then(Value::as_u64),
        });
    }
    if let Some(v) = m.get("location") {
        return Some(Content::Location {
            latitude: v.get("latitude")?.as_f64()?,
            longitude: v.get("longitude")?.as_f64()?,
            label: None,
        });
    }
    None
}

fn display_name(user: &User) -> Option<String> {
    match (&user.first_name, &user.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    }
}

impl Telegram {
    /// Starts configuring a Telegram channel named `id`.
    pub fn builder(id: ChannelId) -> TelegramBuilder {
        TelegramBuilder::new(id)
    }

    /// Registers `url` (your public `/webhooks/{channel_id}` address) with Telegram, with this
    /// channel's secret token.
    ///
    /// # Errors
    /// [`Error::Unavailable`] or [`Error::Rejected`] as Telegram answers.
    pub async fn set_webhook(&self, url: &str) -> Result<()> {
        self.call(
            "setWebhook",
            &json!({"url": url, "secret_token": self.secret_token}),
        )
        .await
        .map(|_| ())
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value> {
        let url = join_url(&self.api, method);
        let response = self
            .client
            .execute(|http| http.post(&url).json(body))
            .await
            .map_err(redact_token)?;
        let answer: ApiAnswer = response.json("Telegram")?;
        if !answer.ok {
            return Err(Error::Rejected {
                reason: answer.description.unwrap_or_else(|| "not ok".into()),
            });
        }
        Ok(answer.result.unwrap_or(Value::Null))
    }

    fn message(
        &self,
        update_id: i64,
        m: TgMessage,
        content: Content,
        from: Option<&User>,
    ) -> InboundMessage {
        let from = from.or(m.from.as_ref());
        InboundMessage {
            channel: self.info.id.clone(),
            from: Identity::new(ChannelKind::Telegram, m.chat.id.to_string()),
            provider_message_id: Some(update_id.to_string()),
            content,
            display_name: from.and_then(display_name),
            language: from.and_then(|u| u.language_code.clone()),
            sent_at: DateTime::from_timestamp(m.date, 0),
        }
    }
}

/// Transport errors can quote the request URL, which holds the bot token.
fn redact_token(e: Error) -> Error {
    match e {
        Error::Unavailable { reason } => Error::Unavailable {
            reason: redact(&reason),
        },
        Error::Rejected { reason } => Error::Rejected {
            reason: redact(&reason),
        },
        other => other,
    }
}

fn redact(reason: &str) -> String {
    let Some(i) = reason.find("/bot") else {
        return reason.to_owned();
    };
    let rest = &reason[i + 4..];
    let end = rest
        .find(|c: char| c == '/' || c == ')' || c.is_whitespace())
        .unwrap_or(rest.len());
    format!("{}/bot{REDACTED}{}", &reason[..i], &rest[end..])
}

#[async_trait]
impl Channel for Telegram {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        if request.method != Method::POST {
            return Err(Error::invalid("Telegram updates are POSTed"));
        }
        check_size(&request.body, self.max_body_bytes)?;
        let token = header(&request.headers, SECRET_HEADER)
            .ok_or_else(|| Error::unauthenticated("missing X-Telegram-Bot-Api-Secret-Token"))?;
        if !constant_time_eq(token.as_bytes(), self.secret_token.as_bytes()) {
            return Err(Error::unauthenticated(
                "X-Telegram-Bot-Api-Secret-Token does not match",
            ));
        }
        let update: Update = json_body("Telegram", &request.body)?;
        let mut messages = Vec::new();
        if let Some(m) = update.message {
            // Service messages (members joining, pins...) carry nothing for the desk.
            if let Some(content) = message_content(&m.rest) {
                messages.push(self.message(update.update_id, m, content, None));
            }
        } else if let Some(q) = update.callback_query {
            let m = q
                .message
                .ok_or_else(|| Error::invalid("callback_query without its message"))?;
            let data = q.data.unwrap_or_default();
            let content = Content::Event {
                name: "callback_query".into(),
                data: json!({"data": data}),
            };
            messages.push(self.message(update.update_id, m, content, Some(&q.from)));
        }
        Ok(Parsed {
            messages,
            statuses: Vec::new(),
            response: InboundResponse::ok(),
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        if message.to.kind != ChannelKind::Telegram {
            return Err(Error::invalid(format!(
                "Telegram cannot reach identity {}",
                message.to
            )));
        }
        let chat_id = &message.to.external_id;
        let (method, body) = match &message.message.content {
            Content::Text { text } => ("sendMessage", json!({"chat_id": chat_id, "text": text})),
            Content::Image { url, caption } => (
                "sendPhoto",
                json!({"chat_id": chat_id, "photo": url, "caption": caption}),
            ),
            Content::Video { url, caption } => (
                "sendVideo",
                json!({"chat_id": chat_id, "video": url, "caption": caption}),
            ),
            Content::Audio { url, .. } => ("sendAudio", json!({"chat_id": chat_id, "audio": url})),
            Content::File { url, .. } => {
                ("sendDocument", json!({"chat_id": chat_id, "document": url}))
            }
            Content::Location {
                latitude,
                longitude,
                ..
            } => (
                "sendLocation",
                json!({"chat_id": chat_id, "latitude": latitude, "longitude": longitude}),
            ),
            Content::RichCard(card) => {
                let mut text = card.title.clone();
                if let Some(b) = &card.body {
                    text.push_str("\n\n");
                    text.push_str(b);
                }
                let keyboard: Vec<Vec<Value>> = card
                    .buttons
                    .iter()
                    .map(|b| {
                        let is_link =
                            b.value.starts_with("https://") || b.value.starts_with("http://");
                        if is_link {
                            vec![json!({"text": b.label, "url": b.value})]
                        } else {
                            // callback_data is limited to 64 bytes.
                            let data: String = b.value.chars().take(64).collect();
                            vec![json!({"text": b.label, "callback_data": data})]
                        }
                    })
                    .collect();
                (
                    "sendMessage",
                    json!({"chat_id": chat_id, "text": text,
                        "reply_markup": {"inline_keyboard": keyboard}}),
                )
            }
            other => {
                return Err(Error::Unsupported {
                    reason: format!("Telegram cannot carry {:?} content", other.kind()),
                });
            }
        };
        let result = self.call(method, &body).await?;
        Ok(SendReceipt {
            provider_message_id: result
                .get("message_id")
                .and_then(Value::as_i64)
                .map(|id| format!("{chat_id}:{id}")),
            status: DeliveryStatus::Sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_error_text() {
        let r = redact("error sending request for url (http://h/bot123:ABC/sendMessage)");
        assert!(!r.contains("123:ABC"), "{r}");
        assert!(r.contains("/sendMessage"));
    }
}
