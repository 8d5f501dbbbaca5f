//! Measuring a classifier on a labelled test set.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::classifier::{Example, IntentClassifier, OUT_OF_SCOPE};

/// Quality and speed of a classifier on a test set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Test examples.
    pub examples: usize,
    /// Share of the in-scope lines whose top label is right (0-1), whatever the threshold
    /// (lines labelled [`OUT_OF_SCOPE`] are left out).
    pub accuracy: f64,
    /// Unweighted mean of the per-label F1 over the labels of the in-scope test lines and the
    /// predictions for them.
    pub macro_f1: f64,
    /// When the test set has out-of-scope lines: share of the in-scope lines answered right
    /// (a line wrongly flagged out of scope counts as wrong).
    pub in_scope_accuracy: Option<f64>,
    /// When the test set has out-of-scope lines: share of them flagged out of scope.
    pub oos_recall: Option<f64>,
    /// Median prediction time, microseconds.
    pub p50_us: f64,
    /// 99th-percentile prediction time, microseconds.
    pub p99_us: f64,
}

/// Predicts every test example (timing each call) and scores the predictions. A test label the
/// classifier never saw counts as an error.
pub fn evaluate(classifier: &IntentClassifier, test: &[Example]) -> Evaluation {
    // Warm up caches (and the jieba dictionary) before timing.
    for e in test.iter().take(50) {
        let _ = classifier.predict(&e.text);
    }
    let mut times = Vec::with_capacity(test.len());
    let mut pairs = Vec::with_capacity(test.len());
    let (mut oos, mut oos_caught, mut kept_right) = (0usize, 0usize, 0usize);
    for e in test {
        let start = Instant::now();
        let p = classifier.predict(&e.text);
        times.push(start.elapsed().as_secs_f64() * 1e6);
        if e.label == OUT_OF_SCOPE {
            oos += 1;
            oos_caught += usize::from(!p.in_scope);
            continue;
        }
        kept_right += usize::from(p.in_scope && p.label == e.label);
        pairs.push((e.label.as_str(), p.label));
    }
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    // Per label: (true positives, predicted count, actual count).
    let mut stats: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    for (t, p) in &pairs {
        stats.entry(t).or_default().2 += 1;
        stats.entry(p.as_str()).or_default().1 += 1;
        if t == p {
            stats.entry(t).or_default().0 += 1;
        }
    }
    let f1_sum: f64 = stats
        .values()
        .map(|&(tp, pred, actual)| {
            if tp == 0 {
                0.0
            } else {
                2.0 * tp as f64 / (pred + actual) as f64
            }
        })
        .sum();
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        if times.is_empty() {
            0.0
        } else {
            times[((times.len() - 1) as f64 * q).round() as usize]
        }
    };
    Evaluation {
        examples: test.len(),
        accuracy: if pairs.is_empty() {
            0.0
        } else {
            correct as f64 / pairs.len() as f64
        },
        in_scope_accuracy: (oos > 0).then(|| kept_right as f64 / pairs.len().max(1) as f64),
        oos_recall: (oos > 0).then(|| oos_caught as f64 / oos as f64),
        macro_f1: if stats.is_empty() {
            0.0
        } else {
            f1_sum / stats.len() as f64
        },
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    }
}
