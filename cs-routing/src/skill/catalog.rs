//! Routing classes: every distinct requirement set (medium, skills with levels, language,
//! teams) interned once, with the heap of its waiting tasks, and the class heads the agents' side
//! reads.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hasher;

use super::NONE;
use super::hash::{FxHasher, FxMap};
use crate::policy::{RoutingPolicy, Teams, medium_index};
use crate::task::Task;

/// Interns strings to dense ids.
#[derive(Debug, Default)]
pub(super) struct Interner {
    pub(super) ids: FxMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    pub(super) fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(s.to_owned(), i);
        self.names.push(s.to_owned());
        i
    }

    #[inline]
    pub(super) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }
}

/// A routing class's identity: one distinct (medium, requirements, language, teams).
#[derive(Debug, Default, Hash, PartialEq, Eq, Clone)]
pub(super) struct ClassKey {
    pub(super) medium: u8,
    pub(super) reqs: Vec<(u32, u8)>,
    pub(super) lang: Option<u32>,
    pub(super) teams: Option<Vec<u32>>,
}

/// A routing class with its waiting tasks.
#[derive(Debug)]
pub(super) struct Class {
    pub(super) key: ClassKey,
    /// Required skills as a bitset.
    pub(super) bits: Vec<u64>,
    /// Tasks some agent rejected (checked one by one).
    pub(super) side: Vec<u32>,
    /// What queueing and dispatch read, in one cache line.
    pub(super) q: ClassQueue,
}

/// The part of a [`Class`] that every enqueue and assignment reads and writes, in one cache
/// line (the whole class spans three).
#[derive(Debug)]
#[repr(align(64))]
pub(super) struct ClassQueue {
    /// Tasks with no exclusions: (rank, seq, task, version), lazily deleted.
    pub(super) heap: BinaryHeap<Reverse<(i64, u64, u32, u32)>>,
    /// The live head of `heap` as registered in `heads`: (rank, seq).
    pub(super) head: Option<(i64, u64)>,
    /// Entries of `heap` that are stale: while there are none, the top needs no check (and no
    /// look at its task).
    pub(super) stale: u32,
    /// Primary skill slot (0 = no requirement, else skill + 1).
    pub(super) slot: u32,
    /// Language id or [`NONE`].
    pub(super) lang: u32,
    /// The medium index (as in the key).
    pub(super) medium: u8,
    /// Lowest level of the primary skill (0 without one).
    pub(super) min: u8,
    /// Whether the primary skill and the language are the whole requirement.
    pub(super) simple: bool,
}

const _: () = assert!(std::mem::size_of::<ClassQueue>() == 64);

/// Everything interned: names and routing classes.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    pub(super) skills: Interner,
    pub(super) langs: Interner,
    pub(super) teams: Interner,
    pub(super) classes: Vec<Class>,
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
    pub(super) slot0: bool,
}

/// The text of a task's own routing class, as [`text_of`] writes it, kept with the class so
/// a look-up is checked without leaving the table: up to [`TextEntry::INLINE`] bytes.
#[derive(Debug, Clone, Copy)]
struct TextEntry {
    pub(super) class: u32,
    /// The text's length, or `u8::MAX` when it is too long to keep (checked against the class).
    pub(super) len: u8,
    pub(super) bytes: [u8; TextEntry::INLINE],
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

    /// The routing class of `task`'s own requirements (no overflow ring). Always inlined: it is
    /// most of an enqueue, and a second caller (restore) would otherwise make it a call.
    #[inline(always)]
    pub(super) fn own_class(&mut self, policy: &RoutingPolicy, task: &Task) -> u32 {
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
    pub(super) fn class_by_key(&mut self, policy: &RoutingPolicy, task: &Task, ring: usize) -> u32 {
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

pub(super) fn bits_of(skills: &[(u32, u8)]) -> Vec<u64> {
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
pub(super) struct Head {
    pub(super) rank: i64,
    pub(super) seq: u64,
    pub(super) class: u32,
    /// The task at the head.
    pub(super) task: u32,
    pub(super) lang: u32,
    pub(super) min: u8,
    pub(super) simple: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::SkillRequirement;
    use chrono::Utc;
    use cs_core::{ChannelKind, ConversationId};

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
