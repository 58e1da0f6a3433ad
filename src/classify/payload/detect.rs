//! Which protocol a flow speaks, from the structure of its first payloads, on any port.
//!
//! Each signature checks what the protocol's own header fixes, never a port:
//! - TLS: a record header (content type 20-23, version 3.0-3.4, a length a record can have);
//! - HTTP/1: a request line (method, target, `HTTP/`) or a status line (`HTTP/1.x `);
//! - SSH: the identification string `SSH-<digit>.`;
//! - DNS: a header and a first question that parse (`dns`), or a response without a question
//!   whose first record does (mDNS announcements); over UDP, or TCP with its length;
//! - QUIC: a long header with the fixed bit, a version in use (1, 2, the IETF drafts, Google's
//!   `Q0xx`/`T0xx`) and connection IDs of at most 20 bytes;
//! - STUN (and TURN, which is STUN): the magic cookie 0x2112A442, the top two bits clear and a
//!   length that is the rest of the message, a multiple of 4;
//! - WireGuard: a message type 1-4, three zero bytes, and the exact size of that message type
//!   (148, 92, 64; transport data 32 bytes or more in steps of 16);
//! - RTP: two packets of one direction with version 2, a payload type RTP profiles use, a
//!   header (CSRCs, extension, padding) that fits, the same SSRC and a sequence number a few
//!   steps on; RTCP: a compound packet starting with a sender or receiver report whose lengths
//!   add up to the datagram (SRTCP's trailer of up to 20 bytes allowed);
//! - BitTorrent: the peer handshake (`\x13BitTorrent protocol`), a DHT message (a bencoded
//!   dictionary with a `y` key), or a uTP header (version 1, a type 0-4, an extension 0-4,
//!   and 20 bytes exactly when it carries no data);
//! - SIP: a request line ending in ` SIP/2.0` or a status line starting `SIP/2.0 `.
//!
//! Guarantees: never panics, never allocates, whatever the bytes; a flow is said to speak a
//! protocol only when one of these holds. What cannot be told (encrypted peer-to-peer, a flow
//! caught mid-stream in a protocol without framing) is left unknown: the rule language then
//! falls back to ports where the application table says so.

use super::{be16, dns, http};

/// A protocol told from payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    BitTorrent,
    Dns,
    Http,
    Quic,
    Rtp,
    Sip,
    Ssh,
    Stun,
    Tls,
    WireGuard,
}

impl Protocol {
    pub const ALL: [Protocol; 10] = [
        Protocol::BitTorrent,
        Protocol::Dns,
        Protocol::Http,
        Protocol::Quic,
        Protocol::Rtp,
        Protocol::Sip,
        Protocol::Ssh,
        Protocol::Stun,
        Protocol::Tls,
        Protocol::WireGuard,
    ];

    /// The IP protocols (6 TCP, 17 UDP) it is told on.
    pub fn transports(self) -> &'static [u8] {
        match self {
            Protocol::Http | Protocol::Ssh | Protocol::Tls => &[6],
            Protocol::Quic | Protocol::Rtp | Protocol::WireGuard => &[17],
            Protocol::BitTorrent | Protocol::Dns | Protocol::Sip | Protocol::Stun => &[6, 17],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::BitTorrent => "bittorrent",
            Protocol::Dns => "dns",
            Protocol::Http => "http",
            Protocol::Quic => "quic",
            Protocol::Rtp => "rtp",
            Protocol::Sip => "sip",
            Protocol::Ssh => "ssh",
            Protocol::Stun => "stun",
            Protocol::Tls => "tls",
            Protocol::WireGuard => "wireguard",
        }
    }
}

/// What a flow's earlier payloads left for the signatures that need two packets (RTP, uTP):
/// the last such packet's kind, stream id (SSRC, connection id) and sequence number, per
/// direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectState {
    kind: [Stream; 2],
    id: [u32; 2],
    seq: [u16; 2],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stream {
    #[default]
    None,
    Rtp,
    Utp,
}

/// Packets of one stream whose sequence numbers are further apart than this are not taken
/// as one stream (losses and reordering stay well within it).
const MAX_SEQ_STEP: u16 = 64;

impl DetectState {
    /// Record a packet of stream `kind`; is it the next of the one recorded before in its
    /// direction? `ids_match` compares the stream ids (recorded, this one).
    fn follows(
        &mut self,
        dir: usize,
        kind: Stream,
        id: u32,
        seq: u16,
        ids_match: impl Fn(u32, u32) -> bool,
    ) -> bool {
        let d = dir & 1;
        let step = seq.wrapping_sub(self.seq[d]);
        let same =
            self.kind[d] == kind && ids_match(self.id[d], id) && (1..=MAX_SEQ_STEP).contains(&step);
        (self.kind[d], self.id[d], self.seq[d]) = (kind, id, seq);
        same
    }
}

