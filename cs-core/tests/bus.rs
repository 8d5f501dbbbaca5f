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

/// The JetStream implementations (feature `nats`) against the server at `CS_TEST_NATS_URL`, in
/// streams and buckets of a prefix of their own, deleted afterwards.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_conforms() {
    let Some(url) = std::env::var("CS_TEST_NATS_URL").ok() else {
        eprintln!(
            "skipped: set CS_TEST_NATS_URL (e.g. nats://127.0.0.1:4222) to run the NATS bus tests"
        );
        return;
    };
    let prefix = format!(
        "cstest_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let nats = cs_core::bus::nats::NatsBusBuilder::new(url)
        .with_prefix(&prefix)
        .with_memory_storage(true)
        .build()
        .await
        .expect("NATS reachable with JetStream");
    let leases = nats.leases(Duration::from_millis(1000)).await.unwrap();
    let presence = nats.presence(Duration::from_millis(1000)).await.unwrap();
    bus::run(&nats, &nats, &leases, &presence, Duration::from_millis(500)).await;
    nats.destroy().await.unwrap();
}
