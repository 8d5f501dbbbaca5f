//! Small helpers the webhook adapters share for checking inbound requests.
//!
//! The module is built when any HTTP adapter is; each helper only for the adapters that use it
//! (voice builds on SMS).

use crate::error::{Error, Result};

/// Refuses a body over `limit` bytes.
pub(crate) fn check_size(body: &[u8], limit: usize) -> Result<()> {
    if body.len() > limit {
        return Err(Error::PayloadTooLarge {
            size: body.len(),
            limit,
        });
    }
    Ok(())
}

/// A header's value as text, if present and visible ASCII.
#[cfg(any(
    feature = "webhook",
    feature = "sms",
    feature = "telegram",
    feature = "whatsapp"
))]
pub(crate) fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The decoded query parameters of `uri`, in order; no more than
/// [`crate::limits::MAX_FORM_FIELDS`] of them (the rest are ignored).
#[cfg(any(feature = "wechat", feature = "whatsapp"))]
pub(crate) fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .take(crate::limits::MAX_FORM_FIELDS)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The decoded pairs of an `application/x-www-form-urlencoded` body, in order.
#[cfg(feature = "sms")]
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// [`form_pairs`] of a provider's form after checking its field count and field sizes
/// ([`crate::limits::check_form`]).
#[cfg(feature = "sms")]
pub(crate) fn bounded_form_pairs(body: &[u8]) -> Result<Vec<(String, String)>> {
    crate::limits::check_form(
        body,
        crate::limits::MAX_FORM_FIELDS,
        crate::limits::MAX_FORM_FIELD_BYTES,
    )?;
    Ok(form_pairs(body))
}

/// The first value of `name` in `pairs`.
#[cfg(any(feature = "sms", feature = "wechat", feature = "whatsapp"))]
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
#[cfg(any(feature = "webhook", feature = "whatsapp"))]
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Parses a JSON body, naming the provider in the error, after checking its nesting depth
/// ([`crate::limits::MAX_JSON_DEPTH`]).
#[cfg(any(feature = "webhook", feature = "telegram", feature = "whatsapp"))]
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(provider: &str, body: &[u8]) -> Result<T> {
    crate::limits::check_json(body, crate::limits::MAX_JSON_DEPTH)?;
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("malformed {provider} payload: {e}")))
}

/// A builder setting that must be present and non-empty.
#[cfg(any(feature = "sms", feature = "wechat", feature = "whatsapp"))]
pub(crate) fn required(value: Option<String>, provider: &str, what: &str) -> Result<String> {
    value
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid(format!("{provider} needs {what}")))
}

/// Escapes text for an XML element or attribute.
#[cfg(feature = "sms")]
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A redacting `Debug` stand-in for secrets in configs.
pub(crate) const REDACTED: &str = "<redacted>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    #[cfg(any(feature = "wechat", feature = "whatsapp"))]
    fn query_pairs_decode() {
        let uri: http::Uri = "/x?a=1&b=hello%20world&c=%2B1".parse().unwrap();
        let pairs = query_pairs(&uri);
        assert_eq!(param(&pairs, "b"), Some("hello world"));
        assert_eq!(param(&pairs, "c"), Some("+1"));
        assert_eq!(param(&pairs, "z"), None);
    }

    #[test]
    fn oversized_bodies_are_refused_with_sizes() {
        assert!(check_size(b"1234", 4).is_ok());
        assert!(matches!(
            check_size(b"12345", 4),
            Err(Error::PayloadTooLarge { size: 5, limit: 4 })
        ));
    }
}
