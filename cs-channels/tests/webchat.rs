//! The widget socket over a real connection: the hello frame tells the widget the text limit, a
//! message over it is refused with an error frame naming its client id (the widget marks that
//! bubble), a frame over the frame limit closes the socket with 1009 and a reason, and deep
//! JSON is refused before serde sees it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::StoreHandler;
use cs_channels::WebChat;
use cs_core::ChannelId;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Serves a widget channel with a 1 KiB text limit and a 16 KiB frame limit; returns a
/// connected socket that has read its hello frame, and the hello frame.
async fn connect() -> (Socket, Value) {
    let chat = Arc::new(
        WebChat::builder(ChannelId::new("web").unwrap())
            .with_secret(*b"a widget secret of 16+ bytes")
            .with_max_text_bytes(1024)
            .with_max_frame_bytes(16 * 1024)
            .build()
            .unwrap(),
    );
    let token = chat.issue_token("v-1").unwrap();
    let app = axum::Router::new().nest("/chat", chat.router(StoreHandler::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/chat/ws?token={token}"))
            .await
            .unwrap();
    let hello = next_json(&mut ws).await;
    (ws, hello)
}

async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn a_long_message_is_refused_by_name_and_the_socket_stays_open() {
    let (mut ws, hello) = connect().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["max_text_bytes"], 1024, "{hello}");
    // 1,025 bytes of text: three-byte characters, so a count of characters would let it pass.
    let text = "订".repeat(342)[..].to_owned() + "x";
    assert_eq!(text.len(), 1027);
    let frame = json!({"type": "message", "client_id": "c-long", "text": text});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "payload_too_large", "{refused}");
    assert_eq!(refused["client_id"], "c-long", "{refused}");
    // Still open: a message within the limit is acknowledged.
    let ok = json!({"type": "message", "client_id": "c-ok", "text": "hello"});
    ws.send(Message::Text(ok.to_string().into())).await.unwrap();
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["client_id"], "c-ok");
}

#[tokio::test]
async fn deep_json_in_a_frame_is_refused_before_parsing() {
    let (mut ws, _) = connect().await;
    // Within the size limit (1,024 + 512 bytes), far over the depth limit.
    let deep = format!("{}{}", "[".repeat(700), "]".repeat(700));
    ws.send(Message::Text(deep.into())).await.unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["code"], "too_complex", "{refused}");
    assert_eq!(refused["type"], "error", "{refused}");
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_the_socket_with_1009_and_a_reason() {
    let (mut ws, _) = connect().await;
    let frame = json!({"type": "message", "client_id": "c-huge", "text": "x".repeat(20_000)});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer within 10 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Size, "{close:?}");
    assert_eq!(u16::from(close.code), 1009);
    assert!(close.reason.contains("16384"), "{close:?}");
}

/// A 1,500-character Chinese message (4,500 UTF-8 bytes) is over a 4 KiB text limit however
/// the browser counts characters: the server refuses it with a code, the size and the limit
/// in bytes (what the widget translates), says it is not worth retrying as is, and the hello
/// frame gives the widget both limits so it can refuse first.
#[tokio::test]
async fn a_refusal_carries_a_code_the_size_and_the_limit_in_bytes() {
    let (mut ws, hello) = connect().await;
    assert_eq!(hello["max_frame_bytes"], 16 * 1024, "{hello}");
    let text = "订".repeat(400);
    let frame = json!({"type": "message", "client_id": "c-zh", "text": text});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["code"], "payload_too_large", "{refused}");
    assert_eq!(refused["client_id"], "c-zh", "{refused}");
    assert_eq!(refused["size"], 1200, "{refused}");
    assert_eq!(refused["limit"], 1024, "{refused}");
    assert_eq!(refused["temporary"], false, "{refused}");

    let empty = json!({"type": "message", "client_id": "c-empty", "text": "  "});
    ws.send(Message::Text(empty.to_string().into()))
        .await
        .unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["code"], "invalid_input", "{refused}");
    assert_eq!(refused["client_id"], "c-empty", "{refused}");
    assert!(refused.get("limit").is_none(), "{refused}");
}

/// A card (a bot's clarifying question with quick-reply buttons) reaches a text-only channel
/// as the question and a numbered list, so the customer can answer with the number; the web
/// chat carries the card as it is.
#[test]
fn a_card_on_a_text_only_channel_becomes_a_numbered_list() {
    use cs_channels::Capabilities;
    use cs_core::{CardButton, Content, RichCard};
    let card = Content::RichCard(RichCard {
        title: "请问您想咨询的是以下哪个问题？回复序号即可：".into(),
        body: None,
        image_url: None,
        buttons: vec![
            CardButton {
                label: "怎么退货？".into(),
                value: "怎么退货？".into(),
            },
            CardButton {
                label: "什么时候发货？".into(),
                value: "什么时候发货？".into(),
            },
        ],
    });
    assert_eq!(
        Capabilities::text_only().adapt(card.clone()),
        Content::text(
            "请问您想咨询的是以下哪个问题？回复序号即可：\n1. 怎么退货？\n2. 什么时候发货？"
        )
    );
    let chat = WebChat::builder(ChannelId::new("web").unwrap())
        .with_secret(*b"a widget secret of 16+ bytes")
        .build()
        .unwrap();
    use cs_channels::Channel;
    assert_eq!(chat.info().capabilities.adapt(card.clone()), card);
}
