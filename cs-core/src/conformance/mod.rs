//! The conformance suite every [`ConversationStore`] implementation runs (feature `conformance`),
//! as object_store's `integration.rs`: each check is its own public function over
//! `&dyn ConversationStore`, so an implementation's tests can call the ones it supports, and
//! [`run`] calls them all.
//!
//! Every check works in its own random tenant, so a database shared between runs (PostgreSQL in
//! CI) needs no cleaning. The checks panic with a message naming the rule that broke.

pub mod bus;
mod conversations;
mod customers;
mod outbox;

use chrono::{DateTime, Duration, TimeZone, Utc};

pub use conversations::{
    bot_state_round_trips, conversation_queries_filter, history_spans_conversations,
    invalid_input_is_refused, late_retries_open_nothing, messages_deduplicate,
    messages_page_in_order, one_active_conversation, optimistic_versions,
    recent_messages_newest_first, tenants_are_isolated, updates_retry_after_conflicts,
};
pub use customers::{
    customer_profile_updates, customers_resolve_once, identities_link_and_conflict,
    known_identities_record_their_key, link_suggestions_follow_merges,
    merges_carry_history_and_can_be_undone, shared_keys_join_only_when_both_prove,
};
pub use outbox::{
    claims_of_a_dead_node_are_released, outbox_claims_in_one_write,
    outbox_orders_retries_and_dead_letters, receipts_move_status_forward,
};

use crate::channel::{ChannelKind, Identity, Route};
use crate::conversation::{Conversation, Priority};
use crate::customer::Customer;
use crate::id::{ChannelId, MessageId, TenantId};
use crate::message::{Author, Content, DeliveryStatus, Direction, Message};
use crate::store::{
    ClaimOutbound, ConversationStore, MessageQuery, MessageScope, OpenConversation, ResolveCustomer,
};

/// Runs every check against `store`.
pub async fn run(store: &dyn ConversationStore) {
    customers_resolve_once(store).await;
    identities_link_and_conflict(store).await;
    customer_profile_updates(store).await;
    shared_keys_join_only_when_both_prove(store).await;
    known_identities_record_their_key(store).await;
    link_suggestions_follow_merges(store).await;
    merges_carry_history_and_can_be_undone(store).await;
    one_active_conversation(store).await;
    optimistic_versions(store).await;
    updates_retry_after_conflicts(store).await;
    messages_deduplicate(store).await;
    late_retries_open_nothing(store).await;
    messages_page_in_order(store).await;
    recent_messages_newest_first(store).await;
    history_spans_conversations(store).await;
    invalid_input_is_refused(store).await;
    conversation_queries_filter(store).await;
    tenants_are_isolated(store).await;
    bot_state_round_trips(store).await;
    outbox_orders_retries_and_dead_letters(store).await;
    receipts_move_status_forward(store).await;
    claims_of_a_dead_node_are_released(store).await;
    outbox_claims_in_one_write(store).await;
}

/// The PostgreSQL database of the conformance tests (`CS_TEST_POSTGRES_URL`, feature
/// `postgres`), with a fresh schema named `{prefix}_{random}` first on the search path and
/// `public` second: runs of different builds sharing one database (CI's is shared) never meet,
/// and a schema left at a newer version by another build can never fail this one. Schemas of the
/// same prefix older than an hour (runs that panicked before cleaning up) are dropped on the way.
/// `None` when the variable is unset (the caller skips, with a notice).
///
/// # Panics
/// When the database is out of reach or refuses the schema.
#[cfg(feature = "postgres")]
pub async fn postgres_url(prefix: &str) -> Option<String> {
    use sqlx::Connection;

    let url = std::env::var("CS_TEST_POSTGRES_URL").ok()?;
    assert!(
        !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "a plain schema name"
    );
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("CS_TEST_POSTGRES_URL reachable");
    let now = Utc::now().timestamp();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; COMMENT ON SCHEMA {schema} IS 'omnidesk test {now}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("create schema {schema}: {e}"));
    // Best effort: another run may be dropping the same stale schema.
    let stale: Vec<(String,)> = sqlx::query_as(
        "SELECT nspname::text FROM pg_namespace \
         WHERE starts_with(nspname::text, $1) \
           AND obj_description(oid, 'pg_namespace') LIKE 'omnidesk test %' \
           AND split_part(obj_description(oid, 'pg_namespace'), ' ', 3)::bigint < $2",
    )
    .bind(format!("{prefix}_"))
    .bind(now - 3600)
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    for (old,) in stale {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{old}\" CASCADE"))
            .execute(&mut conn)
            .await;
    }
    // Extensions are per database and land in the first schema of the search path that creates
    // them: create the ones our migrations use (the tickets' pg_trgm) where every schema sees
    // them. Best effort: a concurrent run may win the race.
    let _ = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .execute(&mut conn)
        .await;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{sep}options%5Bsearch_path%5D={schema}%2Cpublic"
    ))
}

/// Runs `calls` at once (interleaved on this task; a SQL store gives each its own connection, so
/// they race in the database) and returns their results in order.
pub(super) async fn all_at_once<T>(
    calls: impl IntoIterator<Item = impl std::future::Future<Output = T>>,
) -> Vec<T> {
    futures::future::join_all(calls).await
}

pub(super) fn tenant() -> TenantId {
    TenantId::new(format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 8, 0, 0).unwrap()
}

pub(super) fn web(id: &str) -> Identity {
    Identity::new(ChannelKind::WebChat, id)
}

pub(super) fn resolve_req(tenant: &TenantId, identity: Identity) -> ResolveCustomer {
    ResolveCustomer::new(tenant.clone(), identity, t0())
        .with_display_name("Ann")
        .with_language("zh-CN")
}

pub(super) async fn customer(
    store: &dyn ConversationStore,
    tenant: &TenantId,
    id: &str,
) -> Customer {
    store
        .resolve_customer(&resolve_req(tenant, web(id)))
        .await
        .expect("resolve_customer")
        .customer
}

pub(super) fn open_req(tenant: &TenantId, c: &Customer) -> OpenConversation {
    OpenConversation {
        tenant: tenant.clone(),
        customer: c.id,
        route: Route {
            channel: ChannelId::new("webchat").unwrap(),
            identity: web("v1"),
        },
        priority: Priority::Normal,
        at: t0(),
        unless_stored: None,
    }
}

pub(super) async fn conversation(
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

pub(super) fn message(
    conv: &Conversation,
    channel: &str,
    pid: Option<&str>,
    text: &str,
) -> Message {
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

pub(super) fn outbound(conv: &Conversation, text: &str, at: DateTime<Utc>) -> Message {
    Message {
        direction: Direction::Outbound,
        author: Author::Bot,
        created_at: at,
        ..message(conv, "webchat", None, text)
    }
}

pub(super) fn claim(t: &TenantId, now: DateTime<Utc>) -> ClaimOutbound {
    ClaimOutbound {
        tenant: t.clone(),
        now,
        lease_until: now + Duration::seconds(30),
        conversation: None,
        limit: 100,
        owner: None,
    }
}

pub(super) async fn status_of(
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

pub(super) async fn texts(
    store: &dyn ConversationStore,
    t: &TenantId,
    c: crate::CustomerId,
) -> Vec<String> {
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
