//! The desk runtime: every routing decision has an effect (offers accepted, rejected, timed
//! out; agents set away; bot-first reception; the standby pool; sticky agents), customers are
//! told where they stand, and nothing is stranded. Driven by the manual clock, over the
//! in-memory store, the real skill router and recording channels.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, TimeZone, Utc};
use cs_bot::{Bot, BotInput, BotReply, Handoff, HandoffReason};
use cs_channels::{
    Capabilities, Channel, ChannelInfo, InboundMessage, OutboundMessage, Parsed, RawInbound,
    SendReceipt,
};
use cs_core::store::MemoryStore;
use cs_core::{
    Agent, AgentId, Capacity, ChannelId, ChannelKind, Clock as _, Content, ConversationId,
    ConversationState, DeliveryStatus, DomainEvent, Event, Identity, ManualClock, Presence,
    Priority, Skill, TenantId,
};
use cs_routing::{BotFirst, RoutingPolicyBuilder, Shared, SkillRouter, StandbyPool};
use omnidesk::engine::{BusinessHours, DeskSettings, Reception};
use omnidesk::{Engine, EngineBuilder};
use tokio::sync::broadcast;

/// A channel that records what it is asked to send.
#[derive(Debug)]
struct Recorder {
    info: ChannelInfo,
    sent: Mutex<Vec<OutboundMessage>>,
}

impl Recorder {
    fn new(id: &str, kind: ChannelKind) -> Arc<Self> {
        Arc::new(Self {
            info: ChannelInfo {
                id: ChannelId::new(id).unwrap(),
                kind,
                capabilities: Capabilities::text_only(),
            },
            sent: Mutex::new(Vec::new()),
        })
    }

    fn texts(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.message.content.plain_text())
            .collect()
    }
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
        self.sent.lock().unwrap().push(message.clone());
        Ok(SendReceipt {
            provider_message_id: None,
            status: DeliveryStatus::Sent,
        })
    }
}

/// A bot that hands every message over to `skill` (and counts its turns).
#[derive(Debug, Default)]
struct HandsOver {
    skill: String,
    turns: Mutex<usize>,
}

#[async_trait::async_trait]
impl Bot for HandsOver {
    async fn reply(&self, input: &BotInput) -> cs_bot::Result<BotReply> {
        *self.turns.lock().unwrap() += 1;
        let mut handoff = Handoff::new(
            HandoffReason::CustomerRequest,
            format!("Customer wrote: {}", input.text),
        );
        handoff.skills = vec![self.skill.clone()];
        Ok(BotReply {
            messages: vec!["好的，马上为您转接。".into()],
            handoff: Some(handoff),
            ..Default::default()
        })
    }
}

fn agent(name: &str, skills: &[(&str, u8)], team: Option<&str>) -> Agent {
    Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: name.into(),
        skills: skills.iter().map(|(s, l)| Skill::new(*s, *l)).collect(),
        languages: vec!["zh".into(), "en".into()],
        team: team.map(str::to_owned),
        capacity: Capacity {
            chat: 2,
            ..Capacity::default()
        },
        presence: Presence::Offline,
    }
}

fn clock() -> Arc<ManualClock> {
    // A Wednesday, 10:00 in Shanghai.
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 11, 2, 0, 0).unwrap(),
    ))
}

struct Desk {
    engine: Engine,
    chat: Arc<Recorder>,
    bot: Arc<HandsOver>,
    clock: Arc<ManualClock>,
    events: broadcast::Receiver<Event>,
}

impl Desk {
    async fn new(
        policy: cs_routing::RoutingPolicy,
        agents: &[Agent],
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        let clock = clock();
        let chat = Recorder::new("webchat", ChannelKind::WebChat);
        let bot = Arc::new(HandsOver {
            skill: "after-sales".into(),
            ..Default::default()
        });
        let mut builder = Engine::builder()
            .with_store(Arc::new(MemoryStore::new()))
            .with_bot(bot.clone())
            .with_channel(chat.clone())
            .with_clock(clock.clone())
            .with_router(Arc::new(Shared::new(SkillRouter::new(policy))));
        for a in agents {
            builder = builder.with_agent(a.clone());
        }
        let engine = configure(builder).build().await.unwrap();
        let events = engine.subscribe();
        Self {
            engine,
            chat,
            bot,
            clock,
            events,
        }
    }

