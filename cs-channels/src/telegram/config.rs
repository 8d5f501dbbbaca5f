//! The Telegram channel as read from a configuration file.

use cs_core::ChannelId;
use serde::Deserialize;

use super::TelegramBuilder;

/// Settings of a [`super::Telegram`] channel. `Debug` hides the secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The instance id, mounted at `/webhooks/{id}`.
    pub id: ChannelId,
    /// The bot token.
    pub bot_token: String,
    /// The webhook secret token.
    pub secret_token: String,
    /// The Bot API base URL (default `https://api.telegram.org`).
    #[serde(default)]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.clone().builder(), f)
    }
}

impl TelegramConfig {
    /// A builder with these settings (add a retry policy, then build).
    pub fn builder(self) -> TelegramBuilder {
        let mut b = TelegramBuilder::new(self.id)
            .with_bot_token(self.bot_token)
            .with_secret_token(self.secret_token);
        if let Some(u) = self.base_url {
            b = b.with_base_url(u);
        }
        b
    }
}
