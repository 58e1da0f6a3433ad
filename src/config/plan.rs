//! Validation: from the file as written to a [`Plan`] with every default resolved.

use super::units::{self, BitRate, UnitError};
use super::{AqmFile, ClassFile, ConfigError, ConfigFile, DscpFile, FairnessFile, PerPort};
use crate::classify::geo::{GeoKey, GeoSet};
use crate::classify::rule::{check_glob, NameSets, NameTests, Rule, RuleError, MAX_NAME_TESTS};
use crate::classify::{Classifier, Fairness, MatchEntry, PortRules};
use crate::port::ClassId;
use crate::port::Side;
use crate::sched::{CodelParams, PortSpec, BASE_QUANTUM};
use crate::time::Nanos;
use crate::wire::dscp_from_name;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest frame weir accepts (a GSO super-frame); also the smallest useful byte limit.
pub const MAX_FRAME_BYTES: u32 = crate::wire::MAX_FRAME as u32;
/// A full-size Ethernet frame, for default bursts.
const FULL_FRAME: u64 = 1514;
const DEFAULT_OVERHEAD: u32 = 24;
const DEFAULT_PRIORITY: u8 = 4;
const MAX_PRIORITY: u8 = 7;
const DEFAULT_QUEUE_PACKETS: u32 = 1000;
const MAX_WEIGHT: u32 = 1000;
/// A round-robin quantum below this takes many rounds per large frame (a GSO super-frame of
/// 64 KiB needs 256 at this size); above the largest weight's it is a weight beyond the range.
const MIN_QUANTUM: u64 = 256;
const MAX_QUANTUM: u64 = MAX_WEIGHT as u64 * BASE_QUANTUM as u64;
const DEFAULT_MAX_FLOWS: u32 = 65_536;
const DEFAULT_IDLE_TIMEOUT: Nanos = 120_000_000_000;
/// Name of the implicit class for link control traffic.
pub const CONTROL_CLASS: &str = "control";

/// Where a class comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassKind {
    /// Implicit, first on every port: ARP, IPv6 ND, LLDP, STP, LACP, PPPoE discovery and PPP control.
    Control,
    /// Takes the frames its rule matches.
    Matched(String),
    /// Takes what no rule matched.
    Default,
}

#[derive(Clone, Debug)]
pub struct ClassPlan {
    pub name: String,
    pub kind: ClassKind,
    /// Priority as the user wrote it (0-7); the control class has none.
    pub user_priority: Option<u8>,
    pub fairness: Fairness,
    pub set_dscp: Option<u8>,
    pub(super) rule: Option<Rule>,
    /// Other rates at times of the week, in order: the first whose window holds the local
    /// time applies (else the class's own rate and ceil, in `PortPlan::spec`).
    pub schedule: Vec<ScheduledRate>,
    /// Its budget, an index into [`Plan::budgets`].
    pub budget: Option<u8>,
}

/// A class's rate and ceil in bit/s while `window` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledRate {
    /// As written (`Mon-Fri 08:00-18:00`).
    pub when: String,
    pub window: crate::schedule::Window,
    pub rate_bps: u64,
    pub ceil_bps: u64,
}

#[derive(Clone, Debug)]
pub struct PortPlan {
    pub side: Side,
    pub interface: Option<String>,
    pub overhead: u32,
    /// The scheduler's view; class ids index both `spec.classes` and `classes`.
    pub spec: PortSpec,
    pub classes: Vec<ClassPlan>,
    /// Where the classes were written, to point at them in warnings.
    pub(super) source: ClassSource,
}

/// Where a port's classes are written: in the port, or once at the top level for both ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClassSource {
    Port,
    Shared,
}

impl ClassSource {
    /// The path (for [`super::locate::Locator`]) of `field` of the class at `index` in the
    /// file's list, as it applies to `side`; an empty `field` is the class itself. In the
    /// shared form the side's entry of a pair is named; where the value is single, the locator
    /// falls back to it.
    pub(super) fn path(self, side: Side, index: usize, field: &str) -> String {
        let class = format!("{}[{index}]", self.list_path(side));
        match (self, field) {
            (_, "") => class,
            (ClassSource::Port, f) => format!("{class}.{f}"),
            (ClassSource::Shared, f) => format!("{class}.{f}.{}", side.name()),
        }
    }

    /// The path of the class list `side` uses.
    pub(super) fn list_path(self, side: Side) -> String {
        match self {
            ClassSource::Port => format!("ports.{}.classes", side.name()),
            ClassSource::Shared => "classes".to_string(),
        }
    }
}

/// A validated config.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `(network, prefix length, is IPv6)`, addresses as in [`crate::wire::FrameView`].
    pub lan_networks: Vec<(u128, u8, bool)>,
    pub max_flows: u32,
    pub idle_timeout: Nanos,
    /// Payload frames read per flow for its name and protocol.
    pub payload_frames: u8,
    /// Indexed by [`Side::index`]: `[lan, wan]`.
    pub ports: [PortPlan; 2],
    /// The config's `sets`, for the rules' `domain @NAME` tests.
    pub name_sets: NameSets,
    /// The databases the rules' `country` and `asn` tests were bound from, and what each
    /// test got (for `weir check`).
    pub geo: Vec<GeoBinding>,
    /// Network namespaces whose sockets the owner tests look at (empty: weir's own).
    pub owner_netns: Vec<PathBuf>,
    /// The time zone of the classes' schedules.
    pub timezone: jiff::tz::TimeZone,
    /// Some rule tests the program behind a flow (`user`, `cmd`, ...); some tests its process
    /// (`pid`, `cmd`, `args`, `cgroup`), not only its socket's user.
    pub reads_owners: bool,
    pub reads_processes: bool,
    /// Budgets: the classes' (named after them) first, then the rules' (crate::budget).
    pub budgets: Vec<crate::budget::BudgetPlan>,
    /// Rules every frame is tested against besides the classes' ([`PortRules::watch`]): the
    /// rule budgets', with their index in `budgets`, then a `weir sniff` filter's
    /// ([`Plan::watch`]).
    pub(super) watch_rules: Vec<(u8, Rule)>,
    pub budget_store: super::budgets::BudgetStorePlan,
}

