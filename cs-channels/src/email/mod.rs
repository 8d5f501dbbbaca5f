//! The email channel: SMTP out with our own `Message-ID`, `In-Reply-To` and `References`; mail in
//! by IMAP ([`ImapPoller`], polling or IDLE), by our own SMTP receiver ([`SmtpReceiver`]) or as a
//! raw MIME webhook post; every inbound mail threaded and de-duplicated. Connections are plain
//! by default (a relay or mail server on the same host or network); the `email-tls` feature adds
//! SMTP with STARTTLS or implicit TLS ([`SmtpTls`]) and IMAP over TLS
//! ([`ImapConfig::with_tls`]), checking certificates against the system's roots.
//!
//! Threading, in this order:
//! 1. the token of a plus address it was sent to (`support+<token>@shop`), which is the
//!    `Reply-To` of every mail we send;
//! 2. `In-Reply-To`, then `References` (newest first), matched against the Message-IDs of mails
//!    we sent and received;
//! 3. a `[#<token>]` tag in the subject, which every mail we send carries;
//! 4. else a new thread, whose token is derived from the mail's Message-ID.
//!
//! The thread's token reaches the engine in [`InboundContext::thread`] together with the
//! conversation the thread's earlier messages were stored in ([`InboundHandler::handle_with`]).
//! A re-delivered mail (same Message-ID) is recognised and not handed over again.
//!
//! ```
//! use cs_channels::Channel;
//! use cs_channels::email::{EmailChannel, SmtpConfig, ThreadKey, ThreadedBy};
//! use cs_core::{ChannelId, ContentKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cs_channels::Result<()> {
//! let email = EmailChannel::builder(ChannelId::new("email")?, "support@shop.example")
//!     .with_display_name("Shop Support")
//!     .with_smtp(SmtpConfig::new("127.0.0.1", 25))
//!     .with_thread_secret(b"16 or more bytes of secret".to_vec())
//!     .build()?;
//! assert!(email.info().capabilities.supports(ContentKind::Text));
//! let key = ThreadKey::new("a1b2c3d4")?;
//! assert_eq!(email.thread_address(&key), "support+a1b2c3d4@shop.example");
//!
//! // A reply to that address joins the thread, whatever its headers say.
//! let mail = email
//!     .parse(
//!         b"From: Li Lei <lilei@example.com>\r\nTo: support+a1b2c3d4@shop.example\r\n\
//!           Subject: Re: Refund\r\nMessage-ID: <m1@example.com>\r\n\r\nStill waiting.\r\n",
//!     )
//!     .await?;
//! assert_eq!(mail.thread, key);
//! assert_eq!(mail.threaded_by, ThreadedBy::PlusAddress);
//! assert_eq!(mail.messages[0].content.plain_text(), "Still waiting.");
//! # Ok(())
//! # }
//! ```

mod attachment;
pub mod conformance;
mod imap;
mod outbound;
mod parse;
mod smtp_server;
mod thread;

use std::sync::Arc;

use async_trait::async_trait;
use cs_core::{
    ChannelId, ChannelKind, Content, ContentKind, ConversationId, DeliveryStatus, Identity,
};
use http::{Method, StatusCode};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

pub use self::attachment::{AttachmentSink, FsAttachmentSink, MemoryAttachmentSink};
pub use self::imap::{ImapConfig, ImapPoller, PollReport};
pub use self::outbound::{SmtpConfig, SmtpTls};
pub use self::parse::{
    MAX_HEADER_LINES, MAX_MIME_DELIMITERS, MAX_MIME_MULTIPARTS, MAX_PARENTS, check_mime,
};
pub use self::smtp_server::{SmtpReceiver, SmtpReceiverBuilder};
pub use self::thread::{MemoryThreadStore, ThreadKey, ThreadState, ThreadStore, ThreadedBy};

use self::parse::{ParsedMail, parse_mail};
use self::thread::base_subject;
use crate::channel::{
    Capabilities, Channel, ChannelInfo, Delivered, InboundContext, InboundHandler, InboundMessage,
    InboundResponse, OutboundMessage, Parsed, RawInbound, SendReceipt,
};
use crate::error::{Error, Result};

