//! Units for the config: rates, sizes and durations written as strings ("2.5 Gbit", "40%",
//! "256 KiB", "1.5 ms").
//!
//! Guarantees:
//! - Exact integer arithmetic, no floats anywhere: a decimal is kept as an integer mantissa and
//!   a power-of-ten scale, and a value that is not a whole number of the base unit (bit/s,
//!   byte, nanosecond, ppm of the link) is an error, never rounded.
//! - No panic on any input: overflow is an error naming the limit.
//! - Every error carries the 1-based character column of the offending part of the string
//!   and, where it helps, a hint (the valid units nearest first, the bit/byte equivalent).
//! - What [`BitRate`]'s `Display`, [`format_size`] and [`format_duration`] print parses back to
//!   the same value.
//!
//! Grammar: `number [spaces] unit`, surrounding whitespace ignored; `number` is digits,
//! optionally `.` and 1 to 9 digits. Prefixes are case-insensitive (`mbit` is `Mbit`), but the
//! `b` (bit) / `B` (byte) distinction is not: `MB/s` is rejected as a rate, `Mb` as a size.

use std::fmt;

/// A rate in bits per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitRate(pub u64);

/// Either an absolute rate or a share of the link (parts per million, exact: "40%" = 400_000,
/// "12.5%" = 125_000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateSpec {
    Absolute(BitRate),
    PercentOfLink { ppm: u32 },
}

impl RateSpec {
    /// The rate on a link of rate `link`: exact, `link * ppm / 1_000_000` rounded down, computed
    /// in u128. A `ppm` above 1_000_000 (not produced by [`parse_rate`]) saturates at
    /// `u64::MAX` rather than wrapping.
    pub fn resolve(self, link: BitRate) -> BitRate {
        match self {
            RateSpec::Absolute(r) => r,
            RateSpec::PercentOfLink { ppm } => {
                let r = u128::from(link.0) * u128::from(ppm) / 1_000_000;
                BitRate(u64::try_from(r).unwrap_or(u64::MAX))
            }
        }
    }
}

/// A unit string that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UnitError {
    pub message: String,
    pub hint: Option<String>,
    /// 1-based char column within the string of the offending part.
    pub column: usize,
}

fn err(message: impl Into<String>, column: usize, hint: Option<String>) -> UnitError {
    UnitError {
        message: message.into(),
        hint,
        column,
    }
}

const MAX_FRACTION_DIGITS: u32 = 9;

const RATE_UNITS: &[&str] = &[
    "bit", "kbit", "Mbit", "Gbit", "Tbit", "bps", "kbps", "Mbps", "Gbps", "Tbps", "bit/s",
    "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s", "%",
];
const SIZE_UNITS: &[&str] = &[
    "B", "kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB",
];
const DURATION_UNITS: &[&str] = &["ns", "us", "µs", "ms", "s"];

/// Display units, largest first: (name, size in the base unit).
const RATE_DISPLAY: &[(&str, u64)] = &[
    ("Tbit", 1_000_000_000_000),
    ("Gbit", 1_000_000_000),
    ("Mbit", 1_000_000),
    ("kbit", 1_000),
];
const SIZE_DISPLAY: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("kB", 1_000),
];
const DURATION_DISPLAY: &[(&str, u64)] = &[("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)];

/// Parse a rate: absolute ("20 Mbit", "1.5 Gbps", "64000") or a share of the link ("40%").
pub fn parse_rate(s: &str) -> Result<RateSpec, UnitError> {
    parse_rate_at(s).map(|(spec, _)| spec)
}

/// Parse an absolute rate (a link rate): a percentage is an error.
pub fn parse_bit_rate(s: &str) -> Result<BitRate, UnitError> {
    match parse_rate_at(s)? {
        (RateSpec::Absolute(r), _) => Ok(r),
        (RateSpec::PercentOfLink { .. }, unit_col) => Err(err(
            "a link rate must be absolute, not a percentage",
            unit_col,
            Some("write the rate in bits per second, e.g. \"1 Gbit\"".into()),
        )),
    }
}

/// Parse a size in bytes ("1500", "64 kB", "256 KiB").
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let q = split(s, "size", "64 KiB")?;
    if q.unit.is_empty() {
        return whole(&q, 1, "bytes", s);
    }
    match size_unit(q.unit) {
        SizeUnit::Bytes(mult) => whole(&q, mult, "bytes", s),
        SizeUnit::Bits { name } => {
            // Bits to bytes: divide by 8 = multiply by 125 and shift the decimal point by 3.
            let equivalent = q
                .number
                .mantissa
                .checked_mul(125)
                .map(|m| {
                    format!(
                        ": {} {} = {} {name}",
                        q.number,
                        q.unit,
                        decimal(m, q.number.scale + 3)
                    )
                })
                .unwrap_or_default();
            Err(err(
                format!("\"{}\" is a number of bits; sizes are in bytes", q.unit),
                q.unit_col,
                Some(format!("write bytes with a capital B{equivalent}")),
            ))
        }
        SizeUnit::Unknown => Err(unknown_unit("size", q.unit, q.unit_col, SIZE_UNITS)),
    }
}

/// Parse a duration in nanoseconds ("1.5 ms", "100us", "2 s"). A unit is required.
pub fn parse_duration(s: &str) -> Result<u64, UnitError> {
    let q = split(s, "duration", "5 ms")?;
    if q.unit.is_empty() {
        return Err(err(
            format!("duration \"{}\" has no unit", s.trim()),
            q.unit_col,
            Some("add a unit, e.g. \"5 ms\" (ns, us, ms, s)".into()),
        ));
    }
    let mult = match q.unit.to_lowercase().as_str() {
        "ns" => 1,
        // Micro: ASCII "us", the micro sign U+00B5 and the Greek mu U+03BC.
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(unknown_unit("duration", q.unit, q.unit_col, DURATION_UNITS)),
    };
    whole(&q, mult, "nanoseconds", s)
}

impl fmt::Display for BitRate {
    /// "20 Mbit", "2.5 Gbit", "64 kbit", "999 bit": the largest unit that shows the value
    /// exactly with at most 3 decimals, else bits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&human(self.0, RATE_DISPLAY, "bit"))
    }
}

