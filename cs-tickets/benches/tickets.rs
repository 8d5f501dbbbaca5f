//! Ticket store throughput on each SQL backend against the raw insert rate of the same database.
//!
//! `raw_insert` is a bare `INSERT` of a row about the size of a ticket (autocommit), measured in
//! the same run as `create` (number, ticket row, first comment, audit entry, full-text index, in
//! one transaction), `update` (a versioned tag change with its audit entry), and searches over
//! 500 tickets: full text (a Chinese word of two characters, an English phrase) and by status.
//!
//! ```text
//! cargo bench -p cs-tickets --all-features --bench tickets
//! CS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p cs-tickets --all-features --bench tickets
//! ```

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::Criterion;
use cs_core::{AgentId, TenantId};
use cs_tickets::{
    Actor, NewTicket, PostgresTicketStoreBuilder, SqliteTicketStoreBuilder, TicketPatch,
    TicketQuery, TicketStatus, TicketStore, UpdateTicket, conformance,
};
use tokio::runtime::Runtime;

const SUBJECT: &str = "快递三天没有更新 parcel has not moved for three days";
const BODY: &str = "您好，我的订单 SO-20261111-0042 显示已发货，但物流信息三天没有更新。\
                    Hello, my order shows shipped but tracking has not changed for three days.";
const SEED: usize = 500;

/// One raw insert, numbered.
type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

fn tenant() -> TenantId {
    TenantId::new(format!("bench-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

fn new_ticket(tenant: &TenantId, i: usize) -> NewTicket {
    let mut t = NewTicket::new(
        tenant.clone(),
        format!("{SUBJECT} #{i}"),
        Actor::Agent {
            agent: AgentId::new(),
        },
        Utc::now(),
    );
    t.description = Some(BODY.into());
    t
}

/// The store operations, the same for every backend.
fn bench_store(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: Arc<dyn TicketStore>,
    raw: impl Fn(usize) -> BoxFut,
) {
    let mut g = c.benchmark_group(name);
    let n = Cell::new(0usize);
    g.bench_function("raw_insert", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            rt.block_on(raw(n.get()))
        })
    });
    let t = tenant();
    g.bench_function("create", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            rt.block_on(store.create(new_ticket(&t, n.get()))).unwrap()
        })
    });
    let ticket = rt.block_on(store.create(new_ticket(&t, 0))).unwrap();
    let version = Cell::new(ticket.version);
    g.bench_function("update", |b| {
        b.iter(|| {
            let v = version.get();
            let mut patch = TicketPatch::default();
            if v.is_multiple_of(2) {
                patch.add_tags = vec!["vip".into()];
            } else {
                patch.remove_tags = vec!["vip".into()];
            }
            let done = rt
                .block_on(store.update(UpdateTicket {
                    tenant: t.clone(),
                    id: ticket.id,
                    expected_version: v,
                    actor: Actor::System,
                    at: Utc::now(),
                    patch,
                }))
                .unwrap();
            version.set(done.version);
        })
    });
    let s = tenant();
    rt.block_on(async {
        for i in 0..SEED {
            let mut t = new_ticket(&s, i);
            if i % 10 == 0 {
                t.subject = format!("退款没有到账 refund missing #{i}");
            }
            store.create(t).await.unwrap();
        }
    });
    let query = |f: &dyn Fn(&mut TicketQuery)| {
        let mut q = TicketQuery {
            tenant: s.clone(),
            limit: 50,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let zh = query(&|q| q.text = Some("退款".into()));
    let en = query(&|q| q.text = Some("refund missing".into()));
    let status = query(&|q| q.statuses = vec![TicketStatus::New]);
    for (label, q, expect) in [
        ("search_text_zh", zh, SEED / 10),
        ("search_text_en", en, SEED / 10),
        ("search_status", status, 50),
    ] {
        let found = rt.block_on(store.search(&q)).unwrap().len();
        assert_eq!(found, expect.min(50), "{label}");
        g.bench_function(label, |b| b.iter(|| rt.block_on(store.search(&q)).unwrap()));
    }
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("cs-tickets-bench-{}", uuid::Uuid::new_v4()));
    let store = rt
        .block_on(
            SqliteTicketStoreBuilder::new(dir.join("tickets.db"))
                .with_sla(conformance::sla_policy())
                .build(),
        )
        .unwrap();
    let pool = store.writer().clone();
    rt.block_on(
        sqlx::raw_sql(
            "CREATE TABLE bench_raw (tenant TEXT NOT NULL, id INTEGER NOT NULL, subject TEXT NOT NULL,
                body TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (tenant, id))",
        )
        .execute(&pool),
    )
    .unwrap();
    let raw = move |i: usize| -> BoxFut {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO bench_raw (tenant, id, subject, body, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind("bench")
            .bind(i as i64)
            .bind(SUBJECT)
            .bind(BODY)
            .bind(Utc::now().timestamp_micros())
            .execute(&pool)
            .await
            .unwrap();
        })
    };
    bench_store(c, &rt, "tickets_sqlite", Arc::new(store), raw);
    std::fs::remove_dir_all(dir).ok();
}

fn postgres(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    // A fresh schema of its own: builds with other schema versions may share the database.
    let Some(url) = rt.block_on(cs_core::conformance::postgres_url("cs_tickets_bench")) else {
        eprintln!("skipping the PostgreSQL benches: set CS_TEST_POSTGRES_URL to run them");
        return;
    };
    let store = rt
        .block_on(
            PostgresTicketStoreBuilder::new(url)
                .with_sla(conformance::sla_policy())
                .build(),
        )
        .unwrap();
    let pool = store.pool().clone();
    rt.block_on(
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cs_bench_raw (tenant TEXT NOT NULL, id BIGINT NOT NULL,
                subject TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant, id))",
        )
        .execute(&pool),
    )
    .unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let raw = move |i: usize| -> BoxFut {
        let (pool, run) = (pool.clone(), run.clone());
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO cs_bench_raw (tenant, id, subject, body, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(run)
            .bind(i as i64)
            .bind(SUBJECT)
            .bind(BODY)
            .bind(Utc::now().timestamp_micros())
            .execute(&pool)
            .await
            .unwrap();
        })
    };
    bench_store(c, &rt, "tickets_postgres", Arc::new(store), raw);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn main() {
    let mut c = config().configure_from_args();
    sqlite(&mut c);
    postgres(&mut c);
    c.final_summary();
}
