//! The bodies of the fuzz targets (`fuzz/`, cargo-fuzz on nightly), here so that the stable
//! test suite replays the committed corpora through the same checks (`tests/fuzz_corpus.rs`).
//! Each panics on a broken promise; none allocates beyond what its classifier holds.

use crate::classify::payload::{detect, dns, quic, server_name_at, tls, At, Gather, Name, Pending};
use crate::port::Side;

/// What the parsers promise of a name: lower-case host-name bytes, at most 253, no trailing
/// dot or empty label, not digits and dots alone.
fn check(name: &Name) {
    let b = name.as_bytes();
    assert!(!b.is_empty() && b.len() <= 253, "{name:?}");
    assert!(
        b.last() != Some(&b'.') && b.first() != Some(&b'.'),
        "{name:?}"
    );
    assert!(!b.windows(2).any(|w| w == b".."), "{name:?}");
    assert!(
        b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.*".contains(c)),
        "{name:?}"
    );
    assert!(
        !b.iter().all(|c| c.is_ascii_digit() || *c == b'.'),
        "{name:?}"
    );
}

/// Every payload parser on `data`, cut into up to three payloads of one flow: protocol
/// signatures (with their state across packets), server names (a ClientHello gathered across
/// pieces), ALPN offers, DNS answers, QUIC Initials. The first byte picks the transport (bit 0), the cuts
/// (bits 1-4) and the first piece's direction (bit 5).
pub fn payload(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let proto = if ctl & 1 == 0 { 6 } else { 17 };
    let cuts = [
        0,
        rest.len() * usize::from(ctl >> 1 & 3) / 4,
        rest.len() * usize::from(ctl >> 3 & 3) / 4,
        rest.len(),
    ];
    let mut state = detect::DetectState::default();
    let mut pending = Pending::default();
    let mut gather = Gather::default();
    for (i, w) in cuts.windows(2).enumerate() {
        let (lo, hi) = (w[0].min(w[1]), w[0].max(w[1]));
        let piece = &rest[lo..hi];
        let dir = usize::from(ctl >> 5 & 1) ^ (i & 1);
        let _ = detect::protocol(proto, piece, dir, &mut state);
        let at = At {
            dir: dir as u8,
            seq: (lo as u32).wrapping_add(u32::from(ctl) << 24),
        };
        if let Some((_, n)) = server_name_at(proto, piece, at, &mut pending, &mut gather) {
            check(&n);
        }
        assert!(gather.prefix().len() <= crate::classify::payload::MAX_HELLO);
        if let Some(n) = dns::answers(piece, |n, _| check(n)) {
            check(&n);
        }
        if let tls::Hello::Found(n) = tls::client_hello(piece) {
            check(&n);
        }
        for a in [
            tls::client_hello_alpn(piece),
            tls::handshake_alpn(piece),
            crate::classify::payload::detect::ssh_software(piece),
        ]
        .into_iter()
        .flatten()
        {
            let s = a.as_str();
            assert!(
                !s.is_empty() && s.len() <= crate::classify::payload::MAX_TOKEN,
                "{a:?}"
            );
            assert!(s.bytes().all(|b| b.is_ascii_graphic()), "{a:?}");
        }
        if let Some(n) = quic::initial_sni(piece) {
            check(&n);
        }
    }
}

/// The frames of a fuzz input, with their control bytes: each frame is behind its length (two
/// bytes, little-endian, at most 4096; cut short at the end of the input) and a control byte.
fn frames(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let [lo, hi, ctl, tail @ ..] = rest else {
            return None;
        };
        let n = usize::from(u16::from_le_bytes([*lo, *hi]))
            .min(4096)
            .min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        Some((*ctl, frame))
    })
}

