//! The router's operations ([`SyncRouter`]): each checks its input, changes the state and runs
//! dispatch.

use std::cmp::Reverse;

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId};

use super::records::{ColdAgent, HotAgent, SkillList, State};
use super::{NONE, SkillRouter};
use crate::error::{Result, duplicate, not_assigned, not_found, not_offered};
use crate::policy::{at_ms, from_ms, ms, validate_agent, validate_task};
use crate::router::SyncRouter;
use crate::task::{AgentLoad, Decision, Snapshot, Task};

impl SkillRouter {
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
            None => {
                let a = self.agents.len() as u32;
                self.pool_live += 3;
                self.seqs.push(0);
                self.hot_agents.push(HotAgent {
                    id: agent.id,
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
                    agent: agent.clone(),
                    skills: SkillList::default(),
                    bits: Vec::new(),
                    more_langs: Vec::new(),
                    held: Vec::new(),
                    missed: 0,
                });
                self.agent_ids.insert(agent.id.as_uuid().as_u128(), a);
                a
            }
        };
        self.set_profile(a, agent);
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

    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let mut live: Vec<i64> = self
            .timers
            .iter()
            .filter(|Reverse(t)| self.timer_live(t))
            .map(|Reverse(t)| t.0)
            .collect();
        live.sort_unstable();
        live.first().copied().map(from_ms)
    }
}
