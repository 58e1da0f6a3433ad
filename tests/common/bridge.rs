//! `weir run` in a lab's dut namespace, driven as a user would: started with a config of the
//! test's, its output in files, stopped with SIGTERM. Each bridge has its own control socket and
//! pid file, so tests can run side by side.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weir::tools::lab::{ChildGuard, Lab};

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// weir running in a lab's dut, its output going to files.
pub struct Bridge {
    guard: ChildGuard,
    dir: PathBuf,
}

pub struct Stopped {
    pub code: Option<i32>,
    pub took: Duration,
    pub stdout: String,
    pub stderr: String,
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-live-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Bridge {
    /// `weir run` with `config` in `lab`'s dut, its control socket and pid file in a
    /// directory of its own; returns when it says it is bridging.
    pub fn start(lab: &Lab, name: &str, config: &str, extra: &[&str]) -> Bridge {
        let dir = temp_dir(name);
        let cfg = dir.join("config.ron");
        std::fs::write(&cfg, config).unwrap();
        let (sock, pid) = (dir.join("weir.sock"), dir.join("weir.pid"));
        let mut args = vec![
            WEIR,
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "--control",
            sock.to_str().unwrap(),
            "--pid-file",
            pid.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut cmd = lab.command(&lab.dut_ns, &args);
        cmd.stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .stdin(Stdio::null());
        let guard = ChildGuard::spawn(cmd).unwrap();
        let mut b = Bridge { guard, dir };
        // Ready when it says so on stderr (after its start-up checks and sockets).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.stderr().contains("bridging") {
            assert!(
                !b.guard.has_exited(),
                "weir exited at start:\n{}",
                b.stderr()
            );
            assert!(
                Instant::now() < deadline,
                "weir not ready after 10 s:\n{}",
                b.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    /// The config file weir reads (and reads again on reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.ron")
    }

    /// Its control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("weir.sock")
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    pub fn has_exited(&mut self) -> bool {
        self.guard.has_exited()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// SIGTERM, and how long weir took to exit (killed after 5 s if it has not).
    pub fn stop(mut self) -> Stopped {
        let t = Instant::now();
        let pid = self.guard.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        while !self.guard.has_exited() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = t.elapsed();
        let status = self.guard.stop();
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let s = Stopped {
            code: status.and_then(|s| s.code()),
            took,
            stdout: read("stdout"),
            stderr: read("stderr"),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        s
    }
}

impl Stopped {
    /// (received, forwarded, dropped) of a port, from the final "port X: received ..." line.
    pub fn port(&self, name: &str) -> (u64, u64, u64) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("port {name}: received")))
            .unwrap_or_else(|| panic!("no counters for port {name} in:\n{}", self.stdout));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(!line.contains("queued"), "frames left queued: {line}");
        (nums[0], nums[1], nums[2])
    }
}
