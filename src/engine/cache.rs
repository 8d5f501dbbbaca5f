//! What the engine keeps in memory so that a returning customer's message needs no store read:
//! who owns an identity, each customer's profile and active conversation, and the last messages
//! of each active conversation (the bot's history).
//!
//! Every change the engine makes goes through it (write-through), so it is exact for a desk
//! whose conversations this engine alone changes: one process on SQLite, or an embedder that
//! changes customers and conversations only through the engine. Several processes sharing a
//! PostgreSQL database turn it off ([`crate::EngineBuilder::with_hot_cache`]); then every read
//! goes to the store.
//!
//! Memory is bounded: each map holds at most [`CAPACITY`] entries and starts afresh when full
//! (the next reads warm it again).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use cs_core::{Conversation, ConversationId, Customer, CustomerId, Identity, Message};

/// The most entries of each map.
pub(super) const CAPACITY: usize = 20_000;
/// How many of a conversation's latest messages are kept.
pub(super) const RECENT: usize = 24;

/// The hot state (see the module docs). All methods are no-ops when it is turned off.
#[derive(Debug)]
pub(super) struct HotCache {
    enabled: bool,
    inner: Mutex<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    owners: HashMap<Identity, CustomerId>,
    profiles: HashMap<CustomerId, Customer>,
    active: HashMap<CustomerId, Conversation>,
    /// The latest messages of a conversation, oldest first, when known.
    recent: HashMap<ConversationId, VecDeque<Message>>,
    /// The phone numbers each customer proved (the bot's order lookups), when known.
    verified: HashMap<CustomerId, Vec<String>>,
}

fn bounded<K, V>(map: &mut HashMap<K, V>) {
    if map.len() >= CAPACITY {
        map.clear();
    }
}

