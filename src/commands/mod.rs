//! Command-line parsing: raw flags (clap) are kept apart from the settings built from them.

mod budget;
mod bypass;
mod check;
mod explain;
mod flows;
mod lab;
mod progress;
mod reload;
mod render;
mod replay;
mod report;
mod run;
mod send;
mod sniff;
mod status;
mod stop;
mod top;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use weir::control::client::Client;
use weir::control::protocol::{DEFAULT_PID_FILE, DEFAULT_SOCKET};
use weir::io::af_packet::{IfRingFails, RxMode};

/// The config file when `-c` is not given: `$WEIR_CONFIG`, else this.
pub const DEFAULT_CONFIG: &str = "/etc/weir/weir.ron";

/// How a command reaches a running weir.
#[derive(Args, Debug, Clone)]
pub struct ControlArgs {
    /// The control socket of the weir to talk to.
    #[arg(long = "control", value_name = "PATH", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print JSON instead of a table (docs/operations.md has the schema).
    #[arg(long, global = true)]
    json: bool,
}

impl ControlArgs {
    /// A connection, or `None` after saying why there is none.
    fn connect(&self) -> Option<Client> {
        match Client::connect(&self.socket) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("weir: error: {e}");
                None
            }
        }
    }
}

/// Say why a request failed; the exit code for it.
fn client_failed(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("weir: error: {e}");
    ExitCode::FAILURE
}

/// `--wait`: seconds, 0.001 to 20 (what a running bridge accepts).
fn wait_seconds(s: &str) -> Result<f64, String> {
    let w: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    let most = weir::control::MAX_EXPLAIN_WAIT_MS as f64 / 1e3;
    if (0.001..=most).contains(&w) {
        Ok(w)
    } else {
        Err(format!("{w} s: give 0.001 to {most} seconds"))
    }
}

