//! The bundled service's operations surface: `/metrics` parsed by a Prometheus text parser,
//! truthful `/healthz` and `/readyz`, the dashboard's data and CSV exports behind the agent
//! sign-in, and the dashboard page in headless Chromium (live update, screenshots at desktop
//! and phone widths in Chinese and English).
//!
//! The Chromium part runs when `CS_TEST_CHROMEDRIVER` names the chromedriver binary; otherwise
//! it prints a notice and passes. Screenshots go to `CS_TEST_SCREENSHOTS` (a folder) when set.

mod common;

use std::time::Duration;

use common::{Server, TempDir, browser, http, post_json};
use omnidesk::Config;
use omnidesk::channels::InboundMessage;
use omnidesk::core::{ChannelId, ChannelKind, Content, Identity, Survey};
use serde_json::{Value, json};

fn config(dir: &TempDir) -> Config {
    let mut c = Config {
        database: dir.0.join("desk.db"),
        ..Config::default()
    };
    c.analytics.flush_every = Duration::from_millis(200);
    c
}

async fn say(server: &Server, visitor: &str, text: &str) {
    server
        .app
        .engine()
        .handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, visitor),
            provider_message_id: Some(uuid::Uuid::new_v4().to_string()),
            content: Content::text(text),
            display_name: None,
            language: None,
            sent_at: None,
        })
        .await
        .unwrap();
}

/// A little day: bot answers, a hand-over that Alice answers and resolves (rated 5), a
/// hand-over the customer walks away from.
async fn a_little_day(server: &Server) {
    let engine = server.app.engine();
    let alice = Config::default().agents[0].id();
    for v in ["v1", "v2", "v3"] {
        say(server, v, "When will my order ship?").await;
    }
    engine.sign_in(alice).await.unwrap();
    say(server, "v1", "转人工").await;
    let mine = engine.agent_conversations(alice).await.unwrap();
    let conv = mine.first().expect("Alice has v1's conversation").id;
    engine
        .agent_reply(alice, conv, Content::text("Hi, Alice here."), None)
        .await
        .unwrap();
    engine.resolve(alice, conv).await.unwrap();
    engine
        .record_survey(conv, Survey::Csat, 5, None)
        .await
        .unwrap();
    engine
        .set_presence(alice, omnidesk::core::Presence::Offline)
        .await
        .unwrap();
    say(server, "v2", "转人工").await;
    let waiting = engine.queue().await.unwrap();
    let left = waiting.queued.first().expect("v2 waits").task.id;
    assert!(engine.customer_left(left, "customer_left").await.unwrap());
    server.app.analytics().unwrap().flush().await.unwrap();
}

async fn token(server: &Server) -> String {
    let (status, login) = post_json(
        server.addr,
        "/agent/login",
        &json!({"name": "alice", "password": "alice"}),
    )
    .await;
    assert_eq!(status, 200);
    login["token"].as_str().unwrap().to_owned()
}

async fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, String, String) {
    let headers: Vec<(&str, String)> = token
        .map(|t| vec![("Authorization", format!("Bearer {t}"))])
        .unwrap_or_default();
    http(server.addr, "GET", path, &headers, "").await
}

