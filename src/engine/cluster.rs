//! Several nodes, one desk: what crosses processes when several engines share one store.
//!
//! - **Events**: every [`Event`] the engine emits is published on the [`EventBus`]; each node
//!   reads every event through its durable subscription and hands it to its local subscribers
//!   ([`Engine::subscribe`]: the consoles and web-chat sockets it holds). An event is seen once
//!   per node even when the bus delivers it again.
//! - **One router per tenant**: the node holding the tenant's lease ([`LeaseStore`]) runs the
//!   router and consumes the tenant's routing commands; every other node sends what it would
//!   have asked its router (enqueue, release, presence, accept/reject, pick, re-prioritise) on
//!   the [`CommandQueue`] and learns the decisions from the bus. A node that takes the lease
//!   over rebuilds a fresh router from the store (waiting conversations with their enqueue times
//!   and priorities, held ones counted against their agents) and the presence store, then
//!   consumes the commands from the last one acknowledged. Assignments are stored with the
//!   store's optimistic versions under the agent's desk lock ([`super::DeskLocks`]), so a stale
//!   owner cannot assign a conversation twice or push an agent past capacity.
//! - **Presence**: the node an agent signs in on keeps their entry in the [`PresenceStore`]
//!   fresh; the router's owner signs out agents whose entries expired (their node died).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cs_core::bus::{
    Acquired, Command, CommandQueue, EventBus, Lease, LeaseStore, PresenceEntry, PresenceStore,
    SubscribeOptions,
};
use cs_routing::Reprioritize;
use tokio::sync::mpsc;

use super::*;

/// Makes a fresh, empty router (a node that takes a tenant's router over starts from one).
pub type RouterFactory = Arc<dyn Fn() -> Arc<dyn Router> + Send + Sync>;

/// What a node needs to share its desk with other nodes: its name, the bus, the command queue,
/// the leases and the presence store (in-process for tests, JetStream in production).
#[derive(Clone)]
pub struct Cluster {
    /// This node's name, unique among live nodes and stable across its restarts (`A-Z a-z 0-9 -
    /// _`, at most 64 characters): its durable event subscription and its lease holder name.
    pub node: String,
    /// Every event to every node.
    pub bus: Arc<dyn EventBus>,
    /// Routing commands to the router's owner.
    pub commands: Arc<dyn CommandQueue>,
    /// The router leases.
    pub leases: Arc<dyn LeaseStore>,
    /// Agent presence with a TTL.
    pub presence: Arc<dyn PresenceStore>,
    /// Makes the router a node runs when it owns the tenant's lease.
    pub router: RouterFactory,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("bus", &self.bus)
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A node name the bus accepts, made from any text (a host name and pid, `host:8080`): every
    /// other character becomes `-`, and it is cut to 64 characters.
    pub fn node_name(raw: &str) -> String {
        let mut name: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(cs_core::bus::MAX_NAME_LEN)
            .collect();
        if name.is_empty() {
            name.push_str("node");
        }
        name
    }
}

/// A routing call, as a non-owner sends it to the router's owner.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RouterCommand {
    Enqueue {
        task: Task,
    },
    Cancel {
        task: ConversationId,
    },
    UpsertAgent {
        agent: Agent,
    },
    Release {
        agent: AgentId,
        task: ConversationId,
    },
    Reprioritize {
        task: ConversationId,
        change: Reprioritize,
    },
    Pick {
        agent: AgentId,
        task: ConversationId,
    },
    Accept {
        agent: AgentId,
        task: ConversationId,
    },
    Reject {
        agent: AgentId,
        task: ConversationId,
    },
    /// The owner's queue and agents' loads (a query: it changes nothing).
    Snapshot,
}

/// A routing command as it travels: the call, and where the sender awaits the owner's answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Envelope {
    command: RouterCommand,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<ReplyTo>,
}

/// Where the owner sends a command's answer: the sender's reply queue and the request's id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ReplyTo {
    queue: String,
    id: u64,
}

/// The owner's answer to one command.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Reply {
    id: u64,
    #[serde(flatten)]
    outcome: Outcome,
}

/// What the owner's router said: the decisions the sender acts on itself (the owner carried
/// out the rest), the queue for a snapshot, or its typed error.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Done { decisions: Vec<Decision> },
    Snapshot { snapshot: Snapshot },
    Failed { error: RemoteError },
}

