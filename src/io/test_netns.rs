//! Test support for the packet-socket backends: a network namespace per test with a veth
//! pair, deleted on drop even when the test fails, and the root check that skips loudly (or
//! fails under CI=true).

use crate::io::sys::netdev::{self, enter_network_namespace};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Source MAC of every frame the tests craft, so stray frames (none are expected: IPv6 is off
/// in the namespaces) can be told apart.
pub(crate) const SRC: [u8; 6] = [0x02, 0x77, 0x65, 0x69, 0x72, 0x01];
pub(crate) const DST: [u8; 6] = [0x02, 0x77, 0x65, 0x69, 0x72, 0x02];

pub(crate) fn have_root(test: &str) -> bool {
    if crate::io::sys::is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CI=true, so this is a failure, not a skip)");
    }
    // Straight to the stderr descriptor: libtest hides eprintln! output of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED: {test} needs root (network namespaces, packet sockets) !!!!!!!!\n"
    );
    false
}

/// A network namespace `weir-TAG-PID`, deleted on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
}

pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub(crate) fn new(tag: &str) -> Netns {
        let name = format!("weir-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        // No IPv6 autoconfiguration (router solicitations, MLD): the links carry only our frames.
        for key in ["all", "default"] {
            ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ]);
        }
        ns
    }

    pub(crate) fn exec(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    pub(crate) fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// A veth pair `a` / `b`, both up unless `up` is false.
    pub(crate) fn veth(&self, up: bool) {
        self.ip(&[
            "link", "add", "name", "a", "type", "veth", "peer", "name", "b",
        ]);
        if up {
            self.ip(&["link", "set", "dev", "a", "up"]);
            self.ip(&["link", "set", "dev", "b", "up"]);
        }
    }

    /// Run `f` on a thread that entered this namespace, once `a` and `b` are running; panics
    /// propagate. Until the kernel's link watcher has run for a device that just came up (up to
    /// a second later under load), its queueing discipline is `noop` and frames sent on it
    /// vanish without an error, so tests wait for IFF_RUNNING first.
    pub(crate) fn run_up<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.run(move || {
            let deadline = Instant::now() + Duration::from_secs(3);
            for dev in ["a", "b"] {
                while !netdev::interface_info(dev).unwrap().running {
                    assert!(Instant::now() < deadline, "{dev} not running after 3 s");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            f()
        })
    }

    /// Run `f` on a thread that entered this namespace; panics propagate.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = PathBuf::from("/var/run/netns").join(&self.name);
        std::thread::spawn(move || {
            enter_network_namespace(&path).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
