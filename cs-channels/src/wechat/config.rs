//! The WeChat channel as read from a configuration file.

use cs_core::ChannelId;
use serde::Deserialize;

use super::WeChatBuilder;

/// Settings of a [`super::WeChat`] channel, e.g. from TOML:
///
/// ```toml
/// id = "wechat"
/// token = "..."
/// app_id = "wx..."
/// app_secret = "..."
/// encoding_aes_key = "..."   # optional: safe mode
/// ```
///
/// `Debug` hides the secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeChatConfig {
    /// The instance id, mounted at `/webhooks/{id}`.
    pub id: ChannelId,
    /// The Token of the server configuration.
    pub token: String,
    /// The AppID.
    pub app_id: String,
    /// The AppSecret.
    pub app_secret: String,
    /// The EncodingAESKey; turns on safe mode.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    /// A passive reply to `subscribe` events.
    #[serde(default)]
    pub welcome: Option<String>,
    /// The API base URL (default `https://api.weixin.qq.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The replay window in seconds (default 300).
    #[serde(default)]
    pub replay_window_secs: Option<u32>,
}

impl std::fmt::Debug for WeChatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.clone().builder(), f)
    }
}

impl WeChatConfig {
    /// A builder with these settings (add a clock or retry policy, then build).
    pub fn builder(self) -> WeChatBuilder {
        let mut b = WeChatBuilder::new(self.id)
            .with_token(self.token)
            .with_app_id(self.app_id)
            .with_app_secret(self.app_secret);
        if let Some(k) = self.encoding_aes_key {
            b = b.with_encoding_aes_key(k);
        }
        if let Some(w) = self.welcome {
            b = b.with_welcome(w);
        }
        if let Some(u) = self.base_url {
            b = b.with_base_url(u);
        }
        if let Some(s) = self.replay_window_secs {
            b = b.with_replay_window(chrono::Duration::seconds(s.into()));
        }
        b
    }
}
