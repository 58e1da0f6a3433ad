//! `app NAME` told from payload: RTP is RTP wherever it runs and nothing else is, on captures.
//!
//! The shared corpus has no RTP in the clear (its one RTP stream is inside a GTP tunnel), so
//! `captures/rtp-and-high-ports.pcap` is written by [`rtp_and_high_ports_frames`] below, to the
//! layouts of RFC 3550 (RTP, RTCP), RFC 1035, RFC 2865 (RADIUS), RFC 8489 (STUN), WireGuard's
//! paper and BEP 5 (DHT); a test pins the file to its generator. Real captures from the corpus
//! (`webrtc-stun.pcap`, `radius-localhost.pcap`, `dns-high-port.pcap`) check the rest.

mod common;

use common::captures::{pin_to_generator, received, replay_with_flows as replay};
use std::path::Path;
use std::sync::Arc;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * 1_000_000_000;
const PHONE: [u8; 4] = [198, 18, 0, 10];
const FAR: [u8; 4] = [198, 19, 0, 20];
const MAC_LAN: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const MAC_WAN: [u8; 6] = [2, 0, 0, 0, 0, 0x20];

/// A UDP frame; `up` is LAN to WAN.
fn udp(up: bool, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (smac, dmac, src, dst) = if up {
        (MAC_LAN, MAC_WAN, PHONE, FAR)
    } else {
        (MAC_WAN, MAC_LAN, FAR, PHONE)
    };
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut f, payload)
        .unwrap();
    f
}

/// An RTP packet: version 2, payload type 0 (PCMU), 160 samples of 20 ms.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| (i * 37 % 251) as u8 | 0x80));
    p
}

/// A DNS query for `name` (A, IN) with id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    p
}

/// The frames of `captures/rtp-and-high-ports.pcap`: a call's media and control on RTP's
/// usual ports, and UDP flows on high ports that are not RTP.
fn rtp_and_high_ports_frames() -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut t = T0;
    // A call: 25 packets each way, 20 ms apart, phone 16400 <-> far end 20000; an RTCP
    // receiver report each way on the next ports.
    for i in 0..25u16 {
        out.push((t, udp(true, 16400, 20000, &rtp(1000 + i, 0x1111_2222))));
        out.push((
            t + MS,
            udp(false, 20000, 16400, &rtp(7000 + i, 0x3333_4444)),
        ));
        t += 20 * MS;
    }
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0x1111_2222u32.to_be_bytes());
    rr.extend_from_slice(&0x3333_4444u32.to_be_bytes());
    rr.extend_from_slice(&[0; 20]);
    out.push((t, udp(true, 16401, 20001, &rr)));
    out.push((t + MS, udp(false, 20001, 16401, &rr)));
    t += 10 * MS;
    // DNS from a high source port (what the port table took for RTP).
    out.push((
        t,
        udp(true, 20002, 53, &dns_query(0x4242, "voip.example.com")),
    ));
    t += 10 * MS;
    // RADIUS Access-Request from a high port: neither RTP nor anything weir tells.
    let mut radius = vec![1, 7, 0, 38];
    radius.extend_from_slice(&[0x5a; 16]);
    radius.extend_from_slice(&[1, 6, b'b', b'o', b'b', b'!']);
    radius.extend_from_slice(&[4, 6, 198, 18, 0, 1]);
    radius.extend_from_slice(&[5, 6, 0, 0, 0, 7]);
    out.push((t, udp(true, 30000, 1812, &radius)));
    t += 10 * MS;
    // An unknown game-like protocol between high ports, 5 packets.
    for i in 0..5u8 {
        let p: Vec<u8> = (0..48u8)
            .map(|b| b.wrapping_mul(29).wrapping_add(i))
            .collect();
        out.push((t, udp(true, 25000, 13000, &p)));
        t += 5 * MS;
    }
    // STUN binding request and response between high ports (WebRTC).
    let mut stun = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[0x6b; 12]);
    out.push((t, udp(true, 18000, 19302, &stun)));
    let mut stun_ok = vec![1, 1, 0, 12, 0x21, 0x12, 0xa4, 0x42];
    stun_ok.extend_from_slice(&[0x6b; 12]);
    stun_ok.extend_from_slice(&[0, 0x20, 0, 8, 0, 1, 0x62, 0x80, 0xe7, 0x12, 0xa4, 0x48]);
    out.push((t + MS, udp(false, 19302, 18000, &stun_ok)));
    t += 10 * MS;
    // A WireGuard handshake on a high port that is not WireGuard's.
    let mut init = vec![1, 0, 0, 0];
    init.extend((0..144u32).map(|i| (i * 7) as u8));
    out.push((t, udp(true, 21000, 24000, &init)));
    let mut resp = vec![2, 0, 0, 0];
    resp.extend((0..88u32).map(|i| (i * 11) as u8));
    out.push((t + MS, udp(false, 24000, 21000, &resp)));
    t += 10 * MS;
    // A BitTorrent DHT ping between high ports.
    let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    out.push((t, udp(true, 16500, 31000, ping)));
    out
}

#[test]
fn rtp_capture_matches_its_generator() {
    pin_to_generator("rtp-and-high-ports.pcap", &rtp_and_high_ports_frames());
}

