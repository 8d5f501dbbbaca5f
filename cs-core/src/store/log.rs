//! Conversations and their messages.

use std::fmt::Debug;
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MAX_PAGE, page};
use crate::channel::Route;
use crate::conversation::{Conversation, ConversationState, Priority};
use crate::error::{Error, Result};
use crate::id::{AgentId, ChannelId, ConversationId, CustomerId, MessageId, TenantId};
use crate::message::{Direction, Message};

/// Find the customer's active conversation, or open one.
#[derive(Debug, Clone)]
pub struct OpenConversation {
    /// The tenant.
    pub tenant: TenantId,
    /// Whose conversation.
    pub customer: CustomerId,
    /// Where replies go.
    pub route: Route,
    /// Priority of a new conversation.
    pub priority: Priority,
    /// When (by the engine's clock).
    pub at: DateTime<Utc>,
    /// The message about to be appended, as `(channel, provider message id)`: when the customer
    /// has no active conversation and this message is already stored (a provider retry that
    /// arrives after the conversation ended), nothing is opened and the stored message is
    /// returned in [`Opened::duplicate`].
    pub unless_stored: Option<(ChannelId, String)>,
}

impl OpenConversation {
    /// Opens (or finds) `customer`'s active conversation, replying through `route`, at normal
    /// priority.
    pub fn new(tenant: TenantId, customer: CustomerId, route: Route, at: DateTime<Utc>) -> Self {
        Self {
            tenant,
            customer,
            route,
            priority: Priority::Normal,
            at,
            unless_stored: None,
        }
    }

    /// Opens nothing when the customer has no active conversation and the provider message
    /// `id` on `channel` is already stored (see [`OpenConversation::unless_stored`]).
    pub fn unless_stored(mut self, channel: ChannelId, id: impl Into<String>) -> Self {
        self.unless_stored = Some((channel, id.into()));
        self
    }
}

/// The outcome of [`ConversationLog::open_conversation`].
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The customer's active conversation (or, with [`Opened::duplicate`], the conversation the
    /// stored message belongs to).
    pub conversation: Conversation,
    /// Whether it was opened by this call.
    pub created: bool,
    /// The already stored message of [`OpenConversation::unless_stored`], when no active
    /// conversation existed and none was opened for it.
    pub duplicate: Option<Message>,
}

/// The outcome of [`ConversationLog::append_message`].
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// The message was stored.
    Inserted(Message),
    /// A message with the same channel and provider message id was already stored; this is it.
    Duplicate(Message),
}

impl Appended {
    /// The stored message (new or earlier).
    pub fn message(&self) -> &Message {
        match self {
            Self::Inserted(m) | Self::Duplicate(m) => m,
        }
    }

    /// Whether nothing new was stored.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate(_))
    }
}

/// Which messages to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageScope {
    /// One conversation.
    Conversation(ConversationId),
    /// Every conversation of one customer (their whole history across channels).
    Customer(CustomerId),
}

/// The order messages are listed in (the order they were stored in, by id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageOrder {
    /// Oldest first: reading a history forwards (page on with [`MessageQuery::after`]).
    #[default]
    OldestFirst,
    /// Newest first: the latest messages in one query (page back with [`MessageQuery::before`]).
    NewestFirst,
}

/// A page of messages.
///
/// ```
/// use cs_core::store::{MessageQuery, MessageScope};
/// use cs_core::{ConversationId, Direction, TenantId};
///
/// // The last 20 messages a customer can see, newest first.
/// let q = MessageQuery::new(TenantId::default(), MessageScope::Conversation(ConversationId::new()), 20)
///     .newest_first()
///     .with_directions([Direction::Inbound, Direction::Outbound]);
/// # let _ = q;
/// ```
#[derive(Debug, Clone)]
pub struct MessageQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Which messages.
    pub scope: MessageScope,
    /// Only messages stored after this one.
    pub after: Option<MessageId>,
    /// Only messages stored before this one.
    pub before: Option<MessageId>,
    /// Only these directions (every direction when empty).
    pub directions: Vec<Direction>,
    /// Oldest or newest first.
    pub order: MessageOrder,
    /// At most this many (the store caps it at [`MAX_PAGE`]).
    pub limit: usize,
}

