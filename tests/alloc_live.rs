//! No heap allocation per frame in the live bridge: `weir::runtime::run` on real AF_PACKET
//! sockets in a namespace lab, in each thread layout, and with two workers sharing their rates.
//!
//! tests/alloc.rs counts per thread, for code the test calls itself; the live runtime works on
//! threads of its own, so this binary counts process-wide: a global counter, armed by a global
//! flag. While it is armed, the main thread only sleeps, and the traffic comes from other
//! processes (`weir send`, iperf3) started before arming, told to wait a second before they
//! begin. So every allocation counted is the runtime's.
//!
//! For each layout: start the bridge, warm it up with the very flows measured (both ways; flow
//! tables, queues, channel wakers and pools reach their steady state), then arm and let
//! - ~60,000 small UDP frames cross (~30,000 each way, many flows, several classes), and
//! - TCP with the endpoints' offloads on cross, whole GSO super-frames in one class and
//!   super-frames cut into segments in another (a class under 1 Gbit/s),
//!
//! and assert that nothing was allocated (the forwarding threads publish their counters for
//! the control plane every 100 ms throughout, and walk their flow tables), and that the frames
//! did cross (the receivers'
//! interface counters grew by what was sent), so the test cannot pass on an idle bridge.
//!
//! Debug aid: `WEIR_ALLOC_BACKTRACE=N` prints the backtraces of the first N allocations counted.
//!
//! The harness is our own (`harness = false` in Cargo.toml): libtest's threads allocate at
//! times of their own (starting test threads, the "running for over 60 seconds" notice), which
//! a process-wide count would see. Needs root; skips loudly otherwise, fails under `CI=true`.
//! The lab is removed when this ends, also on failure; every wait is bounded.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::io::af_packet::{AfPacket, AfPacketOptions, Fanout, RxMode};
use weir::runtime::{self, PortIo, RunReport, Threads};
use weir::tools::lab::{ChildGuard, Lab};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

// ---- the process-wide counting allocator ----

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Backtraces still to print (`WEIR_ALLOC_BACKTRACE`).
static TRACES_LEFT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised, no destructor: reading it never allocates.
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

fn count(size: usize) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    // The allocations of a backtrace being printed are not counted (nor traced).
    if TRACING.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    let take = |n: u64| n.checked_sub(1);
    if TRACES_LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, take)
        .is_ok()
    {
        TRACING.with(|t| t.set(true));
        let thread = std::thread::current();
        eprintln!(
            "allocation of {size} bytes on thread {:?} while armed:\n{}",
            thread.name().unwrap_or("?"),
            std::backtrace::Backtrace::force_capture()
        );
        TRACING.with(|t| t.set(false));
    }
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, which upholds
// GlobalAlloc's contract; the counting around it only touches atomics and const thread-locals
// (and, when tracing, allocates through this same allocator, which is re-entrant).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by the whole process during `window`, while this thread only sleeps.
fn allocations_while_sleeping(window: Duration) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    std::thread::sleep(window);
    ARMED.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

// ---- traffic ----

/// Frames of a UDP phase per direction: the 256-frame capture looped this many times.
const LOOPS: u64 = 117;
const FLOWS: u16 = 256;
/// Per direction; weir send spins for gaps under 50 us, so this leaves the 2 cores some air.
const PPS: u64 = 12_500;
/// Senders wait this long after being started, so that they start after the arming.
const START_DELAY_S: u64 = 1;
/// Seconds of each TCP phase.
const TCP_SECONDS: u64 = 2;

/// Classes on both ports: UDP spread over three, TCP on 5201 whole (1 Gbit/s ceiling), TCP on
/// 5202 under 1 Gbit/s (its super-frames are cut into segments).
const CONFIG: &str = r#"(
    ports: (
        wan: (rate: "1 Gbit", classes: [CLASSES]),
        lan: (rate: "1 Gbit", classes: [CLASSES]),
    ),
)"#;
const CLASSES: &str = r#"
    (name: "dns", match: "udp port 53", priority: 0, rate: "100 Mbit", ceil: "1 Gbit"),
    (name: "sip", match: "udp port 5060", priority: 1, rate: "100 Mbit", ceil: "1 Gbit", fairness: flow),
    (name: "whole", match: "tcp port 5201", priority: 2, rate: "500 Mbit", ceil: "1 Gbit"),
    (name: "cut", match: "tcp port 5202", priority: 2, rate: "100 Mbit", ceil: "200 Mbit"),
    (name: "rest", match: "default", priority: 3, rate: "100 Mbit", ceil: "1 Gbit", fairness: host)"#;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small UDP frames between 198.18.0.1 and 198.18.0.2, `FLOWS` flows over several classes,
