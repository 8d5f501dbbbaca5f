//! What crosses nodes: an event bus, command work-queues, leases and agent presence.
//!
//! Several processes of the bundled service can share one desk (on PostgreSQL). What one node
//! does, the others must hear of, and some work must have exactly one owner at a time. This
//! module names the four services that need, as object-safe traits used as `Arc<dyn Trait>`:
//!
//! - [`EventBus`]: every [`Event`] to every node. Each node reads through a *durable
//!   subscription* of its own name, which receives every event published after it was first
//!   created (fan-out), in publish order per [`event_key`], at least once, with explicit
//!   acknowledgement: a delivery not acknowledged within the subscription's ack wait is delivered
//!   again, to the same subscriber or to the next one that subscribes under the same name (a
//!   restarted node). Each [`Delivery`] carries a [`Delivery::sequence`] that is the same on every
//!   redelivery and on every node, so consumers can be idempotent.
//! - [`CommandQueue`]: work-queue semantics on named queues. A command ([`Command`], a JSON value
//!   and a key) goes to exactly one of the consumers of its queue, at least once, and again if
//!   that consumer dies before acknowledging it. Non-owner nodes use it to hand routing work to
//!   the node that owns a tenant's router.
//! - [`LeaseStore`]: named leases with a TTL, taken and renewed by revision-checked writes so two
//!   holders can never hold one at once; a lease whose holder stops renewing is free once the TTL
//!   passed. The lease's [`Lease::epoch`] (and [`Lease::revision`]) only grow, so a holder can
//!   stamp its decisions with them (fencing).
//! - [`PresenceStore`]: agent presence per node, in entries that expire after a TTL unless
//!   refreshed.
//!
//! Two implementations of each: in-process ([`InProcessBus`], [`InProcessLeases`],
//! [`InProcessPresence`]; one process, today's single-node default, a mutex and a queue) and
//! NATS JetStream (`bus::nats`, feature `nats`: streams with durable pull consumers for the bus and
//! the queues, key-value buckets for leases and presence). Both pass the same conformance suite
//! (`conformance::bus`, feature `conformance`).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cs_core::bus::{Acquired, EventBus, InProcessBus, InProcessLeases, LeaseStore, SubscribeOptions};
//! use cs_core::{DomainEvent, Event, Presence, TenantId, AgentId};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new());
//! // The node's durable subscription: created on first use, it sees every later event.
//! let mut events = bus.subscribe("node-a", &SubscribeOptions::default()).await?;
//! let event = Event::new(
//!     TenantId::default(),
//!     chrono::Utc::now(),
//!     DomainEvent::AgentPresenceChanged { agent: AgentId::new(), presence: Presence::Online },
//! );
//! let sequence = bus.publish(&event).await?;
//! let delivery = events.next().await?;
//! assert_eq!((delivery.sequence, &delivery.payload), (sequence, &event));
//! delivery.ack().await?; // not delivered again
//!
//! // One router per tenant across the nodes.
//! let leases: Arc<dyn LeaseStore> = Arc::new(InProcessLeases::new(Duration::from_secs(10)));
//! let Acquired::Held(lease) = leases.acquire("router.default", "node-a").await? else {
//!     unreachable!("nobody else asked");
//! };
//! assert!(matches!(leases.acquire("router.default", "node-b").await?, Acquired::HeldBy { .. }));
//! let lease = leases.renew(&lease).await?; // before the TTL runs out
//! leases.release(&lease).await?;
//! # Ok::<(), cs_core::Error>(())
//! # }).unwrap();
//! ```

mod memory;
#[cfg(feature = "nats")]
pub mod nats;

use std::fmt::{self, Debug};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::Presence;
use crate::error::{Error, Result};
use crate::event::{DomainEvent, Event};
use crate::id::{AgentId, TenantId};

pub use memory::{InProcessBus, InProcessLeases, InProcessPresence};

/// Longest subscription, queue, holder, lease or node name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a durable subscription, queue, holder or node name: 1 to [`MAX_NAME_LEN`] characters
/// of `A-Z a-z 0-9 - _` (a name every backend can use as is, e.g. as a JetStream consumer name).
///
/// # Errors
/// [`Error::InvalidInput`] naming `what` otherwise.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {what} {name:?}: use 1-{MAX_NAME_LEN} of [A-Za-z0-9_-]"
        )))
    }
}

