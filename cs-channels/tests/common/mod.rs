//! Test support: an `InboundHandler` over `cs_core`'s `MemoryStore` (the store de-duplicates on
//! channel + provider message id, as the engine's does), and request helpers.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use cs_channels::{Channel, Delivered, InboundHandler, InboundMessage, RawInbound, StatusUpdate};
use cs_core::store::{
    ConversationLog, CustomerStore, MessageQuery, MessageScope, OpenConversation, ResolveCustomer,
};
use cs_core::{
    Author, ChannelId, DeliveryStatus, Direction, Identity, ManualClock, Message, MessageId,
    Priority, Route, TenantId,
};
use http::{HeaderMap, Method, Request, Uri};
use tower::ServiceExt;

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap()
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(start()))
}

#[derive(Debug)]
pub struct StoreHandler {
    pub store: cs_core::store::MemoryStore,
    pub tenant: TenantId,
    pub statuses: Mutex<Vec<(ChannelId, StatusUpdate)>>,
}

impl StoreHandler {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            store: cs_core::store::MemoryStore::new(),
            tenant: TenantId::new("shop").unwrap(),
            statuses: Mutex::new(Vec::new()),
        })
    }

    /// Every stored message of the customer behind `identity`.
    pub async fn messages_of(&self, identity: &Identity) -> Vec<Message> {
        let Some(c) = self
            .store
            .find_customer(&self.tenant, identity)
            .await
            .unwrap()
        else {
            return Vec::new();
        };
        self.store
            .messages(&MessageQuery::new(
                self.tenant.clone(),
                MessageScope::Customer(c.id),
                1000,
            ))
            .await
            .unwrap()
    }

    pub fn statuses(&self) -> Vec<(ChannelId, StatusUpdate)> {
        self.statuses.lock().unwrap().clone()
    }
}

#[async_trait]
impl InboundHandler for StoreHandler {
    async fn handle(&self, m: InboundMessage) -> cs_channels::Result<Delivered> {
        let at = start();
        let resolved = self
            .store
            .resolve_customer(&ResolveCustomer {
                tenant: self.tenant.clone(),
                identity: m.from.clone(),
                display_name: m.display_name.clone(),
                language: m.language.clone(),
                shared_key: None,
                at,
            })
            .await?;
        let opened = self
            .store
            .open_conversation(&OpenConversation {
                tenant: self.tenant.clone(),
                customer: resolved.customer.id,
                route: Route {
                    channel: m.channel.clone(),
                    identity: m.from.clone(),
                },
                priority: Priority::Normal,
                at,
                unless_stored: None,
            })
            .await?;
        let message = Message {
            id: MessageId::new(),
            tenant: self.tenant.clone(),
            conversation: opened.conversation.id,
            customer: resolved.customer.id,
            channel: m.channel,
            channel_kind: m.from.kind,
            direction: Direction::Inbound,
            author: Author::Customer,
            content: m.content,
            provider_message_id: m.provider_message_id,
            status: DeliveryStatus::Pending,
            created_at: at,
        };
        let appended = self.store.append_message(&message).await?;
        Ok(Delivered {
            duplicate: appended.is_duplicate(),
            message: appended.message().clone(),
        })
    }

    async fn history(
        &self,
        _channel: &ChannelId,
        identity: &Identity,
        _limit: usize,
    ) -> cs_channels::Result<Vec<Message>> {
        Ok(self.messages_of(identity).await)
    }

    async fn status(&self, channel: &ChannelId, update: StatusUpdate) -> cs_channels::Result<()> {
        self.statuses
            .lock()
            .unwrap()
            .push((channel.clone(), update));
        Ok(())
    }
}

pub fn raw(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> RawInbound {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    RawInbound {
        method,
        uri: uri.parse::<Uri>().unwrap(),
        headers: map,
        body: body.into(),
        received_at: start(),
    }
}

/// Sends `raw` through a webhook router mounting `channel` and returns status and body.
pub async fn through_router(router: &axum::Router, raw: &RawInbound) -> (http::StatusCode, Bytes) {
    let mut req = Request::builder()
        .method(raw.method.clone())
        .uri(raw.uri.clone());
    for (k, v) in &raw.headers {
        req = req.header(k, v);
    }
    let response = router
        .clone()
        .oneshot(req.body(Body::from(raw.body.clone())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body)
}

pub fn router_for(channel: Arc<dyn Channel>, handler: Arc<StoreHandler>) -> axum::Router {
    cs_channels::router::WebhookRouter::new(handler)
        .with_channel(channel)
        .build()
        .unwrap()
}

/// Asserts a refusal is `Unauthenticated`.
pub fn assert_unauthenticated<T: std::fmt::Debug>(r: cs_channels::Result<T>) {
    match r {
        Err(cs_channels::Error::Unauthenticated { .. }) => {}
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

/// An outbound bot message to `to` on the channel named `channel`.
pub fn outbound(
    channel: &str,
    to: Identity,
    content: cs_core::Content,
) -> cs_channels::OutboundMessage {
    cs_channels::OutboundMessage {
        message: Message {
            id: MessageId::new(),
            tenant: TenantId::new("shop").unwrap(),
            conversation: cs_core::ConversationId::new(),
            customer: cs_core::CustomerId::new(),
            channel: ChannelId::new(channel).unwrap(),
            channel_kind: to.kind,
            direction: Direction::Outbound,
            author: Author::Bot,
            content,
            provider_message_id: None,
            status: DeliveryStatus::Pending,
            created_at: start(),
        },
        to,
    }
}

/// Delivers `request` three times in a row, then `concurrent` times at once, through `router`;
/// every delivery must be answered 200. Returns what the handler stored for `identity`.
pub async fn deliver_repeatedly(
    router: &axum::Router,
    handler: &StoreHandler,
    request: &RawInbound,
    concurrent: usize,
    identity: &Identity,
) -> Vec<Message> {
    for _ in 0..3 {
        assert_eq!(through_router(router, request).await.0, 200);
    }
    let tasks: Vec<_> = (0..concurrent)
        .map(|_| {
            let (router, req) = (router.clone(), request.clone());
            tokio::spawn(async move { through_router(&router, &req).await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    handler.messages_of(identity).await
}
