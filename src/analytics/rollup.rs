//! Rollups: counters per tenant, time bucket (minute, hour, day), dimension and metric.
//!
//! Every observation is a [`Stat`] (a count, a sum and a maximum, all integers: durations in
//! milliseconds, survey answers in points, sentiment in thousandths), so adding the same
//! observations in any order, flushed in any batches, gives exactly the same rows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The width of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    /// One minute (UTC).
    Minute,
    /// Half an hour (UTC), the staffing interval.
    HalfHour,
    /// One hour (UTC).
    Hour,
    /// One calendar day in the analytics time zone.
    Day,
}

impl Grain {
    /// Every grain, finest first.
    pub const ALL: [Grain; 4] = [Grain::Minute, Grain::HalfHour, Grain::Hour, Grain::Day];

    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::HalfHour => "half_hour",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Parses [`Grain::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The start of the bucket holding `at`, as seconds since the Unix epoch; days start at
    /// midnight in `tz`.
    pub fn floor(self, at: DateTime<Utc>, tz: chrono_tz::Tz) -> i64 {
        let t = at.timestamp();
        match self {
            Self::Minute => t.div_euclid(60) * 60,
            Self::HalfHour => t.div_euclid(1800) * 1800,
            Self::Hour => t.div_euclid(3600) * 3600,
            Self::Day => {
                let date = at.with_timezone(&tz).date_naive();
                let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
                tz.from_local_datetime(&midnight)
                    .earliest()
                    .map(|d| d.timestamp())
                    // A zone whose midnight is skipped: the hour after it.
                    .unwrap_or(t.div_euclid(3600) * 3600)
            }
        }
    }
}

/// What a rollup row is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// The whole tenant (key `""`).
    All,
    /// The channel kind (`web_chat`, `we_chat`, `email`, ...).
    Channel,
    /// The queue: the first skill a conversation waits for, `general` without one.
    Queue,
    /// The agent (their id).
    Agent,
    /// The bot's intent.
    Intent,
    /// The reason of a hand-over.
    Reason,
    /// The SLA target of a ticket (`first_response`, `next_response`, `resolution`).
    Sla,
}

impl Dim {
    /// Every dimension.
    pub const ALL: [Dim; 7] = [
        Dim::All,
        Dim::Channel,
        Dim::Queue,
        Dim::Agent,
        Dim::Intent,
        Dim::Reason,
        Dim::Sla,
    ];

    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Channel => "channel",
            Self::Queue => "queue",
            Self::Agent => "agent",
            Self::Intent => "intent",
            Self::Reason => "reason",
            Self::Sla => "sla",
        }
    }

    /// Parses [`Dim::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A counter of the rollups. The module documentation defines each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Metric {
            $($(#[$doc])* $variant,)*
        }

        impl Metric {
            /// Every metric.
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The stable lower-case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

metrics! {
    /// Conversations opened.
    Conversations = "conversations",
    /// Customer messages received.
    MessagesIn = "messages_in",
    /// Bot messages sent.
    MessagesBot = "messages_bot",
    /// Agent messages sent.
    MessagesAgent = "messages_agent",
    /// System notices sent.
    MessagesSystem = "messages_system",
    /// First response time, ms (one per conversation).
    FirstResponse = "first_response",
    /// First response time in business hours, ms.
    FirstResponseBusiness = "first_response_business",
    /// Reply time, ms (one per agent reply after the first).
    ReplyTime = "reply_time",
    /// Customer messages left unanswered longer than the reply target (at the deadline).
    ResponseBreaches = "response_breaches",
    /// Resolutions, with the resolution time in ms.
    Resolutions = "resolutions",
    /// Resolution time in business hours, ms.
    ResolutionBusiness = "resolution_business",
    /// First-contact resolutions (a reopen takes one back).
    Fcr = "fcr",
    /// Reopened conversations.
    Reopens = "reopens",
    /// Handle time of one agent's stint on a conversation, ms.
    HandleTime = "handle_time",
    /// Assignments to an agent.
    Assignments = "assignments",
    /// Conversations moved from one agent to another (counted for the agent who had it).
    Transfers = "transfers",
    /// Entries into the queue.
    Queued = "queued",
    /// Queue wait until an agent took the conversation, ms.
    QueueWait = "queue_wait",
    /// Conversations taken within the answer target.
    AnsweredInTarget = "answered_in_target",
    /// Customers who left the queue, with how long they had waited, ms.
    Abandoned = "abandoned",
    /// Bot answers (by intent).
    BotAnswers = "bot_answers",
    /// Hand-overs requested (by reason).
    Handoffs = "handoffs",
    /// Bot sessions settled (contained or escalated).
    BotSessions = "bot_sessions",
    /// Bot sessions that ended without a human.
    BotContained = "bot_contained",
    /// Bot sessions handed to a human.
    BotEscalated = "bot_escalated",
    /// Offers made to agents.
    Offers = "offers",
    /// Offers rejected.
    OffersRejected = "offers_rejected",
    /// Offers that lapsed.
    OffersExpired = "offers_expired",
    /// Negative customer messages.
    SentimentNegative = "sentiment_negative",
    /// Neutral customer messages.
    SentimentNeutral = "sentiment_neutral",
    /// Positive customer messages.
    SentimentPositive = "sentiment_positive",
    /// Sentiment change over an agent's stint, thousandths (last message minus first).
    SentimentDelta = "sentiment_delta",
    /// Stints that ended calmer than they began.
    SentimentImproved = "sentiment_improved",
    /// Stints that ended angrier than they began.
    SentimentWorsened = "sentiment_worsened",
    /// CSAT answers, sum of points.
    CsatResponses = "csat_responses",
    /// CSAT answers of 4 or 5.
    CsatSatisfied = "csat_satisfied",
    /// NPS answers, sum of points.
    NpsResponses = "nps_responses",
    /// NPS answers of 9 or 10.
    NpsPromoters = "nps_promoters",
    /// NPS answers of 0 to 6.
    NpsDetractors = "nps_detractors",
    /// Customer-effort answers, sum of points.
    CesResponses = "ces_responses",
    /// Tickets opened.
    TicketsOpened = "tickets_opened",
    /// Ticket SLA breaches (by target).
    SlaBreaches = "sla_breaches",
    /// Ticket SLA warnings (by target).
    SlaWarnings = "sla_warnings",
    /// Ticket escalations.
    Escalations = "escalations",
    /// Messages that became dead letters.
    DeadLetters = "dead_letters",
}

impl Metric {
    /// Parses [`Metric::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A count, a sum and a maximum of observations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// How many.
    pub count: i64,
    /// Their sum (ms, points or thousandths; 0 for plain counts).
    pub sum: i64,
    /// The largest.
    pub max: i64,
}

impl Stat {
    /// One observation of `value`.
    pub fn one(value: i64) -> Self {
        Self {
            count: 1,
            sum: value,
            max: value,
        }
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: Stat) {
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The mean, when there was an observation.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// The key of one rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// The tenant.
    pub tenant: Arc<str>,
    /// The grain.
    pub grain: Grain,
    /// The bucket start, seconds since the epoch.
    pub bucket: i64,
    /// The dimension.
    pub dim: Dim,
    /// The dimension's value (`""` for [`Dim::All`]).
    pub key: Arc<str>,
    /// The metric.
    pub metric: Metric,
}

/// One rollup row as stored and queried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupRow {
    /// The tenant.
    pub tenant: String,
    /// The grain.
    pub grain: Grain,
    /// The bucket start.
    pub bucket: DateTime<Utc>,
    /// The dimension.
    pub dim: Dim,
    /// The dimension's value.
    pub key: String,
    /// The metric.
    pub metric: Metric,
    /// The figures.
    pub stat: Stat,
}

impl RollupRow {
    /// The row of a key and its stat.
    pub fn new(key: &RollupKey, stat: Stat) -> Self {
        Self {
            tenant: key.tenant.to_string(),
            grain: key.grain,
            bucket: DateTime::from_timestamp(key.bucket, 0).unwrap_or_default(),
            dim: key.dim,
            key: key.key.to_string(),
            metric: key.metric,
            stat,
        }
    }
}

/// A set of rollup rows being summed.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    rows: HashMap<RollupKey, Stat>,
}

impl Rollups {
    /// Adds a stat to a row.
    pub fn add(&mut self, key: RollupKey, stat: Stat) {
        self.rows.entry(key).or_default().merge(stat);
    }

    /// Whether there is nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The rows, sorted by key.
    pub fn rows(&self) -> Vec<RollupRow> {
        let mut keys: Vec<_> = self.rows.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.into_iter()
            .map(|(k, s)| RollupRow::new(k, *s))
            .collect()
    }

    /// Takes everything, leaving it empty.
    pub fn take(&mut self) -> Rollups {
        std::mem::take(self)
    }

    /// Minute rows folded into minute, hour and day rows (`tz` for day boundaries).
    pub fn with_coarser_grains(&self, tz: chrono_tz::Tz) -> Rollups {
        let mut out = Rollups::default();
        for (k, s) in &self.rows {
            if k.grain != Grain::Minute {
                out.add(k.clone(), *s);
                continue;
            }
            let at = DateTime::from_timestamp(k.bucket, 0).unwrap_or_default();
            for grain in Grain::ALL {
                out.add(
                    RollupKey {
                        grain,
                        bucket: grain.floor(at, tz),
                        ..k.clone()
                    },
                    *s,
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_to_their_grain() {
        let at = Utc.with_ymd_and_hms(2026, 11, 11, 17, 42, 31).unwrap();
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(
            Grain::Minute.floor(at, tz),
            Utc.with_ymd_and_hms(2026, 11, 11, 17, 42, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            Grain::Hour.floor(at, tz),
            Utc.with_ymd_and_hms(2026, 11, 11, 17, 0, 0)
                .unwrap()
                .timestamp()
        );
        // 17:42 UTC is 01:42 on the 12th in Shanghai: the day began at 16:00 UTC.
        assert_eq!(
            Grain::Day.floor(at, tz),
            Utc.with_ymd_and_hms(2026, 11, 11, 16, 0, 0)
                .unwrap()
                .timestamp()
        );
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(*m));
        }
    }
}
