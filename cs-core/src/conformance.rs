//! The conformance suite every [`ConversationStore`] implementation runs (feature `conformance`).
//!
//! Call [`run`] from the implementation's tests with a fresh or shared store: every check works in
//! its own random tenant, so a database shared between runs (PostgreSQL in CI) needs no cleaning.
//! The checks panic with a message naming the rule that broke.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::channel::{ChannelKind, Identity, LinkOrigin, Route};
use crate::conversation::{Conversation, ConversationState, Priority};
use crate::customer::{Customer, CustomerTier};
use crate::error::Error;
use crate::id::{AgentId, ChannelId, MessageId, TenantId};
use crate::message::{Author, Content, DeliveryStatus, Direction, Message};
use crate::store::{
    ClaimOutbound, ConversationQuery, ConversationStore, MergeCustomers, MessageQuery,
    MessageScope, OpenConversation, Outcome, ResolveCustomer,
};

/// Runs every check against `store`.
pub async fn run(store: Arc<dyn ConversationStore>) {
    customers_resolve_once(store.clone()).await;
    identities_link_and_conflict(store.as_ref()).await;
    customer_profile_updates(store.as_ref()).await;
    one_active_conversation(store.clone()).await;
    optimistic_versions(store.as_ref()).await;
    messages_deduplicate(store.clone()).await;
    messages_page_in_order(store.as_ref()).await;
    history_spans_conversations(store.as_ref()).await;
    invalid_input_is_refused(store.as_ref()).await;
    conversation_queries_filter(store.as_ref()).await;
    tenants_are_isolated(store.as_ref()).await;
    outbox_orders_retries_and_dead_letters(store.as_ref()).await;
    receipts_move_status_forward(store.as_ref()).await;
    merges_carry_history_and_can_be_undone(store.as_ref()).await;
}

fn tenant() -> TenantId {
    TenantId::new(format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 8, 0, 0).unwrap()
}

fn web(id: &str) -> Identity {
    Identity::new(ChannelKind::WebChat, id)
}

fn resolve_req(tenant: &TenantId, identity: Identity) -> ResolveCustomer {
    ResolveCustomer {
        tenant: tenant.clone(),
        identity,
        display_name: Some("Ann".into()),
        language: Some("zh-CN".into()),
        at: t0(),
    }
}

async fn customer(store: &dyn ConversationStore, tenant: &TenantId, id: &str) -> Customer {
    store
        .resolve_customer(&resolve_req(tenant, web(id)))
        .await
        .expect("resolve_customer")
        .customer
}

fn open_req(tenant: &TenantId, c: &Customer) -> OpenConversation {
    OpenConversation {
        tenant: tenant.clone(),
        customer: c.id,
        route: Route {
            channel: ChannelId::new("webchat").unwrap(),
            identity: web("v1"),
        },
        priority: Priority::Normal,
        at: t0(),
    }
}

async fn conversation(
    store: &dyn ConversationStore,
    tenant: &TenantId,
    c: &Customer,
) -> Conversation {
    store
        .open_conversation(&open_req(tenant, c))
        .await
        .expect("open_conversation")
        .conversation
}

fn message(conv: &Conversation, channel: &str, pid: Option<&str>, text: &str) -> Message {
    Message {
        id: MessageId::new(),
        tenant: conv.tenant.clone(),
        conversation: conv.id,
        customer: conv.customer,
        channel: ChannelId::new(channel).unwrap(),
        channel_kind: ChannelKind::WebChat,
        direction: Direction::Inbound,
        author: Author::Customer,
        content: Content::text(text),
        provider_message_id: pid.map(str::to_owned),
        status: DeliveryStatus::Pending,
        created_at: t0(),
    }
}

