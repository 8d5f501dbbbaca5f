//! The ticket desk: SLA monitoring, escalation chains, hand-over between departments, the
//! customer's status lookup and CSAT, over any [`TicketStore`] and the engine's [`Clock`].

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cs_core::{Clock, CustomerId, TenantId, TicketId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{
    Actor, Comment, Csat, NewComment, SlaFilter, Ticket, TicketPatch, TicketQuery, TicketStatus,
    UpdateTicket,
};
use crate::sla::{SlaClock, SlaLine, SlaMetric, SlaPolicy, SlaState};
use crate::store::TicketStore;

/// How often an automated change re-reads and retries after a concurrent write.
const RETRIES: usize = 32;

/// Something the desk did or saw; the engine forwards these to its event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// The tenant.
    pub tenant: TenantId,
    /// The ticket.
    pub ticket: TicketId,
    /// Its number.
    pub number: u64,
    /// When, by the desk's clock.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: TicketEventKind,
}

/// What happened to a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TicketEventKind {
    /// An SLA target is about to be breached.
    SlaWarning {
        /// Which target.
        metric: SlaMetric,
        /// Its deadline.
        due_at: Option<DateTime<Utc>>,
    },
    /// An SLA target was breached.
    SlaBreached {
        /// Which target.
        metric: SlaMetric,
    },
    /// The ticket moved up the escalation chain.
    Escalated {
        /// The group before.
        from: Option<String>,
        /// The group after.
        to: String,
        /// The rule that fired.
        rule: String,
    },
    /// A department handed the ticket to another.
    HandedOver {
        /// The group before.
        from: Option<String>,
        /// The group after.
        to: String,
        /// The note left for the new group.
        note: String,
    },
    /// The customer rated the service.
    CsatSubmitted {
        /// 1 to 5.
        score: u8,
        /// What they said.
        comment: Option<String>,
    },
}

/// Where an escalation sends a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationTarget {
    /// The next group of the desk's chain.
    Next,
    /// A named group.
    Group(String),
}

type Condition = Arc<dyn Fn(&Ticket) -> bool + Send + Sync>;

#[derive(Clone)]
enum Trigger {
    Breach(Option<SlaMetric>),
    Warning(Option<SlaMetric>),
    Condition(Condition),
}

/// A rule that moves a ticket to another group, on an SLA event or a condition.
#[derive(Clone)]
pub struct EscalationRule {
    name: String,
    trigger: Trigger,
    target: EscalationTarget,
}

impl fmt::Debug for EscalationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trigger = match &self.trigger {
            Trigger::Breach(m) => format!("breach {m:?}"),
            Trigger::Warning(m) => format!("warning {m:?}"),
            Trigger::Condition(_) => "condition".into(),
        };
        f.debug_struct("EscalationRule")
            .field("name", &self.name)
            .field("trigger", &trigger)
            .field("target", &self.target)
            .finish()
    }
}

impl EscalationRule {
    /// Fires when `metric` (any target when `None`) is breached.
    pub fn on_breach(
        name: impl Into<String>,
        metric: Option<SlaMetric>,
        target: EscalationTarget,
    ) -> Self {
        Self {
            name: name.into(),
            trigger: Trigger::Breach(metric),
            target,
        }
    }

    /// Fires when `metric` (any target when `None`) enters its warning window.
    pub fn on_warning(
        name: impl Into<String>,
        metric: Option<SlaMetric>,
        target: EscalationTarget,
    ) -> Self {
        Self {
            name: name.into(),
            trigger: Trigger::Warning(metric),
            target,
        }
    }

    /// Fires when `condition` holds for a ticket checked with [`TicketDesk::apply_rules`]
    /// (and the ticket is not already in the target group). A condition rule must name its
    /// group, so that it fires once.
    pub fn when(
        name: impl Into<String>,
        condition: impl Fn(&Ticket) -> bool + Send + Sync + 'static,
        group: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            trigger: Trigger::Condition(Arc::new(condition)),
            target: EscalationTarget::Group(group.into()),
        }
    }
}

/// An escalation that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// The ticket after the move.
    pub ticket: Ticket,
    /// The event.
    pub event: TicketEvent,
}

/// A department handing a ticket to another.
#[derive(Debug, Clone, PartialEq)]
pub struct HandOver {
    /// The tenant.
    pub tenant: TenantId,
    /// The ticket.
    pub ticket: TicketId,
    /// The receiving group.
    pub to: String,
    /// What the receiving group should know (stored as an internal note).
    pub note: String,
    /// Who hands over.
    pub actor: Actor,
}

