#![doc = include_str!("../README.md")]

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod router;
mod simple;
mod task;

pub use error::{Error, Result};
pub use router::Router;
pub use simple::SimpleRouter;
pub use task::{AgentLoad, Decision, QueuedTask, SkillRequirement, Snapshot, Task};
