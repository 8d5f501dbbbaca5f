//! Locks that hold across processes sharing one store: one customer's messages are handled one
//! at a time wherever they land, and an agent's load is checked and taken by one assignment at a
//! time (two routers, a stale owner and a new one, can never push an agent past capacity).
//!
//! In one process the engine's own striped mutexes are enough ([`Engine`] always takes them);
//! [`DeskLocks`] adds the cross-process part. [`PostgresLocks`] (feature `postgres`) takes
//! PostgreSQL session advisory locks on a connection of its own, so a node that dies mid-turn
//! releases its locks with its connection.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::OwnedSemaphorePermit;

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
    #[cfg(feature = "postgres")]
    fn class(&self) -> i32 {
        match self {
            Self::Customer(_) => 0x0D35_C001,
            Self::Agent(_) => 0x0D35_C002,
        }
    }

    /// A 32-bit key for `tenant` and this id (a collision only makes two keys share one lock).
    #[cfg(feature = "postgres")]
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

/// [`DeskLocks`] over PostgreSQL session advisory locks (`pg_try_advisory_lock(class, key)`),
/// all held by one connection of their own: a session holds any number of advisory locks, so
/// thousands of customers' locks cost one connection, not one each (the store's pool is never
/// touched). A lock another node holds is tried again after a short, growing pause (5 to
/// 50 ms). When the connection breaks, every lock it held is released by the server; the next
/// lock reconnects.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresLocks {
    inner: Arc<PgLockSession>,
}

#[cfg(feature = "postgres")]
#[derive(Debug)]
struct PgLockSession {
    options: sqlx::postgres::PgConnectOptions,
    conn: Mutex<Option<sqlx::PgConnection>>,
}

#[cfg(feature = "postgres")]
impl PostgresLocks {
    /// Connects the locks' connection.
    ///
    /// # Errors
    /// [`cs_core::Error::InvalidInput`] for a malformed URL; [`cs_core::Error::Unavailable`]
    /// when the server cannot be reached.
    pub async fn connect(url: &str) -> cs_core::Result<Self> {
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e| cs_core::Error::invalid(format!("postgres url: {e}")))?;
        let session = PgLockSession {
            options,
            conn: Mutex::new(None),
        };
        session.run(0, 0, "SELECT true").await?;
        Ok(Self {
            inner: Arc::new(session),
        })
    }
}

#[cfg(feature = "postgres")]
impl PgLockSession {
    /// Runs one lock statement on the session (connecting first when needed); its boolean.
    async fn run(&self, class: i32, key: i32, sql: &str) -> cs_core::Result<bool> {
        use sqlx::{Connection, Row};
        let unavailable = |e: sqlx::Error| cs_core::Error::Unavailable {
            reason: format!("advisory lock: {e}"),
        };
        let mut conn = self.conn.lock().await;
        if conn.is_none() {
            *conn = Some(
                sqlx::PgConnection::connect_with(&self.options)
                    .await
                    .map_err(unavailable)?,
            );
        }
        let Some(c) = conn.as_mut() else {
            return Err(cs_core::Error::Unavailable {
                reason: "advisory lock: no connection".into(),
            });
        };
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") {
            query.bind(class).bind(key)
        } else {
            query
        };
        match query.fetch_one(&mut *c).await {
            Ok(row) => Ok(row.try_get::<bool, _>(0).unwrap_or(true)),
            Err(e) => {
                // A broken session released its locks; the next call starts a new one.
                tracing::warn!(error = %e, "advisory lock session lost");
                *conn = None;
                Err(unavailable(e))
            }
        }
    }
}

#[cfg(feature = "postgres")]
struct PgHeld {
    session: Arc<PgLockSession>,
    class: i32,
    key: i32,
}

#[cfg(feature = "postgres")]
impl Drop for PgHeld {
    fn drop(&mut self) {
        let (session, class, key) = (self.session.clone(), self.class, self.key);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = session
                    .run(class, key, "SELECT pg_advisory_unlock($1, $2)")
                    .await
                {
                    tracing::warn!(error = %e, "advisory lock not released (its session ended)");
                }
            });
        }
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl DeskLocks for PostgresLocks {
    async fn lock(&self, tenant: &TenantId, key: LockKey) -> cs_core::Result<LockGuard> {
        let (class, key) = (key.class(), key.key(tenant));
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            if self
                .inner
                .run(class, key, "SELECT pg_try_advisory_lock($1, $2)")
                .await?
            {
                return Ok(LockGuard::new(PgHeld {
                    session: self.inner.clone(),
                    class,
                    key,
                }));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }
}

/// The lock on one customer's messages: the process's own stripes (appending, then work), and
/// across processes the desk's lock when there is one.
#[derive(Debug)]
pub(crate) struct CustomerGuard {
    _append: OwnedMutexGuard<()>,
    _local: OwnedMutexGuard<()>,
    _desk: Option<LockGuard>,
}

/// A customer's next turn of work, reserved in the order their messages were stored: the
/// stripe's work lock, asked for (and so queued, first come first served) while the append lock
/// was held, and a place among the stripe's waiting turns.
pub(crate) struct Turn {
    lock: Pin<Box<dyn Future<Output = OwnedMutexGuard<()>> + Send>>,
    early: Option<OwnedMutexGuard<()>>,
    place: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("granted", &self.early.is_some())
            .finish_non_exhaustive()
    }
}

