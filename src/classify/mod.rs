//! Classification: which class of which egress port a frame belongs to.
//!
//! Guarantees:
//! - every frame gets a class: link control traffic (ARP, IPv6 ND, LLDP, STP, LACP, PPPoE
//!   discovery and PPP control) goes to the port's control class, ahead of everything; other
//!   frames to the first class whose rule matches, in config order, else to the port's default
//!   class;
//! - rules are evaluated once per flow and direction, and the verdict is cached in the bounded
//!   [`flow_table::FlowTable`]; rules that read per-frame fields (length, TCP flags, DSCP, ...)
//!   are evaluated on every frame, but only those listed before the cached verdict;
//! - fragments of one IP datagram get the flow, and so the class, of its first fragment;
//! - server names (`domain`, `sni`, `http_host`, `dns` in rules) and protocols (`app` told from
//!   payload): when a port's rules read them, the first `payload_frames` ([`NAME_PAYLOAD_FRAMES`]
//!   by default) TCP or UDP frames of a flow that carry a payload are read for them (sni, HTTP
//!   Host, DNS question; the signatures of `payload::detect`); until a name is known its tests
//!   are false, and until the protocol is decided `app` goes by ports; when either is learnt,
//!   the flow's verdicts are made again, once, and its frames from then on go to the new
//!   class, once its frames have left the former one (`classify_frame_in_order`: so that they
//!   leave in order; at most [`MAX_HELD_FOR_ORDER`] frames kept back). The frames classified
//!   before are counted;
//! - no allocation per frame; no panic whatever the frame.

pub mod dns_cache;
pub mod flow;
pub mod flow_table;
pub mod fragments;
pub mod geo;
pub mod hello_pool;
pub mod owner;
pub mod payload;
pub mod rule;

use crate::port::ClassId;
use crate::port::Side;
use crate::time::Nanos;
use crate::wire::FrameView;
use dns_cache::{DnsCache, DnsCacheStats, DNS_CACHE_ENTRIES};
use flow::{host_hash, mac_u128, FlowKey};
use flow_table::NAME_DECIDED;
use flow_table::{FlowTable, FlowTableStats, NO_VERDICT};
use fragments::{FragmentStats, FragmentTable};
use hello_pool::{HelloPool, HelloPoolStats};
use owner::OwnerSeen;
use payload::{detect, At, NameSource, Pending};
use rule::{AppSeen, NameTests, Rule};

/// Payload frames of a flow read for its server name and its protocol before giving up on
/// them, unless the config says otherwise (`flow_table.payload_frames`).
pub const NAME_PAYLOAD_FRAMES: u8 = 4;

/// Frames of a flow that moved kept at most in its former class while its earlier frames wait
/// there (then it moves even if they still do: a FIFO class under load may never empty).
pub const MAX_HELD_FOR_ORDER: u8 = 64;

/// The most payload frames a config may ask to read per flow.
pub const MAX_PAYLOAD_FRAMES: u8 = 32;

/// New flows whose owner is waiting to be asked for, at most (a turn of the forwarding thread
/// hands them to the resolver); beyond, a new flow's owner is taken as unknown, counted.
pub const MAX_OWNER_QUESTIONS: usize = 1024;

/// How a class shares itself among its users (CAKE's isolation modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fairness {
    /// A queue per flow.
    Flow,
    /// A queue per LAN-side host: the source of frames leaving on wan, the destination of
    /// frames leaving on lan, so one class list serves both ports.
    Host,
    /// A queue per source address.
    SrcHost,
    /// A queue per destination address.
    DstHost,
    /// Fair between LAN-side hosts first, then between each host's flows.
    Triple,
    /// One FIFO.
    Fifo,
}

/// A class's rule, in match order.
#[derive(Debug)]
pub struct MatchEntry {
    pub class: ClassId,
    pub rule: Rule,
}

/// Classification plan of one egress port.
#[derive(Debug)]
pub struct PortRules {
    /// Classes with a rule, in config order (the default class is not among them).
    pub matches: Vec<MatchEntry>,
    pub default_class: ClassId,
    pub control_class: ClassId,
    /// Fairness of each class, indexed by class id.
    pub fairness: Vec<Fairness>,
    /// The config's named sets of host-name globs (`domain @name`); the same for both ports.
    pub name_sets: rule::NameSets,
    /// Rules every frame is tested against besides the classes': the rule budgets' (their
    /// bit is their budget's index, crate::budget), `weir sniff`'s filter. Each that matches
    /// sets its bit in [`Verdict::watched`]. The same for both ports.
    pub watch: Vec<(u8, Rule)>,
}

impl PortRules {
    /// Positions in `matches` of rules that must be evaluated per frame.
    fn per_frame_positions(&self) -> Vec<u16> {
        self.matches
            .iter()
            .enumerate()
            .filter(|(_, m)| m.rule.depends_on_packet())
            .map(|(i, _)| i as u16)
            .collect()
    }

