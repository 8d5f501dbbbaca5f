//! Order privacy through the engine (issue 15): the bot sees the phones a customer proved, a
//! one-time code goes out through the SMS channel to a stand-in Twilio at the network boundary,
//! and the number it proves becomes a verified identity of the customer.
#![cfg(feature = "sms")]

use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use cs_bot::{DemoShop, IntentBot, Order, OrderStatus};
use cs_channels::InboundMessage;
use cs_channels::client::RetryPolicy;
use cs_channels::sms::Sms;
use cs_channels::{
    Capabilities, Channel, ChannelInfo, OutboundMessage, Parsed, RawInbound, SendReceipt,
};
use cs_core::store::{CustomerStore, MemoryStore};
use cs_core::{
    ChannelId, ChannelKind, Content, DeliveryStatus, Identity, LinkOrigin, ManualClock, TenantId,
};
use omnidesk::Engine;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FAQ: &str = include_str!("../cs-bot/data/ecommerce_faq.txt");
const SID: &str = "AC00000000000000000000000000000001";

/// A web chat that records what it is asked to send.
#[derive(Debug)]
struct Web {
    info: ChannelInfo,
    sent: Mutex<Vec<(String, String)>>,
}

impl Web {
    /// What went to this visitor, joined.
    fn said_to(&self, visitor: &str) -> String {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(to, _)| to == visitor)
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[async_trait::async_trait]
impl Channel for Web {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }
    async fn parse_inbound(&self, _request: RawInbound) -> cs_channels::Result<Parsed> {
        Err(cs_channels::Error::Rejected {
            reason: "not used".into(),
        })
    }
    async fn send(&self, message: &OutboundMessage) -> cs_channels::Result<SendReceipt> {
        self.sent.lock().unwrap().push((
            message.to.external_id.clone(),
            message.message.content.plain_text(),
        ));
        Ok(SendReceipt {
            provider_message_id: None,
            status: DeliveryStatus::Delivered,
        })
    }
}

fn inbound(channel: &str, kind: ChannelKind, from: &str, n: usize, text: &str) -> InboundMessage {
    InboundMessage {
        channel: ChannelId::new(channel).unwrap(),
        from: Identity::new(kind, from),
        provider_message_id: Some(format!("{from}-{n}")),
        content: Content::text(text),
        display_name: None,
        language: None,
        sent_at: None,
    }
}

/// The SMS texts the stand-in Twilio received, as (To, Body).
async fn texts(twilio: &MockServer) -> Vec<(String, String)> {
    twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let form: Vec<(String, String)> = form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let get = |k: &str| {
                form.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("To"), get("Body"))
        })
        .collect()
}

fn six_digits(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
}

