//! The operations a desk runs on: re-prioritising, picking, restoring, withdrawn offers, waits
//! for signed-in agents, the any-agent ring, tasks queued again. The first three are in
//! [`super::run`], the others in [`super::run_policy`] (each says the policy it needs).

use chrono::Duration;
use cs_core::{AgentId, ChannelKind, ConversationId, CustomerTier, Presence, Priority};

use super::*;

/// Re-prioritising a queued task moves it up or down the queue; it keeps its enqueue time, and
/// only a queued task can be re-prioritised.
pub async fn reprioritize_moves_a_task(r: &dyn Router) {
    let old = task(0);
    let angry = task(10);
    for t in [&old, &angry] {
        assert!(r.enqueue(t.clone()).await.unwrap().is_empty());
    }
    let d = r
        .reprioritize(angry.id, Priority::Urgent.into())
        .await
        .unwrap();
    assert!(d.is_empty(), "nobody is online");
    let snap = r.snapshot().await.unwrap();
    assert_eq!(
        queue_order(&snap),
        [angry.id, old.id],
        "the angry customer goes first"
    );
    assert_eq!(snap.queued[0].task.priority, Priority::Urgent);
    assert_eq!(
        snap.queued[0].task.enqueued_at, angry.enqueued_at,
        "and keeps their enqueue time"
    );
    let ann = agent("ann", 1, &[]);
    let d = r.upsert_agent(ann.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(angry.id, ann.id)]);
    for id in [angry.id, ConversationId::new()] {
        assert!(
            matches!(
                r.reprioritize(id, Priority::Low.into()).await,
                Err(Error::NotFound { .. })
            ),
            "only queued tasks"
        );
    }
    let newer = task(20);
    r.enqueue(newer.clone()).await.unwrap();
    r.reprioritize(old.id, Priority::Low.into()).await.unwrap();
    assert_eq!(
        queue_order(&r.snapshot().await.unwrap()),
        [newer.id, old.id],
        "down as well as up"
    );
    let d = r.release(ann.id, angry.id).await.unwrap();
    assert_eq!(assigned(&d), [(newer.id, ann.id)]);
}

/// An agent picks a queued task out of turn: the task's skills, language and place are
/// overridden; presence and capacity are not, and a task someone has cannot be picked.
pub async fn pick_takes_a_queued_task(r: &dyn Router) {
    let mut ann = agent("ann", 2, &[("faq", 5)]);
    r.upsert_agent(ann.clone()).await.unwrap();
    let complaint = |at| {
        let mut t = task(at);
        t.requirements = vec![SkillRequirement::new("complaints", 5)];
        t.language = Some("fr".into());
        t
    };
    let (first, second, third) = (complaint(0), complaint(1), complaint(2));
    for t in [&first, &second] {
        assert!(r.enqueue(t.clone()).await.unwrap().is_empty());
    }
    assert!(matches!(
        r.pick(AgentId::new(), first.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        r.pick(ann.id, ConversationId::new()).await,
        Err(Error::NotFound { .. })
    ));
    let d = r.pick(ann.id, second.id).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(second.id, ann.id)],
        "out of turn, without the skill or the language"
    );
    let snap = r.snapshot().await.unwrap();
    assert_eq!(queue_order(&snap), [first.id]);
    assert_eq!(snap.agents[0].tasks, [second.id]);
    assert!(
        matches!(r.pick(ann.id, second.id).await, Err(Error::Conflict { .. })),
        "already assigned"
    );
    let mut call = complaint(3);
    call.channel = ChannelKind::Voice;
    r.enqueue(call.clone()).await.unwrap();
    assert_eq!(assigned(&r.pick(ann.id, call.id).await.unwrap()).len(), 1);
    assert!(
        matches!(r.pick(ann.id, first.id).await, Err(Error::Conflict { .. })),
        "on a call, no chats"
    );
    r.release(ann.id, call.id).await.unwrap();
    ann.presence = Presence::Away;
    r.upsert_agent(ann.clone()).await.unwrap();
    assert!(
        matches!(r.pick(ann.id, first.id).await, Err(Error::Conflict { .. })),
        "away agents pick nothing"
    );
    ann.presence = Presence::Online;
    r.upsert_agent(ann.clone()).await.unwrap();
    assert_eq!(
        assigned(&r.pick(ann.id, first.id).await.unwrap()),
        [(first.id, ann.id)]
    );
    r.enqueue(third.clone()).await.unwrap();
    assert!(
        matches!(r.pick(ann.id, third.id).await, Err(Error::Conflict { .. })),
        "two chats: full"
    );
    assert!(
        r.release(ann.id, second.id).await.unwrap().is_empty(),
        "a picked task is released like any other; the third still needs the skill"
    );
    assert_eq!(
        assigned(&r.pick(ann.id, third.id).await.unwrap()),
        [(third.id, ann.id)]
    );
}

