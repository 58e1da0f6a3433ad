//! Tests of the segmenter: byte-built super-frames cut and checked field by field, against our
//! parser, against etherparse, and against checksums computed here word by word; then errors,
//! and property tests (valid shapes of any size, mutated frames, arbitrary bytes).

use super::*;
use crate::wire::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use crate::wire::{parse, L3};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use proptest::prelude::*;

pub(crate) use crate::wire::tests::MAC_A;
use crate::wire::tests::{MAC_B, V4_A, V4_B, V6_A, V6_B};
const SPORT: u16 = 40_000;
const DPORT: u16 = 443;
/// Close to the wrap, so long frames wrap the sequence number.
const SEQ: u32 = 0xffff_c000;
/// Wraps after one segment.
const IP_ID: u16 = 0xffff;

pub(crate) const FIN: u8 = 0x01;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;
pub(crate) const ECE: u8 = 0x40;
pub(crate) const CWR: u8 = 0x80;

// ---------------------------------------------------------------------------------------------
// Reference arithmetic, written the slow obvious way (16-bit words), apart from the module's.

fn ref_sum(parts: &[&[u8]]) -> u32 {
    let mut sum = 0u32;
    for part in parts {
        for w in part.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            let lo = w.get(1).map_or(0, |&b| u32::from(b));
            sum += hi | lo;
        }
    }
    sum
}

fn ref_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Folded, not complemented, pseudo-header sum: what Linux leaves in the field for
/// CHECKSUM_PARTIAL.
fn ref_pseudo(src: &[u8], dst: &[u8], tcp_len: usize) -> u16 {
    let len = (tcp_len as u32).to_be_bytes();
    ref_fold(ref_sum(&[src, dst, &[0, 6], &len]))
}

// ---------------------------------------------------------------------------------------------
// Super-frame builder.

#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) kind: TcpGso,
    /// VLAN tags in front of the IP header (0..=2).
    pub(crate) tags: usize,
    /// IPv4 options (bytes, multiple of 4) or one IPv6 destination-options header (bytes,
    /// multiple of 8, 0 = none).
    pub(crate) ip_ext: usize,
    pub(crate) payload: usize,
    pub(crate) gso_size: u16,
    pub(crate) flags: u8,
    pub(crate) needs_csum: bool,
}

impl Shape {
    pub(crate) fn new(kind: TcpGso, payload: usize, gso_size: u16) -> Shape {
        Shape {
            kind,
            tags: 0,
            ip_ext: 0,
            payload,
            gso_size,
            flags: ACK | PSH | FIN | CWR | ECE,
            needs_csum: true,
        }
    }
}

pub(crate) struct Built {
    pub(crate) frame: Vec<u8>,
    pub(crate) params: GsoParams,
    pub(crate) l3: usize,
    pub(crate) l4: usize,
    pub(crate) hdr_len: usize,
}

fn payload_byte(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 8)) as u8
}

