//! The web chat channel: a WebSocket server for the embeddable browser widget.
//!
//! Mount [`WebChat::router`] under a path (e.g. `/chat`) and add the widget to any page:
//!
//! ```html
//! <script src="/chat/widget.js" data-endpoint="/chat" data-title="Help" defer></script>
//! ```
//!
//! Routes under the mount point:
//! - `POST /session` returns `{"visitor": .., "token": ..}`: a new visitor id and its signed token
//!   (or, with `{"token": ..}` in the body, the same visitor again if the token is valid). Shops
//!   that know their logged-in user call [`WebChat::issue_token`] themselves instead.
//! - `GET /ws?token=..` upgrades to a WebSocket. The server first sends
//!   `{"type":"hello","visitor":..,"history":[..],"max_text_bytes":..,"max_frame_bytes":..}`;
//!   the widget sends `{"type":"message","client_id":..,"text":..}` and gets
//!   `{"type":"ack",..}` back; bot and agent replies arrive as
//!   `{"type":"message","message":{..}}` (a bot's clarifying question as a `rich_card` whose
//!   buttons the widget shows as quick replies); a refused frame gets
//!   `{"type":"error","code":..,"reason":..,"client_id":..,"temporary":..}` (with `size` and
//!   `limit` in UTF-8 bytes for `payload_too_large`, `retry_after_secs` for `rate_limited`) and
//!   the connection stays open: the widget marks that message failed, in the page's language,
//!   with a retry. When a conversation is resolved the widget asks for a rating and sends
//!   `{"type":"rate","conversation":..,"score":1..5,"comment":..}` (comment optional, at most
//!   500 characters); the server answers `{"type":"rated",..}`, or an error frame (code
//!   `already_rated` for a second rating: the first one stands). A frame over the frame limit closes the socket with code 1009 and a reason;
//!   the widget marks every message not yet acknowledged failed.
//! - `GET /widget.js` serves the widget (plain JavaScript, no build step).
//!
//! Text limits are counted in UTF-8 bytes on both sides: the hello frame tells the widget the
//! server's limit, and the widget counts the same bytes (so a 1,500-character Chinese message,
//! 4,500 bytes, is stopped in the browser with the text kept, not lost on the server).
//!
//! Each socket holds small read and write buffers sized for chat frames
//! ([`WebChatBuilder::with_socket_buffer_bytes`], 4 KiB by default, grown only for a larger
//! frame), so ten thousand idle visitors cost tens of megabytes, not gigabytes.

mod frame;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cs_core::{ChannelId, ChannelKind, Content, ContentKind, DeliveryStatus, Identity};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::frame::{ClientFrame, MessageView, ServerFrame};
use self::token::{TokenSigner, valid_visitor_id};
use crate::channel::{
    Capabilities, Channel, ChannelInfo, InboundHandler, InboundMessage, InboundResponse,
    MAX_RATING_COMMENT_CHARS, OutboundMessage, Parsed, Rated, Rating, RawInbound, SendReceipt,
};
use crate::error::{Error, Result};

/// The widget's JavaScript.
pub const WIDGET_JS: &str = include_str!("widget.js");

/// The read buffer a widget socket starts with (see [`WebChatBuilder::with_socket_buffer_bytes`]).
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// The deepest JSON nesting of a widget frame (frames are flat objects).
const MAX_FRAME_DEPTH: usize = 4;

/// The WebSocket close code for a message too big to process (RFC 6455, section 7.4.1).
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The header a socket transport sets on [`RawInbound`] with the authenticated visitor id.
pub const VISITOR_HEADER: &str = "x-cs-visitor";

/// Configures a [`WebChat`].
#[derive(Clone)]
pub struct WebChatBuilder {
    id: ChannelId,
    secret: Option<Vec<u8>>,
    max_text_bytes: usize,
    max_frame_bytes: usize,
    socket_buffer_bytes: usize,
    history_limit: usize,
}

impl std::fmt::Debug for WebChatBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebChatBuilder")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("max_text_bytes", &self.max_text_bytes)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("socket_buffer_bytes", &self.socket_buffer_bytes)
            .field("history_limit", &self.history_limit)
            .finish()
    }
}