    /// First rule that matches every frame of the flow (its flow-invariant part holds), as a
    /// position in `matches`, or `len()` if none. A rule before it can match a frame only
    /// by its per-frame part.
    fn first_flow_match(&self, v: &FrameView, names: u64) -> u16 {
        self.matches
            .iter()
            .position(|m| m.rule.matches_flow_part(v, names))
            .unwrap_or(self.matches.len()) as u16
    }
}

/// The classifier's verdict on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub egress: Side,
    pub class: ClassId,
    /// Picks the queue inside the class.
    pub fairness_hash: u64,
    /// Picks the host, in a class that isolates hosts (`triple`); 0 otherwise.
    pub host_hash: u64,
    /// Bit `i`: watched rule `i` matches the frame ([`PortRules::watch`]).
    pub watched: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassifierStats {
    pub flows: FlowTableStats,
    pub fragments: FragmentStats,
    pub control_frames: u64,
    pub names: NameStats,
}

/// Why a frame got its class (`weir explain`; also sent over the control socket).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Explanation {
    /// Link control traffic: the control class, before any rule.
    pub control: bool,
    /// The flow's server name and its source, when weir keeps names and knows it.
    pub server_name: Option<String>,
    pub name_source: Option<String>,
    /// Frames of the flow classified before its name was known.
    pub frames_before_name: u32,
    /// The protocol its payload showed, when known; frames classified before it was decided.
    pub protocol: Option<String>,
    pub frames_before_app: u32,
    /// The first protocol its ClientHello offered by ALPN, or the software of its SSH banner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Each class's rule on this port, in order, up to and including the one that matched.
    pub rules: Vec<ExplainedRule>,
    pub class: ClassId,
    /// The class is the default one: no rule matched.
    pub default: bool,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExplainedRule {
    pub class: ClassId,
    pub rule: String,
    /// The rule reads per-frame fields, so it is evaluated on every frame.
    pub per_frame: bool,
    pub tests: Vec<rule::ExplainedTest>,
    pub matched: bool,
}

/// Server names learnt from payloads (only when the rules read names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameStats {
    /// Flows whose name was learnt.
    pub learnt: u64,
    /// Flows that gave up after the payload frames allowed (`payload_frames`) without one.
    pub not_found: u64,
    /// Frames of the named flows classified before their name was known.
    pub frames_before: u64,
    /// Flows whose protocol was told from payload, and those whose first payloads showed none.
    pub apps_found: u64,
    pub apps_unknown: u64,
    /// Frames of the flows whose protocol was found, classified before it was.
    pub frames_before_app: u64,
    /// Names read from a ClientHello gathered over several TCP segments or QUIC packets, and
    /// the pool's counters.
    pub hellos_gathered: u64,
    pub hello_pool: HelloPoolStats,
    /// Frames of flows that moved, kept in their former class while their earlier frames
    /// waited there, so that the flow's frames left in order.
    pub held_for_order: u64,
    /// New flows named from the DNS cache, and the cache's counters.
    pub from_dns_cache: u64,
    /// Owners (`user`, `cmd`, ... rules): flows asked for, found, not found (no local socket,
    /// or it closed first), questions not asked because too many were waiting, and frames
    /// classified while their flow's owner was asked for.
    pub owners_asked: u64,
    pub owners_found: u64,
    pub owners_unknown: u64,
    pub owner_questions_dropped: u64,
    pub frames_before_owner: u64,
    pub dns_cache: DnsCacheStats,
}

pub struct Classifier {
    ports: [PortRules; 2],
    /// The rules' name tests, numbered; empty when no rule reads names.
    name_tests: NameTests,
    /// Keep names even when no rule reads them (a replay's flow list).
    names_wanted: bool,
    /// Names from DNS answers; allocated when names are kept.
    dns_cache: Option<DnsCache>,
    names: NameStats,
    /// Payload frames read per flow for its name and protocol.
    payload_frames: u8,
    /// ClientHellos gathered over several payloads; allocated when names are kept.
    hellos: Option<Box<HelloPool>>,
    /// The protocol tests of a flow whose protocol is not decided yet.
    undecided_app_tests: u64,
    /// The rules test owners, and something answers questions about them (the live bridge's
    /// resolver: [`Classifier::ask_owners`]).
    reads_owners: bool,
    asks_owners: bool,
    /// New flows whose owner is to be asked for, until the driver takes them (bounded).
    owner_questions: Vec<FlowKey>,
    /// `time` tests: the time zone, the wall-clock time of the caller's 0, when to look at
    /// the clock again (the next minute; never without such tests) and their bits till then.
    timezone: jiff::tz::TimeZone,
    wall_offset: i128,
    time_due: Nanos,
    time_bits: u64,
    per_frame: [Vec<u16>; 2],
    flows: FlowTable,
    fragments: FragmentTable,
    control_frames: u64,
}

