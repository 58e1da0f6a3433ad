//! Replay: a thin driver of the live policy path ([`crate::pipeline`]) on a capture, in
//! virtual time.
//!
//! Each frame arrives at its capture timestamp on the port its addresses say (`lan_networks`,
//! else the side its MAC address was last seen on, else upload), or on the side forced by
//! `--direction`, and goes through [`Pipeline::receive_parsed`] exactly as `weir run`'s frames
//! go through `receive`; a capture carries no offload state, so a TCP frame longer than the MTU
//! is taken for the super-frame it is (charged, and cut, as its segments). Before each arrival
//! the time moves through the schedulers' wake-ups before it, each port sending what is due;
//! at the end the queues are drained. The optional output capture holds every forwarded frame
//! at its departure time (with DSCP remarked where the class says so).
//!
//! Accounting: every frame read is received by exactly one class of one port (a cut
//! super-frame as its segments); at the end nothing is queued, so `received = forwarded +
//! dropped` per class.
//! Memory: frame bytes are copied only when an output is written, into a pool sized at start
//! to what the queues can hold; the pool never grows beyond that.

use crate::capture::{CaptureError, CaptureReader, CaptureWriter};
use crate::classify::flow::mac_u128;
use crate::classify::{ClassifierStats, Explanation};
use crate::config::Plan;
use crate::pipeline::report::FlowStatus;
use crate::pipeline::report::{ClassReport, Totals};
use crate::pipeline::{
    FrameStore, GsoSplit, Offload, Pipeline, RxInfo, DEFAULT_MTU, MAX_CUT_SEGMENTS,
};
use crate::port::Side;
use crate::time::Nanos;
use crate::wire::{self, Segmenter, VnetHdr, L3};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// How frames are fed to the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Treat every frame as going this way, instead of deciding by `lan_networks`.
    pub direction: Option<Direction>,
    /// The MTU of the link the capture was taken on: a TCP frame whose IP packet is longer is
    /// a super-frame of segments this size.
    pub mtu: u32,
    /// Keep what a flow list needs (server names, frames per flow): [`Replay::flows`].
    pub flows: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            direction: None,
            mtu: DEFAULT_MTU,
            flows: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("cannot write the flow list to {path}: {source}")]
    Flows {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The output would overwrite the capture being read.
    #[error("{out} is the capture being replayed ({capture}): writing it would destroy the input; give another output file")]
    OutputIsInput { out: PathBuf, capture: PathBuf },
    /// The capture broke off part way: `report` covers the frames read before the damage
    /// (their queues drained as usual).
    #[error("{source}")]
    Damaged {
        report: Box<ReplayReport>,
        source: CaptureError,
    },
}

/// Frame bytes of queued frames, kept only when an output capture is written. Each slot's
/// buffer grows to the largest frame it held and is reused: in steady state nothing allocates.
/// Without an output no bytes are kept and every frame's handle is 0.
struct ReplayFrames {
    bufs: Vec<Vec<u8>>,
    free: Vec<u32>,
    keep_bytes: bool,
}

impl ReplayFrames {
    fn new(slots: u32, keep_bytes: bool) -> ReplayFrames {
        let slots = if keep_bytes { slots } else { 0 };
        ReplayFrames {
            bufs: (0..slots).map(|_| Vec::new()).collect(),
            free: (0..slots).rev().collect(),
            keep_bytes,
        }
    }

    fn slot(&mut self) -> Option<(u32, &mut Vec<u8>)> {
        let slot = self.free.pop()?;
        Some((slot, &mut self.bufs[slot as usize]))
    }

    fn bytes(&self, item: u32) -> &[u8] {
        self.bufs.get(item as usize).map_or(&[], Vec::as_slice)
    }
}

impl FrameStore for ReplayFrames {
    type Item = u32;
    type Rx<'a> = &'a [u8];

    fn keep(&mut self, rx: &mut &[u8], len: usize, _vnet: VnetHdr) -> Option<u32> {
        if !self.keep_bytes {
            return Some(0);
        }
        let (slot, buf) = self.slot()?;
        buf.clear();
        buf.extend_from_slice(&rx[..len]);
        Some(slot)
    }

    fn keep_segment(&mut self, seg: &Segmenter<'_>, i: usize, _vnet: VnetHdr) -> Option<u32> {
        if !self.keep_bytes {
            return Some(0);
        }
        let len = seg.segment_len(i)?;
        let (slot, buf) = self.slot()?;
        buf.resize(len, 0);
        match seg.write(i, buf) {
            Some(n) => {
                buf.truncate(n);
                Some(slot)
            }
            None => {
                self.free.push(slot);
                None
            }
        }
    }