async fn customers_resolve_once(store: Arc<dyn ConversationStore>) {
    let t = tenant();
    let first = store
        .resolve_customer(&resolve_req(&t, web("a")))
        .await
        .unwrap();
    assert!(first.created, "first resolve creates the customer");
    assert_eq!(first.customer.display_name.as_deref(), Some("Ann"));
    assert_eq!(first.customer.tier, CustomerTier::Standard);
    let again = store
        .resolve_customer(&resolve_req(&t, web("a")))
        .await
        .unwrap();
    assert!(!again.created, "second resolve finds the customer");
    assert_eq!(
        first.customer, again.customer,
        "resolve returns the stored customer"
    );
    let other = store
        .resolve_customer(&resolve_req(&t, web("b")))
        .await
        .unwrap();
    assert_ne!(
        first.customer.id, other.customer.id,
        "another identity is another customer"
    );
    assert_eq!(
        store.customer(&t, first.customer.id).await.unwrap(),
        first.customer
    );
    assert_eq!(
        store.find_customer(&t, &web("a")).await.unwrap(),
        Some(first.customer.clone()),
        "find_customer finds the owner"
    );
    assert_eq!(
        store.find_customer(&t, &web("nobody")).await.unwrap(),
        None,
        "find_customer never creates"
    );
    assert!(
        store
            .resolve_customer(&resolve_req(&t, web("nobody")))
            .await
            .unwrap()
            .created,
        "find_customer left nothing behind"
    );

    // Concurrent first contacts from one identity agree on one customer.
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let req = resolve_req(&t, web("racer"));
            tokio::spawn(async move { store.resolve_customer(&req).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for h in handles {
        let r = h.await.unwrap();
        created += usize::from(r.created);
        ids.push(r.customer.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "concurrent resolves agree on one customer");
    assert_eq!(created, 1, "exactly one concurrent resolve creates");
}

async fn identities_link_and_conflict(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let bob = customer(store, &t, "bob").await;
    let email = Identity::new(ChannelKind::Email, "ann@example.com");
    let agent = AgentId::new();
    store
        .link_identity(&t, ann.id, &email, &LinkOrigin::Agent { agent }, t0())
        .await
        .unwrap();
    store
        .link_identity(&t, ann.id, &email, &LinkOrigin::Api, t0())
        .await
        .expect("linking an identity twice to its owner is a no-op");
    let err = store
        .link_identity(&t, bob.id, &email, &LinkOrigin::Api, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "identity owned by another: {err:?}"
    );
    assert_eq!(
        store.identities(&t, ann.id).await.unwrap(),
        vec![web("ann"), email.clone()]
    );
    let links = store.identity_links(&t, ann.id).await.unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(
        links[0].origin,
        LinkOrigin::FirstContact,
        "first contact is recorded"
    );
    assert_eq!(
        links[1].origin,
        LinkOrigin::Agent { agent },
        "the first link's origin is kept"
    );
    let found = store
        .resolve_customer(&resolve_req(&t, email))
        .await
        .unwrap();
    assert_eq!(
        found.customer.id, ann.id,
        "a linked identity resolves to its customer"
    );
    let err = store
        .link_identity(
            &t,
            crate::CustomerId::new(),
            &web("x"),
            &LinkOrigin::Api,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "unknown customer: {err:?}"
    );
}

async fn customer_profile_updates(store: &dyn ConversationStore) {
    let t = tenant();
    let mut ann = customer(store, &t, "ann").await;
    ann.tier = CustomerTier::Vip;
    ann.display_name = Some("Ann Li".into());
    store.update_customer(&ann).await.unwrap();
    assert_eq!(store.customer(&t, ann.id).await.unwrap(), ann);
    let mut ghost = ann.clone();
    ghost.id = crate::CustomerId::new();
    assert!(matches!(
        store.update_customer(&ghost).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.customer(&t, ghost.id).await,
        Err(Error::NotFound { .. })
    ));
}

async fn one_active_conversation(store: Arc<dyn ConversationStore>) {
    let t = tenant();
    let ann = customer(store.as_ref(), &t, "ann").await;
    let opened = store.open_conversation(&open_req(&t, &ann)).await.unwrap();
    assert!(opened.created);
    assert_eq!(opened.conversation.state, ConversationState::Bot);
    assert_eq!(opened.conversation.version, 0);
    let again = store.open_conversation(&open_req(&t, &ann)).await.unwrap();
    assert!(!again.created, "an active conversation is reused");
    assert_eq!(again.conversation, opened.conversation);

    // Resolving it lets the next contact open a new one.
    let mut c = opened.conversation.clone();
    c.state = ConversationState::Resolved;
    store.update_conversation(&c).await.unwrap();
    let next = store.open_conversation(&open_req(&t, &ann)).await.unwrap();
    assert!(next.created, "after resolve a new conversation opens");
    assert_ne!(next.conversation.id, c.id);

    // Re-activating the old one would make two active conversations.
    let mut old = store.conversation(&t, c.id).await.unwrap();
    old.state = ConversationState::Queued;
    let err = store.update_conversation(&old).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "second active conversation: {err:?}"
    );

    // Concurrent opens for a new customer agree on one conversation.
    let bob = customer(store.as_ref(), &t, "bob").await;
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let req = open_req(&t, &bob);
            tokio::spawn(async move { store.open_conversation(&req).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for h in handles {
        let o = h.await.unwrap();
        created += usize::from(o.created);
        ids.push(o.conversation.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "concurrent opens agree on one conversation");
    assert_eq!(created, 1, "exactly one concurrent open creates");

    let err = store
        .open_conversation(&OpenConversation {
            customer: crate::CustomerId::new(),
            ..open_req(&t, &bob)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "unknown customer: {err:?}"
    );
}

async fn optimistic_versions(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let agent = AgentId::new();

    let mut a = c.clone();
    a.state = ConversationState::Queued;
    a.priority = Priority::High;
    a.skills = vec!["refunds".into()];
    a.updated_at = t0() + Duration::seconds(5);
    let saved = store.update_conversation(&a).await.unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(store.conversation(&t, c.id).await.unwrap(), saved);

    // A writer that read version 0 loses.
    let mut stale = c.clone();
    stale.assignee = Some(agent);
    let err = store.update_conversation(&stale).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "stale version: {err:?}"
    );
    assert!(
        err.is_temporary(),
        "a conflict is worth retrying after a re-read"
    );
    assert_eq!(store.conversation(&t, c.id).await.unwrap().assignee, None);

    let mut fresh = saved.clone();
    fresh.state = ConversationState::Assigned;
    fresh.assignee = Some(agent);
    fresh.route = Route {
        channel: ChannelId::new("wechat-main").unwrap(),
        identity: Identity::new(ChannelKind::WeChat, "openid-1"),
    };
    let saved = store.update_conversation(&fresh).await.unwrap();
    assert_eq!(saved.version, 2);
    let loaded = store.conversation(&t, c.id).await.unwrap();
    assert_eq!(loaded.assignee, Some(agent));
    assert_eq!(loaded.route, fresh.route);

    let mut ghost = saved.clone();
    ghost.id = crate::ConversationId::new();
    assert!(matches!(
        store.update_conversation(&ghost).await,
        Err(Error::NotFound { .. })
    ));
}

async fn messages_deduplicate(store: Arc<dyn ConversationStore>) {
    let t = tenant();
    let ann = customer(store.as_ref(), &t, "ann").await;
    let c = conversation(store.as_ref(), &t, &ann).await;

    let first = message(&c, "webchat", Some("p-1"), "hello");
    let stored = store.append_message(&first).await.unwrap();
    assert!(!stored.is_duplicate());
    let retry = message(&c, "webchat", Some("p-1"), "hello");
    let dup = store.append_message(&retry).await.unwrap();
    assert!(dup.is_duplicate(), "a provider retry is a duplicate");
    assert_eq!(
        dup.message().id,
        first.id,
        "the duplicate names the stored message"
    );
    let elsewhere = message(&c, "wechat-main", Some("p-1"), "same id, other channel");
    assert!(
        !store
            .append_message(&elsewhere)
            .await
            .unwrap()
            .is_duplicate()
    );
    for _ in 0..2 {
        let no_pid = message(&c, "webchat", None, "no provider id");
        assert!(!store.append_message(&no_pid).await.unwrap().is_duplicate());
    }

    // Concurrent deliveries of one provider message store it once.
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let m = message(&c, "webchat", Some("p-race"), "race");
            tokio::spawn(async move { store.append_message(&m).await.unwrap() })
        })
        .collect();
    let mut inserted = 0;
    for h in handles {
        inserted += usize::from(!h.await.unwrap().is_duplicate());
    }
    assert_eq!(inserted, 1, "concurrent deliveries store one message");

    let all = store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(c.id),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "p-1, p-1 elsewhere, two without id, p-race");
    assert_eq!(all[0], first, "a message reads back exactly as written");
}

async fn messages_page_in_order(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let mut written = Vec::new();
    for i in 0..25 {
        let mut m = message(
            &c,
            "webchat",
            Some(&format!("m{i}")),
            &format!("message {i}"),
        );
        if i % 3 == 0 {
            m.direction = Direction::Outbound;
            m.author = Author::Agent {
                agent: AgentId::new(),
            };
            m.content = Content::Image {
                url: "https://cdn.example.com/a.png".into(),
                caption: Some("图片".into()),
            };
        }
        store.append_message(&m).await.unwrap();
        written.push(m);
    }
    let scope = MessageScope::Conversation(c.id);
    let first = store
        .messages(&MessageQuery::new(t.clone(), scope, 10))
        .await
        .unwrap();
    assert_eq!(first, written[..10], "first page, oldest first");
    let second = store
        .messages(&MessageQuery {
            after: Some(first[9].id),
            ..MessageQuery::new(t.clone(), scope, 10)
        })
        .await
        .unwrap();
    assert_eq!(
        second,
        written[10..20],
        "second page continues after the cursor"
    );

    store
        .set_delivery_status(&t, written[0].id, DeliveryStatus::Read)
        .await
        .unwrap();
    let page = store
        .messages(&MessageQuery::new(t.clone(), scope, 1))
        .await
        .unwrap();
    assert_eq!(page[0].status, DeliveryStatus::Read);
    assert!(matches!(
        store
            .set_delivery_status(&t, MessageId::new(), DeliveryStatus::Read)
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn history_spans_conversations(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c1 = conversation(store, &t, &ann).await;
    store
        .append_message(&message(&c1, "wechat-main", Some("w1"), "在吗"))
        .await
        .unwrap();
    let mut done = c1.clone();
    done.state = ConversationState::Resolved;
    store.update_conversation(&done).await.unwrap();
    let c2 = conversation(store, &t, &ann).await;
    assert_ne!(c1.id, c2.id);
    store
        .append_message(&message(&c2, "webchat", Some("a1"), "still waiting"))
        .await
        .unwrap();
    let history = store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Customer(ann.id),
            100,
        ))
        .await
        .unwrap();
    let texts: Vec<String> = history.iter().map(|m| m.content.plain_text()).collect();
    assert_eq!(
        texts,
        ["在吗", "still waiting"],
        "customer history spans conversations"
    );
}

async fn invalid_input_is_refused(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let err = store
        .append_message(&message(&c, "webchat", None, "   "))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "empty text: {err:?}"
    );
    let long_pid = "x".repeat(300);
    let err = store
        .append_message(&message(&c, "webchat", Some(&long_pid), "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "long provider id: {err:?}"
    );
    let mut orphan = message(&c, "webchat", None, "orphan");
    orphan.conversation = crate::ConversationId::new();
    let err = store.append_message(&orphan).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "unknown conversation: {err:?}"
    );
    let all = store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(c.id),
            100,
        ))
        .await
        .unwrap();
    assert!(all.is_empty(), "nothing was stored");
}

