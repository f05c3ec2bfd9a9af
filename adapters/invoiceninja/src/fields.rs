//! Reading v4's list answers keeping only the fields the mapping reads, without copying them.
//! A v4 client carries some 45 fields and the mapping reads 16: building all of them into a
//! `Value` tree was most of a list's cost (docs/performance.md). Here the other fields are
//! skipped unbuilt, and each kept one stays a slice of the answer's text until the mapping reads
//! it, through the same lenient readers as a `Value` (`read::Object`).

use crate::read::{self, Object as _, Scalar, V};
use nestgate_contract::Resource;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The fields of an object that are read; any other is skipped without being built.
pub(crate) struct Fields<'a>(pub &'a [(&'static str, Keep<'a>)]);

pub(crate) enum Keep<'a> {
    /// The value, whole.
    Whole,
    /// An array of objects, each read as these fields.
    Each(&'a Fields<'a>),
}

/// What `mapping::client` reads of a v4 client.
pub(crate) const CLIENT: Fields<'static> = Fields(&[
    ("id", Keep::Whole),
    ("name", Keep::Whole),
    ("contacts", Keep::Each(&CONTACT)),
    ("address1", Keep::Whole),
    ("address2", Keep::Whole),
    ("city", Keep::Whole),
    ("state", Keep::Whole),
    ("postal_code", Keep::Whole),
    ("country_id", Keep::Whole),
    ("work_phone", Keep::Whole),
    ("vat_number", Keep::Whole),
    ("currency_id", Keep::Whole),
    ("private_notes", Keep::Whole),
    ("updated_at", Keep::Whole),
    ("archived_at", Keep::Whole),
    ("is_deleted", Keep::Whole),
]);

/// What `mapping::client` reads of a client's contacts (the primary one's email and phone).
const CONTACT: Fields<'static> = Fields(&[
    ("email", Keep::Whole),
    ("phone", Keep::Whole),
    ("is_primary", Keep::Whole),
]);

/// What `mapping::product` reads of a v4 product.
pub(crate) const PRODUCT: Fields<'static> = Fields(&[
    ("id", Keep::Whole),
    ("product_key", Keep::Whole),
    ("custom_value1", Keep::Whole),
    ("notes", Keep::Whole),
    ("cost", Keep::Whole),
    ("tax_rate1", Keep::Whole),
    ("updated_at", Keep::Whole),
    ("archived_at", Keep::Whole),
    ("is_deleted", Keep::Whole),
]);

/// The fields a list of `resource` reads of each row; `None`: the whole rows are read into a
/// `Value` (invoices, whose mapping reads most of what v4 sends, nested items included).
pub(crate) fn of_rows(resource: Resource) -> Option<&'static Fields<'static>> {
    match resource {
        Resource::Clients => Some(&CLIENT),
        Resource::Products => Some(&PRODUCT),
        _ => None,
    }
}

/// One page of a v4 list answer: its rows, kept as the fields `row` names, and the total.
pub(crate) struct Page<'de> {
    pub rows: Vec<Row<'de>>,
    pub total: u64,
}

/// A v4 list answer, `{"data": [...], "meta": {...}}`, its rows read as `row`. Nothing is
/// copied: every kept field stays the raw text of its value, read when the mapping asks.
pub(crate) fn list_page<'de>(bytes: &'de [u8], row: &Fields<'_>) -> serde_json::Result<Page<'de>> {
    // Checked as UTF-8 once, as a whole (read from bytes, serde_json would check string by
    // string); a page with invalid UTF-8 anywhere is refused, as a `Value` parse refuses it.
    let text = std::str::from_utf8(bytes).map_err(serde::de::Error::custom)?;
    let page = Fields(&[("data", Keep::Each(row)), ("meta", Keep::Whole)]);
    let mut reader = serde_json::Deserializer::from_str(text);
    let envelope = Object(&page).deserialize(&mut reader)?;
    reader.end()?;
    let meta = match envelope.kept("meta") {
        Some(Kept::Raw(raw)) => serde_json::from_str(raw.get())?,
        _ => Value::Null,
    };
    let total = V(&meta).get("pagination").int("total").max(0) as u64;
    let rows = match envelope.into_kept("data") {
        Some(Kept::Rows(Some(rows))) => rows,
        _ => Vec::new(),
    };
    Ok(Page { rows, total })
}

/// One object, as the fields that were asked for.
#[derive(Debug, Default)]
pub(crate) struct Row<'de>(Vec<(&'static str, Kept<'de>)>);

