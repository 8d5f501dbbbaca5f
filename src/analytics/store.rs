//! Where rollups live: in memory, SQLite or PostgreSQL. The SQL backends share one set of
//! statements (written with `$n` placeholders, which SQLite also accepts) and their own tables
//! (`analytics_rollups`, `analytics_tracks`, `analytics_schema`), created by a versioned
//! migration on first use.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::ConversationId;

use super::rollup::{Dim, Grain, Metric, RollupKey, RollupRow, Rollups, Stat};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::error::Error;
use crate::error::Result;

/// One flush: rollup deltas and the conversations the aggregator follows, applied at once.
#[derive(Debug, Default)]
pub struct Batch {
    /// Deltas to add (every grain).
    pub rows: Vec<RollupRow>,
    /// Conversation state to keep: tenant, id, JSON.
    pub tracks: Vec<(String, ConversationId, String)>,
    /// Conversation state to forget.
    pub forget: Vec<ConversationId>,
    /// Minute rows older than this may be dropped.
    pub prune_minutes_before: Option<DateTime<Utc>>,
}

/// Which rows to read.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupQuery {
    /// The tenant.
    pub tenant: String,
    /// The grain.
    pub grain: Grain,
    /// From this bucket start (inclusive).
    pub from: DateTime<Utc>,
    /// To this bucket start (exclusive).
    pub to: DateTime<Utc>,
    /// Only this dimension.
    pub dim: Dim,
    /// Only these metrics (all when empty).
    pub metrics: Vec<Metric>,
}

/// Where rollups are kept.
#[async_trait]
pub trait RollupStore: Send + Sync + Debug + 'static {
    /// Applies a flush atomically: the deltas are added to what is stored.
    ///
    /// # Errors
    /// Database errors.
    async fn apply(&self, batch: &Batch) -> Result<()>;

    /// Rows matching `query`, ordered by bucket, key and metric.
    ///
    /// # Errors
    /// Database errors.
    async fn query(&self, query: &RollupQuery) -> Result<Vec<RollupRow>>;

    /// The conversation state of `tenant` kept by earlier flushes.
    ///
    /// # Errors
    /// Database errors.
    async fn tracks(&self, tenant: &str) -> Result<Vec<(ConversationId, String)>>;

    /// Whether the store answers.
    ///
    /// # Errors
    /// Database errors.
    async fn ping(&self) -> Result<()>;
}

/// Rollups in memory (tests, and embedding without a database).
#[derive(Debug, Default)]
pub struct MemoryRollupStore {
    rows: Mutex<BTreeMap<RollupKey, Stat>>,
    tracks: Mutex<HashMap<ConversationId, (String, String)>>,
}

impl MemoryRollupStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RollupStore for MemoryRollupStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for r in &batch.rows {
            rows.entry(key_of(r)).or_default().merge(r.stat);
        }
        if let Some(before) = batch.prune_minutes_before {
            rows.retain(|k, _| k.grain != Grain::Minute || k.bucket >= before.timestamp());
        }
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        for (tenant, id, json) in &batch.tracks {
            tracks.insert(*id, (tenant.clone(), json.clone()));
        }
        for id in &batch.forget {
            tracks.remove(id);
        }
        Ok(())
    }

    async fn query(&self, q: &RollupQuery) -> Result<Vec<RollupRow>> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<RollupRow> = rows
            .iter()
            .filter(|(k, _)| {
                *k.tenant == *q.tenant
                    && k.grain == q.grain
                    && k.dim == q.dim
                    && k.bucket >= q.from.timestamp()
                    && k.bucket < q.to.timestamp()
                    && (q.metrics.is_empty() || q.metrics.contains(&k.metric))
            })
            .map(|(k, s)| RollupRow::new(k, *s))
            .collect();
        sort_rows(&mut out);
        Ok(out)
    }

    async fn tracks(&self, tenant: &str) -> Result<Vec<(ConversationId, String)>> {
        Ok(self
            .tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, (t, _))| t == tenant)
            .map(|(id, (_, j))| (*id, j.clone()))
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

fn key_of(r: &RollupRow) -> RollupKey {
    RollupKey {
        tenant: r.tenant.as_str().into(),
        grain: r.grain,
        bucket: r.bucket.timestamp(),
        dim: r.dim,
        key: r.key.as_str().into(),
        metric: r.metric,
    }
}

fn sort_rows(rows: &mut [RollupRow]) {
    rows.sort_by(|a, b| {
        (a.bucket, &a.key, a.metric.as_str()).cmp(&(b.bucket, &b.key, b.metric.as_str()))
    });
}

/// Deltas of every grain from the aggregator's minute deltas.
pub fn batch_rows(delta: &Rollups, tz: chrono_tz::Tz) -> Vec<RollupRow> {
    delta.with_coarser_grains(tz).rows()
}

/// The schema, version by version; each runs once, in order.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS analytics_rollups (
        tenant TEXT NOT NULL,
        grain TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        dim TEXT NOT NULL,
        dim_key TEXT NOT NULL,
        metric TEXT NOT NULL,
        count BIGINT NOT NULL,
        sum BIGINT NOT NULL,
        max BIGINT NOT NULL,
        PRIMARY KEY (tenant, grain, dim, bucket, dim_key, metric)
    );
    CREATE TABLE IF NOT EXISTS analytics_tracks (
        tenant TEXT NOT NULL,
        conversation TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (conversation)
    )",
)];

#[cfg(any(feature = "sqlite", feature = "postgres"))]
const UPSERT: &str = "INSERT INTO analytics_rollups
        (tenant, grain, bucket, dim, dim_key, metric, count, sum, max)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (tenant, grain, dim, bucket, dim_key, metric) DO UPDATE SET
        count = analytics_rollups.count + excluded.count,
        sum = analytics_rollups.sum + excluded.sum,
        max = CASE WHEN excluded.max > analytics_rollups.max
                   THEN excluded.max ELSE analytics_rollups.max END";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
