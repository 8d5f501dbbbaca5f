//! The email channel without an outside mail server: threading of a reply chain, de-duplication,
//! attachments, the SMTP receiver's protocol, outbound headers and error mapping (against a
//! loopback SMTP sink), the raw-MIME webhook and the conformance suites.
#![cfg(feature = "email")]

#[path = "support/handler.rs"]
mod handler;
#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use cs_channels::email::{
    AttachmentSink, EmailChannel, FsAttachmentSink, MemoryAttachmentSink, MemoryThreadStore,
    SmtpConfig, SmtpReceiver, ThreadedBy, conformance,
};
use cs_channels::{Channel, Error, RawInbound};
use cs_core::{
    ChannelId, ChannelKind, Content, ContentKind, ConversationId, DeliveryStatus, Identity,
};
use handler::{TestEngine, outbound};
use smtp_sink::{SmtpSink, header};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &[u8] = b"thread secret for tests";

fn channel(smtp_port: u16) -> EmailChannel {
    EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
        .with_display_name("Shop Support")
        .with_smtp(SmtpConfig::new("127.0.0.1", smtp_port))
        .with_thread_secret(SECRET)
        .with_inbound_token("inbound-token")
        .with_max_message_bytes(64 * 1024)
        .build()
        .unwrap()
}

struct Mail<'a> {
    from: &'a str,
    to: &'a str,
    subject: &'a str,
    id: &'a str,
    headers: Vec<String>,
    body: &'a str,
}

impl<'a> Mail<'a> {
    fn new(id: &'a str, subject: &'a str, body: &'a str) -> Self {
        Self {
            from: "Li Lei <lilei@customer.test>",
            to: "support@shop.test",
            subject,
            id,
            headers: Vec::new(),
            body,
        }
    }
    fn to(mut self, to: &'a str) -> Self {
        self.to = to;
        self
    }
    fn header(mut self, h: impl Into<String>) -> Self {
        self.headers.push(h.into());
        self
    }
    fn raw(&self) -> Vec<u8> {
        let mut s = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: <{}>\r\nDate: Mon, 23 Nov 2026 03:00:00 +0000\r\n",
            self.from, self.to, self.subject, self.id
        );
        for h in &self.headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.push_str(self.body);
        s.push_str("\r\n");
        s.into_bytes()
    }
}

