//! The in-memory ticket store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cs_core::{TenantId, TicketId};

use crate::error::{Error, Result};
use crate::logic;
use crate::model::{AuditEntry, Comment, NewComment, NewTicket, Ticket, TicketQuery, UpdateTicket};
use crate::sla::SlaPolicy;
use crate::store::TicketStore;

/// A [`TicketStore`] in process memory.
#[derive(Debug, Default)]
pub struct MemoryTicketStore {
    inner: Mutex<Inner>,
    sla: Option<Arc<SlaPolicy>>,
}

#[derive(Debug, Default)]
struct Inner {
    tickets: HashMap<(TenantId, TicketId), Record>,
    numbers: HashMap<(TenantId, u64), TicketId>,
    next_number: HashMap<TenantId, u64>,
}

#[derive(Debug)]
struct Record {
    ticket: Ticket,
    comments: Vec<Comment>,
    audit: Vec<AuditEntry>,
    text: String,
}

impl MemoryTicketStore {
    /// An empty store without SLA policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs SLA clocks on every ticket with `policy`.
    pub fn with_sla(mut self, policy: SlaPolicy) -> Self {
        self.sla = Some(Arc::new(policy));
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn record(&mut self, tenant: &TenantId, id: TicketId) -> Result<&mut Record> {
        self.tickets
            .get_mut(&(tenant.clone(), id))
            .ok_or_else(|| Error::NotFound { id: id.to_string() })
    }
}

#[async_trait]
impl TicketStore for MemoryTicketStore {
    async fn create(&self, new: NewTicket) -> Result<Ticket> {
        let mut inner = self.lock();
        let number = inner.next_number.get(&new.tenant).copied().unwrap_or(0) + 1;
        let created = logic::create(&new, number, self.sla.as_deref())?;
        inner.next_number.insert(new.tenant.clone(), number);
        let ticket = created.ticket;
        inner
            .numbers
            .insert((new.tenant.clone(), number), ticket.id);
        inner.tickets.insert(
            (new.tenant, ticket.id),
            Record {
                ticket: ticket.clone(),
                comments: created.comment.into_iter().collect(),
                audit: created.audit,
                text: created.text,
            },
        );
        Ok(ticket)
    }

    async fn get(&self, tenant: &TenantId, id: TicketId) -> Result<Ticket> {
        Ok(self.lock().record(tenant, id)?.ticket.clone())
    }

    async fn get_by_number(&self, tenant: &TenantId, number: u64) -> Result<Ticket> {
        let mut inner = self.lock();
        let id = *inner
            .numbers
            .get(&(tenant.clone(), number))
            .ok_or_else(|| Error::NotFound {
                id: format!("#{number}"),
            })?;
        Ok(inner.record(tenant, id)?.ticket.clone())
    }

    async fn update(&self, u: UpdateTicket) -> Result<Ticket> {
        let mut inner = self.lock();
        let rec = inner.record(&u.tenant, u.id)?;
        if rec.ticket.version != u.expected_version {
            return Err(logic::conflict(
                u.id,
                u.expected_version,
                rec.ticket.version,
            ));
        }
        let mut next = rec.ticket.clone();
        let changed = logic::update(&mut next, &u.patch, u.actor, u.at, self.sla.as_deref())?;
        rec.ticket = next.clone();
        rec.audit.extend(changed.audit);
        rec.text.push_str(&changed.text);
        Ok(next)
    }

    async fn add_comment(&self, c: NewComment) -> Result<Comment> {
        let mut inner = self.lock();
        let rec = inner.record(&c.tenant, c.ticket)?;
        let mut next = rec.ticket.clone();
        let seq = rec.comments.len() as u64 + 1;
        let (comment, changed) = logic::comment(&mut next, &c, seq, self.sla.as_deref())?;
        rec.ticket = next;
        rec.comments.push(comment.clone());
        rec.audit.extend(changed.audit);
        rec.text.push_str(&changed.text);
        Ok(comment)
    }

    async fn comments(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<Comment>> {
        Ok(self.lock().record(tenant, id)?.comments.clone())
    }

    async fn audit(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<AuditEntry>> {
        Ok(self.lock().record(tenant, id)?.audit.clone())
    }

    async fn search(&self, q: &TicketQuery) -> Result<Vec<Ticket>> {
        let inner = self.lock();
        let needle = q.text.as_ref().map(|t| t.to_lowercase());
        let tag = q.tag.as_ref().map(|t| t.trim().to_lowercase());
        let mut out: Vec<Ticket> = inner
            .tickets
            .iter()
            .filter(|((t, _), _)| *t == q.tenant)
            .map(|(_, r)| r)
            .filter(|r| q.statuses.is_empty() || q.statuses.contains(&r.ticket.status))
            .filter(|r| q.assignee.is_none_or(|a| r.ticket.assignee == Some(a)))
            .filter(|r| q.group.is_none() || r.ticket.group == q.group)
            .filter(|r| tag.as_ref().is_none_or(|t| r.ticket.tags.contains(t)))
            .filter(|r| q.customer.is_none_or(|c| r.ticket.customer == Some(c)))
            .filter(|r| q.sla.is_none_or(|f| logic::sla_matches(&r.ticket, &f)))
            .filter(|r| needle.as_ref().is_none_or(|n| r.text.contains(n.as_str())))
            .map(|r| r.ticket.clone())
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.number));
        out.truncate(q.limit.clamp(1, 1000));
        Ok(out)
    }
}
