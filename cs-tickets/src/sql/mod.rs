//! The SQL ticket store, written once: [`SqlTicketStore`] implements [`crate::TicketStore`] for
//! every database with a [`TicketDialect`] (the conversation store's [`Driver`] plus what tickets
//! need per database: the DDL and full-text search). Both backends keep the same tables and run
//! the same statements; `sqlite.rs` and `postgres.rs` hold what differs and how each is opened.

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use cs_core::sql::{Arg, Driver, Migration, SqlRow, Stmt, micros};
use cs_core::{TenantId, TicketId};
use sqlx::{Database, Pool, Transaction};

use crate::error::{Error, Result};
use crate::logic::{self, Created};
use crate::model::{AuditEntry, Comment, NewComment, NewTicket, Ticket, TicketQuery, UpdateTicket};
use crate::sla::{SlaPolicy, SlaState};
use crate::store::TicketStore;

/// What tickets need from a database beyond the conversation store's [`Driver`]: their schema
/// and full-text search. Implemented for `sqlx::Sqlite` (feature `sqlite`) and `sqlx::Postgres`
/// (feature `postgres`).
pub trait TicketDialect: Driver {
    /// The ticket schema, in order.
    const MIGRATIONS: &'static [Migration];

    /// A `WHERE` clause matching tickets whose text contains `needle` (lower-cased, trimmed, not
    /// empty), with its argument bound at `$n`.
    fn text_filter(n: usize, needle: &str) -> (String, Arg);
}

/// The tables both SQL backends share, after `cs_tickets (rid ...,` (each backend says how `rid`
/// is generated). `BIGINT` is 64-bit in PostgreSQL and has integer affinity in SQLite.
macro_rules! ticket_tables {
    () => {
        r#"
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    number BIGINT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    grp TEXT,
    assignee TEXT,
    customer TEXT,
    conversation TEXT,
    tags TEXT NOT NULL,
    fields TEXT NOT NULL,
    sla TEXT,
    csat TEXT,
    sla_warn_at BIGINT,
    sla_due_at BIGINT,
    sla_next_at BIGINT,
    sla_paused BIGINT NOT NULL,
    comment_count BIGINT NOT NULL,
    search_text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    UNIQUE (tenant, id),
    UNIQUE (tenant, number)
);
CREATE INDEX cs_tickets_status ON cs_tickets (tenant, status);
CREATE INDEX cs_tickets_assignee ON cs_tickets (tenant, assignee);
CREATE INDEX cs_tickets_group ON cs_tickets (tenant, grp);
CREATE INDEX cs_tickets_customer ON cs_tickets (tenant, customer);
CREATE INDEX cs_tickets_sla_next ON cs_tickets (tenant, sla_next_at);
CREATE INDEX cs_tickets_sla_due ON cs_tickets (tenant, sla_due_at);
CREATE TABLE cs_ticket_comments (
    tenant TEXT NOT NULL,
    ticket TEXT NOT NULL,
    seq BIGINT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    public BIGINT NOT NULL,
    attachments TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, ticket, seq)
);
CREATE TABLE cs_ticket_audit (
    tenant TEXT NOT NULL,
    ticket TEXT NOT NULL,
    version BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    field TEXT NOT NULL,
    from_value TEXT,
    to_value TEXT,
    PRIMARY KEY (tenant, ticket, version, idx)
);
"#
    };
}
pub(crate) use ticket_tables;

const COMPONENT: &str = "tickets";

/// Applies pending ticket migrations to `pool` (on SQLite, the writer; also run by the builders).
///
/// # Errors
/// [`crate::Error::InvalidInput`] when the database is newer than this build; driver errors.
pub async fn migrate<D: TicketDialect>(pool: &Pool<D>) -> Result<()> {
    Ok(cs_core::sql::migrate(pool, COMPONENT, D::MIGRATIONS).await?)
}

/// A [`TicketStore`] in a SQL database, one implementation for every [`TicketDialect`]:
/// `SqliteTicketStore` (`SqlTicketStore<sqlx::Sqlite>`) and `PostgresTicketStore`
/// (`SqlTicketStore<sqlx::Postgres>`).
pub struct SqlTicketStore<D: Database> {
    writer: Pool<D>,
    reader: Pool<D>,
    sla: Option<Arc<SlaPolicy>>,
}