/// The config of [`classify`]: rules that read names, sets, protocols, ports and per-frame
/// fields; a small flow table that fills and expires.
pub const CLASSIFY_CONFIG: &str = r#"(
    lan_networks: ["198.18.0.0/15", "2001:db8::/32"],
    sets: { "video": ["*.example.com", "media-*.example.net"] },
    flow_table: (max_flows: 64, idle_timeout: "1 s", payload_frames: 3),
    ports: (wan: (rate: "10 Mbit"), lan: (rate: "10 Mbit")),
    classes: [
        (name: "voice", match: "app rtp or app sip or app stun or dscp ef", priority: 0, rate: "1 Mbit"),
        (name: "video", match: "domain @video or sni 'cdn.example.org'", priority: 1, rate: "1 Mbit"),
        (name: "web", match: "app https or app quic or app http", priority: 2, rate: "1 Mbit"),
        (name: "small", match: "len < 100 and not tcp flags syn", priority: 3, rate: "1 Mbit"),
        (name: "dns", match: "app dns or dns '*.arpa'", priority: 4, rate: "1 Mbit"),
        (name: "bulk", match: "default", priority: 5, rate: "1 Mbit"),
    ],
)"#;

/// Frames through the wire parser and a classifier of [`CLASSIFY_CONFIG`] (`plan`): every
/// verdict names a class of its port, and `explain` agrees. `data` is a sequence of frames,
/// each behind its length (two bytes, little-endian, at most 4096) and a control byte (bit 0
/// the egress port, the rest a time step of 20 ms).
pub fn classify(plan: &crate::config::Plan, data: &[u8]) {
    let mut classifier = plan.classifier();
    let classes = [
        plan.port(Side::Lan).classes.len(),
        plan.port(Side::Wan).classes.len(),
    ];
    let mut now = 0u64;
    for (ctl, frame) in frames(data) {
        let egress = if ctl & 1 == 0 { Side::Lan } else { Side::Wan };
        now += u64::from(ctl >> 1) * 20_000_000;
        let v = crate::wire::parse(frame);
        let verdict = classifier.classify_frame(&v, frame, egress, now);
        assert!(usize::from(verdict.class) < classes[egress.index()]);
        let e = classifier.explain(&v, egress);
        if !v.is_fragment {
            assert_eq!(e.class, verdict.class, "{v:?}");
        }
    }
    let _ = classifier.stats();
}

/// The config of [`pipeline`]: short queues that fill, a policer, borrowing up to a ceil, a
/// fair-queued class, an AQM with ECN, a small flow table and a budget that runs out.
pub const PIPELINE_CONFIG: &str = r#"(
    lan_networks: ["198.18.0.0/15", "2001:db8::/32"],
    flow_table: (max_flows: 64, idle_timeout: "1 s"),
    ports: (wan: (rate: "2 Mbit", overhead: 24), lan: (rate: "4 Mbit")),
    budgets: [(name: "host", match: "host 198.18.0.2", bytes: "20 kB", per: day, then: (ceil: "100 kbit"))],
    classes: [
        (name: "voice", match: "udp or dscp ef", priority: 0, rate: "500 kbit",
         queue: (packets: 8), police: (rate: "1 Mbit", burst: "3 kB")),
        (name: "web", match: "tcp port 80 or tcp port 443", priority: 1, rate: "500 kbit",
         ceil: "100%", queue: (packets: 16), fairness: flow, ecn: true,
         aqm: (target: "1 ms", interval: "10 ms")),
        (name: "bulk", match: "default", priority: 2, rate: "100 kbit", ceil: "50%",
         queue: (packets: 16, bytes: "72 KiB"), fairness: host,
         budget: (bytes: "30 kB", per: day, then: drop)),
    ],
)"#;

