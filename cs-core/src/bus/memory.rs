//! The in-process implementations: one process, no network, a mutex and a queue per durable
//! subscription. Time is tokio's clock, so tests may pause it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    Acker, Acquired, Command, CommandQueue, CommandSubscription, Delivery, EventBus,
    EventSubscription, Lease, LeaseRecord, LeaseStore, PresenceEntry, PresenceStore,
    SubscribeOptions, Subscription, check_lease_name, check_name, check_queue_name, event_key,
};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::id::{AgentId, TenantId};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One published item as a queue holds it.
struct Item<T> {
    payload: Arc<T>,
    key: Arc<str>,
    attempts: u64,
}

impl<T> Clone for Item<T> {
    fn clone(&self) -> Self {
        Self {
            payload: self.payload.clone(),
            key: self.key.clone(),
            attempts: self.attempts,
        }
    }
}

struct QueueState<T> {
    /// Waiting for delivery, lowest sequence first (redeliveries go back in their place).
    ready: BTreeMap<u64, Item<T>>,
    /// Delivered, not acknowledged: the item and its deadline.
    in_flight: HashMap<u64, (Item<T>, Instant)>,
    /// The deadlines of `in_flight`, soonest first.
    deadlines: BTreeSet<(Instant, u64)>,
    ack_wait: Duration,
    max_in_flight: usize,
    deleted: bool,
}

/// What [`Queue::poll`] found.
enum Polled<T> {
    /// A delivery, taken.
    Due(u64, Item<T>),
    /// Nothing now; look again at this instant (or when notified).
    Wait(Option<Instant>),
}

/// A durable subscription's (or a command queue's) deliveries.
struct Queue<T> {
    state: Mutex<QueueState<T>>,
    notify: Notify,
}

impl<T> Queue<T> {
    fn new(options: &SubscribeOptions) -> Self {
        Self {
            state: Mutex::new(QueueState {
                ready: BTreeMap::new(),
                in_flight: HashMap::new(),
                deadlines: BTreeSet::new(),
                ack_wait: options.ack_wait,
                max_in_flight: options.max_in_flight,
                deleted: false,
            }),
            notify: Notify::new(),
        }
    }

    fn configure(&self, options: &SubscribeOptions) {
        let mut s = lock(&self.state);
        s.ack_wait = options.ack_wait;
        s.max_in_flight = options.max_in_flight;
    }

    fn push(&self, seq: u64, item: Item<T>) {
        lock(&self.state).ready.insert(seq, item);
        self.notify.notify_waiters();
    }

    fn delete(&self) {
        let mut s = lock(&self.state);
        s.deleted = true;
        s.ready.clear();
        s.in_flight.clear();
        s.deadlines.clear();
        drop(s);
        self.notify.notify_waiters();
    }

    /// Takes the next delivery if one is due, else the instant to look again (if any).
    fn poll(&self) -> Result<Polled<T>> {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        if s.deleted {
            return Err(Error::not_found("subscription", "deleted"));
        }
        let now = Instant::now();
        while let Some(&(at, seq)) = s.deadlines.first() {
            if at > now {
                break;
            }
            s.deadlines.pop_first();
            if let Some((item, _)) = s.in_flight.remove(&seq) {
                s.ready.insert(seq, item);
            }
        }
        if s.in_flight.len() < s.max_in_flight
            && let Some((seq, mut item)) = s.ready.pop_first()
        {
            item.attempts += 1;
            let deadline = now + s.ack_wait;
            s.in_flight.insert(seq, (item.clone(), deadline));
            s.deadlines.insert((deadline, seq));
            return Ok(Polled::Due(seq, item));
        }
        Ok(Polled::Wait(s.deadlines.first().map(|&(at, _)| at)))
    }

    async fn next(&self) -> Result<(u64, Item<T>)> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.poll()? {
                Polled::Due(seq, item) => return Ok((seq, item)),
                Polled::Wait(Some(at)) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                Polled::Wait(None) => notified.await,
            }
        }
    }

    fn ack(&self, seq: u64) {
        let mut s = lock(&self.state);
        if let Some((_, at)) = s.in_flight.remove(&seq) {
            s.deadlines.remove(&(at, seq));
        }
        s.ready.remove(&seq);
        drop(s);
        self.notify.notify_waiters();
    }

    fn nak(&self, seq: u64, delay: Duration) {
        let mut s = lock(&self.state);
        if let Some((item, at)) = s.in_flight.remove(&seq) {
            s.deadlines.remove(&(at, seq));
            if delay.is_zero() {
                s.ready.insert(seq, item);
            } else {
                let at = Instant::now() + delay;
                s.in_flight.insert(seq, (item, at));
                s.deadlines.insert((at, seq));
            }
        }
        drop(s);
        self.notify.notify_waiters();
    }
}

