//! `kill -9` of the real server under load, then a restart on the same database: every message
//! the server acknowledged is stored exactly once, and visitors that reconnect with their token
//! and resend what was not acknowledged (same client ids) create no duplicates.
//!
//! The server runs as a child process (see `tests/server_process`). The SQLite test runs
//! everywhere; the PostgreSQL one when `CS_TEST_POSTGRES_URL` is set (a tenant of its own per
//! run). The default is a short run (20 visitors, killed after about a second, once);
//! `CS_TEST_CRASH_LONG=1` runs 200 visitors through three kills five seconds apart.

mod common;
mod server_process;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Client, TempDir, post_json};
use futures::{SinkExt, StreamExt};
use omnidesk::core::store::{ConversationStore, MessageQuery, MessageScope};
use omnidesk::core::{ChannelKind, Identity, TenantId};
use serde_json::{Value, json};
use server_process::ServerProcess;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The child's entry point: serves when started as the server, does nothing in a test run.
#[test]
fn child_server_process() {
    server_process::serve_if_child();
}

const CHILD: &str = "child_server_process";

/// Size of a run.
struct Shape {
    visitors: usize,
    kills: usize,
    load_for: Duration,
}

fn shape() -> Shape {
    if std::env::var_os("CS_TEST_CRASH_LONG").is_some() {
        Shape {
            visitors: 200,
            kills: 3,
            load_for: Duration::from_secs(5),
        }
    } else {
        Shape {
            visitors: 20,
            kills: 1,
            load_for: Duration::from_millis(1200),
        }
    }
}

/// One visitor as the test remembers it across crashes.
#[derive(Debug, Default)]
struct Visitor {
    id: String,
    token: String,
    /// Client ids sent, in order, with their text.
    sent: Vec<(String, String)>,
    /// client id -> the message id the server acknowledged it with.
    acked: HashMap<String, Value>,
    /// Resent messages the server said it had already stored.
    resent_duplicates: u64,
}

impl Visitor {
    fn unacked(&self) -> Vec<(String, String)> {
        self.sent
            .iter()
            .filter(|(id, _)| !self.acked.contains_key(id))
            .cloned()
            .collect()
    }
}

/// A visitor's session (new, or resumed with its token) and socket.
async fn connect(addr: std::net::SocketAddr, token: Option<&str>) -> (String, String, Client) {
    let body = token.map_or(json!({}), |t| json!({ "token": t }));
    let (status, session) = post_json(addr, "/chat/session", &body).await;
    assert_eq!(status, 200, "session: {session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let visitor = session["visitor"].as_str().unwrap().to_owned();
    let mut c = Client::connect(&format!("ws://{addr}/chat/ws?token={token}")).await;
    let hello = c.next().await;
    assert_eq!(hello["type"], "hello");
    (visitor, token, c)
}

/// Reads frames until the ack of `client_id`; `None` when the socket ends first or nothing
/// comes within `within`.
async fn ack_of(c: &mut Client, client_id: &str, within: Duration) -> Option<Value> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(until, c.ws.next())
            .await
            .ok()??
            .ok()?;
        let WsMessage::Text(t) = msg else { continue };
        let Ok(f) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        if f["client_id"] == client_id {
            if f["type"] == "ack" {
                return Some(f);
            }
            if f["type"] == "error" {
                eprintln!("refused {client_id}: {f}");
                return None;
            }
        }
    }
}

/// Sends as fast as acknowledgements come until the socket dies (the server was killed) or
/// `until`.
async fn drive(mut v: Visitor, mut c: Client, run: &str, i: usize, until: Instant) -> Visitor {
    while Instant::now() < until {
        let n = v.sent.len();
        let client_id = format!("{run}-{i}-{n}");
        let text = ["When will my order ship?", "多久发货", "怎么退货？"][n % 3].to_owned();
        let frame = json!({"type": "message", "client_id": client_id, "text": text});
        if c.ws
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
        v.sent.push((client_id.clone(), text));
        match ack_of(&mut c, &client_id, Duration::from_secs(30)).await {
            Some(ack) => {
                v.acked.insert(client_id, ack["message_id"].clone());
            }
            None => break,
        }
    }
    v
}

