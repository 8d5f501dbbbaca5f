//! The engine: where a customer message goes, step by step, one module per stage.
//!
//! ```text
//! channel --InboundMessage--> Engine::handle_inbound                            (inbound)
//!   1. identity  -> customer: known, joined by a key both identities prove,     (identity)
//!      or new (a spoofable phone number only suggests a match)
//!   2. customer  -> active conversation (replies follow the last channel used;  (inbound)
//!      a provider retry after the conversation ended opens nothing)
//!   3. store the message, once (provider retries de-duplicated); its sentiment
//!   4. dispatch by the conversation's state:
//!        bot      -> Bot::reply: answers go out; a hand-over queues it         (bot)
//!                    (outside business hours with nobody online: also a ticket)
//!        queued   -> waits; a customer who gets angrier moves up
//!        assigned -> the agent sees it on the event stream
//!   5. the Router decides; every decision has an effect: assignments, offers   (routing)
//!      accepted, rejected or lapsed, agents set away, bot-first reception
//! agent --Engine::agent_reply--> stored -> outbox -> Channel::send -> customer  (agents, outbox)
//! start-up: this node's dead claims released, the router rebuilt from the     (recovery)
//!   store moving nothing, interrupted bot turns run again
//! ```
//!
//! What the engine itself says to customers comes from templates in their language
//! ([`Texts`], the `texts` stage); a routed phone call is connected to the chosen agent (`voice`); a
//! write-through cache keeps a returning customer's message off the store's read path (`cache`).
//!
//! Every step emits a [`cs_core::Event`] on a broadcast stream ([`Engine::subscribe`]). Time comes
//! from the engine's [`Clock`], so tests drive it without sleeping.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use cs_bot::{Bot, BotInput, Handoff};
use cs_channels::{
    Channel, Delivered, InboundHandler, InboundMessage, OutboundMessage, StatusUpdate,
};
use cs_core::store::{
    ClaimOutbound, Claimed, ConversationLogExt, ConversationQuery, ConversationStore,
    CustomerStoreExt, DeadLetter, DeadLetterQuery, FinishOutbound, LinkIdentity, Merge,
    MergeCustomers, MessageQuery, MessageScope, OpenConversation, Outcome, Receipt, ReleaseClaims,
    ResolveCustomer, UnansweredQuery, Unmerge,
};
use cs_core::{
    Agent, AgentId, Author, ChannelId, Clock, Content, Conversation, ConversationId,
    ConversationState, Customer, Direction, DomainEvent, Event, Identity, LinkOrigin, MergeId,
    Message, MessageId, Presence, Priority, Route, SystemClock, TenantId,
};
use cs_routing::{Decision, Router, SkillRequirement, Snapshot, Task};
use cs_tickets::{
    Actor, NewTicket, Ticket, TicketDesk, TicketDeskBuilder, TicketQuery, TicketStore,
};
use tokio::sync::{Mutex, OwnedMutexGuard, broadcast};

use crate::error::{Error, Result};

mod agents;
mod bot;
mod builder;
mod cache;
mod cluster;
mod compliance;
mod identity;
mod inbound;
mod locks;
mod outbox;
mod reading;
mod recovery;
mod routing;
mod supervision;
mod survey;
mod texts;
mod tickets;
mod verify;
mod voice;
mod workbench;

use agents::AgentEntry;
pub use builder::{BusinessHours, DeskSettings, EngineBuilder};
pub use cluster::{Cluster, RouterFactory};
#[cfg(feature = "postgres")]
pub use locks::PostgresLocks;
pub use locks::{DeskLocks, LockGuard, LockKey};
pub use outbox::OutboxPolicy;
use routing::{Entry, Pace, Routed};
pub use routing::{Offer, Reception};
pub use texts::{Lang, Notice, Texts};

/// Locks striped by customer: a customer's messages are handled one at a time, in order.
const LOCK_STRIPES: usize = 256;
/// Bot turns that may wait, stored, for one lock stripe (see [`Engine::reserve_turn`]).
const TURNS_PER_STRIPE: usize = 32;

