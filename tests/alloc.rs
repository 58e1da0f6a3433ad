//! No heap allocation per frame in steady state.
//!
//! A counting global allocator counts allocations (alloc, alloc_zeroed, realloc) made by the
//! current thread while it is "armed" (thread-local flag and counter, so tests running in parallel threads
//! do not count each other's allocations). Each test warms up (flow table entries, scheduler
//! construction, MAC learning), arms the counter, runs 100,000 more frames of the same flows and
//! asserts that nothing was allocated.

use etherparse::PacketBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use weir::capture::CaptureReader;
use weir::classify::Classifier;
use weir::config::Plan;
use weir::port::Side;
use weir::sched::{FrameMeta, PortScheduler};
use weir::time::Nanos;

struct Counting;

thread_local! {
    // Const-initialised, no destructor: reading them never allocates.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // try_with: no panic if called while the thread-locals are being torn down.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, which upholds
// GlobalAlloc's contract; the counting around it neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

fn home() -> Plan {
    weir::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/home.ron"
    )))
    .expect("configs/home.ron")
}

/// 300 flows of mixed applications, half leaving on each port.
fn frames() -> Vec<(Vec<u8>, Side)> {
    let mac_a = [0x02, 0, 0, 0, 0, 1];
    let mac_b = [0x02, 0, 0, 0, 0, 2];
    (0..300u16)
        .map(|i| {
            let host = [198, 18, (i >> 8) as u8, i as u8];
            let server = [198, 19, 0, (i % 7) as u8 + 1];
            let b = PacketBuilder::ethernet2(mac_a, mac_b).ipv4(host, server, 64);
            let sport = 30000 + i;
            let mut f = Vec::new();
            match i % 5 {
                0 => b.tcp(sport, 443, 1, 1000).ack(1).write(&mut f, &[1; 200]),
                1 => b.udp(sport, 53).write(&mut f, &[2; 40]),
                2 => b.tcp(sport, 22, 1, 1000).ack(1).write(&mut f, &[3; 64]),
                3 => b.udp(sport, 5060).write(&mut f, &[4; 300]),
                _ => b.tcp(sport, 6881, 1, 1000).ack(1).write(&mut f, &[5; 1000]),
            }
            .unwrap();
            let side = if i % 2 == 0 { Side::Wan } else { Side::Lan };
            (f, side)
        })
        .collect()
}

#[test]
fn classify_enqueue_dequeue_does_not_allocate() {
    let plan = home();
    let frames = frames();
    let mut classifier = plan.classifier();
    let mut ports = [
        PortScheduler::<u32>::new(plan.ports[0].spec.clone(), 0),
        PortScheduler::<u32>::new(plan.ports[1].spec.clone(), 0),
    ];
    let mut now: Nanos = 0;
    let mut departed = 0u64;
    let mut run = |n: usize, now: &mut Nanos, departed: &mut u64, classifier: &mut Classifier| {
        for k in 0..n {
            let (f, side) = &frames[k % frames.len()];
            // 100 us between frames: under the 20 Mbit/s wan link for these frame sizes.
            *now += 100_000;
            let v = weir::wire::parse(f);
            let verdict = classifier.classify(&v, *side, *now);
            let port = &plan.ports[side.index()];
            let bytes = f.len() as u32;
            let meta = FrameMeta {
                class: verdict.class,
                bytes,
                wire_bytes: bytes + port.overhead,
                fairness_hash: verdict.fairness_hash,
                host_hash: verdict.host_hash,
                ect: v.ecn != 0,
            };
            let _ = ports[side.index()].enqueue(k as u32, meta, *now, &mut |_| {});
            for p in ports.iter_mut() {
                while p.dequeue(*now, &mut |_| {}).is_some() {
                    *departed += 1;
                }
            }
        }
    };
    // The counter counts: one boxed value is one allocation.
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(Box::new(7u64)))),
        1
    );
    run(10_000, &mut now, &mut departed, &mut classifier);
    let warm = classifier.stats().flows;
    let allocs = allocations_in(|| run(100_000, &mut now, &mut departed, &mut classifier));
    assert!(departed > 100_000, "frames flowed: {departed}");
    let after = classifier.stats().flows;
    assert_eq!(after.inserted, warm.inserted, "no new flows after warm-up");
    assert_eq!(after.evicted, 0);
    assert_eq!(allocs, 0, "heap allocations in 100,000 warmed-up frames");
}

#[test]
fn replay_without_output_does_not_allocate() {
    replay_does_not_allocate(home());
}

