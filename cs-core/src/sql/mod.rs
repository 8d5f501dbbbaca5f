//! Shared SQL plumbing for every SQL backend of the workspace, written once over a [`Dialect`]
//! (sqlx's approach: one body of code generic over the database):
//!
//! - [`Stmt`]: a statement and its arguments, with `$n` placeholders (PostgreSQL's form, which
//!   SQLite also reads), built without a driver;
//! - [`Driver`]: runs a [`Stmt`] on a connection of any database that has a [`Dialect`];
//! - [`SqlRow`]: reads columns from any driver's row;
//! - [`Dialect`]: what differs between databases (lock clauses, `IN` lists over a JSON array, a
//!   time column's DDL, the database's own error codes), one small impl per database: `sqlx::Sqlite` in
//!   [`sqlite`] (feature `sqlite`), `sqlx::Postgres` in [`postgres`] (feature `postgres`), each
//!   beside its pool set-up;
//! - [`migrate`]: the schema-migration runner.
//!
//! Migrations:
//! Each component (conversations, tickets, ...) owns an ordered list of [`Migration`]s. Applied
//! versions are recorded per component in `cs_schema_migrations`, pending migrations run in one
//! transaction, and a database that has a version this binary does not know is refused rather
//! than silently used.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod driver;
#[cfg(feature = "sqlite")]
pub(crate) mod group;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrate;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod stmt;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use driver::corrupt;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use driver::{Dialect, Driver, SqlRow};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use migrate::migrate;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use stmt::{Arg, Stmt};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing within a component, starting at 1.
    pub version: i64,
    /// A short description.
    pub name: &'static str,
    /// The SQL to run (several statements allowed).
    pub sql: &'static str,
}

/// Microseconds since the Unix epoch: how every SQL backend stores a time.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}
