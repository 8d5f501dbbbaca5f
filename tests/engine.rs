//! The engine on its own: in-memory store, a manual clock, and mocked channels and bots
//! (mockall), so each rule of the data path is checked in isolation.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use cs_bot::{Bot, BotInput, BotReply, FaqBot};
use cs_channels::{
    Capabilities, Channel, ChannelInfo, InboundMessage, OutboundMessage, Parsed, RawInbound,
    SendReceipt,
};
use cs_core::store::{
    ConversationLog, CustomerStore, MemoryStore, MessageQuery, MessageScope, Outbox,
};
use cs_core::{
    Agent, AgentId, Capacity, ChannelId, ChannelKind, Content, ConversationState, DeliveryStatus,
    DomainEvent, Event, Identity, LinkOrigin, ManualClock, Presence, Skill, TenantId,
};
use omnidesk::Engine;
use tokio::sync::broadcast;

mockall::mock! {
    pub Chan {}
    #[async_trait::async_trait]
    impl Channel for Chan {
        fn info(&self) -> &ChannelInfo;
        async fn parse_inbound(&self, request: RawInbound) -> cs_channels::Result<Parsed>;
        async fn send(&self, message: &OutboundMessage) -> cs_channels::Result<SendReceipt>;
    }
}

mockall::mock! {
    pub Brain {}
    #[async_trait::async_trait]
    impl Bot for Brain {
        async fn reply(&self, input: &BotInput) -> cs_bot::Result<BotReply>;
    }
}

impl std::fmt::Debug for MockChan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockChan")
    }
}

impl std::fmt::Debug for MockBrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockBrain")
    }
}

const FAQ: &str =
    "Q: 多久发货\nQ: when will my order ship\nA[zh]: 48小时内发货。\nA[en]: Within 48 hours.\n";

/// An engine builder with `store` and the FAQ bot.
fn faq_desk(store: Arc<MemoryStore>) -> omnidesk::EngineBuilder {
    Engine::builder()
        .with_store(store)
        .with_bot(Arc::new(FaqBot::from_text(FAQ).unwrap()))
}

fn info(id: &str, kind: ChannelKind) -> ChannelInfo {
    ChannelInfo {
        id: ChannelId::new(id).unwrap(),
        kind,
        capabilities: Capabilities::text_only(),
    }
}

/// A channel that accepts every send and records it.
fn recording_channel(
    id: &str,
    kind: ChannelKind,
) -> (MockChan, Arc<std::sync::Mutex<Vec<OutboundMessage>>>) {
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut c = MockChan::new();
    c.expect_info().return_const(info(id, kind));
    let log = sent.clone();
    c.expect_send().returning(move |m| {
        log.lock().unwrap().push(m.clone());
        Ok(SendReceipt {
            provider_message_id: Some(format!("p-{}", m.message.id)),
            status: DeliveryStatus::Sent,
        })
    });
    (c, sent)
}

fn inbound(channel: &str, kind: ChannelKind, from: &str, pid: &str, text: &str) -> InboundMessage {
    InboundMessage {
        channel: ChannelId::new(channel).unwrap(),
        from: Identity::new(kind, from),
        provider_message_id: Some(pid.into()),
        content: Content::text(text),
        display_name: None,
        language: None,
        sent_at: None,
    }
}

fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<DomainEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e.kind);
    }
    out
}

fn agent(name: &str) -> Agent {
    Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: name.into(),
        skills: vec![Skill::new("after-sales", 7)],
        languages: vec!["zh".into()],
        team: None,
        capacity: Capacity::default(),
        presence: Presence::Offline,
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap(),
    ))
}

