//! v4 records (reference §4) to the InvoiceNests records and back.
//!
//! - ids: v4's per-account integer `public_id` ↔ `{prefix}_{n}` (`inv_12`); `0` means none.
//! - timestamps: Unix ints ↔ RFC 3339. v4 keeps no creation time, so `created_at` is the last
//!   update (declared: the backend lacks `creation_order`).
//! - money: v4's JSON floats are read from their text (serde_json keeps it) into exact decimals
//!   and rounded half-up to the currency here, at the edge; decimals go out as JSON numbers
//!   written from their exact text.
//! - strings: v4 writes `""` for unset; that is `null` here.

use crate::lookup;
use crate::read::{Object, V};
use chrono::NaiveDate;
use nestgate_contract::money::round_amount;
use nestgate_contract::records::{
    Address, Client, Expense, Invoice, InvoiceStatus, LineItem, Payment, Product,
};
use nestgate_contract::{AdapterError, ErrorKind, Resource};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// `inv_12` for v4's invoice 12.
pub(crate) fn id(resource: Resource, public_id: i64) -> String {
    format!("{}_{public_id}", resource.id_prefix())
}

/// v4's public id inside one of our ids; anything else names no record of this backend.
pub(crate) fn public_id(resource: Resource, id: &str) -> Option<i64> {
    let digits = id.strip_prefix(resource.id_prefix())?.strip_prefix('_')?;
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// A decimal as a JSON number with exactly its digits (serde_json's `arbitrary_precision`).
pub(crate) use nestgate_contract::money::json_number as number;

fn text_or_empty(value: &Option<String>) -> Value {
    Value::from(value.clone().unwrap_or_default())
}

fn date_or_empty(value: Option<NaiveDate>) -> Value {
    Value::from(value.map(|d| d.to_string()).unwrap_or_default())
}

/// A record's currency from a v4 currency id, `0` (or one this table lacks) being the
/// organization's.
pub(crate) fn currency(id: i64, default: &str) -> String {
    lookup::currency_code(id).unwrap_or(default).to_string()
}

pub(crate) fn currency_id(code: &str, field: &str) -> Result<i64, AdapterError> {
    lookup::currency_id(code).ok_or_else(|| {
        AdapterError::field(field, "is not a currency this Invoice Ninja backend knows")
    })
}

// ---------------------------------------------------------------------------------------------
// Clients

/// The contact whose email and phone are the client's: the primary one, else the first.
fn primary_contact<'a, O: Object<'a>>(client: O) -> Option<O> {
    (client.each("contacts").find(|c| c.flag("is_primary")))
        .or_else(|| client.each("contacts").next())
}

/// A client, from a whole v4 client or a list row.
pub(crate) fn client<'a>(v: impl Object<'a>) -> Client {
    let contact = primary_contact(v);
    let address = Address {
        line1: v.text("address1"),
        line2: v.text("address2"),
        city: v.text("city"),
        state: v.text("state"),
        postal_code: v.text("postal_code"),
        country: lookup::country_code(v.int("country_id")).map(str::to_string),
    };
    let updated = v.time("updated_at");
    Client {
        id: id(Resource::Clients, v.int("id")),
        name: v.text("name").unwrap_or_default(),
        email: contact.and_then(|c| c.text("email")),
        phone: contact
            .and_then(|c| c.text("phone"))
            .or_else(|| v.text("work_phone")),
        address: (!address.is_empty()).then_some(address),
        tax_id: v.text("vat_number"),
        currency: lookup::currency_code(v.int("currency_id")).map(str::to_string),
        notes: v.text("private_notes"),
        created_at: updated,
        updated_at: updated,
        archived: v.is_archived(),
    }
}

