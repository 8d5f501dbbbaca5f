//! SMS and MMS through a Twilio-style provider.
//!
//! - Webhook: the provider POSTs an `application/x-www-form-urlencoded` form and signs it with
//!   `X-Twilio-Signature`: Base64 of HMAC-SHA1 under the auth token over the full webhook URL
//!   followed by every POST parameter, sorted by name, as name and value concatenated
//!   ([`signature`]). Because the URL is part of what is signed, configure the public URL the
//!   provider calls ([`SmsBuilder::with_webhook_url`]), not what a proxy forwards to us.
//! - Inbound messages: `MessageSid`, `From` (E.164), `Body`, and MMS media as `NumMedia`,
//!   `MediaUrl{n}`, `MediaContentType{n}`. The text becomes one message (provider id the
//!   `MessageSid`), each media item one more (`{MessageSid}:{n}`).
//! - Status callbacks (`MessageStatus` of `sent`, `delivered`, `undelivered`, `failed`, `read`)
//!   become [`StatusUpdate`]s.
//! - The answer is TwiML: an empty `<Response/>`, or an automatic `<Message>` when configured.
//! - Sending: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth
//!   (account SID and auth token), `To`, `From` or `MessagingServiceSid`, `Body` and `MediaUrl`.

mod config;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use cs_core::{ChannelId, ChannelKind, Content, ContentKind, DeliveryStatus, Identity};
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use serde::Deserialize;
use sha1::Sha1;

pub use self::config::SmsConfig;
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundMessage, InboundResponse, OutboundMessage, Parsed,
    RawInbound, SendReceipt, StatusUpdate,
};
use crate::client::{HttpClient, HttpSettings, join_url};
use crate::error::{Error, Result};
use crate::inbound::{
    REDACTED, bounded_form_pairs, check_size, constant_time_eq, header, param, required, xml_escape,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The most media items one MMS carries.
const MAX_MEDIA: usize = 10;

/// The `X-Twilio-Signature` for a request to `url` with form `params`: Base64 of HMAC-SHA1 under
/// `auth_token` over `url` followed by each parameter's name and value, sorted by name (then
/// value).
///
/// ```
/// // Parameter order does not matter: they are sorted before signing.
/// let a = [("Body", "Orly"), ("From", "+14159354345")];
/// let b = [("From", "+14159354345"), ("Body", "Orly")];
/// let sig = cs_channels::sms::signature("token", "https://shop.example/webhooks/sms", &a);
/// assert_eq!(sig, cs_channels::sms::signature("token", "https://shop.example/webhooks/sms", &b));
/// assert_eq!(sig.len(), 28);
/// ```
pub fn signature<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_unstable();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A TwiML answer that replies with `text` (and optional media) to the sender, or an empty
/// `<Response/>` when `text` is `None`.
pub fn twiml(text: Option<&str>, media: &[&str]) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
    if text.is_some() || !media.is_empty() {
        out.push_str("<Message>");
        if let Some(t) = text {
            out.push_str("<Body>");
            out.push_str(&xml_escape(t));
            out.push_str("</Body>");
        }
        for m in media {
            out.push_str("<Media>");
            out.push_str(&xml_escape(m));
            out.push_str("</Media>");
        }
        out.push_str("</Message>");
    }
    out.push_str("</Response>");
    out
}

/// Configures an [`Sms`] channel.
#[derive(Clone)]
pub struct SmsBuilder {
    id: ChannelId,
    account_sid: Option<String>,
    auth_token: Option<String>,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    webhook_url: Option<String>,
    status_callback: Option<String>,
    auto_reply: Option<String>,
    http: HttpSettings,
}

