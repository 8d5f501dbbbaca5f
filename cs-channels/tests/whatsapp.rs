//! WhatsApp Cloud API: verification, X-Hub-Signature-256, messages and statuses, the send API
//! and the 24 h customer-service window.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{StoreHandler, assert_unauthenticated, clock, raw, router_for, through_router};
use cs_channels::client::RetryPolicy;
use cs_channels::whatsapp::{WhatsApp, sign};
use cs_channels::{Channel, Error, OutboundMessage};
use cs_core::{ChannelId, ChannelKind, Content, DeliveryStatus, Identity, ManualClock};
use http::Method;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "meta-app-secret";
/// 2026-11-11T10:00:00Z, the test clock's start.
const NOW: i64 = 1_794_391_200;

fn channel(clock: Arc<ManualClock>, base: &str) -> Arc<WhatsApp> {
    Arc::new(
        WhatsApp::builder(ChannelId::new("whatsapp").unwrap())
            .with_app_secret(SECRET)
            .with_verify_token("verify-me")
            .with_access_token("EAAG-token")
            .with_phone_number_id("1234567890")
            .with_base_url(base)
            .with_clock(clock)
            .with_retry(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

fn notification(messages: serde_json::Value, statuses: serde_json::Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1234567890"},
            "contacts": [{"profile": {"name": "Mei"}, "wa_id": "8613800138000"}],
            "messages": messages,
            "statuses": statuses,
        }}]}]
    })
    .to_string()
}

fn text(id: &str, body: &str, ts: i64) -> serde_json::Value {
    json!({"from": "8613800138000", "id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": body}})
}

fn signed(body: String) -> cs_channels::RawInbound {
    let sig = sign(SECRET.as_bytes(), body.as_bytes());
    raw(
        Method::POST,
        "/webhooks/whatsapp",
        &[("x-hub-signature-256", sig.as_str())],
        body,
    )
}

