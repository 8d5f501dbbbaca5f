//! A FAQ bot: answers from a plain knowledge file by TF-IDF similarity, and hands over when it
//! has no answer or the customer asks for a human.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use cs_core::{ConversationId, Priority};
use serde::{Deserialize, Serialize};

use crate::bot::{Bot, BotInput, BotReply, Handoff, HandoffReason, Intent};
use crate::error::{Error, Result};
use crate::sentiment::sentiment;
use crate::text::{is_chinese, tokens};

/// One knowledge entry: question variants and answers per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaqEntry {
    /// Intent name (defaults to the first question).
    pub intent: String,
    /// Ways customers ask it.
    pub questions: Vec<String>,
    /// Answer for Chinese questions (falls back to `answer_en`).
    pub answer_zh: Option<String>,
    /// Answer for other questions (falls back to `answer_zh`).
    pub answer_en: Option<String>,
    /// Skills an agent needs if the customer is handed over about this.
    #[serde(default)]
    pub skills: Vec<String>,
}

/// A parsed knowledge file: FAQ entries and out-of-scope questions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knowledge {
    /// The entries, in file order.
    pub entries: Vec<FaqEntry>,
    /// Questions the bot is not meant to answer (the `Intent: oos` section): they train the
    /// out-of-scope class and help choose the out-of-scope threshold.
    #[serde(default)]
    pub out_of_scope: Vec<String>,
}

impl Knowledge {
    /// The knowledge in the file format [`parse_knowledge`] reads (to save edits).
    ///
    /// ```
    /// use cs_bot::parse_knowledge;
    /// let text = "Intent: hours\nQ: when are you open\nA[zh]: 9点到21点。\nA[en]: 9 to 21.\n\nIntent: oos\nQ: tell me a joke\n";
    /// let k = parse_knowledge(text)?;
    /// assert_eq!(parse_knowledge(&k.to_text())?, k);
    /// # Ok::<(), cs_bot::Error>(())
    /// ```
    pub fn to_text(&self) -> String {
        let one_line = |s: &str| s.replace(['\r', '\n'], " ");
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&format!("Intent: {}\n", one_line(&e.intent)));
            if !e.skills.is_empty() {
                out.push_str(&format!("Skills: {}\n", e.skills.join(", ")));
            }
            for q in &e.questions {
                out.push_str(&format!("Q: {}\n", one_line(q)));
            }
            let mut answer = |key: &str, a: &Option<String>| {
                if let Some(a) = a {
                    // Continuation lines carry the answer's line breaks.
                    let mut lines = a.lines();
                    out.push_str(&format!("{key}: {}\n", lines.next().unwrap_or_default()));
                    for l in lines.map(str::trim).filter(|l| !l.is_empty()) {
                        let looks_like_key = l.split_once(':').is_some_and(|(k, _)| {
                            k.len() <= 8 && !k.contains(' ') && !k.is_empty()
                        });
                        if looks_like_key || l.starts_with('#') {
                            // It would read as a key or a comment: keep it on the line before.
                            out.pop();
                            out.push(' ');
                        }
                        out.push_str(l);
                        out.push('\n');
                    }
                }
            };
            if e.answer_zh == e.answer_en {
                answer("A", &e.answer_zh);
            } else {
                answer("A[zh]", &e.answer_zh);
                answer("A[en]", &e.answer_en);
            }
            out.push('\n');
        }
        if !self.out_of_scope.is_empty() {
            out.push_str("Intent: oos\n");
            for q in &self.out_of_scope {
                out.push_str(&format!("Q: {}\n", one_line(q)));
            }
        }
        out
    }
}

