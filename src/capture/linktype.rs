//! Link types weir accepts, and their conversion to Ethernet II.
//!
//! Every conversion is a pure function of the frame bytes: it writes a 14-byte Ethernet II header
//! (destination MAC zero, source MAC zero unless the link header carries a 6-byte address) and the
//! payload into a caller-owned buffer that is reused across frames. It never fails and never
//! panics; a frame too short for its link header becomes a bare 14-byte header with ethertype 0
//! (non-IP), so it is still counted and frame numbers stay those of the file.

/// What weir does with frames of a link type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// Already Ethernet II (DLT_EN10MB): frames are passed through untouched, without a copy.
    Ethernet,
    /// Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 113): 16-byte header.
    LinuxSll,
    /// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 276): 20-byte header.
    LinuxSll2,
    /// Bare IP packets, no link header. The IP version nibble picks the ethertype; if it is neither
    /// 4 nor 6, `fallback` is used (IPv4 for LINKTYPE_IPV4, IPv6 for LINKTYPE_IPV6, 0 for RAW).
    RawIp { fallback: u16 },
    /// BSD loopback: a 4-byte address family, in the byte order of the host that captured
    /// (DLT_NULL, 0) or in network order (DLT_LOOP, 108). Both orders are accepted for both: the
    /// family values are small, so the two readings cannot be confused.
    Loopback,
    /// PPP (DLT_PPP, 9; DLT_PPP_SERIAL, 50; with a leading direction byte, DLT_PPP_WITH_DIR,
    /// 204): the HDLC address and control bytes `ff 03` when present, then the protocol, one
    /// byte when compressed (RFC 1661 6.5). A DLT_PPP_SERIAL frame that starts with a Cisco
    /// HDLC address is read as Cisco HDLC, as libpcap does.
    Ppp { direction_byte: bool },
    /// Cisco HDLC (DLT_C_HDLC, 104): address, control, then an ethertype.
    CiscoHdlc,
    /// PPPoE without its Ethernet header (DLT_PPP_ETHER, 51): the 6-byte session header and
    /// the PPP protocol.
    PppEther,
}

impl Conversion {
    /// Bytes of link header this conversion removes (before the 14 bytes of Ethernet it adds).
    pub fn header_len(self) -> usize {
        match self {
            Conversion::Ethernet => 0,
            Conversion::LinuxSll => 16,
            Conversion::LinuxSll2 => 20,
            Conversion::RawIp { .. } => 0,
            Conversion::Loopback => 4,
            // The longest form; a frame may use a shorter one (`to_ethernet` says).
            Conversion::Ppp { direction_byte } => 4 + usize::from(direction_byte),
            Conversion::CiscoHdlc => 4,
            Conversion::PppEther => 8,
        }
    }
}

/// DLT / LINKTYPE values as `pcap_datalink` reports them on this platform.
pub mod dlt {
    pub const NULL: i32 = 0;
    pub const EN10MB: i32 = 1;
    pub const PPP: i32 = 9;
    pub const PPP_SERIAL: i32 = 50;
    pub const PPP_ETHER: i32 = 51;
    pub const C_HDLC: i32 = 104;
    pub const PPP_WITH_DIR: i32 = 204;
    /// DLT_RAW on everything but OpenBSD; libpcap maps LINKTYPE_RAW (101) in files to it.
    pub const RAW: i32 = 12;
    /// LINKTYPE_RAW as stored in files; libpcap maps it to [`RAW`], accepted in case it does not.
    pub const LINKTYPE_RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// The link type of a capture file, as libpcap reports it, and how weir handles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkType {
    /// `pcap_datalink` value (a DLT, which libpcap maps from the file's LINKTYPE).
    pub value: i32,
    /// libpcap's name for it (`EN10MB`, `LINUX_SLL`, ...), or `DLT_<n>` if libpcap has none.
    pub name: String,
    /// `None` if weir does not accept this link type.
    pub conversion: Option<Conversion>,
}

impl LinkType {
    /// Classifies a `pcap_datalink` value; `name` is libpcap's name for it.
    pub fn new(value: i32, name: String) -> LinkType {
        LinkType {
            value,
            name,
            conversion: conversion_for(value),
        }
    }
}

impl std::fmt::Display for LinkType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.value)
    }
}

/// The conversion for a `pcap_datalink` value, `None` if weir does not accept it.
pub fn conversion_for(dlt_value: i32) -> Option<Conversion> {
    use crate::wire::ethertype;
    Some(match dlt_value {
        dlt::EN10MB => Conversion::Ethernet,
        dlt::LINUX_SLL => Conversion::LinuxSll,
        dlt::LINUX_SLL2 => Conversion::LinuxSll2,
        dlt::RAW | dlt::LINKTYPE_RAW => Conversion::RawIp { fallback: 0 },
        dlt::IPV4 => Conversion::RawIp {
            fallback: ethertype::IPV4,
        },
        dlt::IPV6 => Conversion::RawIp {
            fallback: ethertype::IPV6,
        },
        dlt::NULL | dlt::LOOP => Conversion::Loopback,
        dlt::PPP | dlt::PPP_SERIAL => Conversion::Ppp {
            direction_byte: false,
        },
        dlt::PPP_WITH_DIR => Conversion::Ppp {
            direction_byte: true,
        },
        dlt::C_HDLC => Conversion::CiscoHdlc,
        dlt::PPP_ETHER => Conversion::PppEther,
        _ => return None,
    })
}

