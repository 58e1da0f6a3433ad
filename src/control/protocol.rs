//! The control protocol: one JSON object per line each way, versioned (docs/operations.md).
//!
//! A request is `{"v": 1, "cmd": "status"}` (and `flows`, `reload`, `stop`, with their
//! arguments); the answer is `{"v": 1, "ok": true, ...}` with one result key named after the
//! command, or `{"v": 1, "ok": false, "error": "..."}`. A connection may carry several requests
//! in turn. A request of another version gets an error naming the version spoken here.

use crate::pipeline::{GsoSplit, ReloadCounts};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version spoken here.
pub const VERSION: u32 = 1;

/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/weir/weir.sock";

/// The default pid file.
pub const DEFAULT_PID_FILE: &str = "/run/weir/weir.pid";

/// A request line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Counters right now. `history`: also each class's rate per second over the last minute.
    Status {
        #[serde(default)]
        history: bool,
    },
    /// Active flows, busiest first: at most `top`, only those of class `class` if given.
    Flows {
        #[serde(default)]
        top: Option<usize>,
        #[serde(default)]
        class: Option<String>,
    },
    /// Why the next frame of flow `flow` (two endpoints, as `weir flows` prints them) gets its
    /// class: the first such frame any forwarding thread receives within `wait_ms`
    /// milliseconds (default 5000, at most 20000).
    Explain {
        flow: String,
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    /// Read the config file again and swap it in without losing a frame.
    Reload,
    /// The budgets: used, left, the next reset.
    Budget,
    /// Each class's one-second summaries over the last minutes (`weir report --live`).
    Seconds,
    /// Start budget `name`'s count of this period again.
    BudgetReset { name: String },
    /// Drain and stop (as SIGTERM).
    Stop,
}

/// An answer line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<Vec<FlowStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<ExplainStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopStatus>,
    /// `budget` and `budget_reset` (the counts after the reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<Vec<ClassSeconds>>,
}

/// One class's one-second summaries, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSeconds {
    pub port: String,
    pub name: String,
    pub seconds: Vec<ClassSecond>,
}

/// A class at the end of one second: its counters then (since start), and the delay of the
/// frames that left during that second (`None`: none left).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSecond {
    /// Seconds on weir's monotonic clock (as `published_s`).
    pub at_s: f64,
    pub received_bytes: u64,
    pub forwarded_bytes: u64,
    pub forwarded_frames: u64,
    /// Frames dropped by reason, in the order of the reasons' list (docs/operations.md).
    pub dropped: Vec<u64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// The budgets of a config and their counts at `now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// Wall-clock nanoseconds since the Unix epoch when the counts were read.
    pub now: i128,
    /// The time zone the periods are in.
    pub timezone: String,
    /// The SQLite file the counts are kept in.
    pub store: String,
    /// Where the counts come from: `running` (the bridge, counted up to its last sync, at
    /// most 100 ms old) or `store` (the file, as last written: no bridge was running).
    pub source: String,
    pub budgets: Vec<crate::budget::BudgetStatus>,
}

