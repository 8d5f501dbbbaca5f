//! The aggregator: domain events in, rollup deltas out. Pure and deterministic: it reads nothing
//! but the events (their own timestamps, never the wall clock), so the same events give the same
//! numbers however they are batched, flushed or replayed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cs_core::{
    AgentId, Author, ConversationId, ConversationState, Direction, DomainEvent, Event, Presence,
    Survey,
};
use serde::{Deserialize, Serialize};

use super::rollup::{Dim, Grain, Metric, RollupKey, Rollups, Stat};

/// What the definitions depend on.
#[derive(Debug, Clone)]
pub struct AggregatorSettings {
    /// A bot session idle this long without a hand-over counts as contained (default 30 min).
    pub bot_idle: Duration,
    /// Queued conversations taken within this count as answered in target (default 30 s).
    pub answer_target: Duration,
    /// A customer message waiting longer than this for an agent's reply is a response breach
    /// (default 10 min).
    pub reply_target: Duration,
    /// Business hours for the business-time variants (default: none, so they equal the
    /// calendar-time figures).
    pub calendar: Option<cs_tickets::BusinessCalendar>,
    /// The time zone of day buckets (default `Asia/Shanghai`).
    pub timezone: chrono_tz::Tz,
    /// How long a resolved conversation is remembered for a reopen or a late survey (default
    /// 7 days).
    pub retention: Duration,
}

impl Default for AggregatorSettings {
    fn default() -> Self {
        Self {
            bot_idle: Duration::minutes(30),
            answer_target: Duration::seconds(30),
            reply_target: Duration::minutes(10),
            calendar: None,
            timezone: chrono_tz::Asia::Shanghai,
            retention: Duration::days(7),
        }
    }
}

/// A bot session: from the bot's first answer until a hand-over or idleness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BotSession {
    started: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// What the aggregator remembers of one conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Track {
    tenant: Arc<str>,
    channel: Option<Arc<str>>,
    queue: Option<Arc<str>>,
    state: Option<ConversationState>,
    opened_at: DateTime<Utc>,
    /// Creation, or the latest reopen: resolution time runs from here.
    span_start: DateTime<Utc>,
    /// When the customer was handed to humans (first response time runs from here).
    human_since: Option<DateTime<Utc>>,
    first_response: bool,
    agent: Option<AgentId>,
    last_agent: Option<AgentId>,
    assigned_at: Option<DateTime<Utc>>,
    agents_in_span: u16,
    transferred: bool,
    queued_at: Option<DateTime<Utc>>,
    /// The oldest customer message (or the hand-over) an agent has not answered yet.
    pending_reply: Option<DateTime<Utc>>,
    pending_breached: bool,
    reopened: bool,
    bot: Option<BotSession>,
    last_score: Option<f32>,
    stint_first_score: Option<f32>,
    stint_last_score: Option<f32>,
    /// Where a first-contact resolution was counted (a reopen takes it back).
    fcr_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl Track {
    fn new(tenant: Arc<str>, at: DateTime<Utc>) -> Self {
        Self {
            tenant,
            channel: None,
            queue: None,
            state: None,
            opened_at: at,
            span_start: at,
            human_since: None,
            first_response: false,
            agent: None,
            last_agent: None,
            assigned_at: None,
            agents_in_span: 0,
            transferred: false,
            queued_at: None,
            pending_reply: None,
            pending_breached: false,
            reopened: false,
            bot: None,
            last_score: None,
            stint_first_score: None,
            stint_last_score: None,
            fcr_at: None,
            finished_at: None,
        }
    }
}

/// What the aggregator knows of an agent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentNow {
    /// Presence.
    pub presence: Presence,
    /// Conversations assigned now (as the events tell).
    pub active: usize,
}

/// Turns events into rollup deltas. See the module documentation for what each metric means.
#[derive(Debug)]
pub struct Aggregator {
    settings: AggregatorSettings,
    tracks: HashMap<ConversationId, Track>,
    dirty: HashSet<ConversationId>,
    removed: Vec<ConversationId>,
    delta: Rollups,
    strings: HashMap<String, Arc<str>>,
    agents: HashMap<AgentId, Presence>,
    events: u64,
    latest: Option<DateTime<Utc>>,
}

