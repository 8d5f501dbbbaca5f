//! Checks of [`crate::store::ConversationLog`] and its conveniences.

use chrono::Duration;

use super::{all_at_once, conversation, customer, message, open_req, t0, tenant};
use crate::channel::{ChannelKind, Identity, Route};
use crate::conversation::{ConversationState, Priority};
use crate::error::Error;
use crate::id::{AgentId, ChannelId, MessageId};
use crate::message::{Author, Content, DeliveryStatus, Direction, Message};
use crate::store::{
    ConversationLogExt, ConversationQuery, ConversationStore, MessageQuery, MessageScope,
    OpenConversation, StatusChange,
};

/// A customer has at most one active conversation, also under concurrent opens.
pub async fn one_active_conversation(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
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
    let bob = customer(store, &t, "bob").await;
    let req = open_req(&t, &bob);
    let opened = all_at_once((0..16).map(|_| store.open_conversation(&req))).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for o in opened {
        let o = o.unwrap();
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

/// A conversation update based on a stale version is a (temporary) conflict.
pub async fn optimistic_versions(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let agent = AgentId::new();

    let mut a = c.clone();
    a.state = ConversationState::Queued;
    a.priority = Priority::High;
    a.skills = vec!["refunds".into()];
    a.updated_at = t0() + Duration::seconds(5);
    a.queued_at = Some(t0() + Duration::seconds(5));
    let saved = store.update_conversation(&a).await.unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(
        store.conversation(&t, c.id).await.unwrap(),
        saved,
        "every field round-trips, the time it started waiting included"
    );
    assert_eq!(saved.queued_at, Some(t0() + Duration::seconds(5)));

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

/// A provider retry that arrives after the customer's conversation ended opens nothing: the
/// stored message and its conversation are returned instead.
pub async fn late_retries_open_nothing(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let first = message(&c, "webchat", Some("late-1"), "hello");
    store.append_message(&first).await.unwrap();
    let mut ended = store.conversation(&t, c.id).await.unwrap();
    ended.state = ConversationState::Resolved;
    store.update_conversation(&ended).await.unwrap();

    let mut req = open_req(&t, &ann);
    req.unless_stored = Some((ChannelId::new("webchat").unwrap(), "late-1".into()));
    let opened = store.open_conversation(&req).await.unwrap();
    assert!(!opened.created);
    assert_eq!(opened.duplicate.as_ref().map(|m| m.id), Some(first.id));
    assert_eq!(opened.conversation.id, c.id);
    let active = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            states: vec![ConversationState::Bot],
            customer: Some(ann.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(active.is_empty(), "nothing was opened");

    // A new message does open a new conversation.
    req.unless_stored = Some((ChannelId::new("webchat").unwrap(), "late-2".into()));
    let opened = store.open_conversation(&req).await.unwrap();
    assert!(opened.created && opened.duplicate.is_none());
}

/// A provider message is stored once per channel, also under concurrent deliveries.
pub async fn messages_deduplicate(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;

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
    let racers: Vec<Message> = (0..16)
        .map(|_| message(&c, "webchat", Some("p-race"), "race"))
        .collect();
    let mut inserted = 0;
    for a in all_at_once(racers.iter().map(|m| store.append_message(m))).await {
        inserted += usize::from(!a.unwrap().is_duplicate());
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

/// Messages read back exactly as written, oldest first, page by page; delivery status can be set.
pub async fn messages_page_in_order(store: &dyn ConversationStore) {
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

    let read = |message| StatusChange {
        tenant: t.clone(),
        message,
        status: DeliveryStatus::Read,
    };
    store
        .set_delivery_status(&read(written[0].id))
        .await
        .unwrap();
    let page = store
        .messages(&MessageQuery::new(t.clone(), scope, 1))
        .await
        .unwrap();
    assert_eq!(page[0].status, DeliveryStatus::Read);
    assert!(matches!(
        store.set_delivery_status(&read(MessageId::new())).await,
        Err(Error::NotFound { .. })
    ));
}

/// A customer's history spans their conversations.
pub async fn history_spans_conversations(store: &dyn ConversationStore) {
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

/// Invalid messages and messages of unknown conversations are refused and store nothing.
pub async fn invalid_input_is_refused(store: &dyn ConversationStore) {
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

/// Conversation lists filter by state, assignee and customer, most recently updated first.
pub async fn conversation_queries_filter(store: &dyn ConversationStore) {
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

/// Nothing is shared across tenants.
pub async fn tenants_are_isolated(store: &dyn ConversationStore) {
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

/// The latest messages come in one newest-first query, page back with `before`, can leave out
/// internal notes; `recent_messages` returns the newest ones oldest first, `page_all` everything.
pub async fn recent_messages_newest_first(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c1 = conversation(store, &t, &ann).await;
    let mut written = Vec::new();
    for i in 0..12 {
        let mut m = message(&c1, "webchat", Some(&format!("r{i}")), &format!("m{i}"));
        if i % 4 == 3 {
            m.direction = Direction::Internal;
            m.author = Author::System;
        }
        store.append_message(&m).await.unwrap();
        written.push(m);
    }
    let scope = MessageScope::Conversation(c1.id);
    let newest = store
        .messages(&MessageQuery::new(t.clone(), scope, 5).newest_first())
        .await
        .unwrap();
    let expected: Vec<Message> = written[7..].iter().rev().cloned().collect();
    assert_eq!(newest, expected, "newest first, limited");
    let older = store
        .messages(
            &MessageQuery::new(t.clone(), scope, 5)
                .newest_first()
                .before(newest[4].id),
        )
        .await
        .unwrap();
    let expected: Vec<Message> = written[2..7].iter().rev().cloned().collect();
    assert_eq!(older, expected, "the page before the cursor");
    let window = store
        .messages(
            &MessageQuery::new(t.clone(), scope, 100)
                .after(written[2].id)
                .before(written[6].id),
        )
        .await
        .unwrap();
    assert_eq!(window, written[3..6], "between two cursors");
    let recent = store
        .recent_messages(&MessageQuery::new(t.clone(), scope, 5))
        .await
        .unwrap();
    assert_eq!(recent, written[7..], "the newest five, oldest first");
    let everything = store
        .recent_messages(&MessageQuery::new(t.clone(), scope, 50))
        .await
        .unwrap();
    assert_eq!(everything, written, "a limit above the count gives all");

    // Across conversations, without internal notes: what the customer sees.
    let mut done = c1.clone();
    done.state = ConversationState::Resolved;
    store.update_conversation(&done).await.unwrap();
    let c2 = conversation(store, &t, &ann).await;
    let later = message(&c2, "webchat", Some("r-later"), "later");
    store.append_message(&later).await.unwrap();
    let visible = store
        .recent_messages(
            &MessageQuery::new(t.clone(), MessageScope::Customer(ann.id), 4)
                .with_directions([Direction::Inbound, Direction::Outbound]),
        )
        .await
        .unwrap();
    let texts: Vec<String> = visible.iter().map(|m| m.content.plain_text()).collect();
    assert_eq!(texts, ["m8", "m9", "m10", "later"], "no internal notes");

    let paged = store
        .page_all(&MessageQuery::new(t.clone(), scope, 5))
        .await
        .unwrap();
    assert_eq!(paged, written, "page_all reads every page");
    let backwards = store
        .page_all(&MessageQuery::new(t.clone(), scope, 5).newest_first())
        .await
        .unwrap();
    let expected: Vec<Message> = written.iter().rev().cloned().collect();
    assert_eq!(backwards, expected, "page_all pages back newest first");
}

/// `update_conversation_with_retry` applies a change on a fresh read and stamps the time;
/// concurrent writers each retry after a conflict and none loses its change.
pub async fn updates_retry_after_conflicts(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let at = t0() + Duration::minutes(1);
    let saved = store
        .update_conversation_with_retry(&t, c.id, at, |c| c.priority = Priority::High)
        .await
        .unwrap();
    assert_eq!(saved.priority, Priority::High);
    assert_eq!(saved.updated_at, at, "the change is stamped");
    assert_eq!(saved.version, c.version + 1);
    assert_eq!(store.conversation(&t, c.id).await.unwrap(), saved);

    let skills = ["a", "b", "c", "d"];
    let writers = skills.iter().map(|skill| {
        store.update_conversation_with_retry(&t, c.id, at, move |c| {
            c.skills.push((*skill).to_owned());
        })
    });
    for r in all_at_once(writers).await {
        r.expect("a writer that lost a race retries");
    }
    let mut stored = store.conversation(&t, c.id).await.unwrap();
    stored.skills.sort();
    assert_eq!(stored.skills, skills, "no concurrent change is lost");
    assert_eq!(stored.version, saved.version + 4);

    let err = store
        .update_conversation_with_retry(&t, crate::ConversationId::new(), at, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// The bot's dialogue state of a conversation is saved, replaced, read back only in its own
/// tenant, and deleted.
pub async fn bot_state_round_trips(store: &dyn ConversationStore) {
    let (t1, t2) = (tenant(), tenant());
    let a = customer(store, &t1, "bot-state").await;
    let c = conversation(store, &t1, &a).await;
    assert_eq!(store.bot_state(&t1, c.id).await.unwrap(), None);
    let first = serde_json::json!({ "pending": { "Order": { "intent": "refund" } }, "zh": true });
    store.save_bot_state(&t1, c.id, Some(&first)).await.unwrap();
    assert_eq!(store.bot_state(&t1, c.id).await.unwrap(), Some(first));
    let second = serde_json::json!({ "pending": null, "slots": { "order_id": "A123" } });
    store
        .save_bot_state(&t1, c.id, Some(&second))
        .await
        .unwrap();
    assert_eq!(
        store.bot_state(&t1, c.id).await.unwrap(),
        Some(second.clone()),
        "a save replaces the last state"
    );
    assert_eq!(
        store.bot_state(&t2, c.id).await.unwrap(),
        None,
        "another tenant reads nothing"
    );
    store.save_bot_state(&t1, c.id, None).await.unwrap();
    assert_eq!(store.bot_state(&t1, c.id).await.unwrap(), None);
    // Deleting what is not there is fine.
    store.save_bot_state(&t1, c.id, None).await.unwrap();
}
