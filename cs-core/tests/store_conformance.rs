//! Runs the conversation-store conformance suite against every backend in this crate: memory,
//! SQLite (a file and `:memory:`), and PostgreSQL when `CS_TEST_POSTGRES_URL` is set (in a schema
//! of its own, so runs sharing the database never see each other's tables).

use cs_core::conformance;
use cs_core::store::MemoryStore;

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_file_store_conforms() {
    let dir = std::env::temp_dir().join(format!("cs-core-test-{}", uuid::Uuid::new_v4()));
    let store = cs_core::store::SqliteStore::open(dir.join("store.db"))
        .await
        .unwrap();
    conformance::run(&store).await;
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_without_group_commit_conforms() {
    let dir = std::env::temp_dir().join(format!("cs-core-test-{}", uuid::Uuid::new_v4()));
    let store = cs_core::store::SqliteStoreBuilder::new(dir.join("store.db"))
        .with_group_commit(false)
        .build()
        .await
        .unwrap();
    conformance::run(&store).await;
    std::fs::remove_dir_all(dir).ok();
}

/// Many writes at once share transactions on the writer thread; each fails or succeeds alone:
/// a duplicate in the same batch is a duplicate, a write naming a missing conversation fails
/// without taking its batch with it, and every acknowledged write is there after a reopen.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commit_isolates_each_write() {
    use std::sync::Arc;

    use cs_core::store::{
        Appended, ConversationLog, CustomerStore, MessageQuery, MessageScope, OpenConversation,
        ResolveCustomer,
    };
    use cs_core::{
        Author, ChannelId, ChannelKind, Content, ConversationId, DeliveryStatus, Direction,
        Identity, Message, MessageId, Route, TenantId,
    };

    let dir = std::env::temp_dir().join(format!("cs-core-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("group.db");
    let store = Arc::new(
        cs_core::store::SqliteStoreBuilder::new(&path)
            .with_durability(cs_core::sql::sqlite::Durability::Full)
            .build()
            .await
            .unwrap(),
    );
    let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(store.writer())
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    let t = TenantId::default();
    let web = Identity::new(ChannelKind::WebChat, "v1");
    let now = chrono::Utc::now();
    let customer = store
        .resolve_customer(&ResolveCustomer::new(t.clone(), web.clone(), now))
        .await
        .unwrap()
        .customer;
    let route = Route {
        channel: ChannelId::new("webchat").unwrap(),
        identity: web,
    };
    let conv = store
        .open_conversation(&OpenConversation::new(t.clone(), customer.id, route, now))
        .await
        .unwrap()
        .conversation;
    let message = |conversation: ConversationId, pid: String| Message {
        id: MessageId::new(),
        tenant: t.clone(),
        conversation,
        customer: customer.id,
        channel: ChannelId::new("webchat").unwrap(),
        channel_kind: ChannelKind::WebChat,
        direction: Direction::Inbound,
        author: Author::Customer,
        content: Content::text("hi"),
        provider_message_id: Some(pid),
        status: DeliveryStatus::Delivered,
        created_at: now,
    };
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (store, m) = match i % 3 {
            0 => (store.clone(), message(conv.id, format!("unique-{i}"))),
            1 => (store.clone(), message(conv.id, "same".into())),
            _ => (
                store.clone(),
                message(ConversationId::new(), format!("lost-{i}")),
            ),
        };
        tasks.push(tokio::spawn(async move { store.append_message(&m).await }));
    }
    let (mut inserted, mut duplicates, mut missing) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(Appended::Inserted(_)) => inserted += 1,
            Ok(Appended::Duplicate(m)) => {
                assert_eq!(m.provider_message_id.as_deref(), Some("same"));
                duplicates += 1;
            }
            Err(cs_core::Error::NotFound { .. }) => missing += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((inserted, duplicates, missing), (101, 99, 100));
    drop(store);
    let reopened = cs_core::store::SqliteStore::open(&path).await.unwrap();
    let stored = reopened
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(conv.id),
            1_000,
        ))
        .await
        .unwrap();
    assert_eq!(stored.len(), 101, "every acknowledged write, once");
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_memory_store_conforms() {
    let store = cs_core::store::SqliteStore::open(":memory:").await.unwrap();
    conformance::run(&store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_survives_reopen_and_refuses_newer_schema() {
    use cs_core::store::{CustomerStore, ResolveCustomer};
    use cs_core::{ChannelKind, Identity, TenantId};

    let dir = std::env::temp_dir().join(format!("cs-core-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("reopen.db");
    let req = ResolveCustomer::new(
        TenantId::default(),
        Identity::new(ChannelKind::Sms, "+8613800138000"),
        chrono::Utc::now(),
    );
    let id = {
        let store = cs_core::store::SqliteStore::open(&path).await.unwrap();
        store.resolve_customer(&req).await.unwrap().customer.id
    };
    let store = cs_core::store::SqliteStore::open(&path).await.unwrap();
    let again = store.resolve_customer(&req).await.unwrap();
    assert!(!again.created, "data survives a reopen");
    assert_eq!(again.customer.id, id);

    sqlx::query("INSERT INTO cs_schema_migrations (component, version, name) VALUES ('conversations', 99, 'future')")
        .execute(store.writer())
        .await
        .unwrap();
    drop(store);
    let err = cs_core::store::SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, cs_core::Error::InvalidInput { .. }),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_conforms() {
    let Some(url) = conformance::postgres_url("cs_core_conformance").await else {
        eprintln!("skipping postgres_store_conforms: set CS_TEST_POSTGRES_URL to run it");
        return;
    };
    let store = cs_core::store::PostgresStore::connect(&url).await.unwrap();
    conformance::run(&store).await;
}
