//! Conversation persistence: customers, their identities, conversations and messages.
//!
//! [`ConversationStore`] is the trait; [`MemoryStore`] is always available, `SqliteStore` (feature
//! `sqlite`) is the embedded default, `PostgresStore` (feature `postgres`) lets several processes
//! share one database. Every implementation runs the same conformance suite
//! ([`crate::conformance`], feature `conformance`).

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod schema;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod shared;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::channel::{Identity, IdentityLink, LinkOrigin, Route};
use crate::conversation::{Conversation, ConversationState, Priority};
use crate::customer::{Customer, CustomerTier};
use crate::error::Result;
use crate::id::{AgentId, ChannelId, ConversationId, CustomerId, MergeId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Message};

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

/// Find the customer who owns an identity, or create one.
#[derive(Debug, Clone)]
pub struct ResolveCustomer {
    /// The tenant.
    pub tenant: TenantId,
    /// The identity the message came from.
    pub identity: Identity,
    /// A display name, used only when a customer is created.
    pub display_name: Option<String>,
    /// A language, used only when a customer is created.
    pub language: Option<String>,
    /// When (by the engine's clock).
    pub at: DateTime<Utc>,
}

/// The outcome of [`ConversationStore::resolve_customer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The customer who owns the identity.
    pub customer: Customer,
    /// Whether the customer was created by this call.
    pub created: bool,
}

/// Find the customer's active conversation, or open one.
#[derive(Debug, Clone)]
pub struct OpenConversation {
    /// The tenant.
    pub tenant: TenantId,
    /// Whose conversation.
    pub customer: CustomerId,
    /// Where replies go.
    pub route: Route,
    /// Priority of a new conversation.
    pub priority: Priority,
    /// When (by the engine's clock).
    pub at: DateTime<Utc>,
}

/// The outcome of [`ConversationStore::open_conversation`].
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The customer's active conversation.
    pub conversation: Conversation,
    /// Whether it was opened by this call.
    pub created: bool,
}

/// The outcome of [`ConversationStore::append_message`].
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// The message was stored.
    Inserted(Message),
    /// A message with the same channel and provider message id was already stored; this is it.
    Duplicate(Message),
}

impl Appended {
    /// The stored message (new or earlier).
    pub fn message(&self) -> &Message {
        match self {
            Self::Inserted(m) | Self::Duplicate(m) => m,
        }
    }

    /// Whether nothing new was stored.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate(_))
    }
}

/// Which messages to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageScope {
    /// One conversation.
    Conversation(ConversationId),
    /// Every conversation of one customer (their whole history across channels).
    Customer(CustomerId),
}

/// A page of messages, oldest first.
#[derive(Debug, Clone)]
pub struct MessageQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Which messages.
    pub scope: MessageScope,
    /// Only messages stored after this one.
    pub after: Option<MessageId>,
    /// At most this many (the store caps it at 1,000).
    pub limit: usize,
}

impl MessageQuery {
    /// The first `limit` messages of `scope`.
    pub fn new(tenant: TenantId, scope: MessageScope, limit: usize) -> Self {
        Self {
            tenant,
            scope,
            after: None,
            limit,
        }
    }
}

/// Which conversations to list, most recently updated first.
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only these states (all when empty).
    pub states: Vec<ConversationState>,
    /// Only this assignee.
    pub assignee: Option<AgentId>,
    /// Only this customer.
    pub customer: Option<CustomerId>,
    /// At most this many (the store caps it at 1,000).
    pub limit: usize,
}

/// Claim the outbound messages that are due for (re)delivery.
#[derive(Debug, Clone)]
pub struct ClaimOutbound {
    /// The tenant.
    pub tenant: TenantId,
    /// Messages whose next attempt is at or before this time are due.
    pub now: DateTime<Utc>,
    /// Claimed messages are not handed out again before this time (a worker that crashes
    /// mid-send loses its claim then, and another worker retries).
    pub lease_until: DateTime<Utc>,
    /// Only this conversation's messages.
    pub conversation: Option<ConversationId>,
    /// At most this many.
    pub limit: usize,
}

