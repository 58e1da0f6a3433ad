//! DSCP remarking and ECN marking in place, keeping the IPv4 header checksum valid.
//!
//! The checksum is updated incrementally (RFC 1624, eqn. 3) from the one 16-bit word that
//! changes, so a header with a wrong checksum stays exactly as wrong as it was: weir does not
//! repair or break what it only forwards.

use super::{FrameView, L3};

/// What [`set_dscp`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DscpRewrite {
    /// The DSCP field now holds the new value.
    Rewritten,
    /// It already held that value.
    Unchanged,
    /// Not an IP frame, or its header is not in `frame`: left alone.
    NotIp,
}

/// Set the DSCP of the IP header described by `view` (which must come from parsing `frame`),
/// keeping ECN bits. `dscp` is masked to 6 bits.
pub fn set_dscp(frame: &mut [u8], view: &FrameView, dscp: u8) -> DscpRewrite {
    let dscp = dscp & 0x3f;
    rewrite_traffic_class(frame, view, |tc| Some((dscp << 2) | (tc & 0b11)))
}

/// Mark the IP header described by `view` (which must come from parsing `frame`) Congestion
/// Experienced (RFC 3168), if its transport is ECN capable; a Not-ECT frame is left alone
/// (`NotIp`), as a router must not make one look capable.
pub fn set_ce(frame: &mut [u8], view: &FrameView) -> DscpRewrite {
    rewrite_traffic_class(frame, view, |tc| (tc & 0b11 != 0).then_some(tc | 0b11))
}

/// Replace the IPv4 TOS or IPv6 traffic class byte with what `new` makes of it (`None`: leave
/// the frame alone), keeping the IPv4 header checksum valid.
fn rewrite_traffic_class(
    frame: &mut [u8],
    view: &FrameView,
    new: impl Fn(u8) -> Option<u8>,
) -> DscpRewrite {
    let off = usize::from(view.l3_offset);
    match view.l3 {
        L3::Ipv4 => {
            let Some(h) = frame.get_mut(off..off + 20) else {
                return DscpRewrite::NotIp;
            };
            let Some(tos) = new(h[1]) else {
                return DscpRewrite::NotIp;
            };
            if tos == h[1] {
                return DscpRewrite::Unchanged;
            }
            let old_word = u16::from_be_bytes([h[0], h[1]]);
            h[1] = tos;
            let new_word = u16::from_be_bytes([h[0], h[1]]);
            let old_sum = u16::from_be_bytes([h[10], h[11]]);
            let new_sum = checksum_update(old_sum, old_word, new_word);
            h[10..12].copy_from_slice(&new_sum.to_be_bytes());
            DscpRewrite::Rewritten
        }
        L3::Ipv6 => {
            // Traffic class spans the low nibble of byte 0 and the high nibble of byte 1.
            // IPv6 has no header checksum.
            let Some(h) = frame.get_mut(off..off + 2) else {
                return DscpRewrite::NotIp;
            };
            let tc = ((h[0] & 0x0f) << 4) | (h[1] >> 4);
            let Some(new_tc) = new(tc) else {
                return DscpRewrite::NotIp;
            };
            if new_tc == tc {
                return DscpRewrite::Unchanged;
            }
            h[0] = (h[0] & 0xf0) | (new_tc >> 4);
            h[1] = (h[1] & 0x0f) | (new_tc << 4);
            DscpRewrite::Rewritten
        }
        L3::Arp | L3::Other => DscpRewrite::NotIp,
    }
}

/// DSCP code points by name (RFC 2474, 2597, 3246, 5865, 8622), lowercase.
pub const DSCP_NAMES: [(&str, u8); 24] = [
    ("be", 0),
    ("cs0", 0),
    ("le", 1),
    ("cs1", 8),
    ("af11", 10),
    ("af12", 12),
    ("af13", 14),
    ("cs2", 16),
    ("af21", 18),
    ("af22", 20),
    ("af23", 22),
    ("cs3", 24),
    ("af31", 26),
    ("af32", 28),
    ("af33", 30),
    ("cs4", 32),
    ("af41", 34),
    ("af42", 36),
    ("af43", 38),
    ("cs5", 40),
    ("va", 44),
    ("ef", 46),
    ("cs6", 48),
    ("cs7", 56),
];

