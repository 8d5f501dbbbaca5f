//! The behaviour every [`TicketStore`] must show (feature `conformance`).
//!
//! Each check works in its own random tenant, so a shared database needs no cleaning.
//! [`run`] checks any store; [`run_sla`] checks the SLA clock, SLA search and the
//! [`crate::TicketDesk`] flows (escalation, hand-over, status lookup, CSAT) on a store built with
//! [`sla_policy`].

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use cs_core::{AgentId, Clock, CustomerId, ManualClock, Priority, TenantId, TicketId};

use crate::desk::{
    EscalationRule, EscalationTarget, HandOver, TicketDesk, TicketDeskBuilder, TicketEventKind,
};
use crate::error::Error;
use crate::model::{
    Actor, Attachment, Csat, NewComment, NewTicket, SlaFilter, Ticket, TicketKind, TicketPatch,
    TicketQuery, TicketStatus, UpdateTicket,
};
use crate::sla::{
    BusinessCalendarBuilder, SlaMetric, SlaPolicy, SlaPolicyBuilder, SlaState, SlaTargets,
};
use crate::store::TicketStore;

/// Runs every check against `store`.
pub async fn run(store: &dyn TicketStore) {
    numbers_are_sequential_per_tenant(store).await;
    updates_are_versioned_and_audited(store).await;
    concurrent_writers_never_lose_updates(store).await;
    comments_and_reopen(store).await;
    workflow_is_enforced(store).await;
    search_filters(store).await;
    concurrent_creates_get_distinct_numbers(store).await;
    concurrent_comments_are_all_kept(store).await;
    fields_attachments_and_csat(store).await;
}

const WRITERS: usize = 16;

fn tenant() -> TenantId {
    TenantId::new(format!("t-{}", uuid_like())).unwrap()
}

fn uuid_like() -> String {
    cs_core::TicketId::new().to_string().replace('-', "")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 9, 0, 0).unwrap()
}

fn agent() -> Actor {
    Actor::Agent {
        agent: AgentId::new(),
    }
}

/// Ticket numbers run 1, 2, 3... per tenant and find the ticket.
pub async fn numbers_are_sequential_per_tenant(store: &dyn TicketStore) {
    let (a, b) = (tenant(), tenant());
    for expected in 1..=3 {
        let t = store
            .create(NewTicket::new(
                a.clone(),
                format!("order {expected}"),
                agent(),
                t0(),
            ))
            .await
            .unwrap();
        assert_eq!(t.number, expected, "numbers run 1, 2, 3 per tenant");
        assert_eq!(t.status, TicketStatus::New);
        assert_eq!(t.version, 0);
    }
    let other = store
        .create(NewTicket::new(b.clone(), "first in b", agent(), t0()))
        .await
        .unwrap();
    assert_eq!(other.number, 1, "each tenant counts on its own");
    let by_number = store.get_by_number(&a, 2).await.unwrap();
    assert_eq!(by_number.subject, "order 2");
    assert_eq!(store.get(&a, by_number.id).await.unwrap(), by_number);
    assert!(matches!(
        store.get_by_number(&a, 99).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&b, by_number.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .create(NewTicket::new(a.clone(), "  ", agent(), t0()))
            .await,
        Err(Error::InvalidInput { .. })
    ));
}