/// Where an observation is counted besides the whole tenant.
#[derive(Debug, Clone, Default)]
struct Dims {
    channel: Option<Arc<str>>,
    queue: Option<Arc<str>>,
    agent: Option<Arc<str>>,
    extra: Option<(Dim, Arc<str>)>,
}

fn ms(d: Duration) -> i64 {
    d.num_milliseconds().max(0)
}

impl Aggregator {
    /// An aggregator that has seen nothing.
    pub fn new(settings: AggregatorSettings) -> Self {
        Self {
            settings,
            tracks: HashMap::new(),
            dirty: HashSet::new(),
            removed: Vec::new(),
            delta: Rollups::default(),
            strings: HashMap::new(),
            agents: HashMap::new(),
            events: 0,
            latest: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AggregatorSettings {
        &self.settings
    }

    /// How many events it has seen.
    pub fn events_seen(&self) -> u64 {
        self.events
    }

    /// The time of the newest event seen (by the events' own clock).
    pub fn latest(&self) -> Option<DateTime<Utc>> {
        self.latest
    }

    /// How many conversations it is following.
    pub fn conversations_tracked(&self) -> usize {
        self.tracks.len()
    }

    /// Agents' presence as the events told it.
    pub fn agents(&self) -> HashMap<AgentId, AgentNow> {
        let mut out: HashMap<AgentId, AgentNow> = self
            .agents
            .iter()
            .map(|(a, p)| {
                (
                    *a,
                    AgentNow {
                        presence: *p,
                        active: 0,
                    },
                )
            })
            .collect();
        for t in self.tracks.values() {
            if let Some(a) = t.agent {
                out.entry(a)
                    .or_insert(AgentNow {
                        presence: Presence::Offline,
                        active: 0,
                    })
                    .active += 1;
            }
        }
        out
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(s.to_owned(), a.clone());
        a
    }

    fn agent_key(&mut self, agent: AgentId) -> Arc<str> {
        self.intern(&agent.to_string())
    }

    /// Counts `stat` at `at` for the tenant and each dimension in `dims`.
    fn count(
        &mut self,
        tenant: &Arc<str>,
        at: DateTime<Utc>,
        metric: Metric,
        dims: &Dims,
        stat: Stat,
    ) {
        let bucket = Grain::Minute.floor(at, self.settings.timezone);
        let empty = self.intern("");
        let mut add = |dim: Dim, key: Arc<str>| {
            self.delta.add(
                RollupKey {
                    tenant: tenant.clone(),
                    grain: Grain::Minute,
                    bucket,
                    dim,
                    key,
                    metric,
                },
                stat,
            );
        };
        add(Dim::All, empty);
        if let Some(c) = &dims.channel {
            add(Dim::Channel, c.clone());
        }
        if let Some(q) = &dims.queue {
            add(Dim::Queue, q.clone());
        }
        if let Some(a) = &dims.agent {
            add(Dim::Agent, a.clone());
        }
        if let Some((d, k)) = &dims.extra {
            add(*d, k.clone());
        }
    }

    fn dims_of(&mut self, t: &Track, agent: Option<AgentId>) -> Dims {
        Dims {
            channel: t.channel.clone(),
            queue: t.queue.clone(),
            agent: agent.map(|a| self.agent_key(a)),
            extra: None,
        }
    }

    fn business(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        match &self.settings.calendar {
            Some(c) => c.between(from, to),
            None => to - from,
        }
    }

    /// Takes one event.
    pub fn observe(&mut self, event: &Event) {
        self.events += 1;
        let at = event.at;
        self.latest = Some(self.latest.map_or(at, |l| l.max(at)));
        let tenant = self.intern(event.tenant.as_str());
        use DomainEvent as E;
        match &event.kind {
            E::ConversationOpened {
                conversation,
                route,
                ..
            } => {
                let channel = self.intern(route.identity.kind.as_str());
                let t = self
                    .tracks
                    .entry(*conversation)
                    .or_insert_with(|| Track::new(tenant.clone(), at));
                t.channel.get_or_insert(channel);
                t.state.get_or_insert(ConversationState::Bot);
                let dims = Dims {
                    channel: t.channel.clone(),
                    ..Dims::default()
                };
                self.dirty.insert(*conversation);
                self.count(&tenant, at, Metric::Conversations, &dims, Stat::one(0));
            }
            E::MessageReceived { message } => {
                let id = message.conversation;
                let channel = self.intern(message.channel_kind.as_str());
                let mut t = self.take_track(id, &tenant, at);
                t.channel.get_or_insert(channel);
                let dims = self.dims_of(&t, None);
                self.count(&tenant, at, Metric::MessagesIn, &dims, Stat::one(0));
                if let Some(b) = &mut t.bot {
                    b.last = at;
                }
                let human = matches!(
                    t.state,
                    Some(ConversationState::Queued | ConversationState::Assigned)
                );
                if human && t.first_response && t.pending_reply.is_none() {
                    t.pending_reply = Some(at);
                    t.pending_breached = false;
                }
                self.put_track(id, t);
            }
            E::MessageSent { message } => {
                if message.direction == Direction::Internal {
                    return;
                }
                let id = message.conversation;
                let mut t = self.take_track(id, &tenant, at);
                match message.author {
                    Author::Bot => {
                        let dims = self.dims_of(&t, None);
                        self.count(&tenant, at, Metric::MessagesBot, &dims, Stat::one(0));
                        match &mut t.bot {
                            Some(b) => b.last = at,
                            None => {
                                t.bot = Some(BotSession {
                                    started: at,
                                    last: at,
                                })
                            }
                        }
                    }
                    Author::Agent { agent } => {
                        let dims = self.dims_of(&t, Some(agent));
                        self.count(&tenant, at, Metric::MessagesAgent, &dims, Stat::one(0));
                        self.agent_replied(&mut t, agent, at);
                    }
                    _ => {
                        let dims = self.dims_of(&t, None);
                        self.count(&tenant, at, Metric::MessagesSystem, &dims, Stat::one(0));
                    }
                }
                self.put_track(id, t);
            }
            E::BotAnswered {
                conversation,
                intent,
                ..
            } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                let mut dims = self.dims_of(&t, None);
                dims.queue = None;
                let intent = self.intern(intent.as_deref().unwrap_or("unknown"));
                dims.extra = Some((Dim::Intent, intent));
                self.count(&tenant, at, Metric::BotAnswers, &dims, Stat::one(0));
                match &mut t.bot {
                    Some(b) => b.last = at,
                    None => {
                        t.bot = Some(BotSession {
                            started: at,
                            last: at,
                        })
                    }
                }
                self.put_track(*conversation, t);
            }
            E::HandoffRequested {
                conversation,
                reason,
                ..
            } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                let mut dims = self.dims_of(&t, None);
                dims.queue = None;
                dims.extra = Some((Dim::Reason, self.intern(reason)));
                self.count(&tenant, at, Metric::Handoffs, &dims, Stat::one(0));
                self.escalate_bot(&mut t);
                self.hand_to_humans(&mut t, at);
                self.put_track(*conversation, t);
            }
            E::Queued {
                conversation,
                skills,
                ..
            } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                let queue = self.intern(skills.first().map(String::as_str).unwrap_or("general"));
                t.queue = Some(queue);
                t.queued_at.get_or_insert(at);
                let dims = self.dims_of(&t, None);
                self.count(&tenant, at, Metric::Queued, &dims, Stat::one(0));
                self.hand_to_humans(&mut t, at);
                self.put_track(*conversation, t);
            }
            E::StateChanged {
                conversation,
                from,
                to,
            } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                self.state_changed(&mut t, *from, *to, at);
                self.put_track(*conversation, t);
            }
            E::AgentAssigned {
                conversation,
                agent,
            } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                self.assigned(&mut t, *agent, at);
                self.put_track(*conversation, t);
            }
            E::Offered {
                conversation,
                agent,
                ..
            } => {
                let t = self.take_track(*conversation, &tenant, at);
                let dims = self.dims_of(&t, Some(*agent));
                self.count(&tenant, at, Metric::Offers, &dims, Stat::one(0));
                self.put_track(*conversation, t);
            }
            E::OfferClosed {
                conversation,
                agent,
                outcome,
            } => {
                let t = self.take_track(*conversation, &tenant, at);
                let dims = self.dims_of(&t, Some(*agent));
                let metric = if outcome == "rejected" {
                    Metric::OffersRejected
                } else {
                    Metric::OffersExpired
                };
                self.count(&tenant, at, metric, &dims, Stat::one(0));
                self.put_track(*conversation, t);
            }
            E::SentimentScored {
                conversation,
                score,
                polarity,
                ..
            } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                let dims = self.dims_of(&t, None);
                let metric = match polarity.as_str() {
                    "negative" => Metric::SentimentNegative,
                    "positive" => Metric::SentimentPositive,
                    _ => Metric::SentimentNeutral,
                };
                self.count(&tenant, at, metric, &dims, Stat::one(0));
                t.last_score = Some(*score);
                if t.agent.is_some() {
                    t.stint_first_score.get_or_insert(*score);
                    t.stint_last_score = Some(*score);
                }
                self.put_track(*conversation, t);
            }
            E::QueueAbandoned { conversation, .. } => {
                let mut t = self.take_track(*conversation, &tenant, at);
                if let Some(q) = t.queued_at.take() {
                    let dims = self.dims_of(&t, None);
                    self.count(&tenant, at, Metric::Abandoned, &dims, Stat::one(ms(at - q)));
                }
                t.pending_reply = None;
                self.put_track(*conversation, t);
            }
            E::SurveyAnswered {
                conversation,
                agent,
                survey,
                score,
                ..
            } => {
                let t = self.take_track(*conversation, &tenant, at);
                let agent = agent.or(t.last_agent);
                let dims = self.dims_of(&t, agent);
                self.put_track(*conversation, t);
                self.survey(&tenant, at, *survey, *score, &dims);
            }
            E::TicketOpened { .. } => {
                self.count(
                    &tenant,
                    at,
                    Metric::TicketsOpened,
                    &Dims::default(),
                    Stat::one(0),
                );
            }
            E::TicketUpdated { change, detail, .. } => {
                let sla = detail
                    .get("metric")
                    .and_then(|m| m.as_str())
                    .map(|m| (Dim::Sla, self.intern(m)));
                let dims = Dims {
                    extra: sla,
                    ..Dims::default()
                };
                match change.as_str() {
                    "sla_breached" => {
                        self.count(&tenant, at, Metric::SlaBreaches, &dims, Stat::one(0))
                    }
                    "sla_warning" => {
                        self.count(&tenant, at, Metric::SlaWarnings, &dims, Stat::one(0))
                    }
                    "escalated" => {
                        self.count(&tenant, at, Metric::Escalations, &dims, Stat::one(0))
                    }
                    "csat_submitted" => {
                        if let Some(score) = detail.get("score").and_then(|s| s.as_u64()) {
                            let score = score.min(5) as u8;
                            self.survey(&tenant, at, Survey::Csat, score, &Dims::default());
                        }
                    }
                    _ => {}
                }
            }
            E::DeliveryFailed { conversation, .. } => {
                let t = self.take_track(*conversation, &tenant, at);
                let dims = self.dims_of(&t, None);
                self.count(&tenant, at, Metric::DeadLetters, &dims, Stat::one(0));
                self.put_track(*conversation, t);
            }
            E::AgentPresenceChanged { agent, presence } => {
                self.agents.insert(*agent, *presence);
            }
            _ => {}
        }
    }

    /// The track of a conversation (a new one when unknown), its idle bot session settled first.
    fn take_track(&mut self, id: ConversationId, tenant: &Arc<str>, at: DateTime<Utc>) -> Track {
        let mut t = self
            .tracks
            .remove(&id)
            .unwrap_or_else(|| Track::new(tenant.clone(), at));
        self.settle_idle(&mut t, at);
        t
    }

    fn put_track(&mut self, id: ConversationId, t: Track) {
        self.tracks.insert(id, t);
        self.dirty.insert(id);
    }

    /// Settles what the passage of time to `now` decides: an idle bot session is contained, a
    /// customer message unanswered past the reply target is a breach (counted at its deadline).
    fn settle_idle(&mut self, t: &mut Track, now: DateTime<Utc>) {
        if let Some(b) = &t.bot
            && now - b.last >= self.settings.bot_idle
        {
            let started = b.started;
            t.bot = None;
            let dims = self.dims_of(t, None);
            let tenant = t.tenant.clone();
            self.count(&tenant, started, Metric::BotSessions, &dims, Stat::one(0));
            self.count(&tenant, started, Metric::BotContained, &dims, Stat::one(0));
        }
        self.check_breach(t, now);
    }

    fn check_breach(&mut self, t: &mut Track, now: DateTime<Utc>) {
        if let Some(p) = t.pending_reply
            && !t.pending_breached
            && now - p > self.settings.reply_target
        {
            t.pending_breached = true;
            let dims = self.dims_of(t, t.agent);
            let tenant = t.tenant.clone();
            let deadline = p + self.settings.reply_target;
            self.count(
                &tenant,
                deadline,
                Metric::ResponseBreaches,
                &dims,
                Stat::one(0),
            );
        }
    }

    /// The bot session, if any, ends in a hand-over.
    fn escalate_bot(&mut self, t: &mut Track) {
        if let Some(b) = t.bot.take() {
            let dims = self.dims_of(t, None);
            let tenant = t.tenant.clone();
            self.count(&tenant, b.started, Metric::BotSessions, &dims, Stat::one(0));
            self.count(
                &tenant,
                b.started,
                Metric::BotEscalated,
                &dims,
                Stat::one(0),
            );
        }
    }

    /// The bot session, if any, ends without a human.
    fn contain_bot(&mut self, t: &mut Track) {
        if let Some(b) = t.bot.take() {
            let dims = self.dims_of(t, None);
            let tenant = t.tenant.clone();
            self.count(&tenant, b.started, Metric::BotSessions, &dims, Stat::one(0));
            self.count(
                &tenant,
                b.started,
                Metric::BotContained,
                &dims,
                Stat::one(0),
            );
        }
    }

    /// The customer now waits for a human: the first-response clock starts (once).
    fn hand_to_humans(&mut self, t: &mut Track, at: DateTime<Utc>) {
        if t.human_since.is_none() {
            t.human_since = Some(at);
        }
        if !t.first_response && t.pending_reply.is_none() {
            t.pending_reply = t.human_since;
            t.pending_breached = false;
        }
    }

    fn agent_replied(&mut self, t: &mut Track, agent: AgentId, at: DateTime<Utc>) {
        self.check_breach(t, at);
        let tenant = t.tenant.clone();
        let dims = self.dims_of(t, Some(agent));
        if !t.first_response {
            t.first_response = true;
            let from = t.human_since.unwrap_or(t.opened_at);
            self.count(
                &tenant,
                at,
                Metric::FirstResponse,
                &dims,
                Stat::one(ms(at - from)),
            );
            let business = ms(self.business(from, at));
            self.count(
                &tenant,
                at,
                Metric::FirstResponseBusiness,
                &dims,
                Stat::one(business),
            );
        } else if let Some(p) = t.pending_reply {
            self.count(&tenant, at, Metric::ReplyTime, &dims, Stat::one(ms(at - p)));
        }
        t.pending_reply = None;
        t.pending_breached = false;
    }

    fn assigned(&mut self, t: &mut Track, agent: AgentId, at: DateTime<Utc>) {
        let tenant = t.tenant.clone();
        if let Some(q) = t.queued_at.take() {
            let dims = self.dims_of(t, None);
            let wait = at - q;
            self.count(&tenant, at, Metric::QueueWait, &dims, Stat::one(ms(wait)));
            if wait <= self.settings.answer_target {
                self.count(&tenant, at, Metric::AnsweredInTarget, &dims, Stat::one(0));
            }
        }
        if t.agent.is_some_and(|a| a != agent) {
            self.end_stint(t, at, false);
        }
        if let Some(previous) = t.last_agent
            && previous != agent
            && t.agents_in_span > 0
        {
            t.transferred = true;
            let dims = self.dims_of(t, Some(previous));
            self.count(&tenant, at, Metric::Transfers, &dims, Stat::one(0));
        }
        if t.last_agent != Some(agent) || t.agents_in_span == 0 {
            t.agents_in_span = t.agents_in_span.saturating_add(1);
        }
        let dims = self.dims_of(t, Some(agent));
        self.count(&tenant, at, Metric::Assignments, &dims, Stat::one(0));
        if t.agent != Some(agent) {
            t.assigned_at = Some(at);
            t.stint_first_score = t.last_score;
            t.stint_last_score = t.last_score;
        }
        t.agent = Some(agent);
        t.last_agent = Some(agent);
        t.state = Some(ConversationState::Assigned);
    }

    /// The current agent's stint ends: its handle time, and on a resolve, how the customer's
    /// mood moved.
    fn end_stint(&mut self, t: &mut Track, at: DateTime<Utc>, resolved: bool) {
        let Some(agent) = t.agent.take() else {
            return;
        };
        let tenant = t.tenant.clone();
        let dims = self.dims_of(t, Some(agent));
        if let Some(from) = t.assigned_at.take() {
            self.count(
                &tenant,
                at,
                Metric::HandleTime,
                &dims,
                Stat::one(ms(at - from)),
            );
        }
        if resolved && let (Some(first), Some(last)) = (t.stint_first_score, t.stint_last_score) {
            let delta = ((last - first) * 1000.0).round() as i64;
            let agent_only = Dims {
                agent: dims.agent.clone(),
                ..Dims::default()
            };
            self.count(
                &tenant,
                at,
                Metric::SentimentDelta,
                &agent_only,
                Stat::one(delta),
            );
            if delta > 100 {
                self.count(
                    &tenant,
                    at,
                    Metric::SentimentImproved,
                    &agent_only,
                    Stat::one(0),
                );
            } else if delta < -100 {
                self.count(
                    &tenant,
                    at,
                    Metric::SentimentWorsened,
                    &agent_only,
                    Stat::one(0),
                );
            }
        }
        t.stint_first_score = None;
        t.stint_last_score = None;
    }

    fn state_changed(
        &mut self,
        t: &mut Track,
        from: ConversationState,
        to: ConversationState,
        at: DateTime<Utc>,
    ) {
        let tenant = t.tenant.clone();
        let was_finished = matches!(
            from,
            ConversationState::Resolved | ConversationState::Closed
        ) || t.finished_at.is_some();
        if was_finished && to.is_active() {
            // A reopen: resolution time starts again, and a first-contact resolution is
            // taken back where it was counted.
            let dims = self.dims_of(t, t.last_agent);
            self.count(&tenant, at, Metric::Reopens, &dims, Stat::one(0));
            if let Some(when) = t.fcr_at.take() {
                let retract = Stat {
                    count: -1,
                    sum: 0,
                    max: 0,
                };
                self.count(&tenant, when, Metric::Fcr, &dims, retract);
            }
            t.reopened = true;
            t.span_start = at;
            t.finished_at = None;
        }
        match to {
            ConversationState::Queued => {
                if from == ConversationState::Assigned {
                    self.end_stint(t, at, false);
                }
                if from == ConversationState::Bot {
                    self.escalate_bot(t);
                }
                self.hand_to_humans(t, at);
            }
            ConversationState::Bot if from == ConversationState::Queued => {
                // The router gave a new conversation to the bot first (bot-first reception):
                // nobody waited for a human, so its queue entry does not count.
                if let Some(q) = t.queued_at.take() {
                    let dims = self.dims_of(t, None);
                    let retract = Stat {
                        count: -1,
                        sum: 0,
                        max: 0,
                    };
                    self.count(&tenant, q, Metric::Queued, &dims, retract);
                }
                t.human_since = None;
                if !t.first_response {
                    t.pending_reply = None;
                }
            }
            ConversationState::Resolved | ConversationState::Closed => {
                self.contain_bot(t);
                // The reply clock stops at the resolve: what was overdue by now is a breach,
                // nothing after it is.
                self.check_breach(t, at);
                t.pending_reply = None;
                t.pending_breached = false;
                let agent = t.agent.or(t.last_agent);
                let handled_by_agent = t.agent.is_some();
                self.end_stint(t, at, to == ConversationState::Resolved);
                if to == ConversationState::Resolved {
                    if from == ConversationState::Queued {
                        t.queued_at = None;
                    }
                    let dims = self.dims_of(t, agent);
                    self.count(
                        &tenant,
                        at,
                        Metric::Resolutions,
                        &dims,
                        Stat::one(ms(at - t.span_start)),
                    );
                    let business = ms(self.business(t.span_start, at));
                    self.count(
                        &tenant,
                        at,
                        Metric::ResolutionBusiness,
                        &dims,
                        Stat::one(business),
                    );
                    if handled_by_agent && !t.reopened && !t.transferred && t.agents_in_span == 1 {
                        self.count(&tenant, at, Metric::Fcr, &dims, Stat::one(0));
                        t.fcr_at = Some(at);
                    }
                }
                t.finished_at = Some(at);
            }
            _ => {}
        }
        t.state = Some(to);
    }

    fn survey(
        &mut self,
        tenant: &Arc<str>,
        at: DateTime<Utc>,
        survey: Survey,
        score: u8,
        dims: &Dims,
    ) {
        let s = i64::from(score);
        match survey {
            Survey::Csat => {
                self.count(tenant, at, Metric::CsatResponses, dims, Stat::one(s));
                if score >= 4 {
                    self.count(tenant, at, Metric::CsatSatisfied, dims, Stat::one(0));
                }
            }
            Survey::Nps => {
                self.count(tenant, at, Metric::NpsResponses, dims, Stat::one(s));
                if score >= 9 {
                    self.count(tenant, at, Metric::NpsPromoters, dims, Stat::one(0));
                } else if score <= 6 {
                    self.count(tenant, at, Metric::NpsDetractors, dims, Stat::one(0));
                }
            }
            Survey::Ces => self.count(tenant, at, Metric::CesResponses, dims, Stat::one(s)),
        }
    }

    /// Settles what time alone decides by `now` (idle bot sessions, overdue replies) and forgets
    /// conversations finished longer than the retention ago. Call it now and then; the outcome
    /// does not depend on when (each is counted at its own deadline).
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        let ids: Vec<ConversationId> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                t.bot.is_some()
                    || (t.pending_reply.is_some() && !t.pending_breached)
                    || t.finished_at.is_some()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(mut t) = self.tracks.remove(&id) else {
                continue;
            };
            let before = t.clone();
            self.settle_idle(&mut t, now);
            if t.finished_at
                .is_some_and(|f| now - f > self.settings.retention)
            {
                self.removed.push(id);
                self.dirty.remove(&id);
                continue;
            }
            if t != before {
                self.dirty.insert(id);
            }
            self.tracks.insert(id, t);
        }
    }

    /// Takes the rollup deltas since the last call (minute rows only; see
    /// [`Rollups::with_coarser_grains`]).
    pub fn take_delta(&mut self) -> Rollups {
        self.delta.take()
    }

    /// Takes the conversations changed since the last call (as JSON, to persist) and the ones
    /// forgotten.
    pub(crate) fn take_tracks(
        &mut self,
    ) -> (Vec<(String, ConversationId, String)>, Vec<ConversationId>) {
        let changed = self
            .dirty
            .drain()
            .filter_map(|id| {
                let t = self.tracks.get(&id)?;
                let json = serde_json::to_string(t).ok()?;
                Some((t.tenant.to_string(), id, json))
            })
            .collect();
        (changed, std::mem::take(&mut self.removed))
    }

    /// Restores conversations persisted by an earlier run.
    pub(crate) fn restore(&mut self, tracks: Vec<(ConversationId, String)>) {
        for (id, json) in tracks {
            match serde_json::from_str::<Track>(&json) {
                Ok(mut t) => {
                    t.tenant = self.intern(&t.tenant);
                    t.channel = t.channel.as_deref().map(|c| self.intern(c));
                    t.queue = t.queue.as_deref().map(|q| self.intern(q));
                    self.tracks.insert(id, t);
                }
                Err(e) => {
                    tracing::warn!(error = %e, conversation = %id, "analytics state not restored")
                }
            }
        }
    }
}
