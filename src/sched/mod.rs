//! Scheduling: the class queues of one egress port and the HTB-like discipline that serves them.
//!
//! The core is pure: no I/O, no threads, no clock. The caller passes `now` to
//! [`PortScheduler::enqueue`] and [`PortScheduler::dequeue`], and asks
//! [`PortScheduler::next_wakeup`] when to call again. The same code runs live, in replay (virtual
//! time) and under a [`clock::ManualClock`] in tests.
//!
//! Discipline (HTB semantics on a flat tree whose root is the link):
//! - each class has a `rate` bucket (guaranteed) and a `ceil` bucket (most it may take); the
//!   port has a link bucket at the link rate, charged for everything sent;
//! - a class is *green* when both its buckets are open, *yellow* when only `ceil` is, *red*
//!   otherwise; nothing is sent while the link bucket is closed;
//! - green classes are served first, by priority (lower first), then by deficit round robin with
//!   the class's quantum (`weight` full frames, or `quantum` bytes) per round; only when no class is green are yellow classes served,
//!   in the same order, borrowing spare link capacity;
//! - a green send charges rate, ceil and link; a borrowing send charges ceil and link only;
//! - buckets may go negative by one frame: a frame is sent when its buckets are open, then paid
//!   for. Over any long run a saturated class therefore sends `rate * time` within one frame.
//!
//! Inside a class: a queue per flow or host with its own AQM, served by DRR++
//! (sched/class_queue.rs).
//! Capacity: every class queue is bounded in packets and bytes; descriptors come from one arena
//! per port, sized at construction to the sum of the class packet limits. Enqueue, dequeue and
//! next_wakeup never allocate.
//! Counters: [`crate::sched::stats::ClassStats`] per class; `received = forwarded + dropped + queued`
//! holds between any two calls.
//! Thread contract: a `PortScheduler` is owned by one thread (`Send`, not shared).

pub mod class_queue;
pub mod cobalt;
pub mod codel;
pub mod memory;
pub mod shared_rate;
pub mod stats;
pub mod token_bucket;

#[cfg(test)]
mod isolation_tests;
#[cfg(test)]
mod tests;

pub use crate::port::ClassId;
pub use crate::time::Nanos;
use class_queue::{Arena, ClassQueue, Dequeued, Popped, Sharing};
use cobalt::AqmParams;
pub use codel::CodelParams;
use shared_rate::{Bucket, RateRegistry};
use stats::{ClassStats, DropReason};
use std::sync::Arc;
use token_bucket::{Conform, TokenBucket};

/// DRR quantum: one full-size Ethernet frame plus default overhead, per unit of weight.
pub const BASE_QUANTUM: u32 = 1514 + 24;

/// A class, resolved: every rate is absolute, every limit is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassSpec {
    pub name: String,
    /// Lower is served first.
    pub priority: u8,
    pub rate_bps: u64,
    pub ceil_bps: u64,
    /// Depth of the rate bucket and of the ceil bucket, in bytes.
    pub burst_bytes: u64,
    pub cburst_bytes: u64,
    /// Share among classes of equal priority and mode, as the user wrote it (for reports).
    pub weight: u32,
    /// Bytes a class may send per deficit-round-robin round among classes of its priority:
    /// the config's `quantum`, else `weight * BASE_QUANTUM`.
    pub quantum_bytes: u32,
    pub limit_packets: u32,
    pub limit_bytes: u64,
    pub codel: Option<CodelParams>,
    /// Mark ECN-capable frames CE where the AQM would drop them.
    pub ecn: bool,
    /// Flow (or host) queues for fairness inside the class; 1 means FIFO.
    pub fairness_buckets: u32,
    /// Fair between hosts first, then between each host's flows.
    pub host_isolation: bool,
    /// Drop above this rate instead of queueing: (rate, burst bytes).
    pub police: Option<(u64, u64)>,
}

/// An egress port, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub rate_bps: u64,
    /// Depth of the link bucket in bytes.
    pub burst_bytes: u64,
    pub classes: Vec<ClassSpec>,
}

