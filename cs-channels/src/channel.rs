//! The [`Channel`] trait and the types that cross it.

use std::collections::BTreeSet;
use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use cs_core::{ChannelId, ChannelKind, Content, ContentKind, DeliveryStatus, Identity, Message};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::Serialize;

use crate::error::Result;

/// What a channel can carry and do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Content kinds the channel delivers natively.
    pub content: BTreeSet<ContentKind>,
    /// Whether typing indicators can be shown.
    pub typing: bool,
    /// Whether the channel reports delivery and read receipts.
    pub read_receipts: bool,
    /// Longest text the provider accepts, in characters.
    pub max_text_chars: Option<usize>,
    /// Largest media file the provider accepts, in bytes.
    pub max_media_bytes: Option<u64>,
    /// How long after the customer's last message free-form replies are allowed (e.g. 24 hours
    /// on WhatsApp, 48 hours for WeChat customer-service messages).
    pub reply_window: Option<chrono::Duration>,
}

impl Capabilities {
    /// Text only, no extras.
    pub fn text_only() -> Self {
        Self {
            content: BTreeSet::from([ContentKind::Text]),
            typing: false,
            read_receipts: false,
            max_text_chars: None,
            max_media_bytes: None,
            reply_window: None,
        }
    }

    /// Whether `kind` is carried natively.
    pub fn supports(&self, kind: ContentKind) -> bool {
        self.content.contains(&kind)
    }

    /// Rewrites `content` into something this channel carries: media it cannot carry becomes a
    /// text with the link, a card becomes its text with the buttons as a numbered list (a
    /// customer on a text-only channel answers with the number, as a bot's clarifying question
    /// asks), and text over the length limit is cut.
    pub fn adapt(&self, content: Content) -> Content {
        let adapted = if self.supports(content.kind()) {
            content
        } else if let Content::RichCard(card) = &content {
            Content::text(numbered_card(card))
        } else {
            Content::text(content.plain_text())
        };
        match (adapted, self.max_text_chars) {
            (Content::Text { text }, Some(max)) if text.chars().count() > max => {
                let cut: String = text.chars().take(max.saturating_sub(1)).collect();
                Content::text(format!("{cut}…"))
            }
            (other, _) => other,
        }
    }
}

/// A card as text: the title, the body, then one numbered line per button (`1. label`).
fn numbered_card(card: &cs_core::RichCard) -> String {
    let mut out = card.title.clone();
    if let Some(body) = card.body.as_deref().filter(|b| !b.is_empty()) {
        out.push('\n');
        out.push_str(body);
    }
    for (i, b) in card.buttons.iter().enumerate() {
        let link = b.value.starts_with("https://") || b.value.starts_with("http://");
        out.push_str(&format!("\n{}. {}", i + 1, b.label));
        if link {
            out.push_str(&format!(" {}", b.value));
        }
    }
    out
}

/// Static facts about a configured channel instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelInfo {
    /// The instance id (`webchat`, `wechat-main`, ...).
    pub id: ChannelId,
    /// The protocol.
    pub kind: ChannelKind,
    /// What it can carry.
    pub capabilities: Capabilities,
}

/// A request as it reached us, before any checking: an HTTP webhook call, or a frame from a
/// socket (with the socket's authenticated identity in a header the transport sets).
#[derive(Debug, Clone)]
pub struct RawInbound {
    /// HTTP method.
    pub method: Method,
    /// The full request URI (signatures often cover it).
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// The raw body, exactly as received (signatures cover the bytes).
    pub body: Bytes,
    /// When it arrived (by the engine's clock).
    pub received_at: DateTime<Utc>,
}

/// A customer message normalised from a provider payload.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The channel instance it arrived on.
    pub channel: ChannelId,
    /// The sender's identity.
    pub from: Identity,
    /// The provider's id for the message (for de-duplication of retries).
    pub provider_message_id: Option<String>,
    /// What it says.
    pub content: Content,
    /// The sender's name, if the provider tells it.
    pub display_name: Option<String>,
    /// The sender's language, if known.
    pub language: Option<String>,
    /// When the provider says it was sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A delivery or read receipt from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The provider's id of our outbound message.
    pub provider_message_id: String,
    /// How far it got.
    pub status: DeliveryStatus,
}

/// The immediate HTTP answer a provider expects (an echo string, a passive reply, TwiML...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundResponse {
    /// Status code.
    pub status: StatusCode,
    /// Content type of `body`.
    pub content_type: Option<&'static str>,
    /// Body.
    pub body: Bytes,
}

impl InboundResponse {
    /// `200 OK` with an empty body.
    pub fn ok() -> Self {
        Self {
            status: StatusCode::OK,
            content_type: None,
            body: Bytes::new(),
        }
    }
}

/// What a channel made of a [`RawInbound`].
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Customer messages to ingest.
    pub messages: Vec<InboundMessage>,
    /// Receipts for our outbound messages.
    pub statuses: Vec<StatusUpdate>,
    /// What to answer the provider.
    pub response: InboundResponse,
}

/// A stored outbound message and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The message as stored (its id, author and content).
    pub message: Message,
    /// The customer's identity on this channel.
    pub to: Identity,
}

