//! The runtime on in-memory devices: frames cross both ways, shaping holds, shutdown reconciles.

use super::*;
use crate::io::memory::{memory_device, MemoryDevice, MemoryHandle};
use crate::io::{RxMeta, TxFrame, VnetHdr};
use std::sync::atomic::AtomicUsize;

const SMALL_CONFIG: &str = r#"(
    ports: (
        wan: (rate: "10 Mbit", classes: [
            (name: "dns", match: "udp port 53", priority: 0, rate: "1 Mbit"),
            (name: "rest", match: "default", rate: "1 Mbit", aqm: (enabled: false), queue: (packets: 2000, bytes: "4 MiB")),
        ]),
        lan: (rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "100 Mbit")]),
    ),
)"#;

struct Harness {
    lan_in: MemoryHandle,
    lan_out: MemoryHandle,
    wan_in: MemoryHandle,
    wan_out: MemoryHandle,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<RunReport, RunError>>,
}

fn start(config: &str, opts: Options) -> Harness {
    start_with(config, opts, |_, _| {})
}

/// Like [`start`], with `before(lan_in, wan_in)` injecting frames before the bridge starts, so
/// that its first receive takes them all in one batch.
fn start_with(
    config: &str,
    opts: Options,
    before: impl FnOnce(&MemoryHandle, &MemoryHandle),
) -> Harness {
    start_wrapped(config, opts, before, |dev| Box::new(dev))
}

/// [`start_with`], with lan's receiving device wrapped by `lan_rx_as`.
fn start_wrapped(
    config: &str,
    opts: Options,
    before: impl FnOnce(&MemoryHandle, &MemoryHandle),
    lan_rx_as: impl FnOnce(MemoryDevice) -> Box<dyn Device>,
) -> Harness {
    let plan = Arc::new(crate::config::parse(config, std::path::Path::new("test.ron")).unwrap());
    let (lan_rx, lan_in) = memory_device("lan-rx", 100_000);
    let lan_rx = lan_rx_as(lan_rx);
    let (lan_tx, lan_out) = memory_device("lan-tx", 100_000);
    let (wan_rx, wan_in) = memory_device("wan-rx", 100_000);
    let (wan_tx, wan_out) = memory_device("wan-tx", 100_000);
    before(&lan_in, &wan_in);
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        run(
            plan,
            [
                PortIo {
                    rx: lan_rx,
                    tx: Box::new(lan_tx),
                    express: None,
                },
                PortIo {
                    rx: Box::new(wan_rx),
                    tx: Box::new(wan_tx),
                    express: None,
                },
            ],
            s,
            &opts,
        )
    });
    Harness {
        lan_in,
        lan_out,
        wan_in,
        wan_out,
        stop,
        thread,
    }
}

fn udp(src: [u8; 4], dst: [u8; 4], dport: u16, len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(40000, dport)
        .write(&mut f, &vec![7u8; len - 42])
        .unwrap();
    f
}

/// Wait (bounded) until `handle` has sent `n` frames in total.
fn collect(handle: &MemoryHandle, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    collect_with_vnet(handle, n, timeout)
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

/// [`collect`], keeping each frame's vnet header.
fn collect_with_vnet(
    handle: &MemoryHandle,
    n: usize,
    timeout: Duration,
) -> Vec<(Vec<u8>, VnetHdr)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(handle.take_sent());
        std::thread::sleep(Duration::from_millis(2));
    }
    got
}

#[test]
fn frames_cross_both_ways_intact_and_in_order_per_direction() {
    frames_cross_both_ways_intact_and_in_order_in(Threads::PerDirection);
}

#[test]
fn frames_cross_both_ways_intact_and_in_order_run_to_completion() {
    frames_cross_both_ways_intact_and_in_order_in(Threads::RunToCompletion);
}

