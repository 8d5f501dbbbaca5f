//! The bundled HTTP service (feature `server`): the demo shop page with the chat widget, the
//! web chat WebSocket server, and the agent console — all on one axum router you can serve as is
//! ([`App::serve`]) or nest into your own application ([`App::router`]).
//!
//! Nested under a path of its own (`Router::new().nest("/support", app.router()?)`), every
//! page follows: each is rendered with the mount point ([`BasePath`]), so its scripts, API calls
//! and sockets stay under `/support`. A host that serves the router itself runs the desk's
//! background work with [`App::start`] (`examples/embed_axum.rs`).
//!
//! Routes:
//! - `GET /` — a demo shop page with the embedded chat widget
//! - `/chat/*` — the web chat channel ([`cs_channels::webchat`])
//! - `GET /agent` — the agent console; `GET /agent/ws` (see [`agent`])
//! - `/api/v1/*` — the REST API with its OpenAPI document at `/api/v1/openapi.json` (see
//!   [`api`]; accounts and sessions: [`accounts`], [`auth`])
//! - `GET|POST /webhooks/{channel_id}` — every configured webhook channel (WeChat, WhatsApp,
//!   Telegram, SMS, signed JSON webhook), see `cs_channels::router`
//! - `GET /dashboard` — the supervisors' dashboard (see [`dashboard`]; agent sign-in)
//! - `GET /agent/knowledge` — the bot's knowledge: FAQ entries, retraining, unanswered
//!   questions (see [`knowledge`]; agent sign-in)
//! - `GET /metrics` — Prometheus text format (see [`crate::analytics::prom`])
//! - `GET /healthz` — liveness: `200` while the service's ticker runs, with every check in the
//!   JSON body (store, tickets, analytics, channels, ticker, event bus)
//! - `GET /readyz` — readiness: `200` only when every check passes, else `503` with the reasons

pub mod accounts;
pub mod agent;
pub mod api;
pub mod auth;
pub mod canned;
pub mod dashboard;
#[cfg(feature = "email")]
mod email;
pub mod knowledge;
pub mod limits;
pub mod nodes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::serve::ListenerExt;
use cs_bot::{DemoShop, IntentBot, LiveBot};
use cs_channels::router::WebhookRouter;
use cs_channels::{Channel, InboundHandler, WebChat};
use cs_core::store::ConversationStore;
use cs_core::store::SqliteStoreBuilder;
use cs_core::{ChannelId, Priority};
use cs_tickets::{
    BusinessCalendarBuilder, EscalationRule, EscalationTarget, SlaPolicy, SlaPolicyBuilder,
    SlaTargets, SqliteTicketStoreBuilder, TicketDesk, TicketDeskBuilder, TicketStore,
};
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::analytics::{Analytics, RollupStore, Running};
use crate::bridge::DeskTicketLookup;
use crate::config::Config;
use crate::engine::{BusinessHours, DeskSettings, Engine};
use crate::error::{Error, Result};

const SHOP_HTML: &str = include_str!("assets/shop.html");

/// Where a page may load from and connect to: only the service itself (scripts never inline),
/// and no other site may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: https:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// The id of the web chat channel the app configures.
pub const WEBCHAT_ID: &str = "webchat";

/// The intent bot on the saved, the configured or the bundled bilingual knowledge, answering
/// order and logistics questions from the demo shop and ticket questions from the ticket desk;
/// live, so supervisors edit its knowledge while it serves (see [`knowledge`]).
fn demo_bot(
    config: &Config,
    desk: Arc<TicketDesk>,
    orders: Arc<dyn cs_bot::OrderService>,
) -> Result<knowledge::KnowledgeBase> {
    let paths = knowledge::KnowledgePaths::for_config(config);
    let start = paths.load()?;
    let tickets: Arc<dyn cs_bot::TicketLookup> = Arc::new(DeskTicketLookup::new(desk));
    let model = paths.model.clone();
    let make = move || {
        let builder = IntentBot::builder()
            .with_orders(orders.clone())
            .with_tickets(tickets.clone());
        match &model {
            // A restart on the same knowledge loads the saved model instead of training.
            Some(m) => builder.with_model_cache(m),
            None => builder,
        }
    };
    let live = LiveBot::new(start, make).map_err(|e| Error::Config {
        reason: format!("FAQ: {e}"),
    })?;
    Ok(
        knowledge::KnowledgeBase::new(live, paths)
            .with_compliance(config.compliance.phrase_rules()),
    )
}

/// The configured business hours, every day, in the configured time zone.
fn business_calendar(config: &Config) -> Result<cs_tickets::BusinessCalendar> {
    use chrono::Weekday;
    let tz: chrono_tz::Tz = config.timezone.parse().map_err(|_| Error::Config {
        reason: format!("unknown time zone {:?}", config.timezone),
    })?;
    let (start, end) = config.hours()?;
    let mut calendar = BusinessCalendarBuilder::new(tz);
    for day in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ] {
        calendar = calendar.with_period(day, start, end);
    }
    Ok(calendar.build()?)
}

