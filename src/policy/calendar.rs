//! Business calendars: SLA clocks that count working time only.
//!
//! A pool may name a calendar: a time zone, daily working hours, working
//! weekdays and holidays. Then "first follow-up within 8 h" means 8 working
//! hours: a lead assigned on Friday at 17:00 with 09:00–18:00 hours is due
//! on Monday at 16:00. Local times are converted with the zone's rules of
//! that day, so a daylight-saving change moves the UTC deadline as it
//! should. Pure: no clock, only arithmetic on event time.

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The calendar as written in the policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// IANA zone, e.g. "Asia/Shanghai", "America/New_York".
    pub time_zone: String,
    /// Local working hours, "09:00-18:00".
    pub working_hours: String,
    /// Working weekdays, e.g. ["mon", "tue", "wed", "thu", "fri"].
    #[serde(default = "weekdays")]
    pub working_days: Vec<String>,
    /// Non-working dates, "YYYY-MM-DD", local.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// A calendar spec with a fingerprint, as an assignment keeps it: the
/// fingerprint makes finding its parsed calendar a cheap lookup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarRef {
    pub id: u64,
    pub spec: CalendarSpec,
}

impl CalendarRef {
    pub fn new(spec: &CalendarSpec) -> CalendarRef {
        // FNV-1a over the fields, separated so that ("ab","c") != ("a","bc").
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let between = String::new();
        let parts = [&spec.time_zone, &spec.working_hours]
            .into_iter()
            .chain(&spec.working_days)
            .chain(std::iter::once(&between))
            .chain(&spec.holidays);
        for part in parts {
            for b in part.bytes().chain(std::iter::once(0xff)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        CalendarRef {
            id: h,
            spec: spec.clone(),
        }
    }
}

fn weekdays() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// A validated calendar.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    open: NaiveTime,
    close: NaiveTime,
    days: [bool; 7],
    holidays: Vec<NaiveDate>,
    /// Opening and closing instants (UTC ms) of dates already asked about.
    /// Converting a local time with the zone's rules is the costliest step
    /// of a deadline, and deadlines keep asking about the same few days.
    /// A pure memo: bounded, cleared when full, shared by clones.
    day_bounds: Arc<Mutex<HashMap<NaiveDate, (i64, i64)>>>,
    /// Working milliseconds of the weeks already asked about, by their
    /// Monday: a walk over a long limit (a 30-day `max_holding` crosses
    /// ~115 dates) takes whole weeks at once. A memo like `day_bounds`.
    week_ms: Arc<Mutex<HashMap<NaiveDate, i64>>>,
}

/// Dates kept in a calendar's memo before it is cleared.
const DAY_BOUNDS_MAX: usize = 4_096;

/// Weeks kept in a calendar's memo before it is cleared.
const WEEKS_MAX: usize = 1_024;

/// The longest stretch a deadline may be pushed over (ten years of days):
/// bounds the walk when a calendar has almost no working time.
const DAYS_MAX: u32 = 3_660;

impl Calendar {
    pub fn parse(spec: &CalendarSpec) -> Result<Calendar, String> {
        let tz: Tz = spec
            .time_zone
            .parse()
            .map_err(|_| format!("unknown time zone {:?}", spec.time_zone))?;
        let (open, close) = spec
            .working_hours
            .split_once('-')
            .ok_or_else(|| format!("working_hours {:?} is not HH:MM-HH:MM", spec.working_hours))?;
        let time = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("working_hours {:?} is not HH:MM-HH:MM", spec.working_hours))
        };
        let (open, close) = (time(open)?, time(close)?);
        if open >= close {
            return Err(format!(
                "working_hours {:?} end before they start",
                spec.working_hours
            ));
        }
        let mut days = [false; 7];
        for d in &spec.working_days {
            let wd: Weekday = d.parse().map_err(|_| format!("unknown weekday {d:?}"))?;
            days[wd.num_days_from_monday() as usize] = true;
        }
        if !days.iter().any(|d| *d) {
            return Err("a calendar needs at least one working day".into());
        }
        let holidays = spec
            .holidays
            .iter()
            .map(|h| {
                NaiveDate::parse_from_str(h, "%Y-%m-%d")
                    .map_err(|_| format!("holiday {h:?} is not YYYY-MM-DD"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Calendar {
            tz,
            open,
            close,
            days,
            holidays,
            day_bounds: Arc::default(),
            week_ms: Arc::default(),
        })
    }

    /// The opening and closing instants of a date, memoised.
    fn bounds(&self, date: NaiveDate) -> (i64, i64) {
        let mut memo = self.day_bounds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = memo.get(&date) {
            return *b;
        }
        if memo.len() >= DAY_BOUNDS_MAX {
            memo.clear();
        }
        let b = (self.at(date, self.open), self.at(date, self.close));
        memo.insert(date, b);
        b
    }

    /// The working milliseconds of the week from `monday` to its Sunday,
    /// each day counted whole (as the walks count every day but their
    /// first), memoised.
    fn week_ms(&self, monday: NaiveDate) -> i64 {
        let known = self
            .week_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&monday)
            .copied();
        if let Some(ms) = known {
            return ms;
        }
        let ms = monday
            .iter_days()
            .take(7)
            .filter(|d| self.working(*d))
            .map(|d| {
                let (open, close) = self.bounds(d);
                (close - open).max(0)
            })
            .sum();
        let mut memo = self.week_ms.lock().unwrap_or_else(|e| e.into_inner());
        if memo.len() >= WEEKS_MAX {
            memo.clear();
        }
        memo.insert(monday, ms);
        ms
    }

    fn working(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&date)
    }

