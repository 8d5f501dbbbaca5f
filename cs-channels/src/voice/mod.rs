//! Voice: an IVR menu engine ([`Ivr`] over an [`IvrTree`]) behind a TwiML webhook, as Twilio's
//! programmable voice calls it.
//!
//! - Every webhook is a form POST signed with `X-Twilio-Signature` (checked as for SMS, with
//!   [`crate::sms::signature`] over the configured public URL and the sorted parameters).
//! - The first request of a call (`CallSid`, `From`, `To`) gets the start menu as
//!   `<Gather input="dtmf speech" actionOnEmptyResult="true">` with a `<Say>`; the Gather posts
//!   back `Digits` or `SpeechResult` (or neither, on silence) and the IVR moves on.
//! - When an option routes the call, the answer is `<Say>` and `<Enqueue>queue</Enqueue>`, and
//!   the call lands as one inbound message: an [`Content::Event`] named [`CALL_EVENT`] from the
//!   caller's phone identity (E.164), whose data [`CallRouted::from_content`] reads (queue,
//!   skills, menus passed), de-duplicated on the `CallSid`.
//! - A status callback with a final `CallStatus` (`completed`, `busy`, `no-answer`, `failed`,
//!   `canceled`) forgets the call.
//!
//! The engine connects a routed call to the agent its router chose by sending the channel a
//! [`CONNECT_EVENT`] (the call's sid and the agent's target: `client:alice`, `+8613800138000`
//! or `sip:alice@pbx.example`): the channel redirects the live call with the provider's REST
//! API (`POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json` with `Twiml=<Dial>...`), which
//! takes the caller out of the `<Enqueue>` hold and rings the agent ([`dial_twiml`]). Text
//! cannot be sent into a call: the channel carries call-control events only.
//!
//! ```
//! use std::sync::Arc;
//! use cs_channels::voice::{Ivr, IvrInput, IvrStep, IvrTree};
//! use cs_core::SystemClock;
//!
//! let tree = IvrTree::from_toml(r#"
//!     start = "main"
//!     [menus.main]
//!     prompt = "Press 1 for orders, 2 for refunds."
//!     options = [
//!       { digit = "1", action = { type = "route", queue = "orders", skills = ["logistics"] } },
//!       { digit = "2", keywords = ["refund"], action = { type = "route", queue = "refunds" } },
//!     ]
//! "#)?;
//! let ivr = Ivr::new(tree, Arc::new(SystemClock))?;
//! // The first request of a call gets the start menu.
//! assert!(matches!(ivr.respond("CA1", None, IvrInput::Timeout), IvrStep::Prompt { .. }));
//! match ivr.respond("CA1", None, IvrInput::Speech("I want a refund".into())) {
//!     IvrStep::Route { queue, .. } => assert_eq!(queue, "refunds"),
//!     other => panic!("expected a route, got {other:?}"),
//! }
//! # Ok::<(), cs_channels::Error>(())
//! ```

mod config;
mod ivr;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cs_core::{ChannelId, ChannelKind, Clock, Content, ContentKind, DeliveryStatus, Identity};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

pub use self::config::VoiceConfig;
pub use self::ivr::{
    Ivr, IvrAction, IvrInput, IvrMenu, IvrOption, IvrStep, IvrTree, IvrTreeBuilder,
};
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundMessage, InboundResponse, OutboundMessage, Parsed,
    RawInbound, SendReceipt,
};
use crate::client::{HttpClient, HttpSettings, join_url};
use crate::error::{Error, Result};
use crate::inbound::{REDACTED, bounded_form_pairs, check_size, param, xml_escape};

/// The name of the event a routed call lands as.
pub const CALL_EVENT: &str = "call";

/// The name of the event that connects a routed call to an agent: its data is
/// `{"call_sid": .., "target": ..}` (see [`dial_twiml`] for the targets).
pub const CONNECT_EVENT: &str = "connect";

