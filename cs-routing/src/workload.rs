//! Seeded, reproducible routing workloads for benchmarks and soak tests.
//!
//! A [`Workload`] describes a contact centre (agents, skills, a queue) and a [`Scenario`]; [`run`]
//! drives any [`SyncRouter`] through it and returns a [`Report`] with the decisions made, the time
//! they took and per-decision latencies. The same seed gives the same event stream, so two routers
//! that decide alike (the fast router and its reference) see exactly the same events.
//!
//! The shape: skills come in groups of four (a product line: presale, refunds, logistics,
//! complaints); each agent masters one group at random levels (1-10), speaks Chinese and, one in
//! three, English, and takes 4 chats or 1 call (a call blocks chats). A task needs one skill of a
//! group at level 1-3 (one in ten also needs the group's next skill), is in Chinese (80%) or
//! English, a chat (85%) or a call, has a priority (10% low, 60% normal, 25% high, 5% urgent), is
//! from a VIP one time in twenty and names a preferred agent one time in thirty.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use cs_core::{
    Agent, AgentId, Capacity, ChannelKind, ConversationId, CustomerTier, Presence, Priority, Skill,
    TenantId,
};

use crate::error::Result;
use crate::router::SyncRouter;
use crate::task::{Decision, SkillRequirement, Task};

/// What happens while the clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scenario {
    /// Mixed chat and voice in steady state: the queue is full, an agent finishes (release) and
    /// takes the next task, a new task arrives.
    Steady,
    /// Task surplus: the queue is full and only drains (agents finish and take the next).
    TaskSurplus,
    /// Agent surplus: every agent is on line with room; tasks arrive and are assigned at once,
    /// agents finish.
    AgentSurplus,
    /// Burst drain: the queue is full and nobody is on line; then every agent signs in and takes
    /// work.
    BurstDrain,
    /// Steady state with churn: one event in five edits an agent (presence, skill levels).
    Churn,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 5] = [
        Self::Steady,
        Self::TaskSurplus,
        Self::AgentSurplus,
        Self::BurstDrain,
        Self::Churn,
    ];

    /// A short name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::TaskSurplus => "task_surplus",
            Self::AgentSurplus => "agent_surplus",
            Self::BurstDrain => "burst_drain",
            Self::Churn => "churn",
        }
    }
}

/// A workload: the contact centre and what happens in it.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Agents.
    pub agents: usize,
    /// Distinct skills.
    pub skills: usize,
    /// Tasks waiting when the measured phase starts (steady, task surplus, churn, burst drain).
    pub queued: usize,
    /// Measured events (ignored by the burst drain, whose events are the sign-ins).
    pub events: usize,
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Decisions made in the measured phase.
    pub decisions: u64,
    /// Events applied in the measured phase.
    pub events: u64,
    /// Time spent in router calls in the measured phase.
    pub elapsed: Duration,
    /// For every measured call that made decisions: its time divided by its decisions (ns).
    pub latencies_ns: Vec<u64>,
    /// Whether the time budget cut the measured phase short.
    pub truncated: bool,
    /// CPU time of the measured phase (the whole loop, event generation included), where the
    /// platform reports it (Linux `/proc/thread-self/schedstat`). On a shared machine wall-clock
    /// latencies include time spent waiting for a core; this does not.
    pub cpu: Option<Duration>,
}

impl Report {
    /// Decisions per second.
    pub fn decisions_per_sec(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Decisions per second of CPU time, where measured.
    pub fn decisions_per_cpu_sec(&self) -> Option<f64> {
        self.cpu
            .map(|c| self.decisions as f64 / c.as_secs_f64().max(1e-9))
    }

    /// The `q`-quantile (0-1) of the per-decision latencies, in ns.
    pub fn percentile_ns(&mut self, q: f64) -> u64 {
        if self.latencies_ns.is_empty() {
            return 0;
        }
        self.latencies_ns.sort_unstable();
        let i = ((self.latencies_ns.len() - 1) as f64 * q).round() as usize;
        self.latencies_ns[i]
    }
}

/// SplitMix64: small, fast, seeded.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The event stream of a [`Workload`]: generates the contact centre and its events, and tracks
/// who holds what from the decisions. [`run`] uses it; benchmarks that time single events call
/// [`Stream::setup`] once and [`Stream::step`] per iteration.
#[derive(Debug)]
pub struct Stream {
    w: Workload,
    step: usize,
    rng: Rng,
    skill_names: Vec<String>,
    agents: Vec<Agent>,
    held: Vec<(AgentId, ConversationId)>,
    now: DateTime<Utc>,
    out: Vec<Decision>,
    /// Task ids handed out.
    ids: u64,
}

const GROUP: usize = 4;

impl Stream {
    /// The stream of `w`.
    pub fn new(w: Workload) -> Self {
        let skills = w.skills.max(1);
        let mut d = Self {
            w,
            step: 0,
            rng: Rng(w.seed),
            skill_names: (0..skills).map(|i| format!("skill-{i}")).collect(),
            agents: Vec::with_capacity(w.agents),
            held: Vec::new(),
            now: Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap(),
            out: Vec::new(),
            ids: 0,
        };
        for i in 0..w.agents {
            let agent = d.make_agent(i);
            d.agents.push(agent);
        }
        d
    }

