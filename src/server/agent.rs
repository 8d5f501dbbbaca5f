//! The agent console: sign-in, and a WebSocket that streams the agent's conversations and the
//! queue, and takes replies.
//!
//! Protocol (JSON text frames):
//! - Sign in through the REST API (`POST /api/v1/auth/login`, see [`super::api`]; `POST
//!   /agent/login` is the same route kept for older clients), then ask `POST
//!   /api/v1/auth/ws-ticket` for a one-time ticket: the session token never goes in a URL.
//! - `GET /agent/ws?ticket=..` (a ticket is good once, for 30 seconds by default): the server
//!   sends `welcome` (the agent, their conversations with
//!   each customer's whole history, the offers waiting for their answer, the queue), then
//!   `assigned`, `offer` (a conversation offered until `expires_at`), `offer_closed`
//!   (`rejected` or `expired`), `presence` (the router set the agent away after missed offers),
//!   `message`, `queue` and `resolved` frames as things happen, and `mention` (a colleague's
//!   internal note names the agent as `@name`: the conversation, who wrote and the note; its
//!   messages follow from then on), `transferred` (one of its conversations went to another
//!   agent). A console that falls behind the
//!   event stream gets a fresh `welcome` from the store: it is never left with a gap. The agent sends
//!   `{"type":"reply","conversation_id":..,"client_id":..,"text":..,"confirm":false}` (a reply
//!   the compliance rules refuse gets an `error` with code `compliance`, the client id and the
//!   phrases; `confirm: true` sends a text whose warnings the agent has seen),
//!   `{"type":"resolve","conversation_id":..}`, `{"type":"accept"|"reject","conversation_id":..}`
//!   (an offer), `{"type":"take","conversation_id":..}` (a queued conversation, out of turn)
//!   and `{"type":"presence","presence":"online"|"away"}`; refused frames get `error`.
//!   Connecting signs the agent in; closing the last socket signs them out (they keep their
//!   conversations). A socket whose session is revoked (sign-out, password change, admin
//!   action) or expires is closed.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cs_core::{
    Agent, AgentId, Content, Conversation, ConversationId, DomainEvent, Message, Presence,
};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::BasePath;
use super::limits::{self, Guard};
use crate::engine::{CustomerView, Engine};

pub use super::auth::AgentAuth;

#[derive(Debug, Clone)]
struct ConsoleState {
    engine: Engine,
    auth: Arc<AgentAuth>,
}

/// The console's page, script and style.
const PAGE: &str = include_str!("assets/agent.html");
const SCRIPT: &str = include_str!("assets/agent.js");
const STYLE: &str = include_str!("assets/agent.css");

/// The console's routes: `/` (the page, its `console.js` and `console.css`), `/login` (the
/// API's `POST /api/v1/auth/login`, kept for older clients: limited per address and locked per
/// name after repeated wrong passwords), `/ws` (a one-time ticket; only from the service's own
/// pages or allowed origins).
pub fn router(
    engine: Engine,
    auth: Arc<AgentAuth>,
    guard: Arc<Guard>,
    api: super::api::ApiState,
) -> Router {
    Router::new()
        .route("/", get(|base: BasePath| async move { base.page(PAGE) }))
        .route(
            "/console.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/login",
            post(super::api::login)
                .with_state(api)
                .layer(axum::middleware::from_fn_with_state(
                    guard.clone(),
                    limits::limit_logins,
                )),
        )
        .route(
            "/ws",
            get(upgrade).layer(axum::middleware::from_fn_with_state(
                guard.clone(),
                limits::check_origin,
            )),
        )
        .with_state(ConsoleState { engine, auth })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    ticket: String,
}

async fn upgrade(
    State(s): State<ConsoleState>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let caller = match s.auth.redeem(&q.ticket).await {
        Ok(Some(c)) if c.tenant() == s.engine.tenant() => {
            super::api::ensure_agent(&s.engine, &c.account).await;
            c
        }
        Ok(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                "invalid or used ticket: ask POST /api/v1/auth/ws-ticket for another",
            )
                .into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "ticket check failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "sign-in unavailable").into_response();
        }
    };
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| session(s, caller, socket))
}

