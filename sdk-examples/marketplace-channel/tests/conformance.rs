//! The Bazaar adapter against omnidesk's `Channel` conformance suite: the fixture says how Bazaar
//! signs a webhook and stands in for its send API; `conformance::run` does every check.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use cs_channels::conformance::{
    self, ChannelFixture, Features, ProviderAnswer, Signing, TextEvent,
};
use cs_channels::{Channel, RawInbound};
use cs_core::{ChannelKind, Identity, ManualClock};
use marketplace_channel::{Bazaar, SIGNATURE_HEADER, sign};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &[u8] = b"bazaar-app-secret";
const MAX_BODY: usize = 32 * 1024;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap()
}

#[derive(Debug)]
struct BazaarFixture {
    channel: Arc<Bazaar>,
    platform: MockServer,
}

impl BazaarFixture {
    async fn new() -> Self {
        let platform = MockServer::start().await;
        let channel = Bazaar::builder("bazaar", SECRET, "app-token")
            .with_base_url(platform.uri())
            .with_clock(Arc::new(ManualClock::new(now())))
            .with_max_body_bytes(MAX_BODY)
            .with_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        Self {
            channel: Arc::new(channel),
            platform,
        }
    }

    fn request(body: Bytes, at: DateTime<Utc>, signing: Signing) -> RawInbound {
        let mut headers = http::HeaderMap::new();
        let signature = match signing {
            Signing::Genuine => Some(sign(SECRET, at.timestamp(), &body)),
            Signing::WrongKey => Some(sign(b"someone-else", at.timestamp(), &body)),
            Signing::Missing => None,
        };
        if let Some(s) = signature {
            headers.insert(SIGNATURE_HEADER, s.parse().unwrap());
        }
        RawInbound {
            method: http::Method::POST,
            uri: "/webhooks/bazaar".parse().unwrap(),
            headers,
            body,
            received_at: now(),
        }
    }
}

#[async_trait]
impl ChannelFixture for BazaarFixture {
    fn name(&self) -> &str {
        "bazaar"
    }
    fn channel(&self) -> Arc<dyn Channel> {
        self.channel.clone()
    }
    fn features(&self) -> Features {
        Features {
            signed: true,
            replay_window: Some(chrono::Duration::minutes(5)),
            max_body_bytes: Some(MAX_BODY),
            outbound_http: true,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        now()
    }
    fn text_request(&self, e: &TextEvent, signing: Signing) -> RawInbound {
        let body = json!({"event_id": e.provider_id, "type": "chat.message",
                          "buyer": {"id": e.from, "nick": "小王"}, "text": e.text,
                          "sent_at": e.at});
        Self::request(body.to_string().into(), e.at, signing)
    }
    fn body_request(&self, body: Bytes) -> RawInbound {
        Self::request(body, now(), Signing::Genuine)
    }
    async fn provider_answers(&self, answer: ProviderAnswer) {
        self.platform.reset().await;
        let ok = ResponseTemplate::new(200).set_body_json(json!({"code": 0, "msg_id": "bz-1"}));
        let response = match answer {
            ProviderAnswer::Accept => ok,
            ProviderAnswer::Status(s) => ResponseTemplate::new(s),
            ProviderAnswer::Stall => ok.set_delay(Duration::from_secs(3)),
        };
        Mock::given(method("POST"))
            .and(path("/open/im/send"))
            .and(header("authorization", "Bearer app-token"))
            .respond_with(response)
            .mount(&self.platform)
            .await;
    }
    fn recipient(&self) -> Identity {
        Identity::new(ChannelKind::Webhook, "buyer-7")
    }
}

#[tokio::test]
async fn bazaar_conforms() {
    conformance::run(&BazaarFixture::new().await).await;
}

#[tokio::test]
async fn a_business_refusal_inside_a_200_is_rejected() {
    let f = BazaarFixture::new().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code": 40013, "msg": "buyer blocked the shop"})),
        )
        .mount(&f.platform)
        .await;
    let message = cs_channels::OutboundMessage {
        message: cs_core::Message {
            id: cs_core::MessageId::new(),
            tenant: cs_core::TenantId::new("shop").unwrap(),
            conversation: cs_core::ConversationId::new(),
            customer: cs_core::CustomerId::new(),
            channel: cs_core::ChannelId::new("bazaar").unwrap(),
            channel_kind: ChannelKind::Webhook,
            direction: cs_core::Direction::Outbound,
            author: cs_core::Author::Bot,
            content: cs_core::Content::text("hi"),
            provider_message_id: None,
            status: cs_core::DeliveryStatus::Pending,
            created_at: now(),
        },
        to: f.recipient(),
    };
    let err = f.channel.send(&message).await.unwrap_err();
    assert!(
        matches!(err, cs_channels::Error::Rejected { ref reason } if reason.contains("40013")),
        "{err:?}"
    );
}