#[test]
fn signature_is_hex_hmac_sha256_of_the_raw_body() {
    // Meta publishes no example vector; this is the well-known HMAC-SHA256 example
    // ("key", "The quick brown fox jumps over the lazy dog") from the HMAC article of Wikipedia.
    assert_eq!(
        sign(b"key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[tokio::test]
async fn hub_challenge_verification() {
    let c = channel(clock(), "http://unused");
    let ok = raw(
        Method::GET,
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
        &[],
        "",
    );
    assert_eq!(
        &c.parse_inbound(ok).await.unwrap().response.body[..],
        b"1158201444"
    );
    let wrong = raw(
        Method::GET,
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        &[],
        "",
    );
    assert_unauthenticated(c.parse_inbound(wrong).await);
}

#[tokio::test]
async fn messages_and_statuses_are_parsed() {
    let c = channel(clock(), "http://unused");
    let body = notification(
        json!([
            text("wamid.1", "Where is my order?", NOW),
            {"from": "8613800138000", "id": "wamid.2", "timestamp": NOW.to_string(), "type": "image",
             "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "caption": "broken"}},
            {"from": "8613800138000", "id": "wamid.3", "timestamp": NOW.to_string(), "type": "location",
             "location": {"latitude": 31.23, "longitude": 121.47, "name": "Shanghai"}},
        ]),
        json!([{"id": "wamid.OUT", "status": "read", "timestamp": NOW.to_string(), "recipient_id": "8613800138000"}]),
    );
    let parsed = c.parse_inbound(signed(body)).await.unwrap();
    assert_eq!(parsed.messages.len(), 3);
    let m = &parsed.messages[0];
    assert_eq!(m.content, Content::text("Where is my order?"));
    assert_eq!(m.display_name.as_deref(), Some("Mei"));
    assert_eq!(
        m.from,
        Identity::new(ChannelKind::WhatsApp, "8613800138000")
    );
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.1"));
    assert_eq!(
        parsed.messages[1].content,
        Content::Image {
            url: "http://unused/v21.0/MEDIA1".into(),
            caption: Some("broken".into())
        }
    );
    assert!(
        matches!(parsed.messages[2].content, Content::Location { latitude, .. } if latitude == 31.23)
    );
    assert_eq!(parsed.statuses[0].provider_message_id, "wamid.OUT");
    assert_eq!(parsed.statuses[0].status, DeliveryStatus::Read);
}

#[tokio::test]
async fn forged_missing_and_malformed_notifications_store_nothing() {
    let c = channel(clock(), "http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c.clone(), handler.clone());
    let body = notification(json!([text("wamid.9", "hi", NOW)]), json!([]));
    let forged = raw(
        Method::POST,
        "/webhooks/whatsapp",
        &[(
            "x-hub-signature-256",
            &sign(b"wrong-secret", body.as_bytes()),
        )],
        body.clone(),
    );
    assert_unauthenticated(c.parse_inbound(forged.clone()).await);
    assert_eq!(through_router(&router, &forged).await.0, 401);
    let missing = raw(Method::POST, "/webhooks/whatsapp", &[], body);
    assert_eq!(through_router(&router, &missing).await.0, 401);
    assert!(
        handler
            .messages_of(&Identity::new(ChannelKind::WhatsApp, "8613800138000"))
            .await
            .is_empty()
    );
    let (status, reason) = through_router(&router, &signed("{not json".into())).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&reason).contains("malformed WhatsApp payload"));
    let big = signed(notification(
        json!([text("wamid.10", &"x".repeat(600_000), NOW)]),
        json!([]),
    ));
    assert_eq!(through_router(&router, &big).await.0, 413);
}

#[tokio::test]
async fn retried_notifications_store_one_message_and_report_statuses() {
    let c = channel(clock(), "http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c, handler.clone());
    let request = signed(notification(
        json!([text("wamid.dup", "refund please", NOW)]),
        json!([{"id": "wamid.OUT", "status": "delivered"}]),
    ));
    let stored = common::deliver_repeatedly(
        &router,
        &handler,
        &request,
        6,
        &Identity::new(ChannelKind::WhatsApp, "8613800138000"),
    )
    .await;
    assert_eq!(stored.len(), 1);
    let statuses = handler.statuses();
    assert!(!statuses.is_empty());
    assert_eq!(statuses[0].1.status, DeliveryStatus::Delivered);
}

fn outbound(content: Content) -> OutboundMessage {
    common::outbound(
        "whatsapp",
        Identity::new(ChannelKind::WhatsApp, "8613800138000"),
        content,
    )
}

#[tokio::test]
async fn sends_inside_the_window_and_refuses_outside_it() {
    let server = MockServer::start().await;
    let clock = clock();
    let c = channel(clock.clone(), &server.uri());
    // Nobody wrote yet: the window is closed, and nothing reaches Meta.
    let e = c.send(&outbound(Content::text("hello"))).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::ReplyWindowClosed {
                last_inbound: None,
                ..
            }
        ),
        "{e:?}"
    );

    c.parse_inbound(signed(notification(
        json!([text("wamid.a", "hi", NOW)]),
        json!([]),
    )))
    .await
    .unwrap();
    Mock::given(method("POST"))
        .and(path("/v21.0/1234567890/messages"))
        .and(header("authorization", "Bearer EAAG-token"))
        .and(body_partial_json(json!({
            "messaging_product": "whatsapp", "to": "8613800138000", "type": "text",
            "text": {"body": "Your parcel ships today"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "8613800138000", "wa_id": "8613800138000"}],
            "messages": [{"id": "wamid.SENT"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    clock.advance(Duration::hours(23));
    let r = c
        .send(&outbound(Content::text("Your parcel ships today")))
        .await
        .unwrap();
    assert_eq!(r.provider_message_id.as_deref(), Some("wamid.SENT"));

    clock.advance(Duration::hours(2));
    let e = c.send(&outbound(Content::text("late"))).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::ReplyWindowClosed {
                last_inbound: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_temporary());
}

#[tokio::test]
async fn provider_failures_map_to_typed_errors() {
    let server = MockServer::start().await;
    let c = channel(clock(), &server.uri());
    c.record_inbound("8613800138000", common::start());
    let reply = |status: u16, body: serde_json::Value| {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .up_to_n_times(1)
    };
    reply(
        500,
        json!({"error": {"message": "Service temporarily unavailable", "code": 2}}),
    )
    .mount(&server)
    .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(e.is_temporary(), "{e:?}");
    reply(
        400,
        json!({"error": {"message": "Re-engagement message", "code": 131047}}),
    )
    .mount(&server)
    .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(matches!(e, Error::ReplyWindowClosed { .. }), "{e:?}");
    reply(
        400,
        json!({"error": {"message": "Invalid parameter", "code": 100}}),
    )
    .mount(&server)
    .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(matches!(e, Error::Rejected { .. }), "{e:?}");
    let caps = &c.info().capabilities;
    assert_eq!(caps.reply_window, Some(Duration::hours(24)));
    assert!(caps.read_receipts);
}
