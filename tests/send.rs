//! `weir send` on a real veth: frames sent from the lab's src namespace arrive byte-identical,
//! in order, at the dut's lan0 (read with a raw AF_PACKET socket opened in the dut namespace),
//! at the rate asked.
//!
//! Needs root (network namespaces); skips loudly otherwise, fails under `CI=true`. Every wait
//! is bounded in time.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use weir::capture::CaptureReader;
use weir::io::af_packet::{AfPacket, AfPacketOptions};
use weir::io::sys::netdev::enter_network_namespace;
use weir::io::{Device, RxMeta, BATCH, MAX_FRAME};
use weir::tools::lab::Lab;
use weir::tools::send::{send_on_interface, Pace, SendReport};

const MIXED_FRAMES: usize = 263;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

fn frames_of(name: &str) -> Vec<Vec<u8>> {
    let mut r = CaptureReader::open(&capture(name)).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        v.push(f.data.to_vec());
    }
    v
}

fn netns_path(ns: &str) -> PathBuf {
    Path::new("/var/run/netns").join(ns)
}

fn mac_of(lab: &Lab, ns: &str, ifname: &str) -> [u8; 6] {
    let path = format!("/sys/class/net/{ifname}/address");
    let out = lab.exec_ok(ns, &["cat", &path]).expect("read MAC");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut mac = [0u8; 6];
    for (i, part) in text.trim().split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).expect("MAC");
    }
    mac
}

/// Receives on the dut's lan0 until `want` frames came, or `deadline` passes, or the sender
/// is done and nothing came for 300 ms. Frames the src host itself sent (its MAC as source:
/// IPv6 neighbour discovery and the like) are left out.
fn spawn_receiver(
    lab: &Lab,
    want: usize,
    deadline: Duration,
    sender_done: Arc<AtomicBool>,
) -> (mpsc::Receiver<()>, thread::JoinHandle<Vec<Vec<u8>>>) {
    let (ns, ifname) = (netns_path(&lab.dut_ns), lab.dut_lan_if.clone());
    let host_mac = mac_of(lab, &lab.src_ns, &lab.src_if);
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = thread::spawn(move || {
        enter_network_namespace(&ns).expect("enter dut namespace");
        let mut dev = AfPacket::open(
            &ifname,
            &AfPacketOptions {
                promiscuous: true,
                vnet_hdr: false,
                send_only: false,
                ..AfPacketOptions::default()
            },
        )
        .expect("open lan0");
        ready_tx.send(()).unwrap();
        let mut bufs: Vec<Box<[u8]>> = (0..BATCH)
            .map(|_| vec![0u8; MAX_FRAME].into_boxed_slice())
            .collect();
        let mut meta = [RxMeta::default(); BATCH];
        let mut got = Vec::new();
        let start = Instant::now();
        let mut last_rx = Instant::now();
        while got.len() < want && start.elapsed() < deadline {
            if sender_done.load(Ordering::Relaxed) && last_rx.elapsed() > Duration::from_millis(300)
            {
                break;
            }
            if !dev.wait_readable(Duration::from_millis(20)).unwrap() {
                continue;
            }
            let n = dev.recv_batch(&mut bufs, &mut meta).unwrap();
            for i in 0..n {
                assert!(!meta[i].truncated);
                let f = &bufs[i][..meta[i].len];
                if f.len() >= 12 && f[6..12] == host_mac {
                    continue;
                }
                got.push(f.to_vec());
            }
            if n > 0 {
                last_rx = Instant::now();
            }
        }
        got
    });
    (ready_rx, h)
}

