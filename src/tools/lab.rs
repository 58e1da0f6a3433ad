//! Lab: the three-namespace topology used by tests and demos, built and torn down with `ip`.
//!
//! ```text
//!  {prefix}-src            {prefix}-dut               {prefix}-dst
//!  src0 ──── veth ──── lan0   (weir or br0)   wan0 ──── veth ──── dst0
//!  198.18.0.1/24                                             198.18.0.2/24
//!  2001:db8::1/64                                            2001:db8::2/64
//! ```
//!
//! Guarantees:
//! - Everything the lab makes lives inside its three namespaces: both ends of each veth are
//!   created directly in their namespace, so nothing is ever named in the root namespace and
//!   labs with different prefixes never collide. Interface names are fixed and short (≤ 15).
//! - Only addresses in 198.18.0.0/15 and 2001:db8::/32 are used. The endpoints' IPv6 addresses
//!   are usable at once (no DAD); the dut's ports carry no address at all (IPv6 is disabled in
//!   the dut namespace), so whatever bridges them sees only the endpoints' traffic.
//!   Offloads are left at their defaults (TSO/GSO on).
//! - Every command runs with a deadline and is killed when it passes it; a failing `ip` command
//!   is a [`LabError::Command`] carrying the command line, the exit status and its stderr.
//! - [`Lab::up`] either returns a complete lab or removes what it made before returning the error.
//!   [`Lab::down`] is idempotent: it kills every process still inside the lab's namespaces, then
//!   deletes them. [`Lab`] calls it on drop (also while unwinding from a panic) unless
//!   [`Lab::keep`] was called; [`down_by_prefix`] removes a lab left behind by a dead process.
//! - [`ChildGuard`] kills and reaps its process on drop.
//!
//! Not guaranteed: cleanup when the owning process is killed outright (SIGKILL) — use
//! [`down_by_prefix`] for that. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.

use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Deadline for one `ip` or `sysctl` invocation.
const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for [`Lab::exec`] and [`Lab::exec_ok`].
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`ChildGuard`] waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(500);
/// Longest prefix accepted: namespace names stay far below any path limit.
pub const MAX_PREFIX_LEN: usize = 48;

/// Names and addresses of a lab, from its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabSpec {
    /// Namespace prefix: `"weir"` for the demo lab; tests use `"weir-t<pid>-<name>"`.
    /// At most [`MAX_PREFIX_LEN`] characters from `[A-Za-z0-9_.-]`.
    pub prefix: String,
}

impl LabSpec {
    /// The spec of the demo lab (`weir lab up`).
    pub fn demo() -> LabSpec {
        LabSpec {
            prefix: "weir".to_string(),
        }
    }

    fn validate(&self) -> Result<(), LabError> {
        let p = &self.prefix;
        let bad = |reason: &str| LabError::InvalidPrefix {
            prefix: p.clone(),
            reason: reason.to_string(),
        };
        if p.is_empty() {
            return Err(bad("empty"));
        }
        if p.len() > MAX_PREFIX_LEN {
            return Err(bad("longer than 48 characters"));
        }
        if !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad("only A-Z a-z 0-9 - _ . are allowed"));
        }
        if p.starts_with('.') || p.starts_with('-') {
            return Err(bad("must not start with '.' or '-'"));
        }
        Ok(())
    }
}

/// What went wrong while building, using or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: ExitStatus,
        stderr: String,
    },
    /// A command could not be started (not installed, not permitted).
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// A command outlived its deadline and was killed.
    #[error("`{cmd}` did not finish within {after:?} and was killed")]
    Timeout { cmd: String, after: Duration },
    /// The prefix would not give valid namespace names.
    #[error("invalid lab prefix {prefix:?}: {reason}")]
    InvalidPrefix { prefix: String, reason: String },
    /// A namespace of the lab exists already: another lab owns it, or one was left behind
    /// (see [`down_by_prefix`]).
    #[error("namespace {0} exists already (another lab, or one left behind: remove it with down_by_prefix)")]
    Exists(String),
    /// A namespace is still listed after it was deleted.
    #[error("namespace {0} is still present after deletion")]
    Leftover(String),
}

