//! Alert rules over the rollups. A rule fires once per episode (it goes from quiet to firing for
//! one subject: the tenant, an intent, an agent), not again while the episode lasts, and not
//! again within the cool-down after it fired. A firing goes to a webhook (a JSON POST) and onto
//! the engine's event stream ([`cs_core::DomainEvent::AlertRaised`]).
//!
//! ```toml
//! [analytics]
//! webhook = "https://ops.shop.example/hooks/desk"
//! cooldown = "30m"
//! [[analytics.alerts]]
//! kind = "queue_wait_above"
//! name = "queue slow"
//! seconds = 120
//! [[analytics.alerts]]
//! kind = "intent_surge"
//! name = "refund surge"
//! intent = "refund"
//! rise_pct = 50
//! [[analytics.alerts]]
//! kind = "sla_breaches_above"
//! name = "breaches"
//! count = 5
//! [[analytics.alerts]]
//! kind = "agent_csat_below"
//! name = "csat falls"
//! share = 0.7
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::rollup::{Dim, Grain, Metric, RollupRow, Stat};
use super::store::{RollupQuery, RollupStore};
use crate::error::{Error, Result};

fn fifteen() -> i64 {
    15
}
fn sixty() -> i64 {
    60
}
fn day() -> i64 {
    1440
}
fn ten() -> i64 {
    10
}
fn three() -> i64 {
    3
}
fn yes() -> bool {
    true
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertRule {
    /// The mean queue wait over the last `window_minutes` (default 15) is above `seconds`.
    QueueWaitAbove {
        /// The rule's name.
        name: String,
        /// The threshold, seconds.
        seconds: f64,
        /// The window, minutes.
        #[serde(default = "fifteen")]
        window_minutes: i64,
    },
    /// Ticket SLA breaches plus conversation response breaches in the last hour exceed `count`.
    SlaBreachesAbove {
        /// The rule's name.
        name: String,
        /// The threshold.
        count: i64,
    },
    /// An intent's volume over the last `window_minutes` (default 60) is up `rise_pct` percent on
    /// the window before, with at least `min_volume` (default 10), and (unless
    /// `require_containment_drop` is false) bot containment fell meanwhile. Without `intent`,
    /// every intent is watched.
    IntentSurge {
        /// The rule's name.
        name: String,
        /// The intent, or all.
        #[serde(default)]
        intent: Option<String>,
        /// The rise, percent.
        rise_pct: f64,
        /// The least volume that counts.
        #[serde(default = "ten")]
        min_volume: i64,
        /// The window, minutes.
        #[serde(default = "sixty")]
        window_minutes: i64,
        /// Fire only while containment falls (default true).
        #[serde(default = "yes")]
        require_containment_drop: bool,
    },
    /// An agent's CSAT (the share of 4-5 answers) over the last `window_minutes` (default a day)
    /// is below `share`, from at least `min_responses` (default 3) answers.
    AgentCsatBelow {
        /// The rule's name.
        name: String,
        /// The threshold, 0 to 1.
        share: f64,
        /// The least answers that count.
        #[serde(default = "three")]
        min_responses: i64,
        /// The window, minutes.
        #[serde(default = "day")]
        window_minutes: i64,
    },
}

impl AlertRule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        match self {
            Self::QueueWaitAbove { name, .. }
            | Self::SlaBreachesAbove { name, .. }
            | Self::IntentSurge { name, .. }
            | Self::AgentCsatBelow { name, .. } => name,
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty name, a window under a minute or a share outside 0 to 1.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| {
            Err(Error::Config {
                reason: format!("analytics alert {:?}: {why}", self.name()),
            })
        };
        if self.name().trim().is_empty() {
            return bad("a rule needs a name");
        }
        match self {
            Self::QueueWaitAbove { window_minutes, .. }
            | Self::IntentSurge { window_minutes, .. }
            | Self::AgentCsatBelow { window_minutes, .. }
                if *window_minutes < 1 || *window_minutes > 1440 =>
            {
                bad("window_minutes is from 1 to 1440")
            }
            Self::AgentCsatBelow { share, .. } if !(0.0..=1.0).contains(share) => {
                bad("share is from 0 to 1")
            }
            _ => Ok(()),
        }
    }
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The tenant.
    pub tenant: String,
    /// The rule's name.
    pub rule: String,
    /// What it fired for: `""` (the tenant), an intent, an agent's id.
    pub subject: String,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The value that crossed the threshold.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// When.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
struct Episode {
    firing: bool,
    last_fired: Option<DateTime<Utc>>,
}

/// Evaluates rules and remembers episodes.
#[derive(Debug)]
pub struct AlertEngine {
    rules: Vec<AlertRule>,
    cooldown: Duration,
    episodes: HashMap<(String, String), Episode>,
}

struct Firing {
    subject: String,
    value: f64,
    threshold: f64,
    message: String,
}

fn sum(rows: &[RollupRow], metric: Metric) -> BTreeMap<String, Stat> {
    let mut out: BTreeMap<String, Stat> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.metric == metric) {
        out.entry(r.key.clone()).or_default().merge(r.stat);
    }
    out
}

