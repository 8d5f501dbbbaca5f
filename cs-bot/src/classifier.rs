//! The intent classifier: TF-IDF features (jieba words, character and word n-grams) and a trained
//! linear model with calibrated confidence and an out-of-scope threshold.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{FeatureConfig, Sparse, Vectorizer};
use crate::linear::{LinearModel, Rng, fit_scale, train_softmax, train_svm};

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

/// The linear model to train.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Model {
    /// One-vs-rest linear SVM (squared hinge), dual coordinate descent; `c` is the cost of
    /// errors (higher fits the training data harder).
    Svm {
        /// Cost parameter (default 1).
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
}

impl Features {
    fn config(self) -> FeatureConfig {
        match self {
            Self::Rich => FeatureConfig::RICH,
            Self::Words => FeatureConfig::WORDS,
        }
    }
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

/// Builds an [`IntentClassifier`] from labelled examples.
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
    threshold: f32,
    calibrate: bool,
    seed: u64,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for ClassifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifierBuilder")
            .field("features", &self.features)
            .field("model", &self.model)
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
    /// Rich features, linear SVM (C = 1), calibrated, out-of-scope threshold 0.3.
    pub fn new() -> Self {
        Self {
            features: Features::Rich,
            model: Model::Svm { c: 1.0 },
            threshold: 0.3,
            calibrate: true,
            seed: 7,
            progress: None,
        }
    }

    /// The classical baseline: word-unigram TF-IDF and logistic regression.
    pub fn baseline() -> Self {
        Self::new()
            .with_features(Features::Words)
            .with_model(Model::Softmax {
                epochs: 15,
                lambda: 1e-5,
            })
    }

    /// The features.
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The model.
    pub fn with_model(mut self, model: Model) -> Self {
        self.model = model;
        self
    }

    /// Confidence below which a prediction is out of scope (default 0.3).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Whether to fit the confidence calibration on a held-out split (default on; needs at least
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

    fn report(&self, stage: TrainStage, done: usize, total: usize) {
        if let Some(p) = &self.progress {
            p(&TrainProgress { stage, done, total });
        }
    }

    fn fit(
        &self,
        rows: &[Sparse],
        labels: &[u32],
        classes: usize,
        dim: usize,
        stage: TrainStage,
    ) -> LinearModel {
        match self.model {
            Model::Svm { c } => {
                let cb = |done: usize| self.report(stage, done, classes);
                train_svm(rows, labels, classes, dim, c, &cb)
            }
            Model::Softmax { epochs, lambda } => {
                let cb = |done: usize| self.report(stage, done, epochs);
                train_softmax(rows, labels, classes, dim, epochs, lambda, &cb)
            }
        }
    }

    /// Trains on `examples`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there are fewer than two labels, or a threshold outside 0-1.
    pub fn train(&self, examples: &[Example]) -> Result<IntentClassifier> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(Error::InvalidInput {
                reason: format!("threshold {} is not within 0..=1", self.threshold),
            });
        }
        let mut labels: Vec<String> = examples.iter().map(|e| e.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
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
        let classes = labels.len();

        self.report(TrainStage::Features, 0, examples.len());
        let (vectorizer, rows) = Vectorizer::fit_transform(self.features.config(), &texts);
        self.report(TrainStage::Features, examples.len(), examples.len());

        let scale = if self.calibrate && examples.len() >= 50 {
            // Hold out every 7th example (after a shuffle) to fit the temperature on scores the
            // model has not seen. The vocabulary is shared; features seen only in the held-out
            // part get zero weight, as unseen words would.
            let mut order: Vec<usize> = (0..rows.len()).collect();
            Rng::new(self.seed).shuffle(&mut order);
            let (held, kept): (Vec<usize>, Vec<usize>) = order.iter().partition(|&&i| i % 7 == 0);
            let pick = |ids: &[usize]| -> (Vec<Sparse>, Vec<u32>) {
                (
                    ids.iter().map(|&i| rows[i].clone()).collect(),
                    ids.iter().map(|&i| y[i]).collect(),
                )
            };
            let (kr, ky) = pick(&kept);
            let (hr, hy) = pick(&held);
            let m = self.fit(&kr, &ky, classes, vectorizer.dim(), TrainStage::Calibration);
            let scores: Vec<Vec<f32>> = hr
                .iter()
                .map(|x| {
                    let mut s = vec![0.0; classes];
                    m.scores(x, &mut s);
                    s
                })
                .collect();
            fit_scale(&scores, &hy)
        } else {
            match self.model {
                Model::Svm { .. } => 5.0,
                Model::Softmax { .. } => 1.0,
            }
        };
        let mut model = self.fit(&rows, &y, classes, vectorizer.dim(), TrainStage::Training);
        model.scale = scale;
        Ok(IntentClassifier {
            labels,
            vectorizer,
            model,
            threshold: self.threshold,
        })
    }
}

/// What the classifier thinks a text means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The most likely intent.
    pub label: String,
    /// Its calibrated probability, 0 to 1.
    pub confidence: f32,
    /// Whether the confidence reaches the out-of-scope threshold and the text has known words.
    pub in_scope: bool,
    /// The three most likely intents with their probabilities, best first.
    pub top: Vec<(String, f32)>,
}

/// A trained intent classifier. Prediction takes microseconds and is thread-safe.
#[derive(Debug, Clone)]
pub struct IntentClassifier {
    labels: Vec<String>,
    vectorizer: Vectorizer,
    model: LinearModel,
    threshold: f32,
}

impl IntentClassifier {
    /// The intents it knows, sorted.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The out-of-scope threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Number of features in the vocabulary.
    pub fn features(&self) -> usize {
        self.vectorizer.dim()
    }

    /// Predicts the intent of `text`.
    pub fn predict(&self, text: &str) -> Prediction {
        let x = self.vectorizer.transform(text);
        let mut p = vec![0.0f32; self.labels.len()];
        self.model.probabilities(&x, &mut p);
        let mut idx: Vec<usize> = (0..p.len()).collect();
        let n = 3.min(idx.len());
        idx.select_nth_unstable_by(n - 1, |a, b| p[*b].total_cmp(&p[*a]));
        idx.truncate(n);
        idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        let best = idx[0];
        // A text without any known feature says nothing, whatever the bias prefers.
        let confidence = if x.is_empty() { 0.0 } else { p[best] };
        Prediction {
            label: self.labels[best].clone(),
            confidence,
            in_scope: confidence >= self.threshold,
            top: idx
                .iter()
                .map(|&i| (self.labels[i].clone(), p[i]))
                .collect(),
        }
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
        assert!(seen.iter().any(|p| p.stage == TrainStage::Calibration));
        let last = seen.last().unwrap();
        assert_eq!(
            (last.stage, last.done, last.total),
            (TrainStage::Training, 2, 2)
        );
    }
}
