//! Per-class results, shared by `weir replay` and `weir run`: what each class received,
//! forwarded and dropped (by reason), and how long its frames waited; and one flow as both
//! show it (`FlowStatus`: `weir flows`, `weir replay --flows`).

use crate::classify::flow_table::FlowInfo;
use crate::port::Side;
use crate::sched::stats::{ClassStats, DropReason};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Per-class results of one port.
#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub port: &'static str,
    pub name: String,
    pub priority: Option<u8>,
    pub rate_bps: u64,
    pub ceil_bps: u64,
    pub received_frames: u64,
    pub received_bytes: u64,
    pub forwarded_frames: u64,
    pub forwarded_bytes: u64,
    /// Wire bytes (frame + overhead) of forwarded frames, times 8, over the replay span.
    pub avg_rate_bps: u64,
    pub dropped_frames: u64,
    pub dropped_bytes: u64,
    pub drops_by_reason: std::collections::BTreeMap<&'static str, u64>,
    pub queued_frames: u64,
    pub high_water_frames: u64,
    pub high_water_bytes: u64,
    pub borrowed_frames: u64,
    pub borrowed_bytes: u64,
    /// Frames the AQM marked CE instead of dropping.
    pub ecn_marked_frames: u64,
    /// Arrivals whose flow (host) found every queue of its set busy and shared one.
    pub flow_collisions: u64,
    pub host_collisions: u64,
    pub sojourn_us: SojournReport,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SojournReport {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub queued: u64,
}

impl Totals {
    /// Add one class's counters.
    pub fn add(&mut self, st: &ClassStats) {
        self.received += st.received_frames;
        self.forwarded += st.forwarded_frames;
        self.dropped += st.dropped_total_frames();
        self.queued += st.queued_frames;
    }

    /// `received = forwarded + dropped + queued`.
    pub fn is_conserved(&self) -> bool {
        self.received == self.forwarded + self.dropped + self.queued
    }
}

/// The name of the row holding the classes reloads removed.
pub const REMOVED: &str = "(removed)";

impl ClassReport {
    /// The summed counters of the classes that reloads removed from port `side`.
    pub fn removed(side: Side, st: &ClassStats, span_ns: u64) -> ClassReport {
        let spec = crate::sched::ClassSpec {
            name: REMOVED.into(),
            priority: 0,
            rate_bps: 0,
            ceil_bps: 0,
            burst_bytes: 0,
            cburst_bytes: 0,
            weight: 1,
            quantum_bytes: crate::sched::BASE_QUANTUM,
            limit_packets: 0,
            limit_bytes: 0,
            codel: None,
            ecn: false,
            fairness_buckets: 1,
            host_isolation: false,
            police: None,
        };
        ClassReport::from_parts(side, REMOVED, None, &spec, st, span_ns)
    }

    pub fn new(
        side: Side,
        plan: &crate::config::ClassPlan,
        spec: &crate::sched::ClassSpec,
        st: &ClassStats,
        span_ns: u64,
    ) -> ClassReport {
        ClassReport::from_parts(side, &plan.name, plan.user_priority, spec, st, span_ns)
    }

    fn from_parts(
        side: Side,
        name: &str,
        priority: Option<u8>,
        spec: &crate::sched::ClassSpec,
        st: &ClassStats,
        span_ns: u64,
    ) -> ClassReport {
        let us = |ns: u64| ns as f64 / 1000.0;
        let avg_rate_bps = if span_ns == 0 {
            0
        } else {
            u64::try_from(
                u128::from(st.forwarded_wire_bytes) * 8 * 1_000_000_000 / u128::from(span_ns),
            )
            .unwrap_or(u64::MAX)
        };
        ClassReport {
            port: side.name(),
            name: name.to_string(),
            priority,
            rate_bps: spec.rate_bps,
            ceil_bps: spec.ceil_bps,
            received_frames: st.received_frames,
            received_bytes: st.received_bytes,
            forwarded_frames: st.forwarded_frames,
            forwarded_bytes: st.forwarded_bytes,
            avg_rate_bps,
            dropped_frames: st.dropped_total_frames(),
            dropped_bytes: st.dropped_total_bytes(),
            drops_by_reason: DropReason::ALL
                .iter()
                .map(|r| (r.as_str(), st.dropped_frames[*r as usize]))
                .collect(),
            queued_frames: st.queued_frames,
            high_water_frames: st.high_water_frames,
            high_water_bytes: st.high_water_bytes,
            borrowed_frames: st.borrowed_frames,
            borrowed_bytes: st.borrowed_bytes,
            ecn_marked_frames: st.queue.ecn_marked,
            flow_collisions: st.queue.flow_collisions,
            host_collisions: st.queue.host_collisions,
            sojourn_us: SojournReport {
                p50: us(st.sojourn_quantile_ns(0.5)),
                p99: us(st.sojourn_quantile_ns(0.99)),
                p999: us(st.sojourn_quantile_ns(0.999)),
                max: us(st.sojourn_max_ns()),
            },
        }
    }
}

