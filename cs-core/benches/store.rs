#![allow(missing_docs)]
//! The conversation store on the message path, on SQLite (and PostgreSQL when
//! `CS_TEST_POSTGRES_URL` is set, in a schema of its own), against a bare `INSERT` of a
//! message-sized row on the same database in the same run (the baseline):
//!
//! - `resolve_known`: a known identity (every inbound message);
//! - `resolve_new`: a first contact; `resolve_new_phone`: one with a phone key (the SMS case);
//! - `open_existing`: the customer's active conversation (every inbound message);
//! - `append`: an inbound message with a provider id; `append_duplicate`: a provider retry;
//! - `recent_20_of_1000`: the bot's history, the last 20 of a 1,000-message conversation;
//! - `turn`: the writes of one message the bot answers (the message, the answer into the outbox,
//!   its claim, its delivery recorded); `turns_x64`: 64 such turns at once, from 64 customers
//!   (what group commit batches).
//!
//! SQLite runs twice in the same run: `store_sqlite` (group commit: one writer thread, many writes
//! per transaction) and `store_sqlite_pool` (each write its own transaction through `sqlx`'s
//! single-connection pool, as before group commit), so the two compare within one run.
//!
//! ```text
//! cargo bench -p cs-core --all-features --bench store
//! ```

use std::cell::Cell;
use std::time::Duration;

use chrono::Utc;
use criterion::Criterion;
use cs_core::store::{
    ClaimOutbound, ConversationLogExt, ConversationStore, FinishOutbound, MessageQuery,
    MessageScope, OpenConversation, Outcome, ResolveCustomer,
};
use cs_core::{
    Author, ChannelId, ChannelKind, Content, Conversation, DeliveryStatus, Direction, Identity,
    Message, MessageId, Priority, Route, SharedKey, TenantId,
};
use tokio::runtime::Runtime;

