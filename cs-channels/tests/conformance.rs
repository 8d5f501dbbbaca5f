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

// --- the generic signed webhook -----------------------------------------------------------------

#[derive(Debug)]
struct WebhookFixture {
    channel: Arc<dyn Channel>,
    provider: StandIn,
}

const WEBHOOK_SECRET: &[u8] = b"marketplace-shared-secret";

impl WebhookFixture {
    async fn new() -> Self {
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
        Self {
            channel: Arc::new(channel),
            provider,
        }
    }

    fn request(body: Bytes, at: DateTime<Utc>, signing: Signing) -> RawInbound {
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
}

#[async_trait]
impl ChannelFixture for WebhookFixture {
    fn name(&self) -> &str {
        "webhook"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        Features {
            signed: true,
            replay_window: Some(chrono::Duration::minutes(5)),
            max_body_bytes: Some(MAX_BODY),
            outbound_http: true,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        let body = json!({"type": "message", "id": e.provider_id, "from": e.from,
                          "content": {"type": "text", "text": e.text}})
        .to_string();
        Self::request(body.into(), e.at, signing)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        Self::request(body, start(), Signing::Genuine)
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        self.provider.answer(answer).await;
    }
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::Webhook, "buyer-1")
    }
}

// --- WhatsApp Cloud API ---------------------------------------------------------------------------

const WA_SECRET: &str = "meta-app-secret";
const WA_CUSTOMER: &str = "8613800138000";

#[derive(Debug)]
struct WhatsAppFixture {
    channel: Arc<cs_channels::whatsapp::WhatsApp>,
    provider: StandIn,
}

impl WhatsAppFixture {
    async fn new() -> Self {
        use cs_channels::whatsapp::WhatsApp;
        let provider = StandIn::start(
            ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
                                      "messages": [{"id": "wamid.conformance"}]})),
        )
        .await;
        let channel = Arc::new(
            WhatsApp::builder(ChannelId::new("whatsapp").unwrap())
                .with_app_secret(WA_SECRET)
                .with_verify_token("verify-me")
                .with_access_token("EAAG-token")
                .with_phone_number_id("1234567890")
                .with_base_url(provider.uri())
                .with_clock(clock())
                .with_max_body_bytes(MAX_BODY)
                .with_retry(retry())
                .build()
                .unwrap(),
        );
        // The customer wrote a minute ago: free-form replies are inside the 24 h window.
        channel.record_inbound(WA_CUSTOMER, start() - chrono::Duration::minutes(1));
        Self { channel, provider }
    }

    fn request(body: Bytes, signing: Signing) -> RawInbound {
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
}

#[async_trait]
impl ChannelFixture for WhatsAppFixture {
    fn name(&self) -> &str {
        "whatsapp"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        Features {
            signed: true,
            replay_window: None,
            max_body_bytes: Some(MAX_BODY),
            outbound_http: true,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
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
        })
        .to_string();
        Self::request(body.into(), signing)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        Self::request(body, Signing::Genuine)
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        self.provider.answer(answer).await;
    }
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::WhatsApp, WA_CUSTOMER)
    }
}

// --- Telegram Bot API -----------------------------------------------------------------------------

const TG_SECRET: &str = "tg_secret-123";

#[derive(Debug)]
struct TelegramFixture {
    channel: Arc<dyn Channel>,
    provider: StandIn,
}

impl TelegramFixture {
    async fn new() -> Self {
        use cs_channels::telegram::Telegram;
        let provider = StandIn::start(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 99, "chat": {"id": 4242}}}),
        ))
        .await;
        let channel = Telegram::builder(ChannelId::new("telegram").unwrap())
            .with_bot_token("123456:ABC-DEF")
            .with_secret_token(TG_SECRET)
            .with_base_url(provider.uri())
            .with_max_body_bytes(MAX_BODY)
            .with_retry(retry())
            .build()
            .unwrap();
        Self {
            channel: Arc::new(channel),
            provider,
        }
    }

    fn request(body: Bytes, signing: Signing) -> RawInbound {
        use cs_channels::telegram::SECRET_HEADER;
        let headers: Vec<(&str, &str)> = match signing {
            Signing::Genuine => vec![(SECRET_HEADER, TG_SECRET)],
            Signing::WrongKey => vec![(SECRET_HEADER, "tg_not-the-secret")],
            Signing::Missing => vec![],
        };
        raw(Method::POST, "/webhooks/telegram", &headers, body)
    }
}

