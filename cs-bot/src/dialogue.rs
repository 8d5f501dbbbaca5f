//! The intent bot: a trained classifier, multi-turn dialogue state, slot filling, shop actions,
//! templates, sentiment on every message and hand-over with context.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cs_core::{CardButton, Clock, ConversationId, Priority, SystemClock};

use crate::bot::{Bot, BotInput, BotReply, Choices, Handoff, HandoffReason, Intent};
use crate::classifier::{ClassifierBuilder, Example, IntentClassifier, OUT_OF_SCOPE, Prediction};
use crate::error::{Error, Result};
use crate::faq::{FaqEntry, Knowledge, asks_for_human, parse_knowledge};
use crate::knowledge::UnansweredLog;
use crate::sentiment::{Polarity, Sentiment, sentiment};
use crate::shop::{
    Asker, Order, OrderService, OwnOrders, ReturnKind, ReturnRequest, TicketLookup, same_phone,
};
use crate::slots::{Slots, extract};
use crate::templates::Templates;
use crate::text::is_cjk;
use crate::verify::{CodeCheck, CodePolicy, PhoneCode, PhoneCodes, code_answer, mask_phone};

/// What the bot does when it recognises an intent, besides answering from the FAQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// Look the order up and tell its status (needs an order number or phone).
    OrderStatus,
    /// Show the parcel's tracking timeline (needs an order number or phone).
    Logistics,
    /// Start a return or refund (needs an order number or phone).
    StartReturn(ReturnKind),
    /// Look a ticket up by number.
    TicketStatus,
    /// Hand over to a human for this reason.
    Handoff(HandoffReasonKind),
}

/// The hand-over reasons an intent can trigger (a copyable mirror of [`HandoffReason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum HandoffReasonKind {
    /// The customer asks for a human.
    CustomerRequest,
    /// The customer complains.
    Complaint,
}

impl Action {
    fn needs_order(self) -> bool {
        matches!(
            self,
            Self::OrderStatus | Self::Logistics | Self::StartReturn(_)
        )
    }
}

