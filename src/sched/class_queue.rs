//! One class's queue: a queue per flow (or per host), each with its own AQM, served by DRR++
//! (RFC 8290), optionally first fair between hosts and then between each host's flows.
//!
//! Flow queues: frames go to the queue their fairness hash picks, in a set-associative table
//! (8 ways per set, as CAKE does): a hash finds the way that holds its tag, else takes an idle
//! way of its set, else shares a busy one, which is counted as a collision. Tags outlive
//! idleness, so a flow that comes back finds its queue and its AQM state.
//! Service (DRR++): a queue that becomes busy joins the *new* list with one quantum; the new
//! list is served before the *old* one, so a sparse flow, whose frames find their queue empty,
//! is sent ahead of the backlogged ones for its first quantum. A queue that used its quantum
//! moves to the tail of the old list; one that empties on the new list moves to the old list
//! once more before it leaves (else a flow could stay "new" by sending one frame at a time).
//! A queue that its AQM is still holding back (BLUE, or CoDel dropped within an interval)
//! joins the old list even when it was empty: a flood that the AQM keeps emptying, spread
//! over many flows, would otherwise come back as hundreds of "new" flows ahead of a sparse one.
//! Hosts (`host_isolation`): the same DRR++ one level up, between hosts, each with its own
//! new and old lists of flow queues: a host with 16 flows and a host with 1 get half each.
//! AQM (sched/cobalt.rs): CoDel per queue on each frame's sojourn, with the class's backlog as
//! its floor (as fq_codel: a queue of one frame in a long class still waited), marking ECN
//! capable frames CE instead of dropping them; BLUE per queue for unresponsive flows.
//! Capacity: at most `limit_packets` frames and `limit_bytes` bytes. An arrival that does not
//! fit takes room from the head of the fattest queue (by bytes; found through per-group bounds,
//! so it may be one at least half as fat): those frames are dropped as `overflow`, and BLUE
//! learns that queue is unresponsive. The arriving frame is refused
//! (`queue_full`) only when it could not fit in the empty class.
//! A flood spread over many flows: each flow's queue is short, but every frame waits behind
//! the others, so each queue's CoDel sees the class's delay and drops, and the byte and packet
//! limits drop from whichever queue is longest. A sparse flow beside it is protected when the
//! flood's frames are older than its own (DRR++), and fully when the flood comes from another
//! host and the class isolates hosts (`host` or `triple` fairness).
//! Storage: frame descriptors live in an [`Arena`] owned by the port and allocated once at
//! start-up for every class's packet limit; queues and lists are intrusive linked lists through
//! arrays sized when the class is made. Enqueue and dequeue never allocate.

use super::cobalt::{AqmParams, Cobalt, Verdict};
use super::Nanos;
use crate::sched::stats::DropReason;

const NIL: u32 = u32::MAX;
/// Ways per set of the flow and host tables.
const WAYS: usize = 8;
/// Queues per group of the overflow's search for the fattest.
const GROUP: usize = 64;
/// Flow queues of a class that shares itself. A sparse flow keeps its own queue only while
/// the busy ones leave ways free in its set: a thousand flows at once fill a table of 1024
/// (CAKE's and fq_codel's size) so that a returning sparse flow shares a flood's queue and its
/// drops (measured: 44% of a sparse ping lost, none with 4096). 4096 cost 80 bytes each
/// (328 KB per class; 131 KB more for host slots with `triple`), allocated once.
pub const DEFAULT_QUEUES: u32 = 4096;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot<T> {
    item: Option<T>,
    bytes: u32,
    wire_bytes: u32,
    enqueued_at: Nanos,
    next: u32,
    /// The frame's transport is ECN capable (ECT(0), ECT(1) or already CE).
    ect: bool,
}

/// Descriptor storage shared by the classes of one port; fixed capacity.
#[derive(Debug)]
pub struct Arena<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
}

