//! [`Outbox`] in SQL: outbound messages, claims, dead letters, receipts.

use std::collections::HashMap;

use async_trait::async_trait;

use super::rows::message_from_row;
use super::{Conn, Rec, SqlStore, insert_message, insert_stmt};
use crate::channel::Identity;
use crate::error::{Error, Result};
use crate::id::{ConversationId, MessageId};
use crate::message::{DeliveryStatus, Message};
use crate::sql::{Driver, SqlRow, Stmt, micros};
use crate::store::outbox::status_advances;
use crate::store::{
    Appended, ClaimOutbound, Claimed, DeadLetter, DeadLetterQuery, FinishOutbound, Outbox, Outcome,
    Receipt, ReleaseClaims, StatusChange, page,
};

/// Sets a message's status.
fn set_status(tenant: &str, id: &str, status: DeliveryStatus) -> Stmt {
    Stmt::new("UPDATE cs_messages SET status = $1 WHERE tenant = $2 AND id = $3")
        .bind(status.as_str())
        .bind(tenant)
        .bind(id)
}

#[async_trait]
impl<D: Driver> Outbox for SqlStore<D> {
    async fn append_outbound(&self, m: &Message, to: &Identity) -> Result<Appended> {
        m.validate()?;
        let (m, to, insert) = (m.clone(), to.clone(), insert_stmt(m)?);
        self.transact(true, move |mut conn| {
            Box::pin(async move { insert_outbound(&mut conn, &m, &to, insert, None).await })
        })
        .await
    }

    async fn claim_outbound(&self, req: &ClaimOutbound) -> Result<Vec<Claimed>> {
        let req = req.clone();
        // The claim and the claimed messages in one unit: one hand-over to the writer.
        self.transact(false, move |mut conn| {
            Box::pin(async move { claim_for(&mut conn, &req, None).await })
        })
        .await
    }

    async fn release_claims(&self, req: &ReleaseClaims) -> Result<u64> {
        self.write(
            Stmt::new(
                "UPDATE cs_outbox SET claimed_by = NULL,
                    next_attempt_at = CASE WHEN next_attempt_at > $1 THEN $1
                        ELSE next_attempt_at END
                 WHERE tenant = $2 AND claimed_by = $3 AND dead = 0",
            )
            .bind(micros(req.now))
            .bind(req.tenant.as_str())
            .bind(req.owner.as_str()),
        )
        .await
    }

    async fn finish_outbound(&self, req: &FinishOutbound) -> Result<()> {
        let req = req.clone();
        // A retry is one statement; the other outcomes change the outbox and the message.
        let atomic = !matches!(req.outcome, Outcome::Retry { .. });
        self.transact(atomic, move |mut conn| {
            Box::pin(async move { finish_in(&mut conn, &req).await })
        })
        .await
    }

    async fn append_and_claim(
        &self,
        m: &Message,
        to: &Identity,
        claim: &ClaimOutbound,
    ) -> Result<(Appended, Vec<Claimed>)> {
        m.validate()?;
        let req = ClaimOutbound {
            conversation: Some(m.conversation),
            ..claim.clone()
        };
        let (m, to, insert) = (m.clone(), to.clone(), insert_stmt(m)?);
        self.transact(true, move |mut conn| {
            Box::pin(async move {
                // With one writer at a time: when nothing of the conversation waits, the new
                // entry is stored already claimed (no claim statement, no second index update).
                if D::SERIAL_WRITES
                    && head_of::<D>(&mut conn, &req, m.conversation)
                        .await?
                        .is_none()
                {
                    let appended = insert_outbound(&mut conn, &m, &to, insert, Some(&req)).await?;
                    let claimed = match &appended {
                        Appended::Inserted(m) => vec![Claimed {
                            message: m.clone(),
                            to,
                            attempts: 0,
                        }],
                        Appended::Duplicate(_) => Vec::new(),
                    };
                    return Ok((appended, claimed));
                }
                let appended = insert_outbound(&mut conn, &m, &to, insert, None).await?;
                if appended.is_duplicate() {
                    return Ok((appended, Vec::new()));
                }
                let claimed = claim_for(&mut conn, &req, Some(&m)).await?;
                Ok((appended, claimed))
            })
        })
        .await
    }