/// The SLA policy of the bundled desk: targets per priority on the configured business hours.
fn sla_policy(config: &Config) -> Result<SlaPolicy> {
    use chrono::Duration;
    let targets = |first: i64, next: i64, resolve: i64| SlaTargets {
        first_response: Some(Duration::minutes(first)),
        next_response: Some(Duration::minutes(next)),
        resolution: Some(Duration::minutes(resolve)),
    };
    Ok(
        SlaPolicyBuilder::new("standard", business_calendar(config)?)
            .with_targets(Priority::Low, targets(60, 120, 3 * 24 * 60))
            .with_targets(Priority::Normal, targets(30, 60, 24 * 60))
            .with_targets(Priority::High, targets(10, 30, 8 * 60))
            .with_targets(Priority::Urgent, targets(5, 15, 4 * 60))
            .with_warning_before(Duration::minutes(5))
            .build()?,
    )
}

/// Conversations and tickets in one database: the SQLite file by default, PostgreSQL when
/// `database` is a `postgres://` URL (feature `postgres`), so several processes share one desk.
async fn open_stores(
    config: &Config,
    sla: SlaPolicy,
) -> Result<(
    Arc<dyn ConversationStore>,
    Arc<dyn TicketStore>,
    Arc<dyn RollupStore>,
    Arc<dyn accounts::AccountStore>,
    Arc<dyn canned::CannedStore>,
)> {
    if let Some(url) = config.postgres_url() {
        #[cfg(feature = "postgres")]
        {
            let store = cs_core::store::PostgresStore::connect(url).await?;
            let tickets = cs_tickets::PostgresTicketStoreBuilder::new(url)
                .with_pool(store.pool().clone())
                .with_sla(sla)
                .build()
                .await?;
            let rollups = crate::analytics::SqlRollupStore::postgres(store.pool().clone()).await?;
            let accounts = accounts::SqlAccountStore::new(store.pool().clone()).await?;
            let canned = canned::SqlCannedStore::new(store.pool().clone()).await?;
            return Ok((
                Arc::new(store),
                Arc::new(tickets),
                Arc::new(rollups),
                Arc::new(accounts),
                Arc::new(canned),
            ));
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (url, sla);
            return Err(Error::Config {
                reason: "database is a PostgreSQL URL but this build lacks the postgres \
                         feature (cargo run --example server --features postgres)"
                    .into(),
            });
        }
    }
    let store = SqliteStoreBuilder::new(&config.database)
        .with_durability(match config.durability {
            crate::config::Durability::Normal => cs_core::sql::sqlite::Durability::Normal,
            crate::config::Durability::Full => cs_core::sql::sqlite::Durability::Full,
        })
        .with_group_commit(config.group_commit)
        .build()
        .await?;
    let tickets =
        SqliteTicketStoreBuilder::with_pools(store.writer().clone(), store.reader().clone())
            .with_sla(sla)
            .build()
            .await?;
    let rollups = crate::analytics::SqlRollupStore::sqlite(store.writer().clone()).await?;
    let accounts = accounts::SqlAccountStore::new(store.writer().clone()).await?;
    let canned = canned::SqlCannedStore::new(store.writer().clone()).await?;
    Ok((
        Arc::new(store),
        Arc::new(tickets),
        Arc::new(rollups),
        Arc::new(accounts),
        Arc::new(canned),
    ))
}

/// The desk over `tickets`: the SLA policy for countdowns, and the seeds' escalation chain
/// (service -> after-sales -> logistics) on any breach.
fn ticket_desk(tickets: Arc<dyn TicketStore>, sla: SlaPolicy) -> Result<TicketDesk> {
    Ok(
        TicketDeskBuilder::new(tickets, Arc::new(cs_core::SystemClock))
            .with_chain(["service", "after-sales", "logistics"])
            .with_rule(EscalationRule::on_breach(
                "escalate on any breach",
                None,
                EscalationTarget::Next,
            ))
            .with_sla(sla)
            .build()?,
    )
}

