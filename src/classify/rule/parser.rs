//! Recursive-descent parser: tokens to an [`Expr`].
//!
//! Guarantees: never panics; nesting (parentheses and `not`) is capped at [`MAX_DEPTH`] so neither
//! this parser nor the later passes can overflow the stack; every error carries the column and
//! length of the token (or list item) at fault, and a hint when there is a likely fix.
//!
//! Precedence: `not` > `and` (also implied by juxtaposition) > `or`. As in tcpdump, a protocol
//! keyword directly followed by a primitive it qualifies forms one unit: `tcp port 80`,
//! `udp src portrange 1-9`, `ip host 10.0.0.1`, `tcp flags syn`, `icmp type 8`. So
//! `not tcp port 80` is `not (tcp and port 80)`, which is what tcpdump users mean.

use super::app_table::{app_table, find_app, AppProto, Detect};
use super::ast::{fmt_ip, Atom, Dir, Expr, Net, RangeSet};
use super::lexer::{Cmp, Tok, Token};
use super::RuleError;
use crate::classify::geo::{GeoKey, GeoSet};
use crate::classify::owner::OwnerTest;
use crate::classify::payload::{NameSource, MAX_NAME};
use crate::wire::{ipproto, L3};

/// Deepest nesting of parentheses and `not` accepted.
pub(crate) const MAX_DEPTH: usize = 64;

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "arp",
    "proto",
    "port",
    "portrange",
    "src",
    "dst",
    "host",
    "net",
    "dscp",
    "vlan",
    "pcp",
    "len",
    "less",
    "greater",
    "app",
    "frag",
    "domain",
    "sni",
    "http_host",
    "dns",
    "country",
    "cc",
    "asn",
    "user",
    "uid",
    "pid",
    "cmd",
    "args",
    "cgroup",
    "time",
    "default",
];

pub(crate) struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Column just past the end of the text, for "found end of rule" errors.
    end_col: usize,
    /// The config's named sets of globs (`domain @NAME`); `None`: not checked here.
    sets: Option<Vec<String>>,
}

fn err(col: usize, len: usize, msg: impl Into<String>, hint: Option<String>) -> RuleError {
    RuleError {
        column: col,
        len: len.max(1),
        message: msg.into(),
        hint,
    }
}

fn lower(t: &Token) -> Option<String> {
    match &t.tok {
        Tok::Word(w) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment): `tpc` is one step
/// from `tcp`. Inputs are short words.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// Up to `max` candidates within a small edit distance of `word`, closest first.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>, max: usize) -> Vec<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit || (word.len() >= 2 && c.starts_with(word)))
        .collect();
    scored.sort();
    scored.into_iter().take(max).map(|(_, c)| c).collect()
}

fn did_you_mean(names: &[&str]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("did you mean `{one}`?")),
        many => Some(format!(
            "did you mean one of {}?",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

enum NumErr {
    NotANumber,
    OutOfRange,
}

/// Decimal (or `0x` hex) number no greater than `max`.
fn parse_num(text: &str, max: u64) -> Result<u64, NumErr> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumErr::NotANumber);
    }
    match u64::from_str_radix(digits, radix) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(NumErr::OutOfRange),
    }
}

use crate::wire::DSCP_NAMES;

const PROTO_NAMES: &[(&str, u8)] = &[
    ("icmp", ipproto::ICMP),
    ("igmp", 2),
    ("ipip", 4),
    ("tcp", ipproto::TCP),
    ("udp", ipproto::UDP),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmp6", ipproto::ICMPV6),
    ("icmpv6", ipproto::ICMPV6),
    ("ospf", 89),
    ("pim", 103),
    ("vrrp", 112),
    ("sctp", ipproto::SCTP),
    ("udplite", ipproto::UDPLITE),
];

const TCP_FLAGS: &[(&str, u8)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ece", 0x40),
    ("cwr", 0x80),
];

const ICMP4_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("unreachable", 3),
    ("redirect", 5),
    ("echo-request", 8),
    ("time-exceeded", 11),
];

