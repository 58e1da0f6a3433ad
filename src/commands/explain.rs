//! `weir explain CAPTURE -c CONFIG --frame N`: why frame N of a capture gets its class; with
//! `--flow "A B"` instead, why the last frame of the flow between endpoints A and B gets its
//! class, and each frame of that flow at which its class changed, with what the flow had
//! learnt by then (its server name, its protocol).
//!
//! Frames go through the same replay as `weir replay` (with server names kept), so the flow
//! table, the names learnt and the DNS cache are what they would be at that frame; then the
//! frame's flow, its name and protocol, and each class rule of its egress port are shown in
//! order, each test with the frame's value and its result, up to the rule that takes it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weir::capture::CaptureReader;
use weir::replay::{Replay, ReplayOptions};

pub struct Settings {
    pub capture: PathBuf,
    pub config: PathBuf,
    pub frame: Option<u64>,
    /// Two endpoints, `ADDR[:PORT]` each (IPv6 in brackets with a port).
    pub flow: Option<String>,
    pub json: bool,
}

/// A frame of the explained flow at which its class changed.
#[derive(serde::Serialize)]
struct Change {
    frame: u64,
    egress: &'static str,
    class_name: String,
    /// What the flow had learnt at that frame.
    server_name: Option<String>,
    protocol: Option<&'static str>,
}

/// The name of class `id` of port `egress`.
fn class_name(plan: &weir::config::Plan, egress: weir::port::Side, id: u16) -> String {
    plan.port(egress)
        .classes
        .get(usize::from(id))
        .map_or("?", |c| c.name.as_str())
        .to_string()
}

/// An endpoint as flows print it: `1.2.3.4:80`, `[2001:db8::1]:53`, or an address alone.
fn endpoint(s: &str) -> Option<(std::net::IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse() {
        return Some((ip, None));
    }
    let sa: std::net::SocketAddr = s.parse().ok()?;
    Some((sa.ip(), Some(sa.port())))
}

