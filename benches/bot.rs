//! Bot latency: intent prediction of the omnidesk classifier (hyper-parameters chosen from the
//! training data) against the classical TF-IDF + logistic-regression baseline (same training
//! data, same run), loading a saved model, a full dialogue turn, and sentiment.
//!
//! ```text
//! cargo bench --bench bot
//! CS_BENCH_BANKING77_DIR=../shared/data/banking77 cargo bench --bench bot   # also Banking77
//! ```

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use cs_bot::{
    Bot, BotInput, ClassifierBuilder, DemoShop, Example, IntentBot, IntentClassifier, parse_faq,
    read_examples, sentiment,
};
use cs_core::{ConversationId, CustomerId, TenantId};

const FAQ: &str = include_str!("../cs-bot/data/ecommerce_faq.txt");

const QUERIES: &[&str] = &[
    "where is my parcel, it has been a week",
    "我的快递怎么还没到",
    "how long does a refund take to reach my card",
    "退款多久到账",
    "can I exchange these shoes for a bigger size",
    "尺码不合适能换吗",
    "my coupon code is not working at checkout",
    "发票抬头写错了怎么办",
    "I forgot my password and the code never arrives",
    "耳机一边没声音了，能保修吗",
];

fn faq_examples() -> Vec<Example> {
    parse_faq(FAQ)
        .unwrap()
        .iter()
        .flat_map(|e| e.questions.iter().map(|q| Example::new(q, &e.intent)))
        .collect()
}

fn bench_predict(
    c: &mut Criterion,
    name: &str,
    ours: &IntentClassifier,
    base: &IntentClassifier,
    queries: &[String],
) {
    let mut g = c.benchmark_group(format!("bot_predict/{name}"));
    let mut i = 0;
    g.bench_function("omnidesk_svm", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(ours.predict(&queries[i]))
        })
    });
    g.bench_function("baseline_tfidf_logreg", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(base.predict(&queries[i]))
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let train = faq_examples();
    let ours = ClassifierBuilder::new().train(&train).unwrap();
    let base = ClassifierBuilder::baseline().train(&train).unwrap();
    let queries: Vec<String> = QUERIES.iter().map(|q| (*q).to_owned()).collect();
    bench_predict(c, "ecommerce_faq", &ours, &base, &queries);

    if let Ok(dir) = std::env::var("CS_BENCH_BANKING77_DIR") {
        let train = read_examples(format!("{dir}/train.csv")).unwrap();
        let test = read_examples(format!("{dir}/test.csv")).unwrap();
        let ours = ClassifierBuilder::new().train(&train).unwrap();
        let base = ClassifierBuilder::baseline().train(&train).unwrap();
        let queries: Vec<String> = test.into_iter().take(500).map(|e| e.text).collect();
        bench_predict(c, "banking77", &ours, &base, &queries);
        // Loading a saved model instead of retraining at start.
        let mut bytes = Vec::new();
        ours.save(&mut bytes).unwrap();
        let mut g = c.benchmark_group("bot_model/banking77");
        g.sample_size(10);
        g.bench_function("load_saved", |b| {
            b.iter(|| black_box(IntentClassifier::load(bytes.as_slice()).unwrap()))
        });
        g.finish();
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let shop = Arc::new(DemoShop::sample(Utc::now()));
    let bot = IntentBot::builder()
        .with_faq_text(FAQ)
        .unwrap()
        .with_orders(shop.clone())
        .with_tickets(shop)
        .build()
        .unwrap();
    let input = BotInput {
        tenant: TenantId::default(),
        conversation: ConversationId::new(),
        customer: CustomerId::new(),
        text: "how long does a refund take?".into(),
        history: vec![],
        verified_phones: Vec::new(),
    };
    c.bench_function("bot_reply/intent_bot_faq_turn", |b| {
        b.iter(|| black_box(rt.block_on(bot.reply(&input)).unwrap()))
    });
    let mut i = 0;
    c.bench_function("bot_sentiment/mixed", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES.len();
            black_box(sentiment(QUERIES[i]))
        })
    });
}

criterion_group!(bot, benches);
criterion_main!(bot);
