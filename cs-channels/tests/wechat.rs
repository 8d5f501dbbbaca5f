//! WeChat Official Account: signatures and safe mode against the official SDK's published
//! examples, every inbound kind, passive replies, the customer-service API with its access
//! token, and refusals.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{StoreHandler, assert_unauthenticated, clock, raw, router_for, through_router};
use cs_channels::wechat::{MsgCrypt, WeChat, signature};
use cs_channels::{Channel, Error, OutboundMessage};
use cs_core::{ChannelId, ChannelKind, Content, DeliveryStatus, Identity, ManualClock};
use http::Method;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "omnidesk-token";
/// 2026-11-11T10:00:00Z, the test clock's start.
const NOW: i64 = 1_794_391_200;
/// The key of the official Python sample (`Sample.py` of `WXBizMsgCrypt`, Tencent 2014).
const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx2c2769f8efd9abc2";

fn channel(clock: Arc<ManualClock>, safe: bool, base: &str) -> Arc<WeChat> {
    let mut b = WeChat::builder(ChannelId::new("wechat").unwrap())
        .with_token(TOKEN)
        .with_app_id(APP_ID)
        .with_app_secret("app-secret")
        .with_welcome("欢迎光临")
        .with_base_url(base)
        .with_clock(clock)
        .with_retry(cs_channels::client::RetryPolicy::none());
    if safe {
        b = b.with_encoding_aes_key(SAMPLE_KEY);
    }
    Arc::new(b.build().unwrap())
}

fn signed_query(ts: i64, nonce: &str) -> String {
    let ts = ts.to_string();
    format!(
        "signature={}&timestamp={ts}&nonce={nonce}",
        signature(&[TOKEN, &ts, nonce])
    )
}

fn text_xml(msg_id: &str, text: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o-buyer-1]]></FromUserName>\
         <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>\
         <MsgId>{msg_id}</MsgId></xml>"
    )
}

/// A fresh nonce: WeChat signs each request with its own, and a signed pair is bound to the
/// first body it carried.
fn nonce() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "n{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn post(xml: String) -> cs_channels::RawInbound {
    raw(
        Method::POST,
        &format!("/webhooks/wechat?{}", signed_query(NOW, &nonce())),
        &[],
        xml,
    )
}

#[test]
fn official_python_sample_verifies_and_decrypts_byte_for_byte() {
    // The decryption example of the official WXBizMsgCrypt Python sample.
    let crypt = MsgCrypt::new("spamtest", SAMPLE_KEY, APP_ID).unwrap();
    let encrypted = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
    assert_eq!(
        crypt.msg_signature("1409735669", "1320562132", encrypted),
        "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    );
    let plain = crypt
        .verify_and_decrypt(
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
            "1409735669",
            "1320562132",
            encrypted,
        )
        .unwrap();
    // The sample's plain-text twin of the same message.
    assert!(plain.starts_with("<xml>"), "{plain}");
    assert!(
        plain.contains("<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>")
    );
    assert!(plain.contains("<Content><![CDATA[abcdteT]]></Content>"));
    assert!(plain.contains("<MsgId>6054768590064713728</MsgId>"));
    // Encrypting again with the sender's random prefix reproduces the published ciphertext.
    let (random, msg) = crypt.decrypt_parts(encrypted).unwrap();
    assert_eq!(crypt.encrypt_with(random, &msg), encrypted);
    // A wrong signature or another app id is refused.
    assert_unauthenticated(crypt.verify_and_decrypt(
        "0000000000000000000000000000000000000000",
        "1409735669",
        "1320562132",
        encrypted,
    ));
    let other = MsgCrypt::new("spamtest", SAMPLE_KEY, "wx0000000000000000").unwrap();
    assert_unauthenticated(other.decrypt(encrypted));
}

#[test]
fn official_csharp_sample_verifies_and_decrypts() {
    // The decryption example of the official WXBizMsgCrypt C# sample (Sample.cs).
    let crypt = MsgCrypt::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
    )
    .unwrap();
    let encrypted = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
    let plain = crypt
        .verify_and_decrypt(
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            encrypted,
        )
        .unwrap();
    assert!(
        plain.contains("<MsgType><![CDATA[text]]></MsgType>"),
        "{plain}"
    );
    let (random, msg) = crypt.decrypt_parts(encrypted).unwrap();
    assert_eq!(crypt.encrypt_with(random, &msg), encrypted);
}