    /// A customer writes; returns their conversation.
    async fn customer_writes(&self, visitor: &str, text: &str) -> ConversationId {
        let d = self
            .engine
            .handle_inbound_and_wait(InboundMessage {
                channel: ChannelId::new("webchat").unwrap(),
                from: Identity::new(ChannelKind::WebChat, visitor),
                provider_message_id: Some(format!("{visitor}:{text}")),
                content: Content::text(text),
                display_name: None,
                language: None,
                sent_at: None,
            })
            .await
            .unwrap();
        d.message.conversation
    }

    async fn state(&self, c: ConversationId) -> (ConversationState, Option<AgentId>) {
        let c = self.engine.conversation(c).await.unwrap();
        (c.state, c.assignee)
    }

    /// Advances the clock and lets time act.
    async fn pass(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
        self.engine.tick().await.unwrap();
    }

    fn drain(&mut self) -> Vec<DomainEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e.kind);
        }
        out
    }
}

fn offers() -> cs_routing::RoutingPolicy {
    RoutingPolicyBuilder::new()
        .with_reservations(StdDuration::from_secs(20), 2)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_accepted_offer_assigns_and_the_customer_is_told_who_joined() {
    let alice = agent("Alice", &[("after-sales", 7)], None);
    let mut desk = Desk::new(offers(), std::slice::from_ref(&alice), |b| b).await;
    desk.engine.sign_in(alice.id).await.unwrap();
    let c = desk.customer_writes("v1", "我要退货").await;
    let events = desk.drain();
    assert!(
        events.iter().any(|e| matches!(e,
            DomainEvent::Offered { conversation, agent, expires_at }
                if *conversation == c && *agent == alice.id
                    && *expires_at == desk.clock.now() + Duration::seconds(20))),
        "{events:?}"
    );
    assert_eq!(desk.engine.offers_for(alice.id).len(), 1);
    assert_eq!(
        desk.state(c).await.0,
        ConversationState::Queued,
        "an offer is not an assignment"
    );

    desk.engine.accept_offer(alice.id, c).await.unwrap();
    assert_eq!(
        desk.state(c).await,
        (ConversationState::Assigned, Some(alice.id))
    );
    assert!(desk.engine.offers_for(alice.id).is_empty());
    assert!(
        desk.chat
            .texts()
            .iter()
            .any(|t| t == "Alice 已接入，为您服务。")
    );
    // Accepting twice is refused, not applied twice.
    assert!(desk.engine.accept_offer(alice.id, c).await.is_err());
    let joined = desk
        .chat
        .texts()
        .iter()
        .filter(|t| t.contains("已接入"))
        .count();
    assert_eq!(joined, 1);
}

#[tokio::test]
async fn a_rejected_offer_goes_to_the_next_agent_and_never_back() {
    let alice = agent("Alice", &[("after-sales", 9)], None);
    let bob = agent("Bob", &[("after-sales", 5)], None);
    let mut desk = Desk::new(offers(), &[alice.clone(), bob.clone()], |b| b).await;
    desk.engine.sign_in(alice.id).await.unwrap();
    let c = desk.customer_writes("v1", "我要退货").await;
    assert_eq!(desk.engine.offers_for(alice.id).len(), 1);
    desk.engine.sign_in(bob.id).await.unwrap();
    desk.drain();

    desk.engine.reject_offer(alice.id, c).await.unwrap();
    let events = desk.drain();
    assert!(events.iter().any(|e| matches!(e,
        DomainEvent::OfferClosed { agent, outcome, .. } if *agent == alice.id && outcome == "rejected")));
    assert!(
        events.iter().any(|e| matches!(e,
        DomainEvent::Offered { agent, .. } if *agent == bob.id)),
        "{events:?}"
    );
    desk.engine.accept_offer(bob.id, c).await.unwrap();
    assert_eq!(
        desk.state(c).await,
        (ConversationState::Assigned, Some(bob.id))
    );
}

#[tokio::test]
async fn lapsed_offers_move_on_and_an_agent_who_misses_two_is_set_away() {
    let alice = agent("Alice", &[("after-sales", 9)], None);
    let bob = agent("Bob", &[("after-sales", 5)], None);
    let mut desk = Desk::new(offers(), &[alice.clone(), bob.clone()], |b| b).await;
    desk.engine.sign_in(alice.id).await.unwrap();
    let first = desk.customer_writes("v1", "我要退货").await;
    let second = desk.customer_writes("v2", "退款什么时候到").await;
    assert_eq!(desk.engine.offers_for(alice.id).len(), 2);
    desk.drain();

    // Twenty seconds pass without an answer: both offers lapse, Alice is away.
    desk.pass(21).await;
    let events = desk.drain();
    let expired = events
        .iter()
        .filter(|e| matches!(e, DomainEvent::OfferClosed { outcome, .. } if outcome == "expired"))
        .count();
    assert_eq!(expired, 2, "{events:?}");
    assert!(events.iter().any(|e| matches!(e,
        DomainEvent::AgentPresenceChanged { agent, presence: Presence::Away } if *agent == alice.id)));
    assert_eq!(
        desk.engine.agent(alice.id).unwrap().presence,
        Presence::Away
    );
    assert!(desk.engine.offers_for(alice.id).is_empty());

    // Bob signs in and is offered both; Alice gets nothing while away.
    desk.engine.sign_in(bob.id).await.unwrap();
    assert_eq!(desk.engine.offers_for(bob.id).len(), 2);
    for c in [first, second] {
        desk.engine.accept_offer(bob.id, c).await.unwrap();
        assert_eq!(desk.state(c).await.1, Some(bob.id));
    }
}

#[tokio::test]
async fn bot_first_reception_through_the_router() {
    // Human first while the queue is short: the bot never sees the first customer.
    let alice = agent("Alice", &[("after-sales", 5)], None);
    let desk = Desk::new(
        RoutingPolicyBuilder::new()
            .with_bot_first(BotFirst::AboveDepth(1))
            .build()
            .unwrap(),
        std::slice::from_ref(&alice),
        |b| {
            b.with_settings(DeskSettings {
                reception: Reception::Router,
                ..DeskSettings::default()
            })
        },
    )
    .await;
    let first = desk.customer_writes("v1", "hello, I have a question").await;
    assert_eq!(desk.state(first).await.0, ConversationState::Queued);
    assert_eq!(
        *desk.bot.turns.lock().unwrap(),
        0,
        "the first waits for a human"
    );
    assert!(
        desk.chat
            .texts()
            .iter()
            .any(|t| t.contains("0 ahead of you")),
        "{:?}",
        desk.chat.texts()
    );

    // The queue is deep enough now: the next customer meets the bot, which hands over, and the
    // conversation then waits behind the first.
    let second = desk.customer_writes("v2", "我要退货").await;
    assert_eq!(*desk.bot.turns.lock().unwrap(), 1);
    assert_eq!(desk.state(second).await.0, ConversationState::Queued);
    let queue = desk.engine.queue().await.unwrap();
    let order: Vec<_> = queue.queued.iter().map(|q| q.task.id).collect();
    assert_eq!(order, [first, second]);

    desk.engine.sign_in(alice.id).await.unwrap();
    assert_eq!(desk.state(first).await.1, Some(alice.id));
    assert_eq!(desk.state(second).await.1, Some(alice.id));
}

#[tokio::test]
async fn the_standby_pool_joins_only_when_the_queue_is_deep() {
    let regular = agent("Regular", &[("after-sales", 5)], Some("service"));
    let standby = agent("Standby", &[("after-sales", 5)], Some("standby"));
    let desk = Desk::new(
        RoutingPolicyBuilder::new()
            .with_standby(StandbyPool {
                team: "standby".into(),
                depth: 3,
                oldest_wait: StdDuration::from_secs(600),
            })
            .build()
            .unwrap(),
        &[regular.clone(), standby.clone()],
        |b| b,
    )
    .await;
    desk.engine.sign_in(standby.id).await.unwrap();
    let mut waiting = Vec::new();
    for v in ["v1", "v2"] {
        waiting.push(desk.customer_writes(v, "我要退货").await);
    }
    for c in &waiting {
        assert_eq!(
            desk.state(*c).await.0,
            ConversationState::Queued,
            "two waiting: standby stays out"
        );
    }
    waiting.push(desk.customer_writes("v3", "我要退货").await);
    let taken = {
        let mut n = 0;
        for c in &waiting {
            if desk.state(*c).await.1 == Some(standby.id) {
                n += 1;
            }
        }
        n
    };
    assert!(taken >= 1, "three waiting: the standby pool joins");
}

#[tokio::test]
async fn a_returning_customer_waits_for_their_agent_within_the_sticky_wait_only() {
    let alice = agent("Alice", &[("after-sales", 5)], None);
    let bob = agent("Bob", &[("after-sales", 5)], None);
    let desk = Desk::new(
        RoutingPolicyBuilder::new()
            .with_sticky_wait(StdDuration::from_secs(60))
            .build()
            .unwrap(),
        &[alice.clone(), bob.clone()],
        |b| b,
    )
    .await;
    desk.engine.sign_in(alice.id).await.unwrap();
    let first = desk.customer_writes("v1", "我要退货").await;
    assert_eq!(desk.state(first).await.1, Some(alice.id));
    desk.engine.resolve(alice.id, first).await.unwrap();

    // Alice is busy with two others when the customer comes back; Bob is free.
    let busy1 = desk.customer_writes("v2", "我要退货").await;
    let busy2 = desk.customer_writes("v3", "我要退货").await;
    assert_eq!(desk.state(busy1).await.1, Some(alice.id));
    assert_eq!(desk.state(busy2).await.1, Some(alice.id));
    desk.engine.sign_in(bob.id).await.unwrap();
    let back = desk.customer_writes("v1", "还是退货的事").await;
    assert_eq!(
        desk.state(back).await.0,
        ConversationState::Queued,
        "held for Alice"
    );

    // Within the wait Alice frees a slot and gets them back.
    desk.pass(30).await;
    desk.engine.resolve(alice.id, busy1).await.unwrap();
    assert_eq!(desk.state(back).await.1, Some(alice.id));

    // Past the wait anyone may take a returning customer.
    desk.engine.resolve(alice.id, back).await.unwrap();
    desk.engine
        .set_presence(bob.id, Presence::Away)
        .await
        .unwrap();
    let filler = desk.customer_writes("v4", "我要退货").await;
    assert_eq!(
        desk.state(filler).await.1,
        Some(alice.id),
        "Alice is full again"
    );
    desk.engine.sign_in(bob.id).await.unwrap();
    let back2 = desk.customer_writes("v1", "又来了").await;
    assert_eq!(desk.state(back2).await.0, ConversationState::Queued);
    desk.pass(61).await;
    assert_eq!(desk.state(back2).await.1, Some(bob.id));
}

#[tokio::test]
async fn after_hours_with_nobody_online_the_request_becomes_a_ticket() {
    let alice = agent("Alice", &[("after-sales", 5)], None);
    let calendar = cs_tickets::BusinessCalendarBuilder::new(chrono_tz::Asia::Shanghai)
        .with_weekday_period(
            chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            chrono::NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
        )
        .build()
        .unwrap();
    let desk = Desk::new(
        RoutingPolicyBuilder::new().build().unwrap(),
        std::slice::from_ref(&alice),
        |b| {
            b.with_settings(DeskSettings {
                hours: Some(BusinessHours {
                    calendar,
                    label: "09:00-18:00".into(),
                }),
                ..DeskSettings::default()
            })
        },
    )
    .await;
    // 10:00 local, open, nobody online: the customer waits in the queue with their place.
    let day = desk.customer_writes("v1", "我要退货").await;
    assert!(
        desk.engine
            .customer_tickets(desk.engine.conversation(day).await.unwrap().customer)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        desk.chat
            .texts()
            .iter()
            .any(|t| t.contains("您前面还有 0 位")),
        "{:?}",
        desk.chat.texts()
    );

    // 20:00 local: closed and nobody online: a ticket, and the customer learns its number.
    desk.clock.advance(Duration::hours(10));
    let night = desk.customer_writes("v2", "我要退货").await;
    let conv = desk.engine.conversation(night).await.unwrap();
    let tickets = desk.engine.customer_tickets(conv.customer).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].conversation, Some(night));
    let told = desk.chat.texts();
    let n = tickets[0].number;
    assert!(
        told.iter()
            .any(|t| t.contains(&format!("工单 #{n}")) && t.contains("09:00-18:00")),
        "{told:?}"
    );
    assert_eq!(
        conv.state,
        ConversationState::Queued,
        "it waits for the morning too"
    );
}