/// A super-frame from `MAC_A`, checksum partial or complete as `s.needs_csum` says.
pub(crate) fn build(s: Shape) -> Built {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    let tpids = [0x88a8u16, 0x8100];
    for (k, tpid) in tpids[2 - s.tags..].iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(0x2000u16 | (100 + k as u16)).to_be_bytes());
    }
    let l3 = f.len() + 2;
    let tcp_len = 32 + s.payload;
    match s.kind {
        TcpGso::V4 => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let ihl = 20 + s.ip_ext;
            let total = u16::try_from(ihl + tcp_len).unwrap_or(0);
            f.push(0x40 | (ihl / 4) as u8);
            f.push(0x02); // ECT(0)
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&IP_ID.to_be_bytes());
            f.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
            f.extend_from_slice(&[64, 6, 0, 0]);
            f.extend_from_slice(&V4_A);
            f.extend_from_slice(&V4_B);
            // Options: NOPs then end of list, copied as they are.
            f.resize(f.len() + s.ip_ext.saturating_sub(1), 1);
            if s.ip_ext > 0 {
                f.push(0);
            }
            let sum = !ref_fold(ref_sum(&[&f[l3..]]));
            f[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
        }
        TcpGso::V6 => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let plen = u16::try_from(s.ip_ext + tcp_len).unwrap_or(0);
            f.extend_from_slice(&[0x60, 0x0a, 0xbc, 0xde]); // flow label
            f.extend_from_slice(&plen.to_be_bytes());
            f.push(if s.ip_ext > 0 { 60 } else { 6 });
            f.push(64);
            f.extend_from_slice(&V6_A);
            f.extend_from_slice(&V6_B);
            if s.ip_ext > 0 {
                // Destination options: next = TCP, length, PadN filling the rest.
                f.extend_from_slice(&[6, (s.ip_ext / 8 - 1) as u8, 1, (s.ip_ext - 4) as u8]);
                f.resize(f.len() + s.ip_ext - 4, 0);
            }
        }
    }
    let l4 = f.len();
    f.extend_from_slice(&SPORT.to_be_bytes());
    f.extend_from_slice(&DPORT.to_be_bytes());
    f.extend_from_slice(&SEQ.to_be_bytes());
    f.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    f.push(8 << 4); // 32-byte header
    f.push(s.flags);
    f.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0]); // window, checksum, urgent pointer
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]); // NOP NOP TS
    let hdr_len = f.len();
    f.extend((0..s.payload).map(payload_byte));

    let (src, dst) = addrs(&f, s.kind, l3);
    let pseudo = ref_pseudo(src, dst, tcp_len);
    let csum = if s.needs_csum {
        pseudo
    } else {
        !ref_fold(u32::from(pseudo) + ref_sum(&[&f[l4..]]))
    };
    f[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());

    let params = GsoParams {
        kind: s.kind,
        gso_size: s.gso_size,
        csum_start: l4 as u16,
        csum_offset: 16,
        needs_csum: s.needs_csum,
    };
    Built {
        frame: f,
        params,
        l3,
        l4,
        hdr_len,
    }
}

fn addrs(f: &[u8], kind: TcpGso, l3: usize) -> (&[u8], &[u8]) {
    match kind {
        TcpGso::V4 => (&f[l3 + 12..l3 + 16], &f[l3 + 16..l3 + 20]),
        TcpGso::V6 => (&f[l3 + 8..l3 + 24], &f[l3 + 24..l3 + 40]),
    }
}

// ---------------------------------------------------------------------------------------------
// The check every test shares: cut `b` and verify every segment.

