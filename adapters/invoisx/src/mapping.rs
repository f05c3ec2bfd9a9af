//! InvoisX objects (reference, "Buyer" and "Invoice") to the InvoiceNests records and back.
//!
//! - ids: InvoisX's ids (UUID strings; a number is accepted too) ↔ `{prefix}_{id}` (`cli_…`).
//! - buyers: snake_case at the top, camelCase `address`; `tin` ↔ `tax_id`, `contact.email` and
//!   `contact.phone` ↔ `email` and `phone`, `countryCode` (alpha-3) ↔ `country` (alpha-2), LHDN
//!   state codes passed through as they are.
//! - invoices: camelCase; `invoiceLines` ↔ `line_items`, the first `invoiceLineTaxes[].taxRate` ↔
//!   `tax_rate`, `erpIssuedAt` ↔ `issue_date`. Money is JSON numbers, read from their exact text
//!   and written from it, never through a binary float; the totals are InvoisX's own.
//! - timestamps: `created_at`/`updated_at` or `createdAt`/`updatedAt`, RFC 3339 or Laravel's
//!   `Y-m-d H:i:s` (UTC): the reference does not say which, so every one is read.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use nestgate_contract::money::{from_json, json_number, round_amount};
use nestgate_contract::records::{Address, Client, Invoice, InvoiceStatus, LineItem};
use nestgate_contract::{AdapterError, ErrorKind, Resource};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

/// LHDN tax types: "01" sales tax (5 % or 10 %), "02" service tax (6 % or 8 %), "06" not
/// applicable. The gateway has only a rate, so the type follows from it.
fn tax_type(rate: Decimal) -> &'static str {
    if rate.is_zero() {
        "06"
    } else if rate == Decimal::from(6) || rate == Decimal::from(8) {
        "02"
    } else {
        "01"
    }
}

/// Malaysia's offset, UTC+8 all year: the dates of an InvoisX invoice are Malaysian dates.
fn malaysia() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