/// Reconnects with the same token and resends every unacknowledged message with its client
/// id; each must now be acknowledged.
async fn resend(mut v: Visitor, addr: std::net::SocketAddr) -> (Visitor, Client) {
    let (id, token, mut c) = connect(addr, Some(&v.token)).await;
    assert_eq!(
        id, v.id,
        "the same token is the same visitor after a restart"
    );
    assert_eq!(token, v.token);
    for (client_id, text) in v.unacked() {
        let frame = json!({"type": "message", "client_id": client_id, "text": text});
        c.ws.send(WsMessage::Text(frame.to_string().into()))
            .await
            .expect("send after restart");
        let ack = ack_of(&mut c, &client_id, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{client_id} resent after the restart is acknowledged"));
        if ack["duplicate"] == true {
            v.resent_duplicates += 1;
        }
        v.acked.insert(client_id, ack["message_id"].clone());
    }
    (v, c)
}

/// Runs the load, kills the server `kills` times mid-load, restarts it, resends, and returns
/// what the visitors know; the server is stopped at the end.
async fn crash_run(config: &std::path::Path, run: &str) -> Vec<Visitor> {
    let s = shape();
    let mut server = ServerProcess::start(config, CHILD);
    let mut visitors = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..s.visitors {
        let (id, token, c) = connect(server.addr, None).await;
        visitors.push(Visitor {
            id,
            token,
            ..Visitor::default()
        });
        clients.push(c);
    }
    for round in 0..s.kills {
        let until = Instant::now() + s.load_for * 4;
        let tasks: Vec<_> = visitors
            .into_iter()
            .zip(clients)
            .enumerate()
            .map(|(i, (v, c))| {
                let run = format!("{run}r{round}");
                tokio::spawn(async move { drive(v, c, &run, i, until).await })
            })
            .collect();
        tokio::time::sleep(s.load_for).await;
        let pid = server.pid();
        server.kill9();
        eprintln!("round {round}: killed the server (pid {pid}) with SIGKILL mid-load");
        visitors = Vec::new();
        for t in tasks {
            visitors.push(t.await.expect("visitor task"));
        }
        let sent: usize = visitors.iter().map(|v| v.sent.len()).sum();
        let acked: usize = visitors.iter().map(|v| v.acked.len()).sum();
        eprintln!("round {round}: {sent} sent so far, {acked} acknowledged");
        assert!(acked > 0, "the load ran before the kill");

        server = ServerProcess::start(config, CHILD);
        clients = Vec::new();
        let mut resent = Vec::new();
        for v in visitors {
            resent.push(resend(v, server.addr).await);
        }
        visitors = Vec::new();
        for (v, c) in resent {
            visitors.push(v);
            clients.push(c);
        }
    }
    drop(clients);
    server.stop();
    visitors
}

/// Every acknowledged message is stored exactly once, with the id it was acknowledged with;
/// nothing is stored that was not sent; no client id is stored twice.
async fn check_store(store: &dyn ConversationStore, tenant: &TenantId, visitors: &[Visitor]) {
    let (mut stored_total, mut bot_total, mut resent_dups, mut unanswered) = (0, 0, 0, 0);
    for v in visitors {
        let customer = store
            .find_customer(tenant, &Identity::new(ChannelKind::WebChat, v.id.as_str()))
            .await
            .expect("store answers")
            .unwrap_or_else(|| panic!("visitor {} has a customer", v.id));
        let mut all = Vec::new();
        let mut query =
            MessageQuery::new(tenant.clone(), MessageScope::Customer(customer.id), 1000);
        loop {
            let page = store.messages(&query).await.expect("messages");
            let Some(last) = page.last() else { break };
            query.after = Some(last.id);
            let full = page.len() == 1000;
            all.extend(page);
            if !full {
                break;
            }
        }
        let mut by_client: HashMap<String, Vec<Value>> = HashMap::new();
        // A customer message with no bot message after it before the next customer message.
        let mut awaiting = false;
        for m in &all {
            match m.author.role() {
                "customer" => {
                    unanswered += u64::from(awaiting);
                    awaiting = true;
                    let client_id = m.provider_message_id.clone().expect("a client id");
                    by_client
                        .entry(client_id)
                        .or_default()
                        .push(serde_json::to_value(m.id).unwrap());
                }
                "bot" => {
                    bot_total += 1;
                    awaiting = false;
                }
                _ => {}
            }
        }
        unanswered += u64::from(awaiting);
        for (client_id, ids) in &by_client {
            assert_eq!(ids.len(), 1, "{client_id} stored {} times", ids.len());
            assert!(
                v.sent.iter().any(|(c, _)| c == client_id),
                "{client_id} stored but never sent"
            );
        }
        for (client_id, message_id) in &v.acked {
            let stored = by_client
                .get(client_id)
                .unwrap_or_else(|| panic!("acknowledged {client_id} is not stored"));
            assert_eq!(
                &stored[0], message_id,
                "{client_id} stored under the acknowledged id"
            );
        }
        assert_eq!(
            v.acked.len(),
            v.sent.len(),
            "every message acknowledged in the end"
        );
        stored_total += by_client.len();
        resent_dups += v.resent_duplicates;
    }
    eprintln!(
        "store: {stored_total} customer messages, each once; {resent_dups} resent messages had \
         been stored before the kill (acknowledged as duplicates); {bot_total} bot answers \
         ({unanswered} customer messages with no bot message before the next one)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_and_duplicates_nothing_on_sqlite() {
    let dir = TempDir::new();
    let db = dir.0.join("desk.db");
    let tenant = TenantId::default();
    let config = dir.0.join("omnidesk.toml");
    std::fs::write(
        &config,
        server_process::load_config(
            &db.display().to_string(),
            "crash test secret, sixteen+",
            tenant.as_str(),
        ),
    )
    .unwrap();
    let visitors = crash_run(&config, "s").await;
    let store = omnidesk::core::store::SqliteStore::open(&db)
        .await
        .expect("the database opens after the crashes");
    check_store(&store, &tenant, &visitors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_and_duplicates_nothing_on_postgres() {
    if std::env::var_os("CS_TEST_POSTGRES_URL").is_none() {
        eprintln!("skipping the PostgreSQL crash test: set CS_TEST_POSTGRES_URL");
        return;
    }
    #[cfg(not(feature = "postgres"))]
    panic!("CS_TEST_POSTGRES_URL is set but this build lacks the postgres feature");
    #[cfg(feature = "postgres")]
    {
        // A schema of its own: builds with other schema versions may share the database.
        let url = cs_core::conformance::postgres_url("omnidesk_crash")
            .await
            .expect("CS_TEST_POSTGRES_URL is set");
        // A tenant of its own, so runs against a shared database never meet.
        let tenant = TenantId::new(format!("crash-{}", uuid::Uuid::new_v4().simple())).unwrap();
        let dir = TempDir::new();
        let config = dir.0.join("omnidesk.toml");
        std::fs::write(
            &config,
            server_process::load_config(&url, "crash test secret, sixteen+", tenant.as_str()),
        )
        .unwrap();
        let visitors = crash_run(&config, "p").await;
        let store = omnidesk::core::store::PostgresStore::connect(&url)
            .await
            .expect("PostgreSQL");
        check_store(&store, &tenant, &visitors).await;
    }
}