/// The customer-service engine. Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tenant: TenantId,
    store: Arc<dyn ConversationStore>,
    router: Arc<dyn Router>,
    bot: Arc<dyn Bot>,
    desk: Arc<TicketDesk>,
    channels: HashMap<ChannelId, Arc<dyn Channel>>,
    agents: RwLock<HashMap<AgentId, AgentEntry>>,
    clock: Arc<dyn Clock>,
    outbox: OutboxPolicy,
    events: broadcast::Sender<Event>,
    /// Work on a customer (a bot turn, an agent's action), one at a time in order, by stripe.
    locks: Vec<Arc<Mutex<()>>>,
    /// Storing a customer's incoming messages, by stripe: taken before [`Inner::locks`].
    append_locks: Vec<Arc<Mutex<()>>>,
    /// Bot turns stored and waiting for their stripe's work lock, bounded per stripe.
    turns: Vec<Arc<tokio::sync::Semaphore>>,
    settings: DeskSettings,
    /// Offers waiting for an agent's answer, by conversation.
    offers: std::sync::Mutex<HashMap<ConversationId, Offer>>,
    /// Recent assignments, for wait estimates.
    pace: std::sync::Mutex<Pace>,
    /// Identities, profiles, active conversations and their latest messages, in memory.
    cache: cache::HotCache,
    /// The last router snapshot and when it was taken ([`Engine::queue_snapshot`]).
    snapshot: std::sync::Mutex<Option<(std::time::Instant, Arc<Snapshot>)>>,
    /// What agents and bots may not say.
    compliance: crate::compliance::TenantRules,
    /// This process's node id: the owner of its outbox claims.
    node: Option<String>,
    /// Locks across the processes sharing the store, when there are several.
    desk_locks: Option<Arc<dyn DeskLocks>>,
    /// This node's part in a desk of several nodes.
    cluster: Option<cluster::Node>,
}

/// A customer as an agent sees them: profile, identities and whole history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CustomerView {
    /// The profile.
    pub customer: Customer,
    /// Every channel identity.
    pub identities: Vec<Identity>,
    /// Every message across conversations and channels, oldest first.
    pub history: Vec<Message>,
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::new()
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.inner.tenant
    }

    /// The conversation store.
    pub fn store(&self) -> &Arc<dyn ConversationStore> {
        &self.inner.store
    }

    /// The ticket store.
    pub fn tickets(&self) -> &Arc<dyn TicketStore> {
        self.inner.desk.store()
    }

    /// The ticket desk (SLA, escalation, hand-over, customer lookup, CSAT).
    pub fn ticket_desk(&self) -> &Arc<TicketDesk> {
        &self.inner.desk
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// A configured channel.
    pub fn channel(&self, id: &ChannelId) -> Option<&Arc<dyn Channel>> {
        self.inner.channels.get(id)
    }

    /// Every event from now on. A subscriber that falls more than the event capacity behind
    /// gets `RecvError::Lagged` and continues with newer events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Announces that an alert rule fired ([`DomainEvent::AlertRaised`]) on the event stream,
    /// for consoles and other subscribers (the analytics module's alert rules call it).
    pub fn raise_alert(&self, rule: &str, message: &str, value: f64, threshold: f64) {
        self.emit(DomainEvent::AlertRaised {
            rule: rule.to_owned(),
            message: message.to_owned(),
            value,
            threshold,
        });
    }

    pub(super) fn emit(&self, kind: DomainEvent) {
        let event = Event::new(self.inner.tenant.clone(), self.inner.clock.now(), kind);
        tracing::debug!(event = ?event.kind, "event");
        self.dispatch_event(event);
    }

    /// The router (on a node of several, the tenant's router wherever it runs).
    pub(super) fn router(&self) -> &Arc<dyn Router> {
        &self.inner.router
    }

    /// The lock stripe of a customer.
    pub(super) fn stripe(customer: cs_core::CustomerId) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        customer.hash(&mut h);
        (h.finish() as usize) % LOCK_STRIPES
    }

    /// Takes the locks of two customers without deadlocking: in stripe order, and once when
    /// both share a stripe (the locks are not re-entrant).
    pub(super) async fn lock_customers(
        &self,
        a: cs_core::CustomerId,
        b: cs_core::CustomerId,
    ) -> locks::CustomersGuard {
        let (sa, sb) = (Self::stripe(a), Self::stripe(b));
        let (lo, hi) = (sa.min(sb), sa.max(sb));
        let mut held = vec![self.inner.append_locks[lo].clone().lock_owned().await];
        if hi != lo {
            held.push(self.inner.append_locks[hi].clone().lock_owned().await);
        }
        let first = self.inner.locks[lo].clone().lock_owned().await;
        let second = if sa == sb {
            None
        } else {
            Some(self.inner.locks[hi].clone().lock_owned().await)
        };
        // Across nodes: both customers' desk locks, in one order everywhere.
        let mut desk = Vec::new();
        for c in [a.min(b), a.max(b)] {
            match self.desk_lock(locks::LockKey::Customer(c)).await {
                Ok(Some(g)) => desk.push(g),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, customer = %c, "customer lock across nodes not taken")
                }
            }
        }
        locks::CustomersGuard::new(held, first, second, desk)
    }

    /// Re-reads and changes a conversation, retrying when another writer got there first
    /// ([`ConversationLogExt::update_conversation_with_retry`]).
    pub(super) async fn update_conversation(
        &self,
        id: ConversationId,
        change: impl FnMut(&mut Conversation) + Send,
    ) -> Result<Conversation> {
        let updated = self
            .inner
            .store
            .update_conversation_with_retry(&self.inner.tenant, id, self.inner.clock.now(), change)
            .await?;
        self.inner.cache.put_conversation(&updated);
        Ok(updated)
    }
}
