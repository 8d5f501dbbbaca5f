//! Opening the SQLite conversation store: the embedded default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::{Sqlite, SqlitePool};

use super::SqlStore;
use crate::error::Result;
use crate::sql::group::GroupWriter;
use crate::sql::sqlite::{Durability, connect_with};

/// A [`crate::store::ConversationStore`] in one SQLite file (WAL mode; one writer, several
/// readers). Its writes go to one writer thread that commits many of them per transaction
/// (group commit; see [`crate::sql::sqlite`]), and a write returns once it is committed.
pub type SqliteStore = SqlStore<Sqlite>;

/// Configures a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    durability: Durability,
    group_commit: bool,
}

impl SqliteStoreBuilder {
    /// A store in the database file at `path` (created with its folder if missing), or `:memory:`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            durability: Durability::Normal,
            group_commit: true,
        }
    }

    /// How hard a commit is pushed to disk (default [`Durability::Normal`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether writes go through the group-commit writer thread (default on; off, each write
    /// is its own transaction on the `sqlx` writer pool, as before group commit: for
    /// comparisons). An in-memory database always writes through the pool.
    pub fn with_group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// Opens the database, applies pending migrations and starts the writer thread.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when the file cannot be opened;
    /// [`crate::Error::InvalidInput`] when its schema is newer than this build.
    pub async fn build(self) -> Result<SqliteStore> {
        let pools = connect_with(&self.path, self.durability).await?;
        let mut store = SqlStore::migrated(pools.writer, pools.reader).await?;
        if self.group_commit && self.path.as_os_str() != ":memory:" {
            store.group = Some(Arc::new(GroupWriter::open(&self.path, self.durability)?));
        }
        Ok(store)
    }
}

impl SqlStore<Sqlite> {
    /// Opens the store at `path` with default settings; see [`SqliteStoreBuilder`].
    ///
    /// # Errors
    /// As [`SqliteStoreBuilder::build`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteStoreBuilder::new(path).build().await
    }

    /// The single-connection `sqlx` writer pool, for components that keep their tables in the
    /// same file (the store's own writes go through its writer thread; SQLite takes turns
    /// between the two, waiting up to its busy timeout).
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The reader pool.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}