/// Cut and check everything; returns the segments for further checks.
fn cut_and_check(s: Shape, b: &Built) -> Vec<Vec<u8>> {
    let seg = Segmenter::new(&b.frame, b.params).expect("valid super-frame");
    let gso = usize::from(s.gso_size);
    assert_eq!(seg.count(), s.payload.div_ceil(gso));
    assert_eq!(seg.header_len(), b.hdr_len);
    assert_eq!(seg.max_segment_len(), b.hdr_len + gso.min(s.payload));
    let expect_csum = if s.needs_csum {
        SegmentChecksum::Partial {
            start: b.l4 as u16,
            offset: 16,
        }
    } else {
        SegmentChecksum::Complete
    };
    assert_eq!(seg.checksum(), expect_csum);

    let mut buf = vec![0u8; seg.max_segment_len()];
    let mut out = Vec::new();
    let mut payload = Vec::new();
    for i in 0..seg.count() {
        buf.fill(0xa5);
        let n = seg.write(i, &mut buf).expect("buffer of max_segment_len");
        assert_eq!(Some(n), seg.segment_len(i));
        assert!(n <= b.hdr_len + gso, "segment {i} is {n} bytes");
        let f = &buf[..n];
        let last = i + 1 == seg.count();
        let chunk = &b.frame[b.hdr_len + i * gso..b.hdr_len + (i * gso + gso).min(s.payload)];
        assert_eq!(n, b.hdr_len + chunk.len());

        // Ethernet and VLAN untouched.
        assert_eq!(f[..b.l3], b.frame[..b.l3]);

        // Our parser.
        let v = parse(f);
        assert!(!v.truncated);
        assert_eq!(v.len as usize, n);
        assert_eq!(usize::from(v.vlan_count), s.tags);
        assert_eq!(
            v.l3,
            match s.kind {
                TcpGso::V4 => L3::Ipv4,
                TcpGso::V6 => L3::Ipv6,
            }
        );
        assert_eq!(usize::from(v.l3_offset), b.l3);
        assert_eq!(v.ip_proto, 6);
        assert!(!v.is_fragment);
        assert_eq!((v.src_port, v.dst_port), (SPORT, DPORT));
        let mut flags = s.flags;
        if !last {
            flags &= !(FIN | PSH);
        }
        if i > 0 {
            flags &= !CWR;
        }
        assert_eq!(v.tcp_flags, flags, "segment {i}");

        // etherparse, strict.
        let p = SlicedPacket::from_ethernet(f).expect("etherparse accepts the segment");
        match (&p.net, s.kind) {
            (Some(NetSlice::Ipv4(ip)), TcpGso::V4) => {
                let h = ip.header();
                assert_eq!(usize::from(h.total_len()), n - b.l3);
                assert_eq!(h.identification(), IP_ID.wrapping_add(i as u16));
                assert!(h.dont_fragment());
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                assert_eq!(h.options(), &b.frame[b.l3 + 20..b.l4]);
            }
            (Some(NetSlice::Ipv6(ip)), TcpGso::V6) => {
                let h = ip.header();
                assert_eq!(usize::from(h.payload_length()), n - b.l3 - 40);
                assert_eq!(h.flow_label().value(), 0xabcde);
                assert_eq!(f[b.l3 + 40..b.l4], b.frame[b.l3 + 40..b.l4]);
            }
            other => panic!("unexpected network layer {other:?}"),
        }
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("no TCP in segment {i}");
        };
        assert_eq!(tcp.payload(), chunk);
        assert_eq!(
            tcp.sequence_number(),
            SEQ.wrapping_add((i * gso) as u32),
            "segment {i}"
        );
        assert_eq!(tcp.acknowledgment_number(), 0x0102_0304);
        assert_eq!(tcp.options(), &b.frame[b.l4 + 20..b.hdr_len]);
        assert_eq!(
            (tcp.fin(), tcp.psh(), tcp.cwr()),
            (flags & FIN != 0, flags & PSH != 0, flags & CWR != 0)
        );

        // Checksum.
        let (src, dst) = addrs(f, s.kind, b.l3);
        let tcp_bytes = &f[b.l4..];
        let field = u16::from_be_bytes([tcp_bytes[16], tcp_bytes[17]]);
        let full = match s.kind {
            TcpGso::V4 => tcp.calc_checksum_ipv4(src.try_into().unwrap(), dst.try_into().unwrap()),
            TcpGso::V6 => tcp.calc_checksum_ipv6(src.try_into().unwrap(), dst.try_into().unwrap()),
        }
        .unwrap();
        if s.needs_csum {
            assert_eq!(field, ref_pseudo(src, dst, tcp_bytes.len()), "segment {i}");
            // Complete it as a NIC does: sum from csum_start with the pseudo value in place.
            let done = !ref_fold(ref_sum(&[tcp_bytes]));
            assert!(
                done == full || (done ^ full) == 0xffff && done & full == 0,
                "segment {i}: completed {done:#06x}, etherparse {full:#06x}"
            );
        } else {
            assert_eq!(field, full, "segment {i}");
            // Verifies: the sum over pseudo-header and segment is all ones.
            assert_eq!(
                ref_fold(u32::from(ref_pseudo(src, dst, tcp_bytes.len())) + ref_sum(&[tcp_bytes])),
                0xffff
            );
        }

        payload.extend_from_slice(tcp.payload());
        out.push(f.to_vec());
    }
    assert_eq!(payload, b.frame[b.hdr_len..]);
    assert_eq!(seg.write(seg.count(), &mut buf), None);
    out
}

fn check(s: Shape) -> Vec<Vec<u8>> {
    cut_and_check(s, &build(s))
}

// ---------------------------------------------------------------------------------------------
// Valid super-frames.

#[test]
fn ipv4_partial_checksum() {
    let segs = check(Shape::new(TcpGso::V4, 10 * 1448 + 100, 1448));
    assert_eq!(segs.len(), 11);
    assert_eq!(segs[0].len(), 14 + 20 + 32 + 1448);
    assert_eq!(segs[10].len(), 14 + 20 + 32 + 100);
}

#[test]
fn ipv4_vlan_full_checksum() {
    check(Shape {
        tags: 1,
        needs_csum: false,
        ..Shape::new(TcpGso::V4, 5 * 1448, 1448)
    });
}