/// Restoring assignments at start-up counts them in the agents' loads without any decision,
/// also for an agent the router does not know yet; a release frees them.
pub async fn restore_keeps_assignments(r: &dyn Router) {
    let ann = agent("ann", 1, &[]);
    let held = task(0);
    r.restore(ann.id, held.clone()).await.unwrap();
    let snap = r.snapshot().await.unwrap();
    assert!(snap.queued.is_empty());
    assert_eq!(snap.agents.len(), 1);
    assert_eq!(snap.agents[0].agent, ann.id);
    assert_eq!(snap.agents[0].tasks, [held.id]);
    assert_ne!(snap.agents[0].presence, Presence::Online);
    assert!(matches!(
        r.restore(ann.id, held.clone()).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        r.enqueue(held.clone()).await,
        Err(Error::Conflict { .. })
    ));
    let mut bad = task(1);
    bad.requirements = vec![SkillRequirement::new("", 3)];
    assert!(matches!(
        r.restore(ann.id, bad).await,
        Err(Error::InvalidInput { .. })
    ));
    let waiting = task(2);
    assert!(r.enqueue(waiting.clone()).await.unwrap().is_empty());
    assert!(
        r.upsert_agent(ann.clone()).await.unwrap().is_empty(),
        "ann is back, but her one slot holds the restored chat"
    );
    let d = r.release(ann.id, held.id).await.unwrap();
    assert_eq!(assigned(&d), [(waiting.id, ann.id)]);
    let bob = agent("bob", 2, &[]);
    r.upsert_agent(bob.clone()).await.unwrap();
    let mut call = task(3);
    call.channel = ChannelKind::Voice;
    r.restore(bob.id, call.clone()).await.unwrap();
    let chat = task(4);
    assert!(
        r.enqueue(chat.clone()).await.unwrap().is_empty(),
        "bob is on a restored call, which blocks chats"
    );
    let d = r.release(bob.id, call.id).await.unwrap();
    assert_eq!(assigned(&d), [(chat.id, bob.id)]);
}

/// Policy routers with a 10 s aging step (and the default VIP bonus of one band): a
/// re-prioritised task's rank is its original enqueue time minus its new band's worth of
/// waiting, the tier counting too.
pub async fn reprioritize_follows_aging(r: &dyn Router) {
    let mut low = task(0);
    low.priority = Priority::Low;
    let normal = task(15);
    for t in [&low, &normal] {
        r.enqueue(t.clone()).await.unwrap();
    }
    assert_eq!(
        queue_order(&r.snapshot().await.unwrap()),
        [low.id, normal.id],
        "ranks 0 s and 5 s"
    );
    r.reprioritize(normal.id, Priority::Urgent.into())
        .await
        .unwrap();
    assert_eq!(
        queue_order(&r.snapshot().await.unwrap()),
        [normal.id, low.id],
        "15 s - 3 bands x 10 s = -15 s"
    );
    r.reprioritize(
        low.id,
        Reprioritize::to(Priority::High).with_tier(CustomerTier::Vip),
    )
    .await
    .unwrap();
    let snap = r.snapshot().await.unwrap();
    assert_eq!(
        queue_order(&snap),
        [low.id, normal.id],
        "0 s - (2 + 1 VIP) bands x 10 s = -30 s: same band, the older first"
    );
    assert_eq!(snap.queued[0].task.tier, CustomerTier::Vip);
    assert_eq!(snap.queued[0].task.enqueued_at, low.enqueued_at);
}

