//! `weir replay CAPTURE -c CONFIG`: the policy on a capture, in virtual time.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weir::replay::{replay_file, ReplayError, ReplayOptions, ReplayReport};

pub struct Settings {
    pub capture: PathBuf,
    pub config: PathBuf,
    pub out: Option<PathBuf>,
    pub json: bool,
    /// `--flows FILE`.
    pub opts_flows: Option<PathBuf>,
    pub opts: ReplayOptions,
    /// `--report FILE`: the HTML report of the same replay.
    pub report: Option<PathBuf>,
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let plan = match super::load_config(&s.config) {
        Ok(p) => Arc::new(p),
        Err(code) => return Ok(code),
    };
    let bar = super::progress::frames("replaying", None);
    let mut progress = |frames: u64| bar.set_position(frames);
    let result = replay_file(
        &plan,
        &s.capture,
        s.out.as_deref(),
        s.opts_flows.as_deref(),
        &s.opts,
        &mut progress,
    );
    bar.finish_and_clear();
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
        write_table(&mut out, &s, &plan, &report)?;
    }
    if let (Some(page), None) = (&s.report, &damage) {
        let settings = super::report::Settings {
            capture: s.capture.clone(),
            config: Some(s.config.clone()),
            out: page.clone(),
            interval_ns: None,
        };
        if let Err(super::report::Failed::Usage(e) | super::report::Failed::Other(e)) =
            super::report::write(&settings, &plan)
        {
            eprintln!("weir: error: the report: {e}");
            return Ok(ExitCode::FAILURE);
        }
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

fn write_table(
    out: &mut impl Write,
    s: &Settings,
    plan: &weir::config::Plan,
    r: &ReplayReport,
) -> std::io::Result<()> {
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
    super::render::table::write_classes(out, &r.classes)?;
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
    if r.gso_split.super_frames > 0 {
        writeln!(
            out,
            "{} TCP super-frames (IP packets over the {}-byte MTU: the host's TSO or GRO) cut into {} segments for classes under {}; each segment counts as a frame received",
            r.gso_split.super_frames,
            s.opts.mtu,
            r.gso_split.segments,
            weir::config::units::format_rate_approx(weir::pipeline::SPLIT_GSO_BELOW_BPS),
        )?;
    }
    if r.timestamps_reordered > 0 {
        writeln!(out, "{} frames had a timestamp earlier than the one before (taken as arriving at that earlier frame's time)", r.timestamps_reordered)?;
    }
    let n = r.names;
    if n.from_dns_cache + n.dns_answers_stored > 0 {
        writeln!(
            out,
            "DNS cache: {} addresses stored from answers ({} pushed out), {} new flows named from it",
            n.dns_answers_stored, n.dns_cache_evicted, n.from_dns_cache
        )?;
    }
    if n.learnt + n.not_found > 0 {
        writeln!(
            out,
            "server names: {} flows named (TLS or QUIC SNI, HTTP Host, DNS), {} without one after {} payload frames; {} frames of named flows classified before their name",
            n.learnt,
            n.not_found,
            n.payload_frames,
            n.frames_before
        )?;
    }
    if n.apps_found + n.apps_unknown > 0 {
        writeln!(
            out,
            "protocols: {} flows told from payload, {} with none in their first {} payload frames (ports decide); {} frames of told flows classified before",
            n.apps_found, n.apps_unknown, n.payload_frames, n.frames_before_app
        )?;
    }
    if !r.budgets.is_empty() {
        writeln!(
            out,
            "\nbudgets over the capture's time (periods in {}):",
            plan.timezone
                .iana_name()
                .unwrap_or("the system's time zone")
        )?;
        let report = weir::control::protocol::BudgetReport {
            now: 0,
            timezone: plan.timezone.iana_name().unwrap_or("").to_string(),
            store: String::new(),
            source: "replay".into(),
            budgets: r.budgets.clone(),
        };
        super::render::budget::write(out, &report, true)?;
    }
    if let Some(p) = &s.out {
        writeln!(out, "shaped capture written to {}", p.display())?;
    }
    if let Some(p) = &s.opts_flows {
        writeln!(out, "flows written to {}", p.display())?;
    }
    Ok(())
}
