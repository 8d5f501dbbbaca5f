//! Staffing against published worked examples of Erlang C, and Erlang A against a simulation
//! of the queue it models.

use omnidesk::analytics::staffing::{Staffing, StaffingInput, erlang_c};

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

/// Call Centre Helper, "Erlang C Formula - Made Simple With an Easy Worked Example"
/// (callcentrehelper.com): 100 calls in 30 minutes, 180 s average handle time, 80% of calls
/// to be answered within 20 s, 30% shrinkage. The article works traffic A = 10 Erlangs, tries
/// 11 agents (probability of waiting 68.21%, service level 39.0%) and raises the count until the
/// target is met: 14 agents (service level 88.8%, occupancy 71.4%), 20 once shrinkage is added.
#[test]
fn call_centre_helper_worked_example() {
    let input = StaffingInput::new(100.0, 1800.0, 180.0, 0.8, 20.0).with_shrinkage(0.3);
    assert!(close(input.traffic(), 10.0, 1e-12));
    let eleven = Staffing::erlang_c_for(&input, 11);
    assert!(close(eleven.p_wait, 0.6821, 0.00005), "{eleven:?}");
    assert!(close(eleven.service_level, 0.390, 0.0005), "{eleven:?}");
    let plan = Staffing::erlang_c(&input).unwrap();
    assert_eq!(plan.servers, 14);
    assert!(close(plan.service_level, 0.888, 0.0005), "{plan:?}");
    assert!(close(plan.occupancy, 0.714, 0.0005), "{plan:?}");
    assert_eq!(plan.agents, 20, "14 / (1 - 0.3)");
    // 13 agents fall short (79.6%).
    assert!(Staffing::erlang_c_for(&input, 13).service_level < 0.8);
}

/// Westbay Engineers (Mitan Ltd.), "The Erlang-C formula" step-by-step example: 360 calls per
/// half hour, 4 minutes each, 55 agents, a 15 s target answer time. Traffic 48 Erlangs,
/// occupancy 87.3%, probability of waiting 0.2387, average speed of answer 8.18 s, 84.6% of
/// calls answered within 15 s.
#[test]
fn westbay_erlang_c_example() {
    let input = StaffingInput::new(360.0, 1800.0, 240.0, 0.8, 15.0);
    assert!(close(input.traffic(), 48.0, 1e-12));
    let s = Staffing::erlang_c_for(&input, 55);
    assert!(close(s.occupancy, 0.873, 0.0005), "{s:?}");
    assert!(close(s.p_wait, 0.2387, 0.00005), "{s:?}");
    assert!(close(s.asa_secs, 8.18, 0.005), "{s:?}");
    assert!(close(s.service_level, 0.846, 0.0005), "{s:?}");
    // Erlang B's recursion gives the same as the textbook sum for a small case: A = 2, N = 3:
    // C = (8/6 * 3) / (1 + 2 + 2 + 8/6 * 3) = 4 / 9.
    assert!(close(erlang_c(3, 2.0), 4.0 / 9.0, 1e-12));
}

/// Chat: three chats at once, the AHT measured at that concurrency; the servers Erlang C wants
/// are shared three to an agent (the documented approximation).
#[test]
fn chat_concurrency_divides_servers() {
    let calls = StaffingInput::new(100.0, 1800.0, 180.0, 0.8, 20.0);
    let chats = calls.with_concurrency(3);
    let a = Staffing::erlang_c(&calls).unwrap();
    let b = Staffing::erlang_c(&chats).unwrap();
    assert_eq!(a.servers, b.servers);
    assert_eq!(b.on_floor, 5, "ceil(14 / 3)");
    assert!(Staffing::erlang_c(&StaffingInput::new(1.0, 0.0, 1.0, 0.8, 1.0)).is_err());
}

/// xorshift64*: a small seeded generator, so the simulation is the same every run.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exp(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }
}

/// Erlang A (M/M/N+M) against a simulation of that queue: Poisson arrivals, exponential
/// service and patience, first come first served, callers leave when their patience runs out.
#[test]
fn erlang_a_matches_a_simulation() {
    let (calls, interval, aht, patience, servers, within) =
        (100.0, 1800.0, 180.0, 120.0, 11u32, 20.0);
    let input = StaffingInput::new(calls, interval, aht, 0.8, within).with_patience(patience);
    let model = Staffing::erlang_a_for(&input, servers);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let lambda = calls / interval;
    let mut free = vec![0.0f64; servers as usize];
    let (mut t, n) = (0.0, 400_000usize);
    let (mut waited, mut abandoned, mut in_target, mut total_wait) = (0usize, 0usize, 0usize, 0.0);
    for _ in 0..n {
        t += rng.exp(lambda);
        let patience_draw = rng.exp(1.0 / patience);
        let service = rng.exp(1.0 / aht);
        let (i, earliest) = free
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let start = earliest.max(t);
        let wait = start - t;
        if wait > 0.0 {
            waited += 1;
        }
        if wait > patience_draw {
            abandoned += 1;
            total_wait += patience_draw;
            continue;
        }
        total_wait += wait;
        if wait <= within {
            in_target += 1;
        }
        free[i] = start + service;
    }
    let n = n as f64;
    let (p_wait, p_abandon, sl, asa) = (
        waited as f64 / n,
        abandoned as f64 / n,
        in_target as f64 / n,
        total_wait / n,
    );
    assert!(close(model.p_wait, p_wait, 0.01), "{model:?} vs {p_wait}");
    assert!(
        close(model.p_abandon, p_abandon, 0.005),
        "{model:?} vs {p_abandon}"
    );
    assert!(close(model.service_level, sl, 0.01), "{model:?} vs {sl}");
    assert!(close(model.asa_secs, asa, 0.5), "{model:?} vs {asa}");
    // Impatient callers leave room: Erlang A needs no more agents than Erlang C.
    let a = Staffing::erlang_a(&input).unwrap();
    let c = Staffing::erlang_c(&input).unwrap();
    assert!(a.servers <= c.servers, "{a:?} {c:?}");
}
