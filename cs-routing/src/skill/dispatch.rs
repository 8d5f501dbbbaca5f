//! Matching: the best agent for a task, the best task for an agent, and the dispatch loop that
//! reaches the policy's fixed point after every event.

use super::SkillRouter;
use super::pools::LEVELS;
use super::records::State;
use super::{NONE, UNKNOWN};
use crate::task::Decision;

impl SkillRouter {
    /// Whether queued task `t`'s class holds another live task in its heap. Then no free agent
    /// can take `t`: any agent eligible for it would be eligible for that task too (same class,
    /// no hold, no exclusions), and the queue was at its fixed point before `t` came.
    #[inline]
    pub(super) fn class_has_other(&self, t: u32) -> bool {
        let task = &self.hot[t as usize];
        let class = &self.catalog.classes[task.class as usize];
        let live = class.q.heap.len() - class.q.stale as usize;
        live > usize::from(task.hold == NONE && !task.excluded)
    }

    /// Whether agent `a` may no longer be offered task `t`.
    #[inline]
    pub(super) fn is_excluded(&self, t: u32, a: u32) -> bool {
        self.excluded.get(&t).is_some_and(|x| x.contains(&a))
    }

    /// The preferred agent of task `t`, resolving an id first seen after the task.
    #[inline]
    fn preferred(&mut self, t: u32) -> Option<u32> {
        let p = self.hot[t as usize].preferred;
        if p == UNKNOWN {
            let id = self.cold[t as usize].preferred_agent?;
            let a = self.agent_index(id)?;
            self.hot[t as usize].preferred = a;
            return Some(a);
        }
        (p != NONE).then_some(p)
    }

    /// Agent `a`'s order for task `t` among agents that are not preferred: (proficiency gap,
    /// load, seq), smaller first (see [`crate::policy`]).
    #[inline]
    fn order(&self, t: u32, a: u32) -> (u8, u16, u64) {
        let task = &self.hot[t as usize];
        let gap = if task.vip {
            self.catalog.classes[task.class as usize]
                .key
                .reqs
                .first()
                .and_then(|r| self.agents[a as usize].level(r.0))
                .map_or(0, |l| 10u8.saturating_sub(l))
        } else {
            0
        };
        (
            gap,
            self.hot_agents[a as usize].load(),
            self.seqs[a as usize],
        )
    }

    /// The best agent for queued task `t`: from the pools, or among the agents this event has
    /// touched and not filed yet.
    fn best_agent(&mut self, t: u32) -> Option<u32> {
        let hold = self.hot[t as usize].hold;
        if hold != NONE {
            return self.eligible(t, hold).then_some(hold);
        }
        if let Some(p) = self.preferred(t)
            && self.eligible(t, p)
        {
            return Some(p);
        }
        let mut best = self.best_pooled(t).map(|a| (self.order(t, a), a));
        for i in 0..self.pending.len() {
            let a = self.pending[i];
            if self.hot_agents[a as usize].filed != self.seqs[a as usize] && self.eligible(t, a) {
                let o = self.order(t, a);
                if best.is_none_or(|b| o < b.0) {
                    best = Some((o, a));
                }
            }
        }
        best.map(|b| b.1)
    }

    /// The best agent for queued task `t` among those filed in the pools.
    fn best_pooled(&mut self, t: u32) -> Option<u32> {
        let task = &self.hot[t as usize];
        let class = &self.catalog.classes[task.class as usize];
        let (m, slot, min, vip) = (
            task.medium as usize,
            class.q.slot as usize,
            class.q.min,
            task.vip,
        );
        self.drain(m);
        let first = Self::pool_index(slot, m, min);
        let last = Self::pool_index(slot, m, LEVELS as u8 - 1);
        let union = self.pools.occupied[first..=last]
            .iter()
            .fold(0, |u, &b| u | b);
        if union == 0 {
            return None;
        }
        if vip {
            // Highest level first, then least loaded, then longest idle.
            for index in (first..=last).rev() {
                for load in self.pools.loads(self.pools.occupied[index]) {
                    if let Some((_, a)) = self.first_in_pool(index, load, t) {
                        return Some(a);
                    }
                }
            }
            return None;
        }
        for load in self.pools.loads(union) {
            let mut best: Option<(u64, u32)> = None;
            for index in first..=last {
                if let Some(found) = self.first_in_pool(index, load, t)
                    && best.is_none_or(|b| found < b)
                {
                    best = Some(found);
                }
            }
            if let Some((_, a)) = best {
                return Some(a);
            }
        }
        None
    }

