//! The rule AST: boolean combinations of atomic tests on a [`FrameView`].
//!
//! Guarantees: [`Atom::eval`] reads only the view, never allocates and never panics, whatever the
//! field values (a hand-built view with `vlan_count = 200` or an IPv4 address with high bits set is
//! fine). Each atom checks its own preconditions (IP family, `has_ports`, a tag present), so the
//! static analysis can rely on "this atom is true implies this precondition" for any view, not only
//! for views built by the wire parser.

use crate::classify::geo::{GeoKey, GeoSet};
use crate::classify::owner::OwnerTest;
use crate::classify::payload::detect::Protocol;
use crate::classify::payload::NameSource;
use crate::wire::{FrameView, L3};

/// Sorted, disjoint, non-adjacent inclusive ranges of `u32`: port sets, length ranges, and the
/// value domains used by the analysis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RangeSet(Vec<(u32, u32)>);

impl RangeSet {
    /// Normalise arbitrary ranges; ranges with `lo > hi` are empty and dropped.
    pub fn from_ranges(mut r: Vec<(u32, u32)>) -> RangeSet {
        r.retain(|&(lo, hi)| lo <= hi);
        r.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(r.len());
        for (lo, hi) in r {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        RangeSet(out)
    }

    pub fn range(lo: u32, hi: u32) -> RangeSet {
        RangeSet::from_ranges(vec![(lo, hi)])
    }

    pub fn single(x: u32) -> RangeSet {
        RangeSet::range(x, x)
    }

    #[inline]
    pub fn contains(&self, x: u32) -> bool {
        // Ranges are sorted: stop at the first one that starts past `x`.
        for &(lo, hi) in &self.0 {
            if x < lo {
                return false;
            }
            if x <= hi {
                return true;
            }
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn intersect(&self, other: &RangeSet) -> RangeSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let lo = a.0.max(b.0);
            let hi = a.1.min(b.1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        RangeSet(out)
    }

    pub fn subtract(&self, other: &RangeSet) -> RangeSet {
        let mut out = Vec::new();
        for &(lo, hi) in &self.0 {
            let mut cur = lo;
            let mut open = true;
            for &(olo, ohi) in &other.0 {
                if ohi < cur || olo > hi {
                    continue;
                }
                if olo > cur {
                    out.push((cur, olo - 1));
                }
                if ohi >= hi {
                    open = false;
                    break;
                }
                cur = ohi + 1;
            }
            if open {
                out.push((cur, hi));
            }
        }
        RangeSet::from_ranges(out)
    }

    pub fn is_subset(&self, other: &RangeSet) -> bool {
        self.subtract(other).is_empty()
    }

    pub fn is_disjoint(&self, other: &RangeSet) -> bool {
        self.intersect(other).is_empty()
    }

    /// The ranges, sorted, disjoint and non-adjacent.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }

    /// The only element, if there is exactly one.
    pub fn as_single(&self) -> Option<u32> {
        match self.0.as_slice() {
            [(lo, hi)] if lo == hi => Some(*lo),
            _ => None,
        }
    }
}

/// Which address or port of a frame a test looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dir {
    Src,
    Dst,
    /// Source or destination.
    Either,
}

/// An IP network. `addr` has no bits outside `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Net {
    pub v6: bool,
    pub addr: u128,
    pub mask: u128,
    pub prefix: u8,
}

impl Net {
    pub fn new(v6: bool, addr: u128, prefix: u8) -> Net {
        let mask = net_mask(v6, prefix);
        Net {
            v6,
            addr: addr & mask,
            mask,
            prefix,
        }
    }

    #[inline]
    pub fn contains(&self, ip: u128) -> bool {
        ip & self.mask == self.addr
    }

    /// Every address of `self` is in `other`.
    pub fn is_subnet_of(&self, other: &Net) -> bool {
        self.v6 == other.v6 && self.prefix >= other.prefix && other.contains(self.addr)
    }

