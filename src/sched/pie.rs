//! Overload control: a PIE-style drop probability (RFC 8033) that holds a class's queueing delay
//! near its target when the traffic does not slow down on drops.
//!
//! CoDel (codel.rs) raises its drop rate as the square root of its drop count: right for TCP,
//! far too slow for an unresponsive flood (matching a 2x UDP overload takes it minutes), so the
//! queue would fill to its byte limit and every frame in the class would wait that long. This
//! controller estimates the class's queueing delay every [`UPDATE`] as backlog / drain rate
//! (the drain rate measured over the periods the class stayed backlogged, RFC 8033 section
//! 5.2) and integrates `alpha * (delay - target) + beta * (delay - previous delay)` into a
//! probability with which arriving frames are refused. Against a steady 2x overload it settles
//! near 1/2 within half a second and holds the delay near target; against TCP it stays near
//! zero while CoDel keeps the delay at target.
//!
//! Why not the sojourn of departing frames, as Linux's PIE uses by default: with flow buckets
//! served round robin, one deep bucket's frames wait long however small the class's backlog,
//! and that reading sent the controller swinging (tried: the delay was not held).
//! Randomness is a xorshift generator with a fixed seed: a replay gives the same drops every
//! time. No allocation, no clock: `now` is passed in.

use super::Nanos;

/// How often the probability is recomputed (RFC 8033: 15 ms).
pub const UPDATE: Nanos = 15_000_000;
/// Gains per second of delay error (RFC 8033 defaults).
const ALPHA: f64 = 0.125;
const BETA: f64 = 1.25;
/// Largest rise of the probability in one update once it is 0.1 or more (RFC 8033 4.2).
const MAX_STEP: f64 = 0.02;

#[derive(Clone, Debug)]
pub struct Pie {
    target: Nanos,
    /// Never refuse while this many bytes or fewer are queued (two full frames).
    min_backlog_bytes: u64,
    prob: f64,
    /// Drain rate estimate, bytes per second; starts at the class's ceil.
    drain_rate: f64,
    /// Bytes that left since the last update, and whether the queue ran empty meanwhile.
    departed: u64,
    emptied: bool,
    /// Queue bytes at the last event.
    backlog: u64,
    /// The delay used at the last update.
    delay_old: Nanos,
    /// RFC 8033 tunes its gains for a 15 ms target and TCP. Beside CoDel this control only has
    /// to catch floods, and it holds them tighter with gains scaled by 30 ms / target (x6 at
    /// the 5 ms default: a ping in a flooded class waited 10.9 ms at p99 with x3, 8.2 with x6,
    /// src/sched/tests.rs).
    gain: f64,
    next_update: Nanos,
    /// Refusals are spaced, not drawn one by one: each frame adds the probability to `accu`,
    /// and a frame is refused when it reaches `accu_limit`, drawn anew after each refusal
    /// uniformly in [0.5, 1.5). The rate is still `prob`, but independent draws let the queue
    /// wander (a run of luck is a burst let in): the ping's p99 in the flood test was 8.2 ms
    /// with them, 6.4 ms spaced. Fixed spacing (limit 1) gave 5.4 ms but locks onto periodic
    /// arrivals: of two flows taking turns at probability 1/2, one would lose everything.
    /// RFC 8033 5.4's de-randomization (no drop below 0.85, forced at 8.5) gave 11.3 ms.
    accu: f64,
    accu_limit: f64,
    rng: u64,
}

impl Pie {
    pub fn new(target: Nanos, min_backlog_bytes: u64, ceil_bps: u64) -> Pie {
        Pie {
            target: target.max(1),
            min_backlog_bytes,
            prob: 0.0,
            drain_rate: (ceil_bps as f64 / 8.0).max(1.0),
            departed: 0,
            emptied: false,
            backlog: 0,
            delay_old: 0,
            gain: (30e6 / target.max(1) as f64).clamp(1.0, 16.0),
            next_update: 0,
            accu: 0.0,
            accu_limit: 1.0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The current drop probability (for tests and status).
    pub fn probability(&self) -> f64 {
        self.prob
    }

    /// A frame of `bytes` left the queue; `backlog_bytes` remain.
    pub fn on_departure(&mut self, now: Nanos, bytes: u32, backlog_bytes: u64) {
        self.update(now);
        self.departed += u64::from(bytes);
        self.emptied |= backlog_bytes == 0;
        self.backlog = backlog_bytes;
    }

    /// Should a frame arriving now be refused? `backlog_bytes` is what the class holds.
    pub fn should_drop(&mut self, now: Nanos, backlog_bytes: u64) -> bool {
        self.emptied |= self.backlog == 0;
        self.backlog = backlog_bytes;
        self.update(now);
        if self.prob <= 0.0 || backlog_bytes <= self.min_backlog_bytes {
            return false;
        }
        // RFC 8033 5.1: no drops while the delay is low and the probability small.
        if self.delay_old < self.target / 2 && self.prob < 0.2 {
            self.accu = 0.0;
            return false;
        }
        self.accu += self.prob;
        if self.accu < self.accu_limit {
            return false;
        }
        self.accu -= self.accu_limit;
        self.accu_limit = 0.5 + f64::from(self.next_random()) / (f64::from(u32::MAX) + 1.0);
        true
    }

    fn update(&mut self, now: Nanos) {
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
                drain_rate: self.drain_rate,
                backlog: self.backlog,
                ..Pie::new(self.target, self.min_backlog_bytes, 0)
            };
            return;
        }
        while now >= self.next_update {
            // A period the queue never ran dry in measures what the class can drain. One with
            // nothing sent (the class held back by its buckets or by higher priorities) keeps
            // the last estimate.
            if !self.emptied && self.departed > 0 {
                let sample = self.departed as f64 / (UPDATE as f64 * 1e-9);
                self.drain_rate = 0.75 * self.drain_rate + 0.25 * sample;
            }
            self.departed = 0;
            self.emptied = self.backlog == 0;
            let delay = (self.backlog as f64 / self.drain_rate * 1e9) as Nanos;
            self.step(delay);
            self.next_update += UPDATE;
        }
    }

