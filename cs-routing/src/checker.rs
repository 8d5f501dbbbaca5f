//! The policy checker: watches a router's events and decisions and reports every broken rule.
//!
//! It keeps its own model of the queue and the agents (from the calls made and the decisions
//! returned, never from the router's insides) and checks:
//! - **capacity**: no agent ever holds more than its slots (and no chat during a blocking call);
//! - **eligibility**: every task goes to an agent who meets its (possibly relaxed) requirements;
//! - **no double assignment**: only waiting tasks are given out, each once;
//! - **order**: no better-ranked waiting task (in particular an older task of the same band,
//!   i.e. FIFO within a band) that the same agent could take is passed over;
//! - **agent choice**: no better free agent (preferred, then VIP proficiency, least loaded,
//!   longest idle) was passed over;
//! - **no idling**: after each event, no waiting task has an eligible agent with a free slot.
//!
//! A task an agent picks ([`crate::Router::pick`]) is checked only for what a person cannot
//! override: the agent is online and has a free slot for its medium, and the task was waiting.
//! Its skills, order and choice of agent are the person's call, not a violation. A restored
//! assignment ([`crate::Router::restore`]) only counts in the agent's load.
//!
//! Order and agent-choice checks cost a scan of the queue or the agents, the idle check a scan of
//! both, so [`Checker::with_sample`] runs them on every n-th decision/event in benchmarks. Time
//! spent inside an event that crosses an overflow, hold or offer deadline is not modelled, so
//! order checks are skipped for such events (capacity and eligibility still hold).
//!
//! It also measures fairness: [`Checker::fairness`] is Jain's index `(sum x)^2 / (n sum x^2)`
//! over the tasks given to identical agents (1.0 = perfectly even).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId, Medium, Presence};

use crate::error::Result;
use crate::policy::{
    Effective, RoutingPolicy, agent_order, at_ms, has_room, medium_index, ms, placeholder_agent,
};
use crate::router::SyncRouter;
use crate::task::{Decision, Reprioritize, Snapshot, Task};

/// The media in index order.
const MEDIA: [Medium; 3] = [Medium::Chat, Medium::Email, Medium::Voice];

/// What rule a decision broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ViolationKind {
    /// An agent got more tasks than its capacity allows.
    Capacity,
    /// A task went to an agent who does not meet its requirements (or is not online).
    Ineligible,
    /// A task was given out that was not waiting (twice, or unknown).
    NotWaiting,
    /// A better-ranked waiting task the agent could take was passed over.
    Order,
    /// A better free agent was passed over.
    AgentChoice,
    /// A waiting task has an eligible free agent after an event.
    Idle,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which rule.
    pub kind: ViolationKind,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

#[derive(Debug)]
struct CAgent {
    agent: Agent,
    loads: [u16; 3],
    seq: u64,
    given: u64,
}

#[derive(Debug, Clone)]
struct CTask {
    task: Task,
    rank: i64,
    seq: u64,
    excluded: Vec<AgentId>,
    hold: Option<(AgentId, i64)>,
}

/// Checks a router's decisions against the routing policy; see the module docs.
#[derive(Debug)]
pub struct Checker {
    policy: RoutingPolicy,
    agent_choice: bool,
    sample: u64,
    now: i64,
    agents: HashMap<AgentId, CAgent>,
    sign_in: Vec<AgentId>,
    queued: HashMap<ConversationId, CTask>,
    offered: HashMap<ConversationId, (CTask, AgentId, i64)>,
    /// Medium index of every assigned or offered task.
    media: HashMap<ConversationId, usize>,
    boundaries: BTreeMap<i64, u32>,
    seq: u64,
    task_seq: u64,
    decisions: u64,
    events: u64,
    violations: Vec<Violation>,
}

impl Checker {
    /// A checker for routers following `policy`, checking every decision and event.
    pub fn new(policy: RoutingPolicy) -> Self {
        Self {
            policy,
            agent_choice: true,
            sample: 1,
            now: i64::MIN,
            agents: HashMap::new(),
            sign_in: Vec::new(),
            queued: HashMap::new(),
            offered: HashMap::new(),
            media: HashMap::new(),
            boundaries: BTreeMap::new(),
            seq: 0,
            task_seq: 0,
            decisions: 0,
            events: 0,
            violations: Vec::new(),
        }
    }

    /// Runs the order, agent-choice and idle checks only on every `n`-th decision/event.
    pub fn with_sample(mut self, n: u64) -> Self {
        self.sample = n.max(1);
        self
    }