const SAVE_TRACK: &str = "INSERT INTO analytics_tracks (tenant, conversation, state)
    VALUES ($1, $2, $3)
    ON CONFLICT (conversation) DO UPDATE SET tenant = excluded.tenant, state = excluded.state";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
const SELECT: &str = "SELECT tenant, grain, bucket, dim, dim_key, metric, count, sum, max
    FROM analytics_rollups
    WHERE tenant = $1 AND grain = $2 AND dim = $3 AND bucket >= $4 AND bucket < $5
    ORDER BY bucket, dim_key, metric";

/// The pool of a SQL rollup store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs the same body on whichever pool the store has (`$pool` is bound to it).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Rollups in SQLite or PostgreSQL, in their own tables beside the desk's.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
pub struct SqlRollupStore {
    pool: Pool,
}

/// The database's statement that serialises migrators until the transaction ends (none on
/// SQLite, whose single writer does).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn migration_lock<D: cs_core::sql::Dialect>(_pool: &sqlx::Pool<D>) -> Option<&'static str> {
    D::MIGRATION_LOCK
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn db(e: sqlx::Error) -> Error {
    Error::Store(cs_core::Error::Backend {
        backend: "analytics",
        source: Box::new(e),
    })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl SqlRollupStore {
    /// The store on a SQLite pool (the desk's writer: SQLite has one writer), migrated.
    ///
    /// # Errors
    /// Database errors while migrating.
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(pool: sqlx::SqlitePool) -> Result<Self> {
        let store = Self {
            pool: Pool::Sqlite(pool),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The store on a PostgreSQL pool, migrated.
    ///
    /// # Errors
    /// Database errors while migrating.
    #[cfg(feature = "postgres")]
    pub async fn postgres(pool: sqlx::PgPool) -> Result<Self> {
        let store = Self {
            pool: Pool::Postgres(pool),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(db)?;
            // Several processes starting at once on a fresh PostgreSQL schema would create the
            // same tables together (a duplicate `pg_type` row): they take the desk's migration
            // lock, one after the other, as every other migrator does.
            if let Some(lock) = migration_lock(pool) {
                sqlx::query(lock).execute(&mut *tx).await.map_err(db)?;
            }
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS analytics_schema (version BIGINT PRIMARY KEY)",
            )
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let done: Vec<(i64,)> = sqlx::query_as("SELECT version FROM analytics_schema")
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            for (version, sql) in MIGRATIONS {
                if done.iter().any(|(v,)| v == version) {
                    continue;
                }
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    sqlx::query(statement).execute(&mut *tx).await.map_err(db)?;
                }
                sqlx::query(
                    "INSERT INTO analytics_schema (version) VALUES ($1) ON CONFLICT DO NOTHING",
                )
                .bind(*version)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[async_trait]
impl RollupStore for SqlRollupStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(db)?;
            for r in &batch.rows {
                sqlx::query(UPSERT)
                    .bind(&r.tenant)
                    .bind(r.grain.as_str())
                    .bind(r.bucket.timestamp())
                    .bind(r.dim.as_str())
                    .bind(&r.key)
                    .bind(r.metric.as_str())
                    .bind(r.stat.count)
                    .bind(r.stat.sum)
                    .bind(r.stat.max)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            for (tenant, id, json) in &batch.tracks {
                sqlx::query(SAVE_TRACK)
                    .bind(tenant)
                    .bind(id.to_string())
                    .bind(json)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            for id in &batch.forget {
                sqlx::query("DELETE FROM analytics_tracks WHERE conversation = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            if let Some(before) = batch.prune_minutes_before {
                sqlx::query("DELETE FROM analytics_rollups WHERE grain = 'minute' AND bucket < $1")
                    .bind(before.timestamp())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
    }

    async fn query(&self, q: &RollupQuery) -> Result<Vec<RollupRow>> {
        type Raw = (String, String, i64, String, String, String, i64, i64, i64);
        let raw: Vec<Raw> = on_pool!(self, pool => {
            sqlx::query_as(SELECT)
                .bind(&q.tenant)
                .bind(q.grain.as_str())
                .bind(q.dim.as_str())
                .bind(q.from.timestamp())
                .bind(q.to.timestamp())
                .fetch_all(pool)
                .await
                .map_err(db)?
        });
        let mut rows: Vec<RollupRow> = raw
            .into_iter()
            .filter_map(
                |(tenant, grain, bucket, dim, key, metric, count, sum, max)| {
                    Some(RollupRow {
                        tenant,
                        grain: Grain::parse(&grain)?,
                        bucket: DateTime::from_timestamp(bucket, 0)?,
                        dim: Dim::parse(&dim)?,
                        key,
                        metric: Metric::parse(&metric)?,
                        stat: Stat { count, sum, max },
                    })
                },
            )
            .filter(|r| q.metrics.is_empty() || q.metrics.contains(&r.metric))
            .collect();
        sort_rows(&mut rows);
        Ok(rows)
    }

    async fn tracks(&self, tenant: &str) -> Result<Vec<(ConversationId, String)>> {
        let raw: Vec<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT conversation, state FROM analytics_tracks WHERE tenant = $1")
                .bind(tenant)
                .fetch_all(pool)
                .await
                .map_err(db)?
        });
        Ok(raw
            .into_iter()
            .filter_map(|(id, json)| Some((id.parse().ok()?, json)))
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await.map_err(db)?;
        });
        Ok(())
    }
}
