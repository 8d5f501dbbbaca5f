//! The IVR menu engine: a tree of menus whose options (a DTMF key or spoken keywords) lead to a
//! sub-menu, a queue with the skills it needs, or the end of the call; with time-outs, repeats
//! and invalid-input handling, and time from a [`Clock`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use cs_core::Clock;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What choosing an option (or running out of attempts) does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum IvrAction {
    /// Go to another menu.
    Menu {
        /// The menu's id.
        menu: String,
    },
    /// Hand the call to a queue, for agents with these skills.
    Route {
        /// The queue's name.
        queue: String,
        /// Skills the answering agent needs.
        #[serde(default)]
        skills: Vec<String>,
        /// What to say before queueing.
        #[serde(default)]
        say: Option<String>,
    },
    /// Say something and end the call.
    Hangup {
        /// What to say first.
        #[serde(default)]
        say: Option<String>,
    },
    /// Say the current menu again (does not count as an attempt).
    Repeat,
}

impl IvrAction {
    /// Route to `queue` needing `skills`.
    pub fn route<S: Into<String>>(
        queue: impl Into<String>,
        skills: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::Route {
            queue: queue.into(),
            skills: skills.into_iter().map(Into::into).collect(),
            say: None,
        }
    }

    /// Go to menu `id`.
    pub fn menu(id: impl Into<String>) -> Self {
        Self::Menu { menu: id.into() }
    }
}

/// One choice in a menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrOption {
    /// The key that chooses it (`0`-`9`, `*`, `#`).
    #[serde(default)]
    pub digit: Option<char>,
    /// Words that choose it when spoken (matched without case; whole words for Latin script,
    /// substrings for Chinese and other scripts without spaces).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// What it does.
    pub action: IvrAction,
}

impl IvrOption {
    /// The option chosen by `digit`.
    pub fn digit(digit: char, action: IvrAction) -> Self {
        Self {
            digit: Some(digit),
            keywords: Vec::new(),
            action,
        }
    }

    /// Adds spoken keywords.
    pub fn with_keywords<S: Into<String>>(mut self, keywords: impl IntoIterator<Item = S>) -> Self {
        self.keywords.extend(keywords.into_iter().map(Into::into));
        self
    }
}

/// One menu: a prompt and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrMenu {
    /// What is said.
    pub prompt: String,
    /// The choices.
    #[serde(default)]
    pub options: Vec<IvrOption>,
    /// Seconds to wait for input here (else the tree's default).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

impl IvrMenu {
    /// A menu saying `prompt`.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            options: Vec::new(),
            timeout_secs: None,
        }
    }

    /// Adds an option.
    pub fn with_option(mut self, option: IvrOption) -> Self {
        self.options.push(option);
        self
    }

    /// Waits `secs` for input in this menu.
    pub fn with_timeout_secs(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_timeout() -> u32 {
    5
}
fn default_invalid() -> String {
    "Sorry, that is not one of the choices.".into()
}
fn default_no_input() -> String {
    "Sorry, I did not hear a choice.".into()
}
fn default_fallback() -> IvrAction {
    IvrAction::Hangup {
        say: Some("Goodbye.".into()),
    }
}

/// A whole IVR: menus by id, where calls start, and what happens on silence and wrong input.
/// Loaded from TOML ([`IvrTree::from_toml`]) or built in code ([`IvrTree::builder`]).
///
/// ```toml
/// start = "main"
/// max_attempts = 3
/// fallback = { type = "route", queue = "general" }
///
/// [menus.main]
/// prompt = "Press 1 for orders, 2 for refunds."
/// options = [
///   { digit = "1", keywords = ["order", "订单"], action = { type = "route", queue = "orders", skills = ["logistics"] } },
///   { digit = "2", keywords = ["refund", "退款"], action = { type = "menu", menu = "refunds" } },
/// ]
///
/// [menus.refunds]
/// prompt = "Press 1 if the parcel arrived, 2 if it did not."
/// options = [
///   { digit = "1", action = { type = "route", queue = "refunds", skills = ["returns"] } },
///   { digit = "2", action = { type = "route", queue = "refunds", skills = ["logistics"] } },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrTree {
    /// The menu a call starts in.
    pub start: String,
    /// The menus by id.
    pub menus: BTreeMap<String, IvrMenu>,
    /// Wrong or missing answers allowed per menu before the fallback (at least 1).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Seconds to wait for input (default 5).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Said before repeating a menu after a wrong answer.
    #[serde(default = "default_invalid")]
    pub invalid_prompt: String,
    /// Said before repeating a menu after silence.
    #[serde(default = "default_no_input")]
    pub no_input_prompt: String,
    /// What happens when the attempts run out (default: say goodbye and hang up).
    #[serde(default = "default_fallback")]
    pub fallback: IvrAction,
    /// The key that repeats a menu (default `*`).
    #[serde(default = "default_repeat")]
    pub repeat_digit: Option<char>,
    /// The callers' language for speech recognition and speech (`en-US`, `zh-CN`).
    #[serde(default)]
    pub language: Option<String>,
}

