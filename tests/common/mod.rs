//! Test harness for tests that need real namespaces: a lab per test, ping and iperf3 in it.
//!
//! Guarantees:
//! - [`lab`] gives each test its own three namespaces, named `weir-t<pid>-<name>-{src,dut,dst}`,
//!   so tests run in parallel without sharing anything; the lab (and every process in it) is
//!   removed when the returned [`Lab`] is dropped, also while a failing test unwinds.
//! - Only addresses in 198.18.0.0/15 and 2001:db8::/32 are used (those of [`Lab`]).
//! - Every external program runs with a deadline and is killed when it passes it; background
//!   servers are held by a [`ChildGuard`].
//! - [`require_root`] skips loudly when not root, but fails the test under CI (`CI=true`).
//!
//! Tools needed: iproute2 (`ip`, `ss`), procps (`sysctl`), iputils-ping (`ping`), iperf3.
#![allow(dead_code)]

pub mod bridge;
pub mod captures;
pub mod raw;

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use weir::tools::lab::{self, ChildGuard, Lab, LabSpec};

/// Whether the test may go on: true when root. When not root, prints a loud SKIPPED line and
/// returns false, unless `CI=true`, where it panics: CI must run these tests.
pub fn require_root(test: &str) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    // Straight to the process's stderr: libtest captures eprintln! of passing tests.
    match may_run(test, lab::is_root(), ci, &mut std::io::stderr()) {
        Ok(run) => run,
        Err(e) => panic!("{e}"),
    }
}

/// [`require_root`]'s decision, for a process that is root or not and under CI or not: run,
/// skip after a banner written to `out`, or an error (CI must run every test).
pub fn may_run(
    test: &str,
    root: bool,
    ci: bool,
    out: &mut dyn std::io::Write,
) -> Result<bool, String> {
    if root {
        return Ok(true);
    }
    if ci {
        return Err(format!(
            "{test}: needs root, and CI=true: run the tests as root under CI"
        ));
    }
    let bar = "=".repeat(70);
    let _ = writeln!(
        out,
        "\n{bar}\nSKIPPED {test}: needs root (network namespaces); run as root to test\n{bar}"
    );
    Ok(false)
}

/// Whether the test may go on: true when `tool` runs (`tool -v`). When it does not, prints a
/// loud SKIPPED line and returns false, unless `CI=true`, where it panics: scripts/deps
/// installs it there.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs {tool}, and CI=true: scripts/deps installs it");
    }
    let bar = "=".repeat(70);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED {test}: {tool} is not installed (scripts/deps installs it)\n{bar}"
    );
    false
}

/// The external capture corpus: `WEIR_CAPTURE_CORPUS`, else `../shared/captures` beside the
/// repository. `None` when there is none: then a SKIPPED banner goes straight to the process's
/// stderr (visible without `--nocapture`), and under CI (`CI=true`) the test fails instead,
/// since CI must replay the corpus.
pub fn corpus_dir(test: &str) -> Option<std::path::PathBuf> {
    let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures");
    let (dir, from) = match std::env::var_os("WEIR_CAPTURE_CORPUS") {
        Some(d) => (std::path::PathBuf::from(d), "WEIR_CAPTURE_CORPUS"),
        None => (beside, "the default ../shared/captures"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "{test}: no capture corpus: {from} ({}) is not a directory",
        dir.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; under CI=true the corpus must be there");
    }
    let bar = "=".repeat(70);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED {msg}\nset WEIR_CAPTURE_CORPUS to a directory of captures to run it\n{bar}"
    );
    None
}

/// The prefix of this process's lab for test `name`: `weir-t<pid>-<name>`, with `name` reduced
/// to `[a-z0-9-]` and truncated so the prefix stays a valid lab prefix.
pub fn lab_prefix(name: &str) -> String {
    let head = format!("weir-t{}-", std::process::id());
    let room = 40usize.saturating_sub(head.len());
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    format!("{head}{tail}")
}

/// A fresh lab for test `name` (one lab per name per process). A lab of the same prefix left
/// behind by a killed process that had our pid is removed first.
pub fn lab(name: &str) -> Lab {
    let prefix = lab_prefix(name);
    lab::down_by_prefix(&prefix).unwrap_or_else(|e| panic!("removing leftover lab {prefix}: {e}"));
    Lab::up(LabSpec {
        prefix: prefix.clone(),
    })
    .unwrap_or_else(|e| panic!("lab {prefix}: {e}"))
}