#[tokio::test]
async fn a_reply_chain_threads_into_one_conversation() {
    let (sink, port) = SmtpSink::start().await;
    let email = channel(port);
    let engine = TestEngine::new();

    // 1. The customer writes first: a new thread and conversation.
    let first = email
        .ingest(
            &Mail::new(
                "first@customer.test",
                "Where is my parcel?",
                "Order 1234 has not arrived.",
            )
            .raw(),
            &engine,
        )
        .await
        .unwrap();
    assert_eq!(first.threaded_by, ThreadedBy::New);
    assert!(!first.duplicate);
    let conversation = first.conversation.expect("stored");
    assert_eq!(first.messages.len(), 1);
    assert_eq!(
        first.messages[0].message.content,
        Content::text("Order 1234 has not arrived.")
    );

    // 2. The agent answers: our Message-ID, In-Reply-To/References to the customer's mail,
    //    the thread's plus address as Reply-To and the tag in the subject.
    let receipt = email
        .send(&outbound(
            conversation,
            "lilei@customer.test",
            "It ships today.",
        ))
        .await
        .unwrap();
    assert_eq!(receipt.status, DeliveryStatus::Sent);
    let ours = receipt.provider_message_id.unwrap();
    let sent = sink.mails();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, ["lilei@customer.test"]);
    let raw = &sent[0].raw;
    let token = first.thread.as_str();
    assert_eq!(header(raw, "Message-ID").unwrap(), format!("<{ours}>"));
    assert!(ours.ends_with("@shop.test"), "{ours}");
    assert_eq!(header(raw, "In-Reply-To").unwrap(), "<first@customer.test>");
    assert_eq!(header(raw, "References").unwrap(), "<first@customer.test>");
    assert!(
        header(raw, "Reply-To")
            .unwrap()
            .contains(&format!("support+{token}@shop.test")),
        "{:?}",
        header(raw, "Reply-To")
    );
    assert_eq!(
        header(raw, "Subject").unwrap(),
        format!("Re: Where is my parcel? [#{token}]")
    );
    assert!(header(raw, "From").unwrap().contains("support@shop.test"));
    assert!(String::from_utf8_lossy(raw).contains("It ships today."));

    // 3. The customer replies to the plus address.
    let reply = email
        .ingest(
            &Mail::new(
                "r1@customer.test",
                &format!("Re: Where is my parcel? [#{token}]"),
                "Thanks, still waiting.\r\n\r\nOn Mon, Shop wrote:\r\n> It ships today.",
            )
            .to(&format!("support+{token}@shop.test"))
            .header(format!("In-Reply-To: <{ours}>"))
            .raw(),
            &engine,
        )
        .await
        .unwrap();
    assert_eq!(reply.threaded_by, ThreadedBy::PlusAddress);
    assert_eq!(reply.conversation, Some(conversation));
    assert_eq!(
        reply.messages[0].message.content,
        Content::text("Thanks, still waiting."),
        "the quoted history is cut"
    );

    // 4. A client that drops the plus address and the tag: References still thread it.
    let by_refs = email
        .ingest(
            &Mail::new("r2@customer.test", "Re: parcel", "Any news?")
                .header(format!("References: <first@customer.test> <{ours}>"))
                .raw(),
            &engine,
        )
        .await
        .unwrap();
    assert_eq!(by_refs.threaded_by, ThreadedBy::Reply);
    assert_eq!(by_refs.conversation, Some(conversation));

    // 5. Only the subject tag is left (a forwarded mail from another address).
    let by_tag = email
        .ingest(
            &Mail::new(
                "r3@other.test",
                &format!("Fwd: parcel [#{token}]"),
                "My husband asks too.",
            )
            .raw(),
            &engine,
        )
        .await
        .unwrap();
    assert_eq!(by_tag.threaded_by, ThreadedBy::SubjectTag);
    assert_eq!(by_tag.conversation, Some(conversation));

    // 6. A second answer continues the chain: it references every mail so far.
    let receipt2 = email
        .send(&outbound(
            conversation,
            "lilei@customer.test",
            "Tracking: SF123.",
        ))
        .await
        .unwrap();
    let raw2 = &sink.mails()[1].raw;
    assert_eq!(header(raw2, "In-Reply-To").unwrap(), "<r3@other.test>");
    let refs = header(raw2, "References").unwrap();
    for id in [
        "first@customer.test",
        ours.as_str(),
        "r1@customer.test",
        "r2@customer.test",
        "r3@other.test",
    ] {
        assert!(
            refs.contains(&format!("<{id}>")),
            "{id} missing from {refs}"
        );
    }
    assert_ne!(receipt2.provider_message_id.unwrap(), ours);

    // 7. An unrelated mail starts its own conversation.
    let other = email
        .ingest(
            &Mail::new("new@customer.test", "Invoice please", "Need an invoice.").raw(),
            &engine,
        )
        .await
        .unwrap();
    assert_eq!(other.threaded_by, ThreadedBy::New);
    assert_ne!(other.conversation, Some(conversation));
    assert_ne!(other.thread, first.thread);

    // Everything of the chain sits in one conversation; the engine was told the thread.
    let in_chain = engine
        .messages()
        .iter()
        .filter(|m| m.conversation == conversation)
        .count();
    assert_eq!(in_chain, 4);
    assert!(
        engine.contexts()[1..4]
            .iter()
            .all(|c| c.thread.as_deref() == Some(token) && c.conversation == Some(conversation))
    );
}

