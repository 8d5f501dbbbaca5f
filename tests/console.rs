//! The agent console never loses a customer message: one that falls behind the engine's event
//! stream (overflowed here on purpose, with a tiny stream and a burst that does not yield) is
//! sent the desk again from the store.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::Client;
use omnidesk::bot::{Bot, BotInput, BotReply, Handoff, HandoffReason};
use omnidesk::channels::{InboundMessage, WebChat};
use omnidesk::core::store::MemoryStore;
use omnidesk::core::{
    Agent, AgentId, Capacity, ChannelId, ChannelKind, Content, Identity, Presence, TenantId,
};
use omnidesk::server::App;
use omnidesk::server::accounts::{Account, Role};
use omnidesk::server::agent::AgentAuth;
use omnidesk::{Config, Engine};
use serde_json::Value;

#[derive(Debug)]
struct AlwaysHuman;

#[async_trait::async_trait]
impl Bot for AlwaysHuman {
    async fn reply(&self, _input: &BotInput) -> omnidesk::bot::Result<BotReply> {
        Ok(BotReply {
            handoff: Some(Handoff::new(
                HandoffReason::CustomerRequest,
                "wants a human",
            )),
            ..Default::default()
        })
    }
}

fn said(message: &Value) -> Option<String> {
    (message["author"]["role"] == "customer")
        .then(|| message["content"]["text"].as_str().map(str::to_owned))
        .flatten()
}

#[tokio::test]
async fn a_console_that_falls_behind_catches_up_with_nothing_missing() {
    let alice = Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: "Alice".into(),
        skills: vec![],
        languages: vec!["zh".into(), "en".into()],
        team: None,
        capacity: Capacity::default(),
        presence: Presence::Offline,
    };
    let webchat = Arc::new(
        WebChat::builder(ChannelId::new("webchat").unwrap())
            .with_secret(*b"console test secret, 16+ bytes!!")
            .build()
            .unwrap(),
    );
    let engine = Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(Arc::new(AlwaysHuman))
        .with_channel(webchat.clone())
        .with_agent(alice.clone())
        .with_event_capacity(16)
        .build()
        .await
        .unwrap();
    let auth = AgentAuth::in_memory().unwrap();
    let mut account = Account::new(TenantId::default(), "Alice", Role::Agent);
    account.id = alice.id;
    auth.add(&account, "pw").await.unwrap();
    let app = App::new(
        engine.clone(),
        webchat,
        auth,
        Config {
            port: 0,
            ..Config::default()
        },
    );
    let listener = app.bind().await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve_with_shutdown(listener, std::future::pending()));

    let token = common::login(addr, "alice", "pw").await;
    let ticket = common::ws_ticket(addr, &token).await;
    let mut console = Client::connect(&format!("ws://{addr}/agent/ws?ticket={ticket}")).await;
    assert_eq!(console.next().await["type"], "welcome");
    let write = |n: usize| InboundMessage {
        channel: ChannelId::new("webchat").unwrap(),
        from: Identity::new(ChannelKind::WebChat, "v-burst"),
        provider_message_id: Some(format!("m{n}")),
        content: Content::text(format!("message {n}")),
        display_name: None,
        language: None,
        sent_at: None,
    };
    engine.handle_inbound_and_wait(write(0)).await.unwrap();
    console.until(|f| f["type"] == "assigned").await;

    // 300 messages while the console's task cannot run (this runtime has one thread and the
    // loop does not yield): the stream of 16 overflows many times over.
    for n in 1..=300 {
        engine.handle_inbound_and_wait(write(n)).await.unwrap();
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut resynced = false;
    while seen.len() < 301 {
        let f = console.next().await;
        match f["type"].as_str() {
            Some("message") => seen.extend(said(&f["message"])),
            Some("welcome") => {
                resynced = true;
                for c in f["conversations"].as_array().unwrap() {
                    for m in c["customer"]["history"].as_array().unwrap() {
                        seen.extend(said(m));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(resynced, "the console was sent the desk again");
    for n in 0..=300 {
        assert!(
            seen.contains(&format!("message {n}")),
            "message {n} missing"
        );
    }
}
