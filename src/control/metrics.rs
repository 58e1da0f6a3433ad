//! Prometheus metrics at `/metrics` (`weir run --metrics ADDR:PORT`), in the Prometheus text
//! format, written by the `prometheus-client` crate from the same snapshots as `weir status`
//! (docs/operations.md lists them).
//!
//! Each scrape encodes what the forwarding threads last published (at most 100 ms old); it
//! reads the snapshots under their locks for a copy, on the metrics thread, never on a
//! forwarding thread. The sojourn histogram's buckets are read off weir's own histogram (two
//! significant digits, so a bucket boundary is exact to 1%); its sum is exact.

use super::protocol::Status;
use super::Control;
use crate::port::Side;
use crate::sched::stats::{ClassStats, DropReason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the sojourn histogram's buckets, in seconds.
pub const SOJOURN_BUCKETS_S: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One class's sojourn histogram, for the exposition.
struct Sojourn {
    port: &'static str,
    class: String,
    sum_s: f64,
    count: u64,
    /// (upper bound in seconds, frames between it and the bound before), +Inf last.
    buckets: Vec<(f64, u64)>,
}

fn sojourn(port: &'static str, class: String, st: &ClassStats) -> Sojourn {
    let h = &st.sojourn_ns;
    let count = h.len();
    // The encoder sums the buckets up itself: each is given what falls between its bound and
    // the one before.
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = SOJOURN_BUCKETS_S
        .iter()
        .map(|&b| {
            let upto = if count == 0 {
                0
            } else {
                h.count_between(0, (b * 1e9) as u64)
            };
            let n = upto.saturating_sub(below);
            below = below.max(upto);
            (b, n)
        })
        .collect();
    buckets.push((f64::INFINITY, count.saturating_sub(below)));
    Sojourn {
        port,
        class,
        sum_s: st.sojourn_sum_ns as f64 / 1e9,
        count,
        buckets,
    }
}

/// What one scrape encodes: the status, and the sojourn histograms.
struct Scrape {
    status: Status,
    sojourn: Vec<Sojourn>,
}

fn scrape(control: &Control) -> Scrape {
    let monitor = control.monitor();
    let status = monitor.status(false);
    let plan = Arc::clone(monitor.plan());
    let shared = Arc::clone(monitor.published());
    let generation = monitor.config().generation;
    drop(monitor);
    let mut histograms = Vec::new();
    for side in [Side::Wan, Side::Lan] {
        let snap = shared.port(side);
        if snap.generation != generation {
            continue;
        }
        for (c, st) in plan.ports[side.index()].classes.iter().zip(&snap.classes) {
            histograms.push(sojourn(side.name(), c.name.clone(), st));
        }
    }
    Scrape {
        status,
        sojourn: histograms,
    }
}

struct WeirCollector {
    control: Arc<Control>,
}

impl std::fmt::Debug for WeirCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeirCollector")
    }
}

/// A value with labels, for one line of a family.
struct Point {
    labels: Vec<(&'static str, String)>,
    value: f64,
}

fn point(labels: Vec<(&'static str, String)>, value: f64) -> Point {
    Point { labels, value }
}

/// Encode one family: `name`, its help, its type, and its points.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    points: Vec<Point>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for p in points {
        let mut f = m.encode_family(&p.labels)?;
        match kind {
            MetricType::Counter => {
                f.encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&p.value, None)?
            }
            _ => f.encode_gauge(&p.value)?,
        }
    }
    Ok(())
}

