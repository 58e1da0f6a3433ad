//! A million distinct flows against the flow table: SYNs and small UDP datagrams from
//! pseudo-random sources, beside real traffic in priority classes. In replay (100,000 flows a
//! second for ten seconds, beside a 1.6 Mbit/s stream) and live through `weir run` in a lab
//! (sent by `weir send`; pings and a UDP stream beside it). The table stays at its configured
//! size (its evictions are counted), memory does not grow with the flows, every frame is
//! accounted for, and the real traffic keeps its rate and its delay.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::replay::{Replay, ReplayOptions};

/// One test at a time: the replay test measures this process's peak memory, the live one
/// times what crosses a lab on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The flood's frames: frame `i` (from 0) is a TCP SYN to port 80 (even) or a 20-byte UDP
/// datagram to port 53 (odd), from a new pseudo-random source in 10.0.0.0/8 (xorshift, the
/// sequence of benches/flood-capture.py) to one of 250 servers in 198.18.2.0/24.
struct Flood {
    state: u64,
    i: u64,
    frame: Vec<u8>,
}

impl Flood {
    fn new() -> Flood {
        Flood {
            state: 0x9e37_79b9_7f4a_7c15,
            i: 0,
            frame: Vec::with_capacity(128),
        }
    }

    fn next_frame(&mut self) -> &[u8] {
        let state = &mut self.state;
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let src = [
            10,
            (*state >> 8) as u8,
            (*state >> 16) as u8,
            (*state >> 24) as u8,
        ];
        let sport = (*state >> 32) as u16 | 1024;
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 2]).ipv4(
            src,
            [198, 18, 2, (self.i % 250) as u8 + 1],
            64,
        );
        self.frame.clear();
        if self.i.is_multiple_of(2) {
            b.tcp(sport, 80, *state as u32, 1000)
                .syn()
                .write(&mut self.frame, &[])
                .unwrap();
        } else {
            b.udp(sport, 53).write(&mut self.frame, &[0u8; 20]).unwrap();
        }
        self.i += 1;
        &self.frame
    }
}

const CONFIG: &str = r#"(
    lan_networks: ["10.0.0.0/8"],
    flow_table: (max_flows: 65536),
    ports: (wan: (rate: "20 Mbit"), lan: (rate: "20 Mbit")),
    classes: [
        (name: "stream", match: "udp port 5004", priority: 0, rate: "2 Mbit", ceil: "4 Mbit"),
        (name: "bulk", match: "default", priority: 3, rate: "10 Mbit", ceil: "100%"),
    ],
)"#;

/// A memory figure of process `pid` (`self` for this one), in KiB: `VmHWM` (peak resident
/// memory) or `VmRSS` (now), from /proc.
fn memory_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    memory_kib("self", "VmHWM:")
}

