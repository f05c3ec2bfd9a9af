//! The copy, in dependency order: clients, products, invoices (created from their lines as
//! drafts, then marked sent without email), payments (replayed, so the target derives balances
//! and statuses), expenses; then the states that must come last (void, archived).
//!
//! Exactly once, whatever kills the run: before a record is created on the target, its intent
//! is written to the id map (a page's intents in one statement); the target's id is written
//! once the record is on the target and marked sent, and the target has made the page's writes
//! durable (a page's ids in one statement, also when the run stops halfway through the page:
//! the writes under way are waited for). A void or archived invoice's id is recorded as
//! "settling" until that state is carried, after the payments. A row left without a target id
//! by a crash is resolved on the next run by adopting what the target holds under the record's
//! natural key (invoice number, product key, client email or name), or, for payments and
//! expenses, which have none, an unmapped target record with the same fields (identical twins
//! are interchangeable). Only when nothing matches is the record created.

use super::idmap::{Done, Entry, IdMap};
use super::report::{Difference, Report};
use super::side::{Side, Stop};
use super::{Options, verify};
use crate::error::ApiError;
use futures_util::StreamExt;
use nestgate_contract::input::{Mode, parse_draft};
use nestgate_contract::records::InvoiceStatus;
use nestgate_contract::{Action, Feature, Op, Record, Reply, Resource};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

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
    notes: &mut Vec<Difference>,
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
        notes.push(Difference::not_migratable(
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
    notes.push(Difference {
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
                    let mut notes = Vec::new();
                    drop_unkept(target, &record, &mut body, &mut notes);
                    notes.into_iter().for_each(|d| report.differ(d));
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
                    Some(entry)
                        if entry.target_id.is_some()
                            && entry.digest.trim_end_matches(SETTLING) == digest(&record) =>
                    {
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
            .pages(resource, async |records, _| {
                let ids: Vec<&str> = records.iter().map(Record::id).collect();
                let known = map.known_targets(resource, &ids).await?;
                for id in ids.into_iter().filter(|id| !known.contains(*id)) {
                    if expected > 0 {
                        expected -= 1;
                        continue;
                    }
                    report.differ(Difference {
                        resource: resource.as_str(),
                        source_id: None,
                        target_id: Some(id.to_string()),
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

/// An invoice whose last states (void, archived) wait until its payments are on the target.
struct Settle {
    source_id: String,
    target_id: String,
    /// The digest the record was copied at: recorded once its states are carried.
    digest: String,
}

/// Marks a digest recorded before a void or archived invoice's states were carried: the next
/// run carries them (only them) again.
pub const SETTLING: &str = "+settling";

/// Copies what is new or changed since the last run, a page at a time: the page's intents in
/// one transaction, then up to `parallel` records written at once, then the page's target ids
/// in one transaction.
pub async fn copy(
    source: &Side<'_>,
    target: &Side<'_>,
    map: &IdMap,
    options: &Options,
    parallel: usize,
    report: &mut Report,
) -> Result<(), Stop> {
    if !options.adopt_existing {
        unknown_on_target(target, map, report).await?;
        if !report.differences.is_empty() {
            return Ok(());
        }
    }
    // Ids only (the records are read again when their turn comes), so memory stays flat.
    let mut settle: Vec<Settle> = Vec::new();
    let page = Page {
        target,
        map,
        options,
        parallel,
    };
    for resource in ORDER {
        let mut adoption = Adoption::new(resource);
        source
            .pages(resource, async |records, total| {
                report.counts(resource).source = total;
                page.copy(records, &mut adoption, report, &mut settle).await
            })
            .await?;
    }
    if !settle.is_empty() {
        super::crash_point("before_settle");
    }
    // Recorded as settled a page at a time, once the target has made the page durable.
    let mut carried: Vec<(String, String)> = Vec::new();
    for Settle {
        source_id,
        target_id,
        digest,
    } in settle
    {
        if carried.len() >= super::side::PAGE as usize {
            record_settled(target, map, &mut carried).await?;
        }
        // Read again: it may have changed since (a rerun carries that).
        let Some(record) = source.get(Resource::Invoices, &source_id).await? else {
            continue;
        };
        let mut notes = Vec::new();
        if let Record::Invoice(invoice) = &record
            && invoice.status == InvoiceStatus::Void
        {
            let body = json!({"status": "void"});
            update(target, &record, &target_id, &body, &mut notes).await?;
        }
        archive(target, &record, &target_id, Shape::Create, &mut notes).await?;
        if !notes.iter().any(|d| d.kind == "failed") {
            carried.push((source_id, digest));
        }
        notes.into_iter().for_each(|d| report.differ(d));
    }
    record_settled(target, map, &mut carried).await
}

/// The invoices whose last states were carried, recorded as settled once they are durable. A run
/// that stops in between leaves them unrecorded: the next run carries them again, which changes
/// nothing (each carry sets a state the invoice already has).
async fn record_settled(
    target: &Side<'_>,
    map: &IdMap,
    carried: &mut Vec<(String, String)>,
) -> Result<(), Stop> {
    if carried.is_empty() {
        return Ok(());
    }
    target.sync().await?;
    for (source_id, digest) in carried.drain(..) {
        map.settled(Resource::Invoices, &source_id, &digest).await?;
    }
    Ok(())
}

/// What is done with one source record of a page.
enum Plan {
    /// Changed on the source since the last run: brought up to date.
    Update(String),
    /// Not on the target yet. `resumed`: an intent left by a run that died, so the target may
    /// hold it already.
    Create { resumed: bool },
}

/// One record written: what the report and the id map learn from it.
struct Written {
    record: Record,
    /// Its differences (several records are written at once; each keeps its own).
    notes: Vec<Difference>,
    /// `Some` when it is on the target.
    target_id: Option<String>,
    /// The digest to record (empty when a step failed: the next run tries it again).
    digest: String,
    /// A create that surely did not reach the target: its intent is dropped.
    forget_intent: bool,
}

/// What every page of one copy shares.
struct Page<'a, 'b> {
    target: &'a Side<'b>,
    map: &'a IdMap,
    options: &'a Options,
    parallel: usize,
}

impl Page<'_, '_> {
    async fn copy(
        &self,
        records: Vec<Record>,
        adoption: &mut Adoption,
        report: &mut Report,
        settle: &mut Vec<Settle>,
    ) -> Result<(), Stop> {
        let Some(resource) = records.first().map(Record::resource) else {
            return Ok(());
        };
        let ids: Vec<&str> = records.iter().map(Record::id).collect();
        let mut entries = self.map.get_many(resource, &ids).await?;
        let mut plans = Vec::with_capacity(records.len());
        let mut intents = Vec::new();
        for record in records {
            if let Some(why) = refusal(self.target, &record) {
                refuse(&record, why, report);
                continue;
            }
            let digest = digest(&record);
            let plan = match entries.remove(record.id()) {
                Some(Entry {
                    target_id: Some(_),
                    digest: copied,
                }) if copied == digest => {
                    report.counts(resource).unchanged += 1;
                    continue;
                }
                Some(Entry {
                    target_id: Some(target_id),
                    digest: copied,
                }) if copied.strip_suffix(SETTLING) == Some(digest.as_str()) => {
                    // Copied, but its void or archived state not yet carried (a run died
                    // between the two): only that is done.
                    report.counts(resource).unchanged += 1;
                    settle.push(Settle {
                        source_id: record.id().to_string(),
                        target_id,
                        digest,
                    });
                    continue;
                }
                Some(Entry {
                    target_id: Some(target_id),
                    ..
                }) => Plan::Update(target_id),
                Some(Entry {
                    target_id: None, ..
                }) => Plan::Create { resumed: true },
                None => {
                    intents.push((record.id().to_string(), digest.clone()));
                    Plan::Create { resumed: false }
                }
            };
            plans.push((record, digest, plan));
        }
        let adopting = |plan: &Plan| match plan {
            Plan::Create { resumed } => *resumed || self.options.adopt_existing,
            Plan::Update(_) => false,
        };
        // Indexed before this page writes anything, so nothing it creates can be mistaken for
        // an earlier copy.
        if plans.iter().any(|(_, _, plan)| adopting(plan)) {
            adoption.index(self.target, self.map).await?;
        }
        let rows: Vec<(&str, &str)> = intents
            .iter()
            .map(|(id, d)| (id.as_str(), d.as_str()))
            .collect();
        self.map.intend(resource, &rows).await?;
        for _ in &rows {
            super::crash_point("after_intent");
        }
        let adoption = &*adoption;
        // Set by the first write that stops the run: the writes not yet begun are skipped, and
        // those under way are waited for, so that what they wrote is recorded below.
        let stopping = AtomicBool::new(false);
        let mut writes = futures_util::stream::iter(plans)
            .map(|(record, digest, plan)| {
                let adopt = adopting(&plan);
                self.write(record, digest, plan, adopt, adoption, &stopping)
            })
            .buffer_unordered(self.parallel.max(1));
        let mut done = Vec::new();
        let mut forget = Vec::new();
        let mut stopped = None;
        while let Some(written) = writes.next().await {
            let written = match written {
                Ok(written) => written,
                Err(stop) => {
                    stopping.store(true, Ordering::SeqCst);
                    stopped.get_or_insert(stop);
                    continue;
                }
            };
            let Written {
                record,
                notes,
                target_id,
                digest,
                forget_intent,
            } = written;
            notes.into_iter().for_each(|d| report.differ(d));
            let Some(target_id) = target_id else {
                if forget_intent {
                    forget.push(record.id().to_string());
                }
                continue;
            };
            report.counts(resource).copied += 1;
            let digest = match (needs_settling(&record), digest.is_empty()) {
                (true, false) => {
                    settle.push(Settle {
                        source_id: record.id().to_string(),
                        target_id: target_id.clone(),
                        digest: digest.clone(),
                    });
                    format!("{digest}{SETTLING}")
                }
                _ => digest,
            };
            done.push(Done {
                source_id: record.id().to_string(),
                target_id,
                digest,
            });
        }
        drop(writes);
        super::crash_point("before_done");
        // The page's writes on disk before the map says they are there (a target that
        // flushes by the page, see `Durability::AtSync`).
        // A stop already met is the run's reason, not a sync that fails after it.
        if !done.is_empty()
            && let Err(unsynced) = self.target.sync().await
        {
            return Err(stopped.unwrap_or(unsynced));
        }
        self.map.done(resource, &done, &forget).await?;
        match stopped {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// One record: created (or adopted) or brought up to date, then marked sent or archived.
    async fn write(
        &self,
        record: Record,
        digest: String,
        plan: Plan,
        adopt: bool,
        adoption: &Adoption,
        stopping: &AtomicBool,
    ) -> Result<Written, Stop> {
        let target = self.target;
        let mut notes = Vec::new();
        let shape = match plan {
            Plan::Update(_) => Shape::Update,
            Plan::Create { .. } => Shape::Create,
        };
        // Not on the target. For a create, `sent` says whether one may have reached it: if
        // not, its intent is dropped (the next run starts afresh, not as a resumed record).
        let written = |notes, sent: bool| Written {
            record: record.clone(),
            notes,
            target_id: None,
            digest: String::new(),
            forget_intent: shape == Shape::Create && !sent,
        };
        if stopping.load(Ordering::SeqCst) {
            return Ok(written(notes, false));
        }
        let Some(mut body) = body_for_target(&record, self.map, shape).await? else {
            notes.push(not_migratable(
                &record,
                "a record it references did not come across (see its own line)".into(),
            ));
            return Ok(written(notes, false));
        };
        drop_unkept(target, &record, &mut body, &mut notes);
        let body = Value::Object(body);
        let target_id = match plan {
            Plan::Update(target_id) => {
                if !update(target, &record, &target_id, &body, &mut notes).await? {
                    // Refused: the id map keeps the old digest, and the next run tries again.
                    return Ok(written(notes, false));
                }
                target_id
            }
            Plan::Create { resumed } => {
                let adopted = match adopt {
                    true => match adoption.claim(&body) {
                        Ok(found) => found,
                        Err(why) => {
                            // Not knowing is not "absent": creating it could make a second copy.
                            notes.push(unsearched(&record, &why));
                            // A dead run's create may be there: the intent stays.
                            return Ok(written(notes, resumed));
                        }
                    },
                    false => None,
                };
                match adopted {
                    Some(target_id) => {
                        // What a dead run created may be older than the source is now.
                        if record.resource() != Resource::Payments {
                            let update_body =
                                match body_for_target(&record, self.map, Shape::Update).await? {
                                    Some(body) => Value::Object(body),
                                    None => body.clone(),
                                };
                            update(target, &record, &target_id, &update_body, &mut notes).await?;
                        }
                        target_id
                    }
                    None => match create(target, &record, &body, resumed, &mut notes).await? {
                        Some(target_id) => {
                            super::crash_point("after_create");
                            target_id
                        }
                        // Refused by the target (an error answered): nothing was created.
                        None => return Ok(written(notes, false)),
                    },
                }
            }
        };
        // The states that follow the write come before the id is recorded, so a crash between
        // them leaves the record to be adopted and settled again, never half-done and "unchanged".
        after_write(target, &record, &target_id, shape, &mut notes).await?;
        // A step that failed leaves no digest, so the next run tries the record again.
        let failed = notes.iter().any(|d| d.kind == "failed");
        Ok(Written {
            target_id: Some(target_id),
            digest: if failed { String::new() } else { digest },
            ..written(notes, true)
        })
    }
}

/// A void or archived invoice: those states are carried after its payments.
fn needs_settling(record: &Record) -> bool {
    matches!(record, Record::Invoice(invoice)
        if invoice.status == InvoiceStatus::Void || invoice.archived)
}

/// `body` read as the contract's draft, as any API client's body is; a body the contract
/// refuses is reported as the record's failure.
fn draft(
    record: &Record,
    target_id: Option<&str>,
    body: &Value,
    mode: Mode,
    notes: &mut Vec<Difference>,
) -> Option<nestgate_contract::Draft> {
    match parse_draft(record.resource(), body, mode) {
        Ok(draft) => Some(draft),
        Err(problems) => {
            let doing = match mode {
                Mode::Create => "creating it",
                Mode::Update => "updating it",
            };
            let error = ApiError::validation(problems);
            notes.push(failed(record, target_id.map(str::to_string), &error, doing));
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
    notes: &mut Vec<Difference>,
) -> Result<Option<String>, Stop> {
    let Some(draft) = draft(record, None, body, Mode::Create, notes) else {
        return Ok(None);
    };
    match target.call(Op::Create(draft)).await? {
        Ok(Reply::Record(created)) => Ok(Some(created.id().to_string())),
        // A number taken on a resumed record may be its own earlier copy, which adoption did
        // not recognise: renumbering would make a second one.
        Err(error) if error.code == "conflict" && !resumed => {
            renumber(target, record, body, notes).await
        }
        Err(error) => {
            notes.push(failed(record, None, &error, "creating it"));
            Ok(None)
        }
        Ok(_) => {
            let error = ApiError::internal();
            notes.push(failed(record, None, &error, "creating it"));
            Ok(None)
        }
    }
}

async fn renumber(
    target: &Side<'_>,
    record: &Record,
    body: &Value,
    notes: &mut Vec<Difference>,
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
    let Some(draft) = draft(record, None, &body, Mode::Create, notes) else {
        return Ok(None);
    };
    match target.call(Op::Create(draft)).await? {
        Ok(Reply::Record(created)) => {
            let after = serde_json::to_value(&created).unwrap_or_default()[field].clone();
            notes.push(Difference {
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
            notes.push(failed(
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
    notes: &mut Vec<Difference>,
) -> Result<bool, Stop> {
    let Some(draft) = draft(record, Some(target_id), body, Mode::Update, notes) else {
        return Ok(false);
    };
    let op = Op::Update {
        id: target_id.to_string(),
        draft,
    };
    match target.call(op).await? {
        Ok(_) => Ok(true),
        Err(error) => {
            notes.push(failed(
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
    notes: &mut Vec<Difference>,
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
                notes.push(cannot_mark_sent(target, record, Some(target_id)));
                return Ok(());
            }
            let op = Op::MarkInvoiceSent {
                id: target_id.to_string(),
            };
            if let Err(error) = target.call(op).await? {
                notes.push(failed(
                    record,
                    Some(target_id.into()),
                    &error,
                    "marking it sent",
                ));
            }
            if invoice.status == Viewed {
                let body = json!({"status": "viewed"});
                update(target, record, target_id, &body, notes).await?;
            }
            Ok(())
        }
        _ => archive(target, record, target_id, shape, notes).await,
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
    notes: &mut Vec<Difference>,
) -> Result<(), Stop> {
    let resource = record.resource();
    let action = match (record.archived(), shape) {
        (true, _) => Action::Archive,
        (false, Shape::Update) if target.supports(resource, Action::Restore) => Action::Restore,
        (false, _) => return Ok(()),
    };
    if !target.supports(resource, action) {
        notes.push(Difference {
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
        notes.push(failed(
            record,
            Some(target_id.into()),
            &error,
            "archiving it",
        ));
    }
    Ok(())
}

/// The target records a run may adopt instead of creating them again: those the id map does
/// not know, indexed by natural key (invoice number, product key, client email or name) or, for
/// payments and expenses, which have none, by the fields every backend keeps as given (twins
/// that agree on them are interchangeable). Read once per resource, when first needed, so
/// adopting is linear in the target's size. `Err` when the target could not be searched: no
/// record is then created in its stead (it may be there).
struct Adoption {
    resource: Resource,
    /// `None` until read; `Err` (why) when the target could not be read.
    index: Option<Result<std::sync::Mutex<Index>, String>>,
    claimed: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Target ids by natural key.
type Index = HashMap<String, Vec<String>>;

impl Adoption {
    fn new(resource: Resource) -> Adoption {
        Adoption {
            resource,
            index: None,
            claimed: Default::default(),
        }
    }

    async fn index(&mut self, target: &Side<'_>, map: &IdMap) -> Result<(), Stop> {
        if self.index.is_some() {
            return Ok(());
        }
        let resource = self.resource;
        if !target.supports(resource, Action::List) {
            self.index = Some(Err("the target cannot list them".into()));
            return Ok(());
        }
        let mut index = Index::new();
        let read = target
            .pages(resource, async |records, _| {
                let ids: Vec<&str> = records.iter().map(Record::id).collect();
                let known = map.known_targets(resource, &ids).await?;
                for record in records.iter().filter(|r| !known.contains(r.id())) {
                    let value = serde_json::to_value(record).unwrap_or_default();
                    for key in natural_keys(resource, &value) {
                        index.entry(key).or_default().push(record.id().to_string());
                    }
                }
                Ok(())
            })
            .await;
        self.index = Some(match read {
            Ok(_) => Ok(std::sync::Mutex::new(index)),
            Err(Stop::Refused(_, why)) => Err(why),
            Err(stop) => return Err(stop),
        });
        Ok(())
    }

    /// An unclaimed target record that stands for the one `body` would create, claimed.
    fn claim(&self, body: &Value) -> Result<Option<String>, String> {
        let index = match &self.index {
            Some(Ok(index)) => index,
            Some(Err(why)) => return Err(why.clone()),
            None => return Err("the target was not searched".into()),
        };
        let mut index = index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(key) = natural_keys(self.resource, body).into_iter().next() else {
            return Ok(None);
        };
        let Some(candidates) = index.get_mut(&key) else {
            return Ok(None);
        };
        // A client is indexed under its email and its name: one claimed under either is
        // skipped under the other.
        while let Some(id) = candidates.pop() {
            if self
                .claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone())
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// The keys a record (or a target body) is matched on, best first: a body is looked up under
/// its first, a target record indexed under all. Only fields every backend keeps as given are
/// used (a vendor may rewrite a payment method's wording or an empty date).
fn natural_keys(resource: Resource, value: &Value) -> Vec<String> {
    let text = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_lowercase)
    };
    let exact = |field: &str| {
        let value = value.get(field).unwrap_or(&Value::Null);
        verify::canonical_decimal(value).unwrap_or_else(|| value.to_string())
    };
    let joined = |fields: &[&str]| {
        fields
            .iter()
            .map(|f| exact(f))
            .collect::<Vec<_>>()
            .join("|")
    };
    match resource {
        Resource::Invoices => text("number").into_iter().collect(),
        Resource::Products => text("key").into_iter().collect(),
        Resource::Clients => text("email")
            .map(|email| format!("email {email}"))
            .into_iter()
            .chain([format!("name {}", exact("name"))])
            .collect(),
        Resource::Payments => vec![joined(&["invoice_id", "amount", "date"])],
        Resource::Expenses => vec![joined(&["amount", "currency", "client_id"])],
    }
}
