//! `weir status`: a running bridge's counters, right now.

use super::ControlArgs;
use std::io::Write;
use std::process::ExitCode;
use weir::control::protocol::Command;

pub fn run(c: &ControlArgs) -> anyhow::Result<ExitCode> {
    let Some(mut client) = c.connect() else {
        return Ok(ExitCode::FAILURE);
    };
    let response = match client.request(Command::Status { history: false }) {
        Ok(r) => r,
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let Some(status) = response.status else {
        return Ok(super::client_failed(&"weir answered without a status"));
    };
    let mut out = std::io::stdout().lock();
    if c.json {
        serde_json::to_writer_pretty(&mut out, &status)?;
        writeln!(out)?;
    } else {
        super::render::status::write_status(&mut out, &status)?;
    }
    Ok(ExitCode::SUCCESS)
}
