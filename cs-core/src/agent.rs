//! Agents: the people who take over from the bot.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::channel::Medium;
use crate::id::{AgentId, TenantId};

/// Whether an agent can take work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Signed in and taking work.
    Online,
    /// Signed in, not taking new work.
    Away,
    /// Signed out.
    #[default]
    Offline,
}

impl fmt::Display for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Offline => "offline",
        })
    }
}

/// A skill with a proficiency level (1 = basic ... 10 = expert).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Skill {
    /// Skill name, e.g. `refunds` or `logistics`.
    pub name: String,
    /// Proficiency, 1 to 10.
    pub level: u8,
}

impl Skill {
    /// A skill at `level`.
    pub fn new(name: impl Into<String>, level: u8) -> Self {
        Self {
            name: name.into(),
            level,
        }
    }
}

/// How much work an agent takes at once, per medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capacity {
    /// Concurrent chats.
    pub chat: u16,
    /// Concurrent emails.
    pub email: u16,
    /// Concurrent calls.
    pub voice: u16,
    /// Whether a call in progress blocks new chats and emails.
    pub voice_blocks_others: bool,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            chat: 4,
            email: 8,
            voice: 1,
            voice_blocks_others: true,
        }
    }
}

impl Capacity {
    /// The slots for `medium`.
    pub const fn slots(&self, medium: Medium) -> u16 {
        match medium {
            Medium::Chat => self.chat,
            Medium::Email => self.email,
            Medium::Voice => self.voice,
        }
    }
}

/// A human agent's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The id.
    pub id: AgentId,
    /// The tenant.
    pub tenant: TenantId,
    /// Display name.
    pub name: String,
    /// Skills with levels.
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// Languages spoken (BCP 47 primary tags such as `zh`, `en`).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Team or group, e.g. `after-sales`.
    pub team: Option<String>,
    /// Concurrent capacity.
    #[serde(default)]
    pub capacity: Capacity,
    /// Presence.
    #[serde(default)]
    pub presence: Presence,
}

impl Agent {
    /// The level of `skill`, if the agent has it.
    pub fn skill_level(&self, skill: &str) -> Option<u8> {
        self.skills
            .iter()
            .find(|s| s.name == skill)
            .map(|s| s.level)
    }
}
