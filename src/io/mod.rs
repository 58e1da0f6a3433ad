//! Devices: where frames come from and go to, behind one trait.
//!
//! A [`Device`] moves frames in batches: [`Device::recv_batch`] fills caller-owned buffers,
//! [`Device::send_batch`] takes borrowed frames. Neither allocates nor blocks; readiness is
//! waited for with [`Device::wait_readable`] (a poll on the device's descriptor, bounded by a
//! timeout). Backends:
//! - `af_packet` (Linux, default): AF_PACKET sockets driven directly, batched with recvmmsg (or
//!   a memory-mapped TPACKET_V3 receive ring) and sendmmsg, `PACKET_IGNORE_OUTGOING`, `PACKET_VNET_HDR` (GSO super-frames and partial
//!   checksums pass intact), promiscuous membership that the kernel drops when the socket closes;
//! - `pnet`: pnet_datalink, the portable fallback: two system calls per frame (poll, then recv
//!   or send), no vnet header (endpoints must turn offloads off), one socket per port;
//! - [`memory::MemoryDevice`]: an in-memory pair for tests;
//! - [`capture_file::CaptureFileDevice`]: a capture file as a port (frames as fast as read, or
//!   at their capture times), a sink when sent to.
//!
//! Wrapper: [`recorder::Recorder`] writes what any device receives and/or sends to a pcap file.
//!
//! Every backend reports frames longer than its buffers as truncated rather than cutting them
//! silently; the runtime counts them as malformed drops.
//!
//! Frames the kernel drops before a backend can receive them (its receive ring or socket buffer
//! full) are reported apart, by [`Device::kernel_drops`], where the backend can know them
//! (AF_PACKET); they were never received, so they are in no other count.

pub mod af_packet;
pub mod capture_file;
#[cfg(test)]
mod gso_kernel_tests;
pub mod memory;
pub mod pnet;
pub mod recorder;
pub mod sys;
#[cfg(test)]
pub(crate) mod test_netns;

pub use crate::wire::{VnetHdr, MAX_FRAME};

use std::time::Duration;

/// Frames per system call, each way.
pub const BATCH: usize = 64;

/// What [`Device::recv_batch`] learned about one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// Bytes of the frame written into the buffer.
    pub len: usize,
    /// The frame was longer than the buffer (its tail is lost).
    pub truncated: bool,
    /// Offload state of the frame (GSO, partial checksum); `VnetHdr::NONE` for plain frames.
    pub vnet: VnetHdr,
}

/// A frame to send.
#[derive(Clone, Copy, Debug)]
pub struct TxFrame<'a> {
    pub data: &'a [u8],
    pub vnet: VnetHdr,
}

/// Whether the interface behind a device can carry frames, as [`Device::link`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Up,
    /// Set down (`ip link set NAME down`): frames cannot leave, none arrive; the device works
    /// again once it is set up.
    Down,
    /// Up, but without carrier (a cable out; for a veth, its peer is down): frames sent are
    /// lost without an error. The device works again once carrier is back.
    NoCarrier,
    /// No longer there (deleted, moved to another namespace, or replaced by a new interface of
    /// the same name): this device will never work again.
    Gone,
}

/// The link of interface `name` as [`Device::link`] reports it, asked by name (a few system
/// calls): for backends without a socket of their own to ask on.
pub fn link_by_name(name: &str) -> Link {
    match sys::netdev::interface_info(name) {
        Ok(i) if !i.up => Link::Down,
        Ok(i) if !i.running => Link::NoCarrier,
        Ok(_) => Link::Up,
        Err(sys::netdev::NetdevError::NoSuchInterface { .. }) => Link::Gone,
        // Unknown (the kernel refused the question): no reason to stop the bridge.
        Err(_) => Link::Up,
    }
}

pub trait Device: Send {
    /// Interface name, for messages.
    fn name(&self) -> &str;

    /// Receive up to `bufs.len()` frames without blocking: frame `i` goes into `bufs[i]`, its
    /// meta into `meta[i]`. Returns how many were received (0 when none is waiting).
    fn recv_batch(&mut self, bufs: &mut [Box<[u8]>], meta: &mut [RxMeta])
        -> std::io::Result<usize>;

    /// Send frames without blocking; returns how many the kernel took, from the front. Frames
    /// not taken (the device is full) are the caller's to retry or drop.
    fn send_batch(&mut self, frames: &[TxFrame<'_>]) -> std::io::Result<usize>;

    /// Wait until a frame can be received, or `timeout` passes. Returns whether one can.
    fn wait_readable(&mut self, timeout: Duration) -> std::io::Result<bool>;

    /// Whether frames carry a vnet header (GSO and checksum offload state).
    fn offloads(&self) -> bool;

    /// A descriptor that polls readable when a frame waits, so one thread can wait on several
    /// devices at once. `None` when the backend has none (then callers wait in short steps).
    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Frames the kernel dropped on this device's receive path since it was opened, before
    /// they could be received (a full receive ring or socket buffer: the reader was too slow).
    /// They never reach [`Device::recv_batch`], so they are in no count of frames received.
    /// `None` when the backend has no such counter (memory, capture file, pnet).
    ///
    /// May make a system call (AF_PACKET reads the kernel's counter): call it every so often,
    /// never per frame or per batch.
    fn kernel_drops(&mut self) -> Option<u64> {
        None
    }

    /// The state of the interface behind this device, asked after an error or a send the
    /// device would not take: it may make system calls, so never per frame. A device with no
    /// interface behind it (memory, capture file) is always `Up`.
    fn link(&mut self) -> Link {
        Link::Up
    }
}