impl<D: Database> Clone for SqlTicketStore<D> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            sla: self.sla.clone(),
        }
    }
}

impl<D: Database> fmt::Debug for SqlTicketStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTicketStore")
            .field("backend", &D::NAME)
            .field("writer", &self.writer)
            .field("reader", &self.reader)
            .field("sla", &self.sla.as_ref().map(|p| p.name()))
            .finish()
    }
}

/// A bound value of a JSON column.
fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid(e.to_string()))
}

/// `s` escaped for a `LIKE ... ESCAPE '\'` pattern, wrapped in `%`.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Inserts a new ticket row.
fn insert_ticket(c: &Created) -> Result<Stmt> {
    let t = &c.ticket;
    let sla = t.sla.as_ref();
    let at = |d: Option<chrono::DateTime<chrono::Utc>>| Arg::OptInt(d.map(micros));
    let mut s = Stmt::new(
        "INSERT INTO cs_tickets (tenant, id, number, subject, kind, priority, status, grp,
            assignee, customer, conversation, tags, fields, sla, csat, sla_warn_at,
            sla_due_at, sla_next_at, sla_paused, comment_count, search_text, created_at,
            updated_at, version) VALUES ",
    );
    s.push_values([
        t.tenant.as_str().into(),
        t.id.to_string().into(),
        (t.number as i64).into(),
        t.subject.as_str().into(),
        t.kind.as_str().into(),
        t.priority.as_str().into(),
        t.status.as_str().into(),
        t.group.clone().into(),
        t.assignee.map(|a| a.to_string()).into(),
        t.customer.map(|a| a.to_string()).into(),
        t.conversation.map(|a| a.to_string()).into(),
        json(&t.tags)?.into(),
        json(&t.fields)?.into(),
        sla.map(json).transpose()?.into(),
        t.csat.as_ref().map(json).transpose()?.into(),
        at(sla.and_then(|s| s.warn_at())),
        at(sla.and_then(|s| s.due_at())),
        at(sla.and_then(|s| s.next_mark_at())),
        sla.is_some_and(|s| s.paused()).into(),
        c.comment.is_some().into(),
        c.text.as_str().into(),
        micros(t.created_at).into(),
        micros(t.updated_at).into(),
        (t.version as i64).into(),
    ]);
    Ok(s)
}

/// Inserts a comment of `t`.
fn insert_comment(t: &Ticket, c: &Comment) -> Result<Stmt> {
    let mut s = Stmt::new(
        "INSERT INTO cs_ticket_comments (tenant, ticket, seq, author, body, public,
            attachments, created_at) VALUES ",
    );
    s.push_values([
        t.tenant.as_str().into(),
        t.id.to_string().into(),
        (c.seq as i64).into(),
        json(&c.author)?.into(),
        c.body.as_str().into(),
        c.public.into(),
        json(&c.attachments)?.into(),
        micros(c.created_at).into(),
    ]);
    Ok(s)
}

/// Inserts audit entries of `t` at its current version (nothing for none).
fn insert_audit(t: &Ticket, audit: &[AuditEntry]) -> Result<Stmt> {
    if audit.is_empty() {
        return Ok(Stmt::default());
    }
    let mut s = Stmt::new(
        "INSERT INTO cs_ticket_audit (tenant, ticket, version, idx, at, actor, field,
            from_value, to_value) VALUES ",
    );
    for (i, a) in audit.iter().enumerate() {
        if i > 0 {
            s.push(", ");
        }
        s.push_values([
            t.tenant.as_str().into(),
            t.id.to_string().into(),
            (t.version as i64).into(),
            (i as i64).into(),
            micros(a.at).into(),
            json(&a.actor)?.into(),
            a.field.as_str().into(),
            a.from.clone().into(),
            a.to.clone().into(),
        ]);
    }
    Ok(s)
}

/// The statements that store a change's comment and audit entries.
fn children(t: &Ticket, comment: Option<&Comment>, audit: &[AuditEntry]) -> Result<Vec<Stmt>> {
    let mut out = Vec::with_capacity(2);
    if let Some(c) = comment {
        out.push(insert_comment(t, c)?);
    }
    out.push(insert_audit(t, audit)?);
    Ok(out)
}