#[test]
fn ipv4_options_and_qinq() {
    for needs_csum in [true, false] {
        check(Shape {
            tags: 2,
            ip_ext: 12,
            needs_csum,
            ..Shape::new(TcpGso::V4, 4000, 1000)
        });
    }
}

#[test]
fn ipv6_partial_and_full_with_and_without_vlan() {
    for tags in [0, 1, 2] {
        for needs_csum in [true, false] {
            let segs = check(Shape {
                tags,
                needs_csum,
                ..Shape::new(TcpGso::V6, 44 * 1428 + 7, 1428)
            });
            assert_eq!(segs.len(), 45);
        }
    }
}

#[test]
fn ipv6_extension_header_is_copied() {
    for needs_csum in [true, false] {
        check(Shape {
            ip_ext: 16,
            needs_csum,
            ..Shape::new(TcpGso::V6, 3000, 1200)
        });
    }
}

#[test]
fn largest_super_frame() {
    // 64 KiB of TCP behind the headers: IPv4 total length would not fit, segments do.
    for kind in [TcpGso::V4, TcpGso::V6] {
        for needs_csum in [true, false] {
            check(Shape {
                needs_csum,
                ..Shape::new(kind, 65_536 - 32, 1448)
            });
        }
    }
}

#[test]
fn one_segment_and_odd_sizes() {
    // Payload within one MSS: one segment, all flags kept.
    let segs = check(Shape::new(TcpGso::V4, 100, 1448));
    assert_eq!(segs.len(), 1);
    // Exact multiple; odd MSS (odd chunk boundaries in the checksum); MSS of one byte.
    check(Shape::new(TcpGso::V4, 3 * 1448, 1448));
    check(Shape::new(TcpGso::V6, 1001, 333));
    check(Shape {
        needs_csum: false,
        ..Shape::new(TcpGso::V6, 1001, 333)
    });
    assert_eq!(check(Shape::new(TcpGso::V4, 5, 1)).len(), 5);
}

#[test]
fn a_wrong_partial_value_stays_exactly_as_wrong() {
    // As tcp_gso_segment: the field is adjusted by the length difference, not recomputed, so
    // forwarding neither repairs nor further breaks a bad value.
    let s = Shape::new(TcpGso::V4, 3000, 1000);
    let mut b = build(s);
    let good = u16::from_be_bytes([b.frame[b.l4 + 16], b.frame[b.l4 + 17]]);
    let bad = good.wrapping_add(5);
    b.frame[b.l4 + 16..b.l4 + 18].copy_from_slice(&bad.to_be_bytes());
    let seg = Segmenter::new(&b.frame, b.params).unwrap();
    let mut buf = vec![0u8; seg.max_segment_len()];
    let n = seg.write(0, &mut buf).unwrap();
    let field = u16::from_be_bytes([buf[b.l4 + 16], buf[b.l4 + 17]]);
    let (src, dst) = addrs(&buf, s.kind, b.l3);
    let right = ref_pseudo(src, dst, n - b.l4);
    assert_eq!(ref_fold(u32::from(right) + 5), field);
}

#[test]
fn short_buffer_and_bad_index() {
    let b = build(Shape::new(TcpGso::V4, 3000, 1000));
    let seg = Segmenter::new(&b.frame, b.params).unwrap();
    let mut buf = vec![0u8; seg.max_segment_len() - 1];
    assert_eq!(seg.write(0, &mut buf), None);
    assert!(buf.iter().all(|&x| x == 0), "untouched");
    assert_eq!(seg.write(3, &mut buf), None);
    assert_eq!(seg.segment_len(3), None);
}

// ---------------------------------------------------------------------------------------------
// The vnet adapter.

