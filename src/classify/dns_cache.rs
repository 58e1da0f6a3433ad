//! Names learnt from DNS answers: a bounded cache of address -> the name a client asked for.
//!
//! When a DNS response crosses the bridge, each A and AAAA address in its answers is stored
//! with the question's name (a CNAME chain's addresses too: the client asked for the
//! question). A later flow to such an address gets that name (source `dns-cache`) from its
//! first frame, before, or without, any name in its own payload (a flow's own SNI or Host,
//! when it comes, takes precedence).
//!
//! Capacity: [`DNS_CACHE_ENTRIES`] entries, allocated once (when the classifier keeps names);
//! open addressing over a window of [`PROBE`] slots, as the flow table. An entry lives for
//! its TTL, at least [`MIN_AGE`] (clients keep answers longer than some TTLs say) and at most
//! [`MAX_AGE`]. When the window is full of live entries, the one closest to expiry is replaced
//! and counted as evicted. Lookups and inserts never allocate.

use super::flow::host_hash;
use super::payload::Name;
use crate::time::Nanos;

/// Addresses remembered at once (288 bytes each: 1.2 MB).
pub const DNS_CACHE_ENTRIES: usize = 4096;
const PROBE: usize = 8;
const SECOND: Nanos = 1_000_000_000;
/// Shortest and longest an answer is kept.
pub const MIN_AGE: Nanos = 300 * SECOND;
pub const MAX_AGE: Nanos = 3600 * SECOND;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    addr: u128,
    v6: bool,
    name: Name,
    /// 0: empty.
    expires: Nanos,
}

/// Counters of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsCacheStats {
    /// Addresses stored (or refreshed) from answers.
    pub stored: u64,
    /// Live entries replaced because their window was full.
    pub evicted: u64,
    /// New flows that found their address here, and that did not.
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug)]
pub struct DnsCache {
    slots: Vec<Entry>,
    stats: DnsCacheStats,
}

impl DnsCache {
    /// Bytes a cache of `entries` takes.
    pub fn bytes_for(entries: usize) -> u64 {
        (entries.max(PROBE).next_power_of_two() * std::mem::size_of::<Entry>()) as u64
    }

    pub fn new(entries: usize) -> DnsCache {
        DnsCache {
            slots: vec![Entry::default(); entries.max(PROBE).next_power_of_two()],
            stats: DnsCacheStats::default(),
        }
    }

    pub fn stats(&self) -> DnsCacheStats {
        self.stats
    }

    fn window(&self, addr: u128, v6: bool) -> impl Iterator<Item = usize> {
        let mask = self.slots.len() - 1;
        let start = host_hash(addr ^ u128::from(v6) << 127) as usize;
        (0..PROBE).map(move |i| (start + i) & mask)
    }

    /// Remember that `addr` is `name` for `ttl` seconds (bounded as the module header says).
    pub fn store(&mut self, addr: u128, v6: bool, name: &Name, ttl: u32, now: Nanos) {
        let age = (Nanos::from(ttl) * SECOND).clamp(MIN_AGE, MAX_AGE);
        let expires = now.saturating_add(age).max(1);
        let mut pick = None;
        let mut soonest: Option<(usize, Nanos)> = None;
        for i in self.window(addr, v6) {
            let e = &self.slots[i];
            if e.expires != 0 && e.addr == addr && e.v6 == v6 {
                pick = Some(i);
                break;
            }
            if e.expires <= now {
                pick.get_or_insert(i);
            } else if soonest.is_none_or(|(_, t)| e.expires < t) {
                soonest = Some((i, e.expires));
            }
        }
        let i = match (pick, soonest) {
            (Some(i), _) => i,
            (None, Some((i, _))) => {
                self.stats.evicted += 1;
                i
            }
            (None, None) => return,
        };
        self.slots[i] = Entry {
            addr,
            v6,
            name: *name,
            expires,
        };
        self.stats.stored += 1;
    }

    /// The name `addr` was last resolved as, if that is still remembered.
    pub fn lookup(&mut self, addr: u128, v6: bool, now: Nanos) -> Option<Name> {
        if self.stats.stored == 0 {
            self.stats.misses += 1;
            return None;
        }
        let found = self.window(addr, v6).find_map(|i| {
            let e = &self.slots[i];
            (e.expires > now && e.addr == addr && e.v6 == v6).then_some(e.name)
        });
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_host(s.as_bytes()).unwrap()
    }

    #[test]
    fn an_entry_costs_what_the_docs_say() {
        // DNS_CACHE_ENTRIES's comment and docs/rules.md quote this size.
        assert_eq!(std::mem::size_of::<Entry>(), 288);
    }

    #[test]
    fn answers_are_found_until_they_age_out() {
        let mut c = DnsCache::new(64);
        c.store(0xc612_0001, false, &name("a.example"), 30, 0);
        assert_eq!(c.lookup(0xc612_0001, false, 1), Some(name("a.example")));
        // The same bits as IPv6 are another address.
        assert_eq!(c.lookup(0xc612_0001, true, 1), None);
        // Kept at least MIN_AGE although the TTL said 30 s; gone after.
        assert!(c.lookup(0xc612_0001, false, MIN_AGE - 1).is_some());
        assert_eq!(c.lookup(0xc612_0001, false, MIN_AGE), None);
        // A refresh replaces the name in place.
        c.store(0xc612_0001, false, &name("b.example"), 7200, 10);
        assert_eq!(c.lookup(0xc612_0001, false, 20), Some(name("b.example")));
        assert!(c.lookup(0xc612_0001, false, MAX_AGE + 9).is_some());
        assert_eq!(c.lookup(0xc612_0001, false, MAX_AGE + 10), None);
        let s = c.stats();
        assert_eq!((s.stored, s.evicted, s.hits, s.misses), (2, 0, 4, 3));
    }

    #[test]
    fn a_flood_of_answers_stays_within_capacity_and_counts_evictions() {
        let mut c = DnsCache::new(64);
        for a in 0..10_000u128 {
            c.store(a, true, &name("flood.example"), 600, a as u64);
        }
        assert_eq!(c.slots.len(), 64);
        assert!(c.stats().evicted >= 10_000 - 64, "{:?}", c.stats());
        // The latest answer is there.
        assert!(c.lookup(9_999, true, 10_000).is_some());
    }
}
