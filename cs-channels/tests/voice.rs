//! Voice: the IVR engine (menus, keys, speech, time-outs, repeats, invalid input, the clock) and
//! the TwiML webhook (Twilio's official signature example, forged requests, Gather/Say/Enqueue
//! answers, the routed call landing once with the caller's E.164 identity).
#![cfg(all(feature = "voice", feature = "router"))]

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{StoreHandler, assert_unauthenticated, clock, raw, router_for, through_router};
use cs_channels::sms::signature;
use cs_channels::voice::{
    CALL_EVENT, CallRouted, Ivr, IvrAction, IvrInput, IvrMenu, IvrOption, IvrStep, IvrTree, Voice,
};
use cs_channels::{Channel, Error, Parsed};
use cs_core::{ChannelId, ChannelKind, Clock, Content, Identity, ManualClock};
use http::Method;

const TREE: &str = r##"
start = "main"
max_attempts = 3
timeout_secs = 6
language = "en-US"
fallback = { type = "route", queue = "general", say = "Let me find someone for you." }

[menus.main]
prompt = "Welcome. Press 1 for orders, 2 for refunds, 0 for an agent."
options = [
  { digit = "1", keywords = ["order", "delivery"], action = { type = "route", queue = "orders", skills = ["logistics"] } },
  { digit = "2", keywords = ["refund", "return", "退款"], action = { type = "menu", menu = "refunds" } },
  { digit = "0", keywords = ["agent", "human"], action = { type = "route", queue = "general" } },
  { digit = "9", action = { type = "hangup", say = "Goodbye." } },
]

[menus.refunds]
prompt = "Press 1 if the parcel arrived damaged, 2 if it never came."
timeout_secs = 8
options = [
  { digit = "1", keywords = ["damaged", "broken"], action = { type = "route", queue = "refunds", skills = ["returns", "zh"] } },
  { digit = "2", keywords = ["never came", "lost"], action = { type = "route", queue = "refunds", skills = ["logistics"] } },
  { digit = "#", action = { type = "menu", menu = "main" } },
]
"##;

const TOKEN: &str = "voice-auth-token";
const URL: &str = "https://shop.example/webhooks/voice";

fn tree() -> IvrTree {
    IvrTree::from_toml(TREE).unwrap()
}

fn voice(clock: Arc<ManualClock>) -> Arc<Voice> {
    Arc::new(
        Voice::builder(ChannelId::new("voice").unwrap())
            .with_tree(tree())
            .with_auth_token(TOKEN)
            .with_webhook_url(URL)
            .with_clock(clock)
            .build()
            .unwrap(),
    )
}

fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn signed(params: &[(&str, &str)]) -> cs_channels::RawInbound {
    let sig = signature(TOKEN, URL, params);
    raw(
        Method::POST,
        "/webhooks/voice",
        &[
            ("x-twilio-signature", sig.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        form(params),
    )
}

fn call(sid: &str, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("CallSid", sid.to_owned()),
        ("From", "+86 138 0013 8000".to_owned()),
        ("To", "+14155550100".to_owned()),
        ("CallStatus", "in-progress".to_owned()),
    ];
    p.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    p
}

async fn post(v: &Voice, params: &[(&'static str, String)]) -> (Parsed, String) {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let parsed = v.parse_inbound(signed(&pairs)).await.unwrap();
    let twiml = String::from_utf8(parsed.response.body.to_vec()).unwrap();
    assert_eq!(parsed.response.content_type, Some("text/xml"));
    (parsed, twiml)
}

#[tokio::test]
async fn twilios_official_signature_example_is_accepted() {
    // The example of Twilio's security docs and SDK snippets: auth token 12345, URL
    // https://mycompany.com/myapp.php?foo=1&bar=2, expected RSOYDt4T1cUTdK1PDd93/VVr8B8=.
    let v = Voice::builder(ChannelId::new("voice").unwrap())
        .with_tree(tree())
        .with_auth_token("12345")
        .with_webhook_url("https://mycompany.com/myapp.php")
        .with_clock(clock())
        .build()
        .unwrap();
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    assert_eq!(
        signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    let request = raw(
        Method::POST,
        "/myapp.php?foo=1&bar=2",
        &[("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")],
        form(&params),
    );
    let parsed = v.parse_inbound(request).await.unwrap();
    let twiml = String::from_utf8(parsed.response.body.to_vec()).unwrap();
    assert!(
        twiml.contains("<Gather"),
        "the call starts in the menu: {twiml}"
    );
    assert_eq!(v.ivr().active_calls(), 1);
}

#[tokio::test]
async fn forged_missing_and_tampered_requests_are_refused_and_change_nothing() {
    let v = voice(clock());
    let params = [("CallSid", "CAforged"), ("From", "+14155550111")];
    let mut forged = signed(&params);
    forged.headers.insert(
        "x-twilio-signature",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse().unwrap(),
    );
    assert_unauthenticated(v.parse_inbound(forged).await);
    let mut missing = signed(&params);
    missing.headers.remove("x-twilio-signature");
    assert_unauthenticated(v.parse_inbound(missing).await);
    let mut tampered = signed(&params);
    tampered.body = form(&[("CallSid", "CAforged"), ("From", "+14155550999")]).into();
    assert_unauthenticated(v.parse_inbound(tampered).await);
    // Signed for another URL (a replay against another endpoint).
    let mut elsewhere = signed(&params);
    elsewhere.uri = "/webhooks/voice?next=1".parse().unwrap();
    assert_unauthenticated(v.parse_inbound(elsewhere).await);
    assert_eq!(v.ivr().active_calls(), 0);
    // Well signed but malformed: typed refusal.
    assert!(matches!(
        v.parse_inbound(signed(&[("From", "+14155550111")])).await,
        Err(Error::InvalidInput { .. })
    ));
    let mut get = signed(&params);
    get.method = Method::GET;
    assert!(matches!(
        v.parse_inbound(get).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn keys_lead_through_menus_to_a_queue_and_the_call_lands_once() {
    let clock = clock();
    let v = voice(clock.clone());
    let (parsed, twiml) = post(&v, &call("CA1", &[])).await;
    assert!(parsed.messages.is_empty());
    assert!(twiml.contains(r#"<Gather input="dtmf speech" numDigits="1" timeout="6" action="https://shop.example/webhooks/voice" method="POST" actionOnEmptyResult="true" language="en-US""#), "{twiml}");
    assert!(
        twiml.contains("<Say language=\"en-US\">Welcome. Press 1 for orders"),
        "{twiml}"
    );
    assert!(
        twiml.contains(r#"hints="order, delivery, refund, return, 退款, agent, human""#),
        "{twiml}"
    );

    clock.advance(Duration::seconds(4));
    let (parsed, twiml) = post(&v, &call("CA1", &[("Digits", "2")])).await;
    assert!(parsed.messages.is_empty());
    assert!(
        twiml.contains("parcel arrived damaged") && twiml.contains(r#"timeout="8""#),
        "{twiml}"
    );

    clock.advance(Duration::seconds(5));
    let (parsed, twiml) = post(&v, &call("CA1", &[("Digits", "1")])).await;
    assert!(
        twiml.ends_with("<Say language=\"en-US\">Please hold, connecting you to an agent.</Say><Enqueue>refunds</Enqueue></Response>"),
        "{twiml}"
    );
    assert_eq!(parsed.messages.len(), 1);
    let m = &parsed.messages[0];
    assert_eq!(m.from, Identity::new(ChannelKind::Voice, "+8613800138000"));
    assert_eq!(m.provider_message_id.as_deref(), Some("CA1"));
    assert_eq!(m.sent_at, Some(clock.now()));
    let routed = CallRouted::from_content(&m.content).unwrap();
    assert_eq!(routed.queue, "refunds");
    assert_eq!(routed.skills, ["returns", "zh"]);
    assert_eq!(routed.path, ["main", "refunds"]);
    assert_eq!(routed.to.as_deref(), Some("+14155550100"));
    assert_eq!(routed.menu_seconds, 9);
    assert!(matches!(&m.content, Content::Event { name, .. } if name == CALL_EVENT));

    // Through the webhook router and a store that de-duplicates: a retried final request
    // yields one stored message.
    let handler = StoreHandler::new();
    let router = router_for(v.clone(), handler.clone());
    let again = call("CA1", &[("Digits", "1")]);
    let pairs: Vec<(&str, &str)> = again.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..3 {
        let (status, body) = through_router(&router, &signed(&pairs)).await;
        assert_eq!(status, http::StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains("<Enqueue>refunds</Enqueue>"));
    }
    let stored = handler
        .messages_of(&Identity::new(ChannelKind::Voice, "+8613800138000"))
        .await;
    assert_eq!(stored.len(), 1);

    // The call ends: forgotten.
    post(&v, &call("CA1", &[])).await;
    let (parsed, twiml) = post(
        &v,
        &[
            ("CallSid", "CA1".into()),
            ("CallStatus", "completed".into()),
        ],
    )
    .await;
    assert!(parsed.messages.is_empty());
    assert!(twiml.ends_with("<Response></Response>"));
    assert_eq!(v.ivr().active_calls(), 0);
}

#[tokio::test]
async fn speech_keywords_and_spoken_digits_choose_too() {
    let v = voice(clock());
    post(&v, &call("CA2", &[])).await;
    let (_, twiml) = post(
        &v,
        &call("CA2", &[("SpeechResult", "I'd like a refund please")]),
    )
    .await;
    assert!(twiml.contains("parcel arrived damaged"), "{twiml}");
    let (parsed, twiml) = post(&v, &call("CA2", &[("SpeechResult", "it never came")])).await;
    assert!(twiml.contains("<Enqueue>refunds</Enqueue>"), "{twiml}");
    let routed = CallRouted::from_content(&parsed.messages[0].content).unwrap();
    assert_eq!(routed.skills, ["logistics"]);

    post(&v, &call("CA3", &[])).await;
    let (_, twiml) = post(&v, &call("CA3", &[("SpeechResult", "我要退款")])).await;
    assert!(
        twiml.contains("parcel arrived damaged"),
        "Chinese keyword: {twiml}"
    );
    let (parsed, _) = post(&v, &call("CA3", &[("SpeechResult", "Press one.")])).await;
    assert_eq!(
        CallRouted::from_content(&parsed.messages[0].content)
            .unwrap()
            .skills,
        ["returns", "zh"]
    );
}

#[tokio::test]
async fn invalid_input_and_silence_repeat_then_fall_back() {
    let v = voice(clock());
    post(&v, &call("CA4", &[])).await;
    let (_, twiml) = post(&v, &call("CA4", &[("Digits", "7")])).await;
    assert!(
        twiml.contains("Sorry, that is not one of the choices. Welcome."),
        "{twiml}"
    );
    // '*' repeats without using an attempt.
    let (_, twiml) = post(&v, &call("CA4", &[("Digits", "*")])).await;
    assert!(
        twiml.contains("<Say language=\"en-US\">Welcome."),
        "{twiml}"
    );
    let (_, twiml) = post(&v, &call("CA4", &[("Digits", "")])).await;
    assert!(
        twiml.contains("Sorry, I did not hear a choice. Welcome."),
        "{twiml}"
    );
    // Third miss: the fallback route, with its own words.
    let (parsed, twiml) = post(&v, &call("CA4", &[("SpeechResult", "banana")])).await;
    assert!(
        twiml.contains("Let me find someone for you.</Say><Enqueue>general</Enqueue>"),
        "{twiml}"
    );
    assert_eq!(
        CallRouted::from_content(&parsed.messages[0].content)
            .unwrap()
            .queue,
        "general"
    );

    // A sub-menu starts with fresh attempts; '#' goes back; 9 hangs up.
    post(&v, &call("CA5", &[])).await;
    post(&v, &call("CA5", &[("Digits", "8")])).await;
    post(&v, &call("CA5", &[("Digits", "2")])).await;
    post(&v, &call("CA5", &[("Digits", "5")])).await;
    let (_, twiml) = post(&v, &call("CA5", &[("Digits", "#")])).await;
    assert!(twiml.contains("Welcome."), "{twiml}");
    let (parsed, twiml) = post(&v, &call("CA5", &[("Digits", "9")])).await;
    assert!(
        twiml.ends_with("<Say language=\"en-US\">Goodbye.</Say><Hangup/></Response>"),
        "{twiml}"
    );
    assert!(parsed.messages.is_empty(), "a hang-up lands no call");
}

#[tokio::test]
async fn a_retried_request_gets_the_same_answer_without_moving_on() {
    let v = voice(clock());
    post(&v, &call("CA6", &[])).await;
    let (_, first) = post(&v, &call("CA6", &[("Digits", "2")])).await;
    let (_, again) = post(&v, &call("CA6", &[("Digits", "2")])).await;
    assert_eq!(first, again);
    assert!(again.contains("parcel arrived damaged"));
}

#[tokio::test]
async fn anonymous_callers_get_a_per_call_identity() {
    let v = voice(clock());
    post(
        &v,
        &[("CallSid", "CA7".into()), ("From", "anonymous".into())],
    )
    .await;
    let (parsed, _) = post(
        &v,
        &[
            ("CallSid", "CA7".into()),
            ("From", "anonymous".into()),
            ("Digits", "0".into()),
        ],
    )
    .await;
    assert_eq!(
        parsed.messages[0].from,
        Identity::new(ChannelKind::Voice, "anonymous:CA7")
    );
}

#[test]
fn the_ivr_runs_on_the_clock_without_a_provider() {
    let clock = clock();
    let ivr = Ivr::new(tree(), clock.clone()).unwrap();
    let IvrStep::Prompt {
        menu, timeout_secs, ..
    } = ivr.respond("c1", None, IvrInput::Timeout)
    else {
        panic!("a prompt first")
    };
    assert_eq!((menu.as_str(), timeout_secs), ("main", 6));
    ivr.respond("c2", None, IvrInput::Timeout);
    clock.advance(Duration::seconds(5));
    assert!(ivr.tick().is_empty(), "not yet due");
    ivr.respond("c2", None, IvrInput::Digits("2".into()));
    clock.advance(Duration::seconds(1));
    let due = ivr.tick();
    assert_eq!(
        due.len(),
        1,
        "only c1 timed out; c2 answered into a menu with 8 s"
    );
    assert_eq!(due[0].0, "c1");
    assert!(
        matches!(&due[0].1, IvrStep::Prompt { text, .. } if text.starts_with("Sorry, I did not hear"))
    );
    clock.advance(Duration::seconds(6));
    let due = ivr.tick();
    assert_eq!(due.len(), 1);
    clock.advance(Duration::seconds(6));
    let due = ivr.tick();
    assert!(
        due.iter().any(|(id, step)| id == "c1"
            && matches!(step, IvrStep::Route { queue, .. } if queue == "general")),
        "third silence falls back: {due:?}"
    );
    assert_eq!(ivr.active_calls(), 1, "c1 left the menus");
    // Calls silent for 30 minutes are forgotten.
    clock.advance(Duration::minutes(31));
    ivr.tick();
    assert_eq!(ivr.active_calls(), 0);
}

#[test]
fn trees_are_built_in_code_or_loaded_from_a_file_and_checked() {
    let built = IvrTree::builder("main")
        .with_menu(
            "main",
            IvrMenu::new("Press 1 for orders.").with_option(
                IvrOption::digit('1', IvrAction::route("orders", ["logistics"]))
                    .with_keywords(["order"]),
            ),
        )
        .with_language("en-US")
        .build()
        .unwrap();
    assert_eq!(
        built.menus["main"].options[0].action,
        IvrAction::route("orders", ["logistics"])
    );

    let path = std::env::temp_dir().join(format!("ivr-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, TREE).unwrap();
    assert_eq!(IvrTree::from_file(&path).unwrap(), tree());
    std::fs::remove_file(&path).unwrap();
    assert!(IvrTree::from_file("/nonexistent/ivr.toml").is_err());

    let broken = [
        (
            "start = \"nowhere\"\n[menus.main]\nprompt = \"hi\"",
            "start menu",
        ),
        (
            "start = \"main\"\n[menus.main]\nprompt = \"hi\"\noptions = [{ digit = \"1\", action = { type = \"menu\", menu = \"gone\" } }]",
            "unknown menu",
        ),
        (
            "start = \"main\"\n[menus.main]\nprompt = \"hi\"\noptions = [{ digit = \"1\", action = { type = \"repeat\" } }, { digit = \"1\", action = { type = \"repeat\" } }]",
            "twice",
        ),
        (
            "start = \"main\"\n[menus.main]\nprompt = \"hi\"\noptions = [{ digit = \"x\", action = { type = \"repeat\" } }]",
            "not 0-9",
        ),
        (
            "start = \"main\"\n[menus.main]\nprompt = \" \"",
            "blank prompt",
        ),
        (
            "start = \"main\"\nfallback = { type = \"repeat\" }\n[menus.main]\nprompt = \"hi\"",
            "never leave",
        ),
        (
            "start = \"main\"\n[menus.main]\nprompt = \"hi\"\noptions = [{ action = { type = \"route\", queue = \"q\" } }]",
            "neither key",
        ),
        (
            "start = \"main\"\n[menus.main]\nprompt = \"hi\"\ncolour = \"red\"",
            "unknown field",
        ),
    ];
    for (text, why) in broken {
        match IvrTree::from_toml(text) {
            Err(Error::InvalidInput { reason }) => assert!(reason.contains(why), "{why}: {reason}"),
            other => panic!("{why}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn capabilities_say_nothing_is_said_into_a_call_only_steered() {
    let v = voice(clock());
    assert_eq!(v.info().kind, ChannelKind::Voice);
    assert_eq!(
        v.info()
            .capabilities
            .content
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [cs_core::ContentKind::Event],
        "call-control events only"
    );
    let message = cs_core::Message {
        id: cs_core::MessageId::new(),
        tenant: cs_core::TenantId::new("test").unwrap(),
        conversation: cs_core::ConversationId::new(),
        customer: cs_core::CustomerId::new(),
        channel: ChannelId::new("voice").unwrap(),
        channel_kind: ChannelKind::Voice,
        direction: cs_core::Direction::Outbound,
        author: cs_core::Author::Bot,
        content: Content::text("hello"),
        provider_message_id: None,
        status: cs_core::DeliveryStatus::Pending,
        created_at: clock().now(),
    };
    let out = cs_channels::OutboundMessage {
        message,
        to: Identity::new(ChannelKind::Voice, "+14155550100"),
    };
    assert!(matches!(v.send(&out).await, Err(Error::Unsupported { .. })));
    // Connecting a call needs the account SID, which this channel was not given.
    let mut connect = out.clone();
    connect.message.content = Content::Event {
        name: cs_channels::voice::CONNECT_EVENT.into(),
        data: serde_json::json!({"call_sid": "CA1", "target": "client:alice"}),
    };
    assert!(matches!(
        v.send(&connect).await,
        Err(Error::Unsupported { .. })
    ));
    let debug = format!("{v:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(
        Voice::builder(ChannelId::new("voice").unwrap())
            .with_tree(tree())
            .with_auth_token(TOKEN)
            .build()
            .is_err()
    );
    assert!(
        Voice::builder(ChannelId::new("voice").unwrap())
            .with_tree(tree())
            .with_webhook_url(URL)
            .build()
            .is_err()
    );
    assert!(
        Voice::builder(ChannelId::new("voice").unwrap())
            .with_auth_token(TOKEN)
            .with_webhook_url(URL)
            .build()
            .is_err()
    );
}
