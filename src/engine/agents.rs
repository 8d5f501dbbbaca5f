//! What agents do: presence, replies, resolving, reply routes.

use super::*;

impl Engine {
    /// Registers or updates an agent's profile (skills, capacity, team). Presence is kept.
    ///
    /// # Errors
    /// Router errors for an invalid profile.
    pub async fn register_agent(&self, mut agent: Agent) -> Result<()> {
        agent.tenant = self.inner.tenant.clone();
        let known = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let presence = agents.get(&agent.id).map(|a| a.presence);
            agent.presence = presence.unwrap_or(Presence::Offline);
            agents.insert(agent.id, agent.clone());
            presence.is_some()
        };
        if known {
            let decisions = self.inner.router.upsert_agent(agent).await?;
            self.apply(decisions).await;
        }
        Ok(())
    }

    /// A registered agent.
    pub fn agent(&self, id: AgentId) -> Option<Agent> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every registered agent.
    pub fn agents(&self) -> Vec<Agent> {
        let mut v: Vec<Agent> = self
            .inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Sets an agent's presence; an agent going online takes waiting conversations.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`]; router errors.
    pub async fn set_presence(&self, agent: AgentId, presence: Presence) -> Result<()> {
        let profile = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let a = agents
                .get_mut(&agent)
                .ok_or_else(|| Error::UnknownAgent(agent.to_string()))?;
            a.presence = presence;
            a.clone()
        };
        self.emit(DomainEvent::AgentPresenceChanged { agent, presence });
        let decisions = self.inner.router.upsert_agent(profile).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// Shorthand for [`Engine::set_presence`] with [`Presence::Online`].
    ///
    /// # Errors
    /// As [`Engine::set_presence`].
    pub async fn sign_in(&self, agent: AgentId) -> Result<()> {
        self.set_presence(agent, Presence::Online).await
    }

    /// Sends an agent's reply in a conversation assigned to them. `client_id` (the console's id
    /// for the message) makes a double-sent reply count once.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not assigned to the agent;
    /// [`Error::InvalidInput`] for an empty text.
    pub async fn agent_reply(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        content: Content,
        client_id: Option<String>,
    ) -> Result<Message> {
        if matches!(&content, Content::Text { text } if text.trim().is_empty()) {
            return Err(Error::invalid("reply text is empty"));
        }
        let conv = self.own_conversation(agent, conversation).await?;
        let _guard = self.lock_customer(conv.customer).await;
        self.send_to_customer(
            &conv,
            Author::Agent { agent },
            content,
            client_id.map(|c| format!("agent:{c}")),
        )
        .await
    }

    /// The agent solved the conversation: it is resolved, the agent's capacity is freed, and the
    /// customer's next message opens a new conversation.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not assigned to the agent.
    pub async fn resolve(&self, agent: AgentId, conversation: ConversationId) -> Result<()> {
        let conv = self.own_conversation(agent, conversation).await?;
        let _guard = self.lock_customer(conv.customer).await;
        let resolved = self
            .update_conversation(conversation, |c| c.state = ConversationState::Resolved)
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation,
            from: ConversationState::Assigned,
            to: ConversationState::Resolved,
        });
        self.send_to_customer(
            &resolved,
            Author::System,
            Content::text(
                "会话已结束，感谢您的咨询 · This conversation has been resolved. Thank you!",
            ),
            None,
        )
        .await?;
        match self.inner.router.release(agent, conversation).await {
            Ok(decisions) => self.apply(decisions).await,
            // The router may not know the task (assigned before a restart): nothing to free.
            Err(cs_routing::Error::Conflict { .. } | cs_routing::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    pub(super) async fn own_conversation(
        &self,
        agent: AgentId,
        conversation: ConversationId,
    ) -> Result<Conversation> {
        let conv = self
            .inner
            .store
            .conversation(&self.inner.tenant, conversation)
            .await?;
        if conv.state != ConversationState::Assigned || conv.assignee != Some(agent) {
            return Err(Error::Forbidden {
                reason: format!("conversation {conversation} is not assigned to agent {agent}"),
            });
        }
        Ok(conv)
    }

    /// The conversations an agent has now, most recently active first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn agent_conversations(&self, agent: AgentId) -> Result<Vec<Conversation>> {
        Ok(self
            .inner
            .store
            .conversations(&ConversationQuery {
                tenant: self.inner.tenant.clone(),
                states: vec![ConversationState::Assigned],
                assignee: Some(agent),
                customer: None,
                limit: 200,
            })
            .await?)
    }

    /// Sends the rest of a conversation through another of the customer's identities (the
    /// customer asked to continue by email, say). By default replies go where the customer
    /// wrote last.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not the agent's;
    /// [`Error::InvalidInput`] when the identity is not the customer's or the channel is not of
    /// its kind; [`Error::UnknownChannel`].
    pub async fn set_reply_route(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        route: Route,
    ) -> Result<Conversation> {
        let conv = self.own_conversation(agent, conversation).await?;
        let channel = self
            .inner
            .channels
            .get(&route.channel)
            .ok_or_else(|| Error::UnknownChannel(route.channel.to_string()))?;
        if channel.info().kind != route.identity.kind {
            return Err(Error::invalid(format!(
                "channel {} cannot reach identity {}",
                route.channel, route.identity
            )));
        }
        let identities = self
            .inner
            .store
            .identities(&self.inner.tenant, conv.customer)
            .await?;
        if !identities.contains(&route.identity) {
            return Err(Error::invalid(format!(
                "{} is not an identity of this customer",
                route.identity
            )));
        }
        self.update_conversation(conversation, |c| c.route = route.clone())
            .await
    }
}
