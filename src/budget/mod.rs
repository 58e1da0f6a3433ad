//! Traffic budgets: so many bytes a day, week or month for a class, or for the frames a rule
//! matches (a host, a network, a program), and what happens once they are used up: a lower
//! ceil, or nothing more at all.
//!
//! Counting: a budget counts the bytes of the frames it matches as they arrive at weir, in
//! both directions (Ethernet frames, headers included, the port's `overhead` not; a GSO
//! super-frame as its segments). That is what the link carried downstream, and what was
//! offered upstream (frames weir then drops are counted too, as an ISP counts what reached
//! it on the way down). Malformed frames count for nothing.
//!
//! Who holds what (the thread contract):
//! - [`Meter`], one per [`crate::pipeline::Pipeline`], on its thread: counts its own frames
//!   without a lock and decides, frame by frame, from the global count as of its last sync
//!   plus its own since. One pipeline (replay, the default live layout) is therefore exact;
//!   with a pipeline per direction, each may overshoot by what the other counted since its
//!   last sync ([`SYNC_EVERY`]).
//! - [`Ledger`], shared behind a mutex: the global count of each budget in its current
//!   period, rolled at the period's end, what each past period used (the last
//!   [`HISTORY`]), and when it ran out. Pipelines sync with it every [`SYNC_EVERY`] of their
//!   time and at each period's end; `weir budget` and the store read it.
//! - [`store`]: the ledger's counts in SQLite, written by the live bridge every `flush`
//!   interval and at stop, read at start; the only part that touches a file.
//!
//! Memory: a ledger entry per budget (at most [`MAX_BUDGETS`]), each with at most
//! [`HISTORY`] past periods; a meter is a few words per budget. Counting allocates nothing.

pub mod period;
pub mod store;

pub use period::{Per, Period};

use crate::config::units::BitRate;
use crate::time::Nanos;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Budgets per config at most (a bit each in a frame's verdict).
pub const MAX_BUDGETS: usize = 32;

/// Pipelines sync their counts with the ledger this often (their own clock).
pub const SYNC_EVERY: Nanos = 100_000_000;

/// Past periods kept per budget (for `weir budget` and replay's report).
pub const HISTORY: usize = 48;

/// What a budget does to its traffic once it is used up, until its period ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// At most this rate, per egress port (`[lan, wan]`, bit/s): a class's ceil (and rate)
    /// are lowered to it; for all traffic, the link's rate (the classes' rates scaled down
    /// with it, so priorities hold); a rule's frames beyond it are dropped (a policer).
    Ceil([u64; 2]),
    /// Every frame is dropped (reason `budget`).
    Drop,
}

/// What a budget counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The frames of the class of this name, on every port that has it.
    Class(String),
    /// The frames this rule matches (its source), whatever their class.
    Rule(String),
    /// Every frame of both ports (a rule budget without a rule): its ceil is the links'.
    All,
}

/// One budget, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetPlan {
    /// Unique in a config; a class's budget is named after the class.
    pub name: String,
    pub target: Target,
    pub bytes: u64,
    pub period: Period,
    pub then: Then,
}

impl BudgetPlan {
    /// `class web` or `rule "host 198.18.0.2"`.
    pub fn describe_target(&self) -> String {
        match &self.target {
            Target::Class(c) => format!("class {c}"),
            Target::Rule(r) => format!("rule \"{r}\""),
            Target::All => "all traffic".into(),
        }
    }

    /// `ceil 64 kbit` or `drop`.
    pub fn describe_then(&self) -> String {
        match self.then {
            Then::Drop => "drop".into(),
            Then::Ceil([lan, wan]) if lan == wan => format!("ceil {}", BitRate(wan)),
            Then::Ceil([lan, wan]) => {
                format!("ceil {} up, {} down", BitRate(wan), BitRate(lan))
            }
        }
    }
}

/// One past period of a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Past {
    /// Wall-clock nanoseconds since the epoch.
    pub start: i128,
    pub end: i128,
    pub used: u64,
    /// When the count reached the budget, if it did.
    pub ran_out_at: Option<i128>,
}

/// A budget's count now, for `weir budget` and the reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BudgetStatus {
    pub name: String,
    /// `class web`, `rule "host 198.18.0.2"`.
    pub target: String,
    pub period: String,
    pub bytes: u64,
    pub used: u64,
    /// Start and end of the current period (the end is the next reset); 0 before the first
    /// frame or sync told the time.
    pub start: i128,
    pub end: i128,
    pub ran_out_at: Option<i128>,
    /// `ceil 64 kbit` or `drop`.
    pub then: String,
    /// Earlier periods, oldest first.
    pub history: Vec<Past>,
}

