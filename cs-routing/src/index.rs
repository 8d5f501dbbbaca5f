//! A compact index from 128-bit ids to slab positions.
//!
//! A router looks ids up on every event (the task on release, the new task on enqueue). A hash
//! map keyed by the id itself needs 20+ bytes a slot and, at a hundred thousand tasks, no longer
//! fits in the cache; every look-up is then a trip to memory. [`IdIndex`] keeps 8 bytes a slot
//! (the low 32 bits of the id's hash and the slab position) in one open-addressed table with
//! linear probing, and checks a hit against the slab, which the caller reads anyway. The stored
//! hash bits give every entry's home slot, so removal never reads the slab.

/// Ids to slab positions; the ids themselves live in the caller's slab.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    /// 0 = empty; else `tag << 32 | position`, the tag being the hash's low 32 bits (never 0).
    slots: Vec<u64>,
    len: usize,
}

/// A 64-bit hash of a 128-bit id (UUIDv7 ids differ mostly in their low and middle bits).
fn hash(id: u128) -> u64 {
    let (lo, hi) = (id as u64, (id >> 64) as u64);
    let x = (lo ^ hi.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let x = (x ^ (x >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^ (x >> 32)
}

/// The tag of a hash: its low half, never 0 (a table has at most 2^32 slots, so the tag gives
/// the home slot).
fn tag(h: u64) -> u64 {
    (h & 0xffff_ffff).max(1)
}

impl IdIndex {
    /// Ids indexed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `id`, if indexed; `is(position)` says whether a position holds `id`.
    fn find_slot(&self, id: u128, is: impl Fn(u32) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let want = tag(hash(id));
        let mask = self.mask();
        let mut i = want as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s >> 32 == want && is(s as u32) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The position of `id`, if indexed.
    pub(crate) fn get(&self, id: u128, is: impl Fn(u32) -> bool) -> Option<u32> {
        self.find_slot(id, is).map(|i| self.slots[i] as u32)
    }

    /// Indexes `id` at `position`; the caller has checked that `id` is not indexed yet.
    pub(crate) fn insert(&mut self, id: u128, position: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.put(hash(id), position);
        self.len += 1;
    }

    fn put(&mut self, h: u64, position: u32) {
        self.put_slot(tag(h) << 32 | u64::from(position));
    }

    fn put_slot(&mut self, slot: u64) {
        let mask = self.mask();
        let mut i = (slot >> 32) as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        for s in old.into_iter().filter(|&s| s != 0) {
            self.put_slot(s);
        }
    }

    /// Removes `id`; returns its position.
    pub(crate) fn remove(&mut self, id: u128, is: impl Fn(u32) -> bool) -> Option<u32> {
        let mut hole = self.find_slot(id, is)?;
        let position = self.slots[hole] as u32;
        self.len -= 1;
        // Backward-shift deletion: move up every following entry that may not sit past the
        // hole, so probes never meet a gap before their entry (no tombstones).
        let mask = self.mask();
        let mut i = hole;
        loop {
            self.slots[hole] = 0;
            loop {
                i = (i + 1) & mask;
                let s = self.slots[i];
                if s == 0 {
                    return Some(position);
                }
                let home = (s >> 32) as usize & mask;
                // The entry at `i` may move to the hole if its home is not in (hole, i].
                let stays = if hole <= i {
                    hole < home && home <= i
                } else {
                    hole < home || home <= i
                };
                if !stays {
                    self.slots[hole] = s;
                    hole = i;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random inserts and removes agree with a `HashMap`, through growth and wrap-around.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut ids: Vec<u128> = Vec::new();
        let mut index = IdIndex::default();
        let mut model: HashMap<u128, u32> = HashMap::new();
        let mut x: u64 = 7;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z ^ (z >> 27)
        };
        for step in 0..20_000u32 {
            let r = next();
            if r % 3 != 0 || model.is_empty() {
                // Ids that share their high half, like UUIDv7s of one millisecond.
                let id = (u128::from(step / 100) << 80) | u128::from(next());
                let position = ids.len() as u32;
                ids.push(id);
                let id_of = |p: u32| ids[p as usize];
                assert!(index.get(id, |p| id_of(p) == id).is_none());
                index.insert(id, position);
                model.insert(id, position);
            } else {
                let k = *model.keys().nth(r as usize % model.len()).unwrap();
                let removed = index.remove(k, |p| ids[p as usize] == k);
                assert_eq!(removed, model.remove(&k));
            }
            assert_eq!(index.len(), model.len());
        }
        for (&id, &p) in &model {
            assert_eq!(index.get(id, |q| ids[q as usize] == id), Some(p));
        }
        assert_eq!(index.get(u128::MAX, |q| ids[q as usize] == u128::MAX), None);
    }
}
