//! The live bridge: threads, buffers and the real clock around the pure policy core.
//!
//! Threads (the thread contract of each piece):
//! - one receive thread per port owns that port's receiving device and a [`Classifier`] for
//!   the frames entering there (they all leave by the other port, so no flow table is shared).
//!   It receives up to [`BATCH`] frames per system call, parses and classifies each, copies it
//!   into a buffer from the start-up [`pool::Pool`], and hands the whole batch to the scheduler
//!   thread over a bounded channel (backpressure: when the channel is full the receive thread
//!   waits, and the kernel's socket buffer absorbs or drops, which the kernel counts);
//! - one scheduler thread owns both [`PortScheduler`]s and both transmitting devices. It
//!   enqueues each batch at the current time, sends every departure that is due in batches,
//!   and then sleeps exactly until the next departure (`next_wakeup()`) or the next batch,
//!   spinning only for waits shorter than [`Options::spin_below`].
//!
//! Accounting: every frame received is counted once, by the scheduler thread, in the class
//! it was classified into: forwarded, dropped with a reason (including frames the receive side
//! could not take: truncated, no buffer), or queued. At shutdown, queued frames get
//! [`Options::shutdown_grace`] to leave; the rest are dropped as `shutdown`. Then
//! `received = forwarded + dropped` per class.
//! Memory: buffers, batches and descriptor slots are allocated at start-up; the steady state
//! does not allocate.

pub mod pool;

use crate::classify::{Classifier, Side};
use crate::config::Plan;
use crate::io::{Device, RxMeta, TxFrame, VnetHdr, BATCH, MAX_FRAME};
use crate::report::{ClassReport, Totals};
use crate::sched::clock::{Clock, SystemClock};
use crate::sched::{ClassId, Enqueued, FrameMeta, Nanos, PortScheduler};
use crate::stats::DropReason;
use crate::wire;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use pool::{Pool, PoolHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The devices of one port: frames are received on `rx` and sent on `tx`.
pub struct PortIo {
    pub rx: Box<dyn Device>,
    pub tx: Box<dyn Device>,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// How long queued frames may still leave after a stop is asked.
    pub shutdown_grace: Duration,
    /// Waits shorter than this are spun rather than slept (timer overshoot is tens of us).
    pub spin_below: Duration,
    /// Large (GSO / jumbo) buffers in the pool; small ones cover every queue slot.
    pub large_buffers: usize,
    /// Nice value for weir's threads (best effort; needs CAP_SYS_NICE). `None` leaves it.
    pub thread_nice: Option<i32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            shutdown_grace: Duration::from_millis(1000),
            spin_below: Duration::from_micros(50),
            large_buffers: 512,
            thread_nice: Some(-10),
        }
    }
}

/// Batches in flight between the receive threads and the scheduler, per receive thread.
const BATCHES_IN_FLIGHT: usize = 8;

/// One frame handed from a receive thread to the scheduler thread.
enum Ingest {
    Frame {
        buf: Box<[u8]>,
        len: u32,
        vnet: VnetHdr,
        meta: FrameMeta,
        egress: Side,
    },
    /// Counted in its class and dropped: the receive side could not take it.
    Reject {
        egress: Side,
        class: ClassId,
        bytes: u32,
        reason: DropReason,
    },
}

/// What a run did, for the final table.
#[derive(Debug, serde::Serialize)]
pub struct RunReport {
    pub seconds: f64,
    pub totals: Totals,
    pub classes: Vec<ClassReport>,
    /// Frames each port received (lan, wan).
    pub received_per_port: [u64; 2],
    /// Buffers not returned to the pool at the end (must be zero).
    pub buffers_outstanding: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("receiving on {port}: {source}")]
    Receive {
        port: String,
        source: std::io::Error,
    },
    #[error("sending on {port}: {source}")]
    Send {
        port: String,
        source: std::io::Error,
    },
    #[error("a weir thread failed: {0}")]
    Thread(String),
}