/// What the provider said when it took an outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id for the sent message, for matching later receipts.
    pub provider_message_id: Option<String>,
    /// How far it got: `Sent` when the provider took it, `Delivered` when it reached a connected
    /// device, `Pending` when the customer is offline and will fetch it later.
    pub status: DeliveryStatus,
}

/// One configured channel: verifies and normalises inbound provider payloads, sends outbound
/// messages, and declares what it can carry.
#[async_trait]
pub trait Channel: Send + Sync + Debug + 'static {
    /// The instance's id, kind and capabilities.
    fn info(&self) -> &ChannelInfo;

    /// Verifies a provider request (signature, size, format) and normalises it.
    ///
    /// # Errors
    /// [`crate::Error::Unauthenticated`] for a missing or forged signature,
    /// [`crate::Error::PayloadTooLarge`] and [`crate::Error::InvalidInput`] for bad payloads.
    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed>;

    /// Sends a message to the customer.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when the provider is out of reach (retry),
    /// [`crate::Error::Rejected`] when it refused the message for good,
    /// [`crate::Error::Unsupported`] for content the channel cannot carry.
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt>;
}

/// The engine side of a channel: where normalised inbound messages go.
#[async_trait]
pub trait InboundHandler: Send + Sync + Debug + 'static {
    /// Ingests one message; returns the stored message and whether it was a duplicate of one
    /// already stored (a provider retry).
    ///
    /// # Errors
    /// Whatever the engine reports, mapped to [`crate::Error`].
    async fn handle(&self, message: InboundMessage) -> Result<Delivered>;

    /// The customer's recent history as seen from this channel identity, oldest first.
    ///
    /// # Errors
    /// Whatever the engine reports.
    async fn history(
        &self,
        channel: &ChannelId,
        identity: &Identity,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// Records a delivery or read receipt a provider reported for one of our outbound messages
    /// (matched by its provider message id). The default ignores receipts.
    ///
    /// # Errors
    /// Whatever the engine reports.
    async fn status(&self, channel: &ChannelId, update: StatusUpdate) -> Result<()> {
        let _ = (channel, update);
        Ok(())
    }

    /// Ingests one message together with what the channel knows about where it belongs (an
    /// email thread and the conversation that thread was last seen in). Engines that keep
    /// several conversations per customer override this; the default ignores the context.
    ///
    /// # Errors
    /// Whatever the engine reports, mapped to [`crate::Error`].
    async fn handle_with(
        &self,
        message: InboundMessage,
        context: InboundContext,
    ) -> Result<Delivered> {
        let _ = context;
        self.handle(message).await
    }

    /// Records a customer's satisfaction rating of one of their own conversations, sent from
    /// `identity` on `channel` (the web chat widget's survey after a resolve). A conversation is
    /// rated once: a second rating is refused with [`Rated::AlreadyRated`] and changes nothing.
    /// The default refuses ratings as unsupported.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a score off 1-5, or a conversation that is not this
    /// customer's or not resolved; whatever else the engine reports.
    async fn rate(
        &self,
        channel: &ChannelId,
        identity: &Identity,
        rating: Rating,
    ) -> Result<Rated> {
        let _ = (channel, identity, rating);
        Err(crate::Error::Unsupported {
            reason: "this desk does not take ratings".into(),
        })
    }
}

/// The longest comment a customer may add to a rating, in characters.
pub const MAX_RATING_COMMENT_CHARS: usize = 500;

/// A customer's satisfaction rating of a conversation (see [`InboundHandler::rate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rating {
    /// The conversation rated.
    pub conversation: cs_core::ConversationId,
    /// CSAT score, 1 (very dissatisfied) to 5 (very satisfied).
    pub score: u8,
    /// What the customer wrote, if anything (at most [`MAX_RATING_COMMENT_CHARS`]).
    pub comment: Option<String>,
}

impl Rating {
    /// A rating of `conversation` with `score` and an optional `comment`.
    pub fn new(conversation: cs_core::ConversationId, score: u8, comment: Option<String>) -> Self {
        Self {
            conversation,
            score,
            comment,
        }
    }
}

/// What became of a [`Rating`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rated {
    /// Stored and counted.
    Recorded,
    /// The conversation had been rated already; the first rating stands.
    AlreadyRated,
}

/// Where an inbound message belongs, as far as its channel can tell (see
/// [`InboundHandler::handle_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundContext {
    /// The channel's own thread key (an email thread token), stable across the thread's
    /// messages.
    pub thread: Option<String>,
    /// The conversation earlier messages of that thread were stored in, if the channel saw one.
    pub conversation: Option<cs_core::ConversationId>,
}

impl InboundContext {
    /// A context with the thread key `thread`.
    pub fn thread(thread: impl Into<String>) -> Self {
        Self {
            thread: Some(thread.into()),
            conversation: None,
        }
    }

    /// Sets the conversation the thread was last seen in.
    pub fn with_conversation(mut self, conversation: Option<cs_core::ConversationId>) -> Self {
        self.conversation = conversation;
        self
    }
}

/// The outcome of [`InboundHandler::handle`].
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The stored message.
    pub message: Message,
    /// Whether it had been stored before (nothing new was stored).
    pub duplicate: bool,
}
