//! The small traits the crates declare for each other's services, implemented here over the real
//! services, so each crate stays usable on its own (conventions: crates never depend on each
//! other; the facade wires them).

use std::sync::Arc;

use async_trait::async_trait;
use cs_bot::{TicketLookup, TicketSummary};
use cs_core::{CustomerId, TenantId};
use cs_tickets::TicketDesk;

/// The bot's ticket lookup over the ticket desk: a customer sees their own tickets only (another
/// customer's ticket looks exactly like a missing one).
#[derive(Debug, Clone)]
pub struct DeskTicketLookup {
    desk: Arc<TicketDesk>,
}

impl DeskTicketLookup {
    /// Looks tickets up in `desk`.
    pub fn new(desk: Arc<TicketDesk>) -> Self {
        Self { desk }
    }
}

#[async_trait]
impl TicketLookup for DeskTicketLookup {
    async fn ticket(
        &self,
        tenant: &TenantId,
        number: u64,
        customer: CustomerId,
    ) -> cs_bot::Result<Option<TicketSummary>> {
        match self.desk.customer_status(tenant, number, customer).await {
            Ok(view) => Ok(Some(TicketSummary {
                number: view.number,
                subject: view.subject,
                status: view.status.to_string(),
                updated_at: view.updated_at,
            })),
            Err(cs_tickets::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(cs_bot::Error::Unavailable {
                reason: e.to_string(),
            }),
        }
    }
}