    /// Whether to check the choice of agent (off for routers with another agent policy, such as
    /// [`crate::SimpleRouter`]'s first-signed-in).
    pub fn with_agent_choice(mut self, on: bool) -> Self {
        self.agent_choice = on;
        self
    }

    /// Every violation found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Decisions seen.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Jain's fairness index over the tasks given to identical agents (same skills, languages,
    /// team and capacity): the lowest over groups of at least two agents that got any work, or
    /// 1.0 when there is no such group.
    pub fn fairness(&self) -> f64 {
        let mut groups: HashMap<String, Vec<f64>> = HashMap::new();
        for a in self.agents.values() {
            let mut skills: Vec<_> = a.agent.skills.iter().map(|s| (&s.name, s.level)).collect();
            skills.sort();
            let key = format!(
                "{skills:?}{:?}{:?}{:?}",
                a.agent.languages, a.agent.team, a.agent.capacity
            );
            groups.entry(key).or_default().push(a.given as f64);
        }
        groups
            .values()
            .filter(|g| g.len() >= 2 && g.iter().any(|x| *x > 0.0))
            .map(|g| jain(g))
            .fold(1.0, f64::min)
    }

    fn violation(&mut self, kind: ViolationKind, detail: String) {
        self.violations.push(Violation { kind, detail });
    }

    fn bump(&mut self, agent: AgentId) {
        self.seq += 1;
        if let Some(a) = self.agents.get_mut(&agent) {
            a.seq = self.seq;
        }
    }

