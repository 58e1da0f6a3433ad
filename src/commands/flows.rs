//! `weir flows [--top N] [--class C]`: the active flows of a running bridge, busiest first
//! (pyshaper's `netstat`).

use super::ControlArgs;
use std::io::Write;
use std::process::ExitCode;
use weir::control::protocol::Command;

pub fn run(c: &ControlArgs, top: Option<usize>, class: Option<String>) -> anyhow::Result<ExitCode> {
    let Some(mut client) = c.connect() else {
        return Ok(ExitCode::FAILURE);
    };
    let flows = match client.request(Command::Flows { top, class }) {
        Ok(r) => r.flows.unwrap_or_default(),
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let mut out = std::io::stdout().lock();
    if c.json {
        serde_json::to_writer_pretty(&mut out, &flows)?;
        writeln!(out)?;
    } else {
        super::render::status::write_flows(&mut out, &flows)?;
    }
    Ok(ExitCode::SUCCESS)
}
