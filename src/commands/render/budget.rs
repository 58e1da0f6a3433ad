//! Budgets as a table: `weir budget`, and the end of `weir replay`.

use std::io::{self, Write};
use weir::budget::BudgetStatus;
use weir::control::protocol::BudgetReport;

/// "312 MB", "1.20 GB", "950 B": decimal units, as budgets are usually written.
pub fn decimal_bytes(bytes: u64) -> String {
    weir::config::units::format_bytes_decimal(bytes)
}

/// Wall-clock nanoseconds as local time in `tz`: "2026-12-01 00:00 NZDT".
pub fn local_time(ns: i128, tz: &jiff::tz::TimeZone) -> String {
    local(ns, tz, "%Y-%m-%d %H:%M %Z")
}

/// The same to the second: "2026-11-30 23:59:56 NZDT".
pub fn local_second(ns: i128, tz: &jiff::tz::TimeZone) -> String {
    local(ns, tz, "%Y-%m-%d %H:%M:%S %Z")
}

fn local(ns: i128, tz: &jiff::tz::TimeZone, format: &str) -> String {
    match jiff::Timestamp::from_nanosecond(ns) {
        Ok(t) => t.to_zoned_datetime(tz.clone()).strftime(format).to_string(),
        Err(_) => "-".into(),
    }
}

/// The time zone a report names (its periods are in it).
pub fn zone(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name)
        .or_else(|_| jiff::tz::TimeZone::try_system())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

fn state(b: &BudgetStatus, tz: &jiff::tz::TimeZone) -> String {
    match (b.exhausted(), b.ran_out_at) {
        (true, Some(at)) => format!("used up at {}: {}", local_second(at, tz), b.then),
        (true, None) => format!("used up: {}", b.then),
        _ => format!("then {}", b.then),
    }
}

/// One line per budget: used, of, left, the next reset, and what happens once used up;
/// with `history`, each past period below its budget.
pub fn write(out: &mut impl Write, r: &BudgetReport, history: bool) -> io::Result<()> {
    let tz = zone(&r.timezone);
    if r.budgets.is_empty() {
        return writeln!(out, "no budgets in the config");
    }
    let name_w = r
        .budgets
        .iter()
        .map(|b| b.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "{:<name_w$}  {:>10}  {:>10}  {:>10}  {:<22}  counts / state",
        "budget", "used", "of", "left", "next reset"
    )?;
    for b in &r.budgets {
        let reset = if b.end == 0 {
            "(no frame yet)".to_string()
        } else {
            local_time(b.end, &tz)
        };
        writeln!(
            out,
            "{:<name_w$}  {:>10}  {:>10}  {:>10}  {:<22}  {}, {}; {}",
            b.name,
            decimal_bytes(b.used),
            decimal_bytes(b.bytes),
            decimal_bytes(b.left()),
            reset,
            b.target,
            b.period,
            state(b, &tz)
        )?;
        if history {
            for p in &b.history {
                writeln!(
                    out,
                    "{:<name_w$}    {} to {}: used {}{}",
                    "",
                    local_time(p.start, &tz),
                    local_time(p.end, &tz),
                    decimal_bytes(p.used),
                    p.ran_out_at
                        .map(|at| format!(", used up at {}", local_second(at, &tz)))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_decimal_units() {
        assert_eq!(decimal_bytes(950), "950 B");
        assert_eq!(decimal_bytes(312_400_000), "312 MB");
        assert_eq!(decimal_bytes(1_204_000_000), "1.20 GB");
        assert_eq!(decimal_bytes(400_000_000_000), "400 GB");
    }
}
