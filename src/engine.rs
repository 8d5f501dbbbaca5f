//! The engine: where a customer message goes, step by step.
//!
//! ```text
//! channel --InboundMessage--> Engine::handle_inbound
//!   1. identity  -> customer          (ConversationStore::resolve_customer)
//!   2. customer  -> active conversation (open_conversation; replies follow the last channel used)
//!   3. store the message, once         (append_message de-duplicates provider retries)
//!   4. conversation state decides:
//!        bot      -> Bot::reply -> answers go out on the channel; a handoff queues it
//!        queued   -> waits (the agent sees it when assigned)
//!        assigned -> the agent sees it on the event stream
//!   5. queued conversations go to the Router; its decisions assign agents
//! agent --Engine::agent_reply--> stored -> Channel::send -> customer
//! ```
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
    ClaimOutbound, Claimed, ConversationQuery, ConversationStore, DeadLetter, Merge,
    MergeCustomers, MessageQuery, MessageScope, OpenConversation, Outcome, ResolveCustomer,
};
use cs_core::{
    Agent, AgentId, Author, ChannelId, Clock, Content, Conversation, ConversationId,
    ConversationState, Customer, DeliveryStatus, Direction, DomainEvent, Event, Identity,
    LinkOrigin, MergeId, Message, MessageId, Presence, Priority, Route, SystemClock, TenantId,
};
use cs_routing::{Decision, Router, SkillRequirement, Snapshot, Task};
use cs_tickets::{
    Actor, NewTicket, Ticket, TicketDesk, TicketDeskBuilder, TicketQuery, TicketStore,
};
use tokio::sync::{Mutex, OwnedMutexGuard, broadcast};

use crate::error::{Error, Result};

/// How many recent messages the bot sees.
const BOT_HISTORY: usize = 20;
/// How many times a conversation update is retried after losing a race.
const UPDATE_RETRIES: usize = 5;
/// Locks striped by customer: a customer's messages are handled one at a time, in order.
const LOCK_STRIPES: usize = 256;

/// How the outbox retries deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxPolicy {
    /// Attempts before a message becomes a dead letter (default 8).
    pub max_attempts: u32,
    /// Wait after the first failure; doubles with every further failure (default 1 s).
    pub base_delay: chrono::Duration,
    /// The longest wait between attempts (default 5 minutes).
    pub max_delay: chrono::Duration,
    /// How long a claimed message is reserved for one attempt (default 30 s).
    pub lease: chrono::Duration,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: chrono::Duration::seconds(1),
            max_delay: chrono::Duration::minutes(5),
            lease: chrono::Duration::seconds(30),
        }
    }
}

impl OutboxPolicy {
    /// The wait after `failures` earlier failed attempts (0 for the first failure).
    pub fn backoff(&self, failures: u32) -> chrono::Duration {
        let factor = 1_i32 << failures.min(20);
        (self.base_delay * factor).min(self.max_delay)
    }
}

