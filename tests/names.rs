//! Server names on real captures: rules over them move a flow once its name is read, and the
//! names weir reads agree with tshark's (an independent dissector) on every flow of the
//! committed captures where tshark finds one.

mod common;

use common::captures::{received, replay_with_flows, root, temp_config};
use std::path::Path;
use std::sync::Arc;
use weir::replay::{replay_file, ReplayOptions};

/// Both ports: `named` for the name test, `web` for ports 80 and 443, `rest` for the others.
fn plan(name_test: &str) -> Arc<weir::config::Plan> {
    plan_with_sets(name_test, "")
}

/// [`plan`] with the config's `sets` (the map's entries, as RON).
fn plan_with_sets(name_test: &str, sets: &str) -> Arc<weir::config::Plan> {
    let classes = format!(
        r#"classes: [
            (name: "named", match: "{name_test}", priority: 0, rate: "1 Mbit"),
            (name: "web", match: "tcp port 80 or tcp port 443", priority: 1, rate: "1 Mbit"),
            (name: "rest", match: "default", priority: 2, rate: "1 Mbit"),
        ]"#
    );
    let src = format!(
        r#"(
            lan_networks: ["192.168.0.0/16"],
            sets: {{ {sets} }},
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            {classes}
        )"#
    );
    Arc::new(weir::config::parse(&src, Path::new("names-test.ron")).expect("test config"))
}

#[test]
fn a_tls_flow_moves_to_its_named_class_at_its_client_hello() {
    let capture = root().join("captures/tls-sni.pcap");
    let run = |test: &str| replay_with_flows(&plan(test), "tls-sni.pcap");
    let (r, flows) = run("domain *.mozilla.org");
    // tshark: two connections to port 443, each opening with a 3-frame handshake and then a
    // ClientHello naming tls13.crypto.mozilla.org; 24 frames in all.
    assert_eq!(r.frames_read, 24);
    assert_eq!(r.names.learnt, 2, "{:?}", r.names);
    assert_eq!(r.names.frames_before, 6, "each handshake's 3 frames");
    assert_eq!(received(&r, "web"), 6, "the handshakes, before the names");
    assert_eq!(received(&r, "named"), 18);
    assert_eq!(flows.len(), 2, "{flows:?}");
    for f in &flows {
        assert_eq!(f["server_name"], "tls13.crypto.mozilla.org", "{f}");
        assert_eq!(f["name_source"], "sni");
        assert_eq!(f["frames_before_name"], 3);
        assert_eq!(f["class_up"], "named");
        let frames = f["frames_up"].as_u64().unwrap() + f["frames_down"].as_u64().unwrap();
        assert_eq!(frames, 12, "{f}");
    }
    // A set of globs from the config names them as well.
    let r = replay_file(
        &plan_with_sets(
            "sni @mozilla",
            r#""mozilla": ["*.mozilla.com", "*.mozilla.org"]"#,
        ),
        &capture,
        None,
        None,
        &ReplayOptions::default(),
        &mut |_| {},
    )
    .expect("replay");
    assert_eq!(received(&r, "named"), 18);
    // A test on another source, or another name, leaves the flows where the ports put them.
    for test in [
        "http_host *.mozilla.org",
        "sni mozilla.org",
        "dns *.mozilla.org",
    ] {
        let (r, _) = run(test);
        assert_eq!(received(&r, "named"), 0, "{test}");
        assert_eq!(received(&r, "web"), 24, "{test}");
    }
}

#[test]
fn an_http_request_split_over_segments_is_named_from_its_second() {
    let r = replay_file(
        &plan("http_host zeek.org"),
        &root().join("captures/http-split-request.pcap"),
        None,
        None,
        &ReplayOptions::default(),
        &mut |_| {},
    )
    .expect("replay");
    assert_eq!(r.names.learnt, 1, "{:?}", r.names);
    assert!(received(&r, "named") > 0);
}

