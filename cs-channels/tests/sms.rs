//! SMS (Twilio-style): the signature against the examples of Twilio's official SDK test suite,
//! inbound SMS/MMS and status callbacks, TwiML answers, REST sends and refusals.

mod common;

use std::sync::Arc;

use common::{StoreHandler, assert_unauthenticated, raw, router_for, through_router};
use cs_channels::client::RetryPolicy;
use cs_channels::sms::{Sms, signature};
use cs_channels::{Channel, Error, OutboundMessage};
use cs_core::{ChannelId, ChannelKind, Content, DeliveryStatus, Identity};
use http::Method;
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The auth token of twilio-ruby's `request_validator_spec.rb`.
const TOKEN: &str = "2bd9e9638872de601313dc77410d3b23";
const SMS_URL: &str = "http://twiliotests.heroku.com/validate/sms";

/// The SMS request of twilio-ruby's `request_validator_spec.rb`.
fn official_sms_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ToState", "CA"),
        ("FromState", "CA"),
        ("AccountSid", "ACba8bc05eacf94afdae398e642c9cc32d"),
        ("SmsMessageSid", "SM2003cbd5e6a3701999aa3e5f20ff2787"),
        ("Body", "Orly"),
        ("From", "+14159354345"),
        ("FromCity", "SAN FRANCISCO"),
        ("SmsStatus", "received"),
        ("FromZip", "94107"),
        ("FromCountry", "US"),
        ("To", "+14158141819"),
        ("ToCity", "SAN FRANCISCO"),
        ("ToZip", "94105"),
        ("ToCountry", "US"),
        ("ApiVersion", "2010-04-01"),
        ("SmsSid", "SM2003cbd5e6a3701999aa3e5f20ff2787"),
    ]
}

