//! Overload control: a PIE-style drop probability (RFC 8033) that holds a class's queueing delay
//! near its target when the traffic does not slow down on drops.
//!
//! CoDel (codel.rs) raises its drop rate as the square root of its drop count: right for TCP,
//! far too slow for an unresponsive flood (matching a 2x UDP overload takes it minutes), so the
//! queue would fill to its byte limit and every frame in the class would wait that long. This
//! controller watches the sojourn of departing frames every [`UPDATE`] and integrates
//! `alpha * (delay - target) + beta * (delay - previous delay)` into a probability with which
//! arriving frames are refused. Against a steady 2x overload it settles near 1/2 within a few
//! hundred milliseconds and keeps the delay near target; against TCP it stays near zero while
//! CoDel keeps the delay at target.
//!
//! Randomness is a xorshift generator with a fixed seed: a replay gives the same drops every
//! time. No allocation, no clock: `now` is passed in.

use super::Nanos;

/// How often the probability is recomputed (RFC 8033: 15 ms).
pub const UPDATE: Nanos = 15_000_000;
/// Gains per second of delay error (RFC 8033 defaults).
const ALPHA: f64 = 0.125;
const BETA: f64 = 1.25;

#[derive(Clone, Debug)]
pub struct Pie {
    target: Nanos,
    /// Never refuse while this many bytes or fewer are queued (two full frames).
    min_backlog_bytes: u64,
    prob: f64,
    /// `prob` as a threshold on a uniform u32.
    threshold: u32,
    /// Longest sojourn among the departures since the last update, if any.
    period_max: Option<Nanos>,
    /// The delay used at the last update.
    delay_old: Nanos,
    next_update: Nanos,
    rng: u64,
}

impl Pie {
    pub fn new(target: Nanos, min_backlog_bytes: u64) -> Pie {
        Pie {
            target: target.max(1),
            min_backlog_bytes,
            prob: 0.0,
            threshold: 0,
            period_max: None,
            delay_old: 0,
            next_update: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The current drop probability (for tests and status).
    pub fn probability(&self) -> f64 {
        self.prob
    }

    /// A frame left the queue after waiting `sojourn`.
    pub fn on_departure(&mut self, now: Nanos, sojourn: Nanos) {
        self.update(now, false);
        self.period_max = Some(self.period_max.map_or(sojourn, |m| m.max(sojourn)));
    }

    /// Should a frame arriving now be refused? `backlog_bytes` is what the class holds.
    pub fn should_drop(&mut self, now: Nanos, backlog_bytes: u64) -> bool {
        self.update(now, backlog_bytes == 0);
        if self.threshold == 0 || backlog_bytes <= self.min_backlog_bytes {
            return false;
        }
        // RFC 8033 5.1: no drops while the delay is low and the probability small.
        if self.delay_old < self.target / 2 && self.prob < 0.2 {
            return false;
        }
        self.next_random() < self.threshold
    }

    fn update(&mut self, now: Nanos, empty: bool) {
        if now < self.next_update {
            return;
        }
        if self.next_update == 0 {
            self.next_update = now + UPDATE;
            return;
        }
        // A long silence (no update for many periods) means an idle queue: start afresh.
        if now - self.next_update > 64 * UPDATE {
            *self = Pie {
                next_update: now + UPDATE,
                rng: self.rng,
                ..Pie::new(self.target, self.min_backlog_bytes)
            };
            return;
        }
        while now >= self.next_update {
            // The longest wait of the period: a sparse flow's quick departures must not hide
            // the flood's. No departure in a period: zero when the queue is empty, else the
            // class is held back (by its rate or by others) and the last reading stands.
            let delay = match self.period_max.take() {
                Some(d) => d,
                None if empty => 0,
                None => self.delay_old,
            };
            self.step(delay);
            self.next_update += UPDATE;
        }
    }

    fn step(&mut self, delay: Nanos) {
        let secs = |ns: Nanos| ns as f64 * 1e-9;
        let mut delta =
            ALPHA * (secs(delay) - secs(self.target)) + BETA * (secs(delay) - secs(self.delay_old));
        // RFC 8033 4.2: smaller steps while the probability is small, so it can settle there.
        let scale = match self.prob {
            p if p < 1e-6 => 1.0 / 2048.0,
            p if p < 1e-5 => 1.0 / 512.0,
            p if p < 1e-4 => 1.0 / 128.0,
            p if p < 1e-3 => 1.0 / 32.0,
            p if p < 1e-2 => 1.0 / 8.0,
            p if p < 1e-1 => 1.0 / 2.0,
            _ => 1.0,
        };
        delta *= scale;
        if self.prob >= 0.1 && delta > 0.02 {
            delta = 0.02;
        }
        self.prob += delta;
        if delay == 0 && self.delay_old == 0 {
            self.prob *= 0.98;
        }
        self.prob = self.prob.clamp(0.0, 1.0);
        self.delay_old = delay;
        self.threshold = (self.prob * f64::from(u32::MAX)) as u32;
    }

    fn next_random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn low_delay_never_drops() {
        let mut p = Pie::new(5 * MS, 3028);
        for i in 0..100_000u64 {
            let now = i * 100_000;
            p.on_departure(now, 2 * MS);
            assert!(!p.should_drop(now, 1_000_000));
        }
        assert_eq!(p.probability(), 0.0);
    }

    #[test]
    fn a_standing_delay_raises_the_probability_and_it_decays_after() {
        let mut p = Pie::new(5 * MS, 3028);
        let mut now = 0;
        while now < 2_000 * MS {
            p.on_departure(now, 100 * MS);
            now += MS;
        }
        assert!(p.probability() > 0.5, "{}", p.probability());
        let drops = (0..10_000)
            .filter(|_| p.should_drop(now, 1_000_000))
            .count();
        assert!((5_000..=10_000).contains(&drops), "{drops}");
        // The queue empties: the probability decays (0.98 per update) towards zero.
        let mut t = now;
        for _ in 0..60 {
            t += UPDATE;
            p.should_drop(t, 0);
        }
        assert!(p.probability() < 0.3, "{}", p.probability());
        // Idle for a long time: it starts afresh.
        assert!(!p.should_drop(t + 10_000 * MS, 1_000_000));
        assert_eq!(p.probability(), 0.0);
    }

    #[test]
    fn a_small_backlog_is_never_refused() {
        let mut p = Pie::new(5 * MS, 3028);
        let mut now = 0;
        while now < 2_000 * MS {
            p.on_departure(now, 100 * MS);
            now += MS;
        }
        assert!((0..1000).all(|_| !p.should_drop(now, 3028)));
    }
}
