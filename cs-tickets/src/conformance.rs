//! The behaviour every [`TicketStore`] must show (feature `conformance`).
//!
//! Each check works in its own random tenant, so a shared database needs no cleaning.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cs_core::{AgentId, CustomerId, Priority, TenantId, TicketId};

use crate::error::Error;
use crate::model::{
    Actor, NewComment, NewTicket, TicketPatch, TicketQuery, TicketStatus, UpdateTicket,
};
use crate::store::TicketStore;

/// Runs every check against `store`.
pub async fn run(store: Arc<dyn TicketStore>) {
    numbers_are_sequential_per_tenant(store.as_ref()).await;
    updates_are_versioned_and_audited(store.as_ref()).await;
    concurrent_writers_never_lose_updates(store.clone()).await;
    comments_and_reopen(store.as_ref()).await;
    workflow_is_enforced(store.as_ref()).await;
    search_filters(store.as_ref()).await;
}

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

async fn numbers_are_sequential_per_tenant(store: &dyn TicketStore) {
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

async fn updates_are_versioned_and_audited(store: &dyn TicketStore) {
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

async fn concurrent_writers_never_lose_updates(store: Arc<dyn TicketStore>) {
    let t = tenant();
    let ticket = store
        .create(NewTicket::new(t.clone(), "busy ticket", agent(), t0()))
        .await
        .unwrap();
    // 8 writers each add their own tag, re-reading and retrying on conflict.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let t = t.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let current = store.get(&t, ticket.id).await.unwrap();
                    let r = store
                        .update(UpdateTicket {
                            tenant: t.clone(),
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
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let done = store.get(&t, ticket.id).await.unwrap();
    assert_eq!(
        done.tags.len(),
        8,
        "every writer's change survived: {:?}",
        done.tags
    );
    assert_eq!(done.version, 8, "one version per successful write");
}

async fn comments_and_reopen(store: &dyn TicketStore) {
    let t = tenant();
    let customer = CustomerId::new();
    let mut new = NewTicket::new(t.clone(), "refund", Actor::Customer { customer }, t0());
    new.description = Some("I want my money back".into());
    new.customer = Some(customer);
    let ticket = store.create(new).await.unwrap();
    let note = store
        .add_comment(NewComment {
            tenant: t.clone(),
            ticket: ticket.id,
            author: agent(),
            body: "checked with finance".into(),
            public: false,
            attachments: Vec::new(),
            at: t0() + Duration::minutes(1),
        })
        .await
        .unwrap();
    assert_eq!(note.seq, 2, "the description is comment 1");
    let current = store.get(&t, ticket.id).await.unwrap();
    let solved = store
        .update(UpdateTicket {
            tenant: t.clone(),
            id: ticket.id,
            expected_version: current.version,
            actor: agent(),
            at: t0() + Duration::minutes(2),
            patch: TicketPatch {
                status: Some(TicketStatus::Solved),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(solved.status, TicketStatus::Solved);
    store
        .add_comment(NewComment {
            tenant: t.clone(),
            ticket: ticket.id,
            author: Actor::Customer { customer },
            body: "still not refunded".into(),
            public: true,
            attachments: Vec::new(),
            at: t0() + Duration::minutes(3),
        })
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
            .add_comment(NewComment {
                tenant: t.clone(),
                ticket: TicketId::new(),
                author: agent(),
                body: "x".into(),
                public: true,
                attachments: Vec::new(),
                at: t0(),
            })
            .await,
        Err(Error::NotFound { .. })
    ));
}

async fn workflow_is_enforced(store: &dyn TicketStore) {
    let t = tenant();
    let ticket = store
        .create(NewTicket::new(t.clone(), "closing", agent(), t0()))
        .await
        .unwrap();
    let closed = store
        .update(UpdateTicket {
            tenant: t.clone(),
            id: ticket.id,
            expected_version: 0,
            actor: agent(),
            at: t0(),
            patch: TicketPatch {
                status: Some(TicketStatus::Closed),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let err = store
        .update(UpdateTicket {
            tenant: t.clone(),
            id: ticket.id,
            expected_version: closed.version,
            actor: agent(),
            at: t0(),
            patch: TicketPatch {
                status: Some(TicketStatus::Open),
                ..Default::default()
            },
        })
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
        .add_comment(NewComment {
            tenant: t.clone(),
            ticket: ticket.id,
            author: agent(),
            body: "late".into(),
            public: true,
            attachments: Vec::new(),
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }),
        "no comments on closed: {err:?}"
    );
}

async fn search_filters(store: &dyn TicketStore) {
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
