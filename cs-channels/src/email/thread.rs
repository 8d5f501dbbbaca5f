//! Email threading: thread keys, the store that remembers which Message-ID belongs to which
//! thread, and the rules that put an inbound mail into a thread.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use cs_core::ConversationId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

/// How many Message-IDs of a thread are kept for the `References` header of replies.
pub(crate) const MAX_REFERENCES: usize = 20;

/// A thread's token: lower-case letters and digits, 6 to 32 of them. It appears in the reply
/// address (`support+<token>@shop`) and in the subject (`[#<token>]`) of every mail we send, so
/// replies find their way back even when a mail client drops the `In-Reply-To` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ThreadKey(String);

impl ThreadKey {
    /// Checks and wraps a token.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless `token` is 6 to 32 lower-case ASCII letters and digits.
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if Self::is_token(&token) {
            Ok(Self(token))
        } else {
            Err(Error::invalid(format!("not a thread token: {token:?}")))
        }
    }

    /// Derives the token for `seed` (a Message-ID, a conversation id) under `secret`: the same
    /// seed always gives the same token, and without the secret nobody can guess another
    /// customer's token.
    pub fn derive(secret: &[u8], seed: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(seed.as_bytes());
        let digest = mac.finalize().into_bytes();
        Self(hex::encode(&digest[..8]))
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_token(s: &str) -> bool {
        (6..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }

    /// The `[#token]` tag in `subject`, if any.
    pub fn from_subject(subject: &str) -> Option<Self> {
        let mut rest = subject;
        while let Some(start) = rest.find("[#") {
            let after = &rest[start + 2..];
            // A token is at most 32 characters (blanks around it allowed): look for its `]`
            // that far only, so a subject of many open tags costs linear time, not quadratic.
            let window = &after.as_bytes()[..after.len().min(TAG_WINDOW)];
            if let Some(end) = window.iter().position(|&b| b == b']') {
                let token = after[..end].trim().to_ascii_lowercase();
                if Self::is_token(&token) {
                    return Some(Self(token));
                }
            }
            rest = after;
        }
        None
    }

    /// The token of a plus address `local+token@domain`, if `address` is one for `local` at
    /// `domain` (compared without case).
    pub fn from_plus_address(address: &str, local: &str, domain: &str) -> Option<Self> {
        let (user, host) = address.trim().rsplit_once('@')?;
        if !host.eq_ignore_ascii_case(domain) {
            return None;
        }
        let (base, tag) = user.split_once('+')?;
        if !base.eq_ignore_ascii_case(local) {
            return None;
        }
        let token = tag.to_ascii_lowercase();
        Self::is_token(&token).then_some(Self(token))
    }
}

impl fmt::Display for ThreadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ThreadKey {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<ThreadKey> for String {
    fn from(k: ThreadKey) -> Self {
        k.0
    }
}

/// Which rule put a mail into its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThreadedBy {
    /// The token in a plus address (`support+<token>@shop`) it was sent to.
    PlusAddress,
    /// `In-Reply-To` or `References` named a mail of the thread.
    Reply,
    /// The `[#<token>]` tag in its subject.
    SubjectTag,
    /// Nothing matched: it starts a new thread.
    New,
    /// Its own Message-ID was recorded before: a re-delivery of a mail already ingested.
    Redelivery,
}

/// What is remembered about one thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadState {
    /// The thread's token.
    pub key: ThreadKey,
    /// The conversation its messages were stored in, once the engine said so.
    pub conversation: Option<ConversationId>,
    /// The subject of its first mail, without `Re:` prefixes and tags.
    pub subject: Option<String>,
    /// The Message-IDs of its latest mails, oldest first (at most 20), without angle brackets.
    pub message_ids: Vec<String>,
}

impl ThreadState {
    /// An empty thread.
    pub fn new(key: ThreadKey) -> Self {
        Self {
            key,
            conversation: None,
            subject: None,
            message_ids: Vec::new(),
        }
    }

    /// Appends a Message-ID, keeping the newest [`MAX_REFERENCES`].
    pub(crate) fn push_message_id(&mut self, id: &str) {
        if self.message_ids.iter().any(|m| m == id) {
            return;
        }
        self.message_ids.push(id.to_owned());
        let extra = self.message_ids.len().saturating_sub(MAX_REFERENCES);
        self.message_ids.drain(..extra);
    }
}

/// Remembers threads and the Message-IDs in them (both those we sent and those we received),
/// so replies thread and re-delivered mails are recognised.
#[async_trait]
pub trait ThreadStore: Send + Sync + fmt::Debug + 'static {
    /// The thread a Message-ID (without angle brackets) was recorded in.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backing store is out of reach.
    async fn thread_of(&self, message_id: &str) -> Result<Option<ThreadKey>>;

    /// Records that `message_id` belongs to `thread`; a second record of the same id keeps the
    /// first thread. Returns whether the id was new.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backing store is out of reach.
    async fn record(&self, message_id: &str, thread: &ThreadKey) -> Result<bool>;

    /// A thread's state.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backing store is out of reach.
    async fn load(&self, thread: &ThreadKey) -> Result<Option<ThreadState>>;

    /// Stores a thread's state (replacing what was there) and indexes its conversation.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backing store is out of reach.
    async fn save(&self, state: &ThreadState) -> Result<()>;

    /// The thread most recently saved with `conversation`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backing store is out of reach.
    async fn thread_of_conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ThreadKey>>;
}

