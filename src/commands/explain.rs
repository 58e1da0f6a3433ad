//! `weir explain CAPTURE -c CONFIG --frame N`: why frame N of a capture gets its class; with
//! `--flow "A B"` instead, why the last frame of the flow between endpoints A and B gets its
//! class, and each frame of that flow at which its class changed, with what the flow had
//! learnt by then (its server name, its protocol).
//! `weir explain --flow "A B"` without a capture asks a running bridge (over its control
//! socket) about the next frame of that flow that crosses it.
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
use weir::classify::flow::FlowEnds;
use weir::classify::Explanation;
use weir::control::protocol::Command;
use weir::replay::{Replay, ReplayOptions};

pub struct Settings {
    /// A capture; none: the running bridge at `control`.
    pub capture: Option<PathBuf>,
    pub config: PathBuf,
    pub frame: Option<u64>,
    /// Two endpoints, `ADDR[:PORT]` each (IPv6 in brackets with a port).
    pub flow: Option<String>,
    pub json: bool,
    pub control: PathBuf,
    /// How long a running bridge waits for a frame of the flow.
    pub wait_ms: Option<u64>,
}

/// A frame of the explained flow at which its class changed.
#[derive(serde::Serialize)]
struct Change {
    frame: u64,
    egress: &'static str,
    class_name: String,
    /// What the flow had learnt at that frame.
    server_name: Option<String>,
    protocol: Option<String>,
}

/// The name of class `id` of port `egress`.
fn class_name(plan: &weir::config::Plan, egress: weir::port::Side, id: u16) -> String {
    plan.port(egress)
        .classes
        .get(usize::from(id))
        .map_or("?", |c| c.name.as_str())
        .to_string()
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let Some(capture) = s.capture.clone() else {
        return live(&s);
    };
    let wanted = match s.flow.as_deref().map(str::parse::<FlowEnds>) {
        Some(Ok(ends)) => Some(ends),
        Some(Err(e)) => {
            eprintln!("weir: error: --flow {e}");
            return Ok(ExitCode::FAILURE);
        }
        None => None,
    };
    let plan = match super::load_config(&s.config) {
        Ok(p) => Arc::new(p),
        Err(code) => return Ok(code),
    };
    let mut reader = match CaptureReader::open(&capture) {
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
    let mut changes: Vec<Change> = Vec::new();
    let mut last: Option<(u64, u64, Vec<u8>)> = None;
    // The flow's last frame as it stood when it came (later frames change the replay).
    let mut last_explained = None;
    loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                replay.push(f.ts_ns, f.data, f.orig_len, &mut ignore);
                if let Some(w) = &wanted {
                    if w.matches(&weir::wire::parse(f.data)) {
                        if let Some((egress, e)) = replay.explain_last(f.data) {
                            let class_name = class_name(&plan, egress, e.class);
                            last_explained = Some((egress, e.clone()));
                            let changed = changes
                                .iter()
                                .rev()
                                .find(|c| c.egress == egress.name())
                                .is_none_or(|c| c.class_name != class_name);
                            if changed {
                                changes.push(Change {
                                    frame: f.number,
                                    egress: egress.name(),
                                    class_name,
                                    server_name: e.server_name.clone(),
                                    protocol: e.protocol.clone(),
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
                capture.display()
            ),
            (None, n) => eprintln!(
                "weir: error: {} has {} frames, there is no frame {}",
                capture.display(),
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
            "class_names": plan.port(egress).classes.iter().map(|c| &c.name).collect::<Vec<_>>(),
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
        "frame {} at {:.6}: {}, {} bytes, leaves by {}",
        number,
        ts as f64 / 1e9,
        view.brief(),
        data.len(),
        port_name(egress.name()),
    )?;
    render(&mut out, egress.name(), &e, class_name)?;
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
                c.protocol.as_deref().unwrap_or("none told")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `wan (upload)` or `lan (download)`.
fn port_name(egress: &str) -> String {
    match egress {
        "wan" => "wan (upload)".into(),
        "lan" => "lan (download)".into(),
        other => other.into(),
    }
}

/// What the flow had learnt, each class rule of the port in order with its tests, and the
/// class: the same for a capture and for a running bridge.
fn render(
    out: &mut impl Write,
    egress: &str,
    e: &Explanation,
    class_name: impl Fn(u16) -> String,
) -> std::io::Result<()> {
    if e.control {
        return writeln!(
            out,
            "link control traffic (ARP, IPv6 ND, LLDP, STP, LACP, PPPoE discovery, PPP control): class `control`, before any rule"
        );
    }
    match (&e.server_name, &e.name_source) {
        (Some(n), Some(src)) => writeln!(
            out,
            "server name: {n} (from {src}); {} frames of the flow went before it was known",
            e.frames_before_name
        )?,
        _ => writeln!(out, "server name: none known for this flow")?,
    }
    match &e.protocol {
        Some(p) => writeln!(
            out,
            "protocol: {p}{}, told from its payload; {} frames of the flow went before",
            e.detail
                .as_deref()
                .map_or(String::new(), |d| format!(" ({d})")),
            e.frames_before_app
        )?,
        None => writeln!(
            out,
            "protocol: none told from its payload (an `app` test goes by the ports)"
        )?,
    }
    writeln!(out, "rules of port {egress}, in order:")?;
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
    )
}

/// `weir explain --flow "A B"` of the running bridge at `s.control`.
fn live(s: &Settings) -> anyhow::Result<ExitCode> {
    let Some(flow) = s.flow.clone() else {
        eprintln!(
            "weir: error: a running bridge is explained by flow: give --flow \"A B\" (endpoints as \
             `weir flows` prints them), or a CAPTURE to explain a frame of it"
        );
        return Ok(ExitCode::FAILURE);
    };
    if let Err(e) = flow.parse::<FlowEnds>() {
        eprintln!("weir: error: --flow {e}");
        return Ok(ExitCode::FAILURE);
    }
    let mut client = match weir::control::client::Client::connect(&s.control) {
        Ok(c) => c,
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let x = match client.request(Command::Explain {
        flow,
        wait_ms: s.wait_ms,
    }) {
        Ok(r) => match r.explain {
            Some(x) => x,
            None => {
                return Ok(super::client_failed(
                    &"weir answered without an explanation",
                ))
            }
        },
        Err(e) => return Ok(super::client_failed(&e)),
    };
    let mut out = std::io::stdout().lock();
    if s.json {
        serde_json::to_writer_pretty(&mut out, &x)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "a frame {:.0} ms after asking: {}, {} bytes, leaves by {}",
        x.waited_ms,
        x.frame,
        x.len,
        port_name(&x.egress)
    )?;
    render(&mut out, &x.egress, &x.explanation, |id| {
        x.class_names
            .get(usize::from(id))
            .cloned()
            .unwrap_or_else(|| "?".into())
    })?;
    Ok(ExitCode::SUCCESS)
}