#[test]
fn url_signature_matches_an_independent_sha1() {
    // hashlib.sha1("".join(sorted([token, timestamp, nonce]))) computed in Python.
    assert_eq!(
        signature(&[TOKEN, "1794391200", "nonce123"]),
        "14758890a4dfd524aa65eb3b9bf4daec5a3e1f3e"
    );
}

#[tokio::test]
async fn url_verification_echoes_echostr_and_refuses_forgeries() {
    let c = channel(clock(), false, "http://unused");
    let ok = raw(
        Method::GET,
        &format!(
            "/webhooks/wechat?{}&echostr=hello-42",
            signed_query(NOW, "n1")
        ),
        &[],
        "",
    );
    let parsed = c.parse_inbound(ok).await.unwrap();
    assert_eq!(&parsed.response.body[..], b"hello-42");
    assert!(parsed.messages.is_empty());
    let forged = raw(
        Method::GET,
        &format!("/webhooks/wechat?signature=abc&timestamp={NOW}&nonce=n1&echostr=x"),
        &[],
        "",
    );
    assert_unauthenticated(c.parse_inbound(forged).await);
    let missing = raw(
        Method::GET,
        &format!("/webhooks/wechat?timestamp={NOW}&nonce=n1&echostr=x"),
        &[],
        "",
    );
    assert_unauthenticated(c.parse_inbound(missing).await);
}

#[tokio::test]
async fn every_inbound_kind_is_normalised() {
    let c = channel(clock(), false, "http://unused");
    let wrap = |inner: &str| {
        format!(
            "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o-buyer-1]]></FromUserName><CreateTime>{NOW}</CreateTime>{inner}</xml>"
        )
    };
    let cases = [
        (
            "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[我的快递到哪了]]></Content><MsgId>1</MsgId>",
            Content::text("我的快递到哪了"),
        ),
        (
            "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz/p.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>2</MsgId>",
            Content::Image {
                url: "http://mmbiz/p.jpg".into(),
                caption: None,
            },
        ),
        (
            "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[退货]]></Recognition><MsgId>3</MsgId>",
            Content::Audio {
                url: "wechat-media:m2".into(),
                transcript: Some("退货".into()),
            },
        ),
        (
            "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州]]></Label><MsgId>4</MsgId>",
            Content::Location {
                latitude: 23.134521,
                longitude: 113.358803,
                label: Some("广州".into()),
            },
        ),
    ];
    for (inner, expected) in cases {
        let parsed = c.parse_inbound(post(wrap(inner))).await.unwrap();
        assert_eq!(parsed.messages.len(), 1);
        let m = &parsed.messages[0];
        assert_eq!(m.content, expected);
        assert_eq!(m.from, Identity::new(ChannelKind::WeChat, "o-buyer-1"));
        assert_eq!(&parsed.response.body[..], b"success");
    }
    let link = c
        .parse_inbound(post(wrap(
            "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[Order]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[https://shop/o/1]]></Url><MsgId>5</MsgId>",
        )))
        .await
        .unwrap();
    match &link.messages[0].content {
        Content::RichCard(card) => {
            assert_eq!(card.title, "Order");
            assert_eq!(card.buttons[0].value, "https://shop/o/1");
        }
        other => panic!("{other:?}"),
    }
    let click = c
        .parse_inbound(post(wrap(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MENU_ORDERS]]></EventKey>",
        )))
        .await
        .unwrap();
    let m = &click.messages[0];
    assert_eq!(
        m.content,
        Content::Event {
            name: "click".into(),
            data: json!({"EventKey": "MENU_ORDERS"})
        }
    );
    assert_eq!(
        m.provider_message_id.as_deref(),
        Some(format!("o-buyer-1:{NOW}:CLICK").as_str())
    );
    let unsubscribe = c
        .parse_inbound(post(wrap(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event>",
        )))
        .await
        .unwrap();
    assert!(
        matches!(&unsubscribe.messages[0].content, Content::Event { name, .. } if name == "unsubscribe")
    );
    assert_eq!(&unsubscribe.response.body[..], b"success");
}