/// A ready-to-serve service: engine, web chat channel and agent sign-in.
#[derive(Debug, Clone)]
pub struct App {
    engine: Engine,
    webchat: Arc<WebChat>,
    webhooks: Vec<Arc<dyn Channel>>,
    #[cfg(feature = "email")]
    email: Option<email::Mail>,
    auth: Arc<agent::AgentAuth>,
    guard: Arc<limits::Guard>,
    config: Config,
    analytics: Option<Analytics>,
    /// The live bot's knowledge, edited at `/agent/knowledge`.
    knowledge: Option<knowledge::KnowledgeBase>,
    /// Canned replies (`/api/v1/canned`).
    canned: Arc<dyn canned::CannedStore>,
    /// The shop's orders, for `{order.status}` in canned replies.
    orders: Option<Arc<dyn cs_bot::OrderService>>,
    /// When the service's ticker last ran, ms since the epoch (0: not running).
    ticker: Arc<std::sync::atomic::AtomicI64>,
    /// Set when the service shuts down: long-lived responses (the dashboard's event stream)
    /// end, so the graceful shutdown does not wait for them.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl App {
    /// Builds the whole service from settings: SQLite store, FAQ bot, web chat channel, demo
    /// agents.
    ///
    /// # Errors
    /// [`Error::Config`] for unreadable files or invalid settings; store errors when the
    /// database cannot be opened.
    pub async fn from_config(config: Config) -> Result<Self> {
        // The Prometheus recorder, before anything is counted.
        crate::analytics::prom::handle();
        let secret = config.secret_bytes()?;
        let sla = sla_policy(&config)?;
        let (store, tickets, rollups, account_store, canned_store) =
            open_stores(&config, sla.clone()).await?;
        let desk = Arc::new(ticket_desk(tickets, sla)?);
        let orders: Arc<dyn cs_bot::OrderService> = Arc::new(DemoShop::sample(chrono::Utc::now()));
        let knowledge = demo_bot(&config, desk.clone(), orders.clone())?;
        if let Err(e) = knowledge.load_unanswered(&config.tenant) {
            tracing::warn!(error = %e, "unanswered questions of the last run not read");
        }
        let webchat = Arc::new(
            WebChat::builder(ChannelId::new(WEBCHAT_ID)?)
                .with_secret(secret.clone())
                .with_max_text_bytes(config.limits.widget_text_bytes)
                .with_max_frame_bytes(config.limits.widget_frame_bytes)
                .with_socket_buffer_bytes(config.limits.widget_socket_buffer_bytes)
                .build()?,
        );
        let cluster = nodes::join(&config).await?;
        // On a node of several, web-chat messages are pushed by the node holding the socket.
        let chat_channel: Arc<dyn Channel> = if cluster.is_some() {
            Arc::new(nodes::SocketDelivered::new(webchat.clone()))
        } else {
            webchat.clone()
        };
        let mut builder = Engine::builder()
            .with_tenant(config.tenant.clone())
            .with_store(store)
            .with_bot(knowledge.live().clone())
            .with_channel(chat_channel);
        if let Some(url) = config.postgres_url() {
            builder = builder.with_desk_locks(nodes::desk_locks(url).await?);
        }
        #[cfg(feature = "email")]
        let mail = match &config.email {
            Some(c) => {
                let mail = email::Mail::from_config(c, &secret)?;
                builder = builder.with_channel(mail.channel.clone());
                Some(mail)
            }
            None => None,
        };
        let mut webhooks = Vec::new();
        for c in config.channels.clone() {
            let channel = c.build(Arc::new(cs_core::SystemClock))?;
            builder = builder.with_channel(channel.clone());
            webhooks.push(channel);
        }
        let auth = auth::AgentAuth::new(account_store, config.auth.clone())?;
        let mut voice_targets = std::collections::HashMap::new();
        if config.demo {
            seed_demo(&auth, &config).await?;
        } else if !config.agents.is_empty() {
            return Err(Error::Config {
                reason: "[[agents]] with passwords are demo accounts: set `demo = true`, or add \
                         accounts with `cargo run --example server -- add-agent <tenant> <name> \
                         --role agent|supervisor|admin`"
                    .into(),
            });
        }
        for a in &config.agents {
            if let Some(target) = &a.voice {
                voice_targets.insert(a.id(), target.clone());
            }
        }
        let accounts = auth.store().accounts(&config.tenant).await?;
        if accounts.is_empty() {
            tracing::warn!(
                tenant = %config.tenant,
                "no accounts: nobody can sign in. Add one with `cargo run --example server -- \
                 add-agent {} <name> --role admin` (password from stdin or OMNIDESK_PASSWORD)",
                config.tenant
            );
        }
        for a in &accounts {
            builder = builder.with_agent(a.to_agent()?);
        }
        config.routing.validate().map_err(|e| Error::Config {
            reason: format!("routing: {e}"),
        })?;
        config.limits.validate()?;
        let settings = DeskSettings {
            reception: config.desk.reception,
            texts: config.texts.clone(),
            hours: Some(BusinessHours {
                calendar: business_calendar(&config)?,
                label: config.business_hours.clone(),
            }),
            skill_teams: config.desk.skill_teams.clone(),
            reclaim_after: chrono::Duration::from_std(config.desk.reclaim_after).map_err(|_| {
                Error::Config {
                    reason: "desk.reclaim_after is too long".into(),
                }
            })?,
            voice_targets,
        };
        let routing = config.routing.clone();
        let router: crate::engine::RouterFactory = Arc::new(move || {
            Arc::new(cs_routing::Shared::new(cs_routing::SkillRouter::new(
                routing.clone(),
            ))) as Arc<dyn cs_routing::Router>
        });
        builder = match cluster.clone() {
            Some(mut c) => {
                c.router = router;
                builder.with_cluster(c)
            }
            None => builder.with_router(router()),
        };
        let engine = builder
            // Several processes may share a PostgreSQL desk: each reads the store afresh.
            .with_hot_cache(config.postgres_url().is_none())
            .with_node_id(config.node())
            .with_settings(settings)
            .with_compliance(crate::compliance::TenantRules::new(
                config.compliance.phrase_rules(),
            ))
            .with_ticket_desk(desk)
            .build()
            .await?;
        let analytics = if config.analytics.enabled {
            Some(
                Analytics::builder(rollups)
                    .with_config(config.analytics.clone())
                    .with_tenant(config.tenant.as_str())
                    .with_calendar(business_calendar(&config)?)
                    .build()
                    .await?,
            )
        } else {
            None
        };
        if cluster.is_some() {
            nodes::deliver_to_sockets(engine.clone(), webchat.clone());
        }
        let mut app = Self::new(engine, webchat, auth, config);
        app.webhooks = webhooks;
        app.analytics = analytics;
        app.knowledge = Some(knowledge);
        app.canned = canned_store;
        app.orders = Some(orders);
        #[cfg(feature = "email")]
        {
            app.email = mail;
        }
        Ok(app)
    }

