//! Which parts of a class's rule earlier classes take, for `weir check`'s warnings.
//!
//! Classes are tried in order, so a frame that two rules match goes to the earlier class.
//! That is how a narrow rule is carved out of a broad one (`app dns` before `udp`). But a broad
//! port rule ahead of a narrower one takes the narrower one's flows whenever the other end of
//! the flow happens to use a port in the broad range: `app rtp` (UDP, either port in
//! 10000-32767) takes a DNS query sent from port 20000. Per top-level `or` term of each rule,
//! this finds:
//!
//! - a term that can never match, or whose every frame earlier classes take: proven by
//!   [`Rule::never_matches`] and [`Rule::is_shadowed_by`];
//! - a term *partly* taken by a broad port rule of an earlier class (one that names at least
//!   [`BROAD_PORTS`] ports, and more than the term does): proven by three frames, tried on the real matchers: one that the term and the earlier class's term
//!   match and no class before that one does (so it goes there); one that the earlier term
//!   matches and this term does not (the earlier rule is not a carve-out of this one); one
//!   that this term matches and no earlier class does (the term still gets something).
//!
//! Conservative: only terms made of family, protocol and port tests are judged for partial
//! overlaps (an address, DSCP, length or VLAN test in an earlier class is taken to be a
//! deliberate exception), and a search that finds no frame says nothing. Frames are built from
//! the values the rules tell apart (each range's ends), so the search is exact up to
//! [`MAX_PORT_VALUES`] such values per search; all searches together make at most
//! [`MAX_RULE_EVALUATIONS`] rule evaluations.

use super::analysis::Conj;
use super::ast::{Atom, Dir, RangeSet};
use super::lexer::{self, Tok};
use super::Rule;
use crate::wire::{ipproto, FrameView, L3};
use std::fmt;

/// An earlier term naming this many ports or more is broad: the far end of a flow, whose port
/// is often picked at random from an ephemeral range thousands of ports wide, lands in it often
/// enough to matter. Narrower overlaps (`app sip`'s 5060-5061 meeting a DNS query sent from
/// port 5060) are left alone.
pub const BROAD_PORTS: u64 = 1024;
/// Port values tried per search (a pair of them per frame).
pub const MAX_PORT_VALUES: usize = 64;
/// Rules evaluated on a frame in one [`order_findings`] call, over all its searches.
pub const MAX_RULE_EVALUATIONS: usize = 10_000_000;

/// One top-level `or` term of a rule.
#[derive(Clone, Debug)]
pub struct Term {
    /// As written.
    pub text: String,
    /// 1-based character column of its first character in the rule's text.
    pub column: usize,
    /// Its protocols and ports when that is all it tests: `udp port 10000-32767`.
    pub ports: Option<String>,
    rule: Rule,
}

/// A frame that shows where a term's frames go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Example {
    pub v6: bool,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl fmt::Display for Example {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} from port {} to port {}",
            proto_name(self.proto),
            if self.v6 { " over IPv6" } else { "" },
            self.src_port,
            self.dst_port
        )
    }
}

/// How a term loses frames to earlier classes (indices into the list given).
#[derive(Clone, Debug)]
pub enum Taken {
    /// The term contradicts itself.
    Never,
    /// Earlier classes take every frame it matches; `by` is one that alone does, if any.
    Entirely { by: Option<usize> },
    /// Frames such as `example` go to class `by`, whose term `earlier` is a broad port rule.
    Partly {
        by: usize,
        earlier: Term,
        example: Example,
    },
}

#[derive(Clone, Debug)]
pub struct Finding {
    /// The class (index into the list given) whose term loses frames.
    pub class: usize,
    pub term: Term,
    pub taken: Taken,
}