fn form(params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn channel(base: &str) -> Arc<Sms> {
    Arc::new(
        Sms::builder(ChannelId::new("sms").unwrap())
            .with_account_sid("ACba8bc05eacf94afdae398e642c9cc32d")
            .with_auth_token(TOKEN)
            .with_from("+14158141819")
            .with_webhook_url(SMS_URL)
            .with_base_url(base)
            .with_retry(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

fn signed(params: &[(&str, &str)]) -> cs_channels::RawInbound {
    let sig = signature(TOKEN, SMS_URL, params);
    raw(
        Method::POST,
        "/webhooks/sms",
        &[
            ("x-twilio-signature", sig.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        form(params),
    )
}

#[test]
fn signatures_match_twilios_official_sdk_examples() {
    assert_eq!(
        signature(TOKEN, SMS_URL, &official_sms_params()),
        "mxeiv65lEe0b8L6LdVw2jgJi8yw="
    );
    let voice = [
        ("ToState", "California"),
        ("CalledState", "California"),
        ("Direction", "inbound"),
        ("FromState", "CA"),
        ("AccountSid", "ACba8bc05eacf94afdae398e642c9cc32d"),
        ("Caller", "+14153595711"),
        ("CallerZip", "94108"),
        ("CallerCountry", "US"),
        ("From", "+14153595711"),
        ("FromCity", "SAN FRANCISCO"),
        ("CallerCity", "SAN FRANCISCO"),
        ("To", "+14157669926"),
        ("FromZip", "94108"),
        ("FromCountry", "US"),
        ("ToCity", ""),
        ("CallStatus", "ringing"),
        ("CalledCity", ""),
        ("CallerState", "CA"),
        ("CalledZip", ""),
        ("ToZip", ""),
        ("ToCountry", "US"),
        ("CallSid", "CA136d09cd59a3c0ec8dbff44da5c03f31"),
        ("CalledCountry", "US"),
        ("Called", "+14157669926"),
        ("ApiVersion", "2010-04-01"),
        ("ApplicationSid", "AP44efecad51364e80b133bb7c07eb8204"),
    ];
    assert_eq!(
        signature(
            TOKEN,
            "http://twiliotests.heroku.com/validate/voice",
            &voice
        ),
        "oVb2kXoVy8GEfwBDjR8bk/ZZ6eA="
    );
}

#[tokio::test]
async fn the_official_example_request_is_accepted_end_to_end() {
    let c = channel("http://unused");
    let sig = "mxeiv65lEe0b8L6LdVw2jgJi8yw=";
    let request = raw(
        Method::POST,
        "/webhooks/sms",
        &[("x-twilio-signature", sig)],
        form(&official_sms_params()),
    );
    let parsed = c.parse_inbound(request).await.unwrap();
    let m = &parsed.messages[0];
    assert_eq!(m.content, Content::text("Orly"));
    assert_eq!(m.from, Identity::new(ChannelKind::Sms, "+14159354345"));
    assert_eq!(
        m.provider_message_id.as_deref(),
        Some("SM2003cbd5e6a3701999aa3e5f20ff2787")
    );
    assert_eq!(parsed.response.content_type, Some("text/xml"));
    assert_eq!(
        &parsed.response.body[..],
        br#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
    );
}

#[tokio::test]
async fn forged_missing_and_tampered_requests_store_nothing() {
    let c = channel("http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c.clone(), handler.clone());
    let params = official_sms_params();
    let mut tampered = signed(&params);
    tampered.body = form(&[("Body", "Send me a refund"), ("From", "+14159354345")]).into();
    assert_unauthenticated(c.parse_inbound(tampered.clone()).await);
    assert_eq!(through_router(&router, &tampered).await.0, 401);
    let missing = raw(Method::POST, "/webhooks/sms", &[], form(&params));
    assert_eq!(through_router(&router, &missing).await.0, 401);
    let forged = raw(
        Method::POST,
        "/webhooks/sms",
        &[("x-twilio-signature", "mxeiv65lEe0b8L6LdVw2jgJi8yx=")],
        form(&params),
    );
    assert_eq!(through_router(&router, &forged).await.0, 401);
    let buyer = Identity::new(ChannelKind::Sms, "+14159354345");
    assert!(handler.messages_of(&buyer).await.is_empty());
    // Signed but oversized, and signed but without a sender.
    let big = signed(&[("MessageSid", "SM1"), ("Body", &"x".repeat(70_000))]);
    assert_eq!(through_router(&router, &big).await.0, 413);
    let (status, body) =
        through_router(&router, &signed(&[("MessageSid", "SM1"), ("Body", "hi")])).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("missing From"));
}

#[tokio::test]
async fn mms_media_and_status_callbacks() {
    let c = channel("http://unused");
    let parsed = c
        .parse_inbound(signed(&[
            ("MessageSid", "MM1"),
            ("From", "+8613800138000"),
            ("Body", "damaged on arrival"),
            ("NumMedia", "2"),
            ("MediaUrl0", "https://media.example/p/1"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://media.example/p/2.pdf"),
            ("MediaContentType1", "application/pdf"),
        ]))
        .await
        .unwrap();
    let ids: Vec<_> = parsed
        .messages
        .iter()
        .map(|m| m.provider_message_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["MM1", "MM1:0", "MM1:1"]);
    assert!(
        matches!(&parsed.messages[1].content, Content::Image { url, .. } if url == "https://media.example/p/1")
    );
    assert!(
        matches!(&parsed.messages[2].content, Content::File { mime: Some(m), .. } if m == "application/pdf")
    );

    let status = c
        .parse_inbound(signed(&[
            ("MessageSid", "SM9"),
            ("MessageStatus", "delivered"),
        ]))
        .await
        .unwrap();
    assert!(status.messages.is_empty());
    assert_eq!(status.statuses[0].provider_message_id, "SM9");
    assert_eq!(status.statuses[0].status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn retried_deliveries_store_one_message_even_concurrently() {
    let c = channel("http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c, handler.clone());
    let request = signed(&official_sms_params());
    let buyer = Identity::new(ChannelKind::Sms, "+14159354345");
    let stored = common::deliver_repeatedly(&router, &handler, &request, 6, &buyer).await;
    assert_eq!(stored.len(), 1);
}

fn outbound(content: Content) -> OutboundMessage {
    common::outbound(
        "sms",
        Identity::new(ChannelKind::Sms, "+14159354345"),
        content,
    )
}

#[tokio::test]
async fn sends_use_basic_auth_and_map_failures() {
    let server = MockServer::start().await;
    let c = channel(&server.uri());
    let messages = "/2010-04-01/Accounts/ACba8bc05eacf94afdae398e642c9cc32d/Messages.json";
    // "ACba...:2bd9..." in Base64.
    let auth = "Basic QUNiYThiYzA1ZWFjZjk0YWZkYWUzOThlNjQyYzljYzMyZDoyYmQ5ZTk2Mzg4NzJkZTYwMTMxM2RjNzc0MTBkM2IyMw==";
    Mock::given(method("POST"))
        .and(path(messages))
        .and(header("authorization", auth))
        .and(body_string_contains("To=%2B14159354345"))
        .and(body_string_contains("From=%2B14158141819"))
        .and(body_string_contains("MediaUrl=https%3A%2F%2Fshop%2Fp.png"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "MMabc", "status": "queued"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let r = c
        .send(&outbound(Content::Image {
            url: "https://shop/p.png".into(),
            caption: Some("your parcel".into()),
        }))
        .await
        .unwrap();
    assert_eq!(r.provider_message_id.as_deref(), Some("MMabc"));
    server.verify().await;
    server.reset().await;

    Mock::given(method("POST"))
        .and(path(messages))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("hi"))).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }) && e.is_temporary());
    Mock::given(method("POST"))
        .and(path(messages))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
        ))
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("hi"))).await.unwrap_err();
    assert!(
        matches!(&e, Error::Rejected { reason } if reason.contains("21211")),
        "{e:?}"
    );
    assert!(!e.is_temporary());
    let e = c
        .send(&outbound(Content::Location {
            latitude: 1.0,
            longitude: 2.0,
            label: None,
        }))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }));
}

#[tokio::test]
async fn temporary_failures_are_retried_with_backoff_then_succeed() {
    let server = MockServer::start().await;
    let c = Sms::builder(ChannelId::new("sms").unwrap())
        .with_account_sid("AC1")
        .with_auth_token("t")
        .with_from("+1")
        .with_webhook_url(SMS_URL)
        .with_base_url(server.uri())
        .with_retry(RetryPolicy {
            max_retries: 2,
            initial_backoff: std::time::Duration::ZERO,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SMok"})))
        .expect(1)
        .mount(&server)
        .await;
    let r = c.send(&outbound(Content::text("hi"))).await.unwrap();
    assert_eq!(r.provider_message_id.as_deref(), Some("SMok"));
}
