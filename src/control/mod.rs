//! The control plane of a running bridge: the control socket and its protocol, reload, and the
//! metrics exposition. Nothing here runs on a forwarding thread.
//!
//! Threads: one control thread accepts connections on the Unix socket and samples the
//! published counters every [`monitor::SAMPLE_EVERY`]; each connection is served on a short
//! thread of its own (at most [`MAX_CONNECTIONS`] at once), so a slow client holds up no other.
//! Requests that need the forwarding threads (flows, explain, reload) reach them through their
//! bounded request channels and wait for their answers with a deadline.
//! Access: the socket is made under a temporary name, given its owner and mode (0600, or 0660
//! with a group), then renamed into place, so it is never reachable with looser permissions.
//! Reload: one at a time. The file is read and validated here, away from forwarding; a file
//! that does not validate, or that changes what needs a restart (interfaces, the flow table),
//! is refused and the running policy stays. Otherwise every forwarding thread swaps it in
//! between two of its turns (docs/operations.md, Reload).

pub mod client;
pub mod metrics;
pub mod monitor;
pub mod protocol;

use crate::config::Plan;
use crate::runtime::published::{merge_flows, FlowEntry, Request as FwdRequest};
use crossbeam_channel::{bounded, Sender};
use monitor::Monitor;
use protocol::{
    BudgetReport, Command, ConfigStatus, ExplainStatus, FlowStatus, ReloadStatus, Request,
    Response, StopStatus,
};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 8;

/// How long a forwarding thread has to answer a request.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A client's request line must come within this, and may be this long at most.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_LINE: u64 = 64 * 1024;

/// Flows listed at most by `weir flows`.
pub const MAX_FLOWS: usize = 10_000;

/// How long `weir explain` of a running bridge waits for a frame of its flow, by default and
/// at most (within the client's own deadline for an answer). While it waits, a forwarding
/// thread parses each frame once more to compare it with the flow.
pub const EXPLAIN_WAIT_MS: u64 = 5_000;
pub const MAX_EXPLAIN_WAIT_MS: u64 = 20_000;

/// The config file a policy came from, and what was read of it.
pub struct ConfigFile {
    pub path: PathBuf,
    pub sha256: String,
}

impl ConfigFile {
    /// Read and validate `path`: the plan and the hash of the bytes it came from.
    pub fn load(path: &Path) -> Result<(Plan, ConfigFile), crate::config::ConfigError> {
        let src = crate::config::read(path)?;
        let plan = crate::config::parse(&src, path)?;
        let sha256 = Sha256::digest(src.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((
            plan,
            ConfigFile {
                path: path.to_path_buf(),
                sha256,
            },
        ))
    }
}

/// What the control plane acts on.
pub struct Control {
    monitor: Mutex<Monitor>,
    /// Where requests reach each forwarding thread.
    forwarders: Vec<Sender<FwdRequest>>,
    stop: Arc<AtomicBool>,
    config_path: PathBuf,
    /// The plan weir started with: what a reload may not change is compared with it.
    start_plan: Arc<Plan>,
    reloading: Mutex<()>,
    /// Tell systemd about reloads (`Type=notify`).
    notify: bool,
}

impl Control {
    pub fn new(
        monitor: Monitor,
        forwarders: Vec<Sender<FwdRequest>>,
        stop: Arc<AtomicBool>,
        config_path: PathBuf,
        notify: bool,
    ) -> Control {
        let start_plan = Arc::clone(monitor.plan());
        Control {
            monitor: Mutex::new(monitor),
            forwarders,
            stop,
            config_path,
            start_plan,
            reloading: Mutex::new(()),
            notify,
        }
    }