    fn frame_mut(&mut self, item: u32) -> Option<&mut [u8]> {
        if !self.keep_bytes {
            return None;
        }
        self.bufs.get_mut(item as usize).map(Vec::as_mut_slice)
    }

    fn frame(&self, item: u32) -> Option<&[u8]> {
        self.keep_bytes.then(|| self.bytes(item))
    }

    fn release(&mut self, item: u32) {
        if self.keep_bytes {
            self.free.push(item);
        }
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
    /// TCP super-frames (longer than the MTU) cut into segments for classes under 1 Gbit/s;
    /// each segment counts as a frame received, so `totals.received` can exceed `frames_read`.
    pub gso_split: GsoSplit,
    /// Server names learnt from payloads (when a rule reads names, or with `--flows`).
    pub names: NamesReport,
    /// The config's budgets over the capture's time: each one's count in the period of the
    /// capture's end, and the periods before it (with when each ran out). Empty without
    /// budgets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<crate::budget::BudgetStatus>,
    /// False when the capture broke off part way: the figures cover the frames before the
    /// damage, which `damage` describes.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct NamesReport {
    /// Flows whose server name was read from their payload.
    pub learnt: u64,
    /// Flows that showed no name in their first payload frames.
    pub not_found: u64,
    /// Frames of the named flows classified before their name was known.
    pub frames_before: u64,
    /// New flows named from the DNS cache (an answer seen earlier gave their address).
    pub from_dns_cache: u64,
    /// Addresses stored from DNS answers, and live ones pushed out of the full cache.
    pub dns_answers_stored: u64,
    pub dns_cache_evicted: u64,
    /// Flows whose protocol was told from their payload, flows whose payload showed none, and
    /// frames of the first kind classified before it was told.
    pub apps_found: u64,
    pub apps_unknown: u64,
    pub frames_before_app: u64,
    /// Payload frames read per flow for names and protocols (`flow_table.payload_frames`).
    pub payload_frames: u8,
    /// Names read from a ClientHello gathered over several TCP segments or QUIC packets;
    /// gatherings pushed out of the full pool of hello buffers.
    pub hellos_gathered: u64,
    pub hello_pool_taken_over: u64,
    /// Frames of flows that moved to another class, kept in their former class while their
    /// earlier frames waited there, so that the flow's frames left in order.
    pub frames_held_for_order: u64,
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

/// One flow of a replay, as `weir replay --flows` writes it (one JSON object per line; schema:
/// docs/replay-json.md).
#[derive(Clone, Debug, Serialize)]
pub struct FlowLine {
    #[serde(flatten)]
    pub flow: FlowStatus,
    /// Capture time of its first and last frame, in seconds since the Unix epoch.
    pub first_ts: f64,
    pub last_ts: f64,
}

/// Progress callback, given the number of frames read so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

pub struct Replay<'p> {
    plan: &'p Arc<Plan>,
    mtu: u32,
    /// Made at the first frame, whose time starts the token buckets.
    pipeline: Option<Pipeline<u32>>,
    store: ReplayFrames,
    macs: MacSides,
    direction: Option<Direction>,
    directions: DirectionCounts,
    frames: u64,
    first_ts: Option<Nanos>,
    now: Nanos,
    last_departure: Nanos,
    reordered: u64,
    keep_flows: bool,
    /// The port the last frame pushed came in on.
    last_ingress: Option<Side>,
}

impl<'p> Replay<'p> {
    /// `keep_frames`: keep the bytes of queued frames, for an output capture.
    pub fn new(plan: &'p Arc<Plan>, opts: &ReplayOptions, keep_frames: bool) -> Replay<'p> {
        let slots: u32 = plan
            .ports
            .iter()
            .flat_map(|p| p.spec.classes.iter())
            .fold(0u32, |s, c| s.saturating_add(c.limit_packets));
        Replay {
            plan,
            mtu: opts.mtu,
            keep_flows: opts.flows,
            last_ingress: None,
            pipeline: None,
            // Every queue slot, and the segments of a super-frame being cut.
            store: ReplayFrames::new(slots.saturating_add(MAX_CUT_SEGMENTS as u32), keep_frames),
            macs: MacSides::new(),
            direction: opts.direction,
            directions: DirectionCounts::default(),
            frames: 0,
            first_ts: None,
            now: 0,
            last_departure: 0,
            reordered: 0,
        }
    }

    /// The port a frame arrived on: forced, or by its addresses, or by its MAC address.
    fn ingress_of(&mut self, v: &wire::FrameView) -> Side {
        if let Some(d) = self.direction {
            return d.egress().other();
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
        match from {
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
        }
    }

    /// Feed one captured frame that arrived at `ts`; `out` receives the departures due before
    /// it (departures due at `ts` itself come after every frame arriving at `ts`, as in the
    /// live bridge, which receives a batch and then sends).
    pub fn push(
        &mut self,
        ts: Nanos,
        mut data: &[u8],
        orig_len: u32,
        out: &mut impl FnMut(Nanos, &[u8], u32),
    ) {
        self.frames += 1;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
            self.now = ts;
            let mut pipeline = Pipeline::new(Arc::clone(self.plan), self.mtu, ts);
            if self.keep_flows {
                pipeline.keep_flow_names();
            }
            self.pipeline = Some(pipeline);
        }
        if ts < self.now {
            self.reordered += 1;
        }
        let now = ts.max(self.now);
        self.now = now;
        self.depart_until(now, false, out);
        let view = wire::parse(data);
        let ingress = self.ingress_of(&view);
        self.last_ingress = Some(ingress);
        match ingress {
            Side::Lan => self.directions.upload += 1,
            Side::Wan => self.directions.download += 1,
        }
        let info = RxInfo {
            len: data.len(),
            wire_len: orig_len,
            offload: Offload::Unknown,
        };
        if let Some(p) = self.pipeline.as_mut() {
            p.receive_parsed(ingress, &view, &mut data, info, now, &mut self.store);
        }
    }

    /// Send the departures due before `until` (and at `until` when `inclusive`), from both
    /// ports, in time order: the time moves from one wake-up of the schedulers to the next.
    fn depart_until(
        &mut self,
        until: Nanos,
        inclusive: bool,
        out: &mut impl FnMut(Nanos, &[u8], u32),
    ) {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return;
        };
        while let Some(t) = pipeline.next_wakeup() {
            if t > until || (t == until && !inclusive) {
                return;
            }
            let before = pipeline.queued_frames();
            for side in [Side::Lan, Side::Wan] {
                while let Some(d) = pipeline.depart(side, t, &mut self.store) {
                    self.last_departure = self.last_departure.max(t);
                    out(t, self.store.bytes(d.item), d.bytes);
                    self.store.release(d.item);
                }
            }
            // The scheduler promised a departure and neither sent nor dropped one (a bug):
            // stop rather than spin.
            if pipeline.queued_frames() == before {
                return;
            }
        }
    }