/// An outbound message claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The message.
    pub message: Message,
    /// The customer identity it goes to.
    pub to: Identity,
    /// Delivery attempts made before this one.
    pub attempts: u32,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The provider took it: the message leaves the outbox.
    Sent {
        /// How far it got.
        status: DeliveryStatus,
        /// The provider's id for it, to match later receipts.
        provider_id: Option<String>,
    },
    /// A temporary failure: try again at `at`.
    Retry {
        /// When to try again.
        at: DateTime<Utc>,
        /// What went wrong.
        error: String,
    },
    /// A permanent failure (or too many attempts): the message becomes a dead letter.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// An outbound message that could not be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message.
    pub message: Message,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

/// Merge one customer into another.
#[derive(Debug, Clone)]
pub struct MergeCustomers {
    /// The tenant.
    pub tenant: TenantId,
    /// The customer who stays.
    pub into: CustomerId,
    /// The customer merged away.
    pub from: CustomerId,
    /// Who or what decided it.
    pub by: LinkOrigin,
    /// When.
    pub at: DateTime<Utc>,
}

/// A recorded merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    /// The id.
    pub id: MergeId,
    /// The tenant.
    pub tenant: TenantId,
    /// The customer who stayed.
    pub into: CustomerId,
    /// The customer merged away.
    pub from: CustomerId,
    /// The identities that moved, with the origins they had before.
    pub identities: Vec<IdentityLink>,
    /// The conversations that moved.
    pub conversations: Vec<ConversationId>,
    /// `from`'s active conversation, resolved by the merge because `into` had one too.
    pub resolved: Option<ConversationId>,
    /// Who or what decided it.
    pub by: LinkOrigin,
    /// When.
    pub at: DateTime<Utc>,
    /// When it was undone.
    pub undone_at: Option<DateTime<Utc>>,
}

/// The most rows one list call returns.
pub const MAX_PAGE: usize = 1_000;

