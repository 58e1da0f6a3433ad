//! The policy path, from a received frame to its departure: one copy, driven by `weir run`
//! (the monotonic clock) and `weir replay` (capture time), and by tests (a manual clock).
//!
//! Ingress, [`Pipeline::receive`]: parse, classify (flow table, rules), keep the frame in the
//! driver's [`FrameStore`], remark its DSCP, charge its wire bytes (every segment of a GSO
//! super-frame, plus the port's per-frame overhead), cut a TCP super-frame into its segments
//! when it leaves through a class or link slower than [`SPLIT_GSO_BELOW_BPS`], and enqueue it
//! in the scheduler of the port it leaves by (frames entering on lan leave on wan, and back).
//! Egress, [`Pipeline::depart`]: the next frame a port may send at `now`;
//! [`Pipeline::next_wakeup`] says when to ask again.
//!
//! Time is passed in; nothing here reads a clock, spawns a thread or does I/O. A driver calls
//! `receive` for the frames arriving at `now` and `depart` for each port at `now`; the order is
//! its own, and the replay driver and the live one use the same order (arrivals of an instant,
//! then that instant's departures), so the same frames at the same times give the same counts
//! (tested: `tests.rs`, the live driver against the replay driver).
//!
//! Decisions pinned here, where the two drivers used to differ:
//! - a GSO super-frame is charged as every segment it becomes, and cut below
//!   [`SPLIT_GSO_BELOW_BPS`]; a frame that came without offload state (a capture, a device
//!   without vnet headers) is a super-frame when it is TCP and its IP packet is longer than the
//!   MTU ([`VnetHdr::infer`]);
//! - a frame that the device cut short, or shorter than an Ethernet header, is counted in its
//!   class and dropped as `malformed`; a frame a capture's snap length cut is not damaged: it is
//!   charged its length on the wire;
//! - counters: `received = forwarded + dropped + queued` per class at every instant, and every
//!   frame received is counted on its ingress port exactly once (a cut super-frame as its
//!   segments).
//!
//! Memory: the schedulers' descriptors are allocated at construction; frame bytes live in the
//! driver's store. `receive` and `depart` never allocate.

pub mod report;
#[cfg(test)]
mod tests;

use crate::budget::{Ledger, Meter, Target, Then, SYNC_EVERY};
use crate::classify::{Classifier, ClassifierStats};
use crate::config::Plan;
use crate::port::{ClassId, Side};
use crate::sched::stats::{ClassStats, DropReason};
use crate::sched::token_bucket::{Conform, TokenBucket};
use crate::sched::{Departure, Dropped, Enqueued, FrameMeta, PortScheduler};
use crate::time::Nanos;
use crate::wire::{self, FrameView, Segmenter, VnetHdr};
use report::{ClassReport, Totals};
use std::sync::Arc;

/// GSO super-frames bound for a class (or a link) slower than this are cut into their
/// segments, as CAKE does below 1 Gbit/s: AQM then drops one segment rather than ~44 at once,
/// and a frame no longer holds the link for a super-frame's time (52 ms at 10 Mbit/s).
pub const SPLIT_GSO_BELOW_BPS: u64 = 1_000_000_000;

/// A super-frame of more segments than this is not cut (it goes whole): 64 covers a 64 KiB
/// super-frame down to segments of 1 KiB.
pub const MAX_CUT_SEGMENTS: usize = 64;

/// The MTU assumed where none is known (replay of a capture): Ethernet's.
pub const DEFAULT_MTU: u32 = 1500;

/// Where a driver keeps the bytes of frames while they wait in a queue. `Item` is the handle
/// the schedulers hold; `Rx` is the driver's receive buffer, which `keep` may copy or take.
pub trait FrameStore {
    type Item: Copy;
    type Rx<'a>: AsRef<[u8]>;