    async fn finish_and_claim(
        &self,
        finish: &FinishOutbound,
        next: Option<&ClaimOutbound>,
    ) -> Result<Vec<Claimed>> {
        let Some(next) = next else {
            self.finish_outbound(finish).await?;
            return Ok(Vec::new());
        };
        let (finish, next) = (finish.clone(), next.clone());
        self.transact(true, move |mut conn| {
            Box::pin(async move {
                finish_in(&mut conn, &finish).await?;
                claim_for(&mut conn, &next, None).await
            })
        })
        .await
    }

    async fn dead_letters(&self, q: &DeadLetterQuery) -> Result<Vec<DeadLetter>> {
        let mut sql = Stmt::new(
            "SELECT m.*, o.attempts AS outbox_attempts, o.last_error AS outbox_error
             FROM cs_outbox o JOIN cs_messages m ON m.tenant = o.tenant AND m.id = o.message
             WHERE o.dead = 1 AND o.tenant = ",
        );
        sql.push_bind(q.tenant.as_str());
        if let Some(after) = q.after {
            sql.push(" AND o.message > ").push_bind(after.to_string());
        }
        sql.push(" ORDER BY o.message LIMIT ")
            .push_bind(page(q.limit) as i64);
        self.read_all(sql)
            .await?
            .iter()
            .map(|r| {
                Ok(DeadLetter {
                    message: message_from_row(r)?,
                    attempts: u32::try_from(r.int("outbox_attempts")?).unwrap_or(u32::MAX),
                    error: r.opt_text("outbox_error")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn apply_receipt(&self, receipt: &Receipt) -> Result<Option<MessageId>> {
        let t = receipt.tenant.as_str();
        let Some(row) = self
            .read_one(
                Stmt::new(
                    "SELECT message FROM cs_receipts
                     WHERE tenant = $1 AND channel = $2 AND provider_id = $3",
                )
                .bind(t)
                .bind(receipt.channel.as_str())
                .bind(receipt.provider_id.as_str()),
            )
            .await?
        else {
            return Ok(None);
        };
        let id: MessageId = row.parse("message")?;
        // Statuses only move forward: the update applies only over the statuses the new one
        // advances from, in one statement (no read-then-write race between two receipts).
        let behind = DeliveryStatus::ALL
            .into_iter()
            .filter(|old| status_advances(*old, receipt.status))
            .map(DeliveryStatus::as_str);
        let mut update = Stmt::new(
            "UPDATE cs_messages SET status = $1 WHERE tenant = $2 AND id = $3 AND status ",
        )
        .bind(receipt.status.as_str())
        .bind(t)
        .bind(id.to_string());
        update.push_in::<D>(behind);
        self.write(update).await?;
        Ok(Some(id))
    }

    async fn set_delivery_status(&self, change: &StatusChange) -> Result<()> {
        let done = self
            .write(set_status(
                change.tenant.as_str(),
                &change.message.to_string(),
                change.status,
            ))
            .await?;
        if done == 0 {
            return Err(Error::not_found("message", change.message));
        }
        Ok(())
    }
}

/// Stores an outbound message and its outbox entry (nothing when it is a duplicate); with
/// `claimed`, the entry is stored already claimed by that claim (the caller knows nothing of the
/// conversation waits before it).
async fn insert_outbound<D: Driver>(
    conn: &mut Conn<'_, D>,
    m: &Message,
    to: &Identity,
    insert: Stmt,
    claimed: Option<&ClaimOutbound>,
) -> Result<Appended> {
    let appended = insert_message::<D>(conn, m, insert).await?;
    if let Appended::Inserted(m) = &appended {
        let (next_attempt_at, owner) = match claimed {
            Some(c) => (micros(c.lease_until), c.owner.clone()),
            None => (micros(m.created_at), None),
        };
        conn.execute(
            Stmt::new(
                "INSERT INTO cs_outbox (tenant, message, conversation, to_kind,
                    to_external_id, next_attempt_at, claimed_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(m.tenant.as_str())
            .bind(m.id.to_string())
            .bind(m.conversation.to_string())
            .bind(to.kind.as_str())
            .bind(&to.external_id)
            .bind(next_attempt_at)
            .bind(owner),
        )
        .await?;
    }
    Ok(appended)
}

/// Claims what `req` asks for; `known` is a message the caller holds already (just stored).
/// One conversation's claim where writes are serial reads that conversation's head by its index
/// and claims it by key; otherwise the general claim statement (which scans every due entry
/// of the tenant) runs.
async fn claim_for<D: Driver>(
    conn: &mut Conn<'_, D>,
    req: &ClaimOutbound,
    known: Option<&Message>,
) -> Result<Vec<Claimed>> {
    match req.conversation {
        Some(conversation) if D::SERIAL_WRITES => {
            claim_head::<D>(conn, req, conversation, known).await
        }
        _ => claim_in(conn, req.tenant.as_str(), claim_stmt::<D>(req), known).await,
    }
}

/// The oldest entry of a conversation's outbox that is not dead: the only one that may go out.
async fn head_of<D: Driver>(
    conn: &mut Conn<'_, D>,
    req: &ClaimOutbound,
    conversation: ConversationId,
) -> Result<Option<Rec<D::Record>>> {
    conn.fetch_optional(
        Stmt::new(
            "SELECT message, attempts, next_attempt_at, to_kind, to_external_id FROM cs_outbox
             WHERE tenant = $1 AND conversation = $2 AND dead = 0
             ORDER BY message LIMIT 1",
        )
        .bind(req.tenant.as_str())
        .bind(conversation.to_string()),
    )
    .await
}

/// A conversation's claim with one writer at a time: its head, when it is due, claimed by key.
/// A head that is not due is in flight elsewhere or waiting for its retry; nothing behind it
/// may overtake it.
async fn claim_head<D: Driver>(
    conn: &mut Conn<'_, D>,
    req: &ClaimOutbound,
    conversation: ConversationId,
    known: Option<&Message>,
) -> Result<Vec<Claimed>> {
    let Some(head) = head_of::<D>(conn, req, conversation).await? else {
        return Ok(Vec::new());
    };
    if head.int("next_attempt_at")? > micros(req.now) || req.limit == 0 {
        return Ok(Vec::new());
    }
    let id: MessageId = head.parse("message")?;
    conn.execute(
        Stmt::new(
            "UPDATE cs_outbox SET next_attempt_at = $1, claimed_by = $2
             WHERE tenant = $3 AND message = $4",
        )
        .bind(micros(req.lease_until))
        .bind(req.owner.clone())
        .bind(req.tenant.as_str())
        .bind(id.to_string()),
    )
    .await?;
    let to = Identity {
        kind: head.parse("to_kind")?,
        external_id: head.text("to_external_id")?,
    };
    let attempts = u32::try_from(head.int("attempts")?).unwrap_or(u32::MAX);
    let message = match known {
        Some(m) if m.id == id => m.clone(),
        _ => {
            let row = conn
                .fetch_optional(
                    Stmt::new("SELECT * FROM cs_messages WHERE tenant = $1 AND id = $2")
                        .bind(req.tenant.as_str())
                        .bind(id.to_string()),
                )
                .await?
                .ok_or_else(|| Error::not_found("message", id))?;
            message_from_row(&row)?
        }
    };
    Ok(vec![Claimed {
        message,
        to,
        attempts,
    }])
}

/// The claim of `req`: the head of each conversation's queue that is due; SKIP LOCKED where
/// several processes claim at once, so none gets a message another has.
fn claim_stmt<D: Driver>(req: &ClaimOutbound) -> Stmt {
    let mut claim = Stmt::new(
        "UPDATE cs_outbox SET next_attempt_at = $1, claimed_by = $4
         WHERE tenant = $2 AND message IN (
            SELECT o.message FROM cs_outbox o
            WHERE o.tenant = $2 AND o.dead = 0 AND o.next_attempt_at <= $3
              AND NOT EXISTS (
                SELECT 1 FROM cs_outbox p
                WHERE p.tenant = o.tenant AND p.conversation = o.conversation
                  AND p.dead = 0 AND p.message < o.message)",
    )
    .bind(micros(req.lease_until))
    .bind(req.tenant.as_str())
    .bind(micros(req.now))
    .bind(req.owner.clone());
    if let Some(c) = req.conversation {
        claim
            .push(" AND o.conversation = ")
            .push_bind(c.to_string());
    }
    claim
        .push(" ORDER BY o.message LIMIT ")
        .push_bind(page(req.limit) as i64)
        .push(D::SKIP_LOCKED)
        .push(") RETURNING message, attempts, to_kind, to_external_id");
    claim
}

/// Runs a claim and reads the claimed messages (in one read, not one each); `known` is a
/// message the caller holds already (just stored), not read again.
async fn claim_in<D: Driver>(
    conn: &mut Conn<'_, D>,
    tenant: &str,
    claim: Stmt,
    known: Option<&Message>,
) -> Result<Vec<Claimed>> {
    let claimed = conn.fetch_all(claim).await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let mut heads = HashMap::with_capacity(claimed.len());
    for row in &claimed {
        let to = Identity {
            kind: row.parse("to_kind")?,
            external_id: row.text("to_external_id")?,
        };
        let attempts = u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX);
        heads.insert(row.parse::<MessageId>("message")?, (to, attempts));
    }
    let mut out = Vec::with_capacity(heads.len());
    if let Some(m) = known
        && let Some((to, attempts)) = heads.remove(&m.id)
    {
        out.push(Claimed {
            message: m.clone(),
            to,
            attempts,
        });
    }
    if !heads.is_empty() {
        let mut read = Stmt::new("SELECT * FROM cs_messages WHERE tenant = ");
        read.push_bind(tenant)
            .push(" AND id ")
            .push_in::<D>(heads.keys().map(MessageId::to_string));
        for row in conn.fetch_all(read).await? {
            let message = message_from_row(&row)?;
            if let Some((to, attempts)) = heads.remove(&message.id) {
                out.push(Claimed {
                    message,
                    to,
                    attempts,
                });
            }
        }
    }
    out.sort_by_key(|c| c.message.id);
    Ok(out)
}

/// Records the outcome of a delivery attempt: a retry reschedules the entry; a delivery removes
/// it and sets the message's status (and files the provider's id for receipts); a dead letter
/// keeps it, marked, and fails the message.
async fn finish_in<D: Driver>(conn: &mut Conn<'_, D>, req: &FinishOutbound) -> Result<()> {
    let (t, id) = (req.tenant.as_str(), req.message.to_string());
    let message = req.message;
    let gone = move || Error::not_found("outbox message", message);
    match &req.outcome {
        Outcome::Retry { at, error } => {
            let done = conn
                .execute(
                    Stmt::new(
                        "UPDATE cs_outbox SET attempts = attempts + 1, next_attempt_at = $1,
                            last_error = $2, claimed_by = NULL
                         WHERE tenant = $3 AND message = $4 AND dead = 0",
                    )
                    .bind(micros(*at))
                    .bind(error)
                    .bind(t)
                    .bind(id.as_str()),
                )
                .await?;
            if done == 0 {
                return Err(gone());
            }
        }
        Outcome::Sent {
            status,
            provider_id,
        } => {
            let done = conn
                .execute(
                    Stmt::new(
                        "DELETE FROM cs_outbox
                         WHERE tenant = $1 AND message = $2 AND dead = 0",
                    )
                    .bind(t)
                    .bind(id.as_str()),
                )
                .await?;
            if done == 0 {
                return Err(gone());
            }
            conn.execute(set_status(t, &id, *status)).await?;
            if let Some(pid) = provider_id {
                conn.execute(
                    Stmt::new(
                        "INSERT INTO cs_receipts (tenant, channel, provider_id, message)
                         SELECT tenant, channel, $1, id FROM cs_messages
                         WHERE tenant = $2 AND id = $3
                         ON CONFLICT (tenant, channel, provider_id)
                         DO UPDATE SET message = excluded.message",
                    )
                    .bind(pid)
                    .bind(t)
                    .bind(id.as_str()),
                )
                .await?;
            }
        }
        Outcome::Dead { error } => {
            let done = conn
                .execute(
                    Stmt::new(
                        "UPDATE cs_outbox SET attempts = attempts + 1, dead = 1,
                            last_error = $1
                         WHERE tenant = $2 AND message = $3 AND dead = 0",
                    )
                    .bind(error)
                    .bind(t)
                    .bind(id.as_str()),
                )
                .await?;
            if done == 0 {
                return Err(gone());
            }
            conn.execute(set_status(t, &id, DeliveryStatus::Failed))
                .await?;
        }
    }
    Ok(())
}