/// What a customer sees when asking about their ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerTicketView {
    /// The number they quoted.
    pub number: u64,
    /// Subject.
    pub subject: String,
    /// Status.
    pub status: TicketStatus,
    /// The department working on it.
    pub group: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it is due to be resolved, if the resolution clock runs.
    pub resolution_due: Option<DateTime<Utc>>,
    /// Public replies only (never internal notes).
    pub replies: Vec<Comment>,
    /// Whether a CSAT rating is still welcome.
    pub can_rate: bool,
}

/// Builds a [`TicketDesk`].
#[derive(Debug)]
pub struct TicketDeskBuilder {
    desk: TicketDesk,
}

impl TicketDeskBuilder {
    /// A desk over `store`, with time from `clock`.
    pub fn new(store: Arc<dyn TicketStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            desk: TicketDesk {
                store,
                clock,
                chain: Vec::new(),
                rules: Vec::new(),
                sla: None,
            },
        }
    }

    /// The escalation chain, lowest level first (e.g. `service`, `after-sales`, `logistics`).
    pub fn with_chain<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.desk.chain = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an escalation rule.
    pub fn with_rule(mut self, rule: EscalationRule) -> Self {
        self.desk.rules.push(rule);
        self
    }

    /// The SLA policy the store runs, for countdowns ([`TicketDesk::countdown`]).
    pub fn with_sla(mut self, policy: SlaPolicy) -> Self {
        self.desk.sla = Some(Arc::new(policy));
        self
    }

    /// Checks and builds the desk.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a rule escalates to the next group without a chain.
    pub fn build(self) -> Result<TicketDesk> {
        let d = self.desk;
        let needs_chain = d.rules.iter().any(|r| r.target == EscalationTarget::Next);
        if needs_chain && d.chain.len() < 2 {
            return Err(Error::invalid(
                "escalating to the next group needs a chain of two groups or more",
            ));
        }
        Ok(d)
    }
}

/// SLA monitoring, escalation, hand-over, customer lookup and CSAT over a [`TicketStore`].
///
/// Call [`TicketDesk::tick`] periodically (per tenant): it records the SLA warnings and breaches
/// that came due by the clock, returns them as events and applies the escalation rules.
pub struct TicketDesk {
    store: Arc<dyn TicketStore>,
    clock: Arc<dyn Clock>,
    chain: Vec<String>,
    rules: Vec<EscalationRule>,
    sla: Option<Arc<SlaPolicy>>,
}

impl fmt::Debug for TicketDesk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketDesk")
            .field("store", &self.store)
            .field("chain", &self.chain)
            .field("rules", &self.rules)
            .field("sla", &self.sla.as_ref().map(|p| p.name()))
            .finish()
    }
}

fn marked(
    before: Option<&SlaClock>,
    after: Option<&SlaClock>,
) -> Vec<(SlaMetric, bool, Option<DateTime<Utc>>)> {
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in &after.timers {
        let old = before.timers.iter().find(|b| b.metric == t.metric);
        let (warned, breached) = old.map_or((false, false), |b| (b.warned, b.breached));
        if t.breached && !breached {
            out.push((t.metric, true, t.due_at));
        } else if t.warned && !warned {
            out.push((t.metric, false, t.due_at));
        }
    }
    out
}

impl TicketDesk {
    /// The store.
    pub fn store(&self) -> &Arc<dyn TicketStore> {
        &self.store
    }

    fn event(&self, t: &Ticket, kind: TicketEventKind) -> TicketEvent {
        TicketEvent {
            tenant: t.tenant.clone(),
            ticket: t.id,
            number: t.number,
            at: self.clock.now(),
            kind,
        }
    }

