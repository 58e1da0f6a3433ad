//! `weir lab up|down|status`: the demo topology of network namespaces.

use super::LabAction;
use std::process::ExitCode;
use weir::tools::lab::{down_by_prefix, list_namespaces, namespaces, Lab, LabSpec};

pub fn run(action: LabAction) -> anyhow::Result<ExitCode> {
    let spec = LabSpec::demo();
    match action {
        LabAction::Up => {
            let mut lab = Lab::up(spec)?;
            println!(
                "lab up: {} ({} {}/{}) -- {} [weir on {} and {}] -- {} ({} {}/{})",
                lab.src_ns,
                lab.src_if,
                lab.src_ip4,
                lab.src_ip6,
                lab.dut_ns,
                lab.dut_lan_if,
                lab.dut_wan_if,
                lab.dst_ns,
                lab.dst_if,
                lab.dst_ip4,
                lab.dst_ip6,
            );
            println!(
                "run weir there:  ip netns exec {} weir run -c configs/lab.ron",
                lab.dut_ns
            );
            lab.keep();
        }
        LabAction::Down => {
            down_by_prefix(&spec.prefix)?;
            println!("lab down");
        }
        LabAction::Status => {
            let existing = list_namespaces()?;
            let present: Vec<String> = namespaces(&spec.prefix)
                .into_iter()
                .filter(|n| existing.contains(n))
                .collect();
            if present.is_empty() {
                println!("no lab");
            } else {
                println!("lab namespaces: {}", present.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