#[test]
fn frames_cross_and_a_stop_is_seen_while_busy_polling() {
    // A poll window far longer than the test: the loop never sleeps, and must still forward,
    // see the stop and drain.
    let started = Instant::now();
    frames_cross_both_ways_intact_and_in_order_with(Options {
        threads: Threads::RunToCompletion,
        busy_poll: Duration::from_secs(3600),
        ..Options::default()
    });
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn frames_cross_both_ways_intact_and_in_order_in(threads: Threads) {
    frames_cross_both_ways_intact_and_in_order_with(Options {
        threads,
        ..Options::default()
    });
}

fn frames_cross_both_ways_intact_and_in_order_with(opts: Options) {
    let h = start(SMALL_CONFIG, opts);
    let up: Vec<Vec<u8>> = (0..50)
        .map(|i| udp([198, 18, 0, 1], [198, 19, 0, 1], 9, 60 + i))
        .collect();
    let down: Vec<Vec<u8>> = (0..50)
        .map(|i| udp([198, 19, 0, 1], [198, 18, 0, 1], 9, 100 + i))
        .collect();
    for f in &up {
        assert!(h.lan_in.inject(f, VnetHdr::NONE));
    }
    for f in &down {
        assert!(h.wan_in.inject(f, VnetHdr::NONE));
    }
    let out_wan = collect(&h.wan_out, 50, Duration::from_secs(5));
    let out_lan = collect(&h.lan_out, 50, Duration::from_secs(5));
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();
    assert_eq!(out_wan, up, "upload frames arrive intact and in order");
    assert_eq!(out_lan, down);
    assert_eq!(report.totals.received, 100);
    assert_eq!(report.totals.forwarded, 100);
    assert_eq!(report.received_per_port, [50, 50]);
    assert_eq!(report.buffers_outstanding, 0);
}

#[test]
fn shaping_holds_and_shutdown_reconciles_per_direction() {
    shaping_holds_and_shutdown_reconciles_in(Threads::PerDirection);
}

#[test]
fn shaping_holds_and_shutdown_reconciles_run_to_completion() {
    shaping_holds_and_shutdown_reconciles_in(Threads::RunToCompletion);
}

fn shaping_holds_and_shutdown_reconciles_in(threads: Threads) {
    // 1000 frames of 1226 bytes (1250 on the wire = 1 ms at 10 Mbit/s) into the wan port.
    let h = start(
        SMALL_CONFIG,
        Options {
            threads,
            shutdown_grace: Duration::from_millis(200),
            ..Options::default()
        },
    );
    let t0 = Instant::now();
    for _ in 0..1000 {
        assert!(h.lan_in.inject(
            &udp([198, 18, 0, 1], [198, 19, 0, 1], 9, 1226),
            VnetHdr::NONE
        ));
    }
    // In 300 ms about 300 can leave; give it 400 ms and count.
    let sent = collect(&h.wan_out, 1000, Duration::from_millis(400));
    let elapsed = t0.elapsed().as_secs_f64();
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();
    let allowed = (elapsed * 1000.0) as usize + 3;
    assert!(
        sent.len() <= allowed,
        "{} frames left in {elapsed:.3} s at 1 frame/ms",
        sent.len()
    );
    assert!(
        sent.len() >= 200,
        "only {} frames in {elapsed:.3} s",
        sent.len()
    );
    let t = report.totals;
    assert_eq!(t.received, 1000);
    assert_eq!(t.queued, 0);
    assert_eq!(t.received, t.forwarded + t.dropped);
    let rest = report
        .classes
        .iter()
        .find(|c| c.port == "wan" && c.name == "rest")
        .unwrap();
    assert!(
        rest.drops_by_reason["shutdown"] > 0,
        "the backlog could not all leave in the grace time"
    );
    assert_eq!(report.buffers_outstanding, 0);
}

#[test]
fn priority_traffic_overtakes_a_backlog_per_direction() {
    priority_traffic_overtakes_a_backlog_in(Threads::PerDirection);
}

#[test]
fn priority_traffic_overtakes_a_backlog_run_to_completion() {
    priority_traffic_overtakes_a_backlog_in(Threads::RunToCompletion);
}

fn priority_traffic_overtakes_a_backlog_in(threads: Threads) {
    let h = start(
        SMALL_CONFIG,
        Options {
            threads,
            ..Options::default()
        },
    );
    for _ in 0..500 {
        h.lan_in.inject(
            &udp([198, 18, 0, 1], [198, 19, 0, 1], 9, 1226),
            VnetHdr::NONE,
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    let dns = udp([198, 18, 0, 1], [198, 19, 0, 53], 53, 80);
    h.lan_in.inject(&dns, VnetHdr::NONE);
    let t = Instant::now();
    let mut seen = false;
    while !seen && t.elapsed() < Duration::from_secs(2) {
        seen = h.wan_out.take_sent().iter().any(|(f, _)| *f == dns);
        std::thread::sleep(Duration::from_micros(200));
    }
    let waited = t.elapsed();
    h.stop.store(true, Ordering::Relaxed);
    h.thread.join().unwrap().unwrap();
    assert!(seen, "the DNS frame never left");
    // Behind 450-odd ms of backlog, it must leave within a few frame times; the bound is
    // generous (a loaded 2-core machine can stall a thread for tens of ms) but far below 450.
    assert!(waited < Duration::from_millis(250), "DNS waited {waited:?}");
}

#[test]
fn truncated_frames_are_counted_not_lost_per_direction() {
    truncated_frames_are_counted_not_lost_in(Threads::PerDirection);
}

#[test]
fn truncated_frames_are_counted_not_lost_run_to_completion() {
    truncated_frames_are_counted_not_lost_in(Threads::RunToCompletion);
}

fn truncated_frames_are_counted_not_lost_in(threads: Threads) {
    let h = start(
        SMALL_CONFIG,
        Options {
            threads,
            ..Options::default()
        },
    );
    h.lan_in.inject(&[0u8; 10], VnetHdr::NONE);
    std::thread::sleep(Duration::from_millis(50));
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();
    assert_eq!(report.totals.received, 1);
    assert_eq!(report.totals.dropped, 1);
    let d: u64 = report
        .classes
        .iter()
        .map(|c| c.drops_by_reason["malformed"])
        .sum();
    assert_eq!(d, 1);
    assert_eq!(report.buffers_outstanding, 0);
}

/// A device whose sends always fail with an error that says nothing about its link.
struct Broken;

impl crate::io::Device for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn recv_batch(&mut self, _: &mut [Box<[u8]>], _: &mut [RxMeta]) -> std::io::Result<usize> {
        Ok(0)
    }
    fn send_batch(&mut self, _: &[TxFrame<'_>]) -> std::io::Result<usize> {
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    }
    fn wait_readable(&mut self, t: Duration) -> std::io::Result<bool> {
        std::thread::sleep(t.min(Duration::from_millis(1)));
        Ok(false)
    }
    fn offloads(&self) -> bool {
        false
    }
}

#[test]
fn a_failing_device_stops_the_bridge_but_keeps_the_counters() {
    for threads in [Threads::RunToCompletion, Threads::PerDirection] {
        let plan =
            Arc::new(crate::config::parse(SMALL_CONFIG, std::path::Path::new("t.ron")).unwrap());
        let (lan_rx, lan_in) = memory_device("lan-rx", 1000);
        let (lan_tx, _) = memory_device("lan-tx", 1000);
        let (wan_rx, _) = memory_device("wan-rx", 1000);
        for _ in 0..20 {
            lan_in.inject(
                &udp([198, 18, 0, 1], [198, 19, 0, 1], 9, 200),
                VnetHdr::NONE,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ports = [
            PortIo {
                rx: Box::new(lan_rx),
                tx: Box::new(lan_tx),
                express: None,
            },
            PortIo {
                rx: Box::new(wan_rx),
                tx: Box::new(Broken),
                express: None,
            },
        ];
        let opts = Options {
            threads,
            ..Options::default()
        };
        // No one sets `stop`: the failure must end the run by itself, within a bounded time.
        let t = Instant::now();
        let report = run(plan, ports, stop, &opts).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{threads:?}");
        let err = report.error.as_deref().unwrap_or_default();
        assert!(err.contains("sending on wan"), "{threads:?}: {err:?}");
        let tot = report.totals;
        assert_eq!(tot.received, 20, "{threads:?}");
        assert_eq!(tot.received, tot.forwarded + tot.dropped, "{threads:?}");
        let tx_errors: u64 = report
            .classes
            .iter()
            .map(|c| c.drops_by_reason["tx_error"])
            .sum();
        assert!(tx_errors > 0, "{threads:?}");
        assert_eq!(report.buffers_outstanding, 0, "{threads:?}");
    }
}

/// Fast enough that a few megabytes of large frames leave in milliseconds.
const FAST_CONFIG: &str = r#"(
    ports: (
        wan: (rate: "1 Gbit", classes: [(name: "all", match: "default", rate: "1 Gbit")]),
        lan: (rate: "1 Gbit", classes: [(name: "all", match: "default", rate: "1 Gbit")]),
    ),
)"#;

/// A UDP frame of `len` bytes whose payload is `fill`, so that frames of one flow differ.
fn udp_filled(src: [u8; 4], dst: [u8; 4], dport: u16, len: usize, fill: u8) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .udp(40000, dport)
        .write(&mut f, &vec![fill; len - 42])
        .unwrap();
    f
}

/// A TCP/IPv4 GSO super-frame of `len` bytes (as a veth with offloads hands over) and its
/// vnet header: cut into 1448-byte segments, checksum still to fill in.
fn tcp_gso(src: [u8; 4], dst: [u8; 4], seq: u32, len: usize) -> (Vec<u8>, VnetHdr) {
    let mut f = Vec::new();
    let payload: Vec<u8> = (0..len - 54).map(|i| (i as u32 + seq) as u8).collect();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(40001, 5201, seq, 1000)
        .write(&mut f, &payload)
        .unwrap();
    let vnet = VnetHdr::TCPV4_1448;
    (f, vnet)
}

/// Frames of three flows interleaved (small UDP, 9000-byte UDP, ~60 KiB GSO TCP), from `src`.
fn mixed_sizes(src: [u8; 4], dst: [u8; 4], rounds: u8) -> Vec<(Vec<u8>, VnetHdr)> {
    let mut frames = Vec::new();
    for i in 0..rounds {
        frames.push((
            udp_filled(src, dst, 9, 60 + usize::from(i), i),
            VnetHdr::NONE,
        ));
        frames.push((udp_filled(src, dst, 10, 9000, i), VnetHdr::NONE));
        frames.push(tcp_gso(
            src,
            dst,
            u32::from(i) * 100_000,
            61_440 - usize::from(i),
        ));
    }
    frames
}

/// The frames of one flow, told apart by length: small, jumbo, super-frame.
fn flow_of(frames: &[(Vec<u8>, VnetHdr)], flow: usize) -> Vec<(Vec<u8>, VnetHdr)> {
    frames
        .iter()
        .filter(|(f, _)| match flow {
            0 => f.len() <= pool::SMALL,
            1 => f.len() == 9000,
            _ => f.len() > 9000,
        })
        .cloned()
        .collect()
}

#[test]
fn large_frames_cross_without_copy_intact_and_in_order_per_direction() {
    large_frames_cross_intact_and_in_order_in(Threads::PerDirection);
}

#[test]
fn large_frames_cross_without_copy_intact_and_in_order_run_to_completion() {
    large_frames_cross_intact_and_in_order_in(Threads::RunToCompletion);
}

fn large_frames_cross_intact_and_in_order_in(threads: Threads) {
    let h = start(
        FAST_CONFIG,
        Options {
            threads,
            ..Options::default()
        },
    );
    // 40 rounds: 80 large frames each way, more than a receive batch holds, so receive
    // buffers are exchanged many times over and come back from the queues into the pool.
    let up = mixed_sizes([198, 18, 0, 1], [198, 19, 0, 1], 40);
    let down = mixed_sizes([198, 19, 0, 1], [198, 18, 0, 1], 40);
    for (a, b) in up.iter().zip(&down) {
        assert!(h.lan_in.inject(&a.0, a.1));
        assert!(h.wan_in.inject(&b.0, b.1));
    }
    let out_wan = collect_with_vnet(&h.wan_out, up.len(), Duration::from_secs(10));
    let out_lan = collect_with_vnet(&h.lan_out, down.len(), Duration::from_secs(10));
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();
    for flow in 0..3 {
        // Whole-frame comparison first would print megabytes on failure: compare counts,
        // then frames one by one.
        for (sent, got, dir) in [(&up, &out_wan, "up"), (&down, &out_lan, "down")] {
            let (sent, got) = (flow_of(sent, flow), flow_of(got, flow));
            assert_eq!(got.len(), sent.len(), "{threads:?} {dir} flow {flow}");
            for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
                assert!(s == g, "{threads:?} {dir} flow {flow}: frame {i} differs");
            }
        }
    }
    let t = report.totals;
    assert_eq!(t.received, 240, "{threads:?}");
    assert_eq!(t.forwarded, 240, "{threads:?}");
    assert_eq!(report.received_per_port, [120, 120]);
    assert_eq!(report.buffers_outstanding, 0, "{threads:?}");
}

#[test]
fn large_frames_without_a_free_buffer_are_counted_not_lost_per_direction() {
    large_frames_without_a_free_buffer_are_counted_not_lost_in(Threads::PerDirection);
}

#[test]
fn large_frames_without_a_free_buffer_are_counted_not_lost_run_to_completion() {
    large_frames_without_a_free_buffer_are_counted_not_lost_in(Threads::RunToCompletion);
}

fn large_frames_without_a_free_buffer_are_counted_not_lost_in(threads: Threads) {
    // Two large buffers per port the thread sends on, beyond the receive buffers (two in the
    // per-direction layout, four in run-to-completion); 10 jumbo frames and 10 small ones
    // arrive in one batch: the first jumbo frames take the free ones, the others are
    // `no_buffer` (their receive buffer stays where it is), the small ones all pass.
    let free = match threads {
        Threads::RunToCompletion => 4,
        Threads::PerDirection => 2,
    };
    let (src, dst) = ([198, 18, 0, 1], [198, 19, 0, 1]);
    let mut small = Vec::new();
    let mut jumbo = Vec::new();
    for i in 0..10 {
        small.push(udp_filled(src, dst, 9, 100, i));
        jumbo.push(udp_filled(src, dst, 10, 9000, i));
    }
    let h = start_with(
        FAST_CONFIG,
        Options {
            threads,
            large_buffers: 2,
            ..Options::default()
        },
        |lan_in, _| {
            for (s, j) in small.iter().zip(&jumbo) {
                assert!(lan_in.inject(s, VnetHdr::NONE));
                assert!(lan_in.inject(j, VnetHdr::NONE));
            }
        },
    );
    let out = collect(&h.wan_out, 10 + free, Duration::from_secs(5));
    // The buffers come back once sent: a later jumbo frame gets one again.
    let late = udp_filled(src, dst, 10, 9000, 99);
    assert!(h.lan_in.inject(&late, VnetHdr::NONE));
    let out_late = collect(&h.wan_out, 1, Duration::from_secs(5));
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();

    let got_small: Vec<_> = out.iter().filter(|f| f.len() == 100).cloned().collect();
    let got_jumbo: Vec<_> = out.iter().filter(|f| f.len() == 9000).cloned().collect();
    assert_eq!(
        got_small, small,
        "{threads:?}: small frames all pass, in order"
    );
    assert!(
        got_jumbo == jumbo[..free],
        "{threads:?}: the first {free} jumbo frames pass"
    );
    assert!(
        out_late == [late],
        "{threads:?}: a later jumbo frame passes"
    );
    let t = report.totals;
    assert_eq!(t.received, 21, "{threads:?}");
    assert_eq!(t.forwarded as usize, 11 + free, "{threads:?}");
    assert_eq!(t.dropped as usize, 10 - free, "{threads:?}");
    let no_buffer: u64 = report
        .classes
        .iter()
        .map(|c| c.drops_by_reason["no_buffer"])
        .sum();
    assert_eq!(no_buffer as usize, 10 - free, "{threads:?}");
    assert_eq!(report.buffers_outstanding, 0, "{threads:?}");
}

/// wan shapes to 100 Mbit/s (super-frames going out there are cut), lan to 10 Gbit/s (kept).
const SPLIT_CONFIG: &str = r#"(
    ports: (
        wan: (rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "100 Mbit")]),
        lan: (rate: "10 Gbit", classes: [(name: "all", match: "default", rate: "10 Gbit")]),
    ),
)"#;

