//! Flow keys: one key for both directions of a conversation.
//!
//! IP: (VLAN, family, protocol, the two (address, port) endpoints in canonical order), so a
//! frame and its reply map to the same key. Non-IP: (VLAN, ethertype, the two MAC addresses in
//! canonical order). ICMP and other port-less protocols key on addresses and protocol.

use crate::wire::{FrameView, L3};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo_addr: u128,
    pub hi_addr: u128,
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
    pub l3: L3,
    /// Outer VLAN id, or `NO_VLAN`.
    pub vlan: u16,
    /// Ethertype for non-IP frames; zero for IP.
    pub ethertype: u16,
}

pub const NO_VLAN: u16 = u16::MAX;

impl FlowKey {
    pub fn of(v: &FrameView) -> FlowKey {
        let vlan = if v.vlan_count > 0 {
            v.vlan[0].id
        } else {
            NO_VLAN
        };
        if v.is_ip() {
            let (sp, dp) = if v.has_ports {
                (v.src_port, v.dst_port)
            } else {
                (0, 0)
            };
            let a = (v.src_ip, sp);
            let b = (v.dst_ip, dp);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            FlowKey {
                lo_addr: lo.0,
                hi_addr: hi.0,
                lo_port: lo.1,
                hi_port: hi.1,
                proto: v.ip_proto,
                l3: v.l3,
                vlan,
                ethertype: 0,
            }
        } else {
            let a = mac_u128(&v.src_mac);
            let b = mac_u128(&v.dst_mac);
            FlowKey {
                lo_addr: a.min(b),
                hi_addr: a.max(b),
                l3: v.l3,
                vlan,
                ethertype: v.ethertype,
                ..FlowKey::default()
            }
        }
    }

    /// A well-mixed 64-bit hash; never zero (zero marks an empty table slot).
    #[inline]
    pub fn hash64(&self) -> u64 {
        let mut h = mix(self.lo_addr as u64 ^ ((self.lo_addr >> 64) as u64).rotate_left(32));
        h = mix(h ^ self.hi_addr as u64 ^ ((self.hi_addr >> 64) as u64).rotate_left(17));
        h = mix(h
            ^ (u64::from(self.lo_port) << 48)
            ^ (u64::from(self.hi_port) << 32)
            ^ (u64::from(self.proto) << 24)
            ^ (u64::from(self.vlan) << 8)
            ^ u64::from(self.ethertype).rotate_left(40)
            ^ self.l3 as u64);
        h.max(1)
    }
}

pub fn mac_u128(mac: &[u8; 6]) -> u128 {
    let mut b = [0u8; 16];
    b[10..].copy_from_slice(mac);
    u128::from_be_bytes(b)
}

/// splitmix64's finaliser: cheap, and every input bit reaches every output bit.
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash of one address (per-host fairness).
#[inline]
pub fn host_hash(addr: u128) -> u64 {
    mix(addr as u64 ^ mix((addr >> 64) as u64))
}

/// A flow named by its two endpoints, in either order, as `weir replay --flows` and
/// `weir flows` print them: `198.18.0.1:443 198.19.0.2:40000`, `[2001:db8::1]:53 ...`, or an
/// address alone for a flow without ports (ICMP, a later fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEnds([(IpAddr, Option<u16>); 2]);

impl std::str::FromStr for FlowEnds {
    type Err = String;

    fn from_str(s: &str) -> Result<FlowEnds, String> {
        let endpoint = |e: &str| -> Option<(IpAddr, Option<u16>)> {
            if let Ok(ip) = e.parse() {
                return Some((ip, None));
            }
            let sa: std::net::SocketAddr = e.parse().ok()?;
            Some((sa.ip(), Some(sa.port())))
        };
        let parts: Vec<&str> = s.split_whitespace().collect();
        match parts.as_slice() {
            [a, b] => match (endpoint(a), endpoint(b)) {
                (Some(a), Some(b)) => Ok(FlowEnds([a, b])),
                _ => Err(format!(
                    "\"{s}\": expected two endpoints, ADDR:PORT or ADDR each ([ADDR]:PORT for \
                     IPv6), as `weir replay --flows` and `weir flows` print them"
                )),
            },
            _ => Err(format!(
                "\"{s}\": expected two endpoints, ADDR:PORT or ADDR each ([ADDR]:PORT for IPv6), \
                 as `weir replay --flows` and `weir flows` print them"
            )),
        }
    }
}

impl FlowEnds {
    /// Frame `v` belongs to this flow (either direction).
    pub fn matches(&self, v: &FrameView) -> bool {
        if !v.is_ip() {
            return false;
        }
        let ip = |a: u128| -> IpAddr {
            if v.l3 == L3::Ipv6 {
                Ipv6Addr::from(a).into()
            } else {
                Ipv4Addr::from(a as u32).into()
            }
        };
        let here = |(addr, port): (IpAddr, Option<u16>), a: u128, p: u16| {
            addr == ip(a) && port == v.has_ports.then_some(p)
        };
        let [x, y] = self.0;
        (here(x, v.src_ip, v.src_port) && here(y, v.dst_ip, v.dst_port))
            || (here(y, v.src_ip, v.src_port) && here(x, v.dst_ip, v.dst_port))
    }
}
