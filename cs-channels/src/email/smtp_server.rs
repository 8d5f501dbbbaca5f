//! A small SMTP receiver (RFC 5321 subset) that takes mail for configured domains straight into
//! an [`EmailChannel`]: point an MX record or a relay's transport at it.
//!
//! It speaks `HELO`/`EHLO` (advertising `SIZE` and `8BITMIME`), `MAIL`, `RCPT`, `DATA`, `RSET`,
//! `NOOP` and `QUIT`; refuses recipients outside its domains (550), mail over the size limit (552),
//! commands out of order (503), malformed arguments (501), unknown commands (500) and over-long
//! lines (500); answers 451 when the engine fails for now so the sender retries.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::EmailChannel;
use crate::channel::InboundHandler;
use crate::error::{Error, Result};

/// The longest command line accepted (RFC 5321 section 4.5.3.1.4: 512 octets).
const MAX_COMMAND_LINE: usize = 512;
/// The longest text line accepted inside DATA (RFC 5321: 1000 octets with CRLF), with slack.
const MAX_DATA_LINE: usize = 4096;

/// Configures an [`SmtpReceiver`].
#[derive(Debug, Clone)]
pub struct SmtpReceiverBuilder {
    hostname: String,
    domains: Vec<String>,
    max_message_bytes: Option<usize>,
    max_recipients: usize,
    idle_timeout: Duration,
}

impl SmtpReceiverBuilder {
    /// A receiver greeting as `hostname`.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            domains: Vec::new(),
            max_message_bytes: None,
            max_recipients: 100,
            idle_timeout: Duration::from_secs(300),
        }
    }

    /// Accepts mail for `domain` (any local part); call once per domain.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domains.push(domain.into().trim().to_ascii_lowercase());
        self
    }

    /// The largest mail accepted; defaults to the channel's limit.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }

    /// The most recipients one mail may name (default 100).
    pub fn with_max_recipients(mut self, n: usize) -> Self {
        self.max_recipients = n;
        self
    }

    /// How long a connection may stay silent before it is closed (default 5 minutes).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Builds the receiver for `channel`, handing mail to `handler`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without any domain or with a blank hostname.
    pub fn build(
        self,
        channel: Arc<EmailChannel>,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<SmtpReceiver> {
        if self.domains.is_empty() || self.domains.iter().any(|d| !d.contains('.')) {
            return Err(Error::invalid(
                "SMTP receiver needs domains like shop.example",
            ));
        }
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return Err(Error::invalid("SMTP receiver needs a hostname"));
        }
        let max_message_bytes = self
            .max_message_bytes
            .unwrap_or_else(|| channel.max_message_bytes());
        Ok(SmtpReceiver {
            inner: Arc::new(Inner {
                hostname: self.hostname,
                domains: self.domains,
                max_message_bytes,
                max_recipients: self.max_recipients,
                idle_timeout: self.idle_timeout,
                channel,
                handler,
            }),
        })
    }
}

/// An SMTP server feeding an [`EmailChannel`].
#[derive(Clone)]
pub struct SmtpReceiver {
    inner: Arc<Inner>,
}

struct Inner {
    hostname: String,
    domains: Vec<String>,
    max_message_bytes: usize,
    max_recipients: usize,
    idle_timeout: Duration,
    channel: Arc<EmailChannel>,
    handler: Arc<dyn InboundHandler>,
}

impl fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("hostname", &self.inner.hostname)
            .field("domains", &self.inner.domains)
            .field("max_message_bytes", &self.inner.max_message_bytes)
            .field("max_recipients", &self.inner.max_recipients)
            .finish_non_exhaustive()
    }
}

/// Where a session is in the mail transaction.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Connected,
    Greeted,
    Mail,
    Rcpt,
}

/// Reads one line (up to `max` bytes, CRLF or LF). `Ok(None)` at end of stream; `Err(true)` for
/// an over-long line (the rest of it is discarded), `Err(false)` on an I/O error.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::result::Result<Option<()>, bool> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await.map_err(|_| false)?;
        if available.is_empty() {
            return if buf.is_empty() && !too_long {
                Ok(None)
            } else {
                Err(false)
            };
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        if !too_long {
            if buf.len() + n > max {
                too_long = true;
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(n);
        if done {
            return if too_long { Err(true) } else { Ok(Some(())) };
        }
    }
}

/// The address inside `FROM:<...>` / `TO:<...>`, after the verb's keyword; `None` when malformed.
fn path_argument<'a>(args: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let rest = args.get(..keyword.len())?;
    if !rest.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((&rest[..end], rest[end + 1..].trim()))
}