impl MessageQuery {
    /// The first `limit` messages of `scope`, oldest first.
    pub fn new(tenant: TenantId, scope: MessageScope, limit: usize) -> Self {
        Self {
            tenant,
            scope,
            after: None,
            before: None,
            directions: Vec::new(),
            order: MessageOrder::OldestFirst,
            limit,
        }
    }

    /// Newest first.
    pub fn newest_first(mut self) -> Self {
        self.order = MessageOrder::NewestFirst;
        self
    }

    /// Only messages stored after `id`.
    pub fn after(mut self, id: MessageId) -> Self {
        self.after = Some(id);
        self
    }

    /// Only messages stored before `id`.
    pub fn before(mut self, id: MessageId) -> Self {
        self.before = Some(id);
        self
    }

    /// Only messages in these directions.
    pub fn with_directions(mut self, directions: impl IntoIterator<Item = Direction>) -> Self {
        self.directions = directions.into_iter().collect();
        self
    }

    /// Whether `m` passes the query's filters (scope aside): for stores that filter in memory.
    pub(crate) fn admits(&self, m: &Message) -> bool {
        self.after.is_none_or(|a| m.id > a)
            && self.before.is_none_or(|b| m.id < b)
            && (self.directions.is_empty() || self.directions.contains(&m.direction))
    }
}

/// Which conversations to list, most recently updated first.
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only these states (all when empty).
    pub states: Vec<ConversationState>,
    /// Only this assignee.
    pub assignee: Option<AgentId>,
    /// Only this customer.
    pub customer: Option<CustomerId>,
    /// At most this many (the store caps it at [`MAX_PAGE`]).
    pub limit: usize,
}

/// Conversations whose bot turn never finished: in the bot's hands, and the newest message is
/// the customer's (no answer, note or hand-over came after it), e.g. because the process
/// answering crashed mid-turn. Listed in id order; page on with [`UnansweredQuery::after`].
#[derive(Debug, Clone)]
pub struct UnansweredQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only conversations with a greater id.
    pub after: Option<ConversationId>,
    /// At most this many (the store caps it at [`MAX_PAGE`]).
    pub limit: usize,
}

impl UnansweredQuery {
    /// The first `limit` of `tenant`.
    pub fn new(tenant: TenantId, limit: usize) -> Self {
        Self {
            tenant,
            after: None,
            limit,
        }
    }
}

