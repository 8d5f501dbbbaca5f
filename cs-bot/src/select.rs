//! Model selection from the training data alone: candidates (features, SVM cost and loss)
//! trained on part of the lines and scored on stratified held-out folds; the winner's held-out
//! scores then fit the calibration and the out-of-scope threshold.
//!
//! The search is bounded so that a 15,000-line file trains in under 30 s on two cores: below
//! 2,000 lines every one of 5 folds is scored; above, two held-out fifths (fewer candidates).
//! Stages:
//! features at `C = 1`, then `C` around 1 for the best features (each fit warm-started from the
//! previous one's dual variables), then the hinge loss at the best `C` (robust to noisy labels,
//! adopted only when it wins clearly).

use crate::classifier::{Chosen, ClassifierBuilder, Model, Task, TrainStage, Trial};
use crate::features::{Counted, FeatureConfig, Sparse, Vectorizer, counted};
use crate::linear::{Loss, Rng, train_softmax, train_svm};

/// Lines from which a single held-out fold replaces full cross-validation.
const FULL_CV_BELOW: usize = 2_000;
/// Folds.
const FOLDS: usize = 5;
/// The costs tried around `C = 1`, in the (ascending) order of warm starts: small data (where
/// noisy labels weigh most) also tries 0.1.
const COSTS_SMALL: &[f32] = &[0.1, 0.3, 3.0];
const COSTS_LARGE: &[f32] = &[0.3, 3.0];

/// A stratified assignment of lines to folds.
#[derive(Debug, Clone)]
pub(crate) struct Folds {
    fold: Vec<u8>,
}

impl Folds {
    /// Each label's lines are shuffled and dealt round the folds, starting at a different fold
    /// per label so that labels with few lines do not all land in the first.
    pub(crate) fn stratified(y: &[u32], classes: usize, k: usize, seed: u64) -> Self {
        let mut by: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &l) in y.iter().enumerate() {
            by[l as usize].push(i);
        }
        let mut rng = Rng::new(seed);
        let mut fold = vec![0u8; y.len()];
        let mut start = 0usize;
        for ids in &mut by {
            rng.shuffle(ids);
            for (j, &i) in ids.iter().enumerate() {
                fold[i] = ((start + j) % k) as u8;
            }
            start += ids.len();
        }
        Self { fold }
    }
}

/// Hashes every text under `cfg`, on all cores.
pub(crate) fn hash_all(texts: &[&str], cfg: &FeatureConfig) -> Vec<Counted> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || texts.len() < 256 {
        return texts.iter().map(|t| counted(t, cfg)).collect();
    }
    let chunk = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|t| counted(t, cfg)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// One fold's training and held-out rows under one feature configuration.
struct FoldData {
    rows: Vec<Sparse>,
    y: Vec<u32>,
    held: Vec<usize>,
    held_rows: Vec<Sparse>,
    dim: usize,
    /// Dual variables of the last SVM trained on these rows (warm start for a larger `C`).
    warm: Vec<Vec<f32>>,
}

impl FoldData {
    fn new(task: &Task<'_>, docs: &[Counted], folds: &Folds, f: usize, cfg: FeatureConfig) -> Self {
        let (train, held): (Vec<usize>, Vec<usize>) =
            (0..docs.len()).partition(|&i| usize::from(folds.fold[i]) != f);
        let train_docs: Vec<&Counted> = train.iter().map(|&i| &docs[i]).collect();
        let v = Vectorizer::fit_counted(cfg, &train_docs);
        Self {
            rows: train_docs.iter().map(|d| v.transform_counted(d)).collect(),
            y: train.iter().map(|&i| task.y[i]).collect(),
            held_rows: held
                .iter()
                .map(|&i| v.transform_counted(&docs[i]))
                .collect(),
            held,
            dim: v.dim(),
            warm: Vec::new(),
        }
    }

