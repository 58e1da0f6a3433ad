//! The bounded flow table: caches each flow's class verdict so that a frame costs one lookup.
//!
//! Capacity: a fixed number of slots (a power of two) allocated at construction; it never grows.
//! Open addressing with linear probing over a window of [`PROBE`] slots. An entry idle for longer
//! than the idle timeout is treated as free. When the window is full of live entries, the one
//! idle the longest is evicted and counted; its flow is simply classified again on its next
//! frame, so a full table costs a rule evaluation, never a drop.
//! The table stores, per flow, one verdict per egress port (the rules may treat the two
//! directions of a connection differently), and what `weir flows` shows: who sent its first
//! frame, when, the bytes each way, the class of its last frame each way, and the bytes of the
//! current and the last whole second (a rate without a timer: the window moves on the next
//! frame). About 120 bytes per slot (`size_of::<Entry>()`, tested).
//! When the rules read server names or payload protocols (`app` told from payload), a second
//! array beside the slots keeps each flow's name, where it came from, its protocol and the
//! rules' tests on them (368 bytes per slot, allocated only then: 24 MB for the default
//! 65,536 flows).

use super::flow::FlowKey;
use super::owner::OwnerSeen;
use super::payload::detect::{DetectState, Protocol};
use super::payload::Token;
use super::payload::{Name, NameSource, Pending};
use super::rule::AppSeen;
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
    first_seen: Nanos,
    /// Frame bytes seen per egress port (lan, wan).
    bytes: [u64; 2],
    verdict: [u16; 2],
    /// Class of the last frame per egress port, or [`NO_VERDICT`].
    class: [u16; 2],
    /// Bytes (both ways) in the second `window` and in the second before it.
    window: u32,
    window_bytes: u32,
    last_window_bytes: u32,
    /// The first frame came from the key's `lo` endpoint.
    lo_first: bool,
    /// The table's rules generation the verdicts and classes were set under.
    generation: u32,
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
    first_seen: 0,
    bytes: [0; 2],
    verdict: [NO_VERDICT; 2],
    class: [NO_VERDICT; 2],
    window: 0,
    window_bytes: 0,
    last_window_bytes: 0,
    lo_first: true,
    generation: 0,
};

/// What a flow's payload said of its server, kept beside its slot when the rules read names.
/// Laid out by hand: what every frame reads or writes (the tests, the frame counts, whether
/// anything is left to learn) comes first, together; the name and the state of a parse in
/// progress after.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlowName {
    /// The classifier's name tests on `name`, a bit per test.
    pub tests: u64,
    /// The classifier's protocol tests on `app`.
    pub app_tests: u64,
    /// The classifier's owner tests on the program behind its local socket (crate::classify::owner).
    pub owner_tests: u64,
    /// Frames per egress port (lan, wan).
    pub frames: [u32; 2],
    /// Frames of the flow classified before its name was known.
    pub frames_before: u32,
    /// Frames of the flow classified before its protocol was decided.
    pub frames_before_app: u32,
    /// Frames of the flow classified while its owner was asked for.
    pub frames_before_owner: u32,
    /// Payload frames looked at without a name; [`NAME_DECIDED`] once the name is known or
    /// the flow has given up on one.
    pub looked: u8,
    /// Payload frames read while the protocol was undecided.
    pub app_looked: u8,
    /// What its payload showed of its protocol.
    pub app: AppSeen,
    pub owner: OwnerSeen,
    /// Frames kept in its former class after it moved, to keep their order; and, per egress
    /// port, whether it is moving (its name or protocol changed its verdict, and its frames
    /// have not all left the former class yet).
    pub held_for_order: u8,
    pub moving: [bool; 2],
    /// Where `name` came from; `None` while it is not known.
    pub source: Option<NameSource>,
    /// Its slot in the classifier's ClientHello pool (1-based), while it gathers one.
    pub hello: u16,
    /// What its last payload left to read in the next.
    pub pending: Pending,
    pub detect: DetectState,
    /// The first protocol its ClientHello offered by ALPN, or the software of the first SSH
    /// banner it carried.
    pub detail: Token,
    pub name: Name,
}

/// [`FlowName::looked`] once nothing more is to be learnt.
pub const NAME_DECIDED: u8 = u8::MAX;

