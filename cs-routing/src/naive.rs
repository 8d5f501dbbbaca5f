//! The reference router: the policy of [`crate::policy`] with linear scans and nothing clever.

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId, Medium, Presence};

use crate::error::{Error, Result};
use crate::policy::{Effective, RoutingPolicy, agent_order, at_ms, has_room, medium_index, ms};
use crate::router::SyncRouter;
use crate::simple::{validate_agent, validate_task};
use crate::task::{AgentLoad, Decision, QueuedTask, Snapshot, Task};

/// The reference implementation of the routing policy ([`crate::policy`]): every decision is a
/// linear scan over all tasks and agents, so it is easy to check by reading. The property tests
/// hold [`crate::SkillRouter`] to making exactly its decisions, and the benchmarks use it as the
/// baseline. Wrap it in [`crate::Shared`] for an [`crate::Router`].
#[derive(Debug)]
pub struct NaiveRouter {
    policy: RoutingPolicy,
    now: i64,
    /// Agents in sign-in order.
    agents: Vec<NAgent>,
    /// Waiting tasks, unordered.
    queue: Vec<NTask>,
    /// Tasks offered to an agent.
    offers: Vec<NOffer>,
    /// Tasks with the bot (bot-first reception).
    parked: Vec<ConversationId>,
    standby_active: bool,
    agent_seq: u64,
    task_seq: u64,
}

#[derive(Debug)]
struct NAgent {
    agent: Agent,
    /// Assigned and offered tasks, in the order given.
    held: Vec<(ConversationId, Medium)>,
    seq: u64,
    missed: u32,
}

impl NAgent {
    fn loads(&self) -> [u16; 3] {
        let mut l = [0u16; 3];
        for (_, m) in &self.held {
            l[medium_index(*m)] += 1;
        }
        l
    }
}

#[derive(Debug, Clone)]
struct NTask {
    task: Task,
    seq: u64,
    rank: i64,
    ring: usize,
    eff: Effective,
    /// Waiting for the preferred agent until the time.
    hold: Option<(AgentId, i64)>,
    excluded: Vec<AgentId>,
}

#[derive(Debug)]
struct NOffer {
    t: NTask,
    agent: AgentId,
    expires: i64,
}

/// Timer kinds in the order they apply at one instant.
const EXPIRE: u8 = 0;
const HOLD_END: u8 = 1;
const RING_UP: u8 = 2;

impl NaiveRouter {
    /// An empty router with `policy`.
    pub fn new(policy: RoutingPolicy) -> Self {
        Self {
            policy,
            now: i64::MIN,
            agents: Vec::new(),
            queue: Vec::new(),
            offers: Vec::new(),
            parked: Vec::new(),
            standby_active: false,
            agent_seq: 0,
            task_seq: 0,
        }
    }

    fn agent_pos(&self, id: AgentId) -> Option<usize> {
        self.agents.iter().position(|a| a.agent.id == id)
    }

    fn eligible(&self, t: &NTask, a: &NAgent) -> bool {
        self.policy.available(&a.agent, self.standby_active)
            && has_room(&a.agent.capacity, &a.loads(), t.task.channel.medium())
            && t.eff.fits(&a.agent)
            && !t.excluded.contains(&a.agent.id)
            && t.hold.is_none_or(|(p, _)| p == a.agent.id)
    }

    fn best_agent(&self, t: &NTask) -> Option<usize> {
        (0..self.agents.len())
            .filter(|&i| self.eligible(t, &self.agents[i]))
            .min_by_key(|&i| {
                let a = &self.agents[i];
                let load = a.held.len() as u16;
                agent_order(&t.task, &t.eff, &a.agent, load, a.seq)
            })
    }

    fn next_seq(&mut self) -> u64 {
        self.agent_seq += 1;
        self.agent_seq
    }

    /// Serves the best-ranked task that has an eligible agent, again and again. Only the changed
    /// agents and tasks can create a match (after the previous dispatch none was left).
    fn dispatch(&mut self, agents: &[AgentId], tasks: &[ConversationId], out: &mut Vec<Decision>) {
        loop {
            let mut best: Option<(i64, u64, usize)> = None;
            let mut consider = |t: &NTask, i: usize| {
                if best.is_none_or(|(r, s, _)| (t.rank, t.seq) < (r, s)) {
                    best = Some((t.rank, t.seq, i));
                }
            };
            for id in tasks {
                if let Some(i) = self.queue.iter().position(|t| t.task.id == *id)
                    && self.best_agent(&self.queue[i]).is_some()
                {
                    consider(&self.queue[i], i);
                }
            }
            for id in agents {
                let Some(a) = self.agent_pos(*id) else {
                    continue;
                };
                for (i, t) in self.queue.iter().enumerate() {
                    if self.eligible(t, &self.agents[a]) {
                        consider(t, i);
                    }
                }
            }
            let Some((_, _, i)) = best else { break };
            let a = self
                .best_agent(&self.queue[i])
                .expect("a candidate has an agent");
            let t = self.queue.remove(i);
            self.give(t, a, out);
        }
    }

