use super::*;
use crate::sched::codel::CodelParams;

const FIFO: Sharing = Sharing {
    queues: 1,
    host_isolation: false,
};

fn flows(n: u32) -> Sharing {
    Sharing {
        queues: n,
        host_isolation: false,
    }
}

fn frame<T>(item: T, bytes: u32) -> Dequeued<T> {
    Dequeued {
        item,
        bytes,
        wire_bytes: bytes + 24,
        enqueued_at: 0,
        ect: false,
    }
}

fn no_overflow<T: std::fmt::Debug>(d: Dequeued<T>) {
    panic!("unexpected overflow drop {d:?}");
}

fn items<T: Copy>(q: &mut ClassQueue, arena: &mut Arena<T>) -> Vec<T> {
    std::iter::from_fn(|| match q.pop(arena, 0) {
        Some(Popped::Deliver(d, _)) => Some(d.item),
        _ => None,
    })
    .collect()
}

#[test]
fn fifo_within_a_queue_and_the_arrival_that_cannot_fit_is_refused() {
    let mut arena = Arena::with_capacity(8);
    let mut q = ClassQueue::new(FIFO, 1514, 3, 10_000, None);
    for i in 0..3u32 {
        q.enqueue(&mut arena, frame(i, 100), 7, 0, 0, &mut no_overflow)
            .unwrap();
    }
    // A frame above the byte limit never fits: refused without touching the queue.
    assert_eq!(
        q.enqueue(&mut arena, frame(98, 20_000), 7, 0, 0, &mut no_overflow),
        Err((98, DropReason::QueueFull))
    );
    // Over the packet limit: the fattest queue's head makes room.
    let mut dropped = Vec::new();
    q.enqueue(&mut arena, frame(99, 100), 7, 0, 0, &mut |d| {
        dropped.push(d.item)
    })
    .unwrap();
    assert_eq!(dropped, vec![0]);
    assert_eq!(items(&mut q, &mut arena), vec![1, 2, 99]);
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
}

#[test]
fn overflow_drops_from_the_fattest_queue_not_the_arrival() {
    let mut arena = Arena::with_capacity(16);
    let mut q = ClassQueue::new(flows(64), 1514, 10, u64::MAX, None);
    for i in 0..9u32 {
        q.enqueue(&mut arena, frame(i, 1000), 1, 0, 0, &mut no_overflow)
            .unwrap();
    }
    q.enqueue(&mut arena, frame(100, 100), 2, 0, 0, &mut no_overflow)
        .unwrap();
    let mut dropped = Vec::new();
    q.enqueue(&mut arena, frame(101, 100), 2, 0, 0, &mut |d| {
        dropped.push(d.item)
    })
    .unwrap();
    assert_eq!(dropped, vec![0], "the head of the fat flow");
    let out = items(&mut q, &mut arena);
    assert!(out.contains(&100) && out.contains(&101), "{out:?}");
    assert_eq!(out.len(), 10);
}

#[test]
fn byte_limit_takes_room_from_the_fattest() {
    let mut arena = Arena::with_capacity(8);
    let mut q = ClassQueue::new(flows(4), 1514, 100, 1000, None);
    q.enqueue(&mut arena, frame(1u8, 600), 0, 0, 0, &mut no_overflow)
        .unwrap();
    let mut dropped = Vec::new();
    q.enqueue(&mut arena, frame(2u8, 600), 1, 0, 0, &mut |d| {
        dropped.push(d.item)
    })
    .unwrap();
    assert_eq!(dropped, vec![1]);
    assert_eq!(q.bytes(), 600);
}

#[test]
fn drr_shares_bytes_not_frames() {
    // Flow A sends 1500-byte frames, flow B 100-byte frames; both backlogged.
    let mut arena = Arena::with_capacity(4000);
    let mut q = ClassQueue::new(flows(16), 1514, 4000, u64::MAX, None);
    for _ in 0..1000 {
        q.enqueue(&mut arena, frame('a', 1500), 1, 0, 0, &mut no_overflow)
            .unwrap();
        q.enqueue(&mut arena, frame('b', 100), 2, 0, 0, &mut no_overflow)
            .unwrap();
    }
    let (mut a, mut b) = (0u64, 0u64);
    for _ in 0..600 {
        match q.pop(&mut arena, 0) {
            Some(Popped::Deliver(d, _)) if d.item == 'a' => a += u64::from(d.bytes),
            Some(Popped::Deliver(d, _)) => b += u64::from(d.bytes),
            other => panic!("{other:?}"),
        }
    }
    let ratio = a as f64 / b as f64;
    assert!((0.8..1.25).contains(&ratio), "a {a} b {b}");
}

