//! The same page for a running bridge (`weir report --live`): built from `weir status`
//! answers taken at a steady interval while the caller watches, and the busiest flows at the
//! end, into the [`ReportData`] a capture gives, drawn by the same renderer.
//!
//! What differs from a capture's report: each interval's delay is the bridge's own p50 and p99
//! over the last second when the status was taken (its forwarding threads keep those), and the
//! delay distribution is the one since the bridge started, from its p50, p99, p99.9 and
//! maximum; the applications, talkers and graph come from the flows the bridge lists (at most
//! [`super::Options::top_flows`] of the busiest), not from every frame.

use super::{graph, AppRow, ClassSeries, DropSeries, Pair, ReportData, MAX_GROUPS};
use crate::control::protocol::{FlowStatus, Status};
use crate::pipeline::report::{ClassReport, SojournReport, Totals};
use crate::replay::{DirectionCounts, FlowLine, FlowTableReport, NamesReport, ReplayReport};
use crate::sched::stats::DropReason;
use std::collections::HashMap;
use std::net::IpAddr;

fn port_name(p: &str) -> &'static str {
    if p == "lan" {
        "lan"
    } else {
        "wan"
    }
}

/// An endpoint as `weir flows` prints it (`198.18.0.1:443`, `[2001:db8::1]:53`, an address
/// alone) to its address.
fn address_of(endpoint: &str) -> Option<IpAddr> {
    if let Ok(a) = endpoint.parse::<IpAddr>() {
        return Some(a);
    }
    if let Some(rest) = endpoint.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    endpoint.rsplit_once(':')?.0.parse().ok()
}