#[test]
fn vnet_header_in_and_out() {
    let s = Shape::new(TcpGso::V6, 3000, 1000);
    let b = build(s);
    let vnet = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV6 | GSO_ECN,
        hdr_len: b.hdr_len as u16,
        gso_size: 1000,
        csum_start: b.l4 as u16,
        csum_offset: 16,
    };
    let seg = vnet.segmenter(&b.frame).unwrap();
    assert_eq!(seg.count(), 3);
    let out = VnetHdr::from(seg.checksum());
    assert_eq!(
        out,
        VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: b.l4 as u16,
            csum_offset: 16,
            ..VnetHdr::NONE
        }
    );
    assert!(!out.is_gso());
    // A TCPv4 header on an IPv6 frame, UDP GSO, a plain frame.
    let v4 = VnetHdr {
        gso_type: GSO_TCPV4,
        ..vnet
    };
    assert_eq!(
        v4.segmenter(&b.frame).unwrap_err(),
        GsoError::FamilyMismatch
    );
    let udp = VnetHdr {
        gso_type: GSO_UDP_L4,
        ..vnet
    };
    assert_eq!(udp.segmenter(&b.frame).unwrap_err(), GsoError::NotTcpGso);
    assert_eq!(
        VnetHdr::NONE.segmenter(&b.frame).unwrap_err(),
        GsoError::NotTcpGso
    );
    let full = VnetHdr { flags: 0, ..vnet };
    assert_eq!(
        VnetHdr::from(full.segmenter(&b.frame).unwrap().checksum()),
        VnetHdr::NONE
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals.

fn err(frame: &[u8], params: GsoParams) -> GsoError {
    Segmenter::new(frame, params).expect_err("must be refused")
}

#[test]
fn refusals() {
    let s = Shape::new(TcpGso::V4, 3000, 1000);
    let b = build(s);
    let p = b.params;
    let f = &b.frame;
    let with = |at: usize, byte: u8| {
        let mut f = b.frame.clone();
        f[at] = byte;
        f
    };

    assert_eq!(
        err(f, GsoParams { gso_size: 0, ..p }),
        GsoError::ZeroGsoSize
    );
    assert_eq!(err(&f[..13], p), GsoError::NotIp);
    assert_eq!(err(&with(12, 0x88), p), GsoError::NotIp); // 0x8800
    assert_eq!(
        err(
            f,
            GsoParams {
                kind: TcpGso::V6,
                ..p
            }
        ),
        GsoError::FamilyMismatch
    );
    assert_eq!(err(&f[..b.l3 + 19], p), GsoError::BadIpHeader);
    assert_eq!(err(&with(b.l3, 0x65), p), GsoError::BadIpHeader); // version 6 in IPv4
    assert_eq!(err(&with(b.l3, 0x44), p), GsoError::BadIpHeader); // IHL 4
    assert_eq!(err(&with(b.l3 + 6, 0x60), p), GsoError::Fragment); // DF + MF
    assert_eq!(err(&with(b.l3 + 7, 0x01), p), GsoError::Fragment); // offset 1
    assert_eq!(err(&with(b.l3 + 9, 17), p), GsoError::NotTcp);
    assert_eq!(err(&with(b.l3, 0x46), p), GsoError::CsumStart); // options claimed
    for start in [0u16, 14, b.l4 as u16 + 1, u16::MAX] {
        let e = err(
            f,
            GsoParams {
                csum_start: start,
                ..p
            },
        );
        assert_eq!(e, GsoError::CsumStart, "csum_start {start}");
    }
    assert_eq!(
        err(
            f,
            GsoParams {
                csum_offset: 6,
                ..p
            }
        ),
        GsoError::CsumOffset
    );
    // Without a partial checksum the offset is not used.
    assert!(Segmenter::new(
        f,
        GsoParams {
            csum_offset: 6,
            needs_csum: false,
            ..p
        }
    )
    .is_ok());
    assert_eq!(err(&with(b.l4 + 12, 0x40), p), GsoError::BadTcpHeader); // doff 4
    assert_eq!(
        err(&with(b.l4 + 12, 0xf0)[..b.l4 + 59], p), // 60-byte header in 59 bytes
        GsoError::BadTcpHeader
    );
    assert_eq!(err(&f[..b.l4 + 19], p), GsoError::BadTcpHeader);
    assert_eq!(err(&f[..b.hdr_len - 1], p), GsoError::BadTcpHeader);
    assert_eq!(err(&f[..b.hdr_len], p), GsoError::NoPayload);

    // Three VLAN tags.
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0, 1]);
    tagged.extend_from_slice(&[0x81, 0x00, 0, 2]);
    tagged.extend_from_slice(&[0x81, 0x00, 0, 3]);
    tagged.extend_from_slice(&f[12..]);
    assert_eq!(
        err(
            &tagged,
            GsoParams {
                csum_start: p.csum_start + 12,
                ..p
            }
        ),
        GsoError::NotIp
    );

    // A segment whose IPv4 total length would overflow.
    let big = build(Shape::new(TcpGso::V4, 65_536, u16::MAX));
    assert_eq!(err(&big.frame, big.params), GsoError::SegmentTooLong);
}

