//! `weir bypass on|off|status`: the fail-open kernel bridge between the two ports, for while
//! weir is not running (see `weir::tools::bypass`). The ports are the config's unless given.

use anyhow::bail;
use std::path::Path;
use std::process::ExitCode;
use weir::port::Side;
use weir::tools::bypass;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Action {
    /// Bridge the ports in the kernel (weir must not be running).
    On,
    /// Remove the bridge (before weir starts).
    Off,
    /// Say whether the bypass is on.
    Status,
}

pub fn run(
    action: Action,
    config: &Path,
    lan: Option<String>,
    wan: Option<String>,
    bridge: &str,
) -> anyhow::Result<ExitCode> {
    // The config is read only for the interfaces it names.
    let named = |side: Side, flag: Option<String>| -> anyhow::Result<String> {
        if let Some(f) = flag {
            return Ok(f);
        }
        let plan = match super::load_config(config) {
            Ok(p) => p,
            Err(code) => {
                return Err(anyhow::anyhow!(
                    "no config to read the ports from ({code:?})"
                ))
            }
        };
        match plan.port(side).interface.clone() {
            Some(i) => Ok(i),
            None => bail!(
                "no interface for port {0}: give --{0} IF, or set ports.{0}.interface in {1}",
                side.name(),
                config.display()
            ),
        }
    };
    let lan = named(Side::Lan, lan)?;
    let wan = named(Side::Wan, wan)?;
    match action {
        Action::On => {
            bypass::on(&lan, &wan, bridge)?;
            println!("bypass on: {lan} and {wan} bridged by the kernel through {bridge}");
        }
        Action::Off => {
            bypass::off(&lan, &wan, bridge)?;
            println!("bypass off: {lan} and {wan} are free for weir");
        }
        Action::Status => {
            let on = bypass::is_on(&lan, &wan, bridge)?;
            println!(
                "bypass {}: {lan} and {wan}{}",
                if on { "on" } else { "off" },
                if on {
                    format!(" bridged through {bridge}")
                } else {
                    " not bridged by the kernel".into()
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