impl Collector for WeirCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = scrape(&self.control);
        let st = &s.status;
        let class_labels = |port: &str, class: &str| {
            vec![("port", port.to_string()), ("class", class.to_string())]
        };
        type Pick = fn(&super::protocol::ClassStatus) -> f64;
        let per_class: [(&str, &str, MetricType, Pick); 18] = [
            ("class_dropped_bytes", "Frame bytes the class dropped, any reason.", MetricType::Counter, |c| c.dropped_bytes as f64),
            ("class_received_frames", "Frames classified into the class (a cut GSO super-frame counts as its segments).", MetricType::Counter, |c| c.received_frames as f64),
            ("class_received_bytes", "Frame bytes classified into the class.", MetricType::Counter, |c| c.received_bytes as f64),
            ("class_forwarded_frames", "Frames the class sent.", MetricType::Counter, |c| c.forwarded_frames as f64),
            ("class_forwarded_bytes", "Frame bytes the class sent (without the per-frame overhead).", MetricType::Counter, |c| c.forwarded_bytes as f64),
            ("class_borrowed_frames", "Frames sent above the class's rate, on capacity borrowed up to its ceil.", MetricType::Counter, |c| c.borrowed_frames as f64),
            ("class_borrowed_bytes", "Frame bytes sent above the class's rate.", MetricType::Counter, |c| c.borrowed_bytes as f64),
            ("class_ecn_marked_frames", "Frames the AQM marked Congestion Experienced instead of dropping.", MetricType::Counter, |c| c.ecn_marked_frames as f64),
            ("class_flow_collisions", "Arrivals whose flow found every queue of its set busy with other flows, and shared one.", MetricType::Counter, |c| c.flow_collisions as f64),
            ("class_host_collisions", "Arrivals whose host found every host slot of its set busy (host isolation).", MetricType::Counter, |c| c.host_collisions as f64),
            ("class_queued_frames", "Frames waiting in the class's queue now.", MetricType::Gauge, |c| c.queued_frames as f64),
            ("class_queued_bytes", "Frame bytes waiting in the class's queue now.", MetricType::Gauge, |c| c.queued_bytes as f64),
            ("class_rate_bits_per_second", "Wire bits (frames and overhead) the class sent per second, over the last second.", MetricType::Gauge, |c| c.rate_1s_bps as f64),
            ("class_config_rate_bits_per_second", "The class's guaranteed rate, as configured.", MetricType::Gauge, |c| c.rate_bps as f64),
            ("class_config_ceil_bits_per_second", "The class's ceiling, as configured.", MetricType::Gauge, |c| c.ceil_bps as f64),
            ("class_active_flows", "Flows whose last frame went to the class (as of the last pass over the flow table).", MetricType::Gauge, |c| c.active_flows as f64),
            ("class_sojourn_p99_seconds", "99th percentile of the queueing delay over the last second.", MetricType::Gauge, |c| c.sojourn_us.last_p99 / 1e6),
            ("class_sojourn_p50_seconds", "Median queueing delay over the last second.", MetricType::Gauge, |c| c.sojourn_us.last_p50 / 1e6),
        ];
        for (name, help, kind, pick) in per_class {
            let points = st
                .ports
                .iter()
                .flat_map(|p| {
                    p.classes
                        .iter()
                        .map(|c| point(class_labels(&p.port, &c.name), pick(c)))
                })
                .collect();
            family(&mut enc, name, help, kind, points)?;
        }
        let mut drops = Vec::new();
        for p in &st.ports {
            for c in &p.classes {
                for r in DropReason::ALL {
                    let frames = c.drops_by_reason.get(r.as_str()).copied().unwrap_or(0);
                    let mut l = class_labels(&p.port, &c.name);
                    l.push(("reason", r.as_str().to_string()));
                    drops.push(point(l, frames as f64));
                }
            }
        }
        family(
            &mut enc,
            "class_dropped_frames",
            "Frames the class dropped, by reason (docs/operations.md lists the reasons).",
            MetricType::Counter,
            drops,
        )?;
        {
            let mut m = enc.encode_descriptor(
                "class_sojourn_seconds",
                "Queueing delay of forwarded frames (enqueue to departure), since start.",
                None,
                MetricType::Histogram,
            )?;
            for h in &s.sojourn {
                let labels = class_labels(h.port, &h.class);
                let mut f = m.encode_family(&labels)?;
                f.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    h.sum_s, h.count, &h.buckets, None,
                )?;
            }
        }
        let port_points = |pick: &dyn Fn(&super::protocol::PortStatus) -> Option<f64>| {
            st.ports
                .iter()
                .filter_map(|p| {
                    pick(p).map(|v| {
                        point(
                            vec![("port", p.port.clone()), ("interface", p.interface.clone())],
                            v,
                        )
                    })
                })
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            "port_arrived_frames",
            "Frames that arrived on the port (and leave by the other).",
            MetricType::Counter,
            port_points(&|p| Some(p.arrived_frames as f64)),
        )?;
        family(
            &mut enc,
            "port_kernel_dropped_frames",
            "Frames the kernel dropped as they arrived on the port, before weir could take them (in no class's counts).",
            MetricType::Counter,
            port_points(&|p| p.kernel_drops.map(|n| n as f64)),
        )?;
        family(
            &mut enc,
            "port_link_up",
            "1 while the port's link is up, 0 while it is set down, without carrier or gone (frames leaving by it are dropped as link_down).",
            MetricType::Gauge,
            port_points(&|p| Some(if p.link == "up" { 1.0 } else { 0.0 })),
        )?;
        family(
            &mut enc,
            "port_rate_bits_per_second_config",
            "The port's link rate, as configured.",
            MetricType::Gauge,
            port_points(&|p| Some(p.rate_bps as f64)),
        )?;
        let ft = &st.flow_table;
        for (name, help, kind, v) in [
            ("flow_table_occupied_entries", "Flow table entries in use.", MetricType::Gauge, ft.occupied),
            ("flow_table_capacity_entries", "Flow table entries in all.", MetricType::Gauge, ft.capacity),
            ("flow_table_inserted", "Flows inserted into the flow table.", MetricType::Counter, ft.inserted),
            ("flow_table_evicted", "Live flows pushed out of a full flow table (classified again on their next frame).", MetricType::Counter, ft.evicted),
            ("flow_table_expired", "Idle flows whose entry was reused.", MetricType::Counter, ft.expired),
            ("gso_super_frames_cut", "GSO super-frames cut into segments for classes under 1 Gbit/s.", MetricType::Counter, st.gso_split.super_frames),
            ("gso_segments", "Segments those super-frames became.", MetricType::Counter, st.gso_split.segments),
            ("config_generation", "0 for the config loaded at start, then one more per reload.", MetricType::Gauge, st.config.generation),
            ("config_reloads_refused", "Reloads refused (the file did not validate, or needed a restart).", MetricType::Counter, st.config.reloads_refused),
        ] {
            family(&mut enc, name, help, kind, vec![point(Vec::new(), v as f64)])?;
        }
        let budgets = self.control.budgets().budgets;
        type BudgetPick = fn(&crate::budget::BudgetStatus) -> f64;
        let per_budget: [(&str, &str, BudgetPick); 4] = [
            ("budget_used_bytes", "Bytes the budget counted in its current period (docs/config.md, Budgets).", |b| b.used as f64),
            ("budget_limit_bytes", "The budget's bytes per period.", |b| b.bytes as f64),
            ("budget_used_up", "1 while the budget is used up (its `then` applies), else 0.", |b| f64::from(u8::from(b.exhausted()))),
            ("budget_period_end_seconds", "When the budget's current period ends and its count starts again (Unix time; 0 before the first frame).", |b| b.end as f64 / 1e9),
        ];
        for (name, help, pick) in per_budget.into_iter().filter(|_| !budgets.is_empty()) {
            let points = budgets
                .iter()
                .map(|b| point(vec![("budget", b.name.clone())], pick(b)))
                .collect();
            family(&mut enc, name, help, MetricType::Gauge, points)?;
        }
        family(
            &mut enc,
            "uptime_seconds",
            "Seconds since weir started.",
            MetricType::Gauge,
            vec![point(Vec::new(), st.uptime_s)],
        )?;
        {
            let mut m = enc.encode_descriptor(
                "build",
                "weir's version, and the hash of the config running.",
                None,
                MetricType::Info,
            )?;
            let labels = [
                ("version", st.weir_version.clone()),
                ("config_sha256", st.config.sha256.clone()),
            ];
            m.encode_info(&labels)?;
        }
        Ok(())
    }
}

