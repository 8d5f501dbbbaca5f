#![doc = include_str!("../README.md")]

#[cfg(feature = "testing")]
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
#[cfg(feature = "testing")]
pub mod workload;

#[cfg(feature = "testing")]
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
