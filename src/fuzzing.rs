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
    let mut rest = data;
    while let [lo, hi, ctl, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*lo, *hi]))
            .min(4096)
            .min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
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
