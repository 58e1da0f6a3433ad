//! The server name in a QUIC client Initial packet (RFC 9000 17.2.2), versions 1 (RFC 9001)
//! and 2 (RFC 9369).
//!
//! An Initial is encrypted with keys anyone can derive from its Destination Connection ID
//! (RFC 9001 5.2): HKDF-SHA256 with the version's salt, then AES-128 for header protection and
//! AES-128-GCM for the payload. This module derives them, removes the header protection,
//! decrypts the packet in a buffer on the stack (no allocation), and puts its CRYPTO frames in
//! a [`Gather`], which holds the start of the TLS ClientHello, over several packets when it
//! is longer than one; the name is read from there (`tls::handshake_sni`). The crypto is RustCrypto's (`aes-gcm`, `aes`, `hkdf`, `sha2`), never
//! written here.
//! Checks, in order: a long header with the fixed bit, version 1 or 2, the Initial type of that
//! version, connection IDs of at most 20 bytes, lengths within the datagram, and the AEAD tag
//! (a packet that does not decrypt says nothing). Only the first packet of a datagram is read.
//! Later Initials of a ClientHello spread over several use the keys of the first one's
//! connection ID, kept in the [`Gather`] (RFC 9001 5.2: the client's Destination Connection
//! ID changes once the server has answered, its Initial keys do not).

use super::{tls, Gather, Name};
use aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::Aes128Gcm;
use hkdf::Hkdf;
use sha2::Sha256;

const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Largest Initial decrypted (a datagram of a 1500-byte MTU, with room to spare).
const MAX_PACKET: usize = 2048;
const TAG: usize = 16;

/// The server name in the client Initial that `datagram` starts with, when its ClientHello is
/// all in that packet.
pub fn initial_sni(datagram: &[u8]) -> Option<Name> {
    let mut gather = Gather::default();
    initial_crypto(datagram, &mut gather).then_some(())?;
    tls::handshake_sni(gather.prefix())
}

/// Decrypt the client Initial that `datagram` starts with and put its CRYPTO frames' data in
/// `gather`, by offset; false when it is not one (or does not decrypt).
pub fn initial_crypto(datagram: &[u8], gather: &mut Gather) -> bool {
    decrypt_into(datagram, gather).is_some()
}