/// Parses a knowledge file ([`parse_faq`]'s format) with its out-of-scope section: an entry
/// whose intent is `oos` (or `out_of_scope`) lists questions the bot should not answer, and
/// needs no answer:
///
/// ```text
/// Intent: oos
/// Q: 今天天气怎么样
/// Q: tell me a joke
/// ```
///
/// # Errors
/// As [`parse_faq`].
pub fn parse_knowledge(text: &str) -> Result<Knowledge> {
    let mut k = Knowledge::default();
    let mut cur = Draft::default();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            cur.finish(line_no, &mut k)?;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        cur.line(line, line_no)?;
    }
    cur.finish(text.lines().count() + 1, &mut k)?;
    Ok(k)
}

/// Parses the knowledge file format:
///
/// ```text
/// # comment
/// Intent: returns
/// Skills: after-sales
/// Q: 怎么退货？
/// Q: How do I return an item?
/// A[zh]: 在“我的订单”里选择商品，点击“申请退货”。
/// A[en]: Open "My orders", pick the item and press "Return".
///
/// Q: ...   (a blank line starts the next entry)
/// ```
///
/// `A:` without a language sets both answers. A line that is not one of these continues the
/// previous answer.
///
/// # Errors
/// [`Error::Knowledge`] with the line number for an entry without question or answer, or an
/// unknown `Key:` line.
pub fn parse_faq(text: &str) -> Result<Vec<FaqEntry>> {
    parse_knowledge(text).map(|k| k.entries)
}

#[derive(Debug, Default, Clone, Copy)]
enum Last {
    #[default]
    None,
    Zh,
    En,
    Both,
}

#[derive(Debug, Default)]
struct Draft {
    intent: Option<String>,
    questions: Vec<String>,
    zh: Option<String>,
    en: Option<String>,
    skills: Vec<String>,
    last: Last,
}

impl Draft {
    fn line(&mut self, line: &str, line_no: usize) -> Result<()> {
        let (key, value) = match line.split_once(':') {
            Some((k, v)) if k.len() <= 8 && !k.contains(' ') && !k.is_empty() => (k, v.trim()),
            _ => ("", line),
        };
        match key {
            "Q" => self.questions.push(value.to_owned()),
            "A" => {
                self.zh = Some(value.to_owned());
                self.en = Some(value.to_owned());
                self.last = Last::Both;
            }
            "A[zh]" => {
                self.zh = Some(value.to_owned());
                self.last = Last::Zh;
            }
            "A[en]" => {
                self.en = Some(value.to_owned());
                self.last = Last::En;
            }
            "Intent" => self.intent = Some(value.to_owned()),
            "Skills" => {
                self.skills = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "" => {
                let cont = |a: &mut Option<String>| {
                    if let Some(a) = a {
                        a.push('\n');
                        a.push_str(line);
                    }
                };
                match self.last {
                    Last::Zh => cont(&mut self.zh),
                    Last::En => cont(&mut self.en),
                    Last::Both => {
                        cont(&mut self.zh);
                        cont(&mut self.en);
                    }
                    Last::None => {
                        return Err(Error::Knowledge {
                            line: line_no,
                            reason: format!("expected Q:, A:, Intent: or Skills:, got {line:?}"),
                        });
                    }
                }
            }
            other => {
                return Err(Error::Knowledge {
                    line: line_no,
                    reason: format!("unknown key {other:?}"),
                });
            }
        }
        Ok(())
    }

    fn finish(&mut self, line: usize, k: &mut Knowledge) -> Result<()> {
        let d = std::mem::take(self);
        if d.questions.is_empty() && d.zh.is_none() && d.en.is_none() && d.intent.is_none() {
            return Ok(());
        }
        if matches!(d.intent.as_deref(), Some("oos" | "out_of_scope")) {
            k.out_of_scope.extend(d.questions);
            return Ok(());
        }
        let out = &mut k.entries;
        if d.questions.is_empty() {
            return Err(Error::Knowledge {
                line,
                reason: "entry has no Q: line".into(),
            });
        }
        if d.zh.is_none() && d.en.is_none() {
            return Err(Error::Knowledge {
                line,
                reason: "entry has no A: line".into(),
            });
        }
        out.push(FaqEntry {
            intent: d.intent.unwrap_or_else(|| d.questions[0].clone()),
            questions: d.questions,
            answer_zh: d.zh,
            answer_en: d.en,
            skills: d.skills,
        });
        Ok(())
    }
}

/// Phrases by which a customer asks for a human.
const HUMAN_PHRASES_ZH: &[&str] = &["转人工", "人工", "真人", "客服专员"];
const HUMAN_WORDS_EN: &[&str] = &[
    "human",
    "agent",
    "person",
    "representative",
    "operator",
    "someone",
];

/// Whether the text asks for a human agent.
pub fn asks_for_human(text: &str) -> bool {
    if HUMAN_PHRASES_ZH.iter().any(|p| text.contains(p)) {
        return true;
    }
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| HUMAN_WORDS_EN.contains(&w))
}

