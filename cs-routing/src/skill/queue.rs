//! The task side: class heads, filing queued tasks where agents look for them, entering and
//! leaving the queue, giving a task to an agent and taking it back.

use std::cmp::Reverse;

use cs_core::{ConversationId, CustomerTier};

use super::catalog::Head;
use super::records::{ColdTask, HotTask, State};
use super::timers::{EXPIRE, HOLD_END};
use super::{NONE, SkillRouter, UNKNOWN};
use crate::policy::{at_ms, from_ms, medium_index, ms};
use crate::task::{Decision, SkillRequirement, Task};

impl SkillRouter {
    // ----- classes ------------------------------------------------------------------------

    /// Re-registers class `c`'s head after its heap lost its head or gained a better one.
    fn refresh_head(&mut self, c: u32) {
        let top = self.class_top(c);
        let class = &mut self.catalog.classes[c as usize];
        if class.q.head == top.map(|(r, s, _)| (r, s)) {
            return;
        }
        let set = &mut self.heads[class.q.slot as usize][class.q.medium as usize];
        let position = |set: &Vec<Head>, r: i64, s: u64| {
            set.binary_search_by(|h| (h.rank, h.seq).cmp(&(r, s)))
        };
        let old = class
            .q
            .head
            .map(|(r, s)| position(set, r, s).expect("a registered head"));
        class.q.head = top.map(|(r, s, _)| (r, s));
        let Some((rank, seq, task)) = top else {
            if let Some(i) = old {
                set.remove(i);
            }
            return;
        };
        let head = Head {
            rank,
            seq,
            class: c,
            task,
            lang: class.q.lang,
            min: class.q.min,
            simple: class.q.simple,
        };
        let new = position(set, rank, seq).unwrap_err();
        match old {
            // Move the entry along instead of removing and inserting.
            Some(i) if i < new => {
                set[i..new].rotate_left(1);
                set[new - 1] = head;
            }
            Some(i) => {
                set[new..=i].rotate_right(1);
                set[new] = head;
            }
            None => set.insert(new, head),
        }
    }

    /// The head of class `c`'s heap, dropping stale entries.
    #[inline]
    fn class_top(&mut self, c: u32) -> Option<(i64, u64, u32)> {
        let hot = &self.hot;
        let class = &mut self.catalog.classes[c as usize];
        while let Some(&Reverse((rank, seq, t, v))) = class.q.heap.peek() {
            if class.q.stale == 0 {
                return Some((rank, seq, t));
            }
            let task = &hot[t as usize];
            if task.state == State::Queued && task.version == v && task.class == c {
                return Some((rank, seq, t));
            }
            class.q.heap.pop();
            class.q.stale -= 1;
        }
        None
    }

    // ----- tasks --------------------------------------------------------------------------

    /// Files queued task `t` where agents look for it.
    pub(super) fn place(&mut self, t: u32) {
        let task = &mut self.hot[t as usize];
        task.version = task.version.wrapping_add(1);
        let c = task.class;
        if task.hold != NONE {
            self.agents[task.hold as usize].held.push(t);
            self.hot_agents[task.hold as usize].holds = true;
        } else if !task.excluded {
            let (rank, seq) = (task.rank, task.seq);
            let class = &mut self.catalog.classes[c as usize];
            class.q.heap.push(Reverse((rank, seq, t, task.version)));
            if class.q.head.is_none_or(|h| (rank, seq) < h) {
                self.refresh_head(c);
            }
        } else {
            let class = &mut self.catalog.classes[c as usize];
            if class.side.is_empty() {
                self.sided[class.q.slot as usize][class.q.medium as usize].push(c);
                self.sided_classes += 1;
            }
            class.side.push(t);
        }
    }

    /// Takes queued task `t` out of where agents look for it.
    pub(super) fn unplace(&mut self, t: u32) {
        let task = &mut self.hot[t as usize];
        task.version = task.version.wrapping_add(1);
        let c = task.class;
        if task.hold != NONE {
            let held = &mut self.agents[task.hold as usize].held;
            held.retain(|&x| x != t);
            self.hot_agents[task.hold as usize].holds = !held.is_empty();
        } else if task.excluded {
            let class = &mut self.catalog.classes[c as usize];
            class.side.retain(|&x| x != t);
            if class.side.is_empty() {
                self.sided[class.q.slot as usize][class.q.medium as usize].retain(|&x| x != c);
                self.sided_classes -= 1;
            }
        } else {
            // Its heap entry is now stale: dropped at once if it is the head, else when it
            // surfaces.
            let class = &mut self.catalog.classes[c as usize];
            class.q.stale += 1;
            if class.q.head == Some((task.rank, task.seq)) {
                self.refresh_head(c);
            }
        }
    }

    /// The routing class of slab task `t` at overflow ring `ring`.
    pub(super) fn class_of_task(&mut self, t: u32, ring: usize) -> u32 {
        if ring == 0 {
            return self.cold[t as usize].own;
        }
        let task = self.task(t);
        let c = self.catalog.class_by_key(&self.policy, &task, ring);
        self.grow_slots();
        c
    }