/// Conversations and their messages.
#[async_trait]
pub trait ConversationLog: Send + Sync + Debug + 'static {
    /// Returns the customer's active conversation, opening one when there is none. Concurrent
    /// calls for the same customer agree on one conversation. An existing conversation's route is
    /// not changed here (see [`ConversationLog::update_conversation`]).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when the customer does not exist.
    async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened>;

    /// Loads a conversation.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such conversation in the tenant.
    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation>;

    /// Saves a changed conversation if nobody else changed it since it was read: the stored
    /// version must equal `conversation.version`. Returns the saved conversation with its version
    /// incremented. [`ConversationLogExt::update_conversation_with_retry`] re-reads and retries.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] on a stale version (or when re-activating would give the
    /// customer a second active conversation); [`crate::Error::NotFound`] when it does not exist.
    async fn update_conversation(&self, conversation: &Conversation) -> Result<Conversation>;

    /// Lists conversations, most recently updated first.
    ///
    /// # Errors
    /// Backend failures.
    async fn conversations(&self, query: &ConversationQuery) -> Result<Vec<Conversation>>;

    /// Stores a message unless one with the same `(channel, provider_message_id)` is already
    /// stored, in which case the earlier one is returned as [`Appended::Duplicate`].
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for an invalid message ([`Message::validate`]);
    /// [`crate::Error::NotFound`] when its conversation does not exist.
    async fn append_message(&self, message: &Message) -> Result<Appended>;

    /// Lists one page of messages in the query's order.
    ///
    /// # Errors
    /// Backend failures.
    async fn messages(&self, query: &MessageQuery) -> Result<Vec<Message>>;

    /// Conversations in the bot's hands whose newest message is an inbound customer message
    /// (see [`UnansweredQuery`]).
    ///
    /// # Errors
    /// Backend failures.
    async fn unanswered(&self, query: &UnansweredQuery) -> Result<Vec<Conversation>>;

    /// The bot's dialogue state of a conversation (pending questions, collected slots; the
    /// bot's own JSON), saved by [`ConversationLog::save_bot_state`], so the customer's next
    /// message continues the dialogue on whichever process receives it. `None` when none is
    /// saved. The default keeps none: the dialogue then lives in one process's bot only.
    ///
    /// # Errors
    /// Backend failures.
    async fn bot_state(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
    ) -> Result<Option<serde_json::Value>> {
        let _ = (tenant, conversation);
        Ok(None)
    }

    /// Saves the bot's dialogue state of a conversation, replacing the last one; `None` deletes
    /// it (the bot handed over, or has nothing pending). The default saves nothing.
    ///
    /// # Errors
    /// Backend failures.
    async fn save_bot_state(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        state: Option<&serde_json::Value>,
    ) -> Result<()> {
        let _ = (tenant, conversation, state);
        Ok(())
    }
}

/// How many times [`ConversationLogExt::update_conversation_with_retry`] retries after losing a
/// race.
pub const UPDATE_RETRIES: usize = 5;

/// Conveniences over any [`ConversationLog`].
pub trait ConversationLogExt: ConversationLog {
    /// Every message `query` matches, read page by page (`query.limit` a page) in its order.
    ///
    /// # Errors
    /// As [`ConversationLog::messages`].
    fn page_all(&self, query: &MessageQuery) -> impl Future<Output = Result<Vec<Message>>> + Send;

    /// The newest `query.limit` messages `query` matches, returned oldest first (ready to show
    /// or to give a bot): one newest-first query (whatever `query.order` says), so a long history
    /// is never read to find its end. A limit above [`MAX_PAGE`] reads several pages.
    ///
    /// # Errors
    /// As [`ConversationLog::messages`].
    fn recent_messages(
        &self,
        query: &MessageQuery,
    ) -> impl Future<Output = Result<Vec<Message>>> + Send;

    /// Re-reads a conversation, applies `change`, stamps `updated_at = at` and saves it; when
    /// another writer got there first ([`crate::Error::Conflict`]), reads it again and re-applies
    /// the change, up to [`UPDATE_RETRIES`] times.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`]; [`crate::Error::Conflict`] when every attempt lost.
    fn update_conversation_with_retry<F>(
        &self,
        tenant: &TenantId,
        id: ConversationId,
        at: DateTime<Utc>,
        change: F,
    ) -> impl Future<Output = Result<Conversation>> + Send
    where
        F: FnMut(&mut Conversation) + Send;
}

impl<T: ConversationLog + ?Sized> ConversationLogExt for T {
    async fn page_all(&self, query: &MessageQuery) -> Result<Vec<Message>> {
        let size = page(query.limit);
        let mut q = query.clone();
        let mut out: Vec<Message> = Vec::new();
        loop {
            let batch = self.messages(&q).await?;
            let done = batch.len() < size;
            if let Some(last) = batch.last() {
                match q.order {
                    MessageOrder::OldestFirst => q.after = Some(last.id),
                    MessageOrder::NewestFirst => q.before = Some(last.id),
                }
            }
            out.extend(batch);
            if done {
                return Ok(out);
            }
        }
    }