/// A measured rate, rounded for people: "12.17 Mbit", "940 kbit", "56 bit" (3 to 4 significant
/// digits; configured rates use [`BitRate`]'s exact `Display` instead).
pub fn format_rate_approx(bps: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "Tbit"),
        (1_000_000_000, "Gbit"),
        (1_000_000, "Mbit"),
        (1_000, "kbit"),
    ];
    for (scale, unit) in UNITS {
        if bps >= scale {
            let v = bps as f64 / scale as f64;
            let decimals = if v >= 100.0 { 1 } else { 2 };
            return format!("{v:.decimals$} {unit}");
        }
    }
    format!("{bps} bit")
}

/// An amount of memory, rounded for people: "4.27 GiB", "812 MiB", "97.5 KiB", "600 B" (3 to 4
/// significant digits, binary units).
pub fn format_size_approx(bytes: u64) -> String {
    rounded(
        bytes,
        &[
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ],
    )
}

/// An amount of traffic, rounded for people in decimal units, as budgets and ISPs count it:
/// "312 MB", "1.20 GB", "950 B" (3 to 4 significant digits).
pub fn format_bytes_decimal(bytes: u64) -> String {
    rounded(
        bytes,
        &[
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "kB"),
        ],
    )
}

/// `bytes` in the largest of `units` (largest first) it reaches, with 3 to 4 significant
/// digits; in bytes below them all.
fn rounded(bytes: u64, units: &[(u64, &str)]) -> String {
    for &(scale, unit) in units {
        if bytes >= scale {
            let v = bytes as f64 / scale as f64;
            let decimals = if v >= 100.0 {
                0
            } else if v >= 10.0 {
                1
            } else {
                2
            };
            return format!("{v:.decimals$} {unit}");
        }
    }
    format!("{bytes} B")
}

/// "1500 B", "64 kB", "256 KiB", "1.5 MiB": as [`BitRate`]'s `Display`, binary units preferred
/// when both show the value exactly.
pub fn format_size(bytes: u64) -> String {
    human(bytes, SIZE_DISPLAY, "B")
}

/// "1.5 ms", "100 us", "2 s", "7 ns": as [`BitRate`]'s `Display`.
pub fn format_duration(ns: u64) -> String {
    human(ns, DURATION_DISPLAY, "ns")
}

// ---------------------------------------------------------------------------------------------

/// An exact decimal: `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug)]
struct Decimal {
    mantissa: u128,
    scale: u32,
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&decimal(self.mantissa, self.scale))
    }
}

/// A string split into its number and its unit, with their columns.
struct Quantity<'a> {
    number: Decimal,
    number_col: usize,
    unit: &'a str,
    unit_col: usize,
}

/// 1-based char column of byte index `at` (always a char boundary here).
fn col(s: &str, at: usize) -> usize {
    s.get(..at).map_or(at, |p| p.chars().count()) + 1
}