    fn boundary(&mut self, at: i64, add: bool) {
        let n = self.boundaries.entry(at).or_insert(0);
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.boundaries.remove(&at);
            }
        }
    }

    fn task_boundaries(&mut self, t: &CTask, add: bool) {
        let enq = at_ms(t.task.enqueued_at);
        for r in 0..self.policy.rings.len() {
            if let Some(at) = self.policy.ring_time(enq, r) {
                self.boundary(at, add);
            }
        }
        if let Some((_, until)) = t.hold {
            self.boundary(until, add);
        }
    }

    fn queue(&mut self, t: CTask) {
        self.task_boundaries(&t, true);
        self.queued.insert(t.task.id, t);
    }

    fn unqueue(&mut self, id: ConversationId) -> Option<CTask> {
        let t = self.queued.remove(&id)?;
        self.task_boundaries(&t, false);
        Some(t)
    }

    /// Moves the model's clock; returns whether a deadline was crossed.
    fn advance(&mut self, to: i64) -> bool {
        let to = to.max(self.now);
        let standby_before = self.policy.standby.is_some() && self.standby_active();
        let crossed = self.now < to
            && self
                .boundaries
                .range(self.now.saturating_add(1)..=to)
                .next()
                .is_some();
        self.now = to;
        // The standby pool joining because the oldest task has now waited long enough is a
        // time boundary too: the router serves it before the event's own change.
        crossed || (self.policy.standby.is_some() && self.standby_active() != standby_before)
    }

    fn standby_active(&self) -> bool {
        let oldest = self
            .queued
            .values()
            .map(|t| at_ms(t.task.enqueued_at))
            .min();
        self.policy
            .standby_active(self.queued.len(), oldest, self.now)
    }

    /// Whether `a` may take `t` in the model now; `standby` says whether standby agents count.
    fn eligible(&self, t: &CTask, a: &CAgent, standby: bool) -> bool {
        self.eligible_with(t, &self.effective(t), a, standby)
    }

    fn effective(&self, t: &CTask) -> Effective {
        let ring = self.policy.ring_at(at_ms(t.task.enqueued_at), self.now);
        self.policy.effective(&t.task, ring)
    }

    fn eligible_with(&self, t: &CTask, eff: &Effective, a: &CAgent, standby: bool) -> bool {
        a.agent.presence == Presence::Online
            && (standby || !self.policy.is_standby(&a.agent))
            && has_room(&a.agent.capacity, &a.loads, t.task.channel.medium())
            && !t.excluded.contains(&a.agent.id)
            && t.hold
                .is_none_or(|(p, until)| p == a.agent.id || self.now >= until)
            && eff.fits(&a.agent)
    }

    fn give(&mut self, task: ConversationId, agent: AgentId, offer: Option<i64>, check: bool) {
        self.decisions += 1;
        let Some(t) = self.unqueue(task) else {
            self.violation(
                ViolationKind::NotWaiting,
                format!("task {task} given to {agent} was not waiting"),
            );
            return;
        };
        let Some(a) = self.agents.get(&agent) else {
            self.violation(
                ViolationKind::Ineligible,
                format!("task {task} given to unknown agent {agent}"),
            );
            return;
        };
        let medium = t.task.channel.medium();
        if !has_room(&a.agent.capacity, &a.loads, medium) {
            self.violation(
                ViolationKind::Capacity,
                format!("agent {agent} over capacity with task {task}"),
            );
        } else if !self.eligible(&t, a, true) {
            self.violation(
                ViolationKind::Ineligible,
                format!("agent {agent} may not take task {task}"),
            );
        } else if check && self.decisions.is_multiple_of(self.sample) {
            let found = self.check_order(&t, a);
            self.violations.extend(found);
        }
        let a = self.agents.get_mut(&agent).expect("checked");
        a.loads[medium_index(medium)] += 1;
        a.given += 1;
        self.bump(agent);
        self.media.insert(task, medium_index(medium));
        if let Some(expires) = offer {
            self.boundary(expires, true);
            self.offered.insert(task, (t, agent, expires));
        }
    }

    /// A task the agent picked: only presence, capacity and that it waited are checked.
    fn give_picked(&mut self, task: ConversationId, agent: AgentId) {
        self.decisions += 1;
        let Some(t) = self.unqueue(task) else {
            self.violation(
                ViolationKind::NotWaiting,
                format!("task {task} picked by {agent} was not waiting"),
            );
            return;
        };
        let Some(a) = self.agents.get_mut(&agent) else {
            self.violation(
                ViolationKind::Ineligible,
                format!("task {task} picked by unknown agent {agent}"),
            );
            return;
        };
        let medium = t.task.channel.medium();
        let room = has_room(&a.agent.capacity, &a.loads, medium);
        let online = a.agent.presence == Presence::Online;
        a.loads[medium_index(medium)] += 1;
        a.given += 1;
        self.bump(agent);
        self.media.insert(task, medium_index(medium));
        if !room {
            self.violation(
                ViolationKind::Capacity,
                format!("agent {agent} over capacity picking task {task}"),
            );
        } else if !online {
            self.violation(
                ViolationKind::Ineligible,
                format!("agent {agent} picked task {task} while not online"),
            );
        }
    }

    fn check_order(&self, t: &CTask, a: &CAgent) -> Vec<Violation> {
        let mut found = Vec::new();
        let better = self
            .queued
            .values()
            .filter(|u| (u.rank, u.seq) < (t.rank, t.seq))
            .find(|u| self.eligible(u, a, true))
            .map(|u| u.task.id);
        if let Some(u) = better {
            let detail = format!(
                "agent {} got task {} while better-ranked task {u} waited",
                a.agent.id, t.task.id
            );
            found.push(Violation {
                kind: ViolationKind::Order,
                detail,
            });
        }
        if !self.agent_choice {
            return found;
        }
        let ring = self.policy.ring_at(at_ms(t.task.enqueued_at), self.now);
        let eff = self.policy.effective(&t.task, ring);
        let order = |b: &CAgent| agent_order(&t.task, &eff, &b.agent, b.loads.iter().sum(), b.seq);
        let mine = order(a);
        let better = self
            .agents
            .values()
            .filter(|b| b.agent.id != a.agent.id && self.eligible(t, b, false))
            .find(|b| order(b) < mine)
            .map(|b| b.agent.id);
        if let Some(b) = better {
            let detail = format!(
                "task {} went to {} while better agent {b} was free",
                t.task.id, a.agent.id
            );
            found.push(Violation {
                kind: ViolationKind::AgentChoice,
                detail,
            });
        }
        found
    }

    fn requeue(&mut self, task: ConversationId, agent: AgentId) {
        let Some((mut t, holder, expires)) = self.offered.remove(&task) else {
            self.violation(
                ViolationKind::NotWaiting,
                format!("offer of {task} to {agent} expired but was not made"),
            );
            return;
        };
        self.boundary(expires, false);
        self.release_load(holder, task);
        self.bump(holder);
        t.excluded.push(holder);
        t.hold = None;
        self.queue(t);
    }

    fn apply(&mut self, decisions: &[Decision], check: bool) {
        self.apply_picked(decisions, check, None);
    }

    /// [`Self::apply`], with the assignment of a task an agent picked: `(task, agent)`.
    fn apply_picked(
        &mut self,
        decisions: &[Decision],
        check: bool,
        mut picked: Option<(ConversationId, AgentId)>,
    ) {
        for d in decisions {
            match d {
                Decision::Assigned { task, agent }
                    if picked == Some((*task, *agent)) && !self.offered.contains_key(task) =>
                {
                    picked = None;
                    self.give_picked(*task, *agent);
                }
                Decision::Assigned { task, agent } => {
                    if self.offered.get(task).is_some_and(|o| o.1 == *agent) {
                        let (_, _, expires) = self.offered.remove(task).expect("checked");
                        self.boundary(expires, false);
                    } else {
                        self.give(*task, *agent, None, check);
                    }
                }
                Decision::Offered {
                    task,
                    agent,
                    expires_at,
                } => self.give(*task, *agent, Some(at_ms(*expires_at)), check),
                Decision::OfferExpired { task, agent } => self.requeue(*task, *agent),
                Decision::AgentAway { agent } => {
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.agent.presence = Presence::Away;
                    }
                }
                Decision::ToBot { .. } => {}
            }
        }
        self.events += 1;
        if self.events.is_multiple_of(self.sample) {
            self.check_idle();
        }
    }

    /// Checks that no waiting task has an eligible free agent (a full scan).
    pub fn check_idle(&mut self) {
        let standby = self.standby_active();
        let free: Vec<&CAgent> = self
            .sign_in
            .iter()
            .filter_map(|id| self.agents.get(id))
            .filter(|a| {
                MEDIA
                    .iter()
                    .any(|m| has_room(&a.agent.capacity, &a.loads, *m))
            })
            .collect();
        // Tasks without exclusions or a hold that share requirements and a medium share the
        // answer: check one of each.
        let mut seen: HashSet<(Effective, Medium)> = HashSet::new();
        let found = self.queued.values().find_map(|t| {
            let eff = self.effective(t);
            let plain = t.excluded.is_empty() && t.hold.is_none_or(|(_, until)| self.now >= until);
            if plain && !seen.insert((eff.clone(), t.task.channel.medium())) {
                return None;
            }
            free.iter()
                .find(|a| self.eligible_with(t, &eff, a, standby))
                .map(|a| (t.task.id, a.agent.id))
        });
        if let Some((t, a)) = found {
            self.violation(
                ViolationKind::Idle,
                format!("task {t} waits while eligible agent {a} is free"),
            );
        }
    }

    /// Records `enqueue(task)` and the decisions it returned.
    pub fn on_enqueue(&mut self, task: &Task, decisions: &[Decision]) {
        let crossed = self.advance(at_ms(task.enqueued_at));
        if decisions
            .iter()
            .any(|d| matches!(d, Decision::ToBot { task: t } if *t == task.id))
        {
            self.apply(decisions, !crossed);
            return;
        }
        self.task_seq += 1;
        let until = at_ms(task.enqueued_at).saturating_add(ms(self.policy.sticky_wait));
        let hold = task
            .preferred_agent
            .filter(|p| {
                self.now < until
                    && self
                        .agents
                        .get(p)
                        .is_some_and(|a| a.agent.presence != Presence::Offline)
            })
            .map(|p| (p, until));
        self.queue(CTask {
            task: task.clone(),
            rank: self.policy.rank(task),
            seq: self.task_seq,
            excluded: Vec::new(),
            hold,
        });
        self.apply(decisions, !crossed);
    }

    /// Records `cancel(task)` and whether it removed a waiting task.
    pub fn on_cancel(&mut self, task: ConversationId, _removed: bool) {
        self.unqueue(task);
    }

    /// Records `upsert_agent(agent)` and its decisions.
    pub fn on_upsert(&mut self, agent: &Agent, decisions: &[Decision]) {
        match self.agents.get_mut(&agent.id) {
            Some(a) => a.agent = agent.clone(),
            None => {
                self.sign_in.push(agent.id);
                self.agents.insert(
                    agent.id,
                    CAgent {
                        agent: agent.clone(),
                        loads: [0; 3],
                        seq: 0,
                        given: 0,
                    },
                );
            }
        }
        self.bump(agent.id);
        if agent.presence == Presence::Offline {
            let mut ends = Vec::new();
            for t in self.queued.values_mut() {
                if let Some((p, until)) = t.hold
                    && p == agent.id
                {
                    t.hold = None;
                    ends.push(until);
                }
            }
            for until in ends {
                self.boundary(until, false);
            }
        }
        self.apply(decisions, true);
    }

    /// Records `release(agent, task)` and its decisions.
    pub fn on_release(&mut self, agent: AgentId, task: ConversationId, decisions: &[Decision]) {
        if let Some((_, _, expires)) = self.offered.remove(&task) {
            self.boundary(expires, false);
        }
        self.release_load(agent, task);
        self.bump(agent);
        self.apply(decisions, true);
    }

    fn release_load(&mut self, agent: AgentId, task: ConversationId) {
        if let Some(m) = self.media.remove(&task)
            && let Some(a) = self.agents.get_mut(&agent)
        {
            a.loads[m] = a.loads[m].saturating_sub(1);
        }
    }

    /// Records `accept(agent, task)` and its decisions.
    pub fn on_accept(&mut self, decisions: &[Decision]) {
        self.apply(decisions, true);
    }

    /// Records `reject(agent, task)` and its decisions.
    pub fn on_reject(&mut self, agent: AgentId, task: ConversationId, decisions: &[Decision]) {
        self.requeue(task, agent);
        self.apply(decisions, true);
    }

    /// Records `reprioritize(task, change)` and its decisions.
    pub fn on_reprioritize(
        &mut self,
        task: ConversationId,
        change: Reprioritize,
        decisions: &[Decision],
    ) {
        if let Some(t) = self.queued.get_mut(&task) {
            change.apply(&mut t.task);
            t.rank = self.policy.rank(&t.task);
        }
        self.apply(decisions, true);
    }

    /// Records `pick(agent, task)` and its decisions.
    pub fn on_pick(&mut self, agent: AgentId, task: ConversationId, decisions: &[Decision]) {
        self.apply_picked(decisions, true, Some((task, agent)));
    }

    /// Records `restore(agent, task)`.
    pub fn on_restore(&mut self, agent: AgentId, task: &Task) {
        if !self.agents.contains_key(&agent) {
            self.sign_in.push(agent);
            self.agents.insert(
                agent,
                CAgent {
                    agent: placeholder_agent(agent),
                    loads: [0; 3],
                    seq: 0,
                    given: 0,
                },
            );
        }
        let m = medium_index(task.channel.medium());
        if let Some(a) = self.agents.get_mut(&agent) {
            a.loads[m] += 1;
        }
        self.media.insert(task.id, m);
        self.bump(agent);
    }

    /// Records `tick(now)` and its decisions.
    pub fn on_tick(&mut self, now: DateTime<Utc>, decisions: &[Decision]) {
        let crossed = self.advance(at_ms(now));
        self.apply(decisions, !crossed);
    }
}