/// One `country` or `asn` test of the rules, and what its database gave it.
#[derive(Clone, Debug)]
pub struct GeoBinding {
    pub key: GeoKey,
    pub database: PathBuf,
    /// Address ranges outside the LAN networks.
    pub ranges: usize,
}

impl Plan {
    pub fn port(&self, side: Side) -> &PortPlan {
        &self.ports[side.index()]
    }

    /// A classifier for this plan (rules are cloned; the plan stays usable).
    pub fn classifier(&self) -> Classifier {
        let mut c = Classifier::new(self.port_rules(), self.max_flows, self.idle_timeout);
        c.set_payload_frames(self.payload_frames);
        c
    }

    /// The classification rules of both egress ports, `[lan, wan]`.
    pub fn port_rules(&self) -> [PortRules; 2] {
        let rules = |p: &PortPlan| PortRules {
            matches: p
                .classes
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    c.rule.clone().map(|rule| MatchEntry {
                        class: i as ClassId,
                        rule,
                    })
                })
                .collect(),
            // Validation guarantees exactly one default class; 0 (control) is never reached.
            default_class: p
                .classes
                .iter()
                .position(|c| c.kind == ClassKind::Default)
                .unwrap_or(0) as ClassId,
            control_class: 0,
            fairness: p.classes.iter().map(|c| c.fairness).collect(),
            name_sets: self.name_sets.clone(),
            watch: self.watch_rules.clone(),
        };
        [rules(&self.ports[0]), rules(&self.ports[1])]
    }

    /// Test every frame against `text` too (`weir sniff`'s filter): the bit it sets in a
    /// verdict's `watched`, or what is wrong with it (columns of `text`). Tests that need
    /// what the config's own rules alone get are refused: `country` and `asn` (their
    /// databases are read for those rules) and the owner tests (a running bridge's resolver).
    pub fn watch(&mut self, text: &str) -> Result<u8, RuleError> {
        let sets: Vec<String> = self.name_sets.iter().map(|(n, _)| n.clone()).collect();
        let rule = Rule::parse_with_sets(text, &sets)?;
        let refuse = |message: String, hint: &str| RuleError {
            column: 1,
            len: text.chars().count().max(1),
            message,
            hint: Some(hint.to_string()),
        };
        if !rule.geo_keys().is_empty() {
            return Err(refuse(
                "`country` and `asn` are not available here".into(),
                "their databases are read for the config's own rules only",
            ));
        }
        if rule.reads_owners() {
            return Err(refuse(
                "the owner tests (user, uid, pid, cmd, args, cgroup) are not available here".into(),
                "they need a running bridge's resolver",
            ));
        }
        let mut tests = NameTests::new(self.name_sets.clone());
        let known = self
            .ports
            .iter()
            .flat_map(|p| p.classes.iter().filter_map(|c| c.rule.as_ref()))
            .chain(self.watch_rules.iter().map(|(_, r)| r));
        for r in known {
            let _ = r.clone().bind_names(&mut tests);
        }
        if rule.clone().bind_names(&mut tests).is_err() {
            return Err(refuse(
                format!("more than {MAX_NAME_TESTS} different name tests with the config's"),
                "test fewer names, or give a config with fewer",
            ));
        }
        let bit = self
            .watch_rules
            .iter()
            .map(|(i, _)| i + 1)
            .max()
            .unwrap_or(0)
            .max(self.budgets.len() as u8);
        if usize::from(bit) >= crate::budget::MAX_BUDGETS {
            return Err(refuse(
                "too many rules to test every frame against".into(),
                "use a config with fewer budgets",
            ));
        }
        self.watch_rules.push((bit, rule));
        Ok(bit)
    }

    /// Is `addr` (of the given family) inside one of the LAN networks?
    pub fn is_lan_address(&self, addr: u128, is_v6: bool) -> bool {
        self.lan_networks.iter().any(|&(net, len, v6)| {
            v6 == is_v6 && {
                let bits = if v6 { 128 } else { 32 };
                let shift = bits - u32::from(len);
                shift >= 128 || (addr >> shift) == (net >> shift)
            }
        })
    }
}

/// Makes an error at a field path, `column` characters into its value.
pub(super) type ErrAt<'a> = dyn Fn(&str, usize, String, Option<String>) -> ConfigError + 'a;

fn unit_err(at: &ErrAt, field: &str, what: &str, e: UnitError) -> ConfigError {
    // The value's position is its opening quote, so character k of the string is k columns on.
    at(field, e.column, format!("{what}: {}", e.message), e.hint)
}