/// The search: tickets of the tenant matching `q`, newest first.
fn search<D: TicketDialect>(q: &TicketQuery) -> Stmt {
    let mut s = Stmt::new("SELECT * FROM cs_tickets t WHERE tenant = ");
    s.push_bind(q.tenant.as_str());
    if !q.statuses.is_empty() {
        s.push(" AND status ")
            .push_in::<D>(q.statuses.iter().map(|s| s.as_str()));
    }
    if let Some(a) = q.assignee {
        s.push(" AND assignee = ").push_bind(a.to_string());
    }
    if let Some(g) = &q.group {
        s.push(" AND grp = ").push_bind(g.as_str());
    }
    if let Some(c) = q.customer {
        s.push(" AND customer = ").push_bind(c.to_string());
    }
    if let Some(tag) = &q.tag {
        let quoted = serde_json::to_string(&tag.trim().to_lowercase()).unwrap_or_default();
        s.push(" AND tags LIKE ")
            .push_bind(like_pattern(&quoted))
            .push(" ESCAPE '\\'");
    }
    if let Some(f) = q.sla {
        let at = micros(f.at);
        match f.state {
            SlaState::Breached => s.push(" AND sla_due_at <= ").push_bind(at),
            SlaState::Warning => s
                .push(" AND sla_warn_at <= ")
                .push_bind(at)
                .push(" AND sla_due_at > ")
                .push_bind(at),
            SlaState::Ok => s.push(" AND sla_warn_at > ").push_bind(at),
            SlaState::Paused => s.push(" AND sla_paused = 1"),
            SlaState::Due => s.push(" AND sla_next_at <= ").push_bind(at),
        };
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let (clause, arg) = D::text_filter(s.args().len() + 1, &text.to_lowercase());
        s = s.bind(arg);
        s.push(" AND ").push(&clause);
    }
    s.push(" ORDER BY number DESC LIMIT ")
        .push_bind(q.limit.clamp(1, 1000) as i64);
    s
}

/// A ticket row and its comment count.
fn ticket_from_row<R: SqlRow>(row: &R) -> Result<(Ticket, u64)> {
    let ticket = Ticket {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        number: row.count("number")?,
        subject: row.text("subject")?,
        kind: row.known("kind", crate::TicketKind::parse)?,
        priority: row.known("priority", cs_core::Priority::parse)?,
        status: row.known("status", crate::TicketStatus::parse)?,
        group: row.opt_text("grp")?,
        assignee: row.opt_parse("assignee")?,
        customer: row.opt_parse("customer")?,
        conversation: row.opt_parse("conversation")?,
        tags: row.json("tags")?,
        fields: row.json("fields")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: row.count("version")?,
        sla: row.opt_json("sla")?,
        csat: row.opt_json("csat")?,
    };
    Ok((ticket, row.count("comment_count")?))
}

fn comment_from_row<R: SqlRow>(r: &R) -> Result<Comment> {
    Ok(Comment {
        seq: r.count("seq")?,
        author: r.json("author")?,
        body: r.text("body")?,
        public: r.flag("public")?,
        attachments: r.json("attachments")?,
        created_at: r.time("created_at")?,
    })
}

fn audit_from_row<R: SqlRow>(r: &R) -> Result<AuditEntry> {
    Ok(AuditEntry {
        at: r.time("at")?,
        actor: r.json("actor")?,
        field: r.text("field")?,
        from: r.opt_text("from_value")?,
        to: r.opt_text("to_value")?,
    })
}

impl<D: TicketDialect> SqlTicketStore<D> {
    /// A store over migrated pools.
    async fn migrated(writer: Pool<D>, reader: Pool<D>, sla: Option<SlaPolicy>) -> Result<Self> {
        migrate(&writer).await?;
        Ok(Self {
            writer,
            reader,
            sla: sla.map(Arc::new),
        })
    }

    async fn fetch_all(pool: &Pool<D>, stmt: Stmt) -> Result<Vec<D::Record>> {
        let mut conn = pool.acquire().await.map_err(db::<D>)?;
        Ok(D::fetch_all(&mut conn, stmt).await?)
    }