struct MemAcker<T> {
    queue: Weak<Queue<T>>,
    seq: u64,
}

impl<T> Debug for MemAcker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemAcker").field("seq", &self.seq).finish()
    }
}

#[async_trait]
impl<T: Send + Sync + 'static> Acker for MemAcker<T> {
    async fn ack(&self) -> Result<()> {
        if let Some(q) = self.queue.upgrade() {
            q.ack(self.seq);
        }
        Ok(())
    }

    async fn nak(&self, delay: Duration) -> Result<()> {
        if let Some(q) = self.queue.upgrade() {
            q.nak(self.seq, delay);
        }
        Ok(())
    }
}

struct MemSubscription<T> {
    queue: Arc<Queue<T>>,
    name: String,
}

impl<T> Debug for MemSubscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemSubscription")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<T: Clone + Send + Sync + 'static> Subscription<T> for MemSubscription<T> {
    async fn next(&mut self) -> Result<Delivery<T>> {
        let (seq, item) = self.queue.next().await?;
        let acker = MemAcker {
            queue: Arc::downgrade(&self.queue),
            seq,
        };
        Ok(Delivery::new(
            T::clone(&item.payload),
            seq,
            item.key.to_string(),
            item.attempts,
            Box::new(acker),
        ))
    }
}

#[derive(Default)]
struct BusState {
    next_seq: u64,
    durables: HashMap<String, Arc<Queue<Event>>>,
    queues: HashMap<String, Arc<Queue<Command>>>,
}

/// The in-process [`EventBus`] and [`CommandQueue`]: one process, the single-node default.
/// A publish takes a mutex and queues the event once per durable subscription; a clone shares
/// the same bus.
#[derive(Clone, Default)]
pub struct InProcessBus {
    state: Arc<Mutex<BusState>>,
}

impl Debug for InProcessBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("InProcessBus")
            .field("durables", &s.durables.len())
            .field("queues", &s.queues.len())
            .field("next_seq", &s.next_seq)
            .finish()
    }
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<u64> {
        let mut s = lock(&self.state);
        s.next_seq += 1;
        let seq = s.next_seq;
        if !s.durables.is_empty() {
            let payload = Arc::new(event.clone());
            let key: Arc<str> = event_key(event).into();
            for queue in s.durables.values() {
                queue.push(
                    seq,
                    Item {
                        payload: payload.clone(),
                        key: key.clone(),
                        attempts: 0,
                    },
                );
            }
        }
        Ok(seq)
    }

    async fn subscribe(
        &self,
        durable: &str,
        options: &SubscribeOptions,
    ) -> Result<EventSubscription> {
        check_name("durable subscription name", durable)?;
        options.check()?;
        let queue = {
            let mut s = lock(&self.state);
            s.durables
                .entry(durable.to_owned())
                .or_insert_with(|| Arc::new(Queue::new(options)))
                .clone()
        };
        queue.configure(options);
        Ok(Box::new(MemSubscription {
            queue,
            name: durable.to_owned(),
        }))
    }

    async fn delete_subscription(&self, durable: &str) -> Result<bool> {
        check_name("durable subscription name", durable)?;
        let removed = lock(&self.state).durables.remove(durable);
        Ok(removed.map(|q| q.delete()).is_some())
    }
}

impl InProcessBus {
    fn queue(&self, name: &str) -> Arc<Queue<Command>> {
        lock(&self.state)
            .queues
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Queue::new(&SubscribeOptions::default())))
            .clone()
    }
}

#[async_trait]
impl CommandQueue for InProcessBus {
    async fn send(&self, queue: &str, command: &Command) -> Result<u64> {
        check_queue_name(queue)?;
        let mut s = lock(&self.state);
        s.next_seq += 1;
        let seq = s.next_seq;
        let q = s
            .queues
            .entry(queue.to_owned())
            .or_insert_with(|| Arc::new(Queue::new(&SubscribeOptions::default())));
        q.push(
            seq,
            Item {
                payload: Arc::new(command.clone()),
                key: command.key.as_str().into(),
                attempts: 0,
            },
        );
        Ok(seq)
    }

    async fn consume(
        &self,
        queue: &str,
        options: &SubscribeOptions,
    ) -> Result<CommandSubscription> {
        check_queue_name(queue)?;
        options.check()?;
        let q = self.queue(queue);
        q.configure(options);
        Ok(Box::new(MemSubscription {
            queue: q,
            name: queue.to_owned(),
        }))
    }
}

