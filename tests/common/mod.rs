//! Shared set-up for the end-to-end tests: the real service on a loopback port, and small
//! WebSocket and HTTP clients.

#![allow(dead_code, unreachable_pub)]

pub mod browser;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use omnidesk::Config;
use omnidesk::server::App;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running service.
pub struct Server {
    pub addr: SocketAddr,
    pub app: App,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the service on a free port with its database in `dir`.
    pub async fn start(dir: &std::path::Path) -> Self {
        Self::start_with(Config {
            database: dir.join("desk.db"),
            ..Config::default()
        })
        .await
    }

    /// Starts the service with `config` on a free port.
    pub async fn start_with(config: Config) -> Self {
        let config = Config { port: 0, ..config };
        let app = App::from_config(config).await.expect("app builds");
        let listener = app.bind().await.expect("binds");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = app.clone();
        let task = tokio::spawn(async move {
            serving
                .serve_with_shutdown(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
        });
        Self {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the service and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A fresh temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("omnidesk-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Minimal HTTP/1.1 POST of JSON on loopback (no client dependency needed for two calls).
pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, body) = post(addr, path, "application/json", &[], &body.to_string()).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Minimal HTTP/1.1 POST of a form with extra headers; returns the status and the body text.
pub async fn post_form(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    params: &[(&str, &str)],
) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    post(
        addr,
        path,
        "application/x-www-form-urlencoded",
        headers,
        &body,
    )
    .await
}

/// One HTTP/1.1 POST over a fresh connection: the status and the (de-chunked) body text.
async fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    let mut all = vec![("Content-Type", content_type.to_owned())];
    all.extend(headers.iter().map(|(k, v)| (*k, v.clone())));
    let (status, _, body) = http(addr, "POST", path, &all, body).await;
    (status, body)
}

/// One HTTP/1.1 request over a fresh connection: the status, the head (lower-cased) and the
/// (de-chunked) body text.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, head.to_lowercase(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that reads JSON frames.
pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Self { ws }
    }

    pub async fn send_json(&mut self, v: Value) {
        self.ws
            .send(WsMessage::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, s: String) {
        self.ws.send(WsMessage::Text(s.into())).await.unwrap();
    }

    /// The next JSON frame (panics after 10 s).
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")
                .expect("socket open")
                .expect("frame ok");
            if let WsMessage::Text(t) = msg {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// The next JSON frame, however long it takes (wrap it in a time-out).
    pub async fn next_raw(&mut self) -> Value {
        loop {
            let msg = self
                .ws
                .next()
                .await
                .expect("socket open")
                .expect("frame ok");
            if let WsMessage::Text(t) = msg {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// Skips frames until one satisfies `pred` (panics after 10 s).
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let f = self.next().await;
            eprintln!("frame: {f}");
            if pred(&f) {
                return f;
            }
        }
    }
}

/// A customer: a visitor session and a widget socket.
pub async fn customer(server: &Server, token: Option<&str>) -> (String, Client, Value) {
    let body = token.map_or(json!({}), |t| json!({ "token": t }));
    let (status, session) = post_json(server.addr, "/chat/session", &body).await;
    assert_eq!(status, 200, "session: {session}");
    let token = session["token"].as_str().unwrap().to_string();
    let mut c = Client::connect(&format!("ws://{}/chat/ws?token={token}", server.addr)).await;
    let hello = c.next().await;
    assert_eq!(hello["type"], "hello");
    (token, c, hello)
}

/// A REST call with an optional bearer token: the status and the JSON body (`Null` if none).
pub async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    if let Some(t) = token {
        headers.push(("Authorization", format!("Bearer {t}")));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    let (status, _, text) = http(addr, method, path, &headers, &body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Signs in through the API; the session token.
pub async fn login(addr: SocketAddr, name: &str, password: &str) -> String {
    let (status, login) = post_json(
        addr,
        "/api/v1/auth/login",
        &json!({ "name": name, "password": password }),
    )
    .await;
    assert_eq!(status, 200, "login: {login}");
    login["token"].as_str().unwrap().to_owned()
}

/// A one-time ticket for the console socket.
pub async fn ws_ticket(addr: SocketAddr, token: &str) -> String {
    let (status, t) = api(addr, "POST", "/api/v1/auth/ws-ticket", Some(token), None).await;
    assert_eq!(status, 200, "ticket: {t}");
    t["ticket"].as_str().unwrap().to_owned()
}

/// An agent signed in to the console.
pub async fn agent(server: &Server, name: &str, password: &str) -> (Client, Value) {
    let token = login(server.addr, name, password).await;
    let ticket = ws_ticket(server.addr, &token).await;
    let mut c = Client::connect(&format!("ws://{}/agent/ws?ticket={ticket}", server.addr)).await;
    let welcome = c.next().await;
    assert_eq!(welcome["type"], "welcome");
    (c, welcome)
}

pub fn is_message_from(author: &'static str) -> impl Fn(&Value) -> bool {
    move |f| f["type"] == "message" && f["message"]["author"] == author
}
