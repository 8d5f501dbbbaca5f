//! Locks that hold across processes sharing one store: one customer's messages are handled one
//! at a time wherever they land, and an agent's load is checked and taken by one assignment at a
//! time (two routers, a stale owner and a new one, can never push an agent past capacity).
//!
//! In one process the engine's own striped mutexes are enough ([`Engine`] always takes them);
//! [`DeskLocks`] adds the cross-process part. [`PostgresLocks`] (feature `postgres`) takes
//! PostgreSQL session advisory locks on a pool of its own, so a node that dies mid-turn releases
//! its locks with its connections.

use super::*;

/// What a lock serialises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKey {
    /// One customer's messages, in order.
    Customer(cs_core::CustomerId),
    /// One agent's load: counting their conversations and assigning one more.
    Agent(AgentId),
}

impl LockKey {
    /// The lock's class (a namespace of its own, apart from the migrations' lock).
    fn class(&self) -> i32 {
        match self {
            Self::Customer(_) => 0x0D35_C001,
            Self::Agent(_) => 0x0D35_C002,
        }
    }

    /// A 32-bit key for `tenant` and this id (a collision only makes two keys share one lock).
    fn key(&self, tenant: &TenantId) -> i32 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tenant.as_str().hash(&mut h);
        match self {
            Self::Customer(c) => c.hash(&mut h),
            Self::Agent(a) => a.hash(&mut h),
        }
        h.finish() as i32
    }
}

/// A held lock: released when dropped.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

impl LockGuard {
    /// A guard around anything that releases the lock when dropped.
    pub fn new(inner: impl Send + Sync + 'static) -> Self {
        Self(Box::new(inner))
    }
}

/// Mutual exclusion by key across every process of a desk.
#[async_trait]
pub trait DeskLocks: Send + Sync + std::fmt::Debug + 'static {
    /// Waits for and takes the lock of `key` in `tenant`.
    ///
    /// # Errors
    /// [`cs_core::Error::Unavailable`] when the backend cannot be reached.
    async fn lock(&self, tenant: &TenantId, key: LockKey) -> cs_core::Result<LockGuard>;
}

/// [`DeskLocks`] over PostgreSQL session advisory locks (`pg_advisory_lock(class, key)`), on a
/// pool of their own (a lock is held on its connection for as long as the guard lives; the
/// store's pool is never starved by locks).
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresLocks {
    pool: sqlx::PgPool,
}

#[cfg(feature = "postgres")]
impl PostgresLocks {
    /// Connects a pool of up to `connections` (each held lock uses one).
    ///
    /// # Errors
    /// [`cs_core::Error::InvalidInput`] for a malformed URL; [`cs_core::Error::Unavailable`]
    /// when the server cannot be reached.
    pub async fn connect(url: &str, connections: u32) -> cs_core::Result<Self> {
        let pool = cs_core::sql::postgres::connect(
            &cs_core::sql::postgres::PgConfig::new(url).with_max_connections(connections),
        )
        .await?;
        Ok(Self { pool })
    }
}

#[cfg(feature = "postgres")]
struct PgHeld {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    class: i32,
    key: i32,
}

#[cfg(feature = "postgres")]
impl Drop for PgHeld {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let (class, key) = (self.class, self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                        .bind(class)
                        .bind(key)
                        .execute(&mut *conn)
                        .await;
                    if unlocked.is_err() {
                        // Never hand a connection that may still hold the lock back to the pool.
                        let _ = conn.close().await;
                    }
                });
            }
            // No runtime to unlock on: closing the connection releases the lock.
            Err(_) => drop(conn.detach()),
        }
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl DeskLocks for PostgresLocks {
    async fn lock(&self, tenant: &TenantId, key: LockKey) -> cs_core::Result<LockGuard> {
        let unavailable = |e: sqlx::Error| cs_core::Error::Unavailable {
            reason: format!("advisory lock: {e}"),
        };
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let (class, key) = (key.class(), key.key(tenant));
        sqlx::query("SELECT pg_advisory_lock($1, $2)")
            .bind(class)
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(LockGuard::new(PgHeld {
            conn: Some(conn),
            class,
            key,
        }))
    }
}

/// The lock on one customer's messages: the process's own stripe, and across processes the
/// desk's lock when there is one.
#[derive(Debug)]
pub(crate) struct CustomerGuard {
    _local: OwnedMutexGuard<()>,
    _desk: Option<LockGuard>,
}

impl Engine {
    /// Takes the lock that serialises work on one customer's messages (FIFO in this process;
    /// across processes through [`DeskLocks`] when configured).
    pub(super) async fn lock_customer(&self, customer: cs_core::CustomerId) -> CustomerGuard {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        customer.hash(&mut h);
        let local = self.inner.locks[(h.finish() as usize) % LOCK_STRIPES]
            .clone()
            .lock_owned()
            .await;
        let desk = self
            .desk_lock(LockKey::Customer(customer))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, %customer, "customer lock across nodes not taken");
                None
            });
        CustomerGuard {
            _local: local,
            _desk: desk,
        }
    }

    /// The desk-wide lock of `key`, when the engine has [`DeskLocks`].
    pub(super) async fn desk_lock(&self, key: LockKey) -> cs_core::Result<Option<LockGuard>> {
        match &self.inner.desk_locks {
            Some(l) => Ok(Some(l.lock(&self.inner.tenant, key).await?)),
            None => Ok(None),
        }
    }
}
