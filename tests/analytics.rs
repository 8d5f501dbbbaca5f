//! Every metric from a scripted event sequence, with the expected figures worked out by hand
//! (a bot hand-over, a transfer, a reopen, a resolve while the reply clock runs, a bot-only
//! conversation, an abandonment, a survey); a replay of the same events, flushed in other
//! batches and across a restart, gives the same rows on the memory, SQLite and PostgreSQL
//! stores (PostgreSQL when `CS_TEST_POSTGRES_URL` is set).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc, Weekday};
use omnidesk::analytics::{
    Analytics, Dim, Grain, MemoryRollupStore, Metric, RollupQuery, RollupRow, RollupStore, Stat,
};
use omnidesk::core::{
    AgentId, Author, ChannelId, ChannelKind, Content, ConversationId, ConversationState,
    CustomerId, DeliveryStatus, Direction, DomainEvent, Event, Identity, Message, MessageId,
    Priority, Route, Survey, TenantId,
};

fn t0() -> DateTime<Utc> {
    // Wednesday 2026-11-11 10:00 UTC = 18:00 in Shanghai.
    Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap()
}

struct Script {
    tenant: TenantId,
    events: Vec<Event>,
}

impl Script {
    fn new(tenant: &str) -> Self {
        Self {
            tenant: TenantId::new(tenant).unwrap(),
            events: Vec::new(),
        }
    }

    fn at(&mut self, secs: i64, kind: DomainEvent) {
        self.events.push(Event::new(
            self.tenant.clone(),
            t0() + Duration::seconds(secs),
            kind,
        ));
    }

