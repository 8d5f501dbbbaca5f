#![doc = include_str!("../README.md")]

pub mod checker;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod index;
mod naive;
pub mod policy;
mod router;
mod simple;
mod skill;
mod task;
pub mod workload;

pub use checker::{Checker, Violation};
pub use error::{Error, Result};
pub use naive::NaiveRouter;
pub use policy::{
    BotFirst, OverflowRing, Relax, Reservations, RoutingPolicy, RoutingPolicyBuilder, StandbyPool,
};
pub use router::{Router, Shared, SyncRouter};
pub use simple::SimpleRouter;
pub use skill::SkillRouter;
pub use task::{AgentLoad, Decision, QueuedTask, Reprioritize, SkillRequirement, Snapshot, Task};
