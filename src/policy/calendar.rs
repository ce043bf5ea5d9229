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
}

/// Dates kept in a calendar's memo before it is cleared.
const DAY_BOUNDS_MAX: usize = 4_096;

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
        let mut date = start.date_naive();
        let mut left = working_ms;
        for _ in 0..DAYS_MAX {
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
        let mut date = end.date_naive();
        let mut left = working_ms;
        for _ in 0..DAYS_MAX {
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
