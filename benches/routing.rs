//! Routing decision cost: the fast `SkillRouter` against the naive reference in the same run, and
//! how the fast router's cost grows with the number of agents.
//!
//! `cargo bench --bench routing` measures a mid-size contact centre (1,000 agents, 64 skills,
//! 10,000 queued) and the scaling series 100 -> 10,000 agents; `ROUTING_BENCH_FULL=1` uses the
//! issue's scale (10,000 agents, 256 skills, 100,000 queued) and extends the series to 50,000.
//! `cargo test --benches` runs every benchmark once on a tiny contact centre (the CI smoke run).

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use cs_routing::workload::{Scenario, Stream, Workload};
use cs_routing::{NaiveRouter, RoutingPolicy, SkillRouter, SyncRouter};

fn full() -> bool {
    std::env::var_os("ROUTING_BENCH_FULL").is_some()
}

/// `cargo test --benches` runs the benchmarks without `--bench`: keep it quick.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn workload(agents: usize, skills: usize, queued: usize, scenario: Scenario) -> Workload {
    Workload {
        agents,
        skills,
        queued,
        events: usize::MAX,
        scenario,
        seed: 7,
    }
}

/// Benchmarks one event at a time of `w` on `router`, after the workload's setup.
fn bench_events(
    c: &mut Criterion,
    group: &str,
    id: BenchmarkId,
    mut router: Box<dyn SyncRouter>,
    w: Workload,
) {
    let mut stream = Stream::new(w);
    stream.setup(router.as_mut()).expect("setup");
    c.benchmark_group(group).bench_function(id, |b| {
        b.iter(|| black_box(stream.step(router.as_mut()).expect("event")))
    });
}

fn fast_vs_naive(c: &mut Criterion) {
    let (agents, skills, queued) = if smoke() {
        (50, 16, 500)
    } else if full() {
        (10_000, 256, 100_000)
    } else {
        (1_000, 64, 10_000)
    };
    for scenario in [Scenario::Steady, Scenario::AgentSurplus, Scenario::Churn] {
        let w = workload(agents, skills, queued, scenario);
        let group = format!("routing/{}", scenario.name());
        let fast = Box::new(SkillRouter::new(RoutingPolicy::default()));
        bench_events(c, &group, BenchmarkId::new("fast", agents), fast, w);
        let naive = Box::new(NaiveRouter::new(RoutingPolicy::default()));
        bench_events(c, &group, BenchmarkId::new("naive", agents), naive, w);
    }
}

fn scaling(c: &mut Criterion) {
    let mut sizes = vec![100, 1_000, 10_000];
    if smoke() {
        sizes.truncate(1);
    } else if full() {
        sizes.push(50_000);
    }
    for agents in sizes {
        let w = workload(agents, 256, agents * 10, Scenario::Steady);
        let fast = Box::new(SkillRouter::new(RoutingPolicy::default()));
        bench_events(
            c,
            "routing/scaling",
            BenchmarkId::new("fast", agents),
            fast,
            w,
        );
    }
}

criterion_group!(benches, fast_vs_naive, scaling);
criterion_main!(benches);
