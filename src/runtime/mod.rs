//! The live bridge: threads, buffers and the real clock around the pure policy core.
//!
//! Threads (the thread contract of each piece):
//! - one receive thread per port owns that port's receiving device and a [`Classifier`] for
//!   the frames entering there (they all leave by the other port, so no flow table is shared).
//!   It receives up to [`BATCH`] frames per system call into large buffers lent by the start-up
//!   [`pool::Pool`], parses and classifies each, and hands the whole batch to the scheduler
//!   thread over a bounded channel (backpressure: when the channel is full the receive thread
//!   waits, and the kernel's ring or socket buffer absorbs or drops, which the kernel counts:
//!   see kernel drops below). A frame of up to [`pool::SMALL`] bytes is copied into a small
//!   pool buffer; a larger one (a GSO super-frame, a jumbo frame) is not copied: its receive
//!   buffer travels on with it and a free large buffer from the pool takes its place;
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
//! Kernel drops: frames the kernel dropped at a port before weir could receive them (its
//! receive ring or socket buffer full: weir was too slow) are in none of those counts; each
//! ingress reads its device's counter ([`Device::kernel_drops`], a system call on AF_PACKET)
//! at most once per [`KERNEL_DROPS_EVERY`] while frames arrive, and once more when it stops
//! receiving (a stop, or the end of its thread), never per batch; the last value read is the
//! port's entry in [`RunReport::kernel_drops`]. Frames dropped after that last read, while the
//! queues drain at shutdown, are not weir's slowness and are not counted.
//! Memory: buffers, batches and descriptor slots are allocated at start-up, and so is the
//! blocking state of the channels; the steady state does not allocate (tests/alloc_live.rs
//! counts it on real sockets, in every layout). The receive buffers are large pool buffers (the
//! pool holds [`BATCH`] more per ingress than [`Options::large_buffers`]), given back when the
//! ingress ends, so every buffer is back in the pool at the end of a run
//! (`RunReport::buffers_outstanding` is 0).

pub mod pool;

use crate::classify::Classifier;
use crate::config::Plan;
use crate::io::{Device, RxMeta, TxFrame, VnetHdr, BATCH, MAX_FRAME};
use crate::pipeline::report::{ClassReport, Totals};
use crate::port::ClassId;
use crate::port::Side;
use crate::sched::stats::DropReason;
use crate::sched::{Enqueued, FrameMeta, PortScheduler};
use crate::time::Nanos;
use crate::time::{Clock, SystemClock};
use crate::wire;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use pool::{Pool, PoolHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The devices of one port: frames are received on `rx` and sent on `tx`.
pub struct PortIo {
    pub rx: Box<dyn Device>,
    pub tx: Box<dyn Device>,
}

/// How the work is spread over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One receive thread per port and a scheduler thread.
    Split,
    /// One thread receives, classifies, schedules and sends, waiting on both ports at once.
    /// The default: faster on the 2-core machines weir is tested on (docs/benchmarks.md).
    RunToCompletion,
    /// One run-to-completion thread per direction (lan to wan, wan to lan): the directions
    /// share nothing, so each thread owns its ingress, its egress scheduler and its sockets.
    PerDirection,
}

/// The scheduling weir's threads ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Leave them as they start.
    Inherit,
    /// This nice value (negative is higher). A woken thread may still wait for the end of
    /// another's time slice: up to a scheduler tick (4 ms here) behind a busy process.
    Nice(i32),
    /// SCHED_FIFO at this priority (1 to 99): a woken thread runs at once. Refused (no
    /// CAP_SYS_NICE, no real-time budget), the thread takes nice -10 instead.
    /// `weir run`'s default (docs/benchmarks.md: a flooded class's ping p99 9.7 -> 6.3 ms).
    RealTime(u8),
}

