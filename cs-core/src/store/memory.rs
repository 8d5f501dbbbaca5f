//! The in-memory conversation store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Appended, ClaimOutbound, Claimed, ConversationQuery, ConversationStore, DeadLetter, Merge,
    MergeCustomers, MessageQuery, MessageScope, OpenConversation, Opened, Outcome, ResolveCustomer,
    Resolved, new_conversation, new_customer, page, status_advances,
};
use crate::channel::{Identity, IdentityLink, LinkOrigin};
use crate::conversation::{Conversation, ConversationState};
use crate::customer::Customer;
use crate::error::{Error, Result};
use crate::id::{ChannelId, ConversationId, CustomerId, MergeId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Message};

/// A [`ConversationStore`] in process memory: for tests, demos and single-process deployments
/// that need no durability.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cs_core::store::{ConversationStore, MemoryStore, ResolveCustomer};
/// use cs_core::{ChannelKind, Identity, TenantId};
///
/// let store = MemoryStore::new();
/// let req = ResolveCustomer {
///     tenant: TenantId::default(),
///     identity: Identity::new(ChannelKind::Email, "ann@example.com"),
///     display_name: Some("Ann".into()),
///     language: None,
///     at: chrono::Utc::now(),
/// };
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
}

#[derive(Debug, Clone)]
struct Link {
    customer: CustomerId,
    origin: LinkOrigin,
    at: DateTime<Utc>,
}

#[derive(Debug)]
struct OutboxRow {
    to: Identity,
    conversation: ConversationId,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    dead: bool,
    error: Option<String>,
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
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn resolve_customer(&self, req: &ResolveCustomer) -> Result<Resolved> {
        let mut inner = self.lock();
        let key = (req.tenant.clone(), req.identity.clone());
        if let Some(link) = inner.identities.get(&key) {
            let customer = inner.customers[&(req.tenant.clone(), link.customer)].clone();
            return Ok(Resolved {
                customer,
                created: false,
            });
        }
        let customer = new_customer(req);
        inner.identities.insert(
            key,
            Link {
                customer: customer.id,
                origin: LinkOrigin::FirstContact,
                at: req.at,
            },
        );
        inner
            .customers
            .insert((req.tenant.clone(), customer.id), customer.clone());
        Ok(Resolved {
            customer,
            created: true,
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
        self.lock()
            .customers
            .get(&(tenant.clone(), id))
            .cloned()
            .ok_or_else(|| Error::not_found("customer", id))
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

    async fn link_identity(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        identity: &Identity,
        origin: &LinkOrigin,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut inner = self.lock();
        if !inner.customers.contains_key(&(tenant.clone(), customer)) {
            return Err(Error::not_found("customer", customer));
        }
        let key = (tenant.clone(), identity.clone());
        match inner.identities.get(&key) {
            Some(link) if link.customer == customer => Ok(()),
            Some(_) => Err(Error::conflict(format!(
                "identity {identity} belongs to another customer"
            ))),
            None => {
                inner.identities.insert(
                    key,
                    Link {
                        customer,
                        origin: origin.clone(),
                        at,
                    },
                );
                Ok(())
            }
        }
    }

    async fn identities(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        Ok(self
            .identity_links(tenant, customer)
            .await?
            .into_iter()
            .map(|l| l.identity)
            .collect())
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
            .map(|((_, i), l)| IdentityLink {
                identity: i.clone(),
                origin: l.origin.clone(),
                linked_at: l.at,
            })
            .collect();
        out.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(out)
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
                identities.push(IdentityLink {
                    identity: identity.clone(),
                    origin: link.origin.clone(),
                    linked_at: link.at,
                });
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

    async fn unmerge(&self, tenant: &TenantId, merge: MergeId, at: DateTime<Utc>) -> Result<Merge> {
        let mut inner = self.lock();
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
        slot.undone_at = Some(at);
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
            });
        }
        let conversation = new_conversation(req);
        inner
            .conversations
            .insert((req.tenant.clone(), conversation.id), conversation.clone());
        Ok(Opened {
            conversation,
            created: true,
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
        let start = query
            .after
            .map_or(MessageId::from_uuid(uuid::Uuid::nil()), |a| a);
        let customer = match query.scope {
            // A conversation's messages through its index.
            MessageScope::Conversation(c) => {
                let Some(ids) = inner.by_conversation.get(&(query.tenant.clone(), c)) else {
                    return Ok(Vec::new());
                };
                return Ok(ids
                    .range(start..)
                    .filter(|id| Some(**id) != query.after)
                    .take(page(query.limit))
                    .map(|id| inner.messages[&(query.tenant.clone(), *id)].clone())
                    .collect());
            }
            MessageScope::Customer(c) => c,
        };
        Ok(inner
            .messages
            .range((query.tenant.clone(), start)..)
            .map(|(_, m)| m)
            .take_while(|m| m.tenant == query.tenant)
            .filter(|m| Some(m.id) != query.after && m.customer == customer)
            .take(page(query.limit))
            .cloned()
            .collect())
    }

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
                },
            );
        }
        Ok(appended)
    }

    async fn claim_outbound(&self, req: &ClaimOutbound) -> Result<Vec<Claimed>> {
        let mut inner = self.lock();
        let mut seen = std::collections::HashSet::new();
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
            let (attempts, to) = (row.attempts, row.to.clone());
            out.push(Claimed {
                message: inner.messages[&(req.tenant.clone(), id)].clone(),
                to,
                attempts,
            });
        }
        Ok(out)
    }

    async fn finish_outbound(
        &self,
        tenant: &TenantId,
        message: MessageId,
        outcome: &Outcome,
    ) -> Result<()> {
        let mut inner = self.lock();
        let key = (tenant.clone(), message);
        if inner.outbox.get(&key).is_none_or(|r| r.dead) {
            return Err(Error::not_found("outbox message", message));
        }
        match outcome {
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
                        .insert((tenant.clone(), channel, pid.clone()), message);
                }
            }
            Outcome::Retry { at, error } => {
                let row = inner.outbox.get_mut(&key).expect("checked above");
                row.attempts += 1;
                row.next_attempt_at = *at;
                row.error = Some(error.clone());
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

    async fn dead_letters(&self, tenant: &TenantId, limit: usize) -> Result<Vec<DeadLetter>> {
        let inner = self.lock();
        Ok(inner
            .outbox
            .iter()
            .filter(|((t, _), row)| t == tenant && row.dead)
            .take(page(limit))
            .map(|(key, row)| DeadLetter {
                message: inner.messages[key].clone(),
                attempts: row.attempts,
                error: row.error.clone().unwrap_or_default(),
            })
            .collect())
    }

    async fn apply_receipt(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_id: &str,
        status: DeliveryStatus,
    ) -> Result<Option<MessageId>> {
        let mut inner = self.lock();
        let Some(id) = inner
            .receipts
            .get(&(tenant.clone(), channel.clone(), provider_id.to_owned()))
            .copied()
        else {
            return Ok(None);
        };
        if let Some(m) = inner.messages.get_mut(&(tenant.clone(), id))
            && status_advances(m.status, status)
        {
            m.status = status;
        }
        Ok(Some(id))
    }

    async fn set_delivery_status(
        &self,
        tenant: &TenantId,
        message: MessageId,
        status: DeliveryStatus,
    ) -> Result<()> {
        let mut inner = self.lock();
        let m = inner
            .messages
            .get_mut(&(tenant.clone(), message))
            .ok_or_else(|| Error::not_found("message", message))?;
        m.status = status;
        Ok(())
    }
}