#[test]
fn a_new_flow_is_served_before_the_backlogged_ones() {
    let mut arena = Arena::with_capacity(64);
    let mut q = ClassQueue::new(flows(64), 1514, 64, u64::MAX, None);
    for i in 0..20u32 {
        q.enqueue(
            &mut arena,
            frame(i, 1500),
            u64::from(i % 2),
            0,
            0,
            &mut no_overflow,
        )
        .unwrap();
    }
    // Serve until both backlogged flows have used their first quantum.
    for _ in 0..3 {
        q.pop(&mut arena, 0);
    }
    q.enqueue(&mut arena, frame(1000, 100), 7, 0, 0, &mut no_overflow)
        .unwrap();
    assert_eq!(items(&mut q, &mut arena)[0], 1000);
}

#[test]
fn a_flow_that_empties_on_the_new_list_goes_to_the_old_list_once() {
    // A flow that sends its next frame as soon as the last one left must not stay "new"
    // forever, ahead of the backlogged flows: it gets its share, not more.
    let mut arena = Arena::with_capacity(128);
    let mut q = ClassQueue::new(flows(64), 1514, 128, u64::MAX, None);
    for i in 0..100u32 {
        q.enqueue(&mut arena, frame(i, 1000), 1, 0, 0, &mut no_overflow)
            .unwrap();
    }
    q.enqueue(&mut arena, frame(1000, 1000), 2, 0, 0, &mut no_overflow)
        .unwrap();
    let mut served = Vec::new();
    for _ in 0..40 {
        let Some(Popped::Deliver(d, _)) = q.pop(&mut arena, 0) else {
            panic!("nothing to serve");
        };
        served.push(d.item);
        if d.item >= 1000 {
            q.enqueue(
                &mut arena,
                frame(d.item + 1, 1000),
                2,
                0,
                0,
                &mut no_overflow,
            )
            .unwrap();
        }
    }
    let bulk = served.iter().filter(|&&i| i < 1000).count();
    assert!((18..=22).contains(&bulk), "bulk {bulk} of 40: {served:?}");
}

#[test]
fn hosts_share_first_then_their_flows() {
    // Host A runs 16 flows, host B one; all backlogged.
    let sharing = Sharing {
        queues: 1024,
        host_isolation: true,
    };
    let mut arena = Arena::with_capacity(20_000);
    let mut q = ClassQueue::new(sharing, 1514, 20_000, u64::MAX, None);
    for i in 0..500u64 {
        for f in 0..16u64 {
            q.enqueue(
                &mut arena,
                frame('a', 1000),
                100 + f,
                1,
                0,
                &mut no_overflow,
            )
            .unwrap();
        }
        let _ = i;
        for _ in 0..16 {
            q.enqueue(&mut arena, frame('b', 1000), 7, 2, 0, &mut no_overflow)
                .unwrap();
        }
    }
    let mut a = 0;
    for _ in 0..4000 {
        match q.pop(&mut arena, 0) {
            Some(Popped::Deliver(d, _)) => a += usize::from(d.item == 'a'),
            other => panic!("{other:?}"),
        }
    }
    assert!((1900..=2100).contains(&a), "host A got {a} of 4000");
}

#[test]
fn collisions_are_counted_when_a_set_is_full() {
    let mut arena = Arena::with_capacity(64);
    // 8 queues: one set of 8 ways.
    let mut q = ClassQueue::new(flows(8), 1514, 64, u64::MAX, None);
    for h in 0..8u64 {
        q.enqueue(&mut arena, frame(h, 100), h << 40, 0, 0, &mut no_overflow)
            .unwrap();
    }
    assert_eq!(q.counters().flow_collisions, 0);
    q.enqueue(&mut arena, frame(9, 100), 9 << 40, 0, 0, &mut no_overflow)
        .unwrap();
    assert_eq!(q.counters().flow_collisions, 1);
    // Once the queues are idle again, a new flow takes one without colliding.
    assert_eq!(items(&mut q, &mut arena).len(), 9);
    q.enqueue(&mut arena, frame(10, 100), 10 << 40, 0, 0, &mut no_overflow)
        .unwrap();
    assert_eq!(q.counters().flow_collisions, 1);
}

