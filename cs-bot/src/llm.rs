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
use crate::order_tools::{OrderTools, TOOL_RULES, ToolTurn};
use crate::sentiment::sentiment;
use crate::shop::{Asker, OrderService, OwnOrders};
use crate::templates::Templates;
use crate::text::is_chinese;
use crate::verify::PhoneCodes;

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
    orders: Option<Arc<dyn OrderService>>,
    codes: Option<Arc<PhoneCodes>>,
}

/// Tool rounds in one turn before the bot gives up on the model.
const MAX_TOOL_ROUNDS: usize = 4;

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
            orders: None,
            codes: None,
        }
    }

    /// The shop's order system: the model gets tools to look the customer's orders up, prove
    /// a phone number with a one-time code, and start a return. The tools run as the asking
    /// customer behind [`OwnOrders`], with the intent bot's rules: orders by phone only for a
    /// number the customer proved ([`BotInput::verified_phones`] or a code), another customer's
    /// order answered as a missing one.
    pub fn with_orders(mut self, orders: Arc<dyn OrderService>) -> Self {
        self.orders = Some(Arc::new(OwnOrders::new(orders)));
        self
    }

    /// The one-time codes (share the intent bot's when both serve the same customers; by
    /// default the bot has its own).
    pub fn with_phone_codes(mut self, codes: Arc<PhoneCodes>) -> Self {
        self.codes = Some(codes);
        self
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
        let tools = self.orders.map(|orders| OrderTools {
            orders,
            codes: self.codes.unwrap_or_else(|| Arc::new(PhoneCodes::new())),
            templates: Templates::default(),
        });
        Ok(LlmBot {
            tools,
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
    tools: Option<OrderTools>,
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
            .field("order_tools", &self.tools.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    temperature: f32,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl ChatMessage {
    fn text(role: &str, content: String) -> Self {
        Self {
            role: role.into(),
            content: Some(content),
            ..Self::default()
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
struct ToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Serialize, Deserialize, Clone)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
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
        if self.tools.is_some() {
            system.push_str("\n\n");
            system.push_str(TOOL_RULES);
        }
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
        let mut messages = vec![ChatMessage::text("system", system)];
        // History holds the new message last; skip it, it is added below.
        let earlier = input.history.len().saturating_sub(1);
        let start = earlier.saturating_sub(self.history);
        for m in &input.history[start..earlier] {
            let role = match m.author {
                Author::Customer => "user",
                Author::Bot | Author::Agent { .. } => "assistant",
                _ => continue,
            };
            messages.push(ChatMessage::text(role, m.content.plain_text()));
        }
        messages.push(ChatMessage::text("user", input.text.clone()));
        messages
    }

    /// The model's answer, after running the order tools it calls (as the asking customer).
    async fn complete(&self, input: &BotInput, turn: &mut ToolTurn) -> Result<String> {
        let mut messages = self.prompt(input);
        let tools = self.tools.as_ref().map(|_| OrderTools::definitions());
        for _ in 0..=MAX_TOOL_ROUNDS {
            let message = self.chat(&messages, tools.clone()).await?;
            let calls = message.tool_calls.clone().unwrap_or_default();
            let Some(order_tools) = self.tools.as_ref().filter(|_| !calls.is_empty()) else {
                return message
                    .content
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| Error::Unavailable {
                        reason: "model server returned no answer".into(),
                    });
            };
            messages.push(message);
            for call in calls {
                let result = order_tools
                    .call(turn, &call.function.name, &call.function.arguments)
                    .await?;
                messages.push(ChatMessage {
                    role: "tool".into(),
                    content: Some(result.to_string()),
                    tool_call_id: Some(call.id),
                    ..ChatMessage::default()
                });
            }
        }
        Err(Error::Unavailable {
            reason: format!("model server called tools more than {MAX_TOOL_ROUNDS} rounds"),
        })
    }

    async fn chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<serde_json::Value>,
    ) -> Result<ChatMessage> {
        let body = ChatRequest {
            model: &self.config.model,
            messages,
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
            tools,
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
            .map(|c| c.message)
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
    /// The turns sent to the model, the new message, and what a hand-over's summary reads.
    fn history_len(&self) -> usize {
        (self.history + 1).max(crate::faq::SUMMARY_HISTORY)
    }

    async fn reply(&self, input: &BotInput) -> Result<BotReply> {
        if asks_for_human(&input.text) {
            return Ok(self.handoff(input, HandoffReason::CustomerRequest));
        }
        let mood = sentiment(&input.text);
        if mood.is_upset() {
            return Ok(self.handoff(input, HandoffReason::NegativeSentiment));
        }
        let mut asker = Asker::new(input.tenant.clone(), input.customer);
        let proven = self
            .tools
            .as_ref()
            .map(|t| t.codes.proven(&input.tenant, input.customer))
            .unwrap_or_default();
        for p in input.verified_phones.iter().cloned().chain(proven) {
            asker = asker.with_verified_phone(p);
        }
        let mut turn = ToolTurn {
            asker,
            zh: is_chinese(&input.text),
            phone_code: None,
            verified: Vec::new(),
        };
        let answered = self.complete(input, &mut turn).await;
        // What the tools did stands, whatever became of the answer.
        let with_effects = |mut r: BotReply, turn: ToolTurn| {
            if turn.phone_code.is_some() {
                r.phone_code = turn.phone_code;
            }
            r.verified_phones.extend(turn.verified);
            r
        };
        match answered {
            Ok(answer) if answer.contains(HANDOFF_MARKER) => Ok(with_effects(
                self.handoff(input, HandoffReason::NoAnswer),
                turn,
            )),
            Ok(answer) => Ok(with_effects(
                BotReply {
                    messages: vec![answer],
                    intent: None,
                    handoff: None,
                    sentiment: Some(mood),
                    ..BotReply::default()
                },
                turn,
            )),
            Err(e) => match &self.fallback {
                Some(fallback) => {
                    tracing::warn!(error = %e, "model server failed; answering with the fallback bot");
                    let reply = fallback.reply(input).await?;
                    Ok(with_effects(reply, turn))
                }
                None => Err(e),
            },
        }
    }
}