impl BudgetStatus {
    pub fn left(&self) -> u64 {
        self.bytes.saturating_sub(self.used)
    }

    pub fn exhausted(&self) -> bool {
        self.used >= self.bytes
    }
}

/// A count read back from the store: the period it belongs to and what it had used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub name: String,
    pub start: i128,
    pub used: u64,
    pub ran_out_at: Option<i128>,
}

struct Entry {
    plan: BudgetPlan,
    used: u64,
    /// The current period; `end == 0` until the first sync tells the time.
    start: i128,
    end: i128,
    ran_out_at: Option<i128>,
    history: VecDeque<Past>,
    /// A count from the store, taken when the first period begins if it is the same period.
    restored: Option<Saved>,
}

impl Entry {
    fn new(plan: BudgetPlan, restored: Option<Saved>) -> Entry {
        Entry {
            plan,
            used: 0,
            start: 0,
            end: 0,
            ran_out_at: None,
            // Allocated once: a period's end never allocates.
            history: VecDeque::with_capacity(HISTORY),
            restored,
        }
    }

    /// Move to the period holding `wall`, keeping the one that ended; true when it moved.
    fn roll(&mut self, tz: &jiff::tz::TimeZone, wall: i128) -> bool {
        if wall < self.end {
            return false;
        }
        let Some((start, end)) = self.plan.period.around(tz, wall) else {
            return false;
        };
        if self.end != 0 {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(Past {
                start: self.start,
                end: self.end,
                used: self.used,
                ran_out_at: self.ran_out_at,
            });
        }
        (self.start, self.end, self.used, self.ran_out_at) = (start, end, 0, None);
        if let Some(saved) = self.restored.take() {
            if saved.start == start {
                self.used = saved.used;
                self.ran_out_at = saved.ran_out_at;
            }
        }
        true
    }

    fn status(&self) -> BudgetStatus {
        BudgetStatus {
            name: self.plan.name.clone(),
            target: self.plan.describe_target(),
            period: self.plan.period.describe(),
            bytes: self.plan.bytes,
            used: self.used,
            start: self.start,
            end: self.end,
            ran_out_at: self.ran_out_at,
            then: self.plan.describe_then(),
            history: self.history.iter().copied().collect(),
        }
    }
}

struct LedgerState {
    tz: jiff::tz::TimeZone,
    entries: Vec<Entry>,
    /// Counts changed since the store last took them.
    dirty: bool,
}

/// The global counts of a config's budgets (see the module's essay).
pub struct Ledger {
    state: Mutex<LedgerState>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.status()).finish()
    }
}

