//! The fast policy router: interned routing classes, per-class task heaps, per-skill agent
//! pools, compact hot records and a timer heap.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ChannelKind, ConversationId, CustomerTier, Presence, Priority};

use crate::error::{Result, duplicate, not_assigned, not_found, not_offered};
use crate::index::IdIndex;
use crate::policy::{
    RoutingPolicy, Teams, at_ms, from_ms, medium_index, ms, validate_agent, validate_task,
};
use crate::router::SyncRouter;
use crate::task::{AgentLoad, Decision, SkillRequirement, Snapshot, Task};

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
        let mut b = bytes;
        while let Some((word, rest)) = b.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*word));
            b = rest;
        }
        // The tail (0-7 bytes) as overlapping reads: no byte-wise copy.
        let n = b.len();
        let tail = if n >= 4 {
            let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            let hi = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes"));
            u64::from(lo) | u64::from(hi) << 32
        } else if n > 0 {
            u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16
        } else {
            return;
        };
        self.add(tail ^ (n as u64) << 56);
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

/// "No agent", "no language", "no team" in the compact records.
const NONE: u32 = u32::MAX;
/// A preferred agent named by an id the router has not seen yet (looked up again when needed).
const UNKNOWN: u32 = u32::MAX - 1;

/// Interns strings to dense ids.
#[derive(Debug, Default)]
struct Interner {
    ids: FxMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(s.to_owned(), i);
        self.names.push(s.to_owned());
        i
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// A routing class's identity: one distinct (medium, requirements, language, teams).
#[derive(Debug, Default, Hash, PartialEq, Eq, Clone)]
struct ClassKey {
    medium: u8,
    reqs: Vec<(u32, u8)>,
    lang: Option<u32>,
    teams: Option<Vec<u32>>,
}

/// A routing class with its waiting tasks.
#[derive(Debug)]
struct Class {
    key: ClassKey,
    /// Required skills as a bitset.
    bits: Vec<u64>,
    /// Tasks some agent rejected (checked one by one).
    side: Vec<u32>,
    /// What queueing and dispatch read, in one cache line.
    q: ClassQueue,
}

/// The part of a [`Class`] that every enqueue and assignment reads and writes, in one cache
/// line (the whole class spans three).
#[derive(Debug)]
#[repr(align(64))]
struct ClassQueue {
    /// Tasks with no exclusions: (rank, seq, task, version), lazily deleted.
    heap: BinaryHeap<Reverse<(i64, u64, u32, u32)>>,
    /// The live head of `heap` as registered in `heads`: (rank, seq).
    head: Option<(i64, u64)>,
    /// Entries of `heap` that are stale: while there are none, the top needs no check (and no
    /// look at its task).
    stale: u32,
    /// Primary skill slot (0 = no requirement, else skill + 1).
    slot: u32,
    /// Language id or [`NONE`].
    lang: u32,
    /// The medium index (as in the key).
    medium: u8,
    /// Lowest level of the primary skill (0 without one).
    min: u8,
    /// Whether the primary skill and the language are the whole requirement.
    simple: bool,
}

const _: () = assert!(std::mem::size_of::<ClassQueue>() == 64);

/// Everything interned: names and routing classes.
#[derive(Debug, Default)]
struct Catalog {
    skills: Interner,
    langs: Interner,
    teams: Interner,
    classes: Vec<Class>,
    class_ids: FxMap<ClassKey, u32>,
    /// Classes of tasks' own requirements by a hash of their text: a look-up without
    /// interning every name (checked against the class, so a collision only costs the slow
    /// path).
    by_text: FxMap<u64, TextEntry>,
    /// A reused buffer for a task's text.
    text: Vec<u8>,
    /// A reused key for look-ups.
    scratch: ClassKey,
    /// Whether some class has no skill requirement (slot 0).
    slot0: bool,
}

/// The text of a task's own routing class, as [`text_of`] writes it, kept with the class so
/// a look-up is checked without leaving the table: up to [`TextEntry::INLINE`] bytes.
#[derive(Debug, Clone, Copy)]
struct TextEntry {
    class: u32,
    /// The text's length, or `u8::MAX` when it is too long to keep (checked against the class).
    len: u8,
    bytes: [u8; TextEntry::INLINE],
}

impl TextEntry {
    const INLINE: usize = 48;
}

/// Writes what decides a task's own routing class into `out`: the medium, each requirement's
/// name and level, the language and the team, separated by bytes that never occur in UTF-8.
fn text_of(task: &Task, out: &mut Vec<u8>) {
    out.clear();
    out.push(medium_index(task.channel.medium()) as u8);
    for r in &task.requirements {
        out.extend_from_slice(r.skill.as_bytes());
        out.push(0xff);
        out.push(r.min_level);
    }
    out.push(0xfe);
    if let Some(l) = &task.language {
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0xfd);
    if let Some(t) = &task.team {
        out.extend_from_slice(t.as_bytes());
    }
}

impl Catalog {
    /// Whether class `c` is the class of `task`'s own requirements (ring 0).
    fn is_class_of(&self, c: u32, task: &Task) -> bool {
        let key = &self.classes[c as usize].key;
        usize::from(key.medium) == medium_index(task.channel.medium())
            && key.reqs.len() == task.requirements.len()
            && key
                .reqs
                .iter()
                .zip(&task.requirements)
                .all(|(&(s, l), r)| l == r.min_level && self.skills.name(s) == r.skill)
            && match (key.lang, &task.language) {
                (None, None) => true,
                (Some(l), Some(name)) => self.langs.name(l) == name,
                _ => false,
            }
            && match (&key.teams, &task.team) {
                (None, None) => true,
                (Some(ts), Some(name)) => ts.len() == 1 && self.teams.name(ts[0]) == name,
                _ => false,
            }
    }

