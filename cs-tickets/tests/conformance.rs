//! Every ticket store in this crate runs the same conformance suite.

use std::sync::Arc;

use cs_tickets::{MemoryTicketStore, conformance};

#[tokio::test]
async fn memory_ticket_store_conforms() {
    conformance::run(Arc::new(MemoryTicketStore::new())).await;
}
