//! The behaviour every [`Router`] must show (feature `conformance`).
//!
//! Call [`run`] with a factory that makes a fresh, empty router; each check gets its own. Routers
//! that follow the full routing policy ([`crate::policy`]) also call [`run_policy`] with a factory
//! taking the policy to configure. Each check is also a public function of its own, so a router
//! that supports only some behaviours can call those (the checks of [`run_policy`] say which
//! policy the router must have).

use chrono::{DateTime, Duration, TimeZone, Utc};
use cs_core::{Agent, AgentId, Capacity, ChannelKind, ConversationId, Presence, Skill, TenantId};

use std::time::Duration as StdDuration;

use crate::checker::Checker;
use crate::error::Error;
use crate::policy::{
    BotFirst, OverflowRing, Relax, RoutingPolicy, RoutingPolicyBuilder, StandbyPool,
};
use crate::router::Router;
use crate::task::{Decision, Reprioritize, SkillRequirement, Task};

mod basic;
mod desk;
mod full_policy;

pub use basic::*;
pub use desk::*;
pub use full_policy::*;

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

fn offered(decisions: &[Decision]) -> Vec<(ConversationId, AgentId)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Offered { task, agent, .. } => Some((*task, *agent)),
            _ => None,
        })
        .collect()
}

fn record(held: &mut Vec<(AgentId, ConversationId)>, d: &[Decision]) {
    held.extend(assigned(d).into_iter().map(|(t, a)| (a, t)));
}

fn queue_order(snap: &crate::task::Snapshot) -> Vec<ConversationId> {
    snap.queued.iter().map(|q| q.task.id).collect()
}
