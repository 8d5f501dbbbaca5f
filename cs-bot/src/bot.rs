//! The [`Bot`] trait and the types that cross it.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};

use async_trait::async_trait;
use cs_core::{
    CardButton, Content, ConversationId, CustomerId, Message, Priority, RichCard, TenantId,
};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sentiment::Sentiment;
use crate::verify::PhoneCode;

/// What the bot is asked to answer.
#[derive(Debug, Clone)]
pub struct BotInput {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The customer.
    pub customer: CustomerId,
    /// The customer's new message, as text.
    pub text: String,
    /// Recent messages of the conversation, oldest first, the new one last.
    pub history: Vec<Message>,
    /// Phone numbers the customer proved (an SMS or WhatsApp identity they write from, a number
    /// confirmed with a one-time code): the bot shows only orders placed with these, unless the
    /// customer proves another number. The engine fills it from the customer's identities.
    pub verified_phones: Vec<String>,
}

/// Why the bot hands over to a human.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HandoffReason {
    /// The customer asked for a human ("转人工", "agent").
    CustomerRequest,
    /// The bot has no answer.
    #[default]
    NoAnswer,
    /// The bot kept failing to understand.
    RepeatedFailure,
    /// The customer complains.
    Complaint,
    /// The customer is upset.
    NegativeSentiment,
}

impl fmt::Display for HandoffReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CustomerRequest => "customer asked for a human",
            Self::NoAnswer => "the bot has no answer",
            Self::RepeatedFailure => "the bot failed repeatedly",
            Self::Complaint => "complaint",
            Self::NegativeSentiment => "negative sentiment",
        })
    }
}

/// A hand-over to a human, with what the agent should know first.
///
/// Build one with [`Handoff::new`] or a struct literal ending in `..Default::default()`: fields
/// may be added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// Why.
    pub reason: HandoffReason,
    /// A short summary of the conversation so far, for the agent (what the customer wrote; the
    /// structured fields below are not repeated in it: [`Handoff::note`] puts them together).
    pub summary: String,
    /// Skills the agent needs (e.g. `refunds`).
    pub skills: Vec<String>,
    /// How urgent it is.
    pub priority: Priority,
    /// The intent the bot last recognised, if any.
    #[serde(default)]
    pub intent: Option<Intent>,
    /// Slots collected so far (`order_id`, `phone`, `ticket`...), so the customer never repeats
    /// them.
    #[serde(default)]
    pub slots: BTreeMap<String, String>,
    /// The customer's sentiment at hand-over.
    #[serde(default)]
    pub sentiment: Option<Sentiment>,
}

impl Handoff {
    /// A hand-over for `reason` with a summary; normal priority, no skills.
    pub fn new(reason: HandoffReason, summary: impl Into<String>) -> Self {
        Self {
            reason,
            summary: summary.into(),
            ..Self::default()
        }
    }

    /// What the agent reads first, in one line: why, what the bot understood, what it collected,
    /// how the customer feels, then the summary, so the customer never repeats themselves.
    pub fn note(&self) -> String {
        let mut note = format!("Handed over: {}.", self.reason);
        if let Some(i) = &self.intent {
            note.push_str(&format!(
                " Intent: {} ({:.0}%).",
                i.name,
                i.confidence * 100.0
            ));
        }
        if !self.slots.is_empty() {
            let slots: Vec<String> = self.slots.iter().map(|(k, v)| format!("{k}={v}")).collect();
            note.push_str(&format!(" Details: {}.", slots.join(", ")));
        }
        if let Some(s) = &self.sentiment {
            note.push_str(&format!(
                " Sentiment: {} / {} ({:+.2}).",
                s.polarity.as_str(),
                s.emotion.as_str(),
                s.score
            ));
        }
        if !self.summary.is_empty() {
            note.push(' ');
            note.push_str(&self.summary);
        }
        note
    }
}

/// An intent the bot recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Intent name.
    pub name: String,
    /// Confidence, 0 to 1.
    pub confidence: f32,
}

