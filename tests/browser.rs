//! A real browser: headless Chromium (driven over WebDriver by fantoccini and Debian's
//! chromedriver) loads the demo shop, chats with the bot through the widget, asks for a human,
//! and an agent answers from the agent console in a second browser.
//!
//! Runs when `CS_TEST_CHROMEDRIVER` names the chromedriver binary (`.ci/run` installs Debian's
//! `chromium` and `chromium-driver` and sets it); otherwise it prints a notice and passes.
//! `CS_TEST_CHROMIUM` may name the browser binary (default `/usr/bin/chromium`).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, TempDir};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

struct Driver {
    child: Child,
    port: u16,
    _profiles: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(binary: &std::ffi::OsStr) -> Driver {
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver {
        child,
        port,
        _profiles: TempDir::new(),
    }
}

async fn browser(driver: &Driver, profile: &str) -> Client {
    let chromium = std::env::var("CS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let dir = driver._profiles.0.join(profile);
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", dir.display()),
            ]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// Waits up to 15 s for an element whose text contains `needle`.
async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        for el in client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            if let Ok(t) = el.text().await
                && t.contains(needle)
            {
                return t;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {css} containing {needle:?} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_and_send(client: &Client, input: &str, send: &str, text: &str) {
    let field = client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(input))
        .await
        .expect("input present");
    field.send_keys(text).await.unwrap();
    client
        .find(Locator::Css(send))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn widget_bot_handoff_and_agent_console_in_chromium() {
    let Some(chromedriver) = std::env::var_os("CS_TEST_CHROMEDRIVER") else {
        eprintln!("skipping the browser test: set CS_TEST_CHROMEDRIVER=/usr/bin/chromedriver");
        return;
    };
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let driver = start_driver(&chromedriver).await;

    // The shopper opens the shop; the widget connects and the bot answers.
    let shopper = browser(&driver, "shopper").await;
    shopper.goto(&server.url("/")).await.unwrap();
    wait_for_text(&shopper, "[data-testid=chat-status]", "online").await;
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        "When will my order ship?",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=customer]",
        "When will my order ship?",
    )
    .await;
    let answer = wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=bot]",
        "48 hours",
    )
    .await;
    assert!(answer.contains("ship"), "{answer}");

    // An agent signs in to the console in another browser.
    let console = browser(&driver, "agent").await;
    console.goto(&server.url("/agent")).await.unwrap();
    console
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("[data-testid=agent-name]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    type_and_send(
        &console,
        "[data-testid=agent-password]",
        "[data-testid=agent-login-submit]",
        "alice",
    )
    .await;
    wait_for_text(&console, "[data-testid=agent-me]", "Alice").await;

    // "转人工" hands the shopper over; the agent sees the conversation with its history.
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        "转人工",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=system]",
        "Alice",
    )
    .await;
    wait_for_text(&console, "[data-testid=agent-conversation]", "").await;
    wait_for_text(
        &console,
        "[data-testid=agent-message][data-author=customer]",
        "When will my order ship?",
    )
    .await;

    // The agent replies; the shopper sees it.
    type_and_send(
        &console,
        "[data-testid=agent-reply-input]",
        "[data-testid=agent-reply-send]",
        "Hi, Alice here. Which order?",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "Alice here",
    )
    .await;

    // A reload shows the same history from the server.
    shopper.refresh().await.unwrap();
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "Alice here",
    )
    .await;

    shopper.close().await.unwrap();
    console.close().await.unwrap();
    server.stop().await;
}

/// A message the desk does not take is never shown as sent: a text over the widget's limit is
/// refused by the widget itself (the bubble is marked refused, the text stays in the box), and
/// a frame the server closes the socket on (1009: here quotes, which JSON escaping doubles past
/// the frame limit) marks that message refused too, with the server's reason.
#[tokio::test]
async fn the_widget_marks_refused_messages_in_chromium() {
    let Some(chromedriver) = std::env::var_os("CS_TEST_CHROMEDRIVER") else {
        eprintln!("skipping the browser test: set CS_TEST_CHROMEDRIVER=/usr/bin/chromedriver");
        return;
    };
    let dir = TempDir::new();
    let server = Server::start_with(omnidesk::Config {
        database: dir.0.join("desk.db"),
        limits: omnidesk::server::limits::Limits {
            widget_text_bytes: 300,
            widget_frame_bytes: 400,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let driver = start_driver(&chromedriver).await;
    let shopper = browser(&driver, "shopper").await;
    shopper.goto(&server.url("/")).await.unwrap();
    wait_for_text(&shopper, "[data-testid=chat-status]", "online").await;

    // 301 bytes (three-byte characters): refused before it is sent.
    let long = format!("{}xx", "订".repeat(100));
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        &long,
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message]",
        "message too long: 302 bytes",
    )
    .await;
    let refused = shopper
        .find(Locator::Css("[data-testid=chat-message].ods-failed"))
        .await
        .expect("the long message is marked refused");
    assert!(refused.text().await.unwrap().starts_with("订订"));
    let kept = shopper
        .find(Locator::Css("[data-testid=chat-input]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(kept, long, "the text stays in the box to be shortened");

    // 250 quotes: within the text limit, but 500+ bytes as a JSON frame: the socket closes with
    // 1009 and the widget marks the message refused instead of resending it forever.
    shopper
        .find(Locator::Css("[data-testid=chat-input]"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    let quotes = "\"".repeat(250);
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        &quotes,
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message]",
        "over the limit of 400",
    )
    .await;
    let failed = shopper
        .find_all(Locator::Css("[data-testid=chat-message].ods-failed"))
        .await
        .unwrap();
    assert_eq!(failed.len(), 2, "both refused messages are marked");
    // The widget reconnects and works on.
    wait_for_text(&shopper, "[data-testid=chat-status]", "online").await;
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        "When will my order ship?",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=bot]",
        "48 hours",
    )
    .await;
    shopper.close().await.unwrap();
    server.stop().await;
}
