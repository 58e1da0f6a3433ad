//! AF_PACKET on veth pairs, each test in network namespaces of its own (`weir-afp-*-PID`),
//! deleted by a guard even when the test fails. Needs root; without it the tests say so loudly
//! and pass, except under CI=true where they fail.

use super::*;
use std::time::Instant;

use crate::io::test_netns::{have_root, Netns, DST, SRC};

fn plain() -> AfPacketOptions {
    AfPacketOptions::default()
}

/// The crossing tests run once per receive mode (in the same namespace, sockets reopened).
const MODES: [RxMode; 3] = [RxMode::Mmsg, RxMode::Ring, RxMode::RingV2];

fn bufs(n: usize, size: usize) -> (Vec<Box<[u8]>>, Vec<RxMeta>) {
    (
        (0..n).map(|_| vec![0u8; size].into_boxed_slice()).collect(),
        vec![RxMeta::default(); n],
    )
}

/// An Ethernet frame of `len` bytes (>= 14): our MACs, a local experimental EtherType, then
/// the sequence number and a pattern.
fn frame(seq: u16, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u8).wrapping_mul(31) ^ seq as u8);
    }
    f.truncate(len);
    f
}

fn vlan_frame(seq: u16) -> Vec<u8> {
    let mut f = frame(seq, 100);
    // 802.1Q tag, VID 42, then the inner EtherType.
    f.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
    f
}

fn arp_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[198, 18, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[198, 18, 0, 2]);
    f
}

fn send_all(dev: &mut AfPacket, frames: &[Vec<u8>], vnet: VnetHdr) {
    let tx: Vec<TxFrame> = frames.iter().map(|d| TxFrame { data: d, vnet }).collect();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while sent < tx.len() {
        assert!(
            Instant::now() < deadline,
            "sent only {sent} of {}",
            tx.len()
        );
        sent += dev.send_batch(&tx[sent..]).expect("send_batch");
    }
    assert_eq!(dev.tx_refused(), 0);
}

/// Receive frames from our source MAC until `want` arrived or `limit` passes.
fn recv_ours(
    dev: &mut AfPacket,
    want: usize,
    buf_size: usize,
    limit: Duration,
) -> Vec<(Vec<u8>, RxMeta)> {
    let (mut b, mut m) = bufs(BATCH, buf_size);
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while got.len() < want && Instant::now() < deadline {
        if !dev.wait_readable(Duration::from_millis(20)).unwrap() {
            continue;
        }
        let n = dev.recv_batch(&mut b, &mut m).expect("recv_batch");
        for i in 0..n {
            let data = b[i][..m[i].len].to_vec();
            if data.len() >= 12 && data[6..12] == SRC {
                got.push((data, m[i]));
            }
        }
    }
    got
}

#[test]
fn missing_and_down_interfaces_are_named() {
    if !have_root("missing_and_down_interfaces_are_named") {
        return;
    }
    let ns = Netns::new("afp-errs");
    ns.veth(false);
    ns.run(|| {
        let err = AfPacket::open("eth9", &plain()).err().expect("eth9 opened");
        let msg = err.to_string();
        match &err {
            OpenError::Netdev(NetdevError::NoSuchInterface { name, known }) => {
                assert_eq!(name, "eth9");
                for k in ["lo", "a", "b"] {
                    assert!(known.iter().any(|n| n == k), "{known:?}");
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(
            msg.contains("no interface `eth9`; interfaces here: "),
            "{msg}"
        );

        let err = AfPacket::open("a", &plain()).err().expect("down a opened");
        assert!(
            matches!(&err, OpenError::Down { name } if name == "a"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "interface a is down: ip link set a up");
    });
}

#[test]
fn a_batch_crosses_a_veth_intact_in_order_and_never_loops_back() {
    if !have_root("a_batch_crosses_a_veth_intact_in_order_and_never_loops_back") {
        return;
    }
    let ns = Netns::new("afp-batch");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let plain = || AfPacketOptions {
                rx: mode,
                ..plain()
            };
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let mut watch_a = AfPacket::open("a", &plain()).unwrap();
            let mut rx = AfPacket::open(
                "b",
                &AfPacketOptions {
                    promiscuous: true,
                    vnet_hdr: false,
                    send_only: false,
                    rx: mode,
                    fanout: None,
                    filter: None,
                },
            )
            .unwrap();
            assert!(!tx.offloads());

            let sizes = [14, 60, 64, 128, 512, 1000, 1500, 1514];
            let mut frames: Vec<Vec<u8>> = (0..98u16)
                .map(|i| frame(i, sizes[usize::from(i) % sizes.len()]))
                .collect();
            frames.insert(10, vlan_frame(1000));
            frames.insert(50, arp_frame());
            assert_eq!(frames.len(), 100);
            assert!(frames.iter().any(|f| f.len() == 1514));

            send_all(&mut tx, &frames, VnetHdr::NONE);
            let got = recv_ours(&mut rx, 100, MAX_FRAME, Duration::from_secs(2));
            assert_eq!(got.len(), 100);
            for (i, ((data, meta), sent)) in got.iter().zip(&frames).enumerate() {
                assert!(!meta.truncated, "frame {i}");
                assert_eq!(meta.vnet, VnetHdr::NONE);
                assert_eq!(data, sent, "frame {i} differs");
            }
            // Nothing more for B, and nothing at all on A's sockets (their own transmissions).
            assert!(recv_ours(&mut rx, 1, MAX_FRAME, Duration::from_millis(100)).is_empty());
            assert!(recv_ours(&mut watch_a, 1, MAX_FRAME, Duration::from_millis(100)).is_empty());
            assert!(recv_ours(&mut tx, 1, MAX_FRAME, Duration::from_millis(50)).is_empty());
        }
    });
}

#[test]
fn a_send_only_socket_sends_but_never_receives() {
    if !have_root("a_send_only_socket_sends_but_never_receives") {
        return;
    }
    let ns = Netns::new("afp-sendonly");
    ns.veth(true);
    ns.run_up(|| {
        let send_only = AfPacketOptions {
            send_only: true,
            ..plain()
        };
        let mut tx = AfPacket::open("a", &send_only).unwrap();
        let mut quiet_b = AfPacket::open("b", &send_only).unwrap();
        let mut rx = AfPacket::open("b", &plain()).unwrap();
        let frames: Vec<Vec<u8>> = (0..20u16).map(|i| frame(i, 200)).collect();
        send_all(&mut tx, &frames, VnetHdr::NONE);
        let got = recv_ours(&mut rx, 20, MAX_FRAME, Duration::from_secs(2));
        assert_eq!(got.len(), 20, "the send-only socket's frames arrive");
        assert!(recv_ours(&mut quiet_b, 1, MAX_FRAME, Duration::from_millis(100)).is_empty());
    });
}

#[test]
fn a_jumbo_frame_passes_when_the_mtu_allows_and_is_refused_when_not() {
    if !have_root("a_jumbo_frame_passes_when_the_mtu_allows_and_is_refused_when_not") {
        return;
    }
    let ns = Netns::new("afp-jumbo");
    ns.veth(true);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let jumbo = frame(7, 9000);
        // MTU 1500: the kernel refuses it; the frame is taken and counted, not retried.
        let n = tx
            .send_batch(&[TxFrame {
                data: &jumbo,
                vnet: VnetHdr::NONE,
            }])
            .unwrap();
        assert_eq!((n, tx.tx_refused()), (1, 1));
    });
    ns.ip(&["link", "set", "dev", "a", "mtu", "9000"]);
    ns.ip(&["link", "set", "dev", "b", "mtu", "9000"]);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let plain = || AfPacketOptions {
                rx: mode,
                ..plain()
            };
            assert_eq!(netdev::interface_info("b").unwrap().mtu, 9000);
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let mut rx = AfPacket::open("b", &plain()).unwrap();
            let jumbo = frame(7, 9000);
            send_all(&mut tx, std::slice::from_ref(&jumbo), VnetHdr::NONE);
            let got = recv_ours(&mut rx, 1, MAX_FRAME, Duration::from_secs(2));
            assert_eq!(got.len(), 1);
            assert!(!got[0].1.truncated);
            assert_eq!(got[0].0, jumbo);
        }
    });
}

