//! Start-up, after a clean stop or a crash:
//!
//! 1. the outbox claims this node's previous process held are released (it is dead; what it was
//!    sending is due at once instead of after the claims' lease);
//! 2. the router is rebuilt from the store, moving nothing. Conversations that agents hold stay
//!    theirs (the router counts them against their capacity); an agent who does not come back
//!    within the grace period loses them to the queue. Waiting conversations wait again at their
//!    place. No notice is sent again;
//! 3. bot turns a crash interrupted are run again: every conversation in the bot's hands whose
//!    newest message is the customer's (a turn that finished left an answer, a note or a
//!    hand-over after it, so a finished turn is never answered twice).

use super::*;

impl Engine {
    pub(super) async fn recover(&self) -> Result<()> {
        self.release_dead_claims().await?;
        if !self.is_clustered() {
            self.rebuild_router().await?;
            self.redo_bot_turns().await?;
        }
        // On a node of several, the node that takes the router rebuilds it and runs the
        // interrupted bot turns again.
        Ok(())
    }

    /// Releases the outbox claims of this node's previous (dead) process.
    async fn release_dead_claims(&self) -> Result<()> {
        let Some(node) = &self.inner.node else {
            return Ok(());
        };
        let released = self
            .inner
            .store
            .release_claims(&ReleaseClaims {
                tenant: self.inner.tenant.clone(),
                owner: node.clone(),
                now: self.inner.clock.now(),
            })
            .await?;
        if released > 0 {
            tracing::info!(
                released,
                node = %node,
                "released the outbox claims of this node's previous process"
            );
        }
        Ok(())
    }

    /// Runs the bot again on the customer message each unanswered bot conversation ends with,
    /// in the background, holding the customer's lock (their next message waits behind it).
    pub(super) async fn redo_bot_turns(&self) -> Result<()> {
        let tenant = &self.inner.tenant;
        let mut query = UnansweredQuery::new(tenant.clone(), cs_core::store::MAX_PAGE);
        loop {
            let page = self.inner.store.unanswered(&query).await?;
            for conversation in &page {
                let customer = self
                    .inner
                    .store
                    .customer(tenant, conversation.customer)
                    .await?;
                let last = MessageQuery::new(
                    tenant.clone(),
                    MessageScope::Conversation(conversation.id),
                    1,
                )
                .newest_first();
                let Some(message) = self.inner.store.messages(&last).await?.pop() else {
                    continue;
                };
                tracing::info!(conversation = %conversation.id, message = %message.id, "bot turn interrupted by a stop; running it again");
                let guard = self.lock_customer(customer.id).await;
                // Another node may have answered meanwhile (its turn finished under the lock).
                if self.is_clustered()
                    && self.inner.store.messages(&last).await?.pop().map(|m| m.id)
                        != Some(message.id)
                {
                    continue;
                }
                let (engine, conversation) = (self.clone(), conversation.clone());
                tokio::spawn(async move {
                    let _guard = guard;
                    engine
                        .run_bot(&conversation, &customer, &message, None)
                        .await;
                });
            }
            match page.last() {
                Some(last) if page.len() == cs_core::store::MAX_PAGE => query.after = Some(last.id),
                _ => return Ok(()),
            }
        }
    }

    /// Rebuilds the router from the conversations waiting or with agents.
    pub(super) async fn rebuild_router(&self) -> Result<()> {
        // Every agent is known to the router, signed out, before their conversations are.
        for entry in self.agents() {
            let decisions = self.router().upsert_agent(entry).await?;
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
                    self.router().restore(agent, task).await?;
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
