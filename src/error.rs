//! The engine's error type.

use cs_core::BoxError;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the engine: a component's error, or a rule of the engine itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Conversation persistence failed.
    #[error(transparent)]
    Store(#[from] cs_core::Error),
    /// A channel failed.
    #[error(transparent)]
    Channel(#[from] cs_channels::Error),
    /// The router failed.
    #[error(transparent)]
    Router(#[from] cs_routing::Error),
    /// The ticket store failed.
    #[error(transparent)]
    Tickets(#[from] cs_tickets::Error),
    /// The bot failed.
    #[error(transparent)]
    Bot(#[from] cs_bot::Error),
    /// No channel with this id is configured.
    #[error("no channel {0} is configured")]
    UnknownChannel(String),
    /// No agent with this id is registered.
    #[error("no agent {0} is registered")]
    UnknownAgent(String),
    /// The caller may not do this (an agent replying in a conversation that is not theirs).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why.
        reason: String,
    },
    /// The request breaks a rule.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// An outgoing message met the tenant's compliance rules: blocked, or a warning the sender
    /// has not confirmed. The verdict names the phrases.
    #[error("{}", compliance_reason(verdict))]
    Compliance {
        /// What the check found.
        verdict: crate::compliance::Verdict,
    },
    /// Configuration could not be read or is invalid.
    #[error("configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Something else failed.
    #[error("{0}")]
    Other(BoxError),
}

fn compliance_reason(verdict: &crate::compliance::Verdict) -> String {
    let what = if verdict.is_blocked() {
        "not sent: forbidden"
    } else {
        "held back: confirm to send"
    };
    format!("{what} ({})", verdict.phrases().join(", "))
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Store(e) => e.is_temporary(),
            Self::Channel(e) => e.is_temporary(),
            Self::Router(e) => e.is_temporary(),
            Self::Tickets(e) => e.is_temporary(),
            Self::Bot(e) => e.is_temporary(),
            _ => false,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }
}