/// The TwiML that rings an agent: `client:<identity>` dials a browser or app client,
/// `sip:<uri>` a SIP phone, anything else a phone number.
///
/// ```
/// use cs_channels::voice::dial_twiml;
/// assert_eq!(
///     dial_twiml("client:alice"),
///     r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Client>alice</Client></Dial></Response>"#
/// );
/// assert!(dial_twiml("+8613800138000").contains("<Number>+8613800138000</Number>"));
/// assert!(dial_twiml("sip:a@pbx.example").contains("<Sip>sip:a@pbx.example</Sip>"));
/// ```
pub fn dial_twiml(target: &str) -> String {
    let noun = if let Some(client) = target.strip_prefix("client:") {
        format!("<Client>{}</Client>", xml_escape(client))
    } else if target.starts_with("sip:") {
        format!("<Sip>{}</Sip>", xml_escape(target))
    } else {
        format!("<Number>{}</Number>", xml_escape(target))
    };
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{noun}</Dial></Response>"#)
}

/// The largest webhook body accepted (Twilio's voice forms are a few KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The data of a routed call's [`CALL_EVENT`]: where the IVR sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRouted {
    /// The provider's call id.
    pub call_sid: String,
    /// The queue chosen.
    pub queue: String,
    /// Skills the answering agent needs.
    pub skills: Vec<String>,
    /// The menus passed through, start first.
    pub path: Vec<String>,
    /// The number called (ours).
    pub to: Option<String>,
    /// Seconds the caller spent in the menus.
    pub menu_seconds: i64,
}

impl CallRouted {
    /// Reads a routed call from a message's content.
    pub fn from_content(content: &Content) -> Option<Self> {
        match content {
            Content::Event { name, data } if name == CALL_EVENT => {
                serde_json::from_value(data.clone()).ok()
            }
            _ => None,
        }
    }
}

/// A phone number in E.164 (`+` and 8 to 15 digits, no leading zero) from what a provider or a
/// person wrote: spaces, dashes, dots and brackets are dropped, a leading `00` becomes `+`.
///
/// ```
/// use cs_channels::voice::e164;
/// assert_eq!(e164("+1 (415) 867-5309").as_deref(), Some("+14158675309"));
/// assert_eq!(e164("0086 138 0013 8000").as_deref(), Some("+8613800138000"));
/// assert_eq!(e164("anonymous"), None);
/// assert_eq!(e164("4158675309"), None);
/// ```
pub fn e164(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = cleaned
        .strip_prefix('+')
        .or_else(|| cleaned.strip_prefix("00"))?;
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

/// Configures a [`Voice`] channel.
#[derive(Clone)]
pub struct VoiceBuilder {
    id: ChannelId,
    tree: Option<IvrTree>,
    auth_token: Option<String>,
    webhook_url: Option<String>,
    voice: Option<String>,
    connecting: String,
    account_sid: Option<String>,
    http: HttpSettings,
}

impl std::fmt::Debug for VoiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceBuilder")
            .field("id", &self.id)
            .field("tree", &self.tree.as_ref().map(|t| &t.start))
            .field("auth_token", &self.auth_token.as_ref().map(|_| REDACTED))
            .field("webhook_url", &self.webhook_url)
            .field("voice", &self.voice)
            .field("account_sid", &self.account_sid)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl VoiceBuilder {
    /// A voice channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            http: HttpSettings::default(),
            id,
            tree: None,
            auth_token: None,
            webhook_url: None,
            voice: None,
            connecting: "Please hold, connecting you to an agent.".into(),
            account_sid: None,
        }
    }

    /// The provider account's SID: lets the engine connect routed calls to the agent it chose
    /// (without it, agents take calls from the provider's queue themselves).
    pub fn with_account_sid(mut self, sid: impl Into<String>) -> Self {
        self.account_sid = Some(sid.into());
        self
    }

    /// The IVR menus (required).
    pub fn with_tree(mut self, tree: IvrTree) -> Self {
        self.tree = Some(tree);
        self
    }

    /// The provider's auth token the webhooks are signed with (required).
    pub fn with_auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// The public URL the provider calls (required): it is part of what is signed, and the
    /// Gather posts back to it.
    pub fn with_webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// The text-to-speech voice (`<Say voice="...">`).
    pub fn with_voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// What is said when a route names no text of its own.
    pub fn with_connecting_text(mut self, text: impl Into<String>) -> Self {
        self.connecting = text.into();
        self
    }

    crate::client::http_settings_setters!();

    /// Checks the settings and builds the channel.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without a tree, auth token or an `http(s)://` webhook URL, or
    /// for a tree [`IvrTree::validate`] refuses.
    pub fn build(self) -> Result<Voice> {
        let tree = self
            .tree
            .ok_or_else(|| Error::invalid("voice channel needs an IVR tree"))?;
        let auth_token = self
            .auth_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::invalid("voice channel needs the provider's auth token"))?;
        let webhook_url = self
            .webhook_url
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| Error::invalid("voice channel needs its public http(s) webhook URL"))?;
        let ivr = Ivr::new(tree, self.http.clock())?;
        Ok(Voice {
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::Voice,
                capabilities: Capabilities {
                    // Nothing is said into a call; the engine only steers it (CONNECT_EVENT).
                    content: [ContentKind::Event].into_iter().collect(),
                    typing: false,
                    read_receipts: false,
                    max_text_chars: None,
                    max_media_bytes: None,
                    reply_window: None,
                },
            },
            ivr,
            auth_token,
            webhook_url,
            clock: self.http.clock(),
            voice: self.voice,
            connecting: self.connecting,
            account_sid: self.account_sid.filter(|s| !s.is_empty()),
            base_url: self.http.base_url_or("https://api.twilio.com"),
            max_body_bytes: self.http.max_body_bytes_or(MAX_BODY_BYTES),
            client: self.http.client("voice")?,
        })
    }
}