impl SmtpReceiver {
    /// Starts configuring a receiver greeting as `hostname`.
    pub fn builder(hostname: impl Into<String>) -> SmtpReceiverBuilder {
        SmtpReceiverBuilder::new(hostname)
    }

    /// Accepts connections on `listener` until `shutdown` completes, one task per connection.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when accepting fails.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = &mut shutdown => return Ok(()),
            };
            let (stream, peer) = accepted.map_err(|e| Error::Unavailable {
                reason: format!("SMTP accept: {e}"),
            })?;
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.handle_connection(stream).await {
                    tracing::debug!(%peer, error = %e, "SMTP session ended with an error");
                }
            });
        }
    }

    /// Speaks SMTP on one connection until the client quits or the stream ends.
    ///
    /// # Errors
    /// [`Error::Unavailable`] on an I/O error or an idle timeout.
    pub async fn handle_connection<S>(&self, stream: S) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let inner = &self.inner;
        let (read, mut write) = tokio::io::split(stream);
        let mut reader = BufReader::new(read);
        let io = |e: std::io::Error| Error::Unavailable {
            reason: format!("SMTP I/O: {e}"),
        };
        macro_rules! reply {
            ($($arg:tt)*) => {{
                let mut line = format!($($arg)*);
                line.push_str("\r\n");
                write.write_all(line.as_bytes()).await.map_err(io)?;
                write.flush().await.map_err(io)?;
            }};
        }
        reply!("220 {} ESMTP omnidesk", inner.hostname);
        let mut stage = Stage::Connected;
        let mut recipients: Vec<String> = Vec::new();
        let mut line = Vec::new();
        loop {
            let read = tokio::time::timeout(
                inner.idle_timeout,
                read_line(&mut reader, &mut line, MAX_COMMAND_LINE),
            )
            .await;
            match read {
                Err(_) => {
                    reply!("421 4.4.2 {} idle for too long, closing", inner.hostname);
                    return Err(Error::Unavailable {
                        reason: "SMTP client idle".into(),
                    });
                }
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(true)) => {
                    reply!("500 5.5.2 line too long");
                    continue;
                }
                Ok(Err(false)) => {
                    return Err(Error::Unavailable {
                        reason: "SMTP connection broken".into(),
                    });
                }
                Ok(Ok(Some(()))) => {}
            }
            let Ok(text) = std::str::from_utf8(&line) else {
                reply!("500 5.5.2 command is not text");
                continue;
            };
            let text = text.trim_end_matches(['\r', '\n']);
            let (verb, args) = text.split_once(' ').unwrap_or((text, ""));
            let args = args.trim();
            match verb.to_ascii_uppercase().as_str() {
                "HELO" | "EHLO" if args.is_empty() => reply!("501 5.5.4 a domain is required"),
                "HELO" => {
                    stage = Stage::Greeted;
                    recipients.clear();
                    reply!("250 {}", inner.hostname);
                }
                "EHLO" => {
                    stage = Stage::Greeted;
                    recipients.clear();
                    reply!("250-{} greets {}", inner.hostname, args);
                    reply!("250-SIZE {}", inner.max_message_bytes);
                    reply!("250 8BITMIME");
                }
                "MAIL" if stage == Stage::Connected => reply!("503 5.5.1 say HELO or EHLO first"),
                "MAIL" if stage != Stage::Greeted => reply!("503 5.5.1 nested MAIL command"),
                "MAIL" => match path_argument(args, "FROM:") {
                    None => reply!("501 5.5.4 syntax: MAIL FROM:<address>"),
                    Some((_, params)) => {
                        let declared = params
                            .split_whitespace()
                            .find_map(|p| {
                                p.get(..5)
                                    .filter(|k| k.eq_ignore_ascii_case("SIZE="))
                                    .map(|_| &p[5..])
                            })
                            .map(str::parse::<usize>);
                        match declared {
                            Some(Err(_)) => reply!("501 5.5.4 bad SIZE parameter"),
                            Some(Ok(n)) if n > inner.max_message_bytes => {
                                reply!("552 5.3.4 message size exceeds {}", inner.max_message_bytes)
                            }
                            _ => {
                                stage = Stage::Mail;
                                reply!("250 2.1.0 sender ok");
                            }
                        }
                    }
                },
                "RCPT" if !matches!(stage, Stage::Mail | Stage::Rcpt) => {
                    reply!("503 5.5.1 need MAIL before RCPT")
                }
                "RCPT" => match path_argument(args, "TO:") {
                    None => reply!("501 5.5.4 syntax: RCPT TO:<address>"),
                    Some((addr, _)) => {
                        let addr = addr.trim().to_ascii_lowercase();
                        let domain_ok = addr.rsplit_once('@').is_some_and(|(l, d)| {
                            !l.is_empty() && inner.domains.iter().any(|ours| ours == d)
                        });
                        if !domain_ok {
                            reply!(
                                "550 5.7.1 relaying denied: we accept mail for {} only",
                                inner.domains.join(", ")
                            );
                        } else if recipients.len() >= inner.max_recipients {
                            reply!("452 4.5.3 too many recipients");
                        } else {
                            recipients.push(addr);
                            stage = Stage::Rcpt;
                            reply!("250 2.1.5 recipient ok");
                        }
                    }
                },
                "DATA" if stage != Stage::Rcpt => reply!("503 5.5.1 need RCPT before DATA"),
                "DATA" if !args.is_empty() => reply!("501 5.5.4 DATA takes no argument"),
                "DATA" => {
                    reply!("354 end data with <CR><LF>.<CR><LF>");
                    let mut mail = Vec::new();
                    let mut too_big = false;
                    loop {
                        let r = tokio::time::timeout(
                            inner.idle_timeout,
                            read_line(&mut reader, &mut line, MAX_DATA_LINE),
                        )
                        .await;
                        match r {
                            Ok(Ok(Some(()))) => {}
                            Ok(Err(true)) => {
                                too_big = true;
                                continue;
                            }
                            _ => {
                                return Err(Error::Unavailable {
                                    reason: "SMTP connection lost during DATA".into(),
                                });
                            }
                        }
                        let content = line.strip_suffix(b"\n").unwrap_or(&line);
                        let content = content.strip_suffix(b"\r").unwrap_or(content);
                        if content == b"." {
                            break;
                        }
                        let content = content.strip_prefix(b".").unwrap_or(content);
                        if mail.len() + content.len() + 2 > inner.max_message_bytes {
                            too_big = true;
                        }
                        if !too_big {
                            mail.extend_from_slice(content);
                            mail.extend_from_slice(b"\r\n");
                        }
                    }
                    let rcpts = std::mem::take(&mut recipients);
                    stage = Stage::Greeted;
                    if too_big {
                        reply!(
                            "552 5.3.4 message exceeds {} bytes",
                            inner.max_message_bytes
                        );
                        continue;
                    }
                    match inner
                        .channel
                        .ingest_for(&mail, &rcpts, inner.handler.as_ref())
                        .await
                    {
                        Ok(done) if done.duplicate => {
                            reply!("250 2.0.0 already have {}", done.message_id)
                        }
                        Ok(done) => reply!("250 2.0.0 queued as {}", done.message_id),
                        Err(e) if e.is_temporary() => {
                            reply!("451 4.3.0 try again later: {}", e.code())
                        }
                        Err(Error::PayloadTooLarge { limit, .. }) => {
                            reply!("552 5.3.4 message exceeds {limit} bytes")
                        }
                        Err(e) => reply!("554 5.6.0 message refused: {}", one_line(&e.to_string())),
                    }
                }
                "RSET" => {
                    recipients.clear();
                    if stage != Stage::Connected {
                        stage = Stage::Greeted;
                    }
                    reply!("250 2.0.0 reset");
                }
                "NOOP" => reply!("250 2.0.0 ok"),
                "QUIT" => {
                    reply!("221 2.0.0 {} closing", inner.hostname);
                    return Ok(());
                }
                "VRFY" => reply!("252 2.1.5 cannot verify, send some mail"),
                _ => reply!("500 5.5.2 command not recognised"),
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_parsed() {
        assert_eq!(
            path_argument("FROM:<a@b.c> SIZE=10", "FROM:"),
            Some(("a@b.c", "SIZE=10"))
        );
        assert_eq!(path_argument("from: <a@b.c>", "FROM:"), Some(("a@b.c", "")));
        assert_eq!(path_argument("FROM:<>", "FROM:"), Some(("", "")));
        assert_eq!(path_argument("FROM:a@b.c", "FROM:"), None);
        assert_eq!(path_argument("TO:<a@b.c>", "FROM:"), None);
        assert_eq!(path_argument("FR", "FROM:"), None);
    }
}