/// A router error as it crosses nodes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RemoteError {
    NotFound { what: String, id: String },
    Conflict { reason: String },
    InvalidInput { reason: String },
    Unavailable { reason: String },
}

impl From<&cs_routing::Error> for RemoteError {
    fn from(e: &cs_routing::Error) -> Self {
        match e {
            cs_routing::Error::NotFound { what, id } => Self::NotFound {
                what: (*what).to_owned(),
                id: id.clone(),
            },
            cs_routing::Error::Conflict { reason } => Self::Conflict {
                reason: reason.clone(),
            },
            cs_routing::Error::InvalidInput { reason } => Self::InvalidInput {
                reason: reason.clone(),
            },
            other => Self::Unavailable {
                reason: other.to_string(),
            },
        }
    }
}

impl From<RemoteError> for cs_routing::Error {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::NotFound { what, id } => cs_routing::Error::NotFound {
                // The router's own words, so the error reads the same on every node.
                what: match what.as_str() {
                    "agent" => "agent",
                    "queued task" => "queued task",
                    _ => "task",
                },
                id,
            },
            RemoteError::Conflict { reason } => cs_routing::Error::Conflict { reason },
            RemoteError::InvalidInput { reason } => cs_routing::Error::InvalidInput { reason },
            RemoteError::Unavailable { reason } => cs_routing::Error::Unavailable { reason },
        }
    }
}

/// How long a node waits for the owner's answer to a command. An enqueue unanswered in time
/// still waits in the queue for the owner (it is stored); a pick, accept, reject or snapshot
/// fails as unavailable.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// Requests awaiting the owner's answer, by id.
type Pending = std::sync::Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Outcome>>>;

/// The engine's router on a node of several: the local router while this node owns the tenant's
/// lease, else a sender of commands to the owner (returning no decisions: they arrive as events).
pub(super) struct ClusterRouter {
    local: RwLock<Arc<dyn Router>>,
    factory: RouterFactory,
    owner: AtomicBool,
    commands: Arc<dyn CommandQueue>,
    queue: String,
    key: String,
    /// This node's reply queue (per tenant and node).
    replies: String,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRouter")
            .field("queue", &self.queue)
            .field("owner", &self.owner.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl ClusterRouter {
    pub(super) fn new(cluster: &Cluster, tenant: &TenantId) -> Self {
        Self {
            local: RwLock::new((cluster.router)()),
            factory: cluster.router.clone(),
            owner: AtomicBool::new(false),
            commands: cluster.commands.clone(),
            queue: Cluster::node_name(&format!("router-{tenant}")),
            key: format!("tenant:{tenant}"),
            replies: Cluster::node_name(&format!("reply-{tenant}-{}", cluster.node)),
            pending: Pending::default(),
            // Ids start from the clock, so answers a previous run of this node left in its reply
            // queue never match this run's requests.
            next_id: std::sync::atomic::AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64),
            ),
        }
    }

    fn local(&self) -> Arc<dyn Router> {
        self.local.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn is_owner(&self) -> bool {
        self.owner.load(Ordering::SeqCst)
    }

    /// Starts over with an empty router (taking the lease over, or after losing it).
    fn reset(&self) {
        *self.local.write().unwrap_or_else(|e| e.into_inner()) = (self.factory)();
    }

    /// Sends `command` to the owner without waiting: its decisions reach this node as events.
    async fn send(&self, command: RouterCommand) -> cs_routing::Result<Vec<Decision>> {
        self.post(Envelope {
            command,
            reply: None,
        })
        .await?;
        Ok(Vec::new())
    }

    async fn post(&self, envelope: Envelope) -> cs_routing::Result<()> {
        let body = serde_json::to_value(&envelope).map_err(|e| cs_routing::Error::Unavailable {
            reason: format!("routing command not encoded: {e}"),
        })?;
        self.commands
            .send(&self.queue, &Command::new(self.key.clone(), body))
            .await
            .map_err(|e| cs_routing::Error::Unavailable {
                reason: format!("routing command not sent: {e}"),
            })?;
        metrics::counter!("omnidesk_routing_commands_sent_total").increment(1);
        Ok(())
    }

    /// Sends `command` to the owner and waits (at most [`REPLY_WAIT`]) for its answer.
    /// `Ok(None)` when none came in time.
    async fn request(&self, command: RouterCommand) -> cs_routing::Result<Option<Outcome>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let sent = self
            .post(Envelope {
                command,
                reply: Some(ReplyTo {
                    queue: self.replies.clone(),
                    id,
                }),
            })
            .await;
        let answer = match sent {
            Ok(()) => tokio::time::timeout(REPLY_WAIT, rx)
                .await
                .ok()
                .and_then(|r| r.ok()),
            Err(e) => {
                self.forget(id);
                return Err(e);
            }
        };
        if answer.is_none() {
            self.forget(id);
            metrics::counter!("omnidesk_routing_replies_missed_total").increment(1);
        }
        Ok(answer)
    }

