//! Personal data in free text: phone numbers, resident ID numbers, bank cards, e-mail addresses
//! and postal addresses, found and masked.
//!
//! Numbers are validated, not just shaped: a resident ID needs its check character (GB 11643)
//! and a real birth date, a bank card its Luhn digit, a mobile number a mainland prefix
//! (`1[3-9]`) or an explicit `+` country code. An order number that happens to be eleven digits
//! long is left alone.

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// What kind of personal data a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PiiKind {
    /// A mainland mobile number (`13800138000`, `+86 138 0013 8000`) or an E.164 number.
    Phone,
    /// An 18-character resident identity card number with a valid check character.
    ResidentId,
    /// A payment card number (13 to 19 digits) that passes the Luhn check.
    BankCard,
    /// An e-mail address.
    Email,
    /// A postal address down to the street and number (Chinese or English).
    Address,
}

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PiiMatch {
    /// What it is.
    pub kind: PiiKind,
    /// Where, in bytes.
    pub span: Range<usize>,
}

/// Every piece of personal data in `text`, in order, none overlapping.
///
/// ```
/// use omnidesk::compliance::{PiiKind, find_pii};
///
/// let found = find_pii("电话13800138000，订单20261111001");
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].kind, PiiKind::Phone);
/// ```
pub fn find_pii(text: &str) -> Vec<PiiMatch> {
    let mut found = numbers(text);
    for m in EMAIL.find_iter(text) {
        found.push(PiiMatch {
            kind: PiiKind::Email,
            span: m.range(),
        });
    }
    for re in [&*ADDRESS_ZH, &*ADDRESS_EN] {
        for m in re.find_iter(text) {
            found.push(PiiMatch {
                kind: PiiKind::Address,
                span: m.range(),
            });
        }
    }
    // Earliest first; of overlapping matches the longer (an address holds its house number).
    found.sort_by_key(|m| (m.span.start, std::cmp::Reverse(m.span.end)));
    let mut out: Vec<PiiMatch> = Vec::with_capacity(found.len());
    for m in found {
        match out.last() {
            Some(last) if m.span.start < last.span.end => {}
            _ => out.push(m),
        }
    }
    out
}

/// `text` with every piece of personal data masked: what is left identifies nothing but lets a
/// reader see what was there (`138****8000`, `110101********123X`, `************1111`,
/// `z***@example.com`, `上海市浦东新区***`). Borrowed when there is nothing to mask.
///
/// ```
/// use omnidesk::compliance::mask_pii;
///
/// assert_eq!(mask_pii("call 13800138000"), "call 138****8000");
/// assert_eq!(mask_pii("nothing here"), "nothing here");
/// ```
pub fn mask_pii(text: &str) -> Cow<'_, str> {
    let found = find_pii(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in found {
        out.push_str(&text[at..m.span.start]);
        out.push_str(&mask_one(m.kind, &text[m.span.clone()]));
        at = m.span.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

fn mask_one(kind: PiiKind, s: &str) -> String {
    match kind {
        PiiKind::Phone | PiiKind::BankCard | PiiKind::ResidentId => {
            let digits: Vec<char> = s
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == 'X' || *c == 'x')
                .collect();
            let plus = if s.starts_with('+') { "+" } else { "" };
            if kind == PiiKind::Phone && digits.len() == 13 && digits[..2] == ['8', '6'] {
                // A mainland number with its country code: mask the national part.
                let national: String = digits[2..].iter().collect();
                return format!("{plus}86 {}", mask_one(kind, &national));
            }
            let (head, tail) = match kind {
                PiiKind::Phone if plus.is_empty() => (3.min(digits.len()), 4),
                PiiKind::Phone => (2.min(digits.len()), 4),
                PiiKind::ResidentId => (6, 4),
                _ => (0, 4),
            };
            let n = digits.len();
            let tail = tail.min(n.saturating_sub(head));
            let mut out = String::from(plus);
            out.extend(&digits[..head]);
            out.extend(std::iter::repeat_n('*', n - head - tail));
            out.extend(&digits[n - tail..]);
            out
        }
        PiiKind::Email => match s.split_once('@') {
            Some((user, domain)) => {
                let first = user.chars().next().unwrap_or('*');
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        },
        PiiKind::Address => {
            // Keep the region (up to the district or city), hide the street and number.
            let keep = ["区", "县", "市"]
                .iter()
                .find_map(|m| s.find(m).map(|i| i + m.len()))
                .filter(|&i| i < s.len())
                .unwrap_or(0);
            format!("{}***", &s[..keep])
        }
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}",
    )
    .expect("a valid pattern")
});

/// Province or city, optionally district or county, a street and a house number.
static ADDRESS_ZH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:\p{Han}{2,8}?(?:省|自治区))?\p{Han}{1,8}?市(?:\p{Han}{1,8}?(?:区|县|旗))?",
        r"(?:\p{Han}{1,12}?(?:镇|乡|街道))?[\p{Han}\d]{1,16}?(?:路|街|大道|巷|弄|胡同|道)",
        r"\s*\d{1,5}\s*(?:号|號)(?:[\p{Han}\d\-#]{0,16}?(?:室|楼|栋|幢|单元|层|號|号))?",
    ))
    .expect("a valid pattern")
});

