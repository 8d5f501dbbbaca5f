//! Shared SQL plumbing for every SQL backend of the workspace: a schema-migration runner, pool
//! set-up and the one function that maps driver errors to [`crate::Error`].
//!
//! Migrations:
//! Each component (conversations, tickets, ...) owns an ordered list of [`Migration`]s. Applied
//! versions are recorded per component in `cs_schema_migrations`, each migration runs in its own
//! transaction, and a database that has a version this binary does not know is refused rather than
//! silently used.

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing within a component, starting at 1.
    pub version: i64,
    /// A short description.
    pub name: &'static str,
    /// The SQL to run (several statements allowed).
    pub sql: &'static str,
}

/// SQLite plumbing (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    use std::path::Path;
    use std::str::FromStr;
    use std::time::Duration;

    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use sqlx::{Row, SqlitePool};

    use super::Migration;
    use crate::error::{Error, Result};

    /// A writer pool with one connection (SQLite allows one writer at a time; queueing writers in
    /// the pool instead of in SQLite's busy handler avoids lock-upgrade deadlocks) and a reader
    /// pool for concurrent reads (WAL mode).
    #[derive(Debug, Clone)]
    pub struct Pools {
        /// The single-connection writer.
        pub writer: SqlitePool,
        /// Readers.
        pub reader: SqlitePool,
    }

    /// Opens (creating if missing) the database file at `path`, in WAL mode. The special path
    /// `:memory:` opens a private in-memory database shared by both pools.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file cannot be opened or created.
    pub async fn connect(path: &Path) -> Result<Pools> {
        if path.as_os_str() == ":memory:" {
            let opts = SqliteConnectOptions::from_str("sqlite::memory:")
                .map_err(map_error)?
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts)
                .await
                .map_err(map_error)?;
            return Ok(Pools {
                writer: pool.clone(),
                reader: pool,
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Unavailable {
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(map_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(map_error)?;
        Ok(Pools { writer, reader })
    }

    /// Maps a driver error to [`Error`]: unique violations become [`Error::Conflict`], pool and
    /// I/O failures [`Error::Unavailable`], the rest [`Error::Backend`].
    pub fn map_error(e: sqlx::Error) -> Error {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
                reason: db.message().to_owned(),
            },
            sqlx::Error::Database(db)
                if db.message().contains("database is locked") || db.message().contains("busy") =>
            {
                Error::Unavailable {
                    reason: db.message().to_owned(),
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Error::Unavailable {
                    reason: e.to_string(),
                }
            }
            _ => Error::Backend {
                backend: "sqlite",
                source: Box::new(e),
            },
        }
    }

    /// Applies the component's pending migrations (on the writer).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the database is newer than this build; driver errors.
    pub async fn migrate(pool: &SqlitePool, component: &str, list: &[Migration]) -> Result<()> {
        let map = map_error;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cs_schema_migrations (
                component TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                PRIMARY KEY (component, version)
            )",
        )
        .execute(pool)
        .await
        .map_err(map)?;
        let applied: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v FROM cs_schema_migrations WHERE component = ?",
        )
        .bind(component)
        .fetch_one(pool)
        .await
        .map_err(map)?
        .try_get("v")
        .map_err(map)?;
        let known = list.last().map_or(0, |m| m.version);
        if applied > known {
            return Err(Error::invalid(format!(
                "database schema of {component} is at version {applied}, newer than this build \
                 ({known}); upgrade the software"
            )));
        }
        for m in list.iter().filter(|m| m.version > applied) {
            let mut tx = pool.begin().await.map_err(map)?;
            sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(map)?;
            sqlx::query(
                "INSERT INTO cs_schema_migrations (component, version, name) VALUES (?, ?, ?)",
            )
            .bind(component)
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            tx.commit().await.map_err(map)?;
        }
        Ok(())
    }
}

/// PostgreSQL plumbing (feature `postgres`).
#[cfg(feature = "postgres")]
pub mod postgres {
    use std::fmt;
    use std::time::Duration;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sqlx::{PgPool, Row};

    use super::Migration;
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
            .map_err(map_error)
    }

    /// Maps a driver error to [`Error`]: unique violations and serialization failures become
    /// [`Error::Conflict`], connection trouble [`Error::Unavailable`], the rest
    /// [`Error::Backend`].
    pub fn map_error(e: sqlx::Error) -> Error {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
                reason: db.message().to_owned(),
            },
            // serialization_failure, deadlock_detected
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40001" | "40P01")) =>
            {
                Error::Conflict {
                    reason: db.message().to_owned(),
                }
            }
            // admin_shutdown, cannot_connect_now, too_many_connections
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("57P01" | "57P03" | "53300")) =>
            {
                Error::Unavailable {
                    reason: db.message().to_owned(),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable {
                reason: e.to_string(),
            },
            _ => Error::Backend {
                backend: "postgres",
                source: Box::new(e),
            },
        }
    }

    /// Applies the component's pending migrations. Concurrent callers (several processes starting
    /// at once) are serialised by a transaction-scoped advisory lock.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the database is newer than this build; driver errors.
    pub async fn migrate(pool: &PgPool, component: &str, list: &[Migration]) -> Result<()> {
        let map = map_error;
        let mut tx = pool.begin().await.map_err(map)?;
        // One lock for every component: migrations may create shared objects (extensions).
        sqlx::query("SELECT pg_advisory_xact_lock(7253411906)")
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cs_schema_migrations (
                component TEXT NOT NULL,
                version BIGINT NOT NULL,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            )",
        )
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        let applied: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0)::BIGINT AS v FROM cs_schema_migrations
             WHERE component = $1",
        )
        .bind(component)
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?
        .try_get("v")
        .map_err(map)?;
        let known = list.last().map_or(0, |m| m.version);
        if applied > known {
            return Err(Error::invalid(format!(
                "database schema of {component} is at version {applied}, newer than this build \
                 ({known}); upgrade the software"
            )));
        }
        // PostgreSQL DDL is transactional: the migrations and their records commit together.
        for m in list.iter().filter(|m| m.version > applied) {
            sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(map)?;
            sqlx::query(
                "INSERT INTO cs_schema_migrations (component, version, name) VALUES ($1, $2, $3)",
            )
            .bind(component)
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        tx.commit().await.map_err(map)
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
}
