//! Every adapter of ours runs the public `Channel` conformance suite (`cs_channels::conformance`)
//! with one line: a fixture says how its provider signs requests and stands in for the provider's
//! send API (a wiremock server), and `conformance::run` does the rest.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use common::{clock, raw, start};
use cs_channels::client::RetryPolicy;
use cs_channels::conformance::{
    self, ChannelFixture, Features, ProviderAnswer, Signing, TextEvent,
};
use cs_channels::{Channel, RawInbound};
use cs_core::{ChannelId, ChannelKind, Identity};
use http::Method;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Body limit every fixture configures, so the oversized check knows it.
const MAX_BODY: usize = 64 * 1024;

/// Retries off (the engine's outbox retries) and a short per-attempt time-out, so the stall
/// check finishes in well under a second.
fn retry() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_millis(300),
        ..RetryPolicy::none()
    }
}

/// A provider's send API on loopback: answers every `POST` as the suite asks, and keeps the
/// fixture's other mocks (an access-token endpoint) mounted across answers.
#[derive(Debug)]
struct StandIn {
    server: MockServer,
    accept: ResponseTemplate,
    token: Option<(String, serde_json::Value)>,
}

impl StandIn {
    async fn start(accept: ResponseTemplate) -> Self {
        Self {
            server: MockServer::start().await,
            accept,
            token: None,
        }
    }

    fn uri(&self) -> String {
        self.server.uri()
    }

