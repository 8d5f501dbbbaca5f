//! The SMS channel as read from a configuration file.

use cs_core::ChannelId;
use serde::Deserialize;

use super::SmsBuilder;

/// Settings of an [`super::Sms`] channel. `Debug` hides the auth token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The instance id, mounted at `/webhooks/{id}`.
    pub id: ChannelId,
    /// The account SID.
    pub account_sid: String,
    /// The auth token.
    pub auth_token: String,
    /// The public URL the provider calls (what the signature covers).
    pub webhook_url: String,
    /// The sending number (E.164), unless a messaging service is given.
    #[serde(default)]
    pub from: Option<String>,
    /// The messaging service SID.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Where delivery statuses are reported.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// A TwiML auto-reply to every inbound message.
    #[serde(default)]
    pub auto_reply: Option<String>,
    /// The REST API base URL (default `https://api.twilio.com`).
    #[serde(default)]
    pub base_url: Option<String>,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.clone().builder(), f)
    }
}

impl SmsConfig {
    /// A builder with these settings (add a retry policy, then build).
    pub fn builder(self) -> SmsBuilder {
        let mut b = SmsBuilder::new(self.id)
            .with_account_sid(self.account_sid)
            .with_auth_token(self.auth_token)
            .with_webhook_url(self.webhook_url);
        for (value, set) in [
            (
                self.from,
                SmsBuilder::with_from as fn(SmsBuilder, String) -> SmsBuilder,
            ),
            (
                self.messaging_service_sid,
                SmsBuilder::with_messaging_service_sid,
            ),
            (self.status_callback, SmsBuilder::with_status_callback),
            (self.auto_reply, SmsBuilder::with_auto_reply),
            (self.base_url, SmsBuilder::with_base_url),
        ] {
            if let Some(v) = value {
                b = set(b, v);
            }
        }
        b
    }
}
