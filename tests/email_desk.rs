//! The email channel wired into the bundled service by configuration: a customer's mail reaches
//! the built-in SMTP receiver, the bot's answer goes out through the configured relay (a small
//! SMTP sink here) threaded to the customer's mail, and a re-delivered mail is stored once.

#![cfg(feature = "email")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, TempDir};
use omnidesk::config::EmailConfig;
use omnidesk::core::{ChannelKind, Identity};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A minimal SMTP server that accepts everything and keeps each message's DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink\r\n").await.ok();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "DATA" => {
                            w.write_all(b"354 go on\r\n").await.ok();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            keep.lock().unwrap().push(data);
                            b"250 kept\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.ok();
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    w.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, got)
}

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
    let (relay_port, sent) = smtp_sink().await;
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
        if let Some(m) = sent.lock().unwrap().first().cloned() {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(answer.contains("In-Reply-To: <m1@example.com>"), "{answer}");
    assert!(answer.to_lowercase().contains("return"), "{answer}");

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
