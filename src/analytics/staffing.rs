//! Staffing: how many agents an interval needs to meet a service level, by Erlang C (callers
//! wait as long as it takes) or Erlang A (callers give up after an exponential patience).
//!
//! Inputs per interval: arrivals, the interval's length, the average handle time (AHT), the
//! target answer time T and the target service level (the share of contacts answered within T),
//! optionally a shrinkage (the share of paid time agents are not available: breaks, training,
//! absence) and, for Erlang A, the customers' average patience.
//!
//! - Traffic `A = arrivals / interval * AHT` (Erlangs).
//! - Erlang C, `N > A` agents: the probability of waiting `C(N, A)` from the Erlang B recursion
//!   (`B(0) = 1`, `B(n) = A B(n-1) / (n + A B(n-1))`, `C = N B / (N - A (1 - B))`); average speed
//!   of answer `ASA = C * AHT / (N - A)`; service level `1 - C e^{-(N - A) T / AHT}`; occupancy
//!   `A / N`.
//! - Erlang A (M/M/N+M, Palm's model; Garnett, Mandelbaum and Reiman, "Designing a call center
//!   with impatient customers", 2002): the birth-death chain with service rate `min(n, N) / AHT`
//!   and abandonment rate `(n - N)+ / patience`, solved numerically (truncated where the tail is
//!   below 1e-12). Probability of waiting = the share of arrivals finding all agents busy;
//!   abandonment `= E[queue] / (patience * rate)`; ASA = mean wait over all arrivals
//!   (`E[queue] / rate`, Little's law); the service level counts a contact answered within T
//!   over all contacts offered (abandoned ones count against it), computed from the phases a
//!   waiting customer goes through; occupancy = answered traffic / N.
//! - Agents to schedule = `ceil(N / (1 - shrinkage))`.
//! - Chat, an approximation: an agent who holds `c` chats at once is counted as `c` servers, with
//!   the AHT measured at that concurrency (chats take longer when they share an agent's
//!   attention), so the agents needed are `ceil(servers / c)`. Erlang's model assumes servers
//!   that do not slow each other down; with that AHT the estimate is usable, not exact.
//!
//! ```
//! use omnidesk::analytics::staffing::{Staffing, StaffingInput};
//!
//! // 100 calls in half an hour, 3 minutes each, 80% answered within 20 s, 30% shrinkage.
//! let input = StaffingInput::new(100.0, 1800.0, 180.0, 0.8, 20.0).with_shrinkage(0.3);
//! let plan = Staffing::erlang_c(&input).unwrap();
//! assert_eq!(plan.servers, 14);
//! assert_eq!(plan.agents, 20);
//! assert!((plan.service_level - 0.888).abs() < 0.001);
//! ```

use serde::Serialize;

use crate::error::{Error, Result};

/// What one interval must achieve, and with what.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StaffingInput {
    /// Contacts arriving in the interval.
    pub arrivals: f64,
    /// The interval's length, seconds.
    pub interval_secs: f64,
    /// Average handle time, seconds.
    pub aht_secs: f64,
    /// The share of contacts to answer within `within_secs` (0 to 1).
    pub target: f64,
    /// The target answer time, seconds.
    pub within_secs: f64,
    /// The share of paid time agents are unavailable (0 to 1, default 0).
    pub shrinkage: f64,
    /// Chats an agent holds at once (default 1: calls).
    pub concurrency: u32,
    /// Customers' average patience before they give up, seconds (Erlang A only).
    pub patience_secs: Option<f64>,
}

impl StaffingInput {
    /// An interval with no shrinkage, one contact per agent and no abandonment.
    pub fn new(
        arrivals: f64,
        interval_secs: f64,
        aht_secs: f64,
        target: f64,
        within_secs: f64,
    ) -> Self {
        Self {
            arrivals,
            interval_secs,
            aht_secs,
            target,
            within_secs,
            shrinkage: 0.0,
            concurrency: 1,
            patience_secs: None,
        }
    }

    /// The share of paid time agents are unavailable.
    pub fn with_shrinkage(mut self, shrinkage: f64) -> Self {
        self.shrinkage = shrinkage;
        self
    }

    /// Chats an agent holds at once (see the module documentation for the approximation).
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Customers' average patience (Erlang A).
    pub fn with_patience(mut self, patience_secs: f64) -> Self {
        self.patience_secs = Some(patience_secs);
        self
    }

    /// Traffic in Erlangs.
    pub fn traffic(&self) -> f64 {
        self.arrivals / self.interval_secs * self.aht_secs
    }