fn tenant() -> TenantId {
    TenantId::new(format!("bench-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

fn message(c: &Conversation, pid: Option<String>) -> Message {
    Message {
        id: MessageId::new(),
        tenant: c.tenant.clone(),
        conversation: c.id,
        customer: c.customer,
        channel: c.route.channel.clone(),
        channel_kind: ChannelKind::WebChat,
        direction: Direction::Inbound,
        author: Author::Customer,
        content: Content::text("When will my order ship? 我的订单什么时候发货？"),
        provider_message_id: pid,
        status: DeliveryStatus::Delivered,
        created_at: Utc::now(),
    }
}

fn resolve(t: &TenantId, identity: Identity) -> ResolveCustomer {
    ResolveCustomer::new(t.clone(), identity, Utc::now())
}

fn bench_store(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: &dyn ConversationStore,
    raw: &dyn Fn(usize),
) {
    let mut g = c.benchmark_group(name);
    let n = Cell::new(0usize);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    g.bench_function("raw_insert", |b| b.iter(|| raw(next())));
    let t = tenant();
    let web = Identity::new(ChannelKind::WebChat, "known-visitor");
    let customer = rt
        .block_on(store.resolve_customer(&resolve(&t, web.clone())))
        .unwrap()
        .customer;
    g.bench_function("resolve_known", |b| {
        b.iter(|| rt.block_on(store.resolve_customer(&resolve(&t, web.clone()))))
    });
    g.bench_function("resolve_new", |b| {
        b.iter(|| {
            let id = Identity::new(ChannelKind::WebChat, format!("v{}", next()));
            rt.block_on(store.resolve_customer(&resolve(&t, id)))
        })
    });
    g.bench_function("resolve_new_phone", |b| {
        b.iter(|| {
            let number = format!("+86138{:08}", next());
            let key = SharedKey::phone(&number, false).unwrap();
            let id = Identity::new(ChannelKind::Sms, number);
            rt.block_on(store.resolve_customer(&resolve(&t, id).with_shared_key(key)))
        })
    });
    let open = OpenConversation {
        tenant: t.clone(),
        customer: customer.id,
        route: Route {
            channel: ChannelId::new("webchat").unwrap(),
            identity: web,
        },
        priority: Priority::Normal,
        at: Utc::now(),
        unless_stored: None,
    };
    let conv = rt
        .block_on(store.open_conversation(&open))
        .unwrap()
        .conversation;
    g.bench_function("open_existing", |b| {
        b.iter(|| rt.block_on(store.open_conversation(&open)))
    });
    g.bench_function("append", |b| {
        b.iter(|| rt.block_on(store.append_message(&message(&conv, Some(format!("p{}", next()))))))
    });
    let dup = message(&conv, Some("dup".into()));
    rt.block_on(store.append_message(&dup)).unwrap();
    g.bench_function("append_duplicate", |b| {
        b.iter(|| rt.block_on(store.append_message(&message(&conv, Some("dup".into())))))
    });
    let long = rt
        .block_on(async {
            let who = resolve(&t, Identity::new(ChannelKind::WebChat, "chatty"));
            let customer = store.resolve_customer(&who).await?.customer;
            let conv = store
                .open_conversation(&OpenConversation {
                    customer: customer.id,
                    ..open.clone()
                })
                .await?
                .conversation;
            for _ in 0..1_000 {
                store.append_message(&message(&conv, None)).await?;
            }
            Ok::<_, cs_core::Error>(conv)
        })
        .unwrap();
    let last20 = MessageQuery::new(t.clone(), MessageScope::Conversation(long.id), 20);
    g.bench_function("recent_20_of_1000", |b| {
        b.iter(|| rt.block_on(store.recent_messages(&last20)).unwrap())
    });
    g.bench_function("turn", |b| {
        b.iter(|| rt.block_on(turn(store, &conv, next())).unwrap())
    });
    let many: Vec<Conversation> = rt
        .block_on(async {
            let mut out = Vec::new();
            for i in 0..64 {
                let who = resolve(&t, Identity::new(ChannelKind::WebChat, format!("many{i}")));
                let customer = store.resolve_customer(&who).await?.customer;
                out.push(
                    store
                        .open_conversation(&OpenConversation {
                            customer: customer.id,
                            ..open.clone()
                        })
                        .await?
                        .conversation,
                );
            }
            Ok::<_, cs_core::Error>(out)
        })
        .unwrap();
    g.bench_function("turns_x64", |b| {
        b.iter(|| {
            rt.block_on(futures::future::try_join_all(
                many.iter().map(|conv| turn(store, conv, next())),
            ))
            .unwrap()
        })
    });
    g.finish();
}

/// The store's part of one message the bot answers: the customer's message, the answer stored
/// into the outbox, claimed and recorded as sent.
async fn turn(store: &dyn ConversationStore, conv: &Conversation, n: usize) -> cs_core::Result<()> {
    store
        .append_message(&message(conv, Some(format!("t{n}"))))
        .await?;
    let answer = Message {
        direction: Direction::Outbound,
        author: Author::Bot,
        provider_message_id: None,
        status: DeliveryStatus::Pending,
        ..message(conv, None)
    };
    store.append_outbound(&answer, &conv.route.identity).await?;
    let now = Utc::now();
    let claimed = store
        .claim_outbound(&ClaimOutbound {
            tenant: conv.tenant.clone(),
            now,
            lease_until: now + chrono::Duration::seconds(30),
            conversation: Some(conv.id),
            limit: 64,
            owner: Some("bench".into()),
        })
        .await?;
    for c in claimed {
        store
            .finish_outbound(&FinishOutbound {
                tenant: conv.tenant.clone(),
                message: c.message.id,
                outcome: Outcome::Sent {
                    status: DeliveryStatus::Sent,
                    provider_id: None,
                },
            })
            .await?;
    }
    Ok(())
}

fn sqlite(c: &mut Criterion, rt: &Runtime, group_commit: bool) {
    let dir = std::env::temp_dir().join(format!("cs-core-bench-{}", uuid::Uuid::new_v4()));
    let store = rt
        .block_on(
            cs_core::store::SqliteStoreBuilder::new(dir.join("store.db"))
                .with_group_commit(group_commit)
                .build(),
        )
        .unwrap();
    let pool = store.writer().clone();
    rt.block_on(
        sqlx::raw_sql(
            "CREATE TABLE bench_raw (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                created_at INTEGER NOT NULL, PRIMARY KEY (tenant, id))",
        )
        .execute(&pool),
    )
    .unwrap();
    let raw = |i: usize| {
        rt.block_on(
            sqlx::query(
                "INSERT INTO bench_raw (tenant, id, body, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind("bench")
            .bind(format!("{i:020}"))
            .bind("When will my order ship? 我的订单什么时候发货？")
            .bind(Utc::now().timestamp_micros())
            .execute(&pool),
        )
        .unwrap();
    };
    let name = if group_commit {
        "store_sqlite"
    } else {
        "store_sqlite_pool"
    };
    bench_store(c, rt, name, &store, &raw);
    std::fs::remove_dir_all(dir).ok();
}

fn postgres(c: &mut Criterion, rt: &Runtime) {
    let Ok(url) = std::env::var("CS_TEST_POSTGRES_URL") else {
        eprintln!("skipping the PostgreSQL benches: set CS_TEST_POSTGRES_URL to run them");
        return;
    };
    // A fresh schema of its own, dropped at the end: the bench never migrates tables other
    // builds use, and every run starts from the same empty tables.
    let schema = format!("cs_core_store_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = rt
        .block_on(sqlx::PgPool::connect(&url))
        .expect("CS_TEST_POSTGRES_URL reachable");
    rt.block_on(
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.bench_raw (tenant TEXT NOT NULL, id TEXT NOT NULL,
                body TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (tenant, id))"
        ))
        .execute(&admin),
    )
    .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options%5Bsearch_path%5D={schema}%2Cpublic");
    let store = rt
        .block_on(cs_core::store::PostgresStore::connect(&url))
        .unwrap();
    let pool = store.pool().clone();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let raw = |i: usize| {
        rt.block_on(
            sqlx::query(
                "INSERT INTO bench_raw (tenant, id, body, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&run)
            .bind(format!("{i:020}"))
            .bind("When will my order ship? 我的订单什么时候发货？")
            .bind(Utc::now().timestamp_micros())
            .execute(&pool),
        )
        .unwrap();
    };
    bench_store(c, rt, "store_postgres", &store, &raw);
    rt.block_on(store.pool().close());
    rt.block_on(sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin))
        .unwrap();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = Runtime::new().unwrap();
    sqlite(&mut c, &rt, false);
    sqlite(&mut c, &rt, true);
    postgres(&mut c, &rt);
    c.final_summary();
}
