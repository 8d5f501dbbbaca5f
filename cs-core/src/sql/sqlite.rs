//! SQLite plumbing (feature `sqlite`): the pools, the [`Dialect`] and the error mapping.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};

use sqlx::error::DatabaseError;

use super::Dialect;
use crate::error::{Error, Result};

pub use super::group::Durability;

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

/// Opens (creating if missing) the database file at `path`, in WAL mode with
/// [`Durability::Normal`]. The special path `:memory:` opens a private in-memory database shared
/// by both pools.
///
/// # Errors
/// [`Error::Unavailable`] when the file cannot be opened or created.
pub async fn connect(path: &Path) -> Result<Pools> {
    connect_with(path, Durability::Normal).await
}

/// As [`connect`], committing with the given [`Durability`].
///
/// # Errors
/// As [`connect`].
pub async fn connect_with(path: &Path, durability: Durability) -> Result<Pools> {
    if path.as_os_str() == ":memory:" {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(Sqlite::map_error)?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(Sqlite::map_error)?;
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
        .synchronous(match durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts.clone())
        .await
        .map_err(Sqlite::map_error)?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts.read_only(true))
        .await
        .map_err(Sqlite::map_error)?;
    Ok(Pools { writer, reader })
}

/// SQLite has one writer at a time (the writer pool has one connection), so it needs no row
/// locks; JSON arrays are read with `json_each`.
impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const FOR_UPDATE: &'static str = "";
    const FOR_SHARE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const MULTI_STATEMENT: bool = true;
    const NOW_COLUMN: &'static str =
        "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";
    const MIGRATION_LOCK: Option<&'static str> = None;
    const SERIAL_WRITES: bool = true;

    fn json_list(n: usize) -> String {
        format!("(SELECT value FROM json_each(${n}))")
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// A file another process holds locked past the busy timeout is unavailable for now.
    fn classify(db: &dyn DatabaseError) -> Option<Error> {
        let busy = db.message().contains("database is locked") || db.message().contains("busy");
        busy.then(|| Error::Unavailable {
            reason: db.message().to_owned(),
        })
    }
}
