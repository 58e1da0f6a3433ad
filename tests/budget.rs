//! Budgets in virtual time: `weir replay` of a capture that crosses the end of a month (built
//! here) counts each month apart, caps the class when its budget runs out and lifts the cap at
//! the new month; and `weir budget` reads the store when no bridge runs.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
/// 2026-11-30 23:59:55 in Pacific/Auckland (NZDT, UTC+13): five seconds before December.
const T0: u64 = 1_796_036_395 * S;
const MIDNIGHT: u64 = T0 + 5 * S;

const CONFIG: &str = r#"(
    lan_networks: ["198.18.0.0/24"],
    timezone: "Pacific/Auckland",
    ports: (wan: (rate: "100 Mbit"), lan: (rate: "100 Mbit")),
    classes: [
        (name: "bulk", match: "default", rate: "10 Mbit", ceil: "50 Mbit", aqm: (enabled: false),
         queue: (packets: 10000),
         budget: (bytes: "1 MB", per: month, starts: "1st 00:00", then: (ceil: "1 Mbit"))),
    ],
)"#;

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weir-budget-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 500-byte UDP frames from the LAN every millisecond (4 Mbit/s) for ten seconds from T0.
fn write_capture(path: &Path) {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
        .udp(40000, 5000)
        .write(&mut f, &[0u8; 458])
        .unwrap();
    assert_eq!(f.len(), 500);
    let mut w = weir::capture::CaptureWriter::create(path).unwrap();
    for i in 0..10_000u64 {
        w.write(T0 + i * MS, &f, 500).unwrap();
    }
}

/// Bits per second that left in `[from, to)` (capture time), from the shaped capture.
fn rate(departures: &[(u64, Vec<u8>)], from: u64, to: u64) -> f64 {
    let bytes: usize = departures
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|(_, f)| f.len())
        .sum();
    bytes as f64 * 8.0 / ((to - from) as f64 / 1e9)
}

#[test]
fn a_replay_across_a_month_boundary_caps_after_the_budget_and_restores_at_the_reset() {
    let dir = temp("month");
    let (capture, shaped, config) = (dir.join("in.pcap"), dir.join("out.pcap"), dir.join("c.ron"));
    write_capture(&capture);
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(WEIR)
        .args(["replay", "--json", "-c"])
        .args([&config, &capture])
        .arg("-o")
        .arg(&shaped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &report["budgets"][0];
    assert_eq!(b["name"], "bulk");
    // 2000 frames of 500 bytes use up 1 MB: the 2000th, 1.999 s in, each month.
    let nov = &b["history"][0];
    assert_eq!(nov["end"].as_u64(), Some(MIDNIGHT), "{b}");
    assert_eq!(nov["used"].as_u64(), Some(5000 * 500));
    assert_eq!(nov["ran_out_at"].as_u64(), Some(T0 + 1999 * MS));
    assert_eq!(b["start"].as_u64(), Some(MIDNIGHT));
    assert_eq!(b["used"].as_u64(), Some(5000 * 500));
    assert_eq!(b["ran_out_at"].as_u64(), Some(MIDNIGHT + 1999 * MS));
    // 2027-01-01 00:00 NZDT.
    assert_eq!(b["end"].as_u64(), Some(1_798_714_800 * S));

    let departures = common::captures::read_all(&shaped);
    assert!(!departures.is_empty());
    let wire = 500.0 / 524.0;
    let r = |from: u64, to: u64| rate(&departures, from, to);
    // Before the budget ran out: what was offered (4 Mbit/s).
    let before = r(T0 + 200 * MS, T0 + 1800 * MS);
    assert!((before / 4e6 - 1.0).abs() < 0.03, "{before}");
    // Capped at 1 Mbit/s on the wire until midnight.
    let capped = r(T0 + 2500 * MS, MIDNIGHT);
    assert!((capped / (1e6 * wire) - 1.0).abs() < 0.05, "{capped}");
    // December: the queue that built up leaves at the class's ceil, then the offered rate
    // until the new month's megabyte is used, then the cap again.
    let lifted = r(MIDNIGHT, MIDNIGHT + 1900 * MS);
    assert!(lifted > 4e6, "{lifted}");
    let again = r(MIDNIGHT + 2500 * MS, MIDNIGHT + 4900 * MS);
    assert!((again / (1e6 * wire) - 1.0).abs() < 0.05, "{again}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_text_report_says_when_each_month_ran_out() {
    let dir = temp("text");
    let (capture, config) = (dir.join("in.pcap"), dir.join("c.ron"));
    write_capture(&capture);
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(WEIR)
        .args(["replay", "-c"])
        .args([&config, &capture])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("budgets over the capture's time"), "{text}");
    assert!(
        text.contains("2026-11-01 00:00 NZDT to 2026-12-01 00:00 NZDT: used 2.50 MB, used up at 2026-11-30 23:59:56 NZDT"),
        "{text}"
    );
    assert!(
        text.contains("used up at 2026-12-01 00:00:01 NZDT: ceil 1 Mbit"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weir_budget_reads_and_resets_the_store_when_no_bridge_runs() {
    let dir = temp("store");
    let config = dir.join("c.ron");
    std::fs::write(
        &config,
        CONFIG.replace(
            "classes: [",
            "budget_store: (path: \"counts.sqlite\"),\n    classes: [",
        ),
    )
    .unwrap();
    let socket = dir.join("none.sock");
    let budget = |args: &[&str]| {
        Command::new(WEIR)
            .arg("budget")
            .args(args)
            .arg("--control")
            .arg(&socket)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = budget(&["--json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("counts.sqlite does not exist yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A count of this month, as a bridge would have left it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let tz = jiff::tz::TimeZone::get("Pacific/Auckland").unwrap();
    let period = weir::budget::Period::parse(weir::budget::Per::Month, None).unwrap();
    let (start, _) = period.around(&tz, now).unwrap();
    let saved = weir::budget::Saved {
        name: "bulk".into(),
        start,
        used: 700_000,
        ran_out_at: None,
    };
    weir::budget::store::Store::open(&dir.join("counts.sqlite"))
        .unwrap()
        .save(&[saved], now)
        .unwrap();
    let out = budget(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["source"], "store");
    assert_eq!(r["budgets"][0]["used"].as_u64(), Some(700_000));
    assert_eq!(
        r["budgets"][0]["start"].as_i64().map(i128::from),
        Some(start)
    );
    let out = budget(&["reset", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the budgets are: bulk"));
    let out = budget(&["reset", "bulk"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("budget bulk: count started again"), "{text}");
    let r: Value = serde_json::from_slice(&budget(&["--json"]).stdout).unwrap();
    assert_eq!(r["budgets"][0]["used"].as_u64(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
