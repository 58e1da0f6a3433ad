//! An exact integer token bucket.
//!
//! Tokens are counted in *bit-nanoseconds*: sending one byte costs `8 * 10^9` units, and each
//! nanosecond at `rate` bit/s adds `rate` units. Both are integers, so a rate is represented with
//! no rounding at all, from 1 bit/s to `u64::MAX` bit/s, and there is no remainder to carry.
//!
//! Overflow: the state is `i128`. The largest magnitude reached is the depth plus one frame,
//! `(burst + 64 KiB) * 8e9`, below 2^100 for any burst that fits a `u64`; a refill's
//! `elapsed * rate` is a checked multiplication that saturates (the bucket is full then anyway).
//!
//! Invariants (property-tested in `sched::tests`):
//! - `tokens <= depth` after every refill;
//! - a sender that only sends while `tokens >= 0` (and may go negative by one frame) sends, over
//!   any interval `[0, T]` starting from an empty bucket, between `rate * T - frame` and
//!   `rate * T + frame` bytes' worth when saturated.

use super::Nanos;

/// Units per byte: 8 bits times 10^9 ns/s.
pub const UNITS_PER_BYTE: i128 = 8 * 1_000_000_000;

/// Configuration (rate, depth) changes only by [`TokenBucket::reconfigure`]; state (tokens, last
/// refill) changes with every refill and send.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_bps: u64,
    depth: i128,
    tokens: i128,
    last: Nanos,
}

/// Result of a conforming check, as an enum rather than a bool so call sites say what they mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conform {
    /// Tokens were available and have been taken.
    Taken,
    /// Not enough tokens; nothing was taken.
    Exceeds,
}

impl TokenBucket {
    /// A bucket of `rate_bps` that holds at most `burst_bytes`, starting empty at time `now`.
    /// A zero rate is treated as 1 bit/s (the config refuses zero rates; this keeps maths total).
    pub fn new(rate_bps: u64, burst_bytes: u64, now: Nanos) -> TokenBucket {
        TokenBucket {
            rate_bps: rate_bps.max(1),
            depth: i128::from(burst_bytes.max(1)) * UNITS_PER_BYTE,
            tokens: 0,
            last: now,
        }
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// A new rate and depth from `now` on (a reload): the time before `now` is counted at the
    /// old rate, the tokens (or the debt) carry over, clipped to the new depth.
    pub fn reconfigure(&mut self, rate_bps: u64, burst_bytes: u64, now: Nanos) {
        self.refill(now);
        self.rate_bps = rate_bps.max(1);
        self.depth = i128::from(burst_bytes.max(1)) * UNITS_PER_BYTE;
        self.tokens = self.tokens.min(self.depth);
    }

    /// Bring the bucket up to `now`. Time going backwards is treated as no time passing.
    #[inline]
    pub fn refill(&mut self, now: Nanos) {
        if now <= self.last {
            return;
        }
        let elapsed = now - self.last;
        self.last = now;
        if self.tokens >= self.depth {
            return;
        }
        // elapsed * rate < 2^64 * 2^64 = 2^128 can exceed i128 only for absurd inputs (centuries
        // at Tbit/s); saturate then, the bucket is full either way. No division on this path.
        let added = i128::from(elapsed)
            .checked_mul(i128::from(self.rate_bps))
            .unwrap_or(i128::MAX);
        self.tokens = self.tokens.saturating_add(added).min(self.depth);
    }

    /// Tokens at the last refill are not negative: the holder may send (and go negative).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.tokens >= 0
    }

    /// Take the cost of `bytes`, possibly going negative (shaping: the frame is already chosen).
    #[inline]
    pub fn consume(&mut self, bytes: u64) {
        self.tokens -= i128::from(bytes) * UNITS_PER_BYTE;
    }

    /// Take `bytes` only if that many tokens are there (policing).
    #[inline]
    pub fn take_if_available(&mut self, bytes: u64) -> Conform {
        let cost = i128::from(bytes) * UNITS_PER_BYTE;
        if self.tokens >= cost {
            self.tokens -= cost;
            Conform::Taken
        } else {
            Conform::Exceeds
        }
    }

