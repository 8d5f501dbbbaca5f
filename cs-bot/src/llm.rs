//! A bot over an OpenAI-compatible chat-completions API (the team's own model server), grounded
//! on the FAQ, with a timeout and a fallback bot.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cs_core::{Author, Priority};
use serde::{Deserialize, Serialize};

use crate::bot::{Bot, BotInput, BotReply, Handoff, HandoffReason};
use crate::error::{Error, Result};
use crate::faq::{FaqBot, FaqEntry, asks_for_human, summary};
use crate::sentiment::sentiment;
use crate::text::is_chinese;

/// The marker the model is told to answer with when a human should take over.
pub const HANDOFF_MARKER: &str = "[HANDOFF]";

/// Where and how to reach the model server. `Debug` hides the key.
#[derive(Clone, Serialize, Deserialize)]
pub struct LlmConfig {
    /// Base URL up to the API version, e.g. `http://10.0.0.5:8000/v1`; the bot posts to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Bearer token, if the server wants one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Request timeout in milliseconds (default 8000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Sampling temperature (default 0.2).
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Most tokens in an answer (default 400).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_timeout_ms() -> u64 {
    8000
}
fn default_temperature() -> f32 {
    0.2
}
fn default_max_tokens() -> u32 {
    400
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout_ms", &self.timeout_ms)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// Builds an [`LlmBot`].
#[derive(Debug)]
pub struct LlmBotBuilder {
    config: LlmConfig,
    faq: Vec<FaqEntry>,
    fallback: Option<Arc<dyn Bot>>,
    instructions: Option<String>,
    history: usize,
    grounding: usize,
}

impl LlmBotBuilder {
    /// A bot for `model` at `base_url` (e.g. `http://127.0.0.1:8000/v1`).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::from_config(LlmConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout_ms: default_timeout_ms(),
            temperature: default_temperature(),
            max_tokens: default_max_tokens(),
        })
    }

    /// A bot from a config (e.g. read from TOML).
    pub fn from_config(config: LlmConfig) -> Self {
        Self {
            config,
            faq: Vec::new(),
            fallback: None,
            instructions: None,
            history: 8,
            grounding: 4,
        }
    }

    /// The bearer token.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(key.into());
        self
    }

    /// The request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout_ms = timeout.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    /// FAQ entries to ground answers on (the best matches go into the prompt).
    pub fn with_faq(mut self, entries: Vec<FaqEntry>) -> Self {
        self.faq.extend(entries);
        self
    }

    /// The bot that answers when the model server fails or times out.
    pub fn with_fallback(mut self, bot: Arc<dyn Bot>) -> Self {
        self.fallback = Some(bot);
        self
    }

    /// Extra instructions for the system prompt (tone, shop name, policies).
    pub fn with_instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Some(text.into());
        self
    }

    /// How many earlier messages go into the prompt (default 8).
    pub fn with_history(mut self, messages: usize) -> Self {
        self.history = messages;
        self
    }

    /// How many FAQ entries go into the prompt (default 4).
    pub fn with_grounding(mut self, entries: usize) -> Self {
        self.grounding = entries;
        self
    }

    /// Builds the bot.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a base URL that is not `http://` or `https://`, or an empty
    /// model; [`Error::Unavailable`] when the HTTP client cannot be created.
    pub fn build(self) -> Result<LlmBot> {
        let base = self.config.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidInput {
                reason: format!("base URL {base:?} must start with http:// or https://"),
            });
        }
        if self.config.model.trim().is_empty() {
            return Err(Error::InvalidInput {
                reason: "model is empty".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .build()
            .map_err(|e| Error::Unavailable {
                reason: format!("http client: {e}"),
            })?;
        let faq = if self.faq.is_empty() {
            None
        } else {
            Some(FaqBot::new(self.faq)?)
        };
        Ok(LlmBot {
            endpoint: format!("{base}/chat/completions"),
            config: self.config,
            client,
            faq,
            fallback: self.fallback,
            instructions: self.instructions,
            history: self.history,
            grounding: self.grounding,
        })
    }
}

/// Answers with a language model over an OpenAI-compatible chat-completions API, grounded on the
/// FAQ; hands over when the model says so or the customer asks; falls back to another bot when
/// the server fails.
pub struct LlmBot {
    endpoint: String,
    config: LlmConfig,
    client: reqwest::Client,
    faq: Option<FaqBot>,
    fallback: Option<Arc<dyn Bot>>,
    instructions: Option<String>,
    history: usize,
    grounding: usize,
}

impl fmt::Debug for LlmBot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmBot")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage>,
    temperature: f32,
    max_tokens: u32,
}

