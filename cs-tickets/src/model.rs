//! Tickets, comments and the audit trail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use cs_core::{AgentId, ConversationId, CustomerId, Priority, TenantId, TicketId};
use serde::{Deserialize, Serialize};

use crate::sla::{SlaClock, SlaState};

/// Where a ticket stands in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Nobody has looked at it yet.
    New,
    /// Being worked on.
    Open,
    /// Waiting for the customer (SLA clocks pause).
    PendingCustomer,
    /// Waiting for a third party (logistics, a supplier).
    OnHold,
    /// Solved; reopens when the customer replies.
    Solved,
    /// Closed for good.
    Closed,
}

impl TicketStatus {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Open => "open",
            Self::PendingCustomer => "pending_customer",
            Self::OnHold => "on_hold",
            Self::Solved => "solved",
            Self::Closed => "closed",
        }
    }

    /// Parses [`TicketStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::New,
            Self::Open,
            Self::PendingCustomer,
            Self::OnHold,
            Self::Solved,
            Self::Closed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether the workflow allows going from `self` to `to`: anything but `Closed` may move to
    /// any other status except `New`; `Closed` is final.
    pub fn can_become(self, to: TicketStatus) -> bool {
        self != Self::Closed && to != Self::New && self != to
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of request a ticket is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// A question.
    #[default]
    Question,
    /// Something went wrong for this customer (a lost parcel, a broken item).
    Incident,
    /// A cause behind several incidents.
    Problem,
    /// Work to do (a refund to issue, a call back).
    Task,
}

impl TicketKind {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Question => "question",
            Self::Incident => "incident",
            Self::Problem => "problem",
            Self::Task => "task",
        }
    }

    /// Parses [`TicketKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Question, Self::Incident, Self::Problem, Self::Task]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Who did something to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Actor {
    /// A human agent.
    Agent {
        /// Which.
        agent: AgentId,
    },
    /// The customer.
    Customer {
        /// Which.
        customer: CustomerId,
    },
    /// The bot.
    Bot,
    /// The system (SLA escalation, automation).
    System,
}

/// A file attached by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Where it is.
    pub url: String,
    /// File name.
    pub name: String,
    /// MIME type.
    pub mime: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
}

/// A ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// The id.
    pub id: TicketId,
    /// The tenant.
    pub tenant: TenantId,
    /// The number a customer quotes: sequential per tenant, from 1.
    pub number: u64,
    /// One-line subject.
    pub subject: String,
    /// Kind.
    pub kind: TicketKind,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: TicketStatus,
    /// Department or group (`service`, `after-sales`, `logistics`...).
    pub group: Option<String>,
    /// The agent working on it.
    pub assignee: Option<AgentId>,
    /// The customer it is for.
    pub customer: Option<CustomerId>,
    /// The conversation it came from.
    pub conversation: Option<ConversationId>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Custom fields.
    pub fields: BTreeMap<String, String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Incremented by every change; updates must name the version they read.
    pub version: u64,
    /// The SLA clock, when the store has an SLA policy.
    pub sla: Option<SlaClock>,
    /// The customer's rating, once given.
    pub csat: Option<Csat>,
}

/// A customer-satisfaction rating given when a ticket is solved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Csat {
    /// 1 (very unhappy) to 5 (very happy).
    pub score: u8,
    /// What the customer said.
    pub comment: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Tickets in one SLA state at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaFilter {
    /// The state.
    pub state: SlaState,
    /// The instant (by the engine's clock).
    pub at: DateTime<Utc>,
}

/// A new ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    /// The tenant.
    pub tenant: TenantId,
    /// One-line subject (required).
    pub subject: String,
    /// The first comment (public), if any.
    pub description: Option<String>,
    /// Kind.
    pub kind: TicketKind,
    /// Priority.
    pub priority: Priority,
    /// Group.
    pub group: Option<String>,
    /// Assignee.
    pub assignee: Option<AgentId>,
    /// Customer.
    pub customer: Option<CustomerId>,
    /// The conversation it came from.
    pub conversation: Option<ConversationId>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Custom fields (`tier` selects tier-specific SLA targets).
    pub fields: BTreeMap<String, String>,
    /// Who opened it.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

impl NewTicket {
    /// A normal-priority question with `subject`, opened by `actor` at `at`.
    pub fn new(
        tenant: TenantId,
        subject: impl Into<String>,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            subject: subject.into(),
            description: None,
            kind: TicketKind::Question,
            priority: Priority::Normal,
            group: None,
            assignee: None,
            customer: None,
            conversation: None,
            tags: BTreeSet::new(),
            fields: BTreeMap::new(),
            actor,
            at,
        }
    }
}

/// Changes to a ticket; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketPatch {
    /// New subject.
    pub subject: Option<String>,
    /// New status (checked against the workflow).
    pub status: Option<TicketStatus>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New group (`Some(None)` clears it).
    pub group: Option<Option<String>>,
    /// New assignee (`Some(None)` clears it).
    pub assignee: Option<Option<AgentId>>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// Custom fields to set (an empty value removes the field).
    pub fields: BTreeMap<String, String>,
    /// The customer's rating (only on a solved or closed ticket).
    pub csat: Option<Csat>,
    /// Record every SLA warning and breach due by this instant (the SLA monitor's update).
    pub sla_check: Option<DateTime<Utc>>,
}

/// An update of one ticket, based on the version the caller read.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateTicket {
    /// The tenant.
    pub tenant: TenantId,
    /// The ticket.
    pub id: TicketId,
    /// The version the caller read.
    pub expected_version: u64,
    /// Who.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub patch: TicketPatch,
}

/// A reply or note on a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Position in the ticket's comment list, from 1.
    pub seq: u64,
    /// Who wrote it.
    pub author: Actor,
    /// The text.
    pub body: String,
    /// Public reply (the customer sees it) or internal note.
    pub public: bool,
    /// Attachments by reference.
    pub attachments: Vec<Attachment>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A new comment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewComment {
    /// The tenant.
    pub tenant: TenantId,
    /// The ticket.
    pub ticket: TicketId,
    /// Who writes it.
    pub author: Actor,
    /// The text.
    pub body: String,
    /// Public reply or internal note.
    pub public: bool,
    /// Attachments by reference.
    pub attachments: Vec<Attachment>,
    /// When.
    pub at: DateTime<Utc>,
}

/// One change in a ticket's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What changed: a field name, `created` or `comment`.
    pub field: String,
    /// The value before.
    pub from: Option<String>,
    /// The value after.
    pub to: Option<String>,
}

/// Which tickets to find, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only these statuses (all when empty).
    pub statuses: Vec<TicketStatus>,
    /// Only this assignee.
    pub assignee: Option<AgentId>,
    /// Only this group.
    pub group: Option<String>,
    /// Only tickets with this tag.
    pub tag: Option<String>,
    /// Only this customer's.
    pub customer: Option<CustomerId>,
    /// Only tickets whose subject or comments contain this text (case-insensitive; Chinese
    /// and English alike).
    pub text: Option<String>,
    /// Only tickets in this SLA state.
    pub sla: Option<SlaFilter>,
    /// At most this many (capped at 1,000).
    pub limit: usize,
}