    fn forget(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Hands the owner's answer to the request waiting for it (none: it gave up waiting).
    fn answered(&self, reply: Reply) {
        let waiting = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&reply.id);
        if let Some(tx) = waiting {
            let _ = tx.send(reply.outcome);
        }
    }

    /// Sends `command` to the owner and returns its answer: the decisions left to this node, or
    /// the owner's typed error; unavailable when the owner did not answer in time.
    async fn ask(&self, command: RouterCommand) -> cs_routing::Result<Vec<Decision>> {
        match self.request(command).await? {
            Some(Outcome::Done { decisions, .. }) => Ok(decisions),
            Some(Outcome::Failed { error }) => Err(error.into()),
            Some(Outcome::Snapshot { .. }) => Err(cs_routing::Error::Unavailable {
                reason: "the router answered a command with a snapshot".into(),
            }),
            None => Err(cs_routing::Error::Unavailable {
                reason: "the router's owner did not answer in time".into(),
            }),
        }
    }

    /// Runs a command on the local router (the owner).
    async fn run(&self, command: RouterCommand) -> cs_routing::Result<Vec<Decision>> {
        let r = self.local();
        match command {
            RouterCommand::Enqueue { task } => r.enqueue(task).await,
            RouterCommand::Cancel { task } => r.cancel(task).await.map(|_| Vec::new()),
            RouterCommand::UpsertAgent { agent } => r.upsert_agent(agent).await,
            RouterCommand::Release { agent, task } => r.release(agent, task).await,
            RouterCommand::Reprioritize { task, change } => r.reprioritize(task, change).await,
            RouterCommand::Pick { agent, task } => r.pick(agent, task).await,
            RouterCommand::Accept { agent, task } => r.accept(agent, task).await,
            RouterCommand::Reject { agent, task } => r.reject(agent, task).await,
            RouterCommand::Snapshot => Ok(Vec::new()),
        }
    }

    async fn route(&self, command: RouterCommand) -> cs_routing::Result<Vec<Decision>> {
        if self.is_owner() {
            self.run(command).await
        } else {
            self.send(command).await
        }
    }
}

#[async_trait]
impl Router for ClusterRouter {
    async fn enqueue(&self, task: Task) -> cs_routing::Result<Vec<Decision>> {
        if self.is_owner() {
            return self.local().enqueue(task).await;
        }
        if task.skip_bot {
            // Only the owner's decisions follow (as events), and the owner tells the customer
            // their place: nothing to wait for while this node holds the customer's turn.
            return self.send(RouterCommand::Enqueue { task }).await;
        }
        // The owner's answer says whether the bot takes it first; unanswered, it still waits in
        // the queue for the owner.
        match self.request(RouterCommand::Enqueue { task }).await? {
            Some(Outcome::Done { decisions, .. }) => Ok(decisions),
            Some(Outcome::Failed { error }) => Err(error.into()),
            Some(Outcome::Snapshot { .. }) | None => Ok(Vec::new()),
        }
    }

    async fn cancel(&self, task: ConversationId) -> cs_routing::Result<bool> {
        if self.is_owner() {
            self.local().cancel(task).await
        } else {
            self.send(RouterCommand::Cancel { task })
                .await
                .map(|_| true)
        }
    }

    async fn upsert_agent(&self, agent: Agent) -> cs_routing::Result<Vec<Decision>> {
        self.route(RouterCommand::UpsertAgent { agent }).await
    }

