//! The router's operations ([`SyncRouter`]): each checks its input, changes the state and runs
//! dispatch.

use std::cmp::Reverse;

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId, CustomerTier, Presence};

use super::records::{ColdAgent, HotAgent, SkillList, State};
use super::timers::HOLD_END;
use super::{NONE, SkillRouter};
use crate::error::{
    Result, duplicate, no_room, not_assigned, not_found, not_offered, not_online, not_queued, taken,
};
use crate::policy::{at_ms, from_ms, ms, placeholder_agent, validate_agent, validate_task};
use crate::router::SyncRouter;
use crate::task::{AgentLoad, Decision, Reprioritize, Snapshot, Task};

impl SkillRouter {
    /// Adds agent `id` with an empty profile (offline, no skills, no capacity) that
    /// [`Self::set_profile`] fills in; returns its slab index.
    fn add_agent(&mut self, id: AgentId) -> u32 {
        let a = self.agents.len() as u32;
        self.pool_live += 3;
        self.seqs.push(0);
        self.hot_agents.push(HotAgent {
            id,
            filed: u64::MAX,
            more_langs: false,
            cap: [0; 3],
            loads: [0; 3],
            blocks: false,
            online: false,
            standby: false,
            holds: false,
            team: NONE,
            langs: 0,
        });
        self.agents.push(ColdAgent {
            agent: placeholder_agent(id),
            skills: SkillList::default(),
            bits: Vec::new(),
            more_langs: Vec::new(),
            held: Vec::new(),
            missed: 0,
        });
        self.agent_ids.insert(id.as_uuid().as_u128(), a);
        a
    }

    /// The slab indexes of `task` and `agent` when the task is offered to the agent.
    fn offered(&self, agent: AgentId, task: ConversationId) -> Result<(u32, u32)> {
        let a = self
            .agent_index(agent)
            .ok_or_else(|| not_found("agent", agent))?;
        match self.task_index(task) {
            Some(t) if self.hot[t as usize].state == State::Offered(a) => Ok((t, a)),
            _ => Err(not_offered(agent, task)),
        }
    }
}