    /// The earliest time at which `is_open()` will hold, given no consumption meanwhile.
    #[inline]
    pub fn open_at(&self) -> Nanos {
        if self.tokens >= 0 {
            return self.last;
        }
        let deficit = -self.tokens;
        // A deficit is at most one frame (< 2^50 units): u64 division is enough and cheaper.
        let wait = match u64::try_from(deficit) {
            Ok(d) => d.div_ceil(self.rate_bps),
            Err(_) => {
                u64::try_from(deficit.div_euclid(i128::from(self.rate_bps)) + 1).unwrap_or(u64::MAX)
            }
        };
        self.last.saturating_add(wait)
    }

    /// Refill to `now`, then take up to `units` of the tokens there are (none when there are
    /// none): what a worker leases from a rate shared by several ([`super::shared_rate`]).
    #[inline]
    pub fn lease(&mut self, now: Nanos, units: i128) -> i128 {
        self.refill(now);
        let got = units.min(self.tokens).max(0);
        self.tokens -= got;
        got
    }

    /// Move the bucket's time to `now` and return what the rate earned since, without adding
    /// it: a shared rate splits it between its workers ([`super::shared_rate`]) and gives the
    /// rest back.
    #[inline]
    pub fn take_elapsed(&mut self, now: Nanos) -> i128 {
        if now <= self.last {
            return 0;
        }
        let elapsed = now - self.last;
        self.last = now;
        i128::from(elapsed)
            .checked_mul(i128::from(self.rate_bps))
            .unwrap_or(i128::MAX)
    }

    /// Tokens at the last refill (units).
    pub fn tokens(&self) -> i128 {
        self.tokens
    }

    /// The depth (units).
    pub fn depth(&self) -> i128 {
        self.depth
    }

    /// Put back `units` leased and not spent (never above the depth: what would overflow it is
    /// lost, as the tokens of a full bucket are).
    #[inline]
    pub fn give_back(&mut self, units: i128) {
        self.tokens = self.tokens.saturating_add(units.max(0)).min(self.depth);
    }

    /// Current tokens in bytes (rounded toward zero), for display and tests.
    pub fn tokens_bytes(&self) -> i64 {
        i64::try_from(self.tokens / UNITS_PER_BYTE).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refill_is_exact_at_awkward_rates() {
        // 3 bit/s for one second adds exactly 3 bits = 3e9 units.
        let mut b = TokenBucket::new(3, 1_000_000, 0);
        b.refill(1_000_000_000);
        assert_eq!(b.tokens, 3 * 1_000_000_000);
        // 100 Gbit/s for 1 ns: 100 bits.
        let mut b = TokenBucket::new(100_000_000_000, 1_000_000, 0);
        b.refill(1);
        assert_eq!(b.tokens, 100_000_000_000);
    }

    #[test]
    fn depth_caps_tokens_even_after_huge_idle() {
        let mut b = TokenBucket::new(u64::MAX, 1500, 0);
        b.refill(u64::MAX);
        assert_eq!(b.tokens_bytes(), 1500);
    }

    #[test]
    fn open_at_is_the_first_nanosecond_with_non_negative_tokens() {
        let mut b = TokenBucket::new(8_000, 10_000, 0); // 1 byte per ms
        b.consume(10);
        let t = b.open_at();
        assert_eq!(t, 10_000_000);
        let mut c = b.clone();
        c.refill(t - 1);
        assert!(!c.is_open());
        b.refill(t);
        assert!(b.is_open());
    }

    #[test]
    fn policing_takes_only_what_is_there() {
        let mut b = TokenBucket::new(8_000_000, 3000, 0);
        b.refill(10_000_000_000);
        assert_eq!(b.take_if_available(2000), Conform::Taken);
        assert_eq!(b.take_if_available(2000), Conform::Exceeds);
        assert_eq!(b.tokens_bytes(), 1000);
    }
}
