//! Tests of [`parse`]: hand-built and etherparse-built fixtures, truncation at every length, and
//! a differential comparison with etherparse's lax slicer (see `differential` below for the
//! documented places where the two parsers legitimately disagree).

use super::*;
use etherparse::{IpHeaders, Ipv4Header, PacketBuilder};

// ---------------------------------------------------------------------------------------------
// Byte-level fixture builders: exact control over every field, including malformed ones.

// Documentation addresses (RFC 5737, RFC 3849): these frames never reach a network.
pub(crate) const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub(crate) const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
pub(crate) const V4_A: [u8; 4] = [192, 0, 2, 1];
pub(crate) const V4_B: [u8; 4] = [198, 51, 100, 7];
pub(crate) const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(crate) const V6_B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd,
];

fn eth(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Ethernet header with VLAN tags `(tpid, pcp, id)`, outermost first, then `ethertype`.
fn eth_tagged(tags: &[(u16, u8, u16)], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    for &(tpid, pcp, id) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&((u16::from(pcp) << 13) | id).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header; `frag` is the raw flags + offset word; `options` padded by the caller to 4n.
fn ipv4(proto: u8, tos: u8, id: u16, frag: u16, options: &[u8], payload_len: usize) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + payload_len) as u16;
    let mut h = vec![(0x40 | ihl) as u8, tos];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&V4_A);
    h.extend_from_slice(&V4_B);
    h.extend_from_slice(options);
    h
}

fn ipv6(next: u8, traffic_class: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![
        0x60 | (traffic_class >> 4),
        (traffic_class << 4) | 0x0a, // flow label bits must not leak into the traffic class
        0xbc,
        0xde,
    ];
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&V6_A);
    h.extend_from_slice(&V6_B);
    h
}

/// Generic IPv6 extension header of `8 * (1 + len_units)` bytes.
fn ext(next: u8, len_units: u8) -> Vec<u8> {
    let mut e = vec![next, len_units];
    e.resize(8 * (1 + usize::from(len_units)), 0x01); // PadN-ish filler
    e
}

fn frag6(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut e = vec![next, 0];
    e.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    e.extend_from_slice(&id.to_be_bytes());
    e
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0xee);
    u
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn v4(a: [u8; 4]) -> u128 {
    u128::from(u32::from_be_bytes(a))
}

fn v6(a: [u8; 16]) -> u128 {
    u128::from_be_bytes(a)
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

#[test]
fn empty_frame_is_truncated_not_a_panic() {
    let v = parse(&[]);
    assert!(v.truncated);
    assert_eq!(v.l3, L3::Other);
}

#[test]
fn ipv4_tcp_from_packet_builder() {
    let mut ip = Ipv4Header::new(0, 64, etherparse::ip_number::TCP, V4_A, V4_B).unwrap();
    ip.dscp = etherparse::IpDscp::try_new(46).unwrap();
    ip.ecn = etherparse::IpEcn::try_new(1).unwrap();
    ip.identification = 0x1234;
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .tcp(40000, 443, 7, 1024)
        .syn()
        .psh()
        .ack(99);
    let payload = [0u8; 10];
    let mut f = Vec::new();
    b.write(&mut f, &payload).unwrap();

    let v = parse(&f);
    assert_eq!(v.len as usize, f.len());
    assert_eq!(v.dst_mac, MAC_B);
    assert_eq!(v.src_mac, MAC_A);
    assert_eq!(v.vlan_count, 0);
    assert_eq!(v.ethertype, ethertype::IPV4);
    assert_eq!(v.l3, L3::Ipv4);
    assert!(v.is_ip());
    assert_eq!((v.l3_offset, v.l4_offset), (14, 34));
    assert_eq!((v.src_ip, v.dst_ip), (v4(V4_A), v4(V4_B)));
    assert_eq!(v.ip_proto, ipproto::TCP);
    assert_eq!((v.dscp, v.ecn), (46, 1));
    assert!(v.has_ports);
    assert_eq!((v.src_port, v.dst_port), (40000, 443));
    assert_eq!(v.tcp_flags, 0x02 | 0x08 | 0x10); // SYN | PSH | ACK
    assert!(!v.is_fragment && v.is_first_fragment());
    assert_eq!(v.frag_offset, 0);
    assert!(!v.has_icmp && !v.truncated && !v.is_link_control());
}

#[test]
fn ipv4_tcp_all_flags_and_ecn_bits() {
    for flags in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
        for tos in [0x00u8, 0x03, 0xb8, 0xfc, 0xff] {
            let f = cat(&[
                &eth(MAC_B, ethertype::IPV4),
                &ipv4(6, tos, 1, 0, &[], 20),
                &tcp(1, 2, flags),
            ]);
            let v = parse(&f);
            assert_eq!(v.tcp_flags, flags);
            assert_eq!((v.dscp, v.ecn), (tos >> 2, tos & 3));
        }
    }
}

#[test]
fn ipv4_udp_from_packet_builder() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_B, V4_A, 20)
        .udp(5353, 53);
    let mut f = Vec::new();
    b.write(&mut f, &[1, 2, 3]).unwrap();
    let v = parse(&f);
    assert_eq!(v.l3, L3::Ipv4);
    assert_eq!((v.src_ip, v.dst_ip), (v4(V4_B), v4(V4_A)));
    assert_eq!(v.ip_proto, ipproto::UDP);
    assert!(v.has_ports);
    assert_eq!((v.src_port, v.dst_port), (5353, 53));
    assert_eq!(v.tcp_flags, 0);
    assert!(!v.truncated);
}

