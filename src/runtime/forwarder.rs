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
use crate::io::{Device, RxMeta, TxFrame, BATCH, MAX_FRAME};
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
        }
    }

    #[cfg(test)]
    pub(crate) fn pipeline(&self) -> &Pipeline<u32> {
        &self.pipeline
    }

    /// One turn at `now`: receive a batch from each ingress, then send what is due. Returns
    /// the frames received. A device error stops the bridge (the stop flag is set); what it
    /// could not send is counted as `tx_error`.
    pub(crate) fn poll(&mut self, now: Nanos) -> usize {
        let mut got = 0;
        for ingress in &mut self.ingresses {
            if ingress.stopped {
                continue;
            }
            let n = match ingress
                .dev
                .recv_batch(&mut ingress.scratch, &mut ingress.meta)
            {
                Ok(n) => n,
                Err(e) => {
                    let e = ingress.error(e);
                    self.fatal.get_or_insert(e);
                    self.stop.store(true, Ordering::Relaxed);
                    continue;
                }
            };
            if n == 0 {
                continue;
            }
            // One comparison per batch; the system call at most once per interval.
            if now >= ingress.kernel_drops_due {
                ingress.kernel_drops_due = now.saturating_add(KERNEL_DROPS_EVERY);
                self.shared
                    .kernel_drops
                    .read(ingress.side, ingress.dev.as_mut());
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
                self.shared
                    .kernel_drops
                    .read(ingress.side, ingress.dev.as_mut());
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
                    // The device is broken: count what it could not send, and stop the bridge
                    // (the counters are still reported).
                    self.fail_from(side, &departures[sent..]);
                    self.fatal.get_or_insert(RunError::Send {
                        port: side.name().to_string(),
                        source,
                    });
                    self.stop.store(true, Ordering::Relaxed);
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
                    self.fail_from(side, &departures[sent..]);
                    return;
                }
                std::thread::yield_now();
            }
        }
    }

    fn fail_from(&mut self, side: Side, departures: &[(u32, ClassId, u32, u32)]) {
        use crate::pipeline::FrameStore;
        for &(slot, class, bytes, wire) in departures {
            self.pipeline.record_tx_failure(side, class, bytes, wire);
            self.frames.release(slot);
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
        self.opts.priority.apply();
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
            match &fds {
                Some(fds) if draining_since.is_none() => {
                    if let Err(e) = crate::io::sys::wait_any_readable(fds, wait) {
                        let e = self.ingresses[0].error(e);
                        self.fatal.get_or_insert(e);
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
                _ if draining_since.is_none() && self.ingresses.len() == 1 => {
                    if let Err(e) = self.ingresses[0].dev.wait_readable(wait) {
                        let e = self.ingresses[0].error(e);
                        self.fatal.get_or_insert(e);
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
                _ => std::thread::sleep(wait.min(Duration::from_millis(1))),
            }
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
