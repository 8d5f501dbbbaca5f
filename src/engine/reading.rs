//! Reading conversations, customers and histories.

use super::*;

impl Engine {
    /// A conversation.
    ///
    /// # Errors
    /// Store errors ([`cs_core::Error::NotFound`]).
    pub async fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        Ok(self
            .inner
            .store
            .conversation(&self.inner.tenant, id)
            .await?)
    }

    /// The customer with identities and full history across channels and conversations.
    ///
    /// # Errors
    /// Store errors.
    pub async fn customer_view(&self, customer: cs_core::CustomerId) -> Result<CustomerView> {
        let tenant = &self.inner.tenant;
        let profile = self.inner.store.customer(tenant, customer).await?;
        let identities = self.inner.store.identities(tenant, customer).await?;
        let history = self
            .inner
            .store
            .page_all(&MessageQuery::new(
                tenant.clone(),
                MessageScope::Customer(customer),
                cs_core::store::MAX_PAGE,
            ))
            .await?;
        Ok(CustomerView {
            customer: profile,
            identities,
            history,
        })
    }

    /// The last `n` messages of a conversation, oldest first (one newest-first query).
    pub(super) async fn recent_messages(
        &self,
        conversation: ConversationId,
        n: usize,
    ) -> Result<Vec<Message>> {
        Ok(self
            .inner
            .store
            .recent_messages(&MessageQuery::new(
                self.inner.tenant.clone(),
                MessageScope::Conversation(conversation),
                n,
            ))
            .await?)
    }
}
