//! The intent classifier: TF-IDF features (jieba words, character and word n-grams) and a trained
//! linear model with calibrated confidence and an out-of-scope threshold.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{FeatureConfig, Sparse, Vectorizer};
use crate::linear::{LinearModel, Loss, fit_scale, softmax, train_softmax, train_svm};
use crate::select::select;

/// One labelled training or test line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// What the customer wrote.
    pub text: String,
    /// The intent.
    pub label: String,
}

impl Example {
    /// A labelled example.
    pub fn new(text: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            label: label.into(),
        }
    }
}

/// Parses JSONL lines `{"text": ..., "label": ...}` (`query`, `sentence`, `utterance` or
/// `question` are accepted for `text`, `intent` or `category` for `label`; blank lines are
/// skipped).
///
/// # Errors
/// [`Error::Knowledge`] with the line number for a line that is not such an object.
pub fn parse_jsonl(text: &str) -> Result<Vec<Example>> {
    let text = text.trim_start_matches('\u{feff}');
    #[derive(Deserialize)]
    struct Line {
        #[serde(
            alias = "query",
            alias = "sentence",
            alias = "utterance",
            alias = "question"
        )]
        text: String,
        #[serde(alias = "intent", alias = "category")]
        label: String,
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Line>(l)
                .map(|l| Example::new(l.text, l.label))
                .map_err(|e| Error::Knowledge {
                    line: i + 1,
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Parses CSV with a header naming a `text` (or `query`, `sentence`, `utterance`, `question`)
/// column and a `label`, `intent` or `category` column (RFC 4180 quoting).
///
/// # Errors
/// [`Error::Knowledge`] when the header lacks those columns or a row is short.
pub fn parse_csv(text: &str) -> Result<Vec<Example>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut records = csv_records(text).into_iter();
    let header = records.next().ok_or_else(|| Error::Knowledge {
        line: 1,
        reason: "empty CSV".into(),
    })?;
    let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.trim()));
    let (Some(t), Some(l)) = (
        col(&["text", "query", "sentence", "utterance", "question"]),
        col(&["label", "intent", "category"]),
    ) else {
        return Err(Error::Knowledge {
            line: 1,
            reason: "CSV header needs a text and a label/intent/category column".into(),
        });
    };
    records
        .enumerate()
        .filter(|(_, r)| !(r.len() == 1 && r[0].is_empty()))
        .map(|(i, r)| match (r.get(t), r.get(l)) {
            (Some(t), Some(l)) => Ok(Example::new(t.clone(), l.clone())),
            _ => Err(Error::Knowledge {
                line: i + 2,
                reason: "row has too few columns".into(),
            }),
        })
        .collect()
}

fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push(record);
    }
    out
}

/// Reads labelled examples from a `.csv` file ([`parse_csv`]) or JSONL otherwise
/// ([`parse_jsonl`]).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; as the parsers.
pub fn read_examples(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        parse_csv(&text)
    } else {
        parse_jsonl(&text)
    }
}

/// The label of out-of-scope lines, in training files (a knowledge file's out-of-scope
/// section) and test files alike.
pub const OUT_OF_SCOPE: &str = "oos";

/// The highest out-of-scope threshold [`Threshold::Auto`] chooses.
pub const MAX_AUTO_THRESHOLD: f32 = 0.5;

/// The linear model to train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Model {
    /// One-vs-rest linear SVM (squared hinge), dual coordinate descent; `c` is the cost of
    /// errors (higher fits the training data harder).
    Svm {
        /// Cost parameter.
        c: f32,
    },
    /// One-vs-rest linear SVM with the plain hinge loss: a mislabelled training line costs
    /// linearly instead of quadratically, which helps with noisy labels.
    SvmHinge {
        /// Cost parameter.
        c: f32,
    },
    /// Multinomial logistic regression by SGD.
    Softmax {
        /// Passes over the data.
        epochs: usize,
        /// L2 penalty per example.
        lambda: f32,
    },
}

