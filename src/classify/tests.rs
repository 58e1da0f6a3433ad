use super::flow::FlowKey;
use super::*;
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

fn classifier(rules: &[(&str, &str)]) -> Classifier {
    // Class 0 is control; classes 1.. follow `rules`; the last one is the default.
    let port = || {
        let mut matches = Vec::new();
        let mut default_class = 0;
        for (i, (_, src)) in rules.iter().enumerate() {
            let id = (i + 1) as ClassId;
            if *src == "default" {
                default_class = id;
            } else {
                matches.push(MatchEntry {
                    class: id,
                    rule: Rule::parse(src).unwrap(),
                });
            }
        }
        PortRules {
            matches,
            default_class,
            control_class: 0,
            fairness: vec![Fairness::Flow; rules.len() + 1],
            name_sets: vec![(
                "video".into(),
                vec!["*.video.example".into(), "vod.example".into()],
            )],
            watch: Vec::new(),
        }
    };
    Classifier::new([port(), port()], 1024, 60_000_000_000)
}

fn udp4_fragments(sport: u16, dport: u16) -> (Vec<u8>, Vec<u8>) {
    // First fragment: MF set, offset 0, carries the UDP header. Second: offset 1 (8 bytes).
    let mut first = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(A4, B4, 64)
        .udp(sport, dport)
        .write(&mut first, &[0u8; 32])
        .unwrap();
    first[18..20].copy_from_slice(&0x1234u16.to_be_bytes()); // identification
    first[20..22].copy_from_slice(&0x2000u16.to_be_bytes()); // MF, offset 0
    let mut second = first[..34].to_vec();
    second[20..22].copy_from_slice(&0x0001u16.to_be_bytes()); // offset 1, last
    second.extend_from_slice(&[0xaa; 16]);
    (first, second)
}

#[test]
fn fragments_of_a_datagram_get_its_class() {
    let mut c = classifier(&[("dns", "udp port 53"), ("rest", "default")]);
    let (first, second) = udp4_fragments(40000, 53);
    let v1 = parse(&first);
    let v2 = parse(&second);
    assert!(v2.is_fragment && !v2.has_ports);
    assert_eq!(c.classify(&v1, Side::Wan, 0).class, 1);
    let later = c.classify(&v2, Side::Wan, 1);
    assert_eq!(later.class, 1, "non-first fragment follows its datagram");
    assert_eq!(c.stats().fragments.matched, 1);
    // Same flow, so the same fairness bucket.
    assert_eq!(
        later.fairness_hash,
        c.classify(&v1, Side::Wan, 2).fairness_hash
    );
    // A stray fragment with no first fragment seen goes by what it carries.
    let mut stray = second.clone();
    stray[18..20].copy_from_slice(&0x9999u16.to_be_bytes());
    assert_eq!(c.classify(&parse(&stray), Side::Wan, 3).class, 2);
    assert_eq!(c.stats().fragments.unmatched, 1);
}

#[test]
fn per_frame_rules_are_evaluated_on_every_frame_despite_the_cache() {
    let mut c = classifier(&[
        ("acks", "tcp and len < 100"),
        ("web", "tcp port 443"),
        ("rest", "default"),
    ]);
    let small = parse(&tcp4(A4, B4, 40000, 443, 0));
    let big = parse(&tcp4(A4, B4, 40000, 443, 1000));
    assert_eq!(c.classify(&big, Side::Wan, 0).class, 2);
    assert_eq!(
        c.classify(&small, Side::Wan, 1).class,
        1,
        "same flow, but small"
    );
    assert_eq!(c.classify(&big, Side::Wan, 2).class, 2);
    let s = c.stats().flows;
    assert_eq!(
        (s.misses, s.hits),
        (1, 2),
        "one rule evaluation for the flow, then lookups"
    );
}

#[test]
fn directions_are_cached_apart() {
    let mut c = classifier(&[("to-web", "dst port 80"), ("rest", "default")]);
    let up = parse(&tcp4(A4, B4, 40000, 80, 10));
    let down = parse(&tcp4(B4, A4, 80, 40000, 10));
    assert_eq!(c.classify(&up, Side::Wan, 0).class, 1);
    assert_eq!(c.classify(&down, Side::Lan, 1).class, 2);
    assert_eq!(c.classify(&up, Side::Wan, 2).class, 1);
}

