//! [`CustomerStore`] in SQL: identity resolution with shared keys, links, suggestions, merges.

use super::rows::{
    customer_from_row, identity_from_row, key_from_row, link_from_row, merge_from_row, to_json,
};
use super::{Conn, SqlStore, is_missing_parent};
use crate::channel::{Identity, IdentityLink, LinkOrigin, SharedKey};
use crate::customer::Customer;
use crate::error::{Error, Result};
use crate::id::{ConversationId, CustomerId, MergeId, TenantId};
use crate::sql::{Driver, SqlRow, Stmt, micros};
use crate::store::customers::{new_customer, one_per_candidate};
use crate::store::{
    CustomerStore, LinkIdentity, LinkSuggestion, Merge, MergeCustomers, ResolveCustomer, Resolved,
    Unmerge,
};
use async_trait::async_trait;

/// The columns of an [`IdentityLink`].
const LINK: &str = "kind, external_id, origin, linked_at, shared_key, key_proven, verified";

/// How often resolution re-reads the identities sharing a key when the one it chose to join
/// moved (a concurrent merge) before it could be locked.
const JOIN_ATTEMPTS: usize = 3;

/// Why a first contact's transaction rolls back: a concurrent call claimed the identity first
/// (the caller then reads the winner's customer).
const CLAIMED_MEANWHILE: &str = "identity claimed by a concurrent first contact";

/// The owner of an identity, with the key the identity carries (`i_shared_key`, `i_key_proven`).
fn find_identity(tenant: &TenantId, identity: &Identity) -> Stmt {
    Stmt::new(
        "SELECT c.*, i.shared_key AS i_shared_key, i.key_proven AS i_key_proven
         FROM cs_identities i JOIN cs_customers c ON c.tenant = i.tenant AND c.id = i.customer
         WHERE i.tenant = $1 AND i.kind = $2 AND i.external_id = $3",
    )
    .bind(tenant.as_str())
    .bind(identity.kind.as_str())
    .bind(&identity.external_id)
}

/// Links a new identity; a no-op (0 rows) when someone claimed it first.
fn insert_identity(
    tenant: &TenantId,
    customer: CustomerId,
    identity: &Identity,
    origin: &LinkOrigin,
    key: Option<&SharedKey>,
    at: chrono::DateTime<chrono::Utc>,
) -> Stmt {
    Stmt::new(
        "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at, origin,
            shared_key, key_proven, verified)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(identity.kind.as_str())
    .bind(&identity.external_id)
    .bind(customer.to_string())
    .bind(micros(at))
    .bind(origin.to_storage())
    .bind(key.map(|k| k.key.clone()))
    .bind(key.is_some_and(|k| k.proven))
}

/// An identity of another customer carrying the key being resolved.
struct Sibling {
    customer: CustomerId,
    identity: Identity,
    proven: bool,
    linked_at: chrono::DateTime<chrono::Utc>,
}

impl Sibling {
    fn suggestion(
        &self,
        key: &SharedKey,
        customer: CustomerId,
        identity: &Identity,
    ) -> LinkSuggestion {
        LinkSuggestion {
            key: key.key.clone(),
            customer,
            identity: identity.clone(),
            proven: key.proven,
            candidate: self.customer,
            candidate_identity: self.identity.clone(),
            candidate_proven: self.proven,
        }
    }
}

