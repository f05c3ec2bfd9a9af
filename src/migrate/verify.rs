//! Verification, the product of a migration: counts per resource, money totals per currency on
//! both sides, and every record compared field by field through the id map.
//!
//! Left out of the comparison: what the target assigns itself (`id`, `created_at`,
//! `updated_at`), fields the target declares it cannot keep (reported as `not_migratable`), and
//! a number or key the target refused as taken (reported as `renumbered`). References are
//! compared as the source ids they stand for; money is compared as decimals.

use super::copy::{ASSIGNED, ORDER};
use super::idmap::IdMap;
use super::report::{Difference, Report};
use super::side::{Side, Stop};
use nestgate_contract::{Record, Resource};
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// Fields holding decimals: `"10.5"` and `"10.50"` are the same amount.
const DECIMALS: &[&str] = &[
    "amount",
    "quantity",
    "unit_price",
    "tax_rate",
    "subtotal",
    "tax_total",
    "total",
    "amount_paid",
    "balance",
];

/// Whether two values of `field` are the same (decimals by value).
pub fn same_value(field: &str, a: Option<&Value>, b: Option<&Value>) -> bool {
    let null = Value::Null;
    let (a, b) = (a.unwrap_or(&null), b.unwrap_or(&null));
    if DECIMALS.contains(&field)
        && let (Some(x), Some(y)) = (decimal(a), decimal(b))
    {
        return x == y;
    }
    a == b
}

/// A decimal as one text whatever its trailing zeros (`"10.50"` and `10.5` read `10.5`).
pub(super) fn canonical_decimal(value: &Value) -> Option<String> {
    decimal(value).map(|d| d.normalize().to_string())
}

fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// Adds a record's money to the totals of one side.
pub fn add_money(report: &mut Report, record: &Record, source: bool) {
    let (currency, entries): (&str, Vec<(&str, Decimal)>) = match record {
        Record::Invoice(i) => (
            &i.currency,
            vec![("invoices_total", i.total), ("invoices_balance", i.balance)],
        ),
        Record::Payment(p) => (&p.currency, vec![("payments_amount", p.amount)]),
        Record::Expense(e) => (&e.currency, vec![("expenses_amount", e.amount)]),
        _ => return,
    };
    let money = report.money(currency);
    for (what, amount) in entries {
        let sides = match what {
            "invoices_total" => &mut money.invoices_total,
            "invoices_balance" => &mut money.invoices_balance,
            "payments_amount" => &mut money.payments_amount,
            _ => &mut money.expenses_amount,
        };
        if source {
            sides.source += amount;
        } else {
            sides.target += amount;
        }
    }
}

/// Every field path where `a` and `b` differ.
fn diff(path: &str, field: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let inner = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let null = Value::Null;
                diff(
                    &inner,
                    key,
                    x.get(key).unwrap_or(&null),
                    y.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (a, b)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), field, a, b, out);
            }
        }
        _ => {
            if !same_value(field, Some(a), Some(b)) {
                out.push(path.to_string());
            }
        }
    }
}

/// A record as compared: without what the target assigns, and with the defaults an empty field
/// stands for filled in (a vendor fills them where the source left them empty): a product
/// without a currency is in the organization's currency, and one without a price or tax rate
/// has 0.
fn canonical(record: &Record, currency: &str) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Value::Object(map) = &mut value {
        for field in ASSIGNED {
            map.remove(*field);
        }
        if record.resource() == Resource::Products {
            for (field, default) in [
                ("currency", currency),
                ("unit_price", "0"),
                ("tax_rate", "0"),
            ] {
                if map.get(field).is_none_or(Value::is_null) {
                    map.insert(field.into(), Value::String(default.into()));
                }
            }
        }
    }
    value
}

