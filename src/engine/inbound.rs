//! Stage 1: a customer message arrives. Resolve the sender, open the conversation, store the
//! message once, dispatch it (bot, queue or agent).

use super::voice::routed_call_skills;
use super::*;

impl Engine {
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

    #[tracing::instrument(level = "debug", skip_all, fields(channel = %msg.channel, conversation = tracing::field::Empty))]
    pub(super) async fn ingest(&self, msg: InboundMessage, wait: bool) -> Result<Delivered> {
        let channel = self
            .inner
            .channels
            .get(&msg.channel)
            .ok_or_else(|| Error::UnknownChannel(msg.channel.to_string()))?;
        let kind = channel.info().kind;
        let now = self.inner.clock.now();

        // 1. Who is writing. Their messages are stored one at a time; on one node the bot's turn
        // on the previous one need not be over (turns keep the order the messages were stored
        // in), across nodes the desk lock covers the whole turn.
        let customer = self.resolve_sender(&msg, now).await?;
        let (guard, appending) = if self.inner.desk_locks.is_some() {
            (Some(self.lock_customer(customer.id).await), None)
        } else {
            (None, Some(self.lock_appends(customer.id).await))
        };

        // 2. Their active conversation; replies go back where they wrote last.
        let route = Route {
            channel: msg.channel.clone(),
            identity: msg.from.clone(),
        };
        let mut open =
            OpenConversation::new(self.inner.tenant.clone(), customer.id, route.clone(), now);
        if let Some(id) = &msg.provider_message_id {
            open = open.unless_stored(msg.channel.clone(), id.clone());
        }
        let opened = match self.inner.cache.active(customer.id) {
            Some(conversation) => cs_core::store::Opened {
                conversation,
                created: false,
                duplicate: None,
            },
            None => self.inner.store.open_conversation(&open).await?,
        };
        if let Some(stored) = opened.duplicate {
            // A provider retry after the conversation ended: nothing is opened or stored.
            return Ok(self.duplicate(stored, msg.channel, msg.provider_message_id));
        }
        let (mut conversation, opened) = (opened.conversation, opened.created);
        tracing::Span::current().record("conversation", tracing::field::display(conversation.id));

        // 3. Store it once.
        let message = Message::inbound(
            &conversation,
            msg.channel.clone(),
            kind,
            msg.content,
            msg.provider_message_id.clone(),
            now,
        );
        let appended = self.inner.store.append_message(&message).await?;
        if let cs_core::store::Appended::Duplicate(stored) = appended {
            return Ok(self.duplicate(stored, msg.channel, msg.provider_message_id));
        }
        self.inner.cache.put_conversation(&conversation);
        self.inner.cache.push_message(&message);
        if opened {
            self.emit(DomainEvent::ConversationOpened {
                conversation: conversation.id,
                customer: customer.id,
                route: route.clone(),
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

        // 4. Dispatch: to the bot, the queue, or the agent who has it, in this message's turn
        // (reserved before the append lock is let go, so the customer's next message is stored
        // and acknowledged at once but answered after this one).
        let urgency = self.score_sentiment(&conversation, &message);
        let customer = self.learn_language(customer, &message).await;
        let turn = match appending {
            Some(appending) => {
                let turn = self.reserve_turn(customer.id).await;
                drop(appending);
                Some(turn)
            }
            None => None,
        };
        let engine = self.clone();
        let stored = message.clone();
        let dispatch = async move {
            let _guard = guard;
            let _turn = match turn {
                Some(turn) => Some(turn.wait().await),
                None => None,
            };
            // The turns before this one may have moved the conversation on (handed it over).
            let conversation = match engine.inner.cache.active(customer.id) {
                Some(c) if c.id == conversation.id => c,
                _ => match engine.conversation(conversation.id).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, message = %stored.id, "conversation unavailable; message not dispatched");
                        return;
                    }
                },
            };
            if let Err(e) = engine
                .dispatch(conversation, &customer, &stored, opened, urgency)
                .await
            {
                tracing::error!(error = %e, message = %stored.id, "dispatch failed");
            }
        };
        if wait {
            dispatch.await;
        } else {
            tokio::spawn(dispatch);
        }
        Ok(Delivered {
            message,
            duplicate: false,
        })
    }