    /// Send the departures due before `t` (a report samples the counters at `t`), when `t`
    /// is after the last frame; nothing is sent at `t` itself, so frames arriving at `t`
    /// still come first.
    pub fn advance_to(&mut self, t: Nanos, out: &mut impl FnMut(Nanos, &[u8], u32)) {
        if self.pipeline.is_some() && t > self.now {
            self.depart_until(t, false, out);
        }
    }

    /// The pipeline, once a frame came (for its counters).
    pub fn pipeline(&self) -> Option<&Pipeline<u32>> {
        self.pipeline.as_ref()
    }

    /// The verdict on the last frame pushed: the port it left by, its class, the watched
    /// rules it matched. `None` before any frame.
    pub fn last_verdict(&self) -> Option<crate::pipeline::LastVerdict> {
        self.pipeline.as_ref()?.last_verdict()
    }

    /// What the flow of `view` has learnt so far (with [`ReplayOptions::flows`]): the
    /// protocol its payload showed and its server name.
    pub fn flow_label(
        &self,
        view: &wire::FrameView,
    ) -> (
        Option<crate::classify::payload::detect::Protocol>,
        Option<crate::classify::payload::Name>,
    ) {
        self.pipeline
            .as_ref()
            .map_or((None, None), |p| p.classifier().flow_label(view))
    }

    /// Send everything still queued, at the times the scheduler gives, and report.
    pub fn finish(mut self, out: &mut impl FnMut(Nanos, &[u8], u32)) -> ReplayReport {
        self.depart_until(Nanos::MAX, true, out);
        let end = self.last_departure.max(self.now);
        if let Some(p) = self.pipeline.as_mut() {
            p.sync_budgets(end);
        }
        self.report()
    }

    /// Why the last frame pushed (`data`, as pushed) got its class, and the port it left by
    /// (`weir explain`). `None` before any frame.
    pub fn explain_last(&self, data: &[u8]) -> Option<(Side, Explanation)> {
        let egress = self.last_ingress?.other();
        let p = self.pipeline.as_ref()?;
        Some((egress, p.classifier().explain(&wire::parse(data), egress)))
    }

