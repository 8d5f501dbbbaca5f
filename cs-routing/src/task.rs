//! What the router routes: tasks, and the decisions it makes.

use chrono::{DateTime, Utc};
use cs_core::{AgentId, ChannelKind, ConversationId, CustomerTier, Priority};
use serde::{Deserialize, Serialize};

/// A skill a task needs, at a minimum proficiency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SkillRequirement {
    /// Skill name.
    pub skill: String,
    /// Lowest acceptable level (1-10).
    pub min_level: u8,
}

impl SkillRequirement {
    /// Requires `skill` at `min_level` or above.
    pub fn new(skill: impl Into<String>, min_level: u8) -> Self {
        Self {
            skill: skill.into(),
            min_level,
        }
    }
}

/// A piece of work waiting for an agent: a conversation handed over by the bot, a call from the
/// IVR, an escalated ticket's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The conversation to hand over (one task per conversation).
    pub id: ConversationId,
    /// The channel it is on (decides which capacity it uses).
    pub channel: ChannelKind,
    /// Skills an agent must have.
    pub requirements: Vec<SkillRequirement>,
    /// Language the customer writes in (primary tag, e.g. `zh`), if known.
    pub language: Option<String>,
    /// Urgency.
    pub priority: Priority,
    /// The customer's tier.
    pub tier: CustomerTier,
    /// The agent who served this customer last, if the customer should go back to them.
    pub preferred_agent: Option<AgentId>,
    /// The team that should serve it (e.g. `after-sales`), if any; overflow rings may widen it.
    #[serde(default)]
    pub team: Option<String>,
    /// When it entered the queue (by the engine's clock). A task queued again (after a bot
    /// hand-over, a restart, a withdrawn assignment) keeps its original time, and with it its
    /// place: its rank and overflow rings follow this time, not the router's clock.
    pub enqueued_at: DateTime<Utc>,
    /// Whether bot-first reception is skipped: the bot has already talked with the customer (a
    /// hand-over from the bot, a conversation queued again after a restart). Routers also
    /// remember the tasks they sent to the bot ([`Decision::ToBot`]) and queue those directly
    /// when they come back, but only for as long as the router lives.
    #[serde(default)]
    pub skip_bot: bool,
}

impl Task {
    /// A normal-priority task on `channel` with no requirements, enqueued at `at`.
    pub fn new(id: ConversationId, channel: ChannelKind, at: DateTime<Utc>) -> Self {
        Self {
            id,
            channel,
            requirements: Vec::new(),
            language: None,
            priority: Priority::Normal,
            tier: CustomerTier::Standard,
            preferred_agent: None,
            team: None,
            enqueued_at: at,
            skip_bot: false,
        }
    }
}

/// What [`crate::Router::reprioritize`] changes of a queued task: its priority and, when given,
/// its customer's tier. `Priority::High.into()` changes the priority alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reprioritize {
    /// The new priority.
    pub priority: Priority,
    /// The new tier, or `None` to keep the task's.
    #[serde(default)]
    pub tier: Option<CustomerTier>,
}

impl Reprioritize {
    /// Changes the priority to `priority`, keeping the tier.
    pub fn to(priority: Priority) -> Self {
        Self {
            priority,
            tier: None,
        }
    }

    /// Also changes the customer's tier (which moves the band by the policy's VIP bonus and
    /// decides whether the most proficient agent is chosen).
    pub fn with_tier(mut self, tier: CustomerTier) -> Self {
        self.tier = Some(tier);
        self
    }

    /// Applies the change to `task`.
    pub(crate) fn apply(self, task: &mut Task) {
        task.priority = self.priority;
        if let Some(tier) = self.tier {
            task.tier = tier;
        }
    }
}

impl From<Priority> for Reprioritize {
    fn from(priority: Priority) -> Self {
        Self::to(priority)
    }
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// The task goes to the agent, whose load now counts it.
    Assigned {
        /// The task.
        task: ConversationId,
        /// The agent.
        agent: AgentId,
    },
    /// The task is offered to the agent, whose load counts it until the agent accepts
    /// ([`crate::Router::accept`], then [`Decision::Assigned`] follows), rejects
    /// ([`crate::Router::reject`]) or the offer expires ([`Decision::OfferExpired`]). Only
    /// routers configured for reservations make offers.
    Offered {
        /// The task.
        task: ConversationId,
        /// The agent.
        agent: AgentId,
        /// When the offer times out (by the router's clock).
        expires_at: DateTime<Utc>,
    },
    /// The agent let the offer time out; the task is back in the queue at its place and will not
    /// be offered to this agent again.
    OfferExpired {
        /// The task.
        task: ConversationId,
        /// The agent.
        agent: AgentId,
    },
    /// The agent let too many offers in a row time out and is now away: the engine should show
    /// the agent as away until they come back ([`crate::Router::upsert_agent`]).
    AgentAway {
        /// The agent.
        agent: AgentId,
    },
    /// Bot-first reception: the bot talks to the customer first; the task is not queued. Enqueue
    /// it again (with its original `enqueued_at` to keep its place, and [`Task::skip_bot`] set,
    /// which a router restarted in between needs) when the bot hands over.
    ToBot {
        /// The task.
        task: ConversationId,
    },
}

/// A task still in the queue, as [`crate::Router::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedTask {
    /// The task.
    pub task: Task,
    /// 0 for the task that goes first.
    pub position: usize,
}

/// An agent's load, as [`crate::Router::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLoad {
    /// The agent.
    pub agent: AgentId,
    /// Presence.
    pub presence: cs_core::Presence,
    /// Tasks the agent has now, in id order.
    pub tasks: Vec<ConversationId>,
}

/// The router's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Waiting tasks, in the order they would be served.
    pub queued: Vec<QueuedTask>,
    /// Every known agent's load.
    pub agents: Vec<AgentLoad>,
}

impl Snapshot {
    /// A snapshot of `queued` (in serving order) and of `agents` (id, presence, tasks; the
    /// tasks are put in id order).
    pub(crate) fn build<'a>(
        queued: impl Iterator<Item = &'a Task>,
        agents: impl Iterator<Item = AgentLoad>,
    ) -> Self {
        Self {
            queued: queued
                .enumerate()
                .map(|(position, task)| QueuedTask {
                    task: task.clone(),
                    position,
                })
                .collect(),
            agents: agents
                .map(|mut a| {
                    a.tasks.sort_unstable();
                    a
                })
                .collect(),
        }
    }
}
