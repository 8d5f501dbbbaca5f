//! The load generator's engine: connects visitors and agent consoles to a service on loopback,
//! drives the widget protocol, checks acknowledgements and agent delivery, and measures.
//!
//! Shared by `examples/loadgen` (the command) and `tests/load.rs` (its checks in CI).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the bot answers: questions of the bundled FAQ that get an answer, not a hand-over.
const QUESTIONS: &[&str] = &[
    "When will my order ship?",
    "多久发货",
    "怎么退货？",
    "how do I return an item",
];

/// The first message of a visitor with `--handoff`.
const HANDOFF: &str = "human please";

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The service, on loopback.
    pub(crate) addr: SocketAddr,
    /// Visitors, each with one widget socket.
    pub(crate) visitors: usize,
    /// Agent consoles: (name, password) each.
    pub(crate) agents: Vec<(String, String)>,
    /// Messages each visitor sends at most.
    pub(crate) messages_per_visitor: Option<u64>,
    /// How long visitors send for at most.
    pub(crate) duration: Option<Duration>,
    /// Offered messages a second over all visitors (open loop); `None`: each visitor sends as
    /// soon as its previous message is acknowledged (closed loop).
    pub(crate) rate: Option<f64>,
    /// Visitors first ask for a human, so agents get their messages.
    pub(crate) handoff: bool,
    /// The server's process, for its CPU time and memory.
    pub(crate) server_pid: Option<u32>,
    /// A closed-loop visitor whose message is not acknowledged within this gives up.
    pub(crate) ack_timeout: Duration,
    /// After sending ends: how long to wait for the last acknowledgements and agent deliveries.
    pub(crate) drain: Duration,
    /// Sockets opened at once while connecting.
    pub(crate) connect_concurrency: usize,
    /// Print a progress line on stderr every second.
    pub(crate) progress: bool,
    /// Agents resolve the conversations they hold when the run ends (frees their capacity).
    pub(crate) resolve_at_end: bool,
    /// The hard limit on the whole run.
    pub(crate) max_time: Duration,
    /// After sending, wait (up to `drain`) until the consoles hold this many conversations.
    pub(crate) expect_assigned: Option<usize>,
    /// Several nodes of one desk: visitors are spread over these (round robin) instead of
    /// `addr`; agents sign in at `addr`.
    pub(crate) visitor_addrs: Vec<SocketAddr>,
}

impl Options {
    /// Defaults for a service at `addr`: 10 visitors, 100 messages each, closed loop.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            visitors: 10,
            agents: Vec::new(),
            messages_per_visitor: None,
            duration: None,
            rate: None,
            handoff: false,
            server_pid: None,
            ack_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(10),
            connect_concurrency: 64,
            progress: false,
            resolve_at_end: true,
            max_time: Duration::from_secs(600),
            expect_assigned: None,
            visitor_addrs: Vec::new(),
        }
    }

    /// Where visitors connect: `visitor_addrs`, or `addr`.
    fn visitor_targets(&self) -> Vec<SocketAddr> {
        if self.visitor_addrs.is_empty() {
            vec![self.addr]
        } else {
            self.visitor_addrs.clone()
        }
    }

    /// The per-visitor message cap in force (100 when neither a count nor a duration is set).
    fn cap(&self) -> u64 {
        match (self.messages_per_visitor, self.duration) {
            (Some(n), _) => n,
            (None, Some(_)) => u64::MAX,
            (None, None) => 100,
        }
    }
}

/// `http://127.0.0.1:8080` (or `ws://`, `localhost`, `[::1]`) as a socket address; anything not
/// on loopback is refused.
pub(crate) fn loopback_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = ["http://", "ws://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .ok_or_else(|| format!("{url}: only http:// or ws:// URLs"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("{url}: name the port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{url}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("{url}: give a loopback IP or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "{url}: refusing a target that is not on loopback (127.0.0.0/8, ::1)"
        ));
    }
    Ok(SocketAddr::new(ip, port))
}

