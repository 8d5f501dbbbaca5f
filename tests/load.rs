//! The load generator's own checks as a short run in CI (`examples/loadgen/driver.rs` against
//! the service in this process): every message acknowledged and matched by client id, every
//! customer message of a conversation an agent holds delivered to that agent's console; and
//! that the checks do fail when the service refuses messages.
//!
//! `CS_TEST_LOAD=1` also runs the idle-sockets test: 10,000 visitor sockets (or
//! `CS_TEST_LOAD_SOCKETS`) held by a server in a child process, a new visitor answered within
//! a second, and the server's memory per socket.

mod common;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/loadgen/driver.rs"]
mod driver;
mod server_process;

use std::time::Duration;

use common::{Server, TempDir};
use omnidesk::Config;
use omnidesk::server::limits::Limits;

/// The child's entry point: serves when started as the server, does nothing in a test run.
#[test]
fn child_server_process() {
    server_process::serve_if_child();
}

fn high_limits() -> Limits {
    Limits {
        messages_per_minute: 100_000_000,
        message_burst: 100_000_000,
        sessions_per_minute: 100_000_000,
        logins_per_minute: 100_000,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_acknowledged_and_reaches_its_agent() {
    let dir = TempDir::new();
    let mut config = Config {
        database: dir.0.join("desk.db"),
        limits: high_limits(),
        ..Config::default()
    };
    for a in &mut config.agents {
        a.chat_capacity = 100;
    }
    let server = Server::start_with(config).await;
    let mut o = driver::Options::new(server.addr);
    o.visitors = 20;
    o.messages_per_visitor = Some(20);
    o.handoff = true;
    o.agents = vec![
        ("alice".into(), "alice".into()),
        ("bob".into(), "bob".into()),
    ];
    o.drain = Duration::from_secs(20);
    o.max_time = Duration::from_secs(120);
    o.expect_assigned = Some(20);
    let r = driver::run(&o).await.expect("the run completes");
    eprintln!("{}", serde_json::to_string(&r).unwrap());
    assert_eq!(r.connected, 20);
    assert_eq!(r.sent, 400);
    assert_eq!(r.acked, 400, "every message acknowledged: {r:?}");
    assert_eq!(r.unacked, 0);
    assert_eq!(r.duplicates + r.server_duplicates + r.unknown_acks, 0);
    assert_eq!(r.errors, 0, "{:?}", r.error_codes);
    assert_eq!(
        r.assigned_conversations, 20,
        "every visitor's hand-over reached an agent"
    );
    assert_eq!(r.agent_expected, 400);
    assert_eq!(
        r.agent_delivered, 400,
        "every customer message reached its agent"
    );
    // Most arrive as live frames; those stored before the hand-over was routed (the widget is
    // acknowledged before the bot turn) are in the assigned conversation's history instead.
    assert!(r.agent_frames > 0, "{r:?}");
    assert_eq!(r.agent_duplicate_frames, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_see_refused_messages() {
    // Default limits: a burst of 10 messages per visitor, then 30 a minute.
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let mut o = driver::Options::new(server.addr);
    o.visitors = 3;
    o.messages_per_visitor = Some(15);
    o.drain = Duration::from_secs(5);
    let r = driver::run(&o).await.expect("the run completes");
    eprintln!("{}", serde_json::to_string(&r).unwrap());
    assert_eq!(r.sent, 45);
    assert!(r.acked < r.sent, "{r:?}");
    assert_eq!(
        r.error_codes
            .get("rate_limited")
            .copied()
            .unwrap_or_default(),
        r.sent - r.acked,
        "every message not acknowledged was refused with a reason: {r:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_sockets() {
    if std::env::var_os("CS_TEST_LOAD").is_none() {
        eprintln!("skipping the idle-sockets test: set CS_TEST_LOAD=1");
        return;
    }
    let n: usize = std::env::var("CS_TEST_LOAD_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = TempDir::new();
    let config = dir.0.join("omnidesk.toml");
    std::fs::write(
        &config,
        server_process::load_config(
            &dir.0.join("desk.db").display().to_string(),
            "idle sockets test secret",
            "default",
        ),
    )
    .unwrap();
    let server = server_process::ServerProcess::start(&config, "child_server_process");
    let mut o = driver::Options::new(server.addr);
    o.server_pid = Some(server.pid());
    o.progress = true;
    let r = driver::idle(&o, n).await.expect("probes answered");
    eprintln!("{}", serde_json::to_string(&r).unwrap());
    server.stop();
    assert_eq!(r.connected, n, "every idle socket opened");
    assert!(
        r.probe_reply_ms < 1000.0,
        "a new visitor is answered within a second: {r:?}"
    );
}