impl Classifier {
    /// `ports` is indexed by egress side: `[lan, wan]`.
    pub fn new(mut ports: [PortRules; 2], max_flows: u32, idle_timeout: Nanos) -> Classifier {
        let per_frame = [
            ports[0].per_frame_positions(),
            ports[1].per_frame_positions(),
        ];
        let name_tests = bind_names(&mut ports);
        let undecided_app_tests = name_tests.eval_app(AppSeen::Undecided);
        let reads_owners = name_tests.reads_owners();
        let keep = name_tests.needs_flow_state();
        let time_due = if name_tests.reads_time() {
            0
        } else {
            Nanos::MAX
        };
        let mut flows = FlowTable::new(max_flows, idle_timeout);
        flows.keep_names(keep);
        Classifier {
            ports,
            dns_cache: keep.then(|| DnsCache::new(DNS_CACHE_ENTRIES)),
            name_tests,
            names_wanted: false,
            names: NameStats::default(),
            payload_frames: NAME_PAYLOAD_FRAMES,
            hellos: keep.then(Box::default),
            undecided_app_tests,
            reads_owners,
            asks_owners: false,
            owner_questions: Vec::with_capacity(MAX_OWNER_QUESTIONS),
            timezone: jiff::tz::TimeZone::UTC,
            wall_offset: 0,
            time_due,
            time_bits: 0,
            per_frame,
            flows,
            fragments: FragmentTable::new(4096),
            control_frames: 0,
        }
    }

    pub fn stats(&self) -> ClassifierStats {
        ClassifierStats {
            flows: self.flows.stats(),
            fragments: self.fragments.stats(),
            control_frames: self.control_frames,
            names: NameStats {
                dns_cache: self
                    .dns_cache
                    .as_ref()
                    .map(DnsCache::stats)
                    .unwrap_or_default(),
                hello_pool: self.hellos.as_ref().map(|h| h.stats()).unwrap_or_default(),
                ..self.names
            },
        }
    }

    pub fn port_rules(&self, egress: Side) -> &PortRules {
        &self.ports[egress.index()]
    }

    /// Why frame `view`, leaving on `egress`, gets its class now: each rule of the port in
    /// order with its tests, and the flow's server name. Reads the flow table as the frame's
    /// classification left it; changes nothing.
    pub fn explain(&self, view: &FrameView, egress: Side) -> Explanation {
        let port = &self.ports[egress.index()];
        let mut e = Explanation {
            control: view.is_link_control(),
            server_name: None,
            name_source: None,
            frames_before_name: 0,
            protocol: None,
            frames_before_app: 0,
            detail: None,
            rules: Vec::new(),
            class: port.control_class,
            default: false,
        };
        if e.control {
            return e;
        }
        let key = FlowKey::of(view);
        let kept = self
            .flows
            .find(&key, key.hash64())
            .and_then(|slot| self.flows.name(slot));
        let (flow_tests, name) = match kept {
            Some(n) => (
                n.tests | n.app_tests | n.owner_tests,
                n.source.map(|s| (s, n.name)),
            ),
            None => (0, None),
        };
        // The `time` tests as of the last frame classified.
        let tests = flow_tests | self.time_bits;
        let app = match kept.map(|n| n.app) {
            Some(AppSeen::Found(p)) => format!("{} (from payload)", p.as_str()),
            Some(AppSeen::Unknown) => "no protocol found in its payload (ports decide)".into(),
            Some(AppSeen::Undecided) => "not decided yet (ports decide)".into(),
            None => "not read (no rule tests names or protocols)".into(),
        };
        e.protocol = match kept.map(|n| n.app) {
            Some(AppSeen::Found(p)) => Some(p.as_str().to_string()),
            _ => None,
        };
        e.frames_before_app = kept.map_or(0, |n| n.frames_before_app);
        e.detail = kept
            .filter(|n| !n.detail.is_empty())
            .map(|n| n.detail.as_str().to_string());
        if let Some((s, n)) = name {
            e.server_name = Some(n.as_str().to_string());
            e.name_source = Some(s.as_str().to_string());
            e.frames_before_name = kept.map_or(0, |n| n.frames_before);
        }
        let name_ref = name.as_ref().map(|(s, n)| (*s, n.as_str()));
        for m in &port.matches {
            let (steps, matched) = m.rule.explain(view, tests, name_ref, &app);
            e.rules.push(ExplainedRule {
                class: m.class,
                rule: m.rule.source().to_string(),
                per_frame: m.rule.depends_on_packet(),
                tests: steps,
                matched,
            });
            if matched {
                e.class = m.class;
                return e;
            }
        }
        e.class = port.default_class;
        e.default = true;
        e
    }

