//! Telegram Bot API: the secret-token header, update de-duplication, media and sends.

mod common;

use std::sync::Arc;

use common::{StoreHandler, assert_unauthenticated, raw, router_for, through_router};
use cs_channels::client::RetryPolicy;
use cs_channels::telegram::Telegram;
use cs_channels::{Channel, Error, OutboundMessage};
use cs_core::{CardButton, ChannelId, ChannelKind, Content, Identity, RichCard};
use http::Method;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "tg_secret-123";

fn channel(base: &str) -> Arc<Telegram> {
    Arc::new(
        Telegram::builder(ChannelId::new("telegram").unwrap())
            .with_bot_token("123456:ABC-DEF")
            .with_secret_token(SECRET)
            .with_base_url(base)
            .with_retry(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

fn update(update_id: i64, message: serde_json::Value) -> cs_channels::RawInbound {
    raw(
        Method::POST,
        "/webhooks/telegram",
        &[("x-telegram-bot-api-secret-token", SECRET)],
        json!({"update_id": update_id, "message": message}).to_string(),
    )
}

fn msg(extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({
        "message_id": 7,
        "from": {"id": 4242, "is_bot": false, "first_name": "Ivan", "last_name": "P", "language_code": "ru"},
        "chat": {"id": 4242, "type": "private"},
        "date": 1_794_391_200,
    });
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    m
}

#[test]
fn builder_enforces_telegrams_secret_token_alphabet() {
    let b = |s: &str| {
        Telegram::builder(ChannelId::new("t").unwrap())
            .with_bot_token("1:A")
            .with_secret_token(s)
            .build()
    };
    assert!(b("ok_token-1").is_ok());
    assert!(b("no spaces").is_err());
    assert!(b("").is_err());
}

#[tokio::test]
async fn updates_are_normalised() {
    let c = channel("http://unused");
    let parsed = c
        .parse_inbound(update(1, msg(json!({"text": "Где мой заказ?"}))))
        .await
        .unwrap();
    let m = &parsed.messages[0];
    assert_eq!(m.content, Content::text("Где мой заказ?"));
    assert_eq!(m.from, Identity::new(ChannelKind::Telegram, "4242"));
    assert_eq!(m.provider_message_id.as_deref(), Some("1"));
    assert_eq!(m.display_name.as_deref(), Some("Ivan P"));
    assert_eq!(m.language.as_deref(), Some("ru"));
    let photo = c
        .parse_inbound(update(
            2,
            msg(json!({"photo": [
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                {"file_id": "large", "file_unique_id": "l", "width": 800, "height": 800}
            ], "caption": "scratch"})),
        ))
        .await
        .unwrap();
    assert_eq!(
        photo.messages[0].content,
        Content::Image {
            url: "telegram-file:large".into(),
            caption: Some("scratch".into())
        }
    );
    let doc = c
        .parse_inbound(update(
            3,
            msg(json!({"document": {"file_id": "d1", "file_unique_id": "u", "file_name": "invoice.pdf", "mime_type": "application/pdf", "file_size": 1000}})),
        ))
        .await
        .unwrap();
    assert!(
        matches!(&doc.messages[0].content, Content::File { name, size: Some(1000), .. } if name == "invoice.pdf")
    );
    let service = c
        .parse_inbound(update(4, msg(json!({"new_chat_title": "x"}))))
        .await
        .unwrap();
    assert!(service.messages.is_empty());
    let callback = raw(
        Method::POST,
        "/webhooks/telegram",
        &[("x-telegram-bot-api-secret-token", SECRET)],
        json!({"update_id": 5, "callback_query": {
            "id": "cq1", "from": {"id": 4242, "first_name": "Ivan"},
            "message": msg(json!({"text": "Pick one"})), "data": "refund"
        }})
        .to_string(),
    );
    let parsed = c.parse_inbound(callback).await.unwrap();
    assert!(
        matches!(&parsed.messages[0].content, Content::Event { name, data } if name == "callback_query" && data["data"] == "refund")
    );
}

#[tokio::test]
async fn wrong_or_missing_secret_tokens_store_nothing() {
    let c = channel("http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c.clone(), handler.clone());
    let body = json!({"update_id": 9, "message": msg(json!({"text": "hi"}))}).to_string();
    let wrong = raw(
        Method::POST,
        "/webhooks/telegram",
        &[("x-telegram-bot-api-secret-token", "guess")],
        body.clone(),
    );
    assert_unauthenticated(c.parse_inbound(wrong.clone()).await);
    assert_eq!(through_router(&router, &wrong).await.0, 401);
    let missing = raw(Method::POST, "/webhooks/telegram", &[], body);
    assert_eq!(through_router(&router, &missing).await.0, 401);
    assert!(
        handler
            .messages_of(&Identity::new(ChannelKind::Telegram, "4242"))
            .await
            .is_empty()
    );
    let malformed = raw(
        Method::POST,
        "/webhooks/telegram",
        &[("x-telegram-bot-api-secret-token", SECRET)],
        "{\"update_id\": \"x\"}",
    );
    let (status, reason) = through_router(&router, &malformed).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&reason).contains("malformed Telegram payload"));
}

#[tokio::test]
async fn the_same_update_id_is_stored_once() {
    let c = channel("http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c, handler.clone());
    let request = update(77, msg(json!({"text": "hello"})));
    let stored = common::deliver_repeatedly(
        &router,
        &handler,
        &request,
        6,
        &Identity::new(ChannelKind::Telegram, "4242"),
    )
    .await;
    assert_eq!(stored.len(), 1);
}

fn outbound(content: Content) -> OutboundMessage {
    common::outbound(
        "telegram",
        Identity::new(ChannelKind::Telegram, "4242"),
        content,
    )
}

#[tokio::test]
async fn sends_text_media_and_cards_and_map_failures() {
    let server = MockServer::start().await;
    let c = channel(&server.uri());
    let ok = |id: i64| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"ok": true, "result": {"message_id": id, "chat": {"id": 4242}}}))
    };
    Mock::given(method("POST"))
        .and(path("/bot123456:ABC-DEF/sendMessage"))
        .and(body_partial_json(json!({"chat_id": "4242", "text": "hi"})))
        .respond_with(ok(10))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bot123456:ABC-DEF/sendPhoto"))
        .and(body_partial_json(
            json!({"photo": "https://shop/p.png", "caption": "look"}),
        ))
        .respond_with(ok(11))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bot123456:ABC-DEF/sendMessage"))
        .and(body_partial_json(
            json!({"reply_markup": {"inline_keyboard": [
                [{"text": "Track", "url": "https://shop/t/1"}],
                [{"text": "Refund", "callback_data": "refund"}]
            ]}}),
        ))
        .respond_with(ok(12))
        .expect(1)
        .mount(&server)
        .await;
    let r = c.send(&outbound(Content::text("hi"))).await.unwrap();
    assert_eq!(r.provider_message_id.as_deref(), Some("4242:10"));
    c.send(&outbound(Content::Image {
        url: "https://shop/p.png".into(),
        caption: Some("look".into()),
    }))
    .await
    .unwrap();
    c.send(&outbound(Content::RichCard(RichCard {
        title: "Order 1".into(),
        body: None,
        image_url: None,
        buttons: vec![
            CardButton {
                label: "Track".into(),
                value: "https://shop/t/1".into(),
            },
            CardButton {
                label: "Refund".into(),
                value: "refund".into(),
            },
        ],
    })))
    .await
    .unwrap();
    server.verify().await;
    server.reset().await;

    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3"}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(e.is_temporary(), "{e:?}");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        ))
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(
        matches!(&e, Error::Rejected { reason } if reason.contains("blocked")),
        "{e:?}"
    );
    assert!(
        !e.to_string().contains("ABC-DEF"),
        "the bot token leaked: {e}"
    );
}