/// The default largest mail accepted, in bytes (25 MiB, as most providers).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// Configures an [`EmailChannel`].
#[derive(Clone)]
pub struct EmailChannelBuilder {
    id: ChannelId,
    support_address: String,
    display_name: Option<String>,
    smtp: Option<SmtpConfig>,
    thread_secret: Option<Vec<u8>>,
    threads: Option<Arc<dyn ThreadStore>>,
    attachments: Option<Arc<dyn AttachmentSink>>,
    max_message_bytes: usize,
    inbound_token: Option<String>,
    default_subject: String,
}

impl std::fmt::Debug for EmailChannelBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannelBuilder")
            .field("id", &self.id)
            .field("support_address", &self.support_address)
            .field("display_name", &self.display_name)
            .field("smtp", &self.smtp)
            .field(
                "thread_secret",
                &self.thread_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("threads", &self.threads)
            .field("attachments", &self.attachments)
            .field("max_message_bytes", &self.max_message_bytes)
            .field(
                "inbound_token",
                &self.inbound_token.as_ref().map(|_| "<redacted>"),
            )
            .field("default_subject", &self.default_subject)
            .finish()
    }
}

impl EmailChannelBuilder {
    /// An email channel named `id` answering as `support_address` (e.g. `support@shop.example`).
    pub fn new(id: ChannelId, support_address: impl Into<String>) -> Self {
        Self {
            id,
            support_address: support_address.into(),
            display_name: None,
            smtp: None,
            thread_secret: None,
            threads: None,
            attachments: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            inbound_token: None,
            default_subject: "Your request".into(),
        }
    }

    /// The name shown beside the support address (`"Shop Support" <support@...>`).
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Where outbound mail is submitted (required).
    pub fn with_smtp(mut self, smtp: SmtpConfig) -> Self {
        self.smtp = Some(smtp);
        self
    }

    /// The secret thread tokens are derived under (required, at least 16 bytes): keep it
    /// stable, or replies to mails sent before a change start new threads.
    pub fn with_thread_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.thread_secret = Some(secret.into());
        self
    }

    /// Where threads are remembered; defaults to a [`MemoryThreadStore`].
    pub fn with_thread_store(mut self, store: Arc<dyn ThreadStore>) -> Self {
        self.threads = Some(store);
        self
    }

    /// Where attachments go; defaults to a [`MemoryAttachmentSink`].
    pub fn with_attachment_sink(mut self, sink: Arc<dyn AttachmentSink>) -> Self {
        self.attachments = Some(sink);
        self
    }

    /// The largest mail accepted, in bytes.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The bearer token a raw-MIME webhook post must carry (`Authorization: Bearer <token>`);
    /// without one, [`Channel::parse_inbound`] refuses every post.
    pub fn with_inbound_token(mut self, token: impl Into<String>) -> Self {
        self.inbound_token = Some(token.into());
        self
    }

    /// The subject of a mail that starts a thread (an agent writing first).
    pub fn with_default_subject(mut self, subject: impl Into<String>) -> Self {
        self.default_subject = subject.into();
        self
    }

    /// Checks the settings and builds the channel.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a support address that is not `local@domain` or has a `+`,
    /// a missing SMTP configuration, a bad root certificate, or a thread secret under 16 bytes;
    /// [`Error::Unsupported`] for SMTP over TLS without the `email-tls` feature.
    pub fn build(self) -> Result<EmailChannel> {
        let address = self.support_address.trim().to_ascii_lowercase();
        let (local, domain) = address
            .rsplit_once('@')
            .filter(|(l, d)| !l.is_empty() && d.contains('.') && !l.contains('+'))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "support address must be local@domain without '+': {address:?}"
                ))
            })?;
        // Checked once here so every later From/Reply-To parses.
        outbound::mailbox(None, &address)?;
        let smtp = self
            .smtp
            .ok_or_else(|| Error::invalid("email channel needs an SMTP configuration"))?;
        let secret = self
            .thread_secret
            .filter(|s| s.len() >= 16)
            .ok_or_else(|| Error::invalid("email channel needs a thread secret of 16+ bytes"))?;
        let max = u64::try_from(self.max_message_bytes).unwrap_or(u64::MAX);
        let info = ChannelInfo {
            id: self.id,
            kind: ChannelKind::Email,
            capabilities: Capabilities {
                // What we send: a text/plain body. Media the engine has goes out as its link.
                content: [ContentKind::Text].into(),
                typing: false,
                read_receipts: false,
                max_text_chars: None,
                max_media_bytes: Some(max),
                reply_window: None,
            },
        };
        Ok(EmailChannel {
            transport: smtp.transport(domain)?,
            info,
            local: local.to_owned(),
            domain: domain.to_owned(),
            display_name: self.display_name,
            secret,
            threads: self
                .threads
                .unwrap_or_else(|| Arc::new(MemoryThreadStore::new())),
            attachments: self
                .attachments
                .unwrap_or_else(|| Arc::new(MemoryAttachmentSink::new())),
            max_message_bytes: self.max_message_bytes,
            inbound_token: self.inbound_token,
            default_subject: self.default_subject,
        })
    }
}

