#![doc = include_str!("../README.md")]

#[cfg(feature = "conformance")]
pub mod conformance;
mod desk;
mod error;
mod logic;
mod memory;
mod model;
pub mod sla;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
mod store;

pub use desk::{
    CustomerTicketView, Escalation, EscalationRule, EscalationTarget, HandOver, TicketDesk,
    TicketDeskBuilder, TicketEvent, TicketEventKind,
};
pub use error::{Error, Result};
pub use memory::MemoryTicketStore;
pub use model::{
    Actor, Attachment, AuditEntry, Comment, Csat, NewComment, NewTicket, SlaFilter, Ticket,
    TicketKind, TicketPatch, TicketQuery, TicketStatus, UpdateTicket,
};
pub use sla::{
    BusinessCalendar, BusinessCalendarBuilder, SlaMetric, SlaPolicy, SlaPolicyBuilder, SlaState,
    SlaTargets,
};
#[cfg(feature = "postgres")]
pub use sql::postgres::{PostgresTicketStore, PostgresTicketStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sql::sqlite::{SqliteTicketStore, SqliteTicketStoreBuilder};
pub use store::TicketStore;
