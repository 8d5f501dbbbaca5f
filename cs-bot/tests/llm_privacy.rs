//! Order privacy for the LLM bot's tools (issue 15): whatever the model asks, the tools answer
//! only with the asking customer's own orders. A stand-in model calls the tool the customer's
//! message names (`!tool {json}`) and then repeats the tool's answer word for word, so every
//! reply shows all the model could have learnt.
#![cfg(feature = "llm")]

use std::sync::Arc;

use chrono::Utc;
use cs_bot::{Asker, Bot, BotInput, BotReply, DemoShop, LlmBot, OrderService, OrderStatus};
use cs_core::{ConversationId, CustomerId, TenantId};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRETS: &[&str] = &[
    "20261111002",
    "earbuds",
    "SF Express",
    "SF1234567890",
    "Shanghai",
    "299.00",
    "13800138000",
];

/// A model that calls the tool the customer names, then repeats what the tool said.
struct ScriptedModel;

impl Respond for ScriptedModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert!(body["tools"].is_array(), "the tools are offered");
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        let content = last["content"].as_str().unwrap_or_default().to_owned();
        let message = if last["role"] == "tool" {
            json!({"role": "assistant", "content": format!("TOOL: {content}")})
        } else if let Some(call) = content.strip_prefix('!') {
            let (name, args) = call.split_once(' ').unwrap_or((call, "{}"));
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": name, "arguments": args}
            }]})
        } else {
            json!({"role": "assistant", "content": "Hello!"})
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]
        }))
    }
}

struct Chat {
    bot: Arc<LlmBot>,
    customer: CustomerId,
    verified_phones: Vec<String>,
}

impl Chat {
    async fn say(&self, text: &str) -> BotReply {
        self.bot
            .reply(&BotInput {
                tenant: TenantId::default(),
                conversation: ConversationId::new(),
                customer: self.customer,
                text: text.into(),
                history: vec![],
                verified_phones: self.verified_phones.clone(),
            })
            .await
            .unwrap()
    }
}

async fn setup() -> (MockServer, Arc<LlmBot>, Arc<DemoShop>) {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ScriptedModel)
        .mount(&server)
        .await;
    let shop = Arc::new(DemoShop::sample(Utc::now()));
    let bot = LlmBot::builder(format!("{}/v1", server.uri()), "shop-7b")
        .with_orders(shop.clone())
        .build()
        .unwrap();
    (server, Arc::new(bot), shop)
}

fn chat(bot: &Arc<LlmBot>, phones: &[&str]) -> Chat {
    Chat {
        bot: bot.clone(),
        customer: CustomerId::new(),
        verified_phones: phones.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn text(r: &BotReply) -> String {
    r.messages.join("\n")
}

fn assert_leaks_nothing(r: &BotReply) {
    let t = text(r);
    for s in SECRETS {
        assert!(!t.contains(s), "{s:?} leaked: {t}");
    }
}

#[tokio::test]
async fn the_tools_refuse_another_customers_order_and_phone_without_leaking() {
    let (_server, bot, shop) = setup().await;
    let stranger = chat(&bot, &[]);
    let theirs = stranger
        .say(r#"!lookup_orders {"order_id":"20261111001"}"#)
        .await;
    let missing = stranger
        .say(r#"!lookup_orders {"order_id":"20269999999"}"#)
        .await;
    assert_leaks_nothing(&theirs);
    assert!(text(&theirs).contains("not_found"), "{theirs:?}");
    assert_eq!(text(&theirs), text(&missing), "existence must not leak");

    let r = stranger
        .say(r#"!lookup_orders {"phone":"13800138000"}"#)
        .await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("phone_not_verified"), "{r:?}");

    // A customer who proved another phone cannot start a return on this one's order.
    let other = chat(&bot, &["13900139000"]);
    let r = other
        .say(r#"!start_return {"order_id":"20261111003","kind":"return"}"#)
        .await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("not_found"), "{r:?}");
    assert!(shop.returns().is_empty());
    let owner =
        Asker::new(TenantId::default(), CustomerId::new()).with_verified_phone("13800138000");
    let order = shop.order(&owner, "20261111003").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Delivered);
}

#[tokio::test]
async fn a_code_sent_by_tool_proves_the_phone_and_opens_the_orders() {
    let (_server, bot, _) = setup().await;
    let c = chat(&bot, &[]);
    let r = c.say(r#"!send_phone_code {"phone":"13800138000"}"#).await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("138****8000"), "{r:?}");
    let sms = r.phone_code.clone().expect("a code to text");
    assert_eq!(sms.phone, "13800138000");
    let code: String = sms
        .text
        .split(|ch: char| !ch.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();
    assert!(!text(&r).contains(&code), "the model never sees the code");
    let wrong = if code == "000000" { "999999" } else { "000000" };
    let r = c
        .say(&format!(r#"!check_phone_code {{"code":"{wrong}"}}"#))
        .await;
    assert!(text(&r).contains("\"attempts_left\":2"), "{r:?}");
    assert!(r.verified_phones.is_empty());
    let r = c
        .say(&format!(r#"!check_phone_code {{"code":"{code}"}}"#))
        .await;
    assert!(text(&r).contains("verified"), "{r:?}");
    assert_eq!(r.verified_phones, vec!["13800138000".to_owned()]);
    let r = c.say("!lookup_orders {}").await;
    assert!(
        text(&r).contains("20261111001") && text(&r).contains("20261111002"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_verified_customer_gets_their_orders_from_the_tools() {
    let (_server, bot, _) = setup().await;
    let c = chat(&bot, &["+8613800138000"]);
    let r = c.say("!lookup_orders {}").await;
    assert!(text(&r).contains("20261111003"), "{r:?}");
    let r = c.say(r#"!lookup_orders {"order_id":"20261111001"}"#).await;
    assert!(text(&r).contains("SF Express"), "{r:?}");
    assert!(r.phone_code.is_none());
}