    /// Re-reads and applies `patch_for` until no concurrent write gets in between. `None` from
    /// `patch_for` means nothing to do.
    async fn modify(
        &self,
        tenant: &TenantId,
        id: TicketId,
        actor: Actor,
        patch_for: impl Fn(&Ticket) -> Result<Option<TicketPatch>>,
    ) -> Result<Option<(Ticket, Ticket)>> {
        for _ in 0..RETRIES {
            let before = self.store.get(tenant, id).await?;
            let Some(patch) = patch_for(&before)? else {
                return Ok(None);
            };
            let update = UpdateTicket {
                tenant: tenant.clone(),
                id,
                expected_version: before.version,
                actor,
                at: self.clock.now(),
                patch,
            };
            match self.store.update(update).await {
                Ok(after) => return Ok(Some((before, after))),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable {
            reason: format!("ticket {id} keeps changing; gave up after {RETRIES} tries"),
        })
    }

    /// Records every SLA warning and breach of `tenant` that came due by the clock, and applies
    /// the SLA escalation rules to them. Returns the events, warnings and breaches first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn tick(&self, tenant: &TenantId) -> Result<Vec<TicketEvent>> {
        let now = self.clock.now();
        let due = self
            .store
            .search(&TicketQuery {
                tenant: tenant.clone(),
                sla: Some(SlaFilter {
                    state: SlaState::Due,
                    at: now,
                }),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        let mut events = Vec::new();
        let mut escalations = Vec::new();
        for t in due {
            let check = TicketPatch {
                sla_check: Some(now),
                ..Default::default()
            };
            let Some((before, after)) = self
                .modify(tenant, t.id, Actor::System, |_| Ok(Some(check.clone())))
                .await?
            else {
                continue;
            };
            for (metric, breached, due_at) in marked(before.sla.as_ref(), after.sla.as_ref()) {
                let kind = if breached {
                    TicketEventKind::SlaBreached { metric }
                } else {
                    TicketEventKind::SlaWarning { metric, due_at }
                };
                events.push(self.event(&after, kind));
                let rule = self.rules.iter().find(|r| match r.trigger {
                    Trigger::Breach(m) => breached && m.is_none_or(|m| m == metric),
                    Trigger::Warning(m) => !breached && m.is_none_or(|m| m == metric),
                    Trigger::Condition(_) => false,
                });
                if let Some(rule) = rule {
                    escalations.push((after.id, rule.clone(), metric, breached));
                }
            }
        }
        for (id, rule, metric, breached) in escalations {
            let reason = format!(
                "SLA {} {}",
                metric.as_str(),
                if breached { "breached" } else { "warning" }
            );
            if let Some(e) = self.escalate(tenant, id, &rule, &reason).await? {
                events.push(e.event);
            }
        }
        Ok(events)
    }

    fn target_group(&self, rule: &EscalationRule, current: Option<&str>) -> Option<String> {
        match &rule.target {
            EscalationTarget::Group(g) => (current != Some(g.as_str())).then(|| g.clone()),
            EscalationTarget::Next => {
                let at = current
                    .and_then(|c| self.chain.iter().position(|g| g == c))
                    .unwrap_or(0);
                self.chain.get(at + 1).cloned()
            }
        }
    }

    async fn escalate(
        &self,
        tenant: &TenantId,
        id: TicketId,
        rule: &EscalationRule,
        reason: &str,
    ) -> Result<Option<Escalation>> {
        let moved = self
            .modify(tenant, id, Actor::System, |t| {
                Ok(self
                    .target_group(rule, t.group.as_deref())
                    .map(|to| TicketPatch {
                        group: Some(Some(to)),
                        assignee: Some(None),
                        ..Default::default()
                    }))
            })
            .await?;
        let Some((before, after)) = moved else {
            return Ok(None);
        };
        let to = after.group.clone().unwrap_or_default();
        self.note(
            &after,
            Actor::System,
            format!(
                "Escalated from {} to {to} by rule \"{}\": {reason}",
                before.group.as_deref().unwrap_or("(none)"),
                rule.name
            ),
        )
        .await?;
        let event = self.event(
            &after,
            TicketEventKind::Escalated {
                from: before.group,
                to,
                rule: rule.name.clone(),
            },
        );
        let ticket = self.store.get(tenant, id).await?;
        Ok(Some(Escalation { ticket, event }))
    }

    async fn note(&self, t: &Ticket, author: Actor, body: String) -> Result<Comment> {
        self.store
            .add_comment(NewComment {
                tenant: t.tenant.clone(),
                ticket: t.id,
                author,
                body,
                public: false,
                attachments: Vec::new(),
                at: self.clock.now(),
            })
            .await
    }

    /// Applies the condition rules to one ticket (call it after changes the rules look at).
    ///
    /// # Errors
    /// Store failures.
    pub async fn apply_rules(&self, tenant: &TenantId, id: TicketId) -> Result<Vec<TicketEvent>> {
        let mut events = Vec::new();
        for rule in &self.rules {
            let Trigger::Condition(cond) = &rule.trigger else {
                continue;
            };
            let t = self.store.get(tenant, id).await?;
            if !cond(&t) {
                continue;
            }
            if let Some(e) = self.escalate(tenant, id, rule, "condition matched").await? {
                events.push(e.event);
            }
        }
        Ok(events)
    }

    /// Hands a ticket to another department: the group changes, the assignee is cleared so the
    /// new group picks it up, and the note is kept as an internal note.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty note or group, or a ticket already in that group;
    /// [`Error::NotFound`].
    pub async fn hand_over(&self, h: HandOver) -> Result<(Ticket, TicketEvent)> {
        let to = h.to.trim().to_owned();
        if to.is_empty() || h.note.trim().is_empty() {
            return Err(Error::invalid("a hand-over needs a group and a note"));
        }
        let (before, after) = self
            .modify(&h.tenant, h.ticket, h.actor, |t| {
                if t.group.as_deref() == Some(to.as_str()) {
                    return Err(Error::invalid(format!("ticket is already with {to}")));
                }
                Ok(Some(TicketPatch {
                    group: Some(Some(to.clone())),
                    assignee: Some(None),
                    ..Default::default()
                }))
            })
            .await?
            .ok_or_else(|| Error::invalid("nothing to hand over"))?;
        self.note(
            &after,
            h.actor,
            format!(
                "Hand-over from {} to {to}: {}",
                before.group.as_deref().unwrap_or("(none)"),
                h.note.trim()
            ),
        )
        .await?;
        let event = self.event(
            &after,
            TicketEventKind::HandedOver {
                from: before.group,
                to,
                note: h.note.trim().to_owned(),
            },
        );
        Ok((self.store.get(&h.tenant, h.ticket).await?, event))
    }

    async fn customers_ticket(
        &self,
        tenant: &TenantId,
        number: u64,
        customer: CustomerId,
    ) -> Result<Ticket> {
        let t = self.store.get_by_number(tenant, number).await?;
        // Someone else's ticket looks exactly like a missing one.
        if t.customer != Some(customer) {
            return Err(Error::NotFound {
                id: format!("#{number}"),
            });
        }
        Ok(t)
    }

    /// The status of ticket `number` as its customer may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such ticket or it belongs to another customer.
    pub async fn customer_status(
        &self,
        tenant: &TenantId,
        number: u64,
        customer: CustomerId,
    ) -> Result<CustomerTicketView> {
        let t = self.customers_ticket(tenant, number, customer).await?;
        let replies = self
            .store
            .comments(tenant, t.id)
            .await?
            .into_iter()
            .filter(|c| c.public)
            .collect();
        let resolution_due = t.sla.as_ref().and_then(|c| {
            c.timers
                .iter()
                .find(|x| x.metric == SlaMetric::Resolution)
                .and_then(|x| x.due_at)
        });
        Ok(CustomerTicketView {
            number: t.number,
            subject: t.subject,
            can_rate: t.csat.is_none()
                && matches!(t.status, TicketStatus::Solved | TicketStatus::Closed),
            status: t.status,
            group: t.group,
            updated_at: t.updated_at,
            resolution_due,
            replies,
        })
    }

    /// Stores the customer's CSAT rating of a solved ticket and returns the event.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a score outside 1 to 5 or a ticket not solved;
    /// [`Error::NotFound`] when the ticket is not the customer's.
    pub async fn rate(
        &self,
        tenant: &TenantId,
        number: u64,
        customer: CustomerId,
        score: u8,
        comment: Option<String>,
    ) -> Result<TicketEvent> {
        let t = self.customers_ticket(tenant, number, customer).await?;
        let csat = Csat {
            score,
            comment: comment.filter(|c| !c.trim().is_empty()),
            at: self.clock.now(),
        };
        let (_, after) = self
            .modify(tenant, t.id, Actor::Customer { customer }, |_| {
                Ok(Some(TicketPatch {
                    csat: Some(csat.clone()),
                    ..Default::default()
                }))
            })
            .await?
            .ok_or_else(|| Error::invalid("nothing to rate"))?;
        Ok(self.event(
            &after,
            TicketEventKind::CsatSubmitted {
                score: csat.score,
                comment: csat.comment,
            },
        ))
    }

    /// The SLA countdown of a ticket now (empty without SLA policy or clock).
    pub fn countdown(&self, t: &Ticket) -> Vec<SlaLine> {
        match (&self.sla, &t.sla) {
            (Some(p), Some(c)) => c.report(p, self.clock.now()),
            _ => Vec::new(),
        }
    }
}