/// One class per rule, in order, then `rest`.
fn plan(rules: &[(&str, &str)]) -> Arc<weir::config::Plan> {
    let classes: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, (name, rule))| {
            format!(r#"(name: "{name}", match: "{rule}", priority: {i}, rate: "1 Mbit"),"#)
        })
        .collect();
    let src = format!(
        r#"(
            lan_networks: ["198.18.0.0/16"],
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                {}
                (name: "rest", match: "default", priority: 7, rate: "1 Mbit"),
            ]
        )"#,
        classes.join("\n")
    );
    Arc::new(weir::config::parse(&src, Path::new("apps-test.ron")).expect("test config"))
}

/// The flow whose first frame came from port `sport`.
fn flow(flows: &[serde_json::Value], sport: u16) -> &serde_json::Value {
    let suffix = format!(":{sport}");
    flows
        .iter()
        .find(|f| f["src"].as_str().unwrap().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no flow from port {sport} in {flows:#?}"))
}

#[test]
fn rtp_is_told_from_payload_and_high_ports_are_not_rtp() {
    let capture = "rtp-and-high-ports.pcap";
    let (r, flows) = replay(
        &plan(&[
            ("voice", "app rtp"),
            ("stun", "app stun"),
            ("vpn", "app wireguard"),
            ("p2p", "app bittorrent"),
            ("dns", "app dns"),
        ]),
        capture,
    );
    assert_eq!(r.frames_read, 64);
    // The call: 50 RTP frames and 2 RTCP. RTP is told at the second packet of one direction,
    // so the call's first two frames (one each way) go elsewhere (`rest`), once.
    let call = flow(&flows, 16400);
    assert_eq!(call["app"], "rtp");
    assert_eq!(call["app_source"], "payload");
    assert_eq!(call["frames_before_app"], 2, "{call}");
    assert_eq!(call["class_up"], "voice");
    assert_eq!(call["class_down"], "voice");
    assert_eq!(flow(&flows, 16401)["class_up"], "voice", "RTCP, at once");
    assert_eq!(received(&r, "voice"), 48 + 2);
    // Not RTP, whatever the port table says.
    assert_eq!(flow(&flows, 20002)["class_up"], "dns");
    assert_eq!(flow(&flows, 20002)["app"], "dns");
    for sport in [30000, 25000] {
        let f = flow(&flows, sport);
        assert_eq!(f["class_up"], "rest", "{f}");
        assert_eq!(f["app_source"], serde_json::Value::Null, "{f}");
    }
    assert_eq!(flow(&flows, 18000)["class_up"], "stun");
    assert_eq!(flow(&flows, 18000)["class_down"], "stun");
    assert_eq!(flow(&flows, 21000)["app"], "wireguard");
    assert_eq!(flow(&flows, 21000)["class_down"], "vpn");
    assert_eq!(flow(&flows, 16500)["class_up"], "p2p");
    assert_eq!(r.names.apps_found, 6, "{:?}", r.names);

    // The same capture by port, as `app rtp` used to be: every frame in the voice class,
    // DNS, RADIUS, the game, STUN, WireGuard and the DHT among them.
    let (by_port, _) = replay(
        &plan(&[("voice", "udp port 10000-20000,16384-32767")]),
        capture,
    );
    assert_eq!(received(&by_port, "voice"), 64);
}

#[test]
fn real_captures_of_high_port_udp_that_is_not_rtp() {
    let voice = plan(&[
        ("voice", "app rtp"),
        ("stun", "app stun"),
        ("dns", "app dns"),
    ]);
    // WebRTC: STUN then DTLS on one pair of high ports (zeek's webrtc-stun.pcap).
    let (r, flows) = replay(&voice, "webrtc-stun.pcap");
    assert_eq!(received(&r, "voice"), 0);
    assert_eq!(received(&r, "stun"), r.frames_read);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["app"], "stun");
    // RADIUS from high source ports (zeek's radius_localhost.pcap, a null link type).
    let (r, _) = replay(&voice, "radius-localhost.pcap");
    assert_eq!(received(&r, "voice"), 0);
    assert_eq!(received(&r, "rest"), r.frames_read);
    // A DNS query from port 63374 (zeek's dns_original_case.pcap).
    let (r, flows) = replay(&voice, "dns-high-port.pcap");
    assert_eq!(received(&r, "dns"), r.frames_read);
    assert_eq!(flows[0]["app"], "dns");
}

#[test]
fn an_ssh_flow_keeps_the_software_of_its_first_banner() {
    // tshark's `ssh.protocol` for mixed-services.pcap: in both SSH connections the server
    // (port 22) speaks first (frames 6 and 217).
    let (_, flows) =
        common::captures::replay_with_flows(&plan(&[("ssh", "app ssh")]), "mixed-services.pcap");
    let mut got: Vec<(String, String, String)> = flows
        .iter()
        .filter(|f| f["app"] == "ssh")
        .map(|f| {
            assert!(f.get("alpn").is_none(), "{f}");
            (
                f["src"].as_str().unwrap().to_string(),
                f["app_source"].as_str().unwrap().to_string(),
                f["ssh_software"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "172.16.238.131:45908".into(),
                "payload".into(),
                "OpenSSH_4.3".into()
            ),
            (
                "172.16.238.1:49656".into(),
                "payload".into(),
                "OpenSSH_5.8p1".into()
            ),
        ]
    );
}
