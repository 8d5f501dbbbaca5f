#![doc = include_str!("../README.md")]

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod memory;
mod model;
mod store;

pub use error::{Error, Result};
pub use memory::MemoryTicketStore;
pub use model::{
    Actor, Attachment, AuditEntry, Comment, NewComment, NewTicket, Ticket, TicketKind, TicketPatch,
    TicketQuery, TicketStatus, UpdateTicket,
};
pub use store::TicketStore;
