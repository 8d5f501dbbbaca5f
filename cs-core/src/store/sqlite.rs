//! The SQLite conversation store: the embedded default.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};

use super::rows::{
    SqlRow, conversation_from_row, customer_from_row, link_from_row, merge_from_row,
    message_from_row, micros, to_json,
};
use super::{
    Appended, ClaimOutbound, Claimed, ConversationQuery, ConversationStore, DeadLetter, Merge,
    MergeCustomers, MessageQuery, MessageScope, OpenConversation, Opened, Outcome, ResolveCustomer,
    Resolved, new_conversation, new_customer, page, status_advances,
};
use crate::channel::{Identity, IdentityLink, LinkOrigin};
use crate::conversation::Conversation;
use crate::customer::Customer;
use crate::error::{Error, Result};
use crate::id::{ChannelId, ConversationId, CustomerId, MergeId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Message};
use crate::sql::sqlite::{Pools, connect, map_error, migrate};

use super::schema::MIGRATIONS;

const COMPONENT: &str = "conversations";

/// Configures a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
}

impl SqliteStoreBuilder {
    /// A store in the database file at `path` (created with its folder if missing), or `:memory:`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
        }
    }

    /// Opens the database and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the file cannot be opened; [`Error::InvalidInput`] when its
    /// schema is newer than this build.
    pub async fn build(self) -> Result<SqliteStore> {
        let pools = connect(&self.path).await?;
        migrate(&pools.writer, COMPONENT, MIGRATIONS).await?;
        Ok(SqliteStore { pools })
    }
}

/// A [`ConversationStore`] in one SQLite file (WAL mode; one writer, several readers).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pools: Pools,
}

impl SqliteStore {
    /// Opens the store at `path` with default settings; see [`SqliteStoreBuilder`].
    ///
    /// # Errors
    /// As [`SqliteStoreBuilder::build`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteStoreBuilder::new(path).build().await
    }

    /// The single-connection writer pool, for components that keep their tables in the same file.
    pub fn writer(&self) -> &SqlitePool {
        &self.pools.writer
    }

    /// The reader pool.
    pub fn reader(&self) -> &SqlitePool {
        &self.pools.reader
    }
}

/// Inserts a message on `conn` (a connection or a transaction of the writer); a lost race with
/// a concurrent delivery of the same provider message returns the stored one as a duplicate.
async fn insert_message(conn: &mut SqliteConnection, m: &Message) -> Result<Appended> {
    if let Some(pid) = &m.provider_message_id {
        let existing = sqlx::query(
            "SELECT * FROM cs_messages
             WHERE tenant = ? AND channel = ? AND provider_message_id = ?",
        )
        .bind(m.tenant.as_str())
        .bind(m.channel.as_str())
        .bind(pid)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_error)?;
        if let Some(row) = existing {
            return Ok(Appended::Duplicate(message_from_row(&row)?));
        }
    }
    let result = sqlx::query(
        "INSERT INTO cs_messages (tenant, id, conversation, customer, channel, channel_kind,
            direction, author, content, provider_message_id, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(m.tenant.as_str())
    .bind(m.id.to_string())
    .bind(m.conversation.to_string())
    .bind(m.customer.to_string())
    .bind(m.channel.as_str())
    .bind(m.channel_kind.as_str())
    .bind(m.direction.as_str())
    .bind(to_json(&m.author)?)
    .bind(to_json(&m.content)?)
    .bind(&m.provider_message_id)
    .bind(m.status.as_str())
    .bind(micros(m.created_at))
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => Ok(Appended::Inserted(m.clone())),
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            Err(Error::not_found("conversation", m.conversation))
        }
        Err(e) => match (map_error(e), &m.provider_message_id) {
            // Another process sharing the file stored the same provider message first.
            (Error::Conflict { .. }, Some(pid)) => sqlx::query(
                "SELECT * FROM cs_messages
                 WHERE tenant = ? AND channel = ? AND provider_message_id = ?",
            )
            .bind(m.tenant.as_str())
            .bind(m.channel.as_str())
            .bind(pid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_error)?
            .map(|r| message_from_row(&r).map(Appended::Duplicate))
            .unwrap_or_else(|| Err(Error::conflict("duplicate message id"))),
            (e, _) => Err(e),
        },
    }
}