#[test]
fn ipv4_with_options_skips_them() {
    // IHL = 8: 12 bytes of options (router alert + NOPs + end) before UDP.
    let opts = [
        0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00,
    ];
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV4),
        &ipv4(17, 0x20, 9, 0, &opts, 12),
        &udp(1234, 4321, 4),
    ]);
    let v = parse(&f);
    assert_eq!(v.l3, L3::Ipv4);
    assert!(v.has_ports);
    assert_eq!((v.src_port, v.dst_port), (1234, 4321));
    assert_eq!(v.dscp, 0x20 >> 2);
    assert!(!v.truncated);

    // Same, via etherparse with the maximum 40 bytes of options.
    let mut ip = Ipv4Header::new(0, 64, etherparse::ip_number::TCP, V4_A, V4_B).unwrap();
    ip.options = [0x01u8; 40].into();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .tcp(7, 8, 0, 0)
        .fin();
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    let v = parse(&f);
    assert_eq!((v.src_port, v.dst_port, v.tcp_flags), (7, 8, 0x01));
    assert!(!v.truncated);
}

#[test]
fn ipv4_ihl_beyond_frame_is_truncated() {
    // IHL = 15 claims 60 bytes of header, the frame carries 24.
    let mut ip = ipv4(6, 0, 0, 0, &[0x01; 4], 0);
    ip[0] = 0x4f;
    let v = parse(&cat(&[&eth(MAC_B, ethertype::IPV4), &ip]));
    assert_eq!(v.l3, L3::Ipv4);
    assert_eq!((v.src_ip, v.dst_ip), (v4(V4_A), v4(V4_B)));
    assert!(v.truncated && !v.has_ports);
}

#[test]
fn ipv4_ihl_below_minimum_reads_no_transport() {
    let mut ip = ipv4(6, 0, 0, 0, &[], 20);
    ip[0] = 0x44; // IHL 4 = 16 bytes: invalid
    let v = parse(&cat(&[&eth(MAC_B, ethertype::IPV4), &ip, &tcp(1, 2, 2)]));
    assert!(!v.has_ports);
    // weir reports this as `truncated` (the header it announces cannot be read).
    assert!(v.truncated);
}

#[test]
fn icmp_echo() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .icmpv4_echo_request(1, 2);
    let mut f = Vec::new();
    b.write(&mut f, &[0; 8]).unwrap();
    let v = parse(&f);
    assert_eq!(v.ip_proto, ipproto::ICMP);
    assert!(v.has_icmp && !v.has_ports);
    assert_eq!((v.icmp_type, v.icmp_code), (8, 0));
    assert!(!v.is_neighbor_discovery() && !v.is_link_control());

    // Destination unreachable, port unreachable (3/3), byte-built.
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV4),
        &ipv4(1, 0, 0, 0, &[], 8),
        &[3, 3, 0, 0, 0, 0, 0, 0],
    ]);
    let v = parse(&f);
    assert!(v.has_icmp);
    assert_eq!((v.icmp_type, v.icmp_code), (3, 3));
}

#[test]
fn ipv6_tcp_and_udp() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 64)
        .tcp(22, 50000, 1, 100)
        .rst();
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    let v = parse(&f);
    assert_eq!(v.l3, L3::Ipv6);
    assert_eq!((v.l3_offset, v.l4_offset), (14, 54));
    assert_eq!((v.src_ip, v.dst_ip), (v6(V6_A), v6(V6_B)));
    assert_eq!(v.ip_proto, ipproto::TCP);
    assert_eq!((v.src_port, v.dst_port, v.tcp_flags), (22, 50000, 0x04));
    assert!(!v.is_fragment && !v.truncated);

    // Traffic class 0xb9: DSCP 46 (EF), ECN 1; flow label bits around it must not leak in.
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(17, 0xb9, 12),
        &udp(123, 123, 4),
    ]);
    let v = parse(&f);
    assert_eq!((v.dscp, v.ecn), (46, 1));
    assert_eq!(v.ip_proto, ipproto::UDP);
    assert_eq!((v.src_port, v.dst_port), (123, 123));
}

#[test]
fn ipv6_extension_header_chain() {
    // Hop-by-hop (8) -> destination options (16) -> routing (8) -> fragment (8, first, MF)
    // -> TCP.
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(0, 0, 60),
        &ext(60, 0),
        &ext(43, 1),
        &ext(44, 0),
        &frag6(6, 0, true, 0xdead_beef),
        &tcp(8080, 80, 0x18),
    ]);
    let v = parse(&f);
    assert_eq!(v.l3, L3::Ipv6);
    assert_eq!(v.ip_proto, ipproto::TCP);
    assert!(v.is_fragment && v.is_first_fragment());
    assert_eq!(v.frag_offset, 0);
    assert_eq!(v.frag_id, 0xdead_beef);
    assert!(v.has_ports);
    assert_eq!((v.src_port, v.dst_port, v.tcp_flags), (8080, 80, 0x18));
    assert!(!v.truncated);

    // Authentication header (length in 4-byte units minus 2): 24 bytes here.
    let mut ah = vec![17, 4, 0, 0];
    ah.resize(24, 0x33);
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(51, 0, 32),
        &ah,
        &udp(500, 4500, 0),
    ]);
    let v = parse(&f);
    assert_eq!(v.ip_proto, ipproto::UDP);
    assert_eq!((v.src_port, v.dst_port), (500, 4500));
}

#[test]
fn ipv6_neighbour_solicitation_is_link_control() {
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&V6_B);
    let f = cat(&[
        &eth([0x33, 0x33, 0xff, 0xcc, 0xdd, 0x00], ethertype::IPV6),
        &ipv6(58, 0, ns.len()),
        &ns,
    ]);
    let v = parse(&f);
    assert_eq!(v.ip_proto, ipproto::ICMPV6);
    assert!(v.has_icmp);
    assert_eq!((v.icmp_type, v.icmp_code), (135, 0));
    assert!(v.is_neighbor_discovery());
    assert!(v.is_link_control());

    // Router solicitation (133) and redirect (137) too; 138 (router renumbering) is not ND.
    for (ty, nd) in [
        (133u8, true),
        (136, true),
        (137, true),
        (132, false),
        (138, false),
    ] {
        let f = cat(&[
            &eth(MAC_B, ethertype::IPV6),
            &ipv6(58, 0, 8),
            &[ty, 0, 0, 0, 0, 0, 0, 0],
        ]);
        assert_eq!(parse(&f).is_neighbor_discovery(), nd, "type {ty}");
    }
}

