//! The [`Router`] trait.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId};

use crate::error::Result;
use crate::task::{Decision, Snapshot, Task};

/// Decides which agent gets which task.
///
/// Routers are driven by events: a task arrives, an agent signs in or changes, an agent finishes
/// a task, time passes. Each call returns the decisions it made, so the caller (the engine) can
/// act on them; a router never sleeps or polls.
#[async_trait]
pub trait Router: Send + Sync + Debug + 'static {
    /// Queues a task and returns any decisions that follow.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] when a task with this id is already queued or assigned;
    /// [`crate::Error::InvalidInput`] for an invalid requirement.
    async fn enqueue(&self, task: Task) -> Result<Vec<Decision>>;

    /// Removes a queued task (the customer left, the bot solved it). Returns whether it was
    /// queued.
    ///
    /// # Errors
    /// Implementation failures only.
    async fn cancel(&self, task: ConversationId) -> Result<bool>;

    /// Adds an agent or replaces a known agent's profile (skills, capacity, presence); returns the
    /// decisions that follow (an agent coming online takes waiting tasks). The agent keeps the
    /// tasks they have.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for an invalid profile.
    async fn upsert_agent(&self, agent: Agent) -> Result<Vec<Decision>>;

    /// The agent is done with a task (resolved, transferred, abandoned): frees the capacity and
    /// returns the decisions that follow.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] for an unknown agent; [`crate::Error::Conflict`] when the task
    /// is not the agent's.
    async fn release(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>>;

    /// Time has passed: applies whatever depends on it (aging, overflow, time-outs) and returns
    /// the decisions that follow.
    ///
    /// # Errors
    /// Implementation failures only.
    async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Decision>>;

    /// The queue and every agent's load.
    ///
    /// # Errors
    /// Implementation failures only.
    async fn snapshot(&self) -> Result<Snapshot>;
}