    fn groups(&self) -> usize {
        self.skill_names.len().div_ceil(GROUP)
    }

    fn group_skill(&self, group: usize, k: usize) -> &str {
        let n = self.skill_names.len();
        &self.skill_names[(group * GROUP + k % GROUP) % n]
    }

    fn make_agent(&mut self, i: usize) -> Agent {
        let group = i % self.groups();
        let skills = (0..GROUP.min(self.skill_names.len()))
            .map(|k| {
                let level = 1 + self.rng.below(10) as u8;
                Skill::new(self.group_skill(group, k), level)
            })
            .collect();
        let mut languages = vec!["zh".to_string()];
        if self.rng.chance(33) {
            languages.push("en".into());
        }
        Agent {
            id: AgentId::new(),
            tenant: TenantId::default(),
            name: format!("agent-{i}"),
            skills,
            languages,
            team: None,
            capacity: Capacity {
                chat: 4,
                email: 0,
                voice: 1,
                voice_blocks_others: true,
            },
            presence: Presence::Online,
        }
    }

    fn make_task(&mut self, voice_share: usize) -> Task {
        self.now += chrono::Duration::milliseconds(1);
        let voice = self.rng.chance(voice_share);
        let mut t = Task::new(
            self.task_id(),
            if voice {
                ChannelKind::Voice
            } else {
                ChannelKind::WebChat
            },
            self.now,
        );
        let group = self.rng.below(self.groups());
        let k = self.rng.below(GROUP);
        let level = 1 + self.rng.below(3) as u8;
        t.requirements = vec![SkillRequirement::new(self.group_skill(group, k), level)];
        if self.rng.chance(10) && self.skill_names.len() > 1 {
            let next = self.group_skill(group, k + 1).to_owned();
            t.requirements.push(SkillRequirement::new(next, 1));
        }
        t.language = Some(if self.rng.chance(80) { "zh" } else { "en" }.into());
        t.priority = match self.rng.below(100) {
            0..10 => Priority::Low,
            10..70 => Priority::Normal,
            70..95 => Priority::High,
            _ => Priority::Urgent,
        };
        if self.rng.chance(5) {
            t.tier = CustomerTier::Vip;
        }
        if self.rng.below(30) == 0 && !self.agents.is_empty() {
            t.preferred_agent = Some(self.agents[self.rng.below(self.agents.len())].id);
        }
        t
    }

    /// A UUIDv7 for the next task, derived from the stream's clock and a counter: no system
    /// randomness (a `getrandom` call per id) and the same ids for the same seed.
    fn task_id(&mut self) -> ConversationId {
        self.ids += 1;
        let mut tail = [0u8; 10];
        tail[..8].copy_from_slice(&self.ids.to_be_bytes());
        tail[8..].copy_from_slice(&(self.w.seed as u16).to_be_bytes());
        let millis = self.now.timestamp_millis().max(0) as u64;
        ConversationId::from_uuid(
            uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid(),
        )
    }

    fn note(&mut self) {
        for d in &self.out {
            if let Decision::Assigned { task, agent } | Decision::Offered { task, agent, .. } = d {
                self.held.push((*agent, *task));
            }
        }
        self.out.clear();
    }

    fn next_release(&mut self) -> Option<(AgentId, ConversationId)> {
        if self.held.is_empty() {
            return None;
        }
        let i = self.rng.below(self.held.len());
        Some(self.held.swap_remove(i))
    }

