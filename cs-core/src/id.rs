//! Identifiers.
//!
//! Entity ids are UUIDv7: they sort by creation time, so "oldest first" and paging by id agree with
//! the order in which things happened. Tenants and channel instances are named by short slugs chosen
//! by whoever configures them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "_{}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                Uuid::parse_str(s).map(Self).map_err(|e| Error::InvalidInput {
                    reason: format!(concat!("invalid ", $prefix, " id {:?}: {}"), s, e),
                })
            }
        }
    };
}

uuid_id!(
    /// Identifies a customer (one person across all their channel identities).
    CustomerId,
    "customer"
);
uuid_id!(
    /// Identifies a conversation.
    ConversationId,
    "conversation"
);
uuid_id!(
    /// Identifies a stored message.
    MessageId,
    "message"
);
uuid_id!(
    /// Identifies a human agent.
    AgentId,
    "agent"
);
uuid_id!(
    /// Identifies a ticket (customers quote its short number instead).
    TicketId,
    "ticket"
);
uuid_id!(
    /// Identifies a merge of two customers (so it can be undone).
    MergeId,
    "merge"
);
uuid_id!(
    /// Identifies a domain event.
    EventId,
    "event"
);

macro_rules! slug_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a slug: 1 to 64 characters of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.`.
            ///
            /// # Errors
            /// [`Error::InvalidInput`] when the slug is empty, too long or has other characters.
            pub fn new(slug: impl Into<String>) -> Result<Self> {
                let slug = slug.into();
                let ok = !slug.is_empty()
                    && slug.len() <= 64
                    && slug
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if ok {
                    Ok(Self(slug))
                } else {
                    Err(Error::InvalidInput {
                        reason: format!(concat!("invalid ", $what, " {:?}: use 1-64 of [A-Za-z0-9._-]"), slug),
                    })
                }
            }

            /// The slug.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", $what, self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }
    };
}

slug_id!(
    /// Identifies a tenant (a shop, a brand): every record belongs to exactly one.
    TenantId,
    "tenant"
);
slug_id!(
    /// Identifies one configured channel instance, e.g. `webchat` or `wechat-main`.
    ChannelId,
    "channel"
);

impl Default for TenantId {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_are_time_ordered() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
        assert_eq!(a, a.to_string().parse().unwrap());
    }

    #[test]
    fn slugs_are_validated() {
        assert!(ChannelId::new("wechat-main").is_ok());
        assert!(ChannelId::new("").is_err());
        assert!(ChannelId::new("a b").is_err());
        assert!(TenantId::new("x".repeat(65)).is_err());
        let t: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(t.as_str(), "acme");
        assert!(serde_json::from_str::<TenantId>("\"no way\"").is_err());
    }
}
