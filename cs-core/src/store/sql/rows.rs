//! Row decoding: one mapping from columns to the model, whatever the driver.

use crate::channel::{ChannelKind, Identity, IdentityLink, LinkOrigin, Route, SharedKey};
use crate::conversation::{Conversation, ConversationState, Priority};
use crate::customer::{Customer, CustomerTier};
use crate::error::{Error, Result};
use crate::id::ChannelId;
use crate::message::{Author, Content, DeliveryStatus, Direction, Message};
use crate::sql::{SqlRow, corrupt};
use crate::store::Merge;

/// Column `name` after `prefix` (no allocation without a prefix).
fn col(prefix: &str, name: &'static str) -> std::borrow::Cow<'static, str> {
    if prefix.is_empty() {
        name.into()
    } else {
        format!("{prefix}{name}").into()
    }
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::invalid(e.to_string()))
}

pub(super) fn customer_from_row<R: SqlRow>(row: &R) -> Result<Customer> {
    Ok(Customer {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        display_name: row.opt_text("display_name")?,
        tier: row.known("tier", CustomerTier::parse)?,
        language: row.opt_text("language")?,
        created_at: row.time("created_at")?,
    })
}

/// An identity from the columns `{prefix}kind` and `{prefix}external_id`.
pub(super) fn identity_from_row<R: SqlRow>(row: &R, prefix: &str) -> Result<Identity> {
    Ok(Identity {
        kind: row.parse(&col(prefix, "kind"))?,
        external_id: row.text(&col(prefix, "external_id"))?,
    })
}

/// The shared key from the columns `{prefix}shared_key` and `{prefix}key_proven`.
pub(super) fn key_from_row<R: SqlRow>(row: &R, prefix: &str) -> Result<Option<SharedKey>> {
    let Some(key) = row.opt_text(&col(prefix, "shared_key"))? else {
        return Ok(None);
    };
    Ok(Some(SharedKey {
        key,
        proven: row.flag(&col(prefix, "key_proven"))?,
    }))
}

pub(super) fn conversation_from_row<R: SqlRow>(row: &R) -> Result<Conversation> {
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
        state: row.known("state", ConversationState::parse)?,
        priority: row.known("priority", Priority::parse)?,
        skills: row.json("skills")?,
        assignee: row.opt_parse("assignee")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        queued_at: row.opt_time("queued_at")?,
        version: u64::try_from(version).map_err(|e| corrupt(R::BACKEND, e.to_string()))?,
    })
}

pub(super) fn message_from_row<R: SqlRow>(row: &R) -> Result<Message> {
    Ok(Message {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        conversation: row.parse("conversation")?,
        customer: row.parse("customer")?,
        channel: row.parse::<ChannelId>("channel")?,
        channel_kind: row.parse::<ChannelKind>("channel_kind")?,
        direction: row.known("direction", Direction::parse)?,
        author: row.json::<Author>("author")?,
        content: row.json::<Content>("content")?,
        provider_message_id: row.opt_text("provider_message_id")?,
        status: row.known("status", DeliveryStatus::parse)?,
        created_at: row.time("created_at")?,
    })
}

pub(super) fn origin_from_row<R: SqlRow>(row: &R) -> Result<LinkOrigin> {
    LinkOrigin::from_storage(&row.text("origin")?).map_err(|e| corrupt(R::BACKEND, e.to_string()))
}

pub(super) fn link_from_row<R: SqlRow>(row: &R) -> Result<IdentityLink> {
    Ok(IdentityLink {
        identity: identity_from_row(row, "")?,
        origin: origin_from_row(row)?,
        linked_at: row.time("linked_at")?,
        shared_key: key_from_row(row, "")?,
        verified: row.flag("verified")?,
    })
}

pub(super) fn merge_from_row<R: SqlRow>(row: &R) -> Result<Merge> {
    Ok(Merge {
        id: row.parse("id")?,
        tenant: row.parse("tenant")?,
        into: row.parse("into_customer")?,
        from: row.parse("from_customer")?,
        identities: row.json("identities")?,
        conversations: row.json("conversations")?,
        resolved: row.opt_parse("resolved")?,
        by: origin_from_row(row)?,
        at: row.time("at")?,
        undone_at: row.opt_time("undone_at")?,
    })
}
