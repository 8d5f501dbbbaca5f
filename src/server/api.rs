//! The REST API under `/api/v1/`: what the console and an integrator do, documented by an
//! OpenAPI 3.1 document generated from this code ([`openapi`], served at
//! `/api/v1/openapi.json`).
//!
//! - Authentication: `POST /api/v1/auth/login` answers a session token; send it as
//!   `Authorization: Bearer <token>`. Sessions expire when idle and absolutely (`[auth]`), and end
//!   at sign-out, a password change or an admin's revocation. The console's WebSocket takes a
//!   one-time ticket (`POST /api/v1/auth/ws-ticket`), never the token.
//! - Roles, checked by one layer on every route ([`routes`] lists each route's least role):
//!   `agent` (their own conversations, the queue they can serve, their customers and tickets),
//!   `supervisor` (everything in their tenant, take-over, merges), `admin` (accounts, settings).
//! - Tenants: every query is scoped to the caller's tenant. This process serves one tenant's
//!   desk (`tenant` in the config); accounts of other tenants reach their own accounts only,
//!   and every desk route answers them `404`.
//! - Errors: `{"error": "<stable code>", "reason": "..."}` with codes `invalid_input`,
//!   `unauthenticated`, `forbidden`, `not_found`, `conflict`, `over_capacity`, `compliance`,
//!   `rate_limited`, `unavailable`, `internal`.
//! - Lists: `{"items": [...], "next_cursor": ..}`; pass `cursor=<next_cursor>` for the next page.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::{Extension, Json, Router};
use cs_core::store::{ConversationQuery, MessageOrder, MessageQuery, MessageScope};
use cs_core::{
    AgentId, ChannelKind, Content, Conversation, ConversationId, ConversationState, CustomerId,
    Identity, LinkOrigin, MergeId, Presence, TenantId, TicketId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::accounts::{Account, Role};
use super::auth::{AgentAuth, Caller};
use super::canned::{CannedQuery, CannedReply, CannedStore, Expansion, MemoryCannedStore};
use super::limits::{self, Guard};
use crate::engine::Engine;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (sign-in, the OpenAPI document).
    Public,
    /// A signed-in account with at least this role.
    Role(Role),
}

/// What a route reaches: the caller's own account data, or the desk this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Accounts of the caller's tenant (any tenant).
    Accounts,
    /// The desk: only for the tenant this process serves.
    Desk,
}

/// One route of the API: method, path (as in the OpenAPI document) and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The full path, `/api/v1/...`, with `{param}`s.
    pub path: &'static str,
    /// The least role (or public).
    pub access: Access,
}

/// What every API handler shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    engine: Engine,
    auth: Arc<AgentAuth>,
    guard: Arc<Guard>,
    settings: Arc<serde_json::Value>,
    canned: Arc<dyn CannedStore>,
    orders: Option<Arc<dyn cs_bot::OrderService>>,
}

impl ApiState {
    /// The API over `engine` with `auth`'s sessions, `guard`'s sign-in limits, and the
    /// `settings` an admin may read.
    pub fn new(
        engine: Engine,
        auth: Arc<AgentAuth>,
        guard: Arc<Guard>,
        settings: serde_json::Value,
    ) -> Self {
        Self {
            engine,
            auth,
            guard,
            settings: Arc::new(settings),
            canned: Arc::new(MemoryCannedStore::new()),
            orders: None,
        }
    }

    /// Keeps canned replies in `store` (default: in memory).
    pub fn with_canned(mut self, store: Arc<dyn CannedStore>) -> Self {
        self.canned = store;
        self
    }

    /// Looks up `{order.status}` in `orders` (always behind [`cs_bot::OwnOrders`]: only the
    /// conversation's own customer's orders); without it the variable stays as written.
    pub fn with_orders(mut self, orders: Arc<dyn cs_bot::OrderService>) -> Self {
        self.orders = Some(Arc::new(cs_bot::OwnOrders::new(orders)));
        self
    }
}

/// The one error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code.
    pub error: String,
    /// What went wrong, for people.
    pub reason: String,
    /// What the compliance rules found (code `compliance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub compliance: Option<crate::compliance::Verdict>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, reason: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: code.into(),
                reason: reason.into(),
                compliance: None,
            },
        }
    }

    fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", reason)
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    fn invalid(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        let (status, code) = match &e {
            E::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            E::InvalidInput { .. }
            | E::Tickets(cs_tickets::Error::InvalidInput { .. })
            | E::Store(cs_core::Error::InvalidInput { .. })
            | E::Router(cs_routing::Error::InvalidInput { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid_input")
            }
            E::Store(cs_core::Error::NotFound { .. })
            | E::Tickets(cs_tickets::Error::NotFound { .. })
            | E::UnknownAgent(_)
            | E::UnknownChannel(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Store(cs_core::Error::Conflict { .. })
            | E::Tickets(cs_tickets::Error::Conflict { .. })
            | E::Router(cs_routing::Error::Conflict { .. })
            | E::Router(cs_routing::Error::NotFound { .. }) => (StatusCode::CONFLICT, "conflict"),
            E::Compliance { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "compliance"),
            E::Store(cs_core::Error::Unavailable { .. })
            | E::Tickets(cs_tickets::Error::Unavailable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "API request failed");
        }
        let mut err = Self::new(status, code, e.to_string());
        if let E::Compliance { verdict } = e {
            err.body.compliance = Some(verdict);
        }
        err
    }
}

impl From<cs_core::Error> for ApiError {
    fn from(e: cs_core::Error) -> Self {
        crate::Error::from(e).into()
    }
}

impl From<cs_tickets::Error> for ApiError {
    fn from(e: cs_tickets::Error) -> Self {
        crate::Error::from(e).into()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// A JSON object whose fields the engine's types define, documented by a description.
macro_rules! opaque_schema {
    ($(#[$doc:meta])* $name:ident($inner:ty), $desc:literal) => {
        $(#[$doc])*
        #[derive(Debug, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .description(Some($desc))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

opaque_schema!(
    /// A conversation.
    ConversationBody(Conversation),
    "A conversation: id, tenant, customer, route, state, priority, skills, assignee, times."
);
opaque_schema!(
    /// A message.
    MessageBody(cs_core::Message),
    "A message: id, conversation, direction, author, content, internal flag, times."
);
opaque_schema!(
    /// A ticket.
    TicketBody(cs_tickets::Ticket),
    "A ticket: id, number, subject, kind, priority, status, group, assignee, customer, tags."
);
opaque_schema!(
    /// Any JSON object the engine defines (customers, identities, merges, comments, the queue).
    Object(serde_json::Value),
    "A JSON object (see the route's description)."
);

fn object(v: impl Serialize) -> Result<Object, ApiError> {
    serde_json::to_value(v)
        .map(Object)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// An account as the API shows it, with the agent's presence on this desk.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// The account.
    #[serde(flatten)]
    pub account: Account,
    /// Presence on this desk (`offline` when signed out, or not on this desk).
    #[schema(value_type = String)]
    pub presence: Presence,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Sign-in name (any case).
    pub name: String,
    /// Password.
    pub password: String,
    /// The tenant (default: the tenant this process serves).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session token: `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires if not used (each use slides it, up to the absolute expiry).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The account.
    pub account: Account,
    /// The agent profile on this desk (absent for another tenant).
    #[schema(value_type = Option<Object>)]
    pub agent: Option<cs_core::Agent>,
}

/// A one-time WebSocket ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    /// Open `GET /agent/ws?ticket=<ticket>` with it, once.
    pub ticket: String,
    /// Good until.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// `PUT /api/v1/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePassword {
    /// The current password.
    pub current: String,
    /// The new one (every session ends; sign in again).
    pub new: String,
}

/// `PUT /api/v1/agents/{id}/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetPassword {
    /// The new password (every session of the account ends).
    pub password: String,
}

/// `PUT /api/v1/me/presence`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetPresence {
    /// `online`, `away` or `offline`.
    #[schema(value_type = String)]
    pub presence: Presence,
}

/// `POST /api/v1/agents`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewAccount {
    /// Sign-in name, unique in the tenant.
    pub name: String,
    /// Password (hashed with Argon2id).
    pub password: String,
    /// Role (default `agent`).
    #[serde(default)]
    pub role: Option<Role>,
    /// Skills as `name` or `name:level`.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Languages (default Chinese and English).
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    /// Team.
    #[serde(default)]
    pub team: Option<String>,
    /// Concurrent chats (default 4).
    #[serde(default)]
    pub chat_capacity: Option<u16>,
}

/// `PATCH /api/v1/agents/{id}`: the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AccountChange {
    /// Role.
    pub role: Option<Role>,
    /// Skills.
    pub skills: Option<Vec<String>>,
    /// Languages.
    pub languages: Option<Vec<String>>,
    /// Team (`null` keeps it; `""` clears it).
    pub team: Option<String>,
    /// Concurrent chats.
    pub chat_capacity: Option<u16>,
    /// Disable (every session ends) or enable the account.
    pub disabled: Option<bool>,
}

/// `POST .../reply`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplyRequest {
    /// The text.
    pub text: String,
    /// The client's id for the message (a retried reply counts once).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Send although the compliance rules warn (never what they block).
    #[serde(default)]
    pub confirm: bool,
}

/// `POST .../notes`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NoteRequest {
    /// The note, seen by agents only.
    pub text: String,
}