#[derive(Serialize, Deserialize)]
struct ChatMessage {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
}

impl LlmBot {
    /// A builder.
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> LlmBotBuilder {
        LlmBotBuilder::new(base_url, model)
    }

    fn prompt(&self, input: &BotInput) -> Vec<ChatMessage> {
        let mut system = String::from(
            "You are the customer-service assistant of an online shop. Answer briefly and \
             politely in the customer's language (Chinese or English), using only the knowledge \
             below and the conversation. Never invent order data, prices or policies. If you \
             cannot answer from the knowledge, or the customer needs a person, reply with exactly ",
        );
        system.push_str(HANDOFF_MARKER);
        system.push('.');
        if let Some(extra) = &self.instructions {
            system.push_str("\n\n");
            system.push_str(extra);
        }
        if let Some(faq) = &self.faq {
            let hits = faq.top_matches(&input.text, self.grounding);
            if !hits.is_empty() {
                system.push_str("\n\nKnowledge:");
                for (e, _) in hits {
                    system.push_str(&format!("\n- Q: {}", e.questions.join(" | ")));
                    if let Some(a) = &e.answer_zh {
                        system.push_str(&format!("\n  A(zh): {a}"));
                    }
                    if let Some(a) = &e.answer_en {
                        system.push_str(&format!("\n  A(en): {a}"));
                    }
                }
            }
        }
        let mut messages = vec![ChatMessage {
            role: "system".into(),
            content: system,
        }];
        // History holds the new message last; skip it, it is added below.
        let earlier = input.history.len().saturating_sub(1);
        let start = earlier.saturating_sub(self.history);
        for m in &input.history[start..earlier] {
            let role = match m.author {
                Author::Customer => "user",
                Author::Bot | Author::Agent { .. } => "assistant",
                _ => continue,
            };
            messages.push(ChatMessage {
                role: role.into(),
                content: m.content.plain_text(),
            });
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: input.text.clone(),
        });
        messages
    }

    async fn complete(&self, input: &BotInput) -> Result<String> {
        let body = ChatRequest {
            model: &self.config.model,
            messages: self.prompt(input),
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
        };
        let mut req = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let unavailable = |e: reqwest::Error| Error::Unavailable {
            reason: format!("model server: {e}"),
        };
        let resp = req.send().await.map_err(unavailable)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::Unavailable {
                reason: format!("model server answered {status}"),
            });
        }
        let parsed: ChatResponse = resp.json().await.map_err(unavailable)?;
        parsed
            .choices
            .into_iter()
            .next()
            .map(|c| c.message.content.trim().to_owned())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::Unavailable {
                reason: "model server returned no answer".into(),
            })
    }

    fn handoff(&self, input: &BotInput, reason: HandoffReason) -> BotReply {
        let zh = is_chinese(&input.text);
        let mood = sentiment(&input.text);
        BotReply {
            messages: vec![if zh {
                "好的，正在为您转接人工客服，请稍候。".into()
            } else {
                "Sure, I'm connecting you to an agent. One moment please.".into()
            }],
            intent: None,
            handoff: Some(Handoff {
                reason,
                summary: summary(input),
                priority: mood.priority().max(Priority::Normal),
                sentiment: Some(mood),
                ..Handoff::default()
            }),
            sentiment: Some(mood),
            ..BotReply::default()
        }
    }
}

#[async_trait]
impl Bot for LlmBot {
    async fn reply(&self, input: &BotInput) -> Result<BotReply> {
        if asks_for_human(&input.text) {
            return Ok(self.handoff(input, HandoffReason::CustomerRequest));
        }
        let mood = sentiment(&input.text);
        if mood.is_upset() {
            return Ok(self.handoff(input, HandoffReason::NegativeSentiment));
        }
        match self.complete(input).await {
            Ok(answer) if answer.contains(HANDOFF_MARKER) => {
                Ok(self.handoff(input, HandoffReason::NoAnswer))
            }
            Ok(answer) => Ok(BotReply {
                messages: vec![answer],
                intent: None,
                handoff: None,
                sentiment: Some(mood),
                ..BotReply::default()
            }),
            Err(e) => match &self.fallback {
                Some(fallback) => {
                    tracing::warn!(error = %e, "model server failed; answering with the fallback bot");
                    fallback.reply(input).await
                }
                None => Err(e),
            },
        }
    }
}
