//! What the engine itself says to customers (an agent joined, your place in the queue, we are
//! closed...), as templates in Chinese and English that a desk can reword.
//!
//! A notice goes out in the language the customer writes in: their profile's language when it
//! is known, otherwise the script of their latest message (Chinese characters: Chinese).
//! Templates name their values in braces: `{name}`, `{ahead}`, `{wait}`, `{number}`, `{hours}`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A notice the engine sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notice {
    /// An agent took the conversation (`{name}`).
    Joined,
    /// The conversation waits for an agent (`{ahead}` customers first, about `{wait}`).
    Queued,
    /// The conversation waits for an agent (`{ahead}` customers first); no honest estimate yet.
    QueuedNoEstimate,
    /// The conversation was resolved.
    Resolved,
    /// A ticket was opened for the customer (`{number}`).
    TicketOpened,
    /// Nobody is at work: the request became ticket `{number}`; agents work `{hours}`.
    AfterHours,
    /// Another agent took over the conversation (`{name}`).
    Transferred,
    /// The bot promised a one-time code by SMS that could not be sent (no SMS channel, or the
    /// provider refused it).
    CodeNotSent,
}

impl Notice {
    /// Every notice.
    pub const ALL: [Notice; 8] = [
        Notice::Joined,
        Notice::Queued,
        Notice::QueuedNoEstimate,
        Notice::Resolved,
        Notice::TicketOpened,
        Notice::AfterHours,
        Notice::Transferred,
        Notice::CodeNotSent,
    ];

    fn default_text(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Notice::Joined, Lang::Zh) => "{name} 已接入，为您服务。",
            (Notice::Joined, Lang::En) => "{name} has joined and will help you.",
            (Notice::Queued, Lang::Zh) => {
                "正在为您转接人工客服，您前面还有 {ahead} 位，预计等待{wait}。"
            }
            (Notice::Queued, Lang::En) => {
                "Connecting you to an agent: {ahead} ahead of you, about {wait} to wait."
            }
            (Notice::QueuedNoEstimate, Lang::Zh) => {
                "正在为您转接人工客服，您前面还有 {ahead} 位，请稍候。"
            }
            (Notice::QueuedNoEstimate, Lang::En) => {
                "Connecting you to an agent: {ahead} ahead of you. Please hold on."
            }
            (Notice::Resolved, Lang::Zh) => "会话已结束，感谢您的咨询。",
            (Notice::Resolved, Lang::En) => "This conversation has been resolved. Thank you!",
            (Notice::TicketOpened, Lang::Zh) => {
                "已为您创建工单 #{number}，可随时询问“工单 {number} 进度”。"
            }
            (Notice::TicketOpened, Lang::En) => {
                "Ticket #{number} opened; ask \"where is my ticket {number}\" any time."
            }
            (Notice::AfterHours, Lang::Zh) => {
                "人工客服的服务时间是 {hours}，现在暂时无人在线。您的问题已登记为工单 #{number}，\
                 上班后我们会第一时间回复您；有补充可以直接在这里留言。"
            }
            (Notice::AfterHours, Lang::En) => {
                "Our agents work {hours} and nobody is in right now. Your request is ticket \
                 #{number}; we will answer as soon as we are back. Add anything here."
            }
            (Notice::Transferred, Lang::Zh) => "已为您转接给 {name}。",
            (Notice::Transferred, Lang::En) => "You have been transferred to {name}.",
            (Notice::CodeNotSent, Lang::Zh) => {
                "抱歉，验证码暂时无法发送，请稍后再试，或回复“转人工”联系人工客服。"
            }
            (Notice::CodeNotSent, Lang::En) => {
                "Sorry, I couldn't text the code just now. Please try again later, or type \"agent\" to reach a person."
            }
        }
    }
}

/// The languages notices come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The language of a profile tag (`zh-CN`, `en`); `None` for others.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next().unwrap_or(tag);
        match primary.to_ascii_lowercase().as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language a text is written in: Chinese when it holds a CJK character.
    pub fn of_text(text: &str) -> Self {
        if text.chars().any(is_cjk) {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// The primary tag (`zh`, `en`).
    pub const fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}')
}

/// The notice templates: the defaults, with a desk's own wording over them.
///
/// ```
/// use omnidesk::engine::{Lang, Notice, Texts};
/// let mut texts = Texts::default();
/// assert_eq!(texts.render(Notice::Joined, Lang::En, &[("name", "Alice")]), "Alice has joined and will help you.");
/// texts.set(Lang::En, Notice::Joined, "Hi, {name} here!").unwrap();
/// assert_eq!(texts.render(Notice::Joined, Lang::En, &[("name", "Alice")]), "Hi, Alice here!");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    /// Chinese overrides.
    #[serde(default)]
    pub zh: HashMap<Notice, String>,
    /// English overrides.
    #[serde(default)]
    pub en: HashMap<Notice, String>,
}

