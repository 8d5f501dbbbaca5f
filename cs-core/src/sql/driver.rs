//! What differs between SQL databases ([`Dialect`], one small impl per database) and running
//! statements on any of them ([`Driver`], written once over `sqlx::Database`).

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Arg, Stmt};
use crate::error::{Error, Result};

/// What differs between the SQL databases the stores run on, as data: lock clauses, how a JSON
/// array becomes an `IN` list, a time column's DDL, and what the database's own error codes
/// mean. Everything else (the statements, the error mapping around those codes) is written once.
///
/// Implemented for `sqlx::Sqlite` (feature `sqlite`) and `sqlx::Postgres` (feature `postgres`).
pub trait Dialect: Database {
    /// The backend's name in errors (`"sqlite"`, `"postgres"`).
    const BACKEND: &'static str;
    /// Appended to a `SELECT` in a transaction to lock the rows it reads until the transaction
    /// ends (`" FOR UPDATE"`); empty where one writer at a time makes row locks unnecessary.
    const FOR_UPDATE: &'static str;
    /// As [`Dialect::FOR_UPDATE`], but a shared lock: others may read and share-lock the rows,
    /// not change them.
    const FOR_SHARE: &'static str;
    /// Appended to a `SELECT` that claims rows for one worker: rows another transaction has
    /// locked are skipped instead of waited for.
    const SKIP_LOCKED: &'static str;
    /// Whether one call may carry several statements with arguments (fewer round trips).
    const MULTI_STATEMENT: bool;
    /// The type and default of a column that records when a row was written (the migration
    /// records' `applied_at`).
    const NOW_COLUMN: &'static str;
    /// A statement that serialises concurrent migrators until the transaction ends, where the
    /// database needs one (several processes starting at once).
    const MIGRATION_LOCK: Option<&'static str>;
    /// Whether writes run one at a time (one writer connection, SQLite): a write transaction may
    /// then read and act on what it read without row locks, because no other write can come in
    /// between.
    const SERIAL_WRITES: bool;

    /// A parenthesised subquery of the strings in the JSON array bound at placeholder `$n`, for
    /// `column IN <subquery>`.
    fn json_list(n: usize) -> String;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// What a database error means where this database says more than the common rules of
    /// [`Dialect::map_error`] (PostgreSQL's serialization failures, SQLite's busy file); `None`
    /// leaves it to them.
    fn classify(db: &dyn DatabaseError) -> Option<Error>;

    /// Maps a driver error to [`Error`], the one mapping every backend uses: unique violations
    /// are [`Error::Conflict`], then the database's own [`Dialect::classify`], lost connections
    /// and exhausted pools [`Error::Unavailable`], the rest [`Error::Backend`].
    fn map_error(e: sqlx::Error) -> Error {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Error::Conflict {
                    reason: db.message().to_owned(),
                };
            }
            if let Some(mapped) = Self::classify(db.as_ref()) {
                return mapped;
            }
        }
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable {
                reason: e.to_string(),
            },
            _ => Error::Backend {
                backend: Self::BACKEND,
                source: Box::new(e),
            },
        }
    }
}

/// The column types the stores read, from any driver's row.
pub trait SqlRow: Send {
    /// The backend's name in errors.
    const BACKEND: &'static str;

    /// A text column.
    ///
    /// # Errors
    /// A missing column or another type.
    fn text(&self, col: &str) -> Result<String>;

    /// A nullable text column.
    ///
    /// # Errors
    /// A missing column or another type.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;

    /// An integer column.
    ///
    /// # Errors
    /// A missing column or another type.
    fn int(&self, col: &str) -> Result<i64>;

    /// A nullable integer column.
    ///
    /// # Errors
    /// A missing column or another type.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;

    /// A text column parsed with `FromStr`.
    ///
    /// # Errors
    /// As [`SqlRow::text`]; a value that does not parse is a corrupt row.
    fn parse<T: std::str::FromStr>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        s.parse()
            .map_err(|_| corrupt(Self::BACKEND, format!("{col} = {s:?}")))
    }

    /// A nullable text column parsed with `FromStr`.
    ///
    /// # Errors
    /// As [`SqlRow::parse`].
    fn opt_parse<T: std::str::FromStr>(&self, col: &str) -> Result<Option<T>> {
        self.opt_text(col)?
            .map(|s| {
                s.parse()
                    .map_err(|_| corrupt(Self::BACKEND, format!("{col} = {s:?}")))
            })
            .transpose()
    }

    /// A column parsed by `parse`; a value it does not know is a corrupt row.
    ///
    /// # Errors
    /// As [`SqlRow::text`]; an unknown value is a corrupt row.
    fn known<T>(&self, col: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
        let s = self.text(col)?;
        parse(&s).ok_or_else(|| corrupt(Self::BACKEND, format!("{col} = {s:?}")))
    }

    /// A timestamp column (microseconds since the Unix epoch).
    ///
    /// # Errors
    /// As [`SqlRow::int`]; an impossible time is a corrupt row.
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        let v = self.int(col)?;
        from_micros(Self::BACKEND, v)
    }

    /// A nullable timestamp column.
    ///
    /// # Errors
    /// As [`SqlRow::time`].
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_int(col)?
            .map(|v| from_micros(Self::BACKEND, v))
            .transpose()
    }

    /// A non-negative integer column.
    ///
    /// # Errors
    /// As [`SqlRow::int`]; a negative value is a corrupt row.
    fn count(&self, col: &str) -> Result<u64> {
        let v = self.int(col)?;
        u64::try_from(v).map_err(|_| corrupt(Self::BACKEND, format!("{col} = {v}")))
    }

    /// A boolean stored as an integer.
    ///
    /// # Errors
    /// As [`SqlRow::int`].
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }

    /// A JSON text column.
    ///
    /// # Errors
    /// As [`SqlRow::text`]; JSON that does not decode is a corrupt row.
    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        serde_json::from_str(&self.text(col)?).map_err(|e| corrupt(Self::BACKEND, e.to_string()))
    }

    /// A nullable JSON text column.
    ///
    /// # Errors
    /// As [`SqlRow::json`].
    fn opt_json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        self.opt_text(col)?
            .map(|s| serde_json::from_str(&s).map_err(|e| corrupt(Self::BACKEND, e.to_string())))
            .transpose()
    }
}

