//! The `virtio_net_hdr` that travels with frames on a `PACKET_VNET_HDR` socket.
//!
//! It says whether a frame is a GSO super-frame (and how it will be cut into segments) and
//! whether its transport checksum is still to be computed. weir forwards it untouched; shaping
//! charges a super-frame as the wire bytes of every segment it becomes; a TCP super-frame can
//! also be cut into real segments with [`VnetHdr::segmenter`] (see [`crate::wire::gso`]).

use crate::wire::gso::{GsoError, GsoParams, SegmentChecksum, Segmenter, TcpGso};

/// Length of the header on the wire (without the `num_buffers` field of the mergeable form).
pub const VNET_HDR_LEN: usize = 10;

pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;
/// `flags`: the checksum at `csum_start + csum_offset` is to be filled in.
pub const F_NEEDS_CSUM: u8 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers repeated in front of every segment.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// A TCPv4 super-frame behind 54 bytes of Ethernet + IPv4 + TCP without options, cut into
    /// 1448-byte segments, its checksum still to finish: what the tests send.
    #[cfg(test)]
    pub(crate) const TCPV4_1448: VnetHdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };

    /// Decode from the little-endian layout the kernel uses on x86 and arm (host order).
    pub fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_ne_bytes([b[2], b[3]]),
            gso_size: u16::from_ne_bytes([b[4], b[5]]),
            csum_start: u16::from_ne_bytes([b[6], b[7]]),
            csum_offset: u16::from_ne_bytes([b[8], b[9]]),
        }
    }

    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE && self.gso_size > 0
    }

    /// How many frames a frame of `len` bytes becomes on the wire, and their total bytes
    /// (each segment repeats the headers). A plain frame is one segment of `len` bytes.
    /// `hdr_len` is only a hint in the kernel's own use; when it is missing or implausible the
    /// transport header start (`csum_start`) is used, else the segments are counted without
    /// repeated headers (an underestimate of at most the headers).
    pub fn wire_segments(&self, len: usize) -> (u32, u64) {
        if !self.is_gso() || len == 0 {
            return (1, len as u64);
        }
        let hdr = match usize::from(self.hdr_len) {
            h if h > 0 && h < len => h,
            _ if usize::from(self.csum_start) > 0 && usize::from(self.csum_start) < len => {
                usize::from(self.csum_start)
            }
            _ => 0,
        };
        let payload = len - hdr;
        let seg = usize::from(self.gso_size);
        let n = payload.div_ceil(seg).max(1);
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        (n32, (payload + n * hdr) as u64)
    }

    /// The TCP segmentation this header asks for; `NotTcpGso` for plain frames and UDP GSO.
    pub fn tcp_gso(&self) -> Result<GsoParams, GsoError> {
        let kind = match self.gso_type & !GSO_ECN {
            GSO_TCPV4 => TcpGso::V4,
            GSO_TCPV6 => TcpGso::V6,
            _ => return Err(GsoError::NotTcpGso),
        };
        Ok(GsoParams {
            kind,
            gso_size: self.gso_size,
            csum_start: self.csum_start,
            csum_offset: self.csum_offset,
            needs_csum: self.flags & F_NEEDS_CSUM != 0,
        })
    }

    /// A [`Segmenter`] for `frame`, a TCP super-frame received with this header. Each segment
    /// it writes is sent with `VnetHdr::from(segmenter.checksum())`.
    pub fn segmenter<'a>(&self, frame: &'a [u8]) -> Result<Segmenter<'a>, GsoError> {
        Segmenter::new(frame, self.tcp_gso()?)
    }
}

