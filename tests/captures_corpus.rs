//! Every file of a real-world capture corpus through `CaptureReader` and `wire::parse`.
//!
//! The corpus is `WEIR_CAPTURE_CORPUS`, else ../shared/captures beside the repository; it is
//! walked recursively. Without it the test is skipped, loudly, and fails under `CI=true`.
//! The test fails on:
//! - any panic, in opening, reading, converting or parsing (collected per file, all reported);
//! - fewer than `MIN_ETHERNET_OK` of the pcap/pcapng files with an Ethernet link type read to
//!   the end (the rest are damaged on purpose; the fraction measured on the shared corpus is
//!   printed).
//!
//! `WEIR_CAPTURE_CORPUS_VERBOSE=1` also prints one line per file (path, outcome, frames).
//!
//! Files whose magic is gzip, pcap or pcapng are expected to give the matching outcome; files
//! with any other content must come out as `NotACapture` (or `Open` for unreadable ones).

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use weir::capture::{CaptureError, CaptureReader, Conversion};

/// At most this many frames are read per file, to keep the debug-build run short.
const MAX_FRAMES_PER_FILE: u64 = 100_000;

/// Minimum share of Ethernet pcap/pcapng files that must read to the end. Measured on the shared
/// corpus (/work/shared/captures, 1681 files): 1214 of 1216 (99.8%); the two others are zeek
/// pcapngs whose second interface has a different snaplen, which libpcap refuses.
const MIN_ETHERNET_OK: f64 = 0.98;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    UnsupportedLinkType,
    Damaged,
    MixedInterfaces,
    BadHeader,
    Compressed,
    NotACapture,
    Open,
    Write,
}

fn outcome_of(e: &CaptureError) -> Outcome {
    match e {
        CaptureError::UnsupportedLinkType { .. } => Outcome::UnsupportedLinkType,
        CaptureError::Damaged { .. } => Outcome::Damaged,
        CaptureError::MixedInterfaces { .. } => Outcome::MixedInterfaces,
        CaptureError::BadHeader { .. } => Outcome::BadHeader,
        CaptureError::Compressed { .. } => Outcome::Compressed,
        CaptureError::NotACapture { .. } => Outcome::NotACapture,
        CaptureError::Open { .. } => Outcome::Open,
        CaptureError::Write { .. } | CaptureError::TimestampOutOfRange { .. } => Outcome::Write,
    }
}

struct FileResult {
    outcome: Outcome,
    frames: u64,
    /// `Some(conversion)` if the file opened.
    conversion: Option<Conversion>,
    link_name: Option<String>,
    message: Option<String>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

fn magic(path: &Path) -> &'static str {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(4).read_to_end(&mut head);
    }
    match head.as_slice() {
        [0x1f, 0x8b, ..] => "gzip",
        [0x0a, 0x0d, 0x0d, 0x0a] => "pcapng",
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xcd, 0x34]
        | [0x34, 0xcd, 0xb2, 0xa1] => "pcap",
        _ => "other",
    }
}

fn read_file(path: &Path) -> FileResult {
    let mut r = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            return FileResult {
                outcome: outcome_of(&e),
                frames: 0,
                conversion: None,
                link_name: match &e {
                    CaptureError::UnsupportedLinkType { name, .. } => Some(name.clone()),
                    _ => None,
                },
                message: Some(e.to_string()),
            }
        }
    };
    let lt = r.link_type();
    let mut outcome = Outcome::Ok;
    let mut message = None;
    let mut last = 0;
    loop {
        if r.frames_read() >= MAX_FRAMES_PER_FILE {
            break;
        }
        match r.next_frame() {
            Ok(Some(f)) => {
                assert_eq!(f.number, last + 1, "frame numbers are consecutive");
                last = f.number;
                assert!(f.orig_len as usize >= f.data.len());
                let v = weir::wire::parse(f.data);
                assert_eq!(v.len as usize, f.data.len());
            }
            Ok(None) => break,
            Err(e) => {
                outcome = outcome_of(&e);
                message = Some(e.to_string());
                // Fused after an error.
                assert!(matches!(r.next_frame(), Ok(None)));
                break;
            }
        }
    }
    assert!(r.position() <= r.file_len());
    FileResult {
        outcome,
        frames: r.frames_read(),
        conversion: lt.conversion,
        link_name: Some(lt.name),
        message,
    }
}

