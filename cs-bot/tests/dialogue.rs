//! Scripted conversations with the intent bot over the bilingual FAQ and the demo shop.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use cs_bot::{Bot, BotInput, BotReply, DemoShop, HandoffReason, IntentBot};
use cs_core::{ConversationId, CustomerId, ManualClock, Priority, TenantId};

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");

struct Chat {
    bot: Arc<IntentBot>,
    conversation: ConversationId,
    customer: CustomerId,
    verified_phones: Vec<String>,
}

impl Chat {
    async fn say(&self, text: &str) -> BotReply {
        self.bot
            .reply(&BotInput {
                tenant: TenantId::default(),
                conversation: self.conversation,
                customer: self.customer,
                text: text.into(),
                history: vec![],
                verified_phones: self.verified_phones.clone(),
            })
            .await
            .unwrap()
    }
}

fn setup() -> (Arc<IntentBot>, Arc<DemoShop>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap(),
    ));
    let shop = Arc::new(DemoShop::sample(
        Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap(),
    ));
    let bot = IntentBot::builder()
        .with_faq_text(FAQ)
        .unwrap()
        .with_orders(shop.clone())
        .with_tickets(shop.clone())
        .with_clock(clock.clone())
        .build()
        .unwrap();
    (Arc::new(bot), shop, clock)
}

/// The demo shop's customer, writing from the phone the orders were placed with (proved: e.g.
/// over SMS or WhatsApp).
fn chat(bot: &Arc<IntentBot>) -> Chat {
    Chat {
        bot: bot.clone(),
        conversation: ConversationId::new(),
        customer: CustomerId::new(),
        verified_phones: vec!["+8613800138000".into()],
    }
}

fn text(r: &BotReply) -> String {
    r.messages.join("\n")
}

#[tokio::test]
async fn logistics_with_slot_validation_in_english() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("Where is my parcel?").await;
    assert_eq!(r.intent.as_ref().unwrap().name, "logistics", "{r:?}");
    assert!(text(&r).contains("order number"), "{r:?}");
    let r = c.say("it's 12345").await;
    assert!(
        text(&r).contains("6 to 24"),
        "invalid number re-asked: {r:?}"
    );
    assert!(r.handoff.is_none());
    let r = c.say("20261111001").await;
    let t = text(&r);
    assert!(
        t.contains("SF Express") && t.contains("Out for delivery"),
        "{t}"
    );
    assert!(r.sentiment.is_some());
}

#[tokio::test]
async fn an_invalid_number_is_not_taken_for_a_new_question() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    c.say("我的快递到哪了？").await;
    let r = c.say("订单号是12345").await;
    assert!(text(&r).contains("6-24位"), "{r:?}");
    assert_eq!(r.intent.unwrap().name, "logistics");
    // A second failed attempt in a row hands over, with the attempts in the summary.
    let r = c.say("查物流").await;
    let h = r.handoff.expect("handed over");
    assert_eq!(h.reason, HandoffReason::RepeatedFailure);
    assert!(h.summary.contains("12345"), "{}", h.summary);
}

#[tokio::test]
async fn return_in_chinese_with_the_order_number_in_the_first_message() {
    let (bot, shop, _) = setup();
    let c = chat(&bot);
    let r = c.say("我要退货，订单号20261111003").await;
    assert!(text(&r).contains("RMA000001"), "{r:?}");
    assert!(text(&r).contains("售后申请"), "answered in Chinese: {r:?}");
    assert_eq!(shop.returns().len(), 1);
    // A second return of the same order is refused by the shop and explained.
    let r = c.say("我要退货，订单号20261111003").await;
    assert!(text(&r).contains("无法在线申请"), "{r:?}");
}

#[tokio::test]
async fn phone_number_lists_orders_to_pick_from() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("what is the status of my order").await;
    assert!(text(&r).contains("order number"), "{r:?}");
    let r = c.say("my phone is 13800138000").await;
    let t = text(&r);
    assert!(t.contains("20261111002") && t.contains("1. "), "{t}");
    let r = c.say("1").await;
    // Newest first: 20261111002 (placed a day ago) is paid and waiting to ship.
    assert!(
        text(&r).contains("20261111002") && text(&r).contains("paid"),
        "{r:?}"
    );
}

