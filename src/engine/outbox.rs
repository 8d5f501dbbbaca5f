//! Messages out: the outbox, delivery with retries, receipts, internal notes.

use super::*;

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

impl Engine {
    /// Stores an outbound message in the outbox, adapted to what the channel carries, and tries
    /// to deliver the conversation's due messages at once. A message that cannot go out now stays
    /// in the outbox (see [`Engine::flush_outbox`]); the stored message is returned either way.
    pub(super) async fn send_to_customer(
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

    pub(super) async fn flush(&self, conversation: Option<ConversationId>) -> Result<usize> {
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
    pub(super) async fn deliver(&self, claimed: Claimed) -> Result<()> {
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
        let finish = FinishOutbound {
            tenant: message.tenant.clone(),
            message: message.id,
            outcome,
        };
        self.inner.store.finish_outbound(&finish).await?;
        if let Outcome::Dead { error } = finish.outcome {
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
            .apply_receipt(&Receipt {
                tenant: self.inner.tenant.clone(),
                channel: channel.clone(),
                provider_id: update.provider_message_id.clone(),
                status: update.status,
            })
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
            .dead_letters(&DeadLetterQuery::new(self.inner.tenant.clone(), limit))
            .await?)
    }

    /// Stores a note only agents see.
    pub(super) async fn store_internal(
        &self,
        conversation: &Conversation,
        text: String,
    ) -> Result<Message> {
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
}
