//! The conformance suite every [`Channel`] adapter runs: ours, and the one a team writes for a
//! marketplace we do not ship (feature `conformance`).
//!
//! An adapter's test describes how to drive it with a [`ChannelFixture`]: the channel under test
//! (pointed at a provider stand-in of the test's own, e.g. a wiremock server), how the provider
//! signs a request, and how to make the stand-in answer the next send. Each check is its own
//! `pub async fn` (as object_store's `integration.rs` does), and [`run`] calls every check the
//! fixture's [`Features`] make applicable (as opendal gates its behaviour tests by capability):
//!
//! | check | applies when |
//! |---|---|
//! | [`genuine_text_is_parsed`] | always |
//! | [`retried_delivery_is_stored_once`] | always |
//! | [`malformed_body_is_refused`] | always |
//! | [`oversized_body_is_refused`] | [`Features::max_body_bytes`] |
//! | [`forged_signature_stores_nothing`] | [`Features::signed`] |
//! | [`missing_signature_stores_nothing`] | [`Features::signed`] |
//! | [`stale_signature_stores_nothing`] | [`Features::replay_window`] |
//! | [`accepted_send_has_a_receipt`] | [`Features::outbound_http`] |
//! | [`provider_4xx_is_rejected`] | [`Features::outbound_http`] |
//! | [`provider_5xx_is_unavailable`] | [`Features::outbound_http`] |
//! | [`provider_timeout_is_unavailable`] | [`Features::outbound_http`] |
//! | [`uncarried_media_is_adapted`] | [`Features::outbound_http`] |
//!
//! A check panics with a message naming the adapter and what went wrong, so a failing check reads
//! like an assertion in the adapter's own test.
//!
//! ```no_run
//! # use cs_channels::conformance::{self, ChannelFixture};
//! # async fn demo(fixture: &dyn ChannelFixture) {
//! // In the adapter's test, after building its fixture:
//! conformance::run(fixture).await;
//! # }
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use cs_core::store::{
    ConversationLog, CustomerStore, MemoryStore, OpenConversation, ResolveCustomer,
};
use cs_core::{
    Author, Content, ContentKind, DeliveryStatus, Direction, Identity, Message, MessageId,
    Priority, Route, TenantId,
};

use crate::channel::{Channel, InboundMessage, OutboundMessage, RawInbound};
use crate::error::Error;

/// How a request the suite asks for is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// As the provider signs it, with the channel's configured secret.
    Genuine,
    /// In the provider's format, but with a key the channel does not hold (a forgery).
    WrongKey,
    /// With the signature (header, query parameter or token) left out.
    Missing,
}

/// One customer text message as the provider would deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEvent {
    /// The provider's message id (retries repeat it).
    pub provider_id: String,
    /// The sender's id on the provider (a phone number, an open id...).
    pub from: String,
    /// What the customer wrote.
    pub text: String,
    /// When the provider sends (and signs) the request.
    pub at: DateTime<Utc>,
}

/// What the provider stand-in answers to the next outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderAnswer {
    /// The provider takes the message (with whatever body it sends on success).
    Accept,
    /// An HTTP status without the success body (`400`, `403`, `500`, `503`...).
    Status(u16),
    /// No answer for longer than the channel's per-attempt time-out.
    Stall,
}

/// What an adapter supports, so the suite runs only the checks that apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// Requests carry a provider signature (or token) the channel verifies.
    pub signed: bool,
    /// The signature covers a timestamp and the channel refuses requests older than this.
    pub replay_window: Option<chrono::Duration>,
    /// The channel's configured body limit, if it has one.
    pub max_body_bytes: Option<usize>,
    /// `send` calls a provider's HTTP API (the stand-in the fixture controls).
    pub outbound_http: bool,
}

/// How the suite drives one adapter. Implemented in the adapter's test, next to its provider
/// stand-in.
#[async_trait]
pub trait ChannelFixture: Send + Sync + Debug {
    /// The adapter's name, for failure messages.
    fn name(&self) -> &str;

    /// The channel under test, configured to send to the fixture's provider stand-in, with retries
    /// off and a per-attempt time-out shorter than [`ProviderAnswer::Stall`] lasts.
    fn channel(&self) -> Arc<dyn Channel>;

    /// What the adapter supports.
    fn features(&self) -> Features;

    /// The instant the channel's clock reads (signatures within the replay window of it are
    /// fresh).
    fn now(&self) -> DateTime<Utc>;

    /// The provider request delivering `event`, signed as `signing` says.
    fn text_request(&self, event: &TextEvent, signing: Signing) -> RawInbound;

