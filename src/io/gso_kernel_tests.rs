//! The segmenter against the kernel's own software GSO: a super-frame sent with a vnet header
//! on a veth with TSO turned off is cut by `tcp_gso_segment` before it leaves, and the segments
//! read on the peer must be byte for byte what [`crate::wire::gso::Segmenter`] writes. Needs root, like the other
//! namespace tests.

use super::af_packet::{AfPacket, AfPacketOptions};
use super::test_netns::{have_root, Netns};
use super::{Device, RxMeta, TxFrame, VnetHdr, BATCH, MAX_FRAME};
use crate::wire::gso::tests::{build, Shape, ACK, CWR, ECE, FIN, MAC_A, PSH};
use crate::wire::gso::TcpGso;
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_ECN, GSO_TCPV4, GSO_TCPV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Turn TSO off on `dev` (in the calling thread's namespace) with the legacy ethtool ioctl, as
/// `ethtool -K dev tso off` does, without needing the ethtool binary.
fn tso_off(dev: &str) {
    const ETHTOOL_STSO: u32 = 0x1f;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STSO,
        data: 0,
    };
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: `ifr` names the device and points to an ethtool_value that outlives the call;
    // ETHTOOL_STSO only reads it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) };
    assert!(
        rc == 0,
        "ETHTOOL_STSO on {dev}: {}",
        std::io::Error::last_os_error()
    );
}

fn recv_from(dev: &mut AfPacket, src: [u8; 6], want: usize) -> Vec<(Vec<u8>, RxMeta)> {
    let mut bufs: Vec<Box<[u8]>> = (0..BATCH)
        .map(|_| vec![0u8; MAX_FRAME].into_boxed_slice())
        .collect();
    let mut metas = vec![RxMeta::default(); BATCH];
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < want && Instant::now() < deadline {
        if !dev.wait_readable(Duration::from_millis(20)).unwrap() {
            continue;
        }
        let n = dev.recv_batch(&mut bufs, &mut metas).expect("recv_batch");
        for (b, m) in bufs.iter().zip(&metas).take(n) {
            if m.len >= 12 && b[6..12] == src {
                got.push((b[..m.len].to_vec(), *m));
            }
        }
    }
    got
}

#[test]
fn the_kernel_cuts_super_frames_exactly_as_we_do() {
    if !have_root("the_kernel_cuts_super_frames_exactly_as_we_do") {
        return;
    }
    let ns = Netns::new("gso-kernel");
    ns.veth(true);
    ns.run_up(|| {
        // Without TSO on `a`, validate_xmit_skb cuts super-frames in software.
        tso_off("a");
        let opts = AfPacketOptions {
            promiscuous: true,
            vnet_hdr: true,
            send_only: false,
            ..AfPacketOptions::default()
        };
        let mut tx = AfPacket::open("a", &opts).unwrap();
        let mut rx = AfPacket::open("b", &opts).unwrap();
        let flags = ACK | PSH | FIN | CWR | ECE;
        let shapes = [
            Shape::new(TcpGso::V4, 10 * 1448 + 100, 1448),
            Shape {
                tags: 1,
                ..Shape::new(TcpGso::V4, 5 * 1000 + 1, 1000)
            },
            // IPv4 options, as long as TCP starts before byte 42: on Linux 6.18 an IPv4 super-
            // frame whose TCP header starts at byte 42 or later (IHL 7, or a VLAN tag and
            // IHL 6) sent this way never reaches the peer, while IPv6 ones with TCP at byte 70
            // do (the kernel's reason was not traced); there is nothing to compare with.
            Shape {
                ip_ext: 4,
                ..Shape::new(TcpGso::V4, 3 * 1448, 1448)
            },
            Shape::new(TcpGso::V4, 65_000, 1448),
            Shape::new(TcpGso::V6, 7 * 1428 + 3, 1428),
            Shape {
                tags: 1,
                ..Shape::new(TcpGso::V6, 4 * 1428, 1428)
            },
            Shape {
                ip_ext: 16,
                ..Shape::new(TcpGso::V6, 2 * 1200 + 5, 1200)
            },
            Shape::new(TcpGso::V6, 3333, 333),
        ];
        for s in shapes {
            let s = Shape { flags, ..s };
            let b = build(s);
            let vnet = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: match s.kind {
                    TcpGso::V4 => GSO_TCPV4,
                    TcpGso::V6 => GSO_TCPV6,
                } | GSO_ECN,
                hdr_len: b.hdr_len as u16,
                gso_size: s.gso_size,
                csum_start: b.l4 as u16,
                csum_offset: 16,
            };
            let seg = vnet.segmenter(&b.frame).unwrap();
            let sent = tx
                .send_batch(&[TxFrame {
                    data: &b.frame,
                    vnet,
                }])
                .unwrap();
            assert_eq!(sent, 1);
            let got = recv_from(&mut rx, MAC_A, seg.count());
            assert_eq!(got.len(), seg.count(), "{s:?}: segments received");
            let mut buf = vec![0u8; seg.max_segment_len()];
            for (i, (data, meta)) in got.iter().enumerate() {
                let n = seg.write(i, &mut buf).unwrap();
                assert_eq!(meta.vnet.gso_type, 0, "{s:?} segment {i}: {meta:?}");
                assert_eq!(
                    data.len(),
                    n,
                    "{s:?} segment {i}: length, kernel {:?}",
                    meta.vnet
                );
                if let Some(at) = data.iter().zip(&buf[..n]).position(|(k, o)| k != o) {
                    panic!(
                        "{s:?} segment {i}: first difference at byte {at}: kernel {:#04x}, ours {:#04x} (vnet {:?})",
                        data[at], buf[at], meta.vnet
                    );
                }
                if i == 0 {
                    eprintln!(
                        "{:?}: {} segments, kernel's vnet header on the first: {:?}, ours {:?}",
                        s.kind,
                        seg.count(),
                        meta.vnet,
                        VnetHdr::from(seg.checksum())
                    );
                }
            }
        }
    });
}
