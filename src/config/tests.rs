//! Config validation: good files load, bad ones fail at the right place with a useful hint.

use super::*;
use crate::port::Side;
use crate::sched::BASE_QUANTUM;

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

/// Classes written once for both ports, with pairs where the ports differ.
const SHARED: &str = r#"(
    ports: (
        wan: (rate: "10 Mbit"),
        lan: (rate: "100 Mbit"),
    ),
    classes: [
        (name: "voice", match: "udp port 5060", priority: 0,
         rate: (wan: "1 Mbit", lan: "5 Mbit"),
         ceil: "20%",
         set_dscp: (wan: "ef")),
        (name: "bulk", match: "default", rate: "40%", queue: (packets: (lan: 200))),
    ],
)"#;

fn shared_bad(from: &str, to: &str) -> ConfigError {
    assert_eq!(SHARED.matches(from).count(), 1, "{from}");
    err(&SHARED.replace(from, to))
}

/// 1-based line and column of the first `needle` in `src`.
fn line_col(src: &str, needle: &str) -> (usize, usize) {
    let at = src.find(needle).expect(needle);
    let line = src[..at].matches('\n').count() + 1;
    let col = src[..at].rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn position(e: &ConfigError) -> (usize, usize) {
    let p = e.position.expect("a position");
    (p.line, p.column)
}

#[test]
fn shared_classes_serve_both_ports_with_their_own_links() {
    let plan = parse(SHARED, Path::new("t.ron")).unwrap();
    let (wan, lan) = (plan.port(Side::Wan), plan.port(Side::Lan));
    for port in [wan, lan] {
        let names: Vec<&str> = port.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["control", "voice", "bulk"]);
    }
    // A pair gives each port its value; a share is of each port's link.
    assert_eq!(wan.spec.classes[1].rate_bps, 1_000_000);
    assert_eq!(lan.spec.classes[1].rate_bps, 5_000_000);
    assert_eq!(wan.spec.classes[1].ceil_bps, 2_000_000);
    assert_eq!(lan.spec.classes[1].ceil_bps, 20_000_000);
    assert_eq!(wan.spec.classes[2].rate_bps, 4_000_000);
    assert_eq!(lan.spec.classes[2].rate_bps, 40_000_000);
    // A side left out of a pair gets what leaving the field out gives.
    assert_eq!(wan.classes[1].set_dscp, Some(46));
    assert_eq!(lan.classes[1].set_dscp, None);
    assert_eq!(wan.spec.classes[2].limit_packets, 1000);
    assert_eq!(lan.spec.classes[2].limit_packets, 200);
}

#[test]
fn a_port_with_its_own_classes_beside_shared_ones_is_refused_where_it_lists_them() {
    let src = SHARED.replace(
        r#"lan: (rate: "100 Mbit"),"#,
        r#"lan: (rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "1 Mbit")]),"#,
    );
    let e = err(&src);
    assert!(e.message.contains("port lan has its own classes"), "{e}");
    assert_eq!(position(&e), line_col(&src, "[(name: \"all\""), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("not both"), "{e}");
}

#[test]
fn a_pair_inside_a_port_s_own_class_is_refused() {
    let e = bad(
        r#"ceil: "2 Mbit""#,
        r#"ceil: (wan: "2 Mbit", lan: "3 Mbit")"#,
    );
    assert!(e.message.contains("ceil: a pair"), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(7), "{e}");
}

