//! The fast policy router: interned routing classes, per-class task heaps, per-skill agent
//! pools, skill bitsets and a timer heap.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ConversationId, Presence};

use crate::error::Result;
use crate::naive::{duplicate, from_ms, not_assigned, not_found, not_offered};
use crate::policy::{MEDIA, RoutingPolicy, at_ms, has_room, is_vip, medium_index, ms};
use crate::router::SyncRouter;
use crate::simple::{validate_agent, validate_task};
use crate::task::{AgentLoad, Decision, Snapshot, Task};

/// A small multiplicative hasher for ids and interned keys (the std SipHash costs more than a
/// routing decision).
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves an input's high bits out of the hash's low bits (the bucket):
        // fold them in, or ids that differ only there (a counter in a UUID's tail) collide.
        let x = self.0 ^ (self.0 >> 32);
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (x >> 29)
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// Interns strings to dense ids.
#[derive(Debug, Default)]
struct Interner {
    ids: FxMap<String, u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.insert(s.to_owned(), i);
        i
    }
}

/// A routing class: one distinct (medium, requirements, language, teams), with its waiting tasks.
#[derive(Debug, Default, Hash, PartialEq, Eq, Clone)]
struct ClassKey {
    medium: u8,
    reqs: Vec<(u32, u8)>,
    lang: Option<u32>,
    teams: Option<Vec<u32>>,
}

#[derive(Debug)]
struct Class {
    key: ClassKey,
    /// Required skills as a bitset.
    bits: Vec<u64>,
    /// Tasks with no exclusions: (rank, seq, task, version), lazily deleted.
    heap: BinaryHeap<Reverse<(i64, u64, u32, u32)>>,
    /// Tasks some agent rejected (checked one by one).
    side: Vec<u32>,
    /// Primary skill slot (0 = no requirement).
    slot: usize,
    /// The head registered in `heads`.
    head: Option<(i64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Queued,
    Offered(u32),
    Assigned(u32),
}

#[derive(Debug)]
struct FTask {
    task: Task,
    state: State,
    rank: i64,
    seq: u64,
    ring: usize,
    class: u32,
    /// Bumped whenever the task moves between heaps/lists (heap entries carry it).
    version: u32,
    /// Bumped whenever the task (re-)enters the queue (timers carry it).
    life: u32,
    hold: Option<(u32, i64)>,
    excluded: Vec<u32>,
}

#[derive(Debug)]
struct FAgent {
    agent: Agent,
    /// (skill id, level), sorted by skill id.
    skills: Vec<(u32, u8)>,
    bits: Vec<u64>,
    langs: Vec<u32>,
    team: Option<u32>,
    standby: bool,
    loads: [u16; 3],
    tasks: Vec<u32>,
    /// Tasks waiting for this agent (sticky hold).
    held: Vec<u32>,
    seq: u64,
    missed: u32,
    /// The `free` counters (slot * 3 + medium) this agent adds one to since its last touch.
    counted: Vec<u32>,
}

impl FAgent {
    fn level(&self, skill: u32) -> Option<u8> {
        self.skills
            .binary_search_by_key(&skill, |s| s.0)
            .ok()
            .map(|i| self.skills[i].1)
    }

