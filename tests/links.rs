//! Classification looks through PPPoE sessions (and QinQ before them), and captures of PPP and
//! Cisco HDLC links replay like Ethernet ones: names, protocols and rules work inside. The
//! expected counts are tshark's (4.0) reading of the same files; the command is by each.

mod common;

use common::captures::{received, replay_with_flows};
use std::path::Path;
use std::sync::Arc;
use weir::replay::ReplayReport;

/// Class `first` for `rule`, then `rest`; the default idle timeout (2 minutes).
fn plan(rule: &str) -> Arc<weir::config::Plan> {
    let src = format!(
        r#"(
            lan_networks: ["1.1.1.0/24", "10.0.0.1/32", "193.167.0.0/16"],
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                (name: "first", match: "{rule}", priority: 0, rate: "1 Mbit"),
                (name: "rest", match: "default", priority: 1, rate: "1 Mbit"),
            ]
        )"#
    );
    Arc::new(weir::config::parse(&src, Path::new("links-test.ron")).expect("test config"))
}

fn replay(rule: &str, capture: &str) -> (ReplayReport, Vec<serde_json::Value>) {
    replay_with_flows(&plan(rule), capture)
}

#[test]
fn a_tls_name_is_read_inside_pppoe_behind_two_vlan_tags() {
    // tshark -r captures/pppoe-qinq-tls.pcap: 86 frames of one TCP connection,
    // eth:vlan:vlan:pppoes:ppp:ip:tcp, whose ClientHello (frame 4) names xp.apple.com. It
    // pauses for more than the idle timeout after frame 81 (38.6 s to 273.6 s): it comes back
    // without a SYN, so it keeps its name.
    let (r, flows) = replay("sni xp.apple.com", "pppoe-qinq-tls.pcap");
    assert_eq!(r.frames_read, 86);
    assert_eq!(r.names.learnt, 1, "{:?}", r.names);
    assert_eq!(received(&r, "first"), 86 - 3, "all but the handshake");
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["server_name"], "xp.apple.com");
    assert_eq!(flows[0]["app"], "https");
    assert_eq!(flows[0]["app_source"], "payload");
    assert_eq!(flows[0]["src"], "1.1.1.1:20394");
}

#[test]
fn ppp_control_inside_pppoe_goes_to_the_control_class() {
    // tshark -r captures/pppoe-ipv6.pcap -Y "pppoed || lcp || ipcp || ipv6cp || pap || chap
    //   || (icmpv6.type >= 133 && icmpv6.type <= 137)" | wc -l: 43 (discovery, LCP echoes,
    // NCPs, PAP, neighbour discovery); the other 22 are IPv6 inside the session.
    let (r, flows) = replay("ip6 and udp port 546,547", "pppoe-ipv6.pcap");
    assert_eq!(r.frames_read, 65);
    assert_eq!(r.flow_table.control_frames, 43);
    // DHCPv6 (4 frames, eth:pppoes:ppp:ipv6:udp:dhcpv6) is read through the session header.
    assert_eq!(received(&r, "first"), 4);
    assert!(flows
        .iter()
        .any(|f| f["src"] == "[fe80::ce05:eff:fe88:0]:546" && f["app"] == "dhcpv6"));
}

#[test]
fn ppp_and_cisco_hdlc_captures_are_read() {
    // tshark -r captures/ppp-quic.pcap: PPP (DLT 9) without address and control bytes; 9 frames
    // of one QUIC connection to port 443 (7 quic, 2 with its TLS handshake) and 4 ICMPv6.
    let (r, flows) = replay("app quic", "ppp-quic.pcap");
    assert_eq!(r.frames_read, 13);
    assert_eq!(received(&r, "first"), 9);
    let quic: Vec<_> = flows.iter().filter(|f| f["proto"] == "udp").collect();
    assert_eq!(quic.len(), 1);
    assert_eq!(quic[0]["app_source"], "payload");
    // tshark -r captures/chdlc-icmp.pcap: Cisco HDLC (DLT 104); 10 of 38 frames are
    // chdlc:ip:icmp, the rest SLARP and CDP.
    let (r, _) = replay("icmp", "chdlc-icmp.pcap");
    assert_eq!(r.frames_read, 38);
    assert_eq!(received(&r, "first"), 10);
}