#[test]
fn icmpv6_echo_is_not_neighbour_discovery() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 64)
        .icmpv6_echo_request(5, 6);
    let mut f = Vec::new();
    b.write(&mut f, &[9; 16]).unwrap();
    let v = parse(&f);
    assert!(v.has_icmp);
    assert_eq!((v.icmp_type, v.icmp_code), (128, 0));
    assert!(!v.is_neighbor_discovery());
    assert!(!v.is_link_control());
}

#[test]
fn arp_request() {
    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&V4_A);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&V4_B);
    arp.resize(46, 0); // Ethernet minimum padding
    let f = cat(&[&eth([0xff; 6], ethertype::ARP), &arp]);
    let v = parse(&f);
    assert_eq!(v.l3, L3::Arp);
    assert!(!v.is_ip());
    assert_eq!(v.arp_spa, u32::from_be_bytes(V4_A));
    assert_eq!(v.arp_tpa, u32::from_be_bytes(V4_B));
    assert!(v.is_link_control());
    assert!(!v.truncated);

    // Non-Ethernet/IPv4 ARP: recognised, addresses left zero.
    let mut odd = arp.clone();
    odd[5] = 16;
    let v = parse(&cat(&[&eth([0xff; 6], ethertype::ARP), &odd]));
    assert_eq!(v.l3, L3::Arp);
    assert_eq!((v.arp_spa, v.arp_tpa), (0, 0));

    // Cut before the target address.
    let v = parse(&cat(&[&eth([0xff; 6], ethertype::ARP), &arp[..27]]));
    assert_eq!(v.l3, L3::Arp);
    assert!(v.truncated);
}

#[test]
fn single_vlan_tag() {
    let f = cat(&[
        &eth_tagged(&[(ethertype::VLAN, 5, 100)], ethertype::IPV4),
        &ipv4(17, 0, 0, 0, &[], 8),
        &udp(1, 2, 0),
    ]);
    let v = parse(&f);
    assert_eq!(v.vlan_count, 1);
    assert_eq!(v.vlan[0], VlanTag { id: 100, pcp: 5 });
    assert_eq!(v.ethertype, ethertype::IPV4);
    assert_eq!(v.l3_offset, 18);
    assert_eq!((v.src_port, v.dst_port), (1, 2));

    // The DEI bit sits between PCP and VID and must not leak into either.
    let mut f = f;
    f[14] |= 0x10;
    let v = parse(&f);
    assert_eq!(v.vlan[0], VlanTag { id: 100, pcp: 5 });

    // Extreme values: VID 4095, PCP 7.
    let f = eth_tagged(&[(ethertype::VLAN, 7, 4095)], 0x1234);
    let v = parse(&f);
    assert_eq!(v.vlan[0], VlanTag { id: 4095, pcp: 7 });
    assert_eq!(v.l3, L3::Other);
}

#[test]
fn qinq_double_tag() {
    for outer in [ethertype::QINQ, ethertype::QINQ_OLD, ethertype::VLAN] {
        let f = cat(&[
            &eth_tagged(
                &[(outer, 3, 200), (ethertype::VLAN, 1, 10)],
                ethertype::IPV6,
            ),
            &ipv6(6, 0, 20),
            &tcp(1000, 2000, 0x02),
        ]);
        let v = parse(&f);
        assert_eq!(v.vlan_count, 2);
        assert_eq!(v.vlan[0], VlanTag { id: 200, pcp: 3 });
        assert_eq!(v.vlan[1], VlanTag { id: 10, pcp: 1 });
        assert_eq!(v.l3, L3::Ipv6);
        assert_eq!(v.l3_offset, 22);
        assert_eq!((v.src_port, v.dst_port), (1000, 2000));
    }
}

#[test]
fn three_tags_keep_two_and_stop() {
    let f = cat(&[
        &eth_tagged(
            &[
                (ethertype::QINQ, 0, 1),
                (ethertype::VLAN, 0, 2),
                (ethertype::VLAN, 0, 3),
            ],
            ethertype::IPV4,
        ),
        &ipv4(17, 0, 0, 0, &[], 8),
        &udp(1, 2, 0),
    ]);
    let v = parse(&f);
    assert_eq!(v.vlan_count, 2);
    assert_eq!([v.vlan[0].id, v.vlan[1].id], [1, 2]);
    assert_eq!(v.ethertype, ethertype::VLAN);
    assert_eq!(v.l3, L3::Other);
    assert!(!v.has_ports && !v.truncated);
}

#[test]
fn vlan_tag_cut_short_is_truncated() {
    let f = eth_tagged(&[(ethertype::VLAN, 0, 7)], ethertype::IPV4);
    for len in 14..18 {
        let v = parse(&f[..len]);
        assert!(v.truncated, "len {len}");
        assert_eq!(v.vlan_count, 0);
        assert_eq!(v.ethertype, ethertype::VLAN);
    }
}

#[test]
fn lldp_and_stp_are_link_control() {
    let lldp = cat(&[
        &eth([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e], ethertype::LLDP),
        &[0x02, 0x07, 0x04, 1, 2, 3, 4, 5, 6],
    ]);
    let v = parse(&lldp);
    assert_eq!(v.ethertype, ethertype::LLDP);
    assert_eq!(v.l3, L3::Other);
    assert!(v.is_link_control());

    // LLDP to a non-reserved address is still link control (by ethertype).
    let v = parse(&eth(MAC_B, ethertype::LLDP));
    assert!(v.is_link_control());

    // STP BPDU: 802.3 length field + LLC 42 42 03, to 01:80:c2:00:00:00.
    let stp = cat(&[
        &eth([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00], 38),
        &[0x42, 0x42, 0x03, 0, 0, 0, 0],
    ]);
    let v = parse(&stp);
    assert_eq!(v.ethertype, 38);
    assert_eq!(v.l3, L3::Other);
    assert!(v.is_link_control());
    assert!(!v.truncated);

    // LACP (slow protocols) and pause frames.
    assert!(parse(&eth(
        [0x01, 0x80, 0xc2, 0, 0, 0x02],
        ethertype::SLOW_PROTOCOLS
    ))
    .is_link_control());
    assert!(parse(&eth([0x01, 0x80, 0xc2, 0, 0, 0x01], 0x8808)).is_link_control());
    // Just outside the reserved block, and ordinary unicast: not link control.
    assert!(!parse(&eth([0x01, 0x80, 0xc2, 0, 0, 0x10], 0x1234)).is_link_control());
    assert!(!parse(&eth(MAC_B, 0x1234)).is_link_control());
}