async fn conversation_queries_filter(store: &dyn ConversationStore) {
    let t = tenant();
    let agent = AgentId::new();
    let mut ids = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let cu = customer(store, &t, name).await;
        let mut c = conversation(store, &t, &cu).await;
        if i > 0 {
            c.state = ConversationState::Assigned;
            c.assignee = Some(agent);
        }
        c.updated_at = t0() + Duration::minutes(i as i64);
        ids.push(store.update_conversation(&c).await.unwrap().id);
    }
    let all = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[2], ids[1], ids[0]],
        "most recently updated first"
    );
    let mine = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            states: vec![ConversationState::Assigned],
            assignee: Some(agent),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1, "limit applies");
    assert_eq!(mine[0].id, ids[2]);
    let bot = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            states: vec![ConversationState::Bot, ConversationState::Queued],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bot.len(), 1);
    let by_customer = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            customer: Some(bot[0].customer),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_customer, bot);
}

async fn tenants_are_isolated(store: &dyn ConversationStore) {
    let (t1, t2) = (tenant(), tenant());
    let a = customer(store, &t1, "same-visitor").await;
    let b = customer(store, &t2, "same-visitor").await;
    assert_ne!(a.id, b.id, "one identity in two tenants is two customers");
    assert!(matches!(
        store.customer(&t2, a.id).await,
        Err(Error::NotFound { .. })
    ));
    let c = conversation(store, &t1, &a).await;
    assert!(matches!(
        store.conversation(&t2, c.id).await,
        Err(Error::NotFound { .. })
    ));
    store
        .append_message(&message(&c, "webchat", Some("x"), "hi"))
        .await
        .unwrap();
    let other = store
        .messages(&MessageQuery::new(
            t2.clone(),
            MessageScope::Customer(a.id),
            10,
        ))
        .await
        .unwrap();
    assert!(other.is_empty(), "no messages leak across tenants");
}

