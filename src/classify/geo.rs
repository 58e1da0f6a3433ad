//! Country and network owner (autonomous system) of addresses, for the rules `country CC`
//! (alias `cc`) and `asn N`, from databases in the MaxMind DB format (GeoLite2, DB-IP lite and
//! others), read with the `maxminddb` crate when the config is loaded, and again at each reload.
//!
//! No frame and no flow looks an address up in a database. When the config is loaded, each
//! country or AS that a rule names becomes the list of address ranges the database gives it,
//! sorted and merged, less the LAN networks: so the test is on the remote side of a flow (the
//! side outside `lan_networks`), whichever port it crosses. A frame matches when its source or
//! destination is in one of the ranges: a binary search, made once per flow (the rule's
//! verdict is cached with the flow). Memory: 8 bytes per IPv4 range and 32 per IPv6 range, for
//! the countries and ASes the rules name only.
//!
//! A record's country is its `country.iso_code`, else its `registered_country.iso_code` (the
//! GeoIP2 schema, which DB-IP lite follows too); its AS is `autonomous_system_number`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// What a rule asks of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GeoKey {
    /// ISO 3166-1 alpha-2, upper case.
    Country([u8; 2]),
    Asn(u32),
}

impl GeoKey {
    /// As a rule writes it: `country NZ`, `asn 64496`.
    pub fn describe(&self) -> String {
        match self {
            GeoKey::Country(c) => format!("country {}", String::from_utf8_lossy(c)),
            GeoKey::Asn(n) => format!("asn {n}"),
        }
    }
}

/// Address ranges, sorted, disjoint and merged, per family (IPv4 in the low 32 bits, as
/// [`crate::wire::FrameView`] holds it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AddrRanges {
    /// IPv4 in 8 bytes a range: a country's list stays small enough for the caches.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl AddrRanges {
    /// From any ranges, overlapping or not (IPv4 ones in the low 32 bits).
    pub fn new(mut v4: Vec<(u128, u128)>, mut v6: Vec<(u128, u128)>) -> AddrRanges {
        merge(&mut v4);
        merge(&mut v6);
        AddrRanges {
            v4: v4.iter().map(|&(lo, hi)| (lo as u32, hi as u32)).collect(),
            v6,
        }
    }

    #[inline]
    pub fn contains(&self, v6: bool, addr: u128) -> bool {
        // The last range starting at or before `addr`.
        if v6 {
            let i = self.v6.partition_point(|&(lo, _)| lo <= addr);
            i > 0 && addr <= self.v6[i - 1].1
        } else {
            let Ok(a) = u32::try_from(addr) else {
                return false;
            };
            let i = self.v4.partition_point(|&(lo, _)| lo <= a);
            i > 0 && a <= self.v4[i - 1].1
        }
    }

    /// Ranges in all.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take out each of `nets` (`(address, prefix length, is IPv6)`, as the config's
    /// `lan_networks`).
    pub fn subtract(&mut self, nets: &[(u128, u8, bool)]) {
        for &(addr, prefix, v6) in nets {
            let bits: u32 = if v6 { 128 } else { 32 };
            let host = bits - u32::from(prefix).min(bits);
            let span = if host >= 128 {
                u128::MAX
            } else {
                (1u128 << host) - 1
            };
            let (lo, hi) = (addr & !span, (addr & !span) | span);
            if v6 {
                self.v6 = cut(&self.v6, lo, hi);
            } else {
                let wide: Vec<(u128, u128)> = self
                    .v4
                    .iter()
                    .map(|&(a, b)| (u128::from(a), u128::from(b)))
                    .collect();
                self.v4 = cut(&wide, lo, hi)
                    .iter()
                    .map(|&(a, b)| (a as u32, b as u32))
                    .collect();
            }
        }
    }
}

/// `ranges` less `lo..=hi`.
fn cut(ranges: &[(u128, u128)], lo: u128, hi: u128) -> Vec<(u128, u128)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(a, b) in ranges {
        if b < lo || a > hi {
            out.push((a, b));
            continue;
        }
        if a < lo {
            out.push((a, lo - 1));
        }
        if b > hi {
            out.push((hi + 1, b));
        }
    }
    out
}