    /// Assembles an app from parts you built yourself.
    pub fn new(
        engine: Engine,
        webchat: Arc<WebChat>,
        auth: agent::AgentAuth,
        config: Config,
    ) -> Self {
        Self {
            engine,
            webchat,
            webhooks: Vec::new(),
            #[cfg(feature = "email")]
            email: None,
            auth: Arc::new(auth),
            guard: Arc::new(limits::Guard::new(config.limits.clone())),
            config,
            analytics: None,
            knowledge: None,
            canned: Arc::new(canned::MemoryCannedStore::new()),
            orders: None,
            ticker: Arc::default(),
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Reports and alerts from `analytics` (its subscriber starts with the service; the
    /// dashboard and `/readyz` use it).
    pub fn with_analytics(mut self, analytics: Analytics) -> Self {
        self.analytics = Some(analytics);
        self
    }

    /// The analytics, when enabled.
    pub fn analytics(&self) -> Option<&Analytics> {
        self.analytics.as_ref()
    }

    /// Serves `knowledge`'s editor at `/agent/knowledge` (its live bot should be the engine's
    /// bot).
    pub fn with_knowledge(mut self, knowledge: knowledge::KnowledgeBase) -> Self {
        self.knowledge = Some(knowledge);
        self
    }

    /// Keeps canned replies in `store` (default: in memory; [`App::from_config`] uses the
    /// desk's database).
    pub fn with_canned_store(mut self, store: Arc<dyn canned::CannedStore>) -> Self {
        self.canned = store;
        self
    }

    /// The canned replies.
    pub fn canned(&self) -> &Arc<dyn canned::CannedStore> {
        &self.canned
    }

    /// Fills `{order.status}` in canned replies from `orders` (only ever the conversation's
    /// own customer's orders).
    pub fn with_orders(mut self, orders: Arc<dyn cs_bot::OrderService>) -> Self {
        self.orders = Some(orders);
        self
    }

    /// The live bot's knowledge, when the app manages one.
    pub fn knowledge(&self) -> Option<&knowledge::KnowledgeBase> {
        self.knowledge.as_ref()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The web chat channel.
    pub fn webchat(&self) -> &Arc<WebChat> {
        &self.webchat
    }

    /// Agent accounts and sessions.
    pub fn auth(&self) -> &Arc<agent::AgentAuth> {
        &self.auth
    }

    /// The settings it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Mounts a webhook channel at `/webhooks/{its id}`; it must also be one of the engine's
    /// channels (so replies can go out through it).
    pub fn with_webhook_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.webhooks.push(channel);
        self
    }

    /// All routes, to serve or to nest into your own router.
    ///
    /// # Errors
    /// [`Error::Channel`] when two webhook channels share an id.
    pub fn router(&self) -> Result<Router> {
        let engine: Arc<dyn InboundHandler> = Arc::new(self.engine.clone());
        let handler: Arc<dyn InboundHandler> =
            Arc::new(limits::LimitedHandler::new(engine, self.guard.clone()));
        let guard = self.guard.clone();
        // The router's own body limit applies inside the service-wide one: give it the same.
        let webhooks = WebhookRouter::new(handler.clone())
            .with_channels(self.webhooks.iter().cloned())
            .with_max_body_bytes(guard.limits().max_body_bytes)
            .build()?;
        let chat =
            self.webchat
                .clone()
                .router(handler)
                .layer(axum::middleware::from_fn_with_state(
                    guard.clone(),
                    guard_chat,
                ));
        let limits = guard.limits();
        let header = |name, value: &'static str| {
            SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
        };
        let health = Health {
            engine: self.engine.clone(),
            analytics: self.analytics.clone(),
            channels: self.channel_ids(),
            ticker: self.ticker.clone(),
        };
        let mut api = api::ApiState::new(
            self.engine.clone(),
            self.auth.clone(),
            self.guard.clone(),
            self.settings(),
        )
        .with_canned(self.canned.clone());
        if let Some(orders) = &self.orders {
            api = api.with_orders(orders.clone());
        }
        let mut routes = Router::new();
        if let Some(kb) = &self.knowledge {
            routes = routes.nest(
                "/agent/knowledge",
                knowledge::router(self.engine.clone(), self.auth.clone(), kb.clone()),
            );
        }
        Ok(routes
            .route(
                "/",
                get(|base: BasePath| async move { base.page(SHOP_HTML) }),
            )
            .route(
                "/healthz",
                get({
                    let h = health.clone();
                    move || async move { h.report(false).await }
                }),
            )
            .route(
                "/readyz",
                get({
                    let h = health.clone();
                    move || async move { h.report(true).await }
                }),
            )
            .route("/metrics", get(metrics))
            .nest(
                "/dashboard",
                dashboard::router(
                    self.engine.clone(),
                    self.analytics.clone(),
                    self.auth.clone(),
                    self.closing.subscribe(),
                ),
            )
            .nest("/chat", chat)
            .nest(
                "/agent",
                agent::router(
                    self.engine.clone(),
                    self.auth.clone(),
                    guard.clone(),
                    api.clone(),
                ),
            )
            .nest("/api/v1", api::router(api))
            .merge(webhooks)
            .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found").into_response() })
            .layer(
                tower::ServiceBuilder::new()
                    .layer(axum::middleware::from_fn(mount_point))
                    .layer(axum::middleware::from_fn(json_errors))
                    .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .layer(header(header::X_FRAME_OPTIONS, "DENY"))
                    .layer(header(header::REFERRER_POLICY, "same-origin"))
                    .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
                    .layer(TimeoutLayer::with_status_code(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        std::time::Duration::from_secs(limits.request_timeout_seconds.max(1)),
                    ))
                    .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes)),
            ))
    }

