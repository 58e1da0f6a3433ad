//! The `Host` of an HTTP/1.x request at the start of a TCP payload (RFC 9112 3.2).
//!
//! Checks that the payload starts with a request line: a method (1 to 16 capital letters,
//! digits, `-` or `_`, as `CCM_POST`), a space, and `HTTP/` on the line; then looks for the
//! `Host` header among the header lines present (case-insensitive name, optional whitespace,
//! the port dropped). A CONNECT request names its host in its target (else in its `Host`).
//! A request whose headers go on in the next segment
//! (some clients send the request line alone) says so, and the next segment is read as header
//! lines.

use super::Name;

/// What a segment said. (The name is inline: boxing it would allocate per frame.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Found(Name),
    /// A request whose header lines went on past this segment without a `Host`.
    MoreHeaders,
    /// Not a request, or its headers ended without a `Host`.
    None,
}

/// An HTTP/1 request line or status line starts `payload`.
pub fn is_message(payload: &[u8]) -> bool {
    payload.starts_with(b"HTTP/1.") || request_line(payload).is_some()
}

/// The length of the method and the end of the request line `payload` starts with.
fn request_line(payload: &[u8]) -> Option<(usize, usize)> {
    let method_len = payload
        .iter()
        .take(17)
        .position(|&b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
        .unwrap_or(17);
    if !(1..=16).contains(&method_len) || payload.get(method_len) != Some(&b' ') {
        return None;
    }
    let line_end = payload
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(payload.len());
    trim(&payload[..line_end])
        .windows(5)
        .any(|w| w == b"HTTP/")
        .then_some((method_len, line_end))
}

/// The request at the start of `payload`.
pub fn request(payload: &[u8]) -> Host {
    let Some((method_len, line_end)) = request_line(payload) else {
        return Host::None;
    };
    let request_line = trim(&payload[..line_end]);
    if &payload[..method_len] == b"CONNECT" {
        let target = request_line[method_len + 1..]
            .split(|&b| b == b' ')
            .next()
            .unwrap_or(&[]);
        if let Some(name) = Name::from_host(strip_port(target)) {
            return Host::Found(name);
        }
    }
    headers(payload.get(line_end + 1..).unwrap_or(&[]))
}

/// Header lines (the rest of a request whose request line came before).
pub fn headers(payload: &[u8]) -> Host {
    let mut lines = payload.split(|&b| b == b'\n').peekable();
    while let Some(raw) = lines.next() {
        let line = trim(raw);
        if line.is_empty() {
            // The blank line ends the headers; an empty last piece is only the segment's end.
            return if lines.peek().is_none() && raw.is_empty() {
                Host::MoreHeaders
            } else {
                Host::None
            };
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"host") {
            return Name::from_host(strip_port(trim(&line[colon + 1..])))
                .map_or(Host::None, Host::Found);
        }
    }
    Host::MoreHeaders
}

/// Without surrounding spaces, tabs and the line's `\r`.
fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = b {
        b = rest;
    }
    b
}

/// `host:port` to `host`; an IPv6 literal (`[...]`) is not a name and gives nothing later.
fn strip_port(host: &[u8]) -> &[u8] {
    match host.iter().rposition(|&b| b == b':') {
        Some(i) if host[i + 1..].iter().all(u8::is_ascii_digit) && !host.starts_with(b"[") => {
            &host[..i]
        }
        _ => host,
    }
}