    /// The routing class of `task`'s own requirements (no overflow ring).
    fn own_class(&mut self, policy: &RoutingPolicy, task: &Task) -> u32 {
        let mut text = std::mem::take(&mut self.text);
        text_of(task, &mut text);
        let mut h = FxHasher::default();
        h.write(&text);
        let hash = h.finish();
        let found = self.by_text.get(&hash).and_then(|e| {
            let same = if e.len == u8::MAX {
                self.is_class_of(e.class, task)
            } else {
                e.bytes[..usize::from(e.len)] == text[..]
            };
            same.then_some(e.class)
        });
        let c = match found {
            Some(c) => c,
            None => {
                let c = self.class_by_key(policy, task, 0);
                let mut entry = TextEntry {
                    class: c,
                    len: u8::MAX,
                    bytes: [0; TextEntry::INLINE],
                };
                if text.len() <= TextEntry::INLINE {
                    entry.len = text.len() as u8;
                    entry.bytes[..text.len()].copy_from_slice(&text);
                }
                self.by_text.entry(hash).or_insert(entry);
                c
            }
        };
        self.text = text;
        c
    }

    /// The routing class of `task` after `ring` overflow rings, by interning its names.
    fn class_by_key(&mut self, policy: &RoutingPolicy, task: &Task, ring: usize) -> u32 {
        // Only a class's first task gets here (the text look-up finds the rest): the relaxed
        // copy `effective` builds costs nothing worth a second path for ring 0.
        let mut key = std::mem::take(&mut self.scratch);
        key.medium = medium_index(task.channel.medium()) as u8;
        key.reqs.clear();
        let eff = policy.effective(task, ring);
        for r in &eff.reqs {
            key.reqs.push((self.skills.id(&r.skill), r.min_level));
        }
        key.lang = eff.language.as_deref().map(|l| self.langs.id(l));
        key.teams = match eff.teams {
            Teams::Any => None,
            Teams::OneOf(ts) => {
                let mut ids: Vec<u32> = ts.iter().map(|t| self.teams.id(t)).collect();
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
        };
        if let Some(&c) = self.class_ids.get(&key) {
            self.scratch = key;
            return c;
        }
        let c = self.classes.len() as u32;
        let (slot, min) = key.reqs.first().map_or((0, 0), |r| (r.0 + 1, r.1));
        self.slot0 |= slot == 0;
        self.classes.push(Class {
            q: ClassQueue {
                heap: BinaryHeap::new(),
                head: None,
                stale: 0,
                slot,
                lang: key.lang.unwrap_or(NONE),
                medium: key.medium,
                min,
                simple: key.reqs.len() <= 1 && key.teams.is_none(),
            },
            bits: bits_of(&key.reqs),
            key: key.clone(),
            side: Vec::new(),
        });
        self.class_ids.insert(key, c);
        c
    }
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

/// A class head as the agents' side sees it: enough to rule the class in or out for most agents
/// without touching the class.
#[derive(Debug, Clone, Copy)]
struct Head {
    rank: i64,
    seq: u64,
    class: u32,
    /// The task at the head.
    task: u32,
    lang: u32,
    min: u8,
    simple: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Queued,
    Offered(u32),
    Assigned(u32),
}

/// What routing reads of a task, in one cache line (the rest lives in [`ColdTask`]).
#[derive(Debug)]
#[repr(align(64))]
struct HotTask {
    rank: i64,
    seq: u64,
    id: ConversationId,
    state: State,
    class: u32,
    /// Bumped whenever the task moves between heaps/lists (heap entries carry it).
    version: u32,
    /// Bumped whenever the task (re-)enters the queue (timers carry it).
    life: u32,
    /// The preferred agent: an index, [`NONE`] or [`UNKNOWN`].
    preferred: u32,
    /// The agent a sticky hold waits for, or [`NONE`].
    hold: u32,
    medium: u8,
    vip: bool,
    /// Whether some agent is excluded (`SkillRouter::excluded`).
    excluded: bool,
}

// One record per cache line.
const _: () = assert!(std::mem::size_of::<HotTask>() == 64);

const _: () = assert!(std::mem::size_of::<ColdTask>() == 64);

/// The rest of a task. Its requirements are those of its own routing class (`own`), so the
/// caller's strings are freed at once, while still in cache, and the task is rebuilt from its
/// class when someone asks for it.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct ColdTask {
    /// Overflow rings applied.
    ring: u32,
    channel: ChannelKind,
    priority: Priority,
    tier: CustomerTier,
    preferred_agent: Option<AgentId>,
    enqueued_at: DateTime<Utc>,
    /// The routing class of the task's own requirements (ring 0).
    own: u32,
    /// When the sticky hold ends (ms).
    hold_until: i64,
}

/// What eligibility and a release read of an agent, in one cache line.
#[derive(Debug)]
#[repr(align(64))]
struct HotAgent {
    id: AgentId,
    /// The activity seq at which the agent was last registered as free.
    filed: u64,
    /// Languages with an id below 64.
    langs: u64,
    cap: [u16; 3],
    loads: [u16; 3],
    team: u32,
    blocks: bool,
    online: bool,
    standby: bool,
    /// Whether the agent speaks languages with higher ids (`ColdAgent::more_langs`).
    more_langs: bool,
    /// Whether tasks wait for this agent (`ColdAgent::held`).
    holds: bool,
}

const _: () = assert!(std::mem::size_of::<HotAgent>() == 64);

impl HotAgent {
    /// Whether there is a free slot for medium `m` (see [`crate::policy`]).
    fn room(&self, m: usize) -> bool {
        self.loads[m] < self.cap[m] && !(self.blocks && m != 2 && self.loads[2] > 0)
    }