/// The default intent-to-action mapping: `order_status`, `logistics`, `return`, `refund`,
/// `ticket_status`, `human`, `complaint`.
fn default_actions() -> HashMap<String, Action> {
    [
        ("order_status", Action::OrderStatus),
        ("logistics", Action::Logistics),
        ("return", Action::StartReturn(ReturnKind::Return)),
        ("refund", Action::StartReturn(ReturnKind::Refund)),
        ("ticket_status", Action::TicketStatus),
        ("human", Action::Handoff(HandoffReasonKind::CustomerRequest)),
        ("complaint", Action::Handoff(HandoffReasonKind::Complaint)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Builds an [`IntentBot`].
pub struct IntentBotBuilder {
    faq: Vec<FaqEntry>,
    examples: Vec<Example>,
    out_of_scope: Vec<String>,
    classifier: ClassifierBuilder,
    trained: Option<IntentClassifier>,
    cache: Option<std::path::PathBuf>,
    cfg: Settings,
}

/// What the builder sets and the bot uses as is.
#[derive(Debug)]
struct Settings {
    orders: Option<Arc<dyn OrderService>>,
    tickets: Option<Arc<dyn TicketLookup>>,
    /// One-time codes that prove phone numbers (made in `build` on the bot's clock unless set).
    codes: Option<Arc<PhoneCodes>>,
    code_policy: CodePolicy,
    actions: HashMap<String, Action>,
    answer_threshold: f32,
    /// `None`: the classifier's threshold, chosen from data.
    clarify_threshold: Option<f32>,
    unanswered: Option<Arc<UnansweredLog>>,
    menu_size: usize,
    #[cfg(feature = "embeddings")]
    hybrid: Option<Arc<crate::embed::HybridClassifier>>,
    max_failures: u8,
    session_ttl: Duration,
    clock: Arc<dyn Clock>,
    templates: Templates,
}

impl fmt::Debug for IntentBotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntentBotBuilder")
            .field("faq", &self.faq.len())
            .field("examples", &self.examples.len())
            .field("out_of_scope", &self.out_of_scope.len())
            .field("trained", &self.trained.is_some())
            .field("cache", &self.cache)
            .field("classifier", &self.classifier)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl Default for IntentBotBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl IntentBotBuilder {
    /// An empty builder: add FAQ entries and/or labelled examples, then [`build`](Self::build).
    pub fn new() -> Self {
        Self {
            faq: Vec::new(),
            examples: Vec::new(),
            out_of_scope: Vec::new(),
            classifier: ClassifierBuilder::new(),
            trained: None,
            cache: None,
            cfg: Settings {
                orders: None,
                tickets: None,
                codes: None,
                code_policy: CodePolicy::default(),
                actions: default_actions(),
                answer_threshold: 0.5,
                clarify_threshold: None,
                unanswered: None,
                menu_size: 5,
                #[cfg(feature = "embeddings")]
                hybrid: None,
                max_failures: 2,
                session_ttl: Duration::minutes(30),
                clock: Arc::new(SystemClock),
                templates: Templates::default(),
            },
        }
    }

    /// Adds FAQ entries: their questions train the classifier, their answers are sent.
    pub fn with_faq(mut self, entries: Vec<FaqEntry>) -> Self {
        self.faq.extend(entries);
        self
    }

    /// Adds FAQ entries and the out-of-scope section from knowledge-file text
    /// ([`parse_knowledge`]).
    ///
    /// # Errors
    /// As [`parse_faq`](crate::parse_faq).
    pub fn with_faq_text(self, text: &str) -> Result<Self> {
        Ok(self.with_knowledge(parse_knowledge(text)?))
    }

    /// Adds FAQ entries from a knowledge file.
    ///
    /// # Errors
    /// [`Error::Io`]; as [`parse_faq`](crate::parse_faq).
    pub fn with_faq_file(self, path: impl AsRef<Path>) -> Result<Self> {
        self.with_faq_text(&std::fs::read_to_string(path)?)
    }

    /// Adds labelled training lines (more ways to say the FAQ intents, or intents without an
    /// FAQ answer that map to an [`Action`]).
    pub fn with_examples(mut self, examples: Vec<Example>) -> Self {
        self.examples.extend(examples);
        self
    }

    /// The shop's order system (for order status, logistics and returns). The bot shows a
    /// customer only their own orders: it puts the service behind [`OwnOrders`], looks orders
    /// up by phone only for a number the customer proved (see [`BotInput::verified_phones`];
    /// another number gets a one-time code by SMS first), and refuses another customer's order
    /// number exactly as a missing one.
    pub fn with_orders(mut self, orders: Arc<dyn OrderService>) -> Self {
        self.cfg.orders = Some(Arc::new(OwnOrders::new(orders)));
        self
    }

    /// How one-time codes behave (expiry, attempts, sends); default [`CodePolicy::default`].
    pub fn with_code_policy(mut self, policy: CodePolicy) -> Self {
        self.cfg.code_policy = policy;
        self
    }

    /// Shares these one-time codes (e.g. with an [`crate::LlmBot`] serving the same customers).
    pub fn with_phone_codes(mut self, codes: Arc<PhoneCodes>) -> Self {
        self.cfg.codes = Some(codes);
        self
    }

    /// The ticket lookup (for ticket status).
    pub fn with_tickets(mut self, tickets: Arc<dyn TicketLookup>) -> Self {
        self.cfg.tickets = Some(tickets);
        self
    }

    /// Maps an intent to an action (replacing the default mapping for that name).
    pub fn with_action(mut self, intent: impl Into<String>, action: Action) -> Self {
        self.cfg.actions.insert(intent.into(), action);
        self
    }

    /// Confidence from which the bot acts on an intent (default 0.5); between the clarify
    /// threshold and this it asks back.
    pub fn with_answer_threshold(mut self, t: f32) -> Self {
        self.cfg.answer_threshold = t;
        self
    }

    /// Confidence below which a message is out of scope (the bot says it does not know and
    /// offers its menu or a human). By default the classifier chooses it from held-out training
    /// lines (see [`crate::Threshold::Auto`]); this fixes it.
    pub fn with_clarify_threshold(mut self, t: f32) -> Self {
        self.cfg.clarify_threshold = Some(t);
        self
    }

    /// Records the questions the bot could not answer here (for supervisors to turn into new
    /// entries: [`UnansweredLog::clusters`]).
    pub fn with_unanswered(mut self, log: Arc<UnansweredLog>) -> Self {
        self.cfg.unanswered = Some(log);
        self
    }

    /// Out-of-scope questions (a knowledge file's `Intent: oos` section): trained as a class of
    /// their own, so the bot says it does not know instead of answering the nearest entry.
    pub fn with_out_of_scope(mut self, questions: Vec<String>) -> Self {
        self.out_of_scope.extend(questions);
        self
    }

    /// FAQ entries and out-of-scope questions of a parsed knowledge file.
    pub fn with_knowledge(self, knowledge: Knowledge) -> Self {
        self.with_faq(knowledge.entries)
            .with_out_of_scope(knowledge.out_of_scope)
    }

    /// Uses this trained classifier instead of training one (a model saved with
    /// [`IntentClassifier::save_file`]); its labels must cover the FAQ intents.
    pub fn with_trained(mut self, classifier: IntentClassifier) -> Self {
        self.trained = Some(classifier);
        self
    }

    /// Loads the classifier from `path` when it was trained on the same lines with the same
    /// settings, otherwise trains and saves it there: a large knowledge file trains once, not
    /// at every start.
    pub fn with_model_cache(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.cache = Some(path.into());
        self
    }

    /// Classifies with this embedding-backed classifier (the sparse model mixed with
    /// nearest neighbours over the team's embedding server, falling back to the sparse model
    /// when the server is slow or down); its sparse model must know the same intents.
    #[cfg(feature = "embeddings")]
    pub fn with_hybrid(mut self, hybrid: Arc<crate::embed::HybridClassifier>) -> Self {
        self.cfg.hybrid = Some(hybrid);
        self
    }

    /// How many topics the bot offers when it does not know the answer (default 5).
    pub fn with_menu_size(mut self, n: usize) -> Self {
        self.cfg.menu_size = n;
        self
    }

    /// Failures in a row (not understood, invalid slot values) before handing over (default 2).
    pub fn with_max_failures(mut self, n: u8) -> Self {
        self.cfg.max_failures = n.max(1);
        self
    }

    /// How long a conversation's dialogue state lives without messages (default 30 minutes).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.cfg.session_ttl = ttl;
        self
    }

    /// The clock (tests use [`cs_core::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.cfg.clock = clock;
        self
    }

    /// The classifier settings (features, model, progress).
    pub fn with_classifier(mut self, classifier: ClassifierBuilder) -> Self {
        self.classifier = classifier;
        self
    }

    /// Replaces a reply template (see [`Templates`] for keys and `{placeholders}`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown key.
    pub fn with_template(mut self, key: &str, zh: bool, text: impl Into<String>) -> Result<Self> {
        self.cfg.templates.set(key, zh, text.into())?;
        Ok(self)
    }

    /// Trains the classifier and builds the bot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for thresholds out of order, an action intent whose service is
    /// missing, or fewer than two intents.
    pub fn build(self) -> Result<IntentBot> {
        let clarify = self.cfg.clarify_threshold.unwrap_or(0.0);
        if !(0.0 <= clarify
            && clarify <= self.cfg.answer_threshold
            && self.cfg.answer_threshold <= 1.0)
        {
            return Err(Error::InvalidInput {
                reason: "need 0 <= clarify_threshold <= answer_threshold <= 1".into(),
            });
        }
        let training = self.training_lines();
        let labels: std::collections::BTreeSet<&str> =
            training.iter().map(|e| e.label.as_str()).collect();
        for l in &labels {
            match self.cfg.actions.get(*l) {
                Some(a) if a.needs_order() && self.cfg.orders.is_none() => {
                    return Err(Error::InvalidInput {
                        reason: format!("intent {l:?} needs an OrderService (with_orders)"),
                    });
                }
                Some(Action::TicketStatus) if self.cfg.tickets.is_none() => {
                    return Err(Error::InvalidInput {
                        reason: format!("intent {l:?} needs a TicketLookup (with_tickets)"),
                    });
                }
                _ => {}
            }
        }
        let mut builder = self.classifier.clone();
        if let Some(t) = self.cfg.clarify_threshold {
            builder = builder.with_threshold(t);
        }
        let digest = training_digest(&training, &builder);
        let cached = self
            .cache
            .as_ref()
            .and_then(|p| IntentClassifier::load_file(p).ok())
            .filter(|c| c.selection().training_digest.as_deref() == Some(digest.as_str()));
        let classifier = match (self.trained, cached) {
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => {
                let mut c = builder.train(&training)?;
                c.selection.training_digest = Some(digest);
                if let Some(path) = &self.cache {
                    c.save_file(path)?;
                }
                c
            }
        };
        if let Some(missing) = labels
            .iter()
            .find(|l| !classifier.labels().iter().any(|k| k == *l))
        {
            return Err(Error::InvalidInput {
                reason: format!("the trained classifier does not know intent {missing:?}"),
            });
        }
        #[cfg(feature = "embeddings")]
        if let Some(h) = &self.cfg.hybrid
            && h.sparse().labels() != classifier.labels()
        {
            return Err(Error::InvalidInput {
                reason: "the hybrid classifier knows other intents than the bot".into(),
            });
        }
        let faq_order: Vec<String> = self
            .faq
            .iter()
            .filter(|e| {
                !matches!(self.cfg.actions.get(&e.intent), Some(Action::Handoff(_)))
                    && !SOCIAL.contains(&e.intent.as_str())
            })
            .map(|e| e.intent.clone())
            .collect();
        let faq = self
            .faq
            .into_iter()
            .map(|e| (e.intent.clone(), e))
            .collect();
        let codes = self.cfg.codes.clone().unwrap_or_else(|| {
            Arc::new(
                PhoneCodes::new()
                    .with_policy(self.cfg.code_policy)
                    .with_clock(self.cfg.clock.clone()),
            )
        });
        Ok(IntentBot {
            classifier,
            faq,
            faq_order,
            codes,
            cfg: self.cfg,
            sessions: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The labelled lines the classifier trains on: FAQ questions, extra examples, and the
    /// out-of-scope questions under [`OUT_OF_SCOPE`].
    pub fn training_lines(&self) -> Vec<Example> {
        let mut training: Vec<Example> = self
            .faq
            .iter()
            .flat_map(|e| e.questions.iter().map(|q| Example::new(q, &e.intent)))
            .collect();
        training.extend(self.examples.iter().cloned());
        training.extend(
            self.out_of_scope
                .iter()
                .map(|q| Example::new(q, OUT_OF_SCOPE)),
        );
        training
    }
}

/// A fingerprint of the training lines and the classifier settings (FNV-1a, hex), so a saved
/// model is reused only for the same knowledge.
fn training_digest(lines: &[Example], builder: &ClassifierBuilder) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&crate::MODEL_FORMAT_VERSION.to_le_bytes());
    eat(format!("{builder:?}").as_bytes());
    for e in lines {
        eat(e.label.as_bytes());
        eat(&[0]);
        eat(e.text.as_bytes());
        eat(&[1]);
    }
    format!("{h:016x}")
}

/// What the bot waits for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Pending {
    /// An order number (or phone) to run this action; orders found by phone to pick from.
    Order {
        intent: String,
        action: Action,
        choices: Vec<String>,
    },
    /// A ticket number.
    Ticket { intent: String },
    /// The customer's pick among these intents.
    Clarify { candidates: Vec<String> },
}

/// One conversation's dialogue (stored as JSON with the conversation when several processes
/// share the desk).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    pending: Option<Pending>,
    slots: Slots,
    intent: Option<Intent>,
    failures: u8,
    transcript: Vec<String>,
    sentiment: Sentiment,
    zh: bool,
    seen_at: DateTime<Utc>,
    /// The bot has acknowledged the customer's frustration once in this session.
    soothed: bool,
}