#[test]
fn super_frames_for_a_slow_class_are_cut_into_segments() {
    super_frames_for_a_slow_class_are_cut_in(Threads::RunToCompletion);
}

fn super_frames_for_a_slow_class_are_cut_in(threads: Threads) {
    let h = start(
        SPLIT_CONFIG,
        Options {
            threads,
            ..Options::default()
        },
    );
    // 5 super-frames each way with 10 segments of 1448 bytes: 54 + 14,480 bytes.
    let up: Vec<_> = (0..5u32)
        .map(|i| tcp_gso([198, 18, 0, 1], [198, 19, 0, 1], i * 14_480, 54 + 14_480))
        .collect();
    let down: Vec<_> = (0..5u32)
        .map(|i| tcp_gso([198, 19, 0, 1], [198, 18, 0, 1], i * 14_480, 54 + 14_480))
        .collect();
    for (a, b) in up.iter().zip(&down) {
        assert!(h.lan_in.inject(&a.0, a.1));
        assert!(h.wan_in.inject(&b.0, b.1));
    }
    let out_wan = collect_with_vnet(&h.wan_out, 50, Duration::from_secs(10));
    let out_lan = collect_with_vnet(&h.lan_out, 5, Duration::from_secs(10));
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();

    // Out on wan: 50 MTU-size frames whose payloads, in order, are the super-frames'.
    assert_eq!(out_wan.len(), 50, "{threads:?}");
    let sent_payload: Vec<u8> = up.iter().flat_map(|(f, _)| f[54..].to_vec()).collect();
    let got_payload: Vec<u8> = out_wan.iter().flat_map(|(f, _)| f[54..].to_vec()).collect();
    assert!(sent_payload == got_payload, "{threads:?}: payload differs");
    for (f, v) in &out_wan {
        assert_eq!(f.len(), 54 + 1448);
        assert!(!v.is_gso());
        assert_eq!(v.flags, crate::wire::vnet::F_NEEDS_CSUM);
        assert_eq!((v.csum_start, v.csum_offset), (34, 16));
        let view = crate::wire::parse(f);
        assert!(!view.truncated);
    }
    // Out on lan (10 Gbit/s): the super-frames whole, as they came.
    assert_eq!(out_lan, down, "{threads:?}");

    assert_eq!(
        report.gso_split,
        GsoSplit {
            super_frames: 5,
            segments: 50
        }
    );
    // A cut super-frame counts as its segments, on both sides of the balance.
    assert_eq!(report.received_per_port, [50, 5], "{threads:?}");
    assert_eq!(report.totals.received, 55);
    assert_eq!(report.totals.forwarded, 55);
    assert_eq!(report.buffers_outstanding, 0);
}

