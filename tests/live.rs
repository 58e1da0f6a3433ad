//! `weir run` between two veths of a lab: weir-src -- lan0 [weir] wan0 -- weir-dst.
//!
//! Needs root (network namespaces); skips loudly otherwise, fails under CI=true. Each test has
//! its own lab, removed with every process in it when the test ends, also on failure. Every
//! wait is bounded. Rates and delays are checked with generous bounds; the benchmark issue
//! measures them precisely.

mod common;

use common::bridge::{temp_dir, Bridge};
use common::{iperf3, lab, ping, require_root};
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;
use weir::tools::lab::Lab;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// These tests measure rates and delays on a 2-core machine: they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn config(wan_classes: &str, lan_classes: &str, rate: &str) -> String {
    format!(
        r#"(
    ports: (
        wan: (interface: "wan0", rate: "{rate}", classes: [{wan_classes}]),
        lan: (interface: "lan0", rate: "{rate}", classes: [{lan_classes}]),
    ),
)"#
    )
}

const PLAIN_CLASSES: &str = r#"(name: "all", match: "default", rate: "50%")"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Send crafted frames from src0 and count what dst0 receives, with raw sockets opened inside
/// the namespaces.
fn raw_exchange(lab: &Lab, frames: Vec<Vec<u8>>, ethertype: [u8; 2]) -> Vec<Vec<u8>> {
    let ours = move |b: &[u8]| {
        b.len() >= 18
            && (b[12..14] == ethertype || (b[12..14] == [0x81, 0x00] && b[16..18] == ethertype))
    };
    // Kept on for 300 ms after the last, so a duplicate (a loop) would be seen too.
    let (_, got) = common::raw::cross(lab, Duration::from_millis(300), ours, move |tx| {
        for f in &frames {
            common::raw::send_one(tx, f);
            // Pace a little: veth drops beyond its backlog.
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    got.into_iter().map(|a| a.data).collect()
}

fn frame(ethertype: [u8; 2], seq: u16, len: usize, vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x2d, 0x02, 0, 0, 0, 0, 0x1a];
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ethertype);
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push(f.len() as u8 ^ seq as u8);
    }
    f
}

#[test]
fn frames_of_every_kind_cross_both_ways_once() {
    if !require_root("frames_of_every_kind_cross_both_ways_once") {
        return;
    }
    cross_every_kind("cross", &[]);
}

#[test]
fn frames_of_every_kind_cross_both_ways_once_with_the_receive_ring() {
    if !require_root("frames_of_every_kind_cross_both_ways_once_with_the_receive_ring") {
        return;
    }
    cross_every_kind("ring", &["--rx", "ring"]);
}

#[test]
fn frames_of_every_kind_cross_both_ways_once_with_the_v2_receive_ring() {
    if !require_root("frames_of_every_kind_cross_both_ways_once_with_the_v2_receive_ring") {
        return;
    }
    cross_every_kind("ringv2", &["--rx", "ring-v2"]);
}