#[tokio::test]
async fn metrics_health_data_and_csv() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    a_little_day(&server).await;

    // Prometheus text, parsed as a Prometheus server would.
    let (status, head, body) = get(&server, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    // Other tests in this process may count too: at least what this one did.
    assert!(value("omnidesk_messages_in_total", Some(("channel", "web_chat"))) >= 5.0);
    assert!(value("omnidesk_messages_out_total", Some(("author", "agent"))) >= 1.0);
    assert!(
        value(
            "omnidesk_routing_decisions_total",
            Some(("decision", "assigned"))
        ) >= 1.0
    );
    assert!(
        value(
            "omnidesk_routing_decisions_total",
            Some(("decision", "abandoned"))
        ) >= 1.0
    );
    assert!(value("omnidesk_handoffs_total", None) >= 2.0);
    // The connections were accepted with TCP_NODELAY set (read back from the kernel): no reply
    // waits ~40 ms for a delayed ACK.
    assert!(value("omnidesk_tcp_accepted_total", Some(("nodelay", "true"))) >= 1.0);
    assert_eq!(
        value("omnidesk_tcp_accepted_total", Some(("nodelay", "false"))),
        0.0,
        "no socket without TCP_NODELAY"
    );
    let bot = scrape
        .samples
        .iter()
        .find(|s| s.metric == "omnidesk_bot_latency_seconds")
        .expect("the bot latency histogram");
    match &bot.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.last().unwrap().count >= 5.0, "{buckets:?}")
        }
        other => panic!("a histogram, not {other:?}"),
    }
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "omnidesk_routing_latency_seconds")
    );
    assert!(
        scrape.docs.contains_key("omnidesk_queue_depth"),
        "gauges are described"
    );

    // Health: the ticker runs, the store answers, a channel is configured.
    let mut ready = (0, String::new());
    for _ in 0..50 {
        let (s, _, b) = get(&server, "/readyz", None).await;
        ready = (s, b);
        if s == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    let body: Value = serde_json::from_str(&ready.1).unwrap();
    assert_eq!(body["checks"]["store"]["ok"], true);
    assert_eq!(body["checks"]["channels"]["configured"][0], "webchat");
    assert_eq!(body["checks"]["analytics"]["flushing"], true);
    let (s, _, b) = get(&server, "/healthz", None).await;
    assert_eq!(s, 200, "{b}");

    // The dashboard's data: agents only.
    let (s, _, _) = get(&server, "/dashboard/data", None).await;
    assert_eq!(s, 401);
    let (s, _, _) = get(&server, "/dashboard/data", Some("a1.forged.00")).await;
    assert_eq!(s, 401);
    let token = token(&server).await;
    let (s, _, b) = get(&server, "/dashboard/data", Some(&token)).await;
    assert_eq!(s, 200, "{b}");
    let data: Value = serde_json::from_str(&b).unwrap();
    let tables = data["tables"].as_array().unwrap();
    let ids: Vec<&str> = tables.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "tiles",
            "hours",
            "heatmap",
            "intents",
            "reasons",
            "staffing",
            "scorecards",
            "alerts"
        ]
    );
    let tile = |k: &str| {
        tables[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == k)
            .map(|r| r[1].clone())
            .unwrap()
    };
    assert_eq!(tile("conversations"), 3);
    assert_eq!(tile("csat"), 1.0);
    assert_eq!(tile("abandonment"), 0.5, "two queued, one left");
    assert_eq!(
        tables[5]["rows"].as_array().unwrap().len(),
        48,
        "48 half-hours"
    );

    // Every table as CSV: a header of its columns.
    for t in tables {
        let id = t["id"].as_str().unwrap();
        let (s, head, csv) = get(
            &server,
            &format!("/dashboard/export/{id}.csv"),
            Some(&token),
        )
        .await;
        assert_eq!(s, 200, "{id}");
        assert!(head.contains("text/csv"), "{head}");
        assert!(head.contains("attachment"), "{head}");
        let first = csv
            .trim_start_matches('\u{feff}')
            .lines()
            .next()
            .unwrap()
            .to_owned();
        let columns: Vec<&str> = t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(first, columns.join(","), "{id}");
        assert_eq!(
            csv.lines().count(),
            1 + t["rows"].as_array().unwrap().len(),
            "{id}"
        );
    }
    let (s, _, _) = get(&server, "/dashboard/export/tiles.csv", None).await;
    assert_eq!(s, 401);
    let (s, _, _) = get(&server, "/dashboard/export/nothing.csv", Some(&token)).await;
    assert_eq!(s, 404);
    server.stop().await;
}

#[tokio::test]
async fn readiness_is_false_before_the_service_ticks() {
    let dir = TempDir::new();
    let app = omnidesk::server::App::from_config(config(&dir))
        .await
        .unwrap();
    use tower::ServiceExt;
    let response = app
        .router()
        .unwrap()
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "no ticker runs: not ready");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["checks"]["ticker"]["ok"], false);
    assert_eq!(body["checks"]["store"]["ok"], true);
}

// ---------------------------------------------------------------------------------------------
// Chromium.