    fn load(&self) -> u16 {
        self.loads.iter().sum()
    }
}

const EXPIRE: u8 = 0;
const HOLD_END: u8 = 1;
const RING_UP: u8 = 2;

/// (time, kind, rank, seq, task, life)
type Timer = (i64, u8, i64, u64, u32, u32);

/// Highest skill level.
const LEVELS: usize = 11;

/// The fast router of the routing policy ([`crate::policy`]); it makes exactly the decisions of
/// [`crate::NaiveRouter`] (a property test holds it to that) at a cost that does not grow with
/// the queue or the number of agents.
///
/// - Each distinct requirement set (medium, skills with levels, language, teams) is interned into
///   a routing class with a heap of its waiting tasks by rank; an agent who frees up looks only
///   at the classes indexed under its own skills, and only at their heads.
/// - Agents with a free slot sit in pools per (medium, primary skill, level, load), in
///   longest-idle order, so a new task finds its agent at the front of a few queues.
/// - Skill requirements are checked with bitsets; off-line, busy or edited agents are dropped from
///   the pools lazily.
/// - Offers, sticky holds and overflow rings are timers in one heap, fired by
///   [`crate::Router::tick`].
///
/// It is a single-writer state machine ([`SyncRouter`], `&mut self`): wrap it in
/// [`crate::Shared`] for an [`crate::Router`], and run one per tenant (shard) to use more cores.
#[derive(Debug)]
pub struct SkillRouter {
    policy: RoutingPolicy,
    now: i64,
    skills: Interner,
    langs: Interner,
    teams: Interner,
    classes: Vec<Class>,
    class_ids: FxMap<ClassKey, u32>,
    /// Heads of non-empty classes by primary skill slot (0 = no requirement, else skill + 1)
    /// and medium: (rank, seq, class), best first.
    heads: Vec<[BTreeSet<(i64, u64, u32)>; 3]>,
    /// Classes with rejected tasks, by slot and medium.
    sided: Vec<[Vec<u32>; 3]>,
    agents: Vec<FAgent>,
    /// Each agent's activity seq, kept apart so pool scans stay in cache.
    seqs: Vec<u64>,
    agent_ids: FxMap<AgentId, u32>,
    /// Free agents: index `(slot * LEVELS + level) * 3 + medium`, then by load: (agent, seq).
    pools: Vec<Vec<VecDeque<(u32, u64)>>>,
    /// By pool index: bit `load` (below 64) is set whenever that queue is not empty, so probes
    /// skip empty queues without touching them.
    occupied: Vec<u64>,
    pool_entries: usize,
    pool_live: usize,
    /// By `slot * 3 + medium`: agents whose last touch filed them as free there (a superset of
    /// the live pool entries); zero means no pool under that slot can hold an eligible agent.
    free: Vec<u32>,
    tasks: Vec<FTask>,
    free_tasks: Vec<u32>,
    task_ids: FxMap<ConversationId, u32>,
    queued: usize,
    /// (enqueued ms, seq) of waiting tasks, kept only with a standby pool.
    oldest: BTreeSet<(i64, u64)>,
    timers: BinaryHeap<Reverse<Timer>>,
    parked: FxSet<ConversationId>,
    /// A reused key for class look-ups.
    scratch: ClassKey,
    standby_active: bool,
    agent_seq: u64,
    task_seq: u64,
}

impl SkillRouter {
    /// An empty router with `policy`.
    pub fn new(policy: RoutingPolicy) -> Self {
        Self {
            policy,
            now: i64::MIN,
            skills: Interner::default(),
            langs: Interner::default(),
            teams: Interner::default(),
            classes: Vec::new(),
            class_ids: FxMap::default(),
            heads: vec![Default::default()],
            sided: vec![Default::default()],
            agents: Vec::new(),
            seqs: Vec::new(),
            agent_ids: FxMap::default(),
            pools: (0..LEVELS * 3).map(|_| Vec::new()).collect(),
            occupied: vec![0; LEVELS * 3],
            pool_entries: 0,
            pool_live: 0,
            free: vec![0; 3],
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            task_ids: FxMap::default(),
            queued: 0,
            oldest: BTreeSet::new(),
            timers: BinaryHeap::new(),
            parked: FxSet::default(),
            scratch: ClassKey::default(),
            standby_active: false,
            agent_seq: 0,
            task_seq: 0,
        }
    }

    /// The number of routing classes interned so far.
    pub fn classes(&self) -> usize {
        self.classes.len()
    }

    fn skill(&mut self, name: &str) -> u32 {
        let id = self.skills.id(name);
        if self.heads.len() < id as usize + 2 {
            self.heads.resize_with(id as usize + 2, Default::default);
            self.sided.resize_with(id as usize + 2, Default::default);
            self.pools
                .resize_with((id as usize + 2) * LEVELS * 3, Vec::new);
            self.occupied.resize((id as usize + 2) * LEVELS * 3, 0);
            self.free.resize((id as usize + 2) * 3, 0);
        }
        id
    }

    fn pool_index(slot: usize, level: u8, medium: usize) -> usize {
        (slot * LEVELS + level as usize) * 3 + medium
    }

    // ----- agents -------------------------------------------------------------------------

