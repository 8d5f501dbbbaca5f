//! The agents' side: profiles, eligibility, and filing free agents in the pools.

use cs_core::{Agent, Presence};

use super::NONE;
use super::SkillRouter;
use super::catalog::bits_of;
use super::pools::Pools;
use super::records::SkillList;

impl SkillRouter {
    #[inline]
    pub(super) fn available(&self, a: u32) -> bool {
        let a = &self.hot_agents[a as usize];
        a.online && (self.standby_active || !a.standby)
    }

    /// Marks activity: a new longest-idle position (the agent's pool entries go stale); the
    /// agent is filed again when the event has settled ([`Self::flush`]).
    #[inline]
    pub(super) fn touch(&mut self, a: u32) {
        self.agent_seq += 1;
        self.seqs[a as usize] = self.agent_seq;
        self.pending.push(a);
    }

    /// Registers every agent touched by this event as free for the media it has room in, at
    /// its final position; [`Self::drain`] files them in the pools.
    pub(super) fn flush(&mut self) {
        // Pool queues stay in longest-idle order only if agents are filed in seq order.
        let mut pending = std::mem::take(&mut self.pending);
        if pending.len() > 1 {
            pending.sort_unstable_by_key(|&a| self.seqs[a as usize]);
        }
        for &a in &pending {
            let seq = self.seqs[a as usize];
            let hot = &mut self.hot_agents[a as usize];
            if hot.filed == seq {
                continue;
            }
            hot.filed = seq;
            if !hot.online {
                continue;
            }
            for m in 0..3 {
                if hot.room(m) {
                    self.dirty[m].push((a, seq));
                }
            }
        }
        pending.clear();
        self.pending = pending;
        let limit = 2 * self.agents.len() + 1024;
        for m in 0..3 {
            // While tasks of a medium wait, its next task is near: file now, in the event
            // that freed the agent, rather than all at once in that task's.
            if self.dirty[m].is_empty() {
                continue;
            }
            if self.queued_by_medium[m] > 0 {
                self.drain(m);
            } else if self.dirty[m].len() > limit {
                let seqs = &self.seqs;
                self.dirty[m].retain(|&(a, s)| seqs[a as usize] == s);
            }
        }
    }

    /// Files the agents registered free for medium `m` in its pools, in the order they were
    /// registered (longest idle first). Pools of a medium no task has asked for since are left
    /// alone: an agent who takes and finishes work many times between two such tasks costs
    /// one entry here, not one per pool every time.
    #[inline]
    pub(super) fn drain(&mut self, m: usize) {
        if !self.dirty[m].is_empty() {
            self.drain_now(m);
        }
    }

    fn drain_now(&mut self, m: usize) {
        let mut dirty = std::mem::take(&mut self.dirty[m]);
        for &(a, seq) in &dirty {
            if self.seqs[a as usize] == seq {
                self.file(a, m, seq);
            }
        }
        dirty.clear();
        self.dirty[m] = dirty;
        if self.pools.entries > 4 * self.pool_live + 4096 {
            let seqs = &self.seqs;
            self.pools.compact(|a, s| seqs[a as usize] == s);
        }
    }

    /// Pool entries of agent `a` (unchanged since its activity `seq`) for medium `m`.
    fn file(&mut self, a: u32, m: usize, seq: u64) {
        let load = self.hot_agents[a as usize].load() as usize;
        let ag = &self.agents[a as usize];
        let slots = std::iter::once((0usize, 0u8))
            .filter(|_| self.slot0_filed)
            .chain(ag.skills.iter().map(|(s, l)| (s as usize + 1, l)));
        for (slot, level) in slots {
            self.pools
                .push(Self::pool_index(slot, m, level), load, (a, seq));
        }
    }

    /// The first class without skill requirements exists: from now on agents are filed under
    /// slot 0 too, starting with every agent filed so far, longest idle first (those still
    /// registered are filed first, so all filed agents are known).
    pub(super) fn file_slot0(&mut self) {
        for m in 0..3 {
            self.drain(m);
        }
        self.slot0_filed = true;
        let mut filed: Vec<(u64, u32)> = (0..self.hot_agents.len() as u32)
            .filter(|&a| {
                let hot = &self.hot_agents[a as usize];
                hot.online && hot.filed == self.seqs[a as usize]
            })
            .map(|a| (self.seqs[a as usize], a))
            .collect();
        filed.sort_unstable();
        for (seq, a) in filed {
            let hot = &self.hot_agents[a as usize];
            let load = hot.load() as usize;
            for m in 0..3 {
                if hot.room(m) {
                    self.pools.push(Self::pool_index(0, m, 0), load, (a, seq));
                }
            }
        }
    }

