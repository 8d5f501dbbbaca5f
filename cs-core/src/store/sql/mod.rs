//! The SQL conversation store, written once over a [`Dialect`]: [`SqlStore`] implements the three
//! store traits for every database with a [`Driver`] (queries in `customers.rs`, `log.rs` and
//! `outbox.rs`, row decoding in `rows.rs`, the schema in `schema.rs`); what differs per database
//! is its [`Dialect`] (in [`crate::sql`]) and how it is opened (`sqlite.rs`, `postgres.rs`).

mod customers;
mod log;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
mod rows;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "sqlite")]
use std::sync::Arc;

use sqlx::{Database, Pool};

#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

use crate::error::{Error, Result};
use crate::id::{ChannelId, TenantId};
use crate::message::Message;
#[cfg(feature = "sqlite")]
use crate::sql::group::{GroupWriter, Local, LocalRow};
use crate::sql::{Driver, SqlRow, Stmt, micros};
use crate::store::Appended;
use rows::{message_from_row, to_json};

/// The component name of the conversation schema's migrations.
const COMPONENT: &str = "conversations";

/// A [`crate::store::ConversationStore`] in a SQL database, one implementation for every
/// [`Dialect`](crate::sql::Dialect): [`SqliteStore`] (`SqlStore<sqlx::Sqlite>`, feature `sqlite`) and
/// [`PostgresStore`] (`SqlStore<sqlx::Postgres>`, feature `postgres`). Reads go to the reader
/// pool. Writes go, on a SQLite file, to one writer thread that commits many of them per
/// transaction (group commit, see [`crate::sql::sqlite`]); elsewhere to the writer pool (on
/// PostgreSQL, the one pool).
pub struct SqlStore<D: Database> {
    writer: Pool<D>,
    reader: Pool<D>,
    #[cfg(feature = "sqlite")]
    group: Option<Arc<GroupWriter>>,
}

impl<D: Database> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            #[cfg(feature = "sqlite")]
            group: self.group.clone(),
        }
    }
}

impl<D: Database> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SqlStore");
        d.field("backend", &D::NAME)
            .field("writer", &self.writer)
            .field("reader", &self.reader);
        #[cfg(feature = "sqlite")]
        d.field("group_commit", &self.group.is_some());
        d.finish()
    }
}

/// A boxed, sendable future borrowing the connection it runs on.
type Job<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// Where a write runs: a `sqlx` connection (a pooled connection or a transaction), or the SQLite
/// writer thread's connection (group commit). The store's write code is written once over it.
pub(crate) enum Conn<'c, D: Database> {
    /// A `sqlx` connection.
    Sqlx(&'c mut D::Connection),
    /// The SQLite writer thread's connection: every call completes at once.
    #[cfg(feature = "sqlite")]
    Local(Local<'c>),
}

/// A row from either kind of [`Conn`].
pub(crate) enum Rec<R> {
    /// A `sqlx` row.
    Sqlx(R),
    /// A row read on the SQLite writer thread.
    #[cfg(feature = "sqlite")]
    Local(LocalRow),
}

impl<R: SqlRow> SqlRow for Rec<R> {
    const BACKEND: &'static str = R::BACKEND;

    fn text(&self, col: &str) -> Result<String> {
        match self {
            Self::Sqlx(r) => r.text(col),
            #[cfg(feature = "sqlite")]
            Self::Local(r) => r.text(col),
        }
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        match self {
            Self::Sqlx(r) => r.opt_text(col),
            #[cfg(feature = "sqlite")]
            Self::Local(r) => r.opt_text(col),
        }
    }

    fn int(&self, col: &str) -> Result<i64> {
        match self {
            Self::Sqlx(r) => r.int(col),
            #[cfg(feature = "sqlite")]
            Self::Local(r) => r.int(col),
        }
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        match self {
            Self::Sqlx(r) => r.opt_int(col),
            #[cfg(feature = "sqlite")]
            Self::Local(r) => r.opt_int(col),
        }
    }
}

impl<D: Driver> Conn<'_, D> {
    /// Runs `stmt`; how many rows it changed.
    pub(crate) async fn execute(&mut self, stmt: Stmt) -> Result<u64> {
        match self {
            Self::Sqlx(c) => D::execute(c, stmt).await,
            #[cfg(feature = "sqlite")]
            Self::Local(l) => l.execute(stmt),
        }
    }

    /// Every row `stmt` returns.
    pub(crate) async fn fetch_all(&mut self, stmt: Stmt) -> Result<Vec<Rec<D::Record>>> {
        match self {
            Self::Sqlx(c) => Ok(D::fetch_all(c, stmt)
                .await?
                .into_iter()
                .map(Rec::Sqlx)
                .collect()),
            #[cfg(feature = "sqlite")]
            Self::Local(l) => Ok(l.fetch_all(stmt)?.into_iter().map(Rec::Local).collect()),
        }
    }

    /// The first row `stmt` returns.
    pub(crate) async fn fetch_optional(&mut self, stmt: Stmt) -> Result<Option<Rec<D::Record>>> {
        match self {
            Self::Sqlx(c) => Ok(D::fetch_optional(c, stmt).await?.map(Rec::Sqlx)),
            #[cfg(feature = "sqlite")]
            Self::Local(l) => Ok(l.fetch_optional(stmt)?.map(Rec::Local)),
        }
    }
}

