//! Reading v4's list answers keeping only the fields the mapping reads. A v4 client carries
//! some 45 fields and the mapping reads 16: building the others into a `Value` tree was most of
//! a list's cost (docs/performance.md). The rows come out in the same `Value` shape, only
//! smaller, so the mapping reads them unchanged.

use nestgate_contract::Resource;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The fields of an object that are read; any other is skipped without being built.
pub(crate) struct Fields<'a>(pub &'a [(&'a str, Keep<'a>)]);

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

/// The fields a list of `resource` reads of each row; `None`: the whole rows (invoices, whose
/// mapping reads most of what v4 sends, nested items included).
pub(crate) fn of_rows(resource: Resource) -> Option<&'static Fields<'static>> {
    match resource {
        Resource::Clients => Some(&CLIENT),
        Resource::Products => Some(&PRODUCT),
        _ => None,
    }
}

/// A v4 list answer, `{"data": [...], "meta": {...}}`, its rows read as `row`.
pub(crate) fn list_page(bytes: &[u8], row: &Fields<'_>) -> serde_json::Result<Value> {
    let page = Fields(&[("data", Keep::Each(row)), ("meta", Keep::Whole)]);
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = Object(&page).deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// An object read as its fields (or `null`).
struct Object<'f>(&'f Fields<'f>);

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or null")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            match self.0.0.iter().find(|(name, _)| *name == key) {
                Some((name, Keep::Whole)) => {
                    object.insert(name.to_string(), map.next_value::<Value>()?);
                }
                Some((name, Keep::Each(fields))) => {
                    object.insert(name.to_string(), map.next_value_seed(Each(fields))?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// An array of objects, each read as its fields (or `null`).
struct Each<'f>(&'f Fields<'f>);

impl<'de> DeserializeSeed<'de> for Each<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Each<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects or null")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Object(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
}

/// An object's key, borrowed from the input unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
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
    use crate::mapping::{self, V};

    const PAGE: &[u8] = include_bytes!("../../../benches/fixtures/ninja-clients-page.json");

    #[test]
    fn a_pruned_page_maps_exactly_as_the_whole_page() {
        let whole: Value = serde_json::from_slice(PAGE).unwrap();
        let pruned = list_page(PAGE, &CLIENT).unwrap();
        assert_eq!(pruned["meta"], whole["meta"]);
        let rows = |page: &Value| page["data"].as_array().unwrap().clone();
        let (whole_rows, pruned_rows) = (rows(&whole), rows(&pruned));
        assert_eq!(whole_rows.len(), 20);
        assert_eq!(pruned_rows.len(), 20);
        for (w, p) in whole_rows.iter().zip(&pruned_rows) {
            assert_eq!(mapping::client(V(w)), mapping::client(V(p)));
            assert!(p.as_object().unwrap().len() < w.as_object().unwrap().len() / 2);
        }
    }

    #[test]
    fn odd_pages_read_as_the_whole_parse_would() {
        // No rows, null contacts, escaped keys, a key read twice (the last wins).
        let page = br#"{"data":[{"id":1,"contacts":null,"na\u006de":"x","name":"y"}],"meta":{}}"#;
        let pruned = list_page(page, &CLIENT).unwrap();
        assert_eq!(pruned["data"][0]["contacts"], Value::Null);
        assert_eq!(pruned["data"][0]["name"], "y");
        let empty = list_page(br#"{"data":[],"meta":{"pagination":{"total":0}}}"#, &CLIENT);
        assert_eq!(empty.unwrap()["data"], serde_json::json!([]));
        assert!(list_page(b"<html>", &CLIENT).is_err());
        assert!(list_page(br#"{"data":[1]}"#, &CLIENT).is_err());
    }
}