    /// Binds the configured address.
    ///
    /// # Errors
    /// [`Error::Config`] when the address cannot be bound.
    pub async fn bind(&self) -> Result<TcpListener> {
        let addr = format!("{}:{}", self.config.bind, self.config.port);
        TcpListener::bind(&addr).await.map_err(|e| Error::Config {
            reason: format!("cannot listen on {addr}: {e}"),
        })
    }

    /// Starts the service's background work: the ticker (offers lapsing, overflow, aging, SLA
    /// clocks, outbox retries, once a second), analytics, the bot's unanswered-question keeper
    /// and the mail listeners. [`App::serve_with_shutdown`] does this itself; a host application
    /// that nests [`App::router`] into its own server calls it once and
    /// [`Background::stop`] when it shuts down.
    ///
    /// # Errors
    /// [`Error::Config`] when a configured mail listener cannot bind.
    pub async fn start(&self) -> Result<Background> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        #[cfg(feature = "email")]
        if let Some(mail) = &self.email {
            let handler: Arc<dyn InboundHandler> = Arc::new(self.engine.clone());
            mail.start(handler, move || {
                let mut rx = stopped.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            })
            .await?;
        }
        #[cfg(not(feature = "email"))]
        drop(stopped);
        // Metrics, rollups and alerts from the event stream, for as long as the service runs.
        let running: Option<Running> = self.analytics.as_ref().map(|a| a.start(&self.engine));
        // The questions the bot could not answer, kept for the next run every half minute.
        let keeper = self.knowledge.clone().map(|kb| {
            let tenant = self.engine.tenant().clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let (kb, tenant) = (kb.clone(), tenant.clone());
                    let saved =
                        tokio::task::spawn_blocking(move || kb.save_unanswered(&tenant)).await;
                    if let Ok(Err(e)) = saved {
                        tracing::warn!(error = %e, "unanswered questions not saved");
                    }
                }
            })
        });
        let engine = self.engine.clone();
        let beat = self.ticker.clone();
        // Time-dependent routing (offers lapsing, sticky holds and overflow rings expiring,
        // aging), agents who stayed away, SLA clocks and outbox retries: once a second, and
        // at once when the router's next deadline comes sooner.
        let ticker = tokio::spawn(async move {
            let second = std::time::Duration::from_secs(1);
            loop {
                let wait = match engine.next_deadline().await {
                    Ok(Some(at)) => (at - engine.clock().now())
                        .to_std()
                        .unwrap_or_default()
                        .clamp(std::time::Duration::from_millis(10), second),
                    _ => second,
                };
                tokio::time::sleep(wait).await;
                if let Err(e) = engine.tick().await {
                    tracing::warn!(error = %e, "routing tick failed");
                }
                if let Err(e) = engine.flush_outbox().await {
                    tracing::warn!(error = %e, "outbox flush failed");
                }
                beat.store(
                    chrono::Utc::now().timestamp_millis(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        });
        Ok(Background {
            app: self.clone(),
            stop,
            ticker,
            keeper,
            running,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then finishes open requests.
    ///
    /// # Errors
    /// I/O errors of the server; [`Error::Config`] as [`App::start`].
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let background = self.start().await?;
        let closing = self.closing.clone();
        let shutdown = async move {
            shutdown.await;
            // Long-lived responses end, so the graceful shutdown does not wait for them.
            closing.send_replace(true);
        };
        // Chat frames are small: without TCP_NODELAY every reply waits for the peer's delayed
        // ACK (~40 ms).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
            // What the kernel says the socket now has, for /metrics.
            let nodelay = tcp.nodelay().unwrap_or(false);
            metrics::counter!("omnidesk_tcp_accepted_total", "nodelay" => if nodelay { "true" } else { "false" })
                .increment(1);
        });
        let result = axum::serve(
            listener,
            self.router()?
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Other(Box::new(e)));
        background.stop().await;
        result
    }

    /// Binds and serves until Ctrl-C.
    ///
    /// # Errors
    /// As [`App::bind`] and [`App::serve_with_shutdown`].
    pub async fn serve(self) -> Result<()> {
        let listener = self.bind().await?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(Box::new(e)))?;
        tracing::info!("shop with chat widget: http://{addr}/");
        tracing::info!("agent console:         http://{addr}/agent");
        tracing::info!("supervisor dashboard:  http://{addr}/dashboard");
        tracing::info!("bot knowledge:         http://{addr}/agent/knowledge");
        tracing::info!("Prometheus:            http://{addr}/metrics");
        self.serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    }
}

