//! The error type shared by the core model and conversation stores.

use std::error::Error as StdError;

/// A boxed error from a backend library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by meaning to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (in this tenant).
    #[error("{what} not found: {id}")]
    NotFound {
        /// The kind of thing, e.g. `"conversation"`.
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// The write lost a race or breaks a uniqueness rule; re-read and try again.
    #[error("conflict: {reason}")]
    Conflict {
        /// What collided.
        reason: String,
    },
    /// A credential or signature is missing, wrong or expired.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// Why it was refused.
        reason: String,
    },
    /// The input is malformed, too large or breaks a rule.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong with it.
        reason: String,
    },
    /// A dependency is temporarily out of reach; retrying later may succeed.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// What is unavailable.
        reason: String,
    },
    /// A backend failed in a way not covered above.
    #[error("{backend} backend error: {source}")]
    Backend {
        /// Which backend, e.g. `"sqlite"`.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::Conflict {
            reason: reason.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Conflict { .. })
    }
}