#[test]
fn quic_v1_and_v2_initials_are_decrypted_for_their_name() {
    for (file, test, name) in [
        ("quic-v1.pcap", "sni *.cirrus-ci.com", "api.cirrus-ci.com"),
        ("quic-v2.pcap", "domain localhost", "localhost"),
    ] {
        let r = replay_file(
            &plan(test),
            &root().join("captures").join(file),
            None,
            None,
            &ReplayOptions::default(),
            &mut |_| {},
        )
        .expect("replay");
        // The first datagram is the client's Initial: the flow is named from it on.
        assert_eq!((r.names.learnt, r.names.frames_before), (1, 0), "{file}");
        assert_eq!(received(&r, "named"), r.frames_read, "{file}");
        // The same datagram with one byte of its protected payload changed fails the AEAD
        // tag: no name, rather than a wrong one.
        let mut reader = weir::capture::CaptureReader::open(&root().join("captures").join(file))
            .expect("capture");
        let frame = reader.next_frame().unwrap().unwrap().data.to_vec();
        let v = weir::wire::parse(&frame);
        let udp = &frame[usize::from(v.l4_offset) + 8..];
        assert_eq!(
            weir::classify::payload::quic::initial_sni(udp).map(|n| n.as_str().to_string()),
            Some(name.to_string()),
            "{file}"
        );
        let mut bad = udp.to_vec();
        let at = bad.len() - 40;
        bad[at] ^= 1;
        assert_eq!(
            weir::classify::payload::quic::initial_sni(&bad),
            None,
            "{file}"
        );
    }
}

#[test]
fn client_hellos_longer_than_a_segment_or_packet_are_gathered() {
    // tshark -r FILE -Y "tls.handshake.type==1" -e tls.handshake.extensions_server_name: the
    // frame where tshark has the whole hello, and its name.
    for (file, name, complete_at) in [
        // curl 7.88 (OpenSSL 3.0) over a veth of MTU 160: a 512-byte ClientHello in 5
        // segments, the SNI in the second.
        ("tls-split-hello.pcap", "split.example.test", 12),
        // Chrome's post-quantum ClientHellos (2.2 and 2.5 KB) over 2 and 3 Initial packets,
        // their CRYPTO frames shuffled.
        ("quic-split-hello.pcap", "googleads.g.doubleclick.net", 3),
        ("quic-split-hello-rand.pcap", "tr6.snapchat.com", 3),
        // 0-RTT packets first, then a 2.2 KB ClientHello over 5 Initials; after the server's
        // first reply the client sends to the server's connection ID, keeping its keys.
        ("quic-dcid-change.pcap", "www.google.de", 9),
    ] {
        let r = replay_file(
            &plan(&format!("domain {name}")),
            &root().join("captures").join(file),
            None,
            None,
            &ReplayOptions::default(),
            &mut |_| {},
        )
        .expect("replay");
        assert_eq!(r.names.learnt, 1, "{file}: {:?}", r.names);
        assert_eq!(r.names.hellos_gathered, 1, "{file}: {:?}", r.names);
        assert!(r.names.frames_before < complete_at, "{file}: {:?}", r.names);
        assert_eq!(
            received(&r, "named"),
            r.frames_read - r.names.frames_before,
            "{file}"
        );
        // One payload alone does not hold the name.
        let mut reader = weir::capture::CaptureReader::open(&root().join("captures").join(file))
            .expect("capture");
        while let Some(f) = reader.next_frame().unwrap() {
            let v = weir::wire::parse(f.data);
            let Some(payload) = f.data.get(usize::from(v.l4_offset) + 8..) else {
                continue;
            };
            if v.ip_proto == 17 {
                assert_eq!(weir::classify::payload::quic::initial_sni(payload), None);
            }
        }
    }
}

#[test]
fn a_dns_answer_names_the_flows_to_its_addresses_from_their_first_frame() {
    // tshark -r captures/dns-answer-then-flow.pcap: frame 11 answers upload.wikimedia.org
    // (a CNAME chain's end: 208.80.152.3 and three more); then 6 TCP SYNs to 208.80.152.3:80
    // (frames 12, 13, 20, 27, 28, 35) and their 6 SYN-ACKs, which carry no name of their own.
    let (r, flows) = replay_with_flows(
        &plan("domain upload.wikimedia.org"),
        "dns-answer-then-flow.pcap",
    );
    assert!(r.names.dns_answers_stored >= 4, "{:?}", r.names);
    let to_wiki: Vec<_> = flows
        .iter()
        .filter(|f| f["dst"].as_str().unwrap().starts_with("208.80.152.3:"))
        .collect();
    assert!(!to_wiki.is_empty());
    for f in &to_wiki {
        assert_eq!(f["server_name"], "upload.wikimedia.org", "{f}");
        assert_eq!(f["name_source"], "dns-cache", "{f}");
        assert_eq!(f["class_up"], "named", "{f}");
        assert_eq!(
            f["frames_before_name"], 0,
            "named from its first frame: {f}"
        );
    }
    let frames: u64 = to_wiki
        .iter()
        .map(|f| f["frames_up"].as_u64().unwrap() + f["frames_down"].as_u64().unwrap())
        .sum();
    assert_eq!(frames, 12);
    // The DNS flows are named by their own questions, and go to the named class too when
    // they ask for that name.
    assert!(received(&r, "named") >= 12 + 4);
}