    /// Trains `model` (warm-started when asked) and returns the raw scores of the held-out
    /// lines.
    fn score(&mut self, model: &Model, classes: usize, warm: bool) -> Vec<(usize, Vec<f32>)> {
        let none = |_: usize| {};
        let m = match *model {
            Model::Svm { c } | Model::SvmHinge { c } => {
                let loss = if matches!(model, Model::Svm { .. }) {
                    Loss::SquaredHinge
                } else {
                    Loss::Hinge
                };
                if !warm {
                    self.warm.clear();
                }
                train_svm(
                    &self.rows,
                    &self.y,
                    classes,
                    self.dim,
                    (c, loss),
                    Some(&mut self.warm),
                    &none,
                )
            }
            Model::Softmax { epochs, lambda } => train_softmax(
                &self.rows, &self.y, classes, self.dim, epochs, lambda, &none,
            ),
        };
        self.held
            .iter()
            .zip(&self.held_rows)
            .map(|(&i, x)| {
                let mut s = vec![0.0; classes];
                m.scores(x, &mut s);
                (i, s)
            })
            .collect()
    }
}

/// Trains `model` on every line outside fold `f` and returns the raw scores of fold `f`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_fold(
    b: &ClassifierBuilder,
    task: &Task<'_>,
    docs: &[Counted],
    folds: &Folds,
    f: usize,
    model: &Model,
    features: Option<FeatureConfig>,
    stage: TrainStage,
) -> Vec<(usize, Vec<f32>)> {
    let cfg = features.unwrap_or_else(|| docs_cfg(b));
    b.report(stage, 0, 1);
    let mut data = FoldData::new(task, docs, folds, f, cfg);
    let out = data.score(model, task.classes, false);
    b.report(stage, 1, 1);
    out
}

fn docs_cfg(b: &ClassifierBuilder) -> FeatureConfig {
    b.feature_config()
}

/// Share of held-out lines whose best raw score is their label.
pub(crate) fn accuracy(held: &[(usize, Vec<f32>)], y: &[u32]) -> f32 {
    if held.is_empty() {
        return 0.0;
    }
    let right = held
        .iter()
        .filter(|(i, s)| {
            let best = s
                .iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
                )
                .0;
            best as u32 == y[*i]
        })
        .count();
    right as f32 / held.len() as f32
}

/// Whether `a` beats `b` on the same held-out lines by more than one standard error of the
/// paired difference.
fn clearly_better(a: &[(usize, Vec<f32>)], b: &[(usize, Vec<f32>)], y: &[u32]) -> bool {
    let right = |s: &[f32], i: usize| {
        let best = s
            .iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
            )
            .0;
        best as u32 == y[i]
    };
    let (mut wins, mut losses) = (0f32, 0f32);
    let by: std::collections::HashMap<usize, &Vec<f32>> = b.iter().map(|(i, s)| (*i, s)).collect();
    for (i, s) in a {
        let Some(other) = by.get(i) else { continue };
        match (right(s, *i), right(other, *i)) {
            (true, false) => wins += 1.0,
            (false, true) => losses += 1.0,
            _ => {}
        }
    }
    wins - losses > (wins + losses).sqrt()
}

/// The feature configurations tried, the first wave's fixed choice first.
fn feature_candidates(small: bool) -> Vec<FeatureConfig> {
    let rich = FeatureConfig::RICH;
    // Shorter character n-grams: more robust to typos and short Chinese questions.
    let short = rich.with_chars((2, 5), (1, 2));
    let mut out = vec![
        rich,
        short,
        // Longer word n-grams with them: phrasings that differ by word order.
        short.with_word(1, 3),
    ];
    if small {
        // Word unigrams only: fewer, denser features (noisy or small data).
        out.push(short.with_word(1, 1));
        out.push(rich.with_weighting(false, true));
    }
    out
}

