//! `weir sniff`: one line per frame, checked against tshark (frame count, addresses, ports) on
//! committed and shared captures; its rule filter against the classifier's counts in replay;
//! its classes against replay's; a closed pipe ends it quietly; live, read-only, in a lab.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn sniff_json(args: &[&str]) -> Vec<Value> {
    let out = Command::new(WEIR)
        .arg("sniff")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weir sniff {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// One frame as tshark shows it: number, source, destination, ports (outermost IP header).
type TsharkFrame = (u64, String, String, Option<(u16, u16)>);

fn tshark(path: &Path) -> Vec<TsharkFrame> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.number",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
        ])
        .output()
        .expect("tshark (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            // A field that occurs more than once (a tunnel, ICMP's quoted header) lists each
            // occurrence; the first is the outer one.
            let first = |i: usize| f.get(i).and_then(|s| s.split(',').next()).unwrap_or("");
            let (src, dst) = if !first(1).is_empty() {
                (first(1), first(2))
            } else {
                (first(3), first(4))
            };
            let port = |a: usize, b: usize| {
                let (s, d) = (first(a).parse().ok()?, first(b).parse().ok()?);
                Some((s, d))
            };
            (
                first(0).parse().unwrap(),
                src.to_string(),
                dst.to_string(),
                port(5, 6).or_else(|| port(7, 8)),
            )
        })
        .collect()
}

fn committed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

#[test]
fn frames_addresses_and_ports_agree_with_tshark() {
    if !common::require_tool("frames_addresses_and_ports_agree_with_tshark", "tshark") {
        return;
    }
    let mut files: Vec<PathBuf> = [
        "mixed-services.pcap",
        "tls-sni.pcap",
        "ftp-ipv6.pcap",
        "webrtc-stun.pcap",
        "sll2-ping.pcap",
        "quic-v1.pcap",
    ]
    .iter()
    .map(|n| committed(n))
    .collect();
    if let Some(corpus) = common::corpus_dir("frames_addresses_and_ports_agree_with_tshark") {
        for n in [
            "zeek/http/bro.org.pcap",
            "zeek/dns-two-responses.pcap",
            "zeek/arp-who-has.pcap",
        ] {
            files.push(corpus.join(n));
        }
    }
    let mut compared = 0;
    for path in &files {
        let ours = sniff_json(&[path.to_str().unwrap()]);
        let theirs = tshark(path);
        assert_eq!(ours.len(), theirs.len(), "{}: frame count", path.display());
        for (o, (n, src, dst, ports)) in ours.iter().zip(&theirs) {
            assert_eq!(o["frame"].as_u64(), Some(*n));
            if src.is_empty() {
                continue;
            }
            let what = format!("{} frame {n}: {o}", path.display());
            assert_eq!(o["src"].as_str(), Some(src.as_str()), "{what}");
            assert_eq!(o["dst"].as_str(), Some(dst.as_str()), "{what}");
            let got = o["sport"].as_u64().zip(o["dport"].as_u64());
            if let Some((s, d)) = ports {
                assert_eq!(got, Some((u64::from(*s), u64::from(*d))), "{what}");
            }
            compared += 1;
        }
    }
    assert!(compared > 500, "only {compared} IP frames compared");
}

