//! What the agent's workbench asks of the engine besides the conversation itself.

use super::*;

impl Engine {
    /// Who asks the shop when an agent looks up `customer`'s orders (a canned reply's
    /// `{order.status}`): that customer, with the phone numbers they proved, so the shop
    /// adapter answers with their own orders only, as it does for the bot.
    pub async fn order_asker(&self, customer: cs_core::CustomerId) -> cs_bot::Asker {
        let mut asker = cs_bot::Asker::new(self.inner.tenant.clone(), customer);
        for phone in self.verified_phones(customer).await {
            asker = asker.with_verified_phone(phone);
        }
        asker
    }
}