/// The frame's endpoints, as [`endpoint`] reads them.
fn ends(v: &weir::wire::FrameView) -> Option<[(std::net::IpAddr, Option<u16>); 2]> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = |a: u128| -> IpAddr {
        if v.l3 == weir::wire::L3::Ipv6 {
            Ipv6Addr::from(a).into()
        } else {
            Ipv4Addr::from(a as u32).into()
        }
    };
    let port = |p: u16| v.has_ports.then_some(p);
    v.is_ip().then(|| {
        [
            (ip(v.src_ip), port(v.src_port)),
            (ip(v.dst_ip), port(v.dst_port)),
        ]
    })
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let plan = match super::load_config(&s.config) {
        Ok(p) => Arc::new(p),
        Err(code) => return Ok(code),
    };
    let mut reader = match CaptureReader::open(&s.capture) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let opts = ReplayOptions {
        flows: true,
        ..Default::default()
    };
    let mut replay = Replay::new(&plan, &opts, false);
    let mut ignore = |_: u64, _: &[u8], _: u32| {};
    let wanted = match s.flow.as_deref().map(|f| {
        let parts: Vec<_> = f.split_whitespace().collect();
        match parts.as_slice() {
            [a, b] => endpoint(a).zip(endpoint(b)).ok_or(f),
            _ => Err(f),
        }
    }) {
        Some(Ok((a, b))) => Some([a, b]),
        Some(Err(f)) => {
            eprintln!(
                "weir: error: --flow \"{f}\": expected two endpoints, ADDR:PORT or ADDR each \
                 ([ADDR]:PORT for IPv6), as `weir replay --flows` prints them"
            );
            return Ok(ExitCode::FAILURE);
        }
        None => None,
    };
    let mut changes: Vec<Change> = Vec::new();
    let mut last: Option<(u64, u64, Vec<u8>)> = None;
    // The flow's last frame as it stood when it came (later frames change the replay).
    let mut last_explained = None;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                replay.push(f.ts_ns, f.data, f.orig_len, &mut ignore);
                if let Some(w) = &wanted {
                    let v = weir::wire::parse(f.data);
                    let ours = ends(&v)
                        .is_some_and(|[x, y]| (x == w[0] && y == w[1]) || (x == w[1] && y == w[0]));
                    if ours {
                        if let Some((egress, e)) = replay.explain_last(f.data) {
                            let class_name = class_name(&plan, egress, e.class);
                            last_explained = Some((egress, e.clone()));
                            let changed = changes
                                .iter()
                                .rev()
                                .find(|c| c.egress == egress.name())
                                .map_or(true, |c| c.class_name != class_name);
                            if changed {
                                changes.push(Change {
                                    frame: f.number,
                                    egress: egress.name(),
                                    class_name,
                                    server_name: e.server_name.clone(),
                                    protocol: e.protocol,
                                });
                            }
                        }
                        last = Some((f.number, f.ts_ns, f.data.to_vec()));
                    }
                } else if Some(f.number) == s.frame {
                    last = Some((f.number, f.ts_ns, f.data.to_vec()));
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("weir: error: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let Some((number, ts, data)) = last else {
        match (&s.flow, s.frame) {
            (Some(f), _) => eprintln!(
                "weir: error: {} has no frame of the flow \"{f}\" (endpoints as `weir replay \
                 --flows` prints them)",
                s.capture.display()
            ),
            (None, n) => eprintln!(
                "weir: error: {} has {} frames, there is no frame {}",
                s.capture.display(),
                reader.frames_read(),
                n.unwrap_or(0)
            ),
        }
        return Ok(ExitCode::FAILURE);
    };
    let Some((egress, e)) = last_explained.or_else(|| replay.explain_last(&data)) else {
        return Ok(ExitCode::FAILURE);
    };
    let class_name = |id: u16| class_name(&plan, egress, id);
    let mut out = std::io::stdout().lock();
    if s.json {
        let mut v = serde_json::json!({
            "frame": number,
            "ts": ts as f64 / 1e9,
            "egress": egress.name(),
            "class_name": class_name(e.class),
            "explanation": e,
        });
        if s.flow.is_some() {
            v["class_changes"] = serde_json::to_value(&changes)?;
        }
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let view = weir::wire::parse(&data);
    writeln!(
        out,
        "frame {} at {:.6}: {}, {} bytes, leaves by {} ({})",
        number,
        ts as f64 / 1e9,
        summary(&view),
        data.len(),
        egress.name(),
        if egress == weir::port::Side::Wan {
            "upload"
        } else {
            "download"
        }
    )?;
    if e.control {
        writeln!(
            out,
            "link control traffic (ARP, IPv6 ND, LLDP, STP, LACP, PPPoE discovery, PPP control): class `control`, before any rule"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    match (&e.server_name, e.name_source) {
        (Some(n), Some(src)) => writeln!(
            out,
            "server name: {n} (from {src}); {} frames of the flow went before it was known",
            e.frames_before_name
        )?,
        _ => writeln!(out, "server name: none known for this flow")?,
    }
    match e.protocol {
        Some(p) => writeln!(
            out,
            "protocol: {p}, told from its payload; {} frames of the flow went before",
            e.frames_before_app
        )?,
        None => writeln!(
            out,
            "protocol: none told from its payload (an `app` test goes by the ports)"
        )?,
    }
    writeln!(out, "rules of port {}, in order:", egress.name())?;
    for r in &e.rules {
        writeln!(
            out,
            "  {} `{}`: {}{}",
            class_name(r.class),
            r.rule,
            if r.matched { "MATCHES" } else { "no" },
            if r.per_frame {
                " (reads per-frame fields: evaluated on every frame)"
            } else {
                ""
            }
        )?;
        for t in &r.tests {
            writeln!(
                out,
                "      {:<40} {:<5} ({})",
                t.test,
                if t.result { "yes" } else { "no" },
                t.value
            )?;
        }
    }
    writeln!(
        out,
        "class: {}{}",
        class_name(e.class),
        if e.default {
            " (the default: no rule matched)"
        } else {
            ""
        }
    )?;
    if s.flow.is_some() {
        writeln!(out, "class of the flow's frames, as it changed:")?;
        for c in &changes {
            writeln!(
                out,
                "  frame {:>6}: {} by {} (name: {}; protocol: {})",
                c.frame,
                c.class_name,
                c.egress,
                c.server_name.as_deref().unwrap_or("none"),
                c.protocol.unwrap_or("none told")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Addresses, ports and protocol in brief.
fn summary(v: &weir::wire::FrameView) -> String {
    use weir::wire::L3;
    let ip = |a: u128| {
        if v.l3 == L3::Ipv6 {
            format!("[{}]", std::net::Ipv6Addr::from(a))
        } else {
            std::net::Ipv4Addr::from(a as u32).to_string()
        }
    };
    match v.l3 {
        L3::Ipv4 | L3::Ipv6 if v.has_ports => format!(
            "{}:{} -> {}:{} proto {}",
            ip(v.src_ip),
            v.src_port,
            ip(v.dst_ip),
            v.dst_port,
            v.ip_proto
        ),
        L3::Ipv4 | L3::Ipv6 => format!("{} -> {} proto {}", ip(v.src_ip), ip(v.dst_ip), v.ip_proto),
        L3::Arp => "ARP".into(),
        L3::Other => format!("ethertype 0x{:04x}", v.ethertype),
    }
}