    pub fn monitor(&self) -> std::sync::MutexGuard<'_, Monitor> {
        self.monitor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer one request.
    pub fn handle(&self, req: &Request) -> Response {
        if req.v != protocol::VERSION {
            return Response::error(format!(
                "protocol version {} is not spoken here: this weir speaks version {} (use the weir command of the same release)",
                req.v,
                protocol::VERSION
            ));
        }
        match &req.command {
            Command::Status { history } => Response::status(self.monitor().status(*history)),
            Command::Flows { top, class } => match self.flows(top.unwrap_or(MAX_FLOWS), class) {
                Ok(f) => Response::flows(f),
                Err(e) => Response::error(e),
            },
            Command::Explain { flow, wait_ms } => match self.explain(flow, *wait_ms) {
                Ok(e) => Response::explain(e),
                Err(e) => Response::error(e),
            },
            Command::Reload => match self.reload() {
                Ok(r) => Response::reload(r),
                Err(e) => Response::error(e),
            },
            Command::Budget => Response::budget(self.budgets()),
            Command::Seconds => Response::seconds(self.monitor().seconds()),
            Command::BudgetReset { name } => {
                let ledger = Arc::clone(&self.monitor().published().ledger);
                if ledger.reset(name) {
                    tracing::info!("budget {name} reset on the control socket");
                    Response::budget(self.budgets())
                } else {
                    let names: Vec<String> = ledger.status().into_iter().map(|b| b.name).collect();
                    Response::error(if names.is_empty() {
                        format!("no budget `{name}`: the running config has no budgets")
                    } else {
                        format!("no budget `{name}`; the budgets are: {}", names.join(", "))
                    })
                }
            }
            Command::Stop => {
                tracing::info!("stop asked on the control socket");
                self.stop.store(true, Ordering::Relaxed);
                Response::stop(StopStatus {
                    pid: std::process::id(),
                })
            }
        }
    }

    /// The budgets' counts now.
    pub fn budgets(&self) -> BudgetReport {
        let (plan, ledger) = {
            let m = self.monitor();
            (Arc::clone(m.plan()), Arc::clone(&m.published().ledger))
        };
        budget_report(&plan, ledger.status(), "running")
    }

    /// Every live flow of every forwarding thread, merged, busiest first.
    pub fn flows(&self, top: usize, class: &Option<String>) -> Result<Vec<FlowStatus>, String> {
        let limit = top.min(MAX_FLOWS);
        let mut replies = Vec::new();
        for f in &self.forwarders {
            let (tx, rx) = bounded(1);
            f.try_send(FwdRequest::Flows {
                limit: MAX_FLOWS,
                reply: tx,
            })
            .map_err(|_| "weir is stopping, or too busy to answer: try again".to_string())?;
            replies.push(rx);
        }
        let mut all: Vec<FlowEntry> = Vec::new();
        for rx in replies {
            let flows = rx
                .recv_timeout(ANSWER_WITHIN)
                .map_err(|_| "a forwarding thread did not answer in time".to_string())?;
            merge_flows(&mut all, flows);
        }
        if let Some(c) = class {
            all.retain(|f| f.class.iter().any(|n| n.as_deref() == Some(c.as_str())));
        }
        all.sort_by(|a, b| crate::runtime::published::by_activity(&a.info, &b.info));
        all.truncate(limit);
        let now = self.monitor().now();
        Ok(all
            .iter()
            .map(|f| FlowStatus::new(&f.info, &f.class, now))
            .collect())
    }

