//! `weir report`: what a capture offered and what a policy let through, as the data of one
//! self-contained HTML page ([`html::render`]).
//!
//! A [`Recorder`] feeds the capture to a [`Replay`] (the same path as `weir replay`) and, at
//! every interval boundary of capture time, samples each class's counters: bytes received
//! (offered) and forwarded, drops by reason, and the queueing delay of the frames that left in
//! the interval (the difference of the class's cumulative histogram). Departures due before a
//! boundary are sent before it is sampled, so each interval holds exactly its own. After the
//! last frame, sampling goes on while frames are still queued. Every frame's addresses are
//! also counted per pair of hosts (for the top talkers and the conversation graph), with the
//! class (or, without a config, the application) that carried most of the pair's bytes.
//!
//! Bounds: at most [`MAX_INTERVALS`] intervals (the caller picks the interval from the
//! capture's span), [`MAX_PAIRS`] host pairs (the bytes of later pairs go to one `other` row,
//! counted), the [`Options::top_flows`] largest flows of those the flow table still holds at the
//! end (a flow pushed out of a full table is missing from the flow table's list: the report says
//! how many were), the graph's [`Options::max_hosts`] busiest hosts (the rest as one node).

pub mod graph;
pub mod html;
pub mod live;

use crate::config::Plan;
use crate::port::Side;
use crate::replay::{FlowLine, Replay, ReplayOptions, ReplayReport};
use crate::sched::stats::DropReason;
use crate::time::Nanos;
use crate::wire::{self, L3};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Intervals at most on the time axis.
pub const MAX_INTERVALS: usize = 2000;
/// Host pairs counted apart at most.
pub const MAX_PAIRS: usize = 200_000;
/// Groups (classes or applications) that get a colour of their own; the rest are `other`.
pub const MAX_GROUPS: usize = 10;

#[derive(Clone, Debug)]
pub struct Options {
    /// Interval of the time series, in nanoseconds of capture time.
    pub interval_ns: Nanos,
    /// Flows listed, the largest first.
    pub top_flows: usize,
    /// Hosts drawn in the graph, the busiest first; the others are one node.
    pub max_hosts: usize,
    /// Hosts listed among the top talkers.
    pub top_hosts: usize,
}

impl Options {
    /// About 300 intervals over `span_ns`, rounded to 1, 2 or 5 times a power of ten of
    /// milliseconds (at least 1 ms).
    pub fn for_span(span_ns: Nanos) -> Options {
        let target = (span_ns / 300).max(1_000_000);
        let mut step = 1_000_000u64;
        'outer: loop {
            for m in [1, 2, 5] {
                if step.saturating_mul(m) >= target {
                    step = step.saturating_mul(m);
                    break 'outer;
                }
            }
            step = step.saturating_mul(10);
        }
        Options {
            interval_ns: step,
            top_flows: 500,
            max_hosts: 120,
            top_hosts: 200,
        }
    }
}

/// One class on one port, over time.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSeries {
    pub port: &'static str,
    pub name: String,
    /// Bits per second, per interval: of the frames that arrived (offered) and that left.
    pub offered_bps: Vec<f64>,
    pub forwarded_bps: Vec<f64>,
    /// Queueing delay of the frames that left in each interval, in milliseconds (`None`: none
    /// left).
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Frames dropped in each interval, any reason.
    pub dropped: Vec<u64>,
    /// The distribution of the queueing delay over the whole capture: `(ms, fraction of
    /// frames at or below)`.
    pub cdf: Vec<(f64, f64)>,
}

impl ClassSeries {
    /// No interval yet.
    pub fn new(port: &'static str, name: String) -> ClassSeries {
        ClassSeries {
            port,
            name,
            offered_bps: Vec::new(),
            forwarded_bps: Vec::new(),
            p50_ms: Vec::new(),
            p99_ms: Vec::new(),
            dropped: Vec::new(),
            cdf: Vec::new(),
        }
    }
}

/// Frames dropped per interval for one reason, all classes together.
#[derive(Clone, Debug, Serialize)]
pub struct DropSeries {
    pub reason: &'static str,
    pub frames: Vec<u64>,
}