#[test]
fn cut_segments_count_against_the_packet_limit() {
    // 10 super-frames of 44 segments in one receive batch into a class that queues 200
    // frames: every segment is a frame of the class (a super-frame is never a way around the
    // limit), so once 200 are queued each new one takes the place of the flow's oldest, which
    // is dropped as `overflow` (head drop, as fq_codel). What leaves is the last 200
    // segments' payload, in order.
    let frames: Vec<_> = (0..10u32)
        .map(|i| tcp_gso([198, 18, 0, 1], [198, 19, 0, 1], i * 63_712, 54 + 63_712))
        .collect();
    // No AQM: the 20 ms queue this makes is the point, not something to drop.
    let config = SPLIT_CONFIG.replace(
        r#"rate: "100 Mbit")]"#,
        r#"rate: "100 Mbit", aqm: (enabled: false), queue: (packets: 200))]"#,
    );
    let h = start_with(
        &config,
        Options {
            threads: Threads::RunToCompletion,
            ..Options::default()
        },
        |lan_in, _| {
            for (f, v) in &frames {
                assert!(lan_in.inject(f, *v));
            }
        },
    );
    let out = collect(&h.wan_out, 200, Duration::from_secs(10));
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();
    let sent: Vec<u8> = frames.iter().flat_map(|(f, _)| f[54..].to_vec()).collect();
    let got: Vec<u8> = out.iter().flat_map(|f| f[54..].to_vec()).collect();
    assert_eq!(got.len(), 200 * 1448);
    assert!(sent[240 * 1448..] == got[..], "payload differs");
    assert_eq!(
        report.gso_split,
        GsoSplit {
            super_frames: 10,
            segments: 440
        }
    );
    let all = report
        .classes
        .iter()
        .find(|c| c.port == "wan" && c.name == "all")
        .unwrap();
    assert_eq!(
        (all.received_frames, all.forwarded_frames),
        (440, 200),
        "{all:?}"
    );
    assert_eq!(all.drops_by_reason["overflow"], 240);
    assert_eq!(report.buffers_outstanding, 0);
}