/// Counters the progress line reads while the run goes on.
#[derive(Debug, Default)]
struct Live {
    sent: AtomicU64,
    acked: AtomicU64,
    bot: AtomicU64,
    errors: AtomicU64,
    agent_frames: AtomicU64,
    /// When each customer message was sent (by client id), while agents are measured.
    sent_at: Mutex<HashMap<String, Instant>>,
    /// Customer sends -> an agent's console receives, in microseconds (first console only).
    agent_latencies_us: Mutex<Vec<u32>>,
    /// Whether agent consoles are connected (only then are send times kept).
    measure_agents: std::sync::atomic::AtomicBool,
}

/// A minimal HTTP/1.1 client on one keep-alive connection (JSON bodies with a length).
#[derive(Debug)]
pub(crate) struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// A session token sent as `Authorization: Bearer`.
    bearer: Option<String>,
}

impl Http {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            conn: None,
            bearer: None,
        }
    }

    /// POSTs `body`; retries once on a fresh connection if the kept one was closed. Each try
    /// has 15 s.
    async fn post(&mut self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let within = Duration::from_secs(15);
        let timed_out = || format!("POST {path}: no answer within 15 s");
        match tokio::time::timeout(within, self.try_post(path, body)).await {
            Ok(Ok(r)) => Ok(r),
            _ => {
                self.conn = None;
                let r = tokio::time::timeout(within, self.try_post(path, body)).await;
                if r.is_err() {
                    self.conn = None;
                }
                r.map_err(|_| timed_out())?
            }
        }
    }

    async fn try_post(&mut self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_nodelay(true).ok();
                self.conn.insert(BufReader::new(s))
            }
        };
        let body = body.to_string();
        let auth = self
            .bearer
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        conn.get_mut()
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        conn.read_line(&mut line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut close = false;
        loop {
            line.clear();
            conn.read_line(&mut line)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let length = length.ok_or("response without Content-Length")?;
        let mut buf = vec![0; length];
        conn.read_exact(&mut buf)
            .await
            .map_err(|e| format!("read body: {e}"))?;
        if close {
            self.conn = None;
        }
        Ok((status, serde_json::from_slice(&buf).unwrap_or(Value::Null)))
    }
}

async fn read_json(ws: &mut Ws, within: Duration) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no frame in time".to_owned())?
            .ok_or("socket closed")?
            .map_err(|e| format!("socket: {e}"))?;
        if let WsMessage::Text(t) = msg {
            return serde_json::from_str(t.as_str()).map_err(|e| format!("frame: {e}"));
        }
    }
}

/// Opens a visitor session (or resumes `token`'s) and its widget socket; waits for `hello`.
pub(crate) async fn connect_visitor(
    http: &mut Http,
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<Ws, String> {
    let body = token.map_or(json!({}), |t| json!({ "token": t }));
    let (status, session) = http.post("/chat/session", &body).await?;
    if status != 200 {
        return Err(format!("session: {status} {session}"));
    }
    let token = session["token"].as_str().ok_or("no token")?.to_owned();
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(format!("ws://{addr}/chat/ws?token={token}")),
    )
    .await
    .map_err(|_| "socket: no upgrade within 30 s".to_owned())?
    .map_err(|e| format!("socket: {e}"))?;
    let hello = read_json(&mut ws, Duration::from_secs(30)).await?;
    if hello["type"] != "hello" {
        return Err(format!("expected hello, got {hello}"));
    }
    Ok(ws)
}

/// Connects `n` visitors, `concurrency` at a time; failures are returned as errors. Gives up
/// on the rest after 50 failures in a row or at `deadline`.
pub(crate) async fn connect_visitors(
    addrs: &[SocketAddr],
    n: usize,
    concurrency: usize,
    deadline: Instant,
) -> Vec<Result<Ws, String>> {
    let workers = concurrency.clamp(1, n.max(1));
    let next = Arc::new(AtomicU64::new(0));
    let failing = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let addrs: Arc<[SocketAddr]> = addrs.into();
    for _ in 0..workers {
        let next = next.clone();
        let failing = failing.clone();
        let addrs = addrs.clone();
        tasks.push(tokio::spawn(async move {
            // One kept HTTP connection per node; visitor `i` goes to node `i % nodes`.
            let mut https: Vec<Http> = addrs.iter().map(|a| Http::new(*a)).collect();
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                if failing.load(Ordering::Relaxed) >= 50 || Instant::now() >= deadline {
                    out.push((i, Err("not tried: connecting was given up".to_owned())));
                    continue;
                }
                let node = i % addrs.len();
                let r = connect_visitor(&mut https[node], addrs[node], None).await;
                if r.is_ok() {
                    failing.store(0, Ordering::Relaxed);
                } else {
                    failing.fetch_add(1, Ordering::Relaxed);
                }
                out.push((i, r));
            }
            out
        }));
    }
    let mut all: Vec<(usize, Result<Ws, String>)> = Vec::with_capacity(n);
    for t in tasks {
        match t.await {
            Ok(v) => all.extend(v),
            Err(e) => all.push((usize::MAX, Err(format!("connect task: {e}")))),
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, v)| v).collect()
}

