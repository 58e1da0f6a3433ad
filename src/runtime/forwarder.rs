//! One forwarding thread: its ingresses, the [`Pipeline`], its frame buffers and the devices
//! it sends on. [`Forwarder::poll`] is one turn at a given time; [`Forwarder::run`] is the
//! thread's loop around it on the real clock.
//!
//! A turn receives one batch from each ingress (the frames of a batch all arrive at `now`),
//! hands each frame to the pipeline, then sends everything the pipeline says is due at `now`,
//! port by port, in batches. Tests drive `poll` on a manual clock; the replay driver makes the
//! same calls in the same order (arrivals of an instant, then its departures), so both count
//! the same.
//!
//! Thread contract: a `Forwarder` is owned by one thread; it shares nothing with another
//! forwarder (per-direction layout) except the stop flag and the published kernel drop
//! counters.

use super::frames::LiveFrames;
use super::owners::{Answer, Question};
use super::pool::Pool;
use super::published::{
    by_activity, class_name, Explained, FlowEntry, Published, Publisher, ReloadOutcome, Request,
};
use super::{Options, RunError, KERNEL_DROPS_EVERY};
use crate::classify::flow::FlowEnds;
use crate::config::Plan;
use crate::io::{Device, Link, RxMeta, TxFrame, BATCH, MAX_FRAME};
use crate::pipeline::{Offload, Pipeline, RxInfo, MAX_CUT_SEGMENTS};
use crate::port::{ClassId, Side};
use crate::sched::stats::DropReason;
use crate::time::{Clock, Nanos, SystemClock};
use crate::wire::{self, VnetHdr};
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a refused send is retried before its frames are counted as `tx_error`.
const TX_RETRIES: usize = 64;

/// The receive side of one port: its device and the buffers it receives into.
pub(crate) struct Ingress {
    side: Side,
    dev: Box<dyn Device>,
    /// Whether frames come with their offload state (else a super-frame is recognised by
    /// its length: see [`crate::wire::VnetHdr::infer`]).
    offloads: bool,
    /// Receive buffers: large buffers lent by the pool, given back when the forwarder ends.
    scratch: Vec<Box<[u8]>>,
    meta: Vec<RxMeta>,
    /// When the kernel drop counter is read next while frames arrive.
    kernel_drops_due: Nanos,
    /// Receiving has stopped and the counter had its last read.
    stopped: bool,
    /// 1 for a port's express socket, 0 for its own: its kernel drop counter's slot.
    lane: usize,
}

impl Ingress {
    pub(crate) fn new(side: Side, dev: Box<dyn Device>) -> Ingress {
        Ingress {
            side,
            offloads: dev.offloads(),
            dev,
            scratch: Vec::new(),
            meta: vec![RxMeta::default(); BATCH],
            kernel_drops_due: 0,
            stopped: false,
            lane: 0,
        }
    }

    /// A port's express socket (crate::runtime::express).
    pub(crate) fn express(side: Side, dev: Box<dyn Device>) -> Ingress {
        Ingress {
            lane: 1,
            ..Ingress::new(side, dev)
        }
    }

    fn error(&self, source: std::io::Error) -> RunError {
        RunError::Receive {
            port: self.side.name().to_string(),
            source,
        }
    }
}

/// How often a forwarding thread checks that the wall clock has not stepped (one system
/// call; a step of more than a second is followed).
const WALL_CLOCK_EVERY: Nanos = 10_000_000_000;

/// A port's link, as the forwarder has seen it: down since when, and the frames it could not
/// send since.
#[derive(Default)]
struct LinkWatch {
    down_since: Option<Instant>,
    unsent: u64,
}

/// How often each port's link is looked at (two ioctls): a link that loses carrier gives no
/// error (frames sent to it are lost in silence), and one that comes back says nothing either.
const LINK_CHECK_EVERY: Nanos = 100_000_000;

/// Errors that mean the interface went down or away, not that the device is broken.
fn is_link_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV)
    )
}

/// The wall-clock time (ns since the Unix epoch) of the monotonic clock's 0, given its `now`.
fn wall_clock_origin(now: Nanos) -> i128 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    wall - i128::from(now)
}