    /// What the flow of `view` has learnt so far, when names are kept ([`keep_names`]): the
    /// protocol its payload showed and its server name. Reads the flow table; changes
    /// nothing.
    ///
    /// [`keep_names`]: Self::keep_names
    pub fn flow_label(
        &self,
        view: &FrameView,
    ) -> (Option<detect::Protocol>, Option<payload::Name>) {
        if view.is_link_control() {
            return (None, None);
        }
        let key = FlowKey::of(view);
        let Some(n) = self
            .flows
            .find(&key, key.hash64())
            .and_then(|slot| self.flows.name(slot))
        else {
            return (None, None);
        };
        let app = match n.app {
            AppSeen::Found(p) => Some(p),
            _ => None,
        };
        (app, n.source.map(|_| n.name))
    }

    /// Read up to `n` payload frames of each flow (1 to [`MAX_PAYLOAD_FRAMES`]) for its name
    /// and protocol.
    pub fn set_payload_frames(&mut self, n: u8) {
        self.payload_frames = n.clamp(1, MAX_PAYLOAD_FRAMES);
    }

    /// Learn and keep every flow's server name and frame counts, even when no rule reads
    /// names (allocates the names array; see `flow_table`).
    pub fn keep_names(&mut self) {
        self.names_wanted = true;
        self.flows.keep_names(true);
        if self.dns_cache.is_none() {
            self.dns_cache = Some(DnsCache::new(DNS_CACHE_ENTRIES));
        }
        self.hellos.get_or_insert_with(Box::default);
    }

    /// Every flow the table still holds, idle ones too (see [`FlowTable::for_each_held`]).
    pub fn for_each_held_flow(&self, now: Nanos, f: impl FnMut(flow_table::FlowInfo)) {
        self.flows.for_each_held(now, f);
    }

    /// The flows seen within the idle timeout before `now` (see [`FlowTable::for_each_live`]).
    pub fn for_each_flow(&self, now: Nanos, f: impl FnMut(flow_table::FlowInfo)) {
        self.flows.for_each_live(now, f);
    }

    /// [`for_each_flow`](Self::for_each_flow) over flow table slots `start..start + len`.
    pub fn for_each_flow_in(
        &self,
        start: usize,
        len: usize,
        now: Nanos,
        f: impl FnMut(flow_table::FlowInfo),
    ) {
        self.flows.for_each_live_in(start, len, now, f);
    }

    /// Slots in the flow table.
    pub fn flow_capacity(&self) -> usize {
        self.flows.capacity()
    }

    /// New rules (a reload): every flow is classified again on its next frame (and shows no
    /// class until then); its counters stay.
    /// Names already learnt stay, and the new rules' name tests are run on them.
    pub fn replace_rules(&mut self, mut ports: [PortRules; 2]) {
        self.per_frame = [
            ports[0].per_frame_positions(),
            ports[1].per_frame_positions(),
        ];
        self.name_tests = bind_names(&mut ports);
        self.undecided_app_tests = self.name_tests.eval_app(AppSeen::Undecided);
        self.reads_owners = self.name_tests.reads_owners();
        self.ports = ports;
        let keep = self.names_wanted || self.name_tests.needs_flow_state();
        self.time_due = if self.name_tests.reads_time() {
            0
        } else {
            Nanos::MAX
        };
        self.flows.keep_names(keep);
        if !keep {
            self.dns_cache = None;
            self.hellos = None;
        } else {
            self.dns_cache
                .get_or_insert_with(|| DnsCache::new(DNS_CACHE_ENTRIES));
            self.hellos.get_or_insert_with(Box::default);
        }
        for n in self.flows.names_mut() {
            n.tests = n
                .source
                .map_or(0, |s| self.name_tests.eval(s, n.name.as_bytes()));
            n.app_tests = self.name_tests.eval_app(n.app);
            // Owners are not kept, only the old rules' results: ask again.
            n.owner_tests = 0;
            n.owner = OwnerSeen::NotAsked;
        }
        self.flows.clear_verdicts();
    }

    /// What a classifier of `max_flows` takes, allocated at start: the flow table, and with
    /// `names` (a rule reads names, protocols or owners) the names array, the DNS cache and the
    /// ClientHello pool. In bytes.
    pub fn memory(max_flows: u32, names: bool) -> (u64, u64) {
        let (table, kept) = FlowTable::bytes_for(max_flows);
        let extra = if names {
            kept + DnsCache::bytes_for(DNS_CACHE_ENTRIES) + HelloPool::bytes()
        } else {
            0
        };
        (table, extra)
    }

    /// Flows keep names, protocols and owners (the rules read them, or [`keep_names`] asked).
    ///
    /// [`keep_names`]: Self::keep_names
    pub fn keeps_names(&self) -> bool {
        self.dns_cache.is_some()
    }

    /// The clock of `time` tests: the caller's time 0 is `wall` nanoseconds after the Unix
    /// epoch, and local time is in `tz`.
    pub fn set_clock(&mut self, tz: jiff::tz::TimeZone, wall: i128) {
        self.timezone = tz;
        self.wall_offset = wall;
        if self.time_due != Nanos::MAX {
            self.time_due = 0;
        }
    }

