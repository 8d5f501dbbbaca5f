//! The shop's back end as the bot sees it: adapter traits the application implements over its
//! order system and ticket store, and an in-memory demo shop.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cs_core::{CustomerId, TenantId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OrderStatus {
    /// Waiting for payment.
    PendingPayment,
    /// Paid, being prepared.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Delivered.
    Delivered,
    /// Cancelled.
    Cancelled,
    /// A return is under way.
    Returning,
    /// Refunded.
    Refunded,
}

impl OrderStatus {
    /// A label in Chinese (`zh`) or English.
    pub const fn label(self, zh: bool) -> &'static str {
        match (self, zh) {
            (Self::PendingPayment, true) => "待付款",
            (Self::PendingPayment, false) => "awaiting payment",
            (Self::Paid, true) => "已付款，待发货",
            (Self::Paid, false) => "paid, being prepared",
            (Self::Shipped, true) => "已发货",
            (Self::Shipped, false) => "shipped",
            (Self::Delivered, true) => "已签收",
            (Self::Delivered, false) => "delivered",
            (Self::Cancelled, true) => "已取消",
            (Self::Cancelled, false) => "cancelled",
            (Self::Returning, true) => "退货处理中",
            (Self::Returning, false) => "return in progress",
            (Self::Refunded, true) => "已退款",
            (Self::Refunded, false) => "refunded",
        }
    }
}

/// An order as the bot shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order number the customer quotes.
    pub id: String,
    /// Status.
    pub status: OrderStatus,
    /// Item names.
    pub items: Vec<String>,
    /// Total in minor units (cents, fen).
    pub total_minor: i64,
    /// ISO currency code.
    pub currency: String,
    /// The phone number on the order.
    pub phone: Option<String>,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Carrier, once shipped.
    pub carrier: Option<String>,
    /// Tracking number, once shipped.
    pub tracking_number: Option<String>,
}

/// One step of a parcel's journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Where.
    pub location: String,
    /// What happened.
    pub description: String,
}

/// Return the goods, or only get the money back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReturnKind {
    /// Send the goods back for a refund.
    Return,
    /// A refund without returning goods (not shipped, missing parcel).
    Refund,
}

/// A request to start a return or refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRequest {
    /// The order.
    pub order_id: String,
    /// Return or refund.
    pub kind: ReturnKind,
    /// The customer's words.
    pub reason: String,
}

/// A started return or refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnReceipt {
    /// The return (RMA) number.
    pub id: String,
    /// The order.
    pub order_id: String,
    /// Return or refund.
    pub kind: ReturnKind,
}

/// The shop's order system, as the bot needs it. The application implements it over its back end
/// (Shopify, a marketplace API, its own database).
#[async_trait]
pub trait OrderService: Send + Sync + Debug + 'static {
    /// The order with this number, if it exists.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the back end is out of reach.
    async fn order(&self, tenant: &TenantId, order_id: &str) -> Result<Option<Order>>;

    /// Recent orders placed with this phone number, newest first.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the back end is out of reach.
    async fn orders_by_phone(&self, tenant: &TenantId, phone: &str) -> Result<Vec<Order>>;

    /// The parcel's journey, oldest first (empty before shipping).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the back end is out of reach.
    async fn logistics(&self, tenant: &TenantId, order_id: &str) -> Result<Vec<TrackingEvent>>;

    /// Starts a return or refund.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the order cannot be returned (unknown, cancelled, already
    /// refunded); [`Error::Unavailable`] when the back end is out of reach.
    async fn start_return(
        &self,
        tenant: &TenantId,
        request: &ReturnRequest,
    ) -> Result<ReturnReceipt>;
}

/// A ticket as the customer may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    /// The number the customer quotes.
    pub number: u64,
    /// Subject.
    pub subject: String,
    /// Status name (`open`, `pending`, `solved`...).
    pub status: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Looks tickets up by number for the customer who asks. The engine implements it over its
/// ticket desk, so this crate does not depend on the ticket crate.
#[async_trait]
pub trait TicketLookup: Send + Sync + Debug + 'static {
    /// The ticket with this number if it exists and `customer` may see it; another customer's
    /// ticket must look exactly like a missing one.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is out of reach.
    async fn ticket(
        &self,
        tenant: &TenantId,
        number: u64,
        customer: CustomerId,
    ) -> Result<Option<TicketSummary>>;
}

/// An in-memory shop for examples and tests: orders, tracking, returns, and tickets.
///
/// ```
/// use chrono::Utc;
/// use cs_bot::{DemoShop, OrderService, OrderStatus};
/// use cs_core::TenantId;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let shop = DemoShop::sample(Utc::now());
/// let order = shop.order(&TenantId::default(), "20261111001").await?.unwrap();
/// assert_eq!(order.status, OrderStatus::Shipped);
/// # Ok::<(), cs_bot::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct DemoShop {
    inner: Mutex<ShopData>,
}

