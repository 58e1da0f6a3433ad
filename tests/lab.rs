//! Tests of the lab and its harness, with a Linux bridge in the dut instead of weir: traffic
//! flows over IPv4 and IPv6, TCP is fast, and nothing is left behind — also when a test panics.
//! Tests needing namespaces skip loudly when not root (and fail under `CI=true`).

mod common;

use common::{lab, namespaces_left, parse_iperf3, parse_ping, ping, require_root};
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use weir::tools::lab::{Lab, LabError, LabSpec};

/// Waits up to `timeout` for `pid` to be gone from /proc (reaped or never ours).
fn process_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie (dead, waiting to be reaped by someone else).
        if stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn kernel_bridge_carries_ping_over_ipv4_and_ipv6() {
    if !require_root("kernel_bridge_carries_ping_over_ipv4_and_ipv6") {
        return;
    }
    let lab = lab("ping");
    lab.bridge_with_kernel().unwrap();
    for to in [IpAddr::V4(lab.dst_ip4), IpAddr::V6(lab.dst_ip6)] {
        let r = ping(&lab, &lab.src_ns, to, 5, Duration::from_millis(50));
        assert_eq!((r.sent, r.received), (5, 5), "ping {to}: {r:?}");
        assert_eq!(r.rtts_ms.len(), 5, "ping {to}: {r:?}");
        assert!(r.rtts_ms.iter().all(|&ms| ms > 0.0 && ms < 1000.0), "{r:?}");
    }
}

#[test]
fn without_a_bridge_nothing_gets_through() {
    if !require_root("without_a_bridge_nothing_gets_through") {
        return;
    }
    let lab = lab("nobridge");
    let r = ping(
        &lab,
        &lab.src_ns,
        IpAddr::V4(lab.dst_ip4),
        2,
        Duration::from_millis(200),
    );
    assert_eq!((r.sent, r.received), (2, 0), "{r:?}");
    // And after bridging and unbridging, again nothing.
    lab.bridge_with_kernel().unwrap();
    let r = ping(
        &lab,
        &lab.src_ns,
        IpAddr::V4(lab.dst_ip4),
        2,
        Duration::from_millis(50),
    );
    assert_eq!(r.received, 2, "{r:?}");
    lab.unbridge().unwrap();
    lab.unbridge().unwrap();
    let r = ping(
        &lab,
        &lab.src_ns,
        IpAddr::V4(lab.dst_ip4),
        2,
        Duration::from_millis(200),
    );
    assert_eq!(r.received, 0, "{r:?}");
}

#[test]
fn kernel_bridge_carries_tcp_faster_than_100_mbit() {
    if !require_root("kernel_bridge_carries_tcp_faster_than_100_mbit") {
        return;
    }
    let lab = lab("iperf");
    lab.bridge_with_kernel().unwrap();
    let r = common::iperf3(&lab, IpAddr::V4(lab.dst_ip4), 2, &[]);
    eprintln!(
        "kernel bridge, TCP: sender {:.0} Mbit/s, receiver {:.0} Mbit/s",
        r.sender_bps / 1e6,
        r.receiver_bps / 1e6
    );
    assert!(r.receiver_bps > 100e6, "{r:?}");
}

#[test]
fn a_dropped_lab_leaves_no_namespace_and_no_process() {
    if !require_root("a_dropped_lab_leaves_no_namespace_and_no_process") {
        return;
    }
    let lab = lab("drop");
    let prefix = lab.prefix.clone();
    assert_eq!(namespaces_left(&prefix).len(), 3);
    // A process the test does not guard: down() must kill it anyway.
    let mut stray = lab.command(&lab.dut_ns, &["sleep", "60"]).spawn().unwrap();
    let guarded = lab.spawn(&lab.dst_ns, &["sleep", "60"]).unwrap();
    let guarded_pid = guarded.id();
    drop(guarded);
    assert!(process_gone(guarded_pid, Duration::from_secs(2)));
    drop(lab);
    assert_eq!(namespaces_left(&prefix), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(2);
    while stray.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "process in the dut outlived the lab"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_panicking_test_still_cleans_up() {
    if !require_root("a_panicking_test_still_cleans_up") {
        return;
    }
    let mut seen = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = lab("panic");
        lab.bridge_with_kernel().unwrap();
        let server = lab.spawn(&lab.dst_ns, &["sleep", "60"]).unwrap();
        seen = Some((lab.prefix.clone(), server.id()));
        panic!("deliberate failure mid-test");
    }));
    assert!(result.is_err());
    let (prefix, pid) = seen.expect("the closure ran up to the panic");
    assert_eq!(namespaces_left(&prefix), Vec::<String>::new());
    assert!(
        process_gone(pid, Duration::from_secs(2)),
        "pid {pid} survived"
    );
}

