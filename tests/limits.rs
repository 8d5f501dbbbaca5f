//! Limits on what a stranger can send, tried on the real service as an attacker would: a flood
//! of widget frames, a flood of sessions, a password-guessing run, a socket opened from another
//! site, a body nested to overflow the stack, oversized bodies; and the security headers of
//! every page.

mod common;

use common::{Server, TempDir, customer, http, post_json};
use futures::StreamExt;
use omnidesk::Config;
use omnidesk::server::limits::Limits;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn config(dir: &TempDir, limits: Limits) -> Config {
    Config {
        database: dir.0.join("desk.db"),
        limits,
        ..Config::default()
    }
}

/// 1,000 widget frames at once: the burst is taken, every other frame is refused with a
/// `rate_limited` error naming its client id (the widget marks those bubbles), and only the
/// taken ones are stored and answered.
#[tokio::test]
async fn a_widget_flood_is_refused_frame_by_frame_and_nothing_is_silently_lost() {
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            message_burst: 10,
            messages_per_minute: 6,
            ..Limits::default()
        },
    ))
    .await;
    let (_token, mut shopper, _) = customer(&server, None).await;
    for i in 0..1_000 {
        shopper
            .send_json(json!({"type": "message", "client_id": format!("f{i}"), "text": "多久发货"}))
            .await;
    }
    let (mut acked, mut refused) = (0, 0);
    while acked + refused < 1_000 {
        let f = shopper.next().await;
        match f["type"].as_str() {
            Some("ack") => acked += 1,
            Some("error") => {
                assert_eq!(f["code"], "rate_limited", "{f}");
                assert!(f["client_id"].as_str().unwrap().starts_with('f'));
                refused += 1;
            }
            _ => {}
        }
    }
    assert_eq!(acked, 10, "the burst, no more");
    assert_eq!(refused, 990);
    let store = server.app.engine().store().clone();
    let convs = store
        .conversations(&omnidesk::core::store::ConversationQuery {
            tenant: omnidesk::core::TenantId::default(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let messages = store
        .messages(&omnidesk::core::store::MessageQuery::new(
            omnidesk::core::TenantId::default(),
            omnidesk::core::store::MessageScope::Conversation(convs[0].id),
            1_000,
        ))
        .await
        .unwrap();
    let customer_messages = messages
        .iter()
        .filter(|m| m.direction == omnidesk::core::Direction::Inbound)
        .count();
    assert_eq!(customer_messages, 10);
    server.stop().await;
}

#[tokio::test]
async fn new_sessions_from_one_address_are_limited() {
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            sessions_per_minute: 5,
            ..Limits::default()
        },
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(post_json(server.addr, "/chat/session", &json!({})).await);
    }
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200));
    let (status, body) = &statuses[7];
    assert_eq!(*status, 429);
    assert_eq!(body["error"], "rate_limited");
    assert!(body["retry_after"].as_u64().unwrap() >= 1);
    server.stop().await;
}

/// 300 wrong passwords in a row: after five the name is locked (429 even with the right
/// password), and one address cannot try more than its rate anyway.
#[tokio::test]
async fn password_guessing_locks_the_name_and_limits_the_address() {
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            logins_per_minute: 1_000,
            login_failures: 5,
            ..Limits::default()
        },
    ))
    .await;
    let mut codes = Vec::new();
    for i in 0..300 {
        let (status, _) = post_json(
            server.addr,
            "/agent/login",
            &json!({"name": "alice", "password": format!("guess{i}")}),
        )
        .await;
        codes.push(status);
    }
    assert!(codes[..5].iter().all(|s| *s == 401), "{:?}", &codes[..6]);
    assert!(codes[5..].iter().all(|s| *s == 429));
    let (status, body) = post_json(
        server.addr,
        "/agent/login",
        &json!({"name": "alice", "password": "alice"}),
    )
    .await;
    assert_eq!(status, 429, "locked even with the right password: {body}");
    let (status, _) = post_json(
        server.addr,
        "/agent/login",
        &json!({"name": "bob", "password": "bob"}),
    )
    .await;
    assert_eq!(status, 200, "another name is not locked");
    server.stop().await;

    // With the default per-address rate, a run of attempts meets 429 long before 300.
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir, Limits::default())).await;
    let mut limited = 0;
    for i in 0..30 {
        let (status, body) = post_json(
            server.addr,
            "/agent/login",
            &json!({"name": format!("user{i}"), "password": "x"}),
        )
        .await;
        if status == 429 {
            assert_eq!(body["error"], "rate_limited");
            limited += 1;
        }
    }
    assert_eq!(limited, 20, "ten attempts a minute from one address");
    server.stop().await;
}

