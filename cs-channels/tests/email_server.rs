//! The email channel against a real mail server on loopback: SMTP by aiosmtpd, IMAP by Dovecot,
//! started by `tests/support/mailserver.py` (see the crate README). Set `CS_TEST_MAIL=1` (and
//! optionally `CS_TEST_MAIL_SMTP_PORT`, `CS_TEST_MAIL_IMAP_PORT`, `CS_TEST_MAIL_SMTPS_PORT`,
//! `CS_TEST_MAIL_IMAPS_PORT`, `CS_TEST_MAIL_ROOT`; defaults 2525, 1143, 2465, 10993 and
//! `/tmp/cs-test-mail`); without it the tests print a notice and pass without running.
#![cfg(feature = "email")]

#[path = "support/handler.rs"]
mod handler;
#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::sync::Arc;
use std::time::Duration;

use async_imap::Client;
use cs_channels::email::{EmailChannel, ImapConfig, ImapPoller, SmtpConfig};
use cs_channels::{Channel, Error};
use cs_core::{ChannelId, Content};
use futures::TryStreamExt;
use handler::{TestEngine, outbound};
use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_sink::header;
use tokio::net::TcpStream;

const PASSWORD: &str = "secret";

fn port(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

fn ports() -> Option<(u16, u16)> {
    if std::env::var("CS_TEST_MAIL").ok().as_deref() != Some("1") {
        eprintln!(
            "skipping: set CS_TEST_MAIL=1 with tests/support/mailserver.py running to test against a real mail server"
        );
        return None;
    }
    Some((
        port("CS_TEST_MAIL_SMTP_PORT", 2525),
        port("CS_TEST_MAIL_IMAP_PORT", 1143),
    ))
}

/// Submits a raw mail as the customer's mail client would.
async fn submit(smtp: u16, from: &str, to: &str, raw: &[u8]) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp)
        .hello_name(ClientId::Domain("customer.test".into()))
        .build();
    let envelope = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    transport.send_raw(&envelope, raw).await.unwrap();
}

