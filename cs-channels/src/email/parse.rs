//! Raw RFC 5322 mail to the parts the channel needs (mail-parser does the MIME work).

use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The most MIME boundary delimiter lines (`--...` at a line start) a mail may have: an upper
/// bound on its parts.
pub const MAX_MIME_DELIMITERS: usize = 2_000;
/// The most `multipart/*` declarations a mail may have: an upper bound on how deeply its parts
/// nest and how many containers mail-parser keeps on its stack.
pub const MAX_MIME_MULTIPARTS: usize = 64;
/// The most header lines before the first blank line.
pub const MAX_HEADER_LINES: usize = 2_000;
/// The most parent ids (`In-Reply-To`, then `References`, newest first) kept for threading:
/// each one may cost a thread-store lookup.
pub const MAX_PARENTS: usize = 64;

/// One attached file, still in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawAttachment {
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) bytes: Vec<u8>,
}

/// What the channel reads from a mail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedMail {
    /// The Message-ID without angle brackets; synthesised from the content when missing.
    pub(crate) message_id: String,
    /// `In-Reply-To` ids, then `References` ids newest first; no duplicates.
    pub(crate) parents: Vec<String>,
    /// The sender's address, lower-cased.
    pub(crate) from: String,
    /// The sender's display name.
    pub(crate) from_name: Option<String>,
    /// Every recipient address (To, Cc, Delivered-To, X-Original-To), lower-cased.
    pub(crate) recipients: Vec<String>,
    pub(crate) subject: Option<String>,
    /// The new text of the body (quoted history cut off), from text/plain or HTML.
    pub(crate) text: String,
    pub(crate) attachments: Vec<RawAttachment>,
    pub(crate) date: Option<DateTime<Utc>>,
    /// Sent by a machine (auto-reply, bounce, bulk): never answered automatically.
    pub(crate) automated: bool,
}

/// Strips `<` `>` and blanks from a Message-ID.
pub(crate) fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && id.len() <= 250 && !id.chars().any(char::is_whitespace))
        .then(|| id.to_owned())
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => t.split_whitespace().filter_map(clean_id).collect(),
        HeaderValue::TextList(list) => list
            .iter()
            .flat_map(|t| t.split_whitespace())
            .filter_map(clean_id)
            .collect(),
        _ => Vec::new(),
    }
}

fn addresses(address: Option<&Address<'_>>, out: &mut Vec<String>) {
    if let Some(address) = address {
        for a in address.iter() {
            if let Some(addr) = a.address() {
                out.push(addr.trim().to_ascii_lowercase());
            }
        }
    }
}

/// Refuses a mail whose structure is over the limits ([`MAX_HEADER_LINES`],
/// [`MAX_MIME_DELIMITERS`], [`MAX_MIME_MULTIPARTS`]), by one scan of its lines before
/// mail-parser sees it.
///
/// # Errors
/// [`Error::TooComplex`] over a limit.
pub fn check_mime(raw: &[u8]) -> Result<()> {
    let mut in_headers = true;
    let mut header_lines = 0usize;
    let mut delimiters = 0usize;
    let mut multiparts = 0usize;
    for line in raw.split(|&b| b == b'\n') {
        if in_headers {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                in_headers = false;
            } else {
                header_lines += 1;
                if header_lines > MAX_HEADER_LINES {
                    return Err(Error::too_complex("mail header lines", MAX_HEADER_LINES));
                }
            }
        }
        if line.starts_with(b"--") {
            delimiters += 1;
            if delimiters > MAX_MIME_DELIMITERS {
                return Err(Error::too_complex(
                    "MIME boundary delimiters",
                    MAX_MIME_DELIMITERS,
                ));
            }
        }
        multiparts += count_ignore_ascii_case(line, b"multipart/");
        if multiparts > MAX_MIME_MULTIPARTS {
            return Err(Error::too_complex(
                "multipart containers",
                MAX_MIME_MULTIPARTS,
            ));
        }
    }
    Ok(())
}

/// Non-overlapping occurrences of `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
fn count_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            n += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Checks the structure ([`check_mime`]) and parses `raw`. A panic inside the MIME parser is
/// caught and answered as a malformed mail, so one mail cannot take the process down.
///
/// # Errors
/// [`Error::TooComplex`] over a structure limit; [`Error::InvalidInput`] when it is not a mail,
/// has no sender address, or the parser failed on it.
pub(crate) fn parse_mail(raw: &[u8]) -> Result<ParsedMail> {
    check_mime(raw)?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_mail(raw))).unwrap_or_else(|_| {
        tracing::warn!(bytes = raw.len(), "the MIME parser panicked on a mail");
        Err(Error::invalid("the mail could not be parsed"))
    })
}