pub(super) fn build(file: ConfigFile, folder: &Path, at: &ErrAt) -> Result<Plan, ConfigError> {
    let mut lan_networks = Vec::new();
    for (i, net) in file.lan_networks.iter().enumerate() {
        lan_networks.push(
            parse_cidr(net)
                .map_err(|(msg, hint)| at(&format!("lan_networks[{i}]"), 1, msg, hint))?,
        );
    }
    let max_flows = file.flow_table.max_flows.unwrap_or(DEFAULT_MAX_FLOWS);
    if !(1..=1 << 24).contains(&max_flows) {
        return Err(at(
            "flow_table.max_flows",
            0,
            format!("max_flows {max_flows} is out of range"),
            Some("use 1 to 16777216 (each flow takes about 80 bytes)".into()),
        ));
    }
    let idle_timeout = match &file.flow_table.idle_timeout {
        Some(s) => units::parse_duration(s)
            .map_err(|e| unit_err(at, "flow_table.idle_timeout", "idle_timeout", e))?,
        None => DEFAULT_IDLE_TIMEOUT,
    };
    let payload_frames = file
        .flow_table
        .payload_frames
        .unwrap_or(crate::classify::NAME_PAYLOAD_FRAMES);
    if !(1..=crate::classify::MAX_PAYLOAD_FRAMES).contains(&payload_frames) {
        return Err(at(
            "flow_table.payload_frames",
            0,
            format!("payload_frames {payload_frames} is out of range"),
            Some(format!(
                "use 1 to {} (each is a frame of a new flow that may go to another class before \
                 its name and protocol are known)",
                crate::classify::MAX_PAYLOAD_FRAMES
            )),
        ));
    }
    let name_sets = build_sets(&file, at)?;
    let mut lan = build_port(Side::Lan, &file, at)?;
    let mut wan = build_port(Side::Wan, &file, at)?;
    let built = super::budgets::build(&file, &mut [&mut lan, &mut wan], &name_sets, folder, at)?;
    let mut watch_rules = built.rules;
    check_name_tests(&[&lan, &wan], &watch_rules, &name_sets, at)?;
    let geo = bind_geo(
        &mut [&mut lan, &mut wan],
        &mut watch_rules,
        &file,
        folder,
        &lan_networks,
        at,
    )?;
    let owner_netns = file.processes.netns.iter().map(PathBuf::from).collect();
    let timezone = match &file.timezone {
        None => jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| {
            at(
                "timezone",
                1,
                format!("unknown time zone \"{name}\": {e}"),
                Some("an IANA name such as \"Europe/Berlin\" or \"UTC\"".into()),
            )
        })?,
    };
    let any_rule = |f: fn(&Rule) -> bool| {
        [&lan, &wan]
            .iter()
            .flat_map(|p| p.classes.iter())
            .any(|c| c.rule.as_ref().is_some_and(f))
            || watch_rules.iter().any(|(_, r)| f(r))
    };
    let (reads_owners, reads_processes) = (
        any_rule(Rule::reads_owners),
        any_rule(Rule::reads_processes),
    );
    Ok(Plan {
        lan_networks,
        max_flows,
        idle_timeout,
        payload_frames,
        ports: [lan, wan],
        name_sets,
        geo,
        owner_netns,
        timezone,
        reads_owners,
        reads_processes,
        budgets: built.budgets,
        watch_rules,
        budget_store: built.store,
    })
}

/// Read the databases the rules' `country` and `asn` tests need (each once), and give each
/// test its address ranges less the LAN networks (crate::classify::geo).
fn bind_geo(
    ports: &mut [&mut PortPlan; 2],
    watch_rules: &mut [(u8, Rule)],
    file: &ConfigFile,
    folder: &Path,
    lan_networks: &[(u128, u8, bool)],
    at: &ErrAt,
) -> Result<Vec<GeoBinding>, ConfigError> {
    // Each key with the first class that names it, for errors.
    let mut wanted: BTreeMap<GeoKey, String> = BTreeMap::new();
    for port in ports.iter() {
        for (i, c) in port.classes.iter().enumerate().skip(1) {
            for key in c.rule.iter().flat_map(Rule::geo_keys) {
                wanted
                    .entry(key)
                    .or_insert_with(|| port.source.path(port.side, i - 1, "match"));
            }
        }
    }
    for (k, (_, rule)) in watch_rules.iter().enumerate() {
        for key in rule.geo_keys() {
            wanted
                .entry(key)
                .or_insert_with(|| format!("budgets[{k}].match"));
        }
    }
    let mut sets = BTreeMap::new();
    let mut bindings = Vec::new();
    for (kind, field, path) in [
        ("country", "geoip.country", &file.geoip.country),
        ("asn", "geoip.asn", &file.geoip.asn),
    ] {
        let keys: Vec<GeoKey> = wanted
            .keys()
            .filter(|k| matches!(k, GeoKey::Country(_)) == (kind == "country"))
            .copied()
            .collect();
        let Some(first) = keys.first() else { continue };
        let Some(path) = path else {
            return Err(at(
                &wanted[first],
                0,
                format!(
                    "`{}` needs a database of {}, and the config names none",
                    first.describe(),
                    if kind == "country" {
                        "countries"
                    } else {
                        "ASes"
                    }
                ),
                Some(format!(
                    "add geoip: ({kind}: \"/var/lib/GeoIP/GeoLite2-{}.mmdb\") at the top level \
                     (a MaxMind DB file: GeoLite2, DB-IP lite; docs/config.md)",
                    if kind == "country" { "Country" } else { "ASN" }
                )),
            ));
        };
        let full = folder.join(path);
        let db = crate::classify::geo::Database::open(&full).map_err(|e| {
            at(
                field,
                1,
                e,
                Some("give the path of a MaxMind DB file (.mmdb), absolute or relative to the config's folder".into()),
            )
        })?;
        let ranges = db
            .ranges(&keys)
            .map_err(|e| at(field, 1, format!("{}: {e}", full.display()), None))?;
        for (key, mut r) in ranges {
            r.subtract(lan_networks);
            bindings.push(GeoBinding {
                key,
                database: full.clone(),
                ranges: r.len(),
            });
            sets.insert(key, GeoSet::new(r));
        }
    }
    if !sets.is_empty() {
        for port in ports.iter_mut() {
            for c in &mut port.classes {
                if let Some(rule) = &mut c.rule {
                    rule.bind_geo(&sets);
                }
            }
        }
        for (_, rule) in watch_rules.iter_mut() {
            rule.bind_geo(&sets);
        }
    }
    Ok(bindings)
}

