//! TCP segmentation in software: one GSO super-frame in, MSS-sized frames out.
//!
//! A frame read with `PACKET_VNET_HDR` may be a TCP super-frame of up to 64 KiB that the kernel
//! would have cut into segments on its way to the wire. [`Segmenter`] cuts it the same way, one
//! segment at a time, so a slow class can queue and drop single segments (CAKE's split-gso).
//!
//! Guarantees:
//! - [`Segmenter::new`] never panics, whatever the bytes and parameters: it validates the frame
//!   once and says why it will not cut it ([`GsoError`]). After that, [`Segmenter::write`] only
//!   refuses a caller's out-of-range index or short buffer.
//! - No allocation: the frame is borrowed, the caller owns the output buffer, and segments can be
//!   written in any order, one at a time.
//! - The segments are the ones Linux's software GSO makes (`tcp_gso_segment`, `inet_gso_segment`,
//!   `ipv6_gso_segment`): Ethernet, VLAN tags, IP options and IPv6 extension headers copied as
//!   they are; IPv4 total length and header checksum recomputed and the identification
//!   incremented per segment; IPv6 payload length set; TCP sequence number advanced by the
//!   payload before the segment; FIN and PSH kept on the last segment only, CWR on the first only.
//! - TCP checksum, as the kernel does it:
//!   - partial (`needs_csum`, Linux `CHECKSUM_PARTIAL`): the field holds the folded, not
//!     complemented, pseudo-header sum, and each segment gets the super-frame's value adjusted for
//!     its own TCP length (one's complement arithmetic, as `tcp_gso_segment` does). A correct
//!     input gives each segment exactly its pseudo-header sum; a wrong one stays exactly as wrong.
//!   - complete (no `needs_csum`): the full checksum of each segment is computed here, over the
//!     pseudo-header built from the IP header's addresses.
//!
//! `io/gso_kernel_tests.rs` checks this byte for byte against the kernel's software GSO on a
//! veth (IPv4 and IPv6, VLAN, IPv4 options, IPv6 extension headers, 64 KiB frames).
//!
//! A payload within one `gso_size` gives one segment: the frame with its lengths and checksums
//! recomputed, the same bytes when they were right (Linux treats such a frame as not GSO).
//!
//! What is refused: anything that is not Ethernet (with at most [`MAX_VLAN_TAGS`] tags) + IPv4 or
//! IPv6 + TCP with the TCP header exactly at `csum_start` and at least one payload byte; IPv4
//! fragments; IPv6 extension headers other than hop-by-hop, routing and destination options
//! (which the kernel's GSO cannot walk either); segments whose IP length would not fit 16 bits.

use super::{be16, be32, ethertype, ipproto, MAX_VLAN_TAGS};

/// IP version of a TCP super-frame (`VIRTIO_NET_HDR_GSO_TCPV4` / `_TCPV6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpGso {
    V4,
    V6,
}

/// What the segmenter needs from the `virtio_net_hdr` (see `io::vnet::VnetHdr::tcp_gso`).
/// Offsets count from the first byte of the Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GsoParams {
    pub kind: TcpGso,
    /// Payload bytes per segment (the MSS); the last segment may carry fewer.
    pub gso_size: u16,
    /// Start of the TCP header.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`; must be 16 when `needs_csum`.
    pub csum_offset: u16,
    /// The TCP checksum field holds only the pseudo-header sum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
    pub needs_csum: bool,
}

/// State of the TCP checksum in the segments written by [`Segmenter::write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentChecksum {
    /// Partial: the device (or the kernel) must still complete it, from `start` with the result
    /// at `start + offset`, as for the input frame.
    Partial { start: u16, offset: u16 },
    /// Complete: the segments carry their full TCP checksum.
    Complete,
}

/// Why a frame is not cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    #[error("not a TCP GSO frame")]
    NotTcpGso,
    #[error("gso_size is zero")]
    ZeroGsoSize,
    #[error("not IPv4 or IPv6 after Ethernet and at most two VLAN tags")]
    NotIp,
    #[error("GSO type says one IP version, the frame carries the other")]
    FamilyMismatch,
    #[error("IP header truncated or malformed")]
    BadIpHeader,
    #[error("IPv4 fragment")]
    Fragment,
    #[error("IP payload is not TCP, or IPv6 extension header the segmenter cannot walk")]
    NotTcp,
    #[error("csum_start is not the end of the IP headers")]
    CsumStart,
    #[error("csum_offset is not the TCP checksum field")]
    CsumOffset,
    #[error("TCP header truncated or data offset below 5")]
    BadTcpHeader,
    #[error("no TCP payload")]
    NoPayload,
    #[error("a segment would not fit the 16-bit IP length field")]
    SegmentTooLong,
}

/// Offset of the checksum in the TCP header.
const TCP_CSUM_OFFSET: usize = 16;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// IPv6 extension headers walked: hop-by-hop, routing, destination options (those Linux
/// registers with `INET6_PROTO_GSO_EXTHDR`). More than this many is refused.
const MAX_IPV6_EXT_HEADERS: usize = 8;