fn read_mail(raw: &[u8]) -> Result<ParsedMail> {
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| Error::invalid("not an RFC 5322 message"))?;
    let from_addr = message
        .from()
        .and_then(|a| a.first())
        .ok_or_else(|| Error::invalid("mail has no From address"))?;
    let from = from_addr
        .address()
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'))
        .ok_or_else(|| Error::invalid("mail has no usable From address"))?;
    let from_name = from_addr
        .name()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);

    let message_id = message.message_id().and_then(clean_id).unwrap_or_else(|| {
        format!(
            "sha256-{}@omnidesk.invalid",
            hex::encode(Sha256::digest(raw))
        )
    });

    // In-Reply-To first, then References newest first; no duplicates, at most MAX_PARENTS
    // (a set, so thousands of references cost linear time).
    let mut parents = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut refs = ids(message.references());
    refs.reverse();
    for id in ids(message.in_reply_to()).into_iter().chain(refs) {
        if parents.len() == MAX_PARENTS {
            break;
        }
        if seen.insert(id.clone()) {
            parents.push(id);
        }
    }

    let mut recipients = Vec::new();
    addresses(message.to(), &mut recipients);
    addresses(message.cc(), &mut recipients);
    for name in ["Delivered-To", "X-Original-To"] {
        for v in message.header_values(name) {
            if let Some(t) = v.as_text() {
                recipients.push(t.trim().trim_matches(['<', '>']).to_ascii_lowercase());
            }
        }
    }

    let text = message
        .body_text(0)
        .map(|t| strip_quoted(&t))
        .unwrap_or_default();

    let mut attachments = Vec::new();
    for part in message.attachments() {
        let mime = part
            .content_type()
            .map(|ct| match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub),
                None => ct.c_type.to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        let name = part
            .attachment_name()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("attachment-{}", attachments.len() + 1));
        attachments.push(RawAttachment {
            name,
            mime,
            bytes: part.contents().to_vec(),
        });
    }

    let date = message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));

    let header_text = |name: &str| {
        message
            .header(name)
            .and_then(|v| v.as_text())
            .map(str::to_ascii_lowercase)
    };
    let automated = header_text("Auto-Submitted").is_some_and(|v| v != "no")
        || header_text("Precedence")
            .is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list"))
        || message.header("X-Autoreply").is_some()
        || from.starts_with("mailer-daemon@")
        || from.starts_with("postmaster@");

    Ok(ParsedMail {
        message_id,
        parents,
        from,
        from_name,
        recipients,
        subject: message.subject().map(|s| s.trim().to_owned()),
        text,
        attachments,
        date,
        automated,
    })
}

/// Cuts the quoted history off a reply: everything from the first attribution line ("On ...
/// wrote:", "在 ... 写道："), "-----Original Message-----" or block of `>` lines. Keeps the
/// whole text when nothing new would be left.
pub(crate) fn strip_quoted(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let attribution = (t.starts_with("On ") && t.ends_with("wrote:"))
            || (t.starts_with('在') && (t.ends_with("写道：") || t.ends_with("写道:")))
            || t.eq_ignore_ascii_case("-----Original Message-----")
            || t.starts_with("-----原始邮件-----");
        if attribution || t.starts_with('>') {
            break;
        }
        kept.push(line.trim_end());
    }
    let new = kept.join("\n").trim().to_owned();
    if new.is_empty() {
        text.trim().to_owned()
    } else {
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = b"From: Li Lei <LiLei@Example.COM>\r\n\
To: support@shop.test\r\n\
Subject: Re: Where is my parcel? [#a1b2c3d4]\r\n\
Message-ID: <reply-1@example.com>\r\n\
In-Reply-To: <out-1@shop.test>\r\n\
References: <first@example.com> <out-1@shop.test>\r\n\
Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n\
\r\n\
Still not here.\r\n\
\r\n\
On Sun, 22 Nov 2026, Shop wrote:\r\n\
> It ships tomorrow.\r\n";

    #[test]
    fn a_plain_reply_is_read() {
        let m = parse_mail(PLAIN).unwrap();
        assert_eq!(m.message_id, "reply-1@example.com");
        assert_eq!(m.from, "lilei@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Li Lei"));
        assert_eq!(m.parents, ["out-1@shop.test", "first@example.com"]);
        assert_eq!(m.recipients, ["support@shop.test"]);
        assert_eq!(m.text, "Still not here.");
        assert_eq!(m.date.unwrap().to_rfc3339(), "2026-11-23T03:00:00+00:00");
        assert!(!m.automated);
    }

    #[test]
    fn html_becomes_text_and_attachments_are_kept() {
        let raw = b"From: a@example.com\r\n\
To: support@shop.test\r\n\
Subject: photo\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>The <b>box</b> is broken</p></body></html>\r\n\
--b1\r\n\
Content-Type: image/png; name=\"box.png\"\r\n\
Content-Disposition: attachment; filename=\"box.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--b1--\r\n";
        let m = parse_mail(raw).unwrap();
        assert!(m.text.contains("The box is broken"), "{:?}", m.text);
        assert!(!m.text.contains('<'));
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "box.png");
        assert_eq!(m.attachments[0].mime, "image/png");
        assert_eq!(m.attachments[0].bytes, b"\x89PNG\r\n\x1a\n");
        assert!(m.message_id.starts_with("sha256-"), "synthesised id");
    }

    #[test]
    fn garbage_and_senderless_mail_are_refused() {
        assert!(matches!(parse_mail(b""), Err(Error::InvalidInput { .. })));
        assert!(matches!(
            parse_mail(b"Subject: hi\r\n\r\nno sender\r\n"),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn auto_replies_are_flagged() {
        let raw = b"From: a@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\naway\r\n";
        assert!(parse_mail(raw).unwrap().automated);
    }

    #[test]
    fn quoted_history_is_cut() {
        assert_eq!(
            strip_quoted("Thanks!\n\n在 2026年11月22日，客服 写道：\n> 好的"),
            "Thanks!"
        );
        assert_eq!(strip_quoted("> only quotes"), "> only quotes");
        assert_eq!(strip_quoted("new\n-----Original Message-----\nold"), "new");
    }
}