/// A TF-IDF vector (token -> weight), unit length.
type Vector = HashMap<String, f32>;

/// Answers from FAQ entries by TF-IDF cosine similarity between the message and every question
/// variant.
///
/// ```
/// use cs_bot::FaqBot;
///
/// let bot = FaqBot::from_text("Q: How do I return an item?\nQ: 怎么退货\nA[en]: Press Return.\nA[zh]: 点击退货。\n")?;
/// let best = bot.best_match("how can I return this item").unwrap();
/// assert_eq!(best.0.answer_en.as_deref(), Some("Press Return."));
/// # Ok::<(), cs_bot::Error>(())
/// ```
#[derive(Debug)]
pub struct FaqBot {
    entries: Vec<FaqEntry>,
    idf: HashMap<String, f32>,
    /// (entry index, question vector)
    questions: Vec<(usize, Vector)>,
    threshold: f32,
    max_misses: u8,
    misses: Mutex<HashMap<ConversationId, u8>>,
}

impl FaqBot {
    /// Builds the bot from knowledge-file text ([`parse_faq`]).
    ///
    /// # Errors
    /// As [`parse_faq`]; [`Error::Knowledge`] for a file without entries.
    pub fn from_text(text: &str) -> Result<Self> {
        Self::new(parse_faq(text)?)
    }

    /// Builds the bot from a knowledge file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; as [`FaqBot::from_text`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_text(&std::fs::read_to_string(path)?)
    }

    /// Builds the bot from entries.
    ///
    /// # Errors
    /// [`Error::Knowledge`] when there are none.
    pub fn new(entries: Vec<FaqEntry>) -> Result<Self> {
        if entries.is_empty() {
            return Err(Error::Knowledge {
                line: 0,
                reason: "no FAQ entries".into(),
            });
        }
        let docs: Vec<(usize, Vec<String>)> = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.questions.iter().map(move |q| (i, tokens(q))))
            .collect();
        let mut df: HashMap<String, usize> = HashMap::new();
        for (_, toks) in &docs {
            for t in toks.iter().collect::<HashSet<_>>() {
                *df.entry(t.clone()).or_default() += 1;
            }
        }
        let n = docs.len() as f32;
        let idf: HashMap<String, f32> = df
            .into_iter()
            .map(|(t, d)| (t, ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0))
            .collect();
        let questions = docs
            .iter()
            .map(|(i, toks)| (*i, vectorize(toks, &idf)))
            .collect();
        Ok(Self {
            entries,
            idf,
            questions,
            threshold: 0.45,
            max_misses: 2,
            misses: Mutex::new(HashMap::new()),
        })
    }

    /// Similarity (0-1) below which the bot has no answer (default 0.45).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// How many unanswered messages in a row before handing over (default 2).
    pub fn with_max_misses(mut self, misses: u8) -> Self {
        self.max_misses = misses.max(1);
        self
    }

    /// The entries.
    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    /// The best-matching entry and its similarity, if any token matched at all.
    pub fn best_match(&self, text: &str) -> Option<(&FaqEntry, f32)> {
        self.top_matches(text, 1).into_iter().next()
    }

    /// Up to `k` distinct entries that match `text`, best first, with their similarity.
    pub fn top_matches(&self, text: &str, k: usize) -> Vec<(&FaqEntry, f32)> {
        let v = vectorize(&tokens(text), &self.idf);
        if v.is_empty() {
            return Vec::new();
        }
        let mut best: HashMap<usize, f32> = HashMap::new();
        for (i, q) in &self.questions {
            let s = cosine(&v, q);
            if s > 0.0 {
                let e = best.entry(*i).or_default();
                *e = e.max(s);
            }
        }
        let mut ranked: Vec<(usize, f32)> = best.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(k)
            .map(|(i, s)| (&self.entries[i], s))
            .collect()
    }

    fn record_miss(&self, conversation: ConversationId) -> u8 {
        let mut m = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(conversation).or_default();
        *n = n.saturating_add(1);
        *n
    }

    fn clear_misses(&self, conversation: ConversationId) {
        self.misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conversation);
    }
}