/// Updates name the version they read, bump it, and land in the audit trail.
pub async fn updates_are_versioned_and_audited(store: &dyn TicketStore) {
    let t = tenant();
    let who = agent();
    let ticket = store
        .create(NewTicket::new(t.clone(), "parcel lost", who, t0()))
        .await
        .unwrap();
    let u = UpdateTicket {
        tenant: t.clone(),
        id: ticket.id,
        expected_version: 0,
        actor: who,
        at: t0() + Duration::minutes(5),
        patch: TicketPatch {
            status: Some(TicketStatus::Open),
            priority: Some(Priority::High),
            group: Some(Some("logistics".into())),
            add_tags: vec!["Lost".into()],
            fields: [("order".to_string(), "SO-1".to_string())].into(),
            ..Default::default()
        },
    };
    let updated = store.update(u.clone()).await.unwrap();
    assert_eq!(updated.version, 1);
    assert_eq!(updated.status, TicketStatus::Open);
    assert_eq!(updated.group.as_deref(), Some("logistics"));
    assert!(updated.tags.contains("lost"), "tags are lower-cased");
    assert_eq!(updated.fields["order"], "SO-1");
    assert_eq!(updated.updated_at, t0() + Duration::minutes(5));

    let stale = store.update(u).await.unwrap_err();
    assert!(
        matches!(
            stale,
            Error::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "stale version: {stale:?}"
    );

    let audit = store.audit(&t, ticket.id).await.unwrap();
    let fields: Vec<&str> = audit.iter().map(|a| a.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "created",
            "status",
            "priority",
            "group",
            "tag",
            "field:order"
        ]
    );
    assert!(audit.iter().all(|a| a.actor == who));
    assert_eq!(audit[1].from.as_deref(), Some("new"));
    assert_eq!(audit[1].to.as_deref(), Some("open"));
}

