//! The live bridge: threads, sockets and the real clock around the policy path
//! ([`crate::pipeline`]).
//!
//! Threads (the thread contract of each piece): one `Forwarder` (forwarder.rs) per thread owns
//! its ingresses (receiving devices), a [`crate::pipeline::Pipeline`], its frame buffers and the devices it sends
//! on. The default layout, [`Threads::RunToCompletion`], has one such thread for both
//! directions; [`Threads::PerDirection`] has one per direction (lan to wan, wan to lan), which
//! share nothing. Each turn receives up to [`crate::io::BATCH`] frames per port per system call, hands
//! each to the pipeline at the current time, sends every departure that is due in batches,
//! then waits on both ports at once until a frame arrives or the next departure is due
//! (spinning only for waits shorter than [`Options::spin_below`]).
//!
//! Accounting: every frame received is counted once, by the thread that received it, in the
//! class it was classified into: forwarded, dropped with a reason (including frames the
//! receive side could not take: truncated, no buffer), or queued. At shutdown, queued frames
//! get [`Options::shutdown_grace`] to leave; the rest are dropped as `shutdown`. Then
//! `received = forwarded + dropped` per class.
//! Kernel drops: frames the kernel dropped at a port before weir could receive them (its
//! receive ring or socket buffer full: weir was too slow) are in none of those counts; each
//! ingress reads its device's counter ([`Device::kernel_drops`], a system call on AF_PACKET)
//! at most once per [`KERNEL_DROPS_EVERY`] while frames arrive, and once more when it stops
//! receiving (a stop, or the end of its thread), never per batch; the last value read is the
//! port's entry in [`RunReport::kernel_drops`]. Frames dropped after that last read, while the
//! queues drain at shutdown, are not weir's slowness and are not counted.
//! Memory: each thread's buffers and descriptor slots are allocated when it is made; the
//! steady state does not allocate (tests/alloc_live.rs counts it on real sockets, in every
//! layout). The receive buffers are large pool buffers, given back when the thread ends, so
//! every buffer is back in its pool at the end of a run (`RunReport::buffers_outstanding` is
//! 0).
//!
//! A third layout, a receive thread per port handing batches to a scheduler thread, was
//! measured slower than run-to-completion in every comparison on these machines
//! (docs/benchmarks.md) and was removed: a single owner per direction keeps buffers, counters
//! and a reload on one thread.

pub mod express;
pub(crate) mod forwarder;
pub mod frames;
pub mod owners;
pub mod pool;
pub mod published;

use crate::config::Plan;
use crate::io::Device;
use crate::pipeline::report::{ClassReport, Totals};
use crate::pipeline::GsoSplit;
use crate::port::Side;
use crate::time::{Clock, Nanos, SystemClock};
use crossbeam_channel::Sender;
use forwarder::{Finished, Forwarder, Ingress};
use published::{Published, Request};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The devices of one port: frames are received on `rx` and sent on `tx`; with an express
/// lane ([`express`]), the traffic of the best priority is received on `express` (read first)
/// and the rest on `rx`.
pub struct PortIo {
    pub rx: Box<dyn Device>,
    pub tx: Box<dyn Device>,
    pub express: Option<Box<dyn Device>>,
}

/// How the work is spread over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
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
            Priority::RealTime(p) => {
                // The nice value a saturated thread keeps when it leaves real time
                // (Saturation), set while the thread may still raise it.
                crate::io::sys::raise_thread_priority(SATURATED_NICE);
                match crate::io::sys::set_thread_realtime(i32::from(p)) {
                    Ok(()) => self,
                    Err(_) => Priority::Nice(SATURATED_NICE),
                }
            }
        }
    }
}

/// A real-time forwarding thread that has not slept for this long is saturated: it leaves real
/// time for good, for the nice value [`SATURATED_NICE`] it was given before. A real-time
/// thread that never sleeps is throttled by the kernel (stopped 50 ms of every second by
/// default: measured here as pings held 25-49 ms every 0.84 s under a CPU-saturating flood),
/// and it keeps the kernel's own softirq thread from the CPU it shares. For good: returning to
/// real time needs CAP_SYS_NICE, which the thread gave up (docs/operations.md, Privileges).
pub const SATURATED_AFTER: Nanos = 10_000_000;
pub const SATURATED_NICE: i32 = -10;

/// A forwarding thread's real-time priority while it saturates its CPU (see
/// [`SATURATED_AFTER`]): one system call when it leaves, none per frame or turn.
#[derive(Debug)]
pub(crate) struct Saturation {
    /// At real-time priority (and watching for saturation).
    realtime: bool,
    busy_since: Nanos,
    waited: bool,
    /// Times the thread left real time (0 or 1; for tests and the log at the end).
    pub(crate) demotions: u64,
}

