//! Runs the conversation-store conformance suite against every backend in this crate: memory,
//! SQLite (a file and `:memory:`), and PostgreSQL when `CS_TEST_POSTGRES_URL` is set (in a schema
//! of its own, so runs sharing the database never see each other's tables).

use cs_core::conformance;
use cs_core::store::MemoryStore;

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_file_store_conforms() {
    let dir = std::env::temp_dir().join(format!("cs-core-test-{}", uuid::Uuid::new_v4()));
    let store = cs_core::store::SqliteStore::open(dir.join("store.db"))
        .await
        .unwrap();
    conformance::run(&store).await;
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_memory_store_conforms() {
    let store = cs_core::store::SqliteStore::open(":memory:").await.unwrap();
    conformance::run(&store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_survives_reopen_and_refuses_newer_schema() {
    use cs_core::store::{CustomerStore, ResolveCustomer};
    use cs_core::{ChannelKind, Identity, TenantId};

    let dir = std::env::temp_dir().join(format!("cs-core-test-{}", uuid::Uuid::new_v4()));
    let path = dir.join("reopen.db");
    let req = ResolveCustomer::new(
        TenantId::default(),
        Identity::new(ChannelKind::Sms, "+8613800138000"),
        chrono::Utc::now(),
    );
    let id = {
        let store = cs_core::store::SqliteStore::open(&path).await.unwrap();
        store.resolve_customer(&req).await.unwrap().customer.id
    };
    let store = cs_core::store::SqliteStore::open(&path).await.unwrap();
    let again = store.resolve_customer(&req).await.unwrap();
    assert!(!again.created, "data survives a reopen");
    assert_eq!(again.customer.id, id);

    sqlx::query("INSERT INTO cs_schema_migrations (component, version, name) VALUES ('conversations', 99, 'future')")
        .execute(store.writer())
        .await
        .unwrap();
    drop(store);
    let err = cs_core::store::SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, cs_core::Error::InvalidInput { .. }),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_conforms() {
    let Some(url) = conformance::postgres_url("cs_core_conformance").await else {
        eprintln!("skipping postgres_store_conforms: set CS_TEST_POSTGRES_URL to run it");
        return;
    };
    let store = cs_core::store::PostgresStore::connect(&url).await.unwrap();
    conformance::run(&store).await;
}
