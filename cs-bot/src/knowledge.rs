//! Knowledge management for a running service: supervisors edit FAQ entries, training
//! phrasings and out-of-scope questions, the bot retrains in the background while the old model
//! keeps answering, and the questions it could not answer are kept, grouped, to become new
//! entries ("数据反哺产品迭代").

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::{ConversationId, TenantId};
use serde::{Deserialize, Serialize};

use crate::bot::{Bot, BotInput, BotReply};
use crate::dialogue::{IntentBot, IntentBotBuilder};
use crate::error::{Error, Result};
use crate::faq::{FaqEntry, Knowledge};
use crate::features::{FeatureConfig, Sparse, Vectorizer};

/// A question the bot could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unanswered {
    /// The tenant whose customer asked.
    pub tenant: TenantId,
    /// What the customer wrote (at most 500 characters kept).
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Unanswered questions that say the same thing, for a supervisor to turn into one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionCluster {
    /// The most frequent wording.
    pub representative: String,
    /// How many times questions of the group were asked.
    pub count: usize,
    /// Distinct wordings, most frequent first (at most 20): training phrasings for the entry.
    pub examples: Vec<String>,
    /// First time asked.
    pub first_seen: DateTime<Utc>,
    /// Last time asked.
    pub last_seen: DateTime<Utc>,
}

/// The questions a bot could not answer, bounded (the oldest go first), per tenant.
///
/// ```
/// use chrono::Utc;
/// use cs_bot::UnansweredLog;
/// use cs_core::TenantId;
///
/// let log = UnansweredLog::new(1000);
/// let t = TenantId::default();
/// for q in ["可以开发票到公司吗", "能开公司发票吗", "可以开公司抬头的发票吗", "你们卖二手手机吗"] {
///     log.record(&t, q, Utc::now());
/// }
/// let groups = log.clusters(&t, 0.15);
/// assert_eq!(groups[0].count, 3);
/// assert_eq!(groups.len(), 2);
/// ```
#[derive(Debug)]
pub struct UnansweredLog {
    items: Mutex<std::collections::VecDeque<Unanswered>>,
    capacity: usize,
}

impl Default for UnansweredLog {
    fn default() -> Self {
        Self::new(10_000)
    }
}

/// Lower case, punctuation dropped, spaces collapsed: the wordings that count as one.
fn normalise(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cosine(a: &Sparse, b: &Sparse) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

impl UnansweredLog {
    /// A log keeping at most `capacity` questions (all tenants together).
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(std::collections::VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Unanswered>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a question (blank ones are ignored).
    pub fn record(&self, tenant: &TenantId, text: &str, at: DateTime<Utc>) {
        let text: String = text.trim().chars().take(500).collect();
        if text.is_empty() {
            return;
        }
        let mut items = self.lock();
        if items.len() >= self.capacity {
            items.pop_front();
        }
        items.push_back(Unanswered {
            tenant: tenant.clone(),
            text,
            at,
        });
    }

    /// Questions recorded, all tenants.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The tenant's questions, oldest first.
    pub fn questions(&self, tenant: &TenantId) -> Vec<Unanswered> {
        self.lock()
            .iter()
            .filter(|q| &q.tenant == tenant)
            .cloned()
            .collect()
    }

    /// Forgets the tenant's questions with these wordings (once they became an entry); returns
    /// how many were removed.
    pub fn remove(&self, tenant: &TenantId, texts: &[String]) -> usize {
        let wanted: std::collections::HashSet<String> =
            texts.iter().map(|t| normalise(t)).collect();
        let mut items = self.lock();
        let before = items.len();
        items.retain(|q| !(&q.tenant == tenant && wanted.contains(&normalise(&q.text))));
        before - items.len()
    }

    /// The tenant's questions grouped by similarity (cosine of word and character n-gram
    /// TF-IDF vectors, fitted on these questions, at least `min_similarity`: 0.1 to 0.2 suits
    /// short questions), largest group first.
    pub fn clusters(&self, tenant: &TenantId, min_similarity: f32) -> Vec<QuestionCluster> {
        // Distinct wordings with their counts and times.
        let mut distinct: Vec<(String, usize, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for q in self.lock().iter().filter(|q| &q.tenant == tenant) {
            let key = normalise(&q.text);
            match index.get(&key) {
                Some(&i) => {
                    let d = &mut distinct[i];
                    d.1 += 1;
                    d.2 = d.2.min(q.at);
                    d.3 = d.3.max(q.at);
                }
                None => {
                    index.insert(key, distinct.len());
                    distinct.push((q.text.clone(), 1, q.at, q.at));
                }
            }
        }
        distinct.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        distinct.truncate(5_000);
        let texts: Vec<&str> = distinct.iter().map(|d| d.0.as_str()).collect();
        let cfg = FeatureConfig::RICH.with_chars((2, 4), (1, 2));
        let (_, rows) = Vectorizer::fit_transform(cfg, &texts);
        // Leader clustering: each wording joins the most similar group leader, or leads a new
        // group.
        let mut leaders: Vec<usize> = Vec::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let best = leaders
                .iter()
                .enumerate()
                .map(|(g, &l)| (g, cosine(row, &rows[l])))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((g, s)) if s >= min_similarity && !row.is_empty() => groups[g].push(i),
                _ => {
                    leaders.push(i);
                    groups.push(vec![i]);
                }
            }
        }
        let mut out: Vec<QuestionCluster> = groups
            .into_iter()
            .map(|g| QuestionCluster {
                representative: distinct[g[0]].0.clone(),
                count: g.iter().map(|&i| distinct[i].1).sum(),
                examples: g.iter().take(20).map(|&i| distinct[i].0.clone()).collect(),
                first_seen: g.iter().map(|&i| distinct[i].2).min().unwrap_or_default(),
                last_seen: g.iter().map(|&i| distinct[i].3).max().unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.count));
        out
    }
}

/// Where retraining stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainStatus {
    /// The knowledge revision the answering model was trained on.
    pub serving_revision: u64,
    /// The latest knowledge revision (edits bump it).
    pub knowledge_revision: u64,
    /// Whether a model is being trained now.
    pub training: bool,
    /// Why the last retraining failed, if it did (the old model kept answering).
    pub last_error: Option<String>,
    /// How long the last successful training took, seconds.
    pub last_train_secs: Option<f32>,
}

