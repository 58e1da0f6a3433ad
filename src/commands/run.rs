//! `weir run -c CONFIG [--lan IF --wan IF]`: the live bridge, in the foreground (as systemd
//! runs it: `Type=notify`, configs/weir.service).
//!
//! Start-up checks come before any socket is opened, each with its own message and a non-zero
//! exit: an interface missing, down, named twice, or with an MTU different from the other's;
//! then another weir already answering on the control socket. Once forwarding, weir answers on
//! its control socket (`weir status`, `flows`, `reload`, `stop`, `top`), reloads on SIGHUP,
//! serves `/metrics` when asked, tells systemd it is ready, reloading or stopping, and pets its
//! watchdog while every forwarding thread keeps publishing. It logs through `tracing` to
//! stderr. Ctrl-C, SIGTERM or `weir stop` stops receiving; queued frames get a bounded time to
//! leave; the per-class counters are printed and the exit code is 0 (1 when a device failed). After them, for each port where the kernel
//! dropped frames before weir could take them (its receive ring or socket buffer full), a line
//! says how many: weir never received those, so they are outside `received = forwarded +
//! dropped`.

use anyhow::{bail, Context};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir::control::metrics::MetricsServer;
use weir::control::monitor::Monitor;
use weir::control::protocol::ConfigStatus;
use weir::control::{Control, ControlSocket, PidFile};
use weir::io::af_packet::{AfPacket, AfPacketOptions, Fanout, IfRingFails, RxMode};
use weir::io::sys::netdev::{interface_info, IfInfo};
use weir::port::Side;
use weir::runtime::{self, KernelDrops, PortIo};

/// The packet I/O backend and its receive mode.
#[derive(Clone, Copy, Debug)]
pub enum Io {
    /// `if_ring_fails`: [`IfRingFails::UseMmsg`] when the receive mode was not chosen, so a
    /// ring that cannot be set up (memory limits) gives way to recvmmsg with a warning instead
    /// of an error.
    AfPacket {
        rx: RxMode,
        if_ring_fails: IfRingFails,
    },
    Pnet,
}

pub struct Settings {
    pub config: PathBuf,
    pub lan: Option<String>,
    pub wan: Option<String>,
    pub io: Io,
    pub threads: runtime::Threads,
    /// Workers per direction, each with its own sockets (a fanout group per port).
    pub workers: usize,
    /// Receive the best priority's traffic on a socket of its own (runtime::express).
    pub express: bool,
    pub busy_poll: std::time::Duration,
    pub priority: runtime::Priority,
    /// `--cpus`: the forwarding threads' CPUs, in order (empty: not pinned).
    pub cpus: Vec<usize>,
    pub json: bool,
    /// The control socket, or none (`--no-control`).
    pub control: Option<PathBuf>,
    pub control_group: Option<String>,
    pub pid_file: Option<PathBuf>,
    pub metrics: Option<String>,
    /// Become this user once the sockets are open.
    pub user: Option<String>,
}

