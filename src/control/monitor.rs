//! The control plane's view of a running bridge: what the forwarding threads published, sampled
//! every [`SAMPLE_EVERY`] into a bounded history (one minute), and turned into `weir status`,
//! the metrics and `weir top`.
//!
//! Runs on the control thread, never on a forwarding thread; it may allocate. Its reads of the
//! published snapshots hold each lock only for a copy.
//! Memory: per class, [`HISTORY`] samples of a few counters and two histograms, and
//! [`SECONDS_KEPT`] one-second summaries (`weir report --live`); classes that a reload removes
//! lose their history.

use super::protocol::{
    ClassSecond, ClassSeconds, ClassStatus, ConfigStatus, FlowStatus, FlowTableStatus, PortStatus,
    SojournStatus, Status, TotalsStatus,
};
use crate::config::Plan;
use crate::pipeline::report::REMOVED;
use crate::pipeline::GsoSplit;
use crate::port::Side;
use crate::runtime::published::{self, by_activity, class_name, FlowEntry, Published};
use crate::sched::stats::{ClassStats, DropReason};
use crate::time::{Clock, Nanos, SystemClock};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// How often the published counters are sampled.
pub const SAMPLE_EVERY: Nanos = 100_000_000;

/// Samples kept per class: a minute and a second of history at [`SAMPLE_EVERY`].
pub const HISTORY: usize = 610;

const SECOND: Nanos = 1_000_000_000;

/// One-second summaries kept per class: five minutes.
pub const SECONDS_KEPT: usize = 300;

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Nanos,
    wire_bytes: u64,
    dropped: [u64; DropReason::COUNT],
}

struct ClassHistory {
    samples: VecDeque<Sample>,
    /// Once a second: the counters then, and the delay of the frames that left in the second.
    seconds: VecDeque<ClassSecond>,
    /// The sojourn histogram as it was about a second ago, and when.
    mark: Option<(Nanos, Histogram<u64>)>,
    /// The histogram a second before `mark`, kept until `mark` is a second old.
    next_mark: Option<(Nanos, Histogram<u64>)>,
}

impl ClassHistory {
    fn new() -> ClassHistory {
        ClassHistory {
            samples: VecDeque::with_capacity(HISTORY),
            seconds: VecDeque::with_capacity(SECONDS_KEPT),
            mark: None,
            next_mark: None,
        }
    }

    fn push(&mut self, at: Nanos, st: &ClassStats) {
        if self.samples.len() == HISTORY {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at,
            wire_bytes: st.forwarded_wire_bytes,
            dropped: st.dropped_frames,
        });
        // Marks every second: `mark` is the newest at least a second old.
        match &self.next_mark {
            Some((t, _)) if at.saturating_sub(*t) < SECOND => {}
            _ => {
                // The frames that left since the last mark, a second ago.
                let left = self.next_mark.as_ref().and_then(|(_, before)| {
                    let mut d = st.sojourn_ns.clone();
                    d.subtract(before)
                        .ok()
                        .filter(|()| !d.is_empty())
                        .map(|()| d)
                });
                if self.seconds.len() == SECONDS_KEPT {
                    self.seconds.pop_front();
                }
                self.seconds.push_back(ClassSecond {
                    at_s: at as f64 / 1e9,
                    received_bytes: st.received_bytes,
                    forwarded_bytes: st.forwarded_bytes,
                    forwarded_frames: st.forwarded_frames,
                    dropped: st.dropped_frames.to_vec(),
                    p50_us: left.as_ref().map(|d| d.value_at_quantile(0.5) as f64 / 1e3),
                    p99_us: left
                        .as_ref()
                        .map(|d| d.value_at_quantile(0.99) as f64 / 1e3),
                });
                self.mark = self.next_mark.take();
                self.next_mark = Some((at, st.sojourn_ns.clone()));
            }
        }
    }

    /// The newest sample at least `ago` older than the latest, else the oldest.
    fn sample_before(&self, ago: Nanos) -> Option<&Sample> {
        let latest = self.samples.back()?;
        self.samples
            .iter()
            .rev()
            .find(|s| latest.at.saturating_sub(s.at) >= ago)
            .or(self.samples.front())
    }

    /// Wire bits per second between `from` and the latest sample.
    fn rate(&self, from: Option<&Sample>) -> u64 {
        let (Some(a), Some(b)) = (from, self.samples.back()) else {
            return 0;
        };
        let dt = b.at.saturating_sub(a.at);
        if dt == 0 {
            return 0;
        }
        let bits = u128::from(b.wire_bytes.saturating_sub(a.wire_bytes)) * 8;
        u64::try_from(bits * u128::from(SECOND) / u128::from(dt)).unwrap_or(u64::MAX)
    }

    /// Rates per second over the last minute, oldest first.
    fn per_second(&self) -> Vec<u64> {
        let Some(latest) = self.samples.back() else {
            return Vec::new();
        };
        let mut points: Vec<&Sample> = Vec::new();
        let mut want = latest.at;
        for s in self.samples.iter().rev() {
            if s.at <= want {
                points.push(s);
                want = s.at.saturating_sub(SECOND);
            }
        }
        points.reverse();
        points
            .windows(2)
            .map(|w| {
                let dt = w[1].at.saturating_sub(w[0].at).max(1);
                let bits = u128::from(w[1].wire_bytes.saturating_sub(w[0].wire_bytes)) * 8;
                u64::try_from(bits * u128::from(SECOND) / u128::from(dt)).unwrap_or(u64::MAX)
            })
            .collect()
    }
}