#[derive(Debug)]
enum Kept<'de> {
    /// The value's JSON text.
    Raw(&'de RawValue),
    /// An array of objects, or `None` for `null`.
    Rows(Option<Vec<Row<'de>>>),
}

impl<'de> Row<'de> {
    fn kept(&self, key: &str) -> Option<&Kept<'de>> {
        // The last wins when a key is repeated, as in a `Value`.
        self.0
            .iter()
            .rev()
            .find(|(name, _)| *name == key)
            .map(|(_, kept)| kept)
    }

    fn into_kept(self, key: &str) -> Option<Kept<'de>> {
        self.0
            .into_iter()
            .rev()
            .find(|(name, _)| *name == key)
            .map(|(_, kept)| kept)
    }
}

impl<'a, 'de: 'a> read::Object<'a> for &'a Row<'de> {
    fn field(self, key: &str) -> Scalar<'a> {
        match self.kept(key) {
            None | Some(Kept::Rows(None)) => Scalar::Null,
            Some(Kept::Rows(Some(_))) => Scalar::Nested,
            Some(Kept::Raw(raw)) => scalar(raw.get()),
        }
    }

    fn each(self, key: &str) -> impl Iterator<Item = &'a Row<'de>> {
        match self.kept(key) {
            Some(Kept::Rows(Some(rows))) => rows.as_slice(),
            _ => &[],
        }
        .iter()
    }
}

/// A value's JSON text as a field; a string is only copied when it holds an escape.
fn scalar(json: &str) -> Scalar<'_> {
    match json.as_bytes().first() {
        Some(b'"') => {
            let inner = &json[1..json.len() - 1];
            if inner.contains('\\') {
                // Decodes: `kept_raw` refused the page if it would not.
                serde_json::from_str(json).map_or(Scalar::Null, |s| Scalar::Text(Cow::Owned(s)))
            } else {
                Scalar::Text(Cow::Borrowed(inner))
            }
        }
        Some(b't') => Scalar::Bool(true),
        Some(b'f') => Scalar::Bool(false),
        Some(b'-' | b'0'..=b'9') => Scalar::Number(json),
        Some(b'{' | b'[') => Scalar::Nested,
        _ => Scalar::Null,
    }
}

/// A kept value's text, refused as a `Value` parse would refuse it. Skipping over a string does
/// not decode its escapes, so one that holds any (a lone surrogate, say) is decoded here once.
fn kept_raw<E: de::Error>(raw: &RawValue) -> Result<&RawValue, E> {
    let json = raw.get();
    if json.starts_with('"') && json.contains('\\') {
        serde_json::from_str::<String>(json).map_err(E::custom)?;
    }
    Ok(raw)
}

/// An object read as its fields (or `null`, read as no fields).
struct Object<'f>(&'f Fields<'f>);

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = Row<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Row<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = Row<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or null")
    }

    fn visit_unit<E>(self) -> Result<Row<'de>, E> {
        Ok(Row::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<'de>, A::Error> {
        let mut row = Vec::with_capacity(self.0.0.len());
        while let Some(Key(key)) = map.next_key()? {
            match self.0.0.iter().find(|(name, _)| *name == key) {
                Some((name, Keep::Whole)) => {
                    row.push((*name, Kept::Raw(kept_raw(map.next_value()?)?)));
                }
                Some((name, Keep::Each(fields))) => {
                    row.push((*name, Kept::Rows(map.next_value_seed(Each(fields))?)));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Row(row))
    }
}

/// An array of objects, each read as its fields (or `null`).
struct Each<'f>(&'f Fields<'f>);

impl<'de> DeserializeSeed<'de> for Each<'_> {
    type Value = Option<Vec<Row<'de>>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Each<'_> {
    type Value = Option<Vec<Row<'de>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects or null")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(row) = seq.next_element_seed(Object(self.0))? {
            rows.push(row);
        }
        Ok(Some(rows))
    }
}