impl<T: Copy> Arena<T> {
    pub fn with_capacity(capacity: u32) -> Arena<T> {
        let mut arena = Arena {
            slots: Vec::new(),
            free_head: NIL,
        };
        arena.grow(capacity);
        arena
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
            ect: false,
        }));
        self.free_head = old;
    }

    fn alloc(&mut self, d: Dequeued<T>) -> Option<u32> {
        let idx = self.free_head;
        let slot = self.slots.get_mut(idx as usize)?;
        self.free_head = slot.next;
        *slot = Slot {
            item: Some(d.item),
            bytes: d.bytes,
            wire_bytes: d.wire_bytes,
            enqueued_at: d.enqueued_at,
            next: NIL,
            ect: d.ect,
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

/// Which DRR++ list a queue (or host) is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    Idle,
    New,
    Old,
}

/// A member of DRR++ lists: its place and its deficit.
#[derive(Clone, Copy, Debug)]
struct Link {
    next: u32,
    deficit: i32,
    member: Member,
}

const IDLE: Link = Link {
    next: NIL,
    member: Member::Idle,
    deficit: 0,
};

/// A new list and an old list, threaded through the `Link`s of a table.
#[derive(Clone, Copy, Debug)]
struct Lists {
    heads: [u32; 2],
    tails: [u32; 2],
}

const EMPTY_LISTS: Lists = Lists {
    heads: [NIL; 2],
    tails: [NIL; 2],
};

impl Lists {
    fn at(m: Member) -> usize {
        usize::from(m == Member::Old)
    }

    /// The member to serve: the new list's head, else the old list's.
    #[inline]
    fn head(&self) -> Option<(u32, Member)> {
        match self.heads {
            [NIL, NIL] => None,
            [NIL, old] => Some((old, Member::Old)),
            [new, _] => Some((new, Member::New)),
        }
    }

    /// Append `i` (not on any list) to list `m`.
    #[inline]
    fn push<L: LinkTable + ?Sized>(&mut self, links: &mut L, i: u32, m: Member) {
        let l = Self::at(m);
        let link = links.link(i);
        link.member = m;
        link.next = NIL;
        match self.tails[l] {
            NIL => self.heads[l] = i,
            t => links.link(t).next = i,
        }
        self.tails[l] = i;
    }

    /// Take the head of list `m` off it; it becomes idle.
    #[inline]
    fn pop_head<L: LinkTable + ?Sized>(&mut self, links: &mut L, m: Member) -> u32 {
        let l = Self::at(m);
        let i = self.heads[l];
        let link = links.link(i);
        self.heads[l] = link.next;
        link.next = NIL;
        link.member = Member::Idle;
        if self.heads[l] == NIL {
            self.tails[l] = NIL;
        }
        i
    }

    /// Move the head of list `m` to the old list's tail with `quantum` more deficit.
    #[inline]
    fn rotate<L: LinkTable + ?Sized>(&mut self, links: &mut L, m: Member, quantum: i32) {
        let i = self.pop_head(links, m);
        links.link(i).deficit += quantum;
        self.push(links, i, Member::Old);
    }
}

trait LinkTable {
    fn link(&mut self, i: u32) -> &mut Link;
}

/// What DRR++ touches on every frame (28 bytes, so that with 100,000 flows a frame misses the
/// cache once here, not once per array); the AQM state is kept apart, in `aqm_state`.
#[derive(Clone, Copy, Debug)]
struct FlowQueue {
    head: u32,
    tail: u32,
    link: Link,
    /// The host whose lists hold this queue while it is busy.
    host: u32,
    /// Bytes queued.
    backlog: u32,
}

impl LinkTable for [FlowQueue] {
    fn link(&mut self, i: u32) -> &mut Link {
        &mut self[i as usize].link
    }
}

#[derive(Clone, Copy, Debug)]
struct Host {
    link: Link,
    flows: Lists,
}

impl LinkTable for [Host] {
    fn link(&mut self, i: u32) -> &mut Link {
        &mut self[i as usize].link
    }
}

/// Wire bytes as a deficit step (a frame's are far below `i32::MAX`).
fn wire(bytes: u32) -> i32 {
    i32::try_from(bytes).unwrap_or(i32::MAX)
}

/// A set-associative table of tags: which way a hash owns. The set comes from a hash's low
/// bits, the tag from both its halves folded into 32 bits (two flows of one set share a tag
/// once in 2^32).
#[derive(Debug)]
struct Tags {
    tags: Vec<u32>,
    /// Per set, a bit per way whose queue holds no frame: a set with none is found full in
    /// one byte, the usual case when flows outnumber queues.
    empty: Vec<u8>,
    set_mask: usize,
    /// Ways per set, a power of two, and its log2 (no division per frame).
    ways: usize,
    ways_log2: u32,
}

enum Found {
    /// The way holds this tag.
    Hit(u32),
    /// An idle way of the set, now given this tag.
    Claimed(u32),
    /// Every way of the set is busy with another tag: this one shares.
    Collision(u32),
}

impl Tags {
    fn new(n: u32) -> Tags {
        let n = n.max(1).next_power_of_two() as usize;
        let ways = n.min(WAYS);
        let all = u8::try_from((1u32 << ways) - 1).unwrap_or(u8::MAX);
        Tags {
            tags: vec![0; n],
            empty: vec![all; n / ways],
            set_mask: n / ways - 1,
            ways,
            ways_log2: ways.trailing_zeros(),
        }
    }

    /// Way `i`'s queue has become empty (`true`) or received its first frame.
    #[inline]
    fn set_empty(&mut self, i: u32, empty: bool) {
        let i = i as usize;
        let (set, bit) = (i >> self.ways_log2, 1u8 << (i & (self.ways - 1)));
        if empty {
            self.empty[set] |= bit;
        } else {
            self.empty[set] &= !bit;
        }
    }

    fn len(&self) -> usize {
        self.tags.len()
    }

    /// Where `hash`'s frames would be, without binding anything: its own way, or, when no way
    /// of its set has its tag, whether every way of the set is busy (then its frames may have
    /// gone to a shared one).
    fn peek(&self, hash: u64) -> Result<u32, bool> {
        if self.tags.len() == 1 {
            return Ok(0);
        }
        let (set, tag) = (hash as usize & self.set_mask, (hash ^ hash >> 32) as u32);
        let base = set << self.ways_log2;
        match self.tags[base..base + self.ways]
            .iter()
            .position(|&t| t == tag)
        {
            Some(k) => Ok((base + k) as u32),
            None => Err(self.empty[set] == 0),
        }
    }

    /// The way for `hash`: its own, else an idle way of its set, else one whose queue is
    /// empty (`Claimed`: the caller rebinds it), else a busy one, shared. With `reuse_empty`
    /// false only idle ways are taken (the emptiness bits are then not kept).
    #[inline]
    fn find(&mut self, hash: u64, idle: impl Fn(u32) -> bool, reuse_empty: bool) -> Found {
        if self.tags.len() == 1 {
            return Found::Hit(0);
        }
        // The set from the low bits; the tag folds in the high ones.
        let (set, tag) = (hash as usize & self.set_mask, (hash ^ hash >> 32) as u32);
        let base = set << self.ways_log2;
        if let Some(k) = self.tags[base..base + self.ways]
            .iter()
            .position(|&t| t == tag)
        {
            return Found::Hit((base + k) as u32);
        }
        let mut empty = if reuse_empty {
            u32::from(self.empty[set])
        } else {
            (1u32 << self.ways) - 1
        };
        // Idle ways first (off every list), then any empty one.
        let first_empty = empty.trailing_zeros();
        while empty != 0 {
            let k = empty.trailing_zeros() as usize;
            if idle((base + k) as u32) {
                self.tags[base + k] = tag;
                return Found::Claimed((base + k) as u32);
            }
            empty &= empty - 1;
        }
        if reuse_empty && first_empty < 32 {
            let k = base + first_empty as usize;
            self.tags[k] = tag;
            return Found::Claimed(k as u32);
        }
        Found::Collision((base + ((hash >> 32) as usize & (self.ways - 1))) as u32)
    }
}

/// A frame leaving a class queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dequeued<T> {
    pub item: T,
    pub bytes: u32,
    pub wire_bytes: u32,
    pub enqueued_at: Nanos,
    pub ect: bool,
}

