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

    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Room for `capacity` descriptors in all (a reload that raised the limits; allocates).
    /// Never shrinks: descriptors in use keep their index.
    pub fn grow(&mut self, capacity: u32) {
        let old = self.slots.len() as u32;
        if capacity <= old {
            return;
        }
        let free_head = self.free_head;
        self.slots.extend((old..capacity).map(|i| Slot {
            item: None,
            bytes: 0,
            wire_bytes: 0,
            enqueued_at: 0,
            next: if i + 1 < capacity { i + 1 } else { free_head },
        }));
        self.free_head = old;
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

/// `n` empty buckets, none active.
fn idle_buckets(n: u32) -> Vec<Bucket> {
    let idle = Bucket {
        head: NIL,
        tail: NIL,
        deficit: 0,
        next_active: NIL,
        active: false,
    };
    vec![idle; n as usize]
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
            buckets: idle_buckets(n),
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
        self.link(arena, idx, b);
        self.packets += 1;
        self.bytes += u64::from(bytes);
        Ok(())
    }

    /// Append arena slot `idx` to bucket `b`, activating the bucket if it was idle.
    fn link<T: Copy>(&mut self, arena: &mut Arena<T>, idx: u32, b: usize) {
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

    /// New limits and AQM parameters (a reload). The frames queued stay, even above a lowered
    /// limit (arrivals are refused until the queue is back under it). CoDel and the overload
    /// control keep their state when they stay on (their parameters updated; the overload
    /// control starts afresh when its target changes). With `rehash` (the class's fairness
    /// changed: the hashes of the queued frames no longer mean what new ones will), or a new
    /// number of buckets, the queued frames are served first, as one group, in the order DRR
    /// would have served them.
    #[allow(clippy::too_many_arguments)]
    pub fn reconfigure<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        buckets: u32,
        limit_packets: u32,
        limit_bytes: u64,
        codel: Option<CodelParams>,
        ceil_bps: u64,
        rehash: bool,
    ) {
        self.limit_packets = limit_packets;
        self.limit_bytes = limit_bytes;
        match (self.codel.as_mut(), codel) {
            (Some(c), Some(p)) => {
                let retarget = c.params().target != p.target;
                c.set_params(p);
                if retarget || self.pie.is_none() {
                    self.pie = Some(Pie::new(p.target, 2 * p.min_backlog_bytes, ceil_bps));
                }
            }
            (None, Some(p)) => {
                self.codel = Some(Codel::new(p));
                self.pie = Some(Pie::new(p.target, 2 * p.min_backlog_bytes, ceil_bps));
            }
            (_, None) => {
                self.codel = None;
                self.pie = None;
            }
        }
        let n = buckets.max(1).next_power_of_two();
        if !rehash && u64::from(n - 1) == self.bucket_mask {
            return;
        }
        // Take every frame out in DRR order and queue it again in bucket 0 of the new shape;
        // the arena slots freed are taken again at once (its free list is LIFO), so this never
        // needs more room than the frames already hold.
        let mut order: Vec<Dequeued<T>> = Vec::with_capacity(self.packets as usize);
        while let Some(d) = self.pop_drr(arena) {
            order.push(d);
        }
        self.buckets = idle_buckets(n);
        self.bucket_mask = u64::from(n - 1);
        self.active_head = NIL;
        self.active_tail = NIL;
        for d in order {
            self.push(arena, d, 0);
        }
    }

    /// Put a frame at the tail of bucket `b` with its enqueue time, without limits or AQM
    /// (it was queued already).
    fn push<T: Copy>(&mut self, arena: &mut Arena<T>, d: Dequeued<T>, hash: u64) -> bool {
        let Some(idx) = arena.alloc(d.item, d.bytes, d.wire_bytes, d.enqueued_at) else {
            return false;
        };
        self.link(arena, idx, (hash & self.bucket_mask) as usize);
        self.packets += 1;
        self.bytes += u64::from(d.bytes);
        true
    }

    /// Queue a frame moved here from another class (a reload), keeping its enqueue time:
    /// refused only by the limits (no policing or overload control: it is not a new arrival).
    pub fn requeue<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        d: Dequeued<T>,
        fairness_hash: u64,
    ) -> Result<(), T> {
        if !self.has_room(d.bytes) || !self.push(arena, d, fairness_hash) {
            return Err(d.item);
        }
        Ok(())
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