/// Stores customers, identities, conversations and messages.
///
/// Implementations must be safe under concurrent use from many tasks and processes sharing the
/// backend: a customer identity belongs to exactly one customer, a customer has at most one active
/// conversation, a `(channel, provider_message_id)` pair is stored once, and a conversation update
/// based on a stale version fails with [`crate::Error::Conflict`].
#[async_trait]
pub trait ConversationStore: Send + Sync + Debug + 'static {
    /// Returns the customer who owns `req.identity`, creating the customer (and linking the
    /// identity) when there is none. Concurrent calls for the same identity agree on one customer.
    ///
    /// # Errors
    /// [`crate::Error::Backend`] or [`crate::Error::Unavailable`] when the backend fails.
    async fn resolve_customer(&self, req: &ResolveCustomer) -> Result<Resolved>;

    /// The customer who owns `identity`, if any (never creates one).
    ///
    /// # Errors
    /// Backend failures.
    async fn find_customer(
        &self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>>;

    /// Loads a customer.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such customer in the tenant.
    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer>;

    /// Saves a customer's profile (name, tier, language).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such customer.
    async fn update_customer(&self, customer: &Customer) -> Result<()>;

    /// Links another identity to a customer, recording why. Linking an identity the customer
    /// already has is a no-op (the first origin is kept).
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] when the identity belongs to another customer (merge the
    /// customers instead); [`crate::Error::NotFound`] when the customer does not exist.
    async fn link_identity(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        identity: &Identity,
        origin: &LinkOrigin,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Every identity of a customer with the origin of its link.
    ///
    /// # Errors
    /// Backend failures.
    async fn identity_links(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<IdentityLink>>;

    /// Merges customer `from` into `into`: `from`'s identities, conversations and messages move
    /// to `into` (its whole history comes along) and the merge is recorded so
    /// [`ConversationStore::unmerge`] can undo it. When both have an active conversation,
    /// `from`'s is resolved (its messages stay in `into`'s history).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a customer merged with itself;
    /// [`crate::Error::Conflict`] when either customer has itself been merged away;
    /// [`crate::Error::NotFound`] for an unknown customer.
    async fn merge_customers(&self, request: &MergeCustomers) -> Result<Merge>;

    /// Undoes a merge: the identities and conversations that moved (with their messages, including
    /// any written since in those conversations) go back to the merged-away customer. Identities
    /// and conversations that moved on again since are left where they are.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] for an unknown merge; [`crate::Error::Conflict`] when it was
    /// undone already.
    async fn unmerge(&self, tenant: &TenantId, merge: MergeId, at: DateTime<Utc>) -> Result<Merge>;

    /// The merges a customer took part in (either side), oldest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn merges(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Merge>>;

    /// Every identity of a customer.
    ///
    /// # Errors
    /// Backend failures.
    async fn identities(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>>;

    /// Returns the customer's active conversation, opening one when there is none. Concurrent
    /// calls for the same customer agree on one conversation. An existing conversation's route is
    /// not changed here (see [`ConversationStore::update_conversation`]).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when the customer does not exist.
    async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened>;

    /// Loads a conversation.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such conversation in the tenant.
    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation>;

    /// Saves a changed conversation if nobody else changed it since it was read: the stored
    /// version must equal `conversation.version`. Returns the saved conversation with its version
    /// incremented.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] on a stale version (or when re-activating would give the
    /// customer a second active conversation); [`crate::Error::NotFound`] when it does not exist.
    async fn update_conversation(&self, conversation: &Conversation) -> Result<Conversation>;

    /// Lists conversations, most recently updated first.
    ///
    /// # Errors
    /// Backend failures.
    async fn conversations(&self, query: &ConversationQuery) -> Result<Vec<Conversation>>;

    /// Stores a message unless one with the same `(channel, provider_message_id)` is already
    /// stored, in which case the earlier one is returned as [`Appended::Duplicate`].
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for an invalid message ([`Message::validate`]);
    /// [`crate::Error::NotFound`] when its conversation does not exist.
    async fn append_message(&self, message: &Message) -> Result<Appended>;

    /// Lists messages oldest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn messages(&self, query: &MessageQuery) -> Result<Vec<Message>>;

    /// Stores an outbound message for the customer identity `to` and puts it in the outbox,
    /// atomically: a message is stored
    /// before any attempt to send it, so a crash never loses it. A duplicate (same channel and
    /// provider message id) is returned as such and not queued again.
    ///
    /// # Errors
    /// As [`ConversationStore::append_message`].
    async fn append_outbound(&self, message: &Message, to: &Identity) -> Result<Appended>;

    /// Claims due outbox messages, oldest first, at most one per conversation: a conversation's
    /// next message is only handed out once the one before it has left the outbox (sent or dead),
    /// so messages reach the customer in order.
    ///
    /// # Errors
    /// Backend failures.
    async fn claim_outbound(&self, request: &ClaimOutbound) -> Result<Vec<Claimed>>;

    /// Records the outcome of a delivery attempt of a claimed message.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when the message is not in the outbox.
    async fn finish_outbound(
        &self,
        tenant: &TenantId,
        message: MessageId,
        outcome: &Outcome,
    ) -> Result<()>;

    /// Messages that could not be delivered, oldest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn dead_letters(&self, tenant: &TenantId, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Applies a provider receipt (delivered, read, failed) to the outbound message the provider
    /// knows as `provider_id` on `channel`. Statuses only move forward (a late "delivered" after
    /// "read" changes nothing); returns the message, or `None` when no message matches.
    ///
    /// # Errors
    /// Backend failures.
    async fn apply_receipt(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_id: &str,
        status: DeliveryStatus,
    ) -> Result<Option<MessageId>>;

    /// Records how far an outbound message got.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such message.
    async fn set_delivery_status(
        &self,
        tenant: &TenantId,
        message: MessageId,
        status: DeliveryStatus,
    ) -> Result<()>;
}

/// The profile fields of a new customer.
pub(crate) fn new_customer(req: &ResolveCustomer) -> Customer {
    Customer {
        id: CustomerId::new(),
        tenant: req.tenant.clone(),
        display_name: req.display_name.clone(),
        tier: CustomerTier::Standard,
        language: req.language.clone(),
        created_at: req.at,
    }
}

/// A new active conversation in the bot state.
pub(crate) fn new_conversation(req: &OpenConversation) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        tenant: req.tenant.clone(),
        customer: req.customer,
        route: req.route.clone(),
        state: ConversationState::Bot,
        priority: req.priority,
        skills: Vec::new(),
        assignee: None,
        created_at: req.at,
        updated_at: req.at,
        version: 0,
    }
}

/// Whether a receipt moving a message from `old` to `new` should be applied: statuses only move
/// forward, and a failure report always applies.
pub(crate) fn status_advances(old: DeliveryStatus, new: DeliveryStatus) -> bool {
    fn rank(s: DeliveryStatus) -> u8 {
        match s {
            DeliveryStatus::Pending => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Failed => 4,
        }
    }
    new == DeliveryStatus::Failed || rank(new) > rank(old)
}

pub(crate) fn page(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE)
}