    fn load(&self) -> u16 {
        self.loads.iter().sum()
    }
}

#[derive(Debug)]
struct ColdAgent {
    /// (skill id, level), sorted by skill id: the line a freed agent reads to look for work.
    skills: SkillList,
    agent: Agent,
    bits: Vec<u64>,
    /// Languages with an id of 64 or more.
    more_langs: Vec<u32>,
    /// Tasks waiting for this agent (sticky hold).
    held: Vec<u32>,
    missed: u32,
}

impl ColdAgent {
    fn level(&self, skill: u32) -> Option<u8> {
        self.skills.level(skill)
    }
}

/// An agent's (skill id, level) pairs, sorted by skill id, in one cache line for up to
/// [`SkillList::INLINE`] skills (most agents); longer lists live on the heap.
#[derive(Debug, Default)]
#[repr(align(64))]
struct SkillList {
    /// Inline pairs in use (0 when the list is on the heap).
    len: u8,
    ids: [u32; SkillList::INLINE],
    levels: [u8; SkillList::INLINE],
    /// The whole list, when it is longer than [`SkillList::INLINE`].
    spilled: Vec<(u32, u8)>,
}

const _: () = assert!(std::mem::size_of::<SkillList>() == 64);

impl SkillList {
    const INLINE: usize = 7;

    /// The list of sorted, distinct `(skill, level)` pairs.
    fn new(sorted: Vec<(u32, u8)>) -> Self {
        let mut list = Self::default();
        if sorted.len() > Self::INLINE {
            list.spilled = sorted;
        } else {
            for (i, &(s, l)) in sorted.iter().enumerate() {
                list.ids[i] = s;
                list.levels[i] = l;
            }
            list.len = sorted.len() as u8;
        }
        list
    }