#[tokio::test]
async fn orders_only_for_proved_phones_with_the_code_texted_through_the_sms_channel() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"sid": "SM1", "status": "queued"})),
        )
        .mount(&twilio)
        .await;
    let sms = Sms::builder(ChannelId::new("sms").unwrap())
        .with_account_sid(SID)
        .with_auth_token("token")
        .with_from("+14155550100")
        .with_webhook_url("https://desk.example/webhooks/sms")
        .with_base_url(twilio.uri())
        .with_retry(RetryPolicy::none())
        .build()
        .unwrap();
    let web = Arc::new(Web {
        info: ChannelInfo {
            id: ChannelId::new("web").unwrap(),
            kind: ChannelKind::WebChat,
            capabilities: Capabilities::text_only(),
        },
        sent: Mutex::new(Vec::new()),
    });
    let now = Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    // The demo orders (placed with 13800138000) and one of another customer's phone.
    let shop = Arc::new(DemoShop::sample(now).with_order(Order {
        id: "20261111009".into(),
        status: OrderStatus::Paid,
        items: vec!["Rice cooker / 电饭煲".into()],
        total_minor: 39_900,
        currency: "CNY".into(),
        phone: Some("13900139000".into()),
        customer: None,
        placed_at: now - Duration::hours(5),
        carrier: None,
        tracking_number: None,
    }));
    let bot = IntentBot::builder()
        .with_faq_text(FAQ)
        .unwrap()
        .with_orders(shop.clone())
        .with_tickets(shop)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .with_store(store.clone())
        .with_bot(Arc::new(bot))
        .with_clock(clock.clone())
        .with_channel(web.clone())
        .with_channel(Arc::new(sms))
        .build()
        .await
        .unwrap();
    let mut n = 0;
    let mut web_says = |visitor: &str, text: &str| {
        n += 1;
        inbound("web", ChannelKind::WebChat, visitor, n, text)
    };

    // A customer writing over SMS from 13900139000 gets their own order at once, and nothing
    // of 13800138000's.
    engine
        .handle_inbound_and_wait(inbound(
            "sms",
            ChannelKind::Sms,
            "+8613900139000",
            1,
            "where is my order?",
        ))
        .await
        .unwrap();
    let to_sms = texts(&twilio).await;
    assert_eq!(to_sms.len(), 1, "{to_sms:?}");
    assert_eq!(to_sms[0].0, "+8613900139000");
    assert!(to_sms[0].1.contains("20261111009"), "{to_sms:?}");
    assert!(!to_sms[0].1.contains("20261111001"), "{to_sms:?}");

    // An anonymous web visitor quoting 13800138000's order number learns nothing.
    let w = engine
        .handle_inbound_and_wait(web_says("visitor-a", "where is my order 20261111001?"))
        .await
        .unwrap();
    let a = w.message.customer;
    let said = web.said_to("visitor-a");
    assert!(said.contains("privacy"), "{said}");
    for secret in ["SF Express", "earbuds", "shipped", "20261111002"] {
        assert!(!said.contains(secret), "{secret} leaked: {said}");
    }

    // They send the phone: the code goes by SMS to that number (not into the chat).
    engine
        .handle_inbound_and_wait(web_says("visitor-a", "13800138000"))
        .await
        .unwrap();
    let to_sms = texts(&twilio).await;
    assert_eq!(to_sms.len(), 2, "{to_sms:?}");
    assert_eq!(to_sms[1].0, "+8613800138000");
    let code = six_digits(&to_sms[1].1).expect("a code in the SMS");
    let said = web.said_to("visitor-a");
    assert!(
        said.contains("138****8000") && !said.contains(&code),
        "{said}"
    );

    // Back in the chat, the code proves the phone: the orders show, and the number becomes a
    // verified identity of this customer.
    engine
        .handle_inbound_and_wait(web_says("visitor-a", &code))
        .await
        .unwrap();
    let said = web.said_to("visitor-a");
    assert!(
        said.contains("20261111001") && said.contains("20261111002"),
        "{said}"
    );
    let links = store.identity_links(&TenantId::default(), a).await.unwrap();
    let proved = links
        .iter()
        .find(|l| l.identity == Identity::new(ChannelKind::Sms, "+8613800138000"))
        .expect("the proved phone is linked");
    assert_eq!(proved.origin, LinkOrigin::OneTimeCode);
    assert!(proved.verified);
    // The code is in no conversation's history.
    let view = engine.customer_view(a).await.unwrap();
    assert!(
        view.history
            .iter()
            .filter(|m| m.author != cs_core::Author::Customer)
            .all(|m| !m.content.plain_text().contains(&code))
    );

    // Another visitor gets a code that expires before they answer.
    engine
        .handle_inbound_and_wait(web_says(
            "visitor-b",
            "where is my order? my phone is 13800138000",
        ))
        .await
        .unwrap();
    let to_sms = texts(&twilio).await;
    assert_eq!(to_sms.len(), 3, "{to_sms:?}");
    let late = six_digits(&to_sms[2].1).unwrap();
    clock.advance(Duration::minutes(6));
    engine
        .handle_inbound_and_wait(web_says("visitor-b", &late))
        .await
        .unwrap();
    let said = web.said_to("visitor-b");
    assert!(said.contains("expired"), "{said}");
    assert!(!said.contains("20261111001"), "{said}");
}
