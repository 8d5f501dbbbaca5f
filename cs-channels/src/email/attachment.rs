//! Where the files attached to inbound mails go: messages hold attachments by reference (a URL),
//! never inline.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Stores attachment bytes and returns the URL messages refer to them by.
#[async_trait]
pub trait AttachmentSink: Send + Sync + Debug + 'static {
    /// Stores `bytes` (named `name`, of MIME type `mime`) and returns its URL. Storing the same
    /// bytes under the same name again returns the same URL.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the storage is out of reach.
    async fn store(&self, name: &str, mime: &str, bytes: &[u8]) -> Result<String>;

    /// The bytes stored under `url`, if this sink holds them.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the storage is out of reach.
    async fn load(&self, url: &str) -> Result<Option<Vec<u8>>>;
}

/// A file name safe to use as the last path segment: no separators, no leading dots, no
/// control characters, at most 100 characters.
pub(crate) fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == ':' || c == ' ' { '_' } else { c })
        .take(100)
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "attachment".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn content_key(name: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("{}-{}", &hex::encode(digest)[..24], safe_name(name))
}

/// Keeps attachments in memory, under `memory://attachments/<hash>-<name>` URLs.
#[derive(Debug, Default)]
pub struct MemoryAttachmentSink {
    files: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryAttachmentSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many distinct files it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no file.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

const MEMORY_PREFIX: &str = "memory://attachments/";

#[async_trait]
impl AttachmentSink for MemoryAttachmentSink {
    async fn store(&self, name: &str, _mime: &str, bytes: &[u8]) -> Result<String> {
        let url = format!("{MEMORY_PREFIX}{}", content_key(name, bytes));
        self.lock().insert(url.clone(), bytes.to_vec());
        Ok(url)
    }

    async fn load(&self, url: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(url).cloned())
    }
}

/// Writes attachments as files into one directory, under `file://` URLs.
#[derive(Debug, Clone)]
pub struct FsAttachmentSink {
    dir: PathBuf,
}

impl FsAttachmentSink {
    /// A sink writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory it writes into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, url: &str) -> Option<PathBuf> {
        let name = url.strip_prefix("file://")?;
        let path = PathBuf::from(name);
        let file = path.file_name()?;
        (path.parent() == Some(self.dir.as_path())).then(|| self.dir.join(file))
    }
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Unavailable {
        reason: format!("attachment storage: {what}: {e}"),
    }
}

#[async_trait]
impl AttachmentSink for FsAttachmentSink {
    async fn store(&self, name: &str, _mime: &str, bytes: &[u8]) -> Result<String> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| io_error("create directory", e))?;
        let path = self.dir.join(content_key(name, bytes));
        if tokio::fs::metadata(&path).await.is_err() {
            // Write under a temporary name, then rename: readers never see half a file.
            let tmp = path.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&tmp, bytes)
                .await
                .map_err(|e| io_error("write", e))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| io_error("rename", e))?;
        }
        Ok(format!("file://{}", path.display()))
    }

    async fn load(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let Some(path) = self.path_of(url) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_name(".hidden"), "hidden");
        assert_eq!(safe_name(""), "attachment");
        assert_eq!(safe_name("a b:c.pdf"), "a_b_c.pdf");
        assert_eq!(safe_name("发票.pdf"), "发票.pdf");
    }
}
