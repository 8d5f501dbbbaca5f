#![doc = include_str!("../README.md")]

pub mod analytics;
pub mod bridge;
pub mod compliance;
pub mod config;
pub mod engine;
mod error;
#[cfg(feature = "server")]
pub mod server;

pub use config::Config;
pub use engine::{CustomerView, Engine, EngineBuilder, OutboxPolicy};
pub use error::{Error, Result};

/// Bots (re-export of `cs-bot`).
pub use cs_bot as bot;
/// Channels (re-export of `cs-channels`).
pub use cs_channels as channels;
/// The core model (re-export of `cs-core`).
pub use cs_core as core;
/// Routing (re-export of `cs-routing`).
pub use cs_routing as routing;
/// Tickets (re-export of `cs-tickets`).
pub use cs_tickets as tickets;