impl Response {
    fn empty(ok: bool) -> Response {
        Response {
            v: VERSION,
            ok,
            error: None,
            status: None,
            flows: None,
            explain: None,
            reload: None,
            stop: None,
            budget: None,
            seconds: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Response {
        Response {
            error: Some(message.into()),
            ..Response::empty(false)
        }
    }

    pub fn status(s: Status) -> Response {
        Response {
            status: Some(s),
            ..Response::empty(true)
        }
    }

    pub fn flows(f: Vec<FlowStatus>) -> Response {
        Response {
            flows: Some(f),
            ..Response::empty(true)
        }
    }

    pub fn explain(e: ExplainStatus) -> Response {
        Response {
            explain: Some(e),
            ..Response::empty(true)
        }
    }

    pub fn reload(r: ReloadStatus) -> Response {
        Response {
            reload: Some(r),
            ..Response::empty(true)
        }
    }

    pub fn seconds(s: Vec<ClassSeconds>) -> Response {
        Response {
            seconds: Some(s),
            ..Response::empty(true)
        }
    }

    pub fn budget(b: BudgetReport) -> Response {
        Response {
            budget: Some(b),
            ..Response::empty(true)
        }
    }

    pub fn stop(s: StopStatus) -> Response {
        Response {
            stop: Some(s),
            ..Response::empty(true)
        }
    }
}

/// `weir explain --flow` of a running bridge: a frame of the flow as it crossed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplainStatus {
    /// Addresses, ports and protocol of the frame, and its length.
    pub frame: String,
    pub len: u32,
    /// The port it left by (`wan` or `lan`) and the class it got there.
    pub egress: String,
    pub class_name: String,
    /// The egress port's class names by class id (the `class` of each rule and of the result).
    pub class_names: Vec<String>,
    /// Milliseconds between the request and the frame.
    pub waited_ms: f64,
    pub explanation: crate::classify::Explanation,
}

/// `weir status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub weir_version: String,
    pub pid: u32,
    pub uptime_s: f64,
    /// `run-to-completion` or `per-direction`.
    pub threads: String,
    pub config: ConfigStatus,
    /// Port `wan` (upload) first, then `lan`.
    pub ports: Vec<PortStatus>,
    pub flow_table: FlowTableStatus,
    pub gso_split: GsoSplit,
    /// The busiest flows of the last pass over the flow table (at most 64).
    pub top_flows: Vec<FlowStatus>,
    /// Age of the oldest counter in this answer, in milliseconds (they are published every
    /// 100 ms; much more means a forwarding thread is stuck).
    pub age_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub path: String,
    /// SHA-256 of the file as loaded, in hex.
    pub sha256: String,
    /// 0 for the file loaded at start, then one more per reload.
    pub generation: u64,
    /// Reloads refused (the file did not validate, or needed a restart).
    pub reloads_refused: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    /// `wan` or `lan`: the classes are those of traffic leaving by this port.
    pub port: String,
    /// The interface of this port.
    pub interface: String,
    pub rate_bps: u64,
    /// When its forwarding thread published these counters: seconds on weir's monotonic clock
    /// (from its start), for exact rates between two answers.
    pub published_s: f64,
    /// Frames that arrived on this port (and leave by the other), since start.
    pub arrived_frames: u64,
    /// Frames the kernel dropped as they arrived on this port, before weir could take them;
    /// `null` when the backend cannot tell. In no other count.
    pub kernel_drops: Option<u64>,
    /// The interface's link: `up`, `set down`, `no carrier` or `gone`; frames leaving by a
    /// port whose link is not up are counted as dropped (`link_down`).
    #[serde(default = "link_up")]
    pub link: String,
    /// Seconds since the link was last up (`null` while it is up).
    #[serde(default)]
    pub link_down_s: Option<f64>,
    pub classes: Vec<ClassStatus>,
    /// Sums over this port's classes (the `(removed)` row included).
    pub totals: TotalsStatus,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsStatus {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub queued: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStatus {
    pub name: String,
    /// As written in the config; `null` for `control` and `(removed)`.
    pub priority: Option<u8>,
    /// The rate and ceil in force: the config's, or those of the class's `schedule` window
    /// that holds now.
    pub rate_bps: u64,
    pub ceil_bps: u64,
    /// Forwarded wire bits (frame and overhead) per second over the last second, and the last
    /// ten.
    pub rate_1s_bps: u64,
    pub rate_10s_bps: u64,
    pub received_frames: u64,
    pub received_bytes: u64,
    pub forwarded_frames: u64,
    pub forwarded_bytes: u64,
    /// Forwarded frame bytes plus the per-frame overhead: what the rate is charged in.
    pub forwarded_wire_bytes: u64,
    pub dropped_frames: u64,
    pub dropped_bytes: u64,
    /// Every reason, since start.
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Drops in the last second, by reason (only reasons with some).
    pub drops_1s: BTreeMap<String, u64>,
    pub queued_frames: u64,
    pub queued_bytes: u64,
    pub borrowed_frames: u64,
    pub borrowed_bytes: u64,
    /// Frames the AQM marked CE instead of dropping.
    #[serde(default)]
    pub ecn_marked_frames: u64,
    /// Arrivals whose flow (host) found every queue of its set busy and shared one.
    #[serde(default)]
    pub flow_collisions: u64,
    #[serde(default)]
    pub host_collisions: u64,
    pub sojourn_us: SojournStatus,
    /// Flows whose last frame leaving by this port went to this class (as of the last pass
    /// over the flow table).
    pub active_flows: u64,
    /// Forwarded wire bits per second, one value per second, oldest first, over the last
    /// minute; only when asked (`history`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history_bps: Vec<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SojournStatus {
    /// Over the last second.
    pub last_p50: f64,
    pub last_p99: f64,
    /// Since start.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTableStatus {
    /// Entries in use (live, or idle and not yet reused), in all forwarding threads.
    pub occupied: u64,
    pub capacity: u64,
    pub inserted: u64,
    pub evicted: u64,
    pub expired: u64,
    pub hits: u64,
    pub misses: u64,
}

pub use crate::pipeline::report::FlowStatus;

/// `weir reload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub path: String,
    pub sha256: String,
    pub generation: u64,
    /// What happened to the frames queued at the swap, over all forwarding threads.
    pub frames: ReloadCounts,
    /// The longest time a forwarding thread spent swapping, in microseconds.
    pub swap_us: f64,
    /// From reading the file to the last thread's swap, in milliseconds.
    pub total_ms: f64,
    /// When the last thread had swapped: seconds on weir's monotonic clock, as `published_s`.
    pub done_s: f64,
}

/// `weir stop`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopStatus {
    pub pid: u32,
}

fn link_up() -> String {
    "up".into()
}