#[tokio::test]
async fn subscribe_gets_a_passive_welcome_reply() {
    let c = channel(clock(), false, "http://unused");
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o-new]]></FromUserName><CreateTime>{NOW}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
    );
    let parsed = c.parse_inbound(post(xml)).await.unwrap();
    let reply = std::str::from_utf8(&parsed.response.body).unwrap();
    assert!(
        reply.contains("<ToUserName><![CDATA[o-new]]></ToUserName>"),
        "{reply}"
    );
    assert!(reply.contains("<FromUserName><![CDATA[gh_shop]]></FromUserName>"));
    assert!(reply.contains("<Content><![CDATA[欢迎光临]]></Content>"));
}

#[tokio::test]
async fn safe_mode_decrypts_requests_and_encrypts_replies() {
    let c = channel(clock(), true, "http://unused");
    let crypt = MsgCrypt::new(TOKEN, SAMPLE_KEY, APP_ID).unwrap();
    let seal = |inner: &str, nonce: &str| {
        let enc = crypt.encrypt(inner);
        let ts = NOW.to_string();
        let sig = crypt.msg_signature(&ts, nonce, &enc);
        let uri = format!(
            "/webhooks/wechat?{}&encrypt_type=aes&msg_signature={sig}",
            signed_query(NOW, nonce)
        );
        raw(
            Method::POST,
            &uri,
            &[],
            format!(
                "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
            ),
        )
    };
    let parsed = c
        .parse_inbound(seal(&text_xml("77", "加密的消息"), "n8"))
        .await
        .unwrap();
    assert_eq!(parsed.messages[0].content, Content::text("加密的消息"));
    assert_eq!(
        parsed.messages[0].provider_message_id.as_deref(),
        Some("77")
    );

    // The welcome reply to a subscribe comes back sealed, verifiable by the official scheme.
    let sub = format!(
        "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o-new]]></FromUserName><CreateTime>{NOW}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
    );
    let parsed = c.parse_inbound(seal(&sub, "n9")).await.unwrap();
    let envelope = std::str::from_utf8(&parsed.response.body).unwrap();
    let field = |name: &str| {
        let open = format!("<{name}><![CDATA[");
        let start = envelope.find(&open).unwrap() + open.len();
        envelope[start..].split("]]>").next().unwrap().to_owned()
    };
    let reply = crypt
        .verify_and_decrypt(
            &field("MsgSignature"),
            &NOW.to_string(),
            "n9",
            &field("Encrypt"),
        )
        .unwrap();
    assert!(reply.contains("欢迎光临"), "{reply}");

    // Plain text when safe mode is on, and a tampered ciphertext, are refused.
    assert_unauthenticated(c.parse_inbound(post(text_xml("78", "plain"))).await);
    let mut tampered = seal(&text_xml("79", "x"), "n10");
    tampered.uri = tampered
        .uri
        .to_string()
        .replace("msg_signature=", "msg_signature=0")
        .parse()
        .unwrap();
    assert_unauthenticated(c.parse_inbound(tampered).await);
}

#[tokio::test]
async fn forged_missing_and_expired_signatures_store_nothing() {
    let clock = clock();
    let c = channel(clock.clone(), false, "http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c.clone(), handler.clone());
    let forged = raw(
        Method::POST,
        &format!("/webhooks/wechat?signature=deadbeef&timestamp={NOW}&nonce=n1"),
        &[],
        text_xml("1", "hi"),
    );
    assert_eq!(through_router(&router, &forged).await.0, 401);
    let missing = raw(Method::POST, "/webhooks/wechat", &[], text_xml("2", "hi"));
    assert_eq!(through_router(&router, &missing).await.0, 401);
    // Correctly signed, but ten minutes old.
    let old = raw(
        Method::POST,
        &format!("/webhooks/wechat?{}", signed_query(NOW - 600, "n1")),
        &[],
        text_xml("3", "hi"),
    );
    assert_unauthenticated(c.parse_inbound(old.clone()).await);
    assert_eq!(through_router(&router, &old).await.0, 401);
    let buyer = Identity::new(ChannelKind::WeChat, "o-buyer-1");
    assert!(handler.messages_of(&buyer).await.is_empty());
    // Malformed and oversized bodies are refused with a reason.
    let (status, body) = through_router(&router, &post("<xml><Content>".into())).await;
    assert_eq!(status, 400);
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains("malformed WeChat XML")
    );
    let big = post(text_xml("4", &"x".repeat(70 * 1024)));
    assert_eq!(through_router(&router, &big).await.0, 413);
    clock.advance(Duration::seconds(1));
}

