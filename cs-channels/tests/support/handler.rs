//! An engine stand-in for channel tests: stores messages, de-duplicates on the provider message
//! id, and keeps one conversation per thread context (a new one when the channel names none).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use cs_channels::{Delivered, InboundContext, InboundHandler, InboundMessage, OutboundMessage};
use cs_core::{
    AgentId, Author, ChannelId, ChannelKind, Content, ConversationId, CustomerId, DeliveryStatus,
    Direction, Identity, Message, MessageId, TenantId,
};

#[derive(Debug, Default)]
pub(crate) struct TestEngine {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    messages: Vec<Message>,
    contexts: Vec<InboundContext>,
    by_thread: HashMap<String, ConversationId>,
    customers: HashMap<Identity, CustomerId>,
}

impl TestEngine {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Every stored message, in order.
    pub(crate) fn messages(&self) -> Vec<Message> {
        self.inner.lock().unwrap().messages.clone()
    }

    /// The contexts the channel passed, in order.
    pub(crate) fn contexts(&self) -> Vec<InboundContext> {
        self.inner.lock().unwrap().contexts.clone()
    }

    fn store(&self, m: InboundMessage, conversation: Option<ConversationId>) -> Delivered {
        let mut inner = self.inner.lock().unwrap();
        if let Some(existing) = inner.messages.iter().find(|s| {
            s.channel == m.channel
                && s.provider_message_id.is_some()
                && s.provider_message_id == m.provider_message_id
        }) {
            return Delivered {
                message: existing.clone(),
                duplicate: true,
            };
        }
        let customer = *inner.customers.entry(m.from.clone()).or_default();
        let message = Message {
            id: MessageId::new(),
            tenant: TenantId::new("test").unwrap(),
            conversation: conversation.unwrap_or_default(),
            customer,
            channel: m.channel,
            channel_kind: m.from.kind,
            direction: Direction::Inbound,
            author: Author::Customer,
            content: m.content,
            provider_message_id: m.provider_message_id,
            status: DeliveryStatus::Pending,
            created_at: Utc::now(),
        };
        inner.messages.push(message.clone());
        Delivered {
            message,
            duplicate: false,
        }
    }
}

#[async_trait]
impl InboundHandler for TestEngine {
    async fn handle(&self, message: InboundMessage) -> cs_channels::Result<Delivered> {
        Ok(self.store(message, None))
    }

    async fn handle_with(
        &self,
        message: InboundMessage,
        context: InboundContext,
    ) -> cs_channels::Result<Delivered> {
        let conversation = {
            let mut inner = self.inner.lock().unwrap();
            inner.contexts.push(context.clone());
            context.conversation.or_else(|| {
                context
                    .thread
                    .as_ref()
                    .and_then(|t| inner.by_thread.get(t).copied())
            })
        };
        let delivered = self.store(message, conversation);
        if let Some(t) = context.thread {
            self.inner
                .lock()
                .unwrap()
                .by_thread
                .entry(t)
                .or_insert(delivered.message.conversation);
        }
        Ok(delivered)
    }

    async fn history(
        &self,
        channel: &ChannelId,
        identity: &Identity,
        limit: usize,
    ) -> cs_channels::Result<Vec<Message>> {
        let inner = self.inner.lock().unwrap();
        let customer = inner.customers.get(identity).copied();
        let all: Vec<Message> = inner
            .messages
            .iter()
            .filter(|m| &m.channel == channel && Some(m.customer) == customer)
            .cloned()
            .collect();
        let skip = all.len().saturating_sub(limit);
        Ok(all.into_iter().skip(skip).collect())
    }
}

/// An agent's text reply in `conversation` to the email address `to`.
pub(crate) fn outbound(conversation: ConversationId, to: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        message: Message {
            id: MessageId::new(),
            tenant: TenantId::new("test").unwrap(),
            conversation,
            customer: CustomerId::new(),
            channel: ChannelId::new("email").unwrap(),
            channel_kind: ChannelKind::Email,
            direction: Direction::Outbound,
            author: Author::Agent {
                agent: AgentId::new(),
            },
            content: Content::text(text),
            provider_message_id: None,
            status: DeliveryStatus::Pending,
            created_at: Utc::now(),
        },
        to: Identity::new(ChannelKind::Email, to),
    }
}
