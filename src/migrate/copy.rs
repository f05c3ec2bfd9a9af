//! The copy, in dependency order: clients, products, invoices (created from their lines as
//! drafts, then marked sent without email), payments (replayed, so the target derives balances
//! and statuses), expenses; then the states that must come last (void, archived).
//!
//! Exactly once, whatever kills the run: before a record is created on the target, its intent
//! is written to the id map; the target's id is written as soon as the create answers. A row
//! left without a target id by a crash is resolved on the next run by adopting what the target
//! holds under the record's natural key (invoice number, product key, client email or name), or,
//! for payments and expenses, which have none, an unmapped target record with the same fields
//! (identical twins are interchangeable). Only when nothing matches is the record created.

use super::idmap::IdMap;
use super::report::{Difference, Report};
use super::side::{Side, Stop};
use super::{Options, verify};
use crate::error::ApiError;
use nestgate_contract::input::{Mode, parse_draft};
use nestgate_contract::records::InvoiceStatus;
use nestgate_contract::{Action, Feature, ListQuery, Op, Record, Reply, Resource};
use serde_json::{Map, Value, json};

/// The order every reference's target exists before it is used.
pub const ORDER: [Resource; 5] = [
    Resource::Clients,
    Resource::Products,
    Resource::Invoices,
    Resource::Payments,
    Resource::Expenses,
];

/// Fields the target assigns itself, or derives: never sent, never compared.
pub const ASSIGNED: &[&str] = &["id", "created_at", "updated_at"];
/// Derived from lines and payments on the target.
const DERIVED: &[&str] = &["subtotal", "tax_total", "total", "amount_paid", "balance"];

