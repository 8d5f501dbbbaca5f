//! The generic webhook channel as read from a configuration file.

use cs_core::ChannelId;
use serde::Deserialize;

use super::WebhookBuilder;

/// Settings of a [`super::Webhook`] channel. `Debug` hides the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The instance id, mounted at `/webhooks/{id}`.
    pub id: ChannelId,
    /// The shared secret (at least 16 bytes).
    pub secret: String,
    /// Where replies are posted.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The replay window in seconds (default 300).
    #[serde(default)]
    pub replay_window_secs: Option<u32>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.clone().builder(), f)
    }
}

impl WebhookConfig {
    /// A builder with these settings (add a clock or retry policy, then build).
    pub fn builder(self) -> WebhookBuilder {
        let mut b = WebhookBuilder::new(self.id).with_secret(self.secret.into_bytes());
        if let Some(u) = self.callback_url {
            b = b.with_callback_url(u);
        }
        if let Some(s) = self.replay_window_secs {
            b = b.with_replay_window(chrono::Duration::seconds(s.into()));
        }
        b
    }
}
