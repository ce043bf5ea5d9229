//! Money is integer minor units with an ISO 4217 currency. Amounts in two
//! currencies are never added: every sum and ratio downstream is kept per
//! currency.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code: exactly three ASCII upper-case letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a currency code; `None` unless it is three upper-case ASCII letters.
    pub fn parse(code: &str) -> Option<Currency> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(|c| c.is_ascii_uppercase()) {
            Some(Currency([b[0], b[1], b[2]]))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        // The constructor only admits ASCII, so this cannot fail.
        std::str::from_utf8(&self.0).expect("currency is ASCII")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units (fen, cents) of one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor_units: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor_units: i64, currency: Currency) -> Money {
        Money {
            minor_units,
            currency,
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor_units < 0 { "-" } else { "" };
        let abs = self.minor_units.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert_eq!(Currency::parse("CNY").unwrap().as_str(), "CNY");
        for bad in ["cny", "CN", "CNYY", "C1Y", ""] {
            assert!(Currency::parse(bad).is_none(), "{bad} accepted");
        }
    }

    #[test]
    fn money_displays_minor_units_as_decimal() {
        let cny = Currency::parse("CNY").unwrap();
        assert_eq!(Money::new(123_456, cny).to_string(), "1234.56 CNY");
        assert_eq!(Money::new(-5, cny).to_string(), "-0.05 CNY");
    }
}
