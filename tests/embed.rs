//! The desk nested in someone else's axum application (`examples/embed_axum.rs`, included
//! here): under `/support` its pages render with that prefix, sign-in and the REST API answer
//! at `/support/api/v1`, the console's and the widget's sockets connect under it, and the
//! host's own routes stay the host's. A headless Chromium signs in to `/support/agent` and
//! answers a shopper on `/support` (when `CS_TEST_CHROMEDRIVER` is set).

mod common;

#[path = "../examples/embed_axum.rs"]
#[allow(dead_code)]
mod embed_axum;

use std::net::SocketAddr;
use std::time::Duration;

use common::browser::{self, type_and_send, wait_for_text};
use common::{Client, TempDir, api, http, is_message_from, post_json};
use fantoccini::Locator;
use omnidesk::Config;
use omnidesk::server::{App, Background};
use serde_json::json;
use tokio::sync::oneshot;

/// The host application of the example, served on a loopback port with the desk's background
/// work running.
struct Host {
    addr: SocketAddr,
    background: Background,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Host {
    async fn start(dir: &std::path::Path) -> Self {
        let desk = App::from_config(Config {
            database: dir.join("desk.db"),
            port: 0,
            ..Config::default()
        })
        .await
        .expect("desk builds");
        let app = embed_axum::shop_app(&desk).expect("host app builds");
        let background = desk.start().await.expect("background starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        Self {
            addr,
            background,
            stop,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.background.stop().await;
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, &[], "").await;
    (status, body)
}

#[tokio::test]
async fn the_desk_nested_at_support_serves_pages_api_and_sockets_under_it() {
    let dir = TempDir::new();
    let host = Host::start(&dir.0).await;
    let addr = host.addr;

    // The host's own routes are the host's.
    let (status, home) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(home.contains("Acme shop"), "{home}");
    let (status, products) = get(addr, "/api/shop/products").await;
    assert_eq!(status, 200);
    assert!(products.contains("shoe-42"), "{products}");
    // The desk is not at the root.
    assert_eq!(get(addr, "/agent").await.0, 404);
    assert_eq!(get(addr, "/api/v1/openapi.json").await.0, 404);

    // Every page names its assets, links and endpoints under /support.
    for (path, wants) in [
        (
            "/support/agent",
            &[
                "src=\"/support/agent/console.js\"",
                "href=\"/support/agent/console.css\"",
                "href=\"/support/agent/knowledge\"",
            ][..],
        ),
        (
            "/support/dashboard",
            &["src=\"/support/dashboard/dashboard.js\""][..],
        ),
        (
            "/support/agent/knowledge",
            &[
                "src=\"/support/agent/knowledge/knowledge.js\"",
                "href=\"/support/agent\"",
            ][..],
        ),
        (
            "/support",
            &["src=\"/support/chat/widget.js\" data-endpoint=\"/support/chat\""][..],
        ),
    ] {
        let (status, page) = get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            page.contains("<meta name=\"omnidesk-base\" content=\"/support\">"),
            "{path}: {page}"
        );
        for want in wants {
            assert!(page.contains(want), "{path} lacks {want}: {page}");
        }
        assert!(!page.contains("{{base}}"), "{path}: {page}");
        assert!(
            !page.contains("=\"/agent") && !page.contains("=\"/chat"),
            "{path}: {page}"
        );
    }
    let (status, head, _) = http(addr, "GET", "/support/", &[], "").await;
    assert_eq!(status, 308, "{head}");
    assert!(head.contains("location: /support\r\n"), "{head}");
    for script in [
        "/support/agent/console.js",
        "/support/dashboard/dashboard.js",
        "/support/agent/knowledge/knowledge.js",
        "/support/chat/widget.js",
    ] {
        assert_eq!(get(addr, script).await.0, 200, "{script}");
    }

    // The desk's background work runs (App::start): its health turns 200 once the ticker has
    // beaten, with the analytics subscriber running.
    let mut health = (0, String::new());
    for _ in 0..50 {
        health = get(addr, "/support/readyz").await;
        if health.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health.0, 200, "{}", health.1);
    assert!(health.1.contains("ticker"), "{}", health.1);

    // Sign-in and the API under the prefix.
    let (status, login) = post_json(
        addr,
        "/support/api/v1/auth/login",
        &json!({ "name": "alice", "password": "alice" }),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap();
    let (status, me) = api(addr, "GET", "/support/api/v1/me", Some(token), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "Alice", "{me}");

    // The console's socket under the prefix, opened from the host's own page.
    let (status, ticket) = api(
        addr,
        "POST",
        "/support/api/v1/auth/ws-ticket",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ticket}");
    let ticket = ticket["ticket"].as_str().unwrap();
    let mut alice = Client::connect(&format!("ws://{addr}/support/agent/ws?ticket={ticket}")).await;
    let welcome = alice.next().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // A shopper's widget session and socket under the prefix; asking for a human reaches
    // Alice's console.
    let (status, session) = post_json(addr, "/support/chat/session", &json!({})).await;
    assert_eq!(status, 200, "{session}");
    let visitor = session["token"].as_str().unwrap();
    let mut shopper =
        Client::connect(&format!("ws://{addr}/support/chat/ws?token={visitor}")).await;
    assert_eq!(shopper.next().await["type"], "hello");
    shopper
        .send_json(json!({"type": "message", "client_id": "c1", "text": "转人工"}))
        .await;
    shopper.until(is_message_from("system")).await;
    let assigned = alice.until(|f| f["type"] == "assigned").await;
    assert!(
        assigned["conversation"]["conversation"]["id"].is_string(),
        "{assigned}"
    );

    host.stop().await;
}

#[tokio::test]
async fn the_console_at_support_agent_signs_in_and_answers_the_shop_in_chromium() {
    let Some(driver) = browser::driver().await else {
        return;
    };
    let dir = TempDir::new();
    let host = Host::start(&dir.0).await;

    // Alice signs in to the console nested at /support/agent; her name appears when the
    // console's socket (under /support) has welcomed her.
    let console = browser::browser(&driver, "agent", 1280, 800).await;
    console.goto(&host.url("/support/agent")).await.unwrap();
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

    // A shopper on the desk's shop page under /support: the widget connects under the prefix,
    // asks for a human and gets Alice's answer.
    let shopper = browser::browser(&driver, "shopper", 390, 844).await;
    shopper.goto(&host.url("/support?lang=en")).await.unwrap();
    wait_for_text(&shopper, "[data-testid=chat-status]", "Online").await;
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
    wait_for_text(
        &console,
        "[data-testid=agent-message][data-author=customer]",
        "转人工",
    )
    .await;
    type_and_send(
        &console,
        "[data-testid=agent-reply-input]",
        "[data-testid=agent-reply-send]",
        "Hi, Alice here, under /support.",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "under /support",
    )
    .await;
    browser::screenshot(&console, "embed-console").await;
    browser::screenshot(&shopper, "embed-shop").await;

    // The console's link to the knowledge editor stays under the prefix.
    let href = console
        .find(Locator::Css("[data-testid=agent-knowledge-link]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(href, "/support/agent/knowledge");

    // The dashboard and the knowledge editor under the prefix, signed in by the console's
    // session: their data, event stream and entries load from /support.
    console.goto(&host.url("/support/dashboard")).await.unwrap();
    wait_for_text(&console, "[data-testid=dash-live]", "live").await;
    wait_for_text(&console, "[data-testid=dash-tiles]", "").await;
    browser::screenshot(&console, "embed-dashboard").await;
    console
        .goto(&host.url("/support/agent/knowledge"))
        .await
        .unwrap();
    wait_for_text(&console, "[data-testid=kb-entries]", "invoice").await;
    browser::screenshot(&console, "embed-knowledge").await;

    shopper.close().await.unwrap();
    console.close().await.unwrap();
    host.stop().await;
}
