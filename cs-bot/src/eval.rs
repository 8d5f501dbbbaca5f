//! Measuring a classifier on a labelled test set.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::classifier::{Example, IntentClassifier};

/// Quality and speed of a classifier on a test set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Test examples.
    pub examples: usize,
    /// Share predicted correctly (0-1).
    pub accuracy: f64,
    /// Unweighted mean of the per-label F1 over the labels of the test set and the predictions.
    pub macro_f1: f64,
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
    for e in test {
        let start = Instant::now();
        let p = classifier.predict(&e.text);
        times.push(start.elapsed().as_secs_f64() * 1e6);
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
        accuracy: if test.is_empty() {
            0.0
        } else {
            correct as f64 / test.len() as f64
        },
        macro_f1: if stats.is_empty() {
            0.0
        } else {
            f1_sum / stats.len() as f64
        },
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    }
}
