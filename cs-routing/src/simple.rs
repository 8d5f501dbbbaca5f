//! A simple, obviously correct router.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId, Medium, Presence};

use crate::error::{Error, Result, duplicate, no_room, not_online, not_queued, taken};
use crate::policy::{has_room, medium_index, placeholder_agent, validate_agent, validate_task};
use crate::router::Router;
use crate::task::{AgentLoad, Decision, QueuedTask, Reprioritize, Snapshot, Task};

/// Gives each task, highest priority first and oldest first within a priority, to the first
/// online agent (in sign-in order) that has every required skill at the required level, speaks
/// the task's language, belongs to its team (when it names one) and has a free slot for the
/// task's medium.
///
/// Linear scans over agents and tasks: fine for a few dozen agents; the fast router of this
/// crate is the one to use at scale.
#[derive(Debug, Default)]
pub struct SimpleRouter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Agents in sign-in order.
    agents: Vec<AgentSlot>,
    queue: Vec<Task>,
}

#[derive(Debug)]
struct AgentSlot {
    agent: Agent,
    tasks: Vec<(ConversationId, Medium)>,
}

impl AgentSlot {
    fn load(&self, medium: Medium) -> u16 {
        self.tasks.iter().filter(|(_, m)| *m == medium).count() as u16
    }

    fn loads(&self) -> [u16; 3] {
        let mut l = [0u16; 3];
        for (_, m) in &self.tasks {
            l[medium_index(*m)] += 1;
        }
        l
    }

    fn can_take(&self, task: &Task) -> bool {
        let a = &self.agent;
        if a.presence != Presence::Online {
            return false;
        }
        let medium = task.channel.medium();
        if self.load(medium) >= a.capacity.slots(medium) {
            return false;
        }
        if a.capacity.voice_blocks_others && medium != Medium::Voice && self.load(Medium::Voice) > 0
        {
            return false;
        }
        crate::policy::RoutingPolicy::default()
            .effective(task, 0)
            .fits(a)
    }
}

impl SimpleRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn sort_queue(&mut self) {
        self.queue.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.enqueued_at.cmp(&b.enqueued_at))
                .then(a.id.cmp(&b.id))
        });
    }

    /// Assigns whatever can be assigned now.
    fn dispatch(&mut self) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            let task = &self.queue[i];
            if let Some(slot) = self.agents.iter_mut().find(|s| s.can_take(task)) {
                let task = self.queue.remove(i);
                slot.tasks.push((task.id, task.channel.medium()));
                decisions.push(Decision::Assigned {
                    task: task.id,
                    agent: slot.agent.id,
                });
            } else {
                i += 1;
            }
        }
        decisions
    }

    fn knows_task(&self, id: ConversationId) -> bool {
        self.queue.iter().any(|t| t.id == id)
            || self
                .agents
                .iter()
                .any(|s| s.tasks.iter().any(|(t, _)| *t == id))
    }
}

#[async_trait]
impl Router for SimpleRouter {
    async fn enqueue(&self, task: Task) -> Result<Vec<Decision>> {
        validate_task(&task)?;
        let mut st = self.lock();
        if st.knows_task(task.id) {
            return Err(Error::Conflict {
                reason: format!("task {} is already queued or assigned", task.id),
            });
        }
        st.queue.push(task);
        st.sort_queue();
        Ok(st.dispatch())
    }

    async fn cancel(&self, task: ConversationId) -> Result<bool> {
        let mut st = self.lock();
        let before = st.queue.len();
        st.queue.retain(|t| t.id != task);
        Ok(st.queue.len() != before)
    }

    async fn upsert_agent(&self, agent: Agent) -> Result<Vec<Decision>> {
        validate_agent(&agent)?;
        let mut st = self.lock();
        match st.agents.iter_mut().find(|s| s.agent.id == agent.id) {
            Some(slot) => slot.agent = agent,
            None => st.agents.push(AgentSlot {
                agent,
                tasks: Vec::new(),
            }),
        }
        Ok(st.dispatch())
    }

    async fn release(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let mut st = self.lock();
        let slot = st
            .agents
            .iter_mut()
            .find(|s| s.agent.id == agent)
            .ok_or_else(|| Error::NotFound {
                what: "agent",
                id: agent.to_string(),
            })?;
        let before = slot.tasks.len();
        slot.tasks.retain(|(t, _)| *t != task);
        if slot.tasks.len() == before {
            return Err(Error::Conflict {
                reason: format!("task {task} is not assigned to agent {agent}"),
            });
        }
        Ok(st.dispatch())
    }

    async fn tick(&self, _now: DateTime<Utc>) -> Result<Vec<Decision>> {
        Ok(self.lock().dispatch())
    }

    async fn reprioritize(
        &self,
        task: ConversationId,
        change: Reprioritize,
    ) -> Result<Vec<Decision>> {
        let mut st = self.lock();
        let t = st
            .queue
            .iter_mut()
            .find(|t| t.id == task)
            .ok_or_else(|| not_queued(task))?;
        change.apply(t);
        st.sort_queue();
        Ok(st.dispatch())
    }

    async fn pick(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let mut st = self.lock();
        let a = st
            .agents
            .iter()
            .position(|s| s.agent.id == agent)
            .ok_or_else(|| Error::NotFound {
                what: "agent",
                id: agent.to_string(),
            })?;
        if st
            .agents
            .iter()
            .any(|s| s.tasks.iter().any(|(t, _)| *t == task))
        {
            return Err(taken(task));
        }
        let i = st
            .queue
            .iter()
            .position(|t| t.id == task)
            .ok_or_else(|| not_queued(task))?;
        let medium = st.queue[i].channel.medium();
        let slot = &st.agents[a];
        if slot.agent.presence != Presence::Online {
            return Err(not_online(agent));
        }
        if !has_room(&slot.agent.capacity, &slot.loads(), medium) {
            return Err(no_room(agent, task));
        }
        st.queue.remove(i);
        st.agents[a].tasks.push((task, medium));
        let mut decisions = vec![Decision::Assigned { task, agent }];
        decisions.extend(st.dispatch());
        Ok(decisions)
    }

    async fn restore(&self, agent: AgentId, task: Task) -> Result<()> {
        validate_task(&task)?;
        let mut st = self.lock();
        if st.knows_task(task.id) {
            return Err(duplicate(task.id));
        }
        let a = match st.agents.iter().position(|s| s.agent.id == agent) {
            Some(a) => a,
            None => {
                st.agents.push(AgentSlot {
                    agent: placeholder_agent(agent),
                    tasks: Vec::new(),
                });
                st.agents.len() - 1
            }
        };
        st.agents[a].tasks.push((task.id, task.channel.medium()));
        Ok(())
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let st = self.lock();
        Ok(Snapshot {
            queued: st
                .queue
                .iter()
                .enumerate()
                .map(|(position, task)| QueuedTask {
                    task: task.clone(),
                    position,
                })
                .collect(),
            agents: st
                .agents
                .iter()
                .map(|s| AgentLoad {
                    agent: s.agent.id,
                    presence: s.agent.presence,
                    tasks: s.tasks.iter().map(|(t, _)| *t).collect(),
                })
                .collect(),
        })
    }
}
