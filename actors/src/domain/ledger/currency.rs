//! The currencies accounts may hold, with their decimal places: ISO 4217's table (its minor
//! units), plus currencies an operator configures (a code ISO does not list, such as `BTC`
//! with 8, or another number of places for a listed one). Amounts are integers of minor
//! units everywhere; the places only turn them into major units for people (statements).

use std::collections::BTreeMap;

use super::account::Currency;

/// Most decimal places a configured currency may have: 10^18 minor units still fit an amount.
pub const DECIMALS_MAX: u8 = 18;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Currencies {
    configured: BTreeMap<Currency, u8>,
}

impl Currencies {
    /// ISO 4217 with `configured` on top; `Err` names a configured entry that is not a
    /// currency code or has more than [`DECIMALS_MAX`] places.
    pub fn new(configured: &BTreeMap<String, u8>) -> Result<Self, String> {
        let mut table = BTreeMap::new();
        for (code, decimals) in configured {
            let currency = Currency::new(code).ok_or_else(|| format!("'{code}' is not three capital letters"))?;
            if *decimals > DECIMALS_MAX {
                return Err(format!("{code} has {decimals} decimal places; at most {DECIMALS_MAX}"));
            }
            table.insert(currency, *decimals);
        }
        Ok(Self { configured: table })
    }

    /// The currency's decimal places; `None` for a code neither ISO 4217 (with minor units) nor
    /// the configuration knows.
    pub fn decimals(&self, currency: &Currency) -> Option<u8> {
        if let Some(decimals) = self.configured.get(currency) {
            return Some(*decimals);
        }
        let iso = iso_currency::Currency::from_code(currency.code())?;
        iso.exponent().and_then(|places| u8::try_from(places).ok())
    }
}

/// `minor` units as major units with `decimals` places: `12345` with 2 is `123.45`.
pub fn major_units(minor: i128, decimals: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let digits = minor.unsigned_abs().to_string();
    let places = usize::from(decimals);
    if places == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (whole, fraction) = padded.split_at(padded.len() - places);
    format!("{sign}{whole}.{fraction}")
}

/// Why a major-units amount was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MajorAmountError {
    /// Not a plain decimal number (digits, at most one point; no sign, exponent or spaces).
    Malformed,
    /// More decimal places than the currency has.
    TooManyDecimals,
    /// Zero.
    NotPositive,
    /// Beyond what an amount can hold.
    TooLarge,
}

/// Read `123.45` as minor units of a currency with `decimals` places (`12345` with 2). A
/// trailing point and trailing zeros past the places are refused as too many decimals only
/// when they carry a digit other than zero.
pub fn parse_major(text: &str, decimals: u8) -> Result<u64, MajorAmountError> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return Err(MajorAmountError::Malformed);
    }
    let places = usize::from(decimals);
    let significant = fraction.trim_end_matches('0');
    if significant.len() > places {
        return Err(MajorAmountError::TooManyDecimals);
    }
    let scaled = format!("{whole}{significant:0<places$}");
    let minor: u64 =
        scaled.trim_start_matches('0').parse().or_else(|error: std::num::ParseIntError| match error.kind() {
            std::num::IntErrorKind::Empty => Ok(0),
            _ => Err(MajorAmountError::TooLarge),
        })?;
    match minor {
        0 => Err(MajorAmountError::NotPositive),
        minor if minor > i64::MAX as u64 => Err(MajorAmountError::TooLarge),
        minor => Ok(minor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Currency {
        Currency::new(text).unwrap_or_else(|| panic!("{text} is a code"))
    }

    #[test]
    fn iso_places_with_configured_ones_on_top() {
        let table = Currencies::new(&BTreeMap::from([("BTC".to_owned(), 8), ("JPY".to_owned(), 2)]))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(table.decimals(&code("EUR")), Some(2));
        assert_eq!(table.decimals(&code("BHD")), Some(3));
        assert_eq!(table.decimals(&code("JPY")), Some(2));
        assert_eq!(table.decimals(&code("BTC")), Some(8));
        // Gold has no minor unit; an unknown code none at all.
        assert_eq!(table.decimals(&code("XAU")), None);
        assert_eq!(table.decimals(&code("QQQ")), None);
        assert!(Currencies::new(&BTreeMap::from([("btc".to_owned(), 8)])).is_err());
        assert!(Currencies::new(&BTreeMap::from([("BTC".to_owned(), 19)])).is_err());
    }

    #[test]
    fn minor_units_read_as_major_ones() {
        assert_eq!(major_units(12_345, 2), "123.45");
        assert_eq!(major_units(5, 2), "0.05");
        assert_eq!(major_units(-5, 3), "-0.005");
        assert_eq!(major_units(0, 2), "0.00");
        assert_eq!(major_units(700, 0), "700");
        assert_eq!(major_units(i128::from(i64::MAX), 18), "9.223372036854775807");
    }

    #[test]
    fn major_units_read_as_minor_ones_with_the_currencys_places() {
        assert_eq!(parse_major("1000.00", 2), Ok(100_000));
        assert_eq!(parse_major("123.4", 2), Ok(12_340));
        assert_eq!(parse_major("7", 2), Ok(700));
        assert_eq!(parse_major("0.05", 2), Ok(5));
        assert_eq!(parse_major("1.500", 2), Ok(150));
        assert_eq!(parse_major("700", 0), Ok(700));
        assert_eq!(parse_major("0.001", 2), Err(MajorAmountError::TooManyDecimals));
        assert_eq!(parse_major("1.5", 0), Err(MajorAmountError::TooManyDecimals));
        assert_eq!(parse_major("0.00", 2), Err(MajorAmountError::NotPositive));
        assert_eq!(parse_major("0", 2), Err(MajorAmountError::NotPositive));
        for malformed in ["", ".5", "1.", "-1", "+1", "1e3", " 1", "1,00", "1.2.3", "0x10", "１"] {
            assert_eq!(parse_major(malformed, 2), Err(MajorAmountError::Malformed), "{malformed:?}");
        }
        assert_eq!(parse_major("92233720368547758.07", 2), Ok(i64::MAX as u64));
        assert_eq!(parse_major("92233720368547758.08", 2), Err(MajorAmountError::TooLarge));
        assert_eq!(parse_major(&"9".repeat(40), 2), Err(MajorAmountError::TooLarge));
    }
}
