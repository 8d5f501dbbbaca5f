//! Routing throughput and decision latency of the fast router against the naive reference, in
//! one run, with the policy checker's verdict. Prints one JSON line:
//!
//! ```text
//! cargo run --release --example routing_bench -- --agents 10000 --skills 256 --queued 100000
//! {"agents":10000,"skills":256,"queued":100000,"decisions":..,"decisions_per_sec":..,
//!  "p50_ns":..,"p99_ns":..,"baseline_decisions_per_sec":..,"speedup":..,"violations":..}
//! ```
//!
//! Options: `--events N` (measured events, default 200000), `--scenario steady|task_surplus|
//! agent_surplus|burst_drain|churn`, `--seed N`, `--baseline-secs S` (time budget of the naive
//! router's measured phase, default 3), `--no-baseline`, `--check-sample N` (order/agent-choice
//! checks on every N-th decision, default 100), `--no-check`, `--small` (a tiny run for CI).
//! Details (classes, fairness, truncation) go to stderr.

use std::time::Duration;

use cs_routing::checker::Checked;
use cs_routing::workload::{self, Report, Scenario, Workload};
use cs_routing::{Checker, NaiveRouter, RoutingPolicy, SkillRouter};

struct Args {
    w: Workload,
    baseline: Option<Duration>,
    check_sample: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut w = Workload {
        agents: 10_000,
        skills: 256,
        queued: 100_000,
        events: 200_000,
        scenario: Scenario::Steady,
        seed: 42,
    };
    let mut baseline = Some(Duration::from_secs(3));
    let mut check_sample = Some(100);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{a}: {e}"));
        match a.as_str() {
            "--agents" => w.agents = num(value()?)? as usize,
            "--skills" => w.skills = num(value()?)? as usize,
            "--queued" => w.queued = num(value()?)? as usize,
            "--events" => w.events = num(value()?)? as usize,
            "--seed" => w.seed = num(value()?)?,
            "--scenario" => {
                let v = value()?;
                w.scenario = Scenario::ALL
                    .into_iter()
                    .find(|s| s.name() == v)
                    .ok_or_else(|| format!("unknown scenario {v}"))?;
            }
            "--baseline-secs" => baseline = Some(Duration::from_secs(num(value()?)?)),
            "--no-baseline" => baseline = None,
            "--check-sample" => check_sample = Some(num(value()?)?),
            "--no-check" => check_sample = None,
            "--small" => {
                w.agents = 100;
                w.skills = 16;
                w.queued = 1_000;
                w.events = 2_000;
                baseline = Some(Duration::from_millis(200));
                check_sample = Some(1);
            }
            // `cargo test --examples`/`--benches` style flags.
            "--bench" | "--test" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        w,
        baseline,
        check_sample,
    })
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("routing_bench: {e}");
            std::process::exit(2);
        }
    };
    let w = args.w;
    let policy = RoutingPolicy::default();

    let mut fast = SkillRouter::new(policy.clone());
    let mut report =
        workload::run(&mut fast, w, None).expect("the fast router accepts the workload");
    eprintln!(
        "fast: {} events, {} decisions in {:?} of router calls ({:.0} events/s; calls without a \
         decision count in decisions_per_sec), {:.0} decisions per CPU second of the whole loop \
         (event generation included), {} routing classes",
        report.events,
        report.decisions,
        report.elapsed,
        report.events as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.decisions_per_cpu_sec().unwrap_or(0.0),
        fast.classes()
    );

    let baseline = args.baseline.map(|budget| {
        let mut naive = NaiveRouter::new(policy.clone());
        let r = workload::run(&mut naive, w, Some(budget)).expect("the naive router accepts it");
        eprintln!(
            "naive: {} events, {} decisions in {:?} ({:.0} decisions per CPU second){}",
            r.events,
            r.decisions,
            r.elapsed,
            r.decisions_per_cpu_sec().unwrap_or(0.0),
            if r.truncated {
                " (time budget reached: rate over this prefix of the same stream)"
            } else {
                ""
            }
        );
        r
    });

    let violations = args.check_sample.map(|n| {
        let checker = Checker::new(policy.clone()).with_sample(n);
        let mut checked = Checked::new(SkillRouter::new(policy.clone()), checker);
        workload::run(&mut checked, w, None).expect("the checked router accepts it");
        checked.checker.check_idle();
        for v in checked.checker.violations().iter().take(5) {
            eprintln!("violation: {v}");
        }
        eprintln!(
            "checker: {} decisions, order/agent-choice checked on every {n}th, Jain's index over \
             identical agents {:.4}",
            checked.checker.decisions(),
            checked.checker.fairness()
        );
        checked.checker.violations().len()
    });

    print_line(&w, &mut report, baseline.as_ref(), violations);
}

fn print_line(
    w: &Workload,
    report: &mut Report,
    baseline: Option<&Report>,
    violations: Option<usize>,
) {
    let rate = report.decisions_per_sec();
    let base = baseline.map_or(0.0, Report::decisions_per_sec);
    let speedup = if base > 0.0 { rate / base } else { 0.0 };
    let p50 = report.percentile_ns(0.50);
    let p99 = report.percentile_ns(0.99);
    println!(
        "{{\"agents\":{},\"skills\":{},\"queued\":{},\"decisions\":{},\"decisions_per_sec\":{:.0},\
         \"p50_ns\":{},\"p99_ns\":{},\"baseline_decisions_per_sec\":{:.0},\"speedup\":{:.1},\
         \"violations\":{}}}",
        w.agents,
        w.skills,
        w.queued,
        report.decisions,
        rate,
        p50,
        p99,
        base,
        speedup,
        violations.map_or_else(|| "null".to_string(), |v| v.to_string()),
    );
}