pub fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let (plan, file) = match weir::control::ConfigFile::load(&s.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("weir: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let name_of = |side: Side, flag: &Option<String>| -> anyhow::Result<String> {
        match flag.clone().or_else(|| plan.port(side).interface.clone()) {
            Some(n) => Ok(n),
            None => bail!(
                "no interface for port {0}: give --{0} IF, or set ports.{0}.interface in {1}",
                side.name(),
                s.config.display()
            ),
        }
    };
    let lan_if = name_of(Side::Lan, &s.lan)?;
    let wan_if = name_of(Side::Wan, &s.wan)?;
    if lan_if == wan_if {
        bail!("the lan and wan ports are both {lan_if}: weir bridges two different interfaces");
    }
    let lan_info = check_interface(&lan_if, "lan")?;
    let wan_info = check_interface(&wan_if, "wan")?;
    check_cpus(&s.cpus)?;
    if lan_info.mtu != wan_info.mtu {
        bail!(
            "MTUs differ: {lan_if} has {} and {wan_if} has {}: frames from one side could not \
             cross to the other; set both alike, e.g. ip link set {wan_if} mtu {}",
            lan_info.mtu,
            wan_info.mtu,
            lan_info.mtu
        );
    }

    // Until the kernel's link watcher has run on a device that just came up, frames sent on it
    // vanish without an error: wait (bounded) for carrier on both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    for name in [&lan_if, &wan_if] {
        while !interface_info(name).map(|i| i.running).unwrap_or(true) {
            if std::time::Instant::now() >= deadline {
                tracing::warn!("{name} has no carrier yet; frames sent to it may be lost");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    // Each worker's ports, and the receive mode of each port (lan, wan): None with pnet.
    let (workers, rx_modes) = match s.io {
        Io::AfPacket { rx, if_ring_fails } => {
            // A fanout group per port and lane, when there are several workers: the first
            // worker's sockets make them (the kernel picks ids unused in the namespace), the
            // others join.
            let mut groups: [Option<[Option<u16>; 2]>; 2] =
                [(s.workers > 1).then_some([None, None]); 2];
            // Frames received on a port leave by the other: its classes choose the lane.
            let lanes = Side::BOTH.map(|ingress| {
                let egress = ingress.other();
                if !s.express {
                    return None;
                }
                match runtime::express::lane(&plan, egress) {
                    Ok(Some(l)) => {
                        tracing::info!(
                            "express lane on port {}: frames of class {} (leaving on {}) and \
                             the link's control frames are received apart and read first",
                            ingress.name(),
                            l.classes.join(", "),
                            egress.name()
                        );
                        Some(l)
                    }
                    Ok(None) => None,
                    Err(why) => {
                        tracing::info!(
                            "no express lane on port {} (for frames leaving on {}): {why}",
                            ingress.name(),
                            egress.name()
                        );
                        None
                    }
                }
            });
            let mut sets = Vec::with_capacity(s.workers);
            let mut modes = [None, None];
            for _ in 0..s.workers {
                let [lan_groups, wan_groups] = &mut groups;
                let (lan, lan_rx) = open_af_packet(
                    &lan_if,
                    rx,
                    if_ring_fails,
                    lan_groups.as_mut(),
                    lanes[0].as_ref(),
                )?;
                let (wan, wan_rx) = open_af_packet(
                    &wan_if,
                    rx,
                    if_ring_fails,
                    wan_groups.as_mut(),
                    lanes[1].as_ref(),
                )?;
                sets.push([lan, wan]);
                modes = [Some(lan_rx), Some(wan_rx)];
            }
            (sets, modes)
        }
        Io::Pnet if s.workers > 1 => {
            bail!("--workers needs the af-packet backend (pnet cannot spread a port's frames over sockets)")
        }
        Io::Pnet => {
            tracing::warn!(
                "the pnet backend passes no offload state: turn off tx checksum, TSO and GSO on \
                 the hosts sending through weir (ethtool -K IF tx off tso off gso off), or their \
                 TCP will not cross"
            );
            (
                vec![[open_pnet(&lan_if)?, open_pnet(&wan_if)?]],
                [None, None],
            )
        }
    };
    // The receive mode of both ports: None with pnet, or when only one port fell back (its
    // warning says so).
    let rx_used = if rx_modes[0] == rx_modes[1] {
        rx_modes[0]
    } else {
        None
    };
    match rx_used {
        Some(RxMode::Ring) => tracing::info!(
            "receiving from TPACKET_V3 rings of {} MiB per port (blocks retire after {} ms at most)",
            weir::io::af_packet::RX_RING_BYTES >> 20,
            weir::io::af_packet::RX_RING_RETIRE_MS
        ),
        Some(RxMode::RingV2) => tracing::info!(
            "receiving from TPACKET_V2 rings of {} slots of {} KiB per port",
            weir::io::af_packet::RX_SLOTS,
            weir::io::af_packet::RX_SLOT >> 10
        ),
        Some(RxMode::Mmsg) | None => {}
    }

    // The control socket before anything starts: a second weir stops here.
    let socket = match &s.control {
        Some(path) => Some(ControlSocket::bind(path, s.control_group.as_deref())?),
        None => None,
    };
    let pid_file = match &s.pid_file {
        Some(p) => Some(
            PidFile::create(p)
                .with_context(|| format!("cannot write the pid file {}", p.display()))?,
        ),
        None => None,
    };

    let metrics = match &s.metrics {
        Some(addr) => Some(MetricsServer::bind(addr).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let user = match &s.user {
        Some(name) => Some(
            weir::io::sys::user_ids(name)
                .with_context(|| format!("--user {name}: no such user on this machine"))?,
        ),
        None => None,
    };
    // The budgets' store, opened while weir may still write under /var/lib.
    let (budget_store, saved_budgets) = if plan.budgets.is_empty() {
        (None, Vec::new())
    } else {
        let store = weir::budget::store::Store::open(&plan.budget_store.path).with_context(|| {
            "the budgets' counts must be kept (set budget_store.path in the config to a writable file)"
        })?;
        let saved = store.load()?.into_iter().map(|(s, _)| s).collect();
        tracing::info!("budget counts in {}", store.path().display());
        (Some(store), saved)
    };
    // Signals are caught from here on; the thread that acts on them starts later, without
    // privileges.
    let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install the signal handlers")?;

    let stop = Arc::new(AtomicBool::new(false));
    let opts = runtime::Options {
        threads: s.threads,
        busy_poll: s.busy_poll,
        priority: s.priority,
        mtu: lan_info.mtu,
        // With --user the switch empties every thread's capabilities at once (the C library
        // changes the user of every thread, and a thread without CAP_SETUID would fail it).
        drop_privileges: user.is_none(),
        saved_budgets,
        cpus: s.cpus.clone(),
        ..runtime::Options::default()
    };
    if !weir::io::sys::can_raise_priority() {
        tracing::info!(
            "without CAP_SYS_NICE: forwarding threads keep normal priority (root has it; a service can be given it)"
        );
    } else if let runtime::Priority::RealTime(p) = s.priority {
        // Ask once here so the answer can be told: each thread asks again for itself.
        let refused = std::thread::spawn(move || weir::io::sys::set_thread_realtime(i32::from(p)))
            .join()
            .map_or(None, Result::err);
        if let Some(e) = refused {
            tracing::info!(
                "real-time priority refused ({e}); forwarding threads run at nice -10 \
                 (expect millisecond delays on a busy machine; --priority high says so and silences this)"
            );
        }
    }
    let plan = Arc::new(plan);
    let bridge = runtime::start_workers(Arc::clone(&plan), workers, Arc::clone(&stop), &opts)?;
    // Everything privileged is done: the sockets are open, the forwarding threads have their
    // priority (and gave up their capabilities). This thread and those it starts next give up
    // theirs, or leave root altogether.
    if let (Some((uid, gid)), Some(name)) = (user, &s.user) {
        if let Err(e) = weir::io::sys::switch_user(uid, gid) {
            stop.store(true, Ordering::Relaxed);
            let _ = bridge.wait();
            bail!("--user {name}: cannot become uid {uid} gid {gid}: {e}");
        }
        tracing::info!("running as {name} (uid {uid}, gid {gid})");
    }
    if let Err(e) = weir::io::sys::drop_capabilities() {
        tracing::warn!("could not give up capabilities: {e}");
    }
    let done = Arc::new(AtomicBool::new(false));
    let budget_keeper = budget_store.map(|store| {
        keep_budgets(
            store,
            Arc::clone(&bridge.published().ledger),
            plan.budget_store.flush,
            Arc::clone(&done),
        )
    });
    let control = Arc::new(Control::new(
        Monitor::new(
            Arc::clone(bridge.published()),
            Arc::clone(bridge.clock()),
            {
                let layout = match s.threads {
                    runtime::Threads::RunToCompletion => "run-to-completion",
                    runtime::Threads::PerDirection => "per-direction",
                };
                match s.workers {
                    1 => layout.to_string(),
                    n => format!("{layout} x {n} workers"),
                }
            },
            bridge.interfaces().clone(),
            plan,
            ConfigStatus {
                path: file.path.display().to_string(),
                sha256: file.sha256,
                generation: 0,
                reloads_refused: 0,
            },
        ),
        bridge.requests().to_vec(),
        Arc::clone(&stop),
        s.config.clone(),
        true,
    ));
    let mut helpers = Vec::new();
    let signals_handle = signals.handle();
    helpers.push(handle_signals(
        signals,
        Arc::clone(&stop),
        Arc::clone(&control),
    )?);
    if let Some(socket) = socket {
        let path = socket.path().display().to_string();
        helpers.push(socket.serve(Arc::clone(&control), Arc::clone(&done))?);
        tracing::info!("control socket {path} (weir status, flows, reload, stop, top)");
    }
    if let Some(m) = metrics {
        tracing::info!("metrics at http://{}/metrics", m.addr());
        helpers.push(m.serve(Arc::clone(&control), Arc::clone(&done))?);
    }
    tracing::info!(
        "bridging lan {lan_if} <-> wan {wan_if} (MTU {}), config {}; Ctrl-C to stop",
        lan_info.mtu,
        s.config.display()
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = Watchdog::start(Arc::clone(&control), Arc::clone(&done));

    let report = bridge.wait();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    done.store(true, Ordering::Relaxed);
    signals_handle.close();
    for t in helpers {
        let _ = t.join();
    }
    drop(watchdog);
    // After the forwarding threads' last counts: written once more as it ends.
    if let Some(t) = budget_keeper {
        let _ = t.join();
    }
    drop(pid_file);
    let report = report?;
    tracing::info!("stopped after {:.1} s", report.seconds);
    if report.gso_split.super_frames > 0 {
        tracing::info!(
            "{} GSO super-frames cut into {} segments for classes under {} (counted as frames received)",
            report.gso_split.super_frames,
            report.gso_split.segments,
            weir::config::units::format_rate_approx(weir::pipeline::SPLIT_GSO_BELOW_BPS),
        );
    }
    if let Some(e) = &report.error {
        tracing::error!("{e}");
    }

    let mut out = std::io::stdout().lock();
    if s.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        super::render::table::write_classes(&mut out, &report.classes)?;
        writeln!(out)?;
        for side in [Side::Wan, Side::Lan] {
            let (mut rx, mut fwd, mut drop, mut q) = (0, 0, 0, 0);
            for c in report.classes.iter().filter(|c| c.port == side.name()) {
                rx += c.received_frames;
                fwd += c.forwarded_frames;
                drop += c.dropped_frames;
                q += c.queued_frames;
            }
            writeln!(
                out,
                "port {}: received {rx} = forwarded {fwd} + dropped {drop}{}",
                side.name(),
                if q > 0 {
                    format!(" + queued {q}")
                } else {
                    String::new()
                }
            )?;
        }
        for side in [Side::Lan, Side::Wan] {
            let drops = &report.kernel_drops[side.index()];
            if let Some(line) = kernel_drops_line(side, drops, rx_modes[side.index()]) {
                writeln!(out, "{line}")?;
            }
        }
        let o = &report.owners;
        if o.asked + o.questions_dropped > 0 {
            writeln!(
                out,
                "owners: {} flows asked for, {} found, {} not found, {} questions and {} answers \
                 lost to full queues; {} frames classified before their owner was known; \
                 lookup p50 {} us, p99 {} us, max {} us",
                o.asked,
                o.found,
                o.unknown,
                o.questions_dropped,
                o.answers_dropped,
                o.frames_before_owner,
                o.lookup_us_p50,
                o.lookup_us_p99,
                o.lookup_us_max
            )?;
        }
    }
    if report.totals.received
        != report.totals.forwarded + report.totals.dropped + report.totals.queued
        || report.buffers_outstanding != 0
    {
        tracing::error!(
            "internal error: counters do not reconcile ({:?}, {} buffers outstanding)",
            report.totals,
            report.buffers_outstanding
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// SIGINT and SIGTERM stop the bridge (it drains, then reports); SIGHUP does what `weir reload`
/// does, the outcome going to the log. (signal-hook rather than ctrlc here: ctrlc's
/// termination handler takes SIGHUP for a stop.) The thread ends when `signals` is closed
/// through its handle.
fn handle_signals(
    mut signals: signal_hook::iterator::Signals,
    stop: Arc<AtomicBool>,
    control: Arc<Control>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    Ok(std::thread::Builder::new()
        .name("weir-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    tracing::info!("SIGHUP: reloading");
                    // The outcome, refusals included, is logged by the reload itself.
                    let _ = control.reload();
                } else {
                    tracing::info!("signal {signal}: stopping");
                    stop.store(true, Ordering::Relaxed);
                }
            }
        })?)
}

/// Tells systemd's watchdog that weir is alive, while every forwarding thread keeps publishing
/// (a thread stuck for longer than the watchdog's interval stops the pings).
struct Watchdog {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(control: Arc<Control>, done: Arc<AtomicBool>) -> Watchdog {
        let mut usec = 0;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return Watchdog { thread: None };
        }
        let every = std::time::Duration::from_micros(usec / 2);
        let stale_after = std::time::Duration::from_micros(usec / 2).as_secs_f64() * 1e3;
        let thread = std::thread::Builder::new()
            .name("weir-watchdog".into())
            .spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let age_ms = control.monitor().status(false).age_ms;
                    if age_ms < stale_after {
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    } else {
                        tracing::error!("a forwarding thread has not published for {age_ms:.0} ms: not telling the watchdog");
                    }
                    let mut slept = std::time::Duration::ZERO;
                    while slept < every && !done.load(Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        slept += std::time::Duration::from_millis(50);
                    }
                }
            })
            .ok();
        Watchdog { thread }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What to say about frames the kernel dropped as they arrived at port `side`, before weir
/// could take them; `None` when there were none (or the backend cannot tell). `rx` is the
/// port's receive mode, which says where they were dropped.
fn kernel_drops_line(side: Side, drops: &KernelDrops, rx: Option<RxMode>) -> Option<String> {
    let n = drops.frames.filter(|&n| n > 0)?;
    let full = match rx {
        Some(RxMode::Ring | RxMode::RingV2) => "receive ring full",
        Some(RxMode::Mmsg) => "socket receive buffer full",
        None => "receive queue full",
    };
    Some(format!(
        "port {}: the kernel dropped {n} frame{} arriving on {} before weir could take them \
         ({full}: weir was too slow); they are not in port {}'s counts above",
        side.name(),
        if n == 1 { "" } else { "s" },
        drops.interface,
        side.other().name(),
    ))
}

fn check_interface(name: &str, port: &str) -> anyhow::Result<IfInfo> {
    let info = interface_info(name).with_context(|| format!("port {port}"))?;
    if let Some(master) = &info.master {
        bail!(
            "port {port}: interface {name} is enslaved to {master}: the kernel forwards its frames \
             too, so every frame would cross twice; take it out first (weir bypass off, if the \
             fail-open bypass is on; else ip link set {name} nomaster)"
        );
    }
    if !info.up {
        bail!("port {port}: interface {name} is down: bring it up with `ip link set {name} up`");
    }
    Ok(info)
}

/// One pnet channel per port, shared by its receive and send halves (so the port never
/// receives what it sends).
fn open_pnet(name: &str) -> anyhow::Result<PortIo> {
    let (rx, tx) = weir::io::pnet::open_pair(name, true)?;
    Ok(PortIo {
        rx: Box::new(rx),
        tx: Box::new(tx),
        express: None,
    })
}

/// One socket to receive (promiscuous, never seeing its own or other local transmissions) and
/// one to send, with vnet headers on both so GSO super-frames cross whole; and the receive
/// mode the port got (`rx`, or recvmmsg when it fell back).
/// With an express lane, two receiving sockets whose filters split the frames between them.
/// `groups`: with several workers, the fanout groups of the port's receiving sockets (its own,
/// the express lane's): a group not made yet (`None`) is made and its id written back.
fn open_af_packet(
    name: &str,
    rx: RxMode,
    if_ring_fails: IfRingFails,
    mut groups: Option<&mut [Option<u16>; 2]>,
    lane: Option<&runtime::express::Lane>,
) -> anyhow::Result<(PortIo, RxMode)> {
    let opts = |filter, fanout: Option<Option<u16>>| AfPacketOptions {
        promiscuous: true,
        vnet_hdr: true,
        send_only: false,
        rx,
        fanout: fanout.map(|id| id.map_or(Fanout::New, Fanout::Join)),
        filter,
    };
    // The group of socket `i` (0: the port's own, 1: the express lane's) once it is open.
    fn learn(
        groups: &mut Option<&mut [Option<u16>; 2]>,
        i: usize,
        dev: &AfPacket,
    ) -> anyhow::Result<()> {
        if let Some(g) = groups.as_deref_mut() {
            if g[i].is_none() {
                g[i] = dev.fanout_group().with_context(|| {
                    format!(
                        "reading the fanout group of {}",
                        weir::io::Device::name(dev)
                    )
                })?;
            }
        }
        Ok(())
    }
    let opened = AfPacket::open_or_fall_back(
        name,
        &opts(
            lane.map(|l| Arc::clone(&l.bulk)),
            groups.as_ref().map(|g| g[0]),
        ),
        if_ring_fails,
    )?;
    learn(&mut groups, 0, &opened.device)?;
    let express: Option<Box<dyn weir::io::Device>> = match lane {
        Some(l) => {
            let dev = AfPacket::open_or_fall_back(
                name,
                &AfPacketOptions {
                    rx: opened.device.rx_mode(),
                    ..opts(Some(Arc::clone(&l.express)), groups.as_ref().map(|g| g[1]))
                },
                if_ring_fails,
            )?;
            learn(&mut groups, 1, &dev.device)?;
            Some(Box::new(dev.device))
        }
        None => None,
    };
    if let Some(why) = &opened.fallback {
        tracing::warn!("{why} (--rx mmsg says so and silences this)");
    }
    let tx = AfPacket::open(
        name,
        &AfPacketOptions {
            promiscuous: false,
            vnet_hdr: true,
            send_only: true,
            ..AfPacketOptions::default()
        },
    )?;
    let rx_used = opened.device.rx_mode();
    Ok((
        PortIo {
            rx: Box::new(opened.device),
            tx: Box::new(tx),
            express,
        },
        rx_used,
    ))
}

/// Write the budgets' counts to `store` every `every` when they changed, and once more when
/// `done` is set (after the forwarding threads' last sync). A failed write is logged and
/// tried again at the next turn: counting goes on in memory.
fn keep_budgets(
    mut store: weir::budget::store::Store,
    ledger: Arc<weir::budget::Ledger>,
    every: u64,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128)
        };
        let mut failing = false;
        let mut write = |force: bool| {
            if let Some(counts) = ledger.take_changes(force || failing) {
                match store.save(&counts, wall()) {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("budget counts written again to {}", store.path().display());
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!("{e}; counting goes on, the write is tried again");
                    }
                    Err(_) => {}
                }
            }
        };
        let step = std::time::Duration::from_millis(50);
        let mut next = std::time::Instant::now() + std::time::Duration::from_nanos(every);
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            if std::time::Instant::now() >= next {
                write(false);
                next += std::time::Duration::from_nanos(every);
            }
        }
        write(true);
    })
}