/// Which text features to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Features {
    /// Word unigrams and bigrams (Chinese segmented by jieba), character 3-5-grams inside
    /// English words and 1-3-grams over Chinese text; word and character groups normalised
    /// separately.
    Rich,
    /// Word unigrams only: the classical TF-IDF baseline.
    Words,
    /// Exactly this configuration.
    Custom(FeatureConfig),
}

impl Features {
    fn config(self) -> FeatureConfig {
        match self {
            Self::Rich => FeatureConfig::RICH,
            Self::Words => FeatureConfig::WORDS,
            Self::Custom(c) => c,
        }
    }
}

/// How the out-of-scope threshold is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Threshold {
    /// This confidence, whatever the data.
    Fixed(f32),
    /// Chosen from held-out training lines: the highest confidence threshold that wrongly
    /// rejects at most this share of the in-scope held-out lines the model gets right (0.01:
    /// at most one point of in-scope accuracy traded for out-of-scope recall), and at most
    /// [`MAX_AUTO_THRESHOLD`].
    Auto {
        /// The share of in-scope accuracy the threshold may cost (0-1).
        max_in_scope_loss: f32,
    },
}

/// The training step a [`TrainProgress`] reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrainStage {
    /// Extracting features.
    Features,
    /// Training on a held-out split to fit the confidence calibration.
    Calibration,
    /// Training the final model (per class for the SVM, per epoch for softmax).
    Training,
    /// Model selection: one unit per candidate model trained and scored on held-out lines.
    Selection,
}

/// Progress of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainProgress {
    /// The step.
    pub stage: TrainStage,
    /// Units done in this step.
    pub done: usize,
    /// Units in this step.
    pub total: usize,
}

type ProgressFn = Arc<dyn Fn(&TrainProgress) + Send + Sync>;

/// One candidate tried during model selection, with its held-out accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The features.
    pub features: FeatureConfig,
    /// The model.
    pub model: Model,
    /// Accuracy on the held-out lines (all labels, out-of-scope lines included).
    pub accuracy: f32,
}

/// What training chose and why: the hyper-parameters, how they were validated, the
/// calibration and the out-of-scope threshold. Saved with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The features of the final model.
    pub features: FeatureConfig,
    /// The model trained on all lines.
    pub model: Model,
    /// Multiplier of the scores before the softmax (1 / temperature), fitted on held-out lines.
    pub scale: f32,
    /// The out-of-scope threshold on the calibrated confidence.
    pub threshold: f32,
    /// How the threshold was set.
    pub threshold_rule: Threshold,
    /// Stratified folds the training lines were split into (0: no validation).
    pub folds: usize,
    /// Folds scored (1: a single held-out slice of `1/folds` of the lines).
    pub folds_scored: usize,
    /// Held-out lines scored.
    pub held_out: usize,
    /// Held-out accuracy of the chosen candidate, when validated.
    pub validation_accuracy: Option<f32>,
    /// Share of the held-out in-scope lines the threshold rejects although the model had them
    /// right.
    pub held_out_in_scope_loss: Option<f32>,
    /// Share of the held-out out-of-scope lines (label `oos`) the threshold or the `oos` class
    /// catches, when the training data has some.
    pub held_out_oos_recall: Option<f32>,
    /// Every candidate tried, in order.
    pub trials: Vec<Trial>,
    /// Seconds spent training, selection included.
    pub train_secs: f32,
    /// A fingerprint of the training lines and settings, set by [`crate::IntentBot`] when it
    /// trains, so a saved model is reused only for the same knowledge.
    #[serde(default)]
    pub training_digest: Option<String>,
}