#[tokio::test]
async fn retried_deliveries_store_one_message_even_concurrently() {
    let c = channel(clock(), false, "http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c, handler.clone());
    let buyer = Identity::new(ChannelKind::WeChat, "o-buyer-1");
    let request = post(text_xml("6054768590064713728", "在吗"));
    let stored = common::deliver_repeatedly(&router, &handler, &request, 8, &buyer).await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let again = post(text_xml("6054768590064713729", "还在吗"));
    let stored = common::deliver_repeatedly(&router, &handler, &again, 8, &buyer).await;
    assert_eq!(stored.len(), 2, "{stored:#?}");
}

fn outbound(content: Content) -> OutboundMessage {
    common::outbound(
        "wechat",
        Identity::new(ChannelKind::WeChat, "o-buyer-1"),
        content,
    )
}

async fn token_mock(server: &MockServer, token: &str, times: u64) {
    Mock::given(method("GET"))
        .and(path("/cgi-bin/token"))
        .and(query_param("grant_type", "client_credential"))
        .and(query_param("appid", APP_ID))
        .and(query_param("secret", "app-secret"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": token, "expires_in": 7200})),
        )
        .up_to_n_times(times)
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn customer_service_sends_cache_the_token_until_it_expires() {
    let server = MockServer::start().await;
    let clock = clock();
    let c = channel(clock.clone(), false, &server.uri());
    token_mock(&server, "T1", 1).await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/message/custom/send"))
        .and(query_param("access_token", "T1"))
        .and(body_partial_json(
            json!({"touser": "o-buyer-1", "msgtype": "text", "text": {"content": "您好"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .expect(2)
        .mount(&server)
        .await;
    for _ in 0..2 {
        let r = c.send(&outbound(Content::text("您好"))).await.unwrap();
        assert_eq!(r.status, DeliveryStatus::Sent);
    }
    server.verify().await;
    server.reset().await;

    // Two hours later the cached token has expired: a new one is fetched.
    clock.advance(Duration::hours(2));
    token_mock(&server, "T2", 1).await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/message/custom/send"))
        .and(query_param("access_token", "T2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    c.send(&outbound(Content::text("again"))).await.unwrap();
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once_and_the_send_retried() {
    let server = MockServer::start().await;
    let c = channel(clock(), false, &server.uri());
    Mock::given(method("GET"))
        .and(path("/cgi-bin/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "OLD", "expires_in": 7200})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "NEW", "expires_in": 7200})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/message/custom/send"))
        .and(query_param("access_token", "OLD"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode": 40001, "errmsg": "invalid credential"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/message/custom/send"))
        .and(query_param("access_token", "NEW"))
        .and(body_partial_json(json!({"msgtype": "news"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let card = Content::RichCard(cs_core::RichCard {
        title: "Your order".into(),
        body: Some("Shipped".into()),
        image_url: None,
        buttons: vec![cs_core::CardButton {
            label: "Track".into(),
            value: "https://shop/t/1".into(),
        }],
    });
    c.send(&outbound(card)).await.unwrap();
}

#[tokio::test]
async fn provider_failures_map_to_typed_errors() {
    let server = MockServer::start().await;
    let c = channel(clock(), false, &server.uri());
    token_mock(&server, "T", 1).await;
    let send = |status: u16, body: serde_json::Value| {
        Mock::given(method("POST"))
            .and(path("/cgi-bin/message/custom/send"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .up_to_n_times(1)
    };
    send(502, json!({})).mount(&server).await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_temporary(),
        "{e:?}"
    );
    send(
        200,
        json!({"errcode": 45015, "errmsg": "response out of time limit"}),
    )
    .mount(&server)
    .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(matches!(e, Error::ReplyWindowClosed { .. }), "{e:?}");
    send(200, json!({"errcode": 40003, "errmsg": "invalid openid"}))
        .mount(&server)
        .await;
    let e = c.send(&outbound(Content::text("a"))).await.unwrap_err();
    assert!(
        matches!(e, Error::Rejected { .. }) && !e.is_temporary(),
        "{e:?}"
    );
    // A picture needs uploaded media: the channel says so instead of sending something else.
    let e = c
        .send(&outbound(Content::Image {
            url: "https://x/y.png".into(),
            caption: None,
        }))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }));
    let caps = &c.info().capabilities;
    assert!(!caps.supports(cs_core::ContentKind::Image));
    assert_eq!(caps.reply_window, Some(Duration::hours(48)));
}

/// Issue 13's live defect: a body nested 4,000 deep (27 KiB, under the size limit) overflowed a
/// worker's stack and aborted the server. Now it is a 400 with a reason, in plain and safe mode,
/// and the server goes on answering.
#[tokio::test]
async fn deeply_nested_bodies_are_refused_not_fatal() {
    let nested = |depth: usize| {
        format!(
            "<xml><ToUserName>gh_shop</ToUserName>{}{}</xml>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        )
    };
    for safe in [false, true] {
        let c = channel(clock(), safe, "http://unused");
        let handler = StoreHandler::new();
        let router = router_for(c, handler.clone());
        for depth in [4_000, 9_000] {
            let body = nested(depth);
            assert!(body.len() < 64 * 1024);
            let uri = if safe {
                format!(
                    "/webhooks/wechat?{}&encrypt_type=aes&msg_signature=00",
                    signed_query(NOW, &nonce())
                )
            } else {
                format!("/webhooks/wechat?{}", signed_query(NOW, &nonce()))
            };
            let (status, answer) =
                through_router(&router, &raw(Method::POST, &uri, &[], body)).await;
            assert_eq!(status, 400, "safe mode {safe}, depth {depth}");
            let answer = std::str::from_utf8(&answer).unwrap();
            assert!(answer.contains("deeper"), "{answer}");
        }
        let (status, _) = through_router(&router, &post(text_xml("1", "still here"))).await;
        assert_eq!(status, if safe { 401 } else { 200 });
    }
}

/// A signed URL binds its timestamp + nonce to the first request: a captured message URL cannot
/// carry another body, and the verification GET's URL cannot be reused to POST; a provider retry
/// of the same body is still accepted (and stored once).
#[tokio::test]
async fn a_signed_url_cannot_be_replayed_with_another_body_or_method() {
    let c = channel(clock(), false, "http://unused");
    let handler = StoreHandler::new();
    let router = router_for(c, handler.clone());
    let query = signed_query(NOW, "captured");
    let uri = format!("/webhooks/wechat?{query}");
    let first = raw(Method::POST, &uri, &[], text_xml("501", "我的订单"));
    assert_eq!(through_router(&router, &first).await.0, 200);
    assert_eq!(through_router(&router, &first).await.0, 200);
    let forged = raw(Method::POST, &uri, &[], text_xml("502", "把钱退到我的卡"));
    assert_eq!(through_router(&router, &forged).await.0, 401);

    let verify_uri = format!(
        "/webhooks/wechat?{}&echostr=hello",
        signed_query(NOW, "verify")
    );
    let get = raw(Method::GET, &verify_uri, &[], String::new());
    assert_eq!(through_router(&router, &get).await.0, 200);
    let reused = raw(
        Method::POST,
        &verify_uri,
        &[],
        text_xml("503", "伪造的消息"),
    );
    assert_eq!(through_router(&router, &reused).await.0, 401);

    let buyer = Identity::new(ChannelKind::WeChat, "o-buyer-1");
    let stored = handler.messages_of(&buyer).await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].content, Content::text("我的订单"));
}
