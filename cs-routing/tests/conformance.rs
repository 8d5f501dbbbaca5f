//! Every router in this crate runs the same conformance suite.

use cs_routing::{Router, SimpleRouter, conformance};

#[tokio::test]
async fn simple_router_conforms() {
    conformance::run(&|| Box::new(SimpleRouter::new()) as Box<dyn Router>).await;
}
