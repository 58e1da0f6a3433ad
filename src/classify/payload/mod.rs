//! Server names from the first payloads of a flow: the TLS ClientHello's SNI (over TCP, or in
//! a QUIC Initial), the HTTP/1 `Host` header, the DNS question; and the addresses in DNS
//! answers (`dns::answers`, for the classifier's DNS cache). On any port: each parser checks
//! the bytes for its protocol's structure (record and handshake types, lengths that agree, a
//! method and `HTTP/` on the request line, a DNS header with a few questions and a class DNS
//! uses, an AEAD tag) instead of trusting the port.
//!
//! Guarantees: pure functions over a byte slice; never panic, never allocate, whatever the bytes
//! (property-tested); a name is only returned when the whole name was read, and it is lower
//! case, without a trailing dot, at most 253 bytes of letters, digits, `-`, `_`, `.` and `*`,
//! and not an IPv4 address (anything else and the parser says nothing: a name with spaces or
//! control bytes is not a host name, and rules must not be steered by it).
//! QUIC Initials are decrypted for their ClientHello (`quic`: RFC 9001's public keys).
//! Not (yet) read: a ClientHello split over several TCP segments or QUIC packets (only the
//! first is seen, so a name past it is missed).

pub mod detect;
pub mod dns;
pub mod http;
pub mod quic;
pub mod tls;

/// Where a flow's server name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// TLS ClientHello, server_name extension.
    Sni,
    /// HTTP/1 request, `Host` header (or the target of a CONNECT).
    HttpHost,
    /// TLS ClientHello in a QUIC Initial, server_name extension.
    Quic,
    /// A DNS answer seen earlier that gave the flow's remote address for this name.
    DnsCache,
    /// DNS question.
    Dns,
}

impl NameSource {
    /// Does a rule on this source (`sni`, `http_host`, `dns`) take a name learnt from
    /// `learnt`? `sni` takes the ClientHello of TLS and of QUIC alike; `dns` the flow's own
    /// question and the answers seen before it alike.
    pub fn covers(self, learnt: NameSource) -> bool {
        self == learnt
            || matches!(
                (self, learnt),
                (NameSource::Sni, NameSource::Quic) | (NameSource::Dns, NameSource::DnsCache)
            )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Sni => "sni",
            NameSource::HttpHost => "http",
            NameSource::Quic => "quic",
            NameSource::DnsCache => "dns-cache",
            NameSource::Dns => "dns",
        }
    }
}

/// Longest DNS name in text form, without the trailing dot (RFC 1035: 255 octets on the wire).
pub const MAX_NAME: usize = 253;

/// Each byte as it goes into a name (lower case), or 0 when no host name holds it.
const NAME_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = (i as u8).to_ascii_lowercase();
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'*' {
            t[i] = b;
        }
        i += 1;
    }
    t
};

/// A host name, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    buf: [u8; MAX_NAME],
    len: u8,
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Name({:?})", self.as_str())
    }
}

impl Default for Name {
    fn default() -> Name {
        Name {
            buf: [0; MAX_NAME],
            len: 0,
        }
    }
}

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Only name bytes are ever stored, all ASCII.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `bytes` as a host name (see the module header), else `None`. An IPv4 address written
    /// where a name goes (`Host: 192.0.2.1`) is not a name: rules match addresses with `host`.
    pub fn from_host(bytes: &[u8]) -> Option<Name> {
        let mut n = Name::default();
        n.push_slice(bytes)?;
        if bytes.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        n.finish()
    }

    /// Append one byte, lower-cased; `None` if it cannot be part of a host name or the name is
    /// full.
    fn push(&mut self, b: u8) -> Option<()> {
        self.push_slice(&[b])
    }

    /// Append bytes, lower-cased; `None` if one cannot be part of a host name or they do not
    /// fit.
    fn push_slice(&mut self, bytes: &[u8]) -> Option<()> {
        let start = usize::from(self.len);
        let dst = self.buf.get_mut(start..start + bytes.len())?;
        for (d, &b) in dst.iter_mut().zip(bytes) {
            *d = NAME_BYTE[usize::from(b)];
            if *d == 0 {
                return None;
            }
        }
        // At most MAX_NAME (253).
        self.len = (start + bytes.len()) as u8;
        Some(())
    }

    /// Drop one trailing dot; an empty name is no name.
    fn finish(mut self) -> Option<Name> {
        if self.as_bytes().last() == Some(&b'.') {
            self.len -= 1;
        }
        (self.len > 0).then_some(self)
    }
}

/// What a flow's earlier payload left to read in the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pending {
    #[default]
    Nothing,
    /// An HTTP request line came without its `Host`: the next payload holds header lines.
    HttpHeaders,
}

/// The server name a flow's payload announces, for a frame of transport protocol `proto`
/// (6 TCP, 17 UDP) carrying `payload`; `pending` is what the flow's earlier payloads left to
/// read, and is updated. Tries each parser that fits the protocol; the first to recognise its
/// structure answers.
pub fn server_name(proto: u8, payload: &[u8], pending: &mut Pending) -> Option<(NameSource, Name)> {
    let http = |host: http::Host, pending: &mut Pending| match host {
        http::Host::Found(n) => Some((NameSource::HttpHost, n)),
        http::Host::MoreHeaders => {
            *pending = Pending::HttpHeaders;
            None
        }
        http::Host::None => None,
    };
    if std::mem::take(pending) == Pending::HttpHeaders {
        return http(http::headers(payload), pending);
    }
    match proto {
        6 => tls::client_hello_sni(payload)
            .map(|n| (NameSource::Sni, n))
            .or_else(|| http(http::request(payload), pending))
            .or_else(|| dns::tcp_question(payload).map(|n| (NameSource::Dns, n))),
        17 => quic::initial_sni(payload)
            .map(|n| (NameSource::Quic, n))
            .or_else(|| dns::question(payload).map(|n| (NameSource::Dns, n))),
        _ => None,
    }
}

/// A glob over host names: `*` stands for any run of characters (dots too), the rest matches
/// itself, case-insensitively (`*.example.com` matches `a.b.example.com`, not `example.com`).
pub fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative, with one backtrack point: linear for one `*`, O(n*m) at worst, never recursive.
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Big-endian reads that say `None` past the end.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

pub(crate) fn be24(b: &[u8], at: usize) -> Option<usize> {
    Some(
        usize::from(*b.get(at)?) << 16
            | usize::from(*b.get(at + 1)?) << 8
            | usize::from(*b.get(at + 2)?),
    )
}

#[cfg(test)]
pub(crate) mod tests;
