//! WeChat Official Account (微信公众号).
//!
//! - URL verification: WeChat GETs `signature`, `timestamp`, `nonce`, `echostr`; `signature` is
//!   hex SHA-1 over the sorted token, timestamp and nonce; we answer `echostr`.
//! - Messages: POSTed XML, signed the same way in the query string. In safe mode
//!   (`encrypt_type=aes`) the body carries `<Encrypt>`, signed by `msg_signature`, and is
//!   AES-256-CBC encrypted exactly as the official `WXBizMsgCrypt` SDK does ([`MsgCrypt`]).
//!   Requests whose `timestamp` is further than the replay window (default 5 minutes) from our
//!   clock are refused, and a signed `timestamp` + `nonce` pair is bound to the first request
//!   that used it (a later request with another body or method is refused; a retry of the same
//!   body is accepted and de-duplicated).
//! - Use safe mode. In plain mode the signature covers no body: whoever captures a signed URL
//!   can post one message of their choosing with it inside the replay window (the nonce binding
//!   stops a second). In safe mode `msg_signature` covers the encrypted body too. The XML is read
//!   as a bounded stream (depth and element limits) before and after decryption, so no body can
//!   exhaust the stack or memory.
//! - Kinds: text, image, voice (with WeChat's speech `Recognition` as transcript), video,
//!   short video, location, link, and events (`subscribe`, `unsubscribe`, `CLICK`, `VIEW`,
//!   `SCAN`, `LOCATION`...). Messages de-duplicate on `MsgId`; events, which have none, on
//!   `FromUserName` + `CreateTime` + `Event`, as WeChat's documentation recommends.
//! - Answer: `success` (WeChat then expects nothing more), or a passive text reply
//!   ([`WeChatBuilder::with_welcome`] answers `subscribe` events with a welcome text), encrypted
//!   in safe mode. WeChat waits 5 seconds: the router answers as soon as the message is stored;
//!   replies go out later through the customer-service message API ([`Channel::send`]), with the
//!   access token fetched and cached until it expires (and fetched again when WeChat says it is
//!   invalid or expired: errcode 40001, 40014, 42001).
//!
//! Inbound media is referenced as `wechat-media:{MediaId}` (fetch it with the temporary-media
//! API); images also carry WeChat's `PicUrl`, which is used directly.

mod config;
mod crypto;
mod replay;
mod xml;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use cs_core::{
    CardButton, ChannelId, ChannelKind, Clock, Content, ContentKind, DeliveryStatus, Identity,
    RichCard,
};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

pub use self::config::WeChatConfig;
pub use self::crypto::{MsgCrypt, signature};
use self::replay::ReplayCache;
pub use self::xml::text_reply;
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundMessage, InboundResponse, OutboundMessage, Parsed,
    RawInbound, SendReceipt,
};
use crate::client::{HttpClient, HttpSettings, join_url};
use crate::error::{Error, Result};
use crate::inbound::{REDACTED, check_size, param, query_pairs, required};

/// How long after the customer's last interaction customer-service messages may be sent.
const REPLY_WINDOW_HOURS: i64 = 48;
/// Tokens are refreshed this long before WeChat says they expire.
const TOKEN_MARGIN_SECS: i64 = 300;

/// Configures a [`WeChat`] channel.
#[derive(Clone)]
pub struct WeChatBuilder {
    id: ChannelId,
    token: Option<String>,
    app_id: Option<String>,
    app_secret: Option<String>,
    encoding_aes_key: Option<String>,
    welcome: Option<String>,
    replay_window: Duration,
    http: HttpSettings,
}

impl std::fmt::Debug for WeChatBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChatBuilder")
            .field("id", &self.id)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret.as_ref().map(|_| REDACTED))
            .field(
                "encoding_aes_key",
                &self.encoding_aes_key.as_ref().map(|_| REDACTED),
            )
            .field("http", &self.http)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

