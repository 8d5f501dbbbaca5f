//! The behaviour every [`Router`] must show (feature `conformance`).
//!
//! Call [`run`] with a factory that makes a fresh, empty router; each check gets its own. Routers
//! that follow the full routing policy ([`crate::policy`]) also call [`run_policy`] with a factory
//! taking the policy to configure. Each check is also a public function of its own, so a router
//! that supports only some behaviours can call those (the checks of [`run_policy`] say which
//! policy the router must have).

use chrono::{DateTime, Duration, TimeZone, Utc};
use cs_core::{
    Agent, AgentId, Capacity, ChannelKind, ConversationId, CustomerTier, Presence, Priority, Skill,
    TenantId,
};

use std::time::Duration as StdDuration;

use crate::checker::Checker;
use crate::error::Error;
use crate::policy::{
    BotFirst, OverflowRing, Relax, RoutingPolicy, RoutingPolicyBuilder, StandbyPool,
};
use crate::router::Router;
use crate::task::{Decision, Reprioritize, SkillRequirement, Task};

/// Runs every check, each on a router made by `make`.
pub async fn run(make: &dyn Fn() -> Box<dyn Router>) {
    assigns_to_an_eligible_agent(make().as_ref()).await;
    respects_capacity_and_release(make().as_ref()).await;
    requires_skills_at_level(make().as_ref()).await;
    orders_by_priority_then_age(make().as_ref()).await;
    ignores_agents_not_online(make().as_ref()).await;
    voice_blocks_chat(make().as_ref()).await;
    refuses_bad_calls(make().as_ref()).await;
    cancel_removes_from_queue(make().as_ref()).await;
    reprioritize_moves_a_task(make().as_ref()).await;
    pick_takes_a_queued_task(make().as_ref()).await;
    restore_keeps_assignments(make().as_ref()).await;
    keeps_policy_under_load(make().as_ref()).await;
}

/// Runs the checks of the full routing policy ([`crate::policy`]), each on a router made by
/// `make` with the policy the check needs.
pub async fn run_policy(make: &dyn Fn(RoutingPolicy) -> Box<dyn Router>) {
    let default = || make(RoutingPolicy::default());
    least_loaded_then_longest_idle(default().as_ref()).await;
    vip_gets_highest_proficiency(default().as_ref()).await;
    language_must_match(default().as_ref()).await;
    aging_lets_old_tasks_pass(make(policy().with_aging_step(secs(10)).done()).as_ref()).await;
    sticky_agent_waits_then_falls_back(make(policy().with_sticky_wait(secs(60)).done()).as_ref())
        .await;
    sticky_hold_needs_a_signed_in_agent(make(policy().with_sticky_wait(secs(60)).done()).as_ref())
        .await;
    rings_relax_requirements(
        make(
            policy()
                .with_ring(OverflowRing::new(
                    secs(30),
                    [Relax::LowerLevels(3), Relax::AddTeam("logistics".into())],
                ))
                .with_ring(OverflowRing::new(secs(90), [Relax::AnyTeam]))
                .done(),
        )
        .as_ref(),
    )
    .await;
    standby_joins_deep_queue(
        make(
            policy()
                .with_standby(StandbyPool {
                    team: "standby".into(),
                    depth: 2,
                    oldest_wait: secs(120),
                })
                .done(),
        )
        .as_ref(),
    )
    .await;
    offers_accept_reject_expire(make(policy().with_reservations(secs(30), 2).done()).as_ref())
        .await;
    release_withdraws_an_offer(make(policy().with_reservations(secs(30), 1).done()).as_ref()).await;
    bot_first_then_queue(make(policy().with_bot_first(BotFirst::Always).done()).as_ref()).await;
    last_ring_reaches_any_agent(
        make(
            policy()
                .with_ring(OverflowRing::new(
                    secs(45),
                    [Relax::AnySkill, Relax::AnyLanguage, Relax::AnyTeam],
                ))
                .done(),
        )
        .as_ref(),
    )
    .await;
    requeued_task_keeps_its_place(default().as_ref()).await;
    reprioritize_follows_aging(make(policy().with_aging_step(secs(10)).done()).as_ref()).await;
    pick_overrides_holds_and_offers(
        make(
            policy()
                .with_sticky_wait(secs(60))
                .with_reservations(secs(30), 2)
                .done(),
        )
        .as_ref(),
    )
    .await;
    keeps_full_policy_under_load(
        make(
            policy()
                .with_sticky_wait(secs(20))
                .with_ring(OverflowRing::new(secs(40), [Relax::LowerLevels(5)]))
                .done(),
        )
        .as_ref(),
        true,
    )
    .await;
}