#[test]
fn frames_longer_than_the_buffer_are_reported_truncated() {
    if !have_root("frames_longer_than_the_buffer_are_reported_truncated") {
        return;
    }
    let ns = Netns::new("afp-trunc");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let plain = || AfPacketOptions {
                rx: mode,
                ..plain()
            };
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let mut rx = AfPacket::open("b", &plain()).unwrap();
            let frames = vec![frame(1, 1000), frame(2, 100), frame(3, 1514)];
            send_all(&mut tx, &frames, VnetHdr::NONE);
            let got = recv_ours(&mut rx, 3, 100, Duration::from_secs(2));
            assert_eq!(got.len(), 3);
            for ((data, meta), sent) in got.iter().zip(&frames) {
                assert_eq!(meta.len, 100);
                assert_eq!(meta.truncated, sent.len() > 100, "{meta:?}");
                assert_eq!(data[..], sent[..100]);
            }
        }
    });
}

#[test]
fn vlan_tags_taken_out_by_the_kernel_are_put_back_even_when_truncated() {
    if !have_root("vlan_tags_taken_out_by_the_kernel_are_put_back_even_when_truncated") {
        return;
    }
    let ns = Netns::new("afp-vlan");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let plain = || AfPacketOptions {
                rx: mode,
                ..plain()
            };
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let mut rx = AfPacket::open("b", &plain()).unwrap();
            let tagged = vlan_frame(9); // 104 bytes
            let len = tagged.len();
            // Buffer sizes: roomy, exact, 2 short (tag fits, tail lost), tiny (inside the MACs).
            for cap in [MAX_FRAME, len, len - 2, 50, 14, 8] {
                send_all(&mut tx, std::slice::from_ref(&tagged), VnetHdr::NONE);
                let (mut b, mut m) = bufs(1, cap);
                let deadline = Instant::now() + Duration::from_secs(2);
                let n = loop {
                    assert!(Instant::now() < deadline, "nothing received (cap {cap})");
                    rx.wait_readable(Duration::from_millis(20)).unwrap();
                    let n = rx.recv_batch(&mut b, &mut m).unwrap();
                    if n > 0 {
                        break n;
                    }
                };
                assert_eq!(n, 1);
                let want = len.min(cap);
                assert_eq!(m[0].len, want, "cap {cap}");
                assert_eq!(m[0].truncated, cap < len, "cap {cap}");
                assert_eq!(b[0][..want], tagged[..want], "cap {cap}");
            }
        }
    });
}

#[test]
fn frames_of_other_interfaces_are_never_received() {
    if !have_root("frames_of_other_interfaces_are_never_received") {
        return;
    }
    let ns = Netns::new("afp-iso");
    ns.veth(true);
    ns.ip(&[
        "link", "add", "name", "c", "type", "veth", "peer", "name", "d",
    ]);
    ns.ip(&["link", "set", "dev", "c", "up"]);
    ns.ip(&["link", "set", "dev", "d", "up"]);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let plain = || AfPacketOptions {
                rx: mode,
                ..plain()
            };
            // Opened while other traffic is flowing: nothing of it may show up on b.
            let mut other = AfPacket::open("c", &plain()).unwrap();
            let noise: Vec<Vec<u8>> = (0..50u16).map(|i| frame(500 + i, 64)).collect();
            send_all(&mut other, &noise, VnetHdr::NONE);
            let mut rx = AfPacket::open("b", &plain()).unwrap();
            send_all(&mut other, &noise, VnetHdr::NONE);
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let wanted: Vec<Vec<u8>> = (0..5u16).map(|i| frame(i, 64)).collect();
            send_all(&mut tx, &wanted, VnetHdr::NONE);
            send_all(&mut other, &noise, VnetHdr::NONE);
            let got = recv_ours(&mut rx, 200, MAX_FRAME, Duration::from_millis(300));
            let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
            assert_eq!(got, wanted);
        }
    });
}

