//! Remembers the `timestamp` + `nonce` pairs seen inside the replay window.
//!
//! WeChat's `signature` covers the token, `timestamp` and `nonce` only: not the body, not the
//! method. Whoever captures one signed URL (a verification GET, a message POST) could post any
//! body with it until the timestamp leaves the replay window. So each signed pair is bound to
//! the first request that used it: the same pair again is accepted only for the same method and
//! the same body (a provider retry, which the store de-duplicates by `MsgId`), never for a
//! different body or a POST reusing a GET's URL.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a signed pair was first used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A URL-verification GET.
    Verify,
    /// A message POST with this body digest.
    Post([u8; 32]),
}

/// The most pairs kept; older ones go first when it is full (WeChat itself sends far fewer
/// inside five minutes, and only requests with a valid signature get here).
const CAPACITY: usize = 200_000;

/// The cache: pairs by key, and their expiry order.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<(i64, String), Use>,
    /// (expires at, key), in insertion order; timestamps are within the window of "now", so
    /// this order is close to expiry order and pruning from the front is enough.
    order: VecDeque<(i64, (i64, String))>,
}

impl ReplayCache {
    /// Records a verified request signed with `timestamp` + `nonce`; `body` is `None` for a GET.
    /// `now` and `window` are in seconds.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the pair was already used for another method or body.
    pub(crate) fn check(
        &self,
        timestamp: i64,
        nonce: &str,
        body: Option<&[u8]>,
        now: i64,
        window: i64,
    ) -> Result<()> {
        let this = match body {
            None => Use::Verify,
            Some(b) => Use::Post(Sha256::digest(b).into()),
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((expires, _)) = inner.order.front() {
            if *expires >= now && inner.order.len() < CAPACITY {
                break;
            }
            let (_, key) = inner.order.pop_front().expect("front exists");
            inner.seen.remove(&key);
        }
        let key = (timestamp, nonce.to_owned());
        match inner.seen.get(&key) {
            Some(first) if *first == this => Ok(()),
            Some(_) => Err(Error::unauthenticated(
                "this timestamp and nonce were already used for another request (replay)",
            )),
            None => {
                inner.seen.insert(key.clone(), this);
                // A pair stays refusable as long as its timestamp is inside the window.
                inner.order.push_back((timestamp + window, key));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_bound_to_its_first_method_and_body() {
        let c = ReplayCache::default();
        c.check(100, "n", Some(b"a"), 100, 300).unwrap();
        c.check(100, "n", Some(b"a"), 101, 300).unwrap(); // a provider retry
        assert!(c.check(100, "n", Some(b"b"), 102, 300).is_err());
        assert!(c.check(100, "n", None, 102, 300).is_err());
        c.check(100, "m", None, 102, 300).unwrap();
        c.check(100, "m", None, 102, 300).unwrap(); // verification may be repeated
        assert!(c.check(100, "m", Some(b"a"), 102, 300).is_err());
        c.check(101, "n", Some(b"b"), 102, 300).unwrap();
    }

    #[test]
    fn pairs_are_forgotten_after_the_window() {
        let c = ReplayCache::default();
        c.check(100, "n", Some(b"a"), 100, 300).unwrap();
        // Past the window the timestamp check refuses the request anyway; the entry is gone.
        c.check(500, "x", Some(b"a"), 500, 300).unwrap();
        assert_eq!(c.inner.lock().unwrap().seen.len(), 1);
    }
}