    /// Slab task `t` as it was enqueued.
    pub(super) fn task(&self, t: u32) -> Task {
        let cold = &self.cold[t as usize];
        let names = &self.catalog;
        let key = &names.classes[cold.own as usize].key;
        Task {
            id: self.hot[t as usize].id,
            channel: cold.channel,
            requirements: key
                .reqs
                .iter()
                .map(|&(s, l)| SkillRequirement::new(names.skills.name(s), l))
                .collect(),
            language: key.lang.map(|l| names.langs.name(l).to_owned()),
            priority: cold.priority,
            tier: cold.tier,
            preferred_agent: cold.preferred_agent,
            team: key
                .teams
                .as_ref()
                .and_then(|ts| ts.first())
                .map(|&t| names.teams.name(t).to_owned()),
            enqueued_at: cold.enqueued_at,
            skip_bot: cold.skip_bot,
        }
    }

    /// Puts `t` (already in the slab) into the queue at the current time.
    pub(super) fn enter_queue(&mut self, t: u32) {
        let enqueued = at_ms(self.cold[t as usize].enqueued_at);
        let ring = self.policy.ring_at(enqueued, self.now);
        self.cold[t as usize].ring = ring as u32;
        let class = self.class_of_task(t, ring);
        let task = &mut self.hot[t as usize];
        task.class = class;
        task.state = State::Queued;
        task.life = task.life.wrapping_add(1);
        self.queued_by_medium[task.medium as usize] += 1;
        if self.policy.standby.is_some() {
            self.oldest.insert((enqueued, task.seq));
        }
        self.schedule_ring(t);
        if self.hot[t as usize].hold != NONE {
            let until = self.cold[t as usize].hold_until;
            self.timer(until, HOLD_END, t);
        }
        self.place(t);
    }

    pub(super) fn leave_queue(&mut self, t: u32) {
        self.unplace(t);
        self.queued_by_medium[self.hot[t as usize].medium as usize] -= 1;
        if self.policy.standby.is_some() {
            let enqueued = at_ms(self.cold[t as usize].enqueued_at);
            self.oldest.remove(&(enqueued, self.hot[t as usize].seq));
        }
    }

    pub(super) fn give(&mut self, t: u32, a: u32, out: &mut Vec<Decision>) {
        self.leave_queue(t);
        let medium = self.hot[t as usize].medium as usize;
        self.hot_agents[a as usize].loads[medium] += 1;
        let task = self.hot[t as usize].id;
        let agent = self.hot_agents[a as usize].id;
        self.touch(a);
        match self.policy.reservations {
            Some(r) => {
                let expires = self.now.saturating_add(ms(r.offer_timeout));
                self.hot[t as usize].state = State::Offered(a);
                self.timer(expires, EXPIRE, t);
                out.push(Decision::Offered {
                    task,
                    agent,
                    expires_at: from_ms(expires),
                });
            }
            None => {
                self.hot[t as usize].state = State::Assigned(a);
                out.push(Decision::Assigned { task, agent });
            }
        }
    }

    /// Frees agent `a`'s slot of task `t`.
    #[inline]
    pub(super) fn unload(&mut self, t: u32, a: u32) {
        let medium = self.hot[t as usize].medium as usize;
        self.hot_agents[a as usize].loads[medium] -= 1;
    }

    /// Takes task `t` back from agent `a` (offer rejected or expired) and queues it again.
    pub(super) fn take_back(&mut self, t: u32, a: u32) {
        self.unload(t, a);
        self.touch(a);
        self.excluded.entry(t).or_default().push(a);
        let task = &mut self.hot[t as usize];
        task.excluded = true;
        task.hold = NONE;
        self.enter_queue(t);
    }

    pub(super) fn free_task(&mut self, t: u32, id: ConversationId) {
        let task = &mut self.hot[t as usize];
        if task.excluded {
            self.excluded.remove(&t);
        }
        task.state = State::Free;
        task.version = task.version.wrapping_add(1);
        task.life = task.life.wrapping_add(1);
        let hot = &self.hot;
        self.task_ids
            .remove(id.as_uuid().as_u128(), |p| hot[p as usize].id == id);
        self.free_tasks.push(t);
    }

    /// Stores a new task of routing class `own` (its own requirements) in the slab; returns
    /// its index. Always inlined into enqueue (restore calls it too).
    #[inline(always)]
    pub(super) fn admit(&mut self, task: &Task, own: u32, hold: Option<(u32, i64)>) -> u32 {
        self.task_seq += 1;
        let preferred = match task.preferred_agent {
            None => NONE,
            Some(p) => self.agent_index(p).unwrap_or(UNKNOWN),
        };
        let hot = HotTask {
            rank: self.policy.rank(task),
            seq: self.task_seq,
            state: State::Free,
            class: 0,
            version: 0,
            life: 0,
            id: task.id,
            preferred,
            hold: hold.map_or(NONE, |h| h.0),
            medium: medium_index(task.channel.medium()) as u8,
            vip: task.tier == CustomerTier::Vip,
            excluded: false,
        };
        let cold = ColdTask {
            ring: 0,
            channel: task.channel,
            priority: task.priority,
            tier: task.tier,
            preferred_agent: task.preferred_agent,
            enqueued_at: task.enqueued_at,
            own,
            hold_until: hold.map_or(0, |h| h.1),
            skip_bot: task.skip_bot,
        };
        match self.free_tasks.pop() {
            Some(t) => {
                let old = &mut self.hot[t as usize];
                let (version, life) = (old.version, old.life);
                *old = hot;
                old.version = version;
                old.life = life;
                self.cold[t as usize] = cold;
                t
            }
            None => {
                self.hot.push(hot);
                self.cold.push(cold);
                self.hot.len() as u32 - 1
            }
        }
    }
}