/// A string field; `""` and `null` are unset.
pub(crate) fn text(raw: &Value, key: &str) -> Option<String> {
    match raw.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The first of several names a field may have, as a decimal.
fn amount(raw: &Value, names: &[&str]) -> Option<Decimal> {
    names
        .iter()
        .find_map(|name| raw.get(*name).and_then(from_json))
}

/// An id field (`id`, `buyerId`) as text: a UUID string, or a number.
pub(crate) fn id_text(raw: &Value, key: &str) -> Option<String> {
    match raw.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// InvoisX's id of a record, as text.
pub(crate) fn upstream_id_of(raw: &Value) -> Option<String> {
    id_text(raw, "id")
}

/// Our id of a record: `cli_` + InvoisX's id.
pub(crate) fn id(resource: Resource, upstream: &str) -> String {
    format!("{}_{upstream}", resource.id_prefix())
}

/// InvoisX's id from ours; `None` when it cannot name a record of `resource`. (The gateway has
/// already refused ids with anything but letters, digits, `-` and `_`, so the rest is safe in a
/// path.)
pub(crate) fn upstream_id(resource: Resource, id: &str) -> Option<&str> {
    id.strip_prefix(resource.id_prefix())?
        .strip_prefix('_')
        .filter(|rest| !rest.is_empty())
}

fn time(raw: &Value, snake: &str, camel: &str) -> Option<DateTime<Utc>> {
    let text = text(raw, snake).or_else(|| text(raw, camel))?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// `created_at` and `updated_at`; a record without them reads as created when last updated,
/// and one with neither as the Unix epoch (a stable value, unlike "now").
fn times(raw: &Value) -> (DateTime<Utc>, DateTime<Utc>) {
    let created = time(raw, "created_at", "createdAt");
    let updated = time(raw, "updated_at", "updatedAt");
    let updated = updated.or(created).unwrap_or_default();
    (created.unwrap_or(updated), updated)
}

/// ISO 3166 alpha-3 (InvoisX) to alpha-2 (the gateway).
pub(crate) fn alpha2(alpha3: &str) -> Option<String> {
    isocountry::CountryCode::for_alpha3_caseless(alpha3)
        .ok()
        .map(|c| c.alpha2().to_string())
}

/// ISO 3166 alpha-2 (the gateway, already validated) to alpha-3 (InvoisX).
pub(crate) fn alpha3(alpha2: &str) -> Option<&'static str> {
    isocountry::CountryCode::for_alpha2_caseless(alpha2)
        .ok()
        .map(|c| c.alpha3())
}

pub(crate) fn garbled(what: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Upstream,
        format!("the upstream answered a {what} call with an unexpected shape"),
    )
}

// ---------------------------------------------------------------------------------------------
// Buyers ↔ clients

pub(crate) fn client(raw: &Value) -> Result<Client, AdapterError> {
    let upstream = upstream_id_of(raw).ok_or_else(|| garbled("buyer"))?;
    let empty = Value::Null;
    let address = raw.get("address").unwrap_or(&empty);
    let contact = raw.get("contact").unwrap_or(&empty);
    let address = Address {
        line1: text(address, "line1"),
        line2: text(address, "line2"),
        city: text(address, "city"),
        state: text(address, "state"),
        postal_code: text(address, "postCode"),
        country: text(address, "countryCode").and_then(|c| alpha2(&c)),
    };
    let (created_at, updated_at) = times(raw);
    Ok(Client {
        id: id(Resource::Clients, &upstream),
        name: text(raw, "name").unwrap_or_default(),
        email: text(contact, "email"),
        phone: text(contact, "phone"),
        address: (!address.is_empty()).then_some(address),
        tax_id: text(raw, "tin"),
        currency: None,
        notes: None,
        created_at,
        updated_at,
        archived: false,
    })
}

/// The body of a `POST /buyers` or `PUT /buyers/{id}`. An update starts from the stored
/// `address` and `contact`, because InvoisX replaces each nested object whole: their fields the
/// gateway has no name for (`line3`, a contact's `name` and `fax`) are sent back as they were.
pub(crate) fn buyer_body(client: &Client, stored: Option<&Value>) -> Value {
    let nested = |key: &str| match stored.and_then(|s| s.get(key)) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let mut address = nested("address");
    let given = client.address.clone().unwrap_or_default();
    let stored_country = address
        .get("countryCode")
        .and_then(Value::as_str)
        .and_then(alpha2);
    for (key, value) in [
        ("line1", &given.line1),
        ("line2", &given.line2),
        ("city", &given.city),
        ("state", &given.state),
        ("postCode", &given.postal_code),
    ] {
        address.insert(key.into(), value.clone().into());
    }
    // A stored code the gateway could not read is left alone unless the client changed it.
    if given.country != stored_country {
        let code = given.country.as_deref().and_then(alpha3);
        address.insert("countryCode".into(), code.into());
    }
    let mut contact = nested("contact");
    contact.insert("email".into(), client.email.clone().into());
    contact.insert("phone".into(), client.phone.clone().into());
    let has_any = |map: &Map<String, Value>| map.values().any(|v| !v.is_null());
    json!({
        "name": client.name,
        "tin": client.tax_id,
        "address": has_any(&address).then_some(Value::Object(address)),
        "contact": has_any(&contact).then_some(Value::Object(contact)),
    })
}

// ---------------------------------------------------------------------------------------------
// Invoices

/// InvoisX's document states (`draft → validate → ready → submit → valid|invalid`, cancel) as
/// the gateway's. Until LHDN has accepted it, a document is not issued: a draft. Accepted or
/// submitted, it is sent; cancelled, void. The reference does not spell the values, so case and
/// the usual spellings are forgiven; an unknown one reads as a draft.
pub(crate) fn status(raw: &Value) -> InvoiceStatus {
    let text = text(raw, "status").unwrap_or_default().to_ascii_lowercase();
    match text.as_str() {
        "submitted" | "valid" | "validated_by_lhdn" | "accepted" | "sent" => InvoiceStatus::Sent,
        "cancelled" | "canceled" | "void" => InvoiceStatus::Void,
        _ => InvoiceStatus::Draft,
    }
}

/// A date from `erpIssuedAt`, as a date in Malaysia, however InvoisX writes the time back
/// (`+08:00` as sent, or Laravel's UTC `…T16:00:00.000000Z` the evening before).
fn issue_date(raw: &Value) -> Option<NaiveDate> {
    let text = text(raw, "erpIssuedAt")?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&malaysia()).date_naive())
        .ok()
        .or_else(|| NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok())
}