/// Globs per set at most: a name is tested against each glob of a set once per flow.
const MAX_SET_GLOBS: usize = 4096;

/// The config's `sets`, checked: names of letters, digits, `-` and `_`; globs as rules take
/// them, in lower case.
fn build_sets(file: &ConfigFile, at: &ErrAt) -> Result<NameSets, ConfigError> {
    let mut sets = Vec::new();
    for (name, globs) in &file.sets {
        let bad_name = name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if bad_name {
            return Err(at(
                "sets",
                0,
                format!("set name `{name}` is not usable in a rule"),
                Some("1 to 32 letters, digits, `-` or `_`".into()),
            ));
        }
        if globs.len() > MAX_SET_GLOBS {
            return Err(at(
                "sets",
                0,
                format!(
                    "set `{name}` has {} globs, more than {MAX_SET_GLOBS}",
                    globs.len()
                ),
                Some("merge names into globs (`*.example.com`)".into()),
            ));
        }
        let mut lower = Vec::with_capacity(globs.len());
        for (i, g) in globs.iter().enumerate() {
            let g = g.to_ascii_lowercase();
            if let Err(what) = check_glob(&g) {
                return Err(at(
                    "sets",
                    0,
                    format!(
                        "set `{name}`, entry {} (`{g}`): not a host-name glob: {what}",
                        i + 1
                    ),
                    Some("letters, digits, `-`, `_`, `.` and `*` (any run of characters)".into()),
                ));
            }
            lower.push(g);
        }
        sets.push((name.to_ascii_lowercase(), lower));
    }
    Ok(sets)
}

/// The classifier keeps a bit per distinct name test (`domain`, `sni`, ...) in each flow.
fn check_name_tests(
    ports: &[&PortPlan],
    watch_rules: &[(u8, Rule)],
    sets: &NameSets,
    at: &ErrAt,
) -> Result<(), ConfigError> {
    let mut tests = NameTests::new(sets.clone());
    for port in ports {
        // The port's plan starts with its control class, which is not in the file.
        for (i, c) in port.classes.iter().enumerate().skip(1) {
            let Some(rule) = &c.rule else { continue };
            if rule.clone().bind_names(&mut tests).is_err() {
                return Err(at(
                    &port.source.path(port.side, i - 1, "match"),
                    0,
                    format!(
                        "class `{}`: more than {MAX_NAME_TESTS} different name tests \
                         (domain, sni, http_host, dns) in one config",
                        c.name
                    ),
                    Some("merge names into globs (`*.example.com`) or fewer classes".into()),
                ));
            }
        }
    }
    for (k, (_, rule)) in watch_rules.iter().enumerate() {
        if rule.clone().bind_names(&mut tests).is_err() {
            return Err(at(
                &format!("budgets[{k}].match"),
                0,
                format!("more than {MAX_NAME_TESTS} different name tests (domain, sni, http_host, dns, app, user, ...) in one config"),
                Some("merge names into globs (`*.example.com`) or fewer rules".into()),
            ));
        }
    }
    Ok(())
}

fn default_burst(rate: BitRate) -> u64 {
    (rate.0 / 8 / 1000).max(2 * FULL_FRAME)
}

/// A class's fields as they apply to one port: pairs resolved to this port's side.
struct PortClass<'a> {
    name: &'a str,
    rule: Option<&'a str>,
    priority: Option<u8>,
    rate: &'a str,
    ceil: Option<&'a str>,
    weight: Option<u32>,
    quantum: Option<&'a str>,
    burst: Option<&'a str>,
    cburst: Option<&'a str>,
    queue_packets: Option<u32>,
    queue_bytes: Option<&'a str>,
    aqm: &'a AqmFile,
    fairness: Option<FairnessFile>,
    ecn: Option<bool>,
    /// Rate and burst; `None` also when a pair left this port out of `police.rate`.
    police: Option<(&'a str, Option<&'a str>)>,
    set_dscp: Option<&'a DscpFile>,
    /// (when, rate, ceil) for this port.
    schedule: Vec<(&'a str, Option<&'a str>, Option<&'a str>)>,
}

impl<'a> PortClass<'a> {
    fn of(c: &'a ClassFile, here: ClassAt, at: &ErrAt) -> Result<PortClass<'a>, ConfigError> {
        let side = here.side;
        let rate = here.pick(Some(&c.rate), "rate", at)?.ok_or_else(|| {
            at(
                &here.path("rate"),
                0,
                format!("class `{}` has no rate for port {}", c.name, side.name()),
                Some("a pair names both ports: rate: (wan: \"2 Mbit\", lan: \"5 Mbit\")".into()),
            )
        })?;
        let police = match &c.police {
            None => None,
            Some(p) => {
                let burst = here.pick(p.burst.as_ref(), "police.burst", at)?;
                match here.pick(Some(&p.rate), "police.rate", at)? {
                    Some(rate) => Some((rate.as_str(), burst.map(String::as_str))),
                    // A pair for police.rate that leaves this port out: no police here, so a
                    // burst named for this port is a mistake.
                    None if p.burst.as_ref().is_some_and(PerPort::is_pair) && burst.is_some() => {
                        return Err(at(
                            &here.path("police.burst"),
                            0,
                            format!(
                                "police.burst is given for port {0}, which police.rate leaves out",
                                side.name()
                            ),
                            Some(format!(
                                "give police.rate a value for {0}, or leave {0} out of police.burst",
                                side.name()
                            )),
                        ));
                    }
                    None => None,
                }
            }
        };
        Ok(PortClass {
            name: &c.name,
            rule: c.rule.as_deref(),
            priority: c.priority,
            rate,
            ceil: here.pick(c.ceil.as_ref(), "ceil", at)?.map(String::as_str),
            weight: here.pick(c.weight.as_ref(), "weight", at)?.copied(),
            quantum: here
                .pick(c.quantum.as_ref(), "quantum", at)?
                .map(String::as_str),
            burst: here
                .pick(c.burst.as_ref(), "burst", at)?
                .map(String::as_str),
            cburst: here
                .pick(c.cburst.as_ref(), "cburst", at)?
                .map(String::as_str),
            queue_packets: here
                .pick(c.queue.packets.as_ref(), "queue.packets", at)?
                .copied(),
            queue_bytes: here
                .pick(c.queue.bytes.as_ref(), "queue.bytes", at)?
                .map(String::as_str),
            aqm: &c.aqm,
            fairness: c.fairness,
            ecn: c.ecn,
            police,
            set_dscp: here.pick(c.set_dscp.as_ref(), "set_dscp", at)?,
            schedule: c
                .schedule
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, e)| {
                    let rate = here.pick(e.rate.as_ref(), &format!("schedule[{j}].rate"), at)?;
                    let ceil = here.pick(e.ceil.as_ref(), &format!("schedule[{j}].ceil"), at)?;
                    Ok((
                        e.when.as_str(),
                        rate.map(String::as_str),
                        ceil.map(String::as_str),
                    ))
                })
                .collect::<Result<_, ConfigError>>()?,
        })
    }
}

