//! The resolver of flows' owners (`user`, `cmd`, ... rules), on a thread of its own.
//!
//! A forwarding thread hands it each new TCP or UDP flow's key between two turns; it looks the
//! flow's local socket up with sock_diag in each configured network namespace (either end of
//! the flow may be the local one), maps the socket's inode to a process through /proc, reads
//! the process's command line and cgroup, and answers on that forwarding thread's channel.
//! Both channels are bounded: a question that finds no room is counted and its flow's owner
//! taken as unknown; an answer that finds no room is dropped and counted the same way.

use crate::classify::flow::FlowKey;
use crate::classify::owner::{Owner, Process};
use crate::io::sys::sock_diag::{user_name, SockDiag};
use crate::wire::L3;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// /proc is walked at most this often (a walk costs about a millisecond on a quiet host, more
/// with many processes; a batch of questions shares one).
const WALK_EVERY: Duration = Duration::from_millis(5);

/// Questions answered together at most.
const BATCH: usize = 256;

/// Questions waiting for the resolver, and answers waiting for a forwarding thread, at most.
pub const QUEUE: usize = 4096;

/// A question: a flow's key, and the forwarding thread that asks.
pub struct Question {
    pub key: FlowKey,
    pub from: usize,
}

pub type Answer = (FlowKey, Option<Owner>);

