//! Start-up: rebuild the router from the store, moving nothing. Conversations that agents hold
//! stay theirs (the router counts them against their capacity); an agent who does not come back
//! within the grace period loses them to the queue. Waiting conversations wait again at their
//! place. No notice is sent again.

use super::*;

impl Engine {
    pub(super) async fn recover(&self) -> Result<()> {
        // Every agent is known to the router, signed out, before their conversations are.
        for entry in self.agents() {
            let decisions = self.inner.router.upsert_agent(entry).await?;
            self.apply(decisions).await;
        }
        let active = self
            .page_conversations(vec![ConversationState::Queued, ConversationState::Assigned])
            .await?;
        let now = self.inner.clock.now();
        // Oldest first, so the queue is rebuilt in its order.
        for conv in active.into_iter().rev() {
            let customer = self
                .inner
                .store
                .customer(&self.inner.tenant, conv.customer)
                .await?;
            match (conv.state, conv.assignee) {
                (ConversationState::Assigned, Some(agent)) if self.agent(agent).is_some() => {
                    let task = self.task_for(&conv, &customer).await?;
                    self.inner.router.restore(agent, task).await?;
                    let mut agents = self.inner.agents.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(a) = agents.get_mut(&agent) {
                        a.offline_since.get_or_insert(now);
                    }
                }
                (ConversationState::Assigned, _) => {
                    // Its agent is no longer configured.
                    let queued = self
                        .update_conversation(conv.id, |c| {
                            c.state = ConversationState::Queued;
                            c.assignee = None;
                        })
                        .await?;
                    self.enqueue(&queued, &customer, Entry::Reclaim).await?;
                }
                _ => {
                    self.enqueue(&conv, &customer, Entry::Requeue).await?;
                }
            }
        }
        Ok(())
    }

    /// Every conversation in `states`, most recently updated first.
    async fn page_conversations(
        &self,
        states: Vec<ConversationState>,
    ) -> Result<Vec<Conversation>> {
        Ok(self
            .inner
            .store
            .conversations(&ConversationQuery {
                tenant: self.inner.tenant.clone(),
                states,
                assignee: None,
                customer: None,
                limit: cs_core::store::MAX_PAGE,
            })
            .await?)
    }
}
