//! [`ConversationLog`] in SQL: conversations and messages.

use async_trait::async_trait;

use super::rows::{conversation_from_row, message_from_row, to_json};
use super::{SqlStore, by_provider_id, insert_message, insert_stmt, is_missing_parent};
use crate::conversation::Conversation;
use crate::error::{Error, Result};
use crate::id::{ConversationId, CustomerId, TenantId};
use crate::message::Message;
use crate::sql::{Driver, SqlRow, Stmt, micros};
use crate::store::log::new_conversation;
use crate::store::{
    Appended, ConversationLog, ConversationQuery, MessageOrder, MessageQuery, MessageScope,
    OpenConversation, Opened, UnansweredQuery, page,
};

/// The customer's active conversation.
fn active_conversation(tenant: &TenantId, customer: CustomerId) -> Stmt {
    Stmt::new(
        "SELECT * FROM cs_conversations WHERE tenant = $1 AND customer = $2
           AND state IN ('bot', 'queued', 'assigned')",
    )
    .bind(tenant.as_str())
    .bind(customer.to_string())
}

fn conversation_by_id(tenant: &TenantId, id: ConversationId) -> Stmt {
    Stmt::new("SELECT * FROM cs_conversations WHERE tenant = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id.to_string())
}

#[async_trait]
impl<D: Driver> ConversationLog for SqlStore<D> {
    async fn bot_state(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
    ) -> Result<Option<serde_json::Value>> {
        let row = self
            .read_one(
                Stmt::new(
                    "SELECT state FROM cs_bot_states WHERE tenant = $1 AND conversation = $2",
                )
                .bind(tenant.as_str())
                .bind(conversation.to_string()),
            )
            .await?;
        row.map(|r| {
            let text = r.text("state")?;
            serde_json::from_str(&text)
                .map_err(|e| Error::invalid(format!("stored bot state unreadable: {e}")))
        })
        .transpose()
    }

    async fn save_bot_state(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        state: Option<&serde_json::Value>,
    ) -> Result<()> {
        let stmt = match state {
            Some(s) => Stmt::new(
                "INSERT INTO cs_bot_states (tenant, conversation, state) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, conversation) DO UPDATE SET state = excluded.state",
            )
            .bind(tenant.as_str())
            .bind(conversation.to_string())
            .bind(s.to_string()),
            None => Stmt::new("DELETE FROM cs_bot_states WHERE tenant = $1 AND conversation = $2")
                .bind(tenant.as_str())
                .bind(conversation.to_string()),
        };
        self.write(stmt).await.map(|_| ())
    }

    async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened> {
        if let Some(row) = self
            .read_one(active_conversation(&req.tenant, req.customer))
            .await?
        {
            return Ok(Opened {
                conversation: conversation_from_row(&row)?,
                created: false,
                duplicate: None,
            });
        }
        if let Some((channel, pid)) = &req.unless_stored
            && let Some(row) = self
                .read_one(by_provider_id(&req.tenant, channel, pid))
                .await?
        {
            let message = message_from_row(&row)?;
            let conversation = self.conversation(&req.tenant, message.conversation).await?;
            return Ok(Opened {
                conversation,
                created: false,
                duplicate: Some(message),
            });
        }
        let c = new_conversation(req);
        let insert = Stmt::new(
            "INSERT INTO cs_conversations (tenant, id, customer, route_channel, route_kind,
                route_external_id, state, priority, skills, assignee, created_at,
                updated_at, queued_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0)
             ON CONFLICT DO NOTHING",
        )
        .bind(c.tenant.as_str())
        .bind(c.id.to_string())
        .bind(c.customer.to_string())
        .bind(c.route.channel.as_str())
        .bind(c.route.identity.kind.as_str())
        .bind(&c.route.identity.external_id)
        .bind(c.state.as_str())
        .bind(c.priority.as_str())
        .bind(to_json(&c.skills)?)
        .bind(c.assignee.map(|a| a.to_string()))
        .bind(micros(c.created_at))
        .bind(micros(c.updated_at))
        .bind(c.queued_at.map(micros));
        let active = active_conversation(&req.tenant, req.customer);
        let customer = req.customer;
        // The insert, and when someone else opened one between our read and our insert, theirs
        // (read in the same unit, so it cannot vanish between).
        self.transact(false, move |mut conn| {
            Box::pin(async move {
                match conn.execute(insert).await {
                    Ok(1) => Ok(Opened {
                        conversation: c,
                        created: true,
                        duplicate: None,
                    }),
                    Ok(_) => {
                        let row = conn.fetch_optional(active).await?.ok_or_else(|| {
                            Error::conflict("active conversation vanished while opening")
                        })?;
                        Ok(Opened {
                            conversation: conversation_from_row(&row)?,
                            created: false,
                            duplicate: None,
                        })
                    }
                    Err(e) if is_missing_parent(&e) => Err(Error::not_found("customer", customer)),
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation> {
        self.read_one(conversation_by_id(tenant, id))
            .await?
            .map(|r| conversation_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("conversation", id))
    }

    async fn update_conversation(&self, c: &Conversation) -> Result<Conversation> {
        let read_version = i64::try_from(c.version).map_err(|e| Error::invalid(e.to_string()))?;
        let update = Stmt::new(
            "UPDATE cs_conversations SET route_channel = $1, route_kind = $2,
                route_external_id = $3, state = $4, priority = $5, skills = $6,
                assignee = $7, updated_at = $8, queued_at = $9, version = version + 1
             WHERE tenant = $10 AND id = $11 AND version = $12",
        )
        .bind(c.route.channel.as_str())
        .bind(c.route.identity.kind.as_str())
        .bind(&c.route.identity.external_id)
        .bind(c.state.as_str())
        .bind(c.priority.as_str())
        .bind(to_json(&c.skills)?)
        .bind(c.assignee.map(|a| a.to_string()))
        .bind(micros(c.updated_at))
        .bind(c.queued_at.map(micros))
        .bind(c.tenant.as_str())
        .bind(c.id.to_string())
        .bind(read_version);
        let stored = conversation_by_id(&c.tenant, c.id);
        let mut saved = c.clone();
        // The update, and when it changed nothing, why (in the same unit).
        self.transact(false, move |mut conn| {
            Box::pin(async move {
                if conn.execute(update).await? == 0 {
                    let stored = conn
                        .fetch_optional(stored)
                        .await?
                        .map(|r| conversation_from_row(&r))
                        .transpose()?
                        .ok_or_else(|| Error::not_found("conversation", saved.id))?;
                    return Err(Error::conflict(format!(
                        "conversation {} was changed (version {} now, {} read)",
                        saved.id, stored.version, saved.version
                    )));
                }
                saved.version += 1;
                Ok(saved)
            })
        })
        .await
    }

    async fn conversations(&self, q: &ConversationQuery) -> Result<Vec<Conversation>> {
        let mut sql = Stmt::new("SELECT * FROM cs_conversations WHERE tenant = ");
        sql.push_bind(q.tenant.as_str());
        if !q.states.is_empty() {
            sql.push(" AND state ")
                .push_in::<D>(q.states.iter().map(|s| s.as_str()));
        }
        if let Some(a) = q.assignee {
            sql.push(" AND assignee = ").push_bind(a.to_string());
        }
        if let Some(c) = q.customer {
            sql.push(" AND customer = ").push_bind(c.to_string());
        }
        sql.push(" ORDER BY updated_at DESC, id DESC LIMIT ")
            .push_bind(page(q.limit) as i64);
        self.read_all(sql)
            .await?
            .iter()
            .map(conversation_from_row)
            .collect()
    }

    async fn append_message(&self, m: &Message) -> Result<Appended> {
        m.validate()?;
        let (m, insert) = (m.clone(), insert_stmt(m)?);
        self.transact(false, move |mut conn| {
            Box::pin(async move { insert_message::<D>(&mut conn, &m, insert).await })
        })
        .await
    }

    async fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>> {
        let conversations = match q.scope {
            MessageScope::Conversation(c) => vec![c],
            // A customer's history: each of their conversations' page by the conversation
            // index, merged (a customer has a handful of conversations; messages have no index
            // by customer).
            MessageScope::Customer(c) => self
                .read_all(
                    Stmt::new(
                        "SELECT id FROM cs_conversations WHERE tenant = $1 AND customer = $2",
                    )
                    .bind(q.tenant.as_str())
                    .bind(c.to_string()),
                )
                .await?
                .iter()
                .map(|r| r.parse("id"))
                .collect::<Result<_>>()?,
        };
        let mut out = Vec::new();
        for conversation in conversations {
            let mut sql = Stmt::new("SELECT * FROM cs_messages WHERE tenant = ");
            sql.push_bind(q.tenant.as_str())
                .push(" AND conversation = ")
                .push_bind(conversation.to_string());
            if let Some(after) = q.after {
                sql.push(" AND id > ").push_bind(after.to_string());
            }
            if let Some(before) = q.before {
                sql.push(" AND id < ").push_bind(before.to_string());
            }
            if !q.directions.is_empty() {
                sql.push(" AND direction ")
                    .push_in::<D>(q.directions.iter().map(|d| d.as_str()));
            }
            sql.push(match q.order {
                MessageOrder::OldestFirst => " ORDER BY id LIMIT ",
                MessageOrder::NewestFirst => " ORDER BY id DESC LIMIT ",
            })
            .push_bind(page(q.limit) as i64);
            for row in self.read_all(sql).await? {
                out.push(message_from_row(&row)?);
            }
        }
        match q.order {
            MessageOrder::OldestFirst => out.sort_by_key(|m| m.id),
            MessageOrder::NewestFirst => out.sort_by_key(|m| std::cmp::Reverse(m.id)),
        }
        out.truncate(page(q.limit));
        Ok(out)
    }

    async fn unanswered(&self, q: &UnansweredQuery) -> Result<Vec<Conversation>> {
        // Each bot conversation's newest message, by the (tenant, conversation, id) index.
        let mut sql = Stmt::new(
            "SELECT c.* FROM cs_conversations c
             WHERE c.tenant = $1 AND c.state = 'bot'
               AND (SELECT m.direction FROM cs_messages m
                    WHERE m.tenant = c.tenant AND m.conversation = c.id
                    ORDER BY m.id DESC LIMIT 1) = 'inbound'",
        )
        .bind(q.tenant.as_str());
        if let Some(after) = q.after {
            sql.push(" AND c.id > ").push_bind(after.to_string());
        }
        sql.push(" ORDER BY c.id LIMIT ")
            .push_bind(page(q.limit) as i64);
        self.read_all(sql)
            .await?
            .iter()
            .map(conversation_from_row)
            .collect()
    }
}