impl HotCache {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            inner: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Maps) -> T) -> Option<T> {
        self.enabled
            .then(|| f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// The customer who owns `identity`, if known.
    pub(super) fn owner(&self, identity: &Identity) -> Option<Customer> {
        self.with(|m| {
            let id = m.owners.get(identity)?;
            m.profiles.get(id).cloned()
        })
        .flatten()
    }

    /// Remembers that `identity` belongs to `customer` (and the customer's profile).
    pub(super) fn put_owner(&self, identity: &Identity, customer: &Customer) {
        self.with(|m| {
            bounded(&mut m.owners);
            bounded(&mut m.profiles);
            m.owners.insert(identity.clone(), customer.id);
            m.profiles.insert(customer.id, customer.clone());
        });
    }

    /// A customer's profile changed.
    pub(super) fn put_profile(&self, customer: &Customer) {
        self.with(|m| {
            if let Some(p) = m.profiles.get_mut(&customer.id) {
                *p = customer.clone();
            }
        });
    }

    /// A customer's active conversation, if known.
    pub(super) fn active(&self, customer: CustomerId) -> Option<Conversation> {
        self.with(|m| m.active.get(&customer).cloned()).flatten()
    }

    /// A conversation as it now stands: kept while active, forgotten once it ends.
    pub(super) fn put_conversation(&self, c: &Conversation) {
        self.with(|m| {
            if c.state.is_active() {
                bounded(&mut m.active);
                m.active.insert(c.customer, c.clone());
            } else {
                if m.active.get(&c.customer).is_some_and(|a| a.id == c.id) {
                    m.active.remove(&c.customer);
                }
                m.recent.remove(&c.id);
            }
        });
    }

    /// The latest `n` messages of a conversation, oldest first, when known (`n` at most
    /// [`RECENT`]).
    pub(super) fn recent(&self, conversation: ConversationId, n: usize) -> Option<Vec<Message>> {
        if n > RECENT {
            return None;
        }
        self.with(|m| {
            let list = m.recent.get(&conversation)?;
            Some(
                list.iter()
                    .skip(list.len().saturating_sub(n))
                    .cloned()
                    .collect(),
            )
        })
        .flatten()
    }

    /// The latest messages of a conversation as read from the store (at most [`RECENT`] asked:
    /// fewer means that is all of them).
    pub(super) fn put_recent(&self, conversation: ConversationId, messages: &[Message]) {
        self.with(|m| {
            bounded(&mut m.recent);
            let keep = messages.len().saturating_sub(RECENT);
            m.recent
                .insert(conversation, messages[keep..].iter().cloned().collect());
        });
    }

    /// A message was stored: it joins its conversation's latest, in id (time) order.
    pub(super) fn push_message(&self, message: &Message) {
        self.with(|m| {
            let Some(list) = m.recent.get_mut(&message.conversation) else {
                return;
            };
            if list.iter().any(|x| x.id == message.id) {
                return;
            }
            let at = list.partition_point(|x| x.id < message.id);
            list.insert(at, message.clone());
            while list.len() > RECENT {
                list.pop_front();
            }
        });
    }

    /// Customers were merged or unmerged, identities linked: who owns what and which
    /// conversations are active is read again from the store.
    pub(super) fn forget_customers(&self) {
        self.with(|m| {
            m.owners.clear();
            m.profiles.clear();
            m.active.clear();
            m.verified.clear();
        });
    }

    /// The phone numbers `customer` proved, if known.
    pub(super) fn verified_phones(&self, customer: CustomerId) -> Option<Vec<String>> {
        self.with(|m| m.verified.get(&customer).cloned()).flatten()
    }

    /// Remembers the phone numbers `customer` proved (as read from the store).
    pub(super) fn put_verified_phones(&self, customer: CustomerId, phones: &[String]) {
        self.with(|m| {
            bounded(&mut m.verified);
            m.verified.insert(customer, phones.to_vec());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cs_core::{ChannelId, ChannelKind, Content, TenantId};

    fn conversation() -> Conversation {
        let at = chrono::Utc::now();
        Conversation {
            id: ConversationId::new(),
            tenant: TenantId::default(),
            customer: CustomerId::new(),
            route: cs_core::Route {
                channel: ChannelId::new("webchat").unwrap(),
                identity: Identity::new(ChannelKind::WebChat, "v1"),
            },
            state: cs_core::ConversationState::Bot,
            priority: cs_core::Priority::Normal,
            skills: Vec::new(),
            assignee: None,
            created_at: at,
            updated_at: at,
            queued_at: None,
            version: 0,
        }
    }

    #[test]
    fn the_latest_messages_stay_in_order_and_bounded() {
        let cache = HotCache::new(true);
        let c = conversation();
        let msg = |i: usize| {
            Message::inbound(
                &c,
                c.route.channel.clone(),
                ChannelKind::WebChat,
                Content::text(format!("m{i}")),
                None,
                chrono::Utc::now(),
            )
        };
        assert!(cache.recent(c.id, 5).is_none(), "unknown until read once");
        let first: Vec<Message> = (0..3).map(msg).collect();
        cache.put_recent(c.id, &first);
        let later: Vec<Message> = (3..40).map(msg).collect();
        // Out of order and twice: the list stays in id order, without repeats.
        cache.push_message(&later[1]);
        cache.push_message(&later[0]);
        cache.push_message(&later[0]);
        for m in &later[2..] {
            cache.push_message(m);
        }
        let got = cache.recent(c.id, RECENT).unwrap();
        assert_eq!(got.len(), RECENT);
        assert_eq!(got.last().unwrap().id, later.last().unwrap().id);
        assert!(got.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(cache.recent(c.id, 2).unwrap().len(), 2);
        assert!(cache.recent(c.id, RECENT + 1).is_none());

        let mut ended = c.clone();
        ended.state = cs_core::ConversationState::Resolved;
        cache.put_conversation(&c);
        assert!(cache.active(c.customer).is_some());
        cache.put_conversation(&ended);
        assert!(cache.active(c.customer).is_none());
        assert!(
            cache.recent(c.id, 1).is_none(),
            "an ended conversation is forgotten"
        );
    }

    #[test]
    fn a_disabled_cache_knows_nothing() {
        let cache = HotCache::new(false);
        let c = conversation();
        cache.put_conversation(&c);
        assert!(cache.active(c.customer).is_none());
    }
}