fn policy() -> RoutingPolicyBuilder {
    RoutingPolicyBuilder::new()
}

fn secs(s: u64) -> StdDuration {
    StdDuration::from_secs(s)
}

impl RoutingPolicyBuilder {
    fn done(self) -> RoutingPolicy {
        self.build().expect("valid policy")
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap()
}

/// An online agent with `chat` chat slots and the given skills.
pub fn agent(name: &str, chat: u16, skills: &[(&str, u8)]) -> Agent {
    Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: name.into(),
        skills: skills.iter().map(|(s, l)| Skill::new(*s, *l)).collect(),
        languages: vec!["zh".into(), "en".into()],
        team: None,
        capacity: Capacity {
            chat,
            ..Capacity::default()
        },
        presence: Presence::Online,
    }
}

fn task(secs: i64) -> Task {
    Task::new(
        ConversationId::new(),
        ChannelKind::WebChat,
        t0() + Duration::seconds(secs),
    )
}

fn assigned(decisions: &[Decision]) -> Vec<(ConversationId, AgentId)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Assigned { task, agent } => Some((*task, *agent)),
            _ => None,
        })
        .collect()
}

/// A task waits until an agent signs in, who takes it; a free agent takes a new task at once.
pub async fn assigns_to_an_eligible_agent(r: &dyn Router) {
    let t = task(0);
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "no agent yet"
    );
    assert_eq!(r.snapshot().await.unwrap().queued.len(), 1);
    let a = agent("ann", 2, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(t.id, a.id)],
        "an agent signing in takes the waiting task"
    );
    let snap = r.snapshot().await.unwrap();
    assert!(snap.queued.is_empty());
    assert_eq!(snap.agents[0].tasks, [t.id]);
    let t2 = task(1);
    let d = r.enqueue(t2.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(t2.id, a.id)],
        "a free agent takes a new task at once"
    );
}

/// An agent never holds more than their slots; a release lets the next task in.
pub async fn respects_capacity_and_release(r: &dyn Router) {
    let a = agent("ann", 2, &[]);
    r.upsert_agent(a.clone()).await.unwrap();
    let tasks: Vec<Task> = (0..3).map(task).collect();
    let mut got = Vec::new();
    for t in &tasks {
        got.extend(assigned(&r.enqueue(t.clone()).await.unwrap()));
    }
    assert_eq!(got.len(), 2, "capacity 2 takes two tasks");
    assert_eq!(r.snapshot().await.unwrap().queued.len(), 1);
    let d = r.release(a.id, tasks[0].id).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(tasks[2].id, a.id)],
        "release lets the next task in"
    );
    assert!(r.snapshot().await.unwrap().queued.is_empty());
}

/// A task goes only to an agent with its skills at the required level.
pub async fn requires_skills_at_level(r: &dyn Router) {
    let novice = agent("novice", 4, &[("refunds", 3)]);
    let expert = agent("expert", 4, &[("refunds", 8)]);
    r.upsert_agent(novice.clone()).await.unwrap();
    let mut t = task(0);
    t.requirements = vec![SkillRequirement::new("refunds", 5)];
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "level 3 < 5"
    );
    let d = r.upsert_agent(expert.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(t.id, expert.id)]);
    let mut other = task(1);
    other.requirements = vec![SkillRequirement::new("logistics", 1)];
    assert!(
        r.enqueue(other).await.unwrap().is_empty(),
        "nobody has logistics"
    );
}

/// Higher priority first, then the oldest (FIFO within a priority).
pub async fn orders_by_priority_then_age(r: &dyn Router) {
    let old = task(0);
    let newer = task(10);
    let mut urgent = task(20);
    urgent.priority = Priority::Urgent;
    for t in [&newer, &urgent, &old] {
        assert!(r.enqueue(t.clone()).await.unwrap().is_empty());
    }
    let a = agent("ann", 1, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(urgent.id, a.id)], "urgent goes first");
    let d = r.release(a.id, urgent.id).await.unwrap();
    assert_eq!(assigned(&d), [(old.id, a.id)], "then the oldest");
    let d = r.release(a.id, old.id).await.unwrap();
    assert_eq!(assigned(&d), [(newer.id, a.id)]);
}