/// Builds an [`IntentClassifier`] from labelled examples.
///
/// By default it chooses its hyper-parameters from the training data alone
/// ([`ClassifierBuilder::with_search`]): features (word and character n-gram ranges, term
/// weighting), the SVM's cost `C` and loss, each candidate trained on part of the lines and
/// scored on a stratified held-out part (5 folds below 2,000 lines, two held-out fifths above);
/// the confidence calibration and the out-of-scope threshold come from the same held-out
/// scores. Lines labelled [`OUT_OF_SCOPE`] are trained as a class of their own and help choose
/// the threshold.
///
/// ```
/// use cs_bot::{ClassifierBuilder, Example};
///
/// let data = [
///     ("where is my parcel", "logistics"), ("track my package", "logistics"),
///     ("我的快递到哪了", "logistics"), ("物流信息怎么查", "logistics"),
///     ("I want a refund", "refund"), ("give me my money back", "refund"),
///     ("我要退款", "refund"), ("退款多久到账", "refund"),
/// ];
/// let examples: Vec<Example> = data.iter().map(|(t, l)| Example::new(*t, *l)).collect();
/// let clf = ClassifierBuilder::new().with_threshold(0.3).train(&examples)?;
/// assert_eq!(clf.predict("where is my package").label, "logistics");
/// assert_eq!(clf.predict("怎么退款").label, "refund");
/// # Ok::<(), cs_bot::Error>(())
/// ```
#[derive(Clone)]
pub struct ClassifierBuilder {
    features: Features,
    model: Model,
    search: bool,
    threshold: Threshold,
    calibrate: bool,
    seed: u64,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for ClassifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifierBuilder")
            .field("features", &self.features)
            .field("model", &self.model)
            .field("search", &self.search)
            .field("threshold", &self.threshold)
            .field("calibrate", &self.calibrate)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for ClassifierBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClassifierBuilder {
    /// Model selection on, calibrated, out-of-scope threshold chosen from held-out lines at
    /// most one point of in-scope accuracy.
    pub fn new() -> Self {
        Self {
            features: Features::Rich,
            model: Model::Svm { c: 1.0 },
            search: true,
            threshold: Threshold::Auto {
                max_in_scope_loss: 0.01,
            },
            calibrate: true,
            seed: 7,
            progress: None,
        }
    }

    /// The classical baseline: word-unigram TF-IDF and logistic regression (no search).
    pub fn baseline() -> Self {
        Self::new()
            .with_features(Features::Words)
            .with_model(Model::Softmax {
                epochs: 15,
                lambda: 1e-5,
            })
    }

    /// The features; turns the search off.
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self.search = false;
        self
    }

    /// The model; turns the search off.
    pub fn with_model(mut self, model: Model) -> Self {
        self.model = model;
        self.search = false;
        self
    }

    /// Whether to choose features and model from held-out training lines (default on; the
    /// features and model set with [`with_features`](Self::with_features) and
    /// [`with_model`](Self::with_model) are used when off).
    pub fn with_search(mut self, search: bool) -> Self {
        self.search = search;
        self
    }