impl<D: Driver> SqlStore<D> {
    /// The identities carrying `key`, oldest link first.
    async fn siblings(tx: &mut Conn<'_, D>, tenant: &TenantId, key: &str) -> Result<Vec<Sibling>> {
        tx.fetch_all(
            Stmt::new(
                "SELECT customer, kind, external_id, key_proven, linked_at FROM cs_identities
                 WHERE tenant = $1 AND shared_key = $2 ORDER BY linked_at, kind, external_id",
            )
            .bind(tenant.as_str())
            .bind(key),
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Sibling {
                customer: r.parse("customer")?,
                identity: identity_from_row(r, "")?,
                proven: r.flag("key_proven")?,
                linked_at: r.time("linked_at")?,
            })
        })
        .collect()
    }

    /// The customer a new identity proving `key` joins: the owner of the oldest identity that
    /// proves it too, share-locked so a concurrent merge cannot move it away meanwhile (the
    /// merge locks it for update), and confirmed after the lock.
    async fn join_candidate(
        tx: &mut Conn<'_, D>,
        tenant: &TenantId,
        key: &str,
        siblings: &[Sibling],
    ) -> Result<Option<Customer>> {
        let lock = format!(
            "SELECT * FROM cs_customers WHERE tenant = $1 AND id = $2{}",
            D::FOR_SHARE
        );
        for s in siblings.iter().filter(|s| s.proven) {
            let id = s.customer.to_string();
            let Some(row) = tx
                .fetch_optional(
                    Stmt::dynamic(lock.clone())
                        .bind(tenant.as_str())
                        .bind(id.as_str()),
                )
                .await?
            else {
                continue;
            };
            let still = tx
                .fetch_optional(
                    Stmt::new(
                        "SELECT 1 AS one FROM cs_identities
                     WHERE tenant = $1 AND customer = $2 AND shared_key = $3 AND key_proven = 1",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(key),
                )
                .await?;
            if still.is_some() {
                return Ok(Some(customer_from_row(&row)?));
            }
        }
        Ok(None)
    }

    /// Resolves a new identity in `tx`: joins it to a customer by a key both prove, or creates a
    /// customer for it. `None` when a concurrent call claimed the identity first.
    async fn resolve_new(tx: &mut Conn<'_, D>, req: &ResolveCustomer) -> Result<Option<Resolved>> {
        let t = &req.tenant;
        let mut siblings = Vec::new();
        let mut joined = None;
        if let Some(key) = &req.shared_key {
            for _ in 0..JOIN_ATTEMPTS {
                siblings = Self::siblings(tx, t, &key.key).await?;
                if !key.proven || !siblings.iter().any(|s| s.proven) {
                    break;
                }
                joined = Self::join_candidate(tx, t, &key.key, &siblings).await?;
                if joined.is_some() {
                    break;
                }
            }
        }
        let (customer, created, origin) = match (joined, &req.shared_key) {
            (Some(c), Some(key)) => (
                c,
                false,
                LinkOrigin::SharedKey {
                    key: key.key.clone(),
                },
            ),
            _ => (new_customer(req), true, LinkOrigin::FirstContact),
        };
        if created {
            tx.execute(
                Stmt::new(
                    "INSERT INTO cs_customers (tenant, id, display_name, tier, language,
                        created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.as_str())
                .bind(customer.id.to_string())
                .bind(&customer.display_name)
                .bind(customer.tier.as_str())
                .bind(&customer.language)
                .bind(micros(customer.created_at)),
            )
            .await?;
        }
        let key = req.shared_key.as_ref();
        let claimed = tx
            .execute(insert_identity(
                t,
                customer.id,
                &req.identity,
                &origin,
                key,
                req.at,
            ))
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        let suggestions = match key {
            Some(key) => one_per_candidate(
                siblings
                    .iter()
                    .filter(|s| s.customer != customer.id)
                    .map(|s| (s.linked_at, s.suggestion(key, customer.id, &req.identity)))
                    .collect(),
            ),
            None => Vec::new(),
        };
        Ok(Some(Resolved {
            customer,
            created,
            joined: !created,
            suggestions,
        }))
    }
}

#[async_trait]
impl<D: Driver> CustomerStore for SqlStore<D> {
    async fn resolve_customer(&self, req: &ResolveCustomer) -> Result<Resolved> {
        // A known identity: one read (and, once, a write recording a key it was first seen
        // without).
        if let Some(row) = self
            .read_one(find_identity(&req.tenant, &req.identity))
            .await?
        {
            let customer = customer_from_row(&row)?;
            if let Some(key) = &req.shared_key
                && key_from_row(&row, "i_")?.as_ref() != Some(key)
            {
                self.write(
                    Stmt::new(
                        "UPDATE cs_identities SET shared_key = $1, key_proven = $2
                         WHERE tenant = $3 AND kind = $4 AND external_id = $5",
                    )
                    .bind(key.key.as_str())
                    .bind(key.proven)
                    .bind(req.tenant.as_str())
                    .bind(req.identity.kind.as_str())
                    .bind(&req.identity.external_id),
                )
                .await?;
            }
            return Ok(Resolved::found(customer));
        }
        // A new one: decided and written in one transaction; the identity's primary key settles
        // races with concurrent first contacts (the loser rolls back and reads the winner's).
        let job = req.clone();
        let decided = self
            .transact(true, move |mut tx| {
                Box::pin(async move {
                    Self::resolve_new(&mut tx, &job)
                        .await?
                        .ok_or_else(|| Error::conflict(CLAIMED_MEANWHILE))
                })
            })
            .await;
        match decided {
            Err(Error::Conflict { reason }) if reason == CLAIMED_MEANWHILE => {}
            other => return other,
        }
        let row = self
            .write_one(find_identity(&req.tenant, &req.identity))
            .await?
            .ok_or_else(|| Error::conflict("identity vanished while resolving"))?;
        Ok(Resolved::found(customer_from_row(&row)?))
    }

