//! Embedding-backed classification for teams that run an embedding model server: the
//! [`Embedder`] trait, an implementation over an OpenAI-compatible `/embeddings` endpoint with
//! batching and a cache by text hash, and a [`HybridClassifier`] that mixes the sparse model's
//! probabilities with a nearest-neighbour vote over embeddings of the training lines, falling
//! back to the sparse model alone when the server is slow or down.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::classifier::{Example, IntentClassifier, Prediction};
use crate::error::{Error, Result};

/// Turns texts into dense vectors.
#[async_trait]
pub trait Embedder: Send + Sync + fmt::Debug + 'static {
    /// One vector per text, in order, all of the same length.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the model server cannot be reached, times out or fails;
    /// [`Error::InvalidInput`] when it refuses the request.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

/// Where and how to reach an OpenAI-compatible embeddings endpoint. `Debug` hides the key.
#[derive(Clone, Serialize, Deserialize)]
pub struct EmbeddingConfig {
    /// Base URL up to the API version, e.g. `http://10.0.0.5:8000/v1`; requests go to
    /// `{base_url}/embeddings`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Bearer token, if the server wants one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Request timeout in milliseconds (default 2000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Texts per request (default 64).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Vectors kept in the cache (default 50,000; 0 turns it off).
    #[serde(default = "default_cache")]
    pub cache_capacity: usize,
}

fn default_timeout_ms() -> u64 {
    2000
}
fn default_batch() -> usize {
    64
}
fn default_cache() -> usize {
    50_000
}

impl fmt::Debug for EmbeddingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout_ms", &self.timeout_ms)
            .field("batch_size", &self.batch_size)
            .field("cache_capacity", &self.cache_capacity)
            .finish()
    }
}

/// FNV-1a of the model and the text: the cache key.
fn text_hash(model: &str, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model.bytes().chain([0]).chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Default)]
struct Cache {
    map: HashMap<u64, Arc<Vec<f32>>>,
    order: VecDeque<u64>,
}

/// An [`Embedder`] over an OpenAI-compatible `POST {base_url}/embeddings` (OpenAI, vLLM, TEI,
/// Ollama, Xinference...).
///
/// ```no_run
/// use cs_bot::{Embedder, OpenAiEmbedder};
/// # async fn demo() -> cs_bot::Result<()> {
/// let embedder = OpenAiEmbedder::builder("http://127.0.0.1:8000/v1", "bge-m3")
///     .with_api_key("sk-...")
///     .build()?;
/// let v = embedder.embed(&["我的快递到哪了".to_owned()]).await?;
/// # Ok(()) }
/// ```
pub struct OpenAiEmbedder {
    config: EmbeddingConfig,
    client: reqwest::Client,
    cache: Mutex<Cache>,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("config", &self.config)
            .field(
                "cached",
                &self.cache.lock().map(|c| c.map.len()).unwrap_or_default(),
            )
            .finish()
    }
}

/// Builds an [`OpenAiEmbedder`].
#[derive(Debug, Clone)]
pub struct OpenAiEmbedderBuilder {
    config: EmbeddingConfig,
}

