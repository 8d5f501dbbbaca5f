//! The checks every router runs ([`super::run`]).

use chrono::Duration;
use cs_core::{AgentId, ChannelKind, ConversationId, Presence, Priority};

use super::*;

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

/// A deterministic mixed workload (with picks, re-prioritisations and restores) checked by
/// [`Checker`] for capacity, eligibility, order and no idling.
pub async fn keeps_policy_under_load(r: &dyn Router) {
    keeps_full_policy_under_load(r, false).await;
}
