//! Wire layer: bytes in, a typed [`FrameView`] out.
//!
//! Guarantees:
//! - [`parse`] never panics and never allocates, whatever the bytes. Every read goes through
//!   bounds-checked slice access; a frame that ends early yields a view with what could be read
//!   and `truncated = true`, never an error: weir forwards what it cannot fully parse.
//! - One pass, front to back, reading only the headers classification needs: Ethernet, up to
//!   [`MAX_VLAN_TAGS`] 802.1Q / 802.1ad tags, a PPPoE session header (RFC 2516: IPv4 or IPv6
//!   inside PPP; `ethertype` stays 0x8864 and `l3_offset` points past it), ARP, IPv4 (options
//!   skipped), IPv6 (extension headers walked, fragment header read), and the first bytes of
//!   TCP, UDP, SCTP, ICMP and ICMPv6.
//! - [`gso`] cuts a TCP GSO super-frame into the segments Linux would make, into caller-owned
//!   buffers, with the same never-panic guarantee.
//!
//! Why not etherparse's lax slicing here: it decodes every header into slices and array-vectors we
//! then re-read, and costs several times this pass (see docs/benchmarks.md). etherparse stays the
//! reference: the tests compare both parsers on generated and real frames.

mod dscp;
pub mod gso;
pub mod vnet;

pub use dscp::{dscp_from_name, set_ce, set_dscp, DscpRewrite, DSCP_NAMES};
pub use gso::{GsoError, GsoParams, SegmentChecksum, Segmenter, TcpGso};
pub use vnet::VnetHdr;

/// Largest frame weir handles: a GSO super-frame of 64 KiB plus Ethernet and VLAN headers.
/// Receive buffers hold this much; a frame longer than this is cut short by its device.
pub const MAX_FRAME: usize = 65_536 + 14 + 8;

/// Ethertypes weir cares about.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag, still seen in the wild.
    pub const QINQ_OLD: u16 = 0x9100;
    pub const IPV6: u16 = 0x86dd;
    pub const LLDP: u16 = 0x88cc;
    pub const SLOW_PROTOCOLS: u16 = 0x8809;
    /// PPPoE discovery and session stages (RFC 2516): PPP frames, IP among them, in Ethernet.
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    pub const PPPOE_SESSION: u16 = 0x8864;
}

/// PPP protocol numbers of IPv4 and IPv6 (RFC 1332, RFC 5072).
pub mod ppp {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// Bytes of a PPPoE session header (version/type, code, session id, length) and the PPP
/// protocol number after it.
pub const PPPOE_HEADER: usize = 8;

/// IP protocol numbers weir reads further into.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// How many VLAN tags are decoded; deeper stacks are left unparsed (`truncated` stays false,
/// the frame is simply treated as non-IP).
pub const MAX_VLAN_TAGS: usize = 2;

/// One 802.1Q / 802.1ad tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanTag {
    /// VLAN identifier, 0..=4095.
    pub id: u16,
    /// Priority code point, 0..=7.
    pub pcp: u8,
}

/// Network-layer family of a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum L3 {
    /// Not IP nor ARP (LLDP, STP, unknown ethertypes, unparsed VLAN stacks).
    #[default]
    Other,
    Arp,
    Ipv4,
    Ipv6,
}

/// What the classifier needs from one frame. `Copy`, 100-odd bytes, built by [`parse`].
///
/// Addresses are kept as `u128`: IPv4 in the low 32 bits. Fields a frame does not carry are zero;
/// the `has_*` flags say which are meaningful.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameView {
    /// Length of the frame as received, in bytes.
    pub len: u32,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// VLAN tags, outermost first; `vlan_count` of them are valid.
    pub vlan: [VlanTag; MAX_VLAN_TAGS],
    pub vlan_count: u8,
    /// Ethertype after the VLAN tags (or the 802.3 length field for LLC frames).
    pub ethertype: u16,
    pub l3: L3,
    /// Byte offset of the IP header, for DSCP rewriting. Zero when not IP.
    pub l3_offset: u16,
    /// Byte offset of the transport header (after IP options and IPv6 extension headers);
    /// zero when it was not reached (not IP, a later fragment, headers cut short).
    pub l4_offset: u16,
    pub src_ip: u128,
    pub dst_ip: u128,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub ip_proto: u8,
    /// DSCP (6 bits) and ECN (2 bits).
    pub dscp: u8,
    pub ecn: u8,
    /// Part of a fragmented datagram (any fragment, first included).
    pub is_fragment: bool,
    /// Fragment offset in 8-byte units; 0 for the first fragment.
    pub frag_offset: u16,
    /// Datagram identification (IPv4: 16 bits; IPv6: 32 bits).
    pub frag_id: u32,
    /// Ports were read (TCP, UDP, UDP-Lite, SCTP, first or only fragment).
    pub has_ports: bool,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags (FIN=0x01 .. CWR=0x80); zero when not TCP.
    pub tcp_flags: u8,
    /// ICMP or ICMPv6 type and code were read.
    pub has_icmp: bool,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// ARP sender and target protocol addresses (IPv4), when `l3 == Arp`.
    pub arp_spa: u32,
    pub arp_tpa: u32,
    /// PPPoE discovery, or a PPP control protocol (LCP, whose echoes keep the session up,
    /// an NCP, authentication: protocol numbers 0x8000 and up) inside a PPPoE session.
    pub ppp_control: bool,
    /// The frame ended before the headers it announced.
    pub truncated: bool,
}

