use super::flow::FlowKey;
use crate::wire::parse;
use etherparse::PacketBuilder;

const A4: [u8; 4] = [198, 18, 0, 10];
const B4: [u8; 4] = [198, 19, 1, 20];
const A6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const B6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

pub(crate) fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 1000)
        .write(&mut f, &vec![0u8; payload])
        .unwrap();
    f
}

fn udp6_vlan(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, vlan: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(vlan.try_into().unwrap())
        .ipv6(src, dst, 64)
        .udp(sport, dport)
        .write(&mut f, &[1, 2, 3])
        .unwrap();
    f
}

#[test]
fn both_directions_of_a_connection_share_one_flow_key() {
    let there = parse(&tcp4(A4, B4, 40000, 443, 10));
    let back = parse(&tcp4(B4, A4, 443, 40000, 10));
    assert_eq!(FlowKey::of(&there), FlowKey::of(&back));
    assert_eq!(FlowKey::of(&there).hash64(), FlowKey::of(&back).hash64());
    let other = parse(&tcp4(A4, B4, 40001, 443, 10));
    assert_ne!(FlowKey::of(&there), FlowKey::of(&other));

    let there6 = parse(&udp6_vlan(A6, B6, 5000, 6000, 100));
    let back6 = parse(&udp6_vlan(B6, A6, 6000, 5000, 100));
    assert_eq!(FlowKey::of(&there6), FlowKey::of(&back6));
    // The VLAN is part of the key.
    let other_vlan = parse(&udp6_vlan(A6, B6, 5000, 6000, 101));
    assert_ne!(FlowKey::of(&there6), FlowKey::of(&other_vlan));
}

#[test]
fn flow_hashes_are_never_zero_and_spread() {
    let mut seen = std::collections::HashSet::new();
    for p in 0..2000u16 {
        let v = parse(&tcp4(A4, B4, 1024 + p, 80, 0));
        let h = FlowKey::of(&v).hash64();
        assert_ne!(h, 0);
        seen.insert(h & 1023);
    }
    // 2000 flows into 1024 buckets: a decent hash leaves few empty.
    assert!(seen.len() > 800, "{} buckets used", seen.len());
}
