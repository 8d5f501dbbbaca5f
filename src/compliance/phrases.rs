//! Forbidden phrases in outgoing messages: rule sets, industry presets, and a matcher that sees
//! through simple evasions.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use cs_core::TenantId;
use serde::{Deserialize, Serialize};

/// What happens to a message that contains a phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// The sender is shown the phrase and may still send after confirming.
    Warn,
    /// The message is not sent.
    Block,
}

/// Industry rule sets that ship with the library (see [`Preset::rules`] for the phrases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// Financial products: promises of capital protection or returns (seed 003: "保本",
    /// "高收益").
    Finance,
    /// Medicine and health: promises of cures and of no side effects.
    Healthcare,
    /// Advertising law (中华人民共和国广告法, article 9): absolute terms such as "国家级",
    /// "最高级", "最佳". Terms that are also everyday words in a chat ("最好" as "you had
    /// better") are not listed.
    Advertising,
}

impl Preset {
    /// Everyday words that contain one of the preset's phrases without meaning it.
    pub fn allowed(self) -> &'static [&'static str] {
        match self {
            Self::Finance => &["确保本", "担保本人", "无风险提示"],
            Self::Healthcare => &[],
            Self::Advertising => &[],
        }
    }

    /// The preset's rules.
    pub fn rules(self) -> Vec<PhraseRule> {
        let (category, block, warn): (&str, &[&str], &[&str]) = match self {
            Self::Finance => (
                "finance",
                &[
                    "保本",
                    "保收益",
                    "保证收益",
                    "高收益",
                    "稳赚",
                    "稳赚不赔",
                    "零风险",
                    "无风险",
                    "刚性兑付",
                    "保本保息",
                    "guaranteed return",
                    "guaranteed returns",
                    "risk-free",
                    "no risk",
                ],
                &["收益率最高", "稳健高收益", "high yield"],
            ),
            Self::Healthcare => (
                "healthcare",
                &[
                    "根治",
                    "药到病除",
                    "包治",
                    "保证治愈",
                    "永不复发",
                    "无副作用",
                    "治愈率",
                    "guaranteed cure",
                    "no side effects",
                ],
                &["疗效最好", "miracle cure"],
            ),
            Self::Advertising => (
                "advertising",
                &[
                    "国家级",
                    "世界级",
                    "最高级",
                    "全网最低",
                    "史上最低",
                    "全球首发",
                    "绝无仅有",
                    "独一无二",
                ],
                &["最佳", "顶级", "极品", "首选", "万能", "best in the world"],
            ),
        };
        let rule = |action| {
            move |p: &&str| PhraseRule {
                phrase: (*p).to_owned(),
                action,
                category: category.to_owned(),
            }
        };
        block
            .iter()
            .map(rule(RuleAction::Block))
            .chain(warn.iter().map(rule(RuleAction::Warn)))
            .collect()
    }
}

/// One forbidden phrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhraseRule {
    /// The phrase; matched ignoring case, width (full-width letters and digits), spaces,
    /// punctuation and invisible characters between its characters.
    pub phrase: String,
    /// Block or warn (default block).
    #[serde(default = "block")]
    pub action: RuleAction,
    /// A label for audits and reports (`finance`, `advertising`, the team's own).
    #[serde(default)]
    pub category: String,
}

fn block() -> RuleAction {
    RuleAction::Block
}

/// One phrase found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhraseHit {
    /// The rule's phrase.
    pub phrase: String,
    /// What the rule does.
    pub action: RuleAction,
    /// The rule's category.
    pub category: String,
    /// Where it stands in the text checked, in bytes (evasions included: "保 本" spans the
    /// space).
    pub span: Range<usize>,
    /// The text as written there.
    pub found: String,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Every phrase found, in order of position.
    pub hits: Vec<PhraseHit>,
}

impl Verdict {
    /// Whether the text may go out without asking: no hit at all.
    pub fn is_clean(&self) -> bool {
        self.hits.is_empty()
    }

    /// The strongest action among the hits (`None` when clean).
    pub fn action(&self) -> Option<RuleAction> {
        self.hits.iter().map(|h| h.action).max()
    }

    /// Whether a hit blocks the text.
    pub fn is_blocked(&self) -> bool {
        self.action() == Some(RuleAction::Block)
    }

    /// The distinct phrases found, in order.
    pub fn phrases(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for h in &self.hits {
            if !out.contains(&h.phrase.as_str()) {
                out.push(&h.phrase);
            }
        }
        out
    }
}

/// A compiled rule set: checks a text in one pass (Aho-Corasick over the text with evasions
/// folded away), whatever the number of phrases.
///
/// ```
/// use omnidesk::compliance::{PhraseRules, Preset, RuleAction};
///
/// let rules = PhraseRules::from_presets([Preset::Finance]);
/// let verdict = rules.check("这款理财产品保 本，年化高收益！");
/// assert!(verdict.is_blocked());
/// assert_eq!(verdict.phrases(), ["保本", "高收益"]);
/// assert!(rules.check("您的订单已发货").is_clean());
/// ```
#[derive(Debug, Clone)]
pub struct PhraseRules {
    rules: Arc<[PhraseRule]>,
    matcher: Option<Arc<AhoCorasick>>,
    allowed: Option<Arc<AhoCorasick>>,
}