#[test]
fn refused_frames_are_counted_and_do_not_stall_the_batch() {
    if !have_root("refused_frames_are_counted_and_do_not_stall_the_batch") {
        return;
    }
    let ns = Netns::new("afp-refuse");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let plain = || AfPacketOptions {
                rx: mode,
                ..plain()
            };
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let mut rx = AfPacket::open("b", &plain()).unwrap();
            let short = vec![0u8; 5];
            let long = frame(3, 3000);
            let good = [frame(1, 60), frame(2, 60), frame(4, 60)];
            let batch = [
                TxFrame {
                    data: &good[0],
                    vnet: VnetHdr::NONE,
                },
                TxFrame {
                    data: &short,
                    vnet: VnetHdr::NONE,
                },
                TxFrame {
                    data: &good[1],
                    vnet: VnetHdr::NONE,
                },
                TxFrame {
                    data: &long,
                    vnet: VnetHdr::NONE,
                },
                TxFrame {
                    data: &good[2],
                    vnet: VnetHdr::NONE,
                },
            ];
            assert_eq!(tx.send_batch(&batch).unwrap(), 5);
            assert_eq!(tx.tx_refused(), 2);
            let got = recv_ours(&mut rx, 3, MAX_FRAME, Duration::from_secs(2));
            let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
            assert_eq!(got, good);
        }
    });
}

#[test]
fn with_vnet_headers_a_plain_frame_stays_plain() {
    if !have_root("with_vnet_headers_a_plain_frame_stays_plain") {
        return;
    }
    let ns = Netns::new("afp-vnet");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let opts = AfPacketOptions {
                promiscuous: false,
                vnet_hdr: true,
                send_only: false,
                rx: mode,
                fanout: None,
                filter: None,
            };
            let mut tx = AfPacket::open("a", &opts).unwrap();
            let mut rx = AfPacket::open("b", &opts).unwrap();
            assert!(rx.offloads());
            let frames = vec![frame(1, 60), frame(2, 1514), vlan_frame(3)];
            send_all(&mut tx, &frames, VnetHdr::NONE);
            let got = recv_ours(&mut rx, 3, MAX_FRAME, Duration::from_secs(2));
            assert_eq!(got.len(), 3);
            for ((data, meta), sent) in got.iter().zip(&frames) {
                assert_eq!(meta.vnet.gso_type, crate::wire::vnet::GSO_NONE, "{meta:?}");
                assert_eq!(meta.vnet.gso_size, 0, "{meta:?}");
                assert!(!meta.truncated);
                assert_eq!(meta.len, sent.len());
                assert_eq!(data, sent);
                eprintln!(
                    "vnet header received on veth for a plain frame: {:?}",
                    meta.vnet
                );
            }
        }
    });
}

/// Ethernet + IPv4 + TCP, `payload` bytes after the headers (54 bytes), checksum left to
/// whoever segments it.
fn tcp_super_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
    let sum = {
        let mut acc: u32 = 0;
        for c in f[14..34].chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    };
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    // TCP: ports 40000 -> 5201, seq 1, ack 0, data offset 5, ACK|PSH, window, csum 0.
    f.extend_from_slice(&[
        0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
    ]);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend((0..payload).map(|i| i as u8));
    f
}

#[test]
fn with_vnet_headers_a_gso_super_frame_crosses_whole() {
    if !have_root("with_vnet_headers_a_gso_super_frame_crosses_whole") {
        return;
    }
    let ns = Netns::new("afp-gso");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let opts = AfPacketOptions {
                promiscuous: false,
                vnet_hdr: true,
                send_only: false,
                rx: mode,
                fanout: None,
                filter: None,
            };
            let mut tx = AfPacket::open("a", &opts).unwrap();
            let mut rx = AfPacket::open("b", &opts).unwrap();
            let sf = tcp_super_frame(10 * 1448);
            let hdr = VnetHdr::TCPV4_1448;
            send_all(&mut tx, std::slice::from_ref(&sf), hdr);
            let got = recv_ours(&mut rx, 1, MAX_FRAME, Duration::from_secs(2));
            assert_eq!(got.len(), 1);
            let (data, meta) = &got[0];
            eprintln!(
                "GSO frame of {} bytes received with {:?}",
                meta.len, meta.vnet
            );
            assert_eq!(meta.len, sf.len());
            assert!(!meta.truncated);
            assert_eq!(meta.vnet.gso_type, hdr.gso_type);
            assert_eq!(meta.vnet.gso_size, hdr.gso_size);
            assert_eq!(meta.vnet.wire_segments(meta.len).0, 10);
            // The TCP checksum field may hold the pseudo-header sum; everything else is unchanged.
            assert_eq!(data[..50], sf[..50]);
            assert_eq!(data[52..], sf[52..]);
        }
    });
}

#[test]
fn a_gso_super_frame_of_64_kib_crosses_whole_in_either_mode() {
    if !have_root("a_gso_super_frame_of_64_kib_crosses_whole_in_either_mode") {
        return;
    }
    let ns = Netns::new("afp-gso64");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            eprintln!("receive mode {mode:?}");
            let opts = AfPacketOptions {
                vnet_hdr: true,
                rx: mode,
                ..plain()
            };
            let mut tx = AfPacket::open("a", &opts).unwrap();
            let mut rx = AfPacket::open("b", &opts).unwrap();
            // IPv4 total length 65,200: about the largest super-frame TCP builds.
            let sf = tcp_super_frame(45 * 1448);
            let hdr = VnetHdr::TCPV4_1448;
            // Three in a row: with the ring they fill most of one block.
            let frames = vec![sf.clone(), sf.clone(), sf.clone()];
            send_all(&mut tx, &frames, hdr);
            let got = recv_ours(&mut rx, 3, MAX_FRAME, Duration::from_secs(2));
            assert_eq!(got.len(), 3);
            for (data, meta) in &got {
                assert_eq!(meta.len, sf.len());
                assert!(!meta.truncated);
                assert_eq!(meta.vnet.gso_size, 1448);
                assert_eq!(meta.vnet.wire_segments(meta.len).0, 45);
                assert_eq!(data[..50], sf[..50]);
                assert_eq!(data[52..], sf[52..]);
            }
        }
    });
}