    async fn recent_messages(&self, query: &MessageQuery) -> Result<Vec<Message>> {
        let mut q = query.clone().newest_first();
        q.limit = query.limit.min(MAX_PAGE);
        let mut out: Vec<Message> = Vec::new();
        while out.len() < query.limit {
            let batch = self.messages(&q).await?;
            let done = batch.len() < q.limit;
            q.before = batch.last().map(|m| m.id).or(q.before);
            out.extend(batch);
            q.limit = (query.limit - out.len().min(query.limit)).min(MAX_PAGE);
            if done || q.limit == 0 {
                break;
            }
        }
        out.truncate(query.limit);
        out.reverse();
        Ok(out)
    }

    async fn update_conversation_with_retry<F>(
        &self,
        tenant: &TenantId,
        id: ConversationId,
        at: DateTime<Utc>,
        mut change: F,
    ) -> Result<Conversation>
    where
        F: FnMut(&mut Conversation) + Send,
    {
        let mut attempt = 0;
        loop {
            let mut c = self.conversation(tenant, id).await?;
            change(&mut c);
            c.updated_at = at;
            match self.update_conversation(&c).await {
                Err(Error::Conflict { .. }) if attempt < UPDATE_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }
}

/// A new active conversation in the bot state.
pub(crate) fn new_conversation(req: &OpenConversation) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        tenant: req.tenant.clone(),
        customer: req.customer,
        route: req.route.clone(),
        state: ConversationState::Bot,
        priority: req.priority,
        skills: Vec::new(),
        assignee: None,
        created_at: req.at,
        updated_at: req.at,
        queued_at: None,
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::channel::{ChannelKind, Identity};
    use crate::store::{CustomerStore, MemoryStore, ResolveCustomer};

    /// A log where another writer changes the conversation just before our first update.
    #[derive(Debug, Default)]
    struct Raced {
        inner: MemoryStore,
        raced: AtomicBool,
    }

    #[async_trait]
    impl ConversationLog for Raced {
        async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened> {
            self.inner.open_conversation(req).await
        }
        async fn conversation(&self, t: &TenantId, id: ConversationId) -> Result<Conversation> {
            self.inner.conversation(t, id).await
        }
        async fn update_conversation(&self, c: &Conversation) -> Result<Conversation> {
            if !self.raced.swap(true, Ordering::SeqCst) {
                let mut other = self.inner.conversation(&c.tenant, c.id).await?;
                other.assignee = Some(AgentId::new());
                self.inner.update_conversation(&other).await?;
            }
            self.inner.update_conversation(c).await
        }
        async fn conversations(&self, q: &ConversationQuery) -> Result<Vec<Conversation>> {
            self.inner.conversations(q).await
        }
        async fn append_message(&self, m: &Message) -> Result<Appended> {
            self.inner.append_message(m).await
        }
        async fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>> {
            self.inner.messages(q).await
        }
        async fn unanswered(&self, q: &UnansweredQuery) -> Result<Vec<Conversation>> {
            self.inner.unanswered(q).await
        }
    }

    #[tokio::test]
    async fn a_lost_race_is_retried_on_a_fresh_read() {
        let log = Raced::default();
        let t = TenantId::default();
        let web = Identity::new(ChannelKind::WebChat, "v");
        let at = Utc::now();
        let customer = log
            .inner
            .resolve_customer(&ResolveCustomer::new(t.clone(), web.clone(), at))
            .await
            .unwrap()
            .customer;
        let c = log
            .open_conversation(&OpenConversation {
                tenant: t.clone(),
                customer: customer.id,
                route: Route {
                    channel: crate::ChannelId::new("webchat").unwrap(),
                    identity: web,
                },
                priority: Priority::Normal,
                at,
                unless_stored: None,
            })
            .await
            .unwrap()
            .conversation;
        let mut calls = 0;
        let saved = log
            .update_conversation_with_retry(&t, c.id, at, |c| {
                calls += 1;
                c.priority = Priority::Urgent;
            })
            .await
            .unwrap();
        assert_eq!(calls, 2, "applied again after the conflict");
        assert_eq!(saved.priority, Priority::Urgent);
        assert!(
            saved.assignee.is_some(),
            "the other writer's change is kept"
        );
        assert_eq!(saved.version, 2);
    }
}
