//! The WhatsApp channel as read from a configuration file.

use cs_core::ChannelId;
use serde::Deserialize;

use super::WhatsAppBuilder;

/// Settings of a [`super::WhatsApp`] channel. `Debug` hides the secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// The instance id, mounted at `/webhooks/{id}`.
    pub id: ChannelId,
    /// The Meta app secret (signs notifications).
    pub app_secret: String,
    /// The webhook verify token.
    pub verify_token: String,
    /// The access token of the send API.
    pub access_token: String,
    /// The business phone number id.
    pub phone_number_id: String,
    /// The Graph API base URL (default `https://graph.facebook.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The Graph API version (default `v21.0`).
    #[serde(default)]
    pub api_version: Option<String>,
}

impl std::fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.clone().builder(), f)
    }
}

impl WhatsAppConfig {
    /// A builder with these settings (add a clock or retry policy, then build).
    pub fn builder(self) -> WhatsAppBuilder {
        let mut b = WhatsAppBuilder::new(self.id)
            .with_app_secret(self.app_secret)
            .with_verify_token(self.verify_token)
            .with_access_token(self.access_token)
            .with_phone_number_id(self.phone_number_id);
        if let Some(u) = self.base_url {
            b = b.with_base_url(u);
        }
        if let Some(v) = self.api_version {
            b = b.with_api_version(v);
        }
        b
    }
}
