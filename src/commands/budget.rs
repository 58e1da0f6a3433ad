//! `weir budget [--json]`: each budget's count in its period, what is left and when it starts
//! again; `weir budget reset NAME`: start a budget's count of this period again.
//!
//! A running bridge is asked over its control socket (its counts are at most 100 ms old).
//! When none runs, the store named by the config is read (its counts are as last written),
//! and `reset` writes it: the next `weir run` starts from there.

use super::ControlArgs;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use weir::budget::store::Store;
use weir::budget::{Ledger, Meter};
use weir::control::client::{Client, ClientError};
use weir::control::protocol::{BudgetReport, Command};

pub fn run(c: &ControlArgs, config: &Path, reset: Option<&str>) -> anyhow::Result<ExitCode> {
    let report = match Client::connect(&c.socket) {
        Ok(mut client) => {
            let command = match reset {
                Some(name) => Command::BudgetReset {
                    name: name.to_string(),
                },
                None => Command::Budget,
            };
            match client.request(command) {
                Ok(r) => r.budget,
                Err(e) => return Ok(super::client_failed(&e)),
            }
        }
        Err(ClientError::NotRunning(_)) => match from_store(config, reset) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("weir: error: {e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let Some(report) = report else {
        return Ok(super::client_failed(&"weir answered without budgets"));
    };
    let mut out = std::io::stdout().lock();
    if c.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        if let Some(name) = reset {
            writeln!(out, "budget {name}: count started again")?;
        }
        if report.source == "store" {
            writeln!(
                out,
                "(weir is not running: counts as last written to {})",
                report.store
            )?;
        }
        super::render::budget::write(&mut out, &report, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The counts in the store the config names, at the current time; reset one first if asked.
fn from_store(config: &Path, reset: Option<&str>) -> anyhow::Result<BudgetReport> {
    let plan = weir::config::load(config)?;
    if plan.budgets.is_empty() {
        anyhow::bail!(
            "no weir is running, and {} has no budgets (add `budget:` to a class or `budgets:` at the top level; docs/config.md)",
            config.display()
        );
    }
    let path = &plan.budget_store.path;
    if !path.exists() {
        anyhow::bail!(
            "no weir is running, and {} does not exist yet: weir run writes it",
            path.display()
        );
    }
    let mut saved: Vec<_> = Store::open_read_only(path)?
        .load()?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    if let Some(name) = reset {
        if !plan.budgets.iter().any(|b| b.name == name) {
            let names: Vec<&str> = plan.budgets.iter().map(|b| b.name.as_str()).collect();
            anyhow::bail!("no budget `{name}`; the budgets are: {}", names.join(", "));
        }
        for s in saved.iter_mut().filter(|s| s.name == name) {
            s.used = 0;
            s.ran_out_at = None;
        }
        let now = wall_now();
        Store::open(path)?.save(&saved, now)?;
    }
    let ledger = Ledger::new(&plan.budgets, plan.timezone.clone(), saved);
    // A sync at the current time finds each budget's period (a saved count of an earlier one
    // starts again).
    ledger.sync(&mut Meter::new(&plan.budgets), wall_now());
    Ok(weir::control::budget_report(
        &plan,
        ledger.status(),
        "store",
    ))
}

fn wall_now() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
