//! The embedding client and the hybrid classifier against a local mock of an OpenAI-compatible
//! embeddings server that returns deterministic vectors.
#![cfg(feature = "embeddings")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cs_bot::{
    ClassifierBuilder, Embedder, Error, Example, HybridClassifier, HybridConfig, OpenAiEmbedder,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Concepts the mock "model" knows, with words the sparse model never saw in training.
const CONCEPTS: [&[&str]; 4] = [
    &["refund", "money back", "reimburse", "退款", "退钱"],
    &["track", "where is", "parcel", "shipment", "快递", "物流"],
    &["pay", "card", "instalment", "付款", "支付"],
    &["weather", "joke", "poem", "天气"],
];

/// One dimension per concept plus a small text-dependent component: deterministic.
fn vector(text: &str) -> Vec<f32> {
    let t = text.to_lowercase();
    let mut v: Vec<f32> = CONCEPTS
        .iter()
        .map(|words| words.iter().filter(|w| t.contains(*w)).count() as f32)
        .collect();
    v.push(0.05 * (t.len() % 7) as f32);
    v
}

fn respond(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let data: Vec<Value> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        // Out of order, with indices, as some servers send them.
        .rev()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector(t.as_str().unwrap())}))
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"object": "list", "data": data, "model": body["model"]}))
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(header("authorization", "Bearer sk-emb"))
        .respond_with(respond)
        .mount(&server)
        .await;
    server
}

fn embedder(server: &MockServer, batch: usize) -> Arc<OpenAiEmbedder> {
    Arc::new(
        OpenAiEmbedder::builder(format!("{}/v1", server.uri()), "bge-test")
            .with_api_key("sk-emb")
            .with_batch_size(batch)
            .with_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
}

fn training() -> Vec<Example> {
    let mut ex = Vec::new();
    for i in 0..12 {
        ex.push(Example::new(
            format!("I want a refund for order {i}"),
            "refund",
        ));
        ex.push(Example::new(
            format!("please refund my purchase {i}"),
            "refund",
        ));
        ex.push(Example::new(format!("where is my parcel {i}"), "track"));
        ex.push(Example::new(format!("track my shipment {i}"), "track"));
        ex.push(Example::new(format!("can I pay by card {i}"), "pay"));
        ex.push(Example::new(format!("pay in instalments {i}"), "pay"));
    }
    ex
}

#[tokio::test]
async fn batches_requests_caches_by_text_and_hides_the_key() {
    let server = server().await;
    let e = embedder(&server, 2);
    assert!(!format!("{e:?}").contains("sk-emb"));
    let texts: Vec<String> = ["a refund", "track it", "pay", "a refund", "天气"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let v = e.embed(&texts).await.unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(v[0], vector("a refund"));
    assert_eq!(v[0], v[3]);
    assert_eq!(v[4], vector("天气"));
    // Four distinct texts in batches of two.
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert_eq!(e.cached(), 4);
    e.embed(&texts[..3]).await.unwrap();
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "from the cache"
    );
}

#[tokio::test]
async fn server_errors_mean_what_they_say() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(400))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let e = OpenAiEmbedder::builder(format!("{}/v1", server.uri()), "m")
        .build()
        .unwrap();
    let t = ["x".to_owned()];
    assert!(matches!(e.embed(&t).await, Err(Error::InvalidInput { .. })));
    let err = e.embed(&t).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(OpenAiEmbedder::builder("", "m").build().is_err());
}

#[tokio::test]
async fn embeddings_fix_what_the_sparse_model_cannot_know() {
    let server = server().await;
    let ex = training();
    let sparse = ClassifierBuilder::new().train(&ex).unwrap();
    // The training lines are English: the sparse model knows nothing of "退钱".
    let q = "退钱";
    let alone = sparse.predict(q);
    assert!(!alone.in_scope, "{alone:?}");
    let hybrid = HybridClassifier::new(sparse, embedder(&server, 16), &ex, HybridConfig::default())
        .await
        .unwrap();
    let p = hybrid.predict(q).await;
    assert!(p.used_embeddings);
    assert_eq!(p.prediction.label, "refund", "{p:?}");
    assert!(p.prediction.in_scope, "{p:?}");
    let p = hybrid.predict("where is my parcel").await;
    assert_eq!(p.prediction.label, "track");
}