/// Signs an agent in and opens the console socket; returns the socket and its `welcome`.
async fn connect_agent(
    addr: SocketAddr,
    name: &str,
    password: &str,
) -> Result<(Ws, Value), String> {
    let mut http = Http::new(addr);
    let (status, login) = http
        .post(
            "/api/v1/auth/login",
            &json!({ "name": name, "password": password }),
        )
        .await?;
    if status != 200 {
        return Err(format!("login {name}: {status} {login}"));
    }
    let token = login["token"].as_str().ok_or("no agent token")?;
    // The session token goes in a header; the socket opens with a one-time ticket.
    http.bearer = Some(token.to_owned());
    let (status, ticket) = http.post("/api/v1/auth/ws-ticket", &json!({})).await?;
    if status != 200 {
        return Err(format!("ws-ticket {name}: {status} {ticket}"));
    }
    let ticket = ticket["ticket"].as_str().ok_or("no ticket")?;
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(format!("ws://{addr}/agent/ws?ticket={ticket}")),
    )
    .await
    .map_err(|_| "console socket: no upgrade within 30 s".to_owned())?
    .map_err(|e| format!("console socket: {e}"))?;
    let welcome = read_json(&mut ws, Duration::from_secs(30)).await?;
    if welcome["type"] != "welcome" {
        return Err(format!("expected welcome, got {welcome}"));
    }
    Ok((ws, welcome))
}

/// What one visitor saw.
#[derive(Debug, Default)]
struct VisitorOutcome {
    /// Acknowledgement latencies, microseconds.
    latencies_us: Vec<u32>,
    /// client id -> message id of every acknowledged message.
    acked: HashMap<String, String>,
    sent: u64,
    unacked: u64,
    /// Acknowledgements for a client id already acknowledged.
    duplicate_acks: u64,
    /// Fresh messages the server called duplicates (a client id collision).
    server_duplicates: u64,
    /// Acknowledgements for client ids never sent.
    unknown_acks: u64,
    bot_replies: u64,
    system_messages: u64,
    errors: HashMap<String, u64>,
    last_ack: Option<Instant>,
}

/// Per-visitor sending plan.
#[derive(Debug)]
struct Plan {
    run: String,
    start: Instant,
    cap: u64,
    send_until: Instant,
    hard_end: Instant,
    period: Option<Duration>,
    visitors: usize,
    handoff: bool,
    ack_timeout: Duration,
    drain: Duration,
}

fn text_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

