//! The routing policy: what every policy router ([`crate::SkillRouter`], [`crate::NaiveRouter`])
//! decides, and the pure rules they, and the `checker::Checker` (feature `testing`), share.
//!
//! # The rules
//! - **Eligibility.** An agent may take a task when the agent is online (a standby agent only
//!   while the standby pool is active), has a free slot for the task's medium (a call in progress
//!   blocks chats and emails when the capacity says so), has every required skill at the task's
//!   current minimum level, speaks the task's language (when it has one), belongs to the task's
//!   team (when it has one), has not rejected or let an offer of this task time out, and, while
//!   the task waits for its preferred agent (sticky hold), is that agent. A task waits for its
//!   preferred agent for [`RoutingPolicy::sticky_wait`] after its `enqueued_at`, and only while
//!   that agent is signed in (online or away): a task for an agent who is offline does not wait,
//!   and signing out ends the waits for the agent at once.
//! - **Order of tasks (aging).** A task's *band* is its priority (low 0, normal 1, high 2,
//!   urgent 3) plus [`RoutingPolicy::vip_bonus`] for VIP customers. Tasks are served by the
//!   smallest *rank* `enqueued_at - band x aging_step`, which is the same as the largest score
//!   `wait + aging_step x band`: a higher band goes first, a task of one band lower goes first
//!   once it has waited `aging_step` longer, so nothing starves. Within a band this is oldest
//!   first (FIFO); equal ranks go in arrival order. The rank never changes while a task waits
//!   (relaxing an overflow ring, a rejected offer), so a task keeps its place.
//! - **Choice of agent.** The task's preferred agent when eligible; otherwise for VIP customers
//!   the highest level in the task's first required skill, then for everyone the least loaded
//!   (tasks held across all media), then the longest idle (the agent whose last assignment,
//!   release, offer outcome or profile change came first).
//! - **Dispatch.** After every event the routers reach the same fixed point: no queued task has an
//!   eligible agent with a free slot. They get there by repeatedly serving the best-ranked task
//!   that has an eligible agent, with its best agent.
//! - **Time.** A router's clock is the latest time it has been told: the `now` of
//!   [`crate::Router::tick`] or the `enqueued_at` of a new task (never going back). Time-outs
//!   (offers, sticky holds, overflow rings) fire in time order; those due at one instant are
//!   applied together, then dispatch runs. A task enqueued with an `enqueued_at` before the
//!   clock (queued again after a hand-over or a restart) keeps its rank and gets the overflow
//!   rings it has already waited for at once.
//! - **Re-prioritising** ([`crate::Router::reprioritize`]) gives a queued task a new band; its
//!   rank is computed again from its original `enqueued_at`, so it moves as if it had had the
//!   new priority all along. Nothing else about it changes.
//! - **Picking** ([`crate::Router::pick`]) is a person's decision: an online agent with a free
//!   slot for the task's medium takes any queued task, whatever its requirements, place, hold
//!   or the agent's own earlier rejection, and even while on standby. The task is assigned, not
//!   offered; the pick counts as the agent's latest activity and clears their missed offers.
//! - **Restoring** ([`crate::Router::restore`]) rebuilds an assignment at start-up: it counts
//!   in the agent's load (as the agent's latest activity) and decides nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, Capacity, CustomerTier, Medium, Presence, Priority, TenantId};

use crate::error::{Error, Result};
use crate::task::{SkillRequirement, Task};

pub mod duration;
mod settings;

pub use settings::{
    BotFirst, OverflowRing, Relax, Reservations, RoutingPolicy, RoutingPolicyBuilder, StandbyPool,
};

/// Milliseconds of a duration (validated by the builder to fit).
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 8)
}

/// Milliseconds since the epoch.
pub(crate) fn at_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The time of `ms` milliseconds since the epoch (the latest representable time beyond it).
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Index of a medium (0 chat, 1 email, 2 voice).
pub(crate) const fn medium_index(m: Medium) -> usize {
    match m {
        Medium::Chat => 0,
        Medium::Email => 1,
        Medium::Voice => 2,
    }
}

