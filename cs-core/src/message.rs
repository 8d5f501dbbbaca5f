//! Messages and their content.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::ChannelKind;
use crate::conversation::Conversation;
use crate::id::{AgentId, ChannelId, ConversationId, CustomerId, MessageId, TenantId};

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer to us.
    Inbound,
    /// From us (bot, agent, system) to the customer.
    Outbound,
    /// Stays inside the desk (internal notes, system events).
    Internal,
}

impl Direction {
    /// The stable lower-case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Internal => "internal",
        }
    }

    /// Parses [`Direction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Inbound, Self::Outbound, Self::Internal]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Author {
    /// The customer.
    Customer,
    /// The bot.
    Bot,
    /// A human agent.
    Agent {
        /// Which agent.
        agent: AgentId,
    },
    /// The system (hand-over notices, status changes).
    System,
}

impl Author {
    /// `customer`, `bot`, `agent` or `system`.
    pub const fn role(&self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Bot => "bot",
            Self::Agent { .. } => "agent",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent { agent } => write!(f, "agent:{agent}"),
            other => f.write_str(other.role()),
        }
    }
}

/// The kind of a [`Content`], used by channels to declare what they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    /// Plain text.
    Text,
    /// A picture.
    Image,
    /// A video clip.
    Video,
    /// A voice note or audio clip.
    Audio,
    /// Any other file.
    File,
    /// A map location.
    Location,
    /// A card with title, text and buttons.
    RichCard,
    /// A non-message event (subscribe, menu click, typing...).
    Event,
}

/// A button on a [`RichCard`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardButton {
    /// What the button says.
    pub label: String,
    /// What pressing it sends back (a reply text or payload), or the link it opens.
    pub value: String,
}

/// A card with a title, text, an optional picture and buttons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RichCard {
    /// The title.
    pub title: String,
    /// The body text.
    pub body: Option<String>,
    /// A picture URL.
    pub image_url: Option<String>,
    /// Buttons.
    #[serde(default)]
    pub buttons: Vec<CardButton>,
}

/// What a message carries. Media is held by reference (URL), never inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A picture.
    Image {
        /// Where it is.
        url: String,
        /// A caption.
        caption: Option<String>,
    },
    /// A video clip.
    Video {
        /// Where it is.
        url: String,
        /// A caption.
        caption: Option<String>,
    },
    /// A voice note or audio clip.
    Audio {
        /// Where it is.
        url: String,
        /// Speech recognised by the provider, if any.
        transcript: Option<String>,
    },
    /// Any other file.
    File {
        /// Where it is.
        url: String,
        /// File name.
        name: String,
        /// MIME type.
        mime: Option<String>,
        /// Size in bytes.
        size: Option<u64>,
    },
    /// A map location.
    Location {
        /// Latitude in degrees.
        latitude: f64,
        /// Longitude in degrees.
        longitude: f64,
        /// A place name or address.
        label: Option<String>,
    },
    /// A card with title, text and buttons.
    RichCard(RichCard),
    /// A non-message event (subscribe, menu click, typing...).
    Event {
        /// Event name, e.g. `subscribe`.
        name: String,
        /// Event details.
        #[serde(default)]
        data: serde_json::Value,
    },
}

impl Content {
    /// Text content.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// The kind of this content.
    pub const fn kind(&self) -> ContentKind {
        match self {
            Self::Text { .. } => ContentKind::Text,
            Self::Image { .. } => ContentKind::Image,
            Self::Video { .. } => ContentKind::Video,
            Self::Audio { .. } => ContentKind::Audio,
            Self::File { .. } => ContentKind::File,
            Self::Location { .. } => ContentKind::Location,
            Self::RichCard(_) => ContentKind::RichCard,
            Self::Event { .. } => ContentKind::Event,
        }
    }

    /// The words of this content, for bots, search and channels that carry only text: the text
    /// itself, a caption or transcript, a card's title and body, a location's label.
    pub fn plain_text(&self) -> String {
        match self {
            Self::Text { text } => text.clone(),
            Self::Image { url, caption } | Self::Video { url, caption } => match caption {
                Some(c) => format!("{c} {url}"),
                None => url.clone(),
            },
            Self::Audio { url, transcript } => transcript.clone().unwrap_or_else(|| url.clone()),
            Self::File { url, name, .. } => format!("{name} {url}"),
            Self::Location {
                latitude,
                longitude,
                label,
            } => match label {
                Some(l) => format!("{l} ({latitude}, {longitude})"),
                None => format!("({latitude}, {longitude})"),
            },
            Self::RichCard(card) => {
                let mut out = card.title.clone();
                if let Some(body) = &card.body {
                    out.push('\n');
                    out.push_str(body);
                }
                for b in &card.buttons {
                    out.push_str("\n- ");
                    out.push_str(&b.label);
                }
                out
            }
            Self::Event { name, .. } => format!("[{name}]"),
        }
    }
}

