//! The schema-migration runner, written once for every [`Dialect`].

use sqlx::Pool;

use super::{Driver, Migration, SqlRow, Stmt};
use crate::error::{Error, Result};

/// Applies the component's pending migrations in one transaction (on SQLite, run it on the
/// writer). Concurrent callers (several processes starting at once) are serialised by the
/// dialect's migration lock, or by the database's single writer.
///
/// # Errors
/// [`Error::InvalidInput`] when the database is newer than this build (a version this build does
/// not know is refused rather than silently used); driver errors.
pub async fn migrate<D: Driver>(pool: &Pool<D>, component: &str, list: &[Migration]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(D::map_error)?;
    if let Some(lock) = D::MIGRATION_LOCK {
        D::execute(&mut tx, Stmt::new(lock)).await?;
    }
    let records = format!(
        "CREATE TABLE IF NOT EXISTS cs_schema_migrations (
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            name TEXT NOT NULL,
            applied_at {},
            PRIMARY KEY (component, version)
        )",
        D::NOW_COLUMN
    );
    D::execute_script(&mut tx, &records).await?;
    let applied = D::fetch_optional(
        &mut tx,
        Stmt::new(
            "SELECT COALESCE(MAX(version), 0) AS v FROM cs_schema_migrations
             WHERE component = $1",
        )
        .bind(component),
    )
    .await?
    .map_or(Ok(0), |r| r.int("v"))?;
    let known = list.last().map_or(0, |m| m.version);
    if applied > known {
        return Err(Error::invalid(format!(
            "database schema of {component} is at version {applied}, newer than this build \
             ({known}); upgrade the software"
        )));
    }
    // DDL is transactional on both databases: the migrations and their records commit together.
    for m in list.iter().filter(|m| m.version > applied) {
        D::execute_script(&mut tx, m.sql).await?;
        D::execute(
            &mut tx,
            Stmt::new(
                "INSERT INTO cs_schema_migrations (component, version, name) VALUES ($1, $2, $3)",
            )
            .bind(component)
            .bind(m.version)
            .bind(m.name),
        )
        .await?;
    }
    tx.commit().await.map_err(D::map_error)
}