fn vectorize(toks: &[String], idf: &HashMap<String, f32>) -> Vector {
    let mut v: Vector = HashMap::new();
    for t in toks {
        if let Some(w) = idf.get(t) {
            *v.entry(t.clone()).or_default() += w;
        }
    }
    let norm = v.values().map(|w| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.values_mut().for_each(|w| *w /= norm);
    }
    v
}

fn cosine(a: &Vector, b: &Vector) -> f32 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .filter_map(|(t, w)| large.get(t).map(|x| w * x))
        .sum()
}

/// The history a hand-over's [`summary`] reads: the customer's last three lines, with the
/// answers between them.
pub(crate) const SUMMARY_HISTORY: usize = 8;

pub(crate) fn summary(input: &BotInput) -> String {
    let customer_lines: Vec<String> = input
        .history
        .iter()
        .filter(|m| m.author.role() == "customer")
        .map(|m| m.content.plain_text())
        .collect();
    let recent: Vec<&str> = customer_lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    if recent.is_empty() {
        format!("Customer wrote: {}", input.text)
    } else {
        format!("Customer wrote: {}", recent.join(" / "))
    }
}

#[async_trait]
impl Bot for FaqBot {
    /// Enough for a hand-over's summary (the customer's last three lines).
    fn history_len(&self) -> usize {
        SUMMARY_HISTORY
    }

