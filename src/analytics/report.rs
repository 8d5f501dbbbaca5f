//! The supervisor's reports, read from the rollups: live tiles, the day by hour, the peak-hour
//! heat map, top intents and hand-over reasons with their trend, tomorrow's staffing and the
//! agents' scorecards. Each is a [`Table`] (the dashboard draws it, and exports it as CSV).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::Analytics;
use super::forecast::forecast;
use super::rollup::{Dim, Grain, Metric, RollupRow, Stat};
use super::scorecard::Scorecard;
use super::staffing::{Staffing, StaffingInput};
use super::store::RollupQuery;
use crate::engine::Engine;
use crate::error::Result;

/// A table of figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Its id (`tiles`, `hours`, `heatmap`, `intents`, `reasons`, `staffing`, `scorecards`,
    /// `alerts`).
    pub id: &'static str,
    /// Column ids.
    pub columns: Vec<&'static str>,
    /// Rows of values (numbers, strings or null).
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The table as CSV (RFC 4180: a header line of column ids, fields quoted when needed).
    pub fn to_csv(&self) -> String {
        fn field(v: &Value) -> String {
            let s = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{}", (f * 1000.0).round() / 1000.0),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            // A leading = + - @ would be a formula in a spreadsheet.
            let s = if s.starts_with(['=', '+', '@'])
                || (s.starts_with('-') && s.parse::<f64>().is_err())
            {
                format!("'{s}")
            } else {
                s
            };
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        }
        let mut out = self.columns.join(",");
        out.push_str("\r\n");
        for row in &self.rows {
            let line: Vec<String> = row.iter().map(field).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn totals(rows: &[RollupRow]) -> BTreeMap<Metric, Stat> {
    let mut out: BTreeMap<Metric, Stat> = BTreeMap::new();
    for r in rows {
        out.entry(r.metric).or_default().merge(r.stat);
    }
    out
}

fn rate(num: i64, den: i64) -> Value {
    if den > 0 {
        json!(num as f64 / den as f64)
    } else {
        Value::Null
    }
}

fn mean_secs(s: Option<&Stat>) -> Value {
    match s.and_then(Stat::mean) {
        Some(ms) => json!(ms / 1000.0),
        None => Value::Null,
    }
}

/// Everything the dashboard shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The tables.
    pub tables: Vec<Table>,
}

impl Analytics {
    async fn rows(
        &self,
        grain: Grain,
        dim: Dim,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        metrics: &[Metric],
    ) -> Result<Vec<RollupRow>> {
        self.query(&RollupQuery {
            tenant: self.tenant().to_owned(),
            grain,
            from,
            to,
            dim,
            metrics: metrics.to_vec(),
        })
        .await
    }

    fn local_midnight(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        DateTime::from_timestamp(Grain::Day.floor(at, self.timezone()), 0).unwrap_or(at)
    }

    /// The live tiles: the queue and agents now (from the router), and today's figures.
    ///
    /// # Errors
    /// Store errors.
    pub async fn tiles(&self, engine: &Engine, now: DateTime<Utc>) -> Result<Table> {
        let snapshot = engine
            .queue_snapshot(std::time::Duration::from_millis(500))
            .await
            .ok();
        let depth = snapshot.as_ref().map(|s| s.queued.len()).unwrap_or(0);
        let longest = snapshot
            .as_ref()
            .and_then(|s| s.queued.iter().map(|q| q.task.enqueued_at).min())
            .map(|t| (now - t).num_seconds().max(0))
            .unwrap_or(0);
        let online = snapshot
            .as_ref()
            .map(|s| {
                s.agents
                    .iter()
                    .filter(|a| a.presence == cs_core::Presence::Online)
                    .count()
            })
            .unwrap_or(0);
        let busy = snapshot
            .as_ref()
            .map(|s| s.agents.iter().filter(|a| !a.tasks.is_empty()).count())
            .unwrap_or(0);
        let today = self.local_midnight(now);
        let t = totals(
            &self
                .rows(Grain::Day, Dim::All, today, today + Duration::days(1), &[])
                .await?,
        );
        let get = |m: Metric| t.get(&m).copied().unwrap_or_default();
        let nps = {
            let n = get(Metric::NpsResponses).count;
            if n > 0 {
                json!(
                    (get(Metric::NpsPromoters).count - get(Metric::NpsDetractors).count) as f64
                        * 100.0
                        / n as f64
                )
            } else {
                Value::Null
            }
        };
        let rows = vec![
            ("queue_depth", json!(depth)),
            ("longest_wait_secs", json!(longest)),
            ("agents_online", json!(online)),
            ("agents_busy", json!(busy)),
            ("conversations", json!(get(Metric::Conversations).count)),
            ("messages_in", json!(get(Metric::MessagesIn).count)),
            (
                "containment",
                rate(
                    get(Metric::BotContained).count,
                    get(Metric::BotSessions).count,
                ),
            ),
            (
                "handoff_rate",
                rate(
                    get(Metric::BotEscalated).count,
                    get(Metric::BotSessions).count,
                ),
            ),
            ("frt_secs", mean_secs(t.get(&Metric::FirstResponse))),
            ("reply_secs", mean_secs(t.get(&Metric::ReplyTime))),
            ("aht_secs", mean_secs(t.get(&Metric::HandleTime))),
            ("resolution_secs", mean_secs(t.get(&Metric::Resolutions))),
            ("resolutions", json!(get(Metric::Resolutions).count)),
            (
                "fcr",
                rate(get(Metric::Fcr).count, get(Metric::Resolutions).count),
            ),
            (
                "service_level",
                rate(
                    get(Metric::AnsweredInTarget).count,
                    get(Metric::Queued).count,
                ),
            ),
            ("queue_wait_secs", mean_secs(t.get(&Metric::QueueWait))),
            (
                "abandonment",
                rate(get(Metric::Abandoned).count, get(Metric::Queued).count),
            ),
            (
                "transfer_rate",
                rate(get(Metric::Transfers).count, get(Metric::Assignments).count),
            ),
            (
                "csat",
                rate(
                    get(Metric::CsatSatisfied).count,
                    get(Metric::CsatResponses).count,
                ),
            ),
            ("nps", nps),
            (
                "ces",
                get(Metric::CesResponses)
                    .mean()
                    .map(|m| json!(m))
                    .unwrap_or(Value::Null),
            ),
            (
                "sla_breaches",
                json!(get(Metric::SlaBreaches).count + get(Metric::ResponseBreaches).count),
            ),
            ("tickets_opened", json!(get(Metric::TicketsOpened).count)),
            (
                "negative_share",
                rate(
                    get(Metric::SentimentNegative).count,
                    get(Metric::SentimentNegative).count
                        + get(Metric::SentimentNeutral).count
                        + get(Metric::SentimentPositive).count,
                ),
            ),
            ("dead_letters", json!(get(Metric::DeadLetters).count)),
        ];
        Ok(Table {
            id: "tiles",
            columns: vec!["metric", "value"],
            rows: rows.into_iter().map(|(k, v)| vec![json!(k), v]).collect(),
        })
    }

    /// The last 24 hours by hour: conversations per channel, FRT, service level and breaches.
    ///
    /// # Errors
    /// Store errors.
    pub async fn hours(&self, now: DateTime<Utc>) -> Result<Table> {
        let end = DateTime::from_timestamp(Grain::Hour.floor(now, self.timezone()), 0)
            .unwrap_or(now)
            + Duration::hours(1);
        let start = end - Duration::hours(24);
        let by_channel = self
            .rows(
                Grain::Hour,
                Dim::Channel,
                start,
                end,
                &[Metric::Conversations],
            )
            .await?;
        let all = self
            .rows(
                Grain::Hour,
                Dim::All,
                start,
                end,
                &[
                    Metric::Conversations,
                    Metric::FirstResponse,
                    Metric::SlaBreaches,
                    Metric::ResponseBreaches,
                    Metric::Queued,
                    Metric::AnsweredInTarget,
                ],
            )
            .await?;
        let channels = [
            "web_chat",
            "we_chat",
            "whats_app",
            "telegram",
            "sms",
            "email",
            "voice",
            "webhook",
        ];
        let mut rows = Vec::new();
        let tz = self.timezone();
        for h in 0..24 {
            let bucket = start + Duration::hours(h);
            let at = |m: Metric| {
                all.iter()
                    .find(|r| r.bucket == bucket && r.metric == m)
                    .map(|r| r.stat)
            };
            let mut row = vec![json!(
                bucket.with_timezone(&tz).format("%m-%d %H:00").to_string()
            )];
            for c in channels {
                let n = by_channel
                    .iter()
                    .find(|r| r.bucket == bucket && r.key == c)
                    .map(|r| r.stat.count)
                    .unwrap_or(0);
                row.push(json!(n));
            }
            row.push(json!(
                at(Metric::Conversations).map(|s| s.count).unwrap_or(0)
            ));
            row.push(mean_secs(at(Metric::FirstResponse).as_ref()));
            row.push(rate(
                at(Metric::AnsweredInTarget).map(|s| s.count).unwrap_or(0),
                at(Metric::Queued).map(|s| s.count).unwrap_or(0),
            ));
            row.push(json!(
                at(Metric::SlaBreaches).map(|s| s.count).unwrap_or(0)
                    + at(Metric::ResponseBreaches).map(|s| s.count).unwrap_or(0)
            ));
            rows.push(row);
        }
        let mut columns = vec!["hour"];
        columns.extend(channels);
        columns.extend(["total", "frt_secs", "service_level", "sla_breaches"]);
        Ok(Table {
            id: "hours",
            columns,
            rows,
        })
    }

    /// Conversations by local weekday and hour over the last four weeks (the peak hours).
    ///
    /// # Errors
    /// Store errors.
    pub async fn heatmap(&self, now: DateTime<Utc>) -> Result<Table> {
        let tz = self.timezone();
        let end = self.local_midnight(now) + Duration::days(1);
        let rows = self
            .rows(
                Grain::Hour,
                Dim::All,
                end - Duration::days(28),
                end,
                &[Metric::Conversations],
            )
            .await?;
        let mut grid = [[0i64; 24]; 7];
        for r in rows {
            let local = r.bucket.with_timezone(&tz);
            grid[local.weekday().num_days_from_monday() as usize][local.hour() as usize] +=
                r.stat.count;
        }
        let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut columns = vec!["weekday"];
        const HOURS: [&str; 24] = [
            "h00", "h01", "h02", "h03", "h04", "h05", "h06", "h07", "h08", "h09", "h10", "h11",
            "h12", "h13", "h14", "h15", "h16", "h17", "h18", "h19", "h20", "h21", "h22", "h23",
        ];
        columns.extend(HOURS);
        Ok(Table {
            id: "heatmap",
            columns,
            rows: grid
                .iter()
                .zip(days)
                .map(|(hours, d)| {
                    let mut row = vec![json!(d)];
                    row.extend(hours.iter().map(|n| json!(n)));
                    row
                })
                .collect(),
        })
    }

    /// The top `n` keys of `dim` by `metric` over the last 7 days against the 7 before.
    async fn top(
        &self,
        id: &'static str,
        dim: Dim,
        metric: Metric,
        n: usize,
        now: DateTime<Utc>,
    ) -> Result<Table> {
        let end = self.local_midnight(now) + Duration::days(1);
        let week = Duration::days(7);
        let count = |rows: Vec<RollupRow>| {
            let mut m: BTreeMap<String, i64> = BTreeMap::new();
            for r in rows {
                *m.entry(r.key).or_default() += r.stat.count;
            }
            m
        };
        let this = count(
            self.rows(Grain::Day, dim, end - week, end, &[metric])
                .await?,
        );
        let last = count(
            self.rows(Grain::Day, dim, end - week * 2, end - week, &[metric])
                .await?,
        );
        let mut ranked: Vec<(String, i64)> = this.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(Table {
            id,
            columns: vec!["key", "this_week", "last_week", "trend_pct"],
            rows: ranked
                .into_iter()
                .take(n)
                .map(|(k, v)| {
                    let before = last.get(&k).copied().unwrap_or(0);
                    let trend = if before > 0 {
                        json!(((v - before) as f64 * 100.0 / before as f64).round())
                    } else {
                        Value::Null
                    };
                    vec![json!(k), json!(v), json!(before), trend]
                })
                .collect(),
        })
    }

    /// Tomorrow's staffing per half-hour: arrivals for humans forecast from the last four weeks
    /// ([`super::forecast`]), the AHT of the last four weeks (5 minutes without history), and
    /// Erlang C at the configured service level, answer target, shrinkage and chat concurrency.
    ///
    /// # Errors
    /// Store errors.
    pub async fn staffing(&self, now: DateTime<Utc>) -> Result<Table> {
        let config = self.config();
        let tz = self.timezone();
        let tomorrow = self.local_midnight(now) + Duration::days(1);
        let start = tomorrow - Duration::weeks(4);
        let history_rows = self
            .rows(Grain::HalfHour, Dim::All, start, now, &[Metric::Queued])
            .await?;
        let aht_rows = self
            .rows(
                Grain::Day,
                Dim::All,
                start,
                now + Duration::days(1),
                &[Metric::HandleTime],
            )
            .await?;
        let aht = totals(&aht_rows)
            .get(&Metric::HandleTime)
            .and_then(Stat::mean)
            .map(|ms| (ms / 1000.0).max(1.0))
            .unwrap_or(300.0);
        let history: BTreeMap<DateTime<Utc>, f64> = history_rows
            .iter()
            .map(|r| (r.bucket, r.stat.count as f64))
            .collect();
        let slots: Vec<DateTime<Utc>> = (0..48)
            .map(|i| tomorrow + Duration::minutes(30 * i))
            .collect();
        let arrivals = forecast(&history, now, &slots, 4);
        let target = config.service_level;
        let within = config.answer_target.as_secs_f64();
        let rows = slots
            .iter()
            .zip(arrivals)
            .map(|(slot, calls)| {
                let input = StaffingInput::new(calls, 1800.0, aht, target, within)
                    .with_shrinkage(config.shrinkage)
                    .with_concurrency(config.chat_concurrency);
                let plan = Staffing::erlang_c(&input).ok();
                vec![
                    json!(slot.with_timezone(&tz).format("%H:%M").to_string()),
                    json!((calls * 10.0).round() / 10.0),
                    json!(aht.round()),
                    plan.map(|p| json!(p.agents)).unwrap_or(Value::Null),
                    plan.map(|p| json!(p.on_floor)).unwrap_or(Value::Null),
                    plan.map(|p| json!(p.service_level)).unwrap_or(Value::Null),
                    plan.map(|p| json!(p.p_wait)).unwrap_or(Value::Null),
                    plan.map(|p| json!(p.asa_secs)).unwrap_or(Value::Null),
                    plan.map(|p| json!(p.occupancy)).unwrap_or(Value::Null),
                ]
            })
            .collect();
        Ok(Table {
            id: "staffing",
            columns: vec![
                "slot",
                "forecast",
                "aht_secs",
                "agents",
                "on_floor",
                "service_level",
                "p_wait",
                "asa_secs",
                "occupancy",
            ],
            rows,
        })
    }

    /// Agents' scorecards over the last 7 days, with the team's card last.
    ///
    /// # Errors
    /// Store errors.
    pub async fn scorecards(
        &self,
        engine: &Engine,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Scorecard>, Scorecard)> {
        let end = self.local_midnight(now) + Duration::days(1);
        let from = end - Duration::days(7);
        let agent_rows = self.rows(Grain::Day, Dim::Agent, from, end, &[]).await?;
        let mut cards = Scorecard::per_agent(&agent_rows);
        let names: BTreeMap<String, String> = engine
            .agents()
            .into_iter()
            .map(|a| (a.id.to_string(), a.name))
            .collect();
        for c in &mut cards {
            c.name = names.get(&c.agent).cloned().unwrap_or_default();
        }
        for (id, name) in &names {
            if !cards.iter().any(|c| &c.agent == id) {
                cards.push(Scorecard {
                    agent: id.clone(),
                    name: name.clone(),
                    ..Scorecard::default()
                });
            }
        }
        cards.sort_by(|a, b| a.name.cmp(&b.name));
        let mut team = Scorecard::team(&agent_rows);
        team.name = "team".into();
        Ok((cards, team))
    }

    /// The scorecards as a table: one row per agent, the team's last, with the radar axes.
    ///
    /// # Errors
    /// Store errors.
    pub async fn scorecard_table(&self, engine: &Engine, now: DateTime<Utc>) -> Result<Table> {
        let (cards, team) = self.scorecards(engine, now).await?;
        let agents = cards.len();
        let opt = |v: Option<f64>| v.map(|x| json!(x)).unwrap_or(Value::Null);
        let row = |c: &Scorecard, radar: Vec<(&'static str, f64)>| {
            let mut r = vec![
                json!(c.name),
                json!(c.agent),
                json!(c.handled),
                json!(c.resolved),
                opt(c.frt_secs),
                opt(c.aht_secs),
                opt(c.csat),
                opt(c.fcr),
                json!(c.transfers),
                opt(c.sentiment_delta),
                json!(c.sentiment_improved),
                json!(c.sentiment_worsened),
            ];
            r.extend(radar.into_iter().map(|(_, v)| json!(v.round())));
            r
        };
        let mut rows: Vec<Vec<Value>> = cards
            .iter()
            .map(|c| row(c, c.radar(&team, agents)))
            .collect();
        let mut team_mean = team.clone();
        team_mean.handled = (team.handled as f64 / agents.max(1) as f64).round() as i64;
        rows.push(row(&team, team_mean.radar(&team, agents)));
        Ok(Table {
            id: "scorecards",
            columns: vec![
                "name",
                "agent",
                "handled",
                "resolved",
                "frt_secs",
                "aht_secs",
                "csat",
                "fcr",
                "transfers",
                "sentiment_delta",
                "sentiment_improved",
                "sentiment_worsened",
                "r_volume",
                "r_speed",
                "r_efficiency",
                "r_satisfaction",
                "r_resolution",
                "r_calm",
            ],
            rows,
        })
    }

    /// The alerts fired lately, newest first.
    pub fn alert_table(&self) -> Table {
        let tz = self.timezone();
        Table {
            id: "alerts",
            columns: vec!["at", "rule", "subject", "message"],
            rows: self
                .recent_alerts()
                .into_iter()
                .rev()
                .map(|a| {
                    vec![
                        json!(
                            a.at.with_timezone(&tz)
                                .format("%Y-%m-%d %H:%M:%S")
                                .to_string()
                        ),
                        json!(a.rule),
                        json!(a.subject),
                        json!(a.message),
                    ]
                })
                .collect(),
        }
    }

    /// Every table of the dashboard.
    ///
    /// # Errors
    /// Store errors.
    pub async fn dashboard(&self, engine: &Engine, now: DateTime<Utc>) -> Result<Dashboard> {
        Ok(Dashboard {
            at: now,
            tables: vec![
                self.tiles(engine, now).await?,
                self.hours(now).await?,
                self.heatmap(now).await?,
                self.top("intents", Dim::Intent, Metric::BotAnswers, 10, now)
                    .await?,
                self.top("reasons", Dim::Reason, Metric::Handoffs, 10, now)
                    .await?,
                self.staffing(now).await?,
                self.scorecard_table(engine, now).await?,
                self.alert_table(),
            ],
        })
    }

    /// One table of the dashboard by id.
    ///
    /// # Errors
    /// Store errors; `Ok(None)` for an unknown id.
    pub async fn table(
        &self,
        engine: &Engine,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Table>> {
        Ok(Some(match id {
            "tiles" => self.tiles(engine, now).await?,
            "hours" => self.hours(now).await?,
            "heatmap" => self.heatmap(now).await?,
            "intents" => {
                self.top("intents", Dim::Intent, Metric::BotAnswers, 10, now)
                    .await?
            }
            "reasons" => {
                self.top("reasons", Dim::Reason, Metric::Handoffs, 10, now)
                    .await?
            }
            "staffing" => self.staffing(now).await?,
            "scorecards" => self.scorecard_table(engine, now).await?,
            "alerts" => self.alert_table(),
            _ => return Ok(None),
        }))
    }
}