    async fn release(
        &self,
        agent: AgentId,
        task: ConversationId,
    ) -> cs_routing::Result<Vec<Decision>> {
        self.route(RouterCommand::Release { agent, task }).await
    }

    async fn tick(&self, now: chrono::DateTime<chrono::Utc>) -> cs_routing::Result<Vec<Decision>> {
        if self.is_owner() {
            self.local().tick(now).await
        } else {
            Ok(Vec::new())
        }
    }

    async fn reprioritize(
        &self,
        task: ConversationId,
        change: Reprioritize,
    ) -> cs_routing::Result<Vec<Decision>> {
        self.route(RouterCommand::Reprioritize { task, change })
            .await
    }

    async fn pick(
        &self,
        agent: AgentId,
        task: ConversationId,
    ) -> cs_routing::Result<Vec<Decision>> {
        if self.is_owner() {
            self.local().pick(agent, task).await
        } else {
            self.ask(RouterCommand::Pick { agent, task }).await
        }
    }

    async fn restore(&self, agent: AgentId, task: Task) -> cs_routing::Result<()> {
        // Only a node rebuilding the router it owns restores.
        self.local().restore(agent, task).await
    }

    async fn snapshot(&self) -> cs_routing::Result<Snapshot> {
        if self.is_owner() {
            return self.local().snapshot().await;
        }
        // Every node shows the owner's queue.
        match self.request(RouterCommand::Snapshot).await? {
            Some(Outcome::Snapshot { snapshot }) => Ok(snapshot),
            Some(Outcome::Failed { error }) => Err(error.into()),
            Some(Outcome::Done { .. }) | None => Err(cs_routing::Error::Unavailable {
                reason: "the router's owner did not answer in time".into(),
            }),
        }
    }

    async fn accept(
        &self,
        agent: AgentId,
        task: ConversationId,
    ) -> cs_routing::Result<Vec<Decision>> {
        if self.is_owner() {
            self.local().accept(agent, task).await
        } else {
            self.ask(RouterCommand::Accept { agent, task }).await
        }
    }

    async fn reject(
        &self,
        agent: AgentId,
        task: ConversationId,
    ) -> cs_routing::Result<Vec<Decision>> {
        if self.is_owner() {
            self.local().reject(agent, task).await
        } else {
            self.ask(RouterCommand::Reject { agent, task }).await
        }
    }

    async fn next_deadline(&self) -> cs_routing::Result<Option<chrono::DateTime<chrono::Utc>>> {
        if self.is_owner() {
            self.local().next_deadline().await
        } else {
            Ok(None)
        }
    }
}

/// A node's part in the cluster, kept by the engine.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) cluster: Cluster,
    pub(super) router: Arc<ClusterRouter>,
    /// Events on their way to the bus, in emit order.
    pub(super) outgoing: mpsc::UnboundedSender<Event>,
    /// Taken by the publisher when the node starts.
    pub(super) outgoing_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    /// Agents whose presence was set on this node (their consoles are here), to keep fresh in
    /// the presence store.
    pub(super) local_presence: std::sync::Mutex<HashMap<AgentId, Presence>>,
    /// Set when the node stops: its tasks end.
    pub(super) stopping: tokio::sync::watch::Sender<bool>,
}

impl Node {
    pub(super) fn new(cluster: Cluster, tenant: &TenantId) -> Self {
        let router = Arc::new(ClusterRouter::new(&cluster, tenant));
        let (outgoing, rx) = mpsc::unbounded_channel();
        Self {
            cluster,
            router,
            outgoing,
            outgoing_rx: std::sync::Mutex::new(Some(rx)),
            local_presence: std::sync::Mutex::default(),
            stopping: tokio::sync::watch::channel(false).0,
        }
    }

    fn lease_name(tenant: &TenantId) -> String {
        Cluster::node_name(&format!("router-{tenant}"))
    }
}

/// How long a routing command may stay unacknowledged before it goes to the consumer again (a
/// new owner waits at most this long for the command a dead owner held).
const COMMAND_ACK_WAIT: Duration = Duration::from_secs(3);

/// How many event sequences a node remembers to see each event once.
const SEEN: usize = 8192;

impl Engine {
    /// The node's cluster part, when the engine shares its desk.
    fn node(&self) -> Option<&Node> {
        self.inner.cluster.as_ref()
    }

