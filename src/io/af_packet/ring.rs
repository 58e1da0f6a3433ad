//! The receive rings of an AF_PACKET socket: `PACKET_RX_RING` with TPACKET_V3
//! ([`RxMode::Ring`](super::RxMode::Ring), [`RxRing`]) or TPACKET_V2
//! ([`RxMode::RingV2`](super::RxMode::RingV2), [`SlotRing`], at the end of this file). Both share
//! the mapping ([`Mapping`]) and the copy of a frame out of the ring ([`copy_out`]).
//!
//! ## TPACKET_V3
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
//! ## TPACKET_V2
//!
//! The kernel and weir share [`RX_SLOTS`] fixed slots of [`RX_SLOT`] bytes (68 KiB: the largest
//! GSO super-frame with its headers fits in one), each with its own status word. The kernel
//! writes a frame into the next slot and marks that slot weir's at once: **no retire timer, no
//! added delay**; the socket polls readable as soon as one slot is. weir reads slots in order,
//! copies the frame out and hands the slot back at once (release fence).
//!
//! Guarantees, besides those of V3 that do not concern blocks:
//! - **Bounded memory**: [`RX_SLOT_RING_BYTES`] (16 MiB, in blocks of 15 slots) of kernel pages
//!   per receiving socket. When all [`RX_SLOTS`] slots wait for weir the kernel drops what
//!   arrives. 240 slots is about what the default socket buffer holds of small frames, and far
//!   more than it holds of super-frames.
//! - **Order**: one frame per slot, slots read in ring order; no frame goes elsewhere
//!   (`PACKET_COPY_THRESH` is left off, so a frame longer than a slot, which the default slot
//!   size rules out, is cut and reported truncated, never queued beside the ring).
//! - **Every slot header is bounds-checked** against its slot before the frame is read.
//!
//! Thread contract: as [`AfPacket`](super::AfPacket): one thread at a time, `Send`.

use super::{finish_frame, tag_bytes, RxMeta, VnetHdr, MAX_FRAME, SOL_PACKET};
use crate::wire::vnet::VNET_HDR_LEN;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

// From <linux/if_packet.h>.
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
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
const _: () = assert!(RX_RING_BLOCK.is_power_of_two() && RX_RING_BLOCK.is_multiple_of(4096));

/// Ask the kernel for a receive ring described by `req` (a `tpacket_req` or `tpacket_req3`) in
/// format `version`, then map it (`len` bytes: blocks times block size).
fn request_and_map<R>(
    fd: &OwnedFd,
    version: (libc::c_int, &'static str),
    req: &R,
    len: usize,
) -> Result<Mapping, (&'static str, io::Error)> {
    super::set_int_opt(fd, PACKET_VERSION, version.0).map_err(|e| (version.1, e))?;
    // SAFETY: `req` is a repr(C) ring request (the caller's type) that outlives the call; the
    // length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_RX_RING,
            (req as *const R).cast(),
            std::mem::size_of::<R>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(("setsockopt PACKET_RX_RING", io::Error::last_os_error()));
    }
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
    Ok(Mapping { base, len })
}

/// A ring mapped into weir: owned alone, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is reachable only through this struct (no copy of `base` leaves it), and
// the kernel synchronises with us through status words, not through a thread; so the ring may
// move to another thread with its owner.
unsafe impl Send for Mapping {}

impl Mapping {
    /// The address `at` bytes into the mapping.
    fn at(&self, at: usize) -> *mut u8 {
        assert!(at < self.len, "offset {at} outside a ring of {}", self.len);
        // SAFETY: `at < len` (asserted): inside the mapping.
        unsafe { self.base.as_ptr().add(at) }
    }

