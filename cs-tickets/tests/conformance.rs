//! Every ticket store runs the same conformance suite: in memory, SQLite (a file and
//! `:memory:`), and PostgreSQL when `CS_TEST_POSTGRES_URL` is set (in a schema of its own, so
//! runs of other builds sharing the database never see each other's tables).

use std::sync::Arc;

use cs_tickets::{MemoryTicketStore, conformance};

#[tokio::test]
async fn memory_ticket_store_conforms() {
    conformance::run(&MemoryTicketStore::new()).await;
    conformance::run_sla(Arc::new(
        MemoryTicketStore::new().with_sla(conformance::sla_policy()),
    ))
    .await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_ticket_store_conforms() {
    use cs_tickets::SqliteTicketStoreBuilder;
    let dir = std::env::temp_dir().join(format!("cs-tickets-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("tickets.db");
    conformance::run(&SqliteTicketStoreBuilder::new(&path).build().await.unwrap()).await;
    // Reopening the same file with an SLA policy: migrations are already applied.
    let store = SqliteTicketStoreBuilder::new(&path)
        .with_sla(conformance::sla_policy())
        .build()
        .await
        .unwrap();
    conformance::run_sla(Arc::new(store)).await;
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_memory_ticket_store_conforms() {
    use cs_tickets::SqliteTicketStoreBuilder;
    let store = SqliteTicketStoreBuilder::new(":memory:")
        .with_sla(conformance::sla_policy())
        .build()
        .await
        .unwrap();
    conformance::run(&store).await;
    conformance::run_sla(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_ticket_store_conforms() {
    use cs_tickets::PostgresTicketStoreBuilder;
    let Some(url) = cs_core::conformance::postgres_url("cs_tickets_conformance").await else {
        eprintln!("skipping postgres_ticket_store_conforms: set CS_TEST_POSTGRES_URL to run it");
        return;
    };
    let store = PostgresTicketStoreBuilder::new(url)
        .with_sla(conformance::sla_policy())
        .build()
        .await
        .unwrap();
    conformance::run(&store).await;
    conformance::run_sla(Arc::new(store)).await;
}