#[test]
fn ipv4_fragments() {
    const ID: u16 = 0xabcd;
    // First fragment: MF set, offset 0: ports are there and are read.
    let first = cat(&[
        &eth(MAC_B, ethertype::IPV4),
        &ipv4(17, 0, ID, 0x2000, &[], 1480),
        &udp(5000, 6000, 1472),
    ]);
    let v = parse(&first);
    assert!(v.is_fragment && v.is_first_fragment());
    assert_eq!(v.frag_offset, 0);
    assert_eq!(v.frag_id, u32::from(ID));
    assert!(v.has_ports);
    assert_eq!((v.src_port, v.dst_port), (5000, 6000));

    // Middle (MF, offset 185) and last (no MF, offset 370): payload bytes only, no ports.
    for (word, offset) in [(0x2000 | 185u16, 185u16), (370, 370)] {
        let f = cat(&[
            &eth(MAC_B, ethertype::IPV4),
            &ipv4(17, 0, ID, word, &[], 16),
            &[0x13, 0x88, 0x17, 0x70, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        ]);
        let v = parse(&f);
        assert!(v.is_fragment && !v.is_first_fragment());
        assert_eq!(v.frag_offset, offset);
        assert_eq!(v.frag_id, u32::from(ID));
        assert_eq!(v.ip_proto, ipproto::UDP);
        assert!(!v.has_ports);
        assert_eq!((v.src_port, v.dst_port), (0, 0));
        assert!(!v.truncated);
    }

    // DF alone is not fragmentation.
    let df = cat(&[
        &eth(MAC_B, ethertype::IPV4),
        &ipv4(6, 0, 1, 0x4000, &[], 20),
        &tcp(1, 2, 0x10),
    ]);
    let v = parse(&df);
    assert!(!v.is_fragment && v.has_ports);
}

#[test]
fn ipv6_fragments() {
    const ID: u32 = 0x8765_4321; // uses all 32 bits
    let first = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(44, 0, 8 + 8),
        &frag6(17, 0, true, ID),
        &udp(53, 40000, 0),
    ]);
    let v = parse(&first);
    assert!(v.is_fragment && v.is_first_fragment());
    assert_eq!((v.frag_offset, v.frag_id), (0, ID));
    assert_eq!(v.ip_proto, ipproto::UDP);
    assert_eq!((v.src_port, v.dst_port), (53, 40000));

    for (offset, more) in [(1u16, true), (8191, false)] {
        let f = cat(&[
            &eth(MAC_B, ethertype::IPV6),
            &ipv6(44, 0, 8 + 8),
            &frag6(17, offset, more, ID),
            &udp(53, 40000, 0),
        ]);
        let v = parse(&f);
        assert!(v.is_fragment && !v.is_first_fragment());
        assert_eq!((v.frag_offset, v.frag_id), (offset, ID));
        assert_eq!(v.ip_proto, ipproto::UDP);
        assert!(!v.has_ports);
    }
}

#[test]
fn ipv4_ethertype_with_version_6_is_opaque() {
    let f = cat(&[&eth(MAC_B, ethertype::IPV4), &ipv6(6, 0, 20), &tcp(1, 2, 2)]);
    let v = parse(&f);
    assert_eq!(v.ethertype, ethertype::IPV4);
    assert_eq!(v.l3, L3::Other);
    assert!(!v.is_ip() && !v.has_ports && !v.truncated);
    assert_eq!((v.src_ip, v.dst_ip, v.l3_offset), (0, 0, 0));

    // And the converse: IPv6 ethertype, IPv4 bytes.
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv4(6, 0, 0, 0, &[], 40),
        &tcp(1, 2, 2),
        &[0; 20],
    ]);
    let v = parse(&f);
    assert_eq!(v.l3, L3::Other);
    assert!(!v.has_ports);
}

#[test]
fn unknown_ethertype_is_other() {
    let v = parse(&cat(&[&eth(MAC_B, 0x88b5), &[0; 46]]));
    assert_eq!(v.l3, L3::Other);
    assert_eq!(v.ethertype, 0x88b5);
    assert!(!v.truncated && !v.is_link_control());
}

// ---------------------------------------------------------------------------------------------
// Truncation at every length.

#[test]
fn truncated_ipv6_tcp_at_every_length() {
    // VLAN tag (4) + IPv6 (40) + hop-by-hop (8) + TCP (20) + 6 payload bytes.
    let full = cat(&[
        &eth_tagged(&[(ethertype::VLAN, 6, 42)], ethertype::IPV6),
        &ipv6(0, 0x28, 34),
        &ext(6, 0),
        &tcp(33000, 443, 0x11),
        &[1, 2, 3, 4, 5, 6],
    ]);
    let (vlan_end, ip_end, ext_end, l4) = (18usize, 58usize, 60usize, 66usize);
    let reference = parse(&full);
    assert!(!reference.truncated);
    for len in 0..=full.len() {
        let v = parse(&full[..len]);
        assert_eq!(v.len as usize, len);
        if len >= 6 {
            assert_eq!(v.dst_mac, MAC_B, "len {len}");
        }
        if len >= vlan_end {
            assert_eq!(v.vlan[0], VlanTag { id: 42, pcp: 6 }, "len {len}");
            assert_eq!(v.ethertype, ethertype::IPV6);
        }
        if len >= ip_end {
            assert_eq!(v.l3, L3::Ipv6, "len {len}");
            assert_eq!((v.src_ip, v.dst_ip), (v6(V6_A), v6(V6_B)));
            assert_eq!((v.dscp, v.ecn), (0x28 >> 2, 0));
        } else {
            assert_eq!(v.l3, L3::Other, "len {len}");
        }
        if len >= ext_end {
            assert_eq!(v.ip_proto, ipproto::TCP, "len {len}");
        } else if len >= ip_end {
            // Stopped inside the hop-by-hop header: the protocol is that header's number.
            assert_eq!(v.ip_proto, 0, "len {len}");
        }
        assert_eq!(v.has_ports, len >= l4 + 4, "len {len}");
        if v.has_ports {
            assert_eq!((v.src_port, v.dst_port), (33000, 443));
        }
        if len >= l4 + 14 {
            assert_eq!(v.tcp_flags, 0x11);
        }
        // Everything up to the TCP flags byte is needed; the payload is not.
        assert_eq!(v.truncated, len < l4 + 14, "len {len}");
        if len == full.len() {
            assert_eq!(v, reference);
        }
    }
}