    async fn find_customer(
        &self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>> {
        self.read_one(find_identity(tenant, identity))
            .await?
            .map(|r| customer_from_row(&r))
            .transpose()
    }

    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer> {
        self.read_one(
            Stmt::new("SELECT * FROM cs_customers WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string()),
        )
        .await?
        .map(|r| customer_from_row(&r))
        .transpose()?
        .ok_or_else(|| Error::not_found("customer", id))
    }

    async fn update_customer(&self, customer: &Customer) -> Result<()> {
        let done = self
            .write(
                Stmt::new(
                    "UPDATE cs_customers SET display_name = $1, tier = $2, language = $3
                     WHERE tenant = $4 AND id = $5",
                )
                .bind(&customer.display_name)
                .bind(customer.tier.as_str())
                .bind(&customer.language)
                .bind(customer.tenant.as_str())
                .bind(customer.id.to_string()),
            )
            .await?;
        if done == 0 {
            return Err(Error::not_found("customer", customer.id));
        }
        Ok(())
    }

    async fn link_identity(&self, req: &LinkIdentity) -> Result<()> {
        let key = req.shared_key.as_ref();
        // Inserted, or (the customer's own identity) confirmed: one row. Another customer's
        // identity: none.
        let done = self
            .write(
                Stmt::new(
                    "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at,
                        origin, shared_key, key_proven, verified)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)
                     ON CONFLICT (tenant, kind, external_id) DO UPDATE SET verified = 1,
                        shared_key = COALESCE(excluded.shared_key, cs_identities.shared_key),
                        key_proven = CASE WHEN excluded.shared_key IS NULL
                            THEN cs_identities.key_proven ELSE excluded.key_proven END
                     WHERE cs_identities.customer = excluded.customer",
                )
                .bind(req.tenant.as_str())
                .bind(req.identity.kind.as_str())
                .bind(&req.identity.external_id)
                .bind(req.customer.to_string())
                .bind(micros(req.at))
                .bind(req.origin.to_storage())
                .bind(key.map(|k| k.key.clone()))
                .bind(key.is_some_and(|k| k.proven)),
            )
            .await;
        match done {
            Ok(0) => {
                // Tell a missing customer from another owner.
                self.customer(&req.tenant, req.customer).await?;
                Err(Error::conflict(format!(
                    "identity {} belongs to another customer",
                    req.identity
                )))
            }
            Ok(_) => Ok(()),
            Err(e) if is_missing_parent(&e) => Err(Error::not_found("customer", req.customer)),
            Err(e) => Err(e),
        }
    }