#[derive(Debug)]
struct Slot {
    holder: String,
    epoch: u64,
    revision: u64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct LeaseState {
    revision: u64,
    slots: HashMap<String, Slot>,
}

/// The in-process [`LeaseStore`]: every lease of one process in a map.
#[derive(Debug, Clone)]
pub struct InProcessLeases {
    ttl: Duration,
    state: Arc<Mutex<LeaseState>>,
}

impl InProcessLeases {
    /// Leases that last `ttl` after each acquire or renew.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: Arc::default(),
        }
    }
}

#[async_trait]
impl LeaseStore for InProcessLeases {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&self, name: &str, holder: &str) -> Result<Acquired> {
        check_lease_name(name)?;
        check_name("lease holder", holder)?;
        let now = Instant::now();
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        let next = s.revision + 1;
        if let Some(slot) = s.slots.get_mut(name)
            && slot.expires > now
        {
            if slot.holder != holder {
                return Ok(Acquired::HeldBy {
                    holder: slot.holder.clone(),
                    epoch: slot.epoch,
                });
            }
            // Asked again by its holder: renewed.
            slot.revision = next;
            slot.expires = now + self.ttl;
            let lease = Lease {
                name: name.to_owned(),
                holder: holder.to_owned(),
                revision: next,
                epoch: slot.epoch,
                valid_until: slot.expires,
            };
            s.revision = next;
            return Ok(Acquired::Held(lease));
        }
        s.revision += 1;
        let revision = s.revision;
        s.slots.insert(
            name.to_owned(),
            Slot {
                holder: holder.to_owned(),
                epoch: revision,
                revision,
                expires: now + self.ttl,
            },
        );
        Ok(Acquired::Held(Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            revision,
            epoch: revision,
            valid_until: now + self.ttl,
        }))
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease> {
        let now = Instant::now();
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        let next = s.revision + 1;
        match s.slots.get_mut(&lease.name) {
            Some(slot)
                if slot.expires > now
                    && slot.revision == lease.revision
                    && slot.holder == lease.holder =>
            {
                slot.revision = next;
                slot.expires = now + self.ttl;
                s.revision = next;
                Ok(Lease {
                    revision: next,
                    valid_until: slot.expires,
                    ..lease.clone()
                })
            }
            _ => Err(Error::conflict(format!(
                "lease {:?} is no longer held by {:?} at revision {}",
                lease.name, lease.holder, lease.revision
            ))),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let now = Instant::now();
        let mut s = lock(&self.state);
        let held = s.slots.get(&lease.name).is_some_and(|slot| {
            slot.expires > now && slot.revision == lease.revision && slot.holder == lease.holder
        });
        if held {
            s.slots.remove(&lease.name);
            s.revision += 1;
        }
        Ok(held)
    }

    async fn holder(&self, name: &str) -> Result<Option<LeaseRecord>> {
        check_lease_name(name)?;
        let now = Instant::now();
        Ok(lock(&self.state)
            .slots
            .get(name)
            .filter(|slot| slot.expires > now)
            .map(|slot| LeaseRecord {
                holder: slot.holder.clone(),
                epoch: slot.epoch,
            }))
    }
}

type PresenceKey = (TenantId, AgentId, String);

/// The in-process [`PresenceStore`]: one process's entries in a map.
#[derive(Debug, Clone)]
pub struct InProcessPresence {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<PresenceKey, (PresenceEntry, Instant)>>>,
}

impl InProcessPresence {
    /// Entries that live `ttl` after each put.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
    }
}

#[async_trait]
impl PresenceStore for InProcessPresence {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn put(&self, entry: &PresenceEntry) -> Result<()> {
        check_name("node name", &entry.node)?;
        let key = (entry.tenant.clone(), entry.agent, entry.node.clone());
        lock(&self.entries).insert(key, (entry.clone(), Instant::now() + self.ttl));
        Ok(())
    }

    async fn remove(&self, tenant: &TenantId, agent: AgentId, node: &str) -> Result<()> {
        check_name("node name", node)?;
        lock(&self.entries).remove(&(tenant.clone(), agent, node.to_owned()));
        Ok(())
    }

    async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<PresenceEntry>> {
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        entries.retain(|_, (_, expires)| *expires > now);
        let mut live: Vec<PresenceEntry> = entries
            .values()
            .filter(|(e, _)| tenant.is_none_or(|t| &e.tenant == t))
            .map(|(e, _)| e.clone())
            .collect();
        live.sort_by(|a, b| (&a.tenant, a.agent, &a.node).cmp(&(&b.tenant, b.agent, &b.node)));
        Ok(live)
    }
}