/// Frames (framed as for [`classify`], the control byte's upper bits a time step of 1 ms)
/// through a replay of [`PIPELINE_CONFIG`] (`plan`): wire parse, classify, enqueue, police,
/// shape and dequeue, then everything still queued sent. Every frame is accounted for once
/// (`received = forwarded + dropped`, nothing left queued, per class and in total), and what
/// departs is what the counters say departed.
pub fn pipeline(plan: &std::sync::Arc<crate::config::Plan>, data: &[u8]) {
    let mut replay = crate::replay::Replay::new(plan, &Default::default(), true);
    let (mut departed, mut departed_bytes) = (0u64, 0u64);
    let mut last = 0;
    let mut out = |t: u64, bytes: &[u8], _len: u32| {
        assert!(t >= last, "departures go forward in time");
        last = t;
        departed += 1;
        departed_bytes += bytes.len() as u64;
    };
    let mut now = 1_700_000_000_000_000_000u64;
    for (ctl, frame) in frames(data) {
        now += u64::from(ctl) * 1_000_000;
        replay.push(now, frame, frame.len() as u32, &mut out);
    }
    let report = replay.finish(&mut out);
    let t = report.totals;
    assert!(t.is_conserved() && t.queued == 0, "{t:?}");
    assert_eq!(t.forwarded, departed, "{t:?}");
    let mut forwarded_bytes = 0;
    for c in &report.classes {
        assert_eq!(
            c.received_frames,
            c.forwarded_frames + c.dropped_frames,
            "{c:?}"
        );
        assert_eq!(
            c.dropped_frames,
            c.drops_by_reason.values().sum::<u64>(),
            "{c:?}"
        );
        assert_eq!(c.queued_frames, 0, "{c:?}");
        forwarded_bytes += c.forwarded_bytes;
    }
    assert_eq!(forwarded_bytes, departed_bytes);
}

/// Frames a fuzzed rule is tried on: TCP (a SYN to 443 with DSCP EF behind a VLAN tag, a
/// data segment to 80), UDP over IPv4 (DNS) and IPv6, a ping, a fragment and ARP.
fn rule_frames() -> &'static [Vec<u8>] {
    use etherparse::PacketBuilder;
    static FRAMES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FRAMES.get_or_init(|| {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (lan, wan) = ([198, 18, 0, 2], [198, 19, 0, 9]);
        let mut out = Vec::new();
        let mut push = |f: Vec<u8>| out.push(f);
        let mut syn = Vec::new();
        let vlan = etherparse::VlanId::try_new(7).expect("a VLAN id");
        let _ = PacketBuilder::ethernet2(a, b)
            .single_vlan(vlan)
            .ipv4(lan, wan, 64)
            .tcp(40000, 443, 1, 1000)
            .syn()
            .write(&mut syn, &[]);
        syn[19] = 0xb8; // DSCP EF in the TOS byte (after the 4-byte tag)
        push(syn);
        let mut web = Vec::new();
        let _ = PacketBuilder::ethernet2(b, a)
            .ipv4(wan, lan, 64)
            .tcp(80, 40001, 7, 1000)
            .ack(1)
            .write(&mut web, b"HTTP/1.1 200 OK\r\n\r\n");
        push(web);
        let mut dns = Vec::new();
        let _ = PacketBuilder::ethernet2(a, b)
            .ipv4(lan, [198, 19, 0, 53], 64)
            .udp(5353, 53)
            .write(
                &mut dns,
                &[
                    0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
                ],
            );
        push(dns);
        let mut v6 = Vec::new();
        let mut lan6 = [0u8; 16];
        lan6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        lan6[15] = 2;
        let _ = PacketBuilder::ethernet2(a, b)
            .ipv6(
                lan6,
                [0x26, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                64,
            )
            .udp(50000, 3478)
            .write(&mut v6, &[0; 20]);
        push(v6);
        let mut ping = Vec::new();
        let _ = PacketBuilder::ethernet2(a, b)
            .ipv4(lan, wan, 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut ping, &[0; 56]);
        push(ping.clone());
        let mut frag = ping;
        frag[20] = 0x20; // more fragments
        push(frag);
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&a);
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&a);
        arp.extend_from_slice(&lan);
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&wan);
        push(arp);
        out
    })
}