/// SHA-256 of what a copy carries of a record: its fields less what the target derives or
/// assigns (so a new payment does not make its invoice "changed"), plus its status and archived
/// state. A rerun copies the record again only when this changed.
pub fn digest(record: &Record) -> String {
    use sha2::Digest;
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Value::Object(fields) = &mut value {
        fields.retain(|k, _| !ASSIGNED.contains(&k.as_str()) && !DERIVED.contains(&k.as_str()));
        if let Record::Invoice(invoice) = record {
            // What payments make of a status is theirs to carry; only what was set by hand.
            let set = match invoice.status {
                InvoiceStatus::Partial | InvoiceStatus::Paid => "sent",
                other => other.as_str(),
            };
            fields.insert("status".into(), Value::String(set.into()));
        }
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why the target cannot hold `record` at all, if it cannot.
pub(super) fn refusal(target: &Side<'_>, record: &Record) -> Option<String> {
    let resource = record.resource();
    if !target.supports(resource, Action::Create) {
        let why = target
            .binding
            .backend
            .capabilities()
            .reason(resource, Action::Create)
            .unwrap_or("it has no such records");
        return Some(format!(
            "the target cannot hold {}: {why}",
            resource.as_str()
        ));
    }
    if let Record::Invoice(invoice) = record
        && invoice.status == InvoiceStatus::Void
        && !target
            .binding
            .backend
            .capabilities()
            .has(Feature::VoidInvoices)
    {
        return Some("the target cannot hold a void invoice".into());
    }
    None
}

/// What a body is for: a dry run keeps a reference the id map does not know yet (nothing is
/// written, and the record's own fields must still be checked against the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    DryRun,
    Create,
    Update,
}

/// The record as a create or update body for the target: what the target assigns or derives
/// left out, nulls left out, references rewritten to the target's ids. `None` when a record it
/// references is not on the target (its own difference says why).
async fn body_for_target(
    record: &Record,
    map: &IdMap,
    shape: Shape,
) -> Result<Option<Map<String, Value>>, Stop> {
    let Value::Object(mut body) = serde_json::to_value(record).unwrap_or_default() else {
        return Ok(None);
    };
    // An update sends `null` for a field the source has cleared (absent would keep it).
    let keep_nulls = shape == Shape::Update;
    body.retain(|k, v| {
        (keep_nulls || !v.is_null()) && !ASSIGNED.contains(&k.as_str()) && k != "archived"
    });
    let resource = record.resource();
    match resource {
        Resource::Invoices => {
            for key in DERIVED {
                body.remove(*key);
            }
            // Created as a draft; marked sent (and voided) afterwards, payments replayed between.
            body.remove("status");
            if !rewrite(&mut body, "client_id", Resource::Clients, map, shape).await? {
                return Ok(None);
            }
            if let Some(Value::Array(lines)) = body.get_mut("line_items") {
                for line in lines {
                    if let Value::Object(line) = line {
                        line.retain(|k, v| !v.is_null() && k != "amount");
                        if shape == Shape::DryRun {
                            continue;
                        }
                        if line.contains_key("product_id")
                            && !rewrite(line, "product_id", Resource::Products, map, shape).await?
                        {
                            // The product did not come across: the line keeps its own values,
                            // and its `product_id` is reported as not carried.
                            line.remove("product_id");
                            line.insert("product_id".into(), Value::Bool(false));
                        }
                    }
                }
            }
        }
        Resource::Payments => {
            body.remove("client_id");
            if !rewrite(&mut body, "invoice_id", Resource::Invoices, map, shape).await? {
                return Ok(None);
            }
        }
        Resource::Expenses => {
            if body.contains_key("client_id")
                && !rewrite(&mut body, "client_id", Resource::Clients, map, shape).await?
            {
                return Ok(None);
            }
        }
        Resource::Clients | Resource::Products => {}
    }
    Ok(Some(body))
}

/// Rewrites a reference to the target's id; `false` when the referenced record is not there.
async fn rewrite(
    body: &mut Map<String, Value>,
    field: &str,
    resource: Resource,
    map: &IdMap,
    shape: Shape,
) -> Result<bool, Stop> {
    let Some(Value::String(source_id)) = body.get(field) else {
        return Ok(true);
    };
    match map.target_of(resource, source_id).await? {
        Some(target_id) => {
            body.insert(field.into(), Value::String(target_id));
            Ok(true)
        }
        None => Ok(shape == Shape::DryRun),
    }
}

/// Drops the fields the target cannot keep, reporting them (the record is copied without).
fn drop_unkept(
    target: &Side<'_>,
    record: &Record,
    body: &mut Map<String, Value>,
    report: &mut Report,
) {
    let resource = record.resource();
    // Lines whose product did not come across (marked by `body_for_target`).
    let mut orphans = Vec::new();
    if let Some(Value::Array(lines)) = body.get_mut("line_items") {
        for (i, line) in lines.iter_mut().enumerate() {
            if let Value::Object(line) = line
                && line.get("product_id") == Some(&Value::Bool(false))
            {
                line.remove("product_id");
                orphans.push(format!("line_items[{i}].product_id"));
            }
        }
    }
    if !orphans.is_empty() {
        report.differ(Difference::not_migratable(
            record,
            orphans,
            "the product a line names did not come across; the line keeps its own description, price and tax",
        ));
    }
    let value = Value::Object(body.clone());
    let unkept = target
        .binding
        .backend
        .capabilities()
        .refuse_unsupported_fields(resource, &value);
    if unkept.is_empty() {
        return;
    }
    let fields: Vec<String> = unkept.iter().map(|p| p.field.clone()).collect();
    let mut value = Value::Object(std::mem::take(body));
    verify::strip(&mut value, &fields);
    if let Value::Object(stripped) = value {
        *body = stripped;
    }
    report.differ(Difference {
        resource: resource.as_str(),
        source_id: Some(record.id().to_string()),
        target_id: None,
        kind: "not_migratable",
        fields,
        reason: unkept
            .first()
            .map(|p| {
                format!(
                    "the target cannot keep these fields ({}); the rest is copied",
                    p.issue
                )
            })
            .unwrap_or_default(),
    });
}

/// Reads the source, writes nothing: what would be copied, the money, and what cannot be.
pub async fn dry_run(
    source: &Side<'_>,
    target: &Side<'_>,
    map: &IdMap,
    report: &mut Report,
) -> Result<(), Stop> {
    for resource in ORDER {
        let total = source
            .each(resource, async |record, total| {
                report.counts(resource).source = total;
                verify::add_money(report, &record, true);
                if let Some(why) = refusal(target, &record) {
                    refuse(&record, why, report);
                    return Ok(());
                }
                if let Some(mut body) = body_for_target(&record, map, Shape::DryRun).await? {
                    drop_unkept(target, &record, &mut body, report);
                }
                // The steps after the create: marking sent, archiving.
                if let Record::Invoice(invoice) = &record
                    && invoice.status != InvoiceStatus::Draft
                    && !target.supports(Resource::Invoices, Action::MarkSent)
                {
                    report.differ(cannot_mark_sent(target, &record, None));
                }
                if record.archived() && !target.supports(resource, Action::Archive) {
                    report.differ(Difference {
                        resource: resource.as_str(),
                        source_id: Some(record.id().to_string()),
                        target_id: None,
                        kind: "not_migratable",
                        fields: vec!["archived".into()],
                        reason: "the target cannot archive this kind of record".into(),
                    });
                }
                match map.get(resource, record.id()).await? {
                    Some(entry) if entry.target_id.is_some() && entry.digest == digest(&record) => {
                        report.counts(resource).unchanged += 1
                    }
                    _ => report.counts(resource).copied += 1,
                }
                Ok(())
            })
            .await?;
        report.counts(resource).source = total;
    }
    Ok(())
}

/// Reports a record the target cannot hold; for a payment, its invoice's paid amount, balance
/// and status cannot match either (reported once per invoice).
fn refuse(record: &Record, why: String, report: &mut Report) {
    if let Record::Payment(payment) = record {
        let noted = report
            .of_record(Resource::Invoices, &payment.invoice_id)
            .any(|d| d.fields.iter().any(|f| f == "amount_paid"));
        if !noted {
            report.differ(Difference {
                resource: "invoices",
                source_id: Some(payment.invoice_id.clone()),
                target_id: None,
                kind: "not_migratable",
                fields: vec!["amount_paid".into(), "balance".into(), "status".into()],
                reason: "its payments cannot be carried, so what it shows paid cannot either"
                    .into(),
            });
        }
    }
    report.differ(not_migratable(record, why));
}

/// A record not created because the target could not be searched for an earlier copy of it.
fn unsearched(record: &Record, why: &str) -> Difference {
    Difference {
        kind: "failed",
        reason: format!("could not look for it on the target, so it was not created: {why}"),
        ..Difference::not_migratable(record, Vec::new(), "")
    }
}

fn not_migratable(record: &Record, reason: String) -> Difference {
    Difference::not_migratable(record, Vec::new(), reason)
}

fn failed(record: &Record, target_id: Option<String>, error: &ApiError, doing: &str) -> Difference {
    let fields = error.details.iter().map(|d| d.field.clone()).collect();
    Difference {
        resource: record.resource().as_str(),
        source_id: Some(record.id().to_string()),
        target_id,
        kind: "failed",
        fields,
        reason: format!("{doing}: {} ({})", error.message, error.code),
    }
}

/// The target records the id map does not know: a run refuses to write next to them (unless
/// told to adopt them), since they would end up twice. As many as there are pending intents
/// are expected: they are what a run that died created, and are adopted below.
async fn unknown_on_target(
    target: &Side<'_>,
    map: &IdMap,
    report: &mut Report,
) -> Result<(), Stop> {
    for resource in ORDER {
        // Creates a run that died may have made: as many unknown records are expected.
        let mut expected = map.pending(resource).await?;
        target
            .each(resource, async |record, _| {
                if map.source_of(resource, record.id()).await?.is_none() {
                    if expected > 0 {
                        expected -= 1;
                        return Ok(());
                    }
                    report.differ(Difference {
                        resource: resource.as_str(),
                        source_id: None,
                        target_id: Some(record.id().to_string()),
                        kind: "extra",
                        fields: Vec::new(),
                        reason: "the target already holds this record of the organization and the id map does not know it; nothing was written. Rerun with --adopt-existing to match such records by natural key".into(),
                    });
                }
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// Copies what is new or changed since the last run.
pub async fn copy(
    source: &Side<'_>,
    target: &Side<'_>,
    map: &IdMap,
    options: &Options,
    report: &mut Report,
) -> Result<(), Stop> {
    if !options.adopt_existing {
        unknown_on_target(target, map, report).await?;
        if !report.differences.is_empty() {
            return Ok(());
        }
    }
    // Invoices whose last states (void, archived) wait for their payments.
    let mut settle: Vec<(String, Record)> = Vec::new();
    for resource in ORDER {
        source
            .each(resource, async |record, total| {
                report.counts(resource).source = total;
                if let Some(why) = refusal(target, &record) {
                    refuse(&record, why, report);
                    return Ok(());
                }
                if let Some(target_id) = copy_one(target, map, options, &record, report).await?
                    && let Record::Invoice(invoice) = &record
                    && (invoice.status == InvoiceStatus::Void || invoice.archived)
                {
                    settle.push((target_id, record));
                }
                Ok(())
            })
            .await?;
    }
    for (target_id, record) in settle {
        if let Record::Invoice(invoice) = &record
            && invoice.status == InvoiceStatus::Void
        {
            let body = json!({"status": "void"});
            update(target, &record, &target_id, &body, report).await?;
        }
        archive(target, &record, &target_id, Shape::Create, report).await?;
    }
    Ok(())
}

/// One record: created, updated or left alone. Returns its target id when it is on the target.
async fn copy_one(
    target: &Side<'_>,
    map: &IdMap,
    options: &Options,
    record: &Record,
    report: &mut Report,
) -> Result<Option<String>, Stop> {
    let resource = record.resource();
    let digest = digest(record);
    let entry = map.get(resource, record.id()).await?;
    let known = entry.as_ref().and_then(|e| e.target_id.clone());
    let shape = if known.is_some() {
        Shape::Update
    } else {
        Shape::Create
    };
    let Some(mut body) = body_for_target(record, map, shape).await? else {
        report.differ(not_migratable(
            record,
            "a record it references did not come across (see its own line)".into(),
        ));
        return Ok(None);
    };
    drop_unkept(target, record, &mut body, report);
    let body = Value::Object(body);
    let noted = report.differences.len();
    let target_id = match (entry, known) {
        (Some(entry), Some(target_id)) => {
            if entry.digest == digest {
                report.counts(resource).unchanged += 1;
                return Ok(Some(target_id));
            }
            // Changed on the source since the last run: brought up to date.
            if !update(target, record, &target_id, &body, report).await? {
                return Ok(Some(target_id));
            }
            target_id
        }
        (intent, _) => {
            // An intent left by a run that died (or, with --adopt-existing, any record): the
            // target may already hold it.
            let adoptable = intent.is_some() || options.adopt_existing;
            let adopted = match adoptable {
                true => {
                    match adopt(target, map, resource, &body).await? {
                        Ok(found) => found,
                        Err(why) => {
                            // Not knowing is not "absent": creating it could make a second copy.
                            report.differ(unsearched(record, &why));
                            return Ok(None);
                        }
                    }
                }
                false => None,
            };
            if intent.is_none() {
                map.intend(resource, record.id(), &digest).await?;
            }
            super::crash_point("after_intent");
            match adopted {
                Some(target_id) => {
                    // What a dead run created may be older than the source is now.
                    if !matches!(resource, Resource::Payments) {
                        let update_body = match body_for_target(record, map, Shape::Update).await? {
                            Some(body) => Value::Object(body),
                            None => body.clone(),
                        };
                        update(target, record, &target_id, &update_body, report).await?;
                    }
                    target_id
                }
                None => match create(target, record, &body, intent.is_some(), report).await? {
                    Some(target_id) => {
                        super::crash_point("after_create");
                        target_id
                    }
                    None => return Ok(None),
                },
            }
        }
    };
    // The states that follow the write come before the id is recorded, so a crash between
    // them leaves the record to be adopted and settled again, never half-done and "unchanged".
    after_write(target, record, &target_id, shape, report).await?;
    // A step that failed leaves the old digest, so the next run tries the record again.
    let carried = if report.differences[noted..]
        .iter()
        .any(|d| d.kind == "failed")
    {
        String::new()
    } else {
        digest
    };
    map.done(resource, record.id(), &target_id, &carried)
        .await?;
    report.counts(resource).copied += 1;
    Ok(Some(target_id))
}

/// `body` read as the contract's draft, as any API client's body is; a body the contract
/// refuses is reported as the record's failure.
fn draft(
    record: &Record,
    target_id: Option<&str>,
    body: &Value,
    mode: Mode,
    report: &mut Report,
) -> Option<nestgate_contract::Draft> {
    match parse_draft(record.resource(), body, mode) {
        Ok(draft) => Some(draft),
        Err(problems) => {
            let doing = match mode {
                Mode::Create => "creating it",
                Mode::Update => "updating it",
            };
            let error = ApiError::validation(problems);
            report.differ(failed(record, target_id.map(str::to_string), &error, doing));
            None
        }
    }
}

/// Creates the record; a number or key the target refuses as taken is assigned anew and
/// reported as `renumbered`, with both values.
async fn create(
    target: &Side<'_>,
    record: &Record,
    body: &Value,
    resumed: bool,
    report: &mut Report,
) -> Result<Option<String>, Stop> {
    let Some(draft) = draft(record, None, body, Mode::Create, report) else {
        return Ok(None);
    };
    match target.call(Op::Create(draft)).await? {
        Ok(Reply::Record(created)) => Ok(Some(created.id().to_string())),
        // A number taken on a resumed record may be its own earlier copy, which adoption did
        // not recognise: renumbering would make a second one.
        Err(error) if error.code == "conflict" && !resumed => {
            renumber(target, record, body, report).await
        }
        Err(error) => {
            report.differ(failed(record, None, &error, "creating it"));
            Ok(None)
        }
        Ok(_) => {
            let error = ApiError::internal();
            report.differ(failed(record, None, &error, "creating it"));
            Ok(None)
        }
    }
}

async fn renumber(
    target: &Side<'_>,
    record: &Record,
    body: &Value,
    report: &mut Report,
) -> Result<Option<String>, Stop> {
    let mut body = body.clone();
    let (field, before) = match record {
        Record::Invoice(invoice) => ("number", invoice.number.clone()),
        Record::Product(product) => ("key", product.key.clone()),
        _ => return Ok(None),
    };
    match record {
        // The target assigns the next number of its own sequence.
        Record::Invoice(_) => {
            body.as_object_mut().map(|b| b.remove("number"));
        }
        _ => body[field] = json!(format!("{before}-migrated")),
    }
    let resource = record.resource();
    let Some(draft) = draft(record, None, &body, Mode::Create, report) else {
        return Ok(None);
    };
    match target.call(Op::Create(draft)).await? {
        Ok(Reply::Record(created)) => {
            let after = serde_json::to_value(&created).unwrap_or_default()[field].clone();
            report.differ(Difference {
                resource: resource.as_str(),
                source_id: Some(record.id().to_string()),
                target_id: Some(created.id().to_string()),
                kind: "renumbered",
                fields: vec![field.to_string()],
                reason: format!(
                    "{field} {before} was already taken on the target; the record is {field} {} there",
                    after.as_str().unwrap_or_default()
                ),
            });
            Ok(Some(created.id().to_string()))
        }
        Ok(_) => Ok(None),
        Err(error) => {
            report.differ(failed(
                record,
                None,
                &error,
                "creating it under another number",
            ));
            Ok(None)
        }
    }
}

/// Brings a target record up to date with `body`; `false` when the target refused.
async fn update(
    target: &Side<'_>,
    record: &Record,
    target_id: &str,
    body: &Value,
    report: &mut Report,
) -> Result<bool, Stop> {
    let Some(draft) = draft(record, Some(target_id), body, Mode::Update, report) else {
        return Ok(false);
    };
    let op = Op::Update {
        id: target_id.to_string(),
        draft,
    };
    match target.call(op).await? {
        Ok(_) => Ok(true),
        Err(error) => {
            report.differ(failed(
                record,
                Some(target_id.into()),
                &error,
                "updating it",
            ));
            Ok(false)
        }
    }
}

/// What follows a write: an invoice sent on the source is marked sent on the target (never
/// emailed); any other record archived on the source is archived now (invoices wait for their
/// payments, see [`copy`]).
async fn after_write(
    target: &Side<'_>,
    record: &Record,
    target_id: &str,
    shape: Shape,
    report: &mut Report,
) -> Result<(), Stop> {
    match record {
        Record::Invoice(invoice) => {
            use InvoiceStatus::*;
            if !matches!(invoice.status, Sent | Viewed | Partial | Paid | Void) {
                return Ok(());
            }
            // An invoice brought up to date may be sent (or void) on the target already.
            if shape == Shape::Update {
                match target.get(Resource::Invoices, target_id).await? {
                    Some(Record::Invoice(there)) if there.status != Draft => return Ok(()),
                    _ => {}
                }
            }
            if !target.supports(Resource::Invoices, Action::MarkSent) {
                report.differ(cannot_mark_sent(target, record, Some(target_id)));
                return Ok(());
            }
            let op = Op::MarkInvoiceSent {
                id: target_id.to_string(),
            };
            if let Err(error) = target.call(op).await? {
                report.differ(failed(
                    record,
                    Some(target_id.into()),
                    &error,
                    "marking it sent",
                ));
            }
            if invoice.status == Viewed {
                let body = json!({"status": "viewed"});
                update(target, record, target_id, &body, report).await?;
            }
            Ok(())
        }
        _ => archive(target, record, target_id, shape, report).await,
    }
}

/// An invoice sent on the source, on a target that has no call to mark one sent.
fn cannot_mark_sent(target: &Side<'_>, record: &Record, target_id: Option<&str>) -> Difference {
    let why = target
        .binding
        .backend
        .capabilities()
        .reason(Resource::Invoices, Action::MarkSent)
        .unwrap_or("it has no such call");
    Difference {
        resource: "invoices",
        source_id: Some(record.id().to_string()),
        target_id: target_id.map(str::to_string),
        kind: "not_migratable",
        fields: vec!["status".into()],
        reason: format!("the target cannot mark an invoice sent: {why}"),
    }
}

/// Carries the archived state: archived on the source, archived on the target; and a record
/// brought up to date that the source has restored is restored there too.
async fn archive(
    target: &Side<'_>,
    record: &Record,
    target_id: &str,
    shape: Shape,
    report: &mut Report,
) -> Result<(), Stop> {
    let resource = record.resource();
    let action = match (record.archived(), shape) {
        (true, _) => Action::Archive,
        (false, Shape::Update) if target.supports(resource, Action::Restore) => Action::Restore,
        (false, _) => return Ok(()),
    };
    if !target.supports(resource, action) {
        report.differ(Difference {
            resource: resource.as_str(),
            source_id: Some(record.id().to_string()),
            target_id: Some(target_id.to_string()),
            kind: "not_migratable",
            fields: vec!["archived".into()],
            reason: "the target cannot archive this kind of record".into(),
        });
        return Ok(());
    }
    let id = target_id.to_string();
    let op = match action {
        Action::Archive => Op::Archive { resource, id },
        _ => Op::Restore { resource, id },
    };
    if let Err(error) = target.call(op).await? {
        report.differ(failed(
            record,
            Some(target_id.into()),
            &error,
            "archiving it",
        ));
    }
    Ok(())
}

/// A target record that stands for this source record already, unknown to the id map: found
/// by natural key, or (payments, expenses, clients without an email) by the fields a vendor
/// keeps as given. `Err` when the target could not be searched: the caller must then not
/// create the record (it may be there).
async fn adopt(
    target: &Side<'_>,
    map: &IdMap,
    resource: Resource,
    body: &Value,
) -> Result<Result<Option<String>, String>, Stop> {
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
    let mut query = ListQuery {
        per_page: super::side::PAGE,
        include_archived: true,
        ..ListQuery::default()
    };
    match resource {
        Resource::Invoices => query.number = text("number"),
        Resource::Clients => query.email = text("email"),
        _ => {}
    }
    for page in 1u32.. {
        query.page = page;
        let listed = match target
            .call(Op::List {
                resource,
                query: query.clone(),
            })
            .await?
        {
            Ok(Reply::Page(listed)) => listed,
            Ok(_) => return Ok(Err("the target answered a list with something else".into())),
            Err(error) => return Ok(Err(error.message)),
        };
        for candidate in &listed.records {
            if map.source_of(resource, candidate.id()).await?.is_none()
                && stands_for(resource, candidate, body)
            {
                return Ok(Ok(Some(candidate.id().to_string())));
            }
        }
        if listed.records.is_empty() || u64::from(page) * u64::from(query.per_page) >= listed.total
        {
            break;
        }
    }
    Ok(Ok(None))
}

/// Whether a target record stands for the source record whose target body is `body`. Only
/// fields every backend keeps as given are compared (a vendor may rewrite a payment method's
/// wording or an empty date); twins that agree on them are interchangeable.
fn stands_for(resource: Resource, candidate: &Record, body: &Value) -> bool {
    let candidate = serde_json::to_value(candidate).unwrap_or_default();
    let same = |field: &str| verify::same_value(field, body.get(field), candidate.get(field));
    let same_text = |field: &str| {
        let text = |v: &Value| v.get(field).and_then(Value::as_str).map(str::to_lowercase);
        text(body) == text(&candidate)
    };
    match resource {
        Resource::Invoices => same_text("number"),
        Resource::Clients if body.get("email").is_some() => same_text("email"),
        Resource::Clients => same("name"),
        Resource::Products => same_text("key"),
        Resource::Payments => ["invoice_id", "amount", "date"].iter().all(|f| same(f)),
        Resource::Expenses => ["amount", "currency", "client_id"].iter().all(|f| same(f)),
    }
}
