//! A `TicketStore` of your own: the desk's tickets, kept in step with the ticket table the shop's
//! old helpdesk (or its ERP) already reads.
//!
//! `Mirrored` wraps any ticket store of ours and, after every write that the store accepted,
//! upserts the ticket into an existing table `legacy_tickets` (number, subject, status, priority,
//! assignee, customer, updated) in that system's own vocabulary. Reads come from the wrapped store;
//! the mirror is written after the store commits, so a mirror failure never loses a ticket (it is
//! logged and repaired by the next write of that ticket, or by `resync`).
//!
//! ```sh
//! cargo run --example custom_ticket_store    # create and solve a ticket, print the legacy row
//! cargo test --example custom_ticket_store   # the TicketStore conformance suite, mirror checked
//! ```
//! Give it to the engine with `EngineBuilder::with_tickets(Arc::new(mirrored))`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use cs_core::{TenantId, TicketId};
use cs_tickets::{
    Actor, AuditEntry, Comment, Error, MemoryTicketStore, NewComment, NewTicket, Result, Ticket,
    TicketPatch, TicketQuery, TicketStatus, TicketStore, UpdateTicket,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// The existing table, as the old system created it.
const LEGACY_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS legacy_tickets (
    shop TEXT NOT NULL,
    ticket_no INTEGER NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,          -- NEW / WORKING / WAITING / DONE / CLOSED
    urgency INTEGER NOT NULL,     -- 1 (low) .. 4 (urgent)
    handler TEXT,
    buyer TEXT,
    modified TEXT NOT NULL,
    PRIMARY KEY (shop, ticket_no)
)";

/// A ticket store that keeps `legacy_tickets` in step.
#[derive(Debug)]
struct Mirrored {
    inner: Arc<dyn TicketStore>,
    legacy: SqlitePool,
}

fn legacy_state(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::New => "NEW",
        TicketStatus::Open => "WORKING",
        TicketStatus::PendingCustomer | TicketStatus::OnHold => "WAITING",
        TicketStatus::Solved => "DONE",
        _ => "CLOSED",
    }
}

impl Mirrored {
    async fn new(inner: Arc<dyn TicketStore>, legacy: SqlitePool) -> Result<Self> {
        sqlx::query(LEGACY_SCHEMA)
            .execute(&legacy)
            .await
            .map_err(backend)?;
        Ok(Self { inner, legacy })
    }

    /// Writes the ticket's row; a failure is logged, never returned (the ticket is stored).
    async fn mirror(&self, ticket: &Ticket) {
        let urgency = match ticket.priority {
            cs_core::Priority::Low => 1,
            cs_core::Priority::Normal => 2,
            cs_core::Priority::High => 3,
            cs_core::Priority::Urgent => 4,
        };
        let result = sqlx::query(
            "INSERT INTO legacy_tickets (shop, ticket_no, title, state, urgency, handler, buyer, modified)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (shop, ticket_no) DO UPDATE SET title = excluded.title,
               state = excluded.state, urgency = excluded.urgency, handler = excluded.handler,
               buyer = excluded.buyer, modified = excluded.modified
             WHERE excluded.modified >= legacy_tickets.modified",
        )
        .bind(ticket.tenant.as_str())
        .bind(ticket.number as i64)
        .bind(&ticket.subject)
        .bind(legacy_state(ticket.status))
        .bind(urgency)
        .bind(ticket.assignee.map(|a| a.to_string()))
        .bind(ticket.customer.map(|c| c.to_string()))
        .bind(ticket.updated_at.to_rfc3339())
        .execute(&self.legacy)
        .await;
        if let Err(e) = result {
            eprintln!("legacy_tickets: ticket {} not mirrored: {e}", ticket.number);
        }
    }

    /// Writes every ticket of `tenant` again (after the legacy database was unreachable).
    async fn resync(&self, tenant: &TenantId) -> Result<usize> {
        let tickets = self
            .inner
            .search(&TicketQuery {
                tenant: tenant.clone(),
                limit: 10_000,
                ..TicketQuery::default()
            })
            .await?;
        for t in &tickets {
            self.mirror(t).await;
        }
        Ok(tickets.len())
    }
}

fn backend(e: sqlx::Error) -> Error {
    Error::Backend {
        backend: "legacy-sqlite",
        source: Box::new(e),
    }
}

#[async_trait]
impl TicketStore for Mirrored {
    async fn create(&self, ticket: NewTicket) -> Result<Ticket> {
        let created = self.inner.create(ticket).await?;
        self.mirror(&created).await;
        Ok(created)
    }

