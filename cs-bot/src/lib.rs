#![doc = include_str!("../README.md")]

mod bot;
mod classifier;
mod dialogue;
mod error;
mod eval;
mod faq;
mod features;
mod linear;
#[cfg(feature = "llm")]
mod llm;
mod sentiment;
mod shop;
mod slots;
mod templates;
pub mod text;

pub use bot::{Bot, BotInput, BotReply, Handoff, HandoffReason, Intent};
pub use classifier::{
    ClassifierBuilder, Example, Features, IntentClassifier, Model, Prediction, TrainProgress,
    TrainStage, parse_csv, parse_jsonl, read_examples,
};
pub use dialogue::{Action, HandoffReasonKind, IntentBot, IntentBotBuilder};
pub use error::{Error, Result};
pub use eval::{Evaluation, evaluate};
pub use faq::{FaqBot, FaqEntry, asks_for_human, parse_faq};
#[cfg(feature = "llm")]
pub use llm::{HANDOFF_MARKER, LlmBot, LlmBotBuilder, LlmConfig};
pub use sentiment::{Emotion, Polarity, Sentiment, sentiment};
pub use shop::{
    DemoShop, Order, OrderService, OrderStatus, ReturnKind, ReturnReceipt, ReturnRequest,
    TicketLookup, TicketSummary, TrackingEvent,
};
pub use templates::Templates;

/// The bundled bilingual (Chinese/English) e-commerce knowledge file: shipping, delivery,
/// tracking, returns, refunds, exchanges, sizes, invoices, payment, coupons, addresses,
/// cancellation, warranty, opening hours, with the intents that trigger shop actions.
pub const ECOMMERCE_FAQ: &str = include_str!("../data/ecommerce_faq.txt");
