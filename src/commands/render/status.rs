//! `weir status`, `weir flows` and `weir reload` as text.

use std::io::Write;
use weir::config::units::BitRate;
use weir::control::protocol::{FlowStatus, ReloadStatus, Status};

/// `1h02m03s`, `4m05s`, `12.3s`.
pub fn duration(s: f64) -> String {
    let whole = s as u64;
    match whole {
        0..=59 => format!("{s:.1}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!(
            "{}h{:02}m{:02}s",
            whole / 3600,
            (whole / 60) % 60,
            whole % 60
        ),
    }
}

/// Bytes as `12.3 MB` (decimal, as rates are).
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e12 => format!("{:.1} TB", n / 1e12),
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

pub fn write_status(out: &mut impl Write, s: &Status) -> std::io::Result<()> {
    writeln!(
        out,
        "weir {}, pid {}, up {}, {} thread layout",
        s.weir_version,
        s.pid,
        duration(s.uptime_s),
        s.threads
    )?;
    writeln!(
        out,
        "config {} (sha256 {}), generation {}{}",
        s.config.path,
        &s.config.sha256[..s.config.sha256.len().min(12)],
        s.config.generation,
        if s.config.reloads_refused > 0 {
            format!(", {} reloads refused", s.config.reloads_refused)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "flow table: {} of {} entries in use, {} evicted, {} expired{}",
        s.flow_table.occupied,
        s.flow_table.capacity,
        s.flow_table.evicted,
        s.flow_table.expired,
        if s.gso_split.super_frames > 0 {
            format!(
                "; {} GSO super-frames cut into {} segments",
                s.gso_split.super_frames, s.gso_split.segments
            )
        } else {
            String::new()
        }
    )?;
    for p in &s.ports {
        // The classes of a port are the traffic leaving by it: what arrived on the other.
        let from = s.ports.iter().find(|o| o.port != p.port);
        writeln!(out)?;
        writeln!(
            out,
            "port {} ({}, link {}): {}, frames arriving on {}{}",
            p.port,
            p.interface,
            BitRate(p.rate_bps),
            if p.port == "wan" {
                "upload"
            } else {
                "download"
            },
            from.map_or("the other port".into(), |o| format!(
                "{} ({})",
                o.port, o.interface
            )),
            match from.and_then(|o| o.kernel_drops) {
                Some(n) if n > 0 => format!(
                    "; the kernel dropped {n} there before weir could take them (in no count below)"
                ),
                _ => String::new(),
            }
        )?;
        if p.link != "up" {
            writeln!(
                out,
                "  LINK {} for {:.1} s: frames leaving here are dropped (link_down)",
                p.link.to_uppercase(),
                p.link_down_s.unwrap_or(0.0)
            )?;
        }
        writeln!(
            out,
            "  {:<12} {:>4} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10} {:>9} {:>8} {:>15} {:>6}  drops in the last second",
            "class",
            "prio",
            "rate",
            "ceil",
            "now (1s)",
            "10 s",
            "fwd frames",
            "fwd bytes",
            "dropped",
            "queued",
            "p99 1s/all ms",
            "flows",
        )?;
        for c in &p.classes {
            if c.name == "control" && c.received_frames == 0 {
                continue;
            }
            let last: Vec<String> = c.drops_1s.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(
                out,
                "  {:<12} {:>4} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10} {:>9} {:>8} {:>15} {:>6}  {}",
                c.name,
                c.priority.map_or("-".into(), |p| p.to_string()),
                BitRate(c.rate_bps).to_string(),
                BitRate(c.ceil_bps).to_string(),
                weir::config::units::format_rate_approx(c.rate_1s_bps),
                weir::config::units::format_rate_approx(c.rate_10s_bps),
                c.forwarded_frames,
                bytes(c.forwarded_bytes),
                c.dropped_frames,
                c.queued_frames,
                format!(
                    "{:.2}/{:.2}",
                    c.sojourn_us.last_p99 / 1e3,
                    c.sojourn_us.p99 / 1e3
                ),
                c.active_flows,
                if last.is_empty() {
                    "-".into()
                } else {
                    last.join(", ")
                }
            )?;
        }
        let t = &p.totals;
        writeln!(
            out,
            "  received {} = forwarded {} + dropped {} + queued {}",
            t.received, t.forwarded, t.dropped, t.queued
        )?;
    }
    if s.age_ms > 1000.0 {
        writeln!(
            out,
            "\nwarning: these counters are {:.1} s old: a forwarding thread has not published since",
            s.age_ms / 1e3
        )?;
    }
    Ok(())
}

pub fn write_flows(out: &mut impl Write, flows: &[FlowStatus]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<9} {:<45} {:<45} {:<10} {:<18} {:>10} {:>10} {:>11} {:>8}  server",
        "proto", "from", "to", "app", "class (up/down)", "up", "down", "rate", "age"
    )?;
    for f in flows {
        let class = format!(
            "{}/{}",
            f.class_up.as_deref().unwrap_or("-"),
            f.class_down.as_deref().unwrap_or("-")
        );
        // Known only when weir keeps names (a rule reads them).
        let server = match (&f.server_name, &f.name_source) {
            (Some(n), Some(s)) => format!("{n} ({s})"),
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<9} {:<45} {:<45} {:<10} {:<18} {:>10} {:>10} {:>11} {:>8}  {server}",
            f.proto,
            f.src,
            f.dst,
            f.app.as_deref().unwrap_or("-"),
            class,
            bytes(f.bytes_up),
            bytes(f.bytes_down),
            weir::config::units::format_rate_approx(f.rate_bps),
            duration(f.age_s)
        )?;
    }
    writeln!(out, "{} flows", flows.len())
}

pub fn write_reload(out: &mut impl Write, r: &ReloadStatus) -> std::io::Result<()> {
    writeln!(
        out,
        "reloaded {} (sha256 {}), generation {}: {} queued frames kept, {} moved to their new class, {} dropped (reload); swap {:.0} us, {:.1} ms in all",
        r.path,
        &r.sha256[..r.sha256.len().min(12)],
        r.generation,
        r.frames.kept,
        r.frames.moved,
        r.frames.dropped,
        r.swap_us,
        r.total_ms
    )
}