    /// The status word at offset `at`, shared with the kernel.
    fn status(&self, at: usize) -> &AtomicU32 {
        assert!(at.is_multiple_of(4) && at + 4 <= self.len);
        // SAFETY: the word lies inside the mapping (checked) and is 4-aligned (the mapping is
        // page-aligned, `at` a multiple of 4); it lives as long as `self`, and is only ever
        // accessed atomically by us and with READ_ONCE / WRITE_ONCE and barriers by the kernel;
        // AtomicU32 has u32's layout.
        unsafe { &*self.at(at).cast::<AtomicU32>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly those of the mapping made in `request_and_map`,
        // unmapped nowhere else; nothing borrows the ring past `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// What a ring frame header says about one frame.
struct RingFrame {
    snap: usize,
    real: usize,
    status: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// Copy one frame out of the ring into `buf`, its vnet header (when `vnet_hdr`) from the 10
/// bytes before it, and put its VLAN tag back.
///
/// # Safety
/// `frame` points at the frame's first byte (`tp_mac`), with `f.snap` bytes readable after it
/// and, when `vnet_hdr`, 10 bytes readable before it, all in a part of the ring that the
/// kernel does not write meanwhile (ours by its status word, read with acquire ordering).
unsafe fn copy_out(frame: *const u8, f: &RingFrame, vnet_hdr: bool, buf: &mut [u8]) -> RxMeta {
    let vnet = if vnet_hdr {
        let mut b = [0u8; VNET_HDR_LEN];
        // SAFETY: the 10 bytes before the frame are readable (the caller's contract); `b` is
        // 10 bytes.
        unsafe { std::ptr::copy_nonoverlapping(frame.sub(VNET_HDR_LEN), b.as_mut_ptr(), 10) };
        VnetHdr::from_bytes(&b)
    } else {
        VnetHdr::NONE
    };
    let copied = f.snap.min(buf.len());
    // SAFETY: `copied <= snap` readable bytes (the caller's contract) into the caller's buffer
    // (`copied <= buf.len()`); ring and buffer never overlap.
    unsafe { std::ptr::copy_nonoverlapping(frame, buf.as_mut_ptr(), copied) };
    let tag = tag_bytes(f.status, f.vlan_tci, f.vlan_tpid);
    finish_frame(buf, copied, f.real, f.snap < f.real, tag, vnet)
}

/// A mapped TPACKET_V3 receive ring and the reader's place in it.
pub(crate) struct RxRing {
    map: Mapping,
    geometry: RingGeometry,
    /// The block read next (or being read).
    block: usize,
    /// Frames of the current block not yet read (0: the block is not opened).
    left: u32,
    /// Offset in the current block of the next frame's header.
    next: usize,
}

impl RxRing {
    /// Ask for a ring on `fd` and map it. `fd` must be a fresh packet socket, not yet bound,
    /// with `PACKET_VNET_HDR` already set if wanted. Errors name the step that failed.
    pub(crate) fn new(
        fd: &OwnedFd,
        geometry: RingGeometry,
    ) -> Result<RxRing, (&'static str, io::Error)> {
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
        let map = request_and_map(
            fd,
            (TPACKET_V3, "setsockopt PACKET_VERSION (TPACKET_V3)"),
            &req,
            geometry.block_size * geometry.blocks,
        )?;
        Ok(RxRing {
            map,
            geometry,
            block: 0,
            left: 0,
            next: 0,
        })
    }

    fn block_ptr(&self, block: usize) -> *mut u8 {
        self.map.at(block * self.geometry.block_size)
    }

    /// The current block's status word, shared with the kernel.
    fn status(&self) -> &AtomicU32 {
        self.map
            .status(self.block * self.geometry.block_size + BLOCK_STATUS_AT)
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
            let f = RingFrame {
                snap,
                real: h.tp_len as usize,
                status: h.tp_status,
                vlan_tci: h.tp_vlan_tci as u16,
                vlan_tpid: h.tp_vlan_tpid,
            };
            // SAFETY: the frame's `snap` bytes and, with a vnet header, the 10 before it
            // (`mac >= 48 + 10`, after this frame's header) are inside the current block
            // (checked above), which is ours (status read with acquire).
            meta[got] = unsafe { copy_out(frame, &f, vnet_hdr, &mut bufs[got]) };
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

// ---- TPACKET_V2 ----

/// Bytes of one V2 slot: the largest frame ([`MAX_FRAME`]) with its vnet header, `tpacket2_hdr`
/// and `sockaddr_ll` (well under 256 bytes), rounded up to whole pages.
pub const RX_SLOT: usize = 68 << 10;
/// Slots per kernel block: 15 slots of 68 KiB are 255 pages, which the kernel allocates as one
/// 1 MiB block (it rounds a block up to a power of two of pages).
pub const RX_SLOTS_PER_BLOCK: usize = 15;
/// Blocks per V2 ring.
pub const RX_SLOT_BLOCKS: usize = 16;
/// Slots per V2 ring: 240.
pub const RX_SLOTS: usize = RX_SLOTS_PER_BLOCK * RX_SLOT_BLOCKS;
/// Bytes of one V2 ring as mapped (15.9 MiB; the kernel holds 16 MiB).
pub const RX_SLOT_RING_BYTES: usize = RX_SLOT * RX_SLOTS;

const _: () = assert!(RX_SLOT >= 256 + MAX_FRAME);
const _: () = assert!(RX_SLOT.is_multiple_of(4096));

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

/// `struct tpacket2_hdr`, read whole (not every field is used).
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_sec: u32,
    tp_nsec: u32,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
    tp_padding: [u8; 4],
}
const _: () = assert!(std::mem::size_of::<Tpacket2Hdr>() == 32);

/// Shape of a V2 ring: the default, or small slots in tests (to see a slot cut a frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotGeometry {
    /// Bytes per slot: a multiple of 16 (TPACKET_ALIGNMENT).
    pub slot_size: usize,
    /// Slots per block; `slot_size * slots_per_block` must be a multiple of the page size.
    pub slots_per_block: usize,
    pub blocks: usize,
}

impl SlotGeometry {
    pub const DEFAULT: SlotGeometry = SlotGeometry {
        slot_size: RX_SLOT,
        slots_per_block: RX_SLOTS_PER_BLOCK,
        blocks: RX_SLOT_BLOCKS,
    };

    fn block_size(&self) -> usize {
        self.slot_size * self.slots_per_block
    }

    fn slots(&self) -> usize {
        self.slots_per_block * self.blocks
    }

    /// Offset of slot `i` in the mapping (slots do not cross blocks; a block may end in unused
    /// bytes, not here since block size is a whole number of slots).
    fn offset(&self, i: usize) -> usize {
        i / self.slots_per_block * self.block_size() + i % self.slots_per_block * self.slot_size
    }
}

/// A mapped TPACKET_V2 receive ring and the reader's place in it.
pub(crate) struct SlotRing {
    map: Mapping,
    geometry: SlotGeometry,
    /// The slot read next.
    next: usize,
}

impl SlotRing {
    /// Ask for a V2 ring on `fd` and map it. `fd` must be a fresh packet socket, not yet bound,
    /// with `PACKET_VNET_HDR` already set if wanted. Errors name the step that failed.
    pub(crate) fn new(
        fd: &OwnedFd,
        geometry: SlotGeometry,
    ) -> Result<SlotRing, (&'static str, io::Error)> {
        let req = TpacketReq {
            tp_block_size: geometry.block_size() as u32,
            tp_block_nr: geometry.blocks as u32,
            tp_frame_size: geometry.slot_size as u32,
            tp_frame_nr: geometry.slots() as u32,
        };
        let map = request_and_map(
            fd,
            (TPACKET_V2, "setsockopt PACKET_VERSION (TPACKET_V2)"),
            &req,
            geometry.block_size() * geometry.blocks,
        )?;
        Ok(SlotRing {
            map,
            geometry,
            next: 0,
        })
    }

    /// Copy up to `bufs.len()` frames (at most `meta.len()`) from the slots the kernel has
    /// filled, in order, into `bufs`; returns how many. 0 when the ring is empty (then poll the
    /// socket).
    pub(crate) fn recv(
        &mut self,
        vnet_hdr: bool,
        bufs: &mut [Box<[u8]>],
        meta: &mut [RxMeta],
    ) -> usize {
        let n = bufs.len().min(meta.len());
        let slot_size = self.geometry.slot_size;
        let hdr_len = std::mem::size_of::<Tpacket2Hdr>();
        let vnet_room = if vnet_hdr { VNET_HDR_LEN } else { 0 };
        let mut got = 0;
        while got < n {
            let at = self.geometry.offset(self.next);
            let status = self.map.status(at);
            // Acquire: the kernel's writes to the slot happen before it marks it ours.
            if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the slot starts at `at` and holds `slot_size >= 32` bytes inside the
            // mapping (`Mapping::at` checks the start; the kernel accepted the geometry, so the
            // slot is whole); it is ours (status USER, read with acquire).
            let h: Tpacket2Hdr = unsafe { self.map.at(at).cast::<Tpacket2Hdr>().read_unaligned() };
            let mac = usize::from(h.tp_mac);
            let snap = h.tp_snaplen as usize;
            if mac >= hdr_len + vnet_room && mac + snap <= slot_size {
                let f = RingFrame {
                    snap,
                    real: h.tp_len as usize,
                    status: h.tp_status,
                    vlan_tci: h.tp_vlan_tci,
                    vlan_tpid: h.tp_vlan_tpid,
                };
                // SAFETY: `mac + snap <= slot_size` (checked above): the frame lies inside this
                // slot, and with a vnet header so do the 10 bytes before it (`mac >= 32 + 10`,
                // after the slot's header); the slot is ours until the store below.
                meta[got] = unsafe {
                    let frame = self.map.at(at).add(mac);
                    copy_out(frame, &f, vnet_hdr, &mut bufs[got])
                };
                got += 1;
            } else {
                debug_assert!(
                    false,
                    "frame at {mac}, {snap} bytes, outside a slot of {slot_size}"
                );
            }
            // Release: every read of the slot happens before the kernel may see it as its own.
            status.store(TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % self.geometry.slots();
        }
        got
    }
}
