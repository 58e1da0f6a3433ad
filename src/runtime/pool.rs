//! Frame buffers, allocated at start-up in two sizes and recycled, owned by one forwarding
//! thread.
//!
//! Most frames fit a small buffer (an MTU-size frame); GSO super-frames and jumbo frames take a
//! large one. The free lists are vectors with room for every buffer made, so taking and giving
//! back never allocate, and `outstanding()` tells a buffer that was never returned. When a size
//! runs out, the frame is dropped and counted (`no_buffer`), never queued unbounded.
//!
//! Large buffers are also lent out as receive buffers: the runtime makes the pool with a batch
//! of large buffers per ingress for that, and each ingress takes them at start and gives them
//! back when it ends. A frame received into one of them is not copied:
//! [`Pool::swap_large`] puts a free large buffer in its place and hands the full one on, a
//! pure exchange that leaves the number of buffers out unchanged. Small frames are still copied
//! ([`Pool::copy_in`]) so that a 64-byte frame does not hold a 64 KiB buffer while it waits.

/// Frames up to this size take a small buffer.
pub const SMALL: usize = 2048;

#[derive(Debug)]
pub struct Pool {
    small: Vec<Box<[u8]>>,
    large: Vec<Box<[u8]>>,
    small_made: usize,
    large_made: usize,
    large_size: usize,
}

impl Pool {
    pub fn new(small_count: usize, large_count: usize, large_size: usize) -> Pool {
        let mut pool = Pool {
            small: Vec::new(),
            large: Vec::new(),
            small_made: 0,
            large_made: 0,
            large_size,
        };
        pool.grow(small_count, large_count);
        pool
    }

    /// Make `small` and `large` more buffers (allocates: start-up and reload only).
    pub fn grow(&mut self, small: usize, large: usize) {
        self.small_made += small;
        self.large_made += large;
        self.small.reserve_exact(self.small_made - self.small.len());
        self.large.reserve_exact(self.large_made - self.large.len());
        self.small
            .extend((0..small).map(|_| vec![0u8; SMALL].into_boxed_slice()));
        self.large
            .extend((0..large).map(|_| vec![0u8; self.large_size].into_boxed_slice()));
    }

    /// Buffers made, small and large.
    pub fn made(&self) -> (usize, usize) {
        (self.small_made, self.large_made)
    }

    /// Buffers handed out and not yet returned.
    pub fn outstanding(&self) -> usize {
        (self.small_made - self.small.len()) + (self.large_made - self.large.len())
    }

    /// A buffer holding a copy of `frame`, or `None` when none of that size is free (or the
    /// frame exceeds the large size).
    pub fn copy_in(&mut self, frame: &[u8]) -> Option<Box<[u8]>> {
        let mut buf = if frame.len() <= SMALL {
            self.small.pop()?
        } else if frame.len() <= self.large_size {
            self.large.pop()?
        } else {
            return None;
        };
        buf[..frame.len()].copy_from_slice(frame);
        Some(buf)
    }

    /// A free small buffer, to be given back later; `None` when none is free.
    pub fn take_small(&mut self) -> Option<Box<[u8]>> {
        self.small.pop()
    }

    /// A free large buffer, to be given back later; `None` when none is free.
    pub fn take_large(&mut self) -> Option<Box<[u8]>> {
        self.large.pop()
    }

    /// Hand on the large buffer in `slot` without copying it: a free large buffer takes its
    /// place and the full one is returned. `None` (and `slot` left as it was) when none is free.
    /// `slot` must hold a large buffer of this pool.
    pub fn swap_large(&mut self, slot: &mut Box<[u8]>) -> Option<Box<[u8]>> {
        debug_assert_eq!(
            slot.len(),
            self.large_size,
            "not a large buffer of this pool"
        );
        let fresh = self.large.pop()?;
        Some(std::mem::replace(slot, fresh))
    }

    /// Give a buffer back to the list of its size. Never allocates: each list has room for
    /// every buffer of its size made.
    pub fn give_back(&mut self, buf: Box<[u8]>) {
        if buf.len() == SMALL {
            debug_assert!(
                self.small.len() < self.small_made,
                "a small buffer given back twice"
            );
            self.small.push(buf);
        } else {
            debug_assert!(
                self.large.len() < self.large_made,
                "a large buffer given back twice"
            );
            self.large.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_cycle_without_loss_and_run_out_cleanly() {
        let mut pool = Pool::new(2, 1, 9000);
        let a = pool.copy_in(&[1; 64]).unwrap();
        let b = pool.copy_in(&[2; 1514]).unwrap();
        assert!(pool.copy_in(&[3; 100]).is_none(), "small buffers exhausted");
        let big = pool.copy_in(&[4; 5000]).unwrap();
        assert_eq!(&big[..5000], &[4; 5000][..]);
        assert!(
            pool.copy_in(&[5; 9001]).is_none(),
            "larger than the largest buffer"
        );
        assert_eq!(pool.outstanding(), 3);
        pool.give_back(a);
        pool.give_back(b);
        pool.give_back(big);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn a_swap_is_an_exchange_and_fails_cleanly_when_none_is_free() {
        let mut pool = Pool::new(1, 2, 9000);
        let mut slot = pool.take_large().unwrap();
        slot[..3].copy_from_slice(&[1, 2, 3]);
        let full = pool.swap_large(&mut slot).unwrap();
        assert_eq!(
            &full[..3],
            &[1, 2, 3],
            "the full buffer is handed on, not copied"
        );
        assert_eq!(pool.outstanding(), 2, "the slot and the full buffer");
        slot[..3].copy_from_slice(&[4, 5, 6]);
        assert!(pool.swap_large(&mut slot).is_none(), "no large buffer free");
        assert_eq!(&slot[..3], &[4, 5, 6], "the slot keeps its buffer");
        assert!(pool.copy_in(&[7; 5000]).is_none());
        pool.give_back(full);
        pool.give_back(slot);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn growing_adds_buffers_without_losing_the_count() {
        let mut pool = Pool::new(1, 0, 9000);
        let a = pool.take_small().unwrap();
        pool.grow(2, 1);
        assert_eq!(pool.made(), (3, 1));
        assert_eq!(pool.outstanding(), 1);
        pool.give_back(a);
        assert_eq!(pool.outstanding(), 0);
    }
}