/// The reserved turn, now taken: work on the customer may go on until it is dropped.
#[derive(Debug)]
pub(crate) struct TurnGuard {
    _work: OwnedMutexGuard<()>,
    _place: OwnedSemaphorePermit,
}

impl Turn {
    /// Waits until the turns reserved before this one are done.
    pub(crate) async fn wait(self) -> TurnGuard {
        let work = match self.early {
            Some(g) => g,
            None => self.lock.await,
        };
        TurnGuard {
            _work: work,
            _place: self.place,
        }
    }
}

/// The locks on two customers' messages (a merge): their stripes (once when shared) and, across
/// processes, both desk locks.
#[derive(Debug)]
pub(crate) struct CustomersGuard {
    _append: Vec<OwnedMutexGuard<()>>,
    _first: OwnedMutexGuard<()>,
    _second: Option<OwnedMutexGuard<()>>,
    _desk: Vec<LockGuard>,
}

impl CustomersGuard {
    pub(super) fn new(
        append: Vec<OwnedMutexGuard<()>>,
        first: OwnedMutexGuard<()>,
        second: Option<OwnedMutexGuard<()>>,
        desk: Vec<LockGuard>,
    ) -> Self {
        Self {
            _append: append,
            _first: first,
            _second: second,
            _desk: desk,
        }
    }
}

impl Engine {
    /// Takes the lock that serialises work on one customer's messages (FIFO in this process;
    /// across processes through [`DeskLocks`] when configured).
    pub(super) async fn lock_customer(&self, customer: cs_core::CustomerId) -> CustomerGuard {
        let stripe = Self::stripe(customer);
        let append = self.inner.append_locks[stripe].clone().lock_owned().await;
        let local = self.inner.locks[stripe].clone().lock_owned().await;
        let desk = self
            .desk_lock(LockKey::Customer(customer))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, %customer, "customer lock across nodes not taken");
                None
            });
        CustomerGuard {
            _append: append,
            _local: local,
            _desk: desk,
        }
    }

    /// The lock on storing one customer's incoming messages, in this process (a desk of several
    /// processes takes [`Engine::lock_customer`] instead). Take [`Engine::reserve_turn`] before
    /// letting it go.
    pub(super) async fn lock_appends(&self, customer: cs_core::CustomerId) -> OwnedMutexGuard<()> {
        self.inner.append_locks[Self::stripe(customer)]
            .clone()
            .lock_owned()
            .await
    }

    /// Reserves the customer's next turn of work behind the turns reserved before it; called
    /// while the append lock is held, so turns follow the order messages were stored in. Waits
    /// while the stripe already has [`TURNS_PER_STRIPE`] turns waiting (a customer writing
    /// faster than the bot answers is slowed down, not queued without end).
    pub(super) async fn reserve_turn(&self, customer: cs_core::CustomerId) -> Turn {
        let stripe = Self::stripe(customer);
        let place = self.inner.turns[stripe]
            .clone()
            .acquire_owned()
            .await
            .expect("the engine never closes its turn semaphores");
        // Polled once now: a lock that is free is taken at once, a busy one queues this turn
        // (tokio's mutex serves waiters in the order they first asked).
        let mut lock: Pin<Box<dyn Future<Output = OwnedMutexGuard<()>> + Send>> =
            Box::pin(self.inner.locks[stripe].clone().lock_owned());
        let early = match lock
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(g) => Some(g),
            std::task::Poll::Pending => None,
        };
        Turn { lock, early, place }
    }

    /// The desk-wide lock of `key`, when the engine has [`DeskLocks`].
    pub(super) async fn desk_lock(&self, key: LockKey) -> cs_core::Result<Option<LockGuard>> {
        match &self.inner.desk_locks {
            Some(l) => Ok(Some(l.lock(&self.inner.tenant, key).await?)),
            None => Ok(None),
        }
    }
}