/// The scheduling policy (field 41 of /proc/self/task/TID/stat: 0 normal, 1 SCHED_FIFO) of
/// every thread of this process whose name starts with `weir-`.
fn weir_thread_policies() -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        if !comm.starts_with("weir-") {
            continue;
        }
        // Fields after the name, which is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = after.split(' ').nth(41 - 3).unwrap().parse().unwrap();
        out.push((comm.trim().to_string(), policy));
    }
    out
}

#[test]
fn a_thread_asking_for_real_time_gets_it_or_nice() {
    let got = std::thread::spawn(|| {
        (
            Priority::RealTime(10).apply(),
            crate::io::sys::thread_policy(),
        )
    })
    .join()
    .unwrap();
    if crate::io::sys::is_root() {
        assert_eq!(got, (Priority::RealTime(10), libc::SCHED_FIFO));
    } else {
        // Refused: it falls back to nice -10, itself refused without CAP_SYS_NICE.
        assert!(
            matches!(got.0, Priority::Nice(-10) | Priority::Inherit),
            "{got:?}"
        );
        assert_eq!(got.1, libc::SCHED_OTHER);
    }
    let got = std::thread::spawn(|| (Priority::Inherit.apply(), crate::io::sys::thread_policy()))
        .join()
        .unwrap();
    assert_eq!(got, (Priority::Inherit, libc::SCHED_OTHER));
}

#[test]
fn every_forwarding_thread_runs_real_time_when_asked() {
    if !crate::io::test_netns::have_root("every_forwarding_thread_runs_real_time_when_asked") {
        return;
    }
    // No other test asks for real time, so every SCHED_FIFO weir- thread here is this test's.
    for (threads, expected) in [(Threads::RunToCompletion, 1), (Threads::PerDirection, 2)] {
        let h = start(
            SMALL_CONFIG,
            Options {
                threads,
                priority: Priority::RealTime(10),
                ..Options::default()
            },
        );
        // Frames crossing prove the threads are up and serving.
        let f = udp([198, 18, 0, 1], [198, 19, 0, 1], 9, 100);
        assert!(h.lan_in.inject(&f, VnetHdr::NONE));
        assert_eq!(collect(&h.wan_out, 1, Duration::from_secs(5)), vec![f]);
        let fifo = weir_thread_policies()
            .into_iter()
            .filter(|(_, policy)| *policy == 1)
            .count();
        h.stop.store(true, Ordering::Relaxed);
        h.thread.join().unwrap().unwrap();
        assert!(fifo >= expected, "{threads:?}: {fifo} real-time threads");
    }
}

/// A memory device with a kernel drop counter, as an AF_PACKET socket has: each read says
/// 1000 more frames were dropped (so the value reported shows which read was the last).
/// Counts its reads, and its receive calls that returned frames.
struct DroppingDevice {
    inner: MemoryDevice,
    reads: Arc<AtomicUsize>,
    batches: Arc<AtomicUsize>,
}

impl Device for DroppingDevice {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn recv_batch(
        &mut self,
        bufs: &mut [Box<[u8]>],
        meta: &mut [RxMeta],
    ) -> std::io::Result<usize> {
        let n = self.inner.recv_batch(bufs, meta)?;
        if n > 0 {
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        Ok(n)
    }
    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> std::io::Result<usize> {
        self.inner.send_batch(frames)
    }
    fn wait_readable(&mut self, timeout: Duration) -> std::io::Result<bool> {
        self.inner.wait_readable(timeout)
    }
    fn offloads(&self) -> bool {
        self.inner.offloads()
    }
    fn kernel_drops(&mut self) -> Option<u64> {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        Some(1000 * reads as u64)
    }
}

#[test]
fn kernel_drops_are_reported_per_port_apart_from_the_counts() {
    kernel_drops_are_reported_per_port_in(Threads::RunToCompletion);
}

#[test]
fn kernel_drops_are_reported_per_port_apart_from_the_counts_per_direction() {
    kernel_drops_are_reported_per_port_in(Threads::PerDirection);
}

/// lan's receiving device has a kernel drop counter, wan's has none: the report carries each
/// port's last value read (or none) beside the class counts, which stay those of the frames
/// received; the counter is read about once a second while frames arrive and once at the stop,
/// not per receive call.
fn kernel_drops_are_reported_per_port_in(threads: Threads) {
    let reads = Arc::new(AtomicUsize::new(0));
    let batches = Arc::new(AtomicUsize::new(0));
    let (r, b) = (Arc::clone(&reads), Arc::clone(&batches));
    let started = Instant::now();
    let h = start_wrapped(
        SMALL_CONFIG,
        Options {
            threads,
            ..Options::default()
        },
        |_, _| {},
        move |inner| {
            Box::new(DroppingDevice {
                inner,
                reads: r,
                batches: b,
            })
        },
    );
    // The first frame out proves the ingress exists (its first periodic read is due within a
    // second of it); then frames keep coming, one at a time, for longer than that second.
    let up = |i: usize| udp([198, 18, 0, 1], [198, 19, 0, 1], 9, 60 + i % 100);
    assert!(h.lan_in.inject(&up(0), VnetHdr::NONE));
    assert_eq!(collect(&h.wan_out, 1, Duration::from_secs(5)).len(), 1);
    let serving = Instant::now();
    let mut sent = 1;
    while serving.elapsed() < Duration::from_millis(1300) {
        assert!(h.lan_in.inject(&up(sent), VnetHdr::NONE));
        sent += 1;
        std::thread::sleep(Duration::from_millis(4));
    }
    let down = udp([198, 19, 0, 1], [198, 18, 0, 1], 9, 100);
    assert!(h.wan_in.inject(&down, VnetHdr::NONE));
    assert_eq!(
        collect(&h.wan_out, sent - 1, Duration::from_secs(5)).len(),
        sent - 1
    );
    assert_eq!(collect(&h.lan_out, 1, Duration::from_secs(5)).len(), 1);
    h.stop.store(true, Ordering::Relaxed);
    let report = h.thread.join().unwrap().unwrap();
    let (reads, batches) = (
        reads.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed),
    );
    eprintln!(
        "{threads:?}: {sent} frames in {batches} receive calls, kernel drop counter read {reads} \
         times in {:?}",
        started.elapsed()
    );

