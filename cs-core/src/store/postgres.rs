//! The PostgreSQL conversation store: several processes share one database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};

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
use crate::sql::postgres::{PgConfig, connect, map_error, migrate};

use super::schema::MIGRATIONS;

const COMPONENT: &str = "conversations";

/// Configures a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    config: PgConfig,
    pool: Option<PgPool>,
}

impl PostgresStoreBuilder {
    /// A store in the database at `url` (`postgres://user:password@host:port/database`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            config: PgConfig::new(url),
            pool: None,
        }
    }

    /// A store with the given connection settings.
    pub fn with_config(mut self, config: PgConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses an existing pool (shared with other components) instead of opening one.
    pub fn with_pool(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server is out of reach; [`Error::InvalidInput`] for a bad
    /// URL or a schema newer than this build.
    pub async fn build(self) -> Result<PostgresStore> {
        let pool = match self.pool {
            Some(p) => p,
            None => connect(&self.config).await?,
        };
        migrate(&pool, COMPONENT, MIGRATIONS).await?;
        Ok(PostgresStore { pool })
    }
}

/// A [`ConversationStore`] in PostgreSQL, safe for many processes sharing one database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    fn w(&self) -> &PgPool {
        &self.pool
    }

    fn r(&self) -> &PgPool {
        &self.pool
    }

    /// Connects to `url` with default settings; see [`PostgresStoreBuilder`].
    ///
    /// # Errors
    /// As [`PostgresStoreBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self> {
        PostgresStoreBuilder::new(url).build().await
    }

    /// The connection pool, for components that keep their tables in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn one<T>(
    q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ex: &PgPool,
    decode: fn(&PgRow) -> Result<T>,
) -> Result<Option<T>> {
    q.fetch_optional(ex)
        .await
        .map_err(map_error)?
        .map(|r| decode(&r))
        .transpose()
}

fn find_identity_query<'q>(
    tenant: &'q TenantId,
    identity: &'q Identity,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(
        "SELECT c.* FROM cs_identities i JOIN cs_customers c
           ON c.tenant = i.tenant AND c.id = i.customer
         WHERE i.tenant = $1 AND i.kind = $2 AND i.external_id = $3",
    )
    .bind(tenant.as_str())
    .bind(identity.kind.as_str())
    .bind(identity.external_id.as_str())
}

async fn active_conversation(
    ex: &PgPool,
    tenant: &TenantId,
    customer: CustomerId,
) -> Result<Option<Conversation>> {
    one(
        sqlx::query(
            "SELECT * FROM cs_conversations WHERE tenant = $1 AND customer = $2
               AND state IN ('bot', 'queued', 'assigned')",
        )
        .bind(tenant.as_str())
        .bind(customer.to_string()),
        ex,
        conversation_from_row,
    )
    .await
}

/// Inserts a message on `conn` (a pooled connection or a transaction); a provider message id
/// that is already stored (a retry, or a concurrent delivery) returns the stored message.
async fn insert_message(conn: &mut PgConnection, m: &Message) -> Result<Appended> {
    let inserted = sqlx::query(
        "INSERT INTO cs_messages (tenant, id, conversation, customer, channel, channel_kind,
            direction, author, content, provider_message_id, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
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
    match inserted {
        Ok(done) if done.rows_affected() == 1 => Ok(Appended::Inserted(m.clone())),
        // Nothing inserted: the provider id (or, impossibly, the UUIDv7 id) was taken.
        Ok(_) => match &m.provider_message_id {
            Some(pid) => sqlx::query(
                "SELECT * FROM cs_messages
                 WHERE tenant = $1 AND channel = $2 AND provider_message_id = $3",
            )
            .bind(m.tenant.as_str())
            .bind(m.channel.as_str())
            .bind(pid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_error)?
            .map(|r| message_from_row(&r).map(Appended::Duplicate))
            .unwrap_or_else(|| Err(Error::conflict("duplicate message id"))),
            None => Err(Error::conflict(format!("message {} exists", m.id))),
        },
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            Err(Error::not_found("conversation", m.conversation))
        }
        Err(e) => Err(map_error(e)),
    }
}

super::shared::shared_store_methods!(
    PostgresStore,
    lock: " FOR UPDATE",
    lock_message: " FOR UPDATE OF m",
    in_ids: " IN (SELECT jsonb_array_elements_text($4::jsonb))"
);

