//! The bot's turn, and the hand-over to a human.

use super::*;

impl Engine {
    /// The bot answers `message`; its hand-over (or its failure) queues the conversation.
    /// `urgency` is what the message's sentiment asks for.
    #[tracing::instrument(level = "debug", skip_all, fields(conversation = %conversation.id))]
    pub(super) async fn run_bot(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        message: &Message,
        urgency: Option<Priority>,
    ) {
        let wanted = self.inner.bot.history_len().max(1);
        let history = match self.recent_messages(conversation.id, wanted).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "history unavailable for the bot");
                vec![message.clone()]
            }
        };
        let input = BotInput {
            tenant: self.inner.tenant.clone(),
            conversation: conversation.id,
            customer: customer.id,
            text: message.content.plain_text(),
            history,
            verified_phones: self.verified_phones(customer.id).await,
        };
        let started = std::time::Instant::now();
        let clustered = self.is_clustered();
        // The customer's last message may have been answered on another node: the dialogue
        // goes on from where it was left there.
        let stored = clustered && self.load_dialogue(conversation.id).await;
        let answered = self.inner.bot.reply(&input).await;
        if clustered {
            self.save_dialogue(conversation.id, stored).await;
        }
        metrics::histogram!("omnidesk_bot_latency_seconds").record(started.elapsed());
        let reply = match answered {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, conversation = %conversation.id, "bot failed; handing over");
                cs_bot::BotReply {
                    handoff: Some(Handoff::new(
                        cs_bot::HandoffReason::NoAnswer,
                        format!("The bot failed ({e}). Customer wrote: {}", input.text),
                    )),
                    ..Default::default()
                }
            }
        };
        let reply = self.screen_bot_reply(conversation.id, reply);
        self.after_bot_turn(conversation, customer, &reply).await;
        for content in reply.contents() {
            if let Err(e) = self
                .send_to_customer(conversation, Author::Bot, content, None)
                .await
            {
                tracing::warn!(error = %e, "bot answer not stored");
            }
        }
        if let Some(intent) = &reply.intent {
            self.emit(DomainEvent::BotAnswered {
                conversation: conversation.id,
                intent: Some(intent.name.clone()),
                confidence: intent.confidence,
            });
        }
        let urgency = urgency.max(reply.sentiment.map(|s| s.priority()));
        if let Some(handoff) = reply.handoff
            && let Err(e) = self
                .hand_over(conversation, customer, handoff, urgency)
                .await
        {
            tracing::error!(error = %e, conversation = %conversation.id, "handoff failed");
        }
    }

    /// Queues a conversation for a human, leaving the bot's summary for the agent as an internal
    /// note so the customer never repeats themselves. The task's priority is the highest of
    /// what the bot asked, what the customer's sentiment asks and what their tier earns. When
    /// nobody is at work (outside business hours, no agent online) the request also becomes a
    /// ticket the customer can quote, and the conversation waits for the morning.
    #[tracing::instrument(skip_all, fields(conversation = %conversation.id))]
    pub(super) async fn hand_over(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        handoff: Handoff,
        urgency: Option<Priority>,
    ) -> Result<()> {
        let note = handoff.note();
        self.emit(DomainEvent::HandoffRequested {
            conversation: conversation.id,
            reason: handoff.reason.to_string(),
            summary: note.clone(),
        });
        self.store_internal(conversation, Author::System, note.clone())
            .await?;
        let tier = match customer.tier {
            cs_core::CustomerTier::Vip => Priority::High,
            _ => Priority::Low,
        };
        let urgency = Some(handoff.priority.max(tier))
            .max(urgency)
            .max(handoff.sentiment.map(|s| s.priority()));
        let queued = self
            .mark_queued(conversation, urgency, Some(handoff.skills.clone()))
            .await?;
        if let Some(hours) = self.closed_now() {
            self.leave_message(&queued, &handoff, &note, &hours).await?;
            self.enqueue(&queued, customer, Entry::Handoff).await?;
            return Ok(());
        }
        if self.enqueue(&queued, customer, Entry::Handoff).await? == Routed::Waiting {
            self.announce_place(&queued).await?;
        }
        Ok(())
    }

    /// Puts a conversation in the queued state with its priority (never lowered) and skills.
    pub(super) async fn mark_queued(
        &self,
        conversation: &Conversation,
        priority: Option<Priority>,
        skills: Option<Vec<String>>,
    ) -> Result<Conversation> {
        let now = self.inner.clock.now();
        let queued = self
            .update_conversation(conversation.id, |c| {
                // A new wait starts now; a conversation already waiting keeps its place.
                if c.state != ConversationState::Queued || c.queued_at.is_none() {
                    c.queued_at = Some(now);
                }
                c.state = ConversationState::Queued;
                if let Some(p) = priority {
                    c.priority = c.priority.max(p);
                }
                if let Some(s) = &skills {
                    c.skills = s.clone();
                }
            })
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation: conversation.id,
            from: conversation.state,
            to: ConversationState::Queued,
        });
        Ok(queued)
    }

    /// A queued conversation becomes more urgent (the customer got angrier while waiting): it
    /// moves up in the queue, keeping the time it started waiting.
    pub(super) async fn raise_priority(
        &self,
        conversation: &Conversation,
        to: Priority,
        reason: &str,
    ) -> Result<()> {
        let raised = self
            .update_conversation(conversation.id, |c| c.priority = c.priority.max(to))
            .await?;
        if raised.priority == conversation.priority {
            return Ok(());
        }
        self.emit(DomainEvent::PriorityChanged {
            conversation: conversation.id,
            from: conversation.priority,
            to: raised.priority,
            reason: reason.to_owned(),
        });
        let decisions = self
            .inner
            .router
            .reprioritize(
                conversation.id,
                cs_routing::Reprioritize::to(raised.priority),
            )
            .await;
        match decisions {
            Ok(d) => self.apply(d).await,
            // Offered or assigned meanwhile: the new priority matters no more.
            Err(cs_routing::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The business hours' label when nobody is at work: outside the configured hours and no
    /// agent online.
    fn closed_now(&self) -> Option<String> {
        let hours = self.inner.settings.hours.as_ref()?;
        if hours.calendar.is_open(self.inner.clock.now()) {
            return None;
        }
        let anyone = self
            .inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|a| a.profile.presence == Presence::Online);
        (!anyone).then(|| hours.label.clone())
    }

    /// Outside business hours: the request becomes a ticket (its SLA clock runs on business
    /// time), and the customer learns its number and when agents are back.
    async fn leave_message(
        &self,
        conversation: &Conversation,
        handoff: &Handoff,
        note: &str,
        hours: &str,
    ) -> Result<()> {
        let subject = handoff
            .summary
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("留言 · Message left after hours")
            .chars()
            .take(80)
            .collect::<String>();
        let group = handoff
            .skills
            .iter()
            .find_map(|s| self.inner.settings.skill_teams.get(s).cloned());
        let ticket = self
            .create_ticket(conversation, &subject, Actor::System, None, group, note)
            .await?;
        let number = ticket.number.to_string();
        self.notify(
            conversation,
            Notice::AfterHours,
            &[("number", &number), ("hours", hours)],
        )
        .await
    }
}

impl Engine {
    /// Hands the bot the dialogue state stored with the conversation (none stored: it forgets
    /// what it held). Returns whether one was stored (or may be: unread). Several nodes only.
    async fn load_dialogue(&self, conversation: ConversationId) -> bool {
        match self
            .inner
            .store
            .bot_state(&self.inner.tenant, conversation)
            .await
        {
            Ok(state) => {
                let stored = state.is_some();
                self.inner.bot.restore_dialogue_state(conversation, state);
                stored
            }
            // The bot goes on with what this node holds.
            Err(e) => {
                tracing::warn!(error = %e, %conversation, "bot dialogue state not read");
                true
            }
        }
    }

    /// Stores the bot's dialogue state with the conversation after its turn (none left, e.g.
    /// after a hand-over: the stored one, if `stored`, is deleted; a bot that keeps no state
    /// costs no write). Several nodes only.
    async fn save_dialogue(&self, conversation: ConversationId, stored: bool) {
        let state = self.inner.bot.dialogue_state(conversation);
        if state.is_none() && !stored {
            return;
        }
        if let Err(e) = self
            .inner
            .store
            .save_bot_state(&self.inner.tenant, conversation, state.as_ref())
            .await
        {
            tracing::warn!(error = %e, %conversation, "bot dialogue state not saved");
        }
    }
}