impl std::fmt::Debug for SmsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsBuilder")
            .field("id", &self.id)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token.as_ref().map(|_| REDACTED))
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field("webhook_url", &self.webhook_url)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl SmsBuilder {
    /// An SMS channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            http: HttpSettings::default(),
            id,
            account_sid: None,
            auth_token: None,
            from: None,
            messaging_service_sid: None,
            webhook_url: None,
            status_callback: None,
            auto_reply: None,
        }
    }

    /// The account SID (`AC...`).
    pub fn with_account_sid(mut self, sid: impl Into<String>) -> Self {
        self.account_sid = Some(sid.into());
        self
    }

    /// The auth token: signs webhooks and authenticates sends.
    pub fn with_auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// The number messages are sent from (E.164).
    pub fn with_from(mut self, number: impl Into<String>) -> Self {
        self.from = Some(number.into());
        self
    }

    /// Send through a messaging service (`MG...`) instead of one number.
    pub fn with_messaging_service_sid(mut self, sid: impl Into<String>) -> Self {
        self.messaging_service_sid = Some(sid.into());
        self
    }

    /// The public URL the provider calls for this channel (what the signature covers), e.g.
    /// `https://shop.example/webhooks/sms`.
    pub fn with_webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// Where the provider reports delivery statuses of our messages (usually the webhook URL).
    pub fn with_status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// A text answered right away (in the TwiML response) to every inbound message.
    pub fn with_auto_reply(mut self, text: impl Into<String>) -> Self {
        self.auto_reply = Some(text.into());
        self
    }

    crate::client::http_settings_setters!();

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without account SID, auth token, webhook URL, or a sender (a
    /// number or a messaging service).
    pub fn build(self) -> Result<Sms> {
        let need = |v, what| required(v, "SMS", what);
        let sender = match (self.from, self.messaging_service_sid) {
            (_, Some(mg)) if !mg.is_empty() => ("MessagingServiceSid", mg),
            (Some(n), _) if !n.is_empty() => ("From", n),
            _ => {
                return Err(Error::invalid(
                    "SMS needs a from number or a messaging service",
                ));
            }
        };
        let account_sid = need(self.account_sid, "an account SID")?;
        let mut capabilities = Capabilities::text_only();
        capabilities.content.extend([
            ContentKind::Image,
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::File,
        ]);
        capabilities.read_receipts = true;
        capabilities.max_text_chars = Some(1600);
        capabilities.max_media_bytes = Some(5 * 1024 * 1024);
        Ok(Sms {
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::Sms,
                capabilities,
            },
            messages_url: join_url(
                &self.http.base_url_or("https://api.twilio.com"),
                &format!("2010-04-01/Accounts/{account_sid}/Messages.json"),
            ),
            account_sid,
            auth_token: need(self.auth_token, "an auth token")?,
            webhook_url: need(self.webhook_url, "the public webhook URL")?,
            sender,
            status_callback: self.status_callback,
            auto_reply: self.auto_reply,
            max_body_bytes: self.http.max_body_bytes_or(64 * 1024),
            client: self.http.client("SMS")?,
        })
    }
}

/// The Twilio-style SMS/MMS channel (see the [module docs](self)).
pub struct Sms {
    info: ChannelInfo,
    account_sid: String,
    auth_token: String,
    webhook_url: String,
    messages_url: String,
    sender: (&'static str, String),
    status_callback: Option<String>,
    auto_reply: Option<String>,
    max_body_bytes: usize,
    client: HttpClient,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("info", &self.info)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &REDACTED)
            .field("webhook_url", &self.webhook_url)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
}

fn media_content(url: String, mime: Option<&str>) -> Content {
    let mime = mime.unwrap_or("application/octet-stream");
    match mime.split('/').next() {
        Some("image") => Content::Image { url, caption: None },
        Some("video") => Content::Video { url, caption: None },
        Some("audio") => Content::Audio {
            url,
            transcript: None,
        },
        _ => Content::File {
            name: url.rsplit('/').next().unwrap_or("media").to_owned(),
            url,
            mime: Some(mime.to_owned()),
            size: None,
        },
    }
}

/// Checks `X-Twilio-Signature` of a form POST that reached `uri`, for a webhook configured at
/// `webhook_url` (the public URL Twilio calls, whose query the signature covers too). Shared by
/// the SMS and voice adapters.
pub(crate) fn verify_request(
    auth_token: &str,
    webhook_url: &str,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    params: &[(String, String)],
) -> Result<()> {
    let given = header(headers, SIGNATURE_HEADER)
        .ok_or_else(|| Error::unauthenticated("missing X-Twilio-Signature"))?;
    let url = match uri.query() {
        Some(q) => format!("{webhook_url}?{q}"),
        None => webhook_url.to_owned(),
    };
    let expected = signature(auth_token, &url, params);
    if !constant_time_eq(expected.as_bytes(), given.trim().as_bytes()) {
        return Err(Error::unauthenticated("X-Twilio-Signature does not match"));
    }
    Ok(())
}

impl Sms {
    /// Starts configuring an SMS channel named `id`.
    pub fn builder(id: ChannelId) -> SmsBuilder {
        SmsBuilder::new(id)
    }

    /// Checks `X-Twilio-Signature` of a form POST to `uri`.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the header is missing or does not match.
    pub fn verify(
        &self,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        params: &[(String, String)],
    ) -> Result<()> {
        verify_request(&self.auth_token, &self.webhook_url, uri, headers, params)
    }