#[test]
fn vlan_ipv6_and_control_frames() {
    let mut c = classifier(&[("v100", "vlan 100 and ip6 and udp"), ("rest", "default")]);
    assert_eq!(
        c.classify(&parse(&udp6_vlan(A6, B6, 1, 2, 100)), Side::Wan, 0)
            .class,
        1
    );
    assert_eq!(
        c.classify(&parse(&udp6_vlan(A6, B6, 1, 2, 200)), Side::Wan, 0)
            .class,
        2
    );
    // ARP goes to the control class, whatever the rules say.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&A4);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&B4);
    assert_eq!(c.classify(&parse(&arp), Side::Wan, 0).class, 0);
    // Truncated garbage still gets a class.
    assert_eq!(c.classify(&parse(&[1, 2, 3]), Side::Lan, 0).class, 2);
}

fn tcp4_with(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(A4, B4, 64)
        .tcp(sport, dport, 1, 1000)
        .write(&mut f, payload)
        .unwrap();
    f
}

fn udp4_with(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(A4, B4, 64)
        .udp(sport, dport)
        .write(&mut f, payload)
        .unwrap();
    f
}

fn classify_bytes(c: &mut Classifier, f: &[u8], now: Nanos) -> ClassId {
    c.classify_frame(&parse(f), f, Side::Wan, now).class
}

#[test]
fn a_flow_moves_once_when_its_server_name_is_learnt() {
    use crate::classify::payload::tests::client_hello;
    let mut c = classifier(&[
        ("video", "domain '*.video.example'"),
        ("web", "tcp port 443"),
        ("rest", "default"),
    ]);
    // Handshake frames without payload: the other rules decide, and the flow keeps looking.
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40000, 443, &[]), 0), 2);
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40000, 443, &[]), 1), 2);
    let hello = client_hello(Some(b"cdn7.video.example"));
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40000, 443, &hello), 2), 1);
    // From then on the flow is in its named class, both ways.
    assert_eq!(
        classify_bytes(&mut c, &tcp4_with(40000, 443, &[0; 100]), 3),
        1
    );
    let back = tcp4(B4, A4, 443, 40000, 100);
    assert_eq!(
        c.classify_frame(&parse(&back), &back, Side::Lan, 4).class,
        1
    );
    let s = c.stats().names;
    assert_eq!((s.learnt, s.not_found, s.frames_before), (1, 0, 2));
    // Another name does not match; the flow stays where the port rule put it.
    let other = client_hello(Some(b"www.example.org"));
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40001, 443, &other), 5), 2);
    let mut names = Vec::new();
    c.for_each_flow(6, |f| {
        names.extend(f.server.map(|(s, n)| (s, n.as_str().to_string())))
    });
    names.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        names,
        [
            (payload::NameSource::Sni, "cdn7.video.example".to_string()),
            (payload::NameSource::Sni, "www.example.org".to_string())
        ]
    );
}

#[test]
fn a_set_of_globs_matches_any_of_its_names() {
    use crate::classify::payload::tests::client_hello;
    // The test classifier's config has `video: ["*.video.example", "vod.example"]`.
    let mut c = classifier(&[("video", "sni @video"), ("rest", "default")]);
    for (port, name, class) in [
        (40000, &b"a.video.example"[..], 1),
        (40001, b"vod.example", 1),
        (40002, b"video.example", 2),
    ] {
        let f = tcp4_with(port, 443, &client_hello(Some(name)));
        assert_eq!(classify_bytes(&mut c, &f, 0), class, "{name:?}");
    }
}

#[test]
fn a_flow_without_a_name_gives_up_after_a_few_payload_frames() {
    let mut c = classifier(&[("named", "domain example.com"), ("rest", "default")]);
    for i in 0..10 {
        assert_eq!(
            classify_bytes(&mut c, &tcp4_with(40000, 80, b"\x00binary"), i),
            2
        );
    }
    let s = c.stats().names;
    assert_eq!((s.learnt, s.not_found), (0, 1));
    // A Host header after the flow gave up is not read.
    let late = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40000, 80, late), 11), 2);
    // In a new flow it is, on its first payload frame.
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40001, 80, late), 12), 1);
}

