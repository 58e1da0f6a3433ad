//! Classes whose rate depends on the time of the week (`schedule`), in virtual time: a replay
//! whose frames cross the start and the end of a window follows the capture's clock.

use std::path::Path;
use std::sync::Arc;
use weir::replay::{Replay, ReplayOptions};

const S: u64 = 1_000_000_000;

/// 2026-12-02 (a Wednesday) 11:59:00 UTC.
const T0: u64 = 1_796_212_740 * S;

fn plan(timezone: &str) -> Arc<weir::config::Plan> {
    let src = format!(
        r#"(
            lan_networks: ["198.18.0.0/24"],
            timezone: "{timezone}",
            ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
            classes: [
                (name: "bulk", match: "udp", rate: "1 Mbit", ceil: "1 Mbit",
                 queue: (packets: 100), aqm: (enabled: false),
                 schedule: [(when: "Mon-Fri 12:00-12:01", rate: "4 Mbit", ceil: "4 Mbit")]),
                (name: "rest", match: "default", rate: "1 Mbit"),
            ],
        )"#
    );
    Arc::new(weir::config::parse(&src, Path::new("schedule-test.ron")).expect("test config"))
}

/// Bits per second of frames that left in `[from, to)` seconds after T0, for a flood of
/// 1000-byte UDP frames at 8 Mbit/s from T0 for three minutes (the AQM off: the shaper alone
/// decides, the queue stays full).
fn rates(
    plan: &Arc<weir::config::Plan>,
    windows: &[(u64, u64)],
) -> (Vec<f64>, weir::replay::ReplayReport) {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
        .udp(40000, 5000)
        .write(&mut f, &[0u8; 958])
        .unwrap();
    assert_eq!(f.len(), 1000);
    let mut replay = Replay::new(plan, &ReplayOptions::default(), false);
    let mut departed: Vec<(u64, u32)> = Vec::new();
    let mut out = |t: u64, _: &[u8], len: u32| departed.push((t, len));
    for i in 0..180_000u64 {
        replay.push(T0 + i * 1_000_000, &f, 1000, &mut out);
    }
    let report = replay.finish(&mut out);
    let rates = windows
        .iter()
        .map(|&(a, b)| {
            let bytes: u64 = departed
                .iter()
                .filter(|(t, _)| (T0 + a * S..T0 + b * S).contains(t))
                .map(|&(_, l)| u64::from(l))
                .sum();
            bytes as f64 * 8.0 / (b - a) as f64
        })
        .collect();
    (rates, report)
}

#[test]
fn a_scheduled_rate_applies_inside_its_window_and_not_outside() {
    // Before 12:00, 12:00-12:01, after 12:01 (UTC), each measured away from the switches.
    let windows = [(10, 55), (70, 115), (130, 175)];
    let (r, report) = rates(&plan("UTC"), &windows);
    // The class is charged 1024 wire bytes (24 of overhead) for each 1000-byte frame counted.
    let wire = |bps: f64| bps * 1000.0 / 1024.0;
    for (got, want) in r.iter().zip([1e6, 4e6, 1e6]) {
        assert!(
            (got / wire(want) - 1.0).abs() < 0.02,
            "{r:?} against {want} bit/s (wire rate)"
        );
    }
    // No frame was lost to the switches: every drop is the flood's overflow.
    let totals = &report.totals;
    assert_eq!(totals.received, totals.forwarded + totals.dropped);
    let bulk = report.classes.iter().find(|c| c.name == "bulk").unwrap();
    assert_eq!(bulk.drops_by_reason.get("reload").copied().unwrap_or(0), 0);
    // In Auckland (UTC+13 in December) 12:00 UTC is 01:00 Thursday: no window, 1 Mbit/s throughout.
    let (r, _) = rates(&plan("Pacific/Auckland"), &windows);
    assert!(
        r.iter().all(|got| (got / wire(1e6) - 1.0).abs() < 0.02),
        "{r:?}"
    );
}

#[test]
fn a_bad_window_or_time_zone_is_a_config_error() {
    let bad = |from: &str, to: &str| {
        let src = r#"(
    timezone: "UTC",
    ports: (wan: (rate: "10 Mbit"), lan: (rate: "10 Mbit")),
    classes: [
        (name: "bulk", match: "udp", rate: "1 Mbit", schedule: [(when: "Mon-Fri 12:00-13:00", rate: "2 Mbit")]),
        (name: "rest", match: "default", rate: "1 Mbit"),
    ],
)"#
        .replace(from, to);
        weir::config::parse(&src, Path::new("s.ron"))
            .expect_err("refused")
            .to_string()
    };
    let e = bad("Mon-Fri", "Mon-Fry");
    assert!(
        e.starts_with("s.ron:5:") && e.contains("`Fry` is not a day"),
        "{e}"
    );
    let e = bad("\"UTC\"", "\"Mars/Olympus\"");
    assert!(
        e.starts_with("s.ron:2:") && e.contains("unknown time zone"),
        "{e}"
    );
    let e = bad("rate: \"2 Mbit\")", "rate: \"20 Mbit\")");
    assert!(e.contains("do not fit"), "{e}");
}

#[test]
fn a_time_rule_follows_the_capture_clock_frame_by_frame() {
    // Work hours take the flow to `office`; the same flow's frames go back to `rest` at 12:01.
    let src = r#"(
        lan_networks: ["198.18.0.0/24"],
        timezone: "UTC",
        ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
        classes: [
            (name: "office", match: "udp and time 'Wed 12:00-12:01'", rate: "10 Mbit"),
            (name: "rest", match: "default", rate: "10 Mbit"),
        ],
    )"#;
    let plan = Arc::new(weir::config::parse(src, Path::new("time.ron")).expect("test config"));
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
        .udp(40000, 5000)
        .write(&mut f, &[0u8; 100])
        .unwrap();
    let mut replay = Replay::new(&plan, &ReplayOptions::default(), false);
    // One frame every 10 s from 11:59:00 to 12:02:50: 6 before 12:00, 6 in the window, 12 after.
    for i in 0..24u64 {
        replay.push(T0 + i * 10 * S, &f, f.len() as u32, &mut |_, _, _| {});
    }
    let report = replay.finish(&mut |_, _, _| {});
    let got = |name: &str| {
        report
            .classes
            .iter()
            .find(|c| c.port == "wan" && c.name == name)
            .unwrap()
            .forwarded_frames
    };
    assert_eq!((got("office"), got("rest")), (6, 18));
    // A window is a rule error at its column.
    let e = weir::config::parse(
        &src.replace("12:00-12:01", "12:00-1201"),
        Path::new("t.ron"),
    )
    .expect_err("refused")
    .to_string();
    assert!(e.contains("is not a time range"), "{e}");
}