static ADDRESS_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b\d{1,6}\s+(?:[A-Z][A-Za-z]+\s+){1,4}",
        r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Square|Sq)\b\.?",
        r"(?:,?\s*(?:Apt|Suite|Unit|#)\.?\s*[A-Za-z0-9\-]{1,6})?",
    ))
    .expect("a valid pattern")
});

/// Runs of digits (with single spaces or dashes between groups, an optional leading `+`, an ID's
/// trailing `X`), classified whole and, when the whole is nothing, group by group: two phone
/// numbers separated by a space are two phones, not one 22-digit nothing.
fn numbers(text: &str) -> Vec<PiiMatch> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_plus = bytes[i] == b'+' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !(bytes[i].is_ascii_digit() || starts_plus) || (i > 0 && is_word_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        // Extend over digits and single separators followed by a digit.
        let start = i;
        let mut end = if starts_plus { i + 1 } else { i };
        let mut groups: Vec<Range<usize>> = Vec::new();
        let mut group_start = end;
        while end < bytes.len() {
            if bytes[end].is_ascii_digit() {
                end += 1;
            } else if matches!(bytes[end], b' ' | b'-')
                && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
                && end > group_start
            {
                groups.push(group_start..end);
                end += 1;
                group_start = end;
            } else {
                break;
            }
        }
        if end < bytes.len() && matches!(bytes[end], b'X' | b'x') {
            end += 1;
        }
        groups.push(group_start..end);
        if end < bytes.len() && is_word_byte(bytes[end]) {
            // Glued to letters or more digits: part of a word or an identifier, not a number.
            i = end;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            continue;
        }
        if let Some(kind) = classify(&text[start..end]) {
            out.push(PiiMatch {
                kind,
                span: start..end,
            });
        } else if groups.len() > 1 {
            for g in groups {
                if let Some(kind) = classify(&text[g.clone()]) {
                    out.push(PiiMatch { kind, span: g });
                }
            }
        }
        i = end;
    }
    out
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn classify(s: &str) -> Option<PiiKind> {
    let plus = s.starts_with('+');
    let chars: Vec<u8> = s.bytes().filter(|b| b.is_ascii_alphanumeric()).collect();
    let last_x = chars.last().is_some_and(|b| matches!(b, b'X' | b'x'));
    let digits: Vec<u8> = chars
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect();
    if chars.len() == 18 && !plus && resident_id_valid(&chars) {
        return Some(PiiKind::ResidentId);
    }
    if last_x {
        return None;
    }
    let mainland = |d: &[u8]| d.len() == 11 && d[0] == 1 && (3..=9).contains(&d[1]);
    if mainland(&digits) || (digits.len() == 13 && digits[..2] == [8, 6] && mainland(&digits[2..]))
    {
        return Some(PiiKind::Phone);
    }
    if plus && (8..=15).contains(&digits.len()) && digits[0] != 0 {
        return Some(PiiKind::Phone);
    }
    if !plus && (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
        return Some(PiiKind::BankCard);
    }
    None
}

