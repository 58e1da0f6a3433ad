//! Static analysis: bounded DNF, unsatisfiable conjuncts, and implication between conjuncts.
//!
//! Guarantees: every answer is sound for *any* [`FrameView`](crate::wire::FrameView), not only
//! for views built by the wire parser, because it only uses facts each atom checks itself (see
//! `ast.rs`). When unsure, or when the DNF would exceed [`MAX_CONJUNCTS`], answers are the
//! conservative ones: "may match" and "not shadowed". Work is bounded: the rule text is capped,
//! so the atom count is too, and the DNF is cut off at [`MAX_CONJUNCTS`].

use super::ast::{Atom, Dir, Expr, Net, RangeSet};
use crate::classify::payload::detect::Protocol;
use crate::wire::L3;

/// Larger DNFs are not built: the analysis then gives up (conservatively).
pub(crate) const MAX_CONJUNCTS: usize = 256;
/// Longer conjuncts are not built either: checking one is quadratic in its length.
pub(crate) const MAX_CONJUNCT_LITS: usize = 64;
/// Conjunct combinations tried while distributing `and` over `or`, for the whole rule.
const MAX_COMBINATIONS: usize = 50_000;
/// Literal implication checks allowed in one `is_shadowed_by` call.
pub(crate) const MAX_IMPLICATION_CHECKS: usize = 1_000_000;

/// A literal: an atom, positive or negated.
pub(crate) type Lit = (Atom, bool);
/// A conjunction of literals, deduplicated.
pub(crate) type Conj = Vec<Lit>;

/// The satisfiable conjuncts of `e` in disjunctive normal form, or `None` if there would be more
/// than [`MAX_CONJUNCTS`] (counted after dropping unsatisfiable ones). `Some(vec![])` means the
/// expression can never be true.
pub(crate) fn dnf(e: &Expr) -> Option<Vec<Conj>> {
    let mut budget = MAX_COMBINATIONS;
    let mut d = dnf_rec(e, false, &mut budget)?;
    d.retain(|c| !Summary::of(c).unsat);
    Some(d)
}

fn dnf_rec(e: &Expr, neg: bool, budget: &mut usize) -> Option<Vec<Conj>> {
    match e {
        Expr::Atom(a) => Some(vec![vec![(a.clone(), !neg)]]),
        Expr::Not(x) => dnf_rec(x, !neg, budget),
        // De Morgan: a negated `and` is an `or` of negations, and vice versa.
        Expr::And(xs) if !neg => product(xs, neg, budget),
        Expr::Or(xs) if neg => product(xs, neg, budget),
        Expr::And(xs) | Expr::Or(xs) => {
            let mut out: Vec<Conj> = Vec::new();
            for x in xs {
                for c in dnf_rec(x, neg, budget)? {
                    *budget = budget.checked_sub(1)?;
                    if !out.contains(&c) && !Summary::of(&c).unsat {
                        out.push(c);
                    }
                }
                if out.len() > MAX_CONJUNCTS {
                    return None;
                }
            }
            Some(out)
        }
    }
}

/// DNF of the conjunction of `xs` (each negated if `neg`).
fn product(xs: &[Expr], neg: bool, budget: &mut usize) -> Option<Vec<Conj>> {
    let mut acc: Vec<Conj> = vec![Vec::new()];
    for x in xs {
        let d = dnf_rec(x, neg, budget)?;
        let mut next: Vec<Conj> = Vec::new();
        for a in &acc {
            for b in &d {
                *budget = budget.checked_sub(1)?;
                if a.len() + b.len() > MAX_CONJUNCT_LITS * 2 {
                    return None;
                }
                let mut c = a.clone();
                for l in b {
                    if !c.contains(l) {
                        c.push(l.clone());
                    }
                }
                if c.len() > MAX_CONJUNCT_LITS {
                    return None;
                }
                // Prune early so contradictions do not count against the cap.
                if Summary::of(&c).unsat || next.contains(&c) {
                    continue;
                }
                next.push(c);
                if next.len() > MAX_CONJUNCTS {
                    return None;
                }
            }
        }
        acc = next;
        if acc.is_empty() {
            break;
        }
    }
    Some(acc)
}

