//! The service as one node of several (`nats = "nats://..."`): web-chat messages reach the
//! visitor's socket on whichever node holds it.
//!
//! The engine's outbox hands web-chat messages to [`SocketDelivered`], which pushes nothing and
//! leaves them pending; every node reads every [`DomainEvent::MessageSent`] from the bus and
//! pushes a web-chat message to the sockets *it* holds for that visitor, recording the message
//! as delivered only then. A visitor connected nowhere gets it with the history when the widget
//! connects again (to any node), so nothing is marked delivered that no socket received.

use std::sync::Arc;

use async_trait::async_trait;
use cs_channels::{
    Channel, ChannelInfo, OutboundMessage, Parsed, RawInbound, SendReceipt, StatusUpdate, WebChat,
};
use cs_core::{DeliveryStatus, Direction, DomainEvent};
use tokio::sync::broadcast;

use crate::engine::Engine;

/// The web chat as the outbox of a node of several sees it: a message is stored as pending
/// (under its own id, for the delivery receipt that follows) and pushed by whichever node holds
/// the visitor's socket ([`deliver_to_sockets`]).
#[derive(Debug, Clone)]
pub struct SocketDelivered {
    chat: Arc<WebChat>,
}

impl SocketDelivered {
    /// Wraps the node's web chat.
    pub fn new(chat: Arc<WebChat>) -> Self {
        Self { chat }
    }
}

#[async_trait]
impl Channel for SocketDelivered {
    fn info(&self) -> &ChannelInfo {
        self.chat.info()
    }

    async fn parse_inbound(&self, request: RawInbound) -> cs_channels::Result<Parsed> {
        self.chat.parse_inbound(request).await
    }

    async fn send(&self, message: &OutboundMessage) -> cs_channels::Result<SendReceipt> {
        if message.to.kind != cs_core::ChannelKind::WebChat {
            return Err(cs_channels::Error::invalid(format!(
                "web chat cannot reach identity {}",
                message.to
            )));
        }
        Ok(SendReceipt {
            provider_message_id: Some(message.message.id.to_string()),
            status: DeliveryStatus::Pending,
        })
    }
}

/// Pushes every outbound web-chat message the desk sends (on any node) to this node's sockets of
/// its visitor, and records it delivered when a socket took it. Runs until the engine's event
/// stream closes.
pub fn deliver_to_sockets(engine: Engine, chat: Arc<WebChat>) -> tokio::task::JoinHandle<()> {
    let mut events = engine.subscribe();
    tokio::spawn(async move {
        let channel = chat.info().id.clone();
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                // What was missed reaches the visitor with the history on their next connection.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "web-chat socket delivery fell behind");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let DomainEvent::MessageSent { message } = event.kind else {
                continue;
            };
            if message.direction != Direction::Outbound || message.channel != channel {
                continue;
            }
            let to = match engine.conversation(message.conversation).await {
                Ok(c) if c.route.channel == channel => c.route.identity,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "web-chat message's conversation not read");
                    continue;
                }
            };
            let id = message.id;
            match chat.send(&OutboundMessage { message, to }).await {
                Ok(r) if r.status == DeliveryStatus::Delivered => {
                    metrics::counter!("omnidesk_webchat_socket_pushes_total").increment(1);
                    let update = StatusUpdate {
                        provider_message_id: id.to_string(),
                        status: DeliveryStatus::Delivered,
                    };
                    if let Err(e) = engine.handle_receipt(&channel, &update).await {
                        tracing::warn!(error = %e, message = %id, "delivery not recorded");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, message = %id, "web-chat push failed"),
            }
        }
    })
}

/// The locks across the processes of a PostgreSQL desk: one customer's messages in order, one
/// agent's load checked and taken at a time.
///
/// # Errors
/// [`crate::Error::Config`] without the `postgres` feature; store errors when the database
/// cannot be reached.
pub async fn desk_locks(url: &str) -> crate::Result<Arc<dyn crate::engine::DeskLocks>> {
    #[cfg(feature = "postgres")]
    {
        Ok(Arc::new(crate::engine::PostgresLocks::connect(url).await?))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        Err(crate::Error::Config {
            reason: "database is a PostgreSQL URL but this build lacks the postgres feature".into(),
        })
    }
}

/// Joins the desk's other nodes when the config names a NATS server (`nats`,
/// `OMNIDESK_NATS`): the JetStream bus, command queue, router lease and presence bucket, under
/// this node's name. `None` for a one-process service. The router factory is filled in by the
/// caller.
///
/// # Errors
/// [`crate::Error::Config`] when NATS is configured without PostgreSQL or without the `nats`
/// feature; bus errors when the NATS server cannot be reached.
pub async fn join(config: &crate::Config) -> crate::Result<Option<crate::engine::Cluster>> {
    let Some(url) = config.nats_url() else {
        return Ok(None);
    };
    if config.postgres_url().is_none() {
        return Err(crate::Error::Config {
            reason: "nats: several nodes share one desk on PostgreSQL; set database to a \
                     postgres:// URL"
                .into(),
        });
    }
    connect(url, config).await.map(Some)
}

/// How long the router lease lasts without renewal: a dead owner's router moves after it.
pub const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(3);
/// How long an agent's presence lasts without refresh: the agents of a dead node are signed out
/// after it.
pub const PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(feature = "nats")]
async fn connect(url: &str, config: &crate::Config) -> crate::Result<crate::engine::Cluster> {
    use cs_core::bus::nats::NatsBusBuilder;
    let nats = NatsBusBuilder::new(url)
        .with_prefix(config.nats_prefix.clone())
        .build()
        .await?;
    let leases = nats.leases(LEASE_TTL).await?;
    let presence = nats.presence(PRESENCE_TTL).await?;
    let node = crate::engine::Cluster::node_name(&config.node());
    tracing::info!(%node, prefix = %config.nats_prefix, "one node of several, over NATS JetStream");
    Ok(crate::engine::Cluster {
        node,
        bus: Arc::new(nats.clone()),
        commands: Arc::new(nats),
        leases: Arc::new(leases),
        presence: Arc::new(presence),
        // Filled in by the caller from the routing policy.
        router: Arc::new(|| {
            Arc::new(cs_routing::Shared::new(cs_routing::SkillRouter::new(
                cs_routing::RoutingPolicy::default(),
            ))) as Arc<dyn cs_routing::Router>
        }),
    })
}

#[cfg(not(feature = "nats"))]
async fn connect(url: &str, _config: &crate::Config) -> crate::Result<crate::engine::Cluster> {
    Err(crate::Error::Config {
        reason: format!(
            "nats = {:?} but this build lacks the nats feature (cargo run --example server \
             --features postgres,nats)",
            url.split('@').next_back().unwrap_or_default()
        ),
    })
}