#[tokio::test]
async fn a_message_goes_through_identity_store_bot_and_out_with_events() {
    let (chan, sent) = recording_channel("wechat-main", ChannelKind::WeChat);
    let store = Arc::new(MemoryStore::new());
    let engine = faq_desk(store.clone())
        .with_channel(Arc::new(chan))
        .with_clock(clock())
        .build()
        .await
        .unwrap();
    let mut events = engine.subscribe();

    let d = engine
        .handle_inbound_and_wait(inbound(
            "wechat-main",
            ChannelKind::WeChat,
            "openid-1",
            "m1",
            "多久发货？",
        ))
        .await
        .unwrap();
    assert!(!d.duplicate);

    let kinds: Vec<&'static str> = drain(&mut events)
        .iter()
        .map(|e| match e {
            DomainEvent::CustomerCreated { .. } => "customer_created",
            DomainEvent::ConversationOpened { .. } => "conversation_opened",
            DomainEvent::MessageReceived { .. } => "message_received",
            DomainEvent::MessageSent { .. } => "message_sent",
            DomainEvent::BotAnswered { .. } => "bot_answered",
            DomainEvent::SentimentScored { .. } => "sentiment_scored",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "customer_created",
            "conversation_opened",
            "message_received",
            "sentiment_scored",
            "message_sent",
            "bot_answered"
        ]
    );
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, Identity::new(ChannelKind::WeChat, "openid-1"));
    assert_eq!(sent[0].message.content, Content::text("48小时内发货。"));

    let history = store
        .messages(&MessageQuery::new(
            TenantId::default(),
            MessageScope::Conversation(d.message.conversation),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1].status,
        DeliveryStatus::Sent,
        "the receipt is recorded"
    );
}

#[tokio::test]
async fn a_provider_retry_is_stored_once_and_answered_once() {
    let (chan, sent) = recording_channel("tg", ChannelKind::Telegram);
    let engine = faq_desk(Arc::new(MemoryStore::new()))
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    let mut events = engine.subscribe();
    let msg = inbound(
        "tg",
        ChannelKind::Telegram,
        "42",
        "update-7",
        "when will my order ship",
    );
    let first = engine.handle_inbound_and_wait(msg.clone()).await.unwrap();
    let again = engine.handle_inbound_and_wait(msg.clone()).await.unwrap();
    let third = engine.handle_inbound_and_wait(msg).await.unwrap();
    assert!(!first.duplicate && again.duplicate && third.duplicate);
    assert_eq!(first.message.id, again.message.id);
    assert_eq!(sent.lock().unwrap().len(), 1, "the bot answered once");
    let dups = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e, DomainEvent::DuplicateIgnored { .. }))
        .count();
    assert_eq!(dups, 2);
}

#[tokio::test]
async fn a_refused_delivery_becomes_a_dead_letter_and_the_message_is_kept() {
    let mut chan = MockChan::new();
    chan.expect_info()
        .return_const(info("sms", ChannelKind::Sms));
    chan.expect_send().times(1).returning(|_| {
        Err(cs_channels::Error::Rejected {
            reason: "21211 invalid 'To' phone number".into(),
        })
    });
    let store = Arc::new(MemoryStore::new());
    let engine = faq_desk(store.clone())
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    let mut events = engine.subscribe();
    let d = engine
        .handle_inbound_and_wait(inbound(
            "sms",
            ChannelKind::Sms,
            "+8613800138000",
            "SM1",
            "多久发货",
        ))
        .await
        .expect("the customer's message is taken even when the reply cannot go out");
    let failed: Vec<_> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            DomainEvent::DeliveryFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("invalid 'To'"));
    let dead = engine.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "a permanent failure is not retried");
    assert_eq!(dead[0].message.content, Content::text("48小时内发货。"));
    assert_eq!(
        engine.flush_outbox().await.unwrap(),
        0,
        "nothing left to try"
    );
    let history = store
        .messages(&MessageQuery::new(
            TenantId::default(),
            MessageScope::Conversation(d.message.conversation),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(history[1].status, DeliveryStatus::Failed);
}

#[tokio::test]
async fn temporary_failures_are_retried_with_backoff_in_order() {
    // The provider answers 503 twice, then accepts everything.
    let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut chan = MockChan::new();
    chan.expect_info()
        .return_const(info("wa", ChannelKind::WhatsApp));
    let (log, n) = (sent.clone(), calls.clone());
    chan.expect_send().returning(move |m| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            return Err(cs_channels::Error::Unavailable {
                reason: "503 from provider".into(),
            });
        }
        log.lock().unwrap().push(m.message.content.plain_text());
        Ok(SendReceipt {
            provider_message_id: Some(format!("wamid.{}", m.message.id)),
            status: DeliveryStatus::Sent,
        })
    });
    let clock = clock();
    let alice = agent("Alice");
    let engine = faq_desk(Arc::new(MemoryStore::new()))
        .with_channel(Arc::new(chan))
        .with_agent(alice.clone())
        .with_clock(clock.clone())
        .build()
        .await
        .unwrap();
    engine.sign_in(alice.id).await.unwrap();
    let d = engine
        .handle_inbound_and_wait(inbound(
            "wa",
            ChannelKind::WhatsApp,
            "8613800138000",
            "wamid.in1",
            "转人工",
        ))
        .await
        .unwrap();
    // The bot's "connecting you" failed once; the system "Alice has joined" waits behind it.
    let conv = d.message.conversation;
    assert!(sent.lock().unwrap().is_empty());
    engine
        .agent_reply(alice.id, conv, Content::text("third"), None)
        .await
        .unwrap();
    assert_eq!(
        engine.flush_outbox().await.unwrap(),
        0,
        "not due before the backoff"
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        engine.flush_outbox().await.unwrap(),
        1,
        "second attempt fails again"
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        engine.flush_outbox().await.unwrap(),
        0,
        "backoff doubled to 2 s"
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        engine.flush_outbox().await.unwrap(),
        3,
        "then all three go, in order"
    );
    let texts = sent.lock().unwrap().clone();
    assert_eq!(texts.len(), 3);
    assert!(
        texts[0].contains("connecting you") || texts[0].contains("转接"),
        "{texts:?}"
    );
    assert!(texts[1].contains("Alice"));
    assert_eq!(texts[2], "third");
    assert!(engine.dead_letters(10).await.unwrap().is_empty());

    // A read receipt from the provider reaches the stored message.
    let view = engine.customer_view(d.message.customer).await.unwrap();
    let third = view
        .history
        .iter()
        .find(|m| m.content.plain_text() == "third")
        .unwrap();
    let hit = engine
        .handle_receipt(
            &ChannelId::new("wa").unwrap(),
            &cs_channels::StatusUpdate {
                provider_message_id: format!("wamid.{}", third.id),
                status: DeliveryStatus::Read,
            },
        )
        .await
        .unwrap();
    assert_eq!(hit, Some(third.id));
    let view = engine.customer_view(d.message.customer).await.unwrap();
    let third = view
        .history
        .iter()
        .find(|m| m.content.plain_text() == "third")
        .unwrap();
    assert_eq!(third.status, DeliveryStatus::Read);
}

