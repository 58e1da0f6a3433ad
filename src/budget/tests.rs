use super::*;
use jiff::tz::TimeZone;

const DAY: i128 = 86_400_000_000_000;
/// 2026-12-01T00:00:00Z.
const DEC_1: i128 = 1_796_083_200 * 1_000_000_000;

fn daily(name: &str, bytes: u64) -> BudgetPlan {
    BudgetPlan {
        name: name.into(),
        target: Target::Class(name.into()),
        bytes,
        period: Period::parse(Per::Day, None).unwrap(),
        then: Then::Drop,
    }
}

#[test]
fn a_meter_runs_out_at_the_frame_that_reaches_the_budget() {
    let plans = [daily("a", 1000), daily("b", 10)];
    let ledger = Ledger::new(&plans, TimeZone::UTC, Vec::new());
    let mut m = Meter::new(&plans);
    ledger.sync(&mut m, DEC_1 + 5);
    assert_eq!(m.next_end(), DEC_1 + DAY);
    assert!(!m.count(0b01, 999, DEC_1 + 6));
    assert_eq!(m.exhausted(), 0);
    assert!(m.count(0b01, 1, DEC_1 + 7), "the 1000th byte uses it up");
    assert_eq!(m.exhausted(), 0b01);
    assert!(!m.count(0b01, 1, DEC_1 + 8), "no change once used up");
    ledger.sync(&mut m, DEC_1 + 9);
    let st = ledger.status();
    assert_eq!((st[0].used, st[0].ran_out_at), (1001, Some(DEC_1 + 7)));
    assert_eq!((st[1].used, st[1].ran_out_at), (0, None));
    assert_eq!(m.exhausted(), 0b01);
}

#[test]
fn counts_roll_at_the_period_end_and_the_past_is_kept() {
    let plans = [daily("a", 100)];
    let ledger = Ledger::new(&plans, TimeZone::UTC, Vec::new());
    let mut m = Meter::new(&plans);
    ledger.sync(&mut m, DEC_1);
    m.count(1, 150, DEC_1 + 10);
    // The pipeline syncs at the end before counting the next frame.
    ledger.sync(&mut m, DEC_1 + DAY);
    assert_eq!(m.exhausted(), 0, "a new day, a new budget");
    m.count(1, 7, DEC_1 + DAY + 1);
    ledger.sync(&mut m, DEC_1 + DAY + 2);
    let st = &ledger.status()[0];
    assert_eq!(
        (st.used, st.start, st.end),
        (7, DEC_1 + DAY, DEC_1 + 2 * DAY)
    );
    assert_eq!(
        st.history,
        vec![Past {
            start: DEC_1,
            end: DEC_1 + DAY,
            used: 150,
            ran_out_at: Some(DEC_1 + 10)
        }]
    );
}

#[test]
fn two_meters_share_one_count() {
    let plans = [daily("a", 100)];
    let ledger = Ledger::new(&plans, TimeZone::UTC, Vec::new());
    let (mut up, mut down) = (Meter::new(&plans), Meter::new(&plans));
    ledger.sync(&mut up, DEC_1);
    ledger.sync(&mut down, DEC_1);
    up.count(1, 60, DEC_1 + 1);
    down.count(1, 60, DEC_1 + 1);
    assert_eq!(
        up.exhausted() | down.exhausted(),
        0,
        "neither knows the other's yet"
    );
    ledger.sync(&mut up, DEC_1 + 2);
    assert_eq!(up.exhausted(), 0);
    ledger.sync(&mut down, DEC_1 + 2);
    assert_eq!(down.exhausted(), 1);
    ledger.sync(&mut up, DEC_1 + 3);
    assert_eq!(up.exhausted(), 1);
    assert_eq!(ledger.status()[0].used, 120);
}

#[test]
fn a_reset_restores_the_budget_at_the_next_sync() {
    let plans = [daily("a", 100)];
    let ledger = Ledger::new(&plans, TimeZone::UTC, Vec::new());
    let mut m = Meter::new(&plans);
    ledger.sync(&mut m, DEC_1);
    m.count(1, 100, DEC_1 + 1);
    assert!(ledger.reset("a") && !ledger.reset("nope"));
    ledger.sync(&mut m, DEC_1 + 2);
    // The bytes counted before the reset reached the ledger after it: they count again.
    assert_eq!(m.exhausted(), 1);
    assert!(ledger.reset("a"));
    ledger.sync(&mut m, DEC_1 + 3);
    assert_eq!((m.exhausted(), ledger.status()[0].used), (0, 0));
}

#[test]
fn a_saved_count_is_taken_only_in_its_own_period() {
    let plans = [daily("a", 100), daily("b", 100)];
    let saved = vec![
        Saved {
            name: "a".into(),
            start: DEC_1,
            used: 80,
            ran_out_at: None,
        },
        Saved {
            name: "b".into(),
            start: DEC_1 - DAY,
            used: 90,
            ran_out_at: None,
        },
    ];
    let ledger = Ledger::new(&plans, TimeZone::UTC, saved.clone());
    // Before any sync the store keeps what it had.
    assert_eq!(ledger.take_changes(true).unwrap(), saved);
    let mut m = Meter::new(&plans);
    ledger.sync(&mut m, DEC_1 + 5);
    let st = ledger.status();
    assert_eq!((st[0].used, st[1].used), (80, 0));
    m.count(0b11, 20, DEC_1 + 6);
    assert_eq!(m.exhausted(), 0b01);
    ledger.sync(&mut m, DEC_1 + 7);
    let saved = ledger.take_changes(false).unwrap();
    assert_eq!(saved[0].used, 100);
    assert_eq!((saved[1].start, saved[1].used), (DEC_1, 20));
    assert!(
        ledger.take_changes(false).is_none(),
        "nothing changed since"
    );
}

#[test]
fn a_replan_keeps_counts_by_name_unless_the_period_changed() {
    let plans = [daily("a", 100), daily("b", 100)];
    let ledger = Ledger::new(&plans, TimeZone::UTC, Vec::new());
    let mut m = Meter::new(&plans);
    ledger.sync(&mut m, DEC_1);
    m.count(0b11, 50, DEC_1 + 1);
    ledger.sync(&mut m, DEC_1 + 2);
    let mut weekly = daily("b", 100);
    weekly.period = Period::parse(Per::Week, None).unwrap();
    let mut smaller = daily("a", 40);
    smaller.then = Then::Ceil([1000, 1000]);
    let new = [weekly, smaller, daily("c", 1)];
    ledger.replan(&new, TimeZone::UTC);
    let mut m = Meter::new(&new);
    ledger.sync(&mut m, DEC_1 + 3);
    let st = ledger.status();
    let used: Vec<_> = st.iter().map(|s| (s.name.as_str(), s.used)).collect();
    assert_eq!(used, [("b", 0), ("a", 50), ("c", 0)]);
    assert_eq!(
        m.exhausted(),
        0b010,
        "a's 50 bytes are past its new budget of 40"
    );
}