    /// A genuinely signed provider request whose body is exactly `body` (which may not parse).
    fn body_request(&self, body: Bytes) -> RawInbound;

    /// Makes the provider stand-in answer the next outbound calls with `answer`.
    async fn provider_answers(&self, answer: ProviderAnswer);

    /// The customer's identity on this channel that outbound messages go to.
    fn recipient(&self) -> Identity;
}

/// Runs every check that applies to the fixture's [`Features`].
pub async fn run(fixture: &dyn ChannelFixture) {
    let features = fixture.features();
    genuine_text_is_parsed(fixture).await;
    retried_delivery_is_stored_once(fixture).await;
    malformed_body_is_refused(fixture).await;
    if features.max_body_bytes.is_some() {
        oversized_body_is_refused(fixture).await;
    }
    if features.signed {
        forged_signature_stores_nothing(fixture).await;
        missing_signature_stores_nothing(fixture).await;
    }
    if features.replay_window.is_some() {
        stale_signature_stores_nothing(fixture).await;
    }
    if features.outbound_http {
        accepted_send_has_a_receipt(fixture).await;
        provider_4xx_is_rejected(fixture).await;
        provider_5xx_is_unavailable(fixture).await;
        provider_timeout_is_unavailable(fixture).await;
        uncarried_media_is_adapted(fixture).await;
    }
}

fn event(fixture: &dyn ChannelFixture, provider_id: &str, text: &str) -> TextEvent {
    TextEvent {
        provider_id: provider_id.to_owned(),
        from: "conformance-customer-1".to_owned(),
        text: text.to_owned(),
        at: fixture.now(),
    }
}

async fn parse_one(fixture: &dyn ChannelFixture, request: RawInbound) -> InboundMessage {
    let name = fixture.name();
    let parsed = fixture
        .channel()
        .parse_inbound(request)
        .await
        .unwrap_or_else(|e| panic!("{name}: a genuine request was refused: {e}"));
    assert_eq!(
        parsed.messages.len(),
        1,
        "{name}: a request with one message must yield one message, got {:?}",
        parsed.messages
    );
    parsed.messages.into_iter().next().expect("one message")
}

/// A genuine text message comes out with its text, the sender's identity on this channel kind,
/// and the provider's message id (the key that de-duplicates retries).
pub async fn genuine_text_is_parsed(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    let e = event(
        fixture,
        "conformance-parse-1",
        "Where is my order? 我的订单到哪了？",
    );
    let m = parse_one(fixture, fixture.text_request(&e, Signing::Genuine)).await;
    assert_eq!(m.content, Content::text(e.text.clone()), "{name}: text");
    assert_eq!(
        m.from.kind,
        fixture.channel().info().kind,
        "{name}: the sender's identity must be of the channel's kind"
    );
    assert!(
        m.provider_message_id.is_some(),
        "{name}: a provider message id is needed to de-duplicate retries"
    );
}

/// The provider delivers the same message twice (its retry after a lost answer): both parse to
/// the same provider message id, and the second is a duplicate when stored.
pub async fn retried_delivery_is_stored_once(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    let e = event(fixture, "conformance-retry-1", "retry me");
    let first = parse_one(fixture, fixture.text_request(&e, Signing::Genuine)).await;
    let second = parse_one(fixture, fixture.text_request(&e, Signing::Genuine)).await;
    assert_eq!(
        first.provider_message_id, second.provider_message_id,
        "{name}: a retried delivery must keep its provider message id"
    );
    let store = MemoryStore::new();
    let stored_first = store_inbound(&store, first).await;
    let stored_second = store_inbound(&store, second).await;
    assert!(!stored_first, "{name}: the first delivery is new");
    assert!(
        stored_second,
        "{name}: the retry must be stored as a duplicate"
    );
}

/// Stores `m` the way the engine does; returns whether it was a duplicate.
async fn store_inbound(store: &MemoryStore, m: InboundMessage) -> bool {
    let tenant = TenantId::new("conformance").expect("valid tenant");
    let at = Utc::now();
    let customer = store
        .resolve_customer(&ResolveCustomer {
            tenant: tenant.clone(),
            identity: m.from.clone(),
            display_name: m.display_name.clone(),
            language: m.language.clone(),
            shared_key: None,
            at,
        })
        .await
        .expect("memory store resolves")
        .customer;
    let conversation = store
        .open_conversation(&OpenConversation {
            tenant: tenant.clone(),
            customer: customer.id,
            route: Route {
                channel: m.channel.clone(),
                identity: m.from.clone(),
            },
            priority: Priority::Normal,
            at,
            unless_stored: None,
        })
        .await
        .expect("memory store opens")
        .conversation;
    let message = Message {
        id: MessageId::new(),
        tenant,
        conversation: conversation.id,
        customer: customer.id,
        channel: m.channel,
        channel_kind: m.from.kind,
        direction: Direction::Inbound,
        author: Author::Customer,
        content: m.content,
        provider_message_id: m.provider_message_id,
        status: DeliveryStatus::Pending,
        created_at: at,
    };
    store
        .append_message(&message)
        .await
        .expect("memory store appends")
        .is_duplicate()
}