/// Budgets of a class, of the whole link and of a rule counted on every frame, and synced
/// with the ledger every 100 ms of capture time (none runs out here).
#[test]
fn replay_with_budgets_does_not_allocate() {
    let plan = weir::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/capped.ron"
    )))
    .expect("configs/capped.ron");
    assert_eq!(plan.budgets.len(), 3);
    replay_does_not_allocate(plan);
}

fn replay_does_not_allocate(plan: Plan) {
    let plan = std::sync::Arc::new(plan);
    let mut r = CaptureReader::open(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/mixed-services.pcap"
    )))
    .expect("mixed-services.pcap");
    let mut base = Vec::new();
    while let Some(f) = r.next_frame().expect("readable") {
        base.push((f.ts_ns, f.data.to_vec(), f.orig_len));
    }
    let first = base[0].0;
    let span = base.iter().map(|f| f.0).max().unwrap() - first + 1_000_000;
    let mut replay = weir::replay::Replay::new(&plan, &Default::default(), false);
    let mut departed = 0u64;
    let mut out = |_t: Nanos, _d: &[u8], _len: u32| departed += 1;
    let mut rep = 0u64;
    let mut push_reps = |reps: u64, replay: &mut weir::replay::Replay<'_>| {
        for _ in 0..reps {
            for (ts, data, orig_len) in &base {
                replay.push(ts + rep * span, data, *orig_len, &mut out);
            }
            rep += 1;
        }
    };
    // Warm-up: 40 repetitions (10,520 frames).
    push_reps(40, &mut replay);
    // 381 repetitions: 100,203 frames.
    let allocs = allocations_in(|| push_reps(381, &mut replay));
    let report = replay.finish(&mut |_, _, _| {});
    assert_eq!(report.totals.received, 421 * base.len() as u64);
    assert!(departed > 0);
    assert_eq!(
        allocs, 0,
        "heap allocations in 100,203 warmed-up replayed frames"
    );
}

#[test]
fn learning_server_names_does_not_allocate() {
    // TLS, QUIC (v1 and v2), HTTP and DNS (answers filling the DNS cache) from the committed
    // captures, ClientHellos gathered over TCP segments and QUIC packets, and payload
    // protocols (RTP, STUN, WireGuard, ...); each repetition comes 1000 s after the last, past
    // the idle timeout, with other ports, so every flow is new again and its name is read
    // again.
    let mut base = Vec::new();
    for file in [
        "mixed-services.pcap",
        "tls-sni.pcap",
        "quic-v1.pcap",
        "quic-v2.pcap",
        "http-split-request.pcap",
        "tls-split-hello.pcap",
        "quic-split-hello.pcap",
        "quic-split-hello-rand.pcap",
        "rtp-and-high-ports.pcap",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("captures")
            .join(file);
        let mut r = CaptureReader::open(&path).expect("a committed capture");
        while let Some(f) = r.next_frame().expect("readable") {
            base.push(f.data.to_vec());
        }
    }
    let mut classifier = home().classifier();
    classifier.keep_names();
    let mut rep = 0u64;
    let mut run = |reps: u64, classifier: &mut Classifier| {
        for _ in 0..reps {
            rep += 1;
            for (k, f) in base.iter_mut().enumerate() {
                let now = rep * 1_000_000_000_000 + k as u64;
                // New client ports each repetition (in place; the well-known ones stay): a
                // flow that came back with its old ports would keep its name.
                let v = weir::wire::parse(f);
                let l4 = usize::from(v.l4_offset);
                if v.has_ports && l4 > 0 {
                    for at in [l4, l4 + 2] {
                        let p = u16::from_be_bytes([f[at], f[at + 1]]);
                        if p >= 1024 {
                            let next = if p == u16::MAX { 1024 } else { p + 1 };
                            f[at..at + 2].copy_from_slice(&next.to_be_bytes());
                        }
                    }
                }
                let v = weir::wire::parse(f);
                std::hint::black_box(classifier.classify_frame(&v, f, Side::Wan, now));
            }
        }
    };
    run(2, &mut classifier);
    let before = classifier.stats().names;
    let allocs = allocations_in(|| run(20, &mut classifier));
    let after = classifier.stats().names;
    // Names were learnt in the measured window: TLS, QUIC, HTTP and DNS alike.
    assert!(
        after.learnt - before.learnt >= 20 * 35,
        "{before:?} {after:?}"
    );
    assert!(after.dns_cache.stored > before.dns_cache.stored);
    assert_eq!(after.hellos_gathered - before.hellos_gathered, 20 * 3);
    assert!(after.apps_found - before.apps_found >= 20 * 40, "{after:?}");
    assert_eq!(allocs, 0, "heap allocations while learning names");
}
