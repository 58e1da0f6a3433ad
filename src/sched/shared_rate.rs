//! A rate shared by several forwarding threads (`weir run --workers N`), where a class's rate
//! must hold for the sum over workers, not per worker, and its flows must share it as they
//! would on one worker.
//!
//! The tokens live in one exact [`TokenBucket`] behind a lock. Each worker holds a
//! [`RateShare`]: it leases tokens in chunks (a lease: a time's worth of the rate, at least the
//! frame at hand) and spends them frame by frame without the lock, so the lock is taken once
//! per lease, not once per frame. `lease = 0` is the naive design (the lock for every frame),
//! kept for comparison (benches/shared_rate.rs).
//!
//! Fairness across workers: a worker asks with a weight, its number of busy flow queues in the
//! class. What the rate earns is split between the shares that asked within the last
//! [`ACTIVE_NS`], in proportion to their weights, into a reserve of each (at most two leases);
//! a lease takes from its share's reserve first, then from the common pool, which holds what
//! overflowed the reserves and what no active share was owed. So a worker with three busy
//! flows gets three quarters of a saturated rate beside a worker with one, every flow a
//! quarter, as on one worker; and what a worker does not use (it is slower, or has less to
//! send) overflows to the others: the rate is still used whole.
//!
//! Guarantees:
//! - **Never above the rate.** Tokens only move (earned -> reserve or pool -> lease -> frames,
//!   or back): over any interval, what all workers send together is at most what one bucket
//!   would let through.
//! - **Short of it by at most three leases per worker** (its lease and its reserve), and only
//!   while they sit unspent: a share that cannot cover its frame gives its tokens back at once,
//!   [`RateShare::give_back`] returns a lease when its worker has nothing to send, and the
//!   reserve of a share that stopped asking goes back to the pool after [`ACTIVE_NS`].
//! - No allocation after [`SharedRate::new`] but one slot per share made; a poisoned lock is
//!   used as it is (the state is plain numbers, consistent after any panic).

use super::token_bucket::{Conform, TokenBucket, UNITS_PER_BYTE};
use super::Nanos;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A share that has not asked for this long is idle: it is owed nothing, and its reserve goes
/// back to the pool.
pub const ACTIVE_NS: Nanos = 2_000_000;

/// One rate, shared.
#[derive(Debug)]
pub struct SharedRate {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The common pool (refilled by hand: [`Inner::refill`] splits what the rate earns).
    bucket: TokenBucket,
    /// Units a share leases at once (at least the frame it needs).
    lease_units: i128,
    lease_ns: u64,
    /// One per share; a dropped share's slot is taken by the next one made.
    slots: Vec<Slot>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    live: bool,
    weight: u32,
    asked_at: Nanos,
    /// Earned for this share and not leased yet (units).
    reserve: i128,
}

impl Inner {
    /// Bring the rate to `now`: what it earned since the last time goes to the active shares
    /// by weight, each reserve up to two leases; the rest, and the reserves of shares gone
    /// idle, to the common pool (which keeps at most its depth, as any bucket).
    fn refill(&mut self, now: Nanos) {
        let cap = 2 * self.lease_units;
        // Anything above the pool's depth and every reserve's cap is lost anyway: bounding it
        // keeps the products below from overflowing after a long idle time.
        let earned = self
            .bucket
            .take_elapsed(now)
            .min(self.bucket.depth() + cap * self.slots.len() as i128);
        let mut rest = earned;
        let mut total: i128 = 0;
        for s in self.slots.iter_mut().filter(|s| s.live) {
            if now.saturating_sub(s.asked_at) > ACTIVE_NS {
                rest += s.reserve;
                s.reserve = 0;
            } else {
                total += i128::from(s.weight);
            }
        }
        if total > 0 && earned > 0 {
            for s in self.slots.iter_mut().filter(|s| s.live) {
                if now.saturating_sub(s.asked_at) > ACTIVE_NS {
                    continue;
                }
                let part = earned * i128::from(s.weight) / total;
                let put = part.min(cap - s.reserve).max(0);
                s.reserve += put;
                rest -= put;
            }
        }
        self.bucket.give_back(rest);
    }

    /// Share `slot` (of `weight`) asks for up to `want` units at `now`.
    fn lease(&mut self, slot: usize, weight: u32, now: Nanos, want: i128) -> i128 {
        if let Some(s) = self.slots.get_mut(slot) {
            s.asked_at = now;
            s.weight = weight.max(1);
        }
        self.refill(now);
        let from_reserve = match self.slots.get_mut(slot) {
            Some(s) => {
                let r = want.min(s.reserve).max(0);
                s.reserve -= r;
                r
            }
            None => 0,
        };
        from_reserve + self.bucket.lease(now, want - from_reserve)
    }