/// The whole client for a v4 create or update. v4 deletes every contact an update omits, so
/// the update carries every existing contact with its id, the primary one changed.
pub(crate) fn client_body(client: &Client, stored: Option<V<'_>>) -> Result<Value, AdapterError> {
    let address = client.address.clone().unwrap_or_default();
    let country_id = match &address.country {
        Some(code) => lookup::country_id(code)
            .ok_or_else(|| AdapterError::field("address.country", "is not a known country"))?,
        None => 0,
    };
    let currency_id = match &client.currency {
        Some(code) => currency_id(code, "currency")?,
        // A currency this table cannot name reads as none; it is kept, never erased.
        None => stored
            .map(|s| s.int("currency_id"))
            .filter(|id| lookup::currency_code(*id).is_none())
            .unwrap_or(0),
    };
    let mut contacts: Vec<Value> = stored
        .map(|s| s.items("contacts").to_vec())
        .unwrap_or_default();
    let primary = contacts
        .iter()
        .position(|c| V(c).flag("is_primary"))
        .or((!contacts.is_empty()).then_some(0));
    let primary = match primary {
        Some(i) => &mut contacts[i],
        None => {
            contacts.push(json!({"is_primary": true}));
            contacts.last_mut().expect("just pushed")
        }
    };
    primary["email"] = text_or_empty(&client.email);
    primary["phone"] = text_or_empty(&client.phone);
    Ok(json!({
        "name": client.name,
        "address1": text_or_empty(&address.line1),
        "address2": text_or_empty(&address.line2),
        "city": text_or_empty(&address.city),
        "state": text_or_empty(&address.state),
        "postal_code": text_or_empty(&address.postal_code),
        "country_id": country_id,
        "vat_number": text_or_empty(&client.tax_id),
        "currency_id": currency_id,
        "private_notes": text_or_empty(&client.notes),
        "contacts": contacts,
    }))
}

// ---------------------------------------------------------------------------------------------
// Products

/// v4 products have a key and notes but no name: the name is kept in `custom_value1`. From a
/// whole v4 product or a list row.
pub(crate) fn product<'a>(v: impl Object<'a>, default_currency: &str) -> Product {
    let updated = v.time("updated_at");
    Product {
        id: id(Resource::Products, v.int("id")),
        key: v.text("product_key").unwrap_or_default(),
        name: v.text("custom_value1"),
        description: v.text("notes"),
        unit_price: Some(v.dec("cost").normalize()),
        tax_rate: Some(v.dec("tax_rate1").normalize()),
        // v4 prices products in the account's currency.
        currency: Some(default_currency.to_string()),
        created_at: updated,
        updated_at: updated,
        archived: v.is_archived(),
    }
}

pub(crate) fn product_body(product: &Product) -> Value {
    let tax_rate = product.tax_rate.unwrap_or_default();
    json!({
        "product_key": product.key,
        "notes": text_or_empty(&product.description),
        "custom_value1": text_or_empty(&product.name),
        "cost": number(product.unit_price.unwrap_or_default()),
        "qty": 1,
        "tax_name1": if tax_rate.is_zero() { "" } else { "Tax" },
        "tax_rate1": number(tax_rate),
    })
}

// ---------------------------------------------------------------------------------------------
// Invoices

/// Product keys to our product ids, to name the product of a line (v4 lines keep only the key).
pub(crate) type ProductIndex = HashMap<String, String>;

pub(crate) fn status(invoice_status_id: i64) -> InvoiceStatus {
    match invoice_status_id {
        2 | 4 => InvoiceStatus::Sent, // 4 is "approved", a quote state
        3 => InvoiceStatus::Viewed,
        5 => InvoiceStatus::Partial,
        6 => InvoiceStatus::Paid,
        _ => InvoiceStatus::Draft,
    }
}

/// Whether a v4 invoice is one of API.md's invoices: not a quote, not a recurring template.
pub(crate) fn is_plain_invoice(v: V<'_>) -> bool {
    v.int("invoice_type_id") != 2 && !v.flag("is_quote") && !v.flag("is_recurring")
}

