//! Building an engine from its parts.

use super::*;

/// Where the engine's tickets come from: a bare store, or a desk with SLA and escalation.
#[derive(Debug)]
enum TicketSource {
    Store(Arc<dyn TicketStore>),
    Desk(Arc<TicketDesk>),
}

/// Business hours of the human desk: outside them, with nobody online, a hand-over also becomes
/// a ticket.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    /// When agents work.
    pub calendar: cs_tickets::BusinessCalendar,
    /// How the hours read to a customer (`09:00-22:00`).
    pub label: String,
}

/// How the desk behaves around the router: reception, notices, business hours, teams and the
/// grace an agent who signs out gets.
#[derive(Debug, Clone)]
pub struct DeskSettings {
    /// Who receives a new conversation (default [`Reception::Bot`]).
    pub reception: Reception,
    /// What the engine says to customers (default: the built-in texts in both languages).
    pub texts: Texts,
    /// Business hours (default: none, always open).
    pub hours: Option<BusinessHours>,
    /// The team that serves each skill, for [`Task::team`] (default: none).
    pub skill_teams: HashMap<String, String>,
    /// How long an agent may stay signed out (a restart, a lost connection) before their
    /// conversations go back to the queue (default 5 minutes).
    pub reclaim_after: chrono::Duration,
    /// Where each agent takes calls: `client:<identity>` (a browser or app client), a phone
    /// number, or `sip:<uri>` (default: `client:<the agent's name in lower case>`).
    pub voice_targets: HashMap<AgentId, String>,
}