    /// Share `slot` returns `units` it leased: to its reserve (it was owed them), what
    /// overflows it to the pool.
    fn give_back(&mut self, slot: usize, units: i128) {
        let cap = 2 * self.lease_units;
        let mut rest = units.max(0);
        if let Some(s) = self.slots.get_mut(slot).filter(|s| s.live) {
            let put = rest.min(cap - s.reserve).max(0);
            s.reserve += put;
            rest -= put;
        }
        self.bucket.give_back(rest);
    }

    /// When share `slot` could lease `need` units, if the others keep asking as they do: its
    /// reserve and the pool now, then its part of what the rate earns.
    fn ready_at(&self, slot: usize, now: Nanos, need: i128) -> Nanos {
        let reserve = self.slots.get(slot).map_or(0, |s| s.reserve);
        let missing = need - reserve - self.bucket.tokens().max(0);
        if missing <= 0 {
            return now;
        }
        let (mine, total) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live && now.saturating_sub(s.asked_at) <= ACTIVE_NS)
            .fold((0i128, 0i128), |(m, t), (i, s)| {
                let w = i128::from(s.weight);
                (if i == slot { m + w } else { m }, t + w)
            });
        let (mine, total) = (mine.max(1), total.max(1));
        let rate = i128::from(self.bucket.rate_bps().max(1));
        let wait = missing * total / (rate * mine) + 1;
        now.saturating_add(u64::try_from(wait).unwrap_or(u64::MAX))
    }
}

