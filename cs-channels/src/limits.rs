//! Structure limits checked by a cheap scan of the raw bytes before a parser sees them.
//!
//! Every adapter checks its input in the same order: size limit, then signature (wherever the
//! provider's scheme signs the raw body), then these structure limits, then the parser. A scan
//! here is one pass over the bytes with constant memory, so a body that is within the size limit
//! cannot make the parser recurse deeply, allocate per field without bound, or do quadratic work.
//!
//! | input | check | default |
//! |---|---|---|
//! | JSON (WhatsApp, Telegram, generic webhook, widget frames) | [`check_json`]: nesting depth | [`MAX_JSON_DEPTH`] |
//! | forms (SMS, voice) | [`check_form`]: field count, bytes per field | [`MAX_FORM_FIELDS`], [`MAX_FORM_FIELD_BYTES`] |
//! | TOML (IVR menu files, the service configuration) | [`check_toml`]: bytes, nesting of arrays and inline tables | [`MAX_TOML_BYTES`], [`MAX_TOML_DEPTH`] |
//!
//! Mail has its own scan (`email::MimeLimits`, behind the `email` feature) and WeChat's XML is
//! read as a bounded stream.
//!
//! ```
//! use cs_channels::{Error, limits};
//!
//! assert!(limits::check_json(br#"{"a": [1, {"b": "[[[[["}]}"#, 3).is_ok());
//! assert!(matches!(
//!     limits::check_json(b"[[[[1]]]]", 3),
//!     Err(Error::TooComplex { limit: 3, .. })
//! ));
//! ```

use crate::error::{Error, Result};

/// The deepest JSON nesting accepted from a provider (real payloads nest 6-8 levels).
pub const MAX_JSON_DEPTH: usize = 32;
/// The most fields a provider form (SMS, voice) may have (Twilio sends about 30; MMS adds 20).
pub const MAX_FORM_FIELDS: usize = 128;
/// The most bytes one `name=value` pair of a form may have, still URL-encoded (an SMS body of
/// 1,600 characters of CJK text is about 14 KiB encoded).
pub const MAX_FORM_FIELD_BYTES: usize = 32 * 1024;
/// The largest TOML file read (an IVR menu file).
pub const MAX_TOML_BYTES: usize = 256 * 1024;
/// The deepest nesting of TOML arrays and inline tables accepted.
pub const MAX_TOML_DEPTH: usize = 16;

