//! Analytics and operations: metrics from the event stream, rollups persisted per minute,
//! half-hour, hour and day, alerts, staffing (Erlang C and A), a forecast of arrivals, agent
//! scorecards and Prometheus counters.
//!
//! [`Analytics`] subscribes to [`Engine::subscribe`] (or is fed events with
//! [`Analytics::observe`], so it works without the bundled service). Every event goes through a
//! pure [`Aggregator`] that keeps a little state per conversation and adds to counters keyed by
//! tenant, minute and dimension (the whole tenant, channel, queue, agent, intent, hand-over
//! reason, SLA target). Every `flush_every` the deltas are folded into half-hour, hour and day
//! rows and added to the [`RollupStore`] (SQLite or PostgreSQL, tables `analytics_rollups` and
//! `analytics_tracks`) in one transaction, with the per-conversation state, so a restart loses
//! nothing it had flushed; reports read the rollups and never scan messages. The figures are
//! integers (milliseconds, points), so a replay of the same events gives the same rows, however
//! it is batched.
//!
//! ```
//! use std::sync::Arc;
//! use omnidesk::analytics::{Analytics, Dim, Grain, Metric, MemoryRollupStore, RollupQuery};
//! # async fn run(engine: omnidesk::Engine) -> omnidesk::Result<()> {
//! let analytics = Analytics::builder(Arc::new(MemoryRollupStore::new()))
//!     .with_tenant(engine.tenant().as_str())
//!     .build()
//!     .await?;
//! let _running = analytics.start(&engine); // subscribes, flushes, sweeps, alerts
//! // ... later: today's first response times per channel
//! let rows = analytics
//!     .query(&RollupQuery {
//!         tenant: engine.tenant().as_str().into(),
//!         grain: Grain::Day,
//!         from: chrono::Utc::now() - chrono::Duration::days(1),
//!         to: chrono::Utc::now() + chrono::Duration::days(1),
//!         dim: Dim::Channel,
//!         metrics: vec![Metric::FirstResponse],
//!     })
//!     .await?;
//! # let _ = rows; Ok(()) }
//! ```
//!
//! # Definitions
//!
//! Each metric is counted when the event that settles it happens (the reply, the resolve),
//! in the bucket of that moment, as Zendesk's and Chatwoot's reports do; durations are means of
//! the observations (sum / count). Calendar time unless "business" is said: the business variants
//! count only the tenant's business hours ([`AggregatorSettings::calendar`], the desk's SLA
//! calendar in the bundled service).
//!
//! - **Conversations**: conversations opened, by channel (the customer's first message).
//! - **Messages in / out**: customer messages stored; bot, agent and system messages sent
//!   (internal notes excluded).
//! - **First response time (FRT)**: from the moment the customer was handed to humans (the
//!   bot's hand-over, or the conversation entering the queue; the conversation's creation when
//!   neither was seen) to the first agent message. Bot replies and system notices do not count
//!   (Chatwoot measures from the bot hand-over the same way). One per conversation, for the
//!   replying agent. Business variant: `first_response_business`.
//! - **Reply time**: for every later agent message that answers customer messages, the time
//!   from the oldest unanswered customer message to it (Chatwoot's reply time).
//! - **Response breaches**: a customer message (or the hand-over) left unanswered by an agent
//!   longer than `reply_target`, counted once at its deadline. A resolve or close stops the
//!   clock: nothing after it is a breach (the fault of Chatwoot #10178, a next-response clock
//!   running after the resolve, cannot happen).
//! - **Resolution time**: from the conversation's creation, or from its latest reopen, to the
//!   resolve (so a reopened conversation does not inflate its second resolution: Chatwoot
//!   #9741); one per resolve. Business variant: `resolution_business`. Zendesk's "full
//!   resolution time" runs from creation instead: sum the resolutions of a conversation.
//! - **Handle time (AHT)**: from an agent's assignment to the end of their stint (resolve,
//!   transfer, back to the queue); one per stint, for the agent. Offers do not count until
//!   accepted.
//! - **First-contact resolution (FCR)**: a resolve by the only agent the conversation had, with
//!   no transfer and no reopen; a reopen takes it back (from the bucket where it was counted).
//!   FCR rate = `fcr / resolutions`.
//! - **Transfers**: a conversation assigned to another agent than the one who had it before
//!   (directly, or through the queue when the first agent was away); counted for the agent it
//!   left. Transfer rate = `transfers / assignments`.
//! - **Queue wait**: from entering the queue to an agent taking it (the assignment).
//!   **Answered in target**: taken within `answer_target` (the service level =
//!   `answered_in_target / queued`). **Abandonment**: the customer left the queue first
//!   ([`cs_core::DomainEvent::QueueAbandoned`]); abandonment rate = `abandoned / queued`. A
//!   conversation the router hands to the bot first (bot-first reception) is no queue entry.
//! - **Bot sessions, containment, hand-over rate**: a bot session starts with the bot's first
//!   answer in a conversation and ends in a hand-over (escalated) or, contained, when the
//!   conversation is resolved or closed without one, or the customer stays silent for
//!   `bot_idle` (counted at the session's start). Containment = `bot_contained / bot_sessions`
//!   (Zendesk's automated resolutions: conversations the bot closed without an agent); hand-over
//!   rate = `bot_escalated / bot_sessions`. Hand-overs are also counted by reason.
//! - **Top intents**: bot answers by the intent the bot recognised (dimension `intent`).
//! - **SLA breaches and warnings**: the ticket desk's SLA events (first response, next response,
//!   resolution on business hours), by target; escalations.
//! - **CSAT**: survey answers 1-5; CSAT = share of 4 and 5 among the answers (Zendesk's
//!   satisfaction score). From conversation surveys ([`cs_core::DomainEvent::SurveyAnswered`])
//!   and ticket ratings (`csat_submitted`). **NPS**: answers 0-10; NPS = % promoters (9-10)
//!   minus % detractors (0-6). **Customer effort (CES)**: answers 1-7; CES = the mean.
//! - **Sentiment mix**: customer messages by polarity. **Sentiment outcome** (scorecards): the
//!   last customer score of an agent's stint minus the first; improved / worsened when it moved
//!   by more than 0.1.
//!
//! Dimensions: each observation counts for the tenant (`all`), its channel, its queue (the
//! first skill the conversation waits for, `general` without one) and, where an agent is
//! involved, the agent; bot answers for the intent; hand-overs for the reason.

