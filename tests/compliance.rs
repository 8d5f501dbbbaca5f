//! Compliance on the desk: forbidden phrases in agent replies refused or held for confirmation
//! (through evasions), bot answers kept back and handed over, every hit audited; personal data
//! masked in the service's log.

mod common;
mod server_process;

use std::sync::{Arc, Mutex};

use cs_bot::{Bot, BotInput, BotReply};
use cs_channels::{
    Capabilities, Channel, ChannelInfo, InboundMessage, OutboundMessage, Parsed, RawInbound,
    SendReceipt,
};
use cs_core::store::MemoryStore;
use cs_core::{
    Agent, AgentId, Capacity, ChannelId, ChannelKind, ComplianceOutcome, Content, DeliveryStatus,
    DomainEvent, Identity, Presence, Skill, TenantId,
};
use omnidesk::compliance::{PhraseRules, Preset, TenantRules};
use omnidesk::{Engine, Error};
use serde_json::json;

use common::{Server, TempDir, agent, customer, is_message_from};
use server_process::ServerProcess;

#[test]
fn child_server_process() {
    server_process::serve_if_child();
}

/// Records what it is asked to send.
#[derive(Debug)]
struct Recorder {
    info: ChannelInfo,
    sent: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Channel for Recorder {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }
    async fn parse_inbound(&self, _request: RawInbound) -> cs_channels::Result<Parsed> {
        unreachable!("not used")
    }
    async fn send(&self, message: &OutboundMessage) -> cs_channels::Result<SendReceipt> {
        self.sent
            .lock()
            .unwrap()
            .push(message.message.content.plain_text());
        Ok(SendReceipt {
            provider_message_id: None,
            status: DeliveryStatus::Sent,
        })
    }
}

/// Says back what the customer wrote, and hands over on "human".
#[derive(Debug)]
struct Parrot;

#[async_trait::async_trait]
impl Bot for Parrot {
    async fn reply(&self, input: &BotInput) -> cs_bot::Result<BotReply> {
        let handoff = (input.text == "human")
            .then(|| cs_bot::Handoff::new(cs_bot::HandoffReason::CustomerRequest, "asked"));
        Ok(BotReply {
            messages: vec![format!("您说：{}", input.text)],
            handoff,
            ..Default::default()
        })
    }
}

struct Desk {
    engine: Engine,
    chat: Arc<Recorder>,
    alice: AgentId,
}

async fn desk() -> Desk {
    let chat = Arc::new(Recorder {
        info: ChannelInfo {
            id: ChannelId::new("webchat").unwrap(),
            kind: ChannelKind::WebChat,
            capabilities: Capabilities::text_only(),
        },
        sent: Mutex::new(Vec::new()),
    });
    let alice = Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: "Alice".into(),
        skills: vec![Skill::new("general", 5)],
        languages: vec!["zh".into(), "en".into()],
        team: None,
        capacity: Capacity {
            chat: 3,
            ..Capacity::default()
        },
        presence: Presence::Offline,
    };
    let engine = Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(Arc::new(Parrot))
        .with_channel(chat.clone())
        .with_agent(alice.clone())
        .with_compliance(TenantRules::new(PhraseRules::from_presets([
            Preset::Finance,
            Preset::Advertising,
        ])))
        .build()
        .await
        .unwrap();
    engine.sign_in(alice.id).await.unwrap();
    Desk {
        engine,
        chat,
        alice: alice.id,
    }
}

async fn writes(desk: &Desk, text: &str) -> cs_core::ConversationId {
    desk.engine
        .handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, "v1"),
            provider_message_id: Some(format!("v1:{text}")),
            content: Content::text(text),
            display_name: None,
            language: None,
            sent_at: None,
        })
        .await
        .unwrap()
        .message
        .conversation
}

fn hits(events: &mut tokio::sync::broadcast::Receiver<cs_core::Event>) -> Vec<DomainEvent> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        if matches!(e.kind, DomainEvent::ComplianceHit { .. }) {
            out.push(e.kind);
        }
    }
    out
}

#[tokio::test]
async fn an_agent_cannot_send_a_forbidden_phrase_however_it_is_spelt() {
    let desk = desk().await;
    let c = writes(&desk, "human").await;
    let mut events = desk.engine.subscribe();
    for text in [
        "这款理财保本",
        "这款理财保 本",
        "这款理财保，本！",
        "ＲＩＳＫ－ＦＲＥＥ",
    ] {
        let sent = desk.chat.sent.lock().unwrap().len();
        let err = desk
            .engine
            .agent_reply_confirmed(desk.alice, c, Content::text(text), None)
            .await
            .unwrap_err();
        let Error::Compliance { verdict } = &err else {
            panic!("{text}: {err:?}")
        };
        assert!(verdict.is_blocked(), "{text}");
        assert_eq!(
            desk.chat.sent.lock().unwrap().len(),
            sent,
            "{text} went out"
        );
    }
    let audited = hits(&mut events);
    assert_eq!(audited.len(), 4, "{audited:?}");
    assert!(audited.iter().all(|e| matches!(e,
        DomainEvent::ComplianceHit { conversation, author: cs_core::Author::Agent { agent }, outcome: ComplianceOutcome::Blocked, phrases, .. }
            if *conversation == c && *agent == desk.alice && !phrases.is_empty())));
    // Nothing of it is in the history either.
    let customer = desk.engine.conversation(c).await.unwrap().customer;
    let history = desk.engine.customer_view(customer).await.unwrap().history;
    assert!(
        history
            .iter()
            .all(|m| !m.content.plain_text().contains("理财")),
        "a refused reply was stored"
    );
}