    /// A fixed out-of-scope threshold: predictions below this confidence are out of scope.
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = Threshold::Fixed(threshold);
        self
    }

    /// The out-of-scope threshold chosen from held-out lines, costing at most this share of
    /// in-scope accuracy (default 0.01).
    pub fn with_auto_threshold(mut self, max_in_scope_loss: f32) -> Self {
        self.threshold = Threshold::Auto { max_in_scope_loss };
        self
    }

    /// Whether to fit the confidence calibration on held-out lines (default on; needs at least
    /// 50 examples, otherwise a fixed temperature is used).
    pub fn with_calibration(mut self, calibrate: bool) -> Self {
        self.calibrate = calibrate;
        self
    }

    /// Called as training proceeds.
    pub fn with_progress(mut self, f: impl Fn(&TrainProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    pub(crate) fn feature_config(&self) -> FeatureConfig {
        self.features.config()
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn report(&self, stage: TrainStage, done: usize, total: usize) {
        if let Some(p) = &self.progress {
            p(&TrainProgress { stage, done, total });
        }
    }

    /// Trains on `examples`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there are fewer than two labels (besides [`OUT_OF_SCOPE`]),
    /// or a threshold outside 0-1.
    pub fn train(&self, examples: &[Example]) -> Result<IntentClassifier> {
        let start = std::time::Instant::now();
        let bad = match self.threshold {
            Threshold::Fixed(t) => !(0.0..=1.0).contains(&t),
            Threshold::Auto { max_in_scope_loss } => !(0.0..=1.0).contains(&max_in_scope_loss),
        };
        if bad {
            return Err(Error::InvalidInput {
                reason: format!("threshold {:?} is not within 0..=1", self.threshold),
            });
        }
        let mut labels: Vec<String> = examples.iter().map(|e| e.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.iter().filter(|l| *l != OUT_OF_SCOPE).count() < 2 {
            return Err(Error::InvalidInput {
                reason: "training needs at least two labels".into(),
            });
        }
        let index: HashMap<&str, u32> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();
        let y: Vec<u32> = examples.iter().map(|e| index[e.label.as_str()]).collect();
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let oos = index.get(OUT_OF_SCOPE).copied();
        let task = Task {
            texts: &texts,
            y: &y,
            classes: labels.len(),
        };
        let chosen = if self.search {
            select(self, &task)
        } else {
            fixed(self, &task)
        };
        let features = chosen.features;
        self.report(TrainStage::Features, 0, examples.len());
        let (vectorizer, rows) = Vectorizer::fit_transform(features, &texts);
        self.report(TrainStage::Features, examples.len(), examples.len());
        let mut model = fit(
            self,
            &chosen.model,
            &rows,
            &y,
            labels.len(),
            vectorizer.dim(),
            TrainStage::Training,
        );
        // Calibration and threshold from the held-out scores of the chosen candidate.
        let (scale, threshold, loss, recall) = match &chosen.held {
            Some(held) if self.calibrate && held.len() >= 50 => {
                let (scores, gold): (Vec<Vec<f32>>, Vec<u32>) =
                    held.iter().map(|(i, s)| (s.clone(), y[*i])).unzip();
                let scale = fit_scale(&scores, &gold);
                let (t, loss, recall) =
                    choose_threshold(&scores, &gold, scale, oos, self.threshold);
                (scale, t, Some(loss), recall)
            }
            _ => {
                let scale = match chosen.model {
                    Model::Svm { .. } | Model::SvmHinge { .. } => 5.0,
                    Model::Softmax { .. } => 1.0,
                };
                let t = match self.threshold {
                    Threshold::Fixed(t) => t,
                    // Too few held-out lines to choose from: the first wave's default.
                    Threshold::Auto { .. } => 0.3,
                };
                (scale, t, None, None)
            }
        };
        model.scale = scale;
        let selection = Selection {
            features,
            model: chosen.model,
            scale,
            threshold,
            threshold_rule: self.threshold,
            folds: chosen.folds,
            folds_scored: chosen.folds_scored,
            held_out: chosen.held.as_ref().map_or(0, Vec::len),
            validation_accuracy: chosen.accuracy,
            held_out_in_scope_loss: loss,
            held_out_oos_recall: recall,
            trials: chosen.trials,
            train_secs: start.elapsed().as_secs_f32(),
            training_digest: None,
        };
        Ok(IntentClassifier {
            labels,
            vectorizer,
            model,
            threshold,
            oos,
            selection,
        })
    }
}

/// Trains `model` on `rows`.
pub(crate) fn fit(
    b: &ClassifierBuilder,
    model: &Model,
    rows: &[Sparse],
    labels: &[u32],
    classes: usize,
    dim: usize,
    stage: TrainStage,
) -> LinearModel {
    match *model {
        Model::Svm { c } | Model::SvmHinge { c } => {
            let loss = if matches!(model, Model::Svm { .. }) {
                Loss::SquaredHinge
            } else {
                Loss::Hinge
            };
            let cb = |done: usize| b.report(stage, done, classes);
            train_svm(rows, labels, classes, dim, (c, loss), None, &cb)
        }
        Model::Softmax { epochs, lambda } => {
            let cb = |done: usize| b.report(stage, done, epochs);
            train_softmax(rows, labels, classes, dim, epochs, lambda, &cb)
        }
    }
}

/// The highest threshold on the calibrated confidence of held-out lines that rejects at most
/// `max_in_scope_loss` of the in-scope lines the model had right; returns it with the share it
/// rejects and the share of out-of-scope lines caught (when there are some).
fn choose_threshold(
    scores: &[Vec<f32>],
    gold: &[u32],
    scale: f32,
    oos: Option<u32>,
    rule: Threshold,
) -> (f32, f32, Option<f32>) {
    let mut buf = Vec::new();
    let mut right = Vec::new();
    let mut outs = Vec::new();
    let mut in_scope = 0usize;
    for (s, &g) in scores.iter().zip(gold) {
        buf.clear();
        buf.extend_from_slice(s);
        softmax(&mut buf, scale);
        let (best, p) =
            buf.iter().enumerate().fold(
                (0, f32::MIN),
                |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc },
            );
        let flagged_class = Some(best as u32) == oos;
        if Some(g) == oos {
            outs.push(if flagged_class { f32::INFINITY } else { p });
        } else {
            in_scope += 1;
            if best as u32 == g {
                right.push(p);
            }
        }
    }
    right.sort_by(f32::total_cmp);
    let t = match rule {
        Threshold::Fixed(t) => t,
        Threshold::Auto { max_in_scope_loss } => {
            // `pos` right answers may be rejected. Between the k-th and (k+1)-th least
            // confident right answers the threshold rejects exactly k of them: interpolate
            // there (the 0-th being confidence 0), so that with few held-out lines, where the
            // least confident right answer says little, the threshold shrinks towards 0.
            let pos = max_in_scope_loss * in_scope as f32;
            let k = (pos.floor() as usize).min(right.len());
            let below = if k == 0 { 0.0 } else { right[k - 1] };
            let t = match right.get(k) {
                Some(&above) => below + (pos - k as f32) * (above - below),
                None => below,
            };
            // Held-out lines the model all but knows by heart (near-duplicate phrasings of a
            // small FAQ) would put the threshold near 1 and reject fair paraphrases: an answer
            // more likely right than not stays in scope.
            t.min(MAX_AUTO_THRESHOLD)
        }
    };
    let lost = right.iter().filter(|&&p| p < t).count();
    let loss = if in_scope == 0 {
        0.0
    } else {
        lost as f32 / in_scope as f32
    };
    let recall = (!outs.is_empty()).then(|| {
        outs.iter().filter(|&&p| p.is_infinite() || p < t).count() as f32 / outs.len() as f32
    });
    (t, loss, recall)
}

/// What a training run learns about itself before the final fit.
pub(crate) struct Chosen {
    pub(crate) features: FeatureConfig,
    pub(crate) model: Model,
    /// (example, raw scores) of held-out lines for the chosen candidate.
    pub(crate) held: Option<Vec<(usize, Vec<f32>)>>,
    pub(crate) accuracy: Option<f32>,
    pub(crate) folds: usize,
    pub(crate) folds_scored: usize,
    pub(crate) trials: Vec<Trial>,
}

/// The labelled lines of a training run.
pub(crate) struct Task<'a> {
    pub(crate) texts: &'a [&'a str],
    pub(crate) y: &'a [u32],
    pub(crate) classes: usize,
}