#[tokio::test]
async fn a_customer_on_two_channels_is_one_conversation_and_replies_follow_them() {
    let (wechat, wechat_sent) = recording_channel("wechat", ChannelKind::WeChat);
    let (web, web_sent) = recording_channel("webchat", ChannelKind::WebChat);
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let engine = faq_desk(store.clone())
        .with_channel(Arc::new(wechat))
        .with_channel(Arc::new(web))
        .with_clock(clock.clone())
        .build()
        .await
        .unwrap();
    let first = engine
        .handle_inbound_and_wait(inbound(
            "wechat",
            ChannelKind::WeChat,
            "openid-9",
            "w1",
            "多久发货",
        ))
        .await
        .unwrap();
    // The shop knows the WeChat user is also web visitor "user-9" (logged in on both).
    engine
        .link_identity(
            first.message.customer,
            Identity::new(ChannelKind::WebChat, "user-9"),
            LinkOrigin::Api,
        )
        .await
        .unwrap();
    clock.advance(Duration::minutes(20));
    let second = engine
        .handle_inbound_and_wait(inbound(
            "webchat",
            ChannelKind::WebChat,
            "user-9",
            "a1",
            "when will my order ship",
        ))
        .await
        .unwrap();
    assert_eq!(
        second.message.conversation, first.message.conversation,
        "one conversation"
    );
    assert_eq!(wechat_sent.lock().unwrap().len(), 1);
    assert_eq!(
        web_sent.lock().unwrap().len(),
        1,
        "the answer goes where they wrote last"
    );
    let view = engine.customer_view(first.message.customer).await.unwrap();
    let channels: Vec<&str> = view.history.iter().map(|m| m.channel.as_str()).collect();
    assert_eq!(
        channels,
        ["wechat", "wechat", "webchat", "webchat"],
        "the agent sees both"
    );
}