/// Every mail in `user`'s inbox, raw.
async fn inbox(imap: u16, user: &str) -> Vec<Vec<u8>> {
    let stream = TcpStream::connect(("127.0.0.1", imap)).await.unwrap();
    let mut client = Client::new(stream);
    client.read_response().await.unwrap();
    let mut session = client
        .login(user, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    session.select("INBOX").await.unwrap();
    let fetches: Vec<_> = session
        .fetch("1:*", "BODY.PEEK[]")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let out = fetches
        .iter()
        .filter_map(|f| f.body().map(<[u8]>::to_vec))
        .collect();
    session.logout().await.unwrap();
    out
}

fn customer_mail(
    from: &str,
    to: &str,
    id: &str,
    subject: &str,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: Li Lei <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 03:00:00 +0000\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn wait_for(engine: &TestEngine, count: usize) {
    for _ in 0..200 {
        if engine.messages().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {count} messages within 10 s, have {}",
        engine.messages().len()
    );
}

#[tokio::test]
async fn a_reply_chain_through_a_real_mail_server_lands_in_one_conversation() {
    let Some((smtp, imap)) = ports() else { return };
    // Fresh mailboxes per run: the server takes any user name.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let support = format!("support{run}");
    let customer = format!("cust{run}");
    let support_addr = format!("{support}@shop.test");
    let customer_addr = format!("{customer}@customer.test");

    let email = Arc::new(
        EmailChannel::builder(ChannelId::new("email").unwrap(), &support_addr)
            .with_display_name("Shop Support")
            .with_smtp(SmtpConfig::new("127.0.0.1", smtp))
            .with_thread_secret(b"a thread secret for the server test".to_vec())
            .build()
            .unwrap(),
    );
    let engine = Arc::new(TestEngine::new());
    let config = ImapConfig::new("127.0.0.1", imap, &support, PASSWORD)
        .with_poll_every(Duration::from_secs(2));
    let poller = ImapPoller::new(config.clone(), email.clone(), engine.clone());

    // The customer writes.
    let first_id = format!("first.{run}@customer.test");
    submit(
        smtp,
        &customer_addr,
        &support_addr,
        &customer_mail(
            &customer_addr,
            &support_addr,
            &first_id,
            "Where is my parcel?",
            "",
            "Order 1234 has not arrived.",
        ),
    )
    .await;
    let report = poller.poll_once().await.unwrap();
    assert_eq!((report.fetched, report.stored), (1, 1), "{report:?}");
    let stored = engine.messages();
    let conversation = stored[0].conversation;
    assert_eq!(
        stored[0].content,
        Content::text("Order 1234 has not arrived.")
    );
    assert_eq!(
        engine.contexts()[0].thread.as_deref().map(str::len),
        Some(16),
        "a new thread token"
    );
    // Seen now: a second pass takes nothing.
    assert_eq!(poller.poll_once().await.unwrap().fetched, 0);

    // The agent answers through the server; the customer's mailbox receives it.
    let receipt = email
        .send(&outbound(conversation, &customer_addr, "It ships today."))
        .await
        .unwrap();
    let ours = receipt.provider_message_id.unwrap();
    let received = inbox(imap, &customer).await;
    assert_eq!(received.len(), 1);
    let answer = &received[0];
    assert_eq!(header(answer, "Message-ID").unwrap(), format!("<{ours}>"));
    assert_eq!(
        header(answer, "In-Reply-To").unwrap(),
        format!("<{first_id}>")
    );
    assert_eq!(
        header(answer, "References").unwrap(),
        format!("<{first_id}>")
    );
    let reply_to = header(answer, "Reply-To").unwrap();
    let plus = reply_to
        .split(['<', '>'])
        .find(|p| p.contains('+'))
        .expect("plus address in Reply-To")
        .to_owned();
    let subject = header(answer, "Subject").unwrap();
    assert!(
        subject.starts_with("Re: Where is my parcel? [#"),
        "{subject}"
    );

    // The customer's mail client answers to the Reply-To with the usual headers.
    let second_id = format!("second.{run}@customer.test");
    submit(
        smtp,
        &customer_addr,
        &plus,
        &customer_mail(
            &customer_addr,
            &plus,
            &second_id,
            &format!("Re: {}", subject.trim_start_matches("Re: ")),
            &format!("In-Reply-To: <{ours}>\r\nReferences: <{first_id}> <{ours}>\r\n"),
            "Thanks! Still not here though.\r\n\r\nOn Mon, Shop Support wrote:\r\n> It ships today.",
        ),
    )
    .await;
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.stored, 1, "{report:?}");
    let stored = engine.messages();
    assert_eq!(stored[1].conversation, conversation);
    assert_eq!(
        stored[1].content,
        Content::text("Thanks! Still not here though.")
    );

    // The same mail delivered again (a retrying relay): recognised, not stored twice.
    submit(
        smtp,
        &customer_addr,
        &plus,
        &customer_mail(
            &customer_addr,
            &plus,
            &second_id,
            "Re: again",
            "",
            "Thanks! Still not here though.",
        ),
    )
    .await;
    let report = poller.poll_once().await.unwrap();
    assert_eq!(
        (report.fetched, report.duplicates, report.stored),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(engine.messages().len(), 2);

    // IDLE: the running poller picks up a reply that only References the chain.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        // A 60 s poll interval: only IDLE (or the first pass) can pick the mail up in time.
        let poller = ImapPoller::new(
            config.with_poll_every(Duration::from_secs(60)),
            email.clone(),
            engine.clone(),
        );
        tokio::spawn(async move {
            poller
                .run(async {
                    stopped.await.ok();
                })
                .await
        })
    };
    // Give the poller time to log in and enter IDLE.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third_id = format!("third.{run}@customer.test");
    submit(
        smtp,
        &customer_addr,
        &support_addr,
        &customer_mail(
            &customer_addr,
            &support_addr,
            &third_id,
            "parcel",
            &format!("References: <{first_id}> <{ours}> <{second_id}>\r\n"),
            "Any news?",
        ),
    )
    .await;
    wait_for(&engine, 3).await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let stored = engine.messages();
    assert_eq!(stored[2].conversation, conversation);
    assert!(
        stored.iter().all(|m| m.conversation == conversation),
        "the whole chain is one conversation"
    );

    // A second answer references the whole chain.
    email
        .send(&outbound(conversation, &customer_addr, "Tracking: SF123."))
        .await
        .unwrap();
    let received = inbox(imap, &customer).await;
    assert_eq!(received.len(), 2);
    assert_eq!(
        header(&received[1], "In-Reply-To").unwrap(),
        format!("<{third_id}>")
    );
    let refs = header(&received[1], "References").unwrap();
    for id in [&first_id, &ours, &second_id, &third_id] {
        assert!(refs.contains(id.as_str()), "{id} missing from {refs}");
    }
}

#[tokio::test]
async fn a_wrong_imap_password_is_refused_for_good() {
    let Some((_, imap)) = ports() else { return };
    let email = Arc::new(
        EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
            .with_smtp(SmtpConfig::new("127.0.0.1", 1))
            .with_thread_secret(b"a thread secret for the server test".to_vec())
            .build()
            .unwrap(),
    );
    let poller = ImapPoller::new(
        ImapConfig::new("127.0.0.1", imap, "support", "wrong"),
        email,
        Arc::new(TestEngine::new()),
    );
    let e = poller.poll_once().await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated { .. }), "{e}");
    assert!(!e.is_temporary());
}