fn outbound(conv: &Conversation, text: &str, at: DateTime<Utc>) -> Message {
    Message {
        direction: Direction::Outbound,
        author: Author::Bot,
        created_at: at,
        ..message(conv, "webchat", None, text)
    }
}

fn claim(t: &TenantId, now: DateTime<Utc>) -> ClaimOutbound {
    ClaimOutbound {
        tenant: t.clone(),
        now,
        lease_until: now + Duration::seconds(30),
        conversation: None,
        limit: 100,
    }
}

async fn outbox_orders_retries_and_dead_letters(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let bob = customer(store, &t, "bob").await;
    let ca = conversation(store, &t, &ann).await;
    let cb = conversation(store, &t, &bob).await;
    let a1 = outbound(&ca, "a1", t0());
    let a2 = outbound(&ca, "a2", t0());
    let b1 = outbound(&cb, "b1", t0());
    for m in [&a1, &a2, &b1] {
        assert!(
            !store
                .append_outbound(m, &web("v1"))
                .await
                .unwrap()
                .is_duplicate()
        );
    }
    let stored = store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(ca.id),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        2,
        "outbound messages are stored before any send"
    );

    // One head per conversation, oldest first; claimed messages are not handed out twice.
    let first = store.claim_outbound(&claim(&t, t0())).await.unwrap();
    let ids: Vec<MessageId> = first.iter().map(|c| c.message.id).collect();
    assert_eq!(ids, [a1.id, b1.id], "a2 waits behind a1");
    assert_eq!(first[0].attempts, 0);
    assert_eq!(
        first[0].to,
        web("v1"),
        "the recipient is kept with the entry"
    );
    assert!(
        store
            .claim_outbound(&claim(&t, t0()))
            .await
            .unwrap()
            .is_empty(),
        "leased messages are not claimed again"
    );

    // a1 fails temporarily: it stays at the head, a2 still waits.
    store
        .finish_outbound(
            &t,
            a1.id,
            &Outcome::Retry {
                at: t0() + Duration::seconds(10),
                error: "503".into(),
            },
        )
        .await
        .unwrap();
    store
        .finish_outbound(
            &t,
            b1.id,
            &Outcome::Sent {
                status: DeliveryStatus::Sent,
                provider_id: Some("prov-b1".into()),
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_outbound(&claim(&t, t0() + Duration::seconds(5)))
            .await
            .unwrap()
            .is_empty(),
        "nothing is due before the retry time"
    );
    let retry = store
        .claim_outbound(&claim(&t, t0() + Duration::seconds(10)))
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].message.id, a1.id);
    assert_eq!(retry[0].attempts, 1, "the failed attempt was counted");

    // a1 fails for good: it becomes a dead letter and a2 moves up.
    store
        .finish_outbound(
            &t,
            a1.id,
            &Outcome::Dead {
                error: "400 invalid recipient".into(),
            },
        )
        .await
        .unwrap();
    let next = store
        .claim_outbound(&claim(&t, t0() + Duration::seconds(10)))
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        [a2.id]
    );
    let dead = store.dead_letters(&t, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, a1.id);
    assert_eq!(dead[0].message.status, DeliveryStatus::Failed);
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].error.contains("invalid recipient"));
    assert!(matches!(
        store
            .finish_outbound(
                &t,
                a1.id,
                &Outcome::Dead {
                    error: "again".into()
                }
            )
            .await,
        Err(Error::NotFound { .. })
    ));

    // A retried send of the same outbound message (same provider id) is not queued twice.
    let mut keyed = outbound(&cb, "keyed", t0());
    keyed.provider_message_id = Some("agent:x1".into());
    assert!(
        !store
            .append_outbound(&keyed, &web("v1"))
            .await
            .unwrap()
            .is_duplicate()
    );
    let mut again = outbound(&cb, "keyed", t0());
    again.provider_message_id = Some("agent:x1".into());
    assert!(
        store
            .append_outbound(&again, &web("v1"))
            .await
            .unwrap()
            .is_duplicate()
    );
    let due: Vec<MessageId> = store
        .claim_outbound(&ClaimOutbound {
            conversation: Some(cb.id),
            ..claim(&t, t0() + Duration::minutes(1))
        })
        .await
        .unwrap()
        .iter()
        .map(|c| c.message.id)
        .collect();
    assert_eq!(
        due,
        [keyed.id],
        "one outbox entry, filtered by conversation"
    );
}

