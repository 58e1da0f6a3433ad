//! The same page for a running bridge (`weir report --live`): built from `weir status`
//! answers taken at a steady interval while the caller watches, and the busiest flows at the
//! end, into the [`ReportData`] a capture gives, drawn by the same renderer.
//!
//! What differs from a capture's report: each interval's delay is the bridge's own p50 and p99
//! over the last second when the status was taken (its forwarding threads keep those), and the
//! delay distribution is the one since the bridge started, from its p50, p99, p99.9 and
//! maximum; the applications, talkers and graph come from the flows the bridge lists (at most
//! [`super::Options::top_flows`] of the busiest), not from every frame.

use super::{graph, ClassSeries, DropSeries, Pair, ReportData, MAX_GROUPS};
use crate::control::protocol::{ClassSecond, ClassSeconds, FlowStatus, Status};
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

/// Watched status answers (oldest first) as one-second summaries per class, as the bridge's
/// own history gives them (`weir report --live SECONDS`).
pub fn seconds_of(samples: &[Status]) -> Vec<ClassSeconds> {
    let mut out: Vec<ClassSeconds> = Vec::new();
    let Some(last) = samples.last() else {
        return out;
    };
    for p in &last.ports {
        for c in &p.classes {
            out.push(ClassSeconds {
                port: p.port.clone(),
                name: c.name.clone(),
                seconds: Vec::new(),
            });
        }
    }
    let mut before: HashMap<(String, String), u64> = HashMap::new();
    for s in samples {
        for p in &s.ports {
            for c in &p.classes {
                let Some(cs) = out
                    .iter_mut()
                    .find(|x| x.port == p.port && x.name == c.name)
                else {
                    continue;
                };
                let k = (p.port.clone(), c.name.clone());
                let left = before
                    .insert(k, c.forwarded_frames)
                    .is_some_and(|b| c.forwarded_frames > b);
                cs.seconds.push(ClassSecond {
                    at_s: s.uptime_s,
                    received_bytes: c.received_bytes,
                    forwarded_bytes: c.forwarded_bytes,
                    forwarded_frames: c.forwarded_frames,
                    dropped: DropReason::ALL
                        .iter()
                        .map(|r| c.drops_by_reason.get(r.as_str()).copied().unwrap_or(0))
                        .collect(),
                    p50_us: left.then_some(c.sojourn_us.last_p50),
                    p99_us: left.then_some(c.sojourn_us.last_p99),
                });
            }
        }
    }
    out
}

/// The page's data from one-second summaries per class (the bridge's history, or
/// [`seconds_of`] a watch), the bridge's `status` at the end (the summary) and its busiest
/// `flows`. `is_lan` tells LAN addresses (from the bridge's config).
#[allow(clippy::too_many_arguments)]
pub fn build(
    status: &Status,
    seconds: &[ClassSeconds],
    flows: Vec<FlowStatus>,
    source: &str,
    config: Option<&str>,
    time_axis: &'static str,
    is_lan: impl Fn(u128, bool) -> bool,
    opts: &super::Options,
) -> ReportData {
    let last = Some(status);
    // The same number of seconds for every class: the last ones all have.
    let n = seconds
        .iter()
        .map(|c| c.seconds.len())
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0);
    let start = seconds
        .iter()
        .find(|c| c.seconds.len() >= n && n > 0)
        .map_or(0.0, |c| c.seconds[c.seconds.len() - n].at_s);
    let times: Vec<f64> = seconds
        .iter()
        .find(|c| n >= 2 && c.seconds.len() >= n)
        .map(|c| {
            c.seconds[c.seconds.len() - n..c.seconds.len() - 1]
                .iter()
                .map(|x| x.at_s - start)
                .collect()
        })
        .unwrap_or_default();
    let mut drops: Vec<DropSeries> = DropReason::ALL
        .iter()
        .map(|r| DropSeries {
            reason: r.as_str(),
            frames: vec![0; n.saturating_sub(1)],
        })
        .collect();
    let mut series: Vec<ClassSeries> = Vec::new();
    for c in seconds {
        let sum = status
            .ports
            .iter()
            .find(|p| p.port == c.port)
            .and_then(|p| p.classes.iter().find(|x| x.name == c.name));
        let mut s = ClassSeries::new(port_name(&c.port), c.name.clone());
        s.cdf = match sum {
            Some(x) if x.forwarded_frames > 0 => {
                let q = &x.sojourn_us;
                vec![
                    (0.0, 0.0),
                    (q.p50 / 1e3, 0.5),
                    (q.p99 / 1e3, 0.99),
                    (q.p999 / 1e3, 0.999),
                    (q.max / 1e3, 1.0),
                ]
            }
            _ => Vec::new(),
        };
        let kept = &c.seconds[c.seconds.len().saturating_sub(n)..];
        for (k, w) in kept.windows(2).enumerate() {
            let (a, b) = (&w[0], &w[1]);
            let secs = (b.at_s - a.at_s).max(1e-3);
            s.offered_bps
                .push(b.received_bytes.saturating_sub(a.received_bytes) as f64 * 8.0 / secs);
            s.forwarded_bps
                .push(b.forwarded_bytes.saturating_sub(a.forwarded_bytes) as f64 * 8.0 / secs);
            s.p50_ms.push(b.p50_us.map(|v| v / 1e3));
            s.p99_ms.push(b.p99_us.map(|v| v / 1e3));
            let mut total = 0;
            for (r, d) in drops.iter_mut().enumerate() {
                let x = b.dropped.get(r).copied().unwrap_or(0);
                let y = a.dropped.get(r).copied().unwrap_or(0);
                d.frames[k] += x.saturating_sub(y);
                total += x.saturating_sub(y);
            }
            s.dropped.push(total);
        }
        if kept.len() >= 2 {
            series.push(s);
        } else {
            // A class without history (no traffic yet): zeros, to keep its place.
            let m = n.saturating_sub(1);
            s.offered_bps = vec![0.0; m];
            s.forwarded_bps = vec![0.0; m];
            s.p50_ms = vec![None; m];
            s.p99_ms = vec![None; m];
            s.dropped = vec![0; m];
            series.push(s);
        }
    }
    let interval_s = 1.0;
    let span = times.last().map_or(0.0, |t| t + interval_s);
    // The summary, as replay's report would have it: the bridge's counters since it started.
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
        complete: true,
        damage: None,
    };
    // Applications, pairs of hosts and the graph, from the flows listed.
    let mut groups: Vec<String> = Vec::new();
    let mut pairs: HashMap<(u128, u128, bool), Pair> = HashMap::new();
    for f in &flows {
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
    let apps = super::apps_of(flows.iter());
    let hosts = super::hosts_of(&pairs, opts.top_hosts, &is_lan);
    let graph = graph::build(&pairs, opts.max_hosts, &is_lan);
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
        time_axis,
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
