//! `country` and `asn` rules over a MaxMind DB file.
//!
//! `tests/fixtures/geo-test.mmdb` is written by [`test_database`] below (with the
//! `mmdb-writer` crate, in the GeoIP2 schema that GeoLite2 and DB-IP lite use) and pinned to
//! it: it maps parts of the benchmarking ranges 198.18.0.0/15 and 2001:db8::/32 to countries
//! and ASes (provenance and licence: tests/fixtures/README.md).

mod common;

use common::captures::{root, temp_config};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use weir::port::Side;

#[derive(Serialize)]
struct Place {
    iso_code: &'static str,
    names: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Record {
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<Place>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_country: Option<Place>,
    #[serde(skip_serializing_if = "Option::is_none")]
    autonomous_system_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    autonomous_system_organization: Option<&'static str>,
}

fn place(iso_code: &'static str, name: &'static str) -> Option<Place> {
    Some(Place {
        iso_code,
        names: [("en", name)].into(),
    })
}

/// A network of the test database: (network, country, registered country, AS).
type Network = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<u32>,
);

const NETWORKS: &[Network] = &[
    ("198.18.0.0/24", Some("NZ"), None, Some(64496)),
    ("198.18.1.0/24", Some("AU"), None, Some(64497)),
    // No country of its own: the registered one counts.
    ("198.18.2.0/24", None, Some("NZ"), Some(64496)),
    // An AS, no country.
    ("198.18.3.0/24", None, None, Some(64499)),
    ("198.19.0.0/16", Some("US"), None, Some(64498)),
    ("2001:db8::/48", Some("NZ"), None, Some(64496)),
    ("2001:db8:1::/48", Some("AU"), None, Some(64497)),
];

fn country_name(code: &str) -> &'static str {
    match code {
        "NZ" => "New Zealand",
        "AU" => "Australia",
        _ => "United States",
    }
}

/// The bytes of tests/fixtures/geo-test.mmdb.
fn test_database() -> Vec<u8> {
    let mut w = mmdb_writer::Writer::builder("weir-test-GeoIP2-Country-ASN")
        .description(&[(
            "en",
            "weir's test database: benchmarking ranges (RFC 2544, RFC 3849) mapped to countries and ASes",
        )])
        .build_epoch(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_169_600))
        .build();
    for (net, country, registered, asn) in NETWORKS {
        let leak = |c: &str| -> &'static str { Box::leak(c.to_string().into_boxed_str()) };
        let record = Record {
            country: country.and_then(|c| place(leak(c), country_name(c))),
            registered_country: registered.and_then(|c| place(leak(c), country_name(c))),
            autonomous_system_number: *asn,
            autonomous_system_organization: asn.map(|_| "Example network"),
        };
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    w.to_bytes().unwrap()
}

fn fixture() -> std::path::PathBuf {
    root().join("tests/fixtures/geo-test.mmdb")
}

#[test]
fn the_test_database_is_what_its_generator_writes() {
    let bytes = test_database();
    if std::env::var_os("WEIR_REGENERATE_CAPTURES").is_some() {
        std::fs::write(fixture(), &bytes).unwrap();
    }
    assert!(
        std::fs::read(fixture()).unwrap() == bytes,
        "tests/fixtures/geo-test.mmdb differs from its generator (WEIR_REGENERATE_CAPTURES=1 writes it)"
    );
}

/// A plan whose wan classes are `rules` (then a default), with the test database for both
/// kinds and LAN 198.18.0.0/30.
fn plan(rules: &[(&str, &str)]) -> weir::config::Plan {
    let classes: Vec<String> = rules
        .iter()
        .map(|(name, rule)| format!(r#"(name: "{name}", match: "{rule}", rate: "1 Mbit"),"#))
        .collect();
    let src = format!(
        r#"(
            lan_networks: ["198.18.0.0/30", "2001:db8::/126"],
            geoip: (country: "{db}", asn: "{db}"),
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                {}
                (name: "rest", match: "default", rate: "1 Mbit"),
            ]
        )"#,
        classes.join("\n"),
        db = fixture().display()
    );
    weir::config::parse(&src, Path::new("geo-test.ron")).expect("test config")
}

fn udp(src: &str, dst: &str) -> Vec<u8> {
    let mut f = Vec::new();
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    match (
        src.parse::<std::net::IpAddr>().unwrap(),
        dst.parse::<std::net::IpAddr>().unwrap(),
    ) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => b
            .ipv4(s.octets(), d.octets(), 64)
            .udp(40000, 5000)
            .write(&mut f, b"x")
            .unwrap(),
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => b
            .ipv6(s.octets(), d.octets(), 64)
            .udp(40000, 5000)
            .write(&mut f, b"x")
            .unwrap(),
        _ => unreachable!(),
    }
    f
}

/// The class name each frame gets leaving by wan.
fn classes(plan: &weir::config::Plan, frames: &[(&str, &str)]) -> Vec<String> {
    let mut c = plan.classifier();
    frames
        .iter()
        .map(|(s, d)| {
            let f = udp(s, d);
            let v = weir::wire::parse(&f);
            let id = c.classify_frame(&v, &f, Side::Wan, 1).class;
            plan.port(Side::Wan).classes[usize::from(id)].name.clone()
        })
        .collect()
}

