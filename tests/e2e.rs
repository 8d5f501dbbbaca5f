//! End to end through the real server: a WebSocket customer and a WebSocket agent drive the whole
//! loop (bot answer, handoff, agent reply, customer receives it), bad input is refused without
//! harm, and history survives a restart.

mod common;

use common::{Server, TempDir, agent, customer, is_message_from, post_json};
use serde_json::json;

#[tokio::test]
async fn bot_answer_handoff_agent_reply_and_back() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;

    // The agent signs in first and sees an empty desk.
    let (mut alice, welcome) = agent(&server, "alice", "alice").await;
    assert_eq!(welcome["agent"]["name"], "Alice");
    assert_eq!(welcome["conversations"].as_array().unwrap().len(), 0);

    // The customer asks an FAQ question; the bot answers in the same language.
    let (_token, mut shopper, hello) = customer(&server, None).await;
    assert!(hello["history"].as_array().unwrap().is_empty());
    shopper
        .send_json(json!({"type": "message", "client_id": "c1", "text": "怎么退货？"}))
        .await;
    let ack = shopper.until(|f| f["type"] == "ack").await;
    assert_eq!(ack["client_id"], "c1");
    assert_eq!(ack["duplicate"], false);
    let answer = shopper.until(is_message_from("bot")).await;
    assert!(
        answer["message"]["text"].as_str().unwrap().contains("退货"),
        "bot answers the return question: {answer}"
    );

    // "转人工" hands over to the signed-in agent, who sees the whole history and the summary.
    shopper
        .send_json(json!({"type": "message", "client_id": "c2", "text": "转人工"}))
        .await;
    let joined = shopper.until(is_message_from("system")).await;
    assert!(
        joined["message"]["text"]
            .as_str()
            .unwrap()
            .contains("Alice")
    );
    let assigned = alice.until(|f| f["type"] == "assigned").await;
    let history = assigned["conversation"]["customer"]["history"]
        .as_array()
        .unwrap();
    let texts: Vec<&str> = history
        .iter()
        .filter_map(|m| m["content"]["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"怎么退货？"),
        "agent sees the earlier question: {texts:?}"
    );
    assert!(
        history.iter().any(|m| m["direction"] == "internal"
            && m["content"]["text"]
                .as_str()
                .unwrap()
                .contains("customer asked for a human")),
        "agent sees the handoff summary"
    );
    let conversation_id = assigned["conversation"]["conversation"]["id"].clone();

    // The agent replies; the customer receives it in real time.
    alice
        .send_json(json!({"type": "reply", "conversation_id": conversation_id, "client_id": "a1", "text": "您好，我是 Alice，请问订单号是多少？"}))
        .await;
    let agent_ack = alice.until(|f| f["type"] == "ack").await;
    assert_eq!(agent_ack["client_id"], "a1");
    let reply = shopper.until(is_message_from("agent")).await;
    assert_eq!(
        reply["message"]["text"],
        "您好，我是 Alice，请问订单号是多少？"
    );

    // The customer answers; the message reaches the agent, not the bot.
    shopper
        .send_json(json!({"type": "message", "client_id": "c3", "text": "SO-1024"}))
        .await;
    let forwarded = alice
        .until(|f| f["type"] == "message" && f["message"]["author"]["role"] == "customer")
        .await;
    assert_eq!(forwarded["message"]["content"]["text"], "SO-1024");

    // The agent opens a ticket: the console shows it with SLA countdowns, the customer gets
    // the number to quote.
    alice
        .send_json(json!({"type": "open_ticket", "conversation_id": conversation_id, "subject": "退货 SO-1024"}))
        .await;
    let tickets = alice.until(|f| f["type"] == "tickets").await;
    let ticket = &tickets["tickets"][0];
    assert_eq!(ticket["ticket"]["number"], 1);
    assert_eq!(ticket["ticket"]["subject"], "退货 SO-1024");
    assert_eq!(ticket["ticket"]["group"], "service");
    let metrics: Vec<&str> = ticket["sla"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["metric"].as_str().unwrap())
        .collect();
    assert!(
        metrics.contains(&"resolution"),
        "SLA countdown shown: {ticket}"
    );
    let told = shopper.until(is_message_from("system")).await;
    assert!(told["message"]["text"].as_str().unwrap().contains("#1"));
    alice
        .send_json(
            json!({"type": "open_ticket", "conversation_id": conversation_id, "subject": "  "}),
        )
        .await;
    let refused = alice.until(|f| f["type"] == "error").await;
    assert_eq!(refused["code"], "invalid_input", "{refused}");

    // Resolving frees the agent and tells the customer.
    alice
        .send_json(json!({"type": "resolve", "conversation_id": conversation_id}))
        .await;
    alice.until(|f| f["type"] == "resolved").await;
    let bye = shopper.until(is_message_from("system")).await;
    assert_eq!(
        bye["message"]["text"], "会话已结束，感谢您的咨询。",
        "in the language the customer writes"
    );

    // Back with the bot, the customer asks about the ticket and gets its status.
    shopper
        .send_json(json!({"type": "message", "client_id": "c4", "text": "where is my ticket 1"}))
        .await;
    let status = shopper.until(is_message_from("bot")).await;
    let text = status["message"]["text"].as_str().unwrap();
    assert!(
        text.contains("#1") && text.contains("new"),
        "ticket status: {text}"
    );

    // A second agent cannot write in a conversation that is not theirs.
    let (mut bob, _) = agent(&server, "bob", "bob").await;
    bob.send_json(json!({"type": "reply", "conversation_id": conversation_id, "client_id": "b1", "text": "hi"}))
        .await;
    let refused = bob.until(|f| f["type"] == "error").await;
    assert_eq!(refused["code"], "forbidden");

    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_lose_nothing() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let (_token, mut c, _) = customer(&server, None).await;

    c.send_json(json!({"type": "message", "client_id": "ok-1", "text": "hello there"}))
        .await;
    c.until(|f| f["type"] == "ack").await;

    // Oversized text: a clear error, the connection stays usable.
    c.send_json(json!({"type": "message", "client_id": "big", "text": "x".repeat(10_000)}))
        .await;
    let e = c.until(|f| f["type"] == "error").await;
    assert_eq!(e["code"], "payload_too_large", "{e}");
    // Malformed JSON and unknown frame types.
    c.send_text("{not json".into()).await;
    let e = c.until(|f| f["type"] == "error").await;
    assert_eq!(e["code"], "invalid_input");
    c.send_json(json!({"type": "launch_missiles"})).await;
    let e = c.until(|f| f["type"] == "error").await;
    assert_eq!(e["code"], "invalid_input");
    c.send_json(json!({"type": "message", "client_id": "empty", "text": "   "}))
        .await;
    let e = c.until(|f| f["type"] == "error").await;
    assert_eq!(e["client_id"], "empty");

    // The same client message id twice is stored once.
    for _ in 0..2 {
        c.send_json(json!({"type": "message", "client_id": "dup-1", "text": "where is my parcel"}))
            .await;
    }
    let first = c.until(|f| f["type"] == "ack").await;
    let second = c.until(|f| f["type"] == "ack").await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["message_id"], second["message_id"]);

    // Still working, and the stored history holds exactly the valid messages once each.
    c.send_json(json!({"type": "message", "client_id": "ok-2", "text": "thanks"}))
        .await;
    c.until(|f| f["type"] == "ack" && f["client_id"] == "ok-2")
        .await;
    let (_, _, hello) = customer(&server, Some(&_token)).await;
    let customer_texts: Vec<String> = hello["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["author"] == "customer")
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        customer_texts,
        ["hello there", "where is my parcel", "thanks"]
    );

    // A forged token is refused at the door.
    let forged = format!("v1.someone-else.{}", "00".repeat(32));
    let err =
        tokio_tungstenite::connect_async(format!("ws://{}/chat/ws?token={forged}", server.addr))
            .await;
    assert!(err.is_err(), "forged visitor token refused");
    let (status, _) = post_json(
        server.addr,
        "/agent/login",
        &json!({"name": "alice", "password": "nope"}),
    )
    .await;
    assert_eq!(status, 401);

    server.stop().await;
}