impl Default for PhraseRules {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl PhraseRules {
    /// A rule set from rules. Phrases that fold to nothing (only spaces or punctuation) are
    /// dropped; of two rules with the same folded phrase, the stronger action wins.
    pub fn new(rules: impl IntoIterator<Item = PhraseRule>) -> Self {
        let mut by_key: HashMap<String, PhraseRule> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for rule in rules {
            let key: String = fold_text(&rule.phrase).0;
            if key.is_empty() {
                continue;
            }
            match by_key.get_mut(&key) {
                Some(existing) if existing.action < rule.action => *existing = rule,
                Some(_) => {}
                None => {
                    order.push(key.clone());
                    by_key.insert(key, rule);
                }
            }
        }
        let rules: Vec<PhraseRule> = order.iter().filter_map(|k| by_key.remove(k)).collect();
        let matcher = (!order.is_empty()).then(|| {
            Arc::new(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&order)
                    .expect("folded phrases are plain strings"),
            )
        });
        Self {
            rules: rules.into(),
            matcher,
            allowed: None,
        }
    }

    /// A rule set from presets, with the presets' allowed words.
    pub fn from_presets(presets: impl IntoIterator<Item = Preset> + Clone) -> Self {
        Self::new(presets.clone().into_iter().flat_map(Preset::rules))
            .with_allowed(presets.into_iter().flat_map(Preset::allowed))
    }

    /// Everyday words that contain a phrase without meaning it ("确保本周" holds "保本"): a
    /// hit inside one of them is not a hit. Replaces the allowed words set before.
    pub fn with_allowed<S: AsRef<str>>(mut self, words: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<String> = words
            .into_iter()
            .map(|w| fold_text(w.as_ref()).0)
            .filter(|w| !w.is_empty())
            .collect();
        self.allowed = (!words.is_empty())
            .then(|| Arc::new(AhoCorasick::new(&words).expect("folded words are plain strings")));
        self
    }

    /// The rules, after de-duplication.
    pub fn rules(&self) -> &[PhraseRule] {
        &self.rules
    }

    /// Whether the set has no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks `text`.
    pub fn check(&self, text: &str) -> Verdict {
        let Some(matcher) = &self.matcher else {
            return Verdict::default();
        };
        let (folded, spans) = fold_text(text);
        let allowed: Vec<Range<usize>> = self
            .allowed
            .as_ref()
            .map(|a| {
                a.find_overlapping_iter(&folded)
                    .map(|m| m.range())
                    .collect()
            })
            .unwrap_or_default();
        let hits = matcher
            .find_iter(&folded)
            .filter(|m| {
                !allowed
                    .iter()
                    .any(|a| a.start <= m.start() && m.end() <= a.end)
            })
            .map(|m| {
                let rule = &self.rules[m.pattern().as_usize()];
                // The folded text's byte offsets map back through its characters.
                let first = char_index(&folded, m.start());
                let last = char_index(&folded, m.end()) - 1;
                let span = spans[first].start..spans[last].end;
                PhraseHit {
                    phrase: rule.phrase.clone(),
                    action: rule.action,
                    category: rule.category.clone(),
                    found: text[span.clone()].to_owned(),
                    span,
                }
            })
            .collect();
        Verdict { hits }
    }
}

/// The character index of byte offset `byte` of `s`.
fn char_index(s: &str, byte: usize) -> usize {
    s[..byte].chars().count()
}

/// `text` with evasions folded away, and for each character kept the byte range it came from.
fn fold_text(text: &str) -> (String, Vec<Range<usize>>) {
    let mut folded = String::with_capacity(text.len());
    let mut spans = Vec::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        let Some(f) = fold_char(c) else { continue };
        for lower in f.to_lowercase() {
            folded.push(lower);
            spans.push(at..at + c.len_utf8());
        }
    }
    (folded, spans)
}

