//! Replay: the live policy, run on a capture in virtual time.
//!
//! Each frame arrives at its capture timestamp on the port its addresses say (`lan_networks`,
//! else the side its MAC address was last seen on, else upload), or on the side forced by
//! `--direction`. It is parsed, classified and enqueued exactly as `weir run` would; departures
//! are taken from both ports in time order whenever the scheduler says one is due, and at the
//! end the queues are drained. The optional output capture holds every forwarded frame at its
//! departure time (with DSCP remarked where the class says so).
//!
//! Accounting: every frame read is received by exactly one class of one port; at the end
//! nothing is queued, so `received = forwarded + dropped` per class.
//! Memory: frame bytes are copied only when an output is written, into a pool sized at start
//! to what the queues can hold; the pool never grows beyond that.

use crate::capture::{CaptureError, CaptureReader, CaptureWriter};
use crate::classify::flow::mac_u128;
use crate::classify::{Classifier, ClassifierStats};
use crate::config::Plan;
use crate::pipeline::report::{ClassReport, Totals};
use crate::port::Side;
use crate::sched::stats::DropReason;
use crate::sched::{Dropped, Enqueued, FrameMeta, PortScheduler};
use crate::time::Nanos;
use crate::wire::{self, set_dscp, L3};
use serde::Serialize;
use std::path::Path;

/// Which way frames go when forced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// LAN to WAN: frames leave on the wan port.
    Upload,
    /// WAN to LAN: frames leave on the lan port.
    Download,
}