#[async_trait]
impl ChannelFixture for TelegramFixture {
    fn name(&self) -> &str {
        "telegram"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        Features {
            signed: true,
            replay_window: None,
            max_body_bytes: Some(MAX_BODY),
            outbound_http: true,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        // Telegram's update id is the provider's delivery id; derive a stable number from ours.
        let update_id = e
            .provider_id
            .bytes()
            .fold(7_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
            % 1_000_000_000;
        let body = json!({"update_id": update_id, "message": {
            "message_id": 7,
            "from": {"id": 4242, "is_bot": false, "first_name": "Ivan"},
            "chat": {"id": 4242, "type": "private"},
            "date": e.at.timestamp(),
            "text": e.text,
        }})
        .to_string();
        Self::request(body.into(), signing)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        Self::request(body, Signing::Genuine)
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        self.provider.answer(answer).await;
    }
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::Telegram, "4242")
    }
}

// --- SMS (Twilio-style) ---------------------------------------------------------------------------

const SMS_TOKEN: &str = "2bd9e9638872de601313dc77410d3b23";
const SMS_URL: &str = "https://shop.example/webhooks/sms";

#[derive(Debug)]
struct SmsFixture {
    channel: Arc<dyn Channel>,
    provider: StandIn,
}

impl SmsFixture {
    async fn new() -> Self {
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
        Self {
            channel: Arc::new(channel),
            provider,
        }
    }

    fn request(body: Bytes, signature: Option<String>) -> RawInbound {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(sig) = &signature {
            headers.push((cs_channels::sms::SIGNATURE_HEADER, sig.as_str()));
        }
        raw(Method::POST, "/webhooks/sms", &headers, body)
    }
}

#[async_trait]
impl ChannelFixture for SmsFixture {
    fn name(&self) -> &str {
        "sms"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        Features {
            signed: true,
            replay_window: None,
            max_body_bytes: Some(MAX_BODY),
            outbound_http: true,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        let from = "+14159354345";
        let params = [
            ("AccountSid", "ACba8bc05eacf94afdae398e642c9cc32d"),
            ("MessageSid", e.provider_id.as_str()),
            ("SmsMessageSid", e.provider_id.as_str()),
            ("From", from),
            ("To", "+14158141819"),
            ("Body", e.text.as_str()),
            ("NumMedia", "0"),
        ];
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let signature = match signing {
            Signing::Genuine => Some(cs_channels::sms::signature(SMS_TOKEN, SMS_URL, &params)),
            Signing::WrongKey => Some(cs_channels::sms::signature(
                "00000000000000000000000000000000",
                SMS_URL,
                &params,
            )),
            Signing::Missing => None,
        };
        Self::request(form.finish().into(), signature)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        // The signature covers the parsed form fields; sign whatever the body parses to.
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let signature = cs_channels::sms::signature(SMS_TOKEN, SMS_URL, &pairs);
        Self::request(body, Some(signature))
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        self.provider.answer(answer).await;
    }
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::Sms, "+14159354345")
    }
}

// --- WeChat Official Account (plain mode) -------------------------------------------------------

const WX_TOKEN: &str = "omnidesk-token";

#[derive(Debug)]
struct WeChatFixture {
    channel: Arc<dyn Channel>,
    provider: StandIn,
}