/// Polls a job's future once on the SQLite writer thread, where every statement completes at
/// once; a job that waits on anything else is a bug, reported as an error.
#[cfg(feature = "sqlite")]
fn complete<T>(job: Job<'_, T>) -> Result<T> {
    let mut job = job;
    let waker = std::task::Waker::noop();
    match job
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err(Error::Backend {
            backend: "sqlite",
            source: "a write job waited on something other than the writer".into(),
        }),
    }
}

impl<D: Driver> SqlStore<D> {
    /// A store over migrated pools.
    async fn migrated(writer: Pool<D>, reader: Pool<D>) -> Result<Self> {
        crate::sql::migrate(&writer, COMPONENT, schema::MIGRATIONS).await?;
        Ok(Self {
            writer,
            reader,
            #[cfg(feature = "sqlite")]
            group: None,
        })
    }

    /// Every row `stmt` returns, read on the reader pool.
    async fn read_all(&self, stmt: Stmt) -> Result<Vec<D::Record>> {
        let mut conn = self.reader.acquire().await.map_err(D::map_error)?;
        D::fetch_all(&mut conn, stmt).await
    }

    /// The first row `stmt` returns, read on the reader pool.
    async fn read_one(&self, stmt: Stmt) -> Result<Option<D::Record>> {
        let mut conn = self.reader.acquire().await.map_err(D::map_error)?;
        D::fetch_optional(&mut conn, stmt).await
    }

    /// Runs the write `job` as one unit: all its statements or none. On the SQLite writer thread
    /// it shares a transaction with the other jobs of its batch (in a savepoint of its own) and
    /// returns once the batch is committed; elsewhere it runs in a transaction of its own, or,
    /// unless `atomic`, on a pooled writer connection (a single statement needs no transaction
    /// around it). An error rolls the job's writes back.
    async fn transact<T, F>(&self, atomic: bool, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c, D>) -> Job<'c, T> + Send + 'static,
    {
        #[cfg(feature = "sqlite")]
        if let Some(group) = &self.group {
            return group
                .run(move |local| complete(job(Conn::Local(local.reborrow()))))
                .await;
        }
        if !atomic {
            let mut conn = self.writer.acquire().await.map_err(D::map_error)?;
            return job(Conn::Sqlx(&mut *conn)).await;
        }
        let mut tx = self.writer.begin().await.map_err(D::map_error)?;
        match job(Conn::Sqlx(&mut *tx)).await {
            Ok(v) => {
                tx.commit().await.map_err(D::map_error)?;
                Ok(v)
            }
            Err(e) => {
                tx.rollback().await.map_err(D::map_error)?;
                Err(e)
            }
        }
    }

    /// Runs `stmt` as a write of its own; returns the rows it changed.
    async fn write(&self, stmt: Stmt) -> Result<u64> {
        self.transact(false, move |mut c| {
            Box::pin(async move { c.execute(stmt).await })
        })
        .await
    }

    /// Runs `stmt` as a write of its own (or a read that must see every write before it);
    /// returns the first row it returns.
    async fn write_one(&self, stmt: Stmt) -> Result<Option<Rec<D::Record>>> {
        self.transact(false, move |mut c| {
            Box::pin(async move { c.fetch_optional(stmt).await })
        })
        .await
    }
}

