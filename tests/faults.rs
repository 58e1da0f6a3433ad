//! Link faults under a running `weir run`, in a lab (weir-src -- lan0 [weir] wan0 -- weir-dst):
//! a port set down and up, a port losing carrier (its veth peer set down), the other port set
//! down, an interface deleted, and SIGTERM under full load.
//!
//! Needs root (network namespaces); skips loudly otherwise, fails under CI=true. Each test has
//! its own lab, removed with every process in it when the test ends, also on failure. Every
//! wait is bounded; times are checked with generous bounds.

mod common;

use common::bridge::{Bridge, WEIR};
use common::{if_counter, lab, ping, require_root};
use serde_json::Value;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use weir::tools::lab::{run_bounded, Lab};

/// These tests time what they see on a 2-core machine: they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ports at `rate`; `all` gets `extra` (fields of its class).
fn config(rate: &str, extra: &str) -> String {
    format!(
        r#"(
    lan_networks: ["198.18.0.1/32", "2001:db8::1/128"],
    ports: (wan: (interface: "wan0", rate: "{rate}"), lan: (interface: "lan0", rate: "{rate}")),
    classes: [
        (name: "ping", match: "icmp or icmp6", priority: 0, rate: "10%"),
        (name: "all", match: "default", priority: 1, rate: "50%", ceil: "100%"{extra}),
    ],
)"#
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn status(b: &Bridge) -> Value {
    let sock = b.socket();
    let mut cmd = Command::new(WEIR);
    cmd.args(["status", "--json", "--control", sock.to_str().unwrap()]);
    let out = run_bounded(cmd, Duration::from_secs(10)).expect("weir status");
    assert!(
        out.status.success(),
        "weir status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn port<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["port"] == name))
        .unwrap_or_else(|| panic!("no port {name} in {s}"))
}

/// Frames of port `name` dropped as `link_down`, over its classes.
fn link_down_drops(s: &Value, name: &str) -> u64 {
    port(s, name)["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["drops_by_reason"]["link_down"].as_u64().unwrap_or(0))
        .sum()
}

/// Waits (at most `limit`) until `weir status` says port `name`'s link is `link`; how long it
/// took.
fn wait_link(b: &Bridge, name: &str, link: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let s = status(b);
        if port(&s, name)["link"] == link {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "port {name} not `{link}` after {limit:?}: {}",
            port(&s, name)["link"]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pings `to` from `from_ns` every 10 ms while `act` runs (after 300 ms of pinging), and
/// returns how long after `act` returned the first reply came (`None`: none in 3 s).
fn first_reply_after(lab: &Lab, from_ns: &str, to: &str, act: impl FnOnce()) -> Option<Duration> {
    let args: Vec<String> = ["ping", "-D", "-n", "-i", "0.01", "-W", "1", "-w", "4", to]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cmd = lab.command(
        from_ns,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let pinger = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    act();
    let at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = pinger.join().unwrap().expect("ping");
    // Lines like `[1796083200.123456] 64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.1 ms`.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
        .find(|&t| t >= at)
        .map(|t| Duration::from_secs_f64(t - at))
}

/// The faults of one thread layout (`extra`: weir's flags).
fn survive_link_faults(name: &str, extra: &[&str]) {
    let _serial = serial();
    let lab = lab(name);
    let b = Bridge::start(&lab, name, &config("100 Mbit", ""), extra);
    let p = ping(
        &lab,
        &lab.src_ns,
        ip("198.18.0.2"),
        5,
        Duration::from_millis(50),
    );
    assert_eq!(p.lost(), 0, "before any fault: {p:?}");
    // (what is done, where, to which interface, the port whose link it is, what status says,
    // and a ping whose echo requests leave by that port).
    let (src, dut, dst) = (lab.src_ns.clone(), lab.dut_ns.clone(), lab.dst_ns.clone());
    let faults = [
        (
            "wan0 set down",
            &dut,
            "wan0",
            "wan",
            "set down",
            &src,
            "198.18.0.2",
        ),
        (
            "dst0 set down (wan0 loses carrier)",
            &dst,
            "dst0",
            "wan",
            "no carrier",
            &src,
            "198.18.0.2",
        ),
        (
            "lan0 set down",
            &dut,
            "lan0",
            "lan",
            "set down",
            &dst,
            "198.18.0.1",
        ),
    ];
    for (what, ns, dev, side, word, from, to) in faults {
        lab.exec_ok(ns, &["ip", "link", "set", dev, "down"])
            .unwrap();
        let seen = wait_link(&b, side, word, Duration::from_secs(2));
        let before = link_down_drops(&status(&b), side);
        let p = ping(&lab, from, ip(to), 10, Duration::from_millis(20));
        assert_eq!(p.received, 0, "{what}: {p:?}");
        let after = link_down_drops(&status(&b), side);
        assert!(
            after >= before + 10,
            "{what}: the echo requests weir could not send are counted ({before} -> {after})"
        );
        let back = first_reply_after(&lab, from, to, || {
            lab.exec_ok(ns, &["ip", "link", "set", dev, "up"]).unwrap();
        });
        let back =
            back.unwrap_or_else(|| panic!("{what}: no reply within 3 s of the link's return"));
        eprintln!("{name}: {what}: status said `{word}` after {seen:?}; {} link_down; first reply {back:?} after the link came back", after - before);
        assert!(
            back < Duration::from_secs(1),
            "{what}: forwarding resumed after {back:?}"
        );
        wait_link(&b, side, "up", Duration::from_secs(1));
    }
    let mut b = b;
    assert!(!b.has_exited(), "weir stopped: {}", b.stderr());
    let s = b.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    for side in ["wan", "lan"] {
        let (rx, fwd, drop) = s.port(side);
        assert_eq!(rx, fwd + drop, "{side}");
    }
    assert!(s.stdout.contains("link_down"), "{}", s.stdout);
    assert!(
        s.stderr
            .contains("port wan: the link is down (wan0: no carrier)")
            && s.stderr.contains("port wan: the link is back after"),
        "{}",
        s.stderr
    );
}

#[test]
fn link_faults_are_survived_run_to_completion() {
    if !require_root("link_faults_are_survived_run_to_completion") {
        return;
    }
    survive_link_faults("faults-rtc", &[]);
}

#[test]
fn link_faults_are_survived_per_direction() {
    if !require_root("link_faults_are_survived_per_direction") {
        return;
    }
    survive_link_faults("faults-pd", &["--threads", "per-direction"]);
}

#[test]
fn an_interface_that_disappears_stops_weir_with_a_clear_message() {
    if !require_root("an_interface_that_disappears_stops_weir_with_a_clear_message") {
        return;
    }
    let _serial = serial();
    let lab = lab("faults-gone");
    let mut b = Bridge::start(&lab, "gone", &config("100 Mbit", ""), &[]);
    let _pinger = lab
        .spawn(
            &lab.src_ns,
            &["ping", "-n", "-q", "-i", "0.01", "-w", "8", "198.18.0.2"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    // Deletes the veth pair: dst0 goes with it.
    lab.exec_ok(&lab.dut_ns, &["ip", "link", "del", "wan0"])
        .unwrap();
    while !b.has_exited() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed();
    let s = b.stop();
    assert_ne!(s.code, Some(0), "{}", s.stderr);
    assert!(took < Duration::from_secs(3), "weir took {took:?} to stop");
    assert!(
        s.stderr.contains(
            "port wan: interface wan0 disappeared (deleted, or moved to another namespace)"
        ),
        "{}",
        s.stderr
    );
    // Its counters are still reported, and balance.
    for side in ["wan", "lan"] {
        let (rx, fwd, drop) = s.port(side);
        assert_eq!(rx, fwd + drop, "{side}");
    }
    eprintln!("stopped {took:?} after wan0 was deleted");
}

#[test]
fn sigterm_under_full_load_drains_within_two_seconds_and_the_counts_reconcile() {
    if !require_root("sigterm_under_full_load_drains_within_two_seconds_and_the_counts_reconcile") {
        return;
    }
    let _serial = serial();
    let lab = lab("faults-term");
    let (dut, src, dst) = (lab.dut_ns.clone(), lab.src_ns.clone(), lab.dst_ns.clone());
    let counter = |ns: &str, dev: &str, name: &str| if_counter(&lab, ns, dev, name);
    // What reached each far end (`rx_packets`), and what the veth between weir and it lost
    // (a full backlog at the far end drops, and counts it there or on weir's side).
    let far = |far_ns: &str, far_if: &str, near: &str| {
        (
            counter(far_ns, far_if, "rx_packets"),
            counter(far_ns, far_if, "rx_dropped") + counter(&dut, near, "tx_dropped"),
        )
    };
    // Counted before weir starts: nothing crosses without it, and whatever it forwards from
    // its first moment (the endpoints' IPv6 neighbour discovery, say) is then in both counts.
    let dst_before = far(&dst, "dst0", "wan0");
    let src_before = far(&src, "src0", "lan0");
    let lan_before = counter(&dut, "lan0", "rx_packets");
    // Without AQM, the class's queue stands at its limit (200 ms at 50 Mbit/s).
    let b = Bridge::start(
        &lab,
        "term",
        &config("50 Mbit", ", aqm: (enabled: false)"),
        &[],
    );
    // Up to 600 Mbit/s of UDP (what iperf3 manages on a busy machine) against a 50 Mbit/s
    // port, and pings in a priority class.
    let _server = lab
        .spawn(&dst, &["iperf3", "-s", "-1", "-p", "5221"])
        .unwrap();
    common::wait_listening(&lab, &dst, "5221", Duration::from_secs(5));
    let _client = lab
        .spawn(
            &src,
            &[
                "iperf3",
                "-c",
                "198.18.0.2",
                "-p",
                "5221",
                "-u",
                "-b",
                "600M",
                "-l",
                "1400",
                "-t",
                "10",
                "--connect-timeout",
                "2000",
            ],
        )
        .unwrap();
    let _pinger = lab
        .spawn(
            &src,
            &["ping", "-n", "-q", "-i", "0.01", "-w", "10", "198.18.0.2"],
        )
        .unwrap();
    // Full load: the port's queue stands (looked at every 100 ms after the first second, for
    // at most 5 s).
    let t = Instant::now();
    let queued = loop {
        std::thread::sleep(Duration::from_millis(100));
        let mid = status(&b);
        let queued: u64 = port(&mid, "wan")["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["queued_frames"].as_u64().unwrap_or(0))
            .sum();
        if queued > 100 && t.elapsed() > Duration::from_secs(1) {
            break queued;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the port never came under full load: {queued} frames queued"
        );
    };
    let s = b.stop();
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    assert!(s.took < Duration::from_secs(2), "drained in {:?}", s.took);
    // Each port: received = forwarded + dropped, nothing left queued (Stopped::port checks).
    let (wan_rx, wan_fwd, wan_drop) = s.port("wan");
    let (lan_rx, lan_fwd, lan_drop) = s.port("lan");
    assert_eq!(wan_rx, wan_fwd + wan_drop);
    assert_eq!(lan_rx, lan_fwd + lan_drop);
    // What weir says it forwarded is what arrived at the far ends, frame for frame (or was
    // lost on the veth after weir sent it), once the counters have settled (bounded).
    let settled = |far_ns: &str, far_if: &str, near: &str, before: (u64, u64)| {
        let t = Instant::now();
        let mut last = far(far_ns, far_if, near);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = far(far_ns, far_if, near);
            if now == last || t.elapsed() > Duration::from_secs(3) {
                return (now.0 - before.0, now.1 - before.1);
            }
            last = now;
        }
    };
    let (dst_got, dst_lost) = settled(&dst, "dst0", "wan0", dst_before);
    let (src_got, src_lost) = settled(&src, "src0", "lan0", src_before);
    assert!(
        dst_got <= wan_fwd && wan_fwd <= dst_got + dst_lost,
        "forwarded on wan {wan_fwd}; dst0 received {dst_got}, the veth lost {dst_lost}"
    );
    assert!(
        src_got <= lan_fwd && lan_fwd <= src_got + src_lost,
        "forwarded on lan {lan_fwd}; src0 received {src_got}, the veth lost {src_lost}"
    );
    // And it received no more than reached lan0 (the rest arrived after it stopped, or the
    // kernel dropped them at its ring: counted apart).
    let lan_in = counter(&dut, "lan0", "rx_packets") - lan_before;
    assert!(
        wan_rx <= lan_in,
        "{wan_rx} received of {lan_in} that reached lan0"
    );
    eprintln!(
        "SIGTERM with {queued} frames queued: stopped in {:?}; wan {wan_rx} = {wan_fwd} + \
         {wan_drop}, dst0 got {dst_got} (the veth lost {dst_lost}); lan forwarded {lan_fwd}, \
         src0 got {src_got} (lost {src_lost})",
        s.took
    );
}

#[test]
fn link_faults_are_survived_with_recvmmsg_and_with_pnet() {
    if !require_root("link_faults_are_survived_with_recvmmsg_and_with_pnet") {
        return;
    }
    survive_link_faults("faults-mmsg", &["--rx", "mmsg"]);
    survive_link_faults("faults-pnet", &["--io", "pnet"]);
}
