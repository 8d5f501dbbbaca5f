//! A minimal SMTP server on loopback that keeps every mail it is given (envelope and raw bytes),
//! and can be told to answer the next mails with a given reply code: the far end of outbound
//! tests that need no real mail server.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    pub(crate) raw: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SmtpSink {
    pub(crate) mails: Arc<Mutex<Vec<Captured>>>,
    /// Replies to give at the end of DATA instead of 250, first used first.
    pub(crate) data_replies: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    /// Starts the sink; returns it and its port.
    pub(crate) async fn start() -> (Self, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Self::default();
        let me = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    w.write_all(b"220 sink ESMTP\r\n").await.ok();
                    let (mut from, mut to) = (String::new(), Vec::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                            "250 sink\r\n".to_owned()
                        } else if upper.starts_with("MAIL FROM:") {
                            from = line[10..].trim().trim_matches(['<', '>']).to_owned();
                            to.clear();
                            "250 ok\r\n".to_owned()
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                            "250 ok\r\n".to_owned()
                        } else if upper.starts_with("DATA") {
                            w.write_all(b"354 go\r\n").await.ok();
                            let mut raw = Vec::new();
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" || line == ".\n" {
                                    break;
                                }
                                let l = line.strip_prefix('.').unwrap_or(&line);
                                raw.extend_from_slice(l.as_bytes());
                            }
                            let forced = {
                                let mut q = me.data_replies.lock().unwrap();
                                (!q.is_empty()).then(|| q.remove(0))
                            };
                            match forced {
                                Some(code) => format!("{code}\r\n"),
                                None => {
                                    me.mails.lock().unwrap().push(Captured {
                                        from: from.clone(),
                                        to: to.clone(),
                                        raw,
                                    });
                                    "250 queued\r\n".to_owned()
                                }
                            }
                        } else if upper.starts_with("QUIT") {
                            w.write_all(b"221 bye\r\n").await.ok();
                            return;
                        } else {
                            "250 ok\r\n".to_owned()
                        };
                        if w.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (sink, port)
    }

    pub(crate) fn mails(&self) -> Vec<Captured> {
        self.mails.lock().unwrap().clone()
    }
}

/// The value of header `name` in a raw mail (unfolded), if present.
pub(crate) fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut()
            && (line.starts_with(' ') || line.starts_with('\t'))
        {
            v.push(' ');
            v.push_str(line.trim());
            continue;
        }
        if value.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_owned());
        }
    }
    value
}