impl FrameView {
    pub fn is_ip(&self) -> bool {
        matches!(self.l3, L3::Ipv4 | L3::Ipv6)
    }

    /// Addresses, ports and protocol in brief (`198.18.0.1:40000 -> 198.19.0.2:443 proto 6`),
    /// for people (`weir explain`); allocates.
    pub fn brief(&self) -> String {
        let ip = |a: u128| {
            if self.l3 == L3::Ipv6 {
                format!("[{}]", std::net::Ipv6Addr::from(a))
            } else {
                std::net::Ipv4Addr::from(a as u32).to_string()
            }
        };
        match self.l3 {
            L3::Ipv4 | L3::Ipv6 if self.has_ports => format!(
                "{}:{} -> {}:{} proto {}",
                ip(self.src_ip),
                self.src_port,
                ip(self.dst_ip),
                self.dst_port,
                self.ip_proto
            ),
            L3::Ipv4 | L3::Ipv6 => format!(
                "{} -> {} proto {}",
                ip(self.src_ip),
                ip(self.dst_ip),
                self.ip_proto
            ),
            L3::Arp => "ARP".into(),
            L3::Other => format!("ethertype 0x{:04x}", self.ethertype),
        }
    }

    /// First fragment or an unfragmented datagram: the transport header is present.
    pub fn is_first_fragment(&self) -> bool {
        !self.is_fragment || self.frag_offset == 0
    }

    /// IPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect).
    pub fn is_neighbor_discovery(&self) -> bool {
        self.l3 == L3::Ipv6
            && self.ip_proto == ipproto::ICMPV6
            && self.has_icmp
            && (133..=137).contains(&self.icmp_type)
    }

