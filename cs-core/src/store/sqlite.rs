//! The SQLite conversation store: the embedded default.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::{
    conversation_from_row, customer_from_row, identity_from_row, message_from_row, micros, to_json,
};
use super::{
    Appended, ConversationQuery, ConversationStore, MessageQuery, MessageScope, OpenConversation,
    Opened, ResolveCustomer, Resolved, new_conversation, new_customer, page,
};
use crate::channel::Identity;
use crate::conversation::Conversation;
use crate::customer::Customer;
use crate::error::{Error, Result};
use crate::id::{ChannelId, ConversationId, CustomerId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Message};
use crate::sql::Migration;
use crate::sql::sqlite::{Pools, connect, map_error, migrate};

/// The schema, in order. Timestamps are microseconds since the Unix epoch; ids are UUID text
/// (UUIDv7 text sorts in creation order).
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "customers, identities, conversations, messages",
    sql: r#"
CREATE TABLE cs_customers (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT,
    tier TEXT NOT NULL,
    language TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE cs_identities (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, external_id),
    FOREIGN KEY (tenant, customer) REFERENCES cs_customers (tenant, id)
);
CREATE INDEX cs_identities_customer ON cs_identities (tenant, customer);
CREATE TABLE cs_conversations (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    customer TEXT NOT NULL,
    route_channel TEXT NOT NULL,
    route_kind TEXT NOT NULL,
    route_external_id TEXT NOT NULL,
    state TEXT NOT NULL,
    priority TEXT NOT NULL,
    skills TEXT NOT NULL,
    assignee TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, customer) REFERENCES cs_customers (tenant, id)
);
CREATE UNIQUE INDEX cs_conversations_one_active ON cs_conversations (tenant, customer)
    WHERE state IN ('bot', 'queued', 'assigned');
CREATE INDEX cs_conversations_updated ON cs_conversations (tenant, updated_at);
CREATE TABLE cs_messages (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    customer TEXT NOT NULL,
    channel TEXT NOT NULL,
    channel_kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    author TEXT NOT NULL,
    content TEXT NOT NULL,
    provider_message_id TEXT,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, conversation) REFERENCES cs_conversations (tenant, id)
);
CREATE UNIQUE INDEX cs_messages_provider_id ON cs_messages (tenant, channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX cs_messages_conversation ON cs_messages (tenant, conversation, id);
CREATE INDEX cs_messages_customer ON cs_messages (tenant, customer, id);
"#,
}];

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

impl SqliteStore {
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

#[async_trait]
impl ConversationStore for SqliteStore {
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
        sqlx::query("SELECT * FROM cs_customers WHERE tenant = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.pools.reader)
            .await
            .map_err(map_error)?
            .map(|r| customer_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("customer", id))
    }

    async fn update_customer(&self, customer: &Customer) -> Result<()> {
        let done = sqlx::query(
            "UPDATE cs_customers SET display_name = ?, tier = ?, language = ?
             WHERE tenant = ? AND id = ?",
        )
        .bind(&customer.display_name)
        .bind(customer.tier.as_str())
        .bind(&customer.language)
        .bind(customer.tenant.as_str())
        .bind(customer.id.to_string())
        .execute(&self.pools.writer)
        .await
        .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("customer", customer.id));
        }
        Ok(())
    }

    async fn link_identity(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        identity: &Identity,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.customer(tenant, customer).await?;
        let inserted = sqlx::query(
            "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(identity.kind.as_str())
        .bind(&identity.external_id)
        .bind(customer.to_string())
        .bind(micros(at))
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

    async fn identities(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        sqlx::query(
            "SELECT kind, external_id FROM cs_identities WHERE tenant = ? AND customer = ?
             ORDER BY kind, external_id",
        )
        .bind(tenant.as_str())
        .bind(customer.to_string())
        .fetch_all(&self.pools.reader)
        .await
        .map_err(map_error)?
        .iter()
        .map(identity_from_row)
        .collect::<Result<Vec<_>>>()
        .map(|mut v| {
            v.sort();
            v
        })
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
        sqlx::query("SELECT * FROM cs_conversations WHERE tenant = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.pools.reader)
            .await
            .map_err(map_error)?
            .map(|r| conversation_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("conversation", id))
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
        .execute(&self.pools.writer)
        .await;
        match result {
            Ok(_) => Ok(Appended::Inserted(m.clone())),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                Err(Error::not_found("conversation", m.conversation))
            }
            Err(e) => match (map_error(e), &m.provider_message_id) {
                // Lost a race with a concurrent delivery of the same provider message.
                (Error::Conflict { .. }, Some(pid)) => self
                    .message_by_provider_id(&self.pools.writer, &m.tenant, &m.channel, pid)
                    .await?
                    .map(Appended::Duplicate)
                    .ok_or_else(|| Error::conflict("duplicate message id")),
                (e, _) => Err(e),
            },
        }
    }

    async fn messages(&self, q: &MessageQuery) -> Result<Vec<Message>> {
        let (col, key) = match q.scope {
            MessageScope::Conversation(c) => ("conversation", c.to_string()),
            MessageScope::Customer(c) => ("customer", c.to_string()),
        };
        let after = q.after.map(|a| a.to_string()).unwrap_or_default();
        sqlx::query(&format!(
            "SELECT * FROM cs_messages WHERE tenant = ? AND {col} = ? AND id > ?
             ORDER BY id LIMIT ?"
        ))
        .bind(q.tenant.as_str())
        .bind(key)
        .bind(after)
        .bind(page(q.limit) as i64)
        .fetch_all(&self.pools.reader)
        .await
        .map_err(map_error)?
        .iter()
        .map(message_from_row)
        .collect()
    }

    async fn set_delivery_status(
        &self,
        tenant: &TenantId,
        message: MessageId,
        status: DeliveryStatus,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE cs_messages SET status = ? WHERE tenant = ? AND id = ?")
            .bind(status.as_str())
            .bind(tenant.as_str())
            .bind(message.to_string())
            .execute(&self.pools.writer)
            .await
            .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("message", message));
        }
        Ok(())
    }
}
