//! Sparse TF-IDF features for Chinese and English text.
//!
//! A text is normalised (lower case, full-width ASCII folded, digits mapped to `0`), split into
//! runs of Latin words and runs of CJK characters, and turned into hashed feature ids:
//! - word n-grams over the word sequence (English words and jieba-segmented Chinese words);
//! - character n-grams inside each English word, padded with spaces (`char_wb` style);
//! - character n-grams over each CJK run (Chinese needs no dictionary for these).
//!
//! Feature strings are never allocated: each n-gram is hashed (FNV-1a) as it is read, and the
//! vocabulary maps hashes to dense column ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use jieba_rs::Jieba;
use serde::{Deserialize, Serialize};

use crate::text::is_cjk;

/// The process-wide jieba segmenter (its dictionary loads once, on first use).
pub(crate) fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// Which text features the vectoriser extracts and how it weighs them (part of the
/// hyper-parameters [`crate::ClassifierBuilder`] chooses from the training data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeatureConfig {
    /// Word n-gram sizes, inclusive (`(1, 2)`: unigrams and bigrams). `(0, 0)` turns them off.
    pub word: (u8, u8),
    /// Character n-gram sizes inside English words (padded with a space), inclusive.
    pub char_latin: (u8, u8),
    /// Character n-gram sizes over Chinese runs, inclusive.
    pub char_cjk: (u8, u8),
    /// Segment Chinese runs into words with jieba (otherwise every character is a word).
    pub segment: bool,
    /// Minimum document frequency of a feature to enter the vocabulary.
    pub min_df: u32,
    /// Normalise word and character features separately, so each group carries half the
    /// weight of the vector whatever the number of its features.
    pub group_norm: bool,
    /// Term frequency as `1 + ln(tf)` (otherwise the raw count).
    pub sublinear_tf: bool,
    /// Multiply by the inverse document frequency (otherwise every feature weighs 1).
    pub idf: bool,
}

impl FeatureConfig {
    /// The full feature set of the intent classifier (the first wave's fixed choice).
    pub const RICH: Self = Self {
        word: (1, 2),
        char_latin: (3, 5),
        char_cjk: (1, 3),
        segment: true,
        min_df: 1,
        group_norm: true,
        sublinear_tf: true,
        idf: true,
    };
    /// The classical baseline: word unigrams only (Chinese segmented with jieba).
    pub const WORDS: Self = Self {
        word: (1, 1),
        char_latin: (0, 0),
        char_cjk: (0, 0),
        segment: true,
        min_df: 1,
        group_norm: false,
        sublinear_tf: true,
        idf: true,
    };

    /// These features with other word n-gram sizes.
    pub fn with_word(mut self, lo: u8, hi: u8) -> Self {
        self.word = (lo, hi);
        self
    }

    /// These features with other character n-gram sizes (English words, Chinese runs).
    pub fn with_chars(mut self, latin: (u8, u8), cjk: (u8, u8)) -> Self {
        self.char_latin = latin;
        self.char_cjk = cjk;
        self
    }

    /// These features with another term weighting.
    pub fn with_weighting(mut self, sublinear_tf: bool, idf: bool) -> Self {
        self.sublinear_tf = sublinear_tf;
        self.idf = idf;
        self
    }

    /// These features with another minimum document frequency.
    pub fn with_min_df(mut self, min_df: u32) -> Self {
        self.min_df = min_df.max(1);
        self
    }
}

/// A hasher for keys that already are good 64-bit hashes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by pre-hashed `u64`s.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Clone, Copy)]
struct Fnv(u64, u8);

impl Fnv {
    fn new(kind: u8) -> Self {
        let mut h = Self(FNV_OFFSET, kind);
        h.byte(kind);
        h
    }
    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(FNV_PRIME);
    }
    fn char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            self.byte(b);
        }
    }
    fn str(&mut self, s: &str) {
        for b in s.bytes() {
            self.byte(b);
        }
    }
    fn finish(self) -> u64 {
        // Final avalanche (splitmix64) so the low bits used by the hash map are well mixed.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top bit tells word features from character features (for group normalisation).
        if self.1 == KIND_WORD {
            z & !CHAR_BIT
        } else {
            z | CHAR_BIT
        }
    }
}

const CHAR_BIT: u64 = 1 << 63;

/// Folds a character: lower case, full-width ASCII to ASCII, digits to `0`.
fn fold(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    };
    if c.is_numeric() {
        '0'
    } else if c.is_uppercase() {
        c.to_lowercase().next().unwrap_or(c)
    } else {
        c
    }
}

/// A run of text of one script.
enum Run {
    Latin(String),
    Cjk(String),
}

fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_cjk = false;
    let flush = |cur: &mut String, cjk: bool, out: &mut Vec<Run>| {
        if !cur.is_empty() {
            let s = std::mem::take(cur);
            out.push(if cjk { Run::Cjk(s) } else { Run::Latin(s) });
        }
    };
    for c in text.chars() {
        if c == '\'' || c == '\u{2019}' {
            continue; // "don't" -> "dont"
        }
        let c = fold(c);
        if is_cjk(c) {
            if !cur_cjk {
                flush(&mut cur, false, &mut out);
                cur_cjk = true;
            }
            cur.push(c);
        } else if c.is_alphanumeric() {
            if cur_cjk {
                flush(&mut cur, true, &mut out);
                cur_cjk = false;
            }
            cur.push(c);
        } else {
            flush(&mut cur, cur_cjk, &mut out);
            cur_cjk = false;
        }
    }
    flush(&mut cur, cur_cjk, &mut out);
    out
}

const KIND_WORD: u8 = 1;
const KIND_CHAR_LATIN: u8 = 2;
const KIND_CHAR_CJK: u8 = 3;

/// Appends the hashed features of `text` (with repetitions) to `out`.
pub(crate) fn hashed_features(text: &str, cfg: &FeatureConfig, out: &mut Vec<u64>) {
    let runs = runs(text);
    // Word sequence: hashes of the words themselves, then n-grams over them.
    let mut words: Vec<&str> = Vec::new();
    let mut cjk_words: Vec<&str> = Vec::new();
    for run in &runs {
        match run {
            Run::Latin(w) => {
                words.push(w);
                let (lo, hi) = cfg.char_latin;
                if hi > 0 {
                    let chars: Vec<char> = std::iter::once(' ')
                        .chain(w.chars())
                        .chain(std::iter::once(' '))
                        .collect();
                    char_ngrams(&chars, lo, hi, KIND_CHAR_LATIN, out);
                }
            }
            Run::Cjk(s) => {
                let (lo, hi) = cfg.char_cjk;
                if hi > 0 {
                    let chars: Vec<char> = s.chars().collect();
                    char_ngrams(&chars, lo, hi, KIND_CHAR_CJK, out);
                }
                if cfg.segment {
                    cjk_words.clear();
                    cjk_words.extend(jieba().cut(s, true).into_iter().map(|t| t.word));
                    words.extend(cjk_words.iter().copied());
                } else {
                    words.extend(s.char_indices().map(|(i, c)| &s[i..i + c.len_utf8()]));
                }
            }
        }
    }
    let (lo, hi) = cfg.word;
    if hi == 0 {
        return;
    }
    for n in lo.max(1)..=hi {
        let n = usize::from(n);
        if words.len() < n {
            break;
        }
        for gram in words.windows(n) {
            let mut h = Fnv::new(KIND_WORD);
            for (i, w) in gram.iter().enumerate() {
                if i > 0 {
                    h.byte(b' ');
                }
                h.str(w);
            }
            out.push(h.finish());
        }
    }
}

fn char_ngrams(chars: &[char], lo: u8, hi: u8, kind: u8, out: &mut Vec<u64>) {
    for n in lo.max(1)..=hi {
        let n = usize::from(n);
        if chars.len() < n {
            break;
        }
        for gram in chars.windows(n) {
            // Skip a gram that is only the padding.
            if gram.iter().all(|c| *c == ' ') {
                continue;
            }
            let mut h = Fnv::new(kind);
            h.byte(n as u8);
            for c in gram {
                h.char(*c);
            }
            out.push(h.finish());
        }
    }
}

/// A sparse vector: (column, value) sorted by column.
pub(crate) type Sparse = Vec<(u32, f32)>;

/// A fitted TF-IDF vectoriser.
#[derive(Debug, Clone)]
pub(crate) struct Vectorizer {
    cfg: FeatureConfig,
    vocab: IdMap<u32>,
    idf: Vec<f32>,
}

/// A text's hashed features with their counts, sorted by hash.
pub(crate) type Counted = Vec<(u64, f32)>;

/// The hashed, counted features of `text` under `cfg`.
pub(crate) fn counted(text: &str, cfg: &FeatureConfig) -> Counted {
    let mut buf = Vec::with_capacity(256);
    hashed_features(text, cfg, &mut buf);
    count(&mut buf)
}

impl Vectorizer {
    /// Learns the vocabulary and IDF weights from `texts`, and returns the TF-IDF rows.
    pub(crate) fn fit_transform(cfg: FeatureConfig, texts: &[&str]) -> (Self, Vec<Sparse>) {
        let docs: Vec<Counted> = texts.iter().map(|t| counted(t, &cfg)).collect();
        let refs: Vec<&Counted> = docs.iter().collect();
        let me = Self::fit_counted(cfg, &refs);
        let rows = docs.iter().map(|d| me.weigh(d)).collect();
        (me, rows)
    }