/// What the caller knows about a frame it enqueues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    pub class: ClassId,
    /// Frame bytes, for limits and counters.
    pub bytes: u32,
    /// Bytes on the wire, for shaping: frame + overhead, for every segment of a GSO frame.
    pub wire_bytes: u32,
    /// Picks the queue within the class (flow or host hash).
    pub fairness_hash: u64,
    /// Picks the host, in a class with host isolation (else unused).
    pub host_hash: u64,
    /// ECN-capable transport: the AQM may mark it instead of dropping it.
    pub ect: bool,
}

/// Outcome of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued<T> {
    Queued,
    /// Not queued; the item comes back so its buffer can be reused.
    Dropped(T, DropReason),
}

/// A frame that leaves now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Departure<T> {
    pub item: T,
    pub class: ClassId,
    pub bytes: u32,
    pub wire_bytes: u32,
    pub enqueued_at: Nanos,
    /// Sent above the class's rate, on borrowed capacity.
    pub borrowed: bool,
    /// The AQM chose to mark it: set its ECN field to CE before sending.
    pub ce: bool,
}

/// A frame dropped inside the scheduler (by the AQM, to make room, or at shutdown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped<T> {
    pub item: T,
    pub class: ClassId,
    pub bytes: u32,
    pub reason: DropReason,
}

#[derive(Debug)]
struct Class {
    priority: u8,
    quantum: i64,
    deficit: i64,
    rate: Bucket,
    ceil: Bucket,
    police: Option<Bucket>,
    queue: ClassQueue,
    stats: ClassStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Green,
    Yellow,
}

/// Classes of one priority, served round robin.
#[derive(Debug)]
struct Level {
    members: Vec<ClassId>,
    cursor: usize,
}

/// The scheduler of one egress port. `T` is the caller's handle to a frame buffer.
#[derive(Debug)]
pub struct PortScheduler<T> {
    spec: PortSpec,
    link: Bucket,
    /// Where the buckets come from when several workers share this port's rates
    /// ([`share_rates`](Self::share_rates)); `None`: each bucket is this scheduler's own.
    shared: Option<Arc<RateRegistry>>,
    classes: Vec<Class>,
    levels: Vec<Level>,
    arena: Arena<T>,
    queued_frames: u64,
    /// The latest `now` given to enqueue or dequeue: no departure can be earlier.
    latest_now: Nanos,
    /// The counters of classes that reloads removed, summed (so the port's totals still hold).
    retired: ClassStats,
}

/// A frame taken out of a class that a reload removed, for the caller to queue again in its
/// flow's new class ([`PortScheduler::requeue`]) or to drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orphan<T> {
    pub item: T,
    pub bytes: u32,
    pub wire_bytes: u32,
    pub enqueued_at: Nanos,
    pub ect: bool,
}

impl<T: Copy> PortScheduler<T> {
    /// Build the port with all its storage; `now` starts every bucket empty at that time.
    pub fn new(spec: PortSpec, now: Nanos) -> PortScheduler<T> {
        let capacity: u32 = spec
            .classes
            .iter()
            .fold(0u32, |sum, c| sum.saturating_add(c.limit_packets));
        let classes: Vec<Class> = spec
            .classes
            .iter()
            .map(|c| Self::new_class(c, now, None, &spec.name))
            .collect();
        let levels = Self::levels_of(&classes);
        PortScheduler {
            link: Bucket::Own(TokenBucket::new(spec.rate_bps, spec.burst_bytes, now)),
            shared: None,
            spec,
            classes,
            levels,
            arena: Arena::with_capacity(capacity),
            queued_frames: 0,
            latest_now: now,
            retired: ClassStats::default(),
        }
    }

    /// A bucket of this port: its own, or a share of the registry's `port/name` rate.
    fn bucket(
        shared: Option<&Arc<RateRegistry>>,
        port: &str,
        name: &str,
        rate_bps: u64,
        burst_bytes: u64,
        now: Nanos,
    ) -> Bucket {
        match shared {
            None => Bucket::Own(TokenBucket::new(rate_bps, burst_bytes, now)),
            Some(r) => r.bucket(&format!("{port}/{name}"), rate_bps, burst_bytes, now),
        }
    }