/// The background work of a started service (see [`App::start`]): stopped by
/// [`Background::stop`], or aborted when dropped.
#[derive(Debug)]
#[must_use = "the background work stops when this is dropped"]
pub struct Background {
    app: App,
    stop: tokio::sync::watch::Sender<bool>,
    ticker: tokio::task::JoinHandle<()>,
    keeper: Option<tokio::task::JoinHandle<()>>,
    running: Option<Running>,
}

impl Background {
    /// Stops the background work and saves what it kept: the ticker stops (one node of
    /// several: the router lease passes to another node at once), the mail listeners close,
    /// the dashboard's event streams end (so the host's graceful shutdown does not wait for
    /// them), the unanswered questions are saved and the analytics flushed.
    pub async fn stop(mut self) {
        let app = self.app.clone();
        let _ = self.stop.send(true);
        app.closing.send_replace(true);
        self.ticker.abort();
        app.engine.leave().await;
        app.ticker.store(0, std::sync::atomic::Ordering::Relaxed);
        drop(self.running.take());
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        if let Some(kb) = app.knowledge.clone() {
            let tenant = app.engine.tenant().clone();
            match tokio::task::spawn_blocking(move || kb.save_unanswered(&tenant)).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "unanswered questions not saved"),
                Err(e) => tracing::warn!(error = %e, "unanswered questions not saved"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(a) = &app.analytics
            && let Err(e) = a.flush().await
        {
            tracing::warn!(error = %e, "analytics not flushed at shutdown");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Some(keeper) = &self.keeper {
            keeper.abort();
        }
        let _ = self.stop.send(true);
    }
}

/// Opens the account store of the configured database, creating its tables (what
/// `cargo run --example server -- add-agent` writes to).
///
/// # Errors
/// Store errors; [`Error::Config`] for a PostgreSQL URL in a build without the `postgres`
/// feature.
pub async fn open_accounts(config: &Config) -> Result<Arc<dyn accounts::AccountStore>> {
    if let Some(url) = config.postgres_url() {
        #[cfg(feature = "postgres")]
        {
            let store = cs_core::store::PostgresStore::connect(url).await?;
            return Ok(Arc::new(
                accounts::SqlAccountStore::new(store.pool().clone()).await?,
            ));
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            return Err(Error::Config {
                reason: "database is a PostgreSQL URL but this build lacks the postgres feature"
                    .into(),
            });
        }
    }
    let store = SqliteStoreBuilder::new(&config.database)
        .with_group_commit(false)
        .build()
        .await?;
    Ok(Arc::new(
        accounts::SqlAccountStore::new(store.writer().clone()).await?,
    ))
}

/// Seeds the demo accounts of the configuration (`demo = true`) that do not exist yet.
async fn seed_demo(auth: &auth::AgentAuth, config: &Config) -> Result<()> {
    for a in &config.agents {
        if auth
            .store()
            .account_by_name(&config.tenant, &a.name)
            .await?
            .is_some()
        {
            continue;
        }
        let role = match a.role.as_deref() {
            None => accounts::Role::Agent,
            Some(r) => r.parse().map_err(|reason| Error::Config { reason })?,
        };
        let mut account = accounts::Account::new(config.tenant.clone(), a.name.clone(), role);
        // The id the demo agent always had, so their conversations stay theirs.
        account.id = a.id();
        account.skills = a.skills.clone();
        account.languages = a.languages.clone();
        account.team = a.team.clone();
        account.chat_capacity = a.chat_capacity;
        auth.add(&account, &a.password).await?;
        tracing::info!(name = %a.name, %role, "demo account seeded (demo configuration only)");
    }
    Ok(())
}

impl App {
    /// What `GET /api/v1/settings` shows an admin: the desk's settings, no secrets.
    fn settings(&self) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "tenant": c.tenant.as_str(),
            "demo": c.demo,
            "timezone": c.timezone,
            "business_hours": c.business_hours,
            "database_backend": if c.postgres_url().is_some() { "postgres" } else { "sqlite" },
            "desk": {
                "reception": c.desk.reception,
                "reclaim_after_seconds": c.desk.reclaim_after.as_secs(),
                "skill_teams": c.desk.skill_teams,
            },
            "auth": {
                "idle_seconds": c.auth.idle.as_secs(),
                "absolute_seconds": c.auth.absolute.as_secs(),
                "ticket_seconds": c.auth.ticket.as_secs(),
            },
            "limits": {
                "logins_per_minute": c.limits.logins_per_minute,
                "login_failures": c.limits.login_failures,
                "lockout_seconds": c.limits.lockout_seconds,
                "messages_per_minute": c.limits.messages_per_minute,
                "max_body_bytes": c.limits.max_body_bytes,
                "allowed_origins": c.limits.allowed_origins,
            },
            "channels": self.channel_ids(),
            "analytics": self.analytics.is_some(),
        })
    }

    /// The ids of the channels the service receives on.
    fn channel_ids(&self) -> Vec<String> {
        let mut ids = vec![self.webchat.info().id.to_string()];
        ids.extend(self.webhooks.iter().map(|c| c.info().id.to_string()));
        #[cfg(feature = "email")]
        if let Some(m) = &self.email {
            ids.push(m.channel.info().id.to_string());
        }
        ids
    }
}