    async fn get(&self, tenant: &TenantId, id: TicketId) -> Result<Ticket> {
        self.inner.get(tenant, id).await
    }

    async fn get_by_number(&self, tenant: &TenantId, number: u64) -> Result<Ticket> {
        self.inner.get_by_number(tenant, number).await
    }

    async fn update(&self, update: UpdateTicket) -> Result<Ticket> {
        let updated = self.inner.update(update).await?;
        self.mirror(&updated).await;
        Ok(updated)
    }

    async fn add_comment(&self, comment: NewComment) -> Result<Comment> {
        let (tenant, id) = (comment.tenant.clone(), comment.ticket);
        let added = self.inner.add_comment(comment).await?;
        // A comment can reopen or touch the ticket: mirror its new state.
        if let Ok(ticket) = self.inner.get(&tenant, id).await {
            self.mirror(&ticket).await;
        }
        Ok(added)
    }

    async fn comments(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<Comment>> {
        self.inner.comments(tenant, id).await
    }

    async fn audit(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<AuditEntry>> {
        self.inner.audit(tenant, id).await
    }

    async fn search(&self, query: &TicketQuery) -> Result<Vec<Ticket>> {
        self.inner.search(query).await
    }
}

async fn legacy_pool() -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().in_memory(true))
        .await
        .expect("in-memory SQLite")
}

async fn mirrored() -> Mirrored {
    Mirrored::new(Arc::new(MemoryTicketStore::new()), legacy_pool().await)
        .await
        .expect("legacy table")
}

/// The legacy row of ticket `number`: (title, state, urgency).
async fn legacy_row(store: &Mirrored, tenant: &str, number: u64) -> Option<(String, String, i64)> {
    sqlx::query_as(
        "SELECT title, state, urgency FROM legacy_tickets WHERE shop = ? AND ticket_no = ?",
    )
    .bind(tenant)
    .bind(number as i64)
    .fetch_optional(&store.legacy)
    .await
    .expect("legacy query")
}

/// The update that solves `ticket`.
fn solve(ticket: &Ticket) -> UpdateTicket {
    UpdateTicket {
        tenant: ticket.tenant.clone(),
        id: ticket.id,
        expected_version: ticket.version,
        actor: Actor::System,
        at: Utc::now(),
        patch: TicketPatch {
            status: Some(TicketStatus::Solved),
            ..TicketPatch::default()
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let store = mirrored().await;
    let tenant = TenantId::new("shop").expect("valid tenant");
    let ticket = store
        .create(NewTicket::new(
            tenant.clone(),
            "Parcel arrived damaged / 包裹破损",
            Actor::System,
            Utc::now(),
        ))
        .await?;
    println!(
        "legacy after create: {:?}",
        legacy_row(&store, "shop", ticket.number).await
    );
    let solved = store.update(solve(&ticket)).await?;
    println!(
        "legacy after solve:  {:?}",
        legacy_row(&store, "shop", solved.number).await
    );
    println!("resynced {} tickets", store.resync(&tenant).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms_to_the_ticket_store_suite_and_mirrors_every_ticket() {
        let store = mirrored().await;
        cs_tickets::conformance::run(&store).await;
        // Every ticket the suite wrote is in the legacy table, in its latest state.
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT shop, ticket_no, state FROM legacy_tickets")
                .fetch_all(&store.legacy)
                .await
                .unwrap();
        assert!(
            rows.len() > 10,
            "the suite writes many tickets: {}",
            rows.len()
        );
        for (shop, number, state) in rows {
            let tenant = TenantId::new(shop).unwrap();
            let ticket = store.get_by_number(&tenant, number as u64).await.unwrap();
            assert_eq!(state, legacy_state(ticket.status), "ticket {number}");
        }
    }

    #[tokio::test]
    async fn the_legacy_row_follows_the_ticket() {
        let store = mirrored().await;
        let tenant = TenantId::new("shop").unwrap();
        let t = store
            .create(NewTicket::new(
                tenant.clone(),
                "Refund not received",
                Actor::System,
                Utc::now(),
            ))
            .await
            .unwrap();
        assert_eq!(legacy_row(&store, "shop", t.number).await.unwrap().1, "NEW");
        let solved = store.update(solve(&t)).await.unwrap();
        assert_eq!(
            legacy_row(&store, "shop", solved.number).await.unwrap().1,
            "DONE"
        );
    }
}