/// The metrics page, as a scrape gets it.
pub fn render(control: &Arc<Control>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("weir");
    registry.register_collector(Box::new(WeirCollector {
        control: Arc::clone(control),
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The metrics listener, bound (before privileges are given up: a port under 1024 needs them).
pub struct MetricsServer {
    server: tiny_http::Server,
    addr: String,
}

impl MetricsServer {
    pub fn bind(addr: &str) -> Result<MetricsServer, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| {
            format!("--metrics {addr}: {e}: give a free ADDR:PORT, e.g. --metrics 127.0.0.1:9840")
        })?;
        Ok(MetricsServer {
            server,
            addr: addr.to_string(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Serve `/metrics` on a thread of its own until `done` is set.
    pub fn serve(
        self,
        control: Arc<Control>,
        done: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let Ok(Some(req)) = self.server.recv_timeout(Duration::from_millis(200)) else {
                        continue;
                    };
                    let response = match (req.method(), req.url()) {
                        (tiny_http::Method::Get, "/metrics") => match render(&control) {
                            Ok(body) => tiny_http::Response::from_string(body).with_header(
                                tiny_http::Header::from_bytes(
                                    &b"Content-Type"[..],
                                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE
                                        .as_bytes(),
                                )
                                .expect("a valid header"),
                            ),
                            Err(_) => tiny_http::Response::from_string("encoding failed\n")
                                .with_status_code(500),
                        },
                        (tiny_http::Method::Get, "/") => {
                            tiny_http::Response::from_string("weir: metrics at /metrics\n")
                        }
                        _ => tiny_http::Response::from_string("not found: try /metrics\n")
                            .with_status_code(404),
                    };
                    let _ = req.respond(response);
                }
            })
    }
}
