//! Budget periods: a day, a week or a month of local time, starting at a given local day and
//! minute (`starts: "1st 00:00"`, `"Mon 06:00"`, `"00:00"`). Pure: a period answers for a
//! wall-clock time (nanoseconds since the Unix epoch) in a time zone; the caller owns the clock.
//!
//! A month's start day beyond the month's end (the 31st in April) is its last day; a start in
//! a daylight-saving gap or fold is taken as jiff's "compatible" rule takes it (the later side
//! of a gap, the earlier of a fold), so every period has one start and one end.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// How long a budget's period is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Day,
    Week,
    Month,
}

/// When a budget's count starts again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub per: Per,
    /// Month: the day of the month, 1-31; week: the weekday, 0 = Monday; day: 0.
    day: u8,
    /// Local minute of the day, 0-1439.
    minute: u16,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Period {
    /// `starts` as written, or the default start: the 1st at 00:00, Monday 00:00, 00:00.
    /// The error says what is wrong with it.
    pub fn parse(per: Per, starts: Option<&str>) -> Result<Period, String> {
        let Some(text) = starts else {
            return Ok(Period {
                per,
                day: u8::from(per == Per::Month),
                minute: 0,
            });
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (day_word, time_word) = match (per, words.as_slice()) {
            (Per::Day, [t]) => (None, *t),
            (Per::Day, _) => return Err(format!("\"{text}\": a daily budget starts at a time, e.g. \"06:00\"")),
            (_, [d, t]) => (Some(*d), *t),
            (_, [d]) if !d.contains(':') => (Some(*d), "00:00"),
            (Per::Week, _) => return Err(format!("\"{text}\": a weekly budget starts on a day at a time, e.g. \"Mon 00:00\"")),
            (Per::Month, _) => return Err(format!("\"{text}\": a monthly budget starts on a day of the month at a time, e.g. \"1st 00:00\"")),
        };
        let minute = parse_time(time_word).ok_or_else(|| {
            format!("\"{time_word}\" is not a time of day (HH:MM, 00:00 to 23:59)")
        })?;
        let day = match (per, day_word) {
            (Per::Day, _) | (_, None) => u8::from(per == Per::Month),
            (Per::Week, Some(d)) => {
                let lower = d.to_ascii_lowercase();
                WEEKDAYS
                    .iter()
                    .position(|w| lower.get(..3) == Some(*w) && lower.len() <= 9)
                    .ok_or_else(|| format!("\"{d}\" is not a day of the week (mon ... sun)"))?
                    as u8
            }
            (Per::Month, Some(d)) => {
                let digits = d.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                let suffix = &d[digits.len()..];
                match digits.parse::<u8>() {
                    Ok(n @ 1..=31) if ["", "st", "nd", "rd", "th"].contains(&suffix) => n,
                    _ => {
                        return Err(format!(
                            "\"{d}\" is not a day of the month (1st to 31st; a day a month lacks is its last)"
                        ))
                    }
                }
            }
        };
        Ok(Period { per, day, minute })
    }

    /// The period holding `wall` in `tz`: `(start, end)`, nanoseconds since the epoch, with
    /// `start <= wall < end`. `None` only for times outside jiff's range (years beyond 9999).
    pub fn around(&self, tz: &TimeZone, wall: i128) -> Option<(i128, i128)> {
        let date = tz
            .to_datetime(Timestamp::from_nanosecond(wall).ok()?)
            .date();
        let first = self.start_date(date)?;
        let first = if self.start_on(tz, first)? > wall {
            self.step(first, -1)?
        } else {
            first
        };
        let start = self.start_on(tz, first)?;
        let end = self.start_on(tz, self.step(first, 1)?)?;
        (start <= wall && wall < end).then_some((start, end))
    }

    /// The period's start day that is on or before `date`'s (not yet compared by time).
    fn start_date(&self, date: Date) -> Option<Date> {
        match self.per {
            Per::Day => Some(date),
            Per::Week => {
                let today = date.weekday().to_monday_zero_offset();
                let back = (today - self.day as i8).rem_euclid(7);
                date.checked_sub(i64::from(back).days()).ok()
            }
            Per::Month => {
                let d = self.month_day(date.year(), date.month());
                let this = date.with().day(d).build().ok()?;
                if this > date {
                    self.step(this, -1)
                } else {
                    Some(this)
                }
            }
        }
    }

    /// The start day `n` periods after (or before) start day `d`.
    fn step(&self, d: Date, n: i64) -> Option<Date> {
        match self.per {
            Per::Day => d.checked_add(n.days()).ok(),
            Per::Week => d.checked_add((7 * n).days()).ok(),
            Per::Month => {
                let first = d.first_of_month().checked_add(n.months()).ok()?;
                first
                    .with()
                    .day(self.month_day(first.year(), first.month()))
                    .build()
                    .ok()
            }
        }
    }

    /// The configured day of the month, or the month's last day when it has fewer.
    fn month_day(&self, year: i16, month: i8) -> i8 {
        let last = Date::new(year, month, 1).map_or(28, |d| d.days_in_month());
        (self.day as i8).min(last)
    }

    fn start_on(&self, tz: &TimeZone, d: Date) -> Option<i128> {
        let at = DateTime::from_parts(
            d,
            jiff::civil::time((self.minute / 60) as i8, (self.minute % 60) as i8, 0, 0),
        );
        Some(tz.to_timestamp(at).ok()?.as_nanosecond())
    }

    /// "month from the 1st 00:00", "week from Mon 06:00", "day from 00:00".
    pub fn describe(&self) -> String {
        let time = format!("{:02}:{:02}", self.minute / 60, self.minute % 60);
        match self.per {
            Per::Day => format!("day from {time}"),
            Per::Week => {
                let d = WEEKDAYS[usize::from(self.day) % 7];
                format!("week from {}{} {time}", d[..1].to_uppercase(), &d[1..])
            }
            Per::Month => {
                let suffix = match self.day {
                    1 | 21 | 31 => "st",
                    2 | 22 => "nd",
                    3 | 23 => "rd",
                    _ => "th",
                };
                format!("month from the {}{suffix} {time}", self.day)
            }
        }
    }
}

/// `HH:MM` as minutes of the day.
fn parse_time(t: &str) -> Option<u16> {
    let (h, m) = t.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: &TimeZone, s: &str) -> i128 {
        tz.to_timestamp(s.parse::<DateTime>().unwrap())
            .unwrap()
            .as_nanosecond()
    }

    #[test]
    fn months_start_on_their_day_and_clamp_to_short_months() {
        let tz = TimeZone::get("Pacific/Auckland").unwrap();
        let p = Period::parse(Per::Month, Some("1st 00:00")).unwrap();
        let (s, e) = p.around(&tz, at(&tz, "2026-11-30T23:59:59")).unwrap();
        assert_eq!(
            (s, e),
            (at(&tz, "2026-11-01T00:00"), at(&tz, "2026-12-01T00:00"))
        );
        let (s, _) = p.around(&tz, at(&tz, "2026-12-01T00:00")).unwrap();
        assert_eq!(s, at(&tz, "2026-12-01T00:00"));

        let late = Period::parse(Per::Month, Some("31st 06:30")).unwrap();
        let (s, e) = late.around(&tz, at(&tz, "2027-03-10T12:00")).unwrap();
        assert_eq!(s, at(&tz, "2027-02-28T06:30"));
        assert_eq!(e, at(&tz, "2027-03-31T06:30"));
        let (s, e) = late.around(&tz, at(&tz, "2027-04-30T06:29")).unwrap();
        assert_eq!(
            (s, e),
            (at(&tz, "2027-03-31T06:30"), at(&tz, "2027-04-30T06:30"))
        );
    }

    #[test]
    fn weeks_and_days_start_at_their_local_time() {
        let tz = TimeZone::UTC;
        let w = Period::parse(Per::Week, Some("Wed 06:00")).unwrap();
        // 2026-12-02 is a Wednesday.
        let (s, e) = w.around(&tz, at(&tz, "2026-12-02T05:59")).unwrap();
        assert_eq!(
            (s, e),
            (at(&tz, "2026-11-25T06:00"), at(&tz, "2026-12-02T06:00"))
        );
        let (s, _) = w.around(&tz, at(&tz, "2026-12-06T23:00")).unwrap();
        assert_eq!(s, at(&tz, "2026-12-02T06:00"));
        let d = Period::parse(Per::Day, None).unwrap();
        let (s, e) = d.around(&tz, at(&tz, "2026-12-02T13:00")).unwrap();
        assert_eq!(
            (s, e),
            (at(&tz, "2026-12-02T00:00"), at(&tz, "2026-12-03T00:00"))
        );
    }

    #[test]
    fn a_day_across_a_daylight_saving_change_is_23_or_25_hours() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let d = Period::parse(Per::Day, Some("00:00")).unwrap();
        let (s, e) = d.around(&tz, at(&tz, "2026-03-29T12:00")).unwrap();
        assert_eq!(e - s, 23 * 3_600_000_000_000);
        let (s, e) = d.around(&tz, at(&tz, "2026-10-25T12:00")).unwrap();
        assert_eq!(e - s, 25 * 3_600_000_000_000);
    }

    #[test]
    fn bad_starts_say_what_is_wrong() {
        assert!(Period::parse(Per::Month, Some("32nd 00:00")).is_err());
        assert!(Period::parse(Per::Month, Some("1st 24:00")).is_err());
        assert!(Period::parse(Per::Week, Some("Funday 00:00")).is_err());
        assert!(Period::parse(Per::Day, Some("Mon 00:00")).is_err());
        assert_eq!(
            Period::parse(Per::Week, Some("sunday")).unwrap().describe(),
            "week from Sun 00:00"
        );
        assert_eq!(
            Period::parse(Per::Month, Some("2 6:05"))
                .unwrap()
                .describe(),
            "month from the 2nd 06:05"
        );
    }
}
