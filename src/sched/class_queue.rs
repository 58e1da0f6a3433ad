//! One class's queue: frames hashed into flow buckets, served by deficit round robin, with
//! CoDel on the class as a whole and, beside it, the overload control of pie.rs.
//!
//! Capacity: at most `limit_packets` frames and `limit_bytes` frame bytes; an arriving frame
//! that would exceed either is refused (tail drop, `queue_full`).
//! AQM: CoDel drops at the head (`aqm`); the overload control refuses arriving frames (`aqm`
//! too) with its probability, whatever their flow. Exempting flows with nothing queued was
//! tried: with a flood spread over many flows, most of its frames arrive to empty buckets, and
//! the delay was not controlled at all (a sparse flow's protection is a higher priority class).
//! Storage: frame descriptors live in an [`Arena`] owned by the port and allocated once at
//! start-up, large enough for every class's packet limit, so enqueue and dequeue never allocate.
//! Buckets form intrusive singly linked lists through the arena; the active buckets form a
//! second intrusive list. Both are O(1) per operation.
//! Fairness: buckets are chosen by the caller's hash (of the flow, of the host, or a constant);
//! DRR gives each active bucket `quantum` bytes per round, so N saturated flows get equal
//! shares of the class whatever their frame sizes.

use super::codel::{Codel, CodelParams, CodelVerdict};
use super::pie::Pie;
use super::Nanos;
use crate::sched::stats::DropReason;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot<T> {
    item: Option<T>,
    bytes: u32,
    wire_bytes: u32,
    enqueued_at: Nanos,
    next: u32,
}

/// Descriptor storage shared by the classes of one port; fixed capacity.
#[derive(Debug)]
pub struct Arena<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
}

impl<T: Copy> Arena<T> {
    pub fn with_capacity(capacity: u32) -> Arena<T> {
        let slots = (0..capacity)
            .map(|i| Slot {
                item: None,
                bytes: 0,
                wire_bytes: 0,
                enqueued_at: 0,
                next: if i + 1 < capacity { i + 1 } else { NIL },
            })
            .collect();
        Arena {
            slots,
            free_head: if capacity > 0 { 0 } else { NIL },
        }
    }

    fn alloc(&mut self, item: T, bytes: u32, wire_bytes: u32, now: Nanos) -> Option<u32> {
        let idx = self.free_head;
        let slot = self.slots.get_mut(idx as usize)?;
        self.free_head = slot.next;
        *slot = Slot {
            item: Some(item),
            bytes,
            wire_bytes,
            enqueued_at: now,
            next: NIL,
        };
        Some(idx)
    }

    fn release(&mut self, idx: u32) -> Slot<T> {
        let free_head = self.free_head;
        let slot = &mut self.slots[idx as usize];
        let taken = *slot;
        slot.item = None;
        slot.next = free_head;
        self.free_head = idx;
        taken
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    head: u32,
    tail: u32,
    deficit: i64,
    next_active: u32,
    active: bool,
}

/// A frame leaving a class queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dequeued<T> {
    pub item: T,
    pub bytes: u32,
    pub wire_bytes: u32,
    pub enqueued_at: Nanos,
}

/// What happened to a frame taken from the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Popped<T> {
    Deliver(Dequeued<T>),
    /// CoDel dropped it; the caller counts it and asks again.
    AqmDrop(Dequeued<T>),
}

#[derive(Debug)]
pub struct ClassQueue {
    buckets: Vec<Bucket>,
    bucket_mask: u64,
    active_head: u32,
    active_tail: u32,
    quantum: i64,
    packets: u32,
    bytes: u64,
    limit_packets: u32,
    limit_bytes: u64,
    codel: Option<Codel>,
    pie: Option<Pie>,
}

impl ClassQueue {
    /// `buckets` is rounded up to a power of two (1 means plain FIFO).
    pub fn new(
        buckets: u32,
        quantum: u32,
        limit_packets: u32,
        limit_bytes: u64,
        codel: Option<CodelParams>,
        ceil_bps: u64,
    ) -> ClassQueue {
        let n = buckets.max(1).next_power_of_two();
        ClassQueue {
            buckets: vec![
                Bucket {
                    head: NIL,
                    tail: NIL,
                    deficit: 0,
                    next_active: NIL,
                    active: false,
                };
                n as usize
            ],
            bucket_mask: u64::from(n - 1),
            active_head: NIL,
            active_tail: NIL,
            quantum: i64::from(quantum.max(1)),
            packets: 0,
            bytes: 0,
            limit_packets,
            limit_bytes,
            codel: codel.map(Codel::new),
            pie: codel.map(|c| Pie::new(c.target, 2 * c.min_backlog_bytes, ceil_bps)),
        }
    }

    pub fn packets(&self) -> u32 {
        self.packets
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Would a frame of `bytes` fit under both limits?
    pub fn has_room(&self, bytes: u32) -> bool {
        self.packets < self.limit_packets && self.bytes + u64::from(bytes) <= self.limit_bytes
    }

    /// Queue a frame in the bucket chosen by `fairness_hash`. Returns the item back with the
    /// reason when the class is full (or, which the port's sizing rules out, the arena is), or
    /// when the overload control refuses it.
    pub fn enqueue<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        item: T,
        bytes: u32,
        wire_bytes: u32,
        fairness_hash: u64,
        now: Nanos,
    ) -> Result<(), (T, DropReason)> {
        let b = (fairness_hash & self.bucket_mask) as usize;
        if let Some(pie) = self.pie.as_mut() {
            if pie.should_drop(now, self.bytes) {
                return Err((item, DropReason::Aqm));
            }
        }
        if !self.has_room(bytes) {
            return Err((item, DropReason::QueueFull));
        }
        let Some(idx) = arena.alloc(item, bytes, wire_bytes, now) else {
            return Err((item, DropReason::QueueFull));
        };
        let bucket = &mut self.buckets[b];
        if bucket.tail == NIL {
            bucket.head = idx;
        } else {
            arena.slots[bucket.tail as usize].next = idx;
        }
        bucket.tail = idx;
        if !bucket.active {
            bucket.active = true;
            bucket.deficit = self.quantum;
            bucket.next_active = NIL;
            if self.active_tail == NIL {
                self.active_head = b as u32;
            } else {
                self.buckets[self.active_tail as usize].next_active = b as u32;
            }
            self.active_tail = b as u32;
        }
        self.packets += 1;
        self.bytes += u64::from(bytes);
        Ok(())
    }