/// SMTP with STARTTLS and with TLS from the first byte, and IMAP over TLS, each checking the
/// server's certificate: trusted when the test CA is given, refused when it is not.
#[cfg(feature = "email-tls")]
#[tokio::test]
async fn smtp_and_imap_over_tls_check_the_certificate() {
    use cs_channels::email::SmtpTls;

    let Some((smtp, _)) = ports() else { return };
    let smtps = port("CS_TEST_MAIL_SMTPS_PORT", 2465);
    let imaps = port("CS_TEST_MAIL_IMAPS_PORT", 10993);
    let root = std::env::var("CS_TEST_MAIL_ROOT").unwrap_or_else(|_| "/tmp/cs-test-mail".into());
    let ca = std::fs::read(format!("{root}/ca.pem")).expect("the test CA");
    let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let customer = format!("tls{run}");
    let customer_addr = format!("{customer}@customer.test");
    let sender = |smtp: SmtpConfig| {
        EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
            .with_smtp(smtp)
            .with_thread_secret(b"a thread secret for the server test".to_vec())
            .build()
            .unwrap()
    };
    let conversation = cs_core::ConversationId::new();
    sender(
        SmtpConfig::new("127.0.0.1", smtp)
            .with_tls(SmtpTls::StartTls)
            .with_root_certificate(ca.clone()),
    )
    .send(&outbound(conversation, &customer_addr, "over STARTTLS"))
    .await
    .unwrap();
    sender(
        SmtpConfig::new("127.0.0.1", smtps)
            .with_tls(SmtpTls::Implicit)
            .with_root_certificate(ca.clone()),
    )
    .send(&outbound(conversation, &customer_addr, "over implicit TLS"))
    .await
    .unwrap();
    // Without the test CA the self-signed certificate is refused and nothing is sent.
    let refused = sender(SmtpConfig::new("127.0.0.1", smtps).with_tls(SmtpTls::Implicit))
        .send(&outbound(conversation, &customer_addr, "must not arrive"))
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // The customer's mailbox, read over IMAPS.
    let mailbox = Arc::new(
        EmailChannel::builder(ChannelId::new("email").unwrap(), &customer_addr)
            .with_smtp(SmtpConfig::new("127.0.0.1", 1))
            .with_thread_secret(b"a thread secret for the server test".to_vec())
            .build()
            .unwrap(),
    );
    let engine = Arc::new(TestEngine::new());
    let tls = ImapConfig::new("127.0.0.1", imaps, &customer, PASSWORD).with_tls(true);
    let untrusted = ImapPoller::new(tls.clone(), mailbox.clone(), engine.clone());
    let e = untrusted.poll_once().await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    let poller = ImapPoller::new(tls.with_root_certificate(ca), mailbox, engine.clone());
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.stored, 2, "{report:?}");
    let texts: Vec<String> = engine
        .messages()
        .iter()
        .map(|m| m.content.plain_text())
        .collect();
    assert_eq!(texts, ["over STARTTLS", "over implicit TLS"]);
}