/// ARP, ND, ICMP both ways, TCP with offloads on both ways, UDP over IPv6, VLAN-tagged and
/// jumbo frames, with weir started with `extra` flags.
fn cross_every_kind(name: &str, extra: &[&str]) {
    let _serial = serial();
    let lab = lab(name);
    // Jumbo frames: MTU 9000 on every link of the path.
    for (ns, dev) in [
        (&lab.src_ns, &lab.src_if),
        (&lab.dut_ns, &lab.dut_lan_if),
        (&lab.dut_ns, &lab.dut_wan_if),
        (&lab.dst_ns, &lab.dst_if),
    ] {
        lab.exec_ok(ns, &["ip", "link", "set", dev, "mtu", "9000"])
            .unwrap();
    }
    let classes = r#"(name: "all", match: "default", rate: "500 Mbit")"#;
    let bridge = Bridge::start(&lab, name, &config(classes, classes, "1 Gbit"), extra);

    // ARP + IPv4, ND + IPv6, both directions.
    for (from, to) in [
        (&lab.src_ns, "198.18.0.2"),
        (&lab.dst_ns, "198.18.0.1"),
        (&lab.src_ns, "2001:db8::2"),
        (&lab.dst_ns, "2001:db8::1"),
    ] {
        let p = ping(&lab, from, ip(to), 10, Duration::from_millis(50));
        assert_eq!(p.lost(), 0, "ping {to} from {from}: {p:?}");
    }

    // TCP with the endpoints' offloads left on (GSO super-frames cross whole), both ways; UDP.
    let up = iperf3(&lab, ip("198.18.0.2"), 2, &[]);
    assert!(up.receiver_bps > 50e6, "TCP upload {up:?}");
    let down = iperf3(&lab, ip("198.18.0.2"), 2, &["-R"]);
    assert!(down.receiver_bps > 50e6, "TCP download {down:?}");
    let udp = iperf3(&lab, ip("2001:db8::2"), 2, &["-u", "-b", "20M"]);
    assert!(udp.receiver_bps > 15e6, "UDP over IPv6 {udp:?}");

    // Crafted VLAN-tagged frames and jumbo frames arrive intact, each exactly once.
    let et = [0x88, 0xb5];
    let mut frames: Vec<Vec<u8>> = (0..20).map(|i| frame(et, i, 200, Some(100 + i))).collect();
    frames.extend((20..25).map(|i| frame(et, i, 9000 + 14, None)));
    frames.extend((25..30).map(|i| frame(et, i, 64, None)));
    let got = raw_exchange(&lab, frames.clone(), et);
    assert_eq!(
        got.len(),
        frames.len(),
        "each frame exactly once (no loss, no loop)"
    );
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut sent_sorted = frames.clone();
    sent_sorted.sort();
    assert_eq!(got_sorted, sent_sorted, "frames arrive intact");

    let s = bridge.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    let (rx, fwd, drop) = s.port("wan");
    assert_eq!(rx, fwd + drop);
    let (rx, fwd, drop) = s.port("lan");
    assert_eq!(rx, fwd + drop);
}

#[test]
fn a_class_is_shaped_to_its_rate_and_ceil() {
    if !require_root("a_class_is_shaped_to_its_rate_and_ceil") {
        return;
    }
    let _serial = serial();
    let lab = lab("shape");
    // The TCP class has its AQM on, as by default: a single responsive flow must fill it (the
    // class-wide overload control this replaced gave it 0.44-0.68 of the rate).
    let wan = r#"
        (name: "tcp50", match: "tcp", priority: 1, rate: "50 Mbit", ceil: "50 Mbit"),
        (name: "udp20", match: "udp", priority: 1, rate: "5 Mbit", ceil: "20 Mbit"),
        (name: "rest", match: "default", rate: "10 Mbit")"#;
    let bridge = Bridge::start(&lab, "shape", &config(wan, PLAIN_CLASSES, "1 Gbit"), &[]);

    // TCP carries 1448 payload bytes per 1514-byte frame plus 24 bytes of Ethernet overhead,
    // so 50 Mbit/s on the wire is 50 * 1448 / 1538 = 47.07 Mbit/s of goodput. Above 1.05 is
    // the shaper's fault, always; below 0.90 it can be the host's, which took up to 7 s of
    // CPU from a 10 s run on some days (docs/benchmarks.md, Known problems): measured again.
    let expected = 50e6 * 1448.0 / 1538.0;
    common::with_retries("TCP through a 50 Mbit/s class", 3, || {
        let tcp = iperf3(&lab, ip("198.18.0.2"), 4, &[]);
        let ratio = tcp.receiver_bps / expected;
        eprintln!("TCP through a 50 Mbit/s class: {ratio:.3} of the rate");
        assert!(
            ratio <= 1.05,
            "TCP at {:.2} Mbit/s, {ratio:.3} of 50 Mbit/s on the wire",
            tcp.receiver_bps / 1e6
        );
        (format!("{ratio:.3} of the rate"), ratio >= 0.90)
    });

    // UDP offered at 40 Mbit/s into a class with ceil 20 Mbit/s: iperf3's 1448-byte datagrams
    // make 1490-byte frames, 1514 on the wire; goodput at most 20 * 1448 / 1514.
    let ceiling = 20e6 * 1448.0 / 1514.0;
    common::with_retries("UDP into a 20 Mbit/s ceil", 3, || {
        let udp = iperf3(&lab, ip("198.18.0.2"), 3, &["-u", "-b", "40M"]);
        assert!(
            udp.receiver_bps <= ceiling * 1.01,
            "UDP got {:.2} Mbit/s above its 20 Mbit/s ceil",
            udp.receiver_bps / 1e6
        );
        (
            format!("{:.2} Mbit/s", udp.receiver_bps / 1e6),
            udp.receiver_bps >= ceiling * 0.85,
        )
    });

    let s = bridge.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    let (rx, fwd, drop) = s.port("wan");
    assert_eq!(rx, fwd + drop);
}