    fn len(&self) -> usize {
        usize::from(self.len) + self.spilled.len()
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u8)> + '_ {
        let n = usize::from(self.len);
        self.ids[..n]
            .iter()
            .copied()
            .zip(self.levels[..n].iter().copied())
            .chain(self.spilled.iter().copied())
    }

    fn level(&self, skill: u32) -> Option<u8> {
        if self.spilled.is_empty() {
            let n = usize::from(self.len);
            return self.ids[..n]
                .iter()
                .position(|&s| s == skill)
                .map(|i| self.levels[i]);
        }
        self.spilled
            .binary_search_by_key(&skill, |s| s.0)
            .ok()
            .map(|i| self.spilled[i].1)
    }
}

const EXPIRE: u8 = 0;
const HOLD_END: u8 = 1;
const RING_UP: u8 = 2;

/// (time, kind, rank, seq, task, life)
type Timer = (i64, u8, i64, u64, u32, u32);

/// Skill levels 0 (the "no requirement" slot) to 10.
const LEVELS: usize = 11;

/// Free agents by pool index (primary skill, medium, level) and load, in one flat table so a
/// push touches one queue header and its tail.
#[derive(Debug, Default)]
struct Pools {
    /// The queue of (index, load) at [`Self::pos`]: (agent, seq), longest idle first. The
    /// levels of one (skill, medium, load) sit side by side, as a probe reads them together.
    queues: Vec<VecDeque<(u32, u64)>>,
    /// Loads per index; widened when an agent with a higher load is filed.
    stride: usize,
    /// By index: bit `load` is set whenever that queue is not empty; bit 63 stands for every
    /// load from 63 up. Probes skip empty queues without touching them.
    occupied: Vec<u64>,
    /// Entries, stale ones included.
    entries: usize,
}

impl Pools {
    /// Where the queue of (index, load) is, for `stride` loads per index.
    fn pos_in(index: usize, load: usize, stride: usize) -> usize {
        (index / LEVELS * stride + load) * LEVELS + index % LEVELS
    }

    fn pos(&self, index: usize, load: usize) -> usize {
        Self::pos_in(index, load, self.stride)
    }

    fn bit(load: usize) -> u64 {
        1 << load.min(63)
    }

    /// Makes room for `indexes` pool indexes.
    fn grow(&mut self, indexes: usize) {
        if self.stride == 0 {
            self.stride = 8;
        }
        if self.occupied.len() < indexes {
            self.occupied.resize(indexes, 0);
            self.queues
                .resize_with(indexes * self.stride, VecDeque::new);
        }
    }

    /// Re-lays the table out for `loads` loads per index.
    fn widen(&mut self, loads: usize) {
        let stride = loads.next_power_of_two();
        let mut queues: Vec<VecDeque<(u32, u64)>> = Vec::new();
        queues.resize_with(self.occupied.len() * stride, VecDeque::new);
        for index in 0..self.occupied.len() {
            for load in 0..self.stride {
                let pos = self.pos(index, load);
                let q = std::mem::take(&mut self.queues[pos]);
                queues[Self::pos_in(index, load, stride)] = q;
            }
        }
        self.queues = queues;
        self.stride = stride;
    }

    fn push(&mut self, index: usize, load: usize, entry: (u32, u64)) {
        if load >= self.stride {
            self.widen(load + 1);
        }
        let pos = self.pos(index, load);
        self.queues[pos].push_back(entry);
        self.occupied[index] |= Self::bit(load);
        self.entries += 1;
    }

    fn queue(&mut self, index: usize, load: usize) -> &mut VecDeque<(u32, u64)> {
        let pos = self.pos(index, load);
        &mut self.queues[pos]
    }

    /// The loads that may have entries at `index`, least first.
    fn loads(&self, occupied: u64) -> impl Iterator<Item = usize> + use<> {
        let stride = self.stride;
        let mut bits = occupied;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let load = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                load
            })
        })
        .flat_map(move |load| {
            if load == 63 {
                63..stride.max(63)
            } else {
                load..load + 1
            }
        })
    }

    /// Drops every stale entry (`live` says which are not).
    fn compact(&mut self, live: impl Fn(u32, u64) -> bool) {
        let mut n = 0;
        for index in 0..self.occupied.len() {
            for load in 0..self.stride {
                let pos = self.pos(index, load);
                let q = &mut self.queues[pos];
                q.retain(|&(a, s)| live(a, s));
                n += q.len();
                if q.is_empty() && load < 63 {
                    self.occupied[index] &= !Self::bit(load);
                }
            }
        }
        self.entries = n;
    }
}