impl OpenAiEmbedderBuilder {
    /// An embedder for `model` at `base_url` (e.g. `http://127.0.0.1:8000/v1`).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::from_config(EmbeddingConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout_ms: default_timeout_ms(),
            batch_size: default_batch(),
            cache_capacity: default_cache(),
        })
    }

    /// An embedder from a config (e.g. read from TOML).
    pub fn from_config(config: EmbeddingConfig) -> Self {
        Self { config }
    }

    /// The bearer token.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(key.into());
        self
    }

    /// The request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout_ms = timeout.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// Texts per request.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Vectors kept in the cache (0: none).
    pub fn with_cache_capacity(mut self, n: usize) -> Self {
        self.config.cache_capacity = n;
        self
    }

    /// Builds the embedder.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty URL or model, or a batch size of 0.
    pub fn build(self) -> Result<OpenAiEmbedder> {
        let c = &self.config;
        if c.base_url.trim().is_empty() || c.model.trim().is_empty() || c.batch_size == 0 {
            return Err(Error::InvalidInput {
                reason: "an embedder needs a base URL, a model and a batch size of at least 1"
                    .into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(c.timeout_ms))
            .build()
            .map_err(|e| Error::Unavailable {
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(OpenAiEmbedder {
            config: self.config,
            client,
            cache: Mutex::new(Cache::default()),
        })
    }
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

impl OpenAiEmbedder {
    /// A builder for `model` at `base_url`.
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiEmbedderBuilder {
        OpenAiEmbedderBuilder::new(base_url, model)
    }

    /// Vectors in the cache.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.map.len()).unwrap_or_default()
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let url = format!("{}/embeddings", self.config.base_url.trim_end_matches('/'));
        let mut req = self.client.post(&url).json(&EmbeddingRequest {
            model: &self.config.model,
            input: texts,
        });
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let unavailable = |reason: String| Error::Unavailable { reason };
        let resp = req
            .send()
            .await
            .map_err(|e| unavailable(format!("embedding server: {e}")))?;
        let status = resp.status();
        if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            return Err(Error::InvalidInput {
                reason: format!("embedding server refused the request: {status}"),
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!("embedding server answered {status}")));
        }
        let body: EmbeddingResponse = resp
            .json()
            .await
            .map_err(|e| unavailable(format!("embedding server sent a bad body: {e}")))?;
        if body.data.len() != texts.len() {
            return Err(unavailable(format!(
                "embedding server sent {} vectors for {} texts",
                body.data.len(),
                texts.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (pos, item) in body.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            match out.get_mut(i) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => return Err(unavailable("embedding server sent bad indices".into())),
            }
        }
        let out: Vec<Vec<f32>> = out.into_iter().flatten().collect();
        let dim = out.first().map_or(0, Vec::len);
        if dim == 0 || out.iter().any(|v| v.len() != dim) {
            return Err(unavailable(
                "embedding server sent vectors of unequal length".into(),
            ));
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let keys: Vec<u64> = texts
            .iter()
            .map(|t| text_hash(&self.config.model, t))
            .collect();
        let mut found: Vec<Option<Arc<Vec<f32>>>> = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|k| cache.map.get(k).cloned()).collect()
        };
        // Distinct missing texts, batched.
        let mut missing: Vec<usize> = Vec::new();
        let mut seen: HashMap<u64, ()> = HashMap::new();
        for (i, f) in found.iter().enumerate() {
            if f.is_none() && seen.insert(keys[i], ()).is_none() {
                missing.push(i);
            }
        }
        let mut fresh: HashMap<u64, Arc<Vec<f32>>> = HashMap::new();
        for chunk in missing.chunks(self.config.batch_size) {
            let batch: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
            let vectors = self.request(&batch).await?;
            for (&i, v) in chunk.iter().zip(vectors) {
                fresh.insert(keys[i], Arc::new(v));
            }
        }
        if !fresh.is_empty() && self.config.cache_capacity > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in &fresh {
                if cache.map.insert(*k, v.clone()).is_none() {
                    cache.order.push_back(*k);
                }
                while cache.map.len() > self.config.cache_capacity {
                    match cache.order.pop_front() {
                        Some(old) => {
                            cache.map.remove(&old);
                        }
                        None => break,
                    }
                }
            }
        }
        for (f, k) in found.iter_mut().zip(&keys) {
            if f.is_none() {
                *f = fresh.get(k).cloned();
            }
        }
        Ok(found
            .into_iter()
            .map(|v| v.map(|v| v.as_ref().clone()).unwrap_or_default())
            .collect())
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// How a [`HybridClassifier`] mixes the two models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HybridConfig {
    /// Share of the nearest-neighbour vote in the mixed probabilities (default 0.5).
    pub weight: f32,
    /// Neighbours that vote (default 10).
    pub k: usize,
    /// Temperature of the neighbours' votes: each weighs `exp(similarity / temperature)`
    /// (default 0.05).
    pub temperature: f32,
    /// Longest wait for the query's embedding before answering with the sparse model alone
    /// (default 300 ms).
    pub budget: Duration,
    /// After a failure or a time-out, how long the sparse model answers alone before the
    /// server is tried again (default 30 s).
    pub cooldown: Duration,
}

impl Default for HybridConfig {
    fn default() -> Self {
        Self {
            weight: 0.5,
            k: 10,
            temperature: 0.05,
            budget: Duration::from_millis(300),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A prediction of the [`HybridClassifier`], saying whether the embeddings took part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HybridPrediction {
    /// The mixed (or, on fallback, the sparse) prediction.
    pub prediction: Prediction,
    /// Whether the embedding server answered in time.
    pub used_embeddings: bool,
}

/// The sparse [`IntentClassifier`] mixed with a nearest-neighbour vote over embeddings of its
/// training lines; when the embedding server is slow or down the sparse model answers alone
/// (and the server is left alone for a cool-down).
pub struct HybridClassifier {
    sparse: IntentClassifier,
    embedder: Arc<dyn Embedder>,
    /// Unit vectors of the training lines, row-major.
    vectors: Vec<f32>,
    dim: usize,
    /// Index into the sparse model's labels of every training line.
    labels: Vec<usize>,
    config: HybridConfig,
    down_until: Mutex<Option<Instant>>,
}

impl fmt::Debug for HybridClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridClassifier")
            .field("labels", &self.sparse.labels().len())
            .field("lines", &self.labels.len())
            .field("dim", &self.dim)
            .field("embedder", &self.embedder)
            .field("config", &self.config)
            .finish()
    }
}

impl HybridClassifier {
    /// Embeds the training lines (those the sparse model was trained on) and builds the
    /// classifier.
    ///
    /// # Errors
    /// As [`Embedder::embed`]; [`Error::InvalidInput`] for a line whose label the sparse model
    /// does not know, or a weight outside 0-1.
    pub async fn new(
        sparse: IntentClassifier,
        embedder: Arc<dyn Embedder>,
        examples: &[Example],
        config: HybridConfig,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&config.weight) || config.k == 0 || config.temperature <= 0.0 {
            return Err(Error::InvalidInput {
                reason: "need 0 <= weight <= 1, k >= 1 and a positive temperature".into(),
            });
        }
        let index: HashMap<&str, usize> = sparse
            .labels()
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let labels = examples
            .iter()
            .map(|e| {
                index
                    .get(e.label.as_str())
                    .copied()
                    .ok_or_else(|| Error::InvalidInput {
                        reason: format!("label {:?} is unknown to the sparse model", e.label),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
        let embedded = embedder.embed(&texts).await?;
        let dim = embedded.first().map_or(0, Vec::len);
        if embedded.len() != texts.len() || embedded.iter().any(|v| v.len() != dim) {
            return Err(Error::Unavailable {
                reason: "the embedder returned vectors of unequal length".into(),
            });
        }
        let vectors = embedded.into_iter().flat_map(normalised).collect();
        Ok(Self {
            sparse,
            embedder,
            vectors,
            dim,
            labels,
            config,
            down_until: Mutex::new(None),
        })
    }

    /// The sparse model.
    pub fn sparse(&self) -> &IntentClassifier {
        &self.sparse
    }

    /// Predicts with both models, or with the sparse one alone when the embedding server does
    /// not answer within the budget.
    pub async fn predict(&self, text: &str) -> HybridPrediction {
        let sparse = self.sparse.predict(text);
        let now = Instant::now();
        let skip = self
            .down_until
            .lock()
            .map(|d| d.is_some_and(|until| now < until))
            .unwrap_or(false);
        if skip || self.config.weight == 0.0 || self.dim == 0 {
            return HybridPrediction {
                prediction: sparse,
                used_embeddings: false,
            };
        }
        let query = [text.to_owned()];
        let got = tokio::time::timeout(self.config.budget, self.embedder.embed(&query)).await;
        let v = match got {
            Ok(Ok(mut v)) if v.len() == 1 && v[0].len() == self.dim => normalised(v.remove(0)),
            _ => {
                if let Ok(mut d) = self.down_until.lock() {
                    *d = Some(now + self.config.cooldown);
                }
                return HybridPrediction {
                    prediction: sparse,
                    used_embeddings: false,
                };
            }
        };
        HybridPrediction {
            prediction: self.mix(text, &v),
            used_embeddings: true,
        }
    }

    fn mix(&self, text: &str, v: &[f32]) -> Prediction {
        let classes = self.sparse.labels().len();
        let mut p = self.sparse.probabilities(text);
        // Nearest neighbours by cosine.
        let mut sims: Vec<(f32, usize)> = self
            .vectors
            .chunks_exact(self.dim)
            .zip(&self.labels)
            .map(|(row, &l)| (row.iter().zip(v).map(|(a, b)| a * b).sum(), l))
            .collect();
        let k = self.config.k.min(sims.len());
        if k > 0 {
            sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            sims.truncate(k);
        }
        let top = sims.iter().map(|s| s.0).fold(f32::MIN, f32::max);
        let mut vote = vec![0.0f32; classes];
        for (s, l) in &sims {
            vote[*l] += ((s - top) / self.config.temperature).exp();
        }
        let total: f32 = vote.iter().sum();
        let w = self.config.weight;
        for (pi, vi) in p.iter_mut().zip(&vote) {
            *pi = (1.0 - w) * *pi + w * vi / total.max(f32::MIN_POSITIVE);
        }
        self.sparse.prediction_from(&p, true)
    }
}
