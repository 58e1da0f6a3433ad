//! Server names from the first payloads of a flow: the TLS ClientHello's SNI (over TCP, or in
//! a QUIC Initial), the HTTP/1 `Host` header, the DNS question; and the addresses in DNS
//! answers (`dns::answers`, for the classifier's DNS cache). On any port: each parser checks
//! the bytes for its protocol's structure (record and handshake types, lengths that agree, a
//! method and `HTTP/` on the request line, a DNS header with a few questions and a class DNS
//! uses, an AEAD tag) instead of trusting the port.
//!
//! Guarantees: pure functions over a byte slice; never panic, never allocate, whatever the bytes
//! (property-tested); a name is only returned when the whole name was read, and it is lower
//! case, without a trailing dot or an empty label, at most 253 bytes of letters, digits, `-`,
//! `_`, `.` and `*`, and not an IPv4 address (anything else and the parser says nothing: a name with spaces or
//! control bytes is not a host name, and rules must not be steered by it).
//! QUIC Initials are decrypted for their ClientHello (`quic`: RFC 9001's public keys).
//! A ClientHello longer than its first TCP segment or QUIC packet is gathered, by sequence
//! number or CRYPTO offset, over the flow's next payloads ([`server_name_at`], [`Gather`]: up
//! to [`MAX_HELLO`] bytes; the classifier keeps a bounded pool of them).

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

/// Longest [`Token`] kept.
pub const MAX_TOKEN: usize = 32;

/// A short printable-ASCII string kept inline in a flow's entry (no allocation): the first
/// protocol a ClientHello offers by ALPN (`h2`, `h3`), or the software of an SSH banner
/// (`OpenSSH_9.6p1`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Token {
    buf: [u8; MAX_TOKEN],
    len: u8,
}

impl Token {
    /// `bytes`, cut to [`MAX_TOKEN`]; `None` when empty or not printable ASCII.
    pub fn new(bytes: &[u8]) -> Option<Token> {
        let bytes = &bytes[..bytes.len().min(MAX_TOKEN)];
        if bytes.is_empty() || !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let mut t = Token::default();
        t.buf[..bytes.len()].copy_from_slice(bytes);
        // At most MAX_TOKEN (32).
        t.len = bytes.len() as u8;
        Some(t)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?})", self.as_str())
    }
}

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

    /// Drop one trailing dot; an empty name, one with an empty label (`.a`, `a..b`, `a..`), or
    /// one of digits and dots alone (an IPv4 address where a name goes: rules match addresses
    /// with `host`) is no name.
    fn finish(mut self) -> Option<Name> {
        if self.as_bytes().last() == Some(&b'.') {
            self.len -= 1;
        }
        let b = self.as_bytes();
        let empty_label =
            b.first() == Some(&b'.') || b.last() == Some(&b'.') || b.windows(2).any(|w| w == b"..");
        let numeric = b.iter().all(|&c| c.is_ascii_digit() || c == b'.');
        (!b.is_empty() && !empty_label && !numeric).then_some(self)
    }
}

/// Longest ClientHello gathered across TCP segments or QUIC packets (a post-quantum key share
/// makes one of 1.8-2.6 KB; an Encrypted ClientHello more).
pub const MAX_HELLO: usize = 4096;

/// Bytes of a stream gathered by offset, in any order, with the bytes present marked: the
/// start of a ClientHello spread over TCP segments (offset: sequence number from its first) or
/// over the CRYPTO frames of QUIC packets. Bytes past [`MAX_HELLO`] are not kept.
#[derive(Clone)]
pub struct Gather {
    bytes: [u8; MAX_HELLO],
    filled: [u64; MAX_HELLO / 64],
    /// QUIC: the Destination Connection ID of the first Initial, whose keys protect the
    /// client's later ones.
    dcid: [u8; 20],
    dcid_len: u8,
}

impl Default for Gather {
    fn default() -> Gather {
        Gather {
            bytes: [0; MAX_HELLO],
            filled: [0; MAX_HELLO / 64],
            dcid: [0; 20],
            dcid_len: 0,
        }
    }
}

impl Gather {
    /// Forget everything (only the marks: unmarked bytes are never read).
    pub fn clear(&mut self) {
        self.filled = [0; MAX_HELLO / 64];
        self.dcid_len = 0;
    }

    /// The QUIC connection ID recorded by [`set_first_dcid`](Self::set_first_dcid).
    pub fn first_dcid(&self) -> Option<&[u8]> {
        (self.dcid_len > 0).then(|| &self.dcid[..usize::from(self.dcid_len)])
    }

    /// Record the connection ID of a flow's first Initial (once; at most 20 bytes kept).
    pub fn set_first_dcid(&mut self, dcid: &[u8]) {
        if self.dcid_len == 0 {
            let n = dcid.len().min(20);
            self.dcid[..n].copy_from_slice(&dcid[..n]);
            // At most 20.
            self.dcid_len = n as u8;
        }
    }

    /// Keep `data` at `offset`; what lies past [`MAX_HELLO`] is dropped.
    pub fn put(&mut self, offset: usize, data: &[u8]) {
        if offset >= MAX_HELLO {
            return;
        }
        let n = data.len().min(MAX_HELLO - offset);
        self.bytes[offset..offset + n].copy_from_slice(&data[..n]);
        for i in offset..offset + n {
            self.filled[i / 64] |= 1 << (i % 64);
        }
    }

    /// The bytes present from offset 0 without a gap.
    pub fn prefix(&self) -> &[u8] {
        let words = self.filled.iter().take_while(|&&w| w == u64::MAX).count();
        let len = match self.filled.get(words) {
            Some(w) => words * 64 + w.trailing_ones() as usize,
            None => MAX_HELLO,
        };
        &self.bytes[..len]
    }
}

