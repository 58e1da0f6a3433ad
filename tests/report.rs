//! `weir report` in a real headless browser (Debian's Chromium, installed by scripts/deps): the
//! page loads offline without script errors, every chart drew, the graph has the nodes the data
//! says, a table sorts; the numbers it shows are those of `weir replay --json` on the same
//! input. Screenshots are left in target/report-screenshots/ for people to look at.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium runs (`--version`), or the test is skipped loudly (failed under CI=true).
fn chromium() -> bool {
    let runs = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium is needed, and CI=true: scripts/deps installs it");
        }
        eprintln!(
            "\n{}\nSKIPPED: chromium is not installed (scripts/deps installs it)\n{}",
            "=".repeat(70),
            "=".repeat(70)
        );
    }
    runs
}

fn headless(extra: &[&str], url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--virtual-time-budget=10000")
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write the report of `capture` (through `config`) and return its path and embedded data.
fn report(name: &str, capture: &Path, config: Option<&Path>) -> (PathBuf, Value) {
    let dir = root().join("target/report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.html"));
    let mut cmd = Command::new(WEIR);
    cmd.arg("report").arg(capture).arg("-o").arg(&out);
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&out).unwrap();
    // Nothing is fetched: no script, style, image or font from elsewhere.
    for fetch in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!html.contains(fetch), "{name}: the page fetches `{fetch}`");
    }
    let start = html
        .find(r#"<script type="application/json" id="weir-data">"#)
        .unwrap();
    let body = &html[start..];
    let json = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
    let data: Value = serde_json::from_str(&json.replace("<\\/", "</")).unwrap();
    (out, data)
}