    /// A class's rate, ceil and police buckets.
    fn class_buckets(
        c: &ClassSpec,
        now: Nanos,
        shared: Option<&Arc<RateRegistry>>,
        port: &str,
    ) -> (Bucket, Bucket, Option<Bucket>) {
        let bucket = |kind: &str, rate, burst| {
            Self::bucket(
                shared,
                port,
                &format!("{}/{kind}", c.name),
                rate,
                burst,
                now,
            )
        };
        (
            bucket("rate", c.rate_bps, c.burst_bytes),
            bucket("ceil", c.ceil_bps, c.cburst_bytes),
            c.police.map(|(rate, burst)| bucket("police", rate, burst)),
        )
    }

    fn new_class(
        c: &ClassSpec,
        now: Nanos,
        shared: Option<&Arc<RateRegistry>>,
        port: &str,
    ) -> Class {
        let (rate, ceil, police) = Self::class_buckets(c, now, shared, port);
        Class {
            priority: c.priority,
            quantum: i64::from(c.quantum_bytes.max(1)),
            deficit: 0,
            rate,
            ceil,
            police,
            queue: ClassQueue::new(
                Self::sharing(c),
                BASE_QUANTUM,
                c.limit_packets,
                c.limit_bytes,
                Self::aqm(c),
            ),
            stats: ClassStats::default(),
        }
    }

    fn sharing(c: &ClassSpec) -> Sharing {
        Sharing {
            queues: c.fairness_buckets,
            host_isolation: c.host_isolation,
        }
    }

    fn aqm(c: &ClassSpec) -> Option<AqmParams> {
        c.codel.map(|codel| AqmParams { codel, ecn: c.ecn })
    }