    /// Whether routing decisions are made here: always on a single node; with several, on the
    /// node that owns the tenant's router.
    pub fn routes_here(&self) -> bool {
        self.node().is_none_or(|n| n.router.is_owner())
    }

    /// This node's name when the engine shares its desk with other nodes.
    pub fn node_name(&self) -> Option<&str> {
        self.node().map(|n| n.cluster.node.as_str())
    }

    /// Hands an event to the bus (several nodes) or straight to the local subscribers.
    pub(super) fn dispatch_event(&self, event: Event) {
        match self.node() {
            Some(n) => {
                let _ = n.outgoing.send(event);
            }
            None => {
                // No subscribers is fine.
                let _ = self.inner.events.send(event);
            }
        }
    }

    /// Starts the node's work: publishing events, delivering the bus's events here, keeping
    /// presence fresh, and taking (or waiting for) the tenant's router lease. Called by
    /// [`EngineBuilder::build`].
    pub(super) async fn start_node(&self) -> Result<()> {
        let Some(node) = self.node() else {
            return Ok(());
        };
        let subscription = node
            .cluster
            .bus
            .subscribe(&node.cluster.node, &SubscribeOptions::default())
            .await?;
        let rx = node
            .outgoing_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            tokio::spawn(publish_loop(self.weak(), node.cluster.bus.clone(), rx));
        }
        let replies = node
            .cluster
            .commands
            .consume(&node.router.replies, &SubscribeOptions::default())
            .await?;
        tokio::spawn(receive_loop(self.weak(), subscription));
        tokio::spawn(reply_loop(self.weak(), replies));
        tokio::spawn(lease_loop(self.weak()));
        tokio::spawn(presence_loop(self.weak()));
        Ok(())
    }

    fn weak(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// Records where an agent's presence was set (their console is on this node), in the
    /// presence store, before the rest of the desk hears of it.
    pub(super) async fn share_presence(&self, agent: AgentId, presence: Presence) {
        let Some(node) = self.node() else {
            return;
        };
        node.local_presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(agent, presence);
        let store = &node.cluster.presence;
        let result = if presence == Presence::Offline {
            store
                .remove(&self.inner.tenant, agent, &node.cluster.node)
                .await
        } else {
            store
                .put(&PresenceEntry::new(
                    self.inner.tenant.clone(),
                    agent,
                    node.cluster.node.clone(),
                    presence,
                    self.inner.clock.now(),
                ))
                .await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, %agent, "presence not shared");
        }
    }

    /// An event from the bus: this node's view of agents and offers follows it, and the local
    /// subscribers get it.
    fn receive(&self, event: Event) {
        match &event.kind {
            DomainEvent::AgentPresenceChanged { agent, presence } => {
                let now = self.inner.clock.now();
                let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
                if let Some(a) = agents.get_mut(agent) {
                    if a.profile.presence != *presence {
                        a.offline_since = (*presence == Presence::Offline).then_some(now);
                    }
                    a.profile.presence = *presence;
                }
            }
            DomainEvent::Offered {
                conversation,
                agent,
                expires_at,
            } => {
                self.inner
                    .offers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        *conversation,
                        Offer {
                            conversation: *conversation,
                            agent: *agent,
                            expires_at: *expires_at,
                        },
                    );
            }
            DomainEvent::OfferClosed { conversation, .. }
            | DomainEvent::AgentAssigned { conversation, .. } => {
                self.inner
                    .offers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(conversation);
            }
            _ => {}
        }
        let _ = self.inner.events.send(event);
    }

    /// Took the tenant's router: a fresh router rebuilt from the store and the presence store,
    /// interrupted bot turns run again; then routing commands are consumed.
    async fn take_router(&self, node: &Node) -> Result<()> {
        node.router.reset();
        node.router.owner.store(true, Ordering::SeqCst);
        let live = node.cluster.presence.list(Some(&self.inner.tenant)).await?;
        // Every agent known, signed out, before their conversations.
        {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            for a in agents.values_mut() {
                a.profile.presence = Presence::Offline;
                a.offline_since = None;
            }
        }
        self.rebuild_router().await?;
        // Then the agents online somewhere come back with their presence.
        let mut present: HashMap<AgentId, Presence> = HashMap::new();
        for e in live {
            let p = present.entry(e.agent).or_insert(e.presence);
            if e.presence == Presence::Online {
                *p = Presence::Online;
            }
        }
        for (agent, presence) in present {
            let profile = {
                let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
                let Some(a) = agents.get_mut(&agent) else {
                    continue;
                };
                a.profile.presence = presence;
                a.offline_since = None;
                a.profile.clone()
            };
            let decisions = self.router().upsert_agent(profile).await?;
            self.apply(decisions).await;
        }
        self.redo_bot_turns().await?;
        Ok(())
    }

    /// Signs out agents the router counts as present whose node no longer refreshes their
    /// presence (it died); the owner runs it from the lease loop.
    async fn expire_presence(&self, node: &Node) -> Result<()> {
        let live: HashSet<AgentId> = node
            .cluster
            .presence
            .list(Some(&self.inner.tenant))
            .await?
            .into_iter()
            .map(|e| e.agent)
            .collect();
        let gone: Vec<AgentId> = self
            .agents()
            .into_iter()
            .filter(|a| a.presence != Presence::Offline && !live.contains(&a.id))
            .map(|a| a.id)
            .collect();
        for agent in gone {
            tracing::info!(%agent, "agent's node stopped refreshing their presence; signed out");
            self.set_presence(agent, Presence::Offline).await?;
        }
        Ok(())
    }

    /// Runs one routing command another node sent (this node owns the router) and, when the
    /// sender awaits it, answers: the decisions the sender acts on (the bot taking a new
    /// conversation first; the owner carried out the rest), the queue, or the router's error.
    async fn run_command(&self, node: &Node, envelope: Envelope) {
        let Envelope { command, reply } = envelope;
        // The store's view of the agent travels with presence: keep this node's registry in step.
        if let RouterCommand::UpsertAgent { agent } = &command {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            if let Some(a) = agents.get_mut(&agent.id) {
                if a.profile.presence != agent.presence {
                    a.offline_since =
                        (agent.presence == Presence::Offline).then_some(self.inner.clock.now());
                }
                a.profile.presence = agent.presence;
            }
        }
        let outcome = if matches!(command, RouterCommand::Snapshot) {
            match node.router.local().snapshot().await {
                Ok(snapshot) => Outcome::Snapshot { snapshot },
                Err(e) => Outcome::Failed {
                    error: RemoteError::from(&e),
                },
            }
        } else {
            let enqueued = match &command {
                RouterCommand::Enqueue { task } => Some(task.id),
                _ => None,
            };
            // (A rejection's OfferClosed was announced by the node the agent rejected on.)
            match node.router.run(command).await {
                Ok(decisions) => {
                    let theirs: Vec<Decision> = decisions
                        .iter()
                        .filter(|d| matches!(d, Decision::ToBot { .. }))
                        .cloned()
                        .collect();
                    self.apply(decisions).await;
                    // The customer of a conversation another node queued learns their place
                    // from here (that node does not wait for the answer to tell them).
                    if let Some(id) = enqueued
                        && let Ok(conversation) = self.conversation(id).await
                        && conversation.state == ConversationState::Queued
                        && let Err(e) = self.announce_place(&conversation).await
                    {
                        tracing::warn!(error = %e, conversation = %id, "queue place not told");
                    }
                    Outcome::Done { decisions: theirs }
                }
                Err(e) => {
                    tracing::info!(error = %e, "routing command from another node refused");
                    Outcome::Failed {
                        error: RemoteError::from(&e),
                    }
                }
            }
        };
        let Some(to) = reply else {
            return;
        };
        let body = match serde_json::to_value(Reply { id: to.id, outcome }) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "routing reply not encoded");
                return;
            }
        };
        if let Err(e) = node
            .cluster
            .commands
            .send(&to.queue, &Command::new(node.router.key.clone(), body))
            .await
        {
            tracing::warn!(error = %e, "routing reply not sent; the sender times out");
        }
    }
}

