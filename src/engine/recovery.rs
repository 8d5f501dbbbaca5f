//! Start-up: rebuild the router from the store.

use super::*;

impl Engine {
    pub(super) async fn requeue_after_restart(&self) -> Result<()> {
        let waiting = self
            .inner
            .store
            .conversations(&ConversationQuery {
                tenant: self.inner.tenant.clone(),
                states: vec![ConversationState::Queued, ConversationState::Assigned],
                assignee: None,
                customer: None,
                limit: cs_core::store::MAX_PAGE,
            })
            .await?;
        for conv in waiting.into_iter().rev() {
            let customer = self
                .inner
                .store
                .customer(&self.inner.tenant, conv.customer)
                .await?;
            let previous = conv.assignee;
            let conv = if conv.state == ConversationState::Assigned {
                self.update_conversation(conv.id, |c| c.state = ConversationState::Queued)
                    .await?
            } else {
                conv
            };
            self.enqueue(&conv, &customer, previous).await?;
        }
        Ok(())
    }
}