/// Checks a queue name: 1 to [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 - _ .`
/// (`router.{tenant}` fits for tenants of up to 57 characters).
///
/// # Errors
/// [`Error::InvalidInput`] otherwise.
pub fn check_queue_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid queue name {name:?}: use 1-{MAX_NAME_LEN} of [A-Za-z0-9._-]"
        )))
    }
}

/// Checks a lease name: 1 to 128 characters of `A-Z a-z 0-9 - _ .` (`router.{tenant}` fits).
///
/// # Errors
/// [`Error::InvalidInput`] otherwise.
pub fn check_lease_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 2 * MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid lease name {name:?}: use 1-128 of [A-Za-z0-9._-]"
        )))
    }
}

/// The ordering key of an event: its conversation (`conversation:{id}`), else its customer
/// (`customer:{id}`), else its tenant (`tenant:{slug}`). Events of one key are delivered in
/// publish order.
pub fn event_key(event: &Event) -> String {
    if let Some(c) = event.conversation() {
        return format!("conversation:{c}");
    }
    use DomainEvent as E;
    let customer = match &event.kind {
        E::CustomerCreated { customer, .. } | E::IdentityLinked { customer, .. } => Some(*customer),
        E::CustomersMerged { into, .. } | E::CustomersUnmerged { into, .. } => Some(*into),
        _ => None,
    };
    match customer {
        Some(c) => format!("customer:{c}"),
        None => format!("tenant:{}", event.tenant),
    }
}

/// Acknowledges one delivery; each backend has its own.
#[async_trait]
pub trait Acker: Send + Sync + Debug + 'static {
    /// Done with it: it is not delivered again.
    async fn ack(&self) -> Result<()>;
    /// Not done: deliver it again after `delay` (at once for zero) instead of after the ack wait.
    async fn nak(&self, delay: Duration) -> Result<()>;
}

/// One delivery of a published item (an [`Event`] or a [`Command`]), to be acknowledged.
///
/// An unacknowledged delivery is delivered again after the subscription's ack wait; dropping it
/// does not acknowledge it.
pub struct Delivery<T> {
    /// What was published.
    pub payload: T,
    /// Its position in the stream: the same on every redelivery and for every subscriber, and
    /// increasing in publish order, so a consumer can remember what it has applied.
    pub sequence: u64,
    /// The ordering key it was published with.
    pub key: String,
    /// How many times it has been delivered to this subscription (or queue), 1 the first time.
    pub attempt: u64,
    acker: Box<dyn Acker>,
}

impl<T> Delivery<T> {
    /// A delivery acknowledged through `acker` (for backends).
    pub fn new(
        payload: T,
        sequence: u64,
        key: String,
        attempt: u64,
        acker: Box<dyn Acker>,
    ) -> Self {
        Self {
            payload,
            sequence,
            key,
            attempt,
            acker,
        }
    }

    /// Whether it was delivered before (and not acknowledged in time).
    pub fn is_redelivery(&self) -> bool {
        self.attempt > 1
    }

    /// Acknowledges it: it is not delivered again.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is out of reach (it will then be redelivered).
    pub async fn ack(&self) -> Result<()> {
        self.acker.ack().await
    }

    /// Asks for it to be delivered again after `delay`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is out of reach (it is then redelivered after the
    /// ack wait anyway).
    pub async fn nak(&self, delay: Duration) -> Result<()> {
        self.acker.nak(delay).await
    }
}

impl<T: Debug> Debug for Delivery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("sequence", &self.sequence)
            .field("key", &self.key)
            .field("attempt", &self.attempt)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// A stream of deliveries from a durable subscription or a queue.
#[async_trait]
pub trait Subscription<T>: Send + Debug {
    /// The next delivery, waiting for one as long as it takes (wrap it in
    /// `tokio::time::timeout` to bound the wait). Cancel safe: a delivery is never lost by
    /// dropping the future (at worst it comes again after the ack wait).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is out of reach for longer than the client's own
    /// reconnection covers (the subscription may work again later); [`Error::NotFound`] when the
    /// subscription was deleted; a payload that does not decode is a
    /// [`Error::InvalidInput`] and is acknowledged so it does not block the stream.
    async fn next(&mut self) -> Result<Delivery<T>>;
}

