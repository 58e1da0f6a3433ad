//! The server name (SNI, RFC 6066) of a TLS ClientHello (RFC 8446 4.1.2; the same layout since
//! SSL 3.0) at the start of a TCP payload.
//!
//! Checks, in order: a handshake record (type 22, major version 3), a ClientHello (type 1),
//! then walks the hello's fields by their lengths, each bounded by the record and by the bytes
//! present. A ClientHello longer than the bytes given is read as far as it goes: the name is
//! found if it lies there (SNI usually comes early), and otherwise the caller is told the hello
//! goes on ([`Hello::Incomplete`]), so that it can gather the next segments.

use super::{be16, be24, Name, Token, MAX_HELLO, MAX_TOKEN};

/// What the bytes at the start of a TCP stream say of its ClientHello.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello {
    Found(Name),
    /// A ClientHello record that goes on past these bytes (and fits [`MAX_HELLO`]), without
    /// its name so far.
    Incomplete,
    /// No ClientHello, or one without a name.
    None,
}

/// The ClientHello that `payload` starts with.
pub fn client_hello(payload: &[u8]) -> Hello {
    if let Some(n) = client_hello_sni(payload) {
        return Hello::Found(n);
    }
    let is_hello = payload.first() == Some(&HANDSHAKE)
        && payload.get(1) == Some(&3)
        && payload.get(5).is_none_or(|&t| t == CLIENT_HELLO);
    match be16(payload, 3) {
        Some(len) if is_hello && payload.len() < 5 + len && 5 + len <= MAX_HELLO => {
            Hello::Incomplete
        }
        _ => Hello::None,
    }
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: usize = 0;
const EXT_ALPN: usize = 16;

/// The first ALPN protocol of the ClientHello record that `payload` starts with.
pub fn client_hello_alpn(payload: &[u8]) -> Option<Token> {
    if payload.first() != Some(&HANDSHAKE) || payload.get(1) != Some(&3) {
        return None;
    }
    handshake_alpn(payload.get(5..)?)
}

/// The first ALPN protocol of the ClientHello handshake message that `hs` starts with.
/// Protocols longer than [`MAX_TOKEN`] are not kept (RFC 7301 allows 255; the registered ones
/// are short).
pub fn handshake_alpn(hs: &[u8]) -> Option<Token> {
    let data = extension(hs, EXT_ALPN)?;
    let list = data.get(2..2 + be16(data, 0)?)?;
    let len = usize::from(*list.first()?);
    let proto = list.get(1..1 + len)?;
    if proto.len() > MAX_TOKEN {
        return None;
    }
    Token::new(proto)
}
const HOST_NAME: u8 = 0;

/// The host name of the ClientHello that `payload` starts with.
pub fn client_hello_sni(payload: &[u8]) -> Option<Name> {
    if payload.first() != Some(&HANDSHAKE) || payload.get(1) != Some(&3) {
        return None;
    }
    let record_len = be16(payload, 3)?;
    let record = payload.get(5..)?;
    let record = &record[..record_len.min(record.len())];
    handshake_sni(record)
}

/// The host name of the ClientHello handshake message that `hs` starts with (no record
/// header: as QUIC carries it in CRYPTO frames).
pub fn handshake_sni(hs: &[u8]) -> Option<Name> {
    server_name_list(extension(hs, EXT_SERVER_NAME)?)
}

/// The data of extension `kind` of the ClientHello handshake message that `hs` starts with,
/// as far as the bytes go.
fn extension(hs: &[u8], kind: usize) -> Option<&[u8]> {
    if hs.first() != Some(&CLIENT_HELLO) {
        return None;
    }
    let hello_len = be24(hs, 1)?;
    let hello = &hs[4.min(hs.len())..];
    let hello = &hello[..hello_len.min(hello.len())];
    // version (2), random (32), then three length-prefixed fields.
    let mut at = 34;
    at += 1 + usize::from(*hello.get(at)?); // session id
    at += 2 + be16(hello, at)?; // cipher suites
    at += 1 + usize::from(*hello.get(at)?); // compression methods
    let ext_end = (at + 2 + be16(hello, at)?).min(hello.len());
    at += 2;
    while at + 4 <= ext_end {
        let (k, len) = (be16(hello, at)?, be16(hello, at + 2)?);
        let data = hello.get(at + 4..(at + 4 + len).min(ext_end))?;
        if k == kind {
            return Some(data);
        }
        at += 4 + len;
    }
    None
}

/// The first host_name entry of a server_name extension (there is only ever one).
fn server_name_list(data: &[u8]) -> Option<Name> {
    let list = data.get(2..2 + be16(data, 0)?)?;
    let mut at = 0;
    while at + 3 <= list.len() {
        let len = be16(list, at + 1)?;
        let name = list.get(at + 3..at + 3 + len)?;
        if list[at] == HOST_NAME {
            return Name::from_host(name);
        }
        at += 3 + len;
    }
    None
}
