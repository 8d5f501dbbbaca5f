#![doc = include_str!("../README.md")]

mod channel;
#[cfg(feature = "http-client")]
pub mod client;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "email")]
pub mod email;
mod error;
// The inbound helpers of the HTTP adapters: built when one of them is.
#[cfg(any(
    feature = "sms",
    feature = "wechat",
    feature = "whatsapp",
    feature = "telegram",
    feature = "webhook"
))]
mod inbound;
pub mod limits;
#[cfg(feature = "router")]
pub mod router;
#[cfg(feature = "sms")]
pub mod sms;
#[cfg(feature = "telegram")]
pub mod telegram;
#[cfg(feature = "voice")]
pub mod voice;
#[cfg(feature = "webchat")]
pub mod webchat;
#[cfg(feature = "webhook")]
pub mod webhook;
#[cfg(feature = "wechat")]
pub mod wechat;
#[cfg(feature = "whatsapp")]
pub mod whatsapp;

pub use channel::InboundContext;
pub use channel::{
    Capabilities, Channel, ChannelInfo, Delivered, InboundHandler, InboundMessage, InboundResponse,
    OutboundMessage, Parsed, RawInbound, SendReceipt, StatusUpdate,
};
pub use channel::{MAX_RATING_COMMENT_CHARS, Rated, Rating};
pub use error::{Error, Result};
#[cfg(feature = "webchat")]
pub use webchat::{WebChat, WebChatBuilder};
