//! The ticket rules every backend shares: creation, patches, comments, the status workflow, the
//! SLA clock and the audit trail. Backends only load and persist; what a change does is decided
//! here, once.

use chrono::{DateTime, Utc};
use cs_core::TicketId;

use crate::error::{Error, Result};
use crate::model::{
    Actor, AuditEntry, Comment, NewComment, NewTicket, Ticket, TicketPatch, TicketStatus,
};
use crate::sla::{SlaClock, SlaMetric, SlaPolicy, SlaTargets};

/// A ticket as first stored.
#[derive(Debug)]
pub(crate) struct Created {
    pub(crate) ticket: Ticket,
    pub(crate) comment: Option<Comment>,
    pub(crate) audit: Vec<AuditEntry>,
    /// Searchable text (lower-cased).
    pub(crate) text: String,
}

/// What a change did besides the ticket itself.
#[derive(Debug, Default)]
pub(crate) struct Changed {
    pub(crate) audit: Vec<AuditEntry>,
    /// Text to add to the searchable text (lower-cased, empty for none).
    pub(crate) text: String,
}

/// Text as stored for search: lower-cased, one item a line.
pub(crate) fn search_text(s: &str) -> String {
    let mut t = s.to_lowercase();
    t.push('\n');
    t
}

fn tier(t: &Ticket) -> Option<&str> {
    t.fields.get("tier").map(String::as_str)
}

fn targets(policy: &SlaPolicy, t: &Ticket) -> SlaTargets {
    policy.targets(t.priority, tier(t))
}

/// Refuses a new ticket the rules forbid (before a number is spent on it).
pub(crate) fn check_new(new: &NewTicket) -> Result<()> {
    if new.subject.trim().is_empty() {
        return Err(Error::invalid("subject is empty"));
    }
    Ok(())
}

/// Builds a new ticket numbered `number`.
pub(crate) fn create(new: &NewTicket, number: u64, policy: Option<&SlaPolicy>) -> Result<Created> {
    check_new(new)?;
    let subject = new.subject.trim();
    let mut ticket = Ticket {
        id: TicketId::new(),
        tenant: new.tenant.clone(),
        number,
        subject: subject.to_owned(),
        kind: new.kind,
        priority: new.priority,
        status: TicketStatus::New,
        group: new.group.clone(),
        assignee: new.assignee,
        customer: new.customer,
        conversation: new.conversation,
        tags: new
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect(),
        fields: new
            .fields
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created_at: new.at,
        updated_at: new.at,
        version: 0,
        sla: None,
        csat: None,
    };
    ticket.sla = policy.map(|p| SlaClock::start(p, targets(p, &ticket), new.at));
    let mut text = search_text(subject);
    let comment = new
        .description
        .as_ref()
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            text.push_str(&search_text(d));
            Comment {
                seq: 1,
                author: new.actor,
                body: d.clone(),
                public: true,
                attachments: Vec::new(),
                created_at: new.at,
            }
        });
    let audit = vec![AuditEntry {
        at: new.at,
        actor: new.actor,
        field: "created".into(),
        from: None,
        to: Some(format!("#{number}")),
    }];
    Ok(Created {
        ticket,
        comment,
        audit,
        text,
    })
}

/// Moves the SLA clock along a status change.
fn sla_on_status(
    clock: &mut SlaClock,
    policy: &SlaPolicy,
    from: TicketStatus,
    to: TicketStatus,
    at: DateTime<Utc>,
) {
    use TicketStatus as S;
    match to {
        S::Solved | S::Closed => clock.solve(policy, at),
        S::PendingCustomer => {
            if from == S::Solved {
                clock.reopen(policy, at);
            }
            clock.pause(policy, at);
        }
        S::New | S::Open | S::OnHold => {
            if from == S::Solved {
                clock.reopen(policy, at);
            }
            clock.resume(policy, at);
        }
    }
}

struct Log<'a> {
    audit: &'a mut Vec<AuditEntry>,
    actor: Actor,
    at: DateTime<Utc>,
}

impl Log<'_> {
    fn change(&mut self, field: &str, from: Option<String>, to: Option<String>) {
        if from != to {
            self.audit.push(AuditEntry {
                at: self.at,
                actor: self.actor,
                field: field.into(),
                from,
                to,
            });
        }
    }
}

fn set_status(
    ticket: &mut Ticket,
    to: TicketStatus,
    policy: Option<&SlaPolicy>,
    log: &mut Log<'_>,
) -> Result<()> {
    if to == ticket.status {
        return Ok(());
    }
    if !ticket.status.can_become(to) {
        return Err(Error::invalid(format!(
            "a {} ticket cannot become {to}",
            ticket.status
        )));
    }
    log.change(
        "status",
        Some(ticket.status.to_string()),
        Some(to.to_string()),
    );
    if let (Some(clock), Some(p)) = (ticket.sla.as_mut(), policy) {
        sla_on_status(clock, p, ticket.status, to, log.at);
    }
    ticket.status = to;
    Ok(())
}