impl WebChatBuilder {
    /// A web chat channel named `id`.
    pub fn new(id: ChannelId) -> Self {
        Self {
            id,
            secret: None,
            max_text_bytes: 4 * 1024,
            max_frame_bytes: 64 * 1024,
            socket_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            history_limit: 200,
        }
    }

    /// The key that signs visitor tokens (at least 16 bytes). Keep it stable across restarts so
    /// returning visitors keep their history.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Longest message text accepted, in bytes (default 4 KiB). Longer texts get an error frame.
    pub fn with_max_text_bytes(mut self, bytes: usize) -> Self {
        self.max_text_bytes = bytes;
        self
    }

    /// Largest WebSocket frame read at all (default 64 KiB); a larger frame closes the
    /// connection with code 1009, as the WebSocket protocol prescribes.
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// The read buffer each socket starts with, in bytes (default 4 KiB; at least 256). A frame
    /// larger than the buffer grows it for that frame; the write buffer holds what one frame
    /// needs, as every frame is written out at once. tungstenite's default of 128 KiB each way
    /// made an idle widget cost about 130 KB of server memory.
    pub fn with_socket_buffer_bytes(mut self, bytes: usize) -> Self {
        self.socket_buffer_bytes = bytes.max(256);
        self
    }

    /// How many past messages a (re)connecting widget receives (default 200).
    pub fn with_history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without a secret of at least 16 bytes, or when the text limit
    /// exceeds the frame limit.
    pub fn build(self) -> Result<WebChat> {
        let secret = self
            .secret
            .filter(|s| s.len() >= 16)
            .ok_or_else(|| Error::invalid("web chat needs a secret of at least 16 bytes"))?;
        if self.max_text_bytes == 0 || self.max_text_bytes > self.max_frame_bytes {
            return Err(Error::invalid(
                "max_text_bytes must be between 1 and max_frame_bytes",
            ));
        }
        let mut capabilities = Capabilities::text_only();
        capabilities.content.extend([
            ContentKind::Image,
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::File,
            ContentKind::Location,
            ContentKind::RichCard,
        ]);
        capabilities.read_receipts = true;
        Ok(WebChat {
            signer: TokenSigner::new(&secret, self.id.as_str()),
            info: ChannelInfo {
                id: self.id,
                kind: ChannelKind::WebChat,
                capabilities,
            },
            max_text_bytes: self.max_text_bytes,
            max_frame_bytes: self.max_frame_bytes,
            socket_buffer_bytes: self.socket_buffer_bytes,
            history_limit: self.history_limit,
            sessions: Mutex::new(HashMap::new()),
        })
    }
}

type Outbox = mpsc::Sender<ServerFrame>;

/// The web chat channel. Share it as `Arc<WebChat>`: the same value is the [`Channel`] the engine
/// sends through and the state of the WebSocket server from [`WebChat::router`].
#[derive(Debug)]
pub struct WebChat {
    info: ChannelInfo,
    signer: TokenSigner,
    max_text_bytes: usize,
    max_frame_bytes: usize,
    socket_buffer_bytes: usize,
    history_limit: usize,
    /// Open sockets per visitor (a visitor may have several tabs open).
    sessions: Mutex<HashMap<String, Vec<(u64, Outbox)>>>,
}

impl WebChat {
    /// Starts configuring a web chat channel named `id`.
    pub fn builder(id: ChannelId) -> WebChatBuilder {
        WebChatBuilder::new(id)
    }

    /// A signed token for `visitor` (your logged-in user's id, say) that the widget can connect
    /// with; pass it to the widget as `data-token`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an id that is empty, over 128 characters, or has characters
    /// other than `A-Z a-z 0-9 - _ : @`.
    pub fn issue_token(&self, visitor: &str) -> Result<String> {
        if !valid_visitor_id(visitor) {
            return Err(Error::invalid(
                "visitor ids are 1-128 characters of A-Z a-z 0-9 - _ : @",
            ));
        }
        Ok(self.signer.sign(visitor))
    }

    /// The visitor a token was issued to.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a malformed or forged token.
    pub fn verify_token(&self, token: &str) -> Result<String> {
        self.signer.verify(token)
    }

