//! Time: nanoseconds as `u64`, and the clocks that give them. Nothing below the runtime reads a
//! clock; the scheduler, the classifier and the pipeline take `now` as an argument, so the same
//! code runs on the monotonic clock, on capture timestamps, and on a manual clock in tests.

/// Time in nanoseconds on whatever clock the caller uses (monotonic, or capture time).
pub type Nanos = u64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub trait Clock {
    /// Nanoseconds since an arbitrary fixed origin; never decreases.
    fn now(&self) -> Nanos;
}

/// The monotonic system clock, counted from when this value was made.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told: for tests and virtual-time replay.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    pub fn new(start: Nanos) -> ManualClock {
        ManualClock {
            now: AtomicU64::new(start),
        }
    }

    pub fn advance(&self, by: Nanos) {
        self.now.fetch_add(by, Ordering::Relaxed);
    }

    /// Move to `t`; a time in the past is ignored (the clock never goes back).
    pub fn set(&self, t: Nanos) {
        self.now.fetch_max(t, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::Relaxed)
    }
}
