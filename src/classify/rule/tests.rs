//! Tests for the rule language: parsing, error positions, matching on real frames, analysis.
use super::app_table::Detect;
use super::*;
use crate::wire::{self, VlanTag, L3};
use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, EtherType, PacketBuilder, VlanId};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn rule(s: &str) -> Rule {
    match Rule::parse(s) {
        Ok(r) => r,
        Err(e) => panic!("`{s}` should parse: {e}"),
    }
}

/// Does rule `src` match `v` in a flow whose payload showed `seen`?
fn matches_seen(src: &str, v: &FrameView, seen: AppSeen) -> bool {
    let mut r = rule(src);
    let mut tests = NameTests::new(Vec::new());
    r.bind_names(&mut tests).unwrap();
    r.matches_with(v, tests.eval_app(seen))
}

fn bad(s: &str) -> RuleError {
    match Rule::parse(s) {
        Ok(_) => panic!("`{s}` should not parse"),
        Err(e) => e,
    }
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sp, dp, 1, 1000);
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 10]).unwrap();
    wire::parse(&out)
}

fn tcp4_syn(sp: u16, dp: u16) -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(sp, dp, 1, 1000)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    wire::parse(&out)
}

fn udp4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: usize) -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .udp(sp, dp);
    let mut out = Vec::new();
    b.write(&mut out, &vec![0u8; payload]).unwrap();
    wire::parse(&out)
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn udp6(src: &str, dst: &str, sp: u16, dp: u16) -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6(src), v6(dst), 64)
        .udp(sp, dp);
    let mut out = Vec::new();
    b.write(&mut out, &[1, 2, 3]).unwrap();
    wire::parse(&out)
}

fn tcp6(sp: u16, dp: u16) -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6("2001:db8::1"), v6("2001:db8::2"), 64)
        .tcp(sp, dp, 1, 1000);
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    wire::parse(&out)
}

fn ping4() -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .icmpv4_echo_request(1, 1);
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 8]).unwrap();
    wire::parse(&out)
}

fn ping6() -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(v6("fe80::1"), v6("fe80::2"), 64)
        .icmpv6_echo_request(1, 1);
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 8]).unwrap();
    wire::parse(&out)
}

fn arp() -> FrameView {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).arp(
        ArpPacket::new(
            ArpHardwareId::ETHERNET,
            EtherType::IPV4,
            ArpOperation::REQUEST,
            &MAC_A,
            &[10, 0, 0, 1],
            &[0; 6],
            &[10, 0, 0, 2],
        )
        .unwrap(),
    );
    let mut out = Vec::new();
    b.write(&mut out).unwrap();
    wire::parse(&out)
}

fn vlan_udp(outer: u16, inner: Option<u16>) -> FrameView {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let mut out = Vec::new();
    match inner {
        None => eth
            .single_vlan(VlanId::try_new(outer).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut out, &[])
            .unwrap(),
        Some(i) => eth
            .double_vlan(VlanId::try_new(outer).unwrap(), VlanId::try_new(i).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut out, &[])
            .unwrap(),
    }
    wire::parse(&out)
}

// ---------------------------------------------------------------- parsing

#[test]
fn good_rules_parse() {
    for s in [
        "tcp",
        "UDP",
        "icmp or icmp6",
        "ip and not arp",
        "ip6",
        "proto 47",
        "proto gre",
        "port 80",
        "src port 80",
        "dst port 80,443,8000-8010",
        "portrange 1000-2000",
        "src portrange 1-1023",
        "dst portrange 5-5",
        "host 10.0.0.1",
        "src host 10.0.0.1",
        "dst host 2001:db8::1",
        "net 10.0.0.0/8",
        "src net 192.168.0.0/16",
        "dst net 2001:db8::/32",
        "src 10.0.0.1",
        "dst 10.0.0.0/24",
        "dscp 46",
        "dscp EF",
        "dscp af41 or dscp cs6 or dscp le or dscp va",
        "vlan",
        "vlan 100",
        "pcp 5",
        "len < 128",
        "len<=128",
        "len > 1000",
        "len >= 1000",
        "len = 60",
        "len == 60",
        "len != 60",
        "less 100",
        "greater 1400",
        "tcp flags syn",
        "tcp flags syn,ack",
        "icmp type 8",
        "icmp type echo-request",
        "icmp6 type echo-reply",
        "app http",
        "APP Dns",
        "frag",
        "default",
        "  default  ",
        "(tcp or udp) and port 53",
        "!tcp && (udp || icmp)",
        "tcp dst port 80",
        "not not tcp",
        "ip host 10.0.0.1",
        "ip6 net 2001:db8::/32",
        "ip proto 17",
    ] {
        rule(s);
    }
}

#[test]
fn juxtaposition_is_and() {
    let a = rule("tcp dst port 80");
    let b = rule("tcp and dst port 80");
    for v in [
        tcp4([1, 1, 1, 1], [2, 2, 2, 2], 5, 80),
        udp4([1; 4], [2; 4], 5, 80, 0),
    ] {
        assert_eq!(a.matches(&v), b.matches(&v));
    }
}