const OTHER: u8 = 1;
const ARP: u8 = 2;
const V4: u8 = 4;
const V6: u8 = 8;
const IP: u8 = V4 | V6;
const ALL: u8 = OTHER | ARP | V4 | V6;

fn fam_bit(f: L3) -> u8 {
    match f {
        L3::Other => OTHER,
        L3::Arp => ARP,
        L3::Ipv4 => V4,
        L3::Ipv6 => V6,
    }
}

fn net_bit(n: &Net) -> u8 {
    if n.v6 {
        V6
    } else {
        V4
    }
}

/// What a conjunct forces about a frame. Value sets (`proto`, `src`, ...) are narrowed by negative
/// literals only when the matching guard (IP, ports read, tag present, ICMP read) is forced,
/// because a negative literal is also true when its guard fails.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Possible `l3` values (bit set).
    fam: u8,
    tagged: Option<bool>,
    ports_forced: bool,
    icmp_forced: bool,
    frag: Option<bool>,
    proto: RangeSet,
    dscp: RangeSet,
    pcp: RangeSet,
    icmp: RangeSet,
    src: RangeSet,
    dst: RangeSet,
    len: RangeSet,
    /// Positive `port` (either direction) sets.
    either: Vec<RangeSet>,
    flags_req: u8,
    flags_neg: Vec<u8>,
    nets_pos: Vec<(Dir, Net)>,
    nets_neg: Vec<(Dir, Net)>,
    vlan_pos: Vec<u16>,
    vlan_neg: Vec<u16>,
    /// The protocol a positive `App` test says the flow's payload showed.
    app: Option<Option<Protocol>>,
    pub unsat: bool,
}

/// Can one flow pass both `App` tests? Each flow has one protocol; `None` (no application
/// named) also holds for TLS.
fn apps_compatible(a: Option<Protocol>, b: Option<Protocol>) -> bool {
    a == b
        || matches!(
            (a, b),
            (Some(Protocol::Tls), None) | (None, Some(Protocol::Tls))
        )
}

fn set_tri(slot: &mut Option<bool>, v: bool, unsat: &mut bool) {
    match *slot {
        Some(old) if old != v => *unsat = true,
        _ => *slot = Some(v),
    }
}