impl SyncRouter for SkillRouter {
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.task_index(id).is_some() {
            return Err(duplicate(id));
        }
        let enqueued = at_ms(task.enqueued_at);
        self.advance(enqueued.max(self.now), out);
        let handed_over = self.parked.remove(&id) || task.skip_bot;
        if !handed_over && self.policy.bot_first(self.queued()) {
            self.parked.insert(id);
            out.push(Decision::ToBot { task: id });
            self.flush();
            return Ok(());
        }
        let until = enqueued.saturating_add(ms(self.policy.sticky_wait));
        let hold = task
            .preferred_agent
            .filter(|_| self.now < until)
            .and_then(|p| self.agent_index(p))
            .filter(|&p| self.agents[p as usize].agent.presence != Presence::Offline)
            .map(|p| (p, until));
        let own = self.catalog.own_class(&self.policy, &task);
        self.grow_slots();
        let t = self.admit(&task, own, hold);
        self.task_ids.insert(id.as_uuid().as_u128(), t);
        self.enter_queue(t);
        if !self.class_has_other(t) {
            self.dispatch(&[], &[t], out);
        }
        self.settle(out);
        Ok(())
    }

    fn cancel(&mut self, task: ConversationId) -> Result<bool> {
        if let Some(t) = self.task_index(task)
            && self.hot[t as usize].state == State::Queued
        {
            self.leave_queue(t);
            self.free_task(t, task);
            return Ok(true);
        }
        Ok(self.parked.remove(&task))
    }

    fn upsert_agent(&mut self, agent: Agent, out: &mut Vec<Decision>) -> Result<()> {
        validate_agent(&agent)?;
        let a = match self.agent_index(agent.id) {
            Some(a) => a,
            None => self.add_agent(agent.id),
        };
        let signed_out = agent.presence == Presence::Offline;
        self.set_profile(a, agent);
        if signed_out && self.hot_agents[a as usize].holds {
            // Tasks waiting for an agent who signs out stop waiting.
            let held = self.agents[a as usize].held.clone();
            for &t in &held {
                self.unplace(t);
                self.hot[t as usize].hold = NONE;
                self.place(t);
            }
            self.touch(a);
            self.dispatch(&[a], &held, out);
            self.settle(out);
            return Ok(());
        }
        self.touch_and_dispatch(a, out);
        Ok(())
    }

    fn release(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let a = self
            .agent_index(agent)
            .ok_or_else(|| not_found("agent", agent))?;
        let t = match self.task_index(task) {
            // An offer is withdrawn (the customer left before the agent accepted).
            Some(t) if matches!(self.hot[t as usize].state, State::Assigned(x) | State::Offered(x) if x == a) => {
                t
            }
            _ => return Err(not_assigned(agent, task)),
        };
        self.unload(t, a);
        self.free_task(t, task);
        self.touch_and_dispatch(a, out);
        Ok(())
    }

    fn accept(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let (t, a) = self.offered(agent, task)?;
        self.hot[t as usize].state = State::Assigned(a);
        self.agents[a as usize].missed = 0;
        out.push(Decision::Assigned { task, agent });
        Ok(())
    }

    fn reject(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let (t, a) = self.offered(agent, task)?;
        self.take_back(t, a);
        self.dispatch(&[a], &[t], out);
        self.settle(out);
        Ok(())
    }

    fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<Decision>) -> Result<()> {
        self.advance(at_ms(now).max(self.now), out);
        self.flush();
        Ok(())
    }

    fn reprioritize(
        &mut self,
        task: ConversationId,
        change: Reprioritize,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let t = match self.task_index(task) {
            Some(t) if self.hot[t as usize].state == State::Queued => t,
            _ => return Err(not_queued(task)),
        };
        self.unplace(t);
        let cold = &mut self.cold[t as usize];
        cold.priority = change.priority;
        if let Some(tier) = change.tier {
            cold.tier = tier;
        }
        let rank = self
            .policy
            .rank_of(at_ms(cold.enqueued_at), cold.priority, cold.tier);
        let (vip, hold_until) = (cold.tier == CustomerTier::Vip, cold.hold_until);
        let hot = &mut self.hot[t as usize];
        hot.rank = rank;
        hot.vip = vip;
        // Timers carry the rank they fire in: schedule the task's again.
        hot.life = hot.life.wrapping_add(1);
        if hot.hold != NONE {
            self.timer(hold_until, HOLD_END, t);
        }
        self.schedule_ring(t);
        self.place(t);
        self.dispatch(&[], &[t], out);
        self.settle(out);
        Ok(())
    }

    fn pick(
        &mut self,
        agent: AgentId,
        task: ConversationId,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let a = self
            .agent_index(agent)
            .ok_or_else(|| not_found("agent", agent))?;
        let t = self.task_index(task).ok_or_else(|| not_queued(task))?;
        match self.hot[t as usize].state {
            State::Queued => {}
            State::Offered(x) if x == a => return self.accept(agent, task, out),
            State::Offered(_) | State::Assigned(_) => return Err(taken(task)),
            State::Free => return Err(not_queued(task)),
        }
        let m = self.hot[t as usize].medium as usize;
        let hot = &self.hot_agents[a as usize];
        if !hot.online {
            return Err(not_online(agent));
        }
        if !hot.room(m) {
            return Err(no_room(agent, task));
        }
        self.leave_queue(t);
        self.hot_agents[a as usize].loads[m] += 1;
        self.hot[t as usize].state = State::Assigned(a);
        self.agents[a as usize].missed = 0;
        self.touch(a);
        out.push(Decision::Assigned { task, agent });
        self.settle(out);
        Ok(())
    }

    fn restore(&mut self, agent: AgentId, task: Task) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.task_index(id).is_some() {
            return Err(duplicate(id));
        }
        let a = match self.agent_index(agent) {
            Some(a) => a,
            None => {
                let a = self.add_agent(agent);
                self.set_profile(a, placeholder_agent(agent));
                a
            }
        };
        self.parked.remove(&id);
        let own = self.catalog.own_class(&self.policy, &task);
        self.grow_slots();
        let t = self.admit(&task, own, None);
        self.task_ids.insert(id.as_uuid().as_u128(), t);
        let hot = &mut self.hot[t as usize];
        hot.class = own;
        hot.state = State::Assigned(a);
        let m = hot.medium as usize;
        self.hot_agents[a as usize].loads[m] += 1;
        self.touch(a);
        self.flush();
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let mut q: Vec<u32> = (0..self.hot.len() as u32)
            .filter(|&t| self.hot[t as usize].state == State::Queued)
            .collect();
        q.sort_by_key(|&t| (self.hot[t as usize].rank, self.hot[t as usize].seq));
        let queued: Vec<Task> = q.into_iter().map(|t| self.task(t)).collect();
        let mut held: Vec<Vec<ConversationId>> = vec![Vec::new(); self.agents.len()];
        for task in &self.hot {
            if let State::Offered(a) | State::Assigned(a) = task.state {
                held[a as usize].push(task.id);
            }
        }
        Snapshot::build(
            queued.iter(),
            self.agents.iter().zip(held).map(|(a, tasks)| AgentLoad {
                agent: a.agent.id,
                presence: a.agent.presence,
                tasks,
            }),
        )
    }

    fn next_deadline(&mut self) -> Option<DateTime<Utc>> {
        // Timers are deleted lazily: drop the dead ones on top (each once), so the call costs
        // O(log n) amortised instead of a scan of every timer.
        while let Some(Reverse(top)) = self.timers.peek() {
            if self.timer_live(top) {
                return Some(from_ms(top.at));
            }
            self.timers.pop();
        }
        None
    }
}
