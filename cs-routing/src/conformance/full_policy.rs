//! The checks of the full routing policy ([`super::run_policy`]); each says the policy the
//! router must have.

use chrono::Duration;
use cs_core::{AgentId, ConversationId, Presence, Priority};

use super::*;

/// Policy routers (default policy): the least loaded agent, then the longest idle.
pub async fn least_loaded_then_longest_idle(r: &dyn Router) {
    let a = agent("ann", 2, &[]);
    let b = agent("bob", 2, &[]);
    r.upsert_agent(a.clone()).await.unwrap();
    r.upsert_agent(b.clone()).await.unwrap();
    let got: Vec<_> = futures_lite(r, 3).await;
    assert_eq!(
        got,
        [a.id, b.id, a.id],
        "longest idle first, then least loaded, then longest idle"
    );
}

/// Policy routers (default policy): a VIP task goes to the most proficient agent.
pub async fn vip_gets_highest_proficiency(r: &dyn Router) {
    let novice = agent("novice", 2, &[("refunds", 5)]);
    let expert = agent("expert", 2, &[("refunds", 9)]);
    r.upsert_agent(novice.clone()).await.unwrap();
    r.upsert_agent(expert.clone()).await.unwrap();
    let mut vip = task(0);
    vip.tier = cs_core::CustomerTier::Vip;
    vip.requirements = vec![SkillRequirement::new("refunds", 3)];
    let d = r.enqueue(vip.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(vip.id, expert.id)], "VIP to the expert");
    let mut plain = task(1);
    plain.requirements = vip.requirements.clone();
    let d = r.enqueue(plain.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(plain.id, novice.id)],
        "others to the least loaded"
    );
}

/// Policy routers (default policy): the agent must speak the task's language.
pub async fn language_must_match(r: &dyn Router) {
    let zh = agent("zh", 2, &[]);
    let mut fr = agent("fr", 2, &[]);
    fr.languages = vec!["fr".into()];
    r.upsert_agent(zh.clone()).await.unwrap();
    let mut t = task(0);
    t.language = Some("fr".into());
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "nobody speaks French yet"
    );
    let d = r.upsert_agent(fr.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(t.id, fr.id)]);
}

/// Policy routers with a 10 s aging step: a task of a lower band passes once it has waited
/// long enough.
pub async fn aging_lets_old_tasks_pass(r: &dyn Router) {
    // Aging step 10 s: urgent (band 3) is worth 20 s of waiting over low (band 1 below normal).
    let mut low = task(0);
    low.priority = Priority::Low;
    let mut urgent_late = task(31);
    urgent_late.priority = Priority::Urgent;
    let mut urgent_early = task(29);
    urgent_early.priority = Priority::Urgent;
    for t in [&low, &urgent_late, &urgent_early] {
        r.enqueue(t.clone()).await.unwrap();
    }
    let order: Vec<_> = r
        .snapshot()
        .await
        .unwrap()
        .queued
        .iter()
        .map(|q| q.task.id)
        .collect();
    assert_eq!(
        order,
        [urgent_early.id, low.id, urgent_late.id],
        "rank = enqueued - 10 s x band"
    );
    let a = agent("ann", 1, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(urgent_early.id, a.id)]);
}

/// Policy routers with a 60 s sticky wait: a task waits for its preferred agent, then
/// goes to anyone eligible.
pub async fn sticky_agent_waits_then_falls_back(r: &dyn Router) {
    let ann = agent("ann", 1, &[]);
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
        "waits for ann although bob is free"
    );
    let d = r.release(ann.id, busy.id).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(back.id, ann.id)],
        "ann takes her customer back"
    );
    let mut again = task(2);
    again.preferred_agent = Some(ann.id);
    assert!(r.enqueue(again.clone()).await.unwrap().is_empty());
    assert_eq!(
        r.next_deadline().await.unwrap(),
        Some(t0() + Duration::seconds(62)),
        "the hold ends 60 s after enqueueing"
    );
    assert!(
        r.tick(t0() + Duration::seconds(61))
            .await
            .unwrap()
            .is_empty()
    );
    let d = r.tick(t0() + Duration::seconds(62)).await.unwrap();
    assert_eq!(assigned(&d), [(again.id, bob.id)], "then anyone eligible");
}

/// Policy routers with rings at 30 s (lower levels by 3, add team `logistics`) and 90 s (any
/// team): requirements relax while the task keeps its place.
pub async fn rings_relax_requirements(r: &dyn Router) {
    let mut a = agent("logi", 2, &[("refunds", 6)]);
    a.team = Some("logistics".into());
    r.upsert_agent(a.clone()).await.unwrap();
    let mut first = task(0);
    first.requirements = vec![SkillRequirement::new("refunds", 8)];
    first.team = Some("after-sales".into());
    let mut second = first.clone();
    second.id = ConversationId::new();
    second.enqueued_at = t0() + Duration::seconds(5);
    r.enqueue(first.clone()).await.unwrap();
    r.enqueue(second.clone()).await.unwrap();
    assert!(
        r.tick(t0() + Duration::seconds(29))
            .await
            .unwrap()
            .is_empty()
    );
    let d = r.tick(t0() + Duration::seconds(30)).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(first.id, a.id)],
        "ring 1 lowers the level and adds the backup team"
    );
    let d = r.tick(t0() + Duration::seconds(35)).await.unwrap();
    assert_eq!(assigned(&d), [(second.id, a.id)]);
    let mut other = agent("other", 1, &[("refunds", 9)]);
    other.team = Some("presale".into());
    r.upsert_agent(other.clone()).await.unwrap();
    let mut third = first.clone();
    third.id = ConversationId::new();
    third.enqueued_at = t0() + Duration::seconds(40);
    assert!(r.enqueue(third.clone()).await.unwrap().is_empty());
    let d = r.tick(t0() + Duration::seconds(130)).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(third.id, other.id)],
        "ring 2 opens every team"
    );
}