impl Session {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            pending: None,
            slots: Slots::default(),
            intent: None,
            failures: 0,
            transcript: Vec::new(),
            sentiment: Sentiment::default(),
            zh: false,
            seen_at: now,
            soothed: false,
        }
    }
}

/// A bilingual intent bot with dialogue: answers FAQ intents, asks back when unsure or when the
/// message is vague, collects the order number (or phone) with validation, calls the shop, and
/// hands over with intent, slots, sentiment and a summary.
///
/// See the crate documentation for an example.
pub struct IntentBot {
    classifier: IntentClassifier,
    faq: HashMap<String, FaqEntry>,
    /// Intents of the FAQ entries in knowledge-file order (the menu).
    faq_order: Vec<String>,
    codes: Arc<PhoneCodes>,
    cfg: Settings,
    sessions: Arc<Mutex<HashMap<ConversationId, Session>>>,
}

impl fmt::Debug for IntentBot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntentBot")
            .field("intents", &self.classifier.labels().len())
            .field("faq", &self.faq.len())
            .field("answer_threshold", &self.cfg.answer_threshold)
            .field("threshold", &self.classifier.threshold())
            .finish_non_exhaustive()
    }
}

/// Intents that are small talk, not topics to offer in the menu.
const SOCIAL: &[&str] = &["greeting", "thanks", "goodbye", "bye", "chitchat"];

/// Short messages that say something is wrong without saying what.
const VAGUE_EN: &[&str] = &[
    "doesnt work",
    "not working",
    "dont work",
    "broken",
    "problem",
    "issue",
    "help",
    "wrong",
    "question",
    "something",
];
const VAGUE_ZH: &[&str] = &[
    "有问题",
    "不行",
    "坏了",
    "用不了",
    "怎么回事",
    "出问题",
    "不好用",
    "在吗",
    "咨询",
    "问一下",
    "帮帮我",
    "有个问题",
];

/// Whether the message is too vague to act on, whatever the classifier says.
pub(crate) fn is_vague(text: &str) -> bool {
    let lower: String = text
        .to_lowercase()
        .chars()
        .filter(|c| *c != '\'' && *c != '\u{2019}')
        .collect();
    let cjk = lower.chars().filter(|c| is_cjk(*c)).count();
    let words = lower
        .split(|c: char| !c.is_alphanumeric() || is_cjk(c))
        .filter(|w| !w.is_empty())
        .count();
    if cjk > 0 {
        cjk <= 8 && VAGUE_ZH.iter().any(|p| lower.contains(p))
    } else {
        words <= 5 && VAGUE_EN.iter().any(|p| lower.contains(p))
    }
}

impl IntentBot {
    /// A builder.
    pub fn builder() -> IntentBotBuilder {
        IntentBotBuilder::new()
    }

    /// The trained classifier.
    pub fn classifier(&self) -> &IntentClassifier {
        &self.classifier
    }

    fn take_session(&self, conv: ConversationId, now: DateTime<Utc>) -> Session {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.cfg.session_ttl;
        if map.len() > 1024 {
            map.retain(|_, s| now - s.seen_at < ttl);
        }
        match map.remove(&conv) {
            Some(s) if now - s.seen_at < ttl => s,
            _ => Session::new(now),
        }
    }

