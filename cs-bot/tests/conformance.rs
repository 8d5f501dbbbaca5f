//! Our bots against the public `Bot` conformance suite (`cs_bot::conformance`): one fixture
//! type, one line to run every check that applies to each bot.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use cs_bot::conformance::{self, BotFixture, Features, OrderProbe};
use cs_bot::{Bot, DemoShop, FaqBot, IntentBot};
use cs_core::ManualClock;

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");

/// One of our bots under the suite: it speaks Chinese and English and hands over on request;
/// `orders` when it looks orders up; an in-scope question per language.
#[derive(Debug)]
struct Fixture {
    name: &'static str,
    bot: Arc<dyn Bot>,
    orders: Option<OrderProbe>,
    questions: [&'static str; 2],
}

impl BotFixture for Fixture {
    fn name(&self) -> &str {
        self.name
    }
    fn bot(&self) -> Arc<dyn Bot> {
        self.bot.clone()
    }
    fn features(&self) -> Features {
        Features {
            languages: vec!["zh".into(), "en".into()],
            handoff: true,
            orders: self.orders.clone(),
        }
    }
    fn question(&self, language: &str) -> String {
        let [zh, en] = self.questions;
        if language == "zh" { zh } else { en }.to_owned()
    }
}

/// The demo shop's orders as the suite probes them: placed with one phone, and what any of them
/// would give away.
fn demo_shop_probe() -> OrderProbe {
    OrderProbe {
        owner_phone: "13800138000".into(),
        order_id: "20261111001".into(),
        secrets: [
            "20261111002",
            "20261111003",
            "earbuds",
            "无线耳机",
            "Running shoes",
            "T-shirt",
            "SF Express",
            "顺丰",
            "Shanghai",
            "299.00",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// Questions from the FAQ both bots answer themselves.
const RETURNS: [&str; 2] = ["怎么退货？", "How do I return an item?"];

#[tokio::test]
async fn intent_bot_conforms() {
    let now = Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap();
    let shop = Arc::new(DemoShop::sample(now));
    let bot = IntentBot::builder()
        .with_faq_text(FAQ)
        .unwrap()
        .with_orders(shop.clone())
        .with_tickets(shop)
        .with_clock(Arc::new(ManualClock::new(now)))
        .build()
        .unwrap();
    conformance::run(&Fixture {
        name: "IntentBot",
        bot: Arc::new(bot),
        orders: Some(demo_shop_probe()),
        questions: RETURNS,
    })
    .await;
}

#[tokio::test]
async fn faq_bot_conforms() {
    conformance::run(&Fixture {
        name: "FaqBot",
        bot: Arc::new(FaqBot::from_text(FAQ).unwrap()),
        orders: None,
        questions: RETURNS,
    })
    .await;
}

/// The LLM bot over the demo shop's orders, against a stand-in model at the network boundary
/// (wiremock speaking the OpenAI chat API). The model is as eager as a model can be: any number
/// in the customer's message is looked up (an 11-digit number starting with 1 as a phone, any
/// other as an order), any mention of orders, parcels or returns lists "my" orders, and a tool's
/// answer is repeated word for word. Whatever such a model does, the tools must show a customer
/// only their own orders.
#[cfg(feature = "llm")]
mod llm {
    use std::sync::Arc;

    use chrono::Utc;
    use cs_bot::conformance;
    use cs_bot::{DemoShop, LlmBot};
    use serde_json::{Value, json};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    struct EagerModel;

    fn chinese(text: &str) -> bool {
        text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    /// The tool call an eager model makes for `text`, if any.
    fn lookup(text: &str) -> Option<Value> {
        let number = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() >= 8);
        if let Some(n) = number {
            return Some(if n.len() == 11 && n.starts_with('1') {
                json!({ "phone": n })
            } else {
                json!({ "order_id": n })
            });
        }
        let lower = text.to_lowercase();
        [
            "order", "parcel", "track", "return", "refund", "订单", "物流", "快递", "退货",
        ]
        .iter()
        .any(|w| lower.contains(w))
        .then(|| json!({}))
    }

    impl Respond for EagerModel {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            let said = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default()
                .to_owned();
            let last = messages.last().cloned().unwrap_or_default();
            let message = if last["role"] == "tool" {
                let found = last["content"].as_str().unwrap_or_default();
                let lead = if chinese(&said) {
                    "查询结果："
                } else {
                    "Here is what I found: "
                };
                json!({ "role": "assistant", "content": format!("{lead}{found}") })
            } else if let Some(args) = lookup(&said) {
                json!({ "role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": { "name": "lookup_orders", "arguments": args.to_string() }
                }]})
            } else if chinese(&said) {
                json!({ "role": "assistant", "content": "您好，我们每天九点到二十一点在线，有什么可以帮您？" })
            } else {
                json!({ "role": "assistant", "content": "Hello, we are here from nine to nine every day. How can I help?" })
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }]
            }))
        }
    }

    #[tokio::test]
    async fn llm_bot_conforms() {
        let model = MockServer::start().await;
        Mock::given(wiremock::matchers::method("POST"))
            .respond_with(EagerModel)
            .mount(&model)
            .await;
        let bot = LlmBot::builder(format!("{}/v1", model.uri()), "shop-7b")
            .with_orders(Arc::new(DemoShop::sample(Utc::now())))
            .build()
            .unwrap();
        conformance::run(&super::Fixture {
            name: "LlmBot",
            bot: Arc::new(bot),
            orders: Some(super::demo_shop_probe()),
            questions: ["你们几点上班？", "What are your opening hours?"],
        })
        .await;
        drop(model);
    }
}