    async fn reply(&self, input: &BotInput) -> Result<BotReply> {
        let zh = is_chinese(&input.text);
        if asks_for_human(&input.text) {
            self.clear_misses(input.conversation);
            let topic = self
                .best_match(&input.text)
                .filter(|(_, s)| *s >= self.threshold);
            return Ok(BotReply {
                messages: vec![if zh {
                    "好的，正在为您转接人工客服，请稍候。".into()
                } else {
                    "Sure, connecting you to a human agent. One moment please.".into()
                }],
                intent: None,
                handoff: Some(Handoff {
                    reason: HandoffReason::CustomerRequest,
                    summary: summary(input),
                    skills: topic.map(|(e, _)| e.skills.clone()).unwrap_or_default(),
                    priority: Priority::Normal,
                    ..Handoff::default()
                }),
                sentiment: Some(sentiment(&input.text)),
                ..BotReply::default()
            });
        }
        match self.best_match(&input.text) {
            Some((entry, score)) if score >= self.threshold => {
                self.clear_misses(input.conversation);
                let answer = if zh {
                    entry.answer_zh.as_ref().or(entry.answer_en.as_ref())
                } else {
                    entry.answer_en.as_ref().or(entry.answer_zh.as_ref())
                };
                Ok(BotReply {
                    messages: answer.cloned().into_iter().collect(),
                    intent: Some(Intent {
                        name: entry.intent.clone(),
                        confidence: score.min(1.0),
                    }),
                    handoff: None,
                    sentiment: Some(sentiment(&input.text)),
                    ..BotReply::default()
                })
            }
            _ => {
                let misses = self.record_miss(input.conversation);
                if misses >= self.max_misses {
                    self.clear_misses(input.conversation);
                    Ok(BotReply {
                        messages: vec![if zh {
                            "抱歉，这个问题我暂时无法回答，正在为您转接人工客服。".into()
                        } else {
                            "Sorry, I can't answer that. Connecting you to a human agent.".into()
                        }],
                        intent: None,
                        handoff: Some(Handoff {
                            reason: HandoffReason::NoAnswer,
                            summary: summary(input),
                            skills: Vec::new(),
                            priority: Priority::Normal,
                            ..Handoff::default()
                        }),
                        sentiment: Some(sentiment(&input.text)),
                        ..BotReply::default()
                    })
                } else {
                    Ok(BotReply {
                        messages: vec![if zh {
                            "抱歉，我没有理解您的问题。可以换个说法吗？输入“转人工”可联系人工客服。"
                                .into()
                        } else {
                            "Sorry, I didn't get that. Could you rephrase? Type \"human\" to reach an agent.".into()
                        }],
                        intent: None,
                        handoff: None,
                        sentiment: Some(sentiment(&input.text)),
                        ..BotReply::default()
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cs_core::{CustomerId, TenantId};

    const FAQ: &str = "\
# demo
Intent: returns
Skills: after-sales
Q: 怎么退货
Q: How do I return an item?
A[zh]: 在“我的订单”中申请退货。
A[en]: Open My orders and press Return.

Intent: shipping_time
Q: 多久发货
Q: When will my order ship?
A: 48 hours.
   Usually sooner.
";

    fn input(conv: ConversationId, text: &str) -> BotInput {
        BotInput {
            tenant: TenantId::default(),
            conversation: conv,
            customer: CustomerId::new(),
            text: text.into(),
            history: Vec::new(),
            verified_phones: Vec::new(),
        }
    }

    #[test]
    fn parses_the_knowledge_format() {
        let e = parse_faq(FAQ).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].intent, "returns");
        assert_eq!(e[0].skills, ["after-sales"]);
        assert_eq!(
            e[1].answer_en.as_deref(),
            Some("48 hours.\nUsually sooner.")
        );
        assert!(matches!(
            parse_faq("Q: only a question\n"),
            Err(Error::Knowledge { .. })
        ));
        assert!(matches!(
            parse_faq("Nonsense: x\nQ: a\nA: b\n"),
            Err(Error::Knowledge { line: 1, .. })
        ));
    }

    #[tokio::test]
    async fn answers_in_the_customers_language() {
        let bot = FaqBot::from_text(FAQ).unwrap();
        let c = ConversationId::new();
        let r = bot.reply(&input(c, "我想退货，怎么退货？")).await.unwrap();
        assert_eq!(r.messages, ["在“我的订单”中申请退货。"]);
        assert_eq!(r.intent.unwrap().name, "returns");
        let r = bot
            .reply(&input(c, "how can I return an item"))
            .await
            .unwrap();
        assert_eq!(r.messages, ["Open My orders and press Return."]);
        assert!(r.handoff.is_none());
    }

    #[tokio::test]
    async fn hands_over_on_request_and_after_misses() {
        let bot = FaqBot::from_text(FAQ).unwrap();
        let c = ConversationId::new();
        let r = bot.reply(&input(c, "转人工")).await.unwrap();
        assert_eq!(r.handoff.unwrap().reason, HandoffReason::CustomerRequest);
        let r = bot
            .reply(&input(c, "I want to talk to a human about returns"))
            .await
            .unwrap();
        assert_eq!(r.handoff.unwrap().skills, ["after-sales"]);
        let r = bot
            .reply(&input(c, "quantum flux capacitor"))
            .await
            .unwrap();
        assert!(r.handoff.is_none(), "first miss asks to rephrase");
        let r = bot.reply(&input(c, "warp drive")).await.unwrap();
        assert_eq!(r.handoff.unwrap().reason, HandoffReason::NoAnswer);
        assert!(!asks_for_human("agenda for today"));
    }
}
