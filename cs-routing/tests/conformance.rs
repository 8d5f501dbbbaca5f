//! Every router in this crate runs the same conformance suite.

use cs_routing::{NaiveRouter, Router, Shared, SimpleRouter, SkillRouter, conformance};

#[tokio::test]
async fn simple_router_conforms() {
    conformance::run(&|| Box::new(SimpleRouter::new()) as Box<dyn Router>).await;
}

#[tokio::test]
async fn skill_router_conforms() {
    conformance::run(&|| Box::new(Shared::new(SkillRouter::new(Default::default())))).await;
    conformance::run_policy(&|p| Box::new(Shared::new(SkillRouter::new(p)))).await;
}

#[tokio::test]
async fn naive_router_conforms() {
    conformance::run(&|| Box::new(Shared::new(NaiveRouter::new(Default::default())))).await;
    conformance::run_policy(&|p| Box::new(Shared::new(NaiveRouter::new(p)))).await;
}
