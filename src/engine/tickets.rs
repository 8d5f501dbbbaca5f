//! Tickets opened from conversations.

use super::*;

impl Engine {
    pub(super) fn emit_ticket_event(&self, e: cs_tickets::TicketEvent) {
        let detail = serde_json::to_value(&e.kind).unwrap_or_default();
        let change = detail["type"].as_str().unwrap_or("changed").to_owned();
        self.emit(DomainEvent::TicketUpdated {
            ticket: e.ticket,
            number: e.number,
            change,
            detail,
        });
    }

    /// Opens a ticket from a conversation the agent has: linked to the conversation and the
    /// customer, assigned to the agent, with the conversation so far as its description; the
    /// customer is told the number to quote.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not the agent's; ticket store errors
    /// ([`cs_tickets::Error::InvalidInput`] for an empty subject).
    pub async fn open_ticket(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        subject: &str,
        group: Option<String>,
    ) -> Result<Ticket> {
        let conv = self.own_conversation(agent, conversation).await?;
        let transcript: Vec<String> = self
            .recent_messages(conv.id, 20)
            .await?
            .iter()
            .filter(|m| m.direction != Direction::Internal)
            .map(|m| format!("{}: {}", m.author.role(), m.content.plain_text()))
            .collect();
        let ticket = self
            .create_ticket(
                &conv,
                subject,
                Actor::Agent { agent },
                Some(agent),
                group,
                &transcript.join("\n"),
            )
            .await?;
        let number = ticket.number.to_string();
        self.notify(&conv, Notice::TicketOpened, &[("number", &number)])
            .await?;
        Ok(ticket)
    }

    /// Opens a ticket linked to a conversation and its customer, and announces it.
    pub(super) async fn create_ticket(
        &self,
        conversation: &Conversation,
        subject: &str,
        by: Actor,
        assignee: Option<AgentId>,
        group: Option<String>,
        description: &str,
    ) -> Result<Ticket> {
        let mut new = NewTicket::new(
            self.inner.tenant.clone(),
            subject,
            by,
            self.inner.clock.now(),
        );
        new.description = Some(description.to_owned()).filter(|d| !d.trim().is_empty());
        new.priority = conversation.priority;
        new.group = group.or_else(|| Some("service".into()));
        new.assignee = assignee;
        new.customer = Some(conversation.customer);
        new.conversation = Some(conversation.id);
        let ticket = self.inner.desk.store().create(new).await?;
        self.emit(DomainEvent::TicketOpened {
            ticket: ticket.id,
            number: ticket.number,
            conversation: Some(conversation.id),
        });
        Ok(ticket)
    }

    /// Records a customer's answer to a survey about a conversation (CSAT 1-5, NPS 0-10, customer
    /// effort 1-7) that the workbench or a channel collected, and announces it
    /// ([`DomainEvent::SurveyAnswered`], with the agent who had the conversation last).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a score off the survey's scale; store errors
    /// ([`cs_core::Error::NotFound`] for an unknown conversation).
    pub async fn record_survey(
        &self,
        conversation: ConversationId,
        survey: cs_core::Survey,
        score: u8,
        comment: Option<String>,
    ) -> Result<()> {
        if !survey.accepts(score) {
            let (lo, hi) = survey.range();
            return Err(Error::invalid(format!(
                "a {} answer is from {lo} to {hi}, not {score}",
                survey.as_str()
            )));
        }
        let conv = self.conversation(conversation).await?;
        self.emit(DomainEvent::SurveyAnswered {
            conversation,
            agent: conv.assignee,
            survey,
            score,
            comment: comment.filter(|c| !c.trim().is_empty()),
        });
        Ok(())
    }

    /// A customer's tickets, newest first.
    ///
    /// # Errors
    /// Ticket store errors.
    pub async fn customer_tickets(&self, customer: cs_core::CustomerId) -> Result<Vec<Ticket>> {
        Ok(self
            .inner
            .desk
            .store()
            .search(&TicketQuery {
                tenant: self.inner.tenant.clone(),
                customer: Some(customer),
                limit: 50,
                ..Default::default()
            })
            .await?)
    }
}
