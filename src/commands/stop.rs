//! `weir stop`: have a running bridge drain and stop (as SIGTERM does), and wait until it has.
//! Its final counters go where its own output goes (the journal under systemd).

use super::ControlArgs;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir::control::client::{Client, ClientError};
use weir::control::protocol::Command;

/// How long to wait for the bridge to be gone: its drain takes at most a second.
const WAIT: Duration = Duration::from_secs(15);

pub fn run(c: &ControlArgs) -> anyhow::Result<ExitCode> {
    let Some(mut client) = c.connect() else {
        return Ok(ExitCode::FAILURE);
    };
    let pid = match client.request(Command::Stop) {
        Ok(r) => r.stop.map(|s| s.pid),
        Err(e) => return Ok(super::client_failed(&e)),
    };
    drop(client);
    // Gone when nothing answers on the socket any more (it is removed on the way out).
    let started = Instant::now();
    while started.elapsed() < WAIT {
        match Client::connect(&c.socket) {
            Err(ClientError::NotRunning(_)) => {
                let mut out = std::io::stdout().lock();
                if c.json {
                    writeln!(out, "{}", serde_json::json!({"stopped": true, "pid": pid}))?;
                } else {
                    writeln!(
                        out,
                        "weir{} stopped",
                        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                    )?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    eprintln!(
        "weir: error: weir is still answering on {} {} s after being asked to stop",
        c.socket.display(),
        WAIT.as_secs()
    );
    Ok(ExitCode::FAILURE)
}
