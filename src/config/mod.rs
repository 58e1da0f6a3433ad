//! The configuration: a RON file, read once and validated into a [`Plan`].
//!
//! Guarantees: a [`Plan`] cannot hold an illegal state. Every rate is absolute and non-zero,
//! every ceil is at least its rate and at most the link, guaranteed rates fit in the link, each
//! port has exactly one default class, every rule compiled and can match something. Any
//! violation is a [`ConfigError`] with file:line:column, what is wrong and a hint.
//! What is valid but likely not meant (queue limits that reserve much memory, rules that earlier
//! classes take frames from) is a [`ConfigWarning`] from [`warnings`], for `weir check`.
//! Classes are written in each port or once for both ([`PerPort`] values where they differ).
//! The file format is documented field by field in docs/config.md; `configs/` holds examples.

mod budgets;
pub mod locate;
mod per_port;
mod plan;
pub mod units;
mod warnings;

pub use budgets::BudgetStorePlan;
pub use per_port::PerPort;
pub use plan::{ClassKind, ClassPlan, Plan, PortPlan};
pub use warnings::{warnings, ConfigWarning, RESERVED_BYTES_WARNING};

use locate::Position;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file as written. Optional fields get their defaults in [`Plan`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Networks on the LAN side, as CIDRs: tells replay which way a frame goes.
    #[serde(default)]
    pub lan_networks: Vec<String>,
    #[serde(default)]
    pub flow_table: FlowTableFile,
    pub ports: PortsFile,
    /// Classes written once for both ports (then no port lists its own); a value that differs
    /// between the ports is written as a pair, `rate: (wan: "2 Mbit", lan: "5 Mbit")`.
    pub classes: Option<Vec<ClassFile>>,
    /// Named lists of host-name globs, used in rules as `domain @NAME` (or `sni`,
    /// `http_host`, `dns`): `sets: { "video": ["*.netflix.com", "*.nflxvideo.net"] }`.
    #[serde(default)]
    pub sets: std::collections::BTreeMap<String, Vec<String>>,
    /// Databases in the MaxMind DB format for the rules' `country` and `asn` tests.
    #[serde(default)]
    pub geoip: GeoipFile,
    /// Where the local ends of flows live, for the rules' owner tests (`user`, `cmd`, ...).
    #[serde(default)]
    pub processes: ProcessesFile,
    /// The time zone of the classes' `schedule` windows and of budget periods (an IANA name
    /// such as "Pacific/Auckland", or "UTC"); default: the system's.
    pub timezone: Option<String>,
    /// Budgets of the frames a rule matches, whatever their class (a class's own budget is
    /// its `budget` field).
    #[serde(default)]
    pub budgets: Vec<RuleBudgetFile>,
    /// Where the budgets' counts are kept, and how often they are written.
    #[serde(default)]
    pub budget_store: BudgetStoreFile,
}

/// `budget: (bytes: "400 GB", per: month, starts: "1st 00:00", then: (ceil: "1 Mbit"))`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    /// Bytes per period: "400 GB", "20 GiB".
    pub bytes: String,
    /// day, week or month.
    pub per: crate::budget::Per,
    /// When a period starts (local time): "1st 00:00" (month), "Mon 00:00" (week), "06:00"
    /// (day); default: the first day at 00:00.
    pub starts: Option<String>,
    /// Once used up: `drop`, or `(ceil: "64 kbit")` (a pair may name each port).
    pub then: ThenFile,
}

/// One entry of the top-level `budgets`: a budget over the frames `match` selects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBudgetFile {
    /// Shown by `weir budget`, given to `weir budget reset`.
    pub name: String,
    /// A rule (docs/rules.md): `host 192.168.1.23`, `net 192.168.1.0/28 and app https`;
    /// left out, every frame counts (the whole link: a capped uplink's allowance).
    #[serde(rename = "match")]
    pub rule: Option<String>,
    pub bytes: String,
    pub per: crate::budget::Per,
    pub starts: Option<String>,
    pub then: ThenFile,
}

/// `then: drop` or `then: (ceil: "64 kbit")`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThenFile {
    Drop,
    #[serde(untagged)]
    Ceil {
        ceil: PerPort<String>,
    },
}

/// `budget_store: (path: "/var/lib/weir/budgets.sqlite", flush: "5 s")`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetStoreFile {
    /// The SQLite file (relative: to the config's folder); default
    /// /var/lib/weir/budgets.sqlite.
    pub path: Option<String>,
    /// Counts are written this often when they changed (default "5 s", from "100 ms" to
    /// "600 s"), and at stop.
    pub flush: Option<String>,
}