/// How long the page may take to show what a step expects.
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn dashboard_in_chromium() {
    let Some(driver) = browser::driver().await else {
        return;
    };
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    a_little_day(&server).await;

    for lang in ["en", "zh-CN"] {
        let client = browser::browser_in(&driver, lang, 1280, 800).await;
        client.set_window_size(1280, 800).await.unwrap();
        client.goto(&server.url("/dashboard")).await.unwrap();
        // Signed out: the sign-in form; a wrong password is refused.
        let name = client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(fantoccini::Locator::Css("[data-testid=dash-name]"))
            .await
            .unwrap();
        name.send_keys("alice").await.unwrap();
        client
            .find(fantoccini::Locator::Css("[data-testid=dash-password]"))
            .await
            .unwrap()
            .send_keys("alice")
            .await
            .unwrap();
        client
            .find(fantoccini::Locator::Css("[data-testid=dash-login-submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser::wait_until(
            &client,
            "[data-testid=tile-conversations-value]",
            WAIT,
            |t| !t.is_empty(),
        )
        .await;
        let before: i64 = browser::text_of(&client, "[data-testid=tile-conversations-value]")
            .await
            .parse()
            .unwrap();
        browser::wait_until(&client, "[data-testid=dash-live]", WAIT, |t| {
            t.contains("live") || t.contains("实时")
        })
        .await;
        if lang == "en" {
            let csat = browser::text_of(&client, "[data-testid=tile-csat-value]").await;
            assert_eq!(csat, "100%");
            // Live: a new conversation reaches the open page without a reload.
            say(&server, &format!("live-{lang}"), "Where is my parcel?").await;
            let after = browser::wait_until(
                &client,
                "[data-testid=tile-conversations-value]",
                WAIT,
                |t| t.parse::<i64>().is_ok_and(|n| n == before + 1),
            )
            .await;
            assert_eq!(after, (before + 1).to_string());
            let title = browser::text_of(&client, "h1").await;
            assert_eq!(title, "Service desk today");
        } else {
            // The page follows the browser's language; the button switches it either way.
            if browser::text_of(&client, "h1").await != "客服健康度仪表盘" {
                client
                    .find(fantoccini::Locator::Css("[data-testid=dash-lang]"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
            }
            let title = browser::text_of(&client, "h1").await;
            assert_eq!(title, "客服健康度仪表盘");
            let tile = browser::text_of(&client, "[data-testid=tile-containment]").await;
            assert!(tile.contains("机器人解决率"), "{tile}");
        }
        // The tables and charts are drawn.
        for id in [
            "chart-volume",
            "chart-frt",
            "chart-sla",
            "chart-staffing",
            "chart-radar",
        ] {
            let svg = client
                .find(fantoccini::Locator::Css(&format!("[data-testid={id}] svg")))
                .await;
            assert!(svg.is_ok(), "{id} has a chart");
        }
        let heat = client
            .find_all(fantoccini::Locator::Css(
                "[data-testid=dash-table-heatmap] tbody tr",
            ))
            .await
            .unwrap();
        assert_eq!(heat.len(), 7, "a row per weekday");
        let staffing = client
            .find_all(fantoccini::Locator::Css(
                "[data-testid=dash-table-staffing] tbody tr",
            ))
            .await
            .unwrap();
        assert_eq!(staffing.len(), 48);
        for id in [
            "tiles",
            "hours",
            "heatmap",
            "intents",
            "reasons",
            "staffing",
            "scorecards",
            "alerts",
        ] {
            assert!(
                client
                    .find(fantoccini::Locator::Css(&format!("[data-testid=csv-{id}]")))
                    .await
                    .is_ok(),
                "a CSV button for {id}"
            );
        }
        let short = if lang == "en" { "en" } else { "zh" };
        browser::shoot(&client, &format!("dashboard-desktop-{short}"), 1280, 800).await;
        browser::shoot(&client, &format!("dashboard-phone-{short}"), 390, 844).await;
        // The whole page too, for a person to look at.
        for (w, kind) in [(1280u32, "desktop"), (390, "phone")] {
            client.set_window_size(w, 800).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let h = client
                .execute("return document.documentElement.scrollHeight", vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap_or(800) as u32;
            browser::shoot(
                &client,
                &format!("dashboard-{kind}-{short}-full"),
                w,
                h.min(6000),
            )
            .await;
        }
        client.close().await.unwrap();
    }
    server.stop().await;
}
