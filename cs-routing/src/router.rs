//! The [`Router`] trait.

use std::fmt::Debug;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId};

use crate::error::Result;
use crate::task::{Decision, Reprioritize, Snapshot, Task};

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
    /// returns the decisions that follow. A task still offered to the agent is withdrawn the
    /// same way (the customer left before the agent accepted): no [`Decision::OfferExpired`],
    /// and it does not count as a missed offer.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] for an unknown agent; [`crate::Error::Conflict`] when the task
    /// is neither assigned nor offered to the agent.
    async fn release(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>>;

    /// Time has passed: applies whatever depends on it (aging, overflow, time-outs) and returns
    /// the decisions that follow.
    ///
    /// # Errors
    /// Implementation failures only.
    async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Decision>>;

    /// Changes a queued task's priority (and, when given, its customer's tier): a customer who
    /// gets angrier while waiting moves up. The task keeps its `enqueued_at`, so its new rank
    /// follows the policy's aging formula with the new band (see [`crate::policy`]), and keeps
    /// its overflow rings, sticky hold and exclusions. Returns the decisions that follow (under
    /// the policy of this crate none: a task's rank never decides whether someone may take it,
    /// only who goes first when an agent frees up).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when the task is not waiting in the queue (unknown, with the
    /// bot, offered or assigned).
    async fn reprioritize(
        &self,
        task: ConversationId,
        change: Reprioritize,
    ) -> Result<Vec<Decision>>;

    /// An agent (or a supervisor on the agent's behalf) takes a queued task out of turn. The
    /// person overrides what routing would decide: the task's skills, levels, language and team,
    /// a sticky hold for another agent, the agent's own earlier rejection, the standby gate and
    /// the queue's order. Never capacity: the agent must be online with a free slot for the
    /// task's medium. The task is assigned at once, even under reservations
    /// ([`Decision::Assigned`], then whatever follows); a task offered to this very agent is
    /// accepted ([`Router::accept`]).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] for an unknown agent, or a task that is not queued (unknown,
    /// with the bot); [`crate::Error::Conflict`] when the task is assigned, or offered to another
    /// agent, or the agent is not online or has no free slot for its medium.
    async fn pick(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>>;

    /// Restores an assignment the router does not know, without deciding anything: at start-up
    /// the engine rebuilds the router from its store and leaves every conversation with the
    /// agent who holds it. The agent's load counts the task for its medium (even past the
    /// agent's capacity) and as their latest activity (for longest idle), the task is assigned
    /// ([`Router::release`] frees it), and the router's clock does not move. An agent the router does not know yet is registered offline, without
    /// skills or capacity, until [`Router::upsert_agent`] brings the real profile (and the
    /// tasks stay counted).
    ///
    /// Start-up order: restore every held conversation first, then enqueue the waiting ones
    /// with their original `enqueued_at` (they keep their place; set [`Task::skip_bot`] for
    /// those the bot has seen), then upsert agents as they come online. Restoring after an
    /// agent is online is allowed but may leave them with more work than a fresh router would
    /// have given them.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] when the router already has the task (queued, offered or
    /// assigned); [`crate::Error::InvalidInput`] for an invalid requirement.
    async fn restore(&self, agent: AgentId, task: Task) -> Result<()>;

    /// The queue and every agent's load.
    ///
    /// # Errors
    /// Implementation failures only.
    async fn snapshot(&self) -> Result<Snapshot>;

    /// The agent accepts an offer ([`Decision::Offered`]); returns [`Decision::Assigned`].
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] for an unknown agent or task; [`crate::Error::Conflict`] when
    /// the task is not offered to this agent; [`crate::Error::InvalidInput`] from routers that
    /// make no offers (the default).
    async fn accept(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let _ = (agent, task);
        Err(no_offers())
    }

    /// The agent rejects an offer: the task goes back to its place in the queue (never offered
    /// to this agent again) and the decisions that follow are returned.
    ///
    /// # Errors
    /// As [`Router::accept`].
    async fn reject(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let _ = (agent, task);
        Err(no_offers())
    }

    /// The earliest time at which [`Router::tick`] has something to do (an offer, a sticky hold
    /// or an overflow ring expires), so the engine can sleep until then instead of polling.
    ///
    /// # Errors
    /// Implementation failures only.
    async fn next_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

fn no_offers() -> crate::Error {
    crate::Error::InvalidInput {
        reason: "this router assigns directly and makes no offers".into(),
    }
}

/// A router as a synchronous state machine, driven by one writer (`&mut self`).
///
/// The policy routers implement it; [`Shared`] turns one into an [`Router`] for the engine, and
/// benchmarks and tests drive it directly. Decisions are appended to `out`.
pub trait SyncRouter: Send + Debug + 'static {
    /// See [`Router::enqueue`].
    ///
    /// # Errors
    /// See [`Router::enqueue`].
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()>;
    /// See [`Router::cancel`].
    ///
    /// # Errors
    /// See [`Router::cancel`].
    fn cancel(&mut self, task: ConversationId) -> Result<bool>;
    /// See [`Router::upsert_agent`].
    ///
    /// # Errors
    /// See [`Router::upsert_agent`].
    fn upsert_agent(&mut self, agent: Agent, out: &mut Vec<Decision>) -> Result<()>;
    /// See [`Router::release`].
    ///
    /// # Errors
    /// See [`Router::release`].
    fn release(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()>;
    /// See [`Router::accept`].
    ///
    /// # Errors
    /// See [`Router::accept`].
    fn accept(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()>;
    /// See [`Router::reject`].
    ///
    /// # Errors
    /// See [`Router::reject`].
    fn reject(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()>;
    /// See [`Router::tick`].
    ///
    /// # Errors
    /// See [`Router::tick`].
    fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<Decision>) -> Result<()>;
    /// See [`Router::reprioritize`].
    ///
    /// # Errors
    /// See [`Router::reprioritize`].
    fn reprioritize(
        &mut self,
        task: ConversationId,
        change: Reprioritize,
        out: &mut Vec<Decision>,
    ) -> Result<()>;
    /// See [`Router::pick`].
    ///
    /// # Errors
    /// See [`Router::pick`].
    fn pick(&mut self, agent: AgentId, task: ConversationId, out: &mut Vec<Decision>)
    -> Result<()>;
    /// See [`Router::restore`].
    ///
    /// # Errors
    /// See [`Router::restore`].
    fn restore(&mut self, agent: AgentId, task: Task) -> Result<()>;
    /// See [`Router::snapshot`].
    fn snapshot(&self) -> Snapshot;
    /// See [`Router::next_deadline`].
    ///
    /// Takes `&mut self` so a router can drop bookkeeping of time-outs that no longer apply.
    fn next_deadline(&mut self) -> Option<DateTime<Utc>>;
}

/// A [`SyncRouter`] behind a mutex: one writer at a time, usable as `Arc<dyn Router>`.
#[derive(Debug, Default)]
pub struct Shared<R> {
    inner: Mutex<R>,
}

impl<R: SyncRouter> Shared<R> {
    /// Wraps `router`.
    pub fn new(router: R) -> Self {
        Self {
            inner: Mutex::new(router),
        }
    }

    /// Runs `f` on the router (for statistics, tests).
    pub fn with<T>(&self, f: impl FnOnce(&mut R) -> T) -> T {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, R> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(
        &self,
        f: impl FnOnce(&mut R, &mut Vec<Decision>) -> Result<()>,
    ) -> Result<Vec<Decision>> {
        let mut out = Vec::new();
        f(&mut self.lock(), &mut out)?;
        Ok(out)
    }
}

#[async_trait]
impl<R: SyncRouter> Router for Shared<R> {
    async fn enqueue(&self, task: Task) -> Result<Vec<Decision>> {
        self.run(|r, out| r.enqueue(task, out))
    }

    async fn cancel(&self, task: ConversationId) -> Result<bool> {
        self.lock().cancel(task)
    }

    async fn upsert_agent(&self, agent: Agent) -> Result<Vec<Decision>> {
        self.run(|r, out| r.upsert_agent(agent, out))
    }

    async fn release(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        self.run(|r, out| r.release(agent, task, out))
    }

    async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Decision>> {
        self.run(|r, out| r.tick(now, out))
    }

    async fn reprioritize(
        &self,
        task: ConversationId,
        change: Reprioritize,
    ) -> Result<Vec<Decision>> {
        self.run(|r, out| r.reprioritize(task, change, out))
    }

    async fn pick(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        self.run(|r, out| r.pick(agent, task, out))
    }

    async fn restore(&self, agent: AgentId, task: Task) -> Result<()> {
        self.lock().restore(agent, task)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.lock().snapshot())
    }

    async fn accept(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        self.run(|r, out| r.accept(agent, task, out))
    }

    async fn reject(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        self.run(|r, out| r.reject(agent, task, out))
    }

    async fn next_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.lock().next_deadline())
    }
}