#[test]
fn truncated_ipv4_udp_and_icmp_at_every_length() {
    let udp_frame = cat(&[
        &eth(MAC_B, ethertype::IPV4),
        &ipv4(17, 0, 0, 0, &[0x01; 4], 8),
        &udp(9, 10, 0),
    ]);
    for len in 0..=udp_frame.len() {
        let v = parse(&udp_frame[..len]);
        assert_eq!(v.l3 == L3::Ipv4, len >= 34, "len {len}");
        assert_eq!(v.has_ports, len >= 42, "len {len}");
        assert_eq!(v.truncated, len < 42, "len {len}");
    }
    let icmp_frame = cat(&[
        &eth(MAC_B, ethertype::IPV4),
        &ipv4(1, 0, 0, 0, &[], 8),
        &[0, 0, 0, 0, 0, 0, 0, 0],
    ]);
    for len in 0..=icmp_frame.len() {
        let v = parse(&icmp_frame[..len]);
        assert_eq!(v.has_icmp, len >= 36, "len {len}");
        assert_eq!(v.truncated, len < 36, "len {len}");
    }
}

#[test]
fn truncated_ipv6_extension_chain_at_every_length_never_panics() {
    let full = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(0, 0, 80),
        &ext(60, 0),
        &ext(44, 2),
        &frag6(51, 0, true, 7),
        &[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &tcp(1, 2, 3),
    ]);
    for len in 0..=full.len() {
        let v = parse(&full[..len]);
        assert_eq!(v.truncated, len < full.len() - 6, "len {len}");
    }
    assert_eq!(parse(&full).ip_proto, ipproto::TCP);
}

// ---------------------------------------------------------------------------------------------
// Regressions.

/// In a non-first IPv6 fragment the bytes after the fragment header are a slice of the
/// fragmentable part (RFC 8200 §4.5), not headers: they must not be walked as an extension
/// chain. Here the payload happens to look like destination options followed by a fragment
/// header with offset 0 and a TCP header; the old walk reset `frag_offset` to 0 and read
/// "ports" out of the payload of a middle fragment.
#[test]
fn regression_ipv6_non_first_fragment_payload_is_not_walked() {
    let payload = cat(&[
        &ext(44, 0),
        &frag6(6, 0, false, 0x1111_1111),
        &tcp(443, 80, 2),
    ]);
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(44, 0, 8 + payload.len()),
        &frag6(60, 100, true, 0x2222_2222),
        &payload,
    ]);
    let v = parse(&f);
    assert!(v.is_fragment && !v.is_first_fragment());
    assert_eq!(v.frag_offset, 100);
    assert_eq!(v.frag_id, 0x2222_2222);
    // The fragment header's next header: the first header of the fragmentable part.
    assert_eq!(v.ip_proto, 60);
    assert!(!v.has_ports);
    assert_eq!((v.src_port, v.dst_port, v.tcp_flags), (0, 0, 0));
    assert!(!v.truncated);

    // An AH in the fragmentable part (RFC 8200 order: fragment, then AH) is the common real
    // case: the middle fragment must report AH, not whatever its payload bytes decode to.
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(44, 0, 8 + 24),
        &frag6(51, 3, false, 9),
        &[
            0x11, 0x00, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ],
    ]);
    let v = parse(&f);
    assert_eq!(v.ip_proto, 51);
    assert!(!v.has_ports && !v.truncated);
}

/// An atomic fragment (fragment header with offset 0 and M = 0, RFC 6946) is a whole datagram,
/// as IPv4 with DF/no MF is: `is_fragment` must be false so fragment rules do not match it.
#[test]
fn regression_ipv6_atomic_fragment_is_not_a_fragment() {
    let f = cat(&[
        &eth(MAC_B, ethertype::IPV6),
        &ipv6(44, 0, 8 + 8),
        &frag6(17, 0, false, 77),
        &udp(1, 2, 0),
    ]);
    let v = parse(&f);
    assert!(!v.is_fragment && v.is_first_fragment());
    assert_eq!(v.frag_offset, 0);
    assert_eq!(v.frag_id, 77); // still recorded, as for IPv4
    assert_eq!((v.ip_proto, v.src_port, v.dst_port), (ipproto::UDP, 1, 2));
}

/// A non-first IPv4 fragment whose IHL runs past the end of the frame announced a header the
/// frame does not hold: `truncated`, as for a first fragment (found by the differential test).
#[test]
fn regression_ipv4_non_first_fragment_with_ihl_beyond_frame_is_truncated() {
    let mut ip = ipv4(6, 0, 0, 1, &[], 0);
    ip[0] = 0x49; // 36-byte header, 20 present
    let v = parse(&cat(&[&eth(MAC_B, ethertype::IPV4), &ip]));
    assert_eq!(v.l3, L3::Ipv4);
    assert_eq!(v.frag_offset, 1);
    assert!(v.truncated && !v.has_ports);
    // With the header complete, a non-first fragment is not truncated.
    let v = parse(&cat(&[&eth(MAC_B, ethertype::IPV4), &ip, &[0; 16]]));
    assert!(!v.truncated && !v.has_ports);
}