#[derive(Debug, Default)]
struct ShopData {
    orders: HashMap<String, Order>,
    tracking: HashMap<String, Vec<TrackingEvent>>,
    tickets: HashMap<u64, TicketSummary>,
    returns: Vec<ReturnReceipt>,
}

impl DemoShop {
    /// An empty shop.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an order.
    pub fn with_order(self, order: Order) -> Self {
        self.lock().orders.insert(order.id.clone(), order);
        self
    }

    /// Sets an order's tracking events.
    pub fn with_tracking(self, order_id: &str, events: Vec<TrackingEvent>) -> Self {
        self.lock().tracking.insert(order_id.to_owned(), events);
        self
    }

    /// Adds a ticket.
    pub fn with_ticket(self, ticket: TicketSummary) -> Self {
        self.lock().tickets.insert(ticket.number, ticket);
        self
    }

    /// Returns started so far.
    pub fn returns(&self) -> Vec<ReturnReceipt> {
        self.lock().returns.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShopData> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A shop with three orders placed before `now` (phone `13800138000`):
    /// `20261111001` shipped with a tracking history, `20261111002` paid and not shipped,
    /// `20261111003` delivered; and ticket 1024 pending.
    pub fn sample(now: DateTime<Utc>) -> Self {
        let order =
            |id: &str, status, items: &[&str], total, days, carrier: Option<(&str, &str)>| Order {
                id: id.into(),
                status,
                items: items.iter().map(|s| (*s).to_owned()).collect(),
                total_minor: total,
                currency: "CNY".into(),
                phone: Some("13800138000".into()),
                placed_at: now - Duration::days(days),
                carrier: carrier.map(|c| c.0.to_owned()),
                tracking_number: carrier.map(|c| c.1.to_owned()),
            };
        let ev = |hours: i64, location: &str, description: &str| TrackingEvent {
            at: now - Duration::hours(hours),
            location: location.into(),
            description: description.into(),
        };
        Self::new()
            .with_order(order(
                "20261111001",
                OrderStatus::Shipped,
                &["Wireless earbuds / 无线耳机"],
                29_900,
                3,
                Some(("SF Express", "SF1234567890")),
            ))
            .with_tracking(
                "20261111001",
                vec![
                    ev(60, "Shenzhen", "Picked up / 已揽收"),
                    ev(40, "Guangzhou hub", "In transit / 运输中"),
                    ev(6, "Shanghai Pudong", "Out for delivery / 派送中"),
                ],
            )
            .with_order(order(
                "20261111002",
                OrderStatus::Paid,
                &["Running shoes 42 / 跑鞋 42码"],
                45_900,
                1,
                None,
            ))
            .with_order(order(
                "20261111003",
                OrderStatus::Delivered,
                &["Cotton T-shirt L / 纯棉T恤 L"],
                9_900,
                10,
                Some(("YTO", "YT9876543210")),
            ))
            .with_ticket(TicketSummary {
                number: 1024,
                subject: "Damaged parcel / 包裹破损".into(),
                status: "pending".into(),
                updated_at: now - Duration::hours(2),
            })
    }
}

#[async_trait]
impl OrderService for DemoShop {
    async fn order(&self, _tenant: &TenantId, order_id: &str) -> Result<Option<Order>> {
        Ok(self.lock().orders.get(order_id).cloned())
    }

    async fn orders_by_phone(&self, _tenant: &TenantId, phone: &str) -> Result<Vec<Order>> {
        let mut v: Vec<Order> = self
            .lock()
            .orders
            .values()
            .filter(|o| o.phone.as_deref() == Some(phone))
            .cloned()
            .collect();
        v.sort_by_key(|o| std::cmp::Reverse(o.placed_at));
        Ok(v)
    }

    async fn logistics(&self, _tenant: &TenantId, order_id: &str) -> Result<Vec<TrackingEvent>> {
        Ok(self
            .lock()
            .tracking
            .get(order_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn start_return(
        &self,
        _tenant: &TenantId,
        request: &ReturnRequest,
    ) -> Result<ReturnReceipt> {
        let mut data = self.lock();
        let Some(order) = data.orders.get_mut(&request.order_id) else {
            return Err(Error::InvalidInput {
                reason: format!("no order {}", request.order_id),
            });
        };
        if matches!(
            order.status,
            OrderStatus::Cancelled | OrderStatus::Refunded | OrderStatus::Returning
        ) {
            return Err(Error::InvalidInput {
                reason: format!("order {} is {}", order.id, order.status.label(false)),
            });
        }
        order.status = OrderStatus::Returning;
        let receipt = ReturnReceipt {
            id: format!("RMA{:06}", data.returns.len() + 1),
            order_id: request.order_id.clone(),
            kind: request.kind,
        };
        data.returns.push(receipt.clone());
        Ok(receipt)
    }
}

#[async_trait]
impl TicketLookup for DemoShop {
    /// The demo shop's tickets are visible to every customer.
    async fn ticket(
        &self,
        _tenant: &TenantId,
        number: u64,
        _customer: CustomerId,
    ) -> Result<Option<TicketSummary>> {
        Ok(self.lock().tickets.get(&number).cloned())
    }
}