/// Applies `patch` (by `actor` at `at`) to a ticket the caller loaded at the expected version;
/// bumps the version.
pub(crate) fn update(
    ticket: &mut Ticket,
    patch: &TicketPatch,
    actor: Actor,
    at: DateTime<Utc>,
    policy: Option<&SlaPolicy>,
) -> Result<Changed> {
    let mut out = Changed::default();
    let mut log = Log {
        audit: &mut out.audit,
        actor,
        at,
    };
    if let Some(subject) = &patch.subject {
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(Error::invalid("subject is empty"));
        }
        if subject != ticket.subject {
            log.change(
                "subject",
                Some(ticket.subject.clone()),
                Some(subject.into()),
            );
            ticket.subject = subject.into();
            out.text = search_text(subject);
        }
    }
    if let Some(status) = patch.status {
        set_status(ticket, status, policy, &mut log)?;
    }
    let before = (ticket.priority, tier(ticket).map(str::to_owned));
    if let Some(p) = patch.priority {
        log.change(
            "priority",
            Some(ticket.priority.as_str().into()),
            Some(p.as_str().into()),
        );
        ticket.priority = p;
    }
    if let Some(g) = &patch.group {
        log.change("group", ticket.group.clone(), g.clone());
        ticket.group = g.clone();
    }
    if let Some(a) = patch.assignee {
        log.change(
            "assignee",
            ticket.assignee.map(|a| a.to_string()),
            a.map(|a| a.to_string()),
        );
        ticket.assignee = a;
    }
    for t in &patch.add_tags {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && ticket.tags.insert(t.clone()) {
            log.change("tag", None, Some(t));
        }
    }
    for t in &patch.remove_tags {
        let t = t.trim().to_lowercase();
        if ticket.tags.remove(&t) {
            log.change("tag", Some(t), None);
        }
    }
    for (k, v) in &patch.fields {
        let was = ticket.fields.get(k).cloned();
        if v.is_empty() {
            ticket.fields.remove(k);
            log.change(&format!("field:{k}"), was, None);
        } else {
            ticket.fields.insert(k.clone(), v.clone());
            log.change(&format!("field:{k}"), was, Some(v.clone()));
        }
    }
    if let Some(p) = policy
        && before != (ticket.priority, tier(ticket).map(str::to_owned))
    {
        let t = targets(p, ticket);
        if let Some(clock) = ticket.sla.as_mut() {
            clock.retarget(p, t);
        }
    }
    if let Some(csat) = &patch.csat {
        if !(1..=5).contains(&csat.score) {
            return Err(Error::invalid("a CSAT score is 1 to 5"));
        }
        if !matches!(ticket.status, TicketStatus::Solved | TicketStatus::Closed) {
            return Err(Error::invalid("only a solved ticket can be rated"));
        }
        if let Actor::Customer { customer } = actor
            && ticket.customer != Some(customer)
        {
            return Err(Error::invalid("only the ticket's customer can rate it"));
        }
        log.change(
            "csat",
            ticket.csat.as_ref().map(|c| c.score.to_string()),
            Some(csat.score.to_string()),
        );
        ticket.csat = Some(csat.clone());
    }
    if let (Some(check), Some(clock)) = (patch.sla_check, ticket.sla.as_mut()) {
        for mark in clock.mark_due(check) {
            let what = if mark.breached { "breached" } else { "warning" };
            log.change(
                &format!("sla:{}", mark.metric.as_str()),
                None,
                Some(what.into()),
            );
        }
    }
    ticket.version += 1;
    ticket.updated_at = at;
    Ok(out)
}

/// Adds comment number `seq` to a ticket: a customer's reply reopens a solved or pending ticket,
/// an agent's public reply meets the response targets. Bumps the version.
pub(crate) fn comment(
    ticket: &mut Ticket,
    c: &NewComment,
    seq: u64,
    policy: Option<&SlaPolicy>,
) -> Result<(Comment, Changed)> {
    if c.body.trim().is_empty() {
        return Err(Error::invalid("comment body is empty"));
    }
    if ticket.status == TicketStatus::Closed {
        return Err(Error::invalid("ticket is closed"));
    }
    let comment = Comment {
        seq,
        author: c.author,
        body: c.body.clone(),
        public: c.public,
        attachments: c.attachments.clone(),
        created_at: c.at,
    };
    let mut out = Changed {
        audit: Vec::new(),
        text: search_text(&c.body),
    };
    let mut log = Log {
        audit: &mut out.audit,
        actor: c.author,
        at: c.at,
    };
    log.change(
        if c.public { "reply" } else { "note" },
        None,
        Some(seq.to_string()),
    );
    match c.author {
        Actor::Customer { .. } => {
            if matches!(
                ticket.status,
                TicketStatus::Solved | TicketStatus::PendingCustomer
            ) {
                set_status(ticket, TicketStatus::Open, policy, &mut log)?;
            }
            if let Some(p) = policy {
                let t = targets(p, ticket);
                if let Some(clock) = ticket.sla.as_mut() {
                    clock.customer_replied(p, t, c.at);
                }
            }
        }
        Actor::Agent { .. } if c.public => {
            if let (Some(clock), Some(p)) = (ticket.sla.as_mut(), policy) {
                clock.meet(p, SlaMetric::FirstResponse, c.at);
                clock.meet(p, SlaMetric::NextResponse, c.at);
            }
        }
        _ => {}
    }
    ticket.version += 1;
    ticket.updated_at = c.at;
    Ok((comment, out))
}

/// The conflict error for an update based on `expected` when the ticket is at `actual`.
pub(crate) fn conflict(id: TicketId, expected: u64, actual: u64) -> Error {
    Error::Conflict {
        id: id.to_string(),
        expected,
        actual,
    }
}

/// Whether `ticket` is in the SLA state `f` asks for.
pub(crate) fn sla_matches(ticket: &Ticket, f: &crate::model::SlaFilter) -> bool {
    let Some(clock) = &ticket.sla else {
        return false;
    };
    match f.state {
        crate::sla::SlaState::Due => clock.next_mark_at().is_some_and(|n| n <= f.at),
        s => clock.state(f.at) == Some(s),
    }
}