#[test]
fn name_sources_are_told_apart_and_dns_names_count() {
    use crate::classify::payload::tests::dns_query;
    let mut c = classifier(&[
        ("sni", "sni example.com"),
        ("dns", "dns example.com"),
        ("rest", "default"),
    ]);
    let q = dns_query("example.com", 1);
    assert_eq!(classify_bytes(&mut c, &udp4_with(5353, 53, &q), 0), 2);
    // Per-frame rules read the flow's name too.
    let mut c = classifier(&[
        ("small-dns", "dns *.example.com and len < 200"),
        ("rest", "default"),
    ]);
    let q = dns_query("a.example.com", 1);
    assert_eq!(classify_bytes(&mut c, &udp4_with(5353, 53, &q), 0), 1);
    let big = [q.clone(), vec![0; 300]].concat();
    assert_eq!(classify_bytes(&mut c, &udp4_with(5353, 53, &big), 1), 2);
}

/// A DNS response from B4's resolver (port 53) to A4 saying `name` is at `addr`.
fn dns_answer(name: &str, addr: [u8; 4]) -> Vec<u8> {
    use crate::classify::payload::tests::dns_query;
    let mut m = dns_query(name, 1);
    m[2] |= 0x80; // QR: a response
    m[7] = 1; // one answer
              // The answer: a pointer to the question's name, A, IN, TTL 60, 4 bytes.
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    m.extend_from_slice(&addr);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(B4, A4, 64)
        .udp(53, 40053)
        .write(&mut f, &m)
        .unwrap();
    f
}

#[test]
fn a_flow_to_an_address_a_dns_answer_gave_is_named_from_its_first_frame() {
    use crate::classify::payload::tests::client_hello;
    let mut c = classifier(&[
        ("video", "domain *.video.example"),
        ("resolved", "dns cdn.example"),
        ("rest", "default"),
    ]);
    let server = [198, 19, 9, 9];
    let answer = dns_answer("edge.video.example", server);
    // The response's own flow is named by its question, which `domain` takes too.
    assert_eq!(
        c.classify_frame(&parse(&answer), &answer, Side::Lan, 0)
            .class,
        1
    );
    // A TCP flow to that address: named from its SYN, before any payload.
    let syn = {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(A4, server, 64)
            .tcp(40000, 443, 1, 1000)
            .write(&mut f, &[])
            .unwrap();
        f
    };
    assert_eq!(classify_bytes(&mut c, &syn, 1), 1);
    let s = c.stats().names;
    assert_eq!((s.from_dns_cache, s.dns_cache.stored), (1, 1));
    // Its own SNI, when it comes, is the name; here it names another service: the flow
    // moves, once.
    let hello = client_hello(Some(b"cdn.example"));
    let with_hello = {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(A4, server, 64)
            .tcp(40000, 443, 1, 1000)
            .write(&mut f, &hello)
            .unwrap();
        f
    };
    assert_eq!(
        classify_bytes(&mut c, &with_hello, 2),
        3,
        "sni cdn.example is not `dns`"
    );
    // Another address is not named.
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40001, 443, &[]), 3), 3);
}

#[test]
fn a_reload_runs_the_new_name_tests_on_names_already_learnt() {
    use crate::classify::payload::tests::client_hello;
    let mut c = classifier(&[("a", "domain a.example"), ("rest", "default")]);
    let hello = client_hello(Some(b"b.example"));
    assert_eq!(classify_bytes(&mut c, &tcp4_with(40000, 443, &hello), 0), 2);
    let reloaded = classifier(&[("x", "udp"), ("b", "sni b.example"), ("rest", "default")]);
    c.replace_rules(reloaded.ports);
    assert_eq!(
        classify_bytes(&mut c, &tcp4_with(40000, 443, &[1; 10]), 1),
        2
    );
}