/// Run the bridge until `stop` is set (then drain and return the counters).
pub fn run(
    plan: Arc<Plan>,
    ports: [PortIo; 2],
    stop: Arc<AtomicBool>,
    opts: &Options,
) -> Result<RunReport, RunError> {
    let clock = Arc::new(SystemClock::new());
    let queue_slots: usize = plan
        .ports
        .iter()
        .flat_map(|p| p.spec.classes.iter())
        .map(|c| c.limit_packets as usize)
        .sum();
    // Every queue slot, plus every frame that can be in a batch in flight or being sent.
    let in_flight = 2 * (BATCHES_IN_FLIGHT + 2) * BATCH;
    let pool = Pool::new(queue_slots + in_flight, opts.large_buffers, MAX_FRAME);
    let (to_sched, from_rx) = bounded::<Vec<Ingest>>(2 * BATCHES_IN_FLIGHT);
    let started = Instant::now();

    let [lan, wan] = ports;
    let mut rx_threads = Vec::new();
    let mut recyclers = Vec::new();
    for (side, io_rx) in [(Side::Lan, lan.rx), (Side::Wan, wan.rx)] {
        let (recycle_tx, recycle_rx) = bounded::<Vec<Ingest>>(BATCHES_IN_FLIGHT + 2);
        for _ in 0..BATCHES_IN_FLIGHT {
            let _ = recycle_tx.try_send(Vec::with_capacity(BATCH));
        }
        recyclers.push(recycle_tx);
        let rx = RxSide {
            ingress: side,
            dev: io_rx,
            classifier: plan.classifier(),
            plan: Arc::clone(&plan),
            pool: pool.handle(),
            to_sched: to_sched.clone(),
            recycle: recycle_rx,
            stop: Arc::clone(&stop),
            clock: Arc::clone(&clock),
        };
        rx_threads.push(
            std::thread::Builder::new()
                .name(format!("weir-rx-{}", side.name()))
                .spawn({
                    let nice = opts.thread_nice;
                    move || rx.run(nice)
                })
                .map_err(|e| RunError::Thread(e.to_string()))?,
        );
    }
    drop(to_sched);

    let sched = SchedSide {
        ports: [
            PortScheduler::new(plan.ports[0].spec.clone(), clock.now()),
            PortScheduler::new(plan.ports[1].spec.clone(), clock.now()),
        ],
        tx: [lan.tx, wan.tx],
        slab: (0..queue_slots + BATCH).map(|_| None).collect(),
        free_slots: (0..(queue_slots + BATCH) as u32).rev().collect(),
        pool: pool.handle(),
        from_rx,
        recyclers,
        stop: Arc::clone(&stop),
        clock: Arc::clone(&clock),
        opts: opts.clone(),
        received: [0; 2],
    };
    let sched_thread = std::thread::Builder::new()
        .name("weir-sched".into())
        .spawn(move || sched.run())
        .map_err(|e| RunError::Thread(e.to_string()))?;

    let mut first_error = None;
    for t in rx_threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(RunError::Thread("a receive thread panicked".into()));
            }
        }
    }
    let sched = sched_thread
        .join()
        .map_err(|_| RunError::Thread("the scheduler thread panicked".into()))??;
    if let Some(e) = first_error {
        return Err(e);
    }
    let seconds = started.elapsed().as_secs_f64();
    let span_ns = started.elapsed().as_nanos() as u64;
    let mut classes = Vec::new();
    let mut totals = Totals::default();
    for side in [Side::Wan, Side::Lan] {
        let s = &sched.ports[side.index()];
        let p = &plan.ports[side.index()];
        for (i, spec) in s.spec().classes.iter().enumerate() {
            if let Some(st) = s.class_stats(i as ClassId) {
                totals.received += st.received_frames;
                totals.forwarded += st.forwarded_frames;
                totals.dropped += st.dropped_total_frames();
                totals.queued += st.queued_frames;
                classes.push(ClassReport::new(side, &p.classes[i], spec, st, span_ns));
            }
        }
    }
    drop(sched.slab);
    Ok(RunReport {
        seconds,
        totals,
        classes,
        received_per_port: sched.received,
        buffers_outstanding: pool.outstanding(),
    })
}

