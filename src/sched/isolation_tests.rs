//! Flow and host isolation in virtual time: sparse flows beside floods, responsive flows with
//! different round trips, hosts with many flows, ECN. Each expected result is reasoned out
//! where it is asserted.

use super::class_queue::DEFAULT_QUEUES;
use super::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const SEC: Nanos = 1_000_000_000;
const MS: Nanos = 1_000_000;
const OVERHEAD: u32 = 24;

fn class(rate: u64, fairness_buckets: u32, host_isolation: bool) -> ClassSpec {
    ClassSpec {
        name: "bulk".into(),
        priority: 1,
        rate_bps: rate,
        ceil_bps: rate,
        burst_bytes: 2 * 1538,
        cburst_bytes: 2 * 1538,
        weight: 1,
        quantum_bytes: BASE_QUANTUM,
        limit_packets: 1000,
        // The config's default: 200 ms at ceil, at least 256 KiB.
        limit_bytes: (rate / 8 / 5).max(256 << 10),
        codel: Some(CodelParams::default()),
        ecn: true,
        fairness_buckets,
        host_isolation,
        police: None,
    }
}

fn one_class_port(c: ClassSpec) -> PortScheduler<u64> {
    PortScheduler::new(
        PortSpec {
            name: "wan".into(),
            rate_bps: c.ceil_bps,
            burst_bytes: 2 * 1538,
            classes: vec![c],
        },
        0,
    )
}

/// A source of frames at a steady rate, each gap jittered by up to a tenth either way.
#[derive(Clone, Copy, Debug)]
struct Source {
    bytes: u32,
    bps: u64,
    flow: u64,
    host: u64,
    ect: bool,
}

#[derive(Clone, Debug, Default)]
struct Outcome {
    sent: u64,
    delivered: u64,
    dropped: u64,
    marked: u64,
    /// Sojourns of the frames sent after the warm-up.
    sojourns: Vec<Nanos>,
    wire_bytes: u64,
}

impl Outcome {
    fn loss(&self) -> f64 {
        self.dropped as f64 / self.sent.max(1) as f64
    }

