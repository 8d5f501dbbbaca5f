//! The SQL ticket stores. Both backends keep the same tables and run the same statements (written
//! with `$n` placeholders, which SQLite also accepts); the store body is written once, in
//! [`sql_ticket_store!`], and stamped out per driver. What differs (DDL, full-text search) lives in
//! the backend modules.

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

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

/// A bound value of a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    OptText(Option<String>),
    OptInt(Option<i64>),
}

/// SQL text with its arguments, numbered `$1`, `$2`... in order; several statements may be
/// appended to one (SQLite runs them in one call, numbering across all of them).
#[derive(Debug, Default)]
pub(crate) struct Stmt {
    pub(crate) sql: String,
    pub(crate) args: Vec<Arg>,
}

impl Stmt {
    /// Appends `(p1, p2, ...)` placeholders for `args`.
    fn values(&mut self, args: Vec<Arg>) {
        self.sql.push('(');
        for (i, a) in args.into_iter().enumerate() {
            self.args.push(a);
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push_str(&format!("${}", self.args.len()));
        }
        self.sql.push(')');
    }

    fn end(&mut self) {
        self.sql.push_str(";\n");
    }

    /// Inserts a new ticket row.
    pub(crate) fn insert_ticket(&mut self, c: &crate::logic::Created) -> crate::Result<()> {
        let t = &c.ticket;
        let m = |d: Option<chrono::DateTime<chrono::Utc>>| Arg::OptInt(d.map(micros));
        let sla = t.sla.as_ref();
        self.sql.push_str(
            "INSERT INTO cs_tickets (tenant, id, number, subject, kind, priority, status, grp,
                assignee, customer, conversation, tags, fields, sla, csat, sla_warn_at,
                sla_due_at, sla_next_at, sla_paused, comment_count, search_text, created_at,
                updated_at, version) VALUES ",
        );
        self.values(vec![
            Arg::Text(t.tenant.as_str().into()),
            Arg::Text(t.id.to_string()),
            Arg::Int(t.number as i64),
            Arg::Text(t.subject.clone()),
            Arg::Text(t.kind.as_str().into()),
            Arg::Text(t.priority.as_str().into()),
            Arg::Text(t.status.as_str().into()),
            Arg::OptText(t.group.clone()),
            Arg::OptText(t.assignee.map(|a| a.to_string())),
            Arg::OptText(t.customer.map(|a| a.to_string())),
            Arg::OptText(t.conversation.map(|a| a.to_string())),
            Arg::Text(json(&t.tags)?),
            Arg::Text(json(&t.fields)?),
            Arg::OptText(sla.map(json).transpose()?),
            Arg::OptText(t.csat.as_ref().map(json).transpose()?),
            m(sla.and_then(|s| s.warn_at())),
            m(sla.and_then(|s| s.due_at())),
            m(sla.and_then(|s| s.next_mark_at())),
            Arg::Int(sla.map_or(0, |s| i64::from(s.paused()))),
            Arg::Int(i64::from(c.comment.is_some())),
            Arg::Text(c.text.clone()),
            Arg::Int(micros(t.created_at)),
            Arg::Int(micros(t.updated_at)),
            Arg::Int(t.version as i64),
        ]);
        self.end();
        Ok(())
    }

    /// Inserts a comment of `t`.
    pub(crate) fn insert_comment(
        &mut self,
        t: &crate::Ticket,
        c: &crate::Comment,
    ) -> crate::Result<()> {
        self.sql.push_str(
            "INSERT INTO cs_ticket_comments (tenant, ticket, seq, author, body, public,
                attachments, created_at) VALUES ",
        );
        self.values(vec![
            Arg::Text(t.tenant.as_str().into()),
            Arg::Text(t.id.to_string()),
            Arg::Int(c.seq as i64),
            Arg::Text(json(&c.author)?),
            Arg::Text(c.body.clone()),
            Arg::Int(i64::from(c.public)),
            Arg::Text(json(&c.attachments)?),
            Arg::Int(micros(c.created_at)),
        ]);
        self.end();
        Ok(())
    }

    /// Inserts audit entries of `t` at its current version (nothing for none).
    pub(crate) fn insert_audit(
        &mut self,
        t: &crate::Ticket,
        audit: &[crate::AuditEntry],
    ) -> crate::Result<()> {
        if audit.is_empty() {
            return Ok(());
        }
        self.sql.push_str(
            "INSERT INTO cs_ticket_audit (tenant, ticket, version, idx, at, actor, field,
                from_value, to_value) VALUES ",
        );
        for (i, a) in audit.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.values(vec![
                Arg::Text(t.tenant.as_str().into()),
                Arg::Text(t.id.to_string()),
                Arg::Int(t.version as i64),
                Arg::Int(i as i64),
                Arg::Int(micros(a.at)),
                Arg::Text(json(&a.actor)?),
                Arg::Text(a.field.clone()),
                Arg::OptText(a.from.clone()),
                Arg::OptText(a.to.clone()),
            ]);
        }
        self.end();
        Ok(())
    }
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

