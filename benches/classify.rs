//! Wire parsing and classification cost per frame.
//!
//! `cargo bench --bench classify`
//! - `parse/weir/*` vs `parse/etherparse_lax/*`: `weir::wire::parse` against
//!   `etherparse::LaxSlicedPacket::from_ethernet` on the same frames.
//! - `classify/home.ron`: parse + classify on a warmed flow table (configs/home.ron), cycling
//!   through 256 flows of mixed applications.
//! - `classify/mixed-services/names_{off,on}`: parse + classify of every frame of
//!   captures/mixed-services.pcap (263 frames, 38 flows: SSH, HTTP, DNS, FTP, mDNS, ...) with
//!   the frame's bytes (configs/home.ron); each pass comes 1000 s after the last, past the idle
//!   timeout, so every flow is new again and, with `names_on` (`Classifier::keep_names`, as a
//!   config with a `domain` rule does), its name is read again and DNS answers stored again.
//!   Throughput is per frame.

use criterion::{criterion_group, Criterion, Throughput};
use etherparse::{PacketBuilder, VlanId};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;
use weir::port::Side;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn ipv4_tcp(sport: u16, dport: u16, host: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([198, 18, 0, host], [198, 19, 1, 1], 64)
        .tcp(sport, dport, 1, 65535)
        .ack(1)
        .write(&mut f, &[0x5a; 100])
        .unwrap();
    f
}

fn ipv4_udp(sport: u16, dport: u16, host: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([198, 18, 0, host], [198, 19, 1, 1], 64)
        .udp(sport, dport)
        .write(&mut f, &[0x5a; 60])
        .unwrap();
    f
}

fn ipv6_udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(src, dst, 64)
        .udp(sport, dport)
        .write(&mut f, &[0x5a; 1200])
        .unwrap();
    f
}

fn vlan_ipv4_udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(100).unwrap())
        .ipv4([198, 18, 0, 7], [198, 19, 1, 1], 64)
        .udp(sport, dport)
        .write(&mut f, &[0x5a; 160])
        .unwrap();
    f
}

fn parse(c: &mut Criterion) {
    let frames = [
        ("ipv4_tcp", ipv4_tcp(40000, 443, 10)),
        ("ipv6_udp", ipv6_udp(40001, 443)),
        ("vlan_ipv4_udp", vlan_ipv4_udp(40002, 5060)),
    ];
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, f) in &frames {
        g.bench_function(format!("weir/{name}"), |b| {
            b.iter(|| weir::wire::parse(black_box(f)))
        });
        g.bench_function(format!("etherparse_lax/{name}"), |b| {
            b.iter(|| {
                etherparse::LaxSlicedPacket::from_ethernet(black_box(f))
                    .map(|p| black_box(p).net.is_some())
            })
        });
    }
    g.finish();
}

fn classify(c: &mut Criterion) {
    let plan = weir::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/home.ron"
    )))
    .expect("configs/home.ron");
    let mut classifier = plan.classifier();
    // 256 flows: HTTPS, DNS, SSH, SIP, QUIC over IPv6, VLAN-tagged, and an unmatched (bulk) port.
    let mut frames = Vec::new();
    for i in 0..256u16 {
        let host = (i % 200) as u8 + 1;
        let sport = 20000 + i;
        let f = match i % 7 {
            0 => ipv4_tcp(sport, 443, host),
            1 => ipv4_udp(sport, 53, host),
            2 => ipv4_tcp(sport, 22, host),
            3 => ipv4_udp(sport, 5060, host),
            4 => ipv6_udp(sport, 443),
            5 => vlan_ipv4_udp(sport, 123),
            _ => ipv4_tcp(sport, 6881, host),
        };
        frames.push(f);
    }
    let now = 1_000_000_000;
    for f in &frames {
        classifier.classify(&weir::wire::parse(f), Side::Wan, now);
    }
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("parse+classify/home.ron/256_flows", |b| {
        b.iter(|| {
            let f = &frames[i];
            i = (i + 1) & 255;
            let v = weir::wire::parse(black_box(f));
            classifier.classify(&v, Side::Wan, now)
        })
    });
    g.finish();
}

fn classify_capture(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = weir::config::load(&root.join("configs/home.ron")).expect("configs/home.ron");
    let mut reader = weir::capture::CaptureReader::open(&root.join("captures/mixed-services.pcap"))
        .expect("captures/mixed-services.pcap");
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame().expect("a readable capture") {
        frames.push((f.ts_ns, f.data.to_vec()));
    }
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(frames.len() as u64));
    for names in [false, true] {
        let id = format!("mixed-services/names_{}", if names { "on" } else { "off" });
        let mut classifier = plan.classifier();
        if names {
            classifier.keep_names();
        }
        let mut pass = 0u64;
        g.bench_function(id, |b| {
            b.iter(|| {
                pass += 1;
                let base = pass * 1_000_000_000_000;
                for (t, f) in &frames {
                    let v = weir::wire::parse(black_box(f));
                    black_box(classifier.classify_frame(&v, f, Side::Wan, base + *t));
                }
            })
        });
        if names {
            assert!(classifier.stats().names.learnt > 0, "names were read");
        }
    }
    g.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = parse, classify, classify_capture
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