/// An object's key, borrowed from the input unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping;

    const PAGE: &[u8] = include_bytes!("../../../benches/fixtures/ninja-clients-page.json");

    #[test]
    fn a_kept_page_maps_exactly_as_the_whole_page() {
        let whole: Value = serde_json::from_slice(PAGE).unwrap();
        let kept = list_page(PAGE, &CLIENT).unwrap();
        assert_eq!(
            kept.total,
            whole["meta"]["pagination"]["total"].as_u64().unwrap()
        );
        let whole_rows = whole["data"].as_array().unwrap();
        assert_eq!((whole_rows.len(), kept.rows.len()), (20, 20));
        for (w, k) in whole_rows.iter().zip(&kept.rows) {
            assert_eq!(mapping::client(V(w)), mapping::client(k));
            assert!(k.0.len() < w.as_object().unwrap().len() / 2);
        }
    }

    /// Every reader gives the same answer from kept raw text as from a `Value`, on the odd
    /// values v4 writes.
    #[test]
    fn kept_fields_read_as_a_value_reads_them() {
        let rows = [
            r#"{"id": "7", "name": "Caf\u00e9 \"A\"", "city": "", "state": null, "updated_at": 1.7e9,
                "country_id": -3, "currency_id": true, "archived_at": 1763683200,
                "is_deleted": 0, "work_phone": " ", "vat_number": 12.50, "private_notes": {},
                "postal_code": [1], "contacts": [{"email": "a@b.c", "is_primary": 1},
                                                 {"phone": "\n", "is_primary": false}]}"#,
            r#"{"id": 1e2, "name": "x", "updated_at": "1763683200", "archived_at": "",
                "is_deleted": true, "currency_id": "2", "contacts": null}"#,
            r#"{"id": 3.99, "address1": "\ud83d\ude00", "is_deleted": "1", "contacts": []}"#,
        ];
        let page = format!(r#"{{"data": [{}], "meta": null}}"#, rows.join(","));
        let kept = list_page(page.as_bytes(), &CLIENT).unwrap();
        let whole: Value = serde_json::from_str(&page).unwrap();
        let readers = |a: V<'_>, b: &Row<'_>, key: &str| {
            // The number's text may differ (`1.7e9` is kept as written; a `Value` writes
            // `1.7e+9`), never what a reader makes of it.
            assert_eq!(a.text(key), b.text(key), "{key}");
            assert_eq!(a.int(key), b.int(key), "{key}");
            assert_eq!(a.dec(key), b.dec(key), "{key}");
            assert_eq!(a.flag(key), b.flag(key), "{key}");
            assert_eq!(a.time(key), b.time(key), "{key}");
        };
        for (w, k) in whole["data"].as_array().unwrap().iter().zip(&kept.rows) {
            for (key, _) in CLIENT.0.iter().chain([("absent", Keep::Whole)].iter()) {
                readers(V(w), k, key);
            }
            assert_eq!(V(w).is_archived(), k.is_archived());
            assert_eq!(V(w).field("contacts"), k.field("contacts"));
            let (a, b): (Vec<_>, Vec<_>) = (
                V(w).each("contacts").collect(),
                k.each("contacts").collect(),
            );
            assert_eq!(a.len(), b.len());
            for (a, b) in a.into_iter().zip(b) {
                for (key, _) in CONTACT.0 {
                    readers(a, b, key);
                }
            }
            assert_eq!(mapping::client(V(w)), mapping::client(k));
        }
        assert_eq!(kept.rows[0].text("name").as_deref(), Some("Café \"A\""));
        assert_eq!(kept.rows[0].int("updated_at"), 1_700_000_000);
        assert_eq!(kept.total, 0);
    }

    #[test]
    fn odd_pages_read_as_the_whole_parse_would() {
        // An escaped key, a key read twice (the last wins).
        let page = br#"{"data":[{"id":1,"na\u006de":"x","name":"y"}],"meta":{}}"#;
        let kept = list_page(page, &CLIENT).unwrap();
        assert_eq!(kept.rows[0].text("name").as_deref(), Some("y"));
        let empty = list_page(br#"{"data":[],"meta":{"pagination":{"total":3}}}"#, &CLIENT);
        let empty = empty.unwrap();
        assert_eq!((empty.rows.len(), empty.total), (0, 3));
        assert!(list_page(b"<html>", &CLIENT).is_err());
        assert!(list_page(br#"{"data":[1]}"#, &CLIENT).is_err());
        assert!(list_page(b"{\"data\":[{\"name\":\"\xff\"}]}", &CLIENT).is_err());
        assert!(list_page(br#"{"data":[]} trailing"#, &CLIENT).is_err());
        // A kept string that does not decode is refused, as a `Value` parse refuses it.
        let lone_surrogate = br#"{"data":[{"id":1,"name":"\ud800"}],"meta":{}}"#;
        assert!(serde_json::from_slice::<Value>(lone_surrogate).is_err());
        assert!(list_page(lone_surrogate, &CLIENT).is_err());
    }
}