    fn give(&mut self, t: NTask, a: usize, out: &mut Vec<Decision>) {
        let seq = self.next_seq();
        let slot = &mut self.agents[a];
        slot.held.push((t.task.id, t.task.channel.medium()));
        slot.seq = seq;
        let (task, agent) = (t.task.id, slot.agent.id);
        match self.policy.reservations {
            Some(r) => {
                let expires = self.now.saturating_add(ms(r.offer_timeout));
                out.push(Decision::Offered {
                    task,
                    agent,
                    expires_at: from_ms(expires),
                });
                self.offers.push(NOffer { t, agent, expires });
            }
            None => out.push(Decision::Assigned { task, agent }),
        }
    }

    /// Puts a task whose offer failed back in the queue, never again to `agent`.
    fn requeue(&mut self, mut t: NTask, agent: AgentId) {
        t.excluded.push(agent);
        t.hold = None;
        t.ring = self.policy.ring_at(at_ms(t.task.enqueued_at), self.now);
        t.eff = self.policy.effective(&t.task, t.ring);
        self.queue.push(t);
    }

    /// Takes an offered task back from its agent.
    fn withdraw(&mut self, task: ConversationId) -> (NOffer, usize) {
        let i = self
            .offers
            .iter()
            .position(|o| o.t.task.id == task)
            .expect("offered");
        let offer = self.offers.remove(i);
        let a = self.agent_pos(offer.agent).expect("known agent");
        let seq = self.next_seq();
        let slot = &mut self.agents[a];
        slot.held.retain(|(t, _)| *t != task);
        slot.seq = seq;
        (offer, a)
    }

    fn standby_eval(&mut self, out: &mut Vec<Decision>) {
        loop {
            let oldest = self.queue.iter().map(|t| at_ms(t.task.enqueued_at)).min();
            let active = self
                .policy
                .standby_active(self.queue.len(), oldest, self.now);
            if active == self.standby_active {
                return;
            }
            self.standby_active = active;
            if !active {
                return;
            }
            let pool: Vec<AgentId> = self
                .agents
                .iter()
                .filter(|a| self.policy.is_standby(&a.agent))
                .map(|a| a.agent.id)
                .collect();
            self.dispatch(&pool, &[], out);
        }
    }

    /// Every pending timer: (time, kind, rank, seq, task).
    fn timers(&self) -> Vec<(i64, u8, i64, u64, ConversationId)> {
        let mut v = Vec::new();
        for o in &self.offers {
            v.push((o.expires, EXPIRE, o.t.rank, o.t.seq, o.t.task.id));
        }
        for t in &self.queue {
            if let Some((_, until)) = t.hold {
                v.push((until, HOLD_END, t.rank, t.seq, t.task.id));
            }
            if let Some(at) = self.policy.ring_time(at_ms(t.task.enqueued_at), t.ring) {
                v.push((at, RING_UP, t.rank, t.seq, t.task.id));
            }
        }
        v
    }

    /// Moves the clock to `to`, firing due timers instant by instant.
    fn advance(&mut self, to: i64, out: &mut Vec<Decision>) {
        loop {
            let mut due: Vec<_> = self.timers().into_iter().filter(|t| t.0 <= to).collect();
            let Some(instant) = due.iter().map(|t| t.0).min() else {
                break;
            };
            due.retain(|t| t.0 == instant);
            due.sort();
            self.now = instant;
            let (mut agents, mut tasks) = (Vec::new(), Vec::new());
            for (_, kind, _, _, id) in due {
                tasks.push(id);
                match kind {
                    EXPIRE => {
                        let (offer, a) = self.withdraw(id);
                        self.requeue(offer.t, offer.agent);
                        out.push(Decision::OfferExpired {
                            task: id,
                            agent: offer.agent,
                        });
                        let max = self.policy.reservations.map_or(u32::MAX, |r| r.max_missed);
                        let slot = &mut self.agents[a];
                        slot.missed += 1;
                        if slot.missed >= max {
                            slot.missed = 0;
                            slot.agent.presence = Presence::Away;
                            out.push(Decision::AgentAway { agent: offer.agent });
                        }
                        agents.push(offer.agent);
                    }
                    HOLD_END => {
                        let t = self
                            .queue
                            .iter_mut()
                            .find(|t| t.task.id == id)
                            .expect("queued");
                        t.hold = None;
                    }
                    _ => {
                        let t = self
                            .queue
                            .iter_mut()
                            .find(|t| t.task.id == id)
                            .expect("queued");
                        t.ring += 1;
                        t.eff = self.policy.effective(&t.task, t.ring);
                    }
                }
            }
            self.dispatch(&agents, &tasks, out);
            self.standby_eval(out);
        }
        self.now = self.now.max(to);
        self.standby_eval(out);
    }

