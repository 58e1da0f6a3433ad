//! The question name of a DNS message (RFC 1035 4.1), over UDP or over TCP (with its 2-byte
//! length prefix).
//!
//! Checks a header that a DNS message would have: opcode QUERY, NOTIFY or UPDATE (whose zone
//! section is laid out as a question), 1 to 16 questions, counts a message could hold, and a
//! first question name of labels that ends within the message, followed by its type and a
//! class DNS uses, and not NetBIOS name service's (a first label of 32 letters A-P). Queries
//! and responses both carry the question; the first one is the name. A compression pointer in
//! the first question is not followed (nothing can precede it).

use super::{be16, Name, MAX_NAME};

const HEADER: usize = 12;

/// The question of the DNS message in a UDP payload.
pub fn question(payload: &[u8]) -> Option<Name> {
    first_question(payload).map(|(name, _)| name)
}

/// A DNS message: one with a question that [`question`] reads, or a response without one
/// (mDNS announcements: no question, a few answers) whose first record is laid out as one.
pub fn is_message(payload: &[u8]) -> bool {
    question(payload).is_some() || is_announcement(payload).is_some()
}

fn is_announcement(payload: &[u8]) -> Option<()> {
    let flags = be16(payload, 2)?;
    let (qd, an, ns, ar) = counts(payload)?;
    // A response, opcode QUERY, no question, a few answers a message of this size can hold.
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 || qd != 0 || an == 0 {
        return None;
    }
    if an + ns + ar > payload.len() / 11 {
        return None;
    }
    if is_netbios_name(payload) {
        return None;
    }
    // The first record: a name of labels, then type, class, TTL and data within the message.
    let at = skip_name(payload, HEADER)?;
    let class = be16(payload, at + 2)? & 0x7fff;
    let len = be16(payload, at + 8)?;
    (matches!(class, 1 | 3 | 4 | 254 | 255) && at + 10 + len <= payload.len()).then_some(())
}

/// Answers at most read from one response.
const MAX_ANSWERS: usize = 64;

/// An address a DNS response gave for its question's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// As in `FrameView` (IPv4 in the low 32 bits).
    pub addr: u128,
    pub v6: bool,
    pub ttl: u32,
}

/// The question of a successful DNS response in a UDP payload, calling `each` with every
/// A and AAAA record among its answers (those of a CNAME chain's end too: the client asked
/// for the question's name, so that is the name of every address it got). `None` for a query,
/// an error, or a message that is not DNS.
pub fn answers(payload: &[u8], mut each: impl FnMut(&Name, Answer)) -> Option<Name> {
    let flags = be16(payload, 2)?;
    // QR set, opcode QUERY, RCODE NOERROR.
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 || flags & 0xf != 0 {
        return None;
    }
    let (name, mut at) = first_question(payload)?;
    let (qd, an) = (be16(payload, 4)?, be16(payload, 6)?);
    // Further questions (rare): their names and type and class.
    for _ in 1..qd {
        at = skip_name(payload, at)? + 4;
    }
    for _ in 0..an.min(MAX_ANSWERS) {
        at = skip_name(payload, at)?;
        let (kind, ttl_hi, ttl_lo, len) = (
            be16(payload, at)?,
            be16(payload, at + 4)?,
            be16(payload, at + 6)?,
            be16(payload, at + 8)?,
        );
        let data = payload.get(at + 10..at + 10 + len)?;
        let ttl = (ttl_hi as u32) << 16 | ttl_lo as u32;
        match (kind, data.len()) {
            (1, 4) => each(
                &name,
                Answer {
                    addr: u128::from(u32::from_be_bytes(data.try_into().ok()?)),
                    v6: false,
                    ttl,
                },
            ),
            (28, 16) => each(
                &name,
                Answer {
                    addr: u128::from_be_bytes(data.try_into().ok()?),
                    v6: true,
                    ttl,
                },
            ),
            _ => {}
        }
        at += 10 + len;
    }
    Some(name)
}

/// Past a name at `at`: labels up to the root, or up to a compression pointer.
fn skip_name(payload: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *payload.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l > 63 => return None,
            l => at += 1 + usize::from(l),
        }
    }
    None
}

/// NetBIOS name service (port 137) borrows DNS's layout, with a first label of 32 letters A
/// to P (a NetBIOS name, half a byte per letter): not DNS, and not a host name.
fn is_netbios_name(payload: &[u8]) -> bool {
    payload
        .get(HEADER..HEADER + 33)
        .is_some_and(|l| l[0] == 32 && l[1..].iter().all(|b| (b'A'..=b'P').contains(b)))
}

/// The header's record counts: questions, answers, authority and additional records.
fn counts(payload: &[u8]) -> Option<(usize, usize, usize, usize)> {
    Some((
        be16(payload, 4)?,
        be16(payload, 6)?,
        be16(payload, 8)?,
        be16(payload, 10)?,
    ))
}

/// The first question's name, and where the record after it starts.
fn first_question(payload: &[u8]) -> Option<(Name, usize)> {
    let flags = be16(payload, 2)?;
    let (qd, an, ns, ar) = counts(payload)?;
    // Opcode (bits 11-14) QUERY, NOTIFY or UPDATE; a few questions; no message of this size
    // holds more records (each takes at least 11 bytes).
    if !matches!((flags >> 11) & 0xf, 0 | 4 | 5)
        || !(1..=16).contains(&qd)
        || qd + an + ns + ar > payload.len() / 5
    {
        return None;
    }
    if is_netbios_name(payload) {
        return None;
    }
    let mut name = Name::default();
    let mut at = HEADER;
    loop {
        let len = usize::from(*payload.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // 0xc0: a pointer; 0x40 and 0x80: reserved label types.
        if len > 63 || usize::from(name.len) + len + 1 > MAX_NAME + 1 {
            return None;
        }
        if !name.is_empty() {
            name.push(b'.')?;
        }
        name.push_slice(payload.get(at..at + len)?)?;
        at += len;
    }
    // Type and class follow the name: class IN, CH, HS, NONE or ANY (mDNS sets the top bit).
    let class = be16(payload, at + 2)? & 0x7fff;
    if !matches!(class, 1 | 3 | 4 | 254 | 255) {
        return None;
    }
    Some((name.finish()?, at + 4))
}

/// The question of the DNS message at the start of a TCP payload (length-prefixed).
pub fn tcp_question(payload: &[u8]) -> Option<Name> {
    let len = be16(payload, 0)?;
    let message = payload.get(2..)?;
    if len < HEADER {
        return None;
    }
    question(&message[..len.min(message.len())])
}