/// A target record as compared: its references translated to the source ids they stand for.
async fn canonical_target(record: &Record, currency: &str, map: &IdMap) -> Result<Value, Stop> {
    let mut value = canonical(record, currency);
    let Value::Object(fields) = &mut value else {
        return Ok(value);
    };
    for (field, resource) in [
        ("client_id", Resource::Clients),
        ("invoice_id", Resource::Invoices),
    ] {
        back(fields, field, resource, map).await?;
    }
    if let Some(Value::Array(lines)) = fields.get_mut("line_items") {
        for line in lines {
            if let Value::Object(line) = line {
                back(line, "product_id", Resource::Products, map).await?;
            }
        }
    }
    Ok(value)
}

async fn back(
    fields: &mut serde_json::Map<String, Value>,
    field: &str,
    resource: Resource,
    map: &IdMap,
) -> Result<(), Stop> {
    if let Some(Value::String(target_id)) = fields.get(field)
        && let Some(source_id) = map.source_of(resource, target_id).await?
    {
        fields.insert(field.into(), Value::String(source_id));
    }
    Ok(())
}

/// The field paths where a target record differs from the source record it stands for, as
/// verification compares them: what the target assigns left out, references read as the source
/// ids they stand for, amounts as decimals, fields the target declares it cannot keep left out.
/// Shadow reads compare live answers with it.
pub async fn differing_fields(
    source: &Record,
    target: &Record,
    currency: &str,
    unkept: &[String],
    map: &IdMap,
) -> Result<Vec<String>, Stop> {
    let mut a = canonical(source, currency);
    let mut b = canonical_target(target, currency, map).await?;
    strip(&mut a, unkept);
    strip(&mut b, unkept);
    let mut fields = Vec::new();
    diff("", "", &a, &b, &mut fields);
    Ok(fields)
}

/// Leaves out what the report already explains for this record: fields the target cannot
/// keep, and a number or key it refused as taken.
fn explained(report: &Report, resource: Resource, source_id: &str) -> (bool, Vec<String>) {
    let mut skip_record = false;
    let mut fields = Vec::new();
    for d in report.of_record(resource, source_id) {
        match d.kind {
            "not_migratable" if d.fields.is_empty() => skip_record = true,
            "failed" => skip_record = true,
            "not_migratable" | "renumbered" => fields.extend(d.fields.iter().cloned()),
            _ => {}
        }
    }
    (skip_record, fields)
}

/// Removes each field path (`notes`, `line_items[1].product_key`) from a record's JSON.
pub(super) fn strip(value: &mut Value, fields: &[String]) {
    for field in fields {
        match field.split_once('[') {
            Some((list, rest)) => {
                let index: usize = rest
                    .split(']')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                let inner = rest.split("].").nth(1).unwrap_or_default();
                if let Some(Value::Object(item)) =
                    value.get_mut(list).and_then(|l| l.get_mut(index))
                {
                    item.remove(inner);
                }
            }
            None => {
                value.as_object_mut().map(|m| m.remove(field.as_str()));
            }
        }
    }
}

/// What a copy would have reported of a record the target cannot hold, or of fields it cannot
/// keep (for `--verify` alone).
fn explain(target: &Side<'_>, record: &Record, report: &mut Report) {
    let resource = record.resource();
    if let Some(why) = super::copy::refusal(target, record) {
        report.differ(Difference::not_migratable(record, Vec::new(), why));
        return;
    }
    let value = serde_json::to_value(record).unwrap_or_default();
    let unkept = target
        .binding
        .backend
        .capabilities()
        .refuse_unsupported_fields(resource, &value);
    if !unkept.is_empty() {
        let fields = unkept.iter().map(|p| p.field.clone()).collect();
        report.differ(Difference::not_migratable(
            record,
            fields,
            "the target cannot keep these fields",
        ));
    }
}

