//! PostgreSQL plumbing (feature `postgres`): connection settings, the pool, the [`Dialect`] and
//! the error mapping.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres};

use sqlx::error::DatabaseError;

use super::Dialect;
use crate::error::{Error, Result};

/// How to reach a PostgreSQL server. `Debug` hides the password.
#[derive(Clone, serde::Deserialize)]
pub struct PgConfig {
    /// A `postgres://user:password@host:port/database` URL.
    pub url: String,
    /// The most connections in the pool (default 10).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a free connection, in seconds (default 10).
    #[serde(default = "default_acquire_timeout")]
    pub acquire_timeout_secs: u64,
}

fn default_max_connections() -> u32 {
    10
}

fn default_acquire_timeout() -> u64 {
    10
}

impl PgConfig {
    /// Default settings for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: default_max_connections(),
            acquire_timeout_secs: default_acquire_timeout(),
        }
    }

    /// Sets the pool size.
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .finish()
    }
}

/// `url` with the password (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Opens a connection pool.
///
/// # Errors
/// [`Error::InvalidInput`] for a malformed URL; [`Error::Unavailable`] when the server cannot
/// be reached.
pub async fn connect(config: &PgConfig) -> Result<PgPool> {
    let opts: PgConnectOptions = config
        .url
        .parse()
        .map_err(|e| Error::invalid(format!("postgres url: {e}")))?;
    PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
        .connect_with(opts)
        .await
        .map_err(Postgres::map_error)
}

/// PostgreSQL locks the rows a transaction decides on (several processes share the database) and
/// reads JSON arrays with `jsonb_array_elements_text`; migrations take an advisory lock.
impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_SHARE: &'static str = " FOR SHARE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const MULTI_STATEMENT: bool = false;
    const NOW_COLUMN: &'static str = "TIMESTAMPTZ NOT NULL DEFAULT now()";
    // One lock for every component: migrations may create shared objects (extensions).
    const MIGRATION_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7253411906)");
    const SERIAL_WRITES: bool = false;

    fn json_list(n: usize) -> String {
        format!("(SELECT jsonb_array_elements_text(CAST(${n} AS jsonb)))")
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn classify(db: &dyn DatabaseError) -> Option<Error> {
        let reason = db.message().to_owned();
        match db.code().as_deref()? {
            // serialization_failure, deadlock_detected: try again.
            "40001" | "40P01" => Some(Error::Conflict { reason }),
            // admin_shutdown, cannot_connect_now, too_many_connections
            "57P01" | "57P03" | "53300" => Some(Error::Unavailable { reason }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let c = PgConfig::new("postgres://desk:s3cret@db.internal:5432/desk");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("desk:***@db.internal"), "{shown}");
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