/// Whether an agent with `loads` (per medium index) has a free slot for `medium`.
pub(crate) fn has_room(cap: &Capacity, loads: &[u16; 3], medium: Medium) -> bool {
    let i = medium_index(medium);
    if loads[i] >= cap.slots(medium) {
        return false;
    }
    !(cap.voice_blocks_others && medium != Medium::Voice && loads[2] > 0)
}

/// Checks a task's requirements: named skills at levels 1-10.
pub(crate) fn validate_task(task: &Task) -> Result<()> {
    for r in &task.requirements {
        if r.skill.is_empty() || !(1..=10).contains(&r.min_level) {
            return Err(Error::InvalidInput {
                reason: format!(
                    "requirement {:?} at level {} (skills need a name and a level of 1-10)",
                    r.skill, r.min_level
                ),
            });
        }
    }
    Ok(())
}

/// Checks an agent's skills: named, at levels 1-10.
pub(crate) fn validate_agent(agent: &Agent) -> Result<()> {
    for s in &agent.skills {
        if s.name.is_empty() || !(1..=10).contains(&s.level) {
            return Err(Error::InvalidInput {
                reason: format!(
                    "agent {} skill {:?} at level {} (skills need a name and a level of 1-10)",
                    agent.name, s.name, s.level
                ),
            });
        }
    }
    Ok(())
}

/// A placeholder for an agent a task is restored to before the router knows the agent: offline,
/// without skills or capacity, until [`crate::Router::upsert_agent`] gives the real profile.
pub(crate) fn placeholder_agent(id: AgentId) -> Agent {
    Agent {
        id,
        tenant: TenantId::default(),
        name: String::new(),
        skills: Vec::new(),
        languages: Vec::new(),
        team: None,
        capacity: Capacity {
            chat: 0,
            email: 0,
            voice: 0,
            voice_blocks_others: false,
        },
        presence: Presence::Offline,
    }
}

/// Which teams a task accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Teams {
    Any,
    OneOf(Vec<String>),
}

/// A task's requirements after the overflow rings reached so far.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Effective {
    pub(crate) reqs: Vec<SkillRequirement>,
    pub(crate) language: Option<String>,
    pub(crate) teams: Teams,
}

impl Effective {
    /// Whether `agent`'s profile meets these requirements (skills, language, team).
    pub(crate) fn fits(&self, agent: &Agent) -> bool {
        self.reqs.iter().all(|r| {
            agent
                .skill_level(&r.skill)
                .is_some_and(|l| l >= r.min_level)
        }) && self
            .language
            .as_ref()
            .is_none_or(|l| agent.languages.iter().any(|a| a == l))
            && match &self.teams {
                Teams::Any => true,
                Teams::OneOf(ts) => agent.team.as_ref().is_some_and(|t| ts.contains(t)),
            }
    }
}

impl RoutingPolicy {
    /// The task's band: priority plus the VIP bonus.
    pub fn band(&self, task: &Task) -> u8 {
        self.band_of(task.priority, task.tier)
    }

    /// The band of a task of `priority` from a customer of `tier`.
    pub fn band_of(&self, priority: Priority, tier: CustomerTier) -> u8 {
        let p = match priority {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        };
        p + if tier == CustomerTier::Vip {
            self.vip_bonus
        } else {
            0
        }
    }

    /// The task's rank in milliseconds: smaller is served first (see the module docs).
    pub fn rank(&self, task: &Task) -> i64 {
        self.rank_of(at_ms(task.enqueued_at), task.priority, task.tier)
    }

    /// The rank of a task enqueued at `enqueued` (ms) with `priority`, from a `tier` customer.
    pub(crate) fn rank_of(&self, enqueued: i64, priority: Priority, tier: CustomerTier) -> i64 {
        enqueued - i64::from(self.band_of(priority, tier)) * ms(self.aging_step)
    }

    /// How many rings apply to a task enqueued at `enqueued` (ms) at time `now` (ms).
    pub(crate) fn ring_at(&self, enqueued: i64, now: i64) -> usize {
        self.rings
            .iter()
            .take_while(|r| enqueued.saturating_add(ms(r.after)) <= now)
            .count()
    }