#[derive(Debug)]
struct State {
    knowledge: Knowledge,
    revision: u64,
    serving: u64,
    training: bool,
    pending: bool,
    last_error: Option<String>,
    last_train_secs: Option<f32>,
}

type MakeFn = dyn Fn() -> IntentBotBuilder + Send + Sync;

/// An [`IntentBot`] whose knowledge can be edited while it serves: edits are applied by
/// [`LiveBot::retrain`], which trains a new model on a background thread while the current one
/// keeps answering, then swaps it in; conversations keep their dialogue state across the swap.
/// Questions the bot could not answer go to its [`UnansweredLog`].
///
/// `make` returns a fresh builder with everything but the knowledge (the shop adapters,
/// templates, thresholds, classifier settings, a model cache path); it is called for every
/// training.
///
/// ```
/// use std::time::Duration;
/// use cs_bot::{FaqEntry, LiveBot, IntentBot, parse_knowledge};
///
/// let knowledge = parse_knowledge("Intent: hours\nQ: when are you open\nQ: opening hours\nA: 9 to 21.\n\n\
///     Intent: size\nQ: which size should I take\nQ: size chart\nA: See the size chart.\n")?;
/// let live = LiveBot::new(knowledge, IntentBot::builder)?;
/// live.upsert_entry(FaqEntry {
///     intent: "invoice".into(),
///     questions: vec!["can I get an invoice".into(), "invoice please".into()],
///     answer_zh: None,
///     answer_en: Some("Order details - Request invoice.".into()),
///     skills: vec![],
/// })?;
/// live.retrain();
/// assert!(live.wait_idle(Duration::from_secs(60)));
/// assert_eq!(live.status().serving_revision, live.status().knowledge_revision);
/// assert!(live.bot().classifier().labels().iter().any(|l| l == "invoice"));
/// # Ok::<(), cs_bot::Error>(())
/// ```
pub struct LiveBot {
    current: RwLock<Arc<IntentBot>>,
    state: Mutex<State>,
    idle: Condvar,
    make: Box<MakeFn>,
    unanswered: Arc<UnansweredLog>,
}

impl fmt::Debug for LiveBot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveBot")
            .field("status", &self.status())
            .field("unanswered", &self.unanswered.len())
            .finish_non_exhaustive()
    }
}

fn check_entry(e: &FaqEntry) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidInput {
            reason: reason.into(),
        })
    };
    if e.intent.trim().is_empty() || e.intent.contains(char::is_whitespace) {
        return bad("an entry's intent is one word");
    }
    if e.intent == crate::OUT_OF_SCOPE {
        return bad("use add_out_of_scope for out-of-scope questions");
    }
    if e.questions.iter().all(|q| q.trim().is_empty()) {
        return bad("an entry needs at least one question");
    }
    if e.answer_zh.is_none() && e.answer_en.is_none() {
        return bad("an entry needs an answer");
    }
    Ok(())
}