    pub fn is_disjoint(&self, other: &Net) -> bool {
        self.v6 != other.v6 || !(self.is_subnet_of(other) || other.is_subnet_of(self))
    }
}

/// Mask of the first `prefix` bits of a 32- or 128-bit address (IPv4 lives in the low 32 bits).
pub(crate) fn net_mask(v6: bool, prefix: u8) -> u128 {
    let bits: u32 = if v6 { 128 } else { 32 };
    let p = u32::from(prefix).min(bits);
    if p == 0 {
        return 0;
    }
    let full: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    (full >> (bits - p)) << (bits - p)
}

/// One atomic test. See the module header for why each checks its own preconditions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Atom {
    /// `l3 == f` (never `L3::Other`).
    Family(L3),
    /// IP (either family) with this upper-layer protocol.
    Proto(u8),
    /// IP, ports read, and the port(s) of `dir` in the set.
    Ports { dir: Dir, set: RangeSet },
    /// `l3` of the net's family and the address(es) of `dir` in it.
    Net { dir: Dir, net: Net },
    /// IP with this DSCP.
    Dscp(u8),
    /// `Some(id)`: any decoded tag has this id; `None`: at least one tag.
    Vlan(Option<u16>),
    /// At least one tag, and the outermost has this PCP.
    Pcp(u8),
    /// `lo <= len <= hi`.
    Len(u32, u32),
    /// All these TCP flag bits set. Parsed only together with `Proto(6)`.
    TcpFlags(u8),
    /// ICMP or ICMPv6 type read and equal to this.
    IcmpType(u8),
    /// Any fragment of a fragmented datagram.
    Fragment,
    /// The flow's server name, from `source` (any source when `None`), matches the glob
    /// `pattern` (lower case). Its result is computed once per flow, when the name is learnt,
    /// and read here as bit `bit` of the flow's name tests (given by [`super::Rule::bind_names`]).
    Name {
        source: Option<NameSource>,
        pattern: String,
        bit: u8,
    },
    /// The protocol told from the flow's first payloads is `proto`; with `None`, its payload
    /// has named no application (not decided yet, no protocol found, or only TLS, which
    /// carries any). Read as bit `bit` of the flow's tests, like `Name`.
    App { proto: Option<Protocol>, bit: u8 },
    /// The source or the destination is outside the LAN networks and in this country or AS,
    /// as the config's database says: `set` holds its ranges less the LAN networks, bound
    /// when the config is loaded (empty before: never matches).
    Geo { key: GeoKey, set: GeoSet },
    /// The program behind the flow's local socket passes `test` (crate::classify::owner):
    /// read as bit `bit` of the flow's tests, like `Name`, once the owner is known.
    Owner { test: OwnerTest, bit: u8 },
    /// The local time is in `window` (`text` as written): bit `bit` of the tests, set by the
    /// classifier for every frame from its clock.
    Time {
        text: String,
        window: crate::schedule::Window,
        bit: u8,
    },
}

#[inline]
fn is_ip(v: &FrameView) -> bool {
    matches!(v.l3, L3::Ipv4 | L3::Ipv6)
}

#[inline]
fn family_ok(v: &FrameView, v6: bool) -> bool {
    v.l3 == if v6 { L3::Ipv6 } else { L3::Ipv4 }
}

