//! Row decoding shared by the SQL conversation stores: one mapping from columns to the model,
//! whatever the driver.

use chrono::{DateTime, Utc};

use crate::channel::{ChannelKind, Identity, IdentityLink, LinkOrigin, Route};
use crate::conversation::{Conversation, ConversationState, Priority};
use crate::customer::{Customer, CustomerTier};
use crate::error::{Error, Result};
use crate::id::{AgentId, ChannelId};
use crate::message::{Author, Content, DeliveryStatus, Direction, Message};

/// The few column types the stores read, for any driver's row.
pub(crate) trait SqlRow {
    /// The backend's name in errors.
    const BACKEND: &'static str;
    /// A text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// An integer column.
    fn int(&self, col: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;

    /// A text column parsed with `FromStr`.
    fn parse<T: std::str::FromStr>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        s.parse()
            .map_err(|_| corrupt(Self::BACKEND, format!("{col} = {s:?}")))
    }

    /// A timestamp column (microseconds since the Unix epoch).
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        let v = self.int(col)?;
        DateTime::from_timestamp_micros(v)
            .ok_or_else(|| corrupt(Self::BACKEND, format!("timestamp {v}")))
    }

    /// A JSON text column.
    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        serde_json::from_str(&self.text(col)?).map_err(|e| corrupt(Self::BACKEND, e.to_string()))
    }
}

#[cfg(feature = "sqlite")]
impl SqlRow for sqlx::sqlite::SqliteRow {
    const BACKEND: &'static str = "sqlite";
    fn text(&self, col: &str) -> Result<String> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::sqlite::map_error)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::sqlite::map_error)
    }
    fn int(&self, col: &str) -> Result<i64> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::sqlite::map_error)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::sqlite::map_error)
    }
}

#[cfg(feature = "postgres")]
impl SqlRow for sqlx::postgres::PgRow {
    const BACKEND: &'static str = "postgres";
    fn text(&self, col: &str) -> Result<String> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::postgres::map_error)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::postgres::map_error)
    }
    fn int(&self, col: &str) -> Result<i64> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::postgres::map_error)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        sqlx::Row::try_get(self, col).map_err(crate::sql::postgres::map_error)
    }
}

/// Microseconds since the Unix epoch, as stored.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn corrupt(backend: &'static str, what: String) -> Error {
    Error::Backend {
        backend,
        source: format!("corrupt row: {what}").into(),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid(e.to_string()))
}

/// Column `col` parsed by `parse`; a value it does not know is a corrupt row.
pub(crate) fn known<T, R: SqlRow>(row: &R, col: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s = row.text(col)?;
    parse(&s).ok_or_else(|| corrupt(R::BACKEND, format!("{col} = {s:?}")))
}

pub(crate) fn customer_from_row<R: SqlRow>(row: &R) -> Result<Customer> {
    Ok(Customer {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        display_name: row.opt_text("display_name")?,
        tier: known(row, "tier", CustomerTier::parse)?,
        language: row.opt_text("language")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn identity_from_row<R: SqlRow>(row: &R) -> Result<Identity> {
    Ok(Identity {
        kind: row.parse("kind")?,
        external_id: row.text("external_id")?,
    })
}

pub(crate) fn conversation_from_row<R: SqlRow>(row: &R) -> Result<Conversation> {
    let version = row.int("version")?;
    Ok(Conversation {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        customer: row.parse("customer")?,
        route: Route {
            channel: row.parse("route_channel")?,
            identity: Identity {
                kind: row.parse("route_kind")?,
                external_id: row.text("route_external_id")?,
            },
        },
        state: known(row, "state", ConversationState::parse)?,
        priority: known(row, "priority", Priority::parse)?,
        skills: row.json("skills")?,
        assignee: row
            .opt_text("assignee")?
            .map(|a| a.parse::<AgentId>())
            .transpose()
            .map_err(|e| corrupt(R::BACKEND, e.to_string()))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        version: u64::try_from(version).map_err(|e| corrupt(R::BACKEND, e.to_string()))?,
    })
}

pub(crate) fn message_from_row<R: SqlRow>(row: &R) -> Result<Message> {
    Ok(Message {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        conversation: row.parse("conversation")?,
        customer: row.parse("customer")?,
        channel: row.parse::<ChannelId>("channel")?,
        channel_kind: row.parse::<ChannelKind>("channel_kind")?,
        direction: known(row, "direction", Direction::parse)?,
        author: row.json::<Author>("author")?,
        content: row.json::<Content>("content")?,
        provider_message_id: row.opt_text("provider_message_id")?,
        status: known(row, "status", DeliveryStatus::parse)?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn link_from_row<R: SqlRow>(row: &R) -> Result<IdentityLink> {
    Ok(IdentityLink {
        identity: identity_from_row(row)?,
        origin: LinkOrigin::from_storage(&row.text("origin")?)
            .map_err(|e| corrupt(R::BACKEND, e.to_string()))?,
        linked_at: row.time("linked_at")?,
    })
}

pub(crate) fn merge_from_row<R: SqlRow>(row: &R) -> Result<super::Merge> {
    Ok(super::Merge {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        into: row.parse("into_customer")?,
        from: row.parse("from_customer")?,
        identities: row.json("identities")?,
        conversations: row.json("conversations")?,
        resolved: row
            .opt_text("resolved")?
            .map(|r| r.parse())
            .transpose()
            .map_err(|e: Error| corrupt(R::BACKEND, e.to_string()))?,
        by: LinkOrigin::from_storage(&row.text("origin")?)
            .map_err(|e| corrupt(R::BACKEND, e.to_string()))?,
        at: row.time("at")?,
        undone_at: row
            .opt_int("undone_at")?
            .map(|v| {
                DateTime::from_timestamp_micros(v)
                    .ok_or_else(|| corrupt(R::BACKEND, format!("timestamp {v}")))
            })
            .transpose()?,
    })
}