pub(crate) fn invoice(raw: &Value, default_currency: &str) -> Result<Invoice, AdapterError> {
    let upstream = upstream_id_of(raw).ok_or_else(|| garbled("invoice"))?;
    let currency = text(raw, "currencyCode").unwrap_or_else(|| default_currency.to_string());
    let lines = raw.get("invoiceLines").and_then(Value::as_array);
    let line_items = lines
        .into_iter()
        .flatten()
        .map(|line| LineItem {
            product_id: None,
            product_key: None,
            description: text(line, "productDescription"),
            quantity: amount(line, &["quantity"]).unwrap_or_default(),
            unit_price: amount(line, &["unitPrice"]).unwrap_or_default(),
            tax_rate: line
                .get("invoiceLineTaxes")
                .and_then(Value::as_array)
                .and_then(|taxes| taxes.first())
                .and_then(|tax| amount(tax, &["taxRate"]))
                .unwrap_or_default(),
            amount: Decimal::ZERO,
        })
        .collect();
    let (created_at, updated_at) = times(raw);
    let mut invoice = Invoice {
        id: id(Resource::Invoices, &upstream),
        number: text(raw, "invoiceSerialNumber").unwrap_or_default(),
        client_id: id_text(raw, "buyerId")
            .map(|b| id(Resource::Clients, &b))
            .unwrap_or_default(),
        status: status(raw),
        currency: currency.clone(),
        issue_date: issue_date(raw),
        due_date: None,
        line_items,
        subtotal: Decimal::ZERO,
        tax_total: Decimal::ZERO,
        total: Decimal::ZERO,
        amount_paid: Decimal::ZERO,
        balance: Decimal::ZERO,
        notes: None,
        created_at,
        updated_at,
        archived: false,
    };
    // Line amounts and, where InvoisX sent none, the totals are the gateway's arithmetic;
    // totals InvoisX did send are its own (they include its discounts and fees) and win.
    invoice.recompute();
    let theirs = |names: &[&str]| amount(raw, names).map(|a| round_amount(a, &currency));
    if let Some(subtotal) = theirs(&["totalExcludingTax", "totalNetAmount", "subtotal"]) {
        invoice.subtotal = subtotal;
    }
    if let Some(tax) = theirs(&["totalTaxAmount", "taxTotal", "taxAmount"]) {
        invoice.tax_total = tax;
    }
    if let Some(total) = theirs(&[
        "totalPayableAmount",
        "totalIncludingTax",
        "payableAmount",
        "total",
    ]) {
        invoice.total = total;
    }
    invoice.balance = invoice.total;
    Ok(invoice)
}