impl Priority {
    /// Apply to the calling thread; returns what it got.
    pub fn apply(self) -> Priority {
        match self {
            Priority::Inherit => self,
            Priority::Nice(n) => {
                if crate::io::sys::raise_thread_priority(n) {
                    self
                } else {
                    Priority::Inherit
                }
            }
            Priority::RealTime(p) => match crate::io::sys::set_thread_realtime(i32::from(p)) {
                Ok(()) => self,
                Err(_) => Priority::Nice(-10).apply(),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub threads: Threads,
    /// How long queued frames may still leave after a stop is asked.
    pub shutdown_grace: Duration,
    /// Waits shorter than this are spun rather than slept (timer overshoot is tens of us).
    pub spin_below: Duration,
    /// Large (GSO / jumbo) buffers in the pool for frames waiting in queues; small ones cover
    /// every queue slot. The pool holds [`BATCH`] more per port, lent to the receive side.
    pub large_buffers: usize,
    /// How weir's threads ask for the CPU (best effort: what the kernel refuses is not an
    /// error).
    pub priority: Priority,
    /// Run-to-completion loops keep polling this long after the last frame before they sleep:
    /// a frame after a short pause then finds the thread awake (no wake-up on this VM's idle
    /// vCPU, which took milliseconds). Zero: sleep as soon as there is nothing to do.
    pub busy_poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: Threads::RunToCompletion,
            shutdown_grace: Duration::from_millis(1000),
            spin_below: Duration::from_micros(50),
            large_buffers: 512,
            priority: Priority::Nice(-10),
            busy_poll: Duration::ZERO,
        }
    }
}

/// Batches in flight between the receive threads and the scheduler, per receive thread.
const BATCHES_IN_FLIGHT: usize = 8;

/// Batches each receive thread of the split layout owns, all made at start-up: as many as it
/// can ever have out at once, so it always finds one back and never makes another. They are
/// in the channel to the scheduler (shared by both threads, so up to all of its
/// `2 * BATCHES_IN_FLIGHT` places), in the scheduler's hands (one), or in its own (one).
const BATCHES_PER_RX_THREAD: usize = 2 * BATCHES_IN_FLIGHT + 2;

/// Items a batch has room for per receive call: a received batch of [`BATCH`] frames plus the
/// segments of the super-frames cut for slow classes. A cut that would not fit is not made
/// (the super-frame goes whole), so a batch never grows.
const BATCH_ROOM: usize = 4 * BATCH;

/// GSO super-frames bound for a class (or a link) slower than this are cut into their
/// segments, as CAKE does below 1 Gbit/s: AQM then drops one segment rather than ~44 at once,
/// and a frame no longer holds the link for a super-frame's time (52 ms at 10 Mbit/s).
pub const SPLIT_GSO_BELOW_BPS: u64 = 1_000_000_000;

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

/// The frames of one receive call of the split layout, on their way from the receive thread of
/// port `ingress` to the scheduler thread. Once emptied, `items` goes back to that same receive
/// thread (its recycling channel), so each thread always finds one of its own to refill.
struct Batch {
    ingress: Side,
    items: Vec<Ingest>,
}

/// GSO super-frames cut into segments for slow classes (see [`SPLIT_GSO_BELOW_BPS`]).
#[derive(Debug, Default)]
struct SplitCounters {
    frames: AtomicU64,
    segments: AtomicU64,
}

/// Super-frames cut, and the segments they became (each counted as a frame received).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GsoSplit {
    pub super_frames: u64,
    pub segments: u64,
}

/// How often, at most, an ingress reads its device's kernel drop counter while frames arrive
/// (a system call on AF_PACKET; the kernel's counter is 32 bits, which one second cannot
/// overflow).
pub const KERNEL_DROPS_EVERY: Nanos = 1_000_000_000;

/// The kernel drop counter of each port's receiving device (lan, wan), as its ingress last read
/// it; `counted` says whether the device has one at all.
#[derive(Debug, Default)]
struct KernelDropCounters {
    frames: [AtomicU64; 2],
    counted: [AtomicBool; 2],
}