fn merge(r: &mut Vec<(u128, u128)>) {
    r.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(r.len());
    for &(lo, hi) in r.iter() {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *r = out;
}

/// The ranges of one key, shared by every copy of the rules that name it.
///
/// Two sets compare equal whatever they hold: the atom that carries one is identified by its
/// key (one config reads one database per kind), and the rule analysis compares atoms.
#[derive(Clone, Debug, Default)]
pub struct GeoSet(Arc<AddrRanges>);

impl GeoSet {
    pub fn new(r: AddrRanges) -> GeoSet {
        GeoSet(Arc::new(r))
    }

    #[inline]
    pub fn contains(&self, v6: bool, addr: u128) -> bool {
        self.0.contains(v6, addr)
    }
}

impl PartialEq for GeoSet {
    fn eq(&self, _: &GeoSet) -> bool {
        true
    }
}

impl Eq for GeoSet {}

impl std::hash::Hash for GeoSet {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// What a record says of its networks (fields of other kinds are skipped unread).
#[derive(serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Place<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Place<'a>>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
}

#[derive(serde::Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// A database read whole into memory.
pub struct Database {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl Database {
    /// Read and check `path`. The error says what is wrong with it, for a config error.
    pub fn open(path: &Path) -> Result<Database, String> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| match e {
            maxminddb::MaxMindDbError::Io(io) => format!("cannot read {}: {io}", path.display()),
            e => format!("{} is not a MaxMind DB file: {e}", path.display()),
        })?;
        Ok(Database { reader })
    }

    /// The ranges of each of `keys` (all of one kind or not), from one pass over the database.
    /// A key the database never gives has no ranges.
    pub fn ranges(&self, keys: &[GeoKey]) -> Result<BTreeMap<GeoKey, AddrRanges>, String> {
        // Per key, its IPv4 and its IPv6 ranges as found.
        type Found = (Vec<(u128, u128)>, Vec<(u128, u128)>);
        let mut found: BTreeMap<GeoKey, Found> =
            keys.iter().map(|k| (*k, Default::default())).collect();
        let bad = |e: maxminddb::MaxMindDbError| format!("damaged database: {e}");
        for item in self.reader.networks(Default::default()).map_err(bad)? {
            let item = item.map_err(bad)?;
            let Some(rec) = item.decode::<Record>().map_err(bad)? else {
                continue;
            };
            let code = rec
                .country
                .and_then(|p| p.iso_code)
                .or_else(|| rec.registered_country.and_then(|p| p.iso_code))
                .and_then(|c| <[u8; 2]>::try_from(c.as_bytes()).ok())
                .map(|c| GeoKey::Country(c.map(|b| b.to_ascii_uppercase())));
            let asn = rec.autonomous_system_number.map(GeoKey::Asn);
            for key in [code, asn].into_iter().flatten() {
                let Some((v4, v6)) = found.get_mut(&key) else {
                    continue;
                };
                match item.network().map_err(bad)? {
                    ipnetwork::IpNetwork::V4(n) => v4.push((
                        u128::from(u32::from(n.network())),
                        u128::from(u32::from(n.broadcast())),
                    )),
                    ipnetwork::IpNetwork::V6(n) => {
                        let lo = u128::from(n.network());
                        let host = 128 - u32::from(n.prefix());
                        let span = if host >= 128 {
                            u128::MAX
                        } else {
                            (1u128 << host) - 1
                        };
                        v6.push((lo, lo | span));
                    }
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(k, (v4, v6))| (k, AddrRanges::new(v4, v6)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer_by_binary_search() {
        let r = AddrRanges::new(vec![(10, 20), (21, 30), (5, 12), (40, 40)], vec![(1, 1)]);
        assert_eq!(r.v4, vec![(5, 30), (40, 40)]);
        for (a, want) in [
            (4, false),
            (5, true),
            (30, true),
            (31, false),
            (40, true),
            (41, false),
        ] {
            assert_eq!(r.contains(false, a), want, "{a}");
        }
        assert!(r.contains(true, 1) && !r.contains(true, 5));
    }

    #[test]
    fn lan_networks_are_taken_out() {
        // 198.18.0.0/15 less 198.18.0.0/24 and 198.19.255.255/32.
        let base = 0xc612_0000u32;
        let wide = u128::from(base);
        let mut r = AddrRanges::new(vec![(wide, wide + 0x1_ffff)], vec![]);
        r.subtract(&[(wide, 24, false), (wide + 0x1_ffff, 32, false)]);
        assert_eq!(r.v4, vec![(base + 0x100, base + 0x1_fffe)]);
        // A /0 takes everything of its family only.
        let mut r = AddrRanges::new(vec![(1, 2)], vec![(3, 4)]);
        r.subtract(&[(0, 0, true)]);
        assert_eq!((r.v4.len(), r.v6.len()), (1, 0));
    }
}