async fn receipts_move_status_forward(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let m = outbound(&c, "hello", t0());
    store.append_outbound(&m, &web("v1")).await.unwrap();
    store.claim_outbound(&claim(&t, t0())).await.unwrap();
    store
        .finish_outbound(
            &t,
            m.id,
            &Outcome::Sent {
                status: DeliveryStatus::Sent,
                provider_id: Some("wamid.1".into()),
            },
        )
        .await
        .unwrap();
    let channel = ChannelId::new("webchat").unwrap();
    assert_eq!(status_of(store, &t, c.id).await, DeliveryStatus::Sent);
    let hit = store
        .apply_receipt(&t, &channel, "wamid.1", DeliveryStatus::Read)
        .await
        .unwrap();
    assert_eq!(hit, Some(m.id));
    assert_eq!(status_of(store, &t, c.id).await, DeliveryStatus::Read);
    store
        .apply_receipt(&t, &channel, "wamid.1", DeliveryStatus::Delivered)
        .await
        .unwrap();
    assert_eq!(
        status_of(store, &t, c.id).await,
        DeliveryStatus::Read,
        "a late receipt does not go back"
    );
    assert_eq!(
        store
            .apply_receipt(&t, &channel, "unknown", DeliveryStatus::Read)
            .await
            .unwrap(),
        None
    );
}