/// Where an outbound message is on its way to the customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Stored, not yet handed to the provider (or inbound: nothing to deliver).
    #[default]
    Pending,
    /// Accepted by the provider.
    Sent,
    /// Reached the customer's device.
    Delivered,
    /// Read by the customer.
    Read,
    /// Could not be delivered.
    Failed,
}

impl DeliveryStatus {
    /// Every status, from the first to the last.
    pub const ALL: [DeliveryStatus; 5] = [
        Self::Pending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
    ];

    /// The stable lower-case name used in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// Parses [`DeliveryStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The id (time-ordered).
    pub id: MessageId,
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// The customer the conversation is with.
    pub customer: CustomerId,
    /// The channel instance it came in on or goes out on.
    pub channel: ChannelId,
    /// That channel's kind.
    pub channel_kind: ChannelKind,
    /// Which way it travels.
    pub direction: Direction,
    /// Who wrote it.
    pub author: Author,
    /// What it says.
    pub content: Content,
    /// The provider's id for it (WeChat `MsgId`, Telegram `update_id`, the widget's client id):
    /// unique per channel, so a retried delivery is stored once.
    pub provider_message_id: Option<String>,
    /// Delivery status (outbound).
    pub status: DeliveryStatus,
    /// When it was written (by our clock).
    pub created_at: DateTime<Utc>,
}

impl Message {
    /// A customer's message in `conversation`, received on `channel` (of `kind`) at `at`;
    /// `provider_message_id` de-duplicates provider retries.
    pub fn inbound(
        conversation: &Conversation,
        channel: ChannelId,
        kind: ChannelKind,
        content: Content,
        provider_message_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            conversation,
            channel,
            kind,
            Direction::Inbound,
            Author::Customer,
            content,
            at,
        )
        .with_provider_id(provider_message_id)
        .with_status(DeliveryStatus::Delivered)
    }

    /// A message from `author` to the customer of `conversation`, through its reply route,
    /// pending delivery; `channel_kind` is the route channel's kind.
    pub fn outbound(
        conversation: &Conversation,
        channel_kind: ChannelKind,
        author: Author,
        content: Content,
        at: DateTime<Utc>,
    ) -> Self {
        let channel = conversation.route.channel.clone();
        Self::new(
            conversation,
            channel,
            channel_kind,
            Direction::Outbound,
            author,
            content,
            at,
        )
    }

    /// A note in `conversation` that only agents see.
    pub fn internal(
        conversation: &Conversation,
        author: Author,
        content: Content,
        at: DateTime<Utc>,
    ) -> Self {
        let (channel, kind) = (
            conversation.route.channel.clone(),
            conversation.route.identity.kind,
        );
        Self::new(
            conversation,
            channel,
            kind,
            Direction::Internal,
            author,
            content,
            at,
        )
        .with_status(DeliveryStatus::Delivered)
    }

    fn new(
        conversation: &Conversation,
        channel: ChannelId,
        channel_kind: ChannelKind,
        direction: Direction,
        author: Author,
        content: Content,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: MessageId::new(),
            tenant: conversation.tenant.clone(),
            conversation: conversation.id,
            customer: conversation.customer,
            channel,
            channel_kind,
            direction,
            author,
            content,
            provider_message_id: None,
            status: DeliveryStatus::Pending,
            created_at: at,
        }
    }

    /// The same message with the provider's (or the client's) id for it.
    pub fn with_provider_id(mut self, id: Option<String>) -> Self {
        self.provider_message_id = id;
        self
    }

    /// The same message with another delivery status.
    pub fn with_status(mut self, status: DeliveryStatus) -> Self {
        self.status = status;
        self
    }

    /// Rejects messages that no store should accept.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for an empty text, a blank provider message id, or a provider
    /// message id over 256 bytes.
    pub fn validate(&self) -> crate::Result<()> {
        if let Content::Text { text } = &self.content
            && text.trim().is_empty()
        {
            return Err(crate::Error::invalid("message text is empty"));
        }
        if let Some(pid) = &self.provider_message_id
            && (pid.trim().is_empty() || pid.len() > 256)
        {
            return Err(crate::Error::invalid(
                "provider message id must be 1-256 bytes",
            ));
        }
        Ok(())
    }
}
