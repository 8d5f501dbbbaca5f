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
        &InProcessLeases::new(Duration::from_millis(800)),
        &InProcessPresence::new(Duration::from_millis(800)),
        Duration::from_millis(400),
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
    // Timings with room for a loaded CI machine, still a suite of seconds.
    let leases = nats.leases(Duration::from_millis(1500)).await.unwrap();
    let presence = nats.presence(Duration::from_millis(1500)).await.unwrap();
    bus::run(&nats, &nats, &leases, &presence, Duration::from_millis(800)).await;
    nats.destroy().await.unwrap();
}

/// A NATS server of the test's own (the binary at `CS_TEST_NATS_SERVER`), on a free loopback
/// port with its store in a temporary directory, killed on drop.
#[cfg(feature = "nats")]
struct OwnServer {
    bin: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

#[cfg(feature = "nats")]
impl OwnServer {
    fn start(bin: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("cs-nats-{}", uuid::Uuid::new_v4().simple()));
        let mut server = Self {
            bin,
            port,
            dir,
            child: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen on {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

#[cfg(feature = "nats")]
impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A subscription outlives a server restart: while the server is away, `next` reports
/// `Unavailable` (or simply waits) and publishing fails with a temporary error; once the client
/// has reconnected by itself, events published flow to the same subscription again.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_subscription_survives_a_server_restart() {
    use cs_core::bus::EventBus;
    use cs_core::conformance::bus::numbered_event;
    use cs_core::{ConversationId, TenantId};

    let Some(bin) = std::env::var("CS_TEST_NATS_SERVER").ok() else {
        eprintln!(
            "skipped: set CS_TEST_NATS_SERVER to a nats-server binary to run the restart test"
        );
        return;
    };
    let mut server = OwnServer::start(bin);
    let nats = cs_core::bus::nats::NatsBusBuilder::new(server.url())
        .with_prefix("restart")
        .build()
        .await
        .expect("own server");
    let tenant = TenantId::default();
    let conv = ConversationId::new();
    let options = cs_core::bus::SubscribeOptions::default().with_ack_wait(Duration::from_secs(2));
    let mut sub = nats.subscribe("node-a", &options).await.unwrap();
    let first = nats
        .publish(&numbered_event(&tenant, conv, 1))
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.sequence, first);
    d.ack().await.unwrap();
    // An ack is a message to the server, and the server keeps a consumer's state on disk a moment
    // later: a server killed at once may deliver it again (at least once). Give it that moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    server.stop();
    let down = tokio::time::timeout(
        Duration::from_secs(15),
        nats.publish(&numbered_event(&tenant, conv, 2)),
    )
    .await;
    if let Ok(result) = down {
        let e = result.expect_err("no publish without a server");
        assert!(e.is_temporary(), "a temporary error: {e:?}");
    }
    server.restart();

    // The client reconnects by itself; publish until the server takes it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let third = loop {
        match nats.publish(&numbered_event(&tenant, conv, 3)).await {
            Ok(seq) => break seq,
            Err(e) => {
                assert!(e.is_temporary(), "{e:?}");
                assert!(tokio::time::Instant::now() < deadline, "no reconnect: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut got = Vec::new();
    while !got.contains(&third) {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Err(_) => panic!("the subscription did not resume: {got:?}"),
            Ok(Ok(d)) => {
                got.push(d.sequence);
                d.ack().await.unwrap();
            }
            Ok(Err(e)) => assert!(
                matches!(e, cs_core::Error::Unavailable { .. }),
                "only Unavailable while reconnecting: {e:?}"
            ),
        }
    }
    assert!(
        !got.contains(&first),
        "the acknowledged event stayed acknowledged"
    );
    nats.destroy().await.unwrap();
}

/// Publish-to-delivery latency, one event at a time (publish, receive, ack), in process and on
/// NATS at `CS_TEST_NATS_URL`: `cargo test -p cs-core --features nats --release --test bus -- --ignored --nocapture latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn latency() {
    use cs_core::bus::{EventBus, SubscribeOptions};
    use cs_core::conformance::bus::numbered_event;
    use cs_core::{ConversationId, TenantId};

    async fn measure(name: &str, bus: &dyn EventBus) {
        let durable = format!("lat-{}", uuid::Uuid::new_v4().simple());
        let mut sub = bus
            .subscribe(&durable, &SubscribeOptions::default())
            .await
            .unwrap();
        let (tenant, conv) = (TenantId::default(), ConversationId::new());
        let n = 2000;
        let mut micros = Vec::with_capacity(n);
        let all = std::time::Instant::now();
        for i in 0..n {
            let start = std::time::Instant::now();
            bus.publish(&numbered_event(&tenant, conv, i))
                .await
                .unwrap();
            let d = sub.next().await.unwrap();
            micros.push(start.elapsed().as_micros());
            d.ack().await.unwrap();
        }
        let total = all.elapsed();
        micros.sort_unstable();
        println!(
            "{name}: {n} publish->delivery round trips, p50 {} us, p99 {} us, max {} us, {:.0}/s",
            micros[n / 2],
            micros[n * 99 / 100],
            micros[n - 1],
            n as f64 / total.as_secs_f64()
        );
        bus.delete_subscription(&durable).await.unwrap();
    }

    measure("in-process", &InProcessBus::new()).await;
    #[cfg(feature = "nats")]
    if let Ok(url) = std::env::var("CS_TEST_NATS_URL") {
        let nats = cs_core::bus::nats::NatsBusBuilder::new(url)
            .with_prefix(format!(
                "cslat_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ))
            .build()
            .await
            .unwrap();
        measure("nats (file storage)", &nats).await;
        nats.destroy().await.unwrap();
    }
}

/// Subscribing again under a durable name with another ack wait and in-flight limit updates the
/// JetStream consumer (the new settings hold) instead of failing or keeping the old ones.
#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_resubscribe_updates_the_consumer() {
    use cs_core::bus::{EventBus, SubscribeOptions};

    let Some(url) = std::env::var("CS_TEST_NATS_URL").ok() else {
        eprintln!("skipped: set CS_TEST_NATS_URL to run the NATS bus tests");
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
        .unwrap();
    let first = SubscribeOptions::default().with_ack_wait(Duration::from_secs(3));
    drop(nats.subscribe("node-a", &first).await.unwrap());
    let second = SubscribeOptions::default()
        .with_ack_wait(Duration::from_secs(7))
        .with_max_in_flight(5);
    drop(nats.subscribe("node-a", &second).await.unwrap());
    let info = nats
        .jetstream()
        .get_stream(format!("{prefix}_events"))
        .await
        .unwrap()
        .consumer_info("node-a")
        .await
        .unwrap();
    assert_eq!(info.config.ack_wait, Duration::from_secs(7));
    assert_eq!(info.config.max_ack_pending, 5);
    nats.destroy().await.unwrap();
}