/// `/metrics`: the Prometheus text format.
async fn metrics() -> axum::response::Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::analytics::prom::render(),
    )
        .into_response()
}

/// What `/healthz` and `/readyz` look at.
#[derive(Debug, Clone)]
struct Health {
    engine: Engine,
    analytics: Option<Analytics>,
    channels: Vec<String>,
    ticker: Arc<std::sync::atomic::AtomicI64>,
}

/// The service's ticker runs every second; this much silence means it is stuck or stopped.
const TICKER_STALE_MS: i64 = 5_000;

impl Health {
    /// Every check, each `{"ok": .., ...}`; the status is `503` when `ready` is asked and a
    /// check fails, or (liveness) when the ticker is not running.
    async fn report(&self, ready: bool) -> axum::response::Response {
        use serde_json::json;
        let timeout = std::time::Duration::from_secs(2);
        let tenant = self.engine.tenant().clone();
        let store = tokio::time::timeout(
            timeout,
            self.engine
                .store()
                .conversations(&cs_core::store::ConversationQuery {
                    tenant: tenant.clone(),
                    states: Vec::new(),
                    assignee: None,
                    customer: None,
                    limit: 1,
                }),
        )
        .await;
        let store = match store {
            Ok(Ok(_)) => json!({"ok": true}),
            Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
            Err(_) => json!({"ok": false, "error": "no answer within 2 s"}),
        };
        let tickets = tokio::time::timeout(
            timeout,
            self.engine.tickets().search(&cs_tickets::TicketQuery {
                tenant,
                limit: 1,
                ..Default::default()
            }),
        )
        .await;
        let tickets = match tickets {
            Ok(Ok(_)) => json!({"ok": true}),
            Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
            Err(_) => json!({"ok": false, "error": "no answer within 2 s"}),
        };
        let now = chrono::Utc::now().timestamp_millis();
        let beat = self.ticker.load(std::sync::atomic::Ordering::Relaxed);
        let ticker = if beat == 0 {
            json!({"ok": false, "error": "not running"})
        } else {
            json!({"ok": now - beat < TICKER_STALE_MS, "last_ms_ago": now - beat})
        };
        let analytics = match &self.analytics {
            None => json!({"ok": true, "enabled": false}),
            Some(a) => {
                let reachable = tokio::time::timeout(timeout, a.store().ping()).await;
                let reachable = matches!(reachable, Ok(Ok(())));
                let last = a.last_tick().map(|t| now - t.timestamp_millis());
                let stale = 3 * a.config().flush_every.as_millis() as i64 + TICKER_STALE_MS;
                json!({
                    "ok": reachable && a.flushing() && last.is_some_and(|l| l < stale),
                    "store": reachable,
                    "flushing": a.flushing(),
                    "last_tick_ms_ago": last,
                    "lagged_events": a.lagged(),
                })
            }
        };
        let channels = json!({"ok": !self.channels.is_empty(), "configured": self.channels});
        let bus = json!({
            "ok": true,
            "kind": "in-process broadcast",
            "lagged_events": self.analytics.as_ref().map(|a| a.lagged()).unwrap_or(0),
        });
        let checks = json!({
            "store": store,
            "tickets": tickets,
            "analytics": analytics,
            "channels": channels,
            "ticker": ticker,
            "bus": bus,
        });
        let all_ok = checks
            .as_object()
            .is_some_and(|m| m.values().all(|c| c["ok"] == json!(true)));
        let live = checks["ticker"]["ok"] == json!(true);
        let ok = if ready { all_ok } else { live };
        let status = if ok {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        };
        (
            status,
            axum::Json(json!({"status": if ok { "ok" } else { "unavailable" }, "checks": checks})),
        )
            .into_response()
    }
}

