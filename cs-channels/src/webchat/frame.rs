//! The JSON frames spoken between the widget and the server.

use chrono::{DateTime, Utc};
use cs_core::{Content, ConversationId, Message, MessageId};
use serde::{Deserialize, Serialize};

/// A frame from the browser.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ClientFrame {
    /// The customer sends a message.
    Message {
        /// The widget's id for the message; the same id sent twice is stored once.
        client_id: String,
        /// The text.
        text: String,
    },
    /// The customer rates a resolved conversation of theirs (the survey after a resolve).
    Rate {
        /// The conversation rated (from a message of it the widget was shown).
        conversation: ConversationId,
        /// 1 to 5.
        score: u8,
        /// An optional comment.
        #[serde(default)]
        comment: Option<String>,
    },
}

/// A message as the widget shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MessageView {
    pub(crate) id: MessageId,
    /// The conversation it belongs to (the survey names it when rating).
    pub(crate) conversation: ConversationId,
    /// `customer`, `bot`, `agent` or `system`.
    pub(crate) author: &'static str,
    pub(crate) content: Content,
    pub(crate) text: String,
    pub(crate) at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id,
            conversation: m.conversation,
            author: m.author.role(),
            content: m.content.clone(),
            text: m.content.plain_text(),
            at: m.created_at,
            client_id: if m.author.role() == "customer" {
                m.provider_message_id.clone()
            } else {
                None
            },
        }
    }
}

/// A frame to the browser.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame {
    /// Sent once after connecting: who the visitor is and their recent history.
    Hello {
        visitor: String,
        history: Vec<MessageView>,
        /// The longest message text accepted, in UTF-8 bytes: the widget counts what the
        /// server counts and refuses longer ones itself, keeping the text for editing.
        max_text_bytes: usize,
        /// The largest frame read at all, in bytes (a larger one closes the socket with 1009).
        max_frame_bytes: usize,
    },
    /// The customer's message was stored (or had been: `duplicate`).
    Ack {
        client_id: String,
        message_id: MessageId,
        duplicate: bool,
    },
    /// The customer's rating was stored.
    Rated {
        conversation: ConversationId,
        score: u8,
    },
    /// A message for the customer (bot, agent or system).
    Message { message: MessageView },
    /// A frame was refused; the connection stays open. `code` is stable (the widget translates
    /// it); `reason` is an English explanation for logs.
    Error {
        code: &'static str,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Whether sending the same frame again later may succeed (rate limit, engine busy).
        temporary: bool,
        /// For `payload_too_large`: the size found and the limit, in UTF-8 bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// For `rate_limited`: whole seconds to wait before sending again.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
}