pub mod aggregate;
pub mod alerts;
pub mod forecast;
pub mod prom;
pub mod report;
pub mod rollup;
pub mod scorecard;
pub mod staffing;
pub mod store;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use cs_core::Event;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use aggregate::{Aggregator, AggregatorSettings};
pub use alerts::{Alert, AlertEngine, AlertRule, Webhook};
pub use rollup::{Dim, Grain, Metric, RollupKey, RollupRow, Rollups, Stat};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::SqlRollupStore;
pub use store::{Batch, MemoryRollupStore, RollupQuery, RollupStore};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// The `[analytics]` settings.
///
/// ```toml
/// [analytics]
/// flush_every = "2s"          # rollups reach the database this often
/// bot_idle = "30m"            # a silent bot session this long is contained
/// answer_target = "30s"       # the service level's target answer time
/// reply_target = "10m"        # an agent reply later than this is a response breach
/// service_level = 0.8         # staffing target: this share answered within answer_target
/// chat_concurrency = 3        # chats an agent holds at once (staffing)
/// shrinkage = 0.3             # share of paid time agents are unavailable (staffing)
/// webhook = "http://127.0.0.1:9000/alerts"   # alerts are posted here (optional)
/// cooldown = "30m"            # an alert does not fire again sooner for the same subject
/// [[analytics.alerts]]        # see alerts::AlertRule
/// kind = "queue_wait_above"
/// name = "queue slow"
/// seconds = 120
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Whether the bundled service runs analytics (default true).
    pub enabled: bool,
    /// How often rollups are flushed, idle sessions settled and gauges set (default 2 s).
    #[serde(with = "cs_routing::policy::duration")]
    pub flush_every: StdDuration,
    /// How often alert rules are evaluated (default 30 s).
    #[serde(with = "cs_routing::policy::duration")]
    pub alert_every: StdDuration,
    /// A silent bot session this long counts as contained (default 30 min).
    #[serde(with = "cs_routing::policy::duration")]
    pub bot_idle: StdDuration,
    /// The service level's target answer time (default 30 s).
    #[serde(with = "cs_routing::policy::duration")]
    pub answer_target: StdDuration,
    /// An agent reply later than this is a response breach (default 10 min).
    #[serde(with = "cs_routing::policy::duration")]
    pub reply_target: StdDuration,
    /// Resolved conversations are remembered this long for reopens (default 7 days).
    #[serde(with = "cs_routing::policy::duration")]
    pub retention: StdDuration,
    /// Minute rows are kept this long (default 48 h); half-hour, hour and day rows are kept.
    #[serde(with = "cs_routing::policy::duration")]
    pub minute_retention: StdDuration,
    /// The staffing target: the share answered within `answer_target` (default 0.8).
    pub service_level: f64,
    /// Chats an agent holds at once, for staffing (default 3).
    pub chat_concurrency: u32,
    /// The share of paid time agents are unavailable, for staffing (default 0.3).
    pub shrinkage: f64,
    /// Where alerts are posted (default: nowhere; they still go on the event stream).
    pub webhook: Option<String>,
    /// How long after an alert fired the same rule and subject stay quiet (default 30 min).
    #[serde(with = "cs_routing::policy::duration")]
    pub cooldown: StdDuration,
    /// Alert rules (default: queue wait above 2 minutes, more than 5 SLA breaches an hour).
    pub alerts: Vec<AlertRule>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            flush_every: StdDuration::from_secs(2),
            alert_every: StdDuration::from_secs(30),
            bot_idle: StdDuration::from_secs(30 * 60),
            answer_target: StdDuration::from_secs(30),
            reply_target: StdDuration::from_secs(10 * 60),
            retention: StdDuration::from_secs(7 * 24 * 3600),
            minute_retention: StdDuration::from_secs(48 * 3600),
            service_level: 0.8,
            chat_concurrency: 3,
            shrinkage: 0.3,
            webhook: None,
            cooldown: StdDuration::from_secs(30 * 60),
            alerts: vec![
                AlertRule::QueueWaitAbove {
                    name: "queue wait".into(),
                    seconds: 120.0,
                    window_minutes: 15,
                },
                AlertRule::SlaBreachesAbove {
                    name: "SLA breaches".into(),
                    count: 5,
                },
            ],
        }
    }
}

