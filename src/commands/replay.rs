//! `weir replay CAPTURE -c CONFIG`: the policy on a capture, in virtual time.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use weir::config::units::BitRate;
use weir::replay::{replay_file, Direction, ReplayError, ReplayReport};

pub struct Settings {
    pub capture: PathBuf,
    pub config: PathBuf,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub direction: Option<Direction>,
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let plan = match super::load_config(&s.config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let started = Instant::now();
    let show_progress = std::io::stderr().is_terminal();
    let mut progress = |frames: u64| {
        if show_progress {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rweir: {frames} frames read ({:.0} frames/s)",
                frames as f64 / secs
            );
        }
    };
    let result = replay_file(
        &plan,
        &s.capture,
        s.out.as_deref(),
        s.direction,
        &mut progress,
    );
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let (report, damage) = match result {
        Ok(r) => (r, None),
        // What was read before the damage is still worth showing; the exit code says failure.
        Err(ReplayError::Damaged { report, source }) => (*report, Some(source)),
        Err(e) => {
            eprintln!("weir: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = std::io::stdout().lock();
    if s.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &s, &report)?;
    }
    match damage {
        Some(e) => {
            eprintln!("weir: error: {e}");
            eprintln!(
                "weir: the results above cover the {} frames read before the damage",
                report.frames_read
            );
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

fn write_table(out: &mut impl Write, s: &Settings, r: &ReplayReport) -> std::io::Result<()> {
    writeln!(
        out,
        "replay of {} through {}: {} frames, {:.3} s from first arrival to last departure",
        s.capture.display(),
        s.config.display(),
        r.frames_read,
        r.span_s
    )?;
    writeln!(
        out,
        "directions: {} upload (out on wan), {} download (out on lan){}",
        r.directions.upload,
        r.directions.download,
        if r.directions.guessed > 0 {
            format!(
                ", {} guessed as upload (no LAN address: set lan_networks or --direction)",
                r.directions.guessed
            )
        } else {
            String::new()
        }
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<4} {:<12} {:>4} {:>10} {:>10} {:>11} {:>12} {:>11} {:>8}  {:<22} {:>27}",
        "port",
        "class",
        "prio",
        "rate",
        "ceil",
        "frames",
        "bytes",
        "avg rate",
        "dropped",
        "drops by reason",
        "sojourn p50/p99/max (ms)"
    )?;
    for c in &r.classes {
        if c.received_frames == 0 && c.name == "control" {
            continue;
        }
        let reasons: Vec<String> = c
            .drops_by_reason
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            out,
            "{:<4} {:<12} {:>4} {:>10} {:>10} {:>11} {:>12} {:>11} {:>8}  {:<22} {:>27}",
            c.port,
            c.name,
            c.priority.map_or("-".into(), |p| p.to_string()),
            BitRate(c.rate_bps).to_string(),
            BitRate(c.ceil_bps).to_string(),
            c.forwarded_frames,
            c.forwarded_bytes,
            if c.avg_rate_bps > 0 {
                BitRate(c.avg_rate_bps).to_string()
            } else {
                "0".into()
            },
            c.dropped_frames,
            if reasons.is_empty() {
                "-".to_string()
            } else {
                reasons.join(", ")
            },
            format!(
                "{:.3} / {:.3} / {:.3}",
                c.sojourn_us.p50 / 1000.0,
                c.sojourn_us.p99 / 1000.0,
                c.sojourn_us.max / 1000.0
            ),
        )?;
    }
    let t = r.totals;
    writeln!(out)?;
    writeln!(
        out,
        "received {} = forwarded {} + dropped {} + queued {}{}",
        t.received,
        t.forwarded,
        t.dropped,
        t.queued,
        if t.received == t.forwarded + t.dropped + t.queued {
            ""
        } else {
            "  (MISMATCH: please report)"
        }
    )?;
    let f = &r.flow_table;
    writeln!(
        out,
        "flow table: {} hits, {} misses, {} evicted, {} expired; fragments: {} matched, {} unmatched; {} control frames",
        f.hits, f.misses, f.evicted, f.expired, f.fragments_matched, f.fragments_unmatched, f.control_frames
    )?;
    if r.timestamps_reordered > 0 {
        writeln!(out, "{} frames had a timestamp earlier than the one before (taken as arriving at that earlier frame's time)", r.timestamps_reordered)?;
    }
    if let Some(p) = &s.out {
        writeln!(out, "shaped capture written to {}", p.display())?;
    }
    Ok(())
}
