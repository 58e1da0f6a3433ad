//! `weir explain CAPTURE -c CONFIG --frame N`: why frame N of a capture gets its class.
//!
//! Frames 1 to N go through the same replay as `weir replay` (with server names kept), so the
//! flow table, the names learnt and the DNS cache are what they would be at frame N; then
//! frame N's flow, its name, and each class rule of its egress port are shown in order, each
//! test with the frame's value and its result, up to the rule that takes it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weir::capture::CaptureReader;
use weir::replay::{Replay, ReplayOptions};

pub struct Settings {
    pub capture: PathBuf,
    pub config: PathBuf,
    pub frame: u64,
    pub json: bool,
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
    let (ts, data) = loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                replay.push(f.ts_ns, f.data, f.orig_len, &mut ignore);
                if f.number == s.frame {
                    break (f.ts_ns, f.data.to_vec());
                }
            }
            Ok(None) => {
                eprintln!(
                    "weir: error: {} has {} frames, there is no frame {}",
                    s.capture.display(),
                    reader.frames_read(),
                    s.frame
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => {
                eprintln!("weir: error: {e} (before frame {})", s.frame);
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    let Some((egress, e)) = replay.explain_last(&data) else {
        return Ok(ExitCode::FAILURE);
    };
    let port = plan.port(egress);
    let class_name = |id: u16| {
        port.classes
            .get(usize::from(id))
            .map_or("?", |c| c.name.as_str())
            .to_string()
    };
    let mut out = std::io::stdout().lock();
    if s.json {
        let v = serde_json::json!({
            "frame": s.frame,
            "ts": ts as f64 / 1e9,
            "egress": egress.name(),
            "class_name": class_name(e.class),
            "explanation": e,
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let view = weir::wire::parse(&data);
    writeln!(
        out,
        "frame {} at {:.6}: {}, {} bytes, leaves by {} ({})",
        s.frame,
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
