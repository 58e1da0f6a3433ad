//! The program behind a flow: the rules `user`, `uid`, `pid`, `cmd`, `args` and `cgroup`.
//!
//! When weir runs with a side on this host (the host itself, or a namespace's veth), a flow's
//! local end is a socket of some process. A resolver thread of the live bridge
//! (runtime/owners.rs) finds it with the kernel's socket diagnostics in the network namespaces
//! the config names, and reads its owner from /proc; the forwarding thread asks once per new
//! TCP or UDP flow and learns the answer between two turns. Until then the flow's owner tests
//! are false, so its first frames go where the other rules send them; when the answer comes
//! the flow moves once, its frames kept in order, as for a server name (docs/rules.md,
//! "Processes and users"). Replay has no sockets to ask: these tests never match there.

/// What a flow's local socket belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The socket's owner, from the kernel.
    pub uid: u32,
    /// Its name in the passwd database, when it has one.
    pub user: Option<String>,
    /// A process holding the socket (the lowest pid when several do), and what /proc says of
    /// it; `None` when none could be read (it exited, or /proc is not readable).
    pub process: Option<Process>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// argv[0]'s base name.
    pub cmd: String,
    /// The command line, its arguments joined by single spaces.
    pub args: String,
    /// The cgroup (v2) path: `/system.slice/nginx.service`, `/user.slice/...`.
    pub cgroup: String,
}

/// One owner test of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OwnerTest {
    User(String),
    Uid(u32),
    Pid(u32),
    /// argv[0]'s base name, exactly.
    Cmd(String),
    /// A glob over the command line.
    Args(String),
    /// A glob over the cgroup path.
    Cgroup(String),
}

impl OwnerTest {
    /// Does `owner` pass?
    pub fn holds(&self, owner: &Owner) -> bool {
        let p = owner.process.as_ref();
        match self {
            OwnerTest::User(u) => owner.user.as_deref() == Some(u.as_str()),
            OwnerTest::Uid(n) => owner.uid == *n,
            OwnerTest::Pid(n) => p.is_some_and(|p| p.pid == *n),
            OwnerTest::Cmd(c) => p.is_some_and(|p| p.cmd == *c),
            OwnerTest::Args(g) => p.is_some_and(|p| {
                crate::classify::payload::glob_matches(g.as_bytes(), p.args.as_bytes())
            }),
            OwnerTest::Cgroup(g) => p.is_some_and(|p| {
                crate::classify::payload::glob_matches(g.as_bytes(), p.cgroup.as_bytes())
            }),
        }
    }

    /// As a rule writes it.
    pub fn describe(&self) -> String {
        match self {
            OwnerTest::User(u) => format!("user {u}"),
            OwnerTest::Uid(n) => format!("uid {n}"),
            OwnerTest::Pid(n) => format!("pid {n}"),
            OwnerTest::Cmd(c) => format!("cmd {c}"),
            OwnerTest::Args(g) => format!("args '{g}'"),
            OwnerTest::Cgroup(g) => format!("cgroup '{g}'"),
        }
    }
}

/// Where a flow stands with its owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OwnerSeen {
    /// Not asked (yet, or never: not TCP or UDP, or the rules read no owner).
    #[default]
    NotAsked,
    /// Asked; its frames until the answer are counted.
    Asked,
    Known,
    /// No local socket found, or the question could not be asked.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::rule::{NameTests, Rule};

    #[test]
    fn owner_tests_read_the_uid_name_command_line_and_cgroup() {
        let owner = Owner {
            uid: 0,
            user: Some("root".into()),
            process: Some(Process {
                pid: 42,
                cmd: "weir-test-tool".into(),
                args: "weir-test-tool -c import socket\n5001".into(),
                cgroup: "/system.slice/weir.service".into(),
            }),
        };
        for (rule, want) in [
            ("cmd weir-test-tool and args '*5001*'", true),
            ("cmd weir-test-tool", true),
            ("cmd python3", false),
            ("args '*5002*'", false),
            ("user root and uid 0", true),
            ("user nobody", false),
            ("pid 42", true),
            ("cgroup '/system.slice/*'", true),
            ("cgroup '/user.slice/*'", false),
        ] {
            let mut r = Rule::parse(rule).unwrap();
            let mut tests = NameTests::default();
            r.bind_names(&mut tests).unwrap();
            let bits = tests.eval_owner(&owner);
            let v = crate::wire::FrameView {
                l3: crate::wire::L3::Ipv4,
                ..Default::default()
            };
            assert_eq!(r.matches_with(&v, bits), want, "{rule}");
        }
        // No process read: only the socket's owner can match.
        let bare = Owner {
            process: None,
            ..owner
        };
        assert!(OwnerTest::Uid(0).holds(&bare));
        assert!(!OwnerTest::Cmd("weir-test-tool".into()).holds(&bare));
    }
}
