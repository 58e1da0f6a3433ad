//! IP fragments: remember the ports of each datagram's first fragment, so that its other
//! fragments (which carry no transport header) get the same flow and the same class.
//!
//! Capacity: a fixed number of slots, direct-mapped with a short probe; entries expire after
//! [`FRAGMENT_TIMEOUT`] (Linux's ipfrag_time). A fragment that arrives before its first fragment,
//! or whose entry was pushed out, is classified on what it carries (addresses, protocol) and
//! counted as unmatched.

use super::flow::mix;
use crate::time::Nanos;
use crate::wire::FrameView;

pub const FRAGMENT_TIMEOUT: Nanos = 30_000_000_000;
const PROBE: usize = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    src: u128,
    dst: u128,
    id: u32,
    proto: u8,
    used: bool,
    src_port: u16,
    dst_port: u16,
    last_seen: Nanos,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentStats {
    /// First fragments whose ports were remembered.
    pub tracked: u64,
    /// Later fragments that found their datagram's ports.
    pub matched: u64,
    /// Later fragments that did not.
    pub unmatched: u64,
}

#[derive(Debug)]
pub struct FragmentTable {
    slots: Vec<Entry>,
    mask: usize,
    stats: FragmentStats,
}

impl FragmentTable {
    pub fn new(capacity: u32) -> FragmentTable {
        let n = capacity.max(PROBE as u32).next_power_of_two() as usize;
        FragmentTable {
            slots: vec![Entry::default(); n],
            mask: n - 1,
            stats: FragmentStats::default(),
        }
    }

    pub fn stats(&self) -> FragmentStats {
        self.stats
    }

    fn start(v: &FrameView) -> usize {
        let h = mix(v.src_ip as u64 ^ (v.dst_ip as u64).rotate_left(29))
            ^ mix((u64::from(v.frag_id) << 8) | u64::from(v.ip_proto))
            ^ mix(((v.src_ip >> 64) as u64) ^ ((v.dst_ip >> 64) as u64).rotate_left(7));
        h as usize
    }

    fn same(e: &Entry, v: &FrameView) -> bool {
        e.used
            && e.src == v.src_ip
            && e.dst == v.dst_ip
            && e.id == v.frag_id
            && e.proto == v.ip_proto
    }

    /// For a fragment: the first one records its ports; a later one gets them filled in from
    /// the record. Non-fragments are left alone.
    pub fn resolve(&mut self, v: &mut FrameView, now: Nanos) {
        if !v.is_fragment {
            return;
        }
        let start = Self::start(v);
        if v.frag_offset == 0 {
            if !v.has_ports {
                return;
            }
            // Reuse the datagram's slot, else a free or expired one, else the oldest.
            let mut pick = start & self.mask;
            for i in 0..PROBE {
                let idx = (start + i) & self.mask;
                let e = &self.slots[idx];
                if Self::same(e, v) || !e.used || now.saturating_sub(e.last_seen) > FRAGMENT_TIMEOUT
                {
                    pick = idx;
                    break;
                }
                if e.last_seen < self.slots[pick].last_seen {
                    pick = idx;
                }
            }
            self.slots[pick] = Entry {
                src: v.src_ip,
                dst: v.dst_ip,
                id: v.frag_id,
                proto: v.ip_proto,
                used: true,
                src_port: v.src_port,
                dst_port: v.dst_port,
                last_seen: now,
            };
            self.stats.tracked += 1;
            return;
        }
        for i in 0..PROBE {
            let idx = (start + i) & self.mask;
            let e = &mut self.slots[idx];
            if Self::same(e, v) && now.saturating_sub(e.last_seen) <= FRAGMENT_TIMEOUT {
                e.last_seen = now;
                v.has_ports = true;
                v.src_port = e.src_port;
                v.dst_port = e.dst_port;
                self.stats.matched += 1;
                return;
            }
        }
        self.stats.unmatched += 1;
    }
}