/// What happened to a frame taken from the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Popped<T> {
    /// Send it; `ce`: mark it Congestion Experienced first.
    Deliver(Dequeued<T>, bool),
    /// The AQM dropped it; the caller counts it and asks again.
    AqmDrop(Dequeued<T>),
}

/// How a class shares itself: how many flow queues, and whether hosts come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sharing {
    /// Flow (or host) queues, rounded up to a power of two; 1 is a FIFO.
    pub queues: u32,
    /// Fair between hosts first, then between each host's flows (CAKE's triple isolation).
    pub host_isolation: bool,
}

/// Counters the queue keeps for its class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Arrivals whose flow found every way of its set busy with other flows.
    pub flow_collisions: u64,
    /// Likewise for hosts, under host isolation.
    pub host_collisions: u64,
    /// Frames delivered with CE set instead of dropped.
    pub ecn_marked: u64,
}

#[derive(Debug)]
pub struct ClassQueue {
    flows: Vec<FlowQueue>,
    aqm_state: Vec<Cobalt>,
    /// Per group of `GROUP` queues, at least the most bytes any of them holds (raised on
    /// enqueue, made exact when an overflow looks there): the fattest queue is found by
    /// looking at a few groups, not at every queue.
    group_max: Vec<u32>,
    flow_tags: Tags,
    hosts: Vec<Host>,
    host_tags: Tags,
    hosts_lists: Lists,
    quantum: i32,
    packets: u32,
    bytes: u64,
    limit_packets: u32,
    limit_bytes: u64,
    aqm: Option<AqmParams>,
    rng: u64,
    counters: QueueCounters,
    /// Flow queues holding a frame (a worker's weight on a shared rate).
    busy: u32,
}