#[tokio::test]
async fn queue_notices_give_an_honest_wait_once_the_pace_is_known() {
    let alice = agent("Alice", &[("after-sales", 5)], None);
    let mut alice1 = alice.clone();
    alice1.capacity.chat = 1;
    let desk = Desk::new(
        RoutingPolicyBuilder::new().build().unwrap(),
        std::slice::from_ref(&alice1),
        |b| b,
    )
    .await;
    desk.engine.sign_in(alice.id).await.unwrap();
    // Alice takes and solves a conversation a minute, three times: the pace is one a minute.
    for i in 0..3 {
        let c = desk.customer_writes(&format!("p{i}"), "我要退货").await;
        assert_eq!(desk.state(c).await.1, Some(alice.id));
        desk.clock.advance(Duration::seconds(60));
        desk.engine.resolve(alice.id, c).await.unwrap();
    }
    let busy = desk.customer_writes("busy", "我要退货").await;
    assert_eq!(desk.state(busy).await.1, Some(alice.id));
    desk.customer_writes("w1", "我要退货").await;
    let told = desk.chat.texts();
    let last = told
        .iter()
        .rev()
        .find(|t| t.contains("您前面还有"))
        .unwrap();
    assert!(
        last.contains("您前面还有 0 位") && last.contains("分钟"),
        "{last}"
    );
}