/// The protocol `payload`, a TCP (6) or UDP (17) payload going direction `dir` (0 or 1) of its
/// flow, shows; `state` carries what an earlier packet of the flow left.
pub fn protocol(
    proto: u8,
    payload: &[u8],
    dir: usize,
    state: &mut DetectState,
) -> Option<Protocol> {
    match proto {
        6 => tcp(payload),
        17 => udp(payload, dir, state),
        _ => None,
    }
}

fn tcp(p: &[u8]) -> Option<Protocol> {
    if is_tls_record(p) {
        Some(Protocol::Tls)
    } else if http::is_message(p) {
        Some(Protocol::Http)
    } else if is_ssh(p) {
        Some(Protocol::Ssh)
    } else if p.starts_with(b"\x13BitTorrent protocol") {
        Some(Protocol::BitTorrent)
    } else if dns::tcp_question(p).is_some() {
        Some(Protocol::Dns)
    } else if is_sip(p) {
        Some(Protocol::Sip)
    } else if is_stun(p) {
        // STUN over TCP has the same header (RFC 8489 7.2.2).
        Some(Protocol::Stun)
    } else {
        None
    }
}

fn udp(p: &[u8], dir: usize, state: &mut DetectState) -> Option<Protocol> {
    if is_quic_long_header(p) {
        Some(Protocol::Quic)
    } else if is_stun(p) {
        Some(Protocol::Stun)
    } else if is_wireguard(p) {
        Some(Protocol::WireGuard)
    } else if dns::is_message(p) {
        Some(Protocol::Dns)
    } else if is_rtcp(p) || is_rtp_stream(p, dir, state) {
        Some(Protocol::Rtp)
    } else if is_dht(p) || is_utp_stream(p, dir, state) {
        Some(Protocol::BitTorrent)
    } else if is_sip(p) {
        Some(Protocol::Sip)
    } else {
        None
    }
}

fn is_tls_record(p: &[u8]) -> bool {
    let ok_len = be16(p, 3).is_some_and(|n| (1..=(1 << 14) + 2048).contains(&n));
    matches!(p, [20..=23, 3, 0..=4, ..]) && ok_len
}

fn is_ssh(p: &[u8]) -> bool {
    matches!(p, [b'S', b'S', b'H', b'-', b'0'..=b'9', b'.', ..])
}

/// The software of the SSH identification string that `p` starts with (RFC 4253 4.2:
/// `SSH-protoversion-softwareversion SP comments CR LF`): `OpenSSH_9.6p1`, cut to
/// [`MAX_TOKEN`](super::MAX_TOKEN) bytes.
pub fn ssh_software(p: &[u8]) -> Option<super::Token> {
    if !is_ssh(p) {
        return None;
    }
    // The line is at most 255 bytes; the software ends at a space or the line's end.
    let line = &p[..p.len().min(255)];
    let rest = &line[4..];
    let rest = &rest[rest.iter().position(|&b| b == b'-')? + 1..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(rest.len());
    super::Token::new(&rest[..end])
}

fn is_sip(p: &[u8]) -> bool {
    let line = p.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let method = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=12).contains(&method)
        && line.get(method) == Some(&b' ')
        && line.ends_with(b" SIP/2.0")
        && line.get(method + 1..method + 5).is_some_and(|s| {
            s.eq_ignore_ascii_case(b"sip:") || s.eq_ignore_ascii_case(b"sips") || s == b"tel:"
        })
}

fn is_stun(p: &[u8]) -> bool {
    let len = be16(p, 2);
    p.len() >= 20
        && p[0] & 0xc0 == 0
        && p[4..8] == [0x21, 0x12, 0xa4, 0x42]
        && len.is_some_and(|n| n % 4 == 0 && n == p.len() - 20)
}

fn is_wireguard(p: &[u8]) -> bool {
    let n = p.len();
    match p {
        [t @ 1..=4, 0, 0, 0, ..] => match t {
            1 => n == 148,
            2 => n == 92,
            3 => n == 64,
            _ => n >= 32 && (n - 16).is_multiple_of(16),
        },
        _ => false,
    }
}

fn is_quic_long_header(p: &[u8]) -> bool {
    let (Some(&first), Some(v)) = (p.first(), p.get(1..5)) else {
        return false;
    };
    let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    let known = matches!(version, 1 | 0x6b33_43cf)
        || version & 0xffff_ff00 == 0xff00_0000
        || matches!(version >> 16, 0x5130 | 0x5430);
    let dcid = usize::from(p.get(5).copied().unwrap_or(u8::MAX));
    let scid = p.get(6 + dcid).copied().unwrap_or(u8::MAX);
    first & 0xc0 == 0xc0 && known && dcid <= 20 && scid <= 20
}