fn flow_table(n: usize) -> Vec<FlowQueue> {
    let idle = FlowQueue {
        head: NIL,
        tail: NIL,
        link: IDLE,
        host: 0,
        backlog: 0,
    };
    vec![idle; n]
}

fn host_table(n: usize) -> Vec<Host> {
    let idle = Host {
        link: IDLE,
        flows: EMPTY_LISTS,
    };
    vec![idle; n]
}

impl ClassQueue {
    pub fn new(
        sharing: Sharing,
        quantum: u32,
        limit_packets: u32,
        limit_bytes: u64,
        aqm: Option<AqmParams>,
    ) -> ClassQueue {
        let flow_tags = Tags::new(sharing.queues);
        let host_tags = Tags::new(if sharing.host_isolation {
            sharing.queues
        } else {
            1
        });
        ClassQueue {
            flows: flow_table(flow_tags.len()),
            aqm_state: vec![Cobalt::default(); flow_tags.len()],
            group_max: vec![0; flow_tags.len().div_ceil(GROUP)],
            hosts: host_table(host_tags.len()),
            flow_tags,
            host_tags,
            hosts_lists: EMPTY_LISTS,
            quantum: i32::try_from(quantum.max(1)).unwrap_or(i32::MAX),
            packets: 0,
            bytes: 0,
            limit_packets,
            limit_bytes,
            aqm,
            rng: 0x853c_49e6_748f_ea9b,
            counters: QueueCounters::default(),
            busy: 0,
        }
    }