/// A class of the file, as seen from one port.
#[derive(Clone, Copy)]
struct ClassAt {
    side: Side,
    source: ClassSource,
    /// In the file's list (the port's plan has the control class before it).
    index: usize,
}

impl ClassAt {
    fn path(self, field: &str) -> String {
        self.source.path(self.side, self.index, field)
    }

    /// The value of a field on this port. A pair is refused in a port's own class: it would
    /// name the other port too.
    fn pick<'a, T>(
        self,
        v: Option<&'a PerPort<T>>,
        field: &str,
        at: &ErrAt,
    ) -> Result<Option<&'a T>, ConfigError> {
        match v {
            Some(p) if p.is_pair() && self.source == ClassSource::Port => Err(at(
                &self.path(field),
                0,
                format!(
                    "{field}: a pair (wan: ..., lan: ...) in a class of port {}",
                    self.side.name()
                ),
                Some("a port's own classes take one value; pairs are for the top-level `classes`, written once for both ports".into()),
            )),
            Some(p) => Ok(p.get(self.side)),
            None => Ok(None),
        }
    }
}

fn build_port(side: Side, file: &ConfigFile, at: &ErrAt) -> Result<PortPlan, ConfigError> {
    let p = match side {
        Side::Lan => &file.ports.lan,
        Side::Wan => &file.ports.wan,
    };
    let base = format!("ports.{}", side.name());
    let field = |f: &str| format!("{base}.{f}");
    let link =
        units::parse_bit_rate(&p.rate).map_err(|e| unit_err(at, &field("rate"), "rate", e))?;
    let overhead = p.overhead.unwrap_or(DEFAULT_OVERHEAD);
    if overhead > 256 {
        return Err(at(
            &field("overhead"),
            0,
            format!("overhead {overhead} bytes per frame is implausible"),
            Some(
                "Ethernet adds 24 (preamble 8 + FCS 4 + gap 12); add 4 per VLAN tag, ~8 for PPPoE"
                    .into(),
            ),
        ));
    }
    let burst = match &p.burst {
        Some(s) => units::parse_size(s).map_err(|e| unit_err(at, &field("burst"), "burst", e))?,
        None => default_burst(link),
    };
    let (files, source) = match (&file.classes, &p.classes) {
        (Some(_), Some(_)) => {
            return Err(at(
                &field("classes"),
                0,
                format!(
                    "port {} has its own classes, and the config has a top-level `classes` for both ports",
                    side.name()
                ),
                Some("write the classes once at the top level (a value that differs per port as (wan: ..., lan: ...)), or in each port, not both".into()),
            ))
        }
        (Some(shared), None) => (shared, ClassSource::Shared),
        (None, Some(own)) => (own, ClassSource::Port),
        (None, None) => {
            return Err(at(
                &base,
                0,
                format!("port {} has no classes", side.name()),
                Some("add `classes: [...]` at the top level for both ports, or in each port".into()),
            ))
        }
    };
    if files.is_empty() {
        return Err(at(
            &source.list_path(side),
            0,
            format!("port {} has no classes", side.name()),
            Some("add at least one class with match: \"default\"".into()),
        ));
    }
    let mut port_classes = Vec::with_capacity(files.len());
    for (index, c) in files.iter().enumerate() {
        port_classes.push(PortClass::of(
            c,
            ClassAt {
                side,
                source,
                index,
            },
            at,
        )?);
    }
    let default_class = p.default_class.as_deref();

    let mut classes = vec![control_class()];
    let mut specs = vec![control_spec(link)];
    let mut default_at: Option<usize> = None;
    let mut guaranteed: u128 = 0;
    for (i, c) in port_classes.iter().enumerate() {
        let cf = |f: &str| source.path(side, i, f);
        if c.name.is_empty()
            || c.name.len() > 32
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(at(
                &cf("name"),
                0,
                format!("class name {:?} is not usable", c.name),
                Some("use 1 to 32 letters, digits, '-' or '_'".into()),
            ));
        }
        if c.name == CONTROL_CLASS {
            return Err(at(
                &cf("name"),
                0,
                format!("`{CONTROL_CLASS}` is the implicit class for ARP, ND, LLDP and STP"),
                Some("choose another name".into()),
            ));
        }
        if let Some(prev) = port_classes[..i].iter().position(|o| o.name == c.name) {
            return Err(at(
                &cf("name"),
                0,
                format!(
                    "class `{}` is defined twice on port {}",
                    c.name,
                    side.name()
                ),
                Some(format!(
                    "the first is class #{} of this port; rename one",
                    prev + 1
                )),
            ));
        }
        let (kind, rule) = match c.rule.map(str::trim) {
            None => {
                if default_class == Some(c.name) {
                    (ClassKind::Default, None)
                } else {
                    return Err(at(
                        &cf(""),
                        0,
                        format!("class `{}` has no `match`", c.name),
                        Some("add match: \"<rule>\" (docs/rules.md), or match: \"default\"".into()),
                    ));
                }
            }
            Some(src) => {
                let set_names: Vec<String> =
                    file.sets.keys().map(|k| k.to_ascii_lowercase()).collect();
                let rule = Rule::parse_with_sets(src, &set_names).map_err(|e| {
                    let lead = c.rule.map_or(0, |r| r.len() - r.trim_start().len());
                    at(
                        &cf("match"),
                        lead + e.column,
                        format!("rule of class `{}`: {}", c.name, e.message),
                        e.hint.clone(),
                    )
                })?;
                if rule.is_default() {
                    (ClassKind::Default, None)
                } else {
                    (ClassKind::Matched(src.to_string()), Some(rule))
                }
            }
        };
        if kind == ClassKind::Default {
            if let Some(first) = default_at {
                return Err(at(
                    &cf("match"),
                    1,
                    format!(
                        "port {} has two default classes, `{}` and `{}`",
                        side.name(),
                        port_classes[first].name,
                        c.name
                    ),
                    Some("keep one class with match: \"default\"; give the other a rule".into()),
                ));
            }
            default_at = Some(i);
        }
        let rate = units::parse_rate(c.rate)
            .map_err(|e| unit_err(at, &cf("rate"), "rate", e))?
            .resolve(link);
        let ceil = match c.ceil {
            Some(s) => units::parse_rate(s)
                .map_err(|e| unit_err(at, &cf("ceil"), "ceil", e))?
                .resolve(link),
            None => link,
        };
        if rate > link {
            return Err(at(
                &cf("rate"),
                1,
                format!(
                    "rate {rate} of class `{}` is above the link rate {link} of port {}",
                    c.name,
                    side.name()
                ),
                Some("a class cannot be guaranteed more than the link carries".into()),
            ));
        }
        if ceil < rate {
            return Err(at(
                &cf("ceil"),
                1,
                format!("ceil {ceil} of class `{}` is below its rate {rate}", c.name),
                Some(format!(
                    "raise ceil to at least {rate}, or omit it to allow borrowing up to the link"
                )),
            ));
        }
        if ceil > link {
            return Err(at(
                &cf("ceil"),
                1,
                format!(
                    "ceil {ceil} of class `{}` is above the link rate {link}",
                    c.name
                ),
                Some(format!("use at most \"{link}\" or \"100%\"")),
            ));
        }
        guaranteed += u128::from(rate.0);
        let priority = c.priority.unwrap_or(DEFAULT_PRIORITY);
        if priority > MAX_PRIORITY {
            return Err(at(
                &cf("priority"),
                0,
                format!("priority {priority} is out of range"),
                Some("use 0 (served first) to 7 (last)".into()),
            ));
        }
        let weight = c.weight.unwrap_or(1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(at(
                &cf("weight"),
                0,
                format!("weight {weight} is out of range"),
                Some(format!("use 1 to {MAX_WEIGHT}")),
            ));
        }
        let quantum_bytes = match c.quantum {
            None => weight * BASE_QUANTUM,
            Some(_) if c.weight.is_some() => {
                return Err(at(
                    &cf("quantum"),
                    0,
                    format!("class `{}` has both a weight and a quantum", c.name),
                    Some(format!("keep one: quantum is the bytes per round, weight is the same in units of {BASE_QUANTUM} bytes")),
                ))
            }
            Some(s) => {
                let q = units::parse_size(s)
                    .map_err(|e| unit_err(at, &cf("quantum"), "quantum", e))?;
                if !(MIN_QUANTUM..=MAX_QUANTUM).contains(&q) {
                    return Err(at(
                        &cf("quantum"),
                        1,
                        format!("quantum {} is out of range", units::format_size(q)),
                        Some(format!("use {MIN_QUANTUM} to {MAX_QUANTUM} bytes; about one full-size frame ({BASE_QUANTUM} bytes on the wire) is usual")),
                    ));
                }
                // In range, so it fits.
                q as u32
            }
        };
        let bucket = |value: Option<&str>, name: &str, rate: BitRate| match value {
            None => Ok(default_burst(rate)),
            Some(s) => {
                let b = units::parse_size(s).map_err(|e| unit_err(at, &cf(name), name, e))?;
                if b < FULL_FRAME {
                    return Err(at(&cf(name), 1, format!("{name} {} is less than one full-size frame", units::format_size(b)), Some(format!("use at least {FULL_FRAME} bytes; the default is 1 ms at the rate, at least {}", 2 * FULL_FRAME))));
                }
                Ok(b)
            }
        };
        let burst = bucket(c.burst, "burst", rate)?;
        // Without its own value the ceil bucket keeps the class's `burst`, as before `cburst`.
        let cburst = bucket(
            c.cburst.or(c.burst),
            if c.cburst.is_some() {
                "cburst"
            } else {
                "burst"
            },
            ceil,
        )?;
        let limit_packets = c.queue_packets.unwrap_or(DEFAULT_QUEUE_PACKETS);
        if !(1..=1_000_000).contains(&limit_packets) {
            return Err(at(
                &cf("queue.packets"),
                0,
                format!("queue.packets {limit_packets} is out of range"),
                Some("use 1 to 1000000".into()),
            ));
        }
        let limit_bytes = match c.queue_bytes {
            Some(s) => units::parse_size(s)
                .map_err(|e| unit_err(at, &cf("queue.bytes"), "queue.bytes", e))?,
            None => (ceil.0 / 8 / 5).clamp(256 << 10, 32 << 20),
        };
        if limit_bytes < u64::from(MAX_FRAME_BYTES) {
            return Err(at(&cf("queue.bytes"), 1, format!("queue.bytes {} cannot hold one of the largest frames ({MAX_FRAME_BYTES} bytes, a GSO super-frame)", units::format_size(limit_bytes)), Some("use at least \"72 KiB\"; the default is 200 ms at ceil".into())));
        }
        let codel = if c.aqm.enabled.unwrap_or(true) {
            let target = match &c.aqm.target {
                Some(s) => units::parse_duration(s)
                    .map_err(|e| unit_err(at, &cf("aqm.target"), "aqm.target", e))?,
                None => CodelParams::default().target,
            };
            let interval = match &c.aqm.interval {
                Some(s) => units::parse_duration(s)
                    .map_err(|e| unit_err(at, &cf("aqm.interval"), "aqm.interval", e))?,
                None => CodelParams::default().interval,
            };
            if target == 0 || interval < target {
                return Err(at(&cf("aqm"), 0, format!("aqm target {} and interval {} do not make sense", units::format_duration(target), units::format_duration(interval)), Some("target is a small delay (5 ms), interval a round trip (100 ms), interval >= target".into())));
            }
            Some(CodelParams {
                target,
                interval,
                min_backlog_bytes: FULL_FRAME,
            })
        } else {
            None
        };
        let fairness = match c.fairness.unwrap_or(FairnessFile::Flow) {
            FairnessFile::Flow => Fairness::Flow,
            FairnessFile::Host => Fairness::Host,
            FairnessFile::SrcHost => Fairness::SrcHost,
            FairnessFile::DstHost => Fairness::DstHost,
            FairnessFile::Triple => Fairness::Triple,
            FairnessFile::None => Fairness::Fifo,
        };
        let police = match c.police {
            Some((prate, pburst)) => {
                let prate = units::parse_rate(prate)
                    .map_err(|e| unit_err(at, &cf("police.rate"), "police.rate", e))?
                    .resolve(link);
                let pburst = match pburst {
                    Some(s) => units::parse_size(s)
                        .map_err(|e| unit_err(at, &cf("police.burst"), "police.burst", e))?,
                    None => (prate.0 / 8 / 100).max(2 * FULL_FRAME),
                };
                Some((prate.0, pburst))
            }
            None => None,
        };
        let set_dscp = match c.set_dscp {
            None => None,
            Some(DscpFile::Number(n)) if *n < 64 => Some(*n),
            Some(DscpFile::Number(n)) => {
                return Err(at(
                    &cf("set_dscp"),
                    0,
                    format!("DSCP {n} is out of range"),
                    Some("use 0-63 or a name such as \"ef\", \"af41\", \"cs1\"".into()),
                ))
            }
            Some(DscpFile::Name(s)) => Some(dscp_from_name(s).ok_or_else(|| {
                at(
                    &cf("set_dscp"),
                    1,
                    format!("unknown DSCP name `{s}`"),
                    Some("use be, cs0-cs7, af11-af43, ef, va, le, or a number 0-63".into()),
                )
            })?),
        };
        let mut schedule = Vec::with_capacity(c.schedule.len());
        for (j, &(when, s_rate, s_ceil)) in c.schedule.iter().enumerate() {
            let field = |f: &str| cf(&format!("schedule[{j}].{f}"));
            let window = crate::schedule::Window::parse(when).map_err(|e| {
                at(
                    &field("when"),
                    e.column,
                    format!("schedule of class `{}`: {}", c.name, e.message),
                    Some("write days and a time range, e.g. \"Mon-Fri 08:00-18:00\" (docs/config.md)".into()),
                )
            })?;
            let parse = |v: Option<&str>, f: &str, base: BitRate| match v {
                None => Ok(base),
                Some(v) => units::parse_rate(v)
                    .map(|r| r.resolve(link))
                    .map_err(|e| unit_err(at, &field(f), f, e)),
            };
            let (s_rate, s_ceil) = (parse(s_rate, "rate", rate)?, parse(s_ceil, "ceil", ceil)?);
            if s_ceil < s_rate || s_ceil > link || s_rate.0 == 0 {
                return Err(at(
                    &field(if s_rate.0 == 0 { "rate" } else { "ceil" }),
                    1,
                    format!(
                        "schedule of class `{}` at \"{when}\": rate {s_rate} and ceil {s_ceil} do not fit (rate above 0, ceil at least the rate and at most the link {link})",
                        c.name
                    ),
                    None,
                ));
            }
            schedule.push(ScheduledRate {
                when: when.to_string(),
                window,
                rate_bps: s_rate.0,
                ceil_bps: s_ceil.0,
            });
        }
        classes.push(ClassPlan {
            name: c.name.to_string(),
            kind,
            user_priority: Some(priority),
            fairness,
            set_dscp,
            rule,
            schedule,
            budget: None,
        });
        specs.push(crate::sched::ClassSpec {
            name: c.name.to_string(),
            // The control class alone has scheduler priority 0.
            priority: priority + 1,
            rate_bps: rate.0,
            ceil_bps: ceil.0,
            burst_bytes: burst,
            cburst_bytes: cburst,
            weight,
            quantum_bytes,
            limit_packets,
            limit_bytes,
            codel,
            ecn: c.ecn.unwrap_or(true),
            fairness_buckets: if fairness == Fairness::Fifo {
                1
            } else {
                crate::sched::class_queue::DEFAULT_QUEUES
            },
            host_isolation: fairness == Fairness::Triple,
            police,
        });
    }

    if let Some(name) = default_class {
        match port_classes.iter().position(|c| c.name == name) {
            None => {
                let names: Vec<&str> = port_classes.iter().map(|c| c.name).collect();
                return Err(at(
                    &field("default_class"),
                    1,
                    format!("unknown class `{name}`"),
                    Some(format!(
                        "the classes of port {} are: {}",
                        side.name(),
                        names.join(", ")
                    )),
                ));
            }
            Some(i) if port_classes[i].rule.is_some() && default_at != Some(i) => {
                return Err(at(
                    &field("default_class"),
                    1,
                    format!(
                        "class `{name}` has a rule; a default class takes what no rule matched"
                    ),
                    Some(format!(
                        "remove the `match` of `{name}`, or drop default_class"
                    )),
                ));
            }
            Some(_) => {}
        }
    }
    let Some(_) = default_at else {
        return Err(at(
            &source.list_path(side),
            0,
            format!("port {} has no default class", side.name()),
            Some("give one class match: \"default\" (it takes what no rule matches)".into()),
        ));
    };
    if guaranteed > u128::from(link.0) {
        let parts: Vec<String> = specs[1..]
            .iter()
            .map(|s| format!("{} {}", s.name, BitRate(s.rate_bps)))
            .collect();
        return Err(at(
            &field("rate"),
            1,
            format!(
                "the guaranteed rates of port {} add up to {}, above its link rate {link}",
                side.name(),
                BitRate(u64::try_from(guaranteed).unwrap_or(u64::MAX))
            ),
            Some(format!(
                "lower some of: {}; use ceil for what a class may borrow",
                parts.join(", ")
            )),
        ));
    }
    // Rules that can never receive a frame: contradictory, or covered by earlier classes.
    for i in 1..classes.len() {
        let Some(rule) = &classes[i].rule else {
            continue;
        };
        let path = source.path(side, i - 1, "match");
        if rule.never_matches() {
            return Err(at(
                &path,
                1,
                format!("the rule of class `{}` can never match", classes[i].name),
                Some("it contradicts itself (e.g. `tcp and udp`); fix or remove the class".into()),
            ));
        }
        let earlier: Vec<&Rule> = classes[1..i]
            .iter()
            .filter_map(|c| c.rule.as_ref())
            .collect();
        if rule.is_shadowed_by(&earlier) {
            return Err(at(&path, 1, format!("class `{}` can never receive a frame: every frame its rule matches is taken by a class listed before it", classes[i].name), Some("rules are tried in order: move this class up, or narrow the earlier rule".into())));
        }
    }
    Ok(PortPlan {
        side,
        interface: p.interface.clone(),
        source,
        overhead,
        spec: PortSpec {
            name: side.name().to_string(),
            rate_bps: link.0,
            burst_bytes: burst,
            classes: specs,
        },
        classes,
    })
}

