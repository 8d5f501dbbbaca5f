//! Durations as people write them in a config file: `"30s"`, `"2m"`, `"1h30m"`, `"500ms"`.
//!
//! A duration is one or more groups of a whole number and a unit: `ms`, `s`, `m` (minutes), `h`
//! or `d` (days), optionally separated by spaces; `"0"` alone is zero. Durations are kept to the
//! millisecond (the routers' resolution). Use the module with serde's `with` attribute for
//! fields of your own:
//!
//! ```
//! use std::time::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Desk {
//!     #[serde(with = "cs_routing::policy::duration")]
//!     grace: Duration,
//! }
//!
//! let desk: Desk = serde_json::from_str(r#"{ "grace": "2m30s" }"#).unwrap();
//! assert_eq!(desk.grace, Duration::from_secs(150));
//! assert_eq!(cs_routing::policy::duration::format(desk.grace), "2m30s");
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, Serializer, de};

/// Units by decreasing size, in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    input: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: expected whole numbers with a unit (ms, s, m, h, d), \
             such as \"30s\", \"2m\", \"1h30m\" or \"500ms\"",
            self.input
        )
    }
}

impl std::error::Error for ParseError {}

/// Reads a duration such as `"30s"`, `"2m"`, `"1h30m"` or `"500ms"` (see the module docs).
///
/// # Errors
/// [`ParseError`] for anything else: no unit, an unknown unit, a fraction, a sign, an empty
/// string, or more than about 292 million years.
pub fn parse(input: &str) -> Result<Duration, ParseError> {
    let error = || ParseError {
        input: input.to_owned(),
    };
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut groups = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(error());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| error())?;
        rest = &rest[digits..];
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..letters];
        let &(_, ms) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(error)?;
        total = number
            .checked_mul(ms)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(error)?;
        rest = rest[letters..].trim_start();
        groups += 1;
    }
    if groups == 0 {
        return Err(error());
    }
    Ok(Duration::from_millis(total))
}

/// Writes `d` the way [`parse`] reads it, largest units first, to the millisecond: `"30s"`,
/// `"2m"`, `"1h30m"`, `"1s500ms"`, `"0s"`.
pub fn format(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

/// Serializes a duration as [`format()`] writes it (for `#[serde(with = "...")]`).
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*d))
}

/// Deserializes a duration as [`parse`] reads it (for `#[serde(with = "...")]`).
///
/// # Errors
/// A serde error naming the duration that could not be read.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"30s\", \"2m\", \"1h\" or \"500ms\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_people_write() {
        let cases = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("500ms", 500),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            (" 2d ", 172_800_000),
            ("0", 0),
            ("0s", 0),
            ("1m1s1ms", 61_001),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_ambiguous() {
        for text in [
            "",
            " ",
            "30",
            "1.5h",
            "-1s",
            "10 s",
            "5min",
            "1H",
            "s",
            "1h30",
            "99999999999999999d",
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.to_string().contains("invalid duration"), "{e}");
        }
    }

    #[test]
    fn writes_what_it_reads() {
        for ms in [
            0u64, 1, 999, 1_000, 1_500, 60_000, 90_000, 3_600_000, 5_400_000, 86_400_001,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(1_500)), "1s500ms");
        assert_eq!(format(Duration::from_secs(7_200)), "2h");
    }
}