    /// Why the next frame of `flow` gets its class: the first frame of it that any forwarding
    /// thread receives within `wait_ms` milliseconds.
    pub fn explain(&self, flow: &str, wait_ms: Option<u64>) -> Result<ExplainStatus, String> {
        let ends: crate::classify::flow::FlowEnds = flow.parse()?;
        let wait_ms = wait_ms.unwrap_or(EXPLAIN_WAIT_MS);
        if !(1..=MAX_EXPLAIN_WAIT_MS).contains(&wait_ms) {
            return Err(format!(
                "wait {wait_ms} ms: give a wait of 1 to {MAX_EXPLAIN_WAIT_MS} milliseconds"
            ));
        }
        let wait = Duration::from_millis(wait_ms);
        let wait_s = wait.as_secs_f64();
        let started = std::time::Instant::now();
        let (tx, rx) = bounded(self.forwarders.len());
        for f in &self.forwarders {
            f.try_send(FwdRequest::Explain {
                ends,
                wait: wait.as_nanos() as crate::time::Nanos,
                reply: tx.clone(),
            })
            .map_err(|_| "weir is stopping, or too busy to answer: try again".to_string())?;
        }
        drop(tx);
        let none_came = || {
            format!(
                "no frame of the flow \"{flow}\" crossed weir in {wait_s} s (is it active? `weir \
                 flows` lists the active flows; --wait waits longer)"
            )
        };
        let deadline = started + wait + ANSWER_WITHIN;
        let mut answered = 0;
        while answered < self.forwarders.len() {
            match rx.recv_deadline(deadline) {
                Ok(Some(e)) => {
                    let class_name = e
                        .class_names
                        .get(usize::from(e.explanation.class))
                        .cloned()
                        .unwrap_or_else(|| "?".into());
                    return Ok(ExplainStatus {
                        frame: e.frame,
                        len: e.len,
                        egress: e.egress.name().to_string(),
                        class_name,
                        class_names: e.class_names,
                        waited_ms: started.elapsed().as_secs_f64() * 1e3,
                        explanation: e.explanation,
                    });
                }
                Ok(None) => answered += 1,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    return Err("a forwarding thread did not answer in time".into())
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(none_came())
    }

    /// Read the config file again and swap it in (see the module header).
    pub fn reload(&self) -> Result<ReloadStatus, String> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let refused = |msg: String| {
            self.monitor().refused();
            tracing::warn!("reload refused: {msg}");
            Err(msg)
        };
        let (plan, file) = match ConfigFile::load(&self.config_path) {
            Ok(x) => x,
            Err(e) => {
                return refused(format!(
                    "{e}\nthe running policy is unchanged; fix the file and reload again"
                ))
            }
        };
        if let Some(why) = needs_restart(&self.start_plan, &plan) {
            return refused(format!(
                "{}: {why}: that takes a restart (weir stop, then weir run); the running policy is unchanged",
                self.config_path.display()
            ));
        }
        if self.notify {
            let _ = sd_notify::notify(
                false,
                &[
                    sd_notify::NotifyState::Reloading,
                    sd_notify::NotifyState::monotonic_usec_now()
                        .unwrap_or(sd_notify::NotifyState::Status("reloading")),
                ],
            );
        }
        let plan = Arc::new(plan);
        let generation = self.monitor().config().generation + 1;
        // Budgets of the same name keep their counts; the threads take the new ones in turn.
        Arc::clone(&self.monitor().published().ledger).replan(&plan.budgets, plan.timezone.clone());
        let mut replies = Vec::new();
        for f in &self.forwarders {
            let (tx, rx) = bounded(1);
            f.send_timeout(
                FwdRequest::Reload {
                    plan: Arc::clone(&plan),
                    generation,
                    reply: tx,
                },
                ANSWER_WITHIN,
            )
            .map_err(|_| "weir is stopping: nothing was reloaded".to_string())?;
            replies.push(rx);
        }
        let mut status = ReloadStatus {
            path: file.path.display().to_string(),
            sha256: file.sha256.clone(),
            generation,
            frames: Default::default(),
            swap_us: 0.0,
            total_ms: 0.0,
            done_s: 0.0,
        };
        for rx in replies {
            let outcome = rx.recv_timeout(ANSWER_WITHIN).map_err(|_| {
                "a forwarding thread did not answer the reload in time (weir may be stopping)"
                    .to_string()
            })?;
            status.frames.kept += outcome.frames.kept;
            status.frames.moved += outcome.frames.moved;
            status.frames.dropped += outcome.frames.dropped;
            status.swap_us = status.swap_us.max(outcome.swap_ns as f64 / 1e3);
        }
        status.total_ms = started.elapsed().as_secs_f64() * 1e3;
        status.done_s = self.monitor().now() as f64 / 1e9;
        let refused_so_far = self.monitor().config().reloads_refused;
        self.monitor().reloaded(
            plan,
            ConfigStatus {
                path: status.path.clone(),
                sha256: file.sha256,
                generation,
                reloads_refused: refused_so_far,
            },
        );
        if self.notify {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        }
        tracing::info!(
            "reloaded {} (generation {generation}): {} frames kept, {} moved, {} dropped; swap {:.0} us, {:.1} ms in all",
            status.path,
            status.frames.kept,
            status.frames.moved,
            status.frames.dropped,
            status.swap_us,
            status.total_ms
        );
        Ok(status)
    }
}

/// What a reload may not change, if `new` changes it.
pub fn needs_restart(old: &Plan, new: &Plan) -> Option<String> {
    for (o, n) in old.ports.iter().zip(&new.ports) {
        if o.interface != n.interface {
            let show = |i: &Option<String>| i.clone().unwrap_or_else(|| "(none)".into());
            return Some(format!(
                "ports.{}.interface changes from {} to {}",
                o.side.name(),
                show(&o.interface),
                show(&n.interface)
            ));
        }
    }
    if old.max_flows != new.max_flows || old.idle_timeout != new.idle_timeout {
        return Some("flow_table changes (its memory is sized at start)".into());
    }
    if old.budget_store.path != new.budget_store.path {
        return Some(format!(
            "budget_store.path changes from {} to {} (the file is opened at start)",
            old.budget_store.path.display(),
            new.budget_store.path.display()
        ));
    }
    if old.budgets.is_empty() && !new.budgets.is_empty() {
        return Some("the config now has budgets, whose store is opened at start".into());
    }
    // The owner resolver and its namespaces' sockets are set up at start.
    if new.reads_owners && (!old.reads_owners || old.owner_netns != new.owner_netns) {
        return Some(if old.reads_owners {
            "processes.netns changes (its sockets are opened at start)".into()
        } else {
            "a rule now tests owners (user, uid, pid, cmd, args, cgroup), whose resolver starts with weir".into()
        });
    }
    None
}

/// The control socket, bound; removed when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another weir is already running: it answers on {0}; stop it first (weir stop)")]
    InUse(PathBuf),
    #[error("cannot make the control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--control-group {name}: {source}")]
    Group {
        name: String,
        source: std::io::Error,
    },
}

impl ControlSocket {
    /// Listen on `path`, readable and writable by root only, or by `group` too. A socket left
    /// by a weir that is gone is replaced; one that answers is another weir running.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<ControlSocket, SocketError> {
        let io = |source| SocketError::Io {
            path: path.to_path_buf(),
            source,
        };
        let gid = group
            .map(|name| {
                crate::io::sys::group_id(name).map_err(|source| SocketError::Group {
                    name: name.to_string(),
                    source,
                })
            })
            .transpose()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(io)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io)?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(io)?;
        let placed = (|| {
            use std::os::unix::fs::PermissionsExt;
            let mode = if gid.is_some() { 0o660 } else { 0o600 };
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
            if let Some(gid) = gid {
                std::os::unix::fs::chown(&tmp, None, Some(gid))?;
            }
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        listener.set_nonblocking(true).map_err(io)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serve `control` on a thread of its own until `done` is set: accept connections and
    /// sample the counters.
    pub fn serve(
        self,
        control: Arc<Control>,
        done: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("weir-control".into())
            .spawn(move || self.run(&control, &done))
    }

    fn run(&self, control: &Arc<Control>, done: &AtomicBool) {
        let busy = Arc::new(AtomicUsize::new(0));
        let fd = self.listener.as_raw_fd();
        while !done.load(Ordering::Relaxed) {
            control.monitor().sample();
            let wait = {
                let m = control.monitor();
                Duration::from_nanos(m.next_sample().saturating_sub(m.now()))
            };
            let _ = crate::io::sys::wait_any_readable(&[fd], wait.min(Duration::from_millis(100)));
            loop {
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        if busy.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                            let _ = answer(
                                &stream,
                                &Response::error("too many connections: try again"),
                            );
                            continue;
                        }
                        busy.fetch_add(1, Ordering::Relaxed);
                        let (control, held) = (Arc::clone(control), Arc::clone(&busy));
                        let spawned = std::thread::Builder::new()
                            .name("weir-client".into())
                            .spawn(move || {
                                serve_connection(stream, &control);
                                held.fetch_sub(1, Ordering::Relaxed);
                            });
                        if spawned.is_err() {
                            busy.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!("control socket: {e}");
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn answer(mut stream: &UnixStream, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// Requests of one connection in turn, until it closes or says nothing for a while.
fn serve_connection(stream: UnixStream, control: &Control) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    loop {
        let mut line = String::new();
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => control.handle(&req),
            Err(e) => Response::error(format!(
                "not a request: {e} (one JSON object per line, e.g. {{\"v\":1,\"cmd\":\"status\"}}; docs/operations.md)"
            )),
        };
        if answer(&stream, &response).is_err() {
            return;
        }
    }
}

/// The pid file: written at start, removed at exit if it still names this process.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The report of `weir budget` for `plan`'s budgets at their counts `budgets`.
pub fn budget_report(
    plan: &Plan,
    budgets: Vec<crate::budget::BudgetStatus>,
    source: &str,
) -> BudgetReport {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    BudgetReport {
        now,
        timezone: plan.timezone.iana_name().unwrap_or("local").to_string(),
        store: plan.budget_store.path.display().to_string(),
        source: source.to_string(),
        budgets,
    }
}
