//! `weir run --workers 2` in a lab (weir-src -- lan0 [weir] wan0 -- weir-dst): six UDP flows
//! at three times a class's rate. The class's rate holds for the sum over the two workers
//! (within 1%), each flow arrives in order, the flows share the class as on one worker (the
//! kernel spreads them over the workers by a hash seeded at boot, so the split changes from
//! machine to machine: 3+3, 4+2 or 5+1 all have to come out fair), and every frame is
//! accounted for. And the express lane: frames of the best priority received on a socket of
//! their own, every frame of both sockets across, in order, counted once.
//!
//! Needs root (network namespaces); skips loudly otherwise, fails under CI=true. The lab is
//! removed with every process in it when the test ends, also on failure. Every loop is bounded.

mod common;

use common::bridge::Bridge;
use common::raw::send_one;
use common::{lab, require_root};
use std::time::{Duration, Instant};
use weir::io::af_packet::AfPacket;
use weir::tools::lab::Lab;

/// The rate test times what crosses a lab on a 2-core machine: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const FLOWS: u8 = 6;
const PAYLOAD: usize = 1000;
/// Bytes the class's bucket is charged per frame: the frame and weir's default overhead.
const WIRE: u64 = (14 + 20 + 8 + PAYLOAD as u64) + 24;
const RATE_BPS: u64 = 40_000_000;
/// What the sender offers: three times the class.
const OFFERED_BPS: u64 = 3 * RATE_BPS;
const SEND_FOR: Duration = Duration::from_secs(4);
const UDP_PORT: u16 = 9;

const CONFIG: &str = r#"(
    ports: (
        wan: (interface: "wan0", rate: "1 Gbit", classes: [
            (name: "capped", match: "default", rate: "40 Mbit", ceil: "40 Mbit"),
        ]),
        lan: (interface: "lan0", rate: "1 Gbit", classes: [(name: "all", match: "default", rate: "1 Gbit")]),
    ),
)"#;

fn frame(flow: u8, seq: u32) -> Vec<u8> {
    let mut payload = vec![0u8; PAYLOAD];
    payload[0] = flow;
    payload[1..5].copy_from_slice(&seq.to_be_bytes());
    let mut f = Vec::with_capacity(1100);
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0x77, 1], [2, 0, 0, 0, 0x77, 2])
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .udp(7000 + u16::from(flow), UDP_PORT)
        .write(&mut f, &payload)
        .unwrap();
    f
}

/// One frame of ours as dst0 saw it.
struct Arrival {
    at: Instant,
    flow: u8,
    seq: u32,
}

/// Run `send` on src0 while dst0 records our frames (UDP to port 9 from the test's MAC);
/// recording ends `drain` after `send` returns (the queues empty meanwhile). Returns what
/// `send` returned and the arrivals.
fn cross<R: Send + 'static>(
    lab: &Lab,
    drain: Duration,
    send: impl FnOnce(&mut AfPacket) -> R + Send + 'static,
) -> (R, Vec<Arrival>) {
    let ours = |f: &[u8]| f.len() >= 47 && f[6..12] == [2, 0, 0, 0, 0x77, 1] && f[36..38] == [0, 9];
    let (sent, got) = common::raw::cross(lab, drain, ours, send);
    let arrivals = got
        .into_iter()
        .map(|a| Arrival {
            at: a.at,
            flow: a.data[42],
            seq: u32::from_be_bytes([a.data[43], a.data[44], a.data[45], a.data[46]]),
        })
        .collect();
    (sent, arrivals)
}