/// An invoice; `currency` is its client's (v4 invoices have none of their own).
pub(crate) fn invoice(v: V<'_>, currency: &str, products: &ProductIndex) -> Invoice {
    let mut subtotal = round_amount(Decimal::ZERO, currency);
    let mut tax_total = subtotal;
    let line_items = v
        .items("invoice_items")
        .iter()
        .map(|item| {
            let item = V(item);
            let quantity = item.dec("qty");
            let unit_price = item.dec("cost");
            let tax_rate = item.dec("tax_rate1") + item.dec("tax_rate2");
            let amount = round_amount(quantity * unit_price, currency);
            subtotal += amount;
            tax_total += round_amount(amount * tax_rate / Decimal::ONE_HUNDRED, currency);
            let product_key = item.text("product_key");
            LineItem {
                product_id: product_key.as_ref().and_then(|k| products.get(k).cloned()),
                product_key,
                description: item.text("notes"),
                quantity: quantity.normalize(),
                unit_price: unit_price.normalize(),
                tax_rate: tax_rate.normalize(),
                amount,
            }
        })
        .collect();
    // The total and balance are v4's own: they include what v4 adds beyond lines (an invoice
    // discount, invoice-level taxes), which the lines alone cannot show.
    let total = round_amount(v.dec("amount"), currency);
    let balance = round_amount(v.dec("balance"), currency);
    let updated = v.time("updated_at");
    Invoice {
        id: id(Resource::Invoices, v.int("id")),
        number: v.text("invoice_number").unwrap_or_default(),
        client_id: id(Resource::Clients, v.int("client_id")),
        status: status(v.int("invoice_status_id")),
        currency: currency.to_string(),
        issue_date: v.date("invoice_date"),
        due_date: v.date("due_date"),
        line_items,
        subtotal,
        tax_total,
        total,
        amount_paid: round_amount(total - balance, currency),
        balance,
        notes: v.text("public_notes"),
        created_at: updated,
        updated_at: updated,
        archived: v.is_archived(),
    }
}

pub(crate) fn line_item_body(item: &LineItem) -> Value {
    json!({
        "product_key": item.product_key.clone().unwrap_or_default(),
        "notes": item.description.clone().unwrap_or_default(),
        "cost": number(item.unit_price),
        "qty": number(item.quantity),
        "tax_name1": if item.tax_rate.is_zero() { "" } else { "Tax" },
        "tax_rate1": number(item.tax_rate),
        "tax_name2": "",
        "tax_rate2": 0,
    })
}

/// The whole invoice for a v4 create or update. An update starts from the stored v4 object, so
/// what the gateway does not model (terms, footer, discounts, custom fields) is sent back as it
/// was: v4 resets `terms`, `invoice_footer` and `public_notes` when omitted, and fails on an
/// update without full items (reference §4, "Update an invoice").
pub(crate) fn invoice_body(
    invoice: &Invoice,
    stored: Option<V<'_>>,
    lines_changed: bool,
) -> Result<Value, AdapterError> {
    let mut body = match stored {
        Some(stored) => keep_fields(stored.0),
        None => Map::new(),
    };
    let client_id = public_id(Resource::Clients, &invoice.client_id)
        .ok_or_else(|| AdapterError::field("client_id", "does not exist"))?;
    body.insert("client_id".into(), client_id.into());
    if !invoice.number.is_empty() {
        body.insert("invoice_number".into(), invoice.number.clone().into());
    }
    body.insert("invoice_date".into(), date_or_empty(invoice.issue_date));
    body.insert("due_date".into(), date_or_empty(invoice.due_date));
    body.insert("public_notes".into(), text_or_empty(&invoice.notes));
    let items: Vec<Value> = match (stored, lines_changed) {
        // Unchanged lines go back exactly as v4 keeps them: discounts, task and fee lines,
        // second taxes and custom values included; only the item's own id and times are not
        // sent (v4 recreates items on every update).
        (Some(stored), false) => stored
            .items("invoice_items")
            .iter()
            .map(|item| {
                let mut item = item.clone();
                if let Some(map) = item.as_object_mut() {
                    for key in ["id", "updated_at", "archived_at", "account_key", "is_owner"] {
                        map.remove(key);
                    }
                }
                item
            })
            .collect(),
        _ => invoice.line_items.iter().map(line_item_body).collect(),
    };
    body.insert("invoice_items".into(), Value::Array(items));
    Ok(Value::Object(body))
}