#[test]
fn country_and_asn_rules_match_the_remote_side() {
    let p = plan(&[
        ("nz", "country NZ"),
        ("au", "cc au"),
        ("as64499", "asn AS64499"),
        ("us-or-far", "country US or asn 64497"),
    ]);
    let got = classes(
        &p,
        &[
            // From the LAN (198.18.0.1, inside 198.18.0.0/30) to each network.
            ("198.18.0.1", "198.18.0.77"),
            ("198.18.0.1", "198.18.1.5"),
            ("198.18.0.1", "198.18.2.5"),
            ("198.18.0.1", "198.18.3.5"),
            ("198.18.0.1", "198.19.200.1"),
            ("198.18.0.1", "198.18.9.9"),
            // The reply direction: the remote side is the source.
            ("198.18.1.5", "198.18.0.1"),
            // Both ends on the LAN: the LAN is never a country's.
            ("198.18.0.1", "198.18.0.2"),
            ("2001:db8::1", "2001:db8::99"),
            ("2001:db8::1", "2001:db8:1::99"),
            ("2001:db8::1", "2001:db8:2::99"),
        ],
    );
    assert_eq!(
        got,
        [
            "nz",
            "au",
            "nz",
            "as64499",
            "us-or-far",
            "rest",
            "au",
            "rest",
            "nz",
            "au",
            "rest"
        ]
    );
    // What each test got, for `weir check`.
    let got: Vec<(String, usize)> = p.geo.iter().map(|g| (g.key.describe(), g.ranges)).collect();
    assert_eq!(
        got,
        [
            ("country AU".into(), 2),
            ("country NZ".into(), 3),
            ("country US".into(), 1),
            ("asn 64497".into(), 2),
            ("asn 64499".into(), 1),
        ]
    );
}

#[test]
fn a_missing_or_damaged_database_is_a_clear_config_error() {
    let config = |geoip: &str| {
        format!(
            "(\n    {geoip}\n    ports: (wan: (rate: \"10 Mbit\"), lan: (rate: \"10 Mbit\")),\n    classes: [\n        (name: \"nz\", match: \"udp and country NZ\", rate: \"1 Mbit\"),\n        (name: \"rest\", match: \"default\", rate: \"1 Mbit\"),\n    ],\n)\n"
        )
    };
    let err = |src: String| {
        weir::config::parse(&src, Path::new("geo.ron"))
            .expect_err("refused")
            .to_string()
    };
    // No database named: the rule that needs one is pointed at.
    let e = err(config(""));
    assert!(e.starts_with("geo.ron:5:"), "{e}");
    assert!(
        e.contains("`country NZ` needs a database of countries"),
        "{e}"
    );
    assert!(e.contains("geoip: (country:"), "{e}");
    // A file that is not there, and one that is not a database.
    let e = err(config(
        r#"geoip: (country: "/nonexistent/GeoLite2-Country.mmdb"),"#,
    ));
    assert!(e.starts_with("geo.ron:2:"), "{e}");
    assert!(
        e.contains("cannot read /nonexistent/GeoLite2-Country.mmdb"),
        "{e}"
    );
    let not_db = root().join("configs/home.ron");
    let e = err(config(&format!(
        r#"geoip: (country: "{}"),"#,
        not_db.display()
    )));
    assert!(e.contains("is not a MaxMind DB file"), "{e}");
    // A bad code is a rule error at its column.
    let e = weir::config::parse(
        &config(&format!(r#"geoip: (country: "{}"),"#, fixture().display()))
            .replace("country NZ", "country NZL"),
        Path::new("geo.ron"),
    )
    .expect_err("refused")
    .to_string();
    assert!(e.contains("`NZL` is not a country code"), "{e}");
}

#[test]
fn replay_classifies_by_country_and_check_names_the_database() {
    let (dir, config) = temp_config(
        "geo-replay",
        r#"(
            lan_networks: ["198.18.0.0/30"],
            geoip: (country: "fixtures-link/geo-test.mmdb"),
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                (name: "nz", match: "country NZ", rate: "1 Mbit"),
                (name: "rest", match: "default", rate: "1 Mbit"),
            ],
        )"#,
    );
    // A relative path is taken from the config's folder.
    let db_dir = dir.join("fixtures-link");
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::copy(fixture(), db_dir.join("geo-test.mmdb")).unwrap();
    let capture = dir.join("geo.pcap");
    let mut w = weir::capture::CaptureWriter::create(&capture).unwrap();
    for (i, (s, d)) in [
        ("198.18.0.1", "198.18.0.77"),
        ("198.18.0.77", "198.18.0.1"),
        ("198.18.0.1", "198.19.0.1"),
    ]
    .iter()
    .enumerate()
    {
        let f = udp(s, d);
        w.write(1_000_000_000 * (i as u64 + 1), &f, f.len() as u32)
            .unwrap();
    }
    w.finish().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["replay", "--json", "-c"])
        .arg(&config)
        .arg(&capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let forwarded = |port: &str, class: &str| {
        r["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["port"] == port && c["name"] == class)
            .map_or(0, |c| c["forwarded_frames"].as_u64().unwrap())
    };
    assert_eq!(forwarded("wan", "nz"), 1, "{r:#}");
    assert_eq!(forwarded("lan", "nz"), 1, "{r:#}");
    assert_eq!(forwarded("wan", "rest"), 1, "{r:#}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("country NZ: 3 address ranges"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