    /// Learns the vocabulary and IDF weights from texts already hashed under `cfg`.
    pub(crate) fn fit_counted(cfg: FeatureConfig, docs: &[&Counted]) -> Self {
        let mut df: IdMap<u32> = IdMap::default();
        for d in docs {
            for (h, _) in d.iter() {
                *df.entry(*h).or_default() += 1;
            }
        }
        let n = docs.len() as f32;
        let mut keys: Vec<(u64, u32)> = df.into_iter().filter(|(_, d)| *d >= cfg.min_df).collect();
        keys.sort_unstable();
        let mut vocab: IdMap<u32> = IdMap::default();
        vocab.reserve(keys.len());
        let mut idf = Vec::with_capacity(keys.len());
        for (h, d) in keys {
            vocab.insert(h, idf.len() as u32);
            idf.push(if cfg.idf {
                ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0
            } else {
                1.0
            });
        }
        Self { cfg, vocab, idf }
    }

    /// Rebuilds a vectoriser from its parts ([`Vectorizer::keys`] in column order).
    pub(crate) fn from_parts(cfg: FeatureConfig, keys: &[u64], idf: Vec<f32>) -> Self {
        let mut vocab: IdMap<u32> = IdMap::default();
        vocab.reserve(keys.len());
        for (i, k) in keys.iter().enumerate() {
            vocab.insert(*k, i as u32);
        }
        Self { cfg, vocab, idf }
    }

    /// The feature hashes in column order.
    pub(crate) fn keys(&self) -> Vec<u64> {
        let mut k = vec![0u64; self.idf.len()];
        for (h, c) in &self.vocab {
            k[*c as usize] = *h;
        }
        k
    }

    /// The IDF weight of every column.
    pub(crate) fn idf(&self) -> &[f32] {
        &self.idf
    }

    /// The TF-IDF row of a text hashed under this vectoriser's configuration.
    pub(crate) fn transform_counted(&self, d: &Counted) -> Sparse {
        self.weigh(d)
    }

    /// Number of columns.
    pub(crate) fn dim(&self) -> usize {
        self.idf.len()
    }

    /// The TF-IDF row of one text (unit length; empty when no feature is known).
    pub(crate) fn transform(&self, text: &str) -> Sparse {
        let mut buf = Vec::with_capacity(256);
        hashed_features(text, &self.cfg, &mut buf);
        let counted = count(&mut buf);
        self.weigh(&counted)
    }

    fn weigh(&self, counted: &[(u64, f32)]) -> Sparse {
        let mut norms = [0.0f32; 2];
        let mut row: Vec<(u32, f32, usize)> = counted
            .iter()
            .filter_map(|(h, tf)| {
                self.vocab.get(h).map(|&col| {
                    let tf = if self.cfg.sublinear_tf {
                        1.0 + tf.ln()
                    } else {
                        *tf
                    };
                    let v = tf * self.idf[col as usize];
                    let g = usize::from(self.cfg.group_norm && h & CHAR_BIT != 0);
                    norms[g] += v * v;
                    (col, v, g)
                })
            })
            .collect();
        row.sort_unstable_by_key(|(c, _, _)| *c);
        let groups = norms.iter().filter(|n| **n > 0.0).count() as f32;
        let div = norms.map(|n| (n * groups).sqrt());
        row.into_iter().map(|(c, v, g)| (c, v / div[g])).collect()
    }
}

/// Sorts hashes and counts repetitions.
fn count(buf: &mut [u64]) -> Vec<(u64, f32)> {
    buf.sort_unstable();
    let mut out: Vec<(u64, f32)> = Vec::with_capacity(buf.len());
    for h in buf.iter() {
        match out.last_mut() {
            Some((last, c)) if last == h => *c += 1.0,
            _ => out.push((*h, 1.0)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_scripts_yield_features() {
        let mut en = Vec::new();
        hashed_features("Where is my PARCEL?", &FeatureConfig::RICH, &mut en);
        let mut en2 = Vec::new();
        hashed_features("where is my parcel", &FeatureConfig::RICH, &mut en2);
        assert_eq!(en, en2, "case and punctuation do not matter");
        let mut zh = Vec::new();
        hashed_features("我的快递到哪了", &FeatureConfig::RICH, &mut zh);
        // 7 unigrams + 6 bigrams + 5 trigrams of characters, plus words and word bigrams.
        assert!(zh.len() > 18, "{}", zh.len());
        let mut full = Vec::new();
        hashed_features("ＯＲＤＥＲ １２３", &FeatureConfig::WORDS, &mut full);
        let mut half = Vec::new();
        hashed_features("order 999", &FeatureConfig::WORDS, &mut half);
        assert_eq!(full, half, "full-width folded, digits mapped");
    }

    #[test]
    fn vectors_are_unit_length_and_ignore_unknown_features() {
        let (v, rows) = Vectorizer::fit_transform(
            FeatureConfig::RICH,
            &["refund my order", "我要退款", "track my parcel"],
        );
        for r in &rows {
            let n: f32 = r.iter().map(|(_, x)| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
        assert!(v.transform("zzzz qqqq").is_empty());
        assert!(!v.transform("退款").is_empty());
        assert!(v.dim() > 30);
    }
}