    fn step(&mut self, delay: Nanos) {
        let secs = |ns: Nanos| ns as f64 * 1e-9;
        let mut delta = self.gain
            * (ALPHA * (secs(delay) - secs(self.target))
                + BETA * (secs(delay) - secs(self.delay_old)));
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
        // Falls are not limited: limiting them too (so that a paused flood does not take the
        // probability down with it) cost TCP at 10 Mbit/s 4% of its goodput, the probability
        // staying high after slow start, and gained nothing once weir ran at real-time priority.
        if self.prob >= 0.1 && delta > MAX_STEP {
            delta = MAX_STEP;
        }
        // Far above target (Linux's PIE uses 250 ms against its 15 ms target): a flood,
        // step faster than the gains alone allow.
        if delay > 10 * self.target {
            delta += 0.02;
        }
        self.prob += delta;
        // RFC 8033 decays only when the delay reads zero twice. Decay whenever it reads under
        // half the target twice: after a flood's ramp the probability overshoots, and the
        // integral term alone (at most alpha * target per update) takes seconds to give back
        // what is refused for nothing.
        if delay < self.target / 2 && self.delay_old < self.target / 2 {
            self.prob *= 0.98;
        }
        self.prob = self.prob.clamp(0.0, 1.0);
        self.delay_old = delay;
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
    /// 100 Mbit/s: 1250 bytes leave every 100 us.
    const RATE: u64 = 100_000_000;

    /// Departures at the link rate with `backlog` bytes standing, for `ms` milliseconds.
    fn drain(p: &mut Pie, from: Nanos, ms: u64, backlog: u64) -> Nanos {
        let mut now = from;
        while now < from + ms * MS {
            p.on_departure(now, 1250, backlog);
            now += MS / 10;
        }
        now
    }

    #[test]
    fn a_delay_under_target_never_drops() {
        let mut p = Pie::new(5 * MS, 3028, RATE);
        let mut now = 0;
        for _ in 0..1000 {
            now = drain(&mut p, now, 10, 31_250); // 2.5 ms at 100 Mbit/s
            assert!(!p.should_drop(now, 31_250));
        }
        assert_eq!(p.probability(), 0.0);
    }

    #[test]
    fn a_standing_delay_raises_the_probability_and_it_decays_after() {
        let mut p = Pie::new(5 * MS, 3028, RATE);
        let now = drain(&mut p, 0, 2000, 1_250_000); // 100 ms standing
        assert!(p.probability() > 0.5, "{}", p.probability());
        let drops = (0..10_000)
            .filter(|_| p.should_drop(now, 1_250_000))
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

    /// A controller held at probability `prob` (no updates: the clock stays at 0).
    fn held_at(prob: f64) -> Pie {
        let mut p = Pie::new(5 * MS, 3028, RATE);
        p.should_drop(0, 0);
        p.prob = prob;
        p.delay_old = 5 * MS;
        p
    }

    #[test]
    fn refusals_come_at_the_probability_and_never_lock_onto_a_pattern() {
        for (prob, flows) in [(0.5, 2), (1.0 / 3.0, 3), (0.25, 4), (0.5, 1000), (0.02, 7)] {
            let mut p = held_at(prob);
            let mut refused = vec![0u32; flows];
            let rounds = 20_000;
            for _ in 0..rounds {
                for r in refused.iter_mut() {
                    *r += u32::from(p.should_drop(0, 1_000_000));
                }
            }
            let total: u32 = refused.iter().sum();
            let frames = f64::from(rounds) * flows as f64;
            let rate = f64::from(total) / frames;
            assert!((rate - prob).abs() < 0.01 * prob.max(0.1), "{prob}: {rate}");
            // Flows taking turns each lose their share: fixed spacing would refuse every
            // other frame of two alternating flows, all from one of them.
            for r in &refused {
                let share = f64::from(*r) / f64::from(rounds);
                assert!(
                    (share - prob).abs() < 0.15 * prob,
                    "{prob}, {flows} flows: {refused:?}"
                );
            }
        }
    }

    #[test]
    fn a_small_backlog_is_never_refused() {
        let mut p = Pie::new(5 * MS, 3028, RATE);
        let now = drain(&mut p, 0, 2000, 1_250_000);
        assert!(p.probability() > 0.5);
        assert!((0..1000).all(|_| !p.should_drop(now, 3028)));
    }
}