/// Publishes the node's events in emit order, retrying while the bus is out of reach.
async fn publish_loop(
    engine: std::sync::Weak<Inner>,
    bus: Arc<dyn EventBus>,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    while let Some(event) = rx.recv().await {
        let mut delay = Duration::from_millis(50);
        loop {
            match bus.publish(&event).await {
                Ok(_) => break,
                Err(e) => {
                    if engine.strong_count() == 0 {
                        return;
                    }
                    tracing::warn!(error = %e, "event not published; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Delivers the bus's events to this node's subscribers, each once.
async fn receive_loop(
    engine: std::sync::Weak<Inner>,
    mut subscription: cs_core::bus::EventSubscription,
) {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut order: VecDeque<u64> = VecDeque::new();
    loop {
        let delivery = match subscription.next().await {
            Ok(d) => d,
            Err(e) => {
                if engine.strong_count() == 0 {
                    return;
                }
                tracing::warn!(error = %e, "event bus read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let engine_ref = Engine { inner };
        // The bus may carry other tenants' desks: only this tenant's events matter here.
        if delivery.payload.tenant == engine_ref.inner.tenant && seen.insert(delivery.sequence) {
            order.push_back(delivery.sequence);
            if order.len() > SEEN
                && let Some(old) = order.pop_front()
            {
                seen.remove(&old);
            }
            engine_ref.receive(delivery.payload.clone());
        }
        if let Err(e) = delivery.ack().await {
            tracing::debug!(error = %e, "event ack failed; it may come again");
        }
    }
}

/// Hands the owner's answers on this node's reply queue to the requests awaiting them.
async fn reply_loop(
    engine: std::sync::Weak<Inner>,
    mut replies: cs_core::bus::CommandSubscription,
) {
    loop {
        let delivery = match replies.next().await {
            Ok(d) => d,
            Err(e) => {
                if engine.strong_count() == 0 {
                    return;
                }
                tracing::warn!(error = %e, "routing reply read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if let Some(node) = inner.cluster.as_ref() {
            match serde_json::from_value::<Reply>(delivery.payload.body.clone()) {
                Ok(reply) => node.router.answered(reply),
                Err(err) => tracing::warn!(error = %err, "unreadable routing reply dropped"),
            }
        }
        drop(inner);
        if let Err(err) = delivery.ack().await {
            tracing::debug!(error = %err, "routing reply ack failed; it may come again");
        }
    }
}

/// Takes and renews the tenant's router lease; while held, consumes routing commands.
async fn lease_loop(engine: std::sync::Weak<Inner>) {
    let mut held: Option<Lease> = None;
    let mut consumer: Option<tokio::task::JoinHandle<()>> = None;
    let mut last_expiry = std::time::Instant::now();
    loop {
        let Some(inner) = engine.upgrade() else {
            if let Some(c) = consumer.take() {
                c.abort();
            }
            return;
        };
        let e = Engine { inner };
        let Some(node) = e.node() else { return };
        let leases = node.cluster.leases.clone();
        let period = (leases.ttl() / 3).max(Duration::from_millis(100));
        let name = Node::lease_name(&e.inner.tenant);
        match held.take() {
            Some(lease) => match leases.renew(&lease).await {
                Ok(renewed) => held = Some(renewed),
                Err(cs_core::Error::Conflict { .. }) => {
                    tracing::error!(node = %node.cluster.node, "router lease lost; routing stops here");
                    node.router.owner.store(false, Ordering::SeqCst);
                    node.router.reset();
                    if let Some(c) = consumer.take() {
                        c.abort();
                    }
                }
                Err(err) if lease.is_valid() => {
                    tracing::warn!(error = %err, "router lease not renewed; trying again");
                    held = Some(lease);
                }
                Err(err) => {
                    // Past the lease's validity another node may own the router: stop here.
                    tracing::error!(error = %err, node = %node.cluster.node, "router lease expired unrenewed; routing stops here");
                    node.router.owner.store(false, Ordering::SeqCst);
                    node.router.reset();
                    if let Some(c) = consumer.take() {
                        c.abort();
                    }
                }
            },
            None => match leases.acquire(&name, &node.cluster.node).await {
                Ok(Acquired::Held(lease)) => {
                    let started = std::time::Instant::now();
                    tracing::info!(node = %node.cluster.node, epoch = lease.epoch, "took the router lease; rebuilding the router");
                    held = Some(lease);
                    if let Err(err) = e.take_router(node).await {
                        tracing::error!(error = %err, "router rebuild failed");
                    }
                    tracing::info!(
                        node = %node.cluster.node,
                        ms = started.elapsed().as_millis() as u64,
                        "router rebuilt; consuming routing commands"
                    );
                    consumer = Some(tokio::spawn(command_loop(engine.clone(), name.clone())));
                }
                Ok(Acquired::HeldBy { .. }) => {}
                Err(err) => tracing::warn!(error = %err, "router lease not read"),
            },
        }
        if held.is_some() && last_expiry.elapsed() >= Duration::from_secs(2) {
            last_expiry = std::time::Instant::now();
            if let Err(err) = e.expire_presence(node).await {
                tracing::warn!(error = %err, "presence not checked");
            }
        }
        let mut stopping = node.stopping.subscribe();
        drop(e);
        let stop = tokio::select! {
            _ = tokio::time::sleep(period) => false,
            r = stopping.wait_for(|s| *s) => r.is_ok(),
        };
        if stop {
            if let (Some(lease), Some(inner)) = (held.take(), engine.upgrade()) {
                let e = Engine { inner };
                if let Some(node) = e.node() {
                    node.router.owner.store(false, Ordering::SeqCst);
                    let _ = node.cluster.leases.release(&lease).await;
                }
            }
            if let Some(c) = consumer.take() {
                c.abort();
            }
            return;
        }
    }
}

/// Consumes the tenant's routing commands (this node owns the router).
async fn command_loop(engine: std::sync::Weak<Inner>, queue: String) {
    let commands = {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let Some(node) = inner.cluster.as_ref() else {
            return;
        };
        node.cluster.commands.clone()
    };
    let mut subscription = loop {
        match commands
            .consume(
                &queue,
                // One at a time, in order; a command the dead owner held comes again soon.
                &SubscribeOptions::default()
                    .with_max_in_flight(1)
                    .with_ack_wait(COMMAND_ACK_WAIT),
            )
            .await
        {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "routing queue not opened; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    loop {
        let delivery = match subscription.next().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "routing queue read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let e = Engine { inner };
        let Some(node) = e.node() else { return };
        if !node.router.is_owner() {
            // Lost the lease meanwhile: the next owner gets it.
            let _ = delivery.nak(Duration::ZERO).await;
            return;
        }
        match serde_json::from_value::<Envelope>(delivery.payload.body.clone()) {
            Ok(envelope) => e.run_command(node, envelope).await,
            Err(err) => tracing::warn!(error = %err, "unreadable routing command dropped"),
        }
        if let Err(err) = delivery.ack().await {
            tracing::debug!(error = %err, "routing command ack failed; it may come again");
        }
    }
}

/// Keeps the presence of the agents signed in on this node fresh in the presence store.
async fn presence_loop(engine: std::sync::Weak<Inner>) {
    loop {
        let period = {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            let e = Engine { inner };
            let Some(node) = e.node() else { return };
            let store = node.cluster.presence.clone();
            let period = (store.ttl() / 3).max(Duration::from_millis(100));
            let here: Vec<(AgentId, Presence)> = node
                .local_presence
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, p)| **p != Presence::Offline)
                .map(|(a, p)| (*a, *p))
                .collect();
            for (agent, presence) in here {
                let entry = PresenceEntry::new(
                    e.inner.tenant.clone(),
                    agent,
                    node.cluster.node.clone(),
                    presence,
                    e.inner.clock.now(),
                );
                if let Err(err) = store.put(&entry).await {
                    tracing::warn!(error = %err, %agent, "presence not refreshed");
                }
            }
            period
        };
        tokio::time::sleep(period).await;
    }
}

impl Engine {
    /// Whether the engine shares its desk with other nodes.
    pub(super) fn is_clustered(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// Leaves the desk's other nodes cleanly (a graceful stop): the router lease is released so
    /// another node takes the router at once instead of after the lease's TTL, and the presence
    /// of the agents signed in here is withdrawn. Nothing for a single node. Waits at most 2 s.
    pub async fn leave(&self) {
        let Some(node) = self.node() else {
            return;
        };
        let _ = node.stopping.send(true);
        let here: Vec<AgentId> = node
            .local_presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for agent in here {
            let _ = node
                .cluster
                .presence
                .remove(&self.inner.tenant, agent, &node.cluster.node)
                .await;
        }
        for _ in 0..40 {
            if !node.router.is_owner() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
