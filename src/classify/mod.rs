//! Classification: which class of which egress port a frame belongs to.
//!
//! Guarantees:
//! - every frame gets a class: link control traffic (ARP, IPv6 ND, LLDP, STP, LACP) goes to the
//!   port's control class, ahead of everything; other frames to the first class whose rule
//!   matches, in config order, else to the port's default class;
//! - rules are evaluated once per flow and direction, and the verdict is cached in the bounded
//!   [`flow_table::FlowTable`]; rules that read per-frame fields (length, TCP flags, DSCP, ...)
//!   are evaluated on every frame, but only those listed before the cached verdict;
//! - fragments of one IP datagram get the flow, and so the class, of its first fragment;
//! - no allocation per frame; no panic whatever the frame.

pub mod flow;
pub mod flow_table;
pub mod fragments;
pub mod payload;
pub mod rule;

use crate::port::ClassId;
use crate::port::Side;
use crate::time::Nanos;
use crate::wire::FrameView;
use flow::{host_hash, mac_u128, FlowKey};
use flow_table::{FlowTable, FlowTableStats, NO_VERDICT};
use fragments::{FragmentStats, FragmentTable};
use rule::Rule;

/// How a class shares itself among its users (CAKE's isolation modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fairness {
    /// A queue per flow.
    Flow,
    /// A queue per LAN-side host: the source of frames leaving on wan, the destination of
    /// frames leaving on lan, so one class list serves both ports.
    Host,
    /// A queue per source address.
    SrcHost,
    /// A queue per destination address.
    DstHost,
    /// Fair between LAN-side hosts first, then between each host's flows.
    Triple,
    /// One FIFO.
    Fifo,
}

/// A class's rule, in match order.
#[derive(Debug)]
pub struct MatchEntry {
    pub class: ClassId,
    pub rule: Rule,
}

/// Classification plan of one egress port.
#[derive(Debug)]
pub struct PortRules {
    /// Classes with a rule, in config order (the default class is not among them).
    pub matches: Vec<MatchEntry>,
    pub default_class: ClassId,
    pub control_class: ClassId,
    /// Fairness of each class, indexed by class id.
    pub fairness: Vec<Fairness>,
}

impl PortRules {
    /// Positions in `matches` of rules that must be evaluated per frame.
    fn per_frame_positions(&self) -> Vec<u16> {
        self.matches
            .iter()
            .enumerate()
            .filter(|(_, m)| m.rule.depends_on_packet())
            .map(|(i, _)| i as u16)
            .collect()
    }

    /// First flow-invariant rule that matches, as a position in `matches`, or `len()` if none.
    fn first_flow_match(&self, v: &FrameView) -> u16 {
        self.matches
            .iter()
            .position(|m| !m.rule.depends_on_packet() && m.rule.matches(v))
            .unwrap_or(self.matches.len()) as u16
    }
}

/// The classifier's verdict on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub egress: Side,
    pub class: ClassId,
    /// Picks the queue inside the class.
    pub fairness_hash: u64,
    /// Picks the host, in a class that isolates hosts (`triple`); 0 otherwise.
    pub host_hash: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassifierStats {
    pub flows: FlowTableStats,
    pub fragments: FragmentStats,
    pub control_frames: u64,
}

pub struct Classifier {
    ports: [PortRules; 2],
    per_frame: [Vec<u16>; 2],
    flows: FlowTable,
    fragments: FragmentTable,
    control_frames: u64,
}

impl Classifier {
    /// `ports` is indexed by egress side: `[lan, wan]`.
    pub fn new(ports: [PortRules; 2], max_flows: u32, idle_timeout: Nanos) -> Classifier {
        let per_frame = [
            ports[0].per_frame_positions(),
            ports[1].per_frame_positions(),
        ];
        Classifier {
            ports,
            per_frame,
            flows: FlowTable::new(max_flows, idle_timeout),
            fragments: FragmentTable::new(4096),
            control_frames: 0,
        }
    }

    pub fn stats(&self) -> ClassifierStats {
        ClassifierStats {
            flows: self.flows.stats(),
            fragments: self.fragments.stats(),
            control_frames: self.control_frames,
        }
    }

    pub fn port_rules(&self, egress: Side) -> &PortRules {
        &self.ports[egress.index()]
    }