/// `weir explain` of a running bridge: the flow, until when to wait, where to answer.
struct Watch {
    ends: FlowEnds,
    until: Nanos,
    reply: Sender<Option<Explained>>,
}

pub(crate) struct Forwarder {
    pipeline: Pipeline<u32>,
    frames: LiveFrames,
    ingresses: Vec<Ingress>,
    /// The devices this forwarder sends on, by egress side.
    egress: [Option<Box<dyn Device>>; 2],
    shared: Arc<Published>,
    publisher: Publisher,
    /// Requests from the control plane, looked at once per turn.
    requests: Receiver<Request>,
    /// A flow whose next frame the control plane wants explained.
    watch: Option<Watch>,
    /// Where new flows' owners are asked for, and the answers come (when rules test owners).
    owners: Option<(Sender<Question>, Receiver<Answer>)>,
    index: usize,
    /// The plan generation running (0 at start, +1 per reload).
    generation: u64,
    /// When to compare the wall clock with the monotonic one again.
    wall_checked_at: Nanos,
    opts: Options,
    stop: Arc<AtomicBool>,
    /// The first device error; the bridge then stops, drains and still reports.
    fatal: Option<RunError>,
    /// Each port's link, by side: a link that goes down is waited for, not fatal.
    links: [LinkWatch; 2],
    /// When the links are looked at next.
    links_checked_at: Nanos,
}

/// The queue positions of the ports in `egress` under `plan`.
fn queue_slots(plan: &Plan, egress: &[Option<Box<dyn Device>>; 2]) -> usize {
    Side::BOTH
        .iter()
        .filter(|s| egress[s.index()].is_some())
        .flat_map(|s| plan.ports[s.index()].spec.classes.iter())
        .map(|c| c.limit_packets as usize)
        .sum()
}

/// What a forwarder leaves when it ends: its pipeline (the counters of the ports it sent on),
/// the first device error, and the buffers not given back (must be none).
pub(crate) struct Finished {
    pub pipeline: Pipeline<u32>,
    pub egress_sides: Vec<Side>,
    pub fatal: Option<RunError>,
    pub buffers_outstanding: usize,
}