/// A running lab. Dropping it tears it down unless [`Lab::keep`] was called.
#[derive(Debug)]
pub struct Lab {
    pub prefix: String,
    pub src_ns: String,
    pub dut_ns: String,
    pub dst_ns: String,
    /// The dut's port facing src (peer of `src_if`).
    pub dut_lan_if: String,
    /// The dut's port facing dst (peer of `dst_if`).
    pub dut_wan_if: String,
    pub src_if: String,
    pub dst_if: String,
    pub src_ip4: Ipv4Addr,
    pub dst_ip4: Ipv4Addr,
    pub src_ip6: Ipv6Addr,
    pub dst_ip6: Ipv6Addr,
    /// Prefix lengths of the endpoint addresses.
    pub prefix_len4: u8,
    pub prefix_len6: u8,
    /// Name of the kernel bridge [`Lab::bridge_with_kernel`] makes in the dut.
    pub bridge_if: String,
    kept: bool,
}

/// The names of a lab's three namespaces, in the order src, dut, dst.
pub fn namespaces(prefix: &str) -> [String; 3] {
    [
        format!("{prefix}-src"),
        format!("{prefix}-dut"),
        format!("{prefix}-dst"),
    ]
}

impl Lab {
    /// Builds the lab. On error, whatever was made is removed again.
    /// Fails if one of its namespaces already exists (another lab owns it, or one was left
    /// behind: see [`down_by_prefix`]).
    pub fn up(spec: LabSpec) -> Result<Lab, LabError> {
        spec.validate()?;
        let [src_ns, dut_ns, dst_ns] = namespaces(&spec.prefix);
        let mut lab = Lab {
            prefix: spec.prefix,
            src_ns,
            dut_ns,
            dst_ns,
            dut_lan_if: "lan0".into(),
            dut_wan_if: "wan0".into(),
            src_if: "src0".into(),
            dst_if: "dst0".into(),
            src_ip4: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip4: Ipv4Addr::new(198, 18, 0, 2),
            src_ip6: "2001:db8::1".parse().expect("literal"),
            dst_ip6: "2001:db8::2".parse().expect("literal"),
            prefix_len4: 24,
            prefix_len6: 64,
            bridge_if: "br0".into(),
            // Until the first namespace exists there is nothing of ours to remove: an existing
            // namespace of that name belongs to someone else.
            kept: true,
        };
        for ns in [&lab.src_ns, &lab.dut_ns, &lab.dst_ns] {
            if list_namespaces()?.iter().any(|n| n == ns) {
                return Err(LabError::Exists(ns.clone()));
            }
        }
        // From here on, a failure drops `lab`, which removes what was made.
        lab.kept = false;
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> Result<(), LabError> {
        for ns in [&self.src_ns, &self.dut_ns, &self.dst_ns] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // Endpoints: no DAD, so addresses (link-local included) are usable at once.
        for ns in [&self.src_ns, &self.dst_ns] {
            sysctl(
                ns,
                &[
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.dad_transmits=0",
                    "net.ipv6.conf.default.dad_transmits=0",
                ],
            )?;
        }
        // The dut's ports carry no address, not even link-local, and send nothing of their own.
        sysctl(
            &self.dut_ns,
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        for (end_ns, end_if, dut_if) in [
            (&self.src_ns, &self.src_if, &self.dut_lan_if),
            (&self.dst_ns, &self.dst_if, &self.dut_wan_if),
        ] {
            ip(&[
                "-n",
                end_ns,
                "link",
                "add",
                end_if,
                "type",
                "veth",
                "peer",
                "name",
                dut_if,
                "netns",
                &self.dut_ns,
            ])?;
        }
        for (ns, ifname, ip4, ip6) in [
            (&self.src_ns, &self.src_if, self.src_ip4, self.src_ip6),
            (&self.dst_ns, &self.dst_if, self.dst_ip4, self.dst_ip6),
        ] {
            let a4 = format!("{ip4}/{}", self.prefix_len4);
            let a6 = format!("{ip6}/{}", self.prefix_len6);
            ip(&["-n", ns, "addr", "add", &a4, "dev", ifname])?;
            ip(&["-n", ns, "-6", "addr", "add", &a6, "dev", ifname, "nodad"])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        for ifname in [&self.dut_lan_if, &self.dut_wan_if] {
            ip(&["-n", &self.dut_ns, "link", "set", ifname, "up"])?;
        }
        Ok(())
    }

    /// Leaves the lab in place when this value is dropped (`weir lab up`).
    pub fn keep(&mut self) {
        self.kept = true;
    }

    /// Kills every process inside the lab's namespaces and deletes them. Idempotent.
    pub fn down(&self) -> Result<(), LabError> {
        down_by_prefix(&self.prefix)
    }

    /// Bridges lan0 and wan0 with a Linux bridge `br0` in the dut (no STP, no forward delay):
    /// the reference to compare weir with, and a way to test the lab without weir.
    pub fn bridge_with_kernel(&self) -> Result<(), LabError> {
        let (ns, br) = (self.dut_ns.as_str(), self.bridge_if.as_str());
        ip(&[&["-n", ns, "link", "add", br][..], &PLAIN_BRIDGE].concat())?;
        for port in [&self.dut_lan_if, &self.dut_wan_if] {
            ip(&["-n", ns, "link", "set", port, "master", br])?;
        }
        ip(&["-n", ns, "link", "set", br, "up"])
    }

    /// Removes the kernel bridge again; lan0 and wan0 stay up. Idempotent.
    pub fn unbridge(&self) -> Result<(), LabError> {
        let (ns, br) = (self.dut_ns.as_str(), self.bridge_if.as_str());
        let show = run_bounded(ip_cmd(&["-n", ns, "link", "show", br]), IP_TIMEOUT)?;
        if !show.status.success() {
            return Ok(());
        }
        ip(&["-n", ns, "link", "del", br])
    }

    /// A command that runs `args` inside namespace `ns` (`ip netns exec ns args..`), for callers
    /// that want their own stdio; see [`ChildGuard::spawn`].
    pub fn command(&self, ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        cmd
    }

    /// Runs `args` in `ns` to completion within [`EXEC_TIMEOUT`]; the exit status is not checked.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        self.exec_timeout(ns, args, EXEC_TIMEOUT)
    }

    /// Runs `args` in `ns` to completion within `timeout`; the exit status is not checked.
    pub fn exec_timeout(
        &self,
        ns: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, LabError> {
        run_bounded(self.command(ns, args), timeout)
    }

    /// Like [`Lab::exec`], and a non-zero exit is a [`LabError::Command`].
    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        let out = self.exec(ns, args)?;
        check(&self.command(ns, args), out)
    }

    /// Starts `args` in `ns` in the background, stdin and stdout null, stderr inherited.
    /// The process is killed when the guard is dropped (and by [`Lab::down`] in any case).
    pub fn spawn(&self, ns: &str, args: &[&str]) -> Result<ChildGuard, LabError> {
        let mut cmd = self.command(ns, args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        ChildGuard::spawn(cmd)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = self.down() {
            eprintln!("weir lab {}: teardown failed: {e}", self.prefix);
        }
    }
}

/// Removes the lab with this prefix: kills the processes in its namespaces and deletes them.
/// Idempotent; touches only `{prefix}-src`, `{prefix}-dut` and `{prefix}-dst`.
pub fn down_by_prefix(prefix: &str) -> Result<(), LabError> {
    LabSpec {
        prefix: prefix.to_string(),
    }
    .validate()?;
    let mut first_err = None;
    let present = list_namespaces()?;
    for ns in namespaces(prefix) {
        if !present.contains(&ns) {
            continue;
        }
        if let Err(e) = kill_namespace_pids(&ns).and_then(|()| ip(&["netns", "del", &ns])) {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let present = list_namespaces()?;
    if let Some(ns) = namespaces(prefix).into_iter().find(|n| present.contains(n)) {
        return Err(LabError::Leftover(ns));
    }
    Ok(())
}

/// The names in `ip netns list`.
pub fn list_namespaces() -> Result<Vec<String>, LabError> {
    let out = check_output(ip_cmd(&["netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    crate::io::sys::is_root()
}

fn kill_namespace_pids(ns: &str) -> Result<(), LabError> {
    // A few rounds: a process may fork while we kill.
    for _ in 0..5 {
        let out = check_output(ip_cmd(&["netns", "pids", ns]))?;
        let pids: Vec<libc::pid_t> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        // These processes live in a namespace this lab made, so they are the lab's.
        for pid in pids {
            crate::io::sys::signal_process(pid as u32, libc::SIGKILL);
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A background process, killed (SIGTERM, then SIGKILL after a grace period) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    cmd: String,
}

impl ChildGuard {
    /// Starts `cmd` and guards it.
    pub fn spawn(mut cmd: Command) -> Result<ChildGuard, LabError> {
        let line = command_line(&cmd);
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            cmd: line.clone(),
            source,
        })?;
        Ok(ChildGuard {
            child: Some(child),
            cmd: line,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> &str {
        &self.cmd
    }

    /// The guarded child, e.g. to take its piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("present until drop")
    }

    /// Whether the process has exited (it is then reaped).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child_mut().try_wait(), Ok(Some(_)) | Err(_))
    }

    /// Stops the process now: SIGTERM, SIGKILL after a grace period, then reaps it.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        crate::io::sys::signal_process(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cmd` with piped output; kills it if it outlives `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output, LabError> {
    let line = command_line(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            cmd: line.clone(),
            source,
        })?;
    let out_reader = reader(child.stdout.take());
    let err_reader = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                // The reader threads end when the pipes close; not joined, to stay bounded.
                return Err(LabError::Timeout {
                    cmd: line,
                    after: timeout,
                });
            }
            Err(source) => return Err(LabError::Spawn { cmd: line, source }),
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

fn check(cmd: &Command, out: Output) -> Result<Output, LabError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: command_line(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn check_output(cmd: Command) -> Result<Output, LabError> {
    let line = command_line(&cmd);
    let out = run_bounded(cmd, IP_TIMEOUT)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    cmd
}

/// Run iproute2's `ip` with `args` under a deadline; its stderr is in the error.
pub(crate) fn ip(args: &[&str]) -> Result<(), LabError> {
    check_output(ip_cmd(args)).map(drop)
}

/// `ip link add NAME` + these: a kernel bridge without spanning tree or forwarding delay, so
/// frames cross at once (the lab's reference bridge and the fail-open bypass).
pub(crate) const PLAIN_BRIDGE: [&str; 6] =
    ["type", "bridge", "stp_state", "0", "forward_delay", "0"];

fn sysctl(ns: &str, settings: &[&str]) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .args(settings);
    check_output(cmd).map(drop)
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        let ok = |p: &str| LabSpec { prefix: p.into() }.validate().is_ok();
        assert!(ok("weir"));
        assert!(ok("weir-t1234-ping_v4"));
        assert!(!ok(""));
        assert!(!ok("weir/../x"));
        assert!(!ok("-weir"));
        assert!(!ok("weir lab"));
        assert!(!ok(&"w".repeat(MAX_PREFIX_LEN + 1)));
    }

    #[test]
    fn namespace_names_follow_the_prefix() {
        assert_eq!(namespaces("weir"), ["weir-src", "weir-dut", "weir-dst"]);
    }

    #[test]
    fn a_slow_command_is_killed_at_its_deadline() {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let start = Instant::now();
        let err = run_bounded(cmd, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, LabError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_failing_command_reports_status_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let out = run_bounded(cmd, Duration::from_secs(5)).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        match check(&cmd, out) {
            Err(LabError::Command { status, stderr, .. }) => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "oops");
            }
            other => panic!("{other:?}"),
        }
    }
}
