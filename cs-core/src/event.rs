//! Domain events: one for every state change, on a stream anyone can subscribe to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::Presence;
use crate::channel::{Identity, Route};
use crate::conversation::{ConversationState, Priority};
use crate::id::{AgentId, ConversationId, CustomerId, EventId, TenantId, TicketId};
use crate::message::Message;

/// An event with its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The id (time-ordered).
    pub id: EventId,
    /// The tenant it happened in.
    pub tenant: TenantId,
    /// When, by the engine's clock.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: DomainEvent,
}

impl Event {
    /// Wraps `kind` in a new envelope.
    pub fn new(tenant: TenantId, at: DateTime<Utc>, kind: DomainEvent) -> Self {
        Self {
            id: EventId::new(),
            tenant,
            at,
            kind,
        }
    }

    /// The conversation the event concerns, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        use DomainEvent as E;
        match &self.kind {
            E::MessageReceived { message } | E::MessageSent { message } => {
                Some(message.conversation)
            }
            E::ConversationOpened { conversation, .. }
            | E::StateChanged { conversation, .. }
            | E::BotAnswered { conversation, .. }
            | E::HandoffRequested { conversation, .. }
            | E::Queued { conversation, .. }
            | E::AgentAssigned { conversation, .. }
            | E::PriorityChanged { conversation, .. }
            | E::Offered { conversation, .. }
            | E::OfferClosed { conversation, .. }
            | E::SentimentScored { conversation, .. }
            | E::DeliveryFailed { conversation, .. }
            | E::QueueAbandoned { conversation, .. }
            | E::SurveyAnswered { conversation, .. }
            | E::ComplianceHit { conversation, .. } => Some(*conversation),
            E::TicketOpened { conversation, .. } => *conversation,
            E::TicketUpdated { .. } => None,
            E::CustomerCreated { .. }
            | E::CustomersMerged { .. }
            | E::CustomersUnmerged { .. }
            | E::IdentityLinked { .. }
            | E::DuplicateIgnored { .. }
            | E::AgentPresenceChanged { .. }
            | E::AlertRaised { .. } => None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DomainEvent {
    /// A customer was seen for the first time.
    CustomerCreated {
        /// The new customer.
        customer: CustomerId,
        /// The identity they arrived with.
        identity: Identity,
    },
    /// An identity was attached to a customer.
    IdentityLinked {
        /// The customer.
        customer: CustomerId,
        /// The identity.
        identity: Identity,
    },
    /// A conversation began.
    ConversationOpened {
        /// The conversation.
        conversation: ConversationId,
        /// Whose.
        customer: CustomerId,
        /// Where replies go.
        route: Route,
    },
    /// A customer message was stored.
    MessageReceived {
        /// The stored message.
        message: Message,
    },
    /// A provider delivered a message we already had; nothing was stored.
    DuplicateIgnored {
        /// The channel instance.
        channel: crate::id::ChannelId,
        /// The provider's message id.
        provider_message_id: String,
    },
    /// A bot, agent or system message was stored and queued for delivery (receipts and
    /// [`DomainEvent::DeliveryFailed`] tell how far it got).
    MessageSent {
        /// The stored message.
        message: Message,
    },
    /// A channel could not deliver a message, for good: it is a dead letter now.
    DeliveryFailed {
        /// The conversation.
        conversation: ConversationId,
        /// The message.
        message: crate::id::MessageId,
        /// Why.
        reason: String,
    },
    /// A conversation changed state.
    StateChanged {
        /// The conversation.
        conversation: ConversationId,
        /// Before.
        from: ConversationState,
        /// After.
        to: ConversationState,
    },
    /// The bot answered.
    BotAnswered {
        /// The conversation.
        conversation: ConversationId,
        /// The intent it recognised.
        intent: Option<String>,
        /// How sure it was, 0 to 1.
        confidence: f32,
    },
    /// The bot (or the customer) asked for a human.
    HandoffRequested {
        /// The conversation.
        conversation: ConversationId,
        /// Why.
        reason: String,
        /// What the agent should know first.
        summary: String,
    },
    /// A conversation entered the router's queue.
    Queued {
        /// The conversation.
        conversation: ConversationId,
        /// Its priority.
        priority: Priority,
        /// The skills it waits for (the bot's hand-over or the voice menu's queue); empty for
        /// any agent. Analytics reports queues by the first of them.
        #[serde(default)]
        skills: Vec<String>,
    },
    /// The customer left before an agent took the conversation (closed the chat, hung up): it
    /// is out of the queue and closed. Analytics counts it as abandoned.
    QueueAbandoned {
        /// The conversation.
        conversation: ConversationId,
        /// How the customer left (`customer_left`, `call_ended`, ...).
        reason: String,
    },
    /// A queued conversation's priority changed (the customer got angrier while waiting, a
    /// supervisor raised it).
    PriorityChanged {
        /// The conversation.
        conversation: ConversationId,
        /// Before.
        from: Priority,
        /// After.
        to: Priority,
        /// Why (`sentiment`, `supervisor`, ...).
        reason: String,
    },
    /// A queued conversation was offered to an agent, who may accept or reject it until
    /// `expires_at`; the agent's load counts it meanwhile.
    Offered {
        /// The conversation.
        conversation: ConversationId,
        /// The agent.
        agent: AgentId,
        /// When the offer lapses.
        expires_at: DateTime<Utc>,
    },
    /// An offer ended without an assignment: the agent rejected it or let it time out; the
    /// conversation is back in the queue at its place.
    OfferClosed {
        /// The conversation.
        conversation: ConversationId,
        /// The agent.
        agent: AgentId,
        /// `rejected` or `expired`.
        outcome: String,
    },
    /// The sentiment of a customer message was measured (every text message, whoever owns the
    /// conversation).
    SentimentScored {
        /// The conversation.
        conversation: ConversationId,
        /// The message.
        message: crate::id::MessageId,
        /// From -1 (very negative) to 1 (very positive).
        score: f32,
        /// `negative`, `neutral` or `positive`.
        polarity: String,
        /// The dominant emotion (`calm`, `anger`, `anxiety`, `disappointment`, `joy`).
        emotion: String,
        /// The routing priority it asks for.
        priority: Priority,
    },
    /// A conversation was given to an agent.
    AgentAssigned {
        /// The conversation.
        conversation: ConversationId,
        /// The agent.
        agent: AgentId,
    },
    /// An agent's presence changed.
    AgentPresenceChanged {
        /// The agent.
        agent: AgentId,
        /// The new presence.
        presence: Presence,
    },
    /// Two customers were merged into one.
    CustomersMerged {
        /// The merge (undo it with its id).
        merge: crate::id::MergeId,
        /// The customer who stayed.
        into: CustomerId,
        /// The customer merged away.
        from: CustomerId,
    },
    /// A merge was undone.
    CustomersUnmerged {
        /// The merge.
        merge: crate::id::MergeId,
        /// The customer who stayed.
        into: CustomerId,
        /// The customer restored.
        from: CustomerId,
    },
    /// Something happened to a ticket: an SLA warning or breach, an escalation, a hand-over,
    /// a CSAT rating.
    TicketUpdated {
        /// The ticket.
        ticket: TicketId,
        /// The number a customer can quote.
        number: u64,
        /// What happened (`sla_warning`, `sla_breached`, `escalated`, `handed_over`,
        /// `csat_submitted`, ...).
        change: String,
        /// The details, as the ticket desk reports them.
        detail: serde_json::Value,
    },
    /// A customer answered a survey about a conversation (sent by the workbench or a channel).
    SurveyAnswered {
        /// The conversation rated.
        conversation: ConversationId,
        /// The agent who had it last, if any.
        agent: Option<AgentId>,
        /// Which survey, and so which scale.
        survey: Survey,
        /// The answer on the survey's scale ([`Survey::range`]).
        score: u8,
        /// What the customer wrote, if anything.
        comment: Option<String>,
    },
    /// An alert rule fired: once per episode, after its cool-down (see `omnidesk::analytics`).
    AlertRaised {
        /// The rule's name.
        rule: String,
        /// What is wrong, in a sentence.
        message: String,
        /// The value that crossed the threshold.
        value: f64,
        /// The threshold.
        threshold: f64,
    },
    /// An outgoing message met the tenant's compliance rules (forbidden phrases): the audit
    /// record of every hit, whatever became of the message.
    ComplianceHit {
        /// The conversation the message was meant for.
        conversation: ConversationId,
        /// Who wrote it.
        author: crate::message::Author,
        /// What became of it.
        outcome: ComplianceOutcome,
        /// The rules' phrases found, in order.
        phrases: Vec<String>,
        /// The text as written where each phrase was found (evasions included).
        found: Vec<String>,
    },
    /// A ticket was opened.
    TicketOpened {
        /// The ticket.
        ticket: TicketId,
        /// The number a customer can quote.
        number: u64,
        /// The conversation it came from, if any.
        conversation: Option<ConversationId>,
    },
}

/// What became of a message that met a compliance rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ComplianceOutcome {
    /// Not sent.
    Blocked,
    /// Held back: the sender was shown the phrases and may confirm.
    Warned,
    /// Sent after the sender confirmed a warning (or by a bot, which cannot confirm).
    SentAfterWarning,
}

impl ComplianceOutcome {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Warned => "warned",
            Self::SentAfterWarning => "sent_after_warning",
        }
    }
}

/// A customer survey and its scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Survey {
    /// Customer satisfaction: "How satisfied are you?" from 1 (very dissatisfied) to 5 (very
    /// satisfied).
    Csat,
    /// Net promoter score: "How likely are you to recommend us?" from 0 to 10.
    Nps,
    /// Customer effort score: "How easy was it to get your issue solved?" from 1 (very
    /// difficult) to 7 (very easy).
    Ces,
}

impl Survey {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Csat => "csat",
            Self::Nps => "nps",
            Self::Ces => "ces",
        }
    }

    /// The lowest and highest answer.
    pub const fn range(self) -> (u8, u8) {
        match self {
            Self::Csat => (1, 5),
            Self::Nps => (0, 10),
            Self::Ces => (1, 7),
        }
    }

    /// Whether `score` is on the scale.
    pub const fn accepts(self, score: u8) -> bool {
        let (lo, hi) = self.range();
        score >= lo && score <= hi
    }
}