impl Direction {
    fn egress(self) -> Side {
        match self {
            Direction::Upload => Side::Wan,
            Direction::Download => Side::Lan,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The capture broke off part way: `report` covers the frames read before the damage
    /// (their queues drained as usual).
    #[error("{source}")]
    Damaged {
        report: Box<ReplayReport>,
        source: CaptureError,
    },
}

/// Frame buffers for queued frames, when an output capture is written.
struct FramePool {
    bufs: Vec<Vec<u8>>,
    free: Vec<u32>,
}

impl FramePool {
    fn new(slots: u32) -> FramePool {
        FramePool {
            bufs: (0..slots).map(|_| Vec::new()).collect(),
            free: (0..slots).rev().collect(),
        }
    }

    /// A slot holding a copy of `data`. Buffers grow to the largest frame they have held and
    /// are kept: in steady state this does not allocate.
    fn store(&mut self, data: &[u8]) -> Option<u32> {
        let slot = self.free.pop()?;
        let buf = &mut self.bufs[slot as usize];
        buf.clear();
        buf.extend_from_slice(data);
        Some(slot)
    }

    fn release(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// Which side MAC addresses were seen on, learned from IP frames; direct-mapped and bounded.
struct MacSides {
    slots: Vec<(u128, Side)>,
}

impl MacSides {
    const SLOTS: usize = 4096;

    fn new() -> MacSides {
        MacSides {
            slots: vec![(u128::MAX, Side::Lan); Self::SLOTS],
        }
    }

    fn idx(mac: u128) -> usize {
        (crate::classify::flow::mix(mac as u64) as usize) % Self::SLOTS
    }

    fn learn(&mut self, mac: &[u8; 6], side: Side) {
        let m = mac_u128(mac);
        self.slots[Self::idx(m)] = (m, side);
    }

    fn side_of(&self, mac: &[u8; 6]) -> Option<Side> {
        let m = mac_u128(mac);
        let (k, side) = self.slots[Self::idx(m)];
        (k == m).then_some(side)
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DirectionCounts {
    pub upload: u64,
    pub download: u64,
    /// Frames whose side was guessed (no LAN address, MAC not seen before): sent as upload.
    pub guessed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub frames_read: u64,
    /// From the first frame's arrival to the last departure, in seconds.
    pub span_s: f64,
    /// Capture timestamps that went backwards (such frames arrive at the previous time).
    pub timestamps_reordered: u64,
    pub totals: Totals,
    pub classes: Vec<ClassReport>,
    pub directions: DirectionCounts,
    pub flow_table: FlowTableReport,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct FlowTableReport {
    pub hits: u64,
    pub misses: u64,
    pub evicted: u64,
    pub expired: u64,
    pub fragments_matched: u64,
    pub fragments_unmatched: u64,
    pub control_frames: u64,
}

/// Progress callback, given the number of frames read so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

pub struct Replay<'p> {
    plan: &'p Plan,
    classifier: Classifier,
    ports: Option<[PortScheduler<u32>; 2]>,
    pool: Option<FramePool>,
    macs: MacSides,
    direction: Option<Direction>,
    directions: DirectionCounts,
    frames: u64,
    first_ts: Option<Nanos>,
    now: Nanos,
    last_departure: Nanos,
    reordered: u64,
}

impl<'p> Replay<'p> {
    pub fn new(plan: &'p Plan, direction: Option<Direction>, keep_frames: bool) -> Replay<'p> {
        let slots: u32 = plan
            .ports
            .iter()
            .flat_map(|p| p.spec.classes.iter())
            .fold(0u32, |s, c| s.saturating_add(c.limit_packets));
        Replay {
            plan,
            classifier: plan.classifier(),
            ports: None,
            pool: keep_frames.then(|| FramePool::new(slots)),
            macs: MacSides::new(),
            direction,
            directions: DirectionCounts::default(),
            frames: 0,
            first_ts: None,
            now: 0,
            last_departure: 0,
            reordered: 0,
        }
    }

    fn egress_of(&mut self, v: &wire::FrameView) -> Side {
        if let Some(d) = self.direction {
            return d.egress();
        }
        let from = match v.l3 {
            L3::Ipv4 | L3::Ipv6 => {
                let v6 = v.l3 == L3::Ipv6;
                if self.plan.is_lan_address(v.src_ip, v6) {
                    Some(Side::Lan)
                } else if self.plan.is_lan_address(v.dst_ip, v6) {
                    Some(Side::Wan)
                } else {
                    None
                }
            }
            L3::Arp => {
                if self.plan.is_lan_address(u128::from(v.arp_spa), false) {
                    Some(Side::Lan)
                } else if self.plan.is_lan_address(u128::from(v.arp_tpa), false) {
                    Some(Side::Wan)
                } else {
                    None
                }
            }
            L3::Other => None,
        };
        let from = match from {
            Some(side) => {
                self.macs.learn(&v.src_mac, side);
                side
            }
            None => match self.macs.side_of(&v.src_mac) {
                Some(side) => side,
                None => {
                    self.directions.guessed += 1;
                    Side::Lan
                }
            },
        };
        from.other()
    }

    /// Feed one captured frame that arrived at `ts`; `out` receives departures due before it.
    pub fn push(
        &mut self,
        ts: Nanos,
        data: &[u8],
        orig_len: u32,
        out: &mut impl FnMut(Nanos, &[u8], u32),
    ) {
        self.frames += 1;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
            self.now = ts;
            self.ports = Some([
                PortScheduler::new(self.plan.ports[0].spec.clone(), ts),
                PortScheduler::new(self.plan.ports[1].spec.clone(), ts),
            ]);
        }
        if ts < self.now {
            self.reordered += 1;
        }
        let now = ts.max(self.now);
        self.now = now;
        self.depart_until(now, out);

        let view = wire::parse(data);
        let egress = self.egress_of(&view);
        match egress {
            Side::Wan => self.directions.upload += 1,
            Side::Lan => self.directions.download += 1,
        }
        let verdict = self.classifier.classify(&view, egress, now);
        let port_plan = &self.plan.ports[egress.index()];
        let Some(ports) = self.ports.as_mut() else {
            return;
        };
        let sched = &mut ports[egress.index()];
        let bytes = orig_len.max(data.len() as u32);
        if data.len() < 14 {
            sched.reject(verdict.class, bytes, DropReason::Malformed);
            return;
        }
        let item = match self.pool.as_mut() {
            Some(pool) => match pool.store(data) {
                Some(slot) => {
                    if let Some(dscp) = port_plan
                        .classes
                        .get(usize::from(verdict.class))
                        .and_then(|c| c.set_dscp)
                    {
                        set_dscp(&mut pool.bufs[slot as usize], &view, dscp);
                    }
                    slot
                }
                // Cannot happen: the pool has a slot for every frame the queues can hold.
                None => {
                    sched.reject(verdict.class, bytes, DropReason::QueueFull);
                    return;
                }
            },
            None => 0,
        };
        let meta = FrameMeta {
            class: verdict.class,
            bytes,
            wire_bytes: bytes.saturating_add(port_plan.overhead),
            fairness_hash: verdict.fairness_hash,
        };
        if let Enqueued::Dropped(item, _) = sched.enqueue(item, meta, now) {
            if let Some(pool) = self.pool.as_mut() {
                pool.release(item);
            }
        }
    }

    /// Send every departure due at or before `until`, from both ports in time order.
    fn depart_until(&mut self, until: Nanos, out: &mut impl FnMut(Nanos, &[u8], u32)) {
        let Some(ports) = self.ports.as_mut() else {
            return;
        };
        loop {
            let due = |p: &PortScheduler<u32>| p.next_wakeup().filter(|&t| t <= until);
            let (side, t) = match (due(&ports[0]), due(&ports[1])) {
                (Some(a), Some(b)) if b < a => (1, b),
                (Some(a), _) => (0, a),
                (None, Some(b)) => (1, b),
                (None, None) => return,
            };
            let before = ports[side].queued_frames();
            let pool = &mut self.pool;
            let departed = ports[side].dequeue(t, &mut |d: Dropped<u32>| {
                if let Some(pool) = pool.as_mut() {
                    pool.release(d.item);
                }
            });
            match departed {
                Some(d) => {
                    self.last_departure = self.last_departure.max(t);
                    match pool.as_mut() {
                        Some(pool) => {
                            out(t, &pool.bufs[d.item as usize], d.bytes);
                            pool.release(d.item);
                        }
                        None => out(t, &[], d.bytes),
                    }
                }
                // Only CoDel drops happened: look again.
                None if ports[side].queued_frames() < before => {}
                // The scheduler promised a departure and gave none (a bug): stop, not spin.
                None => return,
            }
        }
    }

    /// Send everything still queued, at the times the scheduler gives, and report.
    pub fn finish(mut self, out: &mut impl FnMut(Nanos, &[u8], u32)) -> ReplayReport {
        self.depart_until(Nanos::MAX, out);
        self.report()
    }

    /// Results so far (after [`finish`](Self::finish), nothing is queued).
    pub fn report(&self) -> ReplayReport {
        let start = self.first_ts.unwrap_or(0);
        let end = self.last_departure.max(self.now);
        let span_ns = end.saturating_sub(start);
        let mut classes = Vec::new();
        let mut totals = Totals::default();
        if let Some(ports) = &self.ports {
            // Upload (wan) first: it is what users usually shape.
            for side in [Side::Wan, Side::Lan] {
                let sched = &ports[side.index()];
                let plan = &self.plan.ports[side.index()];
                for (i, spec) in sched.spec().classes.iter().enumerate() {
                    let Some(st) = sched.class_stats(i as u16) else {
                        continue;
                    };
                    totals.received += st.received_frames;
                    totals.forwarded += st.forwarded_frames;
                    totals.dropped += st.dropped_total_frames();
                    totals.queued += st.queued_frames;
                    classes.push(ClassReport::new(side, &plan.classes[i], spec, st, span_ns));
                }
            }
        }
        let cs: ClassifierStats = self.classifier.stats();
        ReplayReport {
            frames_read: self.frames,
            span_s: span_ns as f64 / 1e9,
            timestamps_reordered: self.reordered,
            totals,
            classes,
            directions: self.directions,
            flow_table: FlowTableReport {
                hits: cs.flows.hits,
                misses: cs.flows.misses,
                evicted: cs.flows.evicted,
                expired: cs.flows.expired,
                fragments_matched: cs.fragments.matched,
                fragments_unmatched: cs.fragments.unmatched,
                control_frames: cs.control_frames,
            },
        }
    }
}

/// Replay a capture file through `plan`, writing the shaped capture to `out_path` if given.
/// `progress` is called every 65536 frames with the number read so far.
pub fn replay_file(
    plan: &Plan,
    capture: &Path,
    out_path: Option<&Path>,
    direction: Option<Direction>,
    progress: Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    let mut reader = CaptureReader::open(capture)?;
    let mut writer = match out_path {
        Some(p) => Some(CaptureWriter::create(p)?),
        None => None,
    };
    let mut replay = Replay::new(plan, direction, writer.is_some());
    let mut write_error: Option<CaptureError> = None;
    let mut out = |t: Nanos, data: &[u8], orig_len: u32| {
        if let Some(w) = writer.as_mut() {
            if write_error.is_none() {
                if let Err(e) = w.write(t, data, orig_len) {
                    write_error = Some(e);
                }
            }
        }
    };
    let damage = loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                replay.push(frame.ts_ns, frame.data, frame.orig_len, &mut out);
                if frame.number % 65_536 == 0 {
                    progress(frame.number);
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let report = replay.finish(&mut out);
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    match damage {
        Some(source) => Err(ReplayError::Damaged {
            report: Box::new(report),
            source,
        }),
        None => Ok(report),
    }
}
