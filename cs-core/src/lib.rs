#![doc = include_str!("../README.md")]

mod agent;
pub mod bus;
mod channel;
mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod conversation;
mod customer;
mod error;
mod event;
mod id;
mod message;
pub mod sql;
pub mod store;

pub use agent::{Agent, Capacity, Presence, Skill};
pub use channel::{ChannelKind, Identity, IdentityLink, LinkOrigin, Medium, Route, SharedKey};
pub use clock::{Clock, ManualClock, SystemClock};
pub use conversation::{Conversation, ConversationState, Priority};
pub use customer::{Customer, CustomerTier};
pub use error::{BoxError, Error, Result};
pub use event::{ComplianceOutcome, DomainEvent, Event, Survey};
pub use id::{
    AgentId, ChannelId, ConversationId, CustomerId, EventId, MergeId, MessageId, TenantId, TicketId,
};
pub use message::{
    Author, CardButton, Content, ContentKind, DeliveryStatus, Direction, Message, RichCard,
};
pub use store::{ConversationLog, ConversationStore, CustomerStore, Outbox};