    assert_eq!(
        report.kernel_drops,
        [
            KernelDrops {
                port: "lan",
                interface: "lan-rx".into(),
                frames: Some(1000 * reads as u64),
            },
            KernelDrops {
                port: "wan",
                interface: "wan-rx".into(),
                frames: None,
            },
        ]
    );
    // In `weir run --json`: by port and interface, null where there is no counter.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["kernel_drops"],
        serde_json::json!([
            {"port": "lan", "interface": "lan-rx", "frames": 1000 * reads},
            {"port": "wan", "interface": "wan-rx", "frames": null},
        ])
    );
    // Periodic reads while frames came for over a second, and the last at the stop; no more
    // than one per second otherwise (at one read per batch there would be hundreds).
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        (2..=2 + seconds).contains(&reads),
        "{reads} reads in {seconds} s"
    );
    assert!(batches > reads, "{batches} batches, {reads} reads");
    // The frames the kernel dropped are in no count of weir's.
    assert_eq!(report.totals.received, sent as u64 + 1);
    assert_eq!(report.totals.forwarded, sent as u64 + 1);
    assert_eq!(report.received_per_port, [sent as u64, 1]);
}

// ---- the live driver against the replay driver ----

/// Classes where the time matters: a priority class, a TCP class far over its rate (queue
/// full, CoDel, super-frames cut), a policed flood, a remarked class; 24 bytes of overhead.
const DRIVERS_CONFIG: &str = r#"(
    lan_networks: ["198.18.0.0/16"],
    ports: (
        wan: (rate: "100 Mbit", classes: [
            (name: "dns", match: "udp port 53", priority: 0, rate: "1 Mbit"),
            (name: "bulk", match: "tcp port 5201", priority: 2, rate: "40 Mbit", ceil: "60 Mbit",
             queue: (packets: 300)),
            (name: "flood", match: "udp port 9999", priority: 3, rate: "5 Mbit", ceil: "30 Mbit",
             police: (rate: "20 Mbit"), set_dscp: "cs1"),
            (name: "rest", match: "default", rate: "10 Mbit"),
        ]),
        lan: (rate: "20 Mbit", classes: [
            (name: "acks", match: "tcp", priority: 1, rate: "5 Mbit", fairness: host),
            (name: "all", match: "default", rate: "5 Mbit"),
        ]),
    ),
)"#;

/// (arrival time, arrives on lan?, frame): one virtual second of upload TCP super-frames
/// (longer than the MTU: no offload state), a UDP flood, DNS, download ACKs and UDP, ARP, and
/// damaged frames; several frames share some instants.
fn driver_frames(t0: Nanos) -> Vec<(Nanos, bool, Vec<u8>)> {
    let mac = |i: u8| [2, 0, 0, 0, 0, i];
    let udp = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize| {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(mac(1), mac(2))
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut f, &vec![0x5a; len - 42])
            .unwrap();
        f
    };
    let tcp = |src: [u8; 4], dst: [u8; 4], sport: u16, seq: u32, payload: usize| {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(mac(1), mac(2))
            .ipv4(src, dst, 64)
            .tcp(sport, 5201, seq, 1000)
            .write(
                &mut f,
                &(0..payload)
                    .map(|i| (i as u32 ^ seq) as u8)
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        f
    };
    let (lan_host, wan_host) = ([198, 18, 0, 1], [198, 19, 0, 1]);
    let mut frames = Vec::new();
    let us = |n: u64| t0 + n * 1000;
    for i in 0..1000u64 {
        // Every ms: two TCP flows' super-frames of 8 and 3 segments at once (about 130
        // Mbit/s into a 60 Mbit/s ceil).
        for (flow, segs) in [(0u16, 8usize), (1, 3)] {
            let seq = (i as u32) * 20_000;
            frames.push((
                us(i * 1000),
                true,
                tcp(lan_host, wan_host, 40000 + flow, seq, segs * 1460),
            ));
        }
        // A UDP flood of 1000-byte frames every 100 us (80 Mbit/s, policed to 20).
        for k in 0..10 {
            frames.push((
                us(i * 1000 + k * 100 + 37),
                true,
                udp(lan_host, wan_host, 5000, 9999, 1000),
            ));
        }
        // Download: an ACK-sized frame every 250 us, and a 1400-byte UDP frame every ms to
        // two LAN hosts (30 Mbit/s offered to a 20 Mbit/s link).
        for k in 0..4 {
            let mut ack = tcp(wan_host, lan_host, 5201, (i * 4 + k) as u32, 0);
            ack[34..36].copy_from_slice(&5201u16.to_be_bytes());
            frames.push((us(i * 1000 + k * 250 + 11), false, ack));
        }
        for host in [1u8, 2] {
            frames.push((
                us(i * 1000 + 500),
                false,
                udp(wan_host, [198, 18, 0, host], 53, 40000, 1400),
            ));
        }
        if i % 10 == 0 {
            frames.push((
                us(i * 1000 + 3),
                true,
                udp(lan_host, [198, 19, 0, 53], 40001, 53, 90),
            ));
        }
        if i % 100 == 0 {
            let mut arp = Vec::new();
            arp.extend_from_slice(&[0xff; 6]);
            arp.extend_from_slice(&mac(1));
            arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            arp.extend_from_slice(&mac(1));
            arp.extend_from_slice(&lan_host);
            arp.extend_from_slice(&[0; 6]);
            arp.extend_from_slice(&wan_host);
            frames.push((us(i * 1000 + 7), true, arp));
            frames.push((us(i * 1000 + 7), true, vec![0xee; 10]));
        }
    }
    frames.sort_by_key(|f| f.0);
    frames
}