fn key(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

/// The page's data from `samples` (status answers, oldest first, `interval_s` apart) and the
/// busiest `flows` at the end. `is_lan` tells LAN addresses (from the bridge's config).
pub fn build(
    samples: &[Status],
    flows: Vec<FlowStatus>,
    interval_s: f64,
    source: &str,
    config: Option<&str>,
    is_lan: impl Fn(u128, bool) -> bool,
    opts: &super::Options,
) -> ReportData {
    let last = samples.last();
    // Series per (port, class) of the last answer, in its order.
    let mut series: Vec<ClassSeries> = Vec::new();
    let mut drops: Vec<DropSeries> = DropReason::ALL
        .iter()
        .map(|r| DropSeries {
            reason: r.as_str(),
            frames: Vec::new(),
        })
        .collect();
    let mut times = Vec::new();
    let find = |s: &Status, port: &str, name: &str| {
        s.ports
            .iter()
            .find(|p| p.port == port)
            .and_then(|p| p.classes.iter().find(|c| c.name == name))
            .cloned()
    };
    if let Some(last) = last {
        for p in &last.ports {
            for c in &p.classes {
                series.push(ClassSeries {
                    port: port_name(&p.port),
                    name: c.name.clone(),
                    offered_bps: Vec::new(),
                    forwarded_bps: Vec::new(),
                    p50_ms: Vec::new(),
                    p99_ms: Vec::new(),
                    dropped: Vec::new(),
                    cdf: {
                        let s = &c.sojourn_us;
                        if c.forwarded_frames == 0 {
                            Vec::new()
                        } else {
                            vec![
                                (0.0, 0.0),
                                (s.p50 / 1e3, 0.5),
                                (s.p99 / 1e3, 0.99),
                                (s.p999 / 1e3, 0.999),
                                (s.max / 1e3, 1.0),
                            ]
                        }
                    },
                });
            }
        }
    }
    for (k, pair) in samples.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        times.push(k as f64 * interval_s);
        let secs = (b.uptime_s - a.uptime_s).max(1e-3);
        let mut by_reason = vec![0u64; DropReason::COUNT];
        for s in &mut series {
            let (x, y) = (find(a, s.port, &s.name), find(b, s.port, &s.name));
            let (Some(x), Some(y)) = (x, y) else {
                s.offered_bps.push(0.0);
                s.forwarded_bps.push(0.0);
                s.p50_ms.push(None);
                s.p99_ms.push(None);
                s.dropped.push(0);
                continue;
            };
            s.offered_bps
                .push(y.received_bytes.saturating_sub(x.received_bytes) as f64 * 8.0 / secs);
            s.forwarded_bps
                .push(y.forwarded_bytes.saturating_sub(x.forwarded_bytes) as f64 * 8.0 / secs);
            let left = y.forwarded_frames > x.forwarded_frames;
            s.p50_ms.push(left.then(|| y.sojourn_us.last_p50 / 1e3));
            s.p99_ms.push(left.then(|| y.sojourn_us.last_p99 / 1e3));
            s.dropped
                .push(y.dropped_frames.saturating_sub(x.dropped_frames));
            for (i, r) in DropReason::ALL.iter().enumerate() {
                let n = |c: &crate::control::protocol::ClassStatus| {
                    c.drops_by_reason.get(r.as_str()).copied().unwrap_or(0)
                };
                by_reason[i] += n(&y).saturating_sub(n(&x));
            }
        }
        for (d, n) in drops.iter_mut().zip(by_reason) {
            d.frames.push(n);
        }
    }
    // The summary, as replay's report would have it, over the watched span.
    let span = match (samples.first(), last) {
        (Some(a), Some(b)) => b.uptime_s - a.uptime_s,
        _ => 0.0,
    };
    let mut classes = Vec::new();
    let mut totals = Totals::default();
    let mut arrived = [0u64; 2];
    if let Some(last) = last {
        for p in &last.ports {
            arrived[usize::from(p.port == "wan")] = p.arrived_frames;
            for c in &p.classes {
                totals.received += c.received_frames;
                totals.forwarded += c.forwarded_frames;
                totals.dropped += c.dropped_frames;
                totals.queued += c.queued_frames;
                classes.push(ClassReport {
                    port: port_name(&p.port),
                    name: c.name.clone(),
                    priority: c.priority,
                    rate_bps: c.rate_bps,
                    ceil_bps: c.ceil_bps,
                    received_frames: c.received_frames,
                    received_bytes: c.received_bytes,
                    forwarded_frames: c.forwarded_frames,
                    forwarded_bytes: c.forwarded_bytes,
                    avg_rate_bps: c.rate_10s_bps,
                    dropped_frames: c.dropped_frames,
                    dropped_bytes: c.dropped_bytes,
                    drops_by_reason: DropReason::ALL
                        .iter()
                        .map(|r| {
                            (
                                r.as_str(),
                                c.drops_by_reason.get(r.as_str()).copied().unwrap_or(0),
                            )
                        })
                        .filter(|&(_, n)| n > 0)
                        .collect(),
                    queued_frames: c.queued_frames,
                    high_water_frames: 0,
                    high_water_bytes: 0,
                    borrowed_frames: c.borrowed_frames,
                    borrowed_bytes: c.borrowed_bytes,
                    ecn_marked_frames: c.ecn_marked_frames,
                    flow_collisions: c.flow_collisions,
                    host_collisions: c.host_collisions,
                    sojourn_us: SojournReport {
                        p50: c.sojourn_us.p50,
                        p99: c.sojourn_us.p99,
                        p999: c.sojourn_us.p999,
                        max: c.sojourn_us.max,
                    },
                });
            }
        }
    }
    let ft = last.map(|s| s.flow_table);
    let replay = ReplayReport {
        frames_read: arrived[0] + arrived[1],
        span_s: span,
        timestamps_reordered: 0,
        totals,
        classes,
        directions: DirectionCounts {
            upload: arrived[0],
            download: arrived[1],
            guessed: 0,
        },
        flow_table: FlowTableReport {
            hits: ft.as_ref().map_or(0, |f| f.hits),
            misses: ft.as_ref().map_or(0, |f| f.misses),
            evicted: ft.as_ref().map_or(0, |f| f.evicted),
            expired: ft.as_ref().map_or(0, |f| f.expired),
            fragments_matched: 0,
            fragments_unmatched: 0,
            control_frames: 0,
        },
        gso_split: last.map(|s| s.gso_split).unwrap_or_default(),
        names: NamesReport::default(),
        budgets: Vec::new(),
    };
    // Applications, pairs of hosts and the graph, from the flows listed.
    let mut groups: Vec<String> = Vec::new();
    let mut pairs: HashMap<(u128, u128, bool), Pair> = HashMap::new();
    let mut apps: HashMap<String, AppRow> = HashMap::new();
    for f in &flows {
        let name = f.app.clone().unwrap_or_else(|| "unknown".into());
        let row = apps.entry(name.clone()).or_insert(AppRow {
            app: name,
            flows: 0,
            frames: 0,
            bytes: 0,
        });
        row.flows += 1;
        row.frames += f.frames_up + f.frames_down;
        row.bytes += f.bytes_up + f.bytes_down;
        let (Some(a), Some(b)) = (address_of(&f.src), address_of(&f.dst)) else {
            continue;
        };
        let ((a, v6), (b, _)) = (key(a), key(b));
        let class = f.class_up.clone().or_else(|| f.class_down.clone());
        let group = match class {
            Some(c) => match groups.iter().position(|g| *g == c) {
                Some(i) => i,
                None if groups.len() < MAX_GROUPS => {
                    groups.push(c);
                    groups.len() - 1
                }
                None => MAX_GROUPS,
            },
            None => MAX_GROUPS,
        };
        let bytes = f.bytes_up + f.bytes_down;
        // `bytes_up` left by wan: they came from the LAN side.
        let from_a = if is_lan(a, v6) {
            f.bytes_up
        } else {
            f.bytes_down
        };
        let p = pairs.entry((a.min(b), a.max(b), v6)).or_default();
        p.bytes += bytes;
        p.up += if a <= b { from_a } else { bytes - from_a };
        p.groups[group] += bytes;
    }
    let mut apps: Vec<AppRow> = apps.into_values().collect();
    apps.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.app.cmp(&b.app)));
    let hosts = super::hosts_of(&pairs, opts.top_hosts, &is_lan);
    let graph = graph::build(&pairs, opts.max_hosts, &is_lan, &groups);
    let mut listed: Vec<FlowLine> = flows
        .into_iter()
        .map(|f| FlowLine {
            first_ts: -f.age_s,
            last_ts: -f.idle_s,
            flow: f,
        })
        .collect();
    listed.truncate(opts.top_flows);
    ReportData {
        capture: source.to_string(),
        config: config.map(str::to_string),
        shaped: true,
        start_ns: 0,
        interval_s,
        times,
        time_axis: "seconds since the watch began",
        series,
        drops,
        flows_held: ft.as_ref().map_or(0, |f| f.occupied),
        flows_evicted: ft.as_ref().map_or(0, |f| f.evicted),
        replay,
        apps,
        hosts,
        flows: listed,
        pairs: pairs.len() as u64,
        pairs_overflow_bytes: 0,
        groups_by: "class",
        groups,
        graph,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_addresses() {
        assert_eq!(
            address_of("198.18.0.1:443"),
            Some("198.18.0.1".parse().unwrap())
        );
        assert_eq!(
            address_of("[2001:db8::1]:53"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            address_of("2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(address_of("02:00:00:00:00:01"), None);
    }
}