#[test]
fn priority_pings_stay_fast_while_bulk_overloads_the_link() {
    if !require_root("priority_pings_stay_fast_while_bulk_overloads_the_link") {
        return;
    }
    let _serial = serial();
    let lab = lab("prio");
    let wan = r#"
        (name: "voice", match: "dscp ef", priority: 0, rate: "5 Mbit"),
        (name: "bulk", match: "default", priority: 3, rate: "20 Mbit")"#;
    let bridge = Bridge::start(&lab, "prio", &config(wan, PLAIN_CLASSES, "50 Mbit"), &[]);
    // Unresponsive UDP at twice the link rate, for longer than the pings take. A p99 above
    // 5 ms can be the host taking the CPU from this VM: measured again, up to five times.
    let p99 = common::with_retries("priority pings under a 2x flood", 5, || {
        let (server, flood) = common::iperf3_in_background(&lab, "5201", 6, &["-u", "-b", "100M"]);
        std::thread::sleep(Duration::from_millis(1000));
        // DSCP EF is TOS 0xb8.
        let out = lab
            .exec_timeout(
                &lab.src_ns,
                &[
                    "ping",
                    "-n",
                    "-Q",
                    "0xb8",
                    "-c",
                    "100",
                    "-i",
                    "0.02",
                    "-W",
                    "1",
                    "198.18.0.2",
                ],
                Duration::from_secs(15),
            )
            .unwrap();
        drop(flood);
        drop(server);
        let p = common::parse_ping(&String::from_utf8_lossy(&out.stdout)).expect("ping output");
        assert_eq!(p.lost(), 0, "priority pings lost under load: {p:?}");
        let mut rtts = p.rtts_ms.clone();
        rtts.sort_by(f64::total_cmp);
        let p99 = rtts[(rtts.len() * 99 / 100).min(rtts.len() - 1)];
        eprintln!(
            "priority pings under a 2x UDP flood: p50 {:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
            rtts[rtts.len() / 2],
            rtts[rtts.len() - 1],
        );
        (p99, p99 < 5.0)
    });
    let s = bridge.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    eprintln!("priority ping p99 {p99:.3} ms");
    let (rx, fwd, drop) = s.port("wan");
    assert_eq!(rx, fwd + drop);
    assert!(
        drop > 0,
        "the flood at twice the link rate must have been dropped somewhere"
    );
}

#[test]
fn sigterm_under_load_exits_fast_and_reconciles() {
    if !require_root("sigterm_under_load_exits_fast_and_reconciles") {
        return;
    }
    let _serial = serial();
    let lab = lab("term");
    let wan = r#"(name: "bulk", match: "default", rate: "10 Mbit", aqm: (enabled: false), queue: (packets: 5000, bytes: "8 MiB"))"#;
    let bridge = Bridge::start(&lab, "term", &config(wan, PLAIN_CLASSES, "10 Mbit"), &[]);
    let (server, flood) = common::iperf3_in_background(&lab, "5201", 10, &["-u", "-b", "50M"]);
    std::thread::sleep(Duration::from_millis(1500));
    let s = bridge.stop();
    drop(flood);
    drop(server);
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    assert!(s.took < Duration::from_secs(2), "took {:?} to stop", s.took);
    let (rx, fwd, drop) = s.port("wan");
    assert!(rx > 100, "{}", s.stdout);
    assert_eq!(rx, fwd + drop, "{}", s.stdout);
    assert!(
        s.stdout.contains("shutdown"),
        "a full queue at stop is dropped as shutdown:\n{}",
        s.stdout
    );
}

