//! Linear models over sparse rows: a one-vs-rest linear SVM trained by dual coordinate descent
//! (the liblinear algorithm for the L2-regularised squared-hinge loss), and a multinomial
//! logistic regression trained by SGD. Both produce a [`LinearModel`] whose scores become
//! probabilities through a softmax with a fitted temperature.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::features::Sparse;

/// Weights stored feature-major (`w[f * classes + k]`), the last row being the bias, so scoring a
/// sparse row touches one contiguous slice per non-zero feature.
#[derive(Debug, Clone)]
pub(crate) struct LinearModel {
    classes: usize,
    dim: usize,
    w: Vec<f32>,
    /// Multiplies the scores before the softmax (1 / temperature).
    pub(crate) scale: f32,
}

impl LinearModel {
    /// A model from its parts (as [`LinearModel::weights`] returns them).
    pub(crate) fn from_parts(classes: usize, dim: usize, w: Vec<f32>, scale: f32) -> Option<Self> {
        (w.len() == (dim + 1) * classes).then_some(Self {
            classes,
            dim,
            w,
            scale,
        })
    }

    /// The weights, feature-major, bias row last.
    pub(crate) fn weights(&self) -> &[f32] {
        &self.w
    }

    /// Raw scores of one row, written to `out` (length = classes).
    pub(crate) fn scores(&self, x: &Sparse, out: &mut [f32]) {
        let k = self.classes;
        out.copy_from_slice(&self.w[self.dim * k..(self.dim + 1) * k]);
        for &(f, v) in x {
            let row = &self.w[f as usize * k..(f as usize + 1) * k];
            for (o, w) in out.iter_mut().zip(row) {
                *o += v * w;
            }
        }
    }

    /// Calibrated probabilities of one row, written to `out`.
    pub(crate) fn probabilities(&self, x: &Sparse, out: &mut [f32]) {
        self.scores(x, out);
        softmax(out, self.scale);
    }
}

/// In-place softmax of `s * scale`.
pub(crate) fn softmax(v: &mut [f32], scale: f32) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = ((*x - max) * scale).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// A small deterministic PRNG (splitmix64) for shuffling.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

fn dot(w: &[f32], x: &Sparse, bias: f32) -> f32 {
    x.iter().map(|&(f, v)| w[f as usize] * v).sum::<f32>() + bias
}

/// The loss of the linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Loss {
    /// Squared hinge (L2-loss SVM): smooth, punishes large margins violations quadratically.
    SquaredHinge,
    /// Hinge (L1-loss SVM): a mislabelled line costs linearly, so it pulls less.
    Hinge,
}

/// Trains a one-vs-rest linear SVM (L2 penalty `1/2 |w|^2`, loss weighted by `c`), one binary
/// problem per class, spread over the available cores. `progress` is called with the number of
/// classes finished so far. `warm` holds each class's dual variables from an earlier run on the
/// same rows (with a smaller or equal `c`): training starts from them and updates them.
pub(crate) fn train_svm(
    rows: &[Sparse],
    labels: &[u32],
    classes: usize,
    dim: usize,
    (c, loss): (f32, Loss),
    warm: Option<&mut Vec<Vec<f32>>>,
    progress: &(dyn Fn(usize) + Sync),
) -> LinearModel {
    let next = AtomicUsize::new(0);
    let done = std::sync::Mutex::new(0usize);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, classes.max(1));
    let mut alphas: Vec<Vec<f32>> = match warm.as_deref() {
        Some(a) if a.len() == classes => a.clone(),
        _ => vec![Vec::new(); classes],
    };
    let slots: Vec<std::sync::Mutex<Vec<f32>>> = alphas
        .iter_mut()
        .map(|a| std::sync::Mutex::new(std::mem::take(a)))
        .collect();
    let mut per_class: Vec<(usize, Vec<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= classes {
                            break;
                        }
                        let mut alpha = slots[k].lock().unwrap_or_else(|e| e.into_inner());
                        out.push((
                            k,
                            binary_svm(rows, labels, k as u32, dim, c, loss, &mut alpha),
                        ));
                        drop(alpha);
                        // Report under the lock so the counts arrive in order.
                        let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
                        *d += 1;
                        progress(*d);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if let Some(w) = warm {
        *w = slots
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
    }
    per_class.sort_by_key(|(k, _)| *k);
    let mut w = vec![0.0f32; (dim + 1) * classes];
    for (k, wk) in per_class {
        for (f, v) in wk.into_iter().enumerate() {
            w[f * classes + k] = v;
        }
    }
    LinearModel {
        classes,
        dim,
        w,
        scale: 1.0,
    }
}