impl SharedRate {
    /// `rate_bps` with a pool of `burst_bytes`, starting empty at `now`; shares lease
    /// `lease_ns` of the rate at a time (0: exactly each frame's cost, a lock per frame).
    pub fn new(rate_bps: u64, burst_bytes: u64, lease_ns: u64, now: Nanos) -> Arc<SharedRate> {
        Arc::new(SharedRate {
            inner: Mutex::new(Inner {
                bucket: TokenBucket::new(rate_bps, burst_bytes, now),
                lease_units: lease_units(lease_ns, rate_bps),
                lease_ns,
                slots: Vec::new(),
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new rate and depth from `now` on ([`TokenBucket::reconfigure`]). Every worker applies
    /// its reload or schedule to the rates it shares: the same values twice change nothing.
    pub fn reconfigure(&self, rate_bps: u64, burst_bytes: u64, now: Nanos) {
        let mut inner = self.inner();
        inner.refill(now);
        inner.bucket.reconfigure(rate_bps, burst_bytes, now);
        inner.lease_units = lease_units(inner.lease_ns, rate_bps);
    }

    /// A worker's share of this rate (allocates a slot, or takes a dropped share's).
    pub fn share(self: &Arc<Self>) -> RateShare {
        let slot = {
            let mut inner = self.inner();
            let fresh = Slot {
                live: true,
                ..Slot::default()
            };
            match inner.slots.iter().position(|s| !s.live) {
                Some(i) => {
                    inner.slots[i] = fresh;
                    i
                }
                None => {
                    inner.slots.push(fresh);
                    inner.slots.len() - 1
                }
            }
        };
        RateShare {
            shared: Arc::clone(self),
            slot,
            credit: 0,
        }
    }
}

fn lease_units(lease_ns: u64, rate_bps: u64) -> i128 {
    i128::from(lease_ns) * i128::from(rate_bps.max(1))
}

/// One worker's access to a [`SharedRate`]: the tokens it leased and has not spent.
#[derive(Debug)]
pub struct RateShare {
    shared: Arc<SharedRate>,
    slot: usize,
    credit: i128,
}

impl RateShare {
    /// Take the cost of a `bytes`-byte frame at `now`, from the lease or, when the lease is
    /// short, from the shared rate (one lock), asking with weight 1.
    #[inline]
    pub fn take(&mut self, bytes: u32, now: Nanos) -> Conform {
        self.take_weighted(bytes, 1, now)
    }

    /// [`take`](Self::take), asking with `weight` (the worker's busy flows).
    #[inline]
    pub fn take_weighted(&mut self, bytes: u32, weight: u32, now: Nanos) -> Conform {
        let cost = i128::from(bytes) * UNITS_PER_BYTE;
        if self.credit >= cost {
            self.credit -= cost;
            return Conform::Taken;
        }
        let mut inner = self.shared.inner();
        let want = inner.lease_units.max(cost) - self.credit;
        self.credit += inner.lease(self.slot, weight, now, want);
        if self.credit >= cost {
            self.credit -= cost;
            Conform::Taken
        } else {
            // Not enough for this frame: what was gathered goes back (to this share's reserve
            // first: it keeps what it is owed, and gathers the rest on its next try).
            inner.give_back(self.slot, self.credit);
            self.credit = 0;
            Conform::Exceeds
        }
    }

    /// Return the unspent lease (the worker has nothing to send for now).
    pub fn give_back(&mut self) {
        if self.credit > 0 {
            self.shared.inner().bucket.give_back(self.credit);
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
        let mut inner = self.shared.inner();
        let mut back = self.credit.max(0);
        if let Some(s) = inner.slots.get_mut(self.slot) {
            back += s.reserve;
            *s = Slot::default();
        }
        inner.bucket.give_back(back);
    }
}

/// A token bucket as the scheduler uses it (open while not negative; a frame is sent, then
/// paid for): its own, or a worker's share of one that several workers' schedulers draw on.
#[derive(Debug)]
pub enum Bucket {
    Own(TokenBucket),
    Shared(SharedBucket),
}

/// A share with the scheduler's semantics: the worker spends its lease frame by frame and may
/// end one frame in debt; the next refill leases the debt and a lease more (one lock). When
/// the shared rate cannot pay the debt, the share does not ask again before it could
/// (`retry_at`): a waiting worker takes the lock once per wait, not once per turn.
#[derive(Debug)]
pub struct SharedBucket {
    share: RateShare,
    /// What the share asks with ([`Bucket::set_weight`]).
    weight: u32,
    rate_bps: u64,
    /// The latest `now` seen (what `open_at` answers while open).
    last: Nanos,
    retry_at: Nanos,
}

impl Bucket {
    #[inline]
    pub fn refill(&mut self, now: Nanos) {
        match self {
            Bucket::Own(b) => b.refill(now),
            Bucket::Shared(s) => {
                s.last = s.last.max(now);
                if s.share.credit >= 0 || now < s.retry_at {
                    return;
                }
                let mut inner = s.share.shared.inner();
                let want = inner.lease_units - s.share.credit;
                s.share.credit += inner.lease(s.share.slot, s.weight, now, want);
                if s.share.credit < 0 {
                    s.retry_at = inner.ready_at(s.share.slot, now, -s.share.credit);
                }
            }
        }
    }

    /// What a shared bucket asks with from now on: the flows this worker has waiting on it
    /// (at least 1). Nothing for a bucket of its own.
    #[inline]
    pub fn set_weight(&mut self, weight: u32) {
        if let Bucket::Shared(s) = self {
            s.weight = weight.max(1);
        }
    }

    #[inline]
    pub fn is_open(&self) -> bool {
        match self {
            Bucket::Own(b) => b.is_open(),
            Bucket::Shared(s) => s.share.credit >= 0,
        }
    }

    #[inline]
    pub fn consume(&mut self, bytes: u64) {
        match self {
            Bucket::Own(b) => b.consume(bytes),
            Bucket::Shared(s) => s.share.credit -= i128::from(bytes) * UNITS_PER_BYTE,
        }
    }

    /// Policing: take `bytes` only if they are there (refilled to `now` first).
    #[inline]
    pub fn police(&mut self, bytes: u64, now: Nanos) -> Conform {
        match self {
            Bucket::Own(b) => {
                b.refill(now);
                b.take_if_available(bytes)
            }
            Bucket::Shared(s) => {
                s.share
                    .take_weighted(u32::try_from(bytes).unwrap_or(u32::MAX), s.weight, now)
            }
        }
    }

    /// The earliest time at which `is_open()` may hold (a shared bucket: when the rate could
    /// pay this worker's debt, if no other worker takes the tokens first).
    #[inline]
    pub fn open_at(&self) -> Nanos {
        match self {
            Bucket::Own(b) => b.open_at(),
            Bucket::Shared(s) if s.share.credit >= 0 => s.last,
            Bucket::Shared(s) => s.retry_at.max(s.last),
        }
    }

    pub fn reconfigure(&mut self, rate_bps: u64, burst_bytes: u64, now: Nanos) {
        match self {
            Bucket::Own(b) => b.reconfigure(rate_bps, burst_bytes, now),
            Bucket::Shared(s) => {
                s.share.shared.reconfigure(rate_bps, burst_bytes, now);
                s.rate_bps = rate_bps;
                s.retry_at = 0;
            }
        }
    }

    pub fn rate_bps(&self) -> u64 {
        match self {
            Bucket::Own(b) => b.rate_bps(),
            Bucket::Shared(s) => s.rate_bps,
        }
    }
}

/// The rates the workers of one bridge share, by name (`wan/bulk/ceil`): each worker's
/// scheduler asks for its buckets here when it is built and at each reload, and gets a share
/// of the same rate as every other worker. Entries no worker holds any more are removed at
/// the next request (after a reload removed their class), so the table holds the live classes
/// and at most one generation more. Allocates: start-up and reloads only.
#[derive(Debug)]
pub struct RateRegistry {
    rates: Mutex<HashMap<String, Arc<SharedRate>>>,
    lease_ns: u64,
}

/// What a worker leases at once by default: 100 us of the rate (a lock per 83 full frames at
/// 10 Gbit/s; benches/shared_rate.rs).
pub const LEASE_NS: u64 = 100_000;

impl RateRegistry {
    pub fn new(lease_ns: u64) -> Arc<RateRegistry> {
        Arc::new(RateRegistry {
            rates: Mutex::new(HashMap::new()),
            lease_ns,
        })
    }

    /// A share of the rate named `key`: made (empty at `now`) by the first worker to ask,
    /// given the new rate and depth when a later one asks with them.
    pub fn bucket(&self, key: &str, rate_bps: u64, burst_bytes: u64, now: Nanos) -> Bucket {
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        rates.retain(|_, r| Arc::strong_count(r) > 1);
        let rate = match rates.get(key) {
            Some(r) => {
                r.reconfigure(rate_bps, burst_bytes, now);
                Arc::clone(r)
            }
            None => {
                let r = SharedRate::new(rate_bps, burst_bytes, self.lease_ns, now);
                rates.insert(key.to_string(), Arc::clone(&r));
                r
            }
        };
        Bucket::Shared(SharedBucket {
            share: rate.share(),
            weight: 1,
            rate_bps,
            last: now,
            retry_at: 0,
        })
    }

    /// Rates held.
    pub fn len(&self) -> usize {
        self.rates.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Two workers taking 1500-byte frames every microsecond of virtual time for `seconds`,
    /// asking with `weights`; worker `k` takes at most `cap[k]` bytes per second (its CPU, or
    /// what it has to send). The bytes each one sent.
    fn weighted(weights: [u32; 2], cap: [u64; 2], seconds: u64) -> [u64; 2] {
        let rate = SharedRate::new(100_000_000, 3000, LEASE_NS, 0);
        let mut shares = [rate.share(), rate.share()];
        let mut sent = [0u64; 2];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..seconds * 1_000_000 {
            let now = step * 1000;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..2 {
                let w = (k + x as usize) % 2;
                let allowed = cap[w].saturating_mul(step + 1) / 1_000_000;
                if sent[w] + 1500 <= allowed
                    && shares[w].take_weighted(1500, weights[w], now) == Conform::Taken
                {
                    sent[w] += 1500;
                }
            }
        }
        sent
    }

    #[test]
    fn workers_share_a_saturated_rate_by_their_busy_flows() {
        // 3 flows on one worker, 1 on the other: every flow a quarter, as on one worker.
        let sent = weighted([3, 1], [u64::MAX / 4; 2], 2);
        let total = sent[0] + sent[1];
        assert!((24_900_000..=25_003_000).contains(&total), "{sent:?}");
        let share = sent[0] as f64 / total as f64;
        assert!(
            (share - 0.75).abs() < 0.02,
            "3:1 weights gave {share:.3} ({sent:?})"
        );
        // Equal weights: halves.
        let sent = weighted([2, 2], [u64::MAX / 4; 2], 2);
        let share = sent[0] as f64 / (sent[0] + sent[1]) as f64;
        assert!(
            (share - 0.5).abs() < 0.02,
            "equal weights gave {share:.3} ({sent:?})"
        );
    }

    #[test]
    fn what_a_heavy_worker_does_not_use_goes_to_the_others() {
        // The worker with three flows can only send 2 MB/s (16 Mbit/s of the 100): the other
        // gets the rest, and the rate is used whole.
        let sent = weighted([3, 1], [2_000_000, u64::MAX / 4], 2);
        let total = sent[0] + sent[1];
        assert!(
            sent[0] >= 3_990_000 && sent[0] <= 4_000_000,
            "the slow worker sent {sent:?}"
        );
        assert!(
            (24_900_000..=25_003_000).contains(&total),
            "total {total} ({sent:?})"
        );
    }

    #[test]
    fn the_registry_holds_the_live_rates_and_one_generation_more() {
        let reg = RateRegistry::new(LEASE_NS);
        // Two workers' schedulers ask for the same class: one rate.
        let a = reg.bucket("wan/x/rate", 1_000_000, 3000, 0);
        let b = reg.bucket("wan/x/rate", 1_000_000, 3000, 0);
        assert_eq!(reg.len(), 1);
        // A reload removed class x on both workers; the next request drops its rate.
        drop((a, b));
        let _c = reg.bucket("wan/y/rate", 1_000_000, 3000, 1);
        assert_eq!(reg.len(), 1);
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
