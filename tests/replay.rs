//! Replay of captures/shaping-check.pcap through configs/test-small.ron, checked against
//! results worked out by hand (below), not copied from weir's output.
//!
//! The capture (written by `shaping_check_frames`, regenerate with
//! `WEIR_REGENERATE_CAPTURES=1 cargo test --test replay`):
//! - t = 0: 300 UDP frames of 226 bytes, 198.18.0.10:5000 -> 198.19.0.1:9 (class `rest`);
//! - t = 50 ms: one ARP request from 198.18.0.10 (implicit `control` class);
//! - t = 100, 200, ..., 1000 ms: one 100-byte DNS query, 198.18.0.10 -> 198.19.0.53:53 (`dns`);
//! - t = 500 ms: five 1000-byte TCP frames 198.19.0.80:80 -> 198.18.0.10 (download, `web`).
//!
//! Expected, with the wan port at 1 Mbit/s and 24 bytes of overhead per frame:
//! - the 300 frames arrive at one instant, and the frames of an instant are all received before
//!   any of them leaves (as `weir run` receives a batch, then sends): `rest` holds at most 200
//!   waiting frames, so 200 are forwarded and 100 dropped as overflow (from the head of the
//!   fattest flow queue, here the only one: the first 100 go, the last 200 stay);
//! - each `rest` frame is 250 wire bytes = 2 ms at 1 Mbit/s; the link stays busy from t = 0
//!   until the 200 frames, the ARP and the DNS queries that arrive meanwhile have left, so
//!   consecutive wan departures are exactly one wire time apart while backlogged;
//! - `dns` is priority 0 and far under its 200 kbit/s: a query waits at most for the frame
//!   being sent (2 ms), and the queries arriving after the backlog is gone (t >= 500 ms) leave
//!   at their arrival time;
//! - nothing is dropped but those 100: received 316 = forwarded 216 + dropped 100.

mod common;

use common::captures::{pin_to_generator, read_all, root};
use weir::replay::replay_file;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * 1_000_000_000;
const LAN_HOST: [u8; 4] = [198, 18, 0, 10];
const MAC_LAN: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const MAC_WAN: [u8; 6] = [2, 0, 0, 0, 0, 0x20];

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frame_len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(MAC_LAN, MAC_WAN)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut f, &vec![0u8; frame_len - 42])
        .unwrap();
    f
}

fn shaping_check_frames() -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    for _ in 0..300 {
        frames.push((T0, udp(LAN_HOST, [198, 19, 0, 1], 5000, 9, 226)));
    }
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&MAC_LAN);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&MAC_LAN);
    arp.extend_from_slice(&LAN_HOST);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[198, 18, 0, 1]);
    frames.push((T0 + 50 * MS, arp));
    for i in 1..=10u64 {
        frames.push((
            T0 + i * 100 * MS,
            udp(LAN_HOST, [198, 19, 0, 53], 40000 + i as u16, 53, 100),
        ));
    }
    for _ in 0..5 {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC_WAN, MAC_LAN)
            .ipv4([198, 19, 0, 80], LAN_HOST, 64)
            .tcp(80, 40100, 1, 1000)
            .write(&mut f, &vec![0u8; 1000 - 54])
            .unwrap();
        frames.push((T0 + 500 * MS, f));
    }
    frames.sort_by_key(|(t, _)| *t);
    frames
}

#[test]
fn shaping_check_capture_matches_its_generator() {
    pin_to_generator("shaping-check.pcap", &shaping_check_frames());
}

#[test]
fn replay_matches_the_hand_worked_result() {
    let plan =
        std::sync::Arc::new(weir::config::load(&root().join("configs/test-small.ron")).unwrap());
    let out = std::env::temp_dir().join(format!("weir-replay-test-{}.pcap", std::process::id()));
    let report = replay_file(
        &plan,
        &root().join("captures/shaping-check.pcap"),
        Some(&out),
        None,
        &weir::replay::ReplayOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let departures = read_all(&out);
    let _ = std::fs::remove_file(&out);

    let class = |port: &str, name: &str| {
        report
            .classes
            .iter()
            .find(|c| c.port == port && c.name == name)
            .unwrap()
            .clone()
    };
    let rest = class("wan", "rest");
    assert_eq!((rest.received_frames, rest.forwarded_frames), (300, 200));
    assert_eq!(rest.drops_by_reason["overflow"], 100);
    assert_eq!(rest.drops_by_reason["queue_full"], 0);
    assert_eq!(rest.forwarded_bytes, 200 * 226);
    let dns = class("wan", "dns");
    assert_eq!(
        (
            dns.forwarded_frames,
            dns.forwarded_bytes,
            dns.dropped_frames
        ),
        (10, 1000, 0)
    );
    assert!(
        dns.sojourn_us.max <= 2000.0 + 0.001,
        "dns waited {} us",
        dns.sojourn_us.max
    );
    assert_eq!(class("wan", "control").forwarded_frames, 1);
    let web = class("lan", "web");
    assert_eq!((web.forwarded_frames, web.forwarded_bytes), (5, 5000));
    let t = report.totals;
    assert_eq!(
        (t.received, t.forwarded, t.dropped, t.queued),
        (316, 216, 100, 0)
    );
    assert_eq!(report.directions.upload, 311);
    assert_eq!(report.directions.download, 5);

    // Departure times on wan: never closer than one wire time at 1 Mbit/s (8 us per byte),
    // and exactly one wire time apart while the backlog lasts.
    let wan: Vec<(u64, usize)> = departures
        .iter()
        .filter(|(_, f)| f[6..12] == MAC_LAN)
        .map(|(t, f)| (*t, f.len()))
        .collect();
    assert_eq!(wan.len(), 211);
    let mut back_to_back = 0;
    for w in wan.windows(2) {
        let wire_ns = (w[0].1 as u64 + 24) * 8 * 1000;
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= wire_ns,
            "departures {} ns apart, one frame takes {wire_ns}",
            gap
        );
        if gap == wire_ns {
            back_to_back += 1;
        }
    }
    // 200 rest + 1 ARP + the DNS queries at 100..400 ms leave back to back (205 frames, 204
    // gaps: the backlog lasts until about 404.5 ms); queries from 500 ms on find the link idle
    // and leave on arrival.
    assert_eq!(back_to_back, 204);
    let wire_total: u64 = wan
        .iter()
        .take(205)
        .map(|(_, len)| (*len as u64 + 24) * 8 * 1000)
        .sum();
    let last = wan[204];
    assert_eq!(
        last.0 + (last.1 as u64 + 24) * 8 * 1000 - T0,
        wire_total,
        "link busy from t=0"
    );
    for (i, &(t, _)) in wan[205..].iter().enumerate() {
        assert_eq!(
            t,
            T0 + (5 + i as u64) * 100 * MS,
            "idle-link query leaves on arrival"
        );
    }
}