/// Jain's fairness index of `xs`: 1.0 when all are equal, `1/n` when one gets everything.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (xs.len() as f64 * squares)
}

/// A [`SyncRouter`] whose every call is recorded by a [`Checker`].
#[derive(Debug)]
pub struct Checked<R> {
    /// The router.
    pub router: R,
    /// The checker.
    pub checker: Checker,
}

impl<R: SyncRouter> Checked<R> {
    /// Checks `router` with `checker`.
    pub fn new(router: R, checker: Checker) -> Self {
        Self { router, checker }
    }
}

impl<R: SyncRouter> SyncRouter for Checked<R> {
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()> {
        let start = out.len();
        let copy = task.clone();
        self.router.enqueue(task, out)?;
        self.checker.on_enqueue(&copy, &out[start..]);
        Ok(())
    }

    fn cancel(&mut self, task: ConversationId) -> Result<bool> {
        let removed = self.router.cancel(task)?;
        self.checker.on_cancel(task, removed);
        Ok(removed)
    }

    fn upsert_agent(&mut self, agent: Agent, out: &mut Vec<Decision>) -> Result<()> {
        let start = out.len();
        let copy = agent.clone();
        self.router.upsert_agent(agent, out)?;
        self.checker.on_upsert(&copy, &out[start..]);
        Ok(())
    }