/// Payload types of RTP profiles (RFC 3551's static ones and the dynamic range); 72-76 would
/// clash with RTCP and are RTCP's.
fn is_rtp_payload_type(pt: u8) -> bool {
    pt <= 34 || (96..=127).contains(&pt)
}

/// The SSRC and sequence number of an RTP-shaped packet.
fn rtp_header(p: &[u8]) -> Option<(u32, u16)> {
    let (b0, b1) = (*p.first()?, *p.get(1)?);
    if b0 >> 6 != 2 || !is_rtp_payload_type(b1 & 0x7f) {
        return None;
    }
    let mut header = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        header += 4 + 4 * be16(p, header + 2)?;
    }
    let padding = if b0 & 0x20 != 0 {
        usize::from(*p.last()?).max(1)
    } else {
        0
    };
    if header + padding > p.len() {
        return None;
    }
    let ssrc = u32::from_be_bytes(p.get(8..12)?.try_into().ok()?);
    Some((ssrc, be16(p, 2)? as u16))
}

/// This packet and the last RTP-shaped one of its direction are one RTP stream.
fn is_rtp_stream(p: &[u8], dir: usize, s: &mut DetectState) -> bool {
    rtp_header(p).is_some_and(|(ssrc, seq)| s.follows(dir, Stream::Rtp, ssrc, seq, |a, b| a == b))
}

/// A compound RTCP packet: a sender or receiver report first, every packet's length within
/// the datagram, and the rest an SRTCP trailer (index and tag) at most.
fn is_rtcp(p: &[u8]) -> bool {
    if !matches!(p, [0x80..=0xbf, 200 | 201, ..]) {
        return false;
    }
    let mut at = 0;
    for _ in 0..16 {
        let (Some(&b0), Some(&pt), Some(words)) = (p.get(at), p.get(at + 1), be16(p, at + 2))
        else {
            break;
        };
        if b0 >> 6 != 2 || !(192..=223).contains(&pt) || at + 4 * (words + 1) > p.len() {
            break;
        }
        at += 4 * (words + 1);
    }
    at > 0 && p.len() - at <= 20 && (p.len() - at).is_multiple_of(2)
}

/// A BitTorrent DHT (KRPC) message: a bencoded dictionary with its type key `y`.
fn is_dht(p: &[u8]) -> bool {
    matches!(p, [b'd', b'1', b':', b'a' | b'r' | b'e' | b't', ..])
        && p.last() == Some(&b'e')
        && p.windows(5).any(|w| w == b"1:y1:")
}

/// A uTP (BEP 29) header: version 1, type 0-4, a known extension, and a packet that is only
/// a header (20 bytes) unless it is data or carries extensions.
fn utp_header(p: &[u8]) -> Option<(u32, u16)> {
    let (b0, ext) = (*p.first()?, *p.get(1)?);
    let kind = b0 >> 4;
    let ok = b0 & 0x0f == 1
        && kind <= 4
        && ext <= 4
        && p.len() >= 20
        && (kind == 0 || ext != 0 || p.len() == 20)
        && (kind != 0 || p.len() > 20);
    ok.then_some((be16(p, 2)? as u32, be16(p, 16)? as u16))
}

