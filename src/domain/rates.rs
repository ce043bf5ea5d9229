//! Dated exchange rates into one reporting currency, as Salesforce's dated
//! exchange rates work: each rate applies from its date until the next
//! one of the same currency, and an amount is converted at the rate of the
//! day it happened (a lead's cost on its creation day, a deal on the day
//! it closed), so a later rate never rewrites past numbers.
//!
//! Rates are exact decimals (`"0.1392"`: 1 CNY = 0.1392 USD) and amounts
//! integer minor units; a conversion rounds half to even once per amount,
//! in the reporting currency's minor units (ISO 4217 digits: 0 for JPY,
//! 3 for KWD, 2 for most).

use super::Currency;
use serde::{Deserialize, Serialize};

/// One dated rate: from `from_day` (a day number of the report time
/// zone), 1 unit of `currency` is `num / den` units of the reporting
/// currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatedRate {
    pub currency: Currency,
    pub from_day: i64,
    pub num: i128,
    pub den: i128,
}

/// The reporting currency and its rates, sorted by (currency, from_day).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub reporting: Currency,
    pub rates: Vec<DatedRate>,
}

/// Most dated rates in a table (a rate a day for 30 currencies for a
/// decade fits).
pub const RATES_MAX: usize = 200_000;

/// Parses an exact decimal rate ("0.1392", "7") into (numerator,
/// denominator); positive, at most 12 decimals.
pub fn parse_rate(text: &str) -> Result<(i128, i128), String> {
    let bad = || format!("{text:?} is not a positive decimal rate (e.g. \"0.1392\")");
    let (int, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 12
        || int.len() > 12
    {
        return Err(bad());
    }
    let den = 10i128.pow(frac.len() as u32);
    let num: i128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
    if num == 0 {
        return Err(bad());
    }
    Ok((num, den))
}

/// ISO 4217 minor-unit digits of a currency.
pub fn minor_digits(c: Currency) -> u32 {
    match c.as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

impl Rates {
    /// `minor_units` of `from` on `day`, in the reporting currency's minor
    /// units; `None` when no rate of `from` applies on that day (before
    /// its first one).
    pub fn convert(&self, minor_units: i128, from: Currency, day: i64) -> Option<i128> {
        if from == self.reporting {
            return Some(minor_units);
        }
        // The latest rate of `from` starting on or before `day`.
        let end = self
            .rates
            .partition_point(|r| (r.currency, r.from_day) <= (from, day));
        let rate = self.rates[..end].last().filter(|r| r.currency == from)?;
        let (e_from, e_to) = (minor_digits(from), minor_digits(self.reporting));
        let num = minor_units
            .checked_mul(rate.num)?
            .checked_mul(10i128.pow(e_to))?;
        let den = rate.den.checked_mul(10i128.pow(e_from))?;
        Some(div_round_half_even(num, den))
    }
}

fn div_round_half_even(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn an_amount_is_converted_at_the_rate_of_its_day() {
        let (num, den) = parse_rate("0.14").unwrap();
        let (num2, den2) = parse_rate("0.15").unwrap();
        let rates = Rates {
            reporting: c("USD"),
            rates: vec![
                DatedRate {
                    currency: c("CNY"),
                    from_day: 100,
                    num,
                    den,
                },
                DatedRate {
                    currency: c("CNY"),
                    from_day: 200,
                    num: num2,
                    den: den2,
                },
                DatedRate {
                    currency: c("JPY"),
                    from_day: 0,
                    num: 67,
                    den: 10_000,
                },
            ],
        };
        // 700.00 CNY on day 150: 98.00 USD; on day 200: 105.00 USD.
        assert_eq!(rates.convert(70_000, c("CNY"), 150), Some(9_800));
        assert_eq!(rates.convert(70_000, c("CNY"), 200), Some(10_500));
        assert_eq!(
            rates.convert(70_000, c("CNY"), 99),
            None,
            "before the first rate"
        );
        assert_eq!(rates.convert(123, c("USD"), 0), Some(123));
        // 1,000 JPY (no minor units) at 0.0067: 6.70 USD.
        assert_eq!(rates.convert(1_000, c("JPY"), 5), Some(670));
        assert_eq!(rates.convert(1, c("EUR"), 5), None);
        // Half to even: 0.125 -> 0.12, 0.135 -> 0.14.
        assert_eq!(div_round_half_even(25, 2), 12);
        assert_eq!(div_round_half_even(27, 2), 14);
        assert_eq!(parse_rate("7").unwrap(), (7, 1));
        assert!(
            parse_rate("-1").is_err() && parse_rate("0").is_err() && parse_rate("1e3").is_err()
        );
    }
}