#[test]
fn corpus_reads_without_panics() {
    let Some(root) = common::corpus_dir("corpus_reads_without_panics") else {
        return;
    };
    let started = std::time::Instant::now();
    // WEIR_CAPTURE_CORPUS_VERBOSE=1 prints one line per file: path, outcome, frames.
    let verbose = std::env::var_os("WEIR_CAPTURE_CORPUS_VERBOSE").is_some();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    // Silence the default hook: panics are collected and reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let mut panics = Vec::new();
    let mut mismatches = Vec::new();
    let mut by_outcome: BTreeMap<Outcome, (u64, u64)> = BTreeMap::new();
    let mut by_link: BTreeMap<String, u64> = BTreeMap::new();
    let mut unsupported: BTreeMap<String, u64> = BTreeMap::new();
    let mut ethernet = (0u64, 0u64); // (read to end, total) among pcap/pcapng Ethernet files
    let mut converted = (0u64, 0u64);
    let mut total_frames = 0u64;
    let mut examples: BTreeMap<Outcome, String> = BTreeMap::new();

    for path in &files {
        let m = magic(path);
        let res = match catch_unwind(AssertUnwindSafe(|| read_file(path))) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panics.push(format!("{}: {msg}", path.display()));
                continue;
            }
        };
        if verbose {
            eprintln!("{}\t{:?}\t{}", path.display(), res.outcome, res.frames);
        }
        let e = by_outcome.entry(res.outcome).or_default();
        e.0 += 1;
        e.1 += res.frames;
        total_frames += res.frames;
        if let Some(msg) = &res.message {
            examples.entry(res.outcome).or_insert_with(|| msg.clone());
        }
        match res.conversion {
            Some(c) => *by_link.entry(format!("{c:?}")).or_default() += 1,
            None if res.outcome == Outcome::UnsupportedLinkType => {
                *unsupported
                    .entry(res.link_name.clone().unwrap_or_default())
                    .or_default() += 1
            }
            None => {}
        }
        if m != "other" {
            let pair = if res.conversion == Some(Conversion::Ethernet) {
                Some(&mut ethernet)
            } else if res.conversion.is_some() {
                Some(&mut converted)
            } else {
                None
            };
            if let Some(pair) = pair {
                pair.1 += 1;
                if res.outcome == Outcome::Ok {
                    pair.0 += 1;
                }
            }
        }
        // The magic number decides which outcomes are possible.
        let consistent = match m {
            "gzip" => res.outcome == Outcome::Compressed,
            "pcap" | "pcapng" => !matches!(res.outcome, Outcome::Compressed | Outcome::NotACapture),
            _ => matches!(res.outcome, Outcome::NotACapture | Outcome::Open),
        };
        if !consistent {
            mismatches.push(format!(
                "{} (magic {m}): {:?} {}",
                path.display(),
                res.outcome,
                res.message.unwrap_or_default()
            ));
        }
    }
    std::panic::set_hook(hook);

    eprintln!("\ncapture corpus {}: {} files", root.display(), files.len());
    for (o, (n, frames)) in &by_outcome {
        eprintln!("  {o:?}: {n} files, {frames} frames");
    }
    eprintln!("  total frames read: {total_frames}");
    eprintln!("  opened, by conversion: {by_link:?}");
    eprintln!("  unsupported link types: {unsupported:?}");
    let share = ethernet.0 as f64 / ethernet.1.max(1) as f64;
    eprintln!(
        "  Ethernet pcap/pcapng read to the end: {} of {} ({:.1}%); converted link types: {} of {}",
        ethernet.0,
        ethernet.1,
        share * 100.0,
        converted.0,
        converted.1
    );
    for (o, msg) in &examples {
        eprintln!("  e.g. {o:?}: {msg}");
    }
    eprintln!("  took {:.1?}", started.elapsed());

    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    assert!(
        mismatches.is_empty(),
        "outcome does not match the magic number:\n{}",
        mismatches.join("\n")
    );
    assert!(ethernet.1 > 0, "no Ethernet captures in the corpus");
    assert!(
        share >= MIN_ETHERNET_OK,
        "only {:.1}% of Ethernet captures read to the end, expected at least {:.0}%",
        share * 100.0,
        MIN_ETHERNET_OK * 100.0
    );
}