fn split<'a>(s: &'a str, what: &str, example: &str) -> Result<Quantity<'a>, UnitError> {
    let body = s.trim_end();
    let bytes = body.as_bytes();
    let start = s.len() - s.trim_start().len();
    if start >= body.len() {
        return Err(err(
            format!("empty {what}"),
            1,
            Some(format!("write e.g. \"{example}\"")),
        ));
    }
    let too_large = || {
        err(
            format!("number too large in {what} \"{}\"", s.trim()),
            col(s, start),
            None,
        )
    };
    let mut i = start;
    let mut mantissa: u128 = 0;
    // Only ASCII bytes are stepped over, so `i` stays on a char boundary.
    while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')))
            .ok_or_else(too_large)?;
        i += 1;
    }
    if i == start {
        let (message, hint) = match bytes[start] {
            b'-' => (format!("a {what} cannot be negative"), None),
            b'.' => (
                "a number must start with a digit".to_string(),
                Some(format!(
                    "write a leading zero, e.g. \"0{}\"",
                    body[start..].trim()
                )),
            ),
            _ => (
                format!("expected a number at the start of {what} \"{}\"", s.trim()),
                Some(format!("write e.g. \"{example}\"")),
            ),
        };
        return Err(err(message, col(s, start), hint));
    }
    let mut scale = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            if scale == MAX_FRACTION_DIGITS {
                return Err(err(
                    format!("too many decimals (at most {MAX_FRACTION_DIGITS})"),
                    col(s, i),
                    None,
                ));
            }
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(d - b'0')))
                .ok_or_else(too_large)?;
            scale += 1;
            i += 1;
        }
        if i == frac_start {
            return Err(err(
                "expected digits after the decimal point",
                col(s, i),
                None,
            ));
        }
    }
    let number_end = i;
    while bytes.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
        i += 1;
    }
    let unit = &body[i..];
    if unit.starts_with(',') {
        return Err(err(
            "unexpected ',' after the number",
            col(s, number_end),
            Some("the decimal separator is '.', and thousands are not separated".into()),
        ));
    }
    Ok(Quantity {
        number: Decimal { mantissa, scale },
        number_col: col(s, start),
        unit,
        unit_col: col(s, i),
    })
}

enum Scaled {
    Value(u64),
    NotWhole,
    Overflow,
}

/// `number * mult` exactly, if it is a whole number that fits a u64.
fn scale(n: Decimal, mult: u128) -> Scaled {
    // If the product overflows u128 the quotient (divisor at most 10^9) cannot fit a u64.
    let Some(p) = n.mantissa.checked_mul(mult) else {
        return Scaled::Overflow;
    };
    let d = 10u128.pow(n.scale);
    if p % d != 0 {
        return Scaled::NotWhole;
    }
    u64::try_from(p / d).map_or(Scaled::Overflow, Scaled::Value)
}

fn whole(q: &Quantity<'_>, mult: u128, base: &str, s: &str) -> Result<u64, UnitError> {
    match scale(q.number, mult) {
        Scaled::Value(v) => Ok(v),
        Scaled::NotWhole => Err(err(
            format!("\"{}\" is not a whole number of {base}", s.trim()),
            q.number_col,
            Some(format!("the smallest step is 1 {}", singular(base))),
        )),
        Scaled::Overflow => Err(err(
            format!("\"{}\" is too large: at most {} {base}", s.trim(), u64::MAX),
            q.number_col,
            None,
        )),
    }
}

fn singular(base: &str) -> &str {
    match base {
        "bytes" => "byte",
        "nanoseconds" => "nanosecond",
        "bits per second" => "bit/s",
        other => other,
    }
}

enum RateUnit {
    Bits(u128),
    Percent,
    /// A byte rate, rejected: its SI prefix, the prefix's power of 1000, and its multiplier in
    /// bytes (1000^pow, or 1024^pow for binary prefixes).
    Bytes {
        prefix: &'static str,
        pow: u32,
        mult_bytes: u128,
    },
    Unknown,
}

/// SI prefix, case-insensitive: ("", 1), ("k", 1), ("M", 2), ... and the rest of the unit.
fn prefix(unit: &str) -> (&'static str, u32, &str) {
    let p = match unit.as_bytes().first() {
        Some(b'k' | b'K') => ("k", 1),
        Some(b'm' | b'M') => ("M", 2),
        Some(b'g' | b'G') => ("G", 3),
        Some(b't' | b'T') => ("T", 4),
        _ => return ("", 0, unit),
    };
    // The first byte is ASCII, so 1 is a char boundary.
    (p.0, p.1, unit.get(1..).unwrap_or(""))
}

fn rate_unit(unit: &str) -> RateUnit {
    if unit == "%" {
        return RateUnit::Percent;
    }
    let (name, pow, rest) = prefix(unit);
    let (binary, rest) = match rest.strip_prefix(['i', 'I']) {
        Some(r) if pow > 0 => (true, r),
        _ => (false, rest),
    };
    let is = |a: &str| rest.eq_ignore_ascii_case(a);
    // "bit" is spelled out: any case. A lone "b" must be lowercase: "B" is a byte.
    let bits = is("bit") || is("bits") || is("bit/s") || is("bits/s") || {
        rest.strip_prefix('b')
            .is_some_and(|r| r.eq_ignore_ascii_case("ps") || r.eq_ignore_ascii_case("/s"))
    };
    if bits {
        return if binary {
            RateUnit::Unknown
        } else {
            RateUnit::Bits(1000u128.pow(pow))
        };
    }
    let bytes = rest.strip_prefix('B').is_some_and(|r| {
        r.is_empty()
            || ["ps", "/s", "yte/s", "ytes/s"]
                .iter()
                .any(|x| r.eq_ignore_ascii_case(x))
    });
    if bytes {
        let base: u128 = if binary { 1024 } else { 1000 };
        return RateUnit::Bytes {
            prefix: name,
            pow,
            mult_bytes: base.pow(pow),
        };
    }
    RateUnit::Unknown
}

