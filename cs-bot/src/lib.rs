#![doc = include_str!("../README.md")]

mod bot;
mod classifier;
#[cfg(feature = "conformance")]
pub mod conformance;
mod dialogue;
#[cfg(feature = "embeddings")]
mod embed;
mod error;
mod eval;
mod faq;
mod features;
mod knowledge;
mod linear;
#[cfg(feature = "llm")]
mod llm;
#[cfg(feature = "llm")]
mod order_tools;
mod persist;
mod select;
mod sentiment;
mod shop;
mod slots;
mod templates;
pub mod text;
mod verify;

pub use bot::{Bot, BotInput, BotReply, Choices, DEFAULT_HISTORY, Handoff, HandoffReason, Intent};
pub use classifier::{
    ClassifierBuilder, Example, Features, IntentClassifier, MAX_AUTO_THRESHOLD, Model,
    OUT_OF_SCOPE, Prediction, Selection, Threshold, TrainProgress, TrainStage, Trial, parse_csv,
    parse_jsonl, read_examples,
};
pub use dialogue::{Action, HandoffReasonKind, IntentBot, IntentBotBuilder};
#[cfg(feature = "embeddings")]
pub use embed::{
    Embedder, EmbeddingConfig, HybridClassifier, HybridConfig, HybridPrediction, OpenAiEmbedder,
    OpenAiEmbedderBuilder,
};
pub use error::{Error, Result};
pub use eval::{Evaluation, evaluate};
pub use faq::{FaqBot, FaqEntry, Knowledge, asks_for_human, parse_faq, parse_knowledge};
pub use features::FeatureConfig;
pub use knowledge::{LiveBot, QuestionCluster, RetrainStatus, Unanswered, UnansweredLog};
#[cfg(feature = "llm")]
pub use llm::{HANDOFF_MARKER, LlmBot, LlmBotBuilder, LlmConfig};
pub use persist::MODEL_FORMAT_VERSION;
pub use sentiment::{Emotion, Polarity, Sentiment, sentiment};
pub use shop::{
    Asker, DemoShop, Order, OrderService, OrderStatus, OwnOrders, ReturnKind, ReturnReceipt,
    ReturnRequest, TicketLookup, TicketSummary, TrackingEvent, phone_key, same_phone,
};
pub use templates::Templates;
pub use verify::{CodeCheck, CodePolicy, PhoneCode, PhoneCodes};

/// The bundled bilingual (Chinese/English) e-commerce knowledge file: shipping, delivery,
/// tracking, returns, refunds, exchanges, sizes, invoices, payment, coupons, addresses,
/// cancellation, warranty, opening hours, with the intents that trigger shop actions.
pub const ECOMMERCE_FAQ: &str = include_str!("../data/ecommerce_faq.txt");