fn default_repeat() -> Option<char> {
    Some('*')
}

impl IvrTree {
    /// Starts a tree whose calls begin in menu `start`.
    pub fn builder(start: impl Into<String>) -> IvrTreeBuilder {
        IvrTreeBuilder {
            tree: IvrTree {
                start: start.into(),
                menus: BTreeMap::new(),
                max_attempts: default_attempts(),
                timeout_secs: default_timeout(),
                invalid_prompt: default_invalid(),
                no_input_prompt: default_no_input(),
                fallback: default_fallback(),
                repeat_digit: default_repeat(),
                language: None,
            },
        }
    }

    /// Parses and checks a tree written in TOML.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad TOML or a tree [`IvrTree::validate`] refuses;
    /// [`Error::PayloadTooLarge`] over [`crate::limits::MAX_TOML_BYTES`] and
    /// [`Error::TooComplex`] nested deeper than [`crate::limits::MAX_TOML_DEPTH`], before parsing.
    pub fn from_toml(text: &str) -> Result<Self> {
        crate::limits::check_toml(
            text,
            crate::limits::MAX_TOML_BYTES,
            crate::limits::MAX_TOML_DEPTH,
        )?;
        let tree: Self =
            toml::from_str(text).map_err(|e| Error::invalid(format!("IVR tree: {e}")))?;
        tree.validate()?;
        Ok(tree)
    }

