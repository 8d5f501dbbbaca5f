//! The shop's back end as the bot sees it: adapter traits the application implements over its
//! order system and ticket store, and an in-memory demo shop.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

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
    /// The customer the shop knows placed it, when its login is linked to the desk's customer.
    #[serde(default)]
    pub customer: Option<CustomerId>,
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

/// Who asks the shop about orders: the customer, and the phone numbers they proved (a phone
/// they write from over SMS or WhatsApp, or one they confirmed with a one-time code). Every
/// [`OrderService`] call carries one, so a customer sees only their own orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker {
    /// The tenant.
    pub tenant: TenantId,
    /// The customer who asks.
    pub customer: CustomerId,
    /// Phone numbers the customer proved, as written (compared with [`same_phone`]).
    pub verified_phones: Vec<String>,
}

impl Asker {
    /// A customer of `tenant` who proved nothing yet.
    pub fn new(tenant: TenantId, customer: CustomerId) -> Self {
        Self {
            tenant,
            customer,
            verified_phones: Vec::new(),
        }
    }

    /// Adds a phone number the customer proved.
    pub fn with_verified_phone(mut self, phone: impl Into<String>) -> Self {
        let phone = phone.into();
        if !self.has_phone(&phone) {
            self.verified_phones.push(phone);
        }
        self
    }

    /// Whether the customer proved this phone number.
    pub fn has_phone(&self, phone: &str) -> bool {
        self.verified_phones.iter().any(|p| same_phone(p, phone))
    }

    /// Whether the order is the customer's: the shop says they placed it, or it was placed with
    /// a phone number they proved.
    pub fn owns(&self, order: &Order) -> bool {
        order.customer == Some(self.customer)
            || order.phone.as_deref().is_some_and(|p| self.has_phone(p))
    }
}

/// A phone number's digits in international form, for comparing numbers however they are
/// written: `+86 138-0013-8000`, `8613800138000` and a Chinese mobile number without country
/// code (`13800138000`) are all `8613800138000`. `None` for fewer than six digits.
///
/// ```
/// use cs_bot::{phone_key, same_phone};
///
/// assert_eq!(phone_key("+86 138-0013-8000").as_deref(), Some("8613800138000"));
/// assert!(same_phone("13800138000", "+8613800138000"));
/// assert!(!same_phone("13800138000", "13900139000"));
/// ```
pub fn phone_key(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return None;
    }
    let cn_mobile = digits.len() == 11
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9')
        && !phone.trim().starts_with('+');
    Some(if cn_mobile {
        format!("86{digits}")
    } else {
        digits
    })
}

