use std::path::PathBuf;

use super::*;
use crate::wire::{self, ethertype, L3};

/// A minimal IPv4/UDP packet (no link header): 10.0.0.1:1000 -> 10.0.0.2:53, 4 bytes payload.
fn ipv4_udp() -> Vec<u8> {
    let mut p = vec![
        0x45, 0x00, 0x00, 32, 0x12, 0x34, 0x00, 0x00, 64, 17, 0x00, 0x00, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(&[0x03, 0xe8, 0x00, 0x35, 0x00, 12, 0x00, 0x00, 1, 2, 3, 4]);
    p
}

/// A minimal IPv6/UDP packet, ::1 -> ::2, no payload.
fn ipv6_udp() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0x00, 8, 17, 64];
    p.extend_from_slice(&[0; 15]);
    p.push(1);
    p.extend_from_slice(&[0; 15]);
    p.push(2);
    p.extend_from_slice(&[0x03, 0xe8, 0x00, 0x35, 0x00, 8, 0x00, 0x00]);
    p
}

fn convert(conv: Conversion, frame: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let removed = to_ethernet(conv, frame, &mut out);
    (out, removed)
}

fn eth_header(src: [u8; 6], et: u16) -> Vec<u8> {
    let mut h = vec![0u8; 6];
    h.extend_from_slice(&src);
    h.extend_from_slice(&et.to_be_bytes());
    h
}

// ---- conversions ----

#[test]
fn sll_ipv4_uses_protocol_and_source_mac() {
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    // pkttype 4 (outgoing), hatype 1, halen 6, address + 2 pad, protocol 0x0800.
    let mut f = vec![0, 4, 0, 1, 0, 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0, 0, 0x08, 0x00]);
    f.extend_from_slice(&ipv4_udp());
    let (out, removed) = convert(Conversion::LinuxSll, &f);
    assert_eq!(removed, 16);
    let mut want = eth_header(mac, ethertype::IPV4);
    want.extend_from_slice(&ipv4_udp());
    assert_eq!(out, want);
    let v = wire::parse(&out);
    assert_eq!(v.l3, L3::Ipv4);
    assert_eq!(v.src_mac, mac);
    assert!(!v.truncated);
}

#[test]
fn sll_address_not_six_bytes_leaves_mac_zero() {
    // halen 0 (e.g. a tun device), protocol IPv6.
    let mut f = vec![0, 0, 0xff, 0xfe, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 0x86, 0xdd];
    f.extend_from_slice(&ipv6_udp());
    let (out, _) = convert(Conversion::LinuxSll, &f);
    assert_eq!(&out[..14], &eth_header([0; 6], ethertype::IPV6)[..]);
    assert_eq!(wire::parse(&out).l3, L3::Ipv6);
}

#[test]
fn sll_llc_becomes_802_3_length_and_other_specials_zero() {
    let llc = [0x42, 0x42, 0x03, 0, 0, 0, 0];
    let mut f = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x00, 0x04];
    f.extend_from_slice(&llc);
    let (out, _) = convert(Conversion::LinuxSll, &f);
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), llc.len() as u16);
    assert_eq!(&out[14..], &llc);
    assert_eq!(wire::parse(&out).l3, L3::Other);

    // ETH_P_CAN (0x000c): not IP, ethertype 0, payload kept.
    f[14..16].copy_from_slice(&[0x00, 0x0c]);
    let (out, _) = convert(Conversion::LinuxSll, &f);
    assert_eq!(&out[12..14], &[0, 0]);
    assert_eq!(&out[14..], &llc);
}

#[test]
fn sll2_ipv4() {
    let mac = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    // protocol, reserved, ifindex, hatype 1, pkttype 0, halen 6, address (8).
    let mut f = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ipv4_udp());
    let (out, removed) = convert(Conversion::LinuxSll2, &f);
    assert_eq!(removed, 20);
    let mut want = eth_header(mac, ethertype::IPV4);
    want.extend_from_slice(&ipv4_udp());
    assert_eq!(out, want);
}