/// One flow as `weir flows` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    pub key: FlowKey,
    /// The key's `lo` endpoint sent the first frame seen.
    pub lo_first: bool,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    /// Frame bytes per egress port (lan: download, wan: upload).
    pub bytes: [u64; 2],
    /// Class of the last frame per egress port; `None` when none went that way.
    pub class: [Option<u16>; 2],
    /// Bytes per second, both ways: the last whole second's, or 0 when the flow was silent
    /// through it.
    pub bytes_per_s: u64,
    /// Its server name and where it came from, when names are kept and it is known.
    pub server: Option<(NameSource, Name)>,
    /// Frames per egress port and frames classified before the name was known, when names are
    /// kept (else 0).
    pub frames: [u32; 2],
    pub frames_before_name: u32,
    /// The protocol its payload showed, when names are kept and it is known; and the frames
    /// classified before that was decided.
    pub protocol: Option<Protocol>,
    pub frames_before_app: u32,
    /// The first protocol its ClientHello offered by ALPN, or the software of its first SSH
    /// banner, when names are kept and it had one.
    pub detail: Option<Token>,
}

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
    /// Beside `slots` when names are kept, else empty.
    names: Vec<FlowName>,
    mask: usize,
    idle_timeout: Nanos,
    stats: FlowTableStats,
    /// Bumped when the rules change: verdicts and classes of an older generation are stale,
    /// so forgetting them all costs nothing up front (each entry is refreshed on its next
    /// frame).
    generation: u32,
}

impl FlowTable {
    /// `max_flows` is rounded up to a power of two, at least [`PROBE`].
    /// Bytes a table for `max_flows` takes, and more with names kept (both allocated at
    /// start, whatever the traffic).
    pub fn bytes_for(max_flows: u32) -> (u64, u64) {
        let n = (max_flows.max(PROBE as u32)).next_power_of_two() as u64;
        (
            n * std::mem::size_of::<Entry>() as u64,
            n * std::mem::size_of::<FlowName>() as u64,
        )
    }