    /// The flows seen within the idle timeout before `now` (see [`FlowTable::for_each_live`]).
    pub fn for_each_flow(&self, now: Nanos, f: impl FnMut(flow_table::FlowInfo)) {
        self.flows.for_each_live(now, f);
    }

    /// [`for_each_flow`](Self::for_each_flow) over flow table slots `start..start + len`.
    pub fn for_each_flow_in(
        &self,
        start: usize,
        len: usize,
        now: Nanos,
        f: impl FnMut(flow_table::FlowInfo),
    ) {
        self.flows.for_each_live_in(start, len, now, f);
    }

    /// Slots in the flow table.
    pub fn flow_capacity(&self) -> usize {
        self.flows.capacity()
    }

    /// New rules (a reload): every flow is classified again on its next frame (and shows no
    /// class until then); its counters stay.
    pub fn replace_rules(&mut self, ports: [PortRules; 2]) {
        self.per_frame = [
            ports[0].per_frame_positions(),
            ports[1].per_frame_positions(),
        ];
        self.ports = ports;
        self.flows.clear_verdicts();
    }

    /// Classify a frame that will leave on `egress`, and count it in its flow.
    pub fn classify(&mut self, view: &FrameView, egress: Side, now: Nanos) -> Verdict {
        self.classify_and(view, egress, now, true)
    }

    /// Classify a frame already counted (queued when a reload changed the rules), without
    /// counting it again in its flow.
    pub fn classify_again(&mut self, view: &FrameView, egress: Side, now: Nanos) -> Verdict {
        self.classify_and(view, egress, now, false)
    }

    fn classify_and(
        &mut self,
        view: &FrameView,
        egress: Side,
        now: Nanos,
        account: bool,
    ) -> Verdict {
        let port = &self.ports[egress.index()];
        if view.is_link_control() {
            self.control_frames += 1;
            return Verdict {
                egress,
                class: port.control_class,
                fairness_hash: 0,
                host_hash: 0,
            };
        }
        let mut v = *view;
        self.fragments.resolve(&mut v, now);
        let key = FlowKey::of(&v);
        let flow_hash = key.hash64();
        let (slot, _) = self.flows.lookup_or_insert(&key, flow_hash, now);
        let mut first = self.flows.verdict(slot, egress.index());
        if first == NO_VERDICT {
            first = port.first_flow_match(&v);
            self.flows.set_verdict(slot, egress.index(), first);
        }
        let pos = self.per_frame[egress.index()]
            .iter()
            .take_while(|&&p| p < first)
            .find(|&&p| port.matches[usize::from(p)].rule.matches(&v))
            .copied()
            .unwrap_or(first);
        let class = port
            .matches
            .get(usize::from(pos))
            .map_or(port.default_class, |m| m.class);
        let from_lo = if v.is_ip() {
            (v.src_ip, if v.has_ports { v.src_port } else { 0 }) == (key.lo_addr, key.lo_port)
        } else {
            mac_u128(&v.src_mac) == key.lo_addr
        };
        if account {
            self.flows
                .account(slot, egress.index(), class, view.len, from_lo, now);
        }
        let (fairness_hash, host_hash) = match port.fairness.get(usize::from(class)) {
            Some(Fairness::Flow) => (flow_hash, 0),
            Some(Fairness::Host) => (lan_host_hash(&v, egress), 0),
            Some(Fairness::SrcHost) => (host_hash(address(&v, true)), 0),
            Some(Fairness::DstHost) => (host_hash(address(&v, false)), 0),
            Some(Fairness::Triple) => (flow_hash, lan_host_hash(&v, egress)),
            Some(Fairness::Fifo) | None => (0, 0),
        };
        Verdict {
            egress,
            class,
            fairness_hash,
            host_hash,
        }
    }
}

/// The LAN-side host of a frame: its source when going out on wan, its destination otherwise.
fn lan_host_hash(v: &FrameView, egress: Side) -> u64 {
    host_hash(address(v, egress == Side::Wan))
}

/// A frame's source (or destination) address: IP, else MAC.
fn address(v: &FrameView, source: bool) -> u128 {
    match (v.is_ip(), source) {
        (true, true) => v.src_ip,
        (true, false) => v.dst_ip,
        (false, true) => mac_u128(&v.src_mac),
        (false, false) => mac_u128(&v.dst_mac),
    }
}

#[cfg(test)]
mod tests;
