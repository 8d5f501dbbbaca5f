//! Runs the bus conformance suite (`cs_core::conformance::bus`) against the in-process
//! implementations and, with feature `nats` and `CS_TEST_NATS_URL` set, against NATS JetStream.

use std::time::Duration;

use cs_core::bus::{InProcessBus, InProcessLeases, InProcessPresence};
use cs_core::conformance::bus;

#[tokio::test]
async fn in_process_bus_conforms() {
    let b = InProcessBus::new();
    bus::run(
        &b,
        &b,
        &InProcessLeases::new(Duration::from_millis(600)),
        &InProcessPresence::new(Duration::from_millis(600)),
        Duration::from_millis(300),
    )
    .await;
}