/// No search: the configured features and model, with one held-out seventh for calibration.
fn fixed(b: &ClassifierBuilder, task: &Task<'_>) -> Chosen {
    let features = b.features.config();
    let mut chosen = Chosen {
        features,
        model: b.model,
        held: None,
        accuracy: None,
        folds: 0,
        folds_scored: 0,
        trials: Vec::new(),
    };
    if !b.calibrate || task.texts.len() < 50 {
        return chosen;
    }
    let folds = crate::select::Folds::stratified(task.y, task.classes, 7, b.seed);
    let docs = crate::select::hash_all(task.texts, &features);
    let held = crate::select::score_fold(
        b,
        task,
        &docs,
        &folds,
        0,
        &b.model,
        Some(features),
        TrainStage::Calibration,
    );
    chosen.accuracy = Some(crate::select::accuracy(&held, task.y));
    chosen.held = Some(held);
    chosen.folds = 7;
    chosen.folds_scored = 1;
    chosen
}

/// What the classifier thinks a text means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The most likely intent ([`OUT_OF_SCOPE`] when the knowledge file's out-of-scope class
    /// wins).
    pub label: String,
    /// Its calibrated probability, 0 to 1.
    pub confidence: f32,
    /// Whether the confidence reaches the out-of-scope threshold, the text has known words and
    /// the label is not [`OUT_OF_SCOPE`].
    pub in_scope: bool,
    /// The three most likely intents with their probabilities, best first.
    pub top: Vec<(String, f32)>,
}

