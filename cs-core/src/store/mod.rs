//! Conversation persistence, split by concern as object_store splits `ObjectStore` from
//! `ObjectStoreExt`:
//!
//! - [`CustomerStore`]: customers, their channel identities, shared-key resolution, link
//!   suggestions and merges;
//! - [`ConversationLog`]: conversations and their messages;
//! - [`Outbox`]: outbound messages waiting for delivery, claims, dead letters and receipts;
//! - [`ConversationStore`]: all three, the umbrella the engine holds as
//!   `Arc<dyn ConversationStore>` (every type with the three has it).
//!
//! The traits keep few required methods that take option structs; conveniences built on them
//! live in [`CustomerStoreExt`] and [`ConversationLogExt`], implemented for every store.
//!
//! [`MemoryStore`] is always available; `SqliteStore` (feature `sqlite`, the embedded default) and
//! `PostgresStore` (feature `postgres`, several processes share one database) are one
//! implementation, [`SqlStore`], written once over the database's [`crate::sql::Dialect`]. Every
//! implementation runs the same conformance suite ([`crate::conformance`], feature
//! `conformance`).

mod customers;
mod log;
mod memory;
mod outbox;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

pub use customers::{
    CustomerStore, CustomerStoreExt, LinkIdentity, LinkSuggestion, Merge, MergeCustomers,
    ResolveCustomer, Resolved, Unmerge,
};
pub use log::{
    Appended, ConversationLog, ConversationLogExt, ConversationQuery, MessageOrder, MessageQuery,
    MessageScope, OpenConversation, Opened, UPDATE_RETRIES, UnansweredQuery,
};
pub use memory::MemoryStore;
pub use outbox::{
    ClaimOutbound, Claimed, DeadLetter, DeadLetterQuery, FinishOutbound, Outbox, Outcome, Receipt,
    ReleaseClaims, StatusChange,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::SqlStore;
#[cfg(feature = "postgres")]
pub use sql::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sql::{SqliteStore, SqliteStoreBuilder};

/// The store traits and their conveniences, for `use cs_core::store::prelude::*` where a
/// concrete store's methods are called (a `dyn ConversationStore` needs no import).
pub mod prelude {
    pub use super::{
        ConversationLog, ConversationLogExt, ConversationStore, CustomerStore, CustomerStoreExt,
        Outbox,
    };
}

/// Stores customers, identities, conversations, messages and the outbox: a [`CustomerStore`], a
/// [`ConversationLog`] and an [`Outbox`] in one, so a message and the conversation it belongs to
/// are stored together. Implemented for every type that is all three; hold it as
/// `Arc<dyn ConversationStore>` and call the methods of any of the three on it.
///
/// Implementations must be safe under concurrent use from many tasks and processes sharing the
/// backend: a customer identity belongs to exactly one customer, a customer has at most one active
/// conversation, a `(channel, provider_message_id)` pair is stored once, and a conversation update
/// based on a stale version fails with [`crate::Error::Conflict`].
pub trait ConversationStore: CustomerStore + ConversationLog + Outbox {}

impl<T: CustomerStore + ConversationLog + Outbox + ?Sized> ConversationStore for T {}

/// The most rows one list call returns.
pub const MAX_PAGE: usize = 1_000;

/// `limit` within 1 and [`MAX_PAGE`].
pub(crate) fn page(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE)
}