/// `POST .../transfer`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferRequest {
    /// The agent to give it to (a supervisor's own id: take-over).
    #[schema(value_type = String)]
    pub agent: AgentId,
    /// A note for the receiving agent (stored as an internal note before the hand-over, so it
    /// is in the history they receive).
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST .../tickets`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenTicketRequest {
    /// Subject.
    pub subject: String,
    /// Group (default: the desk's first).
    #[serde(default)]
    pub group: Option<String>,
}

/// `POST /api/v1/customers/{id}/identities`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LinkRequest {
    /// The channel kind (`web_chat`, `email`, `sms`, ...).
    #[schema(value_type = String)]
    pub kind: ChannelKind,
    /// The id on that channel.
    pub external_id: String,
}

/// `POST /api/v1/customers/{id}/merge`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MergeRequest {
    /// The customer merged into this one.
    #[schema(value_type = String)]
    pub from: CustomerId,
}

/// `POST /api/v1/tickets/{id}/comments`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommentRequest {
    /// The text.
    pub body: String,
    /// Visible to the customer (default: internal).
    #[serde(default)]
    pub public: bool,
}

/// Paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<usize>,
}

/// Conversation filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ConversationFilter {
    /// `bot`, `queued`, `assigned`, `resolved` or `closed` (default: all).
    pub state: Option<String>,
    /// Only this agent's (agents always see only their own).
    pub assignee: Option<String>,
    /// Only this customer's.
    pub customer: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<usize>,
}

/// Ticket filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TicketFilter {
    /// `new`, `open`, `pending`, `on_hold`, `solved` or `closed` (default: all).
    pub status: Option<String>,
    /// Only this agent's (agents: their own and their customers').
    pub assignee: Option<String>,
    /// Only this customer's.
    pub customer: Option<String>,
    /// Words in the subject or comments.
    pub text: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<usize>,
}

fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(50).clamp(1, 200)
}

fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(what))
}

/// A page of `items` (sorted) starting after the item whose key is `cursor`.
fn window<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let start = match cursor {
        Some(c) => items
            .iter()
            .position(|i| key(i) == c)
            .map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let page: Vec<T> = rest.into_iter().take(limit).collect();
    let next = more.then(|| page.last().map(&key)).flatten();
    (page, next)
}

// ---------------------------------------------------------------------------------------------
// The router

/// Where the route table goes: the router (with the gate on every route), or a plain list.
trait Sink: Sized {
    fn add<H, T>(
        self,
        method: &'static str,
        path: &'static str,
        access: Access,
        scope: Scope,
        handler: H,
    ) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static;
}

/// Builds the router.
struct Builder {
    state: ApiState,
    router: Router,
}

/// Strips `/api/v1` (the router is nested there).
fn local(path: &'static str) -> &'static str {
    path.strip_prefix("/api/v1").unwrap_or(path)
}

impl Sink for Builder {
    fn add<H, T>(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        scope: Scope,
        handler: H,
    ) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        };
        let mut route = axum::routing::on(filter, handler).layer(
            axum::middleware::from_fn_with_state((self.state.clone(), access, scope), gate),
        );
        if access == Access::Public && path.ends_with("/auth/login") {
            // Sign-in attempts are limited per address before anything else runs.
            route = route.layer(axum::middleware::from_fn_with_state(
                self.state.guard.clone(),
                limits::limit_logins,
            ));
        }
        self.router = self
            .router
            .route(local(path), route.with_state(self.state.clone()));
        self
    }
}

/// Lists the routes.
struct Listing(Vec<RouteInfo>);

impl Sink for Listing {
    fn add<H, T>(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        _scope: Scope,
        _handler: H,
    ) -> Self
    where
        H: axum::handler::Handler<T, ApiState>,
        T: 'static,
    {
        self.0.push(RouteInfo {
            method,
            path,
            access,
        });
        self
    }
}

/// The one route table: method, path, least role, scope, handler.
fn table<S: Sink>(s: S) -> S {
    use Access::{Public, Role as R};
    use Role::{Admin, Agent, Supervisor};
    use Scope::{Accounts as A, Desk as D};
    s.add("GET", "/api/v1/openapi.json", Public, A, openapi_json)
        .add("POST", "/api/v1/auth/login", Public, A, login)
        .add("POST", "/api/v1/auth/logout", R(Agent), A, logout)
        .add("POST", "/api/v1/auth/ws-ticket", R(Agent), D, ws_ticket)
        .add("GET", "/api/v1/me", R(Agent), A, me)
        .add("PUT", "/api/v1/me/password", R(Agent), A, change_password)
        .add("PUT", "/api/v1/me/presence", R(Agent), D, set_presence)
        .add("GET", "/api/v1/agents", R(Supervisor), A, list_agents)
        .add("POST", "/api/v1/agents", R(Admin), A, create_agent)
        .add("GET", "/api/v1/agents/{id}", R(Supervisor), A, get_agent)
        .add("PATCH", "/api/v1/agents/{id}", R(Admin), A, update_agent)
        .add(
            "PUT",
            "/api/v1/agents/{id}/password",
            R(Admin),
            A,
            set_agent_password,
        )
        .add(
            "POST",
            "/api/v1/agents/{id}/revoke-sessions",
            R(Admin),
            A,
            revoke_sessions,
        )
        .add("GET", "/api/v1/presence", R(Agent), D, presence)
        .add("GET", "/api/v1/queue", R(Agent), D, queue)
        .add(
            "GET",
            "/api/v1/conversations",
            R(Agent),
            D,
            list_conversations,
        )
        .add(
            "GET",
            "/api/v1/conversations/{id}",
            R(Agent),
            D,
            get_conversation,
        )
        .add(
            "GET",
            "/api/v1/conversations/{id}/messages",
            R(Agent),
            D,
            messages,
        )
        .add(
            "POST",
            "/api/v1/conversations/{id}/reply",
            R(Agent),
            D,
            reply,
        )
        .add(
            "POST",
            "/api/v1/conversations/{id}/notes",
            R(Agent),
            D,
            note,
        )
        .add(
            "POST",
            "/api/v1/conversations/{id}/resolve",
            R(Agent),
            D,
            resolve,
        )
        .add("POST", "/api/v1/conversations/{id}/take", R(Agent), D, take)
        .add(
            "POST",
            "/api/v1/conversations/{id}/transfer",
            R(Agent),
            D,
            transfer,
        )
        .add(
            "POST",
            "/api/v1/conversations/{id}/accept",
            R(Agent),
            D,
            accept,
        )
        .add(
            "POST",
            "/api/v1/conversations/{id}/reject",
            R(Agent),
            D,
            reject,
        )
        .add(
            "POST",
            "/api/v1/conversations/{id}/tickets",
            R(Agent),
            D,
            open_ticket,
        )
        .add("GET", "/api/v1/customers/{id}", R(Agent), D, customer)
        .add(
            "GET",
            "/api/v1/customers/{id}/identities",
            R(Agent),
            D,
            identities,
        )
        .add(
            "POST",
            "/api/v1/customers/{id}/identities",
            R(Supervisor),
            D,
            link_identity,
        )
        .add(
            "GET",
            "/api/v1/customers/{id}/merges",
            R(Supervisor),
            D,
            merges,
        )
        .add(
            "POST",
            "/api/v1/customers/{id}/merge",
            R(Supervisor),
            D,
            merge,
        )
        .add(
            "POST",
            "/api/v1/merges/{id}/undo",
            R(Supervisor),
            D,
            unmerge,
        )
        .add("GET", "/api/v1/tickets", R(Agent), D, list_tickets)
        .add("GET", "/api/v1/tickets/{id}", R(Agent), D, get_ticket)
        .add(
            "GET",
            "/api/v1/tickets/{id}/comments",
            R(Agent),
            D,
            comments,
        )
        .add(
            "POST",
            "/api/v1/tickets/{id}/comments",
            R(Agent),
            D,
            add_comment,
        )
        .add("GET", "/api/v1/settings", R(Admin), D, settings)
        .add("GET", "/api/v1/canned", R(Agent), D, list_canned)
        .add("POST", "/api/v1/canned", R(Agent), D, create_canned)
        .add("PATCH", "/api/v1/canned/{id}", R(Agent), D, update_canned)
        .add("DELETE", "/api/v1/canned/{id}", R(Agent), D, delete_canned)
        .add(
            "POST",
            "/api/v1/conversations/{id}/expand",
            R(Agent),
            D,
            expand_text,
        )
}

/// The API's routes, to nest at `/api/v1`.
pub fn router(state: ApiState) -> Router {
    table(Builder {
        state,
        router: Router::new(),
    })
    .router
}

/// Every route of the API router with who may call it: the table [`router`] is built from.
pub fn routes() -> Vec<RouteInfo> {
    table(Listing(Vec::new())).0
}

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The layer on every route: the session, the role, the tenant's desk.
async fn gate(
    State((s, access, scope)): State<(ApiState, Access, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    let Access::Role(role) = access else {
        return next.run(req).await;
    };
    let caller = match bearer(req.headers()) {
        None => None,
        Some(t) => match s.auth.verify(t).await {
            Ok(c) => c,
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    let Some(caller) = caller else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in (POST /api/v1/auth/login) and send Authorization: Bearer <token>; \
             the session may have expired or been revoked",
        )
        .into_response();
    };
    if !caller.is(role) {
        return ApiError::forbidden(format!(
            "this route needs the {role} role; you are {}",
            caller.account.role
        ))
        .into_response();
    }
    if scope == Scope::Desk && caller.tenant() != s.engine.tenant() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "your tenant has no desk on this service",
        )
        .into_response();
    }
    if scope == Scope::Desk {
        ensure_agent(&s.engine, &caller.account).await;
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Registers an account of the desk's tenant with the engine when it is not yet (an account
/// added by `add-agent` while the service runs, or by another process).
pub(crate) async fn ensure_agent(engine: &Engine, account: &Account) {
    if &account.tenant != engine.tenant() || engine.agent(account.id).is_some() {
        return;
    }
    match account.to_agent() {
        Ok(agent) => {
            if let Err(e) = engine.register_agent(agent).await {
                tracing::warn!(error = %e, name = %account.name, "agent not registered");
            }
        }
        Err(e) => tracing::warn!(error = %e, name = %account.name, "agent not registered"),
    }
}

// ---------------------------------------------------------------------------------------------
// Access rules inside a tenant

/// The conversations an agent holds now.
async fn own_conversations(s: &ApiState, c: &Caller) -> Result<Vec<Conversation>, ApiError> {
    Ok(s.engine.agent_conversations(c.id()).await?)
}

/// Whether an agent has the skills a queued conversation asks for.
fn can_serve(agent: Option<&cs_core::Agent>, task: &cs_routing::Task) -> bool {
    let Some(agent) = agent else {
        return false;
    };
    task.requirements.iter().all(|r| {
        agent
            .skills
            .iter()
            .any(|s| s.name == r.skill && s.level >= r.min_level)
    })
}

/// A conversation of the caller's tenant the caller may see: a supervisor any; an agent theirs,
/// or one waiting in the queue they can serve.
async fn visible_conversation(
    s: &ApiState,
    c: &Caller,
    id: &str,
) -> Result<Conversation, ApiError> {
    let id: ConversationId = parse_id("conversation", id)?;
    let conv = match s.engine.store().conversation(c.tenant(), id).await {
        Ok(conv) => conv,
        Err(cs_core::Error::NotFound { .. }) => return Err(ApiError::not_found("conversation")),
        Err(e) => return Err(e.into()),
    };
    if c.is(Role::Supervisor) || conv.assignee == Some(c.id()) {
        return Ok(conv);
    }
    if conv.state == ConversationState::Queued
        || s.engine
            .offers_for(c.id())
            .iter()
            .any(|o| o.conversation == id)
    {
        let snap = s.engine.queue().await?;
        let me = s.engine.agent(c.id());
        if s.engine
            .offers_for(c.id())
            .iter()
            .any(|o| o.conversation == id)
            || snap
                .queued
                .iter()
                .any(|q| q.task.id == id && can_serve(me.as_ref(), &q.task))
        {
            return Ok(conv);
        }
    }
    if mentioned_in(s, c, id).await? {
        return Ok(conv);
    }
    Err(ApiError::forbidden(
        "agents see their own conversations, the queue they can serve and conversations a \
         colleague mentioned them in",
    ))
}

/// Whether a colleague's internal note in the conversation mentions the caller (`@name`): the
/// mentioned agent may read it and answer with notes.
async fn mentioned_in(s: &ApiState, c: &Caller, id: ConversationId) -> Result<bool, ApiError> {
    let q = MessageQuery::new(
        c.tenant().clone(),
        MessageScope::Conversation(id),
        cs_core::store::MAX_PAGE,
    );
    let messages = s.engine.store().messages(&q).await?;
    Ok(messages.iter().any(|m| {
        m.direction == cs_core::Direction::Internal
            && matches!(m.author, cs_core::Author::Agent { agent } if agent != c.id())
            && matches!(&m.content, Content::Text { text, .. }
                if super::agent::mentions(text, &c.account.name))
    }))
}

/// A customer the caller may see: a supervisor any of the tenant; an agent those of their
/// conversations.
async fn visible_customer(s: &ApiState, c: &Caller, id: &str) -> Result<CustomerId, ApiError> {
    let id: CustomerId = parse_id("customer", id)?;
    match s.engine.store().customer(c.tenant(), id).await {
        Ok(_) => {}
        Err(cs_core::Error::NotFound { .. }) => return Err(ApiError::not_found("customer")),
        Err(e) => return Err(e.into()),
    }
    if c.is(Role::Supervisor)
        || own_conversations(s, c)
            .await?
            .iter()
            .any(|conv| conv.customer == id)
    {
        Ok(id)
    } else {
        Err(ApiError::forbidden(
            "agents see the customers of their own conversations",
        ))
    }
}

/// A ticket the caller may see: a supervisor any of the tenant; an agent those assigned to
/// them or of their conversations' customers.
async fn visible_ticket(
    s: &ApiState,
    c: &Caller,
    id: &str,
) -> Result<cs_tickets::Ticket, ApiError> {
    let id: TicketId = parse_id("ticket", id)?;
    let ticket = match s.engine.tickets().get(c.tenant(), id).await {
        Ok(t) => t,
        Err(cs_tickets::Error::NotFound { .. }) => return Err(ApiError::not_found("ticket")),
        Err(e) => return Err(e.into()),
    };
    if c.is(Role::Supervisor) || ticket.assignee == Some(c.id()) {
        return Ok(ticket);
    }
    let mine: HashSet<CustomerId> = own_conversations(s, c)
        .await?
        .iter()
        .map(|conv| conv.customer)
        .collect();
    if ticket.customer.is_some_and(|cu| mine.contains(&cu)) {
        Ok(ticket)
    } else {
        Err(ApiError::forbidden(
            "agents see their tickets and those of their customers",
        ))
    }
}

/// An account of the caller's tenant.
async fn tenant_account(s: &ApiState, c: &Caller, id: &str) -> Result<Account, ApiError> {
    let id: AgentId = parse_id("agent", id)?;
    s.auth
        .store()
        .account(c.tenant(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))
}

fn view(s: &ApiState, a: Account) -> AccountView {
    let presence = if &a.tenant == s.engine.tenant() {
        s.engine
            .agent(a.id)
            .map_or(Presence::Offline, |p| p.presence)
    } else {
        Presence::Offline
    };
    AccountView {
        account: a,
        presence,
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

/// Signs in: a new session token (limited per address and locked per name after repeated
/// wrong passwords: `429` with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
        (status = 401, description = "Wrong name or password", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody)))]
pub(crate) async fn login(State(s): State<ApiState>, Json(req): Json<LoginRequest>) -> Response {
    let tenant = match req.tenant.as_deref() {
        None => s.engine.tenant().clone(),
        Some(t) => match TenantId::new(t) {
            Ok(t) => t,
            Err(_) => return ApiError::invalid("unknown tenant").into_response(),
        },
    };
    let key = format!("{tenant}/{}", Account::login_key(&req.name));
    if let Some(wait) = s.guard.locked(&key) {
        return limits::too_many(wait, "too many wrong passwords for this name");
    }
    let outcome = match s.auth.login(&tenant, &req.name, &req.password).await {
        Ok(o) => o,
        Err(e) => return ApiError::from(e).into_response(),
    };
    s.guard.record_login(&key, outcome.is_some());
    match outcome {
        Some((account, token)) => {
            ensure_agent(&s.engine, &account).await;
            let expires_at = chrono::Utc::now()
                + chrono::Duration::from_std(s.auth.policy().idle).unwrap_or_default();
            let agent = (&account.tenant == s.engine.tenant())
                .then(|| s.engine.agent(account.id))
                .flatten();
            Json(LoginResponse {
                token,
                expires_at,
                account,
                agent,
            })
            .into_response()
        }
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "wrong name or password",
        )
        .into_response(),
    }
}

/// Signs this session out (live console sockets of the session close).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody)))]
pub(crate) async fn logout(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    s.auth.logout(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time ticket for the console's WebSocket (`GET /agent/ws?ticket=..`).
#[utoipa::path(post, path = "/api/v1/auth/ws-ticket", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TicketResponse), (status = 401, body = ErrorBody)))]
pub(crate) async fn ws_ticket(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<TicketResponse> {
    let (ticket, expires_at) = s.auth.ticket(&c).await?;
    Ok(Json(TicketResponse { ticket, expires_at }))
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
pub(crate) async fn me(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<AccountView> {
    Ok(Json(view(&s, c.account)))
}

/// Changes the caller's password; every session of the account ends.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "auth", request_body = ChangePassword,
    security(("bearer" = [])),
    responses((status = 204, description = "Changed; sign in again"),
        (status = 403, description = "Wrong current password", body = ErrorBody)))]
pub(crate) async fn change_password(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Json(req): Json<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    if !s.auth.check_password(&c, &req.current).await? {
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    s.auth.set_password(c.tenant(), c.id(), &req.new).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the caller's presence.
#[utoipa::path(put, path = "/api/v1/me/presence", tag = "agents", request_body = SetPresence,
    security(("bearer" = [])),
    responses((status = 204, description = "Set"), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_presence(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Json(req): Json<SetPresence>,
) -> Result<StatusCode, ApiError> {
    s.engine.set_presence(c.id(), req.presence).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's accounts (supervisor).
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Page<AccountView>), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_agents(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Page<AccountView>> {
    let items = s
        .auth
        .store()
        .accounts(c.tenant())
        .await?
        .into_iter()
        .map(|a| view(&s, a))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Adds an account to the caller's tenant (admin); it can take conversations at once.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = NewAccount,
    security(("bearer" = [])),
    responses((status = 201, body = AccountView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody)))]
pub(crate) async fn create_agent(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Json(req): Json<NewAccount>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let mut account = Account::new(
        c.tenant().clone(),
        req.name.trim(),
        req.role.unwrap_or(Role::Agent),
    );
    account.skills = req.skills;
    if let Some(l) = req.languages {
        account.languages = l;
    }
    account.team = req.team.filter(|t| !t.is_empty());
    if let Some(n) = req.chat_capacity {
        account.chat_capacity = n;
    }
    s.auth.add(&account, &req.password).await?;
    if c.tenant() == s.engine.tenant() {
        s.engine.register_agent(account.to_agent()?).await?;
    }
    Ok((StatusCode::CREATED, Json(view(&s, account))))
}

/// One account of the tenant (supervisor).
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_agent(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<AccountView> {
    let a = tenant_account(&s, &c, &id).await?;
    Ok(Json(view(&s, a)))
}

/// Changes an account's role, profile or disabled flag (admin); disabling ends its sessions.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", request_body = AccountChange,
    security(("bearer" = [])), params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_agent(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<AccountChange>,
) -> ApiResult<AccountView> {
    let mut a = tenant_account(&s, &c, &id).await?;
    if let Some(r) = req.role {
        a.role = r;
    }
    if let Some(v) = req.skills {
        a.skills = v;
    }
    if let Some(v) = req.languages {
        a.languages = v;
    }
    if let Some(t) = req.team {
        a.team = Some(t).filter(|t| !t.is_empty());
    }
    if let Some(n) = req.chat_capacity {
        a.chat_capacity = n;
    }
    if let Some(d) = req.disabled {
        a.disabled = d;
    }
    let agent = a.to_agent().map_err(|e| ApiError::invalid(e.to_string()))?;
    if !s.auth.store().update_account(&a).await? {
        return Err(ApiError::not_found("agent"));
    }
    if a.disabled {
        s.auth.revoke_account(&a.tenant, a.id).await?;
    }
    if &a.tenant == s.engine.tenant() {
        s.engine.register_agent(agent).await?;
    }
    Ok(Json(view(&s, a)))
}

/// Sets an account's password (admin); every session of the account ends.
#[utoipa::path(put, path = "/api/v1/agents/{id}/password", tag = "agents", request_body = SetPassword,
    security(("bearer" = [])), params(("id" = String, Path, description = "Account id")),
    responses((status = 204, description = "Set"), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_agent_password(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let a = tenant_account(&s, &c, &id).await?;
    if !s.auth.set_password(&a.tenant, a.id, &req.password).await? {
        return Err(ApiError::not_found("agent"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of an account (admin); its console sockets close.
#[utoipa::path(post, path = "/api/v1/agents/{id}/revoke-sessions", tag = "agents",
    security(("bearer" = [])), params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke_sessions(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Object> {
    let a = tenant_account(&s, &c, &id).await?;
    let n = s.auth.revoke_account(&a.tenant, a.id).await?;
    Ok(Json(Object(serde_json::json!({ "revoked": n }))))
}

/// Every agent of the desk with their presence.
#[utoipa::path(get, path = "/api/v1/presence", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Object)))]
pub(crate) async fn presence(State(s): State<ApiState>) -> ApiResult<Object> {
    let list: Vec<serde_json::Value> = s
        .engine
        .agents()
        .into_iter()
        .map(|a| serde_json::json!({"id": a.id, "name": a.name, "presence": a.presence, "team": a.team}))
        .collect();
    Ok(Json(Object(serde_json::json!({ "items": list }))))
}

/// The queue: supervisors all of it, agents what they can serve.
#[utoipa::path(get, path = "/api/v1/queue", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = Object)))]
pub(crate) async fn queue(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Object> {
    let snap = s.engine.queue().await?;
    let me = s.engine.agent(c.id());
    let items: Vec<serde_json::Value> = snap
        .queued
        .iter()
        .filter(|q| c.is(Role::Supervisor) || can_serve(me.as_ref(), &q.task))
        .map(|q| {
            serde_json::json!({
                "conversation": q.task.id,
                "position": q.position,
                "priority": q.task.priority,
                "since": q.task.enqueued_at,
                "channel": q.task.channel,
                "skills": q.task.requirements.iter().map(|r| r.skill.clone()).collect::<Vec<_>>(),
                "language": q.task.language,
            })
        })
        .collect();
    Ok(Json(Object(
        serde_json::json!({ "total": items.len(), "items": items }),
    )))
}

/// Conversations, newest first: supervisors the tenant's, agents their own.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations",
    security(("bearer" = [])), params(ConversationFilter),
    responses((status = 200, body = Page<ConversationBody>), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_conversations(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Query(f): Query<ConversationFilter>,
) -> ApiResult<Page<ConversationBody>> {
    let states = match f.state.as_deref() {
        None => Vec::new(),
        Some(st) => vec![
            serde_json::from_value::<ConversationState>(serde_json::Value::String(st.into()))
                .map_err(|_| ApiError::invalid(format!("unknown state {st:?}")))?,
        ],
    };
    let assignee = if c.is(Role::Supervisor) {
        f.assignee
            .as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|_| ApiError::invalid("assignee is an agent id"))
            })
            .transpose()?
    } else {
        Some(c.id())
    };
    let customer = f
        .customer
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|_| ApiError::invalid("customer is a customer id"))
        })
        .transpose()?;
    let mut list = s
        .engine
        .store()
        .conversations(&ConversationQuery {
            tenant: c.tenant().clone(),
            states,
            assignee,
            customer,
            limit: cs_core::store::MAX_PAGE,
        })
        .await?;
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let (page, next) = window(
        list,
        |c| c.id.to_string(),
        f.cursor.as_deref(),
        page_size(f.limit),
    );
    Ok(Json(Page {
        items: page.into_iter().map(ConversationBody).collect(),
        next_cursor: next,
    }))
}

/// One conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn get_conversation(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<ConversationBody> {
    Ok(Json(ConversationBody(
        visible_conversation(&s, &c, &id).await?,
    )))
}

/// A conversation's messages, oldest first, internal notes included.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "Conversation id"), PageQuery),
    responses((status = 200, body = Page<MessageBody>), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn messages(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Query(p): Query<PageQuery>,
) -> ApiResult<Page<MessageBody>> {
    let conv = visible_conversation(&s, &c, &id).await?;
    let limit = page_size(p.limit);
    let after = p
        .cursor
        .as_deref()
        .map(|a| a.parse().map_err(|_| ApiError::invalid("bad cursor")))
        .transpose()?;
    let mut q = MessageQuery::new(
        c.tenant().clone(),
        MessageScope::Conversation(conv.id),
        limit + 1,
    );
    q.after = after;
    q.order = MessageOrder::OldestFirst;
    let mut items = s.engine.store().messages(&q).await?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: items.into_iter().map(MessageBody).collect(),
        next_cursor: next,
    }))
}

/// Replies to the customer (the conversation's agent).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/reply", tag = "conversations",
    request_body = ReplyRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = MessageBody), (status = 403, body = ErrorBody),
        (status = 422, description = "Refused by the compliance rules", body = ErrorBody)))]
pub(crate) async fn reply(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<ReplyRequest>,
) -> ApiResult<MessageBody> {
    let conv = visible_conversation(&s, &c, &id).await?;
    let content = Content::text(req.text);
    let m = if req.confirm {
        s.engine
            .agent_reply_confirmed(c.id(), conv.id, content, req.client_id)
            .await?
    } else {
        s.engine
            .agent_reply(c.id(), conv.id, content, req.client_id)
            .await?
    };
    Ok(Json(MessageBody(m)))
}

/// Adds an internal note (the conversation's agent, a supervisor, or a colleague a note
/// mentioned); `@name` mentions a colleague of the tenant, whose console is notified and may
/// open the conversation.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/notes", tag = "conversations",
    request_body = NoteRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = MessageBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn note(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<NoteRequest>,
) -> ApiResult<MessageBody> {
    let conv = visible_conversation(&s, &c, &id).await?;
    // The conversation's agent, a supervisor, or a colleague mentioned in it (`own`: the
    // engine checks the caller holds it).
    let helping = conv.assignee != Some(c.id()) && mentioned_in(&s, &c, conv.id).await?;
    let own = !(c.is(Role::Supervisor) || helping);
    Ok(Json(MessageBody(
        s.engine.add_note(c.id(), conv.id, &req.text, own).await?,
    )))
}

/// Resolves the conversation (its agent, or a supervisor for them).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/resolve", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Resolved"), (status = 403, body = ErrorBody)))]
pub(crate) async fn resolve(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conv = visible_conversation(&s, &c, &id).await?;
    let agent = match conv.assignee {
        Some(a) if c.is(Role::Supervisor) => a,
        _ => c.id(),
    };
    s.engine.resolve(agent, conv.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a waiting conversation out of turn (agents: one they can serve).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/take", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Assigned to the caller"), (status = 403, body = ErrorBody),
        (status = 409, description = "Not waiting, or no room", body = ErrorBody)))]
pub(crate) async fn take(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conv = visible_conversation(&s, &c, &id).await?;
    s.engine.take_from_queue(c.id(), conv.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives the conversation to another agent (its agent; supervisors any, to themselves to take
/// it over), with an optional note the receiver reads in the history; `409 over_capacity` when
/// the receiver has no room.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/transfer", tag = "conversations",
    request_body = TransferRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Transferred"), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn transfer(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<TransferRequest>,
) -> Result<StatusCode, ApiError> {
    let conv = visible_conversation(&s, &c, &id).await?;
    if !c.is(Role::Supervisor) && conv.assignee != Some(c.id()) {
        return Err(ApiError::forbidden(
            "agents transfer their own conversations",
        ));
    }
    if s.auth
        .store()
        .account(c.tenant(), req.agent)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("agent"));
    }
    // A transfer never puts the receiver over their capacity (a supervisor taking it over
    // themselves decides for themselves).
    if req.agent != c.id() && conv.assignee != Some(req.agent) {
        let to = s
            .engine
            .agent(req.agent)
            .ok_or_else(|| ApiError::not_found("agent"))?;
        let load = s.engine.agent_conversations(req.agent).await?.len();
        if load >= usize::from(to.capacity.chat) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "over_capacity",
                format!(
                    "{} already has {load} of {} conversations",
                    to.name, to.capacity.chat
                ),
            ));
        }
    }
    if let Some(note) = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        s.engine.add_note(c.id(), conv.id, note, false).await?;
    }
    s.engine.transfer(conv.id, req.agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts the conversation offered to the caller.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/accept", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Accepted"), (status = 409, body = ErrorBody)))]
pub(crate) async fn accept(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conv = visible_conversation(&s, &c, &id).await?;
    s.engine.accept_offer(c.id(), conv.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rejects the conversation offered to the caller.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/reject", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Rejected"), (status = 409, body = ErrorBody)))]
pub(crate) async fn reject(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conv = visible_conversation(&s, &c, &id).await?;
    s.engine.reject_offer(c.id(), conv.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Opens a ticket from the conversation (its agent).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/tickets", tag = "tickets",
    request_body = OpenTicketRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 201, body = TicketBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn open_ticket(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<OpenTicketRequest>,
) -> Result<(StatusCode, Json<TicketBody>), ApiError> {
    let conv = visible_conversation(&s, &c, &id).await?;
    let t = s
        .engine
        .open_ticket(c.id(), conv.id, &req.subject, req.group)
        .await?;
    Ok((StatusCode::CREATED, Json(TicketBody(t))))
}

/// A customer: profile, identities and whole history.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    security(("bearer" = [])), params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn customer(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Object> {
    let id = visible_customer(&s, &c, &id).await?;
    Ok(Json(object(s.engine.customer_view(id).await?)?))
}

/// A customer's channel identities.
#[utoipa::path(get, path = "/api/v1/customers/{id}/identities", tag = "customers",
    security(("bearer" = [])), params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn identities(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Object> {
    let id = visible_customer(&s, &c, &id).await?;
    let links = s.engine.store().identity_links(c.tenant(), id).await?;
    Ok(Json(object(serde_json::json!({ "items": links }))?))
}

/// Links another identity to the customer (supervisor).
#[utoipa::path(post, path = "/api/v1/customers/{id}/identities", tag = "customers",
    request_body = LinkRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 204, description = "Linked"),
        (status = 409, description = "Another customer's identity: merge instead", body = ErrorBody)))]
pub(crate) async fn link_identity(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<LinkRequest>,
) -> Result<StatusCode, ApiError> {
    let id = visible_customer(&s, &c, &id).await?;
    if req.external_id.trim().is_empty() {
        return Err(ApiError::invalid("external_id is empty"));
    }
    s.engine
        .link_identity(
            id,
            Identity::new(req.kind, req.external_id),
            LinkOrigin::Agent { agent: c.id() },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The merges into or out of a customer (supervisor).
#[utoipa::path(get, path = "/api/v1/customers/{id}/merges", tag = "customers",
    security(("bearer" = [])), params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn merges(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Object> {
    let id = visible_customer(&s, &c, &id).await?;
    let list: Vec<serde_json::Value> = s
        .engine
        .store()
        .merges(c.tenant(), id)
        .await?
        .iter()
        .map(merge_json)
        .collect();
    Ok(Json(Object(serde_json::json!({ "items": list }))))
}

/// Merges another customer into this one (supervisor); undo with `/merges/{id}/undo`.
#[utoipa::path(post, path = "/api/v1/customers/{id}/merge", tag = "customers",
    request_body = MergeRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn merge(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<MergeRequest>,
) -> ApiResult<Object> {
    let into = visible_customer(&s, &c, &id).await?;
    let from = visible_customer(&s, &c, &req.from.to_string()).await?;
    let m = s
        .engine
        .merge_customers(into, from, LinkOrigin::Agent { agent: c.id() })
        .await?;
    Ok(Json(Object(merge_json(&m))))
}

/// Undoes a merge (supervisor).
#[utoipa::path(post, path = "/api/v1/merges/{id}/undo", tag = "customers",
    security(("bearer" = [])), params(("id" = String, Path, description = "Merge id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn unmerge(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Object> {
    let id: MergeId = parse_id("merge", &id)?;
    Ok(Json(Object(merge_json(&s.engine.unmerge(id).await?))))
}

/// A merge as JSON.
fn merge_json(m: &cs_core::store::Merge) -> serde_json::Value {
    serde_json::json!({
        "id": m.id.to_string(),
        "into": m.into,
        "from": m.from,
        "identities": m.identities,
        "conversations": m.conversations,
        "resolved": m.resolved,
        "at": m.at,
        "undone_at": m.undone_at,
    })
}

/// Tickets, newest first: supervisors the tenant's, agents theirs and their customers'.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", security(("bearer" = [])),
    params(TicketFilter), responses((status = 200, body = Page<TicketBody>), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_tickets(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Query(f): Query<TicketFilter>,
) -> ApiResult<Page<TicketBody>> {
    let statuses = match f.status.as_deref() {
        None => Vec::new(),
        Some(st) => vec![
            cs_tickets::TicketStatus::parse(st)
                .ok_or_else(|| ApiError::invalid(format!("unknown status {st:?}")))?,
        ],
    };
    let parse_agent = |a: &str| {
        a.parse()
            .map_err(|_| ApiError::invalid("assignee is an agent id"))
    };
    let query = cs_tickets::TicketQuery {
        tenant: c.tenant().clone(),
        statuses,
        assignee: f.assignee.as_deref().map(parse_agent).transpose()?,
        customer: f
            .customer
            .as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|_| ApiError::invalid("customer is a customer id"))
            })
            .transpose()?,
        text: f.text.clone(),
        limit: cs_core::store::MAX_PAGE,
        ..Default::default()
    };
    let mut list = s.engine.tickets().search(&query).await?;
    if !c.is(Role::Supervisor) {
        let mine: HashSet<CustomerId> = own_conversations(&s, &c)
            .await?
            .iter()
            .map(|conv| conv.customer)
            .collect();
        list.retain(|t| {
            t.assignee == Some(c.id()) || t.customer.is_some_and(|cu| mine.contains(&cu))
        });
    }
    list.sort_by_key(|t| std::cmp::Reverse(t.number));
    let (page, next) = window(
        list,
        |t| t.number.to_string(),
        f.cursor.as_deref(),
        page_size(f.limit),
    );
    Ok(Json(Page {
        items: page.into_iter().map(TicketBody).collect(),
        next_cursor: next,
    }))
}

/// One ticket.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Ticket id")),
    responses((status = 200, body = TicketBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn get_ticket(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<TicketBody> {
    Ok(Json(TicketBody(visible_ticket(&s, &c, &id).await?)))
}

/// A ticket's comments.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/comments", tag = "tickets",
    security(("bearer" = [])), params(("id" = String, Path, description = "Ticket id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn comments(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Object> {
    let t = visible_ticket(&s, &c, &id).await?;
    let list = s.engine.tickets().comments(c.tenant(), t.id).await?;
    Ok(Json(object(serde_json::json!({ "items": list }))?))
}

/// Comments on a ticket (internal unless `public`).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/comments", tag = "tickets",
    request_body = CommentRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Ticket id")),
    responses((status = 201, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn add_comment(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<CommentRequest>,
) -> Result<(StatusCode, Json<Object>), ApiError> {
    let t = visible_ticket(&s, &c, &id).await?;
    let comment = s
        .engine
        .tickets()
        .add_comment(cs_tickets::NewComment {
            tenant: c.tenant().clone(),
            ticket: t.id,
            author: cs_tickets::Actor::Agent { agent: c.id() },
            body: req.body,
            public: req.public,
            attachments: Vec::new(),
            at: s.engine.clock().now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(object(comment)?)))
}

/// The desk's settings (admin).
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
pub(crate) async fn settings(State(s): State<ApiState>) -> ApiResult<Object> {
    Ok(Json(Object((*s.settings).clone())))
}

// ---------------------------------------------------------------------------------------------
// Canned replies

/// `GET /api/v1/canned`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CannedFilter {
    /// Words in the shortcut, title or text (any case).
    pub q: Option<String>,
    /// Supervisors: every reply of the tenant, each agent's own included (default: the shared
    /// ones and the caller's own).
    #[serde(default)]
    pub all: bool,
    /// At most this many (default 50, at most 200).
    pub limit: Option<usize>,
}

/// `POST /api/v1/canned`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewCanned {
    /// What the agent types after `/`: letters, digits, `-`, `_`, `.` (1-40).
    pub shortcut: String,
    /// A short title for the picker.
    #[serde(default)]
    pub title: String,
    /// The text; `{customer.name}`, `{agent.name}` and `{order.status}` are filled in.
    pub text: String,
    /// Shared with the whole tenant (supervisors); default: the caller's own.
    #[serde(default)]
    pub shared: bool,
}

/// `PATCH /api/v1/canned/{id}`: the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CannedChange {
    /// Shortcut.
    pub shortcut: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Text.
    pub text: Option<String>,
}

/// `POST .../expand`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExpandRequest {
    /// A text with variables (a canned reply's, or the agent's own).
    pub text: String,
}

/// A canned reply the caller may change: their own; a supervisor's, any of the tenant.
async fn manageable_canned(s: &ApiState, c: &Caller, id: &str) -> Result<CannedReply, ApiError> {
    let reply = s
        .canned
        .get(c.tenant(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("canned reply"))?;
    if c.is(Role::Supervisor) || reply.owner == Some(c.id()) {
        Ok(reply)
    } else if reply.owner.is_none() {
        Err(ApiError::forbidden(
            "shared canned replies are managed by supervisors",
        ))
    } else {
        // Another agent's own reply is not there for this agent.
        Err(ApiError::not_found("canned reply"))
    }
}

/// Canned replies by shortcut: the tenant's shared ones and the caller's own.
#[utoipa::path(get, path = "/api/v1/canned", tag = "canned", security(("bearer" = [])),
    params(CannedFilter),
    responses((status = 200, body = Page<CannedReply>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_canned(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Query(f): Query<CannedFilter>,
) -> ApiResult<Page<CannedReply>> {
    let items = s
        .canned
        .list(&CannedQuery {
            tenant: c.tenant().clone(),
            viewer: (!(f.all && c.is(Role::Supervisor))).then(|| c.id()),
            search: f.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty()),
            limit: page_size(f.limit),
        })
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Adds a canned reply: the caller's own, or shared with the tenant (supervisors).
#[utoipa::path(post, path = "/api/v1/canned", tag = "canned", request_body = NewCanned,
    security(("bearer" = [])),
    responses((status = 201, body = CannedReply), (status = 400, body = ErrorBody),
        (status = 403, description = "Shared replies need a supervisor", body = ErrorBody),
        (status = 409, description = "Shortcut taken", body = ErrorBody)))]
pub(crate) async fn create_canned(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Json(req): Json<NewCanned>,
) -> Result<(StatusCode, Json<CannedReply>), ApiError> {
    if req.shared && !c.is(Role::Supervisor) {
        return Err(ApiError::forbidden(
            "shared canned replies are managed by supervisors",
        ));
    }
    let reply = CannedReply::new(
        c.tenant().clone(),
        (!req.shared).then(|| c.id()),
        req.shortcut.trim(),
        req.title.trim(),
        req.text,
    );
    reply.validate()?;
    s.canned.create(&reply).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Changes a canned reply (its owner; supervisors any of the tenant).
#[utoipa::path(patch, path = "/api/v1/canned/{id}", tag = "canned", request_body = CannedChange,
    security(("bearer" = [])), params(("id" = String, Path, description = "Canned reply id")),
    responses((status = 200, body = CannedReply), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn update_canned(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<CannedChange>,
) -> ApiResult<CannedReply> {
    let mut reply = manageable_canned(&s, &c, &id).await?;
    if let Some(v) = req.shortcut {
        reply.shortcut = v.trim().to_owned();
    }
    if let Some(v) = req.title {
        reply.title = v.trim().to_owned();
    }
    if let Some(v) = req.text {
        reply.text = v;
    }
    reply.updated_at = super::canned::now();
    reply.validate()?;
    if !s.canned.update(&reply).await? {
        return Err(ApiError::not_found("canned reply"));
    }
    Ok(Json(reply))
}

/// Deletes a canned reply (its owner; supervisors any of the tenant).
#[utoipa::path(delete, path = "/api/v1/canned/{id}", tag = "canned",
    security(("bearer" = [])), params(("id" = String, Path, description = "Canned reply id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_canned(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let reply = manageable_canned(&s, &c, &id).await?;
    if !s.canned.delete(c.tenant(), &reply.id).await? {
        return Err(ApiError::not_found("canned reply"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Fills in a text's variables for this conversation (its agent, or a supervisor):
/// `{customer.name}`, `{agent.name}` (the caller) and `{order.status}` (the customer's latest
/// order, asked of the shop as that customer). Other variables, and those without a value, stay
/// as written and are listed in `unresolved`. Nothing is sent: the agent reads the text and
/// sends it as a reply, where the compliance rules apply.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/expand", tag = "canned",
    request_body = ExpandRequest, security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = Expansion), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn expand_text(
    State(s): State<ApiState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<ExpandRequest>,
) -> ApiResult<Expansion> {
    let conv = visible_conversation(&s, &c, &id).await?;
    if !c.is(Role::Supervisor) && conv.assignee != Some(c.id()) {
        return Err(ApiError::forbidden(
            "agents fill in replies for their own conversations",
        ));
    }
    if req.text.len() > super::canned::MAX_TEXT_BYTES {
        return Err(ApiError::invalid("a canned text has at most 4,096 bytes"));
    }
    let used = super::canned::variables(&req.text);
    let customer = s.engine.store().customer(c.tenant(), conv.customer).await?;
    let mut vars = super::canned::Variables {
        customer_name: customer
            .display_name
            .clone()
            .filter(|n| !n.trim().is_empty()),
        agent_name: Some(c.account.name.clone()),
        order_status: None,
    };
    if used.contains(&"order.status")
        && let Some(orders) = &s.orders
    {
        vars.order_status = latest_order_status(s.engine.clone(), orders, &customer).await;
    }
    Ok(Json(super::canned::expand(&req.text, &vars)))
}

/// The status of `customer`'s newest order the shop shows them (by the phones they proved), in
/// their language; `None` when they have none or the shop is out of reach.
async fn latest_order_status(
    engine: Engine,
    orders: &Arc<dyn cs_bot::OrderService>,
    customer: &cs_core::Customer,
) -> Option<String> {
    let asker = engine.order_asker(customer.id).await;
    let mut newest: Option<cs_bot::Order> = None;
    for phone in &asker.verified_phones {
        match orders.orders_by_phone(&asker, phone).await {
            Ok(list) => {
                for o in list {
                    if newest.as_ref().is_none_or(|n| o.placed_at > n.placed_at) {
                        newest = Some(o);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "orders unavailable for a canned reply"),
        }
    }
    let zh = !customer
        .language
        .as_deref()
        .is_some_and(|l| l.to_ascii_lowercase().starts_with("en"));
    newest.map(|o| format!("{} {}", o.id, o.status.label(zh)))
}

// ---------------------------------------------------------------------------------------------
// The document

#[derive(OpenApi)]
#[openapi(
    info(
        title = "omnidesk agent API",
        version = "1",
        description = "Accounts, sessions, conversations, customers and tickets of the omnidesk \
                       service desk. Send `Authorization: Bearer <token>` from \
                       `POST /api/v1/auth/login`. Errors: `{\"error\": <code>, \"reason\": ..}`."
    ),
    paths(
        openapi_json, login, logout, ws_ticket, me, change_password, set_presence, list_agents,
        create_agent, get_agent, update_agent, set_agent_password, revoke_sessions, presence,
        queue, list_conversations, get_conversation, messages, reply, note, resolve, take,
        transfer, accept, reject, open_ticket, customer, identities, link_identity, merges,
        merge, unmerge, list_tickets, get_ticket, comments, add_comment, settings, list_canned,
        create_canned, update_canned, delete_canned, expand_text
    ),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3.1 document of the API, generated from the handlers' annotations; every
/// operation carries `x-required-role` (`public`, `agent`, `supervisor` or `admin`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for r in routes() {
        let role = match r.access {
            Access::Public => "public",
            Access::Role(role) => role.as_str(),
        };
        if let Some(item) = doc.paths.paths.get_mut(r.path) {
            let op = match r.method {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                "PUT" => item.put.as_mut(),
                "PATCH" => item.patch.as_mut(),
                _ => item.delete.as_mut(),
            };
            if let Some(op) = op {
                let mut ext = utoipa::openapi::extensions::Extensions::default();
                ext.insert("x-required-role".into(), serde_json::json!(role));
                match &mut op.extensions {
                    Some(e) => e.merge(ext),
                    None => op.extensions = Some(ext),
                }
            }
        }
    }
    doc
}