/// 60 to 300 bytes. The MACs are nobody's, so the endpoints drop the frames without answering
/// (no ICMP, no ARP) after counting them.
fn udp_capture(path: &Path, from_src: bool) {
    let (a, b) = ([0x02, 0, 0, 0, 0x0a, 0x01], [0x02, 0, 0, 0, 0x0a, 0x02]);
    let (ha, hb) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    let (smac, dmac, sip, dip) = if from_src {
        (a, b, ha, hb)
    } else {
        (b, a, hb, ha)
    };
    let mut w = weir::capture::CaptureWriter::create(path).expect("create capture");
    for i in 0..FLOWS {
        let dport = [53, 5060, 443, 9999][usize::from(i % 4)];
        let payload = vec![i as u8; 18 + usize::from(i % 8) * 32];
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(smac, dmac)
            .ipv4(sip, dip, 64)
            .udp(20000 + i, dport)
            .write(&mut f, &payload)
            .unwrap();
        w.write(u64::from(i) * 1000, &f, f.len() as u32).unwrap();
    }
    w.finish().unwrap();
}

/// `weir send` of `capture` on the namespace's interface, `loops` times at `PPS`, after
/// `delay_s` seconds.
fn sender(
    lab: &Lab,
    ns: &str,
    ifname: &str,
    capture: &Path,
    loops: u64,
    delay_s: u64,
) -> ChildGuard {
    let script = format!(
        "sleep {delay_s}; exec {WEIR} send {} -i {ifname} --pps {PPS} --loop {loops} >/dev/null",
        capture.display()
    );
    lab.spawn(ns, &["sh", "-c", &script])
        .expect("start weir send")
}

/// iperf3 servers on 5201 and 5202 in dst (one test each), and TCP clients to both from src,
/// each running `TCP_SECONDS` after `delay_s` seconds.
fn tcp(lab: &Lab, delay_s: u64) -> Vec<ChildGuard> {
    let mut guards = Vec::new();
    for port in ["5201", "5202"] {
        guards.push(
            lab.spawn(&lab.dst_ns, &["iperf3", "-s", "-1", "-p", port])
                .expect("iperf3 server"),
        );
        common::wait_listening(lab, &lab.dst_ns, port, Duration::from_secs(5));
    }
    for port in ["5201", "5202"] {
        let script = format!(
            "sleep {delay_s}; exec iperf3 -c 198.18.0.2 -p {port} -t {TCP_SECONDS} \
             --connect-timeout 2000 >/dev/null"
        );
        guards.push(
            lab.spawn(&lab.src_ns, &["sh", "-c", &script])
                .expect("iperf3 client"),
        );
    }
    guards
}

