//! Stage 1: a customer message arrives. Resolve the sender, open the conversation, store the
//! message once, dispatch it (bot, queue or agent).

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

    pub(super) async fn ingest(&self, msg: InboundMessage, wait: bool) -> Result<Delivered> {
        let channel = self
            .inner
            .channels
            .get(&msg.channel)
            .ok_or_else(|| Error::UnknownChannel(msg.channel.to_string()))?;
        let now = self.inner.clock.now();
        let tenant = self.inner.tenant.clone();

        // 1. Who is writing: a known identity, a new one joining the customer of an identity
        // that proves the same key (the store decides, in one step), or a new customer.
        let resolved = self
            .inner
            .store
            .resolve_customer(&ResolveCustomer {
                tenant: tenant.clone(),
                identity: msg.from.clone(),
                display_name: msg.display_name.clone(),
                language: msg.language.clone(),
                shared_key: identity::shared_key(&msg.from),
                at: now,
            })
            .await?;
        let customer = resolved.customer;
        if resolved.created {
            self.emit(DomainEvent::CustomerCreated {
                customer: customer.id,
                identity: msg.from.clone(),
            });
        }
        if resolved.joined {
            self.emit(DomainEvent::IdentityLinked {
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
