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
    #[tracing::instrument(level = "debug", skip_all, fields(conversation = %conversation.id))]
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
        // Stored and, when nothing older of the conversation waits, claimed for this attempt
        // in the same write.
        let (appended, claimed) = self
            .inner
            .store
            .append_and_claim(
                &message,
                &route.identity,
                &self.claim_request(Some(conversation.id)),
            )
            .await?;
        if appended.is_duplicate() {
            return Ok(appended.message().clone());
        }
        self.inner.cache.push_message(&message);
        self.emit(DomainEvent::MessageSent {
            message: message.clone(),
        });
        self.deliver_in_turn(claimed, Some(conversation.id)).await?;
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
        let claimed = self
            .inner
            .store
            .claim_outbound(&self.claim_request(conversation))
            .await?;
        self.deliver_in_turn(claimed, conversation).await
    }

    /// A claim of the due outbox messages (of one conversation, or all), leased to this node.
    fn claim_request(&self, conversation: Option<ConversationId>) -> ClaimOutbound {
        let now = self.inner.clock.now();
        ClaimOutbound {
            tenant: self.inner.tenant.clone(),
            now,
            lease_until: now + self.inner.outbox.lease,
            conversation,
            limit: 64,
            owner: self.inner.node.clone(),
        }
    }

    /// Delivers `claimed`, then whatever is due next, until nothing is: the last outcome of each
    /// round is stored together with the next claim (one write, not two).
    async fn deliver_in_turn(
        &self,
        mut claimed: Vec<Claimed>,
        conversation: Option<ConversationId>,
    ) -> Result<usize> {
        let mut attempts = 0;
        while !claimed.is_empty() {
            let last = claimed.len() - 1;
            let mut next = Vec::new();
            for (i, c) in claimed.into_iter().enumerate() {
                attempts += 1;
                let (of, finish) = self.attempt(c).await;
                if i == last {
                    next = self
                        .inner
                        .store
                        .finish_and_claim(&finish, Some(&self.claim_request(conversation)))
                        .await?;
                } else {
                    self.inner.store.finish_outbound(&finish).await?;
                }
                self.finished(of, finish);
            }
            claimed = next;
        }
        Ok(attempts)
    }

    /// Announces a delivery that failed for good, once its outcome is stored.
    fn finished(&self, conversation: ConversationId, finish: FinishOutbound) {
        if let Outcome::Dead { error } = finish.outcome {
            self.emit(DomainEvent::DeliveryFailed {
                conversation,
                message: finish.message,
                reason: error,
            });
        }
    }

    /// One delivery attempt of a claimed outbox message: its conversation and its outcome, to
    /// be stored.
    #[tracing::instrument(level = "debug", skip_all, fields(conversation = %claimed.message.conversation))]
    async fn attempt(&self, claimed: Claimed) -> (ConversationId, FinishOutbound) {
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
        (message.conversation, finish)
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