impl SqliteStore {
    fn w(&self) -> &SqlitePool {
        &self.pools.writer
    }

    fn r(&self) -> &SqlitePool {
        &self.pools.reader
    }

    async fn find_identity(
        &self,
        pool: &SqlitePool,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>> {
        sqlx::query(
            "SELECT c.* FROM cs_identities i JOIN cs_customers c
               ON c.tenant = i.tenant AND c.id = i.customer
             WHERE i.tenant = ? AND i.kind = ? AND i.external_id = ?",
        )
        .bind(tenant.as_str())
        .bind(identity.kind.as_str())
        .bind(&identity.external_id)
        .fetch_optional(pool)
        .await
        .map_err(map_error)?
        .map(|r| customer_from_row(&r))
        .transpose()
    }

    async fn active_conversation(
        &self,
        pool: &SqlitePool,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Option<Conversation>> {
        sqlx::query(
            "SELECT * FROM cs_conversations WHERE tenant = ? AND customer = ?
               AND state IN ('bot', 'queued', 'assigned')",
        )
        .bind(tenant.as_str())
        .bind(customer.to_string())
        .fetch_optional(pool)
        .await
        .map_err(map_error)?
        .map(|r| conversation_from_row(&r))
        .transpose()
    }

    async fn message_by_provider_id(
        &self,
        pool: &SqlitePool,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_id: &str,
    ) -> Result<Option<Message>> {
        sqlx::query(
            "SELECT * FROM cs_messages
             WHERE tenant = ? AND channel = ? AND provider_message_id = ?",
        )
        .bind(tenant.as_str())
        .bind(channel.as_str())
        .bind(provider_id)
        .fetch_optional(pool)
        .await
        .map_err(map_error)?
        .map(|r| message_from_row(&r))
        .transpose()
    }
}

super::shared::shared_store_methods!(
    SqliteStore,
    lock: "",
    lock_message: "",
    in_ids: " IN (SELECT value FROM json_each($4))"
);

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn identities(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        self.sql_identities(tenant, customer).await
    }

    async fn identity_links(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<IdentityLink>> {
        self.sql_identity_links(tenant, customer).await
    }

    async fn merge_customers(&self, request: &MergeCustomers) -> Result<Merge> {
        self.sql_merge_customers(request).await
    }

    async fn unmerge(&self, tenant: &TenantId, merge: MergeId, at: DateTime<Utc>) -> Result<Merge> {
        self.sql_unmerge(tenant, merge, at).await
    }

    async fn merges(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Merge>> {
        self.sql_merges(tenant, customer).await
    }

    async fn finish_outbound(
        &self,
        tenant: &TenantId,
        message: MessageId,
        outcome: &Outcome,
    ) -> Result<()> {
        self.sql_finish_outbound(tenant, message, outcome).await
    }

    async fn dead_letters(&self, tenant: &TenantId, limit: usize) -> Result<Vec<DeadLetter>> {
        self.sql_dead_letters(tenant, limit).await
    }

    async fn apply_receipt(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_id: &str,
        status: DeliveryStatus,
    ) -> Result<Option<MessageId>> {
        self.sql_apply_receipt(tenant, channel, provider_id, status)
            .await
    }

    async fn resolve_customer(&self, req: &ResolveCustomer) -> Result<Resolved> {
        if let Some(customer) = self
            .find_identity(&self.pools.reader, &req.tenant, &req.identity)
            .await?
        {
            return Ok(Resolved {
                customer,
                created: false,
            });
        }
        // The writer pool has one connection, so this check-then-insert cannot interleave with
        // another writer of this process; the primary key on identities settles races with other
        // processes.
        let w = &self.pools.writer;
        let mut tx = w.begin().await.map_err(map_error)?;
        let existing = sqlx::query(
            "SELECT c.* FROM cs_identities i JOIN cs_customers c
               ON c.tenant = i.tenant AND c.id = i.customer
             WHERE i.tenant = ? AND i.kind = ? AND i.external_id = ?",
        )
        .bind(req.tenant.as_str())
        .bind(req.identity.kind.as_str())
        .bind(&req.identity.external_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        if let Some(row) = existing {
            return Ok(Resolved {
                customer: customer_from_row(&row)?,
                created: false,
            });
        }
        let customer = new_customer(req);
        sqlx::query(
            "INSERT INTO cs_customers (tenant, id, display_name, tier, language, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(customer.tenant.as_str())
        .bind(customer.id.to_string())
        .bind(&customer.display_name)
        .bind(customer.tier.as_str())
        .bind(&customer.language)
        .bind(micros(customer.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(customer.tenant.as_str())
        .bind(req.identity.kind.as_str())
        .bind(&req.identity.external_id)
        .bind(customer.id.to_string())
        .bind(micros(req.at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(Resolved {
            customer,
            created: true,
        })
    }

    async fn find_customer(
        &self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>> {
        self.find_identity(&self.pools.reader, tenant, identity)
            .await
    }

    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer> {
        self.sql_customer(tenant, id).await
    }

    async fn update_customer(&self, customer: &Customer) -> Result<()> {
        self.sql_update_customer(customer).await
    }

    async fn link_identity(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        identity: &Identity,
        origin: &LinkOrigin,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.customer(tenant, customer).await?;
        let inserted = sqlx::query(
            "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at, origin)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(identity.kind.as_str())
        .bind(&identity.external_id)
        .bind(customer.to_string())
        .bind(micros(at))
        .bind(origin.to_storage())
        .execute(&self.pools.writer)
        .await
        .map_err(map_error)?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        match self
            .find_identity(&self.pools.writer, tenant, identity)
            .await?
        {
            Some(owner) if owner.id == customer => Ok(()),
            _ => Err(Error::conflict(format!(
                "identity {identity} belongs to another customer"
            ))),
        }
    }

    async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened> {
        if let Some(c) = self
            .active_conversation(&self.pools.reader, &req.tenant, req.customer)
            .await?
        {
            return Ok(Opened {
                conversation: c,
                created: false,
            });
        }
        self.customer(&req.tenant, req.customer).await?;
        let c = new_conversation(req);
        let inserted = sqlx::query(
            "INSERT INTO cs_conversations (tenant, id, customer, route_channel, route_kind,
                route_external_id, state, priority, skills, assignee, created_at, updated_at,
                version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        .bind(0_i64)
        .execute(&self.pools.writer)
        .await
        .map_err(map_error)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Opened {
                conversation: c,
                created: true,
            });
        }
        // Someone else opened one between our read and our insert: theirs wins.
        let existing = self
            .active_conversation(&self.pools.writer, &req.tenant, req.customer)
            .await?
            .ok_or_else(|| Error::conflict("active conversation vanished while opening"))?;
        Ok(Opened {
            conversation: existing,
            created: false,
        })
    }

    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation> {
        self.sql_conversation(tenant, id).await
    }

    async fn update_conversation(&self, c: &Conversation) -> Result<Conversation> {
        let read_version = i64::try_from(c.version).map_err(|e| Error::invalid(e.to_string()))?;
        let updated = sqlx::query(
            "UPDATE cs_conversations SET route_channel = ?, route_kind = ?, route_external_id = ?,
                state = ?, priority = ?, skills = ?, assignee = ?, updated_at = ?,
                version = version + 1
             WHERE tenant = ? AND id = ? AND version = ?",
        )
        .bind(c.route.channel.as_str())
        .bind(c.route.identity.kind.as_str())
        .bind(&c.route.identity.external_id)
        .bind(c.state.as_str())
        .bind(c.priority.as_str())
        .bind(to_json(&c.skills)?)
        .bind(c.assignee.map(|a| a.to_string()))
        .bind(micros(c.updated_at))
        .bind(c.tenant.as_str())
        .bind(c.id.to_string())
        .bind(read_version)
        .execute(&self.pools.writer)
        .await
        .map_err(map_error)?
        .rows_affected();
        if updated == 0 {
            let stored = sqlx::query("SELECT * FROM cs_conversations WHERE tenant = ? AND id = ?")
                .bind(c.tenant.as_str())
                .bind(c.id.to_string())
                .fetch_optional(&self.pools.writer)
                .await
                .map_err(map_error)?
                .map(|r| conversation_from_row(&r))
                .transpose()?
                .ok_or_else(|| Error::not_found("conversation", c.id))?;
            return Err(Error::conflict(format!(
                "conversation {} was changed (version {} now, {} read)",
                c.id, stored.version, c.version
            )));
        }
        let mut saved = c.clone();
        saved.version += 1;
        Ok(saved)
    }

    async fn conversations(&self, q: &ConversationQuery) -> Result<Vec<Conversation>> {
        let mut sql = String::from("SELECT * FROM cs_conversations WHERE tenant = ?");
        if !q.states.is_empty() {
            sql.push_str(" AND state IN (");
            sql.push_str(&vec!["?"; q.states.len()].join(", "));
            sql.push(')');
        }
        if q.assignee.is_some() {
            sql.push_str(" AND assignee = ?");
        }
        if q.customer.is_some() {
            sql.push_str(" AND customer = ?");
        }
        sql.push_str(" ORDER BY updated_at DESC, id DESC LIMIT ?");
        let mut query = sqlx::query(&sql).bind(q.tenant.as_str());
        for s in &q.states {
            query = query.bind(s.as_str());
        }
        if let Some(a) = q.assignee {
            query = query.bind(a.to_string());
        }
        if let Some(c) = q.customer {
            query = query.bind(c.to_string());
        }
        query
            .bind(page(q.limit) as i64)
            .fetch_all(&self.pools.reader)
            .await
            .map_err(map_error)?
            .iter()
            .map(conversation_from_row)
            .collect()
    }

    async fn append_message(&self, m: &Message) -> Result<Appended> {
        m.validate()?;
        if let Some(pid) = &m.provider_message_id
            && let Some(existing) = self
                .message_by_provider_id(&self.pools.reader, &m.tenant, &m.channel, pid)
                .await?
        {
            return Ok(Appended::Duplicate(existing));
        }
        let mut conn = self.pools.writer.acquire().await.map_err(map_error)?;
        insert_message(&mut conn, m).await
    }

    async fn append_outbound(&self, m: &Message, to: &Identity) -> Result<Appended> {
        self.sql_append_outbound(m, to).await
    }

    async fn claim_outbound(&self, req: &ClaimOutbound) -> Result<Vec<Claimed>> {
        let conversation = req.conversation.map(|c| c.to_string());
        let claimed = sqlx::query(
            "UPDATE cs_outbox SET next_attempt_at = ?
             WHERE tenant = ? AND message IN (
                SELECT o.message FROM cs_outbox o
                WHERE o.tenant = ? AND o.dead = 0 AND o.next_attempt_at <= ?
                  AND (? IS NULL OR o.conversation = ?)
                  AND NOT EXISTS (
                    SELECT 1 FROM cs_outbox p
                    WHERE p.tenant = o.tenant AND p.conversation = o.conversation
                      AND p.dead = 0 AND p.message < o.message)
                ORDER BY o.message LIMIT ?)
             RETURNING message, attempts, to_kind, to_external_id",
        )
        .bind(micros(req.lease_until))
        .bind(req.tenant.as_str())
        .bind(req.tenant.as_str())
        .bind(micros(req.now))
        .bind(&conversation)
        .bind(&conversation)
        .bind(page(req.limit) as i64)
        .fetch_all(&self.pools.writer)
        .await
        .map_err(map_error)?;
        let mut out = Vec::with_capacity(claimed.len());
        for row in claimed {
            let id = row.text("message")?;
            let attempts = row.int("attempts")?;
            let message = sqlx::query("SELECT * FROM cs_messages WHERE tenant = ? AND id = ?")
                .bind(req.tenant.as_str())
                .bind(&id)
                .fetch_one(&self.pools.writer)
                .await
                .map_err(map_error)?;
            out.push(Claimed {
                message: message_from_row(&message)?,
                to: Identity {
                    kind: row.parse("to_kind")?,
                    external_id: row.text("to_external_id")?,
                },
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            });
        }
        out.sort_by_key(|c| c.message.id);
        Ok(out)
    }

    async fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>> {
        self.sql_messages(q).await
    }

    async fn set_delivery_status(
        &self,
        tenant: &TenantId,
        message: MessageId,
        status: DeliveryStatus,
    ) -> Result<()> {
        self.sql_set_delivery_status(tenant, message, status).await
    }
}
