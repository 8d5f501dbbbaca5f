//! The routing error type.

use cs_core::{AgentId, ConversationId};

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a router, by meaning to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The agent or task is not known to the router.
    #[error("{what} not found: {id}")]
    NotFound {
        /// `"agent"`, `"task"` or `"queued task"`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The task is already queued or assigned, the release names the wrong agent, or the agent
    /// cannot take the task it picks (not online, no free slot).
    #[error("conflict: {reason}")]
    Conflict {
        /// What collided.
        reason: String,
    },
    /// The request breaks a rule (an empty skill name, a level outside 1-10...).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The router is shutting down or overloaded.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The agent or task `id` is unknown.
pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Error {
    Error::NotFound {
        what,
        id: id.to_string(),
    }
}

/// Accepting or rejecting a task that is not offered to the agent.
pub(crate) fn not_offered(agent: AgentId, task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is not offered to agent {agent}"),
    }
}

/// Enqueueing a task the router already has.
pub(crate) fn duplicate(task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is already queued or assigned"),
    }
}

/// Releasing a task the agent does not hold.
pub(crate) fn not_assigned(agent: AgentId, task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is neither assigned nor offered to agent {agent}"),
    }
}

/// Re-prioritising or picking a task that is not waiting in the queue.
pub(crate) fn not_queued(task: ConversationId) -> Error {
    not_found("queued task", task)
}

/// Picking a task an agent already has (assigned, or offered to another agent).
pub(crate) fn taken(task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is already assigned or offered to an agent"),
    }
}

/// Picking for an agent who is not online.
pub(crate) fn not_online(agent: AgentId) -> Error {
    Error::Conflict {
        reason: format!("agent {agent} is not online"),
    }
}

/// Picking for an agent without a free slot for the task's medium.
pub(crate) fn no_room(agent: AgentId, task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("agent {agent} has no free slot for task {task}"),
    }
}
