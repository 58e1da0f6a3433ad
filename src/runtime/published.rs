//! What the forwarding threads publish for the control plane (`weir status`, `/metrics`,
//! `weir top`), and the requests they answer (`weir flows`, `weir reload`).
//!
//! Publishing costs a forwarding thread no lock it can wait on and no system call per frame:
//! every [`PUBLISH_EVERY`] (one clock comparison per turn) it copies its counters into
//! preallocated snapshots behind mutexes it only ever `try_lock`s; when a reader holds one, the
//! copy is skipped and made on the next turn. Copying never allocates (the class vectors are
//! sized when the plan is loaded; a histogram copy is a reset and a memory copy of equal
//! shapes). The flow table is walked in slices of [`FLOW_SLICE`] slots per publish, never at
//! once, so a large table does not stall forwarding; a whole pass gives the active flows per
//! class and the busiest flows.
//!
//! Requests reach a forwarder through a bounded channel it looks at once per turn (a few atomic
//! reads when it is empty); each carries its own reply channel.

use super::KernelDropCounters;
use crate::classify::flow::FlowEnds;
use crate::classify::flow_table::{FlowInfo, FlowTableStats};
use crate::classify::Explanation;
use crate::config::Plan;
use crate::pipeline::Pipeline;
use crate::pipeline::{GsoSplit, ReloadCounts};
use crate::port::{ClassId, Side};
use crate::sched::stats::ClassStats;
use crate::time::Nanos;
use crossbeam_channel::Sender;
use std::sync::{Arc, Mutex, MutexGuard};

/// How often a forwarding thread publishes its counters.
pub const PUBLISH_EVERY: Nanos = 100_000_000;

/// Flow table slots walked per publish (a pass over the default 65,536 slots takes 1.6 s).
pub const FLOW_SLICE: usize = 4096;

/// The busiest flows kept from each pass (by bytes in their last second, then by bytes).
pub const TOP_FLOWS: usize = 64;

/// One egress port's counters, as its forwarder last published them.
#[derive(Clone, Debug, Default)]
pub struct PortSnapshot {
    /// Clock time of the copy (the runtime's monotonic clock); 0 before the first.
    pub at: Nanos,
    /// The plan generation the class ids refer to (0 at start, +1 per reload).
    pub generation: u64,
    /// Per class, by class id.
    pub classes: Vec<ClassStats>,
    /// The classes reloads removed, summed (the port's `(removed)` row).
    pub retired: ClassStats,
    /// Flows whose last frame leaving this port went to each class, as of the last whole pass
    /// over the flow table.
    pub active_flows: Vec<u64>,
    /// Per class, the rate and ceil in force (a `schedule` changes them), bit/s.
    pub rates: Vec<(u64, u64)>,
}

/// One forwarding thread's own figures.
#[derive(Clone, Debug, Default)]
pub struct ForwarderSnapshot {
    /// Clock time of the copy: a forwarder that stops publishing is stuck (the watchdog).
    pub at: Nanos,
    /// Frames received per ingress port (lan, wan).
    pub received: [u64; 2],
    pub gso_split: GsoSplit,
    pub flow_table: FlowTableStats,
    pub flow_capacity: u64,
    /// The busiest flows of the last whole pass.
    pub top_flows: Vec<FlowInfo>,
}

/// The shared state: per forwarding thread, a snapshot of each egress port it sends on and
/// one of its own figures; the kernel's drop counters.
#[derive(Debug)]
pub struct Published {
    /// By forwarder, then egress port (lan, wan); [`Published::port`] sums them.
    pub ports: Vec<[Mutex<PortSnapshot>; 2]>,
    pub forwarders: Vec<Mutex<ForwarderSnapshot>>,
    pub kernel_drops: KernelDropCounters,
    pub links: super::LinkStates,
    /// The budgets' counts, shared by the forwarding threads, the control plane and the
    /// store (crate::budget).
    pub ledger: Arc<crate::budget::Ledger>,
}

impl Published {
    /// Room for `forwarders` threads and the classes of `plan`.
    pub fn new(forwarders: usize, plan: &Plan) -> Published {
        let port = |side: Side| {
            let n = plan.ports[side.index()].spec.classes.len();
            Mutex::new(PortSnapshot {
                classes: vec![ClassStats::default(); n],
                active_flows: vec![0; n],
                rates: vec![(0, 0); n],
                ..PortSnapshot::default()
            })
        };
        Published {
            ports: (0..forwarders)
                .map(|_| [port(Side::Lan), port(Side::Wan)])
                .collect(),
            forwarders: (0..forwarders)
                .map(|_| {
                    Mutex::new(ForwarderSnapshot {
                        top_flows: Vec::with_capacity(TOP_FLOWS),
                        ..ForwarderSnapshot::default()
                    })
                })
                .collect(),
            // A slot per receiving socket: each forwarder's own and its express lane's.
            kernel_drops: KernelDropCounters::new(2 * forwarders),
            links: super::LinkStates::default(),
            ledger: Arc::new(crate::budget::Ledger::new(
                &plan.budgets,
                plan.timezone.clone(),
                Vec::new(),
            )),
        }
    }
}