    /// Keep the first `len` bytes of `rx` (a frame that goes whole, with `vnet`). `None` when
    /// no buffer is free.
    fn keep(&mut self, rx: &mut Self::Rx<'_>, len: usize, vnet: VnetHdr) -> Option<Self::Item>;

    /// Keep segment `i` of `seg` (sent with `vnet`). `None` when no buffer is free.
    fn keep_segment(&mut self, seg: &Segmenter<'_>, i: usize, vnet: VnetHdr) -> Option<Self::Item>;

    /// The kept frame's bytes, to remark; `None` when the store keeps no bytes (a replay that
    /// writes no output).
    fn frame_mut(&mut self, item: Self::Item) -> Option<&mut [u8]>;

    /// The kept frame's bytes, to classify it again (a reload); `None` as for `frame_mut`.
    fn frame(&self, item: Self::Item) -> Option<&[u8]>;

    /// The frame is gone (dropped inside the pipeline): its buffer may be reused.
    fn release(&mut self, item: Self::Item);
}

/// What a driver knows about a frame besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxInfo {
    /// Bytes of the frame in the receive buffer.
    pub len: usize,
    /// Its length on the wire: `len`, or more when a capture's snap length cut it.
    pub wire_len: u32,
    pub offload: Offload,
}

/// The offload state that came with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offload {
    /// From a device with vnet headers (`VnetHdr::NONE` for a plain frame).
    Known(VnetHdr),
    /// None came (a capture, a device without vnet headers): see [`VnetHdr::infer`].
    Unknown,
    /// The device cut the frame short (it was longer than its buffers): unusable.
    Truncated,
}

impl RxInfo {
    /// A whole frame of `len` bytes from a device with vnet headers.
    pub fn known(len: usize, vnet: VnetHdr) -> RxInfo {
        RxInfo {
            len,
            wire_len: u32::try_from(len).unwrap_or(u32::MAX),
            offload: Offload::Known(vnet),
        }
    }
}

/// GSO super-frames cut into segments, and the segments they became (each counted as a frame
/// received).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GsoSplit {
    pub super_frames: u64,
    pub segments: u64,
}

/// Both egress ports' schedulers and the classifier in front of them. `T` is the driver's
/// handle to a kept frame ([`FrameStore::Item`]).
pub struct Pipeline<T> {
    plan: Arc<Plan>,
    classifier: Classifier,
    /// Indexed by egress side.
    ports: [PortScheduler<T>; 2],
    mtu: u32,
    gso_split: GsoSplit,
    /// Frames received per ingress port (lan, wan); a cut super-frame counts as its segments.
    received: [u64; 2],
    /// Classes' rates by time of the week (`schedule`): when to look again (the next minute;
    /// never when no class has a schedule), and the wall-clock time of this pipeline's 0.
    schedule_due: Nanos,
    wall_offset: i128,
    /// The local weekday and minute the schedules were last looked at (`None`: no schedule).
    local_minute: Option<(u8, u16)>,
    /// The budgets' global counts (this pipeline's own, unless the driver shares one), and
    /// this pipeline's side of them (`None` when the plan has none).
    ledger: Arc<Ledger>,
    budgets: Option<Budgets>,
    /// The verdict on the last frame received (`weir sniff` prints it).
    last: Option<LastVerdict>,
}

/// What the pipeline decided about the last frame it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastVerdict {
    pub egress: Side,
    pub class: ClassId,
    /// The watched rules it matched (crate::classify::Verdict::watched).
    pub watched: u32,
}

/// The pipeline's side of the plan's budgets (crate::budget).
struct Budgets {
    meter: Meter,
    /// When to sync with the ledger next (pipeline time): every `SYNC_EVERY`, and at the end
    /// of a budget's period.
    due: Nanos,
    /// Budgets every frame counts in (no rule: the whole link).
    always: u32,
    /// Per egress port, per class: the bit of the class's budget (0: none).
    class_bit: [Vec<u32>; 2],
    /// Budgets whose frames are dropped once used up (`then: drop`), and rule budgets whose
    /// frames are then policed (`then: (ceil)`), with their policer per egress port.
    drops: u32,
    policed: u32,
    police: [Vec<Option<TokenBucket>>; 2],
}