/// Load the page with `?selftest` and read what it found.
fn selftest(page: &Path) -> Value {
    let dom = headless(
        &["--dump-dom"],
        &format!("file://{}?selftest", page.display()),
    );
    let at = dom.find(r#"id="selftest""#).expect("the selftest element");
    let text = &dom[at..];
    let json = &text[text.find('>').unwrap() + 1..text.find("</pre>").unwrap()];
    serde_json::from_str(&json.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn screenshot(page: &Path, name: &str) {
    let shot = root().join(format!("target/report-screenshots/{name}.png"));
    headless(
        &[
            "--window-size=1280,4200",
            &format!("--screenshot={}", shot.display()),
        ],
        &format!("file://{}", page.display()),
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot"
    );
}

/// The cells of table `id` in the dumped DOM: each row's `data-value`s.
fn table_values(dom: &str, id: &str) -> Vec<Vec<String>> {
    let at = dom
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no table {id}"));
    let t = &dom[at..at + dom[at..].find("</table>").unwrap()];
    let body = &t[t.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("data-value=\"")
                .skip(1)
                .map(|c| c[..c.find('"').unwrap()].to_string())
                .collect()
        })
        .collect()
}

#[test]
fn reports_render_in_a_browser_and_show_the_numbers_of_replay() {
    if !chromium() {
        return;
    }
    let capture = root().join("captures/mixed-services.pcap");
    let config = root().join("configs/home.ron");
    let cases = [("shaped", Some(config.as_path())), ("capture-only", None)];
    for (name, config) in cases {
        let (page, data) = report(name, &capture, config);
        let st = selftest(&page);
        assert_eq!(st["errors"], serde_json::json!([]), "{name}: {st}");
        let charts = st["charts"].as_u64().unwrap();
        assert!(charts >= 1, "{name}: {st}");
        assert_eq!(
            st["charts_drawn"].as_u64(),
            Some(charts),
            "{name}: every chart drew: {st}"
        );
        let nodes = data["graph"]["nodes"].as_array().unwrap().len() as u64;
        assert!(nodes >= 5, "{name}: {nodes} nodes");
        assert_eq!(st["graph_nodes"].as_u64(), Some(nodes), "{name}: {st}");
        assert_eq!(
            st["graph_edges"].as_u64(),
            Some(data["graph"]["edges"].as_array().unwrap().len() as u64)
        );
        assert_eq!(
            st["sorted"], true,
            "{name}: sorting the flows by bytes: {st}"
        );
        screenshot(&page, name);
    }

    // The numbers shown are replay's: the summary and every class row.
    let (page, _) = report("shaped", &capture, Some(config.as_path()));
    let dom = headless(&["--dump-dom"], &format!("file://{}", page.display()));
    let out = Command::new(WEIR)
        .args(["replay", "--json", "-c"])
        .arg(&config)
        .arg(&capture)
        .output()
        .unwrap();
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cell = |key: &str| {
        let at = dom.find(&format!(r#"data-key="{key}""#)).unwrap();
        let t = &dom[at..];
        t[t.find('>').unwrap() + 1..t.find("</td>").unwrap()].to_string()
    };
    let n = |v: &Value| {
        let x = v.as_u64().unwrap();
        let s = x.to_string();
        // toLocaleString("en-US"): thousands separated by commas.
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    assert_eq!(cell("frames_read"), n(&replay["frames_read"]));
    let t = &replay["totals"];
    assert_eq!(
        cell("totals"),
        format!(
            "{} / {} / {}",
            n(&t["received"]),
            n(&t["forwarded"]),
            n(&t["dropped"])
        )
    );
    let d = &replay["directions"];
    assert_eq!(
        cell("directions"),
        format!(
            "{} / {} / {}",
            n(&d["upload"]),
            n(&d["download"]),
            n(&d["guessed"])
        )
    );
    let rows = table_values(&dom, "class-table");
    let classes = replay["classes"].as_array().unwrap();
    assert_eq!(rows.len(), classes.len());
    for (row, c) in rows.iter().zip(classes) {
        assert_eq!(row[0], c["port"].as_str().unwrap());
        assert_eq!(row[1], c["name"].as_str().unwrap());
        for (i, key) in [
            "received_frames",
            "forwarded_frames",
            "dropped_frames",
            "received_bytes",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(row[2 + i], c[key].to_string(), "{key} of {c}");
        }
    }
}

#[test]
fn a_large_capture_stays_small_and_quick() {
    // 20,000 flows (one UDP frame each way): the flows table keeps the largest 500 and the
    // graph the busiest 120 hosts; the page stays a few hundred KB.
    let dir = root().join("target/report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("many-flows.pcap");
    let mut w = weir::capture::CaptureWriter::create(&capture).unwrap();
    for i in 0..20_000u32 {
        let host = [198, 18, (i >> 8) as u8, i as u8];
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(host, [198, 19, 0, 1 + (i % 50) as u8], 64)
            .udp(10_000 + (i % 50_000) as u16, 53)
            .write(&mut f, &[0; 60])
            .unwrap();
        w.write(
            1_796_083_200_000_000_000 + u64::from(i) * 100_000,
            &f,
            f.len() as u32,
        )
        .unwrap();
    }
    w.finish().unwrap();
    let (page, data) = report("many-flows", &capture, None);
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 1_500_000, "{size} bytes");
    assert_eq!(data["flows"].as_array().unwrap().len(), 500);
    assert_eq!(data["graph"]["nodes"].as_array().unwrap().len(), 121);
    assert_eq!(data["graph"]["merged_hosts"].as_u64(), Some(20_050 - 120));
    assert_eq!(data["hosts"].as_array().unwrap().len(), 200);
}

#[test]
fn the_quick_start_capture_is_its_script_s_and_shows_the_policy_at_work() {
    // The committed capture is exactly what its script writes.
    let made = root().join("target/evening-made.pcap");
    let ok = Command::new("python3")
        .arg(root().join("scripts/evening-capture.py"))
        .arg(&made)
        .output()
        .expect("python3");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        std::fs::read(&made).unwrap()
            == std::fs::read(root().join("captures/evening.pcap")).unwrap(),
        "captures/evening.pcap differs from what scripts/evening-capture.py writes"
    );
    // The README's command: the call and the game go through untouched while the backup waits
    // and loses frames; the same command writes the report and says where.
    let page = root().join("target/report-screenshots/evening.html");
    let out = Command::new(WEIR)
        .args(["replay", "--json", "-c"])
        .arg(root().join("configs/home.ron"))
        .arg(root().join("captures/evening.pcap"))
        .arg("--report")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("written to {}", page.display()))
    );
    assert!(page.exists());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let class = |port: &str, name: &str| {
        r["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["port"] == port && c["name"] == name)
            .unwrap()
            .clone()
    };
    for name in ["voice", "interactive", "web"] {
        let c = class("wan", name);
        assert_eq!(c["dropped_frames"], 0, "{c}");
        assert!(c["sojourn_us"]["p99"].as_f64().unwrap() < 2_000.0, "{c}");
    }
    let bulk = class("wan", "bulk");
    assert!(bulk["dropped_frames"].as_u64().unwrap() > 100, "{bulk}");
    assert!(
        bulk["sojourn_us"]["p50"].as_f64().unwrap() > 20_000.0,
        "{bulk}"
    );
}

#[test]
fn the_live_report_draws_what_a_running_bridge_did() {
    if !common::require_root("the_live_report_draws_what_a_running_bridge_did") || !chromium() {
        return;
    }
    let lab = common::lab("report-live");
    let config = r#"(
    lan_networks: ["198.18.0.0/16"],
    ports: (
        wan: (interface: "wan0", rate: "20 Mbit", classes: [
            (name: "flood", match: "udp port 5201", rate: "5 Mbit", ceil: "10 Mbit"),
            (name: "rest", match: "default", rate: "5 Mbit"),
        ]),
        lan: (interface: "lan0", rate: "20 Mbit", classes: [(name: "all", match: "default", rate: "10 Mbit")]),
    ),
)"#;
    let b = common::bridge::Bridge::start(&lab, "report-live", config, &[]);
    // A 15 Mbit/s flood into a class capped at 10: it queues and drops while we watch.
    let (_server, _client) =
        common::iperf3_in_background(&lab, "5201", 6, &["-u", "-b", "15M", "-l", "1000"]);
    // The last minutes, from the bridge's own history (a summary a second).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let page = root().join("target/report-screenshots/live.html");
    let data = live_report(&b.socket(), &page, &[]);
    let times = data["times"].as_array().unwrap().len();
    assert!((3..=6).contains(&times), "{times} seconds of history");
    let flood = |data: &Value| {
        data["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["port"] == "wan" && s["name"] == "flood")
            .unwrap()
            .clone()
    };
    // The last whole second: offered about 15 Mbit/s (frame bytes), forwarded at most the ceil.
    let f = flood(&data);
    let k = times - 1;
    let (offered, forwarded) = (
        f["offered_bps"][k].as_f64().unwrap(),
        f["forwarded_bps"][k].as_f64().unwrap(),
    );
    assert!((10e6..20e6).contains(&offered), "{f}");
    assert!(forwarded < 10.5e6 && forwarded > 5e6, "{f}");
    assert!(
        f["p99_ms"][k].as_f64().unwrap() > 1.0,
        "the flood queues: {f}"
    );
    // Watching the coming two seconds instead.
    let watched = live_report(
        &b.socket(),
        &root().join("target/report-screenshots/live-watch.html"),
        &["--watch", "2"],
    );
    assert_eq!(watched["times"].as_array().unwrap().len(), 2);
    let w = flood(&watched);
    assert!(
        (10e6..20e6).contains(&w["offered_bps"][1].as_f64().unwrap()),
        "{w}"
    );
    let st = selftest(&page);
    assert_eq!(st["errors"], serde_json::json!([]), "{st}");
    assert_eq!(st["charts_drawn"], st["charts"], "{st}");
    assert!(st["graph_nodes"].as_u64().unwrap() >= 2, "{st}");
    screenshot(&page, "live");
    let stopped = b.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

/// `weir report --live` (with `extra`) of the bridge at `socket`, to `page`: its data.
fn live_report(socket: &Path, page: &Path, extra: &[&str]) -> Value {
    let out = Command::new(WEIR)
        .args(["report", "--live", "--control"])
        .arg(socket)
        .args(extra)
        .arg("-o")
        .arg(page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(page).unwrap();
    let start = html.find(r#"id="weir-data">"#).unwrap() + r#"id="weir-data">"#.len();
    let json = &html[start..start + html[start..].find("</script>").unwrap()];
    serde_json::from_str(&json.replace("<\\/", "</")).unwrap()
}