/// A validated TCP super-frame, ready to be cut. Cheap to build (reads the headers only) and
/// `Copy`; the frame is borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    kind: TcpGso,
    /// Start of the IP header.
    l3: usize,
    /// Start of the TCP header.
    l4: usize,
    /// Ethernet + IP + TCP headers, repeated in front of every segment.
    hdr_len: usize,
    gso_size: usize,
    count: usize,
    checksum: SegmentChecksum,
}

impl<'a> Segmenter<'a> {
    /// Check that `frame` is a TCP super-frame that can be cut as `params` says.
    pub fn new(frame: &'a [u8], params: GsoParams) -> Result<Segmenter<'a>, GsoError> {
        let gso_size = usize::from(params.gso_size);
        if gso_size == 0 {
            return Err(GsoError::ZeroGsoSize);
        }
        let (l3, ether) = skip_ethernet(frame)?;
        let l4 = usize::from(params.csum_start);
        match (params.kind, ether) {
            (TcpGso::V4, ethertype::IPV4) => check_ipv4(frame, l3, l4)?,
            (TcpGso::V6, ethertype::IPV6) => check_ipv6(frame, l3, l4)?,
            (_, ethertype::IPV4 | ethertype::IPV6) => return Err(GsoError::FamilyMismatch),
            _ => return Err(GsoError::NotIp),
        }
        if params.needs_csum && usize::from(params.csum_offset) != TCP_CSUM_OFFSET {
            return Err(GsoError::CsumOffset);
        }
        let tcp_len = match frame.get(l4..l4 + 20) {
            Some(tcp) => usize::from(tcp[12] >> 4) * 4,
            None => return Err(GsoError::BadTcpHeader),
        };
        let hdr_len = l4 + tcp_len;
        if tcp_len < 20 || hdr_len > frame.len() {
            return Err(GsoError::BadTcpHeader);
        }
        let payload = frame.len() - hdr_len;
        if payload == 0 {
            return Err(GsoError::NoPayload);
        }
        // The largest segment's IP length field: IPv4 total length, IPv6 payload length.
        let ip_len = hdr_len - l3 + gso_size.min(payload);
        let ip_len_field = match params.kind {
            TcpGso::V4 => ip_len,
            TcpGso::V6 => ip_len - 40,
        };
        if ip_len_field > usize::from(u16::MAX) {
            return Err(GsoError::SegmentTooLong);
        }
        let checksum = if params.needs_csum {
            SegmentChecksum::Partial {
                start: params.csum_start,
                offset: params.csum_offset,
            }
        } else {
            SegmentChecksum::Complete
        };
        Ok(Segmenter {
            frame,
            kind: params.kind,
            l3,
            l4,
            hdr_len,
            gso_size,
            count: payload.div_ceil(gso_size),
            checksum,
        })
    }

    /// Segments this frame becomes (1 when the payload fits in one).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Bytes of headers repeated in front of every segment (Ethernet to the end of TCP).
    pub fn header_len(&self) -> usize {
        self.hdr_len
    }

    /// Length of the longest segment (the first): a buffer this long holds any of them.
    pub fn max_segment_len(&self) -> usize {
        self.hdr_len + self.gso_size.min(self.frame.len() - self.hdr_len)
    }

    /// Length of segment `i`, `None` when `i >= count()`.
    pub fn segment_len(&self, i: usize) -> Option<usize> {
        self.payload_range(i).map(|(s, e)| self.hdr_len + e - s)
    }

    /// What the TCP checksum field of every segment holds; the header to send them with follows
    /// from it (`VnetHdr::from`).
    pub fn checksum(&self) -> SegmentChecksum {
        self.checksum
    }

    /// Write segment `i` (0-based) at the start of `out` and return its length. `None`, with
    /// `out` untouched, when `i >= count()` or `out` is shorter than [`Self::segment_len`].
    pub fn write(&self, i: usize, out: &mut [u8]) -> Option<usize> {
        let (start, end) = self.payload_range(i)?;
        let len = self.hdr_len + end - start;
        let out = out.get_mut(..len)?;
        let hdr_len = self.hdr_len;
        out[..hdr_len].copy_from_slice(&self.frame[..hdr_len]);
        out[hdr_len..].copy_from_slice(&self.frame[hdr_len + start..hdr_len + end]);

        // `new` checked that these lengths fit 16 bits; the identification and the sequence
        // number wrap by design (truncating casts are the modular arithmetic wanted).
        let ip_len = len - self.l3;
        match self.kind {
            TcpGso::V4 => {
                let ip = &mut out[self.l3..self.l4];
                put16(ip, 2, ip_len as u16);
                put16(ip, 4, be16(ip, 4).wrapping_add(i as u16));
                put16(ip, 10, 0);
                let sum = !fold(sum_bytes(ip));
                put16(ip, 10, sum);
            }
            TcpGso::V6 => put16(&mut out[self.l3..], 4, (ip_len - 40) as u16),
        }

        let tcp_len = len - self.l4;
        let pseudo = match self.checksum {
            SegmentChecksum::Partial { .. } => 0,
            SegmentChecksum::Complete => self.pseudo_header_sum(out, tcp_len),
        };
        let tcp = &mut out[self.l4..];
        put32(tcp, 4, be32(tcp, 4).wrapping_add(start as u32));
        if i + 1 < self.count {
            tcp[13] &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            tcp[13] &= !TCP_CWR;
        }
        let csum = match self.checksum {
            SegmentChecksum::Partial { .. } => {
                // tcp_gso_segment: the super-frame's value plus (new length - old length).
                let old = u64::from(be16(tcp, TCP_CSUM_OFFSET));
                let old_len = self.frame.len() - self.l4;
                fold(old + ones_neg(old_len) + ones_value(tcp_len))
            }
            SegmentChecksum::Complete => {
                put16(tcp, TCP_CSUM_OFFSET, 0);
                !fold(pseudo + sum_bytes(tcp))
            }
        };
        put16(tcp, TCP_CSUM_OFFSET, csum);
        Some(len)
    }

    /// Payload bytes of segment `i`, as offsets from the end of the headers.
    fn payload_range(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.count {
            return None;
        }
        let start = i * self.gso_size;
        let end = (start + self.gso_size).min(self.frame.len() - self.hdr_len);
        Some((start, end))
    }

    /// Unfolded one's complement sum of the TCP pseudo-header (RFC 9293 3.1, RFC 8200 8.1)
    /// for a segment of `tcp_len` bytes, addresses read from the IP header in `seg`.
    fn pseudo_header_sum(&self, seg: &[u8], tcp_len: usize) -> u64 {
        let addrs = match self.kind {
            TcpGso::V4 => &seg[self.l3 + 12..self.l3 + 20],
            TcpGso::V6 => &seg[self.l3 + 8..self.l3 + 40],
        };
        sum_bytes(addrs) + u64::from(ipproto::TCP) + ones_value(tcp_len)
    }
}

/// Skip Ethernet and up to [`MAX_VLAN_TAGS`] tags: (offset of L3, ethertype).
fn skip_ethernet(frame: &[u8]) -> Result<(usize, u16), GsoError> {
    let mut off = 12;
    for _ in 0..=MAX_VLAN_TAGS {
        let ether = match frame.get(off..off + 2) {
            Some(b) => be16(b, 0),
            None => return Err(GsoError::NotIp),
        };
        if !matches!(
            ether,
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
        ) {
            return Ok((off + 2, ether));
        }
        off += 4;
    }
    Err(GsoError::NotIp)
}

fn check_ipv4(frame: &[u8], l3: usize, l4: usize) -> Result<(), GsoError> {
    let Some(h) = frame.get(l3..l3 + 20) else {
        return Err(GsoError::BadIpHeader);
    };
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || ihl < 20 || l3 + ihl > frame.len() {
        return Err(GsoError::BadIpHeader);
    }
    // More fragments, or a non-zero offset.
    if be16(h, 6) & 0x3fff != 0 {
        return Err(GsoError::Fragment);
    }
    if h[9] != ipproto::TCP {
        return Err(GsoError::NotTcp);
    }
    if l4 != l3 + ihl {
        return Err(GsoError::CsumStart);
    }
    Ok(())
}

fn check_ipv6(frame: &[u8], l3: usize, l4: usize) -> Result<(), GsoError> {
    let Some(h) = frame.get(l3..l3 + 40) else {
        return Err(GsoError::BadIpHeader);
    };
    if h[0] >> 4 != 6 {
        return Err(GsoError::BadIpHeader);
    }
    let mut next = h[6];
    let mut pos = l3 + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        // Hop-by-hop, routing, destination options: length in 8-byte units, minus 1.
        if !matches!(next, 0 | 43 | 60) {
            break;
        }
        let Some(e) = frame.get(pos..pos + 2) else {
            return Err(GsoError::BadIpHeader);
        };
        next = e[0];
        pos += (usize::from(e[1]) + 1) * 8;
    }
    if next != ipproto::TCP {
        return Err(GsoError::NotTcp);
    }
    if l4 != pos {
        return Err(GsoError::CsumStart);
    }
    Ok(())
}

/// One's complement sum of `b` as big-endian 16-bit words (a last odd byte padded with zero),
/// unfolded. Summing 32-bit words is the same sum modulo 0xffff (2^16 = 1), with half the adds;
/// a u64 holds 2^32 of them.
fn sum_bytes(b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(4);
    let mut sum: u64 = (&mut chunks)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .sum();
    for (k, &byte) in chunks.remainder().iter().enumerate() {
        sum += u64::from(byte) << if k % 2 == 0 { 8 } else { 0 };
    }
    sum
}

/// Fold an unfolded sum to 16 bits with end-around carry. Non-zero sums give 1..=0xffff.
fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// `n` as a one's complement 16-bit quantity (its value modulo 0xffff).
fn ones_value(n: usize) -> u64 {
    (n as u64) % 0xffff
}

/// `-n` in one's complement 16-bit arithmetic.
fn ones_neg(n: usize) -> u64 {
    0xffff - ones_value(n)
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
#[path = "gso_tests.rs"]
pub(crate) mod tests;