    /// The UTC milliseconds of a local time on a date (the earlier instant
    /// when a fall-back makes it ambiguous; shifted past a spring-forward
    /// gap).
    fn at(&self, date: NaiveDate, time: NaiveTime) -> i64 {
        let local = date.and_time(time);
        match self.tz.from_local_datetime(&local).earliest() {
            Some(t) => t.timestamp_millis(),
            // In a gap: an hour later exists.
            None => self
                .tz
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
                .map_or(local.and_utc().timestamp_millis(), |t| t.timestamp_millis()),
        }
    }

    /// The moment `working_ms` of working time after `start_ms`.
    pub fn add_working(&self, start_ms: i64, working_ms: i64) -> i64 {
        let Some(start) = self.tz.timestamp_millis_opt(start_ms).single() else {
            return start_ms.saturating_add(working_ms);
        };
        let first = start.date_naive();
        let mut date = first;
        let mut left = working_ms;
        let mut days = 0;
        while days < DAYS_MAX {
            // A whole week that cannot hold the end is skipped at once: on
            // each of its days the walk below would only take that day's
            // hours off (every day after the first counts whole).
            if date > first && date.weekday() == Weekday::Mon && days + 7 <= DAYS_MAX {
                let week = self.week_ms(date);
                if let Some(next) = date.checked_add_days(chrono::Days::new(7)) {
                    if left > week {
                        left -= week;
                        date = next;
                        days += 7;
                        continue;
                    }
                }
            }
            days += 1;
            if self.working(date) {
                let (open, close) = self.bounds(date);
                let open = open.max(start_ms);
                if open < close {
                    let available = close - open;
                    if left <= available {
                        return open + left;
                    }
                    left -= available;
                }
            }
            date = date.succ_opt().unwrap_or(date);
        }
        start_ms.saturating_add(working_ms)
    }

