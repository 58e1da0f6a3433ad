//! CoDel (RFC 8289), the control law alone, apart from any queue.
//!
//! The queue around it calls [`Codel::on_dequeue`] once per frame it takes from its head, with
//! that frame's sojourn time; CoDel answers deliver or drop. The state is a few integers, kept
//! per flow queue (sched/cobalt.rs) with the parameters apart, per class; no clock is read,
//! `now` is passed in. The drop schedule `interval / sqrt(count)` uses an f64 square root:
//! it only times drops, so rounding there cannot make a rate drift.

use super::Nanos;

/// Parameters, set at construction or by [`Codel::set_params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodelParams {
    /// Acceptable standing queue delay (RFC default 5 ms).
    pub target: Nanos,
    /// Window over which the delay must stay above target before dropping (default 100 ms).
    pub interval: Nanos,
    /// Never drop when this many bytes or fewer remain queued (one MTU: nothing to gain).
    pub min_backlog_bytes: u64,
}

impl Default for CodelParams {
    fn default() -> Self {
        CodelParams {
            target: 5_000_000,
            interval: 100_000_000,
            min_backlog_bytes: 1514,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodelVerdict {
    Deliver,
    Drop,
}

/// The state of one queue's control law.
#[derive(Clone, Copy, Debug, Default)]
pub struct Codel {
    /// When the sojourn time first went above target and will have stayed for an interval;
    /// zero when it is below.
    first_above_time: Nanos,
    drop_next: Nanos,
    count: u32,
    last_count: u32,
    dropping: bool,
}

impl Codel {
    /// Decide the fate of the frame just taken from the head of the queue.
    /// `backlog_bytes` is what remains queued after it (in the class: one frame left in a
    /// flow's queue says nothing about the delay the class as a whole builds).
    pub fn on_dequeue(
        &mut self,
        p: &CodelParams,
        now: Nanos,
        sojourn: Nanos,
        backlog_bytes: u64,
    ) -> CodelVerdict {
        let ok_to_drop = self.ok_to_drop(p, now, sojourn, backlog_bytes);
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
                return CodelVerdict::Deliver;
            }
            if now >= self.drop_next {
                self.count = self.count.saturating_add(1);
                self.drop_next = Self::control_law(p, self.count, self.drop_next);
                return CodelVerdict::Drop;
            }
            return CodelVerdict::Deliver;
        }
        if ok_to_drop {
            self.dropping = true;
            // Re-entering soon after leaving: resume near the previous drop rate (RFC 8289 5.5).
            let delta = self.count.saturating_sub(self.last_count);
            let recent = now.saturating_sub(self.drop_next) < 16 * p.interval;
            self.count = if delta > 1 && recent { delta } else { 1 };
            self.last_count = self.count;
            self.drop_next = Self::control_law(p, self.count, now);
            return CodelVerdict::Drop;
        }
        CodelVerdict::Deliver
    }

    fn ok_to_drop(
        &mut self,
        p: &CodelParams,
        now: Nanos,
        sojourn: Nanos,
        backlog_bytes: u64,
    ) -> bool {
        if sojourn < p.target || backlog_bytes <= p.min_backlog_bytes {
            self.first_above_time = 0;
            return false;
        }
        if self.first_above_time == 0 {
            self.first_above_time = now.saturating_add(p.interval).max(1);
            return false;
        }
        now >= self.first_above_time
    }

    fn control_law(p: &CodelParams, count: u32, t: Nanos) -> Nanos {
        let step = p.interval as f64 / f64::from(count.max(1)).sqrt();
        t.saturating_add(step as Nanos)
    }

    /// The queue emptied: whatever delay it had is gone (RFC 8289: an empty queue leaves the
    /// dropping state). The count stays, for a quick return to the drop rate it had.
    pub fn on_empty(&mut self) {
        self.dropping = false;
        self.first_above_time = 0;
    }

    /// Dropped within about the last interval.
    pub fn dropped_recently(&self, p: &CodelParams, now: Nanos) -> bool {
        self.count > 0 && now < self.drop_next.saturating_add(p.interval)
    }

    /// In the dropping state (for tests and status).
    pub fn is_dropping(&self) -> bool {
        self.dropping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn short_delays_are_never_dropped() {
        let (mut c, p) = (Codel::default(), CodelParams::default());
        for i in 0..10_000u64 {
            assert_eq!(
                c.on_dequeue(&p, i * MS, 4 * MS, 1_000_000),
                CodelVerdict::Deliver
            );
        }
    }

    #[test]
    fn a_standing_queue_is_dropped_after_one_interval_then_faster() {
        let (mut c, p) = (Codel::default(), CodelParams::default());
        let mut drops = Vec::new();
        // One frame per ms, each having waited 20 ms, for one second.
        for i in 0..1000u64 {
            if c.on_dequeue(&p, i * MS, 20 * MS, 1_000_000) == CodelVerdict::Drop {
                drops.push(i);
            }
        }
        assert_eq!(
            drops[0], 100,
            "first drop once the delay has stayed above target for 100 ms"
        );
        // The schedule tightens as interval/sqrt(count).
        let gaps: Vec<u64> = drops.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= gaps[gaps.len() - 1], "gaps {gaps:?}");
        assert!(
            drops.len() > 10 && drops.len() < 100,
            "{} drops",
            drops.len()
        );
    }

    #[test]
    fn nothing_is_dropped_when_only_one_mtu_is_left() {
        let (mut c, p) = (Codel::default(), CodelParams::default());
        for i in 0..1000u64 {
            assert_eq!(
                c.on_dequeue(&p, i * MS, 50 * MS, 1514),
                CodelVerdict::Deliver
            );
        }
    }
}
