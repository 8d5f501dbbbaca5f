//! The fast policy router: interned routing classes, per-class task heaps, per-skill agent
//! pools, compact hot records and a timer heap.
//!
//! The state is laid out in [`SkillRouter`] (this file); each concern is a module of its own:
//! - `hash`: the small hasher of the router's maps;
//! - `catalog`: routing classes (interned requirement sets) with their task heaps and heads;
//! - `records`: the compact per-task and per-agent records decisions read;
//! - `pools`: free agents by primary skill, medium, level and load;
//! - `agents`: profiles, eligibility and filing agents in the pools;
//! - `queue`: queued tasks, class heads, giving and taking back;
//! - `dispatch`: best agent, best task and the dispatch loop;
//! - `timers`: offers, sticky holds and overflow rings;
//! - `ops`: the [`SyncRouter`] operations.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use cs_core::{AgentId, ConversationId};

use crate::index::IdIndex;
use crate::policy::RoutingPolicy;

mod agents;
mod catalog;
mod dispatch;
mod hash;
mod ops;
mod pools;
mod queue;
mod records;
mod timers;

use catalog::{Catalog, Head};
use hash::{FxMap, FxSet};
use pools::{LEVELS, Pools};
use records::{ColdAgent, ColdTask, HotAgent, HotTask};
use timers::Timer;

/// "No agent", "no language", "no team" in the compact records.
const NONE: u32 = u32::MAX;
/// A preferred agent named by an id the router has not seen yet (looked up again when needed).
const UNKNOWN: u32 = u32::MAX - 1;

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
/// It is a single-writer state machine ([`crate::SyncRouter`], `&mut self`): wrap it in
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

    #[inline]
    fn pool_index(slot: usize, medium: usize, level: u8) -> usize {
        (slot * 3 + medium) * LEVELS + level as usize
    }

    /// The slab index of agent `id`.
    #[inline]
    fn agent_index(&self, id: AgentId) -> Option<u32> {
        let agents = &self.hot_agents;
        self.agent_ids
            .get(id.as_uuid().as_u128(), |a| agents[a as usize].id == id)
    }

    /// The slab index of task `id` (queued, offered or assigned).
    #[inline]
    fn task_index(&self, id: ConversationId) -> Option<u32> {
        let hot = &self.hot;
        self.task_ids
            .get(id.as_uuid().as_u128(), |t| hot[t as usize].id == id)
    }

    /// Waiting tasks.
    #[inline]
    fn queued(&self) -> usize {
        self.queued_by_medium.iter().sum()
    }
}