/// The same frames at the same times through the live driver (a forwarder polled on a manual
/// clock, memory devices) and the replay driver: every departure at the same time with the
/// same bytes, and every per-class counter equal. With and without offload state from the
/// devices (the first infers super-frames from their length, as replay does; the second is
/// told by a vnet header saying the same).
#[test]
fn live_and_replay_drivers_count_the_same() {
    let plan =
        Arc::new(crate::config::parse(DRIVERS_CONFIG, std::path::Path::new("d.ron")).unwrap());
    let t0: Nanos = 1_000_000_000;
    let frames = driver_frames(t0);

    // Replay.
    let mut replay = crate::replay::Replay::new(&plan, &Default::default(), true);
    let mut replay_out: Vec<(Nanos, Vec<u8>)> = Vec::new();
    let mut out = |t: Nanos, data: &[u8], _len: u32| replay_out.push((t, data.to_vec()));
    for (t, _, f) in &frames {
        replay.push(*t, f, f.len() as u32, &mut out);
    }
    let replay_report = replay.finish(&mut out);
    let strip = |mut v: serde_json::Value| {
        for c in v.as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("avg_rate_bps");
        }
        v
    };
    let replay_classes = strip(serde_json::to_value(&replay_report.classes).unwrap());
    assert!(
        replay_report.totals.dropped > 1000 && replay_report.gso_split.super_frames > 1000,
        "the test must load the classes: {:?}",
        replay_report.totals
    );

    for with_offloads in [false, true] {
        let (lan_rx, lan_in) = memory_device("lan-rx", 1000);
        let (wan_rx, wan_in) = memory_device("wan-rx", 1000);
        let (lan_tx, lan_out) = memory_device("lan-tx", 1000);
        let (wan_tx, wan_out) = memory_device("wan-tx", 1000);
        let (lan_rx, wan_rx) = if with_offloads {
            (lan_rx, wan_rx)
        } else {
            (lan_rx.without_offloads(), wan_rx.without_offloads())
        };
        let mut fwd = forwarder::Forwarder::new(
            Arc::clone(&plan),
            vec![
                forwarder::Ingress::new(Side::Lan, Box::new(lan_rx)),
                forwarder::Ingress::new(Side::Wan, Box::new(wan_rx)),
            ],
            [Some(Box::new(lan_tx)), Some(Box::new(wan_tx))],
            Arc::new(published::Published::new(1, &plan)),
            0,
            crossbeam_channel::bounded(1).1,
            None,
            &Options::default(),
            Arc::new(AtomicBool::new(false)),
            t0,
            None,
        );
        let mut live_out: Vec<(Nanos, Vec<u8>)> = Vec::new();
        let mut next = 0;
        let mut last: Option<Nanos> = None;
        loop {
            let arrival = frames.get(next).map(|f| f.0);
            let wakeup = fwd
                .pipeline()
                .next_wakeup()
                .filter(|&w| last.is_none_or(|l| w > l));
            let Some(t) = [arrival, wakeup].into_iter().flatten().min() else {
                break;
            };
            while let Some((ft, on_lan, f)) = frames.get(next).filter(|f| f.0 == t) {
                let _ = ft;
                let vnet = if with_offloads {
                    VnetHdr::infer(&crate::wire::parse(f), f, f.len(), 1500)
                } else {
                    VnetHdr::NONE
                };
                let dev = if *on_lan { &lan_in } else { &wan_in };
                assert!(dev.inject(f, vnet));
                next += 1;
            }
            fwd.poll(t);
            for h in [&lan_out, &wan_out] {
                live_out.extend(h.take_sent().into_iter().map(|(f, _)| (t, f)));
            }
            last = Some(t);
        }
        let p = fwd.pipeline();
        assert_eq!(p.queued_frames(), 0);
        let (live_classes, _) = p.class_reports(&[Side::Wan, Side::Lan], 0);
        let live_classes = strip(serde_json::to_value(&live_classes).unwrap());
        let what = if with_offloads {
            "with vnet headers"
        } else {
            "without offload state"
        };
        assert_eq!(
            live_classes, replay_classes,
            "{what}: per-class counters differ"
        );
        assert_eq!(p.gso_split(), replay_report.gso_split, "{what}");
        assert_eq!(
            p.received().iter().sum::<u64>(),
            replay_report.totals.received,
            "{what}"
        );
        assert_eq!(live_out.len(), replay_out.len(), "{what}: departures");
        let first_difference = live_out.iter().zip(&replay_out).position(|(a, b)| a != b);
        assert_eq!(
            first_difference, None,
            "{what}: departure times or bytes differ"
        );
        let finished = fwd.finish(last.unwrap_or(t0));
        assert_eq!(finished.buffers_outstanding, 0);
    }
}

/// A sending device whose link the test sets: up (a memory device), set down (sends fail with
/// ENETDOWN, as AF_PACKET's do), without carrier (sends are taken and lost, as a veth whose
/// peer is down takes them) or gone (ENXIO).
struct Switched {
    inner: MemoryDevice,
    link: Arc<std::sync::Mutex<crate::io::Link>>,
}

impl crate::io::Device for Switched {
    fn name(&self) -> &str {
        "switched"
    }
    fn recv_batch(&mut self, b: &mut [Box<[u8]>], m: &mut [RxMeta]) -> std::io::Result<usize> {
        self.inner.recv_batch(b, m)
    }
    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> std::io::Result<usize> {
        use crate::io::Link;
        match *self.link.lock().unwrap() {
            Link::Up => self.inner.send_batch(frames),
            Link::Down => Err(std::io::Error::from_raw_os_error(libc::ENETDOWN)),
            Link::NoCarrier => Ok(frames.len()),
            Link::Gone => Err(std::io::Error::from_raw_os_error(libc::ENXIO)),
        }
    }
    fn wait_readable(&mut self, t: Duration) -> std::io::Result<bool> {
        self.inner.wait_readable(t)
    }
    fn offloads(&self) -> bool {
        self.inner.offloads()
    }
    fn link(&mut self) -> crate::io::Link {
        *self.link.lock().unwrap()
    }
}

