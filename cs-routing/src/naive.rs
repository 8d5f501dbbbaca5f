//! The reference router: the policy of [`crate::policy`] with linear scans and nothing clever.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId, Medium, Presence};

use crate::error::{
    Result, duplicate, no_room, not_assigned, not_found, not_offered, not_online, not_queued, taken,
};
use crate::policy::{
    Effective, RoutingPolicy, agent_order, at_ms, from_ms, has_room, medium_index, ms,
    placeholder_agent, validate_agent, validate_task,
};
use crate::router::SyncRouter;
use crate::task::{AgentLoad, Decision, Reprioritize, Snapshot, Task};

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
    agent_index: HashMap<AgentId, usize>,
    /// Waiting tasks by (rank, arrival).
    queue: BTreeMap<(i64, u64), NTask>,
    queued_ids: HashMap<ConversationId, (i64, u64)>,
    /// Who holds each assigned or offered task.
    holders: HashMap<ConversationId, AgentId>,
    /// Tasks offered to an agent.
    offers: HashMap<ConversationId, NOffer>,
    /// Tasks with the bot (bot-first reception).
    parked: HashSet<ConversationId>,
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
            agent_index: HashMap::new(),
            queue: BTreeMap::new(),
            queued_ids: HashMap::new(),
            holders: HashMap::new(),
            offers: HashMap::new(),
            parked: HashSet::new(),
            standby_active: false,
            agent_seq: 0,
            task_seq: 0,
        }
    }

    fn agent_pos(&self, id: AgentId) -> Option<usize> {
        self.agent_index.get(&id).copied()
    }

    /// Whether agent `id` is known and signed in (online or away), so a task may wait for them.
    fn signed_in(&self, id: AgentId) -> bool {
        self.agent_pos(id)
            .is_some_and(|a| self.agents[a].agent.presence != Presence::Offline)
    }

    fn push(&mut self, t: NTask) {
        let key = (t.rank, t.seq);
        self.queued_ids.insert(t.task.id, key);
        self.queue.insert(key, t);
    }

    fn take(&mut self, id: ConversationId) -> Option<NTask> {
        let key = self.queued_ids.remove(&id)?;
        self.queue.remove(&key)
    }

    fn queued_mut(&mut self, id: ConversationId) -> &mut NTask {
        let key = self.queued_ids[&id];
        self.queue.get_mut(&key).expect("queued")
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
            let mut best: Option<(i64, u64)> = None;
            for id in tasks {
                if let Some(key) = self.queued_ids.get(id)
                    && best.is_none_or(|b| *key < b)
                    && self.best_agent(&self.queue[key]).is_some()
                {
                    best = Some(*key);
                }
            }
            for id in agents {
                let Some(a) = self.agent_pos(*id) else {
                    continue;
                };
                // In rank order: the first task the agent may take is its best.
                for (key, t) in &self.queue {
                    if best.is_some_and(|b| *key >= b) {
                        break;
                    }
                    if self.eligible(t, &self.agents[a]) {
                        best = Some(*key);
                        break;
                    }
                }
            }
            let Some(key) = best else { break };
            let a = self
                .best_agent(&self.queue[&key])
                .expect("a candidate has an agent");
            let t = self.queue.remove(&key).expect("queued");
            self.queued_ids.remove(&t.task.id);
            self.give(t, a, out);
        }
    }

    fn give(&mut self, t: NTask, a: usize, out: &mut Vec<Decision>) {
        let seq = self.next_seq();
        let slot = &mut self.agents[a];
        slot.held.push((t.task.id, t.task.channel.medium()));
        slot.seq = seq;
        let (task, agent) = (t.task.id, slot.agent.id);
        self.holders.insert(task, agent);
        match self.policy.reservations {
            Some(r) => {
                let expires = self.now.saturating_add(ms(r.offer_timeout));
                out.push(Decision::Offered {
                    task,
                    agent,
                    expires_at: from_ms(expires),
                });
                self.offers.insert(task, NOffer { t, agent, expires });
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
        self.push(t);
    }

    /// Takes an offered task back from its agent.
    fn withdraw(&mut self, task: ConversationId) -> (NOffer, usize) {
        let offer = self.offers.remove(&task).expect("offered");
        self.holders.remove(&task);
        let a = self.agent_pos(offer.agent).expect("known agent");
        let seq = self.next_seq();
        let slot = &mut self.agents[a];
        slot.held.retain(|(t, _)| *t != task);
        slot.seq = seq;
        (offer, a)
    }

    fn standby_eval(&mut self, out: &mut Vec<Decision>) {
        if self.policy.standby.is_none() {
            return;
        }
        loop {
            let oldest = self.queue.values().map(|t| at_ms(t.task.enqueued_at)).min();
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
        for o in self.offers.values() {
            v.push((o.expires, EXPIRE, o.t.rank, o.t.seq, o.t.task.id));
        }
        if self.policy.rings.is_empty() && self.policy.sticky_wait.is_zero() {
            return v;
        }
        for t in self.queue.values() {
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
                    HOLD_END => self.queued_mut(id).hold = None,
                    _ => {
                        let key = self.queued_ids[&id];
                        let t = self.queue.get_mut(&key).expect("queued");
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
        if self.offers.get(&task).is_none_or(|o| o.agent != agent) {
            return Err(not_offered(agent, task));
        }
        Ok(())
    }
}

impl SyncRouter for NaiveRouter {
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.queued_ids.contains_key(&id) || self.holders.contains_key(&id) {
            return Err(duplicate(id));
        }
        let enqueued = at_ms(task.enqueued_at);
        self.advance(enqueued.max(self.now), out);
        let handed_over = self.parked.remove(&id) || task.skip_bot;
        if !handed_over && self.policy.bot_first(self.queue.len()) {
            self.parked.insert(id);
            out.push(Decision::ToBot { task: id });
            return Ok(());
        }
        self.task_seq += 1;
        let until = enqueued.saturating_add(ms(self.policy.sticky_wait));
        let hold = task
            .preferred_agent
            .filter(|p| self.now < until && self.signed_in(*p))
            .map(|p| (p, until));
        let ring = self.policy.ring_at(enqueued, self.now);
        self.push(NTask {
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
        Ok(self.take(task).is_some() || self.parked.remove(&task))
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
            None => {
                self.agent_index.insert(id, self.agents.len());
                self.agents.push(NAgent {
                    agent,
                    held: Vec::new(),
                    seq,
                    missed: 0,
                });
            }
        }
        // Tasks waiting for an agent who signs out stop waiting.
        let mut released = Vec::new();
        if !self.signed_in(id) {
            for t in self.queue.values_mut() {
                if t.hold.is_some_and(|(p, _)| p == id) {
                    t.hold = None;
                    released.push(t.task.id);
                }
            }
        }
        self.dispatch(&[id], &released, out);
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
        let Some(i) = self.agents[a].held.iter().position(|(t, _)| *t == task) else {
            return Err(not_assigned(agent, task));
        };
        // A pending offer is withdrawn (the customer left before the agent accepted).
        self.offers.remove(&task);
        let seq = self.next_seq();
        self.holders.remove(&task);
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
        self.offers.remove(&task);
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

    fn reprioritize(
        &mut self,
        task: ConversationId,
        change: Reprioritize,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let Some(mut t) = self.take(task) else {
            return Err(not_queued(task));
        };
        change.apply(&mut t.task);
        t.rank = self.policy.rank(&t.task);
        self.push(t);
        self.dispatch(&[], &[task], out);
        self.standby_eval(out);
        Ok(())
    }

    fn pick(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let a = self
            .agent_pos(agent)
            .ok_or_else(|| not_found("agent", agent))?;
        if let Some(offer) = self.offers.get(&task) {
            if offer.agent == agent {
                return self.accept(agent, task, out);
            }
            return Err(taken(task));
        }
        if self.holders.contains_key(&task) {
            return Err(taken(task));
        }
        let Some(key) = self.queued_ids.get(&task) else {
            return Err(not_queued(task));
        };
        let medium = self.queue[key].task.channel.medium();
        let slot = &self.agents[a];
        if slot.agent.presence != Presence::Online {
            return Err(not_online(agent));
        }
        if !has_room(&slot.agent.capacity, &slot.loads(), medium) {
            return Err(no_room(agent, task));
        }
        self.take(task);
        let seq = self.next_seq();
        let slot = &mut self.agents[a];
        slot.held.push((task, medium));
        slot.seq = seq;
        slot.missed = 0;
        self.holders.insert(task, agent);
        out.push(Decision::Assigned { task, agent });
        self.standby_eval(out);
        Ok(())
    }

    fn restore(&mut self, agent: AgentId, task: Task) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.queued_ids.contains_key(&id) || self.holders.contains_key(&id) {
            return Err(duplicate(id));
        }
        let a = match self.agent_pos(agent) {
            Some(a) => a,
            None => {
                self.agent_index.insert(agent, self.agents.len());
                self.agents.push(NAgent {
                    agent: placeholder_agent(agent),
                    held: Vec::new(),
                    seq: 0,
                    missed: 0,
                });
                self.agents.len() - 1
            }
        };
        self.parked.remove(&id);
        let seq = self.next_seq();
        let slot = &mut self.agents[a];
        slot.held.push((id, task.channel.medium()));
        slot.seq = seq;
        self.holders.insert(id, agent);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::build(
            self.queue.values().map(|t| &t.task),
            self.agents.iter().map(|a| AgentLoad {
                agent: a.agent.id,
                presence: a.agent.presence,
                tasks: a.held.iter().map(|(t, _)| *t).collect(),
            }),
        )
    }

    fn next_deadline(&mut self) -> Option<DateTime<Utc>> {
        self.timers().iter().map(|t| t.0).min().map(from_ms)
    }
}