    /// Bytes [`ClassQueue::new`] allocates for `sharing`: its tables, which do not depend on the
    /// limits (the frames' descriptors are in the port's [`Arena`]). For `weir check`'s estimate
    /// of what a config reserves (sched/memory.rs).
    pub fn table_bytes(sharing: Sharing) -> u64 {
        use std::mem::size_of;
        // Rounded as `Tags::new` rounds.
        let flows = sharing.queues.max(1).next_power_of_two() as usize;
        let hosts = if sharing.host_isolation { flows } else { 1 };
        // The queue, its AQM state and its tag; a bound per group of queues.
        let per_flow = size_of::<FlowQueue>() + size_of::<Cobalt>() + size_of::<u32>();
        let groups = flows.div_ceil(GROUP) * size_of::<u32>();
        let per_host = size_of::<Host>() + size_of::<u32>();
        // A byte of emptiness bits per set, in both tables.
        let sets = |n: usize| n / n.min(WAYS);
        (flows * per_flow + groups + hosts * per_host + sets(flows) + sets(hosts)) as u64
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

    pub fn counters(&self) -> QueueCounters {
        self.counters
    }

    /// Flow queues holding at least one frame.
    #[inline]
    pub fn busy_queues(&self) -> u32 {
        self.busy
    }

    /// Would a frame of `bytes` fit under both limits?
    /// May frames of the flow with `flow_hash` be queued here? Exact while the flow has a
    /// queue of its own; when every queue of its set is busy (it may share one) the answer is
    /// yes.
    pub fn may_hold(&self, flow_hash: u64) -> bool {
        if self.packets == 0 {
            return false;
        }
        match self.flow_tags.peek(flow_hash) {
            Ok(f) => self.flows[f as usize].head != NIL,
            Err(set_busy) => set_busy,
        }
    }

    pub fn has_room(&self, bytes: u32) -> bool {
        self.packets < self.limit_packets && self.bytes + u64::from(bytes) <= self.limit_bytes
    }

    /// Queue a frame in the queue its `flow_hash` picks (under the host `host_hash` picks, with
    /// host isolation). Without room, frames are first dropped from the fattest queue's head
    /// and handed to `overflow`. Returns the item with the reason when it cannot be queued:
    /// larger than the class's byte limit, or (which the port's sizing rules out) no
    /// descriptor left.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn enqueue<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        d: Dequeued<T>,
        flow_hash: u64,
        host_hash: u64,
        now: Nanos,
        overflow: &mut impl FnMut(Dequeued<T>),
    ) -> Result<(), (T, DropReason)> {
        if u64::from(d.bytes) > self.limit_bytes || self.limit_packets == 0 {
            return Err((d.item, DropReason::QueueFull));
        }
        while !self.has_room(d.bytes) {
            let Some(dropped) = self.drop_from_fattest(arena, now) else {
                break;
            };
            overflow(dropped);
        }
        if !self.has_room(d.bytes) {
            return Err((d.item, DropReason::QueueFull));
        }
        let f = self.flow_for(flow_hash, host_hash);
        let Some(idx) = arena.alloc(d) else {
            return Err((d.item, DropReason::QueueFull));
        };
        self.link(arena, idx, f, d.bytes, now);
        Ok(())
    }

    /// The flow queue for a hash, bound to its host's lists if it is idle.
    #[inline]
    fn flow_for(&mut self, flow_hash: u64, host_hash: u64) -> u32 {
        let flows = &self.flows;
        let f = match self.flow_tags.find(
            flow_hash,
            |i| flows[i as usize].link.member == Member::Idle,
            true,
        ) {
            Found::Hit(f) => f,
            Found::Claimed(f) => {
                // (Without AQM its state is never read: not worth a cache miss.)
                if self.aqm.is_some() {
                    self.aqm_state[f as usize].forget_flow();
                }
                f
            }
            Found::Collision(f) => {
                self.counters.flow_collisions += 1;
                self.share_within_host(f, host_hash)
            }
        };
        if self.flows[f as usize].link.member == Member::Idle {
            self.flows[f as usize].host = self.host_for(host_hash);
        }
        f
    }

    /// A flow that must share busy queue `f`: under host isolation, share one of its own
    /// host's queues in that set if there is one, so that a host's flows never ride on
    /// another host's share.
    fn share_within_host(&mut self, f: u32, host_hash: u64) -> u32 {
        if self.hosts.len() == 1 {
            return f;
        }
        let h = self.host_for(host_hash);
        let ways = self.flow_tags.ways as u32;
        let base = f & !(ways - 1);
        (base..base + ways)
            .find(|&i| self.flows[i as usize].host == h)
            .unwrap_or(f)
    }