#[test]
fn down_is_idempotent_and_up_never_takes_over_an_existing_lab() {
    if !require_root("down_is_idempotent_and_up_never_takes_over_an_existing_lab") {
        return;
    }
    let first = lab("twice");
    let again = Lab::up(LabSpec {
        prefix: first.prefix.clone(),
    });
    assert!(matches!(again, Err(LabError::Exists(_))), "{again:?}");
    // The failed second lab removed nothing of the first.
    assert_eq!(namespaces_left(&first.prefix).len(), 3);
    first.down().unwrap();
    first.down().unwrap();
    weir::tools::lab::down_by_prefix(&first.prefix).unwrap();
    assert!(namespaces_left(&first.prefix).is_empty());
}

#[test]
fn skipping_is_loud_and_ci_forbids_it() {
    // The decision of every namespace test, for each case, whoever runs this.
    let mut banner = Vec::new();
    assert_eq!(common::may_run("t", true, true, &mut banner), Ok(true));
    assert_eq!(common::may_run("t", true, false, &mut banner), Ok(true));
    assert!(banner.is_empty(), "nothing said when it runs");
    let e = common::may_run("t", false, true, &mut banner).unwrap_err();
    assert!(e.contains("needs root") && e.contains("CI=true"), "{e}");
    assert!(banner.is_empty());
    assert_eq!(common::may_run("t", false, false, &mut banner), Ok(false));
    let said = String::from_utf8(banner).unwrap();
    assert!(said.contains("SKIPPED t: needs root"), "{said}");
    assert!(
        said.lines()
            .any(|l| l.len() >= 70 && l.chars().all(|c| c == '=')),
        "a banner: {said}"
    );
    // And the real thing agrees with the process it runs in.
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if weir::tools::lab::is_root() || !ci {
        assert_eq!(
            require_root("skipping_is_loud_and_ci_forbids_it"),
            weir::tools::lab::is_root()
        );
    }
}

#[test]
fn ping_output_is_parsed() {
    let text = "PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.
64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.061 ms
64 bytes from 198.18.0.2: icmp_seq=3 ttl=64 time=1.25 ms

--- 198.18.0.2 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.061/0.655/1.250/0.594 ms
";
    let r = parse_ping(text).unwrap();
    assert_eq!((r.sent, r.received, r.lost()), (3, 2, 1));
    assert_eq!(r.rtts_ms, vec![0.061, 1.25]);
    let lost = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2003ms\n";
    assert_eq!(parse_ping(lost).unwrap().received, 0);
    assert!(parse_ping("ping: connect: Network is unreachable\n").is_none());
}

#[test]
fn iperf3_output_is_parsed() {
    let json = r#"{"start":{},"intervals":[],"end":{
        "sum_sent":{"bits_per_second":2.5e9},"sum_received":{"bits_per_second":2.4e9}}}"#;
    let r = parse_iperf3(json).unwrap();
    assert_eq!((r.sender_bps, r.receiver_bps), (2.5e9, 2.4e9));
    let err = r#"{"start":{},"intervals":[],"end":{},"error":"unable to connect to server"}"#;
    assert!(parse_iperf3(err).unwrap_err().contains("unable to connect"));
}

#[test]
fn test_prefixes_are_unique_per_process_and_valid() {
    let p = common::lab_prefix("A very long test name / with odd characters, far too long");
    assert!(
        p.starts_with(&format!("weir-t{}-", std::process::id())),
        "{p}"
    );
    assert!(p.len() <= 40, "{p}");
    assert!(
        p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "{p}"
    );
}