/// A trained intent classifier. Prediction takes microseconds and is thread-safe.
#[derive(Debug, Clone)]
pub struct IntentClassifier {
    pub(crate) labels: Vec<String>,
    pub(crate) vectorizer: Vectorizer,
    pub(crate) model: LinearModel,
    pub(crate) threshold: f32,
    pub(crate) oos: Option<u32>,
    pub(crate) selection: Selection,
}

impl IntentClassifier {
    /// The intents it knows, sorted ([`OUT_OF_SCOPE`] among them when trained with it).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The out-of-scope threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The same classifier with another out-of-scope threshold (0-1, clamped).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold.clamp(0.0, 1.0);
        self.selection.threshold = self.threshold;
        self.selection.threshold_rule = Threshold::Fixed(self.threshold);
        self
    }

    /// Number of features in the vocabulary.
    pub fn features(&self) -> usize {
        self.vectorizer.dim()
    }

    /// What training chose: hyper-parameters, validation, calibration and threshold.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Predicts the intent of `text`.
    pub fn predict(&self, text: &str) -> Prediction {
        let x = self.vectorizer.transform(text);
        let mut p = vec![0.0f32; self.labels.len()];
        self.model.probabilities(&x, &mut p);
        // A text without any known feature says nothing, whatever the bias prefers.
        self.prediction_from(&p, !x.is_empty())
    }

    /// The prediction for these label probabilities (`known`: whether the text had any feature
    /// the model knows, or another model vouches for it).
    pub(crate) fn prediction_from(&self, p: &[f32], known: bool) -> Prediction {
        let mut idx: Vec<usize> = (0..p.len()).collect();
        let n = 3.min(idx.len());
        idx.select_nth_unstable_by(n - 1, |a, b| p[*b].total_cmp(&p[*a]));
        idx.truncate(n);
        idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        let best = idx[0];
        let confidence = if known { p[best] } else { 0.0 };
        Prediction {
            label: self.labels[best].clone(),
            confidence,
            in_scope: confidence >= self.threshold && Some(best as u32) != self.oos,
            top: idx
                .iter()
                .map(|&i| (self.labels[i].clone(), p[i]))
                .collect(),
        }
    }

    /// The calibrated probability of every label (in [`IntentClassifier::labels`] order).
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        let x = self.vectorizer.transform(text);
        let mut p = vec![0.0f32; self.labels.len()];
        self.model.probabilities(&x, &mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jsonl_and_csv() {
        let j = parse_jsonl(
            "{\"text\":\"hi\",\"label\":\"greet\"}\n\n{\"text\":\"退款\",\"intent\":\"refund\"}\n",
        )
        .unwrap();
        assert_eq!(
            j,
            [Example::new("hi", "greet"), Example::new("退款", "refund")]
        );
        assert!(matches!(
            parse_jsonl("{\"text\":1}"),
            Err(Error::Knowledge { line: 1, .. })
        ));
        let c = parse_csv("text,category\n\"a, \"\"quoted\"\" one\",x\nplain,y\n").unwrap();
        assert_eq!(
            c,
            [
                Example::new("a, \"quoted\" one", "x"),
                Example::new("plain", "y")
            ]
        );
        assert!(parse_csv("foo,bar\n1,2\n").is_err());
        let bom = parse_csv("\u{feff}query,intent\r\n查物流,logistics\r\n").unwrap();
        assert_eq!(bom, [Example::new("查物流", "logistics")]);
    }

    #[test]
    fn rejects_a_single_label_and_a_bad_threshold() {
        let one = [Example::new("a", "x"), Example::new("b", "x")];
        assert!(ClassifierBuilder::new().train(&one).is_err());
        let two = [Example::new("a", "x"), Example::new("b", "y")];
        assert!(
            ClassifierBuilder::new()
                .with_threshold(1.5)
                .train(&two)
                .is_err()
        );
    }

    #[test]
    fn unknown_text_is_out_of_scope_and_progress_is_reported() {
        let mut ex = Vec::new();
        for i in 0..30 {
            ex.push(Example::new(
                format!("refund my order number {i}"),
                "refund",
            ));
            ex.push(Example::new(format!("where is parcel {i} now"), "track"));
        }
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let clf = ClassifierBuilder::new()
            .with_progress(move |p| s2.lock().unwrap().push(*p))
            .train(&ex)
            .unwrap();
        let p = clf.predict("xylophone zebra");
        assert!(!p.in_scope);
        assert_eq!(p.confidence, 0.0);
        let p = clf.predict("please refund my order");
        assert!(p.in_scope && p.label == "refund", "{p:?}");
        assert!(p.confidence > 0.5);
        let seen = seen.lock().unwrap();
        let sel: Vec<&TrainProgress> = seen
            .iter()
            .filter(|p| p.stage == TrainStage::Selection)
            .collect();
        assert!(sel.len() > 2 && sel.last().unwrap().done == sel[0].total);
        let last = seen.last().unwrap();
        assert_eq!(
            (last.stage, last.done, last.total),
            (TrainStage::Training, 2, 2)
        );
        let s = clf.selection();
        assert_eq!((s.folds, s.folds_scored, s.held_out), (5, 5, 60));
        assert!(s.trials.len() >= 7, "{s:?}");
        assert!(s.validation_accuracy.unwrap() > 0.9);
    }

    fn three_intents(with_oos: bool) -> Vec<Example> {
        let mut ex = Vec::new();
        let words = ["order", "parcel", "item", "package", "purchase", "box"];
        for i in 0..40 {
            let w = words[i % words.len()];
            ex.push(Example::new(
                format!("I want a refund for my {w} {i}"),
                "refund",
            ));
            ex.push(Example::new(
                format!("where is my {w}, track it {i}"),
                "track",
            ));
            ex.push(Example::new(
                format!("can I pay for the {w} by card {i}"),
                "pay",
            ));
            if with_oos && i % 2 == 0 {
                let topic = ["weather", "joke", "song", "football", "recipe"][i % 5];
                ex.push(Example::new(
                    format!("tell me about the {topic} today {i}"),
                    OUT_OF_SCOPE,
                ));
            }
        }
        ex
    }

    #[test]
    fn the_threshold_is_chosen_within_the_loss_budget_and_can_be_fixed() {
        let ex = three_intents(false);
        let auto = ClassifierBuilder::new().train(&ex).unwrap();
        let s = auto.selection();
        assert!(s.held_out_in_scope_loss.unwrap() <= 0.01, "{s:?}");
        assert!(auto.threshold() > 0.0 && auto.threshold() <= MAX_AUTO_THRESHOLD);
        let fixed = ClassifierBuilder::new()
            .with_threshold(0.42)
            .train(&ex)
            .unwrap();
        assert_eq!(fixed.threshold(), 0.42);
        assert_eq!(fixed.with_threshold(0.9).threshold(), 0.9);
    }

    #[test]
    fn out_of_scope_lines_train_a_class_that_is_never_in_scope() {
        let clf = ClassifierBuilder::new()
            .train(&three_intents(true))
            .unwrap();
        assert!(clf.labels().iter().any(|l| l == OUT_OF_SCOPE));
        let p = clf.predict("tell me about the weather today");
        assert_eq!(p.label, OUT_OF_SCOPE);
        assert!(!p.in_scope);
        assert!(clf.predict("refund for my parcel please").in_scope);
        assert!(clf.selection().held_out_oos_recall.unwrap() > 0.9);
        // Out-of-scope lines alone do not make a second label.
        let one = [Example::new("a", "x"), Example::new("b", OUT_OF_SCOPE)];
        assert!(ClassifierBuilder::new().train(&one).is_err());
    }
}