/// A rule's text (`data` as UTF-8) through the rule parser, compiler and static analysis,
/// with the set `video` known. An error points inside the text (or just past its end) and
/// says something. A rule that compiles decides the frames of [`rule_frames`] without
/// panicking; its flow/frame split agrees with the whole rule, `explain` gives the same
/// verdict, and a rule proven never to match matches none. A second rule after a newline
/// checks the shadowing proof: when it is proven shadowed by the first, every frame it
/// matches, the first matches too.
pub fn rule(data: &[u8]) {
    use crate::classify::rule::Rule;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    let sets = ["video".to_string()];
    let parse = |src: &str| match Rule::parse_with_sets(src, &sets) {
        Err(e) => {
            let n = src.chars().count();
            assert!(e.column >= 1 && e.len >= 1, "{e:?}");
            assert!(e.column <= n + 1, "{e:?} of {n} characters");
            assert!(!e.message.is_empty(), "{e:?}");
            let _ = e.to_string();
            None
        }
        Ok(rule) => Some(rule),
    };
    let Some(a) = parse(first) else {
        return;
    };
    let b = if second.is_empty() {
        None
    } else {
        parse(second)
    };
    let shadowed = b.as_ref().is_some_and(|b| b.is_shadowed_by(&[&a]));
    for frame in rule_frames() {
        let v = crate::wire::parse(frame);
        for names in [0, u64::MAX] {
            let m = a.matches_with(&v, names);
            let split = a.matches_flow_part(&v, names) || a.matches_frame_part(&v, names);
            assert_eq!(m, split, "{first:?} on {v:?}");
            let (_, explained) = a.explain(&v, names, None, "");
            assert_eq!(explained, m || a.is_default(), "{first:?} on {v:?}");
        }
        if a.never_matches() {
            assert!(!a.matches(&v), "{first:?} said never to match, on {v:?}");
        }
        if shadowed {
            let b = b.as_ref().expect("shadowed implies a second rule");
            if b.matches(&v) {
                assert!(
                    a.matches(&v),
                    "{second:?} said shadowed by {first:?}, on {v:?}"
                );
            }
        }
    }
}

/// Config text (`data` as UTF-8) through the config loader: RON, then validation and the
/// build of the plan. An error names a position inside the text (when it has one) and a
/// message; a plan that builds has, on each port, classes with exactly one default, and a
/// classifier's rules for it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A folder that does not exist: a path in the config (`geoip`) is not found, never read.
    let path = std::path::Path::new("/nonexistent/weir-fuzz/fuzz.ron");
    match crate::config::parse(text, path) {
        Err(e) => {
            assert!(!e.message.is_empty(), "{e:?}");
            if let Some(p) = e.position {
                let lines = text.lines().count().max(1);
                assert!(p.line >= 1 && p.line <= lines + 1, "{e:?} of {lines} lines");
                assert!(p.column >= 1, "{e:?}");
            }
            let _ = e.to_string();
        }
        Ok(plan) => {
            for side in [Side::Lan, Side::Wan] {
                let classes = &plan.port(side).classes;
                assert!(!classes.is_empty());
                let defaults = classes
                    .iter()
                    .filter(|c| c.kind == crate::config::ClassKind::Default)
                    .count();
                assert_eq!(defaults, 1, "{side:?}");
            }
            let _ = plan.port_rules();
        }
    }
}

/// Bytes as a capture file (written to `scratch`, a file in memory-backed storage) through the
/// capture reader: it opens or says why not, then yields frames numbered 1, 2, ... with
/// `orig_len >= data.len()`, each through the wire parser, until the end or an error, after
/// which it yields nothing.
pub fn capture(scratch: &std::path::Path, data: &[u8]) {
    use crate::capture::CaptureReader;
    if std::fs::write(scratch, data).is_err() {
        return;
    }
    let Ok(mut reader) = CaptureReader::open(scratch) else {
        return;
    };
    let mut expected = 1;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                assert_eq!(f.number, expected);
                assert!(u64::from(f.orig_len) >= f.data.len() as u64);
                let _ = crate::wire::parse(f.data);
                expected += 1;
            }
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
        assert!(expected <= 1 + data.len() as u64, "more frames than bytes");
    }
    assert!(matches!(reader.next_frame(), Ok(None)));
    assert!(reader.position() <= reader.file_len());
}