#[test]
fn a_million_flows_are_evicted_and_counted_and_the_real_flow_keeps_its_rate() {
    let _serial = serial();
    let plan = Arc::new(weir::config::parse(CONFIG, std::path::Path::new("flood.ron")).unwrap());
    let mut replay = Replay::new(&plan, &ReplayOptions::default(), false);
    let t0: u64 = 1_796_083_200_000_000_000;
    let mut stream = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 5], [198, 18, 1, 1], 64)
        .udp(5004, 5004)
        .write(&mut stream, &[0u8; 158])
        .unwrap();
    assert_eq!(stream.len(), 200);
    let mut flood = Flood::new();
    let mut departed_stream = Vec::new();
    // Frame bytes are not kept (no output capture): the stream's frames are the 200-byte ones.
    let mut out = |t: u64, _d: &[u8], len: u32| {
        if len == 200 {
            departed_stream.push(t);
        }
    };
    let before = peak_rss_kib();
    let flows = 1_000_000u64;
    let mut stream_sent = 0u64;
    for i in 0..flows {
        let t = t0 + i * 10_000;
        let frame = flood.next_frame();
        replay.push(t, frame, frame.len() as u32, &mut out);
        // The real flow: a 200-byte datagram every millisecond.
        if i % 100 == 0 {
            replay.push(t, &stream, 200, &mut out);
            stream_sent += 1;
        }
    }
    let report = replay.finish(&mut out);
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    eprintln!(
        "flood: {} flows in a table of 65536: {} evicted; peak RSS grew {grown_mib} MiB",
        flows, report.flow_table.evicted
    );
    // Nearly every flow was new and pushed an older one out; none is lost track of.
    let ft = &report.flow_table;
    assert!(ft.misses >= flows, "{ft:?}");
    assert!(ft.evicted + ft.expired >= flows - 65_536, "{ft:?}");
    // The table and every queue were sized at start: memory does not follow the flows.
    assert!(
        grown_mib < 64,
        "peak RSS grew {grown_mib} MiB over a million flows"
    );
    let t = &report.totals;
    assert_eq!(t.received, t.forwarded + t.dropped + t.queued);
    assert_eq!(t.received, flows + stream_sent);
    // The stream lost nothing and waited little, while the flood was held to the link.
    let s = report
        .classes
        .iter()
        .find(|c| c.port == "wan" && c.name == "stream")
        .unwrap();
    assert_eq!(s.received_frames, stream_sent);
    assert_eq!(s.dropped_frames, 0, "{s:?}");
    assert!(s.sojourn_us.p99 < 2_000.0, "{s:?}");
    assert_eq!(departed_stream.len() as u64, stream_sent);
    let bulk = report
        .classes
        .iter()
        .find(|c| c.port == "wan" && c.name == "bulk")
        .unwrap();
    assert!(
        bulk.dropped_frames > 0,
        "the flood (about 48 Mbit/s) overflows the 20 Mbit/s link"
    );
}

/// The live config: a 20 Mbit/s link both ways; pings and iperf3 (its UDP stream and its
/// control connection, port 5201) in priority classes, the flood in `bulk`.
const LIVE_CONFIG: &str = r#"(
    lan_networks: ["198.18.0.1/32", "10.0.0.0/8"],
    flow_table: (max_flows: 65536),
    ports: (wan: (interface: "wan0", rate: "20 Mbit"), lan: (interface: "lan0", rate: "20 Mbit")),
    classes: [
        (name: "ping", match: "icmp", priority: 0, rate: "1 Mbit", ceil: "2 Mbit"),
        (name: "stream", match: "port 5201", priority: 1, rate: "6 Mbit", ceil: "8 Mbit"),
        (name: "bulk", match: "default", priority: 3, rate: "10 Mbit", ceil: "100%"),
    ],
)"#;

/// Frames a second `weir send` puts on the wire in the live test: the million flows take
/// 1,000,000 / FLOOD_PPS seconds (about 40 Mbit/s of small frames against the 20 Mbit/s link).
const FLOOD_PPS: u64 = 60_000;