impl Budgets {
    fn new(plan: &Plan, now: Nanos) -> Budgets {
        let mut always = 0;
        let (mut drops, mut policed) = (0, 0);
        let mut police = [Vec::new(), Vec::new()];
        for (i, b) in plan.budgets.iter().enumerate() {
            let bit = 1u32 << i;
            if b.target == Target::All {
                always |= bit;
            }
            match (b.then, &b.target) {
                (Then::Drop, _) => drops |= bit,
                (Then::Ceil(_), Target::Rule(_)) => policed |= bit,
                _ => {}
            }
            for side in Side::BOTH {
                police[side.index()].push(match (b.then, &b.target) {
                    (Then::Ceil(bps), Target::Rule(_)) => {
                        let rate = bps[side.index()];
                        // 10 ms at the rate, at least two full frames (as `police` has).
                        Some(TokenBucket::new(rate, (rate / 800).max(3028), now))
                    }
                    _ => None,
                });
            }
        }
        let class_bit = |side: Side| {
            plan.ports[side.index()]
                .classes
                .iter()
                .map(|c| c.budget.map_or(0, |k| 1u32 << k))
                .collect()
        };
        Budgets {
            meter: Meter::new(&plan.budgets),
            due: 0,
            always,
            class_bit: [class_bit(Side::Lan), class_bit(Side::Wan)],
            drops,
            policed,
            police,
        }
    }

    /// What budgets do to a frame of `mask` leaving on `egress` (`wire_bytes` long) at `now`:
    /// `true` when it must be dropped.
    fn refuses(&mut self, mask: u32, egress: Side, wire_bytes: u64, now: Nanos) -> bool {
        let spent = mask & self.meter.exhausted();
        if spent & self.drops != 0 {
            return true;
        }
        let mut rest = spent & self.policed;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if let Some(Some(b)) = self.police[egress.index()].get_mut(i) {
                b.refill(now);
                if b.take_if_available(wire_bytes) == Conform::Exceeds {
                    return true;
                }
            }
        }
        false
    }
}

