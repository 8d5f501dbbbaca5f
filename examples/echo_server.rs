//! A bare WebSocket server speaking just enough of the chat widget's protocol for the load
//! generator (`POST /chat/session` -> a token; `GET /chat/ws?token=` -> `hello`, then an `ack`
//! and a canned `bot` answer for every message), on the same HTTP stack as the bundled service
//! (axum, tokio-tungstenite, `TCP_NODELAY`) but with no engine, store or bot behind it: the
//! ceiling the service's own rate is read against.
//!
//! ```text
//! cargo run --release --example echo_server -- --port 9090 [--no-reply]
//! cargo run --release --example loadgen -- --url http://127.0.0.1:9090 --visitors 100
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::Query;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

static NEXT: AtomicU64 = AtomicU64::new(1);

#[derive(Deserialize)]
struct WsQuery {
    token: String,
}

async fn session() -> Response {
    let visitor = format!("v-echo-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    axum::Json(json!({ "visitor": visitor, "token": visitor })).into_response()
}

async fn upgrade(Query(q): Query<WsQuery>, ws: WebSocketUpgrade, reply: bool) -> Response {
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, q.token, reply))
}

async fn serve(socket: WebSocket, visitor: String, reply: bool) {
    let (mut sink, mut stream) = socket.split();
    let hello = json!({"type": "hello", "visitor": visitor, "history": []});
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let ack = json!({
            "type": "ack",
            "client_id": frame["client_id"],
            "message_id": format!("echo-{id}"),
            "duplicate": false,
        });
        if sink
            .send(Message::Text(ack.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        if reply {
            let answer = json!({"type": "message", "message": {
                "id": format!("echo-{id}-r"), "author": "bot", "text": frame["text"],
                "content": {"type": "text", "text": frame["text"]},
            }});
            if sink
                .send(Message::Text(answer.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut port = 9090u16;
    let mut reply = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| std::io::Error::other("--port needs a number"))?;
            }
            "--no-reply" => reply = false,
            other => return Err(std::io::Error::other(format!("unknown flag {other}"))),
        }
    }
    let app = Router::new().route("/chat/session", post(session)).route(
        "/chat/ws",
        get(move |q: Query<WsQuery>, ws: WebSocketUpgrade| upgrade(q, ws, reply)),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("echo server on http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