impl VnetHdr {
    /// The offload state of a frame that came without one (a capture, a device without vnet
    /// headers): a TCP frame whose IP packet is longer than `mtu` can only be a super-frame that
    /// the host's TSO or GRO had not cut yet, so it is described as one, cut into segments whose
    /// IP packets are `mtu` bytes (the MSS the link allows), with complete checksums (what a
    /// capture holds). `wire_len` is the frame's length on the wire (a capture's snap length may
    /// have cut `frame` shorter). Anything else is a plain frame: [`VnetHdr::NONE`].
    pub fn infer(
        view: &crate::wire::FrameView,
        frame: &[u8],
        wire_len: usize,
        mtu: u32,
    ) -> VnetHdr {
        use crate::wire::{ipproto, L3};
        let (l3, l4) = (usize::from(view.l3_offset), usize::from(view.l4_offset));
        let gso_type = match view.l3 {
            L3::Ipv4 => GSO_TCPV4,
            L3::Ipv6 => GSO_TCPV6,
            _ => return VnetHdr::NONE,
        };
        // Linux segments TCP over Ethernet (and VLANs), never inside PPPoE.
        if view.ip_proto != ipproto::TCP
            || !matches!(
                view.ethertype,
                crate::wire::ethertype::IPV4 | crate::wire::ethertype::IPV6
            )
            || view.is_fragment
            || l4 <= l3
            || wire_len.saturating_sub(l3) <= mtu as usize
        {
            return VnetHdr::NONE;
        }
        // TCP data offset, in 4-byte words; a header cut off by the snap length counts as 20.
        let tcp_len = frame
            .get(l4 + 12)
            .map_or(20, |b| usize::from(b >> 4) * 4)
            .max(20);
        let headers = (l4 - l3) + tcp_len;
        let Some(mss) = (mtu as usize).checked_sub(headers).filter(|&m| m > 0) else {
            return VnetHdr::NONE;
        };
        VnetHdr {
            flags: 0,
            gso_type,
            hdr_len: u16::try_from(l4 + tcp_len).unwrap_or(0),
            gso_size: u16::try_from(mss).unwrap_or(u16::MAX),
            csum_start: u16::try_from(l4).unwrap_or(0),
            csum_offset: 16,
        }
    }
}

/// The header a cut segment goes out with: no GSO, and the partial checksum still to complete
/// when the super-frame had one (`hdr_len` 0: it is only a GSO hint).
impl From<SegmentChecksum> for VnetHdr {
    fn from(c: SegmentChecksum) -> VnetHdr {
        match c {
            SegmentChecksum::Partial { start, offset } => VnetHdr {
                flags: F_NEEDS_CSUM,
                csum_start: start,
                csum_offset: offset,
                ..VnetHdr::NONE
            },
            SegmentChecksum::Complete => VnetHdr::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn a_super_frame_counts_every_segment() {
        // 10 segments of 1448 bytes behind 66 bytes of Ethernet + IPv4 + TCP with timestamps.
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            ..VnetHdr::NONE
        };
        assert_eq!(h.wire_segments(66 + 14_480), (10, 10 * (66 + 1448)));
        // A last short segment.
        assert_eq!(
            h.wire_segments(66 + 14_481),
            (11, 10 * (66 + 1448) + 66 + 1)
        );
        assert_eq!(VnetHdr::NONE.wire_segments(1514), (1, 1514));
    }

    #[test]
    fn an_oversized_tcp_frame_is_inferred_as_a_super_frame() {
        let frame = |payload: usize, tcp: bool| {
            let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(
                [198, 18, 0, 1],
                [198, 18, 0, 2],
                64,
            );
            let mut f = Vec::new();
            if tcp {
                b.tcp(1, 2, 0, 100)
                    .write(&mut f, &vec![0; payload])
                    .unwrap();
            } else {
                b.udp(1, 2).write(&mut f, &vec![0; payload]).unwrap();
            }
            f
        };
        // 10 MSS of 1460 behind 54 bytes: an IP packet of 14,640 bytes.
        let f = frame(14_600, true);
        let h = VnetHdr::infer(&crate::wire::parse(&f), &f, f.len(), 1500);
        assert_eq!(
            (h.gso_type, h.gso_size, h.hdr_len, h.csum_start, h.flags),
            (GSO_TCPV4, 1460, 54, 34, 0)
        );
        assert_eq!(h.wire_segments(f.len()), (10, 10 * 54 + 14_600));
        assert_eq!(h.segmenter(&f).unwrap().count(), 10);
        // A capture cut to 96 bytes still counts the segments of its length on the wire.
        let h = VnetHdr::infer(&crate::wire::parse(&f[..96]), &f[..96], f.len(), 1500);
        assert_eq!(h.wire_segments(f.len()).0, 10);
        // Within the MTU, not TCP, or a jumbo link: plain.
        for (f, mtu) in [
            (frame(1446, true), 1500),
            (frame(14_600, false), 1500),
            (frame(8000, true), 9000),
        ] {
            assert_eq!(
                VnetHdr::infer(&crate::wire::parse(&f), &f, f.len(), mtu),
                VnetHdr::NONE
            );
        }
    }

    #[test]
    fn implausible_headers_do_not_panic() {
        let h = VnetHdr {
            gso_type: GSO_TCPV6,
            hdr_len: 60_000,
            gso_size: 1,
            ..VnetHdr::NONE
        };
        assert_eq!(h.wire_segments(100), (100, 100));
        let h = VnetHdr {
            gso_type: GSO_UDP_L4,
            gso_size: 0,
            ..VnetHdr::NONE
        };
        assert_eq!(h.wire_segments(100), (1, 100));
    }
}
