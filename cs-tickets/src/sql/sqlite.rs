//! The SQLite ticket store (feature `sqlite`): the embedded default, in its own file or in the
//! same file as the conversation store.

use std::path::{Path, PathBuf};

use cs_core::sql::sqlite::{Pools, connect};
use cs_core::sql::{Arg, Migration};
use sqlx::{Sqlite, SqlitePool};

use super::{SqlTicketStore, TicketDialect, like_pattern};
use crate::error::Result;
use crate::sla::SlaPolicy;

/// A [`crate::TicketStore`] in SQLite (WAL mode; one writer, several readers).
pub type SqliteTicketStore = SqlTicketStore<Sqlite>;

/// The schema, in order. Full-text search is an FTS5 trigram index (substrings, so Chinese works
/// without word segmentation) kept in step with `cs_tickets.search_text` by triggers.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "tickets, comments, audit trail, full-text index",
    sql: concat!(
        "CREATE TABLE cs_ticket_counters (tenant TEXT PRIMARY KEY, last BIGINT NOT NULL);\n",
        "CREATE TABLE cs_tickets (rid INTEGER PRIMARY KEY,",
        super::ticket_tables!(),
        r#"
CREATE VIRTUAL TABLE cs_ticket_fts USING fts5(
    search_text, content = 'cs_tickets', content_rowid = 'rid', tokenize = 'trigram'
);
CREATE TRIGGER cs_tickets_fts_insert AFTER INSERT ON cs_tickets BEGIN
    INSERT INTO cs_ticket_fts (rowid, search_text) VALUES (new.rid, new.search_text);
END;
CREATE TRIGGER cs_tickets_fts_update AFTER UPDATE OF search_text ON cs_tickets
WHEN old.search_text <> new.search_text BEGIN
    INSERT INTO cs_ticket_fts (cs_ticket_fts, rowid, search_text)
        VALUES ('delete', old.rid, old.search_text);
    INSERT INTO cs_ticket_fts (rowid, search_text) VALUES (new.rid, new.search_text);
END;
CREATE TRIGGER cs_tickets_fts_delete AFTER DELETE ON cs_tickets BEGIN
    INSERT INTO cs_ticket_fts (cs_ticket_fts, rowid, search_text)
        VALUES ('delete', old.rid, old.search_text);
END;
"#,
    ),
}];

/// Full text: the trigram index for three characters or more, a scan below that (a trigram
/// index cannot answer shorter strings).
impl TicketDialect for Sqlite {
    const MIGRATIONS: &'static [Migration] = MIGRATIONS;

    fn text_filter(n: usize, needle: &str) -> (String, Arg) {
        if needle.chars().count() >= 3 {
            (
                format!("rid IN (SELECT rowid FROM cs_ticket_fts WHERE cs_ticket_fts MATCH ${n})"),
                Arg::Text(format!("\"{}\"", needle.replace('"', "\"\""))),
            )
        } else {
            (
                format!("search_text LIKE ${n} ESCAPE '\\'"),
                Arg::Text(like_pattern(needle)),
            )
        }
    }
}

enum Source {
    Path(PathBuf),
    Pools(Pools),
}

/// Configures a [`SqliteTicketStore`].
pub struct SqliteTicketStoreBuilder {
    source: Source,
    sla: Option<SlaPolicy>,
}

impl std::fmt::Debug for SqliteTicketStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Path(p) => p.display().to_string(),
            Source::Pools(_) => "shared pools".into(),
        };
        f.debug_struct("SqliteTicketStoreBuilder")
            .field("source", &source)
            .field("sla", &self.sla.as_ref().map(SlaPolicy::name))
            .finish()
    }
}

impl SqliteTicketStoreBuilder {
    /// A store in the database file at `path` (created if missing), or `:memory:`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            source: Source::Path(path.as_ref().to_owned()),
            sla: None,
        }
    }

    /// A store in a database already open elsewhere, e.g. the conversation store's file
    /// (`SqliteStore::writer()` / `reader()`): `writer` must be the single-connection writer.
    pub fn with_pools(writer: SqlitePool, reader: SqlitePool) -> Self {
        Self {
            source: Source::Pools(Pools { writer, reader }),
            sla: None,
        }
    }

    /// Runs SLA clocks on every ticket with `policy`.
    pub fn with_sla(mut self, policy: SlaPolicy) -> Self {
        self.sla = Some(policy);
        self
    }

    /// Opens the database and applies pending migrations.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when the file cannot be opened;
    /// [`crate::Error::InvalidInput`] when its schema is newer than this build.
    pub async fn build(self) -> Result<SqliteTicketStore> {
        let pools = match self.source {
            Source::Path(p) => connect(&p).await?,
            Source::Pools(p) => p,
        };
        SqlTicketStore::migrated(pools.writer, pools.reader, self.sla).await
    }
}

impl SqlTicketStore<Sqlite> {
    /// Opens the store at `path` without SLA policy; see [`SqliteTicketStoreBuilder`].
    ///
    /// # Errors
    /// As [`SqliteTicketStoreBuilder::build`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteTicketStoreBuilder::new(path).build().await
    }

    /// The writer pool.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}