/// Whether `e` is a foreign-key violation: the row names a parent that does not exist.
fn is_missing_parent(e: &Error) -> bool {
    #[cfg(feature = "sqlite")]
    if crate::sql::group::is_foreign_key_violation(e) {
        return true;
    }
    matches!(e, Error::Backend { source, .. }
        if matches!(source.downcast_ref(), Some(sqlx::Error::Database(db)) if db.is_foreign_key_violation()))
}

/// The message stored under a channel and a provider message id.
fn by_provider_id(tenant: &TenantId, channel: &ChannelId, pid: &str) -> Stmt {
    Stmt::new(
        "SELECT * FROM cs_messages WHERE tenant = $1 AND channel = $2 AND provider_message_id = $3",
    )
    .bind(tenant.as_str())
    .bind(channel.as_str())
    .bind(pid)
}

/// The statement that inserts `m` (built before a write is handed to the writer, so that the
/// serialisation of its author and content runs on the caller's thread, not the one writer).
fn insert_stmt(m: &Message) -> Result<Stmt> {
    Ok(Stmt::new(
        "INSERT INTO cs_messages (tenant, id, conversation, customer, channel, channel_kind,
            direction, author, content, provider_message_id, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
    )
    .bind(m.tenant.as_str())
    .bind(m.id.to_string())
    .bind(m.conversation.to_string())
    .bind(m.customer.to_string())
    .bind(m.channel.as_str())
    .bind(m.channel_kind.as_str())
    .bind(m.direction.as_str())
    .bind(to_json(&m.author)?)
    .bind(to_json(&m.content)?)
    .bind(&m.provider_message_id)
    .bind(m.status.as_str())
    .bind(micros(m.created_at)))
}