    pub fn new(max_flows: u32, idle_timeout: Nanos) -> FlowTable {
        let n = (max_flows.max(PROBE as u32)).next_power_of_two() as usize;
        FlowTable {
            slots: vec![EMPTY; n],
            names: Vec::new(),
            mask: n - 1,
            idle_timeout,
            stats: FlowTableStats::default(),
            generation: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Keep each flow's server name (allocates the names array), or stop (frees it).
    pub fn keep_names(&mut self, keep: bool) {
        if keep && self.names.is_empty() {
            self.names = vec![FlowName::default(); self.slots.len()];
        } else if !keep {
            self.names = Vec::new();
        }
    }

    /// The name kept for `slot`, when names are kept.
    pub fn name_mut(&mut self, slot: usize) -> Option<&mut FlowName> {
        self.names.get_mut(slot)
    }

    /// Every kept name (for a reload's new tests).
    pub fn names_mut(&mut self) -> impl Iterator<Item = &mut FlowName> {
        self.names.iter_mut()
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
        self.lookup_or_insert_keeping(key, hash, now, false)
    }

    /// [`lookup_or_insert`](Self::lookup_or_insert); with `keep_name`, a flow that comes back
    /// after idling past the timeout, into the slot it left, is the same connection: it keeps
    /// what its payload said (name, protocol), its first frame's time and sender and its
    /// bytes; only its verdicts are made again. (Without, it starts afresh: a new connection
    /// on the same ports.)
    pub fn lookup_or_insert_keeping(
        &mut self,
        key: &FlowKey,
        hash: u64,
        now: Nanos,
        keep_name: bool,
    ) -> (usize, bool) {
        let start = (hash as usize) & self.mask;
        let mut free: Option<usize> = None;
        let mut returning = false;
        let mut oldest = start;
        for i in 0..PROBE {
            let idx = (start + i) & self.mask;
            let e = &self.slots[idx];
            if e.hash == hash && e.key == *key {
                if self.is_live(e, now) {
                    let generation = self.generation;
                    let e = &mut self.slots[idx];
                    e.last_seen = now;
                    if e.generation != generation {
                        e.verdict = [NO_VERDICT; 2];
                        e.class = [NO_VERDICT; 2];
                        e.generation = generation;
                    }
                    self.stats.hits += 1;
                    return (idx, true);
                }
                // Same flow back after expiry: back into its own slot (so that the table
                // never holds one flow twice), where it may keep what it had.
                free = Some(idx);
                returning = true;
                continue;
            }
            if !self.is_live(e, now) {
                if !returning {
                    free.get_or_insert(idx);
                }
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
        let keep = keep_name && returning;
        let old = self.slots[idx];
        self.slots[idx] = if keep {
            // The same connection: its first frame, sender and bytes stay; its verdicts are
            // made again.
            Entry {
                last_seen: now,
                verdict: [NO_VERDICT; 2],
                class: [NO_VERDICT; 2],
                window: 0,
                window_bytes: 0,
                last_window_bytes: 0,
                generation: self.generation,
                ..old
            }
        } else {
            Entry {
                hash,
                key: *key,
                last_seen: now,
                first_seen: now,
                generation: self.generation,
                ..EMPTY
            }
        };
        if let Some(n) = self.names.get_mut(idx).filter(|_| !keep) {
            *n = FlowName::default();
        }
        (idx, false)
    }

    /// The slot holding `key`, if any (changes nothing).
    pub fn find(&self, key: &FlowKey, hash: u64) -> Option<usize> {
        let start = (hash as usize) & self.mask;
        (0..PROBE)
            .map(|i| (start + i) & self.mask)
            .find(|&idx| self.slots[idx].hash == hash && self.slots[idx].key == *key)
    }

    /// The name kept for `slot`, when names are kept.
    pub fn name(&self, slot: usize) -> Option<&FlowName> {
        self.names.get(slot)
    }

    /// Record a frame of `bytes` in `slot` leaving on `egress` in `class`; `from_lo` says it
    /// came from the key's `lo` endpoint (kept only for the flow's first frame).
    pub fn account(
        &mut self,
        slot: usize,
        egress: usize,
        class: u16,
        bytes: u32,
        from_lo: bool,
        now: Nanos,
    ) {
        let e = &mut self.slots[slot];
        if e.bytes == [0; 2] {
            e.lo_first = from_lo;
        }
        e.bytes[egress] += u64::from(bytes);
        e.class[egress] = class;
        let second = (now / 1_000_000_000) as u32;
        if second != e.window {
            e.last_window_bytes = if second == e.window.wrapping_add(1) {
                e.window_bytes
            } else {
                0
            };
            e.window = second;
            e.window_bytes = 0;
        }
        e.window_bytes = e.window_bytes.saturating_add(bytes);
    }

    /// Forget every cached verdict (the rules changed): each flow is classified again on its
    /// next frame, and shows no class until then. Its counters stay. Costs nothing up front.
    pub fn clear_verdicts(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// The flows seen within the idle timeout before `now`, passed to `f` one by one.
    pub fn for_each_live(&self, now: Nanos, f: impl FnMut(FlowInfo)) {
        self.for_each_live_in(0, self.slots.len(), now, f);
    }

    /// [`for_each_live`](Self::for_each_live) over the slots `start..start + len` only
    /// (clipped to the table), for walking a large table a slice at a time.
    pub fn for_each_live_in(&self, start: usize, len: usize, now: Nanos, f: impl FnMut(FlowInfo)) {
        self.each_in(start, len, now, true, f);
    }

    /// Every flow the table still holds, idle ones too (the end of a replay: flows pushed
    /// out by others are not there, see [`FlowTableStats::evicted`]).
    pub fn for_each_held(&self, now: Nanos, f: impl FnMut(FlowInfo)) {
        self.each_in(0, self.slots.len(), now, false, f);
    }

    fn each_in(
        &self,
        start: usize,
        len: usize,
        now: Nanos,
        live_only: bool,
        mut f: impl FnMut(FlowInfo),
    ) {
        let second = (now / 1_000_000_000) as u32;
        let end = start.saturating_add(len).min(self.slots.len());
        let slice = self.slots.get(start..end).unwrap_or(&[]);
        let held = |e: &Entry| e.hash != 0 && (!live_only || self.is_live(e, now));
        for (i, e) in slice.iter().enumerate().filter(|(_, e)| held(e)) {
            let name = self.names.get(start + i);
            let server = name.and_then(|n| Some((n.source?, n.name)));
            let bytes_per_s = if e.window == second {
                e.last_window_bytes
            } else if e.window.wrapping_add(1) == second {
                e.window_bytes
            } else {
                0
            };
            f(FlowInfo {
                key: e.key,
                lo_first: e.lo_first,
                first_seen: e.first_seen,
                last_seen: e.last_seen,
                bytes: e.bytes,
                class: if e.generation == self.generation {
                    e.class.map(|c| (c != NO_VERDICT).then_some(c))
                } else {
                    [None; 2]
                },
                bytes_per_s: u64::from(bytes_per_s),
                server,
                frames: name.map_or([0; 2], |n| n.frames),
                frames_before_name: name.map_or(0, |n| n.frames_before),
                protocol: name.and_then(|n| match n.app {
                    AppSeen::Found(p) => Some(p),
                    _ => None,
                }),
                frames_before_app: name.map_or(0, |n| n.frames_before_app),
                detail: name.map(|n| n.detail).filter(|a| !a.is_empty()),
            });
        }
    }

    /// The class of the flow's last frame out by `egress`, under the current rules.
    pub fn last_class(&self, slot: usize, egress: usize) -> Option<u16> {
        let e = &self.slots[slot];
        let c = e.class[egress];
        (e.generation == self.generation && c != NO_VERDICT).then_some(c)
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
    fn a_flow_counts_its_bytes_each_way_and_its_last_second() {
        let mut t = FlowTable::new(64, 10_000_000_000);
        let k = key(1);
        let s = |n: u64| n * 1_000_000_000;
        let (slot, _) = t.lookup_or_insert(&k, k.hash64(), s(5));
        t.account(slot, 1, 2, 1000, false, s(5));
        t.account(slot, 1, 2, 500, true, s(5) + 1);
        t.account(slot, 0, 3, 40, true, s(6));
        let mut got = Vec::new();
        t.for_each_live(s(6) + 10, |f| got.push(f));
        assert_eq!(got.len(), 1);
        let f = got[0];
        assert_eq!((f.bytes, f.lo_first), ([40, 1500], false));
        assert_eq!(f.class, [Some(3), Some(2)]);
        assert_eq!((f.first_seen, f.last_seen), (s(5), s(5)));
        assert_eq!(f.bytes_per_s, 1500, "the last whole second");
        got.clear();
        t.for_each_live(s(7), |f| got.push(f));
        assert_eq!(got[0].bytes_per_s, 40);
        got.clear();
        t.for_each_live(s(9), |f| got.push(f));
        assert_eq!(got[0].bytes_per_s, 0, "silent for a whole second");
        t.clear_verdicts();
        got.clear();
        t.for_each_live(s(9), |f| got.push(f));
        assert_eq!(got[0].class, [None; 2], "no class until its next frame");
        let (slot, _) = t.lookup_or_insert(&k, k.hash64(), s(9));
        assert_eq!(t.verdict(slot, 1), NO_VERDICT);
        got.clear();
        t.for_each_live(s(20), |f| got.push(f));
        assert!(got.is_empty(), "idle past the timeout");
        assert!(
            std::mem::size_of::<Entry>() <= 128,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn a_kept_name_costs_what_the_docs_say() {
        // flow_table.rs's header and docs/rules.md quote this size.
        assert_eq!(std::mem::size_of::<FlowName>(), 368);
    }

    #[test]
    fn a_flow_back_from_idling_keeps_its_name_when_asked() {
        let mut t = FlowTable::new(64, 1_000);
        t.keep_names(true);
        let k = key(1);
        let (slot, _) = t.lookup_or_insert(&k, k.hash64(), 0);
        t.name_mut(slot).unwrap().looked = NAME_DECIDED;
        let (back, hit) = t.lookup_or_insert_keeping(&k, k.hash64(), 5_000, true);
        assert_eq!((back, hit), (slot, false));
        assert_eq!(t.name(slot).unwrap().looked, NAME_DECIDED, "kept");
        let (_, hit) = t.lookup_or_insert_keeping(&k, k.hash64(), 10_000, false);
        assert!(!hit);
        assert_eq!(
            t.name(slot).unwrap().looked,
            0,
            "a new connection starts afresh"
        );
        // Another flow taking a free slot never inherits a name.
        let other = key(9);
        let (s2, _) = t.lookup_or_insert_keeping(&other, other.hash64(), 20_000, true);
        assert_eq!(t.name(s2).unwrap().looked, 0);
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