#[test]
fn a_flow_that_moves_keeps_the_order_of_its_frames() {
    // The handshake waits in a slow class; the ClientHello names the flow for a fast class
    // of higher priority. Were it sent there at once, it would leave before the handshake's
    // last ACK; it waits behind it instead, and so do the frames after it, until the slow
    // queue holds none of the flow's frames.
    let src = r#"(
        lan_networks: ["192.168.0.0/16"],
        ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
        classes: [
            (name: "named", match: "domain *.mozilla.org", priority: 0, rate: "50 Mbit"),
            (name: "slow", match: "default", priority: 1, rate: "16 kbit", ceil: "16 kbit"),
        ],
    )"#;
    let plan = Arc::new(weir::config::parse(src, Path::new("order.ron")).expect("config"));
    let capture = root().join("captures/tls-sni.pcap");
    let out = std::env::temp_dir().join(format!("weir-order-{}.pcap", std::process::id()));
    let r = replay_file(
        &plan,
        &capture,
        Some(&out),
        None,
        &ReplayOptions::default(),
        &mut |_| {},
    )
    .expect("replay");
    let sent = common::captures::read_all(&out);
    let _ = std::fs::remove_file(&out);
    let input = common::captures::read_all(&capture);
    assert!(r.names.frames_held_for_order > 0, "{:?}", r.names);
    assert_eq!(sent.len() as u64, r.totals.forwarded);
    // Each frame sent is an input frame (no DSCP is set); within each flow and direction the
    // input positions must rise.
    let mut used = vec![false; input.len()];
    let mut last: std::collections::HashMap<Vec<u8>, usize> = Default::default();
    for (_, f) in &sent {
        let i = (0..input.len())
            .find(|&i| !used[i] && input[i].1 == *f)
            .expect("a frame sent is one received");
        used[i] = true;
        let v = weir::wire::parse(f);
        let key = format!("{}:{}>{}:{}", v.src_ip, v.src_port, v.dst_ip, v.dst_port).into_bytes();
        if let Some(&before) = last.get(&key) {
            assert!(
                i > before,
                "frame {} left before frame {} of its flow",
                i + 1,
                before + 1
            );
        }
        last.insert(key, i);
    }
}

#[test]
fn the_alpn_offer_of_a_client_hello_is_kept_per_flow() {
    // tshark -r FILE -Y "tls.handshake.type==1" -e tls.handshake.extensions_alpn_str: the
    // protocols each ClientHello offers; weir keeps the first, when it came with the name
    // (in the split hellos it comes after, in a piece weir no longer gathers).
    for (file, alpn) in [
        ("tls-sni.pcap", Some("h2")),
        ("tls-split-hello.pcap", None),
        ("quic-v1.pcap", Some("h3")),
        ("quic-v2.pcap", Some("quic-echo-example")),
        ("quic-split-hello.pcap", None),
    ] {
        let alpn = alpn.map_or(serde_json::Value::Null, |a| a.into());
        let (_, flows) = replay_with_flows(&plan("domain nothing.invalid"), file);
        let named: Vec<_> = flows
            .iter()
            .filter(|f| f["server_name"].is_string())
            .collect();
        assert!(!named.is_empty(), "{file}");
        for f in named {
            assert_eq!(f["alpn"], alpn, "{file}: {f}");
        }
    }
}

