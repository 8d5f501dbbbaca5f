//! The webhook router: several channels side by side, unknown ids, duplicate mounts, and how
//! engine failures are answered so providers retry.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{StoreHandler, clock, raw, through_router};
use cs_channels::router::WebhookRouter;
use cs_channels::telegram::Telegram;
use cs_channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Webhook, sign};
use cs_channels::{Channel, Delivered, Error, InboundHandler, InboundMessage};
use cs_core::{ChannelId, ChannelKind, Identity, Message};
use http::Method;
use serde_json::json;

const NOW: i64 = 1_794_391_200;

fn webhook() -> Arc<dyn Channel> {
    Arc::new(
        Webhook::builder(ChannelId::new("jd").unwrap())
            .with_secret(*b"0123456789abcdef")
            .with_clock(clock())
            .build()
            .unwrap(),
    )
}

fn telegram() -> Arc<dyn Channel> {
    Arc::new(
        Telegram::builder(ChannelId::new("tg").unwrap())
            .with_bot_token("1:A")
            .with_secret_token("s3cret")
            .build()
            .unwrap(),
    )
}

fn jd_event(id: &str) -> cs_channels::RawInbound {
    let body = json!({"type": "message", "id": id, "from": "jd-7",
        "content": {"type": "text", "text": "hi"}})
    .to_string();
    let sig = sign(b"0123456789abcdef", NOW, body.as_bytes());
    raw(
        Method::POST,
        "/webhooks/jd",
        &[
            (TIMESTAMP_HEADER, &NOW.to_string()),
            (SIGNATURE_HEADER, &sig),
        ],
        body,
    )
}

#[tokio::test]
async fn every_channel_answers_at_its_own_path() {
    let handler = StoreHandler::new();
    let router = WebhookRouter::new(handler.clone())
        .with_channels([webhook(), telegram()])
        .build()
        .unwrap();
    assert_eq!(through_router(&router, &jd_event("a")).await.0, 200);
    let tg = raw(
        Method::POST,
        "/webhooks/tg",
        &[("x-telegram-bot-api-secret-token", "s3cret")],
        json!({"update_id": 1, "message": {"chat": {"id": 5}, "date": NOW, "text": "yo"}})
            .to_string(),
    );
    assert_eq!(through_router(&router, &tg).await.0, 200);
    // The Telegram request at the marketplace's path is refused by that channel's check.
    let mut misrouted = tg.clone();
    misrouted.uri = "/webhooks/jd".parse().unwrap();
    assert_eq!(through_router(&router, &misrouted).await.0, 401);
    let mut unknown = tg;
    unknown.uri = "/webhooks/nope".parse().unwrap();
    assert_eq!(through_router(&router, &unknown).await.0, 404);
    assert_eq!(
        handler
            .messages_of(&Identity::new(ChannelKind::Webhook, "jd-7"))
            .await
            .len(),
        1
    );
    assert_eq!(
        handler
            .messages_of(&Identity::new(ChannelKind::Telegram, "5"))
            .await
            .len(),
        1
    );
}

#[test]
fn the_same_channel_id_cannot_be_mounted_twice() {
    let r = WebhookRouter::new(StoreHandler::new())
        .with_channel(webhook())
        .with_channel(webhook())
        .build();
    assert!(matches!(r, Err(Error::InvalidInput { .. })));
}

#[derive(Debug)]
struct Failing {
    temporary: bool,
}

#[async_trait]
impl InboundHandler for Failing {
    async fn handle(&self, _m: InboundMessage) -> cs_channels::Result<Delivered> {
        Err(Error::Handler {
            source: "database down".into(),
            temporary: self.temporary,
        })
    }

    async fn history(
        &self,
        _c: &ChannelId,
        _i: &Identity,
        _l: usize,
    ) -> cs_channels::Result<Vec<Message>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn engine_failures_make_the_provider_retry() {
    for (temporary, status) in [(true, 503), (false, 500)] {
        let router = WebhookRouter::new(Arc::new(Failing { temporary }))
            .with_channel(webhook())
            .build()
            .unwrap();
        let (got, body) = through_router(&router, &jd_event("b")).await;
        assert_eq!(got, status);
        assert!(String::from_utf8_lossy(&body).contains("database down"));
    }
}

#[tokio::test]
async fn bodies_over_the_router_limit_are_refused() {
    let router = WebhookRouter::new(StoreHandler::new())
        .with_channel(webhook())
        .with_max_body_bytes(1024)
        .build()
        .unwrap();
    let mut big = jd_event("c");
    big.body = vec![b' '; 4096].into();
    let (status, body) = through_router(&router, &big).await;
    assert_eq!(status, 413);
    // The JSON the router promises, not axum's plain-text rejection.
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
    assert_eq!(body["error"], "payload_too_large", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("1024"), "{body}");
}

#[test]
fn channels_are_built_from_configuration_with_secrets_hidden() {
    let configs: Vec<cs_channels::router::ChannelConfig> = serde_json::from_value(json!([
        {"kind": "wechat", "id": "wx", "token": "tok-SECRET1", "app_id": "wx1",
         "app_secret": "SECRET2", "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
        {"kind": "whatsapp", "id": "wa", "app_secret": "SECRET3", "verify_token": "SECRET4",
         "access_token": "SECRET5", "phone_number_id": "123"},
        {"kind": "telegram", "id": "tg", "bot_token": "1:SECRET6", "secret_token": "SECRET7"},
        {"kind": "sms", "id": "sms", "account_sid": "AC1", "auth_token": "SECRET8",
         "webhook_url": "https://shop.example/webhooks/sms", "from": "+15550001111"},
        {"kind": "webhook", "id": "jd", "secret": "SECRET9-SECRET9-", "callback_url": "https://jd.example/cb"}
    ]))
    .unwrap();
    let debug = format!("{configs:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    let channels: Vec<Arc<dyn Channel>> = configs
        .into_iter()
        .map(|c| c.build(clock()).unwrap())
        .collect();
    let kinds: Vec<_> = channels.iter().map(|c| c.info().kind).collect();
    assert_eq!(
        kinds,
        [
            ChannelKind::WeChat,
            ChannelKind::WhatsApp,
            ChannelKind::Telegram,
            ChannelKind::Sms,
            ChannelKind::Webhook
        ]
    );
    assert!(!format!("{channels:?}").contains("SECRET"));
    let mounted = WebhookRouter::new(StoreHandler::new())
        .with_channels(channels)
        .build();
    assert!(mounted.is_ok());
    // Unknown keys and kinds are refused, not ignored.
    let typo = serde_json::from_value::<cs_channels::router::ChannelConfig>(
        json!({"kind": "telegram", "id": "tg", "bot_token": "1:A", "secret_tokn": "x"}),
    );
    assert!(typo.is_err());
    let unknown = serde_json::from_value::<cs_channels::router::ChannelConfig>(
        json!({"kind": "fax", "id": "f"}),
    );
    assert!(unknown.is_err());
}
