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
    /// When it entered the queue (by the engine's clock).
    pub enqueued_at: DateTime<Utc>,
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
            enqueued_at: at,
        }
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
    /// Tasks the agent has now.
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
