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
    #[tracing::instrument(skip_all, fields(conversation = %conversation.id))]
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
        let info = channel.info();
        let message = Message::outbound(
            conversation,
            info.kind,
            author,
            info.capabilities.adapt(content),
            self.inner.clock.now(),
        )
        .with_provider_id(client_id);
        let appended = self
            .inner
            .store
            .append_outbound(&message, &route.identity)
            .await?;
        if appended.is_duplicate() {
            return Ok(appended.message().clone());
        }
        self.inner.cache.push_message(&message);
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
                    owner: self.inner.node.clone(),
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
    #[tracing::instrument(skip_all, fields(conversation = %claimed.message.conversation))]
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
                metrics::counter!("omnidesk_outbox_retries_total").increment(1);
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

    /// Sends the customer one of the engine's own notices, worded in their language, when their
    /// channel carries text (a phone call does not: nothing is sent, nothing dead-letters).
    pub(super) async fn notify(
        &self,
        conversation: &Conversation,
        notice: Notice,
        values: &[(&str, &str)],
    ) -> Result<()> {
        let carries_text = self
            .inner
            .channels
            .get(&conversation.route.channel)
            .is_some_and(|c| c.info().capabilities.supports(cs_core::ContentKind::Text));
        if !carries_text {
            tracing::debug!(conversation = %conversation.id, ?notice, "the channel carries no text; notice skipped");
            return Ok(());
        }
        let lang = self.language_of(conversation).await;
        let text = self.inner.settings.texts.render(notice, lang, values);
        self.send_to_customer(conversation, Author::System, Content::text(text), None)
            .await?;
        Ok(())
    }

    /// Stores a note only agents see.
    pub(super) async fn store_internal(
        &self,
        conversation: &Conversation,
        author: Author,
        text: String,
    ) -> Result<Message> {
        let message = Message::internal(
            conversation,
            author,
            Content::text(text),
            self.inner.clock.now(),
        );
        self.inner.store.append_message(&message).await?;
        self.inner.cache.push_message(&message);
        self.emit(DomainEvent::MessageSent {
            message: message.clone(),
        });
        Ok(message)
    }
}
