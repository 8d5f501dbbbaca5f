//! Free agents waiting for work, by primary skill, medium, level and load, longest idle first.

use std::collections::VecDeque;

/// Skill levels 0 (the "no requirement" slot) to 10.
pub(super) const LEVELS: usize = 11;

/// Free agents by pool index (primary skill, medium, level) and load, in one flat table so a
/// push touches one queue header and its tail.
#[derive(Debug, Default)]
pub(super) struct Pools {
    /// The queue of (index, load) at [`Self::pos`]: (agent, seq), longest idle first. The
    /// levels of one (skill, medium, load) sit side by side, as a probe reads them together.
    pub(super) queues: Vec<VecDeque<(u32, u64)>>,
    /// Loads per index; widened when an agent with a higher load is filed.
    stride: usize,
    /// By index: bit `load` is set whenever that queue is not empty; bit 63 stands for every
    /// load from 63 up. Probes skip empty queues without touching them.
    pub(super) occupied: Vec<u64>,
    /// Entries, stale ones included.
    pub(super) entries: usize,
}

impl Pools {
    /// Where the queue of (index, load) is, for `stride` loads per index.
    #[inline]
    fn pos_in(index: usize, load: usize, stride: usize) -> usize {
        (index / LEVELS * stride + load) * LEVELS + index % LEVELS
    }

    #[inline]
    pub(super) fn pos(&self, index: usize, load: usize) -> usize {
        Self::pos_in(index, load, self.stride)
    }

    #[inline]
    pub(super) fn bit(load: usize) -> u64 {
        1 << load.min(63)
    }

    /// Makes room for `indexes` pool indexes.
    pub(super) fn grow(&mut self, indexes: usize) {
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

    #[inline]
    pub(super) fn push(&mut self, index: usize, load: usize, entry: (u32, u64)) {
        if load >= self.stride {
            self.widen(load + 1);
        }
        let pos = self.pos(index, load);
        self.queues[pos].push_back(entry);
        self.occupied[index] |= Self::bit(load);
        self.entries += 1;
    }

    #[inline]
    pub(super) fn queue(&mut self, index: usize, load: usize) -> &mut VecDeque<(u32, u64)> {
        let pos = self.pos(index, load);
        &mut self.queues[pos]
    }

    /// The loads that may have entries at `index`, least first.
    #[inline]
    pub(super) fn loads(&self, occupied: u64) -> impl Iterator<Item = usize> + use<> {
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
    pub(super) fn compact(&mut self, live: impl Fn(u32, u64) -> bool) {
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