impl Forwarder {
    /// A forwarder receiving on `ingresses` and sending on `egress`, with every buffer it
    /// will use: a slot and a small buffer for every queue position of the ports it sends on,
    /// a batch and a cut super-frame more; `opts.large_buffers` large buffers per port it sends
    /// on, and a batch of receive buffers per ingress.
    /// `index` is this thread's entry in `shared.forwarders`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        plan: Arc<Plan>,
        mut ingresses: Vec<Ingress>,
        egress: [Option<Box<dyn Device>>; 2],
        shared: Arc<Published>,
        index: usize,
        requests: Receiver<Request>,
        owners: Option<(Sender<Question>, Receiver<Answer>)>,
        opts: &Options,
        stop: Arc<AtomicBool>,
        now: Nanos,
        rates: Option<Arc<crate::sched::shared_rate::RateRegistry>>,
    ) -> Forwarder {
        let ports_out = egress.iter().flatten().count();
        let slots = queue_slots(&plan, &egress) + BATCH + MAX_CUT_SEGMENTS;
        let mut pool = Pool::new(
            slots,
            opts.large_buffers * ports_out + BATCH * ingresses.len(),
            MAX_FRAME,
        );
        for ingress in &mut ingresses {
            ingress.scratch = (0..BATCH).map_while(|_| pool.take_large()).collect();
            ingress.kernel_drops_due = now.saturating_add(KERNEL_DROPS_EVERY);
        }
        let publisher = Publisher::new(Arc::clone(&shared), index, &plan);
        let mut pipeline = Pipeline::new(plan, opts.mtu, now);
        if let Some(rates) = &rates {
            pipeline.share_rates(rates, now);
        }
        // Schedules, budgets and `time` tests go by the wall clock: the monotonic clock's 0
        // on it.
        pipeline.set_wall_clock(wall_clock_origin(now));
        // Budgets count across threads and restarts in the bridge's one ledger.
        pipeline.set_ledger(Arc::clone(&shared.ledger), now);
        if owners.is_some() {
            pipeline.classifier_mut().ask_owners();
        }
        Forwarder {
            publisher,
            pipeline,
            frames: LiveFrames::new(slots, pool),
            ingresses,
            egress,
            shared,
            requests,
            watch: None,
            owners,
            index,
            generation: 0,
            wall_checked_at: now.saturating_add(WALL_CLOCK_EVERY),
            opts: opts.clone(),
            stop,
            fatal: None,
            links: Default::default(),
            links_checked_at: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn pipeline(&self) -> &Pipeline<u32> {
        &self.pipeline
    }

    /// One turn at `now`: receive a batch from each ingress, then send what is due. Returns
    /// the frames received. A link that goes down is waited for; any other device error stops
    /// the bridge (the stop flag is set) ([`Forwarder::device_error`]).
    pub(crate) fn poll(&mut self, now: Nanos) -> usize {
        let mut got = 0;
        for i in 0..self.ingresses.len() {
            let ingress = &mut self.ingresses[i];
            if ingress.stopped {
                continue;
            }
            let side = ingress.side;
            let n = match ingress
                .dev
                .recv_batch(&mut ingress.scratch, &mut ingress.meta)
            {
                Ok(n) => n,
                Err(e) => {
                    self.device_error(side, true, e);
                    continue;
                }
            };
            if n == 0 {
                continue;
            }
            if self.links[side.index()].down_since.is_some() {
                self.link_back(side);
            }
            let ingress = &mut self.ingresses[i];
            // One comparison per batch; the system call at most once per interval.
            if now >= ingress.kernel_drops_due {
                ingress.kernel_drops_due = now.saturating_add(KERNEL_DROPS_EVERY);
                self.shared.kernel_drops.read(
                    self.index * 2 + ingress.lane,
                    ingress.side,
                    ingress.dev.as_mut(),
                );
            }
            for (buf, m) in ingress.scratch.iter_mut().zip(&ingress.meta).take(n) {
                let info = RxInfo {
                    len: m.len,
                    wire_len: u32::try_from(m.len).unwrap_or(u32::MAX),
                    offload: match (m.truncated, ingress.offloads) {
                        (true, _) => Offload::Truncated,
                        (false, true) => Offload::Known(m.vnet),
                        (false, false) => Offload::Unknown,
                    },
                };
                let mut rx = buf;
                let Some(w) = &self.watch else {
                    self.pipeline
                        .receive(ingress.side, &mut rx, info, now, &mut self.frames);
                    continue;
                };
                // A flow is being explained: one more parse per frame until its frame comes.
                let len = m.len.min(rx.len());
                let view = wire::parse(&rx[..len]);
                let copy = w.ends.matches(&view).then(|| rx[..len].to_vec());
                self.pipeline.receive_parsed(
                    ingress.side,
                    &view,
                    &mut rx,
                    info,
                    now,
                    &mut self.frames,
                );
                let Some(data) = copy else { continue };
                if let Some(w) = self.watch.take() {
                    let egress = ingress.side.other();
                    let view = wire::parse(&data);
                    let plan = self.pipeline.plan();
                    let _ = w.reply.try_send(Some(Explained {
                        frame: view.brief(),
                        len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                        egress,
                        class_names: plan.ports[egress.index()]
                            .classes
                            .iter()
                            .map(|c| c.name.clone())
                            .collect(),
                        explanation: self.pipeline.classifier().explain(&view, egress),
                    }));
                }
            }
            got += n;
        }
        if let Some((ask, _)) = &self.owners {
            let from = self.index;
            self.pipeline
                .classifier_mut()
                .take_owner_questions(|key| ask.try_send(Question { key, from }).is_ok());
        }
        self.service(now);
        got
    }

    /// Between turns: publish the counters when due and answer the control plane's requests.
    /// A few comparisons and atomic reads when there is nothing to do.
    pub(crate) fn housekeeping(&mut self, now: Nanos) {
        if now >= self.links_checked_at {
            self.links_checked_at = now.saturating_add(LINK_CHECK_EVERY);
            self.check_links();
        }
        if now >= self.wall_checked_at {
            // A step of the system clock (NTP at boot, an operator) moves the schedules too.
            self.wall_checked_at = now.saturating_add(WALL_CLOCK_EVERY);
            let wall = wall_clock_origin(now);
            if (wall - self.pipeline.wall_clock()).abs() > 1_000_000_000 {
                self.pipeline.set_wall_clock(wall);
            }
        }
        let egress = [self.egress[0].is_some(), self.egress[1].is_some()];
        self.publisher
            .publish(now, &self.pipeline, egress, self.generation);
        while let Ok(request) = self.requests.try_recv() {
            match request {
                Request::Flows { limit, reply } => {
                    let _ = reply.try_send(self.flows(now, limit));
                }
                Request::Reload {
                    plan,
                    generation,
                    reply,
                } => {
                    let _ = reply.try_send(self.reload(plan, generation, now));
                }
                Request::Explain { ends, wait, reply } => {
                    if let Some(old) = self.watch.take() {
                        let _ = old.reply.try_send(None);
                    }
                    self.watch = Some(Watch {
                        ends,
                        until: now.saturating_add(wait),
                        reply,
                    });
                }
            }
        }
        if let Some((_, answers)) = &self.owners {
            while let Ok((key, owner)) = answers.try_recv() {
                self.pipeline
                    .classifier_mut()
                    .learn_owner(&key, owner.as_ref());
            }
        }
        if self.watch.as_ref().is_some_and(|w| now >= w.until) {
            if let Some(w) = self.watch.take() {
                let _ = w.reply.try_send(None);
            }
        }
    }

    /// Every live flow, busiest first, at most `limit` (a whole walk of the flow table: on
    /// request only).
    fn flows(&self, now: Nanos, limit: usize) -> Vec<FlowEntry> {
        let mut flows = Vec::new();
        self.pipeline
            .classifier()
            .for_each_flow(now, |f| flows.push(f));
        flows.sort_by(by_activity);
        flows.truncate(limit);
        let plan = self.pipeline.plan();
        flows
            .into_iter()
            .map(|info| FlowEntry {
                class: Side::BOTH.map(|side| class_name(plan, side, info.class[side.index()])),
                info,
            })
            .collect()
    }

    /// Swap in `plan` between two turns (see [`Pipeline::reload`]); buffers and slots grow when
    /// the new queue limits need more.
    fn reload(&mut self, plan: Arc<Plan>, generation: u64, now: Nanos) -> ReloadOutcome {
        let started = std::time::Instant::now();
        let needed = queue_slots(&plan, &self.egress) + BATCH + MAX_CUT_SEGMENTS;
        if needed > self.frames.slots() {
            let more = needed - self.frames.slots();
            self.frames.grow(more);
            self.frames.pool().grow(more, 0);
        }
        self.publisher.resize(&plan);
        let frames = self
            .pipeline
            .reload(Arc::clone(&plan), now, &mut self.frames);
        self.generation = generation;
        // Publish before answering, so that a status right after the reload shows the new
        // classes.
        let egress = [self.egress[0].is_some(), self.egress[1].is_some()];
        self.publisher
            .publish_final(now, &self.pipeline, egress, generation);
        ReloadOutcome {
            frames,
            swap_ns: started.elapsed().as_nanos() as u64,
        }
    }

    /// Receiving is over: read each ingress's kernel drop counter a last time. Whatever the
    /// kernel drops after this (frames arriving while the queues drain) is not weir falling
    /// behind.
    fn stop_receiving(&mut self) {
        for ingress in &mut self.ingresses {
            if !ingress.stopped {
                ingress.stopped = true;
                self.shared.kernel_drops.read(
                    self.index * 2 + ingress.lane,
                    ingress.side,
                    ingress.dev.as_mut(),
                );
            }
        }
    }

    /// Send everything that is due at `now`, port by port, in batches.
    fn service(&mut self, now: Nanos) {
        for side in Side::BOTH {
            if self.egress[side.index()].is_none() {
                continue;
            }
            loop {
                let mut departures = [(0u32, 0 as ClassId, 0u32, 0u32); BATCH];
                let mut n = 0;
                while n < BATCH {
                    let Some(d) = self.pipeline.depart(side, now, &mut self.frames) else {
                        break;
                    };
                    departures[n] = (d.item, d.class, d.bytes, d.wire_bytes);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                self.transmit(side, &departures[..n]);
                if n < BATCH {
                    break;
                }
            }
        }
    }

    /// Send departed frames on `side`'s device and release their buffers. Frames the device
    /// refuses past the retry budget, or fails on, are counted as `tx_error`.
    fn transmit(&mut self, side: Side, departures: &[(u32, ClassId, u32, u32)]) {
        use crate::pipeline::FrameStore;
        // A link known to be down is not sent to: without carrier the kernel would take the
        // frames and lose them without a word.
        if self.links[side.index()].down_since.is_some() {
            self.fail_from(side, DropReason::LinkDown, departures);
            return;
        }
        let mut sent = 0;
        let mut retries = 0;
        while sent < departures.len() {
            let mut frames = [TxFrame {
                data: &[],
                vnet: VnetHdr::NONE,
            }; BATCH];
            let count = departures.len() - sent;
            for (f, &(slot, ..)) in frames.iter_mut().zip(&departures[sent..]) {
                if let Some((data, vnet)) = self.frames.to_send(slot) {
                    *f = TxFrame { data, vnet };
                }
            }
            let Some(dev) = self.egress[side.index()].as_mut() else {
                return;
            };
            let result = dev.send_batch(&frames[..count]);
            let took = match result {
                Ok(took) => took,
                Err(source) => {
                    // Down or gone: counted as link_down (a link that went down is waited
                    // for); any other error: the device is broken, the bridge stops (the
                    // counters are still reported).
                    self.device_error(side, false, source);
                    let reason = if self.links[side.index()].down_since.is_some() {
                        DropReason::LinkDown
                    } else {
                        DropReason::TxError
                    };
                    self.fail_from(side, reason, &departures[sent..]);
                    return;
                }
            };
            for &(slot, ..) in &departures[sent..sent + took] {
                self.frames.release(slot);
            }
            sent += took;
            if took == 0 {
                retries += 1;
                if retries > TX_RETRIES {
                    // Full past the budget: a link going down can look like this first.
                    if let Some(link) = self.device(side, false).map(|d| d.link()) {
                        self.apply_link(side, link, "it takes no frames");
                    }
                    let reason = if self.links[side.index()].down_since.is_some() {
                        DropReason::LinkDown
                    } else {
                        DropReason::TxError
                    };
                    self.fail_from(side, reason, &departures[sent..]);
                    return;
                }
                std::thread::yield_now();
            }
        }
    }

    fn fail_from(
        &mut self,
        side: Side,
        reason: DropReason,
        departures: &[(u32, ClassId, u32, u32)],
    ) {
        use crate::pipeline::FrameStore;
        if reason == DropReason::LinkDown {
            self.links[side.index()].unsent += departures.len() as u64;
        }
        for &(slot, class, bytes, wire) in departures {
            self.pipeline
                .record_tx_failure(side, class, reason, bytes, wire);
            self.frames.release(slot);
        }
    }

    /// The device of `side` this forwarder receives on (`rx`) or sends on.
    fn device(&mut self, side: Side, rx: bool) -> Option<&mut Box<dyn Device>> {
        if rx {
            self.ingresses
                .iter_mut()
                .find(|i| i.side == side)
                .map(|i| &mut i.dev)
        } else {
            self.egress[side.index()].as_mut()
        }
    }

    /// An error from `side`'s device (receiving when `rx`). An interface that went down is
    /// waited for: the bridge keeps running, frames for it are counted as `link_down` until
    /// it is back. One that is gone, or any other error, stops the bridge.
    fn device_error(&mut self, side: Side, rx: bool, source: std::io::Error) {
        let link = if is_link_error(&source) {
            self.device(side, rx).map(|d| d.link())
        } else {
            None
        };
        match link {
            // Up again already: the next check or frame says so.
            Some(Link::Up) => {
                self.shared.links.set(side, Link::Down);
                self.link_down(side, &source.to_string())
            }
            Some(link) => self.apply_link(side, link, &source.to_string()),
            None if rx => self.fail(RunError::Receive {
                port: side.name().to_string(),
                source,
            }),
            None => self.fail(RunError::Send {
                port: side.name().to_string(),
                source,
            }),
        }
    }

    /// A wait on every ingress failed: a link error is each ingress's link looked at (the
    /// pending error was taken, so which one does not matter); anything else stops the bridge.
    fn wait_error(&mut self, source: std::io::Error) {
        if !is_link_error(&source) {
            let e = self.ingresses[0].error(source);
            self.fail(e);
            return;
        }
        for i in 0..self.ingresses.len() {
            let side = self.ingresses[i].side;
            let link = self.ingresses[i].dev.link();
            if link != Link::Up {
                self.apply_link(side, link, &source.to_string());
            }
        }
    }

    /// The device whose link stands for `side`'s: the one this forwarder sends on, else the
    /// one it receives from.
    fn link_device(&mut self, side: Side) -> Option<&mut Box<dyn Device>> {
        match self.egress[side.index()].as_mut() {
            Some(d) => Some(d),
            None => self
                .ingresses
                .iter_mut()
                .find(|i| i.side == side)
                .map(|i| &mut i.dev),
        }
    }

    /// `side`'s interface name, for messages.
    fn interface(&mut self, side: Side) -> String {
        self.link_device(side)
            .map_or_else(|| side.name().to_string(), |d| d.name().to_string())
    }

    /// Look at the link of every port this forwarder sends on or receives from. Allocates
    /// nothing while the links stay as they were.
    fn check_links(&mut self) {
        for side in Side::BOTH {
            if let Some(link) = self.link_device(side).map(|d| d.link()) {
                self.apply_link(side, link, "");
            }
        }
    }

    /// What `side`'s link was found to be (`why`: the error that made us look, if any).
    fn apply_link(&mut self, side: Side, link: Link, why: &str) {
        self.shared.links.set(side, link);
        let state = match link {
            Link::Up => return self.link_back(side),
            Link::Gone => {
                // Nothing more is sent to it: what is left for it is counted as link_down.
                let watch = &mut self.links[side.index()];
                watch.down_since.get_or_insert_with(Instant::now);
                if self.fatal.is_none() {
                    let interface = self.interface(side);
                    self.fail(RunError::Gone {
                        port: side.name().to_string(),
                        interface,
                    });
                }
                return;
            }
            // Said already.
            _ if self.links[side.index()].down_since.is_some() => return,
            Link::Down => "set down",
            Link::NoCarrier => "no carrier",
        };
        let interface = self.interface(side);
        if why.is_empty() {
            self.link_down(side, &format!("{interface}: {state}"));
        } else {
            self.link_down(side, &format!("{interface}: {state}; {why}"));
        }
    }

    fn fail(&mut self, e: RunError) {
        if self.fatal.is_some() {
            return;
        }
        if let RunError::Gone { port, interface } = &e {
            tracing::warn!("port {port}: interface {interface} disappeared; stopping");
        }
        self.fatal = Some(e);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// `side`'s link went down (`why`): said once, until it is back.
    fn link_down(&mut self, side: Side, why: &str) {
        let watch = &mut self.links[side.index()];
        if watch.down_since.is_none() {
            watch.down_since = Some(Instant::now());
            watch.unsent = 0;
            tracing::warn!(
                "port {}: the link is down ({why}); weir keeps running and counts the frames \
                 it cannot send as link_down until the link is back",
                side.name()
            );
        }
    }

    /// `side` received or sent again after its link was down.
    fn link_back(&mut self, side: Side) {
        let watch = &mut self.links[side.index()];
        if let Some(since) = watch.down_since.take() {
            tracing::info!(
                "port {}: the link is back after {:.1} s; {} frames could not be sent meanwhile",
                side.name(),
                since.elapsed().as_secs_f64(),
                watch.unsent
            );
        }
    }

    /// Count everything still queued as dropped at shutdown.
    fn drop_what_is_left(&mut self) {
        self.pipeline.drain(DropReason::Shutdown, &mut self.frames);
    }

    /// The thread's loop: poll, then wait on every ingress at once until a frame arrives or
    /// the next departure is due. After a stop, receiving ends and the queues get
    /// `opts.shutdown_grace` to drain; the rest is dropped as `shutdown`.
    /// `running` is counted up once this thread has its priority (and has given up its
    /// privileges, when asked).
    pub(crate) fn run(mut self, clock: &SystemClock, running: &AtomicU64) -> Finished {
        crate::io::sys::set_timer_slack_ns(1);
        if !self.opts.cpus.is_empty() {
            let cpu = self.opts.cpus[self.index % self.opts.cpus.len()];
            // `weir run` checked the CPUs at start: a refusal now is the machine changing.
            if let Err(e) = crate::io::sys::pin_thread(cpu) {
                tracing::warn!("a forwarding thread could not be pinned to CPU {cpu}: {e}");
            }
        }
        let mut saturation = super::Saturation::new(self.opts.priority.apply());
        if self.opts.drop_privileges {
            if let Err(e) = crate::io::sys::drop_capabilities() {
                tracing::warn!("a forwarding thread could not give up its capabilities: {e}");
            }
        }
        running.fetch_add(1, Ordering::Release);
        // Wait on every ingress at once when all of them have a descriptor.
        let fds: Option<Vec<std::os::fd::RawFd>> =
            self.ingresses.iter().map(|i| i.dev.poll_fd()).collect();
        let mut draining_since: Option<Instant> = None;
        let mut last_frame = Instant::now();
        loop {
            let now = clock.now();
            saturation.turn(now);
            let got = if draining_since.is_none() {
                self.poll(now)
            } else {
                self.service(now);
                0
            };
            self.housekeeping(now);
            if draining_since.is_none() && self.stop.load(Ordering::Relaxed) {
                draining_since = Some(Instant::now());
                self.stop_receiving();
            }
            if let Some(since) = draining_since {
                if self.pipeline.queued_frames() == 0 || since.elapsed() >= self.opts.shutdown_grace
                {
                    break;
                }
            }
            if got > 0 {
                if !self.opts.busy_poll.is_zero() {
                    last_frame = Instant::now();
                }
                continue;
            }
            if draining_since.is_none()
                && !self.opts.busy_poll.is_zero()
                && last_frame.elapsed() < self.opts.busy_poll
            {
                std::hint::spin_loop();
                continue;
            }
            // Nothing came in: wait for a frame on either port or the next departure, at most
            // 100 ms so that a stop is seen.
            let wait = self
                .pipeline
                .next_wakeup()
                .map_or(Duration::from_millis(100), |t| {
                    Duration::from_nanos(t.saturating_sub(clock.now()))
                })
                .min(Duration::from_millis(100));
            if wait < self.opts.spin_below {
                continue;
            }
            saturation.waiting();
            match &fds {
                Some(fds) if draining_since.is_none() => {
                    if let Err(e) = crate::io::sys::wait_any_readable(fds, wait) {
                        self.wait_error(e);
                    }
                }
                _ if draining_since.is_none() && self.ingresses.len() == 1 => {
                    if let Err(e) = self.ingresses[0].dev.wait_readable(wait) {
                        self.wait_error(e);
                    }
                }
                _ => std::thread::sleep(wait.min(Duration::from_millis(1))),
            }
        }
        if saturation.demotions > 0 {
            tracing::info!(
                "a forwarding thread saturated its CPU and left real-time priority for nice {} \
                 (docs/architecture.md, Saturation)",
                super::SATURATED_NICE
            );
        }
        self.drop_what_is_left();
        self.finish(clock.now())
    }

    /// Give the receive buffers back and hand over the counters, published a last time at
    /// `now`.
    pub(crate) fn finish(mut self, now: Nanos) -> Finished {
        self.stop_receiving();
        // What was counted since the last sync reaches the ledger before it is stored.
        self.pipeline.sync_budgets(now);
        let egress = [self.egress[0].is_some(), self.egress[1].is_some()];
        self.publisher
            .publish_final(now, &self.pipeline, egress, self.generation);
        for ingress in &mut self.ingresses {
            for buf in ingress.scratch.drain(..) {
                self.frames.pool().give_back(buf);
            }
        }
        let (buffers, slots) = self.frames.outstanding();
        Finished {
            egress_sides: Side::BOTH
                .into_iter()
                .filter(|s| self.egress[s.index()].is_some())
                .collect(),
            pipeline: self.pipeline,
            fatal: self.fatal,
            buffers_outstanding: buffers + slots,
        }
    }
}