    fn available(&self, a: u32) -> bool {
        let a = &self.agents[a as usize];
        a.agent.presence == Presence::Online && (self.standby_active || !a.standby)
    }

    /// Marks activity: a new longest-idle position, and pool entries for every free medium.
    fn touch(&mut self, a: u32) {
        self.bump(a);
        self.file(a);
    }

    /// The first half of [`Self::touch`]: a new longest-idle position, the agent's old pool
    /// entries stale.
    fn bump(&mut self, a: u32) {
        self.agent_seq += 1;
        let seq = self.agent_seq;
        let ag = &mut self.agents[a as usize];
        ag.seq = seq;
        self.seqs[a as usize] = seq;
        for i in ag.counted.drain(..) {
            self.free[i as usize] -= 1;
        }
    }

    /// The second half of [`Self::touch`]: pool entries at the agent's current position.
    fn file(&mut self, a: u32) {
        let ag = &mut self.agents[a as usize];
        let seq = ag.seq;
        if ag.agent.presence != Presence::Online {
            return;
        }
        let load = ag.load() as usize;
        for (m, medium) in MEDIA.iter().enumerate() {
            if !has_room(&ag.agent.capacity, &ag.loads, *medium) {
                continue;
            }
            let slots = std::iter::once((0usize, 0u8))
                .chain(ag.skills.iter().map(|&(s, l)| (s as usize + 1, l)));
            for (slot, level) in slots {
                let index = Self::pool_index(slot, level, m);
                let pool = &mut self.pools[index];
                if pool.len() <= load {
                    pool.resize_with(load + 1, VecDeque::new);
                }
                pool[load].push_back((a, seq));
                if load < 64 {
                    self.occupied[index] |= 1 << load;
                }
                self.pool_entries += 1;
                let counter = slot * 3 + m;
                self.free[counter] += 1;
                ag.counted.push(counter as u32);
            }
        }
        if self.pool_entries > 4 * self.pool_live + 4096 {
            self.compact_pools();
        }
    }

    fn compact_pools(&mut self) {
        let seqs = &self.seqs;
        let mut n = 0;
        for (pool, bits) in self.pools.iter_mut().zip(&mut self.occupied) {
            for (load, q) in pool.iter_mut().enumerate() {
                q.retain(|&(a, s)| seqs[a as usize] == s);
                n += q.len();
                if q.is_empty() && load < 64 {
                    *bits &= !(1 << load);
                }
            }
        }
        self.pool_entries = n;
    }

    fn bits_of(skills: &[(u32, u8)]) -> Vec<u64> {
        let mut bits = Vec::new();
        for &(s, _) in skills {
            let w = s as usize / 64;
            if bits.len() <= w {
                bits.resize(w + 1, 0);
            }
            bits[w] |= 1 << (s % 64);
        }
        bits
    }

    fn set_profile(&mut self, a: u32, agent: Agent) {
        let mut skills: Vec<(u32, u8)> = Vec::with_capacity(agent.skills.len());
        for s in &agent.skills {
            let id = self.skill(&s.name);
            if !skills.iter().any(|x| x.0 == id) {
                skills.push((id, s.level));
            }
        }
        skills.sort_unstable();
        let langs = agent.languages.iter().map(|l| self.langs.id(l)).collect();
        let team = agent.team.as_deref().map(|t| self.teams.id(t));
        let standby = self.policy.is_standby(&agent);
        let ag = &mut self.agents[a as usize];
        self.pool_live = self.pool_live + 3 * (skills.len() + 1) - 3 * (ag.skills.len() + 1);
        ag.bits = Self::bits_of(&skills);
        ag.skills = skills;
        ag.langs = langs;
        ag.team = team;
        ag.standby = standby;
        ag.agent = agent;
    }

    /// Whether agent `a`'s profile meets class `c` (skills, language, team).
    fn fits(&self, a: u32, c: u32) -> bool {
        let ag = &self.agents[a as usize];
        let class = &self.classes[c as usize];
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
            && class.key.lang.is_none_or(|l| ag.langs.contains(&l))
            && class
                .key
                .teams
                .as_ref()
                .is_none_or(|ts| ag.team.is_some_and(|t| ts.contains(&t)))
    }

