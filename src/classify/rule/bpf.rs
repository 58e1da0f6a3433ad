//! Rules as classic BPF socket filters: the kernel's test of which receive ring a frame goes to
//! (the express lane, docs/architecture.md). Two sockets on a port get two programs from the
//! same rules, one accepting what the rules match and one the rest, so that every frame reaches
//! exactly one of them: the filters never read past a frame (each load is guarded by its
//! length, where an unguarded one would drop the frame from both), and a frame they cannot read
//! (truncated, not IP) is simply "not matched".
//!
//! What compiles: `ip`/`ip6`, protocols, ports, hosts and networks, `dscp`, ICMP types, and
//! `and`/`or`/`not` of them: tests that are the same for every frame of a flow (DSCP and ICMP
//! type are in practice), so that a flow never has frames in both rings and cannot be
//! reordered. The rest (lengths, TCP flags, fragments, VLAN tags, names, applications,
//! owners, countries, times) does not, and says so.
//!
//! The filter reads the frame as weir's parser does, with two simplifications that only move
//! frames between rings, never lose them: it reads up to two VLAN tags (an offloaded tag is not
//! in the frame at all), and for IPv6 only the first next header (frames with extension headers
//! before their ports are "not matched" by port tests).
//!
//! Layout: a prologue leaves in scratch memory the ethertype (M0), the L4 offset (M1), the IP
//! protocol (M2, 256 when not IP), the IPv4 fragment offset (M3), the L3 offset (M4) and the
//! frame length (M6); then one block per rule node, in the order of the rule's program (whose
//! successors are always lower indices: every jump is forward); then accept and reject.