/// Small blocks, so that the ring itself cuts a jumbo frame and a few frames fill a block.
const SMALL_RING: ring::RingGeometry = ring::RingGeometry {
    block_size: 4096,
    blocks: 4,
    retire_ms: 1,
};

fn small_v3() -> RingShapes {
    RingShapes {
        v3: SMALL_RING,
        ..RingShapes::DEFAULT
    }
}

/// Eight slots of 2 KiB, two per page: a jumbo frame is cut, the ring wraps every 8 frames.
fn small_v2() -> RingShapes {
    RingShapes {
        v2: ring::SlotGeometry {
            slot_size: 2048,
            slots_per_block: 2,
            blocks: 4,
        },
        ..RingShapes::DEFAULT
    }
}

fn v2_opts() -> AfPacketOptions {
    AfPacketOptions {
        rx: RxMode::RingV2,
        ..plain()
    }
}

fn ring_opts() -> AfPacketOptions {
    AfPacketOptions {
        rx: RxMode::Ring,
        ..plain()
    }
}

/// Sends `groups` groups of `per` 500-byte frames (numbered from 100), reading each group
/// before the next is sent, and checks that all arrive whole and in order: the ring's slots or
/// blocks are reused many times over.
fn send_in_groups_and_read_them(tx: &mut AfPacket, rx: &mut AfPacket, groups: u16, per: u16) {
    let mut got = Vec::new();
    for g in 0..groups {
        let group: Vec<Vec<u8>> = (0..per).map(|i| frame(100 + g * per + i, 500)).collect();
        send_all(tx, &group, VnetHdr::NONE);
        got.extend(recv_ours(rx, per.into(), MAX_FRAME, Duration::from_secs(2)));
    }
    assert_eq!(got.len(), usize::from(groups * per));
    for (i, (data, meta)) in got.iter().enumerate() {
        assert!(!meta.truncated);
        assert_eq!(data[..], frame(100 + i as u16, 500)[..], "frame {i}");
    }
}

/// Sends `count` lone frames one at a time, each read before the next; returns, sorted, how long
/// each took from its send to its read (waiting for readability as the bridge does), and prints
/// the median and maximum under `label`.
fn lone_frame_waits(
    label: &str,
    tx: &mut AfPacket,
    rx: &mut AfPacket,
    count: u16,
) -> Vec<Duration> {
    let (mut b, mut m) = bufs(BATCH, MAX_FRAME);
    assert!(!rx.wait_readable(Duration::from_millis(10)).unwrap());
    assert_eq!(rx.recv_batch(&mut b, &mut m).unwrap(), 0);
    let mut waits = Vec::new();
    for i in 0..count {
        let t = Instant::now();
        send_all(tx, &[frame(i, 64)], VnetHdr::NONE);
        assert!(
            rx.wait_readable(Duration::from_millis(500)).unwrap(),
            "frame {i} not readable after 500 ms"
        );
        let n = rx.recv_batch(&mut b, &mut m).unwrap();
        waits.push(t.elapsed());
        assert_eq!(n, 1);
        assert_eq!(b[0][..m[0].len], frame(i, 64)[..]);
        assert_eq!(rx.recv_batch(&mut b, &mut m).unwrap(), 0);
        assert!(!rx.wait_readable(Duration::from_millis(2)).unwrap());
    }
    waits.sort();
    eprintln!(
        "{label}: a lone frame readable after {:?} (median), {:?} (max)",
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    waits
}

/// The tag `/proc/self/maps` gives the mappings of socket `fd`, and how many bytes they span.
fn socket_mappings(fd: i32) -> (String, usize) {
    let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let tag = format!("socket:[{ino}]");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let total = maps
        .lines()
        .filter(|l| l.ends_with(&tag))
        .map(|l| {
            let (range, _) = l.split_once(' ').unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            usize::from_str_radix(hi, 16).unwrap() - usize::from_str_radix(lo, 16).unwrap()
        })
        .sum();
    (tag, total)
}

#[test]
fn a_frame_longer_than_a_ring_block_is_reported_truncated() {
    if !have_root("a_frame_longer_than_a_ring_block_is_reported_truncated") {
        return;
    }
    let ns = Netns::new("afp-ringcut");
    ns.veth(true);
    ns.ip(&["link", "set", "dev", "a", "mtu", "9000"]);
    ns.ip(&["link", "set", "dev", "b", "mtu", "9000"]);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let mut rx = AfPacket::open_with("b", &ring_opts(), small_v3()).unwrap();
        assert_eq!(rx.rx_mode(), RxMode::Ring);
        let frames = vec![frame(1, 9000), frame(2, 1000), vlan_frame(3)];
        send_all(&mut tx, &frames, VnetHdr::NONE);
        let got = recv_ours(&mut rx, 3, MAX_FRAME, Duration::from_secs(2));
        assert_eq!(got.len(), 3);
        let (cut, meta) = &got[0];
        assert!(meta.truncated, "{meta:?}");
        assert!(meta.len > 3000 && meta.len < 4096, "{meta:?}");
        assert_eq!(cut[..], frames[0][..meta.len]);
        for ((data, meta), sent) in got[1..].iter().zip(&frames[1..]) {
            assert!(!meta.truncated);
            assert_eq!(data, sent);
        }
    });
}

