//! What `country` costs: loading a large synthetic country database, and classifying new
//! flows against it.
//!
//! `cargo bench --bench geo`
//!
//! The database is synthetic (GeoLite2's licence keeps it out of the repository; the sizes are
//! a guess at a large country-level database, not checked against one): 300,000 IPv4 networks
//! (/24s spread over the address space) and 100,000 IPv6 /48s, a third of each in one country
//! (`US`), the rest spread over 200 others. It is written with `mmdb-writer` to a
//! temporary file.
//! - `load`: parse a config with `country US` (open the file, one pass over it, the ranges
//!   merged less the LAN networks), wall time per load.
//! - Per new flow: parse + classify of a frame of a flow never seen, egress wan, each timed
//!   alone (hdrhistogram, p50/p99/max; the timer's own cost, about 20-40 ns, included), for
//!   `country US` against `net 10.0.0.0/8` (an address test of no cost) as the only rule
//!   besides the default.

use std::hint::black_box;
use std::time::Instant;
use weir::port::Side;

const V4_NETWORKS: u32 = 300_000;
const V6_NETWORKS: u32 = 100_000;

fn code(i: u32) -> String {
    if i.is_multiple_of(3) {
        return "US".into();
    }
    let n = i % 200;
    let a = (b'A' + (n / 26) as u8) as char;
    let b = (b'A' + (n % 26) as u8) as char;
    format!("{a}{b}")
}

fn database(path: &std::path::Path) {
    #[derive(serde::Serialize)]
    struct Place {
        iso_code: String,
    }
    #[derive(serde::Serialize)]
    struct Record {
        country: Place,
    }
    let mut w = mmdb_writer::Writer::builder("weir-bench-country").build();
    let step = (1u32 << 24) / V4_NETWORKS;
    for i in 0..V4_NETWORKS {
        let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from((i * step) << 8), 24).unwrap();
        w.insert(
            ipnet::IpNet::V4(net),
            &Record {
                country: Place { iso_code: code(i) },
            },
        )
        .unwrap();
    }
    for i in 0..V6_NETWORKS {
        let addr = (0x2400u128 << 112) | (u128::from(i * 7) << 80);
        let net = ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(addr), 48).unwrap();
        w.insert(
            ipnet::IpNet::V6(net),
            &Record {
                country: Place { iso_code: code(i) },
            },
        )
        .unwrap();
    }
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

fn config(rule: &str, db: &std::path::Path) -> String {
    format!(
        r#"(
            lan_networks: ["192.168.0.0/16"],
            geoip: (country: "{}"),
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                (name: "x", match: "{rule}", rate: "1 Mbit"),
                (name: "rest", match: "default", rate: "1 Mbit"),
            ]
        )"#,
        db.display()
    )
}

fn frame(i: u32) -> Vec<u8> {
    // From the LAN to a remote address spread like the networks, a new source port each time.
    let remote = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(
            [192, 168, (i >> 16) as u8, (i >> 8) as u8],
            remote.octets(),
            64,
        )
        .udp(1024 + (i % 60000) as u16, 443)
        .write(&mut f, b"x")
        .unwrap();
    f
}

fn main() {
    // Only when run as a bench (`cargo test --benches` runs benches once as tests).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("weir-bench-geo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("country.mmdb");
    let t = Instant::now();
    database(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    println!(
        "database: {V4_NETWORKS} IPv4 + {V6_NETWORKS} IPv6 networks, {:.1} MB, written in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let path = std::path::Path::new("geo-bench.ron");
    let mut loads = Vec::new();
    let mut plan = None;
    for _ in 0..5 {
        let t = Instant::now();
        plan = Some(weir::config::parse(&config("country US", &db), path).unwrap());
        loads.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let plan_geo = plan.unwrap();
    println!(
        "load (config with `country US`): {} ms; {} ranges for US",
        loads
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        plan_geo.geo[0].ranges
    );
    let plan_net = weir::config::parse(&config("net 10.0.0.0/8", &db), path).unwrap();
    const FLOWS: u32 = 200_000;
    let frames: Vec<Vec<u8>> = (0..FLOWS).map(frame).collect();
    for round in 0..3 {
        for (name, plan) in [("country US", &plan_geo), ("net 10.0.0.0/8", &plan_net)] {
            let mut c = plan.classifier();
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            let mut hits = 0u64;
            for (i, f) in frames.iter().enumerate() {
                let t = Instant::now();
                let v = weir::wire::parse(black_box(f));
                let verdict = c.classify_frame(&v, f, Side::Wan, 1_000 + i as u64);
                let ns = t.elapsed().as_nanos() as u64;
                hits += u64::from(verdict.class == 1);
                h.record(ns).unwrap();
            }
            println!(
                "round {round}: new flow, `{name}`: p50 {} ns, p99 {} ns, max {} ns ({} of {FLOWS} matched)",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
                hits
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