    /// A provider retry of a message already stored: announced, and answered with the stored
    /// message.
    fn duplicate(
        &self,
        stored: Message,
        channel: ChannelId,
        provider_message_id: Option<String>,
    ) -> Delivered {
        self.emit(DomainEvent::DuplicateIgnored {
            channel,
            provider_message_id: provider_message_id.unwrap_or_default(),
        });
        Delivered {
            message: stored,
            duplicate: true,
        }
    }

    /// Who takes a stored customer message: the bot while it has the conversation (or a new
    /// conversation the router gives it), the queue (a calmer or angrier customer re-ranks
    /// their place), or the agent, who sees it on the event stream.
    #[tracing::instrument(level = "debug", skip_all, fields(conversation = %conversation.id))]
    async fn dispatch(
        &self,
        conversation: Conversation,
        customer: &Customer,
        message: &Message,
        opened: bool,
        urgency: Option<Priority>,
    ) -> Result<()> {
        match conversation.state {
            ConversationState::Bot => {
                // A call the voice menu routed goes straight to the queue it chose.
                if let Some(skills) = routed_call_skills(&message.content) {
                    let mut handoff = Handoff::new(
                        cs_bot::HandoffReason::CustomerRequest,
                        "Phone call routed by the voice menu.",
                    );
                    handoff.skills = skills;
                    return self
                        .hand_over(&conversation, customer, handoff, urgency)
                        .await;
                }
                if opened && self.inner.settings.reception == Reception::Router {
                    let queued = self.mark_queued(&conversation, urgency, None).await?;
                    match self.enqueue(&queued, customer, Entry::New).await? {
                        Routed::ToBot => {}
                        Routed::Taken => return Ok(()),
                        Routed::Waiting => return self.announce_place(&queued).await,
                    }
                }
                self.run_bot(&conversation, customer, message, urgency)
                    .await;
                Ok(())
            }
            ConversationState::Queued => match urgency {
                Some(p) if p > conversation.priority => {
                    self.raise_priority(&conversation, p, "sentiment").await
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Measures the sentiment of a customer's text and announces it; the priority it asks for
    /// when it asks for more than normal.
    fn score_sentiment(&self, conversation: &Conversation, message: &Message) -> Option<Priority> {
        let Content::Text { text } = &message.content else {
            return None;
        };
        let s = cs_bot::sentiment(text);
        let priority = s.priority();
        self.emit(DomainEvent::SentimentScored {
            conversation: conversation.id,
            message: message.id,
            score: s.score,
            polarity: s.polarity.as_str().to_owned(),
            emotion: s.emotion.as_str().to_owned(),
            priority,
        });
        (priority > Priority::Normal).then_some(priority)
    }

    /// A customer without a known language gets the one their first clear text is written in
    /// (routing matches agents' languages, notices follow it).
    async fn learn_language(&self, customer: Customer, message: &Message) -> Customer {
        if customer.language.is_some() {
            return customer;
        }
        let Content::Text { text } = &message.content else {
            return customer;
        };
        // A clear sign only: Chinese characters, or a sentence of three words or more (not a
        // "hi", an order number or an "ok").
        let words = text
            .split_whitespace()
            .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
            .count();
        if Lang::of_text(text) != Lang::Zh && words < 3 {
            return customer;
        }
        let mut updated = customer.clone();
        updated.language = Some(Lang::of_text(text).tag().to_owned());
        match self.inner.store.update_customer(&updated).await {
            Ok(()) => {
                self.inner.cache.put_profile(&updated);
                updated
            }
            Err(e) => {
                tracing::warn!(error = %e, customer = %customer.id, "language not saved");
                customer
            }
        }
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
        // The newest `limit` the customer can see, in one query.
        let visible = MessageQuery::new(
            self.inner.tenant.clone(),
            MessageScope::Customer(customer.id),
            limit,
        )
        .with_directions([Direction::Inbound, Direction::Outbound]);
        Ok(self.inner.store.recent_messages(&visible).await?)
    }

    async fn rate(
        &self,
        _channel: &ChannelId,
        identity: &Identity,
        rating: cs_channels::Rating,
    ) -> cs_channels::Result<cs_channels::Rated> {
        self.rate_conversation(identity, rating)
            .await
            .map_err(|e| match e {
                // The customer's own mistake (a score off the scale, not their conversation),
                // not the desk's failure.
                Error::InvalidInput { reason } => cs_channels::Error::invalid(reason),
                other => channel_error(other),
            })
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
