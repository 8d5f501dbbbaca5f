//! A phone call wired into the bundled service by configuration: the provider's signed voice
//! webhook walks the IVR menu at `/webhooks/{id}`, the chosen queue's skills route the call to
//! the agent who has them, and a forged request is refused.

#![cfg(feature = "voice")]

mod common;

use common::{Server, TempDir, agent, post_form};
use omnidesk::channels::sms::{SIGNATURE_HEADER, signature};

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
    let config: omnidesk::Config = toml::from_str(&format!(
        "database = {:?}\n[[channels]]\nkind = \"voice\"\nid = \"phone\"\nauth_token = \"{TOKEN}\"\nwebhook_url = \"{URL}\"\nmenu = {:?}\n",
        dir.0.join("desk.db"),
        menu
    ))
    .unwrap();
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
    server.stop().await;
}