/// How often a live socket re-reads its session (expiry, and revocations by another process).
const SESSION_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the console while the caller's session lives: a revocation or expiry drops the socket.
async fn session(s: ConsoleState, caller: super::auth::Caller, socket: WebSocket) {
    let agent = caller.id();
    let mut revoked = s.auth.revocations();
    s.auth.connected(agent, 1);
    let auth = s.auth.clone();
    let engine = s.engine.clone();
    let ended = async {
        let mut every = tokio::time::interval(SESSION_CHECK_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                r = revoked.recv() => match r {
                    Ok(r) if r.ends(&caller) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                },
                _ = every.tick() => {
                    if matches!(auth.verify_hash(&caller.session).await, Ok(None)) {
                        break;
                    }
                }
            }
        }
        tracing::info!(%agent, "console session ended: socket closed");
    };
    tokio::select! {
        () = console(s, agent, socket) => {}
        () = ended => {}
    }
    if auth.connected(agent, -1) == 0
        && let Err(e) = engine.set_presence(agent, Presence::Offline).await
    {
        tracing::warn!(error = %e, %agent, "sign-out failed");
    }
}

/// A conversation with its customer and their tickets, as the console shows it.
#[derive(Debug, Serialize)]
struct ConversationView {
    conversation: Conversation,
    customer: CustomerView,
    tickets: Vec<TicketView>,
}

/// A ticket with its SLA countdown.
#[derive(Debug, Serialize)]
struct TicketView {
    ticket: cs_tickets::Ticket,
    sla: Vec<cs_tickets::sla::SlaLine>,
}

#[derive(Debug, Serialize)]
struct QueueItem {
    conversation: ConversationId,
    position: usize,
    priority: cs_core::Priority,
    since: chrono::DateTime<chrono::Utc>,
    channel: cs_core::ChannelKind,
    skills: Vec<String>,
    language: Option<String>,
    vip: bool,
}