impl std::fmt::Debug for AnalyticsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A webhook URL often carries a token: only its scheme and host are shown.
        let webhook = self.webhook.as_deref().map(|w| match w.split_once("://") {
            Some((scheme, rest)) => format!(
                "{scheme}://{}/<redacted>",
                rest.split('/').next().unwrap_or("")
            ),
            None => "<redacted>".to_owned(),
        });
        f.debug_struct("AnalyticsConfig")
            .field("enabled", &self.enabled)
            .field("flush_every", &self.flush_every)
            .field("alert_every", &self.alert_every)
            .field("bot_idle", &self.bot_idle)
            .field("answer_target", &self.answer_target)
            .field("reply_target", &self.reply_target)
            .field("retention", &self.retention)
            .field("minute_retention", &self.minute_retention)
            .field("service_level", &self.service_level)
            .field("chat_concurrency", &self.chat_concurrency)
            .field("shrinkage", &self.shrinkage)
            .field("webhook", &webhook)
            .field("cooldown", &self.cooldown)
            .field("alerts", &self.alerts)
            .finish()
    }
}

fn chrono(d: StdDuration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(3650))
}

impl AnalyticsConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero flush interval, a service level or shrinkage outside 0 to 1,
    /// a zero concurrency, a webhook that is not an http(s) URL or an invalid rule.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::Config {
                reason: format!("analytics: {reason}"),
            })
        };
        if self.flush_every.is_zero() || self.alert_every.is_zero() {
            return bad("flush_every and alert_every must be above zero");
        }
        if !(0.0..1.0).contains(&self.service_level) || self.service_level <= 0.0 {
            return bad("service_level is between 0 and 1");
        }
        if !(0.0..1.0).contains(&self.shrinkage) {
            return bad("shrinkage is from 0 to below 1");
        }
        if self.chat_concurrency == 0 {
            return bad("chat_concurrency is at least 1");
        }
        if let Some(w) = &self.webhook
            && !(w.starts_with("http://") || w.starts_with("https://"))
        {
            return bad("webhook must be an http:// or https:// URL");
        }
        for rule in &self.alerts {
            rule.validate()?;
        }
        Ok(())
    }

    /// The aggregator's settings from these (and the business calendar, if any).
    pub fn aggregator(
        &self,
        calendar: Option<cs_tickets::BusinessCalendar>,
        timezone: chrono_tz::Tz,
    ) -> AggregatorSettings {
        AggregatorSettings {
            bot_idle: chrono(self.bot_idle),
            answer_target: chrono(self.answer_target),
            reply_target: chrono(self.reply_target),
            calendar,
            timezone,
            retention: chrono(self.retention),
        }
    }
}