/// Bodies that are not the provider's format get [`Error::InvalidInput`] (or a size or
/// complexity refusal), never a panic and never a message.
pub async fn malformed_body_is_refused(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    let bodies: [&[u8]; 5] = [
        b"",
        b"\x00\xff\xfe not a payload",
        b"{\"unterminated\": ",
        b"<xml><unclosed>",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    for body in bodies {
        let result = fixture
            .channel()
            .parse_inbound(fixture.body_request(Bytes::from_static(body)))
            .await;
        match result {
            Err(
                Error::InvalidInput { .. }
                | Error::TooComplex { .. }
                | Error::PayloadTooLarge { .. }
                | Error::Unauthenticated { .. },
            ) => {}
            Ok(parsed) => assert!(
                parsed.messages.is_empty(),
                "{name}: the malformed body {body:?} produced messages: {:?}",
                parsed.messages
            ),
            Err(other) => panic!("{name}: malformed body {body:?}: unexpected error {other:?}"),
        }
    }
}

/// A body one byte over the configured limit is refused with [`Error::PayloadTooLarge`] before
/// it is parsed.
pub async fn oversized_body_is_refused(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    let Some(limit) = fixture.features().max_body_bytes else {
        return;
    };
    let body = Bytes::from(vec![b'a'; limit + 1]);
    match fixture
        .channel()
        .parse_inbound(fixture.body_request(body))
        .await
    {
        Err(Error::PayloadTooLarge { .. }) => {}
        other => panic!("{name}: a body over {limit} bytes must be PayloadTooLarge, got {other:?}"),
    }
}

async fn expect_unauthenticated(fixture: &dyn ChannelFixture, request: RawInbound, what: &str) {
    let name = fixture.name();
    match fixture.channel().parse_inbound(request).await {
        Err(Error::Unauthenticated { .. }) => {}
        other => panic!("{name}: {what} must be Unauthenticated, got {other:?}"),
    }
}

/// A request signed with a key the channel does not hold is refused as
/// [`Error::Unauthenticated`]: nothing reaches the store.
pub async fn forged_signature_stores_nothing(fixture: &dyn ChannelFixture) {
    let e = event(fixture, "conformance-forged-1", "forged");
    expect_unauthenticated(
        fixture,
        fixture.text_request(&e, Signing::WrongKey),
        "a forged signature",
    )
    .await;
}

/// A request without its signature is refused as [`Error::Unauthenticated`].
pub async fn missing_signature_stores_nothing(fixture: &dyn ChannelFixture) {
    let e = event(fixture, "conformance-unsigned-1", "unsigned");
    expect_unauthenticated(
        fixture,
        fixture.text_request(&e, Signing::Missing),
        "a missing signature",
    )
    .await;
}

/// A genuine signature made longer ago than the replay window (a captured request played back)
/// is refused as [`Error::Unauthenticated`].
pub async fn stale_signature_stores_nothing(fixture: &dyn ChannelFixture) {
    let Some(window) = fixture.features().replay_window else {
        return;
    };
    let mut e = event(fixture, "conformance-stale-1", "replayed");
    e.at = fixture.now() - window - chrono::Duration::minutes(1);
    expect_unauthenticated(
        fixture,
        fixture.text_request(&e, Signing::Genuine),
        "a signature older than the replay window",
    )
    .await;
}

fn outbound(fixture: &dyn ChannelFixture, content: Content) -> OutboundMessage {
    let channel = fixture.channel();
    let info = channel.info();
    let recipient = fixture.recipient();
    OutboundMessage {
        message: Message {
            id: MessageId::new(),
            tenant: TenantId::new("conformance").expect("valid tenant"),
            conversation: cs_core::ConversationId::new(),
            customer: cs_core::CustomerId::new(),
            channel: info.id.clone(),
            channel_kind: info.kind,
            direction: Direction::Outbound,
            author: Author::Bot,
            content,
            provider_message_id: None,
            status: DeliveryStatus::Pending,
            created_at: fixture.now(),
        },
        to: recipient,
    }
}

/// A text the provider accepts comes back with a receipt that is at least `Sent`.
pub async fn accepted_send_has_a_receipt(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    fixture.provider_answers(ProviderAnswer::Accept).await;
    let receipt = fixture
        .channel()
        .send(&outbound(
            fixture,
            Content::text("Your parcel left the warehouse."),
        ))
        .await
        .unwrap_or_else(|e| panic!("{name}: an accepted send failed: {e}"));
    assert!(
        matches!(
            receipt.status,
            DeliveryStatus::Sent | DeliveryStatus::Delivered | DeliveryStatus::Read
        ),
        "{name}: an accepted send must be at least Sent, got {:?}",
        receipt.status
    );
}

async fn send_expecting(
    fixture: &dyn ChannelFixture,
    answer: ProviderAnswer,
    expect: fn(&Error) -> bool,
    what: &str,
) {
    let name = fixture.name();
    fixture.provider_answers(answer).await;
    let result = fixture
        .channel()
        .send(&outbound(fixture, Content::text("hello")))
        .await;
    match result {
        Err(e) if expect(&e) => {}
        other => panic!("{name}: provider answering {answer:?} must give {what}, got {other:?}"),
    }
}

/// A `4xx` answer is [`Error::Rejected`]: permanent, the outbox does not retry it.
pub async fn provider_4xx_is_rejected(fixture: &dyn ChannelFixture) {
    for status in [400, 403, 404] {
        send_expecting(
            fixture,
            ProviderAnswer::Status(status),
            |e| matches!(e, Error::Rejected { .. }),
            "Rejected",
        )
        .await;
    }
}

/// A `5xx` or `429` answer is [`Error::Unavailable`]: temporary, the outbox retries it.
pub async fn provider_5xx_is_unavailable(fixture: &dyn ChannelFixture) {
    for status in [500, 502, 503, 429] {
        send_expecting(
            fixture,
            ProviderAnswer::Status(status),
            |e| matches!(e, Error::Unavailable { .. }) && e.is_temporary(),
            "a temporary Unavailable",
        )
        .await;
    }
}

/// A provider that does not answer within the per-attempt time-out is
/// [`Error::Unavailable`], and the call returns instead of hanging.
pub async fn provider_timeout_is_unavailable(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    fixture.provider_answers(ProviderAnswer::Stall).await;
    let channel = fixture.channel();
    let message = outbound(fixture, Content::text("hello?"));
    match tokio::time::timeout(Duration::from_secs(30), channel.send(&message)).await {
        Ok(Err(Error::Unavailable { .. })) => {}
        Ok(other) => panic!("{name}: a stalled provider must give Unavailable, got {other:?}"),
        Err(_) => panic!("{name}: send hung for 30 s on a stalled provider (no time-out)"),
    }
}

/// Content the channel does not carry natively, once passed through
/// [`crate::Capabilities::adapt`], is of a kind the channel carries, keeps its words, and is
/// accepted by the provider.
pub async fn uncarried_media_is_adapted(fixture: &dyn ChannelFixture) {
    let name = fixture.name();
    let channel = fixture.channel();
    let capabilities = channel.info().capabilities.clone();
    let candidates = [
        Content::Image {
            url: "https://cdn.example/p/1.jpg".into(),
            caption: Some("the blue one".into()),
        },
        Content::File {
            url: "https://cdn.example/invoice.pdf".into(),
            name: "invoice.pdf".into(),
            mime: Some("application/pdf".into()),
            size: Some(1_024),
        },
        Content::Location {
            latitude: 31.23,
            longitude: 121.47,
            label: Some("Shanghai store".into()),
        },
    ];
    fixture.provider_answers(ProviderAnswer::Accept).await;
    for content in candidates {
        if capabilities.supports(content.kind()) {
            continue;
        }
        let adapted = capabilities.adapt(content.clone());
        assert!(
            capabilities.supports(adapted.kind()) || adapted.kind() == ContentKind::Text,
            "{name}: {:?} adapted to {:?}, which the channel does not carry",
            content.kind(),
            adapted.kind()
        );
        assert!(
            !adapted.plain_text().is_empty(),
            "{name}: adapting {:?} lost its words",
            content.kind()
        );
        channel
            .send(&outbound(fixture, adapted))
            .await
            .unwrap_or_else(|e| panic!("{name}: adapted {:?} was not sent: {e}", content.kind()));
    }
}
