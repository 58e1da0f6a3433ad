//! The per-class table printed by `weir replay` and `weir run`.

use std::io::Write;
use weir::config::units::BitRate;
use weir::pipeline::report::ClassReport;

pub fn write_classes(out: &mut impl Write, classes: &[ClassReport]) -> std::io::Result<()> {
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
    for c in classes {
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
            weir::config::units::format_rate_approx(c.avg_rate_bps),
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
    Ok(())
}