    fn host_for(&mut self, host_hash: u64) -> u32 {
        let hosts = &self.hosts;
        // A host is idle once DRR++ has seen it with no busy queue; until then it may still
        // hold empty queues, and is not given to another host.
        match self.host_tags.find(
            host_hash,
            |i| hosts[i as usize].link.member == Member::Idle,
            false,
        ) {
            Found::Hit(h) | Found::Claimed(h) => h,
            Found::Collision(h) => {
                self.counters.host_collisions += 1;
                h
            }
        }
    }

    /// Append arena slot `idx` to flow queue `f`, making the queue (and its host) busy.
    #[inline]
    fn link<T: Copy>(&mut self, arena: &mut Arena<T>, idx: u32, f: u32, bytes: u32, now: Nanos) {
        let flow = &mut self.flows[f as usize];
        match flow.tail {
            NIL => {
                flow.head = idx;
                self.flow_tags.set_empty(f, false);
                self.busy += 1;
            }
            t => arena.slots[t as usize].next = idx,
        }
        flow.tail = idx;
        let b = flow.backlog.saturating_add(bytes);
        flow.backlog = b;
        let g = &mut self.group_max[f as usize / GROUP];
        *g = (*g).max(b);
        self.packets += 1;
        self.bytes += u64::from(bytes);
        if flow.link.member != Member::Idle {
            return;
        }
        flow.link.deficit = self.quantum;
        let held = self
            .aqm
            .is_some_and(|p| self.aqm_state[f as usize].is_holding(&p, now));
        let h = flow.host;
        self.hosts[h as usize].flows.push(
            self.flows.as_mut_slice(),
            f,
            if held { Member::Old } else { Member::New },
        );
        if self.hosts[h as usize].link.member == Member::Idle {
            self.hosts[h as usize].link.deficit = self.quantum;
            self.hosts_lists
                .push(self.hosts.as_mut_slice(), h, Member::New);
        }
    }