    /// The bits of the `time` tests at `now`: looked up once a minute.
    fn time_bits(&mut self, now: Nanos) -> u64 {
        if now >= self.time_due {
            let wall = i128::from(now) + self.wall_offset;
            match crate::schedule::local_minute(&self.timezone, wall) {
                Some((day, minute, next)) => {
                    self.time_bits = self.name_tests.eval_time(day, minute);
                    let next = (next - self.wall_offset).max(i128::from(now) + 1);
                    self.time_due = u64::try_from(next).unwrap_or(Nanos::MAX);
                }
                None => self.time_due = Nanos::MAX,
            }
        }
        self.time_bits
    }

    /// Something answers questions about flows' owners: new TCP and UDP flows are queued for
    /// [`take_owner_questions`](Self::take_owner_questions) when the rules test owners.
    pub fn ask_owners(&mut self) {
        self.asks_owners = true;
    }

    /// The rules test the program behind a flow (`user`, `cmd`, ...).
    pub fn reads_owners(&self) -> bool {
        self.reads_owners
    }

    /// Hand each queued question (a new flow's key) to `ask`; a question it refuses (`false`:
    /// no room) is counted as dropped and its flow's owner as unknown.
    pub fn take_owner_questions(&mut self, mut ask: impl FnMut(FlowKey) -> bool) {
        let mut refused = Vec::new();
        for key in self.owner_questions.drain(..) {
            if !ask(key) {
                refused.push(key);
            }
        }
        for key in refused {
            self.names.owner_questions_dropped += 1;
            self.learn_owner(&key, None);
        }
    }

    /// The answer for flow `key`: its owner, or `None` when none was found. Its owner tests
    /// are evaluated once; when any holds, its verdicts are made again (it moves once, its
    /// frames kept in order). An answer for a flow no longer in the table is dropped.
    pub fn learn_owner(&mut self, key: &FlowKey, owner: Option<&owner::Owner>) {
        let Some(slot) = self.flows.find(key, key.hash64()) else {
            return;
        };
        let tests = owner.map_or(0, |o| self.name_tests.eval_owner(o));
        let Some(n) = self.flows.name_mut(slot) else {
            return;
        };
        if n.owner != OwnerSeen::Asked {
            return;
        }
        n.owner = if owner.is_some() {
            self.names.owners_found += 1;
            OwnerSeen::Known
        } else {
            self.names.owners_unknown += 1;
            OwnerSeen::Unknown
        };
        self.names.frames_before_owner += u64::from(n.frames_before_owner);
        if tests != n.owner_tests {
            n.owner_tests = tests;
            n.moving = [true; 2];
            self.flows.set_verdict(slot, 0, NO_VERDICT);
            self.flows.set_verdict(slot, 1, NO_VERDICT);
        }
    }

    /// Classify a frame that will leave on `egress`, and count it in its flow, without its
    /// bytes (no server name can be learnt from it).
    pub fn classify(&mut self, view: &FrameView, egress: Side, now: Nanos) -> Verdict {
        self.classify_and(view, None, egress, now, true, |_, _| false)
    }

    /// Classify frame `frame` (parsed as `view`) that will leave on `egress`, and count it in
    /// its flow; its payload may tell the flow's server name.
    pub fn classify_frame(
        &mut self,
        view: &FrameView,
        frame: &[u8],
        egress: Side,
        now: Nanos,
    ) -> Verdict {
        self.classify_and(view, Some(frame), egress, now, true, |_, _| false)
    }

    /// [`classify_frame`](Self::classify_frame), keeping the order of a flow's frames when it
    /// moves to another class: `may_hold(class, fairness_hash)` says whether frames of the
    /// flow may still wait in `class` (the port's scheduler knows); while they may, the flow's
    /// frames go on to that class (at most [`MAX_HELD_FOR_ORDER`] of them, counted).
    pub fn classify_frame_in_order(
        &mut self,
        view: &FrameView,
        frame: &[u8],
        egress: Side,
        now: Nanos,
        may_hold: impl Fn(ClassId, u64) -> bool,
    ) -> Verdict {
        self.classify_and(view, Some(frame), egress, now, true, may_hold)
    }

    /// Classify a frame already counted (queued when a reload changed the rules), without
    /// counting it again in its flow.
    pub fn classify_again(&mut self, view: &FrameView, egress: Side, now: Nanos) -> Verdict {
        self.classify_and(view, None, egress, now, false, |_, _| false)
    }