impl LiveBot {
    /// Trains the first model (on the caller's thread) and starts serving it.
    ///
    /// # Errors
    /// As [`IntentBotBuilder::build`].
    pub fn new(
        knowledge: Knowledge,
        make: impl Fn() -> IntentBotBuilder + Send + Sync + 'static,
    ) -> Result<Arc<Self>> {
        let unanswered = Arc::new(UnansweredLog::default());
        let start = Instant::now();
        let bot = make()
            .with_knowledge(knowledge.clone())
            .with_unanswered(unanswered.clone())
            .build()?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(bot)),
            state: Mutex::new(State {
                knowledge,
                revision: 1,
                serving: 1,
                training: false,
                pending: false,
                last_error: None,
                last_train_secs: Some(start.elapsed().as_secs_f32()),
            }),
            idle: Condvar::new(),
            make: Box::new(make),
            unanswered,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model answering now.
    pub fn bot(&self) -> Arc<IntentBot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The questions the bot could not answer.
    pub fn unanswered(&self) -> &Arc<UnansweredLog> {
        &self.unanswered
    }

    /// The knowledge as edited (not necessarily trained yet) and its revision.
    pub fn knowledge(&self) -> (Knowledge, u64) {
        let s = self.lock();
        (s.knowledge.clone(), s.revision)
    }

    fn edit(&self, f: impl FnOnce(&mut Knowledge) -> Result<()>) -> Result<u64> {
        let mut s = self.lock();
        let mut k = s.knowledge.clone();
        f(&mut k)?;
        s.knowledge = k;
        s.revision += 1;
        Ok(s.revision)
    }

    /// Adds an entry, or replaces the entry with the same intent; returns the new revision.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an entry without intent, question or answer.
    pub fn upsert_entry(&self, entry: FaqEntry) -> Result<u64> {
        check_entry(&entry)?;
        self.edit(|k| {
            match k.entries.iter_mut().find(|e| e.intent == entry.intent) {
                Some(e) => *e = entry,
                None => k.entries.push(entry),
            }
            Ok(())
        })
    }

    /// Removes the entry of `intent`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; [`Error::InvalidInput`] when fewer than two
    /// entries would remain.
    pub fn remove_entry(&self, intent: &str) -> Result<u64> {
        self.edit(|k| {
            let before = k.entries.len();
            k.entries.retain(|e| e.intent != intent);
            if k.entries.len() == before {
                return Err(Error::NotFound {
                    what: format!("intent {intent:?}"),
                });
            }
            if k.entries.len() < 2 {
                return Err(Error::InvalidInput {
                    reason: "the bot needs at least two entries".into(),
                });
            }
            Ok(())
        })
    }