/// What the dashboard hears as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// New figures were flushed (or live state changed).
    Changed,
    /// An alert fired.
    Alert(Alert),
}

/// Builds [`Analytics`].
#[derive(Debug)]
pub struct AnalyticsBuilder {
    store: Arc<dyn RollupStore>,
    config: AnalyticsConfig,
    tenant: String,
    calendar: Option<cs_tickets::BusinessCalendar>,
    timezone: chrono_tz::Tz,
}

impl AnalyticsBuilder {
    /// Analytics over `store`, with the default settings, for the default tenant.
    pub fn new(store: Arc<dyn RollupStore>) -> Self {
        Self {
            store,
            config: AnalyticsConfig::default(),
            tenant: cs_core::TenantId::default().as_str().to_owned(),
            calendar: None,
            timezone: chrono_tz::Asia::Shanghai,
        }
    }

    /// The settings.
    pub fn with_config(mut self, config: AnalyticsConfig) -> Self {
        self.config = config;
        self
    }

    /// The tenant reported on (the engine's).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Business hours for the business-time variants; days are bucketed in its time zone.
    pub fn with_calendar(mut self, calendar: cs_tickets::BusinessCalendar) -> Self {
        self.timezone = calendar.time_zone();
        self.calendar = Some(calendar);
        self
    }

    /// The time zone of day buckets (default `Asia/Shanghai`, or the calendar's).
    pub fn with_timezone(mut self, tz: chrono_tz::Tz) -> Self {
        self.timezone = tz;
        self
    }

    /// Validates the settings and restores the conversations an earlier run was following.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings; store errors.
    pub async fn build(self) -> Result<Analytics> {
        self.config.validate()?;
        let mut aggregator = Aggregator::new(self.config.aggregator(self.calendar, self.timezone));
        aggregator.restore(self.store.tracks(&self.tenant).await?);
        let webhook = self
            .config
            .webhook
            .as_deref()
            .map(Webhook::new)
            .transpose()?;
        let (updates, _) = broadcast::channel(64);
        Ok(Analytics {
            inner: Arc::new(Inner {
                tenant: self.tenant,
                timezone: self.timezone,
                alerts: tokio::sync::Mutex::new(AlertEngine::new(
                    self.config.alerts.clone(),
                    chrono(self.config.cooldown),
                )),
                config: self.config,
                store: self.store,
                aggregator: Mutex::new(aggregator),
                pending: tokio::sync::Mutex::new(None),
                webhook,
                updates,
                heartbeat: AtomicI64::new(0),
                flush_ok: AtomicBool::new(true),
                lagged: AtomicU64::new(0),
                recent: Mutex::new(VecDeque::new()),
                pruned: AtomicI64::new(0),
            }),
        })
    }
}

