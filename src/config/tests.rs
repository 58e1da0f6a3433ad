//! Config validation: good files load, bad ones fail at the right place with a useful hint.

use super::*;

const GOOD: &str = r#"(
    lan_networks: ["198.18.0.0/24"],
    ports: (
        wan: (
            rate: "10 Mbit",
            classes: [
                (name: "voice", match: "udp port 5060", priority: 0, rate: "1 Mbit", ceil: "2 Mbit"),
                (name: "bulk", match: "default", rate: "40%"),
            ],
        ),
        lan: (
            rate: "100 Mbit",
            classes: [(name: "all", match: "default", rate: "100 Mbit")],
        ),
    ),
)"#;

fn err(src: &str) -> ConfigError {
    parse(src, Path::new("t.ron")).expect_err("config should be refused")
}

/// `GOOD` with `from` replaced by `to` (which must occur once).
fn bad(from: &str, to: &str) -> ConfigError {
    assert_eq!(GOOD.matches(from).count(), 1, "{from}");
    err(&GOOD.replace(from, to))
}

#[test]
fn a_good_config_resolves_defaults_and_percentages() {
    let plan = parse(GOOD, Path::new("t.ron")).unwrap();
    let wan = plan.port(crate::port::Side::Wan);
    assert_eq!(wan.spec.rate_bps, 10_000_000);
    assert_eq!(wan.overhead, 24);
    // control, voice, bulk
    assert_eq!(wan.classes.len(), 3);
    assert_eq!(wan.classes[0].kind, ClassKind::Control);
    assert_eq!(wan.spec.classes[2].rate_bps, 4_000_000);
    assert_eq!(
        wan.spec.classes[2].ceil_bps, 10_000_000,
        "ceil defaults to the link"
    );
    assert!(wan.spec.classes[1].codel.is_some(), "AQM on by default");
    assert!(plan.is_lan_address(u128::from(u32::from_be_bytes([198, 18, 0, 7])), false));
    assert!(!plan.is_lan_address(u128::from(u32::from_be_bytes([198, 18, 1, 7])), false));
}

#[test]
fn ceil_below_rate_points_at_ceil() {
    let e = bad(r#"ceil: "2 Mbit""#, r#"ceil: "500 kbit""#);
    assert!(e.message.contains("below its rate"), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(7));
    let shown = e.to_string();
    assert!(shown.starts_with("t.ron:7:"), "{shown}");
    assert!(shown.contains("hint:"), "{shown}");
}

#[test]
fn two_default_classes_are_refused() {
    let e = bad(r#"match: "udp port 5060""#, r#"match: "default""#);
    assert!(e.message.contains("two default classes"), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(8));
}

#[test]
fn a_port_without_default_is_refused() {
    let e = bad(r#"(name: "bulk", match: "default", rate: "40%"),"#, "");
    assert!(e.message.contains("no default class"), "{e}");
}

#[test]
fn unknown_default_class_names_the_known_ones() {
    let e = err(&GOOD.replace(
        r#"rate: "10 Mbit","#,
        r#"rate: "10 Mbit", default_class: "bluk","#,
    ));
    assert!(e.message.contains("unknown class `bluk`"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("voice, bulk"),
        "{e}"
    );
}

#[test]
fn guaranteed_rates_above_the_link_are_refused() {
    let e = bad(r#"rate: "40%""#, r#"rate: "9.5 Mbit""#);
    assert!(e.message.contains("add up to 10.5 Mbit"), "{e}");
    assert_eq!(
        e.position.map(|p| p.line),
        Some(5),
        "points at the link rate"
    );
}

#[test]
fn a_bad_rule_points_at_the_column_inside_the_string() {
    let e = bad(r#"match: "udp port 5060""#, r#"match: "udp port 70000""#);
    let p = e.position.unwrap();
    let line = GOOD.lines().nth(p.line - 1).unwrap();
    let col_of_number = line.find("5060").unwrap() + 1;
    assert_eq!(p.column, col_of_number, "{e}");
    assert!(e.message.contains("70000"), "{e}");
}

#[test]
fn a_rule_that_can_never_match_is_refused() {
    let e = bad(r#"match: "udp port 5060""#, r#"match: "tcp and udp""#);
    assert!(e.message.contains("can never match"), "{e}");
    let e = err(&GOOD.replace(
        r#"(name: "bulk""#,
        r#"(name: "sip", match: "udp port 5060 and len < 200", rate: "1 Mbit"), (name: "bulk""#,
    ));
    assert!(e.message.contains("never receive a frame"), "{e}");
}

#[test]
fn byte_rates_and_unknown_fields_get_hints() {
    let e = bad(r#"rate: "10 Mbit""#, r#"rate: "10 MB/s""#);
    assert!(e.hint.as_deref().unwrap_or("").contains("80 Mbit"), "{e}");
    let e = bad(r#"priority: 0"#, r#"prio: 0"#);
    assert!(e.message.contains("prio"), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(7));
    assert!(e.hint.as_deref().unwrap_or("").contains("priority"), "{e}");
}

#[test]
fn lan_networks_with_host_bits_are_refused() {
    let e = bad(r#""198.18.0.0/24""#, r#""198.18.0.1/24""#);
    assert!(
        e.hint.as_deref().unwrap_or("").contains("198.18.0.0/24"),
        "{e}"
    );
    assert_eq!(e.position.map(|p| p.line), Some(2));
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let e = load(Path::new("/nonexistent/weir.ron")).unwrap_err();
    assert!(e.position.is_none());
    assert!(e.to_string().contains("cannot read"));
}