/// The fast router of the routing policy ([`crate::policy`]); it makes exactly the decisions of
/// [`crate::NaiveRouter`] (a property test holds it to that) without scanning the queue or the
/// agents: a decision reads a few short lists and records (its cost grows only as the router's
/// memory outgrows the caches).
///
/// - Each distinct requirement set (medium, skills with levels, language, teams) is interned into
///   a routing class with a heap of its waiting tasks by rank. Class heads are listed by primary
///   skill and medium with what rules most agents in or out (level, language), so an agent who
///   frees up reads a few short sorted lists, not the classes.
/// - Agents with a free slot sit in pools per (primary skill, medium, level, load), in
///   longest-idle order, so a new task finds its agent at the front of a few queues. An agent is
///   registered once per event, after it has settled, and filed in a medium's pools only when
///   a task of that medium looks for an agent; stale entries are dropped lazily.
/// - What decisions read of tasks and agents is kept in small records apart from the tasks and
///   profiles themselves, so the working set stays in cache.
/// - Offers, sticky holds and overflow rings are timers in one heap, fired by
///   [`crate::Router::tick`].
///
/// It is a single-writer state machine ([`SyncRouter`], `&mut self`): wrap it in
/// [`crate::Shared`] for an [`crate::Router`], and run one per tenant (shard) to use more cores.
#[derive(Debug)]
pub struct SkillRouter {
    policy: RoutingPolicy,
    now: i64,
    catalog: Catalog,
    /// Heads of non-empty classes by primary skill slot and medium, best first.
    heads: Vec<[Vec<Head>; 3]>,
    /// Classes with rejected tasks, by slot and medium.
    sided: Vec<[Vec<u32>; 3]>,
    /// How many classes `sided` lists.
    sided_classes: usize,
    hot_agents: Vec<HotAgent>,
    agents: Vec<ColdAgent>,
    /// Each agent's activity seq (smaller = idle longer); pool entries carry it.
    seqs: Vec<u64>,
    agent_ids: IdIndex,
    /// Free agents by pool index `((slot * 3 + medium) * LEVELS + level)` and load.
    pools: Pools,
    /// Pool entries that can be live at most (one per agent, medium and slot).
    pool_live: usize,
    /// Whether agents are filed under slot 0 (tasks without skill requirements): only once
    /// such a class exists.
    slot0_filed: bool,
    /// Agents each task may no longer be offered to (it rejected or let an offer expire), by
    /// slab index; few tasks have any.
    excluded: FxMap<u32, Vec<u32>>,
    /// Agents touched by the current event, registered when it has settled.
    pending: Vec<u32>,
    /// By medium: agents registered free for it (agent, seq), in seq order, not yet filed in its
    /// pools ([`Self::drain`]).
    dirty: [Vec<(u32, u64)>; 3],
    hot: Vec<HotTask>,
    cold: Vec<ColdTask>,
    free_tasks: Vec<u32>,
    task_ids: IdIndex,
    /// Waiting tasks by medium.
    queued_by_medium: [usize; 3],
    /// (enqueued ms, seq) of waiting tasks, kept only with a standby pool.
    oldest: BTreeSet<(i64, u64)>,
    timers: BinaryHeap<Reverse<Timer>>,
    parked: FxSet<ConversationId>,
    standby_active: bool,
    agent_seq: u64,
    task_seq: u64,
}

impl SkillRouter {
    /// An empty router with `policy`.
    pub fn new(policy: RoutingPolicy) -> Self {
        let mut r = Self {
            policy,
            now: i64::MIN,
            catalog: Catalog::default(),
            heads: Vec::new(),
            sided: Vec::new(),
            sided_classes: 0,
            hot_agents: Vec::new(),
            agents: Vec::new(),
            seqs: Vec::new(),
            agent_ids: IdIndex::default(),
            pools: Pools::default(),
            slot0_filed: false,
            pool_live: 0,
            excluded: FxMap::default(),
            pending: Vec::new(),
            dirty: Default::default(),
            hot: Vec::new(),
            cold: Vec::new(),
            free_tasks: Vec::new(),
            task_ids: IdIndex::default(),
            queued_by_medium: [0; 3],
            oldest: BTreeSet::new(),
            timers: BinaryHeap::new(),
            parked: FxSet::default(),
            standby_active: false,
            agent_seq: 0,
            task_seq: 0,
        };
        r.grow_slots();
        r
    }

    /// The number of routing classes interned so far.
    pub fn classes(&self) -> usize {
        self.catalog.classes.len()
    }