    async fn fetch_optional(pool: &Pool<D>, stmt: Stmt) -> Result<Option<D::Record>> {
        let mut conn = pool.acquire().await.map_err(db::<D>)?;
        Ok(D::fetch_optional(&mut conn, stmt).await?)
    }

    async fn load(&self, pool: &Pool<D>, tenant: &TenantId, id: TicketId) -> Result<(Ticket, u64)> {
        Self::fetch_optional(
            pool,
            Stmt::new("SELECT * FROM cs_tickets WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string()),
        )
        .await?
        .map(|r| ticket_from_row(&r))
        .transpose()?
        .ok_or_else(|| Error::NotFound { id: id.to_string() })
    }

    /// Writes a changed ticket if it is still at `read_version`; `false` when it is not.
    async fn write(
        tx: &mut Transaction<'static, D>,
        t: &Ticket,
        read_version: u64,
        comment_count: u64,
        text: &str,
    ) -> Result<bool> {
        let m = |d: Option<chrono::DateTime<chrono::Utc>>| d.map(micros);
        let sla = t.sla.as_ref();
        let done = D::execute(
            tx,
            Stmt::new(
                "UPDATE cs_tickets SET subject = $1, priority = $2, status = $3, grp = $4,
                    assignee = $5, tags = $6, fields = $7, sla = $8, csat = $9,
                    sla_warn_at = $10, sla_due_at = $11, sla_next_at = $12,
                    sla_paused = $13, comment_count = $14, updated_at = $15, version = $16,
                    search_text = CASE WHEN $17 = '' THEN search_text
                                  ELSE search_text || $17 END
                 WHERE tenant = $18 AND id = $19 AND version = $20",
            )
            .bind(t.subject.as_str())
            .bind(t.priority.as_str())
            .bind(t.status.as_str())
            .bind(&t.group)
            .bind(t.assignee.map(|a| a.to_string()))
            .bind(json(&t.tags)?)
            .bind(json(&t.fields)?)
            .bind(sla.map(json).transpose()?)
            .bind(t.csat.as_ref().map(json).transpose()?)
            .bind(m(sla.and_then(|s| s.warn_at())))
            .bind(m(sla.and_then(|s| s.due_at())))
            .bind(m(sla.and_then(|s| s.next_mark_at())))
            .bind(sla.is_some_and(|s| s.paused()))
            .bind(comment_count as i64)
            .bind(micros(t.updated_at))
            .bind(t.version as i64)
            .bind(text)
            .bind(t.tenant.as_str())
            .bind(t.id.to_string())
            .bind(read_version as i64),
        )
        .await?;
        Ok(done == 1)
    }

    /// The rows of a ticket's child table in order; [`Error::NotFound`] when the ticket does not
    /// exist.
    async fn child_rows(
        &self,
        table: &str,
        order: &str,
        tenant: &TenantId,
        id: TicketId,
    ) -> Result<Vec<D::Record>> {
        let rows = Self::fetch_all(
            &self.reader,
            Stmt::dynamic(format!(
                "SELECT * FROM {table} WHERE tenant = $1 AND ticket = $2 ORDER BY {order}"
            ))
            .bind(tenant.as_str())
            .bind(id.to_string()),
        )
        .await?;
        if rows.is_empty() {
            self.load(&self.reader, tenant, id).await?;
        }
        Ok(rows)
    }

    /// Runs `stmts` in `tx`: as one call where the driver takes several statements at once
    /// (fewer round trips), else one by one.
    async fn run(tx: &mut Transaction<'static, D>, stmts: Vec<Stmt>) -> Result<()> {
        let stmts = if D::MULTI_STATEMENT {
            let mut one = Stmt::default();
            for s in stmts.into_iter().filter(|s| !s.is_empty()) {
                one.append(s);
            }
            vec![one]
        } else {
            stmts
        };
        for s in stmts.into_iter().filter(|s| !s.is_empty()) {
            D::execute(tx, s).await?;
        }
        Ok(())
    }
}

/// A driver error as a ticket error.
fn db<D: Driver>(e: sqlx::Error) -> Error {
    Error::from(D::map_error(e))
}

#[async_trait]
impl<D: TicketDialect> TicketStore for SqlTicketStore<D> {
    async fn create(&self, new: NewTicket) -> Result<Ticket> {
        logic::check_new(&new)?;
        let mut tx = self.writer.begin().await.map_err(db::<D>)?;
        let number = D::fetch_optional(
            &mut tx,
            Stmt::new(
                "INSERT INTO cs_ticket_counters (tenant, last) VALUES ($1, 1)
                 ON CONFLICT (tenant) DO UPDATE SET last = cs_ticket_counters.last + 1
                 RETURNING last",
            )
            .bind(new.tenant.as_str()),
        )
        .await?
        .ok_or_else(|| Error::invalid("no ticket number"))?
        .count("last")?;
        let c = logic::create(&new, number, self.sla.as_deref())?;
        let mut stmts = vec![insert_ticket(&c)?];
        stmts.extend(children(&c.ticket, c.comment.as_ref(), &c.audit)?);
        Self::run(&mut tx, stmts).await?;
        tx.commit().await.map_err(db::<D>)?;
        Ok(c.ticket)
    }