impl Saturation {
    pub(crate) fn new(granted: Priority) -> Saturation {
        Saturation {
            realtime: matches!(granted, Priority::RealTime(_)),
            busy_since: 0,
            waited: true,
            demotions: 0,
        }
    }

    /// A turn starts at `now`.
    #[inline]
    pub(crate) fn turn(&mut self, now: Nanos) {
        if !self.realtime {
            return;
        }
        if self.waited {
            self.waited = false;
            self.busy_since = now;
        } else if now.saturating_sub(self.busy_since) >= SATURATED_AFTER {
            // Tried once: a refusal leaves the thread as it is, without asking again.
            self.realtime = false;
            self.demotions += u64::from(crate::io::sys::set_thread_normal());
        }
    }

    /// The thread is about to wait for frames: its busy time starts again at the next turn.
    #[inline]
    pub(crate) fn waiting(&mut self) {
        self.waited = true;
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub threads: Threads,
    /// How long queued frames may still leave after a stop is asked.
    pub shutdown_grace: Duration,
    /// Waits shorter than this are spun rather than slept (timer overshoot is tens of us).
    pub spin_below: Duration,
    /// Large (GSO / jumbo) buffers per egress port for frames waiting in queues; small ones
    /// cover every queue slot. Each forwarding thread's pool holds [`BATCH`] more per ingress,
    /// lent to the receive side.
    pub large_buffers: usize,
    /// How weir's threads ask for the CPU (best effort: what the kernel refuses is not an
    /// error).
    pub priority: Priority,
    /// Run-to-completion loops keep polling this long after the last frame before they sleep:
    /// a frame after a short pause then finds the thread awake (no wake-up on this VM's idle
    /// vCPU, which took milliseconds). Zero: sleep as soon as there is nothing to do.
    pub busy_poll: Duration,
    /// The ports' MTU: a frame that comes without offload state is a TCP super-frame when its
    /// IP packet is longer than this (devices without vnet headers).
    pub mtu: u32,
    /// Each forwarding thread gives up every capability once it has its scheduling priority
    /// (it needs none to forward on sockets already open).
    pub drop_privileges: bool,
    /// The budgets' counts as the store kept them (each taken if it is of the period the
    /// bridge starts in).
    pub saved_budgets: Vec<crate::budget::Saved>,
    /// Forwarding thread `i` is pinned to CPU `cpus[i % cpus.len()]`; empty: not pinned (the
    /// threads run wherever the process may).
    pub cpus: Vec<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: Threads::RunToCompletion,
            shutdown_grace: Duration::from_millis(1000),
            spin_below: Duration::from_micros(50),
            large_buffers: 256,
            priority: Priority::Nice(-10),
            busy_poll: Duration::ZERO,
            mtu: crate::pipeline::DEFAULT_MTU,
            drop_privileges: false,
            saved_budgets: Vec::new(),
            cpus: Vec::new(),
        }
    }
}

/// How often, at most, an ingress reads its device's kernel drop counter while frames arrive
/// (a system call on AF_PACKET; the kernel's counter is 32 bits, which one second cannot
/// overflow).
pub const KERNEL_DROPS_EVERY: Nanos = 1_000_000_000;

/// The kernel drop counter of each port's receiving devices (lan, wan), as their ingresses
/// last read them: one per forwarding thread (each worker has its own socket), summed by
/// [`get`](Self::get); `counted` says whether the devices have one at all.
#[derive(Debug, Default)]
pub struct KernelDropCounters {
    frames: Vec<[AtomicU64; 2]>,
    counted: [AtomicBool; 2],
}

impl KernelDropCounters {
    /// Room for `sockets` receiving sockets (slots).
    pub fn new(sockets: usize) -> KernelDropCounters {
        KernelDropCounters {
            frames: (0..sockets).map(|_| Default::default()).collect(),
            counted: Default::default(),
        }
    }

    /// Read `dev`'s counter (a system call on AF_PACKET) and publish it in `slot` for port
    /// `side`.
    pub(crate) fn read(&self, slot: usize, side: Side, dev: &mut dyn Device) {
        if let (Some(n), Some(slot)) = (dev.kernel_drops(), self.frames.get(slot)) {
            slot[side.index()].store(n, Ordering::Relaxed);
            self.counted[side.index()].store(true, Ordering::Relaxed);
        }
    }