    fn next_edit(&mut self) -> Agent {
        let i = self.rng.below(self.agents.len());
        let agent = &mut self.agents[i];
        if self.rng.chance(50) {
            agent.presence = if agent.presence == Presence::Online {
                Presence::Away
            } else {
                Presence::Online
            };
        } else {
            let k = self.rng.below(agent.skills.len());
            agent.skills[k].level = 1 + self.rng.below(10) as u8;
        }
        agent.clone()
    }
}

/// One measured event, prepared before the clock starts.
enum Event {
    Enqueue(Task),
    Release(AgentId, ConversationId),
    Edit(Agent),
}

impl Stream {
    fn voice_share(&self) -> usize {
        if self.w.scenario == Scenario::TaskSurplus {
            0
        } else {
            15
        }
    }

    /// Setup: the queue first (nobody on line), then the agents sign in and take work. For the
    /// burst drain, only the queue (the sign-ins are the measured events).
    ///
    /// # Errors
    /// The first error the router returns.
    pub fn setup(&mut self, router: &mut dyn SyncRouter) -> Result<()> {
        let setup_tasks = match self.w.scenario {
            Scenario::AgentSurplus => 0,
            Scenario::BurstDrain => self.w.queued,
            _ => self.w.queued + 4 * self.agents.len(),
        };
        let voice = self.voice_share();
        for _ in 0..setup_tasks {
            let t = self.make_task(voice);
            router.enqueue(t, &mut self.out)?;
            self.note();
        }
        if self.w.scenario != Scenario::BurstDrain {
            for i in 0..self.agents.len() {
                router.upsert_agent(self.agents[i].clone(), &mut self.out)?;
                self.note();
            }
        }
        Ok(())
    }

    /// The next measured event, or `None` when the scenario has nothing more to do.
    fn next_event(&mut self) -> Option<Event> {
        let i = self.step;
        self.step += 1;
        Some(match self.w.scenario {
            Scenario::BurstDrain => Event::Edit(self.agents.get(i)?.clone()),
            Scenario::TaskSurplus => {
                let (a, t) = self.next_release()?;
                Event::Release(a, t)
            }
            Scenario::Churn if self.rng.chance(20) => Event::Edit(self.next_edit()),
            _ if i % 2 == 1 => Event::Enqueue(self.make_task(self.voice_share())),
            _ => match self.next_release() {
                Some((a, t)) => Event::Release(a, t),
                None => Event::Enqueue(self.make_task(self.voice_share())),
            },
        })
    }

    fn apply(&mut self, router: &mut dyn SyncRouter, event: Event) -> Result<()> {
        match event {
            Event::Enqueue(t) => router.enqueue(t, &mut self.out),
            Event::Release(a, t) => router.release(a, t, &mut self.out),
            Event::Edit(a) => router.upsert_agent(a, &mut self.out),
        }
    }

    /// Applies one measured event; returns the decisions it made, or `None` when the scenario
    /// is over.
    ///
    /// # Errors
    /// The router's error.
    pub fn step(&mut self, router: &mut dyn SyncRouter) -> Result<Option<usize>> {
        let Some(event) = self.next_event() else {
            return Ok(None);
        };
        self.apply(router, event)?;
        let n = self.out.len();
        self.note();
        Ok(Some(n))
    }
}

/// Drives `router` through workload `w`: setup, then the measured phase (`w.events` events, or
/// every sign-in for the burst drain), stopping early when `budget` runs out. To check the
/// decisions, pass a [`crate::checker::Checked`] router.
///
/// # Errors
/// The first error the router returns (a correct router returns none).
pub fn run(router: &mut dyn SyncRouter, w: Workload, budget: Option<Duration>) -> Result<Report> {
    let mut s = Stream::new(w);
    s.setup(router)?;
    let mut report = Report::default();
    let started = Instant::now();
    let cpu_start = thread_cpu();
    let limit = if w.scenario == Scenario::BurstDrain {
        usize::MAX
    } else {
        w.events
    };
    for _ in 0..limit {
        if budget.is_some_and(|b| started.elapsed() > b) {
            report.truncated = true;
            break;
        }
        let Some(event) = s.next_event() else { break };
        let t0 = Instant::now();
        let result = s.apply(router, event);
        let took = t0.elapsed();
        result?;
        record(&mut report, took, s.out.len());
        s.note();
    }
    report.cpu = thread_cpu()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
    Ok(report)
}

/// This thread's CPU time so far, on Linux.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn record(report: &mut Report, took: Duration, decisions: usize) {
    report.events += 1;
    report.elapsed += took;
    if decisions > 0 {
        report.decisions += decisions as u64;
        report
            .latencies_ns
            .push(took.as_nanos() as u64 / decisions as u64);
    }
}