#[async_trait]
impl ConversationStore for PostgresStore {
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
        if let Some(customer) = one(
            find_identity_query(&req.tenant, &req.identity),
            &self.pool,
            customer_from_row,
        )
        .await?
        {
            return Ok(Resolved {
                customer,
                created: false,
            });
        }
        // Insert the customer and claim the identity in one transaction; a concurrent claim of
        // the same identity makes our identity insert a no-op, and we roll back our customer.
        let customer = new_customer(req);
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query(
            "INSERT INTO cs_customers (tenant, id, display_name, tier, language, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        let claimed = sqlx::query(
            "INSERT INTO cs_identities (tenant, kind, external_id, customer, linked_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(customer.tenant.as_str())
        .bind(req.identity.kind.as_str())
        .bind(&req.identity.external_id)
        .bind(customer.id.to_string())
        .bind(micros(req.at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected();
        if claimed == 1 {
            tx.commit().await.map_err(map_error)?;
            return Ok(Resolved {
                customer,
                created: true,
            });
        }
        tx.rollback().await.map_err(map_error)?;
        let customer = one(
            find_identity_query(&req.tenant, &req.identity),
            &self.pool,
            customer_from_row,
        )
        .await?
        .ok_or_else(|| Error::conflict("identity vanished while resolving"))?;
        Ok(Resolved {
            customer,
            created: false,
        })
    }

    async fn find_customer(
        &self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>> {
        one(
            find_identity_query(tenant, identity),
            &self.pool,
            customer_from_row,
        )
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
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(identity.kind.as_str())
        .bind(&identity.external_id)
        .bind(customer.to_string())
        .bind(micros(at))
        .bind(origin.to_storage())
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        match one(
            find_identity_query(tenant, identity),
            &self.pool,
            customer_from_row,
        )
        .await?
        {
            Some(owner) if owner.id == customer => Ok(()),
            _ => Err(Error::conflict(format!(
                "identity {identity} belongs to another customer"
            ))),
        }
    }

    async fn open_conversation(&self, req: &OpenConversation) -> Result<Opened> {
        if let Some(c) = active_conversation(&self.pool, &req.tenant, req.customer).await? {
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)
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
        .execute(&self.pool)
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
        let existing = active_conversation(&self.pool, &req.tenant, req.customer)
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
            "UPDATE cs_conversations SET route_channel = $1, route_kind = $2,
                route_external_id = $3, state = $4, priority = $5, skills = $6, assignee = $7,
                updated_at = $8, version = version + 1
             WHERE tenant = $9 AND id = $10 AND version = $11",
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
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        if updated == 0 {
            let stored = self.conversation(&c.tenant, c.id).await?;
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
        let states: Vec<&str> = q.states.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "SELECT * FROM cs_conversations WHERE tenant = $1
               AND (cardinality($2::TEXT[]) = 0 OR state = ANY($2))
               AND ($3::TEXT IS NULL OR assignee = $3)
               AND ($4::TEXT IS NULL OR customer = $4)
             ORDER BY updated_at DESC, id DESC LIMIT $5",
        )
        .bind(q.tenant.as_str())
        .bind(states)
        .bind(q.assignee.map(|a| a.to_string()))
        .bind(q.customer.map(|c| c.to_string()))
        .bind(page(q.limit) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?
        .iter()
        .map(conversation_from_row)
        .collect()
    }

    async fn append_message(&self, m: &Message) -> Result<Appended> {
        m.validate()?;
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        insert_message(&mut conn, m).await
    }

    async fn append_outbound(&self, m: &Message, to: &Identity) -> Result<Appended> {
        self.sql_append_outbound(m, to).await
    }

    async fn claim_outbound(&self, req: &ClaimOutbound) -> Result<Vec<Claimed>> {
        let conversation = req.conversation.map(|c| c.to_string());
        // SKIP LOCKED: processes claiming at the same time never get the same message.
        let claimed = sqlx::query(
            "UPDATE cs_outbox SET next_attempt_at = $1
             WHERE tenant = $2 AND message IN (
                SELECT o.message FROM cs_outbox o
                WHERE o.tenant = $2 AND o.dead = 0 AND o.next_attempt_at <= $3
                  AND ($4::TEXT IS NULL OR o.conversation = $4)
                  AND NOT EXISTS (
                    SELECT 1 FROM cs_outbox p
                    WHERE p.tenant = o.tenant AND p.conversation = o.conversation
                      AND p.dead = 0 AND p.message < o.message)
                ORDER BY o.message LIMIT $5
                FOR UPDATE SKIP LOCKED)
             RETURNING message, attempts, to_kind, to_external_id",
        )
        .bind(micros(req.lease_until))
        .bind(req.tenant.as_str())
        .bind(micros(req.now))
        .bind(&conversation)
        .bind(page(req.limit) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let mut out = Vec::with_capacity(claimed.len());
        for row in claimed {
            let id = row.text("message")?;
            let attempts = row.int("attempts")?;
            let message = sqlx::query("SELECT * FROM cs_messages WHERE tenant = $1 AND id = $2")
                .bind(req.tenant.as_str())
                .bind(&id)
                .fetch_one(&self.pool)
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