/// Concurrent writers that re-read and retry on conflict never lose a change.
pub async fn concurrent_writers_never_lose_updates(store: &dyn TicketStore) {
    let t = tenant();
    let ticket = store
        .create(NewTicket::new(t.clone(), "busy ticket", agent(), t0()))
        .await
        .unwrap();
    // 16 writers each add their own tag, re-reading and retrying on conflict.
    let tenant = &t;
    all_at_once(|i| async move {
        let mut conflicts = 0;
        loop {
            let current = store.get(tenant, ticket.id).await.unwrap();
            let r = store
                .update(UpdateTicket {
                    tenant: tenant.clone(),
                    id: ticket.id,
                    expected_version: current.version,
                    actor: Actor::System,
                    at: t0(),
                    patch: TicketPatch {
                        add_tags: vec![format!("w{i}")],
                        ..Default::default()
                    },
                })
                .await;
            match r {
                Ok(_) => return conflicts,
                Err(Error::Conflict { .. }) => {
                    conflicts += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
    })
    .await;
    let done = store.get(&t, ticket.id).await.unwrap();
    assert_eq!(
        done.tags.len(),
        WRITERS,
        "every writer's change survived: {:?}",
        done.tags
    );
    assert_eq!(
        done.version, WRITERS as u64,
        "one version per successful write"
    );
    let tag_audit = store
        .audit(&t, ticket.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.field == "tag")
        .count();
    assert_eq!(tag_audit, WRITERS, "every write is in the audit trail");
}

/// Comments are kept in order; a customer reply reopens a solved ticket.
pub async fn comments_and_reopen(store: &dyn TicketStore) {
    let t = tenant();
    let customer = CustomerId::new();
    let mut new = NewTicket::new(t.clone(), "refund", Actor::Customer { customer }, t0());
    new.description = Some("I want my money back".into());
    new.customer = Some(customer);
    let ticket = store.create(new).await.unwrap();
    let note = store
        .add_comment(note(
            &t,
            ticket.id,
            agent(),
            "checked with finance",
            t0() + Duration::minutes(1),
        ))
        .await
        .unwrap();
    assert_eq!(note.seq, 2, "the description is comment 1");
    let current = store.get(&t, ticket.id).await.unwrap();
    let solved = store
        .update(change(
            &t,
            ticket.id,
            current.version,
            agent(),
            t0() + Duration::minutes(2),
            status(TicketStatus::Solved),
        ))
        .await
        .unwrap();
    assert_eq!(solved.status, TicketStatus::Solved);
    store
        .add_comment(reply(
            &t,
            ticket.id,
            Actor::Customer { customer },
            "still not refunded",
            t0() + Duration::minutes(3),
        ))
        .await
        .unwrap();
    let reopened = store.get(&t, ticket.id).await.unwrap();
    assert_eq!(
        reopened.status,
        TicketStatus::Open,
        "a customer reply reopens"
    );
    let comments = store.comments(&t, ticket.id).await.unwrap();
    assert_eq!(comments.len(), 3);
    assert!(comments[0].public && !comments[1].public && comments[2].public);
    assert!(matches!(
        store
            .add_comment(reply(&t, TicketId::new(), agent(), "x", t0()))
            .await,
        Err(Error::NotFound { .. })
    ));
}

/// The status workflow refuses forbidden changes.
pub async fn workflow_is_enforced(store: &dyn TicketStore) {
    let t = tenant();
    let ticket = store
        .create(NewTicket::new(t.clone(), "closing", agent(), t0()))
        .await
        .unwrap();
    let closed = store
        .update(change(
            &t,
            ticket.id,
            0,
            agent(),
            t0(),
            status(TicketStatus::Closed),
        ))
        .await
        .unwrap();
    let err = store
        .update(change(
            &t,
            ticket.id,
            closed.version,
            agent(),
            t0(),
            status(TicketStatus::Open),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "closed is final: {err:?}"
    );
    assert_eq!(
        store.get(&t, ticket.id).await.unwrap().version,
        closed.version
    );
    let err = store
        .add_comment(reply(&t, ticket.id, agent(), "late", t0()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "no comments on closed: {err:?}"
    );
}

/// Search filters by status, assignee, group, customer, tag and text, newest first.
pub async fn search_filters(store: &dyn TicketStore) {
    let t = tenant();
    let ann = AgentId::new();
    let customer = CustomerId::new();
    let mut a = NewTicket::new(t.clone(), "快递丢失 parcel lost", agent(), t0());
    a.assignee = Some(ann);
    a.group = Some("logistics".into());
    a.customer = Some(customer);
    a.tags = ["lost".to_string()].into();
    let a = store.create(a).await.unwrap();
    let mut b = NewTicket::new(t.clone(), "refund request", agent(), t0());
    b.description = Some("退款还没有到账".into());
    let b = store.create(b).await.unwrap();
    let q = |f: &dyn Fn(&mut TicketQuery)| {
        let mut q = TicketQuery {
            tenant: t.clone(),
            limit: 50,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let ids = |v: Vec<crate::model::Ticket>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.search(&q(&|_| {})).await.unwrap()),
        [b.id, a.id],
        "newest first"
    );
    assert_eq!(
        ids(store.search(&q(&|q| q.assignee = Some(ann))).await.unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(store
            .search(&q(&|q| q.group = Some("logistics".into())))
            .await
            .unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(store
            .search(&q(&|q| q.tag = Some("LOST".into())))
            .await
            .unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(store
            .search(&q(&|q| q.customer = Some(customer)))
            .await
            .unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(store
            .search(&q(&|q| q.text = Some("快递".into())))
            .await
            .unwrap()),
        [a.id],
        "Chinese text in the subject"
    );
    assert_eq!(
        ids(store
            .search(&q(&|q| q.text = Some("到账".into())))
            .await
            .unwrap()),
        [b.id],
        "Chinese text in a comment"
    );
    assert_eq!(
        ids(store
            .search(&q(&|q| q.text = Some("PARCEL".into())))
            .await
            .unwrap()),
        [a.id],
        "case-insensitive"
    );
    assert!(
        store
            .search(&q(&|q| q.statuses = vec![TicketStatus::Solved]))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Runs `f(0)` to `f(WRITERS - 1)` at once (interleaved on this task; a SQL store gives each its
/// own connection, so they race in the database); their results, sorted.
async fn all_at_once<F, Fut>(f: F) -> Vec<u64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut out = futures::future::join_all((0..WRITERS).map(f)).await;
    out.sort_unstable();
    out
}

/// An internal note.
fn note(
    t: &TenantId,
    ticket: TicketId,
    author: Actor,
    body: &str,
    at: DateTime<Utc>,
) -> NewComment {
    NewComment {
        tenant: t.clone(),
        ticket,
        author,
        body: body.into(),
        public: false,
        attachments: Vec::new(),
        at,
    }
}

/// A public reply.
fn reply(
    t: &TenantId,
    ticket: TicketId,
    author: Actor,
    body: &str,
    at: DateTime<Utc>,
) -> NewComment {
    NewComment {
        public: true,
        ..note(t, ticket, author, body, at)
    }
}

/// An update of `ticket` (read at `version`) by `actor`.
fn change(
    t: &TenantId,
    ticket: TicketId,
    version: u64,
    actor: Actor,
    at: DateTime<Utc>,
    patch: TicketPatch,
) -> UpdateTicket {
    UpdateTicket {
        tenant: t.clone(),
        id: ticket,
        expected_version: version,
        actor,
        at,
        patch,
    }
}

fn status(s: TicketStatus) -> TicketPatch {
    TicketPatch {
        status: Some(s),
        ..Default::default()
    }
}

/// Concurrent creates take distinct numbers without gaps.
pub async fn concurrent_creates_get_distinct_numbers(store: &dyn TicketStore) {
    let t = tenant();
    let t = &t;
    let numbers = all_at_once(|i| async move {
        store
            .create(NewTicket::new(
                t.clone(),
                format!("rush {i}"),
                agent(),
                t0(),
            ))
            .await
            .unwrap()
            .number
    })
    .await;
    assert_eq!(
        numbers,
        (1..=WRITERS as u64).collect::<Vec<_>>(),
        "concurrent creates take distinct numbers without gaps"
    );
}

/// Concurrent comments are all kept, each with its own sequence number.
pub async fn concurrent_comments_are_all_kept(store: &dyn TicketStore) {
    let t = tenant();
    let ticket = store
        .create(NewTicket::new(t.clone(), "many replies", agent(), t0()))
        .await
        .unwrap();
    let seqs = all_at_once(|i| {
        let t = &t;
        async move {
            let note = note(t, ticket.id, agent(), &format!("note {i}"), t0());
            store.add_comment(note).await.unwrap().seq
        }
    })
    .await;
    assert_eq!(seqs, (1..=WRITERS as u64).collect::<Vec<_>>());
    let comments = store.comments(&t, ticket.id).await.unwrap();
    assert_eq!(comments.len(), WRITERS, "no comment lost");
    let bodies: std::collections::BTreeSet<_> = comments.iter().map(|c| c.body.clone()).collect();
    assert_eq!(bodies.len(), WRITERS);
    assert_eq!(
        store.get(&t, ticket.id).await.unwrap().version,
        WRITERS as u64
    );
}

/// Custom fields, attachments and the CSAT rating read back as written.
pub async fn fields_attachments_and_csat(store: &dyn TicketStore) {
    let t = tenant();
    let customer = CustomerId::new();
    let mut new = NewTicket::new(
        t.clone(),
        "broken kettle",
        Actor::Customer { customer },
        t0(),
    );
    new.customer = Some(customer);
    new.kind = TicketKind::Incident;
    new.fields = [("order".to_string(), "SO-77".to_string())].into();
    let ticket = store.create(new).await.unwrap();
    assert_eq!(ticket.kind, TicketKind::Incident);
    assert_eq!(ticket.fields["order"], "SO-77", "custom fields at creation");
    let photo = Attachment {
        url: "https://files.example/kettle.jpg".into(),
        name: "kettle.jpg".into(),
        mime: Some("image/jpeg".into()),
        size: Some(123_456),
    };
    store
        .add_comment(NewComment {
            tenant: t.clone(),
            ticket: ticket.id,
            author: Actor::Customer { customer },
            body: "photo attached".into(),
            public: true,
            attachments: vec![photo.clone()],
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(
        store.comments(&t, ticket.id).await.unwrap()[0].attachments,
        [photo],
        "attachments are kept by reference"
    );
    let rate = |version, score| UpdateTicket {
        tenant: t.clone(),
        id: ticket.id,
        expected_version: version,
        actor: Actor::Customer { customer },
        at: t0() + Duration::hours(1),
        patch: TicketPatch {
            csat: Some(Csat {
                score,
                comment: Some("quick and kind".into()),
                at: t0() + Duration::hours(1),
            }),
            ..Default::default()
        },
    };
    let err = store.update(rate(1, 5)).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "an open ticket cannot be rated: {err:?}"
    );
    let solved = store
        .update(change(
            &t,
            ticket.id,
            1,
            agent(),
            t0(),
            status(TicketStatus::Solved),
        ))
        .await
        .unwrap();
    assert!(matches!(
        store.update(rate(solved.version, 6)).await,
        Err(Error::InvalidInput { .. })
    ));
    let mut stranger = rate(solved.version, 4);
    stranger.actor = Actor::Customer {
        customer: CustomerId::new(),
    };
    assert!(matches!(
        store.update(stranger).await,
        Err(Error::InvalidInput { .. })
    ));
    let rated = store.update(rate(solved.version, 4)).await.unwrap();
    assert_eq!(rated.csat.as_ref().map(|c| c.score), Some(4));
    assert_eq!(store.get(&t, ticket.id).await.unwrap().csat, rated.csat);
    let audit = store.audit(&t, ticket.id).await.unwrap();
    assert_eq!(audit.last().unwrap().field, "csat");
    assert_eq!(audit.last().unwrap().to.as_deref(), Some("4"));
}

/// The SLA policy [`run_sla`] expects the store to run: Asia/Shanghai, Monday to Friday
/// 09:00-12:00 and 13:00-18:00, Monday 2026-11-16 a holiday; normal priority: first response
/// 2 h, next response 4 h, resolution 8 h; urgent: first response 30 min; warnings 30 min before.
pub fn sla_policy() -> SlaPolicy {
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let calendar = BusinessCalendarBuilder::new(chrono_tz::Asia::Shanghai)
        .with_weekday_period(hm(9, 0), hm(12, 0))
        .with_weekday_period(hm(13, 0), hm(18, 0))
        .with_holiday(NaiveDate::from_ymd_opt(2026, 11, 16).unwrap())
        .build()
        .unwrap();
    SlaPolicyBuilder::new("standard", calendar)
        .with_targets(
            Priority::Normal,
            SlaTargets {
                first_response: Some(Duration::hours(2)),
                next_response: Some(Duration::hours(4)),
                resolution: Some(Duration::hours(8)),
            },
        )
        .with_targets(
            Priority::Urgent,
            SlaTargets {
                first_response: Some(Duration::minutes(30)),
                next_response: Some(Duration::hours(1)),
                resolution: Some(Duration::hours(4)),
            },
        )
        .with_warning_before(Duration::minutes(30))
        .build()
        .unwrap()
}

/// A local time in Shanghai (UTC+8, no daylight saving).
fn cst(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap() - Duration::hours(8)
}

fn first_response_due(t: &Ticket) -> Option<DateTime<Utc>> {
    t.sla
        .as_ref()?
        .timers
        .iter()
        .find(|x| x.metric == SlaMetric::FirstResponse)?
        .due_at
}

/// Runs the SLA and desk checks against `store`, which must run [`sla_policy`].
pub async fn run_sla(store: Arc<dyn TicketStore>) {
    sla_counts_business_time(store.as_ref()).await;
    sla_pauses_while_pending(store.as_ref()).await;
    desk_escalates_on_breach(store.clone()).await;
    desk_hands_over_and_answers_customers(store.clone()).await;
}

async fn search_sla(
    store: &dyn TicketStore,
    t: &TenantId,
    state: SlaState,
    at: DateTime<Utc>,
) -> Vec<TicketId> {
    store
        .search(&TicketQuery {
            tenant: t.clone(),
            sla: Some(SlaFilter { state, at }),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// SLA clocks count business time only and stop at the first response.
pub async fn sla_counts_business_time(store: &dyn TicketStore) {
    let t = tenant();
    // Friday 17:00: one working hour left that day, then the weekend and Monday's holiday.
    let ticket = store
        .create(NewTicket::new(
            t.clone(),
            "where is my parcel",
            agent(),
            cst(13, 17, 0),
        ))
        .await
        .unwrap();
    assert!(
        ticket.sla.is_some(),
        "the store must run conformance::sla_policy()"
    );
    assert_eq!(
        first_response_due(&ticket),
        Some(cst(17, 10, 0)),
        "2 business hours from Friday 17:00 end Tuesday 10:00"
    );
    let sla = ticket.sla.as_ref().unwrap();
    assert_eq!(sla.warn_at(), Some(cst(17, 9, 30)));
    for (state, at) in [
        (SlaState::Ok, cst(13, 17, 10)),
        (SlaState::Ok, cst(16, 15, 0)),
        (SlaState::Warning, cst(17, 9, 45)),
        (SlaState::Breached, cst(17, 10, 1)),
    ] {
        assert_eq!(
            search_sla(store, &t, state, at).await,
            [ticket.id],
            "{state:?} at {at}"
        );
        assert_eq!(sla.state(at), Some(state));
    }
    assert!(
        search_sla(store, &t, SlaState::Breached, cst(17, 9, 45))
            .await
            .is_empty()
    );
    // Urgent: targets shrink, the used time counts.
    let urgent = store
        .update(UpdateTicket {
            tenant: t.clone(),
            id: ticket.id,
            expected_version: 0,
            actor: agent(),
            at: cst(13, 17, 10),
            patch: TicketPatch {
                priority: Some(Priority::Urgent),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(first_response_due(&urgent), Some(cst(13, 17, 30)));
    // The monitor's update records the breach once.
    let due = search_sla(store, &t, SlaState::Due, cst(13, 17, 45)).await;
    assert_eq!(due, [ticket.id]);
    let checked = store
        .update(UpdateTicket {
            tenant: t.clone(),
            id: ticket.id,
            expected_version: urgent.version,
            actor: Actor::System,
            at: cst(13, 17, 45),
            patch: TicketPatch {
                sla_check: Some(cst(13, 17, 45)),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let fr = checked
        .sla
        .as_ref()
        .unwrap()
        .timers
        .iter()
        .find(|x| x.metric == SlaMetric::FirstResponse)
        .unwrap();
    assert!(fr.warned && fr.breached);
    let audit = store.audit(&t, ticket.id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.field == "sla:first_response" && a.to.as_deref() == Some("breached")),
        "{audit:?}"
    );
    // The agent's public reply meets first response; resolution runs on.
    store
        .add_comment(reply(
            &t,
            ticket.id,
            agent(),
            "It is with the courier, I am chasing it.",
            cst(13, 17, 50),
        ))
        .await
        .unwrap();
    let answered = store.get(&t, ticket.id).await.unwrap();
    assert_eq!(first_response_due(&answered), None);
    let fr = answered
        .sla
        .as_ref()
        .unwrap()
        .timers
        .iter()
        .find(|x| x.metric == SlaMetric::FirstResponse)
        .unwrap();
    assert_eq!(fr.met_at, Some(cst(13, 17, 50)));
    assert!(
        answered.sla.as_ref().unwrap().due_at().is_some(),
        "resolution still runs"
    );
}

/// SLA clocks pause while the ticket waits on the customer.
pub async fn sla_pauses_while_pending(store: &dyn TicketStore) {
    let t = tenant();
    let customer = CustomerId::new();
    let mut new = NewTicket::new(t.clone(), "size exchange", agent(), cst(13, 17, 0));
    new.customer = Some(customer);
    let ticket = store.create(new).await.unwrap();
    // Half an hour in, the agent asks the customer for a photo: the clocks stop.
    let pending = store
        .update(change(
            &t,
            ticket.id,
            0,
            agent(),
            cst(13, 17, 30),
            status(TicketStatus::PendingCustomer),
        ))
        .await
        .unwrap();
    assert_eq!(first_response_due(&pending), None);
    assert_eq!(
        search_sla(store, &t, SlaState::Paused, cst(20, 9, 0)).await,
        [ticket.id],
        "paused, however long the customer takes"
    );
    assert!(
        search_sla(store, &t, SlaState::Breached, cst(20, 9, 0))
            .await
            .is_empty()
    );
    // Tuesday 11:00 the customer replies: reopened, 1.5 h left: 11:00-12:00, lunch, 13:00-13:30.
    store
        .add_comment(reply(
            &t,
            ticket.id,
            Actor::Customer { customer },
            "照片在这里",
            cst(17, 11, 0),
        ))
        .await
        .unwrap();
    let resumed = store.get(&t, ticket.id).await.unwrap();
    assert_eq!(resumed.status, TicketStatus::Open);
    assert_eq!(first_response_due(&resumed), Some(cst(17, 13, 30)));
    assert!(
        search_sla(store, &t, SlaState::Paused, cst(17, 11, 0))
            .await
            .is_empty()
    );
}

fn desk(store: Arc<dyn TicketStore>, clock: Arc<ManualClock>) -> TicketDesk {
    TicketDeskBuilder::new(store, clock)
        .with_chain(["service", "after-sales", "logistics"])
        .with_rule(EscalationRule::on_breach(
            "breach moves up",
            None,
            EscalationTarget::Next,
        ))
        .with_rule(EscalationRule::when(
            "lost parcels go to logistics",
            |t: &Ticket| t.tags.contains("lost"),
            "logistics",
        ))
        .with_sla(sla_policy())
        .build()
        .unwrap()
}

/// The desk escalates a breached ticket along its chain (takes an owned store: the desk holds it).
pub async fn desk_escalates_on_breach(store: Arc<dyn TicketStore>) {
    let t = tenant();
    let clock = Arc::new(ManualClock::new(cst(13, 17, 0)));
    let desk = desk(store.clone(), clock.clone());
    let mut new = NewTicket::new(t.clone(), "refund not received", agent(), clock.now());
    new.group = Some("service".into());
    let ticket = store.create(new).await.unwrap();
    assert!(desk.tick(&t).await.unwrap().is_empty(), "nothing due yet");
    // Over the weekend and the holiday nothing happens.
    clock.set(cst(16, 23, 0));
    assert!(desk.tick(&t).await.unwrap().is_empty());
    clock.set(cst(17, 9, 40));
    let events = desk.tick(&t).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(
        events[0].kind,
        TicketEventKind::SlaWarning {
            metric: SlaMetric::FirstResponse,
            ..
        }
    ));
    assert!(
        desk.tick(&t).await.unwrap().is_empty(),
        "a warning is sent once"
    );
    let lines = desk.countdown(&store.get(&t, ticket.id).await.unwrap());
    let fr = lines
        .iter()
        .find(|l| l.metric == SlaMetric::FirstResponse)
        .unwrap();
    assert_eq!(fr.remaining_secs, Some(20 * 60), "20 business minutes left");
    clock.set(cst(17, 10, 5));
    let events = desk.tick(&t).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            TicketEventKind::SlaBreached {
                metric: SlaMetric::FirstResponse
            },
            TicketEventKind::Escalated {
                from: Some("service".into()),
                to: "after-sales".into(),
                rule: "breach moves up".into(),
            },
        ]
    );
    let moved = store.get(&t, ticket.id).await.unwrap();
    assert_eq!(moved.group.as_deref(), Some("after-sales"));
    let notes = store.comments(&t, ticket.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| !c.public && c.body.contains("after-sales")),
        "escalation leaves an internal note: {notes:?}"
    );
    assert!(
        desk.tick(&t).await.unwrap().is_empty(),
        "a breach escalates once"
    );
    // Resolution breaches later: up again, to logistics.
    clock.set(cst(18, 12, 0));
    let events = desk.tick(&t).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, TicketEventKind::Escalated { to, .. } if to == "logistics")),
        "{events:?}"
    );
    // The end of the chain: nothing further.
    assert_eq!(
        store.get(&t, ticket.id).await.unwrap().group.as_deref(),
        Some("logistics")
    );
}

/// The desk hands a conversation over as a ticket and answers customers' status questions (takes an owned store: the desk holds it).
pub async fn desk_hands_over_and_answers_customers(store: Arc<dyn TicketStore>) {
    let t = tenant();
    let clock = Arc::new(ManualClock::new(cst(11, 10, 0)));
    let desk = desk(store.clone(), clock.clone());
    let customer = CustomerId::new();
    let mut new = NewTicket::new(
        t.clone(),
        "退货运费谁出",
        Actor::Customer { customer },
        clock.now(),
    );
    new.customer = Some(customer);
    new.group = Some("service".into());
    let ticket = store.create(new).await.unwrap();
    let (moved, event) = desk
        .hand_over(HandOver {
            tenant: t.clone(),
            ticket: ticket.id,
            to: "after-sales".into(),
            note: "customer has the return label already".into(),
            actor: agent(),
        })
        .await
        .unwrap();
    assert_eq!(moved.group.as_deref(), Some("after-sales"));
    assert!(
        matches!(event.kind, TicketEventKind::HandedOver { ref to, .. } if to == "after-sales")
    );
    let comments = store.comments(&t, ticket.id).await.unwrap();
    assert!(
        comments
            .iter()
            .any(|c| !c.public && c.body.contains("return label"))
    );
    assert!(
        desk.hand_over(HandOver {
            tenant: t.clone(),
            ticket: ticket.id,
            to: "after-sales".into(),
            note: "again".into(),
            actor: agent(),
        })
        .await
        .is_err(),
        "already there"
    );

    // A condition rule: tagged lost -> logistics.
    let cur = store.get(&t, ticket.id).await.unwrap();
    store
        .update(UpdateTicket {
            tenant: t.clone(),
            id: ticket.id,
            expected_version: cur.version,
            actor: agent(),
            at: clock.now(),
            patch: TicketPatch {
                add_tags: vec!["lost".into()],
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let events = desk.apply_rules(&t, ticket.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert!(
        desk.apply_rules(&t, ticket.id).await.unwrap().is_empty(),
        "fires once"
    );

    // The customer asks about their ticket by number; another customer cannot see it.
    let view = desk
        .customer_status(&t, ticket.number, customer)
        .await
        .unwrap();
    assert_eq!(view.status, TicketStatus::New);
    assert_eq!(view.group.as_deref(), Some("logistics"));
    assert!(
        view.replies.iter().all(|c| c.public),
        "internal notes stay internal"
    );
    assert!(view.resolution_due.is_some());
    assert!(!view.can_rate);
    assert!(matches!(
        desk.customer_status(&t, ticket.number, CustomerId::new())
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        desk.rate(&t, ticket.number, customer, 5, None).await,
        Err(Error::InvalidInput { .. })
    ));

    let cur = store.get(&t, ticket.id).await.unwrap();
    store
        .update(change(
            &t,
            ticket.id,
            cur.version,
            agent(),
            clock.now(),
            status(TicketStatus::Solved),
        ))
        .await
        .unwrap();
    assert!(
        desk.customer_status(&t, ticket.number, customer)
            .await
            .unwrap()
            .can_rate
    );
    let event = desk
        .rate(&t, ticket.number, customer, 5, Some("很满意".into()))
        .await
        .unwrap();
    assert_eq!(
        event.kind,
        TicketEventKind::CsatSubmitted {
            score: 5,
            comment: Some("很满意".into())
        }
    );
    assert_eq!(
        store
            .get(&t, ticket.id)
            .await
            .unwrap()
            .csat
            .map(|c| c.score),
        Some(5)
    );
    assert!(
        !desk
            .customer_status(&t, ticket.number, customer)
            .await
            .unwrap()
            .can_rate
    );
    // Searching by the Chinese subject finds it, by a 3+ character phrase too.
    for needle in ["运费", "退货运费"] {
        let found = store
            .search(&TicketQuery {
                tenant: t.clone(),
                text: Some(needle.into()),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{needle}");
    }
}
