//! The receive ring of an AF_PACKET socket ([`RxMode::Ring`](super::RxMode::Ring)):
//! `PACKET_RX_RING` with TPACKET_V3.
//!
//! The kernel and weir share [`RX_RING_BLOCKS`] blocks of [`RX_RING_BLOCK`] bytes, mapped once
//! at open. The kernel fills one block at a time with frames of any length (each behind a
//! `tpacket3_hdr`, with the `virtio_net_hdr` just before the frame when `PACKET_VNET_HDR` is
//! on), in the context of whoever delivered the frame, and *retires* the block to weir when it
//! is full or [`RX_RING_RETIRE_MS`] after it was opened, whichever comes first; then the socket
//! polls readable. weir reads retired blocks in order, copies each frame into the caller's
//! buffer and hands each block back (`TP_STATUS_KERNEL`, after a release fence) as soon as its
//! last frame is read. No system call per frame or per batch: only `poll` when the ring is
//! empty.
//!
//! Guarantees:
//! - **Bounded memory**: [`RX_RING_BYTES`] (8 MiB) of kernel pages per receiving socket, no
//!   socket-buffer queue beside it. When every block is waiting for weir the kernel drops what
//!   arrives (as a full socket buffer would).
//! - **The largest frame fits**: a block holds a GSO super-frame of [`MAX_FRAME`] bytes with its
//!   headers, three of them in fact. A frame cut by the ring (`tp_snaplen` < `tp_len`, only with
//!   blocks smaller than the default) is reported truncated, as is one longer than the caller's
//!   buffer.
//! - **Added delay at most one retire timeout** per frame and crossing: a frame becomes visible
//!   when its block retires, at once at high rates (blocks fill), after up to
//!   [`RX_RING_RETIRE_MS`] at low ones.
//! - **Every frame header is bounds-checked** against its block before a byte is read: a
//!   malformed block (which the kernel does not produce) is handed back unread rather than read
//!   out of bounds.
//! - The mapping is owned by [`RxRing`] alone and unmapped on drop.
//!
//! Thread contract: as [`AfPacket`](super::AfPacket): one thread at a time, `Send`.

use super::{finish_frame, tag_bytes, RxMeta, VnetHdr, MAX_FRAME, SOL_PACKET};
use crate::io::vnet::VNET_HDR_LEN;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

// From <linux/if_packet.h>.
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;

/// Bytes of one ring block: a power of two of pages, room for three GSO super-frames.
pub const RX_RING_BLOCK: usize = 256 << 10;
/// Blocks per ring. At low rates each block holds what arrived in one retire timeout, so the
/// ring rides out a stall of about `RX_RING_BLOCKS * RX_RING_RETIRE_MS`; at high rates a block
/// holds about 1,600 frames of 64 bytes.
pub const RX_RING_BLOCKS: usize = 32;
/// Kernel memory of one ring: 8 MiB.
pub const RX_RING_BYTES: usize = RX_RING_BLOCK * RX_RING_BLOCKS;
/// Milliseconds after which the kernel retires a block that is not full (the kernel's unit).
pub const RX_RING_RETIRE_MS: u32 = 1;

/// `struct tpacket_req3`.
#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

/// `struct tpacket3_hdr` with its `hv1` variant, read whole (not every field is used).
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct Tpacket3Hdr {
    tp_next_offset: u32,
    tp_sec: u32,
    tp_nsec: u32,
    tp_snaplen: u32,
    tp_len: u32,
    tp_status: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_rxhash: u32,
    tp_vlan_tci: u32,
    tp_vlan_tpid: u16,
    tp_padding: u16,
    tp_padding2: [u8; 8],
}
const _: () = assert!(std::mem::size_of::<Tpacket3Hdr>() == 48);

// `struct tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`): offsets of the
// fields read here.
const BLOCK_STATUS_AT: usize = 8;
const BLOCK_NUM_PKTS_AT: usize = 12;
const BLOCK_FIRST_PKT_AT: usize = 16;
const BLOCK_DESC_LEN: usize = 48;

/// Shape of a ring: the default, or small blocks in tests (to see the ring cut a frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingGeometry {
    /// Bytes per block: a multiple of the page size, a power of two.
    pub block_size: usize,
    pub blocks: usize,
    pub retire_ms: u32,
}

