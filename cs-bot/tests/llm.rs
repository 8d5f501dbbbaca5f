//! The LLM bot against a local mock of an OpenAI-compatible server.
#![cfg(feature = "llm")]

use std::sync::Arc;
use std::time::Duration;

use cs_bot::{Bot, BotInput, FaqBot, HandoffReason, LlmBot, parse_faq};
use cs_core::{ConversationId, CustomerId, TenantId};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");

fn input(text: &str) -> BotInput {
    BotInput {
        tenant: TenantId::default(),
        conversation: ConversationId::new(),
        customer: CustomerId::new(),
        text: text.into(),
        history: vec![],
        verified_phones: Vec::new(),
    }
}

fn answer(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    }))
}

fn bot(server: &MockServer, timeout: Duration) -> LlmBot {
    LlmBot::builder(format!("{}/v1", server.uri()), "shop-7b")
        .with_api_key("sk-test")
        .with_timeout(timeout)
        .with_faq(parse_faq(FAQ).unwrap())
        .with_fallback(Arc::new(FaqBot::from_text(FAQ).unwrap()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn answers_grounded_on_the_faq_with_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_string_contains("\"model\":\"shop-7b\""))
        // The best FAQ entry is in the system prompt.
        .and(body_string_contains("1-3 business days"))
        .respond_with(answer("Refunds take 1-3 business days for Alipay."))
        .expect(1)
        .mount(&server)
        .await;
    let r = bot(&server, Duration::from_secs(5))
        .reply(&input("how long does a refund take?"))
        .await
        .unwrap();
    assert_eq!(r.messages, ["Refunds take 1-3 business days for Alipay."]);
    assert!(r.handoff.is_none());
}

#[tokio::test]
async fn the_handoff_marker_and_explicit_requests_hand_over() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer("[HANDOFF]"))
        .expect(1)
        .mount(&server)
        .await;
    let b = bot(&server, Duration::from_secs(5));
    let r = b
        .reply(&input("can you negotiate a bulk price?"))
        .await
        .unwrap();
    assert_eq!(r.handoff.unwrap().reason, HandoffReason::NoAnswer);
    // No model call for an explicit request (the mock expects exactly one call).
    let r = b.reply(&input("转人工")).await.unwrap();
    assert_eq!(r.handoff.unwrap().reason, HandoffReason::CustomerRequest);
}

#[tokio::test]
async fn server_errors_and_timeouts_fall_back_to_the_faq_bot() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("invoice"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("coupon"))
        .respond_with(answer("late").set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let b = bot(&server, Duration::from_millis(300));
    let r = b.reply(&input("how do I get an invoice")).await.unwrap();
    assert!(r.messages[0].contains("Request invoice"), "{r:?}");
    let r = b.reply(&input("how do I use a coupon")).await.unwrap();
    assert!(r.messages[0].contains("checkout"), "{r:?}");

    // Without a fallback the error surfaces as temporary.
    let bare = LlmBot::builder(format!("{}/v1", server.uri()), "m")
        .with_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = bare.reply(&input("invoice please")).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
}

#[test]
fn config_hides_the_key_and_rejects_bad_urls() {
    let b = LlmBot::builder("http://127.0.0.1:1/v1", "m").with_api_key("sk-secret");
    assert!(!format!("{b:?}").contains("sk-secret"));
    assert!(LlmBot::builder("ftp://x", "m").build().is_err());
    assert!(LlmBot::builder("http://x/v1", " ").build().is_err());
}