#[tokio::test]
async fn a_redelivered_mail_is_handed_over_once() {
    let email = channel(1);
    let engine = TestEngine::new();
    let raw = Mail::new("dup@customer.test", "Hello", "Hi there").raw();
    let a = email.ingest(&raw, &engine).await.unwrap();
    let b = email.ingest(&raw, &engine).await.unwrap();
    assert!(!a.duplicate);
    assert!(b.duplicate);
    assert_eq!(b.threaded_by, ThreadedBy::Redelivery);
    assert!(b.messages.is_empty());
    assert_eq!(b.thread, a.thread);
    assert_eq!(b.conversation, a.conversation);
    assert_eq!(engine.messages().len(), 1);

    // Concurrent deliveries of one new mail: the engine still stores it once.
    let email = Arc::new(channel(1));
    let engine = Arc::new(TestEngine::new());
    let raw = Mail::new("race@customer.test", "Hello", "Hi").raw();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (email, engine, raw) = (email.clone(), engine.clone(), raw.clone());
            tokio::spawn(async move { email.ingest(&raw, engine.as_ref()).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(engine.messages().len(), 1);
}

#[tokio::test]
async fn html_and_attachments_arrive_by_reference() {
    let sink = Arc::new(MemoryAttachmentSink::new());
    let email = EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
        .with_smtp(SmtpConfig::new("127.0.0.1", 1))
        .with_thread_secret(SECRET)
        .with_attachment_sink(sink.clone())
        .build()
        .unwrap();
    let engine = TestEngine::new();
    let raw = b"From: a@customer.test\r\n\
To: support@shop.test\r\n\
Subject: broken\r\n\
Message-ID: <att@customer.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>The <b>box</b> arrived broken &amp; wet</p></body></html>\r\n\
--b1\r\n\
Content-Type: image/png; name=\"box.png\"\r\n\
Content-Disposition: attachment; filename=\"box.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"receipt.pdf\"\r\n\
Content-Disposition: attachment; filename=\"receipt.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQ=\r\n\
--b1--\r\n";
    let done = email.ingest(raw, &engine).await.unwrap();
    let contents: Vec<_> = done
        .messages
        .iter()
        .map(|d| d.message.content.clone())
        .collect();
    assert_eq!(contents.len(), 3);
    match &contents[0] {
        Content::Text { text } => {
            assert!(text.contains("The box arrived broken & wet"), "{text}");
            assert!(!text.contains("<b>"));
        }
        other => panic!("expected text, got {other:?}"),
    }
    let Content::Image { url, .. } = &contents[1] else {
        panic!("expected image, got {:?}", contents[1])
    };
    assert_eq!(sink.load(url).await.unwrap().unwrap(), b"\x89PNG\r\n\x1a\n");
    let Content::File {
        url,
        name,
        mime,
        size,
    } = &contents[2]
    else {
        panic!("expected file, got {:?}", contents[2])
    };
    assert_eq!(name, "receipt.pdf");
    assert_eq!(mime.as_deref(), Some("application/pdf"));
    assert_eq!(*size, Some(8));
    assert_eq!(sink.load(url).await.unwrap().unwrap(), b"%PDF-1.4");
    // All three in the same conversation, each with its own provider id.
    let ids: Vec<_> = done
        .messages
        .iter()
        .map(|d| d.message.provider_message_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "att@customer.test",
            "att@customer.test#1",
            "att@customer.test#2"
        ]
    );
    assert!(
        done.messages
            .iter()
            .all(|d| Some(d.message.conversation) == done.conversation)
    );
}

#[tokio::test]
async fn oversized_and_malformed_mail_is_refused_and_nothing_stored() {
    let email = channel(1);
    let engine = TestEngine::new();
    let big = Mail::new("big@customer.test", "big", &"x".repeat(70 * 1024)).raw();
    assert!(matches!(
        email.ingest(&big, &engine).await,
        Err(Error::PayloadTooLarge { limit: 65536, .. })
    ));
    assert!(matches!(
        email.ingest(b"this is not a mail at all", &engine).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        email
            .ingest(b"Subject: no sender\r\n\r\nbody\r\n", &engine)
            .await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(engine.messages().is_empty());
}

#[tokio::test]
async fn smtp_errors_map_to_retry_or_dead_letter() {
    let (sink, port) = SmtpSink::start().await;
    let email = channel(port);
    let conversation = ConversationId::new();
    sink.data_replies
        .lock()
        .unwrap()
        .push("451 4.3.0 try later".into());
    let e = email
        .send(&outbound(conversation, "a@customer.test", "hi"))
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    sink.data_replies
        .lock()
        .unwrap()
        .push("550 5.1.1 no such user".into());
    let e = email
        .send(&outbound(conversation, "a@customer.test", "hi"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Rejected { .. }), "{e}");
    // Nobody listening: temporary.
    let e = channel(1)
        .send(&outbound(conversation, "a@customer.test", "hi"))
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    // A bad address or a non-email identity is refused before any SMTP.
    let e = email
        .send(&outbound(conversation, "not an address", "hi"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let mut wrong = outbound(conversation, "a@customer.test", "hi");
    wrong.to = Identity::new(ChannelKind::Sms, "+14155550100");
    assert!(matches!(
        email.send(&wrong).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(sink.mails().is_empty());
    // Then it works again.
    email
        .send(&outbound(conversation, "a@customer.test", "hi"))
        .await
        .unwrap();
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test]
async fn capabilities_are_declared_honestly() {
    let email = channel(1);
    let caps = &email.info().capabilities;
    assert_eq!(email.info().kind, ChannelKind::Email);
    assert!(caps.supports(ContentKind::Text));
    assert!(!caps.supports(ContentKind::Image), "images go out as links");
    assert!(!caps.typing && !caps.read_receipts);
    assert_eq!(caps.reply_window, None);
    assert_eq!(caps.max_media_bytes, Some(64 * 1024));
}

#[test]
fn builder_refuses_bad_settings() {
    let id = || ChannelId::new("email").unwrap();
    let smtp = || SmtpConfig::new("127.0.0.1", 25);
    assert!(
        EmailChannel::builder(id(), "support@shop.test")
            .with_thread_secret(SECRET)
            .build()
            .is_err()
    );
    assert!(
        EmailChannel::builder(id(), "support@shop.test")
            .with_smtp(smtp())
            .build()
            .is_err()
    );
    assert!(
        EmailChannel::builder(id(), "support@shop.test")
            .with_smtp(smtp())
            .with_thread_secret(b"short".to_vec())
            .build()
            .is_err()
    );
    assert!(
        EmailChannel::builder(id(), "support+x@shop.test")
            .with_smtp(smtp())
            .with_thread_secret(SECRET)
            .build()
            .is_err()
    );
    assert!(
        EmailChannel::builder(id(), "nobody")
            .with_smtp(smtp())
            .with_thread_secret(SECRET)
            .build()
            .is_err()
    );
    let debug = format!(
        "{:?}",
        EmailChannel::builder(id(), "support@shop.test")
            .with_smtp(smtp().with_credentials("user", "hunter2"))
            .with_thread_secret(SECRET)
            .with_inbound_token("tok-secret")
    );
    assert!(
        !debug.contains("hunter2")
            && !debug.contains("tok-secret")
            && !debug.contains("thread secret"),
        "{debug}"
    );
}

fn post(body: &[u8], auth: Option<&str>) -> RawInbound {
    let mut req = http::Request::post("/webhooks/email").body(()).unwrap();
    if let Some(a) = auth {
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, a.parse().unwrap());
    }
    let (parts, ()) = req.into_parts();
    RawInbound {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body: Bytes::copy_from_slice(body),
        received_at: Utc::now(),
    }
}

#[tokio::test]
async fn the_raw_mime_webhook_needs_its_token() {
    let email = channel(1);
    let raw = Mail::new("hook@customer.test", "Hi", "via webhook").raw();
    for auth in [None, Some("Bearer wrong"), Some("inbound-token")] {
        assert!(matches!(
            email.parse_inbound(post(&raw, auth)).await,
            Err(Error::Unauthenticated { .. })
        ));
    }
    let parsed = email
        .parse_inbound(post(&raw, Some("Bearer inbound-token")))
        .await
        .unwrap();
    assert_eq!(parsed.messages.len(), 1);
    assert_eq!(
        parsed.messages[0].from,
        Identity::new(ChannelKind::Email, "lilei@customer.test")
    );
    assert_eq!(
        parsed.messages[0].provider_message_id.as_deref(),
        Some("hook@customer.test")
    );
    assert_eq!(parsed.messages[0].display_name.as_deref(), Some("Li Lei"));
}

async fn smtp_session(
    port: u16,
) -> (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let (r, w) = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap()
        .into_split();
    (BufReader::new(r), w)
}

/// Sends `line` and returns the last line of the reply.
async fn say(
    io: &mut (
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    ),
    line: &str,
) -> String {
    if !line.is_empty() {
        io.1.write_all(line.as_bytes()).await.unwrap();
        io.1.write_all(b"\r\n").await.unwrap();
    }
    loop {
        let mut reply = String::new();
        io.0.read_line(&mut reply).await.unwrap();
        if reply.len() < 4 || reply.as_bytes()[3] != b'-' {
            return reply.trim_end().to_owned();
        }
    }
}

async fn receiver(max: usize) -> (u16, Arc<TestEngine>) {
    let email = Arc::new(channel(1));
    let engine = Arc::new(TestEngine::new());
    let receiver = SmtpReceiver::builder("mx.shop.test")
        .with_domain("shop.test")
        .with_max_message_bytes(max)
        .build(email, engine.clone())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { receiver.serve(listener, std::future::pending()).await });
    (port, engine)
}

#[tokio::test]
async fn the_smtp_receiver_speaks_smtp_and_refuses_what_it_must() {
    let (port, engine) = receiver(2048).await;
    let mut io = smtp_session(port).await;
    assert!(say(&mut io, "").await.starts_with("220 mx.shop.test"));
    assert!(
        say(&mut io, "MAIL FROM:<a@customer.test>")
            .await
            .starts_with("503"),
        "MAIL before EHLO"
    );
    assert!(say(&mut io, "EHLO").await.starts_with("501"));
    assert_eq!(say(&mut io, "EHLO client.test").await, "250 8BITMIME");
    assert!(
        say(&mut io, "RCPT TO:<support@shop.test>")
            .await
            .starts_with("503"),
        "RCPT before MAIL"
    );
    assert!(
        say(&mut io, "DATA").await.starts_with("503"),
        "DATA before RCPT"
    );
    assert!(
        say(&mut io, "MAIL FROM:a@customer.test")
            .await
            .starts_with("501"),
        "no angle brackets"
    );
    assert!(
        say(&mut io, "MAIL FROM:<a@customer.test> SIZE=999999")
            .await
            .starts_with("552")
    );
    assert!(
        say(&mut io, "MAIL FROM:<a@customer.test> SIZE=10")
            .await
            .starts_with("250")
    );
    assert!(
        say(&mut io, "RCPT TO:<victim@elsewhere.test>")
            .await
            .starts_with("550"),
        "no relaying"
    );
    assert!(say(&mut io, "BOGUS").await.starts_with("500"));
    assert!(
        say(&mut io, &format!("NOOP {}", "x".repeat(600)))
            .await
            .starts_with("500"),
        "line too long"
    );
    let token = "abcdef123456";
    assert!(
        say(&mut io, &format!("RCPT TO:<Support+{token}@Shop.Test>"))
            .await
            .starts_with("250")
    );
    assert!(say(&mut io, "DATA").await.starts_with("354"));
    // The plus address is only in the envelope (a Bcc); a dot-stuffed line comes through.
    let body = "From: a@customer.test\r\nTo: someone@customer.test\r\nSubject: hi\r\nMessage-ID: <smtp1@customer.test>\r\n\r\nfirst line\r\n..leading dot\r\n.";
    let reply = say(&mut io, body).await;
    assert!(
        reply.starts_with("250") && reply.contains("smtp1@customer.test"),
        "{reply}"
    );
    let stored = engine.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, Content::text("first line\n.leading dot"));
    assert_eq!(engine.contexts()[0].thread.as_deref(), Some(token));

    // The same mail again: accepted, not stored twice.
    say(&mut io, "MAIL FROM:<a@customer.test>").await;
    say(&mut io, "RCPT TO:<support@shop.test>").await;
    say(&mut io, "DATA").await;
    assert!(say(&mut io, body).await.starts_with("250"));
    assert_eq!(engine.messages().len(), 1);

    // Too big: read to the end, then refused; the session goes on.
    say(&mut io, "MAIL FROM:<a@customer.test>").await;
    say(&mut io, "RCPT TO:<support@shop.test>").await;
    say(&mut io, "DATA").await;
    let big = format!(
        "From: a@customer.test\r\nSubject: big\r\n\r\n{}\r\n.",
        "y\r\n".repeat(1500)
    );
    assert!(say(&mut io, &big).await.starts_with("552"));
    // Malformed (no sender): refused for good.
    say(&mut io, "MAIL FROM:<a@customer.test>").await;
    say(&mut io, "RCPT TO:<support@shop.test>").await;
    say(&mut io, "DATA").await;
    assert!(
        say(&mut io, "Subject: who?\r\n\r\nanonymous\r\n.")
            .await
            .starts_with("554")
    );
    assert!(say(&mut io, "RSET").await.starts_with("250"));
    assert!(say(&mut io, "QUIT").await.starts_with("221"));
    assert_eq!(engine.messages().len(), 1);
}

#[tokio::test]
async fn our_outbound_mail_reaches_our_own_receiver() {
    // lettre (a real SMTP client) talks to the receiver: the shop's own agent mailing another
    // shop mailbox proves both ends interoperate.
    let (port, engine) = receiver(64 * 1024).await;
    let sender = channel(port);
    let conversation = ConversationId::new();
    let receipt = sender
        .send(&outbound(
            conversation,
            "orders@shop.test",
            "Please check order 1234.",
        ))
        .await
        .unwrap();
    let stored = engine.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, Content::text("Please check order 1234."));
    assert_eq!(stored[0].provider_message_id, receipt.provider_message_id);
}

#[tokio::test]
async fn conformance_of_the_reference_stores() {
    conformance::thread_store(&MemoryThreadStore::new()).await;
    conformance::attachment_sink(&MemoryAttachmentSink::new()).await;
    let dir = std::env::temp_dir().join(format!("cs-email-att-{}", uuid::Uuid::new_v4()));
    conformance::attachment_sink(&FsAttachmentSink::new(&dir)).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