impl Default for DeskSettings {
    fn default() -> Self {
        Self {
            reception: Reception::Bot,
            texts: Texts::default(),
            hours: None,
            skill_teams: HashMap::new(),
            reclaim_after: chrono::Duration::minutes(5),
            voice_targets: HashMap::new(),
        }
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    tenant: TenantId,
    store: Option<Arc<dyn ConversationStore>>,
    router: Option<Arc<dyn Router>>,
    bot: Option<Arc<dyn Bot>>,
    tickets: Option<TicketSource>,
    channels: Vec<Arc<dyn Channel>>,
    agents: Vec<Agent>,
    clock: Arc<dyn Clock>,
    event_capacity: usize,
    outbox: OutboxPolicy,
    settings: DeskSettings,
    hot_cache: bool,
    compliance: crate::compliance::TenantRules,
    node: Option<String>,
    desk_locks: Option<Arc<dyn DeskLocks>>,
    cluster: Option<Cluster>,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineBuilder {
    /// A builder for the default tenant, with the system clock.
    pub fn new() -> Self {
        Self {
            tenant: TenantId::default(),
            store: None,
            router: None,
            bot: None,
            tickets: None,
            channels: Vec::new(),
            agents: Vec::new(),
            clock: Arc::new(SystemClock),
            event_capacity: 4096,
            outbox: OutboxPolicy::default(),
            settings: DeskSettings::default(),
            hot_cache: true,
            compliance: crate::compliance::TenantRules::default(),
            node: None,
            desk_locks: None,
            cluster: None,
        }
    }

    /// The rules every agent reply and bot answer is checked against (default: none). A
    /// blocking hit refuses an agent's reply ([`Error::Compliance`]) and keeps a bot's answer
    /// back (the conversation goes to a human); a warning refuses an agent's reply until they
    /// confirm ([`Engine::agent_reply_confirmed`]). Every hit is audited as a
    /// [`cs_core::DomainEvent::ComplianceHit`].
    pub fn with_compliance(mut self, rules: crate::compliance::TenantRules) -> Self {
        self.compliance = rules;
        self
    }

    /// This process's node id: the outbox claims it makes carry it, and at start-up the engine
    /// releases the claims a previous process of the same id held (it is dead: the messages it
    /// was sending are retried at once, not after their 30-second lease). Keep it stable across
    /// restarts of the same node and distinct between processes that run at the same time on
    /// one store (two live processes with one id could each send a message once). Default none:
    /// claims are anonymous and only their lease releases them.
    pub fn with_node_id(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Locks across the processes that share the store (default none: one process). With them
    /// one customer's messages are handled in order whichever process receives them, and an
    /// assignment counts the agent's conversations and takes one more under the agent's lock,
    /// so two routers can never push an agent past capacity ([`PostgresLocks`] with PostgreSQL).
    pub fn with_desk_locks(mut self, locks: Arc<dyn DeskLocks>) -> Self {
        self.desk_locks = Some(locks);
        self
    }

    /// Shares the desk with other nodes (default: one node): events go over the cluster's bus to
    /// every node's subscribers, the tenant's router runs on the node holding its lease (the
    /// others send it commands), presence is kept in the presence store. The cluster's router
    /// factory replaces [`EngineBuilder::with_router`]. Give the engine [`DeskLocks`] too and
    /// turn the hot cache off.
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Whether the engine keeps identities, profiles, active conversations and their latest
    /// messages in memory (default on), so a returning customer's message needs no store read.
    /// Exact while this engine alone changes the desk's customers and conversations (one
    /// process; an embedder that changes them through the engine); turn it off when several
    /// processes share the store.
    pub fn with_hot_cache(mut self, on: bool) -> Self {
        self.hot_cache = on;
        self
    }

    /// How the desk behaves around the router (default [`DeskSettings::default`]).
    pub fn with_settings(mut self, settings: DeskSettings) -> Self {
        self.settings = settings;
        self
    }

    /// How the outbox retries deliveries (default [`OutboxPolicy::default`]).
    pub fn with_outbox_policy(mut self, policy: OutboxPolicy) -> Self {
        self.outbox = policy;
        self
    }

    /// The tenant this engine serves.
    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = tenant;
        self
    }

    /// Where conversations live (required).
    pub fn with_store(mut self, store: Arc<dyn ConversationStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Who routes handed-over conversations to agents (default: [`cs_routing::SkillRouter`]
    /// with the default [`cs_routing::RoutingPolicy`]).
    pub fn with_router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// Who answers first (required).
    pub fn with_bot(mut self, bot: Arc<dyn Bot>) -> Self {
        self.bot = Some(bot);
        self
    }

    /// Where tickets live, with no SLA policy or escalation rules (default: an in-memory
    /// store). See [`EngineBuilder::with_ticket_desk`] for SLA and escalation.
    pub fn with_tickets(mut self, tickets: Arc<dyn TicketStore>) -> Self {
        self.tickets = Some(TicketSource::Store(tickets));
        self
    }

    /// A ticket desk: its store, SLA policy, escalation chain and rules. Build it with the same
    /// clock as the engine.
    pub fn with_ticket_desk(mut self, desk: Arc<TicketDesk>) -> Self {
        self.tickets = Some(TicketSource::Desk(desk));
        self
    }

    /// Adds a channel; its id must be unique.
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.push(channel);
        self
    }

    /// Registers an agent (signed out until [`Engine::sign_in`]).
    pub fn with_agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// The clock (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many events a slow subscriber may fall behind before it misses some (default 4096).
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(16);
        self
    }

    /// Checks the parts and builds the engine, then recovers from the store: the outbox claims
    /// of this node's previous process are released, the router is rebuilt (conversations
    /// agents hold stay theirs, waiting ones wait again at their place), and bot turns a crash
    /// interrupted are run again.
    ///
    /// # Errors
    /// [`Error::Config`] without a store or bot, or with two channels of one id; store or router
    /// errors while recovering queued conversations.
    pub async fn build(self) -> Result<Engine> {
        self.settings.texts.validate()?;
        let store = self.store.ok_or_else(|| Error::Config {
            reason: "the engine needs a conversation store".into(),
        })?;
        let bot = self.bot.ok_or_else(|| Error::Config {
            reason: "the engine needs a bot".into(),
        })?;
        let mut channels = HashMap::new();
        for c in self.channels {
            let id = c.info().id.clone();
            if channels.insert(id.clone(), c).is_some() {
                return Err(Error::Config {
                    reason: format!("two channels are named {id}"),
                });
            }
        }
        let mut agents = HashMap::new();
        for mut a in self.agents {
            a.presence = Presence::Offline;
            a.tenant = self.tenant.clone();
            agents.insert(
                a.id,
                AgentEntry {
                    profile: a,
                    offline_since: None,
                },
            );
        }
        let (events, _) = broadcast::channel(self.event_capacity);
        let node = self.cluster.map(|c| cluster::Node::new(c, &self.tenant));
        let router = match &node {
            Some(n) => n.router.clone() as Arc<dyn Router>,
            None => self.router.unwrap_or_else(|| {
                Arc::new(cs_routing::Shared::new(cs_routing::SkillRouter::new(
                    cs_routing::RoutingPolicy::default(),
                )))
            }),
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                tenant: self.tenant,
                store,
                router,
                bot,
                desk: match self.tickets {
                    Some(TicketSource::Desk(d)) => d,
                    Some(TicketSource::Store(s)) => {
                        Arc::new(TicketDeskBuilder::new(s, self.clock.clone()).build()?)
                    }
                    None => Arc::new(
                        TicketDeskBuilder::new(
                            Arc::new(cs_tickets::MemoryTicketStore::new()),
                            self.clock.clone(),
                        )
                        .build()?,
                    ),
                },
                channels,
                agents: RwLock::new(agents),
                clock: self.clock,
                outbox: self.outbox,
                events,
                locks: (0..LOCK_STRIPES)
                    .map(|_| Arc::new(Mutex::new(())))
                    .collect(),
                append_locks: (0..LOCK_STRIPES)
                    .map(|_| Arc::new(Mutex::new(())))
                    .collect(),
                turns: (0..LOCK_STRIPES)
                    .map(|_| Arc::new(tokio::sync::Semaphore::new(TURNS_PER_STRIPE)))
                    .collect(),
                settings: self.settings,
                offers: std::sync::Mutex::default(),
                pace: std::sync::Mutex::default(),
                snapshot: std::sync::Mutex::default(),
                cache: cache::HotCache::new(self.hot_cache),
                compliance: self.compliance,
                node: self.node,
                desk_locks: self.desk_locks,
                cluster: node,
            }),
        };
        engine.recover().await?;
        engine.start_node().await?;
        Ok(engine)
    }
}