/// How deeply `json` nests arrays and objects, counting brackets outside strings. Malformed JSON
/// gets a figure too (the parser refuses it afterwards); the scan never fails.
pub fn json_depth(json: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses JSON nested deeper than `max_depth` levels, before it is parsed.
///
/// # Errors
/// [`Error::TooComplex`] over the limit.
pub fn check_json(json: &[u8], max_depth: usize) -> Result<()> {
    if json_depth(json) > max_depth {
        return Err(Error::too_complex("JSON nesting depth", max_depth));
    }
    Ok(())
}

/// Refuses an `application/x-www-form-urlencoded` body with more than `max_fields` fields or a
/// field over `max_field_bytes` (URL-encoded), before it is decoded.
///
/// # Errors
/// [`Error::TooComplex`] over either limit.
pub fn check_form(body: &[u8], max_fields: usize, max_field_bytes: usize) -> Result<()> {
    let mut fields = 0usize;
    for field in body.split(|&b| b == b'&').filter(|f| !f.is_empty()) {
        fields += 1;
        if fields > max_fields {
            return Err(Error::too_complex("form fields", max_fields));
        }
        if field.len() > max_field_bytes {
            return Err(Error::too_complex(
                "bytes in one form field",
                max_field_bytes,
            ));
        }
    }
    Ok(())
}

/// Refuses TOML over `max_bytes` or with arrays and inline tables nested deeper than
/// `max_depth`, before it is parsed. The scan skips comments and the four kinds of strings.
///
/// # Errors
/// [`Error::PayloadTooLarge`] over the size, [`Error::TooComplex`] over the depth.
pub fn check_toml(text: &str, max_bytes: usize, max_depth: usize) -> Result<()> {
    if text.len() > max_bytes {
        return Err(Error::PayloadTooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    if toml_depth(text.as_bytes()) > max_depth {
        return Err(Error::too_complex("TOML nesting depth", max_depth));
    }
    Ok(())
}

/// How deeply `toml` nests `[` and `{` outside strings and comments. Table headers
/// (`[a]`, `[[a]]`) count one or two levels, which the limit allows for.
fn toml_depth(toml: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut i = 0;
    while i < toml.len() {
        let rest = &toml[i..];
        match toml[i] {
            b'#' => {
                i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                continue;
            }
            q @ (b'"' | b'\'') => {
                let triple = rest.len() >= 3 && rest[1] == q && rest[2] == q;
                i += if triple {
                    3 + skip_multiline(&rest[3..], q)
                } else {
                    1 + skip_string(&rest[1..], q)
                };
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Bytes up to and including the closing quote of a one-line string (basic strings have
/// backslash escapes, literal strings none); an unclosed string ends at the line's end.
fn skip_string(s: &[u8], quote: u8) -> usize {
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if b == b'\n' {
            return i;
        }
        if escaped {
            escaped = false;
        } else if quote == b'"' && b == b'\\' {
            escaped = true;
        } else if b == quote {
            return i + 1;
        }
    }
    s.len()
}

/// Bytes up to and including the closing triple quote of a multi-line string.
fn skip_multiline(s: &[u8], quote: u8) -> usize {
    let mut escaped = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if escaped {
            escaped = false;
        } else if quote == b'"' && b == b'\\' {
            escaped = true;
        } else if b == quote && s.get(i + 1) == Some(&quote) && s.get(i + 2) == Some(&quote) {
            return i + 3;
        }
        i += 1;
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":"[[[{{{\"]]]"}"#), 1);
        assert_eq!(json_depth(br#"[1,[2,[3]],{"x":{}}]"#), 3);
        assert_eq!(json_depth(b""), 0);
        // Unbalanced closers cannot drive the count below zero and hide later nesting.
        assert_eq!(json_depth(b"]]]]]][[["), 3);
    }

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = check_json(deep.as_bytes(), MAX_JSON_DEPTH).unwrap_err();
        assert!(matches!(e, Error::TooComplex { limit: 32, .. }), "{e}");
        let ok = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        check_json(ok.as_bytes(), MAX_JSON_DEPTH).unwrap();
    }

    #[test]
    fn forms_are_bounded_in_fields_and_field_size() {
        check_form(b"a=1&b=2&&c=3", 3, 10).unwrap();
        assert!(matches!(
            check_form(b"a=1&b=2&c=3&d=4", 3, 10),
            Err(Error::TooComplex { limit: 3, .. })
        ));
        assert!(matches!(
            check_form(b"a=12345678901", 3, 10),
            Err(Error::TooComplex { limit: 10, .. })
        ));
        let many = "x=1&".repeat(MAX_FORM_FIELDS + 1);
        assert!(check_form(many.as_bytes(), MAX_FORM_FIELDS, MAX_FORM_FIELD_BYTES).is_err());
    }

    #[test]
    fn toml_depth_skips_strings_and_comments() {
        let text = "# [[[[[[\n[menu]\nprompt = \"[[[[[\"\nlit = '[[[['\nm = \"\"\"\n[[[[\n\"\"\"\nx = [[1], {a = [2]}]\n";
        assert_eq!(toml_depth(text.as_bytes()), 3);
        let deep = format!("x = {}{}", "[".repeat(1000), "]".repeat(1000));
        assert!(matches!(
            check_toml(&deep, MAX_TOML_BYTES, MAX_TOML_DEPTH),
            Err(Error::TooComplex { .. })
        ));
        let big = "#".repeat(MAX_TOML_BYTES + 1);
        assert!(matches!(
            check_toml(&big, MAX_TOML_BYTES, MAX_TOML_DEPTH),
            Err(Error::PayloadTooLarge { .. })
        ));
    }
}
