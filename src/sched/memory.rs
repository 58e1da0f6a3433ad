//! What a port's scheduler allocates up front, from its spec alone, before any traffic.
//!
//! The scheduler never allocates per frame: [`PortScheduler::new`](super::PortScheduler::new)
//! makes one descriptor slot per frame the classes' packet limits allow, summed over the
//! port's classes, so the limits decide this memory, not the traffic. `weir check` warns from
//! these figures (with what the caller's frame store holds per queued frame added).
//! Counted: the descriptor arena, each class's state and its queue's tables of flow (and host)
//! queues, about 328 KB a class that shares itself (131 KB more with host isolation), whatever
//! its limits.

use super::class_queue::{ClassQueue, Slot};
use super::{Class, ClassSpec, PortScheduler, PortSpec};
use std::mem::size_of;

/// The handle the drivers queue: an index into their frame store, live and in replay.
type Handle = u32;

/// Bytes the arena holds for each unit of a class's packet limit.
pub fn bytes_per_queued_frame() -> u64 {
    size_of::<Slot<Handle>>() as u64
}

/// Bytes the scheduler reserves for class `c` apart from the arena: its state and its queue's
/// tables.
fn class_state_bytes(c: &ClassSpec) -> u64 {
    size_of::<Class>() as u64 + ClassQueue::table_bytes(PortScheduler::<Handle>::sharing(c))
}

/// Bytes the scheduler reserves for class `c`: its share of the arena, its state and its
/// queue's tables.
pub fn class_reserved_bytes(c: &ClassSpec) -> u64 {
    u64::from(c.limit_packets) * bytes_per_queued_frame() + class_state_bytes(c)
}

/// Bytes the scheduler of `spec` reserves when it is made.
pub fn reserved_bytes(spec: &PortSpec) -> u64 {
    // The arena's capacity is a saturating u32 sum, as in `PortScheduler::new`.
    let slots = spec
        .classes
        .iter()
        .fold(0u32, |sum, c| sum.saturating_add(c.limit_packets));
    u64::from(slots) * bytes_per_queued_frame()
        + spec.classes.iter().map(class_state_bytes).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::class_queue::DEFAULT_QUEUES;
    use crate::sched::BASE_QUANTUM;

    fn class(limit_packets: u32) -> ClassSpec {
        ClassSpec {
            name: "c".into(),
            priority: 1,
            rate_bps: 1_000_000,
            ceil_bps: 1_000_000,
            burst_bytes: 3028,
            cburst_bytes: 3028,
            weight: 1,
            quantum_bytes: BASE_QUANTUM,
            limit_packets,
            limit_bytes: 1 << 20,
            codel: None,
            ecn: true,
            fairness_buckets: 1,
            host_isolation: false,
            police: None,
        }
    }

    #[test]
    fn the_estimate_follows_the_packet_limits() {
        let port = |limits: &[u32]| PortSpec {
            name: "wan".into(),
            rate_bps: 1_000_000,
            burst_bytes: 3028,
            classes: limits.iter().map(|&l| class(l)).collect(),
        };
        let small = reserved_bytes(&port(&[100, 100]));
        let large = reserved_bytes(&port(&[100, 1_000_100]));
        assert_eq!(large - small, 1_000_000 * bytes_per_queued_frame());
        assert_eq!(
            large,
            port(&[100, 1_000_100])
                .classes
                .iter()
                .map(class_reserved_bytes)
                .sum::<u64>()
        );
        // The arena really has that many slots.
        let s: PortScheduler<Handle> = PortScheduler::new(port(&[100, 1_000_100]), 0);
        assert_eq!(s.arena.capacity(), 1_000_200);
        assert!(bytes_per_queued_frame() >= 24, "item, sizes, time and link");
    }

    #[test]
    fn a_class_that_shares_itself_pays_for_its_queue_table() {
        let fifo = class(1000);
        let shared = ClassSpec {
            fairness_buckets: DEFAULT_QUEUES,
            ..class(1000)
        };
        let isolated = ClassSpec {
            host_isolation: true,
            ..shared.clone()
        };
        let table = class_reserved_bytes(&shared) - class_reserved_bytes(&fifo);
        // 4096 queues at 80 bytes (class_queue.rs): about 328 KB.
        assert!((250_000..500_000).contains(&table), "{table}");
        assert!(class_reserved_bytes(&isolated) > class_reserved_bytes(&shared));
    }
}
