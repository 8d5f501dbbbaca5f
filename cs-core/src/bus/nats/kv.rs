//! Leases and presence in JetStream key-value buckets.

use std::fmt;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy, push};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{Entry, Operation, Store, UpdateErrorKind};
use async_trait::async_trait;
use futures::StreamExt;

use super::{escape, map_err};
use crate::bus::{
    Acquired, Lease, LeaseRecord, LeaseStore, PresenceEntry, PresenceStore, check_lease_name,
    check_name,
};
use crate::error::{Error, Result};
use crate::id::{AgentId, TenantId};

/// How long a presence listing waits for the next entry before it takes what it has (entries can
/// expire between the count and their delivery).
const LIST_GAP: Duration = Duration::from_secs(2);

fn encode<T: serde::Serialize>(value: &T) -> Result<bytes::Bytes> {
    serde_json::to_vec(value)
        .map(Into::into)
        .map_err(|e| Error::Backend {
            backend: super::BACKEND,
            source: Box::new(e),
        })
}

/// The JetStream [`LeaseStore`]: bucket `{prefix}_leases` with max age = TTL. Built by
/// [`NatsBus::leases`](super::NatsBus::leases).
#[derive(Clone)]
pub struct NatsLeases {
    store: Store,
    js: async_nats::jetstream::Context,
    ttl: Duration,
    client: async_nats::Client,
}

impl fmt::Debug for NatsLeases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsLeases")
            .field("bucket", &self.store.name)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl NatsLeases {
    pub(super) fn new(
        store: Store,
        ttl: Duration,
        js: async_nats::jetstream::Context,
        client: async_nats::Client,
    ) -> Self {
        Self {
            store,
            js,
            ttl,
            client,
        }
    }

    async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        self.store
            .entry(key)
            .await
            .map_err(|e| map_err(&self.client, "read a lease", e))
    }

    /// The live record of an entry (none for a deletion), with the epoch filled in: the first
    /// write of a holder stores epoch 0, meaning "this write's revision".
    fn record(entry: &Entry) -> Option<LeaseRecord> {
        if entry.operation != Operation::Put {
            return None;
        }
        let mut record: LeaseRecord = serde_json::from_slice(&entry.value).ok()?;
        if record.epoch == 0 {
            record.epoch = entry.revision;
        }
        Some(record)
    }

    /// The entry of `lease` if it still holds it at its revision.
    async fn current(&self, lease: &Lease) -> Result<Option<Entry>> {
        check_lease_name(&lease.name)?;
        let entry = self.entry(&escape(&lease.name)).await?;
        Ok(entry.filter(|e| {
            e.revision == lease.revision
                && Self::record(e)
                    .is_some_and(|r| r.holder == lease.holder && r.epoch == lease.epoch)
        }))
    }

    fn lost(lease: &Lease) -> Error {
        Error::conflict(format!(
            "lease {:?} is no longer held by {:?} at revision {}",
            lease.name, lease.holder, lease.revision
        ))
    }
}