    /// The flows the flow table still holds, in order of their first frame (flows pushed out
    /// of a full table are not listed: `flow_table.evicted` counts them). Server names and
    /// frame counts only with [`ReplayOptions::flows`].
    pub fn flows(&self) -> Vec<FlowLine> {
        let Some(p) = &self.pipeline else {
            return Vec::new();
        };
        let names = |side: Side| -> Vec<String> {
            self.plan.ports[side.index()]
                .classes
                .iter()
                .map(|c| c.name.clone())
                .collect()
        };
        let (lan, wan) = (names(Side::Lan), names(Side::Wan));
        let mut out = Vec::new();
        p.classifier().for_each_held_flow(self.now, |info| {
            let class = [
                info.class[0].and_then(|c| lan.get(usize::from(c)).cloned()),
                info.class[1].and_then(|c| wan.get(usize::from(c)).cloned()),
            ];
            out.push(FlowLine {
                flow: FlowStatus::new(&info, &class, self.now),
                first_ts: info.first_seen as f64 / 1e9,
                last_ts: info.last_seen as f64 / 1e9,
            });
        });
        out.sort_by(|a, b| a.first_ts.total_cmp(&b.first_ts));
        out
    }

    /// Results so far (after [`finish`](Self::finish), nothing is queued).
    pub fn report(&self) -> ReplayReport {
        let start = self.first_ts.unwrap_or(0);
        let end = self.last_departure.max(self.now);
        let span_ns = end.saturating_sub(start);
        let (classes, totals) = self
            .pipeline
            .as_ref()
            .map(|p| p.class_reports(&[Side::Wan, Side::Lan], span_ns))
            .unwrap_or_default();
        let cs: ClassifierStats = self
            .pipeline
            .as_ref()
            .map(Pipeline::classifier_stats)
            .unwrap_or_default();
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
            gso_split: self
                .pipeline
                .as_ref()
                .map(Pipeline::gso_split)
                .unwrap_or_default(),
            names: NamesReport {
                learnt: cs.names.learnt,
                not_found: cs.names.not_found,
                frames_before: cs.names.frames_before,
                from_dns_cache: cs.names.from_dns_cache,
                dns_answers_stored: cs.names.dns_cache.stored,
                dns_cache_evicted: cs.names.dns_cache.evicted,
                apps_found: cs.names.apps_found,
                apps_unknown: cs.names.apps_unknown,
                frames_before_app: cs.names.frames_before_app,
                payload_frames: self.plan.payload_frames,
                hellos_gathered: cs.names.hellos_gathered,
                hello_pool_taken_over: cs.names.hello_pool.taken_over,
                frames_held_for_order: cs.names.held_for_order,
            },
            budgets: self
                .pipeline
                .as_ref()
                .map(|p| p.ledger().status())
                .unwrap_or_default(),
            complete: true,
            damage: None,
        }
    }
}

/// Replay a capture file through `plan`, writing the shaped capture to `out_path` if given,
/// and its flows to `flows_path` (JSON lines; with `opts.flows`, names and frame counts too).
/// `progress` is called every 65536 frames with the number read so far.
pub fn replay_file(
    plan: &Arc<Plan>,
    capture: &Path,
    out_path: Option<&Path>,
    flows_path: Option<&Path>,
    opts: &ReplayOptions,
    progress: Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    let mut reader = CaptureReader::open(capture)?;
    // The same file under any name (a link, `./`): creating the output would truncate it.
    for out in [out_path, flows_path].into_iter().flatten() {
        if same_file(out, capture) {
            return Err(ReplayError::OutputIsInput {
                out: out.to_path_buf(),
                capture: capture.to_path_buf(),
            });
        }
    }
    // Created first, so that a path that cannot be written fails before the work.
    let mut flows_file = match flows_path {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| ReplayError::Flows {
                path: p.to_path_buf(),
                source: e,
            },
        )?)),
        None => None,
    };
    let mut writer = match out_path {
        Some(p) => Some(CaptureWriter::create(p)?),
        None => None,
    };
    let mut replay = Replay::new(plan, opts, writer.is_some());
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
    if let (Some(f), Some(p)) = (flows_file.as_mut(), flows_path) {
        let flows_err = |e: std::io::Error| ReplayError::Flows {
            path: p.to_path_buf(),
            source: e,
        };
        for line in replay.flows() {
            serde_json::to_writer(&mut *f, &line).map_err(|e| flows_err(e.into()))?;
            f.write_all(b"\n").map_err(flows_err)?;
        }
        f.flush().map_err(flows_err)?;
    }
    let report = replay.finish(&mut out);
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    match damage {
        Some(source) => Err(ReplayError::Damaged {
            report: Box::new(ReplayReport {
                complete: false,
                damage: Some(source.to_string()),
                ..report
            }),
            source,
        }),
        None => Ok(report),
    }
}

/// Are `a` and `b` the same existing file (device and inode)?
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
