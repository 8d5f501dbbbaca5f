//! What supervisors and the REST API add to an agent's own actions: internal notes and moving a
//! conversation from one agent to another (transfer, take-over).

use super::*;

impl Engine {
    /// Adds a note only agents see to a conversation: by its agent, or by `on_behalf` a
    /// supervisor (`own` false lets anyone of the tenant write it; callers check roles).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty text; [`Error::Forbidden`] when `own` is true and
    /// the conversation is not assigned to `agent`; store errors (not found).
    pub async fn add_note(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        text: &str,
        own: bool,
    ) -> Result<Message> {
        if text.trim().is_empty() {
            return Err(Error::invalid("a note needs a text"));
        }
        let conv = if own {
            self.own_conversation(agent, conversation).await?
        } else {
            self.inner
                .store
                .conversation(&self.inner.tenant, conversation)
                .await?
        };
        self.store_internal(&conv, Author::Agent { agent }, text.to_owned())
            .await
    }

    /// Moves an assigned conversation to agent `to` (a transfer, or a supervisor's take-over
    /// when `to` is themselves): it goes back to the queue and `to` takes it out of turn. When
    /// `to` has no room it stays queued, first in line for whoever is free.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] for `to`; [`Error::Conflict`]-like router errors when `to` cannot
    /// take it; [`Error::InvalidInput`] when the conversation is not assigned.
    pub async fn transfer(&self, conversation: ConversationId, to: AgentId) -> Result<()> {
        if self.agent(to).is_none() {
            return Err(Error::UnknownAgent(to.to_string()));
        }
        let conv = self
            .inner
            .store
            .conversation(&self.inner.tenant, conversation)
            .await?;
        let Some(from) = conv
            .assignee
            .filter(|_| conv.state == ConversationState::Assigned)
        else {
            return Err(Error::invalid(format!(
                "conversation {conversation} is not assigned to anyone"
            )));
        };
        if from == to {
            return Ok(());
        }
        self.requeue_from(from, &conv).await?;
        self.take_from_queue(to, conversation).await
    }
}