#[test]
fn raw_ip_version_nibble_decides() {
    let raw = Conversion::RawIp { fallback: 0 };
    let (out, removed) = convert(raw, &ipv4_udp());
    assert_eq!(removed, 0);
    assert_eq!(&out[..14], &eth_header([0; 6], ethertype::IPV4)[..]);
    assert_eq!(&out[14..], &ipv4_udp()[..]);
    assert_eq!(wire::parse(&out).dst_port, 53);

    let (out, _) = convert(raw, &ipv6_udp());
    assert_eq!(&out[12..14], &ethertype::IPV6.to_be_bytes());
    assert_eq!(wire::parse(&out).l3, L3::Ipv6);

    // Neither 4 nor 6: RAW gives 0, LINKTYPE_IPV6 falls back to IPv6.
    let (out, _) = convert(raw, &[0x50, 1, 2]);
    assert_eq!(&out[12..14], &[0, 0]);
    let v6 = conversion_for(dlt::IPV6).unwrap();
    let (out, _) = convert(v6, &[0x50, 1, 2]);
    assert_eq!(&out[12..14], &ethertype::IPV6.to_be_bytes());
}

#[test]
fn loopback_families_in_both_byte_orders() {
    let cases: &[([u8; 4], u16)] = &[
        ([2, 0, 0, 0], ethertype::IPV4),  // NULL, little-endian host
        ([0, 0, 0, 2], ethertype::IPV4),  // LOOP / big-endian host
        ([30, 0, 0, 0], ethertype::IPV6), // macOS
        ([0, 0, 0, 24], ethertype::IPV6), // NetBSD/OpenBSD, network order
        ([28, 0, 0, 0], ethertype::IPV6), // FreeBSD
        ([10, 0, 0, 0], ethertype::IPV6), // Linux
        ([7, 0, 0, 0], 0),                // something else
    ];
    for (family, want) in cases {
        let mut f = family.to_vec();
        f.extend_from_slice(&ipv4_udp());
        let (out, removed) = convert(Conversion::Loopback, &f);
        assert_eq!(removed, 4);
        assert_eq!(u16::from_be_bytes([out[12], out[13]]), *want, "{family:?}");
        assert_eq!(&out[14..], &ipv4_udp()[..]);
    }
}

#[test]
fn ppp_and_hdlc_frames_become_ethernet() {
    let ppp = Conversion::Ppp {
        direction_byte: false,
    };
    let with_dir = Conversion::Ppp {
        direction_byte: true,
    };
    let cases: [(Conversion, &[u8], u16, usize); 9] = [
        // Address and control, then the protocol (what DLT_PPP usually holds).
        (ppp, &[0xff, 0x03, 0x00, 0x21], ethertype::IPV4, 4),
        // Without address and control (quic-go's interop captures).
        (ppp, &[0x00, 0x57], ethertype::IPV6, 2),
        // Protocol field compressed to one byte.
        (ppp, &[0xff, 0x03, 0x21], ethertype::IPV4, 3),
        // LCP: not IP.
        (ppp, &[0xff, 0x03, 0xc0, 0x21], 0, 4),
        // Cisco HDLC framing inside DLT_PPP_SERIAL, as libpcap reads it.
        (ppp, &[0x0f, 0x00, 0x08, 0x00], ethertype::IPV4, 4),
        (
            Conversion::CiscoHdlc,
            &[0x8f, 0x00, 0x86, 0xdd],
            ethertype::IPV6,
            4,
        ),
        (Conversion::CiscoHdlc, &[0x0f, 0x00, 0x80, 0x35], 0x8035, 4),
        (
            with_dir,
            &[0x01, 0xff, 0x03, 0x00, 0x21],
            ethertype::IPV4,
            5,
        ),
        // PPPoE session header without Ethernet: version/type, code, session, length, protocol.
        (
            Conversion::PppEther,
            &[0x11, 0x00, 0x00, 0x07, 0x00, 0x22, 0x00, 0x21],
            ethertype::IPV4,
            8,
        ),
    ];
    for (conv, header, et, len) in cases {
        let ip = if et == ethertype::IPV6 {
            ipv6_udp()
        } else {
            ipv4_udp()
        };
        let mut f = header.to_vec();
        f.extend_from_slice(&ip);
        let (out, removed) = convert(conv, &f);
        assert_eq!(removed, len, "{conv:?} {header:02x?}");
        assert_eq!(
            out[..14],
            eth_header([0; 6], et)[..],
            "{conv:?} {header:02x?}"
        );
        assert_eq!(&out[14..], &ip[..]);
        if et == ethertype::IPV4 || et == ethertype::IPV6 {
            let v = wire::parse(&out);
            assert!(v.is_ip() && v.has_ports && !v.truncated, "{conv:?}");
        }
    }
}

