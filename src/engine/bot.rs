//! The bot's turn, and the hand-over to a human.

use super::*;

impl Engine {
    pub(super) async fn run_bot(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        message: &Message,
    ) {
        let history = match self.recent_messages(conversation.id, BOT_HISTORY).await {
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
        };
        let reply = match self.inner.bot.reply(&input).await {
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
        for text in &reply.messages {
            if let Err(e) = self
                .send_to_customer(conversation, Author::Bot, Content::text(text.clone()), None)
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
        if let Some(handoff) = reply.handoff
            && let Err(e) = self.hand_over(conversation, customer, handoff).await
        {
            tracing::error!(error = %e, conversation = %conversation.id, "handoff failed");
        }
    }

    /// Queues a conversation for a human, leaving the bot's summary for the agent as an internal
    /// note so the customer never repeats themselves.
    pub(super) async fn hand_over(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        handoff: Handoff,
    ) -> Result<()> {
        let note = handoff.note();
        self.emit(DomainEvent::HandoffRequested {
            conversation: conversation.id,
            reason: handoff.reason.to_string(),
            summary: note.clone(),
        });
        self.store_internal(conversation, note).await?;
        let priority = handoff.priority.max(match customer.tier {
            cs_core::CustomerTier::Vip => Priority::High,
            _ => Priority::Low,
        });
        let queued = self
            .update_conversation(conversation.id, |c| {
                c.state = ConversationState::Queued;
                c.priority = priority;
                c.skills = handoff.skills.clone();
            })
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation: conversation.id,
            from: conversation.state,
            to: ConversationState::Queued,
        });
        self.enqueue(&queued, customer, None).await
    }
}
