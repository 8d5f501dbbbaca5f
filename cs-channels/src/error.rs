//! The channel error type.

use cs_core::BoxError;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a channel, by meaning to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request's signature or token is missing, forged or expired: nothing was stored.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// Why it was refused.
        reason: String,
    },
    /// The payload is malformed or breaks a rule.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong with it.
        reason: String,
    },
    /// The payload is larger than the channel accepts.
    #[error("payload too large: {size} bytes, limit {limit}")]
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The payload is within the size limit but its structure is over a limit (JSON or XML
    /// nesting, form fields, MIME parts...): refused before the parser saw it.
    #[error("payload too complex: {what} over {limit}")]
    TooComplex {
        /// What was counted (`"JSON nesting depth"`, `"form fields"`...).
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The channel cannot carry this content or operation.
    #[error("unsupported: {reason}")]
    Unsupported {
        /// What is not supported.
        reason: String,
    },
    /// The provider or peer is out of reach for now; retry later.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// What is unavailable.
        reason: String,
    },
    /// The provider refused the request for good (a 4xx answer): retrying will not help.
    #[error("rejected by provider: {reason}")]
    Rejected {
        /// The provider's reason.
        reason: String,
    },
    /// The provider only lets us write to this customer within a window after their last
    /// message (WhatsApp's 24 h customer-service window, WeChat's 48 h), and it is closed:
    /// wait for the customer to write again or use an approved template.
    #[error("reply window closed: last customer message {last_inbound:?}, window {window}")]
    ReplyWindowClosed {
        /// When the customer last wrote, if known.
        last_inbound: Option<chrono::DateTime<chrono::Utc>>,
        /// The window's length.
        window: chrono::Duration,
    },
    /// The sender sent too much too fast: nothing was stored; try again after `retry_after`.
    #[error("rate limited: try again in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long to wait.
        retry_after: std::time::Duration,
    },
    /// The engine behind the channel failed to take the message.
    #[error("handler failed: {source}")]
    Handler {
        /// The handler's error.
        #[source]
        source: BoxError,
        /// Whether retrying may succeed.
        temporary: bool,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Unauthenticated`].
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        Self::Unauthenticated {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::TooComplex`].
    pub fn too_complex(what: &'static str, limit: usize) -> Self {
        Self::TooComplex { what, limit }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::RateLimited { .. } => true,
            Self::Handler { temporary, .. } => *temporary,
            _ => false,
        }
    }

    /// A short machine-readable code for error frames and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::InvalidInput { .. } => "invalid_input",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooComplex { .. } => "too_complex",
            Self::Unsupported { .. } => "unsupported",
            Self::Unavailable { .. } => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::ReplyWindowClosed { .. } => "reply_window_closed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Handler { .. } => "internal",
        }
    }
}

impl From<cs_core::Error> for Error {
    fn from(e: cs_core::Error) -> Self {
        match e {
            cs_core::Error::InvalidInput { reason } => Self::InvalidInput { reason },
            cs_core::Error::Unauthenticated { reason } => Self::Unauthenticated { reason },
            other => {
                let temporary = other.is_temporary();
                Self::Handler {
                    source: Box::new(other),
                    temporary,
                }
            }
        }
    }
}
