//! The bounded flow table: caches each flow's class verdict so that a frame costs one lookup.
//!
//! Capacity: a fixed number of slots (a power of two) allocated at construction; it never grows.
//! Open addressing with linear probing over a window of [`PROBE`] slots. An entry idle for longer
//! than the idle timeout is treated as free. When the window is full of live entries, the one
//! idle the longest is evicted and counted; its flow is simply classified again on its next
//! frame, so a full table costs a rule evaluation, never a drop.
//! The table stores, per flow, one verdict per egress port (the rules may treat the two
//! directions of a connection differently).

use super::flow::FlowKey;
use crate::time::Nanos;

/// Slots examined per lookup; bounds the cost of a miss and of an insert.
pub const PROBE: usize = 8;

/// A cached verdict, or none yet for that direction.
pub const NO_VERDICT: u16 = u16::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Zero marks an empty slot (flow hashes are never zero).
    hash: u64,
    key: FlowKey,
    last_seen: Nanos,
    verdict: [u16; 2],
}

const EMPTY: Entry = Entry {
    hash: 0,
    key: FlowKey {
        lo_addr: 0,
        hi_addr: 0,
        lo_port: 0,
        hi_port: 0,
        proto: 0,
        l3: crate::wire::L3::Other,
        vlan: 0,
        ethertype: 0,
    },
    last_seen: 0,
    verdict: [NO_VERDICT; 2],
};

/// Counters of the flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    pub hits: u64,
    pub misses: u64,
    pub inserted: u64,
    /// Live entries pushed out because their probe window was full.
    pub evicted: u64,
    /// Entries found idle past the timeout and reused.
    pub expired: u64,
    /// Entries in use now (live or expired but not yet reused).
    pub occupied: u64,
}

#[derive(Debug)]
pub struct FlowTable {
    slots: Vec<Entry>,
    mask: usize,
    idle_timeout: Nanos,
    stats: FlowTableStats,
}

impl FlowTable {
    /// `max_flows` is rounded up to a power of two, at least [`PROBE`].
    pub fn new(max_flows: u32, idle_timeout: Nanos) -> FlowTable {
        let n = (max_flows.max(PROBE as u32)).next_power_of_two() as usize;
        FlowTable {
            slots: vec![EMPTY; n],
            mask: n - 1,
            idle_timeout,
            stats: FlowTableStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> FlowTableStats {
        self.stats
    }

    fn is_live(&self, e: &Entry, now: Nanos) -> bool {
        e.hash != 0 && now.saturating_sub(e.last_seen) <= self.idle_timeout
    }

    /// The slot of `key`, refreshed at `now`, inserting (and evicting if need be) on a miss.
    /// Returns the slot index and whether it was a hit.
    pub fn lookup_or_insert(&mut self, key: &FlowKey, hash: u64, now: Nanos) -> (usize, bool) {
        let start = (hash as usize) & self.mask;
        let mut free: Option<usize> = None;
        let mut oldest = start;
        for i in 0..PROBE {
            let idx = (start + i) & self.mask;
            let e = &self.slots[idx];
            if e.hash == hash && e.key == *key {
                if self.is_live(e, now) {
                    self.slots[idx].last_seen = now;
                    self.stats.hits += 1;
                    return (idx, true);
                }
                // Same flow back after expiry: its cached verdict may be stale only if the
                // rules changed, which they do not within one table; still, start afresh.
                free.get_or_insert(idx);
                continue;
            }
            if !self.is_live(e, now) {
                free.get_or_insert(idx);
            } else if e.last_seen < self.slots[oldest].last_seen {
                oldest = idx;
            }
        }
        self.stats.misses += 1;
        self.stats.inserted += 1;
        let idx = match free {
            Some(idx) => {
                if self.slots[idx].hash == 0 {
                    self.stats.occupied += 1;
                } else {
                    self.stats.expired += 1;
                }
                idx
            }
            None => {
                self.stats.evicted += 1;
                oldest
            }
        };
        self.slots[idx] = Entry {
            hash,
            key: *key,
            last_seen: now,
            verdict: [NO_VERDICT; 2],
        };
        (idx, false)
    }

    pub fn verdict(&self, slot: usize, egress: usize) -> u16 {
        self.slots[slot].verdict[egress]
    }

    pub fn set_verdict(&mut self, slot: usize, egress: usize, verdict: u16) {
        self.slots[slot].verdict[egress] = verdict;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> FlowKey {
        FlowKey {
            lo_addr: n,
            hi_addr: n + 1,
            lo_port: 1,
            hi_port: 2,
            proto: 6,
            l3: crate::wire::L3::Ipv4,
            vlan: super::super::flow::NO_VLAN,
            ethertype: 0,
        }
    }

    #[test]
    fn hit_after_insert_and_verdict_kept() {
        let mut t = FlowTable::new(64, 1_000);
        let k = key(1);
        let (slot, hit) = t.lookup_or_insert(&k, k.hash64(), 0);
        assert!(!hit);
        t.set_verdict(slot, 1, 3);
        let (slot2, hit) = t.lookup_or_insert(&k, k.hash64(), 10);
        assert!(hit);
        assert_eq!(slot, slot2);
        assert_eq!(t.verdict(slot2, 1), 3);
        assert_eq!(t.verdict(slot2, 0), NO_VERDICT);
    }

    #[test]
    fn idle_entries_expire() {
        let mut t = FlowTable::new(64, 1_000);
        let k = key(1);
        t.lookup_or_insert(&k, k.hash64(), 0);
        let (_, hit) = t.lookup_or_insert(&k, k.hash64(), 1_001);
        assert!(!hit);
    }

    #[test]
    fn a_flood_of_flows_stays_within_capacity_and_counts_evictions() {
        let mut t = FlowTable::new(1024, u64::MAX);
        for n in 0..100_000u128 {
            let k = key(n * 2);
            t.lookup_or_insert(&k, k.hash64(), n as u64);
        }
        let s = t.stats();
        assert_eq!(t.capacity(), 1024);
        assert!(s.occupied <= 1024);
        assert_eq!(s.inserted, 100_000);
        assert!(s.evicted >= 100_000 - 1024, "{s:?}");
        // The most recent flow is still there.
        let k = key(99_999 * 2);
        assert!(t.lookup_or_insert(&k, k.hash64(), 100_000).1);
    }
}
