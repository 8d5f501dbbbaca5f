//! A phone call wired into the bundled service by configuration: the provider's signed voice
//! webhook walks the IVR menu at `/webhooks/{id}`, the chosen queue's skills route the call to
//! the agent who has them, the call is connected to that agent (the provider's REST API, mocked
//! at the network boundary, is asked to `<Dial>` them), no text notice dead-letters, and a
//! forged request is refused.

#![cfg(feature = "voice")]

mod common;

use common::{Server, TempDir, agent, post_form};
use omnidesk::channels::sms::{SIGNATURE_HEADER, signature};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MENU: &str = r#"
start = "main"
max_attempts = 2
timeout_secs = 6
language = "en-US"
fallback = { type = "route", queue = "general" }

[menus.main]
prompt = "Press 1 for returns, 2 for sales."
options = [
  { digit = "1", keywords = ["return"], action = { type = "route", queue = "returns", skills = ["after-sales"] } },
  { digit = "2", keywords = ["buy"], action = { type = "route", queue = "sales", skills = ["presales"] } },
]
"#;

const TOKEN: &str = "voice-auth-token";
const URL: &str = "https://desk.example/webhooks/phone";

fn signed(params: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    vec![(SIGNATURE_HEADER, signature(TOKEN, URL, params))]
}

#[tokio::test]
async fn a_call_walks_the_menu_and_reaches_the_agent_with_the_skill() {
    let dir = TempDir::new();
    let menu = dir.0.join("menu.toml");
    std::fs::write(&menu, MENU).unwrap();
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC1/Calls/CA100.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"sid": "CA100"})))
        .expect(1)
        .mount(&provider)
        .await;
    let config: omnidesk::Config = toml::from_str(&format!(
        "database = {:?}\n[[channels]]\nkind = \"voice\"\nid = \"phone\"\nauth_token = \"{TOKEN}\"\nwebhook_url = \"{URL}\"\nmenu = {:?}\naccount_sid = \"AC1\"\napi_base_url = \"{}\"\n",
        dir.0.join("desk.db"),
        menu,
        provider.uri()
    ))
    .unwrap();
    // The demo accounts (Alice has the skill the menu asks for).
    let config = omnidesk::Config {
        demo: true,
        agents: omnidesk::Config::default().agents,
        ..config
    };
    let server = Server::start_with(config).await;
    let (mut alice, _) = agent(&server, "alice", "alice").await;

    let first = [
        ("CallSid", "CA100"),
        ("From", "+8613800138000"),
        ("To", "+14155550100"),
    ];
    let (status, twiml) = post_form(server.addr, "/webhooks/phone", &signed(&first), &first).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains("<Gather") && twiml.contains("Press 1"),
        "{twiml}"
    );

    let forged = [
        ("CallSid", "CA100"),
        ("From", "+8613800138000"),
        ("Digits", "1"),
    ];
    let (status, _) = post_form(server.addr, "/webhooks/phone", &signed(&first), &forged).await;
    assert_eq!(
        status, 401,
        "a request whose signature does not match is refused"
    );

    let pressed = [
        ("CallSid", "CA100"),
        ("From", "+8613800138000"),
        ("To", "+14155550100"),
        ("Digits", "1"),
    ];
    let (status, twiml) =
        post_form(server.addr, "/webhooks/phone", &signed(&pressed), &pressed).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Enqueue"), "{twiml}");

    // Alice has after-sales: the routed call is hers, with the caller's phone identity.
    let assigned = alice.until(|f| f["type"] == "assigned").await;
    let conv = &assigned["conversation"]["conversation"];
    assert_eq!(conv["skills"][0], "after-sales");
    assert_eq!(conv["route"]["identity"]["external_id"], "+8613800138000");

    // The call rings Alice: the live call is redirected to <Dial><Client>alice</Client>.
    let requests = wait_for_requests(&provider, 1).await;
    let form: Vec<(String, String)> = form_urlencoded::parse(&requests[0].body)
        .into_owned()
        .collect();
    let twiml = &form.iter().find(|(k, _)| k == "Twiml").unwrap().1;
    assert!(
        twiml.contains("<Dial><Client>alice</Client></Dial>"),
        "{twiml}"
    );
    // No "has joined" text was sent into the call, so nothing dead-letters.
    assert!(
        server
            .app
            .engine()
            .dead_letters(10)
            .await
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

/// The requests the mock provider received, once there are at least `n` (within 5 s).
async fn wait_for_requests(server: &MockServer, n: usize) -> Vec<wiremock::Request> {
    for _ in 0..100 {
        let got = server.received_requests().await.unwrap_or_default();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the provider got fewer than {n} requests");
}