/// `--cpus LIST`: CPU numbers and ranges, comma-separated (`3`, `2,3`, `2-5,8`), in the
/// order the forwarding threads take them.
pub fn parse_cpus(list: &str) -> Result<Vec<usize>, String> {
    let number = |n: &str| {
        n.trim()
            .parse::<usize>()
            .map_err(|_| format!("{n:?} is not a CPU number"))
    };
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return Err(format!("the range {part:?} runs backwards"));
                }
                if b - a >= 4096 {
                    return Err(format!("the range {part:?} is longer than any machine"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(number(part)?),
        }
    }
    Ok(cpus)
}

/// Every CPU of `--cpus` must take a thread of weir (online, in its cpuset), tried on a thread
/// of its own: the process's own affinity may leave those CPUs out on purpose (`taskset -c 0
/// weir run --cpus 1` keeps weir's other threads off the forwarding CPU).
fn check_cpus(cpus: &[usize]) -> anyhow::Result<()> {
    for &cpu in cpus {
        let tried = std::thread::spawn(move || weir::io::sys::pin_thread(cpu))
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the check panicked")));
        if let Err(e) = tried {
            bail!(
                "--cpus: CPU {cpu} cannot take a thread of weir here (offline, or outside its \
                 cpuset: {e}); give CPUs this machine has online (/sys/devices/system/cpu/online)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_numbers_and_ranges_in_order() {
        assert_eq!(parse_cpus("3"), Ok(vec![3]));
        assert_eq!(parse_cpus("2,0"), Ok(vec![2, 0]));
        assert_eq!(parse_cpus("2-4,8"), Ok(vec![2, 3, 4, 8]));
        assert_eq!(parse_cpus(" 1 , 5-5"), Ok(vec![1, 5]));
        for bad in ["", "a", "1,", "3-1", "-2", "1-", "0-100000"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_cpus(&[usize::MAX]).is_err(), "a CPU no machine has");
        assert!(check_cpus(&[]).is_ok());
        let mine = weir::io::sys::allowed_cpus().unwrap();
        assert!(check_cpus(&mine).is_ok(), "{mine:?}");
    }

    fn drops(frames: Option<u64>) -> KernelDrops {
        KernelDrops {
            port: "lan",
            interface: "lan0".into(),
            frames,
        }
    }

    #[test]
    fn kernel_drops_are_told_per_port_only_when_there_are_some() {
        assert_eq!(
            kernel_drops_line(Side::Lan, &drops(Some(12345)), Some(RxMode::RingV2)).unwrap(),
            "port lan: the kernel dropped 12345 frames arriving on lan0 before weir could take \
             them (receive ring full: weir was too slow); they are not in port wan's counts above"
        );
        let mmsg = kernel_drops_line(Side::Lan, &drops(Some(1)), Some(RxMode::Mmsg)).unwrap();
        assert!(
            mmsg.contains("dropped 1 frame arriving")
                && mmsg.contains("(socket receive buffer full: weir was too slow)"),
            "{mmsg}"
        );
        assert_eq!(
            kernel_drops_line(Side::Lan, &drops(Some(0)), Some(RxMode::Ring)),
            None
        );
        assert_eq!(kernel_drops_line(Side::Lan, &drops(None), None), None);
    }
}
