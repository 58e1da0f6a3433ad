//! The AQM of one flow queue: CoDel for flows that answer loss or marks, and beside it a BLUE
//! drop probability for those that do not (the pairing CAKE calls COBALT; RFC 8289, and Feng
//! et al., "The BLUE active queue management algorithms", 2002).
//!
//! CoDel alone does not hold an unresponsive flow: its drop rate grows with the square root of
//! its count, and a flood fills the class long before. BLUE raises a probability each time the
//! class overflows and drops from this flow's queue (the fattest, sched/class_queue.rs), and
//! lowers it each time the queue empties, each at most once per CoDel `target`, so that one
//! burst moves it little. BLUE only ever drops: a flow that ignores marks must lose frames.
//! A queue that never overflows keeps probability 0, so a sparse flow never pays for a flood.

use super::codel::{Codel, CodelParams, CodelVerdict};
use super::Nanos;

/// The AQM parameters of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AqmParams {
    pub codel: CodelParams,
    /// Mark ECN-capable frames CE where CoDel would drop them.
    pub ecn: bool,
}

/// Raise by 1/256 per overflow, lower by 1/4096 per emptying: a flow must stay unresponsive
/// for a while before BLUE drops much, and keeps its probability through short lulls.
const P_INC: u32 = 1 << 24;
const P_DEC: u32 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// Deliver with the IP header's ECN field set to CE.
    Mark,
    Drop,
}

/// One queue's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cobalt {
    codel: Codel,
    /// BLUE's drop probability, in units of 2^-32.
    p_drop: u32,
    /// When `p_drop` last changed.
    blue_at: Nanos,
}

impl Cobalt {
    /// Decide the fate of the frame just taken from the queue's head. `backlog_bytes` is what
    /// the class holds after it; `rand` a uniform random number.
    pub fn on_dequeue(
        &mut self,
        p: &AqmParams,
        now: Nanos,
        sojourn: Nanos,
        backlog_bytes: u64,
        ect: bool,
        rand: u32,
    ) -> Verdict {
        let codel = self.codel.on_dequeue(&p.codel, now, sojourn, backlog_bytes);
        if self.p_drop != 0 && rand < self.p_drop {
            return Verdict::Drop;
        }
        match codel {
            CodelVerdict::Deliver => Verdict::Deliver,
            CodelVerdict::Drop if p.ecn && ect => Verdict::Mark,
            CodelVerdict::Drop => Verdict::Drop,
        }
    }

    /// The class overflowed and dropped from this queue's head.
    pub fn on_overflow(&mut self, p: &AqmParams, now: Nanos) {
        if self.p_drop == 0 || now.saturating_sub(self.blue_at) >= p.codel.target {
            self.p_drop = self.p_drop.saturating_add(P_INC);
            self.blue_at = now;
        }
    }

    /// The queue has just emptied.
    pub fn on_empty(&mut self, p: &AqmParams, now: Nanos) {
        self.codel.on_empty();
        if self.p_drop != 0 && now.saturating_sub(self.blue_at) >= p.codel.target {
            self.p_drop = self.p_drop.saturating_sub(P_DEC);
            self.blue_at = now;
        }
    }

    /// The AQM is still holding this queue back: BLUE drops, or CoDel dropped within about
    /// an interval. Such a queue, when a frame finds it empty, is no sparse flow's (sched/
    /// class_queue.rs: it joins the old list, as CAKE does with its decaying flows).
    pub fn is_holding(&self, p: &AqmParams, now: Nanos) -> bool {
        self.p_drop != 0 || self.codel.dropped_recently(&p.codel, now)
    }

    /// Another flow takes this queue: what BLUE learnt of the old one does not apply to it.
    /// CoDel's state stays with the queue: it only drops frames that waited above target, and
    /// it is what holds a flood spread over more flows than there are queues.
    pub fn forget_flow(&mut self) {
        self.p_drop = 0;
    }

    /// BLUE's drop probability, 0 to 1.
    #[cfg(test)]
    pub fn drop_probability(&self) -> f64 {
        f64::from(self.p_drop) / f64::from(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn params(ecn: bool) -> AqmParams {
        AqmParams {
            codel: CodelParams::default(),
            ecn,
        }
    }

    #[test]
    fn ect_frames_are_marked_where_others_are_dropped() {
        for (ecn, ect, want) in [
            (true, true, Verdict::Mark),
            (true, false, Verdict::Drop),
            (false, true, Verdict::Drop),
        ] {
            let p = params(ecn);
            let mut c = Cobalt::default();
            let verdicts: Vec<Verdict> = (0..200u64)
                .map(|i| c.on_dequeue(&p, i * MS, 20 * MS, 1_000_000, ect, u32::MAX))
                .collect();
            assert_eq!(verdicts[100], want, "ecn {ecn} ect {ect}");
            assert!(verdicts.iter().all(|&v| v == want || v == Verdict::Deliver));
        }
    }

    #[test]
    fn blue_rises_with_overflows_at_most_once_per_target_and_decays_when_empty() {
        let p = params(true);
        let mut c = Cobalt::default();
        // 100 overflows within one target count once.
        for _ in 0..100 {
            c.on_overflow(&p, MS);
        }
        assert_eq!(c.p_drop, P_INC);
        for i in 1..=128u64 {
            c.on_overflow(&p, MS + i * p.codel.target);
        }
        assert!((c.drop_probability() - 0.5).abs() < 0.01);
        // BLUE drops regardless of ECN and of the sojourn.
        assert_eq!(c.on_dequeue(&p, 2_000 * MS, 0, 0, true, 0), Verdict::Drop);
        let t = 2_000 * MS;
        for i in 1..=16u64 {
            c.on_empty(&p, t + i * p.codel.target);
        }
        assert_eq!(c.p_drop, 129 * P_INC - 16 * P_DEC);
        c.forget_flow();
        assert_eq!(c.drop_probability(), 0.0);
    }
}