/// Away and offline agents take nothing new and keep what they have.
pub async fn ignores_agents_not_online(r: &dyn Router) {
    let mut a = agent("ann", 4, &[]);
    a.presence = Presence::Away;
    r.upsert_agent(a.clone()).await.unwrap();
    let t = task(0);
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "away agents take nothing"
    );
    a.presence = Presence::Online;
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(t.id, a.id)], "coming online takes the task");
    a.presence = Presence::Offline;
    r.upsert_agent(a.clone()).await.unwrap();
    let snap = r.snapshot().await.unwrap();
    assert_eq!(
        snap.agents[0].tasks,
        [t.id],
        "going offline keeps current tasks"
    );
    assert!(r.enqueue(task(1)).await.unwrap().is_empty());
}

/// A call in progress blocks new chats when the capacity says so.
pub async fn voice_blocks_chat(r: &dyn Router) {
    let a = agent("ann", 4, &[]);
    r.upsert_agent(a.clone()).await.unwrap();
    let mut call = task(0);
    call.channel = ChannelKind::Voice;
    assert_eq!(assigned(&r.enqueue(call.clone()).await.unwrap()).len(), 1);
    let chat = task(1);
    assert!(
        r.enqueue(chat.clone()).await.unwrap().is_empty(),
        "on a call, no chats"
    );
    let d = r.release(a.id, call.id).await.unwrap();
    assert_eq!(assigned(&d), [(chat.id, a.id)]);
}

/// Duplicates, invalid requirements and profiles, and unknown agents or tasks are refused
/// with the error that says why.
pub async fn refuses_bad_calls(r: &dyn Router) {
    let t = task(0);
    r.enqueue(t.clone()).await.unwrap();
    assert!(matches!(
        r.enqueue(t.clone()).await,
        Err(Error::Conflict { .. })
    ));
    let mut bad = task(1);
    bad.requirements = vec![SkillRequirement::new("refunds", 0)];
    assert!(matches!(
        r.enqueue(bad).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        r.release(AgentId::new(), t.id).await,
        Err(Error::NotFound { .. })
    ));
    let a = agent("ann", 1, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d).len(), 1);
    assert!(matches!(
        r.release(a.id, ConversationId::new()).await,
        Err(Error::Conflict { .. })
    ));
    let mut broken = agent("bob", 1, &[("refunds", 11)]);
    broken.name = "bob".into();
    assert!(matches!(
        r.upsert_agent(broken).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// A cancelled task leaves the queue and may be queued again.
pub async fn cancel_removes_from_queue(r: &dyn Router) {
    let t = task(0);
    r.enqueue(t.clone()).await.unwrap();
    assert!(r.cancel(t.id).await.unwrap());
    assert!(
        !r.cancel(t.id).await.unwrap(),
        "cancelling twice finds nothing"
    );
    let a = agent("ann", 1, &[]);
    assert!(
        r.upsert_agent(a).await.unwrap().is_empty(),
        "a cancelled task is not assigned"
    );
    r.enqueue(t.clone())
        .await
        .expect("a cancelled task may be queued again");
}

fn offered(decisions: &[Decision]) -> Vec<(ConversationId, AgentId)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Offered { task, agent, .. } => Some((*task, *agent)),
            _ => None,
        })
        .collect()
}

