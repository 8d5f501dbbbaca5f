#![doc = include_str!("../README.md")]

mod bot;
mod error;
mod faq;
pub mod text;

pub use bot::{Bot, BotInput, BotReply, Handoff, HandoffReason, Intent};
pub use error::{Error, Result};
pub use faq::{FaqBot, FaqEntry, asks_for_human, parse_faq};