/// Chooses features and model on held-out folds of the training lines.
pub(crate) fn select(b: &ClassifierBuilder, task: &Task<'_>) -> Chosen {
    let n = task.texts.len();
    let mut chosen = Chosen {
        features: FeatureConfig::RICH,
        model: Model::Svm { c: 1.0 },
        held: None,
        accuracy: None,
        folds: 0,
        folds_scored: 0,
        trials: Vec::new(),
    };
    if n < 2 * FOLDS {
        return chosen;
    }
    let small = n < FULL_CV_BELOW;
    // Two held-out fifths above 2,000 lines: one alone (3,000 lines of 15,000) decided between
    // candidates by a few lines, within its noise.
    let scored = if small { FOLDS } else { 2 };
    let costs = if small { COSTS_SMALL } else { COSTS_LARGE };
    let folds = Folds::stratified(task.y, task.classes, FOLDS, b.seed());
    let feats = feature_candidates(small);
    let total = (feats.len() + costs.len() + 1) * scored;
    let mut done = 0usize;
    let mut tick = |b: &ClassifierBuilder| {
        done += 1;
        b.report(TrainStage::Selection, done, total);
    };
    b.report(TrainStage::Selection, 0, total);

    // Stage 1: features at C = 1.
    type Scored = (f32, Vec<(usize, Vec<f32>)>);
    let mut best: Option<(Scored, FeatureConfig, Model, Vec<FoldData>)> = None;
    let base = Model::Svm { c: 1.0 };
    for cfg in feats {
        let docs = hash_all(task.texts, &cfg);
        let mut data: Vec<FoldData> = (0..scored)
            .map(|f| FoldData::new(task, &docs, &folds, f, cfg))
            .collect();
        let mut held = Vec::new();
        for d in &mut data {
            held.extend(d.score(&base, task.classes, false));
            tick(b);
        }
        let acc = accuracy(&held, task.y);
        chosen.trials.push(Trial {
            features: cfg,
            model: base,
            accuracy: acc,
        });
        if best.as_ref().is_none_or(|(s, ..)| acc > s.0) {
            best = Some(((acc, held), cfg, base, data));
        }
    }
    let Some((mut top, cfg, mut model, mut data)) = best else {
        return chosen;
    };

    // Stage 2: the cost, warm-started in ascending order.
    for (j, &c) in costs.iter().enumerate() {
        let m = Model::Svm { c };
        let mut held = Vec::new();
        for d in &mut data {
            held.extend(d.score(&m, task.classes, j > 0));
            tick(b);
        }
        let acc = accuracy(&held, task.y);
        chosen.trials.push(Trial {
            features: cfg,
            model: m,
            accuracy: acc,
        });
        if acc > top.0 {
            top = (acc, held);
            model = m;
        }
    }

    // Stage 3: the hinge loss at the best cost.
    let c = match model {
        Model::Svm { c } | Model::SvmHinge { c } => c,
        Model::Softmax { .. } => 1.0,
    };
    let m = Model::SvmHinge { c };
    let mut held = Vec::new();
    for d in &mut data {
        held.extend(d.score(&m, task.classes, false));
        tick(b);
    }
    let acc = accuracy(&held, task.y);
    chosen.trials.push(Trial {
        features: cfg,
        model: m,
        accuracy: acc,
    });
    // The hinge loss is a robustness option: adopted only on clear evidence, when it gets
    // right more held-out lines the squared hinge got wrong than the reverse by more than one
    // standard error of that difference (a paired, McNemar-style test).
    if clearly_better(&held, &top.1, task.y) {
        top = (acc, held);
        model = m;
    }

    chosen.features = cfg;
    chosen.model = model;
    chosen.accuracy = Some(top.0);
    chosen.held = Some(top.1);
    chosen.folds = FOLDS;
    chosen.folds_scored = scored;
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_and_balanced() {
        let y: Vec<u32> = (0..100).map(|i| (i % 4) as u32).collect();
        let f = Folds::stratified(&y, 4, 5, 1);
        for k in 0..5 {
            let n = f.fold.iter().filter(|&&x| usize::from(x) == k).count();
            assert_eq!(n, 20);
            for c in 0..4u32 {
                let m = (0..100)
                    .filter(|&i| usize::from(f.fold[i]) == k && y[i] == c)
                    .count();
                assert_eq!(m, 5);
            }
        }
    }
}