#[tokio::test]
async fn sockets_open_only_from_the_service_s_own_pages_or_allowed_origins() {
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            allowed_origins: vec!["https://www.shop.example".into()],
            ..Limits::default()
        },
    ))
    .await;
    let (_, session) = post_json(server.addr, "/chat/session", &json!({})).await;
    let token = session["token"].as_str().unwrap();
    let open = |origin: &'static str| {
        let url = format!("ws://{}/chat/ws?token={token}", server.addr);
        async move {
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    match open("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a foreign page must not open the socket: {other:?}"),
    }
    let (mut ws, _) = open("https://www.shop.example").await.unwrap();
    assert!(
        ws.next().await.is_some(),
        "an allowed shop page gets its hello"
    );
    let own = Box::leak(format!("http://{}", server.addr).into_boxed_str());
    assert!(open(own).await.is_ok(), "the service's own page");

    // The console socket too.
    let url = format!("ws://{}/agent/ws?ticket=x", server.addr);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn pages_carry_security_headers_and_errors_are_json() {
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            max_body_bytes: 64 * 1024,
            ..Limits::default()
        },
    ))
    .await;
    for path in ["/", "/agent", "/agent/console.js"] {
        let (status, head, _) = http(server.addr, "GET", path, &[], "").await;
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("x-frame-options: deny"), "{path}: {head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{path}");
        assert!(
            head.contains("content-security-policy: default-src 'self'; script-src 'self';"),
            "{path}: {head}"
        );
    }
    let (status, head, body) = http(server.addr, "GET", "/nope", &[], "").await;
    assert_eq!(status, 404);
    assert!(head.contains("content-type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "not_found");

    let big = format!("{{\"token\": \"{}\"}}", "x".repeat(100 * 1024));
    let (status, head, body) = http(
        server.addr,
        "POST",
        "/chat/session",
        &[("Content-Type", "application/json".into())],
        &big,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "payload_too_large");
    server.stop().await;
}

/// The widget limits come from `[limits]`: the hello frame tells the widget the text limit, a
/// longer text is refused by name, and a frame over the frame limit closes the socket with
/// 1009 and a reason instead of dropping it silently.
#[tokio::test]
async fn widget_limits_come_from_the_config_and_a_huge_frame_closes_with_1009() {
    use tokio_tungstenite::tungstenite::Message;
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            widget_text_bytes: 100,
            widget_frame_bytes: 2048,
            ..Limits::default()
        },
    ))
    .await;
    let (_, mut c, hello) = customer(&server, None).await;
    assert_eq!(hello["max_text_bytes"], 100, "{hello}");
    c.send_json(json!({"type": "message", "client_id": "long-1", "text": "x".repeat(101)}))
        .await;
    let refused = c.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "payload_too_large", "{refused}");
    assert_eq!(refused["client_id"], "long-1", "{refused}");

    c.send_json(json!({"type": "message", "client_id": "huge-1", "text": "x".repeat(4096)}))
        .await;
    let close = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), c.ws.next())
            .await
            .expect("an answer within 10 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1009, "{close:?}");
    assert!(close.reason.contains("2048"), "{close:?}");
    server.stop().await;
}

/// A webhook body over the service's body limit gets the JSON 413 the adapters promise.
#[tokio::test]
async fn an_oversized_webhook_body_is_a_json_413() {
    let dir = TempDir::new();
    let server = Server::start_with(config(
        &dir,
        Limits {
            max_body_bytes: 16 * 1024,
            ..Limits::default()
        },
    ))
    .await;
    let big = "x".repeat(64 * 1024);
    let (status, head, body) = http(
        server.addr,
        "POST",
        "/webhooks/nope",
        &[("Content-Type", "application/json".into())],
        &big,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "payload_too_large", "{v}");
    server.stop().await;
}