#[test]
fn protocol_qualifier_binds_like_tcpdump() {
    // `not tcp port 80` is `not (tcp port 80)`: UDP to port 80 matches.
    let r = rule("not tcp port 80");
    assert!(r.matches(&udp4([1; 4], [2; 4], 5, 80, 0)));
    assert!(!r.matches(&tcp4([1; 4], [2; 4], 5, 80)));
    assert!(r.matches(&tcp4([1; 4], [2; 4], 5, 81)));
}

#[test]
fn precedence_not_and_or() {
    // not > and > or: `udp or tcp and port 80` = udp or (tcp and port 80).
    let r = rule("udp or tcp and port 80");
    assert!(r.matches(&udp4([1; 4], [2; 4], 5, 9, 0)));
    assert!(!r.matches(&tcp4([1; 4], [2; 4], 5, 9)));
    assert!(r.matches(&tcp4([1; 4], [2; 4], 5, 80)));
    let r = rule("not udp and port 53");
    assert!(!r.matches(&udp4([1; 4], [2; 4], 5, 53, 0)));
    assert!(r.matches(&tcp4([1; 4], [2; 4], 5, 53)));
}

fn check_err(src: &str, column: usize, len: usize, message: &str, hint: Option<&str>) {
    let e = bad(src);
    assert_eq!(
        (e.column, e.len, e.message.as_str()),
        (column, len, message),
        "for `{src}`: {e}"
    );
    if let Some(h) = hint {
        let got = e.hint.clone().unwrap_or_default();
        assert!(got.contains(h), "for `{src}`: hint {got:?} lacks {h:?}");
    }
}

#[test]
fn error_columns_and_messages() {
    check_err(
        "tcp and port 70000",
        14,
        5,
        "port 70000 is out of range (0-65535)",
        None,
    );
    check_err(
        "port http",
        6,
        4,
        "expected a port number after `port`, found `http`",
        Some("did you mean `app http`?"),
    );
    check_err(
        "dst port 80,8080,99999",
        18,
        5,
        "port 99999 is out of range (0-65535)",
        None,
    );
    check_err(
        "portrange 10-5",
        11,
        4,
        "port range 10-5 is reversed",
        Some("5-10"),
    );
    check_err(
        "net 198.18.0.1/24",
        5,
        13,
        "198.18.0.1/24 has host bits set",
        Some("did you mean 198.18.0.0/24?"),
    );
    check_err(
        "tpc or udp",
        1,
        3,
        "unknown keyword `tpc`",
        Some("did you mean `tcp`?"),
    );
    check_err("app htp", 5, 3, "unknown application `htp`", Some("`http`"));
    check_err(
        "(tcp or udp",
        1,
        1,
        "unclosed `(`",
        Some("add a matching `)`"),
    );
    check_err("tcp or udp)", 11, 1, "unmatched `)`", None);
    check_err(
        "tcp and",
        8,
        1,
        "expected a term after `and`, found end of rule",
        None,
    );
    check_err("", 1, 1, "empty rule", Some("default"));
    check_err("   ", 1, 1, "empty rule", Some("default"));
    check_err(
        "default or tcp",
        1,
        7,
        "`default` cannot be combined with other terms",
        Some("whole rule"),
    );
    check_err(
        "tcp and default",
        9,
        7,
        "`default` cannot be combined with other terms",
        None,
    );
    check_err(
        "vlan 4096",
        6,
        4,
        "VLAN 4096 is out of range (0-4095)",
        None,
    );
    check_err("pcp 8", 5, 1, "PCP 8 is out of range (0-7)", None);
    check_err("dscp 64", 6, 2, "DSCP 64 is out of range (0-63)", None);
    check_err(
        "dscp af51",
        6,
        4,
        "unknown DSCP name `af51`",
        Some("did you mean"),
    );
    check_err(
        "proto 256",
        7,
        3,
        "protocol 256 is out of range (0-255)",
        None,
    );
    check_err(
        "len 100",
        5,
        3,
        "expected a comparison after `len`, found `100`",
        Some("len < 100"),
    );
    check_err(
        "host 10.0.0.0/8",
        6,
        10,
        "`host` takes a single address, found `10.0.0.0/8`",
        Some("net 10.0.0.0/8"),
    );
    check_err(
        "tcp flags syn,foo",
        15,
        3,
        "unknown TCP flag `foo`",
        Some("fin, syn"),
    );
    check_err("tcp & udp", 5, 1, "unexpected `&`", Some("&&"));
    check_err("80", 1, 2, "unexpected number `80`", Some("port 80"));
    check_err(
        "tcp or or udp",
        8,
        2,
        "expected a term after `or`, found `or`",
        None,
    );
    check_err("()", 2, 1, "empty parentheses", None);
    check_err(
        "src foo",
        5,
        3,
        "expected `port`, `portrange`, `host`, `net` or an address after `src`, found `foo`",
        None,
    );
    check_err(
        "net 10.0.0.0/33",
        14,
        2,
        "prefix length `33` is not a number in 0-32",
        None,
    );
    check_err("ssh", 1, 3, "unknown keyword `ssh`", Some("app ssh"));
    check_err("port 80,,81", 9, 1, "empty item in port list", None);
}