/// An offer as the console shows it: the conversation, with its customer, until `expires_at`.
#[derive(Debug, Serialize)]
struct OfferView {
    expires_at: chrono::DateTime<chrono::Utc>,
    conversation: ConversationView,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToAgent {
    Welcome {
        agent: Agent,
        conversations: Vec<ConversationView>,
        offers: Vec<OfferView>,
        queue: QueueView,
    },
    Assigned {
        conversation: ConversationView,
    },
    Offer {
        offer: OfferView,
    },
    OfferClosed {
        conversation_id: ConversationId,
        outcome: String,
    },
    Presence {
        presence: Presence,
        reason: Option<String>,
    },
    Message {
        conversation_id: ConversationId,
        message: Message,
    },
    Queue {
        queue: QueueView,
    },
    Resolved {
        conversation_id: ConversationId,
    },
    /// A conversation of this console went to another agent (a transfer or take-over).
    Transferred {
        conversation_id: ConversationId,
        to: AgentId,
    },
    Tickets {
        conversation_id: ConversationId,
        tickets: Vec<TicketView>,
    },
    /// A colleague mentioned this agent (`@name`) in a note: the conversation to open.
    Mention {
        conversation: Box<ConversationView>,
        from: String,
        message: Box<Message>,
    },
    Ack {
        client_id: String,
        message_id: cs_core::MessageId,
    },
    Error {
        code: &'static str,
        reason: String,
        /// The refused reply's client id, so the console gives the text back.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// What the compliance rules found (code `compliance`).
        #[serde(skip_serializing_if = "Option::is_none")]
        compliance: Option<crate::compliance::Verdict>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum FromAgent {
    Reply {
        conversation_id: ConversationId,
        client_id: String,
        text: String,
        /// The agent saw the compliance warnings of this text and sends it anyway.
        #[serde(default)]
        confirm: bool,
    },
    Resolve {
        conversation_id: ConversationId,
    },
    Presence {
        presence: Presence,
    },
    Accept {
        conversation_id: ConversationId,
    },
    Reject {
        conversation_id: ConversationId,
    },
    Take {
        conversation_id: ConversationId,
    },
    OpenTicket {
        conversation_id: ConversationId,
        subject: String,
        group: Option<String>,
    },
}

async fn view(engine: &Engine, conversation: Conversation) -> crate::Result<ConversationView> {
    let customer = engine.customer_view(conversation.customer).await?;
    let tickets = tickets(engine, conversation.customer).await?;
    Ok(ConversationView {
        conversation,
        customer,
        tickets,
    })
}

async fn offer_view(
    engine: &Engine,
    conversation: ConversationId,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> crate::Result<OfferView> {
    let c = engine.conversation(conversation).await?;
    Ok(OfferView {
        expires_at,
        conversation: view(engine, c).await?,
    })
}

async fn tickets(engine: &Engine, customer: cs_core::CustomerId) -> crate::Result<Vec<TicketView>> {
    Ok(engine
        .customer_tickets(customer)
        .await?
        .into_iter()
        .map(|ticket| TicketView {
            sla: engine.ticket_desk().countdown(&ticket),
            ticket,
        })
        .collect())
}

/// Sends the current tickets of every conversation of this agent whose customer owns `ticket`.
async fn refresh_tickets(
    engine: &Engine,
    mine: &HashSet<ConversationId>,
    ticket: cs_core::TicketId,
    tx: &mpsc::Sender<ToAgent>,
) -> Result<(), mpsc::error::SendError<ToAgent>> {
    let Ok(t) = engine.tickets().get(engine.tenant(), ticket).await else {
        return Ok(());
    };
    let Some(customer) = t.customer else {
        return Ok(());
    };
    for id in mine {
        let Ok(c) = engine.conversation(*id).await else {
            continue;
        };
        if c.customer == customer
            && let Ok(list) = tickets(engine, customer).await
        {
            tx.send(ToAgent::Tickets {
                conversation_id: *id,
                tickets: list,
            })
            .await?;
        }
    }
    Ok(())
}

/// The head of the queue a console shows, and its length.
#[derive(Debug, Serialize)]
struct QueueView {
    total: usize,
    items: Vec<QueueItem>,
}

/// How many waiting conversations a console lists (the rest are counted).
const QUEUE_SHOWN: usize = 100;
/// How stale a queue view may be: every console shares one snapshot of the router per
/// interval, however many events arrive.
const QUEUE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

async fn queue(engine: &Engine) -> QueueView {
    match engine.queue_snapshot(QUEUE_EVERY).await {
        Ok(snap) => QueueView {
            total: snap.queued.len(),
            items: snap
                .queued
                .iter()
                .take(QUEUE_SHOWN)
                .map(|q| QueueItem {
                    conversation: q.task.id,
                    position: q.position,
                    priority: q.task.priority,
                    since: q.task.enqueued_at,
                    channel: q.task.channel,
                    skills: q
                        .task
                        .requirements
                        .iter()
                        .map(|r| r.skill.clone())
                        .collect(),
                    language: q.task.language.clone(),
                    vip: q.task.tier == cs_core::CustomerTier::Vip,
                })
                .collect(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "queue snapshot failed");
            QueueView {
                total: 0,
                items: Vec::new(),
            }
        }
    }
}

async fn console(s: ConsoleState, agent: AgentId, socket: WebSocket) {
    let engine = s.engine.clone();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ToAgent>(256);
    // Subscribe before reading state so nothing that happens in between is missed.
    let mut events = engine.subscribe();

    if let Err(e) = engine.sign_in(agent).await {
        tracing::warn!(error = %e, %agent, "sign-in failed");
    }

    let mut mine: HashSet<ConversationId> = HashSet::new();
    let Some(first) = welcome(&engine, agent, &mut mine).await else {
        return;
    };
    if tx.send(first).await.is_err() {
        return;
    }

    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let Ok(text) = serde_json::to_string(&frame) else {
                continue;
            };
            if sink.send(ws::Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut queue_changed = false;
    let mut queue_timer = tokio::time::interval(QUEUE_EVERY);
    queue_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = match event {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Never skip: the console is sent the whole desk again from the store.
                        tracing::info!(%agent, missed = n, "console fell behind; resynchronising");
                        let Some(frame) = welcome(&engine, agent, &mut mine).await else {
                            break;
                        };
                        if tx.send(frame).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if forward(&engine, agent, &mut mine, event.kind, &tx, &mut queue_changed).await.is_err() {
                    break;
                }
            }
            _ = queue_timer.tick(), if queue_changed => {
                queue_changed = false;
                if tx.send(ToAgent::Queue { queue: queue(&engine).await }).await.is_err() {
                    break;
                }
            }
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(ws::Message::Text(t))) => t,
                    Some(Ok(ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let reply = act(&engine, agent, text.as_str()).await;
                if let Some(frame) = reply
                    && tx.send(frame).await.is_err() {
                        break;
                    }
            }
        }
    }

    drop(tx);
    let _ = writer.await;
}

/// Everything the console shows, read from the store: the agent, their conversations with the
/// customers' histories, the offers waiting for them, the queue. Sent when the console connects
/// and again whenever it fell behind the event stream. `None` for an agent who is gone.
async fn welcome(
    engine: &Engine,
    agent: AgentId,
    mine: &mut HashSet<ConversationId>,
) -> Option<ToAgent> {
    mine.clear();
    let mut conversations = Vec::new();
    for c in engine.agent_conversations(agent).await.unwrap_or_default() {
        mine.insert(c.id);
        if let Ok(v) = view(engine, c).await {
            conversations.push(v);
        }
    }
    let profile = engine.agent(agent)?;
    let mut offers = Vec::new();
    for o in engine.offers_for(agent) {
        if let Ok(v) = offer_view(engine, o.conversation, o.expires_at).await {
            offers.push(v);
        }
    }
    Some(ToAgent::Welcome {
        agent: profile,
        conversations,
        offers,
        queue: queue(engine).await,
    })
}

/// Whether `text` mentions `name` as `@name` (any case; the name ends the word).
pub(crate) fn mentions(text: &str, name: &str) -> bool {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return false;
    }
    let lower = text.to_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find('@') {
        let start = from + at + 1;
        if let Some(rest) = lower[start..].strip_prefix(name.as_str())
            && !rest
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return true;
        }
        from = start;
    }
    false
}

/// The name of the colleague whose internal note mentions `agent`, if `message` is one.
fn mentioned_by_colleague(engine: &Engine, agent: AgentId, message: &Message) -> Option<String> {
    let cs_core::Author::Agent { agent: author } = message.author else {
        return None;
    };
    if author == agent || message.direction != cs_core::Direction::Internal {
        return None;
    }
    let Content::Text { text, .. } = &message.content else {
        return None;
    };
    let me = engine.agent(agent)?;
    mentions(text, &me.name).then(|| engine.agent(author).map(|a| a.name).unwrap_or_default())
}

/// Turns an engine event into console frames for this agent; notes when the queue changed (the
/// console sends it at most every [`QUEUE_EVERY`]).
async fn forward(
    engine: &Engine,
    agent: AgentId,
    mine: &mut HashSet<ConversationId>,
    event: DomainEvent,
    tx: &mpsc::Sender<ToAgent>,
    queue_changed: &mut bool,
) -> Result<(), mpsc::error::SendError<ToAgent>> {
    match event {
        DomainEvent::AgentAssigned {
            conversation,
            agent: to,
        } => {
            if to == agent {
                mine.insert(conversation);
                if let Ok(c) = engine.conversation(conversation).await
                    && let Ok(v) = view(engine, c).await
                {
                    tx.send(ToAgent::Assigned { conversation: v }).await?;
                }
            } else if mine.contains(&conversation) {
                tx.send(ToAgent::Transferred {
                    conversation_id: conversation,
                    to,
                })
                .await?;
            }
            *queue_changed = true;
        }
        DomainEvent::Offered {
            conversation,
            agent: to,
            expires_at,
        } => {
            if to == agent
                && let Ok(offer) = offer_view(engine, conversation, expires_at).await
            {
                tx.send(ToAgent::Offer { offer }).await?;
            }
            *queue_changed = true;
        }
        DomainEvent::OfferClosed {
            conversation,
            agent: to,
            outcome,
        } if to == agent => {
            tx.send(ToAgent::OfferClosed {
                conversation_id: conversation,
                outcome,
            })
            .await?;
        }
        DomainEvent::AgentPresenceChanged {
            agent: who,
            presence,
        } if who == agent => {
            let reason = (presence == Presence::Away)
                .then(|| "set away after offers went unanswered".to_owned())
                .filter(|_| {
                    engine
                        .agent(agent)
                        .is_some_and(|a| a.presence == Presence::Away)
                });
            tx.send(ToAgent::Presence { presence, reason }).await?;
        }
        DomainEvent::Queued { .. }
        | DomainEvent::QueueAbandoned { .. }
        | DomainEvent::PriorityChanged { .. }
        | DomainEvent::OfferClosed { .. } => {
            *queue_changed = true;
        }
        DomainEvent::MessageReceived { message } | DomainEvent::MessageSent { message }
            if !mine.contains(&message.conversation)
                && mentioned_by_colleague(engine, agent, &message).is_some() =>
        {
            // Mentioned in a colleague's note: the conversation comes to this console, and its
            // messages follow while it lasts.
            let from = mentioned_by_colleague(engine, agent, &message).unwrap_or_default();
            if let Ok(c) = engine.conversation(message.conversation).await
                && let Ok(v) = view(engine, c).await
            {
                mine.insert(message.conversation);
                tx.send(ToAgent::Mention {
                    conversation: Box::new(v),
                    from,
                    message: Box::new(message),
                })
                .await?;
            }
        }
        DomainEvent::MessageReceived { message } | DomainEvent::MessageSent { message }
            if mine.contains(&message.conversation) =>
        {
            if let Some(from) = mentioned_by_colleague(engine, agent, &message)
                && let Ok(c) = engine.conversation(message.conversation).await
                && c.assignee != Some(agent)
                && let Ok(v) = view(engine, c).await
            {
                tx.send(ToAgent::Mention {
                    conversation: Box::new(v),
                    from,
                    message: Box::new(message.clone()),
                })
                .await?;
            }
            tx.send(ToAgent::Message {
                conversation_id: message.conversation,
                message,
            })
            .await?;
        }
        DomainEvent::TicketOpened { ticket, .. } | DomainEvent::TicketUpdated { ticket, .. } => {
            refresh_tickets(engine, mine, ticket, tx).await?;
        }
        DomainEvent::StateChanged {
            conversation, to, ..
        } if !to.is_active() && mine.remove(&conversation) => {
            tx.send(ToAgent::Resolved {
                conversation_id: conversation,
            })
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Carries out one frame from the console.
async fn act(engine: &Engine, agent: AgentId, text: &str) -> Option<ToAgent> {
    let frame: FromAgent = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            return Some(ToAgent::Error {
                code: "invalid_input",
                reason: format!("malformed frame: {e}"),
                client_id: None,
                compliance: None,
            });
        }
    };
    let result = match frame {
        FromAgent::Reply {
            conversation_id,
            client_id,
            text,
            confirm,
        } => {
            let reply = if confirm {
                engine
                    .agent_reply_confirmed(
                        agent,
                        conversation_id,
                        Content::text(text),
                        Some(client_id.clone()),
                    )
                    .await
            } else {
                engine
                    .agent_reply(
                        agent,
                        conversation_id,
                        Content::text(text),
                        Some(client_id.clone()),
                    )
                    .await
            };
            return Some(match reply {
                Ok(m) => ToAgent::Ack {
                    client_id,
                    message_id: m.id,
                },
                Err(e) => match error_frame(&e) {
                    ToAgent::Error {
                        code,
                        reason,
                        compliance,
                        ..
                    } => ToAgent::Error {
                        code,
                        reason,
                        client_id: Some(client_id),
                        compliance,
                    },
                    other => other,
                },
            });
        }
        FromAgent::Resolve { conversation_id } => engine.resolve(agent, conversation_id).await,
        FromAgent::Presence { presence } => engine.set_presence(agent, presence).await,
        FromAgent::Accept { conversation_id } => engine.accept_offer(agent, conversation_id).await,
        FromAgent::Reject { conversation_id } => engine.reject_offer(agent, conversation_id).await,
        FromAgent::Take { conversation_id } => engine.take_from_queue(agent, conversation_id).await,
        FromAgent::OpenTicket {
            conversation_id,
            subject,
            group,
        } => engine
            .open_ticket(agent, conversation_id, &subject, group)
            .await
            .map(|_| ()),
    };
    result.err().map(|e| error_frame(&e))
}

fn error_frame(e: &crate::Error) -> ToAgent {
    let code = match e {
        crate::Error::Forbidden { .. } => "forbidden",
        crate::Error::Router(cs_routing::Error::Conflict { .. })
        | crate::Error::Router(cs_routing::Error::NotFound { .. }) => "conflict",
        crate::Error::InvalidInput { .. }
        | crate::Error::Tickets(cs_tickets::Error::InvalidInput { .. }) => "invalid_input",
        crate::Error::Compliance { .. } => "compliance",
        _ => "internal",
    };
    ToAgent::Error {
        code,
        reason: e.to_string(),
        client_id: None,
        compliance: match e {
            crate::Error::Compliance { verdict } => Some(verdict.clone()),
            _ => None,
        },
    }
}