async fn status_of(
    store: &dyn ConversationStore,
    t: &TenantId,
    c: crate::ConversationId,
) -> DeliveryStatus {
    store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(c),
            1,
        ))
        .await
        .unwrap()[0]
        .status
}

async fn texts(store: &dyn ConversationStore, t: &TenantId, c: crate::CustomerId) -> Vec<String> {
    store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Customer(c),
            100,
        ))
        .await
        .unwrap()
        .iter()
        .map(|m| m.content.plain_text())
        .collect()
}

async fn merges_carry_history_and_can_be_undone(store: &dyn ConversationStore) {
    let t = tenant();
    // Ann wrote on WeChat, then (as "another" customer) by email; both are mid-conversation.
    let wechat = Identity::new(ChannelKind::WeChat, "openid-ann");
    let email = Identity::new(ChannelKind::Email, "ann@example.com");
    let ann = store
        .resolve_customer(&resolve_req(&t, wechat.clone()))
        .await
        .unwrap()
        .customer;
    let ann2 = store
        .resolve_customer(&resolve_req(&t, email.clone()))
        .await
        .unwrap()
        .customer;
    let c1 = conversation(store, &t, &ann).await;
    let c2 = conversation(store, &t, &ann2).await;
    store
        .append_message(&message(&c1, "wechat", Some("w1"), "在吗"))
        .await
        .unwrap();
    store
        .append_message(&message(&c2, "mail", Some("e1"), "order 1024?"))
        .await
        .unwrap();

    let by = LinkOrigin::Agent {
        agent: AgentId::new(),
    };
    let merge = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann.id,
            from: ann2.id,
            by: by.clone(),
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(merge.identities.len(), 1);
    assert_eq!(merge.identities[0].identity, email);
    assert_eq!(merge.identities[0].origin, LinkOrigin::FirstContact);
    assert_eq!(merge.conversations, [c2.id]);
    assert_eq!(
        merge.resolved,
        Some(c2.id),
        "two active conversations cannot stay active"
    );
    assert_eq!(
        store
            .resolve_customer(&resolve_req(&t, email.clone()))
            .await
            .unwrap()
            .customer
            .id,
        ann.id,
        "the email now resolves to Ann"
    );
    assert_eq!(
        texts(store, &t, ann.id).await,
        ["在吗", "order 1024?"],
        "one history"
    );
    assert!(texts(store, &t, ann2.id).await.is_empty());
    let links = store.identity_links(&t, ann.id).await.unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.identity == email && l.origin == LinkOrigin::Merge { merge: merge.id })
    );
    let c2_now = store.conversation(&t, c2.id).await.unwrap();
    assert_eq!(c2_now.state, ConversationState::Resolved);
    assert_eq!(c2_now.customer, ann.id);
    let active = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            states: vec![
                ConversationState::Bot,
                ConversationState::Queued,
                ConversationState::Assigned,
            ],
            customer: Some(ann.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 1, "Ann keeps exactly one active conversation");

    // Rules: no self-merge, no merging a merged-away customer, nothing changes on refusal.
    let err = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann.id,
            from: ann.id,
            by: by.clone(),
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let err = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann2.id,
            from: ann.id,
            by: by.clone(),
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

    // Written after the merge, in the moved conversation's successor (Ann's active one).
    store
        .append_message(&message(&c1, "wechat", Some("w2"), "还在吗"))
        .await
        .unwrap();

    // Undo: both are separate again and nothing is lost.
    let undone = store
        .unmerge(&t, merge.id, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert!(undone.undone_at.is_some());
    assert_eq!(texts(store, &t, ann.id).await, ["在吗", "还在吗"]);
    assert_eq!(texts(store, &t, ann2.id).await, ["order 1024?"]);
    assert_eq!(store.identities(&t, ann2.id).await.unwrap(), [email]);
    assert_eq!(
        store.identity_links(&t, ann2.id).await.unwrap()[0].origin,
        LinkOrigin::FirstContact,
        "the original origin comes back"
    );
    assert_eq!(store.identities(&t, ann.id).await.unwrap(), [wechat]);
    assert_eq!(
        store.conversation(&t, c2.id).await.unwrap().customer,
        ann2.id
    );
    assert!(matches!(
        store.unmerge(&t, merge.id, t0()).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store.unmerge(&t, crate::MergeId::new(), t0()).await,
        Err(Error::NotFound { .. })
    ));
    let history = store.merges(&t, ann2.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].by, by);
    assert!(history[0].undone_at.is_some());

    // After the undo they can be merged again.
    store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann.id,
            from: ann2.id,
            by,
            at: t0(),
        })
        .await
        .expect("a merge can be redone after an undo");
}