const ICMP6_TYPES: &[(&str, u8)] = &[
    ("unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
];

fn lookup(table: &[(&'static str, u8)], name: &str) -> Option<u8> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Parse an IPv4 or IPv6 address into (is_v6, value).
fn parse_ip(s: &str) -> Option<(bool, u128)> {
    if let Ok(a) = s.parse::<std::net::Ipv4Addr>() {
        return Some((false, u128::from(u32::from(a))));
    }
    s.parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|a| (true, u128::from(a)))
}

/// A host-name glob as rules and sets take it (lower case already): letters, digits, `-`,
/// `_`, `.` and `*`, at most [`MAX_NAME`] characters. The error says what is wrong.
pub fn check_glob(pattern: &str) -> Result<(), String> {
    let bad = pattern
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*')));
    match bad {
        Some(c) => Err(format!("`{c}` cannot be part of a host name")),
        None if pattern.is_empty() => Err("the name is empty".to_string()),
        None if pattern.len() > MAX_NAME => {
            Err(format!("the name is longer than {MAX_NAME} characters"))
        }
        None => Ok(()),
    }
}

fn atom(a: Atom) -> Expr {
    Expr::Atom(a)
}

impl Parser {
    pub fn new(toks: Vec<Token>, text_chars: usize, sets: Option<Vec<String>>) -> Parser {
        Parser {
            toks,
            pos: 0,
            depth: 0,
            end_col: text_chars + 1,
            sets,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_kw(&self, k: usize) -> Option<String> {
        self.toks.get(self.pos + k).and_then(lower)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn end_err(&self, msg: String, hint: Option<String>) -> RuleError {
        err(self.end_col, 1, msg, hint)
    }

    /// The whole rule (not `default`, which the caller handles).
    pub fn parse_rule(&mut self) -> Result<Expr, RuleError> {
        let e = self.parse_or()?;
        if let Some(t) = self.peek() {
            return Err(match t.tok {
                Tok::RParen => err(
                    t.col,
                    t.len,
                    "unmatched `)`",
                    Some("remove it or add a matching `(`".into()),
                ),
                _ => err(
                    t.col,
                    t.len,
                    format!("unexpected `{}`", t.text()),
                    Some("join terms with `and` or `or`".into()),
                ),
            });
        }
        Ok(e)
    }

    fn is_or(t: &Token) -> bool {
        matches!(t.tok, Tok::OrOr) || lower(t).as_deref() == Some("or")
    }

    fn is_and(t: &Token) -> bool {
        matches!(t.tok, Tok::AndAnd) || lower(t).as_deref() == Some("and")
    }

    fn parse_or(&mut self) -> Result<Expr, RuleError> {
        let mut items = vec![self.parse_and(None)?];
        while let Some(t) = self.peek() {
            if !Self::is_or(t) {
                break;
            }
            let op = self.next();
            items.push(self.parse_and(op.as_ref())?);
        }
        Ok(Expr::or(items))
    }

    /// `and` chains, explicit or by juxtaposition: continue until `or`, `)` or the end.
    fn parse_and(&mut self, after: Option<&Token>) -> Result<Expr, RuleError> {
        let mut items = vec![self.parse_unary_after(after)?];
        while let Some(t) = self.peek() {
            if Self::is_or(t) || matches!(t.tok, Tok::RParen) {
                break;
            }
            let op = if Self::is_and(t) { self.next() } else { None };
            items.push(self.parse_unary_after(op.as_ref())?);
        }
        Ok(Expr::and(items))
    }

    /// A `not`, a parenthesised expression or a primitive. `after` is the operator just read,
    /// for "missing operand" messages.
    fn parse_unary_after(&mut self, after: Option<&Token>) -> Result<Expr, RuleError> {
        let Some(t) = self.next() else {
            let msg = match after {
                Some(op) => format!("expected a term after `{}`, found end of rule", op.text()),
                None => "expected a term, found end of rule".to_string(),
            };
            return Err(self.end_err(msg, None));
        };
        let kw = lower(&t);
        match (&t.tok, kw.as_deref()) {
            (Tok::Bang, _) | (_, Some("not")) => {
                self.enter(&t)?;
                let inner = self.parse_unary_after(Some(&t))?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            (Tok::LParen, _) => {
                self.enter(&t)?;
                if matches!(self.peek().map(|x| &x.tok), Some(Tok::RParen)) {
                    let r = self.next();
                    let (c, l) = r.map(|r| (r.col, r.len)).unwrap_or((t.col, 1));
                    return Err(err(c, l, "empty parentheses", None));
                }
                let inner = self.parse_or()?;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {}
                    Some(other) => {
                        return Err(err(
                            other.col,
                            other.len,
                            format!("expected `)`, found `{}`", other.text()),
                            None,
                        ))
                    }
                    None => {
                        return Err(err(
                            t.col,
                            1,
                            "unclosed `(`",
                            Some("add a matching `)`".into()),
                        ))
                    }
                }
                self.depth -= 1;
                Ok(inner)
            }
            (Tok::RParen, _) => Err(match after {
                Some(op) => err(
                    t.col,
                    t.len,
                    format!("expected a term after `{}`, found `)`", op.text()),
                    None,
                ),
                None => err(t.col, t.len, "expected a term, found `)`", None),
            }),
            (Tok::AndAnd | Tok::OrOr, _) | (_, Some("and" | "or")) => {
                let what = match after {
                    Some(op) => format!(
                        "expected a term after `{}`, found `{}`",
                        op.text(),
                        t.text()
                    ),
                    None => format!("expected a term before `{}`", t.text()),
                };
                Err(err(t.col, t.len, what, None))
            }
            (Tok::Cmp(_), _) => Err(err(
                t.col,
                t.len,
                format!("unexpected `{}`", t.text()),
                Some("comparisons go after `len`, e.g. `len < 128`".into()),
            )),
            (Tok::Word(_), Some(k)) => self.primitive(&t, k),
            _ => Err(err(
                t.col,
                t.len,
                format!("unexpected `{}`", t.text()),
                None,
            )),
        }
    }

    fn enter(&mut self, t: &Token) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                t.col,
                t.len,
                format!("rule nested too deeply (more than {MAX_DEPTH} levels of `(` and `not`)"),
                Some("simplify the rule".into()),
            ));
        }
        Ok(())
    }

    /// The next token must be a word (an operand of `what`); returns it and its lower-case text.
    fn operand(&mut self, what: &Token, expected: &str) -> Result<(Token, String), RuleError> {
        match self.next() {
            Some(t) => match lower(&t) {
                Some(k) => Ok((t, k)),
                None => Err(err(
                    t.col,
                    t.len,
                    format!(
                        "expected {expected} after `{}`, found `{}`",
                        what.text(),
                        t.text()
                    ),
                    None,
                )),
            },
            None => Err(self.end_err(
                format!(
                    "expected {expected} after `{}`, found end of rule",
                    what.text()
                ),
                None,
            )),
        }
    }

    /// A host-name glob after `domain`, `sni`, `http_host` or `dns`, bare or quoted.
    fn name_test(&mut self, t: &Token, source: Option<NameSource>) -> Result<Expr, RuleError> {
        let expected = "a host name or a glob such as `*.example.com`";
        let Some(o) = self.next() else {
            return Err(self.end_err(
                format!(
                    "expected {expected} after `{}`, found end of rule",
                    t.text()
                ),
                None,
            ));
        };
        let pattern = match &o.tok {
            Tok::Word(w) | Tok::Str(w) => w.to_ascii_lowercase(),
            _ => {
                return Err(err(
                    o.col,
                    o.len,
                    format!(
                        "expected {expected} after `{}`, found `{}`",
                        t.text(),
                        o.text()
                    ),
                    None,
                ))
            }
        };
        if let Some(set) = pattern.strip_prefix('@') {
            if let Some(sets) = &self.sets {
                if !sets.iter().any(|s| s == set) {
                    let near = nearest(set, sets.iter().map(String::as_str), 3);
                    return Err(err(
                        o.col,
                        o.len,
                        format!("unknown set `{}`", o.text()),
                        did_you_mean(&near).or_else(|| {
                            Some(
                                "define it in the config: sets: (NAME: [\"*.example.com\"])".into(),
                            )
                        }),
                    ));
                }
            }
            return Ok(atom(Atom::Name {
                source,
                pattern,
                bit: 0,
            }));
        }
        if let Err(what) = check_glob(&pattern) {
            return Err(err(
                o.col,
                o.len,
                format!("`{}` is not a host-name glob: {what}", o.text()),
                Some("letters, digits, `-`, `_`, `.` and `*` (any run of characters)".into()),
            ));
        }
        Ok(atom(Atom::Name {
            source,
            pattern,
            bit: 0,
        }))
    }

    /// `user NAME`, `uid N`, `pid N`, `cmd NAME`, `args GLOB`, `cgroup GLOB`: a word or a
    /// quoted string, its case kept.
    fn owner_test(&mut self, t: &Token, kw: &str) -> Result<Expr, RuleError> {
        let expected = match kw {
            "user" => "a user name",
            "uid" => "a user id",
            "pid" => "a process id",
            "cmd" => "a command name",
            "args" => "a glob over the command line, such as '*--port=8080*'",
            _ => "a glob over the cgroup path, such as '/system.slice/*'",
        };
        let Some(o) = self.next() else {
            return Err(self.end_err(
                format!(
                    "expected {expected} after `{}`, found end of rule",
                    t.text()
                ),
                None,
            ));
        };
        let text = match &o.tok {
            Tok::Word(w) | Tok::Str(w) if !w.is_empty() => w.clone(),
            _ => {
                return Err(err(
                    o.col,
                    o.len,
                    format!(
                        "expected {expected} after `{}`, found `{}`",
                        t.text(),
                        o.text()
                    ),
                    None,
                ))
            }
        };
        let number = || match parse_num(&text, u64::from(u32::MAX)) {
            Ok(n) => Ok(n as u32),
            Err(_) => Err(err(
                o.col,
                o.len,
                format!("`{}` is not {expected}", o.text()),
                Some(format!("give a number, 0 to {}", u32::MAX)),
            )),
        };
        let test = match kw {
            "user" => OwnerTest::User(text),
            "uid" => OwnerTest::Uid(number()?),
            "pid" => OwnerTest::Pid(number()?),
            "cmd" => OwnerTest::Cmd(text),
            "args" => OwnerTest::Args(text),
            _ => OwnerTest::Cgroup(text),
        };
        Ok(atom(Atom::Owner { test, bit: 0 }))
    }

    fn primitive(&mut self, t: &Token, kw: &str) -> Result<Expr, RuleError> {
        match kw {
            "user" | "uid" | "pid" | "cmd" | "args" | "cgroup" => self.owner_test(t, kw),
            "time" => {
                let expected = "a window such as 'Mon-Fri 08:00-18:00' (quoted)";
                let Some(o) = self.next() else {
                    return Err(self.end_err(
                        format!("expected {expected} after `time`, found end of rule"),
                        None,
                    ));
                };
                let text = match &o.tok {
                    Tok::Word(w) | Tok::Str(w) => w.clone(),
                    _ => {
                        return Err(err(
                            o.col,
                            o.len,
                            format!("expected {expected} after `time`, found `{}`", o.text()),
                            None,
                        ))
                    }
                };
                let window = crate::schedule::Window::parse(&text).map_err(|e| {
                    // A quoted window starts one column after its quote.
                    let quoted = usize::from(matches!(o.tok, Tok::Str(_)));
                    err(o.col + quoted + e.column - 1, 1, e.message, None)
                })?;
                Ok(atom(Atom::Time {
                    text,
                    window,
                    bit: 0,
                }))
            }
            "tcp" | "udp" | "sctp" => {
                let p = match kw {
                    "tcp" => ipproto::TCP,
                    "udp" => ipproto::UDP,
                    _ => ipproto::SCTP,
                };
                let base = atom(Atom::Proto(p));
                let next = self.peek_kw(0);
                let after = self.peek_kw(1);
                match (next.as_deref(), after.as_deref()) {
                    (Some("flags"), _) if p == ipproto::TCP => {
                        let f = self.next();
                        let flags = self.tcp_flags(f.as_ref().unwrap_or(t))?;
                        Ok(Expr::and(vec![base, atom(Atom::TcpFlags(flags))]))
                    }
                    (Some("port" | "portrange"), _)
                    | (Some("src" | "dst"), Some("port" | "portrange")) => {
                        let q = self.qualified()?;
                        Ok(Expr::and(vec![base, q]))
                    }
                    _ => Ok(base),
                }
            }
            "icmp" | "icmp6" | "icmpv6" => {
                let v6 = kw != "icmp";
                let base = Expr::and(vec![
                    atom(Atom::Family(if v6 { L3::Ipv6 } else { L3::Ipv4 })),
                    atom(Atom::Proto(if v6 {
                        ipproto::ICMPV6
                    } else {
                        ipproto::ICMP
                    })),
                ]);
                if self.peek_kw(0).as_deref() == Some("type") {
                    let ty_tok = self.next();
                    let ty = self.icmp_type(ty_tok.as_ref().unwrap_or(t), v6)?;
                    return Ok(Expr::and(vec![base, atom(Atom::IcmpType(ty))]));
                }
                Ok(base)
            }
            "ip" | "ip6" | "arp" => {
                let fam = match kw {
                    "ip" => L3::Ipv4,
                    "ip6" => L3::Ipv6,
                    _ => L3::Arp,
                };
                let base = atom(Atom::Family(fam));
                let binds = fam != L3::Arp
                    && matches!(
                        self.peek_kw(0).as_deref(),
                        Some("host" | "net" | "src" | "dst" | "proto")
                    );
                if binds {
                    let q = self.qualified()?;
                    return Ok(Expr::and(vec![base, q]));
                }
                Ok(base)
            }
            "proto" => {
                let (o, k) = self.operand(t, "a protocol number or name")?;
                let p = match parse_num(&k, 255) {
                    Ok(n) => n as u8,
                    Err(NumErr::OutOfRange) => {
                        return Err(err(
                            o.col,
                            o.len,
                            format!("protocol {k} is out of range (0-255)"),
                            None,
                        ))
                    }
                    Err(NumErr::NotANumber) => match lookup(PROTO_NAMES, &k) {
                        Some(n) => n,
                        None => {
                            let near = nearest(&k, PROTO_NAMES.iter().map(|(n, _)| *n), 3);
                            return Err(err(
                                o.col,
                                o.len,
                                format!("unknown protocol `{}`", o.text()),
                                did_you_mean(&near).or_else(|| {
                                    Some("give the IP protocol number, e.g. `proto 47`".into())
                                }),
                            ));
                        }
                    },
                };
                Ok(atom(Atom::Proto(p)))
            }
            "src" | "dst" | "port" | "portrange" | "host" | "net" => {
                self.pos -= 1;
                self.qualified()
            }
            "domain" | "sni" | "http_host" | "dns" => {
                let source = match kw {
                    "sni" => Some(NameSource::Sni),
                    "http_host" => Some(NameSource::HttpHost),
                    "dns" => Some(NameSource::Dns),
                    _ => None,
                };
                self.name_test(t, source)
            }
            "country" | "cc" => {
                let (o, k) = self.operand(t, "a two-letter country code")?;
                let code: [u8; 2] = match <[u8; 2]>::try_from(k.as_bytes()) {
                    Ok(c) if c.iter().all(u8::is_ascii_alphabetic) => c.map(|b| b.to_ascii_uppercase()),
                    _ => {
                        return Err(err(
                            o.col,
                            o.len,
                            format!("`{}` is not a country code", o.text()),
                            Some("use the two-letter ISO 3166 code, e.g. `country NZ`".into()),
                        ))
                    }
                };
                Ok(atom(Atom::Geo {
                    key: GeoKey::Country(code),
                    set: GeoSet::default(),
                }))
            }
            "asn" => {
                let (o, k) = self.operand(t, "an AS number")?;
                let digits = k.strip_prefix("as").unwrap_or(&k);
                let n = match parse_num(digits, u64::from(u32::MAX)) {
                    Ok(n) if !digits.starts_with("0x") => n as u32,
                    _ => {
                        return Err(err(
                            o.col,
                            o.len,
                            format!("`{}` is not an AS number", o.text()),
                            Some("give the number, 0 to 4294967295, e.g. `asn 64496`".into()),
                        ))
                    }
                };
                Ok(atom(Atom::Geo {
                    key: GeoKey::Asn(n),
                    set: GeoSet::default(),
                }))
            }
            "dscp" => {
                let (o, k) = self.operand(t, "a DSCP value (0-63) or name")?;
                let d = match parse_num(&k, 63) {
                    Ok(n) => n as u8,
                    Err(NumErr::OutOfRange) => {
                        return Err(err(
                            o.col,
                            o.len,
                            format!("DSCP {k} is out of range (0-63)"),
                            None,
                        ))
                    }
                    Err(NumErr::NotANumber) => match lookup(&DSCP_NAMES, &k) {
                        Some(d) => d,
                        None => {
                            let near = nearest(&k, DSCP_NAMES.iter().map(|(n, _)| *n), 3);
                            return Err(err(
                                o.col,
                                o.len,
                                format!("unknown DSCP name `{}`", o.text()),
                                did_you_mean(&near).or_else(|| {
                                    Some("use 0-63, be, le, cs0-cs7, af11-af43, ef or va".into())
                                }),
                            ));
                        }
                    },
                };
                Ok(atom(Atom::Dscp(d)))
            }
            "vlan" => {
                // Bare `vlan` (any tag) unless a number follows.
                let Some(n) = self.peek().cloned() else {
                    return Ok(atom(Atom::Vlan(None)));
                };
                let Some(k) = lower(&n) else {
                    return Ok(atom(Atom::Vlan(None)));
                };
                match parse_num(&k, 4095) {
                    Ok(id) => {
                        self.pos += 1;
                        Ok(atom(Atom::Vlan(Some(id as u16))))
                    }
                    Err(NumErr::OutOfRange) => Err(err(
                        n.col,
                        n.len,
                        format!("VLAN {k} is out of range (0-4095)"),
                        None,
                    )),
                    Err(NumErr::NotANumber) => Ok(atom(Atom::Vlan(None))),
                }
            }
            "pcp" => {
                let (o, k) = self.operand(t, "a PCP value (0-7)")?;
                let p = self.number(&o, &k, 7, "PCP", "a PCP value (0-7)", t)?;
                Ok(atom(Atom::Pcp(p as u8)))
            }
            "len" => {
                let op = match self.next() {
                    Some(Token {
                        tok: Tok::Cmp(c), ..
                    }) => c,
                    Some(o) => {
                        return Err(err(
                            o.col,
                            o.len,
                            format!(
                                "expected a comparison after `len`, found `{}`",
                                o.text()
                            ),
                            Some(format!("e.g. `len < {}` or `len >= 1000`", o.text())),
                        ))
                    }
                    None => {
                        return Err(self.end_err(
                            "expected a comparison after `len`, found end of rule".into(),
                            Some("e.g. `len < 128`".into()),
                        ))
                    }
                };
                let (o, k) = self.operand(t, "a length")?;
                let n = self.number(&o, &k, u64::from(u32::MAX), "length", "a length", t)? as u32;
                let a = |lo, hi| atom(Atom::Len(lo, hi));
                Ok(match op {
                    // `len < 0` can never hold: an empty range.
                    Cmp::Lt => match n.checked_sub(1) {
                        Some(m) => a(0, m),
                        None => a(1, 0),
                    },
                    Cmp::Le => a(0, n),
                    Cmp::Gt => match n.checked_add(1) {
                        Some(m) => a(m, u32::MAX),
                        None => a(1, 0),
                    },
                    Cmp::Ge => a(n, u32::MAX),
                    Cmp::Eq => a(n, n),
                    Cmp::Ne => Expr::Not(Box::new(a(n, n))),
                })
            }
            "less" | "greater" => {
                let (o, k) = self.operand(t, "a length")?;
                let n = self.number(&o, &k, u64::from(u32::MAX), "length", "a length", t)? as u32;
                Ok(atom(if kw == "less" {
                    Atom::Len(0, n)
                } else {
                    Atom::Len(n, u32::MAX)
                }))
            }
            "app" => {
                let (o, k) = self.operand(t, "an application name")?;
                let Some(app) = find_app(&k) else {
                    let near = nearest(&k, app_table().iter().map(|a| a.name), 3);
                    return Err(err(
                        o.col,
                        o.len,
                        format!("unknown application `{}`", o.text()),
                        did_you_mean(&near)
                            .or_else(|| Some("see docs/rules.md for the application table".into())),
                    ));
                };
                let set = RangeSet::from_ranges(
                    app.ports
                        .iter()
                        .map(|&(lo, hi)| (u32::from(lo), u32::from(hi)))
                        .collect(),
                );
                let on = |p: u8| {
                    Expr::and(vec![
                        atom(Atom::Proto(p)),
                        atom(Atom::Ports {
                            dir: Dir::Either,
                            set: set.clone(),
                        }),
                    ])
                };
                let by_ports = match app.proto {
                    AppProto::Tcp => on(ipproto::TCP),
                    AppProto::Udp => on(ipproto::UDP),
                    AppProto::Both => Expr::and(vec![
                        Expr::or(vec![
                            atom(Atom::Proto(ipproto::TCP)),
                            atom(Atom::Proto(ipproto::UDP)),
                        ]),
                        atom(Atom::Ports {
                            dir: Dir::Either,
                            set,
                        }),
                    ]),
                };
                // Bits are given when the classifier binds its flow tests.
                let seen = |proto| atom(Atom::App { proto, bit: u8::MAX });
                Ok(match app.detect {
                    Detect::Ports => by_ports,
                    Detect::Anywhere(p) => {
                        Expr::or(vec![seen(Some(p)), Expr::and(vec![seen(None), by_ports])])
                    }
                    Detect::OnPorts(p) => {
                        Expr::and(vec![Expr::or(vec![seen(Some(p)), seen(None)]), by_ports])
                    }
                    Detect::Only(p) => seen(Some(p)),
                })
            }
            "frag" | "fragment" => Ok(atom(Atom::Fragment)),
            "default" => Err(err(
                t.col,
                t.len,
                "`default` cannot be combined with other terms",
                Some("`default` must be the whole rule (the catch-all class); remove the other terms or drop `default`".into()),
            )),
            "flags" => Err(err(
                t.col,
                t.len,
                "`flags` must follow `tcp`",
                Some("e.g. `tcp flags syn`".into()),
            )),
            "type" => Err(err(
                t.col,
                t.len,
                "`type` must follow `icmp` or `icmp6`",
                Some("e.g. `icmp type echo-request`".into()),
            )),
            _ => Err(self.unknown(t, kw)),
        }
    }

    fn number(
        &self,
        o: &Token,
        k: &str,
        max: u64,
        noun: &str,
        expected: &str,
        after: &Token,
    ) -> Result<u64, RuleError> {
        match parse_num(k, max) {
            Ok(n) => Ok(n),
            Err(NumErr::OutOfRange) => Err(err(
                o.col,
                o.len,
                format!("{noun} {k} is out of range (0-{max})"),
                None,
            )),
            Err(NumErr::NotANumber) => Err(err(
                o.col,
                o.len,
                format!(
                    "expected {expected} after `{}`, found `{}`",
                    after.text(),
                    o.text()
                ),
                None,
            )),
        }
    }

    fn unknown(&self, t: &Token, kw: &str) -> RuleError {
        let text = t.text();
        if parse_ip(kw).is_some() || kw.contains('/') {
            return err(
                t.col,
                t.len,
                format!("unexpected address `{text}`"),
                Some(format!(
                    "did you mean `host {text}`, `src {text}` or `net {text}`?"
                )),
            );
        }
        if kw.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return err(
                t.col,
                t.len,
                format!("unexpected number `{text}`"),
                Some(format!("did you mean `port {text}`?")),
            );
        }
        if find_app(kw).is_some() {
            return err(
                t.col,
                t.len,
                format!("unknown keyword `{text}`"),
                Some(format!("did you mean `app {kw}`?")),
            );
        }
        let near = nearest(kw, KEYWORDS.iter().copied(), 1);
        err(
            t.col,
            t.len,
            format!("unknown keyword `{text}`"),
            did_you_mean(&near),
        )
    }

    /// `[src|dst] (port LIST | portrange LIST | host ADDR | net CIDR | ADDR | CIDR)` and
    /// `proto N` (after `ip`/`ip6`).
    fn qualified(&mut self) -> Result<Expr, RuleError> {
        let Some(first) = self.next() else {
            return Err(self.end_err("expected a term, found end of rule".into(), None));
        };
        let k = lower(&first).unwrap_or_default();
        if k == "proto" {
            return self.primitive(&first, "proto");
        }
        let (dir, kind_tok, kind) = match k.as_str() {
            "src" | "dst" => {
                let dir = if k == "src" { Dir::Src } else { Dir::Dst };
                let (nt, nk) =
                    self.operand(&first, "`port`, `portrange`, `host`, `net` or an address")?;
                (dir, nt, nk)
            }
            _ => (Dir::Either, first.clone(), k),
        };
        match kind.as_str() {
            "port" | "portrange" => {
                let (o, _) = self.operand(&kind_tok, "a port number")?;
                let set = self.port_list(&kind_tok, &o)?;
                Ok(atom(Atom::Ports { dir, set }))
            }
            "host" => {
                let (o, k) = self.operand(&kind_tok, "an IP address")?;
                if k.contains('/') {
                    return Err(err(
                        o.col,
                        o.len,
                        format!("`host` takes a single address, found `{}`", o.text()),
                        Some(format!("did you mean `net {}`?", o.text())),
                    ));
                }
                let net = self.cidr(&kind_tok, &o, &k)?;
                Ok(atom(Atom::Net { dir, net }))
            }
            "net" => {
                let (o, k) = self.operand(&kind_tok, "a network (CIDR)")?;
                let net = self.cidr(&kind_tok, &o, &k)?;
                Ok(atom(Atom::Net { dir, net }))
            }
            _ if dir != Dir::Either && (parse_ip(&kind).is_some() || kind.contains('/')) => {
                let net = self.cidr(&first, &kind_tok, &kind)?;
                Ok(atom(Atom::Net { dir, net }))
            }
            _ => Err(err(
                kind_tok.col,
                kind_tok.len,
                format!(
                    "expected `port`, `portrange`, `host`, `net` or an address after `{}`, found `{}`",
                    first.text(),
                    kind_tok.text()
                ),
                None,
            )),
        }
    }

    /// `ADDR` or `ADDR/PREFIX`; a bare address is a host (full-length prefix).
    fn cidr(&self, after: &Token, o: &Token, k: &str) -> Result<Net, RuleError> {
        let (addr_s, prefix_s) = match k.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (k, None),
        };
        let Some((v6, addr)) = parse_ip(addr_s) else {
            return Err(err(
                o.col,
                o.len,
                format!(
                    "expected an IP address after `{}`, found `{}`",
                    after.text(),
                    o.text()
                ),
                None,
            ));
        };
        let bits: u64 = if v6 { 128 } else { 32 };
        let prefix = match prefix_s {
            None => bits as u8,
            Some(p) => match parse_num(p, bits) {
                Ok(n) => n as u8,
                Err(_) => {
                    let pcol = o.col + addr_s.chars().count() + 1;
                    return Err(err(
                        pcol,
                        p.chars().count(),
                        format!("prefix length `{p}` is not a number in 0-{bits}"),
                        None,
                    ));
                }
            },
        };
        let net = Net::new(v6, addr, prefix);
        if net.addr != addr {
            let fixed = format!("{}/{prefix}", fmt_ip(v6, net.addr));
            return Err(err(
                o.col,
                o.len,
                format!("{} has host bits set", o.text()),
                Some(format!(
                    "did you mean {fixed}? (for one host, use `host {addr_s}`)"
                )),
            ));
        }
        Ok(net)
    }

    /// `80`, `80,443`, `8000-8010`, `80,8000-8010`; errors point at the offending item.
    fn port_list(&self, kw: &Token, o: &Token) -> Result<RangeSet, RuleError> {
        let text = o.text();
        let mut ranges = Vec::new();
        let mut offset = 0usize; // in chars, from the start of the word
        for item in text.split(',') {
            let icol = o.col + offset;
            let ilen = item.chars().count();
            offset += ilen + 1;
            if item.is_empty() {
                return Err(err(
                    icol,
                    1,
                    "empty item in port list",
                    Some("write items separated by single commas, e.g. `80,443`".into()),
                ));
            }
            let one = |s: &str, scol: usize| -> Result<u16, RuleError> {
                let slen = s.chars().count();
                match parse_num(s, 65535) {
                    Ok(n) => Ok(n as u16),
                    Err(NumErr::OutOfRange) => Err(err(
                        scol,
                        slen,
                        format!("port {s} is out of range (0-65535)"),
                        None,
                    )),
                    Err(NumErr::NotANumber) => {
                        let low = s.to_ascii_lowercase();
                        let hint = if find_app(&low).is_some() {
                            Some(format!("did you mean `app {low}`?"))
                        } else {
                            Some("ports are numbers 0-65535; see `app` for named services".into())
                        };
                        Err(err(
                            scol,
                            slen,
                            format!("expected a port number after `{}`, found `{s}`", kw.text()),
                            hint,
                        ))
                    }
                }
            };
            match item.split_once('-') {
                Some((a, b)) if !a.is_empty() => {
                    let lo = one(a, icol)?;
                    let hi = one(b, icol + a.chars().count() + 1)?;
                    if lo > hi {
                        return Err(err(
                            icol,
                            ilen,
                            format!("port range {lo}-{hi} is reversed"),
                            Some(format!("did you mean {hi}-{lo}?")),
                        ));
                    }
                    ranges.push((u32::from(lo), u32::from(hi)));
                }
                _ => {
                    let p = one(item, icol)?;
                    ranges.push((u32::from(p), u32::from(p)));
                }
            }
        }
        Ok(RangeSet::from_ranges(ranges))
    }

    /// After `tcp flags`: `syn`, `syn,ack` (all must be set).
    fn tcp_flags(&mut self, flags_tok: &Token) -> Result<u8, RuleError> {
        let (o, k) = self.operand(flags_tok, "TCP flag names")?;
        let mut mask = 0u8;
        let mut offset = 0usize;
        for item in k.split(',') {
            let icol = o.col + offset;
            let ilen = item.chars().count();
            offset += ilen + 1;
            match lookup(TCP_FLAGS, item) {
                Some(b) => mask |= b,
                None => {
                    let near = nearest(item, TCP_FLAGS.iter().map(|(n, _)| *n), 2);
                    return Err(err(
                        icol,
                        ilen,
                        if item.is_empty() {
                            "empty item in flag list".to_string()
                        } else {
                            format!("unknown TCP flag `{item}`")
                        },
                        did_you_mean(&near).or_else(|| {
                            Some("flags are fin, syn, rst, psh, ack, urg, ece, cwr".into())
                        }),
                    ));
                }
            }
        }
        Ok(mask)
    }

    /// After `icmp type` / `icmp6 type`: a number or a name.
    fn icmp_type(&mut self, type_tok: &Token, v6: bool) -> Result<u8, RuleError> {
        let (o, k) = self.operand(type_tok, "an ICMP type")?;
        let table = if v6 { ICMP6_TYPES } else { ICMP4_TYPES };
        match parse_num(&k, 255) {
            Ok(n) => Ok(n as u8),
            Err(NumErr::OutOfRange) => Err(err(
                o.col,
                o.len,
                format!("ICMP type {k} is out of range (0-255)"),
                None,
            )),
            Err(NumErr::NotANumber) => lookup(table, &k).ok_or_else(|| {
                let near = nearest(&k, table.iter().map(|(n, _)| *n), 3);
                err(
                    o.col,
                    o.len,
                    format!("unknown ICMP type `{}`", o.text()),
                    did_you_mean(&near),
                )
            }),
        }
    }
}
