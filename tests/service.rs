//! weir as a service, in a lab: the control socket (status, flows, reload, stop, top), reload
//! under load, metrics, who may connect, the fail-open bypass and the systemd unit.
//!
//! Needs root (network namespaces); skips loudly otherwise, fails under CI=true. Each test has
//! its own lab, removed with every process in it when the test ends, also on failure; each weir
//! its own control socket. Every wait is bounded. Rates are checked with the bounds the issue
//! set (2% for a backlogged class, whose shaper is exact); the tests run one at a time.

mod common;

use common::bridge::{Bridge, WEIR};
use common::{if_counter, lab, ping, require_root, wait_listening, Guard};
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use weir::control::client::Client;
use weir::control::protocol::{ClassStatus, Command as ControlCommand, FlowStatus, Status};
use weir::tools::lab::{run_bounded, Lab};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config(wan_classes: &str, rate: &str) -> String {
    format!(
        r#"(
    lan_networks: ["198.18.0.0/16"],
    ports: (
        wan: (interface: "wan0", rate: "{rate}", classes: [{wan_classes}]),
        lan: (interface: "lan0", rate: "{rate}", classes: [(name: "all", match: "default", rate: "50%")]),
    ),
)"#
    )
}

/// A `weir` client command against `b`'s socket, run as root in the root namespace.
fn cli(b: &Bridge, args: &[&str]) -> Output {
    cli_as(b, &[], args)
}

/// The same, under `wrapper` (e.g. setpriv to run as another user).
fn cli_as(b: &Bridge, wrapper: &[&str], args: &[&str]) -> Output {
    let sock = b.socket();
    let mut all: Vec<&str> = wrapper.to_vec();
    all.push(WEIR);
    all.extend_from_slice(args);
    all.extend_from_slice(&["--control", sock.to_str().unwrap()]);
    let mut cmd = Command::new(all[0]);
    cmd.args(&all[1..]);
    run_bounded(cmd, Duration::from_secs(40)).expect("run weir")
}

fn json_of<T: serde::de::DeserializeOwned>(what: &str, out: &Output) -> T {
    assert!(
        out.status.success(),
        "weir {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "weir {what} --json: {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn status(b: &Bridge) -> Status {
    json_of("status", &cli(b, &["status", "--json"]))
}

fn class<'a>(s: &'a Status, port: &str, name: &str) -> &'a ClassStatus {
    s.ports
        .iter()
        .find(|p| p.port == port)
        .and_then(|p| p.classes.iter().find(|c| c.name == name))
        .unwrap_or_else(|| panic!("no class {port}/{name} in the status: {s:#?}"))
}

/// The class's row of the final report (`weir run --json`).
fn report_class<'a>(report: &'a Value, port: &str, name: &str) -> &'a Value {
    report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["port"] == port && c["name"] == name)
        .unwrap_or_else(|| panic!("no class {port}/{name} in the report"))
}

fn wan_forwarded(s: &Status) -> u64 {
    s.ports
        .iter()
        .find(|p| p.port == "wan")
        .unwrap()
        .classes
        .iter()
        .map(|c| c.forwarded_frames)
        .sum()
}

fn dst_rx(lab: &Lab) -> u64 {
    if_counter(lab, &lab.dst_ns, &lab.dst_if, "rx_packets")
}