    /// Take the next frame by DRR and run CoDel on it.
    pub fn pop<T: Copy>(&mut self, arena: &mut Arena<T>, now: Nanos) -> Option<Popped<T>> {
        let d = self.pop_drr(arena)?;
        let Some(codel) = self.codel.as_mut() else {
            return Some(Popped::Deliver(d));
        };
        let sojourn = now.saturating_sub(d.enqueued_at);
        if let Some(pie) = self.pie.as_mut() {
            pie.on_departure(now, d.bytes, self.bytes);
        }
        Some(match codel.on_dequeue(now, sojourn, self.bytes) {
            CodelVerdict::Deliver => Popped::Deliver(d),
            CodelVerdict::Drop => Popped::AqmDrop(d),
        })
    }

    /// Remove every queued frame (shutdown), calling `f` on each.
    pub fn drain<T: Copy>(&mut self, arena: &mut Arena<T>, mut f: impl FnMut(Dequeued<T>)) {
        while let Some(d) = self.pop_drr(arena) {
            f(d);
        }
    }

    fn pop_drr<T: Copy>(&mut self, arena: &mut Arena<T>) -> Option<Dequeued<T>> {
        // Terminates: each turn either returns or raises a non-positive deficit by `quantum`.
        loop {
            let b = self.active_head;
            if b == NIL {
                return None;
            }
            let bucket = &mut self.buckets[b as usize];
            if bucket.deficit <= 0 {
                bucket.deficit += self.quantum;
                self.rotate_active_head();
                continue;
            }
            let idx = bucket.head;
            let slot = arena.release(idx);
            bucket.head = slot.next;
            bucket.deficit -= i64::from(slot.wire_bytes);
            if bucket.head == NIL {
                bucket.tail = NIL;
                bucket.active = false;
                bucket.deficit = 0;
                self.active_head = bucket.next_active;
                if self.active_head == NIL {
                    self.active_tail = NIL;
                }
            }
            self.packets -= 1;
            self.bytes -= u64::from(slot.bytes);
            let item = slot.item?;
            return Some(Dequeued {
                item,
                bytes: slot.bytes,
                wire_bytes: slot.wire_bytes,
                enqueued_at: slot.enqueued_at,
            });
        }
    }

    fn rotate_active_head(&mut self) {
        let b = self.active_head;
        let next = self.buckets[b as usize].next_active;
        if next == NIL {
            return; // sole active bucket: it stays at the head
        }
        self.active_head = next;
        self.buckets[b as usize].next_active = NIL;
        self.buckets[self.active_tail as usize].next_active = b;
        self.active_tail = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_within_a_bucket_and_limits_hold() {
        let mut arena = Arena::with_capacity(8);
        let mut q = ClassQueue::new(1, 1514, 3, 10_000, None, 0);
        for i in 0..3u32 {
            q.enqueue(&mut arena, i, 100, 124, 7, 0).unwrap();
        }
        assert_eq!(
            q.enqueue(&mut arena, 99, 100, 124, 7, 0),
            Err((99, DropReason::QueueFull))
        );
        let got: Vec<u32> = std::iter::from_fn(|| match q.pop(&mut arena, 0) {
            Some(Popped::Deliver(d)) => Some(d.item),
            _ => None,
        })
        .collect();
        assert_eq!(got, vec![0, 1, 2]);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn byte_limit_refuses_what_would_overflow() {
        let mut arena = Arena::with_capacity(8);
        let mut q = ClassQueue::new(4, 1514, 100, 1000, None, 0);
        q.enqueue(&mut arena, 1u8, 600, 624, 0, 0).unwrap();
        assert_eq!(
            q.enqueue(&mut arena, 2u8, 600, 624, 1, 0),
            Err((2, DropReason::QueueFull))
        );
        q.enqueue(&mut arena, 3u8, 400, 424, 1, 0).unwrap();
    }

    #[test]
    fn drr_shares_bytes_not_frames() {
        // Flow A sends 1500-byte frames, flow B 100-byte frames; both backlogged.
        let mut arena = Arena::with_capacity(4000);
        let mut q = ClassQueue::new(16, 1514, 4000, u64::MAX, None, 0);
        for _ in 0..1000 {
            q.enqueue(&mut arena, 'a', 1500, 1500, 1, 0).unwrap();
            q.enqueue(&mut arena, 'b', 100, 100, 2, 0).unwrap();
        }
        let (mut a, mut b) = (0u64, 0u64);
        for _ in 0..600 {
            match q.pop(&mut arena, 0) {
                Some(Popped::Deliver(d)) if d.item == 'a' => a += u64::from(d.bytes),
                Some(Popped::Deliver(d)) => b += u64::from(d.bytes),
                other => panic!("{other:?}"),
            }
        }
        let ratio = a as f64 / b as f64;
        assert!((0.8..1.25).contains(&ratio), "a {a} b {b}");
    }
}