#[test]
fn the_ring_wraps_around_many_times_and_a_batch_spans_blocks() {
    if !have_root("the_ring_wraps_around_many_times_and_a_batch_spans_blocks") {
        return;
    }
    let ns = Netns::new("afp-ringwrap");
    ns.veth(true);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let mut rx = AfPacket::open_with("b", &ring_opts(), small_v3()).unwrap();
        // About 6 frames of 500 bytes per 4 KiB block: 12 frames fill 2 of the 4 blocks, and
        // one call returns all of them.
        let first: Vec<Vec<u8>> = (0..12u16).map(|i| frame(i, 500)).collect();
        send_all(&mut tx, &first, VnetHdr::NONE);
        std::thread::sleep(Duration::from_millis(20));
        let (mut b, mut m) = bufs(BATCH, MAX_FRAME);
        assert!(rx.wait_readable(Duration::from_millis(100)).unwrap());
        let n = rx.recv_batch(&mut b, &mut m).unwrap();
        assert_eq!(n, 12, "one call reads across blocks");
        for (i, sent) in first.iter().enumerate() {
            assert_eq!(b[i][..m[i].len], sent[..]);
        }
        // 300 more in groups of 10, read as they come: the 4 blocks are reused ~20 times.
        send_in_groups_and_read_them(&mut tx, &mut rx, 30, 10);
    });
}

#[test]
fn the_ring_polls_readable_only_when_a_block_is_retired() {
    if !have_root("the_ring_polls_readable_only_when_a_block_is_retired") {
        return;
    }
    let ns = Netns::new("afp-ringpoll");
    ns.veth(true);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let mut rx = AfPacket::open("b", &ring_opts()).unwrap();
        // A lone frame waits for the retire timeout of its block, then polls readable.
        let waits = lone_frame_waits("ring", &mut tx, &mut rx, 20);
        assert!(waits[waits.len() / 2] < Duration::from_millis(50));
    });
}

#[test]
fn the_ring_is_unmapped_when_the_device_is_dropped() {
    if !have_root("the_ring_is_unmapped_when_the_device_is_dropped") {
        return;
    }
    let ns = Netns::new("afp-ringdrop");
    ns.veth(true);
    ns.run_up(|| {
        let rx = AfPacket::open("b", &ring_opts()).unwrap();
        let (tag, mapped) = socket_mappings(rx.poll_fd().unwrap());
        assert_eq!(mapped, RX_RING_BYTES);
        drop(rx);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.contains(&tag), "{maps}");
        // A send-only socket gets no ring whatever the mode.
        let tx = AfPacket::open(
            "a",
            &AfPacketOptions {
                send_only: true,
                ..ring_opts()
            },
        )
        .unwrap();
        assert_eq!(tx.rx_mode(), RxMode::Mmsg);
        assert_eq!(socket_mappings(tx.poll_fd().unwrap()).1, 0);
    });
}

#[test]
fn a_frame_longer_than_a_v2_slot_is_reported_truncated_and_order_is_kept() {
    if !have_root("a_frame_longer_than_a_v2_slot_is_reported_truncated_and_order_is_kept") {
        return;
    }
    let ns = Netns::new("afp-v2cut");
    ns.veth(true);
    ns.ip(&["link", "set", "dev", "a", "mtu", "9000"]);
    ns.ip(&["link", "set", "dev", "b", "mtu", "9000"]);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let mut rx = AfPacket::open_with("b", &v2_opts(), small_v2()).unwrap();
        assert_eq!(rx.rx_mode(), RxMode::RingV2);
        let frames = vec![
            frame(1, 9000),
            frame(2, 1000),
            vlan_frame(3),
            frame(4, 1514),
        ];
        send_all(&mut tx, &frames, VnetHdr::NONE);
        let got = recv_ours(&mut rx, 4, MAX_FRAME, Duration::from_secs(2));
        assert_eq!(got.len(), 4);
        let (cut, meta) = &got[0];
        assert!(meta.truncated, "{meta:?}");
        assert!(meta.len > 1800 && meta.len < 2048, "{meta:?}");
        assert_eq!(cut[..], frames[0][..meta.len]);
        for ((data, meta), sent) in got[1..].iter().zip(&frames[1..]) {
            assert!(!meta.truncated);
            assert_eq!(data, sent);
        }
    });
}

#[test]
fn the_v2_ring_wraps_around_many_times_and_a_batch_reads_every_slot() {
    if !have_root("the_v2_ring_wraps_around_many_times_and_a_batch_reads_every_slot") {
        return;
    }
    let ns = Netns::new("afp-v2wrap");
    ns.veth(true);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let mut rx = AfPacket::open_with("b", &v2_opts(), small_v2()).unwrap();
        // 8 frames fill the 8 slots; one call reads them all; a 9th is dropped by the kernel.
        let first: Vec<Vec<u8>> = (0..9u16).map(|i| frame(i, 500)).collect();
        send_all(&mut tx, &first, VnetHdr::NONE);
        std::thread::sleep(Duration::from_millis(20));
        let (mut b, mut m) = bufs(BATCH, MAX_FRAME);
        assert!(rx.wait_readable(Duration::from_millis(100)).unwrap());
        let n = rx.recv_batch(&mut b, &mut m).unwrap();
        assert_eq!(
            n, 8,
            "one call reads every slot; the 9th frame found the ring full"
        );
        for (i, sent) in first[..8].iter().enumerate() {
            assert_eq!(b[i][..m[i].len], sent[..]);
        }
        assert_eq!(rx.recv_batch(&mut b, &mut m).unwrap(), 0);
        // 300 more in groups of 5, read as they come: the 8 slots are reused ~40 times.
        send_in_groups_and_read_them(&mut tx, &mut rx, 60, 5);
    });
}

#[test]
fn the_v2_ring_polls_readable_as_soon_as_a_frame_is_written() {
    if !have_root("the_v2_ring_polls_readable_as_soon_as_a_frame_is_written") {
        return;
    }
    let ns = Netns::new("afp-v2poll");
    ns.veth(true);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        let mut rx = AfPacket::open("b", &v2_opts()).unwrap();
        let waits = lone_frame_waits("v2 ring", &mut tx, &mut rx, 50);
        // The V3 ring's median is ~0.9 ms (its retire timer); V2 has no timer. veth delivers
        // in the sender's system call, so the frame is there when send returns.
        assert!(waits[waits.len() / 2] < Duration::from_micros(500));
    });
}