/// `-c FILE`, else `$WEIR_CONFIG`, else [`DEFAULT_CONFIG`] (pyshaper read `$PYSHAPERCONFIG`).
fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("WEIR_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "A userspace QoS bridge: classify, prioritise and shape Ethernet frames between two ports, or replay a capture through the same policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config and print its class tree.
    Check {
        /// The RON config file (default: $WEIR_CONFIG, else /etc/weir/weir.ron).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Bridge two interfaces and shape both directions, in the foreground, until Ctrl-C or
    /// SIGTERM.
    Run {
        /// The RON config file (default: $WEIR_CONFIG, else /etc/weir/weir.ron). `weir reload`
        /// and SIGHUP read it again.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// LAN-side interface (overrides ports.lan.interface).
        #[arg(long, value_name = "IF")]
        lan: Option<String>,
        /// WAN-side interface (overrides ports.wan.interface).
        #[arg(long, value_name = "IF")]
        wan: Option<String>,
        /// Packet I/O backend.
        #[arg(long, value_enum, default_value = "af-packet")]
        io: IoArg,
        /// How the af-packet backend receives: `ring-v2` (a memory-mapped TPACKET_V2 ring, the
        /// default; falls back to `mmsg` with a warning when the ring cannot be set up), `mmsg`
        /// (recvmmsg batches) or `ring` (a TPACKET_V3 ring: fastest on parallel TCP, up to 1 ms
        /// added delay at low rates). docs/io-backends.md compares them.
        #[arg(long, value_enum, value_name = "MODE")]
        rx: Option<RxArg>,
        /// Thread layout: one thread for everything, or one thread per direction
        /// (docs/benchmarks.md compares them).
        #[arg(long, value_enum, default_value = "run-to-completion")]
        threads: ThreadsArg,
        /// Forwarding workers per direction (af-packet only): each port's frames are spread
        /// over N receiving sockets by flow hash (PACKET_FANOUT), so a flow stays on one worker
        /// and in order; every rate holds for the sum over workers (docs/architecture.md).
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
        /// Receive the traffic of the best priority (when its rules are ports, hosts,
        /// protocols, DSCP or ICMP types) and the link's control frames on a socket of their
        /// own, read first: when the CPU cannot keep up, the kernel drops bulk frames, not
        /// those (docs/architecture.md, Express lane). `off`: one socket per port.
        #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
        express: ExpressArg,
        /// After the last frame, keep polling the sockets this long (e.g. `200us`, `1ms`) before
        /// sleeping: less delay for a frame after a pause, at the cost of a busy core meanwhile.
        /// Run-to-completion and per-direction layouts only. Default: sleep at once.
        #[arg(long, value_name = "DURATION")]
        busy_poll: Option<String>,
        /// How the forwarding threads ask for the CPU: `realtime` (SCHED_FIFO 10: a thread
        /// that wakes runs at once, ahead of ordinary processes), `high` (nice -10: it may wait
        /// for another's time slice to end, milliseconds on a busy machine) or `normal`.
        /// Default: realtime, or high with --busy-poll (a polling real-time thread would keep
        /// its CPU from every ordinary thread). Needs root; without it, the threads stay normal.
        #[arg(long, value_enum, value_name = "PRIORITY")]
        priority: Option<PriorityArg>,
        /// Pin the forwarding threads to these CPUs (e.g. `3`, `2,3`, `2-5`), one each in order
        /// (thread i on the i-th, round again when there are more threads than CPUs); weir's
        /// other threads stay wherever the process may run. Give the forwarding threads CPUs
        /// of their own (docs/operations.md). Default: not pinned.
        #[arg(long, value_name = "LIST")]
        cpus: Option<String>,
        /// Print the final counters as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where `weir status`, `flows`, `reload`, `stop` and `top` reach this weir.
        #[arg(long = "control", value_name = "PATH", default_value = DEFAULT_SOCKET)]
        control: PathBuf,
        /// Let this group use the control socket too (mode 0660 instead of 0600, root's).
        #[arg(long, value_name = "GROUP")]
        control_group: Option<String>,
        /// Run without a control socket (then no status, reload or stop but by signals).
        #[arg(long, conflicts_with_all = ["control_group"])]
        no_control: bool,
        /// The pid file (removed at exit).
        #[arg(long, value_name = "PATH", default_value = DEFAULT_PID_FILE)]
        pid_file: PathBuf,
        /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<String>,
        /// Once the sockets are open, run as this user (the capabilities go too; they go in
        /// any case).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// More log detail (-v debug, -vv trace); RUST_LOG overrides.
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Show a running weir's counters: per port and class, rates, drops, queues, delays.
    Status(ControlArgs),
    /// List a running weir's active flows, busiest first.
    Flows {
        #[command(flatten)]
        control: ControlArgs,
        /// At most this many.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Only the flows of this class.
        #[arg(long, value_name = "CLASS")]
        class: Option<String>,
    },
    /// Have a running weir read its config again and swap it in, losing no queued frame.
    Reload(ControlArgs),
    /// Show each budget's count in its period, what is left and the next reset (a running
    /// weir's; else the store the config names).
    Budget {
        #[command(flatten)]
        control: ControlArgs,
        /// The config, for its store when no weir is running (default: $WEIR_CONFIG, else
        /// /etc/weir/weir.ron).
        #[arg(short, long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<BudgetAction>,
    },
    /// Have a running weir drain and stop, and wait until it has.
    Stop(ControlArgs),
    /// Watch a running weir live: rates, queues, drops, delays, busiest flows (q quits).
    Top(ControlArgs),
    /// Fail-open: bridge the two ports in the kernel while weir is not running, or stop that.
    Bypass {
        #[arg(value_enum)]
        action: bypass::Action,
        /// The config naming the ports (default: $WEIR_CONFIG, else /etc/weir/weir.ron).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// LAN-side interface (overrides ports.lan.interface).
        #[arg(long, value_name = "IF")]
        lan: Option<String>,
        /// WAN-side interface (overrides ports.wan.interface).
        #[arg(long, value_name = "IF")]
        wan: Option<String>,
        /// The kernel bridge's name.
        #[arg(long, value_name = "NAME", default_value = weir::tools::bypass::DEFAULT_BRIDGE)]
        bridge: String,
    },
    /// Put a capture on a wire at a chosen rate (a traffic generator, like tcpreplay).
    Send(send::SendArgs),
    /// Build or remove the three-namespace lab (weir-src -- weir-dut -- weir-dst).
    Lab {
        #[arg(value_enum)]
        action: LabAction,
    },
    /// Why frame N of a capture gets its class: its flow, server name, and each rule's tests.
    Explain {
        /// A pcap or pcapng file; without one, the running bridge is asked (--flow only).
        capture: Option<PathBuf>,
        /// The RON config file (default: $WEIR_CONFIG, else /etc/weir/weir.ron).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The frame to explain, counted from 1 as tshark and tcpdump number them.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
              required_unless_present = "flow", conflicts_with = "flow", requires = "capture")]
        frame: Option<u64>,
        /// The flow to explain, by its two endpoints in either order (`198.18.0.1:443
        /// 198.19.0.2:40000`, `[2001:db8::1]:53 ...`, an address alone for a flow without
        /// ports): in a capture, its last frame and every frame at which its class changed,
        /// with why; in a running bridge, the next frame of it that crosses.
        #[arg(long, value_name = "\"A B\"")]
        flow: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The control socket of the running bridge to ask (without a capture).
        #[arg(long = "control", value_name = "PATH", default_value = DEFAULT_SOCKET,
              conflicts_with = "capture")]
        control: PathBuf,
        /// How long the running bridge waits for a frame of the flow (0.001 to 20 s).
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0, conflicts_with = "capture",
              value_parser = wait_seconds)]
        wait: f64,
    },
    /// Print one line per frame of a capture or an interface (like tcpdump or Scapy's
    /// summary): addresses, ports, protocol, application and server name, and the class with
    /// -c; only the frames RULE matches (weir's rule language), if given.
    Sniff {
        /// A pcap or pcapng file, then the rule (its words may be given unquoted); with -i,
        /// all of it is the rule.
        #[arg(value_name = "CAPTURE [RULE]")]
        args: Vec<String>,
        /// Read this interface instead (read-only: nothing is sent; needs CAP_NET_RAW).
        #[arg(short, long, value_name = "IF")]
        interface: Option<String>,
        /// Show each frame's class and the port it would leave by under this config.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Stop after this many frames printed.
        #[arg(short = 'n', long, value_name = "COUNT")]
        count: Option<u64>,
        /// One JSON object per frame, per line.
        #[arg(long)]
        json: bool,
    },
    /// Write one self-contained HTML page about a capture: rates over time offered and
    /// forwarded, queueing delay, drops, applications, top talkers and flows, a host graph;
    /// shaped by CONFIG if given (docs/report.md).
    Report {
        /// A pcap or pcapng file (or --live).
        #[arg(required_unless_present = "live")]
        capture: Option<PathBuf>,
        /// The running bridge instead (its control socket: --control): its last minutes, from
        /// its own history (up to 5 minutes).
        #[arg(long, conflicts_with_all = ["capture", "config", "interval"])]
        live: bool,
        /// With --live: watch the coming SECONDS instead of drawing the last minutes.
        #[arg(long, value_name = "SECONDS", requires = "live",
              value_parser = clap::value_parser!(u32).range(2..=3600))]
        watch: Option<u32>,
        /// The control socket of the running bridge (with --live).
        #[arg(long = "control", value_name = "PATH", default_value = DEFAULT_SOCKET)]
        control: PathBuf,
        /// The config to shape the capture with; without it, the capture alone.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where to write the page.
        #[arg(
            short,
            long,
            value_name = "REPORT.html",
            default_value = "weir-report.html"
        )]
        out: PathBuf,
        /// The charts' interval (e.g. `100ms`, `1s`); default: about 300 over the capture.
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
    },
    /// Run a capture through the policy in virtual time and report what each class got.
    Replay {
        /// A pcap or pcapng file (Ethernet, Linux cooked, raw IP or loopback).
        capture: PathBuf,
        /// The RON config file (default: $WEIR_CONFIG, else /etc/weir/weir.ron).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Write the shaped capture (pcap, departure timestamps) here.
        #[arg(short, long, value_name = "OUT.pcap")]
        out: Option<PathBuf>,
        /// Print one JSON object instead of a table (schema: docs/replay-json.md).
        #[arg(long)]
        json: bool,
        /// Treat every frame as going this way, instead of deciding by `lan_networks`.
        #[arg(long, value_enum)]
        direction: Option<DirectionArg>,
        /// MTU of the link the capture was taken on: a TCP frame whose IP packet is longer is
        /// a super-frame of the host's TSO or GRO, charged and cut as segments of this size.
        #[arg(long, value_name = "BYTES", default_value_t = weir::pipeline::DEFAULT_MTU,
              value_parser = clap::value_parser!(u32).range(576..=65_535))]
        mtu: u32,
        /// Write one JSON line per flow here: addresses, times, frames and bytes each way,
        /// classes, server name and its source (schema: docs/replay-json.md).
        #[arg(long, value_name = "FILE")]
        flows: Option<PathBuf>,
        /// Also write the HTML report of the same replay here (as `weir report`).
        #[arg(long, value_name = "REPORT.html")]
        report: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum BudgetAction {
    /// Start budget NAME's count of this period again (its cap, if any, is lifted).
    Reset {
        /// The budget: a class's name, or a name of the top-level `budgets`.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum IoArg {
    /// AF_PACKET sockets driven directly: batched, GSO-aware (Linux).
    AfPacket,
    /// pnet_datalink: the portable fallback, one frame per system call, no GSO: the endpoints
    /// must turn offloads off (docs/io-backends.md).
    Pnet,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RxArg {
    /// recvmmsg: one system call per batch of up to 64 frames.
    Mmsg,
    /// PACKET_RX_RING (TPACKET_V3): frames read from a shared ring of blocks (up to 1 ms added
    /// delay at low rates).
    Ring,
    /// PACKET_RX_RING (TPACKET_V2): frames read from a shared ring of slots, each readable as
    /// soon as written.
    RingV2,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExpressArg {
    Auto,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ThreadsArg {
    RunToCompletion,
    PerDirection,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PriorityArg {
    Realtime,
    High,
    Normal,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LabAction {
    /// Create the namespaces, veth pairs and addresses.
    Up,
    /// Remove them (and any process left inside).
    Down,
    /// Show whether the lab exists.
    Status,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DirectionArg {
    /// LAN to WAN: frames leave on the wan port.
    Upload,
    /// WAN to LAN: frames leave on the lan port.
    Download,
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check::run(&config_path(config)),
        Command::Status(c) => status::run(&c),
        Command::Flows {
            control,
            top,
            class,
        } => flows::run(&control, top, class),
        Command::Reload(c) => reload::run(&c),
        Command::Budget {
            control,
            config,
            action,
        } => budget::run(
            &control,
            &config_path(config),
            action
                .as_ref()
                .map(|BudgetAction::Reset { name }| name.as_str()),
        ),
        Command::Stop(c) => stop::run(&c),
        Command::Top(c) => top::run(&c),
        Command::Bypass {
            action,
            config,
            lan,
            wan,
            bridge,
        } => bypass::run(action, &config_path(config), lan, wan, &bridge),
        Command::Run {
            config,
            lan,
            wan,
            io,
            rx,
            threads,
            workers,
            express,
            busy_poll,
            priority,
            cpus,
            json,
            control,
            control_group,
            no_control,
            pid_file,
            metrics,
            user,
            verbose,
        } => {
            init_logging(verbose);
            run::run(run::Settings {
                config: config_path(config),
                control: (!no_control).then_some(control),
                control_group,
                pid_file: Some(pid_file),
                metrics,
                user,
                lan,
                wan,
                io: match (io, rx) {
                    (IoArg::AfPacket, rx) => run::Io::AfPacket {
                        rx: match rx {
                            None | Some(RxArg::RingV2) => RxMode::RingV2,
                            Some(RxArg::Mmsg) => RxMode::Mmsg,
                            Some(RxArg::Ring) => RxMode::Ring,
                        },
                        // Only the default gives way; a mode asked for is one the user wants.
                        if_ring_fails: if rx.is_none() {
                            IfRingFails::UseMmsg
                        } else {
                            IfRingFails::Error
                        },
                    },
                    (IoArg::Pnet, None) => run::Io::Pnet,
                    (IoArg::Pnet, Some(_)) => {
                        eprintln!("weir: error: --rx chooses how the af-packet backend receives; it does not apply to --io pnet");
                        return Ok(ExitCode::from(2));
                    }
                },
                threads: match threads {
                    ThreadsArg::RunToCompletion => weir::runtime::Threads::RunToCompletion,
                    ThreadsArg::PerDirection => weir::runtime::Threads::PerDirection,
                },
                workers: usize::from(workers),
                express: matches!(express, ExpressArg::Auto),
                busy_poll: match busy_poll
                    .as_deref()
                    .map(weir::config::units::parse_duration)
                {
                    None => std::time::Duration::ZERO,
                    Some(Ok(ns)) => std::time::Duration::from_nanos(ns),
                    Some(Err(e)) => {
                        eprintln!(
                            "weir: error: --busy-poll: {e} (a duration such as 200us or 1ms)"
                        );
                        return Ok(ExitCode::from(2));
                    }
                },
                priority: match (priority, busy_poll.is_some()) {
                    (Some(PriorityArg::Realtime), _) | (None, false) => {
                        weir::runtime::Priority::RealTime(10)
                    }
                    (Some(PriorityArg::High), _) | (None, true) => {
                        weir::runtime::Priority::Nice(-10)
                    }
                    (Some(PriorityArg::Normal), _) => weir::runtime::Priority::Inherit,
                },
                cpus: match cpus.as_deref().map(run::parse_cpus) {
                    None => Vec::new(),
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        eprintln!(
                            "weir: error: --cpus: {e} (CPU numbers and ranges such as 2,3 or 2-5)"
                        );
                        return Ok(ExitCode::from(2));
                    }
                },
                json,
            })
        }
        Command::Lab { action } => lab::run(action),
        Command::Send(args) => match args.settings() {
            Ok(s) => send::run(s),
            Err(e) => {
                eprintln!("weir: error: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Explain {
            capture,
            config,
            frame,
            flow,
            json,
            control,
            wait,
        } => explain::run(explain::Settings {
            capture,
            config: config_path(config),
            frame,
            flow,
            json,
            control,
            wait_ms: Some((wait * 1e3).round() as u64),
        }),
        Command::Report {
            capture,
            live: _,
            watch,
            control,
            config,
            out,
            interval,
        } => {
            let Some(capture) = capture else {
                return report::run_live(&control, watch, &out);
            };
            let interval_ns = match interval.as_deref().map(weir::config::units::parse_duration) {
                None => None,
                Some(Ok(0)) | Some(Err(_)) => {
                    eprintln!("weir: error: --interval: give a duration above 0, e.g. 100ms or 1s");
                    return Ok(ExitCode::from(2));
                }
                Some(Ok(ns)) => Some(ns),
            };
            report::run(report::Settings {
                capture,
                config,
                out,
                interval_ns,
            })
        }
        Command::Sniff {
            mut args,
            interface,
            config,
            count,
            json,
        } => {
            let source = match interface {
                Some(i) => sniff::Source::Interface(i),
                None if args.is_empty() => {
                    eprintln!("weir: error: sniff needs a capture file, or -i IF for an interface");
                    return Ok(ExitCode::from(2));
                }
                None => sniff::Source::Capture(PathBuf::from(args.remove(0))),
            };
            sniff::run(sniff::Settings {
                source,
                rule: (!args.is_empty()).then(|| args.join(" ")),
                config,
                count,
                json,
            })
        }
        Command::Replay {
            capture,
            config,
            out,
            json,
            direction,
            mtu,
            flows,
            report,
        } => replay::run(replay::Settings {
            capture,
            config: config_path(config),
            out,
            json,
            report,
            opts_flows: flows.clone(),
            opts: weir::replay::ReplayOptions {
                direction: direction.map(|d| match d {
                    DirectionArg::Upload => weir::replay::Direction::Upload,
                    DirectionArg::Download => weir::replay::Direction::Download,
                }),
                mtu,
                flows: flows.is_some(),
            },
        }),
    }
}

/// Log to stderr through `tracing`: info and up by default, `-v` debug, `-vv` trace; `RUST_LOG`
/// (e.g. `RUST_LOG=weir=debug`) overrides.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Load a config, printing its error (which carries file:line:column) as is.
fn load_config(path: &std::path::Path) -> Result<weir::config::Plan, ExitCode> {
    weir::config::load(path).map_err(|e| {
        eprintln!("weir: error: {e}");
        ExitCode::FAILURE
    })
}