    fn twiml_response(&self, text: Option<&str>) -> InboundResponse {
        InboundResponse {
            status: StatusCode::OK,
            content_type: Some("text/xml"),
            body: Bytes::from(twiml(text, &[])),
        }
    }
}

#[async_trait]
impl Channel for Sms {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        if request.method != Method::POST {
            return Err(Error::invalid("SMS webhooks are POSTed"));
        }
        check_size(&request.body, self.max_body_bytes)?;
        let params = bounded_form_pairs(&request.body)?;
        self.verify(&request.uri, &request.headers, &params)?;
        let sid = param(&params, "MessageSid")
            .or_else(|| param(&params, "SmsSid"))
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .ok_or_else(|| Error::invalid("missing MessageSid"))?;
        let status = param(&params, "MessageStatus").or_else(|| param(&params, "SmsStatus"));
        let receipt = match status {
            Some("sent") => Some(DeliveryStatus::Sent),
            Some("delivered") => Some(DeliveryStatus::Delivered),
            Some("read") => Some(DeliveryStatus::Read),
            Some("undelivered" | "failed") => Some(DeliveryStatus::Failed),
            _ => None,
        };
        if let Some(status) = receipt {
            return Ok(Parsed {
                messages: Vec::new(),
                statuses: vec![StatusUpdate {
                    provider_message_id: sid.to_owned(),
                    status,
                }],
                response: self.twiml_response(None),
            });
        }
        let from = param(&params, "From")
            .filter(|f| !f.is_empty())
            .ok_or_else(|| Error::invalid("missing From"))?;
        let message = |provider_id: String, content: Content| InboundMessage {
            channel: self.info.id.clone(),
            from: Identity::new(ChannelKind::Sms, from),
            provider_message_id: Some(provider_id),
            content,
            display_name: None,
            language: None,
            sent_at: None,
        };
        let mut messages = Vec::new();
        if let Some(body) = param(&params, "Body").filter(|b| !b.trim().is_empty()) {
            messages.push(message(sid.to_owned(), Content::text(body)));
        }
        let media: usize = param(&params, "NumMedia")
            .unwrap_or("0")
            .parse()
            .map_err(|_| Error::invalid("NumMedia is not a number"))?;
        if media > MAX_MEDIA {
            return Err(Error::invalid(format!("NumMedia over {MAX_MEDIA}")));
        }
        for n in 0..media {
            let url = param(&params, &format!("MediaUrl{n}"))
                .ok_or_else(|| Error::invalid(format!("missing MediaUrl{n}")))?;
            let mime = param(&params, &format!("MediaContentType{n}"));
            messages.push(message(
                format!("{sid}:{n}"),
                media_content(url.to_owned(), mime),
            ));
        }
        if messages.is_empty() {
            return Err(Error::invalid("message has neither Body nor media"));
        }
        Ok(Parsed {
            messages,
            statuses: Vec::new(),
            response: self.twiml_response(self.auto_reply.as_deref()),
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        if message.to.kind != ChannelKind::Sms {
            return Err(Error::invalid(format!(
                "SMS cannot reach identity {}",
                message.to
            )));
        }
        let mut form: Vec<(&str, &str)> = vec![
            ("To", message.to.external_id.as_str()),
            (self.sender.0, self.sender.1.as_str()),
        ];
        if let Some(cb) = &self.status_callback {
            form.push(("StatusCallback", cb));
        }
        match &message.message.content {
            Content::Text { text } => form.push(("Body", text)),
            Content::Image { url, caption } | Content::Video { url, caption } => {
                form.push(("MediaUrl", url));
                if let Some(c) = caption {
                    form.push(("Body", c));
                }
            }
            Content::Audio { url, .. } | Content::File { url, .. } => form.push(("MediaUrl", url)),
            other => {
                return Err(Error::Unsupported {
                    reason: format!("SMS cannot carry {:?} content", other.kind()),
                });
            }
        }
        let response = self
            .client
            .execute(|http| {
                http.post(&self.messages_url)
                    .basic_auth(&self.account_sid, Some(&self.auth_token))
                    .form(&form)
            })
            .await?;
        let created: Created = response.json("SMS")?;
        Ok(SendReceipt {
            provider_message_id: Some(created.sid),
            status: DeliveryStatus::Sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_escapes_text() {
        assert_eq!(
            twiml(None, &[]),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
        );
        let t = twiml(Some("a < b & c"), &["https://x/y.png"]);
        assert!(t.contains("<Body>a &lt; b &amp; c</Body><Media>https://x/y.png</Media>"));
    }
}