    /// Adds a training phrasing to the entry of `intent` (e.g. an unanswered question).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such entry; [`Error::InvalidInput`] for a blank
    /// phrasing.
    pub fn add_phrasing(&self, intent: &str, text: &str) -> Result<u64> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidInput {
                reason: "blank phrasing".into(),
            });
        }
        self.edit(|k| {
            let e = k
                .entries
                .iter_mut()
                .find(|e| e.intent == intent)
                .ok_or_else(|| Error::NotFound {
                    what: format!("intent {intent:?}"),
                })?;
            if !e.questions.iter().any(|q| q == text) {
                e.questions.push(text.to_owned());
            }
            Ok(())
        })
    }

    /// Removes a training phrasing from the entry of `intent`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such entry or phrasing; [`Error::InvalidInput`]
    /// when it is the entry's last one.
    pub fn remove_phrasing(&self, intent: &str, text: &str) -> Result<u64> {
        self.edit(|k| {
            let e = k
                .entries
                .iter_mut()
                .find(|e| e.intent == intent)
                .ok_or_else(|| Error::NotFound {
                    what: format!("intent {intent:?}"),
                })?;
            let pos =
                e.questions
                    .iter()
                    .position(|q| q == text)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("phrasing {text:?}"),
                    })?;
            if e.questions.len() == 1 {
                return Err(Error::InvalidInput {
                    reason: "an entry keeps at least one question".into(),
                });
            }
            e.questions.remove(pos);
            Ok(())
        })
    }

    /// Adds a question the bot should not answer (the out-of-scope section).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a blank question.
    pub fn add_out_of_scope(&self, text: &str) -> Result<u64> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidInput {
                reason: "blank question".into(),
            });
        }
        self.edit(|k| {
            if !k.out_of_scope.iter().any(|q| q == text) {
                k.out_of_scope.push(text.to_owned());
            }
            Ok(())
        })
    }

    /// Replaces the whole knowledge (an uploaded file).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when an entry is invalid.
    pub fn replace_knowledge(&self, knowledge: Knowledge) -> Result<u64> {
        for e in &knowledge.entries {
            check_entry(e)?;
        }
        self.edit(|k| {
            *k = knowledge;
            Ok(())
        })
    }

    /// Where retraining stands.
    pub fn status(&self) -> RetrainStatus {
        let s = self.lock();
        RetrainStatus {
            serving_revision: s.serving,
            knowledge_revision: s.revision,
            training: s.training,
            last_error: s.last_error.clone(),
            last_train_secs: s.last_train_secs,
        }
    }

    /// Trains on the current knowledge in the background and swaps the new model in when it is
    /// ready; the current model answers meanwhile. A call during a training queues one more
    /// run (with the edits made since), not one per call. Returns the revision that will be
    /// served.
    pub fn retrain(self: &Arc<Self>) -> u64 {
        let mut s = self.lock();
        let revision = s.revision;
        if s.training {
            s.pending = true;
            return revision;
        }
        s.training = true;
        drop(s);
        let me = self.clone();
        std::thread::spawn(move || me.train_loop());
        revision
    }

    fn train_loop(&self) {
        loop {
            let (knowledge, revision) = {
                let mut s = self.lock();
                s.pending = false;
                (s.knowledge.clone(), s.revision)
            };
            let start = Instant::now();
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (self.make)()
                    .with_knowledge(knowledge)
                    .with_unanswered(self.unanswered.clone())
                    .build()
            }))
            .unwrap_or_else(|_| {
                Err(Error::InvalidInput {
                    reason: "training panicked".into(),
                })
            });
            let mut s = self.lock();
            match built {
                Ok(mut bot) => {
                    let old = self.bot();
                    bot.share_sessions(&old);
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(bot);
                    s.serving = revision;
                    s.last_error = None;
                    s.last_train_secs = Some(start.elapsed().as_secs_f32());
                }
                Err(e) => s.last_error = Some(e.to_string()),
            }
            if !s.pending {
                s.training = false;
                self.idle.notify_all();
                return;
            }
        }
    }

    /// Waits until no training runs (at most `timeout`); returns whether it is idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let s = self.lock();
        let (s, _) = self
            .idle
            .wait_timeout_while(s, timeout, |s| s.training)
            .unwrap_or_else(|e| e.into_inner());
        !s.training
    }
}

#[async_trait]
impl Bot for LiveBot {
    async fn reply(&self, input: &BotInput) -> Result<BotReply> {
        let bot = self.bot();
        bot.reply(input).await
    }

    fn history_len(&self) -> usize {
        self.bot().history_len()
    }

    fn dialogue_state(&self, conversation: ConversationId) -> Option<serde_json::Value> {
        self.bot().dialogue_state(conversation)
    }

    fn restore_dialogue_state(
        &self,
        conversation: ConversationId,
        state: Option<serde_json::Value>,
    ) {
        self.bot().restore_dialogue_state(conversation, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_questions_group_together() {
        let log = UnansweredLog::new(100);
        let t = TenantId::default();
        let now = Utc::now();
        for q in [
            "可以开发票到公司吗",
            "能开公司发票吗",
            "可以开公司抬头的发票吗",
            "你们卖二手手机吗",
            "do you sell gift cards",
            "Do you sell gift cards?",
            "can I buy a gift card",
        ] {
            log.record(&t, q, now);
        }
        let c = log.clusters(&t, 0.15);
        let groups: Vec<(&str, usize)> = c
            .iter()
            .map(|c| (c.representative.as_str(), c.count))
            .collect();
        assert_eq!(
            groups,
            [
                ("do you sell gift cards", 3),
                ("可以开发票到公司吗", 3),
                ("你们卖二手手机吗", 1)
            ]
        );
        assert_eq!(c[0].examples.len(), 2, "two distinct wordings");
        assert_eq!(log.remove(&t, &c[1].examples), 3);
        assert_eq!(log.len(), 4);
        assert!(log.questions(&TenantId::new("other").unwrap()).is_empty());
        let small = UnansweredLog::new(2);
        for q in ["a", "b", "c"] {
            small.record(&t, q, now);
        }
        assert_eq!(small.questions(&t)[0].text, "b", "the oldest goes first");
    }
}
