//! Frame buffers, allocated once at start-up in two sizes and recycled.
//!
//! Most frames fit a small buffer (an MTU-size frame); GSO super-frames and jumbo frames take a
//! large one. The free lists are bounded channels holding exactly the buffers made at start:
//! taking and giving back never allocates, and a buffer can never be lost without the pool
//! noticing (`outstanding()`). When a size runs out, the frame is dropped and counted
//! (`no_buffer`), never queued unbounded.
//!
//! Large buffers are also lent out as receive buffers: the runtime makes the pool with extra
//! large buffers for that, and each ingress takes [`crate::io::BATCH`] of them at start and gives
//! them back when it ends. A frame received into one of them is not copied: [`PoolHandle::swap_large`]
//! puts a free large buffer in its place and hands the full one on, a pure exchange that leaves
//! the number of buffers out unchanged. Small frames are still copied ([`PoolHandle::copy_in`]) so
//! that a 64-byte frame does not hold a 64 KiB buffer while it waits in a queue.

use crossbeam_channel::{bounded, Receiver, Sender};

/// Frames up to this size take a small buffer.
pub const SMALL: usize = 2048;

pub struct Pool {
    small_tx: Sender<Box<[u8]>>,
    small_rx: Receiver<Box<[u8]>>,
    large_tx: Sender<Box<[u8]>>,
    large_rx: Receiver<Box<[u8]>>,
    small_count: usize,
    large_count: usize,
    large_size: usize,
}

/// A cheap handle on the same pool, for another thread.
#[derive(Clone)]
pub struct PoolHandle {
    small_tx: Sender<Box<[u8]>>,
    small_rx: Receiver<Box<[u8]>>,
    large_tx: Sender<Box<[u8]>>,
    large_rx: Receiver<Box<[u8]>>,
    large_size: usize,
}

impl Pool {
    pub fn new(small_count: usize, large_count: usize, large_size: usize) -> Pool {
        let (small_tx, small_rx) = bounded(small_count.max(1));
        let (large_tx, large_rx) = bounded(large_count.max(1));
        for _ in 0..small_count {
            let _ = small_tx.try_send(vec![0u8; SMALL].into_boxed_slice());
        }
        for _ in 0..large_count {
            let _ = large_tx.try_send(vec![0u8; large_size].into_boxed_slice());
        }
        Pool {
            small_tx,
            small_rx,
            large_tx,
            large_rx,
            small_count,
            large_count,
            large_size,
        }
    }

    pub fn handle(&self) -> PoolHandle {
        PoolHandle {
            small_tx: self.small_tx.clone(),
            small_rx: self.small_rx.clone(),
            large_tx: self.large_tx.clone(),
            large_rx: self.large_rx.clone(),
            large_size: self.large_size,
        }
    }

    /// Buffers handed out and not yet returned.
    pub fn outstanding(&self) -> usize {
        (self.small_count - self.small_rx.len()) + (self.large_count - self.large_rx.len())
    }
}

impl PoolHandle {
    /// A buffer holding a copy of `frame`, or `None` when none of that size is free (or the
    /// frame exceeds the large size).
    pub fn copy_in(&self, frame: &[u8]) -> Option<Box<[u8]>> {
        let mut buf = if frame.len() <= SMALL {
            self.small_rx.try_recv().ok()?
        } else if frame.len() <= self.large_size {
            self.large_rx.try_recv().ok()?
        } else {
            return None;
        };
        buf[..frame.len()].copy_from_slice(frame);
        Some(buf)
    }

    /// A free small buffer, to be given back later; `None` when none is free.
    pub fn take_small(&self) -> Option<Box<[u8]>> {
        self.small_rx.try_recv().ok()
    }

    /// A free large buffer, to be given back later; `None` when none is free.
    pub fn take_large(&self) -> Option<Box<[u8]>> {
        self.large_rx.try_recv().ok()
    }

    /// Hand on the large buffer in `slot` without copying it: a free large buffer takes its
    /// place and the full one is returned. `None` (and `slot` left as it was) when none is free.
    /// `slot` must hold a large buffer of this pool.
    pub fn swap_large(&self, slot: &mut Box<[u8]>) -> Option<Box<[u8]>> {
        debug_assert_eq!(
            slot.len(),
            self.large_size,
            "not a large buffer of this pool"
        );
        let fresh = self.large_rx.try_recv().ok()?;
        Some(std::mem::replace(slot, fresh))
    }

    /// Give a buffer back to the list of its size.
    pub fn give_back(&self, buf: Box<[u8]>) {
        // Cannot be full: only buffers made by the pool come back, once each.
        let _ = if buf.len() == SMALL {
            self.small_tx.try_send(buf)
        } else {
            self.large_tx.try_send(buf)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_cycle_without_loss_and_run_out_cleanly() {
        let pool = Pool::new(2, 1, 9000);
        let h = pool.handle();
        let a = h.copy_in(&[1; 64]).unwrap();
        let b = h.copy_in(&[2; 1514]).unwrap();
        assert!(h.copy_in(&[3; 100]).is_none(), "small buffers exhausted");
        let big = h.copy_in(&[4; 5000]).unwrap();
        assert_eq!(&big[..5000], &[4; 5000][..]);
        assert!(
            h.copy_in(&[5; 9001]).is_none(),
            "larger than the largest buffer"
        );
        assert_eq!(pool.outstanding(), 3);
        h.give_back(a);
        h.give_back(b);
        h.give_back(big);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn a_swap_is_an_exchange_and_fails_cleanly_when_none_is_free() {
        let pool = Pool::new(1, 2, 9000);
        let h = pool.handle();
        let mut slot = h.take_large().unwrap();
        slot[..3].copy_from_slice(&[1, 2, 3]);
        let full = h.swap_large(&mut slot).unwrap();
        assert_eq!(
            &full[..3],
            &[1, 2, 3],
            "the full buffer is handed on, not copied"
        );
        assert_eq!(pool.outstanding(), 2, "the slot and the full buffer");
        slot[..3].copy_from_slice(&[4, 5, 6]);
        assert!(h.swap_large(&mut slot).is_none(), "no large buffer free");
        assert_eq!(&slot[..3], &[4, 5, 6], "the slot keeps its buffer");
        assert!(h.copy_in(&[7; 5000]).is_none());
        h.give_back(full);
        h.give_back(slot);
        assert_eq!(pool.outstanding(), 0);
    }
}