impl<T: Copy> Pipeline<T> {
    /// Build every table at once; `now` starts the token buckets. `mtu` is the links' MTU,
    /// used only to recognise super-frames that came without offload state.
    pub fn new(plan: Arc<Plan>, mtu: u32, now: Nanos) -> Pipeline<T> {
        let scheduled = has_schedule(&plan);
        let mut classifier = plan.classifier();
        classifier.set_clock(plan.timezone.clone(), 0);
        let ledger = Arc::new(Ledger::new(
            &plan.budgets,
            plan.timezone.clone(),
            Vec::new(),
        ));
        let budgets = (!plan.budgets.is_empty()).then(|| Budgets::new(&plan, now));
        Pipeline {
            last: None,
            local_minute: None,
            ledger,
            budgets,
            classifier,
            schedule_due: if scheduled { 0 } else { Nanos::MAX },
            wall_offset: 0,
            ports: [
                PortScheduler::new(plan.ports[0].spec.clone(), now),
                PortScheduler::new(plan.ports[1].spec.clone(), now),
            ],
            plan,
            mtu,
            gso_split: GsoSplit::default(),
            received: [0; 2],
        }
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Draw both ports' rates from `registry`, shared with the other workers' pipelines (`weir
    /// run --workers N`), from `now` on (before the first frame).
    pub fn share_rates(
        &mut self,
        registry: &Arc<crate::sched::shared_rate::RateRegistry>,
        now: Nanos,
    ) {
        for port in &mut self.ports {
            port.share_rates(registry, now);
        }
    }

    /// This pipeline's time 0 is `wall` nanoseconds after the Unix epoch (the live bridge's
    /// monotonic clock); replay's time is capture time, already wall-clock (0, the default).
    /// The live driver calls it again when the system clock has stepped (the schedules and
    /// `time` tests are then looked at again at once).
    pub fn set_wall_clock(&mut self, wall: i128) {
        self.wall_offset = wall;
        if self.schedule_due != Nanos::MAX {
            self.schedule_due = 0;
        }
        self.classifier.set_clock(self.plan.timezone.clone(), wall);
    }

    /// The wall-clock time of this pipeline's 0 (see [`set_wall_clock`](Self::set_wall_clock)).
    pub fn wall_clock(&self) -> i128 {
        self.wall_offset
    }

    /// Share `ledger` (the live bridge's, kept across reloads and by the store) instead of
    /// this pipeline's own, from `now`; its budgets must be the plan's ([`Ledger::replan`]).
    /// A budget the ledger says is used up caps its traffic at once.
    pub fn set_ledger(&mut self, ledger: Arc<Ledger>, now: Nanos) {
        self.ledger = ledger;
        self.follow_budgets(now, true);
    }

    /// The budgets' counts (as of this pipeline's last sync; [`sync_budgets`](Self::sync_budgets)).
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Look at the local time when a new minute has begun (a comparison per call otherwise),
    /// and give the classes the rates their schedules give for it.
    fn follow_schedule(&mut self, now: Nanos) {
        if now < self.schedule_due {
            return;
        }
        let wall = i128::from(now) + self.wall_offset;
        let Some((day, minute, next)) = crate::schedule::local_minute(&self.plan.timezone, wall)
        else {
            self.schedule_due = Nanos::MAX;
            return;
        };
        let next = next - self.wall_offset;
        self.schedule_due = u64::try_from(next.max(i128::from(now) + 1)).unwrap_or(Nanos::MAX);
        self.local_minute = Some((day, minute));
        self.apply_rates(now);
    }

    /// Sync the budgets' counts with the ledger when it is due (every
    /// [`SYNC_EVERY`], and at the end of a budget's period) or `now_anyway`; the classes
    /// follow a budget that ran out or was given back.
    fn follow_budgets(&mut self, now: Nanos, now_anyway: bool) {
        let Some(b) = &mut self.budgets else { return };
        if now < b.due && !now_anyway {
            return;
        }
        let wall = i128::from(now) + self.wall_offset;
        let before = b.meter.exhausted();
        self.ledger.sync(&mut b.meter, wall);
        let end = b.meter.next_end() - self.wall_offset;
        let end = u64::try_from(end.max(i128::from(now) + 1)).unwrap_or(Nanos::MAX);
        b.due = end.min(now.saturating_add(SYNC_EVERY));
        if b.meter.exhausted() != before || now_anyway {
            self.apply_rates(now);
        }
    }

    /// Give the pipeline's budget counts to the ledger now (a driver that stops, or reports).
    pub fn sync_budgets(&mut self, now: Nanos) {
        self.follow_budgets(now, true);
    }

    /// Each class's rate and ceil: its own, or its schedule's for the local minute; lowered
    /// to a used-up budget's ceil (a class's budget: the class; the whole link's: the link,
    /// with every class's rate scaled down alike). A class whose rates change keeps its
    /// queued frames, tokens and counters (as at a reload). Allocates when they change.
    fn apply_rates(&mut self, now: Nanos) {
        let exhausted = self.budgets.as_ref().map_or(0, |b| b.meter.exhausted());
        for side in Side::BOTH {
            let port = &self.plan.ports[side.index()];
            let current = self.ports[side.index()].spec();
            let mut spec = port.spec.clone();
            for (i, c) in port.classes.iter().enumerate() {
                let found = self.local_minute.and_then(|(day, minute)| {
                    c.schedule.iter().find(|s| s.window.contains(day, minute))
                });
                if let Some(s) = found {
                    spec.classes[i].rate_bps = s.rate_bps;
                    spec.classes[i].ceil_bps = s.ceil_bps;
                }
                let capped = c.budget.filter(|&k| exhausted & (1 << k) != 0);
                if let Some(Then::Ceil(bps)) =
                    capped.map(|k| self.plan.budgets[usize::from(k)].then)
                {
                    let cap = bps[side.index()];
                    let cs = &mut spec.classes[i];
                    (cs.rate_bps, cs.ceil_bps) = (cs.rate_bps.min(cap), cs.ceil_bps.min(cap));
                }
            }
            for (k, b) in self.plan.budgets.iter().enumerate() {
                let (Target::All, Then::Ceil(bps)) = (&b.target, b.then) else {
                    continue;
                };
                let cap = bps[side.index()];
                if exhausted & (1 << k) == 0 || cap >= spec.rate_bps {
                    continue;
                }
                for cs in &mut spec.classes {
                    let scaled =
                        u128::from(cs.rate_bps) * u128::from(cap) / u128::from(spec.rate_bps);
                    cs.rate_bps = u64::try_from(scaled).unwrap_or(cap).max(1);
                    cs.ceil_bps = cs.ceil_bps.min(cap).max(cs.rate_bps);
                }
                spec.rate_bps = cap;
            }
            let same = spec.rate_bps == current.rate_bps
                && spec
                    .classes
                    .iter()
                    .zip(&current.classes)
                    .all(|(a, b)| (a.rate_bps, a.ceil_bps) == (b.rate_bps, b.ceil_bps));
            if same {
                continue;
            }
            let keep = vec![false; spec.classes.len()];
            // Same class names: every queued frame stays where it is.
            let orphans = self.ports[side.index()].reconfigure(spec, &keep, now);
            debug_assert!(orphans.is_empty());
        }
    }

    /// The verdict on the last frame received.
    pub fn last_verdict(&self) -> Option<LastVerdict> {
        self.last
    }

    /// The scheduler of egress port `side` (for its counters).
    pub fn port(&self, side: Side) -> &PortScheduler<T> {
        &self.ports[side.index()]
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// For the driver's side of the classifier: owners' questions and answers.
    pub fn classifier_mut(&mut self) -> &mut Classifier {
        &mut self.classifier
    }

    /// Keep every flow's server name and frame counts (see [`Classifier::keep_names`]).
    pub fn keep_flow_names(&mut self) {
        self.classifier.keep_names();
    }

    pub fn classifier_stats(&self) -> ClassifierStats {
        self.classifier.stats()
    }

    pub fn gso_split(&self) -> GsoSplit {
        self.gso_split
    }

    /// Frames received per ingress port, `[lan, wan]`.
    pub fn received(&self) -> [u64; 2] {
        self.received
    }

    pub fn queued_frames(&self) -> u64 {
        self.ports.iter().map(PortScheduler::queued_frames).sum()
    }

    /// A frame arriving on `ingress` at `now`: classified, kept, queued on the other port, or
    /// dropped with its reason (it is counted in its class either way).
    pub fn receive<S: FrameStore<Item = T>>(
        &mut self,
        ingress: Side,
        rx: &mut S::Rx<'_>,
        info: RxInfo,
        now: Nanos,
        store: &mut S,
    ) {
        let len = info.len.min(rx.as_ref().len());
        let view = wire::parse(&rx.as_ref()[..len]);
        self.receive_parsed(ingress, &view, rx, info, now, store);
    }

    /// [`receive`](Self::receive) for a driver that has parsed the frame already (replay reads
    /// its addresses to decide the ingress port). `view` must be `wire::parse` of the frame.
    pub fn receive_parsed<S: FrameStore<Item = T>>(
        &mut self,
        ingress: Side,
        view: &FrameView,
        rx: &mut S::Rx<'_>,
        info: RxInfo,
        now: Nanos,
        store: &mut S,
    ) {
        self.follow_schedule(now);
        self.follow_budgets(now, false);
        let egress = ingress.other();
        let e = egress.index();
        let len = info.len.min(rx.as_ref().len());
        let sched = &self.ports[e];
        let verdict = self.classifier.classify_frame_in_order(
            view,
            &rx.as_ref()[..len],
            egress,
            now,
            |class, hash| sched.may_hold(class, hash),
        );
        let class = verdict.class;
        self.last = Some(LastVerdict {
            egress,
            class,
            watched: verdict.watched,
        });
        let bytes = info.wire_len.max(len as u32);
        let vnet = match info.offload {
            Offload::Truncated => None,
            _ if len < 14 => None,
            Offload::Known(v) => Some(v),
            Offload::Unknown => Some(VnetHdr::infer(
                view,
                &rx.as_ref()[..len],
                bytes as usize,
                self.mtu,
            )),
        };
        let Some(vnet) = vnet else {
            self.received[ingress.index()] += 1;
            self.ports[e].reject(class, bytes, DropReason::Malformed);
            return;
        };
        let overhead = u64::from(self.plan.ports[e].overhead);
        let (segments, seg_bytes) = vnet.wire_segments(bytes as usize);
        if let Some(b) = &mut self.budgets {
            let class_bit = b.class_bit[e].get(usize::from(class)).copied().unwrap_or(0);
            let mask = verdict.watched | b.always | class_bit;
            if mask != 0 {
                let wall = i128::from(now) + self.wall_offset;
                let ran_out = b.meter.count(mask, seg_bytes, wall);
                let refused = b.refuses(
                    mask,
                    egress,
                    seg_bytes + u64::from(segments) * overhead,
                    now,
                );
                if ran_out {
                    self.apply_rates(now);
                }
                if refused {
                    self.received[ingress.index()] += 1;
                    self.ports[e].reject(class, bytes, DropReason::Budget);
                    return;
                }
            }
        }
        let port = &self.plan.ports[e];
        let spec = &port.spec.classes[usize::from(class).min(port.spec.classes.len() - 1)];
        let set_dscp = port
            .classes
            .get(usize::from(class))
            .and_then(|c| c.set_dscp);
        let meta = |bytes: u32, wire_bytes: u64| FrameMeta {
            class,
            bytes,
            wire_bytes: u32::try_from(wire_bytes).unwrap_or(u32::MAX),
            fairness_hash: verdict.fairness_hash,
            host_hash: verdict.host_hash,
            // ECT(0), ECT(1), or CE already: the sender's transport understands marks.
            ect: view.is_ip() && view.ecn != 0,
        };

        if vnet.is_gso() && spec.ceil_bps.min(port.spec.rate_bps) < SPLIT_GSO_BELOW_BPS {
            let mut kept = [None; MAX_CUT_SEGMENTS];
            if let Some(n) = cut(&rx.as_ref()[..len], &vnet, store, &mut kept) {
                self.gso_split.super_frames += 1;
                self.gso_split.segments += n as u64;
                self.received[ingress.index()] += n as u64;
                for (item, seg_len) in kept.into_iter().take(n).flatten() {
                    if let (Some(frame), Some(dscp)) = (store.frame_mut(item), set_dscp) {
                        wire::set_dscp(frame, view, dscp);
                    }
                    let m = meta(seg_len, u64::from(seg_len) + overhead);
                    self.enqueue(egress, item, m, now, store);
                }
                return;
            }
        }

        self.received[ingress.index()] += 1;
        let wire_bytes = seg_bytes + u64::from(segments) * overhead;
        let Some(item) = store.keep(rx, len, vnet) else {
            self.ports[e].reject(class, bytes, DropReason::NoBuffer);
            return;
        };
        if let (Some(frame), Some(dscp)) = (store.frame_mut(item), set_dscp) {
            wire::set_dscp(frame, view, dscp);
        }
        self.enqueue(egress, item, meta(bytes, wire_bytes), now, store);
    }

    fn enqueue<S: FrameStore<Item = T>>(
        &mut self,
        egress: Side,
        item: T,
        meta: FrameMeta,
        now: Nanos,
        store: &mut S,
    ) {
        let queued = self.ports[egress.index()]
            .enqueue(item, meta, now, &mut |d: Dropped<T>| store.release(d.item));
        if let Enqueued::Dropped(item, _) = queued {
            store.release(item);
        }
    }

    /// The next frame port `port` sends at `now`, if one is due, with CE set when the AQM
    /// marked it. Frames AQM drops on the way are released to `store`.
    pub fn depart<S: FrameStore<Item = T>>(
        &mut self,
        port: Side,
        now: Nanos,
        store: &mut S,
    ) -> Option<Departure<T>> {
        self.follow_schedule(now);
        self.follow_budgets(now, false);
        let d =
            self.ports[port.index()].dequeue(now, &mut |d: Dropped<T>| store.release(d.item))?;
        if d.ce {
            if let Some(frame) = store.frame_mut(d.item) {
                let view = wire::parse(frame);
                wire::set_ce(frame, &view);
            }
        }
        Some(d)
    }

    /// When a port will next have a frame to send; `None` when nothing is queued.
    pub fn next_wakeup(&self) -> Option<Nanos> {
        self.ports
            .iter()
            .filter_map(PortScheduler::next_wakeup)
            .min()
    }

    /// A departed frame the device refused (`tx_error`) or could not send because its link
    /// was down (`link_down`): counted as dropped, not forwarded.
    pub fn record_tx_failure(
        &mut self,
        port: Side,
        class: ClassId,
        reason: DropReason,
        bytes: u32,
        wire_bytes: u32,
    ) {
        self.ports[port.index()].record_tx_failure(class, reason, bytes, wire_bytes);
    }

    /// Drop everything still queued, counting each frame with `reason`.
    pub fn drain<S: FrameStore<Item = T>>(&mut self, reason: DropReason, store: &mut S) {
        for port in &mut self.ports {
            port.drain(reason, &mut |d: Dropped<T>| store.release(d.item));
        }
    }

    /// Per-class results of the ports in `sides` (upload, wan, first: it is what users
    /// usually shape), with rates averaged over `span_ns`, and their totals.
    /// [`class_reports`](Self::class_reports) of port `side` summed over the pipelines of
    /// several workers (the first one's plan names the classes; a pipeline on another plan,
    /// which cannot be after the same reloads, is left out). Allocates (end of run).
    pub fn merged_class_reports(
        pipelines: &[&Pipeline<T>],
        side: Side,
        span_ns: u64,
    ) -> (Vec<ClassReport>, Totals) {
        let Some(first) = pipelines.first() else {
            return (Vec::new(), Totals::default());
        };
        let sched = &first.ports[side.index()];
        let plan = &first.plan.ports[side.index()];
        let same: Vec<&PortScheduler<T>> = pipelines
            .iter()
            .map(|p| &p.ports[side.index()])
            .filter(|s| s.spec() == sched.spec())
            .collect();
        let mut classes = Vec::new();
        let mut totals = Totals::default();
        for (i, spec) in sched.spec().classes.iter().enumerate() {
            let mut st = ClassStats::default();
            for s in &same {
                if let Some(c) = s.class_stats(i as ClassId) {
                    st.absorb(c);
                }
            }
            totals.add(&st);
            classes.push(ClassReport::new(side, &plan.classes[i], spec, &st, span_ns));
        }
        let mut retired = ClassStats::default();
        for s in &same {
            retired.absorb(s.retired());
        }
        if retired.received_frames > 0 {
            totals.add(&retired);
            classes.push(ClassReport::removed(side, &retired, span_ns));
        }
        (classes, totals)
    }

    pub fn class_reports(&self, sides: &[Side], span_ns: u64) -> (Vec<ClassReport>, Totals) {
        let mut classes = Vec::new();
        let mut totals = Totals::default();
        for &side in sides {
            let sched = &self.ports[side.index()];
            let plan = &self.plan.ports[side.index()];
            for (i, spec) in sched.spec().classes.iter().enumerate() {
                let Some(st) = sched.class_stats(i as ClassId) else {
                    continue;
                };
                totals.add(st);
                classes.push(ClassReport::new(side, &plan.classes[i], spec, st, span_ns));
            }
            let retired = sched.retired();
            if retired.received_frames > 0 {
                totals.add(retired);
                classes.push(ClassReport::removed(side, retired, span_ns));
            }
        }
        (classes, totals)
    }
}

/// What a reload did with the frames queued at the time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadCounts {
    /// Frames that stayed queued in a class of the same name.
    pub kept: u64,
    /// Frames of classes that are gone, queued again in their flow's new class.
    pub moved: u64,
    /// Frames of classes that are gone that found no room in their flow's new class (or whose
    /// bytes the store does not keep), dropped as `reload`.
    pub dropped: u64,
}

impl<T: Copy> Pipeline<T> {
    /// Swap in `plan` at `now`, losing nothing: classes that keep their name keep their queued
    /// frames, token-bucket state and counters, and take the new rates from the next
    /// departure; flows are classified again on their next frame (and list no class until
    /// then); the frames queued in a class
    /// that is gone are classified again under the new rules and queued, with their original
    /// enqueue time, in their new class (counted there as received, and no longer in the old
    /// one), or dropped as `reload` when it has no room. The counters of removed classes are
    /// kept, summed, as the port's `(removed)` row. Allocates (reload only).
    pub fn reload<S: FrameStore<Item = T>>(
        &mut self,
        plan: Arc<Plan>,
        now: Nanos,
        store: &mut S,
    ) -> ReloadCounts {
        let mut orphans = [Vec::new(), Vec::new()];
        for side in Side::BOTH {
            let (old, new) = (&self.plan.ports[side.index()], &plan.ports[side.index()]);
            let rehash: Vec<bool> = new
                .classes
                .iter()
                .map(|c| {
                    old.classes
                        .iter()
                        .find(|o| o.name == c.name)
                        .is_some_and(|o| o.fairness != c.fairness)
                })
                .collect();
            orphans[side.index()] =
                self.ports[side.index()].reconfigure(new.spec.clone(), &rehash, now);
        }
        let mut counts = ReloadCounts {
            kept: self.queued_frames(),
            ..ReloadCounts::default()
        };
        self.classifier.replace_rules(plan.port_rules());
        self.classifier.set_payload_frames(plan.payload_frames);
        self.classifier
            .set_clock(plan.timezone.clone(), self.wall_offset);
        // The new plan's schedules apply from now (its spec holds the classes' own rates).
        self.schedule_due = if has_schedule(&plan) { now } else { Nanos::MAX };
        self.local_minute = None;
        // The driver replanned the ledger for it: counts of the same name go on, those
        // counted here since the last sync included.
        if let Some(b) = &mut self.budgets {
            self.ledger
                .sync(&mut b.meter, i128::from(now) + self.wall_offset);
        }
        self.budgets = (!plan.budgets.is_empty()).then(|| Budgets::new(&plan, now));
        self.plan = plan;
        self.follow_budgets(now, true);
        for side in Side::BOTH {
            let default_class = self.classifier.port_rules(side).default_class;
            for orphan in std::mem::take(&mut orphans[side.index()]) {
                let verdict = store
                    .frame(orphan.item)
                    .map(wire::parse)
                    .map(|view| self.classifier.classify_again(&view, side, now));
                let (class, hash, host) = verdict.map_or((default_class, 0, 0), |v| {
                    (v.class, v.fairness_hash, v.host_hash)
                });
                let placed = match verdict {
                    Some(_) => self.ports[side.index()].requeue(class, orphan, hash, host),
                    None => {
                        // No bytes to classify by (a store that keeps none): counted in the
                        // default class and dropped.
                        self.ports[side.index()].reject(class, orphan.bytes, DropReason::Reload);
                        Err(orphan.item)
                    }
                };
                match placed {
                    Ok(()) => counts.moved += 1,
                    Err(item) => {
                        store.release(item);
                        counts.dropped += 1;
                    }
                }
            }
        }
        counts
    }
}

fn has_schedule(plan: &Plan) -> bool {
    plan.ports
        .iter()
        .any(|p| p.classes.iter().any(|c| !c.schedule.is_empty()))
}

/// Cut the super-frame `frame` into its segments, each kept in `store`, into `kept` with its
/// length. All or
/// nothing: `None`, with nothing kept, when the frame cannot be cut (not TCP, headers that do
/// not add up, a capture that holds only its headers), has more than [`MAX_CUT_SEGMENTS`]
/// segments, or the store runs out of buffers; the caller then sends it whole.
fn cut<S: FrameStore>(
    frame: &[u8],
    vnet: &VnetHdr,
    store: &mut S,
    kept: &mut [Option<(S::Item, u32)>; MAX_CUT_SEGMENTS],
) -> Option<usize> {
    let seg = vnet.segmenter(frame).ok()?;
    let count = seg.count();
    if count > MAX_CUT_SEGMENTS {
        return None;
    }
    let hdr = VnetHdr::from(seg.checksum());
    for i in 0..count {
        let len = seg.segment_len(i).and_then(|l| u32::try_from(l).ok());
        match (store.keep_segment(&seg, i, hdr), len) {
            (Some(item), Some(len)) => kept[i] = Some((item, len)),
            (item, _) => {
                let taken = kept.iter_mut().take(i).filter_map(Option::take);
                for item in item.into_iter().chain(taken.map(|(item, _)| item)) {
                    store.release(item);
                }
                return None;
            }
        }
    }
    Some(count)
}