/// An application (told from payload, else the port table's name, else `unknown`) over the
/// flows the flow table held at the end.
#[derive(Clone, Debug, Serialize)]
pub struct AppRow {
    pub app: String,
    pub flows: u64,
    pub frames: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostRow {
    pub host: String,
    pub sent: u64,
    pub received: u64,
    pub peers: u64,
    /// Inside `lan_networks`.
    pub lan: bool,
}

/// Everything the page shows.
#[derive(Debug, Serialize)]
pub struct ReportData {
    pub capture: String,
    pub config: Option<String>,
    /// A config shaped the traffic (else the capture alone is shown).
    pub shaped: bool,
    /// Capture time of the first frame (ns since the epoch) and the interval in seconds.
    pub start_ns: u64,
    pub interval_s: f64,
    /// Seconds since the first frame (or the watch began), at the start of each interval,
    /// and what the time axis says.
    pub times: Vec<f64>,
    pub time_axis: &'static str,
    pub series: Vec<ClassSeries>,
    pub drops: Vec<DropSeries>,
    pub replay: ReplayReport,
    pub apps: Vec<AppRow>,
    pub hosts: Vec<HostRow>,
    pub flows: Vec<FlowLine>,
    /// Flows the table held at the end, and flows it pushed out before (not listed).
    pub flows_held: u64,
    pub flows_evicted: u64,
    /// Host pairs counted apart, and bytes of the pairs beyond [`MAX_PAIRS`].
    pub pairs: u64,
    pub pairs_overflow_bytes: u64,
    /// The groups edges and nodes are coloured by: class names, or applications.
    pub groups_by: &'static str,
    pub groups: Vec<String>,
    pub graph: graph::Graph,
}

/// Counters of one class at the last boundary.
struct Sample {
    received: u64,
    forwarded: u64,
    dropped: [u64; DropReason::COUNT],
    sojourn: Histogram<u64>,
}

#[derive(Default)]
struct Pair {
    bytes: u64,
    /// Bytes from the lower address to the higher, and back.
    up: u64,
    groups: [u64; MAX_GROUPS + 1],
}

/// Feeds a capture through the policy and gathers what the page shows.
pub struct Recorder<'p> {
    replay: Replay<'p>,
    plan: &'p Arc<Plan>,
    shaped: bool,
    opts: Options,
    start: Option<Nanos>,
    next: Nanos,
    /// Per (port, class), in the order of `series`.
    index: Vec<(Side, u16)>,
    prev: Vec<Sample>,
    series: Vec<ClassSeries>,
    drops: Vec<DropSeries>,
    times: Vec<f64>,
    /// Key: (lower address, higher address, IPv6).
    pairs: HashMap<(u128, u128, bool), Pair>,
    pairs_overflow_bytes: u64,
    groups: Vec<String>,
}

