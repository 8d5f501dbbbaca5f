//! Sentiment and emotion of a customer message, for Chinese and English, from a lexicon with
//! negation and intensifiers. Cheap enough to run on every message; the result feeds routing
//! priority ([`Sentiment::priority`]) and the hand-over decision.

use cs_core::Priority;
use serde::{Deserialize, Serialize};

use crate::features::jieba;
use crate::text::is_cjk;

/// Overall polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Polarity {
    /// Unhappy.
    Negative,
    /// Neither.
    #[default]
    Neutral,
    /// Happy.
    Positive,
}

impl Polarity {
    /// `negative`, `neutral` or `positive`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Negative => "negative",
            Self::Neutral => "neutral",
            Self::Positive => "positive",
        }
    }
}

/// The dominant emotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Emotion {
    /// Nothing stands out.
    #[default]
    Calm,
    /// Angry, outraged.
    Anger,
    /// Worried, in a hurry.
    Anxiety,
    /// Disappointed, sad.
    Disappointment,
    /// Pleased, grateful.
    Joy,
}

impl Emotion {
    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Calm => "calm",
            Self::Anger => "anger",
            Self::Anxiety => "anxiety",
            Self::Disappointment => "disappointment",
            Self::Joy => "joy",
        }
    }
}

/// The sentiment of one message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Sentiment {
    /// From -1 (very negative) to 1 (very positive).
    pub score: f32,
    /// The polarity the score falls in.
    pub polarity: Polarity,
    /// The dominant emotion.
    pub emotion: Emotion,
}

impl Sentiment {
    /// The routing priority this sentiment asks for: angry or very negative customers are
    /// urgent, negative or anxious ones high, others normal.
    pub fn priority(&self) -> Priority {
        if self.score <= -0.6 || (self.emotion == Emotion::Anger && self.score < -0.3) {
            Priority::Urgent
        } else if self.polarity == Polarity::Negative || self.emotion == Emotion::Anxiety {
            Priority::High
        } else {
            Priority::Normal
        }
    }

    /// Whether this alone is reason to hand the customer to a human.
    pub fn is_upset(&self) -> bool {
        self.priority() == Priority::Urgent
    }
}