/// Sends `name` from src0 in the src namespace; returns the report and what lan0 received.
fn send_and_receive(lab: &Lab, name: &str, pace: Pace, loops: u64) -> (SendReport, Vec<Vec<u8>>) {
    let want = frames_of(name).len() * loops as usize;
    let done = Arc::new(AtomicBool::new(false));
    let (ready, rx) = spawn_receiver(lab, want, Duration::from_secs(20), Arc::clone(&done));
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver ready");
    let (ns, ifname, path) = (netns_path(&lab.src_ns), lab.src_if.clone(), capture(name));
    let report = thread::spawn(move || {
        enter_network_namespace(&ns).expect("enter src namespace");
        let stop = AtomicBool::new(false);
        send_on_interface(&path, &ifname, pace, loops, &stop, &Default::default())
    })
    .join()
    .unwrap()
    .unwrap_or_else(|e| panic!("send: {e}"));
    done.store(true, Ordering::Relaxed);
    let got = rx.join().unwrap();
    eprintln!(
        "{name} at {pace}, {loops} loop(s): {report}; received {}",
        got.len()
    );
    (report, got)
}

fn assert_same(got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(got.len(), want.len(), "frames received");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "frame {} differs", i + 1);
    }
}

#[test]
fn pps_1000_delivers_every_frame_byte_identical_on_time() {
    if !common::require_root("pps_1000_delivers_every_frame_byte_identical_on_time") {
        return;
    }
    let lab = common::lab("send-pps");
    let want = frames_of("mixed-services.pcap");
    assert_eq!(want.len(), MIXED_FRAMES);
    let (report, got) = send_and_receive(&lab, "mixed-services.pcap", Pace::Pps(1000), 1);
    assert_same(&got, &want);
    assert_eq!(report.frames_sent, MIXED_FRAMES as u64);
    assert_eq!(report.frames_refused, 0);
    assert!(
        (0.2..1.0).contains(&report.seconds),
        "263 frames at 1000 pps took {} s",
        report.seconds
    );
}

#[test]
fn mbps_10_is_achieved_within_ten_percent() {
    if !common::require_root("mbps_10_is_achieved_within_ten_percent") {
        return;
    }
    let lab = common::lab("send-mbps");
    // Five loops: about 0.2 s at 10 Mbit/s.
    let (report, got) = send_and_receive(&lab, "mixed-services.pcap", Pace::Mbps(10_000_000), 5);
    assert_eq!(got.len(), 5 * MIXED_FRAMES);
    assert!(
        (9.0..11.0).contains(&report.achieved_mbps),
        "asked 10 Mbit/s, got {report}"
    );
}

#[test]
fn topspeed_completes_and_loop_3_sends_789() {
    if !common::require_root("topspeed_completes_and_loop_3_sends_789") {
        return;
    }
    let lab = common::lab("send-top");
    let want = frames_of("mixed-services.pcap");
    let (report, got) = send_and_receive(&lab, "mixed-services.pcap", Pace::TopSpeed, 3);
    assert_eq!(report.frames_sent, 3 * MIXED_FRAMES as u64);
    assert_eq!(report.loops_done, 3);
    assert!(report.seconds < 5.0, "{report}");
    // At top speed the receiving socket can fall behind and the kernel drops (veth has no
    // backpressure): what arrives must be an in-order subsequence of what was sent, each frame
    // intact and none twice; how much arrives depends on the machine's load.
    let all: Vec<Vec<u8>> = want
        .iter()
        .cycle()
        .take(3 * MIXED_FRAMES)
        .cloned()
        .collect();
    assert!(
        !got.is_empty() && got.len() <= all.len(),
        "received {}",
        got.len()
    );
    let mut rest = all.iter();
    for (i, g) in got.iter().enumerate() {
        assert!(
            rest.any(|w| w == g),
            "received frame {} is not the next sent one",
            i + 1
        );
    }
}

#[test]
fn a_missing_interface_is_a_clear_error() {
    if !common::require_root("a_missing_interface_is_a_clear_error") {
        return;
    }
    let stop = AtomicBool::new(false);
    let err = send_on_interface(
        &capture("mixed-services.pcap"),
        "weir-nosuch0",
        Pace::TopSpeed,
        1,
        &stop,
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no interface `weir-nosuch0`"),
        "{err}"
    );
    assert_eq!(err.report.frames_sent, 0);
}