/// A deterministic mixed workload checked by [`Checker`]: capacity, eligibility, order and no
/// idling, and agent choice too when `agent_choice` (then the router's policy must have a 20 s
/// sticky wait and a 40 s ring lowering levels by 5).
pub async fn keeps_full_policy_under_load(r: &dyn Router, agent_choice: bool) {
    let mut checker = Checker::new(if agent_choice {
        RoutingPolicyBuilder::new()
            .with_sticky_wait(secs(20))
            .with_ring(OverflowRing::new(secs(40), [Relax::LowerLevels(5)]))
            .done()
    } else {
        RoutingPolicy::default()
    })
    .with_agent_choice(agent_choice);
    let skills = ["refunds", "logistics", "presale"];
    let mut agents = Vec::new();
    for i in 0..6u8 {
        let mut a = agent(
            &format!("a{i}"),
            u16::from(1 + i % 3),
            &[
                (skills[usize::from(i % 3)], 3 + i),
                (skills[usize::from((i + 1) % 3)], 9 - i),
            ],
        );
        if i % 4 == 3 {
            a.languages = vec!["fr".into()];
        }
        let d = r.upsert_agent(a.clone()).await.unwrap();
        checker.on_upsert(&a, &d);
        agents.push(a);
    }
    let mut held: Vec<(AgentId, ConversationId)> = Vec::new();
    let mut state = 7u64;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for step in 0..160i64 {
        match next(8) {
            0..=2 => {
                let mut t = task(step);
                t.priority = [Priority::Low, Priority::Normal, Priority::High][next(3) as usize];
                if next(2) == 0 {
                    t.requirements = vec![SkillRequirement::new(
                        skills[next(3) as usize],
                        1 + next(9) as u8,
                    )];
                }
                if next(3) == 0 {
                    t.channel = ChannelKind::Voice;
                }
                if next(4) == 0 {
                    t.language = Some("fr".into());
                }
                if agent_choice && next(5) == 0 {
                    t.preferred_agent = Some(agents[next(6) as usize].id);
                }
                let d = r.enqueue(t.clone()).await.unwrap();
                checker.on_enqueue(&t, &d);
                record(&mut held, &d);
            }
            3 if !held.is_empty() => {
                let (a, t) = held.remove(next(held.len() as u64) as usize);
                let d = r.release(a, t).await.unwrap();
                checker.on_release(a, t, &d);
                record(&mut held, &d);
            }
            4 | 5 => {
                let queued = r.snapshot().await.unwrap().queued;
                if queued.is_empty() {
                    continue;
                }
                let t = queued[next(queued.len() as u64) as usize].task.id;
                if next(2) == 0 {
                    let a = agents[next(6) as usize].id;
                    match r.pick(a, t).await {
                        Ok(d) => {
                            checker.on_pick(a, t, &d);
                            record(&mut held, &d);
                        }
                        Err(e) => assert!(matches!(e, Error::Conflict { .. }), "{e}"),
                    }
                } else {
                    let change = Reprioritize::to(
                        [Priority::Low, Priority::High, Priority::Urgent][next(3) as usize],
                    );
                    let d = r.reprioritize(t, change).await.unwrap();
                    checker.on_reprioritize(t, change, &d);
                    record(&mut held, &d);
                }
            }
            6 if step % 4 == 0 => {
                let a = agents[next(6) as usize].id;
                let t = task(step);
                r.restore(a, t.clone()).await.unwrap();
                checker.on_restore(a, &t);
                held.push((a, t.id));
            }
            _ => {
                let now = t0() + Duration::seconds(step);
                let d = r.tick(now).await.unwrap();
                checker.on_tick(now, &d);
                record(&mut held, &d);
            }
        }
    }
    checker.check_idle();
    assert_eq!(checker.violations(), [], "the policy holds under load");
    assert!(checker.decisions() > 20, "the workload assigns work");
}

fn record(held: &mut Vec<(AgentId, ConversationId)>, d: &[Decision]) {
    held.extend(assigned(d).into_iter().map(|(t, a)| (a, t)));
}

/// A deterministic mixed workload (with picks, re-prioritisations and restores) checked by
/// [`Checker`] for capacity, eligibility, order and no idling.
pub async fn keeps_policy_under_load(r: &dyn Router) {
    keeps_full_policy_under_load(r, false).await;
}

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

/// Enqueues `n` plain tasks and returns who got each.
async fn futures_lite(r: &dyn Router, n: i64) -> Vec<AgentId> {
    let mut who = Vec::new();
    for i in 0..n {
        let d = r.enqueue(task(i)).await.unwrap();
        who.extend(assigned(&d).into_iter().map(|(_, a)| a));
    }
    who
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

fn queue_order(snap: &crate::task::Snapshot) -> Vec<ConversationId> {
    snap.queued.iter().map(|q| q.task.id).collect()
}

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