#[test]
fn names_agree_with_tshark_on_the_committed_captures() {
    if !common::require_tool(
        "names_agree_with_tshark_on_the_committed_captures",
        "tshark",
    ) {
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(root().join("benches/names_oracle.py"))
        .args([
            "--weir",
            env!("CARGO_BIN_EXE_weir"),
            "--min-agreement",
            "100",
        ])
        .arg(root().join("captures"))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "weir's names differ from tshark's:\n{text}"
    );
    // The committed captures hold names of each source.
    for source in ["dns:", "http:", "sni:", "quic:"] {
        assert!(text.contains(source), "no {source} flow in:\n{text}");
    }
}

#[test]
fn explain_shows_why_a_frame_gets_its_class() {
    let (dir, config) = temp_config(
        "explain",
        r#"(
            lan_networks: ["192.168.0.0/16"],
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                (name: "named", match: "domain *.mozilla.org and len > 100", rate: "1 Mbit"),
                (name: "web", match: "tcp port 443", rate: "1 Mbit"),
                (name: "rest", match: "default", rate: "1 Mbit"),
            ],
        )"#,
    );
    let explain = |frame: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["explain", "--json", "--frame", frame, "-c"])
            .arg(&config)
            .arg(root().join("captures/tls-sni.pcap"))
            .output()
            .expect("weir explain");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Frame 2, the SYN-ACK: no name yet, the port rule takes it.
    let e = explain("2");
    assert_eq!(e["class_name"], "web", "{e}");
    assert_eq!(e["explanation"]["server_name"], serde_json::Value::Null);
    // Frame 4, the ClientHello: named; the first rule's two tests both hold.
    let e = explain("4");
    assert_eq!(e["class_name"], "named", "{e}");
    assert_eq!(e["egress"], "wan");
    let x = &e["explanation"];
    assert_eq!(x["server_name"], "tls13.crypto.mozilla.org");
    assert_eq!(x["name_source"], "sni");
    let tests = x["rules"][0]["tests"].as_array().unwrap();
    assert_eq!(tests[0]["test"], "domain *.mozilla.org");
    assert_eq!(tests[0]["value"], "tls13.crypto.mozilla.org (sni)");
    assert_eq!(tests[1]["value"], "len 583");
    // A frame past the end is a clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["explain", "--frame", "99", "-c"])
        .arg(&config)
        .arg(root().join("captures/tls-sni.pcap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has 24 frames, there is no frame 99"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_a_flow_shows_where_its_class_changed_and_why() {
    let (dir, config) = temp_config(
        "explain-flow",
        r#"(
            lan_networks: ["198.18.0.0/24"],
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                (name: "voice", match: "app rtp", rate: "1 Mbit"),
                (name: "named", match: "domain split.example.test", rate: "1 Mbit"),
                (name: "rest", match: "default", rate: "1 Mbit"),
            ],
        )"#,
    );
    let explain = |capture: &str, flow: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["explain", "--json", "--flow", flow, "-c"])
            .arg(&config)
            .arg(root().join("captures").join(capture))
            .output()
            .expect("weir explain")
    };
    // The ClientHello's second segment (frame 6) holds its name: the flow moves there. The
    // endpoints are given in the other order than the flow's first frame.
    let out = explain("tls-split-hello.pcap", "198.18.5.2:443 198.18.5.1:40064");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = e["class_changes"].as_array().unwrap();
    let got: Vec<(u64, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["frame"].as_u64().unwrap(),
                c["class_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(1, "rest"), (6, "named")], "{e}");
    assert_eq!(changes[1]["server_name"], "split.example.test");
    assert_eq!(changes[1]["protocol"], "tls");
    assert_eq!(e["explanation"]["protocol"], "tls");
    // RTP: one packet each way goes before the protocol is told.
    let out = explain(
        "rtp-and-high-ports.pcap",
        "198.18.0.10:16400 198.19.0.20:20000",
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(u64, &str, &str)> = e["class_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["frame"].as_u64().unwrap(),
                c["egress"].as_str().unwrap(),
                c["class_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "wan", "rest"),
            (2, "lan", "rest"),
            (3, "wan", "voice"),
            (4, "lan", "voice")
        ]
    );
    assert_eq!(e["frame"], 50, "the flow's last frame");
    // A flow that is not there, and a malformed one, are clear errors.
    for (flow, says) in [
        ("198.18.0.1:1 198.18.0.2:2", "no frame of the flow"),
        ("198.18.0.1:1", "expected two endpoints"),
    ] {
        let out = explain("tls-split-hello.pcap", flow);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{flow}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