/// One character as matched: full-width forms to ASCII, `None` for what an evader puts between
/// characters (spaces, punctuation, symbols, invisible characters).
fn fold_char(c: char) -> Option<char> {
    let c = match c as u32 {
        // Full-width ASCII forms.
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    let skipped = c.is_whitespace()
        || c.is_control()
        || c.is_ascii_punctuation()
        || matches!(c as u32,
            0x00A0..=0x00BF        // Latin-1 punctuation and symbols (·, «, », ¡)
            | 0x2000..=0x206F      // general punctuation, zero-width characters
            | 0x2190..=0x2BFF      // arrows, maths, boxes, shapes, dingbats
            | 0x3000..=0x303F      // CJK symbols and punctuation
            | 0x30FB               // katakana middle dot
            | 0xFE10..=0xFE1F      // vertical forms
            | 0xFE30..=0xFE4F      // CJK compatibility forms
            | 0xFE50..=0xFE6F      // small forms
            | 0xFEFF               // byte-order mark
            | 0xFF5F..=0xFF65      // half-width CJK punctuation
            | 0x1F000..=0x1FAFF    // emoji and pictographs
        );
    (!skipped).then_some(c)
}

/// Rule sets per tenant, with a default for tenants without their own.
#[derive(Debug, Clone, Default)]
pub struct TenantRules {
    default: PhraseRules,
    tenants: HashMap<TenantId, PhraseRules>,
}

impl TenantRules {
    /// Every tenant checked against `default`.
    pub fn new(default: PhraseRules) -> Self {
        Self {
            default,
            tenants: HashMap::new(),
        }
    }

    /// `tenant` checked against its own rules instead of the default.
    pub fn with_tenant(mut self, tenant: TenantId, rules: PhraseRules) -> Self {
        self.tenants.insert(tenant, rules);
        self
    }

    /// The rules that apply to `tenant`.
    pub fn for_tenant(&self, tenant: &TenantId) -> &PhraseRules {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// Checks `text` against `tenant`'s rules.
    pub fn check(&self, tenant: &TenantId, text: &str) -> Verdict {
        self.for_tenant(tenant).check(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PhraseRules {
        PhraseRules::from_presets([Preset::Finance, Preset::Advertising])
    }

    #[test]
    fn evasions_are_seen_through() {
        let r = rules();
        for text in [
            "保本",
            "保 本",
            "保　本",
            "保.本",
            "保，本",
            "保-本",
            "保\u{200b}本",
            "保*本",
            "保💰本",
            "RISK-FREE",
            "Ｒｉｓｋ－ｆｒｅｅ",
            "r i s k free",
        ] {
            let v = r.check(text);
            assert!(v.is_blocked(), "{text:?} passed");
        }
    }

    #[test]
    fn spans_point_at_the_text_as_written() {
        let v = rules().check("这个产品 保 本 哦");
        assert_eq!(v.hits.len(), 1);
        assert_eq!(v.hits[0].found, "保 本");
        assert_eq!(&"这个产品 保 本 哦"[v.hits[0].span.clone()], "保 本");
        assert_eq!(v.hits[0].category, "finance");
    }

    #[test]
    fn clean_text_and_near_misses_pass() {
        let r = rules();
        for text in [
            "您的订单已发货，预计明天送达。",
            "您最好先确认一下收货地址。",
            "保险单已寄出，本周内到达",
            "我们会确保本周内发货",
            "Your parcel is on its way.",
            "",
        ] {
            assert!(r.check(text).is_clean(), "{text:?} flagged");
        }
    }

    #[test]
    fn the_strongest_action_wins() {
        let r = PhraseRules::new([
            PhraseRule {
                phrase: "顶级".into(),
                action: RuleAction::Warn,
                category: "a".into(),
            },
            PhraseRule {
                phrase: "顶 级".into(),
                action: RuleAction::Block,
                category: "b".into(),
            },
        ]);
        assert_eq!(r.rules().len(), 1);
        assert!(r.check("顶级面料").is_blocked());
        let warn = rules().check("顶级面料，首选之作");
        assert_eq!(warn.action(), Some(RuleAction::Warn));
        assert_eq!(warn.phrases(), ["顶级", "首选"]);
        let both = rules().check("国家级顶级");
        assert_eq!(both.action(), Some(RuleAction::Block));
    }

    #[test]
    fn longest_phrase_is_reported() {
        let v = rules().check("稳赚不赔的机会");
        assert_eq!(v.phrases(), ["稳赚不赔"]);
    }

    #[test]
    fn empty_phrases_are_dropped() {
        let r = PhraseRules::new([PhraseRule {
            phrase: " ，".into(),
            action: RuleAction::Block,
            category: String::new(),
        }]);
        assert!(r.is_empty());
        assert!(r.check("anything").is_clean());
    }

    #[test]
    fn tenants_have_their_own_rules() {
        let bank = TenantId::new("bank").unwrap();
        let shop = TenantId::new("shop").unwrap();
        let t = TenantRules::new(PhraseRules::from_presets([Preset::Advertising]))
            .with_tenant(bank.clone(), PhraseRules::from_presets([Preset::Finance]));
        assert!(t.check(&bank, "保本理财").is_blocked());
        assert!(t.check(&shop, "保本理财").is_clean());
        assert!(t.check(&shop, "国家级品质").is_blocked());
    }

    #[test]
    fn rules_read_from_toml() {
        let r: Vec<PhraseRule> = toml::from_str::<HashMap<String, Vec<PhraseRule>>>(
            "rules = [{ phrase = \"内部价\" }, { phrase = \"秒杀\", action = \"warn\", category = \"promo\" }]",
        )
        .unwrap()
        .remove("rules")
        .unwrap();
        assert_eq!(r[0].action, RuleAction::Block);
        assert_eq!(r[1].action, RuleAction::Warn);
        let set = PhraseRules::new(r);
        assert_eq!(set.check("秒 杀价").action(), Some(RuleAction::Warn));
    }
}
