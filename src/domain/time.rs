//! Event-time helpers. Domain time is UTC milliseconds since the Unix epoch;
//! days are UTC calendar days, numbered from the epoch.

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// The UTC day number that contains `ms` (negative times round down).
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// Calendar days in a time zone: the local date of an instant, numbered
/// from 1970-01-01 like UTC days (so a date's number is the same in every
/// zone, and `format_day` prints it), DST-correct (the offset is the
/// zone's at that instant). UTC costs one division.
#[derive(Clone, Debug)]
pub struct DayClock {
    tz: Option<chrono_tz::Tz>,
    /// (15-minute slot, day) of the last instant asked about: every
    /// zone's offsets and transitions are whole quarter hours, so the
    /// local date is the same within a UTC quarter hour, and events come
    /// mostly in time order.
    last: std::cell::Cell<(i64, i64)>,
}

const MS_PER_QUARTER_HOUR: i64 = 900_000;

impl DayClock {
    /// The clock of an IANA zone name ("Asia/Shanghai"); "UTC" or ""
    /// for UTC days.
    pub fn new(zone: &str) -> Result<DayClock, String> {
        let tz =
            match zone {
                "" | "UTC" => None,
                z => Some(z.parse::<chrono_tz::Tz>().map_err(|_| {
                    format!("{z:?} is not an IANA time zone (e.g. \"Asia/Shanghai\")")
                })?),
            };
        Ok(DayClock {
            tz,
            last: std::cell::Cell::new((i64::MIN, 0)),
        })
    }

    pub fn utc() -> DayClock {
        DayClock::new("UTC").expect("UTC is a zone")
    }

    /// The local day number that contains `ms`.
    pub fn day_of(&self, ms: i64) -> i64 {
        let Some(tz) = self.tz else {
            return day_of(ms);
        };
        let slot = ms.div_euclid(MS_PER_QUARTER_HOUR);
        let (last_slot, last_day) = self.last.get();
        if slot == last_slot {
            return last_day;
        }
        use chrono::{Offset, TimeZone};
        let offset_ms = chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                i64::from(
                    tz.offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc(),
                ) * 1000
            })
            .unwrap_or(0);
        let day = day_of(ms.saturating_add(offset_ms));
        self.last.set((slot, day));
        day
    }

    /// The first instant (UTC ms) of local day `day`: its midnight, or
    /// where a daylight-saving change skips midnight, the first local time
    /// that exists that day.
    pub fn start_ms(&self, day: i64) -> i64 {
        let utc_midnight = day.saturating_mul(MS_PER_DAY);
        let Some(tz) = self.tz else {
            return utc_midnight;
        };
        use chrono::TimeZone;
        let Some(date) = chrono::DateTime::from_timestamp_millis(utc_midnight) else {
            return utc_midnight;
        };
        let midnight = date.naive_utc();
        // Offsets are whole quarter hours; a skipped midnight skips at most
        // a few hours.
        for quarter in 0..(4 * 24) {
            let local = midnight + chrono::Duration::minutes(15 * quarter);
            if let Some(t) = tz.from_local_datetime(&local).earliest() {
                return t.timestamp_millis();
            }
        }
        utc_midnight
    }
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_day(day: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(day * MS_PER_DAY) {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => format!("day{day}"),
    }
}

/// Formats event time as RFC 3339 in UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{ms}ms"),
    }
}

/// Parses a user-supplied time: RFC 3339 (`2026-11-20T09:00:00+08:00`),
/// a date (`2026-11-20`, UTC midnight) or raw epoch milliseconds.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(format!(
        "cannot read {s:?} as a time: use RFC 3339 (2026-11-20T09:00:00Z), a date (2026-11-20) or epoch milliseconds"
    ))
}

