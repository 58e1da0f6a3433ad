//! The rule language: text parsed once into a compiled matcher, plus static checks on rules.
//!
//! Guarantees:
//! - [`Rule::parse`] never panics, on any string; it rejects texts over [`MAX_RULE_LEN`]
//!   characters and nesting deeper than 64 levels, and every error names a 1-based character
//!   column, a length and, when there is a likely fix, a hint.
//! - [`Rule::matches`] reads only the [`FrameView`], never allocates, never panics, and runs in
//!   time linear in the rule size: the rule is compiled to a jump program (like classic BPF) whose
//!   jumps only go backwards in the instruction vector, so evaluation is a loop, not recursion.
//! - [`Rule::never_matches`] and [`Rule::is_shadowed_by`] are sound (a `true` is a proof) and
//!   conservative (`false` when unsure), for any `FrameView`.
//!
//! The grammar and the application table are documented in docs/rules.md.

mod analysis;
pub mod app_table;
mod ast;
pub mod bpf;
mod lexer;
pub mod overlap;
mod parser;

#[cfg(test)]
mod tests;

pub use app_table::{app_table, AppEntry, AppProto};
pub use parser::check_glob;

use crate::classify::owner::{Owner, OwnerTest};
use crate::classify::payload::detect::Protocol;
use crate::classify::payload::{glob_matches, NameSource};
use crate::wire::FrameView;
use analysis::{conj_implies, Conj, Summary};
use ast::{Atom, Expr};

/// Longest rule text accepted, in characters.
pub const MAX_RULE_LEN: usize = 4096;

/// A rule that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// 1-based character column in the rule text where the problem starts.
    pub column: usize,
    /// Length in characters of the offending token (at least 1).
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// What to do, when there is something useful to say.
    pub hint: Option<String>,
}