/// The email channel. Hand it to an [`ImapPoller`] or [`SmtpReceiver`] for inbound mail, or
/// call [`EmailChannel::ingest`] with raw mails yourself.
pub struct EmailChannel {
    info: ChannelInfo,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    local: String,
    domain: String,
    display_name: Option<String>,
    secret: Vec<u8>,
    threads: Arc<dyn ThreadStore>,
    attachments: Arc<dyn AttachmentSink>,
    max_message_bytes: usize,
    inbound_token: Option<String>,
    default_subject: String,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("info", &self.info)
            .field("address", &self.support_address())
            .field("threads", &self.threads)
            .field("attachments", &self.attachments)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

/// What [`EmailChannel::ingest`] did with a mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The mail's Message-ID (without angle brackets).
    pub message_id: String,
    /// The thread it went into.
    pub thread: ThreadKey,
    /// Which rule chose the thread.
    pub threaded_by: ThreadedBy,
    /// The conversation the engine stored it in (none for a duplicate of a thread the engine
    /// never stored, or an ignored mail).
    pub conversation: Option<ConversationId>,
    /// The stored messages: the text first, then one per attachment.
    pub messages: Vec<Delivered>,
    /// Whether this Message-ID had been ingested before (nothing was handed over again).
    pub duplicate: bool,
}

/// A mail turned into messages and its thread, before anything was handed over.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEmail {
    /// The mail's Message-ID (without angle brackets).
    pub message_id: String,
    /// The thread it belongs to.
    pub thread: ThreadKey,
    /// Which rule chose the thread.
    pub threaded_by: ThreadedBy,
    /// The subject.
    pub subject: Option<String>,
    /// Whether a machine sent it (auto-reply, bounce, bulk): bots should not answer.
    pub automated: bool,
    /// The messages: the body text (if any), then one per attachment (by reference).
    pub messages: Vec<InboundMessage>,
}

impl EmailChannel {
    /// Starts configuring a channel named `id` answering as `support_address`.
    pub fn builder(id: ChannelId, support_address: impl Into<String>) -> EmailChannelBuilder {
        EmailChannelBuilder::new(id, support_address)
    }

    /// The support address's domain, lower-cased (the domain the SMTP receiver accepts).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The support address (`local@domain`).
    pub fn support_address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// The reply address of a thread: `local+token@domain`.
    pub fn thread_address(&self, thread: &ThreadKey) -> String {
        format!("{}+{}@{}", self.local, thread, self.domain)
    }

    /// The thread store the channel uses.
    pub fn threads(&self) -> &Arc<dyn ThreadStore> {
        &self.threads
    }

    /// The largest mail accepted, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Parses and threads a raw mail, storing its attachments, without handing anything over.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] over the size limit, [`Error::InvalidInput`] for a mail that
    /// cannot be parsed or has no sender, [`Error::Unavailable`] when the thread store or
    /// attachment sink is out of reach.
    pub async fn parse(&self, raw: &[u8]) -> Result<InboundEmail> {
        let mail = self.parse_checked(raw)?;
        self.email_of(mail, &[]).await
    }

    fn parse_checked(&self, raw: &[u8]) -> Result<ParsedMail> {
        if raw.len() > self.max_message_bytes {
            return Err(Error::PayloadTooLarge {
                size: raw.len(),
                limit: self.max_message_bytes,
            });
        }
        parse_mail(raw)
    }

