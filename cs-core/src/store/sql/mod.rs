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

use sqlx::{Database, Pool, Transaction};

#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

use crate::error::{Error, Result};
use crate::id::{ChannelId, TenantId};
use crate::message::Message;
use crate::sql::{Dialect, Driver, Stmt, micros};
use crate::store::Appended;
use rows::{message_from_row, to_json};

/// The component name of the conversation schema's migrations.
const COMPONENT: &str = "conversations";

/// A [`crate::store::ConversationStore`] in a SQL database, one implementation for every
/// [`Dialect`]: [`SqliteStore`] (`SqlStore<sqlx::Sqlite>`, feature `sqlite`) and
/// [`PostgresStore`] (`SqlStore<sqlx::Postgres>`, feature `postgres`). Writes go to the writer
/// pool (SQLite's single writer), reads to the reader pool; on PostgreSQL both are one pool.
pub struct SqlStore<D: Database> {
    writer: Pool<D>,
    reader: Pool<D>,
}

impl<D: Database> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
        }
    }
}

impl<D: Database> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &D::NAME)
            .field("writer", &self.writer)
            .field("reader", &self.reader)
            .finish()
    }
}

impl<D: Driver> SqlStore<D> {
    /// A store over migrated pools.
    async fn migrated(writer: Pool<D>, reader: Pool<D>) -> Result<Self> {
        crate::sql::migrate(&writer, COMPONENT, schema::MIGRATIONS).await?;
        Ok(Self { writer, reader })
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

    /// Runs `stmt` on the writer (in a transaction of its own); returns the rows it changed.
    async fn write(&self, stmt: Stmt) -> Result<u64> {
        let mut conn = self.writer.acquire().await.map_err(D::map_error)?;
        D::execute(&mut conn, stmt).await
    }

    /// Runs `stmt` on the writer; returns the rows it returns.
    async fn write_all(&self, stmt: Stmt) -> Result<Vec<D::Record>> {
        let mut conn = self.writer.acquire().await.map_err(D::map_error)?;
        D::fetch_all(&mut conn, stmt).await
    }

    /// Runs `stmt` on the writer; returns the first row it returns.
    async fn write_one(&self, stmt: Stmt) -> Result<Option<D::Record>> {
        let mut conn = self.writer.acquire().await.map_err(D::map_error)?;
        D::fetch_optional(&mut conn, stmt).await
    }

    /// A transaction on the writer.
    async fn begin(&self) -> Result<Transaction<'static, D>> {
        self.writer.begin().await.map_err(D::map_error)
    }
}

/// Commits `tx`.
async fn commit<D: Dialect>(tx: Transaction<'static, D>) -> Result<()> {
    tx.commit().await.map_err(D::map_error)
}

/// Whether `e` is a foreign-key violation: the row names a parent that does not exist.
fn is_missing_parent(e: &Error) -> bool {
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

/// Inserts a message on `conn` (a pooled connection or a transaction of the writer). A provider
/// message id that is already stored (a retry, or a concurrent delivery) returns the stored
/// message; a missing conversation is [`Error::NotFound`].
async fn insert_message<D: Driver>(conn: &mut D::Connection, m: &Message) -> Result<Appended> {
    let insert = Stmt::new(
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
    .bind(micros(m.created_at));
    match D::execute(conn, insert).await {
        Ok(1) => Ok(Appended::Inserted(m.clone())),
        // Nothing inserted: the provider id (or, impossibly, the UUIDv7 id) was taken.
        Ok(_) => match &m.provider_message_id {
            Some(pid) => D::fetch_optional(conn, by_provider_id(&m.tenant, &m.channel, pid))
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