    /// Whether agent `a` may take queued task `t` now.
    fn eligible(&self, t: u32, a: u32) -> bool {
        let task = &self.tasks[t as usize];
        let medium = self.classes[task.class as usize].key.medium as usize;
        let ag = &self.agents[a as usize];
        self.available(a)
            && has_room(&ag.agent.capacity, &ag.loads, MEDIA[medium])
            && task.hold.is_none_or(|(p, _)| p == a)
            && !task.excluded.contains(&a)
            && self.fits(a, task.class)
    }

    /// The first agent in pool queue (index, load) eligible for `t`, dropping stale entries at
    /// the front.
    fn first_in_pool(&mut self, index: usize, load: usize, t: u32) -> Option<(u64, u32)> {
        if load < 64 && self.occupied[index] & (1 << load) == 0 {
            return None;
        }
        let q = self.pools[index].get_mut(load)?;
        while let Some(&(a, s)) = q.front() {
            if self.seqs[a as usize] == s {
                break;
            }
            q.pop_front();
            self.pool_entries -= 1;
        }
        if q.is_empty() && load < 64 {
            self.occupied[index] &= !(1 << load);
        }
        let q = &self.pools[index][load];
        q.iter()
            .filter(|&&(a, s)| self.seqs[a as usize] == s)
            .find(|&&(a, _)| self.eligible(t, a))
            .map(|&(a, s)| (s, a))
    }