#[tokio::test]
async fn a_failing_bot_hands_over_and_agents_get_the_conversation() {
    let (chan, sent) = recording_channel("webchat", ChannelKind::WebChat);
    let mut bot = MockBrain::new();
    bot.expect_reply().returning(|_| {
        Err(cs_bot::Error::Unavailable {
            reason: "model server down".into(),
        })
    });
    let alice = agent("Alice");
    let engine = Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(Arc::new(bot))
        .with_channel(Arc::new(chan))
        .with_agent(alice.clone())
        .build()
        .await
        .unwrap();
    let d = engine
        .handle_inbound_and_wait(inbound(
            "webchat",
            ChannelKind::WebChat,
            "v1",
            "c1",
            "hello?",
        ))
        .await
        .unwrap();
    let conv = engine.conversation(d.message.conversation).await.unwrap();
    assert_eq!(conv.state, ConversationState::Queued, "no agent online yet");
    assert_eq!(engine.queue().await.unwrap().queued.len(), 1);

    // Another agent may not reply; Alice signs in and gets it.
    let err = engine
        .agent_reply(alice.id, conv.id, Content::text("hi"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, omnidesk::Error::Forbidden { .. }));
    engine.sign_in(alice.id).await.unwrap();
    let conv = engine.conversation(conv.id).await.unwrap();
    assert_eq!(conv.state, ConversationState::Assigned);
    assert_eq!(conv.assignee, Some(alice.id));
    let reply = engine
        .agent_reply(
            alice.id,
            conv.id,
            Content::text("Hi, Alice here"),
            Some("x1".into()),
        )
        .await
        .unwrap();
    let again = engine
        .agent_reply(
            alice.id,
            conv.id,
            Content::text("Hi, Alice here"),
            Some("x1".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.id, again.id,
        "a double-sent agent reply is stored once"
    );
    let texts: Vec<String> = sent
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.message.content.plain_text())
        .collect();
    assert_eq!(texts.iter().filter(|t| t.contains("Alice here")).count(), 1);

    engine.resolve(alice.id, conv.id).await.unwrap();
    let conv = engine.conversation(conv.id).await.unwrap();
    assert_eq!(conv.state, ConversationState::Resolved);
    let load = engine.queue().await.unwrap();
    assert!(load.agents[0].tasks.is_empty(), "resolving frees the agent");
}

#[tokio::test]
async fn conversations_waiting_before_a_restart_are_queued_again() {
    let store = Arc::new(MemoryStore::new());
    let alice = agent("Alice");
    let build = |store: Arc<MemoryStore>| {
        let (chan, _) = recording_channel("webchat", ChannelKind::WebChat);
        faq_desk(store)
            .with_channel(Arc::new(chan))
            .with_agent(alice.clone())
            .build()
    };
    let first = build(store.clone()).await.unwrap();
    let d = first
        .handle_inbound_and_wait(inbound(
            "webchat",
            ChannelKind::WebChat,
            "v1",
            "c1",
            "转人工",
        ))
        .await
        .unwrap();
    assert_eq!(
        first
            .conversation(d.message.conversation)
            .await
            .unwrap()
            .state,
        ConversationState::Queued
    );
    drop(first);

    let second = build(store).await.unwrap();
    assert_eq!(
        second.queue().await.unwrap().queued.len(),
        1,
        "recovered into the new router"
    );
    second.sign_in(alice.id).await.unwrap();
    let conv = second.conversation(d.message.conversation).await.unwrap();
    assert_eq!(conv.assignee, Some(alice.id));
}