/// What a flow's earlier payload left to read in the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pending {
    #[default]
    Nothing,
    /// An HTTP request line came without its `Host`: the next payload holds header lines.
    HttpHeaders,
    /// A TLS ClientHello longer than its first segment, which began at TCP sequence number
    /// `start` going direction `dir` of the flow: the flow's [`Gather`] holds what came so far,
    /// from `pieces` payloads.
    TlsHello { start: u32, dir: u8, pieces: u8 },
    /// A QUIC client Initial whose ClientHello goes on in another Initial: the flow's
    /// [`Gather`] holds the CRYPTO data so far, from `pieces` datagrams.
    QuicHello { pieces: u8 },
}

/// Payloads a ClientHello is gathered from at most (a hello of [`MAX_HELLO`] bytes in
/// 64-byte segments); past that the flow's name is given up.
pub const MAX_HELLO_PIECES: u8 = 64;

impl Pending {
    /// A ClientHello is being gathered.
    pub fn gathering(self) -> bool {
        matches!(self, Pending::TlsHello { .. } | Pending::QuicHello { .. })
    }
}

/// Where a payload sits in its flow: its direction (0 or 1) and, for TCP, its sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct At {
    pub dir: u8,
    pub seq: u32,
}

/// The server name a flow's payload announces, for a frame of transport protocol `proto`
/// (6 TCP, 17 UDP) carrying `payload`; `pending` is what the flow's earlier payloads left to
/// read, and is updated. Tries each parser that fits the protocol; the first to recognise its
/// structure answers. A ClientHello spread over several payloads is not read (see
/// [`server_name_at`]).
pub fn server_name(proto: u8, payload: &[u8], pending: &mut Pending) -> Option<(NameSource, Name)> {
    let mut gather = Gather::default();
    let found = server_name_at(proto, payload, At::default(), pending, &mut gather);
    if pending.gathering() {
        *pending = Pending::Nothing;
    }
    found
}

/// [`server_name`], gathering a ClientHello that goes on past this payload in `gather`: when
/// `pending` is `TlsHello` or `QuicHello` on entry, `gather` must hold what the flow's earlier
/// payloads gathered (else anything: it is cleared before use), and when it is on return,
/// `gather` holds the flow's hello so far, for its next payload.
pub fn server_name_at(
    proto: u8,
    payload: &[u8],
    at: At,
    pending: &mut Pending,
    gather: &mut Gather,
) -> Option<(NameSource, Name)> {
    let http = |host: http::Host, pending: &mut Pending| match host {
        http::Host::Found(n) => Some((NameSource::HttpHost, n)),
        http::Host::MoreHeaders => {
            *pending = Pending::HttpHeaders;
            None
        }
        http::Host::None => None,
    };
    match (std::mem::take(pending), proto) {
        (Pending::HttpHeaders, _) => return http(http::headers(payload), pending),
        (Pending::TlsHello { start, dir, pieces }, 6) if pieces < MAX_HELLO_PIECES => {
            if at.dir == dir {
                // A retransmission lands where it was; a later segment, past what came.
                gather.put(at.seq.wrapping_sub(start) as usize, payload);
            }
            return tls_gathered(gather, start, dir, pieces + 1, pending);
        }
        (Pending::QuicHello { pieces }, 17) if pieces < MAX_HELLO_PIECES => {
            // Any datagram of the flow may come first: only a client Initial of its
            // connection decrypts.
            quic::initial_crypto(payload, gather);
            return quic_gathered(gather, pieces + 1, pending);
        }
        // Too many pieces: given up, not begun again with this payload.
        (Pending::TlsHello { .. } | Pending::QuicHello { .. }, _) => return None,
        _ => {}
    }
    match proto {
        6 => match tls::client_hello(payload) {
            tls::Hello::Found(n) => Some((NameSource::Sni, n)),
            tls::Hello::Incomplete => {
                gather.clear();
                gather.put(0, payload);
                tls_gathered(gather, at.seq, at.dir, 1, pending)
            }
            tls::Hello::None => http(http::request(payload), pending)
                .or_else(|| dns::tcp_question(payload).map(|n| (NameSource::Dns, n))),
        },
        17 => {
            gather.clear();
            if quic::initial_crypto(payload, gather) {
                return quic_gathered(gather, 1, pending);
            }
            dns::question(payload).map(|n| (NameSource::Dns, n))
        }
        _ => None,
    }
}

/// The name of the ClientHello gathered so far over TCP; `TlsHello` pending while it may still
/// come.
fn tls_gathered(
    gather: &Gather,
    start: u32,
    dir: u8,
    pieces: u8,
    pending: &mut Pending,
) -> Option<(NameSource, Name)> {
    match tls::client_hello(gather.prefix()) {
        tls::Hello::Found(n) => Some((NameSource::Sni, n)),
        tls::Hello::Incomplete => {
            *pending = Pending::TlsHello { start, dir, pieces };
            None
        }
        tls::Hello::None => None,
    }
}

/// The name of the ClientHello in the CRYPTO data gathered so far; `QuicHello` pending while
/// it may still come.
fn quic_gathered(gather: &Gather, pieces: u8, pending: &mut Pending) -> Option<(NameSource, Name)> {
    let hs = gather.prefix();
    if let Some(n) = tls::handshake_sni(hs) {
        return Some((NameSource::Quic, n));
    }
    // A ClientHello (type 1) whose declared length is not all here yet.
    let declared = be24(hs, 1).map(|n| 4 + n);
    let more = hs.first().is_none_or(|&t| t == 1)
        && declared.is_none_or(|n| n > hs.len() && n <= MAX_HELLO);
    if more {
        *pending = Pending::QuicHello { pieces };
    }
    None
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