/// Waits (bounded) for every process to exit, and asserts that each succeeded.
fn wait_all(guards: Vec<ChildGuard>, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    for mut g in guards {
        while !g.has_exited() {
            assert!(
                Instant::now() < deadline,
                "{what}: `{}` still running after {timeout:?}",
                g.command_line()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = g.stop().expect("exit status");
        assert!(
            status.success(),
            "{what}: `{}` failed: {status}",
            g.command_line()
        );
    }
}

/// (frames received by dst0, frames received by src0).
fn received(lab: &Lab) -> (u64, u64) {
    (
        common::if_counter(lab, &lab.dst_ns, &lab.dst_if, "rx_packets"),
        common::if_counter(lab, &lab.src_ns, &lab.src_if, "rx_packets"),
    )
}

// ---- the bridge ----

/// Each worker's sockets on both ports, opened in the dut namespace as `weir run` opens them
/// (with more than one worker, each port's receiving sockets in a fanout group).
fn open_ports(lab: &Lab, rx: RxMode, workers: usize) -> Vec<[PortIo; 2]> {
    let ns = PathBuf::from("/var/run/netns").join(&lab.dut_ns);
    let names = [lab.dut_lan_if.clone(), lab.dut_wan_if.clone()];
    std::thread::spawn(move || {
        weir::io::sys::netdev::enter_network_namespace(&ns).expect("enter the dut namespace");
        (0..workers)
            .map(|_| {
                names.clone().map(|name| {
                    let group =
                        (workers > 1).then(|| Fanout::Join(0x2a0 + u16::from(name == names[1])));
                    let open = |promiscuous, send_only| {
                        let opts = AfPacketOptions {
                            promiscuous,
                            vnet_hdr: true,
                            send_only,
                            rx,
                            fanout: group,
                            filter: None,
                        };
                        Box::new(AfPacket::open(&name, &opts).expect("open AF_PACKET"))
                    };
                    PortIo {
                        rx: open(true, false),
                        tx: open(false, true),
                        express: None,
                    }
                })
            })
            .collect()
    })
    .join()
    .expect("opening the ports")
}

/// What one layout measured.
#[derive(Debug)]
struct Measured {
    layout: Threads,
    workers: usize,
    udp_allocs: u64,
    /// Frames sent each way, and received by dst0 and by src0 in the armed window.
    udp_sent: u64,
    udp_received: (u64, u64),
    tcp_allocs: u64,
    tcp_received: (u64, u64),
    report: RunReport,
}

fn measure(
    lab: &Lab,
    layout: Threads,
    rx: RxMode,
    workers: usize,
    captures: &(PathBuf, PathBuf),
) -> Measured {
    let plan = weir::config::parse(&CONFIG.replace("CLASSES", CLASSES), Path::new("alloc.ron"))
        .expect("config");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = runtime::Options {
        threads: layout,
        ..runtime::Options::default()
    };
    let ports = open_ports(lab, rx, workers);
    let bridge = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            runtime::start_workers(Arc::new(plan), ports, stop, &opts)?.wait()
        })
    };
    // Stops the bridge however this function ends.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop_guard = StopOnDrop(Arc::clone(&stop));
    let (src_if, dst_if) = (lab.src_if.as_str(), lab.dst_if.as_str());
    let (fwd, rev) = captures;
    let udp_window = Duration::from_secs(START_DELAY_S)
        + Duration::from_millis(1000 * LOOPS * u64::from(FLOWS) / PPS + 1500);

    // Warm-up: the same flows, both ways, then TCP on both ports.
    wait_all(
        vec![
            sender(lab, &lab.src_ns, src_if, fwd, 20, 0),
            sender(lab, &lab.dst_ns, dst_if, rev, 20, 0),
        ],
        Duration::from_secs(10),
        "warm-up senders",
    );
    wait_all(
        tcp(lab, 0),
        Duration::from_secs(TCP_SECONDS + 10),
        "warm-up TCP",
    );
    std::thread::sleep(Duration::from_millis(300));

    // Small UDP frames both ways.
    let before = received(lab);
    let senders = vec![
        sender(lab, &lab.src_ns, src_if, fwd, LOOPS, START_DELAY_S),
        sender(lab, &lab.dst_ns, dst_if, rev, LOOPS, START_DELAY_S),
    ];
    let udp_allocs = allocations_while_sleeping(udp_window);
    wait_all(senders, Duration::from_secs(5), "UDP senders");
    std::thread::sleep(Duration::from_millis(200));
    let after = received(lab);
    let udp_received = (after.0 - before.0, after.1 - before.1);

    // TCP, whole super-frames on 5201 and cut ones on 5202, at once.
    let before = received(lab);
    let clients = tcp(lab, START_DELAY_S);
    let tcp_allocs = allocations_while_sleeping(
        Duration::from_secs(START_DELAY_S + TCP_SECONDS) + Duration::from_millis(1500),
    );
    wait_all(clients, Duration::from_secs(10), "TCP");
    let after = received(lab);
    let tcp_received = (after.0 - before.0, after.1 - before.1);

    drop(stop_guard);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bridge.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{layout:?}: the bridge did not stop in 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = bridge
        .join()
        .expect("the bridge thread")
        .unwrap_or_else(|e| panic!("{layout:?}: {e}"));
    Measured {
        layout,
        workers,
        udp_allocs,
        udp_sent: LOOPS * u64::from(FLOWS),
        udp_received,
        tcp_allocs,
        tcp_received,
        report,
    }
}