/// Compares both sides through the id map.
pub async fn verify(
    source: &Side<'_>,
    target: &Side<'_>,
    map: &IdMap,
    report: &mut Report,
) -> Result<(), Stop> {
    for resource in ORDER {
        // The source records seen, so that a target record whose source was deleted since it
        // was copied is found (it is mapped, so it would not otherwise be "extra").
        let mut seen = Seen::default();
        let total = source
            .pages(resource, async |records, total| {
                report.counts(resource).source = total;
                // The page's pairs in one query, not one per record.
                let ids: Vec<&str> = records.iter().map(Record::id).collect();
                let mut pairs = map.get_many(resource, &ids).await?;
                for record in records {
                    add_money(report, &record, true);
                    seen.insert(record.id());
                    let target_id = pairs.remove(record.id()).and_then(|e| e.target_id);
                    compare(source, target, map, report, &record, target_id).await?;
                }
                Ok(())
            })
            .await?;
        report.counts(resource).source = total;
        seen.seal();
        let target_total = target
            .pages(resource, async |records, _| {
                let ids: Vec<&str> = records.iter().map(Record::id).collect();
                let sources = map.sources_of(resource, &ids).await?;
                for record in records {
                    add_money(report, &record, false);
                    let reason = match sources.get(record.id()) {
                        None => "on the target, standing for no record of the source",
                        Some(source_id) if !seen.contains(source_id) => {
                            "its source record no longer exists (deleted since it was copied)"
                        }
                        Some(_) => continue,
                    };
                    report.differ(Difference {
                        resource: resource.as_str(),
                        source_id: None,
                        target_id: Some(record.id().to_string()),
                        kind: "extra",
                        fields: Vec::new(),
                        reason: reason.into(),
                    });
                }
                Ok(())
            })
            .await?;
        report.counts(resource).target = target_total;
    }
    Ok(())
}

/// One source record compared with the record `target_id` names (`None`: the map has no
/// target for it).
async fn compare(
    source: &Side<'_>,
    target: &Side<'_>,
    map: &IdMap,
    report: &mut Report,
    record: &Record,
    target_id: Option<String>,
) -> Result<(), Stop> {
    let verifying_only = report.mode == "verify";
    let resource = record.resource();
    if verifying_only {
        // Without a copy in this run, what the target cannot hold is worked out here, as the
        // copy would have.
        explain(target, record, report);
    }
    let (skip, unkept) = explained(report, resource, record.id());
    if skip {
        return Ok(());
    }
    let difference = |kind: &'static str,
                      target_id: Option<String>,
                      fields: Vec<String>,
                      reason: &str| Difference {
        resource: resource.as_str(),
        source_id: Some(record.id().to_string()),
        target_id,
        kind,
        fields,
        reason: reason.to_string(),
    };
    let Some(target_id) = target_id else {
        let why = if verifying_only {
            "not on the target: no run has copied it yet"
        } else {
            "not on the target"
        };
        report.differ(difference("missing", None, Vec::new(), why));
        return Ok(());
    };
    let Some(there) = target.get(resource, &target_id).await? else {
        report.differ(difference(
            "missing",
            Some(target_id),
            Vec::new(),
            "the id map names a target record that does not exist",
        ));
        return Ok(());
    };
    let currency = source.binding.currency.as_str();
    let mut a = canonical(record, currency);
    let mut b = canonical_target(&there, currency, map).await?;
    strip(&mut a, &unkept);
    strip(&mut b, &unkept);
    let mut fields = Vec::new();
    diff("", "", &a, &b, &mut fields);
    if !fields.is_empty() {
        report.differ(difference(
            "differs",
            Some(target_id),
            fields,
            "the records differ in these fields",
        ));
    }
    Ok(())
}

/// A set of ids at 16 bytes each (the first 128 bits of their SHA-256, which no two ids of one
/// organization share in practice), so that verifying 100,000 invoices holds 1.6 MB, not a
/// hash set of strings several times that.
#[derive(Default)]
struct Seen(Vec<u128>);

impl Seen {
    fn key(id: &str) -> u128 {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(id.as_bytes());
        u128::from_be_bytes(digest[..16].try_into().unwrap_or_default())
    }

    fn insert(&mut self, id: &str) {
        self.0.push(Seen::key(id));
    }

    /// Done inserting: sorted for lookups.
    fn seal(&mut self) {
        self.0.sort_unstable();
    }

    fn contains(&self, id: &str) -> bool {
        self.0.binary_search(&Seen::key(id)).is_ok()
    }
}