#[tokio::test]
async fn a_warning_holds_the_reply_until_the_agent_confirms() {
    let desk = desk().await;
    let c = writes(&desk, "human").await;
    let mut events = desk.engine.subscribe();
    let err = desk
        .engine
        .agent_reply(desk.alice, c, Content::text("顶级面料，放心"), None)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Compliance { verdict } if !verdict.is_blocked()));
    assert!(
        !desk
            .chat
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.contains("面料"))
    );
    desk.engine
        .agent_reply_confirmed(desk.alice, c, Content::text("顶级面料，放心"), None)
        .await
        .unwrap();
    assert!(
        desk.chat
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.contains("顶级面料"))
    );
    let outcomes: Vec<ComplianceOutcome> = hits(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            DomainEvent::ComplianceHit { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ComplianceOutcome::Warned,
            ComplianceOutcome::SentAfterWarning
        ]
    );
    // Clean text goes out at once.
    desk.engine
        .agent_reply(desk.alice, c, Content::text("您的订单已发货"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bot_answer_with_a_forbidden_phrase_is_kept_back_and_a_human_takes_over() {
    let desk = desk().await;
    let mut events = desk.engine.subscribe();
    let c = writes(&desk, "你们的理财是不是稳赚不赔").await;
    assert!(
        desk.chat
            .sent
            .lock()
            .unwrap()
            .iter()
            .all(|t| !t.contains("稳赚")),
        "the bot's answer went out"
    );
    let conversation = desk.engine.conversation(c).await.unwrap();
    assert_eq!(
        conversation.assignee,
        Some(desk.alice),
        "the conversation went to a human"
    );
    let audited = hits(&mut events);
    assert!(
        audited.iter().any(|e| matches!(e,
            DomainEvent::ComplianceHit { author: cs_core::Author::Bot, outcome: ComplianceOutcome::Blocked, phrases, .. }
                if phrases.iter().any(|p| p == "稳赚不赔"))),
        "{audited:?}"
    );
    // A clean answer is untouched.
    writes(&desk, "你好").await;
}

#[tokio::test]
async fn the_console_shows_what_was_refused_and_sends_a_confirmed_warning() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let (mut alice, _) = agent(&server, "alice", "alice").await;
    let (_, mut shopper, _) = customer(&server, None).await;
    shopper
        .send_json(json!({"type": "message", "client_id": "c1", "text": "转人工"}))
        .await;
    let assigned = alice.until(|f| f["type"] == "assigned").await;
    let id = assigned["conversation"]["conversation"]["id"].clone();
    // The demo's advertising preset: "全网最低" is blocked, "顶级" warned.
    alice
        .send_json(json!({"type": "reply", "conversation_id": id, "client_id": "r1", "text": "本店全 网 最 低价"}))
        .await;
    let refused = alice.until(|f| f["type"] == "error").await;
    assert_eq!(refused["code"], "compliance", "{refused}");
    assert_eq!(refused["client_id"], "r1");
    assert_eq!(refused["compliance"]["hits"][0]["phrase"], "全网最低");
    assert_eq!(refused["compliance"]["hits"][0]["found"], "全 网 最 低");
    assert_eq!(refused["compliance"]["hits"][0]["action"], "block");
    alice
        .send_json(
            json!({"type": "reply", "conversation_id": id, "client_id": "r2", "text": "顶级面料"}),
        )
        .await;
    let warned = alice.until(|f| f["type"] == "error").await;
    assert_eq!(
        warned["compliance"]["hits"][0]["action"], "warn",
        "{warned}"
    );
    alice
        .send_json(json!({"type": "reply", "conversation_id": id, "client_id": "r3", "text": "顶级面料", "confirm": true}))
        .await;
    let ack = alice.until(|f| f["type"] == "ack").await;
    assert_eq!(ack["client_id"], "r3");
    let got = shopper.until(is_message_from("agent")).await;
    assert_eq!(got["message"]["content"]["text"], "顶级面料");
    // A confirmation never lets a blocked phrase through.
    alice
        .send_json(json!({"type": "reply", "conversation_id": id, "client_id": "r4", "text": "全网最低", "confirm": true}))
        .await;
    let refused = alice.until(|f| f["type"] == "error").await;
    assert_eq!(refused["client_id"], "r4");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_never_reaches_the_log() {
    let dir = TempDir::new();
    let config = dir.0.join("omnidesk.toml");
    std::fs::write(
        &config,
        server_process::load_config(
            &dir.0.join("desk.db").display().to_string(),
            "log test secret, sixteen+",
            "default",
        ),
    )
    .unwrap();
    // Debug logging prints every event, messages included: the worst case for a leak.
    let server = ServerProcess::start_with_env(
        &config,
        "child_server_process",
        &[("RUST_LOG", "info,omnidesk=debug")],
    );
    let (status, session) = common::post_json(server.addr, "/chat/session", &json!({})).await;
    assert_eq!(status, 200);
    let token = session["token"].as_str().unwrap();
    let mut shopper =
        common::Client::connect(&format!("ws://{}/chat/ws?token={token}", server.addr)).await;
    shopper.next().await;
    let text = "我的手机13812345678，身份证11010519491231002X，卡号4111 1111 1111 1111";
    shopper
        .send_json(json!({"type": "message", "client_id": "pii", "text": text}))
        .await;
    shopper.until(|f| f["type"] == "ack").await;
    // Let the log lines of the bot's turn come out.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = server.log().join("\n");
    assert!(
        log.contains("138****5678"),
        "the message should be logged, masked:\n{log}"
    );
    for raw in ["13812345678", "11010519491231002X", "4111 1111 1111 1111"] {
        assert!(!log.contains(raw), "{raw} reached the log");
    }
    server.stop();
}