    /// Reads [`IvrTree::from_toml`] from a file.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the file cannot be read or is not a valid tree;
    /// [`Error::PayloadTooLarge`] for a file over [`crate::limits::MAX_TOML_BYTES`] (no more
    /// than one byte past the limit is read).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        use std::io::Read;
        let path = path.as_ref();
        let limit = crate::limits::MAX_TOML_BYTES;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit as u64 + 1).read_to_string(&mut text))
            .map_err(|e| Error::invalid(format!("IVR tree {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// Checks that the start menu and every menu an action names exist, keys are valid and
    /// unique within a menu, prompts are not blank, and routes name a queue.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first problem.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid(format!("IVR tree: {reason}")));
        if !self.menus.contains_key(&self.start) {
            return bad(format!("start menu {:?} does not exist", self.start));
        }
        if self.max_attempts == 0 || self.timeout_secs == 0 {
            return bad("max_attempts and timeout_secs must be at least 1".into());
        }
        let check_action = |where_: &str, action: &IvrAction| -> Result<()> {
            match action {
                IvrAction::Menu { menu } if !self.menus.contains_key(menu) => {
                    bad(format!("{where_} goes to unknown menu {menu:?}"))
                }
                IvrAction::Route { queue, .. } if queue.trim().is_empty() => {
                    bad(format!("{where_} routes to a blank queue"))
                }
                _ => Ok(()),
            }
        };
        if self.fallback == IvrAction::Repeat {
            return bad("the fallback cannot be repeat: calls would never leave".into());
        }
        check_action("fallback", &self.fallback)?;
        for (id, menu) in &self.menus {
            if menu.prompt.trim().is_empty() {
                return bad(format!("menu {id:?} has a blank prompt"));
            }
            let mut seen = Vec::new();
            for option in &menu.options {
                if let Some(d) = option.digit {
                    if !(d.is_ascii_digit() || d == '*' || d == '#') {
                        return bad(format!("menu {id:?} has key {d:?}, not 0-9, * or #"));
                    }
                    if seen.contains(&d) || Some(d) == self.repeat_digit {
                        return bad(format!("menu {id:?} uses key {d:?} twice"));
                    }
                    seen.push(d);
                }
                if option.digit.is_none() && option.keywords.iter().all(|k| k.trim().is_empty()) {
                    return bad(format!(
                        "menu {id:?} has an option with neither key nor keyword"
                    ));
                }
                check_action(&format!("menu {id:?}"), &option.action)?;
            }
        }
        Ok(())
    }

    fn timeout_of(&self, menu: &IvrMenu) -> u32 {
        menu.timeout_secs.unwrap_or(self.timeout_secs)
    }
}

/// Builds an [`IvrTree`] in code.
#[derive(Debug, Clone)]
pub struct IvrTreeBuilder {
    tree: IvrTree,
}

impl IvrTreeBuilder {
    /// Adds menu `id`.
    pub fn with_menu(mut self, id: impl Into<String>, menu: IvrMenu) -> Self {
        self.tree.menus.insert(id.into(), menu);
        self
    }

    /// Wrong or missing answers allowed per menu.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.tree.max_attempts = n;
        self
    }

    /// Seconds to wait for input.
    pub fn with_timeout_secs(mut self, secs: u32) -> Self {
        self.tree.timeout_secs = secs;
        self
    }

    /// What happens when the attempts run out.
    pub fn with_fallback(mut self, action: IvrAction) -> Self {
        self.tree.fallback = action;
        self
    }

    /// The callers' language.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.tree.language = Some(language.into());
        self
    }

    /// Checks and returns the tree.
    ///
    /// # Errors
    /// As [`IvrTree::validate`].
    pub fn build(self) -> Result<IvrTree> {
        self.tree.validate()?;
        Ok(self.tree)
    }
}

/// What the caller did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IvrInput {
    /// Keys pressed.
    Digits(String),
    /// Speech the provider recognised.
    Speech(String),
    /// Nothing within the time-out.
    Timeout,
}

/// What to do with the call next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IvrStep {
    /// Say `text` and wait up to `timeout_secs` for a key or speech.
    Prompt {
        /// The menu's id.
        menu: String,
        /// What to say (a notice about the last answer, then the menu's prompt).
        text: String,
        /// How long to wait.
        timeout_secs: u32,
        /// The menu's keywords, as speech-recognition hints.
        hints: Vec<String>,
    },
    /// Put the call in `queue` for agents with `skills`.
    Route {
        /// The queue.
        queue: String,
        /// Skills needed.
        skills: Vec<String>,
        /// What to say first.
        say: Option<String>,
        /// The menus passed through, start first.
        path: Vec<String>,
        /// When the call entered the IVR (by the clock).
        started_at: DateTime<Utc>,
    },
    /// Say `say` and hang up.
    Hangup {
        /// What to say.
        say: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct CallState {
    menu: String,
    attempts: u32,
    path: Vec<String>,
    started_at: DateTime<Utc>,
    /// When the caller must have answered the current prompt.
    deadline: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    /// The last request's key and answer, so a provider's retry gets the same answer.
    last: Option<(String, IvrStep)>,
    finished: bool,
}

/// Runs calls through an [`IvrTree`]: one state per call id, time from the [`Clock`].
#[derive(Debug)]
pub struct Ivr {
    tree: Arc<IvrTree>,
    clock: Arc<dyn Clock>,
    calls: Mutex<HashMap<String, CallState>>,
    call_ttl: Duration,
}

const NUMBER_WORDS: [(&str, char); 22] = [
    ("zero", '0'),
    ("oh", '0'),
    ("one", '1'),
    ("two", '2'),
    ("three", '3'),
    ("four", '4'),
    ("five", '5'),
    ("six", '6'),
    ("seven", '7'),
    ("eight", '8'),
    ("nine", '9'),
    ("零", '0'),
    ("一", '1'),
    ("二", '2'),
    ("两", '2'),
    ("三", '3'),
    ("四", '4'),
    ("五", '5'),
    ("六", '6'),
    ("七", '7'),
    ("八", '8'),
    ("九", '9'),
];

/// The key a short spoken answer names ("1", "one", "press two", "三"), if any.
fn spoken_digit(speech: &str) -> Option<char> {
    let words: Vec<String> = speech
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !matches!(w.as_str(), "press" | "number" | "option" | "按"))
        .collect();
    match words.as_slice() {
        [w] => {
            let mut chars = w.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() => Some(c),
                _ => NUMBER_WORDS
                    .iter()
                    .find(|(name, _)| name == w)
                    .map(|(_, d)| *d),
            }
        }
        _ => None,
    }
}

