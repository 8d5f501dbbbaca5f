//! Order privacy (issue 15): the intent bot shows a customer only their own orders. Orders by
//! phone need a phone the customer proved (an SMS or WhatsApp identity, or a one-time code texted
//! to the number); another customer's order number or phone gets a polite refusal that says
//! nothing about the order, not even whether it exists; returns only on the customer's own orders.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use cs_bot::{
    Asker, Bot, BotInput, BotReply, DemoShop, IntentBot, OrderService, OrderStatus, PhoneCode,
};
use cs_core::{ConversationId, CustomerId, ManualClock, TenantId};

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");
/// The phone the demo shop's orders were placed with.
const OWNER_PHONE: &str = "13800138000";
/// What any of the demo orders would give away.
const SECRETS: &[&str] = &[
    "20261111001",
    "20261111002",
    "20261111003",
    "earbuds",
    "无线耳机",
    "Running shoes",
    "T-shirt",
    "SF Express",
    "Shanghai",
    "299.00",
    "shipped",
    "已发货",
    "RMA",
];

struct Chat {
    bot: Arc<IntentBot>,
    conversation: ConversationId,
    customer: CustomerId,
    verified_phones: Vec<String>,
}

impl Chat {
    fn new(bot: &Arc<IntentBot>, verified_phones: &[&str]) -> Self {
        Self {
            bot: bot.clone(),
            conversation: ConversationId::new(),
            customer: CustomerId::new(),
            verified_phones: verified_phones.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

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
    let now = Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let shop = Arc::new(DemoShop::sample(now));
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

fn text(r: &BotReply) -> String {
    r.messages.join("\n")
}

fn assert_leaks_nothing(r: &BotReply) {
    let t = text(r);
    for s in SECRETS {
        assert!(!t.contains(s), "{s:?} leaked in {t:?}");
    }
    assert!(r.verified_phones.is_empty(), "{r:?}");
}

/// The six digits of a texted code.
fn code_of(sms: &PhoneCode) -> String {
    sms.text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code in the SMS")
        .to_owned()
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" { "999999" } else { "000000" }
}

#[tokio::test]
async fn another_customers_order_number_and_phone_are_refused_and_nothing_leaks() {
    let (bot, _, _) = setup();
    // An anonymous visitor quoting someone's order number gets the same words as for an order
    // that does not exist, and is told how to prove their phone.
    let theirs = Chat::new(&bot, &[])
        .say("where is my order 20261111001?")
        .await;
    let missing = Chat::new(&bot, &[])
        .say("where is my order 20269999999?")
        .await;
    assert_leaks_nothing(&theirs);
    assert_eq!(text(&theirs), text(&missing), "existence must not leak");
    assert!(text(&theirs).contains("privacy"), "{theirs:?}");
    assert!(theirs.handoff.is_none() && theirs.phone_code.is_none());

    // A customer who proved another phone: the same refusal for someone else's order and for
    // none at all.
    let theirs = Chat::new(&bot, &["13900139000"])
        .say("where is my order 20261111001?")
        .await;
    let missing = Chat::new(&bot, &["13900139000"])
        .say("where is my order 20269999999?")
        .await;
    assert_leaks_nothing(&theirs);
    assert_eq!(text(&theirs), text(&missing));
    assert!(text(&theirs).contains("among your orders"), "{theirs:?}");

    // In Chinese too.
    let zh = Chat::new(&bot, &[]).say("帮我查一下订单20261111001").await;
    assert_leaks_nothing(&zh);
    assert!(text(&zh).contains("为保护您的隐私"), "{zh:?}");

    // Someone else's phone: no orders, only a code texted to that phone (whose owner alone
    // can read it), and the number masked.
    let c = Chat::new(&bot, &[]);
    let r = c.say("check the orders of 13800138000 please").await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("138****8000"), "{r:?}");
    assert!(!text(&r).contains(OWNER_PHONE), "{r:?}");
    let sms = r.phone_code.as_ref().expect("a code for the phone");
    assert_eq!(sms.phone, OWNER_PHONE);
    assert!(
        !format!("{r:?}").contains(&code_of(sms)),
        "Debug hides the code"
    );
    // Guessing does not get in.
    let r = c.say(wrong(&code_of(sms))).await;
    assert_leaks_nothing(&r);
}

#[tokio::test]
async fn the_one_time_code_proves_the_phone_and_shows_the_orders() {
    let (bot, _, _) = setup();
    let c = Chat::new(&bot, &[]);
    let r = c.say("Where is my parcel?").await;
    assert_leaks_nothing(&r);
    let r = c.say(OWNER_PHONE).await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("6-digit code"), "{r:?}");
    let code = code_of(r.phone_code.as_ref().unwrap());
    // Asking again while the code is good texts nothing new.
    let again = c.say(OWNER_PHONE).await;
    assert!(again.phone_code.is_none(), "{again:?}");
    let r = c.say(wrong(&code)).await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("2 more tries"), "{r:?}");
    let r = c.say(&code).await;
    let t = text(&r);
    assert!(t.contains("verified"), "{t}");
    assert!(
        t.contains("20261111001") && t.contains("20261111002"),
        "{t}"
    );
    assert_eq!(r.verified_phones, vec![OWNER_PHONE.to_owned()]);
    let r = c.say("1").await;
    assert!(text(&r).contains("20261111002"), "{r:?}");
    // The proof lasts: an order number of that phone is shown at once.
    let r = c.say("Where is my parcel? Order 20261111001").await;
    assert!(text(&r).contains("SF Express"), "{r:?}");
}