    async fn identity_links(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<IdentityLink>> {
        let mut links = self
            .read_all(
                Stmt::dynamic(format!(
                    "SELECT {LINK} FROM cs_identities WHERE tenant = $1 AND customer = $2"
                ))
                .bind(tenant.as_str())
                .bind(customer.to_string()),
            )
            .await?
            .iter()
            .map(link_from_row)
            .collect::<Result<Vec<_>>>()?;
        links.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(links)
    }

    async fn link_suggestions(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<LinkSuggestion>> {
        let rows = self
            .read_all(
                Stmt::new(
                    "SELECT mine.kind, mine.external_id, mine.shared_key, mine.key_proven,
                        other.customer AS candidate, other.kind AS candidate_kind,
                        other.external_id AS candidate_external_id,
                        other.key_proven AS candidate_key_proven,
                        other.linked_at AS candidate_linked_at
                     FROM cs_identities mine JOIN cs_identities other
                       ON other.tenant = mine.tenant AND other.shared_key = mine.shared_key
                      AND other.customer <> mine.customer
                     WHERE mine.tenant = $1 AND mine.customer = $2",
                )
                .bind(tenant.as_str())
                .bind(customer.to_string()),
            )
            .await?;
        let found = rows
            .iter()
            .map(|r| {
                let key = key_from_row(r, "")?
                    .ok_or_else(|| crate::sql::corrupt(D::BACKEND, "shared key".into()))?;
                let candidate = Sibling {
                    customer: r.parse("candidate")?,
                    identity: identity_from_row(r, "candidate_")?,
                    proven: r.flag("candidate_key_proven")?,
                    linked_at: r.time("candidate_linked_at")?,
                };
                let suggestion = candidate.suggestion(&key, customer, &identity_from_row(r, "")?);
                Ok((candidate.linked_at, suggestion))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(one_per_candidate(found))
    }

    async fn merge_customers(&self, req: &MergeCustomers) -> Result<Merge> {
        if req.into == req.from {
            return Err(Error::invalid("a customer cannot be merged with itself"));
        }
        let (into, from) = (req.into.to_string(), req.from.to_string());
        let lock = format!(
            "SELECT 1 AS one FROM cs_customers WHERE tenant = $1 AND id = $2{}",
            D::FOR_UPDATE
        );
        let req = req.clone();
        self.transact(true, move |mut tx| {
            Box::pin(async move {
                let t = req.tenant.as_str();
                for c in [&into, &from] {
                    // Locking both customer rows serialises concurrent merges of the same customers (and
                    // resolutions joining them).
                    let exists = tx
                        .fetch_optional(Stmt::dynamic(lock.clone()).bind(t).bind(c.as_str()))
                        .await?;
                    if exists.is_none() {
                        return Err(Error::not_found("customer", c));
                    }
                    let merged = tx
                        .fetch_optional(
                            Stmt::new(
                                "SELECT 1 AS one FROM cs_merges
                     WHERE tenant = $1 AND from_customer = $2 AND undone_at IS NULL",
                            )
                            .bind(t)
                            .bind(c.as_str()),
                        )
                        .await?;
                    if merged.is_some() {
                        return Err(Error::conflict(format!("customer {c} was merged away")));
                    }
                }
                let id = MergeId::new();
                let mut identities = tx
                    .fetch_all(
                        Stmt::dynamic(format!(
                            "SELECT {LINK} FROM cs_identities WHERE tenant = $1 AND customer = $2"
                        ))
                        .bind(t)
                        .bind(from.as_str()),
                    )
                    .await?
                    .iter()
                    .map(link_from_row)
                    .collect::<Result<Vec<_>>>()?;
                identities.sort_by(|a, b| a.identity.cmp(&b.identity));
                tx.execute(
                    Stmt::new(
                        "UPDATE cs_identities SET customer = $1, origin = $2
                 WHERE tenant = $3 AND customer = $4",
                    )
                    .bind(into.as_str())
                    .bind(LinkOrigin::Merge { merge: id }.to_storage())
                    .bind(t)
                    .bind(from.as_str()),
                )
                .await?;
                let into_active = tx
                    .fetch_optional(
                        Stmt::new(
                            "SELECT id FROM cs_conversations WHERE tenant = $1 AND customer = $2
                   AND state IN ('bot', 'queued', 'assigned')",
                        )
                        .bind(t)
                        .bind(into.as_str()),
                    )
                    .await?;
                let resolved: Option<ConversationId> = match into_active {
                    Some(_) => tx
                        .fetch_optional(
                            Stmt::new(
                                "UPDATE cs_conversations SET state = 'resolved', updated_at = $1,
                        version = version + 1
                     WHERE tenant = $2 AND customer = $3
                       AND state IN ('bot', 'queued', 'assigned')
                     RETURNING id",
                            )
                            .bind(micros(req.at))
                            .bind(t)
                            .bind(from.as_str()),
                        )
                        .await?
                        .map(|r| r.parse("id"))
                        .transpose()?,
                    None => None,
                };
                let mut conversations: Vec<ConversationId> = tx.fetch_all(Stmt::new(
                "UPDATE cs_conversations SET customer = $1 WHERE tenant = $2 AND customer = $3
                 RETURNING id",
            )
            .bind(into.as_str())
            .bind(t)
            .bind(from.as_str()),
        )
        .await?
        .iter()
        .map(|r| r.parse("id"))
        .collect::<Result<_>>()?;
                conversations.sort();
                // The moved conversations' messages, found by the conversation index (messages
                // have no index by customer: it would cost every message a write).
                if !conversations.is_empty() {
                    let mut moved =
                        Stmt::new("UPDATE cs_messages SET customer = $1 WHERE tenant = $2")
                            .bind(into.as_str())
                            .bind(t);
                    moved
                        .push(" AND conversation ")
                        .push_in::<D>(conversations.iter().map(ConversationId::to_string));
                    tx.execute(moved).await?;
                }
                let merge = Merge {
                    id,
                    tenant: req.tenant.clone(),
                    into: req.into,
                    from: req.from,
                    identities,
                    conversations,
                    resolved,
                    by: req.by.clone(),
                    at: req.at,
                    undone_at: None,
                };
                tx.execute(Stmt::new(
                "INSERT INTO cs_merges (tenant, id, into_customer, from_customer, identities,
                    conversations, resolved, origin, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(t)
            .bind(id.to_string())
            .bind(into)
            .bind(from)
            .bind(to_json(&merge.identities)?)
            .bind(to_json(&merge.conversations)?)
            .bind(resolved.map(|c| c.to_string()))
            .bind(req.by.to_storage())
            .bind(micros(req.at)),
        )
        .await?;
                Ok(merge)
            })
        })
        .await
    }

    async fn unmerge(&self, req: &Unmerge) -> Result<Merge> {
        let req = req.clone();
        self.transact(true, move |mut tx| {
            Box::pin(async move {
                let t = req.tenant.as_str();
                let mut record = tx
                    .fetch_optional(
                        Stmt::dynamic(format!(
                            "SELECT * FROM cs_merges WHERE tenant = $1 AND id = $2{}",
                            D::FOR_UPDATE
                        ))
                        .bind(t)
                        .bind(req.merge.to_string()),
                    )
                    .await?
                    .map(|r| merge_from_row(&r))
                    .transpose()?
                    .ok_or_else(|| Error::not_found("merge", req.merge))?;
                if record.undone_at.is_some() {
                    return Err(Error::conflict(format!(
                        "merge {} was undone already",
                        req.merge
                    )));
                }
                let (into, from) = (record.into.to_string(), record.from.to_string());
                for l in &record.identities {
                    tx.execute(
                        Stmt::new(
                            "UPDATE cs_identities SET customer = $1, origin = $2, linked_at = $3
                     WHERE tenant = $4 AND kind = $5 AND external_id = $6 AND customer = $7",
                        )
                        .bind(from.as_str())
                        .bind(l.origin.to_storage())
                        .bind(micros(l.linked_at))
                        .bind(t)
                        .bind(l.identity.kind.as_str())
                        .bind(&l.identity.external_id)
                        .bind(into.as_str()),
                    )
                    .await?;
                }
                // The moved conversations go back as one set, not one statement each.
                let moved: Vec<String> =
                    record.conversations.iter().map(|c| c.to_string()).collect();
                for (table, column) in [("cs_conversations", "id"), ("cs_messages", "conversation")]
                {
                    let mut back = Stmt::dynamic(format!("UPDATE {table} SET customer = "));
                    back.push_bind(from.as_str())
                        .push(" WHERE tenant = ")
                        .push_bind(t)
                        .push(" AND customer = ")
                        .push_bind(into.as_str())
                        .push(&format!(" AND {column} "))
                        .push_in::<D>(moved.iter().cloned());
                    tx.execute(back).await?;
                }
                tx.execute(
                    Stmt::new("UPDATE cs_merges SET undone_at = $1 WHERE tenant = $2 AND id = $3")
                        .bind(micros(req.at))
                        .bind(t)
                        .bind(req.merge.to_string()),
                )
                .await?;
                record.undone_at = Some(req.at);
                Ok(record)
            })
        })
        .await
    }

    async fn merges(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Merge>> {
        self.read_all(
            Stmt::new(
                "SELECT * FROM cs_merges
                 WHERE tenant = $1 AND (into_customer = $2 OR from_customer = $2)
                 ORDER BY at, id",
            )
            .bind(tenant.as_str())
            .bind(customer.to_string()),
        )
        .await?
        .iter()
        .map(merge_from_row)
        .collect()
    }
}