/// Whether `keyword` occurs in `speech`: as whole words for space-separated scripts, as a
/// substring for scripts written without spaces.
fn keyword_matches(speech: &str, keyword: &str) -> bool {
    let keyword = keyword.trim().to_lowercase();
    if keyword.is_empty() {
        return false;
    }
    let speech = speech.to_lowercase();
    if !keyword.is_ascii() {
        return speech.contains(&keyword);
    }
    let words: Vec<&str> = speech
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let wanted: Vec<&str> = keyword.split_whitespace().collect();
    words.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

impl Ivr {
    /// An IVR over `tree` (checked with [`IvrTree::validate`]); a call silent for 30 minutes is
    /// forgotten.
    ///
    /// # Errors
    /// As [`IvrTree::validate`].
    pub fn new(tree: IvrTree, clock: Arc<dyn Clock>) -> Result<Self> {
        tree.validate()?;
        Ok(Self {
            tree: Arc::new(tree),
            clock,
            calls: Mutex::new(HashMap::new()),
            call_ttl: Duration::minutes(30),
        })
    }

    /// The tree.
    pub fn tree(&self) -> &IvrTree {
        &self.tree
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CallState>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many calls are in the menus now.
    pub fn active_calls(&self) -> usize {
        self.lock().values().filter(|c| !c.finished).count()
    }

    fn prompt(&self, state: &mut CallState, notice: Option<&str>, now: DateTime<Utc>) -> IvrStep {
        let menu = &self.tree.menus[&state.menu];
        let timeout_secs = self.tree.timeout_of(menu);
        state.deadline = now + Duration::seconds(i64::from(timeout_secs));
        let text = match notice {
            Some(n) => format!("{n} {}", menu.prompt),
            None => menu.prompt.clone(),
        };
        IvrStep::Prompt {
            menu: state.menu.clone(),
            text,
            timeout_secs,
            hints: menu
                .options
                .iter()
                .flat_map(|o| o.keywords.iter().cloned())
                .collect(),
        }
    }

    fn apply(&self, state: &mut CallState, action: &IvrAction, now: DateTime<Utc>) -> IvrStep {
        match action {
            IvrAction::Menu { menu } => {
                state.menu = menu.clone();
                state.attempts = 0;
                state.path.push(menu.clone());
                self.prompt(state, None, now)
            }
            IvrAction::Repeat => self.prompt(state, None, now),
            IvrAction::Route { queue, skills, say } => {
                state.finished = true;
                IvrStep::Route {
                    queue: queue.clone(),
                    skills: skills.clone(),
                    say: say.clone(),
                    path: state.path.clone(),
                    started_at: state.started_at,
                }
            }
            IvrAction::Hangup { say } => {
                state.finished = true;
                IvrStep::Hangup { say: say.clone() }
            }
        }
    }

    fn retry(&self, state: &mut CallState, notice: &str, now: DateTime<Utc>) -> IvrStep {
        state.attempts += 1;
        if state.attempts >= self.tree.max_attempts {
            // A fallback menu starts with fresh attempts.
            let fallback = self.tree.fallback.clone();
            self.apply(state, &fallback, now)
        } else {
            self.prompt(state, Some(notice), now)
        }
    }

    fn choose(&self, state: &mut CallState, input: &IvrInput, now: DateTime<Utc>) -> IvrStep {
        let menu = &self.tree.menus[&state.menu];
        let digit = match input {
            IvrInput::Timeout => {
                let notice = self.tree.no_input_prompt.clone();
                return self.retry(state, &notice, now);
            }
            IvrInput::Digits(d) => {
                let d = d.trim();
                let mut chars = d.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    (None, _) => {
                        let notice = self.tree.no_input_prompt.clone();
                        return self.retry(state, &notice, now);
                    }
                    _ => None,
                }
            }
            IvrInput::Speech(s) => spoken_digit(s),
        };
        if digit.is_some() && digit == self.tree.repeat_digit {
            return self.prompt(state, None, now);
        }
        let chosen = match (digit, input) {
            (Some(d), _) => menu.options.iter().find(|o| o.digit == Some(d)),
            (None, IvrInput::Speech(s)) => menu
                .options
                .iter()
                .find(|o| o.keywords.iter().any(|k| keyword_matches(s, k))),
            _ => None,
        };
        match chosen {
            Some(option) => {
                let action = option.action.clone();
                self.apply(state, &action, now)
            }
            None => {
                let notice = self.tree.invalid_prompt.clone();
                self.retry(state, &notice, now)
            }
        }
    }

    /// Answers one request for `call`: the first starts the call in the start menu (`input` is
    /// ignored), later ones apply `input`. A request with the same `request_key` as the last
    /// one (a provider's retry) gets the same answer again without moving the call on. A call
    /// that has been routed or hung up answers with its last step.
    pub fn respond(&self, call: &str, request_key: Option<&str>, input: IvrInput) -> IvrStep {
        let now = self.clock.now();
        let mut calls = self.lock();
        if let Some(state) = calls.get(call)
            && now - state.last_seen > self.call_ttl
        {
            calls.remove(call);
        }
        let state = match calls.get_mut(call) {
            Some(state) => state,
            None => {
                let mut state = CallState {
                    menu: self.tree.start.clone(),
                    attempts: 0,
                    path: vec![self.tree.start.clone()],
                    started_at: now,
                    deadline: now,
                    last_seen: now,
                    last: None,
                    finished: false,
                };
                let step = self.prompt(&mut state, None, now);
                state.last = request_key.map(|k| (k.to_owned(), step.clone()));
                calls.insert(call.to_owned(), state);
                return step;
            }
        };
        state.last_seen = now;
        if let (Some(key), Some((last_key, last_step))) = (request_key, &state.last)
            && key == last_key
        {
            return last_step.clone();
        }
        if state.finished
            && let Some((_, step)) = &state.last
        {
            return step.clone();
        }
        let step = self.choose(state, &input, now);
        state.last = Some((request_key.unwrap_or_default().to_owned(), step.clone()));
        step
    }

    /// Applies time-outs by the clock, for drivers that do not report silence themselves:
    /// every call whose prompt deadline has passed gets [`IvrInput::Timeout`]. Returns the
    /// calls and their next steps; forgets calls silent longer than 30 minutes.
    pub fn tick(&self) -> Vec<(String, IvrStep)> {
        let now = self.clock.now();
        let mut calls = self.lock();
        calls.retain(|_, s| now - s.last_seen <= self.call_ttl);
        let mut out = Vec::new();
        for (id, state) in calls.iter_mut() {
            if !state.finished && now >= state.deadline {
                let step = self.choose(state, &IvrInput::Timeout, now);
                state.last = None;
                out.push((id.clone(), step));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets a call (it hung up or was answered).
    pub fn end(&self, call: &str) {
        self.lock().remove(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_digits_and_keywords() {
        assert_eq!(spoken_digit("2"), Some('2'));
        assert_eq!(spoken_digit("Press two."), Some('2'));
        assert_eq!(spoken_digit("三"), Some('3'));
        assert_eq!(spoken_digit("I want a refund"), None);
        assert!(keyword_matches("I want a REFUND please", "refund"));
        assert!(!keyword_matches("refunded", "refund"));
        assert!(keyword_matches("where is my order number", "order number"));
        assert!(keyword_matches("我要退款", "退款"));
    }
}