    async fn answer(&self, answer: ProviderAnswer) {
        self.server.reset().await;
        if let Some((p, body)) = &self.token {
            Mock::given(method("GET"))
                .and(wiremock::matchers::path(p.as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
                .mount(&self.server)
                .await;
        }
        let response = match answer {
            ProviderAnswer::Accept => self.accept.clone(),
            ProviderAnswer::Status(status) => {
                ResponseTemplate::new(status).set_body_json(json!({"error": "conformance"}))
            }
            ProviderAnswer::Stall => self.accept.clone().set_delay(Duration::from_secs(3)),
        };
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }
}

/// How to make one adapter's provider requests.
type TextRequest = Box<dyn Fn(&TextEvent, Signing) -> RawInbound + Send + Sync>;
type BodyRequest = Box<dyn Fn(Bytes) -> RawInbound + Send + Sync>;

/// One adapter under the suite: the channel, its provider stand-in (none for the web chat), and
/// how its provider signs requests.
struct Fixture {
    name: &'static str,
    channel: Arc<dyn Channel>,
    features: Features,
    provider: Option<StandIn>,
    recipient: Identity,
    text: TextRequest,
    body: BodyRequest,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ChannelFixture for Fixture {
    fn name(&self) -> &str {
        self.name
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        self.features.clone()
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        (self.text)(e, signing)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        (self.body)(body)
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        if let Some(p) = &self.provider {
            p.answer(answer).await;
        }
    }
    fn recipient(&self) -> Identity {
        self.recipient.clone()
    }
}

/// The features of a signed HTTP adapter with the suite's body limit.
fn signed_http(replay_window: Option<chrono::Duration>) -> Features {
    Features {
        signed: true,
        replay_window,
        max_body_bytes: Some(MAX_BODY),
        outbound_http: true,
    }
}

// --- the generic signed webhook -----------------------------------------------------------------

const WEBHOOK_SECRET: &[u8] = b"marketplace-shared-secret";

fn webhook_request(body: Bytes, at: DateTime<Utc>, signing: Signing) -> RawInbound {
    use cs_channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
    let ts = at.timestamp().to_string();
    let sig = match signing {
        Signing::Genuine => Some(sign(WEBHOOK_SECRET, at.timestamp(), &body)),
        Signing::WrongKey => Some(sign(b"not-the-secret", at.timestamp(), &body)),
        Signing::Missing => None,
    };
    let mut headers = vec![(TIMESTAMP_HEADER, ts.as_str())];
    if let Some(sig) = &sig {
        headers.push((SIGNATURE_HEADER, sig.as_str()));
    }
    raw(Method::POST, "/webhooks/market", &headers, body)
}

async fn webhook() -> Fixture {
    use cs_channels::webhook::Webhook;
    let provider =
        StandIn::start(ResponseTemplate::new(200).set_body_json(json!({"id": "out-1"}))).await;
    let channel = Webhook::builder(ChannelId::new("market").unwrap())
        .with_secret(WEBHOOK_SECRET)
        .with_callback_url(format!("{}/cb", provider.uri()))
        .with_clock(clock())
        .with_max_body_bytes(MAX_BODY)
        .with_retry(retry())
        .build()
        .unwrap();
    Fixture {
        name: "webhook",
        channel: Arc::new(channel),
        features: signed_http(Some(chrono::Duration::minutes(5))),
        provider: Some(provider),
        recipient: Identity::new(ChannelKind::Webhook, "buyer-1"),
        text: Box::new(|e, signing| {
            let body = json!({"type": "message", "id": e.provider_id, "from": e.from,
                              "content": {"type": "text", "text": e.text}});
            webhook_request(body.to_string().into(), e.at, signing)
        }),
        body: Box::new(|body| webhook_request(body, start(), Signing::Genuine)),
    }
}

// --- WhatsApp Cloud API ---------------------------------------------------------------------------

const WA_SECRET: &str = "meta-app-secret";
const WA_CUSTOMER: &str = "8613800138000";

fn whatsapp_request(body: Bytes, signing: Signing) -> RawInbound {
    use cs_channels::whatsapp::{SIGNATURE_HEADER, sign};
    let sig = match signing {
        Signing::Genuine => Some(sign(WA_SECRET.as_bytes(), &body)),
        Signing::WrongKey => Some(sign(b"not-the-secret", &body)),
        Signing::Missing => None,
    };
    let headers: Vec<(&str, &str)> = sig
        .as_deref()
        .map(|s| vec![(SIGNATURE_HEADER, s)])
        .unwrap_or_default();
    raw(Method::POST, "/webhooks/whatsapp", &headers, body)
}

async fn whatsapp() -> Fixture {
    use cs_channels::whatsapp::WhatsApp;
    let provider = StandIn::start(ResponseTemplate::new(200).set_body_json(
        json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.conformance"}]}),
    ))
    .await;
    let channel = WhatsApp::builder(ChannelId::new("whatsapp").unwrap())
        .with_app_secret(WA_SECRET)
        .with_verify_token("verify-me")
        .with_access_token("EAAG-token")
        .with_phone_number_id("1234567890")
        .with_base_url(provider.uri())
        .with_clock(clock())
        .with_max_body_bytes(MAX_BODY)
        .with_retry(retry())
        .build()
        .unwrap();
    // The customer wrote a minute ago: free-form replies are inside the 24 h window.
    channel.record_inbound(WA_CUSTOMER, start() - chrono::Duration::minutes(1));
    Fixture {
        name: "whatsapp",
        channel: Arc::new(channel),
        features: signed_http(None),
        provider: Some(provider),
        recipient: Identity::new(ChannelKind::WhatsApp, WA_CUSTOMER),
        text: Box::new(|e, signing| {
            let body = json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1234567890"},
                    "contacts": [{"profile": {"name": "Mei"}, "wa_id": e.from}],
                    "messages": [{"from": e.from, "id": e.provider_id,
                                  "timestamp": e.at.timestamp().to_string(),
                                  "type": "text", "text": {"body": e.text}}],
                }}]}]
            });
            whatsapp_request(body.to_string().into(), signing)
        }),
        body: Box::new(|body| whatsapp_request(body, Signing::Genuine)),
    }
}

// --- Telegram Bot API -----------------------------------------------------------------------------

const TG_SECRET: &str = "tg_secret-123";

fn telegram_request(body: Bytes, signing: Signing) -> RawInbound {
    use cs_channels::telegram::SECRET_HEADER;
    let headers: Vec<(&str, &str)> = match signing {
        Signing::Genuine => vec![(SECRET_HEADER, TG_SECRET)],
        Signing::WrongKey => vec![(SECRET_HEADER, "tg_not-the-secret")],
        Signing::Missing => vec![],
    };
    raw(Method::POST, "/webhooks/telegram", &headers, body)
}