    fn put_session(&self, conv: ConversationId, s: Session) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conv, s);
    }

    /// Serves the conversations of `other` (dialogue state carries over a model swap).
    pub(crate) fn share_sessions(&mut self, other: &IntentBot) {
        self.sessions = other.sessions.clone();
        self.codes = other.codes.clone();
    }

    /// The one-time codes that prove customers' phone numbers.
    pub fn phone_codes(&self) -> &Arc<PhoneCodes> {
        &self.codes
    }

    /// Who asks: the customer, with the phones they proved (from the engine, or with a code in
    /// this bot).
    fn asker(&self, input: &BotInput) -> Asker {
        let mut asker = Asker::new(input.tenant.clone(), input.customer);
        for p in input
            .verified_phones
            .iter()
            .cloned()
            .chain(self.codes.proven(&input.tenant, input.customer))
        {
            asker = asker.with_verified_phone(p);
        }
        asker
    }

    /// Forgets a conversation's dialogue state (after a hand-over or when it closes).
    pub fn forget(&self, conversation: ConversationId) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conversation);
    }

    fn title(&self, intent: &str, zh: bool) -> String {
        self.faq
            .get(intent)
            .and_then(|e| {
                e.questions
                    .iter()
                    .find(|q| q.chars().any(is_cjk) == zh)
                    .or(e.questions.first())
            })
            .cloned()
            .unwrap_or_else(|| intent.replace('_', " "))
    }

    fn answer(&self, intent: &str, zh: bool) -> Option<String> {
        let e = self.faq.get(intent)?;
        if zh {
            e.answer_zh.clone().or_else(|| e.answer_en.clone())
        } else {
            e.answer_en.clone().or_else(|| e.answer_zh.clone())
        }
    }

    fn handoff(
        &self,
        s: &Session,
        reason: HandoffReason,
        message_key: &str,
        input: &BotInput,
    ) -> BotReply {
        let priority = match reason {
            HandoffReason::Complaint => Priority::High,
            _ => Priority::Normal,
        }
        .max(s.sentiment.priority());
        let skills = s
            .intent
            .as_ref()
            .and_then(|i| self.faq.get(&i.name))
            .map(|e| e.skills.clone())
            .unwrap_or_default();
        // The intent, slots and sentiment travel as fields ([`Handoff::note`] renders them).
        let summary = format!("Customer wrote: {}", s.transcript.join(" / "));
        BotReply {
            messages: vec![self.cfg.templates.render(message_key, s.zh, &[])],
            intent: s.intent.clone(),
            handoff: Some(Handoff {
                reason,
                summary,
                skills,
                priority,
                intent: s.intent.clone(),
                slots: s.slots.to_map(),
                sentiment: Some(s.sentiment),
            }),
            sentiment: Some(sentiment(&input.text)),
            ..BotReply::default()
        }
    }

    fn reply(&self, s: &Session, messages: Vec<String>, input: &BotInput) -> BotReply {
        BotReply {
            messages,
            intent: s.intent.clone(),
            handoff: None,
            sentiment: Some(sentiment(&input.text)),
            ..BotReply::default()
        }
    }

    async fn run(&self, s: &mut Session, input: &BotInput) -> Result<BotReply> {
        let text = input.text.trim();
        let now_sent = sentiment(text);
        // Keep the worst recent mood: one calm line does not undo an angry one.
        s.sentiment = if now_sent.score < s.sentiment.score * 0.8 || s.transcript.is_empty() {
            now_sent
        } else {
            s.sentiment
        };
        if text.chars().any(is_cjk) {
            s.zh = true;
        } else if text.chars().filter(|c| c.is_ascii_alphabetic()).count() >= 3 {
            s.zh = false;
        }
        // An answer to a one-time code: checked before anything else reads it (six digits would
        // pass for an order number), and kept out of the transcript agents read.
        if let Some(code) = code_answer(text)
            && self.codes.awaiting(&input.tenant, input.customer)
            && let Some(reply) = self.check_code(s, &code, input).await?
        {
            return Ok(reply);
        }
        s.transcript.push(text.chars().take(120).collect());
        if s.transcript.len() > 6 {
            s.transcript.remove(0);
        }
        let found = extract(text);
        s.slots.merge(&found);

        if asks_for_human(text) {
            return Ok(self.handoff(s, HandoffReason::CustomerRequest, "handoff_request", input));
        }
        #[cfg(feature = "embeddings")]
        let prediction = match &self.cfg.hybrid {
            Some(h) => h.predict(text).await.prediction,
            None => self.classifier.predict(text),
        };
        #[cfg(not(feature = "embeddings"))]
        let prediction = self.classifier.predict(text);
        let confident = prediction.in_scope
            && prediction.confidence >= self.cfg.answer_threshold
            && !is_vague(text);
        if now_sent.is_upset() {
            // An angry complaint is a complaint (the complaints team, urgent priority).
            if confident
                && self.cfg.actions.get(&prediction.label)
                    == Some(&Action::Handoff(HandoffReasonKind::Complaint))
            {
                return self
                    .handle_intent(s, &prediction.label, prediction.confidence, input)
                    .await;
            }
            return Ok(self.handoff(s, HandoffReason::NegativeSentiment, "handoff_upset", input));
        }

        match s.pending.take() {
            Some(Pending::Order {
                intent,
                action,
                choices,
            }) => {
                if let Some(id) = pick_choice(text, &choices).or_else(|| found.order_id.clone()) {
                    s.slots.set("order_id", &id);
                    return self.act_on_order(s, &intent, action, &id, input).await;
                }
                if let Some(phone) = &found.phone {
                    return self.by_phone(s, &intent, action, phone, input).await;
                }
                // A number that is not a valid order number is a failed attempt; a message
                // without digits may change the subject, otherwise the bot asks again.
                let attempted = text.chars().any(|c| c.is_ascii_digit());
                if attempted || !(confident && prediction.label != intent) {
                    let key = if attempted {
                        "order_invalid"
                    } else {
                        "ask_order"
                    };
                    return Ok(self.fail(
                        s,
                        Pending::Order {
                            intent,
                            action,
                            choices,
                        },
                        key,
                        input,
                    ));
                }
            }
            Some(Pending::Ticket { intent }) => {
                if let Some(n) = found.ticket.or_else(|| bare_number(text)) {
                    return self.ticket(s, n, input).await;
                }
                if !(confident && prediction.label != intent) {
                    return Ok(self.fail(s, Pending::Ticket { intent }, "ticket_invalid", input));
                }
            }
            Some(Pending::Clarify { candidates }) => {
                // A number, the intent's name, or an option's title (what a quick-reply button
                // sends).
                let picked = pick_choice(text, &candidates)
                    .or_else(|| {
                        candidates
                            .iter()
                            .find(|c| self.title(c, true) == text || self.title(c, false) == text)
                            .cloned()
                    })
                    .or_else(|| {
                        (confident || prediction.in_scope)
                            .then(|| prediction.label.clone())
                            .filter(|l| candidates.contains(l) || confident)
                    });
                return Ok(match picked {
                    Some(intent) => {
                        let conf = if candidates.contains(&intent) {
                            prediction.confidence.max(self.cfg.answer_threshold)
                        } else {
                            prediction.confidence
                        };
                        self.handle_intent(s, &intent, conf, input).await?
                    }
                    // Still unclear after asking back: a human takes it from here.
                    None => self.handoff(s, HandoffReason::NoAnswer, "handoff_failure", input),
                });
            }
            None => {}
        }

        if confident {
            return self
                .handle_intent(s, &prediction.label, prediction.confidence, input)
                .await;
        }
        if let Some(log) = &self.cfg.unanswered {
            // Not answered at once, whether the bot asks back or does not know: supervisors
            // see it on the knowledge page.
            log.record(&input.tenant, text, self.cfg.clock.now());
        }
        if (prediction.in_scope || is_vague(text))
            && let Some(reply) = self.clarify(s, &prediction, input)
        {
            return Ok(reply);
        }
        Ok(self.out_of_scope(s, input))
    }

    /// An unhappy customer (a negative message) the bot goes on helping hears an
    /// acknowledgement first, in their language, once per session: the answer, question or
    /// menu follows as before. A hand-over carries its own apology.
    fn soothe(&self, s: &mut Session, reply: &mut BotReply, input: &BotInput) {
        if s.soothed || reply.handoff.is_some() || reply.messages.is_empty() {
            return;
        }
        if sentiment(&input.text).polarity != Polarity::Negative {
            return;
        }
        s.soothed = true;
        let line = self.cfg.templates.render("empathy", s.zh, &[]);
        reply.messages.insert(0, line);
    }

    /// Out of scope: say so and offer the menu or a human, never the nearest entry.
    fn out_of_scope(&self, s: &mut Session, input: &BotInput) -> BotReply {
        s.failures += 1;
        if s.failures >= self.cfg.max_failures {
            return self.handoff(s, HandoffReason::RepeatedFailure, "handoff_failure", input);
        }
        let menu = self.menu(s.zh);
        self.reply(
            s,
            vec![
                self.cfg
                    .templates
                    .render("out_of_scope", s.zh, &[("menu", &menu)]),
            ],
            input,
        )
    }

    /// The topics offered when the bot does not know: the first FAQ entries of the knowledge
    /// file, one per line.
    fn menu(&self, zh: bool) -> String {
        let mut intents: Vec<&String> = self.faq_order.iter().collect();
        intents.truncate(self.cfg.menu_size);
        intents
            .iter()
            .map(|i| format!("- {}", self.title(i, zh)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn fail(&self, s: &mut Session, pending: Pending, key: &str, input: &BotInput) -> BotReply {
        s.failures += 1;
        if s.failures >= self.cfg.max_failures {
            return self.handoff(s, HandoffReason::RepeatedFailure, "handoff_failure", input);
        }
        s.pending = Some(pending);
        self.reply(s, vec![self.cfg.templates.render(key, s.zh, &[])], input)
    }

    /// Asks which of the likely intents the customer means; `None` when there is none to offer
    /// (the out-of-scope class is never one: it is no topic).
    fn clarify(&self, s: &mut Session, p: &Prediction, input: &BotInput) -> Option<BotReply> {
        let candidates: Vec<String> = p
            .top
            .iter()
            .filter(|(l, prob)| *prob >= 0.05 && l != OUT_OF_SCOPE)
            .map(|(l, _)| l.clone())
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let titles: Vec<String> = candidates.iter().map(|l| self.title(l, s.zh)).collect();
        let options: Vec<String> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}. {t}", i + 1))
            .collect();
        let templates = &self.cfg.templates;
        let msg = templates.render("clarify", s.zh, &[("options", &options.join("\n"))]);
        // The question alone, for buttons: only when the template ends with the options (a
        // reworded template with text after them stays a plain numbered list everywhere).
        const MARK: &str = "\u{1}";
        let prompt = templates
            .render("clarify", s.zh, &[("options", MARK)])
            .strip_suffix(MARK)
            .map(|p| p.trim_end().to_owned());
        s.pending = Some(Pending::Clarify { candidates });
        let mut reply = self.reply(s, vec![msg.clone()], input);
        reply.choices = prompt.map(|prompt| Choices {
            text: msg,
            prompt,
            options: titles
                .into_iter()
                .map(|t| CardButton {
                    label: t.clone(),
                    value: t,
                })
                .collect(),
        });
        Some(reply)
    }

    async fn handle_intent(
        &self,
        s: &mut Session,
        intent: &str,
        confidence: f32,
        input: &BotInput,
    ) -> Result<BotReply> {
        s.failures = 0;
        s.intent = Some(Intent {
            name: intent.to_owned(),
            confidence,
        });
        let answer = self.answer(intent, s.zh);
        match self.cfg.actions.get(intent).copied() {
            Some(Action::Handoff(kind)) => {
                let (reason, key) = match kind {
                    HandoffReasonKind::CustomerRequest => {
                        (HandoffReason::CustomerRequest, "handoff_request")
                    }
                    HandoffReasonKind::Complaint => (HandoffReason::Complaint, "handoff_complaint"),
                };
                Ok(self.handoff(s, reason, key, input))
            }
            Some(action) if action.needs_order() => {
                if let Some(id) = s.slots.get("order_id").map(str::to_owned) {
                    return self.act_on_order(s, intent, action, &id, input).await;
                }
                if let Some(phone) = s.slots.get("phone").map(str::to_owned) {
                    return self.by_phone(s, intent, action, &phone, input).await;
                }
                let asker = self.asker(input);
                if !asker.verified_phones.is_empty() {
                    // A customer who proved a phone gets their orders without being asked.
                    return self.own_orders(s, intent, action, &asker, input).await;
                }
                s.pending = Some(Pending::Order {
                    intent: intent.to_owned(),
                    action,
                    choices: Vec::new(),
                });
                let mut msgs: Vec<String> = answer.into_iter().collect();
                msgs.push(self.cfg.templates.render("ask_order", s.zh, &[]));
                Ok(self.reply(s, msgs, input))
            }
            Some(Action::TicketStatus) => {
                if let Some(n) = s.slots.get("ticket").and_then(|t| t.parse().ok()) {
                    return self.ticket(s, n, input).await;
                }
                s.pending = Some(Pending::Ticket {
                    intent: intent.to_owned(),
                });
                Ok(self.reply(
                    s,
                    vec![self.cfg.templates.render("ask_ticket", s.zh, &[])],
                    input,
                ))
            }
            _ => match answer {
                Some(a) => Ok(self.reply(s, vec![a], input)),
                None => Ok(self.handoff(s, HandoffReason::NoAnswer, "handoff_failure", input)),
            },
        }
    }

    /// Orders placed with `phone`: at once when the customer proved the number, otherwise after
    /// a one-time code texted to it.
    async fn by_phone(
        &self,
        s: &mut Session,
        intent: &str,
        action: Action,
        phone: &str,
        input: &BotInput,
    ) -> Result<BotReply> {
        let Some(orders) = &self.cfg.orders else {
            return Ok(self.handoff(s, HandoffReason::NoAnswer, "handoff_failure", input));
        };
        let asker = self.asker(input);
        if !asker.has_phone(phone) {
            return Ok(self.send_code(s, intent, action, phone, input));
        }
        let found = orders.orders_by_phone(&asker, phone).await?;
        self.offer_orders(s, intent, action, found, "phone_no_orders", input)
            .await
    }

    /// The orders placed with every phone the customer proved, newest first.
    async fn own_orders(
        &self,
        s: &mut Session,
        intent: &str,
        action: Action,
        asker: &Asker,
        input: &BotInput,
    ) -> Result<BotReply> {
        let Some(orders) = &self.cfg.orders else {
            return Ok(self.handoff(s, HandoffReason::NoAnswer, "handoff_failure", input));
        };
        let mut found: Vec<Order> = Vec::new();
        for phone in &asker.verified_phones {
            for o in orders.orders_by_phone(asker, phone).await? {
                if !found.iter().any(|f| f.id == o.id) {
                    found.push(o);
                }
            }
        }
        found.sort_by_key(|o| std::cmp::Reverse(o.placed_at));
        self.offer_orders(s, intent, action, found, "own_no_orders", input)
            .await
    }

    /// Acts on the one order found, or lists several to pick from.
    async fn offer_orders(
        &self,
        s: &mut Session,
        intent: &str,
        action: Action,
        found: Vec<Order>,
        none_key: &str,
        input: &BotInput,
    ) -> Result<BotReply> {
        match found.as_slice() {
            [] => Ok(self.fail(
                s,
                Pending::Order {
                    intent: intent.to_owned(),
                    action,
                    choices: Vec::new(),
                },
                none_key,
                input,
            )),
            [one] => {
                let id = one.id.clone();
                s.slots.set("order_id", &id);
                self.act_on_order(s, intent, action, &id, input).await
            }
            many => {
                let choices: Vec<String> = many.iter().take(5).map(|o| o.id.clone()).collect();
                let list: Vec<String> = many
                    .iter()
                    .take(5)
                    .enumerate()
                    .map(|(i, o)| {
                        format!(
                            "{}. {} {} ({})",
                            i + 1,
                            o.id,
                            o.items.join(", "),
                            o.status.label(s.zh)
                        )
                    })
                    .collect();
                s.pending = Some(Pending::Order {
                    intent: intent.to_owned(),
                    action,
                    choices,
                });
                Ok(self.reply(
                    s,
                    vec![self.cfg.templates.render(
                        "choose_order",
                        s.zh,
                        &[("orders", &list.join("\n"))],
                    )],
                    input,
                ))
            }
        }
    }

    /// Texts a one-time code to `phone` (through the engine's SMS channel) and waits for it;
    /// the order action runs once the code comes back.
    fn send_code(
        &self,
        s: &mut Session,
        intent: &str,
        action: Action,
        phone: &str,
        input: &BotInput,
    ) -> BotReply {
        s.pending = Some(Pending::Order {
            intent: intent.to_owned(),
            action,
            choices: Vec::new(),
        });
        let minutes = self.codes.policy().ttl.num_minutes().max(1).to_string();
        let masked = mask_phone(phone);
        let vars = [("phone", masked.as_str()), ("minutes", minutes.as_str())];
        let outstanding = self
            .codes
            .pending(&input.tenant, input.customer)
            .is_some_and(|p| same_phone(&p, phone));
        if outstanding {
            // A code to this number is still good: no second text.
            let msg = self.cfg.templates.render("code_sent", s.zh, &vars);
            return self.reply(s, vec![msg], input);
        }
        match self.codes.issue(&input.tenant, input.customer, phone) {
            Some(code) => {
                let msg = self.cfg.templates.render("code_sent", s.zh, &vars);
                let mut reply = self.reply(s, vec![msg], input);
                reply.phone_code = Some(PhoneCode {
                    phone: phone.to_owned(),
                    text: self.cfg.templates.render(
                        "code_sms",
                        s.zh,
                        &[("code", code.as_str()), ("minutes", minutes.as_str())],
                    ),
                });
                reply
            }
            None => {
                let msg = self.cfg.templates.render("code_limit", s.zh, &[]);
                self.reply(s, vec![msg], input)
            }
        }
    }

    /// The customer's answer to a one-time code; `None` when no code is out after all.
    async fn check_code(
        &self,
        s: &mut Session,
        code: &str,
        input: &BotInput,
    ) -> Result<Option<BotReply>> {
        let zh = s.zh;
        let render = |key: &str, vars: &[(&str, &str)]| self.cfg.templates.render(key, zh, vars);
        let reply = match self.codes.check(&input.tenant, input.customer, code) {
            CodeCheck::Verified { phone } => {
                s.failures = 0;
                let verified = render("phone_verified", &[("phone", &mask_phone(&phone))]);
                let mut reply = match s.pending.take() {
                    Some(Pending::Order { intent, action, .. }) => {
                        self.by_phone(s, &intent, action, &phone, input).await?
                    }
                    other => {
                        s.pending = other;
                        self.reply(s, Vec::new(), input)
                    }
                };
                reply.messages.insert(0, verified);
                reply.verified_phones.push(phone);
                reply
            }
            CodeCheck::Wrong { attempts_left } => {
                let left = attempts_left.to_string();
                self.reply(s, vec![render("code_wrong", &[("attempts", &left)])], input)
            }
            CodeCheck::TooManyAttempts => self.reply(s, vec![render("code_locked", &[])], input),
            CodeCheck::Expired => self.reply(s, vec![render("code_expired", &[])], input),
            CodeCheck::NoCode => return Ok(None),
        };
        Ok(Some(reply))
    }

    async fn act_on_order(
        &self,
        s: &mut Session,
        intent: &str,
        action: Action,
        id: &str,
        input: &BotInput,
    ) -> Result<BotReply> {
        let Some(orders) = &self.cfg.orders else {
            return Ok(self.handoff(s, HandoffReason::NoAnswer, "handoff_failure", input));
        };
        let asker = self.asker(input);
        // Another customer's order looks exactly like a missing one.
        let Some(order) = orders.order(&asker, id).await? else {
            return Ok(self.not_yours(s, intent, action, &asker, input));
        };
        let zh = s.zh;
        let total = format!(
            "{}.{:02} {}",
            order.total_minor / 100,
            order.total_minor % 100,
            order.currency
        );
        let status = order.status.label(zh);
        let items = order.items.join(", ");
        let base = [
            ("order_id", order.id.as_str()),
            ("status", status),
            ("items", items.as_str()),
            ("total", total.as_str()),
        ];
        let msg = match action {
            Action::OrderStatus => self.cfg.templates.render("order_status", zh, &base),
            Action::Logistics => {
                let events = orders.logistics(&asker, &order.id).await?;
                if events.is_empty() {
                    self.cfg.templates.render("logistics_empty", zh, &base)
                } else {
                    let timeline: Vec<String> = events
                        .iter()
                        .map(|e| {
                            format!(
                                "{} {} {}",
                                e.at.format("%m-%d %H:%M"),
                                e.location,
                                e.description
                            )
                        })
                        .collect();
                    let carrier = format!(
                        "{} {}",
                        order.carrier.as_deref().unwrap_or(""),
                        order.tracking_number.as_deref().unwrap_or("")
                    );
                    let mut vars = base.to_vec();
                    vars.push(("carrier", carrier.trim()));
                    let timeline = timeline.join("\n");
                    vars.push(("timeline", &timeline));
                    self.cfg.templates.render("logistics", zh, &vars)
                }
            }
            Action::StartReturn(kind) => {
                let request = ReturnRequest {
                    order_id: order.id.clone(),
                    kind,
                    reason: s.transcript.join(" / "),
                };
                match orders.start_return(&asker, &request).await {
                    Ok(receipt) => {
                        s.slots.set("return_id", &receipt.id);
                        let mut vars = base.to_vec();
                        vars.push(("return_id", &receipt.id));
                        self.cfg.templates.render("return_started", zh, &vars)
                    }
                    Err(Error::InvalidInput { .. }) => {
                        self.cfg.templates.render("return_refused", zh, &base)
                    }
                    Err(Error::NotFound { .. }) => {
                        return Ok(self.not_yours(s, intent, action, &asker, input));
                    }
                    Err(e) => return Err(e),
                }
            }
            Action::TicketStatus | Action::Handoff(_) => {
                self.cfg.templates.render("order_status", zh, &base)
            }
        };
        Ok(self.reply(s, vec![msg], input))
    }

    /// The refusal for an order number that is missing or another customer's (the same words
    /// for both): a customer who proved no phone yet is told how to.
    fn not_yours(
        &self,
        s: &mut Session,
        intent: &str,
        action: Action,
        asker: &Asker,
        input: &BotInput,
    ) -> BotReply {
        s.slots.remove("order_id");
        let key = if asker.verified_phones.is_empty() {
            "order_verify"
        } else {
            "order_not_found"
        };
        self.fail(
            s,
            Pending::Order {
                intent: intent.to_owned(),
                action,
                choices: Vec::new(),
            },
            key,
            input,
        )
    }

    async fn ticket(&self, s: &mut Session, number: u64, input: &BotInput) -> Result<BotReply> {
        let Some(tickets) = &self.cfg.tickets else {
            return Ok(self.handoff(s, HandoffReason::NoAnswer, "handoff_failure", input));
        };
        s.slots.set("ticket", &number.to_string());
        match tickets
            .ticket(&input.tenant, number, input.customer)
            .await?
        {
            Some(t) => {
                let n = t.number.to_string();
                let updated = t.updated_at.format("%Y-%m-%d %H:%M").to_string();
                let msg = self.cfg.templates.render(
                    "ticket_status",
                    s.zh,
                    &[
                        ("ticket", &n),
                        ("subject", &t.subject),
                        ("status", &t.status),
                        ("updated", &updated),
                    ],
                );
                Ok(self.reply(s, vec![msg], input))
            }
            None => {
                s.slots.remove("ticket");
                let intent = s
                    .intent
                    .as_ref()
                    .map_or_else(|| "ticket_status".to_owned(), |i| i.name.clone());
                Ok(self.fail(s, Pending::Ticket { intent }, "ticket_not_found", input))
            }
        }
    }
}

/// "1", "2"... picks from a numbered list; so does quoting one of the choices.
fn pick_choice(text: &str, choices: &[String]) -> Option<String> {
    let t = text.trim().trim_end_matches(['.', '。', ')', '）']);
    if let Ok(n) = t.parse::<usize>()
        && (1..=choices.len()).contains(&n)
    {
        return Some(choices[n - 1].clone());
    }
    if choices.len() == 1 && YES.contains(&t.to_lowercase().as_str()) {
        return Some(choices[0].clone());
    }
    choices.iter().find(|c| t == c.as_str()).cloned()
}

/// Answers that accept a single offered option.
const YES: &[&str] = &[
    "yes", "yeah", "yep", "y", "ok", "okay", "sure", "right", "是", "是的", "对", "对的", "嗯",
    "好", "好的",
];

fn bare_number(text: &str) -> Option<u64> {
    let t = text.trim().trim_start_matches('#');
    t.parse().ok()
}

#[async_trait]
impl Bot for IntentBot {
    /// Only the new message: the dialogue keeps its own state per conversation.
    fn history_len(&self) -> usize {
        1
    }

    fn dialogue_state(&self, conversation: ConversationId) -> Option<serde_json::Value> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_value(sessions.get(&conversation)?).ok()
    }

    fn restore_dialogue_state(
        &self,
        conversation: ConversationId,
        state: Option<serde_json::Value>,
    ) {
        match state.map(serde_json::from_value::<Session>) {
            Some(Ok(session)) => self.put_session(conversation, session),
            // Written by another version of the bot: what this process holds stands.
            Some(Err(_)) => {}
            None => self.forget(conversation),
        }
    }

    async fn reply(&self, input: &BotInput) -> Result<BotReply> {
        let now = self.cfg.clock.now();
        let mut s = self.take_session(input.conversation, now);
        s.seen_at = now;
        let mut result = self.run(&mut s, input).await;
        if let Ok(r) = &mut result {
            self.soothe(&mut s, r, input);
        }
        match &result {
            Ok(r) if r.handoff.is_some() => {} // a human owns it now; start afresh afterwards
            _ => self.put_session(input.conversation, s),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cs_core::{Content, CustomerId, TenantId};

    const KNOWLEDGE: &str = "Intent: payment\nQ: what payment methods do you accept\nQ: can I pay with a credit card\nA: Alipay and cards.\n\nIntent: shipping\nQ: when will my order ship\nQ: how long does delivery take\nA: Within 48 hours.\n\nIntent: oos\nQ: tell me a joke\nQ: what's the weather like today\n";

    fn bot(log: Arc<UnansweredLog>) -> IntentBot {
        IntentBot::builder()
            .with_faq_text(KNOWLEDGE)
            .unwrap()
            .with_unanswered(log)
            .build()
            .unwrap()
    }

    fn input(text: &str) -> BotInput {
        BotInput {
            tenant: TenantId::default(),
            conversation: ConversationId::new(),
            customer: CustomerId::new(),
            text: text.into(),
            history: vec![],
            verified_phones: vec![],
        }
    }

    /// Issue 20: the clarification menu never offers the internal out-of-scope label, and a
    /// question with nothing else to offer is out of scope.
    #[test]
    fn the_clarification_menu_never_offers_out_of_scope() {
        let bot = bot(Arc::new(UnansweredLog::new(16)));
        let mut s = Session::new(Utc::now());
        let p = Prediction {
            label: OUT_OF_SCOPE.into(),
            confidence: 0.6,
            in_scope: false,
            top: vec![
                (OUT_OF_SCOPE.into(), 0.6),
                ("payment".into(), 0.3),
                ("shipping".into(), 0.1),
            ],
        };
        let r = bot
            .clarify(&mut s, &p, &input("cards?"))
            .expect("two topics");
        assert!(!r.messages[0].contains(OUT_OF_SCOPE), "{r:?}");
        assert_eq!(
            s.pending,
            Some(Pending::Clarify {
                candidates: vec!["payment".into(), "shipping".into()]
            })
        );
        let only_oos = Prediction {
            top: vec![(OUT_OF_SCOPE.into(), 0.98), ("payment".into(), 0.01)],
            ..p
        };
        assert!(bot.clarify(&mut s, &only_oos, &input("cards?")).is_none());
    }

    /// Issue 16: a clarifying question carries its options as quick replies (the prompt alone
    /// plus one button per topic, sending the topic's title), its text still holds the
    /// numbered list for text-only channels, and tapping a button answers that topic.
    #[tokio::test]
    async fn a_clarifying_question_offers_its_options_as_quick_replies() {
        let bot = bot(Arc::new(UnansweredLog::new(16)));
        let mut first = input("it doesn't work");
        let asked = Bot::reply(&bot, &first).await.unwrap();
        let choices = asked.choices.clone().expect("quick replies");
        assert_eq!(choices.text, asked.messages[0]);
        assert_eq!(
            choices.prompt,
            "Which of these do you mean? Reply with the number:"
        );
        assert!(choices.options.len() >= 2, "{choices:?}");
        for (i, o) in choices.options.iter().enumerate() {
            assert_eq!(o.label, o.value);
            assert!(
                asked.messages[0].contains(&format!("{}. {}", i + 1, o.label)),
                "the text keeps the numbered list: {asked:?}"
            );
        }
        match asked.contents().as_slice() {
            [Content::RichCard(card)] => {
                assert_eq!(card.title, choices.prompt);
                assert_eq!(card.buttons, choices.options);
            }
            other => panic!("one card expected, got {other:?}"),
        }
        let shipping = choices
            .options
            .iter()
            .find(|o| o.value == "when will my order ship")
            .expect("shipping offered");
        first.text = shipping.value.clone();
        let answered = Bot::reply(&bot, &first).await.unwrap();
        assert_eq!(answered.messages, vec!["Within 48 hours.".to_owned()]);
        assert!(answered.choices.is_none());
        assert_eq!(
            answered.contents(),
            vec![Content::text("Within 48 hours.")],
            "plain answers stay text"
        );
    }

    /// Issue 16: "这东西不好用" (negative) is answered with an acknowledgement first, in
    /// Chinese, then the clarifying question with its buttons; a second unhappy message gets
    /// no second apology; a calm customer gets none.
    #[tokio::test]
    async fn an_unhappy_customer_hears_an_acknowledgement_once() {
        let bot = bot(Arc::new(UnansweredLog::new(16)));
        let mut i = input("这东西不好用");
        assert_eq!(sentiment(&i.text).polarity, Polarity::Negative);
        let r = Bot::reply(&bot, &i).await.unwrap();
        assert!(r.handoff.is_none(), "{r:?}");
        assert_eq!(
            r.messages[0], "很抱歉给您带来不好的体验，我来帮您看看。",
            "{r:?}"
        );
        assert!(r.messages.len() >= 2, "the help follows: {r:?}");
        if r.choices.is_some() {
            assert!(
                matches!(
                    r.contents().as_slice(),
                    [Content::Text { .. }, Content::RichCard(_)]
                ),
                "{r:?}"
            );
        }
        i.text = "还是不好用".into();
        let again = Bot::reply(&bot, &i).await.unwrap();
        assert!(
            again.messages.iter().all(|m| !m.contains("很抱歉给您带来")),
            "{again:?}"
        );
        let calm = Bot::reply(&bot, &input("when will my order ship"))
            .await
            .unwrap();
        assert_eq!(calm.messages, vec!["Within 48 hours.".to_owned()]);
    }

    /// A screened-out question takes its buttons with it: no card without its message.
    #[test]
    fn choices_without_their_message_send_no_card() {
        let reply = BotReply {
            messages: vec!["Hello".into()],
            choices: Some(Choices {
                text: "Which one?\n1. A".into(),
                prompt: "Which one?".into(),
                options: vec![CardButton {
                    label: "A".into(),
                    value: "A".into(),
                }],
            }),
            ..BotReply::default()
        };
        assert_eq!(reply.contents(), vec![Content::text("Hello")]);
    }

    /// Issue 20: a question the bot asks back about is logged as not answered.
    #[tokio::test]
    async fn questions_asked_back_are_logged_as_unanswered() {
        let log = Arc::new(UnansweredLog::new(16));
        let bot = bot(log.clone());
        let r = Bot::reply(&bot, &input("it doesn't work")).await.unwrap();
        assert!(r.messages[0].contains("Which of these"), "{r:?}");
        assert_eq!(log.questions(&TenantId::default()).len(), 1);
    }
}