/// Valence (-3 to 3) and emotion of lexicon entries.
type Entry = (&'static str, f32, Emotion);

use Emotion::{Anger as An, Anxiety as Ax, Calm as Ca, Disappointment as Di, Joy as Jo};

#[rustfmt::skip]
const EN: &[Entry] = &[
    ("good", 1.5, Jo), ("great", 2.5, Jo), ("excellent", 3.0, Jo), ("perfect", 3.0, Jo),
    ("love", 2.5, Jo), ("like", 1.0, Ca), ("happy", 2.0, Jo), ("glad", 1.8, Jo),
    ("thanks", 1.5, Jo), ("thank", 1.5, Jo), ("appreciate", 2.0, Jo), ("awesome", 2.8, Jo),
    ("amazing", 2.8, Jo), ("nice", 1.8, Jo), ("helpful", 2.0, Jo), ("satisfied", 2.0, Jo),
    ("fast", 1.2, Jo), ("quick", 1.0, Jo), ("easy", 1.2, Jo), ("works", 1.0, Ca),
    ("fine", 0.8, Ca), ("ok", 0.5, Ca), ("okay", 0.5, Ca), ("wonderful", 2.8, Jo),
    ("recommend", 1.8, Jo), ("resolved", 1.5, Jo), ("solved", 1.5, Jo), ("best", 2.5, Jo),
    ("bad", -2.0, Di), ("terrible", -3.0, An), ("awful", -3.0, An), ("horrible", -3.0, An),
    ("worst", -3.0, An), ("hate", -2.8, An), ("angry", -2.8, An), ("furious", -3.0, An),
    ("mad", -2.2, An), ("ridiculous", -2.5, An), ("unacceptable", -2.8, An),
    ("scam", -3.0, An), ("fraud", -3.0, An), ("cheated", -3.0, An), ("rip", -1.5, An),
    ("useless", -2.5, An), ("rubbish", -2.5, An), ("garbage", -2.8, An), ("crap", -2.5, An),
    ("disgusting", -3.0, An), ("outrageous", -3.0, An), ("complaint", -2.0, An),
    ("complain", -2.0, An), ("lawyer", -2.5, An), ("sue", -2.5, An), ("annoyed", -2.0, An),
    ("annoying", -2.0, An), ("fed", -1.0, An), ("rude", -2.5, An), ("liar", -3.0, An),
    ("lied", -2.5, An), ("wtf", -2.8, An), ("damn", -2.0, An), ("stupid", -2.5, An),
    ("disappointed", -2.2, Di), ("disappointing", -2.2, Di), ("sad", -2.0, Di),
    ("unhappy", -2.2, Di), ("upset", -2.2, Di), ("poor", -1.8, Di), ("broken", -1.8, Di),
    ("damaged", -1.8, Di), ("defective", -2.0, Di), ("wrong", -1.5, Di), ("missing", -1.8, Di),
    ("lost", -1.2, Di), ("never", -1.0, Di), ("problem", -1.2, Di), ("issue", -0.8, Di),
    ("fail", -1.8, Di), ("failed", -1.8, Di), ("fails", -1.8, Di), ("slow", -1.5, Di),
    ("late", -1.5, Di), ("delay", -1.2, Di), ("delayed", -1.5, Di), ("still", -0.4, Di),
    ("waste", -2.2, Di), ("worse", -2.2, Di), ("cheap", -0.8, Di), ("fake", -2.5, An),
    ("urgent", -1.0, Ax), ("urgently", -1.0, Ax), ("asap", -1.0, Ax), ("hurry", -1.0, Ax),
    ("worried", -1.8, Ax), ("worry", -1.5, Ax), ("anxious", -1.8, Ax), ("immediately", -0.8, Ax),
    ("help", -0.3, Ax), ("waiting", -0.8, Ax), ("scared", -1.8, Ax), ("nervous", -1.5, Ax),
];

#[rustfmt::skip]
const ZH: &[Entry] = &[
    ("好", 1.2, Jo), ("很好", 2.0, Jo), ("不错", 1.8, Jo), ("满意", 2.0, Jo), ("喜欢", 2.0, Jo),
    ("谢谢", 1.5, Jo), ("感谢", 1.8, Jo), ("多谢", 1.5, Jo), ("赞", 2.2, Jo), ("棒", 2.2, Jo),
    ("给力", 2.2, Jo), ("完美", 3.0, Jo), ("好评", 2.5, Jo), ("开心", 2.2, Jo), ("高兴", 2.0, Jo),
    ("快", 1.0, Jo), ("及时", 1.5, Jo), ("方便", 1.5, Jo), ("耐心", 1.8, Jo), ("专业", 1.5, Jo),
    ("解决", 1.0, Jo), ("推荐", 1.8, Jo), ("靠谱", 2.0, Jo), ("贴心", 2.0, Jo), ("优秀", 2.5, Jo),
    ("差", -2.0, Di), ("太差", -2.8, An), ("很差", -2.5, Di), ("差评", -2.8, An),
    ("垃圾", -3.0, An), ("骗子", -3.0, An), ("骗人", -3.0, An), ("欺骗", -3.0, An),
    ("坑", -2.5, An), ("坑人", -3.0, An), ("投诉", -2.2, An), ("生气", -2.5, An),
    ("气死", -3.0, An), ("愤怒", -3.0, An), ("恶心", -2.8, An), ("无语", -2.0, An),
    ("离谱", -2.5, An), ("过分", -2.5, An), ("太过分", -3.0, An), ("忍无可忍", -3.0, An),
    ("什么玩意", -2.5, An), ("烂", -2.5, An), ("假货", -2.8, An), ("欺诈", -3.0, An),
    ("举报", -2.2, An), ("曝光", -2.0, An), ("态度", -0.5, An), ("敷衍", -2.5, An),
    ("霸王", -2.0, An), ("黑心", -3.0, An), ("滚", -2.8, An), ("投诉你们", -2.8, An),
    ("失望", -2.2, Di), ("难过", -2.0, Di), ("伤心", -2.2, Di), ("郁闷", -1.8, Di),
    ("遗憾", -1.5, Di), ("糟糕", -2.2, Di), ("破损", -1.8, Di), ("损坏", -1.8, Di),
    ("坏", -1.8, Di), ("坏了", -1.8, Di), ("问题", -0.8, Di), ("慢", -1.5, Di),
    ("太慢", -2.2, Di), ("延迟", -1.5, Di), ("丢", -1.5, Di), ("丢件", -2.0, Di),
    ("错", -1.2, Di), ("发错", -2.0, Di), ("少", -0.6, Di), ("漏发", -2.0, Di),
    ("不满", -2.2, An), ("不满意", -2.2, Di), ("不行", -1.5, Di), ("不好", -1.8, Di),
    ("没用", -2.0, Di), ("麻烦", -0.8, Di), ("一直", -0.5, Di), ("还没", -0.8, Di),
    ("质量差", -2.5, Di), ("后悔", -2.0, Di), ("不好用", -2.0, Di), ("破", -1.2, Di), ("退钱", -1.5, An), ("不靠谱", -2.2, An),
    ("急", -1.2, Ax), ("着急", -1.5, Ax), ("急用", -1.2, Ax), ("赶紧", -1.2, Ax),
    ("马上", -0.5, Ax), ("担心", -1.5, Ax), ("焦虑", -1.8, Ax), ("快点", -1.0, Ax),
    ("催", -1.0, Ax), ("尽快", -0.8, Ax), ("害怕", -1.5, Ax), ("怎么还", -1.2, Ax),
];

#[rustfmt::skip]
const NEGATORS_EN: &[&str] = &[
    "not", "no", "never", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "cant", "cannot",
    "wont", "havent", "hasnt", "nothing", "without", "hardly", "neither", "nor",
];
const NEGATORS_ZH: &[&str] = &[
    "不",
    "没",
    "没有",
    "别",
    "未",
    "无",
    "非",
    "并不",
    "不是",
    "不太",
    "不怎么",
];

/// (word, multiplier): above 1 intensifies, below 1 softens.
#[rustfmt::skip]
const INTENSIFIERS: &[(&str, f32)] = &[
    ("very", 1.5), ("really", 1.5), ("so", 1.4), ("extremely", 1.8), ("totally", 1.6),
    ("absolutely", 1.7), ("completely", 1.6), ("too", 1.4), ("super", 1.6), ("incredibly", 1.8),
    ("quite", 1.2), ("a", 1.0), ("bit", 0.6), ("slightly", 0.6), ("somewhat", 0.7),
    ("kinda", 0.7), ("little", 0.7),
    ("很", 1.4), ("非常", 1.6), ("太", 1.6), ("特别", 1.6), ("超级", 1.7), ("超", 1.5),
    ("真", 1.4), ("真的", 1.4), ("极其", 1.8), ("十分", 1.5), ("相当", 1.3), ("好", 1.3),
    ("有点", 0.7), ("有些", 0.7), ("稍微", 0.6), ("略", 0.6), ("比较", 0.9),
];

/// Contrast words: what follows outweighs what came before ("good price, but the parcel broke").
const CONTRAST: &[&str] = &[
    "but", "however", "though", "although", "但", "但是", "可是", "不过", "然而",
];

fn lookup(word: &str) -> Option<(f32, Emotion)> {
    EN.iter()
        .chain(ZH)
        .find(|(w, _, _)| *w == word)
        .map(|(_, v, e)| (*v, *e))
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut latin = String::new();
    let mut cjk = String::new();
    let flush_latin = |latin: &mut String, out: &mut Vec<String>| {
        if !latin.is_empty() {
            out.push(std::mem::take(latin));
        }
    };
    let flush_cjk = |cjk: &mut String, out: &mut Vec<String>| {
        if !cjk.is_empty() {
            out.extend(
                jieba()
                    .cut(cjk, true)
                    .into_iter()
                    .map(|t| t.word.to_owned()),
            );
            cjk.clear();
        }
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_latin(&mut latin, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            latin.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            // "don't" -> "dont"
        } else {
            flush_latin(&mut latin, &mut out);
            flush_cjk(&mut cjk, &mut out);
            if matches!(c, '!' | '！') {
                out.push("!".into());
            }
        }
    }
    flush_latin(&mut latin, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

/// Scores a message.
///
/// ```
/// use cs_bot::{Emotion, Polarity, sentiment};
///
/// assert_eq!(sentiment("Thanks, that was really helpful!").polarity, Polarity::Positive);
/// assert_eq!(sentiment("not good at all").polarity, Polarity::Negative);
/// let s = sentiment("你们太坑人了，我要投诉！");
/// assert_eq!((s.polarity, s.emotion), (Polarity::Negative, Emotion::Anger));
/// assert_eq!(sentiment("我的快递到哪了").polarity, Polarity::Neutral);
/// ```
pub fn sentiment(text: &str) -> Sentiment {
    let toks = tokens(text);
    let mut total = 0.0f32;
    let mut emotions = [0.0f32; 5];
    let mut after_contrast = false;
    let mut before = 0.0f32;
    for (i, t) in toks.iter().enumerate() {
        if CONTRAST.contains(&t.as_str()) {
            before = total;
            total = 0.0;
            after_contrast = true;
            continue;
        }
        // A single CJK character is split off by jieba too; look it up, then look at up to three
        // preceding tokens for negators and intensifiers.
        let Some((mut v, mut emo)) = lookup(t) else {
            continue;
        };
        // "好" is an intensifier when another sentiment word follows ("好慢").
        if t == "好" && toks.get(i + 1).and_then(|n| lookup(n)).is_some() {
            continue;
        }
        let mut negated = false;
        for back in 1..=3 {
            let Some(p) = i.checked_sub(back).map(|j| toks[j].as_str()) else {
                break;
            };
            if NEGATORS_EN.contains(&p) || NEGATORS_ZH.contains(&p) {
                negated = !negated;
            } else if let Some((_, m)) = INTENSIFIERS.iter().find(|(w, _)| *w == p) {
                v *= m;
            } else if lookup(p).is_some() || CONTRAST.contains(&p) {
                break;
            }
        }
        if negated {
            // "not good" is mildly negative; "not bad" mildly positive; "not angry" calm.
            v *= -0.6;
            emo = if v > 0.0 {
                Emotion::Calm
            } else {
                Emotion::Disappointment
            };
        }
        total += v;
        let slot = match emo {
            Emotion::Calm => 0,
            Emotion::Anger => 1,
            Emotion::Anxiety => 2,
            Emotion::Disappointment => 3,
            Emotion::Joy => 4,
        };
        emotions[slot] += v.abs();
    }
    if after_contrast {
        total += before * 0.3;
    }
    // Exclamation marks and shouting amplify whatever is there.
    let bangs = toks.iter().filter(|t| *t == "!").count().min(3) as f32;
    let letters: Vec<char> = text.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    let shouting = letters.len() >= 6 && letters.iter().all(|c| c.is_ascii_uppercase());
    total *= 1.0 + 0.15 * bangs + if shouting { 0.3 } else { 0.0 };
    let score = total / (total * total + 6.0).sqrt();
    let polarity = if score >= 0.2 {
        Polarity::Positive
    } else if score <= -0.2 {
        Polarity::Negative
    } else {
        Polarity::Neutral
    };
    let (best, weight) = emotions
        .iter()
        .enumerate()
        .skip(1)
        .fold(
            (0, 0.0f32),
            |acc, (i, w)| if *w > acc.1 { (i, *w) } else { acc },
        );
    let emotion = if weight < 1.0 || polarity == Polarity::Neutral && best != 2 {
        Emotion::Calm
    } else {
        [Ca, An, Ax, Di, Jo][best]
    };
    Sentiment {
        score,
        polarity,
        emotion,
    }
}