/// A stable number for a provider id (Telegram's update ids and WeChat's message ids are numbers).
fn number_of(id: &str, seed: u64) -> u64 {
    id.bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

async fn telegram() -> Fixture {
    use cs_channels::telegram::Telegram;
    let provider = StandIn::start(
        ResponseTemplate::new(200)
            .set_body_json(json!({"ok": true, "result": {"message_id": 99, "chat": {"id": 4242}}})),
    )
    .await;
    let channel = Telegram::builder(ChannelId::new("telegram").unwrap())
        .with_bot_token("123456:ABC-DEF")
        .with_secret_token(TG_SECRET)
        .with_base_url(provider.uri())
        .with_max_body_bytes(MAX_BODY)
        .with_retry(retry())
        .build()
        .unwrap();
    Fixture {
        name: "telegram",
        channel: Arc::new(channel),
        features: signed_http(None),
        provider: Some(provider),
        recipient: Identity::new(ChannelKind::Telegram, "4242"),
        text: Box::new(|e, signing| {
            let body = json!({"update_id": number_of(&e.provider_id, 7) % 1_000_000_000, "message": {
                "message_id": 7,
                "from": {"id": 4242, "is_bot": false, "first_name": "Ivan"},
                "chat": {"id": 4242, "type": "private"},
                "date": e.at.timestamp(),
                "text": e.text,
            }});
            telegram_request(body.to_string().into(), signing)
        }),
        body: Box::new(|body| telegram_request(body, Signing::Genuine)),
    }
}

// --- SMS (Twilio-style) ---------------------------------------------------------------------------

const SMS_TOKEN: &str = "2bd9e9638872de601313dc77410d3b23";
const SMS_URL: &str = "https://shop.example/webhooks/sms";

fn sms_request(body: Bytes, signature: Option<String>) -> RawInbound {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(sig) = &signature {
        headers.push((cs_channels::sms::SIGNATURE_HEADER, sig.as_str()));
    }
    raw(Method::POST, "/webhooks/sms", &headers, body)
}

fn sms_text(e: &TextEvent, signing: Signing) -> RawInbound {
    let params = [
        ("AccountSid", "ACba8bc05eacf94afdae398e642c9cc32d"),
        ("MessageSid", e.provider_id.as_str()),
        ("SmsMessageSid", e.provider_id.as_str()),
        ("From", "+14159354345"),
        ("To", "+14158141819"),
        ("Body", e.text.as_str()),
        ("NumMedia", "0"),
    ];
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let token = match signing {
        Signing::Genuine => Some(SMS_TOKEN),
        Signing::WrongKey => Some("00000000000000000000000000000000"),
        Signing::Missing => None,
    };
    let signature = token.map(|t| cs_channels::sms::signature(t, SMS_URL, &params));
    sms_request(form.finish().into(), signature)
}

async fn sms() -> Fixture {
    use cs_channels::sms::Sms;
    let provider = StandIn::start(
        ResponseTemplate::new(201).set_body_json(json!({"sid": "SMok", "status": "queued"})),
    )
    .await;
    let channel = Sms::builder(ChannelId::new("sms").unwrap())
        .with_account_sid("ACba8bc05eacf94afdae398e642c9cc32d")
        .with_auth_token(SMS_TOKEN)
        .with_from("+14158141819")
        .with_webhook_url(SMS_URL)
        .with_base_url(provider.uri())
        .with_max_body_bytes(MAX_BODY)
        .with_retry(retry())
        .build()
        .unwrap();
    Fixture {
        name: "sms",
        channel: Arc::new(channel),
        features: signed_http(None),
        provider: Some(provider),
        recipient: Identity::new(ChannelKind::Sms, "+14159354345"),
        text: Box::new(sms_text),
        body: Box::new(|body| {
            // The signature covers the parsed form fields; sign whatever the body parses to.
            let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let signature = cs_channels::sms::signature(SMS_TOKEN, SMS_URL, &pairs);
            sms_request(body, Some(signature))
        }),
    }
}

// --- WeChat Official Account (plain and safe mode) -------------------------------------------------------

const WX_TOKEN: &str = "omnidesk-token";

/// The signed query of a WeChat request at `at`, and its nonce.
fn wechat_query(at: DateTime<Utc>, signing: Signing) -> (String, String) {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let nonce = format!(
        "c{}",
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let ts = at.timestamp().to_string();
    let token = match signing {
        Signing::Genuine => Some(WX_TOKEN),
        Signing::WrongKey => Some("not-the-token"),
        Signing::Missing => None,
    };
    let query = match token {
        Some(t) => format!(
            "signature={}&timestamp={ts}&nonce={nonce}",
            cs_channels::wechat::signature(&[t, &ts, &nonce])
        ),
        None => format!("timestamp={ts}&nonce={nonce}"),
    };
    (query, nonce)
}

fn wechat_request(body: Bytes, at: DateTime<Utc>, signing: Signing) -> RawInbound {
    let (query, _) = wechat_query(at, signing);
    raw(
        Method::POST,
        &format!("/webhooks/wechat?{query}"),
        &[],
        body,
    )
}

/// A WeChat request in safe mode: the message encrypted into an `Encrypt` envelope, signed over
/// the ciphertext (`msg_signature`) as well as plainly.
fn wechat_safe_request(inner: &str, at: DateTime<Utc>, signing: Signing) -> RawInbound {
    let crypt = cs_channels::wechat::MsgCrypt::new(WX_TOKEN, WX_AES_KEY, WX_APP_ID).unwrap();
    let encrypted = crypt.encrypt(inner);
    let (query, nonce) = wechat_query(at, signing);
    let ts = at.timestamp().to_string();
    let msg_signature = match signing {
        Signing::Genuine => format!(
            "&msg_signature={}",
            crypt.msg_signature(&ts, &nonce, &encrypted)
        ),
        Signing::WrongKey => format!(
            "&msg_signature={}",
            cs_channels::wechat::signature(&["not-the-token", &ts, &nonce, &encrypted])
        ),
        Signing::Missing => String::new(),
    };
    raw(
        Method::POST,
        &format!("/webhooks/wechat?{query}&encrypt_type=aes{msg_signature}"),
        &[],
        Bytes::from(format!(
            "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )),
    )
}

const WX_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const WX_APP_ID: &str = "wx2c2769f8efd9abc2";

/// The WeChat adapter, in plain mode or (`safe`) with message encryption.
async fn wechat(safe: bool) -> Fixture {
    use cs_channels::wechat::WeChat;
    let mut provider = StandIn::start(
        ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
    )
    .await;
    provider.token = Some((
        "/cgi-bin/token".into(),
        json!({"access_token": "ACCESS", "expires_in": 7200}),
    ));
    let mut builder = WeChat::builder(ChannelId::new("wechat").unwrap())
        .with_token(WX_TOKEN)
        .with_app_id(WX_APP_ID)
        .with_app_secret("app-secret")
        .with_base_url(provider.uri())
        .with_clock(clock())
        .with_max_body_bytes(MAX_BODY)
        .with_retry(retry());
    if safe {
        builder = builder.with_encoding_aes_key(WX_AES_KEY);
    }
    let channel = builder.build().unwrap();
    let text_xml = |e: &TextEvent| {
        format!(
            "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{}]]></Content>\
             <MsgId>{}</MsgId></xml>",
            e.from,
            e.at.timestamp(),
            e.text,
            number_of(&e.provider_id, 17)
        )
    };
    Fixture {
        name: if safe { "wechat (safe mode)" } else { "wechat" },
        channel: Arc::new(channel),
        features: signed_http(Some(chrono::Duration::minutes(5))),
        provider: Some(provider),
        recipient: Identity::new(ChannelKind::WeChat, "o-buyer-1"),
        text: Box::new(move |e, signing| {
            if safe {
                wechat_safe_request(&text_xml(e), e.at, signing)
            } else {
                wechat_request(text_xml(e).into(), e.at, signing)
            }
        }),
        body: Box::new(move |body| {
            let (query, _) = wechat_query(start(), Signing::Genuine);
            // In safe mode, an envelope that is not one: no ciphertext to sign over.
            let safe_part = if safe {
                "&encrypt_type=aes&msg_signature=0"
            } else {
                ""
            };
            raw(
                Method::POST,
                &format!("/webhooks/wechat?{query}{safe_part}"),
                &[],
                body,
            )
        }),
    }
}

// --- web chat (frames from an authenticated socket) -----------------------------------------------

fn webchat_request(body: Bytes, visitor: Option<&str>) -> RawInbound {
    let headers: Vec<(&str, &str)> = visitor
        .map(|v| vec![(cs_channels::webchat::VISITOR_HEADER, v)])
        .unwrap_or_default();
    raw(Method::POST, "/chat/ws", &headers, body)
}

fn webchat() -> Fixture {
    let channel = cs_channels::WebChat::builder(ChannelId::new("webchat").unwrap())
        .with_secret(b"a-secret-of-at-least-16-bytes".to_vec())
        .build()
        .unwrap();
    Fixture {
        name: "webchat",
        channel: Arc::new(channel),
        // The socket authenticates the visitor before any frame; frames carry no signature.
        features: Features {
            signed: false,
            replay_window: None,
            max_body_bytes: None,
            outbound_http: false,
        },
        provider: None,
        recipient: Identity::new(ChannelKind::WebChat, "v-conformance-1"),
        text: Box::new(|e, signing| {
            let body = json!({"type": "message", "client_id": e.provider_id, "text": e.text});
            let visitor = (signing != Signing::Missing).then_some("v-conformance-1");
            webchat_request(body.to_string().into(), visitor)
        }),
        body: Box::new(|body| webchat_request(body, Some("v-conformance-1"))),
    }
}

#[tokio::test]
async fn webhook_conforms() {
    conformance::run(&webhook().await).await;
}

#[tokio::test]
async fn whatsapp_conforms() {
    conformance::run(&whatsapp().await).await;
}

#[tokio::test]
async fn telegram_conforms() {
    conformance::run(&telegram().await).await;
}

#[tokio::test]
async fn sms_conforms() {
    conformance::run(&sms().await).await;
}

#[tokio::test]
async fn wechat_conforms() {
    conformance::run(&wechat(false).await).await;
}

#[tokio::test]
async fn wechat_safe_mode_conforms() {
    conformance::run(&wechat(true).await).await;
}

#[tokio::test]
async fn webchat_conforms() {
    conformance::run(&webchat()).await;
}

// --- email (raw MIME POSTed by the mail relay with a bearer token; replies go out over SMTP) ------

#[cfg(feature = "email")]
const EMAIL_TOKEN: &str = "inbound-token";

#[cfg(feature = "email")]
fn email_request(body: Bytes, signing: Signing) -> RawInbound {
    let bearer = match signing {
        Signing::Genuine => Some(format!("Bearer {EMAIL_TOKEN}")),
        Signing::WrongKey => Some("Bearer not-the-token".to_owned()),
        Signing::Missing => None,
    };
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    raw(Method::POST, "/webhooks/email", &headers, body)
}

#[cfg(feature = "email")]
fn email() -> Fixture {
    use cs_channels::email::{EmailChannel, SmtpConfig};
    let channel = EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
        // Sending goes over SMTP, not HTTP: the suite's provider checks do not apply.
        .with_smtp(SmtpConfig::new("127.0.0.1", 9))
        .with_thread_secret(b"thread secret for the conformance suite".as_slice())
        .with_inbound_token(EMAIL_TOKEN)
        .with_max_message_bytes(MAX_BODY)
        .build()
        .unwrap();
    Fixture {
        name: "email",
        channel: Arc::new(channel),
        features: Features {
            signed: true,
            replay_window: None,
            max_body_bytes: Some(MAX_BODY),
            outbound_http: false,
        },
        provider: None,
        recipient: Identity::new(ChannelKind::Email, "buyer@customer.test"),
        text: Box::new(|e, signing| {
            let mime = format!(
                "From: <{}@customer.test>\r\nTo: support@shop.test\r\nSubject: Question\r\n\
                 Message-ID: <{}@customer.test>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
                e.from,
                e.provider_id,
                e.at.to_rfc2822(),
                e.text
            );
            email_request(mime.into(), signing)
        }),
        body: Box::new(|body| email_request(body, Signing::Genuine)),
    }
}

#[cfg(feature = "email")]
#[tokio::test]
async fn email_conforms() {
    conformance::run(&email()).await;
}