#[tokio::test]
async fn an_agent_takes_a_queued_conversation_out_of_turn() {
    let alice = agent("Alice", &[("billing", 5)], None);
    let desk = Desk::new(
        RoutingPolicyBuilder::new().build().unwrap(),
        std::slice::from_ref(&alice),
        |b| b,
    )
    .await;
    desk.engine.sign_in(alice.id).await.unwrap();
    // The bot asks for after-sales, which Alice lacks: it waits...
    let c = desk.customer_writes("v1", "我要退货").await;
    assert_eq!(desk.state(c).await.0, ConversationState::Queued);
    // ...until Alice decides to take it.
    desk.engine.take_from_queue(alice.id, c).await.unwrap();
    assert_eq!(
        desk.state(c).await,
        (ConversationState::Assigned, Some(alice.id))
    );
    assert!(
        desk.engine.take_from_queue(alice.id, c).await.is_err(),
        "not queued any more"
    );
}

#[tokio::test]
async fn an_angry_customer_moves_up_while_waiting() {
    let desk = Desk::new(RoutingPolicyBuilder::new().build().unwrap(), &[], |b| b).await;
    let calm = desk.customer_writes("v1", "我想退货").await;
    let later = desk.customer_writes("v2", "我想退货").await;
    let order = |q: cs_routing::Snapshot| q.queued.iter().map(|q| q.task.id).collect::<Vec<_>>();
    assert_eq!(order(desk.engine.queue().await.unwrap()), [calm, later]);
    let queued_at = desk.clock.now();
    desk.clock.advance(Duration::seconds(30));
    desk.customer_writes("v2", "太气人了！等了这么久还没人理，垃圾服务，我要投诉！")
        .await;
    let conv = desk.engine.conversation(later).await.unwrap();
    assert!(conv.priority > Priority::Normal, "{:?}", conv.priority);
    assert_eq!(order(desk.engine.queue().await.unwrap()), [later, calm]);
    let since = desk.engine.queue().await.unwrap().queued[0]
        .task
        .enqueued_at;
    assert_eq!(since, queued_at, "the time it started waiting is kept");
}

