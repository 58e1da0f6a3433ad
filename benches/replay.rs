//! Whole replay throughput on a mixed capture, in memory.
//!
//! `cargo bench --bench replay`: captures/mixed-services.pcap (263 frames: SSH, HTTP, DNS, FTP,
//! mDNS, ARP, NTP) read once and repeated in memory to 100,000 frames, each repetition shifted in
//! time after the previous one; every iteration runs `Replay::new` + `push` for every frame +
//! `finish` with configs/home.ron and no output capture, and with home.ron plus two budgets
//! that count every frame (the cost of budgets). Throughput is reported in frames/s.
//!
//! Also, outside criterion: `WEIR_WRITE_BIG_CAPTURE=/tmp/big.pcap cargo bench --bench replay`
//! writes the same repetition to a pcap file (`WEIR_BIG_FRAMES`, default 2,000,000 frames) and
//! exits, for comparing `weir replay` with `tcpdump -r` (see docs/benchmarks.md).

use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;
use weir::capture::{CaptureReader, CaptureWriter};
use weir::replay::Replay;

const MIXED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/mixed-services.pcap");
const HOME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/home.ron");

struct Frame {
    ts: u64,
    data: Vec<u8>,
    orig_len: u32,
}

fn read_mixed() -> Vec<Frame> {
    let mut r = CaptureReader::open(Path::new(MIXED)).expect("mixed-services.pcap");
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().expect("readable") {
        frames.push(Frame {
            ts: f.ts_ns,
            data: f.data.to_vec(),
            orig_len: f.orig_len,
        });
    }
    frames
}

/// Frame `n` of the endless repetition: (timestamp, frame). Each repetition starts 1 ms after
/// the previous one ended.
fn repeated(base: &[Frame]) -> impl Iterator<Item = (u64, &Frame)> + '_ {
    let first = base.first().expect("frames").ts;
    let span = base.iter().map(|f| f.ts).max().unwrap() - first + 1_000_000;
    (0u64..).flat_map(move |rep| base.iter().map(move |f| (f.ts + rep * span, f)))
}

fn write_big(path: &str) {
    let n: usize = std::env::var("WEIR_BIG_FRAMES")
        .ok()
        .map(|s| s.parse().expect("WEIR_BIG_FRAMES is a number"))
        .unwrap_or(2_000_000);
    let base = read_mixed();
    let mut w = CaptureWriter::create(Path::new(path)).expect("create output");
    for (ts, f) in repeated(&base).take(n) {
        w.write(ts, &f.data, f.orig_len).expect("write");
    }
    w.finish().expect("finish");
    eprintln!("wrote {n} frames to {path}");
}

/// configs/home.ron with two budgets that count every frame and never run out: one of all
/// traffic, one of a rule (evaluated on each frame), for the cost of counting.
fn home_with_budgets() -> weir::config::Plan {
    let src = std::fs::read_to_string(HOME).expect("configs/home.ron");
    let end = src.rfind(')').expect("a RON struct");
    let budgets = r#"
    budgets: [
        (name: "all", bytes: "1 TB", per: month, then: (ceil: "1 Mbit")),
        (name: "lan", match: "net 10.0.0.0/8 or net 192.168.0.0/16", bytes: "1 TB", per: day, then: drop),
    ],
    budget_store: (path: "/nonexistent/not-opened-by-replay.sqlite"),
"#;
    let with = format!("{}{budgets}{}", &src[..end], &src[end..]);
    weir::config::parse(&with, Path::new(HOME)).expect("home.ron with budgets")
}

fn replay(c: &mut Criterion) {
    const FRAMES: usize = 100_000;
    let plan = std::sync::Arc::new(weir::config::load(Path::new(HOME)).expect("configs/home.ron"));
    let budgeted = std::sync::Arc::new(home_with_budgets());
    let base = read_mixed();
    let input: Vec<(u64, &Frame)> = repeated(&base).take(FRAMES).collect();
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("mixed-services_x380/home.ron+2_budgets/100k_frames", |b| {
        b.iter(|| {
            let mut replay = Replay::new(&budgeted, &Default::default(), false);
            let mut departed = 0u64;
            let mut out = |_t: u64, _d: &[u8], _len: u32| departed += 1;
            for (ts, f) in &input {
                replay.push(*ts, &f.data, f.orig_len, &mut out);
            }
            let report = replay.finish(&mut out);
            assert_eq!(report.budgets.len(), 2);
            black_box((departed, report))
        })
    });
    g.bench_function("mixed-services_x380/home.ron/100k_frames", |b| {
        b.iter(|| {
            let mut replay = Replay::new(&plan, &Default::default(), false);
            let mut departed = 0u64;
            let mut out = |_t: u64, _d: &[u8], _len: u32| departed += 1;
            for (ts, f) in &input {
                replay.push(*ts, &f.data, f.orig_len, &mut out);
            }
            let report = replay.finish(&mut out);
            black_box((departed, report))
        })
    });
    g.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = replay
}

fn main() {
    if let Ok(path) = std::env::var("WEIR_WRITE_BIG_CAPTURE") {
        write_big(&path);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