/// `sql` with every `$n` placeholder shifted by `base`.
pub(crate) fn renumber(sql: &str, base: usize) -> String {
    if base == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + base).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> crate::Result<String> {
    serde_json::to_string(v).map_err(|e| crate::Error::invalid(e.to_string()))
}

pub(crate) fn corrupt(backend: &'static str, what: impl std::fmt::Display) -> crate::Error {
    crate::Error::Backend {
        backend,
        source: format!("corrupt row: {what}").into(),
    }
}

/// The `WHERE` clause and arguments of a search (after the tenant, which is `$1`).
pub(crate) fn search_filter(
    q: &crate::model::TicketQuery,
    text_filter: fn(usize, &str) -> (String, Arg),
) -> (String, Vec<Arg>) {
    use crate::sla::SlaState;
    let mut sql = String::new();
    let mut args = vec![Arg::Text(q.tenant.as_str().to_owned())];
    let mut push = |sql: &mut String, clause: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&clause.replace("$?", &format!("${}", args.len())));
    };
    if !q.statuses.is_empty() {
        sql.push_str(" AND status IN (");
        for (i, s) in q.statuses.iter().enumerate() {
            let sep = if i == 0 { "$?" } else { ", $?" };
            push(&mut sql, sep, Arg::Text(s.as_str().into()));
        }
        sql.push(')');
    }
    if let Some(a) = q.assignee {
        push(&mut sql, " AND assignee = $?", Arg::Text(a.to_string()));
    }
    if let Some(g) = &q.group {
        push(&mut sql, " AND grp = $?", Arg::Text(g.clone()));
    }
    if let Some(c) = q.customer {
        push(&mut sql, " AND customer = $?", Arg::Text(c.to_string()));
    }
    if let Some(tag) = &q.tag {
        let quoted = serde_json::to_string(&tag.trim().to_lowercase()).unwrap_or_default();
        push(
            &mut sql,
            " AND tags LIKE $? ESCAPE '\\'",
            Arg::Text(like_pattern(&quoted)),
        );
    }
    if let Some(f) = q.sla {
        let at = Arg::Int(micros(f.at));
        match f.state {
            SlaState::Breached => push(&mut sql, " AND sla_due_at <= $?", at),
            SlaState::Warning => {
                push(&mut sql, " AND sla_warn_at <= $?", at.clone());
                push(&mut sql, " AND sla_due_at > $?", at);
            }
            SlaState::Ok => push(&mut sql, " AND sla_warn_at > $?", at),
            SlaState::Paused => sql.push_str(" AND sla_paused = 1"),
            SlaState::Due => push(&mut sql, " AND sla_next_at <= $?", at),
        }
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let (clause, arg) = text_filter(args.len() + 1, &text.to_lowercase());
        args.push(arg);
        sql.push_str(" AND ");
        sql.push_str(&clause);
    }
    (sql, args)
}

