//! Plug the shop's own order system into the bot: an `OrderService` over the shop's HTTP order API,
//! then the intent bot answers "where is my order?" from it, and only ever with the asking
//! customer's own orders.
//!
//! The shop's API here is a made-up one in the shape most shop back ends have (order number,
//! state, lines, amount in fen, phone, express company and waybill); a local stand-in serves it
//! so the example runs anywhere. Replace the base URL with your back end's.
//!
//! ```sh
//! cargo run --example shop_orders     # the owner and a stranger ask about the same order
//! cargo test --example shop_orders    # the Bot conformance suite over this order service
//! ```
//! Give the bot to the engine with `EngineBuilder::with_bot(Arc::new(bot))`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use cs_bot::{
    Asker, Bot, BotInput, Error, IntentBot, Order, OrderService, OrderStatus, Result, ReturnKind,
    ReturnReceipt, ReturnRequest, TrackingEvent,
};
use cs_core::{ConversationId, CustomerId, TenantId};
use serde::Deserialize;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The shop's order API.
#[derive(Debug, Clone)]
struct ShopApi {
    base: String,
    http: reqwest::Client,
}

/// An order as the shop's API writes it.
#[derive(Debug, Deserialize)]
struct ApiOrder {
    order_no: String,
    state: String,
    lines: Vec<ApiLine>,
    amount_fen: i64,
    phone: Option<String>,
    created_at: DateTime<Utc>,
    express: Option<ApiExpress>,
}

#[derive(Debug, Deserialize)]
struct ApiLine {
    title: String,
}

#[derive(Debug, Deserialize)]
struct ApiExpress {
    company: String,
    waybill: String,
}

#[derive(Debug, Deserialize)]
struct ApiTrace {
    time: DateTime<Utc>,
    place: String,
    text: String,
}

impl ShopApi {
    fn new(base: impl Into<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::InvalidInput {
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            base: base.into(),
            http,
        })
    }

    /// GETs `path`: `None` for 404, the JSON otherwise; the shop out of reach or failing is
    /// `Unavailable` (the bot then hands over instead of guessing).
    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>> {
        let unavailable = |e: String| Error::Unavailable {
            reason: format!("shop order API: {e}"),
        };
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| unavailable(e.to_string()))
    }

    fn order_from(api: ApiOrder) -> Order {
        let status = match api.state.as_str() {
            "WAIT_PAY" => OrderStatus::PendingPayment,
            "WAIT_SHIP" => OrderStatus::Paid,
            "SHIPPED" => OrderStatus::Shipped,
            "SIGNED" => OrderStatus::Delivered,
            "REFUNDING" => OrderStatus::Returning,
            "REFUNDED" => OrderStatus::Refunded,
            _ => OrderStatus::Cancelled,
        };
        Order {
            id: api.order_no,
            status,
            items: api.lines.into_iter().map(|l| l.title).collect(),
            total_minor: api.amount_fen,
            currency: "CNY".into(),
            phone: api.phone,
            customer: None,
            placed_at: api.created_at,
            carrier: api.express.as_ref().map(|e| e.company.clone()),
            tracking_number: api.express.map(|e| e.waybill),
        }
    }
}

#[async_trait]
impl OrderService for ShopApi {
    async fn order(&self, asker: &Asker, order_id: &str) -> Result<Option<Order>> {
        if !order_id.chars().all(|c| c.is_ascii_alphanumeric()) || order_id.len() > 32 {
            return Ok(None);
        }
        let order = self
            .get::<ApiOrder>(&format!("/api/orders/{order_id}"), &[])
            .await?
            .map(Self::order_from);
        // Defence in depth: the bots also wrap every order service in `OwnOrders`.
        Ok(order.filter(|o| asker.owns(o)))
    }

    async fn orders_by_phone(&self, asker: &Asker, phone: &str) -> Result<Vec<Order>> {
        if !asker.has_phone(phone) {
            return Ok(Vec::new());
        }
        let orders = self
            .get::<Vec<ApiOrder>>("/api/orders", &[("phone", phone)])
            .await?
            .unwrap_or_default();
        Ok(orders.into_iter().map(Self::order_from).collect())
    }

    async fn logistics(&self, asker: &Asker, order_id: &str) -> Result<Vec<TrackingEvent>> {
        if self.order(asker, order_id).await?.is_none() {
            return Ok(Vec::new());
        }
        let traces = self
            .get::<Vec<ApiTrace>>(&format!("/api/orders/{order_id}/traces"), &[])
            .await?
            .unwrap_or_default();
        Ok(traces
            .into_iter()
            .map(|t| TrackingEvent {
                at: t.time,
                location: t.place,
                description: t.text,
            })
            .collect())
    }