#[test]
fn frames_shorter_than_their_link_header_become_bare_non_ip_headers() {
    for conv in [
        Conversion::LinuxSll,
        Conversion::LinuxSll2,
        Conversion::Loopback,
        Conversion::RawIp { fallback: 0 },
        Conversion::CiscoHdlc,
        Conversion::PppEther,
    ] {
        for len in 0..conv.header_len().max(1) {
            let f = vec![0x08; len];
            let (out, removed) = convert(conv, &f);
            assert!(removed <= len);
            assert!(out.len() >= 14, "{conv:?} {len}");
            if conv.header_len() > 0 || len == 0 {
                assert_eq!(out, eth_header([0; 6], 0), "{conv:?} {len}");
            }
            let _ = wire::parse(&out);
        }
    }
}

#[test]
fn link_type_classification() {
    for (v, want) in [
        (1, Some(Conversion::Ethernet)),
        (113, Some(Conversion::LinuxSll)),
        (276, Some(Conversion::LinuxSll2)),
        (12, Some(Conversion::RawIp { fallback: 0 })),
        (101, Some(Conversion::RawIp { fallback: 0 })),
        (0, Some(Conversion::Loopback)),
        (108, Some(Conversion::Loopback)),
        (105, None), // 802.11
        (127, None), // radiotap
        (
            9,
            Some(Conversion::Ppp {
                direction_byte: false,
            }),
        ),
        (
            204,
            Some(Conversion::Ppp {
                direction_byte: true,
            }),
        ),
        (104, Some(Conversion::CiscoHdlc)),
        (51, Some(Conversion::PppEther)),
        (-1, None),
    ] {
        assert_eq!(conversion_for(v), want, "{v}");
    }
}

// ---- files ----

/// A file path in a fresh directory of its own, `weir-capture-<pid>-<n>` in the system temp
/// dir; the directory and whatever was written in it are removed when this is dropped (also
/// while a failing test unwinds).
struct TempPath {
    dir: PathBuf,
    path: PathBuf,
}