/// `processes: (netns: ["/run/netns/clients"])`: the network namespaces (files of
/// `/run/netns/` or `/proc/PID/ns/net`) whose sockets the owner tests look at; empty: weir's
/// own namespace (the host).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessesFile {
    #[serde(default)]
    pub netns: Vec<String>,
}

/// `geoip: (country: "/var/lib/GeoIP/GeoLite2-Country.mmdb", asn: "...GeoLite2-ASN.mmdb")`;
/// a path relative to the config file's folder. One file may serve both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipFile {
    pub country: Option<String>,
    pub asn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTableFile {
    /// Flows remembered at once (default 65536); beyond that the idlest is evicted.
    pub max_flows: Option<u32>,
    /// A flow idle this long is forgotten (default "120 s").
    pub idle_timeout: Option<String>,
    /// Payload frames of each flow read for its server name and protocol before weir gives
    /// up on them (default 4, at most 32), when rules read them.
    pub payload_frames: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsFile {
    pub lan: PortFile,
    pub wan: PortFile,
}

/// One port; its settings apply to traffic *leaving* through it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortFile {
    /// Network interface for `weir run` (overridable on the command line).
    pub interface: Option<String>,
    /// Link rate of traffic leaving this port, e.g. "20 Mbit".
    pub rate: String,
    /// Bytes added to each frame on the wire (default 24: preamble, SFD, FCS, gap).
    pub overhead: Option<u32>,
    /// Depth of the link's token bucket (default: 1 ms at the link rate, at least 2 frames).
    pub burst: Option<String>,
    /// Name of the class taking unmatched traffic, instead of a class with `match: "default"`.
    pub default_class: Option<String>,
    /// This port's own classes; leave out when the top-level `classes` serve both ports.
    pub classes: Option<Vec<ClassFile>>,
}

/// One class. In a port's own list every value is single; in the top-level list a value may
/// also be a pair that names each port (see [`PerPort`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFile {
    pub name: String,
    /// Rule expression (docs/rules.md), or "default".
    #[serde(rename = "match")]
    pub rule: Option<String>,
    /// 0 (first) to 7 (last); default 4.
    pub priority: Option<u8>,
    /// Guaranteed rate: "2 Mbit" or "10%" of the link.
    pub rate: PerPort<String>,
    /// Most the class may take by borrowing (default: the link rate).
    pub ceil: Option<PerPort<String>>,
    /// Share of spare capacity among classes of one priority (default 1): `weight x 1538`
    /// bytes per round. Not together with `quantum`.
    pub weight: Option<PerPort<u32>>,
    /// Bytes per round among classes of one priority, instead of `weight`.
    pub quantum: Option<PerPort<String>>,
    /// Depth of the rate bucket, and of the ceil bucket unless `cburst` is given (default:
    /// 1 ms at that rate, at least 2 frames).
    pub burst: Option<PerPort<String>>,
    /// Depth of the ceil bucket (default: `burst` if given, else 1 ms at ceil, at least 2
    /// frames).
    pub cburst: Option<PerPort<String>>,
    #[serde(default)]
    pub queue: QueueFile,
    #[serde(default)]
    pub aqm: AqmFile,
    /// flow (default), host, src_host, dst_host, triple or none.
    pub fairness: Option<FairnessFile>,
    /// Mark ECN-capable frames instead of dropping them where the AQM would (default true).
    pub ecn: Option<bool>,
    pub police: Option<PoliceFile>,
    /// Rewrite the DSCP of forwarded IP frames: a name ("ef", "af41", "cs1") or 0-63.
    pub set_dscp: Option<PerPort<DscpFile>>,
    /// Other rates at times of the week: the first entry whose window holds the local time
    /// gives the class its rate and ceil (each defaults to the class's own).
    pub schedule: Option<Vec<ScheduleFile>>,
    /// So many bytes a day, week or month for this class (both ports together), and what
    /// then.
    pub budget: Option<BudgetFile>,
}