/// The voice channel: a TwiML webhook driving an [`Ivr`].
pub struct Voice {
    info: ChannelInfo,
    ivr: Ivr,
    auth_token: String,
    webhook_url: String,
    clock: Arc<dyn Clock>,
    voice: Option<String>,
    connecting: String,
    account_sid: Option<String>,
    base_url: String,
    max_body_bytes: usize,
    client: HttpClient,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice")
            .field("info", &self.info)
            .field("ivr", &self.ivr)
            .field("auth_token", &REDACTED)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

/// Final call statuses: the call is over.
const FINAL_STATUSES: [&str; 5] = ["completed", "busy", "no-answer", "failed", "canceled"];

impl Voice {
    /// Starts configuring a voice channel named `id`.
    pub fn builder(id: ChannelId) -> VoiceBuilder {
        VoiceBuilder::new(id)
    }

    /// The IVR engine (for [`Ivr::tick`] or inspection).
    pub fn ivr(&self) -> &Ivr {
        &self.ivr
    }

    fn say(&self, text: &str, language: Option<&str>) -> String {
        let mut attrs = String::new();
        if let Some(v) = &self.voice {
            attrs.push_str(&format!(r#" voice="{}""#, xml_escape(v)));
        }
        if let Some(l) = language {
            attrs.push_str(&format!(r#" language="{}""#, xml_escape(l)));
        }
        format!("<Say{attrs}>{}</Say>", xml_escape(text))
    }

    /// The TwiML for an IVR step.
    pub fn twiml(&self, step: &IvrStep) -> String {
        let language = self.ivr.tree().language.as_deref();
        let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
        match step {
            IvrStep::Prompt {
                text,
                timeout_secs,
                hints,
                ..
            } => {
                let mut attrs = format!(
                    r#"input="dtmf speech" numDigits="1" timeout="{timeout_secs}" action="{}" method="POST" actionOnEmptyResult="true""#,
                    xml_escape(&self.webhook_url)
                );
                if let Some(l) = language {
                    attrs.push_str(&format!(r#" language="{}""#, xml_escape(l)));
                }
                if !hints.is_empty() {
                    attrs.push_str(&format!(r#" hints="{}""#, xml_escape(&hints.join(", "))));
                }
                out.push_str(&format!(
                    "<Gather {attrs}>{}</Gather>",
                    self.say(text, language)
                ));
            }
            IvrStep::Route { queue, say, .. } => {
                out.push_str(&self.say(say.as_deref().unwrap_or(&self.connecting), language));
                out.push_str(&format!("<Enqueue>{}</Enqueue>", xml_escape(queue)));
            }
            IvrStep::Hangup { say } => {
                if let Some(s) = say {
                    out.push_str(&self.say(s, language));
                }
                out.push_str("<Hangup/>");
            }
        }
        out.push_str("</Response>");
        out
    }

    fn respond(&self, twiml: String) -> InboundResponse {
        InboundResponse {
            status: StatusCode::OK,
            content_type: Some("text/xml"),
            body: Bytes::from(twiml),
        }
    }
}

#[async_trait]
impl Channel for Voice {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        if request.method != Method::POST {
            return Err(Error::invalid("voice webhooks are POSTed"));
        }
        check_size(&request.body, self.max_body_bytes)?;
        let params = bounded_form_pairs(&request.body)?;
        crate::sms::verify_request(
            &self.auth_token,
            &self.webhook_url,
            &request.uri,
            &request.headers,
            &params,
        )?;
        let call = param(&params, "CallSid")
            .filter(|s| {
                !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .ok_or_else(|| Error::invalid("missing or malformed CallSid"))?;
        let empty = Parsed {
            messages: Vec::new(),
            statuses: Vec::new(),
            response: self
                .respond(r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#.into()),
        };
        if param(&params, "CallStatus").is_some_and(|s| FINAL_STATUSES.contains(&s)) {
            self.ivr.end(call);
            return Ok(empty);
        }
        let digits = param(&params, "Digits")
            .map(str::trim)
            .filter(|d| !d.is_empty());
        let speech = param(&params, "SpeechResult")
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let input = match (digits, speech) {
            (Some(d), _) => IvrInput::Digits(d.to_owned()),
            (None, Some(s)) => IvrInput::Speech(s.to_owned()),
            (None, None) => IvrInput::Timeout,
        };
        // The same form again is a provider retry: it gets the same answer.
        let mut sorted: Vec<_> = params.iter().collect();
        sorted.sort();
        let request_key = format!("{sorted:?}");
        let step = self.ivr.respond(call, Some(&request_key), input);
        let mut messages = Vec::new();
        if let IvrStep::Route {
            queue,
            skills,
            path,
            started_at,
            ..
        } = &step
        {
            let from = param(&params, "From").unwrap_or_default();
            let identity = match e164(from) {
                Some(number) => number,
                None => format!("anonymous:{call}"),
            };
            let now = self.clock.now();
            let routed = CallRouted {
                call_sid: call.to_owned(),
                queue: queue.clone(),
                skills: skills.clone(),
                path: path.clone(),
                to: param(&params, "To").and_then(e164),
                menu_seconds: (now - *started_at).num_seconds(),
            };
            messages.push(InboundMessage {
                channel: self.info.id.clone(),
                from: Identity::new(ChannelKind::Voice, identity),
                provider_message_id: Some(call.to_owned()),
                content: Content::Event {
                    name: CALL_EVENT.into(),
                    data: serde_json::to_value(&routed)
                        .map_err(|e| Error::invalid(format!("call event: {e}")))?,
                },
                display_name: param(&params, "CallerName")
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                language: self.ivr.tree().language.clone(),
                sent_at: Some(now),
            });
        }
        Ok(Parsed {
            messages,
            statuses: Vec::new(),
            response: self.respond(self.twiml(&step)),
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        let data = match &message.message.content {
            Content::Event { name, data } if name == CONNECT_EVENT => data,
            other => {
                return Err(Error::Unsupported {
                    reason: format!(
                        "a call carries no {:?} content; only the {CONNECT_EVENT} event steers it",
                        other.kind()
                    ),
                });
            }
        };
        let field = |k: &str| {
            data.get(k)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::invalid(format!("{CONNECT_EVENT} event without {k}")))
        };
        let (call, target) = (field("call_sid")?, field("target")?);
        if !call.bytes().all(|b| b.is_ascii_alphanumeric()) || call.len() > 64 {
            return Err(Error::invalid("malformed call sid"));
        }
        let Some(sid) = &self.account_sid else {
            return Err(Error::Unsupported {
                reason: "the voice channel has no account SID to connect calls with".into(),
            });
        };
        let url = join_url(
            &self.base_url,
            &format!("2010-04-01/Accounts/{sid}/Calls/{call}.json"),
        );
        let twiml = dial_twiml(target);
        self.client
            .execute(|http| {
                http.post(&url)
                    .basic_auth(sid, Some(&self.auth_token))
                    .form(&[("Twiml", twiml.as_str())])
            })
            .await?;
        Ok(SendReceipt {
            provider_message_id: None,
            status: DeliveryStatus::Sent,
        })
    }
}
