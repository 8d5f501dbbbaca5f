//! The in-memory conversation store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::customers::{new_customer, one_per_candidate};
use super::log::new_conversation;
use super::outbox::status_advances;
use super::{
    Appended, ClaimOutbound, Claimed, ConversationLog, ConversationQuery, CustomerStore,
    DeadLetter, DeadLetterQuery, FinishOutbound, LinkIdentity, LinkSuggestion, Merge,
    MergeCustomers, MessageOrder, MessageQuery, MessageScope, OpenConversation, Opened, Outbox,
    Outcome, Receipt, ReleaseClaims, ResolveCustomer, Resolved, StatusChange, UnansweredQuery,
    Unmerge, page,
};
use crate::channel::{Identity, IdentityLink, LinkOrigin, SharedKey};
use crate::conversation::{Conversation, ConversationState};
use crate::customer::Customer;
use crate::error::{Error, Result};
use crate::id::{ChannelId, ConversationId, CustomerId, MergeId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Direction, Message};

/// A [`super::ConversationStore`] in process memory: for tests, demos and single-process
/// deployments that need no durability.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cs_core::store::{CustomerStore, MemoryStore, ResolveCustomer};
/// use cs_core::{ChannelKind, Identity, TenantId};
///
/// let store = MemoryStore::new();
/// let req = ResolveCustomer::new(
///     TenantId::default(),
///     Identity::new(ChannelKind::Email, "ann@example.com"),
///     chrono::Utc::now(),
/// )
/// .with_display_name("Ann");
/// let first = store.resolve_customer(&req).await.unwrap();
/// let again = store.resolve_customer(&req).await.unwrap();
/// assert!(first.created && !again.created);
/// assert_eq!(first.customer.id, again.customer.id);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    customers: HashMap<(TenantId, CustomerId), Customer>,
    identities: HashMap<(TenantId, Identity), Link>,
    /// The identities carrying each shared key.
    by_key: HashMap<(TenantId, String), BTreeSet<Identity>>,
    merges: Vec<Merge>,
    conversations: HashMap<(TenantId, ConversationId), Conversation>,
    /// Every message, keyed by tenant and (time-ordered) id.
    messages: BTreeMap<(TenantId, MessageId), Message>,
    /// Each conversation's message ids, in order (so a conversation's page needs no scan).
    by_conversation: HashMap<(TenantId, ConversationId), BTreeSet<MessageId>>,
    by_provider_id: HashMap<(TenantId, ChannelId, String), MessageId>,
    /// Outbound messages not yet sent (or dead), in message-id order.
    outbox: BTreeMap<(TenantId, MessageId), OutboxRow>,
    /// Provider ids of sent messages, for receipts.
    receipts: HashMap<(TenantId, ChannelId, String), MessageId>,
    /// The bot's dialogue state per conversation.
    bot_states: HashMap<(TenantId, ConversationId), serde_json::Value>,
}

#[derive(Debug, Clone)]
struct Link {
    customer: CustomerId,
    origin: LinkOrigin,
    at: DateTime<Utc>,
    key: Option<SharedKey>,
    verified: bool,
}

impl Link {
    fn public(&self, identity: &Identity) -> IdentityLink {
        IdentityLink {
            identity: identity.clone(),
            origin: self.origin.clone(),
            linked_at: self.at,
            shared_key: self.key.clone(),
            verified: self.verified,
        }
    }
}