impl<'p> Recorder<'p> {
    /// `shaped`: `plan` is the user's config (else a pass-through one, for the capture alone).
    pub fn new(plan: &'p Arc<Plan>, shaped: bool, opts: Options) -> Recorder<'p> {
        let replay_opts = ReplayOptions {
            flows: true,
            ..ReplayOptions::default()
        };
        let mut index = Vec::new();
        let mut series = Vec::new();
        for side in [Side::Wan, Side::Lan] {
            for (i, c) in plan.ports[side.index()].classes.iter().enumerate() {
                index.push((side, i as u16));
                series.push(ClassSeries::new(side.name(), c.name.clone()));
            }
        }
        let drops = DropReason::ALL
            .iter()
            .map(|r| DropSeries {
                reason: r.as_str(),
                frames: Vec::new(),
            })
            .collect();
        Recorder {
            replay: Replay::new(plan, &replay_opts, false),
            plan,
            shaped,
            opts,
            start: None,
            next: 0,
            index,
            prev: Vec::new(),
            series,
            drops,
            times: Vec::new(),
            pairs: HashMap::new(),
            pairs_overflow_bytes: 0,
            groups: Vec::new(),
        }
    }

    /// The counters of every class now.
    fn samples(&self) -> Vec<Sample> {
        let p = self.replay.pipeline();
        self.index
            .iter()
            .map(|&(side, id)| {
                let st = p.and_then(|p| p.port(side).class_stats(id));
                Sample {
                    received: st.map_or(0, |s| s.received_bytes),
                    forwarded: st.map_or(0, |s| s.forwarded_bytes),
                    dropped: st.map_or([0; DropReason::COUNT], |s| s.dropped_frames),
                    sojourn: st.map_or_else(empty_histogram, |s| s.sojourn_ns.clone()),
                }
            })
            .collect()
    }

    /// Close the interval that ends at `self.next`.
    fn sample(&mut self) {
        let now = self.samples();
        let secs = self.opts.interval_ns as f64 / 1e9;
        let mut drops = [0u64; DropReason::COUNT];
        for (k, (cur, prev)) in now.iter().zip(&self.prev).enumerate() {
            let s = &mut self.series[k];
            s.offered_bps
                .push((cur.received - prev.received) as f64 * 8.0 / secs);
            s.forwarded_bps
                .push((cur.forwarded - prev.forwarded) as f64 * 8.0 / secs);
            let mut dropped = 0;
            for (r, d) in drops.iter_mut().enumerate() {
                let n = cur.dropped[r] - prev.dropped[r];
                *d += n;
                dropped += n;
            }
            s.dropped.push(dropped);
            let mut h = cur.sojourn.clone();
            let left = h.subtract(&prev.sojourn).is_ok() && !h.is_empty();
            // Milliseconds to the microsecond.
            let q = |q: f64| left.then(|| (h.value_at_quantile(q) as f64 / 1e3).round() / 1e3);
            s.p50_ms.push(q(0.5));
            s.p99_ms.push(q(0.99));
        }
        for (series, n) in self.drops.iter_mut().zip(drops) {
            series.frames.push(n);
        }
        let start = self.start.unwrap_or(0);
        self.times
            .push((self.next - self.opts.interval_ns - start) as f64 / 1e9);
        self.prev = now;
        self.next = self.next.saturating_add(self.opts.interval_ns);
    }

    /// One frame of the capture.
    pub fn push(&mut self, ts: Nanos, data: &[u8], orig_len: u32) {
        if self.start.is_none() {
            self.start = Some(ts);
            self.next = ts.saturating_add(self.opts.interval_ns);
            self.prev = self.index.iter().map(|_| zero_sample()).collect();
        }
        while ts >= self.next && self.times.len() < MAX_INTERVALS {
            let next = self.next;
            self.replay.advance_to(next, &mut |_, _, _| {});
            self.sample();
        }
        self.replay.push(ts, data, orig_len, &mut |_, _, _| {});
        self.count_pair(data, orig_len);
    }

    fn group_of(&mut self, name: &str) -> usize {
        if let Some(i) = self.groups.iter().position(|g| g == name) {
            return i;
        }
        if self.groups.len() < MAX_GROUPS {
            self.groups.push(name.to_string());
            return self.groups.len() - 1;
        }
        MAX_GROUPS
    }

    fn count_pair(&mut self, data: &[u8], orig_len: u32) {
        let v = wire::parse(data);
        if !v.is_ip() {
            return;
        }
        let bytes = u64::from(orig_len.max(data.len() as u32));
        let group = if self.shaped {
            let name = self.replay.last_verdict().and_then(|lv| {
                self.plan.ports[lv.egress.index()]
                    .classes
                    .get(usize::from(lv.class))
                    .map(|c| c.name.clone())
            });
            name.map_or(MAX_GROUPS, |n| self.group_of(&n))
        } else {
            let app = self.replay.flow_label(&v).0;
            match app {
                Some(p) => self.group_of(p.as_str()),
                None => self.group_of("unknown"),
            }
        };
        let v6 = v.l3 == L3::Ipv6;
        let (a, b) = (v.src_ip.min(v.dst_ip), v.src_ip.max(v.dst_ip));
        let len = self.pairs.len();
        let pair = match self.pairs.get_mut(&(a, b, v6)) {
            Some(p) => p,
            None if len < MAX_PAIRS => self.pairs.entry((a, b, v6)).or_default(),
            None => {
                self.pairs_overflow_bytes += bytes;
                return;
            }
        };
        pair.bytes += bytes;
        if v.src_ip == a {
            pair.up += bytes;
        }
        pair.groups[group] += bytes;
    }

    /// Send what is still queued (sampling on while it leaves), and gather the page's data.
    pub fn finish(mut self, capture: &str, config: Option<&str>) -> ReportData {
        if self.start.is_some() {
            // The interval holding the last frame, then those in which the queues drain.
            loop {
                let next = self.next;
                self.replay.advance_to(next, &mut |_, _, _| {});
                self.sample();
                let queued = self.replay.pipeline().map_or(0, |p| p.queued_frames());
                if queued == 0 || self.times.len() >= MAX_INTERVALS {
                    break;
                }
            }
        }
        let flows = self.replay.flows();
        // Nothing is queued by now: the counters are final.
        let final_samples = self.samples();
        for (s, cur) in self.series.iter_mut().zip(&final_samples) {
            s.cdf = cdf(&cur.sojourn);
        }
        let hosts = self.hosts();
        let replay = self.replay.finish(&mut |_, _, _| {});
        let (apps, top) = apps_and_top_flows(flows.clone(), self.opts.top_flows);
        let graph = graph::build(&self.pairs, self.opts.max_hosts, |addr, v6| {
            self.plan.is_lan_address(addr, v6)
        });
        ReportData {
            capture: capture.to_string(),
            config: config.map(str::to_string),
            shaped: self.shaped,
            start_ns: self.start.unwrap_or(0),
            interval_s: self.opts.interval_ns as f64 / 1e9,
            times: self.times,
            time_axis: "seconds since the first frame",
            series: self.series,
            drops: self.drops,
            flows_held: flows.len() as u64,
            flows_evicted: replay.flow_table.evicted,
            replay,
            apps,
            hosts,
            flows: top,
            pairs: self.pairs.len() as u64,
            pairs_overflow_bytes: self.pairs_overflow_bytes,
            groups_by: if self.shaped { "class" } else { "application" },
            groups: self.groups,
            graph,
        }
    }

    fn hosts(&self) -> Vec<HostRow> {
        hosts_of(&self.pairs, self.opts.top_hosts, &|a, v6| {
            self.plan.is_lan_address(a, v6)
        })
    }
}

/// The `top` busiest hosts of `pairs`: bytes sent and received, distinct peers.
fn hosts_of(
    pairs: &HashMap<(u128, u128, bool), Pair>,
    top: usize,
    is_lan: &dyn Fn(u128, bool) -> bool,
) -> Vec<HostRow> {
    {
        let mut by: HashMap<(u128, bool), (u64, u64, u64)> = HashMap::new();
        for (&(a, b, v6), p) in pairs {
            let down = p.bytes - p.up;
            let ea = by.entry((a, v6)).or_default();
            (ea.0, ea.1, ea.2) = (ea.0 + p.up, ea.1 + down, ea.2 + 1);
            let eb = by.entry((b, v6)).or_default();
            (eb.0, eb.1, eb.2) = (eb.0 + down, eb.1 + p.up, eb.2 + 1);
        }
        let mut rows: Vec<HostRow> = by
            .into_iter()
            .map(|((addr, v6), (sent, received, peers))| HostRow {
                host: graph::address(addr, v6),
                sent,
                received,
                peers,
                lan: is_lan(addr, v6),
            })
            .collect();
        rows.sort_by(|x, y| {
            (y.sent + y.received)
                .cmp(&(x.sent + x.received))
                .then(x.host.cmp(&y.host))
        });
        rows.truncate(top);
        rows
    }
}

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, crate::sched::stats::SOJOURN_MAX_NS, 2)
        .unwrap_or_else(|_| Histogram::new(2).expect("a histogram of 2 significant digits"))
}