async fn run_visitor(i: usize, ws: Ws, plan: Arc<Plan>, live: Arc<Live>) -> VisitorOutcome {
    let (mut sink, mut stream) = ws.split();
    let mut out = VisitorOutcome::default();
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let mut seq = 0u64;
    // Open loop: visitors' sends spread evenly over one period.
    let mut next_at = plan.start
        + plan.period.map_or(Duration::ZERO, |p| {
            p.mul_f64(i as f64 / plan.visitors as f64)
        });
    let mut last_send = plan.start;
    loop {
        let now = Instant::now();
        if now >= plan.hard_end {
            break;
        }
        let more = seq < plan.cap && now < plan.send_until;
        let may_send = more
            && match plan.period {
                Some(_) => now >= next_at,
                None => pending.is_empty(),
            };
        if may_send {
            let client_id = format!("{}-{i}-{seq}", plan.run);
            let text = if plan.handoff && seq == 0 {
                HANDOFF
            } else {
                QUESTIONS[(i + seq as usize) % QUESTIONS.len()]
            };
            let frame = json!({"type": "message", "client_id": client_id, "text": text});
            if sink
                .send(WsMessage::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                *out.errors.entry("send_failed".into()).or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            let at = Instant::now();
            if live.measure_agents.load(Ordering::Relaxed) {
                live.sent_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(client_id.clone(), at);
            }
            pending.insert(client_id, at);
            last_send = at;
            seq += 1;
            out.sent += 1;
            live.sent.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = plan.period {
                next_at += p;
            }
            continue;
        }
        if !more && pending.is_empty() {
            break;
        }
        let oldest = pending.values().min().copied();
        let stuck = oldest.is_some_and(|o| now.duration_since(o) >= plan.ack_timeout);
        if (plan.period.is_none() && stuck)
            || (!more && now.duration_since(last_send) >= plan.drain)
        {
            break;
        }
        let wake = plan.hard_end.min(match (more, plan.period, oldest) {
            (true, Some(_), _) => next_at,
            (true, None, Some(o)) => o + plan.ack_timeout,
            (true, None, None) => now,
            (false, _, _) => last_send + plan.drain,
        });
        let frame = tokio::select! {
            f = stream.next() => f,
            () = tokio::time::sleep_until(wake.into()) => continue,
        };
        let text = match frame {
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                *out.errors.entry("socket_closed".into()).or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Some(Ok(_)) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            *out.errors.entry("bad_frame".into()).or_default() += 1;
            continue;
        };
        match text_of(&v["type"]) {
            "ack" => {
                let client_id = text_of(&v["client_id"]).to_owned();
                let message_id = match &v["message_id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(at) = pending.remove(&client_id) {
                    let now = Instant::now();
                    out.latencies_us
                        .push(now.duration_since(at).as_micros().min(u32::MAX as u128) as u32);
                    out.last_ack = Some(now);
                    if v["duplicate"] == true {
                        out.server_duplicates += 1;
                    }
                    out.acked.insert(client_id, message_id);
                    live.acked.fetch_add(1, Ordering::Relaxed);
                } else if out.acked.contains_key(&client_id) {
                    out.duplicate_acks += 1;
                } else {
                    out.unknown_acks += 1;
                }
            }
            "message" => match text_of(&v["message"]["author"]) {
                "bot" => {
                    out.bot_replies += 1;
                    live.bot.fetch_add(1, Ordering::Relaxed);
                }
                "system" => out.system_messages += 1,
                _ => {}
            },
            "error" => {
                let code = text_of(&v["code"]).to_owned();
                *out.errors.entry(code).or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = v["client_id"].as_str() {
                    pending.remove(id);
                }
            }
            _ => {}
        }
    }
    out.unacked = pending.len() as u64;
    let _ = sink.close().await;
    out
}

/// What the agent consoles saw, shared while they run.
#[derive(Debug, Default)]
struct AgentSeen {
    /// Conversations assigned to one of the consoles.
    assigned: HashSet<String>,
    /// Customer message id -> conversation, from assigned histories and live frames.
    conversation_of: HashMap<String, String>,
    /// Customer message ids that arrived as live `message` frames.
    live: HashSet<String>,
    /// Live frames for customer messages, over all consoles.
    frames: u64,
    /// Live frames for a message the same console had already received.
    duplicate_frames: u64,
    errors: HashMap<String, u64>,
}

impl AgentSeen {
    fn take_conversation(&mut self, view: &Value) -> Option<String> {
        let id = view["conversation"]["id"].as_str()?.to_owned();
        self.assigned.insert(id.clone());
        for m in view["customer"]["history"].as_array().into_iter().flatten() {
            if m["author"]["role"] == "customer"
                && m["conversation"] == id.as_str()
                && let Some(mid) = m["id"].as_str()
            {
                self.conversation_of.insert(mid.to_owned(), id.clone());
            }
        }
        Some(id)
    }
}

async fn run_agent(
    ws: Ws,
    welcome: Value,
    seen: Arc<Mutex<AgentSeen>>,
    mut stop: watch::Receiver<bool>,
    resolve_at_end: bool,
    live: Arc<Live>,
) {
    let (mut sink, mut stream) = ws.split();
    let mut mine: HashSet<String> = HashSet::new();
    // Several consoles of one agent each get every frame; a duplicate is one console's.
    let mut on_this_console: HashSet<String> = HashSet::new();
    {
        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
        for c in welcome["conversations"].as_array().into_iter().flatten() {
            if let Some(id) = s.take_conversation(c) {
                mine.insert(id);
            }
        }
    }
    let mut accepts = Vec::new();
    for o in welcome["offers"].as_array().into_iter().flatten() {
        if let Some(id) = o["conversation"]["conversation"]["id"].as_str() {
            accepts.push(id.to_owned());
        }
    }
    loop {
        for id in accepts.drain(..) {
            let f = json!({"type": "accept", "conversation_id": id});
            let _ = sink.send(WsMessage::Text(f.to_string().into())).await;
        }
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = stop.changed() => break,
        };
        let text = match frame {
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                *s.errors.entry("console_closed".into()).or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(Ok(_)) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
        match text_of(&v["type"]) {
            "assigned" => {
                if let Some(id) = s.take_conversation(&v["conversation"]) {
                    mine.insert(id);
                }
            }
            "offer" => {
                if let Some(id) = v["offer"]["conversation"]["conversation"]["id"].as_str() {
                    accepts.push(id.to_owned());
                }
            }
            "message" => {
                let m = &v["message"];
                if m["author"]["role"] == "customer"
                    && let (Some(mid), Some(conv)) =
                        (m["id"].as_str(), v["conversation_id"].as_str())
                {
                    live.agent_frames.fetch_add(1, Ordering::Relaxed);
                    // The first console to receive it measures the message's way to an agent.
                    if let Some(client_id) = m["provider_message_id"].as_str()
                        && let Some(sent) = live
                            .sent_at
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(client_id)
                    {
                        let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        live.agent_latencies_us
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(us);
                    }
                    s.conversation_of.insert(mid.to_owned(), conv.to_owned());
                    s.frames += 1;
                    s.live.insert(mid.to_owned());
                    if !on_this_console.insert(mid.to_owned()) {
                        s.duplicate_frames += 1;
                    }
                }
            }
            "error" => {
                *s.errors.entry(text_of(&v["code"]).to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
    if resolve_at_end {
        for id in &mine {
            let f = json!({"type": "resolve", "conversation_id": id});
            if sink
                .send(WsMessage::Text(f.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        // Let the resolutions land before the socket closes.
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, stream.next()).await {}
    }
    let _ = sink.close().await;
}

/// The outcome of a run, printed as one JSON line.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Report {
    pub(crate) visitors: usize,
    /// Nodes the visitors were spread over.
    pub(crate) nodes: usize,
    pub(crate) connected: usize,
    pub(crate) agents: usize,
    pub(crate) mode: &'static str,
    pub(crate) offered_per_sec: Option<f64>,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) msgs_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) bot_replies: u64,
    pub(crate) bot_replies_per_sec: f64,
    /// Acknowledged messages of visitors whose conversation an agent console holds.
    pub(crate) agent_expected: u64,
    /// Of those, how many the consoles received (live or in an assigned conversation's history).
    pub(crate) agent_delivered: u64,
    pub(crate) agent_missing: u64,
    /// Live console frames for customer messages (each console of an agent gets its own).
    pub(crate) agent_frames: u64,
    /// A customer message's way to an agent's console (sent -> first console frame), median.
    pub(crate) agent_p50_ms: f64,
    /// The same, 99th percentile.
    pub(crate) agent_p99_ms: f64,
    /// Frames a console received twice for the same message.
    pub(crate) agent_duplicate_frames: u64,
    pub(crate) assigned_conversations: usize,
    pub(crate) unacked: u64,
    pub(crate) duplicates: u64,
    pub(crate) server_duplicates: u64,
    pub(crate) unknown_acks: u64,
    pub(crate) errors: u64,
    pub(crate) error_codes: HashMap<String, u64>,
    /// Server CPU over the sending window, percent of one core (200 = both of two cores).
    pub(crate) server_cpu_pct: Option<f64>,
    /// Server CPU time per acknowledged message, milliseconds (steadier than rates on a busy
    /// machine).
    pub(crate) server_cpu_ms_per_msg: Option<f64>,
    /// This process's CPU over the same window, percent of one core.
    pub(crate) client_cpu_pct: Option<f64>,
    pub(crate) server_rss_mb: Option<f64>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU ticks (user + system) of a process, from `/proc/<pid>/stat`.
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line; `after` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory of a process in MiB, from `/proc/<pid>/status`.
pub(crate) fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round3(kb / 1024.0))
}

fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU use of `pid` between two samples, percent of one core.
struct CpuClock {
    pid: String,
    ticks: u64,
    at: Instant,
}

impl CpuClock {
    fn start(pid: String) -> Option<Self> {
        Some(Self {
            ticks: cpu_ticks(&pid)?,
            pid,
            at: Instant::now(),
        })
    }

    /// Percent of one core since the start, and CPU seconds.
    fn percent(&self, hz: f64) -> Option<(f64, f64)> {
        let ticks = cpu_ticks(&self.pid)?;
        let secs = self.at.elapsed().as_secs_f64();
        let cpu = ticks.saturating_sub(self.ticks) as f64 / hz;
        Some((round3(cpu / secs * 100.0), cpu))
    }
}

/// Runs the load and checks.
///
/// # Errors
/// When no visitor or agent could connect at all.
pub(crate) async fn run(o: &Options) -> Result<Report, String> {
    let run_id = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let live = Arc::new(Live::default());
    let hz = ticks_per_sec();

    // Agents first, so the visitors' hand-overs find them signed in.
    let seen = Arc::new(Mutex::new(AgentSeen::default()));
    let (stop, stopped) = watch::channel(false);
    let mut agent_tasks = Vec::new();
    live.measure_agents
        .store(!o.agents.is_empty(), Ordering::Relaxed);
    for (name, password) in &o.agents {
        let (ws, welcome) = connect_agent(o.addr, name, password).await?;
        agent_tasks.push(tokio::spawn(run_agent(
            ws,
            welcome,
            seen.clone(),
            stopped.clone(),
            o.resolve_at_end,
            live.clone(),
        )));
    }

    let t = Instant::now();
    let conns = connect_visitors(
        &o.visitor_targets(),
        o.visitors,
        o.connect_concurrency,
        Instant::now() + o.max_time,
    )
    .await;
    let mut visitors = Vec::new();
    let mut connect_errors: HashMap<String, u64> = HashMap::new();
    for c in conns {
        match c {
            Ok(v) => visitors.push(v),
            Err(e) => {
                let failed = connect_errors.entry("connect_failed".into()).or_default();
                *failed += 1;
                if *failed <= 5 {
                    eprintln!("loadgen: visitor not connected: {e}");
                }
            }
        }
    }
    if visitors.is_empty() && o.visitors > 0 {
        return Err("no visitor could connect".into());
    }
    if o.progress {
        eprintln!(
            "loadgen: {} visitors and {} agents connected in {:.1} s",
            visitors.len(),
            o.agents.len(),
            t.elapsed().as_secs_f64()
        );
    }

    let start = Instant::now() + Duration::from_millis(20);
    let hard_end = start + o.max_time;
    let plan = Arc::new(Plan {
        run: run_id,
        start,
        cap: o.cap(),
        send_until: o.duration.map_or(hard_end, |d| (start + d).min(hard_end)),
        hard_end,
        period: o
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(visitors.len().max(1) as f64 / r)),
        visitors: visitors.len().max(1),
        handoff: o.handoff,
        ack_timeout: o.ack_timeout,
        drain: o.drain,
    });
    let server_cpu = o.server_pid.and_then(|p| CpuClock::start(p.to_string()));
    let client_cpu = CpuClock::start("self".into());
    let progress = o.progress.then(|| {
        let live = live.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let acked = live.acked.load(Ordering::Relaxed);
                let sent = live.sent.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>4.0}s] sent {sent} acked {acked} ({}/s) in flight {} bot {} agent frames {} errors {}",
                    start.elapsed().as_secs_f64(),
                    acked - last,
                    sent.saturating_sub(acked),
                    live.bot.load(Ordering::Relaxed),
                    live.agent_frames.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                );
                last = acked;
            }
        })
    });

    let mut tasks = Vec::new();
    for (i, v) in visitors.into_iter().enumerate() {
        tasks.push(tokio::spawn(run_visitor(i, v, plan.clone(), live.clone())));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        match t.await {
            Ok(v) => outcomes.push(v),
            Err(e) => {
                eprintln!("loadgen: visitor task failed: {e}");
                *connect_errors.entry("task_failed".into()).or_default() += 1;
            }
        }
    }
    let end = outcomes
        .iter()
        .filter_map(|o| o.last_ack)
        .max()
        .unwrap_or_else(Instant::now)
        .max(start);
    let server_cpu = server_cpu.and_then(|c| c.percent(hz));
    let client_cpu_pct = client_cpu.and_then(|c| c.percent(hz)).map(|c| c.0);
    let server_rss_mb = o.server_pid.and_then(rss_mb);

    // Every acknowledged message of a visitor whose conversation a console holds must reach it.
    let expected = |seen: &AgentSeen| -> (u64, u64) {
        let (mut expected, mut delivered) = (0, 0);
        for out in &outcomes {
            let assigned = out.acked.values().any(|m| {
                seen.conversation_of
                    .get(m)
                    .is_some_and(|c| seen.assigned.contains(c))
            });
            if assigned {
                expected += out.acked.len() as u64;
                delivered += out
                    .acked
                    .values()
                    .filter(|m| seen.live.contains(*m) || seen.conversation_of.contains_key(*m))
                    .count() as u64;
            }
        }
        (expected, delivered)
    };
    let settle_until = Instant::now()
        + if o.agents.is_empty() {
            Duration::ZERO
        } else {
            o.drain
        };
    loop {
        let ((e, d), assigned) = {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            (expected(&seen), seen.assigned.len())
        };
        let all_assigned = o.expect_assigned.is_none_or(|n| assigned >= n);
        if (e == d && all_assigned) || Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    for t in agent_tasks {
        let _ = t.await;
    }
    if let Some(p) = progress {
        p.abort();
    }

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let (agent_expected, agent_delivered) = expected(&seen);
    let mut latencies: Vec<u32> = outcomes
        .iter()
        .flat_map(|o| o.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let mut agent_latencies = std::mem::take(
        &mut *live
            .agent_latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    agent_latencies.sort_unstable();
    let mut error_codes = connect_errors;
    for out in &outcomes {
        for (k, v) in &out.errors {
            *error_codes.entry(k.clone()).or_default() += v;
        }
    }
    for (k, v) in &seen.errors {
        *error_codes.entry(format!("agent_{k}")).or_default() += v;
    }
    let sum = |f: fn(&VisitorOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let acked = latencies.len() as u64;
    let elapsed = end.duration_since(start).as_secs_f64().max(1e-6);
    let bot_replies = sum(|o| o.bot_replies);
    Ok(Report {
        visitors: o.visitors,
        nodes: o.visitor_targets().len(),
        connected: outcomes.len(),
        agents: o.agents.len(),
        mode: if o.rate.is_some() { "open" } else { "closed" },
        offered_per_sec: o.rate,
        sent: sum(|o| o.sent),
        acked,
        elapsed_s: round3(elapsed),
        msgs_per_sec: round3(acked as f64 / elapsed),
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
        bot_replies,
        bot_replies_per_sec: round3(bot_replies as f64 / elapsed),
        agent_expected,
        agent_delivered,
        agent_missing: agent_expected - agent_delivered,
        agent_frames: seen.frames,
        agent_p50_ms: percentile(&agent_latencies, 0.50),
        agent_p99_ms: percentile(&agent_latencies, 0.99),
        agent_duplicate_frames: seen.duplicate_frames,
        assigned_conversations: seen.assigned.len(),
        unacked: sum(|o| o.unacked),
        duplicates: sum(|o| o.duplicate_acks),
        server_duplicates: sum(|o| o.server_duplicates),
        unknown_acks: sum(|o| o.unknown_acks),
        errors: error_codes.values().sum(),
        error_codes,
        server_cpu_ms_per_msg: server_cpu
            .filter(|_| acked > 0)
            .map(|(_, secs)| round3(secs / acked as f64 * 1000.0)),
        server_cpu_pct: server_cpu.map(|c| c.0),
        client_cpu_pct,
        server_rss_mb,
    })
}

/// The outcome of the idle-sockets mode.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct IdleReport {
    pub(crate) idle_sockets: usize,
    pub(crate) connected: usize,
    pub(crate) connect_s: f64,
    pub(crate) rss_before_mb: Option<f64>,
    pub(crate) rss_held_mb: Option<f64>,
    pub(crate) kb_per_socket: Option<f64>,
    /// A new visitor's session, socket and `hello`, then one message: ms to the `ack` and to
    /// the bot's answer (worst of the probes).
    pub(crate) probe_connect_ms: f64,
    pub(crate) probe_ack_ms: f64,
    pub(crate) probe_reply_ms: f64,
    pub(crate) probes: usize,
    pub(crate) rss_after_close_mb: Option<f64>,
    /// Share of the memory the sockets took that came back after they closed.
    pub(crate) returned_pct: Option<f64>,
}

async fn probe(addr: SocketAddr, n: usize) -> Result<(f64, f64, f64), String> {
    let mut http = Http::new(addr);
    let t = Instant::now();
    let mut ws = connect_visitor(&mut http, addr, None).await?;
    let connected = t.elapsed();
    let t = Instant::now();
    let frame = json!({"type": "message", "client_id": format!("probe-{}-{n}", uuid::Uuid::new_v4().simple()), "text": QUESTIONS[0]});
    ws.send(WsMessage::Text(frame.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    let mut ack = None;
    loop {
        let f = read_json(&mut ws, Duration::from_secs(30)).await?;
        if f["type"] == "ack" {
            ack = Some(t.elapsed());
        } else if f["type"] == "message" && f["message"]["author"] == "bot" {
            let reply = t.elapsed();
            let _ = ws.close(None).await;
            let ms = |d: Duration| round3(d.as_secs_f64() * 1000.0);
            return Ok((ms(connected), ms(ack.unwrap_or(reply)), ms(reply)));
        } else if f["type"] == "error" {
            return Err(format!("probe refused: {f}"));
        }
    }
}

/// Holds `n` idle visitor sockets, checks that a new visitor is still answered, and measures
/// the server's memory before, while and after.
///
/// # Errors
/// When a probe visitor is not answered.
pub(crate) async fn idle(o: &Options, n: usize) -> Result<IdleReport, String> {
    let rss = || o.server_pid.and_then(rss_mb);
    let before = rss();
    let t = Instant::now();
    let conns = connect_visitors(&[o.addr], n, o.connect_concurrency, t + o.max_time).await;
    let connect_s = round3(t.elapsed().as_secs_f64());
    let mut held = Vec::new();
    let mut failed = 0;
    for c in conns {
        match c {
            Ok(ws) => held.push(ws),
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("loadgen: idle visitor not connected: {e}");
                }
            }
        }
    }
    if o.progress {
        eprintln!(
            "loadgen: {} idle sockets open ({failed} failed) in {connect_s} s",
            held.len()
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rss();
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    let probes = 5;
    for i in 0..probes {
        let (c, a, r) = probe(o.addr, i).await?;
        worst = (worst.0.max(c), worst.1.max(a), worst.2.max(r));
    }
    let connected = held.len();
    for mut ws in held {
        let _ = ws.close(None).await;
    }
    // Give the server time to tear the sockets down and its allocator time to give back.
    let mut after = rss();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        after = rss();
    }
    let kb_per_socket = match (before, during) {
        (Some(b), Some(d)) if connected > 0 => Some(round3((d - b) * 1024.0 / connected as f64)),
        _ => None,
    };
    let returned_pct = match (before, during, after) {
        (Some(b), Some(d), Some(a)) if d > b => Some(round3((d - a) / (d - b) * 100.0)),
        _ => None,
    };
    Ok(IdleReport {
        idle_sockets: n,
        connected,
        connect_s,
        rss_before_mb: before,
        rss_held_mb: during,
        kb_per_socket,
        probe_connect_ms: worst.0,
        probe_ack_ms: worst.1,
        probe_reply_ms: worst.2,
        probes,
        rss_after_close_mb: after,
        returned_pct,
    })
}