impl Texts {
    /// Rewords one notice in one language.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an empty template or one naming a value the notice does not
    /// have (a typo would otherwise reach customers as `{nmae}`).
    pub fn set(&mut self, lang: Lang, notice: Notice, template: &str) -> crate::Result<()> {
        Self::check(notice, template)?;
        let map = match lang {
            Lang::Zh => &mut self.zh,
            Lang::En => &mut self.en,
        };
        map.insert(notice, template.to_owned());
        Ok(())
    }

    /// Checks every override (as [`Texts::set`] does); for texts read from a config file.
    ///
    /// # Errors
    /// As [`Texts::set`].
    pub fn validate(&self) -> crate::Result<()> {
        for (notice, template) in self.zh.iter().chain(&self.en) {
            Self::check(*notice, template)?;
        }
        Ok(())
    }

    fn check(notice: Notice, template: &str) -> crate::Result<()> {
        let bad = |reason: String| crate::Error::Config { reason };
        if template.trim().is_empty() {
            return Err(bad(format!("the {notice:?} text is empty")));
        }
        let known: Vec<&str> = placeholders(notice.default_text(Lang::En)).collect();
        if let Some(unknown) = placeholders(template).find(|p| !known.contains(p)) {
            return Err(bad(format!(
                "the {notice:?} text names {{{unknown}}}; it can use {}",
                known
                    .iter()
                    .map(|k| format!("{{{k}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    /// The notice in `lang` with `values` filled in.
    pub fn render(&self, notice: Notice, lang: Lang, values: &[(&str, &str)]) -> String {
        let map = match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        };
        let template = map
            .get(&notice)
            .map(String::as_str)
            .unwrap_or_else(|| notice.default_text(lang));
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) => {
                    let key = &after[..close];
                    match values.iter().find(|(k, _)| *k == key) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&rest[open..open + close + 2]),
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// A wait of `seconds` in words (`约 3 分钟`, `about 3 minutes`).
    pub fn wait(lang: Lang, seconds: i64) -> String {
        let minutes = (seconds + 59) / 60;
        match (lang, minutes) {
            (Lang::Zh, ..=1) => "不到 1 分钟".into(),
            (Lang::En, ..=1) => "under a minute".into(),
            (Lang::Zh, m) => format!("约 {m} 分钟"),
            (Lang::En, m) => format!("{m} minutes"),
        }
    }
}

/// The `{name}`s of a template.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(k, _)| k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_has_both_languages_with_the_same_values() {
        for n in Notice::ALL {
            let zh: Vec<_> = placeholders(n.default_text(Lang::Zh)).collect();
            let mut en: Vec<_> = placeholders(n.default_text(Lang::En)).collect();
            let mut zh_sorted = zh.clone();
            zh_sorted.sort();
            zh_sorted.dedup();
            en.sort();
            en.dedup();
            assert_eq!(zh_sorted, en, "{n:?}");
        }
    }

    #[test]
    fn rendering_fills_known_values_and_keeps_the_rest() {
        let t = Texts::default();
        let s = t.render(
            Notice::Queued,
            Lang::Zh,
            &[("ahead", "2"), ("wait", &Texts::wait(Lang::Zh, 150))],
        );
        assert_eq!(
            s,
            "正在为您转接人工客服，您前面还有 2 位，预计等待约 3 分钟。"
        );
        assert_eq!(
            t.render(Notice::Joined, Lang::En, &[]),
            "{name} has joined and will help you."
        );
        assert_eq!(Texts::wait(Lang::En, 20), "under a minute");
    }

    #[test]
    fn typos_in_templates_are_refused() {
        let mut t = Texts::default();
        assert!(t.set(Lang::Zh, Notice::Joined, "{nmae} 来了").is_err());
        assert!(t.set(Lang::Zh, Notice::Joined, "  ").is_err());
        t.set(Lang::Zh, Notice::Joined, "{name} 来了").unwrap();
        assert_eq!(
            t.render(Notice::Joined, Lang::Zh, &[("name", "小王")]),
            "小王 来了"
        );
    }

    #[test]
    fn languages_from_tags_and_text() {
        assert_eq!(Lang::from_tag("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_tag("en_US"), Some(Lang::En));
        assert_eq!(Lang::from_tag("fr"), None);
        assert_eq!(Lang::of_text("where is 我的订单"), Lang::Zh);
        assert_eq!(Lang::of_text("where is my order"), Lang::En);
    }
}