impl<R> SqlRow for R
where
    R: Row,
    R::Database: Dialect,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    const BACKEND: &'static str = <R::Database as Dialect>::BACKEND;

    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col)
            .map_err(<R::Database as Dialect>::map_error)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col)
            .map_err(<R::Database as Dialect>::map_error)
    }

    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col)
            .map_err(<R::Database as Dialect>::map_error)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col)
            .map_err(<R::Database as Dialect>::map_error)
    }
}

/// Runs [`Stmt`]s on a connection of any database with a [`Dialect`]: the one place that talks
/// to the driver, so the stores are written once, generic over `D: Driver`. Implemented for every
/// `sqlx` database the dialect covers; callers never implement it.
///
/// A pool query acquires a connection first (`pool.acquire()`); a transaction derefs to its
/// connection (`&mut *tx`).
pub trait Driver: Dialect {
    /// A row of a result.
    type Record: SqlRow;

    /// Every row the statement returns.
    ///
    /// # Errors
    /// The driver's errors, mapped by [`Dialect::map_error`].
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt,
    ) -> impl Future<Output = Result<Vec<Self::Record>>> + Send + 'c;

    /// The first row the statement returns, if any.
    ///
    /// # Errors
    /// As [`Driver::fetch_all`].
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt,
    ) -> impl Future<Output = Result<Option<Self::Record>>> + Send + 'c;

    /// Runs the statement; returns how many rows it changed.
    ///
    /// # Errors
    /// As [`Driver::fetch_all`].
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt,
    ) -> impl Future<Output = Result<u64>> + Send + 'c;

    /// Runs a script of statements without arguments (DDL).
    ///
    /// # Errors
    /// As [`Driver::fetch_all`].
    fn execute_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> impl Future<Output = Result<()>> + Send + 'c;
}

impl<D> Driver for D
where
    D: Dialect,
    D::Row: SqlRow,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> D::Arguments<'q>: IntoArguments<'q, D>,
    for<'q> String: Encode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Type<D>,
    for<'q> Option<String>: Encode<'q, D> + Type<D>,
    for<'q> Option<i64>: Encode<'q, D> + Type<D>,
{
    type Record = D::Row;

    async fn fetch_all(conn: &mut D::Connection, stmt: Stmt) -> Result<Vec<D::Row>> {
        let (sql, args) = stmt.into_parts();
        bound::<D>(&sql, args)
            .fetch_all(conn)
            .await
            .map_err(D::map_error)
    }

    async fn fetch_optional(conn: &mut D::Connection, stmt: Stmt) -> Result<Option<D::Row>> {
        let (sql, args) = stmt.into_parts();
        bound::<D>(&sql, args)
            .fetch_optional(conn)
            .await
            .map_err(D::map_error)
    }

    async fn execute(conn: &mut D::Connection, stmt: Stmt) -> Result<u64> {
        let (sql, args) = stmt.into_parts();
        let done = bound::<D>(&sql, args)
            .execute(conn)
            .await
            .map_err(D::map_error)?;
        Ok(D::rows_affected(&done))
    }

    async fn execute_script<'c>(conn: &'c mut D::Connection, sql: &'c str) -> Result<()> {
        // The executor's own future (boxed, `Send`), unprepared: several statements at once.
        conn.execute(sqlx::raw_sql(sql))
            .await
            .map_err(D::map_error)?;
        Ok(())
    }
}

/// `sql` with `args` bound in order.
fn bound<D>(sql: &str, args: Vec<Arg>) -> sqlx::query::Query<'_, D, D::Arguments<'_>>
where
    D: Database,
    for<'q> String: Encode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Type<D>,
    for<'q> Option<String>: Encode<'q, D> + Type<D>,
    for<'q> Option<i64>: Encode<'q, D> + Type<D>,
{
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
        };
    }
    q
}

/// A row the store cannot read back: a bug or a database changed by hand.
pub(crate) fn corrupt(backend: &'static str, what: String) -> Error {
    Error::Backend {
        backend,
        source: format!("corrupt row: {what}").into(),
    }
}

fn from_micros(backend: &'static str, v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(backend, format!("timestamp {v}")))
}