/// `(when: "Mon-Fri 08:00-18:00", rate: "1 Mbit", ceil: "2 Mbit")` (crate::schedule).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    pub when: String,
    pub rate: Option<PerPort<String>>,
    pub ceil: Option<PerPort<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    /// Most frames queued (default 1000).
    pub packets: Option<PerPort<u32>>,
    /// Most bytes queued (default: 200 ms at ceil, between 256 KiB and 32 MiB).
    pub bytes: Option<PerPort<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AqmFile {
    /// CoDel on this class (default true).
    pub enabled: Option<bool>,
    /// Default "5 ms".
    pub target: Option<String>,
    /// Default "100 ms".
    pub interval: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FairnessFile {
    Flow,
    Host,
    SrcHost,
    DstHost,
    Triple,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliceFile {
    /// Absolute or a share of the link. A pair that leaves a port out polices the other only.
    pub rate: PerPort<String>,
    /// Default: 10 ms at the police rate, at least 2 frames.
    pub burst: Option<PerPort<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DscpFile {
    Number(u8),
    Name(String),
}

/// A config that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// None when the file could not be read at all.
    pub position: Option<Position>,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the position is on, for display.
    pub line_text: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show_at(
            f,
            &self.file,
            self.position,
            &self.message,
            self.line_text.as_deref(),
            self.hint.as_deref(),
        )
    }
}

/// `file:line:column: message`, the line with a caret under the column, and the hint.
fn show_at(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    position: Option<Position>,
    message: &str,
    line_text: Option<&str>,
    hint: Option<&str>,
) -> fmt::Result {
    match position {
        Some(p) => write!(f, "{}:{}:{}: {message}", file.display(), p.line, p.column)?,
        None => write!(f, "{}: {message}", file.display())?,
    }
    if let (Some(p), Some(text)) = (position, line_text) {
        let lead: String = text
            .chars()
            .take(p.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "\n    {text}\n    {lead}^")?;
    }
    if let Some(h) = hint {
        write!(f, "\n  hint: {h}")?;
    }
    Ok(())
}

impl std::error::Error for ConfigError {}

/// The policy of `weir report` and `weir sniff` without a config: one class per port on a
/// link no capture fills, so nothing is shaped and the classifier still learns every flow's
/// name and protocol.
pub fn pass_through() -> Plan {
    const PASS_THROUGH: &str = r#"(
        ports: (wan: (rate: "400 Gbit"), lan: (rate: "400 Gbit")),
        classes: [(name: "all", match: "default", rate: "400 Gbit", queue: (packets: 100000))],
    )"#;
    parse(PASS_THROUGH, Path::new("(built in)")).expect("the built-in pass-through policy is valid")
}

/// Read, parse and validate a config file.
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    parse(&read(path)?, path)
}

/// A config file's text, or an error that says which file and why.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        position: None,
        message: format!("cannot read the config: {e}"),
        hint: Some("give the path of a RON config, e.g. configs/home.ron".into()),
        line_text: None,
    })
}

/// Parse and validate config text; `path` is used in messages, and relative paths in it
/// (`geoip`) are taken from its folder.
pub fn parse(src: &str, path: &Path) -> Result<Plan, ConfigError> {
    let err_at = |position: Option<Position>, message: String, hint: Option<String>| {
        let line_text = position.and_then(|p| {
            src.lines()
                .nth(p.line.saturating_sub(1))
                .map(str::to_string)
        });
        ConfigError {
            file: path.to_path_buf(),
            position,
            message,
            hint,
            line_text,
        }
    };
    let options =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let file: ConfigFile = options.from_str(src).map_err(|e| {
        let position = Position {
            line: e.span.start.line,
            column: e.span.start.col,
        };
        let (message, hint) = describe_ron_error(&e.code);
        err_at(Some(position), message, hint)
    })?;
    let locator = locate::Locator::scan(src);
    let folder = path.parent().unwrap_or(Path::new(""));
    plan::build(
        file,
        folder,
        &|field: &str, column_in_value: usize, message: String, hint: Option<String>| {
            let position = locator.find(field).map(|p| Position {
                line: p.line,
                column: p.column + column_in_value,
            });
            err_at(position, message, hint)
        },
    )
}

fn describe_ron_error(code: &ron::Error) -> (String, Option<String>) {
    let message = code.to_string();
    let hint = match code {
        ron::Error::NoSuchStructField { expected, .. } => {
            Some(format!("the fields here are: {}", expected.join(", ")))
        }
        ron::Error::MissingStructField { field, .. } => {
            Some(format!("add `{field}: ...` (see docs/config.md)"))
        }
        ron::Error::NoSuchEnumVariant { expected, .. } => {
            Some(format!("use one of: {}", expected.join(", ")))
        }
        ron::Error::ExpectedString | ron::Error::ExpectedStringEnd => {
            Some("rates, sizes and durations are quoted strings, e.g. rate: \"20 Mbit\"".into())
        }
        _ => Some("see docs/config.md and the examples in configs/".into()),
    };
    (message, hint)
}

#[cfg(test)]
mod tests;