impl RingGeometry {
    pub const DEFAULT: RingGeometry = RingGeometry {
        block_size: RX_RING_BLOCK,
        blocks: RX_RING_BLOCKS,
        retire_ms: RX_RING_RETIRE_MS,
    };
}

// A block holds the largest frame with its headers (tpacket3_hdr, sockaddr_ll, vnet header,
// alignment: well under 256 bytes) after the block descriptor.
const _: () = assert!(RX_RING_BLOCK >= BLOCK_DESC_LEN + 256 + MAX_FRAME);
const _: () = assert!(RX_RING_BLOCK.is_power_of_two() && RX_RING_BLOCK % 4096 == 0);

/// A mapped TPACKET_V3 receive ring and the reader's place in it.
pub(crate) struct RxRing {
    base: NonNull<u8>,
    geometry: RingGeometry,
    /// The block read next (or being read).
    block: usize,
    /// Frames of the current block not yet read (0: the block is not opened).
    left: u32,
    /// Offset in the current block of the next frame's header.
    next: usize,
}

// SAFETY: the mapping is reachable only through this struct (no copy of `base` leaves it), and
// the kernel synchronises with us through each block's status word, not through a thread; so
// the ring may move to another thread with its owner.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Ask for a ring on `fd` and map it. `fd` must be a fresh packet socket, not yet bound,
    /// with `PACKET_VNET_HDR` already set if wanted. Errors name the step that failed.
    pub(crate) fn new(
        fd: &OwnedFd,
        geometry: RingGeometry,
    ) -> Result<RxRing, (&'static str, io::Error)> {
        super::set_int_opt(fd, PACKET_VERSION, TPACKET_V3)
            .map_err(|e| ("setsockopt PACKET_VERSION (TPACKET_V3)", e))?;
        // The frame size is only checked by the kernel in V3 (frames have any length); the
        // conventional 2 KiB makes the counts consistent.
        let frame_size = 2048usize.min(geometry.block_size);
        let req = TpacketReq3 {
            tp_block_size: geometry.block_size as u32,
            tp_block_nr: geometry.blocks as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: (geometry.block_size / frame_size * geometry.blocks) as u32,
            tp_retire_blk_tov: geometry.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        // SAFETY: `req` is a repr(C) tpacket_req3 that outlives the call; the length is its
        // size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_RX_RING,
                (&req as *const TpacketReq3).cast(),
                std::mem::size_of::<TpacketReq3>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(("setsockopt PACKET_RX_RING", io::Error::last_os_error()));
        }
        let len = geometry.block_size * geometry.blocks;
        // SAFETY: a fresh shared mapping of the socket's ring, of exactly the ring's size (what
        // the kernel requires), at an address the kernel chooses; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(("mmap of the receive ring", io::Error::last_os_error()));
        }
        let base = NonNull::new(p.cast::<u8>()).expect("mmap returned null without failing");
        Ok(RxRing {
            base,
            geometry,
            block: 0,
            left: 0,
            next: 0,
        })
    }

    fn block_ptr(&self, block: usize) -> *mut u8 {
        // SAFETY: block < blocks (kept by `release`), so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(block * self.geometry.block_size) }
    }

    /// The current block's status word, shared with the kernel.
    fn status(&self) -> &AtomicU32 {
        // SAFETY: the word lies inside the mapping (offset 8 of a page-aligned block, so
        // 4-aligned), lives as long as `self`, and is only ever accessed atomically by us and
        // with READ_ONCE / WRITE_ONCE and barriers by the kernel; AtomicU32 has u32's layout.
        unsafe {
            &*self
                .block_ptr(self.block)
                .add(BLOCK_STATUS_AT)
                .cast::<AtomicU32>()
        }
    }

    fn read_u32(&self, at: usize) -> u32 {
        debug_assert!(at + 4 <= self.geometry.block_size);
        // SAFETY: callers pass offsets inside the current block; the block is ours (status
        // USER, read with acquire) so the kernel does not write it meanwhile.
        unsafe {
            self.block_ptr(self.block)
                .add(at)
                .cast::<u32>()
                .read_unaligned()
        }
    }

    /// Hand the current block back to the kernel and move to the next one.
    fn release(&mut self) {
        // Release: every read of the block happens before the kernel may see it as its own.
        self.status().store(TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % self.geometry.blocks;
        self.left = 0;
        self.next = 0;
    }

    /// Copy up to `bufs.len()` frames (at most `meta.len()`) from retired blocks into `bufs`,
    /// across blocks; returns how many. 0 when the ring is empty (then poll the socket).
    pub(crate) fn recv(
        &mut self,
        vnet_hdr: bool,
        bufs: &mut [Box<[u8]>],
        meta: &mut [RxMeta],
    ) -> usize {
        let n = bufs.len().min(meta.len());
        let block_size = self.geometry.block_size;
        let mut got = 0;
        while got < n {
            if self.left == 0 {
                // Acquire: the kernel's writes to the block happen before it marks it ours.
                if self.status().load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                    break;
                }
                let frames = self.read_u32(BLOCK_NUM_PKTS_AT);
                let first = self.read_u32(BLOCK_FIRST_PKT_AT) as usize;
                if frames == 0 {
                    self.release();
                    continue;
                }
                self.left = frames;
                self.next = first;
            }
            let at = self.next;
            let hdr_len = std::mem::size_of::<Tpacket3Hdr>();
            if at < BLOCK_DESC_LEN || at + hdr_len > block_size {
                debug_assert!(
                    false,
                    "frame header at {at} outside a block of {block_size}"
                );
                self.release();
                continue;
            }
            // SAFETY: `at + 48 <= block_size` (checked above), inside the current block, which
            // is ours; read_unaligned needs no alignment (the kernel aligns to 16 anyway).
            let h: Tpacket3Hdr = unsafe {
                self.block_ptr(self.block)
                    .add(at)
                    .cast::<Tpacket3Hdr>()
                    .read_unaligned()
            };
            let mac = usize::from(h.tp_mac);
            let snap = h.tp_snaplen as usize;
            let vnet_room = if vnet_hdr { VNET_HDR_LEN } else { 0 };
            if mac < hdr_len + vnet_room || at + mac + snap > block_size {
                debug_assert!(
                    false,
                    "frame at {at}+{mac}, {snap} bytes, outside the block"
                );
                self.release();
                continue;
            }
            // SAFETY: `at + mac + snap <= block_size` (checked above): the frame's bytes lie
            // inside the current block, which is ours.
            let frame = unsafe { self.block_ptr(self.block).add(at + mac) };
            let vnet = if vnet_hdr {
                let mut b = [0u8; VNET_HDR_LEN];
                // SAFETY: `mac >= 48 + 10` (checked above): the 10 bytes before the frame are
                // inside this frame's slot, after its header; `b` is 10 bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(frame.sub(VNET_HDR_LEN), b.as_mut_ptr(), 10)
                };
                VnetHdr::from_bytes(&b)
            } else {
                VnetHdr::NONE
            };
            let buf = &mut bufs[got];
            let copied = snap.min(buf.len());
            // SAFETY: `copied <= snap` bytes from inside the block (checked above) into the
            // caller's buffer (`copied <= buf.len()`); ring and buffer never overlap.
            unsafe { std::ptr::copy_nonoverlapping(frame, buf.as_mut_ptr(), copied) };
            let tag = tag_bytes(h.tp_status, h.tp_vlan_tci as u16, h.tp_vlan_tpid);
            let real = h.tp_len as usize;
            meta[got] = finish_frame(buf, copied, real, snap < real, tag, vnet);
            got += 1;

            self.left -= 1;
            if self.left == 0 || h.tp_next_offset == 0 {
                debug_assert!(self.left == 0, "a frame before the last has no successor");
                self.release();
            } else {
                self.next = at + h.tp_next_offset as usize;
            }
        }
        got
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are exactly those of the mapping made in `new`, unmapped
        // nowhere else; nothing borrows the ring past `self`.
        unsafe {
            libc::munmap(
                self.base.as_ptr().cast(),
                self.geometry.block_size * self.geometry.blocks,
            );
        }
    }
}