/// Deliveries of events.
pub type EventSubscription = Box<dyn Subscription<Event>>;
/// Deliveries of commands.
pub type CommandSubscription = Box<dyn Subscription<Command>>;

/// How a durable subscription (or a queue's consumer) delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// How long a delivery may stay unacknowledged before it is delivered again.
    pub ack_wait: Duration,
    /// At most this many deliveries unacknowledged at once (1: strictly one after the other).
    pub max_in_flight: usize,
}

impl Default for SubscribeOptions {
    /// Ack wait 30 s, 1,000 in flight.
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_in_flight: 1000,
        }
    }
}

impl SubscribeOptions {
    /// Sets the ack wait.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets how many deliveries may be unacknowledged at once.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.ack_wait.is_zero() || self.max_in_flight == 0 {
            return Err(Error::invalid(
                "ack_wait and max_in_flight must be above zero",
            ));
        }
        Ok(())
    }
}

/// Every event to every node.
#[async_trait]
pub trait EventBus: Send + Sync + Debug + 'static {
    /// Publishes `event` under its [`event_key`] and returns its sequence once it is stored.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is out of reach (publishing again is safe: a
    /// backend that deduplicates does so by [`Event::id`]).
    async fn publish(&self, event: &Event) -> Result<u64>;

    /// Opens the durable subscription `durable` (the node's name), creating it on first use: it
    /// receives every event published from its creation on, including those published while no
    /// one was subscribed under that name. Several subscriptions of one name share its
    /// deliveries (each delivery goes to one of them).
    ///
    /// Order: one subscription receives the events of a key in publish order; a redelivery
    /// comes back in its place in the in-process bus and after the deliveries already handed out
    /// on JetStream, so with more than one delivery in flight a consumer that needs strict order
    /// across redeliveries compares [`Delivery::sequence`] or sets
    /// [`SubscribeOptions::max_in_flight`] to 1.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name or options (see [`check_name`]);
    /// [`Error::Unavailable`] when the backend is out of reach.
    async fn subscribe(
        &self,
        durable: &str,
        options: &SubscribeOptions,
    ) -> Result<EventSubscription>;

    /// Deletes the durable subscription `durable` and what it had pending (a node leaving for
    /// good). Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name; [`Error::Unavailable`] when out of reach.
    async fn delete_subscription(&self, durable: &str) -> Result<bool>;
}

/// A command for a queue: an opaque JSON body and a key (e.g. the tenant) for logs and ordering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Ordering key: commands of one key are delivered in send order.
    pub key: String,
    /// What to do, as the sender and the consumer agree.
    pub body: serde_json::Value,
}

impl Command {
    /// A command.
    pub fn new(key: impl Into<String>, body: serde_json::Value) -> Self {
        Self {
            key: key.into(),
            body,
        }
    }
}

/// Named work-queues: each command goes to one consumer.
#[async_trait]
pub trait CommandQueue: Send + Sync + Debug + 'static {
    /// Sends `command` on `queue` (see [`check_queue_name`]) and returns its sequence once it is
    /// stored. A command sent
    /// before anyone consumes the queue waits for the first consumer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad queue name; [`Error::Unavailable`] when out of reach.
    async fn send(&self, queue: &str, command: &Command) -> Result<u64>;

    /// Consumes `queue`: every consumer of one queue shares its one consumer group, so each
    /// command is delivered to one of them, again if it is not acknowledged within the ack wait.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad queue name or options; [`Error::Unavailable`] when out
    /// of reach.
    async fn consume(&self, queue: &str, options: &SubscribeOptions)
    -> Result<CommandSubscription>;
}

