//! A bounded pool of ClientHello buffers, for the few flows whose hello is longer than one TCP
//! segment or QUIC packet (a post-quantum key share makes it so; most fit one).
//!
//! Guarantees: [`HELLO_POOL_SLOTS`] buffers of [`MAX_HELLO`](super::payload::MAX_HELLO) bytes
//! (and a scratch one, 300 KB in all),
//! allocated once when names are kept; never grows. A flow holds at most one slot, named by
//! its index in the flow's entry and checked against the flow's hash (a slot taken over by
//! another flow is not read as this one's). When every slot is held, the one used longest ago
//! is taken over, counted: its flow reads no more of its hello.

use super::payload::Gather;
use crate::time::Nanos;

/// ClientHellos gathered at once.
pub const HELLO_POOL_SLOTS: usize = 64;

struct Slot {
    /// Hash of the flow holding it; 0 when free.
    owner: u64,
    used: Nanos,
    gather: Gather,
}

/// Counters of the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HelloPoolStats {
    /// ClientHellos that needed a slot (longer than their first segment or packet).
    pub started: u64,
    /// Slots taken from a flow still gathering, because all were held.
    pub taken_over: u64,
}

pub struct HelloPool {
    slots: Vec<Slot>,
    /// Where a flow's first payload is read; copied into a slot if its hello goes on.
    scratch: Box<Gather>,
    stats: HelloPoolStats,
}

impl HelloPool {
    pub fn new() -> HelloPool {
        HelloPool {
            slots: (0..HELLO_POOL_SLOTS)
                .map(|_| Slot {
                    owner: 0,
                    used: 0,
                    gather: Gather::default(),
                })
                .collect(),
            scratch: Box::default(),
            stats: HelloPoolStats::default(),
        }
    }

    pub fn stats(&self) -> HelloPoolStats {
        self.stats
    }

    /// The slot index (1-based, 0 for none) still held by flow `owner`.
    pub fn held(&self, index: u16, owner: u64) -> Option<usize> {
        let i = usize::from(index).checked_sub(1)?;
        (self.slots.get(i)?.owner == owner).then_some(i)
    }

    /// The buffer of held slot `i` (from [`held`](Self::held)), marked used at `now`.
    pub fn slot_mut(&mut self, i: usize, now: Nanos) -> &mut Gather {
        let s = &mut self.slots[i];
        s.used = now;
        &mut s.gather
    }

    /// The scratch buffer, for a flow that holds no slot.
    pub fn scratch(&mut self) -> &mut Gather {
        &mut self.scratch
    }

    /// Give flow `owner` a slot holding what the scratch buffer holds; its 1-based index.
    pub fn adopt(&mut self, owner: u64, now: Nanos) -> u16 {
        self.stats.started += 1;
        let i = match self.slots.iter().position(|s| s.owner == 0) {
            Some(i) => i,
            None => {
                self.stats.taken_over += 1;
                self.slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.used)
                    .map_or(0, |(i, _)| i)
            }
        };
        let s = &mut self.slots[i];
        s.owner = owner;
        s.used = now;
        s.gather.clone_from(&self.scratch);
        // At most HELLO_POOL_SLOTS (64).
        (i + 1) as u16
    }

    /// Flow `owner` is done with slot `index` (1-based).
    pub fn release(&mut self, index: u16, owner: u64) {
        if let Some(i) = self.held(index, owner) {
            self.slots[i].owner = 0;
        }
    }
}

impl HelloPool {
    /// Bytes the pool takes (its slots and the scratch buffer).
    pub fn bytes() -> u64 {
        ((HELLO_POOL_SLOTS + 1) * std::mem::size_of::<Gather>()
            + HELLO_POOL_SLOTS * std::mem::size_of::<Slot>()) as u64
    }
}

impl Default for HelloPool {
    fn default() -> HelloPool {
        HelloPool::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_taken_over_oldest_first() {
        let mut p = HelloPool::new();
        p.scratch().put(0, b"abc");
        let first = p.adopt(1, 0);
        assert_eq!(
            p.held(first, 1).map(|i| p.slot_mut(i, 1).prefix().to_vec()),
            Some(b"abc".to_vec())
        );
        assert_eq!(p.held(first, 2), None, "another flow's");
        for owner in 2..=HELLO_POOL_SLOTS as u64 {
            p.adopt(owner, owner);
        }
        assert_eq!(p.stats().taken_over, 0);
        let late = p.adopt(1000, 1000);
        assert_eq!(late, first, "the slot used longest ago");
        assert_eq!(p.held(first, 1), None);
        assert_eq!(
            p.stats(),
            HelloPoolStats {
                started: 65,
                taken_over: 1
            }
        );
        p.release(late, 1000);
        assert_eq!(p.held(late, 1000), None);
    }
}
