//! Routing: queue a conversation, carry out the router's decisions.

use super::*;

impl Engine {
    pub(super) async fn enqueue(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        preferred_agent: Option<AgentId>,
    ) -> Result<()> {
        let mut task = Task::new(
            conversation.id,
            conversation.route.identity.kind,
            self.inner.clock.now(),
        );
        task.requirements = conversation
            .skills
            .iter()
            .map(|s| SkillRequirement::new(s.clone(), 1))
            .collect();
        task.language = customer
            .language
            .as_ref()
            .map(|l| l.split('-').next().unwrap_or(l).to_lowercase());
        task.priority = conversation.priority;
        task.tier = customer.tier;
        task.preferred_agent = preferred_agent;
        self.emit(DomainEvent::Queued {
            conversation: conversation.id,
            priority: conversation.priority,
        });
        let decisions = self.inner.router.enqueue(task).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// Carries out router decisions.
    pub(super) async fn apply(&self, decisions: Vec<Decision>) {
        for d in decisions {
            let result = match d {
                Decision::Assigned { task, agent } => self.assign(task, agent).await,
                other => {
                    tracing::debug!(decision = ?other, "decision not acted on by this engine");
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "routing decision not applied");
            }
        }
    }

    pub(super) async fn assign(&self, conversation: ConversationId, agent: AgentId) -> Result<()> {
        let before = self
            .update_conversation(conversation, |c| {
                c.state = ConversationState::Assigned;
                c.assignee = Some(agent);
            })
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation,
            from: ConversationState::Queued,
            to: ConversationState::Assigned,
        });
        self.emit(DomainEvent::AgentAssigned {
            conversation,
            agent,
        });
        let name = self.agent(agent).map(|a| a.name).unwrap_or_default();
        self.send_to_customer(
            &before,
            Author::System,
            Content::text(format!("{name} 已接入，为您服务 · {name} has joined")),
            None,
        )
        .await?;
        Ok(())
    }

    /// The router's queue and agents' loads.
    ///
    /// # Errors
    /// Router errors.
    pub async fn queue(&self) -> Result<Snapshot> {
        Ok(self.inner.router.snapshot().await?)
    }

    /// Lets time-dependent routing (aging, overflow, reservation time-outs) act; call it
    /// periodically or from a timer.
    ///
    /// # Errors
    /// Router errors.
    pub async fn tick(&self) -> Result<()> {
        let decisions = self.inner.router.tick(self.inner.clock.now()).await?;
        self.apply(decisions).await;
        for e in self.inner.desk.tick(&self.inner.tenant).await? {
            self.emit_ticket_event(e);
        }
        Ok(())
    }
}