    /// Sizes the per-skill structures for every skill interned so far (plus the no-skill slot),
    /// and starts filing agents under slot 0 once a class needs it.
    fn grow_slots(&mut self) {
        let slots = self.catalog.skills.len() + 1;
        if self.heads.len() < slots {
            self.heads.resize_with(slots, Default::default);
            self.sided.resize_with(slots, Default::default);
            self.pools.grow(slots * 3 * LEVELS);
        }
        if self.catalog.slot0 && !self.slot0_filed {
            self.file_slot0();
        }
    }

    fn pool_index(slot: usize, medium: usize, level: u8) -> usize {
        (slot * 3 + medium) * LEVELS + level as usize
    }

    // ----- agents -------------------------------------------------------------------------

    fn available(&self, a: u32) -> bool {
        let a = &self.hot_agents[a as usize];
        a.online && (self.standby_active || !a.standby)
    }

    /// Marks activity: a new longest-idle position (the agent's pool entries go stale); the
    /// agent is filed again when the event has settled ([`Self::flush`]).
    fn touch(&mut self, a: u32) {
        self.agent_seq += 1;
        self.seqs[a as usize] = self.agent_seq;
        self.pending.push(a);
    }

    /// Registers every agent touched by this event as free for the media it has room in, at
    /// its final position; [`Self::drain`] files them in the pools.
    fn flush(&mut self) {
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
    fn drain(&mut self, m: usize) {
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
    fn file_slot0(&mut self) {
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

    fn set_profile(&mut self, a: u32, agent: Agent) {
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
    fn speaks(&self, a: u32, lang: u32) -> bool {
        let hot = &self.hot_agents[a as usize];
        if lang < 64 {
            hot.langs >> lang & 1 == 1
        } else {
            hot.more_langs && self.agents[a as usize].more_langs.contains(&lang)
        }
    }

    /// Whether agent `a`'s language and team meet class `c`.
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
    fn fits(&self, a: u32, c: u32) -> bool {
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
    fn eligible(&self, t: u32, a: u32) -> bool {
        self.eligible_as(t, a, false)
    }

    /// The first agent in pool queue (index, load) eligible for `t`, dropping stale entries at
    /// the front: (seq, agent).
    fn first_in_pool(&mut self, index: usize, load: usize, t: u32) -> Option<(u64, u32)> {
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

    /// The slab index of agent `id`.
    fn agent_index(&self, id: AgentId) -> Option<u32> {
        let agents = &self.hot_agents;
        self.agent_ids
            .get(id.as_uuid().as_u128(), |a| agents[a as usize].id == id)
    }

    /// The slab index of task `id` (queued, offered or assigned).
    fn task_index(&self, id: ConversationId) -> Option<u32> {
        let hot = &self.hot;
        self.task_ids
            .get(id.as_uuid().as_u128(), |t| hot[t as usize].id == id)
    }

    /// Waiting tasks.
    fn queued(&self) -> usize {
        self.queued_by_medium.iter().sum()
    }

    /// Whether queued task `t`'s class holds another live task in its heap. Then no free agent
    /// can take `t`: any agent eligible for it would be eligible for that task too (same class,
    /// no hold, no exclusions), and the queue was at its fixed point before `t` came.
    fn class_has_other(&self, t: u32) -> bool {
        let task = &self.hot[t as usize];
        let class = &self.catalog.classes[task.class as usize];
        let live = class.q.heap.len() - class.q.stale as usize;
        live > usize::from(task.hold == NONE && !task.excluded)
    }

    /// Whether agent `a` may no longer be offered task `t`.
    fn is_excluded(&self, t: u32, a: u32) -> bool {
        self.excluded.get(&t).is_some_and(|x| x.contains(&a))
    }

    /// The preferred agent of task `t`, resolving an id first seen after the task.
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
    fn place(&mut self, t: u32) {
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
    fn unplace(&mut self, t: u32) {
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
    fn class_of_task(&mut self, t: u32, ring: usize) -> u32 {
        if ring == 0 {
            return self.cold[t as usize].own;
        }
        let task = self.task(t);
        let c = self.catalog.class_by_key(&self.policy, &task, ring);
        self.grow_slots();
        c
    }

    /// Slab task `t` as it was enqueued.
    fn task(&self, t: u32) -> Task {
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
        }
    }

    /// Puts `t` (already in the slab) into the queue at the current time.
    fn enter_queue(&mut self, t: u32) {
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

    fn leave_queue(&mut self, t: u32) {
        self.unplace(t);
        self.queued_by_medium[self.hot[t as usize].medium as usize] -= 1;
        if self.policy.standby.is_some() {
            let enqueued = at_ms(self.cold[t as usize].enqueued_at);
            self.oldest.remove(&(enqueued, self.hot[t as usize].seq));
        }
    }

    fn timer(&mut self, at: i64, kind: u8, t: u32) {
        let task = &self.hot[t as usize];
        self.timers
            .push(Reverse((at, kind, task.rank, task.seq, t, task.life)));
    }

    fn schedule_ring(&mut self, t: u32) {
        if self.policy.rings.is_empty() {
            return;
        }
        let enqueued = at_ms(self.cold[t as usize].enqueued_at);
        if let Some(at) = self
            .policy
            .ring_time(enqueued, self.cold[t as usize].ring as usize)
        {
            self.timer(at, RING_UP, t);
        }
    }

    fn timer_live(&self, timer: &Timer) -> bool {
        let &(at, kind, _, _, t, life) = timer;
        let task = &self.hot[t as usize];
        if task.life != life {
            return false;
        }
        match kind {
            EXPIRE => matches!(task.state, State::Offered(_)),
            HOLD_END => task.state == State::Queued && task.hold != NONE,
            _ => {
                task.state == State::Queued
                    && self.policy.ring_time(
                        at_ms(self.cold[t as usize].enqueued_at),
                        self.cold[t as usize].ring as usize,
                    ) == Some(at)
            }
        }
    }

    fn give(&mut self, t: u32, a: u32, out: &mut Vec<Decision>) {
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
    fn unload(&mut self, t: u32, a: u32) {
        let medium = self.hot[t as usize].medium as usize;
        self.hot_agents[a as usize].loads[medium] -= 1;
    }

    /// Takes task `t` back from agent `a` (offer rejected or expired) and queues it again.
    fn take_back(&mut self, t: u32, a: u32) {
        self.unload(t, a);
        self.touch(a);
        self.excluded.entry(t).or_default().push(a);
        let task = &mut self.hot[t as usize];
        task.excluded = true;
        task.hold = NONE;
        self.enter_queue(t);
    }

    fn free_task(&mut self, t: u32, id: ConversationId) {
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

    /// Lets agent `a`, just changed, take work; then files the agents the event touched.
    fn touch_and_dispatch(&mut self, a: u32, out: &mut Vec<Decision>) {
        self.touch(a);
        self.dispatch(&[a], &[], out);
        self.settle(out);
    }

    /// The end of every event: the standby pool's state, then the pools.
    fn settle(&mut self, out: &mut Vec<Decision>) {
        self.standby_eval(out);
        self.flush();
    }

    /// Serves the best-ranked task with an eligible agent until none is left; only the changed
    /// agents and tasks can create a match.
    fn dispatch(&mut self, agents: &[u32], tasks: &[u32], out: &mut Vec<Decision>) {
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
    fn standby_eval(&mut self, out: &mut Vec<Decision>) {
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
                        let State::Offered(a) = self.hot[t as usize].state else {
                            unreachable!("checked live")
                        };
                        self.take_back(t, a);
                        let agent = self.agents[a as usize].agent.id;
                        out.push(Decision::OfferExpired {
                            task: self.hot[t as usize].id,
                            agent,
                        });
                        let max = self.policy.reservations.map_or(u32::MAX, |r| r.max_missed);
                        let ag = &mut self.agents[a as usize];
                        ag.missed += 1;
                        if ag.missed >= max {
                            ag.missed = 0;
                            ag.agent.presence = Presence::Away;
                            self.hot_agents[a as usize].online = false;
                            out.push(Decision::AgentAway { agent });
                        }
                        agents.push(a);
                    }
                    HOLD_END => {
                        self.unplace(t);
                        self.hot[t as usize].hold = NONE;
                        self.place(t);
                    }
                    _ => {
                        self.unplace(t);
                        let ring = self.cold[t as usize].ring as usize + 1;
                        self.cold[t as usize].ring = ring as u32;
                        let class = self.class_of_task(t, ring);
                        self.hot[t as usize].class = class;
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
        let a = self
            .agent_index(agent)
            .ok_or_else(|| not_found("agent", agent))?;
        match self.task_index(task) {
            Some(t) if self.hot[t as usize].state == State::Offered(a) => Ok((t, a)),
            _ => Err(not_offered(agent, task)),
        }
    }

    /// Stores a new task of routing class `own` (its own requirements) in the slab; returns
    /// its index.
    fn admit(&mut self, task: &Task, own: u32, hold: Option<(u32, i64)>) -> u32 {
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

impl SyncRouter for SkillRouter {
    fn enqueue(&mut self, task: Task, out: &mut Vec<Decision>) -> Result<()> {
        validate_task(&task)?;
        let id = task.id;
        if self.task_index(id).is_some() {
            return Err(duplicate(id));
        }
        let enqueued = at_ms(task.enqueued_at);
        self.advance(enqueued.max(self.now), out);
        if !self.parked.remove(&id) && self.policy.bot_first(self.queued()) {
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
            Some(t) if self.hot[t as usize].state == State::Assigned(a) => t,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::SkillRequirement;

    fn task(
        channel: ChannelKind,
        reqs: &[(&str, u8)],
        lang: Option<&str>,
        team: Option<&str>,
    ) -> Task {
        let mut t = Task::new(ConversationId::new(), channel, Utc::now());
        t.requirements = reqs
            .iter()
            .map(|&(s, l)| SkillRequirement::new(s, l))
            .collect();
        t.language = lang.map(Into::into);
        t.team = team.map(Into::into);
        t
    }

    /// Short lists sit inline, long ones on the heap; both read back as given and answer level
    /// look-ups alike (the property test's agents never have more than two skills).
    #[test]
    fn a_skill_list_reads_back_inline_and_spilled() {
        for n in [0u32, 1, 6, 7, 8, 20] {
            let pairs: Vec<(u32, u8)> = (0..n).map(|i| (i * 3 + 1, (i % 10) as u8 + 1)).collect();
            let list = SkillList::new(pairs.clone());
            assert_eq!(list.len(), pairs.len());
            assert_eq!(list.spilled.is_empty(), pairs.len() <= SkillList::INLINE);
            assert_eq!(list.iter().collect::<Vec<_>>(), pairs);
            for &(s, l) in &pairs {
                assert_eq!(list.level(s), Some(l), "skill {s} of {n}");
                assert_eq!(list.level(s + 1), None, "skill {} of {n}", s + 1);
            }
            assert_eq!(list.level(0), None);
        }
    }

    /// The check behind every class look-up (and the only one for texts too long to keep
    /// inline) tells a class's own tasks from every near miss.
    #[test]
    fn a_class_is_recognised_only_by_its_own_requirements() {
        let long = "after-sales-returns-and-refunds-for-oversized-furniture-north";
        let policy = RoutingPolicy::default();
        let mut catalog = Catalog::default();
        let own = task(
            ChannelKind::WebChat,
            &[(long, 3), ("refunds", 1)],
            Some("zh"),
            Some("vip"),
        );
        let c = catalog.own_class(&policy, &own);
        assert_eq!(
            catalog.own_class(&policy, &own),
            c,
            "found again, not created"
        );
        assert!(catalog.is_class_of(c, &own));
        let near_misses = [
            task(
                ChannelKind::Voice,
                &[(long, 3), ("refunds", 1)],
                Some("zh"),
                Some("vip"),
            ),
            task(
                ChannelKind::WebChat,
                &[(long, 4), ("refunds", 1)],
                Some("zh"),
                Some("vip"),
            ),
            task(
                ChannelKind::WebChat,
                &[("refunds", 1), (long, 3)],
                Some("zh"),
                Some("vip"),
            ),
            task(ChannelKind::WebChat, &[(long, 3)], Some("zh"), Some("vip")),
            task(
                ChannelKind::WebChat,
                &[(&long[..60], 3), ("refunds", 1)],
                Some("zh"),
                Some("vip"),
            ),
            task(
                ChannelKind::WebChat,
                &[(long, 3), ("refunds", 1)],
                Some("en"),
                Some("vip"),
            ),
            task(
                ChannelKind::WebChat,
                &[(long, 3), ("refunds", 1)],
                None,
                Some("vip"),
            ),
            task(
                ChannelKind::WebChat,
                &[(long, 3), ("refunds", 1)],
                Some("zh"),
                None,
            ),
            task(
                ChannelKind::WebChat,
                &[(long, 3), ("refunds", 1)],
                Some("zh"),
                Some("std"),
            ),
        ];
        for other in &near_misses {
            assert!(!catalog.is_class_of(c, other), "{other:?}");
            assert_ne!(catalog.own_class(&policy, other), c, "{other:?}");
        }
    }
}