#[test]
fn error_columns_count_characters_not_bytes() {
    // `é` is two bytes; the column must still be the character position.
    let e = bad("tcp é");
    assert_eq!(e.column, 5);
    let e = bad("(é)");
    assert_eq!(e.column, 2);
}

#[test]
fn error_display() {
    let e = bad("port http");
    assert_eq!(
        e.to_string(),
        "column 6: expected a port number after `port`, found `http` (hint: did you mean `app http`?)"
    );
}

#[test]
fn nesting_and_length_are_capped() {
    let deep = format!("{}tcp{}", "(".repeat(70), ")".repeat(70));
    let e = bad(&deep);
    assert!(e.message.contains("nested too deeply"), "{e}");
    assert_eq!(e.column, 65);
    let ok = format!("{}tcp{}", "(".repeat(60), ")".repeat(60));
    rule(&ok);
    let nots = format!("{}tcp", "not ".repeat(100));
    assert!(bad(&nots).message.contains("nested too deeply"));
    let long = "tcp or ".repeat(700) + "tcp";
    let e = bad(&long);
    assert!(e.message.contains("too long"), "{e}");
    assert_eq!(e.column, MAX_RULE_LEN + 1);
}

// ---------------------------------------------------------------- matching

#[test]
fn matches_protocols() {
    let t4 = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 443);
    let u4 = udp4([10, 0, 0, 1], [10, 0, 0, 2], 40000, 53, 20);
    let u6 = udp6("2001:db8::1", "2001:db8::2", 5000, 443);
    let t6 = tcp6(1234, 22);
    let p4 = ping4();
    let p6 = ping6();
    let a = arp();
    let all = [&t4, &u4, &u6, &t6, &p4, &p6, &a];
    let expect = |r: &str, want: [bool; 7]| {
        let r = rule(r);
        let got: Vec<bool> = all.iter().map(|v| r.matches(v)).collect();
        assert_eq!(got, want.to_vec(), "rule `{}`", r.source());
    };
    //                      t4     u4     u6     t6     p4     p6     arp
    expect("tcp", [true, false, false, true, false, false, false]);
    expect("udp", [false, true, true, false, false, false, false]);
    expect("icmp", [false, false, false, false, true, false, false]);
    expect("icmp6", [false, false, false, false, false, true, false]);
    expect("ip", [true, true, false, false, true, false, false]);
    expect("ip6", [false, false, true, true, false, true, false]);
    expect("arp", [false, false, false, false, false, false, true]);
    expect("proto 17", [false, true, true, false, false, false, false]);
    expect(
        "proto icmp",
        [false, false, false, false, true, false, false],
    );
    expect("proto 0", [false; 7]);
    expect("port 443", [true, false, true, false, false, false, false]);
    expect(
        "dst port 53,22",
        [false, true, false, true, false, false, false],
    );
    expect(
        "src portrange 4000-40000",
        [true, true, true, false, false, false, false],
    );
    // A flow whose payload named no protocol: the port table.
    let by_ports = |r: &str, want: [bool; 7]| {
        let got: Vec<bool> = all
            .iter()
            .map(|v| matches_seen(r, v, AppSeen::Unknown))
            .collect();
        assert_eq!(got, want.to_vec(), "rule `{r}`, payload unknown");
        let undecided: Vec<bool> = all
            .iter()
            .map(|v| matches_seen(r, v, AppSeen::Undecided))
            .collect();
        assert_eq!(undecided, want.to_vec(), "rule `{r}` before any payload");
    };
    by_ports(
        "app https",
        [true, false, false, false, false, false, false],
    );
    by_ports("app quic", [false, false, true, false, false, false, false]);
    by_ports("app dns", [false, true, false, false, false, false, false]);
    by_ports("app ssh", [false, false, false, true, false, false, false]);
    expect(
        "host 10.0.0.2",
        [true, true, false, false, true, false, false],
    );
    expect("src host 10.0.0.2", [false; 7]);
    expect(
        "net 10.0.0.0/8",
        [true, true, false, false, true, false, false],
    );
    expect(
        "net 0.0.0.0/0",
        [true, true, false, false, true, false, false],
    );
    expect("net ::/0", [false, false, true, true, false, true, false]);
    expect(
        "dst net 2001:db8::/32",
        [false, false, true, true, false, false, false],
    );
    expect(
        "src fe80::1",
        [false, false, false, false, false, true, false],
    );
    expect(
        "icmp type echo-request",
        [false, false, false, false, true, false, false],
    );
    expect(
        "icmp6 type echo-request",
        [false, false, false, false, false, true, false],
    );
    expect("icmp type 0", [false; 7]);
    expect("dscp 0", [true, true, true, true, true, true, false]);
    expect(
        "not ip and not ip6",
        [false, false, false, false, false, false, true],
    );
    expect("default", [true; 7]);
}