/// The rate and the column of its unit (for the percentage error of [`parse_bit_rate`]).
fn parse_rate_at(s: &str) -> Result<(RateSpec, usize), UnitError> {
    let q = split(s, "rate", "20 Mbit")?;
    let unit = if q.unit.is_empty() {
        RateUnit::Bits(1)
    } else {
        rate_unit(q.unit)
    };
    let mult = match unit {
        RateUnit::Bits(mult) => mult,
        RateUnit::Percent => {
            // 1% = 10_000 ppm.
            let ppm = match scale(q.number, 10_000) {
                Scaled::Value(v) => v,
                Scaled::NotWhole => {
                    return Err(err(
                        format!("\"{}\" is finer than the 0.0001% (1 ppm) step", s.trim()),
                        q.number_col,
                        None,
                    ))
                }
                Scaled::Overflow => u64::MAX,
            };
            if ppm == 0 {
                return Err(err(
                    "a share of the link must be above 0%",
                    q.number_col,
                    None,
                ));
            }
            let ppm = u32::try_from(ppm)
                .ok()
                .filter(|p| *p <= 1_000_000)
                .ok_or_else(|| {
                    err(
                        format!("\"{}\" is more than the whole link", s.trim()),
                        q.number_col,
                        Some("a share of the link is at most 100%".into()),
                    )
                })?;
            return Ok((RateSpec::PercentOfLink { ppm }, q.unit_col));
        }
        RateUnit::Bytes {
            prefix,
            pow,
            mult_bytes,
        } => {
            // The equivalent in bits, in the user's SI prefix: bits = bytes * mult_bytes * 8,
            // shown over 1000^pow (exact decimal; binary prefixes leave a fraction).
            let equivalent = q
                .number
                .mantissa
                .checked_mul(mult_bytes)
                .and_then(|m| m.checked_mul(8))
                .map(|m| decimal(m, q.number.scale + 3 * pow));
            let hint = match equivalent {
                Some(e) => format!(
                    "weir rates are in bits: {} {} = {e} {prefix}bit",
                    q.number, q.unit
                ),
                None => "weir rates are in bits: 1 MB/s = 8 Mbit".to_string(),
            };
            return Err(err(
                format!(
                    "\"{}\" is a byte rate; rates are in bits per second",
                    q.unit
                ),
                q.unit_col,
                Some(hint),
            ));
        }
        RateUnit::Unknown => return Err(unknown_unit("rate", q.unit, q.unit_col, RATE_UNITS)),
    };
    match scale(q.number, mult) {
        Scaled::Value(0) => Err(err("a rate must be above zero", q.number_col, None)),
        Scaled::Value(v) => Ok((RateSpec::Absolute(BitRate(v)), q.unit_col)),
        Scaled::NotWhole => Err(err(
            format!("\"{}\" is not a whole number of bits per second", s.trim()),
            q.number_col,
            Some("the smallest step is 1 bit/s".into()),
        )),
        Scaled::Overflow => Err(err(
            format!("\"{}\" is too large: at most {} bit/s", s.trim(), u64::MAX),
            q.number_col,
            None,
        )),
    }
}

enum SizeUnit {
    Bytes(u128),
    /// A number of bits, rejected: the byte unit the user probably meant.
    Bits {
        name: String,
    },
    Unknown,
}

fn size_unit(unit: &str) -> SizeUnit {
    let (name, pow, rest) = prefix(unit);
    let (binary, rest) = match rest.strip_prefix(['i', 'I']) {
        Some(r) if pow > 0 => (true, r),
        _ => (false, rest),
    };
    let base: u128 = if binary { 1024 } else { 1000 };
    let mult = base.pow(pow);
    // The byte name the user probably meant: "kB" (SI) or "KiB" (binary).
    let byte_name = match (name, binary) {
        ("k", true) => "KiB".to_string(),
        (p, true) => format!("{p}iB"),
        (p, false) => format!("{p}B"),
    };
    if rest == "B" {
        SizeUnit::Bytes(mult)
    } else if rest == "b" || rest.eq_ignore_ascii_case("bit") || rest.eq_ignore_ascii_case("bits") {
        SizeUnit::Bits { name: byte_name }
    } else {
        SizeUnit::Unknown
    }
}

