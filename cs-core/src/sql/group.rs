//! Group commit for SQLite: one thread owns the writer connection and runs many write jobs per
//! transaction.
//!
//! Why: through `sqlx`, every statement is handed to the connection's worker thread and its
//! answer handed back (two thread wake-ups a statement); under load the server spent most of its
//! time in those hand-offs, not in SQLite. Here a caller hands over a whole *job* (every statement
//! of one store operation) once; the writer thread runs it with cached prepared statements, and
//! while it works further jobs queue up and go into the same transaction:
//!
//! - the writer takes the first waiting job, `BEGIN IMMEDIATE`, then every job that is waiting
//!   (up to [`MAX_BATCH`]), each inside a `SAVEPOINT`: a job that fails is rolled back to its
//!   savepoint and fails alone, the others go on;
//! - one `COMMIT` for the batch; only then are the callers answered, so an acknowledged write is
//!   committed (and as durable as the connection's `synchronous` setting makes a commit);
//! - a failed `COMMIT` rolls the batch back and fails every job in it;
//! - checkpoints (copying the write-ahead log into the database file, with their syncs) run on a
//!   thread of their own, so the writer only appends to the log; the writer itself finishes one
//!   between batches every second, which lets SQLite start the log afresh (under steady writes a
//!   checkpointer alone never catches up and the log would grow without end).
//!
//! Jobs are synchronous on the writer thread. The store's write code is written once as async
//! code over [`super::super::store`]'s connection type; on this writer its statements complete at
//! once, so the job's future is polled once, to completion, on the writer thread.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::{Arg, SqlRow, Stmt};
use crate::error::{Error, Result};

/// The most jobs one transaction takes: bounds how long the first caller of a batch waits for
/// the last job's work.
pub(crate) const MAX_BATCH: usize = 256;
/// How many jobs may wait for the writer before callers wait to hand theirs over.
const QUEUE: usize = 4_096;
/// Prepared statements kept per connection (the stores use a few dozen distinct statements).
const STATEMENT_CACHE: usize = 256;
/// The writer's page cache, in KiB (SQLite's default is 2 MiB): the hot pages of the message
/// table and its indexes stay in the writer's memory instead of being read back from the file
/// for every batch.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// The size the write-ahead log file is cut back to when SQLite starts it afresh (a burst of
/// writes may grow it past this meanwhile).
const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How often the writer itself finishes a checkpoint between batches. SQLite starts the log
/// afresh only when a write begins after a checkpoint that copied every frame; under steady
/// writes the checkpointer never quite catches up, so without this the log would grow without
/// end. The writer's own checkpoint copies only what was written since the checkpointer's last
/// round.
const WRITER_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How hard a commit is pushed to disk: SQLite's `synchronous` setting on the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` (the default): a commit is written to the write-ahead log without
    /// waiting for the disk. Nothing is lost when the process crashes; a power loss or an
    /// operating-system crash can lose the transactions committed since the last checkpoint's
    /// sync (the last moments before the loss), never corrupting the database.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit waits until the log is on disk, so nothing acknowledged
    /// is lost even to a power loss; each commit (each batch, with group commit) costs a disk
    /// flush.
    Full,
}

impl Durability {
    /// The `PRAGMA synchronous` value.
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// A statement runner on the writer thread's connection, lent to one job at a time.
#[derive(Debug)]
pub(crate) struct Local<'c> {
    conn: &'c mut Connection,
}

impl Local<'_> {
    /// The same connection, lent on for a shorter time.
    pub(crate) fn reborrow(&mut self) -> Local<'_> {
        Local {
            conn: &mut *self.conn,
        }
    }

    /// Runs a statement that returns no rows; how many rows it changed.
    pub(crate) fn execute(&mut self, stmt: Stmt) -> Result<u64> {
        let mut s = prepare(self.conn, &stmt)?;
        let n = s.raw_execute().map_err(map_error)?;
        Ok(n as u64)
    }

    /// Every row a statement returns.
    pub(crate) fn fetch_all(&mut self, stmt: Stmt) -> Result<Vec<LocalRow>> {
        self.fetch(stmt, usize::MAX)
    }

    /// The first row a statement returns (the statement still runs to its end, so a
    /// `RETURNING` write changes every row it names).
    pub(crate) fn fetch_optional(&mut self, stmt: Stmt) -> Result<Option<LocalRow>> {
        Ok(self.fetch(stmt, usize::MAX)?.into_iter().next())
    }

    fn fetch(&mut self, stmt: Stmt, limit: usize) -> Result<Vec<LocalRow>> {
        let mut s = prepare(self.conn, &stmt)?;
        let names: Arc<[String]> = s.column_names().into_iter().map(str::to_owned).collect();
        let width = names.len();
        let mut rows = s.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_error)? {
            if out.len() >= limit {
                continue;
            }
            let values = (0..width)
                .map(|i| row.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_error)?;
            out.push(LocalRow {
                names: names.clone(),
                values,
            });
        }
        Ok(out)
    }
}