/// Linux `ETH_P_802_3`: an 802.3 frame without LLC (Novell raw IPX).
const SLL_P_802_3: u16 = 0x0001;
/// Linux `ETH_P_802_2`: an 802.2 LLC frame.
const SLL_P_802_2: u16 = 0x0004;
/// The smallest value that is an ethertype rather than an 802.3 length.
const MIN_ETHERTYPE: u16 = 0x0600;

/// Address families for IPv4 and IPv6 in loopback headers (Linux, BSDs, macOS).
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Converts one frame of a non-Ethernet link type into Ethernet II in `out` (cleared first).
/// Returns the number of link-header bytes that were replaced (for adjusting the wire length).
/// `Conversion::Ethernet` copies the frame as is (the reader avoids calling it for Ethernet).
pub fn to_ethernet(conv: Conversion, frame: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut src_mac = [0u8; 6];
    let (ethertype, payload) = match conv {
        Conversion::Ethernet => {
            out.extend_from_slice(frame);
            return 0;
        }
        Conversion::LinuxSll => match frame.get(..16) {
            Some(h) => {
                // Address length at 4, address at 6 (8 bytes reserved).
                if be16(h, 4) == 6 {
                    src_mac.copy_from_slice(&h[6..12]);
                }
                let payload = &frame[16..];
                (sll_ethertype(be16(h, 14), payload.len()), payload)
            }
            None => (0, &frame[frame.len()..]),
        },
        Conversion::LinuxSll2 => match frame.get(..20) {
            Some(h) => {
                // Address length at 11, address at 12 (8 bytes reserved).
                if h[11] == 6 {
                    src_mac.copy_from_slice(&h[12..18]);
                }
                let payload = &frame[20..];
                (sll_ethertype(be16(h, 0), payload.len()), payload)
            }
            None => (0, &frame[frame.len()..]),
        },
        Conversion::RawIp { fallback } => {
            let ethertype = match frame.first().map(|b| b >> 4) {
                Some(4) => crate::wire::ethertype::IPV4,
                Some(6) => crate::wire::ethertype::IPV6,
                Some(_) => fallback,
                None => 0,
            };
            (ethertype, frame)
        }
        Conversion::Ppp { direction_byte } => {
            ppp(&frame[usize::from(direction_byte).min(frame.len())..])
        }
        Conversion::CiscoHdlc => cisco_hdlc(frame),
        Conversion::PppEther => match frame.get(..8) {
            Some(h) => (ppp_ethertype(be16(h, 6)), &frame[8..]),
            None => (0, &frame[frame.len()..]),
        },
        Conversion::Loopback => match frame.get(..4) {
            Some(h) => {
                let b = [h[0], h[1], h[2], h[3]];
                let family = |af: u32| u32::from_le_bytes(b) == af || u32::from_be_bytes(b) == af;
                let ethertype = if family(AF_INET) {
                    crate::wire::ethertype::IPV4
                } else if AF_INET6.iter().any(|&af| family(af)) {
                    crate::wire::ethertype::IPV6
                } else {
                    0
                };
                (ethertype, &frame[4..])
            }
            None => (0, &frame[frame.len()..]),
        },
    };
    out.extend_from_slice(&[0u8; 6]);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    frame.len() - payload.len()
}

/// Cisco HDLC addresses (unicast, broadcast).
const CHDLC_ADDRESSES: [u8; 2] = [0x0f, 0x8f];

/// The ethertype and payload of a PPP frame (see [`Conversion::Ppp`]).
fn ppp(frame: &[u8]) -> (u16, &[u8]) {
    if frame.first().is_some_and(|b| CHDLC_ADDRESSES.contains(b)) {
        return cisco_hdlc(frame);
    }
    let f = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
    let (protocol, payload) = match f {
        // An odd first byte is a whole, compressed protocol number.
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
        _ => return (0, &frame[frame.len()..]),
    };
    (ppp_ethertype(protocol), payload)
}

/// Cisco HDLC: address, control, ethertype.
fn cisco_hdlc(frame: &[u8]) -> (u16, &[u8]) {
    match frame.get(..4) {
        Some(h) => (be16(h, 2), &frame[4..]),
        None => (0, &frame[frame.len()..]),
    }
}

/// The ethertype of IP inside PPP; 0 (not IP) for the rest (LCP, NCPs, ...).
fn ppp_ethertype(protocol: u16) -> u16 {
    match protocol {
        crate::wire::ppp::IPV4 => crate::wire::ethertype::IPV4,
        crate::wire::ppp::IPV6 => crate::wire::ethertype::IPV6,
        _ => 0,
    }
}

/// The Ethernet II type/length field for a Linux cooked protocol value.
///
/// Values below 0x0600 are Linux `ETH_P_*` pseudo-protocols, not ethertypes. The two that denote
/// 802.3 framing become a real 802.3 length field (LLC frames then parse as 802.3 + LLC); the
/// others (CAN, netlink, ...) become 0, which no parser takes for IP.
fn sll_ethertype(protocol: u16, payload_len: usize) -> u16 {
    match protocol {
        p if p >= MIN_ETHERTYPE => p,
        SLL_P_802_2 | SLL_P_802_3 => u16::try_from(payload_len).unwrap_or(1500).min(1500),
        _ => 0,
    }
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
