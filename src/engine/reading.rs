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

    /// The language to speak to a conversation's customer in: their profile's, else the one
    /// their latest text is written in, else Chinese.
    pub(super) async fn language_of(&self, conversation: &Conversation) -> Lang {
        let profile = self
            .inner
            .store
            .customer(&self.inner.tenant, conversation.customer)
            .await
            .ok()
            .and_then(|c| c.language)
            .and_then(|l| Lang::from_tag(&l));
        if let Some(lang) = profile {
            return lang;
        }
        let recent = self
            .recent_messages(conversation.id, 20)
            .await
            .unwrap_or_default();
        recent
            .iter()
            .rev()
            .filter(|m| m.direction == Direction::Inbound)
            .find_map(|m| match &m.content {
                Content::Text { text } => Some(Lang::of_text(text)),
                _ => None,
            })
            .unwrap_or(Lang::Zh)
    }

    /// The last `n` messages of a conversation, oldest first (one newest-first query).
    pub(super) async fn recent_messages(
        &self,
        conversation: ConversationId,
        n: usize,
    ) -> Result<Vec<Message>> {
        if let Some(known) = self.inner.cache.recent(conversation, n) {
            return Ok(known);
        }
        let wanted = n.max(cache::RECENT);
        let recent = self
            .inner
            .store
            .recent_messages(&MessageQuery::new(
                self.inner.tenant.clone(),
                MessageScope::Conversation(conversation),
                wanted,
            ))
            .await?;
        self.inner.cache.put_recent(conversation, &recent);
        Ok(recent[recent.len().saturating_sub(n)..].to_vec())
    }
}