    /// When ring `ring` (0-based index into `rings`) applies, if there is one.
    pub(crate) fn ring_time(&self, enqueued: i64, ring: usize) -> Option<i64> {
        self.rings
            .get(ring)
            .map(|r| enqueued.saturating_add(ms(r.after)))
    }

    /// The task's requirements after `ring` rings.
    pub(crate) fn effective(&self, task: &Task, ring: usize) -> Effective {
        let mut e = Effective {
            reqs: task.requirements.clone(),
            language: task.language.clone(),
            teams: match &task.team {
                Some(t) => Teams::OneOf(vec![t.clone()]),
                None => Teams::Any,
            },
        };
        for r in self.rings.iter().take(ring) {
            for relax in &r.relax {
                match relax {
                    Relax::LowerLevels(n) => {
                        for q in &mut e.reqs {
                            q.min_level = q.min_level.saturating_sub(*n).max(1);
                        }
                    }
                    Relax::DropSkill(s) => e.reqs.retain(|q| &q.skill != s),
                    Relax::PrimaryOnly => e.reqs.truncate(1),
                    Relax::AnySkill => e.reqs.clear(),
                    Relax::AnyLanguage => e.language = None,
                    Relax::AddTeam(t) => {
                        if let Teams::OneOf(ts) = &mut e.teams
                            && !ts.contains(t)
                        {
                            ts.push(t.clone());
                        }
                    }
                    Relax::AnyTeam => e.teams = Teams::Any,
                }
            }
        }
        e
    }

    /// Whether `agent` is a standby agent.
    pub(crate) fn is_standby(&self, agent: &Agent) -> bool {
        self.standby
            .as_ref()
            .is_some_and(|s| agent.team.as_deref() == Some(s.team.as_str()))
    }

    /// Whether the standby pool is active with `depth` tasks waiting, the oldest enqueued at
    /// `oldest` (ms), at time `now` (ms).
    pub(crate) fn standby_active(&self, depth: usize, oldest: Option<i64>, now: i64) -> bool {
        self.standby.as_ref().is_some_and(|s| {
            depth >= s.depth.max(1)
                || oldest.is_some_and(|o| now.saturating_sub(o) >= ms(s.oldest_wait))
        })
    }

    /// Whether a task arriving with `depth` tasks waiting goes to the bot first.
    pub(crate) fn bot_first(&self, depth: usize) -> bool {
        match self.bot_first {
            BotFirst::Off => false,
            BotFirst::Always => true,
            BotFirst::AboveDepth(d) => depth >= d,
        }
    }

    /// Whether `agent` may take new work now (presence, standby).
    pub(crate) fn available(&self, agent: &Agent, standby_active: bool) -> bool {
        agent.presence == Presence::Online && (standby_active || !self.is_standby(agent))
    }
}

/// The order in which eligible agents are chosen: smaller is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AgentOrder {
    /// 0 for the task's preferred agent.
    pub(crate) not_preferred: bool,
    /// For VIP tasks, 10 minus the level in the primary skill; 0 otherwise.
    pub(crate) proficiency_gap: u8,
    /// Tasks held.
    pub(crate) load: u16,
    /// Last activity (smaller = idle longer).
    pub(crate) seq: u64,
}

/// Whether agent choice for `task` favours the highest proficiency.
pub(crate) fn is_vip(task: &Task) -> bool {
    task.tier == CustomerTier::Vip
}

/// The order of an agent for a task with effective requirements `eff`.
pub(crate) fn agent_order(
    task: &Task,
    eff: &Effective,
    agent: &Agent,
    load: u16,
    seq: u64,
) -> AgentOrder {
    let gap = if is_vip(task) {
        eff.reqs
            .first()
            .and_then(|r| agent.skill_level(&r.skill))
            .map_or(0, |l| 10u8.saturating_sub(l))
    } else {
        0
    };
    AgentOrder {
        not_preferred: task.preferred_agent != Some(agent.id),
        proficiency_gap: gap,
        load,
        seq,
    }
}
