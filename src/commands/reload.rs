//! `weir reload`: have a running bridge read its config file again and swap it in without
//! losing a queued frame. A file that does not validate leaves the running policy as it was:
//! the error (file:line:column) is printed and the exit code is non-zero.

use super::ControlArgs;
use std::io::Write;
use std::process::ExitCode;
use weir::control::protocol::Command;

pub fn run(c: &ControlArgs) -> anyhow::Result<ExitCode> {
    let Some(mut client) = c.connect() else {
        return Ok(ExitCode::FAILURE);
    };
    let reload = match client.request(Command::Reload) {
        Ok(r) => r.reload,
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let Some(reload) = reload else {
        return Ok(super::client_failed(
            &"weir answered without a reload result",
        ));
    };
    let mut out = std::io::stdout().lock();
    if c.json {
        serde_json::to_writer_pretty(&mut out, &reload)?;
        writeln!(out)?;
    } else {
        super::render::status::write_reload(&mut out, &reload)?;
    }
    Ok(ExitCode::SUCCESS)
}
