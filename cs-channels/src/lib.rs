#![doc = include_str!("../README.md")]

mod channel;
mod error;
#[cfg(feature = "webchat")]
pub mod webchat;

pub use channel::{
    Capabilities, Channel, ChannelInfo, Delivered, InboundHandler, InboundMessage, InboundResponse,
    OutboundMessage, Parsed, RawInbound, SendReceipt, StatusUpdate,
};
pub use error::{Error, Result};
#[cfg(feature = "webchat")]
pub use webchat::{WebChat, WebChatBuilder};
