//! The `Host` of an HTTP/1.x request at the start of a TCP payload (RFC 9112 3.2).
//!
//! Checks that the payload starts with a known method and a space, then looks for the `Host`
//! header among the header lines present (case-insensitive name, optional whitespace, the port
//! dropped). A CONNECT request names its host in its target. Headers past this segment are not
//! seen.

use super::Name;

const METHODS: [&[u8]; 9] = [
    b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"TRACE ",
    b"CONNECT ",
];

/// The host an HTTP/1 request in `payload` is for.
pub fn request_host(payload: &[u8]) -> Option<Name> {
    let method = METHODS.iter().find(|m| payload.starts_with(m))?;
    let mut lines = payload.split(|&b| b == b'\n');
    let request_line = trim(lines.next()?);
    if !request_line.ends_with(b"HTTP/1.1") && !request_line.ends_with(b"HTTP/1.0") {
        return None;
    }
    if *method == b"CONNECT " {
        let target = request_line[method.len()..].split(|&b| b == b' ').next()?;
        return Name::from_host(strip_port(target));
    }
    for line in lines {
        let line = trim(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"host") {
            return Name::from_host(strip_port(trim(&line[colon + 1..])));
        }
    }
    None
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