    /// The last values read for port `side`, summed; `None` when its devices have no counter.
    pub fn get(&self, side: Side) -> Option<u64> {
        let i = side.index();
        self.counted[i].load(Ordering::Relaxed).then(|| {
            self.frames
                .iter()
                .map(|f| f[i].load(Ordering::Relaxed))
                .sum()
        })
    }
}

/// Each port's link as its forwarding threads last found it (for `weir status` and the
/// metrics): a state code and, when not up, since when (Unix milliseconds).
#[derive(Debug, Default)]
pub struct LinkStates {
    state: [std::sync::atomic::AtomicU8; 2],
    since_ms: [AtomicU64; 2],
}

impl LinkStates {
    const NAMES: [&'static str; 4] = ["up", "set down", "no carrier", "gone"];

    pub(crate) fn set(&self, side: Side, link: crate::io::Link) {
        let code = match link {
            crate::io::Link::Up => 0,
            crate::io::Link::Down => 1,
            crate::io::Link::NoCarrier => 2,
            crate::io::Link::Gone => 3,
        };
        let i = side.index();
        if self.state[i].swap(code, Ordering::Relaxed) != code {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            self.since_ms[i].store(ms, Ordering::Relaxed);
        }
    }

    /// Port `side`'s link: `up`, `set down`, `no carrier` or `gone`, and for how many seconds
    /// it has not been up.
    pub fn get(&self, side: Side) -> (&'static str, Option<f64>) {
        let i = side.index();
        let code = usize::from(self.state[i].load(Ordering::Relaxed)).min(3);
        if code == 0 {
            return ("up", None);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let since = self.since_ms[i].load(Ordering::Relaxed);
        (
            Self::NAMES[code],
            Some(now.saturating_sub(since) as f64 / 1000.0),
        )
    }
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
    /// Frames each port received (lan, wan); a GSO super-frame cut into segments counts as its
    /// segments.
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
    /// Flows' owners (`user`, `cmd`, ... rules); all 0 when no rule tests them.
    pub owners: OwnerCounts,
}

/// What the owner resolver did, over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OwnerCounts {
    /// New TCP and UDP flows whose owner was asked for, found, and not found (no local
    /// socket, or it closed before the question).
    pub asked: u64,
    pub found: u64,
    pub unknown: u64,
    /// Questions not asked (too many waiting) and answers lost (too many waiting): their
    /// flows' owners count as unknown.
    pub questions_dropped: u64,
    pub answers_dropped: u64,
    /// Frames classified while their flow's owner was being asked for.
    pub frames_before_owner: u64,
    /// Time from taking a question to its answer on the resolver's thread, in microseconds
    /// (sock_diag, the /proc walk when the socket is new to it, the process's files).
    pub lookup_us_p50: u64,
    pub lookup_us_p99: u64,
    pub lookup_us_max: u64,
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
    #[error(
        "port {port}: interface {interface} disappeared (deleted, or moved to another \
         namespace); weir stopped, and the frames queued for it are counted as link_down. \
         Start weir again once the interface is back"
    )]
    Gone { port: String, interface: String },
    #[error("a weir thread failed: {0}")]
    Thread(String),
    #[error("the owner resolver (user, cmd, ... rules): {0}")]
    Owners(String),
}

/// Run the bridge until `stop` is set (then drain and return the counters).
pub fn run(
    plan: Arc<Plan>,
    ports: [PortIo; 2],
    stop: Arc<AtomicBool>,
    opts: &Options,
) -> Result<RunReport, RunError> {
    start(plan, ports, stop, opts)?.wait()
}

/// A running bridge: its forwarding threads, what they publish and where requests reach them.
pub struct Bridge {
    threads: Vec<std::thread::JoinHandle<Finished>>,
    shared: Arc<Published>,
    requests: Vec<Sender<Request>>,
    clock: Arc<SystemClock>,
    started: Instant,
    rx_names: [String; 2],
    stop: Arc<AtomicBool>,
    first_error: Option<RunError>,
    /// The resolver of flows' owners, when the rules test them (joined with the bridge).
    owners: Option<owners::Resolver>,
}

/// Start the forwarding threads; they run until `stop` is set. Returns once every one of them
/// runs (with its priority, and its privileges given up when asked), or after 5 s.
pub fn start(
    plan: Arc<Plan>,
    ports: [PortIo; 2],
    stop: Arc<AtomicBool>,
    opts: &Options,
) -> Result<Bridge, RunError> {
    start_workers(plan, vec![ports], stop, opts)
}