    fn levels_of(classes: &[Class]) -> Vec<Level> {
        let mut priorities: Vec<u8> = classes.iter().map(|c| c.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        priorities
            .iter()
            .map(|&p| Level {
                members: (0..classes.len() as ClassId)
                    .filter(|&i| classes[usize::from(i)].priority == p)
                    .collect(),
                cursor: 0,
            })
            .collect()
    }

    /// A new spec for this port (a reload), from `now` on. A class of the new spec whose name
    /// was in the old one keeps its queued frames, its token buckets (their tokens or debt
    /// carried over to the new rates), its AQM state and its counters; `rehash[i]` says new
    /// class `i`'s fairness changed (its queued frames are then served first, as one group). A
    /// new name starts empty. The queued frames of a class whose name is gone are returned, for
    /// the caller to [`requeue`](Self::requeue) in their flow's new class; the rest of that
    /// class's counters join [`retired`](Self::retired). Allocates (reload only).
    pub fn reconfigure(&mut self, spec: PortSpec, rehash: &[bool], now: Nanos) -> Vec<Orphan<T>> {
        self.latest_now = self.latest_now.max(now);
        self.link.reconfigure(spec.rate_bps, spec.burst_bytes, now);
        let mut old: Vec<Option<(String, Class)>> = self
            .spec
            .classes
            .iter()
            .map(|c| c.name.clone())
            .zip(std::mem::take(&mut self.classes))
            .map(Some)
            .collect();
        let capacity: u32 = spec
            .classes
            .iter()
            .fold(0u32, |sum, c| sum.saturating_add(c.limit_packets));
        self.arena.grow(capacity);
        let mut classes = Vec::with_capacity(spec.classes.len());
        for (i, c) in spec.classes.iter().enumerate() {
            let found = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|(name, _)| *name == c.name))
                .and_then(Option::take);
            let class = match found {
                Some((_, mut class)) => {
                    class.priority = c.priority;
                    class.quantum = i64::from(c.quantum_bytes.max(1));
                    class.deficit = 0;
                    class.rate.reconfigure(c.rate_bps, c.burst_bytes, now);
                    class.ceil.reconfigure(c.ceil_bps, c.cburst_bytes, now);
                    class.police = match (class.police.take(), c.police) {
                        (Some(mut b), Some((rate, burst))) => {
                            b.reconfigure(rate, burst, now);
                            Some(b)
                        }
                        (None, Some((rate, burst))) => Some(Self::bucket(
                            self.shared.as_ref(),
                            &spec.name,
                            &format!("{}/police", c.name),
                            rate,
                            burst,
                            now,
                        )),
                        (_, None) => None,
                    };
                    class.queue.reconfigure(
                        &mut self.arena,
                        Self::sharing(c),
                        c.limit_packets,
                        c.limit_bytes,
                        Self::aqm(c),
                        rehash.get(i).copied().unwrap_or(false),
                    );
                    class
                }
                None => Self::new_class(c, now, self.shared.as_ref(), &spec.name),
            };
            classes.push(class);
        }
        let mut orphans = Vec::new();
        for (_, mut class) in old.into_iter().flatten() {
            let stats = &mut class.stats;
            class.queue.drain(&mut self.arena, |d: Dequeued<T>| {
                stats.record_moved_out(d.bytes);
                orphans.push(Orphan {
                    item: d.item,
                    bytes: d.bytes,
                    wire_bytes: d.wire_bytes,
                    enqueued_at: d.enqueued_at,
                    ect: d.ect,
                });
            });
            self.retired.absorb(stats);
        }
        self.queued_frames -= orphans.len() as u64;
        self.levels = Self::levels_of(&classes);
        self.classes = classes;
        self.spec = spec;
        orphans
    }

    /// Queue `orphan` (from [`reconfigure`](Self::reconfigure)) in `class`, with the time it
    /// was first queued, counted there as received. Without room it is dropped as
    /// [`DropReason::Reload`] and comes back for its buffer to be reused.
    pub fn requeue(
        &mut self,
        class: ClassId,
        orphan: Orphan<T>,
        fairness_hash: u64,
        host_hash: u64,
    ) -> Result<(), T> {
        let Some(c) = self.classes.get_mut(usize::from(class)) else {
            return Err(orphan.item);
        };
        c.stats.record_received(orphan.bytes);
        let d = Dequeued {
            item: orphan.item,
            bytes: orphan.bytes,
            wire_bytes: orphan.wire_bytes,
            enqueued_at: orphan.enqueued_at,
            ect: orphan.ect,
        };
        match c
            .queue
            .requeue(&mut self.arena, d, fairness_hash, host_hash)
        {
            Ok(()) => {
                c.stats.record_queued(orphan.bytes);
                self.queued_frames += 1;
                Ok(())
            }
            Err(item) => {
                c.stats.record_dropped(DropReason::Reload, orphan.bytes);
                Err(item)
            }
        }
    }

    /// The summed counters of the classes reloads removed (all zero when none was).
    pub fn retired(&self) -> &ClassStats {
        &self.retired
    }

    pub fn spec(&self) -> &PortSpec {
        &self.spec
    }

    /// Draw every rate of this port (link, and each class's rate, ceil and police) from
    /// `registry`, shared with the other workers' schedulers of the same port, from `now` on;
    /// reloads keep doing so. Tokens this scheduler's own buckets held are dropped (call it
    /// before the first frame). Allocates (start-up).
    pub fn share_rates(&mut self, registry: &Arc<RateRegistry>, now: Nanos) {
        let port = self.spec.name.clone();
        self.link = registry.bucket(
            &format!("{port}/link"),
            self.spec.rate_bps,
            self.spec.burst_bytes,
            now,
        );
        for (class, c) in self.classes.iter_mut().zip(&self.spec.classes) {
            (class.rate, class.ceil, class.police) =
                Self::class_buckets(c, now, Some(registry), &port);
        }
        self.shared = Some(Arc::clone(registry));
    }

    pub fn class_stats(&self, class: ClassId) -> Option<&ClassStats> {
        self.classes.get(usize::from(class)).map(|c| &c.stats)
    }

    /// May frames of the flow with `fairness_hash` be queued in `class` (see
    /// [`ClassQueue::may_hold`])? False for a class that does not exist.
    pub fn may_hold(&self, class: ClassId, fairness_hash: u64) -> bool {
        self.classes
            .get(usize::from(class))
            .is_some_and(|c| c.queue.may_hold(fairness_hash))
    }

    pub fn queued_frames(&self) -> u64 {
        self.queued_frames
    }

    /// A departed frame that the device refused or could not send: counted as dropped with
    /// `reason`, not forwarded.
    pub fn record_tx_failure(
        &mut self,
        class: ClassId,
        reason: DropReason,
        bytes: u32,
        wire_bytes: u32,
    ) {
        if let Some(c) = self.classes.get_mut(usize::from(class)) {
            c.stats.record_tx_failure(reason, bytes, wire_bytes);
        }
    }

    /// Count a frame that reached this port but is dropped before queueing (e.g. malformed).
    pub fn reject(&mut self, class: ClassId, bytes: u32, reason: DropReason) {
        if let Some(c) = self.classes.get_mut(usize::from(class)) {
            c.stats.record_received(bytes);
            c.stats.record_dropped(reason, bytes);
        }
    }

    /// Police, then queue. Frames dropped from the class's fattest queue to make room for
    /// this one are handed to `dropped` (`overflow`). A class id out of range is a caller
    /// bug; the frame is then counted against the last class (conventionally the default) as
    /// malformed rather than lost.
    pub fn enqueue(
        &mut self,
        item: T,
        meta: FrameMeta,
        now: Nanos,
        dropped: &mut impl FnMut(Dropped<T>),
    ) -> Enqueued<T> {
        self.latest_now = self.latest_now.max(now);
        let last = self.classes.len().saturating_sub(1);
        let (idx, bad_class) = match usize::from(meta.class) {
            i if i < self.classes.len() => (i, false),
            _ => (last, true),
        };
        let Some(class) = self.classes.get_mut(idx) else {
            // A port always has at least one class (the config guarantees a default).
            return Enqueued::Dropped(item, DropReason::Malformed);
        };
        class.stats.record_received(meta.bytes);
        let verdict = if bad_class {
            Err(DropReason::Malformed)
        } else if let Some(police) = class.police.as_mut() {
            police.set_weight(class.queue.busy_queues());
            match police.police(u64::from(meta.wire_bytes), now) {
                Conform::Taken => Ok(()),
                Conform::Exceeds => Err(DropReason::Policed),
            }
        } else {
            Ok(())
        };
        let frame = Dequeued {
            item,
            bytes: meta.bytes,
            wire_bytes: meta.wire_bytes,
            enqueued_at: now,
            ect: meta.ect,
        };
        let stats = &mut class.stats;
        let queued_frames = &mut self.queued_frames;
        let verdict = verdict.and_then(|()| {
            class
                .queue
                .enqueue(
                    &mut self.arena,
                    frame,
                    meta.fairness_hash,
                    meta.host_hash,
                    now,
                    &mut |d: Dequeued<T>| {
                        *queued_frames -= 1;
                        stats.record_unqueued(d.bytes);
                        stats.record_dropped(DropReason::Overflow, d.bytes);
                        dropped(Dropped {
                            item: d.item,
                            class: idx as ClassId,
                            bytes: d.bytes,
                            reason: DropReason::Overflow,
                        });
                    },
                )
                .map_err(|(_, reason)| reason)
        });
        class.stats.queue = class.queue.counters();
        match verdict {
            Ok(()) => {
                class.stats.record_queued(meta.bytes);
                self.queued_frames += 1;
                Enqueued::Queued
            }
            Err(reason) => {
                class.stats.record_dropped(reason, meta.bytes);
                Enqueued::Dropped(item, reason)
            }
        }
    }

    /// The frame to send at `now`, if the link and some class allow one. Frames CoDel drops on
    /// the way are handed to `dropped`.
    pub fn dequeue(
        &mut self,
        now: Nanos,
        dropped: &mut impl FnMut(Dropped<T>),
    ) -> Option<Departure<T>> {
        self.latest_now = self.latest_now.max(now);
        if self.queued_frames == 0 {
            return None;
        }
        self.link.refill(now);
        if !self.link.is_open() {
            return None;
        }
        // Each turn either returns or drops a frame: bounded by the queue length.
        loop {
            let (id, mode) = self.select(now)?;
            let class = &mut self.classes[usize::from(id)];
            let Some(popped) = class.queue.pop(&mut self.arena, now) else {
                continue;
            };
            self.queued_frames -= 1;
            match popped {
                Popped::AqmDrop(d) => {
                    class.stats.record_unqueued(d.bytes);
                    class.stats.record_dropped(DropReason::Aqm, d.bytes);
                    if class.queue.is_empty() {
                        class.deficit = 0;
                    }
                    dropped(Dropped {
                        item: d.item,
                        class: id,
                        bytes: d.bytes,
                        reason: DropReason::Aqm,
                    });
                }
                Popped::Deliver(d, ce) => {
                    class.stats.queue = class.queue.counters();
                    let wire = u64::from(d.wire_bytes);
                    self.link.consume(wire);
                    class.ceil.consume(wire);
                    let borrowed = mode == Mode::Yellow;
                    if borrowed {
                        class.stats.borrowed_frames += 1;
                        class.stats.borrowed_bytes += u64::from(d.bytes);
                    } else {
                        class.rate.consume(wire);
                    }
                    class.deficit -= i64::from(d.wire_bytes);
                    if class.queue.is_empty() {
                        class.deficit = 0;
                    }
                    class.stats.record_unqueued(d.bytes);
                    class.stats.record_forwarded(
                        d.bytes,
                        d.wire_bytes,
                        now.saturating_sub(d.enqueued_at),
                    );
                    return Some(Departure {
                        item: d.item,
                        class: id,
                        bytes: d.bytes,
                        wire_bytes: d.wire_bytes,
                        enqueued_at: d.enqueued_at,
                        borrowed,
                        ce,
                    });
                }
            }
        }
    }

    /// When [`dequeue`](Self::dequeue) will next have something to send, or `None` when
    /// nothing is queued. Never earlier than the latest `now` passed to `enqueue` or
    /// `dequeue` (buckets that were idle would otherwise report their last refill time); it
    /// may be earlier than the caller's clock: then call `dequeue` now.
    pub fn next_wakeup(&self) -> Option<Nanos> {
        if self.queued_frames == 0 {
            return None;
        }
        let class_ready = self
            .classes
            .iter()
            .filter(|c| !c.queue.is_empty())
            .map(|c| c.ceil.open_at())
            .min()?;
        Some(class_ready.max(self.link.open_at()).max(self.latest_now))
    }

    /// Drop everything still queued (shutdown), counting each frame with `reason`.
    pub fn drain(&mut self, reason: DropReason, dropped: &mut impl FnMut(Dropped<T>)) {
        for (id, class) in self.classes.iter_mut().enumerate() {
            let stats = &mut class.stats;
            class.queue.drain(&mut self.arena, |d| {
                stats.record_unqueued(d.bytes);
                stats.record_dropped(reason, d.bytes);
                dropped(Dropped {
                    item: d.item,
                    class: id as ClassId,
                    bytes: d.bytes,
                    reason,
                });
            });
            class.deficit = 0;
        }
        self.queued_frames = 0;
    }

    /// The class to serve: green by priority then DRR; else yellow likewise.
    fn select(&mut self, now: Nanos) -> Option<(ClassId, Mode)> {
        // A shared rate splits between workers by their busy flows (sched::shared_rate); the
        // link's weight is the flows of classes within their rate, so that a worker that
        // would borrow does not outweigh one with traffic its classes are owed.
        let mut owed = 0u32;
        for class in self.classes.iter_mut().filter(|c| !c.queue.is_empty()) {
            let busy = class.queue.busy_queues();
            class.rate.set_weight(busy);
            class.ceil.set_weight(busy);
            class.rate.refill(now);
            class.ceil.refill(now);
            if class.rate.is_open() {
                owed = owed.saturating_add(busy);
            }
        }
        self.link.set_weight(owed);
        for mode in [Mode::Green, Mode::Yellow] {
            for level in 0..self.levels.len() {
                if let Some(id) = self.pick_in_level(level, mode) {
                    return Some((id, mode));
                }
            }
        }
        None
    }

    fn pick_in_level(&mut self, level: usize, mode: Mode) -> Option<ClassId> {
        let classes = &mut self.classes;
        let level = &mut self.levels[level];
        let eligible = |c: &Class| {
            !c.queue.is_empty()
                && c.ceil.is_open()
                && match mode {
                    Mode::Green => c.rate.is_open(),
                    Mode::Yellow => !c.rate.is_open(),
                }
        };
        if !level
            .members
            .iter()
            .any(|&id| eligible(&classes[usize::from(id)]))
        {
            return None;
        }
        let n = level.members.len();
        if n == 1 {
            return Some(level.members[0]);
        }
        // DRR: stay on a class while it has deficit, else top it up and move on. Terminates:
        // some member is eligible, a deficit is never below minus one frame (a class is only
        // served while its deficit is positive), and each visit raises it by a quantum.
        loop {
            let id = level.members[level.cursor];
            let class = &mut classes[usize::from(id)];
            if eligible(class) {
                if class.deficit > 0 {
                    return Some(id);
                }
                class.deficit += class.quantum;
            }
            level.cursor = (level.cursor + 1) % n;
        }
    }
}
