//! Reading one v4 object's fields leniently, the way v4's own output needs: numbers that come
//! as strings, `""` for unset, `null` or `0` for false.
//!
//! A field is read the same way whatever holds the object: a whole `Value` tree ([`V`], for
//! single records and writes), or a list row kept as borrowed raw text (`fields::Row`, a list's
//! fast path). Both hand out a [`Scalar`] and share every reader below, so the mapping is written
//! once and cannot read the two differently.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use nestgate_contract::money::parse_decimal;
use rust_decimal::Decimal;
use serde_json::Value;
use std::borrow::Cow;

/// One field of a v4 object, as JSON wrote it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// Absent or `null`.
    Null,
    Bool(bool),
    /// A number's text, exactly as written (`626.11`, `1e3`).
    Number(&'a str),
    Text(Cow<'a, str>),
    /// An object or an array.
    Nested,
}

/// An object whose fields are read leniently; every reader is written once, here.
pub(crate) trait Object<'a>: Copy {
    /// The field named `key`.
    fn field(self, key: &str) -> Scalar<'a>;

    /// The objects of an array field (none when it is absent, `null` or not an array).
    fn each(self, key: &str) -> impl Iterator<Item = Self>;

    /// A string field; `""` and `null` are unset.
    fn text(self, key: &str) -> Option<String> {
        match self.field(key) {
            Scalar::Text(s) if !s.trim().is_empty() => Some(s.into_owned()),
            _ => None,
        }
    }

    fn int(self, key: &str) -> i64 {
        match self.field(key) {
            Scalar::Number(n) => n
                .parse()
                .ok()
                .or_else(|| finite(n).map(|f| f as i64))
                .unwrap_or(0),
            Scalar::Text(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// A money or quantity field, exactly as v4 wrote it.
    fn dec(self, key: &str) -> Decimal {
        match self.field(key) {
            Scalar::Number(n) => parse_decimal(n),
            Scalar::Text(s) => parse_decimal(&s),
            _ => None,
        }
        .unwrap_or_default()
    }

    fn flag(self, key: &str) -> bool {
        match self.field(key) {
            Scalar::Bool(b) => b,
            Scalar::Number(n) => n.parse::<i64>().unwrap_or(0) != 0,
            _ => false,
        }
    }

    fn date(self, key: &str) -> Option<NaiveDate> {
        self.text(key)
            .and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
    }

    fn time(self, key: &str) -> DateTime<Utc> {
        Utc.timestamp_opt(self.int(key), 0)
            .single()
            .unwrap_or_default()
    }

    /// Soft-deleted with `is_deleted`: gone, as far as a client of the gateway can tell.
    fn is_deleted(self) -> bool {
        self.flag("is_deleted")
    }

    /// Archived (trashed) but not deleted.
    fn is_archived(self) -> bool {
        self.field("archived_at") != Scalar::Null && !self.is_deleted()
    }
}

/// A number's text as a finite float (what serde_json's `as_f64` does with it).
fn finite(number: &str) -> Option<f64> {
    number.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A v4 object held as a whole `Value` tree.
#[derive(Clone, Copy)]
pub(crate) struct V<'a>(pub &'a Value);

impl<'a> V<'a> {
    /// A nested object field (`null` when absent).
    pub fn get(self, key: &str) -> V<'a> {
        static NULL: Value = Value::Null;
        V(self.0.get(key).unwrap_or(&NULL))
    }

    pub fn items(self, key: &str) -> &'a [Value] {
        self.0
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

impl<'a> Object<'a> for V<'a> {
    fn field(self, key: &str) -> Scalar<'a> {
        match self.0.get(key) {
            None | Some(Value::Null) => Scalar::Null,
            Some(Value::Bool(b)) => Scalar::Bool(*b),
            // `arbitrary_precision` keeps the number's text.
            Some(Value::Number(n)) => Scalar::Number(n.as_str()),
            Some(Value::String(s)) => Scalar::Text(Cow::Borrowed(s)),
            Some(Value::Array(_) | Value::Object(_)) => Scalar::Nested,
        }
    }

    fn each(self, key: &str) -> impl Iterator<Item = V<'a>> {
        self.items(key).iter().map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_read_as_v4_writes_them() {
        let raw = json!({"n": "12", "f": 3.9, "e": 1e3, "s": " ", "t": "x", "b": 1, "z": 0,
                         "d": "2026-11-01", "bad": "11/01/2026", "a": null, "m": "0.335"});
        let v = V(&raw);
        assert_eq!(
            (v.int("n"), v.int("f"), v.int("e"), v.int("t")),
            (12, 3, 1000, 0)
        );
        assert_eq!(
            (v.text("s"), v.text("t"), v.text("a")),
            (None, Some("x".into()), None)
        );
        assert_eq!(
            (v.flag("b"), v.flag("z"), v.flag("absent")),
            (true, false, false)
        );
        assert_eq!(v.date("d"), NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(v.date("bad"), None);
        assert_eq!(v.dec("m").to_string(), "0.335");
        assert!(!v.is_archived());
        assert!(V(&json!({"archived_at": 5})).is_archived());
        assert!(!V(&json!({"archived_at": 5, "is_deleted": true})).is_archived());
    }
}
