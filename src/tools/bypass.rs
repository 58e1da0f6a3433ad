//! The fail-open bypass: a kernel bridge between the two ports, for while weir is not running
//! (stopped, restarting, crashed), so the link stays up, as inline IPS appliances do. Opt-in:
//! `weir bypass on|off|status`, and the systemd unit's `ExecStopPost` / `ExecStartPre` lines
//! (configs/weir.service, docs/operations.md).
//!
//! `on` makes the bridge (spanning tree off, no forward delay: frames cross at once) and
//! enslaves both ports; `off` frees them and removes it. Both are idempotent, check that the
//! ports are theirs to take, and run iproute2's `ip` under a deadline. `weir run` refuses to
//! start while a port is enslaved, since the kernel would forward every frame too.

use super::lab::{ip, PLAIN_BRIDGE};
use crate::io::sys::netdev::{interface_info, validate_name};

/// The bridge's name unless another is given.
pub const DEFAULT_BRIDGE: &str = "weir-bypass";

#[derive(Debug, thiserror::Error)]
pub enum BypassError {
    #[error("{0}")]
    Interface(#[from] crate::io::sys::netdev::NetdevError),
    #[error("{port} is already enslaved to {master}, not to {bridge}: free it first (ip link set {port} nomaster)")]
    Taken {
        port: String,
        master: String,
        bridge: String,
    },
    #[error("{0}")]
    Ip(#[from] super::lab::LabError),
}

/// Whether the bypass is on: both ports enslaved to `bridge`.
pub fn is_on(lan: &str, wan: &str, bridge: &str) -> Result<bool, BypassError> {
    Ok([lan, wan]
        .iter()
        .map(|p| interface_info(p).map(|i| i.master.as_deref() == Some(bridge)))
        .collect::<Result<Vec<bool>, _>>()?
        .iter()
        .all(|&b| b))
}

/// Bridge `lan` and `wan` through `bridge` (made if missing).
pub fn on(lan: &str, wan: &str, bridge: &str) -> Result<(), BypassError> {
    validate_name(bridge)?;
    for port in [lan, wan] {
        if let Some(master) = interface_info(port)?.master {
            if master != bridge {
                return Err(BypassError::Taken {
                    port: port.into(),
                    master,
                    bridge: bridge.into(),
                });
            }
        }
    }
    if interface_info(bridge).is_err() {
        ip(&[&["link", "add", bridge][..], &PLAIN_BRIDGE].concat())?;
    }
    for port in [lan, wan] {
        ip(&["link", "set", port, "master", bridge])?;
        ip(&["link", "set", port, "up"])?;
    }
    Ok(ip(&["link", "set", bridge, "up"])?)
}

/// Free `lan` and `wan` from `bridge` and remove it (when nothing else is in it).
pub fn off(lan: &str, wan: &str, bridge: &str) -> Result<(), BypassError> {
    validate_name(bridge)?;
    for port in [lan, wan] {
        if interface_info(port)?.master.as_deref() == Some(bridge) {
            ip(&["link", "set", port, "nomaster"])?;
        }
    }
    let empty = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if empty {
        ip(&["link", "del", bridge])?;
    }
    Ok(())
}