/// Implements [`crate::TicketStore`] for `$store` (fields `writer`, `reader`, `sla`) on driver
/// `$db`; `$map` maps driver errors, `$text` builds the full-text clause, `$multi` says whether
/// the driver runs several statements with arguments in one call.
macro_rules! sql_ticket_store {
    ($store:ty, $db:ty, $backend:literal, $map:path, $text:path, $multi:literal) => {
        const BACKEND: &str = $backend;

        fn db(e: sqlx::Error) -> $crate::Error {
            $crate::Error::from($map(e))
        }

        type DbRow = <$db as sqlx::Database>::Row;

        fn bound(
            sql: &str,
            args: Vec<$crate::sql::Arg>,
        ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments<'_>> {
            let mut q = sqlx::query(sql);
            for a in args {
                q = match a {
                    $crate::sql::Arg::Text(v) => q.bind(v),
                    $crate::sql::Arg::Int(v) => q.bind(v),
                    $crate::sql::Arg::OptText(v) => q.bind(v),
                    $crate::sql::Arg::OptInt(v) => q.bind(v),
                };
            }
            q
        }

        fn col<'r, T>(row: &'r DbRow, name: &str) -> $crate::Result<T>
        where
            T: sqlx::Decode<'r, $db> + sqlx::Type<$db>,
        {
            sqlx::Row::try_get(row, name).map_err(db)
        }

        fn json_col<T: serde::de::DeserializeOwned>(row: &DbRow, name: &str) -> $crate::Result<T> {
            let s: String = col(row, name)?;
            serde_json::from_str(&s).map_err(|e| $crate::sql::corrupt(BACKEND, e))
        }

        fn opt_json_col<T: serde::de::DeserializeOwned>(
            row: &DbRow,
            name: &str,
        ) -> $crate::Result<Option<T>> {
            let s: Option<String> = col(row, name)?;
            s.map(|s| serde_json::from_str(&s).map_err(|e| $crate::sql::corrupt(BACKEND, e)))
                .transpose()
        }

        fn parsed<T: std::str::FromStr>(row: &DbRow, name: &str) -> $crate::Result<T> {
            let s: String = col(row, name)?;
            s.parse()
                .map_err(|_| $crate::sql::corrupt(BACKEND, format!("{name} = {s:?}")))
        }

        fn opt_parsed<T: std::str::FromStr>(row: &DbRow, name: &str) -> $crate::Result<Option<T>> {
            let s: Option<String> = col(row, name)?;
            s.map(|s| {
                s.parse()
                    .map_err(|_| $crate::sql::corrupt(BACKEND, format!("{name} = {s:?}")))
            })
            .transpose()
        }

        fn time_col(row: &DbRow, name: &str) -> $crate::Result<chrono::DateTime<chrono::Utc>> {
            let v: i64 = col(row, name)?;
            chrono::DateTime::from_timestamp_micros(v)
                .ok_or_else(|| $crate::sql::corrupt(BACKEND, format!("{name} = {v}")))
        }

        fn count_col(row: &DbRow, name: &str) -> $crate::Result<u64> {
            let v: i64 = col(row, name)?;
            u64::try_from(v).map_err(|e| $crate::sql::corrupt(BACKEND, e))
        }

        /// A ticket row and its comment count.
        fn ticket_from_row(row: &DbRow) -> $crate::Result<($crate::Ticket, u64)> {
            let kind: String = col(row, "kind")?;
            let priority: String = col(row, "priority")?;
            let status: String = col(row, "status")?;
            let ticket = $crate::Ticket {
                id: parsed(row, "id")?,
                tenant: parsed(row, "tenant")?,
                number: count_col(row, "number")?,
                subject: col(row, "subject")?,
                kind: $crate::TicketKind::parse(&kind)
                    .ok_or_else(|| $crate::sql::corrupt(BACKEND, &kind))?,
                priority: cs_core::Priority::parse(&priority)
                    .ok_or_else(|| $crate::sql::corrupt(BACKEND, &priority))?,
                status: $crate::TicketStatus::parse(&status)
                    .ok_or_else(|| $crate::sql::corrupt(BACKEND, &status))?,
                group: col(row, "grp")?,
                assignee: opt_parsed(row, "assignee")?,
                customer: opt_parsed(row, "customer")?,
                conversation: opt_parsed(row, "conversation")?,
                tags: json_col(row, "tags")?,
                fields: json_col(row, "fields")?,
                created_at: time_col(row, "created_at")?,
                updated_at: time_col(row, "updated_at")?,
                version: count_col(row, "version")?,
                sla: opt_json_col(row, "sla")?,
                csat: opt_json_col(row, "csat")?,
            };
            Ok((ticket, count_col(row, "comment_count")?))
        }

        /// The SLA columns derived from the clock, for search.
        fn sla_cols(t: &$crate::Ticket) -> (Option<i64>, Option<i64>, Option<i64>, i64) {
            let m = |d: Option<chrono::DateTime<chrono::Utc>>| d.map($crate::sql::micros);
            match &t.sla {
                Some(c) => (
                    m(c.warn_at()),
                    m(c.due_at()),
                    m(c.next_mark_at()),
                    i64::from(c.paused()),
                ),
                None => (None, None, None, 0),
            }
        }

        impl $store {
            async fn load(
                &self,
                pool: &sqlx::Pool<$db>,
                tenant: &cs_core::TenantId,
                id: cs_core::TicketId,
            ) -> $crate::Result<($crate::Ticket, u64)> {
                sqlx::query("SELECT * FROM cs_tickets WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id.to_string())
                    .fetch_optional(pool)
                    .await
                    .map_err(db)?
                    .map(|r| ticket_from_row(&r))
                    .transpose()?
                    .ok_or_else(|| $crate::Error::NotFound { id: id.to_string() })
            }

            /// Writes a changed ticket if it is still at `read_version`; `false` when it is not.
            async fn write(
                tx: &mut sqlx::Transaction<'_, $db>,
                t: &$crate::Ticket,
                read_version: u64,
                comment_count: u64,
                text: &str,
            ) -> $crate::Result<bool> {
                let (warn, due, next, paused) = sla_cols(t);
                let done = sqlx::query(
                    "UPDATE cs_tickets SET subject = $1, priority = $2, status = $3, grp = $4,
                        assignee = $5, tags = $6, fields = $7, sla = $8, csat = $9,
                        sla_warn_at = $10, sla_due_at = $11, sla_next_at = $12,
                        sla_paused = $13, comment_count = $14, updated_at = $15, version = $16,
                        search_text = CASE WHEN $17 = '' THEN search_text
                                      ELSE search_text || $17 END
                     WHERE tenant = $18 AND id = $19 AND version = $20",
                )
                .bind(&t.subject)
                .bind(t.priority.as_str())
                .bind(t.status.as_str())
                .bind(&t.group)
                .bind(t.assignee.map(|a| a.to_string()))
                .bind($crate::sql::json(&t.tags)?)
                .bind($crate::sql::json(&t.fields)?)
                .bind(t.sla.as_ref().map($crate::sql::json).transpose()?)
                .bind(t.csat.as_ref().map($crate::sql::json).transpose()?)
                .bind(warn)
                .bind(due)
                .bind(next)
                .bind(paused)
                .bind(comment_count as i64)
                .bind($crate::sql::micros(t.updated_at))
                .bind(t.version as i64)
                .bind(text)
                .bind(t.tenant.as_str())
                .bind(t.id.to_string())
                .bind(read_version as i64)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            /// The rows of a ticket's child table in order; [`crate::Error::NotFound`] when
            /// the ticket does not exist.
            async fn children(
                &self,
                table: &str,
                order: &str,
                tenant: &cs_core::TenantId,
                id: cs_core::TicketId,
            ) -> $crate::Result<Vec<DbRow>> {
                let rows = sqlx::query(&format!(
                    "SELECT * FROM {table} WHERE tenant = $1 AND ticket = $2 ORDER BY {order}"
                ))
                .bind(tenant.as_str())
                .bind(id.to_string())
                .fetch_all(&self.reader)
                .await
                .map_err(db)?;
                if rows.is_empty() {
                    self.load(&self.reader, tenant, id).await?;
                }
                Ok(rows)
            }

            /// Runs `stmts` in `tx`: as one call where the driver takes several statements at
            /// once (fewer round trips), else one by one.
            async fn run(
                tx: &mut sqlx::Transaction<'_, $db>,
                stmts: Vec<$crate::sql::Stmt>,
            ) -> $crate::Result<()> {
                let stmts = if $multi {
                    let mut one = $crate::sql::Stmt::default();
                    for s in stmts {
                        let base = one.args.len();
                        one.sql.push_str(&$crate::sql::renumber(&s.sql, base));
                        one.args.extend(s.args);
                    }
                    vec![one]
                } else {
                    stmts
                };
                for s in stmts.into_iter().filter(|s| !s.sql.is_empty()) {
                    bound(&s.sql, s.args)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                Ok(())
            }

            fn stmts_for(
                t: &$crate::Ticket,
                comment: Option<&$crate::Comment>,
                audit: &[$crate::AuditEntry],
            ) -> $crate::Result<Vec<$crate::sql::Stmt>> {
                let mut out = Vec::new();
                if let Some(c) = comment {
                    let mut s = $crate::sql::Stmt::default();
                    s.insert_comment(t, c)?;
                    out.push(s);
                }
                let mut s = $crate::sql::Stmt::default();
                s.insert_audit(t, audit)?;
                out.push(s);
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::TicketStore for $store {
            async fn create(&self, new: $crate::NewTicket) -> $crate::Result<$crate::Ticket> {
                $crate::logic::check_new(&new)?;
                let mut tx = self.writer.begin().await.map_err(db)?;
                let number: i64 = sqlx::query_scalar(
                    "INSERT INTO cs_ticket_counters (tenant, last) VALUES ($1, 1)
                     ON CONFLICT (tenant) DO UPDATE SET last = cs_ticket_counters.last + 1
                     RETURNING last",
                )
                .bind(new.tenant.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                let c = $crate::logic::create(&new, number as u64, self.sla.as_deref())?;
                let mut stmts = vec![$crate::sql::Stmt::default()];
                stmts[0].insert_ticket(&c)?;
                stmts.extend(Self::stmts_for(&c.ticket, c.comment.as_ref(), &c.audit)?);
                Self::run(&mut tx, stmts).await?;
                tx.commit().await.map_err(db)?;
                Ok(c.ticket)
            }

            async fn get(
                &self,
                tenant: &cs_core::TenantId,
                id: cs_core::TicketId,
            ) -> $crate::Result<$crate::Ticket> {
                Ok(self.load(&self.reader, tenant, id).await?.0)
            }

            async fn get_by_number(
                &self,
                tenant: &cs_core::TenantId,
                number: u64,
            ) -> $crate::Result<$crate::Ticket> {
                sqlx::query("SELECT * FROM cs_tickets WHERE tenant = $1 AND number = $2")
                    .bind(tenant.as_str())
                    .bind(number as i64)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(db)?
                    .map(|r| ticket_from_row(&r).map(|t| t.0))
                    .transpose()?
                    .ok_or_else(|| $crate::Error::NotFound {
                        id: format!("#{number}"),
                    })
            }

            async fn update(&self, u: $crate::UpdateTicket) -> $crate::Result<$crate::Ticket> {
                let (mut t, count) = self.load(&self.reader, &u.tenant, u.id).await?;
                if t.version != u.expected_version {
                    return Err($crate::logic::conflict(u.id, u.expected_version, t.version));
                }
                let changed =
                    $crate::logic::update(&mut t, &u.patch, u.actor, u.at, self.sla.as_deref())?;
                let mut tx = self.writer.begin().await.map_err(db)?;
                if !Self::write(&mut tx, &t, u.expected_version, count, &changed.text).await? {
                    drop(tx);
                    let now = self.load(&self.writer, &u.tenant, u.id).await?.0;
                    return Err($crate::logic::conflict(u.id, u.expected_version, now.version));
                }
                Self::run(&mut tx, Self::stmts_for(&t, None, &changed.audit)?).await?;
                tx.commit().await.map_err(db)?;
                Ok(t)
            }

            async fn add_comment(&self, c: $crate::NewComment) -> $crate::Result<$crate::Comment> {
                // A comment names no version: re-read and retry when another write got in first.
                let mut pool = &self.reader;
                loop {
                    let (mut t, count) = self.load(pool, &c.tenant, c.ticket).await?;
                    let read = t.version;
                    let (comment, changed) =
                        $crate::logic::comment(&mut t, &c, count + 1, self.sla.as_deref())?;
                    let mut tx = self.writer.begin().await.map_err(db)?;
                    if !Self::write(&mut tx, &t, read, count + 1, &changed.text).await? {
                        pool = &self.writer;
                        continue;
                    }
                    Self::run(&mut tx, Self::stmts_for(&t, Some(&comment), &changed.audit)?)
                        .await?;
                    tx.commit().await.map_err(db)?;
                    return Ok(comment);
                }
            }

            async fn comments(
                &self,
                tenant: &cs_core::TenantId,
                id: cs_core::TicketId,
            ) -> $crate::Result<Vec<$crate::Comment>> {
                self.children("cs_ticket_comments", "seq", tenant, id)
                    .await?
                    .iter()
                    .map(|r| {
                        let public: i64 = col(r, "public")?;
                        Ok($crate::Comment {
                            seq: count_col(r, "seq")?,
                            author: json_col(r, "author")?,
                            body: col(r, "body")?,
                            public: public != 0,
                            attachments: json_col(r, "attachments")?,
                            created_at: time_col(r, "created_at")?,
                        })
                    })
                    .collect()
            }

            async fn audit(
                &self,
                tenant: &cs_core::TenantId,
                id: cs_core::TicketId,
            ) -> $crate::Result<Vec<$crate::AuditEntry>> {
                self.children("cs_ticket_audit", "version, idx", tenant, id)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok($crate::AuditEntry {
                            at: time_col(r, "at")?,
                            actor: json_col(r, "actor")?,
                            field: col(r, "field")?,
                            from: col(r, "from_value")?,
                            to: col(r, "to_value")?,
                        })
                    })
                    .collect()
            }

            async fn search(
                &self,
                q: &$crate::TicketQuery,
            ) -> $crate::Result<Vec<$crate::Ticket>> {
                let (filter, args) = $crate::sql::search_filter(q, $text);
                let sql = format!(
                    "SELECT * FROM cs_tickets t WHERE tenant = $1{filter}
                     ORDER BY number DESC LIMIT {}",
                    q.limit.clamp(1, 1000)
                );
                bound(&sql, args)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(|r| ticket_from_row(r).map(|t| t.0))
                    .collect()
            }
        }
    };
}

pub(crate) use sql_ticket_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_shift_for_statements_run_together() {
        assert_eq!(renumber("a = $1 AND b = $12", 3), "a = $4 AND b = $15");
        assert_eq!(renumber("no args", 3), "no args");
        assert_eq!(renumber("x = $1", 0), "x = $1");
    }

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("快递"), "%快递%");
    }
}
