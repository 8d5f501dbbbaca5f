//! What the fuzz targets share: a fixed clock, request building, a blocking executor, and the
//! invariants every parser must keep whatever it is given.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use cs_channels::{Error, Parsed, RawInbound, Result};
use cs_core::ManualClock;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

/// The fixed "now" of every target (2026-11-11T00:00:00Z, Unix seconds).
pub const NOW: i64 = 1_794_355_200;

/// A clock stopped at [`NOW`].
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(now()))
}

/// [`NOW`] as a time.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).expect("a valid time")
}

/// A nonce no earlier run used (replay caches refuse a reused one).
pub fn fresh_nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("n{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A request as the webhook router hands it to a channel.
pub fn raw(method: Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> RawInbound {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(*k), HeaderValue::from_str(v)) {
            map.append(k, v);
        }
    }
    RawInbound {
        method,
        uri: uri.parse::<Uri>().expect("a valid target URI"),
        headers: map,
        body: Bytes::copy_from_slice(body),
        received_at: now(),
    }
}

/// Runs a future to completion on this thread (the parsers await nothing external).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// The invariants of a parse whatever the input: a refusal is one of the input errors (never
/// an internal or temporary one), and a success carries no message without a provider id.
pub fn check(result: Result<Parsed>) {
    match result {
        Ok(parsed) => {
            for m in &parsed.messages {
                assert!(
                    m.provider_message_id
                        .as_deref()
                        .is_some_and(|id| !id.is_empty()),
                    "a parsed message without a provider id: {m:?}"
                );
            }
        }
        Err(e) => check_error(&e),
    }
}

/// A refusal of untrusted input must be one that says so.
pub fn check_error(e: &Error) {
    assert!(
        matches!(
            e,
            Error::Unauthenticated { .. }
                | Error::InvalidInput { .. }
                | Error::PayloadTooLarge { .. }
                | Error::TooComplex { .. }
                | Error::Unsupported { .. }
        ),
        "an input error answered as {e:?}"
    );
}
