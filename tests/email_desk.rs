//! The email channel wired into the bundled service by configuration: a customer's mail reaches
//! the built-in SMTP receiver, the bot's answer goes out through the configured relay (a small
//! SMTP sink here) threaded to the customer's mail, and a re-delivered mail is stored once.

#![cfg(feature = "email")]

mod common;
#[path = "../cs-channels/tests/support/smtp_sink.rs"]
mod smtp_sink;

use std::time::Duration;

use common::{Server, TempDir};
use omnidesk::config::EmailConfig;
use omnidesk::core::{ChannelKind, Identity};
use smtp_sink::{SmtpSink, header};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Sends one raw mail over SMTP, checking every reply code.
async fn send_mail(port: u16, raw: &str) {
    // The receiver starts with the service, a moment after it was spawned.
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = stream.expect("the SMTP receiver listens");
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let mut expect = async |code: &str| loop {
        let line = lines.next_line().await.unwrap().expect("server answers");
        assert!(line.starts_with(code), "expected {code}, got {line}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220").await;
    for (cmd, code) in [
        ("EHLO customer.example\r\n", "250"),
        ("MAIL FROM:<ann@example.com>\r\n", "250"),
        ("RCPT TO:<support@shop.example>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        w.write_all(cmd.as_bytes()).await.unwrap();
        expect(code).await;
    }
    w.write_all(raw.replace('\n', "\r\n").as_bytes())
        .await
        .unwrap();
    w.write_all(b"\r\n.\r\n").await.unwrap();
    expect("250").await;
    w.write_all(b"QUIT\r\n").await.unwrap();
}

#[tokio::test]
async fn mail_in_through_the_receiver_and_the_answer_out_through_the_relay() {
    let (sink, relay_port) = SmtpSink::start().await;
    let listen_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new();
    let email: EmailConfig = toml::from_str(&format!(
        "address = \"support@shop.example\"\nrelay = \"127.0.0.1:{relay_port}\"\nlisten = \"127.0.0.1:{listen_port}\"\n"
    ))
    .unwrap();
    let server = Server::start_with(omnidesk::Config {
        database: dir.0.join("desk.db"),
        email: Some(email),
        ..omnidesk::Config::default()
    })
    .await;

    let mail = "From: Ann <ann@example.com>\nTo: support@shop.example\nSubject: return\nMessage-ID: <m1@example.com>\nContent-Type: text/plain; charset=utf-8\n\nHow do I return an item?\n";
    send_mail(listen_port, mail).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let answer = loop {
        if let Some(m) = sink.mails().first().cloned() {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.to, ["ann@example.com"]);
    assert_eq!(
        header(&answer.raw, "In-Reply-To").as_deref(),
        Some("<m1@example.com>")
    );
    // The bundled FAQ's answer to a return question, in the body (not just the subject).
    let raw = String::from_utf8_lossy(&answer.raw);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body = body.replace("=\r\n", "");
    assert!(body.contains("within 7 days of delivery"), "{raw}");

    // The provider (or a sending server) delivers the same mail again: stored once.
    send_mail(listen_port, mail).await;
    let store = server.app.engine().store().clone();
    let tenant = server.app.engine().tenant().clone();
    let ann = store
        .find_customer(
            &tenant,
            &Identity::new(ChannelKind::Email, "ann@example.com"),
        )
        .await
        .unwrap()
        .expect("the customer exists");
    let view = server.app.engine().customer_view(ann.id).await.unwrap();
    let from_ann = view
        .history
        .iter()
        .filter(|m| m.author.role() == "customer")
        .count();
    assert_eq!(from_ann, 1, "a re-delivered mail is stored once");
    server.stop().await;
}