#[test]
fn a_million_flows_live_keep_memory_bounded_and_the_real_classes_their_rate() {
    use common::bridge::{Bridge, WEIR};
    use serde_json::Value;
    if !common::require_root(
        "a_million_flows_live_keep_memory_bounded_and_the_real_classes_their_rate",
    ) {
        return;
    }
    let _serial = serial();
    let flows = 1_000_000u64;
    // The flood as a capture for `weir send` (74 MB, written as it is made).
    let capture = std::env::temp_dir().join(format!("weir-flood-{}.pcap", std::process::id()));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(capture.clone());
    {
        let mut w = weir::capture::CaptureWriter::create(&capture).unwrap();
        let mut flood = Flood::new();
        for i in 0..flows {
            let f = flood.next_frame();
            w.write(1_796_083_200_000_000_000 + i * 10_000, f, f.len() as u32)
                .unwrap();
        }
        w.finish().unwrap();
    }

    let lab = common::lab("flood-live");
    let b = Bridge::start(&lab, "flood", LIVE_CONFIG, &[]);
    let pid = b.pid().to_string();
    let rss_start = memory_kib(&pid, "VmRSS:");
    let seconds = flows / FLOOD_PPS + 1;
    // Pings every 20 ms and a 4 Mbit/s UDP stream for about as long as the flood lasts.
    let (ping, stream, sent_in) = std::thread::scope(|sc| {
        let pinger = sc.spawn(|| {
            common::ping(
                &lab,
                &lab.src_ns,
                "198.18.0.2".parse().unwrap(),
                (seconds * 40) as u32,
                Duration::from_millis(20),
            )
        });
        let streamer = sc.spawn(|| {
            common::iperf3(
                &lab,
                "198.18.0.2".parse().unwrap(),
                seconds as u32,
                &["-u", "-b", "4M", "-l", "1000"],
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let pps = FLOOD_PPS.to_string();
        let out = lab
            .exec_timeout(
                &lab.src_ns,
                &[
                    WEIR,
                    "send",
                    "-i",
                    &lab.src_if,
                    "--pps",
                    &pps,
                    capture.to_str().unwrap(),
                ],
                Duration::from_secs(seconds * 3 + 30),
            )
            .unwrap();
        assert!(
            out.status.success(),
            "weir send: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sent_in = t.elapsed();
        (pinger.join().unwrap(), streamer.join().unwrap(), sent_in)
    });
    let peak = memory_kib(&pid, "VmHWM:");
    let status: Value = {
        let mut cmd = std::process::Command::new(WEIR);
        cmd.args([
            "status",
            "--json",
            "--control",
            b.socket().to_str().unwrap(),
        ]);
        let out = weir::tools::lab::run_bounded(cmd, Duration::from_secs(10)).unwrap();
        serde_json::from_slice(&out.stdout).expect("status JSON")
    };
    let s = b.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    let (lan_rx, lan_fwd, lan_drop) = s.port("wan");
    assert_eq!(lan_rx, lan_fwd + lan_drop);
    let ft = &status["flow_table"];
    let evicted = ft["evicted"].as_u64().unwrap();
    let kernel_drops = status["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["kernel_drops"].as_u64())
        .sum::<u64>();
    let mut rtts = ping.rtts_ms.clone();
    rtts.sort_by(f64::total_cmp);
    let p99 = rtts.get(rtts.len() * 99 / 100).copied().unwrap_or(f64::MAX);
    eprintln!(
        "flood live: {flows} flows sent in {sent_in:.1?} ({FLOOD_PPS} frames/s); {lan_rx} frames \
         through wan ({lan_drop} dropped), kernel drops {kernel_drops}; flow table {ft}; weir RSS \
         {} MiB at start, peak {} MiB; pings lost {} of {}, p99 {p99} ms; stream {:.2} Mbit/s",
        rss_start / 1024,
        peak / 1024,
        ping.lost(),
        ping.sent,
        stream.receiver_bps / 1e6
    );
    // The table stayed at its size: the flows it could not hold pushed others out, counted.
    assert_eq!(ft["capacity"].as_u64(), Some(65_536), "{ft}");
    assert!(
        evicted + kernel_drops >= flows - 2 * 65_536,
        "a million flows through a table of 65,536: {evicted} evicted, {kernel_drops} never \
         reached weir"
    );
    // Memory was reserved at start: it does not follow the flows.
    assert!(
        peak.saturating_sub(rss_start) < 32 * 1024,
        "weir's resident memory went from {rss_start} KiB to a peak of {peak} KiB"
    );
    // The real traffic kept its rate and its delay.
    assert!(
        ping.lost() * 100 <= ping.sent,
        "{} of {} pings lost",
        ping.lost(),
        ping.sent
    );
    assert!(p99 < 10.0, "ping p99 {p99} ms");
    assert!(
        stream.receiver_bps > 3.6e6,
        "the 4 Mbit/s stream: {stream:?}"
    );
}