impl Summary {
    pub fn of(c: &[Lit]) -> Summary {
        let byte = || RangeSet::range(0, 255);
        let port = || RangeSet::range(0, 65535);
        let mut s = Summary {
            fam: ALL,
            tagged: None,
            ports_forced: false,
            icmp_forced: false,
            frag: None,
            proto: byte(),
            dscp: byte(),
            pcp: byte(),
            icmp: byte(),
            src: port(),
            dst: port(),
            len: RangeSet::range(0, u32::MAX),
            either: Vec::new(),
            flags_req: 0,
            flags_neg: Vec::new(),
            nets_pos: Vec::new(),
            nets_neg: Vec::new(),
            vlan_pos: Vec::new(),
            vlan_neg: Vec::new(),
            app: None,
            unsat: false,
        };
        // Pass 1: family and guards.
        for (a, pos) in c {
            let pos = *pos;
            match a {
                Atom::Family(f) if pos => s.fam &= fam_bit(*f),
                Atom::Family(f) => s.fam &= !fam_bit(*f),
                Atom::Proto(_) | Atom::Dscp(_) | Atom::Geo { .. } | Atom::Owner { .. } if pos => {
                    s.fam &= IP
                }
                Atom::Ports { .. } if pos => {
                    s.fam &= IP;
                    s.ports_forced = true;
                }
                Atom::Net { net, .. } if pos => s.fam &= net_bit(net),
                Atom::IcmpType(_) if pos => s.icmp_forced = true,
                Atom::Vlan(_) | Atom::Pcp(_) if pos => set_tri(&mut s.tagged, true, &mut s.unsat),
                Atom::Vlan(None) => set_tri(&mut s.tagged, false, &mut s.unsat),
                Atom::Fragment => set_tri(&mut s.frag, pos, &mut s.unsat),
                Atom::App { proto, .. } if pos => {
                    if proto.is_some() {
                        // Only TCP and UDP payloads are told apart.
                        s.fam &= IP;
                    }
                    match s.app {
                        Some(have) if !apps_compatible(have, *proto) => s.unsat = true,
                        Some(Some(_)) => {}
                        _ => s.app = Some(*proto),
                    }
                }
                _ => {}
            }
        }
        let ip_forced = s.fam & !IP == 0;
        // Pass 2: values.
        for (a, pos) in c {
            let pos = *pos;
            let narrow = |set: &mut RangeSet, x: &RangeSet, guard: bool| {
                if pos {
                    *set = set.intersect(x);
                } else if guard {
                    *set = set.subtract(x);
                }
            };
            match a {
                Atom::Proto(p) => narrow(&mut s.proto, &RangeSet::single(u32::from(*p)), ip_forced),
                Atom::Dscp(d) => narrow(&mut s.dscp, &RangeSet::single(u32::from(*d)), ip_forced),
                Atom::Pcp(p) => narrow(
                    &mut s.pcp,
                    &RangeSet::single(u32::from(*p)),
                    s.tagged == Some(true),
                ),
                Atom::IcmpType(t) => {
                    narrow(&mut s.icmp, &RangeSet::single(u32::from(*t)), s.icmp_forced)
                }
                Atom::Len(lo, hi) => narrow(&mut s.len, &RangeSet::range(*lo, *hi), true),
                Atom::Ports { dir, set } => {
                    let g = s.ports_forced;
                    match dir {
                        Dir::Src => narrow(&mut s.src, set, g),
                        Dir::Dst => narrow(&mut s.dst, set, g),
                        Dir::Either if pos => s.either.push(set.clone()),
                        Dir::Either => {
                            narrow(&mut s.src, set, g);
                            narrow(&mut s.dst, set, g);
                        }
                    }
                }
                Atom::TcpFlags(m) if pos => s.flags_req |= m,
                Atom::TcpFlags(m) => s.flags_neg.push(*m),
                Atom::Net { dir, net } if pos => s.nets_pos.push((*dir, *net)),
                Atom::Net { dir, net } => s.nets_neg.push((*dir, *net)),
                Atom::Vlan(Some(id)) if pos => s.vlan_pos.push(*id),
                Atom::Vlan(Some(id)) => s.vlan_neg.push(*id),
                Atom::App { proto: Some(p), .. } if pos => {
                    let carriers = RangeSet::from_ranges(
                        p.transports()
                            .iter()
                            .map(|&t| (u32::from(t), u32::from(t)))
                            .collect(),
                    );
                    narrow(&mut s.proto, &carriers, true);
                }
                _ => {}
            }
        }
        s.unsat = s.unsat || s.contradicts(c);
        s
    }

    fn contradicts(&self, c: &[Lit]) -> bool {
        if self.fam == 0
            || self.proto.is_empty()
            || self.dscp.is_empty()
            || self.pcp.is_empty()
            || self.icmp.is_empty()
            || self.src.is_empty()
            || self.dst.is_empty()
            || self.len.is_empty()
        {
            return true;
        }
        if self
            .either
            .iter()
            .any(|e| e.is_disjoint(&self.src) && e.is_disjoint(&self.dst))
        {
            return true;
        }
        // `not tcp flags syn` (syn not all set) against a required syn.
        if self.flags_neg.iter().any(|m| m & !self.flags_req == 0) {
            return true;
        }
        if self.vlan_pos.iter().any(|id| self.vlan_neg.contains(id)) {
            return true;
        }
        for (i, (da, a)) in self.nets_pos.iter().enumerate() {
            // Same direction, disjoint networks (same family; mixed families are caught by `fam`).
            for (db, b) in &self.nets_pos[i + 1..] {
                if da == db && *da != Dir::Either && a.v6 == b.v6 && a.is_disjoint(b) {
                    return true;
                }
            }
            // `src host 10.0.0.1 and not net 10.0.0.0/8`.
            for (dn, n) in &self.nets_neg {
                if (dn == da || *dn == Dir::Either) && a.is_subnet_of(n) {
                    return true;
                }
            }
        }
        // A literal and its negation.
        c.iter()
            .any(|(a, p)| *p && c.iter().any(|(b, q)| !*q && a == b))
    }

