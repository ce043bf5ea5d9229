//! Durations in the policy file, as people write them.
//!
//! A rule's duration may be given as milliseconds (`stale_after_ms =
//! 259200000`, the file's original form, still accepted) or as text
//! (`stale_after = "3d"`, `"24h"`, `"1h 30min"`), parsed by the
//! `humantime` crate. Either way the policy holds milliseconds.
//!
//! Only human-readable formats (TOML, and the JSON the log keeps policy
//! versions in) get the choice: the binary snapshot format (bincode) has
//! no self-description to tell a number from a string, and always holds
//! the number it wrote.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// `deserialize_with` for an optional duration field (`Option<i64>`, in
/// milliseconds).
pub fn opt_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(MsVisitor)
    } else {
        <Option<i64> as serde::Deserialize>::deserialize(d)
    }
}

struct MsVisitor;

impl<'de> Visitor<'de> for MsVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("milliseconds, or a duration such as \"24h\", \"7d\" or \"90min\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("{v} ms is too long")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_ms(v).map(Some).map_err(E::custom)
    }

    // The log keeps policy versions as JSON, where a rule left out is
    // written as null.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(MsVisitor)
    }
}

/// Parses a duration written for people into milliseconds: `"24h"`,
/// `"7d"`, `"1h 30min"`, `"500ms"`.
pub fn parse_ms(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. \"24h\", \"7d\", \"90min\" or milliseconds"))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("{text:?} is finer than a millisecond"));
    }
    i64::try_from(d.as_millis()).map_err(|_| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_write_durations_in_their_units() {
        assert_eq!(parse_ms("24h"), Ok(86_400_000));
        assert_eq!(parse_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_ms("1h 30min"), Ok(5_400_000));
        assert_eq!(parse_ms(" 500ms "), Ok(500));
        assert!(parse_ms("soon")
            .unwrap_err()
            .contains("\"soon\" is not a duration"));
        assert!(parse_ms("1us")
            .unwrap_err()
            .contains("finer than a millisecond"));
    }
}