    fn release(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let start = out.len();
        self.router.release(agent, task, out)?;
        self.checker.on_release(agent, task, &out[start..]);
        Ok(())
    }

    fn accept(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let start = out.len();
        self.router.accept(agent, task, out)?;
        self.checker.on_accept(&out[start..]);
        Ok(())
    }

    fn reject(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let start = out.len();
        self.router.reject(agent, task, out)?;
        self.checker.on_reject(agent, task, &out[start..]);
        Ok(())
    }

    fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<Decision>) -> Result<()> {
        let start = out.len();
        self.router.tick(now, out)?;
        self.checker.on_tick(now, &out[start..]);
        Ok(())
    }

    fn reprioritize(
        &mut self,
        task: ConversationId,
        change: Reprioritize,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let start = out.len();
        self.router.reprioritize(task, change, out)?;
        self.checker.on_reprioritize(task, change, &out[start..]);
        Ok(())
    }

    fn pick(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let start = out.len();
        self.router.pick(agent, task, out)?;
        self.checker.on_pick(agent, task, &out[start..]);
        Ok(())
    }

    fn restore(&mut self, agent: AgentId, task: Task) -> Result<()> {
        let copy = task.clone();
        self.router.restore(agent, task)?;
        self.checker.on_restore(agent, &copy);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        self.router.snapshot()
    }

    fn next_deadline(&mut self) -> Option<DateTime<Utc>> {
        self.router.next_deadline()
    }
}