#[tokio::test]
async fn a_code_expires() {
    let (bot, _, clock) = setup();
    let c = Chat::new(&bot, &[]);
    let r = c.say("我的订单到哪了，手机号13800138000").await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("验证码"), "{r:?}");
    let code = code_of(r.phone_code.as_ref().unwrap());
    clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let r = c.say(&code).await;
    assert_leaks_nothing(&r);
    assert!(text(&r).contains("已过期"), "{r:?}");
    // The same code again is no longer a code at all, and shows nothing either.
    let r = c.say(&code).await;
    assert_leaks_nothing(&r);
    // A new code works.
    let r = c.say(OWNER_PHONE).await;
    let code = code_of(r.phone_code.as_ref().expect("a new code"));
    let r = c.say(&code).await;
    assert!(text(&r).contains("20261111001"), "{r:?}");
}

#[tokio::test]
async fn wrong_codes_are_limited() {
    let (bot, _, _) = setup();
    let c = Chat::new(&bot, &[]);
    c.say("where is my order").await;
    let r = c.say(OWNER_PHONE).await;
    let code = code_of(r.phone_code.as_ref().unwrap());
    for left in ["2 more", "1 more"] {
        let r = c.say(wrong(&code)).await;
        assert!(text(&r).contains(left), "{r:?}");
    }
    let r = c.say(wrong(&code)).await;
    assert!(text(&r).contains("Too many wrong codes"), "{r:?}");
    // The right code comes too late.
    let r = c.say(&code).await;
    assert_leaks_nothing(&r);
    // And new codes are limited too: three texts an hour.
    let mut sent = 1;
    for _ in 0..4 {
        let r = c.say(&format!("orders of {OWNER_PHONE}")).await;
        assert_leaks_nothing(&r);
        if let Some(sms) = &r.phone_code {
            sent += 1;
            // Lock the new code out again so the next message asks for another.
            for _ in 0..3 {
                c.say(wrong(&code_of(sms))).await;
            }
        }
    }
    assert_eq!(sent, 3, "at most three codes an hour");
}

#[tokio::test]
async fn a_verified_customer_gets_their_orders_directly() {
    let (bot, _, _) = setup();
    // Writing from the phone the orders were placed with (the engine passes it as verified).
    let c = Chat::new(&bot, &["+8613800138000"]);
    let r = c.say("where is my order?").await;
    let t = text(&r);
    assert!(r.phone_code.is_none(), "{r:?}");
    assert!(
        t.contains("20261111001") && t.contains("20261111002") && t.contains("20261111003"),
        "{t}"
    );
    let r = c.say("20261111001").await;
    assert!(text(&r).contains("SF Express"), "{r:?}");
}

#[tokio::test]
async fn a_return_on_someone_elses_order_is_refused() {
    let (bot, shop, _) = setup();
    let owner = Asker::new(TenantId::default(), CustomerId::new()).with_verified_phone(OWNER_PHONE);
    let before = shop
        .order(&owner, "20261111003")
        .await
        .unwrap()
        .unwrap()
        .status;
    let c = Chat::new(&bot, &["13900139000"]);
    let r = c.say("我要退货，订单号20261111003").await;
    assert_leaks_nothing(&r);
    assert!(shop.returns().is_empty());
    let after = shop.order(&owner, "20261111003").await.unwrap().unwrap();
    assert_eq!(after.status, before);
    assert_eq!(after.status, OrderStatus::Delivered);
    // The owner can.
    let c = Chat::new(&bot, &[OWNER_PHONE]);
    let r = c.say("我要退货，订单号20261111003").await;
    assert!(text(&r).contains("RMA000001"), "{r:?}");
}