// ---------------------------------------------------------------------------------------------
// Differential tests against etherparse's lax slicer.
//
// Where the two parsers legitimately differ (found while writing these; the comparisons skip
// exactly these cases):
// - VLAN depth: etherparse decodes up to 3 link extensions (VLAN or MACsec); weir decodes 2
//   VLAN tags and treats deeper stacks, and MACsec (0x88e5), as opaque.
// - IP version: etherparse picks IPv4/IPv6 from the version nibble whatever the ethertype says;
//   weir requires the ethertype and the nibble to agree, else the frame is opaque.
// - IPv4 length fields: etherparse limits the payload to `total_len` (when it fits the frame)
//   and may then report a length error for the transport; weir ignores `total_len` and reads
//   the transport from the frame bytes (Ethernet padding can thus be read as ports of a
//   datagram whose `total_len` says it has none). The same holds for IPv6 `payload_len`.
// - IPv4 IHL < 5: etherparse rejects the header (no net layer); weir reports Ipv4 with the
//   addresses and `truncated = true`, no transport.
// - IPv4 AH (protocol 51): etherparse decodes the AH and the transport after it; weir stops
//   with ip_proto 51 and no ports.
// - IPv6 extension headers: weir also walks mobility (135), HIP (139) and shim6 (140), which
//   etherparse treats as upper-layer protocols; etherparse stops with an error on a
//   hop-by-hop header that is not first, weir walks it; weir caps the walk at 16 headers.
// - Fragments: etherparse gives no transport for any fragment, first included; weir reads
//   the ports of a first fragment (offset 0, MF/M set). For a non-first IPv6 fragment,
//   etherparse keeps walking extension headers after the fragment header, weir stops there.
// - Transport completeness: etherparse needs the whole TCP header (data offset, options) and
//   8 bytes of ICMP; weir reads ports from 4 bytes, TCP flags from 14, ICMP type/code from 2.
//   Also weir reads SCTP and UDP-Lite ports, which etherparse does not decode.
// - ARP: etherparse accepts any hardware/protocol lengths; weir reads the addresses of
//   Ethernet/IPv4 ARP only.
mod differential {
    use super::*;
    use etherparse::{
        EtherType, IpNumber, Ipv6Header, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket,
        SingleVlanHeader, TransportSlice, VlanHeader, VlanId, VlanPcp,
    };
    use proptest::prelude::*;

