//! The compact records decisions read: a task's and an agent's hot line, and the rest.

use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, ChannelKind, ConversationId, CustomerTier, Priority};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Free,
    Queued,
    Offered(u32),
    Assigned(u32),
}

/// What routing reads of a task, in one cache line (the rest lives in [`ColdTask`]).
#[derive(Debug)]
#[repr(align(64))]
pub(super) struct HotTask {
    pub(super) rank: i64,
    pub(super) seq: u64,
    pub(super) id: ConversationId,
    pub(super) state: State,
    pub(super) class: u32,
    /// Bumped whenever the task moves between heaps/lists (heap entries carry it).
    pub(super) version: u32,
    /// Bumped whenever the task (re-)enters the queue (timers carry it).
    pub(super) life: u32,
    /// The preferred agent: an index, [`NONE`] or [`UNKNOWN`].
    pub(super) preferred: u32,
    /// The agent a sticky hold waits for, or [`NONE`].
    pub(super) hold: u32,
    pub(super) medium: u8,
    pub(super) vip: bool,
    /// Whether some agent is excluded (`SkillRouter::excluded`).
    pub(super) excluded: bool,
}

// One record per cache line.
const _: () = assert!(std::mem::size_of::<HotTask>() == 64);

const _: () = assert!(std::mem::size_of::<ColdTask>() == 64);

/// The rest of a task. Its requirements are those of its own routing class (`own`), so the
/// caller's strings are freed at once, while still in cache, and the task is rebuilt from its
/// class when someone asks for it.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub(super) struct ColdTask {
    /// Overflow rings applied.
    pub(super) ring: u32,
    pub(super) channel: ChannelKind,
    pub(super) priority: Priority,
    pub(super) tier: CustomerTier,
    pub(super) preferred_agent: Option<AgentId>,
    pub(super) enqueued_at: DateTime<Utc>,
    /// The routing class of the task's own requirements (ring 0).
    pub(super) own: u32,
    /// When the sticky hold ends (ms).
    pub(super) hold_until: i64,
    /// [`Task::skip_bot`](crate::Task::skip_bot).
    pub(super) skip_bot: bool,
}

/// What eligibility and a release read of an agent, in one cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(super) struct HotAgent {
    pub(super) id: AgentId,
    /// The activity seq at which the agent was last registered as free.
    pub(super) filed: u64,
    /// Languages with an id below 64.
    pub(super) langs: u64,
    pub(super) cap: [u16; 3],
    pub(super) loads: [u16; 3],
    pub(super) team: u32,
    pub(super) blocks: bool,
    pub(super) online: bool,
    pub(super) standby: bool,
    /// Whether the agent speaks languages with higher ids (`ColdAgent::more_langs`).
    pub(super) more_langs: bool,
    /// Whether tasks wait for this agent (`ColdAgent::held`).
    pub(super) holds: bool,
}

const _: () = assert!(std::mem::size_of::<HotAgent>() == 64);

impl HotAgent {
    /// Whether there is a free slot for medium `m` (see [`crate::policy`]).
    #[inline]
    pub(super) fn room(&self, m: usize) -> bool {
        self.loads[m] < self.cap[m] && !(self.blocks && m != 2 && self.loads[2] > 0)
    }

    #[inline]
    pub(super) fn load(&self) -> u16 {
        self.loads.iter().sum()
    }
}

#[derive(Debug)]
pub(super) struct ColdAgent {
    /// (skill id, level), sorted by skill id: the line a freed agent reads to look for work.
    pub(super) skills: SkillList,
    pub(super) agent: Agent,
    pub(super) bits: Vec<u64>,
    /// Languages with an id of 64 or more.
    pub(super) more_langs: Vec<u32>,
    /// Tasks waiting for this agent (sticky hold).
    pub(super) held: Vec<u32>,
    pub(super) missed: u32,
}

impl ColdAgent {
    #[inline]
    pub(super) fn level(&self, skill: u32) -> Option<u8> {
        self.skills.level(skill)
    }
}

/// An agent's (skill id, level) pairs, sorted by skill id, in one cache line for up to
/// [`SkillList::INLINE`] skills (most agents); longer lists live on the heap.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct SkillList {
    /// Inline pairs in use (0 when the list is on the heap).
    pub(super) len: u8,
    pub(super) ids: [u32; SkillList::INLINE],
    pub(super) levels: [u8; SkillList::INLINE],
    /// The whole list, when it is longer than [`SkillList::INLINE`].
    spilled: Vec<(u32, u8)>,
}

const _: () = assert!(std::mem::size_of::<SkillList>() == 64);

impl SkillList {
    const INLINE: usize = 7;

    /// The list of sorted, distinct `(skill, level)` pairs.
    pub(super) fn new(sorted: Vec<(u32, u8)>) -> Self {
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

    #[inline]
    pub(super) fn len(&self) -> usize {
        usize::from(self.len) + self.spilled.len()
    }

    #[inline]
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, u8)> + '_ {
        let n = usize::from(self.len);
        self.ids[..n]
            .iter()
            .copied()
            .zip(self.levels[..n].iter().copied())
            .chain(self.spilled.iter().copied())
    }

    #[inline]
    pub(super) fn level(&self, skill: u32) -> Option<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
