//! The NATS JetStream implementations (feature `nats`): what crosses nodes travels over a NATS
//! server (tested against nats-server 2.9.10 with `-js`), never over a broker or a lease of our own.
//!
//! - [`NatsBus`] is the [`EventBus`](super::EventBus) and the
//!   [`CommandQueue`](super::CommandQueue): a stream `{prefix}_events` (subjects
//!   `{prefix}.events.>`, limits retention for [`NatsBusBuilder::with_event_max_age`], messages
//!   deduplicated by event id) whose durable pull consumers are the nodes' durable subscriptions
//!   (explicit ack, the ack wait and in-flight limit of [`SubscribeOptions`](super::SubscribeOptions)),
//!   and a work-queue stream `{prefix}_commands` (subjects `{prefix}.commands.{queue}`) with one
//!   durable pull consumer per queue.
//! - [`NatsLeases`] is the [`LeaseStore`](super::LeaseStore): a key-value bucket
//!   `{prefix}_leases` whose `max_age` is the lease TTL; acquire and renew are writes checked
//!   against the key's last revision (`Nats-Expected-Last-Subject-Sequence`), so two holders can
//!   never both succeed; an entry not rewritten within the TTL is expired by the server.
//! - [`NatsPresence`] is the [`PresenceStore`](super::PresenceStore): a bucket
//!   `{prefix}_presence` whose `max_age` is the presence TTL, one key per tenant, agent and node.
//!
//! NATS 2.9 has no per-key TTL: every key of a bucket lives for the bucket's `max_age`, so each
//! TTL is one bucket, fixed when it is created; a node asking for another TTL gets
//! [`Error::InvalidInput`].
//!
//! The client reconnects by itself (forever, with backoff). A subscription re-issues its pull
//! requests after a reconnect and goes on; while the server is away, [`Subscription::next`]
//! returns [`Error::Unavailable`] on missed heartbeats (call it again to
//! go on waiting), and [`Error::NotFound`] when its consumer is gone.
//!
//! [`Subscription::next`]: super::Subscription::next
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cs_core::bus::nats::NatsBusBuilder;
//! use cs_core::bus::{CommandQueue, EventBus, LeaseStore, PresenceStore};
//!
//! # async fn f() -> cs_core::Result<()> {
//! let nats = NatsBusBuilder::new("nats://127.0.0.1:4222")
//!     .with_prefix("omnidesk")
//!     .build()
//!     .await?;
//! let events: Arc<dyn EventBus> = Arc::new(nats.clone());
//! let commands: Arc<dyn CommandQueue> = Arc::new(nats.clone());
//! let leases: Arc<dyn LeaseStore> = Arc::new(nats.leases(Duration::from_secs(10)).await?);
//! let presence: Arc<dyn PresenceStore> = Arc::new(nats.presence(Duration::from_secs(30)).await?);
//! # Ok(()) }
//! ```

mod kv;
mod streams;

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::error::{Error, Result};

pub use kv::{NatsLeases, NatsPresence};

const BACKEND: &str = "nats";

/// Builds a [`NatsBus`].
#[derive(Clone)]
pub struct NatsBusBuilder {
    url: String,
    client: Option<async_nats::Client>,
    prefix: String,
    event_max_age: Duration,
    command_max_age: Duration,
    memory: bool,
    connect_timeout: Duration,
}

impl fmt::Debug for NatsBusBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a user and password.
        f.debug_struct("NatsBusBuilder")
            .field("prefix", &self.prefix)
            .field("event_max_age", &self.event_max_age)
            .field("command_max_age", &self.command_max_age)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl NatsBusBuilder {
    /// A bus on the NATS server at `url` (e.g. `nats://127.0.0.1:4222`), prefix `omnidesk`,
    /// events and commands kept 24 hours, file storage.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client: None,
            prefix: "omnidesk".to_owned(),
            event_max_age: Duration::from_secs(24 * 3600),
            command_max_age: Duration::from_secs(24 * 3600),
            memory: false,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// A bus over a client connected already (its options are yours).
    pub fn from_client(client: async_nats::Client) -> Self {
        Self {
            client: Some(client),
            ..Self::new(String::new())
        }
    }

    /// Names every stream, consumer subject and bucket with `prefix` (1-32 of `[A-Za-z0-9_-]`):
    /// deployments, or test runs, with different prefixes share a server without meeting.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the events stream keeps an event (a node away longer misses it).
    pub fn with_event_max_age(mut self, max_age: Duration) -> Self {
        self.event_max_age = max_age;
        self
    }

    /// How long a command waits for a consumer at most.
    pub fn with_command_max_age(mut self, max_age: Duration) -> Self {
        self.command_max_age = max_age;
        self
    }

    /// Keeps streams and buckets in memory instead of files (lost when the server restarts).
    pub fn with_memory_storage(mut self, memory: bool) -> Self {
        self.memory = memory;
        self
    }

    /// How long the first connection may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects (unless given a client) and creates the streams if they do not exist.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad prefix or a zero max age; [`Error::Unavailable`] when the
    /// server is out of reach or has no JetStream.
    pub async fn build(self) -> Result<NatsBus> {
        let ok = !self.prefix.is_empty()
            && self.prefix.len() <= 32
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !ok {
            return Err(Error::invalid(format!(
                "invalid NATS prefix {:?}: use 1-32 of [A-Za-z0-9_-]",
                self.prefix
            )));
        }
        if self.event_max_age.is_zero() || self.command_max_age.is_zero() {
            return Err(Error::invalid("stream max ages must be above zero"));
        }
        let client = match self.client {
            Some(client) => client,
            None => async_nats::ConnectOptions::new()
                .name(format!("omnidesk-{}", self.prefix))
                .connection_timeout(self.connect_timeout)
                .connect(self.url.as_str())
                .await
                .map_err(|e| Error::Unavailable {
                    reason: format!("NATS at {}: {e}", redact(&self.url)),
                })?,
        };
        let js = jetstream::new(client.clone());
        let storage = if self.memory {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        };
        let p = &self.prefix;
        let events = js
            .get_or_create_stream(stream::Config {
                name: format!("{p}_events"),
                description: Some("omnidesk domain events, one durable consumer per node".into()),
                subjects: vec![format!("{p}.events.>")],
                retention: stream::RetentionPolicy::Limits,
                max_age: self.event_max_age,
                storage,
                duplicate_window: self.event_max_age.min(Duration::from_secs(120)),
                ..Default::default()
            })
            .await
            .map_err(|e| map_err(&client, "create the events stream", e))?;
        let commands = js
            .get_or_create_stream(stream::Config {
                name: format!("{p}_commands"),
                description: Some("omnidesk command work-queues, one consumer per queue".into()),
                subjects: vec![format!("{p}.commands.*")],
                retention: stream::RetentionPolicy::WorkQueue,
                max_age: self.command_max_age,
                storage,
                duplicate_window: self.command_max_age.min(Duration::from_secs(120)),
                ..Default::default()
            })
            .await
            .map_err(|e| map_err(&client, "create the commands stream", e))?;
        Ok(NatsBus {
            client,
            js,
            prefix: self.prefix,
            storage,
            events,
            commands,
        })
    }
}