/// One flow, as `weir flows` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowStatus {
    /// `tcp`, `udp`, `icmp`, `ipv6-icmp`, a protocol number, or an ethertype for non-IP.
    pub proto: String,
    /// The endpoint that sent the first frame weir saw, and the other.
    pub src: String,
    pub dst: String,
    /// Its application: from its payload's protocol when weir read it (`app_source`
    /// `payload`), else the port table's name for its ports (`ports`), when one fits.
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_source: Option<String>,
    /// Class of its last frame leaving by wan (upload) and by lan (download).
    pub class_up: Option<String>,
    pub class_down: Option<String>,
    /// Frame bytes each way.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Both ways, over its last whole second.
    pub rate_bps: u64,
    pub age_s: f64,
    pub idle_s: f64,
    /// Its server name, read from its payload, and where from (`sni`, `http`, `dns`); only
    /// when weir keeps names (a rule reads them, or `weir replay --flows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_source: Option<String>,
    /// The first protocol its TLS or QUIC ClientHello offered by ALPN (`h2`, `h3`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The software of the first SSH identification string it carried (`OpenSSH_9.6p1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_software: Option<String>,
    /// Frames each way, and frames classified before its name was known; only when weir keeps
    /// names (else 0).
    #[serde(default)]
    pub frames_up: u64,
    #[serde(default)]
    pub frames_down: u64,
    #[serde(default)]
    pub frames_before_name: u64,
    /// Frames classified before its protocol was told from payload; only for a flow whose
    /// protocol was.
    #[serde(default)]
    pub frames_before_app: u64,
}

impl FlowStatus {
    /// `info` at `now` (the clock the flow table's times are on), with its classes named.
    pub fn new(info: &FlowInfo, class: &[Option<String>; 2], now: u64) -> FlowStatus {
        let k = &info.key;
        let is_ip = matches!(k.l3, crate::wire::L3::Ipv4 | crate::wire::L3::Ipv6);
        let endpoint = |addr: u128, port: u16| {
            if !is_ip {
                let b = addr.to_be_bytes();
                return format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    b[10], b[11], b[12], b[13], b[14], b[15]
                );
            }
            let ip = if k.l3 == crate::wire::L3::Ipv4 {
                IpAddr::from(std::net::Ipv4Addr::from(addr as u32))
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(addr))
            };
            match (ip, port) {
                (_, 0) => ip.to_string(),
                (IpAddr::V6(_), p) => format!("[{ip}]:{p}"),
                (IpAddr::V4(_), p) => format!("{ip}:{p}"),
            }
        };
        let lo = endpoint(k.lo_addr, k.lo_port);
        let hi = endpoint(k.hi_addr, k.hi_port);
        let (src, dst) = if info.lo_first { (lo, hi) } else { (hi, lo) };
        let proto = if !is_ip {
            format!("ether 0x{:04x}", k.ethertype)
        } else {
            match k.proto {
                6 => "tcp".into(),
                17 => "udp".into(),
                1 => "icmp".into(),
                58 => "ipv6-icmp".into(),
                132 => "sctp".into(),
                n => n.to_string(),
            }
        };
        let named =
            crate::classify::rule::app_table::app_of(k.proto, k.lo_port, k.hi_port, info.protocol);
        let app = named.map(|(a, _)| a.to_string());
        let app_source =
            named.map(|(_, payload)| if payload { "payload" } else { "ports" }.to_string());
        let secs = |ns: u64| ns as f64 / 1e9;
        // A flow's detail is its ALPN, or its SSH software when its payload showed SSH.
        let ssh = info.protocol == Some(crate::classify::payload::detect::Protocol::Ssh);
        FlowStatus {
            proto,
            src,
            dst,
            app,
            app_source,
            class_up: class[Side::Wan.index()].clone(),
            class_down: class[Side::Lan.index()].clone(),
            bytes_up: info.bytes[Side::Wan.index()],
            bytes_down: info.bytes[Side::Lan.index()],
            rate_bps: info.bytes_per_s * 8,
            age_s: secs(now.saturating_sub(info.first_seen)),
            idle_s: secs(now.saturating_sub(info.last_seen)),
            server_name: info.server.map(|(_, n)| n.as_str().to_string()),
            name_source: info.server.map(|(s, _)| s.as_str().to_string()),
            alpn: info.detail.filter(|_| !ssh).map(|a| a.as_str().to_string()),
            ssh_software: info.detail.filter(|_| ssh).map(|a| a.as_str().to_string()),
            frames_up: u64::from(info.frames[Side::Wan.index()]),
            frames_down: u64::from(info.frames[Side::Lan.index()]),
            // Meaningful only for a flow that got a name.
            frames_before_name: info
                .server
                .map_or(0, |_| u64::from(info.frames_before_name)),
            frames_before_app: info
                .protocol
                .map_or(0, |_| u64::from(info.frames_before_app)),
        }
    }
}