/// Frames the kernel dropped as they arrived at a port, before weir could receive them: its
/// receive ring or socket buffer was full because weir did not read fast enough. weir never
/// received them, so they are in no class's counts (nor in `received_per_port`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelDrops {
    /// The port the frames arrived at ("lan" or "wan"); they would have left by the other.
    pub port: &'static str,
    /// The interface they arrived on.
    pub interface: String,
    /// Frames dropped; `None` when the device has no such counter (pnet, capture file,
    /// memory).
    pub frames: Option<u64>,
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
    pub gso_split: GsoSplit,
    /// Per port (lan, wan): frames the kernel dropped on arrival, before weir could receive
    /// them. Not part of `totals` or `classes`.
    pub kernel_drops: [KernelDrops; 2],
    /// Why the bridge stopped, when it was not asked to (a device failed). The counters above
    /// still cover every frame up to that point.
    pub error: Option<String>,
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
    let in_flight = 2 * (BATCHES_IN_FLIGHT + 2) * BATCH_ROOM;
    // Large buffers: `large_buffers` for frames in flight or queued, plus the receive buffers of
    // both ingresses (BATCH each), which are exchanged for free ones, never added to them.
    let pool = Pool::new(
        queue_slots + in_flight,
        opts.large_buffers + 2 * BATCH,
        MAX_FRAME,
    );
    let (to_sched, from_rx) = bounded::<Batch>(2 * BATCHES_IN_FLIGHT);
    let started = Instant::now();
    let split_counters = Arc::new(SplitCounters::default());
    let kernel_drops = Arc::new(KernelDropCounters::default());

    let [lan, wan] = ports;
    let rx_names = [lan.rx.name().to_string(), wan.rx.name().to_string()];
    let mut rx_threads = Vec::new();
    // Where the scheduler gives emptied batches back: the receive thread of each port.
    let mut recyclers: [Option<Sender<Vec<Ingest>>>; 2] = [None, None];
    // Both ingresses take their receive buffers before any of them runs: once one receives, it
    // exchanges buffers with the pool, and the other might not find a whole batch.
    let mut ingresses: Vec<Ingress> = [(Side::Lan, lan.rx), (Side::Wan, wan.rx)]
        .into_iter()
        .map(|(side, io_rx)| {
            let (split, drops) = (&split_counters, &kernel_drops);
            Ingress::new(side, io_rx, &plan, pool.handle(), &clock, split, drops)
        })
        .collect();
    let split = if opts.threads == Threads::Split {
        prepare_waits(&to_sched, &from_rx);
        std::mem::take(&mut ingresses)
    } else {
        Vec::new()
    };
    for ingress in split {
        let side = ingress.ingress;
        let (recycle_tx, recycle_rx) = bounded::<Vec<Ingest>>(BATCHES_PER_RX_THREAD);
        for _ in 0..BATCHES_PER_RX_THREAD {
            let _ = recycle_tx.try_send(Vec::with_capacity(BATCH_ROOM));
        }
        recyclers[side.index()] = Some(recycle_tx);
        let rx = RxThread {
            ingress,
            to_sched: to_sched.clone(),
            recycle: recycle_rx,
            stop: Arc::clone(&stop),
        };
        let priority = opts.priority;
        rx_threads.push(
            std::thread::Builder::new()
                .name(format!("weir-rx-{}", side.name()))
                .spawn(move || rx.run(priority))
                .map_err(|e| RunError::Thread(e.to_string()))?,
        );
    }
    drop(to_sched);

    let make_sched = |tx: [Box<dyn Device>; 2],
                      from_rx: Receiver<Batch>,
                      recyclers: [Option<Sender<Vec<Ingest>>>; 2]| SchedSide {
        ports: [
            PortScheduler::new(plan.ports[0].spec.clone(), clock.now()),
            PortScheduler::new(plan.ports[1].spec.clone(), clock.now()),
        ],
        tx,
        slab: (0..queue_slots + BATCH).map(|_| None).collect(),
        free_slots: (0..(queue_slots + BATCH) as u32).rev().collect(),
        pool: pool.handle(),
        from_rx,
        recyclers,
        stop: Arc::clone(&stop),
        clock: Arc::clone(&clock),
        opts: opts.clone(),
        received: [0; 2],
        fatal: None,
    };
    let spawn = |name: &str, job: Box<dyn FnOnce() -> Result<SchedSide, RunError> + Send>| {
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(job)
            .map_err(|e| RunError::Thread(e.to_string()))
    };
    // Each scheduler thread, and the egress ports whose counters it holds at the end.
    let mut sched_threads = Vec::new();
    match opts.threads {
        Threads::Split => {
            let sched = make_sched([lan.tx, wan.tx], from_rx, recyclers);
            sched_threads.push((
                spawn("weir-sched", Box::new(move || sched.run()))?,
                vec![Side::Lan, Side::Wan],
            ));
        }
        Threads::RunToCompletion => {
            let sched = make_sched([lan.tx, wan.tx], from_rx, recyclers);
            let job = move || sched.run_to_completion(ingresses);
            sched_threads.push((
                spawn("weir-sched", Box::new(job))?,
                vec![Side::Lan, Side::Wan],
            ));
        }
        Threads::PerDirection => {
            // Frames entering on lan leave on wan, and the reverse; the port a thread does not
            // send on gets a device that is never used.
            let unused =
                || -> Box<dyn Device> { Box::new(crate::io::memory::memory_device("unused", 0).0) };
            let mut ingresses = ingresses.into_iter();
            let (Some(from_lan), Some(from_wan)) = (ingresses.next(), ingresses.next()) else {
                return Err(RunError::Thread("ingresses missing".into()));
            };
            let up = make_sched([unused(), wan.tx], from_rx.clone(), [None, None]);
            let down = make_sched([lan.tx, unused()], from_rx, [None, None]);
            let job = move || up.run_to_completion(vec![from_lan]);
            sched_threads.push((spawn("weir-up", Box::new(job))?, vec![Side::Wan]));
            let job = move || down.run_to_completion(vec![from_wan]);
            sched_threads.push((spawn("weir-down", Box::new(job))?, vec![Side::Lan]));
        }
    }

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
    let mut ports: [Option<PortScheduler<u32>>; 2] = [None, None];
    let mut received = [0u64; 2];
    for (t, egresses) in sched_threads {
        let result = t
            .join()
            .map_err(|_| RunError::Thread("a scheduler thread panicked".into()))
            .and_then(|r| r);
        match result {
            Ok(sched) => {
                let SchedSide {
                    ports: [lan_port, wan_port],
                    received: r,
                    fatal,
                    ..
                } = sched;
                if let Some(e) = fatal {
                    first_error.get_or_insert(e);
                }
                received[0] += r[0];
                received[1] += r[1];
                let mut mine = [Some(lan_port), Some(wan_port)];
                for side in egresses {
                    ports[side.index()] = mine[side.index()].take();
                }
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    }
    // Without both schedulers there are no counters to report: the error is all there is.
    let [Some(lan_port), Some(wan_port)] = ports else {
        return Err(first_error
            .unwrap_or_else(|| RunError::Thread("a port's scheduler was not returned".into())));
    };
    let ports = [lan_port, wan_port];
    let seconds = started.elapsed().as_secs_f64();
    let span_ns = started.elapsed().as_nanos() as u64;
    let mut classes = Vec::new();
    let mut totals = Totals::default();
    for side in [Side::Wan, Side::Lan] {
        let s = &ports[side.index()];
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
    Ok(RunReport {
        seconds,
        totals,
        classes,
        received_per_port: received,
        error: first_error.map(|e| e.to_string()),
        buffers_outstanding: pool.outstanding(),
        gso_split: GsoSplit {
            super_frames: split_counters.frames.load(Ordering::Relaxed),
            segments: split_counters.segments.load(Ordering::Relaxed),
        },
        kernel_drops: [Side::Lan, Side::Wan].map(|side| {
            let i = side.index();
            KernelDrops {
                port: side.name(),
                interface: rx_names[i].clone(),
                frames: kernel_drops.counted[i]
                    .load(Ordering::Relaxed)
                    .then(|| kernel_drops.frames[i].load(Ordering::Relaxed)),
            }
        }),
    })
}

/// The receive step of one port: frames in, parsed, classified, each in a pool buffer of its
/// own (small frames copied, large ones handed on in the buffer they were received into).
struct Ingress {
    ingress: Side,
    dev: Box<dyn Device>,
    classifier: Classifier,
    plan: Arc<Plan>,
    pool: PoolHandle,
    clock: Arc<SystemClock>,
    /// Receive buffers: large buffers lent by the pool, given back on drop.
    scratch: Vec<Box<[u8]>>,
    split: Arc<SplitCounters>,
    meta: Vec<RxMeta>,
    /// Where this port's kernel drop counter is published.
    kernel_drops: Arc<KernelDropCounters>,
    /// When the counter is read next while frames arrive.
    kernel_drops_due: Nanos,
    /// Receiving has stopped and the counter had its last read.
    stopped: bool,
}

impl Ingress {
    fn new(
        ingress: Side,
        dev: Box<dyn Device>,
        plan: &Arc<Plan>,
        pool: PoolHandle,
        clock: &Arc<SystemClock>,
        split: &Arc<SplitCounters>,
        kernel_drops: &Arc<KernelDropCounters>,
    ) -> Ingress {
        // `run` makes the pool with BATCH large buffers per ingress on top of those for
        // frames, and makes both ingresses before either receives, so these are all free.
        let scratch: Vec<Box<[u8]>> = (0..BATCH).map_while(|_| pool.take_large()).collect();
        debug_assert_eq!(
            scratch.len(),
            BATCH,
            "the pool has a batch of large buffers to lend"
        );
        Ingress {
            ingress,
            dev,
            classifier: plan.classifier(),
            plan: Arc::clone(plan),
            pool,
            clock: Arc::clone(clock),
            scratch,
            split: Arc::clone(split),
            meta: vec![RxMeta::default(); BATCH],
            kernel_drops: Arc::clone(kernel_drops),
            kernel_drops_due: clock.now().saturating_add(KERNEL_DROPS_EVERY),
            stopped: false,
        }
    }

    /// Read the device's kernel drop counter (a system call on AF_PACKET) and publish it.
    fn read_kernel_drops(&mut self) {
        if let Some(n) = self.dev.kernel_drops() {
            let i = self.ingress.index();
            self.kernel_drops.frames[i].store(n, Ordering::Relaxed);
            self.kernel_drops.counted[i].store(true, Ordering::Relaxed);
        }
    }

    /// Receiving is over: read the kernel drop counter a last time. Whatever the kernel drops
    /// after this (frames arriving while the queues drain) is not weir falling behind.
    fn stop_receiving(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.read_kernel_drops();
        }
    }

    fn error(&self, source: std::io::Error) -> RunError {
        RunError::Receive {
            port: self.ingress.name().to_string(),
            source,
        }
    }

    /// Receive one batch without blocking and append its frames to `batch`; returns how many.
    fn receive_into(&mut self, batch: &mut Vec<Ingest>) -> Result<usize, RunError> {
        let n = self
            .dev
            .recv_batch(&mut self.scratch, &mut self.meta)
            .map_err(|e| self.error(e))?;
        if n == 0 {
            return Ok(0);
        }
        let now = self.clock.now();
        // One comparison per batch; the system call at most once per interval.
        if now >= self.kernel_drops_due {
            self.kernel_drops_due = now.saturating_add(KERNEL_DROPS_EVERY);
            self.read_kernel_drops();
        }
        let egress = self.ingress.other();
        let port = &self.plan.ports[egress.index()];
        let overhead = u64::from(port.overhead);
        let start = batch.len();
        for (i, (buf, m)) in self.scratch.iter_mut().zip(&self.meta).take(n).enumerate() {
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
            let class =
                &port.spec.classes[usize::from(verdict.class).min(port.spec.classes.len() - 1)];
            if m.vnet.is_gso() && class.ceil_bps.min(port.spec.rate_bps) < SPLIT_GSO_BELOW_BPS {
                // This call's share of the batch (BATCH_ROOM items), less one item for each
                // frame still to come in it: what a cut may take without the batch growing.
                let budget = (start + BATCH_ROOM).min(batch.capacity());
                let room = budget.saturating_sub(batch.len() + (n - i - 1));
                let meta = |len: usize| FrameMeta {
                    class: verdict.class,
                    bytes: len as u32,
                    wire_bytes: len as u32 + port.overhead,
                    fairness_hash: verdict.fairness_hash,
                };
                if let Some(cut) = split_gso(&self.pool, frame, &m.vnet, room, batch, egress, meta)
                {
                    self.split.frames.fetch_add(1, Ordering::Relaxed);
                    self.split.segments.fetch_add(cut as u64, Ordering::Relaxed);
                    continue;
                }
            }
            // Small frames are copied into a small buffer; a larger one keeps the buffer it
            // was received into, and a free large buffer takes its place in `scratch`.
            let taken = if frame.len() <= pool::SMALL {
                self.pool.copy_in(frame)
            } else {
                self.pool.swap_large(buf)
            };
            match taken {
                Some(buf) => batch.push(Ingest::Frame {
                    buf,
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
        Ok(n)
    }
}

impl Drop for Ingress {
    /// Give the receive buffers back, whichever way the ingress ends (stop, error, panic), and
    /// read the kernel drop counter if [`Ingress::stop_receiving`] did not.
    fn drop(&mut self) {
        self.stop_receiving();
        for buf in self.scratch.drain(..) {
            self.pool.give_back(buf);
        }
    }
}

/// A receive thread of the split layout: an [`Ingress`] handing batches to the scheduler.
struct RxThread {
    ingress: Ingress,
    to_sched: Sender<Batch>,
    recycle: Receiver<Vec<Ingest>>,
    stop: Arc<AtomicBool>,
}

impl RxThread {
    fn run(mut self, priority: Priority) -> Result<(), RunError> {
        prepare_to_block();
        priority.apply();
        let mut spare: Option<Vec<Ingest>> = None;
        while !self.stop.load(Ordering::Relaxed) {
            // Batches come back from the scheduler; there is always one back (see
            // BATCHES_PER_RX_THREAD), a new one is made only if that reasoning fails.
            let mut batch = spare.take().unwrap_or_else(|| {
                self.recycle
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH_ROOM))
            });
            if self.ingress.receive_into(&mut batch)? == 0 {
                spare = Some(batch);
                self.ingress
                    .dev
                    .wait_readable(Duration::from_millis(20))
                    .map_err(|e| self.ingress.error(e))?;
                continue;
            }
            // Hand over; while the scheduler is behind, wait. After a stop, keep trying: the
            // scheduler drains the channel, and nothing received may be lost uncounted.
            let mut pending = Batch {
                ingress: self.ingress.ingress,
                items: batch,
            };
            loop {
                match self
                    .to_sched
                    .send_timeout(pending, Duration::from_millis(50))
                {
                    Ok(()) => break,
                    Err(crossbeam_channel::SendTimeoutError::Timeout(b)) => pending = b,
                    Err(crossbeam_channel::SendTimeoutError::Disconnected(b)) => {
                        for item in b.items {
                            if let Ingest::Frame { buf, .. } = item {
                                self.ingress.pool.give_back(buf);
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
        self.ingress.stop_receiving();
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
    from_rx: Receiver<Batch>,
    /// Per port, where emptied batches go back to its receive thread (split layout only).
    recyclers: [Option<Sender<Vec<Ingest>>>; 2],
    stop: Arc<AtomicBool>,
    clock: Arc<SystemClock>,
    opts: Options,
    received: [u64; 2],
    /// The first device error; the bridge then stops, drains and still reports.
    fatal: Option<RunError>,
}

/// How often a refused send is retried before its frames are counted as `tx_error`.
const TX_RETRIES: usize = 64;

impl SchedSide {
    fn run(mut self) -> Result<SchedSide, RunError> {
        prepare_to_block();
        crate::io::sys::set_timer_slack_ns(1);
        self.opts.priority.apply();
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
                    self.ingest_and_recycle(batch);
                    // Take whatever else is waiting, so one wake-up serves many batches.
                    while let Ok(b) = self.from_rx.try_recv() {
                        self.ingest_and_recycle(b);
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
        // Whatever is still queued could not leave in time, nor what is still in the channel.
        self.drop_what_is_left();
        while let Ok(batch) = self.from_rx.try_recv() {
            self.ingest_and_recycle(batch);
            self.drop_what_is_left();
        }
        Ok(self)
    }

    /// Count everything still queued as dropped at shutdown.
    fn drop_what_is_left(&mut self) {
        let (slab, free, pool) = (&mut self.slab, &mut self.free_slots, &self.pool);
        for port in &mut self.ports {
            port.drain(DropReason::Shutdown, &mut |d| {
                release(slab, free, pool, d.item)
            });
        }
    }

    /// The single-thread layout: receive from both ports, schedule and send, in one loop that
    /// waits on both ports' descriptors at once until the next departure is due.
    fn run_to_completion(mut self, mut ingresses: Vec<Ingress>) -> Result<SchedSide, RunError> {
        crate::io::sys::set_timer_slack_ns(1);
        self.opts.priority.apply();
        // Wait on every ingress at once when all of them have a descriptor.
        let fds: Option<Vec<std::os::fd::RawFd>> =
            ingresses.iter().map(|i| i.dev.poll_fd()).collect();
        let mut batch = Vec::with_capacity(2 * BATCH_ROOM);
        let mut draining_since: Option<Instant> = None;
        let mut last_frame = Instant::now();
        loop {
            let mut got = 0;
            if draining_since.is_none() {
                for ingress in &mut ingresses {
                    match ingress.receive_into(&mut batch) {
                        Ok(n) => got += n,
                        Err(e) => self.fail(e),
                    }
                }
                self.ingest(&mut batch);
            }
            self.service(self.clock.now())?;
            if draining_since.is_none() && self.stop.load(Ordering::Relaxed) {
                draining_since = Some(Instant::now());
                for ingress in &mut ingresses {
                    ingress.stop_receiving();
                }
            }
            if let Some(since) = draining_since {
                let empty = self.ports.iter().all(|p| p.queued_frames() == 0);
                if empty || since.elapsed() >= self.opts.shutdown_grace {
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
            let next = self.ports.iter().filter_map(|p| p.next_wakeup()).min();
            let wait = next
                .map_or(Duration::from_millis(100), |t| {
                    Duration::from_nanos(t.saturating_sub(self.clock.now()))
                })
                .min(Duration::from_millis(100));
            if wait < self.opts.spin_below {
                continue;
            }
            match &fds {
                Some(fds) if draining_since.is_none() => {
                    crate::io::sys::wait_any_readable(fds, wait)
                        .map_err(|e| ingresses[0].error(e))?;
                }
                _ => std::thread::sleep(wait.min(Duration::from_millis(1))),
            }
        }
        self.drop_what_is_left();
        Ok(self)
    }

    /// Whether every receive thread has finished (all senders dropped, channel empty). A batch
    /// that arrives while asking is ingested, never dropped: its frames must be counted.
    fn rx_done(&mut self) -> bool {
        match self.from_rx.try_recv() {
            Ok(batch) => {
                self.ingest_and_recycle(batch);
                false
            }
            Err(TryRecvError::Disconnected) => true,
            Err(TryRecvError::Empty) => false,
        }
    }

    /// Enqueue (or count as rejected) every frame of `batch`, leaving it empty.
    fn ingest(&mut self, batch: &mut Vec<Ingest>) {
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
    }

    /// Take a batch from a receive thread, and give the emptied batch back to that thread for
    /// reuse. (Its recycling channel has room for all of the thread's batches, so one is
    /// dropped only when the thread has ended.)
    fn ingest_and_recycle(&mut self, batch: Batch) {
        let Batch { ingress, mut items } = batch;
        self.ingest(&mut items);
        if let Some(r) = &self.recyclers[ingress.index()] {
            let _ = r.try_send(items);
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

    /// Remember the first fatal error and ask everything to stop.
    fn fail(&mut self, e: RunError) {
        self.fatal.get_or_insert(e);
        self.stop.store(true, Ordering::Relaxed);
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
            let took = match self.tx[i].send_batch(&frames[..count]) {
                Ok(took) => took,
                Err(source) => {
                    // The device is broken: count what it could not send, and stop the bridge
                    // (the counters are still reported).
                    for &(slot, class, bytes, wire) in &departures[sent..] {
                        self.ports[i].record_tx_failure(class, bytes, wire);
                        release(&mut self.slab, &mut self.free_slots, &self.pool, slot);
                    }
                    self.fail(RunError::Send {
                        port: side.name().to_string(),
                        source,
                    });
                    return Ok(());
                }
            };
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

/// Cut a TCP super-frame into its segments, each in a small pool buffer, appended to `batch`
/// with `meta(segment length)`. Returns how many; `None`, with nothing appended, when the frame
/// cannot be cut (not TCP, headers that do not add up), when its segments would take more than
/// `room` items, or when small buffers run out: the caller then forwards it whole.
fn split_gso(
    pool: &PoolHandle,
    frame: &[u8],
    vnet: &VnetHdr,
    room: usize,
    batch: &mut Vec<Ingest>,
    egress: Side,
    meta: impl Fn(usize) -> FrameMeta,
) -> Option<usize> {
    let seg = vnet.segmenter(frame).ok()?;
    let count = seg.count();
    if count > room || seg.max_segment_len() > pool::SMALL {
        return None;
    }
    let hdr = VnetHdr::from(seg.checksum());
    let start = batch.len();
    for i in 0..count {
        let written = pool
            .take_small()
            .and_then(|mut buf| match seg.write(i, &mut buf) {
                Some(len) => Some((buf, len)),
                None => {
                    pool.give_back(buf);
                    None
                }
            });
        let Some((buf, len)) = written else {
            for item in batch.drain(start..) {
                if let Ingest::Frame { buf, .. } = item {
                    pool.give_back(buf);
                }
            }
            return None;
        };
        batch.push(Ingest::Frame {
            buf,
            len: len as u32,
            vnet: hdr,
            meta: meta(len),
            egress,
        });
    }
    Some(count)
}

/// Makes now, at start-up, what crossbeam-channel makes the first time the calling thread
/// blocks on a channel (in the steady state: the first time the scheduler falls behind, or has
/// nothing to do): the thread's wait context, a thread-local made on its first use. Blocks
/// once, 1 ms, on a private zero-capacity channel, whose receive goes straight to that context.
/// (An array channel spins and yields first and checks its deadline before it gets there: on a
/// loaded machine a 1 ms wait timed out before making the context, and the first real wait
/// then allocated it while forwarding.)
fn prepare_to_block() {
    let (_sender, idle) = bounded::<()>(0);
    let _ = idle.recv_timeout(Duration::from_millis(1));
}

/// Makes now, at start-up, the lists of threads waiting on the channel to the scheduler, which
/// crossbeam-channel makes the first time a thread waits on each side of it (the sending side
/// waits only when the scheduler falls behind, which may first happen long after start):
/// waits once to receive from it while it is empty, and once to send to it while it is full of
/// empty batches, then empties it. (A list, once made, keeps its room.) An array channel spins
/// and yields before it registers a waiter and gives up if its deadline passed meanwhile, so
/// each wait is 5 ms (not 1), long enough for that back-off to end first unless the machine is
/// very loaded.
fn prepare_waits(to_sched: &Sender<Batch>, from_rx: &Receiver<Batch>) {
    let empty = || Batch {
        ingress: Side::Lan,
        items: Vec::new(),
    };
    let wait = Duration::from_millis(5);
    let _ = from_rx.recv_timeout(wait);
    while to_sched.try_send(empty()).is_ok() {}
    let _ = to_sched.send_timeout(empty(), wait);
    while from_rx.try_recv().is_ok() {}
}

fn release(slab: &mut [Option<Slot>], free: &mut Vec<u32>, pool: &PoolHandle, slot: u32) {
    if let Some(s) = slab.get_mut(slot as usize).and_then(Option::take) {
        pool.give_back(s.buf);
        free.push(slot);
    }
}

#[cfg(test)]
mod tests;