struct RxSide {
    ingress: Side,
    dev: Box<dyn Device>,
    classifier: Classifier,
    plan: Arc<Plan>,
    pool: PoolHandle,
    to_sched: Sender<Vec<Ingest>>,
    recycle: Receiver<Vec<Ingest>>,
    stop: Arc<AtomicBool>,
    clock: Arc<SystemClock>,
}

impl RxSide {
    fn run(mut self, nice: Option<i32>) -> Result<(), RunError> {
        if let Some(n) = nice {
            crate::io::sys::raise_thread_priority(n);
        }
        let egress = self.ingress.other();
        let port = &self.plan.ports[egress.index()];
        let overhead = u64::from(port.overhead);
        let mut scratch: Vec<Box<[u8]>> = (0..BATCH)
            .map(|_| vec![0u8; MAX_FRAME].into_boxed_slice())
            .collect();
        let mut meta = [RxMeta::default(); BATCH];
        let err = |source| RunError::Receive {
            port: self.ingress.name().to_string(),
            source,
        };
        while !self.stop.load(Ordering::Relaxed) {
            let n = self.dev.recv_batch(&mut scratch, &mut meta).map_err(err)?;
            if n == 0 {
                self.dev
                    .wait_readable(Duration::from_millis(20))
                    .map_err(err)?;
                continue;
            }
            let now = self.clock.now();
            // Batches come back from the scheduler; a new one is made only while warming up.
            let mut batch = self
                .recycle
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH));
            for (buf, m) in scratch.iter_mut().zip(&meta).take(n) {
                let frame = &mut buf[..m.len];
                let view = wire::parse(frame);
                let verdict = self.classifier.classify(&view, egress, now);
                let (segments, seg_bytes) = m.vnet.wire_segments(frame.len());
                let wire_bytes = seg_bytes + u64::from(segments) * overhead;
                let bytes = frame.len() as u32;
                let reject = |reason| Ingest::Reject {
                    egress,
                    class: verdict.class,
                    bytes,
                    reason,
                };
                if m.truncated || frame.len() < 14 {
                    batch.push(reject(DropReason::Malformed));
                    continue;
                }
                if let Some(dscp) = port
                    .classes
                    .get(usize::from(verdict.class))
                    .and_then(|c| c.set_dscp)
                {
                    wire::set_dscp(frame, &view, dscp);
                }
                match self.pool.copy_in(frame) {
                    Some(copy) => batch.push(Ingest::Frame {
                        buf: copy,
                        len: bytes,
                        vnet: m.vnet,
                        meta: FrameMeta {
                            class: verdict.class,
                            bytes,
                            wire_bytes: u32::try_from(wire_bytes).unwrap_or(u32::MAX),
                            fairness_hash: verdict.fairness_hash,
                        },
                        egress,
                    }),
                    None => batch.push(reject(DropReason::NoBuffer)),
                }
            }
            // Hand over; while the scheduler is behind, wait, but keep an eye on `stop`.
            let mut pending = batch;
            loop {
                match self
                    .to_sched
                    .send_timeout(pending, Duration::from_millis(50))
                {
                    Ok(()) => break,
                    Err(crossbeam_channel::SendTimeoutError::Timeout(b)) => {
                        pending = b;
                        if self.stop.load(Ordering::Relaxed) {
                            // The scheduler is still draining the channel: keep trying so
                            // nothing received is lost uncounted.
                            continue;
                        }
                    }
                    Err(crossbeam_channel::SendTimeoutError::Disconnected(b)) => {
                        for item in b {
                            if let Ingest::Frame { buf, .. } = item {
                                self.pool.give_back(buf);
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

/// A frame waiting in a queue: its buffer and what is needed to send it.
struct Slot {
    buf: Box<[u8]>,
    len: u32,
    vnet: VnetHdr,
}

struct SchedSide {
    ports: [PortScheduler<u32>; 2],
    tx: [Box<dyn Device>; 2],
    slab: Vec<Option<Slot>>,
    free_slots: Vec<u32>,
    pool: PoolHandle,
    from_rx: Receiver<Vec<Ingest>>,
    recyclers: Vec<Sender<Vec<Ingest>>>,
    stop: Arc<AtomicBool>,
    clock: Arc<SystemClock>,
    opts: Options,
    received: [u64; 2],
}

/// How often a refused send is retried before its frames are counted as `tx_error`.
const TX_RETRIES: usize = 64;

impl SchedSide {
    fn run(mut self) -> Result<SchedSide, RunError> {
        crate::io::sys::set_timer_slack_ns(1);
        if let Some(n) = self.opts.thread_nice {
            crate::io::sys::raise_thread_priority(n);
        }
        let mut draining_since: Option<Instant> = None;
        loop {
            let now = self.clock.now();
            self.service(now)?;
            if draining_since.is_none() && self.stop.load(Ordering::Relaxed) {
                draining_since = Some(Instant::now());
            }
            if let Some(since) = draining_since {
                let empty = self.ports.iter().all(|p| p.queued_frames() == 0);
                if (empty && self.from_rx.is_empty() && self.rx_done())
                    || since.elapsed() >= self.opts.shutdown_grace
                {
                    break;
                }
            }
            // Sleep until the next departure or the next batch.
            let next = self.ports.iter().filter_map(|p| p.next_wakeup()).min();
            let wait = match next {
                Some(t) => Duration::from_nanos(t.saturating_sub(self.clock.now())),
                None => Duration::from_millis(if draining_since.is_some() { 5 } else { 100 }),
            };
            let got = if wait.is_zero() {
                self.from_rx
                    .try_recv()
                    .map_err(|e| e == TryRecvError::Disconnected)
            } else if wait < self.opts.spin_below {
                let deadline = Instant::now() + wait;
                loop {
                    match self.from_rx.try_recv() {
                        Ok(b) => break Ok(b),
                        Err(TryRecvError::Disconnected) => break Err(true),
                        Err(TryRecvError::Empty) if Instant::now() >= deadline => break Err(false),
                        Err(TryRecvError::Empty) => std::hint::spin_loop(),
                    }
                }
            } else {
                self.from_rx
                    .recv_timeout(wait)
                    .map_err(|e| e == RecvTimeoutError::Disconnected)
            };
            match got {
                Ok(batch) => {
                    self.ingest(batch);
                    // Take whatever else is waiting, so one wake-up serves many batches.
                    while let Ok(b) = self.from_rx.try_recv() {
                        self.ingest(b);
                    }
                }
                // All receive threads are gone: only the queues are left to drain.
                Err(true) if draining_since.is_none() => {
                    self.stop.store(true, Ordering::Relaxed);
                }
                Err(true) if next.is_none() => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => {}
            }
        }
        // Whatever is still queued could not leave in time.
        let (slab, free, pool) = (&mut self.slab, &mut self.free_slots, &self.pool);
        for port in &mut self.ports {
            port.drain(DropReason::Shutdown, &mut |d| {
                release(slab, free, pool, d.item)
            });
        }
        while let Ok(batch) = self.from_rx.try_recv() {
            self.ingest(batch);
            let (slab, free, pool) = (&mut self.slab, &mut self.free_slots, &self.pool);
            for port in &mut self.ports {
                port.drain(DropReason::Shutdown, &mut |d| {
                    release(slab, free, pool, d.item)
                });
            }
        }
        Ok(self)
    }

    fn rx_done(&self) -> bool {
        // Senders gone: `recv` would report disconnection.
        matches!(self.from_rx.try_recv(), Err(TryRecvError::Disconnected))
    }

    fn ingest(&mut self, mut batch: Vec<Ingest>) {
        let now = self.clock.now();
        for item in batch.drain(..) {
            match item {
                Ingest::Reject {
                    egress,
                    class,
                    bytes,
                    reason,
                } => {
                    self.received[egress.other().index()] += 1;
                    self.ports[egress.index()].reject(class, bytes, reason);
                }
                Ingest::Frame {
                    buf,
                    len,
                    vnet,
                    meta,
                    egress,
                } => {
                    self.received[egress.other().index()] += 1;
                    let Some(slot) = self.free_slots.pop() else {
                        // Cannot happen: there is a slot for every queue position.
                        self.ports[egress.index()].reject(
                            meta.class,
                            meta.bytes,
                            DropReason::NoBuffer,
                        );
                        self.pool.give_back(buf);
                        continue;
                    };
                    self.slab[slot as usize] = Some(Slot { buf, len, vnet });
                    if let Enqueued::Dropped(slot, _) =
                        self.ports[egress.index()].enqueue(slot, meta, now)
                    {
                        release(&mut self.slab, &mut self.free_slots, &self.pool, slot);
                    }
                }
            }
        }
        // Give the empty batch back to a receive thread for reuse (either will do).
        for r in &self.recyclers {
            match r.try_send(batch) {
                Ok(()) => return,
                Err(e) => batch = e.into_inner(),
            }
        }
    }

    /// Send everything that is due at `now`, port by port, in batches.
    fn service(&mut self, now: Nanos) -> Result<(), RunError> {
        for side in [Side::Lan, Side::Wan] {
            let i = side.index();
            loop {
                let mut departures = [(0u32, 0 as ClassId, 0u32, 0u32); BATCH];
                let mut n = 0;
                {
                    let (slab, free, pool) = (&mut self.slab, &mut self.free_slots, &self.pool);
                    while n < BATCH {
                        let Some(d) =
                            self.ports[i].dequeue(now, &mut |d| release(slab, free, pool, d.item))
                        else {
                            break;
                        };
                        departures[n] = (d.item, d.class, d.bytes, d.wire_bytes);
                        n += 1;
                    }
                }
                if n == 0 {
                    break;
                }
                self.transmit(side, &departures[..n])?;
                if n < BATCH {
                    break;
                }
            }
        }
        Ok(())
    }

    fn transmit(
        &mut self,
        side: Side,
        departures: &[(u32, ClassId, u32, u32)],
    ) -> Result<(), RunError> {
        let i = side.index();
        let mut sent = 0;
        let mut retries = 0;
        while sent < departures.len() {
            let mut frames = [TxFrame {
                data: &[],
                vnet: VnetHdr::NONE,
            }; BATCH];
            let count = departures.len() - sent;
            for (f, &(slot, ..)) in frames.iter_mut().zip(&departures[sent..]) {
                if let Some(s) = &self.slab[slot as usize] {
                    *f = TxFrame {
                        data: &s.buf[..s.len as usize],
                        vnet: s.vnet,
                    };
                }
            }
            let took =
                self.tx[i]
                    .send_batch(&frames[..count])
                    .map_err(|source| RunError::Send {
                        port: side.name().to_string(),
                        source,
                    })?;
            for &(slot, ..) in &departures[sent..sent + took] {
                release(&mut self.slab, &mut self.free_slots, &self.pool, slot);
            }
            sent += took;
            if took == 0 {
                retries += 1;
                if retries > TX_RETRIES {
                    for &(slot, class, bytes, wire) in &departures[sent..] {
                        self.ports[i].record_tx_failure(class, bytes, wire);
                        release(&mut self.slab, &mut self.free_slots, &self.pool, slot);
                    }
                    return Ok(());
                }
                std::thread::yield_now();
            }
        }
        Ok(())
    }
}

fn release(slab: &mut [Option<Slot>], free: &mut Vec<u32>, pool: &PoolHandle, slot: u32) {
    if let Some(s) = slab.get_mut(slot as usize).and_then(Option::take) {
        pool.give_back(s.buf);
        free.push(slot);
    }
}

#[cfg(test)]
mod tests;