    async fn email_of(&self, mail: ParsedMail, envelope: &[String]) -> Result<InboundEmail> {
        let (thread, threaded_by) = self.resolve_thread(&mail, envelope).await?;
        let messages = self.messages_of(&mail).await?;
        Ok(InboundEmail {
            message_id: mail.message_id,
            thread,
            threaded_by,
            subject: mail.subject,
            automated: mail.automated,
            messages,
        })
    }

    async fn resolve_thread(
        &self,
        mail: &ParsedMail,
        envelope: &[String],
    ) -> Result<(ThreadKey, ThreadedBy)> {
        let plus = envelope
            .iter()
            .chain(&mail.recipients)
            .find_map(|r| ThreadKey::from_plus_address(r, &self.local, &self.domain));
        if let Some(key) = plus {
            return Ok((key, ThreadedBy::PlusAddress));
        }
        for parent in &mail.parents {
            if let Some(key) = self.threads.thread_of(parent).await? {
                return Ok((key, ThreadedBy::Reply));
            }
        }
        if let Some(key) = mail.subject.as_deref().and_then(ThreadKey::from_subject) {
            return Ok((key, ThreadedBy::SubjectTag));
        }
        // A re-delivered first mail derives the same key.
        Ok((
            ThreadKey::derive(&self.secret, &mail.message_id),
            ThreadedBy::New,
        ))
    }

    async fn messages_of(&self, mail: &ParsedMail) -> Result<Vec<InboundMessage>> {
        let base = InboundMessage {
            channel: self.info.id.clone(),
            from: Identity::new(ChannelKind::Email, mail.from.clone()),
            provider_message_id: Some(mail.message_id.clone()),
            content: Content::text(String::new()),
            display_name: mail.from_name.clone(),
            language: None,
            sent_at: mail.date,
        };
        let mut out = Vec::new();
        let text = match (&mail.subject, mail.text.trim()) {
            (_, t) if !t.is_empty() => t.to_owned(),
            (Some(s), _) if mail.attachments.is_empty() && !base_subject(s).is_empty() => {
                base_subject(s)
            }
            _ => String::new(),
        };
        if !text.is_empty() {
            out.push(InboundMessage {
                content: Content::text(text),
                ..base.clone()
            });
        }
        for (i, a) in mail.attachments.iter().enumerate() {
            let url = self.attachments.store(&a.name, &a.mime, &a.bytes).await?;
            let content = if a.mime.starts_with("image/") {
                Content::Image {
                    url,
                    caption: Some(a.name.clone()),
                }
            } else {
                Content::File {
                    url,
                    name: a.name.clone(),
                    mime: Some(a.mime.clone()),
                    size: u64::try_from(a.bytes.len()).ok(),
                }
            };
            out.push(InboundMessage {
                content,
                provider_message_id: Some(format!("{}#{}", mail.message_id, i + 1)),
                ..base.clone()
            });
        }
        if out.is_empty() {
            return Err(Error::invalid("mail has neither text nor attachments"));
        }
        Ok(out)
    }

    /// Parses, threads and de-duplicates a raw mail and hands its messages to `handler`, with the
    /// thread in the [`InboundContext`]; remembers its Message-ID and the conversation it went to.
    ///
    /// # Errors
    /// As [`EmailChannel::parse`], and whatever `handler` reports (then nothing is remembered, so
    /// a retry of the same mail is handed over again).
    pub async fn ingest(&self, raw: &[u8], handler: &dyn InboundHandler) -> Result<Ingested> {
        self.ingest_for(raw, &[], handler).await
    }