/// What the control plane knows of the bridge it serves.
pub struct Monitor {
    shared: Arc<Published>,
    clock: Arc<SystemClock>,
    started: std::time::Instant,
    threads: String,
    interfaces: [String; 2],
    plan: Arc<Plan>,
    /// The plan before the last reload and its generation: a thread's snapshot may still be
    /// of it for a moment (per-direction threads swap one after the other).
    previous: Option<(u64, Arc<Plan>)>,
    config: ConfigStatus,
    /// Per (egress side, class name).
    history: HashMap<(usize, String), ClassHistory>,
    next_sample: Nanos,
}

impl Monitor {
    /// `interfaces` are the ports' (lan, wan); `config` describes the file `plan` came from.
    pub fn new(
        shared: Arc<Published>,
        clock: Arc<SystemClock>,
        threads: String,
        interfaces: [String; 2],
        plan: Arc<Plan>,
        config: ConfigStatus,
    ) -> Monitor {
        Monitor {
            shared,
            clock,
            started: std::time::Instant::now(),
            threads,
            interfaces,
            plan,
            previous: None,
            config,
            history: HashMap::new(),
            next_sample: 0,
        }
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    pub fn config(&self) -> &ConfigStatus {
        &self.config
    }

    pub fn published(&self) -> &Arc<Published> {
        &self.shared
    }

    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// Each class's one-second summaries (at most the last [`SECONDS_KEPT`]), port `wan`
    /// first, in the plan's class order.
    pub fn seconds(&self) -> Vec<ClassSeconds> {
        let mut out = Vec::new();
        for side in [Side::Wan, Side::Lan] {
            for c in &self.plan.ports[side.index()].classes {
                let seconds = self
                    .history
                    .get(&(side.index(), c.name.clone()))
                    .map(|h| h.seconds.iter().cloned().collect())
                    .unwrap_or_default();
                out.push(ClassSeconds {
                    port: side.name().to_string(),
                    name: c.name.clone(),
                    seconds,
                });
            }
        }
        out
    }

    /// A new plan is running (a reload); classes that are gone lose their history.
    pub fn reloaded(&mut self, plan: Arc<Plan>, config: ConfigStatus) {
        self.history
            .retain(|(side, name), _| plan.ports[*side].classes.iter().any(|c| &c.name == name));
        self.plan = plan;
        self.config = config;
    }

    /// A reload was refused.
    pub fn refused(&mut self) {
        self.config.reloads_refused += 1;
    }

    /// When the next sample is due.
    pub fn next_sample(&self) -> Nanos {
        self.next_sample
    }

    /// The plan of `generation`, if it is the current one or the one before.
    fn plan_of(&self, generation: u64) -> Option<&Arc<Plan>> {
        if generation == self.config.generation {
            return Some(&self.plan);
        }
        self.previous
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, p)| p)
    }

    /// Take a sample if one is due.
    pub fn sample(&mut self) {
        let now = self.clock.now();
        if now < self.next_sample {
            return;
        }
        self.next_sample = now + SAMPLE_EVERY;
        for side in Side::BOTH {
            let snap = self.shared.port(side);
            if snap.at == 0 || snap.generation != self.config.generation {
                continue;
            }
            for (plan_class, st) in self.plan.ports[side.index()]
                .classes
                .iter()
                .zip(&snap.classes)
            {
                self.history
                    .entry((side.index(), plan_class.name.clone()))
                    .or_insert_with(ClassHistory::new)
                    .push(snap.at, st);
            }
        }
    }

    /// `weir status`, from the latest snapshots. `history`: each class's rate per second
    /// over the last minute too.
    pub fn status(&self, history: bool) -> Status {
        let now = self.clock.now();
        let mut oldest = now;
        let mut ports = Vec::new();
        let forwarders: Vec<published::ForwarderSnapshot> = self
            .shared
            .forwarders
            .iter()
            .map(|f| published::read(f).clone())
            .collect();
        for side in [Side::Wan, Side::Lan] {
            let snap = self.shared.port(side);
            oldest = oldest.min(snap.at);
            let plan = self.plan_of(snap.generation).unwrap_or(&self.plan);
            let known = self.plan_of(snap.generation).is_some();
            let port_plan = &plan.ports[side.index()];
            let mut classes = Vec::new();
            let mut totals = TotalsStatus::default();
            for (i, st) in snap.classes.iter().enumerate() {
                let (name, priority, rate, ceil) = match port_plan.classes.get(i) {
                    Some(c) if known => {
                        // The rates in force (a schedule changes them), else the plan's.
                        let spec = &port_plan.spec.classes[i];
                        let (rate, ceil) = snap
                            .rates
                            .get(i)
                            .copied()
                            .filter(|&(r, _)| r > 0)
                            .unwrap_or((spec.rate_bps, spec.ceil_bps));
                        (c.name.clone(), c.user_priority, rate, ceil)
                    }
                    _ => (format!("#{i}"), None, 0, 0),
                };
                let h = self.history.get(&(side.index(), name.clone()));
                let active = snap.active_flows.get(i).copied().unwrap_or(0);
                classes.push(class_status(
                    name, priority, rate, ceil, st, h, active, history,
                ));
                add(&mut totals, st);
            }
            if snap.retired.received_frames > 0 {
                classes.push(class_status(
                    REMOVED.into(),
                    None,
                    0,
                    0,
                    &snap.retired,
                    None,
                    0,
                    false,
                ));
                add(&mut totals, &snap.retired);
            }
            let link = self.shared.links.get(side);
            ports.push(PortStatus {
                published_s: snap.at as f64 / 1e9,
                port: side.name().into(),
                interface: self.interfaces[side.index()].clone(),
                rate_bps: port_plan.spec.rate_bps,
                arrived_frames: forwarders.iter().map(|f| f.received[side.index()]).sum(),
                kernel_drops: self.shared.kernel_drops.get(side),
                link: link.0.to_string(),
                link_down_s: link.1,
                classes,
                totals,
            });
        }
        let mut flow_table = FlowTableStatus::default();
        let mut gso_split = GsoSplit::default();
        let mut top: Vec<FlowEntry> = Vec::new();
        for f in &forwarders {
            oldest = oldest.min(f.at);
            let t = &f.flow_table;
            flow_table.occupied += t.occupied;
            flow_table.capacity += f.flow_capacity;
            flow_table.inserted += t.inserted;
            flow_table.evicted += t.evicted;
            flow_table.expired += t.expired;
            flow_table.hits += t.hits;
            flow_table.misses += t.misses;
            gso_split.super_frames += f.gso_split.super_frames;
            gso_split.segments += f.gso_split.segments;
            let named = f.top_flows.iter().map(|info| FlowEntry {
                info: *info,
                class: Side::BOTH
                    .map(|side| class_name(&self.plan, side, info.class[side.index()])),
            });
            published::merge_flows(&mut top, named.collect());
        }
        top.sort_by(|a, b| by_activity(&a.info, &b.info));
        top.truncate(published::TOP_FLOWS);
        Status {
            weir_version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            threads: self.threads.clone(),
            config: self.config.clone(),
            ports,
            flow_table,
            gso_split,
            top_flows: top
                .iter()
                .map(|f| FlowStatus::new(&f.info, &f.class, now))
                .collect(),
            age_ms: now.saturating_sub(oldest) as f64 / 1e6,
        }
    }
}