/// The implicit control class: served first, capped at 5% of the link (at least 64 kbit/s, or
/// the whole link if slower) so that an ARP storm cannot starve data. Its rate is not counted
/// against the link in the guaranteed-rate check: on links below 1.28 Mbit/s its 64 kbit/s
/// floor can take from the other classes' guarantees while control frames are queued.
fn control_class() -> ClassPlan {
    ClassPlan {
        schedule: Vec::new(),
        budget: None,
        name: CONTROL_CLASS.to_string(),
        kind: ClassKind::Control,
        user_priority: None,
        fairness: Fairness::Fifo,
        set_dscp: None,
        rule: None,
    }
}

fn control_spec(link: BitRate) -> crate::sched::ClassSpec {
    let rate = (link.0 / 20).max(64_000.min(link.0));
    crate::sched::ClassSpec {
        name: CONTROL_CLASS.to_string(),
        priority: 0,
        rate_bps: rate,
        ceil_bps: rate,
        burst_bytes: default_burst(BitRate(rate)),
        cburst_bytes: default_burst(BitRate(rate)),
        weight: 1,
        quantum_bytes: crate::sched::BASE_QUANTUM,
        limit_packets: 128,
        limit_bytes: u64::from(MAX_FRAME_BYTES) * 2,
        codel: None,
        ecn: false,
        fairness_buckets: 1,
        host_isolation: false,
        police: None,
    }
}