    async fn get(&self, tenant: &TenantId, id: TicketId) -> Result<Ticket> {
        Ok(self.load(&self.reader, tenant, id).await?.0)
    }

    async fn get_by_number(&self, tenant: &TenantId, number: u64) -> Result<Ticket> {
        Self::fetch_optional(
            &self.reader,
            Stmt::new("SELECT * FROM cs_tickets WHERE tenant = $1 AND number = $2")
                .bind(tenant.as_str())
                .bind(number as i64),
        )
        .await?
        .map(|r| ticket_from_row(&r).map(|t| t.0))
        .transpose()?
        .ok_or_else(|| Error::NotFound {
            id: format!("#{number}"),
        })
    }

    async fn update(&self, u: UpdateTicket) -> Result<Ticket> {
        let (mut t, count) = self.load(&self.reader, &u.tenant, u.id).await?;
        if t.version != u.expected_version {
            return Err(logic::conflict(u.id, u.expected_version, t.version));
        }
        let changed = logic::update(&mut t, &u.patch, u.actor, u.at, self.sla.as_deref())?;
        let mut tx = self.writer.begin().await.map_err(db::<D>)?;
        if !Self::write(&mut tx, &t, u.expected_version, count, &changed.text).await? {
            tx.rollback().await.map_err(db::<D>)?;
            let now = self.load(&self.writer, &u.tenant, u.id).await?.0;
            return Err(logic::conflict(u.id, u.expected_version, now.version));
        }
        Self::run(&mut tx, children(&t, None, &changed.audit)?).await?;
        tx.commit().await.map_err(db::<D>)?;
        Ok(t)
    }

    async fn add_comment(&self, c: NewComment) -> Result<Comment> {
        // A comment names no version: re-read and retry when another write got in first.
        let mut pool = &self.reader;
        loop {
            let (mut t, count) = self.load(pool, &c.tenant, c.ticket).await?;
            let read = t.version;
            let (comment, changed) = logic::comment(&mut t, &c, count + 1, self.sla.as_deref())?;
            let mut tx = self.writer.begin().await.map_err(db::<D>)?;
            if !Self::write(&mut tx, &t, read, count + 1, &changed.text).await? {
                tx.rollback().await.map_err(db::<D>)?;
                pool = &self.writer;
                continue;
            }
            Self::run(&mut tx, children(&t, Some(&comment), &changed.audit)?).await?;
            tx.commit().await.map_err(db::<D>)?;
            return Ok(comment);
        }
    }

    async fn comments(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<Comment>> {
        self.child_rows("cs_ticket_comments", "seq", tenant, id)
            .await?
            .iter()
            .map(comment_from_row)
            .collect()
    }

    async fn audit(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<AuditEntry>> {
        self.child_rows("cs_ticket_audit", "version, idx", tenant, id)
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn search(&self, q: &TicketQuery) -> Result<Vec<Ticket>> {
        Self::fetch_all(&self.reader, search::<D>(q))
            .await?
            .iter()
            .map(|r| ticket_from_row(r).map(|t| t.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("快递"), "%快递%");
    }
}