/// Parses a bound of a window of whole UTC days (stats): any form
/// [`parse_time_ms`] reads, as long as it is a UTC midnight. The metrics
/// are kept per UTC day, so a time of day cannot be honoured; it is
/// refused, never rounded.
pub fn parse_day_bound_ms(s: &str) -> Result<i64, String> {
    let ms = parse_time_ms(s)?;
    if ms.rem_euclid(MS_PER_DAY) != 0 {
        return Err(format!(
            "{s:?} is {}, not a UTC midnight: stats windows are whole UTC days, so give a date such as {}",
            format_ms(ms),
            format_day(day_of(ms))
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_day_starts_at_its_midnight_or_the_first_time_that_exists() {
        let t = |s: &str| parse_time_ms(s).unwrap();
        let day = |s: &str| day_of(t(s));
        let sh = DayClock::new("Asia/Shanghai").unwrap();
        assert_eq!(sh.start_ms(day("2026-11-20")), t("2026-11-19T16:00:00Z"));
        let la = DayClock::new("America/Los_Angeles").unwrap();
        // PDT (UTC-7) before the 2026-11-01 change, PST (UTC-8) after.
        assert_eq!(la.start_ms(day("2026-11-01")), t("2026-11-01T07:00:00Z"));
        assert_eq!(la.start_ms(day("2026-11-02")), t("2026-11-02T08:00:00Z"));
        // Santiago skips 00:00-00:59 on 2026-09-06 (DST starts at midnight).
        let scl = DayClock::new("America/Santiago").unwrap();
        assert_eq!(scl.start_ms(day("2026-09-06")), t("2026-09-06T04:00:00Z"));
        assert_eq!(
            DayClock::utc().start_ms(day("2026-11-20")),
            t("2026-11-20T00:00:00Z")
        );
    }

    #[test]
    fn local_days_follow_the_zone_and_its_daylight_saving() {
        let t = |s: &str| parse_time_ms(s).unwrap();
        let sh = DayClock::new("Asia/Shanghai").unwrap();
        // 16:30 UTC is 00:30 the next day in Shanghai (UTC+8).
        assert_eq!(
            format_day(sh.day_of(t("2026-11-19T16:30:00Z"))),
            "2026-11-20"
        );
        assert_eq!(
            format_day(sh.day_of(t("2026-11-19T15:59:59Z"))),
            "2026-11-19"
        );
        // Los Angeles leaves daylight saving on 2026-11-01 at 09:00 UTC:
        // 07:30 UTC that morning is 00:30 PDT (UTC-7), already Nov 1; a
        // fixed UTC-8 would put it on Oct 31.
        let la = DayClock::new("America/Los_Angeles").unwrap();
        assert_eq!(
            format_day(la.day_of(t("2026-11-01T07:30:00Z"))),
            "2026-11-01"
        );
        assert_eq!(
            format_day(la.day_of(t("2026-11-01T06:59:00Z"))),
            "2026-10-31"
        );
        // After the change, midnight is at 08:00 UTC.
        assert_eq!(
            format_day(la.day_of(t("2026-11-02T07:59:00Z"))),
            "2026-11-01"
        );
        assert_eq!(
            format_day(la.day_of(t("2026-11-02T08:00:00Z"))),
            "2026-11-02"
        );
        assert_eq!(
            DayClock::utc().day_of(t("2026-11-19T23:59:59Z")),
            day_of(t("2026-11-19T00:00:00Z"))
        );
        assert!(DayClock::new("Mars/Olympus")
            .unwrap_err()
            .contains("not an IANA time zone"));
    }

    #[test]
    fn days_round_down_and_format() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(MS_PER_DAY - 1), 0);
        assert_eq!(day_of(-1), -1);
        assert_eq!(format_day(day_of(1_763_600_000_000)), "2025-11-20");
    }

    #[test]
    fn parses_the_three_time_forms() {
        assert_eq!(parse_time_ms("1000").unwrap(), 1000);
        assert_eq!(parse_time_ms("1970-01-02").unwrap(), MS_PER_DAY);
        assert_eq!(parse_time_ms("1970-01-01T08:00:00+08:00").unwrap(), 0);
        assert!(parse_time_ms("yesterday").is_err());
    }

    #[test]
    fn a_day_bound_with_a_time_of_day_is_refused_not_rounded() {
        assert_eq!(parse_day_bound_ms("1970-01-02").unwrap(), MS_PER_DAY);
        // Midnight UTC written in another zone is still a day bound.
        assert_eq!(
            parse_day_bound_ms("1970-01-02T08:00:00+08:00").unwrap(),
            MS_PER_DAY
        );
        let err = parse_day_bound_ms("2026-11-20T09:00:00Z").unwrap_err();
        assert!(
            err.contains("not a UTC midnight") && err.contains("2026-11-20"),
            "{err}"
        );
    }
}