/// Whether two phone numbers are the same number ([`phone_key`]).
pub fn same_phone(a: &str, b: &str) -> bool {
    match (phone_key(a), phone_key(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The shop's order system, as the bot needs it. The application implements it over its back end
/// (Shopify, a marketplace API, its own database).
///
/// Every call carries the [`Asker`]: an implementation answers only with the asker's own orders
/// ([`Asker::owns`]), and another customer's order must look exactly like a missing one. The
/// bots do not rely on it: they wrap the service in [`OwnOrders`], which enforces the same rules.
#[async_trait]
pub trait OrderService: Send + Sync + Debug + 'static {
    /// The order with this number, if it exists and belongs to the asker.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the back end is out of reach.
    async fn order(&self, asker: &Asker, order_id: &str) -> Result<Option<Order>>;

    /// Recent orders placed with this phone number, newest first; none unless the asker proved
    /// the number.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the back end is out of reach.
    async fn orders_by_phone(&self, asker: &Asker, phone: &str) -> Result<Vec<Order>>;

    /// The parcel's journey, oldest first (empty before shipping, and for an order that is not
    /// the asker's).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the back end is out of reach.
    async fn logistics(&self, asker: &Asker, order_id: &str) -> Result<Vec<TrackingEvent>>;

    /// Starts a return or refund on one of the asker's orders.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the order is unknown or not the asker's (the same error for
    /// both); [`Error::InvalidInput`] when the order cannot be returned (cancelled, already
    /// refunded); [`Error::Unavailable`] when the back end is out of reach.
    async fn start_return(&self, asker: &Asker, request: &ReturnRequest) -> Result<ReturnReceipt>;
}

/// Wraps any [`OrderService`] so that it answers only with the asker's own orders, whatever the
/// back end does: another customer's order looks exactly like a missing one, orders by phone
/// need a phone the asker proved, tracking and returns need an order the asker owns. The bots
/// put every order service they are given behind it.
#[derive(Debug, Clone)]
pub struct OwnOrders {
    inner: Arc<dyn OrderService>,
}

impl OwnOrders {
    /// Guards `inner`.
    pub fn new(inner: Arc<dyn OrderService>) -> Self {
        Self { inner }
    }

    async fn own(&self, asker: &Asker, order_id: &str) -> Result<Option<Order>> {
        Ok(self
            .inner
            .order(asker, order_id)
            .await?
            .filter(|o| o.id.eq_ignore_ascii_case(order_id) && asker.owns(o)))
    }
}

#[async_trait]
impl OrderService for OwnOrders {
    async fn order(&self, asker: &Asker, order_id: &str) -> Result<Option<Order>> {
        self.own(asker, order_id).await
    }

    async fn orders_by_phone(&self, asker: &Asker, phone: &str) -> Result<Vec<Order>> {
        if !asker.has_phone(phone) {
            return Ok(Vec::new());
        }
        let mut found = self.inner.orders_by_phone(asker, phone).await?;
        found.retain(|o| asker.owns(o));
        Ok(found)
    }

    async fn logistics(&self, asker: &Asker, order_id: &str) -> Result<Vec<TrackingEvent>> {
        match self.own(asker, order_id).await? {
            Some(o) => self.inner.logistics(asker, &o.id).await,
            None => Ok(Vec::new()),
        }
    }

    async fn start_return(&self, asker: &Asker, request: &ReturnRequest) -> Result<ReturnReceipt> {
        if self.own(asker, &request.order_id).await?.is_none() {
            return Err(Error::NotFound {
                what: format!("order {}", request.order_id),
            });
        }
        self.inner.start_return(asker, request).await
    }
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
/// use cs_bot::{Asker, DemoShop, OrderService, OrderStatus};
/// use cs_core::{CustomerId, TenantId};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let shop = DemoShop::sample(Utc::now());
/// let stranger = Asker::new(TenantId::default(), CustomerId::new());
/// assert!(shop.order(&stranger, "20261111001").await?.is_none());
/// let owner = stranger.with_verified_phone("+8613800138000");
/// let order = shop.order(&owner, "20261111001").await?.unwrap();
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
                customer: None,
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

/// The demo shop answers only with the asker's own orders ([`Asker::owns`]).
#[async_trait]
impl OrderService for DemoShop {
    async fn order(&self, asker: &Asker, order_id: &str) -> Result<Option<Order>> {
        Ok(self
            .lock()
            .orders
            .get(order_id)
            .filter(|o| asker.owns(o))
            .cloned())
    }

    async fn orders_by_phone(&self, asker: &Asker, phone: &str) -> Result<Vec<Order>> {
        if !asker.has_phone(phone) {
            return Ok(Vec::new());
        }
        let mut v: Vec<Order> = self
            .lock()
            .orders
            .values()
            .filter(|o| o.phone.as_deref().is_some_and(|p| same_phone(p, phone)))
            .cloned()
            .collect();
        v.sort_by_key(|o| std::cmp::Reverse(o.placed_at));
        Ok(v)
    }

    async fn logistics(&self, asker: &Asker, order_id: &str) -> Result<Vec<TrackingEvent>> {
        let data = self.lock();
        if !data.orders.get(order_id).is_some_and(|o| asker.owns(o)) {
            return Ok(Vec::new());
        }
        Ok(data.tracking.get(order_id).cloned().unwrap_or_default())
    }

    async fn start_return(&self, asker: &Asker, request: &ReturnRequest) -> Result<ReturnReceipt> {
        let mut data = self.lock();
        let Some(order) = data
            .orders
            .get_mut(&request.order_id)
            .filter(|o| asker.owns(o))
        else {
            return Err(Error::NotFound {
                what: format!("order {}", request.order_id),
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