#[test]
fn the_v2_ring_is_unmapped_when_the_device_is_dropped() {
    if !have_root("the_v2_ring_is_unmapped_when_the_device_is_dropped") {
        return;
    }
    let ns = Netns::new("afp-v2drop");
    ns.veth(true);
    ns.run_up(|| {
        let rx = AfPacket::open("b", &v2_opts()).unwrap();
        let (tag, mapped) = socket_mappings(rx.poll_fd().unwrap());
        assert_eq!(mapped, RX_SLOT_RING_BYTES);
        drop(rx);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.contains(&tag), "{maps}");
    });
}

/// Ring shapes that no kernel sets up, whatever its memory: blocks of 2 KiB (V2: one 2 KiB
/// slot per block; V3: 2 KiB blocks). A ring block must be a whole number of pages and no
/// Linux page is smaller than 4 KiB: `packet_set_ring` checks `PAGE_ALIGNED(tp_block_size)`
/// before it allocates anything, so `setsockopt PACKET_RX_RING` fails with EINVAL every time.
fn refused_rings() -> RingShapes {
    RingShapes {
        v3: ring::RingGeometry {
            block_size: 2048,
            blocks: 4,
            retire_ms: 1,
        },
        v2: ring::SlotGeometry {
            slot_size: 2048,
            slots_per_block: 1,
            blocks: 8,
        },
    }
}

/// The options `weir run` receives with, in ring mode `rx`.
fn bridge_rx(rx: RxMode) -> AfPacketOptions {
    AfPacketOptions {
        promiscuous: true,
        vnet_hdr: true,
        send_only: false,
        rx,
        fanout: None,
        filter: None,
    }
}

#[test]
fn a_ring_the_kernel_refuses_gives_way_to_recvmmsg_that_receives() {
    if !have_root("a_ring_the_kernel_refuses_gives_way_to_recvmmsg_that_receives") {
        return;
    }
    let ns = Netns::new("afp-fallback");
    ns.veth(true);
    ns.run_up(|| {
        let mut tx = AfPacket::open("a", &plain()).unwrap();
        for (seq, mode) in [(1u16, RxMode::RingV2), (2, RxMode::Ring)] {
            eprintln!("asked for {mode:?}");
            let opened = AfPacket::open_or_fall_back_with(
                "b",
                &bridge_rx(mode),
                refused_rings(),
                IfRingFails::UseMmsg,
            )
            .unwrap();
            let mut rx = opened.device;
            let why = opened.fallback.expect("fell back without saying why");
            assert_eq!(rx.rx_mode(), RxMode::Mmsg);
            assert!(rx.offloads(), "the other options are kept");
            assert_eq!(why.asked, mode);
            assert_eq!(why.name, "b");
            assert_eq!(why.op, "setsockopt PACKET_RX_RING");
            assert_eq!(why.source.raw_os_error(), Some(libc::EINVAL), "{why:?}");
            // The warning weir run prints (after "weir: warning: "): the interface, the step
            // that failed, the kernel's error, and what happens instead.
            let warning = why.to_string();
            assert_eq!(
                warning,
                format!(
                    "b: setsockopt PACKET_RX_RING failed ({}); receiving with recvmmsg instead",
                    io::Error::from_raw_os_error(libc::EINVAL)
                )
            );

            // The recvmmsg socket works: a frame sent on the peer arrives whole.
            let sent = frame(seq, 300);
            send_all(&mut tx, std::slice::from_ref(&sent), VnetHdr::NONE);
            let got = recv_ours(&mut rx, 1, MAX_FRAME, Duration::from_secs(2));
            assert_eq!(got.len(), 1, "no frame through the fallback socket");
            assert!(!got[0].1.truncated);
            assert_eq!(got[0].0, sent);
        }

        // A ring the kernel sets up is kept, and nothing is reported.
        let opened =
            AfPacket::open_or_fall_back("b", &bridge_rx(RxMode::RingV2), IfRingFails::UseMmsg)
                .unwrap();
        assert_eq!(opened.device.rx_mode(), RxMode::RingV2);
        assert!(opened.fallback.is_none());
    });
}

#[test]
fn without_falling_back_a_ring_the_kernel_refuses_is_an_error() {
    if !have_root("without_falling_back_a_ring_the_kernel_refuses_is_an_error") {
        return;
    }
    let ns = Netns::new("afp-nofallback");
    ns.veth(true);
    ns.run(|| {
        for mode in [RxMode::RingV2, RxMode::Ring] {
            let err = AfPacket::open_or_fall_back_with(
                "b",
                &bridge_rx(mode),
                refused_rings(),
                IfRingFails::Error,
            )
            .err()
            .expect("a refused ring opened");
            match &err {
                OpenError::Ring { name, op, source } => {
                    assert_eq!(name, "b");
                    assert_eq!(*op, "setsockopt PACKET_RX_RING");
                    assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
                }
                other => panic!("{mode:?}: {other:?}"),
            }
            assert_eq!(
                err.to_string(),
                format!(
                    "setsockopt PACKET_RX_RING on b failed: {}",
                    io::Error::from_raw_os_error(libc::EINVAL)
                )
            );
            // What AfPacket::open does with these shapes.
            let err = AfPacket::open_with("b", &bridge_rx(mode), refused_rings())
                .err()
                .expect("a refused ring opened");
            assert!(matches!(err, OpenError::Ring { .. }), "{err:?}");
        }
    });
}