    fn offered_to(&self, agent: AgentId, task: ConversationId) -> Result<()> {
        if self.agent_pos(agent).is_none() {
            return Err(not_found("agent", agent));
        }
        if !self
            .offers
            .iter()
            .any(|o| o.t.task.id == task && o.agent == agent)
        {
            return Err(not_offered(agent, task));
        }
        Ok(())
    }
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Error {
    Error::NotFound {
        what,
        id: id.to_string(),
    }
}

pub(crate) fn not_offered(agent: AgentId, task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is not offered to agent {agent}"),
    }
}

pub(crate) fn duplicate(task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is already queued or assigned"),
    }
}

pub(crate) fn not_assigned(agent: AgentId, task: ConversationId) -> Error {
    Error::Conflict {
        reason: format!("task {task} is not assigned to agent {agent} (or awaits acceptance)"),
    }
}

impl SyncRouter for NaiveRouter {
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.queue.iter().any(|t| t.task.id == id)
            || self.offers.iter().any(|o| o.t.task.id == id)
            || self
                .agents
                .iter()
                .any(|a| a.held.iter().any(|(t, _)| *t == id))
        {
            return Err(duplicate(id));
        }
        let enqueued = at_ms(task.enqueued_at);
        self.advance(enqueued.max(self.now), out);
        if let Some(i) = self.parked.iter().position(|p| *p == id) {
            self.parked.remove(i);
        } else if self.policy.bot_first(self.queue.len()) {
            self.parked.push(id);
            out.push(Decision::ToBot { task: id });
            return Ok(());
        }
        self.task_seq += 1;
        let until = enqueued.saturating_add(ms(self.policy.sticky_wait));
        let hold = task
            .preferred_agent
            .filter(|p| self.now < until && self.agent_pos(*p).is_some())
            .map(|p| (p, until));
        let ring = self.policy.ring_at(enqueued, self.now);
        self.queue.push(NTask {
            seq: self.task_seq,
            rank: self.policy.rank(&task),
            ring,
            eff: self.policy.effective(&task, ring),
            hold,
            excluded: Vec::new(),
            task,
        });
        self.dispatch(&[], &[id], out);
        self.standby_eval(out);
        Ok(())
    }

    fn cancel(&mut self, task: ConversationId) -> Result<bool> {
        if let Some(i) = self.queue.iter().position(|t| t.task.id == task) {
            self.queue.remove(i);
            return Ok(true);
        }
        if let Some(i) = self.parked.iter().position(|p| *p == task) {
            self.parked.remove(i);
            return Ok(true);
        }
        Ok(false)
    }

    fn upsert_agent(&mut self, agent: Agent, out: &mut Vec<Decision>) -> Result<()> {
        validate_agent(&agent)?;
        let id = agent.id;
        let seq = self.next_seq();
        match self.agent_pos(id) {
            Some(i) => {
                self.agents[i].agent = agent;
                self.agents[i].seq = seq;
            }
            None => self.agents.push(NAgent {
                agent,
                held: Vec::new(),
                seq,
                missed: 0,
            }),
        }
        self.dispatch(&[id], &[], out);
        self.standby_eval(out);
        Ok(())
    }

    fn release(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let a = self
            .agent_pos(agent)
            .ok_or_else(|| not_found("agent", agent))?;
        let offered = self.offers.iter().any(|o| o.t.task.id == task);
        let Some(i) = self.agents[a].held.iter().position(|(t, _)| *t == task) else {
            return Err(not_assigned(agent, task));
        };
        if offered {
            return Err(not_assigned(agent, task));
        }
        let seq = self.next_seq();
        self.agents[a].held.remove(i);
        self.agents[a].seq = seq;
        self.dispatch(&[agent], &[], out);
        self.standby_eval(out);
        Ok(())
    }

    fn accept(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        self.offered_to(agent, task)?;
        self.offers.retain(|o| o.t.task.id != task);
        let a = self.agent_pos(agent).expect("checked");
        self.agents[a].missed = 0;
        out.push(Decision::Assigned { task, agent });
        Ok(())
    }

    fn reject(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        self.offered_to(agent, task)?;
        let (offer, _) = self.withdraw(task);
        self.requeue(offer.t, agent);
        self.dispatch(&[agent], &[task], out);
        self.standby_eval(out);
        Ok(())
    }

    fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<Decision>) -> Result<()> {
        self.advance(at_ms(now).max(self.now), out);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let mut q: Vec<&NTask> = self.queue.iter().collect();
        q.sort_by_key(|t| (t.rank, t.seq));
        Snapshot {
            queued: q
                .into_iter()
                .enumerate()
                .map(|(position, t)| QueuedTask {
                    task: t.task.clone(),
                    position,
                })
                .collect(),
            agents: self
                .agents
                .iter()
                .map(|a| AgentLoad {
                    agent: a.agent.id,
                    presence: a.agent.presence,
                    tasks: a.held.iter().map(|(t, _)| *t).collect(),
                })
                .collect(),
        }
    }

    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.timers().iter().map(|t| t.0).min().map(from_ms)
    }
}