/// Dual coordinate descent with shrinking for one class against the rest (Hsieh et al. 2008,
/// the liblinear solver). Returns `dim + 1` weights, the last one the bias (a constant feature
/// of value 1). `alpha` is the starting point (empty: zeros) and receives the solution.
fn binary_svm(
    rows: &[Sparse],
    labels: &[u32],
    class: u32,
    dim: usize,
    c: f32,
    loss: Loss,
    alpha: &mut Vec<f32>,
) -> Vec<f32> {
    const EPS: f32 = 0.1;
    const MAX_ITER: usize = 200;
    let n = rows.len();
    let (diag, upper) = match loss {
        Loss::SquaredHinge => (0.5 / c, f32::INFINITY),
        Loss::Hinge => (0.0, c),
    };
    let mut w = vec![0.0f32; dim + 1];
    let y: Vec<f32> = labels
        .iter()
        .map(|&l| if l == class { 1.0 } else { -1.0 })
        .collect();
    if alpha.len() == n {
        for ((a, x), yi) in alpha.iter_mut().zip(rows).zip(&y) {
            *a = a.min(upper);
            if *a != 0.0 {
                let d = *a * yi;
                for &(f, v) in x {
                    w[f as usize] += d * v;
                }
                w[dim] += d;
            }
        }
    } else {
        alpha.clear();
        alpha.resize(n, 0.0);
    }
    let qd: Vec<f32> = rows
        .iter()
        .map(|x| diag + 1.0 + x.iter().map(|(_, v)| v * v).sum::<f32>())
        .collect();
    let mut active: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(0x5eed ^ u64::from(class));
    let mut pg_max_old = f32::INFINITY;
    let mut pg_min_old = f32::NEG_INFINITY;
    for _ in 0..MAX_ITER {
        let mut pg_max = f32::NEG_INFINITY;
        let mut pg_min = f32::INFINITY;
        rng.shuffle(&mut active);
        let mut s = 0;
        while s < active.len() {
            let i = active[s];
            let x = &rows[i];
            let g = y[i] * dot(&w, x, w[dim]) - 1.0 + diag * alpha[i];
            let pg = if alpha[i] == 0.0 {
                if g > pg_max_old {
                    active.swap_remove(s);
                    continue;
                }
                g.min(0.0)
            } else if alpha[i] >= upper {
                if g < pg_min_old {
                    active.swap_remove(s);
                    continue;
                }
                g.max(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).clamp(0.0, upper);
                let d = (alpha[i] - old) * y[i];
                for &(f, v) in x {
                    w[f as usize] += d * v;
                }
                w[dim] += d;
            }
            s += 1;
        }
        if pg_max - pg_min <= EPS {
            if active.len() == n {
                break;
            }
            active = (0..n).collect();
            pg_max_old = f32::INFINITY;
            pg_min_old = f32::NEG_INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f32::INFINITY } else { pg_max };
        pg_min_old = if pg_min >= 0.0 {
            f32::NEG_INFINITY
        } else {
            pg_min
        };
    }
    w
}