/// The analytics of one tenant. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tenant: String,
    timezone: chrono_tz::Tz,
    config: AnalyticsConfig,
    store: Arc<dyn RollupStore>,
    aggregator: Mutex<Aggregator>,
    /// A flush that failed, retried first (and the lock that serialises flushes).
    pending: tokio::sync::Mutex<Option<Batch>>,
    alerts: tokio::sync::Mutex<AlertEngine>,
    webhook: Option<Webhook>,
    updates: broadcast::Sender<Update>,
    /// When the ticker last ran, ms since the epoch (0: never).
    heartbeat: AtomicI64,
    flush_ok: AtomicBool,
    lagged: AtomicU64,
    recent: Mutex<VecDeque<Alert>>,
    /// When minute rows were last pruned, ms since the epoch (a scan: hourly is enough).
    pruned: AtomicI64,
}

/// The analytics tasks of [`Analytics::start`]; dropping it stops them.
#[derive(Debug)]
pub struct Running {
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the tasks.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many fired alerts are remembered for the dashboard.
const RECENT_ALERTS: usize = 50;

impl Analytics {
    /// Starts building analytics over `store`.
    pub fn builder(store: Arc<dyn RollupStore>) -> AnalyticsBuilder {
        AnalyticsBuilder::new(store)
    }

    /// The settings.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.inner.config
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }

    /// The time zone of day buckets.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.inner.timezone
    }

    /// The rollup store.
    pub fn store(&self) -> &Arc<dyn RollupStore> {
        &self.inner.store
    }

    /// Takes one event (the subscriber calls it; call it yourself to feed events from
    /// elsewhere, or to replay a log).
    pub fn observe(&self, event: &Event) {
        if event.tenant.as_str() != self.inner.tenant {
            return;
        }
        self.inner
            .aggregator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(event);
    }

    /// Takes every event of a log, in order.
    pub fn replay<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        let mut agg = self
            .inner
            .aggregator
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for e in events {
            if e.tenant.as_str() == self.inner.tenant {
                agg.observe(e);
            }
        }
    }

    /// How many events were taken, and how many conversations are followed.
    pub fn counts(&self) -> (u64, usize) {
        let agg = self
            .inner
            .aggregator
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (agg.events_seen(), agg.conversations_tracked())
    }

    /// Agents as the events told them (presence, conversations held).
    pub fn agents_now(&self) -> std::collections::HashMap<cs_core::AgentId, aggregate::AgentNow> {
        self.inner
            .aggregator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .agents()
    }

    /// Settles what time decides by `now` (idle bot sessions, overdue replies).
    pub fn sweep(&self, now: DateTime<Utc>) {
        self.inner
            .aggregator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sweep(now);
    }

    /// Writes what was counted since the last flush to the store (in one transaction). A
    /// failed flush is kept and retried first next time.
    ///
    /// # Errors
    /// Store errors (nothing is lost: the batch is retried).
    pub async fn flush(&self) -> Result<()> {
        self.flush_at(Utc::now()).await
    }

    async fn flush_at(&self, now: DateTime<Utc>) -> Result<()> {
        let mut pending = self.inner.pending.lock().await;
        if let Some(batch) = pending.as_ref() {
            self.inner.store.apply(batch).await?;
            *pending = None;
        }
        let batch = {
            let mut agg = self
                .inner
                .aggregator
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let delta = agg.take_delta();
            let (tracks, forget) = agg.take_tracks();
            // Minute rows age by the events' clock (a replay of last month keeps its minutes
            // until newer events come).
            let newest = agg.latest().map_or(now, |l| l.min(now));
            let last = self.inner.pruned.load(Ordering::Relaxed);
            let prune = now.timestamp_millis() - last >= 3_600_000;
            if prune {
                self.inner
                    .pruned
                    .store(now.timestamp_millis(), Ordering::Relaxed);
            }
            Batch {
                rows: store::batch_rows(&delta, self.inner.timezone),
                tracks,
                forget,
                prune_minutes_before: prune
                    .then(|| newest - chrono(self.inner.config.minute_retention)),
            }
        };
        if batch.rows.is_empty()
            && batch.tracks.is_empty()
            && batch.forget.is_empty()
            && batch.prune_minutes_before.is_none()
        {
            return Ok(());
        }
        if let Err(e) = self.inner.store.apply(&batch).await {
            *pending = Some(batch);
            return Err(e);
        }
        let _ = self.inner.updates.send(Update::Changed);
        Ok(())
    }

    /// Rollup rows (what was flushed; call [`Analytics::flush`] first for the latest).
    ///
    /// # Errors
    /// Store errors.
    pub async fn query(&self, query: &RollupQuery) -> Result<Vec<RollupRow>> {
        self.inner.store.query(query).await
    }

    /// Evaluates the alert rules at `now`; fires what starts an episode (webhook, event
    /// stream, dashboard) and returns it.
    ///
    /// # Errors
    /// Store errors. A webhook that fails is logged, not returned.
    pub async fn evaluate_alerts(
        &self,
        engine: Option<&Engine>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Alert>> {
        let fired = self
            .inner
            .alerts
            .lock()
            .await
            .evaluate(self.inner.store.as_ref(), &self.inner.tenant, now)
            .await?;
        for alert in &fired {
            tracing::warn!(rule = %alert.rule, subject = %alert.subject, "{}", alert.message);
            if let Some(engine) = engine {
                engine.raise_alert(&alert.rule, &alert.message, alert.value, alert.threshold);
            }
            if let Some(hook) = &self.inner.webhook
                && let Err(e) = hook.send(alert).await
            {
                tracing::warn!(error = %e, rule = %alert.rule, "alert webhook failed");
            }
            {
                let mut recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
                if recent.len() == RECENT_ALERTS {
                    recent.pop_front();
                }
                recent.push_back(alert.clone());
            }
            let _ = self.inner.updates.send(Update::Alert(alert.clone()));
        }
        Ok(fired)
    }

    /// The alerts fired lately, oldest first.
    pub fn recent_alerts(&self) -> Vec<Alert> {
        self.inner
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Updates as they happen (new figures, alerts).
    pub fn updates(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    /// When the ticker last ran, if it has.
    pub fn last_tick(&self) -> Option<DateTime<Utc>> {
        match self.inner.heartbeat.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// Whether the last flush reached the store.
    pub fn flushing(&self) -> bool {
        self.inner.flush_ok.load(Ordering::Relaxed)
    }

    /// Events the subscriber missed because it fell behind.
    pub fn lagged(&self) -> u64 {
        self.inner.lagged.load(Ordering::Relaxed)
    }

    /// One turn of the ticker at `now`: sweep, flush, gauges.
    async fn tick(&self, engine: &Engine, now: DateTime<Utc>) {
        self.sweep(now);
        match self.flush_at(now).await {
            Ok(()) => self.inner.flush_ok.store(true, Ordering::Relaxed),
            Err(e) => {
                self.inner.flush_ok.store(false, Ordering::Relaxed);
                metrics::counter!("omnidesk_analytics_flush_errors_total").increment(1);
                tracing::warn!(error = %e, "analytics flush failed; will retry");
            }
        }
        if let Ok(snapshot) = engine.queue_snapshot(StdDuration::from_millis(500)).await {
            prom::gauges(&snapshot, now);
        }
        self.inner
            .heartbeat
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Subscribes to `engine`'s events and starts the ticker (flush, sweep, gauges every
    /// `flush_every`; alerts every `alert_every`). Dropping the returned [`Running`] stops both.
    pub fn start(&self, engine: &Engine) -> Running {
        let mut events = engine.subscribe();
        let me = self.clone();
        let subscriber = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        prom::record(&event);
                        me.observe(&event);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        me.inner.lagged.fetch_add(n, Ordering::Relaxed);
                        metrics::counter!("omnidesk_analytics_lagged_events_total").increment(n);
                        tracing::warn!(missed = n, "analytics fell behind the event stream");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let me = self.clone();
        let engine = engine.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(me.inner.config.flush_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_alerts = std::time::Instant::now();
            loop {
                every.tick().await;
                let now = engine.clock().now();
                me.tick(&engine, now).await;
                if last_alerts.elapsed() >= me.inner.config.alert_every {
                    last_alerts = std::time::Instant::now();
                    if let Err(e) = me.evaluate_alerts(Some(&engine), now).await {
                        tracing::warn!(error = %e, "alert rules not evaluated");
                    }
                }
            }
        });
        Running {
            tasks: vec![subscriber, ticker],
        }
    }
}