impl Ledger {
    /// Budgets `plans` in time zone `tz`, each starting from its `saved` count when that is of
    /// the period the first sync finds itself in.
    pub fn new(plans: &[BudgetPlan], tz: jiff::tz::TimeZone, saved: Vec<Saved>) -> Ledger {
        let mut saved = saved;
        let entries = plans
            .iter()
            .map(|p| {
                let restored = saved
                    .iter()
                    .position(|s| s.name == p.name)
                    .map(|i| saved.swap_remove(i));
                Entry::new(p.clone(), restored)
            })
            .collect();
        Ledger {
            state: Mutex::new(LedgerState {
                tz,
                entries,
                dirty: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        // A thread that panicked while holding it left counts, not broken invariants.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new config (a reload): budgets of the same name keep their count and history when
    /// their period is the same; others start afresh.
    pub fn replan(&self, plans: &[BudgetPlan], tz: jiff::tz::TimeZone) {
        let mut st = self.lock();
        let mut old: Vec<Entry> = std::mem::take(&mut st.entries);
        st.entries = plans
            .iter()
            .map(|p| match old.iter().position(|e| e.plan.name == p.name) {
                Some(i) => {
                    let mut e = old.swap_remove(i);
                    if e.plan.period != p.period {
                        // Counted over another span: keep it until the new period is found.
                        e.restored = None;
                        e.end = 0;
                        e.history.clear();
                        e.used = 0;
                    }
                    e.plan = p.clone();
                    e
                }
                None => Entry::new(p.clone(), None),
            })
            .collect();
        st.tz = tz;
        st.dirty = true;
    }

    /// Add `meter`'s counts at wall time `wall`, roll periods that ended, and give the meter
    /// the global counts back.
    pub fn sync(&self, meter: &mut Meter, wall: i128) {
        let mut st = self.lock();
        let LedgerState { tz, entries, dirty } = &mut *st;
        let mut next_end = i128::MAX;
        let mut exhausted = 0u32;
        for (i, m) in meter.slots.iter_mut().enumerate() {
            let Some(e) = entries.iter_mut().find(|e| e.plan.name == m.name) else {
                m.counted = 0;
                continue;
            };
            // What was counted since the last sync belongs to the period it was counted in;
            // at a roll that is the one ending (the meter syncs at each period's end).
            if m.counted > 0 {
                e.used = e.used.saturating_add(m.counted);
                if e.ran_out_at.is_none() && e.used >= e.plan.bytes {
                    e.ran_out_at = Some(m.ran_out_at.unwrap_or(wall));
                }
                *dirty = true;
            }
            if e.roll(tz, wall) {
                *dirty = true;
            }
            m.counted = 0;
            m.ran_out_at = None;
            m.base = e.used;
            m.limit = e.plan.bytes;
            next_end = next_end.min(e.end);
            if e.used >= e.plan.bytes {
                exhausted |= 1 << i;
            }
        }
        meter.exhausted = exhausted;
        meter.next_end = next_end;
    }

    /// Start budget `name`'s count of this period again; false when there is no such budget.
    pub fn reset(&self, name: &str) -> bool {
        let mut st = self.lock();
        let found = st.entries.iter_mut().find(|e| e.plan.name == name);
        let Some(e) = found else { return false };
        e.used = 0;
        e.ran_out_at = None;
        st.dirty = true;
        true
    }

    pub fn status(&self) -> Vec<BudgetStatus> {
        self.lock().entries.iter().map(Entry::status).collect()
    }

    /// The counts to store, when they changed since the last call (or always, `force`).
    pub fn take_changes(&self, force: bool) -> Option<Vec<Saved>> {
        let mut st = self.lock();
        if !st.dirty && !force {
            return None;
        }
        st.dirty = false;
        Some(
            st.entries
                .iter()
                .map(|e| match (&e.restored, e.end) {
                    // Not synced yet: keep what the store had.
                    (Some(s), 0) => s.clone(),
                    _ => Saved {
                        name: e.plan.name.clone(),
                        start: e.start,
                        used: e.used,
                        ran_out_at: e.ran_out_at,
                    },
                })
                .filter(|s| s.start != 0 || s.used != 0)
                .collect(),
        )
    }
}

struct Slot {
    name: String,
    /// Counted here since the last sync.
    counted: u64,
    /// The global count at the last sync, and the budget.
    base: u64,
    limit: u64,
    /// When this pipeline saw the count reach the budget (wall), before the ledger knew.
    ran_out_at: Option<i128>,
}

/// A pipeline's side of the budgets: counts without a lock, decides per frame.
pub struct Meter {
    slots: Vec<Slot>,
    /// Bit `i`: budget `i` is used up.
    exhausted: u32,
    /// The earliest end of a current period (wall), or 0 before the first sync.
    next_end: i128,
}

impl Meter {
    pub fn new(plans: &[BudgetPlan]) -> Meter {
        Meter {
            slots: plans
                .iter()
                .map(|p| Slot {
                    name: p.name.clone(),
                    counted: 0,
                    base: 0,
                    limit: p.bytes,
                    ran_out_at: None,
                })
                .collect(),
            exhausted: 0,
            next_end: 0,
        }
    }

    /// Count `bytes` in each budget of `mask` at wall time `wall`; true when one of them ran
    /// out with them.
    #[inline]
    pub fn count(&mut self, mask: u32, bytes: u64, wall: i128) -> bool {
        let mut rest = mask;
        let before = self.exhausted;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let Some(s) = self.slots.get_mut(i) else {
                continue;
            };
            s.counted = s.counted.saturating_add(bytes);
            if s.base.saturating_add(s.counted) >= s.limit && self.exhausted & (1 << i) == 0 {
                s.ran_out_at = Some(wall);
                self.exhausted |= 1 << i;
            }
        }
        self.exhausted != before
    }

    /// Bit `i`: budget `i` is used up.
    #[inline]
    pub fn exhausted(&self) -> u32 {
        self.exhausted
    }

    /// The earliest end of the budgets' current periods (wall clock); 0 before the first sync.
    pub fn next_end(&self) -> i128 {
        self.next_end
    }
}

#[cfg(test)]
mod tests;