/// Wait (bounded) for `guard` to exit successfully.
fn finish(mut g: Guard, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while !g.has_exited() {
        assert!(
            Instant::now() < deadline,
            "{what} still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = g.stop().expect("exit status");
    assert!(st.success(), "{what} failed: {st}");
}

#[test]
fn status_and_flows_agree_with_the_exit_report_and_the_far_side() {
    if !require_root("status_and_flows_agree_with_the_exit_report_and_the_far_side") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-status");
    let wan = r#"
        (name: "tcp", match: "tcp port 5201", priority: 1, rate: "50 Mbit", ceil: "50 Mbit",
         aqm: (enabled: false)),
        (name: "udp", match: "udp port 5201", priority: 2, rate: "10 Mbit", ceil: "10 Mbit"),
        (name: "rest", match: "default", rate: "10 Mbit")"#;
    let b = Bridge::start(&lab, "status", &config(wan, "1 Gbit"), &["--json"]);
    std::thread::sleep(Duration::from_millis(500));
    let (s0, rx0) = (status(&b), dst_rx(&lab));

    // During a TCP transfer: the class's rate, and its flow with its class.
    let (server, client) = common::iperf3_in_background(&lab, "5201", 4, &[]);
    std::thread::sleep(Duration::from_millis(2500));
    let mid = status(&b);
    let flows: Vec<FlowStatus> = json_of("flows", &cli(&b, &["flows", "--json"]));
    let tcp = class(&mid, "wan", "tcp");
    assert!(
        // Moving, and at most the ceil (and a frame). How close to it depends on how much CPU
        // the host leaves this VM; the exact agreements are checked below, once quiet.
        (1e6..=51e6).contains(&(tcp.rate_1s_bps as f64)),
        "tcp class at {} bit/s in the last second, against a 50 Mbit/s ceil: {tcp:?}",
        tcp.rate_1s_bps
    );
    // Active flows come from a walk of the flow table that takes 1.6 s a pass: the flow is
    // counted by the end of the first whole pass after it began.
    let deadline = Instant::now() + Duration::from_secs(5);
    while class(&status(&b), "wan", "tcp").active_flows == 0 {
        assert!(
            Instant::now() < deadline,
            "no active flow in the class: {tcp:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let data = flows
        .iter()
        .find(|f| f.dst == "198.18.0.2:5201" && f.bytes_up > 1_000_000)
        .unwrap_or_else(|| panic!("no iperf3 data flow in {flows:#?}"));
    assert_eq!(data.proto, "tcp");
    assert!(data.src.starts_with("198.18.0.1:"), "{data:?}");
    assert_eq!(data.class_up.as_deref(), Some("tcp"));
    assert_eq!(data.class_down.as_deref(), Some("all"));
    assert!(data.rate_bps > 1_000_000, "{data:?}");
    let only: Vec<FlowStatus> = json_of(
        "flows",
        &cli(&b, &["flows", "--json", "--class", "tcp", "--top", "1"]),
    );
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].class_up.as_deref(), Some("tcp"));
    finish(client, Duration::from_secs(15), "iperf3 client");
    drop(server);

    // UDP at twice its class's ceil: drops, counted alike everywhere.
    let udp = common::iperf3(&lab, ip("198.18.0.2"), 2, &["-u", "-b", "20M"]);
    assert!(udp.receiver_bps > 5e6, "{udp:?}");

    // Quiet again: the last published counters are the final ones.
    std::thread::sleep(Duration::from_millis(700));
    let (s1, rx1) = (status(&b), dst_rx(&lab));
    assert!(s1.age_ms < 500.0, "counters {} ms old", s1.age_ms);
    // Every frame weir sent out on wan reached dst0 (ND and the like cross too, in both
    // counts; one may slip between the two readings).
    let sent = wan_forwarded(&s1) - wan_forwarded(&s0);
    let got = rx1 - rx0;
    assert!(
        sent.abs_diff(got) <= 2 && sent > 1_000,
        "weir forwarded {sent} frames on wan, dst0 received {got}"
    );

    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let report: Value = serde_json::from_str(&stopped.stdout).expect("weir run --json");
    for name in ["tcp", "udp"] {
        let (st, rep) = (class(&s1, "wan", name), report_class(&report, "wan", name));
        for (key, v) in [
            ("received_frames", st.received_frames),
            ("forwarded_frames", st.forwarded_frames),
            ("forwarded_bytes", st.forwarded_bytes),
            ("dropped_frames", st.dropped_frames),
        ] {
            assert_eq!(
                rep[key].as_u64(),
                Some(v),
                "{name} {key}: status {v}, report {}",
                rep[key]
            );
        }
        for (reason, n) in &st.drops_by_reason {
            assert_eq!(
                rep["drops_by_reason"][reason].as_u64(),
                Some(*n),
                "{name} {reason}"
            );
        }
    }
    assert!(
        class(&s1, "wan", "udp").dropped_frames > 100,
        "the 20M flood into 10M"
    );
}

/// Five pings from src0 to dst0, 50 ms apart, every one answered.
fn five_pings_answered(lab: &Lab, what: &str) {
    let p = ping(
        lab,
        &lab.src_ns,
        ip("198.18.0.2"),
        5,
        Duration::from_millis(50),
    );
    assert_eq!(p.lost(), 0, "{what}: {p:?}");
}

/// Samples of a class's forwarded wire bytes: (weir's clock in seconds, bytes), over one
/// connection (a process per sample would load the 2 cores the bridge runs on).
fn wire_samples(client: &mut Client, class_name: &str, until: Instant, into: &mut Vec<(f64, u64)>) {
    while Instant::now() < until {
        let s = client
            .request(ControlCommand::Status { history: false })
            .expect("status")
            .status
            .expect("a status");
        let p = s.ports.iter().find(|p| p.port == "wan").unwrap();
        let c = class(&s, "wan", class_name);
        if into.last().is_none_or(|l| l.0 < p.published_s) {
            into.push((p.published_s, c.forwarded_wire_bytes));
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

#[test]
fn twenty_reloads_in_ten_seconds_lose_nothing_and_the_rate_follows() {
    if !require_root("twenty_reloads_in_ten_seconds_lose_nothing_and_the_rate_follows") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-reload");
    // `shared` alternates between 20 and 40 Mbit/s and carries an unresponsive 60 Mbit/s UDP
    // flood, which keeps it backlogged (no AQM: its queue stays full), so its rate is exactly
    // what the shaper gives it. Its bucket holds 100 KB (20 ms at 40 Mbit/s, against 1 ms by
    // default): on this shared 2-vCPU VM the host took up to 7 s of CPU from a 13 s run (steal
    // in /proc/stat), and a forwarding thread not run for longer than the bucket's depth loses
    // that sending time (docs/benchmarks.md, Known problems), which would hide what is tested
    // here: whether each reload applies at once. The TCP flow has a class of its own, reloaded each time too:
    // inside the flooded class it would be hit by the class-wide AQM's refusals (the defect
    // docs/benchmarks.md describes), whatever the reloads did.
    let shared = |rate: &str| {
        format!(
            r#"
        (name: "shared", match: "udp port 5202", priority: 1, rate: "{rate}", ceil: "{rate}",
         burst: "100 KB", aqm: (enabled: false)),
        (name: "tcp", match: "tcp port 5201", priority: 1, rate: "30 Mbit", ceil: "30 Mbit"),
        (name: "rest", match: "default", rate: "10 Mbit")"#
        )
    };
    let b = Bridge::start(
        &lab,
        "reload",
        &config(&shared("20 Mbit"), "1 Gbit"),
        &["--json"],
    );
    // What the host's steal can spoil (rates, TCP's silences) is judged by with_retries; what
    // it cannot (a frame dropped for a reload, a rate above the setting) fails at once.
    common::with_retries("20 reloads under load", 1, || {
        // One TCP flow and an unresponsive 60 Mbit/s UDP flood, for 13 s.
        // The server reports every 100 ms, for the client to bring back (--get-server-output).
        let tcp_server = lab
            .spawn(
                &lab.dst_ns,
                &["iperf3", "-s", "-1", "-p", "5201", "-J", "-i", "0.1"],
            )
            .unwrap();
        wait_listening(&lab, &lab.dst_ns, "5201", Duration::from_secs(5));
        let tcp_client = lab.command(
            &lab.src_ns,
            &[
                "iperf3",
                "-c",
                "198.18.0.2",
                "-p",
                "5201",
                "-t",
                "13",
                "-i",
                "0.1",
                "-J",
                "--get-server-output",
                "--connect-timeout",
                "2000",
            ],
        );
        let tcp = std::thread::spawn(move || {
            run_bounded(tcp_client, Duration::from_secs(40)).expect("iperf3 TCP client")
        });
        let (flood_server, flood) =
            common::iperf3_in_background(&lab, "5202", 13, &["-u", "-b", "60M"]);
        std::thread::sleep(Duration::from_millis(1500));

        let mut samples = Vec::new();
        let mut changes: Vec<(f64, f64)> = Vec::new(); // (weir time of the swap, new rate)
        let mut slowest_ms: f64 = 0.0;
        let mut client = Client::connect(&b.socket()).expect("the control socket");
        for i in 0..20 {
            let rate = if i % 2 == 0 { 40e6 } else { 20e6 };
            std::fs::write(
                b.config_path(),
                config(&shared(&format!("{} Mbit", rate / 1e6)), "1 Gbit"),
            )
            .unwrap();
            let r = client
                .request(ControlCommand::Reload)
                .expect("reload")
                .reload
                .expect("a reload result");
            assert_eq!(r.generation, i + 1);
            assert_eq!(r.frames.dropped, 0, "{r:?}");
            slowest_ms = slowest_ms.max(r.total_ms);
            changes.push((r.done_s, rate));
            wire_samples(
                &mut client,
                "shared",
                Instant::now() + Duration::from_millis(480),
                &mut samples,
            );
        }
        assert_eq!(status(&b).config.generation, 20);
        eprintln!("20 reloads: slowest {slowest_ms:.1} ms from file to swap");

        // Each setting: over its interval, from 150 ms after the swap to the next swap, the class
        // sent at the new rate: each interval within 10% (a reload that did not apply is 50% or
        // 100% off; the host's steal can still cost an interval a few percent), the median within
        // 2%. benches/reload.sh measures the spread.
        let mut errors = Vec::new();
        for (k, &(at, rate)) in changes.iter().enumerate() {
            let end = changes.get(k + 1).map_or(f64::MAX, |c| c.0);
            let inside: Vec<&(f64, u64)> = samples
                .iter()
                .filter(|(t, _)| *t >= at + 0.15 && *t <= end)
                .collect();
            let (Some(a), Some(z)) = (inside.first(), inside.last()) else {
                panic!("no samples after the swap at {at} s: {samples:?}");
            };
            assert!(z.0 - a.0 >= 0.2, "too few samples after the swap at {at} s");
            let measured = (z.1 - a.1) as f64 * 8.0 / (z.0 - a.0);
            // Above the new rate is the shaper's fault, whatever the host does.
            assert!(
                measured <= rate * 1.02,
                "after the swap at {at:.3} s to {} Mbit/s the class sent {:.2} Mbit/s",
                rate / 1e6,
                measured / 1e6
            );
            errors.push(measured / rate - 1.0);
        }
        let mut sorted: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let rates = format!(
            "rate after each swap: median error {:.2}%, worst {:.2}% ({:?})",
            median * 100.0,
            sorted[sorted.len() - 1] * 100.0,
            errors
                .iter()
                .map(|e| format!("{:+.1}%", e * 100.0))
                .collect::<Vec<_>>()
        );
        eprintln!("{rates}");
        let rates_ok = median <= 0.02 && sorted[sorted.len() - 1] <= 0.10;

        let tcp = tcp.join().unwrap();
        finish(flood, Duration::from_secs(20), "UDP flood");
        drop((tcp_server, flood_server));
        // The TCP flow never stalled: the server received something in every 100 ms interval,
        // but for at most two in a row.
        let v: Value = serde_json::from_slice(&tcp.stdout).expect("iperf3 -J");
        let intervals = v["server_output_json"]["intervals"]
            .as_array()
            .unwrap_or_else(|| panic!("no server intervals: {v}"));
        let (mut run, mut longest) = (0, 0);
        for iv in intervals {
            if iv["sum"]["bytes"].as_u64().unwrap_or(0) == 0 {
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        assert!(intervals.len() >= 100, "{} intervals", intervals.len());
        (
            format!("{rates}; TCP's longest silence {longest} x 100 ms"),
            rates_ok && longest <= 2,
        )
    });

    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let report: Value = serde_json::from_str(&stopped.stdout).unwrap();
    let t = &report["totals"];
    assert_eq!(
        t["received"].as_u64().unwrap(),
        t["forwarded"].as_u64().unwrap() + t["dropped"].as_u64().unwrap(),
        "{t}"
    );
    assert_eq!(t["queued"], 0);
    for name in ["shared", "tcp"] {
        let c = report_class(&report, "wan", name);
        assert_eq!(c["drops_by_reason"]["reload"], 0, "{c}");
    }
}

#[test]
fn a_broken_config_on_reload_keeps_the_old_policy_and_says_where() {
    if !require_root("a_broken_config_on_reload_keeps_the_old_policy_and_says_where") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-broken");
    let good = config(
        r#"(name: "all", match: "default", rate: "10 Mbit")"#,
        "100 Mbit",
    );
    let b = Bridge::start(&lab, "broken", &good, &[]);
    let pinged = |what: &str| five_pings_answered(&lab, what);
    pinged("at start");

    // A bad rate on line 5: `weir reload` fails with the position, weir keeps going.
    let broken = good.replace(r#"rate: "100 Mbit""#, r#"rate: "100 Mbiit""#);
    std::fs::write(b.config_path(), &broken).unwrap();
    let out = cli(&b, &["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("config.ron:5:"), "{err}");
    assert!(err.contains("the running policy is unchanged"), "{err}");
    pinged("after a refused reload");

    // A change that needs a restart.
    std::fs::write(b.config_path(), good.replace("wan0", "wan9")).unwrap();
    let out = cli(&b, &["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("takes a restart"), "{err}");

    // SIGHUP does the same: refused, logged with the position, still forwarding.
    std::fs::write(b.config_path(), &broken).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &b.pid().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(&b).config.reloads_refused < 3 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not acted on:\n{}",
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(b.stderr().contains("config.ron:5:"), "{}", b.stderr());
    pinged("after a refused SIGHUP");
    let s = status(&b);
    assert_eq!((s.config.generation, s.config.reloads_refused), (0, 3));
    assert_eq!(class(&s, "wan", "all").rate_bps, 10_000_000);

    // Fixed, SIGHUP swaps it in.
    std::fs::write(b.config_path(), good.replace("10 Mbit", "20 Mbit")).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &b.pid().to_string()])
        .status();
    while status(&b).config.generation < 1 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP reload not done:\n{}",
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(class(&status(&b), "wan", "all").rate_bps, 20_000_000);
    pinged("after the reload");
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

#[test]
fn explain_asks_a_running_bridge_about_a_flow() {
    if !require_root("explain_asks_a_running_bridge_about_a_flow") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-explain");
    let wan = r#"
        (name: "mozilla", match: "domain *.mozilla.org", rate: "10 Mbit"),
        (name: "ping", match: "icmp", rate: "10 Mbit"),
        (name: "rest", match: "default", rate: "10 Mbit")"#;
    let b = Bridge::start(&lab, "explain", &config(wan, "100 Mbit"), &[]);
    // A TLS connection's frames (both directions of a real capture) sent into lan, over and
    // over: its ClientHello names it.
    let capture = common::captures::root().join("captures/tls-sni.pcap");
    let _send = lab
        .spawn(
            &lab.src_ns,
            &[
                WEIR,
                "send",
                "-i",
                &lab.src_if,
                "--pps",
                "200",
                "--loop",
                "0",
                capture.to_str().unwrap(),
            ],
        )
        .expect("weir send");
    let flow = "52.32.149.186:443 192.168.6.203:53226";
    let deadline = Instant::now() + Duration::from_secs(10);
    let x: Value = loop {
        let out = cli(&b, &["explain", "--flow", flow, "--json", "--wait", "2"]);
        let x: Value = json_of("explain", &out);
        // The first frames of the first pass come before the ClientHello.
        if x["class_name"] == "mozilla" || Instant::now() > deadline {
            break x;
        }
    };
    assert_eq!(x["class_name"], "mozilla", "{x:#}");
    assert_eq!(x["egress"], "wan");
    let e = &x["explanation"];
    assert_eq!(e["server_name"], "tls13.crypto.mozilla.org", "{x:#}");
    assert_eq!(e["name_source"], "sni");
    assert_eq!(e["protocol"], "tls");
    assert_eq!(e["rules"][0]["tests"][0]["test"], "domain *.mozilla.org");
    assert!(
        x["frame"].as_str().unwrap().contains("52.32.149.186"),
        "{x:#}"
    );

    // Text, for a ping: the rules in order, up to the one that takes it. Asked before the
    // ping starts, so that the flow's next frame is its first echo request (a frame of
    // either direction answers).
    let mut ask = Command::new(WEIR);
    ask.args(["explain", "--flow", "198.18.0.1 198.18.0.2", "--wait", "5"])
        .args(["--control", b.socket().to_str().unwrap()]);
    let asking = std::thread::spawn(move || run_bounded(ask, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(300));
    five_pings_answered(&lab, "explained");
    let out = asking.join().unwrap().expect("weir explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("leaves by wan (upload)"), "{text}");
    assert!(
        text.contains("mozilla `domain *.mozilla.org`: no"),
        "{text}"
    );
    assert!(text.contains("ping `icmp`: MATCHES"), "{text}");
    assert!(text.contains("class: ping"), "{text}");

    // A flow that does not cross, and a malformed one: clear errors, non-zero.
    let out = cli(
        &b,
        &[
            "explain",
            "--flow",
            "198.18.0.9:1 198.18.0.8:2",
            "--wait",
            "0.3",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no frame of the flow"), "{err}");
    let out = cli(&b, &["explain", "--flow", "198.18.0.9:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected two endpoints"));
    // Still forwarding, every balance kept.
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

/// A MaxMind DB file that puts 198.18.0.0/24 in `country`.
fn one_country_database(country: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Place<'a> {
        iso_code: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Record<'a> {
        country: Place<'a>,
    }
    let mut w = mmdb_writer::Writer::builder("weir-test-country").build();
    w.insert(
        "198.18.0.0/24".parse::<ipnet::IpNet>().unwrap(),
        &Record {
            country: Place { iso_code: country },
        },
    )
    .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn country_rules_live_and_a_database_changed_on_disk_takes_effect_at_reload() {
    if !require_root("country_rules_live_and_a_database_changed_on_disk_takes_effect_at_reload") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-geo");
    // The database sits beside the config (a relative path), written before weir starts.
    let db = common::bridge::temp_dir("geo").join("geo.mmdb");
    std::fs::write(&db, one_country_database("NZ")).unwrap();
    let config = r#"(
    lan_networks: ["198.18.0.1/32"],
    geoip: (country: "geo.mmdb"),
    ports: (
        wan: (interface: "wan0", rate: "100 Mbit", classes: [
            (name: "nz", match: "country NZ", rate: "10 Mbit"),
            (name: "au", match: "country AU", rate: "10 Mbit"),
            (name: "rest", match: "default", rate: "10 Mbit"),
        ]),
        lan: (interface: "lan0", rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "50%")]),
    ),
)"#;
    let b = Bridge::start(&lab, "geo", config, &[]);
    let pings = |what: &str| five_pings_answered(&lab, what);
    let received = |name: &str| class(&status(&b), "wan", name).received_frames;
    let settle = || std::thread::sleep(Duration::from_millis(300));
    pings("with NZ");
    settle();
    // 198.18.0.2 is outside the LAN network and in NZ: the echo requests go to `nz`.
    assert!(received("nz") >= 5, "{:#?}", status(&b));
    assert_eq!(received("au"), 0);
    // The same file name, new contents: a reload reads it again.
    std::fs::write(&db, one_country_database("AU")).unwrap();
    let out = cli(&b, &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = received("nz");
    pings("with AU");
    settle();
    assert!(received("au") >= 5, "{:#?}", status(&b));
    assert_eq!(received("nz"), before);
    // A damaged database on reload: refused with where, the old one kept.
    std::fs::write(&db, b"not a database").unwrap();
    let out = cli(&b, &["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("config.ron:3:") && err.contains("is not a MaxMind DB file"),
        "{err}"
    );
    pings("after the refused reload");
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

/// Python that sends `count` payloads of 100 bytes to 198.18.0.2:`port`, one every 20 ms,
/// from one socket (`tcp`: one connection).
fn sender(port: u16, count: u32, tcp: bool) -> String {
    // UDP unconnected (sendto), so that the far side's port unreachable errors do not end it.
    let (kind, open, send) = if tcp {
        (
            "SOCK_STREAM",
            format!("s.connect(('198.18.0.2', {port}))"),
            "s.send(b'x' * 100)".to_string(),
        )
    } else {
        (
            "SOCK_DGRAM",
            "pass".to_string(),
            format!("s.sendto(b'x' * 100, ('198.18.0.2', {port}))"),
        )
    };
    format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.{kind})\n\
         {open}\n\
         for _ in range({count}):\n    {send}\n    time.sleep(0.02)\n\
         s.close()\n"
    )
}

#[test]
fn owner_rules_put_two_users_and_two_commands_in_their_classes() {
    if !require_root("owner_rules_put_two_users_and_two_commands_in_their_classes") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-owners");
    // The clients run in the lab's src namespace: weir looks there for their sockets.
    let config = format!(
        r#"(
    lan_networks: ["198.18.0.0/16"],
    processes: (netns: ["/run/netns/{src}"]),
    ports: (
        wan: (interface: "wan0", rate: "100 Mbit", classes: [
            (name: "nobody", match: "user nobody", rate: "10 Mbit"),
            (name: "tool", match: "cmd weir-test-tool and args '*5001*'", rate: "10 Mbit"),
            (name: "rest", match: "default", rate: "10 Mbit"),
        ]),
        lan: (interface: "lan0", rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "50%")]),
    ),
)"#,
        src = lab.src_ns
    );
    let b = Bridge::start(&lab, "owners", &config, &["--json", "-v", "-v"]);
    // A TCP listener on the far side that reads and discards.
    let _listener = lab
        .spawn(
            &lab.dst_ns,
            &[
                "python3",
                "-c",
                "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind(('0.0.0.0', 5002))\ns.listen()\nc, _ = s.accept()\nwhile c.recv(65536): pass\n",
            ],
        )
        .expect("listener");
    wait_listening(&lab, &lab.dst_ns, "5002", Duration::from_secs(5));
    let (udp_nobody, tcp_nobody, udp_tool) = (
        sender(5000, 40, false),
        sender(5002, 20, true),
        sender(5001, 40, false),
    );
    let python = String::from_utf8(
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3")
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let as_nobody = |code: &str| {
        lab.command(
            &lab.src_ns,
            &["runuser", "-u", "nobody", "--", "python3", "-c", code],
        )
    };
    let runs = [
        as_nobody(&udp_nobody),
        as_nobody(&tcp_nobody),
        // Root, with argv[0] set to the command name the rule tests (the interpreter itself:
        // a wrapper such as pyenv's would exec it again with its own argv[0]).
        lab.command(
            &lab.src_ns,
            &[
                "bash",
                "-c",
                &format!("exec -a weir-test-tool {python} -c \"{udp_tool}\" 5001"),
            ],
        ),
    ];
    let handles: Vec<_> = runs
        .into_iter()
        .map(|cmd| std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(20))))
        .collect();
    for h in handles {
        let out = h.join().unwrap().expect("sender");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A flow with no local socket (to a port nothing listens on in src): no owner, counted.
    let stray = lab
        .exec(
            &lab.dst_ns,
            &[
                "python3",
                "-c",
                &sender(9999, 3, false).replace("198.18.0.2", "198.18.0.1"),
            ],
        )
        .expect("stray sender");
    assert!(
        stray.status.success(),
        "{}",
        String::from_utf8_lossy(&stray.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    let s = status(&b);
    let got = |name: &str| class(&s, "wan", name).received_frames;
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let report: Value = serde_json::from_str(&stopped.stdout).expect("weir run --json");
    let owners = &report["owners"];
    eprintln!("owners: {owners}");
    // Three flows asked for and found; only their first frames went before the answer.
    assert!(owners["found"].as_u64().unwrap() >= 3, "{owners}");
    assert!(
        owners["unknown"].as_u64().unwrap() >= 1,
        "the stray flow: {owners}"
    );
    let before = owners["frames_before_owner"].as_u64().unwrap();
    assert!(before <= 3 * 5, "{owners}");
    // nobody's 40 datagrams and its TCP connection's data (20 sends, and its handshake and
    // acks), less what went before the answer; the tool's 40 datagrams likewise.
    let (nobody, tool, rest) = (got("nobody"), got("tool"), got("rest"));
    assert!(
        nobody >= 60 - before && nobody <= 40 + 20 * 3 + 5,
        "nobody {nobody}, rest {rest}, {owners}"
    );
    assert!(
        tool >= 40 - before && tool <= 40,
        "tool {tool}, rest {rest}, {owners}"
    );
    assert!(rest <= before + 5, "rest {rest}, {owners}");
}

#[test]
fn a_schedule_and_a_time_rule_follow_the_wall_clock() {
    if !require_root("a_schedule_and_a_time_rule_follow_the_wall_clock") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-schedule");
    // A window from two minutes ago to three minutes on, UTC (every day; it may cross
    // midnight), so that it holds for the whole test.
    let now_min = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60)
        % 1440;
    let hm = |m: u64| format!("{:02}:{:02}", (m % 1440) / 60, m % 60);
    let window = format!("{}-{}", hm(now_min + 1438), hm(now_min + 3));
    let wan = format!(
        r#"(name: "now", match: "icmp and time '{window}'", rate: "10 Mbit",
            schedule: [(when: "{window}", rate: "20 Mbit")]),
        (name: "rest", match: "default", rate: "10 Mbit")"#
    );
    let cfg = format!(
        "(\n    timezone: \"UTC\",{}",
        &config(&wan, "100 Mbit")[1..]
    );
    let b = Bridge::start(&lab, "schedule", &cfg, &[]);
    five_pings_answered(&lab, "in the window");
    std::thread::sleep(Duration::from_millis(300));
    let s = status(&b);
    let now = class(&s, "wan", "now");
    assert!(now.received_frames >= 5, "{s:#?}");
    assert_eq!(
        now.rate_bps, 20_000_000,
        "the scheduled rate in force: {now:#?}"
    );
    assert_eq!(class(&s, "wan", "rest").rate_bps, 10_000_000);
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

/// GET `path` from `port` on 127.0.0.1 inside namespace `ns` (from a thread that enters it).
fn http_get(ns: &str, port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let (ns, path) = (Path::new("/var/run/netns").join(ns), path.to_string());
    std::thread::spawn(move || {
        weir::io::sys::netdev::enter_network_namespace(&ns).expect("enter the namespace");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: weir\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    })
    .join()
    .expect("the HTTP thread")
}

#[test]
fn metrics_parse_with_a_real_prometheus_parser_and_agree_with_status() {
    if !require_root("metrics_parse_with_a_real_prometheus_parser_and_agree_with_status") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-metrics");
    let wan = r#"
        (name: "tcp", match: "tcp", priority: 1, rate: "50 Mbit", ceil: "50 Mbit"),
        (name: "rest", match: "default", rate: "10 Mbit")"#;
    let b = Bridge::start(
        &lab,
        "metrics",
        &config(wan, "1 Gbit"),
        &["--metrics", "127.0.0.1:19840"],
    );
    let tcp = common::iperf3(&lab, ip("198.18.0.2"), 2, &[]);
    assert!(tcp.receiver_bps > 10e6);
    let p = ping(
        &lab,
        &lab.src_ns,
        ip("198.18.0.2"),
        5,
        Duration::from_millis(20),
    );
    assert_eq!(p.lost(), 0);
    std::thread::sleep(Duration::from_millis(600));
    let page = http_get(&lab.dut_ns, 19840, "/metrics");
    let s = status(&b);
    let (head, body) = page.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200"),
        "{head}"
    );
    assert!(
        head.to_lowercase().contains("text/plain; version=0.0.4"),
        "{head}"
    );
    // Python's prometheus_client parses it (it raises on anything malformed) into samples.
    let file = std::env::temp_dir().join(format!("weir-metrics-{}.txt", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        out.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(out))
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, file.to_str().unwrap()]);
    let out = run_bounded(cmd, Duration::from_secs(30)).expect("python3");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Value = serde_json::from_slice(&out.stdout).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples[name]
            .as_array()
            .unwrap_or_else(|| panic!("no {name} in the metrics"))
            .iter()
            .find(|s| labels.iter().all(|(k, v)| s[0][k] == *v))
            .unwrap_or_else(|| panic!("no {name}{labels:?}"))[1]
            .as_f64()
            .unwrap()
    };
    let c = class(&s, "wan", "tcp");
    let l = [("port", "wan"), ("class", "tcp")];
    assert_eq!(
        value("weir_class_forwarded_frames_total", &l),
        c.forwarded_frames as f64
    );
    assert_eq!(
        value("weir_class_forwarded_bytes_total", &l),
        c.forwarded_bytes as f64
    );
    assert_eq!(
        value("weir_class_received_frames_total", &l),
        c.received_frames as f64
    );
    assert_eq!(
        value("weir_class_queued_frames", &l),
        c.queued_frames as f64
    );
    assert_eq!(
        value(
            "weir_class_dropped_frames_total",
            &[("port", "wan"), ("class", "tcp"), ("reason", "aqm")]
        ),
        c.drops_by_reason["aqm"] as f64
    );
    assert_eq!(
        value("weir_class_sojourn_seconds_count", &l),
        c.forwarded_frames as f64
    );
    assert_eq!(
        value(
            "weir_class_sojourn_seconds_bucket",
            &[("port", "wan"), ("class", "tcp"), ("le", "+Inf")]
        ),
        c.forwarded_frames as f64
    );
    assert_eq!(value("weir_config_generation", &[]), 0.0);
    assert!(value("weir_flow_table_capacity_entries", &[]) >= 65536.0);
    assert!(samples["weir_build_info"].is_array());
    assert!(c.forwarded_frames > 1000);
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

#[test]
fn only_root_or_the_control_group_may_use_the_control_socket() {
    if !require_root("only_root_or_the_control_group_may_use_the_control_socket") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-perm");
    let cfg = config(
        r#"(name: "all", match: "default", rate: "10 Mbit")"#,
        "100 Mbit",
    );
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let b = Bridge::start(&lab, "perm", &cfg, &[]);
    // Once running, no thread of weir has a capability left, and the forwarding thread kept
    // its real-time priority (field 41 of its stat: 1 is SCHED_FIFO).
    let tasks = std::fs::read_dir(format!("/proc/{}/task", b.pid())).unwrap();
    let mut forwarding = 0;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap();
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap();
        let eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        assert!(eff.ends_with("0000000000000000"), "{}: {eff}", name.trim());
        if name.trim() == "weir-fwd" {
            forwarding += 1;
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
            let policy = stat.rsplit(')').next().unwrap().split_whitespace().nth(38);
            assert_eq!(policy, Some("1"), "the forwarding thread's policy");
        }
    }
    assert_eq!(forwarding, 1);
    let out = cli_as(&b, &nobody, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied"), "{err}");
    let out = cli_as(&b, &nobody, &["stop"]);
    assert!(!out.status.success(), "nobody stopped weir");
    assert!(status(&b).uptime_s > 0.0, "root still can");
    drop(b.stop());
    // With --control-group, its members may.
    let b = Bridge::start(&lab, "perm-group", &cfg, &["--control-group", "nogroup"]);
    let out = cli_as(&b, &nobody, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

#[test]
fn top_shows_the_classes_moving_and_q_quits() {
    if !require_root("top_shows_the_classes_moving_and_q_quits") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-top");
    let wan = r#"
        (name: "bulky", match: "tcp", priority: 1, rate: "50 Mbit", ceil: "50 Mbit"),
        (name: "rest", match: "default", rate: "10 Mbit")"#;
    let b = Bridge::start(&lab, "top", &config(wan, "1 Gbit"), &[]);
    let session = format!("weir-top-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let mut cmd = Command::new("tmux");
        cmd.args(args);
        run_bounded(cmd, Duration::from_secs(10)).expect("tmux")
    };
    let top = format!("{WEIR} top --control {}", b.socket().display());
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "200",
        "-y",
        "45",
        &top,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    let (server, client) = common::iperf3_in_background(&lab, "5201", 4, &[]);
    std::thread::sleep(Duration::from_millis(2500));
    let first = screen();
    std::thread::sleep(Duration::from_millis(1200));
    let second = screen();
    for s in [&first, &second] {
        assert!(
            s.contains("bulky") && s.contains("rest") && s.contains("classes leaving by wan"),
            "{s}"
        );
    }
    let bulky_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("bulky"))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        bulky_line(&second).contains("Mbit"),
        "no rate on the line: {second}"
    );
    assert_ne!(first, second, "the screen did not change in a second");
    // `p` shows the other port.
    tmux(&["send-keys", "-t", &session, "p"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(screen().contains("classes leaving by lan"));
    finish(client, Duration::from_secs(15), "iperf3 client");
    drop(server);
    tmux(&["send-keys", "-t", &session, "q"]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while tmux(&["has-session", "-t", &session]).status.success() {
        assert!(
            Instant::now() < deadline,
            "top did not quit on q:\n{}",
            screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

#[test]
fn the_bypass_keeps_the_link_up_while_weir_is_not_running() {
    if !require_root("the_bypass_keeps_the_link_up_while_weir_is_not_running") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-bypass");
    let bypass = |action: &str| {
        lab.exec_ok(
            &lab.dut_ns,
            &[WEIR, "bypass", action, "--lan", "lan0", "--wan", "wan0"],
        )
        .unwrap_or_else(|e| panic!("weir bypass {action}: {e}"))
    };
    let reach = || {
        ping(
            &lab,
            &lab.src_ns,
            ip("198.18.0.2"),
            3,
            Duration::from_millis(50),
        )
    };
    assert_eq!(
        reach().received,
        0,
        "nothing crosses without weir or the bypass"
    );
    bypass("on");
    bypass("on");
    assert_eq!(reach().lost(), 0, "the kernel bridge carries traffic");
    let cfg = config(
        r#"(name: "all", match: "default", rate: "10 Mbit")"#,
        "100 Mbit",
    );
    let dir = common::bridge::temp_dir("bypass-refused");
    std::fs::write(dir.join("c.ron"), &cfg).unwrap();
    let out = lab
        .exec(
            &lab.dut_ns,
            &[
                WEIR,
                "run",
                "-c",
                dir.join("c.ron").to_str().unwrap(),
                "--control",
                dir.join("s").to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weir bypass off"));
    bypass("off");
    bypass("off");
    assert_eq!(reach().received, 0, "the bypass is gone");
    let b = Bridge::start(&lab, "bypass", &cfg, &[]);
    assert_eq!(reach().lost(), 0, "weir forwards");
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_systemd_unit_verifies() {
    if !require_root("the_systemd_unit_verifies") {
        return;
    }
    // systemd-analyze checks the unit and that its commands exist: point them at this build.
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/weir.service"))
            .unwrap()
            .replace("/usr/local/bin/weir", WEIR);
    let dir = common::bridge::temp_dir("unit");
    let path = dir.join("weir.service");
    std::fs::write(&path, unit).unwrap();
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", path.to_str().unwrap()]);
    let out = run_bounded(cmd, Duration::from_secs(30)).expect("systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The budgets of `weir budget --json` by name: (used, ran out).
fn budgets(b: &Bridge) -> std::collections::BTreeMap<String, (u64, bool)> {
    let r: Value = json_of("budget", &cli(b, &["budget", "--json"]));
    r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let name = x["name"].as_str().unwrap().to_string();
            (
                name,
                (x["used"].as_u64().unwrap(), !x["ran_out_at"].is_null()),
            )
        })
        .collect()
}

#[test]
fn budgets_cap_within_a_second_and_their_counts_survive_reload_and_sigkill() {
    if !require_root("budgets_cap_within_a_second_and_their_counts_survive_reload_and_sigkill") {
        return;
    }
    let _serial = serial();
    let lab = lab("svc-budget");
    let store_dir = common::bridge::temp_dir("budget-store");
    let store = store_dir.join("budgets.sqlite");
    let _ = std::fs::remove_file(&store);
    // A 10 Mbit/s UDP flood in a class with a 3 MB daily budget, capped at 1 Mbit/s once it
    // is used; a rule budget counts everything of the lab's network (and never runs out).
    let wan = r#"(name: "flood", match: "udp port 5201", rate: "1 Mbit", ceil: "20 Mbit",
            aqm: (enabled: false),
            budget: (bytes: "3 MB", per: day, then: (ceil: "1 Mbit"))),
        (name: "rest", match: "default", rate: "10 Mbit")"#;
    let cfg = format!(
        "(\n    timezone: \"UTC\",\n    budget_store: (path: \"{}\", flush: \"1 s\"),\n    \
         budgets: [(name: \"lab\", match: \"net 198.18.0.0/16\", bytes: \"100 GB\", per: day, then: drop)],{}",
        store.display(),
        &config(wan, "100 Mbit")[1..]
    );
    let b = Bridge::start(&lab, "budget", &cfg, &[]);
    let (_server, _client) =
        common::iperf3_in_background(&lab, "5201", 8, &["-u", "-b", "10M", "-l", "1000"]);
    // The budget runs out after about 2.4 s of the flood.
    let deadline = Instant::now() + Duration::from_secs(8);
    while !budgets(&b)["flood"].1 {
        assert!(
            Instant::now() < deadline,
            "the flood's budget never ran out: {:?}",
            budgets(&b)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran_out = Instant::now();
    // Within a second, the class is capped, and its rate over the next second is the cap's.
    let capped_at = loop {
        let s = status(&b);
        if class(&s, "wan", "flood").ceil_bps == 1_000_000 {
            break ran_out.elapsed();
        }
        assert!(
            ran_out.elapsed() < Duration::from_secs(1),
            "not capped: {s:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let before = class(&status(&b), "wan", "flood").forwarded_bytes;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let after = class(&status(&b), "wan", "flood").forwarded_bytes;
    let bps = (after - before) as f64 * 8.0 / t.elapsed().as_secs_f64();
    assert!(
        (0.5e6..1.3e6).contains(&bps),
        "{bps} bit/s after the cap (seen capped {capped_at:?} after the budget ran out)"
    );
    // A reload keeps every count.
    let seen = budgets(&b);
    let out = cli(&b, &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = budgets(&b);
    assert!(
        kept["lab"].0 >= seen["lab"].0 && kept["flood"].0 >= seen["flood"].0,
        "{seen:?} then {kept:?}"
    );
    assert!(kept["flood"].1, "still used up after the reload: {kept:?}");
    // SIGKILL while the flood goes on: a restart loses at most what was counted since the
    // last write (flush 1 s, plus the 100 ms sync) at 10 Mbit/s offered.
    std::thread::sleep(Duration::from_millis(700));
    let counted = budgets(&b)["lab"].0;
    let _ = Command::new("kill")
        .args(["-KILL", &b.pid().to_string()])
        .status();
    drop(b.stop());
    let b = Bridge::start(&lab, "budget-again", &cfg, &[]);
    let restored = budgets(&b);
    let lost = counted.saturating_sub(restored["lab"].0);
    assert!(
        restored["lab"].0 > 0 && lost <= 1_500_000,
        "{counted} bytes counted before SIGKILL, {} after the restart",
        restored["lab"].0
    );
    eprintln!(
        "budgets: capped {capped_at:?} after the budget showed used up; {bps:.0} bit/s in the \
         next second; SIGKILL lost {lost} of {counted} bytes"
    );
    // The used-up budget caps its class from the start.
    assert!(restored["flood"].1, "{restored:?}");
    assert_eq!(class(&status(&b), "wan", "flood").ceil_bps, 1_000_000);
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let _ = std::fs::remove_dir_all(&store_dir);
}