/// Policy routers with a 60 s sticky wait and reservations (30 s, 2 misses): a pick assigns at
/// once, overrides a sticky hold for another agent and the picker's own rejection; a task
/// offered to someone else cannot be picked, and one offered to the picker is accepted.
pub async fn pick_overrides_holds_and_offers(r: &dyn Router) {
    let ann = agent("ann", 1, &[]);
    let bob = agent("bob", 1, &[]);
    r.upsert_agent(ann.clone()).await.unwrap();
    r.upsert_agent(bob.clone()).await.unwrap();
    let t1 = task(0);
    assert_eq!(
        offered(&r.enqueue(t1.clone()).await.unwrap()),
        [(t1.id, ann.id)]
    );
    assert!(
        matches!(r.pick(bob.id, t1.id).await, Err(Error::Conflict { .. })),
        "offered to ann"
    );
    assert_eq!(
        r.pick(ann.id, t1.id).await.unwrap(),
        [Decision::Assigned {
            task: t1.id,
            agent: ann.id
        }],
        "picking one's own offer accepts it"
    );
    let mut t2 = task(1);
    t2.preferred_agent = Some(ann.id);
    assert!(
        r.enqueue(t2.clone()).await.unwrap().is_empty(),
        "waits for ann"
    );
    assert_eq!(
        r.pick(bob.id, t2.id).await.unwrap(),
        [Decision::Assigned {
            task: t2.id,
            agent: bob.id
        }],
        "bob takes it over the hold, assigned at once"
    );
    let t3 = task(2);
    assert!(r.enqueue(t3.clone()).await.unwrap().is_empty());
    assert_eq!(
        offered(&r.release(bob.id, t2.id).await.unwrap()),
        [(t3.id, bob.id)]
    );
    assert!(r.reject(bob.id, t3.id).await.unwrap().is_empty());
    assert_eq!(
        assigned(&r.pick(bob.id, t3.id).await.unwrap()),
        [(t3.id, bob.id)],
        "bob changes his mind"
    );
    assert_eq!(r.next_deadline().await.unwrap(), None);
}

/// Releasing a task still offered withdraws the offer (the customer left before the agent
/// accepted): the slot is free at once, nothing expires later and no offer was missed.
pub async fn release_withdraws_an_offer(r: &dyn Router) {
    let ann = agent("ann", 1, &[]);
    r.upsert_agent(ann.clone()).await.unwrap();
    let t1 = task(0);
    let t2 = task(1);
    assert_eq!(
        offered(&r.enqueue(t1.clone()).await.unwrap()),
        [(t1.id, ann.id)]
    );
    assert!(
        r.enqueue(t2.clone()).await.unwrap().is_empty(),
        "ann is full"
    );
    let d = r.release(ann.id, t1.id).await.unwrap();
    assert_eq!(
        offered(&d),
        [(t2.id, ann.id)],
        "the withdrawn offer frees ann for the next task"
    );
    assert!(matches!(
        r.accept(ann.id, t1.id).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        assigned(&r.accept(ann.id, t2.id).await.unwrap()),
        [(t2.id, ann.id)]
    );
    assert_eq!(
        r.next_deadline().await.unwrap(),
        None,
        "nothing left to expire"
    );
    assert!(
        r.tick(t0() + Duration::seconds(120))
            .await
            .unwrap()
            .is_empty()
    );
    let snap = r.snapshot().await.unwrap();
    assert_eq!(snap.agents[0].presence, Presence::Online);
    assert_eq!(snap.agents[0].tasks, [t2.id]);
}

/// A task queued again with its original `enqueued_at` (after a restart, a hand-over) keeps its
/// place although the router's clock is later: it goes before tasks that came after it.
pub async fn requeued_task_keeps_its_place(r: &dyn Router) {
    let later = task(600);
    r.enqueue(later.clone()).await.unwrap();
    r.tick(t0() + Duration::seconds(700)).await.unwrap();
    let original = task(0);
    assert!(r.enqueue(original.clone()).await.unwrap().is_empty());
    let order: Vec<_> = r
        .snapshot()
        .await
        .unwrap()
        .queued
        .iter()
        .map(|q| (q.task.id, q.task.enqueued_at))
        .collect();
    assert_eq!(
        order,
        [
            (original.id, original.enqueued_at),
            (later.id, later.enqueued_at)
        ],
        "the older task first, its time unchanged"
    );
    let a = agent("ann", 1, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(original.id, a.id)]);
}

