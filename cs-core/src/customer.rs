//! Customers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{CustomerId, TenantId};

/// A customer's membership tier; routing gives higher tiers priority and senior agents.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CustomerTier {
    /// Everyone.
    #[default]
    Standard,
    /// Paying members.
    Premium,
    /// Very important customers.
    Vip,
}

impl CustomerTier {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Premium => "premium",
            Self::Vip => "vip",
        }
    }

    /// Parses [`CustomerTier::as_str`]; unknown names are `None`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Standard, Self::Premium, Self::Vip]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// One person, however many channel identities they write from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// The id.
    pub id: CustomerId,
    /// The tenant the customer belongs to.
    pub tenant: TenantId,
    /// A name to show agents, if one is known.
    pub display_name: Option<String>,
    /// Membership tier.
    pub tier: CustomerTier,
    /// Preferred language (BCP 47 tag such as `zh-CN` or `en`), if known.
    pub language: Option<String>,
    /// When the customer first appeared.
    pub created_at: DateTime<Utc>,
}