use super::ast::{Atom, Dir, Net};
use super::{Insn, Rule, ACCEPT, REJECT};
use crate::wire::L3;

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Instruction classes and modes (include/uapi/linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const ADD: u16 = 0x00;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const K: u16 = 0x00;
const X: u16 = 0x08;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// Scratch memory slots the prologue fills.
const M_ETHERTYPE: u32 = 0;
const M_L4: u32 = 1;
const M_PROTO: u32 = 2;
const M_FRAG: u32 = 3;
const M_L3: u32 = 4;
const M_LEN: u32 = 6;
/// "Not IP" in M_PROTO (no protocol number is this large).
const NOT_IP: u32 = 256;

/// The kernel's limit on a classic program's length.
pub const MAX_INSNS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

/// An instruction and, for a jump, where it goes: (if true, if false) or always.
type Placed = (BpfInsn, Option<(Label, Label)>, Option<Label>);

/// A forward-only assembler: jumps name labels, bound later; `finish` computes the offsets.
#[derive(Default)]
struct Asm {
    code: Vec<Placed>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }

    fn op(&mut self, code: u16, k: u32) {
        let i = BpfInsn {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        self.code.push((i, None, None));
    }

    /// `if A <op> k (or X) goto t else goto f`.
    fn jump(&mut self, code: u16, k: u32, t: Label, f: Label) {
        let i = BpfInsn {
            code: JMP | code,
            jt: 0,
            jf: 0,
            k,
        };
        self.code.push((i, Some((t, f)), None));
    }

    fn goto(&mut self, l: Label) {
        let i = BpfInsn {
            code: JMP | JA,
            jt: 0,
            jf: 0,
            k: 0,
        };
        self.code.push((i, None, Some(l)));
    }

    fn finish(self) -> Result<Vec<BpfInsn>, String> {
        let at = |l: Label| self.labels[l.0].expect("every label is bound");
        let mut out = Vec::with_capacity(self.code.len());
        for (n, (mut i, cond, ja)) in self.code.iter().copied().enumerate() {
            if let Some((t, f)) = cond {
                let off = |l: Label| {
                    at(l)
                        .checked_sub(n + 1)
                        .and_then(|d| u8::try_from(d).ok())
                        .ok_or("the rules are too large for a kernel filter (a jump past 255)")
                };
                i.jt = off(t)?;
                i.jf = off(f)?;
            }
            if let Some(l) = ja {
                i.k = u32::try_from(at(l) - (n + 1)).map_err(|_| "program too large")?;
            }
            out.push(i);
        }
        if out.len() > MAX_INSNS {
            return Err(format!(
                "the rules make a filter of {} instructions; the kernel takes {MAX_INSNS}",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// A filter accepting the frames that match any of `rules` (`matched = true`) or the frames
/// that match none of them (`matched = false`). An error names the first test that does not
/// compile, or says the program is too large.
pub fn filter(rules: &[&Rule], matched: bool) -> Result<Vec<BpfInsn>, String> {
    filter_with(rules, false, matched)
}

/// [`filter`], where `control` adds the link's control frames to what matches: ARP, LLDP,
/// LACP and other slow protocols, PPPoE discovery, IPv6 neighbour discovery (ICMPv6 133-137):
/// what weir's control class takes, and what a link needs under overload.
pub fn filter_with(rules: &[&Rule], control: bool, matched: bool) -> Result<Vec<BpfInsn>, String> {
    let mut a = Asm::default();
    let (yes, no) = (a.label(), a.label());
    let (on_match, on_miss) = if matched { (yes, no) } else { (no, yes) };
    prologue(&mut a);
    if control {
        let rules_start = a.label();
        a.op(LD | MEM, M_ETHERTYPE);
        for et in [0x0806, 0x88cc, 0x8809, 0x8863] {
            let next = a.label();
            a.jump(JEQ | K, et, on_match, next);
            a.bind(next);
        }
        let (icmp6, read, low) = (a.label(), a.label(), a.label());
        a.op(LD | MEM, M_PROTO);
        a.jump(JEQ | K, 58, icmp6, rules_start);
        a.bind(icmp6);
        fits(&mut a, M_L4, 1, read, rules_start);
        a.bind(read);
        a.op(LD | B | IND, 0);
        a.jump(JGE | K, 133, low, rules_start);
        a.bind(low);
        a.jump(JGT | K, 137, rules_start, on_match);
        a.bind(rules_start);
    }
    for (r, rule) in rules.iter().enumerate() {
        let next = if r + 1 == rules.len() {
            on_miss
        } else {
            a.label()
        };
        if rule.default {
            a.goto(on_match);
        } else {
            node_blocks(&mut a, rule, on_match, next)?;
        }
        if next != on_miss {
            a.bind(next);
        }
    }
    if rules.is_empty() {
        a.goto(on_miss);
    }
    a.bind(yes);
    a.op(RET | K, u32::MAX);
    a.bind(no);
    a.op(RET | K, 0);
    a.finish()
}

/// The blocks of `rule`'s program reachable from its entry, highest index first.
fn node_blocks(a: &mut Asm, rule: &Rule, on_match: Label, on_miss: Label) -> Result<(), String> {
    let prog: &[Insn] = &rule.prog;
    let mut reachable = vec![false; prog.len()];
    if let Some(r) = reachable.get_mut(rule.entry as usize) {
        *r = true;
    }
    for i in (0..prog.len()).rev() {
        if reachable[i] {
            for j in [prog[i].jt, prog[i].jf] {
                if let Some(r) = reachable.get_mut(j as usize) {
                    *r = true;
                }
            }
        }
    }
    let labels: Vec<Label> = (0..prog.len()).map(|_| a.label()).collect();
    let target = |j: u32| match j {
        ACCEPT => on_match,
        REJECT => on_miss,
        j => labels[j as usize],
    };
    // Entry first (a rule whose entry is a verdict has no node to run).
    match rule.entry {
        ACCEPT | REJECT => a.goto(target(rule.entry)),
        e => a.goto(labels[e as usize]),
    }
    for i in (0..prog.len()).rev().filter(|&i| reachable[i]) {
        a.bind(labels[i]);
        atom(a, &prog[i].atom, target(prog[i].jt), target(prog[i].jf))?;
    }
    Ok(())
}

fn prologue(a: &mut Asm) {
    let (tag1, tag2, l3, v4, v6, non_ip, body) = (
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
    );
    let (untagged, one_tag, check_v6) = (a.label(), a.label(), a.label());
    // Every slot is written before any path reads it: the kernel refuses a program that may
    // read one that was not.
    a.op(LD | IMM, 0);
    a.op(ST, M_ETHERTYPE);
    a.op(ST, M_L3);
    a.op(LD | W | LEN, 0);
    a.op(ST, M_LEN);
    // Too short for an Ethernet header: not IP.
    a.jump(JGE | K, 14, untagged, non_ip);
    a.bind(untagged);
    a.op(LD | H | ABS, 12);
    is_vlan(a, tag1, l3, 14);
    // One tag: the ethertype after it (if the frame holds it).
    a.bind(tag1);
    a.op(LD | MEM, M_LEN);
    let (t1_ok, t2_ok) = (a.label(), a.label());
    a.jump(JGE | K, 18, t1_ok, non_ip);
    a.bind(t1_ok);
    a.op(LD | H | ABS, 16);
    is_vlan(a, tag2, one_tag, 18);
    a.bind(one_tag);
    a.goto(l3);
    a.bind(tag2);
    a.op(LD | MEM, M_LEN);
    a.jump(JGE | K, 22, t2_ok, non_ip);
    a.bind(t2_ok);
    a.op(LD | H | ABS, 20);
    a.op(LDX | W | IMM, 22);
    // A: the ethertype, X: where L3 starts.
    a.bind(l3);
    a.op(ST, M_ETHERTYPE);
    a.op(STX, M_L3);
    a.jump(JEQ | K, 0x0800, v4, check_v6);
    a.bind(check_v6);
    a.jump(JEQ | K, 0x86dd, v6, non_ip);
    // IPv4: a whole header of version 4, else not IP.
    a.bind(v4);
    ip_header(a, 20, 4, non_ip);
    a.op(LD | B | IND, 9);
    a.op(ST, M_PROTO);
    a.op(LD | H | IND, 6);
    a.op(ALU | AND | K, 0x1fff);
    a.op(ST, M_FRAG);
    a.op(LD | B | IND, 0);
    a.op(ALU | AND | K, 0x0f);
    a.op(ALU | LSH | K, 2);
    a.op(ALU | ADD | X, 0);
    a.op(ST, M_L4);
    a.goto(body);
    // IPv6: a whole header of version 6.
    a.bind(v6);
    ip_header(a, 40, 6, non_ip);
    a.op(LD | B | IND, 6);
    a.op(ST, M_PROTO);
    a.op(LD | IMM, 0);
    a.op(ST, M_FRAG);
    a.op(MISC | TXA, 0);
    a.op(ALU | ADD | K, 40);
    a.op(ST, M_L4);
    a.goto(body);
    a.bind(non_ip);
    a.op(LD | IMM, NOT_IP);
    a.op(ST, M_PROTO);
    a.op(LD | IMM, 0);
    a.op(ST, M_L4);
    a.op(ST, M_FRAG);
    a.bind(body);
}

/// With the ethertype in A: a VLAN tag goes to `tag`, else to `other` with X = `l3_at` (A
/// kept).
fn is_vlan(a: &mut Asm, tag: Label, other: Label, l3_at: u32) {
    let (q, ad, old, no) = (a.label(), a.label(), a.label(), a.label());
    a.jump(JEQ | K, 0x8100, tag, q);
    a.bind(q);
    a.jump(JEQ | K, 0x88a8, tag, ad);
    a.bind(ad);
    a.jump(JEQ | K, 0x9100, tag, old);
    a.bind(old);
    a.goto(no);
    a.bind(no);
    a.op(LDX | W | IMM, l3_at);
    a.goto(other);
}

/// The frame holds `n` bytes from the offset in scratch slot `at` (`M_L3` or `M_L4`): then X is
/// that offset (A clobbered).
/// Go on (X = where L3 starts) when a whole IP header of `len` bytes and `version` is there,
/// else to `no`.
fn ip_header(a: &mut Asm, len: u32, version: u32, no: Label) {
    let (long, ok) = (a.label(), a.label());
    fits(a, M_L3, len, long, no);
    a.bind(long);
    a.op(LD | B | IND, 0);
    a.op(RSH | ALU | K, 4);
    a.jump(JEQ | K, version, ok, no);
    a.bind(ok);
}

fn fits(a: &mut Asm, at: u32, n: u32, yes: Label, no: Label) {
    // A = offset + n; more than the length: it does not fit.
    a.op(LD | MEM, at);
    a.op(ALU | ADD | K, n);
    a.op(LDX | MEM, M_LEN);
    let back = a.label();
    a.jump(JGT | X, 0, no, back);
    a.bind(back);
    a.op(LDX | MEM, at);
    a.goto(yes);
}

fn is_family(a: &mut Asm, v6: bool, yes: Label, no: Label) {
    // Not IP leaves M_PROTO at NOT_IP whatever the ethertype said.
    let ip = a.label();
    a.op(LD | MEM, M_PROTO);
    a.jump(JEQ | K, NOT_IP, no, ip);
    a.bind(ip);
    a.op(LD | MEM, M_ETHERTYPE);
    a.jump(JEQ | K, if v6 { 0x86dd } else { 0x0800 }, yes, no);
}

fn atom(a: &mut Asm, atom: &Atom, t: Label, f: Label) -> Result<(), String> {
    match atom {
        Atom::Family(L3::Ipv4) => is_family(a, false, t, f),
        Atom::Family(L3::Ipv6) => is_family(a, true, t, f),
        Atom::Family(_) => return Err("a test of a non-IP family".into()),
        Atom::Proto(p) => {
            a.op(LD | MEM, M_PROTO);
            a.jump(JEQ | K, u32::from(*p), t, f);
        }
        Atom::Ports { dir, set } => {
            // TCP, UDP, UDP-Lite or SCTP, not a later fragment, the ports in the frame.
            let (proto_ok, first, read) = (a.label(), a.label(), a.label());
            let protos = [6u32, 17, 136, 132];
            a.op(LD | MEM, M_PROTO);
            for (n, p) in protos.iter().enumerate() {
                let next = if n + 1 == protos.len() { f } else { a.label() };
                a.jump(JEQ | K, *p, proto_ok, next);
                if next != f {
                    a.bind(next);
                }
            }
            a.bind(proto_ok);
            a.op(LD | MEM, M_FRAG);
            a.jump(JEQ | K, 0, first, f);
            a.bind(first);
            fits(a, M_L4, 4, read, f);
            a.bind(read);
            match dir {
                Dir::Src => port_in(a, 0, set.ranges(), t, f),
                Dir::Dst => port_in(a, 2, set.ranges(), t, f),
                Dir::Either => {
                    let other = a.label();
                    port_in(a, 0, set.ranges(), t, other);
                    a.bind(other);
                    port_in(a, 2, set.ranges(), t, f);
                }
            }
        }
        Atom::Net { dir, net } => {
            let (fam, ok) = (a.label(), a.label());
            is_family(a, net.v6, fam, f);
            a.bind(fam);
            let hdr = if net.v6 { 40 } else { 20 };
            fits(a, M_L3, hdr, ok, f);
            a.bind(ok);
            let (src, dst) = if net.v6 { (8, 24) } else { (12, 16) };
            match dir {
                Dir::Src => net_is(a, net, src, t, f),
                Dir::Dst => net_is(a, net, dst, t, f),
                Dir::Either => {
                    let other = a.label();
                    net_is(a, net, src, t, other);
                    a.bind(other);
                    net_is(a, net, dst, t, f);
                }
            }
        }
        Atom::Dscp(d) => {
            let (v4, not_v4, v6) = (a.label(), a.label(), a.label());
            is_family(a, false, v4, not_v4);
            a.bind(v4);
            a.op(LDX | MEM, M_L3);
            a.op(LD | B | IND, 1);
            a.op(ALU | RSH | K, 2);
            a.jump(JEQ | K, u32::from(*d), t, f);
            a.bind(not_v4);
            is_family(a, true, v6, f);
            a.bind(v6);
            a.op(LDX | MEM, M_L3);
            a.op(LD | H | IND, 0);
            a.op(ALU | RSH | K, 6);
            a.op(ALU | AND | K, 0x3f);
            a.jump(JEQ | K, u32::from(*d), t, f);
        }
        Atom::IcmpType(ty) => {
            let (icmp, first, read) = (a.label(), a.label(), a.label());
            let v4 = a.label();
            a.op(LD | MEM, M_PROTO);
            a.jump(JEQ | K, 1, icmp, v4);
            a.bind(v4);
            a.jump(JEQ | K, 58, icmp, f);
            a.bind(icmp);
            a.op(LD | MEM, M_FRAG);
            a.jump(JEQ | K, 0, first, f);
            a.bind(first);
            fits(a, M_L4, 2, read, f);
            a.bind(read);
            a.op(LD | B | IND, 0);
            a.jump(JEQ | K, u32::from(*ty), t, f);
        }
        other => {
            return Err(format!(
                "`{}` cannot be tested by a kernel filter",
                name(other)
            ))
        }
    }
    Ok(())
}

/// With X at L4: the 16-bit port at `at` is in one of `ranges`.
fn port_in(a: &mut Asm, at: u32, ranges: &[(u32, u32)], t: Label, f: Label) {
    a.op(LD | H | IND, at);
    for (n, &(lo, hi)) in ranges.iter().enumerate() {
        let next = if n + 1 == ranges.len() { f } else { a.label() };
        let above_lo = a.label();
        a.jump(JGE | K, lo, above_lo, next);
        a.bind(above_lo);
        a.jump(JGT | K, hi, next, t);
        if next != f {
            a.bind(next);
        }
    }
    if ranges.is_empty() {
        a.goto(f);
    }
}

/// With X at L3 and the header in the frame: the address at `at` is in `net`.
fn net_is(a: &mut Asm, net: &Net, at: u32, t: Label, f: Label) {
    let words: Vec<(u32, u32)> = if net.v6 {
        (0..4)
            .map(|w| {
                let shift = 96 - 32 * w;
                ((net.addr >> shift) as u32, (net.mask >> shift) as u32)
            })
            .collect()
    } else {
        vec![(net.addr as u32, net.mask as u32)]
    };
    for (w, (addr, mask)) in words.iter().enumerate() {
        if *mask == 0 {
            continue;
        }
        let next = a.label();
        a.op(LD | W | IND, at + 4 * w as u32);
        if *mask != u32::MAX {
            a.op(ALU | AND | K, *mask);
        }
        a.jump(JEQ | K, *addr, next, f);
        a.bind(next);
    }
    a.goto(t);
}

fn name(atom: &Atom) -> &'static str {
    match atom {
        Atom::Vlan(_) => "vlan",
        Atom::Pcp(_) => "pcp",
        Atom::Len(..) => "len",
        Atom::TcpFlags(_) => "tcp flags",
        Atom::Fragment => "fragment",
        Atom::Name { .. } => "a name test",
        Atom::App { .. } => "app",
        Atom::Geo { .. } => "a country or AS test",
        Atom::Owner { .. } => "an owner test (user, cmd, ...)",
        Atom::Time { .. } => "time",
        _ => "this test",
    }
}

/// Run `prog` on `frame` as the kernel does (for tests): the bytes kept, 0 for dropped; a
/// load past the frame's end drops it.
pub fn run(prog: &[BpfInsn], frame: &[u8]) -> u32 {
    let (mut acc, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    let load = |off: u32, size: usize| -> Option<u32> {
        let off = off as usize;
        let b = frame.get(off..off.checked_add(size)?)?;
        Some(b.iter().fold(0u32, |v, &x| v << 8 | u32::from(x)))
    };
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let class = i.code & 0x07;
        match class {
            LD | LDX => {
                let size = match i.code & 0x18 {
                    W => 4,
                    H => 2,
                    _ => 1,
                };
                let v = match i.code & 0xe0 {
                    IMM => Some(i.k),
                    ABS => load(i.k, size),
                    IND => load(x.wrapping_add(i.k), size),
                    MEM => Some(mem[i.k as usize & 15]),
                    LEN => Some(frame.len() as u32),
                    _ => None,
                };
                let Some(v) = v else { return 0 };
                if class == LD {
                    acc = v;
                } else {
                    x = v;
                }
            }
            ST => mem[i.k as usize & 15] = acc,
            STX => mem[i.k as usize & 15] = x,
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                acc = match i.code & 0xf0 {
                    ADD => acc.wrapping_add(v),
                    AND => acc & v,
                    LSH => acc.wrapping_shl(v),
                    RSH => acc.wrapping_shr(v),
                    _ => return 0,
                };
            }
            JMP => {
                let v = if i.code & X != 0 { x } else { i.k };
                let taken = match i.code & 0xf0 {
                    JA => {
                        pc += i.k as usize;
                        continue;
                    }
                    JEQ => acc == v,
                    JGT => acc > v,
                    JGE => acc >= v,
                    _ => return 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET => return i.k,
            MISC => {
                if i.code & 0xf8 == TXA {
                    acc = x;
                } else if i.code & 0xf8 == TAX {
                    x = acc;
                }
            }
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RULES: &[&str] = &[
        "dscp ef",
        "icmp or icmp6",
        "udp port 53 or tcp port 53",
        "tcp dst port 22 and not src net 198.18.0.0/16",
        "udp port 5060-5090 or udp port 10000-20000",
        "host 198.18.0.2",
        "net 2001:db8::/32 and tcp",
        "src host 2001:db8::1",
        "ip and dscp 46 or ip6 and dscp 34",
        "icmp type 8",
        "not (tcp or udp)",
        "proto 47",
    ];

    fn rule(src: &str) -> Rule {
        Rule::parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"))
    }

    /// A frame of the shapes the filter reads exactly: untagged or with one or two tags,
    /// IPv4 (options or not) or IPv6 without extension headers, TCP, UDP, ICMP or other.
    fn frame() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..3,
            any::<bool>(),
            0u8..64,
            prop::sample::select(vec![1u8, 6, 17, 47, 58, 132]),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>(),
            any::<bool>(),
            0u8..3,
            0u16..3,
        )
            .prop_map(
                |(tags, v6, dscp, proto, host, sport, dport, ours, opts, frag)| {
                    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
                    for t in 0..tags {
                        f.extend_from_slice(&[0x81, 0x00, 0, 10 + t as u8]);
                    }
                    let (a, b) = if ours {
                        ([198, 18, 0, 2], [198, 18, 0, 1])
                    } else {
                        (host, [10, 0, 0, 1])
                    };
                    let l4 = [sport.to_be_bytes(), dport.to_be_bytes(), [8, 0], [0, 0]].concat();
                    if v6 {
                        f.extend_from_slice(&[0x86, 0xdd]);
                        let tc = dscp << 2;
                        f.extend_from_slice(&[0x60 | tc >> 4, tc << 4, 0, 0, 0, 8, proto, 64]);
                        let mut src = vec![0x20, 0x01, 0x0d, 0xb8];
                        src.extend_from_slice(&[0; 8]);
                        src.extend_from_slice(&a);
                        f.extend_from_slice(&src);
                        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                        f.extend_from_slice(&b);
                    } else {
                        f.extend_from_slice(&[0x08, 0x00]);
                        let words = 5 + opts;
                        let frag_field = [0u16, 0x2000, 0x0010][usize::from(frag)].to_be_bytes();
                        f.extend_from_slice(&[0x40 | words, dscp << 2, 0, 28, 0, 1]);
                        f.extend_from_slice(&frag_field);
                        f.extend_from_slice(&[64, proto, 0, 0]);
                        f.extend_from_slice(&a);
                        f.extend_from_slice(&b);
                        f.extend(std::iter::repeat_n(1u8, usize::from(opts) * 4));
                    }
                    f.extend_from_slice(&l4);
                    f
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// On the frames it reads exactly, the filter says what the rule says.
        #[test]
        fn the_filter_agrees_with_the_rule(f in frame(), r in 0..RULES.len()) {
            let rule = rule(RULES[r]);
            let prog = filter(&[&rule], true).unwrap();
            let v = crate::wire::parse(&f);
            prop_assert_eq!(run(&prog, &f) != 0, rule.matches(&v), "{} on {:02x?}", RULES[r], f);
        }

        /// Any bytes at all (cut anywhere, garbage): exactly one of the two filters takes them.
        #[test]
        fn every_frame_goes_to_exactly_one_ring(
            f in prop::collection::vec(any::<u8>(), 0..90),
            g in frame(),
            cut in 0usize..90,
            r in 0..RULES.len(),
        ) {
            let rules = [rule(RULES[r]), rule(RULES[(r + 1) % RULES.len()])];
            let refs: Vec<&Rule> = rules.iter().collect();
            let yes = filter(&refs, true).unwrap();
            let no = filter(&refs, false).unwrap();
            for bytes in [&f[..], &g[..cut.min(g.len())], &g[..]] {
                prop_assert!((run(&yes, bytes) != 0) != (run(&no, bytes) != 0), "{:02x?}", bytes);
            }
        }
    }

    #[test]
    fn tests_that_vary_within_a_flow_or_need_weir_do_not_compile() {
        for (src, what) in [
            ("len < 100", "len"),
            ("tcp flags syn", "tcp flags"),
            ("app dns", "app"),
            ("vlan 10", "vlan"),
        ] {
            let e = filter(&[&rule(src)], true).unwrap_err();
            assert!(e.contains(what), "{src}: {e}");
        }
    }

    #[test]
    fn a_dscp_rule_takes_its_frames_tagged_or_not() {
        let ef = rule("dscp ef");
        let prog = filter(&[&ef], true).unwrap();
        let ip = |tos: u8| {
            let mut f = Vec::new();
            etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
                .udp(1, 2)
                .write(&mut f, &[0; 8])
                .unwrap();
            f[15] = tos;
            f
        };
        assert_ne!(run(&prog, &ip(0xb8)), 0);
        assert_eq!(run(&prog, &ip(0x00)), 0);
        // One VLAN tag in the frame.
        let mut tagged = ip(0xb8);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        assert_ne!(run(&prog, &tagged), 0);
        // Cut inside the IP header: not matched, and not lost (the other filter takes it).
        let cut = &ip(0xb8)[..20];
        assert_eq!(run(&prog, cut), 0);
        assert_ne!(run(&filter(&[&ef], false).unwrap(), cut), 0);
    }

    #[test]
    fn control_frames_take_the_express_lane() {
        let prog = filter_with(&[], true, true).unwrap();
        let rest = filter_with(&[], true, false).unwrap();
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_ne!(run(&prog, &arp), 0);
        assert_eq!(run(&rest, &arp), 0);
        let mut ns = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [0x33, 0x33, 0, 0, 0, 1])
            .ipv6([0xfe; 16], [0xff; 16], 255)
            .icmpv6(etherparse::Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut ns, &[0; 20])
            .unwrap();
        assert_ne!(run(&prog, &ns), 0);
        ns[54] = 128; // an echo request is not control
        assert_eq!(run(&prog, &ns), 0);
        assert_ne!(run(&rest, &ns), 0);
    }

    #[test]
    fn a_default_rule_takes_everything_and_no_rule_nothing() {
        let d = rule("default");
        assert_ne!(run(&filter(&[&d], true).unwrap(), &[0u8; 60]), 0);
        assert_eq!(run(&filter(&[&d], false).unwrap(), &[0u8; 60]), 0);
        assert_eq!(run(&filter(&[], true).unwrap(), &[0u8; 60]), 0);
        assert_ne!(run(&filter(&[], false).unwrap(), &[0u8; 60]), 0);
    }
}