impl Published {
    /// Egress port `side`'s counters summed over the forwarders that send on it (several with
    /// `--workers`), as of their latest plan generation; `at` is the oldest of their copies
    /// (0 before every one of them has published). Allocates (control plane).
    pub fn port(&self, side: Side) -> PortSnapshot {
        let snaps: Vec<PortSnapshot> = self
            .ports
            .iter()
            .map(|p| read(&p[side.index()]).clone())
            .filter(|s| s.at != 0)
            .collect();
        let Some(generation) = snaps.iter().map(|s| s.generation).max() else {
            return read(&self.ports[0][side.index()]).clone();
        };
        let mut sum: Option<PortSnapshot> = None;
        for s in snaps.into_iter().filter(|s| s.generation == generation) {
            match &mut sum {
                None => sum = Some(s),
                Some(t) => {
                    t.at = t.at.min(s.at);
                    for (a, b) in t.classes.iter_mut().zip(&s.classes) {
                        a.absorb(b);
                    }
                    t.retired.absorb(&s.retired);
                    for (a, b) in t.active_flows.iter_mut().zip(&s.active_flows) {
                        *a += b;
                    }
                }
            }
        }
        sum.unwrap_or_default()
    }
}

/// A reader's lock: a poisoned mutex (a panicking thread) still holds consistent counters.
pub fn read<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A flow as `weir flows` shows it, its classes named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub info: FlowInfo,
    /// Class names per egress port (lan, wan), as of the plan the forwarder runs.
    pub class: [Option<String>; 2],
}

/// What a reload did on one forwarding thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadOutcome {
    pub frames: ReloadCounts,
    /// Nanoseconds the forwarding thread spent swapping (between two of its turns).
    pub swap_ns: u64,
}

/// A request to a forwarding thread.
pub enum Request {
    /// Every live flow (up to `limit`, busiest first).
    Flows {
        limit: usize,
        reply: Sender<Vec<FlowEntry>>,
    },
    /// Swap in a new plan between two turns.
    Reload {
        plan: Arc<Plan>,
        generation: u64,
        reply: Sender<ReloadOutcome>,
    },
    /// Explain the next frame of flow `ends` this thread receives within `wait`; `None` when
    /// none came. A newer request replaces a waiting one (which then gets `None`).
    Explain {
        ends: FlowEnds,
        wait: Nanos,
        reply: Sender<Option<Explained>>,
    },
}

/// Why a frame of a running bridge got its class (`weir explain --flow` without a capture).
#[derive(Clone, Debug)]
pub struct Explained {
    /// The frame in brief, and its length.
    pub frame: String,
    pub len: u32,
    pub egress: Side,
    /// The names of the egress port's classes, by class id.
    pub class_names: Vec<String>,
    pub explanation: Explanation,
}

/// Sort flows busiest first: by bytes in the last second, then by bytes in all.
pub fn by_activity(a: &FlowInfo, b: &FlowInfo) -> std::cmp::Ordering {
    (b.bytes_per_s, b.bytes[0] + b.bytes[1]).cmp(&(a.bytes_per_s, a.bytes[0] + a.bytes[1]))
}

/// Flows of two forwarding threads (one per direction) merged: the same key's counters added.
/// Linear in the number of flows (a map by key), not quadratic.
pub fn merge_flows(into: &mut Vec<FlowEntry>, more: Vec<FlowEntry>) {
    let mut at: std::collections::HashMap<crate::classify::flow::FlowKey, usize> = into
        .iter()
        .enumerate()
        .map(|(i, f)| (f.info.key, i))
        .collect();
    for f in more {
        match at.get(&f.info.key) {
            Some(&i) => {
                let g = &mut into[i];
                for side in 0..2 {
                    g.info.bytes[side] += f.info.bytes[side];
                    if g.class[side].is_none() {
                        g.class[side] = f.class[side].clone();
                    }
                }
                g.info.bytes_per_s += f.info.bytes_per_s;
                if f.info.first_seen < g.info.first_seen {
                    g.info.first_seen = f.info.first_seen;
                    g.info.lo_first = f.info.lo_first;
                }
                g.info.last_seen = g.info.last_seen.max(f.info.last_seen);
            }
            None => {
                at.insert(f.info.key, into.len());
                into.push(f);
            }
        }
    }
}