    async fn start_return(&self, asker: &Asker, request: &ReturnRequest) -> Result<ReturnReceipt> {
        if self.order(asker, &request.order_id).await?.is_none() {
            return Err(Error::NotFound {
                what: format!("order {}", request.order_id),
            });
        }
        let response = self
            .http
            .post(format!(
                "{}/api/orders/{}/returns",
                self.base, request.order_id
            ))
            .json(&json!({
                "type": if request.kind == ReturnKind::Refund { "REFUND_ONLY" } else { "RETURN" },
                "reason": request.reason,
            }))
            .send()
            .await
            .map_err(|e| Error::Unavailable {
                reason: format!("shop order API: {e}"),
            })?;
        match response.status().as_u16() {
            200..=299 => {
                #[derive(Deserialize)]
                struct Rma {
                    rma_no: String,
                }
                let rma: Rma = response.json().await.map_err(|e| Error::Unavailable {
                    reason: format!("shop order API: {e}"),
                })?;
                Ok(ReturnReceipt {
                    id: rma.rma_no,
                    order_id: request.order_id.clone(),
                    kind: request.kind,
                })
            }
            409 | 422 => Err(Error::InvalidInput {
                reason: "the shop cannot return this order".into(),
            }),
            status => Err(Error::Unavailable {
                reason: format!("shop order API answered {status}"),
            }),
        }
    }
}

/// The phone the sample orders were placed with.
const OWNER_PHONE: &str = "13800138000";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap()
}

/// A stand-in for the shop's order API with one shipped order.
async fn shop_stand_in() -> MockServer {
    let shop = MockServer::start().await;
    let order = json!({
        "order_no": "88001", "state": "SHIPPED", "lines": [{"title": "Silk dress / 真丝连衣裙"}],
        "amount_fen": 59_900, "phone": OWNER_PHONE, "created_at": now() - chrono::Duration::days(2),
        "express": {"company": "ZTO Express", "waybill": "ZT7788990011"}
    });
    Mock::given(method("GET"))
        .and(path("/api/orders/88001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(order.clone()))
        .mount(&shop)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/orders"))
        .and(query_param("phone", OWNER_PHONE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([order])))
        .mount(&shop)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/orders/88001/traces"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"time": now() - chrono::Duration::hours(30), "place": "Hangzhou", "text": "Picked up / 已揽收"},
            {"time": now() - chrono::Duration::hours(3), "place": "Beijing Chaoyang", "text": "Out for delivery / 派送中"}
        ])))
        .mount(&shop)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/orders/88001/returns"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"rma_no": "RMA-5501"})))
        .mount(&shop)
        .await;
    // Everything else: no such order.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&shop)
        .await;
    shop
}

fn bot(shop: &MockServer) -> Result<IntentBot> {
    let orders = Arc::new(ShopApi::new(shop.uri())?);
    IntentBot::builder()
        .with_faq_text(include_str!("../cs-bot/data/ecommerce_faq.txt"))?
        .with_orders(orders)
        // Ticket questions ("where is my ticket 1234?"): the engine gives the bot the desk's own
        // ticket store; standing alone here, an empty one.
        .with_tickets(Arc::new(cs_bot::DemoShop::new()))
        .build()
}

async fn ask(bot: &IntentBot, verified_phones: &[&str], text: &str) -> Result<String> {
    let reply = bot
        .reply(&BotInput {
            tenant: TenantId::default(),
            conversation: ConversationId::new(),
            customer: CustomerId::new(),
            text: text.into(),
            history: Vec::new(),
            verified_phones: verified_phones.iter().map(|p| (*p).to_owned()).collect(),
        })
        .await?;
    Ok(reply.messages.join("\n"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let shop = shop_stand_in().await;
    let bot = bot(&shop)?;
    println!("The owner (phone proved) asks:");
    println!(
        "{}\n",
        ask(&bot, &[OWNER_PHONE], "Where is my order 88001?").await?
    );
    println!("A stranger asks about the same order:");
    println!("{}", ask(&bot, &[], "Where is my order 88001?").await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cs_bot::conformance::{self, BotFixture, Features, OrderProbe};

    #[derive(Debug)]
    struct Fixture {
        bot: Arc<IntentBot>,
    }

    impl BotFixture for Fixture {
        fn name(&self) -> &str {
            "IntentBot over the shop's order API"
        }
        fn bot(&self) -> Arc<dyn Bot> {
            self.bot.clone()
        }
        fn features(&self) -> Features {
            Features {
                languages: vec!["zh".into(), "en".into()],
                handoff: true,
                orders: Some(OrderProbe {
                    owner_phone: OWNER_PHONE.into(),
                    order_id: "88001".into(),
                    secrets: [
                        "Silk dress",
                        "真丝连衣裙",
                        "ZTO",
                        "ZT7788990011",
                        "Hangzhou",
                        "599",
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

    #[tokio::test]
    async fn the_bot_over_the_shop_api_conforms() {
        let shop = shop_stand_in().await;
        let fixture = Fixture {
            bot: Arc::new(bot(&shop).unwrap()),
        };
        conformance::run(&fixture).await;
    }

    #[tokio::test]
    async fn a_shop_that_is_down_is_unavailable_not_an_empty_answer() {
        let api = ShopApi::new("http://127.0.0.1:9").unwrap();
        let asker =
            Asker::new(TenantId::default(), CustomerId::new()).with_verified_phone(OWNER_PHONE);
        let err = api.order(&asker, "88001").await.unwrap_err();
        assert!(err.is_temporary(), "{err:?}");
    }
}