    /// The flow tests (names and protocol) of the flow in `slot`, learning its server name and
    /// its protocol from `frame` while they are due; `dir` is the frame's direction in the
    /// flow (1: from the key's `lo` end).
    #[allow(clippy::too_many_arguments)]
    fn learn_payload(
        &mut self,
        slot: usize,
        flow_hash: u64,
        v: &FrameView,
        frame: Option<&[u8]>,
        egress: Side,
        dir: usize,
        account: bool,
        now: Nanos,
    ) -> u64 {
        let limit = self.payload_frames;
        // Names and the hello pool are kept together (`keep_names`, `replace_rules`).
        let (Some(n), Some(hellos)) = (self.flows.name_mut(slot), self.hellos.as_deref_mut())
        else {
            return 0;
        };
        if account {
            let frames = &mut n.frames[egress.index()];
            *frames = frames.saturating_add(1);
        }
        if self.reads_owners {
            match n.owner {
                OwnerSeen::NotAsked if v.is_ip() && matches!(v.ip_proto, 6 | 17) => {
                    if self.asks_owners && self.owner_questions.len() < MAX_OWNER_QUESTIONS {
                        self.owner_questions.push(FlowKey::of(v));
                        self.names.owners_asked += 1;
                        n.owner = OwnerSeen::Asked;
                    } else {
                        // Nobody to ask (replay), or too many questions waiting.
                        if self.asks_owners {
                            self.names.owner_questions_dropped += 1;
                        }
                        n.owner = OwnerSeen::Unknown;
                    }
                }
                OwnerSeen::NotAsked => n.owner = OwnerSeen::Unknown,
                _ => {}
            }
            if account && n.owner == OwnerSeen::Asked {
                n.frames_before_owner = n.frames_before_owner.saturating_add(1);
            }
        }
        let name_open = n.looked != NAME_DECIDED;
        let app_open = n.app == AppSeen::Undecided;
        if !name_open && !app_open {
            return n.tests | n.app_tests | n.owner_tests;
        }
        let (tests_before, app_tests_before) = (n.tests, n.app_tests);
        if !v.is_ip() || !matches!(v.ip_proto, 6 | 17) {
            // Nothing to read in this flow: the verdict without a name and protocol is final.
            n.looked = NAME_DECIDED;
            n.app = AppSeen::Unknown;
        } else if let Some(payload) = frame.and_then(|f| payload_of(v, f)) {
            if app_open {
                match detect::protocol(v.ip_proto, payload, dir, &mut n.detect) {
                    Some(p) => {
                        n.app = AppSeen::Found(p);
                        if p == detect::Protocol::Ssh {
                            n.detail = detect::ssh_software(payload).unwrap_or_default();
                        }
                    }
                    None => {
                        n.app_looked += 1;
                        if n.app_looked >= limit {
                            n.app = AppSeen::Unknown;
                        }
                    }
                }
                if n.app != AppSeen::Undecided {
                    if matches!(n.app, AppSeen::Found(_)) {
                        self.names.apps_found += 1;
                        self.names.frames_before_app += u64::from(n.frames_before_app);
                    } else {
                        self.names.apps_unknown += 1;
                    }
                }
            }
            if name_open {
                // A ClientHello that goes on past its first payload is gathered in a slot
                // of the pool; the others are read in the scratch buffer.
                let at = At {
                    dir: dir as u8,
                    seq: tcp_seq(v, frame.unwrap_or(&[])),
                };
                let found = read_name(hellos, n, v.ip_proto, payload, at, flow_hash, now);
                if found.is_some() && n.hello != 0 {
                    self.names.hellos_gathered += 1;
                }
                if !n.pending.gathering() {
                    hellos.release(n.hello, flow_hash);
                    n.hello = 0;
                }
                if let Some((source, name)) = found {
                    n.name = name;
                    n.source = Some(source);
                    n.tests = self.name_tests.eval(source, name.as_bytes());
                    n.looked = NAME_DECIDED;
                    self.names.learnt += 1;
                    self.names.frames_before += u64::from(n.frames_before);
                } else if !n.pending.gathering() {
                    // The pieces of a ClientHello being gathered count as one look (they are
                    // bounded by `MAX_HELLO_PIECES`).
                    n.looked += 1;
                    if n.looked >= limit {
                        n.looked = NAME_DECIDED;
                        self.names.not_found += 1;
                    }
                }
            }
        }
        if app_open {
            n.app_tests = if n.app == AppSeen::Undecided {
                self.undecided_app_tests
            } else {
                self.name_tests.eval_app(n.app)
            };
        }
        if account {
            // A name from the DNS cache is a name known, even while the flow's own payload
            // is still read for a better one.
            if n.looked != NAME_DECIDED && n.source.is_none() {
                n.frames_before = n.frames_before.saturating_add(1);
            }
            if n.app == AppSeen::Undecided {
                n.frames_before_app = n.frames_before_app.saturating_add(1);
            }
        }
        let tests = n.tests | n.app_tests | n.owner_tests;
        if (n.tests, n.app_tests) != (tests_before, app_tests_before) {
            n.moving = [true; 2];
            // The verdicts cached so far were made without this name or protocol.
            self.flows.set_verdict(slot, 0, NO_VERDICT);
            self.flows.set_verdict(slot, 1, NO_VERDICT);
        }
        tests
    }