#[tokio::test]
async fn vague_message_gets_a_clarifying_question_then_an_answer() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("this thing doesn't work").await;
    let t = text(&r);
    assert!(t.contains("Which of these") && t.contains("1. "), "{t}");
    assert!(r.handoff.is_none());
    let r = c.say("1").await;
    assert!(r.handoff.is_none(), "{r:?}");
    assert!(r.intent.is_some(), "{r:?}");
}

#[tokio::test]
async fn still_unclear_after_clarifying_hands_over() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("有问题").await;
    assert!(text(&r).contains("回复序号"), "{r:?}");
    let r = c.say("嗯嗯嗯").await;
    let h = r.handoff.expect("handed over");
    assert_eq!(h.reason, HandoffReason::NoAnswer);
    assert!(h.summary.contains("有问题"), "{}", h.summary);
}

#[tokio::test]
async fn explicit_request_hands_over_with_intent_slots_and_summary() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("我的快递到哪了").await;
    assert_eq!(r.intent.unwrap().name, "logistics");
    c.say("20261111001").await;
    let r = c.say("转人工").await;
    assert!(text(&r).contains("无需重复"));
    let h = r.handoff.expect("handoff");
    assert_eq!(h.reason, HandoffReason::CustomerRequest);
    assert_eq!(h.intent.as_ref().unwrap().name, "logistics");
    assert_eq!(h.slots["order_id"], "20261111001");
    assert_eq!(h.skills, ["logistics"]);
    assert!(h.note().contains("order_id=20261111001"), "{}", h.note());
    assert!(h.summary.contains("我的快递到哪了"), "{}", h.summary);
}

#[tokio::test]
async fn anger_and_complaints_hand_over_with_priority() {
    let (bot, _, _) = setup();
    let r = chat(&bot).say("This is a SCAM, I am furious!!!").await;
    let h = r.handoff.unwrap();
    assert_eq!(h.reason, HandoffReason::NegativeSentiment);
    assert_eq!(h.priority, Priority::Urgent);
    assert!(h.sentiment.unwrap().score < -0.5);

    let r = chat(&bot)
        .say("I want to file a complaint about the courier")
        .await;
    let h = r.handoff.unwrap();
    assert_eq!(h.reason, HandoffReason::Complaint);
    assert_eq!(h.skills, ["complaints"]);
    assert!(h.priority >= Priority::High);

    let r = chat(&bot).say("你们服务太差了，我要投诉！").await;
    let h = r.handoff.unwrap();
    assert_eq!(h.reason, HandoffReason::Complaint);
    assert_eq!(h.priority, Priority::Urgent);
}

#[tokio::test]
async fn repeated_failure_hands_over() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("qwxz vbnm").await;
    assert!(r.handoff.is_none());
    assert!(text(&r).contains("rephrase"), "{r:?}");
    let r = c.say("zxqw mnbv").await;
    assert_eq!(r.handoff.unwrap().reason, HandoffReason::RepeatedFailure);
}

#[tokio::test]
async fn ticket_lookup_and_faq_answers() {
    let (bot, _, _) = setup();
    let c = chat(&bot);
    let r = c.say("any update on my support case?").await;
    assert!(text(&r).contains("ticket number"), "{r:?}");
    let r = c.say("#1024").await;
    assert!(text(&r).contains("pending"), "{r:?}");
    let r = chat(&bot).say("退款多久到账").await;
    assert!(text(&r).contains("1-3个工作日"), "{r:?}");
    let r = chat(&bot)
        .say("how do I get an invoice for my order?")
        .await;
    assert!(text(&r).contains("Request invoice"), "{r:?}");
}

#[tokio::test]
async fn dialogue_state_expires() {
    let (bot, _, clock) = setup();
    let c = chat(&bot);
    let r = c.say("track my package").await;
    assert!(text(&r).contains("order number"));
    clock.advance(Duration::minutes(31));
    // The pending question is forgotten: a bare number is no longer an answer to it.
    let r = c.say("20261111001").await;
    assert!(!text(&r).contains("SF Express"), "{r:?}");
}
