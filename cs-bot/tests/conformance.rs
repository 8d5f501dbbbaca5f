//! Our bots against the public `Bot` conformance suite (`cs_bot::conformance`): one fixture each,
//! one line to run every check that applies.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use cs_bot::conformance::{self, BotFixture, Features, OrderProbe};
use cs_bot::{Bot, DemoShop, FaqBot, IntentBot};
use cs_core::ManualClock;

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");

/// The intent bot with the demo shop's orders behind it.
#[derive(Debug)]
struct IntentFixture {
    bot: Arc<IntentBot>,
}

impl IntentFixture {
    fn new() -> Self {
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
        Self { bot: Arc::new(bot) }
    }
}

impl BotFixture for IntentFixture {
    fn name(&self) -> &str {
        "IntentBot"
    }
    fn bot(&self) -> Arc<dyn Bot> {
        self.bot.clone()
    }
    fn features(&self) -> Features {
        Features {
            languages: vec!["zh".into(), "en".into()],
            handoff: true,
            orders: Some(OrderProbe {
                // The demo shop's orders were placed with this phone.
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
            }),
        }
    }
    fn question(&self, language: &str) -> String {
        match language {
            "zh" => "怎么退货？".into(),
            _ => "How do I return an item?".into(),
        }
    }
}

/// The FAQ bot: answers from the knowledge file, no orders.
#[derive(Debug)]
struct FaqFixture {
    bot: Arc<FaqBot>,
}

impl BotFixture for FaqFixture {
    fn name(&self) -> &str {
        "FaqBot"
    }
    fn bot(&self) -> Arc<dyn Bot> {
        self.bot.clone()
    }
    fn features(&self) -> Features {
        Features {
            languages: vec!["zh".into(), "en".into()],
            handoff: true,
            orders: None,
        }
    }
    fn question(&self, language: &str) -> String {
        match language {
            "zh" => "怎么退货？".into(),
            _ => "How do I return an item?".into(),
        }
    }
}

#[tokio::test]
async fn intent_bot_conforms() {
    conformance::run(&IntentFixture::new()).await;
}

#[tokio::test]
async fn faq_bot_conforms() {
    let bot = FaqBot::from_text(FAQ).unwrap();
    conformance::run(&FaqFixture { bot: Arc::new(bot) }).await;
}