/// The demo's default routing: a skill nobody online has reaches any agent with room once the
/// overflow rings open (20 seconds), and not before.
#[tokio::test]
async fn with_the_demo_policy_no_conversation_is_stranded() {
    let alice = agent("Alice", &[("logistics", 6)], None);
    let mut bot_skill = Desk::new(
        omnidesk::Config::default().routing,
        std::slice::from_ref(&alice),
        |b| b,
    )
    .await;
    bot_skill.engine.sign_in(alice.id).await.unwrap();
    // The bot hands over to "after-sales", which Alice lacks.
    let c = bot_skill.customer_writes("v1", "我要退货").await;
    assert_eq!(bot_skill.state(c).await.0, ConversationState::Queued);
    bot_skill.pass(10).await;
    assert_eq!(
        bot_skill.state(c).await.0,
        ConversationState::Queued,
        "levels relaxed, not skills"
    );
    bot_skill.pass(10).await;
    assert_eq!(
        bot_skill.state(c).await,
        (ConversationState::Assigned, Some(alice.id))
    );
    bot_skill.drain();
}

/// Issue 11: a restart moves nothing. Conversations agents hold stay theirs (and count against
/// their capacity), nobody is told again that an agent joined, waiting conversations keep the
/// time they started waiting; an agent who does not come back within the grace period loses
/// theirs to the queue, still with their original waiting time.
#[tokio::test]
async fn a_restart_moves_nothing_and_repeats_no_notice() {
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let chat = Recorder::new("webchat", ChannelKind::WebChat);
    let mut alice = agent("Alice", &[("after-sales", 5)], None);
    alice.capacity.chat = 1;
    let bob = agent("Bob", &[("after-sales", 5)], None);
    let build = || {
        Engine::builder()
            .with_store(store.clone())
            .with_bot(Arc::new(HandsOver {
                skill: "after-sales".into(),
                ..Default::default()
            }))
            .with_channel(chat.clone())
            .with_clock(clock.clone())
            .with_agent(alice.clone())
            .with_agent(bob.clone())
            .build()
    };
    let write = |visitor: &str, pid: &str| InboundMessage {
        channel: ChannelId::new("webchat").unwrap(),
        from: Identity::new(ChannelKind::WebChat, visitor),
        provider_message_id: Some(pid.into()),
        content: Content::text("我要退货"),
        display_name: None,
        language: None,
        sent_at: None,
    };
    let first = build().await.unwrap();
    first.sign_in(alice.id).await.unwrap();
    let held = first
        .handle_inbound_and_wait(write("v1", "a1"))
        .await
        .unwrap()
        .message
        .conversation;
    let queued_at = clock.now();
    let waiting = first
        .handle_inbound_and_wait(write("v2", "b1"))
        .await
        .unwrap()
        .message
        .conversation;
    assert_eq!(
        first.conversation(held).await.unwrap().assignee,
        Some(alice.id)
    );
    assert_eq!(
        first.conversation(waiting).await.unwrap().state,
        ConversationState::Queued
    );
    let joined = |chat: &Recorder| chat.texts().iter().filter(|t| t.contains("已接入")).count();
    assert_eq!(joined(&chat), 1);
    drop(first);

    clock.advance(Duration::seconds(60));
    let second = build().await.unwrap();
    assert_eq!(
        second.conversation(held).await.unwrap().assignee,
        Some(alice.id),
        "nothing moved"
    );
    let queue = second.queue().await.unwrap();
    assert_eq!(queue.queued.len(), 1);
    assert_eq!(queue.queued[0].task.id, waiting);
    assert_eq!(
        queue.queued[0].task.enqueued_at, queued_at,
        "the wait keeps its origin"
    );
    // Alice comes back: she still has one conversation (her capacity), so the waiting one stays
    // waiting; nobody is told again that she joined.
    second.sign_in(alice.id).await.unwrap();
    assert_eq!(
        second.conversation(waiting).await.unwrap().state,
        ConversationState::Queued
    );
    assert_eq!(joined(&chat), 1, "no notice repeats");
    second.resolve(alice.id, held).await.unwrap();
    assert_eq!(
        second.conversation(waiting).await.unwrap().assignee,
        Some(alice.id)
    );
    drop(second);

    // Another restart; this time Alice stays away past the grace period: her conversation goes
    // back to the queue with its original waiting time, and Bob takes it.
    clock.advance(Duration::seconds(60));
    let third = build().await.unwrap();
    third.sign_in(bob.id).await.unwrap();
    third.tick().await.unwrap();
    assert_eq!(
        third.conversation(waiting).await.unwrap().assignee,
        Some(alice.id),
        "within the grace"
    );
    clock.advance(Duration::minutes(5));
    third.tick().await.unwrap();
    let moved = third.conversation(waiting).await.unwrap();
    assert_eq!(moved.assignee, Some(bob.id));
    assert_eq!(moved.queued_at, Some(queued_at));
}