/// Where the engine's tickets come from: a bare store, or a desk with SLA and escalation.
#[derive(Debug)]
enum TicketSource {
    Store(Arc<dyn TicketStore>),
    Desk(Arc<TicketDesk>),
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
        }
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

    /// Checks the parts and builds the engine. Conversations that were waiting for an agent or
    /// were with one when the last process stopped are queued again (preferring the same agent),
    /// since a new router knows nothing of them.
    ///
    /// # Errors
    /// [`Error::Config`] without a store or bot, or with two channels of one id; store or router
    /// errors while recovering queued conversations.
    pub async fn build(self) -> Result<Engine> {
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
            agents.insert(a.id, a);
        }
        let (events, _) = broadcast::channel(self.event_capacity);
        let engine = Engine {
            inner: Arc::new(Inner {
                tenant: self.tenant,
                store,
                router: self.router.unwrap_or_else(|| {
                    Arc::new(cs_routing::Shared::new(cs_routing::SkillRouter::new(
                        cs_routing::RoutingPolicy::default(),
                    )))
                }),
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
            }),
        };
        engine.requeue_after_restart().await?;
        Ok(engine)
    }
}

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
    agents: RwLock<HashMap<AgentId, Agent>>,
    clock: Arc<dyn Clock>,
    outbox: OutboxPolicy,
    events: broadcast::Sender<Event>,
    locks: Vec<Arc<Mutex<()>>>,
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

    fn emit(&self, kind: DomainEvent) {
        let event = Event::new(self.inner.tenant.clone(), self.inner.clock.now(), kind);
        tracing::debug!(event = ?event.kind, "event");
        // No subscribers is fine.
        let _ = self.inner.events.send(event);
    }

    /// Takes the lock that serialises work on one customer's messages (FIFO).
    async fn lock_customer(&self, customer: cs_core::CustomerId) -> OwnedMutexGuard<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        customer.hash(&mut h);
        self.inner.locks[(h.finish() as usize) % LOCK_STRIPES]
            .clone()
            .lock_owned()
            .await
    }

    // ---------------------------------------------------------------------------------------
    // Customers write
    // ---------------------------------------------------------------------------------------

    /// Takes one customer message from a channel: returns as soon as it is stored (steps 1-3),
    /// so the channel can acknowledge at once, and carries on with the bot and routing in the
    /// background. A customer's messages are still handled strictly in order. A provider retry
    /// of a message already stored changes nothing and reports `duplicate`.
    ///
    /// # Errors
    /// [`Error::UnknownChannel`] for a channel that is not configured; store errors. Bot, router
    /// and delivery failures do not fail the call: the message is stored, the failure is logged
    /// and emitted, and the conversation falls back to a human.
    pub async fn handle_inbound(&self, msg: InboundMessage) -> Result<Delivered> {
        self.ingest(msg, false).await
    }

    /// As [`Engine::handle_inbound`], but returns only after the bot has answered and routing
    /// has acted (for tests, batch imports and request/response channels).
    ///
    /// # Errors
    /// As [`Engine::handle_inbound`].
    pub async fn handle_inbound_and_wait(&self, msg: InboundMessage) -> Result<Delivered> {
        self.ingest(msg, true).await
    }

    async fn ingest(&self, msg: InboundMessage, wait: bool) -> Result<Delivered> {
        let channel = self
            .inner
            .channels
            .get(&msg.channel)
            .ok_or_else(|| Error::UnknownChannel(msg.channel.to_string()))?;
        let now = self.inner.clock.now();
        let tenant = self.inner.tenant.clone();

        // 1. Who is writing: a known identity, one that shares a proven key with a known
        // identity (the same phone number on SMS, WhatsApp and calls), or a new customer.
        let resolved = match self.phone_customer(&msg.from).await? {
            Some(resolved) => resolved,
            None => {
                self.inner
                    .store
                    .resolve_customer(&ResolveCustomer {
                        tenant: tenant.clone(),
                        identity: msg.from.clone(),
                        display_name: msg.display_name.clone(),
                        language: msg.language.clone(),
                        at: now,
                    })
                    .await?
            }
        };
        let customer = resolved.customer;
        if resolved.created {
            self.emit(DomainEvent::CustomerCreated {
                customer: customer.id,
                identity: msg.from.clone(),
            });
        }

        let guard = self.lock_customer(customer.id).await;

        // 2. Their active conversation; replies go back where they wrote last.
        let route = Route {
            channel: msg.channel.clone(),
            identity: msg.from.clone(),
        };
        let opened = self
            .inner
            .store
            .open_conversation(&OpenConversation {
                tenant: tenant.clone(),
                customer: customer.id,
                route: route.clone(),
                priority: Priority::Normal,
                at: now,
            })
            .await?;
        let mut conversation = opened.conversation;
        if opened.created {
            self.emit(DomainEvent::ConversationOpened {
                conversation: conversation.id,
                customer: customer.id,
                route: route.clone(),
            });
        }

        // 3. Store it once.
        let message = Message {
            id: MessageId::new(),
            tenant,
            conversation: conversation.id,
            customer: customer.id,
            channel: msg.channel.clone(),
            channel_kind: channel.info().kind,
            direction: Direction::Inbound,
            author: Author::Customer,
            content: msg.content,
            provider_message_id: msg.provider_message_id.clone(),
            status: DeliveryStatus::Delivered,
            created_at: now,
        };
        let appended = self.inner.store.append_message(&message).await?;
        if appended.is_duplicate() {
            self.emit(DomainEvent::DuplicateIgnored {
                channel: msg.channel,
                provider_message_id: msg.provider_message_id.unwrap_or_default(),
            });
            return Ok(Delivered {
                message: appended.message().clone(),
                duplicate: true,
            });
        }
        if conversation.route != route {
            conversation = self
                .update_conversation(conversation.id, |c| c.route = route.clone())
                .await?;
        }
        self.emit(DomainEvent::MessageReceived {
            message: message.clone(),
        });

        // A call the IVR already routed goes straight to the queue it chose.
        if conversation.state == ConversationState::Bot
            && let Some(skills) = routed_call_skills(&message.content)
        {
            let mut handoff = Handoff::new(
                cs_bot::HandoffReason::CustomerRequest,
                "Phone call routed by the voice menu.",
            );
            handoff.skills = skills;
            self.hand_over(&conversation, &customer, handoff).await?;
            return Ok(Delivered {
                message,
                duplicate: false,
            });
        }

        // 4. Who answers: the bot, while the conversation is with it. The customer's lock goes
        // along, so their next message waits until this one is answered.
        if conversation.state == ConversationState::Bot {
            let engine = self.clone();
            let stored = message.clone();
            let answer = async move {
                let _guard = guard;
                engine.run_bot(&conversation, &customer, &stored).await;
            };
            if wait {
                answer.await;
            } else {
                tokio::spawn(answer);
            }
        }
        Ok(Delivered {
            message,
            duplicate: false,
        })
    }

    /// The customer of a phone identity: its own customer when it is known; on a first contact
    /// from a number the customer already used on another phone channel (SMS, WhatsApp and
    /// calls all prove the number), that customer, with the new identity linked and the shared
    /// key recorded as the origin. `None` for other identities and new numbers.
    async fn phone_customer(
        &self,
        identity: &Identity,
    ) -> Result<Option<cs_core::store::Resolved>> {
        use cs_core::ChannelKind as K;
        const PHONE_KINDS: [K; 3] = [K::Sms, K::WhatsApp, K::Voice];
        if !PHONE_KINDS.contains(&identity.kind) {
            return Ok(None);
        }
        let tenant = &self.inner.tenant;
        if let Some(customer) = self.inner.store.find_customer(tenant, identity).await? {
            // Known already: what resolving it would return, without a second look-up.
            return Ok(Some(cs_core::store::Resolved {
                customer,
                created: false,
            }));
        }
        let digits: String = identity
            .external_id
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if digits.len() < 6 {
            return Ok(None);
        }
        for kind in PHONE_KINDS.into_iter().filter(|k| *k != identity.kind) {
            for external in [format!("+{digits}"), digits.clone()] {
                let sibling = Identity::new(kind, external);
                let Some(customer) = self.inner.store.find_customer(tenant, &sibling).await? else {
                    continue;
                };
                let origin = LinkOrigin::SharedKey {
                    key: format!("phone:+{digits}"),
                };
                match self
                    .link_identity(customer.id, identity.clone(), origin)
                    .await
                {
                    // Someone linked it meanwhile: resolve normally.
                    Err(Error::Store(cs_core::Error::Conflict { .. })) => return Ok(None),
                    other => other?,
                }
                return Ok(Some(cs_core::store::Resolved {
                    customer,
                    created: false,
                }));
            }
        }
        Ok(None)
    }

    async fn run_bot(&self, conversation: &Conversation, customer: &Customer, message: &Message) {
        let history = match self.recent_messages(conversation.id, BOT_HISTORY).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "history unavailable for the bot");
                vec![message.clone()]
            }
        };
        let input = BotInput {
            tenant: self.inner.tenant.clone(),
            conversation: conversation.id,
            customer: customer.id,
            text: message.content.plain_text(),
            history,
        };
        let reply = match self.inner.bot.reply(&input).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, conversation = %conversation.id, "bot failed; handing over");
                cs_bot::BotReply {
                    handoff: Some(Handoff::new(
                        cs_bot::HandoffReason::NoAnswer,
                        format!("The bot failed ({e}). Customer wrote: {}", input.text),
                    )),
                    ..Default::default()
                }
            }
        };
        for text in &reply.messages {
            if let Err(e) = self
                .send_to_customer(conversation, Author::Bot, Content::text(text.clone()), None)
                .await
            {
                tracing::warn!(error = %e, "bot answer not stored");
            }
        }
        if let Some(intent) = &reply.intent {
            self.emit(DomainEvent::BotAnswered {
                conversation: conversation.id,
                intent: Some(intent.name.clone()),
                confidence: intent.confidence,
            });
        }
        if let Some(handoff) = reply.handoff
            && let Err(e) = self.hand_over(conversation, customer, handoff).await
        {
            tracing::error!(error = %e, conversation = %conversation.id, "handoff failed");
        }
    }

    /// Queues a conversation for a human, leaving the bot's summary for the agent as an internal
    /// note so the customer never repeats themselves.
    async fn hand_over(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        handoff: Handoff,
    ) -> Result<()> {
        let note = handoff.note();
        self.emit(DomainEvent::HandoffRequested {
            conversation: conversation.id,
            reason: handoff.reason.to_string(),
            summary: note.clone(),
        });
        self.store_internal(conversation, note).await?;
        let priority = handoff.priority.max(match customer.tier {
            cs_core::CustomerTier::Vip => Priority::High,
            _ => Priority::Low,
        });
        let queued = self
            .update_conversation(conversation.id, |c| {
                c.state = ConversationState::Queued;
                c.priority = priority;
                c.skills = handoff.skills.clone();
            })
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation: conversation.id,
            from: conversation.state,
            to: ConversationState::Queued,
        });
        self.enqueue(&queued, customer, None).await
    }

    async fn enqueue(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        preferred_agent: Option<AgentId>,
    ) -> Result<()> {
        let mut task = Task::new(
            conversation.id,
            conversation.route.identity.kind,
            self.inner.clock.now(),
        );
        task.requirements = conversation
            .skills
            .iter()
            .map(|s| SkillRequirement::new(s.clone(), 1))
            .collect();
        task.language = customer
            .language
            .as_ref()
            .map(|l| l.split('-').next().unwrap_or(l).to_lowercase());
        task.priority = conversation.priority;
        task.tier = customer.tier;
        task.preferred_agent = preferred_agent;
        self.emit(DomainEvent::Queued {
            conversation: conversation.id,
            priority: conversation.priority,
        });
        let decisions = self.inner.router.enqueue(task).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// Carries out router decisions.
    async fn apply(&self, decisions: Vec<Decision>) {
        for d in decisions {
            let result = match d {
                Decision::Assigned { task, agent } => self.assign(task, agent).await,
                other => {
                    tracing::debug!(decision = ?other, "decision not acted on by this engine");
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "routing decision not applied");
            }
        }
    }

    async fn assign(&self, conversation: ConversationId, agent: AgentId) -> Result<()> {
        let before = self
            .update_conversation(conversation, |c| {
                c.state = ConversationState::Assigned;
                c.assignee = Some(agent);
            })
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation,
            from: ConversationState::Queued,
            to: ConversationState::Assigned,
        });
        self.emit(DomainEvent::AgentAssigned {
            conversation,
            agent,
        });
        let name = self.agent(agent).map(|a| a.name).unwrap_or_default();
        self.send_to_customer(
            &before,
            Author::System,
            Content::text(format!("{name} 已接入，为您服务 · {name} has joined")),
            None,
        )
        .await?;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Messages out
    // ---------------------------------------------------------------------------------------

    /// Stores an outbound message in the outbox, adapted to what the channel carries, and tries
    /// to deliver the conversation's due messages at once. A message that cannot go out now stays
    /// in the outbox (see [`Engine::flush_outbox`]); the stored message is returned either way.
    async fn send_to_customer(
        &self,
        conversation: &Conversation,
        author: Author,
        content: Content,
        client_id: Option<String>,
    ) -> Result<Message> {
        let route = &conversation.route;
        let channel = self
            .inner
            .channels
            .get(&route.channel)
            .ok_or_else(|| Error::UnknownChannel(route.channel.to_string()))?;
        let message = Message {
            id: MessageId::new(),
            tenant: self.inner.tenant.clone(),
            conversation: conversation.id,
            customer: conversation.customer,
            channel: route.channel.clone(),
            channel_kind: channel.info().kind,
            direction: Direction::Outbound,
            author,
            content: channel.info().capabilities.adapt(content),
            provider_message_id: client_id,
            status: DeliveryStatus::Pending,
            created_at: self.inner.clock.now(),
        };
        let appended = self
            .inner
            .store
            .append_outbound(&message, &route.identity)
            .await?;
        if appended.is_duplicate() {
            return Ok(appended.message().clone());
        }
        self.emit(DomainEvent::MessageSent {
            message: message.clone(),
        });
        self.flush(Some(conversation.id)).await?;
        Ok(message)
    }

    /// Delivers every outbox message that is due, in order per conversation: retries after
    /// temporary failures with exponential backoff, dead letters after permanent failures or
    /// too many attempts. The bundled server calls it every second; call it from your own timer
    /// when you embed the engine. Returns how many attempts were made.
    ///
    /// # Errors
    /// Store errors.
    pub async fn flush_outbox(&self) -> Result<usize> {
        self.flush(None).await
    }

    async fn flush(&self, conversation: Option<ConversationId>) -> Result<usize> {
        let policy = &self.inner.outbox;
        let mut attempts = 0;
        loop {
            let now = self.inner.clock.now();
            let claimed = self
                .inner
                .store
                .claim_outbound(&ClaimOutbound {
                    tenant: self.inner.tenant.clone(),
                    now,
                    lease_until: now + policy.lease,
                    conversation,
                    limit: 64,
                })
                .await?;
            if claimed.is_empty() {
                return Ok(attempts);
            }
            for c in claimed {
                attempts += 1;
                self.deliver(c).await?;
            }
        }
    }

    /// One delivery attempt of a claimed outbox message.
    async fn deliver(&self, claimed: Claimed) -> Result<()> {
        let Claimed {
            message,
            to,
            attempts,
        } = claimed;
        let policy = &self.inner.outbox;
        let result = match self.inner.channels.get(&message.channel) {
            Some(channel) => {
                channel
                    .send(&OutboundMessage {
                        message: message.clone(),
                        to,
                    })
                    .await
            }
            None => Err(cs_channels::Error::Unsupported {
                reason: format!("channel {} is no longer configured", message.channel),
            }),
        };
        let outcome = match result {
            Ok(receipt) => Outcome::Sent {
                status: receipt.status,
                provider_id: receipt.provider_message_id,
            },
            Err(e) if e.is_temporary() && attempts + 1 < policy.max_attempts => {
                tracing::info!(error = %e, message = %message.id, attempt = attempts + 1, "delivery will be retried");
                Outcome::Retry {
                    at: self.inner.clock.now() + policy.backoff(attempts),
                    error: e.to_string(),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, message = %message.id, "delivery failed for good");
                Outcome::Dead {
                    error: e.to_string(),
                }
            }
        };
        self.inner
            .store
            .finish_outbound(&message.tenant, message.id, &outcome)
            .await?;
        if let Outcome::Dead { error } = outcome {
            self.emit(DomainEvent::DeliveryFailed {
                conversation: message.conversation,
                message: message.id,
                reason: error,
            });
        }
        Ok(())
    }

    /// Applies a provider's delivery or read receipt to the message it names.
    ///
    /// # Errors
    /// Store errors.
    pub async fn handle_receipt(
        &self,
        channel: &ChannelId,
        update: &StatusUpdate,
    ) -> Result<Option<MessageId>> {
        Ok(self
            .inner
            .store
            .apply_receipt(
                &self.inner.tenant,
                channel,
                &update.provider_message_id,
                update.status,
            )
            .await?)
    }

    /// Messages that could not be delivered, oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(self
            .inner
            .store
            .dead_letters(&self.inner.tenant, limit)
            .await?)
    }

    /// Stores a note only agents see.
    async fn store_internal(&self, conversation: &Conversation, text: String) -> Result<Message> {
        let message = Message {
            id: MessageId::new(),
            tenant: self.inner.tenant.clone(),
            conversation: conversation.id,
            customer: conversation.customer,
            channel: conversation.route.channel.clone(),
            channel_kind: conversation.route.identity.kind,
            direction: Direction::Internal,
            author: Author::System,
            content: Content::text(text),
            provider_message_id: None,
            status: DeliveryStatus::Delivered,
            created_at: self.inner.clock.now(),
        };
        self.inner.store.append_message(&message).await?;
        self.emit(DomainEvent::MessageSent {
            message: message.clone(),
        });
        Ok(message)
    }

    // ---------------------------------------------------------------------------------------
    // Agents
    // ---------------------------------------------------------------------------------------

    /// Registers or updates an agent's profile (skills, capacity, team). Presence is kept.
    ///
    /// # Errors
    /// Router errors for an invalid profile.
    pub async fn register_agent(&self, mut agent: Agent) -> Result<()> {
        agent.tenant = self.inner.tenant.clone();
        let known = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let presence = agents.get(&agent.id).map(|a| a.presence);
            agent.presence = presence.unwrap_or(Presence::Offline);
            agents.insert(agent.id, agent.clone());
            presence.is_some()
        };
        if known {
            let decisions = self.inner.router.upsert_agent(agent).await?;
            self.apply(decisions).await;
        }
        Ok(())
    }

    /// A registered agent.
    pub fn agent(&self, id: AgentId) -> Option<Agent> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every registered agent.
    pub fn agents(&self) -> Vec<Agent> {
        let mut v: Vec<Agent> = self
            .inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Sets an agent's presence; an agent going online takes waiting conversations.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`]; router errors.
    pub async fn set_presence(&self, agent: AgentId, presence: Presence) -> Result<()> {
        let profile = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let a = agents
                .get_mut(&agent)
                .ok_or_else(|| Error::UnknownAgent(agent.to_string()))?;
            a.presence = presence;
            a.clone()
        };
        self.emit(DomainEvent::AgentPresenceChanged { agent, presence });
        let decisions = self.inner.router.upsert_agent(profile).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// Shorthand for [`Engine::set_presence`] with [`Presence::Online`].
    ///
    /// # Errors
    /// As [`Engine::set_presence`].
    pub async fn sign_in(&self, agent: AgentId) -> Result<()> {
        self.set_presence(agent, Presence::Online).await
    }

    /// Sends an agent's reply in a conversation assigned to them. `client_id` (the console's id
    /// for the message) makes a double-sent reply count once.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not assigned to the agent;
    /// [`Error::InvalidInput`] for an empty text.
    pub async fn agent_reply(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        content: Content,
        client_id: Option<String>,
    ) -> Result<Message> {
        if matches!(&content, Content::Text { text } if text.trim().is_empty()) {
            return Err(Error::invalid("reply text is empty"));
        }
        let conv = self.own_conversation(agent, conversation).await?;
        let _guard = self.lock_customer(conv.customer).await;
        self.send_to_customer(
            &conv,
            Author::Agent { agent },
            content,
            client_id.map(|c| format!("agent:{c}")),
        )
        .await
    }

    /// The agent solved the conversation: it is resolved, the agent's capacity is freed, and the
    /// customer's next message opens a new conversation.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not assigned to the agent.
    pub async fn resolve(&self, agent: AgentId, conversation: ConversationId) -> Result<()> {
        let conv = self.own_conversation(agent, conversation).await?;
        let _guard = self.lock_customer(conv.customer).await;
        let resolved = self
            .update_conversation(conversation, |c| c.state = ConversationState::Resolved)
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation,
            from: ConversationState::Assigned,
            to: ConversationState::Resolved,
        });
        self.send_to_customer(
            &resolved,
            Author::System,
            Content::text(
                "会话已结束，感谢您的咨询 · This conversation has been resolved. Thank you!",
            ),
            None,
        )
        .await?;
        match self.inner.router.release(agent, conversation).await {
            Ok(decisions) => self.apply(decisions).await,
            // The router may not know the task (assigned before a restart): nothing to free.
            Err(cs_routing::Error::Conflict { .. } | cs_routing::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    async fn own_conversation(
        &self,
        agent: AgentId,
        conversation: ConversationId,
    ) -> Result<Conversation> {
        let conv = self
            .inner
            .store
            .conversation(&self.inner.tenant, conversation)
            .await?;
        if conv.state != ConversationState::Assigned || conv.assignee != Some(agent) {
            return Err(Error::Forbidden {
                reason: format!("conversation {conversation} is not assigned to agent {agent}"),
            });
        }
        Ok(conv)
    }

    /// The conversations an agent has now, most recently active first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn agent_conversations(&self, agent: AgentId) -> Result<Vec<Conversation>> {
        Ok(self
            .inner
            .store
            .conversations(&ConversationQuery {
                tenant: self.inner.tenant.clone(),
                states: vec![ConversationState::Assigned],
                assignee: Some(agent),
                customer: None,
                limit: 200,
            })
            .await?)
    }

    /// The router's queue and agents' loads.
    ///
    /// # Errors
    /// Router errors.
    pub async fn queue(&self) -> Result<Snapshot> {
        Ok(self.inner.router.snapshot().await?)
    }

    /// Lets time-dependent routing (aging, overflow, reservation time-outs) act; call it
    /// periodically or from a timer.
    ///
    /// # Errors
    /// Router errors.
    pub async fn tick(&self) -> Result<()> {
        let decisions = self.inner.router.tick(self.inner.clock.now()).await?;
        self.apply(decisions).await;
        for e in self.inner.desk.tick(&self.inner.tenant).await? {
            self.emit_ticket_event(e);
        }
        Ok(())
    }

    fn emit_ticket_event(&self, e: cs_tickets::TicketEvent) {
        let detail = serde_json::to_value(&e.kind).unwrap_or_default();
        let change = detail["type"].as_str().unwrap_or("changed").to_owned();
        self.emit(DomainEvent::TicketUpdated {
            ticket: e.ticket,
            number: e.number,
            change,
            detail,
        });
    }

    // ---------------------------------------------------------------------------------------
    // Tickets
    // ---------------------------------------------------------------------------------------

    /// Opens a ticket from a conversation the agent has: linked to the conversation and the
    /// customer, assigned to the agent, with the conversation so far as its description; the
    /// customer is told the number to quote.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not the agent's; ticket store errors
    /// ([`cs_tickets::Error::InvalidInput`] for an empty subject).
    pub async fn open_ticket(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        subject: &str,
        group: Option<String>,
    ) -> Result<Ticket> {
        let conv = self.own_conversation(agent, conversation).await?;
        let transcript: Vec<String> = self
            .recent_messages(conv.id, 20)
            .await?
            .iter()
            .filter(|m| m.direction != Direction::Internal)
            .map(|m| format!("{}: {}", m.author.role(), m.content.plain_text()))
            .collect();
        let mut new = NewTicket::new(
            self.inner.tenant.clone(),
            subject,
            Actor::Agent { agent },
            self.inner.clock.now(),
        );
        new.description = Some(transcript.join("\n")).filter(|d| !d.is_empty());
        new.priority = conv.priority;
        new.group = group.or_else(|| Some("service".into()));
        new.assignee = Some(agent);
        new.customer = Some(conv.customer);
        new.conversation = Some(conv.id);
        let ticket = self.inner.desk.store().create(new).await?;
        self.emit(DomainEvent::TicketOpened {
            ticket: ticket.id,
            number: ticket.number,
            conversation: Some(conv.id),
        });
        let n = ticket.number;
        self.send_to_customer(
            &conv,
            Author::System,
            Content::text(format!(
                "已为您创建工单 #{n}，可随时询问“工单 {n} 进度” · Ticket #{n} opened; ask \"where is my ticket {n}\" any time."
            )),
            None,
        )
        .await?;
        Ok(ticket)
    }

    /// A customer's tickets, newest first.
    ///
    /// # Errors
    /// Ticket store errors.
    pub async fn customer_tickets(&self, customer: cs_core::CustomerId) -> Result<Vec<Ticket>> {
        Ok(self
            .inner
            .desk
            .store()
            .search(&TicketQuery {
                tenant: self.inner.tenant.clone(),
                customer: Some(customer),
                limit: 50,
                ..Default::default()
            })
            .await?)
    }

    // ---------------------------------------------------------------------------------------
    // One customer across channels
    // ---------------------------------------------------------------------------------------

    /// Links another identity to a customer (the shop's login proves a WeChat user is also this
    /// web visitor, an agent confirms an email address). The link records its origin.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] when the identity belongs to another customer: merge them
    /// with [`Engine::merge_customers`] instead.
    pub async fn link_identity(
        &self,
        customer: cs_core::CustomerId,
        identity: Identity,
        origin: LinkOrigin,
    ) -> Result<()> {
        self.inner
            .store
            .link_identity(
                &self.inner.tenant,
                customer,
                &identity,
                &origin,
                self.inner.clock.now(),
            )
            .await?;
        self.emit(DomainEvent::IdentityLinked { customer, identity });
        Ok(())
    }

    /// Merges customer `from` into `into`: identities, conversations and the whole history move
    /// over, so the agent sees one customer. If both were in an active conversation, `from`'s is
    /// resolved and taken out of the router's queue (or off its agent). Undo with
    /// [`Engine::unmerge`].
    ///
    /// # Errors
    /// As [`ConversationStore::merge_customers`].
    pub async fn merge_customers(
        &self,
        into: cs_core::CustomerId,
        from: cs_core::CustomerId,
        by: LinkOrigin,
    ) -> Result<Merge> {
        let tenant = &self.inner.tenant;
        let _a = self.lock_customer(into.min(from)).await;
        let _b = if into == from {
            None
        } else {
            Some(self.lock_customer(into.max(from)).await)
        };
        let active = |c| ConversationQuery {
            tenant: tenant.clone(),
            states: vec![
                ConversationState::Bot,
                ConversationState::Queued,
                ConversationState::Assigned,
            ],
            assignee: None,
            customer: Some(c),
            limit: 1,
        };
        let into_active = self.inner.store.conversations(&active(into)).await?;
        let from_active = self.inner.store.conversations(&active(from)).await?;
        let merge = self
            .inner
            .store
            .merge_customers(&MergeCustomers {
                tenant: tenant.clone(),
                into,
                from,
                by,
                at: self.inner.clock.now(),
            })
            .await?;
        if !into_active.is_empty()
            && let Some(closed) = from_active.first()
        {
            match (closed.state, closed.assignee) {
                (ConversationState::Queued, _) => {
                    self.inner.router.cancel(closed.id).await?;
                }
                (ConversationState::Assigned, Some(agent)) => {
                    if let Ok(decisions) = self.inner.router.release(agent, closed.id).await {
                        self.apply(decisions).await;
                    }
                }
                _ => {}
            }
            self.emit(DomainEvent::StateChanged {
                conversation: closed.id,
                from: closed.state,
                to: ConversationState::Resolved,
            });
        }
        self.emit(DomainEvent::CustomersMerged {
            merge: merge.id,
            into,
            from,
        });
        Ok(merge)
    }

    /// Undoes a merge: both customers are separate again, each with their own identities and
    /// history; nothing is lost.
    ///
    /// # Errors
    /// As [`ConversationStore::unmerge`].
    pub async fn unmerge(&self, merge: MergeId) -> Result<Merge> {
        let undone = self
            .inner
            .store
            .unmerge(&self.inner.tenant, merge, self.inner.clock.now())
            .await?;
        self.emit(DomainEvent::CustomersUnmerged {
            merge,
            into: undone.into,
            from: undone.from,
        });
        Ok(undone)
    }

    /// Sends the rest of a conversation through another of the customer's identities (the
    /// customer asked to continue by email, say). By default replies go where the customer
    /// wrote last.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not the agent's;
    /// [`Error::InvalidInput`] when the identity is not the customer's or the channel is not of
    /// its kind; [`Error::UnknownChannel`].
    pub async fn set_reply_route(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        route: Route,
    ) -> Result<Conversation> {
        let conv = self.own_conversation(agent, conversation).await?;
        let channel = self
            .inner
            .channels
            .get(&route.channel)
            .ok_or_else(|| Error::UnknownChannel(route.channel.to_string()))?;
        if channel.info().kind != route.identity.kind {
            return Err(Error::invalid(format!(
                "channel {} cannot reach identity {}",
                route.channel, route.identity
            )));
        }
        let identities = self
            .inner
            .store
            .identities(&self.inner.tenant, conv.customer)
            .await?;
        if !identities.contains(&route.identity) {
            return Err(Error::invalid(format!(
                "{} is not an identity of this customer",
                route.identity
            )));
        }
        self.update_conversation(conversation, |c| c.route = route.clone())
            .await
    }

    // ---------------------------------------------------------------------------------------
    // Reading
    // ---------------------------------------------------------------------------------------

    /// A conversation.
    ///
    /// # Errors
    /// Store errors ([`cs_core::Error::NotFound`]).
    pub async fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        Ok(self
            .inner
            .store
            .conversation(&self.inner.tenant, id)
            .await?)
    }

    /// The customer with identities and full history across channels and conversations.
    ///
    /// # Errors
    /// Store errors.
    pub async fn customer_view(&self, customer: cs_core::CustomerId) -> Result<CustomerView> {
        let tenant = &self.inner.tenant;
        let profile = self.inner.store.customer(tenant, customer).await?;
        let identities = self.inner.store.identities(tenant, customer).await?;
        let history = self
            .page_all(MessageScope::Customer(customer), usize::MAX)
            .await?;
        Ok(CustomerView {
            customer: profile,
            identities,
            history,
        })
    }

    /// The last `n` messages of a conversation, oldest first.
    async fn recent_messages(
        &self,
        conversation: ConversationId,
        n: usize,
    ) -> Result<Vec<Message>> {
        let all = self
            .page_all(MessageScope::Conversation(conversation), usize::MAX)
            .await?;
        Ok(all[all.len().saturating_sub(n)..].to_vec())
    }

    /// Reads up to `max` messages of `scope`, page by page.
    async fn page_all(&self, scope: MessageScope, max: usize) -> Result<Vec<Message>> {
        let mut out: Vec<Message> = Vec::new();
        loop {
            let page = self
                .inner
                .store
                .messages(&MessageQuery {
                    after: out.last().map(|m| m.id),
                    ..MessageQuery::new(self.inner.tenant.clone(), scope, cs_core::store::MAX_PAGE)
                })
                .await?;
            let done = page.len() < cs_core::store::MAX_PAGE;
            out.extend(page);
            if done || out.len() >= max {
                out.truncate(max);
                return Ok(out);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Plumbing
    // ---------------------------------------------------------------------------------------

    /// Re-reads and changes a conversation, retrying when another writer got there first.
    async fn update_conversation(
        &self,
        id: ConversationId,
        change: impl Fn(&mut Conversation),
    ) -> Result<Conversation> {
        let mut attempt = 0;
        loop {
            let mut c = self
                .inner
                .store
                .conversation(&self.inner.tenant, id)
                .await?;
            change(&mut c);
            c.updated_at = self.inner.clock.now();
            match self.inner.store.update_conversation(&c).await {
                Err(cs_core::Error::Conflict { .. }) if attempt < UPDATE_RETRIES => attempt += 1,
                other => return Ok(other?),
            }
        }
    }

    async fn requeue_after_restart(&self) -> Result<()> {
        let waiting = self
            .inner
            .store
            .conversations(&ConversationQuery {
                tenant: self.inner.tenant.clone(),
                states: vec![ConversationState::Queued, ConversationState::Assigned],
                assignee: None,
                customer: None,
                limit: cs_core::store::MAX_PAGE,
            })
            .await?;
        for conv in waiting.into_iter().rev() {
            let customer = self
                .inner
                .store
                .customer(&self.inner.tenant, conv.customer)
                .await?;
            let previous = conv.assignee;
            let conv = if conv.state == ConversationState::Assigned {
                self.update_conversation(conv.id, |c| c.state = ConversationState::Queued)
                    .await?
            } else {
                conv
            };
            self.enqueue(&conv, &customer, previous).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl InboundHandler for Engine {
    async fn handle(&self, message: InboundMessage) -> cs_channels::Result<Delivered> {
        self.handle_inbound(message).await.map_err(channel_error)
    }

    async fn history(
        &self,
        _channel: &ChannelId,
        identity: &Identity,
        limit: usize,
    ) -> cs_channels::Result<Vec<Message>> {
        let Some(customer) = self
            .inner
            .store
            .find_customer(&self.inner.tenant, identity)
            .await?
        else {
            return Ok(Vec::new());
        };
        let all = self
            .page_all(MessageScope::Customer(customer.id), usize::MAX)
            .await
            .map_err(channel_error)?;
        let visible: Vec<Message> = all
            .into_iter()
            .filter(|m| m.direction != Direction::Internal)
            .collect();
        Ok(visible[visible.len().saturating_sub(limit)..].to_vec())
    }

    async fn status(&self, channel: &ChannelId, update: StatusUpdate) -> cs_channels::Result<()> {
        if self
            .handle_receipt(channel, &update)
            .await
            .map_err(channel_error)?
            .is_none()
        {
            tracing::debug!(%channel, provider_id = %update.provider_message_id, "receipt for an unknown message");
        }
        Ok(())
    }
}

/// The skills of a call the voice menu routed (a `call` event with a `skills` list).
fn routed_call_skills(content: &Content) -> Option<Vec<String>> {
    match content {
        Content::Event { name, data } if name == "call" => Some(
            data.get("skills")?
                .as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn channel_error(e: Error) -> cs_channels::Error {
    match e {
        Error::Channel(c) => c,
        Error::Store(s) => s.into(),
        other => {
            let temporary = other.is_temporary();
            cs_channels::Error::Handler {
                source: Box::new(other),
                temporary,
            }
        }
    }
}