#[tokio::test]
async fn merging_two_customers_shows_one_history_and_unmerging_restores_both() {
    let (wechat, _) = recording_channel("wechat", ChannelKind::WeChat);
    let (mail, mail_sent) = recording_channel("mail", ChannelKind::Email);
    let alice = agent("Alice");
    let engine = faq_desk(Arc::new(MemoryStore::new()))
        .with_channel(Arc::new(wechat))
        .with_channel(Arc::new(mail))
        .with_agent(alice.clone())
        .build()
        .await
        .unwrap();
    engine.sign_in(alice.id).await.unwrap();
    // The customer writes on WeChat, then by email: two customers as far as anyone can prove.
    let on_wechat = engine
        .handle_inbound_and_wait(inbound(
            "wechat",
            ChannelKind::WeChat,
            "openid-1",
            "w1",
            "多久发货",
        ))
        .await
        .unwrap();
    let by_mail = engine
        .handle_inbound_and_wait(inbound(
            "mail",
            ChannelKind::Email,
            "ann@example.com",
            "<m1@x>",
            "转人工",
        ))
        .await
        .unwrap();
    let (ann, ann_mail) = (on_wechat.message.customer, by_mail.message.customer);
    assert_ne!(ann, ann_mail);
    let mail_conv = engine
        .conversation(by_mail.message.conversation)
        .await
        .unwrap();
    assert_eq!(mail_conv.assignee, Some(alice.id));

    // The agent merges them: one history, and the mail conversation (active on both sides)
    // is resolved and frees the agent.
    let mut events = engine.subscribe();
    let merge = engine
        .merge_customers(ann, ann_mail, LinkOrigin::Agent { agent: alice.id })
        .await
        .unwrap();
    let view = engine.customer_view(ann).await.unwrap();
    let channels: Vec<&str> = view.history.iter().map(|m| m.channel.as_str()).collect();
    assert!(
        channels.contains(&"wechat") && channels.contains(&"mail"),
        "{channels:?}"
    );
    assert_eq!(view.identities.len(), 2);
    assert!(
        engine.queue().await.unwrap().agents[0].tasks.is_empty(),
        "agent freed"
    );
    assert!(
        drain(&mut events)
            .iter()
            .any(|e| matches!(e, DomainEvent::CustomersMerged { .. }))
    );

    // Undo: both separate again, each history intact.
    let before = view.history.len();
    engine.unmerge(merge.id).await.unwrap();
    let a = engine.customer_view(ann).await.unwrap();
    let b = engine.customer_view(ann_mail).await.unwrap();
    assert_eq!(a.history.len() + b.history.len(), before, "nothing lost");
    assert!(a.history.iter().all(|m| m.channel.as_str() == "wechat"));
    assert!(b.history.iter().all(|m| m.channel.as_str() == "mail"));
    assert_eq!(
        b.identities,
        [Identity::new(ChannelKind::Email, "ann@example.com")]
    );
    assert!(!mail_sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_call_routed_by_the_voice_menu_skips_the_bot_and_needs_the_chosen_skill() {
    let (voice, sent) = recording_channel("phone", ChannelKind::Voice);
    let mut bob = agent("Bob");
    bob.skills = vec![Skill::new("presales", 8)];
    let alice = agent("Alice");
    let engine = faq_desk(Arc::new(MemoryStore::new()))
        .with_channel(Arc::new(voice))
        .with_agent(bob.clone())
        .with_agent(alice.clone())
        .build()
        .await
        .unwrap();
    engine.sign_in(bob.id).await.unwrap();
    let call = InboundMessage {
        content: Content::Event {
            name: "call".into(),
            data: serde_json::json!({"call_sid": "CA1", "queue": "after-sales", "skills": ["after-sales"], "path": ["main"], "to": null, "menu_seconds": 12}),
        },
        ..inbound("phone", ChannelKind::Voice, "+8613800138000", "CA1", "x")
    };
    let d = engine.handle_inbound_and_wait(call).await.unwrap();
    let conv = engine.conversation(d.message.conversation).await.unwrap();
    assert_eq!(
        conv.state,
        ConversationState::Queued,
        "Bob lacks after-sales"
    );
    assert_eq!(conv.skills, ["after-sales"]);
    assert!(
        sent.lock()
            .unwrap()
            .iter()
            .all(|m| m.message.author.role() != "bot"),
        "the bot does not answer a routed call"
    );
    engine.sign_in(alice.id).await.unwrap();
    let conv = engine.conversation(conv.id).await.unwrap();
    assert_eq!(
        conv.assignee,
        Some(alice.id),
        "the agent with the skill gets the call"
    );
}

/// Issue 13: caller ID and SMS senders can be spoofed, so a call from the number a WhatsApp
/// customer uses is a customer of its own: whoever answers it sees none of the WhatsApp
/// history, until an agent merges the two.
#[tokio::test]
async fn a_spoofable_phone_number_never_joins_another_customer_by_itself() {
    let (voice, _) = recording_channel("voice", ChannelKind::Voice);
    let (sms, _) = recording_channel("sms", ChannelKind::Sms);
    let (wa, _) = recording_channel("wa", ChannelKind::WhatsApp);
    let store = Arc::new(MemoryStore::new());
    let engine = faq_desk(store.clone())
        .with_channel(Arc::new(voice))
        .with_channel(Arc::new(sms))
        .with_channel(Arc::new(wa))
        .build()
        .await
        .unwrap();
    let owner = engine
        .handle_inbound_and_wait(inbound(
            "wa",
            ChannelKind::WhatsApp,
            "8613800138000",
            "wamid.1",
            "我的订单 SO-1001 地址是北京市朝阳区某某路 1 号",
        ))
        .await
        .unwrap();
    let spoofed_call = engine
        .handle_inbound_and_wait(InboundMessage {
            content: Content::Event {
                name: "call".into(),
                data: serde_json::json!({"call_sid": "CA1", "skills": []}),
            },
            ..inbound("voice", ChannelKind::Voice, "+8613800138000", "CA1", "")
        })
        .await
        .unwrap();
    let spoofed_sms = engine
        .handle_inbound_and_wait(inbound(
            "sms",
            ChannelKind::Sms,
            "+8613800138000",
            "SM1",
            "多久发货",
        ))
        .await
        .unwrap();
    for other in [&spoofed_call, &spoofed_sms] {
        assert_ne!(other.message.customer, owner.message.customer);
        let view = engine.customer_view(other.message.customer).await.unwrap();
        assert!(
            view.history
                .iter()
                .all(|m| !m.content.plain_text().contains("SO-1001")),
            "the owner's history is not shown with a spoofable identity"
        );
        assert!(
            !view
                .identities
                .iter()
                .any(|i| i.kind == ChannelKind::WhatsApp)
        );
    }
    // The store suggests the WhatsApp customer, for an agent (or a one-time code sent through
    // WhatsApp, which proves the number) to confirm.
    let suggested = store
        .link_suggestions(&TenantId::default(), spoofed_sms.message.customer)
        .await
        .unwrap();
    assert_eq!(
        suggested.len(),
        2,
        "the WhatsApp customer and the caller: {suggested:?}"
    );
    let whatsapp = suggested
        .iter()
        .find(|s| s.candidate == owner.message.customer)
        .unwrap();
    assert_eq!(whatsapp.key, "phone:+8613800138000");
    assert!(whatsapp.candidate_proven, "a code can go through WhatsApp");
    let caller = suggested
        .iter()
        .find(|s| s.candidate == spoofed_call.message.customer)
        .unwrap();
    assert!(!caller.candidate_proven);
    // An agent who checked it merges them explicitly: one customer, one history.
    let agent = AgentId::new();
    engine
        .merge_customers(
            owner.message.customer,
            spoofed_sms.message.customer,
            LinkOrigin::Agent { agent },
        )
        .await
        .unwrap();
    let view = engine.customer_view(owner.message.customer).await.unwrap();
    assert!(view.identities.iter().any(|i| i.kind == ChannelKind::Sms));
}

/// A bot that never finishes its turn: the process "crashes" while it thinks.
#[derive(Debug)]
struct Stuck;

#[async_trait::async_trait]
impl Bot for Stuck {
    async fn reply(&self, _input: &BotInput) -> cs_bot::Result<BotReply> {
        std::future::pending().await
    }
}

/// A channel whose sends never finish: the process "crashes" mid-delivery.
#[derive(Debug)]
struct Hanging(ChannelInfo);

#[async_trait::async_trait]
impl Channel for Hanging {
    fn info(&self) -> &ChannelInfo {
        &self.0
    }
    async fn parse_inbound(&self, _request: RawInbound) -> cs_channels::Result<Parsed> {
        Err(cs_channels::Error::Unsupported {
            reason: "test channel".into(),
        })
    }
    async fn send(&self, _message: &OutboundMessage) -> cs_channels::Result<SendReceipt> {
        std::future::pending().await
    }
}

/// Waits (up to 5 s) until `sent` holds `n` messages.
async fn wait_for_sends(sent: &std::sync::Mutex<Vec<OutboundMessage>>, n: usize) {
    for _ in 0..500 {
        if sent.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{} of {n} sends", sent.lock().unwrap().len());
}

#[tokio::test]
async fn a_bot_turn_interrupted_by_a_crash_is_redone_at_start_up_once() {
    let store = Arc::new(MemoryStore::new());
    let (chan, _) = recording_channel("webchat", ChannelKind::WebChat);
    let first = Engine::builder()
        .with_store(store.clone())
        .with_bot(Arc::new(Stuck))
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    let stored = first
        .handle_inbound(inbound(
            "webchat",
            ChannelKind::WebChat,
            "v1",
            "c1",
            "when will my order ship",
        ))
        .await
        .unwrap();
    // The message is stored and acknowledged; the bot's turn never ends: the process dies.
    tokio::task::yield_now().await;
    drop(first);
    let conversation = stored.message.conversation;
    let history = || async {
        store
            .messages(&MessageQuery::new(
                TenantId::default(),
                MessageScope::Conversation(conversation),
                10,
            ))
            .await
            .unwrap()
    };
    assert_eq!(history().await.len(), 1, "no answer before the restart");

    // The restarted process answers it.
    let (chan, sent) = recording_channel("webchat", ChannelKind::WebChat);
    let second = faq_desk(store.clone())
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    wait_for_sends(&sent, 1).await;
    assert_eq!(
        sent.lock().unwrap()[0].message.content,
        Content::text("Within 48 hours.")
    );
    let after = history().await;
    assert_eq!(after.len(), 2, "the question and one answer: {after:?}");
    drop(second);

    // Another restart finds the turn finished: no second answer.
    let (chan, sent) = recording_channel("webchat", ChannelKind::WebChat);
    let third = faq_desk(store.clone())
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        sent.lock().unwrap().is_empty(),
        "a finished turn is not redone"
    );
    assert_eq!(history().await.len(), 2);
    drop(third);
}

#[tokio::test]
async fn a_restarted_node_sends_at_once_what_its_dead_predecessor_had_claimed() {
    let store = Arc::new(MemoryStore::new());
    let clock = clock();
    let first = faq_desk(store.clone())
        .with_clock(clock.clone())
        .with_node_id("node-a")
        .with_channel(Arc::new(Hanging(info("webchat", ChannelKind::WebChat))))
        .build()
        .await
        .unwrap();
    first
        .handle_inbound(inbound(
            "webchat",
            ChannelKind::WebChat,
            "v1",
            "c1",
            "when will my order ship",
        ))
        .await
        .unwrap();
    // The answer is stored and claimed by node-a, whose send never returns: it dies mid-send.
    let v1 = Identity::new(ChannelKind::WebChat, "v1");
    let answered = || async {
        let customer = store
            .find_customer(&TenantId::default(), &v1)
            .await
            .unwrap()
            .unwrap();
        store
            .messages(&MessageQuery::new(
                TenantId::default(),
                MessageScope::Customer(customer.id),
                10,
            ))
            .await
            .unwrap()
            .iter()
            .any(|m| m.direction == cs_core::Direction::Outbound)
    };
    for _ in 0..500 {
        if answered().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let now = cs_core::Clock::now(clock.as_ref());
    let due = store
        .claim_outbound(&cs_core::store::ClaimOutbound {
            tenant: TenantId::default(),
            now,
            lease_until: now,
            conversation: None,
            limit: 10,
            owner: None,
        })
        .await
        .unwrap();
    assert!(due.is_empty(), "the answer is claimed by node-a, not due");
    drop(first);

    // Another node starting does not touch node-a's claim: it waits for its lease.
    let (chan, sent) = recording_channel("webchat", ChannelKind::WebChat);
    let other = faq_desk(store.clone())
        .with_clock(clock.clone())
        .with_node_id("node-b")
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    assert_eq!(other.flush_outbox().await.unwrap(), 0);
    assert!(sent.lock().unwrap().is_empty());
    drop(other);

    // node-a restarted releases its predecessor's claim and sends at once, no lease waited.
    let (chan, sent) = recording_channel("webchat", ChannelKind::WebChat);
    let again = faq_desk(store.clone())
        .with_clock(clock.clone())
        .with_node_id("node-a")
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    assert_eq!(again.flush_outbox().await.unwrap(), 1);
    assert_eq!(
        sent.lock().unwrap()[0].message.content,
        Content::text("Within 48 hours.")
    );
}

/// An engine on an in-memory store with `bot` and a recording web chat channel; what it sent.
async fn web_desk(bot: Arc<dyn Bot>) -> (Engine, Arc<std::sync::Mutex<Vec<OutboundMessage>>>) {
    let (chan, sent) = recording_channel("webchat", ChannelKind::WebChat);
    let engine = Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(bot)
        .with_channel(Arc::new(chan))
        .build()
        .await
        .unwrap();
    (engine, sent)
}

/// A bot whose first turn waits at a gate; it records the text of every turn it takes, and
/// hands the conversation over when told `human`.
#[derive(Debug, Default)]
struct Gated {
    gate: tokio::sync::Notify,
    seen: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Bot for Gated {
    async fn reply(&self, input: &BotInput) -> cs_bot::Result<BotReply> {
        let first = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(input.text.clone());
            seen.len() == 1
        };
        if first {
            self.gate.notified().await;
        }
        if input.text == "human" {
            return Ok(BotReply {
                handoff: Some(cs_bot::Handoff::new(
                    cs_bot::HandoffReason::CustomerRequest,
                    "asked for a person",
                )),
                ..Default::default()
            });
        }
        Ok(BotReply {
            messages: vec![format!("re: {}", input.text)],
            ..Default::default()
        })
    }
}

#[tokio::test]
async fn messages_are_acknowledged_while_the_bot_thinks_and_answered_in_order() {
    let bot = Arc::new(Gated::default());
    let (engine, sent) = web_desk(bot.clone()).await;
    let send = |pid: &str, text: &str| {
        let (engine, m) = (
            engine.clone(),
            inbound("webchat", ChannelKind::WebChat, "v1", pid, text),
        );
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(5), engine.handle_inbound(m))
                .await
                .expect("acknowledged while the bot's first turn waits")
                .unwrap()
        }
    };
    send("c1", "one").await;
    // The first turn is stuck at the gate; the next messages are stored and acknowledged.
    send("c2", "two").await;
    send("c3", "three").await;
    assert!(sent.lock().unwrap().is_empty(), "nothing answered yet");
    bot.gate.notify_one();
    wait_for_sends(&sent, 3).await;
    let answers: Vec<Content> = sent
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.message.content.clone())
        .collect();
    assert_eq!(
        answers,
        [
            Content::text("re: one"),
            Content::text("re: two"),
            Content::text("re: three")
        ],
        "turns in the order the messages were stored"
    );
    assert_eq!(*bot.seen.lock().unwrap(), ["one", "two", "three"]);
}