#[test]
fn matches_length() {
    let small = udp4([1; 4], [2; 4], 1, 2, 0); // 14 + 20 + 8 = 42 bytes
    let big = udp4([1; 4], [2; 4], 1, 2, 1000);
    assert_eq!(small.len, 42);
    for (r, s, b) in [
        ("len < 42", false, false),
        ("len <= 42", true, false),
        ("len = 42", true, false),
        ("len != 42", false, true),
        ("len > 42", false, true),
        ("len >= 42", true, true),
        ("less 42", true, false),
        ("greater 43", false, true),
        ("len < 0", false, false),
    ] {
        let r = rule(r);
        assert_eq!(
            (r.matches(&small), r.matches(&big)),
            (s, b),
            "{}",
            r.source()
        );
    }
}

#[test]
fn matches_tcp_flags() {
    let syn = tcp4_syn(1000, 80);
    let plain = tcp4([1; 4], [2; 4], 1000, 80);
    assert!(rule("tcp flags syn").matches(&syn));
    assert!(!rule("tcp flags syn").matches(&plain));
    assert!(!rule("tcp flags syn,ack").matches(&syn));
    assert!(rule("tcp flags syn and dst port 80").matches(&syn));
    assert!(!rule("tcp flags syn").matches(&udp4([1; 4], [2; 4], 1, 2, 0)));
}

#[test]
fn matches_vlan_and_pcp() {
    let single = vlan_udp(100, None);
    let double = vlan_udp(10, Some(20));
    let untagged = udp4([1; 4], [2; 4], 1, 2, 0);
    let r = rule("vlan");
    assert!(r.matches(&single) && r.matches(&double) && !r.matches(&untagged));
    assert!(rule("vlan 100").matches(&single));
    assert!(!rule("vlan 100").matches(&double));
    assert!(rule("vlan 10").matches(&double));
    assert!(rule("vlan 20").matches(&double), "inner tag counts");
    assert!(rule("pcp 0").matches(&single));
    assert!(!rule("pcp 0").matches(&untagged));
    assert!(rule("vlan 100 and udp and dst port 2000").matches(&single));
    let mut v = single;
    v.vlan[0].pcp = 5;
    assert!(rule("pcp 5").matches(&v));
}

#[test]
fn arp_does_not_match_host_or_ports() {
    let a = arp();
    assert!(!rule("host 10.0.0.1").matches(&a));
    assert!(!rule("net 0.0.0.0/0").matches(&a));
    assert!(!rule("port 0").matches(&a));
    assert!(!rule("dscp 0").matches(&a));
    assert!(rule("not host 10.0.0.1").matches(&a));
}

#[test]
fn fragments() {
    let mut v = udp4([1; 4], [2; 4], 1, 2, 0);
    assert!(!rule("frag").matches(&v));
    v.is_fragment = true;
    assert!(rule("frag").matches(&v));
}

#[test]
fn every_app_entry_matches_its_ports() {
    let table = app_table();
    let mut names: Vec<&str> = table.iter().map(|a| a.name).collect();
    let sorted = {
        let mut s = names.clone();
        s.sort_unstable();
        s.dedup();
        s
    };
    assert_eq!(names, sorted, "app table sorted and unique");
    names.clear();
    for a in table {
        assert!(!a.ports.is_empty());
        let r = rule(&format!("app {}", a.name));
        assert!(!r.depends_on_packet());
        for &(lo, hi) in a.ports {
            assert!(lo <= hi);
            for p in [lo, hi] {
                let t = tcp4([1; 4], [2; 4], 50000, p);
                let u = udp4([1; 4], [2; 4], p, 50000, 0);
                let (want_t, want_u) = match a.proto {
                    AppProto::Tcp => (true, false),
                    AppProto::Udp => (false, true),
                    AppProto::Both => (true, true),
                };
                // Payload that named no application: the ports decide, unless the entry
                // is told from payload only.
                let only = matches!(a.detect, Detect::Only(_));
                for seen in [AppSeen::Unknown, AppSeen::Undecided] {
                    let by_port = |v: &FrameView| matches_seen(&r.source, v, seen);
                    assert_eq!(by_port(&t), want_t && !only, "app {} tcp {}", a.name, p);
                    assert_eq!(by_port(&u), want_u && !only, "app {} udp {}", a.name, p);
                }
                if a.detect == Detect::Ports {
                    assert_eq!(r.matches(&t), want_t, "app {} tcp {}", a.name, p);
                }
            }
        }
        // Its protocol found in payload: on any port unless the entry is bound to its ports;
        // another protocol: never.
        let Some(proto) = a.detect.protocol() else {
            continue;
        };
        let other = if proto == Protocol::Dns {
            Protocol::Ssh
        } else {
            Protocol::Dns
        };
        let (lo, _) = a.ports[0];
        for v in [
            tcp4([1; 4], [2; 4], 50000, lo),
            udp4([1; 4], [2; 4], lo, 50000, 0),
            tcp4([1; 4], [2; 4], 50000, 1),
            udp4([1; 4], [2; 4], 1, 50000, 0),
        ] {
            let on_ports = v.src_port == lo || v.dst_port == lo;
            let transport_ok = proto.transports().contains(&v.ip_proto)
                && match a.proto {
                    AppProto::Tcp => v.ip_proto == 6,
                    AppProto::Udp => v.ip_proto == 17,
                    AppProto::Both => true,
                };
            let want = match a.detect {
                Detect::OnPorts(_) => on_ports && transport_ok,
                _ => true,
            };
            assert_eq!(
                matches_seen(&r.source, &v, AppSeen::Found(proto)),
                want,
                "app {} found {proto:?} ports {} {}",
                a.name,
                v.src_port,
                v.dst_port
            );
            assert!(
                !matches_seen(&r.source, &v, AppSeen::Found(other)),
                "app {} when {other:?} was found",
                a.name
            );
        }
    }
    for required in [
        "http",
        "https",
        "quic",
        "dns",
        "dot",
        "ssh",
        "telnet",
        "ftp",
        "smtp",
        "imap",
        "pop3",
        "ntp",
        "dhcp",
        "dhcpv6",
        "snmp",
        "sip",
        "rtp",
        "stun",
        "turn",
        "rdp",
        "vnc",
        "openvpn",
        "wireguard",
        "ike",
        "bittorrent",
        "mqtt",
        "smb",
        "nfs",
        "mysql",
        "postgres",
        "xmpp",
        "irc",
        "steam",
        "xbox",
        "minecraft",
        "zoom",
        "teams",
        "git",
        "rsync",
        "ldap",
        "kerberos",
        "syslog",
        "bgp",
    ] {
        assert!(table.iter().any(|a| a.name == required), "{required}");
    }
}