/// Inserts a message on `conn` (a pooled connection or a transaction of the writer) with
/// `insert`, its [`insert_stmt`]. A provider message id that is already stored (a retry, or a
/// concurrent delivery) returns the stored message; a missing conversation is
/// [`Error::NotFound`].
async fn insert_message<D: Driver>(
    conn: &mut Conn<'_, D>,
    m: &Message,
    insert: Stmt,
) -> Result<Appended> {
    match conn.execute(insert).await {
        Ok(1) => Ok(Appended::Inserted(m.clone())),
        // Nothing inserted: the provider id (or, impossibly, the UUIDv7 id) was taken.
        Ok(_) => match &m.provider_message_id {
            Some(pid) => conn
                .fetch_optional(by_provider_id(&m.tenant, &m.channel, pid))
                .await?
                .map(|r| message_from_row(&r).map(Appended::Duplicate))
                .unwrap_or_else(|| Err(Error::conflict("duplicate message id"))),
            None => Err(Error::conflict(format!("message {} exists", m.id))),
        },
        Err(e) if is_missing_parent(&e) => Err(Error::not_found("conversation", m.conversation)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelKind, Identity, IdentityLink, SharedKey};
    use crate::id::{CustomerId, TenantId};
    use crate::store::CustomerStore;

    /// A database written by version 3 (before shared keys) upgrades in place: phone identities
    /// get their number as key, WhatsApp proving it; links an earlier engine made from an SMS
    /// sender or caller ID lose their verification, other links keep it.
    async fn legacy_links_migrate<D: Driver>(writer: Pool<D>, reader: Pool<D>) {
        crate::sql::migrate(&writer, COMPONENT, &schema::MIGRATIONS[..3])
            .await
            .unwrap();
        let c: Vec<String> = (0..5).map(|_| CustomerId::new().to_string()).collect();
        let mut sql = String::new();
        for id in &c {
            sql.push_str(&format!(
                "INSERT INTO cs_customers (tenant, id, tier, created_at)
                 VALUES ('t', '{id}', 'standard', 0);\n"
            ));
        }
        for (kind, external, customer, origin) in [
            // WhatsApp first; the same number by SMS joined by the phone key.
            ("whats_app", "8613800138000", &c[0], "first_contact"),
            (
                "sms",
                "+8613800138000",
                &c[0],
                "shared_key:phone:+8613800138000",
            ),
            // SMS first; WhatsApp joined to it on the SMS sender's word.
            ("sms", "+8613900139000", &c[1], "first_contact"),
            (
                "whats_app",
                "8613900139000",
                &c[1],
                "shared_key:phone:+8613900139000",
            ),
            // Two WeChat openids of one unionid, linked through the API.
            ("we_chat", "openid-a", &c[2], "first_contact"),
            ("we_chat", "openid-b", &c[2], "shared_key:unionid:u-1"),
            // A caller alone, and a short code.
            ("voice", "+4915112345678", &c[3], "first_contact"),
            ("sms", "10086", &c[4], "first_contact"),
        ] {
            sql.push_str(&format!(
                "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at, origin)
                 VALUES ('t', '{kind}', '{external}', '{customer}', 0, '{origin}');\n"
            ));
        }
        let mut conn = writer.acquire().await.unwrap();
        D::execute_script(&mut conn, &sql).await.unwrap();
        drop(conn);
        let store = SqlStore::migrated(writer, reader).await.unwrap();
        let t = TenantId::new("t").unwrap();
        let link = |links: &[IdentityLink], kind| {
            let l = links.iter().find(|l| l.identity.kind == kind).unwrap();
            (l.shared_key.clone(), l.verified)
        };
        let phone = |n: &str, proven| Some(SharedKey::phone(n, proven).unwrap());
        let id = |s: &String| s.parse::<CustomerId>().unwrap();
        let first = store.identity_links(&t, id(&c[0])).await.unwrap();
        assert_eq!(
            link(&first, ChannelKind::WhatsApp),
            (phone("8613800138000", true), true)
        );
        assert_eq!(
            link(&first, ChannelKind::Sms),
            (phone("8613800138000", false), false),
            "an SMS sender joined by its number is unverified"
        );
        let second = store.identity_links(&t, id(&c[1])).await.unwrap();
        assert_eq!(
            link(&second, ChannelKind::WhatsApp),
            (phone("8613900139000", true), false),
            "a link made on an SMS sender's word is unverified"
        );
        assert_eq!(
            link(&second, ChannelKind::Sms),
            (phone("8613900139000", false), true),
            "a first contact stays verified"
        );
        let wechat = store.identity_links(&t, id(&c[2])).await.unwrap();
        let b = wechat
            .iter()
            .find(|l| l.identity == Identity::new(ChannelKind::WeChat, "openid-b"))
            .unwrap();
        assert_eq!(b.shared_key, Some(SharedKey::claimed("unionid:u-1")));
        assert!(b.verified, "links from other keys keep their verification");
        let caller = store.identity_links(&t, id(&c[3])).await.unwrap();
        assert_eq!(
            link(&caller, ChannelKind::Voice),
            (phone("4915112345678", false), true)
        );
        let short = store.identity_links(&t, id(&c[4])).await.unwrap();
        assert_eq!(link(&short, ChannelKind::Sms), (None, true), "no key");

        // The upgraded data takes part in resolution: WhatsApp from the caller's number is
        // suggested to join the caller, not joined.
        let wa = crate::store::ResolveCustomer::new(
            t.clone(),
            Identity::new(ChannelKind::WhatsApp, "4915112345678"),
            chrono::Utc::now(),
        )
        .with_shared_key(SharedKey::phone("4915112345678", true).unwrap());
        let resolved = store.resolve_customer(&wa).await.unwrap();
        assert!(resolved.created);
        assert_eq!(resolved.suggestions[0].candidate, id(&c[3]));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_version_3_data_migrates() {
        let dir = std::env::temp_dir().join(format!("cs-core-migrate-{}", uuid::Uuid::new_v4()));
        let pools = crate::sql::sqlite::connect(&dir.join("old.db"))
            .await
            .unwrap();
        legacy_links_migrate(pools.writer, pools.reader).await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_version_3_data_migrates() {
        use sqlx::Connection;

        let Ok(url) = std::env::var("CS_TEST_POSTGRES_URL") else {
            eprintln!("skipping postgres_version_3_data_migrates: set CS_TEST_POSTGRES_URL");
            return;
        };
        // A fresh schema of its own (the test needs an empty database at version 3).
        let schema = format!("cs_core_migrate_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options%5Bsearch_path%5D={schema}");
        let pool = crate::sql::postgres::connect(&crate::sql::postgres::PgConfig::new(scoped))
            .await
            .unwrap();
        legacy_links_migrate(pool.clone(), pool.clone()).await;
        pool.close().await;
        sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