#[async_trait]
impl LeaseStore for NatsLeases {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn acquire(&self, name: &str, holder: &str) -> Result<Acquired> {
        check_lease_name(name)?;
        check_name("lease holder", holder)?;
        let key = escape(name);
        let sent = tokio::time::Instant::now();
        // A few rounds: a write can lose to another node's, or the entry can expire under us.
        for _ in 0..8 {
            let entry = self.entry(&key).await?;
            if let Some(e) = &entry
                && let Some(record) = Self::record(e)
            {
                if record.holder == holder {
                    // Asked again by its holder: renewed, so it is valid for a whole TTL.
                    let lease = Lease {
                        name: name.to_owned(),
                        holder: holder.to_owned(),
                        revision: e.revision,
                        epoch: record.epoch,
                        valid_until: sent,
                    };
                    match self.renew(&lease).await {
                        Ok(lease) => return Ok(Acquired::Held(lease)),
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                return Ok(Acquired::HeldBy {
                    holder: record.holder,
                    epoch: record.epoch,
                });
            }
            // Free: never taken (0), expired (0), or released (the deletion's revision).
            let expected = entry.map_or(0, |e| e.revision);
            let value = encode(&LeaseRecord {
                holder: holder.to_owned(),
                epoch: 0,
            })?;
            match self.store.update(&key, value, expected).await {
                Ok(revision) => {
                    return Ok(Acquired::Held(Lease {
                        name: name.to_owned(),
                        holder: holder.to_owned(),
                        revision,
                        epoch: revision,
                        valid_until: sent + self.ttl,
                    }));
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(map_err(&self.client, "acquire a lease", e)),
            }
        }
        Err(Error::Unavailable {
            reason: format!("lease {name:?} changed hands too often to be read"),
        })
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease> {
        let sent = tokio::time::Instant::now();
        if self.current(lease).await?.is_none() {
            return Err(Self::lost(lease));
        }
        let value = encode(&LeaseRecord {
            holder: lease.holder.clone(),
            epoch: lease.epoch,
        })?;
        match self
            .store
            .update(escape(&lease.name), value, lease.revision)
            .await
        {
            Ok(revision) => Ok(Lease {
                revision,
                valid_until: sent + self.ttl,
                ..lease.clone()
            }),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(Self::lost(lease)),
            Err(e) => Err(map_err(&self.client, "renew a lease", e)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        if self.current(lease).await?.is_none() {
            return Ok(false);
        }
        // A deletion marker written only if the lease is still at our revision.
        let mut headers = HeaderMap::new();
        headers.insert("KV-Operation", "DEL");
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            lease.revision.to_string().as_str(),
        );
        let subject = format!("{}{}", self.store.prefix, escape(&lease.name));
        let ack = self
            .js
            .publish_with_headers(subject, headers, bytes::Bytes::new())
            .await
            .map_err(|e| map_err(&self.client, "release a lease", e))?
            .await;
        match ack {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(e) => Err(map_err(&self.client, "release a lease", e)),
        }
    }

    async fn holder(&self, name: &str) -> Result<Option<LeaseRecord>> {
        check_lease_name(name)?;
        Ok(self
            .entry(&escape(name))
            .await?
            .as_ref()
            .and_then(Self::record))
    }
}

/// The JetStream [`PresenceStore`]: bucket `{prefix}_presence` with max age = TTL, one key
/// `{tenant}.{agent}.{node}` per entry. Built by [`NatsBus::presence`](super::NatsBus::presence).
#[derive(Clone)]
pub struct NatsPresence {
    store: Store,
    ttl: Duration,
    client: async_nats::Client,
}

impl fmt::Debug for NatsPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsPresence")
            .field("bucket", &self.store.name)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl NatsPresence {
    pub(super) fn new(store: Store, ttl: Duration, client: async_nats::Client) -> Self {
        Self { store, ttl, client }
    }

    fn key(tenant: &TenantId, agent: AgentId, node: &str) -> Result<String> {
        check_name("node name", node)?;
        Ok(format!("{}.{agent}.{node}", escape(tenant.as_str())))
    }
}

#[async_trait]
impl PresenceStore for NatsPresence {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn put(&self, entry: &PresenceEntry) -> Result<()> {
        let key = Self::key(&entry.tenant, entry.agent, &entry.node)?;
        self.store
            .put(key, encode(entry)?)
            .await
            .map_err(|e| map_err(&self.client, "put presence", e))?;
        Ok(())
    }

    async fn remove(&self, tenant: &TenantId, agent: AgentId, node: &str) -> Result<()> {
        let key = Self::key(tenant, agent, node)?;
        self.store
            .delete(key)
            .await
            .map_err(|e| map_err(&self.client, "remove presence", e))
    }

    async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<PresenceEntry>> {
        let filter = match tenant {
            Some(t) => format!("{}{}.>", self.store.prefix, escape(t.as_str())),
            None => format!("{}>", self.store.prefix),
        };
        // The last value of every key, in one ordered (ephemeral) consumer.
        let consumer = self
            .store
            .stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                description: Some("omnidesk presence listing".into()),
                filter_subject: filter,
                deliver_policy: DeliverPolicy::LastPerSubject,
                replay_policy: ReplayPolicy::Instant,
                ..Default::default()
            })
            .await
            .map_err(|e| map_err(&self.client, "list presence", e))?;
        let mut live = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(live);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| map_err(&self.client, "list presence", e))?;
        loop {
            let message = match tokio::time::timeout(LIST_GAP, messages.next()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(m)) => m.map_err(|e| map_err(&self.client, "list presence", e))?,
            };
            let pending = message.info().map(|i| i.pending).unwrap_or(0);
            let deleted = message
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
            if !deleted && let Ok(entry) = serde_json::from_slice::<PresenceEntry>(&message.payload)
            {
                live.push(entry);
            }
            if pending == 0 {
                break;
            }
        }
        live.sort_by(|a, b| (&a.tenant, a.agent, &a.node).cmp(&(&b.tenant, b.agent, &b.node)));
        Ok(live)
    }
}