fn total(rows: &[RollupRow], metric: Metric) -> Stat {
    let mut s = Stat::default();
    for r in rows.iter().filter(|r| r.metric == metric) {
        s.merge(r.stat);
    }
    s
}

impl AlertEngine {
    /// Rules with a cool-down between firings of one rule and subject.
    pub fn new(rules: Vec<AlertRule>, cooldown: Duration) -> Self {
        Self {
            rules,
            cooldown,
            episodes: HashMap::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    async fn window(
        store: &dyn RollupStore,
        tenant: &str,
        dim: Dim,
        metrics: &[Metric],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RollupRow>> {
        store
            .query(&RollupQuery {
                tenant: tenant.to_owned(),
                grain: Grain::Minute,
                from,
                to,
                dim,
                metrics: metrics.to_vec(),
            })
            .await
    }

    async fn check(
        rule: &AlertRule,
        store: &dyn RollupStore,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Firing>> {
        // Whole minutes up to now (the minute in progress counts).
        let end = now + Duration::minutes(1);
        let mut out = Vec::new();
        match rule {
            AlertRule::QueueWaitAbove {
                seconds,
                window_minutes,
                ..
            } => {
                let rows = Self::window(
                    store,
                    tenant,
                    Dim::All,
                    &[Metric::QueueWait],
                    end - Duration::minutes(*window_minutes),
                    end,
                )
                .await?;
                if let Some(mean) = total(&rows, Metric::QueueWait).mean() {
                    let secs = mean / 1000.0;
                    if secs > *seconds {
                        out.push(Firing {
                            subject: String::new(),
                            value: secs,
                            threshold: *seconds,
                            message: format!(
                                "mean queue wait {secs:.0} s over the last {window_minutes} min is above {seconds:.0} s"
                            ),
                        });
                    }
                }
            }
            AlertRule::SlaBreachesAbove { count, .. } => {
                let rows = Self::window(
                    store,
                    tenant,
                    Dim::All,
                    &[Metric::SlaBreaches, Metric::ResponseBreaches],
                    end - Duration::minutes(60),
                    end,
                )
                .await?;
                let n = total(&rows, Metric::SlaBreaches).count
                    + total(&rows, Metric::ResponseBreaches).count;
                if n > *count {
                    out.push(Firing {
                        subject: String::new(),
                        value: n as f64,
                        threshold: *count as f64,
                        message: format!("{n} SLA breaches in the last hour (limit {count})"),
                    });
                }
            }
            AlertRule::IntentSurge {
                intent,
                rise_pct,
                min_volume,
                window_minutes,
                require_containment_drop,
                ..
            } => {
                let w = Duration::minutes(*window_minutes);
                let now_rows = Self::window(
                    store,
                    tenant,
                    Dim::Intent,
                    &[Metric::BotAnswers],
                    end - w,
                    end,
                )
                .await?;
                let before_rows = Self::window(
                    store,
                    tenant,
                    Dim::Intent,
                    &[Metric::BotAnswers],
                    end - w * 2,
                    end - w,
                )
                .await?;
                let bots = [Metric::BotSessions, Metric::BotContained];
                let c_now = Self::window(store, tenant, Dim::All, &bots, end - w, end).await?;
                let c_before =
                    Self::window(store, tenant, Dim::All, &bots, end - w * 2, end - w).await?;
                let rate = |rows: &[RollupRow]| {
                    let s = total(rows, Metric::BotSessions).count;
                    (s > 0).then(|| total(rows, Metric::BotContained).count as f64 / s as f64)
                };
                let (rate_now, rate_before) = (rate(&c_now), rate(&c_before));
                let containment_fell = match (rate_now, rate_before) {
                    (Some(a), Some(b)) => a < b,
                    _ => false,
                };
                let volumes = sum(&now_rows, Metric::BotAnswers);
                let before = sum(&before_rows, Metric::BotAnswers);
                for (name, stat) in volumes {
                    if intent.as_ref().is_some_and(|i| *i != name) {
                        continue;
                    }
                    let was = before.get(&name).map(|s| s.count).unwrap_or(0);
                    let rise = if was == 0 {
                        f64::INFINITY
                    } else {
                        (stat.count - was) as f64 * 100.0 / was as f64
                    };
                    if stat.count >= *min_volume
                        && rise >= *rise_pct
                        && (!require_containment_drop || containment_fell)
                    {
                        let shown = if rise.is_finite() {
                            format!("{rise:.0}%")
                        } else {
                            "from nothing".into()
                        };
                        out.push(Firing {
                            message: format!(
                                "intent {name}: {} in the last {window_minutes} min, up {shown} on the {window_minutes} min before{}",
                                stat.count,
                                match (rate_now, rate_before) {
                                    (Some(a), Some(b)) if containment_fell => format!(
                                        ", while bot containment fell from {:.0}% to {:.0}%",
                                        b * 100.0,
                                        a * 100.0
                                    ),
                                    _ => String::new(),
                                }
                            ),
                            subject: name,
                            value: if rise.is_finite() { rise } else { 100.0 * stat.count as f64 },
                            threshold: *rise_pct,
                        });
                    }
                }
            }
            AlertRule::AgentCsatBelow {
                share,
                min_responses,
                window_minutes,
                ..
            } => {
                let rows = Self::window(
                    store,
                    tenant,
                    Dim::Agent,
                    &[Metric::CsatResponses, Metric::CsatSatisfied],
                    end - Duration::minutes(*window_minutes),
                    end,
                )
                .await?;
                let satisfied = sum(&rows, Metric::CsatSatisfied);
                for (agent, answers) in sum(&rows, Metric::CsatResponses) {
                    if answers.count < *min_responses {
                        continue;
                    }
                    let good = satisfied.get(&agent).map(|s| s.count).unwrap_or(0);
                    let csat = good as f64 / answers.count as f64;
                    if csat < *share {
                        out.push(Firing {
                            message: format!(
                                "agent {agent}: CSAT {:.0}% from {} answers is below {:.0}%",
                                csat * 100.0,
                                answers.count,
                                share * 100.0
                            ),
                            subject: agent,
                            value: csat,
                            threshold: *share,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Evaluates every rule at `now`: the alerts that start an episode (and are past the
    /// cool-down). Subjects no longer firing end their episodes.
    ///
    /// # Errors
    /// Store errors.
    pub async fn evaluate(
        &mut self,
        store: &dyn RollupStore,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Alert>> {
        let mut fired = Vec::new();
        for rule in &self.rules {
            let firing = Self::check(rule, store, tenant, now).await?;
            let name = rule.name().to_owned();
            for e in self
                .episodes
                .iter_mut()
                .filter(|((r, s), _)| *r == name && !firing.iter().any(|f| f.subject == *s))
            {
                e.1.firing = false;
            }
            for f in firing {
                let episode = self
                    .episodes
                    .entry((name.clone(), f.subject.clone()))
                    .or_default();
                if episode.firing {
                    continue;
                }
                episode.firing = true;
                if episode.last_fired.is_some_and(|t| now - t < self.cooldown) {
                    continue;
                }
                episode.last_fired = Some(now);
                fired.push(Alert {
                    tenant: tenant.to_owned(),
                    rule: name.clone(),
                    subject: f.subject,
                    message: f.message,
                    value: f.value,
                    threshold: f.threshold,
                    at: now,
                });
            }
        }
        Ok(fired)
    }
}

/// Posts alerts as JSON to a webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook at `url` (http, or https with the `tls` feature).
    ///
    /// # Errors
    /// [`Error::Config`] when the HTTP client cannot be built.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(10))
            .build()
            .map_err(|e| Error::Config {
                reason: format!("alert webhook client: {e}"),
            })?;
        Ok(Self {
            url: url.into(),
            client,
        })
    }

    /// Posts one alert; a non-2xx answer is an error.
    ///
    /// # Errors
    /// [`Error::Other`] when the request fails or is refused.
    pub async fn send(&self, alert: &Alert) -> Result<()> {
        let response = self
            .client
            .post(&self.url)
            .json(alert)
            .send()
            .await
            .map_err(|e| Error::Other(Box::new(e)))?;
        if !response.status().is_success() {
            return Err(Error::Other(
                format!("alert webhook answered {}", response.status()).into(),
            ));
        }
        Ok(())
    }
}