/// What the bot does with a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotReply {
    /// Texts to send to the customer, in order (may be empty).
    pub messages: Vec<String>,
    /// The intent recognised, if any.
    pub intent: Option<Intent>,
    /// Set when a human should take over.
    pub handoff: Option<Handoff>,
    /// The sentiment of the customer's message, when the bot measured it (a routing signal:
    /// see [`Sentiment::priority`]).
    #[serde(default)]
    pub sentiment: Option<Sentiment>,
    /// A one-time code to text to a phone number the customer wants to prove; the engine sends
    /// it through an SMS channel straight to the number, never into the conversation.
    #[serde(default, skip_serializing)]
    pub phone_code: Option<PhoneCode>,
    /// Phone numbers the customer proved in this turn (the right code came back); the engine
    /// links each to the customer as a verified identity
    /// ([`cs_core::LinkOrigin::OneTimeCode`]).
    #[serde(default)]
    pub verified_phones: Vec<String>,
    /// Options offered with one of [`BotReply::messages`] (a clarifying question): channels
    /// that show buttons get them as quick replies, text-only channels the numbered list.
    /// [`BotReply::contents`] turns the reply into what the engine sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Choices>,
}

/// A question with options the customer picks from (see [`BotReply::choices`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choices {
    /// The message among [`BotReply::messages`] the options belong to, exactly as written
    /// there: the question followed by the numbered options.
    pub text: String,
    /// The question alone, shown above the buttons.
    pub prompt: String,
    /// One button per option: `label` is shown, `value` is what a tap sends back (text the
    /// bot recognises as that option).
    pub options: Vec<CardButton>,
}

impl BotReply {
    /// What to send to the customer, in order: each of [`BotReply::messages`] as text, except
    /// the message [`BotReply::choices`] belongs to, which becomes a [`RichCard`] with the
    /// prompt as its title and a button per option. A channel that cannot show cards renders
    /// the card back to the question and its numbered options (`Capabilities::adapt` in
    /// cs-channels), so text-only customers read what they did before. A message screened out
    /// of [`BotReply::messages`] takes its options with it.
    pub fn contents(&self) -> Vec<Content> {
        let mut card = self.choices.as_ref().filter(|c| !c.options.is_empty());
        self.messages
            .iter()
            .map(|text| match card {
                Some(c) if c.text == *text => {
                    card = None;
                    Content::RichCard(RichCard {
                        title: c.prompt.clone(),
                        body: None,
                        image_url: None,
                        buttons: c.options.clone(),
                    })
                }
                _ => Content::text(text.clone()),
            })
            .collect()
    }
}

/// Answers customers and decides when to hand over to a human.
#[async_trait]
pub trait Bot: Send + Sync + Debug + 'static {
    /// Answers one customer message.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] when a backing service is out of reach (the engine then
    /// hands over).
    async fn reply(&self, input: &BotInput) -> Result<BotReply>;

    /// How many of the conversation's latest messages (the new one included) this bot reads in
    /// [`BotInput::history`]; the engine passes no more, so a bot that keeps its own state need
    /// not be handed (and the engine need not copy) a long history every turn. At least 1.
    fn history_len(&self) -> usize {
        DEFAULT_HISTORY
    }

    /// The dialogue state this bot keeps in memory for `conversation` (pending questions,
    /// collected slots), as JSON, for the engine to store with the conversation when several
    /// processes share the desk: the customer's next message may land on another one. `None`
    /// when there is none (the default: a bot that keeps no state).
    fn dialogue_state(&self, conversation: ConversationId) -> Option<serde_json::Value> {
        let _ = conversation;
        None
    }

    /// Takes up the dialogue of `conversation` where another process left it: `state` as
    /// [`Bot::dialogue_state`] gave it there, or `None` when there is none (the bot forgets what
    /// it held, which another process may have moved on from). A state this bot cannot read is
    /// ignored. The default keeps nothing.
    fn restore_dialogue_state(
        &self,
        conversation: ConversationId,
        state: Option<serde_json::Value>,
    ) {
        let _ = (conversation, state);
    }
}

/// The history a bot is given unless it says otherwise ([`Bot::history_len`]).
pub const DEFAULT_HISTORY: usize = 20;