/// What one committed capture must give.
struct Expect {
    file: &'static str,
    link: i32,
    frames: u64,
    /// `Some(frame)`: reading stops with `Damaged` at that frame.
    damaged_at: Option<u64>,
    /// Checked on every frame's parsed view; the count of frames it holds for must be `matching`.
    check: fn(&weir::wire::FrameView) -> bool,
    matching: u64,
}

/// The small captures in `captures/` (see captures/README.md): always run, exact counts.
#[test]
fn committed_captures() {
    use weir::wire::{FrameView, L3};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let expects = [
        Expect {
            file: "mixed-services.pcap",
            link: 1,
            frames: 263,
            damaged_at: None,
            check: |v: &FrameView| v.is_ip() && v.has_ports,
            matching: 259, // all but 4 ARP
        },
        Expect {
            file: "http-qinq.pcap",
            link: 1,
            frames: 14,
            damaged_at: None,
            check: |v: &FrameView| v.vlan_count == 2 && v.l3 == L3::Ipv4 && v.has_ports,
            matching: 14,
        },
        Expect {
            file: "ftp-ipv6.pcap",
            link: 1,
            frames: 136,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv6 && v.ip_proto == 6,
            matching: 136,
        },
        Expect {
            file: "ipv4-fragments.pcap",
            link: 1,
            frames: 3,
            damaged_at: None,
            check: |v: &FrameView| v.is_fragment && !v.is_first_fragment() && !v.has_ports,
            matching: 1,
        },
        Expect {
            file: "sll-irc-starttls.pcap",
            link: 113,
            frames: 20,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && v.ip_proto == 6 && !v.truncated,
            matching: 20,
        },
        Expect {
            file: "sll2-ping.pcap",
            link: 276,
            frames: 6,
            damaged_at: None,
            check: |v: &FrameView| v.is_ip() && v.has_icmp,
            matching: 4, // ICMP and ICMPv6 echo; the other 2 are ARP / RARP
        },
        Expect {
            file: "raw-ip-tls.pcap",
            link: 12, // LINKTYPE_RAW (101) in the file, DLT_RAW from libpcap
            frames: 5,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && (v.src_port == 443 || v.dst_port == 443),
            matching: 5,
        },
        Expect {
            file: "tls-sni.pcap",
            link: 1,
            frames: 24,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && (v.src_port == 443 || v.dst_port == 443),
            matching: 24,
        },
        Expect {
            file: "http-split-request.pcap",
            link: 1,
            frames: 20,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && (v.src_port == 80 || v.dst_port == 80),
            matching: 20,
        },
        Expect {
            file: "quic-v1.pcap",
            link: 1,
            frames: 19,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && v.ip_proto == 17,
            matching: 19,
        },
        Expect {
            file: "quic-v2.pcap",
            link: 1,
            frames: 12,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && v.ip_proto == 17,
            matching: 12,
        },
        Expect {
            file: "webrtc-stun.pcap",
            link: 1,
            frames: 14,
            damaged_at: None,
            check: |v: &FrameView| v.ip_proto == 17 && v.src_port > 40000 && v.dst_port > 40000,
            matching: 14,
        },
        Expect {
            file: "radius-localhost.pcap",
            link: 0,
            frames: 19,
            damaged_at: None,
            check: |v: &FrameView| v.ip_proto == 17 && (v.src_port == 1812 || v.dst_port == 1812),
            matching: 19,
        },
        Expect {
            file: "dns-high-port.pcap",
            link: 1,
            frames: 1,
            damaged_at: None,
            check: |v: &FrameView| v.ip_proto == 17 && v.src_port == 63374 && v.dst_port == 53,
            matching: 1,
        },
        Expect {
            file: "rtp-and-high-ports.pcap",
            link: 1,
            frames: 64,
            damaged_at: None,
            check: |v: &FrameView| v.ip_proto == 17 && v.src_port >= 1024 && v.dst_port >= 1024,
            matching: 63, // all but the DNS query to port 53
        },
        Expect {
            file: "pppoe-qinq-tls.pcap",
            link: 1,
            frames: 86,
            damaged_at: None,
            check: |v: &FrameView| v.vlan_count == 2 && v.l3 == L3::Ipv4 && v.has_ports,
            matching: 86,
        },
        Expect {
            file: "pppoe-ipv6.pcap",
            link: 1,
            frames: 65,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv6,
            matching: 25, // ICMPv6 and DHCPv6; the rest is discovery and PPP control
        },
        Expect {
            file: "ppp-quic.pcap",
            link: 9,
            frames: 13,
            damaged_at: None,
            check: |v: &FrameView| v.is_ip() && !v.truncated,
            matching: 13,
        },
        Expect {
            file: "chdlc-icmp.pcap",
            link: 104,
            frames: 38,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && v.has_icmp,
            matching: 10, // the rest is SLARP and CDP
        },
        Expect {
            file: "tls-split-hello.pcap",
            link: 1,
            frames: 97,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && (v.src_port == 443 || v.dst_port == 443),
            matching: 97,
        },
        Expect {
            file: "quic-split-hello.pcap",
            link: 1,
            frames: 3,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv6 && v.dst_port == 443,
            matching: 3,
        },
        Expect {
            file: "quic-split-hello-rand.pcap",
            link: 1,
            frames: 19,
            damaged_at: None,
            check: |v: &FrameView| v.ip_proto == 17 && (v.src_port == 443 || v.dst_port == 443),
            matching: 19,
        },
        Expect {
            file: "quic-dcid-change.pcap",
            link: 1,
            frames: 36,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv6 && (v.src_port == 443 || v.dst_port == 443),
            matching: 36,
        },
        Expect {
            file: "dns-answer-then-flow.pcap",
            link: 1,
            frames: 65,
            damaged_at: None,
            check: |v: &FrameView| v.ip_proto == 6 && v.dst_ip == 0xd050_9803,
            matching: 6, // the SYNs to 208.80.152.3:80
        },
        Expect {
            file: "evening.pcap",
            link: 1,
            frames: 17_656,
            damaged_at: None,
            check: |v: &FrameView| v.l3 == L3::Ipv4 && v.has_ports,
            matching: 17_656,
        },
        Expect {
            file: "truncated.pcap",
            link: 1,
            frames: 1,
            damaged_at: Some(2),
            check: |v: &FrameView| v.l3 == L3::Ipv4,
            matching: 1,
        },
    ];
    for e in &expects {
        let path = dir.join(e.file);
        let mut r = CaptureReader::open(&path).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(r.link_type().value, e.link, "{}", e.file);
        let (mut matching, mut last_ts) = (0, 0);
        let damaged = loop {
            match r.next_frame() {
                Ok(Some(f)) => {
                    assert!(
                        f.ts_ns >= last_ts,
                        "{} frame {}: time goes back",
                        e.file,
                        f.number
                    );
                    last_ts = f.ts_ns;
                    if (e.check)(&weir::wire::parse(f.data)) {
                        matching += 1;
                    }
                }
                Ok(None) => break None,
                Err(CaptureError::Damaged { frame, .. }) => break Some(frame),
                Err(err) => panic!("{}: {err}", e.file),
            }
        };
        assert_eq!(r.frames_read(), e.frames, "{}", e.file);
        assert_eq!(damaged, e.damaged_at, "{}", e.file);
        assert_eq!(matching, e.matching, "{}", e.file);
    }
}
