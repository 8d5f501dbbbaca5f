//! Conversation-store methods whose SQL is the same on SQLite and PostgreSQL (written with `$n`
//! placeholders, which SQLite also reads), written once and stamped into each store as inherent
//! methods the `ConversationStore` impls call (`async_trait` cannot see methods a macro adds to
//! the trait impl itself). Each store provides `w()` (the pool that writes) and `r()` (the pool
//! that reads); the macro's arguments supply the row locks PostgreSQL needs and SQLite's single
//! writer makes unnecessary, and how each database reads a JSON array of ids as a set.

/// Expands to the inherent `sql_*` methods behind the shared `ConversationStore` methods.
///
/// `in_ids` completes `column` into "column is one of the ids in the JSON array bound as `$4`".
macro_rules! shared_store_methods {
    ($store:ty, lock: $lock:literal, lock_message: $lock_message:literal, in_ids: $in_ids:literal) => {
        impl $store {
    pub(super) async fn sql_identities(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        Ok(self
            .sql_identity_links(tenant, customer)
            .await?
            .into_iter()
            .map(|l| l.identity)
            .collect())
    }

    pub(super) async fn sql_customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer> {
        sqlx::query("SELECT * FROM cs_customers WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(map_error)?
            .map(|r| customer_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("customer", id))
    }

    pub(super) async fn sql_update_customer(&self, customer: &Customer) -> Result<()> {
        let done = sqlx::query(
            "UPDATE cs_customers SET display_name = $1, tier = $2, language = $3
             WHERE tenant = $4 AND id = $5",
        )
        .bind(&customer.display_name)
        .bind(customer.tier.as_str())
        .bind(&customer.language)
        .bind(customer.tenant.as_str())
        .bind(customer.id.to_string())
        .execute(self.w())
        .await
        .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("customer", customer.id));
        }
        Ok(())
    }

    pub(super) async fn sql_conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation> {
        sqlx::query("SELECT * FROM cs_conversations WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(map_error)?
            .map(|r| conversation_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("conversation", id))
    }

    pub(super) async fn sql_append_outbound(&self, m: &Message, to: &Identity) -> Result<Appended> {
        m.validate()?;
        let mut tx = self.w().begin().await.map_err(map_error)?;
        let appended = insert_message(&mut tx, m).await?;
        if let Appended::Inserted(m) = &appended {
            sqlx::query(
                "INSERT INTO cs_outbox (tenant, message, conversation, to_kind, to_external_id,
                    next_attempt_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(m.tenant.as_str())
            .bind(m.id.to_string())
            .bind(m.conversation.to_string())
            .bind(to.kind.as_str())
            .bind(&to.external_id)
            .bind(micros(m.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(appended)
    }

    pub(super) async fn sql_messages(&self, q: &MessageQuery) -> Result<Vec<Message>> {
        let (col, key) = match q.scope {
            MessageScope::Conversation(c) => ("conversation", c.to_string()),
            MessageScope::Customer(c) => ("customer", c.to_string()),
        };
        let after = q.after.map(|a| a.to_string()).unwrap_or_default();
        sqlx::query(&format!(
            "SELECT * FROM cs_messages WHERE tenant = $1 AND {col} = $2 AND id > $3
             ORDER BY id LIMIT $4"
        ))
        .bind(q.tenant.as_str())
        .bind(key)
        .bind(after)
        .bind(page(q.limit) as i64)
        .fetch_all(self.r())
        .await
        .map_err(map_error)?
        .iter()
        .map(message_from_row)
        .collect()
    }

    pub(super) async fn sql_set_delivery_status(
        &self,
        tenant: &TenantId,
        message: MessageId,
        status: DeliveryStatus,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE cs_messages SET status = $1 WHERE tenant = $2 AND id = $3")
            .bind(status.as_str())
            .bind(tenant.as_str())
            .bind(message.to_string())
            .execute(self.w())
            .await
            .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("message", message));
        }
        Ok(())
    }

    pub(super) async fn sql_identity_links(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<IdentityLink>> {
        let mut links = sqlx::query(
            "SELECT kind, external_id, origin, linked_at FROM cs_identities
             WHERE tenant = $1 AND customer = $2",
        )
        .bind(tenant.as_str())
        .bind(customer.to_string())
        .fetch_all(self.r())
        .await
        .map_err(map_error)?
        .iter()
        .map(link_from_row)
        .collect::<Result<Vec<_>>>()?;
        links.sort_by(|a, b| a.identity.cmp(&b.identity));
        Ok(links)
    }

    pub(super) async fn sql_merge_customers(&self, req: &MergeCustomers) -> Result<Merge> {
        if req.into == req.from {
            return Err(Error::invalid("a customer cannot be merged with itself"));
        }
        let t = req.tenant.as_str();
        let (into, from) = (req.into.to_string(), req.from.to_string());
        let mut tx = self.w().begin().await.map_err(map_error)?;
        for c in [&into, &from] {
            // Locking both customer rows serialises concurrent merges of the same customers.
            let exists =
                sqlx::query(concat!("SELECT 1 FROM cs_customers WHERE tenant = $1 AND id = $2", $lock))
                    .bind(t)
                    .bind(c)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_error)?;
            if exists.is_none() {
                return Err(Error::not_found("customer", c));
            }
            let merged = sqlx::query(
                "SELECT 1 FROM cs_merges
                 WHERE tenant = $1 AND from_customer = $2 AND undone_at IS NULL",
            )
            .bind(t)
            .bind(c)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?;
            if merged.is_some() {
                return Err(Error::conflict(format!("customer {c} was merged away")));
            }
        }
        let id = MergeId::new();
        let mut identities = sqlx::query(
            "SELECT kind, external_id, origin, linked_at FROM cs_identities
             WHERE tenant = $1 AND customer = $2",
        )
        .bind(t)
        .bind(&from)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_error)?
        .iter()
        .map(link_from_row)
        .collect::<Result<Vec<_>>>()?;
        identities.sort_by(|a, b| a.identity.cmp(&b.identity));
        sqlx::query(
            "UPDATE cs_identities SET customer = $1, origin = $2
             WHERE tenant = $3 AND customer = $4",
        )
        .bind(&into)
        .bind(LinkOrigin::Merge { merge: id }.to_storage())
        .bind(t)
        .bind(&from)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        let into_active = sqlx::query(
            "SELECT id FROM cs_conversations WHERE tenant = $1 AND customer = $2
               AND state IN ('bot', 'queued', 'assigned')",
        )
        .bind(t)
        .bind(&into)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let resolved: Option<ConversationId> = if into_active.is_some() {
            sqlx::query(
                "UPDATE cs_conversations SET state = 'resolved', updated_at = $1,
                    version = version + 1
                 WHERE tenant = $2 AND customer = $3 AND state IN ('bot', 'queued', 'assigned')
                 RETURNING id",
            )
            .bind(micros(req.at))
            .bind(t)
            .bind(&from)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?
            .map(|r| r.parse("id"))
            .transpose()?
        } else {
            None
        };
        let mut conversations: Vec<ConversationId> = sqlx::query(
            "UPDATE cs_conversations SET customer = $1 WHERE tenant = $2 AND customer = $3
             RETURNING id",
        )
        .bind(&into)
        .bind(t)
        .bind(&from)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_error)?
        .iter()
        .map(|r| r.parse("id"))
        .collect::<Result<_>>()?;
        conversations.sort();
        sqlx::query("UPDATE cs_messages SET customer = $1 WHERE tenant = $2 AND customer = $3")
            .bind(&into)
            .bind(t)
            .bind(&from)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
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
        sqlx::query(
            "INSERT INTO cs_merges (tenant, id, into_customer, from_customer, identities,
                conversations, resolved, origin, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t)
        .bind(id.to_string())
        .bind(&into)
        .bind(&from)
        .bind(to_json(&merge.identities)?)
        .bind(to_json(&merge.conversations)?)
        .bind(resolved.map(|c| c.to_string()))
        .bind(req.by.to_storage())
        .bind(micros(req.at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(merge)
    }

    pub(super) async fn sql_unmerge(&self, tenant: &TenantId, merge: MergeId, at: DateTime<Utc>) -> Result<Merge> {
        let t = tenant.as_str();
        let mut tx = self.w().begin().await.map_err(map_error)?;
        let mut record =
            sqlx::query(concat!("SELECT * FROM cs_merges WHERE tenant = $1 AND id = $2", $lock))
                .bind(t)
                .bind(merge.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?
                .map(|r| merge_from_row(&r))
                .transpose()?
                .ok_or_else(|| Error::not_found("merge", merge))?;
        if record.undone_at.is_some() {
            return Err(Error::conflict(format!("merge {merge} was undone already")));
        }
        let (into, from) = (record.into.to_string(), record.from.to_string());
        for l in &record.identities {
            sqlx::query(
                "UPDATE cs_identities SET customer = $1, origin = $2, linked_at = $3
                 WHERE tenant = $4 AND kind = $5 AND external_id = $6 AND customer = $7",
            )
            .bind(&from)
            .bind(l.origin.to_storage())
            .bind(micros(l.linked_at))
            .bind(t)
            .bind(l.identity.kind.as_str())
            .bind(&l.identity.external_id)
            .bind(&into)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        // The moved conversations go back as one set, not one statement each.
        let moved: Vec<String> = record.conversations.iter().map(|c| c.to_string()).collect();
        let moved = to_json(&moved)?;
        sqlx::query(concat!(
            "UPDATE cs_conversations SET customer = $1 WHERE tenant = $2 AND customer = $3 AND id",
            $in_ids
        ))
        .bind(&from)
        .bind(t)
        .bind(&into)
        .bind(&moved)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query(concat!(
            "UPDATE cs_messages SET customer = $1
             WHERE tenant = $2 AND customer = $3 AND conversation",
            $in_ids
        ))
        .bind(&from)
        .bind(t)
        .bind(&into)
        .bind(&moved)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query("UPDATE cs_merges SET undone_at = $1 WHERE tenant = $2 AND id = $3")
            .bind(micros(at))
            .bind(t)
            .bind(merge.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        record.undone_at = Some(at);
        Ok(record)
    }

    pub(super) async fn sql_merges(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Merge>> {
        sqlx::query(
            "SELECT * FROM cs_merges
             WHERE tenant = $1 AND (into_customer = $2 OR from_customer = $2) ORDER BY at, id",
        )
        .bind(tenant.as_str())
        .bind(customer.to_string())
        .fetch_all(self.r())
        .await
        .map_err(map_error)?
        .iter()
        .map(merge_from_row)
        .collect()
    }

    pub(super) async fn sql_finish_outbound(
        &self,
        tenant: &TenantId,
        message: MessageId,
        outcome: &Outcome,
    ) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(map_error)?;
        let id = message.to_string();
        let done = match outcome {
            Outcome::Sent {
                status,
                provider_id,
            } => {
                let done = sqlx::query(
                    "DELETE FROM cs_outbox WHERE tenant = $1 AND message = $2 AND dead = 0",
                )
                .bind(tenant.as_str())
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?
                .rows_affected();
                if done == 1 {
                    sqlx::query("UPDATE cs_messages SET status = $1 WHERE tenant = $2 AND id = $3")
                        .bind(status.as_str())
                        .bind(tenant.as_str())
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_error)?;
                    if let Some(pid) = provider_id {
                        sqlx::query(
                            "INSERT INTO cs_receipts (tenant, channel, provider_id, message)
                             SELECT tenant, channel, $1, id FROM cs_messages
                             WHERE tenant = $2 AND id = $3
                             ON CONFLICT (tenant, channel, provider_id)
                             DO UPDATE SET message = EXCLUDED.message",
                        )
                        .bind(pid)
                        .bind(tenant.as_str())
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_error)?;
                    }
                }
                done
            }
            Outcome::Retry { at, error } => sqlx::query(
                "UPDATE cs_outbox SET attempts = attempts + 1, next_attempt_at = $1,
                    last_error = $2
                 WHERE tenant = $3 AND message = $4 AND dead = 0",
            )
            .bind(micros(*at))
            .bind(error)
            .bind(tenant.as_str())
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected(),
            Outcome::Dead { error } => {
                let done = sqlx::query(
                    "UPDATE cs_outbox SET attempts = attempts + 1, dead = 1, last_error = $1
                     WHERE tenant = $2 AND message = $3 AND dead = 0",
                )
                .bind(error)
                .bind(tenant.as_str())
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?
                .rows_affected();
                sqlx::query(
                    "UPDATE cs_messages SET status = 'failed' WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
                done
            }
        };
        if done == 0 {
            return Err(Error::not_found("outbox message", message));
        }
        tx.commit().await.map_err(map_error)?;
        Ok(())
    }

    pub(super) async fn sql_dead_letters(&self, tenant: &TenantId, limit: usize) -> Result<Vec<DeadLetter>> {
        sqlx::query(
            "SELECT m.*, o.attempts AS outbox_attempts, o.last_error AS outbox_error
             FROM cs_outbox o JOIN cs_messages m ON m.tenant = o.tenant AND m.id = o.message
             WHERE o.tenant = $1 AND o.dead = 1 ORDER BY o.message LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(page(limit) as i64)
        .fetch_all(self.r())
        .await
        .map_err(map_error)?
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

    pub(super) async fn sql_apply_receipt(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_id: &str,
        status: DeliveryStatus,
    ) -> Result<Option<MessageId>> {
        let mut tx = self.w().begin().await.map_err(map_error)?;
        let row = sqlx::query(
            concat!(
                "SELECT m.id, m.status FROM cs_receipts r
                 JOIN cs_messages m ON m.tenant = r.tenant AND m.id = r.message
                 WHERE r.tenant = $1 AND r.channel = $2 AND r.provider_id = $3",
                $lock_message
            ),
        )
        .bind(tenant.as_str())
        .bind(channel.as_str())
        .bind(provider_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: MessageId = row.parse("id")?;
        let old = super::rows::known(&row, "status", DeliveryStatus::parse)?;
        if status_advances(old, status) {
            sqlx::query("UPDATE cs_messages SET status = $1 WHERE tenant = $2 AND id = $3")
                .bind(status.as_str())
                .bind(tenant.as_str())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(Some(id))
    }

        }
    };
}

pub(crate) use shared_store_methods;
