//! Opening the PostgreSQL conversation store: several processes share one database.

use sqlx::{PgPool, Postgres};

use super::SqlStore;
use crate::error::Result;
use crate::sql::postgres::{PgConfig, connect};

/// A [`crate::store::ConversationStore`] in PostgreSQL, safe for many processes sharing one
/// database.
pub type PostgresStore = SqlStore<Postgres>;

/// Configures a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    config: PgConfig,
    pool: Option<PgPool>,
}

impl PostgresStoreBuilder {
    /// A store in the database at `url` (`postgres://user:password@host:port/database`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            config: PgConfig::new(url),
            pool: None,
        }
    }

    /// A store with the given connection settings.
    pub fn with_config(mut self, config: PgConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses an existing pool (shared with other components) instead of opening one.
    pub fn with_pool(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when the server is out of reach;
    /// [`crate::Error::InvalidInput`] for a bad URL or a schema newer than this build.
    pub async fn build(self) -> Result<PostgresStore> {
        let pool = match self.pool {
            Some(p) => p,
            None => connect(&self.config).await?,
        };
        SqlStore::migrated(pool.clone(), pool).await
    }
}

impl SqlStore<Postgres> {
    /// Connects to `url` with default settings; see [`PostgresStoreBuilder`].
    ///
    /// # Errors
    /// As [`PostgresStoreBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self> {
        PostgresStoreBuilder::new(url).build().await
    }

    /// The connection pool, for components that keep their tables in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.writer
    }
}