impl RuleError {
    pub(crate) fn new(
        column: usize,
        len: usize,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> RuleError {
        RuleError {
            column,
            len: len.max(1),
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

/// One test of a rule as `weir explain` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExplainedTest {
    /// The test, in the rule language (`dst port 443`).
    pub test: String,
    /// What the frame or its flow has for it (`src 40000 dst 443`).
    pub value: String,
    pub result: bool,
}

/// Distinct flow tests (name tests and payload-protocol tests) one classifier can hold: their
/// results are a bit each in a flow's entry.
pub const MAX_NAME_TESTS: usize = 64;

/// More than [`MAX_NAME_TESTS`] distinct flow tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyNameTests;

/// The config's named sets of globs: `(name, globs)`, used as `domain @name`.
pub type NameSets = Vec<(String, Vec<String>)>;

/// What a flow's payload showed of its protocol (`payload::detect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppSeen {
    /// Not decided yet (no payload read, or RTP's first packet): as for `Unknown`, no
    /// protocol is named and `app` goes by ports.
    #[default]
    Undecided,
    /// The payload frames allowed were read and fit no signature, or the flow carries none
    /// (not TCP or UDP).
    Unknown,
    Found(Protocol),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum FlowTest {
    Name(Option<NameSource>, String),
    App(Option<Protocol>),
    Owner(OwnerTest),
    /// Not a flow's: the local time is in this window (the classifier sets these bits for
    /// every frame, once a minute).
    Time(crate::schedule::Window),
}

/// The distinct tests of a classifier's rules that are decided once per flow from its payload
/// (server names, protocols), numbered.
#[derive(Clone, Debug, Default)]
pub struct NameTests {
    tests: Vec<FlowTest>,
    sets: NameSets,
}

impl NameTests {
    /// No tests yet; `@name` patterns resolve in `sets` (an unknown set matches nothing: the
    /// config's check refuses it first).
    pub fn new(sets: NameSets) -> NameTests {
        NameTests {
            tests: Vec::new(),
            sets,
        }
    }

    /// Does `pattern` (a glob, or `@set`) match `name`?
    fn pattern_matches(&self, pattern: &str, name: &[u8]) -> bool {
        match pattern.strip_prefix('@') {
            Some(set) => self
                .sets
                .iter()
                .find(|(n, _)| n == set)
                .is_some_and(|(_, globs)| globs.iter().any(|g| glob_matches(g.as_bytes(), name))),
            None => glob_matches(pattern.as_bytes(), name),
        }
    }

    fn number(&mut self, test: FlowTest) -> Result<u8, TooManyNameTests> {
        let i = match self.tests.iter().position(|t| *t == test) {
            Some(i) => i,
            None if self.tests.len() < MAX_NAME_TESTS => {
                self.tests.push(test);
                self.tests.len() - 1
            }
            None => return Err(TooManyNameTests),
        };
        Ok(i as u8)
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Some test is decided per flow (a name, a protocol, an owner), so flows keep state for
    /// them; `time` tests alone need none.
    pub fn needs_flow_state(&self) -> bool {
        self.tests.iter().any(|t| !matches!(t, FlowTest::Time(_)))
    }

    /// The bits of the `time` tests whose window holds local weekday `day` (0 = Monday) and
    /// minute `minute`.
    pub fn eval_time(&self, day: u8, minute: u16) -> u64 {
        self.bits(|t| matches!(t, FlowTest::Time(w) if w.contains(day, minute)))
    }

    /// Some rule tests the time.
    pub fn reads_time(&self) -> bool {
        self.tests.iter().any(|t| matches!(t, FlowTest::Time(_)))
    }

    /// The results of every name test on a name learnt from `source`, a bit per test.
    pub fn eval(&self, source: NameSource, name: &[u8]) -> u64 {
        self.bits(|t| match t {
            FlowTest::Name(s, p) => {
                s.is_none_or(|s| s.covers(source)) && self.pattern_matches(p, name)
            }
            FlowTest::App(_) | FlowTest::Owner(_) | FlowTest::Time(_) => false,
        })
    }

    /// The results of every owner test on a flow's local socket's owner, a bit per test.
    pub fn eval_owner(&self, owner: &Owner) -> u64 {
        self.bits(|t| match t {
            FlowTest::Owner(o) => o.holds(owner),
            _ => false,
        })
    }

    /// Some rule tests the program behind a flow (`user`, `cmd`, ...).
    pub fn reads_owners(&self) -> bool {
        self.tests.iter().any(|t| matches!(t, FlowTest::Owner(_)))
    }

    /// The results of every protocol test on what a flow's payload showed, a bit per test.
    pub fn eval_app(&self, seen: AppSeen) -> u64 {
        self.bits(|t| match (t, seen) {
            (FlowTest::Name(..) | FlowTest::Owner(_) | FlowTest::Time(_), _) => false,
            // No application named (yet): `app` falls back to ports.
            (FlowTest::App(None), AppSeen::Undecided | AppSeen::Unknown) => true,
            (FlowTest::App(None), AppSeen::Found(p)) => p == Protocol::Tls,
            (FlowTest::App(Some(want)), AppSeen::Found(p)) => *want == p,
            (FlowTest::App(Some(_)), AppSeen::Undecided | AppSeen::Unknown) => false,
        })
    }

    fn bits(&self, holds: impl Fn(&FlowTest) -> bool) -> u64 {
        self.tests
            .iter()
            .enumerate()
            .filter(|(_, t)| holds(t))
            .fold(0, |bits, (i, _)| bits | 1 << i)
    }
}

/// Jump targets past the program end: the verdicts.
const ACCEPT: u32 = u32::MAX;
const REJECT: u32 = u32::MAX - 1;

/// One test with its two successors. Successors are always lower indices (or a verdict).
#[derive(Clone, Debug)]
struct Insn {
    atom: Atom,
    jt: u32,
    jf: u32,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    source: String,
    default: bool,
    prog: Vec<Insn>,
    entry: u32,
    per_packet: bool,
    /// A rule that reads per-frame fields, split at its top-level `or`: the alternatives that
    /// read none (`flow_entry`, the same for every frame of a flow) and the others
    /// (`frame_entry`). The rule holds when either does; the classifier caches the first per
    /// flow and evaluates only the second on each frame. Both `entry` for other rules.
    flow_entry: u32,
    frame_entry: u32,
    /// Satisfiable conjuncts of the rule, or `None` when the DNF was too large to build.
    dnf: Option<Vec<Conj>>,
}

impl Rule {
    /// Parse and compile. Errors point at a column of `src`. A set named in a name test
    /// (`domain @video`) is not checked: see [`Rule::parse_with_sets`].
    pub fn parse(src: &str) -> Result<Rule, RuleError> {
        Self::parse_in(src, None)
    }

    /// [`Rule::parse`], where a name test's set (`domain @video`) must be one of `sets`.
    pub fn parse_with_sets(src: &str, sets: &[String]) -> Result<Rule, RuleError> {
        Self::parse_in(src, Some(sets.to_vec()))
    }

    fn parse_in(src: &str, sets: Option<Vec<String>>) -> Result<Rule, RuleError> {
        let n = src.chars().count();
        if n > MAX_RULE_LEN {
            return Err(RuleError::new(
                MAX_RULE_LEN + 1,
                n - MAX_RULE_LEN,
                format!("rule is too long ({n} characters, the limit is {MAX_RULE_LEN})"),
                Some("split it over several classes"),
            ));
        }
        let toks = lexer::lex(src)?;
        if toks.is_empty() {
            return Err(RuleError::new(
                1,
                1,
                "empty rule",
                Some("write `default` for the catch-all class"),
            ));
        }
        if let [t] = toks.as_slice() {
            if matches!(&t.tok, lexer::Tok::Word(w) if w.eq_ignore_ascii_case("default")) {
                return Ok(Rule {
                    source: src.to_string(),
                    default: true,
                    prog: Vec::new(),
                    entry: ACCEPT,
                    per_packet: false,
                    flow_entry: ACCEPT,
                    frame_entry: ACCEPT,
                    dnf: None,
                });
            }
        }
        let expr = parser::Parser::new(toks, n, sets).parse_rule()?;
        Ok(Rule::from_expr(src, &expr))
    }

    fn from_expr(src: &str, expr: &Expr) -> Rule {
        let mut prog = Vec::new();
        let entry = compile(expr, ACCEPT, REJECT, &mut prog);
        let per_packet = expr.any_atom(&Atom::per_packet);
        let (flow_entry, frame_entry) = if per_packet {
            let alternatives = match expr {
                Expr::Or(xs) => xs.as_slice(),
                e => std::slice::from_ref(e),
            };
            let (frame, flow): (Vec<&Expr>, Vec<&Expr>) = alternatives
                .iter()
                .partition(|x| x.any_atom(&Atom::per_packet));
            let part = |xs: Vec<&Expr>, prog: &mut Vec<Insn>| {
                compile(
                    &Expr::Or(xs.into_iter().cloned().collect()),
                    ACCEPT,
                    REJECT,
                    prog,
                )
            };
            (part(flow, &mut prog), part(frame, &mut prog))
        } else {
            (entry, entry)
        };
        Rule {
            source: src.to_string(),
            default: false,
            prog,
            entry,
            per_packet,
            flow_entry,
            frame_entry,
            dnf: analysis::dnf(expr),
        }
    }

    /// Does this frame match, in a flow whose server name is not known?
    #[inline]
    pub fn matches(&self, v: &FrameView) -> bool {
        self.matches_with(v, 0)
    }

    /// Does this frame match, in a flow whose name tests gave `names` (a bit per test, as
    /// [`Rule::bind_names`] numbered them)?
    #[inline]
    pub fn matches_with(&self, v: &FrameView, names: u64) -> bool {
        self.run(|a| a.eval(v, names))
    }

    /// The part of the rule that is the same for every frame of a flow: the whole rule when it
    /// reads no per-frame field, else its top-level alternatives that read none. When it holds,
    /// the rule holds for every frame of the flow.
    #[inline]
    pub fn matches_flow_part(&self, v: &FrameView, names: u64) -> bool {
        self.run_from(self.flow_entry, |a| a.eval(v, names))
    }

    /// The rest: a frame of a flow whose [flow part](Self::matches_flow_part) does not hold
    /// matches exactly when this does.
    #[inline]
    pub fn matches_frame_part(&self, v: &FrameView, names: u64) -> bool {
        self.run_from(self.frame_entry, |a| a.eval(v, names))
    }

    /// Does this frame match, in a flow whose payload named no application and no server
    /// (what the port table alone would say: `weir check`'s overlap search)?
    pub(crate) fn matches_by_ports(&self, v: &FrameView) -> bool {
        self.run(|a| match a {
            Atom::App { proto, .. } => proto.is_none(),
            Atom::Name { .. } => false,
            a => a.eval(v, 0),
        })
    }

    #[inline]
    fn run(&self, eval: impl Fn(&Atom) -> bool) -> bool {
        self.run_from(self.entry, eval)
    }

    #[inline]
    fn run_from(&self, entry: u32, eval: impl Fn(&Atom) -> bool) -> bool {
        let mut pc = entry;
        // Jumps strictly decrease `pc`, so this bound is never reached; it only makes
        // termination obvious.
        for _ in 0..=self.prog.len() {
            match pc {
                ACCEPT => return true,
                REJECT => return false,
                _ => {}
            }
            let Some(insn) = self.prog.get(pc as usize) else {
                return false;
            };
            pc = if eval(&insn.atom) { insn.jt } else { insn.jf };
        }
        pc == ACCEPT
    }

    /// Number this rule's name tests (`domain`, `sni`, ...) in `tests`, shared by every rule of
    /// a classifier: a test written twice gets one number. Fails when `tests` would pass
    /// [`MAX_NAME_TESTS`]; a test left without a number then never matches.
    pub fn bind_names(&mut self, tests: &mut NameTests) -> Result<(), TooManyNameTests> {
        let mut result = Ok(());
        for insn in &mut self.prog {
            let (test, bit) = match &mut insn.atom {
                Atom::Name {
                    source,
                    pattern,
                    bit,
                } => (FlowTest::Name(*source, pattern.clone()), bit),
                Atom::App { proto, bit } => (FlowTest::App(*proto), bit),
                Atom::Owner { test, bit } => (FlowTest::Owner(test.clone()), bit),
                Atom::Time { window, bit, .. } => (FlowTest::Time(window.clone()), bit),
                _ => continue,
            };
            *bit = tests.number(test).unwrap_or_else(|e| {
                result = Err(e);
                u8::MAX
            });
        }
        result
    }

    /// The rule tests the program behind a flow (`user`, `cmd`, ...).
    pub fn reads_owners(&self) -> bool {
        self.prog
            .iter()
            .any(|insn| matches!(insn.atom, Atom::Owner { .. }))
    }

    /// The rule tests the process behind a flow (`pid`, `cmd`, `args`, `cgroup`), not only
    /// its socket's owner: the resolver must then find the process in /proc.
    pub fn reads_processes(&self) -> bool {
        self.prog.iter().any(|insn| {
            matches!(
                &insn.atom,
                Atom::Owner { test, .. }
                    if !matches!(test, OwnerTest::User(_) | OwnerTest::Uid(_))
            )
        })
    }

    /// The countries and ASes the rule names (`country`, `asn`), each once.
    pub fn geo_keys(&self) -> Vec<crate::classify::geo::GeoKey> {
        let mut keys: Vec<_> = self
            .prog
            .iter()
            .filter_map(|insn| match &insn.atom {
                Atom::Geo { key, .. } => Some(*key),
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Give each `country` and `asn` test its address ranges (a key missing from `sets`
    /// keeps none, and never matches).
    pub fn bind_geo(
        &mut self,
        sets: &std::collections::BTreeMap<
            crate::classify::geo::GeoKey,
            crate::classify::geo::GeoSet,
        >,
    ) {
        for insn in &mut self.prog {
            if let Atom::Geo { key, set } = &mut insn.atom {
                *set = sets.get(key).cloned().unwrap_or_default();
            }
        }
    }

    /// How the rule decides for frame `v` of a flow whose name tests gave `names` (its name
    /// being `name`, its payload's protocol `app`): each test evaluated, in the order
    /// evaluation reaches them, with the frame's value and the result; and the rule's verdict.
    /// For `weir explain`.
    pub fn explain(
        &self,
        v: &FrameView,
        names: u64,
        name: Option<(NameSource, &str)>,
        app: &str,
    ) -> (Vec<ExplainedTest>, bool) {
        let mut steps = Vec::new();
        let mut pc = self.entry;
        for _ in 0..=self.prog.len() {
            let Some(insn) = self.prog.get(pc as usize) else {
                break;
            };
            let result = insn.atom.eval(v, names);
            steps.push(ExplainedTest {
                test: insn.atom.describe(),
                value: insn.atom.value(v, name, app),
                result,
            });
            pc = if result { insn.jt } else { insn.jf };
        }
        (steps, self.default || pc == ACCEPT)
    }

    /// The rule is exactly `default` (the catch-all class).
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// True if the result can differ between frames of one flow (same addresses, ports,
    /// protocol, VLAN): the rule reads length, TCP flags, DSCP, PCP, ICMP type, or
    /// fragment-ness. When false, the verdict can be cached per flow and direction.
    pub fn depends_on_packet(&self) -> bool {
        self.per_packet
    }

    /// Statically proven never to match anything. Conservative: false when unsure.
    pub fn never_matches(&self) -> bool {
        matches!(&self.dnf, Some(d) if d.is_empty())
    }

    /// Statically proven that every frame this rule matches is matched by one of `earlier`.
    /// Conservative: false when unsure. `default` is covered by nothing and covers nothing.
    pub fn is_shadowed_by(&self, earlier: &[&Rule]) -> bool {
        if self.default {
            return false;
        }
        let Some(mine) = &self.dnf else {
            return false;
        };
        // Each of our conjuncts must be implied by some conjunct of some earlier rule; different
        // conjuncts may be covered by different rules. Work is capped: out of budget is "unsure".
        let mut budget = analysis::MAX_IMPLICATION_CHECKS;
        for c in mine {
            let sc = Summary::of(c);
            let mut covered = sc.unsat;
            for r in earlier.iter().filter(|r| !r.default) {
                let Some(d) = &r.dnf else { continue };
                for e in d {
                    match conj_implies(c, &sc, e, &mut budget) {
                        Some(true) => covered = true,
                        Some(false) => {}
                        None => return false,
                    }
                    if covered {
                        break;
                    }
                }
                if covered {
                    break;
                }
            }
            if !covered {
                return false;
            }
        }
        true
    }

    /// The source text, for printing the class tree.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Compile `e` so that control reaches `t` when it holds and `f` otherwise; returns the entry.
/// Children are emitted before their parents, so every jump goes to a lower index. Recursion depth
/// is bounded by the parser's nesting cap.
fn compile(e: &Expr, t: u32, f: u32, prog: &mut Vec<Insn>) -> u32 {
    match e {
        Expr::Atom(a) => {
            prog.push(Insn {
                atom: a.clone(),
                jt: t,
                jf: f,
            });
            // The text cap keeps the program far below u32::MAX - 1 instructions.
            (prog.len() - 1) as u32
        }
        Expr::Not(x) => compile(x, f, t, prog),
        Expr::And(xs) => xs.iter().rev().fold(t, |next, x| compile(x, next, f, prog)),
        Expr::Or(xs) => xs.iter().rev().fold(f, |next, x| compile(x, t, next, prog)),
    }
}