/// Policy routers with a 60 s sticky wait: a task waits only for a preferred agent who is signed
/// in, and stops waiting when they sign out.
pub async fn sticky_hold_needs_a_signed_in_agent(r: &dyn Router) {
    let mut ann = agent("ann", 1, &[]);
    let bob = agent("bob", 1, &[]);
    r.upsert_agent(ann.clone()).await.unwrap();
    r.upsert_agent(bob.clone()).await.unwrap();
    let busy = task(0);
    assert_eq!(
        assigned(&r.enqueue(busy.clone()).await.unwrap()),
        [(busy.id, ann.id)]
    );
    let mut back = task(1);
    back.preferred_agent = Some(ann.id);
    assert!(
        r.enqueue(back.clone()).await.unwrap().is_empty(),
        "waits for ann"
    );
    ann.presence = Presence::Offline;
    let d = r.upsert_agent(ann.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(back.id, bob.id)],
        "ann signed out: bob takes her customer at once"
    );
    let mut again = task(2);
    again.preferred_agent = Some(ann.id);
    assert!(
        r.enqueue(again.clone()).await.unwrap().is_empty(),
        "bob is full"
    );
    assert_eq!(
        r.next_deadline().await.unwrap(),
        None,
        "no wait for an agent who is offline"
    );
    let d = r.release(bob.id, back.id).await.unwrap();
    assert_eq!(assigned(&d), [(again.id, bob.id)]);
}

/// An overflow ring of [`Relax::AnySkill`], [`Relax::AnyLanguage`] and [`Relax::AnyTeam`]
/// gives a task nobody online can serve to any agent with a free slot, once it has waited.
pub async fn last_ring_reaches_any_agent(r: &dyn Router) {
    let mut alice = agent("alice", 1, &[("faq", 5)]);
    alice.languages = vec!["zh".into()];
    r.upsert_agent(alice.clone()).await.unwrap();
    let mut complaint = task(0);
    complaint.requirements = vec![SkillRequirement::new("complaints", 1)];
    complaint.language = Some("fr".into());
    complaint.team = Some("escalations".into());
    assert!(
        r.enqueue(complaint.clone()).await.unwrap().is_empty(),
        "nobody has the skill, the language or the team"
    );
    assert_eq!(
        r.next_deadline().await.unwrap(),
        Some(t0() + Duration::seconds(45))
    );
    assert!(
        r.tick(t0() + Duration::seconds(44))
            .await
            .unwrap()
            .is_empty()
    );
    let d = r.tick(t0() + Duration::seconds(45)).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(complaint.id, alice.id)],
        "after the ring's wait, any agent with room"
    );
    let mut second = complaint.clone();
    second.id = ConversationId::new();
    second.enqueued_at = t0() + Duration::seconds(10);
    r.enqueue(second.clone()).await.unwrap();
    assert!(
        r.tick(t0() + Duration::seconds(100))
            .await
            .unwrap()
            .is_empty(),
        "relaxed, but never past capacity: alice has one chat slot"
    );
    let d = r.release(alice.id, complaint.id).await.unwrap();
    assert_eq!(assigned(&d), [(second.id, alice.id)]);
}
