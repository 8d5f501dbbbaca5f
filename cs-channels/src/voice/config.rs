//! The voice channel as read from a configuration file.

use std::path::PathBuf;

use cs_core::ChannelId;
use serde::Deserialize;

use super::{IvrTree, VoiceBuilder};
use crate::error::Result;

/// Settings of a [`super::Voice`] channel. `Debug` hides the auth token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// The instance id, mounted at `/webhooks/{id}`.
    pub id: ChannelId,
    /// The provider's auth token (signs the webhook).
    pub auth_token: String,
    /// The public URL the provider calls (what the signature covers).
    pub webhook_url: String,
    /// The IVR menu tree, a TOML file (see [`IvrTree::from_toml`]).
    pub menu: PathBuf,
    /// The text-to-speech voice name.
    #[serde(default)]
    pub voice: Option<String>,
    /// The provider account's SID, so the engine can connect a routed call to the agent it
    /// chose (REST call update); without it agents take calls from the provider's queue.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// The REST API base URL (default `https://api.twilio.com`).
    #[serde(default)]
    pub api_base_url: Option<String>,
}

impl std::fmt::Debug for VoiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceConfig")
            .field("id", &self.id)
            .field("auth_token", &crate::inbound::REDACTED)
            .field("webhook_url", &self.webhook_url)
            .field("menu", &self.menu)
            .field("voice", &self.voice)
            .field("account_sid", &self.account_sid)
            .field("api_base_url", &self.api_base_url)
            .finish()
    }
}

impl VoiceConfig {
    /// A builder with these settings, the menu read from its file.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] when the menu file cannot be read or is not a valid tree.
    pub fn builder(self) -> Result<VoiceBuilder> {
        let tree = IvrTree::from_file(&self.menu)?;
        let mut b = VoiceBuilder::new(self.id)
            .with_tree(tree)
            .with_auth_token(self.auth_token)
            .with_webhook_url(self.webhook_url);
        if let Some(v) = self.voice {
            b = b.with_voice(v);
        }
        if let Some(sid) = self.account_sid {
            b = b.with_account_sid(sid);
        }
        if let Some(url) = self.api_base_url {
            b = b.with_base_url(url);
        }
        Ok(b)
    }
}