/// Frames of each class in `weir replay --json`, both ports together.
fn replay_classes(capture: &Path, config: &Path) -> BTreeMap<String, u64> {
    let out = Command::new(WEIR)
        .args(["replay", "--json", "-c"])
        .arg(config)
        .arg(capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by = BTreeMap::new();
    for c in r["classes"].as_array().unwrap() {
        *by.entry(format!(
            "{} {}",
            c["port"].as_str().unwrap(),
            c["name"].as_str().unwrap()
        ))
        .or_insert(0) += c["received_frames"].as_u64().unwrap();
    }
    by
}

#[test]
fn the_filter_takes_the_frames_the_classifier_gives_a_class_and_classes_agree_with_replay() {
    let capture = committed("mixed-services.pcap");
    let dir = std::env::temp_dir().join(format!("weir-sniff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for rule in ["udp port 53", "app dns or app ssh", "tcp and not port 22"] {
        let config = dir.join("one.ron");
        std::fs::write(
            &config,
            format!(
                r#"(lan_networks: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
                    ports: (wan: (rate: "1 Gbit"), lan: (rate: "1 Gbit")),
                    classes: [(name: "x", match: "{rule}", rate: "10 Mbit"),
                              (name: "rest", match: "default", rate: "10 Mbit")])"#
            ),
        )
        .unwrap();
        let by = replay_classes(&capture, &config);
        let expected = by["wan x"] + by["lan x"];
        let words: Vec<&str> = rule.split(' ').collect();
        let mut args = vec![capture.to_str().unwrap()];
        args.extend(&words);
        let got = sniff_json(&args).len() as u64;
        assert_eq!(got, expected, "rule {rule}");
        assert!(got > 0, "rule {rule} matched nothing");
    }
    // The class of each frame under home.ron, counted as replay counts them.
    let home = committed("../configs/home.ron");
    let lines = sniff_json(&[capture.to_str().unwrap(), "-c", home.to_str().unwrap()]);
    let mut by = BTreeMap::new();
    for l in &lines {
        *by.entry(format!(
            "{} {}",
            l["egress"].as_str().unwrap(),
            l["class"].as_str().unwrap()
        ))
        .or_insert(0u64) += 1;
    }
    let mut want = replay_classes(&capture, &home);
    want.retain(|_, n| *n > 0);
    assert_eq!(by, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_rule_says_where_and_a_closed_pipe_ends_quietly() {
    let out = Command::new(WEIR)
        .args(["sniff"])
        .arg(committed("mixed-services.pcap"))
        .args(["tcp", "prot", "80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column 5"), "{err}");

    // 20,000 frames: far more than a pipe holds.
    let dir = std::env::temp_dir().join(format!("weir-sniff-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.pcap");
    let frames = common::captures::read_all(&committed("mixed-services.pcap"));
    let mut w = weir::capture::CaptureWriter::create(&big).unwrap();
    for i in 0..20_000u64 {
        let (ts, f) = &frames[(i % frames.len() as u64) as usize];
        w.write(ts + i * 1_000_000_000, f, f.len() as u32).unwrap();
    }
    w.finish().unwrap();
    let mut child = Command::new(WEIR)
        .arg("sniff")
        .arg(&big)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone: weir's next write fails with a broken pipe.
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with("     1 "), "{first}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_sniffing_reads_an_interface_and_stops_after_count() {
    if !common::require_root("live_sniffing_reads_an_interface_and_stops_after_count") {
        return;
    }
    let lab = common::lab("sniff");
    // A bridge so that pings are answered; the sniffer reads src's own interface.
    let config = r#"(
    lan_networks: ["198.18.0.0/16"],
    ports: (wan: (interface: "wan0", rate: "100 Mbit"), lan: (interface: "lan0", rate: "100 Mbit")),
    classes: [(name: "all", match: "default", rate: "50 Mbit")],
)"#;
    let bridge = common::bridge::Bridge::start(&lab, "sniff", config, &[]);
    let src_if = lab.src_if.clone();
    let cmd = lab.command(
        &lab.src_ns,
        &[
            WEIR,
            "sniff",
            "-i",
            &src_if,
            "-n",
            "3",
            "--json",
            "icmp",
            "and",
            "src",
            "host",
            "198.18.0.1",
        ],
    );
    let sniffer = std::thread::spawn(move || {
        weir::tools::lab::run_bounded(cmd, std::time::Duration::from_secs(15))
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    let p = common::ping(
        &lab,
        &lab.src_ns,
        "198.18.0.2".parse().unwrap(),
        5,
        std::time::Duration::from_millis(100),
    );
    assert_eq!(p.lost(), 0, "{p:?}");
    let out = sniffer.join().unwrap().expect("weir sniff");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines {
        assert_eq!(l["proto"], "icmp", "{l}");
        assert_eq!(l["src"], "198.18.0.1", "{l}");
    }
    let stopped = bridge.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}