impl WeChatFixture {
    async fn new() -> Self {
        use cs_channels::wechat::WeChat;
        let mut provider = StandIn::start(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .await;
        provider.token = Some((
            "/cgi-bin/token".into(),
            json!({"access_token": "ACCESS", "expires_in": 7200}),
        ));
        let channel = WeChat::builder(ChannelId::new("wechat").unwrap())
            .with_token(WX_TOKEN)
            .with_app_id("wx2c2769f8efd9abc2")
            .with_app_secret("app-secret")
            .with_base_url(provider.uri())
            .with_clock(clock())
            .with_max_body_bytes(MAX_BODY)
            .with_retry(retry())
            .build()
            .unwrap();
        Self {
            channel: Arc::new(channel),
            provider,
        }
    }

    fn request(body: Bytes, at: DateTime<Utc>, signing: Signing) -> RawInbound {
        static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let nonce = format!(
            "c{}",
            NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ts = at.timestamp().to_string();
        let query = match signing {
            Signing::Genuine => format!(
                "signature={}&timestamp={ts}&nonce={nonce}",
                cs_channels::wechat::signature(&[WX_TOKEN, &ts, &nonce])
            ),
            Signing::WrongKey => format!(
                "signature={}&timestamp={ts}&nonce={nonce}",
                cs_channels::wechat::signature(&["not-the-token", &ts, &nonce])
            ),
            Signing::Missing => format!("timestamp={ts}&nonce={nonce}"),
        };
        raw(
            Method::POST,
            &format!("/webhooks/wechat?{query}"),
            &[],
            body,
        )
    }
}

#[async_trait]
impl ChannelFixture for WeChatFixture {
    fn name(&self) -> &str {
        "wechat"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        Features {
            signed: true,
            replay_window: Some(chrono::Duration::minutes(5)),
            max_body_bytes: Some(MAX_BODY),
            outbound_http: true,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        // WeChat's message ids are 64-bit numbers.
        let msg_id = e
            .provider_id
            .bytes()
            .fold(17_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{}]]></Content>\
             <MsgId>{msg_id}</MsgId></xml>",
            e.from,
            e.at.timestamp(),
            e.text
        );
        Self::request(body.into(), e.at, signing)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        Self::request(body, start(), Signing::Genuine)
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        self.provider.answer(answer).await;
    }
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::WeChat, "o-buyer-1")
    }
}

// --- web chat (frames from an authenticated socket) -----------------------------------------------

#[derive(Debug)]
struct WebChatFixture {
    channel: Arc<dyn Channel>,
}

impl WebChatFixture {
    fn new() -> Self {
        let channel = cs_channels::WebChat::builder(ChannelId::new("webchat").unwrap())
            .with_secret(b"a-secret-of-at-least-16-bytes".to_vec())
            .build()
            .unwrap();
        Self {
            channel: Arc::new(channel),
        }
    }

    fn request(body: Bytes, visitor: Option<&str>) -> RawInbound {
        let headers: Vec<(&str, &str)> = visitor
            .map(|v| vec![(cs_channels::webchat::VISITOR_HEADER, v)])
            .unwrap_or_default();
        raw(Method::POST, "/chat/ws", &headers, body)
    }
}

#[async_trait]
impl ChannelFixture for WebChatFixture {
    fn name(&self) -> &str {
        "webchat"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        // The socket authenticates the visitor before any frame; frames carry no signature.
        Features {
            signed: false,
            replay_window: None,
            max_body_bytes: None,
            outbound_http: false,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        start()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        let body = json!({"type": "message", "client_id": e.provider_id, "text": e.text});
        let visitor = (signing != Signing::Missing).then_some("v-conformance-1");
        Self::request(body.to_string().into(), visitor)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        Self::request(body, Some("v-conformance-1"))
    }
    async fn provider_answers(&self, _answer: ProviderAnswer) {}
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::WebChat, "v-conformance-1")
    }
}

#[tokio::test]
async fn webhook_conforms() {
    conformance::run(&WebhookFixture::new().await).await;
}

#[tokio::test]
async fn whatsapp_conforms() {
    conformance::run(&WhatsAppFixture::new().await).await;
}

#[tokio::test]
async fn telegram_conforms() {
    conformance::run(&TelegramFixture::new().await).await;
}

#[tokio::test]
async fn sms_conforms() {
    conformance::run(&SmsFixture::new().await).await;
}

#[tokio::test]
async fn wechat_conforms() {
    conformance::run(&WeChatFixture::new().await).await;
}

#[tokio::test]
async fn webchat_conforms() {
    conformance::run(&WebChatFixture::new()).await;
}
