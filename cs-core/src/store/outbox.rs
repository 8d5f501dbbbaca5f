//! Outbound messages on their way out: the outbox, claims, dead letters, receipts.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Appended;
use crate::channel::Identity;
use crate::error::Result;
use crate::id::{ChannelId, ConversationId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Message};

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
    /// Who claims: the claiming process's node id, recorded with each claim so that the node,
    /// restarted after a crash, can release what its previous incarnation held
    /// ([`Outbox::release_claims`]) instead of waiting for the lease. `None`: an anonymous claim,
    /// released only by its lease.
    pub owner: Option<String>,
}

/// Release the claims a node holds: its previous incarnation died mid-delivery.
#[derive(Debug, Clone)]
pub struct ReleaseClaims {
    /// The tenant.
    pub tenant: TenantId,
    /// The node whose claims are released ([`ClaimOutbound::owner`]).
    pub owner: String,
    /// Released messages are due again from this time.
    pub now: DateTime<Utc>,
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

/// Record how a delivery attempt of a claimed message ended.
#[derive(Debug, Clone)]
pub struct FinishOutbound {
    /// The tenant.
    pub tenant: TenantId,
    /// The message.
    pub message: MessageId,
    /// How it ended.
    pub outcome: Outcome,
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

/// A page of dead letters, oldest first.
#[derive(Debug, Clone)]
pub struct DeadLetterQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only dead letters of messages stored after this one.
    pub after: Option<MessageId>,
    /// At most this many (the store caps it at [`super::MAX_PAGE`]).
    pub limit: usize,
}

impl DeadLetterQuery {
    /// The first `limit` dead letters of `tenant`.
    pub fn new(tenant: TenantId, limit: usize) -> Self {
        Self {
            tenant,
            after: None,
            limit,
        }
    }
}

/// A provider's receipt for an outbound message (delivered, read, failed).
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The tenant.
    pub tenant: TenantId,
    /// The channel the message went out on.
    pub channel: ChannelId,
    /// The provider's id for the message ([`Outcome::Sent::provider_id`]).
    pub provider_id: String,
    /// How far it got.
    pub status: DeliveryStatus,
}

/// Set how far an outbound message got.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// The tenant.
    pub tenant: TenantId,
    /// The message.
    pub message: MessageId,
    /// Its status now.
    pub status: DeliveryStatus,
}

/// Outbound messages: stored before any attempt to send them, handed out to delivery workers in
/// order per conversation, retried, dead-lettered, and updated by provider receipts.
#[async_trait]
pub trait Outbox: Send + Sync + Debug + 'static {
    /// Stores an outbound message for the customer identity `to` and puts it in the outbox,
    /// atomically: a message is stored before any attempt to send it, so a crash never loses it.
    /// A duplicate (same channel and provider message id) is returned as such and not queued
    /// again.
    ///
    /// # Errors
    /// As [`super::ConversationLog::append_message`].
    async fn append_outbound(&self, message: &Message, to: &Identity) -> Result<Appended>;

    /// Claims due outbox messages, oldest first, at most one per conversation: a conversation's
    /// next message is only handed out once the one before it has left the outbox (sent or dead),
    /// so messages reach the customer in order.
    ///
    /// # Errors
    /// Backend failures.
    async fn claim_outbound(&self, req: &ClaimOutbound) -> Result<Vec<Claimed>>;

    /// Releases every claim `req.owner` holds, so the messages are due at `req.now` instead of
    /// when the claims' leases end; returns how many were released. Only for a node whose
    /// previous process is known to be dead (the engine calls it at start-up with its own node
    /// id): a live holder could deliver a released message a second time.
    ///
    /// # Errors
    /// Backend failures.
    async fn release_claims(&self, req: &ReleaseClaims) -> Result<u64>;

    /// Records the outcome of a delivery attempt of a claimed message (the claim ends with it).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when the message is not in the outbox.
    async fn finish_outbound(&self, req: &FinishOutbound) -> Result<()>;

    /// [`Outbox::append_outbound`], then [`Outbox::claim_outbound`] of `claim` (scoped to the
    /// message's conversation whatever `claim.conversation` says), as one write where the store
    /// can: a fresh message whose conversation has nothing older waiting is stored already
    /// claimed, and the caller delivers it without a second round trip. A duplicate claims
    /// nothing. Stores that do not override it get exactly the two calls.
    ///
    /// # Errors
    /// As [`Outbox::append_outbound`] and [`Outbox::claim_outbound`].
    async fn append_and_claim(
        &self,
        message: &Message,
        to: &Identity,
        claim: &ClaimOutbound,
    ) -> Result<(Appended, Vec<Claimed>)> {
        let appended = self.append_outbound(message, to).await?;
        if appended.is_duplicate() {
            return Ok((appended, Vec::new()));
        }
        let claim = ClaimOutbound {
            conversation: Some(message.conversation),
            ..claim.clone()
        };
        let claimed = self.claim_outbound(&claim).await?;
        Ok((appended, claimed))
    }

    /// [`Outbox::finish_outbound`], then, when `next` is given, [`Outbox::claim_outbound`] of
    /// it, as one write where the store can: a sender working through one conversation's queue
    /// finishes a message and takes the next in one round trip. Stores that do not override it
    /// get exactly the two calls.
    ///
    /// # Errors
    /// As [`Outbox::finish_outbound`] (the claim is not made when the finish fails) and
    /// [`Outbox::claim_outbound`].
    async fn finish_and_claim(
        &self,
        finish: &FinishOutbound,
        next: Option<&ClaimOutbound>,
    ) -> Result<Vec<Claimed>> {
        self.finish_outbound(finish).await?;
        match next {
            Some(claim) => self.claim_outbound(claim).await,
            None => Ok(Vec::new()),
        }
    }

    /// Messages that could not be delivered, oldest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>>;

    /// Applies a provider receipt to the outbound message the provider knows as
    /// `receipt.provider_id` on `receipt.channel`. Statuses only move forward (a late "delivered"
    /// after "read" changes nothing); returns the message, or `None` when no message matches.
    ///
    /// # Errors
    /// Backend failures.
    async fn apply_receipt(&self, receipt: &Receipt) -> Result<Option<MessageId>>;

    /// Records how far an outbound message got.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such message.
    async fn set_delivery_status(&self, change: &StatusChange) -> Result<()>;
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
