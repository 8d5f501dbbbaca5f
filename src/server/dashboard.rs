//! The supervisors' dashboard: live tiles (queue depth, longest wait, agents online and busy,
//! containment, CSAT today, ...), the last 24 hours by hour (volume by channel, FRT, service
//! level, SLA breaches), the peak-hour heat map, top intents and hand-over reasons with their
//! trend, tomorrow's staffing per half-hour, agents' scorecards with a radar, and the alerts;
//! every table exports as CSV. It updates live: the page listens to a server-sent event stream
//! that says when the figures moved (events on the engine's stream, flushed rollups, alerts).
//!
//! Access: a supervisor's or admin's session token (`POST /api/v1/auth/login`) as
//! `Authorization: Bearer ..`, or a one-time ticket (`POST /api/v1/auth/ws-ticket`) as
//! `?ticket=` for the event stream and downloads, which cannot send headers: the session token
//! never goes in a URL.
//!
//! Routes (under `/dashboard`): `/` (the page), `/dashboard.js`, `/dashboard.css`, `/data` (every
//! table as JSON), `/export/{table}.csv`, `/events` (text/event-stream: `refresh` and `alert`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cs_core::DomainEvent;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::BasePath;
use super::agent::AgentAuth;
use crate::analytics::{Analytics, Update};
use crate::engine::Engine;

const PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// How often the page is told to refresh at most.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct DashState {
    engine: Engine,
    analytics: Option<Analytics>,
    auth: Arc<AgentAuth>,
    closing: tokio::sync::watch::Receiver<bool>,
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    ticket: Option<String>,
}

/// The dashboard's routes; event streams end when `closing` turns true (the service stops).
pub fn router(
    engine: Engine,
    analytics: Option<Analytics>,
    auth: Arc<AgentAuth>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> Router {
    Router::new()
        .route("/", get(|base: BasePath| async move { base.page(PAGE) }))
        .route(
            "/dashboard.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/data", get(data))
        .route("/export/{file}", get(export))
        .route("/events", get(events))
        .with_state(DashState {
            engine,
            analytics,
            auth,
            closing,
        })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, reason: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": code, "reason": reason})),
    )
        .into_response()
}

/// The analytics, for a signed-in agent (bearer token or `?token=`); else the refusal.
async fn gate(
    s: &DashState,
    headers: &HeaderMap,
    query: &TokenQuery,
) -> Result<Analytics, Box<Response>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let caller = match (bearer, query.ticket.as_deref()) {
        (Some(t), _) => s.auth.verify(t).await,
        (None, Some(t)) => s.auth.redeem(t).await,
        (None, None) => Ok(None),
    }
    .ok()
    .flatten()
    .filter(|c| c.tenant() == s.engine.tenant());
    let Some(caller) = caller else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in as a supervisor to see the dashboard",
        )));
    };
    if !caller.is(super::accounts::Role::Supervisor) {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard is for supervisors and admins",
        )));
    }
    s.analytics.clone().ok_or_else(|| {
        Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "analytics is disabled ([analytics] enabled = false)",
        ))
    })
}

async fn data(
    State(s): State<DashState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let a = match gate(&s, &headers, &q).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let now = s.engine.clock().now();
    match a.dashboard(&s.engine, now).await {
        Ok(d) => {
            let mut body = serde_json::to_value(&d).unwrap_or_default();
            body["tenant"] = serde_json::json!(a.tenant());
            body["timezone"] = serde_json::json!(a.timezone().name());
            body["answer_target_secs"] = serde_json::json!(a.config().answer_target.as_secs());
            body["service_level_target"] = serde_json::json!(a.config().service_level);
            axum::Json(body).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

async fn export(
    State(s): State<DashState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
    Path(file): Path<String>,
) -> Response {
    let a = match gate(&s, &headers, &q).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let Some(id) = file.strip_suffix(".csv") else {
        return error(StatusCode::NOT_FOUND, "not_found", "exports end in .csv");
    };
    let now = s.engine.clock().now();
    match a.table(&s.engine, id, now).await {
        Ok(Some(t)) => {
            let name = format!(
                "attachment; filename=\"omnidesk-{}-{}.csv\"",
                t.id,
                now.with_timezone(&a.timezone()).format("%Y%m%d-%H%M")
            );
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                // A byte-order mark so spreadsheets read the Chinese names as UTF-8.
                format!("\u{feff}{}", t.to_csv()),
            )
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no such table"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// Whether an engine event moves a live tile.
fn moves_tiles(kind: &DomainEvent) -> bool {
    use DomainEvent as E;
    matches!(
        kind,
        E::Queued { .. }
            | E::QueueAbandoned { .. }
            | E::AgentAssigned { .. }
            | E::AgentPresenceChanged { .. }
            | E::StateChanged { .. }
            | E::ConversationOpened { .. }
            | E::Offered { .. }
            | E::OfferClosed { .. }
    )
}

async fn events(
    State(s): State<DashState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let a = match gate(&s, &headers, &q).await {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (tx, rx) = futures::channel::mpsc::channel::<SseEvent>(16);
    let mut engine_events = s.engine.subscribe();
    let mut updates = a.updates();
    let mut closing = s.closing.clone();
    tokio::spawn(async move {
        let mut tx = tx;
        let mut dirty = true;
        let mut every = tokio::time::interval(REFRESH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *closing.borrow() {
                break;
            }
            tokio::select! {
                _ = closing.changed() => break,
                e = engine_events.recv() => match e {
                    Ok(e) if moves_tiles(&e.kind) => dirty = true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                u = updates.recv() => match u {
                    Ok(Update::Changed) | Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                    Ok(Update::Alert(alert)) => {
                        let data = serde_json::to_string(&alert).unwrap_or_default();
                        if tx.try_send(SseEvent::default().event("alert").data(data)).is_err()
                            && tx.is_closed()
                        {
                            break;
                        }
                        dirty = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = every.tick() => {
                    if tx.is_closed() {
                        break;
                    }
                    if dirty {
                        dirty = false;
                        // A full channel means the page is behind: it will fetch anyway.
                        let _ = tx.try_send(SseEvent::default().event("refresh").data("{}"));
                    }
                }
            }
        }
    });
    Sse::new(rx.map(Ok::<_, std::convert::Infallible>))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
