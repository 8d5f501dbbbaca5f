//! The in-memory ticket store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use cs_core::{TenantId, TicketId};

use crate::error::{Error, Result};
use crate::model::{
    Actor, AuditEntry, Comment, NewComment, NewTicket, Ticket, TicketQuery, TicketStatus,
    UpdateTicket, apply_patch,
};
use crate::store::TicketStore;

/// A [`TicketStore`] in process memory.
#[derive(Debug, Default)]
pub struct MemoryTicketStore {
    inner: Mutex<Inner>,
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
}

impl MemoryTicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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

pub(crate) fn validate_new(t: &NewTicket) -> Result<()> {
    if t.subject.trim().is_empty() {
        return Err(Error::invalid("subject is empty"));
    }
    Ok(())
}

pub(crate) fn validate_comment(c: &NewComment, ticket: &Ticket) -> Result<()> {
    if c.body.trim().is_empty() {
        return Err(Error::invalid("comment body is empty"));
    }
    if ticket.status == TicketStatus::Closed {
        return Err(Error::invalid("ticket is closed"));
    }
    Ok(())
}

#[async_trait]
impl TicketStore for MemoryTicketStore {
    async fn create(&self, new: NewTicket) -> Result<Ticket> {
        validate_new(&new)?;
        let mut inner = self.lock();
        let next = inner.next_number.entry(new.tenant.clone()).or_insert(0);
        *next += 1;
        let number = *next;
        let ticket = Ticket {
            id: TicketId::new(),
            tenant: new.tenant.clone(),
            number,
            subject: new.subject.trim().to_owned(),
            kind: new.kind,
            priority: new.priority,
            status: TicketStatus::New,
            group: new.group.clone(),
            assignee: new.assignee,
            customer: new.customer,
            conversation: new.conversation,
            tags: new.tags.iter().map(|t| t.trim().to_lowercase()).collect(),
            fields: Default::default(),
            created_at: new.at,
            updated_at: new.at,
            version: 0,
        };
        let mut comments = Vec::new();
        if let Some(d) = new.description.as_ref().filter(|d| !d.trim().is_empty()) {
            comments.push(Comment {
                seq: 1,
                author: new.actor,
                body: d.clone(),
                public: true,
                attachments: Vec::new(),
                created_at: new.at,
            });
        }
        let audit = vec![AuditEntry {
            at: new.at,
            actor: new.actor,
            field: "created".into(),
            from: None,
            to: Some(format!("#{number}")),
        }];
        inner
            .numbers
            .insert((new.tenant.clone(), number), ticket.id);
        inner.tickets.insert(
            (new.tenant, ticket.id),
            Record {
                ticket: ticket.clone(),
                comments,
                audit,
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
            return Err(Error::Conflict {
                id: u.id.to_string(),
                expected: u.expected_version,
                actual: rec.ticket.version,
            });
        }
        let mut next = rec.ticket.clone();
        let audit = apply_patch(&mut next, &u.patch, u.actor, u.at)?;
        next.version += 1;
        next.updated_at = u.at;
        rec.ticket = next.clone();
        rec.audit.extend(audit);
        Ok(next)
    }

    async fn add_comment(&self, c: NewComment) -> Result<Comment> {
        let mut inner = self.lock();
        let rec = inner.record(&c.tenant, c.ticket)?;
        validate_comment(&c, &rec.ticket)?;
        let comment = Comment {
            seq: rec.comments.len() as u64 + 1,
            author: c.author,
            body: c.body,
            public: c.public,
            attachments: c.attachments,
            created_at: c.at,
        };
        rec.comments.push(comment.clone());
        rec.audit.push(AuditEntry {
            at: c.at,
            actor: c.author,
            field: if c.public { "reply" } else { "note" }.into(),
            from: None,
            to: Some(comment.seq.to_string()),
        });
        // A customer's reply reopens a solved or pending ticket.
        if matches!(c.author, Actor::Customer { .. })
            && matches!(
                rec.ticket.status,
                TicketStatus::Solved | TicketStatus::PendingCustomer
            )
        {
            rec.audit.push(AuditEntry {
                at: c.at,
                actor: c.author,
                field: "status".into(),
                from: Some(rec.ticket.status.to_string()),
                to: Some(TicketStatus::Open.to_string()),
            });
            rec.ticket.status = TicketStatus::Open;
        }
        rec.ticket.version += 1;
        rec.ticket.updated_at = c.at;
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
        let mut out: Vec<Ticket> = inner
            .tickets
            .iter()
            .filter(|((t, _), _)| *t == q.tenant)
            .map(|(_, r)| r)
            .filter(|r| q.statuses.is_empty() || q.statuses.contains(&r.ticket.status))
            .filter(|r| q.assignee.is_none_or(|a| r.ticket.assignee == Some(a)))
            .filter(|r| q.group.is_none() || r.ticket.group == q.group)
            .filter(|r| {
                q.tag
                    .as_ref()
                    .is_none_or(|t| r.ticket.tags.contains(&t.to_lowercase()))
            })
            .filter(|r| q.customer.is_none_or(|c| r.ticket.customer == Some(c)))
            .filter(|r| {
                needle.as_ref().is_none_or(|n| {
                    r.ticket.subject.to_lowercase().contains(n)
                        || r.comments.iter().any(|c| c.body.to_lowercase().contains(n))
                })
            })
            .map(|r| r.ticket.clone())
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.number));
        out.truncate(q.limit.clamp(1, 1000));
        Ok(out)
    }
}