/// The fields of a stored v4 invoice that an update must send back unchanged.
fn keep_fields(stored: &Value) -> Map<String, Value> {
    const KEPT: [&str; 18] = [
        "private_notes",
        "terms",
        "invoice_footer",
        "po_number",
        "discount",
        "is_amount_discount",
        "tax_name1",
        "tax_rate1",
        "tax_name2",
        "tax_rate2",
        "partial",
        "partial_due_date",
        "custom_value1",
        "custom_value2",
        "custom_text_value1",
        "custom_text_value2",
        "auto_bill",
        "invoice_design_id",
    ];
    KEPT.iter()
        .filter_map(|k| {
            let value = stored.get(*k)?;
            // `terms` and `po_number` may be null in v4's output; send them back as "".
            let value = if value.is_null() {
                Value::from("")
            } else {
                value.clone()
            };
            Some((k.to_string(), value))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Payments

/// A payment read with `include=invoice,client`: its client is its invoice's (v4 payments
/// carry no client_id of their own), and so is its currency. When v4 answered neither
/// relation, `client_id` is empty: 0 means "none" in v4, never a client, and the adapter reads
/// the invoice instead.
pub(crate) fn payment(v: V<'_>, default_currency: &str) -> Payment {
    let client = v.get("client");
    let currency = currency(client.int("currency_id"), default_currency);
    let client_id = [v.get("invoice").int("client_id"), client.int("id")]
        .into_iter()
        .find(|&n| n > 0)
        .map(|n| id(Resource::Clients, n))
        .unwrap_or_default();
    let updated = v.time("updated_at");
    Payment {
        id: id(Resource::Payments, v.int("id")),
        invoice_id: id(Resource::Invoices, v.int("invoice_id")),
        client_id,
        amount: round_amount(v.dec("amount"), &currency),
        date: v
            .date("payment_date")
            .unwrap_or_else(|| updated.date_naive()),
        method: lookup::payment_method(v.int("payment_type_id")).map(str::to_string),
        reference: v.text("transaction_reference"),
        currency,
        created_at: updated,
        updated_at: updated,
        archived: v.is_archived(),
    }
}

pub(crate) fn payment_type_id(method: &Option<String>) -> Result<i64, AdapterError> {
    match method {
        None => Ok(0),
        Some(method) => lookup::payment_type_id(method).ok_or_else(|| {
            AdapterError::field(
                "method",
                format!("must be one of {}", lookup::payment_methods()),
            )
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Expenses

/// An expense; vendors and categories are v4 records of their own, named here by `names`.
pub(crate) fn expense(v: V<'_>, default_currency: &str, names: &Names) -> Expense {
    let currency = currency(v.int("expense_currency_id"), default_currency);
    let client_id = v.int("client_id");
    let updated = v.time("updated_at");
    Expense {
        id: id(Resource::Expenses, v.int("id")),
        amount: round_amount(v.dec("amount"), &currency),
        date: v.date("expense_date"),
        vendor: names.vendors.get(&v.int("vendor_id")).cloned(),
        category: names.categories.get(&v.int("expense_category_id")).cloned(),
        client_id: (client_id > 0).then(|| id(Resource::Clients, client_id)),
        notes: v.text("private_notes"),
        currency,
        created_at: updated,
        updated_at: updated,
        archived: v.is_archived(),
    }
}

/// Vendor and expense-category names by v4 id.
#[derive(Default)]
pub(crate) struct Names {
    pub vendors: HashMap<i64, String>,
    pub categories: HashMap<i64, String>,
}

/// v4 fields for an expense's vendor or category: an existing one by id, or `-1` with a name,
/// which makes v4 create it (reference §4, Expense).
pub(crate) fn named_ref(
    field: &str,
    name: &Option<String>,
    existing: Option<i64>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let id_key = format!("{field}_id");
    match (name, existing) {
        (None, _) => {
            out.insert(id_key, 0.into());
        }
        (Some(_), Some(id)) => {
            out.insert(id_key, id.into());
        }
        (Some(name), None) => {
            out.insert(id_key, (-1).into());
            out.insert(format!("{field}_name"), name.clone().into());
        }
    }
    out
}

pub(crate) fn expense_body(expense: &Expense) -> Result<Map<String, Value>, AdapterError> {
    let client_id = match &expense.client_id {
        Some(id) => public_id(Resource::Clients, id)
            .ok_or_else(|| AdapterError::field("client_id", "does not exist"))?,
        None => 0,
    };
    let currency_id = currency_id(&expense.currency, "currency")?;
    let mut body = Map::new();
    body.insert("amount".into(), number(expense.amount));
    body.insert("expense_currency_id".into(), currency_id.into());
    body.insert("invoice_currency_id".into(), currency_id.into());
    body.insert("expense_date".into(), date_or_empty(expense.date));
    body.insert("client_id".into(), client_id.into());
    body.insert("private_notes".into(), text_or_empty(&expense.notes));
    Ok(body)
}

/// An answer that should be a v4 object but is not one.
pub(crate) fn garbled(what: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Upstream,
        format!("the upstream answered a {what} call with an unexpected shape"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn ids_round_trip_and_refuse_strangers() {
        assert_eq!(id(Resource::Invoices, 12), "inv_12");
        assert_eq!(public_id(Resource::Invoices, "inv_12"), Some(12));
        for bad in [
            "inv_",
            "inv_0",
            "cli_12",
            "inv_1x",
            "inv_-1",
            "12",
            "inv_99999999999999999",
        ] {
            assert_eq!(public_id(Resource::Invoices, bad), None, "{bad}");
        }
    }

    #[test]
    fn floats_become_exact_rounded_decimals() {
        let raw: Value = serde_json::from_str(
            r#"{"id": 3, "amount": 626.11, "balance": 626.11, "client_id": 1,
                "invoice_status_id": 1, "updated_at": 1763683200, "archived_at": null,
                "invoice_number": "0001", "invoice_date": "2026-11-01", "due_date": "",
                "invoice_items": [{"product_key": "", "notes": "a", "cost": 0.335, "qty": 3.0,
                                   "tax_rate1": 10.0, "tax_rate2": 0.0},
                                  {"product_key": "", "notes": "b", "cost": 1250.0, "qty": 0.5,
                                   "tax_rate1": 0.0, "tax_rate2": 0.0}]}"#,
        )
        .unwrap();
        let inv = invoice(V(&raw), "USD", &ProductIndex::new());
        assert_eq!(inv.line_items[0].amount.to_string(), "1.01");
        assert_eq!(inv.line_items[0].unit_price.to_string(), "0.335");
        assert_eq!(inv.subtotal.to_string(), "626.01");
        assert_eq!(inv.tax_total.to_string(), "0.10");
        assert_eq!(inv.total.to_string(), "626.11");
        assert_eq!(inv.amount_paid.to_string(), "0.00");
        assert_eq!(inv.due_date, None);
        assert_eq!(inv.updated_at.to_rfc3339(), "2025-11-21T00:00:00+00:00");
        assert_eq!(
            number(Decimal::from_str("0.10").unwrap()).to_string(),
            "0.1"
        );
    }
}
