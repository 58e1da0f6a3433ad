//! `weir send CAPTURE -i IF [--pps N | --mbps N | --multiplier X | --topspeed] [--loop N]`:
//! puts a capture on a wire at the rate asked and prints the rate achieved.
//!
//! Guarantees: the pace flags are mutually exclusive (clap rejects two), and are resolved once
//! into a [`Pace`]; with none, the capture's own timing is used. `--loop 0` repeats until
//! Ctrl-C or SIGTERM, which also end any other send early (the report is still printed).
//! The report goes to stdout; errors (interface missing or down, capture unreadable or damaged,
//! with the frames sent before the damage) go to stderr with exit code 1.

use anyhow::Context;
use clap::ArgGroup;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir::tools::send::{parse_mbps, parse_multiplier, parse_pps, send_on_interface, Pace};

/// The raw flags of `weir send`, to embed as `Send(SendArgs)` in the command enum.
#[derive(clap::Args, Debug, Clone)]
#[command(group(
    ArgGroup::new("pace")
        .multiple(false)
        .args(["pps", "mbps", "multiplier", "topspeed"])
))]
pub struct SendArgs {
    /// A pcap or pcapng file (Ethernet, Linux cooked, raw IP or loopback).
    pub capture: PathBuf,
    /// The interface to send on (must exist and be up).
    #[arg(short, long, value_name = "IF")]
    pub iface: String,
    /// Frames per second.
    #[arg(long, value_name = "N", value_parser = parse_pps)]
    pub pps: Option<u64>,
    /// Megabits per second of frame bytes (as tcpreplay --mbps), e.g. 10 or 2.5.
    #[arg(long, value_name = "N", value_parser = parse_mbps)]
    pub mbps: Option<u64>,
    /// Replay the capture's timing this many times faster (0.5 = half speed).
    #[arg(long, value_name = "X", value_parser = parse_multiplier)]
    pub multiplier: Option<f64>,
    /// As fast as the interface takes frames.
    #[arg(long)]
    pub topspeed: bool,
    /// Times through the capture; 0 = until Ctrl-C.
    #[arg(long = "loop", value_name = "N", default_value_t = 1)]
    pub loops: u64,
}

impl SendArgs {
    /// Resolves the flags into [`Settings`].
    pub fn settings(self) -> Result<Settings, String> {
        let given = [
            self.pps.is_some(),
            self.mbps.is_some(),
            self.multiplier.is_some(),
            self.topspeed,
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if given > 1 {
            return Err(
                "give at most one of --pps, --mbps, --multiplier and --topspeed".to_string(),
            );
        }
        let pace = match (self.pps, self.mbps, self.multiplier, self.topspeed) {
            (Some(p), ..) => Pace::Pps(p),
            (_, Some(bps), ..) => Pace::Mbps(bps),
            (_, _, Some(1.0), _) => Pace::Capture,
            (_, _, Some(x), _) => Pace::Multiplier(x),
            (_, _, _, true) => Pace::TopSpeed,
            _ => Pace::Capture,
        };
        Ok(Settings {
            capture: self.capture,
            iface: self.iface,
            pace,
            loops: self.loops,
        })
    }
}

/// What `weir send` does, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub capture: PathBuf,
    pub iface: String,
    pub pace: Pace,
    /// Times through the capture; 0 = until Ctrl-C.
    pub loops: u64,
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .context("cannot install the Ctrl-C / SIGTERM handler")?;
    }
    let loops = match s.loops {
        0 => "until Ctrl-C".to_string(),
        1 => "once".to_string(),
        n => format!("{n} times"),
    };
    eprintln!(
        "weir: sending {} on {} at {}, {loops}",
        s.capture.display(),
        s.iface,
        s.pace
    );
    // Frames handed to the device, drawn on a terminal while it sends.
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
        std::thread::spawn(move || {
            let bar = super::progress::frames("sending", None);
            while !done.load(Ordering::Relaxed) {
                bar.set_position(sent.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            bar.finish_and_clear();
        })
    };
    let result = send_on_interface(&s.capture, &s.iface, s.pace, s.loops, &stop, &sent);
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    match result {
        Ok(report) => {
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            if failure.started {
                println!("{}", failure.report);
            }
            eprintln!("weir: error: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: SendArgs,
    }

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let cli = Cli::try_parse_from(std::iter::once("send").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.settings()
    }

    #[test]
    fn pace_flags_resolve_to_one_pace() {
        let s = parse(&["c.pcap", "-i", "veth0"]).unwrap();
        assert_eq!((s.pace, s.loops), (Pace::Capture, 1));
        assert_eq!(
            parse(&["c.pcap", "-i", "x", "--pps", "1000"]).unwrap().pace,
            Pace::Pps(1000)
        );
        assert_eq!(
            parse(&["c.pcap", "-i", "x", "--mbps", "2.5"]).unwrap().pace,
            Pace::Mbps(2_500_000)
        );
        assert_eq!(
            parse(&["c.pcap", "-i", "x", "--multiplier", "4"])
                .unwrap()
                .pace,
            Pace::Multiplier(4.0)
        );
        assert_eq!(
            parse(&["c.pcap", "--iface", "x", "--topspeed", "--loop", "0"])
                .unwrap()
                .loops,
            0
        );
    }

    #[test]
    fn pace_flags_exclude_each_other_and_are_checked() {
        for bad in [
            &["c.pcap", "-i", "x", "--pps", "10", "--mbps", "1"][..],
            &["c.pcap", "-i", "x", "--topspeed", "--multiplier", "2"],
            &["c.pcap", "-i", "x", "--pps", "0"],
            &["c.pcap", "-i", "x", "--mbps", "-1"],
            &["c.pcap", "-i", "x", "--multiplier", "0"],
            &["c.pcap"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
