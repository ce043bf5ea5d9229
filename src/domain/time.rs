//! Event-time helpers. Domain time is UTC milliseconds since the Unix epoch;
//! days are UTC calendar days, numbered from the epoch.

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// The UTC day number that contains `ms` (negative times round down).
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