/// `stmt` prepared (from the connection's cache) with its arguments bound. `$n` placeholders
/// are bound by their number, wherever they appear, as `sqlx` binds them.
fn prepare<'c>(conn: &'c Connection, stmt: &Stmt) -> Result<CachedStatement<'c>> {
    let mut s = conn.prepare_cached(stmt.sql()).map_err(map_error)?;
    let args = stmt.args();
    for i in 1..=s.parameter_count() {
        let n = s
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$').or_else(|| name.strip_prefix('?')))
            .and_then(|digits| digits.parse::<usize>().ok())
            .unwrap_or(i);
        let arg = n
            .checked_sub(1)
            .and_then(|k| args.get(k))
            .ok_or_else(|| Error::invalid(format!("no argument for placeholder {n}")))?;
        match arg {
            Arg::Text(v) => s.raw_bind_parameter(i, v),
            Arg::Int(v) => s.raw_bind_parameter(i, v),
            Arg::OptText(v) => s.raw_bind_parameter(i, v),
            Arg::OptInt(v) => s.raw_bind_parameter(i, v),
        }
        .map_err(map_error)?;
    }
    Ok(s)
}

/// A row read on the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct LocalRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl LocalRow {
    fn value(&self, col: &str) -> Result<&Value> {
        self.names
            .iter()
            .position(|n| n == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| super::corrupt("sqlite", format!("no column {col}")))
    }
}

impl SqlRow for LocalRow {
    const BACKEND: &'static str = "sqlite";

    fn text(&self, col: &str) -> Result<String> {
        self.opt_text(col)?
            .ok_or_else(|| super::corrupt("sqlite", format!("{col} is NULL")))
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(super::corrupt("sqlite", format!("{col} = {other:?}"))),
        }
    }

    fn int(&self, col: &str) -> Result<i64> {
        self.opt_int(col)?
            .ok_or_else(|| super::corrupt("sqlite", format!("{col} is NULL")))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Integer(v) => Ok(Some(*v)),
            other => Err(super::corrupt("sqlite", format!("{col} = {other:?}"))),
        }
    }
}

/// Maps a SQLite error from the writer thread, as [`super::Dialect::map_error`] maps `sqlx`'s:
/// unique violations are conflicts, a busy file is unavailable, the rest backend errors (a
/// foreign-key violation keeps its code for the store to recognise).
pub(crate) fn map_error(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let reason = msg.clone().unwrap_or_else(|| f.to_string());
        match f.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return Error::Conflict { reason };
            }
            _ => {}
        }
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) {
            return Error::Unavailable { reason };
        }
    }
    Error::Backend {
        backend: "sqlite",
        source: Box::new(e),
    }
}

/// Whether `e` (from the writer thread) is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &Error) -> bool {
    matches!(e, Error::Backend { source, .. }
        if matches!(source.downcast_ref(), Some(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY))
}

/// One job handed to the writer.
trait Work: Send {
    /// Runs on the writer thread inside the job's savepoint; whether it succeeded, and how to
    /// answer its caller once the batch's commit is known.
    fn run(self: Box<Self>, local: &mut Local<'_>) -> (bool, Answer);
    /// Answers the caller without running (the batch could not start).
    fn fail(self: Box<Self>, e: Error);
}

/// Answers a caller with the commit's outcome (`None`: committed).
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

struct Task<F, T> {
    job: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Work for Task<F, T>
where
    F: FnOnce(&mut Local<'_>) -> Result<T> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, local: &mut Local<'_>) -> (bool, Answer) {
        let Task { job, reply } = *self;
        let result = job(local);
        let ok = result.is_ok();
        let answer: Answer = Box::new(move |failed: Option<&str>| {
            let result = match failed {
                None => result,
                Some(reason) => Err(Error::Unavailable {
                    reason: format!("the write was not committed: {reason}"),
                }),
            };
            let _ = reply.send(result);
        });
        (ok, answer)
    }

