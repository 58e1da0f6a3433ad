//! The pipeline on a manual clock with a store of plain vectors: what it charges, cuts,
//! remarks and counts. The live driver and the replay driver are compared frame for frame in
//! `runtime/tests.rs`.

use super::*;
use crate::config::parse;
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4};

/// Frames kept as vectors; at most `limit` at once (then `keep` says no buffer).
struct VecStore {
    frames: Vec<Option<(Vec<u8>, VnetHdr)>>,
    limit: usize,
}

impl VecStore {
    fn new(limit: usize) -> VecStore {
        VecStore {
            frames: Vec::new(),
            limit,
        }
    }

    fn held(&self) -> usize {
        self.frames.iter().flatten().count()
    }

    fn put(&mut self, f: Vec<u8>, vnet: VnetHdr) -> Option<usize> {
        if self.held() >= self.limit {
            return None;
        }
        self.frames.push(Some((f, vnet)));
        Some(self.frames.len() - 1)
    }

    fn take(&mut self, item: usize) -> (Vec<u8>, VnetHdr) {
        self.frames[item].take().expect("a frame held once")
    }
}

impl FrameStore for VecStore {
    type Item = usize;
    type Rx<'a> = &'a [u8];

    fn keep(&mut self, rx: &mut &[u8], len: usize, vnet: VnetHdr) -> Option<usize> {
        self.put(rx[..len].to_vec(), vnet)
    }

    fn keep_segment(&mut self, seg: &Segmenter<'_>, i: usize, vnet: VnetHdr) -> Option<usize> {
        let mut buf = vec![0; seg.segment_len(i)?];
        let n = seg.write(i, &mut buf)?;
        buf.truncate(n);
        self.put(buf, vnet)
    }

    fn frame_mut(&mut self, item: usize) -> Option<&mut [u8]> {
        self.frames[item].as_mut().map(|(f, _)| f.as_mut_slice())
    }

    fn release(&mut self, item: usize) {
        self.take(item);
    }
}

/// wan (upload) at 100 Mbit/s, where super-frames are cut, with a class remarking TCP to
/// AF41; lan at 10 Gbit/s, where they stay whole. 24 bytes of overhead per frame.
const CONFIG: &str = r#"(
    ports: (
        wan: (rate: "100 Mbit", classes: [
            (name: "tcp", match: "tcp", rate: "50 Mbit", set_dscp: "af41"),
            (name: "rest", match: "default", rate: "10 Mbit"),
        ]),
        lan: (rate: "10 Gbit", classes: [(name: "all", match: "default", rate: "10 Gbit")]),
    ),
)"#;

fn pipeline() -> Pipeline<usize> {
    let plan = Arc::new(parse(CONFIG, std::path::Path::new("t.ron")).unwrap());
    Pipeline::new(plan, 1500, 0)
}

/// A TCP/IPv4 frame carrying `payload` bytes (54 bytes of headers, complete checksums).
fn tcp(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
        .tcp(40000, 443, 1, 1000)
        .write(&mut f, &(0..payload).map(|i| i as u8).collect::<Vec<_>>())
        .unwrap();
    f
}

/// Every frame `port` sends from now on (at `now`), with the departures' wire bytes.
fn departures(p: &mut Pipeline<usize>, s: &mut VecStore, port: Side) -> Vec<(Vec<u8>, u32)> {
    let mut out = Vec::new();
    let mut now = 0;
    while let Some(t) = p.next_wakeup() {
        now = now.max(t);
        while let Some(d) = p.depart(port, now, s) {
            out.push((s.take(d.item).0, d.wire_bytes));
        }
        if p.port(port).queued_frames() == 0 {
            break;
        }
    }
    out
}

fn class_stats<'a>(p: &'a Pipeline<usize>, port: Side, name: &str) -> &'a ClassStats {
    let sched = p.port(port);
    let id = sched
        .spec()
        .classes
        .iter()
        .position(|c| c.name == name)
        .unwrap();
    sched.class_stats(id as ClassId).unwrap()
}

use crate::sched::stats::ClassStats;