/// What earlier classes take from later ones, for classes tried in the order of `rules`
/// (`None`: a class without a rule, such as the default class, which takes nothing first).
pub fn order_findings(rules: &[Option<&Rule>]) -> Vec<Finding> {
    let terms: Vec<Vec<Term>> = rules
        .iter()
        .map(|r| r.map_or_else(Vec::new, terms_of))
        .collect();
    let mut budget = MAX_RULE_EVALUATIONS;
    let mut out = Vec::new();
    for (i, class_terms) in terms.iter().enumerate() {
        let earlier: Vec<(usize, &Rule)> = rules[..i]
            .iter()
            .enumerate()
            .filter_map(|(k, r)| r.map(|r| (k, r)))
            .collect();
        let earlier_rules: Vec<&Rule> = earlier.iter().map(|&(_, r)| r).collect();
        for t in class_terms {
            let found = |taken| Finding {
                class: i,
                term: t.clone(),
                taken,
            };
            if t.rule.never_matches() {
                out.push(found(Taken::Never));
                continue;
            }
            if t.rule.is_shadowed_by(&earlier_rules) {
                let by = earlier
                    .iter()
                    .find(|(_, r)| t.rule.is_shadowed_by(&[r]))
                    .map(|&(k, _)| k);
                out.push(found(Taken::Entirely { by }));
                continue;
            }
            let Some(width) = port_width(&t.rule) else {
                continue;
            };
            // A frame of `t` that no earlier class takes, looked for once, when needed.
            let mut keeps: Option<bool> = None;
            for &(k, _) in &earlier {
                let before: Vec<&Rule> = rules[..k].iter().flatten().copied().collect();
                for e in &terms[k] {
                    if !port_width(&e.rule).is_some_and(|w| w >= BROAD_PORTS && w > width) {
                        continue;
                    }
                    let both = [&t.rule, &e.rule];
                    let taken = Space::of(both.iter().chain(&before).copied()).find(
                        &mut budget,
                        2 + before.len(),
                        |f| {
                            t.rule.matches_by_ports(f)
                                && e.rule.matches_by_ports(f)
                                && !before.iter().any(|r| r.matches_by_ports(f))
                        },
                    );
                    let Some(example) = taken else { continue };
                    let broader = Space::of(both.iter().copied()).find(&mut budget, 2, |f| {
                        e.rule.matches_by_ports(f) && !t.rule.matches_by_ports(f)
                    });
                    if broader.is_none() {
                        continue;
                    }
                    let keeps = *keeps.get_or_insert_with(|| {
                        Space::of(std::iter::once(&t.rule).chain(earlier_rules.iter().copied()))
                            .find(&mut budget, 1 + earlier_rules.len(), |f| {
                                t.rule.matches_by_ports(f)
                                    && !earlier_rules.iter().any(|r| r.matches_by_ports(f))
                            })
                            .is_some()
                    });
                    if keeps {
                        out.push(found(Taken::Partly {
                            by: k,
                            earlier: e.clone(),
                            example,
                        }));
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The top-level `or` terms of `rule`, each compiled on its own (none for `default`, or if a
/// term does not compile alone, which a rule that compiled as a whole rules out).
fn terms_of(rule: &Rule) -> Vec<Term> {
    if rule.is_default() {
        return Vec::new();
    }
    let src = rule.source();
    let Ok(tokens) = lexer::lex(src) else {
        return Vec::new();
    };
    let chars: Vec<char> = src.chars().collect();
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut start) = (0usize, None::<usize>);
    let mut end = 0;
    for t in &tokens {
        let is_or = match &t.tok {
            Tok::OrOr => true,
            Tok::Word(w) => w.eq_ignore_ascii_case("or"),
            _ => false,
        };
        match t.tok {
            Tok::LParen => depth += 1,
            Tok::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if is_or && depth == 0 {
            if let Some(s) = start.take() {
                pieces.push((s, end));
            }
            continue;
        }
        start.get_or_insert(t.col);
        end = t.col + t.len - 1;
    }
    if let Some(s) = start {
        pieces.push((s, end));
    }
    let mut terms = Vec::with_capacity(pieces.len());
    for (from, to) in pieces {
        let text: String = chars
            .get(from - 1..to)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let Ok(rule) = Rule::parse(&text) else {
            return Vec::new();
        };
        terms.push(Term {
            ports: rule
                .dnf
                .as_deref()
                .map(by_ports)
                .as_deref()
                .and_then(describe),
            text,
            column: from,
            rule,
        });
    }
    terms
}

/// How many port numbers a term's port tests name, when it tests only family, protocol and
/// ports, and every alternative tests a port. `None` for any other term.
fn port_width(rule: &Rule) -> Option<u64> {
    let dnf = by_ports(rule.dnf.as_deref()?);
    if dnf.is_empty() {
        return None;
    }
    let mut ranges = Vec::new();
    for conj in &dnf {
        let mut has_port = false;
        for (atom, pos) in conj {
            match atom {
                Atom::Family(_) | Atom::Proto(_) => {}
                Atom::Ports { set, .. } => {
                    if *pos {
                        has_port = true;
                        ranges.extend_from_slice(set.ranges());
                    }
                }
                _ => return None,
            }
        }
        if !has_port {
            return None;
        }
    }
    let all = RangeSet::from_ranges(ranges);
    Some(
        all.ranges()
            .iter()
            .map(|&(lo, hi)| u64::from(hi - lo) + 1)
            .sum(),
    )
}

/// `dnf` as the port table sees it, for a flow whose payload named no application (`app`
/// falls back to ports): the tests of a payload's protocol decided that way, the alternatives
/// they make false dropped.
fn by_ports(dnf: &[Conj]) -> Vec<Conj> {
    dnf.iter()
        .filter_map(|conj| {
            let mut kept = Vec::with_capacity(conj.len());
            for (atom, pos) in conj {
                match atom {
                    Atom::App { proto, .. } if proto.is_none() == *pos => {}
                    Atom::App { .. } => return None,
                    _ => kept.push((atom.clone(), *pos)),
                }
            }
            Some(kept)
        })
        .collect()
}

/// "tcp+udp port 53", "udp port 10000-32767", when each alternative is one protocol (or none)
/// and one port test; `None` otherwise.
fn describe(dnf: &[Conj]) -> Option<String> {
    let mut groups: Vec<(Dir, &RangeSet, Vec<Option<u8>>)> = Vec::new();
    for conj in dnf {
        let (mut proto, mut ports) = (None, None);
        for (atom, pos) in conj {
            match atom {
                Atom::Proto(p) if *pos && proto.is_none() => proto = Some(*p),
                Atom::Ports { dir, set } if *pos && ports.is_none() => ports = Some((*dir, set)),
                _ => return None,
            }
        }
        let (dir, set) = ports?;
        match groups.iter_mut().find(|(d, s, _)| *d == dir && *s == set) {
            Some((_, _, protos)) => protos.push(proto),
            None => groups.push((dir, set, vec![proto])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(dir, set, protos)| {
            let protos: Vec<&str> = protos.iter().flatten().map(|&p| proto_name(p)).collect();
            let dir = match dir {
                Dir::Src => "src port",
                Dir::Dst => "dst port",
                Dir::Either => "port",
            };
            let set: Vec<String> = set
                .ranges()
                .iter()
                .map(|&(lo, hi)| match lo == hi {
                    true => lo.to_string(),
                    false => format!("{lo}-{hi}"),
                })
                .collect();
            let on = if protos.is_empty() {
                String::new()
            } else {
                format!("{} ", protos.join("+"))
            };
            format!("{on}{dir} {}", set.join(","))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn proto_name(p: u8) -> &'static str {
    match p {
        ipproto::TCP => "tcp",
        ipproto::UDP => "udp",
        ipproto::SCTP => "sctp",
        ipproto::UDPLITE => "udplite",
        ipproto::ICMP => "icmp",
        ipproto::ICMPV6 => "icmp6",
        _ => "ip",
    }
}

fn carries_ports(proto: u8) -> bool {
    matches!(
        proto,
        ipproto::TCP | ipproto::UDP | ipproto::SCTP | ipproto::UDPLITE
    )
}

/// The frames a search tries: both families, each protocol the rules name (and TCP, UDP and
/// one they do not name), and every pair of port values that the rules' port ranges tell
/// apart (each range's first port and the one after its last).
struct Space {
    protos: Vec<u8>,
    ports: Vec<u16>,
}

impl Space {
    /// From the rules' tests; the first rules' port values are kept when there are too many.
    fn of<'r>(rules: impl Iterator<Item = &'r Rule>) -> Space {
        let mut protos = vec![ipproto::TCP, ipproto::UDP];
        let mut ports: Vec<u32> = vec![0];
        for rule in rules {
            for insn in &rule.prog {
                match &insn.atom {
                    Atom::Proto(p) => protos.push(*p),
                    Atom::Ports { set, .. } => {
                        for &(lo, hi) in set.ranges() {
                            ports.push(lo);
                            ports.push(hi + 1);
                        }
                    }
                    _ => {}
                }
            }
        }
        protos.sort_unstable();
        protos.dedup();
        // A protocol without ports that no rule names (GRE is 47).
        if let Some(other) = (47..=255).find(|p| !protos.contains(p) && !carries_ports(*p)) {
            protos.push(other);
        }
        let mut seen = std::collections::HashSet::new();
        ports.retain(|&p| p <= u32::from(u16::MAX) && seen.insert(p));
        ports.truncate(MAX_PORT_VALUES);
        // Ascending, but port 0 last: an example shows a port a flow would use, if it can.
        ports.sort_unstable_by_key(|&p| (p == 0, p));
        Space {
            protos,
            ports: ports.into_iter().map(|p| p as u16).collect(),
        }
    }

    /// The first frame that `want` accepts; each frame tried costs `cost` of `budget` (the
    /// rules `want` may evaluate).
    fn find(
        &self,
        budget: &mut usize,
        cost: usize,
        want: impl Fn(&FrameView) -> bool,
    ) -> Option<Example> {
        for v6 in [false, true] {
            for &proto in &self.protos {
                let ports: &[u16] = if carries_ports(proto) {
                    &self.ports
                } else {
                    &[0]
                };
                for &src_port in ports {
                    for &dst_port in ports {
                        *budget = budget.checked_sub(cost)?;
                        let e = Example {
                            v6,
                            proto,
                            src_port,
                            dst_port,
                        };
                        if want(&e.frame()) {
                            return Some(e);
                        }
                    }
                }
            }
        }
        None
    }
}

impl Example {
    /// A plausible frame: ports read only for a transport that has them, ICMP read for ICMP.
    fn frame(&self) -> FrameView {
        let (l3, ethertype, l4_offset) = if self.v6 {
            (L3::Ipv6, 0x86dd, 54)
        } else {
            (L3::Ipv4, 0x0800, 34)
        };
        let icmp =
            (!self.v6 && self.proto == ipproto::ICMP) || (self.v6 && self.proto == ipproto::ICMPV6);
        FrameView {
            len: 100,
            ethertype,
            l3,
            l3_offset: 14,
            l4_offset,
            // Documentation addresses (192.0.2.1 -> 198.51.100.1, 2001:db8::1 -> ::2).
            src_ip: if self.v6 {
                0x2001_0db8_u128 << 96 | 1
            } else {
                0xc000_0201
            },
            dst_ip: if self.v6 {
                0x2001_0db8_u128 << 96 | 2
            } else {
                0xc633_6401
            },
            ip_proto: self.proto,
            has_ports: carries_ports(self.proto),
            src_port: self.src_port,
            dst_port: self.dst_port,
            has_icmp: icmp,
            icmp_type: if self.v6 { 128 } else { 8 },
            ..FrameView::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(srcs: &[&str]) -> Vec<Rule> {
        srcs.iter().map(|s| Rule::parse(s).unwrap()).collect()
    }

    fn findings(srcs: &[&str]) -> Vec<Finding> {
        let r = rules(srcs);
        let refs: Vec<Option<&Rule>> = r.iter().map(Some).collect();
        order_findings(&refs)
    }

    #[test]
    fn terms_keep_their_text_and_column() {
        let r = Rule::parse("app ssh or (tcp and port 1) || app dns").unwrap();
        let t = terms_of(&r);
        let got: Vec<(&str, usize)> = t.iter().map(|t| (t.text.as_str(), t.column)).collect();
        assert_eq!(
            got,
            [("app ssh", 1), ("(tcp and port 1)", 12), ("app dns", 32)]
        );
        assert_eq!(t[2].ports.as_deref(), Some("tcp+udp port 53"));
        assert_eq!(t[1].ports.as_deref(), Some("tcp port 1"));
        assert!(terms_of(&Rule::parse("default").unwrap()).is_empty());
    }

    #[test]
    fn a_broad_port_rule_partly_takes_a_narrower_one() {
        let f = findings(&[
            "app sip or udp port 10000-32767",
            "app ssh or app dns or app ntp or icmp or app steam",
        ]);
        let partly: Vec<(&str, &str, String)> = f
            .iter()
            .filter_map(|f| match &f.taken {
                Taken::Partly {
                    by: 0,
                    earlier,
                    example,
                } => Some((
                    f.term.text.as_str(),
                    earlier.text.as_str(),
                    example.to_string(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            partly,
            [
                (
                    "app dns",
                    "udp port 10000-32767",
                    "udp from port 53 to port 10000".to_string()
                ),
                (
                    "app ntp",
                    "udp port 10000-32767",
                    "udp from port 123 to port 10000".to_string()
                ),
            ]
        );
        // Steam's ports are all inside that range: it can never get a frame.
        let steam = f.iter().find(|f| f.term.text == "app steam").unwrap();
        assert!(matches!(steam.taken, Taken::Entirely { by: Some(0) }));
        // SSH is TCP, ICMP has no ports: untouched.
        assert!(f
            .iter()
            .all(|f| f.term.text != "app ssh" && f.term.text != "icmp"));
    }

    #[test]
    fn a_narrow_rule_before_a_broad_one_is_a_deliberate_exception() {
        // Carved out of the later rule, narrower than it, or not broad: no finding.
        assert!(findings(&["app dns", "udp"]).is_empty());
        assert!(findings(&["app dns", "app rtp"]).is_empty());
        assert!(findings(&["app sip", "app dns"]).is_empty());
        assert!(findings(&["port 22", "tcp port 1-1023"]).is_empty());
        // A narrowed broad rule no longer meets the later one.
        assert!(findings(&["app rtp and not port 53", "app dns"]).is_empty());
        // Disjoint protocols.
        assert!(findings(&["udp port 1-65535", "app https"]).is_empty());
    }

    #[test]
    fn only_tests_of_family_protocol_and_ports_are_judged() {
        assert!(findings(&["dscp ef", "app dns"]).is_empty());
        assert!(findings(&["src net 10.0.0.0/8 and port 1-60000", "app dns"]).is_empty());
        assert!(findings(&["port 1000-60000", "app dns and len < 100"]).is_empty());
    }

    #[test]
    fn an_earlier_class_that_takes_the_overlap_first_is_the_one_named() {
        let srcs = ["tcp port 1000-3000", "port 1000-5000", "app dns"];
        let f = findings(&srcs);
        let r = rules(&srcs);
        let mut by_seen = Vec::new();
        for f in &f {
            let Taken::Partly { by, example, .. } = &f.taken else {
                panic!("{f:?}");
            };
            // The example goes to class `by`: it matches there and nowhere before.
            let frame = example.frame();
            assert!(
                r[f.class].matches_by_ports(&frame) && r[*by].matches_by_ports(&frame),
                "{example}"
            );
            assert!(
                r[..*by].iter().all(|e| !e.matches_by_ports(&frame)),
                "{example}"
            );
            by_seen.push(*by);
        }
        assert_eq!(by_seen, [0, 1]);
    }

    #[test]
    fn contradictions_and_full_cover_are_reported_per_term() {
        let f = findings(&["tcp", "udp port 53 or tcp port 80 or (udp and tcp)"]);
        let got: Vec<(&str, bool)> = f
            .iter()
            .map(|f| (f.term.text.as_str(), matches!(f.taken, Taken::Never)))
            .collect();
        assert_eq!(got, [("tcp port 80", false), ("(udp and tcp)", true)]);
    }

    #[test]
    fn the_search_stops_at_its_budget() {
        // 300 broad classes that the first covers: each search for a frame that one of them
        // takes from the last class tries every frame, far more than the budget allows. It
        // must end in bounded time, whatever it found by then.
        let broad: Vec<String> = (0..300)
            .map(|i| format!("udp port {}-{}", 100 * i + 1000, 100 * i + 3000))
            .collect();
        let mut srcs = vec!["udp port 1000-40000"];
        srcs.extend(broad.iter().map(String::as_str));
        srcs.push("udp dst port 999 or app dns");
        let started = std::time::Instant::now();
        let _ = findings(&srcs);
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }
}