    fn message(&self, c: ConversationId, kind: ChannelKind, author: Author, secs: i64) -> Message {
        Message {
            id: MessageId::new(),
            tenant: self.tenant.clone(),
            conversation: c,
            customer: CustomerId::new(),
            channel: ChannelId::new("ch").unwrap(),
            channel_kind: kind,
            direction: if author == Author::Customer {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            author,
            content: Content::text("..."),
            provider_message_id: None,
            status: DeliveryStatus::Delivered,
            created_at: t0() + Duration::seconds(secs),
        }
    }

    fn open(&mut self, c: ConversationId, kind: ChannelKind, secs: i64) {
        self.at(
            secs,
            DomainEvent::ConversationOpened {
                conversation: c,
                customer: CustomerId::new(),
                route: Route {
                    channel: ChannelId::new("ch").unwrap(),
                    identity: Identity::new(kind, "someone"),
                },
            },
        );
    }

    fn customer(&mut self, c: ConversationId, kind: ChannelKind, secs: i64, score: f32) {
        let m = self.message(c, kind, Author::Customer, secs);
        let id = m.id;
        self.at(secs, DomainEvent::MessageReceived { message: m });
        let polarity = if score < -0.3 {
            "negative"
        } else if score > 0.3 {
            "positive"
        } else {
            "neutral"
        };
        self.at(
            secs,
            DomainEvent::SentimentScored {
                conversation: c,
                message: id,
                score,
                polarity: polarity.into(),
                emotion: "calm".into(),
                priority: Priority::Normal,
            },
        );
    }

    fn sent(&mut self, c: ConversationId, kind: ChannelKind, author: Author, secs: i64) {
        let m = self.message(c, kind, author, secs);
        self.at(secs, DomainEvent::MessageSent { message: m });
    }

    fn bot(&mut self, c: ConversationId, kind: ChannelKind, secs: i64, intent: &str) {
        self.sent(c, kind, Author::Bot, secs);
        self.at(
            secs,
            DomainEvent::BotAnswered {
                conversation: c,
                intent: Some(intent.into()),
                confidence: 0.9,
            },
        );
    }

    fn state(
        &mut self,
        c: ConversationId,
        secs: i64,
        from: ConversationState,
        to: ConversationState,
    ) {
        self.at(
            secs,
            DomainEvent::StateChanged {
                conversation: c,
                from,
                to,
            },
        );
    }

    fn hand_over(&mut self, c: ConversationId, secs: i64, reason: &str, skills: &[&str]) {
        self.at(
            secs,
            DomainEvent::HandoffRequested {
                conversation: c,
                reason: reason.into(),
                summary: String::new(),
            },
        );
        self.state(c, secs, ConversationState::Bot, ConversationState::Queued);
        self.queued(c, secs, skills);
    }

    fn queued(&mut self, c: ConversationId, secs: i64, skills: &[&str]) {
        self.at(
            secs,
            DomainEvent::Queued {
                conversation: c,
                priority: Priority::Normal,
                skills: skills.iter().map(|s| s.to_string()).collect(),
            },
        );
    }

    fn assign(&mut self, c: ConversationId, secs: i64, agent: AgentId, from: ConversationState) {
        self.state(c, secs, from, ConversationState::Assigned);
        self.at(
            secs,
            DomainEvent::AgentAssigned {
                conversation: c,
                agent,
            },
        );
    }
}

struct Cast {
    alice: AgentId,
    bob: AgentId,
    carol: AgentId,
}

/// The day, by hand: see each step's comment.
fn the_day(tenant: &str) -> (Script, Cast) {
    use ConversationState::*;
    let cast = Cast {
        alice: AgentId::new(),
        bob: AgentId::new(),
        carol: AgentId::new(),
    };
    let mut s = Script::new(tenant);
    let web = ChannelKind::WebChat;

    // A: the bot answers, the customer asks for a human, Alice takes it, goes away, Bob gets it
    // (a transfer), resolves it, it is reopened and Bob resolves it again.
    let a = ConversationId::new();
    s.open(a, web, 0);
    s.customer(a, web, 0, -0.6);
    s.bot(a, web, 2, "refund"); // bot session starts at 2
    s.customer(a, web, 60, -0.8);
    s.hand_over(a, 61, "customer_request", &["refunds"]); // FRT clock from 61
    s.assign(a, 81, cast.alice, Queued); // waited 20 s (in target)
    s.sent(a, web, Author::Agent { agent: cast.alice }, 141); // FRT 80 s
    s.customer(a, web, 200, -0.2);
    s.sent(a, web, Author::Agent { agent: cast.alice }, 260); // reply 60 s
    s.state(a, 300, Assigned, Queued); // Alice away: handle 219 s
    s.queued(a, 300, &["refunds"]);
    s.assign(a, 310, cast.bob, Queued); // transfer; waited 10 s
    s.customer(a, web, 400, 0.5);
    s.sent(a, web, Author::Agent { agent: cast.bob }, 430); // reply 30 s
    s.state(a, 500, Assigned, Resolved); // resolution 500 s; handle 190 s; mood -0.2 -> 0.5
    s.at(
        600,
        DomainEvent::SurveyAnswered {
            conversation: a,
            agent: None,
            survey: Survey::Csat,
            score: 5,
            comment: None,
        },
    );
    s.state(a, 700, Resolved, Queued); // reopen
    s.assign(a, 760, cast.bob, Queued);
    s.sent(a, web, Author::Agent { agent: cast.bob }, 800);
    s.state(a, 900, Assigned, Resolved); // resolution 200 s (from the reopen); handle 140 s

    // B: bot only; the customer goes quiet: contained.
    let b = ConversationId::new();
    s.open(b, ChannelKind::WeChat, 1000);
    s.customer(b, ChannelKind::WeChat, 1000, 0.0);
    s.bot(b, ChannelKind::WeChat, 1001, "order_status");

    // C: a complaint; Carol answers; the customer writes again and Carol resolves before the
    // reply target (10 min): the clock stops, no breach ever.
    let c = ConversationId::new();
    s.open(c, web, 2000);
    s.customer(c, web, 2000, 0.0);
    s.bot(c, web, 2005, "refund");
    s.hand_over(c, 2010, "complaint", &[]); // queue "general"
    s.assign(c, 2070, cast.carol, Queued); // waited 60 s (not in target)
    s.sent(c, web, Author::Agent { agent: cast.carol }, 2100); // FRT 90 s
    s.customer(c, ChannelKind::WebChat, 2200, 0.0); // reply clock from 2200
    s.state(c, 2500, Assigned, Resolved); // resolution 500 s, first contact

    // D: SMS, handed over without a bot answer; nobody comes for 700 s: a response breach at
    // 3600 (the hand-over + 10 min), then the customer leaves the queue.
    let d = ConversationId::new();
    s.open(d, ChannelKind::Sms, 3000);
    s.customer(d, ChannelKind::Sms, 3000, -0.1);
    s.hand_over(d, 3000, "customer_request", &["billing"]);
    s.state(d, 3700, Queued, Closed);
    s.at(
        3700,
        DomainEvent::QueueAbandoned {
            conversation: d,
            reason: "customer_left".into(),
        },
    );
    (s, cast)
}

/// Business hours 09:00-18:02 in Shanghai every day.
fn calendar() -> omnidesk::tickets::BusinessCalendar {
    let mut b = omnidesk::tickets::BusinessCalendarBuilder::new(chrono_tz::Asia::Shanghai);
    for d in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ] {
        b = b.with_period(
            d,
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(18, 2, 0).unwrap(),
        );
    }
    b.build().unwrap()
}