/// The bridge with wan's sending device a [`Switched`] one: (its link, lan's inbound handle,
/// wan's outbound handle, the stop flag, the bridge's thread).
#[allow(clippy::type_complexity)]
fn start_switched(
    threads: Threads,
) -> (
    Arc<std::sync::Mutex<crate::io::Link>>,
    MemoryHandle,
    MemoryHandle,
    Arc<AtomicBool>,
    std::thread::JoinHandle<Result<RunReport, RunError>>,
) {
    let plan = Arc::new(crate::config::parse(FAST_CONFIG, std::path::Path::new("t.ron")).unwrap());
    let (lan_rx, lan_in) = memory_device("lan-rx", 1000);
    let (lan_tx, _) = memory_device("lan-tx", 1000);
    let (wan_rx, _) = memory_device("wan-rx", 1000);
    let (wan_tx, wan_out) = memory_device("wan-tx", 1000);
    let link = Arc::new(std::sync::Mutex::new(crate::io::Link::Up));
    let ports = [
        PortIo {
            rx: Box::new(lan_rx),
            tx: Box::new(lan_tx),
            express: None,
        },
        PortIo {
            rx: Box::new(wan_rx),
            tx: Box::new(Switched {
                inner: wan_tx,
                link: Arc::clone(&link),
            }),
            express: None,
        },
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let opts = Options {
        threads,
        ..Options::default()
    };
    let thread = std::thread::spawn(move || run(plan, ports, s, &opts));
    (link, lan_in, wan_out, stop, thread)
}

fn link_down_drops(report: &RunReport) -> u64 {
    report
        .classes
        .iter()
        .map(|c| c.drops_by_reason["link_down"])
        .sum()
}

/// Injects `n` frames on lan and waits (bounded) until they are through the bridge.
fn inject_and_settle(lan_in: &MemoryHandle, n: usize) {
    for i in 0..n {
        lan_in.inject(
            &udp_filled([198, 18, 0, 1], [198, 19, 0, 1], 9, 200, i as u8),
            VnetHdr::NONE,
        );
    }
    let t = Instant::now();
    while lan_in.pending_inbound() > 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn a_link_that_goes_down_is_waited_for_and_what_it_could_not_send_is_counted() {
    use crate::io::Link;
    for threads in [Threads::RunToCompletion, Threads::PerDirection] {
        for down in [Link::Down, Link::NoCarrier] {
            let (link, lan_in, wan_out, stop, thread) = start_switched(threads);
            inject_and_settle(&lan_in, 10);
            assert_eq!(wan_out.take_sent().len(), 10, "{threads:?} {down:?}");
            *link.lock().unwrap() = down;
            // Without carrier nothing fails: the periodic look at the link (100 ms) finds it.
            std::thread::sleep(Duration::from_millis(300));
            inject_and_settle(&lan_in, 20);
            assert!(
                !thread.is_finished(),
                "{threads:?} {down:?}: the bridge stopped"
            );
            *link.lock().unwrap() = Link::Up;
            std::thread::sleep(Duration::from_millis(300));
            inject_and_settle(&lan_in, 30);
            assert_eq!(
                wan_out.take_sent().len(),
                30,
                "{threads:?} {down:?}: resumed"
            );
            stop.store(true, Ordering::Relaxed);
            let report = thread.join().unwrap().unwrap();
            assert_eq!(report.error, None, "{threads:?} {down:?}");
            assert_eq!(link_down_drops(&report), 20, "{threads:?} {down:?}");
            let tot = report.totals;
            assert_eq!(tot.received, 60, "{threads:?} {down:?}");
            assert_eq!(tot.forwarded, 40, "{threads:?} {down:?}");
            assert_eq!(
                tot.received,
                tot.forwarded + tot.dropped,
                "{threads:?} {down:?}"
            );
            assert_eq!(report.buffers_outstanding, 0, "{threads:?} {down:?}");
        }
    }
}

#[test]
fn an_interface_that_is_gone_stops_the_bridge_and_says_so() {
    for threads in [Threads::RunToCompletion, Threads::PerDirection] {
        let (link, lan_in, _wan_out, _stop, thread) = start_switched(threads);
        *link.lock().unwrap() = crate::io::Link::Gone;
        inject_and_settle(&lan_in, 20);
        // No one sets `stop`: the bridge ends by itself, within a bounded time.
        let t = Instant::now();
        while !thread.is_finished() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let report = thread.join().unwrap().unwrap();
        let err = report.error.as_deref().unwrap_or_default();
        assert!(
            err.contains("port wan: interface switched disappeared"),
            "{threads:?}: {err:?}"
        );
        // Whatever it received before it saw the interface gone could not be sent.
        let tot = report.totals;
        assert_eq!(tot.received, tot.dropped, "{threads:?}");
        assert_eq!(link_down_drops(&report), tot.dropped, "{threads:?}");
        assert_eq!(report.buffers_outstanding, 0, "{threads:?}");
    }
}

#[test]
fn a_saturated_realtime_thread_leaves_real_time_for_nice_minus_10() {
    if !crate::io::test_netns::have_root(
        "a_saturated_realtime_thread_leaves_real_time_for_nice_minus_10",
    ) {
        return;
    }
    // On a thread of its own: the policy changes are the thread's.
    std::thread::spawn(|| {
        let granted = Priority::RealTime(10).apply();
        assert_eq!(granted, Priority::RealTime(10), "root gets real time");
        // As `weir run`'s threads do: every capability goes; leaving real time needs none.
        crate::io::sys::drop_capabilities().unwrap();
        assert_eq!(crate::io::sys::effective_capabilities(), 0);
        let fifo = || crate::io::sys::thread_policy() == libc::SCHED_FIFO;
        let mut s = super::Saturation::new(granted);
        s.turn(1_000);
        // A wait in between starts the busy time again.
        s.waiting();
        s.turn(1_000 + super::SATURATED_AFTER);
        assert!(fifo());
        // Busy (no wait) for just under the limit: still real time.
        s.turn(1_000 + 2 * super::SATURATED_AFTER - 1);
        assert!(fifo());
        s.turn(1_000 + 2 * super::SATURATED_AFTER);
        assert_eq!(
            crate::io::sys::thread_policy(),
            libc::SCHED_OTHER,
            "saturated"
        );
        // SAFETY: getpriority reads the calling thread's nice value and touches no memory.
        let nice = unsafe {
            libc::getpriority(
                libc::PRIO_PROCESS,
                libc::syscall(libc::SYS_gettid) as libc::id_t,
            )
        };
        assert_eq!(
            nice,
            super::SATURATED_NICE,
            "the nice value set before real time"
        );
        assert_eq!(s.demotions, 1);
        // For good: waiting and more busy turns change nothing, and ask nothing.
        s.waiting();
        s.turn(u64::MAX / 2);
        s.turn(u64::MAX / 2 + super::SATURATED_AFTER);
        assert_eq!(crate::io::sys::thread_policy(), libc::SCHED_OTHER);
        assert_eq!(s.demotions, 1);
        // A thread that never got real time is left alone.
        let mut n = super::Saturation::new(Priority::Nice(-10));
        n.turn(0);
        n.turn(u64::MAX / 2);
        assert_eq!(n.demotions, 0);
    })
    .join()
    .unwrap();
}