/// The body of a `POST /invoices` for a new draft. `buyer` is InvoisX's id of the client.
pub(crate) fn invoice_body(invoice: &Invoice, buyer: &str) -> Value {
    let lines: Vec<Value> = invoice
        .line_items
        .iter()
        .map(|line| {
            json!({
                "productDescription": line.description,
                "quantity": json_number(line.quantity),
                "unitPrice": json_number(line.unit_price),
                "invoiceLineTaxes": [{"taxType": tax_type(line.tax_rate), "taxRate": json_number(line.tax_rate)}],
            })
        })
        .collect();
    let mut body = json!({
        "buyerId": buyer,
        "invoiceSerialNumber": invoice.number,
        "currencyCode": invoice.currency,
        "autoCalculate": true,
        "invoiceLines": lines,
    });
    if let Some(date) = invoice.issue_date.and_then(|d| d.and_hms_opt(0, 0, 0)) {
        let midnight = date.and_local_timezone(malaysia()).single();
        body["erpIssuedAt"] = midnight.map(|t| t.to_rfc3339()).into();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use nestgate_contract::money::dec;

    #[test]
    fn ids_round_trip_and_refuse_other_resources() {
        let ours = id(Resource::Clients, "9b2f-41aa");
        assert_eq!(ours, "cli_9b2f-41aa");
        assert_eq!(upstream_id(Resource::Clients, &ours), Some("9b2f-41aa"));
        assert_eq!(upstream_id(Resource::Invoices, &ours), None);
        assert_eq!(upstream_id(Resource::Clients, "cli_"), None);
        assert_eq!(upstream_id(Resource::Clients, "cli_a_b"), Some("a_b"));
        assert_eq!(upstream_id(Resource::Clients, "client_x"), None);
    }

    #[test]
    fn a_buyer_reads_as_a_client() {
        let raw = json!({"id": "b-1", "name": "Syarikat", "tin": "C123", "id_type": "BRN",
            "address": {"line1": "1 Jalan", "line3": "Block A", "city": "KL", "state": "14",
                        "postCode": "50000", "countryCode": "MYS"},
            "contact": {"email": "a@b.my", "phone": "+60", "name": "Ali", "fax": null},
            "created_at": "2026-11-21T10:00:00.123456Z", "updated_at": "2026-11-21 11:00:00"});
        let client = client(&raw).unwrap();
        assert_eq!(client.id, "cli_b-1");
        assert_eq!(client.tax_id.as_deref(), Some("C123"));
        let address = client.address.clone().unwrap();
        assert_eq!(address.country.as_deref(), Some("MY"));
        assert_eq!(address.state.as_deref(), Some("14"));
        assert_eq!(address.postal_code.as_deref(), Some("50000"));
        assert_eq!(client.email.as_deref(), Some("a@b.my"));
        assert_eq!(
            client.created_at.to_rfc3339(),
            "2026-11-21T10:00:00.123456+00:00"
        );
        assert_eq!(client.updated_at.to_rfc3339(), "2026-11-21T11:00:00+00:00");

        // Sent back: what the gateway has no name for is kept; the country goes out as alpha-3.
        let mut changed = client.clone();
        changed.address.as_mut().unwrap().country = Some("SG".into());
        let body = buyer_body(&changed, Some(&raw));
        assert_eq!(body["address"]["line3"], "Block A");
        assert_eq!(body["address"]["countryCode"], "SGP");
        assert_eq!(body["contact"]["name"], "Ali");
        let body = buyer_body(&client, Some(&raw));
        assert_eq!(body["address"]["countryCode"], "MYS");
    }

    #[test]
    fn an_unreadable_country_is_kept_unless_changed() {
        let raw = json!({"id": "b", "name": "X", "address": {"countryCode": "XKX"}});
        let client = client(&raw).unwrap();
        assert_eq!(client.address, None);
        assert_eq!(
            buyer_body(&client, Some(&raw))["address"]["countryCode"],
            "XKX"
        );
    }

    #[test]
    fn an_invoice_reads_exactly_and_keeps_invoisx_totals() {
        let raw: Value = serde_json::from_str(
            r#"{"id": "i-1", "buyerId": "b-1", "invoiceSerialNumber": "INV-1", "currencyCode": "MYR",
                "status": "Valid", "erpIssuedAt": "2026-11-01T00:00:00+08:00",
                "invoiceLines": [{"productDescription": "a", "quantity": 3.0, "unitPrice": 0.335,
                                  "invoiceLineTaxes": [{"taxType": "01", "taxRate": 10.0}]},
                                 {"quantity": 0.5, "unitPrice": 1250.0, "discountRate": 10.0}],
                "totalExcludingTax": 563.51, "totalTaxAmount": 0.1, "totalPayableAmount": 563.61,
                "createdAt": "2026-11-21T10:00:00Z", "updatedAt": "2026-11-21T10:00:01Z"}"#,
        )
        .unwrap();
        let invoice = invoice(&raw, "USD").unwrap();
        assert_eq!(invoice.status, InvoiceStatus::Sent);
        assert_eq!(invoice.client_id, "cli_b-1");
        assert_eq!(invoice.issue_date, NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(invoice.line_items[0].unit_price, dec("0.335"));
        assert_eq!(invoice.line_items[0].tax_rate, dec("10"));
        assert_eq!(invoice.line_items[0].amount.to_string(), "1.01");
        assert_eq!(invoice.line_items[1].tax_rate, Decimal::ZERO);
        assert_eq!(invoice.subtotal.to_string(), "563.51");
        assert_eq!(invoice.total.to_string(), "563.61");
        assert_eq!(invoice.balance, invoice.total);
        assert!(invoice.created_at < invoice.updated_at);
    }

    #[test]
    fn an_invoice_without_totals_gets_the_gateways() {
        let raw = json!({"id": 7, "buyerId": "b", "invoiceSerialNumber": "N", "status": "draft",
                         "invoiceLines": [{"quantity": "2", "unitPrice": "10", "invoiceLineTaxes": []}]});
        let invoice = invoice(&raw, "USD").unwrap();
        assert_eq!(invoice.id, "inv_7");
        assert_eq!(invoice.currency, "USD");
        assert_eq!(invoice.total.to_string(), "20.00");
    }

    #[test]
    fn statuses_in_any_spelling() {
        for (text, status) in [
            ("draft", InvoiceStatus::Draft),
            ("READY", InvoiceStatus::Draft),
            ("invalid", InvoiceStatus::Draft),
            ("submitted", InvoiceStatus::Sent),
            ("Valid", InvoiceStatus::Sent),
            ("cancelled", InvoiceStatus::Void),
            ("canceled", InvoiceStatus::Void),
            ("something new", InvoiceStatus::Draft),
        ] {
            assert_eq!(super::status(&json!({"status": text})), status, "{text}");
        }
    }

    #[test]
    fn an_invoice_body_is_camel_case_with_exact_numbers() {
        let raw = json!({"id": "i", "buyerId": "b", "invoiceSerialNumber": "N", "currencyCode": "MYR",
                         "invoiceLines": [{"productDescription": "x", "quantity": "0.5", "unitPrice": "1250.10",
                                           "invoiceLineTaxes": [{"taxType": "02", "taxRate": "8"}]}]});
        let mut invoice = invoice(&raw, "MYR").unwrap();
        invoice.issue_date = NaiveDate::from_ymd_opt(2026, 11, 1);
        let body = invoice_body(&invoice, "b");
        assert_eq!(body["buyerId"], "b");
        assert_eq!(body["erpIssuedAt"], "2026-11-01T00:00:00+08:00");
        let line = &body["invoiceLines"][0];
        assert_eq!(line["unitPrice"].to_string(), "1250.1");
        assert_eq!(line["quantity"].to_string(), "0.5");
        assert_eq!(
            line["invoiceLineTaxes"][0]["taxType"], "02",
            "8 % is service tax"
        );
        assert_eq!(line["invoiceLineTaxes"][0]["taxRate"].to_string(), "8");
        assert_eq!(tax_type(Decimal::from(10)), "01");
        assert_eq!(tax_type(Decimal::ZERO), "06");
    }

    #[test]
    fn an_issue_date_is_a_malaysian_date_in_any_offset() {
        for written in [
            "2026-11-01T00:00:00+08:00",
            "2026-10-31T16:00:00.000000Z",
            "2026-11-01",
        ] {
            let raw = json!({"id": "i", "erpIssuedAt": written});
            assert_eq!(
                issue_date(&raw),
                NaiveDate::from_ymd_opt(2026, 11, 1),
                "{written}"
            );
        }
    }

    #[test]
    fn numeric_ids_are_ids() {
        let raw = json!({"id": 12, "buyerId": 7, "invoiceSerialNumber": "N"});
        let invoice = invoice(&raw, "MYR").unwrap();
        assert_eq!(
            (invoice.id.as_str(), invoice.client_id.as_str()),
            ("inv_12", "cli_7")
        );
    }
}