/// Policy routers with a standby pool (team `standby`, depth 2, oldest wait 120 s): standby
/// agents join only while the queue is deep or old.
pub async fn standby_joins_deep_queue(r: &dyn Router) {
    let mut s = agent("standby", 4, &[]);
    s.team = Some("standby".into());
    r.upsert_agent(s.clone()).await.unwrap();
    let one = task(0);
    assert!(
        r.enqueue(one.clone()).await.unwrap().is_empty(),
        "the pool waits while the queue is short"
    );
    let two = task(1);
    let d = r.enqueue(two.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(one.id, s.id), (two.id, s.id)],
        "depth 2 brings the pool in, and it drains the queue"
    );
    let three = task(2);
    assert!(
        r.enqueue(three.clone()).await.unwrap().is_empty(),
        "the queue is short again"
    );
    assert!(
        r.tick(t0() + Duration::seconds(121))
            .await
            .unwrap()
            .is_empty()
    );
    let d = r.tick(t0() + Duration::seconds(122)).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(three.id, s.id)],
        "a task waiting 120 s brings it in too"
    );
}

/// Policy routers with reservations (30 s, 2 misses): offers are accepted, rejected (never
/// to the same agent again) or expire, and an agent missing two in a row is set away.
pub async fn offers_accept_reject_expire(r: &dyn Router) {
    let ann = agent("ann", 2, &[]);
    r.upsert_agent(ann.clone()).await.unwrap();
    let t1 = task(0);
    let d = r.enqueue(t1.clone()).await.unwrap();
    assert_eq!(
        offered(&d),
        [(t1.id, ann.id)],
        "an offer, not an assignment"
    );
    assert_eq!(
        r.next_deadline().await.unwrap(),
        Some(t0() + Duration::seconds(30))
    );
    let d = r.accept(ann.id, t1.id).await.unwrap();
    assert_eq!(assigned(&d), [(t1.id, ann.id)]);
    assert!(matches!(
        r.accept(ann.id, t1.id).await,
        Err(Error::Conflict { .. })
    ));
    let t2 = task(1);
    assert_eq!(
        offered(&r.enqueue(t2.clone()).await.unwrap()),
        [(t2.id, ann.id)]
    );
    let d = r.reject(ann.id, t2.id).await.unwrap();
    assert!(d.is_empty(), "not offered to ann again");
    let bob = agent("bob", 2, &[]);
    let d = r.upsert_agent(bob.clone()).await.unwrap();
    assert_eq!(offered(&d), [(t2.id, bob.id)], "then the next agent");
    let t3 = task(2);
    let d = r.enqueue(t3.clone()).await.unwrap();
    assert_eq!(
        offered(&d),
        [(t3.id, ann.id)],
        "equal load: ann idled longer"
    );
    r.accept(ann.id, t3.id).await.unwrap();
    let t4 = task(3);
    let d = r.enqueue(t4.clone()).await.unwrap();
    assert_eq!(offered(&d), [(t4.id, bob.id)], "ann is full");
    let d = r.tick(t0() + Duration::seconds(33)).await.unwrap();
    assert_eq!(
        d,
        [
            Decision::OfferExpired {
                task: t2.id,
                agent: bob.id
            },
            Decision::OfferExpired {
                task: t4.id,
                agent: bob.id
            },
            Decision::AgentAway { agent: bob.id },
        ],
        "both offers to bob expire in time order; two misses in a row: bob is away"
    );
    let snap = r.snapshot().await.unwrap();
    assert_eq!(snap.queued.len(), 2);
    let bob_now = snap.agents.iter().find(|a| a.agent == bob.id).unwrap();
    assert_eq!(bob_now.presence, Presence::Away);
    let d = r.release(ann.id, t1.id).await.unwrap();
    assert_eq!(
        offered(&d),
        [(t4.id, ann.id)],
        "t2 was rejected by ann; t4 keeps its place for her"
    );
}

/// Bot-first reception: a new task goes to the bot; when it comes back (the router remembers
/// it, or [`Task::skip_bot`] says so, as after a restart) it is queued.
pub async fn bot_first_then_queue(r: &dyn Router) {
    let t = task(0);
    let d = r.enqueue(t.clone()).await.unwrap();
    assert_eq!(d, [Decision::ToBot { task: t.id }]);
    assert!(r.snapshot().await.unwrap().queued.is_empty());
    let d = r.enqueue(t.clone()).await.unwrap();
    assert!(d.is_empty(), "handed over by the bot: queued");
    assert_eq!(r.snapshot().await.unwrap().queued.len(), 1);
    let mut back = task(1);
    back.skip_bot = true;
    assert!(
        r.enqueue(back.clone()).await.unwrap().is_empty(),
        "a task the bot has seen (before a restart) is queued at once"
    );
    assert_eq!(r.snapshot().await.unwrap().queued.len(), 2);
}

/// Enqueues `n` plain tasks and returns who got each.
async fn futures_lite(r: &dyn Router, n: i64) -> Vec<AgentId> {
    let mut who = Vec::new();
    for i in 0..n {
        let d = r.enqueue(task(i)).await.unwrap();
        who.extend(assigned(&d).into_iter().map(|(_, a)| a));
    }
    who
}