/// [`start`] with several workers (`weir run --workers N`): each set of ports is one worker's
/// (its receiving sockets in a fanout group per port, so that each flow reaches one worker,
/// and its own sending sockets), laid out as `opts.threads` says. Every worker has its own
/// pipeline; with more than one, their schedulers draw every rate (links, classes' rate, ceil
/// and police) from shared buckets ([`crate::sched::shared_rate`]), so that the rates hold
/// for the sum over workers.
pub fn start_workers(
    plan: Arc<Plan>,
    workers: Vec<[PortIo; 2]>,
    stop: Arc<AtomicBool>,
    opts: &Options,
) -> Result<Bridge, RunError> {
    let clock = Arc::new(SystemClock::new());
    let started = Instant::now();
    let per_worker = match opts.threads {
        Threads::RunToCompletion => 1,
        Threads::PerDirection => 2,
    };
    let count = per_worker * workers.len();
    let rates = (workers.len() > 1)
        .then(|| crate::sched::shared_rate::RateRegistry::new(crate::sched::shared_rate::LEASE_NS));
    let mut shared = Published::new(count, &plan);
    shared.ledger = Arc::new(crate::budget::Ledger::new(
        &plan.budgets,
        plan.timezone.clone(),
        opts.saved_budgets.clone(),
    ));
    let shared = Arc::new(shared);
    let Some(first) = workers.first() else {
        return Err(RunError::Thread("no worker was given ports".into()));
    };
    let rx_names = [
        first[0].rx.name().to_string(),
        first[1].rx.name().to_string(),
    ];
    let mut requests = Vec::new();
    let running = Arc::new(AtomicU64::new(0));
    // Opened here, before any thread gives up its privileges (entering a namespace needs them).
    let mut resolver = if plan.reads_owners {
        Some(
            owners::Resolver::start(
                &plan.owner_netns,
                count,
                plan.reads_processes,
                Arc::clone(&stop),
            )
            .map_err(|e| RunError::Owners(e.to_string()))?,
        )
    } else {
        None
    };
    let mut make = |index: usize, ingresses: Vec<Ingress>, egress: [Option<Box<dyn Device>>; 2]| {
        let (tx, rx) = crossbeam_channel::bounded(REQUESTS_QUEUED);
        requests.push(tx);
        let owners = resolver.as_mut().map(|r| {
            (
                r.questions.clone(),
                std::mem::replace(&mut r.answers[index], crossbeam_channel::never()),
            )
        });
        Forwarder::new(
            Arc::clone(&plan),
            ingresses,
            egress,
            Arc::clone(&shared),
            index,
            rx,
            owners,
            opts,
            Arc::clone(&stop),
            clock.now(),
            rates.clone(),
        )
    };
    let mut forwarders = Vec::new();
    for (w, [lan, wan]) in workers.into_iter().enumerate() {
        let name = |n: &str| {
            if count > per_worker {
                format!("{n}-{w}")
            } else {
                n.to_string()
            }
        };
        match opts.threads {
            Threads::RunToCompletion => forwarders.push((
                name("weir-fwd"),
                make(
                    forwarders.len(),
                    ingresses([
                        (Side::Lan, lan.rx, lan.express),
                        (Side::Wan, wan.rx, wan.express),
                    ]),
                    [Some(lan.tx), Some(wan.tx)],
                ),
            )),
            // Frames entering on lan leave on wan, and the reverse.
            Threads::PerDirection => {
                let up = make(
                    forwarders.len(),
                    ingresses([(Side::Lan, lan.rx, lan.express)]),
                    [None, Some(wan.tx)],
                );
                forwarders.push((name("weir-up"), up));
                let down = make(
                    forwarders.len(),
                    ingresses([(Side::Wan, wan.rx, wan.express)]),
                    [Some(lan.tx), None],
                );
                forwarders.push((name("weir-down"), down));
            }
        }
    }
    let mut bridge = Bridge {
        threads: Vec::new(),
        shared,
        requests,
        clock: Arc::clone(&clock),
        started,
        rx_names,
        stop: Arc::clone(&stop),
        first_error: None,
        owners: resolver,
    };
    let count = forwarders.len() as u64;
    for (name, fwd) in forwarders {
        let (clock, running) = (Arc::clone(&clock), Arc::clone(&running));
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || fwd.run(&clock, &running))
        {
            Ok(t) => bridge.threads.push(t),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                bridge
                    .first_error
                    .get_or_insert(RunError::Thread(e.to_string()));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.load(Ordering::Acquire) < count
        && Instant::now() < deadline
        && !stop.load(Ordering::Relaxed)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(bridge)
}

/// A port's receiving sockets: its own, and its express lane's.
type Receivers = (Side, Box<dyn Device>, Option<Box<dyn Device>>);

/// A forwarder's ingresses: the express sockets first (each turn reads them first), then
/// the ports' own.
fn ingresses<const N: usize>(ports: [Receivers; N]) -> Vec<Ingress> {
    let mut express = Vec::new();
    let mut bulk = Vec::new();
    for (side, rx, fast) in ports {
        if let Some(dev) = fast {
            express.push(Ingress::express(side, dev));
        }
        bulk.push(Ingress::new(side, rx));
    }
    express.extend(bulk);
    express
}

/// Requests waiting per forwarding thread; more are refused (the control plane says busy).
pub const REQUESTS_QUEUED: usize = 16;

impl Bridge {
    /// What the forwarding threads publish.
    pub fn published(&self) -> &Arc<Published> {
        &self.shared
    }

    /// Where requests reach each forwarding thread.
    pub fn requests(&self) -> &[Sender<Request>] {
        &self.requests
    }

    /// The clock the threads publish their times on.
    pub fn clock(&self) -> &Arc<SystemClock> {
        &self.clock
    }

    /// The interfaces the ports receive on (lan, wan).
    pub fn interfaces(&self) -> &[String; 2] {
        &self.rx_names
    }

    /// The flag that stops the bridge.
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// Wait for the threads to end (after a stop, or a device failure) and report.
    pub fn wait(self) -> Result<RunReport, RunError> {
        let Bridge {
            threads,
            shared,
            started,
            rx_names,
            stop,
            mut first_error,
            owners,
            ..
        } = self;
        let mut finished: Vec<Finished> = Vec::new();
        for t in threads {
            match t.join() {
                Ok(f) => finished.push(f),
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error
                        .get_or_insert(RunError::Thread("a forwarding thread panicked".into()));
                }
            }
        }
        let span_ns = started.elapsed().as_nanos() as u64;
        let mut report = RunReport {
            seconds: started.elapsed().as_secs_f64(),
            totals: Totals::default(),
            classes: Vec::new(),
            received_per_port: [0; 2],
            buffers_outstanding: 0,
            gso_split: GsoSplit::default(),
            kernel_drops: Side::BOTH.map(|side| KernelDrops {
                port: side.name(),
                interface: rx_names[side.index()].clone(),
                frames: shared.kernel_drops.get(side),
            }),
            error: None,
            owners: OwnerCounts::default(),
        };
        // Upload (wan) first in the table: it is what users usually shape.
        let mut reported = [false; 2];
        for side in [Side::Wan, Side::Lan] {
            let pipelines: Vec<&crate::pipeline::Pipeline<u32>> = finished
                .iter()
                .filter(|f| f.egress_sides.contains(&side))
                .map(|f| &f.pipeline)
                .collect();
            if pipelines.is_empty() {
                continue;
            }
            let (classes, totals) =
                crate::pipeline::Pipeline::merged_class_reports(&pipelines, side, span_ns);
            report.classes.extend(classes);
            report.totals.received += totals.received;
            report.totals.forwarded += totals.forwarded;
            report.totals.dropped += totals.dropped;
            report.totals.queued += totals.queued;
            reported[side.index()] = true;
        }
        for f in finished {
            let r = f.pipeline.received();
            report.received_per_port[0] += r[0];
            report.received_per_port[1] += r[1];
            let g = f.pipeline.gso_split();
            report.gso_split.super_frames += g.super_frames;
            report.gso_split.segments += g.segments;
            report.buffers_outstanding += f.buffers_outstanding;
            let n = f.pipeline.classifier_stats().names;
            report.owners.asked += n.owners_asked;
            report.owners.found += n.owners_found;
            report.owners.unknown += n.owners_unknown;
            report.owners.questions_dropped += n.owner_questions_dropped;
            report.owners.frames_before_owner += n.frames_before_owner;
            if let Some(e) = f.fatal {
                first_error.get_or_insert(e);
            }
        }
        // Without both ports' counters there is nothing to report: the error is all there is.
        if reported != [true; 2] {
            return Err(first_error.unwrap_or_else(|| {
                RunError::Thread("a port's counters were not returned".into())
            }));
        }
        if let Some(r) = owners {
            report.owners.answers_dropped = r.answers_dropped.load(Ordering::Relaxed);
            let lookup_us = Arc::clone(&r.lookup_us);
            // Joins its thread, which has seen the stop.
            drop(r);
            let h = lookup_us.lock().unwrap_or_else(|p| p.into_inner());
            if !h.is_empty() {
                report.owners.lookup_us_p50 = h.value_at_quantile(0.5);
                report.owners.lookup_us_p99 = h.value_at_quantile(0.99);
                report.owners.lookup_us_max = h.max();
            }
        }
        report.error = first_error.map(|e| e.to_string());
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
