//! The generic signed JSON webhook: signatures, the replay window, events in and signed JSON out.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{StoreHandler, assert_unauthenticated, clock, raw, router_for, through_router};
use cs_channels::client::RetryPolicy;
use cs_channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Webhook, sign};
use cs_channels::{Channel, Error, OutboundMessage};
use cs_core::{ChannelId, ChannelKind, Content, DeliveryStatus, Identity, ManualClock};
use http::Method;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &[u8] = b"marketplace-shared-secret";
/// 2026-11-11T10:00:00Z, the test clock's start.
const NOW: i64 = 1_794_391_200;

fn channel(clock: Arc<ManualClock>, callback: &str) -> Arc<Webhook> {
    Arc::new(
        Webhook::builder(ChannelId::new("taobao").unwrap())
            .with_secret(SECRET)
            .with_callback_url(callback)
            .with_clock(clock)
            .with_retry(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

fn signed_at(ts: i64, body: &str) -> cs_channels::RawInbound {
    let sig = sign(SECRET, ts, body.as_bytes());
    raw(
        Method::POST,
        "/webhooks/taobao",
        &[
            (TIMESTAMP_HEADER, &ts.to_string()),
            (SIGNATURE_HEADER, &sig),
        ],
        body.to_owned(),
    )
}

fn message_event(id: &str, text: &str) -> String {
    json!({"type": "message", "id": id, "from": "tb-buyer-9", "display_name": "小王",
           "content": {"type": "text", "text": text}})
    .to_string()
}

#[test]
fn signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Independently computed: python3 -c "import hmac,hashlib;
    //   print(hmac.new(b'k', b'1700000000.{}', hashlib.sha256).hexdigest())"
    assert_eq!(
        sign(b"k", 1_700_000_000, b"{}"),
        "sha256=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
    );
}

#[tokio::test]
async fn events_in_one_request_or_a_batch() {
    let c = channel(clock(), "http://unused/cb");
    let parsed = c
        .parse_inbound(signed_at(NOW, &message_event("e1", "发货了吗")))
        .await
        .unwrap();
    let m = &parsed.messages[0];
    assert_eq!(m.content, Content::text("发货了吗"));
    assert_eq!(m.from, Identity::new(ChannelKind::Webhook, "tb-buyer-9"));
    assert_eq!(m.provider_message_id.as_deref(), Some("e1"));
    let batch = json!({"events": [
        {"type": "message", "id": "e2", "from": "tb-buyer-9",
         "content": {"type": "image", "url": "https://img/1.jpg", "caption": null}},
        {"type": "status", "message_id": "out-1", "status": "read"}
    ]})
    .to_string();
    let parsed = c.parse_inbound(signed_at(NOW, &batch)).await.unwrap();
    assert_eq!(parsed.messages.len(), 1);
    assert_eq!(parsed.statuses[0].status, DeliveryStatus::Read);
}

#[tokio::test]
async fn forged_missing_expired_and_malformed_requests_store_nothing() {
    let clock = clock();
    let c = channel(clock.clone(), "http://unused/cb");
    let handler = StoreHandler::new();
    let router = router_for(c.clone(), handler.clone());
    let body = message_event("e9", "hi");
    let mut forged = signed_at(NOW, &body);
    forged.headers.insert(
        SIGNATURE_HEADER,
        sign(b"other", NOW, body.as_bytes()).parse().unwrap(),
    );
    assert_unauthenticated(c.parse_inbound(forged.clone()).await);
    assert_eq!(through_router(&router, &forged).await.0, 401);
    let missing = raw(Method::POST, "/webhooks/taobao", &[], body.clone());
    assert_eq!(through_router(&router, &missing).await.0, 401);
    // Correctly signed, replayed ten minutes later.
    let captured = signed_at(NOW, &body);
    clock.advance(Duration::minutes(10));
    assert_unauthenticated(c.parse_inbound(captured.clone()).await);
    let (status, reason) = through_router(&router, &captured).await;
    assert_eq!(status, 401);
    assert!(String::from_utf8_lossy(&reason).contains("replay window"));
    // Signed in the future beyond the window too.
    assert_unauthenticated(c.parse_inbound(signed_at(NOW + 3600, &body)).await);
    assert!(
        handler
            .messages_of(&Identity::new(ChannelKind::Webhook, "tb-buyer-9"))
            .await
            .is_empty()
    );
    let now = NOW + 600;
    let (status, reason) =
        through_router(&router, &signed_at(now, "{\"type\": \"message\"}")).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&reason).contains("malformed webhook payload"));
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    assert_eq!(through_router(&router, &signed_at(now, &big)).await.0, 413);
}

#[tokio::test]
async fn retried_events_store_one_message_even_concurrently() {
    let c = channel(clock(), "http://unused/cb");
    let handler = StoreHandler::new();
    let router = router_for(c, handler.clone());
    let request = signed_at(NOW, &message_event("e-dup", "where is it"));
    let stored = common::deliver_repeatedly(
        &router,
        &handler,
        &request,
        8,
        &Identity::new(ChannelKind::Webhook, "tb-buyer-9"),
    )
    .await;
    assert_eq!(stored.len(), 1);
}

fn outbound(content: Content) -> OutboundMessage {
    common::outbound(
        "taobao",
        Identity::new(ChannelKind::Webhook, "tb-buyer-9"),
        content,
    )
}

#[tokio::test]
async fn replies_are_posted_signed_to_the_callback() {
    let server = MockServer::start().await;
    let c = channel(clock(), &format!("{}/cb", server.uri()));
    Mock::given(method("POST"))
        .and(path("/cb"))
        .and(header_exists(SIGNATURE_HEADER))
        .and(body_partial_json(
            json!({"to": "tb-buyer-9", "author": "bot",
            "content": {"type": "text", "text": "已发货"}}),
        ))
        .respond_with(|req: &Request| {
            // The receiver checks our signature the same way we check theirs.
            let ts: i64 = req.headers[TIMESTAMP_HEADER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let ok = req.headers[SIGNATURE_HEADER].to_str().unwrap() == sign(SECRET, ts, &req.body);
            if ok && ts == NOW {
                ResponseTemplate::new(200).set_body_json(json!({"id": "bridge-1"}))
            } else {
                ResponseTemplate::new(401)
            }
        })
        .expect(1)
        .mount(&server)
        .await;
    let r = c.send(&outbound(Content::text("已发货"))).await.unwrap();
    assert_eq!(r.provider_message_id.as_deref(), Some("bridge-1"));
    server.verify().await;
    server.reset().await;

    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }) && e.is_temporary());
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422))
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(matches!(e, Error::Rejected { .. }) && !e.is_temporary());
}
