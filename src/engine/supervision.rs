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
    /// when `to` is themselves): the router frees the current agent's slot and counts the
    /// conversation as `to`'s, the store and the event stream say so, and the customer is told
    /// who joined. A human decision: like [`Engine::take_from_queue`] it overrides skills, and
    /// it may leave `to` above their capacity.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] for `to`; [`Error::InvalidInput`] when the conversation is not
    /// assigned; store and router errors.
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
        let customer = self
            .inner
            .store
            .customer(&self.inner.tenant, conv.customer)
            .await?;
        match self.inner.router.release(from, conversation).await {
            Ok(decisions) => self.apply(decisions).await,
            // Not counted by the router (assigned before a restart): nothing to free.
            Err(cs_routing::Error::Conflict { .. } | cs_routing::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let task = self.task_for(&conv, &customer).await?;
        self.inner.router.restore(to, task).await?;
        self.assign(conversation, to).await
    }
}
