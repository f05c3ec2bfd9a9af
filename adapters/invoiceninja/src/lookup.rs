//! v4's lookup tables, which its records name by integer id only.
//!
//! - Currencies: v4 numbers them in the order its `CurrenciesSeeder` first inserted them (ids
//!   are never renumbered; later currencies are appended). An id beyond this table reads as
//!   "no currency", so the organization's default applies.
//! - Countries: v4's country id is the ISO 3166-1 numeric code (`840` is the US).
//! - Payment types: the order of `PaymentTypesSeeder` (reference §4), named here in snake case.

use isocountry::CountryCode;

/// v4 currency ids 1, 2, 3… in order.
const CURRENCIES: [&str; 73] = [
    "USD", "GBP", "EUR", "ZAR", "DKK", "ILS", "SEK", "KES", "CAD", "PHP", "INR", "AUD", "SGD",
    "NOK", "NZD", "VND", "CHF", "GTQ", "MYR", "BRL", "THB", "NGN", "ARS", "BDT", "AED", "HKD",
    "IDR", "MXN", "EGP", "COP", "XOF", "CNY", "RWF", "TZS", "ANG", "TTD", "XCD", "GHS", "BGN",
    "AWG", "TRY", "RON", "HRK", "SAR", "JPY", "MVR", "CRC", "PKR", "PLN", "LKR", "CZK", "UYU",
    "NAD", "TND", "RUB", "MZN", "OMR", "UAH", "MOP", "TWD", "DOP", "CLP", "ISK", "PGK", "JOD",
    "MMK", "PEN", "BWP", "HUF", "UGX", "BBD", "BND", "GEL",
];

/// v4 payment type ids 1, 2, 3… in order.
const PAYMENT_TYPES: [&str; 33] = [
    "apply_credit",
    "bank_transfer",
    "cash",
    "debit",
    "ach",
    "visa",
    "mastercard",
    "amex",
    "discover",
    "diners",
    "eurocard",
    "nova",
    "credit_card_other",
    "paypal",
    "google_wallet",
    "check",
    "carte_blanche",
    "unionpay",
    "jcb",
    "laser",
    "maestro",
    "solo",
    "switch",
    "izettle",
    "swish",
    "venmo",
    "money_order",
    "alipay",
    "sofort",
    "sepa",
    "gocardless",
    "bitcoin",
    "zelle",
];

/// Words a client may use for a payment method, beyond the names above.
const METHOD_ALIASES: [(&str, &str); 5] = [
    ("bank", "bank_transfer"),
    ("transfer", "bank_transfer"),
    ("cheque", "check"),
    ("card", "credit_card_other"),
    ("credit_card", "credit_card_other"),
];

pub fn currency_code(id: i64) -> Option<&'static str> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    CURRENCIES.get(index).copied()
}

pub fn currency_id(code: &str) -> Option<i64> {
    CURRENCIES
        .iter()
        .position(|c| *c == code)
        .map(|i| i as i64 + 1)
}

pub fn country_code(id: i64) -> Option<&'static str> {
    let id = u32::try_from(id).ok().filter(|id| *id > 0)?;
    CountryCode::for_id(id).ok().map(|c| c.alpha2())
}

pub fn country_id(alpha2: &str) -> Option<i64> {
    CountryCode::for_alpha2(alpha2)
        .ok()
        .map(|c| i64::from(c.numeric_id()))
}

pub fn payment_method(id: i64) -> Option<&'static str> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    PAYMENT_TYPES.get(index).copied()
}

/// A method as a client wrote it (`"Bank Transfer"`, `"bank"`, `"visa"`) to v4's type id.
pub fn payment_type_id(method: &str) -> Option<i64> {
    let word = method.trim().to_lowercase().replace([' ', '-'], "_");
    let word = METHOD_ALIASES
        .iter()
        .find(|(alias, _)| *alias == word)
        .map(|(_, name)| *name)
        .unwrap_or(&word);
    PAYMENT_TYPES
        .iter()
        .position(|t| *t == word)
        .map(|i| i as i64 + 1)
}

/// For the `422` that names what is accepted.
pub fn payment_methods() -> String {
    PAYMENT_TYPES.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_codes_go_both_ways() {
        assert_eq!(currency_code(1), Some("USD"));
        assert_eq!(currency_code(45), Some("JPY"));
        assert_eq!(currency_id("EUR"), Some(3));
        assert_eq!(currency_code(0), None);
        assert_eq!(country_code(840), Some("US"));
        assert_eq!(country_id("NO"), Some(578));
        assert_eq!(payment_type_id("Bank Transfer"), Some(2));
        assert_eq!(payment_type_id("bank"), Some(2));
        assert_eq!(payment_method(16), Some("check"));
        assert_eq!(payment_type_id("barter"), None);
    }
}
