//! `weir sniff CAPTURE [RULE]` and `weir sniff -i IF [RULE]`: one line per frame, as Scapy's
//! `summary()` or tcpdump print them: number, time since the first frame, length, addresses,
//! ports and protocol in brief, the application and server name where the flow has shown
//! them, and with `-c CONFIG` the class and the port it would leave by. `--json`: one object
//! per line.
//!
//! Frames go through the same path as `weir replay` (direction by `lan_networks`, then the
//! classifier with names kept), so the class is the one replay gives, and the filter is a rule
//! of weir's own language tested by the same classifier: a frame is printed when the rule
//! matches it there. Live, frames are read through libpcap, read-only: weir never sends and
//! needs only CAP_NET_RAW.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir::capture::CaptureReader;
use weir::config::Plan;
use weir::replay::{Replay, ReplayOptions};
use weir::wire::{self, FrameView, L3};

/// Where frames come from.
pub enum Source {
    Capture(PathBuf),
    Interface(String),
}

pub struct Settings {
    pub source: Source,
    /// The filter, in the rule language (docs/rules.md).
    pub rule: Option<String>,
    pub config: Option<PathBuf>,
    /// Stop after this many frames printed.
    pub count: Option<u64>,
    pub json: bool,
}

/// One frame, as printed.
#[derive(serde::Serialize)]
struct Line<'a> {
    frame: u64,
    /// Seconds since the first frame.
    time: f64,
    /// Capture timestamp, nanoseconds since the Unix epoch.
    ts_ns: u64,
    /// Length on the wire, and as captured.
    len: u32,
    captured: usize,
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dport: Option<u16>,
    /// `tcp`, `udp`, `icmp`, `icmp6`, an IP protocol number, `arp`, or the ethertype.
    proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
    /// With `-c`: the class, and the port the frame would leave by.
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    egress: Option<&'static str>,
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let mut plan = match &s.config {
        Some(path) => match super::load_config(path) {
            Ok(p) => p,
            Err(code) => return Ok(code),
        },
        // No class is printed; the classifier still learns names and tests the filter.
        None => weir::config::pass_through(),
    };
    let filter = match &s.rule {
        Some(text) => match plan.watch(text) {
            Ok(bit) => Some(bit),
            Err(e) => {
                eprintln!(
                    "weir: error: rule \"{text}\", column {}: {}",
                    e.column, e.message
                );
                eprintln!("    {text}");
                eprintln!(
                    "    {}{}",
                    " ".repeat(e.column.saturating_sub(1)),
                    "^".repeat(e.len.max(1))
                );
                if let Some(h) = &e.hint {
                    eprintln!("  hint: {h}");
                }
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let plan = Arc::new(plan);
    let opts = ReplayOptions {
        flows: true,
        ..ReplayOptions::default()
    };
    let mut printer = Printer {
        replay: Replay::new(&plan, &opts, false),
        plan: &plan,
        with_class: s.config.is_some(),
        filter,
        json: s.json,
        first_ts: None,
        frames: 0,
        printed: 0,
        count: s.count,
        out: std::io::BufWriter::new(std::io::stdout().lock()),
    };
    match &s.source {
        Source::Capture(path) => {
            let mut reader = match CaptureReader::open(path) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("weir: error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            loop {
                let frame = match reader.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        printer.out.flush()?;
                        eprintln!("weir: error: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                };
                if !printer.frame(frame.ts_ns, frame.data, frame.orig_len)? {
                    break;
                }
            }
        }
        Source::Interface(name) => return live(name, &mut printer),
    }
    printer.out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Read `name` through libpcap until Ctrl-C, SIGTERM or `--count`.
fn live(name: &str, printer: &mut Printer<'_, impl Write>) -> anyhow::Result<ExitCode> {
    let cap = pcap::Capture::from_device(name)
        .and_then(|c| c.promisc(true).snaplen(65_535).timeout(100).open());
    let mut cap = match cap {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weir: error: cannot read {name}: {e}");
            eprintln!("  hint: name an interface of `ip link` (reading needs CAP_NET_RAW: root, or setcap cap_net_raw+ep on weir)");
            return Ok(ExitCode::FAILURE);
        }
    };
    if cap.get_datalink() != pcap::Linktype::ETHERNET {
        eprintln!(
            "weir: error: {name} is not an Ethernet interface (link type {:?}); weir reads Ethernet frames",
            cap.get_datalink()
        );
        return Ok(ExitCode::FAILURE);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let tv = p.header.ts;
                let ts = (tv.tv_sec as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(tv.tv_usec as u64 * 1000);
                if !printer.frame(ts, p.data, p.header.len)? {
                    break;
                }
                // Each frame is seen when it arrives, not when a buffer fills.
                printer.out.flush()?;
            }
            Err(pcap::Error::TimeoutExpired) => {}
            Err(e) => {
                printer.out.flush()?;
                eprintln!("weir: error: reading {name}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    printer.out.flush()?;
    Ok(ExitCode::SUCCESS)
}

struct Printer<'p, W: Write> {
    replay: Replay<'p>,
    plan: &'p Plan,
    with_class: bool,
    filter: Option<u8>,
    json: bool,
    first_ts: Option<u64>,
    frames: u64,
    printed: u64,
    count: Option<u64>,
    out: W,
}

impl<W: Write> Printer<'_, W> {
    /// Classify and maybe print one frame; false once `--count` frames were printed.
    fn frame(&mut self, ts: u64, data: &[u8], orig_len: u32) -> std::io::Result<bool> {
        self.frames += 1;
        let first = *self.first_ts.get_or_insert(ts);
        // Nothing is sent: departures are the replay's business, not printed.
        self.replay.push(ts, data, orig_len, &mut |_, _, _| {});
        let Some(verdict) = self.replay.last_verdict() else {
            return Ok(true);
        };
        if let Some(bit) = self.filter {
            if verdict.watched & (1 << bit) == 0 {
                return Ok(true);
            }
        }
        let view = wire::parse(data);
        let (app, name) = self.replay.flow_label(&view);
        let summary = summary(&view);
        let class = self.with_class.then(|| {
            self.plan.ports[verdict.egress.index()]
                .classes
                .get(usize::from(verdict.class))
                .map_or("?", |c| c.name.as_str())
        });
        let time = ts.saturating_sub(first) as f64 / 1e9;
        let len = orig_len.max(data.len() as u32);
        let app = app.map(|p| p.as_str());
        let name = name.as_ref().map(|n| n.as_str());
        if self.json {
            let (src, dst, sport, dport) = endpoints(&view);
            let line = Line {
                frame: self.frames,
                time,
                ts_ns: ts,
                len,
                captured: data.len(),
                summary: &summary,
                src,
                dst,
                sport,
                dport,
                proto: proto_name(&view),
                app,
                server_name: name,
                class,
                egress: self.with_class.then(|| verdict.egress.name()),
            };
            serde_json::to_writer(&mut self.out, &line)?;
            writeln!(self.out)?;
        } else {
            write!(
                self.out,
                "{:>6} {time:>12.6} {len:>5}  {summary}",
                self.frames
            )?;
            if let Some(a) = app {
                write!(self.out, "  {a}")?;
            }
            if let Some(n) = name {
                write!(self.out, "  {n}")?;
            }
            if let Some(c) = class {
                write!(self.out, "  -> {} {c}", verdict.egress.name())?;
            }
            writeln!(self.out)?;
        }
        self.printed += 1;
        Ok(self.count.is_none_or(|n| self.printed < n))
    }
}

fn ip_text(v: &FrameView, a: u128) -> String {
    if v.l3 == L3::Ipv6 {
        std::net::Ipv6Addr::from(a).to_string()
    } else {
        std::net::Ipv4Addr::from(a as u32).to_string()
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Addresses (IP, else MAC) and ports.
fn endpoints(v: &FrameView) -> (Option<String>, Option<String>, Option<u16>, Option<u16>) {
    let (src, dst) = if v.is_ip() {
        (ip_text(v, v.src_ip), ip_text(v, v.dst_ip))
    } else {
        (mac_text(&v.src_mac), mac_text(&v.dst_mac))
    };
    let ports = v.is_ip() && v.has_ports;
    (
        Some(src),
        Some(dst),
        ports.then_some(v.src_port),
        ports.then_some(v.dst_port),
    )
}

fn proto_name(v: &FrameView) -> String {
    match v.l3 {
        L3::Ipv4 | L3::Ipv6 => match v.ip_proto {
            6 => "tcp".into(),
            17 => "udp".into(),
            1 => "icmp".into(),
            58 => "icmp6".into(),
            n => n.to_string(),
        },
        L3::Arp => "arp".into(),
        L3::Other => format!("0x{:04x}", v.ethertype),
    }
}

/// tcpdump's letters for TCP flags: S F R P U E W, and `.` for ACK.
fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x10, '.'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// `198.18.0.1:40000 > 198.19.0.2:443 TCP [S]`, `[2001:db8::1] > [2001:db8::2] ICMP6 128`,
/// `ARP 02:..:01 > ff:..:ff`, with `vlan N` first when tagged and `frag` when a fragment.
fn summary(v: &FrameView) -> String {
    let mut s = String::new();
    for t in v.vlan.iter().take(usize::from(v.vlan_count)) {
        s.push_str(&format!("vlan {} ", t.id));
    }
    if v.truncated && !v.is_ip() && v.l3 == L3::Other && v.ethertype == 0 {
        s.push_str("(too short for Ethernet)");
        return s;
    }
    let host = |a: u128| {
        if v.l3 == L3::Ipv6 && v.has_ports {
            format!("[{}]", ip_text(v, a))
        } else {
            ip_text(v, a)
        }
    };
    match v.l3 {
        L3::Ipv4 | L3::Ipv6 => {
            let family = if v.l3 == L3::Ipv6 { "IPv6" } else { "IPv4" };
            if v.has_ports {
                s.push_str(&format!(
                    "{family} {}:{} > {}:{} ",
                    host(v.src_ip),
                    v.src_port,
                    host(v.dst_ip),
                    v.dst_port
                ));
            } else {
                s.push_str(&format!(
                    "{family} {} > {} ",
                    host(v.src_ip),
                    host(v.dst_ip)
                ));
            }
            match v.ip_proto {
                6 => s.push_str(&format!("TCP [{}]", tcp_flags(v.tcp_flags))),
                17 => s.push_str("UDP"),
                1 | 58 if v.has_icmp => s.push_str(&format!(
                    "{} type {} code {}",
                    if v.ip_proto == 1 { "ICMP" } else { "ICMP6" },
                    v.icmp_type,
                    v.icmp_code
                )),
                n => s.push_str(&format!("proto {n}")),
            }
            if v.is_fragment {
                s.push_str(&format!(" frag off {}", v.frag_offset));
            }
            if v.truncated {
                s.push_str(" (cut short)");
            }
        }
        L3::Arp => s.push_str(&format!(
            "ARP {} > {} sender {} target {}",
            mac_text(&v.src_mac),
            mac_text(&v.dst_mac),
            std::net::Ipv4Addr::from(v.arp_spa),
            std::net::Ipv4Addr::from(v.arp_tpa)
        )),
        L3::Other => s.push_str(&format!(
            "{} > {} ethertype 0x{:04x}",
            mac_text(&v.src_mac),
            mac_text(&v.dst_mac),
            v.ethertype
        )),
    }
    s
}