    /// Compares `parse(frame)` with etherparse where both claim a full parse of a layer.
    fn check(frame: &[u8]) -> Result<(), TestCaseError> {
        let v = parse(frame);
        prop_assert_eq!(v.len as usize, frame.len());
        let Ok(ep) = LaxSlicedPacket::from_ethernet(frame) else {
            // Shorter than an Ethernet header.
            prop_assert!(frame.len() < 14 && v.truncated);
            return Ok(());
        };
        prop_assert_eq!(&v.dst_mac[..], &frame[..6]);
        prop_assert_eq!(&v.src_mac[..], &frame[6..12]);

        // Link extensions: compare the VLAN tags both decoded.
        let mut ep_tags = Vec::new();
        for e in &ep.link_exts {
            match e {
                LaxLinkExtSlice::Vlan(s) => ep_tags.push(VlanTag {
                    id: s.vlan_identifier().value(),
                    pcp: s.priority_code_point().value(),
                }),
                LaxLinkExtSlice::Macsec(_) => return Ok(()), // weir: opaque
            }
        }
        let n = usize::from(v.vlan_count);
        prop_assert_eq!(n, ep_tags.len().min(MAX_VLAN_TAGS));
        prop_assert_eq!(&v.vlan[..n], &ep_tags[..n]);
        if ep_tags.len() > MAX_VLAN_TAGS {
            prop_assert_eq!(v.l3, L3::Other);
            return Ok(());
        }
        if ep_tags.len() == MAX_VLAN_TAGS
            && matches!(
                v.ethertype,
                ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
            )
        {
            // A third tag etherparse could not read (too short): weir stops at two anyway.
            return Ok(());
        }

        let stopped_clean = ep.stop_err.is_none();
        match &ep.net {
            Some(LaxNetSlice::Ipv4(ip)) if v.ethertype == ethertype::IPV4 => {
                let h = ip.header();
                prop_assert_eq!(v.l3, L3::Ipv4);
                prop_assert_eq!(v.src_ip, u128::from(u32::from_be_bytes(h.source())));
                prop_assert_eq!(v.dst_ip, u128::from(u32::from_be_bytes(h.destination())));
                prop_assert_eq!(v.ip_proto, h.protocol().0);
                prop_assert_eq!(v.dscp, h.dcp().value());
                prop_assert_eq!(v.ecn, h.ecn().value());
                prop_assert_eq!(v.frag_id, u32::from(h.identification()));
                prop_assert_eq!(v.frag_offset, h.fragments_offset().value());
                prop_assert_eq!(v.is_fragment, h.is_fragmenting_payload());
            }
            Some(LaxNetSlice::Ipv6(ip)) if v.ethertype == ethertype::IPV6 => {
                let h = ip.header();
                prop_assert_eq!(v.l3, L3::Ipv6);
                prop_assert_eq!(v.src_ip, u128::from_be_bytes(h.source()));
                prop_assert_eq!(v.dst_ip, u128::from_be_bytes(h.destination()));
                prop_assert_eq!(v.dscp, h.dscp().value());
                prop_assert_eq!(v.ecn, h.ecn().value());
                let last = ip.payload().ip_number.0;
                // Same final protocol when etherparse walked the chain cleanly, the payload is
                // not fragmented (weir stops at non-first fragments) and the chain does not
                // end in a header only weir walks.
                if stopped_clean && !ip.is_payload_fragmented() && ![135, 139, 140].contains(&last)
                {
                    prop_assert_eq!(v.ip_proto, last);
                }
            }
            Some(LaxNetSlice::Arp(arp)) => {
                prop_assert_eq!(v.l3, L3::Arp);
                let a = arp.slice();
                if a.len() >= 28 && a[..6] == [0, 1, 0x08, 0x00, 6, 4] {
                    prop_assert_eq!(v.arp_spa, u32::from_be_bytes([a[14], a[15], a[16], a[17]]));
                    prop_assert_eq!(v.arp_tpa, u32::from_be_bytes([a[24], a[25], a[26], a[27]]));
                }
            }
            None if v.is_ip() => {
                // etherparse refused the IP header; weir only accepts it with a bad IHL
                // (below 5 or beyond the frame), and then says so.
                prop_assert!(v.truncated);
                prop_assert!(!v.has_ports && !v.has_icmp);
            }
            _ => {}
        }

        // Transport: only when etherparse parsed it without any stop error, on an IP header
        // weir accepted, and not after an IPv4 AH (which weir does not skip).
        let weir_ip_agrees = match &ep.net {
            Some(LaxNetSlice::Ipv4(ip)) => {
                v.ethertype == ethertype::IPV4 && ip.header().protocol().0 != 51
            }
            Some(LaxNetSlice::Ipv6(_)) => v.ethertype == ethertype::IPV6,
            _ => false,
        };
        if stopped_clean && weir_ip_agrees {
            match &ep.transport {
                Some(TransportSlice::Tcp(t)) => {
                    prop_assert!(v.has_ports);
                    prop_assert_eq!(v.ip_proto, ipproto::TCP);
                    prop_assert_eq!(
                        (v.src_port, v.dst_port),
                        (t.source_port(), t.destination_port())
                    );
                    prop_assert_eq!(v.tcp_flags, t.slice()[13]);
                }
                Some(TransportSlice::Udp(u)) => {
                    prop_assert!(v.has_ports);
                    prop_assert_eq!(v.ip_proto, ipproto::UDP);
                    prop_assert_eq!(
                        (v.src_port, v.dst_port),
                        (u.source_port(), u.destination_port())
                    );
                }
                Some(TransportSlice::Icmpv4(i)) => {
                    prop_assert!(v.has_icmp);
                    prop_assert_eq!((v.icmp_type, v.icmp_code), (i.type_u8(), i.code_u8()));
                }
                Some(TransportSlice::Icmpv6(i)) => {
                    prop_assert!(v.has_icmp);
                    prop_assert_eq!((v.icmp_type, v.icmp_code), (i.type_u8(), i.code_u8()));
                }
                Some(TransportSlice::Igmp(_)) | None => {}
            }
        }
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Vlans {
        None,
        One(u16, u8),
        Two((u16, u8), (u16, u8)),
    }

    #[derive(Clone, Debug)]
    enum Ip {
        V4([u8; 4], [u8; 4]),
        V6([u8; 16], [u8; 16]),
    }

    fn vlans() -> impl Strategy<Value = Vlans> {
        let tag = (0u16..4096, 0u8..8);
        prop_oneof![
            Just(Vlans::None),
            tag.clone().prop_map(|(i, p)| Vlans::One(i, p)),
            (tag.clone(), tag).prop_map(|(a, b)| Vlans::Two(a, b)),
        ]
    }

    fn ips() -> impl Strategy<Value = Ip> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| Ip::V4(s, d)),
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Ip::V6(s, d)),
        ]
    }

    fn single(id: u16, pcp: u8) -> SingleVlanHeader {
        SingleVlanHeader {
            pcp: VlanPcp::try_new(pcp).unwrap(),
            drop_eligible_indicator: false,
            vlan_id: VlanId::try_new(id).unwrap(),
            ether_type: EtherType(0), // set by the builder
        }
    }

    proptest! {
        /// Well-formed packets built by etherparse: every field weir reports must match.
        #[test]
        fn generated_packets_match_etherparse(
            vl in vlans(),
            ip in ips(),
            tcp in any::<bool>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
            dscp in 0u8..64,
            ecn in 0u8..4,
            payload_len in 0usize..300,
        ) {
            let headers = match ip {
                Ip::V4(s, d) => {
                    let mut h = Ipv4Header::new(0, 64, IpNumber(0), s, d).unwrap();
                    h.dscp = etherparse::IpDscp::try_new(dscp).unwrap();
                    h.ecn = etherparse::IpEcn::try_new(ecn).unwrap();
                    IpHeaders::Ipv4(h, Default::default())
                }
                Ip::V6(s, d) => IpHeaders::Ipv6(
                    Ipv6Header {
                        traffic_class: (dscp << 2) | ecn,
                        flow_label: Default::default(),
                        payload_length: 0,
                        next_header: IpNumber(0),
                        hop_limit: 64,
                        source: s,
                        destination: d,
                    },
                    Default::default(),
                ),
            };
            let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
            let step = match vl {
                Vlans::None => eth.ip(headers),
                Vlans::One(i, p) => eth.vlan(VlanHeader::Single(single(i, p))).ip(headers),
                Vlans::Two((oi, op), (ii, ip)) => eth
                    .vlan(VlanHeader::Double(etherparse::DoubleVlanHeader {
                        outer: single(oi, op),
                        inner: single(ii, ip),
                    }))
                    .ip(headers),
            };
            let payload = vec![0x5a; payload_len];
            let mut f = Vec::new();
            if tcp {
                step.tcp(sport, dport, 1, 100).syn().write(&mut f, &payload).unwrap();
            } else {
                step.udp(sport, dport).write(&mut f, &payload).unwrap();
            }

            let v = parse(&f);
            prop_assert!(!v.truncated);
            prop_assert!(v.is_ip() && v.has_ports && !v.is_fragment);
            prop_assert_eq!((v.src_port, v.dst_port), (sport, dport));
            prop_assert_eq!(v.ip_proto, if tcp { ipproto::TCP } else { ipproto::UDP });
            prop_assert_eq!((v.dscp, v.ecn), (dscp, ecn));
            let expect_tags = match vl {
                Vlans::None => vec![],
                Vlans::One(i, p) => vec![VlanTag { id: i, pcp: p }],
                Vlans::Two((oi, op), (ii, ip)) => {
                    vec![VlanTag { id: oi, pcp: op }, VlanTag { id: ii, pcp: ip }]
                }
            };
            prop_assert_eq!(&v.vlan[..usize::from(v.vlan_count)], &expect_tags[..]);
            check(&f)?;
            // Every prefix, too: no panic, and agreement wherever both parse.
            for cut in [0, 13, 14, 17, 18, 21, 22, 33, 37, 41, 53, 57, 61, f.len() - 1] {
                if cut <= f.len() {
                    check(&f[..cut])?;
                }
            }
        }

        /// Arbitrary bytes: never a panic; agreement where both claim a full parse.
        #[test]
        fn arbitrary_bytes_never_panic_and_agree(frame in proptest::collection::vec(any::<u8>(), 0..2000)) {
            check(&frame)?;
        }

    }

    proptest! {
        // Cheap cases; more of them so the transport comparison runs a few hundred times.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Arbitrary bytes behind a plausible link header: reaches the IP and transport paths
        /// far more often than uniform bytes do.
        #[test]
        fn plausible_headers_with_arbitrary_rest_agree(
            tags in proptest::collection::vec(
                prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x9100)], 0..=3),
            ethertype in prop_oneof![
                3 => Just(0x0800u16), 3 => Just(0x86dd), 1 => Just(0x0806), 1 => any::<u16>()],
            first in prop_oneof![
                3 => Just(0x45u8), 3 => Just(0x60), 1 => 0x40u8..0x50, 1 => 0x60u8..0x70, 1 => any::<u8>()],
            next in prop_oneof![
                4 => Just(6u8), 4 => Just(17), 1 => Just(1), 1 => Just(58), 1 => Just(0),
                1 => Just(43), 1 => Just(44), 1 => Just(51), 1 => Just(60), 1 => Just(132),
                1 => any::<u8>()],
            frag_word in prop_oneof![
                3 => Just(0u16), 2 => Just(0x4000), 1 => Just(0x2000), 1 => any::<u16>()],
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut f = Vec::new();
            f.extend_from_slice(&MAC_B);
            f.extend_from_slice(&MAC_A);
            for t in &tags {
                f.extend_from_slice(&t.to_be_bytes());
                f.extend_from_slice(&[0x20, 0x05]);
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
            let ip_start = f.len();
            f.push(first);
            f.extend_from_slice(&rest);
            // Put the protocol / next-header and fragment fields where each version has them,
            // when the random tail is long enough.
            if f.len() > ip_start + 9 && first >> 4 == 4 {
                f[ip_start + 6..ip_start + 8].copy_from_slice(&frag_word.to_be_bytes());
                f[ip_start + 9] = next;
            }
            if f.len() > ip_start + 6 && first >> 4 == 6 {
                f[ip_start + 6] = next;
            }
            check(&f)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PPPoE sessions.

/// A PPPoE session header for `protocol` carrying `len` bytes of PPP payload.
fn pppoe(protocol: u16, len: usize) -> Vec<u8> {
    let mut h = vec![0x11, 0x00, 0x12, 0x34];
    h.extend_from_slice(&((len + 2) as u16).to_be_bytes());
    h.extend_from_slice(&protocol.to_be_bytes());
    h
}

#[test]
fn ip_inside_a_pppoe_session_is_parsed() {
    let ip = cat(&[
        &ipv4(17, 0xb8, 1, 0, &[], 8 + 4),
        &udp(5060, 5060, 4),
        &[0; 4],
    ]);
    let f = cat(&[
        &eth(MAC_B, ethertype::PPPOE_SESSION),
        &pppoe(ppp::IPV4, ip.len()),
        &ip,
    ]);
    let v = parse(&f);
    assert_eq!(v.l3, L3::Ipv4);
    assert_eq!(v.ethertype, ethertype::PPPOE_SESSION);
    assert_eq!(usize::from(v.l3_offset), 14 + PPPOE_HEADER);
    assert_eq!((v.src_port, v.dst_port, v.dscp), (5060, 5060, 46));
    assert!(v.has_ports && !v.truncated && !v.is_link_control());

    let ip6 = cat(&[&ipv6(6, 0, 20), &tcp(40000, 443, 0x02)]);
    let f6 = cat(&[
        &eth_tagged(
            &[(0x88a8, 0, 10), (0x8100, 0, 20)],
            ethertype::PPPOE_SESSION,
        ),
        &pppoe(ppp::IPV6, ip6.len()),
        &ip6,
    ]);
    let v = parse(&f6);
    assert_eq!((v.l3, v.vlan_count, v.dst_port), (L3::Ipv6, 2, 443));
    // Cut anywhere in the session header: truncated, never a panic.
    for cut in 14 + 8..14 + 8 + PPPOE_HEADER {
        assert!(parse(&f6[..cut]).truncated, "{cut}");
    }
}

#[test]
fn ppp_control_and_pppoe_discovery_are_link_control() {
    // LCP echo-request (0xc021), IPCP (0x8021): the session dies if they are lost.
    for protocol in [0xc021, 0x8021, 0x8057, 0xc023] {
        let f = cat(&[
            &eth(MAC_B, ethertype::PPPOE_SESSION),
            &pppoe(protocol, 8),
            &[9, 1, 0, 8, 0, 0, 0, 0],
        ]);
        let v = parse(&f);
        assert!(v.is_link_control() && v.l3 == L3::Other, "{protocol:04x}");
    }
    let padi = cat(&[
        &eth([0xff; 6], ethertype::PPPOE_DISCOVERY),
        &[0x11, 0x09, 0, 0, 0, 0],
    ]);
    assert!(parse(&padi).is_link_control());
    // A data protocol that is not IP (MPLS, 0x0281): neither IP nor control.
    let mpls = cat(&[
        &eth(MAC_B, ethertype::PPPOE_SESSION),
        &pppoe(0x0281, 4),
        &[0; 4],
    ]);
    let v = parse(&mpls);
    assert!(!v.is_link_control() && v.l3 == L3::Other);
    // A session header of another version or code is not read.
    let mut bad = cat(&[
        &eth(MAC_B, ethertype::PPPOE_SESSION),
        &pppoe(ppp::IPV4, 20),
        &ipv4(6, 0, 0, 0, &[], 0),
    ]);
    bad[14] = 0x21;
    assert_eq!(parse(&bad).l3, L3::Other);
}
