//! A rate shared by several forwarding threads: the groundwork of `--workers N` (issue 15),
//! where a class's rate must hold for the sum over workers, not per worker.
//!
//! The tokens live in one exact [`TokenBucket`] behind a lock. Each worker holds a
//! [`RateShare`]: it leases tokens from the bucket in chunks (`lease`: a time's worth of the
//! rate, at least the frame at hand) and spends them frame by frame without the lock, so the lock
//! is taken once per lease, not once per frame. `lease = 0` is the naive design (the lock for
//! every frame), kept for comparison (benches/shared_rate.rs).
//!
//! Guarantees:
//! - **Never above the rate.** Tokens only move (bucket -> lease -> frames, or back): over any
//!   interval, what all workers send together is at most what one bucket would let through.
//! - **Short of it by at most one lease per worker**, and only while leases sit unspent: a share
//!   that cannot cover its frame gives its tokens back at once (workers holding partial leases
//!   cannot starve each other), and [`RateShare::give_back`] returns a lease when its worker has
//!   nothing to send.
//! - No allocation after [`SharedRate::new`]; a poisoned lock is used as it is (the bucket is
//!   plain numbers, consistent after any panic).

use super::token_bucket::{Conform, TokenBucket, UNITS_PER_BYTE};
use super::Nanos;
use std::sync::{Arc, Mutex, MutexGuard};

/// One rate, shared.
#[derive(Debug)]
pub struct SharedRate {
    bucket: Mutex<TokenBucket>,
    /// Units a share leases at once (at least the frame it needs).
    lease_units: i128,
}

impl SharedRate {
    /// `rate_bps` with a bucket of `burst_bytes`, starting empty at `now`; shares lease
    /// `lease_ns` of the rate at a time (0: exactly each frame's cost, a lock per frame).
    pub fn new(rate_bps: u64, burst_bytes: u64, lease_ns: u64, now: Nanos) -> Arc<SharedRate> {
        Arc::new(SharedRate {
            bucket: Mutex::new(TokenBucket::new(rate_bps, burst_bytes, now)),
            lease_units: i128::from(lease_ns) * i128::from(rate_bps.max(1)),
        })
    }

    fn bucket(&self) -> MutexGuard<'_, TokenBucket> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker's share of this rate.
    pub fn share(self: &Arc<Self>) -> RateShare {
        RateShare {
            shared: Arc::clone(self),
            credit: 0,
        }
    }
}

/// One worker's access to a [`SharedRate`]: the tokens it leased and has not spent.
#[derive(Debug)]
pub struct RateShare {
    shared: Arc<SharedRate>,
    credit: i128,
}

impl RateShare {
    /// Take the cost of a `bytes`-byte frame at `now`, from the lease or, when the lease is
    /// short, from the shared bucket (one lock).
    #[inline]
    pub fn take(&mut self, bytes: u32, now: Nanos) -> Conform {
        let cost = i128::from(bytes) * UNITS_PER_BYTE;
        if self.credit >= cost {
            self.credit -= cost;
            return Conform::Taken;
        }
        let mut bucket = self.shared.bucket();
        let want = self.shared.lease_units.max(cost) - self.credit;
        self.credit += bucket.lease(now, want);
        if self.credit >= cost {
            self.credit -= cost;
            Conform::Taken
        } else {
            // Not enough for this frame: what was gathered goes back for the others.
            bucket.give_back(self.credit);
            self.credit = 0;
            Conform::Exceeds
        }
    }

    /// Return the unspent lease (the worker has nothing to send for now).
    pub fn give_back(&mut self) {
        if self.credit > 0 {
            self.shared.bucket().give_back(self.credit);
            self.credit = 0;
        }
    }

    /// Bytes leased and not spent.
    pub fn credit_bytes(&self) -> i64 {
        i64::try_from(self.credit / UNITS_PER_BYTE).unwrap_or(i64::MAX)
    }
}

impl Drop for RateShare {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    /// Workers taking 1500-byte frames in turns for `seconds` of virtual time, each as fast as
    /// its share lets it; the bytes each one sent.
    fn saturate(workers: usize, lease_ns: u64, seconds: u64) -> Vec<u64> {
        let rate = SharedRate::new(100_000_000, 3000, lease_ns, 0);
        let mut shares: Vec<RateShare> = (0..workers).map(|_| rate.share()).collect();
        let mut sent = vec![0u64; workers];
        // 1 us steps; each worker tries once per step, in turns starting with a pseudo-random
        // one (a fixed rotation would hand every refill to the same worker).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..seconds * 1_000_000 {
            let now = step * 1000;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..workers {
                let w = (k + x as usize) % workers;
                if shares[w].take(1500, now) == Conform::Taken {
                    sent[w] += 1500;
                }
            }
        }
        sent
    }

    #[test]
    fn the_sum_over_workers_is_the_rate() {
        for workers in [1, 2, 4, 8] {
            for lease_ns in [0, 100_000, 1_000_000] {
                let sent = saturate(workers, lease_ns, 2);
                let total: u64 = sent.iter().sum();
                // 100 Mbit/s for 2 s = 25,000,000 bytes, plus at most the 3000-byte burst;
                // short of it by at most a lease per worker.
                let lease_bytes = lease_ns * 100_000_000 / 8 / SECOND;
                let floor = 25_000_000 - (workers as u64) * (lease_bytes + 1500);
                assert!(
                    total <= 25_003_000 && total >= floor,
                    "{workers} workers, lease {lease_ns} ns: {total} bytes ({sent:?})"
                );
                // Each worker got its part (none starved): within 3% of equal (who asks first
                // after a refill is random here, as on real threads) and a lease.
                let fair = total / workers as u64;
                for s in &sent {
                    assert!(
                        s.abs_diff(fair) <= fair * 3 / 100 + lease_bytes + 3000,
                        "{workers} workers, lease {lease_ns} ns: {sent:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_idle_share_gives_its_lease_back() {
        let rate = SharedRate::new(8_000_000, 1_000_000, 10 * 1_000_000, 0);
        let mut a = rate.share();
        let mut b = rate.share();
        // 10 ms of 8 Mbit/s = 10,000 bytes earned; `a` leases all of it for one frame.
        assert_eq!(a.take(1000, 10_000_000), Conform::Taken);
        assert_eq!(a.credit_bytes(), 9000);
        assert_eq!(b.take(1000, 10_000_000), Conform::Exceeds);
        a.give_back();
        assert_eq!(b.take(1000, 10_000_000), Conform::Taken);
        drop(b);
        // Dropped shares give back too: 8,000 bytes are in the bucket again.
        let mut c = rate.share();
        assert_eq!(c.take(8000, 10_000_000), Conform::Taken);
        assert_eq!(c.take(1, 10_000_000), Conform::Exceeds);
    }
}
