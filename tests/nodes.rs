//! Several engines, one desk, in one process: a shared store and the in-process bus, leases and
//! presence ([`cs_core::bus`]). What crosses nodes (events, routing commands, the router lease,
//! presence) is checked here without servers; `tests/nodes_process.rs` runs the same over
//! PostgreSQL and NATS JetStream with the service as separate processes.

use std::sync::Arc;
use std::time::Duration;

use cs_bot::FaqBot;
use cs_channels::{
    Capabilities, Channel, ChannelInfo, InboundMessage, OutboundMessage, Parsed, RawInbound,
    SendReceipt,
};
use cs_core::bus::{InProcessBus, InProcessLeases, InProcessPresence};
use cs_core::store::{ConversationQuery, MemoryStore};
use cs_core::{
    Agent, AgentId, Capacity, ChannelId, ChannelKind, Content, ConversationState, DeliveryStatus,
    DomainEvent, Event, Identity, Presence, Skill, TenantId,
};
use omnidesk::Engine;
use omnidesk::engine::{Cluster, DeskSettings, Reception};
use tokio::sync::broadcast;

const FAQ: &str = "Q: when will my order ship\nA[en]: Within 48 hours.\n";

#[derive(Debug)]
struct Chat {
    info: ChannelInfo,
}

#[async_trait::async_trait]
impl Channel for Chat {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, _request: RawInbound) -> cs_channels::Result<Parsed> {
        Err(cs_channels::Error::invalid("not used"))
    }

    async fn send(&self, _message: &OutboundMessage) -> cs_channels::Result<SendReceipt> {
        Ok(SendReceipt {
            provider_message_id: None,
            status: DeliveryStatus::Sent,
        })
    }
}

/// What the nodes share.
#[derive(Clone)]
struct Desk {
    store: Arc<MemoryStore>,
    bus: Arc<InProcessBus>,
    leases: Arc<InProcessLeases>,
    presence: Arc<InProcessPresence>,
    agents: Vec<Agent>,
    /// Every new conversation goes to the router, which gives it to the bot first.
    bot_first: bool,
    /// Each node runs its own intent bot (dialogue state in its memory) instead of the FAQ bot.
    intent_bot: bool,
}

impl Desk {
    fn new(agents: usize, capacity: u16) -> Self {
        let agents = (0..agents)
            .map(|i| Agent {
                id: AgentId::new(),
                tenant: TenantId::default(),
                name: format!("Agent {i:02}"),
                skills: vec![Skill::new("general", 5)],
                languages: vec!["en".into(), "zh".into()],
                team: None,
                capacity: Capacity {
                    chat: capacity,
                    ..Capacity::default()
                },
                presence: Presence::Offline,
            })
            .collect();
        Self {
            store: Arc::new(MemoryStore::new()),
            bus: Arc::new(InProcessBus::new()),
            leases: Arc::new(InProcessLeases::new(Duration::from_millis(600))),
            presence: Arc::new(InProcessPresence::new(Duration::from_millis(600))),
            agents,
            bot_first: false,
            intent_bot: false,
        }
    }

    async fn node(&self, name: &str) -> Engine {
        let bot_first = self.bot_first;
        let cluster = Cluster {
            node: name.into(),
            bus: self.bus.clone(),
            commands: self.bus.clone(),
            leases: self.leases.clone(),
            presence: self.presence.clone(),
            router: Arc::new(move || {
                let policy = if bot_first {
                    cs_routing::RoutingPolicyBuilder::new()
                        .with_bot_first(cs_routing::BotFirst::Always)
                        .build()
                        .unwrap()
                } else {
                    cs_routing::RoutingPolicy::default()
                };
                Arc::new(cs_routing::Shared::new(cs_routing::SkillRouter::new(
                    policy,
                ))) as Arc<dyn cs_routing::Router>
            }),
        };
        let mut b = Engine::builder()
            .with_store(self.store.clone())
            .with_bot(if self.intent_bot {
                let shop = Arc::new(cs_bot::DemoShop::sample(chrono::Utc::now()));
                Arc::new(
                    cs_bot::IntentBot::builder()
                        .with_faq_text(include_str!("../cs-bot/data/ecommerce_faq.txt"))
                        .unwrap()
                        .with_orders(shop.clone())
                        .with_tickets(shop)
                        .build()
                        .unwrap(),
                ) as Arc<dyn cs_bot::Bot>
            } else {
                Arc::new(FaqBot::from_text(FAQ).unwrap())
            })
            .with_channel(Arc::new(Chat {
                info: ChannelInfo {
                    id: ChannelId::new("chat").unwrap(),
                    kind: ChannelKind::WebChat,
                    capabilities: Capabilities::text_only(),
                },
            }))
            .with_hot_cache(false)
            .with_node_id(name)
            .with_cluster(cluster);
        if self.bot_first {
            b = b.with_settings(DeskSettings {
                reception: Reception::Router,
                ..DeskSettings::default()
            });
        }
        for a in &self.agents {
            b = b.with_agent(a.clone());
        }
        b.build().await.unwrap()
    }