#[test]
fn ipv6_refusals() {
    let b = build(Shape {
        ip_ext: 8,
        ..Shape::new(TcpGso::V6, 3000, 1000)
    });
    let p = b.params;
    let with = |at: usize, byte: u8| {
        let mut f = b.frame.clone();
        f[at] = byte;
        f
    };
    assert!(Segmenter::new(&b.frame, p).is_ok());
    assert_eq!(err(&b.frame[..b.l3 + 39], p), GsoError::BadIpHeader);
    assert_eq!(err(&with(b.l3, 0x40), p), GsoError::BadIpHeader);
    // Fragment header, AH, UDP, no next header.
    for next in [44u8, 51, 17, 59] {
        assert_eq!(
            err(&with(b.l3 + 6, next), p),
            GsoError::NotTcp,
            "next {next}"
        );
        assert_eq!(
            err(&with(b.l3 + 40, next), p),
            GsoError::NotTcp,
            "next {next}"
        );
    }
    // Extension header longer than announced by csum_start.
    assert_eq!(err(&with(b.l3 + 41, 1), p), GsoError::CsumStart);
    // csum_start at the fixed header's end, skipping the extension header.
    assert_eq!(
        err(
            &b.frame,
            GsoParams {
                csum_start: (b.l3 + 40) as u16,
                ..p
            }
        ),
        GsoError::CsumStart
    );
    // A loop of destination options headers longer than the walk allows.
    let mut f = b.frame[..b.l3 + 40].to_vec();
    f[b.l3 + 6] = 60;
    for _ in 0..9 {
        f.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    assert_eq!(err(&f, p), GsoError::NotTcp);
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![Just(TcpGso::V4), Just(TcpGso::V6)],
        0usize..=2,
        0usize..=2,
        1usize..20_000,
        1u16..9_000,
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(kind, tags, ext, payload, gso_size, flags, needs_csum)| Shape {
                kind,
                tags,
                ip_ext: match kind {
                    TcpGso::V4 => ext * 4,
                    TcpGso::V6 => ext * 8,
                },
                payload,
                gso_size,
                flags,
                needs_csum,
            },
        )
}

fn params() -> impl Strategy<Value = GsoParams> {
    (
        prop_oneof![Just(TcpGso::V4), Just(TcpGso::V6)],
        any::<u16>(),
        prop_oneof![0u16..120, any::<u16>()],
        prop_oneof![Just(16u16), any::<u16>()],
        any::<bool>(),
    )
        .prop_map(
            |(kind, gso_size, csum_start, csum_offset, needs_csum)| GsoParams {
                kind,
                gso_size,
                csum_start,
                csum_offset,
                needs_csum,
            },
        )
}

/// Whatever `new` accepts, every segment can be written, within the announced bounds.
fn write_all(frame: &[u8], params: GsoParams) {
    let Ok(seg) = Segmenter::new(frame, params) else {
        return;
    };
    let gso = usize::from(params.gso_size);
    let mut buf = vec![0u8; seg.max_segment_len()];
    let mut payload = 0;
    for i in 0..seg.count() {
        let n = seg
            .write(i, &mut buf)
            .expect("segment fits max_segment_len");
        assert!(n <= seg.header_len() + gso);
        payload += n - seg.header_len();
    }
    assert_eq!(payload, frame.len() - seg.header_len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_shape_cuts_correctly(s in shape()) {
        cut_and_check(s, &build(s));
    }

    #[test]
    fn mutated_frames_never_panic(
        s in shape(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        p in params(),
        use_own_params in any::<bool>(),
    ) {
        let b = build(s);
        let mut f = b.frame;
        for (at, byte) in edits {
            let i = at.index(f.len());
            f[i] = byte;
        }
        if truncate {
            f.truncate(cut.index(f.len() + 1));
        }
        write_all(&f, if use_own_params { b.params } else { p });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..600),
        p in params(),
    ) {
        write_all(&frame, p);
    }

    #[test]
    fn arbitrary_vnet_headers_never_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..300),
        raw in any::<[u8; 10]>(),
    ) {
        if let Ok(p) = VnetHdr::from_bytes(&raw).tcp_gso() {
            write_all(&frame, p);
        }
    }
}