/// Issue 11: a provider retry that arrives after the conversation was resolved stores nothing
/// and opens nothing.
#[tokio::test]
async fn a_retry_after_resolve_is_a_no_op() {
    let alice = agent("Alice", &[("after-sales", 5)], None);
    let desk = Desk::new(
        RoutingPolicyBuilder::new().build().unwrap(),
        std::slice::from_ref(&alice),
        |b| b,
    )
    .await;
    desk.engine.sign_in(alice.id).await.unwrap();
    let c = desk.customer_writes("v1", "我要退货").await;
    desk.engine.resolve(alice.id, c).await.unwrap();
    let customer = desk.engine.conversation(c).await.unwrap().customer;
    // The same provider message again ("v1:我要退货" is its id).
    let again = desk
        .engine
        .handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, "v1"),
            provider_message_id: Some("v1:我要退货".into()),
            content: Content::text("我要退货"),
            display_name: None,
            language: None,
            sent_at: None,
        })
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.conversation, c);
    let conversations = desk
        .engine
        .store()
        .conversations(&cs_core::store::ConversationQuery {
            tenant: TenantId::default(),
            customer: Some(customer),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(conversations.len(), 1, "no empty conversation was opened");
    assert_eq!(
        *desk.bot.turns.lock().unwrap(),
        1,
        "nobody answered the retry"
    );
}