/// The code point of a DSCP name (case-insensitive), e.g. `ef` is 46.
pub fn dscp_from_name(name: &str) -> Option<u8> {
    DSCP_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|&(_, v)| v)
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), in one's complement arithmetic.
fn checksum_update(old_sum: u16, old_word: u16, new_word: u16) -> u16 {
    let mut sum = u32::from(!old_sum) + u32::from(!old_word) + u32::from(new_word);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse;

    fn ipv4_checksum(h: &[u8]) -> u16 {
        let mut sum = 0u32;
        for (i, w) in h.chunks(2).enumerate() {
            if i != 5 {
                sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn udp4_frame(tos: u8) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 1], [198, 19, 0, 1], 64)
            .udp(4000, 5000);
        let mut frame = Vec::new();
        builder.write(&mut frame, &[1, 2, 3, 4]).unwrap();
        frame[15] = tos;
        let sum = ipv4_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        frame
    }

    #[test]
    fn ipv4_rewrite_keeps_checksum_valid_and_ecn() {
        for tos in [0u8, 0x01, 0x02, 0x03, 0xb8, 0xff] {
            for dscp in [0u8, 10, 34, 46, 63] {
                let mut f = udp4_frame(tos);
                let v = parse(&f);
                let r = set_dscp(&mut f, &v, dscp);
                assert_eq!(f[15] >> 2, dscp);
                assert_eq!(f[15] & 3, tos & 3, "ECN preserved");
                let stored = u16::from_be_bytes([f[24], f[25]]);
                assert_eq!(
                    stored,
                    ipv4_checksum(&f[14..34]),
                    "tos {tos:#x} dscp {dscp}"
                );
                let expect = if tos >> 2 == dscp {
                    DscpRewrite::Unchanged
                } else {
                    DscpRewrite::Rewritten
                };
                assert_eq!(r, expect);
            }
        }
    }

    #[test]
    fn ipv6_rewrite_keeps_flow_label_and_ecn() {
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .udp(1, 2);
        let mut f = Vec::new();
        builder.write(&mut f, &[]).unwrap();
        f[14] = 0x6f; // traffic class high nibble 0xf
        f[15] = 0x3a; // traffic class low nibble 0x3 (ECN 11), flow label 0xa....
        let v = parse(&f);
        assert_eq!(v.ecn, 3);
        assert_eq!(set_dscp(&mut f, &v, 46), DscpRewrite::Rewritten);
        let v2 = parse(&f);
        assert_eq!(v2.dscp, 46);
        assert_eq!(v2.ecn, 3);
        assert_eq!(f[15] & 0x0f, 0x0a, "flow label untouched");
    }

    #[test]
    fn non_ip_and_short_frames_are_left_alone() {
        let mut f = vec![0u8; 10];
        let v = parse(&f);
        assert_eq!(set_dscp(&mut f, &v, 46), DscpRewrite::NotIp);
        assert_eq!(f, vec![0u8; 10]);
    }

    #[test]
    fn ce_marks_ect_frames_only_and_keeps_the_ipv4_checksum_valid() {
        for tos in [0u8, 0x01, 0x02, 0x03, 0xb8, 0xba, 0xfe] {
            let mut f = udp4_frame(tos);
            let v = parse(&f);
            let r = set_ce(&mut f, &v);
            let want = match tos & 3 {
                0 => (DscpRewrite::NotIp, tos),
                3 => (DscpRewrite::Unchanged, tos),
                _ => (DscpRewrite::Rewritten, tos | 3),
            };
            assert_eq!((r, f[15]), want, "tos {tos:#x}");
            let stored = u16::from_be_bytes([f[24], f[25]]);
            assert_eq!(stored, ipv4_checksum(&f[14..34]), "tos {tos:#x}");
        }
    }

    #[test]
    fn ce_marks_ipv6_in_the_traffic_class_only() {
        for ecn in 0u8..4 {
            let builder =
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                    .ipv6(
                        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                        64,
                    )
                    .tcp(1, 2, 0, 1000);
            let mut f = Vec::new();
            builder.write(&mut f, &[]).unwrap();
            let tc = (46 << 2) | ecn;
            f[14] = 0x60 | (tc >> 4);
            f[15] = (tc << 4) | 0x0a;
            let before = f.clone();
            let view = parse(&f);
            let r = set_ce(&mut f, &view);
            let v = parse(&f);
            assert_eq!(v.dscp, 46);
            assert_eq!(f[15] & 0x0f, 0x0a, "flow label untouched");
            match ecn {
                0 => assert_eq!((r, &f), (DscpRewrite::NotIp, &before)),
                3 => assert_eq!((r, &f), (DscpRewrite::Unchanged, &before)),
                _ => assert_eq!((r, v.ecn), (DscpRewrite::Rewritten, 3)),
            }
        }
    }
}
