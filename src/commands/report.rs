//! `weir report CAPTURE [-c CONFIG] -o report.html`: the capture through the policy (or alone),
//! as one self-contained HTML page (weir::report; docs/report.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use weir::capture::CaptureReader;
use weir::report::{html, Options, Recorder};

pub struct Settings {
    pub capture: PathBuf,
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    /// The charts' interval in nanoseconds; `None`: about 300 over the capture's span.
    pub interval_ns: Option<u64>,
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let plan = match &s.config {
        Some(path) => match super::load_config(path) {
            Ok(p) => p,
            Err(code) => return Ok(code),
        },
        // The capture alone: nothing shaped.
        None => weir::config::pass_through(),
    };
    match write(&s, &Arc::new(plan)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failed::Usage(e)) => {
            eprintln!("weir: error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(Failed::Other(e)) => {
            eprintln!("weir: error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Why no report was written.
pub enum Failed {
    /// A flag that cannot work (exit 2).
    Usage(String),
    /// The capture or the output file.
    Other(String),
}

/// Write the report of `s.capture` through `plan` (the user's when `s.config` is set) to
/// `s.out`, and say where it is on stderr.
pub fn write(s: &Settings, plan: &Arc<weir::config::Plan>) -> Result<(), Failed> {
    let started = Instant::now();
    let other = |e: &dyn std::fmt::Display| Failed::Other(e.to_string());
    // First pass: the span, for the interval.
    let (mut first, mut last, mut frames) = (u64::MAX, 0u64, 0u64);
    {
        let mut r = CaptureReader::open(&s.capture).map_err(|e| other(&e))?;
        while let Some(f) = r.next_frame().map_err(|e| other(&e))? {
            first = first.min(f.ts_ns);
            last = last.max(f.ts_ns);
            frames += 1;
        }
    }
    let mut opts = Options::for_span(last.saturating_sub(first));
    if let Some(i) = s.interval_ns {
        opts.interval_ns = i;
    }
    let span = last.saturating_sub(first);
    if span / opts.interval_ns > weir::report::MAX_INTERVALS as u64 {
        return Err(Failed::Usage(format!(
            "--interval {} gives {} intervals over the capture's {:.1} s; at most {}",
            weir::config::units::format_duration(opts.interval_ns),
            span / opts.interval_ns,
            span as f64 / 1e9,
            weir::report::MAX_INTERVALS
        )));
    }
    let mut rec = Recorder::new(plan, s.config.is_some(), opts);
    let mut r = CaptureReader::open(&s.capture).map_err(|e| other(&e))?;
    let bar = super::progress::frames("report", Some(frames));
    let mut read = 0u64;
    while let Some(f) = r.next_frame().map_err(|e| other(&e))? {
        rec.push(f.ts_ns, f.data, f.orig_len);
        read += 1;
        if read.is_multiple_of(4096) {
            bar.set_position(read);
        }
    }
    bar.finish_and_clear();
    let data = rec.finish(
        &s.capture.display().to_string(),
        s.config
            .as_ref()
            .map(|c| c.display().to_string())
            .as_deref(),
    );
    let page = html::render(&data);
    std::fs::write(&s.out, &page)
        .map_err(|e| Failed::Other(format!("cannot write {}: {e}", s.out.display())))?;
    eprintln!(
        "weir: report of {frames} frames written to {} ({} KB, {:.2} s); open it in a browser",
        s.out.display(),
        page.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `weir report --live`: the running bridge's last minutes from its history; with `--watch
/// SECONDS`, a status every second for that long instead. Its busiest flows at the end. Drawn
/// as a capture's report is.
pub fn run_live(
    socket: &std::path::Path,
    watch: Option<u32>,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use weir::control::client::Client;
    use weir::control::protocol::Command;
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weir: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = |client: &mut Client| match client.request(Command::Status { history: false }) {
        Ok(r) => r
            .status
            .ok_or_else(|| "weir answered without a status".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (seconds, last, time_axis, what) = match watch {
        Some(n) => {
            let bar = super::progress::frames("watching the bridge (seconds)", Some(u64::from(n)));
            let mut samples = Vec::new();
            let started = Instant::now();
            for k in 0..=n {
                let due = started + std::time::Duration::from_secs(u64::from(k));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                match status(&mut client) {
                    Ok(s) => samples.push(s),
                    Err(e) => return Ok(super::client_failed(&e)),
                }
                bar.set_position(u64::from(k));
            }
            bar.finish_and_clear();
            let seconds = weir::report::live::seconds_of(&samples);
            let last = samples.pop().expect("at least one status");
            (
                seconds,
                last,
                "seconds since the watch began",
                format!("{n} s watched"),
            )
        }
        None => {
            let seconds = match client.request(Command::Seconds) {
                Ok(r) => r.seconds.unwrap_or_default(),
                Err(e) => return Ok(super::client_failed(&e)),
            };
            let last = match status(&mut client) {
                Ok(s) => s,
                Err(e) => return Ok(super::client_failed(&e)),
            };
            let kept = seconds.iter().map(|c| c.seconds.len()).max().unwrap_or(0);
            (
                seconds,
                last,
                "seconds, over the bridge's last minutes",
                format!("the last {} s", kept.saturating_sub(1)),
            )
        }
    };
    let flows = match client.request(Command::Flows {
        top: Some(500),
        class: None,
    }) {
        Ok(r) => r.flows.unwrap_or_default(),
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let config = last.config.path.clone();
    // Its config, for which addresses are the LAN's (the graph rings them); without it, none.
    let plan = weir::config::load(std::path::Path::new(&config)).ok();
    let data = weir::report::live::build(
        &last,
        &seconds,
        flows,
        &format!("the bridge at {}, {what}", socket.display()),
        Some(&config),
        time_axis,
        |a, v6| plan.as_ref().is_some_and(|p| p.is_lan_address(a, v6)),
        &Options::for_span(0),
    );
    let page = html::render(&data);
    if let Err(e) = std::fs::write(out, &page) {
        eprintln!("weir: error: cannot write {}: {e}", out.display());
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "weir: report of the running bridge ({what}) written to {} ({} KB); open it in a browser",
        out.display(),
        page.len() / 1024
    );
    Ok(ExitCode::SUCCESS)
}