    fn fail(self: Box<Self>, e: Error) {
        let _ = self.reply.send(Err(e));
    }
}

/// The writer thread's handle: jobs go in through a bounded queue. Dropping the last handle ends
/// the thread once the queued jobs are done, closing the connection.
#[derive(Debug)]
pub(crate) struct GroupWriter {
    jobs: mpsc::Sender<Box<dyn Work>>,
}

impl GroupWriter {
    /// Opens a writer connection to the (existing, migrated) database at `path` and starts its
    /// thread.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file cannot be opened.
    pub(crate) fn open(path: &Path, durability: Durability) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Unavailable {
            reason: format!("cannot open {}: {e}", path.display()),
        })?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(map_error)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};
             PRAGMA temp_store = MEMORY;",
            durability.pragma()
        ))
        .map_err(map_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Checkpoints (copying the log into the file, with its syncs) run on a thread of their
        // own, so the writer, the one serial part of the store, only appends to the log. Without
        // that thread the writer checkpoints itself, as SQLite does by default.
        let stopped = match Checkpointer::start(path) {
            Ok(stopped) => {
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
                    .map_err(map_error)?;
                Some(stopped)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread; the SQLite writer checkpoints itself");
                None
            }
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let own_checkpoints = stopped.is_some();
                run(conn, queue, own_checkpoints);
                // The writer is done: the checkpointer makes its last checkpoint and stops.
                drop(stopped);
            })
            .map_err(|e| Error::Unavailable {
                reason: format!("cannot start the SQLite writer: {e}"),
            })?;
        Ok(Self { jobs })
    }

    /// Runs `job` on the writer thread in the next batch; returns its result once the batch is
    /// committed.
    ///
    /// # Errors
    /// The job's own error (its writes rolled back); [`Error::Unavailable`] when the batch could
    /// not commit or the writer is gone.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T>
    where
        F: FnOnce(&mut Local<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Task { job, reply }))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The checkpoint thread: every [`CHECKPOINT_EVERY`] a passive checkpoint (it never blocks the
/// writer or a reader; what it cannot copy yet waits for the next round) on a connection of its
/// own, and a last one when the writer stops.
struct Checkpointer;

impl Checkpointer {
    /// Starts the thread on the database at `path`; dropping the returned sender stops it.
    fn start(path: &Path) -> Result<std::sync::mpsc::Sender<()>> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Unavailable {
            reason: format!("cannot open {}: {e}", path.display()),
        })?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(map_error)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(CHECKPOINT_EVERY),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    );
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "SQLite checkpoint failed; retried next round");
                    }
                    if last {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Unavailable {
                reason: format!("cannot start the SQLite checkpointer: {e}"),
            })?;
        Ok(stop)
    }
}

fn gone() -> Error {
    Error::Unavailable {
        reason: "the SQLite writer stopped".into(),
    }
}

/// Runs a fixed statement (transaction control) on the writer's connection.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

/// The writer thread: batches of jobs, one transaction each.
/// With `own_checkpoints`, the writer also checkpoints every [`WRITER_CHECKPOINT_EVERY`], after
/// answering a batch's callers, so the log is started afresh.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Box<dyn Work>>, own_checkpoints: bool) {
    let mut last_checkpoint = std::time::Instant::now();
    let mut stats = BatchStats::default();
    while let Some(first) = queue.blocking_recv() {
        if let Err(e) = control(&conn, "BEGIN IMMEDIATE") {
            first.fail(map_error(e));
            continue;
        }
        let mut answers: Vec<Answer> = Vec::new();
        let mut broken: Option<String> = None;
        let mut next = Some(first);
        while let Some(work) = next.take() {
            if let Err(e) = control(&conn, "SAVEPOINT job") {
                broken = Some(e.to_string());
                work.fail(map_error(e));
                break;
            }
            let mut local = Local { conn: &mut conn };
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| work.run(&mut local)));
            let ok = match ran {
                Ok((ok, answer)) => {
                    answers.push(answer);
                    ok
                }
                // A panicking job's caller sees the writer's answer channel closed.
                Err(_) => false,
            };
            let settled = if ok {
                control(&conn, "RELEASE job")
            } else {
                control(&conn, "ROLLBACK TO job").and_then(|()| control(&conn, "RELEASE job"))
            };
            if let Err(e) = settled {
                broken = Some(e.to_string());
                break;
            }
            if answers.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        let failed = match broken {
            Some(reason) => Some(reason),
            None => control(&conn, "COMMIT").err().map(|e| e.to_string()),
        };
        if failed.is_some() && !conn.is_autocommit() {
            let _ = control(&conn, "ROLLBACK");
        }
        stats.record(answers.len());
        for answer in answers {
            answer(failed.as_deref());
        }
        if own_checkpoints && last_checkpoint.elapsed() >= WRITER_CHECKPOINT_EVERY {
            last_checkpoint = std::time::Instant::now();
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "SQLite checkpoint on the writer failed");
            }
        }
    }
}

/// How full the writer's transactions are, logged at debug level every [`BatchStats::EVERY`]:
/// the one figure that tells whether group commit is grouping.
#[derive(Debug)]
struct BatchStats {
    since: std::time::Instant,
    batches: u64,
    jobs: u64,
}

impl Default for BatchStats {
    fn default() -> Self {
        Self {
            since: std::time::Instant::now(),
            batches: 0,
            jobs: 0,
        }
    }
}

impl BatchStats {
    const EVERY: Duration = Duration::from_secs(5);

    fn record(&mut self, jobs: usize) {
        self.batches += 1;
        self.jobs += jobs as u64;
        if self.since.elapsed() >= Self::EVERY {
            tracing::debug!(
                batches = self.batches,
                jobs = self.jobs,
                jobs_per_batch = self.jobs as f64 / self.batches as f64,
                "SQLite writer"
            );
            *self = Self::default();
        }
    }
}