    /// The best-ranked queued task agent `a` may take: (rank, seq, task). Walks the class
    /// heads under each of the agent's skills in rank order and stops at the first class the
    /// agent fits.
    fn best_task(&self, a: u32) -> Option<(i64, u64, u32)> {
        if !self.available(a) {
            return None;
        }
        let mut best: Option<(i64, u64, u32)> = None;
        let better = |best: &Option<(i64, u64, u32)>, rank: i64, seq: u64| {
            best.is_none_or(|b| (rank, seq) < (b.0, b.1))
        };
        let hot = &self.hot_agents[a as usize];
        let mut media = [0usize; 3];
        let mut n = 0;
        for m in 0..3 {
            if hot.room(m) {
                media[n] = m;
                n += 1;
            }
        }
        if n == 0 {
            // No room: nothing is eligible (an agent on a call finishing a chat stops here,
            // without reading the rest of its record).
            return None;
        }
        let media = &media[..n];
        let ag = &self.agents[a as usize];
        if hot.holds {
            for &t in &ag.held {
                let task = &self.hot[t as usize];
                if better(&best, task.rank, task.seq) && self.eligible(t, a) {
                    best = Some((task.rank, task.seq, t));
                }
            }
        }
        let sided = self.sided_classes > 0;
        let slots =
            std::iter::once((0, u8::MAX)).chain(ag.skills.iter().map(|(s, l)| (s as usize + 1, l)));
        for (slot, level) in slots {
            for &m in media {
                for h in &self.heads[slot][m] {
                    if !better(&best, h.rank, h.seq) {
                        break;
                    }
                    if h.min <= level
                        && (h.lang == NONE || self.speaks(a, h.lang))
                        && (h.simple || self.fits(a, h.class))
                    {
                        best = Some((h.rank, h.seq, h.task));
                        break;
                    }
                }
                if !sided {
                    continue;
                }
                for &c in &self.sided[slot][m] {
                    if !self.fits(a, c) {
                        continue;
                    }
                    for &t in &self.catalog.classes[c as usize].side {
                        let task = &self.hot[t as usize];
                        if better(&best, task.rank, task.seq) && !self.is_excluded(t, a) {
                            best = Some((task.rank, task.seq, t));
                        }
                    }
                }
            }
        }
        best
    }

    /// Lets agent `a`, just changed, take work; then files the agents the event touched.
    pub(super) fn touch_and_dispatch(&mut self, a: u32, out: &mut Vec<Decision>) {
        self.touch(a);
        self.dispatch(&[a], &[], out);
        self.settle(out);
    }

    /// The end of every event: the standby pool's state, then the pools.
    pub(super) fn settle(&mut self, out: &mut Vec<Decision>) {
        self.standby_eval(out);
        self.flush();
    }

    /// Serves the best-ranked task with an eligible agent until none is left; only the changed
    /// agents and tasks can create a match.
    pub(super) fn dispatch(&mut self, agents: &[u32], tasks: &[u32], out: &mut Vec<Decision>) {
        loop {
            // (rank, seq, task, agent if already known)
            let mut best: Option<(i64, u64, u32, Option<u32>)> = None;
            for &t in tasks {
                if self.hot[t as usize].state != State::Queued {
                    continue;
                }
                if let Some(a) = self.best_agent(t) {
                    let task = &self.hot[t as usize];
                    if best.is_none_or(|b| (task.rank, task.seq) < (b.0, b.1)) {
                        best = Some((task.rank, task.seq, t, Some(a)));
                    }
                }
            }
            for &a in agents {
                if let Some((rank, seq, t)) = self.best_task(a)
                    && best.is_none_or(|b| (rank, seq) < (b.0, b.1))
                {
                    // With one changed agent, a task it found has no other free agent.
                    let known = (agents.len() == 1 && !tasks.contains(&t)).then_some(a);
                    best = Some((rank, seq, t, known));
                }
            }
            let Some((_, _, t, agent)) = best else { break };
            let a = agent
                .or_else(|| self.best_agent(t))
                .expect("a candidate has an agent");
            self.give(t, a, out);
        }
    }

    #[inline]
    pub(super) fn standby_eval(&mut self, out: &mut Vec<Decision>) {
        if self.policy.standby.is_some() {
            self.standby_switch(out);
        }
    }

    fn standby_switch(&mut self, out: &mut Vec<Decision>) {
        loop {
            let oldest = self.oldest.first().map(|o| o.0);
            let active = self.policy.standby_active(self.queued(), oldest, self.now);
            if active == self.standby_active {
                return;
            }
            self.standby_active = active;
            if !active {
                return;
            }
            let pool: Vec<u32> = (0..self.agents.len() as u32)
                .filter(|&a| self.hot_agents[a as usize].standby)
                .collect();
            self.dispatch(&pool, &[], out);
        }
    }
}