#[derive(Debug)]
struct OutboxRow {
    to: Identity,
    conversation: ConversationId,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    dead: bool,
    error: Option<String>,
    /// The node holding its claim.
    owner: Option<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn active_conversation(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Option<&Conversation> {
        self.conversations
            .values()
            .find(|c| &c.tenant == tenant && c.customer == customer && c.state.is_active())
    }

    /// Records (or replaces) the key an identity carries.
    fn set_key(&mut self, tenant: &TenantId, identity: &Identity, key: Option<SharedKey>) {
        let Some(link) = self.identities.get_mut(&(tenant.clone(), identity.clone())) else {
            return;
        };
        let old = std::mem::replace(&mut link.key, key.clone());
        if let Some(old) = old
            && let Some(set) = self.by_key.get_mut(&(tenant.clone(), old.key))
        {
            set.remove(identity);
        }
        if let Some(new) = key {
            self.by_key
                .entry((tenant.clone(), new.key))
                .or_default()
                .insert(identity.clone());
        }
    }

    fn insert_link(&mut self, tenant: &TenantId, identity: &Identity, link: Link) {
        let key = link.key.clone();
        self.identities.insert(
            (tenant.clone(), identity.clone()),
            Link { key: None, ..link },
        );
        self.set_key(tenant, identity, key);
    }

    /// The identities carrying `key`, oldest link first, with their links.
    fn sharing(&self, tenant: &TenantId, key: &str) -> Vec<(Identity, Link)> {
        let mut out: Vec<(Identity, Link)> = self
            .by_key
            .get(&(tenant.clone(), key.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|i| {
                let link = self.identities.get(&(tenant.clone(), i.clone()))?;
                Some((i.clone(), link.clone()))
            })
            .collect();
        out.sort_by(|(a, la), (b, lb)| la.at.cmp(&lb.at).then_with(|| a.cmp(b)));
        out
    }

    fn customer_of(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer> {
        self.customers
            .get(&(tenant.clone(), id))
            .cloned()
            .ok_or_else(|| Error::not_found("customer", id))
    }
}

fn suggestion(
    key: &SharedKey,
    customer: CustomerId,
    identity: &Identity,
    other: &(Identity, Link),
) -> LinkSuggestion {
    LinkSuggestion {
        key: key.key.clone(),
        customer,
        identity: identity.clone(),
        proven: key.proven,
        candidate: other.1.customer,
        candidate_identity: other.0.clone(),
        candidate_proven: other.1.key.as_ref().is_some_and(|k| k.proven),
    }
}

#[async_trait]
impl CustomerStore for MemoryStore {
    async fn resolve_customer(&self, req: &ResolveCustomer) -> Result<Resolved> {
        let mut inner = self.lock();
        let t = &req.tenant;
        if let Some(link) = inner.identities.get(&(t.clone(), req.identity.clone())) {
            let customer = inner.customer_of(t, link.customer)?;
            if req.shared_key.is_some() && link.key != req.shared_key {
                inner.set_key(t, &req.identity, req.shared_key.clone());
            }
            return Ok(Resolved::found(customer));
        }
        let sharing = match &req.shared_key {
            Some(k) => inner.sharing(t, &k.key),
            None => Vec::new(),
        };
        let proven_by = |l: &Link| l.key.as_ref().is_some_and(|k| k.proven);
        let join = req
            .shared_key
            .as_ref()
            .filter(|k| k.proven)
            .and_then(|_| sharing.iter().find(|(_, l)| proven_by(l)))
            .map(|(_, l)| l.customer);
        let (customer, created, origin) = match (join, &req.shared_key) {
            (Some(id), Some(k)) => (
                inner.customer_of(t, id)?,
                false,
                LinkOrigin::SharedKey { key: k.key.clone() },
            ),
            _ => (new_customer(req), true, LinkOrigin::FirstContact),
        };
        if created {
            inner
                .customers
                .insert((t.clone(), customer.id), customer.clone());
        }
        inner.insert_link(
            t,
            &req.identity,
            Link {
                customer: customer.id,
                origin,
                at: req.at,
                key: req.shared_key.clone(),
                verified: true,
            },
        );
        let suggestions = match &req.shared_key {
            Some(k) => one_per_candidate(
                sharing
                    .iter()
                    .filter(|(_, l)| l.customer != customer.id)
                    .map(|other| (other.1.at, suggestion(k, customer.id, &req.identity, other)))
                    .collect(),
            ),
            None => Vec::new(),
        };
        Ok(Resolved {
            customer,
            created,
            joined: !created,
            suggestions,
        })
    }

    async fn find_customer(
        &self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>> {
        let inner = self.lock();
        Ok(inner
            .identities
            .get(&(tenant.clone(), identity.clone()))
            .and_then(|link| inner.customers.get(&(tenant.clone(), link.customer)))
            .cloned())
    }

    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer> {
        self.lock().customer_of(tenant, id)
    }

    async fn update_customer(&self, customer: &Customer) -> Result<()> {
        let mut inner = self.lock();
        let slot = inner
            .customers
            .get_mut(&(customer.tenant.clone(), customer.id))
            .ok_or_else(|| Error::not_found("customer", customer.id))?;
        *slot = customer.clone();
        Ok(())
    }

    async fn link_identity(&self, req: &LinkIdentity) -> Result<()> {
        let mut inner = self.lock();
        let t = &req.tenant;
        if !inner.customers.contains_key(&(t.clone(), req.customer)) {
            return Err(Error::not_found("customer", req.customer));
        }
        let key = (t.clone(), req.identity.clone());
        match inner.identities.get_mut(&key) {
            Some(link) if link.customer == req.customer => {
                link.verified = true;
                if req.shared_key.is_some() {
                    inner.set_key(t, &req.identity, req.shared_key.clone());
                }
                Ok(())
            }
            Some(_) => Err(Error::conflict(format!(
                "identity {} belongs to another customer",
                req.identity
            ))),
            None => {
                inner.insert_link(
                    t,
                    &req.identity,
                    Link {
                        customer: req.customer,
                        origin: req.origin.clone(),
                        at: req.at,
                        key: req.shared_key.clone(),
                        verified: true,
                    },
                );
                Ok(())
            }
        }
    }

    async fn identity_links(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<IdentityLink>> {
        let mut out: Vec<IdentityLink> = self
            .lock()
            .identities
            .iter()
            .filter(|((t, _), l)| t == tenant && l.customer == customer)
            .map(|((_, i), l)| l.public(i))
            .collect();
        out.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(out)
    }

    async fn link_suggestions(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<LinkSuggestion>> {
        let inner = self.lock();
        let mut out: Vec<(DateTime<Utc>, LinkSuggestion)> = Vec::new();
        for ((t, identity), link) in &inner.identities {
            let Some(key) = link
                .key
                .as_ref()
                .filter(|_| t == tenant && link.customer == customer)
            else {
                continue;
            };
            for other in inner.sharing(tenant, &key.key) {
                if other.1.customer != customer {
                    out.push((other.1.at, suggestion(key, customer, identity, &other)));
                }
            }
        }
        Ok(one_per_candidate(out))
    }

    async fn merge_customers(&self, req: &MergeCustomers) -> Result<Merge> {
        let mut inner = self.lock();
        let t = &req.tenant;
        if req.into == req.from {
            return Err(Error::invalid("a customer cannot be merged with itself"));
        }
        for c in [req.into, req.from] {
            if !inner.customers.contains_key(&(t.clone(), c)) {
                return Err(Error::not_found("customer", c));
            }
            if inner
                .merges
                .iter()
                .any(|m| &m.tenant == t && m.from == c && m.undone_at.is_none())
            {
                return Err(Error::conflict(format!("customer {c} was merged away")));
            }
        }
        let id = MergeId::new();
        let mut identities = Vec::new();
        for ((tt, identity), link) in inner.identities.iter_mut() {
            if tt == t && link.customer == req.from {
                identities.push(link.public(identity));
                link.customer = req.into;
                link.origin = LinkOrigin::Merge { merge: id };
            }
        }
        identities.sort_by(|a, b| a.identity.cmp(&b.identity));
        let into_active = inner.active_conversation(t, req.into).map(|c| c.id);
        let mut conversations = Vec::new();
        let mut resolved = None;
        for ((tt, _), c) in inner.conversations.iter_mut() {
            if tt == t && c.customer == req.from {
                if into_active.is_some() && c.state.is_active() {
                    c.state = ConversationState::Resolved;
                    c.updated_at = req.at;
                    c.version += 1;
                    resolved = Some(c.id);
                }
                c.customer = req.into;
                conversations.push(c.id);
            }
        }
        conversations.sort();
        for ((tt, _), m) in inner.messages.iter_mut() {
            if tt == t && m.customer == req.from {
                m.customer = req.into;
            }
        }
        let merge = Merge {
            id,
            tenant: t.clone(),
            into: req.into,
            from: req.from,
            identities,
            conversations,
            resolved,
            by: req.by.clone(),
            at: req.at,
            undone_at: None,
        };
        inner.merges.push(merge.clone());
        Ok(merge)
    }

    async fn unmerge(&self, req: &Unmerge) -> Result<Merge> {
        let mut inner = self.lock();
        let (tenant, merge) = (&req.tenant, req.merge);
        let record = inner
            .merges
            .iter()
            .find(|m| &m.tenant == tenant && m.id == merge)
            .cloned()
            .ok_or_else(|| Error::not_found("merge", merge))?;
        if record.undone_at.is_some() {
            return Err(Error::conflict(format!("merge {merge} was undone already")));
        }
        for l in &record.identities {
            if let Some(link) = inner
                .identities
                .get_mut(&(tenant.clone(), l.identity.clone()))
                && link.customer == record.into
            {
                link.customer = record.from;
                link.origin = l.origin.clone();
                link.at = l.linked_at;
            }
        }
        for ((tt, _), c) in inner.conversations.iter_mut() {
            if tt == tenant && c.customer == record.into && record.conversations.contains(&c.id) {
                c.customer = record.from;
            }
        }
        for ((tt, _), m) in inner.messages.iter_mut() {
            if tt == tenant
                && m.customer == record.into
                && record.conversations.contains(&m.conversation)
            {
                m.customer = record.from;
            }
        }
        let slot = inner
            .merges
            .iter_mut()
            .find(|m| &m.tenant == tenant && m.id == merge)
            .expect("found above");
        slot.undone_at = Some(req.at);
        Ok(slot.clone())
    }

    async fn merges(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Merge>> {
        Ok(self
            .lock()
            .merges
            .iter()
            .filter(|m| &m.tenant == tenant && (m.into == customer || m.from == customer))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ConversationLog for MemoryStore {
    async fn bot_state(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
    ) -> Result<Option<serde_json::Value>> {
        Ok(self
            .lock()
            .bot_states
            .get(&(tenant.clone(), conversation))
            .cloned())
    }

    async fn save_bot_state(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        state: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut inner = self.lock();
        let key = (tenant.clone(), conversation);
        match state {
            Some(s) => {
                inner.bot_states.insert(key, s.clone());
            }
            None => {
                inner.bot_states.remove(&key);
            }
        }
        Ok(())
    }

    async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened> {
        let mut inner = self.lock();
        if !inner
            .customers
            .contains_key(&(req.tenant.clone(), req.customer))
        {
            return Err(Error::not_found("customer", req.customer));
        }
        if let Some(c) = inner.active_conversation(&req.tenant, req.customer) {
            return Ok(Opened {
                conversation: c.clone(),
                created: false,
                duplicate: None,
            });
        }
        if let Some((channel, pid)) = &req.unless_stored {
            let key = (req.tenant.clone(), channel.clone(), pid.clone());
            if let Some(id) = inner.by_provider_id.get(&key) {
                let message = inner.messages[&(req.tenant.clone(), *id)].clone();
                let conversation =
                    inner.conversations[&(req.tenant.clone(), message.conversation)].clone();
                return Ok(Opened {
                    conversation,
                    created: false,
                    duplicate: Some(message),
                });
            }
        }
        let conversation = new_conversation(req);
        inner
            .conversations
            .insert((req.tenant.clone(), conversation.id), conversation.clone());
        Ok(Opened {
            conversation,
            created: true,
            duplicate: None,
        })
    }

    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation> {
        self.lock()
            .conversations
            .get(&(tenant.clone(), id))
            .cloned()
            .ok_or_else(|| Error::not_found("conversation", id))
    }

    async fn update_conversation(&self, conversation: &Conversation) -> Result<Conversation> {
        let mut inner = self.lock();
        let key = (conversation.tenant.clone(), conversation.id);
        let stored = inner
            .conversations
            .get(&key)
            .ok_or_else(|| Error::not_found("conversation", conversation.id))?;
        if stored.version != conversation.version {
            return Err(Error::conflict(format!(
                "conversation {} was changed (version {} now, {} read)",
                conversation.id, stored.version, conversation.version
            )));
        }
        if conversation.state.is_active()
            && !stored.state.is_active()
            && let Some(other) =
                inner.active_conversation(&conversation.tenant, conversation.customer)
        {
            return Err(Error::conflict(format!(
                "customer already has active conversation {}",
                other.id
            )));
        }
        let mut saved = conversation.clone();
        saved.version += 1;
        inner.conversations.insert(key, saved.clone());
        Ok(saved)
    }

    async fn conversations(&self, query: &ConversationQuery) -> Result<Vec<Conversation>> {
        let inner = self.lock();
        let mut out: Vec<Conversation> = inner
            .conversations
            .values()
            .filter(|c| c.tenant == query.tenant)
            .filter(|c| query.states.is_empty() || query.states.contains(&c.state))
            .filter(|c| query.assignee.is_none_or(|a| c.assignee == Some(a)))
            .filter(|c| query.customer.is_none_or(|cu| c.customer == cu))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        out.truncate(page(query.limit));
        Ok(out)
    }

    async fn unanswered(&self, query: &UnansweredQuery) -> Result<Vec<Conversation>> {
        let inner = self.lock();
        let mut out: Vec<Conversation> = inner
            .conversations
            .values()
            .filter(|c| c.tenant == query.tenant && c.state == ConversationState::Bot)
            .filter(|c| query.after.is_none_or(|a| c.id > a))
            .filter(|c| {
                inner
                    .by_conversation
                    .get(&(c.tenant.clone(), c.id))
                    .and_then(|ids| ids.last())
                    .is_some_and(|id| {
                        inner.messages[&(c.tenant.clone(), *id)].direction == Direction::Inbound
                    })
            })
            .cloned()
            .collect();
        out.sort_by_key(|c| c.id);
        out.truncate(page(query.limit));
        Ok(out)
    }

    async fn append_message(&self, message: &Message) -> Result<Appended> {
        message.validate()?;
        let mut inner = self.lock();
        if !inner
            .conversations
            .contains_key(&(message.tenant.clone(), message.conversation))
        {
            return Err(Error::not_found("conversation", message.conversation));
        }
        if let Some(pid) = &message.provider_message_id {
            let key = (message.tenant.clone(), message.channel.clone(), pid.clone());
            if let Some(existing) = inner.by_provider_id.get(&key) {
                let existing = inner.messages[&(message.tenant.clone(), *existing)].clone();
                return Ok(Appended::Duplicate(existing));
            }
            inner.by_provider_id.insert(key, message.id);
        }
        inner
            .messages
            .insert((message.tenant.clone(), message.id), message.clone());
        inner
            .by_conversation
            .entry((message.tenant.clone(), message.conversation))
            .or_default()
            .insert(message.id);
        Ok(Appended::Inserted(message.clone()))
    }

    async fn messages(&self, query: &MessageQuery) -> Result<Vec<Message>> {
        let inner = self.lock();
        let t = &query.tenant;
        let lo = query.after.map_or(Bound::Unbounded, Bound::Excluded);
        let hi = query.before.map_or(Bound::Unbounded, Bound::Excluded);
        let limit = page(query.limit);
        let newest_first = query.order == MessageOrder::NewestFirst;
        let admitted = |m: &&Message| query.admits(m);
        Ok(match query.scope {
            // A conversation's messages through its index.
            MessageScope::Conversation(c) => {
                let Some(ids) = inner.by_conversation.get(&(t.clone(), c)) else {
                    return Ok(Vec::new());
                };
                let range = ids.range((lo, hi));
                let ids: Box<dyn Iterator<Item = &MessageId>> = if newest_first {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                ids.map(|id| &inner.messages[&(t.clone(), *id)])
                    .filter(admitted)
                    .take(limit)
                    .cloned()
                    .collect()
            }
            MessageScope::Customer(customer) => {
                let first = MessageId::from_uuid(uuid::Uuid::nil());
                let last = MessageId::from_uuid(uuid::Uuid::max());
                let range = inner
                    .messages
                    .range((t.clone(), first)..=(t.clone(), last))
                    .map(|(_, m)| m);
                let all: Box<dyn Iterator<Item = &Message>> = if newest_first {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                all.filter(|m| m.customer == customer)
                    .filter(admitted)
                    .take(limit)
                    .cloned()
                    .collect()
            }
        })
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn append_outbound(&self, message: &Message, to: &Identity) -> Result<Appended> {
        let appended = self.append_message(message).await?;
        if let Appended::Inserted(m) = &appended {
            self.lock().outbox.insert(
                (m.tenant.clone(), m.id),
                OutboxRow {
                    to: to.clone(),
                    conversation: m.conversation,
                    attempts: 0,
                    next_attempt_at: m.created_at,
                    dead: false,
                    error: None,
                    owner: None,
                },
            );
        }
        Ok(appended)
    }

    async fn claim_outbound(&self, req: &ClaimOutbound) -> Result<Vec<Claimed>> {
        let mut inner = self.lock();
        let mut seen = HashSet::new();
        let mut heads = Vec::new();
        for ((t, id), row) in &inner.outbox {
            if t != &req.tenant || row.dead || !seen.insert(row.conversation) {
                continue;
            }
            if req.conversation.is_none_or(|c| c == row.conversation)
                && row.next_attempt_at <= req.now
            {
                heads.push(*id);
            }
        }
        heads.truncate(page(req.limit));
        let mut out = Vec::new();
        for id in heads {
            let row = inner
                .outbox
                .get_mut(&(req.tenant.clone(), id))
                .expect("head is in the outbox");
            row.next_attempt_at = req.lease_until;
            row.owner.clone_from(&req.owner);
            let (attempts, to) = (row.attempts, row.to.clone());
            out.push(Claimed {
                message: inner.messages[&(req.tenant.clone(), id)].clone(),
                to,
                attempts,
            });
        }
        Ok(out)
    }

    async fn release_claims(&self, req: &ReleaseClaims) -> Result<u64> {
        let mut inner = self.lock();
        let mut released = 0;
        for ((t, _), row) in inner.outbox.iter_mut() {
            if t == &req.tenant && !row.dead && row.owner.as_deref() == Some(req.owner.as_str()) {
                row.owner = None;
                row.next_attempt_at = row.next_attempt_at.min(req.now);
                released += 1;
            }
        }
        Ok(released)
    }

    async fn finish_outbound(&self, req: &FinishOutbound) -> Result<()> {
        let mut inner = self.lock();
        let key = (req.tenant.clone(), req.message);
        if inner.outbox.get(&key).is_none_or(|r| r.dead) {
            return Err(Error::not_found("outbox message", req.message));
        }
        match &req.outcome {
            Outcome::Sent {
                status,
                provider_id,
            } => {
                inner.outbox.remove(&key);
                let m = inner
                    .messages
                    .get_mut(&key)
                    .expect("outbox rows have messages");
                m.status = *status;
                let channel = m.channel.clone();
                if let Some(pid) = provider_id {
                    inner
                        .receipts
                        .insert((req.tenant.clone(), channel, pid.clone()), req.message);
                }
            }
            Outcome::Retry { at, error } => {
                let row = inner.outbox.get_mut(&key).expect("checked above");
                row.attempts += 1;
                row.next_attempt_at = *at;
                row.error = Some(error.clone());
                row.owner = None;
            }
            Outcome::Dead { error } => {
                let row = inner.outbox.get_mut(&key).expect("checked above");
                row.attempts += 1;
                row.dead = true;
                row.error = Some(error.clone());
                if let Some(m) = inner.messages.get_mut(&key) {
                    m.status = DeliveryStatus::Failed;
                }
            }
        }
        Ok(())
    }

    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>> {
        let inner = self.lock();
        Ok(inner
            .outbox
            .iter()
            .filter(|((t, id), row)| {
                t == &query.tenant && row.dead && query.after.is_none_or(|a| *id > a)
            })
            .take(page(query.limit))
            .map(|(key, row)| DeadLetter {
                message: inner.messages[key].clone(),
                attempts: row.attempts,
                error: row.error.clone().unwrap_or_default(),
            })
            .collect())
    }

    async fn apply_receipt(&self, receipt: &Receipt) -> Result<Option<MessageId>> {
        let mut inner = self.lock();
        let t = &receipt.tenant;
        let Some(id) = inner
            .receipts
            .get(&(
                t.clone(),
                receipt.channel.clone(),
                receipt.provider_id.clone(),
            ))
            .copied()
        else {
            return Ok(None);
        };
        if let Some(m) = inner.messages.get_mut(&(t.clone(), id))
            && status_advances(m.status, receipt.status)
        {
            m.status = receipt.status;
        }
        Ok(Some(id))
    }

    async fn set_delivery_status(&self, change: &StatusChange) -> Result<()> {
        let mut inner = self.lock();
        let m = inner
            .messages
            .get_mut(&(change.tenant.clone(), change.message))
            .ok_or_else(|| Error::not_found("message", change.message))?;
        m.status = change.status;
        Ok(())
    }
}