#[tokio::test]
async fn a_message_stored_while_the_bot_hands_over_is_left_for_the_agent() {
    let bot = Arc::new(Gated::default());
    let (engine, _sent) = web_desk(bot.clone()).await;
    let first = engine
        .handle_inbound(inbound(
            "webchat",
            ChannelKind::WebChat,
            "v1",
            "c1",
            "human",
        ))
        .await
        .unwrap();
    // Stored while the first turn (a hand-over) still waits at the gate.
    engine
        .handle_inbound(inbound(
            "webchat",
            ChannelKind::WebChat,
            "v1",
            "c2",
            "hello?",
        ))
        .await
        .unwrap();
    bot.gate.notify_one();
    let conversation = first.message.conversation;
    for _ in 0..500 {
        if engine.conversation(conversation).await.unwrap().state == ConversationState::Queued {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The second turn, run after the hand-over, sees the conversation queued: no bot turn.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        engine.conversation(conversation).await.unwrap().state,
        ConversationState::Queued
    );
    assert_eq!(
        *bot.seen.lock().unwrap(),
        ["human"],
        "the bot never answers a conversation already handed over"
    );
}

/// A bot that reads three messages of history and records what it was given.
#[derive(Debug, Default)]
struct ShortMemory {
    given: std::sync::Mutex<Vec<Vec<String>>>,
}

#[async_trait::async_trait]
impl Bot for ShortMemory {
    fn history_len(&self) -> usize {
        3
    }

    async fn reply(&self, input: &BotInput) -> cs_bot::Result<BotReply> {
        self.given.lock().unwrap().push(
            input
                .history
                .iter()
                .map(|m| m.content.plain_text())
                .collect(),
        );
        Ok(BotReply {
            messages: vec![format!("re: {}", input.text)],
            ..Default::default()
        })
    }
}

#[tokio::test]
async fn the_bot_is_given_the_history_it_asks_for_with_the_new_message_last() {
    let bot = Arc::new(ShortMemory::default());
    let (engine, _sent) = web_desk(bot.clone()).await;
    for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
        engine
            .handle_inbound_and_wait(inbound(
                "webchat",
                ChannelKind::WebChat,
                "v1",
                &format!("c{i}"),
                text,
            ))
            .await
            .unwrap();
    }
    let given = bot.given.lock().unwrap().clone();
    assert_eq!(given[0], ["a"]);
    assert_eq!(given[1], ["a", "re: a", "b"]);
    assert_eq!(
        given[2],
        ["re: a", "b", "re: b", "c"][1..],
        "three, the new one last"
    );
}
