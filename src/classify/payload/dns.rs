//! The question name of a DNS message (RFC 1035 4.1), over UDP or over TCP (with its 2-byte
//! length prefix).
//!
//! Checks a header that a DNS message would have: opcode QUERY, NOTIFY or UPDATE (whose zone
//! section is laid out as a question), 1 to 16 questions, counts a message could hold, and a
//! first question name of labels that ends within the message, followed by its type and a
//! class DNS uses. Queries and responses both carry the question; the first one is the name.
//! A compression pointer in the first question is not followed (nothing can precede it).

use super::{be16, Name, MAX_NAME};

const HEADER: usize = 12;

/// The question of the DNS message in a UDP payload.
pub fn question(payload: &[u8]) -> Option<Name> {
    let flags = be16(payload, 2)?;
    let (qd, an, ns, ar) = (
        be16(payload, 4)?,
        be16(payload, 6)?,
        be16(payload, 8)?,
        be16(payload, 10)?,
    );
    // Opcode (bits 11-14) QUERY, NOTIFY or UPDATE; a few questions; no message of this size
    // holds more records (each takes at least 11 bytes).
    if !matches!((flags >> 11) & 0xf, 0 | 4 | 5)
        || !(1..=16).contains(&qd)
        || qd + an + ns + ar > payload.len() / 5
    {
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
        for &b in payload.get(at..at + len)? {
            name.push(b)?;
        }
        at += len;
    }
    // Type and class follow the name: class IN, CH, HS, NONE or ANY (mDNS sets the top bit).
    let class = be16(payload, at + 2)? & 0x7fff;
    if !matches!(class, 1 | 3 | 4 | 254 | 255) {
        return None;
    }
    name.finish()
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
