//! Frame buffers, allocated once at start-up in two sizes and recycled.
//!
//! Most frames fit a small buffer (an MTU-size frame); GSO super-frames and jumbo frames take a
//! large one. The free lists are bounded channels holding exactly the buffers made at start:
//! taking and giving back never allocates, and a buffer can never be lost without the pool
//! noticing (`outstanding()`). When a size runs out, the frame is dropped and counted
//! (`no_buffer`), never queued unbounded.

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
}
