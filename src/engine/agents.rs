//! What agents do: presence, replies, resolving, reply routes.

use super::*;

/// An agent as the engine knows them: the profile, and since when they are signed out.
#[derive(Debug, Clone)]
pub(super) struct AgentEntry {
    pub(super) profile: Agent,
    /// Set while signed out and holding conversations that may go back to the queue.
    pub(super) offline_since: Option<chrono::DateTime<chrono::Utc>>,
}

impl Engine {
    /// Registers or updates an agent's profile (skills, capacity, team). Presence is kept.
    ///
    /// # Errors
    /// Router errors for an invalid profile.
    pub async fn register_agent(&self, mut agent: Agent) -> Result<()> {
        agent.tenant = self.inner.tenant.clone();
        agent.presence = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let entry = agents.entry(agent.id).or_insert_with(|| AgentEntry {
                profile: agent.clone(),
                offline_since: None,
            });
            let presence = entry.profile.presence;
            entry.profile = Agent {
                presence,
                ..agent.clone()
            };
            presence
        };
        let decisions = self.router().upsert_agent(agent).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// A registered agent.
    pub fn agent(&self, id: AgentId) -> Option<Agent> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|e| e.profile.clone())
    }

    /// Every registered agent.
    pub fn agents(&self) -> Vec<Agent> {
        let mut v: Vec<Agent> = self
            .inner
            .agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.profile.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Sets an agent's presence; an agent going online takes waiting conversations. An agent who
    /// signs out keeps their conversations for the grace period
    /// ([`crate::engine::DeskSettings::reclaim_after`]); after it they go back to the queue.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`]; router errors.
    pub async fn set_presence(&self, agent: AgentId, presence: Presence) -> Result<()> {
        let now = self.inner.clock.now();
        let profile = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let a = agents
                .get_mut(&agent)
                .ok_or_else(|| Error::UnknownAgent(agent.to_string()))?;
            a.profile.presence = presence;
            a.offline_since = (presence == Presence::Offline).then_some(now);
            a.profile.clone()
        };
        // Several nodes: the presence store knows before the rest of the desk does.
        self.share_presence(agent, presence).await;
        self.emit(DomainEvent::AgentPresenceChanged { agent, presence });
        let decisions = self.router().upsert_agent(profile).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// The router set the agent away (they let too many offers lapse); they stay away until
    /// they say otherwise.
    pub(super) fn set_away_by_router(&self, agent: AgentId) -> Result<()> {
        {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            let a = agents
                .get_mut(&agent)
                .ok_or_else(|| Error::UnknownAgent(agent.to_string()))?;
            a.profile.presence = Presence::Away;
            a.offline_since = None;
        }
        self.emit(DomainEvent::AgentPresenceChanged {
            agent,
            presence: Presence::Away,
        });
        Ok(())
    }

    /// Shorthand for [`Engine::set_presence`] with [`Presence::Online`].
    ///
    /// # Errors
    /// As [`Engine::set_presence`].
    pub async fn sign_in(&self, agent: AgentId) -> Result<()> {
        self.set_presence(agent, Presence::Online).await
    }

    /// An agent (or a supervisor for them) takes a waiting conversation out of turn: the human
    /// choice overrides skills, language and team, never the agent's capacity or presence.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`]; router errors: [`cs_routing::Error::NotFound`] when the
    /// conversation is not waiting, [`cs_routing::Error::Conflict`] when it is offered to
    /// someone else or the agent has no room.
    pub async fn take_from_queue(
        &self,
        agent: AgentId,
        conversation: ConversationId,
    ) -> Result<()> {
        if self.agent(agent).is_none() {
            return Err(Error::UnknownAgent(agent.to_string()));
        }
        let decisions = self.router().pick(agent, conversation).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// Agents signed out for longer than the grace period lose their conversations to the
    /// queue, each keeping the time it first started waiting.
    pub(super) async fn requeue_absent_agents(&self) -> Result<()> {
        if !self.routes_here() {
            // The router's owner reclaims (every node sees who signed out).
            return Ok(());
        }
        let now = self.inner.clock.now();
        let grace = self.inner.settings.reclaim_after;
        let absent: Vec<AgentId> = {
            let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
            agents
                .values_mut()
                .filter(|a| a.offline_since.is_some_and(|t| now - t >= grace))
                .map(|a| {
                    a.offline_since = None;
                    a.profile.id
                })
                .collect()
        };
        for agent in absent {
            for conversation in self.agent_conversations(agent).await? {
                if let Err(e) = self.requeue_from(agent, &conversation).await {
                    tracing::error!(error = %e, %agent, conversation = %conversation.id, "not re-queued");
                }
            }
        }
        Ok(())
    }

    /// Takes a conversation from an agent and puts it back in the queue.
    pub(super) async fn requeue_from(
        &self,
        agent: AgentId,
        conversation: &Conversation,
    ) -> Result<()> {
        let _guard = self.lock_customer(conversation.customer).await;
        let customer = self
            .inner
            .store
            .customer(&self.inner.tenant, conversation.customer)
            .await?;
        let queued = self
            .update_conversation(conversation.id, |c| {
                c.state = ConversationState::Queued;
                c.assignee = None;
            })
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation: conversation.id,
            from: conversation.state,
            to: ConversationState::Queued,
        });
        match self.router().release(agent, conversation.id).await {
            Ok(decisions) => self.apply(decisions).await,
            Err(cs_routing::Error::Conflict { .. } | cs_routing::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.enqueue(&queued, &customer, Entry::Reclaim).await?;
        Ok(())
    }

    /// Sends an agent's reply in a conversation assigned to them. `client_id` (the console's id
    /// for the message) makes a double-sent reply count once.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the conversation is not assigned to the agent;
    /// [`Error::InvalidInput`] for an empty text; [`Error::Compliance`] when the text holds a
    /// phrase the tenant's rules block, or one they warn about (the agent may then confirm:
    /// [`Engine::agent_reply_confirmed`]).
    #[tracing::instrument(skip_all, fields(conversation = %conversation))]
    pub async fn agent_reply(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        content: Content,
        client_id: Option<String>,
    ) -> Result<Message> {
        self.reply_as_agent(agent, conversation, content, client_id, false)
            .await
    }

    /// [`Engine::agent_reply`] after the agent has seen the compliance warnings of this text
    /// and confirmed it: warnings no longer hold it back (they are audited as sent after a
    /// warning); blocking phrases still do.
    ///
    /// # Errors
    /// As [`Engine::agent_reply`].
    pub async fn agent_reply_confirmed(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        content: Content,
        client_id: Option<String>,
    ) -> Result<Message> {
        self.reply_as_agent(agent, conversation, content, client_id, true)
            .await
    }

    async fn reply_as_agent(
        &self,
        agent: AgentId,
        conversation: ConversationId,
        content: Content,
        client_id: Option<String>,
        confirmed: bool,
    ) -> Result<Message> {
        if matches!(&content, Content::Text { text } if text.trim().is_empty()) {
            return Err(Error::invalid("reply text is empty"));
        }
        let conv = self.own_conversation(agent, conversation).await?;
        self.comply(
            conversation,
            Author::Agent { agent },
            &content.plain_text(),
            confirmed,
        )?;
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
    #[tracing::instrument(skip_all, fields(conversation = %conversation))]
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
        self.notify(&resolved, Notice::Resolved, &[]).await?;
        match self.router().release(agent, conversation).await {
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