impl Atom {
    /// `names`: the flow's name test results, a bit per test (see `Atom::Name`).
    #[inline]
    pub fn eval(&self, v: &FrameView, names: u64) -> bool {
        match self {
            Atom::Family(f) => v.l3 == *f,
            Atom::Proto(p) => is_ip(v) && v.ip_proto == *p,
            Atom::Ports { dir, set } => {
                is_ip(v)
                    && v.has_ports
                    && match dir {
                        Dir::Src => set.contains(u32::from(v.src_port)),
                        Dir::Dst => set.contains(u32::from(v.dst_port)),
                        Dir::Either => {
                            set.contains(u32::from(v.src_port))
                                || set.contains(u32::from(v.dst_port))
                        }
                    }
            }
            Atom::Net { dir, net } => {
                family_ok(v, net.v6)
                    && match dir {
                        Dir::Src => net.contains(v.src_ip),
                        Dir::Dst => net.contains(v.dst_ip),
                        Dir::Either => net.contains(v.src_ip) || net.contains(v.dst_ip),
                    }
            }
            Atom::Dscp(d) => is_ip(v) && v.dscp == *d,
            Atom::Vlan(id) => {
                let n = usize::from(v.vlan_count).min(v.vlan.len());
                match id {
                    None => n > 0,
                    Some(id) => v.vlan[..n].iter().any(|t| t.id == *id),
                }
            }
            Atom::Pcp(p) => v.vlan_count > 0 && v.vlan[0].pcp == *p,
            Atom::Len(lo, hi) => *lo <= v.len && v.len <= *hi,
            Atom::TcpFlags(m) => v.tcp_flags & m == *m,
            Atom::IcmpType(t) => v.has_icmp && v.icmp_type == *t,
            Atom::Fragment => v.is_fragment,
            Atom::Name { bit, .. }
            | Atom::App { bit, .. }
            | Atom::Owner { bit, .. }
            | Atom::Time { bit, .. } => *bit < 64 && names >> bit & 1 != 0,
            Atom::Geo { set, .. } => {
                is_ip(v) && {
                    let v6 = v.l3 == L3::Ipv6;
                    set.contains(v6, v.src_ip) || set.contains(v6, v.dst_ip)
                }
            }
        }
    }

    /// Can differ between frames of one flow (see `Rule::depends_on_packet`).
    pub fn per_packet(&self) -> bool {
        matches!(
            self,
            Atom::Dscp(_)
                | Atom::Pcp(_)
                | Atom::Len(..)
                | Atom::TcpFlags(_)
                | Atom::IcmpType(_)
                | Atom::Fragment
                | Atom::Time { .. }
        )
    }
}

/// A parsed rule body. `And(vec![])` is true, `Or(vec![])` is false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    Atom(Atom),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// Conjunction, flattening nested `And`s so chains stay shallow.
    pub fn and(items: Vec<Expr>) -> Expr {
        let mut out = Vec::with_capacity(items.len());
        for e in items {
            match e {
                Expr::And(inner) => out.extend(inner),
                e => out.push(e),
            }
        }
        if out.len() == 1 {
            out.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::And(out)
        }
    }

    /// Disjunction, flattening nested `Or`s.
    pub fn or(items: Vec<Expr>) -> Expr {
        let mut out = Vec::with_capacity(items.len());
        for e in items {
            match e {
                Expr::Or(inner) => out.extend(inner),
                e => out.push(e),
            }
        }
        if out.len() == 1 {
            out.pop().unwrap_or(Expr::Or(Vec::new()))
        } else {
            Expr::Or(out)
        }
    }

    pub fn any_atom(&self, f: &dyn Fn(&Atom) -> bool) -> bool {
        match self {
            Expr::Atom(a) => f(a),
            Expr::And(xs) | Expr::Or(xs) => xs.iter().any(|x| x.any_atom(f)),
            Expr::Not(x) => x.any_atom(f),
        }
    }
}

/// An address as written in rules (IPv4 lives in the low 32 bits).
pub(crate) fn fmt_ip(v6: bool, addr: u128) -> String {
    if v6 {
        std::net::Ipv6Addr::from(addr).to_string()
    } else {
        std::net::Ipv4Addr::from(addr as u32).to_string()
    }
}

fn fmt_ranges(set: &RangeSet) -> String {
    set.ranges()
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn dir_word(d: Dir) -> &'static str {
    match d {
        Dir::Src => "src ",
        Dir::Dst => "dst ",
        Dir::Either => "",
    }
}