    fn validate(&self) -> Result<()> {
        let ok = self.arrivals >= 0.0
            && self.interval_secs > 0.0
            && self.aht_secs > 0.0
            && (0.0..1.0).contains(&self.target)
            && self.within_secs >= 0.0
            && (0.0..1.0).contains(&self.shrinkage)
            && self.patience_secs.is_none_or(|p| p > 0.0)
            && [
                self.arrivals,
                self.interval_secs,
                self.aht_secs,
                self.within_secs,
            ]
            .iter()
            .all(|v| v.is_finite());
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "staffing needs arrivals >= 0, a positive interval and AHT, a target and a \
                 shrinkage from 0 to below 1, a target time >= 0 and a positive patience",
            ))
        }
    }
}

/// The staffing of one interval and what it achieves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Staffing {
    /// Agents to schedule (after shrinkage and concurrency).
    pub agents: u32,
    /// Agents needed on the floor (servers / concurrency, rounded up).
    pub on_floor: u32,
    /// Servers in the queueing model (agents on the floor times concurrency).
    pub servers: u32,
    /// The share answered within the target time.
    pub service_level: f64,
    /// The probability that a contact waits at all.
    pub p_wait: f64,
    /// Average speed of answer, seconds.
    pub asa_secs: f64,
    /// The share of servers' time spent handling contacts.
    pub occupancy: f64,
    /// The share that gives up (Erlang A; 0 for Erlang C).
    pub p_abandon: f64,
    /// Traffic, Erlangs.
    pub traffic: f64,
}

/// The most servers an interval is solved for.
const MAX_SERVERS: u32 = 100_000;

/// Erlang C for `n` servers and `a` Erlangs (`n > a`): the probability of waiting.
pub fn erlang_c(n: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    if f64::from(n) <= a {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (f64::from(k) + a * b);
    }
    let n = f64::from(n);
    n * b / (n - a * (1.0 - b))
}

/// The Erlang A results for `n` servers.
#[derive(Debug, Clone, Copy)]
struct ErlangA {
    p_wait: f64,
    p_abandon: f64,
    asa: f64,
    service_level: f64,
}