impl std::ops::Deref for TempPath {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

impl AsRef<std::path::Path> for TempPath {
    fn as_ref(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh path named `name` in a directory of its own, removed with it (see [`TempPath`]).
fn temp_path(name: &str) -> TempPath {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("weir-capture-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempPath {
        path: dir.join(name),
        dir,
    }
}

/// A little-endian microsecond pcap: (ts_sec, ts_usec, orig_len, data) records.
fn pcap_file(linktype: u32, snaplen: u32, records: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&snaplen.to_le_bytes());
    f.extend_from_slice(&linktype.to_le_bytes());
    for (sec, usec, orig, data) in records {
        f.extend_from_slice(&sec.to_le_bytes());
        f.extend_from_slice(&usec.to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&orig.to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

/// (number, ts_ns, data, orig_len, truncated_by_snaplen)
type Frame = (u64, u64, Vec<u8>, u32, bool);

fn read_all(path: &std::path::Path) -> (Vec<Frame>, Option<CaptureError>) {
    let mut r = CaptureReader::open(path).unwrap();
    let mut frames = Vec::new();
    loop {
        match r.next_frame() {
            Ok(Some(f)) => frames.push((
                f.number,
                f.ts_ns,
                f.data.to_vec(),
                f.orig_len,
                f.truncated_by_snaplen,
            )),
            Ok(None) => return (frames, None),
            Err(e) => {
                // Fused after an error.
                assert!(matches!(r.next_frame(), Ok(None)));
                return (frames, Some(e));
            }
        }
    }
}

#[test]
fn writer_round_trip_through_libpcap() {
    let path = temp_path("round-trip.pcap");
    let mut eth = eth_header([2, 0, 0, 0, 0, 1], ethertype::IPV4);
    eth.extend_from_slice(&ipv4_udp());
    let jumbo = vec![0xab; 9000];
    let frames: Vec<(u64, Vec<u8>, u32)> = vec![
        (1_700_000_000_123_456_789, eth.clone(), eth.len() as u32),
        (1_700_000_000_123_456_790, jumbo.clone(), 9000),
        (1_700_000_001_000_000_000, eth[..20].to_vec(), 1514), // snapped
        (0, Vec::new(), 0),
        (
            u32::MAX as u64 * 1_000_000_000 + 999_999_999,
            eth.clone(),
            10,
        ), // orig < data: raised
    ];
    let mut w = CaptureWriter::create(&path).unwrap();
    for (ts, data, orig) in &frames {
        w.write(*ts, data, *orig).unwrap();
    }
    assert!(matches!(
        w.write(u32::MAX as u64 * 1_000_000_000 + 1_000_000_000, &eth, 60),
        Err(CaptureError::TimestampOutOfRange { .. })
    ));
    w.finish().unwrap();

    let (got, err) = read_all(&path);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), frames.len());
    for (i, ((ts, data, orig), (n, gts, gdata, gorig, trunc))) in
        frames.iter().zip(&got).enumerate()
    {
        assert_eq!(*n, i as u64 + 1);
        assert_eq!(gts, ts, "frame {n}");
        assert_eq!(gdata, data, "frame {n}");
        assert_eq!(*gorig, (*orig).max(data.len() as u32), "frame {n}");
        assert_eq!(*trunc, (*orig as usize) > data.len(), "frame {n}");
    }
    let r = CaptureReader::open(&path).unwrap();
    assert_eq!(r.link_type().value, dlt::EN10MB);
    assert_eq!(r.link_type().name, "EN10MB");
    assert_eq!(r.file_len(), std::fs::metadata(&path).unwrap().len());
}

#[test]
fn writer_reports_write_errors() {
    // /dev/full fails every write with ENOSPC: the error must surface, at the latest at finish.
    let full = std::path::Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let result = CaptureWriter::create(full).and_then(|mut w| {
        for _ in 0..100 {
            w.write(1, &[0u8; 1500], 1500)?;
        }
        w.finish()
    });
    match result {
        Err(CaptureError::Write { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(28), "{source}") // ENOSPC
        }
        other => panic!("expected a write error, got {other:?}"),
    }
}

#[test]
fn reader_converts_sll_file_and_adjusts_lengths() {
    let path = temp_path("sll.pcap");
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 1, 1, 1, 1, 1, 0, 0, 0x08, 0x00];
    f.extend_from_slice(&ipv4_udp());
    let short = [0u8; 5];
    std::fs::write(
        &path,
        pcap_file(
            113,
            65535,
            &[(10, 1, f.len() as u32 + 100, &f), (11, 0, 5, &short)],
        ),
    )
    .unwrap();
    let r = CaptureReader::open(&path).unwrap();
    assert_eq!(r.link_type().value, dlt::LINUX_SLL);
    let (got, err) = read_all(&path);
    assert!(err.is_none());
    assert_eq!(got.len(), 2);
    let (n, ts, data, orig, trunc) = &got[0];
    assert_eq!((*n, *ts), (1, 10_000_001_000));
    assert_eq!(data.len(), f.len() - 2);
    assert_eq!(*orig as usize, f.len() + 100 - 2);
    assert!(*trunc);
    assert_eq!(wire::parse(data).l3, L3::Ipv4);
    // Too short for the SLL header: still a frame, a bare non-IP Ethernet header.
    assert_eq!(got[1].2, eth_header([0; 6], 0));
    assert_eq!(got[1].3, 14);
}

#[test]
fn reader_maps_linktype_raw_and_null() {
    let path = temp_path("raw.pcap");
    let v4 = ipv4_udp();
    std::fs::write(
        &path,
        pcap_file(101, 65535, &[(1, 0, v4.len() as u32, &v4)]),
    )
    .unwrap();
    let (got, err) = read_all(&path);
    assert!(err.is_none());
    assert_eq!(&got[0].2[12..14], &ethertype::IPV4.to_be_bytes());
    assert_eq!(got[0].3 as usize, v4.len() + 14);

    let path = temp_path("null.pcap");
    let mut f = vec![30, 0, 0, 0];
    f.extend_from_slice(&ipv6_udp());
    std::fs::write(&path, pcap_file(0, 65535, &[(1, 0, f.len() as u32, &f)])).unwrap();
    let (got, _) = read_all(&path);
    assert_eq!(wire::parse(&got[0].2).l3, L3::Ipv6);
}

#[test]
fn reader_errors_name_the_file_and_the_frame() {
    // Damaged: second record header cut short.
    let path = temp_path("damaged.pcap");
    let frame = [0u8; 60];
    let mut bytes = pcap_file(1, 65535, &[(1, 0, 60, &frame), (2, 0, 60, &frame)]);
    bytes.truncate(24 + 16 + 60 + 7);
    std::fs::write(&path, &bytes).unwrap();
    let (got, err) = read_all(&path);
    assert_eq!(got.len(), 1);
    match err {
        Some(e @ CaptureError::Damaged { frame: 2, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("frame 2"), "{msg}");
            assert!(msg.contains("damaged after frame 1"), "{msg}");
            assert!(msg.contains("damaged.pcap"), "{msg}");
        }
        other => panic!("{other:?}"),
    }

    // Unsupported link type (802.11).
    let path = temp_path("wifi.pcap");
    std::fs::write(&path, pcap_file(105, 65535, &[(1, 0, 60, &frame)])).unwrap();
    match CaptureReader::open(&path) {
        Err(e @ CaptureError::UnsupportedLinkType { link_type: 105, .. }) => {
            let msg = e.to_string();
            // A hint that converts the frames, not one that relabels the file.
            assert!(
                msg.contains("IEEE802_11") && msg.contains("tcprewrite --dlt=enet"),
                "{msg}"
            );
            assert!(!msg.contains("with e.g. `editcap -T ether`"), "{msg}");
        }
        other => panic!("{:?}", other.err()),
    }

    // gzip.
    let path = temp_path("trace.pcap.gz");
    std::fs::write(&path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    match CaptureReader::open(&path) {
        Err(e @ CaptureError::Compressed { .. }) => assert!(e.to_string().contains("gunzip")),
        other => panic!("{:?}", other.err()),
    }

    // Not a capture, and an empty file.
    for (name, content) in [
        ("notes.txt", &b"hello, world\n"[..]),
        ("empty.pcap", &[][..]),
    ] {
        let path = temp_path(name);
        std::fs::write(&path, content).unwrap();
        assert!(matches!(
            CaptureReader::open(&path),
            Err(CaptureError::NotACapture { .. })
        ));
    }

    // Right magic, bad header.
    let path = temp_path("badheader.pcap");
    std::fs::write(&path, &pcap_file(1, 65535, &[])[..10]).unwrap();
    assert!(matches!(
        CaptureReader::open(&path),
        Err(CaptureError::BadHeader { .. })
    ));

    // Missing.
    match CaptureReader::open(&temp_path("does-not-exist.pcap")) {
        Err(CaptureError::Open { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn nanosecond_pcap_keeps_nanoseconds() {
    // Written by our writer (nanosecond magic), timestamps must not lose digits.
    let path = temp_path("nano.pcap");
    let mut w = CaptureWriter::create(&path).unwrap();
    w.write(1_000_000_001, &[0u8; 14], 14).unwrap();
    w.finish().unwrap();
    let (got, _) = read_all(&path);
    assert_eq!(got[0].1, 1_000_000_001);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes, any accepted link type: conversion never panics, always yields at least
        /// an Ethernet header, and keeps everything after the link header.
        #[test]
        fn conversion_total(bytes in proptest::collection::vec(any::<u8>(), 0..64), which in 0usize..9) {
            let conv = [
                Conversion::LinuxSll,
                Conversion::LinuxSll2,
                Conversion::Loopback,
                Conversion::RawIp { fallback: 0 },
                Conversion::Ethernet,
                Conversion::Ppp { direction_byte: false },
                Conversion::Ppp { direction_byte: true },
                Conversion::CiscoHdlc,
                Conversion::PppEther,
            ][which];
            let mut out = Vec::new();
            let removed = to_ethernet(conv, &bytes, &mut out);
            if conv == Conversion::Ethernet {
                prop_assert_eq!(&out, &bytes);
            } else {
                prop_assert!(out.len() >= 14);
                prop_assert_eq!(&out[14..], &bytes[removed..]);
                let _ = wire::parse(&out);
            }
        }
    }
}

#[test]
fn timestamps_past_2038_and_garbage_do_not_wrap() {
    use super::reader::timestamp_ns;
    assert_eq!(timestamp_ns(1, 5), 1_000_000_005);
    // libpcap sign-extends pcap's unsigned 32-bit seconds.
    assert_eq!(timestamp_ns(-1, 0), u64::from(u32::MAX) * 1_000_000_000);
    assert_eq!(timestamp_ns(i64::MIN, -3), 0);
    assert_eq!(timestamp_ns(i64::MAX, i64::MAX), u64::MAX);
}

#[test]
fn damaged_at_first_frame_and_odd_paths() {
    let path = temp_path("damaged-first.pcap");
    let mut bytes = pcap_file(1, 65535, &[(1, 0, 60, &[0u8; 60])]);
    bytes.truncate(24 + 5);
    std::fs::write(&path, &bytes).unwrap();
    let (got, err) = read_all(&path);
    assert!(got.is_empty());
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("frame 1") && msg.contains("no frames could be read"),
        "{msg}"
    );

    // A directory: an OS error, not a panic nor libpcap reading stdin.
    assert!(matches!(
        CaptureReader::open(&std::env::temp_dir()),
        Err(CaptureError::Open { .. })
    ));
    // "-" is a file name here, not libpcap's stdin.
    assert!(matches!(
        CaptureReader::open(std::path::Path::new("-")),
        Err(CaptureError::Open { .. })
    ));
}