impl WeChatBuilder {
    /// A WeChat channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            http: HttpSettings::default(),
            id,
            token: None,
            app_id: None,
            app_secret: None,
            encoding_aes_key: None,
            welcome: None,
            replay_window: Duration::minutes(5),
        }
    }

    /// The Token set in the account's server configuration (signs every request).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The AppID.
    pub fn with_app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// The AppSecret (fetches access tokens).
    pub fn with_app_secret(mut self, secret: impl Into<String>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// The EncodingAESKey (43 characters): turns on safe mode.
    pub fn with_encoding_aes_key(mut self, key: impl Into<String>) -> Self {
        self.encoding_aes_key = Some(key.into());
        self
    }

    /// A text answered passively to every `subscribe` event.
    pub fn with_welcome(mut self, text: impl Into<String>) -> Self {
        self.welcome = Some(text.into());
        self
    }

    /// How far a request's `timestamp` may be from our clock (default 5 minutes).
    pub fn with_replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    crate::client::http_settings_setters!();

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without token, app id or app secret, or with a malformed
    /// EncodingAESKey.
    pub fn build(self) -> Result<WeChat> {
        let need = |v, what| required(v, "WeChat", what);
        let token = need(self.token, "a token")?;
        let app_id = need(self.app_id, "an app id")?;
        let crypt = self
            .encoding_aes_key
            .map(|k| MsgCrypt::new(&token, &k, &app_id))
            .transpose()?;
        let mut capabilities = Capabilities::text_only();
        // Customer-service messages carry text and link cards ("news") by URL; pictures, voice
        // and video need media uploaded to WeChat first, so they are sent as links.
        capabilities.content.insert(ContentKind::RichCard);
        // 2,048 bytes of UTF-8: 682 Chinese characters.
        capabilities.max_text_chars = Some(680);
        capabilities.reply_window = Some(Duration::hours(REPLY_WINDOW_HOURS));
        Ok(WeChat {
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::WeChat,
                capabilities,
            },
            app_secret: need(self.app_secret, "an app secret")?,
            token,
            app_id,
            crypt,
            welcome: self.welcome,
            base_url: self.http.base_url_or("https://api.weixin.qq.com"),
            replay_window: self.replay_window,
            max_body_bytes: self.http.max_body_bytes_or(64 * 1024),
            clock: self.http.clock(),
            client: self.http.client("WeChat")?,
            access_token: Mutex::new(None),
            replays: ReplayCache::default(),
        })
    }
}

/// The WeChat Official Account channel (see the [module docs](self)).
pub struct WeChat {
    info: ChannelInfo,
    token: String,
    app_id: String,
    app_secret: String,
    crypt: Option<MsgCrypt>,
    welcome: Option<String>,
    base_url: String,
    replay_window: Duration,
    max_body_bytes: usize,
    clock: Arc<dyn Clock>,
    client: HttpClient,
    access_token: Mutex<Option<(String, DateTime<Utc>)>>,
    replays: ReplayCache,
}

impl std::fmt::Debug for WeChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChat")
            .field("info", &self.info)
            .field("app_id", &self.app_id)
            .field("safe_mode", &self.crypt.is_some())
            .field("secrets", &REDACTED)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// Maps a WeChat `errcode` that is not 0.
fn api_error(a: &ApiAnswer) -> Error {
    let reason = format!("WeChat errcode {}: {}", a.errcode, a.errmsg);
    match a.errcode {
        // System busy, API frequency limits: try again later.
        -1 | 45009 | 45011 => Error::Unavailable { reason },
        // Out of the 48 h window, or over the messages allowed since the last interaction.
        45015 | 45047 => Error::ReplyWindowClosed {
            last_inbound: None,
            window: Duration::hours(REPLY_WINDOW_HOURS),
        },
        _ => Error::Rejected { reason },
    }
}

fn is_token_error(code: i64) -> bool {
    matches!(code, 40001 | 40014 | 42001)
}

fn media_ref(f: &BTreeMap<String, String>) -> Option<String> {
    f.get("MediaId").map(|id| format!("wechat-media:{id}"))
}

/// The content of one inbound WeChat message or event.
fn content(f: &BTreeMap<String, String>) -> Result<Content> {
    let get = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let need =
        |k: &str| get(k).ok_or_else(|| Error::invalid(format!("WeChat message without {k}")));
    let kind = need("MsgType")?;
    Ok(match kind.as_str() {
        "text" => Content::text(need("Content")?),
        "image" => Content::Image {
            url: get("PicUrl")
                .or_else(|| media_ref(f))
                .ok_or_else(|| Error::invalid("WeChat image without PicUrl"))?,
            caption: None,
        },
        "voice" => Content::Audio {
            url: media_ref(f).ok_or_else(|| Error::invalid("WeChat voice without MediaId"))?,
            transcript: get("Recognition"),
        },
        "video" | "shortvideo" => Content::Video {
            url: media_ref(f).ok_or_else(|| Error::invalid("WeChat video without MediaId"))?,
            caption: None,
        },
        "location" => {
            let coord = |k: &str| {
                need(k)?
                    .parse::<f64>()
                    .map_err(|_| Error::invalid(format!("WeChat {k} is not a number")))
            };
            Content::Location {
                latitude: coord("Location_X")?,
                longitude: coord("Location_Y")?,
                label: get("Label"),
            }
        }
        "link" => Content::RichCard(RichCard {
            title: need("Title")?,
            body: get("Description"),
            image_url: None,
            buttons: vec![CardButton {
                label: "Open".into(),
                value: need("Url")?,
            }],
        }),
        "event" => {
            let name = need("Event")?.to_ascii_lowercase();
            let skip = [
                "ToUserName",
                "FromUserName",
                "CreateTime",
                "MsgType",
                "Event",
            ];
            let data: serde_json::Map<String, Value> = f
                .iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            Content::Event {
                name,
                data: Value::Object(data),
            }
        }
        other => {
            return Err(Error::invalid(format!("unknown WeChat MsgType {other:?}")));
        }
    })
}