fn zero_sample() -> Sample {
    Sample {
        received: 0,
        forwarded: 0,
        dropped: [0; DropReason::COUNT],
        sojourn: empty_histogram(),
    }
}

/// The distribution of a delay histogram: about 100 points, `(ms, fraction at or below)`.
fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(f64, f64)> = (0..=100)
        .map(|i| {
            let q = f64::from(i) / 100.0;
            ((h.value_at_quantile(q) as f64 / 1e3).round() / 1e3, q)
        })
        .collect();
    out.dedup_by(|b, a| {
        a.0 == b.0 && {
            a.1 = a.1.max(b.1);
            true
        }
    });
    out
}

/// Applications over `flows`, largest first.
fn apps_of<'a>(
    flows: impl Iterator<Item = &'a crate::pipeline::report::FlowStatus>,
) -> Vec<AppRow> {
    let mut apps: HashMap<String, AppRow> = HashMap::new();
    for f in flows {
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
    }
    let mut apps: Vec<AppRow> = apps.into_values().collect();
    apps.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.app.cmp(&b.app)));
    apps
}

/// Applications over the flows held at the end, largest first; and the `top` largest flows.
fn apps_and_top_flows(mut flows: Vec<FlowLine>, top: usize) -> (Vec<AppRow>, Vec<FlowLine>) {
    let apps = apps_of(flows.iter().map(|f| &f.flow));
    flows.sort_by(|a, b| {
        (b.flow.bytes_up + b.flow.bytes_down).cmp(&(a.flow.bytes_up + a.flow.bytes_down))
    });
    flows.truncate(top);
    (apps, flows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_round_and_about_300_to_a_span() {
        assert_eq!(Options::for_span(0).interval_ns, 1_000_000);
        assert_eq!(Options::for_span(3_000_000_000).interval_ns, 10_000_000);
        assert_eq!(Options::for_span(60_000_000_000).interval_ns, 200_000_000);
        assert_eq!(
            Options::for_span(3_600_000_000_000).interval_ns,
            20_000_000_000
        );
    }
}