    /// How many sockets are open for `visitor`.
    pub fn connections(&self, visitor: &str) -> usize {
        self.lock().get(visitor).map_or(0, Vec::len)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<(u64, Outbox)>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn identity(visitor: &str) -> Identity {
        Identity::new(ChannelKind::WebChat, visitor)
    }

    /// The axum routes of the widget server (`/session`, `/ws`, `/widget.js`), with `handler`
    /// receiving every customer message. Mount with `Router::nest("/chat", ..)`.
    pub fn router(self: Arc<Self>, handler: Arc<dyn InboundHandler>) -> Router {
        Router::new()
            .route("/session", post(session))
            .route("/ws", get(upgrade))
            .route("/widget.js", get(widget_js))
            .with_state(Server {
                chat: self,
                handler,
            })
    }

    /// Checks and decodes one widget frame sent by `visitor`.
    fn decode(&self, visitor: &str, body: &[u8]) -> Result<Decoded> {
        if body.len() > self.max_text_bytes + 512 {
            return Err(Error::PayloadTooLarge {
                size: body.len(),
                limit: self.max_text_bytes + 512,
            });
        }
        crate::limits::check_json(body, MAX_FRAME_DEPTH)?;
        let frame: ClientFrame = serde_json::from_slice(body)
            .map_err(|e| Error::invalid(format!("malformed frame: {e}")))?;
        let (client_id, text) = match frame {
            ClientFrame::Message { client_id, text } => (client_id, text),
            ClientFrame::Rate {
                conversation,
                score,
                comment,
            } => return Self::decode_rating(conversation, score, comment).map(Decoded::Rate),
        };
        if client_id.is_empty() || client_id.len() > 64 {
            return Err(Error::invalid("client_id must be 1-64 characters"));
        }
        if text.trim().is_empty() {
            return Err(Error::invalid("message text is empty"));
        }
        if text.len() > self.max_text_bytes {
            return Err(Error::PayloadTooLarge {
                size: text.len(),
                limit: self.max_text_bytes,
            });
        }
        Ok(Decoded::Message(InboundMessage {
            channel: self.info.id.clone(),
            from: Self::identity(visitor),
            provider_message_id: Some(client_id),
            content: Content::text(text),
            display_name: None,
            language: None,
            sent_at: None,
        }))
    }

    /// Checks a rating frame: a score of 1-5 and a comment of at most
    /// [`MAX_RATING_COMMENT_CHARS`] characters (blank is none).
    fn decode_rating(
        conversation: cs_core::ConversationId,
        score: u8,
        comment: Option<String>,
    ) -> Result<Rating> {
        if !(1..=5).contains(&score) {
            return Err(Error::invalid(format!(
                "a rating is from 1 to 5, not {score}"
            )));
        }
        let comment = comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if let Some(c) = &comment {
            let chars = c.chars().count();
            if chars > MAX_RATING_COMMENT_CHARS {
                return Err(Error::PayloadTooLarge {
                    size: chars,
                    limit: MAX_RATING_COMMENT_CHARS,
                });
            }
        }
        Ok(Rating::new(conversation, score, comment))
    }
}

/// A widget frame, checked.
#[derive(Debug)]
enum Decoded {
    /// A customer message for the engine.
    Message(InboundMessage),
    /// A rating of a resolved conversation.
    Rate(Rating),
}

#[async_trait]
impl Channel for WebChat {
    fn info(&self) -> &ChannelInfo {
        &self.info
    }