    /// Does every frame satisfying this (satisfiable) conjunct `c` satisfy `lit`?
    fn implies(&self, c: &[Lit], lit: &Lit) -> bool {
        if c.contains(lit) {
            return true;
        }
        let ip_forced = self.fam & !IP == 0;
        let (a, pos) = (&lit.0, lit.1);
        match a {
            Atom::Family(f) => {
                if pos {
                    self.fam & !fam_bit(*f) == 0
                } else {
                    self.fam & fam_bit(*f) == 0
                }
            }
            Atom::Proto(p) => value_implied(&self.proto, *p, pos, ip_forced, self.fam & IP == 0),
            Atom::Dscp(d) => value_implied(&self.dscp, *d, pos, ip_forced, self.fam & IP == 0),
            Atom::Pcp(p) => value_implied(
                &self.pcp,
                *p,
                pos,
                self.tagged == Some(true),
                self.tagged == Some(false),
            ),
            Atom::IcmpType(t) => value_implied(&self.icmp, *t, pos, self.icmp_forced, false),
            Atom::Len(lo, hi) => {
                let r = RangeSet::range(*lo, *hi);
                if pos {
                    self.len.is_subset(&r)
                } else {
                    self.len.is_disjoint(&r)
                }
            }
            Atom::Ports { dir, set } => {
                if pos {
                    self.ports_forced
                        && match dir {
                            Dir::Src => self.src.is_subset(set),
                            Dir::Dst => self.dst.is_subset(set),
                            Dir::Either => {
                                self.src.is_subset(set)
                                    || self.dst.is_subset(set)
                                    || self.either.iter().any(|e| e.is_subset(set))
                            }
                        }
                } else {
                    self.fam & IP == 0
                        || match dir {
                            Dir::Src => self.src.is_disjoint(set),
                            Dir::Dst => self.dst.is_disjoint(set),
                            Dir::Either => self.src.is_disjoint(set) && self.dst.is_disjoint(set),
                        }
                }
            }
            Atom::TcpFlags(m) => {
                if pos {
                    m & !self.flags_req == 0
                } else {
                    // Some of `x` unset implies some of `m` unset when x is a subset of m.
                    self.flags_neg.iter().any(|x| x & !m == 0)
                }
            }
            Atom::Net { dir, net } => {
                if pos {
                    self.nets_pos
                        .iter()
                        .any(|(d, n)| (*dir == Dir::Either || d == dir) && n.is_subnet_of(net))
                } else {
                    self.fam & net_bit(net) == 0
                        || self
                            .nets_neg
                            .iter()
                            .any(|(d, n)| (*d == Dir::Either || d == dir) && net.is_subnet_of(n))
                        || self.nets_pos.iter().any(|(d, n)| {
                            *dir != Dir::Either && d == dir && n.v6 == net.v6 && n.is_disjoint(net)
                        })
                }
            }
            Atom::Vlan(None) => self.tagged == Some(pos),
            Atom::Vlan(Some(id)) => {
                if pos {
                    self.vlan_pos.contains(id)
                } else {
                    self.tagged == Some(false) || self.vlan_neg.contains(id)
                }
            }
            Atom::Fragment => self.frag == Some(pos),
            // Opaque: implied only by itself (above).
            Atom::Name { .. } | Atom::Geo { .. } | Atom::Owner { .. } | Atom::Time { .. } => false,
            Atom::App { proto, .. } => match self.app {
                Some(have) if pos => {
                    have == *proto || (proto.is_none() && have == Some(Protocol::Tls))
                }
                Some(have) => !apps_compatible(have, *proto),
                None => false,
            },
        }
    }
}

/// Implication of a guarded single-value literal (`proto 6`, `dscp 46`, ...). `set` is narrowed
/// only under the guard, so "x not in set" already implies the guard held.
fn value_implied(set: &RangeSet, x: u8, pos: bool, guard: bool, guard_fails: bool) -> bool {
    if pos {
        guard && set.as_single() == Some(u32::from(x))
    } else {
        guard_fails || !set.contains(u32::from(x))
    }
}

/// Every frame satisfying conjunct `c` satisfies conjunct `d`. Each literal checked costs one
/// unit of `budget`; `None` when it runs out.
pub(crate) fn conj_implies(c: &[Lit], sc: &Summary, d: &[Lit], budget: &mut usize) -> Option<bool> {
    if sc.unsat {
        return Some(true);
    }
    for l in d {
        *budget = budget.checked_sub(1)?;
        if !sc.implies(c, l) {
            return Some(false);
        }
    }
    Some(true)
}