#[test]
fn no_classes_anywhere_is_refused() {
    let src = SHARED[..SHARED.find("    classes: [").unwrap()].to_string() + ")";
    let e = err(&src);
    assert!(e.message.contains("port lan has no classes"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("top level"), "{e}");
}

#[test]
fn errors_in_shared_classes_point_at_the_value_of_the_port_concerned() {
    // The lan side of a pair.
    let e = shared_bad(
        r#"rate: (wan: "1 Mbit", lan: "5 Mbit")"#,
        r#"rate: (wan: "1 Mbit", lan: "50 Mbit")"#,
    );
    assert!(
        e.message
            .contains("ceil 20 Mbit of class `voice` is below its rate 50 Mbit"),
        "{e}"
    );
    let src = SHARED.replace(r#"lan: "5 Mbit""#, r#"lan: "50 Mbit""#);
    assert_eq!(
        position(&e),
        (line_col(&src, "\"20%\"").0, line_col(&src, "\"20%\"").1 + 1)
    );
    let e = shared_bad(r#"lan: "5 Mbit""#, r#"lan: "5 Mbyte""#);
    let src = SHARED.replace(r#"lan: "5 Mbit""#, r#"lan: "5 Mbyte""#);
    let (line, col) = line_col(&src, "\"5 Mbyte\"");
    assert_eq!(position(&e).0, line, "{e}");
    assert!(position(&e).1 > col, "inside the lan value: {e}");
    // A single value shared by both ports: the first port that fails names itself.
    let e = shared_bad(r#"rate: "40%""#, r#"rate: "96%""#);
    assert!(e.message.contains("port lan add up to"), "{e}");
    let e = shared_bad(r#"match: "udp port 5060""#, r#"match: "udp port 70000""#);
    let src = SHARED.replace("5060", "70000");
    assert_eq!(position(&e), line_col(&src, "70000"), "{e}");
    assert!(e.message.contains("rule of class `voice`"), "{e}");
}

#[test]
fn a_pair_must_give_both_ports_a_rate_and_name_only_ports() {
    let e = shared_bad(
        r#"rate: (wan: "1 Mbit", lan: "5 Mbit")"#,
        r#"rate: (wan: "1 Mbit")"#,
    );
    assert!(e.message.contains("no rate for port lan"), "{e}");
    let e = shared_bad(r#"lan: "5 Mbit""#, r#"lna: "5 Mbit""#);
    assert!(e.message.contains("lna"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("wan, lan"), "{e}");
    let src = SHARED
        .replace("lna", "lan")
        .replace(r#"lan: "5 Mbit""#, r#"lna: "5 Mbit""#);
    assert_eq!(position(&e).0, line_col(&src, "lna").0, "{e}");
}

#[test]
fn police_takes_a_share_of_the_link_and_a_pair_may_police_one_port() {
    let src = SHARED.replace(
        r#"set_dscp: (wan: "ef")"#,
        r#"police: (rate: (wan: "10%"), burst: "10 kB")"#,
    );
    let plan = parse(&src, Path::new("t.ron")).unwrap();
    assert_eq!(
        plan.port(Side::Wan).spec.classes[1].police,
        Some((1_000_000, 10_000))
    );
    assert_eq!(plan.port(Side::Lan).spec.classes[1].police, None);
    let e = err(&SHARED.replace(
        r#"set_dscp: (wan: "ef")"#,
        r#"police: (rate: (wan: "10%"), burst: (lan: "10 kB"))"#,
    ));
    assert!(e.message.contains("police.rate leaves out"), "{e}");
}

#[test]
fn burst_sets_both_buckets_unless_cburst_is_given() {
    let spec = |to: &str| {
        let plan = parse(&GOOD.replace(r#"ceil: "2 Mbit""#, to), Path::new("t.ron")).unwrap();
        plan.port(Side::Wan).spec.classes[1].clone()
    };
    let c = spec(r#"ceil: "2 Mbit""#);
    assert_eq!((c.burst_bytes, c.cburst_bytes), (3028, 3028), "defaults");
    let c = spec(r#"ceil: "2 Mbit", burst: "10 kB""#);
    assert_eq!((c.burst_bytes, c.cburst_bytes), (10_000, 10_000));
    let c = spec(r#"ceil: "2 Mbit", burst: "10 kB", cburst: "20 kB""#);
    assert_eq!((c.burst_bytes, c.cburst_bytes), (10_000, 20_000));
    let c = spec(r#"ceil: "2 Mbit", cburst: "20 kB""#);
    assert_eq!((c.burst_bytes, c.cburst_bytes), (3028, 20_000));
    let e = bad(r#"ceil: "2 Mbit""#, r#"ceil: "2 Mbit", cburst: "1000 B""#);
    assert!(
        e.message
            .contains("cburst 1 kB is less than one full-size frame"),
        "{e}"
    );
    assert_eq!(e.position.map(|p| p.line), Some(7));
    let e = bad(r#"ceil: "2 Mbit""#, r#"ceil: "2 Mbit", burst: "100""#);
    assert!(e.message.contains("burst 100 B"), "{e}");
}

#[test]
fn quantum_sets_the_bytes_per_round_instead_of_weight() {
    let spec = |to: &str| {
        let plan = parse(&GOOD.replace("priority: 0,", to), Path::new("t.ron")).unwrap();
        plan.port(Side::Wan).spec.classes[1].clone()
    };
    let c = spec("priority: 0,");
    assert_eq!((c.weight, c.quantum_bytes), (1, BASE_QUANTUM));
    let c = spec("priority: 0, weight: 3,");
    assert_eq!((c.weight, c.quantum_bytes), (3, 3 * BASE_QUANTUM));
    let c = spec(r#"priority: 0, quantum: "9000","#);
    assert_eq!((c.weight, c.quantum_bytes), (1, 9000));
    let e = bad(
        "priority: 0,",
        r#"priority: 0, weight: 2, quantum: "9000","#,
    );
    assert!(e.message.contains("both a weight and a quantum"), "{e}");
    let e = bad("priority: 0,", r#"priority: 0, quantum: "100 B","#);
    assert!(e.message.contains("quantum 100 B is out of range"), "{e}");
    let e = bad("priority: 0,", r#"priority: 0, quantum: "2 MB","#);
    assert!(e.message.contains("out of range"), "{e}");
    let e = bad("priority: 0,", "priority: 0, weight: 1001,");
    assert!(e.message.contains("weight 1001 is out of range"), "{e}");
}

/// configs/home.ron is written once for both ports; tests/fixtures/home-explicit.ron is the
/// same policy as it was written before, port by port. They must give the same plan.
#[test]
fn the_written_once_home_config_is_the_explicit_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let once = load(&root.join("configs/home.ron")).unwrap();
    let explicit = load(&root.join("tests/fixtures/home-explicit.ron")).unwrap();
    for side in Side::BOTH {
        let (a, b) = (once.port(side), explicit.port(side));
        assert_eq!(a.spec, b.spec, "port {}", side.name());
        assert_eq!((&a.interface, a.overhead), (&b.interface, b.overhead));
        for (x, y) in a.classes.iter().zip(&b.classes) {
            assert_eq!(
                (&x.name, &x.kind, x.user_priority, x.fairness, x.set_dscp),
                (&y.name, &y.kind, y.user_priority, y.fairness, y.set_dscp)
            );
        }
        assert_eq!(a.classes.len(), b.classes.len());
    }
    assert_eq!(once.lan_networks, explicit.lan_networks);
    assert_eq!(
        (once.max_flows, once.idle_timeout),
        (explicit.max_flows, explicit.idle_timeout)
    );
}

fn warnings_of(src: &str) -> Vec<ConfigWarning> {
    let plan = parse(src, Path::new("t.ron")).unwrap();
    warnings(&plan, src, Path::new("t.ron"), 2048)
}

#[test]
fn a_broad_port_rule_ahead_of_narrower_ones_is_a_warning_at_each_term() {
    let home =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/home.ron"))
            .unwrap();
    // `app rtp` is told from payload: it takes no DNS query from a high port.
    assert!(warnings_of(&home).is_empty(), "{:#?}", warnings_of(&home));
    // What it was when it went by port.
    let src = home.replace(
        "app sip or app rtp or",
        "app sip or udp port 10000-32767 or",
    );
    let w = warnings_of(&src);
    // Written once for both ports, so said once.
    let at = |term: &str| line_col(&src, term).1;
    let got: Vec<(usize, &str)> = w
        .iter()
        .map(|w| {
            let p = w.position.unwrap();
            (p.column, w.message.as_str())
        })
        .collect();
    assert_eq!(got.len(), 5, "{w:#?}");
    let (line, _) = line_col(&src, "app ssh or app dns");
    assert!(w[..4].iter().all(|w| w.position.unwrap().line == line));
    assert_eq!(got[0].0, at("app dns"));
    assert_eq!(
        got[0].1,
        "class `interactive`: `app dns` (tcp+udp port 53) is partly taken by earlier class \
         `voice` (`udp port 10000-32767`), e.g. udp from port 53 to port 10000"
    );
    assert!(
        w[0].hint
            .as_deref()
            .unwrap()
            .contains("`udp port 10000-32767 and not app dns`"),
        "{}",
        w[0]
    );
    assert_eq!(got[1].0, at("app ntp"));
    assert_eq!(got[2].0, at("app steam"));
    assert!(got[2]
        .1
        .contains("never gets a frame: earlier class `voice` takes all of them"));
    assert_eq!(got[3].0, at("app xbox"));
    assert!(got[4]
        .1
        .starts_with("class `web`: `app quic` (udp port 443) is partly taken"));

    // Narrowed, the broad rule leaves the others alone.
    let narrowed = src.replace(
        "app sip or udp port 10000-32767 or",
        "app sip or udp dst port 10000-20000 and not port 53,123,443,3074,27000-27031 or",
    );
    assert!(
        warnings_of(&narrowed).is_empty(),
        "{:#?}",
        warnings_of(&narrowed)
    );
}

#[test]
fn rule_warnings_in_per_port_classes_name_the_port() {
    let src = GOOD
        .replace(
            r#"match: "udp port 5060""#,
            r#"match: "udp port 5000-9000""#,
        )
        .replace(
            r#"(name: "bulk""#,
            r#"(name: "dns", match: "tcp port 1 or app dns", rate: "1 Mbit"), (name: "bulk""#,
        );
    let w = warnings_of(&src);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].message.starts_with("port wan, class `dns`: `app dns`"),
        "{}",
        w[0]
    );
    assert_eq!(
        (w[0].position.unwrap().line, w[0].position.unwrap().column),
        line_col(&src, "app dns")
    );
}

#[test]
fn queue_limits_that_reserve_much_memory_are_a_warning() {
    assert!(warnings_of(GOOD).is_empty());
    let src = GOOD.replace(
        r#"rate: "40%""#,
        r#"rate: "40%", queue: (packets: 1000000)"#,
    );
    let w = warnings_of(&src);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].message.starts_with("port wan reserves about 1.9"),
        "{}",
        w[0]
    );
    assert!(
        w[0].hint.as_deref().unwrap().contains("`bulk` 1.9"),
        "{}",
        w[0]
    );
    let (line, col) = line_col(&src, "1000000");
    assert_eq!(
        (w[0].position.unwrap().line, w[0].position.unwrap().column),
        (line, col)
    );
    // Below the threshold.
    let src = GOOD.replace(r#"rate: "40%""#, r#"rate: "40%", queue: (packets: 100000)"#);
    assert!(warnings_of(&src).is_empty());
}

#[test]
fn hundreds_of_classes_reserve_memory_in_their_flow_tables() {
    let classes: Vec<String> = (0..800)
        .map(|i| {
            format!(
                r#"(name: "c{i}", match: "udp port {}", rate: "1 kbit", queue: (packets: 10))"#,
                1000 + i
            )
        })
        .collect();
    let src = format!(
        r#"(
    ports: (wan: (rate: "1 Gbit"), lan: (rate: "1 Gbit")),
    classes: [
        {},
        (name: "rest", match: "default", rate: "1 Mbit"),
    ],
)"#,
        classes.join(",\n        ")
    );
    let w = warnings_of(&src);
    assert_eq!(w.len(), 2, "one per port: {w:#?}");
    assert!(
        w[0].message
            .contains("for 802 classes and their flow queues"),
        "{}",
        w[0]
    );
    assert!(
        w[0].hint.as_deref().unwrap().contains("fairness: none"),
        "{}",
        w[0]
    );
    assert_eq!(w[0].position.map(|p| p.line), Some(3), "at the class list");
}

#[test]
fn named_sets_of_globs_are_checked_and_used_by_name_tests() {
    let with_sets = |sets: &str, rule: &str| {
        GOOD.replace(
            r#"lan_networks: ["198.18.0.0/24"],"#,
            &format!(r#"lan_networks: ["198.18.0.0/24"], sets: {{ {sets} }},"#),
        )
        .replace("udp port 5060", rule)
    };
    let good = with_sets(
        r#""Video": ["*.Video.example", "vod.example"]"#,
        "domain @video",
    );
    let plan = parse(&good, Path::new("t.ron")).unwrap();
    assert_eq!(
        plan.name_sets,
        vec![(
            "video".to_string(),
            vec!["*.video.example".to_string(), "vod.example".to_string()]
        )]
    );
    // An unknown set points at the rule's column, with the likely one.
    let e = err(&with_sets(r#""video": ["a.example"]"#, "sni @vdeo"));
    assert!(e.message.contains("unknown set `@vdeo`"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("video"), "{e}");
    assert_eq!(e.position.map(|p| p.line), Some(7));
    // A set entry that is no glob, and a set name no rule could write.
    let e = err(&with_sets(r#""video": ["a b.example"]"#, "domain @video"));
    assert!(e.message.contains("entry 1"), "{e}");
    let e = err(&with_sets(r#""vi deo": ["a.example"]"#, "default"));
    assert!(e.message.contains("not usable in a rule"), "{e}");
}

#[test]
fn payload_frames_has_a_default_and_a_range() {
    let plan = parse(GOOD, Path::new("t.ron")).unwrap();
    assert_eq!(plan.payload_frames, crate::classify::NAME_PAYLOAD_FRAMES);
    let with = |n: u32| {
        GOOD.replace(
            r#"lan_networks: ["198.18.0.0/24"],"#,
            &format!(r#"lan_networks: ["198.18.0.0/24"], flow_table: (payload_frames: {n}),"#),
        )
    };
    assert_eq!(
        parse(&with(8), Path::new("t.ron")).unwrap().payload_frames,
        8
    );
    for n in [0, 33] {
        let e = err(&with(n));
        assert!(
            e.message
                .contains(&format!("payload_frames {n} is out of range")),
            "{e}"
        );
        assert!(
            e.hint.as_deref().unwrap_or("").contains("use 1 to 32"),
            "{e}"
        );
    }
}

#[test]
fn owner_rules_and_their_namespaces() {
    let src = |netns: &str| {
        format!(
            "(\n    processes: (netns: [{netns}]),\n    ports: (wan: (rate: \"10 Mbit\"), lan: (rate: \"10 Mbit\")),\n    classes: [\n        (name: \"a\", match: \"user nobody or cmd firefox\", rate: \"1 Mbit\"),\n        (name: \"rest\", match: \"default\", rate: \"1 Mbit\"),\n    ],\n)\n"
        )
    };
    let plan = parse(&src("\"/proc/self/ns/net\""), Path::new("t.ron")).unwrap();
    assert!(plan.reads_owners);
    assert!(warnings_of(&src("\"/proc/self/ns/net\"")).is_empty());
    // A namespace not on this host: weir run would not start here.
    let w = warnings_of(&src("\"/run/netns/weir-no-such-ns\""));
    assert_eq!(w.len(), 1, "{w:?}");
    let text = w[0].to_string();
    assert!(text.starts_with("t.ron:2:"), "{text}");
    assert!(
        text.contains("/run/netns/weir-no-such-ns does not exist"),
        "{text}"
    );
    // A bad uid is a rule error at its column.
    let e = parse(
        &src("").replace("user nobody", "uid nobody"),
        Path::new("t.ron"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`nobody` is not a user id"), "{e}");
}

const BUDGETS: &str = r#"(
    lan_networks: ["198.18.0.0/24"],
    timezone: "Pacific/Auckland",
    budget_store: (path: "state/budgets.sqlite", flush: "2 s"),
    ports: (wan: (rate: "10 Mbit"), lan: (rate: "100 Mbit")),
    classes: [
        (name: "web", match: "tcp port 443", rate: "10%",
         budget: (bytes: "400 MB", per: month, starts: "15th 06:00", then: (ceil: (wan: "64 kbit", lan: "1 Mbit")))),
        (name: "bulk", match: "default", rate: "10%", budget: (bytes: "1 GB", per: day, then: drop)),
    ],
    budgets: [
        (name: "kids", match: "host 198.18.0.23", bytes: "2 GiB", per: week, starts: "Sat 00:00", then: (ceil: "50%")),
        (name: "uplink", bytes: "1 TB", per: month, then: (ceil: "2 Mbit")),
    ],
)"#;

#[test]
fn budgets_of_classes_rules_and_the_whole_link() {
    use crate::budget::{Target, Then};
    let plan = parse(BUDGETS, Path::new("/etc/weir/t.ron")).unwrap();
    let b = &plan.budgets;
    let names: Vec<_> = b.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["web", "bulk", "kids", "uplink"]);
    assert_eq!(b[0].bytes, 400_000_000);
    assert_eq!(b[0].then, Then::Ceil([1_000_000, 64_000]));
    assert_eq!(b[0].period.describe(), "month from the 15th 06:00");
    assert_eq!(b[1].then, Then::Drop);
    assert_eq!(b[2].target, Target::Rule("host 198.18.0.23".into()));
    assert_eq!(b[2].then, Then::Ceil([50_000_000, 5_000_000]));
    assert_eq!(b[3].target, Target::All);
    assert_eq!(plan.watch_rules.len(), 1);
    for side in Side::BOTH {
        let classes = &plan.port(side).classes;
        let budgets: Vec<_> = classes.iter().map(|c| c.budget).collect();
        assert_eq!(budgets, [None, Some(0), Some(1)]);
    }
    assert_eq!(
        plan.budget_store.path,
        Path::new("/etc/weir/state/budgets.sqlite")
    );
    assert_eq!(plan.budget_store.flush, 2_000_000_000);
}

#[test]
fn bad_budgets_say_where_and_what() {
    let bad_budget = |from: &str, to: &str| {
        assert_eq!(BUDGETS.matches(from).count(), 1, "{from}");
        err(&BUDGETS.replace(from, to))
    };
    let e = bad_budget("\"2 GiB\"", "\"2 GiBs\"");
    assert!(e.message.contains("budget `kids`: bytes"), "{e}");
    assert_eq!(position(&e).0, line_col(BUDGETS, "\"2 GiB").0);
    let e = bad_budget("\"15th 06:00\"", "\"32nd 06:00\"");
    assert!(
        e.message.contains("\"32nd\" is not a day of the month"),
        "{e}"
    );
    let e = bad_budget("\"Sat 00:00\"", "\"Caturday\"");
    assert!(e.message.contains("not a day of the week"), "{e}");
    let e = bad_budget("per: day", "per: fortnight");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("day, week, month"),
        "{e}"
    );
    let e = bad_budget("name: \"kids\"", "name: \"web\"");
    assert!(e.message.contains("two budgets are named `web`"), "{e}");
    let e = bad_budget("\"host 198.18.0.23\"", "\"host 198.18.0.\"");
    assert!(e.message.contains("budget `kids`"), "{e}");
    let e = bad_budget("then: (ceil: \"2 Mbit\")", "then: (ceil: \"20 Mbit\")");
    assert!(e.message.contains("is not between 0 and the link"), "{e}");
    let e = bad_budget("flush: \"2 s\"", "flush: \"1000 s\"");
    assert!(e.message.contains("out of range"), "{e}");
    let e = bad_budget("then: drop", "then: dorp");
    assert!(e.to_string().contains("then"), "{e}");
}
