//! The [`TicketStore`] trait.

use std::fmt::Debug;

use async_trait::async_trait;
use cs_core::{TenantId, TicketId};

use crate::error::Result;
use crate::model::{AuditEntry, Comment, NewComment, NewTicket, Ticket, TicketQuery, UpdateTicket};

/// Stores tickets with their comments and audit trail.
///
/// Every change is recorded in the audit trail; every update names the version it read and fails
/// with [`crate::Error::Conflict`] when the ticket changed since, so concurrent writers never
/// overwrite each other silently.
#[async_trait]
pub trait TicketStore: Send + Sync + Debug + 'static {
    /// Creates a ticket with the tenant's next number.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for an empty subject.
    async fn create(&self, ticket: NewTicket) -> Result<Ticket>;

    /// Loads a ticket by id.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`].
    async fn get(&self, tenant: &TenantId, id: TicketId) -> Result<Ticket>;

    /// Loads a ticket by the number a customer quotes.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`].
    async fn get_by_number(&self, tenant: &TenantId, number: u64) -> Result<Ticket>;

    /// Applies a patch if the ticket is still at the version the caller read.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] on a stale version; [`crate::Error::InvalidInput`] for a change
    /// the workflow forbids; [`crate::Error::NotFound`].
    async fn update(&self, update: UpdateTicket) -> Result<Ticket>;

    /// Adds a public reply or an internal note (this changes the ticket's version).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for an empty body or a closed ticket;
    /// [`crate::Error::NotFound`].
    async fn add_comment(&self, comment: NewComment) -> Result<Comment>;

    /// A ticket's comments, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`].
    async fn comments(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<Comment>>;

    /// A ticket's audit trail, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`].
    async fn audit(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<AuditEntry>>;

    /// Finds tickets, newest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn search(&self, query: &TicketQuery) -> Result<Vec<Ticket>>;
}