fn decrypt_into(datagram: &[u8], gather: &mut Gather) -> Option<()> {
    let first = *datagram.first()?;
    // Long header (0x80) with the fixed bit (0x40).
    if first & 0xc0 != 0xc0 {
        return None;
    }
    let version = u32::from_be_bytes(datagram.get(1..5)?.try_into().ok()?);
    let (salt, labels, initial_type) = match version {
        V1 => (&SALT_V1, &LABELS_V1, 0),
        V2 => (&SALT_V2, &LABELS_V2, 1),
        _ => return None,
    };
    if (first >> 4) & 3 != initial_type {
        return None;
    }
    let dcid_len = usize::from(*datagram.get(5)?);
    if dcid_len > 20 {
        return None;
    }
    let dcid = datagram.get(6..6 + dcid_len)?;
    let mut at = 6 + dcid_len;
    let scid_len = usize::from(*datagram.get(at)?);
    if scid_len > 20 {
        return None;
    }
    at += 1 + scid_len;
    let (token_len, n) = varint(datagram.get(at..)?)?;
    at += n + usize::try_from(token_len).ok()?;
    let (length, n) = varint(datagram.get(at..)?)?;
    at += n;
    let pn_offset = at;
    let end = pn_offset.checked_add(usize::try_from(length).ok()?)?;
    if end > datagram.len() || end > MAX_PACKET || length < 20 {
        return None;
    }
    // A client's Initials are all protected with keys from the Destination Connection ID of
    // its first one (RFC 9001 5.2), even after the server's reply has changed the ID it sends.
    let mut first = [0u8; 20];
    let first_len = match gather.first_dcid() {
        Some(d) => {
            first[..d.len()].copy_from_slice(d);
            d.len()
        }
        None => {
            first[..dcid_len].copy_from_slice(dcid);
            dcid_len
        }
    };
    let keys = Keys::derive(salt, labels, &first[..first_len])?;
    let mut packet = [0u8; MAX_PACKET];
    let packet = &mut packet[..end];
    packet.copy_from_slice(&datagram[..end]);
    // Header protection (RFC 9001 5.4): the sample starts 4 bytes past the packet number's
    // start, whatever its length.
    let mut mask = [0u8; 16];
    mask.copy_from_slice(packet.get(pn_offset + 4..pn_offset + 20)?);
    keys.hp.encrypt_block((&mut mask).into());
    packet[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(packet[0] & 3) + 1;
    let mut pn = 0u64;
    for i in 0..pn_len {
        packet[pn_offset + i] ^= mask[1 + i];
        pn = pn << 8 | u64::from(packet[pn_offset + i]);
    }
    let mut nonce = keys.iv;
    for (b, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *b ^= p;
    }
    let (header, body) = packet.split_at_mut(pn_offset + pn_len);
    if body.len() < TAG {
        return None;
    }
    let (ciphertext, tag) = body.split_at_mut(body.len() - TAG);
    let aead = Aes128Gcm::new((&keys.key).into());
    aead.decrypt_in_place_detached((&nonce).into(), header, ciphertext, (&*tag).into())
        .ok()?;
    gather.set_first_dcid(&first[..first_len]);
    crypto_frames(ciphertext, gather)
}

/// Put the CRYPTO frames' data in `gather` by offset (they may come in any order, and in
/// several packets). Frames a client Initial holds: PADDING, PING, ACK, CRYPTO,
/// CONNECTION_CLOSE; anything else ends the walk.
fn crypto_frames(mut frames: &[u8], gather: &mut Gather) -> Option<()> {
    while let Some(&kind) = frames.first() {
        match kind {
            0x00 | 0x01 => frames = &frames[1..],
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, then the ranges (and ECN
                // counts for 0x03).
                let mut rest = &frames[1..];
                let mut fields = [0u64; 4];
                for f in &mut fields {
                    let (v, n) = varint(rest)?;
                    *f = v;
                    rest = &rest[n..];
                }
                let extra = fields[2]
                    .checked_mul(2)?
                    .checked_add(u64::from(kind & 1) * 3)?;
                for _ in 0..extra.min(1024) {
                    let (_, n) = varint(rest)?;
                    rest = &rest[n..];
                }
                frames = rest;
            }
            0x06 => {
                let rest = &frames[1..];
                let (offset, n1) = varint(rest)?;
                let (len, n2) = varint(&rest[n1..])?;
                let len = usize::try_from(len).ok()?;
                let data = rest.get(n1 + n2..n1 + n2 + len)?;
                if let Ok(offset) = usize::try_from(offset) {
                    gather.put(offset, data);
                }
                frames = &rest[n1 + n2 + len..];
            }
            _ => break,
        }
    }
    Some(())
}

/// A QUIC variable-length integer (RFC 9000 16) and its length in bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let v = bytes[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |v, &x| v << 8 | u64::from(x));
    Some((v, len))
}

/// HKDF labels of a version: client secret, key, iv, header protection.
struct Labels {
    key: &'static [u8],
    iv: &'static [u8],
    hp: &'static [u8],
}

const LABELS_V1: Labels = Labels {
    key: b"quic key",
    iv: b"quic iv",
    hp: b"quic hp",
};
const LABELS_V2: Labels = Labels {
    key: b"quicv2 key",
    iv: b"quicv2 iv",
    hp: b"quicv2 hp",
};

struct Keys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: aes::Aes128,
}

impl Keys {
    /// The client's Initial keys for connection ID `dcid` (RFC 9001 5.2).
    fn derive(salt: &[u8], labels: &Labels, dcid: &[u8]) -> Option<Keys> {
        let (initial, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client)?;
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        expand_label(&client, labels.key, &mut key)?;
        expand_label(&client, labels.iv, &mut iv)?;
        expand_label(&client, labels.hp, &mut hp)?;
        Some(Keys {
            key,
            iv,
            hp: aes::Aes128::new((&hp).into()),
        })
    }
}

/// TLS 1.3's HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
fn expand_label(secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    let hk = Hkdf::<Sha256>::from_prk(secret).ok()?;
    let mut info = [0u8; 2 + 1 + 6 + 16 + 1];
    let len = u16::try_from(out.len()).ok()?;
    info[..2].copy_from_slice(&len.to_be_bytes());
    let full = 6 + label.len();
    info[2] = u8::try_from(full).ok()?;
    info.get_mut(3..9)?.copy_from_slice(b"tls13 ");
    info.get_mut(9..9 + label.len())?.copy_from_slice(label);
    // The context's length, 0, is already there.
    let info = &info[..3 + full + 1];
    hk.expand(info, out).ok()
}