    /// [`EmailChannel::ingest`] with the SMTP envelope's recipients, which may hold the plus
    /// address when the headers do not (Bcc).
    ///
    /// # Errors
    /// As [`EmailChannel::ingest`].
    pub async fn ingest_for(
        &self,
        raw: &[u8],
        envelope_recipients: &[String],
        handler: &dyn InboundHandler,
    ) -> Result<Ingested> {
        let mail = self.parse_checked(raw)?;
        if let Some(thread) = self.threads.thread_of(&mail.message_id).await? {
            let conversation = self
                .threads
                .load(&thread)
                .await?
                .and_then(|s| s.conversation);
            return Ok(Ingested {
                message_id: mail.message_id,
                thread,
                threaded_by: ThreadedBy::Redelivery,
                conversation,
                messages: Vec::new(),
                duplicate: true,
            });
        }
        let email = self.email_of(mail, envelope_recipients).await?;
        let mut state = self
            .threads
            .load(&email.thread)
            .await?
            .unwrap_or_else(|| ThreadState::new(email.thread.clone()));
        let context =
            InboundContext::thread(email.thread.as_str()).with_conversation(state.conversation);
        let mut delivered = Vec::with_capacity(email.messages.len());
        for message in email.messages {
            let d = handler.handle_with(message, context.clone()).await?;
            delivered.push(d);
        }
        let conversation = delivered.first().map(|d| d.message.conversation);
        if conversation.is_some() {
            state.conversation = conversation;
        }
        if state.subject.is_none() {
            state.subject = email
                .subject
                .as_deref()
                .map(base_subject)
                .filter(|s| !s.is_empty());
        }
        state.push_message_id(&email.message_id);
        self.threads.save(&state).await?;
        self.threads
            .record(&email.message_id, &email.thread)
            .await?;
        Ok(Ingested {
            message_id: email.message_id,
            thread: email.thread,
            threaded_by: email.threaded_by,
            conversation,
            messages: delivered,
            duplicate: false,
        })
    }

    fn subject_for(&self, state: &ThreadState) -> String {
        let tag = format!("[#{}]", state.key);
        match &state.subject {
            Some(s) => format!("Re: {s} {tag}"),
            None => format!("{} {tag}", self.default_subject),
        }
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    /// Takes a raw MIME mail posted by an inbound-mail webhook (`Authorization: Bearer <token>`,
    /// body = the mail). The messages carry no thread context; prefer [`EmailChannel::ingest`],
    /// which the IMAP poller and SMTP receiver use.
    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        let expected = self
            .inbound_token
            .as_deref()
            .ok_or_else(|| Error::unauthenticated("no inbound token configured"))?;
        let given = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Error::unauthenticated("missing bearer token"))?;
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(Error::unauthenticated("wrong bearer token"));
        }
        if request.method != Method::POST {
            return Err(Error::invalid("inbound mail must be POSTed"));
        }
        let email = self.parse(&request.body).await?;
        Ok(Parsed {
            messages: email.messages,
            statuses: Vec::new(),
            response: InboundResponse {
                status: StatusCode::OK,
                content_type: None,
                body: bytes::Bytes::new(),
            },
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        if message.to.kind != ChannelKind::Email {
            return Err(Error::invalid(format!(
                "email channel cannot send to a {} identity",
                message.to.kind
            )));
        }
        let text = match &message.message.content {
            Content::Event { .. } => {
                return Err(Error::Unsupported {
                    reason: "events are not sent by email".into(),
                });
            }
            other => self.info.capabilities.adapt(other.clone()).plain_text(),
        };
        let conversation = message.message.conversation;
        let key = match self.threads.thread_of_conversation(conversation).await? {
            Some(k) => k,
            None => ThreadKey::derive(&self.secret, &conversation.to_string()),
        };
        let mut state = self
            .threads
            .load(&key)
            .await?
            .unwrap_or_else(|| ThreadState::new(key.clone()));
        let message_id = format!("{}.{}@{}", message.message.id, key, self.domain);
        let mail = outbound::build_mail(outbound::OutgoingMail {
            from: outbound::mailbox(self.display_name.as_deref(), &self.support_address())?,
            reply_to: outbound::mailbox(self.display_name.as_deref(), &self.thread_address(&key))?,
            to: outbound::mailbox(None, &message.to.external_id)?,
            subject: self.subject_for(&state),
            message_id: format!("<{message_id}>"),
            references: &state.message_ids,
            text,
        })?;
        outbound::submit(&self.transport, mail).await?;
        state.conversation = Some(conversation);
        state.push_message_id(&message_id);
        self.threads.save(&state).await?;
        self.threads.record(&message_id, &key).await?;
        Ok(SendReceipt {
            provider_message_id: Some(message_id),
            status: DeliveryStatus::Sent,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