fn add(t: &mut TotalsStatus, st: &ClassStats) {
    t.received += st.received_frames;
    t.forwarded += st.forwarded_frames;
    t.dropped += st.dropped_total_frames();
    t.queued += st.queued_frames;
}

#[allow(clippy::too_many_arguments)]
fn class_status(
    name: String,
    priority: Option<u8>,
    rate_bps: u64,
    ceil_bps: u64,
    st: &ClassStats,
    h: Option<&ClassHistory>,
    active_flows: u64,
    history: bool,
) -> ClassStatus {
    let us = |ns: u64| ns as f64 / 1000.0;
    let q = |hist: &Histogram<u64>, q: f64| {
        if hist.is_empty() {
            0.0
        } else {
            us(hist.value_at_quantile(q))
        }
    };
    // The sojourn of the frames forwarded since the mark about a second ago.
    let last = h.and_then(|h| h.mark.as_ref()).and_then(|(_, mark)| {
        let mut d = st.sojourn_ns.clone();
        d.subtract(mark).ok().map(|()| d)
    });
    let (last_p50, last_p99) = last.map_or((0.0, 0.0), |d| (q(&d, 0.5), q(&d, 0.99)));
    let drops_1s = match h.and_then(|h| h.sample_before(SECOND)) {
        Some(before) => DropReason::ALL
            .iter()
            .filter_map(|r| {
                let n = st.dropped_frames[*r as usize].saturating_sub(before.dropped[*r as usize]);
                (n > 0).then(|| (r.as_str().to_string(), n))
            })
            .collect(),
        None => BTreeMap::new(),
    };
    ClassStatus {
        name,
        priority,
        rate_bps,
        ceil_bps,
        rate_1s_bps: h.map_or(0, |h| h.rate(h.sample_before(SECOND))),
        rate_10s_bps: h.map_or(0, |h| h.rate(h.sample_before(10 * SECOND))),
        received_frames: st.received_frames,
        received_bytes: st.received_bytes,
        forwarded_frames: st.forwarded_frames,
        forwarded_bytes: st.forwarded_bytes,
        forwarded_wire_bytes: st.forwarded_wire_bytes,
        dropped_frames: st.dropped_total_frames(),
        dropped_bytes: st.dropped_total_bytes(),
        drops_by_reason: DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), st.dropped_frames[*r as usize]))
            .collect(),
        drops_1s,
        queued_frames: st.queued_frames,
        queued_bytes: st.queued_bytes,
        borrowed_frames: st.borrowed_frames,
        borrowed_bytes: st.borrowed_bytes,
        ecn_marked_frames: st.queue.ecn_marked,
        flow_collisions: st.queue.flow_collisions,
        host_collisions: st.queue.host_collisions,
        sojourn_us: SojournStatus {
            last_p50,
            last_p99,
            p50: us(st.sojourn_quantile_ns(0.5)),
            p99: us(st.sojourn_quantile_ns(0.99)),
            p999: us(st.sojourn_quantile_ns(0.999)),
            max: us(st.sojourn_max_ns()),
        },
        active_flows,
        history_bps: if history {
            h.map(ClassHistory::per_second).unwrap_or_default()
        } else {
            Vec::new()
        },
    }
}