    /// Link control traffic that must never wait behind data: ARP, IPv6 ND, PPPoE discovery
    /// and PPP control (a PPPoE session dies when its LCP echoes are lost), and frames to the
    /// IEEE 802.1 link-local group 01:80:C2:00:00:0x (STP, LACP, LLDP, 802.1X, pause).
    pub fn is_link_control(&self) -> bool {
        self.l3 == L3::Arp
            || self.is_neighbor_discovery()
            || self.ethertype == ethertype::LLDP
            || self.ethertype == ethertype::SLOW_PROTOCOLS
            || self.ppp_control
            || (self.dst_mac[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.dst_mac[5] <= 0x0f)
    }
}

/// Parse an Ethernet frame. Never fails: what cannot be read is left zero and flagged.
pub fn parse(frame: &[u8]) -> FrameView {
    let mut v = FrameView {
        len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
        ..FrameView::default()
    };
    let Some(eth) = frame.get(..14) else {
        v.truncated = true;
        if let Some(d) = frame.get(..6) {
            v.dst_mac.copy_from_slice(d);
        }
        return v;
    };
    v.dst_mac.copy_from_slice(&eth[..6]);
    v.src_mac.copy_from_slice(&eth[6..12]);
    let mut ethertype = be16(eth, 12);
    let mut off = 14usize;
    while matches!(
        ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    ) {
        if usize::from(v.vlan_count) == MAX_VLAN_TAGS {
            // Deeper stacks: keep the tags we have, do not guess at the payload.
            v.ethertype = ethertype;
            return v;
        }
        let Some(tag) = frame.get(off..off + 4) else {
            v.truncated = true;
            v.ethertype = ethertype;
            return v;
        };
        let tci = be16(tag, 0);
        v.vlan[usize::from(v.vlan_count)] = VlanTag {
            id: tci & 0x0fff,
            pcp: (tci >> 13) as u8,
        };
        v.vlan_count += 1;
        ethertype = be16(tag, 2);
        off += 4;
    }
    v.ethertype = ethertype;
    let rest = &frame[off..];
    match ethertype {
        ethertype::IPV4 => parse_ipv4(&mut v, rest, off),
        ethertype::IPV6 => parse_ipv6(&mut v, rest, off),
        ethertype::ARP => parse_arp(&mut v, rest),
        ethertype::PPPOE_DISCOVERY => v.ppp_control = true,
        ethertype::PPPOE_SESSION => match rest.get(..PPPOE_HEADER) {
            // Version 1, type 1, code 0 (session data).
            Some(h) if h[0] == 0x11 && h[1] == 0 => {
                let (ip, at) = (&rest[PPPOE_HEADER..], off + PPPOE_HEADER);
                match be16(h, 6) {
                    ppp::IPV4 => parse_ipv4(&mut v, ip, at),
                    ppp::IPV6 => parse_ipv6(&mut v, ip, at),
                    p => v.ppp_control = p >= 0x8000,
                }
            }
            Some(_) => {}
            None => v.truncated = true,
        },
        _ => {}
    }
    v
}

fn parse_arp(v: &mut FrameView, arp: &[u8]) {
    v.l3 = L3::Arp;
    // Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4.
    match arp.get(..28) {
        Some(a) if be16(a, 0) == 1 && be16(a, 2) == ethertype::IPV4 && a[4] == 6 && a[5] == 4 => {
            v.arp_spa = be32(a, 14);
            v.arp_tpa = be32(a, 24);
        }
        Some(_) => {}
        None => v.truncated = true,
    }
}

fn parse_ipv4(v: &mut FrameView, ip: &[u8], off: usize) {
    let Some(h) = ip.get(..20) else {
        v.truncated = true;
        return;
    };
    if h[0] >> 4 != 4 {
        // Claims IPv4 but is not: forward as opaque.
        return;
    }
    v.l3 = L3::Ipv4;
    v.l3_offset = off as u16;
    v.dscp = h[1] >> 2;
    v.ecn = h[1] & 0x03;
    v.frag_id = u32::from(be16(h, 4));
    let frag = be16(h, 6);
    let more_fragments = frag & 0x2000 != 0;
    v.frag_offset = frag & 0x1fff;
    v.is_fragment = more_fragments || v.frag_offset != 0;
    v.ip_proto = h[9];
    v.src_ip = u128::from(be32(h, 12));
    v.dst_ip = u128::from(be32(h, 16));
    let ihl = usize::from(h[0] & 0x0f) * 4;
    // The whole announced header must be present, fragment or not.
    let l4 = match ip.get(ihl..) {
        Some(l4) if ihl >= 20 => l4,
        _ => {
            v.truncated = true;
            return;
        }
    };
    if v.frag_offset != 0 {
        return;
    }
    v.l4_offset = u16::try_from(off + ihl).unwrap_or(0);
    parse_l4(v, l4);
}

fn parse_ipv6(v: &mut FrameView, ip: &[u8], off: usize) {
    let Some(h) = ip.get(..40) else {
        v.truncated = true;
        return;
    };
    if h[0] >> 4 != 6 {
        return;
    }
    v.l3 = L3::Ipv6;
    v.l3_offset = off as u16;
    let traffic_class = ((h[0] & 0x0f) << 4) | (h[1] >> 4);
    v.dscp = traffic_class >> 2;
    v.ecn = traffic_class & 0x03;
    v.src_ip = be128(&h[8..24]);
    v.dst_ip = be128(&h[24..40]);
    let mut next = h[6];
    let mut pos = 40usize;
    // Walk extension headers; bounded because each step advances `pos` by at least 8 bytes
    // and the frame is finite, and by an explicit cap against pathological chains.
    for _ in 0..16 {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let Some(e) = ip.get(pos..pos + 2) else {
                    v.truncated = true;
                    v.ip_proto = next;
                    return;
                };
                next = e[0];
                pos += (usize::from(e[1]) + 1) * 8;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let Some(e) = ip.get(pos..pos + 8) else {
                    v.truncated = true;
                    v.ip_proto = next;
                    return;
                };
                next = e[0];
                let frag = be16(e, 2);
                v.frag_offset = frag >> 3;
                // An atomic fragment (offset 0, M = 0; RFC 6946) is a whole datagram, as in
                // IPv4: only the offset or the M flag makes this part of a fragmented one.
                v.is_fragment = v.is_fragment || v.frag_offset != 0 || frag & 1 != 0;
                v.frag_id = be32(e, 4);
                pos += 8;
                if v.frag_offset != 0 {
                    // A non-first fragment carries a slice of the fragmentable part, not
                    // headers (RFC 8200 4.5): stop, `next` names the part's first header.
                    break;
                }
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let Some(e) = ip.get(pos..pos + 2) else {
                    v.truncated = true;
                    v.ip_proto = next;
                    return;
                };
                next = e[0];
                pos += (usize::from(e[1]) + 2) * 4;
            }
            _ => break,
        }
    }
    v.ip_proto = next;
    if v.frag_offset != 0 {
        return;
    }
    match ip.get(pos..) {
        Some(l4) => {
            v.l4_offset = u16::try_from(off + pos).unwrap_or(0);
            parse_l4(v, l4);
        }
        None => v.truncated = true,
    }
}

fn parse_l4(v: &mut FrameView, l4: &[u8]) {
    match v.ip_proto {
        ipproto::TCP | ipproto::UDP | ipproto::UDPLITE | ipproto::SCTP => {
            let Some(p) = l4.get(..4) else {
                v.truncated = true;
                return;
            };
            v.has_ports = true;
            v.src_port = be16(p, 0);
            v.dst_port = be16(p, 2);
            if v.ip_proto == ipproto::TCP {
                match l4.get(13) {
                    Some(&flags) => v.tcp_flags = flags,
                    None => v.truncated = true,
                }
            }
        }
        ipproto::ICMP | ipproto::ICMPV6 => match l4.get(..2) {
            Some(p) => {
                v.has_icmp = true;
                v.icmp_type = p[0];
                v.icmp_code = p[1];
            }
            None => v.truncated = true,
        },
        _ => {}
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn be128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}

#[cfg(test)]
pub(crate) mod tests;