async fn analytics(store: Arc<dyn RollupStore>, tenant: &str) -> Analytics {
    Analytics::builder(store)
        .with_tenant(tenant)
        .with_calendar(calendar())
        .build()
        .await
        .unwrap()
}

async fn day_rows(a: &Analytics, dim: Dim) -> BTreeMap<(String, Metric), Stat> {
    a.query(&RollupQuery {
        tenant: a.tenant().into(),
        grain: Grain::Day,
        from: t0() - Duration::days(1),
        to: t0() + Duration::days(1),
        dim,
        metrics: vec![],
    })
    .await
    .unwrap()
    .into_iter()
    .map(|r| ((r.key, r.metric), r.stat))
    .collect()
}

fn stat(count: i64, sum: i64, max: i64) -> Stat {
    Stat { count, sum, max }
}

#[tokio::test]
async fn every_metric_from_a_scripted_day() {
    let (script, cast) = the_day("metrics-day");
    let a = analytics(Arc::new(MemoryRollupStore::new()), "metrics-day").await;
    a.replay(&script.events);
    // Thirty-one minutes after B's bot answer, B's quiet session is contained; C's resolved
    // conversation never breaches however late the sweep.
    a.sweep(t0() + Duration::seconds(1001 + 31 * 60));
    a.sweep(t0() + Duration::hours(3));
    a.flush().await.unwrap();

    let all = day_rows(&a, Dim::All).await;
    let get = |m: Metric| all.get(&(String::new(), m)).copied().unwrap_or_default();
    let count = |m: Metric| get(m).count;
    assert_eq!(count(Metric::Conversations), 4);
    assert_eq!(count(Metric::MessagesIn), 8, "A 4, B 1, C 2, D 1");
    assert_eq!(count(Metric::MessagesBot), 3);
    assert_eq!(count(Metric::MessagesAgent), 5);
    // FRT: A 80 s (from the hand-over at 61, not the bot's answer), C 90 s.
    assert_eq!(get(Metric::FirstResponse), stat(2, 170_000, 90_000));
    // Business hours end at 18:02 local (10:02 UTC): A's 61-141 has 59 s inside, C none.
    assert_eq!(get(Metric::FirstResponseBusiness), stat(2, 59_000, 59_000));
    // Reply times: A 60 s and 30 s; nothing after the reopen (no customer message).
    assert_eq!(get(Metric::ReplyTime), stat(2, 90_000, 60_000));
    // One breach: D's hand-over unanswered past 10 min. C was resolved 300 s after the
    // customer's message: the clock stopped.
    assert_eq!(count(Metric::ResponseBreaches), 1);
    // Resolutions: A 500 s, A again 200 s from the reopen (not 900), C 500 s.
    assert_eq!(get(Metric::Resolutions), stat(3, 1_200_000, 500_000));
    // Business: A's first resolution 18:00-18:08 has 120 s inside; the rest none.
    assert_eq!(get(Metric::ResolutionBusiness), stat(3, 120_000, 120_000));
    assert_eq!(
        count(Metric::Fcr),
        1,
        "only C: A was transferred and reopened"
    );
    assert_eq!(count(Metric::Reopens), 1);
    // Handle time: Alice 219, Bob 190 and 140, Carol 430 seconds.
    assert_eq!(get(Metric::HandleTime), stat(4, 979_000, 430_000));
    assert_eq!(count(Metric::Assignments), 4);
    assert_eq!(count(Metric::Transfers), 1);
    // Queue: A twice (61, 300), C, D; waits 20, 10, 60 s; 2 within 30 s; D left after 700 s.
    assert_eq!(count(Metric::Queued), 4);
    assert_eq!(get(Metric::QueueWait), stat(3, 90_000, 60_000));
    assert_eq!(count(Metric::AnsweredInTarget), 2);
    assert_eq!(get(Metric::Abandoned), stat(1, 700_000, 700_000));
    // Bot: A and C escalated, B contained.
    assert_eq!(count(Metric::BotSessions), 3);
    assert_eq!(count(Metric::BotContained), 1);
    assert_eq!(count(Metric::BotEscalated), 2);
    assert_eq!(count(Metric::BotAnswers), 3);
    assert_eq!(count(Metric::Handoffs), 3);
    // Sentiment: -0.6, -0.8 negative; -0.2, 0.0 (B), 0.0, 0.0 (C), -0.1 (D) neutral; 0.5.
    assert_eq!(count(Metric::SentimentNegative), 2);
    assert_eq!(count(Metric::SentimentNeutral), 5);
    assert_eq!(count(Metric::SentimentPositive), 1);
    assert_eq!(get(Metric::CsatResponses), stat(1, 5, 5));
    assert_eq!(count(Metric::CsatSatisfied), 1);

    // Per channel and queue.
    let channel = day_rows(&a, Dim::Channel).await;
    let c = |k: &str, m: Metric| channel.get(&(k.into(), m)).map(|s| s.count).unwrap_or(0);
    assert_eq!(c("web_chat", Metric::Conversations), 2);
    assert_eq!(c("we_chat", Metric::BotContained), 1);
    assert_eq!(c("sms", Metric::Abandoned), 1);
    let queue = day_rows(&a, Dim::Queue).await;
    let q = |k: &str, m: Metric| queue.get(&(k.into(), m)).map(|s| s.count).unwrap_or(0);
    assert_eq!(q("refunds", Metric::Queued), 2);
    assert_eq!(q("general", Metric::Fcr), 1);
    assert_eq!(q("billing", Metric::Abandoned), 1);
    let intents = day_rows(&a, Dim::Intent).await;
    assert_eq!(intents[&("refund".into(), Metric::BotAnswers)].count, 2);
    assert_eq!(
        intents[&("order_status".into(), Metric::BotAnswers)].count,
        1
    );

    // Per agent.
    let agents = day_rows(&a, Dim::Agent).await;
    let ag = |who: AgentId, m: Metric| {
        agents
            .get(&(who.to_string(), m))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(
        ag(cast.alice, Metric::FirstResponse),
        stat(1, 80_000, 80_000)
    );
    assert_eq!(ag(cast.alice, Metric::Transfers).count, 1);
    assert_eq!(
        ag(cast.alice, Metric::HandleTime),
        stat(1, 219_000, 219_000)
    );
    assert_eq!(ag(cast.bob, Metric::ReplyTime), stat(1, 30_000, 30_000));
    assert_eq!(ag(cast.bob, Metric::Resolutions).count, 2);
    assert_eq!(
        ag(cast.bob, Metric::CsatSatisfied).count,
        1,
        "the survey goes to Bob"
    );
    // Bob's first stint: -0.2 at his assignment, 0.5 at the end: +0.7, improved; his second
    // stint saw no new message (0).
    assert_eq!(ag(cast.bob, Metric::SentimentDelta), stat(2, 700, 700));
    assert_eq!(ag(cast.bob, Metric::SentimentImproved).count, 1);
    assert_eq!(ag(cast.carol, Metric::Fcr).count, 1);
    assert_eq!(
        ag(cast.carol, Metric::QueueWait).count,
        0,
        "queue waits are not an agent's"
    );
}

async fn all_rows(store: &dyn RollupStore, tenant: &str) -> Vec<RollupRow> {
    let mut out = Vec::new();
    for grain in Grain::ALL {
        for dim in Dim::ALL {
            out.extend(
                store
                    .query(&RollupQuery {
                        tenant: tenant.into(),
                        grain,
                        from: t0() - Duration::days(2),
                        to: t0() + Duration::days(2),
                        dim,
                        metrics: vec![],
                    })
                    .await
                    .unwrap(),
            );
        }
    }
    out
}

/// The day, once all at once and once in small flushes with a restart in the middle (a new
/// `Analytics` over the same store), gives the same rows.
async fn replay_equals(
    make: impl Fn() -> futures::future::BoxFuture<'static, Arc<dyn RollupStore>>,
) {
    let tenant = format!("replay-{}", uuid::Uuid::new_v4().simple());
    let (script, _) = the_day(&tenant);
    let end = t0() + Duration::hours(3);

    let once_store = make().await;
    let once = analytics(once_store.clone(), &tenant).await;
    once.replay(&script.events);
    once.sweep(end);
    once.flush().await.unwrap();

    let split_store = make().await;
    let mut a = analytics(split_store.clone(), &tenant).await;
    for (i, e) in script.events.iter().enumerate() {
        a.observe(e);
        if i % 7 == 3 {
            a.flush().await.unwrap();
        }
        if i == script.events.len() / 2 {
            // A restart: what was flushed (rows and conversations) carries on.
            a.flush().await.unwrap();
            a = analytics(split_store.clone(), &tenant).await;
        }
    }
    a.sweep(end);
    a.flush().await.unwrap();

    let x = all_rows(once_store.as_ref(), &tenant).await;
    let y = all_rows(split_store.as_ref(), &tenant).await;
    assert!(x.len() > 100, "{} rows", x.len());
    assert_eq!(x, y);
}

#[tokio::test]
async fn replay_equals_on_memory() {
    replay_equals(|| {
        Box::pin(async { Arc::new(MemoryRollupStore::new()) as Arc<dyn RollupStore> })
    })
    .await;
}

#[tokio::test]
async fn replay_equals_on_sqlite() {
    replay_equals(|| {
        Box::pin(async {
            let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
            Arc::new(
                omnidesk::analytics::SqlRollupStore::sqlite(pool)
                    .await
                    .unwrap(),
            ) as Arc<dyn RollupStore>
        })
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn replay_equals_on_postgres() {
    // A schema of its own: builds with other schema versions may share the database.
    let Some(url) = cs_core::conformance::postgres_url("omnidesk_analytics").await else {
        eprintln!("skipping the PostgreSQL rollups: set CS_TEST_POSTGRES_URL");
        return;
    };
    replay_equals(move || {
        let url = url.clone();
        Box::pin(async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            Arc::new(
                omnidesk::analytics::SqlRollupStore::postgres(pool)
                    .await
                    .unwrap(),
            ) as Arc<dyn RollupStore>
        })
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_migrate_one_fresh_postgres_schema_at_once() {
    // What each node of a desk does when it starts: the store, the tickets and the rollups,
    // each migrating its tables. Three at once on a fresh schema must not collide.
    let Some(url) = cs_core::conformance::postgres_url("omnidesk_migrate").await else {
        eprintln!("skipping concurrent migrations: set CS_TEST_POSTGRES_URL");
        return;
    };
    for round in 0..3 {
        // A fresh schema per round: the race is between the first creators of each table.
        let url = if round == 0 {
            url.clone()
        } else {
            cs_core::conformance::postgres_url("omnidesk_migrate")
                .await
                .unwrap()
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let nodes: Vec<_> = (0..3)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                tokio::spawn(async move {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    barrier.wait().await;
                    let rollups = omnidesk::analytics::SqlRollupStore::postgres(pool.clone()).await;
                    let store = cs_core::store::PostgresStore::connect(&url).await;
                    let tickets = cs_tickets::PostgresTicketStoreBuilder::new(&url)
                        .with_pool(pool)
                        .build()
                        .await;
                    (rollups.err(), store.err(), tickets.err())
                })
            })
            .collect();
        for n in nodes {
            let (rollups, store, tickets) = n.await.unwrap();
            assert!(rollups.is_none(), "round {round}: rollups: {rollups:?}");
            assert!(store.is_none(), "round {round}: store: {store:?}");
            assert!(tickets.is_none(), "round {round}: tickets: {tickets:?}");
        }
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM analytics_schema")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "the rollups' one migration recorded once");
    }
}

#[tokio::test]
async fn rollups_survive_a_restart_on_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("omnidesk-an-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("a.db").display());
    let tenant = "restart-file";
    let (script, _) = the_day(tenant);
    {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let store = Arc::new(
            omnidesk::analytics::SqlRollupStore::sqlite(pool.clone())
                .await
                .unwrap(),
        );
        let a = analytics(store, tenant).await;
        a.replay(&script.events[..40]);
        a.flush().await.unwrap();
        pool.close().await;
    }
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let store = Arc::new(
        omnidesk::analytics::SqlRollupStore::sqlite(pool)
            .await
            .unwrap(),
    );
    let a = analytics(store, tenant).await;
    a.replay(&script.events[40..]);
    a.sweep(t0() + Duration::hours(3));
    a.flush().await.unwrap();
    let all = day_rows(&a, Dim::All).await;
    assert_eq!(
        all[&(String::new(), Metric::Resolutions)],
        stat(3, 1_200_000, 500_000)
    );
    assert_eq!(
        all[&(String::new(), Metric::FirstResponse)],
        stat(2, 170_000, 90_000)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bot-first reception (`reception = "router"`): a new conversation is queued and the router
/// gives it to the bot; nobody waited for a human, so it is not a queue entry (nor, later, an
/// abandonment's denominator).
#[tokio::test]
async fn a_conversation_the_router_gives_to_the_bot_was_not_queued() {
    use ConversationState::*;
    let mut s = Script::new("bot-first");
    let c = ConversationId::new();
    s.open(c, ChannelKind::WebChat, 0);
    s.customer(c, ChannelKind::WebChat, 0, 0.0);
    s.queued(c, 0, &[]);
    s.state(c, 0, Queued, Bot);
    s.bot(c, ChannelKind::WebChat, 1, "greeting");
    // Later the customer asks for a human: one real queue entry, its wait from then.
    s.hand_over(c, 100, "customer_request", &[]);
    s.assign(c, 110, AgentId::new(), Queued);
    let a = analytics(Arc::new(MemoryRollupStore::new()), "bot-first").await;
    a.replay(&s.events);
    a.flush().await.unwrap();
    let all = day_rows(&a, Dim::All).await;
    assert_eq!(all[&(String::new(), Metric::Queued)].count, 1);
    assert_eq!(
        all[&(String::new(), Metric::QueueWait)],
        stat(1, 10_000, 10_000)
    );
    assert!(
        !all.contains_key(&(String::new(), Metric::FirstResponse)),
        "no agent reply yet"
    );
}