#[test]
fn a_bad_start_says_what_is_wrong() {
    if !require_root("a_bad_start_says_what_is_wrong") {
        return;
    }
    let _serial = serial();
    let lab = lab("badstart");
    let dir = temp_dir("badstart");
    let cfg = dir.join("ok.ron");
    std::fs::write(&cfg, config(PLAIN_CLASSES, PLAIN_CLASSES, "1 Gbit")).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut full = vec![WEIR];
        full.extend_from_slice(args);
        let out = lab
            .exec_timeout(&lab.dut_ns, &full, Duration::from_secs(10))
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["run", "-c", &cfg, "--lan", "eth9"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no interface `eth9`") && err.contains("lan0"),
        "{err}"
    );

    let (code, err) = run(&["run", "-c", &cfg, "--lan", "wan0"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("both wan0"), "{err}");

    // A CPU the process may not use, and a list that is not one.
    let (code, err) = run(&["run", "-c", &cfg, "--cpus", "4000"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--cpus: CPU 4000 cannot take a thread of weir"),
        "{err}"
    );
    let (code, err) = run(&["run", "-c", &cfg, "--cpus", "3-1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--cpus") && err.contains("backwards"), "{err}");

    lab.exec_ok(&lab.dut_ns, &["ip", "link", "set", "wan0", "mtu", "9000"])
        .unwrap();
    let (code, err) = run(&["run", "-c", &cfg]);
    assert_eq!(code, Some(1));
    assert!(err.contains("MTUs differ"), "{err}");
    lab.exec_ok(&lab.dut_ns, &["ip", "link", "set", "wan0", "mtu", "1500"])
        .unwrap();

    lab.exec_ok(&lab.dut_ns, &["ip", "link", "set", "lan0", "down"])
        .unwrap();
    let (code, err) = run(&["run", "-c", &cfg]);
    assert_eq!(code, Some(1));
    assert!(err.contains("down"), "{err}");
    lab.exec_ok(&lab.dut_ns, &["ip", "link", "set", "lan0", "up"])
        .unwrap();

    let bad = dir.join("bad.ron");
    std::fs::write(
        &bad,
        config(
            r#"(name: "all", match: "tcp prot 80", rate: "1 Mbit")"#,
            PLAIN_CLASSES,
            "1 Gbit",
        ),
    )
    .unwrap();
    let (code, err) = run(&["run", "-c", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("bad.ron:3:") && err.contains("prot"), "{err}");

    // Without CAP_NET_RAW: as an unprivileged user.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.dut_ns,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            WEIR,
            "run",
            "-c",
            &cfg,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_other_thread_layout_bridges_too() {
    if !require_root("the_other_thread_layout_bridges_too") {
        return;
    }
    let _serial = serial();
    let layout = "per-direction";
    let lab = lab(layout);
    let cfg = config(PLAIN_CLASSES, PLAIN_CLASSES, "1 Gbit");
    let bridge = Bridge::start(&lab, layout, &cfg, &["--threads", layout]);
    let p = ping(
        &lab,
        &lab.src_ns,
        ip("2001:db8::2"),
        5,
        Duration::from_millis(50),
    );
    assert_eq!(p.lost(), 0, "{layout}: {p:?}");
    let tcp = iperf3(&lab, ip("198.18.0.2"), 2, &[]);
    assert!(tcp.receiver_bps > 50e6, "{layout}: {tcp:?}");
    let s = bridge.stop();
    assert_eq!(s.code, Some(0), "{layout}: {}", s.stderr);
    let (rx, fwd, drop) = s.port("wan");
    assert_eq!(rx, fwd + drop, "{layout}");
}

#[test]
fn the_pnet_backend_bridges_too() {
    if !require_root("the_pnet_backend_bridges_too") {
        return;
    }
    let _serial = serial();
    let lab = lab("pnet");
    let bridge = Bridge::start(
        &lab,
        "pnet",
        &config(PLAIN_CLASSES, PLAIN_CLASSES, "1 Gbit"),
        &["--io", "pnet"],
    );
    // ICMP needs no offload state, so it crosses pnet with the endpoints' offloads left on
    // (TCP would not: docs/io-backends.md).
    for to in ["198.18.0.2", "2001:db8::2"] {
        let p = ping(&lab, &lab.src_ns, ip(to), 5, Duration::from_millis(50));
        assert_eq!(p.lost(), 0, "ping {to}: {p:?}");
    }
    let s = bridge.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    let (rx, fwd, drop) = s.port("wan");
    assert_eq!(rx, fwd + drop);
    assert!(fwd >= 10, "{}", s.stdout);
}
