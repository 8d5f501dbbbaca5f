//! Conversations.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Route;
use crate::id::{AgentId, ConversationId, CustomerId, TenantId};

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// The bot is answering.
    Bot,
    /// Waiting in the router's queue for an agent.
    Queued,
    /// A human agent has it.
    Assigned,
    /// Solved; a new customer message opens a new conversation.
    Resolved,
    /// Closed for good.
    Closed,
}

impl ConversationState {
    /// The stable lower-case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::Queued => "queued",
            Self::Assigned => "assigned",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    /// Parses [`ConversationState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Bot,
            Self::Queued,
            Self::Assigned,
            Self::Resolved,
            Self::Closed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether new customer messages join this conversation (bot, queued or assigned).
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Bot | Self::Queued | Self::Assigned)
    }
}

impl fmt::Display for ConversationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent a piece of work is. Ordered: `Low < Normal < High < Urgent`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Complaints, refunds, VIPs.
    High,
    /// Angry customers, risk, outages.
    Urgent,
}

impl Priority {
    /// The stable lower-case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// Parses [`Priority::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Low, Self::Normal, Self::High, Self::Urgent]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// One customer's thread of messages, across every channel they use while it is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The id.
    pub id: ConversationId,
    /// The tenant.
    pub tenant: TenantId,
    /// Whose conversation it is.
    pub customer: CustomerId,
    /// Where replies go: the channel and identity the customer last wrote from.
    pub route: Route,
    /// Where it stands.
    pub state: ConversationState,
    /// How urgent it is.
    pub priority: Priority,
    /// Skills the router should look for (filled in by the bot on handoff).
    pub skills: Vec<String>,
    /// The agent who has it, while assigned (and who had it last, after).
    pub assignee: Option<AgentId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// When it started waiting for an agent (kept while it waits, and when it goes back to the
    /// queue from an agent who left), so its place and its wait survive a restart.
    #[serde(default)]
    pub queued_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version: incremented by every successful update.
    pub version: u64,
}
