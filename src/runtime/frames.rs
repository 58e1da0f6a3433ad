//! The live bridge's [`FrameStore`]: each queued frame's buffer, in a slot whose index is the
//! handle the schedulers hold.
//!
//! Capacity: slots for every queue position of the ports a forwarding thread sends on, plus a
//! transmit batch and the segments of a super-frame being cut; buffers from the thread's own
//! [`Pool`]. When either runs out the frame is dropped as `no_buffer` (the pipeline counts it).
//! Nothing here allocates after start-up (or a reload that raises the queue limits).
//! Thread contract: owned by one forwarding thread.

use super::pool::{Pool, SMALL};
use crate::pipeline::FrameStore;
use crate::wire::{Segmenter, VnetHdr};

/// A frame waiting in a queue: its buffer and what is needed to send it.
#[derive(Debug)]
struct Slot {
    buf: Box<[u8]>,
    len: u32,
    vnet: VnetHdr,
}

/// Bytes a forwarding thread holds from start-up for each queue position of the ports it sends
/// on (see [`crate::sched::memory`] for the scheduler's share): the slot and its free-list
/// entry, and the small buffer made for it with its entry in the pool's free list.
pub fn bytes_per_queue_slot() -> u64 {
    use std::mem::size_of;
    (size_of::<Option<Slot>>() + size_of::<u32>() + SMALL + size_of::<Box<[u8]>>()) as u64
}

#[derive(Debug)]
pub struct LiveFrames {
    pool: Pool,
    slab: Vec<Option<Slot>>,
    free: Vec<u32>,
}

impl LiveFrames {
    pub fn new(slots: usize, pool: Pool) -> LiveFrames {
        let mut frames = LiveFrames {
            pool,
            slab: Vec::new(),
            free: Vec::new(),
        };
        frames.grow(slots);
        frames
    }

    /// Add `more` slots (allocates: start-up and reload only).
    pub fn grow(&mut self, more: usize) {
        let start = self.slab.len();
        self.slab.extend((0..more).map(|_| None));
        self.free.reserve_exact(self.slab.len() - self.free.len());
        self.free
            .extend((start as u32..self.slab.len() as u32).rev());
    }

    pub fn slots(&self) -> usize {
        self.slab.len()
    }

    pub fn pool(&mut self) -> &mut Pool {
        &mut self.pool
    }

    /// Buffers not back in the pool and slots still holding a frame.
    pub fn outstanding(&self) -> (usize, usize) {
        (self.pool.outstanding(), self.slab.len() - self.free.len())
    }

    /// The bytes and offload header of a queued frame, to send it.
    pub fn to_send(&self, item: u32) -> Option<(&[u8], VnetHdr)> {
        let s = self.slab.get(item as usize)?.as_ref()?;
        Some((&s.buf[..s.len as usize], s.vnet))
    }

    fn store(&mut self, slot: u32, buf: Box<[u8]>, len: usize, vnet: VnetHdr) -> u32 {
        self.slab[slot as usize] = Some(Slot {
            buf,
            len: len as u32,
            vnet,
        });
        slot
    }
}

impl FrameStore for LiveFrames {
    type Item = u32;
    type Rx<'a> = &'a mut Box<[u8]>;

    /// A small frame is copied into a small buffer (a 64-byte frame must not hold 64 KiB while
    /// it waits); a larger one is not copied: its receive buffer goes on to the queue with it,
    /// and a free large buffer takes its place.
    fn keep(&mut self, rx: &mut &mut Box<[u8]>, len: usize, vnet: VnetHdr) -> Option<u32> {
        let slot = self.free.pop()?;
        let buf = if len <= SMALL {
            self.pool.copy_in(&rx[..len])
        } else {
            self.pool.swap_large(rx)
        };
        match buf {
            Some(buf) => Some(self.store(slot, buf, len, vnet)),
            None => {
                self.free.push(slot);
                None
            }
        }
    }

    /// Segments go in small buffers only: a segment too large for one (a jumbo MSS) makes the
    /// cut fail, and the super-frame goes whole.
    fn keep_segment(&mut self, seg: &Segmenter<'_>, i: usize, vnet: VnetHdr) -> Option<u32> {
        if seg.segment_len(i)? > SMALL {
            return None;
        }
        let slot = self.free.pop()?;
        let Some(mut buf) = self.pool.take_small() else {
            self.free.push(slot);
            return None;
        };
        match seg.write(i, &mut buf) {
            Some(len) => Some(self.store(slot, buf, len, vnet)),
            None => {
                self.pool.give_back(buf);
                self.free.push(slot);
                None
            }
        }
    }

    fn frame_mut(&mut self, item: u32) -> Option<&mut [u8]> {
        let s = self.slab.get_mut(item as usize)?.as_mut()?;
        Some(&mut s.buf[..s.len as usize])
    }

    fn frame(&self, item: u32) -> Option<&[u8]> {
        self.to_send(item).map(|(f, _)| f)
    }

    fn release(&mut self, item: u32) {
        if let Some(s) = self.slab.get_mut(item as usize).and_then(Option::take) {
            self.pool.give_back(s.buf);
            self.free.push(item);
        }
    }
}