/// The resolver's side of the channels, and what it counts.
pub struct Resolver {
    pub questions: Sender<Question>,
    /// Per forwarding thread, where its answers come.
    pub answers: Vec<Receiver<Answer>>,
    /// Answers dropped for want of room.
    pub answers_dropped: Arc<AtomicU64>,
    /// How long each question took to answer, in microseconds (the resolver's thread alone
    /// records; read once it has stopped).
    pub lookup_us: Arc<Mutex<Histogram<u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Resolver {
    /// Open a sock_diag socket in each of `netns` (none: weir's own namespace) and start the
    /// thread; `forwarders` channels of answers. `processes`: find each socket's process too
    /// (rules test `pid`, `cmd`, `args` or `cgroup`); else the kernel's answer (the uid) is all.
    /// Fails when a namespace cannot be entered.
    pub fn start(
        netns: &[PathBuf],
        forwarders: usize,
        processes: bool,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Resolver> {
        let mut sockets = Vec::new();
        if netns.is_empty() {
            sockets.push(SockDiag::open()?);
        }
        for ns in netns {
            sockets.push(SockDiag::open_in(ns).map_err(|e| {
                std::io::Error::new(e.kind(), format!("network namespace {}: {e}", ns.display()))
            })?);
        }
        let (q_tx, q_rx) = bounded::<Question>(QUEUE);
        let (a_txs, a_rxs): (Vec<_>, Vec<_>) = (0..forwarders).map(|_| bounded(QUEUE)).unzip();
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        let lookup_us = Arc::new(Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000, 2).map_err(std::io::Error::other)?,
        ));
        let timed = Arc::clone(&lookup_us);
        let thread = std::thread::Builder::new()
            .name("weir-owners".into())
            .spawn(move || run(sockets, q_rx, a_txs, counted, timed, processes, stop))?;
        Ok(Resolver {
            questions: q_tx,
            answers: a_rxs,
            answers_dropped: dropped,
            lookup_us,
            thread: Some(thread),
        })
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut sockets: Vec<SockDiag>,
    questions: Receiver<Question>,
    answers: Vec<Sender<Answer>>,
    dropped: Arc<AtomicU64>,
    lookup_us: Arc<Mutex<Histogram<u64>>>,
    processes: bool,
    stop: Arc<AtomicBool>,
) {
    // Listing and reading other users' /proc/PID/fd takes CAP_DAC_READ_SEARCH and
    // CAP_SYS_PTRACE: keep those, if held, and nothing else.
    let _ = crate::io::sys::keep_only_capabilities(&[
        caps::Capability::CAP_DAC_READ_SEARCH,
        caps::Capability::CAP_SYS_PTRACE,
    ]);
    let mut inodes = SocketInodes::default();
    // Each question, when it was taken, and its socket's uid and inode if found.
    type Asked = (Question, std::time::Instant, Option<(u32, u32)>);
    let mut batch: Vec<Asked> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let first = match questions.recv_timeout(Duration::from_millis(100)) {
            Ok(q) => q,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        // Whatever else is waiting goes in the same batch: one /proc walk serves them all.
        batch.clear();
        for q in std::iter::once(first).chain(questions.try_iter().take(BATCH - 1)) {
            let found = socket(&mut sockets, &q.key);
            batch.push((q, std::time::Instant::now(), found));
        }
        if processes
            && batch
                .iter()
                .any(|(_, _, f)| f.is_some_and(|(_, inode)| !inodes.knows(inode)))
        {
            inodes.walk_when_due();
        }
        let mut h = lookup_us.lock().unwrap_or_else(|p| p.into_inner());
        for (q, asked, found) in batch.drain(..) {
            let owner = found.map(|(uid, inode)| Owner {
                uid,
                user: user_name(uid),
                process: processes
                    .then(|| inodes.pid(inode))
                    .flatten()
                    .and_then(process),
            });
            h.saturating_record(asked.elapsed().as_micros().max(1) as u64);
            tracing::debug!("owner of {:?}: {:?}", q.key, owner);
            if let Some(tx) = answers.get(q.from) {
                if let Err(TrySendError::Full(_)) = tx.try_send((q.key, owner)) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The two ends of an IP flow key.
fn ends(k: &FlowKey) -> Option<(SocketAddr, SocketAddr)> {
    let ip = |a: u128| -> IpAddr {
        if k.l3 == L3::Ipv6 {
            Ipv6Addr::from(a).into()
        } else {
            Ipv4Addr::from(a as u32).into()
        }
    };
    matches!(k.l3, L3::Ipv4 | L3::Ipv6).then(|| {
        (
            SocketAddr::new(ip(k.lo_addr), k.lo_port),
            SocketAddr::new(ip(k.hi_addr), k.hi_port),
        )
    })
}

/// The uid and inode of the flow's local socket, in the first namespace that has it (either
/// end of the flow may be the local one).
fn socket(sockets: &mut [SockDiag], key: &FlowKey) -> Option<(u32, u32)> {
    let (a, b) = ends(key)?;
    for s in sockets.iter_mut() {
        for (local, remote) in [(a, b), (b, a)] {
            if let Ok(Some(found)) = s.find(key.proto, local, remote) {
                return Some(found);
            }
        }
    }
    None
}

/// Socket inode to process, from the last walk of /proc/*/fd.
#[derive(Default)]
struct SocketInodes {
    map: HashMap<u32, u32>,
    walked: Option<std::time::Instant>,
}

impl SocketInodes {
    fn knows(&self, inode: u32) -> bool {
        inode == 0 || self.map.contains_key(&inode)
    }

    fn pid(&self, inode: u32) -> Option<u32> {
        self.map.get(&inode).copied()
    }

    /// Walk again, waiting first until [`WALK_EVERY`] has passed since the last walk (the
    /// questions that come meanwhile join the next batch).
    fn walk_when_due(&mut self) {
        if let Some(t) = self.walked {
            let since = t.elapsed();
            if since < WALK_EVERY {
                std::thread::sleep(WALK_EVERY - since);
            }
        }
        self.walk();
    }

    fn walk(&mut self) {
        self.map.clear();
        self.walked = Some(std::time::Instant::now());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let inode = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u32>().ok());
                if let Some(inode) = inode {
                    // The lowest pid of those sharing it (a parent before its children).
                    let e = self.map.entry(inode).or_insert(pid);
                    *e = (*e).min(pid);
                }
            }
        }
    }
}

/// What /proc says of `pid`; `None` when it is gone.
fn process(pid: u32) -> Option<Process> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cmd = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default();
    Some(Process {
        pid,
        cmd,
        args: argv.join(" "),
        cgroup,
    })
}