    /// Names from DNS: store the answers of a response from port 53, and name a new TCP or
    /// UDP flow whose remote address (this frame's destination, else its source) was resolved.
    fn use_dns_cache(
        &mut self,
        slot: usize,
        new_flow: bool,
        v: &FrameView,
        frame: Option<&[u8]>,
        now: Nanos,
    ) {
        let Some(cache) = self.dns_cache.as_mut() else {
            return;
        };
        if !v.has_ports || !matches!(v.ip_proto, 6 | 17) {
            return;
        }
        if v.ip_proto == 17 && v.src_port == 53 {
            if let Some(payload) = frame.and_then(|f| payload_of(v, f)) {
                payload::dns::answers(payload, |name, a| {
                    cache.store(a.addr, a.v6, name, a.ttl, now)
                });
            }
        }
        if !new_flow {
            return;
        }
        let v6 = v.l3 == crate::wire::L3::Ipv6;
        let found = cache
            .lookup(v.dst_ip, v6, now)
            .or_else(|| cache.lookup(v.src_ip, v6, now));
        // A flow back from idling may have kept a name of its own.
        let unnamed = self.flows.name_mut(slot).filter(|n| n.source.is_none());
        if let (Some(name), Some(n)) = (found, unnamed) {
            n.name = name;
            n.source = Some(NameSource::DnsCache);
            n.tests = self.name_tests.eval(NameSource::DnsCache, name.as_bytes());
            self.names.from_dns_cache += 1;
        }
    }

    fn classify_and(
        &mut self,
        view: &FrameView,
        frame: Option<&[u8]>,
        egress: Side,
        now: Nanos,
        account: bool,
        may_hold: impl Fn(ClassId, u64) -> bool,
    ) -> Verdict {
        let port = &self.ports[egress.index()];
        if view.is_link_control() {
            self.control_frames += 1;
            return Verdict {
                egress,
                class: port.control_class,
                fairness_hash: 0,
                host_hash: 0,
                watched: 0,
            };
        }
        let mut v = *view;
        self.fragments.resolve(&mut v, now);
        let key = FlowKey::of(&v);
        let flow_hash = key.hash64();
        // A connection back from idling keeps its name, unless it begins again (a SYN).
        let syn = v.ip_proto == 6 && v.tcp_flags & 0x12 == 0x02;
        let (slot, hit) = self
            .flows
            .lookup_or_insert_keeping(&key, flow_hash, now, !syn);
        self.use_dns_cache(slot, !hit, &v, frame, now);
        let from_lo = if v.is_ip() {
            (v.src_ip, if v.has_ports { v.src_port } else { 0 }) == (key.lo_addr, key.lo_port)
        } else {
            mac_u128(&v.src_mac) == key.lo_addr
        };
        let names = self.learn_payload(
            slot,
            flow_hash,
            &v,
            frame,
            egress,
            usize::from(from_lo),
            account,
            now,
        );
        // `time` tests are per frame: never part of a flow's cached verdict.
        let names = names | self.time_bits(now);
        let port = &self.ports[egress.index()];
        let mut first = self.flows.verdict(slot, egress.index());
        if first == NO_VERDICT {
            first = port.first_flow_match(&v, names);
            self.flows.set_verdict(slot, egress.index(), first);
        }
        let pos = self.per_frame[egress.index()]
            .iter()
            .take_while(|&&p| p < first)
            .find(|&&p| {
                port.matches[usize::from(p)]
                    .rule
                    .matches_frame_part(&v, names)
            })
            .copied()
            .unwrap_or(first);
        let mut class = port
            .matches
            .get(usize::from(pos))
            .map_or(port.default_class, |m| m.class);
        let hashes = |class: ClassId| match port.fairness.get(usize::from(class)) {
            Some(Fairness::Flow) => (flow_hash, 0),
            Some(Fairness::Host) => (lan_host_hash(&v, egress), 0),
            Some(Fairness::SrcHost) => (host_hash(address(&v, true)), 0),
            Some(Fairness::DstHost) => (host_hash(address(&v, false)), 0),
            Some(Fairness::Triple) => (flow_hash, lan_host_hash(&v, egress)),
            Some(Fairness::Fifo) | None => (0, 0),
        };
        if account {
            // A flow that moves (its name or protocol became known) stays where its earlier
            // frames wait until they have left, so that its frames keep their order; for at
            // most MAX_HELD_FOR_ORDER frames.
            // (Only a move that a name or protocol made: a rule on per-frame fields sends a
            // flow's frames to different classes by design.)
            let prev = self.flows.last_class(slot, egress.index());
            if let (Some(n), Some(prev)) = (self.flows.name_mut(slot), prev) {
                if n.moving[egress.index()] {
                    let hold = prev != class
                        && usize::from(prev) < port.fairness.len()
                        && n.held_for_order < MAX_HELD_FOR_ORDER
                        && may_hold(prev, hashes(prev).0);
                    if hold {
                        n.held_for_order += 1;
                        self.names.held_for_order += 1;
                        class = prev;
                    } else {
                        n.moving[egress.index()] = false;
                    }
                }
            }
            self.flows
                .account(slot, egress.index(), class, view.len, from_lo, now);
        }
        let (fairness_hash, host_hash) = hashes(class);
        let mut watched = 0u32;
        for (i, rule) in &port.watch {
            if rule.matches_with(&v, names) {
                watched |= 1 << i;
            }
        }
        Verdict {
            egress,
            class,
            fairness_hash,
            host_hash,
            watched,
        }
    }
}