#[test]
fn app_error_lists_close_names() {
    let e = bad("app dnss");
    assert!(e.hint.unwrap_or_default().contains("`dns`"));
    let e = bad("app zzzzzzzz");
    assert!(e.hint.is_some());
}

// ---------------------------------------------------------------- analysis

#[test]
fn depends_on_packet() {
    for s in [
        "len < 100",
        "tcp flags syn",
        "dscp ef",
        "pcp 3",
        "icmp type 8",
        "frag",
        "tcp or not len > 5",
    ] {
        assert!(rule(s).depends_on_packet(), "{s}");
    }
    for s in [
        "tcp",
        "port 80",
        "host 10.0.0.1",
        "vlan 5",
        "app http",
        "default",
        "icmp",
        "arp",
    ] {
        assert!(!rule(s).depends_on_packet(), "{s}");
    }
}

#[test]
fn never_matches() {
    for s in [
        "tcp and udp",
        "len < 10 and len > 20",
        "port 80 and not port 80",
        "ip and arp",
        "ip6 and host 10.0.0.1",
        "icmp and icmp6",
        "arp and port 80",
        "src port 80 and src port 81",
        "port 80 and not port 80,443",
        "proto 6 and proto 17",
        "tcp flags syn and not tcp flags syn",
        "not vlan and vlan 5",
        "vlan 5 and not vlan 5",
        "src net 10.0.0.0/8 and src net 192.168.0.0/16",
        "src host 10.1.2.3 and not net 10.0.0.0/8",
        "pcp 1 and pcp 2",
        "dscp ef and dscp af41",
        "len < 0",
        "(tcp or udp) and icmp",
        "app http and app quic",
        "app rtp and app dns",
        "app rtp and tcp",
        "app ssh and not tcp",
        "frag and not frag",
        "not (tcp or not tcp)",
    ] {
        assert!(rule(s).never_matches(), "`{s}` should never match");
    }
    for s in [
        "tcp",
        "default",
        "tcp or udp",
        "src port 80 and dst port 81",
        "port 80 and port 81",
        "vlan 5 and vlan 6",
        "src net 10.0.0.0/8 and dst net 192.168.0.0/16",
        "net 10.0.0.0/8 and net 192.168.0.0/16",
        "not tcp and not udp",
        "len > 10 and len < 12",
        "not port 80",
        "icmp and not host 10.0.0.1",
        // Port 80 to port 53 over TCP is both, when its payload names no protocol.
        "app http and app dns",
        // TLS on 443 is https, and names no application for the fallback of `app http`.
        "app https and app http",
    ] {
        assert!(!rule(s).never_matches(), "`{s}` can match");
    }
}

fn shadowed(later: &str, earlier: &[&str]) -> bool {
    let rules: Vec<Rule> = earlier.iter().map(|s| rule(s)).collect();
    let refs: Vec<&Rule> = rules.iter().collect();
    rule(later).is_shadowed_by(&refs)
}