/// Class names of a plan, for naming the ids in flows.
pub fn class_name(plan: &Plan, egress: Side, class: Option<ClassId>) -> Option<String> {
    let c = class?;
    plan.ports[egress.index()]
        .classes
        .get(usize::from(c))
        .map(|c| c.name.clone())
}

/// A forwarding thread's side of publishing: when it is due, where the flow table walk is,
/// and what the walk has gathered so far.
pub(crate) struct Publisher {
    shared: Arc<Published>,
    /// This thread's entry in `shared.forwarders`.
    index: usize,
    due: Nanos,
    /// The next flow table slot of the current pass.
    cursor: usize,
    /// Per egress port, flows per class found so far in this pass, and in the last whole one.
    pass_active: [Vec<u64>; 2],
    last_active: [Vec<u64>; 2],
    pass_top: Vec<FlowInfo>,
    /// The least busy of `pass_top` once it is full: the one a busier flow replaces.
    pass_least: Option<usize>,
    last_top: Vec<FlowInfo>,
}

impl Publisher {
    pub(crate) fn new(shared: Arc<Published>, index: usize, plan: &Plan) -> Publisher {
        let mut p = Publisher {
            shared,
            index,
            due: 0,
            cursor: 0,
            pass_active: [Vec::new(), Vec::new()],
            last_active: [Vec::new(), Vec::new()],
            pass_top: Vec::with_capacity(TOP_FLOWS),
            pass_least: None,
            last_top: Vec::with_capacity(TOP_FLOWS),
        };
        p.resize(plan);
        p
    }

    /// Size the per-class counts for `plan` (allocates: start-up and reload only); a pass
    /// under way starts again.
    pub(crate) fn resize(&mut self, plan: &Plan) {
        for side in Side::BOTH {
            let n = plan.ports[side.index()].spec.classes.len();
            self.pass_active[side.index()] = vec![0; n];
            self.last_active[side.index()] = vec![0; n];
        }
        self.cursor = 0;
        self.pass_top.clear();
        self.pass_least = None;
    }

    /// Make the next [`publish`](Self::publish) happen whatever the time.
    pub(crate) fn publish_now(&mut self) {
        self.due = 0;
    }

