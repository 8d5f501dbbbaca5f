//! Agent scorecards: each agent's figures over a period beside the team's (seed 000's "能力雷达图",
//! the capability radar).

use std::collections::BTreeMap;

use serde::Serialize;

use super::rollup::{Metric, RollupRow, Stat};

/// One agent's (or the team's) figures over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scorecard {
    /// The agent's id (`""` for the team).
    pub agent: String,
    /// The agent's name, when known.
    pub name: String,
    /// Conversations assigned to them.
    pub handled: i64,
    /// Conversations they resolved.
    pub resolved: i64,
    /// Mean first response time, seconds.
    pub frt_secs: Option<f64>,
    /// Mean handle time of a stint, seconds.
    pub aht_secs: Option<f64>,
    /// Share of CSAT answers of 4 or 5.
    pub csat: Option<f64>,
    /// CSAT answers.
    pub csat_responses: i64,
    /// Share of resolutions at first contact.
    pub fcr: Option<f64>,
    /// Conversations moved from them to another agent.
    pub transfers: i64,
    /// Mean change of the customer's sentiment over a stint (-2 to 2).
    pub sentiment_delta: Option<f64>,
    /// Stints that ended calmer.
    pub sentiment_improved: i64,
    /// Stints that ended angrier.
    pub sentiment_worsened: i64,
    /// Offers rejected or let lapse.
    pub offers_missed: i64,
}

fn ratio(num: i64, den: i64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Scorecard {
    /// The figures of one key from its rows (all of one dimension value).
    pub fn from_stats(agent: &str, stats: &BTreeMap<Metric, Stat>) -> Self {
        let get = |m: Metric| stats.get(&m).copied().unwrap_or_default();
        let resolutions = get(Metric::Resolutions);
        Self {
            agent: agent.to_owned(),
            name: String::new(),
            handled: get(Metric::Assignments).count,
            resolved: resolutions.count,
            frt_secs: get(Metric::FirstResponse).mean().map(|ms| ms / 1000.0),
            aht_secs: get(Metric::HandleTime).mean().map(|ms| ms / 1000.0),
            csat: ratio(
                get(Metric::CsatSatisfied).count,
                get(Metric::CsatResponses).count,
            ),
            csat_responses: get(Metric::CsatResponses).count,
            fcr: ratio(get(Metric::Fcr).count, resolutions.count),
            transfers: get(Metric::Transfers).count,
            sentiment_delta: get(Metric::SentimentDelta).mean().map(|m| m / 1000.0),
            sentiment_improved: get(Metric::SentimentImproved).count,
            sentiment_worsened: get(Metric::SentimentWorsened).count,
            offers_missed: get(Metric::OffersRejected).count + get(Metric::OffersExpired).count,
        }
    }

    /// Scorecards per agent from rows of the agent dimension, summed over their buckets.
    pub fn per_agent(rows: &[RollupRow]) -> Vec<Scorecard> {
        let mut by: BTreeMap<&str, BTreeMap<Metric, Stat>> = BTreeMap::new();
        for r in rows {
            by.entry(r.key.as_str())
                .or_default()
                .entry(r.metric)
                .or_default()
                .merge(r.stat);
        }
        by.into_iter()
            .map(|(agent, stats)| Self::from_stats(agent, &stats))
            .collect()
    }

    /// The team's card: every agent's figures together (handled, resolved and counts are sums;
    /// the rest are means over all the team's observations).
    pub fn team(rows: &[RollupRow]) -> Scorecard {
        let mut stats: BTreeMap<Metric, Stat> = BTreeMap::new();
        for r in rows {
            stats.entry(r.metric).or_default().merge(r.stat);
        }
        Self::from_stats("", &stats)
    }

    /// The radar: each axis 0 to 100, the agent against the team's mean agent (50 = as the team;
    /// higher is better on every axis). Axes: volume, speed (FRT), efficiency (AHT),
    /// satisfaction (CSAT), resolution (FCR), calm (sentiment).
    pub fn radar(&self, team: &Scorecard, agents: usize) -> Vec<(&'static str, f64)> {
        let agents = agents.max(1) as f64;
        // Higher is better: 50 * mine / team's, capped at 100.
        let more = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
            (Some(m), Some(t)) if t > 0.0 => (50.0 * m / t).clamp(0.0, 100.0),
            (Some(_), _) => 50.0,
            _ => 0.0,
        };
        // Lower is better: 50 * team's / mine.
        let less = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
            (Some(m), Some(t)) if m > 0.0 => (50.0 * t / m).clamp(0.0, 100.0),
            (Some(_), _) => 50.0,
            _ => 0.0,
        };
        vec![
            (
                "volume",
                more(
                    Some(self.handled as f64),
                    Some(team.handled as f64 / agents),
                ),
            ),
            ("speed", less(self.frt_secs, team.frt_secs)),
            ("efficiency", less(self.aht_secs, team.aht_secs)),
            ("satisfaction", more(self.csat, team.csat)),
            ("resolution", more(self.fcr, team.fcr)),
            (
                "calm",
                more(
                    self.sentiment_delta.map(|d| d + 2.0),
                    team.sentiment_delta.map(|d| d + 2.0),
                ),
            ),
        ]
    }
}