#[tokio::test]
async fn history_survives_a_restart() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let (token, mut c, _) = customer(&server, None).await;
    c.send_json(json!({"type": "message", "client_id": "r1", "text": "多久发货"}))
        .await;
    c.until(is_message_from("bot")).await;
    drop(c);
    server.stop().await;

    let server = Server::start(&dir.0).await;
    let (same, _, hello) = customer(&server, Some(&token)).await;
    assert_eq!(
        same, token,
        "the visitor token is still valid after a restart"
    );
    let authors: Vec<&str> = hello["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["customer", "bot"], "history is still there");
    server.stop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_whole_desk_runs_on_postgres() {
    // A schema of its own: builds with other schema versions may share the database.
    let Some(url) = cs_core::conformance::postgres_url("omnidesk_e2e").await else {
        eprintln!("skipping the PostgreSQL desk test: set CS_TEST_POSTGRES_URL");
        return;
    };
    // A tenant of its own, so runs against a shared database never meet.
    let tenant =
        omnidesk::core::TenantId::new(format!("e2e-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let config = || omnidesk::Config {
        database: url.clone().into(),
        secret: Some("a shared secret for every process".into()),
        tenant: tenant.clone(),
        ..omnidesk::Config::default()
    };
    let server = Server::start_with(config()).await;
    let (mut alice, _) = agent(&server, "alice", "alice").await;
    let (token, mut shopper, _) = customer(&server, None).await;
    shopper
        .send_json(json!({"type": "message", "client_id": "p1", "text": "human please"}))
        .await;
    let assigned = alice.until(|f| f["type"] == "assigned").await;
    let conversation_id = assigned["conversation"]["conversation"]["id"].clone();
    alice
        .send_json(json!({"type": "open_ticket", "conversation_id": conversation_id, "subject": "parcel lost"}))
        .await;
    let tickets = alice.until(|f| f["type"] == "tickets").await;
    assert_eq!(
        tickets["tickets"][0]["ticket"]["number"], 1,
        "numbers count per tenant"
    );
    drop(shopper);
    drop(alice);
    server.stop().await;

    // A second process on the same database sees the same desk.
    let other = Server::start_with(config()).await;
    let (_, _, hello) = customer(&other, Some(&token)).await;
    let texts: Vec<&str> = hello["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"human please"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("#1")),
        "the ticket notice is there too: {texts:?}"
    );
    other.stop().await;
}

/// The default demo: a complaint, a billing question and an order question each reach Alice or
/// Bob (the bundled FAQ's skills are all covered, and the overflow rings reach anyone with room
/// after a short wait), and each customer is told who joined.
#[tokio::test]
async fn the_demo_desk_routes_every_faq_hand_over_to_an_agent() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let (mut alice, _) = agent(&server, "alice", "alice").await;
    let (mut bob, _) = agent(&server, "bob", "bob").await;
    let asks = [
        ("我要投诉，快递员态度很差", None),
        ("怎么开发票", Some("转人工")),
        ("我的订单怎么样了", Some("转人工")),
    ];
    let mut shoppers = Vec::new();
    for (i, (question, follow_up)) in asks.iter().enumerate() {
        let (_t, mut shopper, _) = customer(&server, None).await;
        shopper
            .send_json(json!({"type": "message", "client_id": format!("q{i}"), "text": question}))
            .await;
        if let Some(f) = follow_up {
            shopper.until(is_message_from("bot")).await;
            shopper
                .send_json(json!({"type": "message", "client_id": format!("h{i}"), "text": f}))
                .await;
        }
        shoppers.push(shopper);
    }
    for shopper in &mut shoppers {
        let joined = shopper
            .until(|f| {
                is_message_from("system")(f)
                    && f["message"]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("已接入"))
            })
            .await;
        let who = joined["message"]["text"].as_str().unwrap();
        assert!(who.starts_with("Alice") || who.starts_with("Bob"), "{who}");
    }
    let mut assigned = 0;
    for console in [&mut alice, &mut bob] {
        while let Ok(f) =
            tokio::time::timeout(std::time::Duration::from_millis(300), console.next_raw()).await
        {
            if f["type"] == "assigned" {
                assigned += 1;
            }
        }
    }
    assert_eq!(assigned, 3, "every hand-over reached a console");
    server.stop().await;
}
