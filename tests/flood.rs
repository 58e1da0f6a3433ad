//! A million distinct flows against the flow table, in replay: SYNs and small UDP datagrams from
//! pseudo-random sources, 100,000 a second for ten seconds, beside one real flow (a 1.6 Mbit/s
//! stream in a priority class). The table stays at its configured size (its evictions are
//! counted), the process's memory does not grow with the flows, every frame is accounted for,
//! and the real flow keeps its rate and its delay.

use std::sync::Arc;
use weir::replay::{Replay, ReplayOptions};

const CONFIG: &str = r#"(
    lan_networks: ["10.0.0.0/8"],
    flow_table: (max_flows: 65536),
    ports: (wan: (rate: "20 Mbit"), lan: (rate: "20 Mbit")),
    classes: [
        (name: "stream", match: "udp port 5004", priority: 0, rate: "2 Mbit", ceil: "4 Mbit"),
        (name: "bulk", match: "default", priority: 3, rate: "10 Mbit", ceil: "100%"),
    ],
)"#;

/// Peak resident memory of this process, in KiB (Linux's VmHWM).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_million_flows_are_evicted_and_counted_and_the_real_flow_keeps_its_rate() {
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
    let (mut syn, mut udp) = (Vec::new(), Vec::new());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
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
        // xorshift: a new source address and port for every frame.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let src = [
            10,
            (state >> 8) as u8,
            (state >> 16) as u8,
            (state >> 24) as u8,
        ];
        let sport = (state >> 32) as u16 | 1024;
        let t = t0 + i * 10_000;
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 2]).ipv4(
            src,
            [198, 18, 2, (i % 250) as u8 + 1],
            64,
        );
        let frame = if i % 2 == 0 {
            syn.clear();
            b.tcp(sport, 80, state as u32, 1000)
                .syn()
                .write(&mut syn, &[])
                .unwrap();
            &syn
        } else {
            udp.clear();
            b.udp(sport, 53).write(&mut udp, &[0u8; 20]).unwrap();
            &udp
        };
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