#[test]
fn falling_back_never_hides_an_error_that_is_not_the_ring() {
    if !have_root("falling_back_never_hides_an_error_that_is_not_the_ring") {
        return;
    }
    let fall_back = |ifname: &str| {
        AfPacket::open_or_fall_back_with(
            ifname,
            &bridge_rx(RxMode::RingV2),
            refused_rings(),
            IfRingFails::UseMmsg,
        )
        .err()
    };
    let ns = Netns::new("afp-fallback-errs");
    ns.veth(false);
    ns.run(move || {
        let err = fall_back("a").expect("down a opened");
        assert!(
            matches!(&err, OpenError::Down { name } if name == "a"),
            "{err:?}"
        );
        let err = fall_back("eth9").expect("eth9 opened");
        assert!(
            matches!(&err, OpenError::Netdev(NetdevError::NoSuchInterface { .. })),
            "{err:?}"
        );
    });
    std::thread::spawn(move || {
        drop_cap_net_raw_on_this_thread();
        let err = fall_back("lo").expect("opened without CAP_NET_RAW");
        assert!(
            matches!(&err, OpenError::Permission { name, .. } if name == "lo"),
            "{err:?}"
        );
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

/// Drop CAP_NET_RAW (13) from the calling thread's effective set. Capabilities are per
/// thread: call it on a thread of its own.
fn drop_cap_net_raw_on_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and a 2-element data array as capget v3 expects, both live across the
    // call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    data[0].effective &= !(1 << 13);
    // SAFETY: as above; capset with pid 0 changes only the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset");
}

#[test]
fn without_cap_net_raw_the_error_says_what_to_grant() {
    if !have_root("without_cap_net_raw_the_error_says_what_to_grant") {
        return;
    }
    std::thread::spawn(|| {
        drop_cap_net_raw_on_this_thread();
        let err = AfPacket::open("lo", &plain())
            .err()
            .expect("opened without CAP_NET_RAW");
        assert!(
            matches!(&err, OpenError::Permission { name, .. } if name == "lo"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("CAP_NET_RAW"), "{msg}");
        assert!(
            msg.contains("setcap cap_net_raw,cap_net_admin+ep $(which weir)"),
            "{msg}"
        );
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

/// Read everything `dev` holds now: frames until a receive returns none and the socket does not
/// poll readable within 20 ms.
fn drain(dev: &mut AfPacket) -> Vec<Vec<u8>> {
    let (mut b, mut m) = bufs(BATCH, MAX_FRAME);
    let mut got = Vec::new();
    loop {
        let n = dev.recv_batch(&mut b, &mut m).expect("recv_batch");
        got.extend((0..n).map(|i| b[i][..m[i].len].to_vec()));
        if n == 0 && !dev.wait_readable(Duration::from_millis(20)).unwrap() {
            return got;
        }
    }
}

/// Frames sent per round of the kernel-drop test: several times what the small rings (8 V2
/// slots; 4 V3 blocks of 4 KiB, about 25 small frames each) and the smallest socket buffer
/// hold, and well under the veth backlog (`netdev_max_backlog`, 1000), which would drop
/// frames before the socket saw them.
const OVERFLOW_SENT: usize = 300;

#[test]
fn frames_dropped_at_a_full_ring_or_socket_buffer_are_counted_exactly() {
    if !have_root("frames_dropped_at_a_full_ring_or_socket_buffer_are_counted_exactly") {
        return;
    }
    let ns = Netns::new("afp-kdrops");
    ns.veth(true);
    ns.run_up(|| {
        let small = RingShapes {
            v3: SMALL_RING,
            v2: small_v2().v2,
        };
        for mode in MODES {
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let opts = AfPacketOptions {
                rx: mode,
                ..plain()
            };
            let mut rx = AfPacket::open_with("b", &opts, small).unwrap();
            assert_eq!(rx.rx_mode(), mode);
            if mode == RxMode::Mmsg {
                // The kernel raises it to its minimum (a few KiB: a handful of frames).
                rx.set_receive_buffer(1).unwrap();
            }
            assert_eq!(rx.kernel_rx_stats().unwrap(), KernelRxStats::default());
            assert_eq!(rx.kernel_drops(), Some(0));
            let mut dropped_before = 0;
            for round in 0..2u16 {
                // Nobody reads `b` while all of them are sent: the ring or buffer fills, and
                // the kernel drops the rest as they arrive.
                let first = round * OVERFLOW_SENT as u16;
                let sent: Vec<Vec<u8>> = (0..OVERFLOW_SENT as u16)
                    .map(|i| frame(first + i, 64))
                    .collect();
                send_all(&mut tx, &sent, VnetHdr::NONE);
                // Time for the V3 ring to retire a block left open.
                std::thread::sleep(Duration::from_millis(20));
                let got = drain(&mut rx);
                let st = rx.kernel_rx_stats().unwrap();
                let dropped = st.dropped - dropped_before;
                dropped_before = st.dropped;
                eprintln!(
                    "{mode:?} round {round}: sent {}, read {}, kernel dropped {dropped} \
                     (totals: arrived {}, dropped {}, ring freezes {})",
                    sent.len(),
                    got.len(),
                    st.arrived,
                    st.dropped,
                    st.ring_freezes
                );
                // What could be read is the first frames sent, in order; the kernel dropped
                // every one after them, and counted each.
                assert!(dropped > 0, "{mode:?}: nothing dropped");
                assert_eq!(got[..], sent[..got.len()], "{mode:?}: not the first frames");
                assert_eq!(
                    got.len() as u64 + dropped,
                    sent.len() as u64,
                    "{mode:?} round {round}: read + dropped != sent"
                );
                // The kernel's tp_packets counts every frame that reached the socket, dropped
                // or not; summed over the reads (each resets it).
                assert_eq!(st.arrived, (u64::from(round) + 1) * OVERFLOW_SENT as u64);
                if mode == RxMode::Ring {
                    // At least one freeze per round: the ring was full each time.
                    assert!(st.ring_freezes > u64::from(round), "{st:?}");
                } else {
                    assert_eq!(st.ring_freezes, 0);
                }
                // Reading again at once adds nothing: the read reset the kernel's counters and
                // the totals kept them.
                assert_eq!(rx.kernel_rx_stats().unwrap(), st);
                assert_eq!(rx.kernel_drops(), Some(st.dropped));
            }
            // The sending socket received nothing, so it counted nothing.
            assert_eq!(tx.kernel_rx_stats().unwrap(), KernelRxStats::default());
        }
    });
}

#[test]
fn af_packet_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<AfPacket>();
}

#[test]
fn a_fanout_group_keeps_each_flow_on_one_socket_and_in_order() {
    if !have_root("a_fanout_group_keeps_each_flow_on_one_socket_and_in_order") {
        return;
    }
    let ns = Netns::new("afp-fanout");
    ns.veth(true);
    ns.run_up(|| {
        for mode in MODES {
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let worker = |fanout| {
                AfPacket::open(
                    "b",
                    &AfPacketOptions {
                        promiscuous: true,
                        rx: mode,
                        fanout: Some(fanout),
                        ..plain()
                    },
                )
                .unwrap()
            };
            // The first makes a group (the kernel picks its id), the second joins it.
            let first = worker(Fanout::New);
            let id = first.fanout_group().unwrap().expect("a member of a group");
            let mut workers = [first, worker(Fanout::Join(id))];
            assert_eq!(workers[1].fanout_group().unwrap(), Some(id), "{mode:?}");
            // Another new group while this one lives gets another id; a socket outside any
            // group says so.
            let other = worker(Fanout::New);
            assert_ne!(other.fanout_group().unwrap(), Some(id), "{mode:?}");
            drop(other);
            assert_eq!(tx.fanout_group().unwrap(), None);
            // 64 UDP flows, 4 frames each, the rounds one after another: the payload says
            // which flow and which round.
            let mut frames = Vec::new();
            for round in 0..4u8 {
                for flow in 0..64u8 {
                    let mut f = Vec::new();
                    etherparse::PacketBuilder::ethernet2(SRC, DST)
                        .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
                        .udp(1000 + u16::from(flow), 9)
                        .write(&mut f, &[flow, round])
                        .unwrap();
                    frames.push(f);
                }
            }
            send_all(&mut tx, &frames, VnetHdr::NONE);
            // Frames sent on b itself (flow 200) must not come back to the group: a bridge
            // would forward what it sends.
            let mut out = AfPacket::open("b", &plain()).unwrap();
            let outgoing: Vec<Vec<u8>> = (0..16u8)
                .map(|round| {
                    let mut f = Vec::new();
                    // The source address of frames from a (what recv_ours keeps).
                    etherparse::PacketBuilder::ethernet2(SRC, DST)
                        .ipv4([198, 19, 0, 1], [198, 18, 0, 1], 64)
                        .udp(9, 1200)
                        .write(&mut f, &[200, round])
                        .unwrap();
                    f
                })
                .collect();
            send_all(&mut out, &outgoing, VnetHdr::NONE);
            let got: Vec<Vec<(u8, u8)>> = workers
                .iter_mut()
                .map(|w| {
                    recv_ours(w, frames.len(), MAX_FRAME, Duration::from_millis(500))
                        .into_iter()
                        .map(|(data, _)| (data[data.len() - 2], data[data.len() - 1]))
                        .collect()
                })
                .collect();
            assert!(
                got.iter().flatten().all(|&(f, _)| f != 200),
                "{mode:?}: a frame sent on the interface came back to the group"
            );
            assert_eq!(
                got[0].len() + got[1].len(),
                256,
                "{mode:?}: each frame once"
            );
            assert!(
                !got[0].is_empty() && !got[1].is_empty(),
                "{mode:?}: 64 flows spread over both ({} and {})",
                got[0].len(),
                got[1].len()
            );
            for flow in 0..64u8 {
                let on: Vec<usize> = (0..2)
                    .filter(|&w| got[w].iter().any(|&(f, _)| f == flow))
                    .collect();
                assert_eq!(on.len(), 1, "{mode:?}: flow {flow} on workers {on:?}");
                let rounds: Vec<u8> = got[on[0]]
                    .iter()
                    .filter(|&&(f, _)| f == flow)
                    .map(|&(_, r)| r)
                    .collect();
                assert_eq!(rounds, [0, 1, 2, 3], "{mode:?}: flow {flow} in order");
            }
            eprintln!("{mode:?}: {} and {} frames", got[0].len(), got[1].len());
        }
    });
}

#[test]
fn complementary_filters_split_the_frames_each_to_one_socket() {
    if !have_root("complementary_filters_split_the_frames_each_to_one_socket") {
        return;
    }
    use crate::classify::rule::{bpf, Rule};
    let express = Rule::parse("dscp ef or icmp").unwrap();
    let lanes = [true, false].map(|matched| {
        std::sync::Arc::<[bpf::BpfInsn]>::from(
            bpf::filter_with(&[&express], true, matched).unwrap(),
        )
    });
    let ns = Netns::new("afp-filter");
    ns.veth(true);
    ns.run_up(move || {
        for mode in MODES {
            let mut tx = AfPacket::open("a", &plain()).unwrap();
            let open = |lane: usize| {
                AfPacket::open(
                    "b",
                    &AfPacketOptions {
                        promiscuous: true,
                        rx: mode,
                        filter: Some(std::sync::Arc::clone(&lanes[lane])),
                        ..plain()
                    },
                )
                .unwrap()
            };
            let mut socks = [open(0), open(1)];
            // 200 UDP frames, every fourth with DSCP EF, and a cut one (14 bytes of IPv4).
            let mut frames = Vec::new();
            for i in 0..200u8 {
                let mut f = Vec::new();
                etherparse::PacketBuilder::ethernet2(SRC, DST)
                    .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
                    .udp(1000, 9)
                    .write(&mut f, &[i, 0])
                    .unwrap();
                if i % 4 == 0 {
                    f[15] = 0xb8;
                }
                frames.push(f);
            }
            let mut cut = frames[1][..30].to_vec();
            cut[29] = 200;
            frames.push(cut);
            send_all(&mut tx, &frames, VnetHdr::NONE);
            let got: Vec<Vec<Vec<u8>>> = socks
                .iter_mut()
                .map(|s| {
                    recv_ours(s, frames.len(), MAX_FRAME, Duration::from_millis(400))
                        .into_iter()
                        .map(|(d, _)| d)
                        .collect()
                })
                .collect();
            assert_eq!(
                got[0].len(),
                50,
                "{mode:?}: the EF frames to the express socket"
            );
            assert!(got[0].iter().all(|f| f[15] == 0xb8), "{mode:?}");
            assert_eq!(got[1].len(), 151, "{mode:?}: the rest, the cut frame too");
            assert!(
                got[1].iter().all(|f| f.len() < 16 || f[15] != 0xb8),
                "{mode:?}"
            );
        }
    });
}