/// Parse "198.18.0.0/15" or "2001:db8::/32" (a bare address is a host route).
pub fn parse_cidr(s: &str) -> Result<(u128, u8, bool), (String, Option<String>)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.trim(), Some(l.trim())),
        None => (s.trim(), None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| {
        (
            format!("`{addr}` is not an IP address"),
            Some("write a network as 198.18.0.0/15 or 2001:db8::/32".into()),
        )
    })?;
    let (value, bits, v6) = match ip {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32u8, false),
        std::net::IpAddr::V6(a) => (u128::from(a), 128u8, true),
    };
    let len = match len {
        None => bits,
        Some(l) => l.parse::<u8>().ok().filter(|&l| l <= bits).ok_or_else(|| {
            (
                format!("prefix length `/{l}` is not valid"),
                Some(format!("use /0 to /{bits}")),
            )
        })?,
    };
    let host_bits = u32::from(bits - len);
    let mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if value & mask != 0 {
        let net = value & !mask;
        let shown = if v6 {
            std::net::Ipv6Addr::from(net).to_string()
        } else {
            std::net::Ipv4Addr::from(net as u32).to_string()
        };
        return Err((
            format!("`{s}` has host bits set"),
            Some(format!("did you mean {shown}/{len}?")),
        ));
    }
    Ok((value, len, v6))
}
