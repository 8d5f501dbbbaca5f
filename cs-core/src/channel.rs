//! Channel kinds, media and customer identities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ChannelId;

/// The kind of a channel: which protocol a customer reaches us over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelKind {
    /// The embeddable web chat widget.
    WebChat,
    /// Email.
    Email,
    /// WeChat Official Account.
    WeChat,
    /// WhatsApp Cloud API.
    WhatsApp,
    /// Telegram Bot API.
    Telegram,
    /// SMS / MMS.
    Sms,
    /// Phone calls (IVR).
    Voice,
    /// A generic signed JSON webhook (marketplaces, mini-programs, the shop's own app).
    Webhook,
}

impl ChannelKind {
    /// Every kind, in declaration order.
    pub const ALL: [ChannelKind; 8] = [
        Self::WebChat,
        Self::Email,
        Self::WeChat,
        Self::WhatsApp,
        Self::Telegram,
        Self::Sms,
        Self::Voice,
        Self::Webhook,
    ];

    /// The stable lower-case name used in storage and URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WebChat => "web_chat",
            Self::Email => "email",
            Self::WeChat => "we_chat",
            Self::WhatsApp => "whats_app",
            Self::Telegram => "telegram",
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::Webhook => "webhook",
        }
    }

    /// The medium an agent's capacity is counted in for this kind.
    pub const fn medium(self) -> Medium {
        match self {
            Self::Email => Medium::Email,
            Self::Voice => Medium::Voice,
            _ => Medium::Chat,
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown channel kind {s:?}")))
    }
}

/// How work on a channel occupies an agent: several chats at once, a few emails, one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    /// Real-time text (web chat, messengers, SMS).
    Chat,
    /// Asynchronous mail.
    Email,
    /// A phone call.
    Voice,
}

/// One of a customer's addresses on a channel kind: a WeChat openid, a phone number, an email
/// address, a web visitor id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// The kind of channel the address belongs to.
    pub kind: ChannelKind,
    /// The address as the provider names it.
    pub external_id: String,
}

impl Identity {
    /// An identity on `kind` with the provider's `external_id`.
    pub fn new(kind: ChannelKind, external_id: impl Into<String>) -> Self {
        Self {
            kind,
            external_id: external_id.into(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.external_id)
    }
}

/// Why an identity belongs to a customer: every link records its origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LinkOrigin {
    /// The customer first wrote from it.
    FirstContact,
    /// A key both identities share proves it (a WeChat unionid, a verified phone number).
    SharedKey {
        /// Which key, e.g. `unionid:o6_bmasdasdsad6_2sgVt7hMZOPfL`.
        key: String,
    },
    /// An agent linked it.
    Agent {
        /// Who.
        agent: crate::id::AgentId,
    },
    /// The shop's own system linked it through the API.
    Api,
    /// It came with a merged customer.
    Merge {
        /// The merge.
        merge: crate::id::MergeId,
    },
    /// The customer proved it by sending back a one-time code texted to it (a phone number
    /// verified by the bot before it shows the orders placed with it).
    OneTimeCode,
}

impl LinkOrigin {
    /// A compact text form for storage: `first_contact`, `shared_key:<key>`, `agent:<id>`,
    /// `api`, `merge:<id>`, `one_time_code`.
    pub fn to_storage(&self) -> String {
        match self {
            Self::FirstContact => "first_contact".into(),
            Self::SharedKey { key } => format!("shared_key:{key}"),
            Self::Agent { agent } => format!("agent:{agent}"),
            Self::Api => "api".into(),
            Self::Merge { merge } => format!("merge:{merge}"),
            Self::OneTimeCode => "one_time_code".into(),
        }
    }

    /// Parses [`LinkOrigin::to_storage`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else.
    pub fn from_storage(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("unknown link origin {s:?}"));
        Ok(match s.split_once(':') {
            None if s == "first_contact" => Self::FirstContact,
            None if s == "api" => Self::Api,
            None if s == "one_time_code" => Self::OneTimeCode,
            Some(("shared_key", key)) => Self::SharedKey { key: key.into() },
            Some(("agent", id)) => Self::Agent {
                agent: id.parse().map_err(|_| bad())?,
            },
            Some(("merge", id)) => Self::Merge {
                merge: id.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        })
    }
}

/// A key several identities can share: the same phone number on SMS, WhatsApp and calls, the same
/// WeChat unionid across official accounts. It says whether the identity *proves* it or merely
/// claims it: WhatsApp proves the number (Meta verified it), an SMS sender or a caller ID claims it
/// (both can be spoofed). The store joins a new identity to an existing customer by a key only
/// when both identities prove it; otherwise it suggests the link for someone to confirm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SharedKey {
    /// The key, with a prefix saying what it is: `phone:+8613800138000`, `unionid:o6_bmasd...`.
    pub key: String,
    /// Whether the identity proves the key rather than merely claims it.
    pub proven: bool,
}

impl SharedKey {
    /// A key the identity proves.
    pub fn proven(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            proven: true,
        }
    }

    /// A key the identity only claims.
    pub fn claimed(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            proven: false,
        }
    }

    /// The phone key of a number as a provider writes it (`+86 138-0013-8000`, `8613800138000`):
    /// `phone:+` and its digits. `None` when it has fewer than six digits (a short code or not a
    /// number at all).
    ///
    /// ```
    /// use cs_core::SharedKey;
    ///
    /// let key = SharedKey::phone("8613800138000", true).unwrap();
    /// assert_eq!(key.key, "phone:+8613800138000");
    /// assert_eq!(SharedKey::phone("+86 138-0013-8000", false).unwrap().key, key.key);
    /// assert!(SharedKey::phone("10086", false).is_none());
    /// ```
    pub fn phone(number: &str, proven: bool) -> Option<Self> {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        (digits.len() >= 6).then(|| Self {
            key: format!("phone:+{digits}"),
            proven,
        })
    }
}

/// An identity with where its link came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityLink {
    /// The identity.
    pub identity: Identity,
    /// Why it belongs to the customer.
    pub origin: LinkOrigin,
    /// Since when.
    pub linked_at: chrono::DateTime<chrono::Utc>,
    /// The key the identity shares with others (a phone number), when one is known.
    #[serde(default)]
    pub shared_key: Option<SharedKey>,
    /// Whether the link is confirmed. Every link a store makes now is (a first contact, a key
    /// both identities prove, an agent, the API, a merge); links that earlier versions made from
    /// a key nobody proved (an SMS sender or caller ID joined to another channel's customer) are
    /// not, until the identity is linked again explicitly. Do not show other channels' history
    /// through an unconfirmed link.
    #[serde(default = "confirmed")]
    pub verified: bool,
}

fn confirmed() -> bool {
    true
}

/// Where replies to a customer go: a configured channel instance and the identity on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// The channel instance.
    pub channel: ChannelId,
    /// The customer's identity on that channel.
    pub identity: Identity,
}