    async fn assigned(&self) -> Vec<(cs_core::ConversationId, AgentId)> {
        use cs_core::store::ConversationLog;
        self.store
            .conversations(&ConversationQuery {
                tenant: TenantId::default(),
                states: vec![ConversationState::Assigned],
                assignee: None,
                customer: None,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.assignee.unwrap()))
            .collect()
    }
}

fn customer_says(from: &str, pid: &str, text: &str) -> InboundMessage {
    InboundMessage {
        channel: ChannelId::new("chat").unwrap(),
        from: Identity::new(ChannelKind::WebChat, from),
        provider_message_id: Some(pid.into()),
        content: Content::text(text),
        display_name: None,
        language: None,
        sent_at: None,
    }
}

/// Waits (at most 10 s) for an event `pick` accepts.
async fn wait_for<T>(
    rx: &mut broadcast::Receiver<Event>,
    pick: impl Fn(&DomainEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e.kind) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("the event within 10 s")
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_on_one_node_and_the_agent_on_another_and_a_takeover() {
    let desk = Desk::new(1, 3);
    let agent = desk.agents[0].id;
    let a = desk.node("node-a").await;
    until("node a routes", async || a.routes_here()).await;
    let b = desk.node("node-b").await;
    assert!(!b.routes_here());
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();

    // The agent signs in on B: A's router learns it through a command.
    b.sign_in(agent).await.unwrap();
    wait_for(&mut on_a, |e| {
        matches!(e, DomainEvent::AgentPresenceChanged { agent: x, .. } if *x == agent).then_some(())
    })
    .await;

    // The customer writes on A and asks for a human: A's router assigns; B's subscribers see it.
    a.handle_inbound_and_wait(customer_says("v1", "m1", "I want a human please"))
        .await
        .unwrap();
    let conversation = wait_for(&mut on_b, |e| match e {
        DomainEvent::AgentAssigned {
            conversation,
            agent: x,
        } if *x == agent => Some(*conversation),
        _ => None,
    })
    .await;
    // The agent answers on B; A's subscribers see the reply.
    let reply = b
        .agent_reply(agent, conversation, Content::text("Hello from B"), None)
        .await
        .unwrap();
    let seen = wait_for(&mut on_a, |e| match e {
        DomainEvent::MessageSent { message } if message.id == reply.id => Some(message.id),
        _ => None,
    })
    .await;
    assert_eq!(seen, reply.id);

    // A stops without a word (its lease is not released): B takes the router over after the
    // lease's TTL, rebuilt from the store: the agent still holds one conversation of three.
    drop(on_a);
    drop(a);
    until("node b takes the router", async || b.routes_here()).await;
    for i in 0..4 {
        b.handle_inbound_and_wait(customer_says(
            &format!("w{i}"),
            &format!("n{i}"),
            "I want a human please",
        ))
        .await
        .unwrap();
    }
    until("two more assigned", async || {
        desk.assigned().await.len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = desk.assigned().await;
    assert_eq!(
        held.len(),
        3,
        "capacity 3, counted across the takeover: {held:?}"
    );
    assert!(held.iter().all(|(_, x)| *x == agent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_across_nodes_never_exceed_capacity() {
    let desk = Desk::new(4, 3);
    let a = desk.node("node-a").await;
    until("node a routes", async || a.routes_here()).await;
    let b = desk.node("node-b").await;
    for (i, agent) in desk.agents.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        node.sign_in(agent.id).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            node.handle_inbound_and_wait(customer_says(
                &format!("c{i}"),
                &format!("p{i}"),
                "I want a human please",
            ))
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    until("twelve assigned", async || {
        desk.assigned().await.len() == 12
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = desk.assigned().await;
    assert_eq!(held.len(), 12, "4 agents x 3");
    for agent in &desk.agents {
        assert_eq!(held.iter().filter(|(_, x)| *x == agent.id).count(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_route_gets_the_owners_answers_and_queue() {
    let desk = Desk::new(1, 3);
    let agent = desk.agents[0].id;
    let a = desk.node("node-a").await;
    until("node a routes", async || a.routes_here()).await;
    let b = desk.node("node-b").await;
    assert!(!b.routes_here());
    let mut on_b = b.subscribe();

    // The agent is signed out: a customer on B waits, and B tells them their place.
    b.handle_inbound_and_wait(customer_says("v1", "m1", "I want a human please"))
        .await
        .unwrap();
    let notice = wait_for(&mut on_b, |e| match e {
        DomainEvent::MessageSent { message }
            if message.content.plain_text().contains("ahead of you") =>
        {
            Some(message.content.plain_text())
        }
        _ => None,
    })
    .await;
    assert!(notice.contains("0 ahead of you"), "{notice}");

    // B shows the owner's queue.
    let queue = b.queue().await.unwrap();
    assert_eq!(queue.queued.len(), 1, "{queue:?}");
    assert_eq!(queue.queued[0].position, 0);
    let waiting = queue.queued[0].task.id;
    assert_eq!(a.queue().await.unwrap().queued[0].task.id, waiting);

    // Calls the owner refuses fail on B with the router's own error.
    let refused = b.accept_offer(agent, waiting).await.unwrap_err();
    assert!(
        matches!(
            refused,
            omnidesk::Error::Router(cs_routing::Error::Conflict { .. })
        ),
        "accepting what was never offered: {refused:?}"
    );
    let refused = b.reject_offer(agent, waiting).await.unwrap_err();
    assert!(
        matches!(
            refused,
            omnidesk::Error::Router(cs_routing::Error::Conflict { .. })
        ),
        "rejecting what was never offered: {refused:?}"
    );
    let refused = b.take_from_queue(agent, waiting).await.unwrap_err();
    assert!(
        matches!(
            refused,
            omnidesk::Error::Router(cs_routing::Error::Conflict { .. })
        ),
        "a signed-out agent picks: {refused:?}"
    );
    let refused = b
        .take_from_queue(agent, cs_core::ConversationId::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            omnidesk::Error::Router(cs_routing::Error::NotFound { .. })
        ),
        "picking what does not wait: {refused:?}"
    );

    // Signed in on B, the agent gets it from the owner's router.
    b.sign_in(agent).await.unwrap();
    until("assigned to the agent", async || {
        desk.assigned().await == vec![(waiting, agent)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_first_reception_on_a_node_that_does_not_route() {
    let mut desk = Desk::new(1, 3);
    desk.bot_first = true;
    let a = desk.node("node-a").await;
    until("node a routes", async || a.routes_here()).await;
    let b = desk.node("node-b").await;
    assert!(!b.routes_here());
    let mut on_b = b.subscribe();
    for (node, from) in [(&a, "v1"), (&b, "v2")] {
        node.handle_inbound_and_wait(customer_says(from, from, "when will my order ship"))
            .await
            .unwrap();
        let answer = wait_for(&mut on_b, |e| match e {
            DomainEvent::MessageSent { message }
                if message.content.plain_text() == "Within 48 hours." =>
            {
                Some(message.conversation)
            }
            _ => None,
        })
        .await;
        let state = b.conversation(answer).await.unwrap().state;
        assert_eq!(state, ConversationState::Bot, "{from}");
    }
    assert!(b.queue().await.unwrap().queued.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_dialogue_goes_on_when_the_next_message_lands_on_another_node() {
    let mut desk = Desk::new(1, 3);
    desk.intent_bot = true;
    let a = desk.node("node-a").await;
    until("node a routes", async || a.routes_here()).await;
    let b = desk.node("node-b").await;
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();

    // On A the bot asks which topic the customer means...
    a.handle_inbound_and_wait(customer_says("v1", "m1", "this thing doesn't work"))
        .await
        .unwrap();
    let conversation = wait_for(&mut on_a, |e| match e {
        DomainEvent::MessageSent { message } if message.content.plain_text().contains("1. ") => {
            Some(message.conversation)
        }
        _ => None,
    })
    .await;
    // ...and the customer's answer, landing on B, picks the first topic there.
    b.handle_inbound_and_wait(customer_says("v1", "m2", "1"))
        .await
        .unwrap();
    wait_for(&mut on_b, |e| {
        matches!(e, DomainEvent::BotAnswered { conversation: c, .. } if *c == conversation)
            .then_some(())
    })
    .await;
    let state = b.conversation(conversation).await.unwrap().state;
    assert_eq!(state, ConversationState::Bot, "answered, not handed over");
}