    pub(super) fn set_profile(&mut self, a: u32, agent: Agent) {
        let mut skills: Vec<(u32, u8)> = Vec::with_capacity(agent.skills.len());
        for s in &agent.skills {
            let id = self.catalog.skills.id(&s.name);
            if !skills.iter().any(|x| x.0 == id) {
                skills.push((id, s.level));
            }
        }
        skills.sort_unstable();
        self.grow_slots();
        let (mut langs, mut more_langs) = (0u64, Vec::new());
        for l in &agent.languages {
            match self.catalog.langs.id(l) {
                id @ 0..64 => langs |= 1 << id,
                id => more_langs.push(id),
            }
        }
        let team = agent
            .team
            .as_deref()
            .map_or(NONE, |t| self.catalog.teams.id(t));
        let cap = agent.capacity;
        let hot = &mut self.hot_agents[a as usize];
        hot.cap = [cap.chat, cap.email, cap.voice];
        hot.blocks = cap.voice_blocks_others;
        hot.online = agent.presence == Presence::Online;
        hot.standby = self.policy.is_standby(&agent);
        hot.team = team;
        hot.langs = langs;
        hot.more_langs = !more_langs.is_empty();
        let ag = &mut self.agents[a as usize];
        self.pool_live = self.pool_live + 3 * (skills.len() + 1) - 3 * (ag.skills.len() + 1);
        ag.bits = bits_of(&skills);
        ag.more_langs = more_langs;
        ag.skills = SkillList::new(skills);
        ag.agent = agent;
    }

    /// Whether agent `a` speaks language `lang`.
    #[inline]
    pub(super) fn speaks(&self, a: u32, lang: u32) -> bool {
        let hot = &self.hot_agents[a as usize];
        if lang < 64 {
            hot.langs >> lang & 1 == 1
        } else {
            hot.more_langs && self.agents[a as usize].more_langs.contains(&lang)
        }
    }

    /// Whether agent `a`'s language and team meet class `c`.
    #[inline]
    fn fits_lang_team(&self, a: u32, c: u32) -> bool {
        let ag = &self.hot_agents[a as usize];
        let class = &self.catalog.classes[c as usize];
        (class.q.lang == NONE || self.speaks(a, class.q.lang))
            && class
                .key
                .teams
                .as_ref()
                .is_none_or(|ts| ag.team != NONE && ts.contains(&ag.team))
    }

    /// Whether agent `a`'s profile meets class `c` (skills, language, team).
    #[inline]
    pub(super) fn fits(&self, a: u32, c: u32) -> bool {
        if !self.fits_lang_team(a, c) {
            return false;
        }
        let ag = &self.agents[a as usize];
        let class = &self.catalog.classes[c as usize];
        if class.bits.len() > ag.bits.len()
            || class
                .bits
                .iter()
                .zip(&ag.bits)
                .any(|(need, have)| need & !have != 0)
        {
            return false;
        }
        class
            .key
            .reqs
            .iter()
            .all(|&(s, min)| ag.level(s).is_some_and(|l| l >= min))
    }

    /// Whether agent `a` may take queued task `t` now; `pooled` when `a` comes from a pool of the
    /// task's class's primary skill at a level the class accepts.
    #[inline]
    fn eligible_as(&self, t: u32, a: u32, pooled: bool) -> bool {
        let task = &self.hot[t as usize];
        self.available(a)
            && self.hot_agents[a as usize].room(task.medium as usize)
            && (task.hold == NONE || task.hold == a)
            && !(task.excluded && self.is_excluded(t, a))
            && if pooled && self.catalog.classes[task.class as usize].q.simple {
                self.fits_lang_team(a, task.class)
            } else {
                self.fits(a, task.class)
            }
    }

    /// Whether agent `a` may take queued task `t` now.
    #[inline]
    pub(super) fn eligible(&self, t: u32, a: u32) -> bool {
        self.eligible_as(t, a, false)
    }

    /// The first agent in pool queue (index, load) eligible for `t`, dropping stale entries at
    /// the front: (seq, agent).
    pub(super) fn first_in_pool(
        &mut self,
        index: usize,
        load: usize,
        t: u32,
    ) -> Option<(u64, u32)> {
        if self.pools.occupied[index] & Pools::bit(load) == 0 {
            return None;
        }
        let seqs = &self.seqs;
        let q = self.pools.queue(index, load);
        let mut dropped = 0;
        while let Some(&(a, s)) = q.front() {
            if seqs[a as usize] == s {
                break;
            }
            q.pop_front();
            dropped += 1;
        }
        let empty = q.is_empty();
        self.pools.entries -= dropped;
        if empty {
            if load < 63 {
                self.pools.occupied[index] &= !Pools::bit(load);
            }
            return None;
        }
        let q = &self.pools.queues[self.pools.pos(index, load)];
        q.iter()
            .filter(|&&(a, s)| self.seqs[a as usize] == s)
            .find(|&&(a, _)| self.eligible_as(t, a, true))
            .map(|&(a, s)| (s, a))
    }
}
