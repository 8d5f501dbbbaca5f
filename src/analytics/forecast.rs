//! A forecast of arrivals per half-hour from history: the same weekday and half-hour of the
//! last weeks (recent weeks weigh more), scaled by the trend of the last week against the one
//! before.
//!
//! For a slot `s`, with `x(s - k weeks)` the arrivals `k` weeks before (k = 1..=W, only weeks
//! with history count):
//!
//! - base `= sum (W - k + 1) x(s - k weeks) / sum (W - k + 1)`
//! - trend `= (arrivals of the last 7 days + 1) / (arrivals of the 7 days before + 1)`, clamped to
//!   0.5..=2 (1 without two weeks of history)
//! - forecast `= base * trend`
//!
//! ```
//! use std::collections::BTreeMap;
//! use chrono::{Duration, TimeZone, Utc};
//! use omnidesk::analytics::forecast::forecast;
//!
//! let monday_9 = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
//! let mut history = BTreeMap::new();
//! for week in 1..=4 {
//!     history.insert(monday_9 - Duration::weeks(week), 40.0);
//! }
//! let now = monday_9 - Duration::hours(1);
//! assert_eq!(forecast(&history, now, &[monday_9], 4), vec![40.0]);
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

/// Forecast arrivals for each slot start in `slots` from `history` (arrivals per half-hour slot
/// start; missing slots are zero once history has begun), looking `weeks` weeks back; the trend
/// is measured over the two weeks before `now`.
pub fn forecast(
    history: &BTreeMap<DateTime<Utc>, f64>,
    now: DateTime<Utc>,
    slots: &[DateTime<Utc>],
    weeks: u32,
) -> Vec<f64> {
    let Some(first) = history.keys().next().copied() else {
        return vec![0.0; slots.len()];
    };
    let sum = |from: DateTime<Utc>, to: DateTime<Utc>| -> f64 {
        history.range(from..to).map(|(_, v)| v).sum()
    };
    let week = Duration::weeks(1);
    let trend = if first <= now - week * 2 {
        let last = sum(now - week, now);
        let before = sum(now - week * 2, now - week);
        ((last + 1.0) / (before + 1.0)).clamp(0.5, 2.0)
    } else {
        1.0
    };
    slots
        .iter()
        .map(|slot| {
            let mut weighted = 0.0;
            let mut weights = 0.0;
            for k in 1..=weeks.max(1) {
                let past = *slot - week * k as i32;
                if past < first {
                    continue;
                }
                let w = f64::from(weeks.max(1) - k + 1);
                weighted += w * history.get(&past).copied().unwrap_or(0.0);
                weights += w;
            }
            if weights == 0.0 {
                0.0
            } else {
                weighted / weights * trend
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weekday_profile_and_trend() {
        // Four weeks of Mondays at 10:00: 10, 20, 30, 40 arrivals (oldest first), and the last
        // week busier than the one before by half.
        let slot = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        let mut h = BTreeMap::new();
        for (k, v) in [(4, 10.0), (3, 20.0), (2, 30.0), (1, 40.0)] {
            h.insert(slot - Duration::weeks(k), v);
        }
        let now = slot - Duration::hours(2);
        // Weights 4,3,2,1 for 1..4 weeks back: (4*40 + 3*30 + 2*20 + 1*10) / 10 = 30.
        // Trend: last 7 days hold 40, the 7 before hold 30: (41 / 31).
        let f = forecast(&h, now, &[slot], 4);
        assert!((f[0] - 30.0 * 41.0 / 31.0).abs() < 1e-9, "{f:?}");
        // No history at all: zero.
        assert_eq!(forecast(&BTreeMap::new(), now, &[slot], 4), vec![0.0]);
    }
}
