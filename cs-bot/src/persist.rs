//! Saving and loading a trained [`IntentClassifier`], so a large knowledge file need not be
//! retrained at every start.
//!
//! The format is versioned: an 8-byte magic `OMDKCLF\n`, the format version (`u32`, little
//! endian), the length of a JSON header (`u64`) and the header (labels, threshold, what
//! training chose, dimensions), then the feature hashes (`u64` each), the IDF weights and the
//! model weights (`f32` each), all little endian. A file of another version is refused with
//! [`Error::InvalidInput`] naming both versions.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::classifier::{IntentClassifier, Selection};
use crate::error::{Error, Result};
use crate::features::Vectorizer;
use crate::linear::LinearModel;

const MAGIC: &[u8; 8] = b"OMDKCLF\n";
/// The format version this build writes and reads.
pub const MODEL_FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    labels: Vec<String>,
    threshold: f32,
    oos: Option<u32>,
    selection: Selection,
    dim: u64,
    classes: u64,
    scale: f32,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        reason: reason.into(),
    }
}

impl IntentClassifier {
    /// Writes the classifier in the versioned binary format.
    ///
    /// # Errors
    /// [`Error::Io`] when writing fails.
    pub fn save(&self, mut out: impl Write) -> Result<()> {
        let header = Header {
            labels: self.labels.clone(),
            threshold: self.threshold,
            oos: self.oos,
            selection: self.selection.clone(),
            dim: self.vectorizer.dim() as u64,
            classes: self.labels.len() as u64,
            scale: self.model.scale,
        };
        let json = serde_json::to_vec(&header).map_err(|e| invalid(e.to_string()))?;
        out.write_all(MAGIC)?;
        out.write_all(&MODEL_FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(&json)?;
        let mut buf = Vec::with_capacity(1 << 16);
        let flush = |buf: &mut Vec<u8>, out: &mut dyn Write, force: bool| -> Result<()> {
            if force || buf.len() >= 1 << 16 {
                out.write_all(buf)?;
                buf.clear();
            }
            Ok(())
        };
        for k in self.vectorizer.keys() {
            buf.extend_from_slice(&k.to_le_bytes());
            flush(&mut buf, &mut out, false)?;
        }
        for v in self.vectorizer.idf().iter().chain(self.model.weights()) {
            buf.extend_from_slice(&v.to_le_bytes());
            flush(&mut buf, &mut out, false)?;
        }
        flush(&mut buf, &mut out, true)?;
        out.flush()?;
        Ok(())
    }

    /// Saves to a file (written beside it first, then renamed, so a reader never sees half a
    /// model).
    ///
    /// # Errors
    /// [`Error::Io`] when writing fails.
    pub fn save_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tmp = path.with_extension("tmp");
        {
            let f = std::fs::File::create(&tmp)?;
            self.save(std::io::BufWriter::new(f))?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Reads a classifier written by [`IntentClassifier::save`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another format, another version or a damaged file;
    /// [`Error::Io`] when reading fails.
    pub fn load(mut input: impl Read) -> Result<Self> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        Self::from_bytes(&bytes)
    }

    /// Loads a classifier from a file written by [`IntentClassifier::save_file`].
    ///
    /// # Errors
    /// As [`IntentClassifier::load`].
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_bytes(&std::fs::read(path)?)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(invalid("model file is truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        if take(8)? != MAGIC {
            return Err(invalid("not an omnidesk classifier file"));
        }
        let version = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
        if version != MODEL_FORMAT_VERSION {
            return Err(invalid(format!(
                "model format version {version}, this build reads version {MODEL_FORMAT_VERSION}: retrain"
            )));
        }
        let len = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
        let len = usize::try_from(len).map_err(|_| invalid("header too long"))?;
        let header: Header =
            serde_json::from_slice(take(len)?).map_err(|e| invalid(format!("header: {e}")))?;
        let dim = usize::try_from(header.dim).map_err(|_| invalid("dimension too large"))?;
        let classes = usize::try_from(header.classes).map_err(|_| invalid("too many classes"))?;
        if classes != header.labels.len() || classes < 2 {
            return Err(invalid("label count does not match the model"));
        }
        if header.oos.is_some_and(|o| o as usize >= classes) {
            return Err(invalid("out-of-scope class out of range"));
        }
        let weights = dim
            .checked_add(1)
            .and_then(|d| d.checked_mul(classes))
            .ok_or_else(|| invalid("model too large"))?;
        let expected = dim
            .checked_mul(12)
            .and_then(|b| b.checked_add(weights.checked_mul(4)?))
            .ok_or_else(|| invalid("model too large"))?;
        if rest.len() != expected {
            return Err(invalid(format!(
                "model body has {} bytes, the header says {expected}",
                rest.len()
            )));
        }
        let (keys, tail) = rest.split_at(dim * 8);
        let (idf, w) = tail.split_at(dim * 4);
        let keys: Vec<u64> = keys
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let f32s = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect()
        };
        let vectorizer = Vectorizer::from_parts(header.selection.features, &keys, f32s(idf));
        let model = LinearModel::from_parts(classes, dim, f32s(w), header.scale)
            .ok_or_else(|| invalid("weights do not match the dimensions"))?;
        Ok(Self {
            labels: header.labels,
            vectorizer,
            model,
            threshold: header.threshold,
            oos: header.oos,
            selection: header.selection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::{ClassifierBuilder, Example};

    fn model() -> IntentClassifier {
        let mut ex = Vec::new();
        for i in 0..20 {
            ex.push(Example::new(format!("refund order {i}"), "refund"));
            ex.push(Example::new(format!("我的快递{i}到哪了"), "track"));
        }
        ClassifierBuilder::new().train(&ex).unwrap()
    }

    #[test]
    fn a_saved_model_predicts_the_same_after_loading() {
        let clf = model();
        let mut bytes = Vec::new();
        clf.save(&mut bytes).unwrap();
        let back = IntentClassifier::load(bytes.as_slice()).unwrap();
        for q in ["refund my order", "快递到哪了", "zzz"] {
            assert_eq!(clf.predict(q), back.predict(q));
        }
        assert_eq!(back.selection(), clf.selection());
        let dir = std::env::temp_dir().join(format!("cs-bot-model-{}", std::process::id()));
        clf.save_file(&dir).unwrap();
        assert_eq!(
            IntentClassifier::load_file(&dir).unwrap().predict("退款"),
            clf.predict("退款")
        );
        let _ = std::fs::remove_file(dir);
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let mut bytes = Vec::new();
        model().save(&mut bytes).unwrap();
        let err = |b: &[u8]| IntentClassifier::load(b).unwrap_err().to_string();
        assert!(err(b"hello, world").contains("not an omnidesk"));
        assert!(err(&bytes[..bytes.len() - 4]).contains("body"));
        let mut v2 = bytes.clone();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(err(&v2).contains("version 2"));
        let mut huge = bytes.clone();
        huge.truncate(20);
        assert!(err(&huge).contains("truncated"));
    }
}