#[test]
fn ect_frames_are_marked_and_others_dropped_by_the_same_codel() {
    let aqm = AqmParams {
        codel: CodelParams::default(),
        ecn: true,
    };
    let ms = 1_000_000u64;
    for ect in [true, false] {
        let mut arena = Arena::with_capacity(2000);
        let mut q = ClassQueue::new(flows(16), 1514, 2000, u64::MAX, Some(aqm));
        // A standing queue: 1000 frames queued at 0, one served per ms.
        for i in 0..1000u32 {
            let d = Dequeued {
                ect,
                ..frame(i, 1000)
            };
            q.enqueue(&mut arena, d, 1, 0, 0, &mut no_overflow).unwrap();
        }
        let (mut marked, mut dropped) = (0, 0);
        for t in 0..500u64 {
            match q.pop(&mut arena, (10 + t) * ms) {
                Some(Popped::Deliver(_, ce)) => marked += usize::from(ce),
                Some(Popped::AqmDrop(_)) => dropped += 1,
                None => break,
            }
        }
        if ect {
            assert!(
                marked > 5 && dropped == 0,
                "marked {marked} dropped {dropped}"
            );
            assert_eq!(q.counters().ecn_marked, marked as u64);
        } else {
            assert!(
                marked == 0 && dropped > 5,
                "marked {marked} dropped {dropped}"
            );
        }
    }
}

#[test]
fn under_host_isolation_a_collision_shares_a_queue_of_the_same_host() {
    let sharing = Sharing {
        queues: 8,
        host_isolation: true,
    };
    let mut arena = Arena::with_capacity(64);
    let mut q = ClassQueue::new(sharing, 1514, 64, u64::MAX, None);
    // Host 1 fills 7 of the 8 queues of the only set with 4 frames each, host 2 the last one.
    for i in 0..28u64 {
        let flow = i % 7;
        q.enqueue(
            &mut arena,
            frame(100 + i, 1000),
            flow << 40,
            1,
            0,
            &mut no_overflow,
        )
        .unwrap();
    }
    q.enqueue(&mut arena, frame(7, 1000), 7 << 40, 2, 0, &mut no_overflow)
        .unwrap();
    // Another flow of host 2 collides: it must ride in host 2's queue, served in host 2's
    // turns, not behind a queue of host 1's.
    q.enqueue(&mut arena, frame(8, 1000), 8 << 40, 2, 0, &mut no_overflow)
        .unwrap();
    assert_eq!(q.counters().flow_collisions, 1);
    let out = items(&mut q, &mut arena);
    let pos8 = out.iter().position(|&i| i == 8).unwrap();
    assert!(pos8 < 6, "{out:?}");
}

#[test]
fn a_queue_costs_what_the_docs_say() {
    // DEFAULT_QUEUES's comment and docs/config.md quote these sizes.
    let per_queue = std::mem::size_of::<FlowQueue>()
        + std::mem::size_of::<Cobalt>()
        + std::mem::size_of::<u32>();
    assert_eq!(per_queue, 80);
    assert_eq!(std::mem::size_of::<Host>() + std::mem::size_of::<u32>(), 32);
    let sharing = |host_isolation| Sharing {
        queues: DEFAULT_QUEUES,
        host_isolation,
    };
    // 4096 queues with their group bounds and emptiness bits: about 328 KB, 131 KB more for
    // hosts.
    let shared = ClassQueue::table_bytes(sharing(false));
    assert_eq!(shared / 1000, 328);
    assert_eq!(
        (ClassQueue::table_bytes(sharing(true)) - shared) / 1000,
        131
    );
}

#[test]
fn the_emptiness_bits_follow_the_queues() {
    // Random arrivals (some overflowing), departures and AQM drops on a small table: after
    // every step each way's bit says whether its queue holds a frame.
    let aqm = AqmParams {
        codel: CodelParams::default(),
        ecn: false,
    };
    let mut arena = Arena::with_capacity(40);
    let mut q = ClassQueue::new(flows(16), 1514, 40, 30_000, Some(aqm));
    let mut x = 12345u64;
    for step in 0..20_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let now = step * 1_000_000;
        if x >> 62 == 0 {
            let _ = q.pop(&mut arena, now);
        } else {
            let flow = (x >> 20) % 40;
            let d = Dequeued {
                enqueued_at: now,
                ..frame(step, 100 + (x >> 40) as u32 % 1400)
            };
            let _ = q.enqueue(&mut arena, d, flow << 33 | flow, 0, now, &mut |_| {});
        }
        for (i, f) in q.flows.iter().enumerate() {
            let bit = q.flow_tags.empty[i / q.flow_tags.ways] >> (i % q.flow_tags.ways) & 1;
            assert_eq!(bit == 1, f.head == NIL, "way {i} at step {step}");
        }
    }
}
