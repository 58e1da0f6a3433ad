//! The application table behind `app NAME`.
//!
//! Guarantees: names are lower-case, unique, and sorted; every entry has at least one port range
//! and every range is `lo <= hi`.
//! An application is "this transport, and either port in one of these ranges", unless weir can
//! tell its protocol from payload (`payload::detect`): then its [`Detect`] says how the
//! protocol found in a flow's first payloads and the ports combine. A flow whose protocol is
//! not known yet (no payload seen) matches no application that can be detected.

/// Which transport(s) an application runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProto {
    Tcp,
    Udp,
    /// Both TCP and UDP on the same ports.
    Both,
}

impl AppProto {
    pub fn as_str(self) -> &'static str {
        match self {
            AppProto::Tcp => "tcp",
            AppProto::Udp => "udp",
            AppProto::Both => "tcp+udp",
        }
    }
}

/// How `app NAME` combines the protocol told from a flow's payload with the ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detect {
    /// Ports only: weir does not tell this application from payload.
    Ports,
    /// This protocol on any port; a flow whose payload showed no known protocol, or only TLS
    /// (which carries any application), falls back to the ports.
    Anywhere(Protocol),
    /// This protocol on the application's ports (TLS on 443 is `https`, TLS on 993 is not); a
    /// flow whose payload showed no known protocol (or only TLS) falls back to the ports.
    OnPorts(Protocol),
    /// This protocol on any port, and nothing else: the port range is too common to mean it
    /// (RTP's 10000-32767 is any client's source port).
    Only(Protocol),
}

impl Detect {
    /// For the docs' table.
    pub fn describe(self) -> String {
        match self {
            Detect::Ports => "no: ports".into(),
            Detect::Anywhere(p) => format!("{}, any port; else ports", p.as_str()),
            Detect::OnPorts(p) => format!("{} on these ports; else ports", p.as_str()),
            Detect::Only(p) => format!("{}, any port; never by port", p.as_str()),
        }
    }

    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Detect::Ports => None,
            Detect::Anywhere(p) | Detect::OnPorts(p) | Detect::Only(p) => Some(p),
        }
    }
}

/// One row of the application table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppEntry {
    pub name: &'static str,
    pub proto: AppProto,
    /// Inclusive port ranges; a frame matches when its source or destination port is in one.
    pub ports: &'static [(u16, u16)],
    pub description: &'static str,
    pub detect: Detect,
}

/// An entry matched by its ports alone.
const fn e(
    name: &'static str,
    proto: AppProto,
    ports: &'static [(u16, u16)],
    description: &'static str,
) -> AppEntry {
    d(name, proto, ports, description, Detect::Ports)
}

/// An entry whose protocol weir tells from payload.
const fn d(
    name: &'static str,
    proto: AppProto,
    ports: &'static [(u16, u16)],
    description: &'static str,
    detect: Detect,
) -> AppEntry {
    AppEntry {
        name,
        proto,
        ports,
        description,
        detect,
    }
}

use crate::classify::payload::detect::Protocol;
use AppProto::{Both, Tcp, Udp};
use Detect::{Anywhere, OnPorts, Only};