fn erlang_a(n: u32, input: &StaffingInput, patience: f64) -> ErlangA {
    let lambda = input.arrivals / input.interval_secs;
    let mu = 1.0 / input.aht_secs;
    let theta = 1.0 / patience;
    let nf = f64::from(n);
    // Stationary distribution in logs, up to where the tail vanishes.
    let mut logs: Vec<f64> = vec![0.0];
    let mut max = 0.0f64;
    let mut k = 0usize;
    loop {
        k += 1;
        let death = if k <= n as usize {
            k as f64 * mu
        } else {
            nf * mu + (k - n as usize) as f64 * theta
        };
        let next = logs[k - 1] + (lambda / death).ln();
        logs.push(next);
        max = max.max(next);
        if (k > n as usize && next - max < (1e-14f64).ln()) || k > n as usize + 1_000_000 {
            break;
        }
    }
    let weights: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let pi: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let n = n as usize;
    let p_wait: f64 = pi[n.min(pi.len())..].iter().sum();
    let queue: f64 = pi
        .iter()
        .enumerate()
        .skip(n + 1)
        .map(|(i, p)| (i - n) as f64 * p)
        .sum();
    let (p_abandon, asa) = if lambda > 0.0 {
        (theta * queue / lambda, queue / lambda)
    } else {
        (0.0, 0.0)
    };
    // A customer who finds i ahead moves up at rate N mu + i theta and gives up at rate theta;
    // the share reaching an agent within T, by the forward equations (RK4).
    let ahead: Vec<f64> = pi[n.min(pi.len())..].to_vec();
    let served_at_once: f64 = pi[..n.min(pi.len())].iter().sum();
    let t = input.within_secs;
    let served_later = if t > 0.0 && !ahead.is_empty() {
        let top = nf * mu + (ahead.len() as f64 + 1.0) * theta;
        let steps = ((t * top / 0.25).ceil() as usize).clamp(50, 400_000);
        let h = t / steps as f64;
        let deriv = |p: &[f64], out: &mut Vec<f64>| -> f64 {
            out.clear();
            for i in 0..p.len() {
                let up = nf * mu + i as f64 * theta;
                let from_behind = if i + 1 < p.len() {
                    (nf * mu + (i + 1) as f64 * theta) * p[i + 1]
                } else {
                    0.0
                };
                out.push(-(up + theta) * p[i] + from_behind);
            }
            nf * mu * p[0]
        };
        let mut p = ahead;
        let mut served = 0.0;
        let (mut k1, mut k2, mut k3, mut k4) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut tmp = vec![0.0; p.len()];
        for _ in 0..steps {
            let s1 = deriv(&p, &mut k1);
            for i in 0..p.len() {
                tmp[i] = p[i] + 0.5 * h * k1[i];
            }
            let s2 = deriv(&tmp, &mut k2);
            for i in 0..p.len() {
                tmp[i] = p[i] + 0.5 * h * k2[i];
            }
            let s3 = deriv(&tmp, &mut k3);
            for i in 0..p.len() {
                tmp[i] = p[i] + h * k3[i];
            }
            let s4 = deriv(&tmp, &mut k4);
            for i in 0..p.len() {
                p[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
            served += h / 6.0 * (s1 + 2.0 * s2 + 2.0 * s3 + s4);
        }
        served
    } else {
        0.0
    };
    ErlangA {
        p_wait,
        p_abandon,
        asa,
        service_level: (served_at_once + served_later).clamp(0.0, 1.0),
    }
}

impl Staffing {
    /// What `servers` servers achieve by Erlang C.
    pub fn erlang_c_for(input: &StaffingInput, servers: u32) -> Staffing {
        let a = input.traffic();
        let c = erlang_c(servers, a);
        let n = f64::from(servers);
        let stable = n > a;
        let (asa, sl) = if a <= 0.0 {
            (0.0, 1.0)
        } else if stable {
            (
                c * input.aht_secs / (n - a),
                (1.0 - c * (-(n - a) * input.within_secs / input.aht_secs).exp()).clamp(0.0, 1.0),
            )
        } else {
            (f64::INFINITY, 0.0)
        };
        Self::finish(input, servers, sl, c, asa, 0.0)
    }

    /// What `servers` servers achieve by Erlang A (`input.patience_secs` must be set).
    pub fn erlang_a_for(input: &StaffingInput, servers: u32) -> Staffing {
        let Some(patience) = input.patience_secs else {
            return Self::erlang_c_for(input, servers);
        };
        let r = erlang_a(servers, input, patience);
        Self::finish(
            input,
            servers,
            r.service_level,
            r.p_wait,
            r.asa,
            r.p_abandon,
        )
    }

    fn finish(
        input: &StaffingInput,
        servers: u32,
        service_level: f64,
        p_wait: f64,
        asa_secs: f64,
        p_abandon: f64,
    ) -> Staffing {
        let a = input.traffic();
        let on_floor = servers.div_ceil(input.concurrency.max(1));
        let agents = (f64::from(on_floor) / (1.0 - input.shrinkage) - 1e-9).ceil() as u32;
        Staffing {
            agents,
            on_floor,
            servers,
            service_level,
            p_wait,
            asa_secs,
            occupancy: if servers == 0 {
                0.0
            } else {
                (a * (1.0 - p_abandon) / f64::from(servers)).min(1.0)
            },
            p_abandon,
            traffic: a,
        }
    }

    /// The fewest servers meeting the target by Erlang C, and what they achieve.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for inputs out of range, or a load no staffing up to 100,000
    /// servers meets.
    pub fn erlang_c(input: &StaffingInput) -> Result<Staffing> {
        input.validate()?;
        let a = input.traffic();
        let mut n = (a.floor() as u32).saturating_add(1).max(1);
        if a <= 0.0 {
            return Ok(Self::erlang_c_for(input, 0));
        }
        while n <= MAX_SERVERS {
            let s = Self::erlang_c_for(input, n);
            if s.service_level >= input.target {
                return Ok(s);
            }
            n += 1;
        }
        Err(Error::invalid("the load needs more than 100,000 servers"))
    }

    /// The fewest servers meeting the target by Erlang A (by Erlang C without a patience).
    ///
    /// # Errors
    /// As [`Staffing::erlang_c`].
    pub fn erlang_a(input: &StaffingInput) -> Result<Staffing> {
        input.validate()?;
        if input.patience_secs.is_none() {
            return Self::erlang_c(input);
        }
        if input.traffic() <= 0.0 {
            return Ok(Self::erlang_a_for(input, 0));
        }
        // With abandonment fewer servers than the traffic can meet the target: start low.
        let mut n = ((input.traffic() * 0.5).floor() as u32).max(1);
        while n <= MAX_SERVERS {
            let s = Self::erlang_a_for(input, n);
            if s.service_level >= input.target {
                return Ok(s);
            }
            n += 1;
        }
        Err(Error::invalid("the load needs more than 100,000 servers"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_a_without_impatience_is_erlang_c() {
        let input = StaffingInput::new(100.0, 1800.0, 180.0, 0.8, 20.0).with_patience(1e9);
        let a = Staffing::erlang_a_for(&input, 14);
        let c = Staffing::erlang_c_for(&input, 14);
        assert!((a.p_wait - c.p_wait).abs() < 1e-4, "{a:?} {c:?}");
        assert!(
            (a.service_level - c.service_level).abs() < 1e-3,
            "{a:?} {c:?}"
        );
        assert!((a.asa_secs - c.asa_secs).abs() < 0.05, "{a:?} {c:?}");
    }
}
