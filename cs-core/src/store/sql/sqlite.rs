//! Opening the SQLite conversation store: the embedded default.

use std::path::{Path, PathBuf};

use sqlx::{Sqlite, SqlitePool};

use super::SqlStore;
use crate::error::Result;
use crate::sql::sqlite::connect;

/// A [`crate::store::ConversationStore`] in one SQLite file (WAL mode; one writer, several
/// readers).
pub type SqliteStore = SqlStore<Sqlite>;

/// Configures a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
}

impl SqliteStoreBuilder {
    /// A store in the database file at `path` (created with its folder if missing), or `:memory:`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
        }
    }

    /// Opens the database and applies pending migrations.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when the file cannot be opened;
    /// [`crate::Error::InvalidInput`] when its schema is newer than this build.
    pub async fn build(self) -> Result<SqliteStore> {
        let pools = connect(&self.path).await?;
        SqlStore::migrated(pools.writer, pools.reader).await
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

    /// The single-connection writer pool, for components that keep their tables in the same file.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The reader pool.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}