impl Atom {
    /// The test in the rule language's words (`dst port 443`, `domain *.example.com`), for
    /// `weir explain`.
    pub fn describe(&self) -> String {
        match self {
            Atom::Family(L3::Ipv4) => "ip".into(),
            Atom::Family(L3::Ipv6) => "ip6".into(),
            Atom::Family(L3::Arp) => "arp".into(),
            Atom::Family(L3::Other) => "not ip, ip6 or arp".into(),
            Atom::Proto(p) => format!("proto {p}"),
            Atom::Ports { dir, set } => format!("{}port {}", dir_word(*dir), fmt_ranges(set)),
            Atom::Net { dir, net } => {
                format!(
                    "{}net {}/{}",
                    dir_word(*dir),
                    fmt_ip(net.v6, net.addr),
                    net.prefix
                )
            }
            Atom::Dscp(d) => format!("dscp {d}"),
            Atom::Vlan(None) => "vlan".into(),
            Atom::Vlan(Some(id)) => format!("vlan {id}"),
            Atom::Pcp(p) => format!("pcp {p}"),
            Atom::Len(lo, hi) => format!("len {lo}-{hi}"),
            Atom::TcpFlags(m) => format!("tcp flags 0x{m:02x}"),
            Atom::IcmpType(t) => format!("icmp type {t}"),
            Atom::Fragment => "frag".into(),
            Atom::Name {
                source, pattern, ..
            } => {
                let kw = match source {
                    None => "domain",
                    Some(NameSource::Sni | NameSource::Quic) => "sni",
                    Some(NameSource::HttpHost) => "http_host",
                    Some(NameSource::Dns | NameSource::DnsCache) => "dns",
                };
                format!("{kw} {pattern}")
            }
            Atom::App { proto: Some(p), .. } => format!("payload is {}", p.as_str()),
            Atom::App { proto: None, .. } => "payload names no application (ports decide)".into(),
            Atom::Geo { key, .. } => key.describe(),
            Atom::Owner { test, .. } => test.describe(),
            Atom::Time { text, .. } => format!("time '{text}'"),
        }
    }

    /// What the frame (or its flow) has for this test: its ports, addresses, length, ...;
    /// `name` is the flow's server name and source, when known; `app` what its payload showed.
    pub fn value(&self, v: &FrameView, name: Option<(NameSource, &str)>, app: &str) -> String {
        let ip = |a: u128| fmt_ip(v.l3 == L3::Ipv6, a);
        match self {
            Atom::Family(_) => format!("{:?}", v.l3).to_lowercase(),
            Atom::Proto(_) if is_ip(v) => format!("proto {}", v.ip_proto),
            Atom::Ports { .. } if is_ip(v) && v.has_ports => {
                format!("src {} dst {}", v.src_port, v.dst_port)
            }
            Atom::Net { .. } if is_ip(v) => format!("src {} dst {}", ip(v.src_ip), ip(v.dst_ip)),
            Atom::Dscp(_) if is_ip(v) => format!("dscp {}", v.dscp),
            Atom::Vlan(_) | Atom::Pcp(_) => {
                let n = usize::from(v.vlan_count).min(v.vlan.len());
                let tags: Vec<String> = v.vlan[..n]
                    .iter()
                    .map(|t| format!("{} pcp {}", t.id, t.pcp))
                    .collect();
                if tags.is_empty() {
                    "untagged".into()
                } else {
                    format!("vlan {}", tags.join(", "))
                }
            }
            Atom::Len(..) => format!("len {}", v.len),
            Atom::TcpFlags(_) => format!("flags 0x{:02x}", v.tcp_flags),
            Atom::IcmpType(_) if v.has_icmp => format!("type {}", v.icmp_type),
            Atom::Fragment => if v.is_fragment {
                "a fragment"
            } else {
                "not a fragment"
            }
            .into(),
            Atom::Name { .. } => match name {
                Some((s, n)) => format!("{n} ({})", s.as_str()),
                None => "no name known".into(),
            },
            Atom::App { .. } => app.into(),
            Atom::Owner { .. } => "the owner of the flow's local socket, once found".into(),
            Atom::Time { .. } => "the local time of the frame".into(),
            Atom::Geo { set, .. } if is_ip(v) => {
                let v6 = v.l3 == L3::Ipv6;
                let side = |a: u128| {
                    if set.contains(v6, a) {
                        format!("{} (in it)", ip(a))
                    } else {
                        ip(a)
                    }
                };
                format!("src {} dst {}", side(v.src_ip), side(v.dst_ip))
            }
            _ => "not present".into(),
        }
    }
}
