//! The PostgreSQL ticket store (feature `postgres`): several processes share one database.

use cs_core::sql::postgres::{PgConfig, connect};
use cs_core::sql::{Arg, Migration};
use sqlx::{PgPool, Postgres};

use super::{SqlTicketStore, TicketDialect, like_pattern};
use crate::error::Result;
use crate::sla::SlaPolicy;

/// A [`crate::TicketStore`] in PostgreSQL.
pub type PostgresTicketStore = SqlTicketStore<Postgres>;

/// The schema, in order. Full-text search is a `pg_trgm` GIN index over the lower-cased
/// `search_text` (substrings, so Chinese works without word segmentation).
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "tickets, comments, audit trail, trigram index",
    sql: concat!(
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;\n",
        "CREATE TABLE cs_ticket_counters (tenant TEXT PRIMARY KEY, last BIGINT NOT NULL);\n",
        "CREATE TABLE cs_tickets (rid BIGSERIAL PRIMARY KEY,",
        super::ticket_tables!(),
        "CREATE INDEX cs_tickets_text ON cs_tickets USING gin (search_text gin_trgm_ops);\n",
    ),
}];

/// Full text: `LIKE` on the trigram-indexed text (PostgreSQL scans when the needle is shorter
/// than a trigram).
impl TicketDialect for Postgres {
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;

    fn text_filter(n: usize, needle: &str) -> (String, Arg) {
        (
            format!("search_text LIKE ${n} ESCAPE '\\'"),
            Arg::Text(like_pattern(needle)),
        )
    }
}

/// Configures a [`PostgresTicketStore`].
#[derive(Debug, Clone)]
pub struct PostgresTicketStoreBuilder {
    config: PgConfig,
    pool: Option<PgPool>,
    sla: Option<SlaPolicy>,
}

impl PostgresTicketStoreBuilder {
    /// A store in the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            config: PgConfig::new(url),
            pool: None,
            sla: None,
        }
    }

    /// Connection settings.
    pub fn with_config(mut self, config: PgConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses an existing pool (e.g. the conversation store's, `PostgresStore::pool()`).
    pub fn with_pool(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Runs SLA clocks on every ticket with `policy`.
    pub fn with_sla(mut self, policy: SlaPolicy) -> Self {
        self.sla = Some(policy);
        self
    }

    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when the server is out of reach;
    /// [`crate::Error::InvalidInput`] for a bad URL or a schema newer than this build.
    pub async fn build(self) -> Result<PostgresTicketStore> {
        let pool = match self.pool {
            Some(p) => p,
            None => connect(&self.config).await?,
        };
        SqlTicketStore::migrated(pool.clone(), pool, self.sla).await
    }
}

impl SqlTicketStore<Postgres> {
    /// Connects to `url` without SLA policy; see [`PostgresTicketStoreBuilder`].
    ///
    /// # Errors
    /// As [`PostgresTicketStoreBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self> {
        PostgresTicketStoreBuilder::new(url).build().await
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.writer
    }
}