/// The JetStream [`EventBus`](super::EventBus) and [`CommandQueue`](super::CommandQueue), and the
/// factory of [`NatsLeases`] and [`NatsPresence`] on the same connection. Clones share the
/// connection.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    storage: stream::StorageType,
    events: stream::Stream,
    commands: stream::Stream,
}

impl fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBus")
            .field("prefix", &self.prefix)
            .field("state", &self.client.connection_state())
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// The client (e.g. to watch its connection state).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context (e.g. to inspect streams and consumers).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The prefix of every name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lease store in bucket `{prefix}_leases`, created with max age `ttl` if missing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a TTL under 100 ms or when the bucket exists with another
    /// TTL; [`Error::Unavailable`] when out of reach.
    pub async fn leases(&self, ttl: Duration) -> Result<NatsLeases> {
        let store = self.bucket("leases", ttl).await?;
        Ok(NatsLeases::new(
            store,
            ttl,
            self.js.clone(),
            self.client.clone(),
        ))
    }

    /// The presence store in bucket `{prefix}_presence`, created with max age `ttl` if missing.
    ///
    /// # Errors
    /// As [`NatsBus::leases`].
    pub async fn presence(&self, ttl: Duration) -> Result<NatsPresence> {
        let store = self.bucket("presence", ttl).await?;
        Ok(NatsPresence::new(store, ttl, self.client.clone()))
    }

    async fn bucket(&self, what: &str, ttl: Duration) -> Result<jetstream::kv::Store> {
        if ttl < Duration::from_millis(100) {
            return Err(Error::invalid("a NATS bucket TTL is at least 100 ms"));
        }
        let bucket = format!("{}_{what}", self.prefix);
        let store = match self.js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The stream a key-value bucket is, created directly: the client's own
                // `create_key_value` first reads account limits in a shape 2.9 does not answer.
                self.js
                    .create_stream(stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some(format!("omnidesk {what}")),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        max_age: ttl,
                        storage: self.storage,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        num_replicas: 1,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| map_err(&self.client, "create a bucket", e))?;
                self.js
                    .get_key_value(&bucket)
                    .await
                    .map_err(|e| map_err(&self.client, "open a bucket", e))?
            }
        };
        let max_age = store.stream.cached_info().config.max_age;
        if max_age != ttl {
            return Err(Error::invalid(format!(
                "bucket {bucket} exists with max age {max_age:?}, not {ttl:?}: every node must use one TTL"
            )));
        }
        Ok(store)
    }

    /// Deletes every stream and bucket of this prefix (tests, or a deployment taken down).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when out of reach.
    pub async fn destroy(&self) -> Result<()> {
        let p = &self.prefix;
        for name in [
            format!("{p}_events"),
            format!("{p}_commands"),
            format!("KV_{p}_leases"),
            format!("KV_{p}_presence"),
        ] {
            if let Err(e) = self.js.delete_stream(&name).await {
                let missing = matches!(
                    e.kind(),
                    jetstream::context::DeleteStreamErrorKind::JetStream(ref j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                );
                if !missing {
                    return Err(map_err(&self.client, "delete a stream", e));
                }
            }
        }
        Ok(())
    }
}

/// Maps a client error by meaning: out of reach while disconnected or timed out, a backend
/// error otherwise.
pub(crate) fn map_err<E>(client: &async_nats::Client, what: &str, e: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text = e.to_string();
    let disconnected = client.connection_state() != async_nats::connection::State::Connected;
    if disconnected
        || text.contains("timed out")
        || text.contains("no responders")
        || text.contains("broken pipe")
    {
        Error::Unavailable {
            reason: format!("NATS: {what}: {text}"),
        }
    } else {
        Error::Backend {
            backend: BACKEND,
            source: format!("{what}: {text}").into(),
        }
    }
}

/// `url` without its user and password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Escapes `s` into a subject token or key part: `A-Z a-z 0-9 - _` stay, every other byte is
/// `=XX` (hex).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_tokens_plain() {
        assert_eq!(escape("acme.cn"), "acme=2Ecn");
        assert_eq!(escape("conversation:ab-1_"), "conversation=3Aab-1_");
        assert_eq!(redact("nats://u:p@host:4222"), "nats://***@host:4222");
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
    }
}