/// Number the name tests of every rule of both ports. More than [`rule::MAX_NAME_TESTS`]
/// distinct ones is refused when the config is loaded; were it not, the extra tests would
/// never match (`bind_names` leaves them unbound).
fn bind_names(ports: &mut [PortRules; 2]) -> NameTests {
    let mut tests = NameTests::new(ports[0].name_sets.clone());
    for p in ports.iter_mut() {
        for m in &mut p.matches {
            let _ = m.rule.bind_names(&mut tests);
        }
        for (_, rule) in &mut p.watch {
            let _ = rule.bind_names(&mut tests);
        }
    }
    tests
}

/// The transport payload of a TCP or UDP frame, without Ethernet padding (bounded by the IP
/// length); `None` when empty or not reached.
fn payload_of<'a>(v: &FrameView, frame: &'a [u8]) -> Option<&'a [u8]> {
    let (l3, l4) = (usize::from(v.l3_offset), usize::from(v.l4_offset));
    if l4 == 0 || v.truncated {
        return None;
    }
    let start = match v.ip_proto {
        6 => l4 + 4 * usize::from(*frame.get(l4 + 12)? >> 4),
        17 => l4 + 8,
        _ => return None,
    };
    let be16 = |at: usize| {
        Some(usize::from(u16::from_be_bytes([
            *frame.get(at)?,
            *frame.get(at + 1)?,
        ])))
    };
    let ip_end = match v.l3 {
        crate::wire::L3::Ipv4 => l3 + be16(l3 + 2)?,
        crate::wire::L3::Ipv6 => match be16(l3 + 4)? {
            0 => frame.len(),
            len => l3 + 40 + len,
        },
        _ => return None,
    };
    let p = frame.get(start..ip_end.min(frame.len()))?;
    (!p.is_empty()).then_some(p)
}

/// The server name in `payload` (at `at` in its flow), for flow `n` (hash `owner`): its
/// ClientHello so far is in its pool slot while it holds one; a hello that goes on past this
/// payload gets one.
fn read_name(
    hellos: &mut HelloPool,
    n: &mut flow_table::FlowName,
    proto: u8,
    payload: &[u8],
    at: At,
    owner: u64,
    now: Nanos,
) -> Option<(NameSource, payload::Name)> {
    let pooled = n.pending.gathering();
    let held = if pooled {
        hellos.held(n.hello, owner)
    } else {
        None
    };
    if pooled && held.is_none() {
        // Its slot was taken over: what it gathered is gone.
        n.pending = Pending::Nothing;
        n.hello = 0;
    }
    let gather = match held {
        Some(i) => hellos.slot_mut(i, now),
        None => hellos.scratch(),
    };
    let found = payload::server_name_at(proto, payload, at, &mut n.pending, gather);
    // The hello's ALPN offer: from this payload, or from what was gathered (a QUIC Initial's
    // CRYPTO data is always in `gather`).
    let alpn = match found {
        Some((NameSource::Sni, _)) => payload::tls::client_hello_alpn(payload)
            .or_else(|| held.and_then(|_| payload::tls::client_hello_alpn(gather.prefix()))),
        Some((NameSource::Quic, _)) => payload::tls::handshake_alpn(gather.prefix()),
        _ => None,
    };
    if let Some(a) = alpn {
        n.detail = a;
    }
    let gathering = n.pending.gathering();
    if gathering && held.is_none() {
        n.hello = hellos.adopt(owner, now);
    }
    found
}

/// The TCP sequence number of a frame (0 when it is not TCP or the header is cut).
fn tcp_seq(v: &FrameView, frame: &[u8]) -> u32 {
    let l4 = usize::from(v.l4_offset);
    match frame.get(l4 + 4..l4 + 8) {
        Some(b) if v.ip_proto == 6 && l4 > 0 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        _ => 0,
    }
}

/// The LAN-side host of a frame: its source when going out on wan, its destination otherwise.
fn lan_host_hash(v: &FrameView, egress: Side) -> u64 {
    host_hash(address(v, egress == Side::Wan))
}

/// A frame's source (or destination) address: IP, else MAC.
fn address(v: &FrameView, source: bool) -> u128 {
    match (v.is_ip(), source) {
        (true, true) => v.src_ip,
        (true, false) => v.dst_ip,
        (false, true) => mac_u128(&v.src_mac),
        (false, false) => mac_u128(&v.dst_mac),
    }
}

#[cfg(test)]
mod tests;