    /// The best agent for queued task `t`.
    fn best_agent(&mut self, t: u32) -> Option<u32> {
        let task = &self.tasks[t as usize];
        if let Some((p, _)) = task.hold {
            return self.eligible(t, p).then_some(p);
        }
        if let Some(p) = task
            .task
            .preferred_agent
            .and_then(|p| self.agent_ids.get(&p).copied())
            && self.eligible(t, p)
        {
            return Some(p);
        }
        let class = &self.classes[task.class as usize];
        let m = class.key.medium as usize;
        if self.free[class.slot * 3 + m] == 0 {
            return None;
        }
        let vip = is_vip(&task.task);
        let Some(&(skill, min)) = class.key.reqs.first() else {
            let index = Self::pool_index(0, 0, m);
            for load in 0..self.pools[index].len() {
                if let Some((_, a)) = self.first_in_pool(index, load, t) {
                    return Some(a);
                }
            }
            return None;
        };
        let slot = skill as usize + 1;
        let max_load = (min..LEVELS as u8)
            .map(|l| self.pools[Self::pool_index(slot, l, m)].len())
            .max()
            .unwrap_or(0);
        if vip {
            for level in (min..LEVELS as u8).rev() {
                let index = Self::pool_index(slot, level, m);
                for load in 0..self.pools[index].len() {
                    if let Some((_, a)) = self.first_in_pool(index, load, t) {
                        return Some(a);
                    }
                }
            }
            return None;
        }
        for load in 0..max_load {
            let mut best: Option<(u64, u32)> = None;
            for level in min..LEVELS as u8 {
                let index = Self::pool_index(slot, level, m);
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
        let ag = &self.agents[a as usize];
        for &t in &ag.held {
            let task = &self.tasks[t as usize];
            if better(&best, task.rank, task.seq) && self.eligible(t, a) {
                best = Some((task.rank, task.seq, t));
            }
        }
        let slots = std::iter::once(0).chain(ag.skills.iter().map(|s| s.0 as usize + 1));
        for slot in slots {
            for (m, medium) in MEDIA.iter().enumerate() {
                if !has_room(&ag.agent.capacity, &ag.loads, *medium) {
                    continue;
                }
                for &(rank, seq, c) in &self.heads[slot][m] {
                    if !better(&best, rank, seq) {
                        break;
                    }
                    let class = &self.classes[c as usize];
                    if self.fits(a, c) {
                        let top = class.heap.peek().expect("a registered head").0;
                        best = Some((rank, seq, top.2));
                        break;
                    }
                }
                for &c in &self.sided[slot][m] {
                    if !self.fits(a, c) {
                        continue;
                    }
                    for &t in &self.classes[c as usize].side {
                        let task = &self.tasks[t as usize];
                        if better(&best, task.rank, task.seq) && !task.excluded.contains(&a) {
                            best = Some((task.rank, task.seq, t));
                        }
                    }
                }
            }
        }
        best
    }

    /// Re-registers class `c`'s head after its heap changed.
    fn refresh_head(&mut self, c: u32) {
        let top = self.class_top(c).map(|(r, s, _)| (r, s));
        let class = &mut self.classes[c as usize];
        if class.head == top {
            return;
        }
        let set = &mut self.heads[class.slot][class.key.medium as usize];
        if let Some((r, s)) = class.head {
            set.remove(&(r, s, c));
        }
        if let Some((r, s)) = top {
            set.insert((r, s, c));
        }
        class.head = top;
    }

    /// The head of class `c`'s heap, dropping stale entries.
    fn class_top(&mut self, c: u32) -> Option<(i64, u64, u32)> {
        let tasks = &self.tasks;
        let heap = &mut self.classes[c as usize].heap;
        while let Some(&Reverse((rank, seq, t, v))) = heap.peek() {
            let task = &tasks[t as usize];
            if task.state == State::Queued && task.version == v && task.class == c {
                return Some((rank, seq, t));
            }
            heap.pop();
        }
        None
    }

    // ----- tasks --------------------------------------------------------------------------

    /// The routing class of slab task `t` at overflow ring `ring` (the task stays in place).
    fn class_of_task(&mut self, t: u32, ring: usize) -> u32 {
        let slot = &mut self.tasks[t as usize].task;
        let stand_in = Task::new(slot.id, slot.channel, slot.enqueued_at);
        let task = std::mem::replace(slot, stand_in);
        let c = self.class_of(&task, ring);
        self.tasks[t as usize].task = task;
        c
    }

    fn class_of(&mut self, task: &Task, ring: usize) -> u32 {
        // Ring 0 is the task's own requirements: no relaxed copy to build.
        let mut key = std::mem::take(&mut self.scratch);
        key.medium = medium_index(task.channel.medium()) as u8;
        key.reqs.clear();
        if ring == 0 {
            for r in &task.requirements {
                let s = self.skill(&r.skill);
                key.reqs.push((s, r.min_level));
            }
            key.lang = task.language.as_deref().map(|l| self.langs.id(l));
            key.teams = task.team.as_deref().map(|t| vec![self.teams.id(t)]);
        } else {
            let eff = self.policy.effective(task, ring);
            for r in &eff.reqs {
                let s = self.skill(&r.skill);
                key.reqs.push((s, r.min_level));
            }
            key.lang = eff.language.as_deref().map(|l| self.langs.id(l));
            key.teams = match eff.teams {
                crate::policy::Teams::Any => None,
                crate::policy::Teams::OneOf(ts) => {
                    let mut ids: Vec<u32> = ts.iter().map(|t| self.teams.id(t)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    Some(ids)
                }
            };
        }
        if let Some(&c) = self.class_ids.get(&key) {
            self.scratch = key;
            return c;
        }
        let c = self.classes.len() as u32;
        let slot = key.reqs.first().map_or(0, |r| r.0 as usize + 1);
        self.classes.push(Class {
            slot,
            head: None,
            bits: Self::bits_of(&key.reqs),
            key: key.clone(),
            heap: BinaryHeap::new(),
            side: Vec::new(),
        });
        self.class_ids.insert(key, c);
        c
    }

    /// Files queued task `t` where agents look for it.
    fn place(&mut self, t: u32) {
        let task = &mut self.tasks[t as usize];
        task.version = task.version.wrapping_add(1);
        if let Some((p, _)) = task.hold {
            self.agents[p as usize].held.push(t);
        } else if task.excluded.is_empty() {
            let entry = (task.rank, task.seq, t, task.version);
            let c = task.class;
            self.classes[c as usize].heap.push(Reverse(entry));
            self.refresh_head(c);
        } else {
            let c = task.class;
            let class = &mut self.classes[c as usize];
            if class.side.is_empty() {
                self.sided[class.slot][class.key.medium as usize].push(c);
            }
            class.side.push(t);
        }
    }

    /// Takes queued task `t` out of where agents look for it.
    fn unplace(&mut self, t: u32) {
        let task = &mut self.tasks[t as usize];
        task.version = task.version.wrapping_add(1);
        if let Some((p, _)) = task.hold {
            self.agents[p as usize].held.retain(|&x| x != t);
        } else if !task.excluded.is_empty() {
            let c = task.class;
            let class = &mut self.classes[c as usize];
            class.side.retain(|&x| x != t);
            if class.side.is_empty() {
                self.sided[class.slot][class.key.medium as usize].retain(|&x| x != c);
            }
        } else {
            let c = task.class;
            self.refresh_head(c);
        }
    }

    /// Puts `t` (already in the slab) into the queue at the current time.
    fn enter_queue(&mut self, t: u32) {
        let enqueued = at_ms(self.tasks[t as usize].task.enqueued_at);
        let ring = self.policy.ring_at(enqueued, self.now);
        let class = self.class_of_task(t, ring);
        let task = &mut self.tasks[t as usize];
        task.ring = ring;
        task.class = class;
        task.state = State::Queued;
        task.life = task.life.wrapping_add(1);
        self.queued += 1;
        if self.policy.standby.is_some() {
            self.oldest.insert((enqueued, task.seq));
        }
        self.schedule_ring(t);
        if let Some((_, until)) = self.tasks[t as usize].hold {
            self.timer(until, HOLD_END, t);
        }
        self.place(t);
    }

    fn leave_queue(&mut self, t: u32) {
        self.unplace(t);
        self.queued -= 1;
        if self.policy.standby.is_some() {
            let task = &self.tasks[t as usize];
            self.oldest
                .remove(&(at_ms(task.task.enqueued_at), task.seq));
        }
    }

    fn timer(&mut self, at: i64, kind: u8, t: u32) {
        let task = &self.tasks[t as usize];
        self.timers
            .push(Reverse((at, kind, task.rank, task.seq, t, task.life)));
    }

    fn schedule_ring(&mut self, t: u32) {
        let task = &self.tasks[t as usize];
        if let Some(at) = self
            .policy
            .ring_time(at_ms(task.task.enqueued_at), task.ring)
        {
            self.timer(at, RING_UP, t);
        }
    }

    fn timer_live(&self, timer: &Timer) -> bool {
        let &(at, kind, _, _, t, life) = timer;
        let task = &self.tasks[t as usize];
        if task.life != life {
            return false;
        }
        match kind {
            EXPIRE => matches!(task.state, State::Offered(_)),
            HOLD_END => task.state == State::Queued && task.hold.is_some(),
            _ => {
                task.state == State::Queued
                    && self
                        .policy
                        .ring_time(at_ms(task.task.enqueued_at), task.ring)
                        == Some(at)
            }
        }
    }

    fn give(&mut self, t: u32, a: u32, out: &mut Vec<Decision>) {
        self.leave_queue(t);
        let medium = self.classes[self.tasks[t as usize].class as usize]
            .key
            .medium as usize;
        let ag = &mut self.agents[a as usize];
        ag.loads[medium] += 1;
        ag.tasks.push(t);
        let agent = ag.agent.id;
        self.touch(a);
        let task = self.tasks[t as usize].task.id;
        match self.policy.reservations {
            Some(r) => {
                let expires = self.now.saturating_add(ms(r.offer_timeout));
                self.tasks[t as usize].state = State::Offered(a);
                self.timer(expires, EXPIRE, t);
                out.push(Decision::Offered {
                    task,
                    agent,
                    expires_at: from_ms(expires),
                });
            }
            None => {
                self.tasks[t as usize].state = State::Assigned(a);
                out.push(Decision::Assigned { task, agent });
            }
        }
    }

    /// Takes task `t` back from agent `a` (offer rejected or expired) and queues it again.
    fn take_back(&mut self, t: u32, a: u32) {
        let medium = self.classes[self.tasks[t as usize].class as usize]
            .key
            .medium as usize;
        let ag = &mut self.agents[a as usize];
        ag.loads[medium] -= 1;
        ag.tasks.retain(|&x| x != t);
        self.touch(a);
        let task = &mut self.tasks[t as usize];
        task.excluded.push(a);
        task.hold = None;
        self.enter_queue(t);
    }

    fn free_task(&mut self, t: u32) {
        let task = &mut self.tasks[t as usize];
        task.state = State::Free;
        task.version = task.version.wrapping_add(1);
        task.life = task.life.wrapping_add(1);
        self.task_ids.remove(&task.task.id);
        self.free_tasks.push(t);
    }

    /// Touches agent `a` after a change and lets it take work. Only the agent's own look-up
    /// runs before it is filed in the pools, so it is filed only if it is still free of new
    /// work at the end (each task it takes touches it again, which files it).
    fn touch_and_dispatch(&mut self, a: u32, out: &mut Vec<Decision>) {
        self.bump(a);
        let seq = self.seqs[a as usize];
        self.dispatch(&[a], &[], out);
        if self.seqs[a as usize] == seq {
            self.file(a);
        }
        self.standby_eval(out);
    }

    /// Serves the best-ranked task with an eligible agent until none is left; only the changed
    /// agents and tasks can create a match.
    fn dispatch(&mut self, agents: &[u32], tasks: &[u32], out: &mut Vec<Decision>) {
        loop {
            // (rank, seq, task, agent if already known)
            let mut best: Option<(i64, u64, u32, Option<u32>)> = None;
            for &t in tasks {
                if self.tasks[t as usize].state != State::Queued {
                    continue;
                }
                if let Some(a) = self.best_agent(t) {
                    let task = &self.tasks[t as usize];
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

    fn standby_eval(&mut self, out: &mut Vec<Decision>) {
        if self.policy.standby.is_none() {
            return;
        }
        loop {
            let oldest = self.oldest.first().map(|o| o.0);
            let active = self.policy.standby_active(self.queued, oldest, self.now);
            if active == self.standby_active {
                return;
            }
            self.standby_active = active;
            if !active {
                return;
            }
            let pool: Vec<u32> = (0..self.agents.len() as u32)
                .filter(|&a| self.agents[a as usize].standby)
                .collect();
            self.dispatch(&pool, &[], out);
        }
    }

    fn advance(&mut self, to: i64, out: &mut Vec<Decision>) {
        while let Some(&Reverse((instant, ..))) = self.timers.peek() {
            if instant > to {
                break;
            }
            let mut due = Vec::new();
            while let Some(&Reverse(timer)) = self.timers.peek() {
                if timer.0 != instant {
                    break;
                }
                self.timers.pop();
                due.push(timer);
            }
            let (mut agents, mut tasks) = (Vec::new(), Vec::new());
            let mut fired = false;
            for timer in due {
                if !self.timer_live(&timer) {
                    continue;
                }
                if !fired {
                    fired = true;
                    self.now = instant;
                }
                let (_, kind, _, _, t, _) = timer;
                tasks.push(t);
                match kind {
                    EXPIRE => {
                        let State::Offered(a) = self.tasks[t as usize].state else {
                            unreachable!("checked live")
                        };
                        self.take_back(t, a);
                        let agent = self.agents[a as usize].agent.id;
                        out.push(Decision::OfferExpired {
                            task: self.tasks[t as usize].task.id,
                            agent,
                        });
                        let max = self.policy.reservations.map_or(u32::MAX, |r| r.max_missed);
                        let ag = &mut self.agents[a as usize];
                        ag.missed += 1;
                        if ag.missed >= max {
                            ag.missed = 0;
                            ag.agent.presence = Presence::Away;
                            out.push(Decision::AgentAway { agent });
                        }
                        agents.push(a);
                    }
                    HOLD_END => {
                        self.unplace(t);
                        self.tasks[t as usize].hold = None;
                        self.place(t);
                    }
                    _ => {
                        self.unplace(t);
                        let ring = self.tasks[t as usize].ring + 1;
                        let class = self.class_of_task(t, ring);
                        let ft = &mut self.tasks[t as usize];
                        ft.ring = ring;
                        ft.class = class;
                        self.place(t);
                        self.schedule_ring(t);
                    }
                }
            }
            if fired {
                self.dispatch(&agents, &tasks, out);
                self.standby_eval(out);
            }
        }
        self.now = self.now.max(to);
        self.standby_eval(out);
    }

    fn offered(&self, agent: AgentId, task: ConversationId) -> Result<(u32, u32)> {
        let a = *self
            .agent_ids
            .get(&agent)
            .ok_or_else(|| not_found("agent", agent))?;
        match self.task_ids.get(&task) {
            Some(&t) if self.tasks[t as usize].state == State::Offered(a) => Ok((t, a)),
            _ => Err(not_offered(agent, task)),
        }
    }
}

impl SyncRouter for SkillRouter {
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.task_ids.contains_key(&id) {
            return Err(duplicate(id));
        }
        let enqueued = at_ms(task.enqueued_at);
        self.advance(enqueued.max(self.now), out);
        if !self.parked.remove(&id) && self.policy.bot_first(self.queued) {
            self.parked.insert(id);
            out.push(Decision::ToBot { task: id });
            return Ok(());
        }
        self.task_seq += 1;
        let until = enqueued.saturating_add(ms(self.policy.sticky_wait));
        let hold = task
            .preferred_agent
            .filter(|_| self.now < until)
            .and_then(|p| self.agent_ids.get(&p).copied())
            .map(|p| (p, until));
        let slot = FTask {
            rank: self.policy.rank(&task),
            seq: self.task_seq,
            task,
            state: State::Free,
            ring: 0,
            class: 0,
            version: 0,
            life: 0,
            hold,
            excluded: Vec::new(),
        };
        let t = match self.free_tasks.pop() {
            Some(t) => {
                let old = &mut self.tasks[t as usize];
                let (version, life) = (old.version, old.life);
                *old = slot;
                old.version = version;
                old.life = life;
                t
            }
            None => {
                self.tasks.push(slot);
                self.tasks.len() as u32 - 1
            }
        };
        self.task_ids.insert(id, t);
        self.enter_queue(t);
        self.dispatch(&[], &[t], out);
        self.standby_eval(out);
        Ok(())
    }

    fn cancel(&mut self, task: ConversationId) -> Result<bool> {
        if let Some(&t) = self.task_ids.get(&task)
            && self.tasks[t as usize].state == State::Queued
        {
            self.leave_queue(t);
            self.free_task(t);
            return Ok(true);
        }
        Ok(self.parked.remove(&task))
    }

    fn upsert_agent(&mut self, agent: Agent, out: &mut Vec<Decision>) -> Result<()> {
        validate_agent(&agent)?;
        let a = match self.agent_ids.get(&agent.id) {
            Some(&a) => a,
            None => {
                let a = self.agents.len() as u32;
                self.agent_ids.insert(agent.id, a);
                self.pool_live += 3;
                self.seqs.push(0);
                self.agents.push(FAgent {
                    agent: agent.clone(),
                    skills: Vec::new(),
                    bits: Vec::new(),
                    langs: Vec::new(),
                    team: None,
                    standby: false,
                    loads: [0; 3],
                    tasks: Vec::new(),
                    held: Vec::new(),
                    seq: 0,
                    missed: 0,
                    counted: Vec::new(),
                });
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
        let a = *self
            .agent_ids
            .get(&agent)
            .ok_or_else(|| not_found("agent", agent))?;
        let t = match self.task_ids.get(&task) {
            Some(&t) if self.tasks[t as usize].state == State::Assigned(a) => t,
            _ => return Err(not_assigned(agent, task)),
        };
        let medium = self.classes[self.tasks[t as usize].class as usize]
            .key
            .medium as usize;
        let ag = &mut self.agents[a as usize];
        ag.loads[medium] -= 1;
        ag.tasks.retain(|&x| x != t);
        self.free_task(t);
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
        self.tasks[t as usize].state = State::Assigned(a);
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
        self.standby_eval(out);
        Ok(())
    }

    fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<Decision>) -> Result<()> {
        self.advance(at_ms(now).max(self.now), out);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let mut q: Vec<&FTask> = self
            .tasks
            .iter()
            .filter(|t| t.state == State::Queued)
            .collect();
        q.sort_by_key(|t| (t.rank, t.seq));
        Snapshot::build(
            q.into_iter().map(|t| &t.task),
            self.agents.iter().map(|a| AgentLoad {
                agent: a.agent.id,
                presence: a.agent.presence,
                tasks: a
                    .tasks
                    .iter()
                    .map(|&t| self.tasks[t as usize].task.id)
                    .collect(),
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