/// Send the flows from src0 in turns at `OFFERED_BPS` for `SEND_FOR`, and record what dst0
/// receives until 2 s after the sender stops (the class's queue drains at its rate meanwhile).
/// Returns (frames sent, arrivals).
fn exchange(lab: &Lab) -> (u64, Vec<Arrival>) {
    cross(lab, Duration::from_secs(2), |tx| {
        let frame_bits = (WIRE * 8) as f64;
        let start = Instant::now();
        let mut sent = 0u64;
        let mut seq = [0u32; FLOWS as usize];
        while start.elapsed() < SEND_FOR {
            // Catch up with the offered rate every millisecond.
            let due = (start.elapsed().as_secs_f64() * OFFERED_BPS as f64 / frame_bits) as u64;
            while sent < due {
                let flow = (sent % u64::from(FLOWS)) as u8;
                send_one(tx, &frame(flow, seq[usize::from(flow)]));
                seq[usize::from(flow)] += 1;
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

fn forwarded_on(stdout: &str, port: &str) -> (u64, u64, u64) {
    // "port wan: received 196130 = forwarded 196129 + dropped 1"
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("port {port}: received")))
        .unwrap_or_else(|| panic!("no counters for port {port} in:\n{stdout}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1], n[2])
}

#[test]
fn two_workers_hold_a_class_rate_keep_flows_in_order_and_share_fairly() {
    if !require_root("two_workers_hold_a_class_rate_keep_flows_in_order_and_share_fairly") {
        return;
    }
    let _serial = serial();
    let lab = lab("workers");
    let b = Bridge::start(&lab, "workers", CONFIG, &["--workers", "2"]);
    let (sent, got) = exchange(&lab);
    let out = b.stop();
    assert_eq!(out.code, Some(0), "weir failed:\n{}", out.stderr);
    assert!(!got.is_empty(), "nothing crossed");

    // Rate: over the time the class was backlogged (from the first arrival until the queue ran
    // dry after the sender stopped), leaving out the first half second (the bucket's burst).
    let (first, last) = (got[0].at, got[got.len() - 1].at);
    let from = first + Duration::from_millis(500);
    let in_window: Vec<&Arrival> = got.iter().filter(|a| a.at > from).collect();
    let span = (last - from).as_secs_f64();
    let bps = (in_window.len() as u64 * WIRE * 8) as f64 / span;
    let error = bps / RATE_BPS as f64 - 1.0;
    eprintln!(
        "sent {sent} frames at {:.0} Mbit/s; {} arrived over {:.2} s; in the window {:.3} Mbit/s \
         ({:+.2}% of the class's rate)",
        OFFERED_BPS as f64 / 1e6,
        got.len(),
        (last - first).as_secs_f64(),
        bps / 1e6,
        error * 100.0
    );
    assert!(
        error.abs() <= 0.01,
        "the class sent {:.3} Mbit/s over both workers, not 40 (within 1%)",
        bps / 1e6
    );

    // Order: each flow's sequence numbers only go up (frames may be dropped, never reordered).
    for flow in 0..FLOWS {
        let seqs: Vec<u32> = got
            .iter()
            .filter(|a| a.flow == flow)
            .map(|a| a.seq)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "flow {flow} arrived out of order"
        );
    }

    // Fairness between the flows, whichever worker each is on (Jain's index over the window).
    let per_flow: Vec<f64> = (0..FLOWS)
        .map(|f| in_window.iter().filter(|a| a.flow == f).count() as f64)
        .collect();
    let sum: f64 = per_flow.iter().sum();
    let jain = sum * sum / (f64::from(FLOWS) * per_flow.iter().map(|x| x * x).sum::<f64>());
    eprintln!("frames per flow in the window: {per_flow:?}; Jain's index {jain:.4}");
    assert!(
        jain >= 0.98,
        "flows shared unfairly: {per_flow:?} (Jain {jain:.4})"
    );

    // Conservation: per port received = forwarded + dropped, nothing left queued; what dst0
    // got of ours was forwarded on wan.
    let (received, forwarded, dropped) = forwarded_on(&out.stdout, "wan");
    assert_eq!(received, forwarded + dropped, "{}", out.stdout);
    assert!(
        received >= sent * 99 / 100,
        "weir received {received} of {sent}: {}",
        out.stdout
    );
    assert!(
        forwarded >= got.len() as u64 && forwarded <= got.len() as u64 + 20,
        "forwarded {forwarded} on wan, dst0 got {} of ours",
        got.len()
    );
}

/// `--cpus`: each forwarding thread on its CPU of the list, in order; weir's other threads
/// where the process may run.
#[test]
fn cpus_pin_the_forwarding_threads_and_only_them() {
    if !require_root("cpus_pin_the_forwarding_threads_and_only_them") {
        return;
    }
    let _serial = serial();
    let allowed = weir::io::sys::allowed_cpus().unwrap();
    // The process's CPUs backwards: worker 0 on the last, worker 1 on the one before (on a
    // machine of one CPU, both on it).
    let order: Vec<usize> = allowed.iter().rev().copied().collect();
    let list: Vec<String> = order.iter().map(|c| c.to_string()).collect();
    let lab = lab("cpus");
    let b = Bridge::start(
        &lab,
        "cpus",
        CONFIG,
        &["--workers", "2", "--cpus", &list.join(",")],
    );
    let cpus_of = |task: &std::path::Path| {
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap()
            .to_string();
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    let mut seen = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{}/task", b.pid()))
        .unwrap()
        .flatten()
    {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap();
        seen.push((name.trim().to_string(), cpus_of(&t.path())));
    }
    let out = b.stop();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for w in 0..2 {
        let want = order[w % order.len()].to_string();
        let got = seen.iter().find(|(n, _)| *n == format!("weir-fwd-{w}"));
        assert_eq!(
            got.map(|(_, c)| c.as_str()),
            Some(want.as_str()),
            "{seen:?}"
        );
    }
    // The process's own list as the kernel writes it, e.g. "0-1".
    let whole = cpus_of(std::path::Path::new("/proc/self"));
    let control = seen.iter().find(|(n, _)| n == "weir-control");
    assert_eq!(
        control.map(|(_, c)| c.as_str()),
        Some(whole.as_str()),
        "{seen:?}"
    );
}

/// `weir run` with a priority class for DSCP EF on wan: frames arriving on lan are received
/// on two sockets (the express lane and the rest), and every frame of both crosses, each class
/// in order, counted once.
#[test]
fn the_express_lane_takes_its_frames_and_loses_none() {
    if !require_root("the_express_lane_takes_its_frames_and_loses_none") {
        return;
    }
    let _serial = serial();
    const EXPRESS: &str = r#"(
        ports: (
            wan: (interface: "wan0", rate: "1 Gbit", classes: [
                (name: "voice", match: "dscp ef", priority: 0, rate: "100 Mbit", ceil: "1 Gbit"),
                (name: "bulk", match: "default", priority: 4, rate: "900 Mbit", ceil: "1 Gbit"),
            ]),
            lan: (interface: "lan0", rate: "1 Gbit", classes: [(name: "all", match: "default", rate: "1 Gbit")]),
        ),
    )"#;
    // One worker, then two: each worker's express sockets in a fanout group of their own
    // beside the group of its other receivers.
    for workers in [1usize, 2] {
        let lab = lab("express");
        let n = workers.to_string();
        let b = Bridge::start(&lab, "express", EXPRESS, &["--workers", &n]);
        assert!(
            b.stderr()
                .contains("express lane on port lan: frames of class voice"),
            "{}",
            b.stderr()
        );
        // The dut's packet sockets: per worker, lan0 has its bulk and express receivers and a
        // sender; wan0 a receiver and a sender (frames leaving on lan have one priority: no
        // lane for wan0).
        let sockets = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.dut_ns, "cat", "/proc/net/packet"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&sockets.stdout).to_string();
        assert_eq!(listing.lines().skip(1).count(), 5 * workers, "{listing}");
        // Every third frame EF: 1,000 of 3,000, paced well below what weir can take.
        let frames: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| {
                let mut f = frame((i % 3) as u8, i);
                if i % 3 == 0 {
                    f[15] = 0xb8;
                }
                f
            })
            .collect();
        let got = send_and_receive(&lab, &frames);
        let out = b.stop();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        for flow in 0..3u8 {
            let seqs: Vec<u32> = got
                .iter()
                .filter(|a| a.flow == flow)
                .map(|a| a.seq)
                .collect();
            let want: Vec<u32> = (0..3000).filter(|i| i % 3 == u32::from(flow)).collect();
            assert_eq!(
                seqs, want,
                "{workers} workers, flow {flow}: every frame, in order"
            );
        }
        let voice = out
            .stdout
            .lines()
            .find(|l| l.starts_with("wan  voice"))
            .unwrap_or_else(|| panic!("no voice row:\n{}", out.stdout));
        assert!(
            voice.contains(" 1000 "),
            "{workers} workers: the voice class counted its 1,000 frames: {voice}"
        );
        let (received, forwarded, dropped) = forwarded_on(&out.stdout, "wan");
        assert_eq!((received, dropped), (forwarded, 0), "{}", out.stdout);
    }
}

/// Send `frames` from src0, 200 us apart, and collect ours at dst0 until 1 s after the last.
fn send_and_receive(lab: &Lab, frames: &[Vec<u8>]) -> Vec<Arrival> {
    let frames = frames.to_vec();
    cross(lab, Duration::from_secs(1), move |tx| {
        for f in &frames {
            send_one(tx, f);
            std::thread::sleep(Duration::from_micros(200));
        }
    })
    .1
}