    fn p99(&self) -> Nanos {
        let mut v = self.sojourns.clone();
        v.sort_unstable();
        v.get((v.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    }
}

/// A small deterministic generator (xorshift64*) for jitter and phases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Offer every source to one class for `end`; count what each lost, and the sojourns of its
/// frames that arrived after `warm`. Items are source index << 40 | sequence.
fn offer(mut s: PortScheduler<u64>, sources: &[Source], warm: Nanos, end: Nanos) -> Vec<Outcome> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let gap = |src: &Source| u64::from(src.bytes + OVERHEAD) * 8 * SEC / src.bps;
    let mut next: Vec<Nanos> = sources.iter().map(|src| rng.below(gap(src))).collect();
    let mut out = vec![Outcome::default(); sources.len()];
    let mut seq = 0u64;
    let who = |item: u64| (item >> 40) as usize;
    loop {
        let (i, &arrival) = next
            .iter()
            .enumerate()
            .min_by_key(|&(_, t)| *t)
            .expect("at least one source");
        match s.next_wakeup() {
            Some(t) if t <= arrival.min(end) => {
                let mut dropped = |d: Dropped<u64>| out[who(d.item)].dropped += 1;
                if let Some(d) = s.dequeue(t, &mut dropped) {
                    let o = &mut out[who(d.item)];
                    o.delivered += 1;
                    o.marked += u64::from(d.ce);
                    o.wire_bytes += u64::from(d.wire_bytes);
                    if d.enqueued_at >= warm {
                        o.sojourns.push(t - d.enqueued_at);
                    }
                }
                continue;
            }
            _ if arrival >= end => break,
            _ => {}
        }
        let src = sources[i];
        seq += 1;
        out[i].sent += 1;
        let meta = FrameMeta {
            class: 0,
            bytes: src.bytes,
            wire_bytes: src.bytes + OVERHEAD,
            fairness_hash: src.flow,
            host_hash: src.host,
            ect: src.ect,
        };
        let mut overflow = Vec::new();
        let r = s.enqueue((i as u64) << 40 | seq, meta, arrival, &mut |d| {
            overflow.push(d.item)
        });
        for item in overflow {
            out[who(item)].dropped += 1;
        }
        if let Enqueued::Dropped(..) = r {
            out[i].dropped += 1;
        }
        let g = gap(&src);
        next[i] = arrival + g - g / 10 + rng.below(g / 5 + 1);
    }
    let st = s.class_stats(0).unwrap();
    assert!(st.is_conserved(), "{st:?}");
    let queued: u64 = st.queued_frames;
    let total_sent: u64 = out.iter().map(|o| o.sent).sum();
    let total_done: u64 = out.iter().map(|o| o.delivered + o.dropped).sum();
    assert_eq!(total_sent, total_done + queued, "every frame accounted for");
    out
}

fn flow_hash(i: u64) -> u64 {
    (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

/// The case: a 4 Mbit/s class carrying one 8 Mbit/s unresponsive flow and two
/// 0.9 Mbit/s flows. Each light flow asks less than its fair share (4/3 Mbit/s): it should
/// lose nothing and wait at most about one frame time behind the flood's frame on the wire
/// (3.1 ms at 4 Mbit/s), the other light flow's frame, and its own; CoDel's 5 ms target plus
/// one frame time is the bound. The flood gets the rest: about 4 - 1.8 Mbit/s.
#[test]
fn light_flows_beside_an_unresponsive_flood_lose_nothing() {
    for (host_isolation, label) in [(false, "flow"), (true, "triple")] {
        let s = one_class_port(class(4_000_000, DEFAULT_QUEUES, host_isolation));
        let sources = [
            Source {
                bytes: 1500,
                bps: 8_000_000,
                flow: flow_hash(0),
                host: 1,
                ect: false,
            },
            Source {
                bytes: 1500,
                bps: 900_000,
                flow: flow_hash(1),
                host: 2,
                ect: false,
            },
            Source {
                bytes: 1500,
                bps: 900_000,
                flow: flow_hash(2),
                host: 3,
                ect: false,
            },
            // 100-byte frames at 80 kbit/s: a voice-like sparse flow.
            Source {
                bytes: 100,
                bps: 80_000,
                flow: flow_hash(3),
                host: 4,
                ect: false,
            },
        ];
        let out = offer(s, &sources, 2 * SEC, 30 * SEC);
        let frame_time = 1538 * 8 * SEC / 4_000_000;
        for (i, o) in out.iter().enumerate().skip(1) {
            eprintln!(
                "{label}: light flow {i}: sent {} lost {} ({:.2}%), sojourn p99 {:.2} ms",
                o.sent,
                o.dropped,
                100.0 * o.loss(),
                o.p99() as f64 / 1e6
            );
            assert!(o.loss() <= 0.01, "{label}: flow {i} lost {:.3}", o.loss());
            assert!(
                o.p99() < CodelParams::default().target + frame_time,
                "{label}: flow {i} p99 {}",
                o.p99()
            );
        }
        let flood = &out[0];
        let flood_bps = flood.wire_bytes as f64 * 8.0 / 30.0;
        eprintln!(
            "{label}: flood {:.2} Mbit/s, lost {:.1}%",
            flood_bps / 1e6,
            100.0 * flood.loss()
        );
        assert!((1.9e6..2.3e6).contains(&flood_bps), "flood {flood_bps}");
    }
}

/// A flood spread over 1000 flows at twice a 100 Mbit/s class. Fair queueing cannot make the
/// flood's own frames wait less than a round over its flows (1000 frames of 1538 bytes:
/// 123 ms), and does not try: what holds it is per-queue CoDel (each queue's frames waited
/// that round, so each drops) and the class's limits (200 ms of bytes; overflow from the
/// longest queue). A ping beside it that is sparse in DRR++'s sense (one every 200 ms, longer
/// than a round, so its queue has left the lists when the next one comes) is served as a new
/// flow: about one frame time, nothing lost. A ping every 20 ms is below its share (0.05 of
/// 0.1 Mbit/s) but comes back within a round: it is served once per round, so it waits up to
/// a round, and still loses nothing. A heavier flow from another host (10 Mbit/s, far above
/// a thousandth but below half) is protected only when the class isolates hosts (`triple`).
#[test]
fn a_flood_over_many_flows_is_held_and_a_sparse_flow_protected() {
    let flood = |host| -> Vec<Source> {
        (0..1000)
            .map(|i| Source {
                bytes: 1500,
                bps: 200_000,
                flow: flow_hash(i),
                host,
                ect: false,
            })
            .collect()
    };
    let ping = |gap_ms: u64| Source {
        bytes: 98,
        bps: 122 * 8 * 1000 / gap_ms,
        flow: flow_hash(5000),
        host: 2,
        ect: false,
    };
    let round = 1000 * 1538 * 8 * SEC / 100_000_000;
    for (gap_ms, bound) in [(200, MS), (20, round + 5 * MS)] {
        let mut sources = flood(1);
        sources.push(ping(gap_ms));
        let c = class(100_000_000, DEFAULT_QUEUES, false);
        let limit = c.limit_bytes;
        let out = offer(one_class_port(c), &sources, 2 * SEC, 10 * SEC);
        let p = &out[1000];
        let flood_p99 = out[..1000].iter().map(Outcome::p99).max().unwrap();
        let flood_bps: f64 = out[..1000]
            .iter()
            .map(|o| o.wire_bytes as f64 * 8.0 / 10.0)
            .sum();
        eprintln!(
            "ping every {gap_ms} ms: lost {} of {}, p99 {:.3} ms; flood p99 {:.1} ms at {:.1} Mbit/s",
            p.dropped,
            p.sent,
            p.p99() as f64 / 1e6,
            flood_p99 as f64 / 1e6,
            flood_bps / 1e6
        );
        assert_eq!(p.dropped, 0);
        assert!(p.p99() < bound, "ping p99 {}", p.p99());
        // Held: never above the class's byte limit, as delay at the link rate (plus a frame).
        assert!(
            flood_p99 < (limit + 1538) * 8 * SEC / 100_000_000,
            "flood p99 {flood_p99}"
        );
        assert!(flood_bps > 0.95 * 100e6, "link full: {flood_bps}");
    }

    let heavy = Source {
        bytes: 1500,
        bps: 10_000_000,
        flow: flow_hash(5001),
        host: 2,
        ect: false,
    };
    for (host_isolation, label) in [(false, "flow"), (true, "triple")] {
        let mut sources = flood(1);
        sources.push(heavy);
        let out = offer(
            one_class_port(class(100_000_000, DEFAULT_QUEUES, host_isolation)),
            &sources,
            2 * SEC,
            10 * SEC,
        );
        let h = &out[1000];
        eprintln!(
            "{label}: 10 Mbit/s flow of another host lost {:.1}%, p99 {:.1} ms",
            100.0 * h.loss(),
            h.p99() as f64 / 1e6
        );
        if host_isolation {
            assert!(h.loss() <= 0.01, "triple: lost {}", h.loss());
        } else {
            // One of 1001 flows: about 0.1 Mbit/s of its 10.
            assert!(h.loss() > 0.9, "flow: lost only {}", h.loss());
        }
    }
}

/// A TCP sender in virtual time with CUBIC's window (RFC 9438: cubic growth in time since the
/// last reduction, whatever the round trip; reduction to 0.7), reducing at most once per
/// round trip, on a loss (learnt one round trip after it) or, with ECN, on a CE mark (learnt
/// with the ACK).
struct Tcp {
    rtt: Nanos,
    flow: u64,
    host: u64,
    ect: bool,
    cwnd: f64,
    ssthresh: f64,
    w_max: f64,
    epoch: Nanos,
    inflight: u32,
    last_cut: Nanos,
    delivered_after_warm: u64,
}

impl Tcp {
    fn new(rtt_ms: u64, flow: u64, host: u64, ect: bool) -> Tcp {
        Tcp {
            rtt: rtt_ms * MS,
            flow,
            host,
            ect,
            cwnd: 2.0,
            ssthresh: f64::MAX,
            w_max: 0.0,
            epoch: 0,
            inflight: 0,
            last_cut: 0,
            delivered_after_warm: 0,
        }
    }

    fn congestion(&mut self, now: Nanos) {
        if now.saturating_sub(self.last_cut) >= self.rtt {
            self.w_max = self.cwnd;
            self.cwnd = (self.cwnd * 0.7).max(2.0);
            self.ssthresh = self.cwnd;
            self.last_cut = now;
            self.epoch = now;
        }
    }

    fn acked(&mut self, now: Nanos) {
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
            return;
        }
        let k = (self.w_max * 0.3 / 0.4).cbrt();
        let t = (now - self.epoch + self.rtt) as f64 / 1e9;
        let target = 0.4 * (t - k).powi(3) + self.w_max;
        self.cwnd += if target > self.cwnd {
            (target - self.cwnd) / self.cwnd
        } else {
            0.01 / self.cwnd
        };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Ack { flow: usize, ce: bool },
    Loss { flow: usize },
}

/// Responsive flows through one class; returns each flow's goodput (bit/s of frames delivered
/// after `warm`) and the class's counters.
fn tcp_flows(c: ClassSpec, mut flows: Vec<Tcp>, warm: Nanos, end: Nanos) -> (Vec<f64>, ClassStats) {
    let mut s = one_class_port(c);
    let mut events: BinaryHeap<Reverse<(Nanos, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut now: Nanos = 0;
    let send = |s: &mut PortScheduler<u64>,
                flows: &mut [Tcp],
                i: usize,
                now: Nanos,
                seq: &mut u64,
                events: &mut BinaryHeap<Reverse<(Nanos, Event)>>| {
        while f64::from(flows[i].inflight) < flows[i].cwnd.floor() {
            flows[i].inflight += 1;
            *seq += 1;
            let meta = FrameMeta {
                class: 0,
                bytes: 1514,
                wire_bytes: 1538,
                fairness_hash: flows[i].flow,
                host_hash: flows[i].host,
                ect: flows[i].ect,
            };
            let mut lost = Vec::new();
            if let Enqueued::Dropped(item, _) =
                s.enqueue((i as u64) << 40 | *seq, meta, now, &mut |d| {
                    lost.push(d.item)
                })
            {
                lost.push(item);
            }
            for item in lost {
                let f = (item >> 40) as usize;
                events.push(Reverse((now + flows[f].rtt, Event::Loss { flow: f })));
            }
        }
    };
    for i in 0..flows.len() {
        send(&mut s, &mut flows, i, 0, &mut seq, &mut events);
    }
    while now < end {
        let next_event = events.peek().map(|Reverse((t, _))| *t);
        match (s.next_wakeup(), next_event) {
            (Some(w), e) if e.is_none_or(|e| w <= e) => {
                now = w.max(now);
                let mut lost = Vec::new();
                if let Some(d) = s.dequeue(now, &mut |d| lost.push(d.item)) {
                    let f = (d.item >> 40) as usize;
                    events.push(Reverse((
                        now + flows[f].rtt,
                        Event::Ack { flow: f, ce: d.ce },
                    )));
                }
                for item in lost {
                    let f = (item >> 40) as usize;
                    events.push(Reverse((now + flows[f].rtt, Event::Loss { flow: f })));
                }
            }
            (_, Some(_)) => {
                let Reverse((t, ev)) = events.pop().expect("peeked");
                now = t;
                let i = match ev {
                    Event::Ack { flow, ce } => {
                        flows[flow].inflight -= 1;
                        if ce {
                            flows[flow].congestion(now);
                        } else {
                            flows[flow].acked(now);
                        }
                        if now >= warm {
                            flows[flow].delivered_after_warm += 1;
                        }
                        flow
                    }
                    Event::Loss { flow } => {
                        flows[flow].inflight -= 1;
                        flows[flow].congestion(now);
                        flow
                    }
                };
                send(&mut s, &mut flows, i, now, &mut seq, &mut events);
            }
            (_, None) => break,
        }
    }
    let goodput = flows
        .iter()
        .map(|f| f.delivered_after_warm as f64 * 1538.0 * 8.0 / ((end - warm) as f64 / 1e9))
        .collect();
    let st = s.class_stats(0).expect("one class").clone();
    assert!(st.is_conserved(), "{st:?}");
    (goodput, st)
}

/// Host A runs 16 TCP flows and host B one. Per flow, B gets 1/17 of the class; with a queue
/// per LAN host (`host`) or hosts first and then flows (`triple`), half.
#[test]
fn hosts_get_half_each_whatever_their_flow_counts() {
    for (label, host_isolation, per_host_queue, want) in [
        ("flow", false, false, 1.0 / 17.0),
        ("host", false, true, 0.5),
        ("triple", true, false, 0.5),
    ] {
        let flow = |i: u64, host: u64| if per_host_queue { host } else { flow_hash(i) };
        let mut flows: Vec<Tcp> = (0..16)
            .map(|i| Tcp::new(20, flow(i, 1), 1, false))
            .collect();
        flows.push(Tcp::new(20, flow(100, 2), 2, false));
        let c = class(20_000_000, DEFAULT_QUEUES, host_isolation);
        let (goodput, _) = tcp_flows(c, flows, 10 * SEC, 40 * SEC);
        let b = goodput[16] / goodput.iter().sum::<f64>();
        eprintln!("{label}: host B got {b:.3} of the class");
        assert!((b - want).abs() < 0.03, "{label}: B got {b}");
    }
}

fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    sum * sum / (x.len() as f64 * squares)
}

/// Four TCP flows with round trips from 10 to 160 ms share a 20 Mbit/s class. With one FIFO
/// the short round trips would take most of it; a queue each, served by DRR, gives every
/// backlogged flow the same bytes whatever its round trip, and a flow below its share keeps no
/// queue, so its CoDel leaves it alone while it grows back.
#[test]
fn responsive_flows_with_different_round_trips_share_equally() {
    for ect in [false, true] {
        let flows = [10, 40, 80, 160]
            .iter()
            .enumerate()
            .map(|(i, &rtt)| Tcp::new(rtt, flow_hash(i as u64), 0, ect))
            .collect();
        let c = class(20_000_000, DEFAULT_QUEUES, false);
        let (goodput, st) = tcp_flows(c, flows, 20 * SEC, 80 * SEC);
        let j = jain(&goodput);
        let total: f64 = goodput.iter().sum();
        eprintln!(
            "ecn {ect}: goodput {:?} Mbit/s, Jain {j:.4}, total {:.2}, aqm drops {}, marks {}, overflow {}",
            goodput.iter().map(|g| (g / 1e4).round() / 100.0).collect::<Vec<_>>(),
            total / 1e6,
            st.dropped_frames[DropReason::Aqm as usize],
            st.queue.ecn_marked,
            st.dropped_frames[DropReason::Overflow as usize],
        );
        assert!(j >= 0.99, "Jain {j}: {goodput:?}");
        assert!(total > 0.9 * 20e6, "the class stays full: {total}");
        if ect {
            // Flows that answer marks never reach the point where a frame must be dropped.
            assert!(st.queue.ecn_marked > 0);
            assert_eq!(st.dropped_total_frames(), 0, "{st:?}");
        } else {
            assert!(st.dropped_frames[DropReason::Aqm as usize] > 0);
            assert_eq!(st.queue.ecn_marked, 0);
        }
    }
}

/// An ECN-capable flow that ignores its marks: marked, never AQM-dropped, until the class is
/// at its hard limit; from then on it loses frames (overflow, and BLUE once the overflows
/// have taught it), while a light flow beside it still loses nothing.
#[test]
fn marks_until_the_hard_limit_then_drops() {
    let s = one_class_port(class(10_000_000, DEFAULT_QUEUES, false));
    let sources = [
        Source {
            bytes: 1500,
            bps: 20_000_000,
            flow: flow_hash(0),
            host: 1,
            ect: true,
        },
        Source {
            bytes: 1500,
            bps: 1_000_000,
            flow: flow_hash(1),
            host: 2,
            ect: true,
        },
    ];
    let out = offer(s, &sources, SEC, 10 * SEC);
    eprintln!(
        "ECT flood: marked {} lost {} of {}; light: marked {} lost {}",
        out[0].marked, out[0].dropped, out[0].sent, out[1].marked, out[1].dropped
    );
    assert!(out[0].marked > 0);
    assert!(
        out[0].loss() > 0.4,
        "the flood is held by drops at the limit"
    );
    assert_eq!(out[1].dropped, 0);
}