/// This packet and the last uTP-shaped one of its direction are one uTP connection: the same
/// connection id (or the next: a SYN carries the id its sender receives on, one below the id
/// it sends with) and a sequence number a few steps on.
fn is_utp_stream(p: &[u8], dir: usize, s: &mut DetectState) -> bool {
    utp_header(p).is_some_and(|(id, seq)| {
        s.follows(dir, Stream::Utp, id, seq, |a, b| b.wrapping_sub(a) <= 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ssrc: u32, pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 160];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    fn udp_of(packets: &[(usize, Vec<u8>)]) -> Option<Protocol> {
        let mut s = DetectState::default();
        packets
            .iter()
            .map(|(d, p)| protocol(17, p, *d, &mut s))
            .last()
            .flatten()
    }

    #[test]
    fn rtp_needs_two_packets_of_one_stream() {
        assert_eq!(
            udp_of(&[(0, rtp(7, 0xabc, 0))]),
            None,
            "one packet proves nothing"
        );
        assert_eq!(
            udp_of(&[(0, rtp(7, 0xabc, 0)), (0, rtp(8, 0xabc, 0))]),
            Some(Protocol::Rtp)
        );
        assert_eq!(
            udp_of(&[
                (0, rtp(7, 0xabc, 0)),
                (1, rtp(900, 0xdef, 8)),
                (0, rtp(9, 0xabc, 0))
            ]),
            Some(Protocol::Rtp),
            "directions are followed apart"
        );
        assert_eq!(
            udp_of(&[(0, rtp(7, 0xabc, 0)), (0, rtp(8, 0xabd, 0))]),
            None,
            "another SSRC"
        );
        assert_eq!(
            udp_of(&[(0, rtp(7, 0xabc, 0)), (0, rtp(7000, 0xabc, 0))]),
            None,
            "a sequence jump"
        );
        assert_eq!(
            udp_of(&[(0, rtp(7, 0xabc, 50)), (0, rtp(8, 0xabc, 50))]),
            None,
            "payload type 50 is no RTP profile's"
        );
    }

    #[test]
    fn rtcp_is_rtp_when_its_lengths_add_up() {
        // A receiver report with one block (8 words) followed by an SDES of 3 words.
        let mut p = vec![0x81, 201, 0, 7];
        p.extend_from_slice(&[0; 28]);
        p.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 1, b'a', 0]);
        assert!(is_rtcp(&p));
        assert_eq!(udp_of(&[(0, p.clone())]), Some(Protocol::Rtp));
        let mut srtcp = p.clone();
        srtcp.extend_from_slice(&[0x80, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert!(is_rtcp(&srtcp), "SRTCP's index and tag");
        p.push(0);
        assert!(!is_rtcp(&p), "a byte too many");
    }

    #[test]
    fn fixed_headers_are_recognised() {
        let mut stun = vec![0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[9; 12]);
        stun.extend_from_slice(&[0, 0x24, 0, 0]);
        assert_eq!(udp_of(&[(0, stun.clone())]), Some(Protocol::Stun));
        stun.push(0);
        assert_eq!(udp_of(&[(0, stun)]), None, "length disagrees");

        let mut wg = vec![1, 0, 0, 0];
        wg.resize(148, 7);
        assert_eq!(udp_of(&[(0, wg.clone())]), Some(Protocol::WireGuard));
        wg.pop();
        assert_eq!(udp_of(&[(0, wg)]), None);

        let dht = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec();
        assert_eq!(udp_of(&[(0, dht)]), Some(Protocol::BitTorrent));
        let mut utp_syn = vec![0x41, 0, 0x12, 0x34];
        utp_syn.resize(20, 3);
        utp_syn[16..18].copy_from_slice(&[0, 1]);
        assert_eq!(
            udp_of(&[(0, utp_syn.clone())]),
            None,
            "one uTP header proves nothing"
        );
        let mut utp_data = vec![0x01, 0, 0x12, 0x35];
        utp_data.resize(120, 9);
        utp_data[16..18].copy_from_slice(&[0, 2]);
        assert_eq!(
            udp_of(&[(0, utp_syn), (1, utp_data.clone()), (0, utp_data)]),
            Some(Protocol::BitTorrent)
        );

        let mut quic = vec![0xc3, 0, 0, 0, 1, 8];
        quic.extend_from_slice(&[1; 8]);
        quic.push(0);
        quic.resize(1200, 0);
        assert_eq!(udp_of(&[(0, quic)]), Some(Protocol::Quic));

        let sip = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n\r\n".to_vec();
        assert_eq!(udp_of(&[(0, sip.clone())]), Some(Protocol::Sip));
        let mut s = DetectState::default();
        assert_eq!(protocol(6, &sip, 0, &mut s), Some(Protocol::Sip));
        for (p, want) in [
            (&b"SSH-2.0-OpenSSH_9.6\r\n"[..], Protocol::Ssh),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", Protocol::Tls),
            (b"\x17\x03\x03\x00\x20", Protocol::Tls),
            (b"GET / HTTP/1.1\r\n", Protocol::Http),
            (b"HTTP/1.1 200 OK\r\n", Protocol::Http),
            (
                b"\x13BitTorrent protocol\0\0\0\0\0\0\0\0",
                Protocol::BitTorrent,
            ),
        ] {
            assert_eq!(protocol(6, p, 0, &mut s), Some(want), "{p:?}");
        }
        for p in [
            &b"hello"[..],
            b"",
            b"\x16\x03\x01\x00\x00",
            b"SSH-x",
            b"GET /",
        ] {
            assert_eq!(protocol(6, p, 0, &mut s), None, "{p:?}");
        }
    }

    #[test]
    fn any_bytes_are_safe() {
        // A cheap sweep; the fuzz target goes further.
        let mut s = DetectState::default();
        let mut x = 0x1234_5678u32;
        for len in 0..300 {
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for proto in [6, 17, 1] {
                let _ = protocol(proto, &p, len & 1, &mut s);
            }
        }
    }
}