/// Sorted by name (checked by a test), so docs and `weir` listings are stable.
static APPS: &[AppEntry] = &[
    e("bgp", Tcp, &[(179, 179)], "Border Gateway Protocol"),
    d(
        "bittorrent",
        Both,
        &[(6881, 6889), (51413, 51413)],
        "BitTorrent peers (classic range and Transmission's default)",
        Anywhere(Protocol::BitTorrent),
    ),
    e("dhcp", Udp, &[(67, 68)], "DHCP / BOOTP (IPv4)"),
    e("dhcpv6", Udp, &[(546, 547)], "DHCPv6"),
    d(
        "dns",
        Both,
        &[(53, 53)],
        "Domain Name System",
        Anywhere(Protocol::Dns),
    ),
    e("dot", Tcp, &[(853, 853)], "DNS over TLS"),
    e("ftp", Tcp, &[(20, 21)], "FTP control and active-mode data"),
    e("git", Tcp, &[(9418, 9418)], "git:// protocol"),
    d(
        "http",
        Tcp,
        &[(80, 80), (8000, 8000), (8080, 8080)],
        "HTTP",
        Anywhere(Protocol::Http),
    ),
    d(
        "https",
        Tcp,
        &[(443, 443), (8443, 8443)],
        "HTTP over TLS",
        OnPorts(Protocol::Tls),
    ),
    e(
        "ike",
        Udp,
        &[(500, 500), (4500, 4500)],
        "IPsec key exchange and NAT-traversal (ESP itself is `proto esp`)",
    ),
    e("imap", Tcp, &[(143, 143), (993, 993)], "IMAP and IMAPS"),
    e("irc", Tcp, &[(6667, 6667)], "Internet Relay Chat"),
    e("kerberos", Both, &[(88, 88)], "Kerberos"),
    e("ldap", Tcp, &[(389, 389), (636, 636)], "LDAP and LDAPS"),
    e(
        "minecraft",
        Tcp,
        &[(25565, 25565)],
        "Minecraft Java Edition",
    ),
    e(
        "mqtt",
        Tcp,
        &[(1883, 1883), (8883, 8883)],
        "MQTT and MQTT over TLS",
    ),
    e("mysql", Tcp, &[(3306, 3306)], "MySQL / MariaDB"),
    e("nfs", Both, &[(2049, 2049)], "Network File System"),
    e("ntp", Udp, &[(123, 123)], "Network Time Protocol"),
    e("openvpn", Both, &[(1194, 1194)], "OpenVPN"),
    e("pop3", Tcp, &[(110, 110), (995, 995)], "POP3 and POP3S"),
    e("postgres", Tcp, &[(5432, 5432)], "PostgreSQL"),
    d(
        "quic",
        Udp,
        &[(443, 443)],
        "QUIC (HTTP/3)",
        Anywhere(Protocol::Quic),
    ),
    e("rdp", Both, &[(3389, 3389)], "Remote Desktop Protocol"),
    e("rsync", Tcp, &[(873, 873)], "rsync daemon"),
    d(
        "rtp",
        Udp,
        &[(10000, 20000), (16384, 32767)],
        "RTP and RTCP media (the ports are where phones put it, and any client's source ports)",
        Only(Protocol::Rtp),
    ),
    d(
        "sip",
        Both,
        &[(5060, 5061)],
        "SIP signalling (plain and TLS)",
        Anywhere(Protocol::Sip),
    ),
    e("smb", Tcp, &[(445, 445)], "SMB / CIFS"),
    e(
        "smtp",
        Tcp,
        &[(25, 25), (465, 465), (587, 587)],
        "SMTP, SMTPS and submission",
    ),
    e("snmp", Udp, &[(161, 162)], "SNMP and SNMP traps"),
    d(
        "ssh",
        Tcp,
        &[(22, 22)],
        "Secure Shell",
        Anywhere(Protocol::Ssh),
    ),
    e("steam", Udp, &[(27000, 27031)], "Steam game traffic"),
    d(
        "stun",
        Both,
        &[(3478, 3479)],
        "STUN",
        Anywhere(Protocol::Stun),
    ),
    e("syslog", Udp, &[(514, 514)], "syslog"),
    e(
        "teams",
        Udp,
        &[(3478, 3481)],
        "Microsoft Teams media (overlaps STUN)",
    ),
    e("telnet", Tcp, &[(23, 23)], "Telnet"),
    d(
        "turn",
        Both,
        &[(3478, 3479)],
        "TURN relays (same ports as STUN)",
        OnPorts(Protocol::Stun),
    ),
    e("vnc", Tcp, &[(5900, 5901)], "VNC remote framebuffer"),
    d(
        "wireguard",
        Udp,
        &[(51820, 51820)],
        "WireGuard",
        Anywhere(Protocol::WireGuard),
    ),
    e("xbox", Both, &[(3074, 3074)], "Xbox Live"),
    e("xmpp", Tcp, &[(5222, 5223)], "XMPP client connections"),
    e("zoom", Udp, &[(8801, 8810)], "Zoom media"),
];

/// The application table used by `app NAME`.
pub fn app_table() -> &'static [AppEntry] {
    APPS
}

/// The application of a flow of IP protocol `proto` between ports `a` and `b` whose payload
/// showed `detected` (`None`: not known), as `weir flows` and the flow list name it, and
/// whether the payload named it: the protocol's entry in the table (`https` for TLS on 443;
/// the protocol's own name where no entry fits), else the entry whose ports it uses (the lower
/// port, usually the server's, first; never an entry told from payload only; TLS, which
/// carries any application, on another port is named by its port, or `tls`). For display,
/// not per frame.
pub fn app_of(
    proto: u8,
    a: u16,
    b: u16,
    detected: Option<Protocol>,
) -> Option<(&'static str, bool)> {
    let transport_ok = |p: AppProto| match proto {
        6 => matches!(p, AppProto::Tcp | AppProto::Both),
        17 => matches!(p, AppProto::Udp | AppProto::Both),
        _ => false,
    };
    let on_ports = |e: &AppEntry| {
        [a, b]
            .iter()
            .any(|&port| e.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port)))
    };
    if let Some(p) = detected {
        let entry = APPS.iter().find(|e| match e.detect {
            Detect::Anywhere(q) | Detect::Only(q) => q == p,
            Detect::OnPorts(q) => q == p && on_ports(e),
            Detect::Ports => false,
        });
        match (entry, p) {
            (Some(e), _) => return Some((e.name, true)),
            (None, Protocol::Tls) => {}
            (None, p) => return Some((p.as_str(), true)),
        }
    }
    let by_port = [a.min(b), a.max(b)].into_iter().find_map(|port| {
        APPS.iter()
            .find(|e| {
                transport_ok(e.proto)
                    && !matches!(e.detect, Detect::Only(_))
                    && e.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
            })
            .map(|e| (e.name, false))
    });
    match detected {
        Some(Protocol::Tls) => by_port.or(Some(("tls", true))),
        _ => by_port,
    }
}

/// Look up an application by (lower-case) name.
pub(crate) fn find_app(name: &str) -> Option<&'static AppEntry> {
    APPS.iter().find(|a| a.name == name)
}
