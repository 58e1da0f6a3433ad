//! Per-class results, shared by `weir replay` and `weir run`: what each class received,
//! forwarded and dropped (by reason), and how long its frames waited.

use crate::port::Side;
use crate::sched::stats::{ClassStats, DropReason};
use serde::Serialize;

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