    /// The last publish, when the thread ends: retries while a reader holds a lock (briefly),
    /// so that what stays published is the final count.
    pub(crate) fn publish_final(
        &mut self,
        now: Nanos,
        pipeline: &Pipeline<u32>,
        egress: [bool; 2],
        generation: u64,
    ) {
        for _ in 0..10_000 {
            self.publish_now();
            if self.publish(now, pipeline, egress, generation) {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Publish `pipeline`'s counters if due: the ports in `egress` (the ones this thread sends
    /// on), and this thread's own figures. `generation` is the plan's. Returns whether all of
    /// it was published (not when it was not due, nor when a reader held a lock: then it is
    /// due again on the next turn).
    pub(crate) fn publish(
        &mut self,
        now: Nanos,
        pipeline: &Pipeline<u32>,
        egress: [bool; 2],
        generation: u64,
    ) -> bool {
        if now < self.due {
            return false;
        }
        self.due = now.saturating_add(PUBLISH_EVERY);
        self.walk_flows(now, pipeline);
        let shared = Arc::clone(&self.shared);
        let mut complete = true;
        for side in Side::BOTH.into_iter().filter(|s| egress[s.index()]) {
            let Some(slot) = shared.ports.get(self.index) else {
                continue;
            };
            let Ok(mut snap) = slot[side.index()].try_lock() else {
                // A reader holds it: try again on the next turn.
                self.due = now;
                complete = false;
                continue;
            };
            let sched = pipeline.port(side);
            let n = sched.spec().classes.len();
            if snap.classes.len() != n {
                // The class count changed: only after a reload.
                snap.classes.resize_with(n, ClassStats::default);
                snap.active_flows.resize(n, 0);
                snap.rates.resize(n, (0, 0));
            }
            for (to, c) in snap.rates.iter_mut().zip(&sched.spec().classes) {
                *to = (c.rate_bps, c.ceil_bps);
            }
            for (i, st) in snap.classes.iter_mut().enumerate() {
                if let Some(from) = sched.class_stats(i as ClassId) {
                    st.copy_from(from);
                }
            }
            snap.retired.copy_from(sched.retired());
            for (to, from) in snap
                .active_flows
                .iter_mut()
                .zip(&self.last_active[side.index()])
            {
                *to = *from;
            }
            snap.generation = generation;
            snap.at = now;
        }
        let Some(slot) = shared.forwarders.get(self.index) else {
            return complete;
        };
        let Ok(mut f) = slot.try_lock() else {
            self.due = now;
            return false;
        };
        f.received = pipeline.received();
        f.gso_split = pipeline.gso_split();
        f.flow_table = pipeline.classifier_stats().flows;
        f.flow_capacity = pipeline.classifier().flow_capacity() as u64;
        f.top_flows.clear();
        f.top_flows.extend_from_slice(&self.last_top);
        f.at = now;
        complete
    }

    /// Walk the next slice of the flow table; at the end of a pass, its counts become the
    /// published ones.
    fn walk_flows(&mut self, now: Nanos, pipeline: &Pipeline<u32>) {
        let classifier = pipeline.classifier();
        let (active, top, least) = (
            &mut self.pass_active,
            &mut self.pass_top,
            &mut self.pass_least,
        );
        classifier.for_each_flow_in(self.cursor, FLOW_SLICE, now, |f| {
            for side in Side::BOTH {
                if let Some(c) = f.class[side.index()] {
                    if let Some(n) = active[side.index()].get_mut(usize::from(c)) {
                        *n += 1;
                    }
                }
            }
            keep_busiest(top, least, f);
        });
        self.cursor += FLOW_SLICE;
        if self.cursor >= classifier.flow_capacity() {
            self.cursor = 0;
            for side in 0..2 {
                std::mem::swap(&mut self.last_active[side], &mut self.pass_active[side]);
                self.pass_active[side].iter_mut().for_each(|n| *n = 0);
            }
            std::mem::swap(&mut self.last_top, &mut self.pass_top);
            self.pass_top.clear();
            self.pass_least = None;
            // Unstable: a stable sort allocates its merge buffer.
            self.last_top.sort_unstable_by(by_activity);
        }
    }
}

/// Keep `f` among the [`TOP_FLOWS`] busiest of `top` (never beyond its capacity: no
/// allocation). `least` caches the index of the least busy once `top` is full, so a flow that
/// does not make it costs one comparison.
fn keep_busiest(top: &mut Vec<FlowInfo>, least: &mut Option<usize>, f: FlowInfo) {
    if top.len() < TOP_FLOWS {
        top.push(f);
        return;
    }
    let i = *least.get_or_insert_with(|| least_busy(top));
    if by_activity(&f, &top[i]) == std::cmp::Ordering::Less {
        top[i] = f;
        *least = Some(least_busy(top));
    }
}

fn least_busy(top: &[FlowInfo]) -> usize {
    (0..top.len())
        .max_by(|&a, &b| by_activity(&top[a], &top[b]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::flow::FlowKey;

    fn flow(n: u128, up: u64, down: u64, class: [Option<&str>; 2]) -> FlowEntry {
        FlowEntry {
            info: FlowInfo {
                key: FlowKey {
                    lo_addr: n,
                    hi_addr: n + 1,
                    ..FlowKey::default()
                },
                lo_first: true,
                first_seen: n as u64,
                last_seen: 100 + n as u64,
                bytes: [down, up],
                class: [None, None],
                bytes_per_s: up + down,
                server: None,
                frames: [0; 2],
                frames_before_name: 0,
                protocol: None,
                frames_before_app: 0,
                detail: None,
            },
            class: class.map(|c| c.map(str::to_string)),
        }
    }

    #[test]
    fn the_two_directions_of_a_flow_merge_into_one() {
        // Per-direction threads: one saw the upload, the other the download.
        let mut all = vec![
            flow(1, 1000, 0, [None, Some("bulk")]),
            flow(3, 5, 0, [None, None]),
        ];
        merge_flows(
            &mut all,
            vec![
                flow(1, 0, 40, [Some("acks"), None]),
                flow(5, 0, 7, [None, None]),
            ],
        );
        assert_eq!(all.len(), 3);
        let f = &all[0];
        assert_eq!(f.info.bytes, [40, 1000]);
        assert_eq!(f.info.bytes_per_s, 1040);
        assert_eq!(f.class, [Some("acks".into()), Some("bulk".into())]);
        // Ten thousand flows a side, in another order.
        let a: Vec<FlowEntry> = (0..10_000u128)
            .map(|n| flow(n * 2, 1, 0, [None, None]))
            .collect();
        let b: Vec<FlowEntry> = (0..10_000u128)
            .rev()
            .map(|n| flow(n * 2, 0, 1, [None, None]))
            .collect();
        let mut m = a;
        merge_flows(&mut m, b);
        assert_eq!(m.len(), 10_000);
        assert!(m.iter().all(|f| f.info.bytes == [1, 1]));
    }
}