fn main() {
    let name = "the_live_runtime_does_not_allocate_per_frame";
    if !common::require_root(name) {
        return;
    }
    // The counter counts: one boxed value is one allocation (nothing else runs yet).
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(Box::new(7u64)));
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 1);
    if let Ok(n) = std::env::var("WEIR_ALLOC_BACKTRACE") {
        TRACES_LEFT.store(n.parse().unwrap_or(1), Ordering::Relaxed);
    }

    let lab = common::lab("alloc-live");
    let dir = TempDir(std::env::temp_dir().join(format!("weir-alloc-live-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let captures = (dir.0.join("fwd.pcap"), dir.0.join("rev.pcap"));
    udp_capture(&captures.0, true);
    udp_capture(&captures.1, false);

    let mut failures = Vec::new();
    // Every layout with recvmmsg, the default layout with each receive ring (V3, V2), and two
    // workers (whose schedulers share their rates) in the default layout and receive mode.
    for (layout, rx, workers) in [
        (Threads::RunToCompletion, RxMode::Mmsg, 1),
        (Threads::PerDirection, RxMode::Mmsg, 1),
        (Threads::RunToCompletion, RxMode::Ring, 1),
        (Threads::RunToCompletion, RxMode::RingV2, 1),
        (Threads::RunToCompletion, RxMode::RingV2, 2),
    ] {
        let m = measure(&lab, layout, rx, workers, &captures);
        let r = &m.report;
        eprintln!(
            "{:?} {rx:?} {} worker(s): UDP {} allocations, sent {} each way, received {} at dst0 and {} at src0; \
             TCP {} allocations, received {} at dst0 and {} at src0; GSO cut {} into {}; \
             run: received {} = forwarded {} + dropped {}; the kernel dropped {:?} (lan) and \
             {:?} (wan) before weir took them",
            m.layout,
            m.workers,
            m.udp_allocs,
            m.udp_sent,
            m.udp_received.0,
            m.udp_received.1,
            m.tcp_allocs,
            m.tcp_received.0,
            m.tcp_received.1,
            r.gso_split.super_frames,
            r.gso_split.segments,
            r.totals.received,
            r.totals.forwarded,
            r.totals.dropped,
            r.kernel_drops[0].frames,
            r.kernel_drops[1].frames,
        );
        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!("{layout:?} {rx:?} {workers} worker(s): {what}"));
            }
        };
        check(
            m.udp_allocs == 0,
            format!("{} allocations in the UDP phase", m.udp_allocs),
        );
        check(
            m.tcp_allocs == 0,
            format!("{} allocations in the TCP phase", m.tcp_allocs),
        );
        // Each way, what was sent arrived (a few more: the endpoints' own chatter; a few less:
        // on 2 busy cores the bridge may fall behind two senders, and the kernel drops what
        // its sockets cannot hold).
        for (got, way) in [
            (m.udp_received.0, "src to dst"),
            (m.udp_received.1, "dst to src"),
        ] {
            check(
                got >= m.udp_sent * 9 / 10 && got <= m.udp_sent + 100,
                format!("UDP {way}: {got} frames received of {} sent", m.udp_sent),
            );
        }
        // TCP crossed both ways. Frames, not bytes: a whole super-frame is one frame at the
        // receiver, so the counts swing with GSO and the machine's load (16,466 data and 3,507
        // ACK frames in one loaded run, 34,000 and 9,000 in a quiet one); a thousand each way
        // is still far from an idle bridge.
        check(
            m.tcp_received.0 > 1_000 && m.tcp_received.1 > 1_000,
            format!("TCP: only {:?} frames received", m.tcp_received),
        );
        check(
            r.gso_split.super_frames > 0,
            "no GSO super-frame was cut".into(),
        );
        check(r.error.is_none(), format!("run error {:?}", r.error));
        check(
            r.buffers_outstanding == 0,
            format!("{} buffers outstanding", r.buffers_outstanding),
        );
        check(
            r.totals.received == r.totals.forwarded + r.totals.dropped + r.totals.queued,
            format!("counters do not reconcile: {:?}", r.totals),
        );
    }
    drop(lab);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{name}: ok");
}
