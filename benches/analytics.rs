#![allow(missing_docs)]
//! The cost of metrics on the data path: customer messages through the engine (bot answer
//! included), 64 at a time from different customers so both cores are busy, in three set-ups
//! measured in one run, in this order:
//!
//! 1. `without_metrics` — no recorder, no subscriber (the baseline);
//! 2. `recorder_only` — the Prometheus recorder installed (the engine's own histograms and
//!    counters now record), no subscriber;
//! 3. `with_subscriber` — the recorder and the analytics subscriber: every event through the
//!    aggregator and the Prometheus event counters, rollups flushed every second to an
//!    in-memory store (the SQL flush is off the data path: one transaction per second).
//!
//! Each set-up has its own engine (in-memory store, FAQ bot, web chat). The recorder cannot be
//! uninstalled, hence the order. `cargo bench --bench analytics`; messages/s = 64 / time per
//! iteration. The run prints how many events the subscriber missed (it must be 0: a subscriber
//! that drops events would look cheaper than it is).
//!
//! On a busy machine the three throughputs differ by less than their noise, so the run also
//! measures the subscriber's own work directly: `engine/one_message` (one message through the
//! engine, nothing else running, before the recorder is installed) against
//! `subscriber/one_event` (one captured event through the aggregator and the Prometheus
//! counters); the overhead is `one_event * events per message / one_message`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use omnidesk::Engine;
use omnidesk::analytics::{Analytics, AnalyticsConfig, MemoryRollupStore};
use omnidesk::bot::FaqBot;
use omnidesk::channels::{InboundMessage, WebChat};
use omnidesk::core::store::MemoryStore;
use omnidesk::core::{ChannelId, ChannelKind, Content, Identity};

const BATCH: u64 = 64;

async fn engine() -> Engine {
    let webchat = Arc::new(
        WebChat::builder(ChannelId::new("webchat").unwrap())
            .with_secret(*b"bench secret, 16+ bytes")
            .build()
            .unwrap(),
    );
    Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(Arc::new(
            FaqBot::from_text(omnidesk::bot::ECOMMERCE_FAQ).unwrap(),
        ))
        .with_channel(webchat)
        .build()
        .await
        .unwrap()
}

async fn batch(engine: &Engine, n: &mut u64) {
    let start = *n;
    *n += BATCH;
    let sends = (start..start + BATCH).map(|i| {
        engine.handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, format!("v{}", i % 1024)),
            provider_message_id: Some(format!("m{i}")),
            content: Content::text("When will my order ship?"),
            display_name: None,
            language: None,
            sent_at: None,
        })
    });
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let single = rt.block_on(engine());
    let mut n = 0u64;
    c.bench_function("engine/one_message", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(single.handle_inbound_and_wait(InboundMessage {
                channel: ChannelId::new("webchat").unwrap(),
                from: Identity::new(ChannelKind::WebChat, format!("s{}", n % 1024)),
                provider_message_id: Some(format!("s{n}")),
                content: Content::text("When will my order ship?"),
                display_name: None,
                language: None,
                sent_at: None,
            }))
            .unwrap()
        })
    });

    let mut group = c.benchmark_group("metrics_overhead");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(30);

    let plain = rt.block_on(engine());
    group.bench_function("without_metrics", |b| {
        b.iter(|| rt.block_on(batch(&plain, &mut n)))
    });

    assert!(omnidesk::analytics::prom::handle().is_some());
    let recorded = rt.block_on(engine());
    group.bench_function("recorder_only", |b| {
        b.iter(|| rt.block_on(batch(&recorded, &mut n)))
    });

    let subscribed = rt.block_on(engine());
    let analytics = rt.block_on(async {
        Analytics::builder(Arc::new(MemoryRollupStore::new()))
            .with_config(AnalyticsConfig {
                flush_every: std::time::Duration::from_secs(1),
                ..AnalyticsConfig::default()
            })
            .build()
            .await
            .unwrap()
    });
    let running = rt.block_on(async { analytics.start(&subscribed) });
    let mut captured = subscribed.subscribe();
    group.bench_function("with_subscriber", |b| {
        b.iter(|| rt.block_on(batch(&subscribed, &mut n)))
    });
    group.finish();
    let (events, conversations) = analytics.counts();
    println!(
        "analytics subscriber: {events} events, {conversations} conversations, {} missed",
        analytics.lagged()
    );
    drop(running);

    // The subscriber's own work per event, on events the engine really emitted.
    // (The receiver kept the newest 4,096 events; older ones lagged away.)
    let mut stream = Vec::new();
    loop {
        match captured.try_recv() {
            Ok(e) => stream.push(e),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    let messages = stream
        .iter()
        .filter(|e| matches!(e.kind, omnidesk::core::DomainEvent::MessageReceived { .. }))
        .count()
        .max(1);
    println!(
        "events per customer message: {:.2} ({} events, {messages} messages captured)",
        stream.len() as f64 / messages as f64,
        stream.len()
    );
    if stream.is_empty() {
        return;
    }
    let mut aggregator = omnidesk::analytics::Aggregator::new(Default::default());
    let mut i = 0usize;
    c.bench_function("subscriber/one_event", |b| {
        b.iter(|| {
            let e = &stream[i % stream.len()];
            i += 1;
            omnidesk::analytics::prom::record(e);
            aggregator.observe(e);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