/// The names in `ip netns list` that belong to the lab with this prefix.
pub fn namespaces_left(prefix: &str) -> Vec<String> {
    let ours = lab::namespaces(prefix);
    lab::list_namespaces()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| ours.contains(n))
        .collect()
}

/// What a ping run saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PingResult {
    pub sent: u32,
    pub received: u32,
    /// Round-trip times of the replies, in milliseconds, in arrival order.
    pub rtts_ms: Vec<f64>,
}

impl PingResult {
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.received)
    }
}

/// Pings `to` from namespace `from_ns`: `count` echo requests `interval` apart, each waited for
/// at most 1 s (`-W 1`); ping is killed if the run lasts longer than `count * interval + 5 s`.
/// (No `-w`: with `-c` it makes ping keep sending until `count` replies came back.)
pub fn ping(lab: &Lab, from_ns: &str, to: IpAddr, count: u32, interval: Duration) -> PingResult {
    assert!(count > 0, "ping: count must be positive");
    let deadline = interval * count + Duration::from_secs(5);
    let (c, i, to) = (
        count.to_string(),
        format!("{:.3}", interval.as_secs_f64()),
        to.to_string(),
    );
    let args = ["ping", "-n", "-c", &c, "-i", &i, "-W", "1", &to];
    let out = lab
        .exec_timeout(from_ns, &args, deadline)
        .unwrap_or_else(|e| panic!("ping: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ping(&text).unwrap_or_else(|| {
        panic!(
            "ping: cannot read the output of `{}`:\n{text}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Reads iputils ping output: every `time=` of a reply, and the summary line.
pub fn parse_ping(text: &str) -> Option<PingResult> {
    let mut result = PingResult::default();
    let mut summary = false;
    for line in text.lines() {
        if let Some(rest) = line.split(" time=").nth(1) {
            if line.contains("bytes from") {
                let ms = rest.split_whitespace().next()?.parse().ok()?;
                result.rtts_ms.push(ms);
            }
        } else if line.contains("packets transmitted") {
            let mut fields = line.split(',');
            result.sent = leading_number(fields.next()?)?;
            result.received = leading_number(fields.next()?)?;
            summary = true;
        }
    }
    summary.then_some(result)
}

fn leading_number(s: &str) -> Option<u32> {
    s.split_whitespace().next()?.parse().ok()
}

/// What one iperf3 run measured, in bits per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IperfResult {
    pub sender_bps: f64,
    pub receiver_bps: f64,
}

const IPERF_PORT: &str = "5201";

/// Runs an iperf3 server in the lab's dst namespace and a client in src against `to` for
/// `seconds` (TCP unless `extra` says `-u` etc.); everything is killed after `seconds + 15 s`.
pub fn iperf3(lab: &Lab, to: IpAddr, seconds: u32, extra: &[&str]) -> IperfResult {
    let server = lab
        .spawn(&lab.dst_ns, &["iperf3", "-s", "-1", "-p", IPERF_PORT])
        .unwrap_or_else(|e| panic!("iperf3 server: {e}"));
    wait_listening(lab, &lab.dst_ns, IPERF_PORT, Duration::from_secs(5));
    let (t, to) = (seconds.to_string(), to.to_string());
    let mut args = vec![
        "iperf3",
        "-c",
        &to,
        "-p",
        IPERF_PORT,
        "-t",
        &t,
        "-J",
        "--connect-timeout",
        "2000",
    ];
    args.extend_from_slice(extra);
    let out = lab
        .exec_timeout(
            &lab.src_ns,
            &args,
            Duration::from_secs(u64::from(seconds) + 15),
        )
        .unwrap_or_else(|e| panic!("iperf3 client: {e}"));
    drop(server);
    parse_iperf3(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|e| {
        panic!(
            "iperf3 `{}`: {e}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Reads `iperf3 -J` client output: sender and receiver rates of the whole run.
pub fn parse_iperf3(json: &str) -> Result<IperfResult, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        return Err(format!("iperf3 error: {err}"));
    }
    let end = &v["end"];
    let bps = |key: &str| end[key]["bits_per_second"].as_f64();
    match (bps("sum_sent"), bps("sum_received"), bps("sum")) {
        (Some(s), Some(r), _) => Ok(IperfResult {
            sender_bps: s,
            receiver_bps: r,
        }),
        (_, _, Some(b)) => Ok(IperfResult {
            sender_bps: b,
            receiver_bps: b,
        }),
        _ => Err("no end.sum_sent / end.sum_received in the output".into()),
    }
}

/// An iperf3 server on `port` in dst and a client to it from src for `seconds`, with `extra`
/// client arguments (`-u -b 100M` for an unresponsive UDP flood), both left running; dropping
/// the guards stops them.
pub fn iperf3_in_background(
    lab: &Lab,
    port: &str,
    seconds: u32,
    extra: &[&str],
) -> (ChildGuard, ChildGuard) {
    let server = lab
        .spawn(&lab.dst_ns, &["iperf3", "-s", "-1", "-p", port])
        .unwrap_or_else(|e| panic!("iperf3 server: {e}"));
    wait_listening(lab, &lab.dst_ns, port, Duration::from_secs(5));
    let t = seconds.to_string();
    let mut args = vec![
        "iperf3",
        "-c",
        "198.18.0.2",
        "-p",
        port,
        "-t",
        &t,
        "--connect-timeout",
        "2000",
    ];
    args.extend_from_slice(extra);
    let client = lab
        .spawn(&lab.src_ns, &args)
        .unwrap_or_else(|e| panic!("iperf3 client: {e}"));
    (server, client)
}

/// Waits until a TCP socket listens on `port` in `ns`; panics after `timeout`.
pub fn wait_listening(lab: &Lab, ns: &str, port: &str, timeout: Duration) {
    let filter = format!("sport = :{port}");
    let deadline = Instant::now() + timeout;
    loop {
        let out = lab
            .exec_timeout(ns, &["ss", "-Hltn", &filter], Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("ss: {e}"));
        if out.status.success() && !out.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} in {ns} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A guard for a process started in the lab, re-exported for tests.
pub type Guard = ChildGuard;

/// An interface counter (`/sys/class/net/IF/statistics/NAME`) in a namespace.
pub fn if_counter(lab: &Lab, ns: &str, ifname: &str, name: &str) -> u64 {
    let path = format!("/sys/class/net/{ifname}/statistics/{name}");
    let out = lab.exec_ok(ns, &["cat", &path]).expect("read counter");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

/// CPU time the host took from this VM so far (the `steal` column of /proc/stat, in clock
/// ticks of 10 ms); 0 where the kernel does not count it.
pub fn steal_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|cpu| cpu.split_whitespace().nth(8).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A timing measurement on a shared VM, tried up to `tries` times: `measure` returns a figure
/// and whether it is good enough. A figure that is not is measured again, since the host may
/// have taken the CPU meanwhile (steal). Returns the first good figure. When none was: if the
/// host took a twentieth or more of one CPU's time during every try (an idle host takes about
/// a two-hundredth, and one stolen slice of 10 ms is enough to spoil a p99 of 100 pings), the
/// VM could not run the measurement and it says so loudly (INCONCLUSIVE, on the process's
/// stderr) and returns the last figure; otherwise it panics with every figure and its steal. `measure` itself panics on
/// what no scheduling could explain (a shaper above its ceil, a lost priority ping).
pub fn with_retries<T: std::fmt::Debug>(
    what: &str,
    tries: usize,
    mut measure: impl FnMut() -> (T, bool),
) -> T {
    let mut seen = Vec::new();
    let mut all_stolen = true;
    let mut last = None;
    for _ in 0..tries {
        let (before, started) = (steal_ticks(), Instant::now());
        let (figure, good) = measure();
        let steal_ms = (steal_ticks() - before) * 10;
        let wall_ms = started.elapsed().as_millis().max(1) as u64;
        if good {
            if !seen.is_empty() {
                eprintln!("{what}: good at try {}, after {seen:?}", seen.len() + 1);
            }
            return figure;
        }
        all_stolen &= steal_ms * 20 >= wall_ms;
        seen.push(format!(
            "{figure:?} (host steal {steal_ms} ms in {wall_ms} ms)"
        ));
        last = Some(figure);
    }
    if !all_stolen {
        panic!("{what}: not good in {tries} tries: {seen:?}");
    }
    let bar = "=".repeat(70);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nINCONCLUSIVE {what}: the host took a twentieth or more of a CPU from this VM in every try, \
         so this timing could not be judged: {seen:?}\n{bar}"
    );
    last.expect("at least one try")
}
