//! The express lane: a second receiving socket per port for the traffic of the best priority,
//! so that when weir's CPU cannot keep up and the kernel must drop frames at its receive
//! rings, it drops bulk frames, not priority ones (docs/architecture.md, Express lane).
//!
//! Frames arriving on a port are scheduled on the other one: a port's express socket takes
//! what the other port's classes of the best priority match, and the link's control frames
//! (crate::classify::rule::bpf::filter_with); its bulk socket takes the rest. The kernel
//! splits them with two complementary filters, so every frame reaches exactly one socket, and
//! every frame of a flow the same one (the filters test only what a flow's frames share). The
//! forwarder reads the express socket first on every turn. Weir classifies every frame as
//! before, whichever socket it came from: the lane decides only which ring fills first.
//!
//! Chosen from the plan: the classes of the egress port with the best (lowest) priority, when
//! the port has more than one priority and those classes have rules the kernel can test (ports,
//! hosts, protocols, DSCP, ICMP types). Otherwise no lane (and `weir run` says why).

use crate::classify::rule::bpf::{filter_with, BpfInsn};
use crate::classify::rule::Rule;
use crate::config::{ClassKind, Plan};
use crate::port::Side;
use std::sync::Arc;

/// The two filters of a port's receiving sockets.
#[derive(Clone, Debug)]
pub struct Lane {
    /// The classes whose traffic takes the lane (on the egress port).
    pub classes: Vec<String>,
    pub express: Arc<[BpfInsn]>,
    pub bulk: Arc<[BpfInsn]>,
}

/// The express lane of frames leaving on `egress` (received on the other port): `Ok(None)`
/// when the port has a single priority; `Err` says why its best classes cannot have one.
pub fn lane(plan: &Plan, egress: Side) -> Result<Option<Lane>, String> {
    let port = &plan.ports[egress.index()];
    let user: Vec<(usize, u8)> = port
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind != ClassKind::Control)
        .map(|(i, _)| (i, port.spec.classes[i].priority))
        .collect();
    let Some(best) = user.iter().map(|&(_, p)| p).min() else {
        return Ok(None);
    };
    if user.iter().all(|&(_, p)| p == best) {
        return Ok(None);
    }
    let mut names = Vec::new();
    let mut rules = Vec::new();
    for &(i, p) in user.iter().filter(|&&(_, p)| p == best) {
        let class = &port.classes[i];
        match &class.kind {
            ClassKind::Matched(text) => {
                let rule = Rule::parse(text).map_err(|e| {
                    format!(
                        "class {}: its rule does not parse alone: {}",
                        class.name, e.message
                    )
                })?;
                rules.push(rule);
                names.push(class.name.clone());
            }
            // The catch-all of the best priority: everything would be express.
            ClassKind::Default => {
                return Err(format!(
                    "class {} (the default) has the best priority {p}",
                    class.name
                ))
            }
            ClassKind::Control => {}
        }
    }
    let refs: Vec<&Rule> = rules.iter().collect();
    let compile = |matched| {
        filter_with(&refs, true, matched).map_err(|e| format!("class {}: {e}", names.join(", ")))
    };
    Ok(Some(Lane {
        express: compile(true)?.into(),
        bulk: compile(false)?.into(),
        classes: names,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(wan_classes: &str) -> Plan {
        let src = format!(
            r#"(ports: (
                wan: (rate: "100 Mbit", classes: [{wan_classes}]),
                lan: (rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "100 Mbit")]),
            ))"#
        );
        crate::config::parse(&src, Path::new("express.ron")).unwrap()
    }

    #[test]
    fn the_best_priority_classes_take_the_lane_when_the_kernel_can_test_them() {
        let p = plan(
            r#"(name: "voice", match: "udp port 5060 or dscp ef", priority: 0, rate: "10 Mbit"),
               (name: "games", match: "udp port 27015", priority: 0, rate: "10 Mbit"),
               (name: "web", match: "tcp port 443", priority: 2, rate: "40 Mbit"),
               (name: "bulk", match: "default", priority: 4, rate: "40 Mbit")"#,
        );
        let lane = lane(&p, Side::Wan).unwrap().unwrap();
        assert_eq!(lane.classes, ["voice", "games"]);
        // One priority on the lan port: no lane for frames leaving there.
        assert!(super::lane(&p, Side::Lan).unwrap().is_none());
    }

    #[test]
    fn a_rule_the_kernel_cannot_test_means_no_lane_and_says_why() {
        let p = plan(
            r#"(name: "voice", match: "app sip", priority: 0, rate: "10 Mbit"),
               (name: "bulk", match: "default", priority: 4, rate: "90 Mbit")"#,
        );
        let e = lane(&p, Side::Wan).unwrap_err();
        assert!(e.contains("voice") && e.contains("app"), "{e}");
    }
}
