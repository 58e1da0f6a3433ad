//! Scheduler cost per frame: one enqueue plus one dequeue, in steady state.
//!
//! `cargo bench --bench schedule`
//! - `one_class/{1,1000,100000}_flows`: one class at 100 Gbit/s (link, rate and ceil) so the
//!   shaper never holds a frame back; N frames stay queued, one per flow (distinct fairness
//!   hashes, as many flow queues as the config gives a `flow` class); each iteration enqueues
//!   a frame of the next flow and dequeues one, with virtual time advanced 1 us.
//! - `overflow/{1000,100000}_flows`: the same, but the class is at its packet limit: each
//!   iteration enqueues two frames, the second of which first drops the head of the fattest
//!   flow queue (a search of the class's queues), and dequeues one.
//! - `home.ron_wan`: the wan port of configs/home.ron (20 Mbit/s, 5 classes with priorities,
//!   DRR, CoDel on bulk); 200 frames stay queued across the classes; each iteration enqueues one
//!   and dequeues one, moving virtual time to `next_wakeup()` when the shaper says wait.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;
use weir::port::Side;
use weir::sched::class_queue::DEFAULT_QUEUES;
use weir::sched::{ClassSpec, FrameMeta, PortScheduler, PortSpec};
use weir::time::Nanos;

const GBIT_100: u64 = 100_000_000_000;

fn one_class_port(limit_packets: u32) -> PortSpec {
    PortSpec {
        name: "bench".into(),
        rate_bps: GBIT_100,
        burst_bytes: 1 << 20,
        classes: vec![ClassSpec {
            name: "all".into(),
            priority: 1,
            rate_bps: GBIT_100,
            ceil_bps: GBIT_100,
            burst_bytes: 1 << 20,
            cburst_bytes: 1 << 20,
            weight: 1,
            quantum_bytes: weir::sched::BASE_QUANTUM,
            limit_packets,
            limit_bytes: u64::from(limit_packets) * 2000,
            codel: None,
            ecn: true,
            fairness_buckets: DEFAULT_QUEUES,
            host_isolation: false,
            police: None,
        }],
    }
}

/// A well-spread hash per flow (the classifier's flow hash is spread the same way).
fn flow_hash(i: u64) -> u64 {
    i.wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

fn one_class(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule");
    g.throughput(Throughput::Elements(1));
    for flows in [1u64, 1000, 100_000] {
        let mut sched = PortScheduler::<u32>::new(one_class_port(flows as u32 + 16), 0);
        let mut now: Nanos = 0;
        let meta = |i: u64| FrameMeta {
            class: 0,
            bytes: 1000,
            wire_bytes: 1024,
            fairness_hash: flow_hash(i % flows),
            host_hash: 0,
            ect: false,
        };
        for i in 0..flows {
            sched.enqueue(i as u32, meta(i), now, &mut |_| {});
        }
        assert_eq!(sched.queued_frames(), flows);
        let mut i = flows;
        g.bench_function(BenchmarkId::new("one_class_flows", flows), |b| {
            b.iter(|| {
                now += 1_000;
                sched.enqueue(i as u32, meta(i), now, &mut |_| {});
                i += 1;
                black_box(sched.dequeue(now, &mut |_| {}))
            })
        });
        assert_eq!(sched.queued_frames(), flows, "steady state kept");
    }
    g.finish();
}

fn overflow(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule");
    g.throughput(Throughput::Elements(1));
    for flows in [1000u64, 100_000] {
        let mut spec = one_class_port(flows as u32);
        let limit = flows as u32;
        spec.classes[0].limit_packets = limit;
        let mut sched = PortScheduler::<u32>::new(spec, 0);
        let mut now: Nanos = 0;
        let meta = |i: u64| FrameMeta {
            class: 0,
            bytes: 1000,
            wire_bytes: 1024,
            fairness_hash: flow_hash(i % flows),
            host_hash: 0,
            ect: false,
        };
        for i in 0..flows {
            sched.enqueue(i as u32, meta(i), now, &mut |_| {});
        }
        let mut i = flows;
        let (mut dropped, mut iterations) = (0u64, 0u64);
        g.bench_function(BenchmarkId::new("overflow_flows", flows), |b| {
            b.iter(|| {
                iterations += 1;
                now += 1_000;
                // The class is one below its limit: the first enqueue fills it, the second
                // drops the fattest queue's head, the dequeue makes room again.
                sched.enqueue(i as u32, meta(i), now, &mut |_| dropped += 1);
                sched.enqueue(i as u32 + 1, meta(i + 1), now, &mut |_| dropped += 1);
                i += 2;
                black_box(sched.dequeue(now, &mut |_| {}))
            })
        });
        // (A filter on the command line may skip this case: then nothing ran.)
        assert!(
            iterations == 0 || dropped >= iterations,
            "every pair overflowed"
        );
        assert_eq!(
            sched.queued_frames(),
            flows - u64::from(iterations > 0),
            "steady state kept"
        );
    }
    g.finish();
}

fn home_wan(c: &mut Criterion) {
    let plan = weir::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/home.ron"
    )))
    .expect("configs/home.ron");
    let spec = plan.ports[Side::Wan.index()].spec.clone();
    let classes = spec.classes.len() as u64;
    let mut sched = PortScheduler::<u32>::new(spec, 0);
    let mut now: Nanos = 0;
    // Spread frames over every class (control included) and 64 flows per class.
    let meta = |i: u64| FrameMeta {
        class: (i % classes) as u16,
        bytes: 200 + (i % 7) as u32 * 150,
        wire_bytes: 224 + (i % 7) as u32 * 150,
        fairness_hash: flow_hash(i % 64),
        host_hash: 0,
        ect: false,
    };
    const QUEUED: u64 = 200;
    let mut i = 0u64;
    while sched.queued_frames() < QUEUED {
        sched.enqueue(i as u32, meta(i), now, &mut |_| {});
        i += 1;
    }
    let mut g = c.benchmark_group("schedule");
    g.throughput(Throughput::Elements(1));
    g.bench_function("home.ron_wan_200_queued", |b| {
        b.iter(|| {
            sched.enqueue(i as u32, meta(i), now, &mut |_| {});
            i += 1;
            loop {
                if let Some(d) = sched.dequeue(now, &mut |_| {}) {
                    break Some(black_box(d));
                }
                // CoDel (bulk class) may have dropped what was left.
                match sched.next_wakeup() {
                    Some(t) => now = t.max(now),
                    None => break None,
                }
            }
        })
    });
    g.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = one_class, overflow, home_wan
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
