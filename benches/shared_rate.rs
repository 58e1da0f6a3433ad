//! The shared-rate machinery of `--workers N` under contention (issue 15): N threads taking
//! 1500-byte frames from one [`SharedRate`], at 1, 2, 4, 8 and 16 threads, for three designs:
//! a lock per frame (`lease 0`), and leases of 100 us and 1 ms of the rate. Beside them, one
//! thread with a bucket of its own (no sharing): the floor.
//!
//! `cargo bench --bench shared_rate` prints two tables:
//! - cost: the rate far above what the threads can take (1 Pbit/s), each thread taking frames
//!   for 0.3 s, reading the clock once per 64 frames (as a forwarding thread does once per
//!   batch): CPU time of the process per frame (getrusage), and frames a second in all;
//! - exactness: the rate 10 Gbit/s, below what the threads can take, for 1 s: bytes sent in all
//!   against the rate's worth (+ its 1 MB burst).
//!
//! On a machine with fewer cores than threads, the threads share the cores: the figures then
//! include a lock holder descheduled while others wait for it (what oversubscription costs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir::sched::shared_rate::SharedRate;
use weir::sched::token_bucket::{Conform, TokenBucket};
use weir::time::{Clock, SystemClock};

const FRAME: u32 = 1500;
const BATCH: u32 = 64;

fn cpu_ns() -> u64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    t(u.ru_utime) + t(u.ru_stime)
}

/// `threads` threads taking frames from `rate` (a share each) for `secs`: (frames, bytes,
/// CPU ns of the process).
fn run(
    clock: &Arc<SystemClock>,
    threads: usize,
    rate: Option<Arc<SharedRate>>,
    rate_bps: u64,
    secs: f64,
) -> (u64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_ns();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (clock, stop, frames, rate) = (
                Arc::clone(clock),
                Arc::clone(&stop),
                Arc::clone(&frames),
                rate.clone(),
            );
            std::thread::spawn(move || {
                let mut own = TokenBucket::new(rate_bps, 1 << 20, clock.now());
                let mut share = rate.as_ref().map(|r| r.share());
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let now = clock.now();
                    for _ in 0..BATCH {
                        let ok = match share.as_mut() {
                            Some(s) => s.take(FRAME, now) == Conform::Taken,
                            None => {
                                own.refill(now);
                                own.take_if_available(u64::from(FRAME)) == Conform::Taken
                            }
                        };
                        if !ok {
                            break;
                        }
                        n += 1;
                    }
                }
                frames.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let n = frames.load(Ordering::Relaxed);
    (n, n * u64::from(FRAME), cpu_ns() - cpu0)
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("shared_rate: {cores} cores\n");
    println!("cost (rate 1 Pbit/s, 0.3 s each)");
    println!(
        "{:>8} {:>16} {:>14} {:>14}",
        "threads", "design", "CPU ns/frame", "Mframes/s"
    );
    const PBIT: u64 = 1_000_000_000_000_000;
    let designs: [(&str, Option<u64>); 4] = [
        ("own bucket", None),
        ("lock/frame", Some(0)),
        ("lease 100us", Some(100_000)),
        ("lease 1ms", Some(1_000_000)),
    ];
    for threads in [1, 2, 4, 8, 16] {
        for (name, lease) in designs {
            if lease.is_none() && threads > 1 {
                continue;
            }
            let clock = Arc::new(SystemClock::new());
            let rate = lease.map(|l| SharedRate::new(PBIT, 1 << 30, l, clock.now()));
            let (n, _, cpu) = run(&clock, threads, rate, PBIT, 0.3);
            println!(
                "{threads:>8} {name:>16} {:>14.1} {:>14.2}",
                cpu as f64 / n.max(1) as f64,
                n as f64 / 0.3 / 1e6
            );
        }
    }
    println!("\nexactness (rate 10 Gbit/s, burst 1 MB, 1 s each)");
    println!(
        "{:>8} {:>16} {:>14} {:>10}",
        "threads", "design", "Gbit/s sent", "error"
    );
    const RATE: u64 = 10_000_000_000;
    for threads in [1, 2, 4, 8, 16] {
        for (name, lease) in &designs[1..] {
            let clock = Arc::new(SystemClock::new());
            let rate = SharedRate::new(RATE, 1_000_000, lease.unwrap(), clock.now());
            let (_, bytes, _) = run(&clock, threads, Some(rate), RATE, 1.0);
            // The bucket started at the clock's start; the threads stopped by now.
            let secs = clock.now() as f64 / 1e9;
            let allowed = RATE as f64 / 8.0 * secs + 1e6;
            println!(
                "{threads:>8} {name:>16} {:>14.3} {:>+9.2}%",
                bytes as f64 * 8.0 / secs / 1e9,
                (bytes as f64 - allowed) / allowed * 100.0
            );
        }
    }
}