    /// Parses one widget frame; the visitor comes from [`VISITOR_HEADER`], which only the socket
    /// transport sets after checking the visitor's token.
    async fn parse_inbound(&self, request: RawInbound) -> Result<Parsed> {
        let visitor = request
            .headers
            .get(VISITOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| valid_visitor_id(v))
            .ok_or_else(|| Error::unauthenticated("no authenticated visitor"))?;
        let Decoded::Message(message) = self.decode(visitor, &request.body)? else {
            return Err(Error::Unsupported {
                reason: "ratings travel over the widget's socket".into(),
            });
        };
        Ok(Parsed {
            messages: vec![message],
            statuses: Vec::new(),
            response: InboundResponse::ok(),
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt> {
        if message.to.kind != ChannelKind::WebChat {
            return Err(Error::invalid(format!(
                "web chat cannot reach identity {}",
                message.to
            )));
        }
        let frame = ServerFrame::Message {
            message: MessageView::from(&message.message),
        };
        let outboxes: Vec<Outbox> = self
            .lock()
            .get(&message.to.external_id)
            .map(|v| v.iter().map(|(_, tx)| tx.clone()).collect())
            .unwrap_or_default();
        let mut delivered = false;
        for tx in outboxes {
            delivered |= tx.send(frame.clone()).await.is_ok();
        }
        Ok(SendReceipt {
            provider_message_id: None,
            // An offline visitor gets the message with the history when the widget reconnects.
            status: if delivered {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Pending
            },
        })
    }
}

#[derive(Debug, Clone)]
struct Server {
    chat: Arc<WebChat>,
    handler: Arc<dyn InboundHandler>,
}

#[derive(Debug, Default, Deserialize)]
struct SessionRequest {
    token: Option<String>,
}

#[derive(Debug, Serialize)]
struct SessionResponse {
    visitor: String,
    token: String,
}

async fn session(State(s): State<Server>, body: Bytes) -> Response {
    let req: SessionRequest = if body.is_empty() {
        SessionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error_response(StatusCode::BAD_REQUEST, &Error::invalid(e.to_string()));
            }
        }
    };
    if let Some(token) = req.token
        && let Ok(visitor) = s.chat.verify_token(&token)
    {
        return Json(SessionResponse { visitor, token }).into_response();
    }
    let visitor = format!("v-{}", uuid::Uuid::new_v4().simple());
    match s.chat.issue_token(&visitor) {
        Ok(token) => Json(SessionResponse { visitor, token }).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

fn error_response(status: StatusCode, e: &Error) -> Response {
    (
        status,
        Json(serde_json::json!({"error": e.code(), "reason": e.to_string()})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    token: String,
}

async fn upgrade(
    State(s): State<Server>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let visitor = match s.chat.verify_token(&q.token) {
        Ok(v) => v,
        Err(e) => return error_response(StatusCode::UNAUTHORIZED, &e),
    };
    let max = s.chat.max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(s.chat.socket_buffer_bytes)
        // Frames gather up to the read buffer's size before they are written; the socket's
        // writer flushes after every frame that was waiting (none is held back), so under load
        // several frames leave in one write. (No cap on the write buffer: a hello frame with a
        // long history may be large.)
        .write_buffer_size(s.chat.socket_buffer_bytes)
        .on_upgrade(move |socket| serve_socket(s, visitor, socket))
}

async fn widget_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        WIDGET_JS,
    )
}

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The most frames a socket's writer queues before it flushes them to the socket.
const FRAMES_PER_FLUSH: usize = 32;

async fn serve_socket(s: Server, visitor: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(64);
    let conn = NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let history = s
        .handler
        .history(
            &s.chat.info.id,
            &WebChat::identity(&visitor),
            s.chat.history_limit,
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, %visitor, "web chat history unavailable");
            Vec::new()
        });
    let hello = ServerFrame::Hello {
        visitor: visitor.clone(),
        history: history.iter().map(MessageView::from).collect(),
        max_text_bytes: s.chat.max_text_bytes,
        max_frame_bytes: s.chat.max_frame_bytes,
    };
    if tx.send(hello).await.is_err() {
        return;
    }
    s.chat
        .lock()
        .entry(visitor.clone())
        .or_default()
        .push((conn, tx.clone()));

    // Why the reader stopped, when the server is the one closing (a frame over the limit).
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<ws::CloseFrame>();
    let writer = tokio::spawn(async move {
        // Every frame waiting is written before one flush: under load an acknowledgement and
        // the answers queued behind it leave in one write to the socket, not one each.
        'frames: while let Some(frame) = rx.recv().await {
            let mut next = Some(frame);
            let mut queued = 0;
            while let Some(frame) = next.take() {
                if let Ok(text) = serde_json::to_string(&frame)
                    && sink.feed(ws::Message::Text(text.into())).await.is_err()
                {
                    break 'frames;
                }
                queued += 1;
                if queued < FRAMES_PER_FLUSH {
                    next = rx.try_recv().ok();
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        match close_rx.await {
            Ok(frame) => {
                let _ = sink.send(ws::Message::Close(Some(frame))).await;
            }
            Err(_) => {
                let _ = sink.close().await;
            }
        }
    });
    let mut close_tx = Some(close_tx);

    while let Some(incoming) = stream.next().await {
        let body: Bytes = match incoming {
            Ok(ws::Message::Text(t)) => Bytes::copy_from_slice(t.as_str().as_bytes()),
            Ok(ws::Message::Binary(_)) => {
                let e = Error::invalid("binary frames are not accepted; send JSON text");
                let _ = tx.send(error_frame(&e, None)).await;
                continue;
            }
            Ok(ws::Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                if let Some(reason) = too_big(e, s.chat.max_frame_bytes) {
                    tracing::debug!(%visitor, %reason, "web chat frame over the limit");
                    if let Some(tx) = close_tx.take() {
                        let _ = tx.send(ws::CloseFrame {
                            code: CLOSE_TOO_BIG,
                            reason: reason.into(),
                        });
                    }
                } else {
                    tracing::debug!(%visitor, "web chat socket closed with an error");
                }
                break;
            }
        };
        let reply = match s.chat.decode(&visitor, &body) {
            Err(e) => error_frame(&e, client_id_of(&body)),
            Ok(Decoded::Message(message)) => {
                let client_id = message.provider_message_id.clone().unwrap_or_default();
                match s.handler.handle(message).await {
                    Ok(d) => ServerFrame::Ack {
                        client_id,
                        message_id: d.message.id,
                        duplicate: d.duplicate,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, %visitor, "web chat message not taken");
                        error_frame(&e, Some(client_id))
                    }
                }
            }
            Ok(Decoded::Rate(rating)) => {
                let (conversation, score) = (rating.conversation, rating.score);
                match s
                    .handler
                    .rate(&s.chat.info.id, &WebChat::identity(&visitor), rating)
                    .await
                {
                    Ok(Rated::Recorded) => ServerFrame::Rated {
                        conversation,
                        score,
                    },
                    Ok(_) => already_rated(),
                    Err(e) => {
                        tracing::debug!(error = %e, %visitor, "web chat rating refused");
                        error_frame(&e, None)
                    }
                }
            }
        };
        if tx.send(reply).await.is_err() {
            break;
        }
    }

    {
        let mut sessions = s.chat.lock();
        if let Some(list) = sessions.get_mut(&visitor) {
            list.retain(|(c, _)| *c != conn);
            if list.is_empty() {
                sessions.remove(&visitor);
            }
        }
    }
    drop(tx);
    drop(close_tx);
    let _ = writer.await;
}

/// The close reason for a read error that is a frame or message over `limit`, or `None` for any
/// other error (the peer went away, a protocol error).
fn too_big(e: axum::Error, limit: usize) -> Option<String> {
    match *e.into_inner().downcast::<tungstenite::Error>().ok()? {
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size,
            ..
        }) => Some(format!("frame of {size} bytes over the limit of {limit}")),
        _ => None,
    }
}

/// The refusal of a second rating of the same conversation (the first one stands).
fn already_rated() -> ServerFrame {
    ServerFrame::Error {
        code: "already_rated",
        reason: "this conversation has been rated already".into(),
        client_id: None,
        temporary: false,
        size: None,
        limit: None,
        retry_after_secs: None,
    }
}

fn error_frame(e: &Error, client_id: Option<String>) -> ServerFrame {
    let (size, limit) = match e {
        Error::PayloadTooLarge { size, limit } => (Some(*size), Some(*limit)),
        _ => (None, None),
    };
    let retry_after_secs = match e {
        // Rounded up: "wait 0 seconds" would invite an immediate second refusal.
        Error::RateLimited { retry_after } => {
            Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
        }
        _ => None,
    };
    ServerFrame::Error {
        code: e.code(),
        reason: e.to_string(),
        client_id,
        temporary: e.is_temporary(),
        size,
        limit,
        retry_after_secs,
    }
}

/// Best effort: the client id of a refused frame, so the widget can mark the right bubble.
fn client_id_of(body: &[u8]) -> Option<String> {
    crate::limits::check_json(body, MAX_FRAME_DEPTH).ok()?;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = v.get("client_id")?.as_str()?;
    (id.len() <= 64).then(|| id.to_owned())
}