    /// Drop the head of the queue holding the most bytes (fq_codel's overflow drop).
    fn drop_from_fattest<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        now: Nanos,
    ) -> Option<Dequeued<T>> {
        // The group with the highest bound; its real maximum corrects the bound, and is taken
        // when it is at least half that bound, so at least half as fat as the fattest queue
        // (every queue is under the highest bound). Ends: each miss halves one bound or more.
        let f = loop {
            let (g, &bound) = self.group_max.iter().enumerate().max_by_key(|&(_, b)| *b)?;
            if bound == 0 {
                // Frames of no bytes (only a caller's test makes them) still count against
                // the packet limit: then any queue holding one.
                break self.flows.iter().position(|q| q.head != NIL)?;
            }
            let group = &self.flows[g * GROUP..((g + 1) * GROUP).min(self.flows.len())];
            let (k, most) = group
                .iter()
                .map(|q| q.backlog)
                .enumerate()
                .max_by_key(|&(_, b)| b)?;
            self.group_max[g] = most;
            if most >= bound / 2 {
                break g * GROUP + k;
            }
        };
        let d = self.unlink_head(arena, f as u32)?;
        if let Some(p) = self.aqm {
            self.aqm_state[f].on_overflow(&p, now);
        }
        Some(d)
    }

    /// Take the head frame of flow queue `f` (its lists are left as they are: DRR++ finds it
    /// empty in its turn).
    #[inline]
    fn unlink_head<T: Copy>(&mut self, arena: &mut Arena<T>, f: u32) -> Option<Dequeued<T>> {
        let flow = &mut self.flows[f as usize];
        if flow.head == NIL {
            return None;
        }
        let slot = arena.release(flow.head);
        flow.head = slot.next;
        if flow.head == NIL {
            flow.tail = NIL;
            self.flow_tags.set_empty(f, true);
            self.busy = self.busy.saturating_sub(1);
        }
        flow.backlog = flow.backlog.saturating_sub(slot.bytes);
        self.packets -= 1;
        self.bytes -= u64::from(slot.bytes);
        Some(Dequeued {
            item: slot.item?,
            bytes: slot.bytes,
            wire_bytes: slot.wire_bytes,
            enqueued_at: slot.enqueued_at,
            ect: slot.ect,
        })
    }

    /// Take the next frame by DRR++ and run its queue's AQM on it.
    #[inline]
    pub fn pop<T: Copy>(&mut self, arena: &mut Arena<T>, now: Nanos) -> Option<Popped<T>> {
        let (f, d) = self.pop_drr(arena, now)?;
        let Some(p) = self.aqm else {
            return Some(Popped::Deliver(d, false));
        };
        let sojourn = now.saturating_sub(d.enqueued_at);
        let rand = self.next_random();
        let verdict =
            self.aqm_state[f as usize].on_dequeue(&p, now, sojourn, self.bytes, d.ect, rand);
        Some(match verdict {
            Verdict::Deliver => Popped::Deliver(d, false),
            Verdict::Mark => {
                self.counters.ecn_marked += 1;
                Popped::Deliver(d, true)
            }
            Verdict::Drop => {
                // A dropped frame was not sent: give back what DRR charged for it.
                self.refund(f, d.wire_bytes);
                Popped::AqmDrop(d)
            }
        })
    }

    fn refund(&mut self, f: u32, wire_bytes: u32) {
        let h = self.flows[f as usize].host;
        self.charge(f, h, -wire(wire_bytes));
    }

    /// Take `w` wire bytes from the deficits of queue `f` and, under host isolation (the only
    /// case that has a host round), of its host `h`; a negative `w` gives them back.
    #[inline]
    fn charge(&mut self, f: u32, h: u32, w: i32) {
        let deficit = &mut self.flows[f as usize].link.deficit;
        *deficit = deficit.saturating_sub(w);
        if self.hosts.len() > 1 {
            let deficit = &mut self.hosts[h as usize].link.deficit;
            *deficit = deficit.saturating_sub(w);
        }
    }

    /// xorshift64*: BLUE's coin; seeded the same for every class, so replay is repeatable.
    fn next_random(&mut self) -> u32 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// DRR++ over hosts, then over the chosen host's flow queues. Returns the frame with the
    /// queue it came from, its wire bytes charged to both deficits.
    #[inline]
    fn pop_drr<T: Copy>(&mut self, arena: &mut Arena<T>, now: Nanos) -> Option<(u32, Dequeued<T>)> {
        if self.packets == 0 {
            self.forget_lists(now);
            return None;
        }
        // Terminates: each turn returns a frame, takes a member off a list (an idle one joins
        // again only with a frame), or raises a non-positive deficit by `quantum`.
        loop {
            let (h, hm) = self.hosts_lists.head()?;
            // Without host isolation the one host is always due: skip its round.
            let isolated = self.hosts.len() > 1;
            let hosts = self.hosts.as_mut_slice();
            if isolated && hosts[h as usize].link.deficit <= 0 {
                self.hosts_lists.rotate(hosts, hm, self.quantum);
                continue;
            }
            let Some((f, fm)) = hosts[h as usize].flows.head() else {
                // The host has no busy queue left.
                if hm == Member::New {
                    self.hosts_lists.rotate(hosts, hm, 0);
                } else {
                    self.hosts_lists.pop_head(hosts, hm);
                }
                continue;
            };
            let flows = self.flows.as_mut_slice();
            let lists = &mut hosts[h as usize].flows;
            if flows[f as usize].link.deficit <= 0 {
                lists.rotate(flows, fm, self.quantum);
                continue;
            }
            if flows[f as usize].head == NIL {
                if fm == Member::New {
                    lists.rotate(flows, fm, 0);
                } else {
                    lists.pop_head(flows, fm);
                    if let Some(p) = self.aqm {
                        self.aqm_state[f as usize].on_empty(&p, now);
                    }
                }
                continue;
            }
            let d = self.unlink_head(arena, f)?;
            self.charge(f, h, wire(d.wire_bytes));
            return Some((f, d));
        }
    }

    /// The class has emptied: every queue and host still on a list leaves it (DRR++ would
    /// take each off in its turn; doing it at once frees their ways for new flows). Each joined
    /// with a frame, so this costs no more than the frames did.
    fn forget_lists(&mut self, now: Nanos) {
        while let Some((h, hm)) = self.hosts_lists.head() {
            let host = &mut self.hosts[h as usize];
            while let Some((f, fm)) = host.flows.head() {
                host.flows.pop_head(self.flows.as_mut_slice(), fm);
                if let Some(p) = self.aqm {
                    self.aqm_state[f as usize].on_empty(&p, now);
                }
            }
            self.hosts_lists.pop_head(self.hosts.as_mut_slice(), hm);
        }
    }

    /// New limits and AQM parameters (a reload). The frames queued stay, even above a lowered
    /// limit (arrivals then take room from the fattest queue). The queues keep their AQM
    /// state. When the sharing changes (`rehash`: the hashes of the queued frames no longer
    /// mean what new ones will, or another number of queues), the queued frames are served
    /// first, as one queue, in the order DRR++ would have served them.
    pub fn reconfigure<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        sharing: Sharing,
        limit_packets: u32,
        limit_bytes: u64,
        aqm: Option<AqmParams>,
        rehash: bool,
    ) {
        self.limit_packets = limit_packets;
        self.limit_bytes = limit_bytes;
        self.aqm = aqm;
        let hosts = if sharing.host_isolation {
            sharing.queues
        } else {
            1
        };
        let same_shape = self.flow_tags.len() == sharing.queues.max(1).next_power_of_two() as usize
            && self.host_tags.len() == hosts.max(1).next_power_of_two() as usize;
        if !rehash && same_shape {
            return;
        }
        // Take every frame out in DRR++ order and queue it again in one queue of the new
        // shape; the arena slots freed are taken again at once (its free list is LIFO), so
        // this never needs more room than the frames already hold.
        let mut order: Vec<Dequeued<T>> = Vec::with_capacity(self.packets as usize);
        while let Some((_, d)) = self.pop_drr(arena, 0) {
            order.push(d);
        }
        let counters = self.counters;
        *self = ClassQueue::new(
            sharing,
            self.quantum.unsigned_abs(),
            limit_packets,
            limit_bytes,
            aqm,
        );
        self.counters = counters;
        for d in order {
            self.push(arena, d, 0, 0);
        }
    }

    /// Put a frame at the tail of its queue with its enqueue time, without limits or AQM
    /// (it was queued already).
    fn push<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        d: Dequeued<T>,
        flow: u64,
        host: u64,
    ) -> bool {
        let f = self.flow_for(flow, host);
        let Some(idx) = arena.alloc(d) else {
            return false;
        };
        self.link(arena, idx, f, d.bytes, d.enqueued_at);
        true
    }

    /// Queue a frame moved here from another class (a reload), keeping its enqueue time:
    /// refused only by the limits (no policing or overflow drop: it is not a new arrival).
    pub fn requeue<T: Copy>(
        &mut self,
        arena: &mut Arena<T>,
        d: Dequeued<T>,
        flow_hash: u64,
        host_hash: u64,
    ) -> Result<(), T> {
        if !self.has_room(d.bytes) || !self.push(arena, d, flow_hash, host_hash) {
            return Err(d.item);
        }
        Ok(())
    }

    /// Remove every queued frame (shutdown), calling `f` on each.
    pub fn drain<T: Copy>(&mut self, arena: &mut Arena<T>, mut f: impl FnMut(Dequeued<T>)) {
        while let Some((_, d)) = self.pop_drr(arena, 0) {
            f(d);
        }
    }
}

#[cfg(test)]
mod tests;