#[test]
fn shadowing() {
    for (later, earlier) in [
        ("tcp port 80", &["tcp"][..]),
        ("tcp", &["tcp or udp"][..]),
        ("port 80", &["portrange 1-100"][..]),
        ("src port 80", &["port 80"][..]),
        ("host 10.1.2.3", &["net 10.0.0.0/8"][..]),
        ("src host 10.1.2.3", &["src net 10.0.0.0/8"][..]),
        ("src net 10.1.0.0/16", &["net 10.0.0.0/8"][..]),
        ("app ntp", &["port 123"][..]),
        ("app https", &["tcp"][..]),
        ("app ntp", &["tcp", "udp"][..]),
        // QUIC is only told on UDP.
        ("app quic", &["udp"][..]),
        ("tcp or udp", &["udp", "tcp"][..]),
        ("icmp", &["ip"][..]),
        ("icmp6", &["not ip"][..]),
        ("len < 100", &["len <= 200"][..]),
        ("tcp flags syn,ack", &["tcp flags syn"][..]),
        ("tcp and port 3306", &["app mysql"][..]),
        ("dscp ef and udp", &["dscp 46"][..]),
        ("tcp and udp", &["arp"][..]),
        ("tcp", &["proto 6"][..]),
        ("vlan 5", &["vlan"][..]),
        ("pcp 3", &["vlan"][..]),
        ("port 22 and tcp", &["app telnet or port 22"][..]),
        ("app http", &["app http or app dns"][..]),
        (
            "not ip and not ip6 and not arp",
            &["not ip and not ip6"][..],
        ),
    ] {
        assert!(
            shadowed(later, earlier),
            "`{later}` should be shadowed by {earlier:?}"
        );
    }
    for (later, earlier) in [
        ("tcp", &["tcp port 80"][..]),
        ("udp", &["tcp"][..]),
        ("port 80", &["src port 80"][..]),
        ("net 10.0.0.0/8", &["host 10.1.2.3"][..]),
        ("app dns", &["udp port 53"][..]),
        // DNS is DNS on any port, and port 53 may carry something else.
        ("app dns", &["port 53"][..]),
        ("tcp and port 80", &["app http"][..]),
        ("dst port 443 and tcp", &["app https", "default"][..]),
        ("app dns", &["tcp", "udp"][..]),
        ("tcp", &["default"][..]),
        ("default", &["tcp", "not tcp"][..]),
        ("tcp", &[][..]),
        ("len < 300", &["len < 200"][..]),
        ("tcp flags syn", &["tcp flags syn,ack"][..]),
        ("vlan", &["vlan 5"][..]),
        ("port 80", &["tcp"][..]),
        ("ip6", &["ip"][..]),
    ] {
        assert!(
            !shadowed(later, earlier),
            "`{later}` is not shadowed by {earlier:?}"
        );
    }
}

#[test]
fn never_matching_rule_is_shadowed_by_anything() {
    assert!(shadowed("tcp and udp", &["arp"]));
    assert!(shadowed("tcp and udp", &[]));
}

#[test]
fn large_dnf_gives_up_conservatively() {
    // (a1 or b1) and ... and (a9 or b9): 512 conjuncts, beyond the cap.
    let s = (1..=9)
        .map(|i| format!("(port {i} or vlan {i})"))
        .collect::<Vec<_>>()
        .join(" and ");
    let r = rule(&s);
    assert!(!r.never_matches());
    assert!(!r.is_shadowed_by(&[&rule("tcp")]));
}