/// Trains a multinomial logistic regression by SGD with an L2 penalty `lambda` (per example) and
/// a decaying step. `progress` is called after every epoch with the number of epochs done.
pub(crate) fn train_softmax(
    rows: &[Sparse],
    labels: &[u32],
    classes: usize,
    dim: usize,
    epochs: usize,
    lambda: f32,
    progress: &(dyn Fn(usize) + Sync),
) -> LinearModel {
    let k = classes;
    let mut w = vec![0.0f32; (dim + 1) * k];
    // The true weights are `scale * w`: shrinking for the L2 penalty is one multiplication.
    let mut scale = 1.0f32;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = Rng::new(0x10_6157);
    let mut p = vec![0.0f32; k];
    let mut t = 0usize;
    let lr0 = 0.5f32;
    for epoch in 0..epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let lr = lr0 / (1.0 + lr0 * lambda * t as f32).max(1.0);
            let lr = lr / (1.0 + epoch as f32 * 0.3);
            t += 1;
            let x = &rows[i];
            p.copy_from_slice(&w[dim * k..(dim + 1) * k]);
            for &(f, v) in x {
                for (o, wv) in p.iter_mut().zip(&w[f as usize * k..(f as usize + 1) * k]) {
                    *o += v * wv;
                }
            }
            softmax(&mut p, scale);
            p[labels[i] as usize] -= 1.0;
            scale *= 1.0 - lr * lambda;
            let step = lr / scale;
            for &(f, v) in x {
                let row = &mut w[f as usize * k..(f as usize + 1) * k];
                for (wv, g) in row.iter_mut().zip(&p) {
                    *wv -= step * v * g;
                }
            }
            for (wv, g) in w[dim * k..].iter_mut().zip(&p) {
                *wv -= step * g;
            }
            if scale < 1e-3 {
                w.iter_mut().for_each(|v| *v *= scale);
                scale = 1.0;
            }
        }
        progress(epoch + 1);
    }
    w.iter_mut().for_each(|v| *v *= scale);
    LinearModel {
        classes,
        dim,
        w,
        scale: 1.0,
    }
}

/// Finds the score multiplier that minimises the negative log-likelihood of `labels` under
/// `softmax(scores * a)` (temperature scaling), by golden-section search over `ln a`.
pub(crate) fn fit_scale(scores: &[Vec<f32>], labels: &[u32]) -> f32 {
    let nll = |ln_a: f32| -> f32 {
        let a = ln_a.exp();
        let mut buf = Vec::new();
        scores
            .iter()
            .zip(labels)
            .map(|(s, &y)| {
                buf.clear();
                buf.extend_from_slice(s);
                softmax(&mut buf, a);
                -(buf[y as usize].max(1e-12)).ln()
            })
            .sum()
    };
    let (mut lo, mut hi) = ((0.05f32).ln(), (200.0f32).ln());
    let phi = 0.618_034f32;
    let mut x1 = hi - phi * (hi - lo);
    let mut x2 = lo + phi * (hi - lo);
    let (mut f1, mut f2) = (nll(x1), nll(x2));
    for _ in 0..40 {
        if f1 < f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - phi * (hi - lo);
            f1 = nll(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + phi * (hi - lo);
            f2 = nll(x2);
        }
    }
    ((lo + hi) / 2.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> (Vec<Sparse>, Vec<u32>) {
        // Three classes, each with its own feature plus shared noise features.
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..60u32 {
            let k = i % 3;
            let noise = 3 + (i % 5);
            rows.push(vec![(k, 0.8), (noise, 0.6)]);
            labels.push(k);
        }
        (rows, labels)
    }

    #[test]
    fn both_trainers_separate_a_toy_problem() {
        let (rows, labels) = toy();
        let none = |_: usize| {};
        for model in [
            train_svm(&rows, &labels, 3, 8, (1.0, Loss::SquaredHinge), None, &none),
            train_svm(&rows, &labels, 3, 8, (1.0, Loss::Hinge), None, &none),
            train_softmax(&rows, &labels, 3, 8, 20, 1e-4, &none),
        ] {
            let mut out = vec![0.0; 3];
            for (x, &y) in rows.iter().zip(&labels) {
                model.probabilities(x, &mut out);
                let best = (0..3).max_by(|a, b| out[*a].total_cmp(&out[*b])).unwrap();
                assert_eq!(best as u32, y);
                assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn temperature_fit_sharpens_confident_correct_scores() {
        let scores = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 0.0]];
        let a = fit_scale(&scores, &[0, 1, 0]);
        assert!(a > 10.0, "all correct: sharpen ({a})");
        let b = fit_scale(&scores, &[1, 0, 0]);
        assert!(b < a, "mostly wrong: flatter ({b})");
    }
}