/// The widget's routes under the guard: new sessions are limited per address, sockets open only
/// from the service's own pages or allowed origins.
async fn guard_chat(
    axum::extract::State(guard): axum::extract::State<Arc<limits::Guard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    if path.ends_with("/session") {
        limits::limit_sessions(axum::extract::State(guard), request, next).await
    } else if path.ends_with("/ws") {
        limits::check_origin(axum::extract::State(guard), request, next).await
    } else {
        next.run(request).await
    }
}

/// Where the service is mounted: `""` when it is served at the root, `"/support"` when a host
/// application nests [`App::router`] there (`Router::new().nest("/support", desk)`).
///
/// The bundled pages (shop, agent console, dashboard, knowledge editor) are rendered with it, so
/// their scripts, styles, API calls and sockets stay under the mount point. It is worked out per
/// request from the path the host received ([`axum::extract::OriginalUri`]) and the path left
/// for the service; as an extractor it is `""` outside [`App::router`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasePath(String);

impl BasePath {
    /// The mount point from the path the host received (`original`) and the part of it the
    /// service routes (`inner`): `("/support/agent", "/agent")` is `"/support"`. Never ends
    /// with `/`; `""` at the root or when `inner` is not a tail of `original`.
    pub fn from_paths(original: &str, inner: &str) -> Self {
        let base = match original.strip_suffix(inner) {
            Some(base) => base,
            // A host's `nest("/support", desk)` hands `/support` to the desk as `/`.
            None if inner == "/" => original,
            None => "",
        };
        Self(base.trim_end_matches('/').to_owned())
    }

    /// The mount point, `""` at the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A bundled page with every `{{base}}` replaced by the (HTML-escaped) mount point.
    pub(crate) fn page(&self, template: &str) -> Html<String> {
        let mut escaped = String::with_capacity(self.0.len());
        for c in self.0.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#39;"),
                c => escaped.push(c),
            }
        }
        Html(template.replace("{{base}}", &escaped))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BasePath {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<BasePath>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Records the [`BasePath`] of every request for the pages.
async fn mount_point(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let base = match request.extensions().get::<axum::extract::OriginalUri>() {
        Some(original) => BasePath::from_paths(original.path(), request.uri().path()),
        None => BasePath::default(),
    };
    request.extensions_mut().insert(base);
    next.run(request).await
}

/// Errors answered by a layer or a framework rejection (a time-out, a body over the limit, a
/// malformed upgrade, an unknown path) come as the same JSON every handler answers with:
/// `{"error": .., "reason": ..}`.
async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let reason = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_lowercase(),
        t => t.to_owned(),
    };
    let code = match status.as_u16() {
        400 => "invalid_input",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        408 => "timeout",
        413 => "payload_too_large",
        429 => "rate_limited",
        _ => "internal",
    };
    let body = serde_json::json!({ "error": code, "reason": reason }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::BasePath;

    #[test]
    fn the_mount_point_is_what_the_host_put_before_the_desk() {
        let base = |o, i| BasePath::from_paths(o, i).as_str().to_owned();
        assert_eq!(base("/agent", "/agent"), "");
        assert_eq!(base("/", "/"), "");
        assert_eq!(base("/support/agent", "/agent"), "/support");
        assert_eq!(base("/support", "/"), "/support");
        assert_eq!(base("/a/b/api/v1/me", "/api/v1/me"), "/a/b");
        assert_eq!(base("/elsewhere", "/agent"), "", "not a tail: the root");
    }

    #[test]
    fn pages_get_the_mount_point_escaped() {
        let page =
            BasePath::from_paths("/x\"<y>/agent", "/agent").page(r#"<a href="{{base}}/agent">"#);
        assert_eq!(page.0, r#"<a href="/x&quot;&lt;y&gt;/agent">"#);
    }
}