#[test]
fn source_and_default() {
    let r = rule("tcp  port 80");
    assert_eq!(r.source(), "tcp  port 80");
    assert!(!r.is_default());
    assert!(rule("DEFAULT").is_default());
    assert!(!rule("default").never_matches());
    assert!(!rule("default").is_shadowed_by(&[&rule("tcp"), &rule("not tcp")]));
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    fn l3() -> impl Strategy<Value = L3> {
        prop_oneof![
            Just(L3::Other),
            Just(L3::Arp),
            Just(L3::Ipv4),
            Just(L3::Ipv6)
        ]
    }

    prop_compose! {
        fn frame_view()(
            len in any::<u32>(),
            vid in any::<(u16, u16)>(),
            pcp in any::<(u8, u8)>(),
            vlan_count in any::<u8>(),
            ethertype in any::<u16>(),
            l3 in l3(),
            src_ip in any::<u128>(),
            dst_ip in any::<u128>(),
            ip_proto in prop_oneof![Just(6u8), Just(17u8), Just(1u8), Just(58u8), any::<u8>()],
            dscp in any::<u8>(),
            is_fragment in any::<bool>(),
            has_ports in any::<bool>(),
            src_port in prop_oneof![Just(80u16), Just(53u16), any::<u16>()],
            dst_port in prop_oneof![Just(443u16), Just(53u16), any::<u16>()],
            tcp_flags in any::<u8>(),
            has_icmp in any::<bool>(),
            icmp_type in any::<u8>(),
        ) -> FrameView {
            FrameView {
                len,
                vlan: [VlanTag { id: vid.0, pcp: pcp.0 }, VlanTag { id: vid.1, pcp: pcp.1 }],
                vlan_count,
                ethertype,
                l3,
                src_ip,
                dst_ip,
                ip_proto,
                dscp,
                is_fragment,
                has_ports,
                src_port,
                dst_port,
                tcp_flags,
                has_icmp,
                icmp_type,
                ..FrameView::default()
            }
        }
    }

    const SAMPLE_RULES: &[&str] = &[
        "tcp port 80",
        "not tcp port 80",
        "udp and (port 53 or app ntp)",
        "host 10.0.0.1 or net 2001:db8::/32",
        "vlan 5 and pcp 3",
        "vlan and not vlan 4095",
        "len < 100 or tcp flags syn,ack",
        "icmp type 8 or icmp6 type 128",
        "dscp ef and not frag",
        "app rtp or app sip",
        "src 10.0.0.0/8 and dst port 1-1023",
        "proto 0",
        "tcp and udp",
        "net 0.0.0.0/0",
    ];

    const ATOMS: &[&str] = &[
        "tcp",
        "udp",
        "icmp",
        "icmp6",
        "ip",
        "ip6",
        "arp",
        "proto 6",
        "proto 0",
        "port 80",
        "src port 80",
        "dst port 53",
        "port 53,80",
        "portrange 1-100",
        "src portrange 50-60",
        "host 10.0.0.1",
        "net 10.0.0.0/8",
        "src net 10.0.0.0/8",
        "dst host 10.0.0.1",
        "src host 10.1.2.3",
        "host ::1",
        "net ::/0",
        "dscp 46",
        "dscp 0",
        "vlan",
        "vlan 5",
        "vlan 6",
        "pcp 3",
        "len < 100",
        "len > 50",
        "len = 60",
        "tcp flags syn",
        "tcp flags syn,ack",
        "icmp type 8",
        "frag",
        "app dns",
        "app http",
        "app quic",
    ];

    fn rule_text() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(ATOMS).prop_map(str::to_string);
        leaf.prop_recursive(4, 16, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                inner.prop_map(|a| format!("not ({a})")),
            ]
        })
    }

    prop_compose! {
        /// Views whose fields hit the constants in ATOMS often.
        fn biased_view()(
            l3 in l3(),
            ip_proto in prop::sample::select(&[6u8, 17, 1, 58, 0][..]),
            ports in (prop::sample::select(&[53u16, 80, 443, 55][..]),
                      prop::sample::select(&[53u16, 80, 443, 55][..])),
            ips in (prop::sample::select(&[0x0a00_0001u128, 0x0a01_0203, 0xc0a8_0001, 1, 0][..]),
                    prop::sample::select(&[0x0a00_0001u128, 0x0a01_0203, 0xc0a8_0001, 1, 0][..])),
            has_ports in any::<bool>(),
            vlan_count in 0u8..4,
            vids in (prop::sample::select(&[5u16, 6, 7][..]), prop::sample::select(&[5u16, 6, 7][..])),
            pcp in prop::sample::select(&[0u8, 3][..]),
            len in prop::sample::select(&[40u32, 60, 100, 200][..]),
            tcp_flags in prop::sample::select(&[0u8, 0x02, 0x12, 0x10][..]),
            has_icmp in any::<bool>(),
            icmp_type in prop::sample::select(&[0u8, 8][..]),
            dscp in prop::sample::select(&[0u8, 46][..]),
            is_fragment in any::<bool>(),
        ) -> FrameView {
            FrameView {
                l3, ip_proto, has_ports, vlan_count, len, tcp_flags, has_icmp, icmp_type, dscp,
                is_fragment,
                src_port: ports.0, dst_port: ports.1,
                src_ip: ips.0, dst_ip: ips.1,
                vlan: [VlanTag { id: vids.0, pcp }, VlanTag { id: vids.1, pcp: 0 }],
                ..FrameView::default()
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// `never_matches` and `is_shadowed_by` are proofs: no frame may contradict them.
        #[test]
        fn analysis_claims_hold(
            later in rule_text(),
            earlier in prop::collection::vec(rule_text(), 1..3),
            views in prop::collection::vec(biased_view(), 24),
        ) {
            let l = Rule::parse(&later).map_err(|e| TestCaseError::fail(format!("{later}: {e}")))?;
            let mut es = Vec::new();
            for e in &earlier {
                es.push(Rule::parse(e).map_err(|x| TestCaseError::fail(format!("{e}: {x}")))?);
            }
            let refs: Vec<&Rule> = es.iter().collect();
            let never = l.never_matches();
            let shadowed = l.is_shadowed_by(&refs);
            for v in &views {
                if l.matches(v) {
                    prop_assert!(!never, "`{}` claimed never to match: {:?}", later, v);
                    if shadowed {
                        prop_assert!(es.iter().any(|e| e.matches(v)),
                            "`{}` claimed shadowed by {:?}: {:?}", later, earlier, v);
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// The classifier caches a rule's flow part per flow and evaluates only its frame part
        /// on each frame: the two together must be the rule, and a flow part that holds must
        /// hold for any frame that differs only in per-frame fields.
        #[test]
        fn a_rule_is_its_flow_part_or_its_frame_part(
            text in rule_text(),
            views in prop::collection::vec(biased_view(), 24),
            names in any::<u64>(),
        ) {
            let r = Rule::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            for v in &views {
                let flow = r.matches_flow_part(v, names);
                prop_assert_eq!(
                    r.matches_with(v, names),
                    flow || r.matches_frame_part(v, names),
                    "`{}` on {:?}", text, v
                );
                if flow {
                    let mut other = *v;
                    (other.len, other.dscp, other.tcp_flags, other.is_fragment) = (1500, 10, 0x11, !v.is_fragment);
                    other.icmp_type = v.icmp_type.wrapping_add(1);
                    other.vlan[0].pcp = v.vlan[0].pcp ^ 1;
                    prop_assert!(r.matches_with(&other, names), "`{}`: flow part held on {:?} but not on {:?}", text, v, other);
                }
                if !r.depends_on_packet() {
                    prop_assert_eq!(flow, r.matches_with(v, names));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = Rule::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_rule_like_text(
            words in prop::collection::vec(prop_oneof![
                Just("tcp"), Just("udp"), Just("port"), Just("80"), Just("and"), Just("or"),
                Just("not"), Just("("), Just(")"), Just("src"), Just("dst"), Just("host"),
                Just("10.0.0.1"), Just("net"), Just("::1/128"), Just("len"), Just("<"),
                Just("!="), Just("app"), Just("dns"), Just("vlan"), Just("default"), Just("!"),
                Just("&&"), Just("||"), Just("flags"), Just("syn,ack"), Just("1-2,"),
                Just("icmp"), Just("type"), Just("dscp"), Just("é"),
                Just("country"), Just("nz"), Just("asn"), Just("as64496"), Just("user"),
                Just("uid"), Just("cmd"), Just("args"), Just("'*x*'"), Just("time"),
                Just("'Mon-Fri 08:00-18:00'"), Just("'22:00-06:00'"), Just("'Fry'"),
            ], 0..14)
        ) {
            let s = words.join(" ");
            if let Ok(r) = Rule::parse(&s) {
                // Analysis must not panic either.
                let _ = r.never_matches();
                let _ = r.is_shadowed_by(&[&r]);
                let _ = r.matches(&FrameView::default());
            } else if let Err(e) = Rule::parse(&s) {
                prop_assert!(e.column >= 1 && e.len >= 1);
                prop_assert!(e.column <= s.chars().count() + 1);
            }
        }

        #[test]
        fn matches_never_panics_and_respects_analysis(v in frame_view()) {
            for s in SAMPLE_RULES {
                let r = Rule::parse(s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let m = r.matches(&v);
                if r.never_matches() {
                    prop_assert!(!m, "`{}` claimed never to match", s);
                }
            }
            // Shadowing claims must hold on every view.
            let pairs: &[(&str, &str)] = &[
                ("tcp port 80", "tcp"),
                ("host 10.1.2.3", "net 10.0.0.0/8"),
                ("app ntp", "port 123"),
                ("tcp flags syn,ack", "tcp flags syn"),
                ("pcp 3", "vlan"),
                ("len < 100", "len <= 200"),
            ];
            for (later, earlier) in pairs {
                let l = Rule::parse(later).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let e = Rule::parse(earlier).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(l.is_shadowed_by(&[&e]));
                if l.matches(&v) {
                    prop_assert!(e.matches(&v), "`{}` matched but `{}` did not", later, earlier);
                }
            }
        }
    }
}

#[test]
fn pathological_rules_stay_fast() {
    let start = std::time::Instant::now();
    // Long conjunction multiplied by disjunctions.
    let mut s = (1..=8)
        .map(|i| format!("(port {i} or vlan {i})"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut i = 0;
    while s.len() < MAX_RULE_LEN - 20 {
        s.push_str(&format!(" vlan {}", i % 4000));
        i += 1;
    }
    let r = rule(&s);
    let _ = r.never_matches();
    let _ = r.is_shadowed_by(&[&r, &r]);
    // Many disjunctions of mutually exclusive protocols.
    let group = (0..120)
        .map(|p| format!("proto {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let s2 = format!("({group}) and ({group})");
    let s2: String = s2.chars().take(MAX_RULE_LEN).collect();
    if let Ok(r2) = Rule::parse(&s2) {
        let _ = r2.is_shadowed_by(&[&r2, &r2, &r2]);
    }
    let many: Vec<Rule> = (0..200)
        .map(|p| rule(&format!("proto {p} or vlan {p}")))
        .collect();
    let refs: Vec<&Rule> = many.iter().collect();
    let _ = rule("tcp or udp or icmp").is_shadowed_by(&refs);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn docs_list_the_app_table() {
    let doc = include_str!("../../../docs/rules.md");
    let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
    let mut listed = 0;
    for a in app_table() {
        let ports = a
            .ports
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let row = format!(
            "| `{}` | {} | {} | {} | {} |",
            a.name,
            a.proto.as_str(),
            ports,
            a.detect.describe(),
            a.description
        );
        assert!(doc.contains(&row), "docs/rules.md lacks the row: {row}");
        listed += 1;
    }
    // Primitive rows start with "| `" too; the app rows are the table's last block.
    assert!(rows >= listed);
}

#[test]
fn docs_error_examples_are_accurate() {
    let doc = include_str!("../../../docs/rules.md");
    let section = doc.split("## Errors").nth(1).unwrap_or_default();
    let mut checked = 0;
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let Some((src, want)) = line.split_once(" -> ") else {
            continue;
        };
        let got = bad(src.trim()).to_string();
        let want = want.trim().trim_end_matches("...)").trim_end_matches("..."); // elided hints
        assert!(
            got.starts_with(want),
            "`{}`: doc says {want:?}, got {got:?}",
            src.trim()
        );
        checked += 1;
    }
    assert!(checked >= 8);
}