#[test]
fn a_super_frame_for_a_slow_port_is_cut_remarked_and_counted_as_its_segments() {
    let mut p = pipeline();
    let mut s = VecStore::new(100);
    let f = tcp(10 * 1460);
    // As a device with vnet headers hands it over, and as a capture holds it: the same.
    let vnet = VnetHdr {
        flags: 0,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1460,
        csum_start: 34,
        csum_offset: 16,
    };
    for offload in [Offload::Known(vnet), Offload::Unknown] {
        let info = RxInfo {
            len: f.len(),
            wire_len: f.len() as u32,
            offload,
        };
        p.receive(Side::Lan, &mut f.as_slice(), info, 0, &mut s);
    }
    assert_eq!(
        p.gso_split(),
        GsoSplit {
            super_frames: 2,
            segments: 20
        }
    );
    assert_eq!(p.received(), [20, 0]);
    let out = departures(&mut p, &mut s, Side::Wan);
    assert_eq!(out.len(), 20);
    for (seg, wire) in &out {
        assert_eq!(seg.len(), 54 + 1460);
        assert_eq!(*wire, 54 + 1460 + 24, "each segment pays its own overhead");
        let v = crate::wire::parse(seg);
        assert_eq!(v.dscp, crate::wire::dscp_from_name("af41").unwrap());
        // The remark kept the IPv4 header checksum right.
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&seg[14..34]).unwrap();
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
    }
    let st = class_stats(&p, Side::Wan, "tcp");
    assert_eq!(st.received_frames, 20);
    assert_eq!(st.forwarded_wire_bytes, 20 * (54 + 1460 + 24));
    assert!(st.is_conserved());
    assert_eq!(s.held(), 0);
}

#[test]
fn a_super_frame_for_a_fast_port_goes_whole_charged_as_its_segments() {
    let mut p = pipeline();
    let mut s = VecStore::new(100);
    let f = {
        let mut f = tcp(10 * 1460);
        // Downstream: from the WAN host to the LAN host.
        f[26..30].copy_from_slice(&[198, 19, 0, 1]);
        f[30..34].copy_from_slice(&[198, 18, 0, 1]);
        f
    };
    let info = RxInfo {
        len: f.len(),
        wire_len: f.len() as u32,
        offload: Offload::Unknown,
    };
    p.receive(Side::Wan, &mut f.as_slice(), info, 0, &mut s);
    assert_eq!(p.gso_split(), GsoSplit::default());
    let out = departures(&mut p, &mut s, Side::Lan);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, f);
    assert_eq!(out[0].1, 10 * (54 + 1460 + 24));
    assert_eq!(p.received(), [0, 1]);
}

#[test]
fn a_cut_that_finds_no_buffers_is_not_made_and_the_frame_goes_whole() {
    let mut p = pipeline();
    let mut s = VecStore::new(5);
    let f = tcp(10 * 1460);
    let vnet = VnetHdr {
        flags: F_NEEDS_CSUM,
        ..VnetHdr::infer(&crate::wire::parse(&f), &f, f.len(), 1500)
    };
    p.receive(
        Side::Lan,
        &mut f.as_slice(),
        RxInfo::known(f.len(), vnet),
        0,
        &mut s,
    );
    assert_eq!(p.gso_split(), GsoSplit::default());
    assert_eq!(s.held(), 1, "nothing of the failed cut is left behind");
    let out = departures(&mut p, &mut s, Side::Wan);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, 10 * (54 + 1460 + 24));
}

#[test]
fn damaged_frames_are_counted_in_their_class_and_dropped() {
    let mut p = pipeline();
    let mut s = VecStore::new(100);
    let f = tcp(100);
    // Cut short by the device; shorter than an Ethernet header.
    let cut = RxInfo {
        len: f.len(),
        wire_len: f.len() as u32,
        offload: Offload::Truncated,
    };
    p.receive(Side::Lan, &mut f.as_slice(), cut, 0, &mut s);
    p.receive(
        Side::Lan,
        &mut &f[..10],
        RxInfo::known(10, VnetHdr::NONE),
        0,
        &mut s,
    );
    // Cut by a capture's snap length: not damaged, charged its length on the wire.
    let snap = RxInfo {
        len: 96,
        wire_len: f.len() as u32,
        offload: Offload::Unknown,
    };
    p.receive(Side::Lan, &mut f.as_slice(), snap, 0, &mut s);
    let tcp = class_stats(&p, Side::Wan, "tcp");
    assert_eq!(tcp.dropped_frames[DropReason::Malformed as usize], 1);
    assert_eq!(tcp.received_frames, 2);
    assert_eq!(tcp.received_bytes, 2 * f.len() as u64);
    assert_eq!(
        class_stats(&p, Side::Wan, "rest").dropped_frames[DropReason::Malformed as usize],
        1
    );
    assert_eq!(p.received(), [3, 0]);
    let out = departures(&mut p, &mut s, Side::Wan);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, f.len() as u32 + 24);
    assert!(class_stats(&p, Side::Wan, "tcp").is_conserved());
}

#[test]
fn a_frame_without_a_buffer_is_counted_as_no_buffer() {
    let mut p = pipeline();
    let mut s = VecStore::new(0);
    let f = tcp(100);
    p.receive(
        Side::Lan,
        &mut f.as_slice(),
        RxInfo::known(f.len(), VnetHdr::NONE),
        0,
        &mut s,
    );
    let st = class_stats(&p, Side::Wan, "tcp");
    assert_eq!(st.dropped_frames[DropReason::NoBuffer as usize], 1);
    assert!(st.is_conserved());
    assert_eq!(p.queued_frames(), 0);
}