/// GB 11643: 17 digits, a check character from the weighted sum, and a plausible birth date.
fn resident_id_valid(chars: &[u8]) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    if !chars[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = chars[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    if CHECK[(sum % 11) as usize] != chars[17].to_ascii_uppercase() {
        return false;
    }
    let num = |r: Range<usize>| {
        chars[r]
            .iter()
            .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'))
    };
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    chrono::NaiveDate::from_ymd_opt(year as i32, month, day)
        .is_some_and(|_| (1900..=2100).contains(&year))
}

/// The Luhn check of a card number.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A writer that masks personal data in what goes through it, line by line: wrap the log
/// output with it so no phone number or ID reaches a log file.
///
/// ```
/// use std::io::Write;
/// use omnidesk::compliance::MaskingWriter;
///
/// let mut out = MaskingWriter::new(Vec::new());
/// writeln!(out, "customer 13800138000 wrote").unwrap();
/// out.flush().unwrap();
/// assert_eq!(String::from_utf8(out.into_inner()).unwrap(), "customer 138****8000 wrote\n");
/// ```
///
/// With `tracing-subscriber`: `fmt().with_writer(|| MaskingWriter::new(std::io::stderr()))`
/// (each event is formatted into one writer made for it, and flushed when it is dropped).
#[derive(Debug)]
pub struct MaskingWriter<W: Write> {
    inner: Option<W>,
    pending: Vec<u8>,
}

impl<W: Write> MaskingWriter<W> {
    /// Masks what is written before passing it to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner: Some(inner),
            pending: Vec::new(),
        }
    }

    /// Writes what is pending and returns the inner writer.
    pub fn into_inner(mut self) -> W {
        let _ = self.write_pending(true);
        self.inner.take().expect("present until dropped")
    }

    fn write_pending(&mut self, all: bool) -> io::Result<()> {
        let upto = if all {
            self.pending.len()
        } else {
            match self.pending.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return Ok(()),
            }
        };
        if upto == 0 {
            return Ok(());
        }
        let chunk: Vec<u8> = self.pending.drain(..upto).collect();
        let text = String::from_utf8_lossy(&chunk);
        let inner = self.inner.as_mut().expect("present until dropped");
        inner.write_all(mask_pii(&text).as_bytes())
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.write_pending(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending(true)?;
        self.inner.as_mut().expect("present until dropped").flush()
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.write_pending(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        find_pii(text)
            .into_iter()
            .map(|m| (m.kind, &text[m.span]))
            .collect()
    }

    #[test]
    fn phones() {
        assert_eq!(kinds("13800138000"), [(PiiKind::Phone, "13800138000")]);
        assert_eq!(
            kinds("电话:138-0013-8000。"),
            [(PiiKind::Phone, "138-0013-8000")]
        );
        assert_eq!(
            kinds("+86 138 0013 8000"),
            [(PiiKind::Phone, "+86 138 0013 8000")]
        );
        assert_eq!(
            kinds("call +44 20 7946 0958"),
            [(PiiKind::Phone, "+44 20 7946 0958")]
        );
        assert_eq!(
            kinds("13800138000 13900139000"),
            [
                (PiiKind::Phone, "13800138000"),
                (PiiKind::Phone, "13900139000")
            ]
        );
        // An order number, a short code, a number glued to letters: not phones.
        assert!(kinds("订单20261111001").is_empty());
        assert!(kinds("12345678901").is_empty());
        assert!(kinds("SF13800138000").is_empty());
        assert!(kinds("138001380001").is_empty());
    }

    #[test]
    fn resident_ids_need_their_check_character() {
        // 11010519491231002X is the standard's own example.
        assert_eq!(
            kinds("身份证11010519491231002X"),
            [(PiiKind::ResidentId, "11010519491231002X")]
        );
        assert_eq!(
            kinds("id 110105194912310021"),
            Vec::<(PiiKind, &str)>::new(),
            "wrong check digit"
        );
        assert!(
            kinds("110105194913310024").is_empty(),
            "month 13 is no birth date"
        );
    }

    #[test]
    fn bank_cards_need_luhn() {
        assert_eq!(
            kinds("card 4111 1111 1111 1111 ok"),
            [(PiiKind::BankCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            kinds("6222021234567890128"),
            [(PiiKind::BankCard, "6222021234567890128")]
        );
        assert!(kinds("4111 1111 1111 1112").is_empty(), "Luhn fails");
        assert!(kinds("6222021234567890123").is_empty(), "Luhn fails");
    }

    #[test]
    fn emails_and_addresses() {
        assert_eq!(
            kinds("mail zhang.san+shop@example.com.cn now"),
            [(PiiKind::Email, "zhang.san+shop@example.com.cn")]
        );
        // The region's start is fuzzy without a gazetteer ("寄到" may stay in front of it);
        // what matters is that the street and number are inside.
        let found = kinds("寄到上海市浦东新区世纪大道100号3楼，谢谢");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, PiiKind::Address);
        assert!(
            found[0].1.ends_with("上海市浦东新区世纪大道100号3楼"),
            "{found:?}"
        );
        assert_eq!(
            kinds("杭州市西湖区文三路 478 号"),
            [(PiiKind::Address, "杭州市西湖区文三路 478 号")]
        );
        assert_eq!(
            kinds("ship to 221 Baker Street, London"),
            [(PiiKind::Address, "221 Baker Street")]
        );
        assert!(kinds("我想退货").is_empty());
    }

    #[test]
    fn masks_keep_only_what_identifies_nothing() {
        assert_eq!(mask_pii("13800138000"), "138****8000");
        assert_eq!(mask_pii("+86 138 0013 8000"), "+86 138****8000");
        assert_eq!(mask_pii("+44 20 7946 0958"), "+44******0958");
        assert_eq!(mask_pii("11010519491231002X"), "110105********002X");
        assert_eq!(mask_pii("4111 1111 1111 1111"), "************1111");
        assert_eq!(mask_pii("zhang@example.com"), "z***@example.com");
        assert_eq!(
            mask_pii("寄到上海市浦东新区世纪大道100号"),
            "寄到上海市浦东新区***"
        );
        let all = mask_pii("手机13800138000 身份证11010519491231002X 卡4111111111111111");
        assert!(
            !all.contains("13800138000") && !all.contains("19491231"),
            "{all}"
        );
    }

    #[test]
    fn the_writer_masks_lines_split_across_writes() {
        let mut w = MaskingWriter::new(Vec::new());
        w.write_all(b"a 1380013").unwrap();
        w.write_all(b"8000 b\nnext 4111111111111111").unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(out, "a 138****8000 b\nnext ************1111");
    }
}
