//! The ticket error type.

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a ticket store, by meaning to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such ticket in the tenant.
    #[error("ticket not found: {id}")]
    NotFound {
        /// The id or number asked for.
        id: String,
    },
    /// The ticket changed since it was read (optimistic versioning): re-read and try again.
    #[error("conflict: ticket {id} is at version {actual}, update was based on {expected}")]
    Conflict {
        /// The ticket.
        id: String,
        /// The version the update was based on.
        expected: u64,
        /// The stored version.
        actual: u64,
    },
    /// The change breaks a rule (an empty subject, a status change the workflow forbids...).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The backend is out of reach for now.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// A backend failed in a way not covered above.
    #[error("{backend} backend error: {source}")]
    Backend {
        /// Which backend, e.g. `"postgres"`.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: cs_core::BoxError,
    },
}

impl From<cs_core::Error> for Error {
    fn from(e: cs_core::Error) -> Self {
        match e {
            cs_core::Error::NotFound { id, .. } => Self::NotFound { id },
            cs_core::Error::InvalidInput { reason } => Self::InvalidInput { reason },
            cs_core::Error::Unavailable { reason } => Self::Unavailable { reason },
            cs_core::Error::Backend { backend, source } => Self::Backend { backend, source },
            other => Self::Backend {
                backend: "sql",
                source: Box::new(other),
            },
        }
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }

    /// Whether retrying (after a re-read, for a conflict) may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Conflict { .. })
    }
}