    /// The moment `working_ms` of working time before `end_ms`: the mirror
    /// of [`add_working`](Self::add_working), for reminders. Going back
    /// from a deadline, only open hours count, so a reminder lands inside
    /// working hours (at the earliest, at an opening).
    pub fn sub_working(&self, end_ms: i64, working_ms: i64) -> i64 {
        let Some(end) = self.tz.timestamp_millis_opt(end_ms).single() else {
            return end_ms.saturating_sub(working_ms);
        };
        let last = end.date_naive();
        let mut date = last;
        let mut left = working_ms;
        let mut days = 0;
        while days < DAYS_MAX {
            // A whole week (back from its Sunday) that cannot hold the
            // start is skipped at once, as in `add_working`.
            if date < last && date.weekday() == Weekday::Sun && days + 7 <= DAYS_MAX {
                let monday = date.checked_sub_days(chrono::Days::new(6));
                let before = date.checked_sub_days(chrono::Days::new(7));
                if let (Some(monday), Some(before)) = (monday, before) {
                    let week = self.week_ms(monday);
                    if left > week {
                        left -= week;
                        date = before;
                        days += 7;
                        continue;
                    }
                }
            }
            days += 1;
            if self.working(date) {
                let (open, close) = self.bounds(date);
                let close = close.min(end_ms);
                if open < close {
                    let available = close - open;
                    if left <= available {
                        return close - left;
                    }
                    left -= available;
                }
            }
            date = date.pred_opt().unwrap_or(date);
        }
        end_ms.saturating_sub(working_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn cal(zone: &str, holidays: &[&str]) -> Calendar {
        Calendar::parse(&CalendarSpec {
            time_zone: zone.into(),
            working_hours: "09:00-18:00".into(),
            working_days: weekdays(),
            holidays: holidays.iter().map(|h| h.to_string()).collect(),
        })
        .unwrap()
    }

    fn utc(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    /// The walks as they were before whole weeks were skipped: a day at
    /// a time.
    fn add_day_by_day(c: &Calendar, start_ms: i64, working_ms: i64) -> i64 {
        let Some(start) = c.tz.timestamp_millis_opt(start_ms).single() else {
            return start_ms.saturating_add(working_ms);
        };
        let mut date = start.date_naive();
        let mut left = working_ms;
        for _ in 0..DAYS_MAX {
            if c.working(date) {
                let (open, close) = c.bounds(date);
                let open = open.max(start_ms);
                if open < close {
                    if left <= close - open {
                        return open + left;
                    }
                    left -= close - open;
                }
            }
            date = date.succ_opt().unwrap_or(date);
        }
        start_ms.saturating_add(working_ms)
    }

    fn sub_day_by_day(c: &Calendar, end_ms: i64, working_ms: i64) -> i64 {
        let Some(end) = c.tz.timestamp_millis_opt(end_ms).single() else {
            return end_ms.saturating_sub(working_ms);
        };
        let mut date = end.date_naive();
        let mut left = working_ms;
        for _ in 0..DAYS_MAX {
            if c.working(date) {
                let (open, close) = c.bounds(date);
                let close = close.min(end_ms);
                if open < close {
                    if left <= close - open {
                        return close - left;
                    }
                    left -= close - open;
                }
            }
            date = date.pred_opt().unwrap_or(date);
        }
        end_ms.saturating_sub(working_ms)
    }

    proptest::proptest! {
        #[test]
        fn skipping_whole_weeks_lands_where_the_day_by_day_walk_does(
            zone in proptest::sample::select(vec![
                "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe", "UTC",
            ]),
            hours in proptest::sample::select(vec!["09:00-18:00", "00:30-23:30", "08:00-08:01", "01:00-03:00"]),
            days in proptest::collection::vec(proptest::bool::ANY, 7),
            holidays in proptest::collection::vec(0i64..800, 0..30),
            at_ms in 1_735_689_600_000i64..1_798_761_600_000,
            working_ms in proptest::prop_oneof![0i64..86_400_000, 0i64..3_000 * 3_600_000],
        ) {
            // Given a calendar of any zone (with and without daylight
            // saving), hours, working days and holidays in 2025-2027.
            let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let mut working_days: Vec<String> = names
                .iter()
                .zip(&days)
                .filter(|(_, on)| **on)
                .map(|(d, _)| d.to_string())
                .collect();
            if working_days.is_empty() {
                working_days.push("wed".into());
            }
            let from = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
            let c = Calendar::parse(&CalendarSpec {
                time_zone: zone.into(),
                working_hours: hours.into(),
                working_days,
                holidays: holidays
                    .iter()
                    .map(|d| (from + chrono::Days::new(*d as u64)).to_string())
                    .collect(),
            })
            .unwrap();
            // Then both walks, forward and back, land where a day at a
            // time does.
            proptest::prop_assert_eq!(c.add_working(at_ms, working_ms), add_day_by_day(&c, at_ms, working_ms));
            proptest::prop_assert_eq!(c.sub_working(at_ms, working_ms), sub_day_by_day(&c, at_ms, working_ms));
        }
    }

    #[test]
    fn a_limit_of_exactly_whole_weeks_ends_at_the_last_closing_not_the_next_opening() {
        // Given 09:00-18:00 on weekdays (45 working hours a week).
        let c = cal("UTC", &[]);
        // When a week's worth is added from a Friday's closing, or taken
        // back from a Monday's opening.
        let friday_18 = utc("2026-10-09T18:00:00Z");
        let monday_09 = utc("2026-10-12T09:00:00Z");
        // Then it ends at the next Friday's closing (not the Monday after),
        // and starts at the Monday's opening a week before.
        assert_eq!(
            c.add_working(friday_18, 45 * H),
            utc("2026-10-16T18:00:00Z")
        );
        assert_eq!(
            c.add_working(friday_18, 90 * H),
            utc("2026-10-23T18:00:00Z")
        );
        assert_eq!(
            c.sub_working(monday_09, 45 * H),
            utc("2026-10-05T09:00:00Z")
        );
        assert_eq!(
            c.sub_working(monday_09, 90 * H),
            utc("2026-09-28T09:00:00Z")
        );
    }

    #[test]
    fn going_back_in_working_time_skips_nights_weekends_and_holidays() {
        let c = cal("Asia/Shanghai", &["2026-10-09"]);
        // Monday 10:00: one working hour back is 09:00, two is the Friday
        // before at 17:00 (the night and the weekend do not count), and
        // with that Friday a holiday, Thursday at 17:00.
        let monday_10 = utc("2026-10-12T10:00:00+08:00");
        assert_eq!(
            c.sub_working(monday_10, H),
            utc("2026-10-12T09:00:00+08:00")
        );
        assert_eq!(
            c.sub_working(monday_10, 2 * H),
            utc("2026-10-08T17:00:00+08:00")
        );
        let c = cal("Asia/Shanghai", &[]);
        assert_eq!(
            c.sub_working(monday_10, 2 * H),
            utc("2026-10-09T17:00:00+08:00")
        );
        // A deadline at closing goes back from closing; zero is itself.
        let friday_18 = utc("2026-10-09T18:00:00+08:00");
        assert_eq!(
            c.sub_working(friday_18, H),
            utc("2026-10-09T17:00:00+08:00")
        );
        assert_eq!(c.sub_working(monday_10, 0), monday_10);
        // It mirrors adding: back then forth lands where it started.
        let back = c.sub_working(monday_10, 5 * H);
        assert_eq!(c.add_working(back, 5 * H), monday_10);
    }

    #[test]
    fn within_one_working_day() {
        // Shanghai is UTC+8: Tuesday 10:00 local + 3 h = 13:00 local.
        let c = cal("Asia/Shanghai", &[]);
        assert_eq!(
            c.add_working(utc("2026-11-24T10:00:00+08:00"), 3 * H),
            utc("2026-11-24T13:00:00+08:00")
        );
    }

    #[test]
    fn across_a_weekend() {
        // Friday 17:00 + 8 working hours: 1 h on Friday, 7 h on Monday.
        let c = cal("Asia/Shanghai", &[]);
        assert_eq!(
            c.add_working(utc("2026-11-27T17:00:00+08:00"), 8 * H),
            utc("2026-11-30T16:00:00+08:00")
        );
    }

    #[test]
    fn assigned_at_night_starts_counting_next_morning() {
        let c = cal("Asia/Shanghai", &[]);
        assert_eq!(
            c.add_working(utc("2026-11-24T22:30:00+08:00"), 2 * H),
            utc("2026-11-25T11:00:00+08:00")
        );
    }

    #[test]
    fn holidays_do_not_count() {
        // Monday 2026-11-30 is a holiday: Friday 17:00 + 8 h lands Tuesday.
        let c = cal("Asia/Shanghai", &["2026-11-30"]);
        assert_eq!(
            c.add_working(utc("2026-11-27T17:00:00+08:00"), 8 * H),
            utc("2026-12-01T16:00:00+08:00")
        );
    }

    #[test]
    fn across_a_daylight_saving_change() {
        // New York springs forward on Sunday 2026-03-08: Friday 16:00 EST
        // (UTC-5) + 4 working hours = Monday 11:00 EDT (UTC-4).
        let c = cal("America/New_York", &[]);
        assert_eq!(
            c.add_working(utc("2026-03-06T16:00:00-05:00"), 4 * H),
            utc("2026-03-09T11:00:00-04:00")
        );
        // Falling back on 2026-11-01: Friday 17:00 EDT + 2 h = Monday 10:00 EST.
        assert_eq!(
            c.add_working(utc("2026-10-30T17:00:00-04:00"), 2 * H),
            utc("2026-11-02T10:00:00-05:00")
        );
    }

    #[test]
    fn bad_calendars_are_refused() {
        let spec = |zone: &str, hours: &str| CalendarSpec {
            time_zone: zone.into(),
            working_hours: hours.into(),
            working_days: weekdays(),
            holidays: vec![],
        };
        assert!(Calendar::parse(&spec("Mars/Olympus", "09:00-18:00")).is_err());
        assert!(Calendar::parse(&spec("UTC", "18:00-09:00")).is_err());
        assert!(Calendar::parse(&spec("UTC", "nine to five")).is_err());
    }
}