/// A lease held: keep renewing it before [`LeaseStore::ttl`] runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// The revision of the last write (acquire or renew); the next renew must name it. Grows with
    /// every write to the store.
    pub revision: u64,
    /// The revision at which this holder acquired it: the same across renewals and greater than
    /// any earlier holder's, so decisions stamped with it can be fenced.
    pub epoch: u64,
    /// Until when, by this process's monotonic clock, the holder may act on it: the instant the
    /// last acquire or renew was sent plus the TTL (the store expires it a little later). A holder
    /// whose renewals fail (e.g. [`Error::Unavailable`]) stops acting at this instant.
    pub valid_until: tokio::time::Instant,
}

impl Lease {
    /// Whether [`Lease::valid_until`] is still ahead.
    pub fn is_valid(&self) -> bool {
        tokio::time::Instant::now() < self.valid_until
    }
}

/// The answer to [`LeaseStore::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the lease now.
    Held(Lease),
    /// Someone else holds it.
    HeldBy {
        /// Who.
        holder: String,
        /// Their epoch.
        epoch: u64,
    },
}

impl Acquired {
    /// The lease when held.
    pub fn held(self) -> Option<Lease> {
        match self {
            Self::Held(lease) => Some(lease),
            Self::HeldBy { .. } => None,
        }
    }
}

/// What a lease records (the JetStream value; public for tools that read the bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds it.
    pub holder: String,
    /// The revision at which they acquired it.
    pub epoch: u64,
}

/// Named leases with a TTL.
#[async_trait]
pub trait LeaseStore: Send + Sync + Debug + 'static {
    /// How long a lease lasts after its last acquire or renew.
    fn ttl(&self) -> Duration;

    /// Takes the lease `name` for `holder` if it is free (never taken, released, or not renewed
    /// for the TTL). Asking again while holding it renews it (same epoch, a new revision): holder
    /// names must be unique per process.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad names; [`Error::Unavailable`] when out of reach.
    async fn acquire(&self, name: &str, holder: &str) -> Result<Acquired>;

    /// Extends `lease` by the TTL and returns it with its new revision.
    ///
    /// # Errors
    /// [`Error::Conflict`] when it is no longer held at that revision (it expired, was taken
    /// over or released): the holder lost it and must stop acting on it;
    /// [`Error::Unavailable`] when out of reach.
    async fn renew(&self, lease: &Lease) -> Result<Lease>;

    /// Gives `lease` up so another holder can take it at once. Returns `false` when it was no
    /// longer held at that revision (nothing was changed).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when out of reach.
    async fn release(&self, lease: &Lease) -> Result<bool>;

    /// Who holds `name` now, if anyone.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name; [`Error::Unavailable`] when out of reach.
    async fn holder(&self, name: &str) -> Result<Option<LeaseRecord>>;
}

/// One agent's presence as one node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PresenceEntry {
    /// The tenant.
    pub tenant: TenantId,
    /// The agent.
    pub agent: AgentId,
    /// The node the agent is connected to.
    pub node: String,
    /// Their presence.
    pub presence: Presence,
    /// When it was last put, by the putting node's clock.
    pub at: DateTime<Utc>,
    /// Anything else the engine keeps with it (e.g. load); `null` when nothing.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl PresenceEntry {
    /// An entry without extra data.
    pub fn new(
        tenant: TenantId,
        agent: AgentId,
        node: impl Into<String>,
        presence: Presence,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            agent,
            node: node.into(),
            presence,
            at,
            data: serde_json::Value::Null,
        }
    }

    /// Sets the extra data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// Agent presence per node, each entry living for a TTL after its last put.
#[async_trait]
pub trait PresenceStore: Send + Sync + Debug + 'static {
    /// How long an entry lives after its last put.
    fn ttl(&self) -> Duration;

    /// Puts or refreshes the entry of (`tenant`, `agent`, `node`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad node name; [`Error::Unavailable`] when out of reach.
    async fn put(&self, entry: &PresenceEntry) -> Result<()>;

    /// Removes the entry of (`tenant`, `agent`, `node`), if any.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad node name; [`Error::Unavailable`] when out of reach.
    async fn remove(&self, tenant: &TenantId, agent: AgentId, node: &str) -> Result<()>;

    /// The live entries (put within the TTL and not removed), of one tenant or of all.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when out of reach.
    async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<PresenceEntry>>;
}