#[tokio::test]
async fn a_slow_or_dead_server_falls_back_to_the_sparse_model() {
    let server = server().await;
    let ex = training();
    let sparse = ClassifierBuilder::new().train(&ex).unwrap();
    let config = HybridConfig {
        budget: Duration::from_millis(200),
        cooldown: Duration::from_secs(60),
        ..HybridConfig::default()
    };
    let hybrid = HybridClassifier::new(sparse.clone(), embedder(&server, 64), &ex, config)
        .await
        .unwrap();
    // The server turns slow.
    server.reset().await;
    Mock::given(path("/v1/embeddings"))
        .respond_with(respond_slow)
        .mount(&server)
        .await;
    let start = Instant::now();
    let p = hybrid.predict("where is my parcel now").await;
    assert!(!p.used_embeddings);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(p.prediction, sparse.predict("where is my parcel now"));
    // During the cool-down the server is not asked at all.
    let before = server.received_requests().await.unwrap().len();
    let start = Instant::now();
    let p = hybrid.predict("refund please").await;
    assert!(!p.used_embeddings && start.elapsed() < Duration::from_millis(100));
    assert_eq!(server.received_requests().await.unwrap().len(), before);

    // Training needs the server.
    server.reset().await;
    let failed = HybridClassifier::new(
        sparse.clone(),
        embedder(&server, 64),
        &ex,
        HybridConfig::default(),
    )
    .await;
    assert!(failed.is_err());
    Mock::given(path("/v1/embeddings"))
        .respond_with(respond)
        .mount(&server)
        .await;
    // A dead server (every call fails at once) also falls back.
    let switch = Arc::new(Switchable {
        inner: embedder(&server, 64),
        dead: AtomicBool::new(false),
    });
    let hybrid =
        HybridClassifier::new(sparse.clone(), switch.clone(), &ex, HybridConfig::default())
            .await
            .unwrap();
    assert!(hybrid.predict("can I pay by card").await.used_embeddings);
    switch.dead.store(true, Ordering::Relaxed);
    let p = hybrid.predict("can I pay with my card").await;
    assert!(!p.used_embeddings);
    assert_eq!(p.prediction.label, "pay");
}

#[derive(Debug)]
struct Switchable {
    inner: Arc<OpenAiEmbedder>,
    dead: AtomicBool,
}

#[async_trait::async_trait]
impl Embedder for Switchable {
    async fn embed(&self, texts: &[String]) -> cs_bot::Result<Vec<Vec<f32>>> {
        if self.dead.load(Ordering::Relaxed) {
            return Err(Error::Unavailable {
                reason: "connection refused".into(),
            });
        }
        self.inner.embed(texts).await
    }
}

fn respond_slow(req: &Request) -> ResponseTemplate {
    respond(req).set_delay(Duration::from_secs(3))
}

#[tokio::test]
async fn the_intent_bot_classifies_with_the_hybrid_when_given_one() {
    use cs_bot::{Bot, BotInput, IntentBot};
    use cs_core::{ConversationId, CustomerId, TenantId};
    let server = server().await;
    let faq = "Intent: refund_policy\nQ: I want a refund\nQ: please refund my purchase\nQ: refund my order\nA: Refunds take 3 days.\n\n\
               Intent: shipping\nQ: where is my parcel\nQ: track my shipment\nQ: parcel tracking\nA: Parcels take 2 days.\n";
    let builder = IntentBot::builder().with_faq_text(faq).unwrap();
    let lines = builder.training_lines();
    let sparse = ClassifierBuilder::new().train(&lines).unwrap();
    let hybrid = HybridClassifier::new(
        sparse.clone(),
        embedder(&server, 16),
        &lines,
        HybridConfig::default(),
    )
    .await
    .unwrap();
    let bot = builder
        .with_trained(sparse)
        .with_hybrid(Arc::new(hybrid))
        .build()
        .unwrap();
    let r = bot
        .reply(&BotInput {
            tenant: TenantId::default(),
            conversation: ConversationId::new(),
            customer: CustomerId::new(),
            text: "请问怎么退款".into(),
            history: vec![],
            verified_phones: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(r.messages, ["Refunds take 3 days."], "{r:?}");
}