/// A [`ThreadStore`] in memory (lost on restart; the engine still de-duplicates on the
/// provider message id).
#[derive(Debug, Default)]
pub struct MemoryThreadStore {
    inner: Mutex<MemoryThreads>,
}

#[derive(Debug, Default)]
struct MemoryThreads {
    by_message: HashMap<String, ThreadKey>,
    threads: HashMap<ThreadKey, ThreadState>,
    by_conversation: HashMap<ConversationId, ThreadKey>,
}

impl MemoryThreadStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryThreads> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ThreadStore for MemoryThreadStore {
    async fn thread_of(&self, message_id: &str) -> Result<Option<ThreadKey>> {
        Ok(self.lock().by_message.get(message_id).cloned())
    }

    async fn record(&self, message_id: &str, thread: &ThreadKey) -> Result<bool> {
        let mut inner = self.lock();
        if inner.by_message.contains_key(message_id) {
            return Ok(false);
        }
        inner
            .by_message
            .insert(message_id.to_owned(), thread.clone());
        Ok(true)
    }

    async fn load(&self, thread: &ThreadKey) -> Result<Option<ThreadState>> {
        Ok(self.lock().threads.get(thread).cloned())
    }

    async fn save(&self, state: &ThreadState) -> Result<()> {
        let mut inner = self.lock();
        if let Some(c) = state.conversation {
            inner.by_conversation.insert(c, state.key.clone());
        }
        inner.threads.insert(state.key.clone(), state.clone());
        Ok(())
    }

    async fn thread_of_conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ThreadKey>> {
        Ok(self.lock().by_conversation.get(&conversation).cloned())
    }
}

/// How far after `[#` a subject tag's `]` is looked for.
const TAG_WINDOW: usize = 48;

/// Strips `Re:`/`Fwd:`/`AW:`/`回复：` prefixes and `[#token]` tags from a subject, in time
/// linear in its length.
pub(crate) fn base_subject(subject: &str) -> String {
    // Tags first, wherever they are: `[#` up to the next `]`, removed in one pass (an unclosed
    // tag and everything after it stays).
    let mut s = String::with_capacity(subject.len());
    let mut rest = subject.trim();
    while let Some(start) = rest.find("[#") {
        let Some(end) = rest[start..].find(']') else {
            break;
        };
        s.push_str(&rest[..start]);
        rest = &rest[start + end + 1..];
    }
    s.push_str(rest);
    let mut s = s.trim();
    loop {
        // Only the start can hold a prefix: lower-case a few characters, not the whole subject.
        let head: String = s.chars().take(8).collect();
        let lower = head.to_lowercase();
        let cut = [
            "re:",
            "fw:",
            "fwd:",
            "aw:",
            "sv:",
            "回复:",
            "回复：",
            "转发:",
            "转发：",
        ]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| p.len());
        match cut {
            // The prefixes are ASCII or CJK with the same byte length in lower case.
            Some(n) if s.is_char_boundary(n) => s = s[n..].trim_start(),
            _ => break,
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_derived_stably() {
        assert!(ThreadKey::new("abc123").is_ok());
        assert!(ThreadKey::new("ABC123").is_err());
        assert!(ThreadKey::new("abc").is_err());
        assert!(ThreadKey::new("abc-123").is_err());
        let a = ThreadKey::derive(b"secret", "m1@x");
        assert_eq!(a, ThreadKey::derive(b"secret", "m1@x"));
        assert_ne!(a, ThreadKey::derive(b"other", "m1@x"));
        assert_eq!(a.as_str().len(), 16);
    }

    #[test]
    fn subject_tags_and_plus_addresses_are_found() {
        assert_eq!(
            ThreadKey::from_subject("Re: Where is my order? [#a1b2c3d4]")
                .unwrap()
                .as_str(),
            "a1b2c3d4"
        );
        assert_eq!(
            ThreadKey::from_subject("[#] [#no] [#ok1234]")
                .unwrap()
                .as_str(),
            "ok1234"
        );
        assert!(ThreadKey::from_subject("[#a1b2c3d4").is_none());
        assert_eq!(
            ThreadKey::from_plus_address("Support+A1B2C3D4@Shop.Test", "support", "shop.test")
                .unwrap()
                .as_str(),
            "a1b2c3d4"
        );
        assert!(
            ThreadKey::from_plus_address("sales+a1b2c3d4@shop.test", "support", "shop.test")
                .is_none()
        );
        assert!(
            ThreadKey::from_plus_address("support+a1b2c3d4@evil.test", "support", "shop.test")
                .is_none()
        );
        assert!(
            ThreadKey::from_plus_address("support@shop.test", "support", "shop.test").is_none()
        );
    }

    #[test]
    fn base_subject_strips_prefixes_and_tags() {
        assert_eq!(
            base_subject("Re: RE: Fwd:  Where is   my order? [#abc123]"),
            "Where is my order?"
        );
        assert_eq!(base_subject("回复：退款"), "退款");
        assert_eq!(base_subject("Refund"), "Refund");
    }

    #[test]
    fn thread_state_keeps_the_newest_references() {
        let mut s = ThreadState::new(ThreadKey::new("abcdef").unwrap());
        for i in 0..30 {
            s.push_message_id(&format!("m{i}@x"));
        }
        s.push_message_id("m29@x");
        assert_eq!(s.message_ids.len(), MAX_REFERENCES);
        assert_eq!(s.message_ids.first().unwrap(), "m10@x");
        assert_eq!(s.message_ids.last().unwrap(), "m29@x");
    }
}