impl WeChat {
    /// Starts configuring a WeChat channel named `id`.
    pub fn builder(id: ChannelId) -> WeChatBuilder {
        WeChatBuilder::new(id)
    }

    /// Whether safe mode (encryption) is configured.
    pub fn safe_mode(&self) -> bool {
        self.crypt.is_some()
    }

    /// Checks `signature`, the timestamp's distance from now, and that the signed pair was not
    /// used before for another method or body (`body` is `None` for the verification GET).
    fn verify_query(
        &self,
        q: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<(String, String)> {
        let get = |k: &str| {
            param(q, k)
                .map(str::to_owned)
                .ok_or_else(|| Error::unauthenticated(format!("missing {k}")))
        };
        let (sig, ts, nonce) = (get("signature")?, get("timestamp")?, get("nonce")?);
        crypto::check_signature(&signature(&[&self.token, &ts, &nonce]), &sig)?;
        let when: i64 = ts
            .parse()
            .map_err(|_| Error::unauthenticated("timestamp is not a Unix time"))?;
        let now = self.clock.now().timestamp();
        let window = self.replay_window.num_seconds();
        let age = (now - when).abs();
        if age > window {
            return Err(Error::unauthenticated(format!(
                "timestamp {age} s away from now, outside the replay window"
            )));
        }
        self.replays.check(when, &nonce, body, now, window)?;
        Ok((ts, nonce))
    }

    fn plain_text(text: String, content_type: &'static str) -> InboundResponse {
        InboundResponse {
            status: StatusCode::OK,
            content_type: Some(content_type),
            body: Bytes::from(text),
        }
    }

    /// Verifies a message POST and returns its (decrypted) XML.
    fn open(
        &self,
        request: &RawInbound,
        q: &[(String, String)],
    ) -> Result<(String, String, String)> {
        let (ts, nonce) = self.verify_query(q, Some(&request.body))?;
        let body = std::str::from_utf8(&request.body)
            .map_err(|_| Error::invalid("WeChat body is not UTF-8"))?;
        let encrypted = param(q, "encrypt_type") == Some("aes");
        match (&self.crypt, encrypted) {
            (Some(crypt), true) => {
                let outer = xml::fields(body)?;
                let enc = outer
                    .get("Encrypt")
                    .ok_or_else(|| Error::invalid("safe-mode body without <Encrypt>"))?;
                let msg_sig = param(q, "msg_signature")
                    .ok_or_else(|| Error::unauthenticated("missing msg_signature"))?;
                let inner = crypt.verify_and_decrypt(msg_sig, &ts, &nonce, enc)?;
                Ok((inner, ts, nonce))
            }
            (Some(_), false) => Err(Error::unauthenticated(
                "safe mode is on: plain-text messages are refused",
            )),
            (None, true) => Err(Error::invalid(
                "encrypted message but no EncodingAESKey configured",
            )),
            (None, false) => Ok((body.to_owned(), ts, nonce)),
        }
    }

    async fn access_token(&self) -> Result<String> {
        let mut slot = self.access_token.lock().await;
        let now = self.clock.now();
        if let Some((token, expires)) = slot.as_ref()
            && now < *expires
        {
            return Ok(token.clone());
        }
        let url = join_url(&self.base_url, "cgi-bin/token");
        let response = self
            .client
            .execute(|http| {
                http.get(&url).query(&[
                    ("grant_type", "client_credential"),
                    ("appid", self.app_id.as_str()),
                    ("secret", self.app_secret.as_str()),
                ])
            })
            .await
            .map_err(|e| redact_secret(e, &self.app_secret))?;
        let answer: ApiAnswer = response.json("WeChat")?;
        let (Some(token), 0) = (answer.access_token.clone(), answer.errcode) else {
            return Err(api_error(&answer));
        };
        let lifetime = answer.expires_in.unwrap_or(7200);
        let expires = now + Duration::seconds((lifetime - TOKEN_MARGIN_SECS).max(lifetime / 2));
        *slot = Some((token.clone(), expires));
        Ok(token)
    }

    async fn forget_token(&self, token: &str) {
        let mut slot = self.access_token.lock().await;
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }

    async fn post_custom(&self, body: &Value) -> Result<ApiAnswer> {
        let url = join_url(&self.base_url, "cgi-bin/message/custom/send");
        let token = self.access_token().await?;
        let response = self
            .client
            .execute(|http| {
                http.post(&url)
                    .query(&[("access_token", &token)])
                    .json(body)
            })
            .await
            .map_err(|e| redact_secret(e, &token))?;
        let answer: ApiAnswer = response.json("WeChat")?;
        if is_token_error(answer.errcode) {
            self.forget_token(&token).await;
        }
        Ok(answer)
    }
}

/// Transport errors can quote the request URL, which holds the secret or token.
fn redact_secret(e: Error, secret: &str) -> Error {
    match e {
        Error::Unavailable { reason } => Error::Unavailable {
            reason: reason.replace(secret, REDACTED),
        },
        Error::Rejected { reason } => Error::Rejected {
            reason: reason.replace(secret, REDACTED),
        },
        other => other,
    }
}

#[async_trait]
impl Channel for WeChat {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        check_size(&request.body, self.max_body_bytes)?;
        let q = query_pairs(&request.uri);
        let empty = |response| Parsed {
            messages: Vec::new(),
            statuses: Vec::new(),
            response,
        };
        if request.method == Method::GET {
            self.verify_query(&q, None)?;
            let echo = param(&q, "echostr").ok_or_else(|| Error::invalid("missing echostr"))?;
            return Ok(empty(Self::plain_text(echo.to_owned(), "text/plain")));
        }
        if request.method != Method::POST {
            return Err(Error::invalid("WeChat webhooks are GET or POST"));
        }
        let (xml_text, ts, nonce) = self.open(&request, &q)?;
        let f = xml::fields(&xml_text)?;
        let from = f
            .get("FromUserName")
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .ok_or_else(|| Error::invalid("WeChat message without FromUserName"))?;
        let created: i64 = f
            .get("CreateTime")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| Error::invalid("WeChat message without CreateTime"))?;
        let content = content(&f)?;
        let provider_message_id = match (f.get("MsgId"), f.get("Event")) {
            (Some(id), _) if !id.is_empty() => id.clone(),
            (_, Some(event)) => format!("{from}:{created}:{event}"),
            _ => return Err(Error::invalid("WeChat message without MsgId")),
        };
        let is_subscribe = matches!(&content, Content::Event { name, .. } if name == "subscribe");
        let response = match (&self.welcome, is_subscribe, f.get("ToUserName")) {
            (Some(text), true, Some(account)) => {
                let reply = text_reply(from, account, self.clock.now().timestamp(), text);
                let body = match &self.crypt {
                    Some(c) if param(&q, "encrypt_type") == Some("aes") => {
                        c.seal_reply(&reply, &ts, &nonce)
                    }
                    _ => reply,
                };
                Self::plain_text(body, "application/xml")
            }
            _ => Self::plain_text("success".into(), "text/plain"),
        };
        Ok(Parsed {
            messages: vec![InboundMessage {
                channel: self.info.id.clone(),
                from: Identity::new(ChannelKind::WeChat, from.clone()),
                provider_message_id: Some(provider_message_id),
                content,
                display_name: None,
                language: None,
                sent_at: DateTime::from_timestamp(created, 0),
            }],
            statuses: Vec::new(),
            response,
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        if message.to.kind != ChannelKind::WeChat {
            return Err(Error::invalid(format!(
                "WeChat cannot reach identity {}",
                message.to
            )));
        }
        let to = &message.to.external_id;
        let body = match &message.message.content {
            Content::Text { text } => {
                json!({"touser": to, "msgtype": "text", "text": {"content": text}})
            }
            Content::RichCard(card) => json!({
                "touser": to,
                "msgtype": "news",
                "news": {"articles": [{
                    "title": card.title,
                    "description": card.body,
                    "url": card.buttons.first().map(|b| b.value.as_str()),
                    "picurl": card.image_url,
                }]},
            }),
            other => {
                return Err(Error::Unsupported {
                    reason: format!(
                        "WeChat customer-service messages need uploaded media for {:?}",
                        other.kind()
                    ),
                });
            }
        };
        let mut answer = self.post_custom(&body).await?;
        if is_token_error(answer.errcode) {
            // The cached token was revoked or expired early: fetch a new one, once.
            answer = self.post_custom(&body).await?;
        }
        if answer.errcode != 0 {
            return Err(api_error(&answer));
        }
        Ok(SendReceipt {
            provider_message_id: None,
            status: DeliveryStatus::Sent,
        })
    }
}
