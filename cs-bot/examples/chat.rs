//! The intent bot over the bilingual e-commerce FAQ and the demo shop.
//!
//! ```text
//! cargo run --release -p cs-bot --example chat            # a scripted conversation in zh and en
//! cargo run --release -p cs-bot --example chat -- -i      # type your own messages
//! ```

use std::io::BufRead;
use std::sync::Arc;

use chrono::Utc;
use cs_bot::{Bot, BotInput, DemoShop, IntentBot};
use cs_core::{ConversationId, CustomerId, TenantId};

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cs_bot::Error> {
    let shop = Arc::new(DemoShop::sample(Utc::now()));
    let bot = IntentBot::builder()
        .with_faq_text(FAQ)?
        .with_orders(shop.clone())
        .with_tickets(shop)
        .build()?;
    let customer = CustomerId::new();
    let mut conversation = ConversationId::new();
    let say = async |conversation: ConversationId, text: &str| -> Result<(), cs_bot::Error> {
        println!("customer> {text}");
        let reply = bot
            .reply(&BotInput {
                tenant: TenantId::default(),
                conversation,
                customer,
                text: text.into(),
                history: vec![],
                verified_phones: Vec::new(),
            })
            .await?;
        for m in &reply.messages {
            println!("bot     > {}", m.replace('\n', "\n          "));
        }
        if let (Some(i), Some(s)) = (&reply.intent, &reply.sentiment) {
            println!(
                "          [intent {} {:.2}, sentiment {} {:+.2}]",
                i.name,
                i.confidence,
                s.emotion.as_str(),
                s.score
            );
        }
        if let Some(h) = &reply.handoff {
            println!(
                "          [HANDOFF {:?}, priority {:?}, skills {:?}]\n          [note: {}]",
                h.reason,
                h.priority,
                h.skills,
                h.note()
            );
        }
        Ok(())
    };
    if std::env::args().any(|a| a == "-i") {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if !line.trim().is_empty() {
                say(conversation, line.trim()).await?;
            }
        }
        return Ok(());
    }
    for turn in [
        "你好",
        "我的快递到哪了？",
        "订单号是12345",
        "20261111001",
        "怎么开发票",
        "太慢了，我很失望，转人工",
    ] {
        say(conversation, turn).await?;
    }
    conversation = ConversationId::new();
    println!();
    for turn in [
        "this thing doesn't work",
        "yes",
        "I want to return my order",
        "my phone number is 13800138000",
        "3",
    ] {
        say(conversation, turn).await?;
    }
    Ok(())
}