fn unknown_unit(what: &str, unit: &str, column: usize, valid: &[&str]) -> UnitError {
    let mut ranked: Vec<(usize, usize, &str)> = valid
        .iter()
        .enumerate()
        .map(|(i, v)| (distance(unit, v), i, *v))
        .collect();
    ranked.sort_unstable();
    let list: Vec<&str> = ranked.iter().map(|r| r.2).collect();
    err(
        format!("unknown {what} unit \"{unit}\""),
        column,
        Some(format!("valid units: {}", list.join(", "))),
    )
}

/// Levenshtein distance, case-insensitive, over chars.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `m / 10^scale` as an exact decimal, trailing zeros dropped.
fn decimal(m: u128, scale: u32) -> String {
    let Some(d) = 10u128.checked_pow(scale) else {
        return format!("{m}e-{scale}");
    };
    let (int, frac) = (m / d, m % d);
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = scale as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// The largest unit in which `v` is at least 1 and exact with at most 3 decimals, else the
/// base unit.
fn human(v: u64, units: &[(&str, u64)], base: &str) -> String {
    let v128 = u128::from(v);
    for &(name, size) in units {
        let size = u128::from(size);
        if v128 >= size && (v128 * 1000) % size == 0 {
            return format!("{} {name}", decimal(v128 * 1000 / size, 3));
        }
    }
    format!("{v} {base}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn abs(v: u64) -> RateSpec {
        RateSpec::Absolute(BitRate(v))
    }

    #[test]
    fn good_rates() {
        let table: &[(&str, RateSpec)] = &[
            ("2.5 Gbit", abs(2_500_000_000)),
            ("64 kbit", abs(64_000)),
            ("0.001 Mbit", abs(1000)),
            ("20 Mbit", abs(20_000_000)),
            ("20Mbit", abs(20_000_000)),
            ("  20   Mbit ", abs(20_000_000)),
            ("20 mbit", abs(20_000_000)),
            ("20 MBIT", abs(20_000_000)),
            ("20 Mbit/s", abs(20_000_000)),
            ("20 Mbps", abs(20_000_000)),
            ("20 mbps", abs(20_000_000)),
            ("1 Tbit", abs(1_000_000_000_000)),
            ("1 Tbps", abs(1_000_000_000_000)),
            ("1.5 Gbit/s", abs(1_500_000_000)),
            ("1 kbit/s", abs(1000)),
            ("1 Kbit", abs(1000)),
            ("100 bit", abs(100)),
            ("100 bps", abs(100)),
            ("100 bit/s", abs(100)),
            ("64000", abs(64_000)),
            ("0.000000001 Gbit", abs(1)),
            ("1.000000000 bit", abs(1)),
            ("18446744073709551615", abs(u64::MAX)),
            ("18446744073709551.615 kbit", abs(u64::MAX)),
            ("40%", RateSpec::PercentOfLink { ppm: 400_000 }),
            ("12.5%", RateSpec::PercentOfLink { ppm: 125_000 }),
            ("12.5 %", RateSpec::PercentOfLink { ppm: 125_000 }),
            ("100%", RateSpec::PercentOfLink { ppm: 1_000_000 }),
            ("0.0001%", RateSpec::PercentOfLink { ppm: 1 }),
        ];
        for (s, want) in table {
            assert_eq!(parse_rate(s), Ok(*want), "{s:?}");
        }
        assert_eq!(parse_bit_rate("2.5 Gbit"), Ok(BitRate(2_500_000_000)));
    }

    #[test]
    fn resolve_is_exact_and_rounds_down() {
        let link = BitRate(100_000_000);
        assert_eq!(
            parse_rate("12.5%").unwrap().resolve(link),
            BitRate(12_500_000)
        );
        assert_eq!(
            parse_rate("40%").unwrap().resolve(link),
            BitRate(40_000_000)
        );
        assert_eq!(parse_rate("100%").unwrap().resolve(link), link);
        assert_eq!(abs(7).resolve(link), BitRate(7));
        // 1 ppm of 999_999 bit/s is 0.999999: rounds down.
        assert_eq!(
            RateSpec::PercentOfLink { ppm: 1 }.resolve(BitRate(999_999)),
            BitRate(0)
        );
        // No overflow at the top: computed in u128.
        assert_eq!(
            RateSpec::PercentOfLink { ppm: 1_000_000 }.resolve(BitRate(u64::MAX)),
            BitRate(u64::MAX)
        );
        assert_eq!(
            RateSpec::PercentOfLink { ppm: 333_333 }.resolve(BitRate(u64::MAX)),
            BitRate((u128::from(u64::MAX) * 333_333 / 1_000_000) as u64)
        );
        // Out-of-range ppm built by hand saturates instead of wrapping.
        assert_eq!(
            RateSpec::PercentOfLink { ppm: u32::MAX }.resolve(BitRate(u64::MAX)),
            BitRate(u64::MAX)
        );
    }

    #[test]
    fn good_sizes() {
        let table: &[(&str, u64)] = &[
            ("256 KiB", 262_144),
            ("1500", 1500),
            ("1500 B", 1500),
            ("64 kB", 64_000),
            ("64 KB", 64_000),
            ("1.5 MB", 1_500_000),
            ("1.5 MiB", 1_572_864),
            ("2 GB", 2_000_000_000),
            ("2 GiB", 2 << 30),
            ("1 kiB", 1024),
            ("1 TiB", 1 << 40),
            ("0.5 KiB", 512),
            ("0", 0),
        ];
        for (s, want) in table {
            assert_eq!(parse_size(s), Ok(*want), "{s:?}");
        }
    }

    #[test]
    fn good_durations() {
        let table: &[(&str, u64)] = &[
            ("1.5 ms", 1_500_000),
            ("100us", 100_000),
            ("100 µs", 100_000),
            ("100 μs", 100_000),
            ("5 ms", 5_000_000),
            ("5 MS", 5_000_000),
            ("2 s", 2_000_000_000),
            ("0.000000001 s", 1),
            ("7 ns", 7),
            ("0 ms", 0),
        ];
        for (s, want) in table {
            assert_eq!(parse_duration(s), Ok(*want), "{s:?}");
        }
    }

    /// (input, expected message, column, a fragment the hint must contain).
    fn check_errors(
        parse: impl Fn(&str) -> Result<(), UnitError>,
        table: &[(&str, &str, usize, Option<&str>)],
    ) {
        for &(input, message, column, hint) in table {
            let e = parse(input).expect_err(input);
            assert_eq!(e.message, message, "{input:?}");
            assert_eq!(e.column, column, "{input:?}: {e:?}");
            match hint {
                Some(h) => {
                    let got = e.hint.as_deref().unwrap_or("");
                    assert!(got.contains(h), "{input:?}: hint {got:?} lacks {h:?}");
                }
                None => assert_eq!(e.hint, None, "{input:?}"),
            }
        }
    }

    #[test]
    fn bad_rates() {
        check_errors(
            |s| parse_rate(s).map(drop),
            &[
                ("", "empty rate", 1, Some("20 Mbit")),
                ("   ", "empty rate", 1, Some("20 Mbit")),
                (
                    "Mbit",
                    "expected a number at the start of rate \"Mbit\"",
                    1,
                    Some("20 Mbit"),
                ),
                ("-5 Mbit", "a rate cannot be negative", 1, None),
                (
                    ".5 Mbit",
                    "a number must start with a digit",
                    1,
                    Some("\"0.5 Mbit\""),
                ),
                (
                    "  x",
                    "expected a number at the start of rate \"x\"",
                    3,
                    Some("20 Mbit"),
                ),
                (
                    "1. Mbit",
                    "expected digits after the decimal point",
                    3,
                    None,
                ),
                (
                    "1.0000000001 Gbit",
                    "too many decimals (at most 9)",
                    12,
                    None,
                ),
                (
                    "18446744.073709551615 Tbit",
                    "too many decimals (at most 9)",
                    19,
                    None,
                ),
                (
                    "1,5 Mbit",
                    "unexpected ',' after the number",
                    2,
                    Some("'.'"),
                ),
                (
                    "20 Mbitz",
                    "unknown rate unit \"Mbitz\"",
                    4,
                    Some("valid units: Mbit, "),
                ),
                (
                    "20 Gbt",
                    "unknown rate unit \"Gbt\"",
                    4,
                    Some("valid units: Gbit, "),
                ),
                (
                    "20 Mibit",
                    "unknown rate unit \"Mibit\"",
                    4,
                    Some("valid units: Mbit"),
                ),
                (
                    "1 MB/s",
                    "\"MB/s\" is a byte rate; rates are in bits per second",
                    3,
                    Some("weir rates are in bits: 1 MB/s = 8 Mbit"),
                ),
                (
                    "2.5 MBps",
                    "\"MBps\" is a byte rate; rates are in bits per second",
                    5,
                    Some("2.5 MBps = 20 Mbit"),
                ),
                (
                    "10 KB/s",
                    "\"KB/s\" is a byte rate; rates are in bits per second",
                    4,
                    Some("10 KB/s = 80 kbit"),
                ),
                (
                    "1 MiB/s",
                    "\"MiB/s\" is a byte rate; rates are in bits per second",
                    3,
                    Some("1 MiB/s = 8.388608 Mbit"),
                ),
                (
                    "3 Bps",
                    "\"Bps\" is a byte rate; rates are in bits per second",
                    3,
                    Some("3 Bps = 24 bit"),
                ),
                (
                    "5 MB",
                    "\"MB\" is a byte rate; rates are in bits per second",
                    3,
                    Some("5 MB = 40 Mbit"),
                ),
                ("0 Mbit", "a rate must be above zero", 1, None),
                ("0", "a rate must be above zero", 1, None),
                (
                    "1.5 bit",
                    "\"1.5 bit\" is not a whole number of bits per second",
                    1,
                    Some("1 bit/s"),
                ),
                (
                    "0.0000001 Mbit",
                    "\"0.0000001 Mbit\" is not a whole number of bits per second",
                    1,
                    Some("1 bit/s"),
                ),
                (
                    "18446744073709551616",
                    "\"18446744073709551616\" is too large: at most 18446744073709551615 bit/s",
                    1,
                    None,
                ),
                (
                    "20000000 Tbit",
                    "\"20000000 Tbit\" is too large: at most 18446744073709551615 bit/s",
                    1,
                    None,
                ),
                (
                    "999999999999999999999999999999999999999999 bit",
                    "number too large in rate \"999999999999999999999999999999999999999999 bit\"",
                    1,
                    None,
                ),
                ("0%", "a share of the link must be above 0%", 1, None),
                (
                    "100.0001%",
                    "\"100.0001%\" is more than the whole link",
                    1,
                    Some("at most 100%"),
                ),
                (
                    "99999999999999999999999%",
                    "\"99999999999999999999999%\" is more than the whole link",
                    1,
                    Some("at most 100%"),
                ),
                (
                    "12.34567%",
                    "\"12.34567%\" is finer than the 0.0001% (1 ppm) step",
                    1,
                    None,
                ),
                (
                    "%",
                    "expected a number at the start of rate \"%\"",
                    1,
                    Some("20 Mbit"),
                ),
            ],
        );
    }

    #[test]
    fn bit_rate_rejects_percentages() {
        let e = parse_bit_rate("40%").unwrap_err();
        assert_eq!(e.message, "a link rate must be absolute, not a percentage");
        assert_eq!(e.column, 3);
        assert!(e.hint.unwrap().contains("1 Gbit"));
        assert_eq!(parse_bit_rate("1 MB/s").unwrap_err().column, 3);
    }

    #[test]
    fn unknown_unit_hint_lists_nearest_first() {
        let e = parse_rate("10 Gbti").unwrap_err();
        let hint = e.hint.unwrap();
        let list = hint.strip_prefix("valid units: ").unwrap();
        let units: Vec<&str> = list.split(", ").collect();
        assert_eq!(units.len(), RATE_UNITS.len());
        assert_eq!(units[0], "Gbit");
        let e = parse_duration("5 sec").unwrap_err();
        assert_eq!(e.message, "unknown duration unit \"sec\"");
        assert_eq!(e.column, 3);
        assert!(e.hint.unwrap().starts_with("valid units: s, "));
    }

    #[test]
    fn bad_sizes() {
        check_errors(
            |s| parse_size(s).map(drop),
            &[
                (
                    "8 Mb",
                    "\"Mb\" is a number of bits; sizes are in bytes",
                    3,
                    Some("8 Mb = 1 MB"),
                ),
                (
                    "1 kb",
                    "\"kb\" is a number of bits; sizes are in bytes",
                    3,
                    Some("1 kb = 0.125 kB"),
                ),
                (
                    "16 Kib",
                    "\"Kib\" is a number of bits; sizes are in bytes",
                    4,
                    Some("16 Kib = 2 KiB"),
                ),
                (
                    "100 kbit",
                    "\"kbit\" is a number of bits; sizes are in bytes",
                    5,
                    Some("capital B"),
                ),
                (
                    "1 MBs",
                    "unknown size unit \"MBs\"",
                    3,
                    Some("valid units: MB, "),
                ),
                (
                    "1 mb",
                    "\"mb\" is a number of bits; sizes are in bytes",
                    3,
                    Some("1 mb = 0.125 MB"),
                ),
                (
                    "1.1 KiB",
                    "\"1.1 KiB\" is not a whole number of bytes",
                    1,
                    Some("1 byte"),
                ),
                (
                    "0.5",
                    "\"0.5\" is not a whole number of bytes",
                    1,
                    Some("1 byte"),
                ),
                (
                    "17 EB",
                    "unknown size unit \"EB\"",
                    4,
                    Some("valid units: "),
                ),
                (
                    "20000000 TB",
                    "\"20000000 TB\" is too large: at most 18446744073709551615 bytes",
                    1,
                    None,
                ),
                (
                    "KiB",
                    "expected a number at the start of size \"KiB\"",
                    1,
                    Some("64 KiB"),
                ),
            ],
        );
    }

    #[test]
    fn bad_durations() {
        check_errors(
            |s| parse_duration(s).map(drop),
            &[
                ("5", "duration \"5\" has no unit", 2, Some("\"5 ms\"")),
                ("1.5", "duration \"1.5\" has no unit", 4, Some("\"5 ms\"")),
                (
                    "0.5 ns",
                    "\"0.5 ns\" is not a whole number of nanoseconds",
                    1,
                    Some("1 nanosecond"),
                ),
                (
                    "5 m",
                    "unknown duration unit \"m\"",
                    3,
                    Some("valid units: "),
                ),
                (
                    "ms",
                    "expected a number at the start of duration \"ms\"",
                    1,
                    Some("5 ms"),
                ),
                (
                    "99999999999 s",
                    "\"99999999999 s\" is too large: at most 18446744073709551615 nanoseconds",
                    1,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        // "µ" is two bytes; the unit after it starts at char column 5.
        let e = parse_rate("µ 5 x").unwrap_err();
        assert_eq!(e.column, 1);
        let e = parse_duration("1 µµs").unwrap_err();
        assert_eq!(e.column, 3);
        let e = parse_size("\u{3000}5 xB").unwrap_err(); // leading ideographic space
        assert_eq!(e.column, 4);
    }

    #[test]
    fn display_examples() {
        let table: &[(u64, &str)] = &[
            (20_000_000, "20 Mbit"),
            (2_500_000_000, "2.5 Gbit"),
            (64_000, "64 kbit"),
            (1234, "1.234 kbit"),
            (999, "999 bit"),
            (1, "1 bit"),
            (0, "0 bit"),
            (1_000_001, "1000.001 kbit"),
            (1_000_000_000_000, "1 Tbit"),
            (12_345_678_000, "12345.678 Mbit"),
            (u64::MAX, "18446744073709551.615 kbit"),
            (1_000_003_001, "1000003.001 kbit"),
        ];
        for &(v, want) in table {
            assert_eq!(BitRate(v).to_string(), want);
        }
        assert_eq!(format!("{:>10}", BitRate(64_000)), "   64 kbit");

        assert_eq!(format_size(262_144), "256 KiB");
        assert_eq!(format_size(1500), "1.5 kB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(2000), "2 kB");
        assert_eq!(format_size(1_000_000), "1 MB");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(100), "100 B");
        assert_eq!(format_size(1001), "1.001 kB");
        assert_eq!(format_size(1_000_001), "1000.001 kB");

        assert_eq!(format_duration(1_500_000), "1.5 ms");
        assert_eq!(format_duration(100_000), "100 us");
        assert_eq!(format_duration(2_000_000_000), "2 s");
        assert_eq!(format_duration(7), "7 ns");
        assert_eq!(format_duration(1_234_567), "1234.567 us");
    }

    proptest! {
        #[test]
        fn rate_display_round_trips(v in 1u64..=u64::MAX) {
            let s = BitRate(v).to_string();
            prop_assert_eq!(parse_rate(&s), Ok(RateSpec::Absolute(BitRate(v))), "{}", s);
            prop_assert_eq!(parse_bit_rate(&s), Ok(BitRate(v)));
        }

        #[test]
        fn round_numbers_display_round_trip(m in 1u64..1_000_000, e in 0u32..13) {
            // Generated rates are mostly not round; these exercise the prefixed units.
            let v = m.saturating_mul(10u64.pow(e));
            let s = BitRate(v).to_string();
            prop_assert_eq!(parse_bit_rate(&s), Ok(BitRate(v)), "{}", s);
            let s = format_size(v);
            prop_assert_eq!(parse_size(&s), Ok(v), "{}", s);
            let s = format_duration(v);
            prop_assert_eq!(parse_duration(&s), Ok(v), "{}", s);
        }

        #[test]
        fn size_and_duration_round_trip(v in any::<u64>(), shift in 0u32..41) {
            let v = v >> shift << shift.min(20); // some values with many trailing zero bits
            prop_assert_eq!(parse_size(&format_size(v)), Ok(v));
            prop_assert_eq!(parse_duration(&format_duration(v)), Ok(v));
        }

        #[test]
        fn percent_round_trips(ppm in 1u32..=1_000_000) {
            let s = format!("{}%", decimal(u128::from(ppm), 4));
            prop_assert_eq!(parse_rate(&s), Ok(RateSpec::PercentOfLink { ppm }), "{}", s);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            for r in [parse_rate(&s).map(drop), parse_bit_rate(&s).map(drop),
                      parse_size(&s).map(drop), parse_duration(&s).map(drop)] {
                if let Err(e) = r {
                    prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{:?}", e);
                }
            }
        }

        #[test]
        fn plausible_strings_never_panic(s in "[ 0-9.,%µ/a-zA-Z-]{0,24}") {
            for r in [parse_rate(&s).map(drop), parse_bit_rate(&s).map(drop),
                      parse_size(&s).map(drop), parse_duration(&s).map(drop)] {
                if let Err(e) = r {
                    prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{:?}", e);
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}

#[cfg(test)]
mod approx_tests {
    use super::format_rate_approx;

    #[test]
    fn measured_rates_are_rounded_for_reading() {
        assert_eq!(format_rate_approx(12_172_030), "12.17 Mbit");
        assert_eq!(format_rate_approx(940_000), "940.0 kbit");
        assert_eq!(format_rate_approx(56), "56 bit");
        assert_eq!(format_rate_approx(0), "0 bit");
        assert_eq!(format_rate_approx(2_500_000_000), "2.50 Gbit");
    }
}
