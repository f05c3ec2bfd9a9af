//! Money and numbers: exact decimals in, exact decimals out.
//!
//! Input may be a JSON string or a JSON number; both are read from their text (serde_json's
//! `arbitrary_precision`), never through a binary float. Amounts are rounded half-up to the
//! currency's minor unit, which comes from ISO 4217 (2 places when the currency does not say).

use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// Parses a decimal from its text form: `"1250.00"`, `"-3"`, `"1e3"`.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    Decimal::from_str_exact(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

/// A decimal as an API client writes it inside a JSON string: an optional minus, digits, and
/// an optional fraction of at least one digit (`"1250.10"`, `"0.5"`, `"-3"`). Nothing else is a
/// number to the gateway: no spaces, `+`, `_`, exponent, or a point without digits on both
/// sides (`"10."`, `".5"`). A JSON number is already bounded by JSON's own grammar.
pub fn parse_plain_decimal(text: &str) -> Option<Decimal> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    parse_decimal(text)
}

/// Minor-unit places of an ISO 4217 currency (`JPY` 0, `USD` 2, `BHD` 3). Unknown or fund codes: 2.
pub fn minor_units(currency: &str) -> u32 {
    iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .map(u32::from)
        .unwrap_or(2)
}

/// Whether `code` is an ISO 4217 currency code.
pub fn is_currency(code: &str) -> bool {
    iso_currency::Currency::from_code(code).is_some()
}

/// Rounds an amount half-up (away from zero at the midpoint) to the currency's minor unit, and
/// fixes its scale so that `1250` prints as `"1250.00"`.
pub fn round_amount(value: Decimal, currency: &str) -> Decimal {
    let places = minor_units(currency);
    let mut rounded = value.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(places);
    rounded
}

/// A quantity or rate as the shortest exact text: `0.50` becomes `0.5`.
pub fn normalize(value: Decimal) -> Decimal {
    value.normalize()
}

/// A decimal as a JSON number written from its exact text (`1250.1`, never `1250.0999…`), for
/// upstreams that take money as JSON numbers.
pub fn json_number(value: Decimal) -> serde_json::Value {
    serde_json::Number::from_str(&value.normalize().to_string())
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// A JSON number or numeric string read exactly from its text; `None` for anything else.
pub fn from_json(value: &serde_json::Value) -> Option<Decimal> {
    match value {
        serde_json::Value::Number(n) => parse_decimal(&n.to_string()),
        serde_json::Value::String(s) => parse_decimal(s),
        _ => None,
    }
}

/// `Decimal::from_str` for literals in code and tests.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a decimal literal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_up_to_the_currency_minor_unit() {
        assert_eq!(round_amount(dec("2.345"), "USD").to_string(), "2.35");
        assert_eq!(round_amount(dec("-2.345"), "USD").to_string(), "-2.35");
        assert_eq!(round_amount(dec("2.5"), "JPY").to_string(), "3");
        assert_eq!(round_amount(dec("1.0005"), "BHD").to_string(), "1.001");
        assert_eq!(round_amount(dec("1250"), "EUR").to_string(), "1250.00");
    }

    #[test]
    fn json_numbers_round_trip_exactly() {
        let value = json_number(dec("1250.10"));
        assert_eq!(value.to_string(), "1250.1");
        let read: serde_json::Value = serde_json::from_str("0.30000000000000004").unwrap();
        assert_eq!(from_json(&read).unwrap().to_string(), "0.30000000000000004");
        assert_eq!(from_json(&serde_json::json!("8.875")), Some(dec("8.875")));
        assert_eq!(from_json(&serde_json::Value::Null), None);
    }

    #[test]
    fn parses_plain_and_scientific_text_exactly() {
        assert_eq!(parse_decimal("0.1").unwrap().to_string(), "0.1");
        for plain in ["1250.10", "0.5", "-3", "007", "10"] {
            assert!(parse_plain_decimal(plain).is_some(), "{plain}");
        }
        for odd in [
            "1_000", " 10", "10 ", "+5", "10.", ".5", "1e3", "", "-", "1.2.3", "0x10",
        ] {
            assert_eq!(parse_plain_decimal(odd), None, "{odd}");
        }
        assert_eq!(parse_decimal("1e3").unwrap(), dec("1000"));
        assert_eq!(
            parse_decimal("12.345678901234567890").unwrap().to_string(),
            "12.345678901234567890"
        );
        assert!(parse_decimal("abc").is_none());
        assert!(parse_decimal("").is_none());
        assert!(parse_decimal("NaN").is_none());
    }
}
