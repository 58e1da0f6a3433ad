//! The application table behind `app NAME`.
//!
//! Guarantees: names are lower-case, unique, and sorted; every entry has at least one port range
//! and every range is `lo <= hi`. Matching is by port and transport only (no payload inspection):
//! an application is "this transport, and either port in one of these ranges". The table is
//! static, so `app` costs nothing at run time beyond a port-set test.

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

/// One row of the application table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppEntry {
    pub name: &'static str,
    pub proto: AppProto,
    /// Inclusive port ranges; a frame matches when its source or destination port is in one.
    pub ports: &'static [(u16, u16)],
    pub description: &'static str,
}

const fn e(
    name: &'static str,
    proto: AppProto,
    ports: &'static [(u16, u16)],
    description: &'static str,
) -> AppEntry {
    AppEntry {
        name,
        proto,
        ports,
        description,
    }
}

use AppProto::{Both, Tcp, Udp};

/// Sorted by name (checked by a test), so docs and `weir` listings are stable.
static APPS: &[AppEntry] = &[
    e("bgp", Tcp, &[(179, 179)], "Border Gateway Protocol"),
    e(
        "bittorrent",
        Both,
        &[(6881, 6889), (51413, 51413)],
        "BitTorrent peers (classic range and Transmission's default)",
    ),
    e("dhcp", Udp, &[(67, 68)], "DHCP / BOOTP (IPv4)"),
    e("dhcpv6", Udp, &[(546, 547)], "DHCPv6"),
    e("dns", Both, &[(53, 53)], "Domain Name System"),
    e("dot", Tcp, &[(853, 853)], "DNS over TLS"),
    e("ftp", Tcp, &[(20, 21)], "FTP control and active-mode data"),
    e("git", Tcp, &[(9418, 9418)], "git:// protocol"),
    e("http", Tcp, &[(80, 80), (8000, 8000), (8080, 8080)], "HTTP"),
    e("https", Tcp, &[(443, 443), (8443, 8443)], "HTTP over TLS"),
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
    e("quic", Udp, &[(443, 443)], "QUIC (HTTP/3)"),
    e("rdp", Both, &[(3389, 3389)], "Remote Desktop Protocol"),
    e("rsync", Tcp, &[(873, 873)], "rsync daemon"),
    e(
        "rtp",
        Udp,
        &[(10000, 20000), (16384, 32767)],
        "RTP media: Asterisk and many phones (10000-20000) and the classic range (16384-32767)",
    ),
    e(
        "sip",
        Both,
        &[(5060, 5061)],
        "SIP signalling (plain and TLS)",
    ),
    e("smb", Tcp, &[(445, 445)], "SMB / CIFS"),
    e(
        "smtp",
        Tcp,
        &[(25, 25), (465, 465), (587, 587)],
        "SMTP, SMTPS and submission",
    ),
    e("snmp", Udp, &[(161, 162)], "SNMP and SNMP traps"),
    e("ssh", Tcp, &[(22, 22)], "Secure Shell"),
    e("steam", Udp, &[(27000, 27031)], "Steam game traffic"),
    e("stun", Both, &[(3478, 3479)], "STUN"),
    e("syslog", Udp, &[(514, 514)], "syslog"),
    e(
        "teams",
        Udp,
        &[(3478, 3481)],
        "Microsoft Teams media (overlaps STUN)",
    ),
    e("telnet", Tcp, &[(23, 23)], "Telnet"),
    e(
        "turn",
        Both,
        &[(3478, 3479)],
        "TURN relays (same ports as STUN)",
    ),
    e("vnc", Tcp, &[(5900, 5901)], "VNC remote framebuffer"),
    e("wireguard", Udp, &[(51820, 51820)], "WireGuard"),
    e("xbox", Both, &[(3074, 3074)], "Xbox Live"),
    e("xmpp", Tcp, &[(5222, 5223)], "XMPP client connections"),
    e("zoom", Udp, &[(8801, 8810)], "Zoom media"),
];

/// The application table used by `app NAME`.
pub fn app_table() -> &'static [AppEntry] {
    APPS
}

/// The application whose ports a flow of IP protocol `proto` between ports `a` and `b` uses,
/// as `app NAME` would match it (the lower port, usually the server's, is tried first); for
/// display, not per frame.
pub fn app_of(proto: u8, a: u16, b: u16) -> Option<&'static str> {
    let transport_ok = |p: AppProto| match proto {
        6 => matches!(p, AppProto::Tcp | AppProto::Both),
        17 => matches!(p, AppProto::Udp | AppProto::Both),
        _ => false,
    };
    [a.min(b), a.max(b)].into_iter().find_map(|port| {
        APPS.iter()
            .find(|e| {
                transport_ok(e.proto) && e.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
            })
            .map(|e| e.name)
    })
}

/// Look up an application by (lower-case) name.
pub(crate) fn find_app(name: &str) -> Option<&'static AppEntry> {
    APPS.iter().find(|a| a.name == name)
}
