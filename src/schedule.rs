//! Windows of the week (`when: "Mon-Fri 08:00-18:00"`), for classes whose rate and ceil depend
//! on the time of day. Pure: a window answers for a local weekday and minute; the pipeline
//! turns its own clock into those with the config's time zone, once a minute at most.
//!
//! Grammar: `[DAYS] [HH:MM-HH:MM]`, at least one of the two. DAYS is a comma-separated list of
//! days (`mon` .. `sun`, any case, or their full names) and ranges (`mon-fri`; `fri-mon` wraps
//! round the week). A time range whose end is not after its start runs past midnight into the
//! next day (`22:00-06:00`: from 22:00 on each listed day to 06:00 the day after); `24:00` is
//! the end of a day. No days: every day; no times: the whole day.

/// One window of the week.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Bit `d` for weekday `d` (0 = Monday).
    days: u8,
    /// Minutes of the day, `[start, end)`; `end <= start` crosses midnight.
    start: u16,
    end: u16,
}

/// Minutes in a day.
pub const DAY: u16 = 24 * 60;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// What is wrong with a window, and where (a 1-based column of the text, in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowError {
    pub column: usize,
    pub message: String,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let err = |at: &str, message: String| WindowError {
            // `at` is a slice of `text`: the characters before it, plus one, are its column.
            column: text[..at.as_ptr() as usize - text.as_ptr() as usize]
                .chars()
                .count()
                + 1,
            message,
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (days_word, time_word) = match words.as_slice() {
            [w] if w.contains(':') => (None, Some(*w)),
            [w] => (Some(*w), None),
            [d, t] => (Some(*d), Some(*t)),
            [] => {
                return Err(WindowError {
                    column: 1,
                    message: "an empty window".into(),
                })
            }
            [_, _, extra, ..] => {
                return Err(err(
                    extra,
                    format!("`{extra}`: a window is days and one time range"),
                ))
            }
        };
        let days = match days_word {
            None => 0x7f,
            Some(w) => {
                let mut bits = 0u8;
                for part in w.split(',') {
                    let day = |d: &str| {
                        let lower = d.to_ascii_lowercase();
                        DAYS.iter()
                            .position(|x| *x == lower)
                            .or_else(|| FULL.iter().position(|x| *x == lower))
                            .ok_or_else(|| {
                                err(
                                    d,
                                    format!("`{d}` is not a day (mon, tue, ... sun, or a range like mon-fri)"),
                                )
                            })
                    };
                    match part.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) = (day(a)?, day(b)?);
                            let mut d = a;
                            loop {
                                bits |= 1 << d;
                                if d == b {
                                    break;
                                }
                                d = (d + 1) % 7;
                            }
                        }
                        None => bits |= 1 << day(part)?,
                    }
                }
                bits
            }
        };
        let (start, end) = match time_word {
            None => (0, DAY),
            Some(t) => {
                let bad = || {
                    err(
                        t,
                        format!("`{t}` is not a time range: write HH:MM-HH:MM, e.g. 08:00-18:00"),
                    )
                };
                let (a, b) = t.split_once('-').ok_or_else(bad)?;
                let minute = |s: &str| -> Option<u16> {
                    let (h, m) = s.split_once(':')?;
                    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
                    // `then`, not `then_some`: h * 60 overflows for hours that are refused.
                    (m < 60 && (h < 24 || (h == 24 && m == 0)) && s.len() <= 5).then(|| h * 60 + m)
                };
                let (a, b) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
                if a == DAY {
                    return Err(bad());
                }
                (a, b)
            }
        };
        Ok(Window { days, start, end })
    }

    /// Is local weekday `day` (0 = Monday), minute `minute` of the day, inside?
    pub fn contains(&self, day: u8, minute: u16) -> bool {
        let on = |d: u8| self.days >> (d % 7) & 1 != 0;
        if self.start < self.end {
            on(day) && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening of a listed day, or the morning after one.
            (on(day) && minute >= self.start) || (on((day + 6) % 7) && minute < self.end)
        }
    }
}

/// The local weekday (0 = Monday) and minute of the day at `wall` nanoseconds after the Unix
/// epoch in `tz`, and the wall time at which the next minute begins.
pub fn local_minute(tz: &jiff::tz::TimeZone, wall: i128) -> Option<(u8, u16, i128)> {
    const MINUTE: i128 = 60_000_000_000;
    let local = tz.to_datetime(jiff::Timestamp::from_nanosecond(wall).ok()?);
    let day = local.weekday().to_monday_zero_offset() as u8;
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    Some((day, minute, (wall.div_euclid(MINUTE) + 1) * MINUTE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_days_and_times() {
        let w = Window::parse("Mon-Fri 08:00-18:00").unwrap();
        assert!(w.contains(0, 8 * 60) && w.contains(4, 18 * 60 - 1));
        assert!(!w.contains(0, 18 * 60) && !w.contains(5, 12 * 60) && !w.contains(2, 7 * 60));
        let night = Window::parse("fri,sat 22:00-06:00").unwrap();
        assert!(night.contains(4, 23 * 60) && night.contains(5, 5 * 60) && night.contains(6, 60));
        assert!(
            !night.contains(4, 5 * 60) && !night.contains(0, 60) && !night.contains(3, 23 * 60)
        );
        let weekend = Window::parse("Sat-Sun").unwrap();
        assert!(weekend.contains(5, 0) && weekend.contains(6, DAY - 1) && !weekend.contains(0, 0));
        let wraps = Window::parse("fri-mon").unwrap();
        assert!(wraps.contains(0, 0) && wraps.contains(6, 0) && !wraps.contains(1, 0));
        let daily = Window::parse("00:00-24:00").unwrap();
        assert!((0..7).all(|d| daily.contains(d, 0) && daily.contains(d, DAY - 1)));
        assert!(Window::parse("Tuesday 12:30-13:30")
            .unwrap()
            .contains(1, 13 * 60));
    }

    proptest::proptest! {
        /// Any text: a window or an error inside the text, never a panic; a window answers
        /// for every minute of the week.
        #[test]
        fn any_text_is_a_window_or_an_error_in_it(text in "[A-Za-z0-9:, éö€-]{0,30}") {
            match Window::parse(&text) {
                Ok(w) => {
                    for d in 0..7 {
                        let _ = w.contains(d, 0) || w.contains(d, DAY - 1);
                    }
                }
                Err(e) => proptest::prop_assert!(
                    e.column >= 1 && e.column <= text.chars().count() + 1
                ),
            }
        }
    }

    #[test]
    fn a_bad_window_says_where() {
        for (text, column, says) in [
            ("Mon-Fry 08:00-18:00", 5, "`Fry` is not a day"),
            ("Mon 8-18", 5, "`8-18` is not a time range"),
            ("Mon 08:00-25:00", 5, "is not a time range"),
            (
                "Mon 08:00-18:00 extra",
                17,
                "a window is days and one time range",
            ),
            ("", 1, "an empty window"),
            // An hour too large to count in minutes (found by the `rule` fuzz target, which
            // overflowed computing the minute it then refused).
            ("Mon 65000:00-18:00", 5, "is not a time range"),
            // Columns count characters, not bytes (found by the `rule` fuzz target).
            (
                "Mon 08:00-18:0\u{f6} x",
                17,
                "a window is days and one time range",
            ),
        ] {
            let e = Window::parse(text).unwrap_err();
            assert_eq!(e.column, column, "{text}: {e:?}");
            assert!(e.message.contains(says), "{text}: {e:?}");
        }
    }
}
